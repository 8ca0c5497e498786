//! Reporting on the Node object: annotations, the KubeletHostProblem
//! condition and Events, written only when something changed.
//!
//! One GET of the Node decides everything: in steady state that is the only
//! request. Node identities may GET their Node but not `nodes/NAME/status`,
//! so the condition is read from the Node itself. The condition is written
//! with a strategic merge patch, which merges `status.conditions` by `type`;
//! a JSON merge patch would replace kubelet's conditions.

pub mod identity;
pub mod node;
#[cfg(test)]
mod tests;

use std::future::Future;
use std::path::PathBuf;
use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::api::core::v1::{Event, EventSource, Node, ObjectReference};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::Client;
use serde::Serialize;
use serde_json::json;

use crate::evaluate::Assessment;
use crate::hostroot::HostRoot;
use crate::observation::Observation;
use crate::plan::ActionOutcome;
use identity::Identity;
use node::EventSpec;

const MANAGER: &str = "taint-guard";
/// core/v1 Events about Nodes go to `default`, as kubelet's do.
const EVENT_NAMESPACE: &str = "default";

/// How to reach the API server and which Node is ours.
#[derive(Debug, Clone)]
pub struct Options {
    pub node_name: Option<String>,
    pub kubeconfig: Option<PathBuf>,
    pub host: HostRoot,
    pub timeout: Duration,
    pub max_findings_bytes: usize,
    /// Refresh the condition's heartbeat when it is older than this.
    pub heartbeat: Duration,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum State {
    /// The Node already said it all: nothing written.
    Unchanged,
    Updated,
    /// `--dry-run`: read only; `writes` lists what would be written.
    DryRun,
    /// No API server, node name or credentials: nothing attempted or read.
    Skipped,
    /// No answer from the API server (connection refused, TLS, DNS).
    Unreachable,
    /// The API server did not answer within the bound.
    TimedOut,
    /// 401/403: these credentials may not do it (NodeRestriction, RBAC).
    Forbidden,
    /// The Node does not exist (wrong name, or not registered yet).
    NotFound,
    /// Some other request failed; `errors` says which and why.
    Failed,
}

/// One write to the API (made, or in a dry run, that would be made).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Write {
    Annotations {
        annotations: std::collections::BTreeMap<String, String>,
    },
    Condition {
        status: String,
        reason: String,
        message: String,
    },
    Event {
        name: String,
        #[serde(rename = "type")]
        type_: String,
        reason: String,
        message: String,
    },
    /// The same event again: its count and lastTimestamp were updated.
    EventRepeat { name: String, count: i32 },
}

/// What reporting did (printed by `check`).
#[derive(Debug, Clone, Serialize)]
pub struct Outcome {
    pub summary: String,
    pub state: State,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
    /// `--node-name`, `NODE_NAME`, `kubelet --hostname-override` or `hostname`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub node_source: Option<String>,
    /// Who the API server takes us for (`system:node:worker-1`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub identity: Option<String>,
    /// The kubeconfig (or in-cluster account) it came from.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub identity_source: Option<String>,
    pub dry_run: bool,
    /// HTTP requests made, retries included.
    pub requests: u32,
    pub writes: Vec<Write>,
    /// Why the lifecycle controller's taints are on the Node.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub taints: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub skipped: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<String>,
    /// Something worth saying (the Node name differs from the hostname).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    /// The worst failure seen, which sets `state`.
    #[serde(skip)]
    problem: Option<State>,
    /// Whether the Node carries `node.kubernetes.io/out-of-service` (None:
    /// the Node was not read). The daemon repairs nothing while it does.
    #[serde(skip)]
    pub out_of_service: Option<bool>,
    /// Another reporter keeps this Node's status: nothing was written.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub other_reporter: Option<String>,
}

/// Bounded retries of 409 Conflict, 429 and 5xx answers.
#[derive(Debug, Clone, Copy)]
pub struct Retry {
    /// Tries per request, the first included.
    pub attempts: u32,
    /// Wait before retry n is n × backoff.
    pub backoff: Duration,
}

