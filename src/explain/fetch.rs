//! The API calls `explain` makes: reads only, each bounded by a timeout.
//! `explain nodes` is one LIST of Nodes and one of Leases, whatever the
//! fleet's size.

use std::path::PathBuf;
use std::time::Duration;

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Event, Node, Pod};
use kube::api::{Api, ListParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config};

use super::schedule::Version;

/// Where the cluster is: kubectl's order — `--kubeconfig`, `$KUBECONFIG`,
/// `~/.kube/config`, then the in-cluster service account.
#[derive(Debug, Clone)]
pub struct Target {
    pub kubeconfig: Option<PathBuf>,
    pub context: Option<String>,
    pub timeout: Duration,
}

/// Why an explanation could not be produced: one line for a person.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error(pub String);

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

fn api_error(what: &str, e: kube::Error) -> Error {
    Error(match e {
        kube::Error::Api(s) if s.code == 404 => format!("{what}: not found"),
        kube::Error::Api(s) if s.code == 401 => format!(
            "{what}: unauthorized (401): the credentials were rejected or have expired: {}",
            s.message
        ),
        kube::Error::Api(s) if s.code == 403 => {
            format!("{what}: forbidden (403): {}", s.message)
        }
        kube::Error::Api(s) => format!("{what}: the API server answered {}: {}", s.code, s.message),
        e => format!("{what}: {e}"),
    })
}

/// A client for `t`.
pub async fn client(t: &Target) -> Result<Client, Error> {
    let opts = KubeConfigOptions {
        context: t.context.clone(),
        ..Default::default()
    };
    let mut config = match (&t.kubeconfig, &t.context) {
        (Some(p), _) => {
            let kc = Kubeconfig::read_from(p)
                .map_err(|e| Error(format!("kubeconfig {}: {e}", p.display())))?;
            Config::from_custom_kubeconfig(kc, &opts)
                .await
                .map_err(|e| Error(format!("kubeconfig {}: {e}", p.display())))?
        }
        (None, Some(ctx)) => Config::from_kubeconfig(&opts)
            .await
            .map_err(|e| Error(format!("context {ctx}: {e}")))?,
        (None, None) => Config::infer().await.map_err(|e| {
            Error(format!(
                "no cluster to ask (--kubeconfig, $KUBECONFIG, ~/.kube/config, in-cluster): {e}"
            ))
        })?,
    };
    config.connect_timeout = Some(t.timeout);
    config.read_timeout = Some(t.timeout);
    Client::try_from(config).map_err(|e| Error(format!("client: {e}")))
}

async fn bounded<T>(
    timeout: Duration,
    what: &str,
    f: impl std::future::Future<Output = Result<T, kube::Error>>,
) -> Result<T, Error> {
    match tokio::time::timeout(timeout, f).await {
        Ok(r) => r.map_err(|e| api_error(what, e)),
        Err(_) => Err(Error(format!(
            "{what}: no answer from the API server within {}s",
            timeout.as_secs_f64()
        ))),
    }
}

/// The Node and its Lease (Ok(None) when it has none; Err(why) when it
/// could not be read: the Node is explained all the same).
pub async fn node(
    c: &Client,
    name: &str,
    timeout: Duration,
) -> Result<(Node, Result<Option<Lease>, Error>), Error> {
    let nodes: Api<Node> = Api::all(c.clone());
    let leases: Api<Lease> = Api::namespaced(c.clone(), "kube-node-lease");
    let n = bounded(timeout, &format!("node {name}"), nodes.get(name)).await?;
    let l = bounded(
        timeout,
        &format!("lease kube-node-lease/{name}"),
        leases.get_opt(name),
    )
    .await;
    Ok((n, l))
}

/// Every Node and every node Lease: two LISTs.
pub async fn fleet(c: &Client, timeout: Duration) -> Result<(Vec<Node>, Vec<Lease>), Error> {
    let nodes: Api<Node> = Api::all(c.clone());
    let leases: Api<Lease> = Api::namespaced(c.clone(), "kube-node-lease");
    let n = bounded(timeout, "list nodes", nodes.list(&ListParams::default())).await?;
    let l = bounded(
        timeout,
        "list leases in kube-node-lease",
        leases.list(&ListParams::default()),
    )
    .await?;
    Ok((n.items, l.items))
}

/// What `explain pod` needs: the pod, every Node, the pod's events and the
/// server's version (which picks the scheduler's words).
pub struct PodFacts {
    pub pod: Pod,
    pub nodes: Vec<Node>,
    pub events: Vec<Event>,
    /// Why the events could not be listed, if they could not.
    pub events_error: Option<Error>,
    pub version: Version,
}

pub async fn pod(c: &Client, ns: &str, name: &str, timeout: Duration) -> Result<PodFacts, Error> {
    let pods: Api<Pod> = Api::namespaced(c.clone(), ns);
    let pod = bounded(timeout, &format!("pod {ns}/{name}"), pods.get(name)).await?;
    let nodes: Api<Node> = Api::all(c.clone());
    let nodes = bounded(timeout, "list nodes", nodes.list(&ListParams::default())).await?;
    let events: Api<Event> = Api::namespaced(c.clone(), ns);
    let mut sel = format!("involvedObject.kind=Pod,involvedObject.name={name}");
    if let Some(uid) = &pod.metadata.uid {
        sel += &format!(",involvedObject.uid={uid}");
    }
    // Without its events the pod is explained all the same.
    let events = bounded(
        timeout,
        &format!("events of pod {ns}/{name}"),
        events.list(&ListParams::default().fields(&sel)),
    )
    .await;
    let (events, events_error) = match events {
        Ok(l) => (l.items, None),
        Err(e) => (Vec::new(), Some(e)),
    };
    let info = bounded(timeout, "server version", c.apiserver_version()).await?;
    let version = Version::parse(&info.major, &info.minor).ok_or_else(|| {
        Error(format!(
            "server version {:?}.{:?}: not a Kubernetes version",
            info.major, info.minor
        ))
    })?;
    Ok(PodFacts {
        pod,
        nodes: nodes.items,
        events,
        events_error,
        version,
    })
}
