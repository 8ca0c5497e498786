//! Pure: what the Node should say (annotations, condition, events) given the
//! Node as fetched, and how fetched taints relate to our findings.

use std::collections::BTreeMap;

use jiff::Timestamp;
use k8s_openapi::api::core::v1::{Node, NodeCondition};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use serde_json::json;

use crate::evaluate::{Assessment, Finding, FindingKind, Severity, Status};
use crate::plan::{ActionOutcome, Outcome as Action};

pub const STATUS: &str = "taint-guard.io/status";
pub const REBOOT_SAFE: &str = "taint-guard.io/reboot-safe";
pub const FINDINGS: &str = "taint-guard.io/findings";
/// What will differ after the next boot without keeping the Node from
/// going Ready: a JSON array of `ID:SUBJECT` (`[]` when nothing).
pub const AFTER_REBOOT: &str = "taint-guard.io/after-reboot";
pub const SINCE: &str = "taint-guard.io/since";
/// Who wrote the annotations and the condition (`host/NAME`, `pod/NAME`):
/// one reporter per Node.
pub const REPORTER: &str = "taint-guard.io/reporter";
pub const CONDITION: &str = "KubeletHostProblem";
/// A condition whose heartbeat is older than this means its reporter
/// stopped. The heartbeat is refreshed at the first report after it is
/// `report.heartbeat_mins` (60) old, and the daemon reports at least every
/// `run.report_heartbeat_mins` (20): at most 80 min by default, and the
/// config refuses more than 100 (`config::MAX_HEARTBEAT_AGE_MINS`).
pub const STALE_AFTER: jiff::SignedDuration =
    jiff::SignedDuration::from_mins(crate::config::STALE_AFTER_MINS as i64);
const OK_REASON: &str = "KubeletHostOK";

/// One event to create.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventSpec {
    /// `Normal` or `Warning`.
    pub type_: &'static str,
    pub reason: String,
    pub message: String,
    /// Part of the event's name besides its content: the transition time
    /// for status changes (each one is news), empty for repairs (the same
    /// failure on every run is one event).
    pub key: String,
}

/// The writes the Node needs; all empty in steady state.
#[derive(Debug, Clone, Default)]
pub struct Changes {
    /// Our annotations, all of them, when any differs from the Node's.
    pub annotations: Option<BTreeMap<String, String>>,
    /// Our condition, when it differs from the Node's.
    pub condition: Option<NodeCondition>,
    /// The status transition, sent only once the annotations are written
    /// (they record the status it is a transition from).
    pub transition: Option<EventSpec>,
    /// One per remediation that was done or failed.
    pub actions: Vec<EventSpec>,
}

impl Changes {
    pub fn is_empty(&self) -> bool {
        self.annotations.is_none()
            && self.condition.is_none()
            && self.transition.is_none()
            && self.actions.is_empty()
    }
}

/// Add the reporter annotation to `ch` (one reporter per Node): with the
/// other annotations when they changed, or with the Node's own when only
/// the reporter is new.
pub fn sign(node: &Node, ch: &mut Changes, me: &str) {
    let old = node.metadata.annotations.clone().unwrap_or_default();
    if ch.annotations.is_some() || old.get(REPORTER).map(String::as_str) != Some(me) {
        // Unchanged annotations are the wanted ones: write them with ours.
        let mut ann = ch.annotations.take().unwrap_or_else(|| {
            [STATUS, REBOOT_SAFE, AFTER_REBOOT, FINDINGS, SINCE]
                .iter()
                .filter_map(|k| old.get(*k).map(|v| (k.to_string(), v.clone())))
                .collect()
        });
        ann.insert(REPORTER.into(), me.into());
        ch.annotations = Some(ann);
    }
}

/// The body of the JSON merge patch on `nodes/NAME` that writes our
/// annotations (packaging/kubernetes's admission policy admits exactly
/// this shape: tests/admission.rs).
pub fn annotations_patch(ann: &BTreeMap<String, String>) -> serde_json::Value {
    json!({ "metadata": { "annotations": ann } })
}

/// The body of the strategic merge patch on `nodes/NAME/status` that
/// writes our condition (merged by `type`: kubelet's conditions stay).
pub fn condition_patch(c: &NodeCondition) -> serde_json::Value {
    json!({ "status": { "conditions": [c] } })
}

/// `unit-disabled` → `UnitDisabled`.
pub fn camel(id: &str) -> String {
    id.split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(|w| w[..1].to_ascii_uppercase() + &w[1..])
        .collect()
}