impl Default for Retry {
    fn default() -> Self {
        Retry {
            attempts: 3,
            backoff: Duration::from_millis(200),
        }
    }
}

/// Everything [`report_with`] needs besides the client.
#[derive(Debug, Clone)]
pub struct Input<'a> {
    pub node: &'a str,
    pub node_source: &'a str,
    pub identity: Option<&'a Identity>,
    pub assessment: &'a Assessment,
    pub actions: &'a [ActionOutcome],
    /// The kubelet unit actually checked (`kubelet.service`, `k3s.service`).
    pub kubelet_unit: Option<&'a str>,
    pub dry_run: bool,
    pub max_findings_bytes: usize,
    /// Refresh the condition's heartbeat when it is older than this.
    pub heartbeat: Duration,
    /// Bound on each request.
    pub timeout: Duration,
    pub retry: Retry,
    /// Who is writing (`host/NAME`, `pod/NAME`), recorded on the Node; a
    /// different reporter with a fresh heartbeat is left alone.
    pub reporter: Option<&'a str>,
}

/// A client for the API server and the Node it reports on, made once and
/// kept (the daemon reuses it: one TLS session, not one per report).
#[derive(Clone)]
pub struct Connection {
    pub client: Client,
    /// The same, without a read timeout: a watch is quiet for minutes.
    pub watch_client: Client,
    pub node: String,
    pub node_source: &'static str,
    pub identity: Identity,
    /// Something worth saying (the Node name differs from the hostname).
    pub note: Option<String>,
}

/// Find the Node's name and credentials and build a client; an `Outcome`
/// (skipped) when reporting is not possible here.
pub async fn connect(
    opts: &Options,
    obs: &Observation,
    dry_run: bool,
) -> Result<Connection, Outcome> {
    let env = identity::Env::from_process();
    let hostname_override = obs
        .kubelet_policy
        .as_ref()
        .and_then(|p| p.known())
        .and_then(|p| p.hostname_override.as_deref());
    let source = identity::source(opts.kubeconfig.as_deref(), &env);
    let loaded = identity::client_config(&source, &opts.host).await;
    let ident_name = loaded.as_ref().ok().map(|(_, i)| i.name.as_str());
    let Some(name) = identity::node_name(
        opts.node_name.as_deref(),
        &env,
        ident_name,
        hostname_override,
    ) else {
        return Err(Outcome::skipped(
            "no node name: pass --node-name or set NODE_NAME".into(),
            dry_run,
        ));
    };
    let note = env
        .hostname
        .as_deref()
        .map(|h| h.trim().to_lowercase())
        .filter(|h| !h.is_empty() && *h != name.name)
        .map(|h| {
            format!(
                "node name {} (from {}) differs from the hostname {h}",
                name.name, name.source
            )
        });
    let (mut config, ident) = match loaded {
        Ok(x) => x,
        Err(e) => {
            let mut out = Outcome::skipped(format!("no usable kubeconfig: {e}"), dry_run);
            (out.node, out.node_source) = (Some(name.name), Some(name.source.into()));
            out.note = note;
            return Err(out);
        }
    };
    config.connect_timeout = Some(opts.timeout);
    config.read_timeout = Some(opts.timeout);
    config.write_timeout = Some(opts.timeout);
    // Retries are ours (bounded, and counted in the outcome).
    config.default_retry = false;
    // A watch waits for news: no read timeout (the server ends it after
    // the watch's own timeoutSeconds).
    let mut watch_config = config.clone();
    watch_config.read_timeout = None;
    match Client::try_from(config).and_then(|c| Ok((c, Client::try_from(watch_config)?))) {
        Ok((client, watch_client)) => Ok(Connection {
            client,
            watch_client,
            node: name.name,
            node_source: name.source,
            identity: ident,
            note,
        }),
        Err(e) => {
            let mut out = Outcome::skipped(format!("cannot build API client: {e}"), dry_run);
            (out.node, out.node_source) = (Some(name.name), Some(name.source.into()));
            (out.identity, out.identity_source) = (Some(ident.name), Some(ident.source));
            out.note = note;
            Err(out)
        }
    }
}

