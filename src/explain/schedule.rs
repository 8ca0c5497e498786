//! Pure: the scheduler's node filters that a taint or a label decides, in
//! the scheduler's order and words, and its "0/N nodes are available"
//! tally, as kube-scheduler's source has them per version (v1.20's are
//! checked word for word against the real v1.20.2 scheduler in
//! tests/cluster.rs; later versions' from their source).
//!
//! Filters, in kube-scheduler's default order since v1.20 (PR #95539), of
//! which only the ones marked are evaluated here — the rest need the
//! scheduler's cache (pods, volumes, ports), so a node they would reject
//! shows as "passes the filters evaluated here":
//! NodeUnschedulable ✓, NodeName ✓, TaintToleration ✓, NodeAffinity ✓
//! (nodeSelector and required affinity), NodePorts, NodeResourcesFit,
//! VolumeRestrictions, the volume filters, PodTopologySpread,
//! InterPodAffinity. Before v1.20 NodeAffinity came before TaintToleration.
//! The scheduler stops at a node's first failing filter, so each node has
//! one reason here.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    Node, NodeSelectorRequirement, NodeSelectorTerm, Pod, Taint, Toleration,
};
use serde::Serialize;

/// The API server's version, which picks the scheduler's words.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct Version {
    pub major: u32,
    pub minor: u32,
}

impl Version {
    /// From `/version`'s `major` and `minor` (`"1"`, `"20"` or `"20+"`).
    pub fn parse(major: &str, minor: &str) -> Option<Version> {
        let num = |s: &str| s.trim_end_matches('+').parse::<u32>().ok();
        Some(Version {
            major: num(major)?,
            minor: num(minor)?,
        })
    }

    /// The versions whose scheduler words this module knows from their
    /// source: 1.20 (checked against the real one) to 1.33. Before 1.20 other
    /// filters ran first; from 1.34 DynamicResourceAllocation adds its
    /// PostFilter's words and the taint reason changed within 1.34's patch
    /// releases.
    pub fn words_known(self) -> bool {
        self.at_least(20) && !self.at_least(34)
    }

    fn at_least(self, minor: u32) -> bool {
        self.major > 1 || (self.major == 1 && self.minor >= minor)
    }
}

/// Why a filter rejects a node. Typed; [`Reason::words`] gives the
/// scheduler's text for a version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "filter", rename_all = "PascalCase")]
pub enum Reason {
    /// `spec.unschedulable` (cordoned) and no toleration of
    /// `node.kubernetes.io/unschedulable:NoSchedule`.
    NodeUnschedulable,
    /// `spec.nodeName` names another node.
    NodeName,
    /// nodeSelector or required node affinity does not match.
    NodeAffinity,
    /// The first NoSchedule/NoExecute taint, in the node's order, that no
    /// toleration tolerates.
    TaintToleration {
        key: String,
        value: String,
        effect: String,
    },
}

impl Reason {
    /// The scheduler's reason text (FailedScheduling's tally) in `v`.
    pub fn words(&self, v: Version) -> String {
        match self {
            Reason::NodeUnschedulable => "node(s) were unschedulable".into(),
            // PR #97454 (1.21).
            Reason::NodeName if v.at_least(21) => {
                "node(s) didn't match the requested node name".into()
            }
            Reason::NodeName => "node(s) didn't match the requested hostname".into(),
            Reason::NodeAffinity if v.at_least(22) => {
                "node(s) didn't match Pod's node affinity/selector".into()
            }
            Reason::NodeAffinity if v.at_least(21) => {
                "node(s) didn't match Pod's node affinity".into()
            }
            Reason::NodeAffinity => "node(s) didn't match node selector".into(),
            // PR #134740 (1.35, and 1.34's later patches).
            Reason::TaintToleration { .. } if v.at_least(35) => {
                "node(s) had untolerated taint(s)".into()
            }
            // PR #109119 (1.24).
            Reason::TaintToleration { key, value, .. } if v.at_least(24) => {
                format!("node(s) had untolerated taint {{{key}: {value}}}")
            }
            Reason::TaintToleration { key, value, .. } => {
                format!("node(s) had taint {{{key}: {value}}}, that the pod didn't tolerate")
            }
        }
    }
}

