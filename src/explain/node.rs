//! Pure: why a Node is tainted, from the Node, its Lease and the clock.

use jiff::{SignedDuration, Timestamp};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::Node;
use serde::{Deserialize, Serialize};

use super::taints::{self, WellKnown};
use crate::remedy::Remedy;
use crate::report::node as ours;

/// A duration as a person reads it: `45s`, `9m`, `2h 5m`, `3d 4h`.
pub fn ago(d: SignedDuration) -> String {
    let s = d.as_secs().max(0);
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m", s / 60),
        3600..86400 if s % 3600 / 60 == 0 => format!("{}h", s / 3600),
        3600..86400 => format!("{}h {}m", s / 3600, s % 3600 / 60),
        _ => format!("{}d {}h", s / 86400, s % 86400 / 3600),
    }
}

/// One taint and what is known about it.
#[derive(Debug, Clone, Serialize)]
pub struct TaintInfo {
    pub key: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub value: String,
    pub effect: String,
    /// `timeAdded` (set for NoExecute taints only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub time_added: Option<Timestamp>,
    /// None: not a well-known taint ("set by a person or another controller").
    #[serde(skip_serializing_if = "Option::is_none")]
    pub well_known: Option<&'static WellKnown>,
    /// Removing it by hand would not stick: the condition that keeps it
    /// on holds now.
    pub held: bool,
}

impl TaintInfo {
    pub fn id(&self) -> String {
        format!("{}:{}", self.key, self.effect)
    }
}

/// One Node condition.
#[derive(Debug, Clone, Serialize)]
pub struct ConditionInfo {
    #[serde(rename = "type")]
    pub type_: String,
    pub status: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub reason: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub message: String,
    /// `lastTransitionTime`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub since: Option<Timestamp>,
}

/// kubelet's lease in `kube-node-lease`.
#[derive(Debug, Clone, Serialize)]
pub struct LeaseInfo {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub renewed: Option<Timestamp>,
    pub duration_secs: i32,
    /// renewTime is older than the lease's duration: kubelet is not
    /// renewing it.
    pub expired: bool,
}

/// A finding as taint-guard wrote it in `taint-guard.io/findings`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ReportedFinding {
    pub id: String,
    #[serde(default)]
    pub severity: String,
    #[serde(default)]
    pub subject: String,
    #[serde(default)]
    pub message: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remedy: Option<String>,
}

/// taint-guard's report on a Node (its annotations and condition).
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// `host/NAME` or `pod/NAME`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reporter: Option<String>,
    pub status: String,
    pub reboot_safe: String,
    pub findings: Vec<ReportedFinding>,
    /// The findings annotation did not parse.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unreadable: Option<String>,
    /// The KubeletHostProblem condition's heartbeat: when taint-guard last
    /// wrote (it refreshes it hourly, at its first read of the Node past the
    /// hour; it reads every 20 minutes).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub written: Option<Timestamp>,
    /// Older than two hours (`STALE_AFTER`): taint-guard may be down.
    pub stale: bool,
}

/// The remedy of a reported finding, if it is one taint-guard writes: the
/// annotation can be written by anyone who may patch the Node, so a command
/// is shown for a person to run as root only when it is exactly what
/// taint-guard's own remedies look like — `systemctl VERB [--now] UNIT`
/// for the finding's own unit, `swapoff PATH`, or `taint-guard …`, joined
/// by `&&`, in the canonical quoting `remedy` renders (so no `;`, `|`,
/// `$(…)` or other shell syntax can hide in it).
pub fn trusted_remedy(f: &ReportedFinding) -> Option<String> {
    let line = f.remedy.as_deref()?;
    let r: Remedy = serde_json::from_value(serde_json::Value::String(line.into())).ok()?;
    if r.to_string() != line || r.commands().is_empty() {
        return None;
    }
    let unit_ok = |u: &str| u == f.subject && unit_name_ok(u);
    let ok = r.commands().iter().all(|argv| {
        match argv.iter().map(String::as_str).collect::<Vec<_>>()[..] {
            ["systemctl", "add-wants", target, unit] => {
                target.ends_with(".target") && unit_name_ok(target) && unit_ok(unit)
            }
            ["systemctl", verb, ref rest @ ..] => {
                let units: Vec<&str> = rest.iter().copied().filter(|a| *a != "--now").collect();
                let allowed = match verb {
                    "enable" | "start" | "unmask" | "reset-failed" | "restart" => true,
                    // Only ever to stop swap at boot.
                    "mask" | "disable" => f.subject.ends_with(".swap"),
                    "daemon-reload" => units.is_empty(),
                    _ => false,
                };
                allowed && (verb == "daemon-reload" || (units.len() == 1 && unit_ok(units[0])))
            }
            ["swapoff", path] => path.starts_with('/'),
            ["taint-guard", ..] => true,
            _ => false,
        }
    });
    ok.then(|| line.to_string())
}