/// Who reports from this process: `host/HOSTNAME` on the host (the daemon
/// and a person's `check --report` see the same node, and are one
/// reporter); in a pod, `pod/NODE_NAME` — the same for every pod the
/// DaemonSet ever runs on that node (a rollout's new pod is not "another
/// reporter" of the old one).
pub fn reporter_id() -> String {
    reporter_id_from(
        std::env::var_os("KUBERNETES_SERVICE_HOST").is_some(),
        std::env::var("NODE_NAME").ok().as_deref(),
        &gethostname::gethostname().to_string_lossy(),
    )
}

fn reporter_id_from(in_pod: bool, node_name: Option<&str>, hostname: &str) -> String {
    match (in_pod, node_name.filter(|n| !n.is_empty())) {
        (true, Some(n)) => format!("pod/{n}"),
        (true, None) => format!("pod/{hostname}"),
        (false, _) => format!("host/{hostname}"),
    }
}

/// Report; never fails the local check.
pub async fn report(
    opts: &Options,
    a: &Assessment,
    actions: &[ActionOutcome],
    obs: &Observation,
    dry_run: bool,
) -> Outcome {
    match connect(opts, obs, dry_run).await {
        Ok(conn) => report_on(&conn, opts, a, actions, obs, dry_run, Some(&reporter_id())).await,
        Err(out) => out,
    }
}

/// Report over an existing connection.
pub async fn report_on(
    conn: &Connection,
    opts: &Options,
    a: &Assessment,
    actions: &[ActionOutcome],
    obs: &Observation,
    dry_run: bool,
    reporter: Option<&str>,
) -> Outcome {
    let input = Input {
        node: &conn.node,
        node_source: conn.node_source,
        identity: Some(&conn.identity),
        assessment: a,
        actions,
        kubelet_unit: obs.kubelet().map(|u| u.name.as_str()),
        dry_run,
        max_findings_bytes: opts.max_findings_bytes,
        heartbeat: opts.heartbeat,
        timeout: opts.timeout,
        retry: Retry::default(),
        reporter,
    };
    let mut out = report_with(conn.client.clone(), &input, Timestamp::now()).await;
    out.note = conn.note.clone();
    out
}

/// Whether the Node carries the out-of-service taint, read once (the
/// daemon's watch falls back to this).
pub async fn read_out_of_service(conn: &Connection, timeout: Duration) -> Result<bool, String> {
    let nodes: Api<Node> = Api::all(conn.client.clone());
    match tokio::time::timeout(timeout, nodes.get(&conn.node)).await {
        Ok(Ok(n)) => Ok(node::out_of_service(&n)),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err(format!("no answer within {timeout:?}")),
    }
}

/// The `timeoutSeconds` of a watch of the Node: the API server ends the
/// watch exactly then, and every node's daemon starts again at once — a
/// fixed value would keep a fleet that started in the same second (a site's
/// power coming back) reconnecting in the same second for ever. Spread over
/// 240–290 s (under kube-apiserver's 5-minute cap; benches/fleet.rs).
pub fn watch_timeout(rng: &mut fastrand::Rng) -> u32 {
    rng.u32(240..=290)
}