/// k8s.io/api core/v1 `Toleration.ToleratesTaint`.
pub fn tolerates(t: &Toleration, taint: &Taint) -> bool {
    let effect = t.effect.as_deref().unwrap_or("");
    if !effect.is_empty() && effect != taint.effect {
        return false;
    }
    let key = t.key.as_deref().unwrap_or("");
    if !key.is_empty() && key != taint.key {
        return false;
    }
    match t.operator.as_deref().unwrap_or("") {
        // An empty operator means Equal.
        "" | "Equal" => t.value.as_deref().unwrap_or("") == taint.value.as_deref().unwrap_or(""),
        "Exists" => true,
        _ => false,
    }
}

/// The first taint with a scheduling effect that no toleration tolerates.
pub fn untolerated<'a>(taints: &'a [Taint], tolerations: &[Toleration]) -> Option<&'a Taint> {
    taints
        .iter()
        .filter(|t| t.effect == "NoSchedule" || t.effect == "NoExecute")
        .find(|t| !tolerations.iter().any(|tol| tolerates(tol, t)))
}

/// One `matchExpressions` requirement against a node's labels, as
/// `labels.Requirement.Matches`; an invalid requirement matches nothing
/// (the scheduler skips a term it cannot turn into a selector).
fn requirement_matches(r: &NodeSelectorRequirement, labels: &BTreeMap<String, String>) -> bool {
    let values = r.values.as_deref().unwrap_or_default();
    let got = labels.get(&r.key);
    let int = |s: &str| s.parse::<i64>().ok();
    match r.operator.as_str() {
        "In" => !values.is_empty() && got.is_some_and(|v| values.contains(v)),
        "NotIn" => !values.is_empty() && got.is_none_or(|v| !values.contains(v)),
        "Exists" => values.is_empty() && got.is_some(),
        "DoesNotExist" => values.is_empty() && got.is_none(),
        "Gt" | "Lt" => {
            let ([want], Some(have)) = (values, got) else {
                return false;
            };
            match (int(have), int(want)) {
                (Some(h), Some(w)) if r.operator == "Gt" => h > w,
                (Some(h), Some(w)) => h < w,
                _ => false,
            }
        }
        _ => false,
    }
}

/// `matchFields`: only `metadata.name`, with In or NotIn.
fn field_matches(r: &NodeSelectorRequirement, name: &str) -> bool {
    if r.key != "metadata.name" {
        return false;
    }
    let fields = BTreeMap::from([("metadata.name".to_string(), name.to_string())]);
    matches!(r.operator.as_str(), "In" | "NotIn") && requirement_matches(r, &fields)
}

/// Terms are ORed, a term's requirements ANDed; a term with neither
/// expressions nor fields matches nothing, and so does an empty list.
pub fn terms_match(
    terms: &[NodeSelectorTerm],
    labels: &BTreeMap<String, String>,
    name: &str,
) -> bool {
    terms.iter().any(|t| {
        let exprs = t.match_expressions.as_deref().unwrap_or_default();
        let fields = t.match_fields.as_deref().unwrap_or_default();
        (!exprs.is_empty() || !fields.is_empty())
            && exprs.iter().all(|r| requirement_matches(r, labels))
            && fields.iter().all(|r| field_matches(r, name))
    })
}

/// nodeSelector (every label equal) and required node affinity.
pub fn affinity_matches(pod: &Pod, node: &Node) -> bool {
    let empty = BTreeMap::new();
    let labels = node.metadata.labels.as_ref().unwrap_or(&empty);
    let name = node.metadata.name.as_deref().unwrap_or("");
    let Some(spec) = &pod.spec else { return true };
    if let Some(sel) = &spec.node_selector {
        if sel.iter().any(|(k, v)| labels.get(k) != Some(v)) {
            return false;
        }
    }
    let required = spec
        .affinity
        .as_ref()
        .and_then(|a| a.node_affinity.as_ref())
        .and_then(|n| {
            n.required_during_scheduling_ignored_during_execution
                .as_ref()
        });
    required.is_none_or(|r| terms_match(&r.node_selector_terms, labels, name))
}

