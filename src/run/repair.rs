//! The daemon's repair rules, on top of the plan `check --fix` makes: no
//! start before the grace period, nothing while the Node is out of service,
//! and a backoff per action. Pure: a plan in, a plan out, plus when to look
//! again. Decisions about *what* to repair stay in `plan`.

use std::collections::BTreeMap;
use std::time::Duration;

use tokio::time::Instant;

use crate::config::{Config, FixPolicy};
use crate::evaluate::{Assessment, FindingKind};
use crate::plan::{Action, Plan, Skip, Step};
use crate::report::node::OUT_OF_SERVICE;

use super::schedule::{Attempt, RepairBackoff};

/// The `[fix]` policy as the daemon applies it.
pub fn fix_policy(cfg: &Config) -> FixPolicy {
    let mut p = cfg.fix.clone();
    // Never a masked unit: a mask is a person's decision, whatever
    // fix.unmask says for a person running check --fix.
    p.unmask = false;
    p.start_stopped = cfg.run.start_stopped;
    // Queue the start and watch: the result arrives as an event, and the
    // loop (and the watchdog) never wait on a start job.
    p.wait_for_start = false;
    p
}

/// The key an action is backed off under: `start kubelet.service`. A
/// reset-failed goes with the start it prepares (one attempt, one key): a
/// reset-failed alone would leave the unit looking stopped by a person.
pub fn key(a: &Action) -> String {
    match &a.step {
        Step::ResetFailed { unit } => format!("start {unit}"),
        s => format!("{} {}", s.id(), s.subject()),
    }
}

/// Whether the action counts as an attempt of its key (a reset-failed is
/// part of its start's attempt).
pub fn counts(a: &Action) -> bool {
    !matches!(a.step, Step::ResetFailed { .. } | Step::Reload)
}

fn secs(d: Duration) -> String {
    format!("{:.1}s", d.as_secs_f64())
}

/// Since when each unit has been down (inactive, stopped or failed), as
/// seen by this process.
#[derive(Debug, Default, Clone)]
pub struct DownSince(BTreeMap<String, Instant>);

impl DownSince {
    pub fn update(&mut self, a: &Assessment, now: Instant) {
        let down: Vec<&str> = a
            .findings
            .iter()
            .filter_map(|f| match &f.kind {
                FindingKind::UnitInactive { unit }
                | FindingKind::UnitStopped { unit }
                | FindingKind::UnitFailed { unit } => Some(unit.as_str()),
                _ => None,
            })
            .collect();
        self.0.retain(|u, _| down.contains(&u.as_str()));
        for u in down {
            self.0.entry(u.to_string()).or_insert(now);
        }
    }

    pub fn get(&self, unit: &str) -> Option<Instant> {
        self.0.get(unit).copied()
    }
}

/// The plan the daemon may carry out now.
#[derive(Debug, Clone)]
pub struct Gated {
    pub plan: Plan,
    /// Each action to run, with its attempt number (1 = first).
    pub attempts: Vec<u32>,
    /// When a deferred action may run: evaluate again then.
    pub next_due: Option<Instant>,
}