/// Watch this Node (a field-selected watch): each version's out-of-service
/// value goes to `seen` (which returns false to stop). Returns when the
/// watch ends (the server closes it every few minutes), with whether
/// anything came, or why it failed; the caller starts it again.
pub async fn watch_out_of_service(
    conn: &Connection,
    mut seen: impl FnMut(bool) -> bool,
) -> Result<bool, String> {
    use futures_util::StreamExt;
    use kube::api::{WatchEvent, WatchParams};
    let nodes: Api<Node> = Api::all(conn.watch_client.clone());
    let wp = WatchParams::default()
        .fields(&format!("metadata.name={}", conn.node))
        .timeout(watch_timeout(&mut fastrand::Rng::new()));
    let mut stream = nodes
        .watch(&wp, "0")
        .await
        .map_err(|e| e.to_string())?
        .boxed();
    let mut any = false;
    while let Some(ev) = stream.next().await {
        match ev.map_err(|e| e.to_string())? {
            WatchEvent::Added(n) | WatchEvent::Modified(n) => {
                any = true;
                if !seen(node::out_of_service(&n)) {
                    return Ok(any);
                }
            }
            WatchEvent::Error(e) => return Err(format!("HTTP {} {}", e.code, e.message)),
            WatchEvent::Deleted(_) | WatchEvent::Bookmark(_) => {}
        }
    }
    Ok(any)
}

/// Bring the Node in line with `input`: GET it, then write only what differs.
pub async fn report_with(client: Client, input: &Input<'_>, now: Timestamp) -> Outcome {
    // The API keeps whole seconds; comparing and writing those keeps runs
    // within the same second idempotent.
    let now = Timestamp::from_second(now.as_second()).unwrap_or(now);
    let nodes: Api<Node> = Api::all(client.clone());
    let events: Api<Event> = Api::namespaced(client, EVENT_NAMESPACE);
    let mut rq = Requests { input, count: 0 };
    let mut out = Outcome {
        summary: String::new(),
        state: State::Unchanged,
        node: Some(input.node.into()),
        node_source: Some(input.node_source.into()),
        identity: input.identity.map(|i| i.name.clone()),
        identity_source: input.identity.map(|i| i.source.clone()),
        dry_run: input.dry_run,
        requests: 0,
        writes: Vec::new(),
        taints: Vec::new(),
        skipped: None,
        errors: Vec::new(),
        note: None,
        problem: None,
        out_of_service: None,
        other_reporter: None,
    };

    let node = match rq.call(|| nodes.get(input.node)).await {
        Ok(n) => n,
        Err(e) => {
            out.fail(&rq, &e, "get", &format!("node {}", input.node));
            return out.finish(rq.count);
        }
    };
    // Tests make another writer change the Node here.
    fail::fail_point!("report::after-get");
    let a = input.assessment;
    out.taints = node::explain_taints(&node, a, input.kubelet_unit);
    out.out_of_service = Some(node::out_of_service(&node));
    let heartbeat =
        jiff::SignedDuration::try_from(input.heartbeat).unwrap_or(jiff::SignedDuration::MAX);
    if let Some(who) = input
        .reporter
        .and_then(|me| node::other_reporter(&node, me, now))
    {
        out.other_reporter = Some(who);
        return out.finish(rq.count);
    }
    let mut ch = node::changes(
        &node,
        a,
        input.actions,
        input.max_findings_bytes,
        heartbeat,
        now,
    );
    if let Some(me) = input.reporter {
        node::sign(&node, &mut ch, me);
    }
    let event = |spec: &EventSpec| new_event(spec, &node, input.node, now);

    if input.dry_run {
        if let Some(ann) = ch.annotations {
            out.writes.push(Write::Annotations { annotations: ann });
        }
        if let Some(c) = &ch.condition {
            out.writes.push(condition_write(c));
        }
        for spec in ch.transition.iter().chain(&ch.actions) {
            out.writes.push(event_write(&event(spec)));
        }
        return out.finish(rq.count);
    }

    let params = PatchParams {
        field_manager: Some(MANAGER.into()),
        ..PatchParams::default()
    };
    let mut annotated = true;
    if let Some(ann) = ch.annotations {
        let patch = Patch::Merge(node::annotations_patch(&ann));
        match rq.call(|| nodes.patch(input.node, &params, &patch)).await {
            Ok(_) => out.writes.push(Write::Annotations { annotations: ann }),
            Err(e) => {
                annotated = false;
                out.fail(&rq, &e, "patch", &format!("node {}", input.node));
            }
        }
    }
    if let Some(c) = ch.condition {
        let patch = Patch::Strategic(node::condition_patch(&c));
        match rq
            .call(|| nodes.patch_status(input.node, &params, &patch))
            .await
        {
            Ok(_) => out.writes.push(condition_write(&c)),
            Err(e) => {
                out.fail(&rq, &e, "patch", &format!("nodes/{}/status", input.node));
            }
        }
    }
    // The transition is recorded by the status annotation: without it the
    // next run would see the same transition and send the event again.
    let transition = ch.transition.filter(|_| annotated);
    for spec in transition.iter().chain(&ch.actions) {
        let ev = event(spec);
        let post = PostParams {
            field_manager: Some(MANAGER.into()),
            ..PostParams::default()
        };
        let what = format!("events in namespace {EVENT_NAMESPACE}");
        match rq.call(|| events.create(&post, &ev)).await {
            Ok(_) => out.writes.push(event_write(&ev)),
            // The same name: the same thing happened again. Count it, as
            // kubelet's recorder does: bump lastTimestamp, read the count
            // from the answer (node identities may patch Events, not get
            // them), then set count + 1.
            Err(Fail::Api(s)) if s.reason == "AlreadyExists" => {
                let name = ev.metadata.name.clone().unwrap_or_default();
                let touch = Patch::Merge(json!({ "lastTimestamp": Time(now) }));
                let r = rq.call(|| events.patch(&name, &params, &touch)).await;
                let r = match r {
                    Ok(old) => {
                        let count = old.count.unwrap_or(1).saturating_add(1);
                        let bump = Patch::Merge(json!({ "count": count }));
                        rq.call(|| events.patch(&name, &params, &bump))
                            .await
                            .map(|_| count)
                    }
                    Err(e) => Err(e),
                };
                match r {
                    Ok(count) => out.writes.push(Write::EventRepeat { name, count }),
                    Err(e) => out.fail(&rq, &e, "patch", &what),
                }
            }
            Err(e) => out.fail(&rq, &e, "create", &what),
        }
    }
    out.finish(rq.count)
}