/// A unit name as systemd accepts one of the kinds taint-guard names.
fn unit_name_ok(u: &str) -> bool {
    let kinds = [
        ".service", ".socket", ".swap", ".target", ".mount", ".timer", ".path",
    ];
    !u.is_empty()
        && u.len() <= 255
        && !u.starts_with('-')
        && kinds.iter().any(|k| u.ends_with(k) && u.len() > k.len())
        && u.chars()
            .all(|c| c.is_ascii_alphanumeric() || ":-_.\\@".contains(c))
}

/// Text from the API for a terminal: control characters (escape sequences
/// a Node's annotations could carry) shown as `?`.
pub fn clean(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() && c != '\n' { '?' } else { c })
        .collect()
}

impl Report {
    /// Whether the report says kubelet's host is fine: status ok and every
    /// finding read.
    pub fn fine(&self) -> bool {
        self.status == "ok"
            && self.unreadable.is_none()
            && !self.findings.iter().any(|f| f.id == "truncated")
    }

    /// What the report says, in a few words, for the chain and the steps.
    pub fn gist(&self) -> String {
        if let Some(f) = self.problems().next() {
            return clean(&f.message);
        }
        if self.fine() {
            return "kubelet's host is fine".into();
        }
        match &self.unreadable {
            Some(u) => format!(
                "status {}, findings unreadable ({})",
                clean(&self.status),
                clean(u)
            ),
            None => format!("status {}", clean(&self.status)),
        }
    }

    /// How to look at the reporter itself, by its kind.
    pub fn look(&self, node: &str) -> String {
        match self.reporter.as_deref() {
            Some(r) if r.starts_with("pod/") => format!(
                "kubectl -n taint-guard get pods -o wide --field-selector spec.nodeName={node}"
            ),
            _ => format!("on {node}: systemctl status taint-guard.service"),
        }
    }

    /// From the Node's annotations; None when taint-guard never reported.
    pub fn of(node: &Node, now: Timestamp) -> Option<Report> {
        let ann = node.metadata.annotations.as_ref()?;
        let status = ann.get(ours::STATUS)?.clone();
        let (findings, unreadable) = match ann.get(ours::FINDINGS) {
            None => (Vec::new(), None),
            Some(s) => match serde_json::from_str::<Vec<ReportedFinding>>(s) {
                Ok(f) => (f, None),
                Err(e) => (Vec::new(), Some(format!("{}: {e}", ours::FINDINGS))),
            },
        };
        let written = node
            .status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .and_then(|cs| cs.iter().find(|c| c.type_ == ours::CONDITION))
            .and_then(|c| c.last_heartbeat_time.as_ref())
            .map(|t| t.0);
        Some(Report {
            reporter: ann.get(ours::REPORTER).cloned(),
            status,
            reboot_safe: ann
                .get(ours::REBOOT_SAFE)
                .cloned()
                .unwrap_or_else(|| "unknown".into()),
            findings,
            unreadable,
            written,
            // No heartbeat at all: a report from before the condition.
            stale: written.is_none_or(|t| now.duration_since(t) > ours::STALE_AFTER),
        })
    }

    /// Findings that are more than information, most severe first (as
    /// written).
    pub fn problems(&self) -> impl Iterator<Item = &ReportedFinding> {
        self.findings
            .iter()
            .filter(|f| f.severity != "info" && f.id != "truncated")
    }
}

/// Everything `explain node` says.
#[derive(Debug, Clone, Serialize)]
pub struct NodeExplanation {
    pub name: String,
    pub taints: Vec<TaintInfo>,
    pub conditions: Vec<ConditionInfo>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lease: Option<LeaseInfo>,
    /// Why the lease could not be read (forbidden, an API error): then
    /// whether kubelet renews it is unknown.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lease_unknown: Option<String>,
    pub unschedulable: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub taint_guard: Option<Report>,
    /// The one thing to do next.
    pub next_step: String,
    /// Why: taint ← condition ← lease ← taint-guard's finding → remedy.
    pub chain: String,
    pub now: Timestamp,
}

impl NodeExplanation {
    pub fn condition(&self, t: &str) -> Option<&ConditionInfo> {
        self.conditions.iter().find(|c| c.type_ == t)
    }