/// Apply the daemon's rules to `plan`.
pub fn gate(
    plan: Plan,
    now: Instant,
    grace: Duration,
    down: &DownSince,
    out_of_service: Option<bool>,
    backoff: &RepairBackoff,
) -> Gated {
    let mut out = Plan {
        actions: Vec::new(),
        skipped: plan.skipped,
        findings: plan.findings,
    };
    let mut attempts = Vec::new();
    let mut next_due: Option<Instant> = None;
    let mut due = |t: Instant| next_due = Some(next_due.map_or(t, |n| n.min(t)));
    for a in plan.actions {
        if a.step == Step::Reload {
            // Kept below only when a kept action changes files.
            continue;
        }
        let skip = |reason: String| Skip {
            id: a.step.id(),
            subject: a.step.subject(),
            reason,
        };
        if out_of_service == Some(true) {
            out.skipped.push(skip(format!(
                "the Node carries {OUT_OF_SERVICE}: taint-guard repairs nothing"
            )));
            continue;
        }
        if let Step::Start { unit } | Step::ResetFailed { unit } = &a.step {
            let since = down.get(unit).unwrap_or(now);
            let ready = since + grace;
            if ready > now {
                out.skipped.push(skip(format!(
                    "down for {}s; started after {}s (run.start_grace_secs)",
                    (now - since).as_secs(),
                    grace.as_secs()
                )));
                due(ready);
                continue;
            }
        }
        match backoff.check(&key(&a), now) {
            Attempt::Go { n } => {
                attempts.push(n);
                out.actions.push(a);
            }
            Attempt::Wait { until } => {
                out.skipped.push(skip(format!(
                    "made before and still needed: next attempt in {} (run.repair_backoff_secs)",
                    secs(until.saturating_duration_since(now))
                )));
                due(until);
            }
        }
    }
    // One daemon-reload after the file changes, before any start.
    if out.actions.iter().any(|a| a.step.changes_files()) {
        let at = out
            .actions
            .iter()
            .position(|a| matches!(a.step, Step::ResetFailed { .. } | Step::Start { .. }))
            .unwrap_or(out.actions.len());
        out.actions.insert(
            at,
            Action {
                step: Step::Reload,
                reason: "unit files or fstab changed: reload systemd (daemon-reload)".into(),
            },
        );
        attempts.insert(at, 1);
    }
    Gated {
        plan: out,
        attempts,
        next_due,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn action(step: Step) -> Action {
        Action {
            step,
            reason: "r".into(),
        }
    }

    fn kubelet() -> String {
        "kubelet.service".into()
    }

    fn plan() -> Plan {
        Plan {
            actions: vec![
                action(Step::Enable { unit: kubelet() }),
                action(Step::Reload),
                action(Step::Start { unit: kubelet() }),
            ],
            ..Plan::default()
        }
    }

    fn ids(p: &Plan) -> Vec<&'static str> {
        p.actions.iter().map(|a| a.step.id()).collect()
    }

    fn backoff() -> RepairBackoff {
        RepairBackoff::new(Duration::from_secs(10), Duration::from_secs(600))
    }

    fn down_at(t: Instant) -> DownSince {
        let mut d = DownSince::default();
        d.0.insert(kubelet(), t);
        d
    }

    #[tokio::test(start_paused = true)]
    async fn start_waits_for_the_grace_period() {
        let t0 = Instant::now();
        let grace = Duration::from_secs(60);
        let g = gate(plan(), t0, grace, &down_at(t0), None, &backoff());
        // Enable is not held back; the start is, until t0 + 60 s.
        assert_eq!(ids(&g.plan), vec!["enable", "daemon-reload"]);
        assert_eq!(g.next_due, Some(t0 + grace));
        assert!(g.plan.skipped[0].reason.contains("run.start_grace_secs"));
        let later = t0 + grace;
        let g = gate(plan(), later, grace, &down_at(t0), None, &backoff());
        assert_eq!(ids(&g.plan), vec!["enable", "daemon-reload", "start"]);
        assert_eq!(g.next_due, None);
    }

    #[tokio::test(start_paused = true)]
    async fn out_of_service_holds_everything() {
        let t0 = Instant::now();
        let g = gate(
            plan(),
            t0,
            Duration::ZERO,
            &down_at(t0),
            Some(true),
            &backoff(),
        );
        assert!(g.plan.actions.is_empty());
        assert_eq!(g.plan.skipped.len(), 2);
        assert!(g.plan.skipped[0].reason.contains(OUT_OF_SERVICE));
        // Unknown (API unreachable): not held.
        let g = gate(plan(), t0, Duration::ZERO, &down_at(t0), None, &backoff());
        assert_eq!(g.plan.actions.len(), 3);
    }

    #[tokio::test(start_paused = true)]
    async fn a_repeated_repair_is_backed_off() {
        let t0 = Instant::now();
        let mut b = backoff();
        let start_only = || Plan {
            actions: vec![action(Step::Start { unit: kubelet() })],
            ..Plan::default()
        };
        let g = gate(start_only(), t0, Duration::ZERO, &down_at(t0), None, &b);
        assert_eq!(g.attempts, vec![1]);
        b.attempted(&key(&g.plan.actions[0]), t0);
        let t1 = t0 + Duration::from_secs(1);
        let g = gate(start_only(), t1, Duration::ZERO, &down_at(t0), None, &b);
        assert!(g.plan.actions.is_empty());
        assert_eq!(g.next_due, Some(t0 + Duration::from_secs(10)));
        let t2 = t0 + Duration::from_secs(10);
        let g = gate(start_only(), t2, Duration::ZERO, &down_at(t0), None, &b);
        assert_eq!(g.attempts, vec![2]);
    }

    #[test]
    fn daemon_policy_never_unmasks_and_never_waits() {
        let mut cfg = Config::default();
        cfg.fix.unmask = true;
        let p = fix_policy(&cfg);
        assert!(!p.unmask && !p.wait_for_start && !p.start_stopped);
        cfg.run.start_stopped = true;
        assert!(fix_policy(&cfg).start_stopped);
    }
}