/// The first filter, in the scheduler's order, that rejects `node` for
/// `pod`; None when every filter evaluated here passes.
pub fn filter(pod: &Pod, node: &Node, v: Version) -> Option<Reason> {
    let empty = Vec::new();
    let spec = pod.spec.as_ref();
    let tolerations = spec.and_then(|s| s.tolerations.as_ref()).unwrap_or(&empty);
    let nspec = node.spec.as_ref();
    let taints = nspec.and_then(|s| s.taints.as_deref()).unwrap_or_default();
    let cordoned = nspec.and_then(|s| s.unschedulable).unwrap_or(false);
    let unsched = Taint {
        key: "node.kubernetes.io/unschedulable".into(),
        effect: "NoSchedule".into(),
        ..Default::default()
    };
    if cordoned && !tolerations.iter().any(|t| tolerates(t, &unsched)) {
        return Some(Reason::NodeUnschedulable);
    }
    if let Some(want) = spec
        .and_then(|s| s.node_name.as_deref())
        .filter(|n| !n.is_empty())
    {
        if node.metadata.name.as_deref() != Some(want) {
            return Some(Reason::NodeName);
        }
    }
    let taint = || {
        untolerated(taints, tolerations).map(|t| Reason::TaintToleration {
            key: t.key.clone(),
            value: t.value.clone().unwrap_or_default(),
            effect: t.effect.clone(),
        })
    };
    let affinity = || (!affinity_matches(pod, node)).then_some(Reason::NodeAffinity);
    if v.at_least(20) {
        taint().or_else(affinity)
    } else {
        affinity().or_else(taint)
    }
}

/// Whether a filter other than TaintToleration rejects `node` (cordon,
/// node name, selector or affinity).
pub fn rejected_besides_taints(pod: &Pod, node: &Node) -> bool {
    let mut untainted = node.clone();
    if let Some(s) = untainted.spec.as_mut() {
        s.taints = None;
    }
    filter(
        pod,
        &untainted,
        Version {
            major: 1,
            minor: 20,
        },
    )
    .is_some()
}

/// The scheduler's FitError message when every node is rejected by a
/// filter that says UnschedulableAndUnresolvable (all of the ones here):
/// `0/N nodes are available: ` then "COUNT reason" per distinct reason,
/// sorted as strings (Go's sort.Strings, bytewise), joined by ", ", ending
/// in "."; from 1.24 DefaultPreemption's verdict follows ("preemption: …",
/// with an extra "." in 1.26–1.29).
pub fn tally(reasons: &[Reason], all_nodes: usize, v: Version, preempt_never: bool) -> String {
    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
    for r in reasons {
        *counts.entry(r.words(v)).or_default() += 1;
    }
    let mut items: Vec<String> = counts.iter().map(|(w, n)| format!("{n} {w}")).collect();
    items.sort();
    let mut msg = format!("0/{all_nodes} nodes are available: {}.", items.join(", "));
    if v.at_least(24) {
        let post = if preempt_never {
            "preemption: not eligible due to preemptionPolicy=Never.".to_string()
        } else {
            format!(
                "preemption: 0/{all_nodes} nodes are available: {all_nodes} Preemption is not helpful for scheduling."
            )
        };
        msg += &format!(" {post}");
        if v.at_least(26) && !v.at_least(30) {
            msg += ".";
        }
    }
    msg
}

/// The filter part of a FailedScheduling message: up to the first ". "
/// (what follows is PostFilter's — preemption's — verdict).
pub fn filter_part(msg: &str) -> String {
    let n = normalise(msg);
    match n.find(". ") {
        Some(i) => n[..=i].to_string(),
        None => n,
    }
}

/// Whether newer schedulers pre-filter nodes by the pod's required
/// `matchFields metadata.name` affinity (as every DaemonSet pod has), and
/// word the other nodes differently.
pub fn prefiltered_by_name(pod: &Pod, v: Version) -> bool {
    v.at_least(24)
        && pod
            .spec
            .as_ref()
            .and_then(|s| s.affinity.as_ref())
            .and_then(|a| a.node_affinity.as_ref())
            .and_then(|n| {
                n.required_during_scheduling_ignored_during_execution
                    .as_ref()
            })
            .is_some_and(|r| {
                r.node_selector_terms
                    .iter()
                    .any(|t| t.match_fields.as_ref().is_some_and(|f| !f.is_empty()))
            })
}

/// Collapse runs of whitespace, for comparing with an event's message.
pub fn normalise(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}