    /// `Ready`'s status (`Unknown` when kubelet never posted one).
    pub fn ready(&self) -> &str {
        self.condition("Ready")
            .map_or("Unknown", |c| c.status.as_str())
    }

    /// The fresh report's first problem with a remedy taint-guard writes.
    fn remedy(&self) -> Option<String> {
        let r = self.taint_guard.as_ref().filter(|r| !r.stale)?;
        r.problems().find_map(trusted_remedy)
    }
}

/// Explain `node` given its Lease (None: none found) at `now`.
pub fn explain(node: &Node, lease: Option<&Lease>, now: Timestamp) -> NodeExplanation {
    explain_with(node, Ok(lease), now)
}

/// Explain `node`; `lease` is Err(why) when it could not be read.
pub fn explain_with(
    node: &Node,
    lease: Result<Option<&Lease>, String>,
    now: Timestamp,
) -> NodeExplanation {
    let (lease, lease_unknown) = match lease {
        Ok(l) => (l, None),
        Err(why) => (None, Some(why)),
    };
    let name = node.metadata.name.clone().unwrap_or_default();
    let conditions: Vec<ConditionInfo> = node
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .map(|cs| {
            cs.iter()
                .map(|c| ConditionInfo {
                    type_: c.type_.clone(),
                    status: c.status.clone(),
                    reason: c.reason.clone().unwrap_or_default(),
                    message: c.message.clone().unwrap_or_default(),
                    since: c.last_transition_time.as_ref().map(|t| t.0),
                })
                .collect()
        })
        .unwrap_or_default();
    let holds = |(t, s): (&str, &str)| {
        conditions.iter().any(|c| c.type_ == t && c.status == s)
            // Ready missing entirely is Unknown too.
            || (t == "Ready" && s == "Unknown" && !conditions.iter().any(|c| c.type_ == "Ready"))
    };
    let spec = node.spec.as_ref();
    let taints = spec
        .and_then(|s| s.taints.as_ref())
        .map(|ts| {
            ts.iter()
                .map(|t| {
                    let wk = taints::lookup(&t.key);
                    TaintInfo {
                        key: t.key.clone(),
                        value: t.value.clone().unwrap_or_default(),
                        effect: t.effect.clone(),
                        time_added: t.time_added.as_ref().map(|x| x.0),
                        well_known: wk,
                        held: wk.and_then(|w| w.held_by).is_some_and(holds),
                    }
                })
                .collect()
        })
        .unwrap_or_default();
    let lease = lease.and_then(|l| l.spec.as_ref()).map(|s| {
        let renewed = s.renew_time.as_ref().map(|t| t.0);
        let duration_secs = s.lease_duration_seconds.unwrap_or(40);
        LeaseInfo {
            renewed,
            duration_secs,
            expired: renewed.is_none_or(|r| {
                now.duration_since(r) > SignedDuration::from_secs(duration_secs.into())
            }),
        }
    });
    let mut e = NodeExplanation {
        name,
        taints,
        conditions,
        lease,
        lease_unknown,
        unschedulable: spec.and_then(|s| s.unschedulable).unwrap_or(false),
        taint_guard: Report::of(node, now),
        next_step: String::new(),
        chain: String::new(),
        now,
    };
    e.next_step = next_step(&e);
    e.chain = chain(&e);
    e
}

