//! `report_with` against a scripted API server (kube-rs's tower-test mock
//! pair): every request is checked (method, path, query, patch type, body)
//! and answered as the API server would; a missing or extra request fails.

use crate::remedy::Remedy;
use std::time::Duration;

use http::{Method, Request, Response};
use jiff::Timestamp;
use kube::client::Body;
use serde_json::{json, Value};

use super::*;
use crate::evaluate::{Assessment, Finding, FindingKind, Severity, Status};
use crate::plan::{ActionOutcome, Outcome as Action};

type Handle = tower_test::mock::Handle<Request<Body>, Response<Body>>;

const NODE_PATH: &str = "/api/v1/nodes/worker-1";
const STATUS_PATH: &str = "/api/v1/nodes/worker-1/status";
const EVENTS_PATH: &str = "/api/v1/namespaces/default/events";
const QUERY: Option<&str> = Some("&fieldManager=taint-guard");
const MERGE: &str = "application/merge-patch+json";
const STRATEGIC: &str = "application/strategic-merge-patch+json";
const UID: &str = "6b1f3c2e-5d7a-4e8b-9c0d-1e2f3a4b5c6d";

enum Reply {
    Json(u16, Value),
    /// A transport error (connection refused).
    Broken,
    /// Never answer.
    Hang,
}

struct Expect {
    method: Method,
    path: &'static str,
    content_type: Option<&'static str>,
    check: Box<dyn FnOnce(&Value) + Send>,
    reply: Reply,
}

fn get_node(node: &Value) -> Expect {
    expect(
        Method::GET,
        NODE_PATH,
        None,
        |_| {},
        Reply::Json(200, node.clone()),
    )
}

fn expect(
    method: Method,
    path: &'static str,
    content_type: Option<&'static str>,
    check: impl FnOnce(&Value) + Send + 'static,
    reply: Reply,
) -> Expect {
    Expect {
        method,
        path,
        content_type,
        check: Box::new(check),
        reply,
    }
}

/// A `Status` object as the API server sends with an error.
fn status(code: u16, reason: &str, message: &str) -> Reply {
    Reply::Json(
        code,
        json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
               "message": message, "reason": reason, "code": code}),
    )
}

/// Answer `script` in order; fail on a wrong, missing or extra request.
async fn verify(mut handle: Handle, script: Vec<Expect>) {
    let mut hanging = Vec::new();
    for (i, e) in script.into_iter().enumerate() {
        let next = tokio::time::timeout(Duration::from_secs(5), handle.next_request()).await;
        let (req, send) = next
            .unwrap_or_else(|_| panic!("request {i} ({} {}) never came", e.method, e.path))
            .unwrap_or_else(|| {
                panic!(
                    "client done; request {i} ({} {}) never came",
                    e.method, e.path
                )
            });
        let what = format!("request {i}: {} {}", req.method(), req.uri());
        assert_eq!(req.method(), e.method, "{what}");
        // A path ending in `/` names a collection: any object in it.
        if e.path.ends_with('/') {
            assert!(req.uri().path().starts_with(e.path), "{what}");
        } else {
            assert_eq!(req.uri().path(), e.path, "{what}");
        }
        let query = if e.method == Method::GET { None } else { QUERY };
        assert_eq!(req.uri().query(), query, "{what}");
        let ct = req
            .headers()
            .get("content-type")
            .map(|v| v.to_str().unwrap().to_string());
        if e.method == Method::PATCH {
            assert_eq!(ct.as_deref(), e.content_type, "{what}");
        }
        let body = req.into_body().collect_bytes().await.unwrap();
        let body: Value = if body.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&body).unwrap()
        };
        (e.check)(&body);
        match e.reply {
            Reply::Json(code, v) => send.send_response(
                Response::builder()
                    .status(code)
                    .header("content-type", "application/json")
                    .body(Body::from(serde_json::to_vec(&v).unwrap()))
                    .unwrap(),
            ),
            Reply::Broken => send.send_error(std::io::Error::other("connection refused")),
            Reply::Hang => hanging.push(send),
        }
    }
    // report_with drops its client when done: then there must be nothing more.
    let extra = tokio::time::timeout(Duration::from_secs(5), handle.next_request())
        .await
        .expect("client still alive after the script");
    if let Some((req, _)) = extra {
        panic!("unexpected request {} {}", req.method(), req.uri());
    }
}