fn condition_write(c: &k8s_openapi::api::core::v1::NodeCondition) -> Write {
    Write::Condition {
        status: c.status.clone(),
        reason: c.reason.clone().unwrap_or_default(),
        message: c.message.clone().unwrap_or_default(),
    }
}

fn event_write(e: &Event) -> Write {
    Write::Event {
        name: e.metadata.name.clone().unwrap_or_default(),
        type_: e.type_.clone().unwrap_or_default(),
        reason: e.reason.clone().unwrap_or_default(),
        message: e.message.clone().unwrap_or_default(),
    }
}

/// A core/v1 Event about the Node (events.k8s.io is refused to node
/// identities). The name is a hash of its content, so neither a retry nor
/// a repeat on the next run duplicates it.
fn new_event(spec: &EventSpec, node: &Node, name: &str, now: Timestamp) -> Event {
    // FNV-1a: stable across releases, unlike std's DefaultHasher.
    // Repairs carry no time in it: the same failure on every run is
    // AlreadyExists until the apiserver's event TTL expires it. Status
    // changes carry their time: each one is news.
    let text = format!("{name}\0{}\0{}\0{}", spec.reason, spec.message, spec.key);
    let hash = text.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    });
    Event {
        metadata: ObjectMeta {
            name: Some(format!("{name}.taint-guard.{hash:016x}")),
            namespace: Some(EVENT_NAMESPACE.into()),
            ..ObjectMeta::default()
        },
        involved_object: ObjectReference {
            api_version: Some("v1".into()),
            kind: Some("Node".into()),
            name: Some(name.into()),
            uid: node.metadata.uid.clone(),
            ..ObjectReference::default()
        },
        type_: Some(spec.type_.into()),
        reason: Some(spec.reason.clone()),
        message: Some(spec.message.clone()),
        source: Some(EventSource {
            component: Some(MANAGER.into()),
            host: Some(name.into()),
        }),
        reporting_component: Some(MANAGER.into()),
        reporting_instance: Some(name.into()),
        first_timestamp: Some(Time(now)),
        last_timestamp: Some(Time(now)),
        count: Some(1),
        ..Event::default()
    }
}