/// The one thing to do next, most specific first.
fn next_step(e: &NodeExplanation) -> String {
    let n = &e.name;
    let ready = e.ready();
    let lease_age = e
        .lease
        .as_ref()
        .and_then(|l| l.renewed)
        .map(|r| ago(e.now.duration_since(r)));
    if let Some(r) = e.remedy() {
        return if ready == "True" {
            format!("on {n}, before its next reboot: {r}")
        } else {
            format!("on {n}: {r}")
        };
    }
    if ready != "True" {
        if let Some(why) = &e.lease_unknown {
            return format!(
                "{n} is Ready={ready} and its lease could not be read ({why}): whether kubelet runs is unknown from here; on {n}: systemctl status kubelet.service; journalctl -u kubelet.service -b"
            );
        }
        let kubelet_alive = e.lease.as_ref().is_some_and(|l| !l.expired);
        if kubelet_alive {
            let c = e.condition("Ready");
            let why = c
                .map(|c| format!("{} {}", c.reason, c.message))
                .unwrap_or_default();
            return format!(
                "kubelet on {n} is running (lease renewed {} ago) but reports Ready={ready}: {}; on {n}: journalctl -u kubelet.service -b",
                lease_age.as_deref().unwrap_or("?"),
                why.trim()
            );
        }
        let report = match &e.taint_guard {
            None => "no taint-guard report on this node".to_string(),
            Some(r) if r.stale => format!(
                "taint-guard's report is {} old: taint-guard may be down too",
                r.written
                    .map(|w| ago(e.now.duration_since(w)))
                    .unwrap_or_else(|| "of unknown age".into())
            ),
            Some(r) if r.fine() => "taint-guard reports nothing wrong with kubelet's host".into(),
            Some(r) => format!("taint-guard's report: {}", r.gist()),
        };
        let lease = match (&e.lease, lease_age) {
            (None, _) => "has no lease in kube-node-lease".to_string(),
            (Some(_), Some(a)) => format!("is not renewing its lease (last renewed {a} ago)"),
            (Some(_), None) => "has never renewed its lease".to_string(),
        };
        return format!(
            "kubelet on {n} {lease} and {report}: is {n} powered on and on the network? On {n}: systemctl status kubelet.service; journalctl -u kubelet.service -b"
        );
    }
    if e.unschedulable {
        return format!("{n} is cordoned: kubectl uncordon {n} once its maintenance is over");
    }
    if let Some(t) = e
        .taints
        .iter()
        .find(|t| t.well_known.is_some_and(|w| w.held_by.is_some()) && !t.held)
    {
        return format!(
            "{} is on {n} but its condition no longer holds: the node lifecycle controller removes it within seconds",
            t.id()
        );
    }
    // A taint that keeps pods off a Ready node while its condition holds
    // (disk, memory or PID pressure, the network, an uninitialised node).
    if let Some(t) = e.taints.iter().find(|t| {
        t.effect != "PreferNoSchedule"
            && t.well_known.is_some_and(|w| w.broken)
            && (t.held || t.well_known.is_some_and(|w| w.held_by.is_none()))
    }) {
        let w = t.well_known.expect("checked");
        return format!(
            "{} keeps pods off {n}: set by {} on {}; it is {}",
            t.id(),
            w.set_by,
            w.when,
            w.removed
        );
    }
    if let Some(r) = e.taint_guard.as_ref().filter(|r| r.stale) {
        return format!(
            "{n} is Ready; taint-guard's report is {} old: is taint-guard running? {}",
            r.written
                .map(|w| ago(e.now.duration_since(w)))
                .unwrap_or_else(|| "of unknown age".into()),
            r.look(n)
        );
    }
    if let Some(r) = e.taint_guard.as_ref().filter(|r| !r.fine()) {
        return format!(
            "{n} is Ready; taint-guard's report: {} — on {n}: taint-guard check",
            r.gist()
        );
    }
    format!("nothing to fix: {n} is Ready")
}

/// `taint ← condition ← lease ← taint-guard's finding → remedy`, from the
/// worst scheduling taint; empty when the node has none.
fn chain(e: &NodeExplanation) -> String {
    let Some(t) = e
        .taints
        .iter()
        .filter(|t| t.effect != "PreferNoSchedule")
        .max_by_key(|t| (t.held, t.effect == "NoExecute"))
    else {
        return String::new();
    };
    let mut parts = vec![match t.time_added {
        Some(at) => format!(
            "{} since {} ({} ago)",
            t.id(),
            at,
            ago(e.now.duration_since(at))
        ),
        None => t.id(),
    }];
    if let Some((ct, _)) = t.well_known.and_then(|w| w.held_by) {
        if let Some(c) = e.condition(ct) {
            parts.push(format!("{}={} {:?}", c.type_, c.status, c.message));
        }
        if ct == "Ready" {
            match &e.lease {
                _ if e.lease_unknown.is_some() => parts.push("lease unreadable".into()),
                Some(l) if l.expired => parts.push(match l.renewed {
                    Some(r) => format!("lease not renewed for {}", ago(e.now.duration_since(r))),
                    None => "lease never renewed".into(),
                }),
                Some(_) => parts.push("lease renewed: kubelet is running".into()),
                None => parts.push("no lease in kube-node-lease".into()),
            }
        }
    } else if let Some(w) = t.well_known {
        parts.push(format!("set by {}", w.set_by));
    } else {
        parts.push("set by a person or another controller".into());
    }
    match &e.taint_guard {
        Some(r) => {
            let age = r
                .written
                .map(|w| format!(" ({} ago)", ago(e.now.duration_since(w))))
                .unwrap_or_default();
            let what = r.gist();
            parts.push(format!("taint-guard on {}{age}: {what}", e.name));
        }
        None => parts.push("no taint-guard report".into()),
    }
    format!("{} → {}", parts.join(" ← "), e.next_step)
}