fn identity() -> Identity {
    Identity {
        name: "system:node:worker-1".into(),
        source: "/etc/kubernetes/kubelet.conf".into(),
    }
}

fn finding(id: &str, severity: Severity, message: &str, remedy: &str) -> Finding {
    Finding::new(
        FindingKind::from_parts(id, "kubelet.service").unwrap(),
        severity,
        message.into(),
        Some(Remedy::cmd(&shlex::split(remedy).unwrap())),
        true,
    )
}

fn critical() -> Assessment {
    Assessment {
        status: Status::Critical,
        reboot_safe: Some(false),
        after_reboot: vec![],
        findings: vec![finding(
            "unit-disabled",
            Severity::Critical,
            "kubelet.service is not enabled (UnitFileState=disabled): it will not start at boot",
            "systemctl enable --now kubelet.service",
        )],
    }
}

fn ok() -> Assessment {
    Assessment {
        status: Status::Ok,
        reboot_safe: Some(true),
        after_reboot: vec![],
        findings: vec![],
    }
}

fn node_fixture() -> Value {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/report/node-worker-1.json"
    );
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// What the API server makes of our patches: a JSON merge of the
/// annotations, a merge by `type` of the conditions.
fn apply(node: &mut Value, meta: &Value, cond: &Value) {
    let ann = node["metadata"]["annotations"].as_object_mut().unwrap();
    for (k, v) in meta["metadata"]["annotations"].as_object().unwrap() {
        ann.insert(k.clone(), v.clone());
    }
    let conds = node["status"]["conditions"].as_array_mut().unwrap();
    for c in cond["status"]["conditions"].as_array().unwrap() {
        conds.retain(|x| x["type"] != c["type"]);
        conds.push(c.clone());
    }
}

fn t0() -> Timestamp {
    "2025-06-01T10:05:00.123Z".parse().unwrap()
}

struct Run<'a> {
    assessment: &'a Assessment,
    actions: &'a [ActionOutcome],
    dry_run: bool,
    timeout: Duration,
    identity: Identity,
    reporter: Option<&'static str>,
}

impl<'a> Run<'a> {
    fn new(assessment: &'a Assessment) -> Self {
        Run {
            assessment,
            actions: &[],
            dry_run: false,
            timeout: Duration::from_secs(5),
            identity: identity(),
            reporter: None,
        }
    }

    async fn go(self, now: Timestamp, script: Vec<Expect>) -> Outcome {
        let (service, handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
        let client = Client::new(service, "default");
        let input = Input {
            node: "worker-1",
            node_source: "NODE_NAME",
            identity: Some(&self.identity),
            assessment: self.assessment,
            actions: self.actions,
            kubelet_unit: Some("kubelet.service"),
            dry_run: self.dry_run,
            max_findings_bytes: 4096,
            heartbeat: Duration::from_secs(1800),
            timeout: self.timeout,
            reporter: self.reporter,
            retry: Retry {
                attempts: 3,
                backoff: Duration::ZERO,
            },
        };
        let (out, ()) = tokio::join!(report_with(client, &input, now), verify(handle, script));
        out
    }
}

/// Captures a request body for later use by the test.
fn capture() -> (std::sync::Arc<std::sync::Mutex<Value>>, impl Fn() -> Value) {
    let slot = std::sync::Arc::new(std::sync::Mutex::new(Value::Null));
    let s = slot.clone();
    (slot, move || s.lock().unwrap().clone())
}

fn into(slot: &std::sync::Arc<std::sync::Mutex<Value>>) -> impl FnOnce(&Value) + Send + 'static {
    let slot = slot.clone();
    move |v: &Value| *slot.lock().unwrap() = v.clone()
}

