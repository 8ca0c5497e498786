//! `taint-guard explain`: why a Node is tainted, why a pod is not
//! scheduled, which nodes are safe to reboot. Read-only.
//!
//! Pure here (node, pod, fleet, schedule, taints): each takes API objects
//! as fetched and the clock. `fetch` makes the calls.

pub mod fetch;
pub mod node;
pub mod schedule;
pub mod taints;
#[cfg(test)]
mod tests;

use jiff::Timestamp;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Event, Node, Pod};
use serde::Serialize;

use node::{ago, NodeExplanation, Report};
use schedule::{Reason, Version};

/// One node's verdict for a pod.
#[derive(Debug, Clone, Serialize)]
pub struct NodeVerdict {
    pub node: String,
    /// None: passes every filter evaluated here.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<Reason>,
    /// The scheduler's words for `reason`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub words: Option<String>,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub advice: String,
    /// The node itself is broken (a not-ready, unreachable or pressure
    /// taint): fix the node, do not tolerate it.
    pub broken: bool,
}

/// The scheduler's latest word on a pod (its FailedScheduling event).
#[derive(Debug, Clone, Serialize)]
pub struct SchedulerEvent {
    pub message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_seen: Option<Timestamp>,
    pub count: i32,
}

/// Everything `explain pod` says.
#[derive(Debug, Clone, Serialize)]
pub struct PodExplanation {
    pub namespace: String,
    pub name: String,
    pub phase: String,
    /// The node it is bound to.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bound_to: Option<String>,
    /// Kubernetes version whose scheduler's words are used.
    pub version: Version,
    pub nodes: Vec<NodeVerdict>,
    /// The tally in the scheduler's words, when every node is rejected by
    /// a filter evaluated here (otherwise the scheduler's own reasons for
    /// the rest cannot be known from here) and its words are known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tally: Option<String>,
    /// Why there is no tally, when there is none.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub no_tally: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub event: Option<SchedulerEvent>,
    /// `tally`'s filter part equals the event's (whitespace normalised;
    /// what PostFilter adds after the first ". " is not compared).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub matches_event: Option<bool>,
    pub next_step: String,
    pub now: Timestamp,
}

/// The newest of an event's times.
fn event_time(e: &Event) -> Option<Timestamp> {
    [
        e.series
            .as_ref()
            .and_then(|s| s.last_observed_time.as_ref())
            .map(|t| t.0),
        e.last_timestamp.as_ref().map(|t| t.0),
        e.event_time.as_ref().map(|t| t.0),
        e.first_timestamp.as_ref().map(|t| t.0),
        e.metadata.creation_timestamp.as_ref().map(|t| t.0),
    ]
    .into_iter()
    .flatten()
    .max()
}

/// The pod's latest FailedScheduling event among `events`.
pub fn latest_failed_scheduling(events: &[Event]) -> Option<SchedulerEvent> {
    events
        .iter()
        .filter(|e| e.reason.as_deref() == Some("FailedScheduling"))
        .max_by_key(|e| event_time(e))
        .map(|e| SchedulerEvent {
            message: e.message.clone().unwrap_or_default(),
            last_seen: event_time(e),
            count: e
                .series
                .as_ref()
                .and_then(|s| s.count)
                .or(e.count)
                .unwrap_or(1),
        })
}

/// What to tell about one rejecting node.
fn advice(node: &str, r: &Reason, prog: &str) -> (String, bool) {
    match r {
        Reason::NodeUnschedulable => (
            format!("{node} is cordoned: kubectl uncordon {node} once its maintenance is over"),
            false,
        ),
        Reason::NodeName => ("the pod's spec.nodeName names another node".into(), false),
        Reason::NodeAffinity => (
            "the pod's nodeSelector or required node affinity excludes this node".into(),
            false,
        ),
        Reason::TaintToleration { key, effect, value } => match taints::lookup(key) {
            Some(w) if w.broken => (
                format!(
                    "{node} is broken ({key}:{effect}, set by {} on {}): fix the node, do not add a toleration — {prog} explain node {node}",
                    w.set_by, w.when
                ),
                true,
            ),
            Some(w) if key.starts_with("node-role.kubernetes.io/") => (
                format!(
                    "{node} is a control-plane node ({key}:{effect}, set by {}): workloads stay off it by design",
                    w.set_by
                ),
                false,
            ),
            Some(w) => (format!("{key}:{effect} set by {}: {}", w.set_by, w.when), false),
            None => {
                let tol = if value.is_empty() {
                    format!("{{key: {key}, operator: Exists, effect: {effect}}}")
                } else {
                    format!("{{key: {key}, operator: Equal, value: {value}, effect: {effect}}}")
                };
                (
                    format!("{key}:{effect} was set by a person or another controller: if this pod belongs on {node}, give it the toleration {tol}"),
                    false,
                )
            }
        },
    }
}