/// Compact JSON array of {id,severity,subject,message,remedy?,occurrences?}, at most `max` bytes:
/// cut at a whole element, with a `{"id":"truncated","message":"N more"}`
/// marker (dropped too if even the marker does not fit).
pub fn findings_json(findings: &[Finding], max: usize) -> String {
    let items: Vec<String> = findings
        .iter()
        .map(|f| {
            let mut v = json!({"id": f.id(), "severity": f.severity, "subject": f.subject(), "message": f.message});
            if let Some(o) = &f.occurrences {
                v["occurrences"] = json!(o);
            }
            // The command line to paste on the node (`explain node` prints it).
            if let Some(r) = &f.remedy {
                v["remedy"] = json!(r);
            }
            v.to_string()
        })
        .collect();
    let join = |xs: &[String]| format!("[{}]", xs.join(","));
    let all = join(&items);
    if all.len() <= max {
        return all;
    }
    for keep in (0..items.len()).rev() {
        let marker = json!({"id": "truncated", "message": format!("{} more", items.len() - keep)});
        let mut xs = items[..keep].to_vec();
        xs.push(marker.to_string());
        let s = join(&xs);
        if s.len() <= max {
            return s;
        }
    }
    "[]".into()
}

/// The condition's status, reason and message.
pub fn condition(a: &Assessment) -> (&'static str, String, String) {
    // Problem polarity: True means kubelet cannot run now or will not after
    // a reboot.
    let status = match a.status {
        Status::Critical => "True",
        Status::Unknown => "Unknown",
        Status::Ok | Status::Warning if a.reboot_safe == Some(false) => "True",
        Status::Ok | Status::Warning if a.reboot_safe.is_none() => "Unknown",
        Status::Ok | Status::Warning => "False",
    };
    // Findings are sorted most severe first.
    let Some(worst) = a.findings.first().filter(|f| f.severity > Severity::Info) else {
        let msg = "kubelet's systemd units and swap are fine, now and after a reboot";
        return (status, OK_REASON.into(), msg.into());
    };
    let mut msg = worst.message.clone();
    if let Some(r) = &worst.remedy {
        msg += &format!("; remedy: {r}");
    }
    let more = a
        .findings
        .iter()
        .filter(|f| f.severity > Severity::Info)
        .count()
        - 1;
    if more > 0 {
        msg += &format!(" (and {more} more: see annotation {FINDINGS})");
    }
    (status, camel(worst.id()), msg)
}