/// First report of a critical node; returns the Node as the API server
/// would store it afterwards.
async fn first_report() -> Value {
    let node = node_fixture();
    let (meta, meta_body) = capture();
    let (cond, cond_body) = capture();
    let check_meta = into(&meta);
    let check_cond = into(&cond);
    let a = critical();
    let out = Run::new(&a)
        .go(
            t0(),
            vec![
                get_node(&node),
                expect(
                    Method::PATCH,
                    NODE_PATH,
                    Some(MERGE),
                    move |b| {
                        check_meta(b);
                        let ann = &b["metadata"]["annotations"];
                        assert_eq!(ann.as_object().unwrap().len(), 5, "{b}");
                        assert_eq!(ann["taint-guard.io/after-reboot"], "[]");
                        assert_eq!(ann["taint-guard.io/status"], "critical");
                        assert_eq!(ann["taint-guard.io/reboot-safe"], "false");
                        assert_eq!(ann["taint-guard.io/since"], "2025-06-01T10:05:00Z");
                        let f: Value =
                            serde_json::from_str(ann["taint-guard.io/findings"].as_str().unwrap())
                                .unwrap();
                        assert_eq!(
                            f,
                            json!([{"id": "unit-disabled", "severity": "critical",
                                    "subject": "kubelet.service",
                                    "message": "kubelet.service is not enabled (UnitFileState=disabled): it will not start at boot",
                                    "remedy": "systemctl enable --now kubelet.service"}])
                        );
                        // Only metadata: a merge patch must never carry status.
                        assert_eq!(b.as_object().unwrap().len(), 1);
                    },
                    Reply::Json(200, node.clone()),
                ),
                expect(
                    Method::PATCH,
                    STATUS_PATH,
                    Some(STRATEGIC),
                    move |b| {
                        check_cond(b);
                        let conds = b["status"]["conditions"].as_array().unwrap();
                        // Only our condition: the patch merges by type.
                        assert_eq!(conds.len(), 1, "{b}");
                        let c = &conds[0];
                        assert_eq!(c["type"], "KubeletHostProblem");
                        assert_eq!(c["status"], "True");
                        assert_eq!(c["reason"], "UnitDisabled");
                        let msg = c["message"].as_str().unwrap();
                        assert!(msg.contains("systemctl enable --now kubelet.service"), "{msg}");
                        assert_eq!(c["lastTransitionTime"], "2025-06-01T10:05:00Z");
                        assert_eq!(c["lastHeartbeatTime"], "2025-06-01T10:05:00Z");
                    },
                    Reply::Json(200, node.clone()),
                ),
                expect(
                    Method::POST,
                    EVENTS_PATH,
                    None,
                    |b| {
                        assert_eq!(b["kind"], "Event");
                        assert_eq!(b["apiVersion"], "v1");
                        let name = b["metadata"]["name"].as_str().unwrap();
                        assert!(name.starts_with("worker-1.taint-guard."), "{name}");
                        assert_eq!(b["metadata"]["namespace"], "default");
                        assert_eq!(
                            b["involvedObject"],
                            json!({"apiVersion": "v1", "kind": "Node", "name": "worker-1", "uid": UID})
                        );
                        assert_eq!(b["type"], "Warning");
                        assert_eq!(b["reason"], "UnitDisabled");
                        assert_eq!(b["source"]["component"], "taint-guard");
                        assert_eq!(b["count"], 1);
                        assert!(b["message"].as_str().unwrap().contains("none → critical"));
                    },
                    Reply::Json(201, json!({"kind": "Event", "apiVersion": "v1", "metadata": {"name": "x"},
                                           "involvedObject": {}})),
                ),
            ],
        )
        .await;
    assert_eq!(out.state, State::Updated, "{out:?}");
    assert_eq!(out.requests, 4);
    assert_eq!(
        out.summary,
        "node worker-1 (identity system:node:worker-1 from /etc/kubernetes/kubelet.conf): \
         updated annotations, condition KubeletHostProblem=True (UnitDisabled), 1 event; 4 requests"
    );
    assert_eq!(
        out.taints,
        [
            "taint node.kubernetes.io/unreachable:NoSchedule is caused by finding unit-disabled (kubelet.service); deleting the taint will not help — the node lifecycle controller re-adds it while Ready is Unknown",
            "taint node.kubernetes.io/unreachable:NoExecute is caused by finding unit-disabled (kubelet.service); deleting the taint will not help — the node lifecycle controller re-adds it while Ready is Unknown",
        ]
    );
    let mut node = node;
    apply(&mut node, &meta_body(), &cond_body());
    node
}