/// Why a request failed.
#[derive(Debug)]
enum Fail {
    Api(Box<kube::core::Status>),
    /// No answer within the timeout.
    Timeout(Duration),
    /// Connection, TLS, credentials: nothing came back from the API server.
    Transport(kube::Error),
}

impl Fail {
    /// The report state this failure stands for.
    fn state(&self) -> State {
        match self {
            Fail::Timeout(_) => State::TimedOut,
            Fail::Transport(_) => State::Unreachable,
            Fail::Api(s) if s.code == 401 || s.code == 403 => State::Forbidden,
            Fail::Api(s) if s.code == 404 => State::NotFound,
            Fail::Api(_) => State::Failed,
        }
    }
}

impl std::fmt::Display for Fail {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Fail::Api(s) => write!(f, "HTTP {} {}: {}", s.code, s.reason, s.message),
            Fail::Timeout(t) => write!(f, "no answer within {t:?}"),
            // Include the sources: "ServiceError: client error (Connect)" alone says little.
            Fail::Transport(e) => {
                write!(f, "{e}")?;
                let mut src = std::error::Error::source(e);
                while let Some(s) = src {
                    write!(f, ": {s}")?;
                    src = s.source();
                }
                Ok(())
            }
        }
    }
}

/// Issues requests with the timeout and retries, and counts them.
struct Requests<'a> {
    input: &'a Input<'a>,
    count: u32,
}

impl Requests<'_> {
    async fn call<T, F, Fut>(&mut self, mut f: F) -> Result<T, Fail>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = kube::Result<T>>,
    {
        let Retry { attempts, backoff } = self.input.retry;
        let mut attempt = 1;
        loop {
            self.count += 1;
            let err = match tokio::time::timeout(self.input.timeout, f()).await {
                Ok(Ok(v)) => return Ok(v),
                Ok(Err(kube::Error::Api(s))) => Fail::Api(s),
                Ok(Err(e)) => Fail::Transport(e),
                Err(_) => Fail::Timeout(self.input.timeout),
            };
            let transient = matches!(&err, Fail::Api(s)
                if (s.code == 409 && s.reason != "AlreadyExists") || s.code == 429 || s.code >= 500);
            if !transient || attempt >= attempts {
                return Err(err);
            }
            tokio::time::sleep(backoff * attempt).await;
            attempt += 1;
        }
    }

    /// One clear sentence for a failed `verb` on `what`.
    fn explain(&self, e: &Fail, verb: &str, what: &str) -> String {
        let input = self.input;
        let who = input.identity.map_or("this identity", |i| i.name.as_str());
        let Fail::Api(s) = e else {
            return format!("cannot {verb} {what}: {e}");
        };
        match s.code {
            403 => {
                let hint = match who.strip_prefix("system:node:") {
                    Some(n) if n != input.node => format!(
                        " NodeRestriction lets {who} write only node {n}: wrong --node-name?"
                    ),
                    _ => " is NodeRestriction or RBAC refusing it?".into(),
                };
                format!("forbidden: the identity {who} may not {verb} {what} —{hint} ({})", s.message)
            }
            404 if verb == "get" => format!(
                "node {} not found — wrong --node-name? (name from {}; or kubelet has not registered it yet)",
                input.node, input.node_source
            ),
            401 => format!(
                "unauthorized: the API server does not accept the credentials of {who} (expired certificate or token?)"
            ),
            _ => {
                let tries = if s.code == 409 || s.code == 429 || s.code >= 500 {
                    format!(" after {} attempts", input.retry.attempts)
                } else {
                    String::new()
                };
                format!("cannot {verb} {what}{tries}: {e}")
            }
        }
    }
}