/// What to write to `node` so that it reflects `a` and `actions`.
pub fn changes(
    node: &Node,
    a: &Assessment,
    actions: &[ActionOutcome],
    max_findings_bytes: usize,
    heartbeat: jiff::SignedDuration,
    now: Timestamp,
) -> Changes {
    let now_s = now.to_string();
    let old = node.metadata.annotations.clone().unwrap_or_default();
    let old_status = old.get(STATUS).map(String::as_str);
    let status = a.status.as_str();

    // `since` is kept while the status stays the same.
    let since = match (old_status, old.get(SINCE)) {
        (Some(s), Some(t)) if s == status => t.clone(),
        _ => now_s.clone(),
    };
    let want: BTreeMap<String, String> = [
        (STATUS, status.to_string()),
        (
            REBOOT_SAFE,
            a.reboot_safe
                .map(|b| b.to_string())
                .unwrap_or_else(|| "unknown".into()),
        ),
        (
            AFTER_REBOOT,
            serde_json::to_string(&a.after_reboot).unwrap_or_else(|_| "[]".into()),
        ),
        (FINDINGS, findings_json(&a.findings, max_findings_bytes)),
        (SINCE, since),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    let annotations = want
        .iter()
        .any(|(k, v)| old.get(k) != Some(v))
        .then_some(want);

    let (c_status, reason, message) = condition(a);
    let old_cond = node
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .and_then(|cs| cs.iter().find(|c| c.type_ == CONDITION));
    let same = old_cond.is_some_and(|c| {
        c.status == c_status
            && c.reason.as_deref() == Some(&reason)
            && c.message.as_deref() == Some(&message)
    });
    // A condition whose heartbeat is older than the period is refreshed, so
    // a dead agent shows as a stale heartbeat (STALE_AFTER).
    let stale = old_cond.is_some_and(|c| {
        c.last_heartbeat_time
            .as_ref()
            .is_none_or(|t| now.duration_since(t.0) >= heartbeat)
    });
    let condition = (!same || stale).then(|| NodeCondition {
        type_: CONDITION.into(),
        status: c_status.into(),
        reason: Some(reason.clone()),
        message: Some(message.clone()),
        // Only a change of status is a transition; the heartbeat moves only
        // when we write.
        last_transition_time: Some(Time(now))
            .filter(|_| old_cond.is_none_or(|c| c.status != c_status))
            .or_else(|| old_cond.and_then(|c| c.last_transition_time.clone())),
        last_heartbeat_time: Some(Time(now)),
    });

    // A first report of a healthy node is not news.
    let transition = (old_status != Some(status) && !(old_status.is_none() && status == "ok"))
        .then(|| EventSpec {
            type_: match a.status {
                Status::Critical | Status::Unknown => "Warning",
                Status::Ok | Status::Warning => "Normal",
            },
            reason: if status == "ok" {
                OK_REASON.into()
            } else {
                reason
            },
            message: format!(
                "taint-guard status {} → {status}: {message}",
                old_status.unwrap_or("none")
            ),
            key: now_s.clone(),
        });

    // A daemon-reload that worked is plumbing, not news.
    let actions = actions
        .iter()
        .filter(|x| !(x.id == "daemon-reload" && x.outcome == Action::Done))
        .filter_map(|x| {
            let (type_, suffix) = match x.outcome {
                Action::Done => ("Normal", ""),
                Action::Failed => ("Warning", "Failed"),
                Action::TimedOut => ("Warning", "TimedOut"),
                Action::Planned | Action::Skipped => return None,
            };
            Some(EventSpec {
                type_,
                reason: format!("{}{suffix}", camel(&x.id)),
                message: format!(
                    "taint-guard --fix {} {}: {}: {}",
                    x.id,
                    x.subject,
                    x.outcome.as_str(),
                    x.detail
                ),
                key: String::new(),
            })
        })
        .collect();

    Changes {
        annotations,
        condition,
        transition,
        actions,
    }
}

/// Another reporter that keeps this Node's status (its name), when its
/// heartbeat is fresh: then `me` writes nothing (one reporter per Node).
pub fn other_reporter(node: &Node, me: &str, now: Timestamp) -> Option<String> {
    let who = node.metadata.annotations.as_ref()?.get(REPORTER)?;
    if who == me {
        return None;
    }
    let hb = node
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .and_then(|cs| cs.iter().find(|c| c.type_ == CONDITION))
        .and_then(|c| c.last_heartbeat_time.as_ref())?;
    (now.duration_since(hb.0) < STALE_AFTER).then(|| who.clone())
}

/// The taint an operator puts on a Node that is shut down for good or being
/// drained out of service: nothing should bring its workloads back.
pub const OUT_OF_SERVICE: &str = "node.kubernetes.io/out-of-service";

/// Whether the Node carries the out-of-service taint.
pub fn out_of_service(node: &Node) -> bool {
    node.spec
        .as_ref()
        .and_then(|s| s.taints.as_deref())
        .unwrap_or_default()
        .iter()
        .any(|t| t.key == OUT_OF_SERVICE)
}

/// Lines explaining the lifecycle controller's taints on `node` by our
/// findings about the kubelet unit or swap.
pub fn explain_taints(node: &Node, a: &Assessment, kubelet_unit: Option<&str>) -> Vec<String> {
    let cause = a.findings.iter().find(|f| {
        f.severity == Severity::Critical
            && (f
                .kind
                .unit()
                .is_some_and(|unit| kubelet_unit.is_none_or(|u| unit == u))
                || matches!(f.kind, FindingKind::SwapActive { .. }))
    });
    let Some(cause) = cause else {
        return Vec::new();
    };
    let taints = node
        .spec
        .as_ref()
        .and_then(|s| s.taints.as_deref())
        .unwrap_or_default();
    taints
        .iter()
        .filter_map(|t| {
            let ready = match t.key.as_str() {
                "node.kubernetes.io/unreachable" => "Unknown",
                "node.kubernetes.io/not-ready" => "False",
                _ => return None,
            };
            Some(format!(
                "taint {}:{} is caused by finding {} ({}); deleting the taint will not help — \
                 the node lifecycle controller re-adds it while Ready is {ready}",
                t.key,
                t.effect,
                cause.id(),
                cause.subject()
            ))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f(id: &str, sev: Severity, msg: &str) -> Finding {
        let kind = FindingKind::from_parts(id, crate::finding::KUBELET_UNIT).unwrap();
        Finding::new(kind, sev, msg.into(), None, false)
    }

    #[test]
    fn camel_case() {
        assert_eq!(camel("unit-disabled"), "UnitDisabled");
        assert_eq!(camel("swap-unit-enabled"), "SwapUnitEnabled");
        assert_eq!(camel("reset-failed"), "ResetFailed");
    }

    #[test]
    fn findings_truncate_at_whole_element() {
        let fs: Vec<Finding> = (0..5)
            .map(|i| f("swap-active", Severity::Warning, &format!("swap {i} is on")))
            .collect();
        let all = findings_json(&fs, usize::MAX);
        assert_eq!(
            serde_json::from_str::<Vec<serde_json::Value>>(&all)
                .unwrap()
                .len(),
            5
        );
        for max in [60, 150, 250, all.len() - 1] {
            let s = findings_json(&fs, max);
            assert!(s.len() <= max, "{max}: {s}");
            let v: Vec<serde_json::Value> = serde_json::from_str(&s).unwrap();
            let last = v.last().unwrap();
            assert_eq!(last["id"], "truncated");
            assert_eq!(last["message"], format!("{} more", 5 - (v.len() - 1)));
        }
        assert_eq!(findings_json(&fs, 10), "[]");
    }

    const HOUR: jiff::SignedDuration = jiff::SignedDuration::from_hours(1);

    #[test]
    fn heartbeat_is_refreshed_when_older_than_the_period() {
        let now: Timestamp = "2026-11-28T12:00:00Z".parse().unwrap();
        let a = Assessment {
            status: Status::Ok,
            reboot_safe: Some(true),
            after_reboot: vec![],
            findings: vec![],
        };
        let mut node = Node::default();
        let first = changes(&node, &a, &[], 4096, HOUR, now).condition.unwrap();
        node.status = Some(k8s_openapi::api::core::v1::NodeStatus {
            conditions: Some(vec![first.clone()]),
            ..Default::default()
        });
        // Within the period: nothing to write.
        let later = now + jiff::SignedDuration::from_mins(59);
        assert!(changes(&node, &a, &[], 4096, HOUR, later)
            .condition
            .is_none());
        // Past it: the same condition, a new heartbeat, the old transition.
        let later = now + HOUR;
        let c = changes(&node, &a, &[], 4096, HOUR, later)
            .condition
            .unwrap();
        assert_eq!(c.last_heartbeat_time.unwrap().0, later);
        assert_eq!(c.last_transition_time, first.last_transition_time);
        assert_eq!(
            (c.status, c.reason, c.message),
            (first.status, first.reason, first.message)
        );
    }

    #[test]
    fn condition_polarity() {
        let a = |status, reboot_safe: bool, findings| Assessment {
            status,
            reboot_safe: Some(reboot_safe),
            after_reboot: vec![],
            findings,
        };
        let (s, r, _) = condition(&a(Status::Ok, true, vec![]));
        assert_eq!((s, r.as_str()), ("False", OK_REASON));
        let (s, r, _) = condition(&a(
            Status::Warning,
            true,
            vec![f("swap-active", Severity::Warning, "m")],
        ));
        assert_eq!((s, r.as_str()), ("False", "SwapActive"));
        let (s, r, m) = condition(&a(
            Status::Critical,
            false,
            vec![
                f(
                    "unit-disabled",
                    Severity::Critical,
                    "kubelet.service is not enabled",
                ),
                f("swap-active", Severity::Warning, "m"),
            ],
        ));
        assert_eq!((s, r.as_str()), ("True", "UnitDisabled"));
        assert!(m.starts_with("kubelet.service is not enabled"), "{m}");
        assert!(m.contains("1 more"), "{m}");
        let (s, r, _) = condition(&a(
            Status::Unknown,
            false,
            vec![f("probe-failed", Severity::Unknown, "m")],
        ));
        assert_eq!((s, r.as_str()), ("Unknown", "ProbeFailed"));
    }

    #[test]
    fn since_is_kept_while_status_stays() {
        let mut node = Node::default();
        node.metadata.annotations = Some(
            [
                (STATUS, "warning"),
                (SINCE, "2025-01-01T00:00:00Z"),
                (FINDINGS, "[]"),
            ]
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .into(),
        );
        let a = Assessment {
            status: Status::Warning,
            reboot_safe: Some(true),
            after_reboot: vec![],
            findings: vec![f("swap-active", Severity::Warning, "swap is on")],
        };
        let now: Timestamp = "2025-06-01T00:00:00Z".parse().unwrap();
        let ch = changes(&node, &a, &[], 4096, HOUR, now);
        let ann = ch.annotations.expect("findings changed");
        assert_eq!(ann[SINCE], "2025-01-01T00:00:00Z");
        assert!(ch.transition.is_none(), "same status: no event");
        let a = Assessment {
            status: Status::Critical,
            ..a
        };
        let ann = changes(&node, &a, &[], 4096, HOUR, now)
            .annotations
            .unwrap();
        assert_eq!(ann[SINCE], "2025-06-01T00:00:00Z");
    }
}