#[tokio::test]
async fn first_report_writes_annotations_condition_and_event() {
    first_report().await;
}

#[tokio::test]
async fn same_findings_again_only_reads() {
    let node = first_report().await;
    let a = critical();
    let later = t0() + jiff::SignedDuration::from_mins(5);
    let out = Run::new(&a).go(later, vec![get_node(&node)]).await;
    assert_eq!(out.state, State::Unchanged, "{out:?}");
    assert_eq!(out.requests, 1);
    assert!(out.writes.is_empty());
    assert!(
        out.summary.ends_with(": unchanged; 1 request"),
        "{}",
        out.summary
    );
}

/// One reporter per Node: the annotations say who wrote them; a fresh
/// other reporter is left alone (one GET, nothing written).
#[tokio::test]
async fn a_fresh_other_reporter_is_left_alone() {
    let mut node = first_report().await;
    node["metadata"]["annotations"]["taint-guard.io/reporter"] = json!("pod/taint-guard-x2");
    let a = ok();
    let later = t0() + jiff::SignedDuration::from_mins(5);
    let mut run = Run::new(&a);
    run.reporter = Some("host/worker-1");
    let out = run.go(later, vec![get_node(&node)]).await;
    assert_eq!(out.other_reporter.as_deref(), Some("pod/taint-guard-x2"));
    assert!(out.writes.is_empty());
    assert!(
        out.summary
            .contains("another reporter (pod/taint-guard-x2)"),
        "{}",
        out.summary
    );
    // Its heartbeat older than two hours (STALE_AFTER): it stopped; ours takes over and
    // says so in the annotations.
    let much_later = t0() + jiff::SignedDuration::from_mins(121);
    let a = critical();
    let mut run = Run::new(&a);
    run.reporter = Some("host/worker-1");
    let out = run
        .go(
            much_later,
            vec![
                get_node(&node),
                expect(
                    Method::PATCH,
                    NODE_PATH,
                    Some(MERGE),
                    |b| {
                        let ann = &b["metadata"]["annotations"];
                        assert_eq!(ann["taint-guard.io/reporter"], "host/worker-1");
                        assert_eq!(ann["taint-guard.io/status"], "critical");
                        assert_eq!(ann.as_object().unwrap().len(), 6, "{b}");
                    },
                    Reply::Json(200, node.clone()),
                ),
                expect(
                    Method::PATCH,
                    STATUS_PATH,
                    Some(STRATEGIC),
                    |_| {},
                    Reply::Json(200, node.clone()),
                ),
            ],
        )
        .await;
    assert_eq!(out.other_reporter, None);
    assert_eq!(out.state, State::Updated, "{out:?}");
}

#[tokio::test]
async fn critical_to_ok_is_one_transition() {
    let node = first_report().await;
    let a = ok();
    let later = t0() + jiff::SignedDuration::from_hours(1);
    let out = Run::new(&a)
        .go(
            later,
            vec![
                get_node(&node),
                expect(
                    Method::PATCH,
                    NODE_PATH,
                    Some(MERGE),
                    |b| {
                        let ann = &b["metadata"]["annotations"];
                        assert_eq!(ann["taint-guard.io/status"], "ok");
                        assert_eq!(ann["taint-guard.io/reboot-safe"], "true");
                        assert_eq!(ann["taint-guard.io/findings"], "[]");
                        assert_eq!(ann["taint-guard.io/since"], "2025-06-01T11:05:00Z");
                    },
                    Reply::Json(200, node.clone()),
                ),
                expect(
                    Method::PATCH,
                    STATUS_PATH,
                    Some(STRATEGIC),
                    |b| {
                        let c = &b["status"]["conditions"][0];
                        assert_eq!(c["status"], "False");
                        assert_eq!(c["reason"], "KubeletHostOK");
                        assert_eq!(c["lastTransitionTime"], "2025-06-01T11:05:00Z");
                    },
                    Reply::Json(200, node.clone()),
                ),
                expect(
                    Method::POST,
                    EVENTS_PATH,
                    None,
                    |b| {
                        assert_eq!(b["type"], "Normal");
                        assert_eq!(b["reason"], "KubeletHostOK");
                        assert!(b["message"].as_str().unwrap().contains("critical → ok"));
                    },
                    Reply::Json(201, json!({"metadata": {}, "involvedObject": {}})),
                ),
            ],
        )
        .await;
    assert_eq!(out.state, State::Updated, "{out:?}");
    assert_eq!(out.requests, 4);
    assert!(
        out.taints.is_empty(),
        "no finding explains the taints any more"
    );
}