/// Explain `pod` against `nodes` as the scheduler of version `v` filters;
/// `prog` is how the person runs us (`taint-guard`, `kubectl taint-guard`).
pub fn explain_pod(
    pod: &Pod,
    nodes: &[Node],
    events: &[Event],
    v: Version,
    prog: &str,
    now: Timestamp,
) -> PodExplanation {
    let spec = pod.spec.as_ref();
    let bound_to = spec
        .and_then(|s| s.node_name.clone())
        .filter(|n| !n.is_empty());
    let mut verdicts: Vec<NodeVerdict> = nodes
        .iter()
        .map(|n| {
            let name = n.metadata.name.clone().unwrap_or_default();
            let reason = schedule::filter(pod, n, v);
            let (mut advice, mut broken) = reason
                .as_ref()
                .map(|r| advice(&name, r, prog))
                .unwrap_or_default();
            // Fixing a broken node helps this pod only if nothing else
            // rejects it there.
            if broken && schedule::rejected_besides_taints(pod, n) {
                broken = false;
                advice += " (fixing it would not place this pod: its node name, selector, affinity or the cordon rejects the node too)";
            }
            NodeVerdict {
                words: reason.as_ref().map(|r| r.words(v)),
                node: name,
                reason,
                advice,
                broken,
            }
        })
        .collect();
    verdicts.sort_by(|a, b| a.node.cmp(&b.node));
    let reasons: Vec<Reason> = verdicts.iter().filter_map(|v| v.reason.clone()).collect();
    let all_rejected = !nodes.is_empty() && reasons.len() == nodes.len();
    let never = spec.and_then(|s| s.preemption_policy.as_deref()) == Some("Never");
    let scheduler = spec
        .and_then(|s| s.scheduler_name.as_deref())
        .unwrap_or("default-scheduler");
    let gated = spec
        .and_then(|s| s.scheduling_gates.as_ref())
        .is_some_and(|g| !g.is_empty());
    let no_tally = if bound_to.is_some() {
        Some("the pod is bound".to_string())
    } else if nodes.is_empty() {
        Some("the cluster has no Nodes".into())
    } else if gated {
        Some(
            "the pod has schedulingGates: the scheduler does not try it until they are removed"
                .into(),
        )
    } else if scheduler != "default-scheduler" {
        Some(format!(
            "the pod asks for scheduler {scheduler:?}, whose filters are its own"
        ))
    } else if !v.words_known() {
        Some(format!(
            "kube-scheduler {}.{}'s words are not known to taint-guard (known: 1.20 to 1.33); the reasons per node below use the nearest known version's",
            v.major, v.minor
        ))
    } else if schedule::prefiltered_by_name(pod, v) {
        Some("the pod's matchFields metadata.name affinity makes this scheduler pre-filter nodes, which it words differently".into())
    } else if !all_rejected {
        Some("some nodes pass every filter evaluated here: the scheduler rejects them for something else (resources, ports, volumes, pod affinity, topology spread)".into())
    } else {
        None
    };
    let tally = no_tally
        .is_none()
        .then(|| schedule::tally(&reasons, nodes.len(), v, never));
    let event = latest_failed_scheduling(events);
    let matches_event = match (&tally, &event) {
        (Some(t), Some(e)) => Some(schedule::filter_part(t) == schedule::filter_part(&e.message)),
        _ => None,
    };
    let ns = pod.metadata.namespace.clone().unwrap_or_default();
    let name = pod.metadata.name.clone().unwrap_or_default();
    let broken: Vec<&str> = verdicts
        .iter()
        .filter(|v| v.broken)
        .map(|v| v.node.as_str())
        .collect();
    let passing: Vec<&str> = verdicts
        .iter()
        .filter(|v| v.reason.is_none())
        .map(|v| v.node.as_str())
        .collect();
    let next_step = if let Some(n) = &bound_to {
        format!("nothing to do for scheduling: {ns}/{name} is bound to {n}")
    } else if nodes.is_empty() {
        "no Nodes in the cluster: join a node".into()
    } else if !broken.is_empty() {
        format!(
            "fix the node{} {}: {prog} explain node {}",
            if broken.len() > 1 { "s" } else { "" },
            broken.join(", "),
            broken[0]
        )
    } else if !passing.is_empty() {
        format!(
            "{} pass{} the filters evaluated here (taints, cordon, node name, node selector and affinity): the scheduler rejects them for something else (resources, ports, volumes, pod affinity, topology spread): read its event",
            passing.join(", "),
            if passing.len() == 1 { "es" } else { "" }
        )
    } else {
        "no node can take this pod as it is: change the pod (its tolerations, nodeSelector or affinity) or the nodes, as the advice per node says".into()
    };
    PodExplanation {
        namespace: ns,
        name,
        phase: pod
            .status
            .as_ref()
            .and_then(|s| s.phase.clone())
            .unwrap_or_default(),
        bound_to,
        version: v,
        nodes: verdicts,
        tally,
        no_tally,
        event,
        matches_event,
        next_step,
        now,
    }
}