impl Outcome {
    fn skipped(reason: String, dry_run: bool) -> Outcome {
        Outcome {
            summary: format!("skipped ({reason})"),
            state: State::Skipped,
            node: None,
            node_source: None,
            identity: None,
            identity_source: None,
            dry_run,
            requests: 0,
            writes: Vec::new(),
            taints: Vec::new(),
            skipped: Some(reason),
            errors: Vec::new(),
            note: None,
            problem: None,
            out_of_service: None,
            other_reporter: None,
        }
    }

    /// Record a failed request: its sentence, and the state it stands for
    /// (the first failure sets it: later ones are usually its consequence).
    fn fail(&mut self, rq: &Requests<'_>, e: &Fail, verb: &str, what: &str) {
        self.errors.push(rq.explain(e, verb, what));
        self.problem.get_or_insert(e.state());
    }

    /// Set the state and the one-line summary from what happened.
    fn finish(mut self, requests: u32) -> Outcome {
        self.requests = requests;
        let n = |k: usize, one: &str| format!("{k} {one}{}", if k == 1 { "" } else { "s" });
        let mut parts = Vec::new();
        let mut events = 0;
        for w in &self.writes {
            match w {
                Write::Annotations { .. } => parts.push("annotations".to_string()),
                Write::Condition { status, reason, .. } => {
                    parts.push(format!("condition {}={status} ({reason})", node::CONDITION))
                }
                Write::Event { .. } | Write::EventRepeat { .. } => events += 1,
            }
        }
        if events > 0 {
            parts.push(n(events, "event"));
        }
        let done = match (parts.is_empty(), self.dry_run) {
            _ if self.other_reporter.is_some() => format!(
                "another reporter ({}) keeps its status with a fresh heartbeat, nothing written",
                self.other_reporter.as_deref().unwrap_or_default()
            ),
            (true, false) if self.errors.is_empty() => "unchanged".to_string(),
            (true, false) => "wrote nothing".to_string(),
            (true, true) => "dry run, nothing to write".to_string(),
            (false, false) => format!("updated {}", parts.join(", ")),
            (false, true) => format!("dry run, would write {}", parts.join(", ")),
        };
        let who = match (&self.identity, &self.identity_source) {
            (Some(i), Some(s)) => format!(" (identity {i} from {s})"),
            _ => String::new(),
        };
        let head = format!(
            "node {}{who}: {done}; {}",
            self.node.as_deref().unwrap_or("?"),
            n(requests as usize, "request")
        );
        (self.state, self.summary) = if let Some(r) = &self.skipped {
            (State::Skipped, format!("skipped ({r})"))
        } else if !self.errors.is_empty() {
            let state = self.problem.unwrap_or(State::Failed);
            let word = match state {
                State::Unreachable => "API server unreachable",
                State::TimedOut => "timed out",
                State::Forbidden => "forbidden",
                State::NotFound => "not found",
                _ => "failed",
            };
            (
                state,
                format!("{word} ({}); {head}", self.errors.join("; ")),
            )
        } else if self.dry_run {
            (State::DryRun, head)
        } else if self.writes.is_empty() {
            (State::Unchanged, head)
        } else {
            (State::Updated, head)
        };
        self
    }
}

#[cfg(test)]
mod reporter_tests {
    // Review H1: a pod's id is its node's, stable across rollouts.
    #[test]
    fn reporter_ids() {
        use super::reporter_id_from as id;
        assert_eq!(
            id(true, Some("worker-1"), "taint-guard-x7k2p"),
            "pod/worker-1"
        );
        assert_eq!(
            id(true, Some("worker-1"), "taint-guard-q9zz1"),
            "pod/worker-1"
        );
        assert_eq!(id(true, None, "taint-guard-x7k2p"), "pod/taint-guard-x7k2p");
        assert_eq!(
            id(false, Some("worker-1"), "worker-1.lan"),
            "host/worker-1.lan"
        );
    }
}