#[tokio::test]
async fn heartbeat_only_condition_change_keeps_transition_time() {
    // Same condition status, new message: lastTransitionTime stays.
    let node = first_report().await;
    let mut a = critical();
    a.findings[0].remedy = Some(Remedy::systemctl(&["enable", "kubelet.service"]));
    let later = t0() + jiff::SignedDuration::from_mins(1);
    let out = Run::new(&a)
        .go(
            later,
            vec![
                get_node(&node),
                // The remedy is in the findings annotation too.
                expect(
                    Method::PATCH,
                    NODE_PATH,
                    Some(MERGE),
                    |b| {
                        let f = b["metadata"]["annotations"]["taint-guard.io/findings"]
                            .as_str()
                            .unwrap();
                        assert!(
                            f.contains(r#""remedy":"systemctl enable kubelet.service""#),
                            "{f}"
                        );
                    },
                    Reply::Json(200, node.clone()),
                ),
                expect(
                    Method::PATCH,
                    STATUS_PATH,
                    Some(STRATEGIC),
                    |b| {
                        let c = &b["status"]["conditions"][0];
                        assert_eq!(c["status"], "True");
                        assert_eq!(c["lastTransitionTime"], "2025-06-01T10:05:00Z");
                        assert_eq!(c["lastHeartbeatTime"], "2025-06-01T10:06:00Z");
                    },
                    Reply::Json(200, node.clone()),
                ),
            ],
        )
        .await;
    assert_eq!(out.requests, 3, "{out:?}");
}

#[tokio::test]
async fn dry_run_only_reads() {
    let a = critical();
    let mut run = Run::new(&a);
    run.dry_run = true;
    let out = run.go(t0(), vec![get_node(&node_fixture())]).await;
    assert_eq!(out.state, State::DryRun, "{out:?}");
    assert_eq!(out.requests, 1);
    assert_eq!(
        out.writes.len(),
        3,
        "annotations, condition, event: {out:?}"
    );
    assert!(
        out.summary.contains("dry run, would write annotations, condition KubeletHostProblem=True (UnitDisabled), 1 event; 1 request"),
        "{}",
        out.summary
    );
}

#[tokio::test]
async fn actions_done_or_failed_become_events() {
    let node = first_report().await;
    let a = critical();
    let act = |id: &str, outcome| ActionOutcome {
        id: id.into(),
        subject: "kubelet.service".into(),
        outcome,
        detail: "d".into(),
    };
    let actions = [
        act("enable", Action::Done),
        act("start", Action::Failed),
        act("reset-failed", Action::Skipped),
        act("unmask", Action::Planned),
    ];
    let mut run = Run::new(&a);
    run.actions = &actions;
    let ev = |type_: &'static str, reason: &'static str| {
        expect(
            Method::POST,
            EVENTS_PATH,
            None,
            move |b| {
                assert_eq!(b["type"], type_);
                assert_eq!(b["reason"], reason);
            },
            Reply::Json(201, json!({"metadata": {}, "involvedObject": {}})),
        )
    };
    let out = run
        .go(
            t0(),
            vec![
                get_node(&node),
                ev("Normal", "Enable"),
                ev("Warning", "StartFailed"),
            ],
        )
        .await;
    assert_eq!(out.requests, 3, "{out:?}");
    assert!(out.summary.contains("updated 2 events"), "{}", out.summary);
}

/// The same repair failing again: the Event exists (AlreadyExists), so its
/// lastTimestamp is bumped and its count raised from the count the
/// server returns — not dropped.
#[tokio::test]
async fn recurring_event_is_counted() {
    // The node already says all of it: only the repair event is written.
    let node = first_report().await;
    let a = critical();
    let actions = vec![ActionOutcome {
        id: "start".into(),
        subject: "kubelet.service".into(),
        outcome: Action::Failed,
        detail: "d".into(),
    }];
    let mut run = Run::new(&a);
    run.actions = &actions;
    let out = run
        .go(
            t0(),
            vec![
                get_node(&node),
                expect(
                    Method::POST,
                    EVENTS_PATH,
                    None,
                    |_| {},
                    Reply::Json(409, json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "AlreadyExists", "code": 409, "message": "events exists"})),
                ),
                expect(
                    Method::PATCH,
                    "/api/v1/namespaces/default/events/",
                    Some("application/merge-patch+json"),
                    |b| assert!(b["lastTimestamp"].is_string(), "{b}"),
                    Reply::Json(200, json!({"metadata": {}, "involvedObject": {}, "count": 4})),
                ),
                expect(
                    Method::PATCH,
                    "/api/v1/namespaces/default/events/",
                    Some("application/merge-patch+json"),
                    |b| assert_eq!(b, &json!({"count": 5})),
                    Reply::Json(200, json!({"metadata": {}, "involvedObject": {}, "count": 5})),
                ),
            ],
        )
        .await;
    assert_eq!(out.requests, 4, "{out:?}");
    assert!(
        out.writes
            .iter()
            .any(|w| matches!(w, Write::EventRepeat { count: 5, .. })),
        "{out:?}"
    );
}