/// One line of `explain nodes`.
#[derive(Debug, Clone, Serialize)]
pub struct FleetRow {
    pub name: String,
    pub ready: String,
    /// `true`, `false` or `unknown` from taint-guard's report; `no-report`
    /// or `stale` when there is none to trust.
    pub reboot_safe: String,
    pub status: String,
    /// Age of taint-guard's report.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub report_age_secs: Option<i64>,
    pub taints: Vec<String>,
    /// One line per finding worth a look.
    pub findings: Vec<String>,
    /// 0 worst.
    #[serde(skip)]
    rank: u8,
}

/// Every Node, worst first, from one LIST of Nodes and one of Leases.
pub fn fleet(nodes: &[Node], leases: &[Lease], now: Timestamp) -> Vec<FleetRow> {
    let by_name: std::collections::HashMap<&str, &Lease> = leases
        .iter()
        .filter_map(|l| Some((l.metadata.name.as_deref()?, l)))
        .collect();
    let mut rows: Vec<FleetRow> = nodes
        .iter()
        .map(|n| {
            let name = n.metadata.name.clone().unwrap_or_default();
            let lease = by_name.get(name.as_str()).copied();
            let e: NodeExplanation = node::explain(n, lease, now);
            let report: Option<&Report> = e.taint_guard.as_ref();
            let (reboot_safe, status) = match report {
                None => ("no-report".to_string(), "no-report".to_string()),
                Some(r) if r.stale => ("stale".into(), r.status.clone()),
                Some(r) => (r.reboot_safe.clone(), r.status.clone()),
            };
            let rank = match (reboot_safe.as_str(), status.as_str()) {
                ("false", _) | (_, "critical") => 0,
                ("no-report" | "stale", _) => 1,
                ("unknown", _) | (_, "unknown") => 2,
                (_, "warning") => 3,
                _ => 4,
            };
            let findings = report
                .map(|r| {
                    let mut v: Vec<String> = r
                        .problems()
                        .map(|f| format!("{} {}: {}", f.id, f.subject, f.message))
                        .collect();
                    v.extend(r.unreadable.clone());
                    v
                })
                .unwrap_or_default();
            FleetRow {
                ready: e.ready().to_string(),
                reboot_safe,
                status,
                report_age_secs: report
                    .and_then(|r| r.written)
                    .map(|w| now.duration_since(w).as_secs()),
                taints: e.taints.iter().map(|t| t.id()).collect(),
                findings,
                rank,
                name,
            }
        })
        .collect();
    rows.sort_by(|a, b| {
        (a.rank, a.ready == "True", &a.name).cmp(&(b.rank, b.ready == "True", &b.name))
    });
    rows
}

/// `9m` for a fleet row's report age.
pub fn report_age(r: &FleetRow) -> String {
    r.report_age_secs
        .map(|s| ago(jiff::SignedDuration::from_secs(s)))
        .unwrap_or_else(|| "-".into())
}