#[tokio::test]
async fn forbidden_patch_is_a_clear_error() {
    let node = node_fixture();
    let a = critical();
    let denied = || {
        status(
            403,
            "Forbidden",
            "nodes \"worker-1\" is forbidden: User \"system:node:worker-1\" cannot patch resource \"nodes\"",
        )
    };
    let out = Run::new(&a)
        .go(
            t0(),
            vec![
                get_node(&node),
                expect(Method::PATCH, NODE_PATH, Some(MERGE), |_| {}, denied()),
                expect(
                    Method::PATCH,
                    STATUS_PATH,
                    Some(STRATEGIC),
                    |_| {},
                    denied(),
                ),
                // No event: the status annotation was not written, so the
                // next run will see (and announce) the transition.
            ],
        )
        .await;
    assert_eq!(out.state, State::Forbidden, "{out:?}");
    assert_eq!(out.requests, 3);
    assert_eq!(out.errors.len(), 2);
    assert!(
        out.errors[0].starts_with(
            "forbidden: the identity system:node:worker-1 may not patch node worker-1 — is NodeRestriction or RBAC refusing it?"
        ),
        "{}",
        out.errors[0]
    );
    assert!(
        out.summary.starts_with("forbidden (forbidden: "),
        "{}",
        out.summary
    );
    assert!(
        out.summary.ends_with("wrote nothing; 3 requests"),
        "{}",
        out.summary
    );
}

#[tokio::test]
async fn forbidden_for_another_node_points_at_the_node_name() {
    let node = node_fixture();
    let a = critical();
    let mut run = Run::new(&a);
    run.identity.name = "system:node:worker-2".into();
    let denied = || {
        status(
            403,
            "Forbidden",
            "node \"worker-2\" is not allowed to modify node \"worker-1\"",
        )
    };
    let out = run
        .go(
            t0(),
            vec![
                get_node(&node),
                expect(Method::PATCH, NODE_PATH, Some(MERGE), |_| {}, denied()),
                expect(
                    Method::PATCH,
                    STATUS_PATH,
                    Some(STRATEGIC),
                    |_| {},
                    denied(),
                ),
            ],
        )
        .await;
    assert!(
        out.errors[0].contains("NodeRestriction lets system:node:worker-2 write only node worker-2: wrong --node-name?"),
        "{}",
        out.errors[0]
    );
}

#[tokio::test]
async fn missing_node_says_so() {
    let a = critical();
    let out = Run::new(&a)
        .go(
            t0(),
            vec![expect(
                Method::GET,
                NODE_PATH,
                None,
                |_| {},
                status(404, "NotFound", "nodes \"worker-1\" not found"),
            )],
        )
        .await;
    assert_eq!(out.state, State::NotFound, "{out:?}");
    assert_eq!(out.requests, 1);
    assert!(
        out.summary.starts_with(
            "not found (node worker-1 not found — wrong --node-name? (name from NODE_NAME"
        ),
        "{}",
        out.summary
    );
}

#[tokio::test]
async fn conflict_is_retried() {
    let node = node_fixture();
    let a = critical();
    let ok = |p, ct| {
        expect(
            Method::PATCH,
            p,
            Some(ct),
            |_| {},
            Reply::Json(200, node.clone()),
        )
    };
    let conflict = status(
        409,
        "Conflict",
        "Operation cannot be fulfilled on nodes \"worker-1\": the object has been modified",
    );
    let out = Run::new(&a)
        .go(
            t0(),
            vec![
                get_node(&node),
                expect(Method::PATCH, NODE_PATH, Some(MERGE), |_| {}, conflict),
                ok(NODE_PATH, MERGE),
                ok(STATUS_PATH, STRATEGIC),
                expect(
                    Method::POST,
                    EVENTS_PATH,
                    None,
                    |_| {},
                    Reply::Json(201, json!({"metadata": {}, "involvedObject": {}})),
                ),
            ],
        )
        .await;
    assert_eq!(out.state, State::Updated, "{out:?}");
    assert_eq!(out.requests, 5);
    assert!(out.errors.is_empty());
}

#[tokio::test]
async fn server_errors_are_retried_a_bounded_number_of_times() {
    let node = node_fixture();
    let a = critical();
    let boom = || {
        expect(
            Method::PATCH,
            NODE_PATH,
            Some(MERGE),
            |_| {},
            status(500, "InternalError", "etcdserver: request timed out"),
        )
    };
    let out = Run::new(&a)
        .go(
            t0(),
            vec![
                get_node(&node),
                boom(),
                boom(),
                boom(),
                expect(
                    Method::PATCH,
                    STATUS_PATH,
                    Some(STRATEGIC),
                    |_| {},
                    Reply::Json(200, node.clone()),
                ),
            ],
        )
        .await;
    assert_eq!(out.state, State::Failed, "{out:?}");
    assert_eq!(out.requests, 5);
    assert_eq!(
        out.errors,
        ["cannot patch node worker-1 after 3 attempts: HTTP 500 InternalError: etcdserver: request timed out"]
    );
    assert!(
        out.summary
            .contains("updated condition KubeletHostProblem=True"),
        "{}",
        out.summary
    );
}

#[tokio::test]
async fn unreachable_api_server_is_said() {
    let a = critical();
    let out = Run::new(&a)
        .go(
            t0(),
            vec![expect(Method::GET, NODE_PATH, None, |_| {}, Reply::Broken)],
        )
        .await;
    assert_eq!(out.state, State::Unreachable, "{out:?}");
    assert_eq!(out.requests, 1);
    assert!(
        out.summary
            .starts_with("API server unreachable (cannot get node worker-1: "),
        "{}",
        out.summary
    );
    assert!(
        out.summary.contains("connection refused"),
        "{}",
        out.summary
    );
}

#[tokio::test]
async fn silent_api_server_times_out() {
    let a = critical();
    let mut run = Run::new(&a);
    run.timeout = Duration::from_millis(100);
    let out = run
        .go(
            t0(),
            vec![expect(Method::GET, NODE_PATH, None, |_| {}, Reply::Hang)],
        )
        .await;
    assert_eq!(out.state, State::TimedOut, "{out:?}");
    assert_eq!(out.requests, 1);
    assert!(
        out.summary
            .starts_with("timed out (cannot get node worker-1: no answer within 100ms)"),
        "{}",
        out.summary
    );
}
