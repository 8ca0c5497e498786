//! Pure: findings + observation + policy → an ordered list of actions.
//!
//! Order matters: kubelet refuses to start while swap is on, so swap goes
//! first (now, then at boot), then the units (unmask, reset-failed, enable,
//! start).

use serde::Serialize;

use crate::config::FixPolicy;
use crate::evaluate::{Assessment, Finding, FindingKind, Severity, KUBELET_UNIT};
use crate::kubelet::KubeletPolicy;
use crate::observation::{Observation, Probe};
use crate::pause::Pause;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Step {
    /// swapoff(2) on the device (node path).
    Swapoff {
        device: String,
    },
    /// Comment out these fstab lines.
    CommentFstab {
        path: String,
        lines: Vec<usize>,
    },
    DisableUnit {
        unit: String,
    },
    MaskUnit {
        unit: String,
    },
    UnmaskUnit {
        unit: String,
    },
    ResetFailed {
        unit: String,
    },
    Enable {
        unit: String,
    },
    /// daemon-reload, once, after every file change.
    Reload,
    /// Start (job mode `fail`: never replaces a queued job) and wait for
    /// the unit to stay active.
    Start {
        unit: String,
    },
    /// Remove an expired maintenance pause file (reported once).
    ClearPause {
        path: String,
    },
    /// List a module that is in the kernel now in taint-guard's
    /// modules-load.d file, for the next boot.
    PersistModule {
        module: String,
    },
    /// Write a sysctl that has the required value now to taint-guard's
    /// sysctl.d file, for the next boot.
    PersistSysctl {
        key: String,
        value: String,
    },
}

/// Every action id, for `--only` and docs.
pub const ACTION_IDS: [&str; 12] = [
    "swapoff",
    "fstab-comment",
    "swap-unit-disable",
    "swap-unit-mask",
    "unmask",
    "reset-failed",
    "enable",
    "daemon-reload",
    "start",
    "pause-clear",
    "module-persist",
    "sysctl-persist",
];

impl Step {
    /// Stable action id for output and events.
    pub fn id(&self) -> &'static str {
        match self {
            Step::Swapoff { .. } => "swapoff",
            Step::CommentFstab { .. } => "fstab-comment",
            Step::DisableUnit { .. } => "swap-unit-disable",
            Step::MaskUnit { .. } => "swap-unit-mask",
            Step::UnmaskUnit { .. } => "unmask",
            Step::ResetFailed { .. } => "reset-failed",
            Step::Enable { .. } => "enable",
            Step::Reload => "daemon-reload",
            Step::Start { .. } => "start",
            Step::ClearPause { .. } => "pause-clear",
            Step::PersistModule { .. } => "module-persist",
            Step::PersistSysctl { .. } => "sysctl-persist",
        }
    }

    /// The unit the step acts on, if it acts on one.
    pub fn unit(&self) -> Option<&str> {
        match self {
            Step::DisableUnit { unit }
            | Step::MaskUnit { unit }
            | Step::UnmaskUnit { unit }
            | Step::ResetFailed { unit }
            | Step::Enable { unit }
            | Step::Start { unit } => Some(unit),
            Step::Swapoff { .. }
            | Step::CommentFstab { .. }
            | Step::Reload
            | Step::ClearPause { .. }
            | Step::PersistModule { .. }
            | Step::PersistSysctl { .. } => None,
        }
    }

    /// Changes files systemd reads (so a daemon-reload must follow).
    pub fn changes_files(&self) -> bool {
        matches!(
            self,
            Step::CommentFstab { .. }
                | Step::DisableUnit { .. }
                | Step::MaskUnit { .. }
                | Step::UnmaskUnit { .. }
                | Step::Enable { .. }
        )
    }

    pub fn subject(&self) -> String {
        match self {
            Step::Swapoff { device } => device.clone(),
            Step::CommentFstab { path, lines } => {
                format!(
                    "{path}:{}",
                    lines
                        .iter()
                        .map(|l| l.to_string())
                        .collect::<Vec<_>>()
                        .join(",")
                )
            }
            Step::DisableUnit { unit }
            | Step::MaskUnit { unit }
            | Step::UnmaskUnit { unit }
            | Step::ResetFailed { unit }
            | Step::Enable { unit }
            | Step::Start { unit } => unit.clone(),
            Step::Reload => "systemd".into(),
            Step::ClearPause { path } => path.clone(),
            Step::PersistModule { module } => module.clone(),
            Step::PersistSysctl { key, .. } => key.clone(),
        }
    }
}

/// A step, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Action {
    pub step: Step,
    pub reason: String,
}

/// Something a finding asked for that will not be done, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Skip {
    pub id: &'static str,
    pub subject: String,
    pub reason: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Plan {
    pub actions: Vec<Action>,
    pub skipped: Vec<Skip>,
    /// Findings the planner adds (`swapoff-unsafe`).
    pub findings: Vec<Finding>,
}

impl Plan {
    /// Keep only the actions whose id is in `ids` (`check --fix --only`),
    /// plus the daemon-reload that a kept file change needs. What is left
    /// out is listed as skipped.
    /// Nothing is done: every action is listed as skipped, with `reason`.
    pub fn hold_all(mut self, reason: &str) -> Plan {
        for a in self.actions.drain(..) {
            if a.step == Step::Reload {
                continue;
            }
            self.skipped.push(Skip {
                id: a.step.id(),
                subject: a.step.subject(),
                reason: reason.into(),
            });
        }
        self
    }

    pub fn only(mut self, ids: &[String]) -> Plan {
        if ids.is_empty() {
            return self;
        }
        let (kept, dropped): (Vec<Action>, Vec<Action>) = self
            .actions
            .into_iter()
            .partition(|a| ids.iter().any(|i| i == a.step.id()));
        let reload = kept.iter().any(|a| a.step.changes_files());
        let mut actions = Vec::new();
        for a in kept {
            let starts = matches!(a.step, Step::ResetFailed { .. } | Step::Start { .. });
            if starts && reload && !actions.iter().any(|x: &Action| x.step == Step::Reload) {
                actions.push(reload_action());
            }
            actions.push(a);
        }
        if reload && !actions.iter().any(|x| x.step == Step::Reload) {
            actions.push(reload_action());
        }
        for a in dropped.into_iter().filter(|a| a.step != Step::Reload) {
            self.skipped.push(Skip {
                id: a.step.id(),
                subject: a.step.subject(),
                reason: "not asked for (--only)".into(),
            });
        }
        self.actions = actions;
        self
    }
}

/// What happened to one action (`apply`'s answer, typed for the daemon).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    Planned,
    Done,
    Skipped,
    Failed,
    /// Did not finish within its bound (swapoff).
    #[serde(rename = "timed-out")]
    TimedOut,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Planned => "planned",
            Outcome::Done => "done",
            Outcome::Skipped => "skipped",
            Outcome::Failed => "failed",
            Outcome::TimedOut => "timed-out",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ActionOutcome {
    pub id: String,
    pub subject: String,
    pub outcome: Outcome,
    pub detail: String,
}

fn reload_action() -> Action {
    Action {
        step: Step::Reload,
        reason: "unit files or fstab changed: reload systemd (daemon-reload)".into(),
    }
}

/// Fixable findings (gated on `fixable`, set from kubelet's known swap
/// policy, not on severity, which config can override for reporting).
fn fixable(a: &Assessment) -> impl Iterator<Item = &FindingKind> {
    a.findings.iter().filter(|f| f.fixable).map(|f| &f.kind)
}

const MIB: u64 = 1024 * 1024;

/// The ordered repair for `a`: each step decided by a function of its own,
/// in the order they run.
pub fn plan(a: &Assessment, obs: &Observation, policy: &FixPolicy, pause: Option<&Pause>) -> Plan {
    let mut p = Plan::default();
    if let Some(pause) = pause {
        paused(a, pause, &mut p);
        return p;
    }
    if stopping(a, &mut p) {
        return p;
    }
    clear_expired_pause(obs, &mut p);
    let mut swap_stays_on = swapoff(a, obs, policy, &mut p);
    swap_stays_on |= swap_left_on(a, obs, &p);
    comment_fstab(a, obs, policy, &mut p);
    swap_units(a, obs, policy, &mut p);
    persist(a, obs, policy, &mut p);
    let run = units(a, obs, policy, swap_stays_on, &mut p);
    if p.actions.iter().any(|a| a.step.changes_files()) {
        p.actions.push(reload_action());
    }
    p.actions.extend(run);
    p
}

/// Persist what is in effect now and would be lost at the next boot: a
/// module in the kernel, a sysctl at its required value. Nothing else of
/// the kernel is changed (no modprobe, no sysctl -w).
fn persist(a: &Assessment, obs: &Observation, policy: &FixPolicy, p: &mut Plan) {
    for k in fixable(a) {
        match k {
            FindingKind::ModuleNotPersisted { module } if policy.persist_modules => {
                p.actions.push(Action {
                    step: Step::PersistModule {
                        module: module.clone(),
                    },
                    reason: format!(
                        "{module} is in the kernel now and nothing loads it at the next boot: list it in {}",
                        crate::readiness::modules::OURS
                    ),
                });
            }
            FindingKind::ModuleNotPersisted { module } => p.skipped.push(Skip {
                id: "module-persist",
                subject: module.clone(),
                reason: "fix.persist_modules is off in config".into(),
            }),
            FindingKind::SysctlNotPersisted { key } => {
                let Some(want) = obs
                    .kernel
                    .sysctls
                    .iter()
                    .find(|s| &s.key == key)
                    .map(|s| s.want.clone())
                else {
                    continue;
                };
                if !policy.persist_sysctls {
                    p.skipped.push(Skip {
                        id: "sysctl-persist",
                        subject: key.clone(),
                        reason: "fix.persist_sysctls is off in config".into(),
                    });
                    continue;
                }
                p.actions.push(Action {
                    step: Step::PersistSysctl {
                        key: key.clone(),
                        value: want.clone(),
                    },
                    reason: format!(
                        "{key} is {want} now and the next boot would not set it: write `{key} = {want}` to {}",
                        crate::readiness::sysctl::OURS
                    ),
                });
            }
            _ => {}
        }
    }
}

/// A maintenance pause: nothing is done; every fixable finding says why.
fn paused(a: &Assessment, pause: &Pause, p: &mut Plan) {
    for f in a.findings.iter().filter(|f| f.fixable) {
        p.skipped.push(Skip {
            id: "paused",
            subject: f.subject(),
            reason: pause.describe(),
        });
    }
}

/// Someone is stopping a required unit: they are mid-change (perhaps
/// switching the node to swap). Nothing is repaired — swap included —
/// until the stop is over; every fixable finding says why.
fn stopping(a: &Assessment, p: &mut Plan) -> bool {
    let Some(unit) = a.findings.iter().find_map(|f| match &f.kind {
        FindingKind::UnitStopping { unit } => Some(unit.clone()),
        _ => None,
    }) else {
        return false;
    };
    for f in a.findings.iter().filter(|f| f.fixable) {
        p.skipped.push(Skip {
            id: "stopping",
            subject: f.subject(),
            reason: format!(
                "{unit} is being stopped: nothing is repaired while a stop is in progress"
            ),
        });
    }
    true
}

/// Remove an expired pause file.
fn clear_expired_pause(obs: &Observation, p: &mut Plan) {
    if let Some(st) = obs.pause.as_ref().filter(|st| st.expired) {
        p.actions.push(Action {
            step: Step::ClearPause {
                path: st.path.clone(),
            },
            reason: format!("the maintenance pause ended at {}", st.pause.until),
        });
    }
}

/// Step 1, swap now: swapoff every fixable active device, unless the guard
/// refuses (memory, cgroups). Returns whether swap stays on.
fn swapoff(a: &Assessment, obs: &Observation, policy: &FixPolicy, p: &mut Plan) -> bool {
    let active: Vec<&str> = fixable(a)
        .filter_map(|k| match k {
            FindingKind::SwapActive { device } => Some(device.as_str()),
            _ => None,
        })
        .collect();
    if active.is_empty() {
        return false;
    }
    if !policy.swapoff {
        for d in &active {
            p.skipped.push(Skip {
                id: "swapoff",
                subject: d.to_string(),
                reason: "fix.swapoff is off in config".into(),
            });
        }
        return true;
    }
    let Some(now) = obs.swap_now.ok() else {
        return false;
    };
    let devices: Vec<_> = now
        .devices
        .iter()
        .filter(|d| active.contains(&d.device.as_str()))
        .collect();
    let used: u64 = devices.iter().map(|d| d.used_kib * 1024).sum();
    let margin = policy.swapoff_min_free_mib * MIB;
    let avail = now.memory.available_bytes;
    // swapoff charges pages back to the cgroup that owns them. When swap
    // is in use and the per-cgroup figures cannot be read, it cannot be
    // known to be safe: refused, saying why.
    let (tight, cgroups_unknown): (Vec<&crate::cgroup::CgroupSwap>, Option<String>) =
        match &obs.swap_cgroups {
            _ if used == 0 => (Vec::new(), None),
            Some(Probe::Ok(cg)) => (
                cg.cgroups
                    .iter()
                    .filter(|c| c.swap_bytes > c.headroom())
                    .collect(),
                None,
            ),
            Some(Probe::Failed(e)) => (Vec::new(), Some(e.clone())),
            None => (Vec::new(), Some("memory cgroups were not read".into())),
        };
    let host_short = used.saturating_add(margin) > avail;
    if !host_short && tight.is_empty() && cgroups_unknown.is_none() {
        for d in devices {
            p.actions.push(Action {
                step: Step::Swapoff {
                    device: d.device.clone(),
                },
                reason: format!(
                    "kubelet refuses to start while swap is on; {} MiB in use, {} MiB available",
                    d.used_kib / 1024,
                    avail / MIB
                ),
            });
        }
        return false;
    }
    let mut why = Vec::new();
    if host_short {
        why.push(format!(
            "{} MiB of swap in use would not fit in {} MiB of available memory with a {} MiB margin (fix.swapoff_min_free_mib)",
            used / MIB,
            avail / MIB,
            policy.swapoff_min_free_mib
        ));
    }
    if let Some(e) = &cgroups_unknown {
        why.push(format!(
            "{} MiB of swap is in use and which memory cgroups hold it cannot be told ({e}): swapoff could OOM-kill one of them",
            used / MIB
        ));
    }
    for c in &tight {
        why.push(format!(
            "cgroup {} holds {} MiB of swap but has {} MiB of headroom under its limit of {} MiB: swapoff would charge it back and could OOM-kill it",
            c.path,
            c.swap_bytes / MIB,
            c.headroom() / MIB,
            c.limit_bytes / MIB
        ));
    }
    let msg = format!("refusing swapoff: {}", why.join("; "));
    let names: Vec<&str> = tight.iter().map(|c| c.path.as_str()).collect();
    p.findings.push(Finding::new(
        FindingKind::SwapoffUnsafe {
            devices: devices.iter().map(|d| d.device.clone()).collect(),
        },
        Severity::Critical,
        // Figures go in the skipped swapoff actions; the finding stays the
        // same from run to run.
        if cgroups_unknown.is_some() && names.is_empty() && !host_short {
            "refusing swapoff: swap is in use and the memory cgroups holding it cannot be read, so swapoff cannot be known to be safe; free the swap (restart what uses it), or swapoff by hand".into()
        } else if names.is_empty() {
            "refusing swapoff: the swap in use would not fit in available memory with fix.swapoff_min_free_mib to spare; free memory (stop workloads), then swapoff".into()
        } else {
            format!("refusing swapoff: memory cgroups {} could not take their swapped pages back under their limits; free memory in them, then swapoff", names.join(", "))
        },
        None,
        false,
    ));
    for d in &devices {
        p.skipped.push(Skip {
            id: "swapoff",
            subject: d.device.clone(),
            reason: msg.clone(),
        });
    }
    true
}

/// Swap that no action turns off (a deleted swap file) keeps kubelet from
/// starting just the same.
fn swap_left_on(a: &Assessment, obs: &Observation, p: &Plan) -> bool {
    let refuses =
        matches!(&obs.kubelet_policy, Some(KubeletPolicy::Known(pol)) if pol.fail_swap_on);
    refuses
        && a.findings.iter().any(|f| match &f.kind {
            FindingKind::SwapActive { device } => !p
                .actions
                .iter()
                .any(|a| matches!(&a.step, Step::Swapoff { device: d } if d == device)),
            _ => false,
        })
}

/// Step 2, swap at next boot: comment out fstab's live swap lines.
fn comment_fstab(a: &Assessment, obs: &Observation, policy: &FixPolicy, p: &mut Plan) {
    let mut path = None;
    let mut lines = Vec::new();
    for k in fixable(a) {
        if let FindingKind::SwapInFstab { path: fp, line } = k {
            path.get_or_insert_with(|| fp.clone());
            lines.push(*line);
        }
    }
    let Some(path) = path else { return };
    let path = obs.fstab.ok().map(|f| f.path.clone()).unwrap_or(path);
    // A later line of the same unit that systemd would take instead.
    if let Some(f) = obs.fstab.ok() {
        lines = crate::fstab::lines_to_stop(f.entries.iter().chain(&f.not_at_boot), &lines);
    }
    if policy.fstab {
        p.actions.push(Action {
            step: Step::CommentFstab { path, lines },
            reason: "these lines turn swap on at boot, and kubelet refuses swap".into(),
        });
    } else {
        p.skipped.push(Skip {
            id: "fstab-comment",
            subject: path,
            reason: "fix.fstab is off in config".into(),
        });
    }
}

/// Step 3, swap units outside fstab: disable, or mask generated ones. A
/// unit an fstab line generates is never masked: commenting out the line (step 2)
/// and the daemon-reload are its whole repair, and a mask would outlive the
/// line.
fn swap_units(a: &Assessment, obs: &Observation, policy: &FixPolicy, p: &mut Plan) {
    let fstab_names: Vec<&str> = obs
        .fstab
        .ok()
        .map(|f| f.unit_names().collect())
        .unwrap_or_default();
    for k in fixable(a) {
        let FindingKind::SwapUnitEnabled { unit: name } = k else {
            continue;
        };
        let unit = obs
            .swap_units
            .ok()
            .into_iter()
            .flatten()
            .find(|u| &u.name == name);
        let generated = unit.is_some_and(|u| u.state == "generated");
        let fstab_name = fstab_names.contains(&name.as_str())
            || unit.is_some_and(|u| u.source_path.as_deref() == Some(crate::paths::FSTAB));
        if !policy.swap_units {
            p.skipped.push(Skip {
                id: "swap-unit-disable",
                subject: name.clone(),
                reason: "fix.swap_units is off in config".into(),
            });
        } else if generated && fstab_name {
            p.skipped.push(Skip {
                id: "swap-unit-mask",
                subject: name.clone(),
                reason: "an fstab line generates this unit name: taint-guard never masks it; comment out the line and daemon-reload".into(),
            });
        } else if (policy.mask_swap_units || generated) && !fstab_name {
            p.actions.push(Action {
                step: Step::MaskUnit { unit: name.clone() },
                reason: if generated {
                    "a generator makes this unit at every boot: only a mask stops it".into()
                } else {
                    "activates swap at boot (fix.mask_swap_units is on)".into()
                },
            });
        } else {
            p.actions.push(Action {
                step: Step::DisableUnit { unit: name.clone() },
                reason: if fstab_name && policy.mask_swap_units {
                    "activates swap at boot (disabled, not masked: an fstab line generates this unit name)".into()
                } else {
                    "activates swap at boot".into()
                },
            });
        }
    }
}

/// What the findings say about one required unit.
#[derive(Debug, Default, Clone, Copy)]
struct UnitFindings {
    masked: bool,
    disabled: bool,
    failed: bool,
    inactive: bool,
    stopped_by_person: bool,
}

impl UnitFindings {
    fn of(a: &Assessment, unit: &str) -> UnitFindings {
        let mut u = UnitFindings::default();
        for f in &a.findings {
            if f.kind.unit() != Some(unit) {
                continue;
            }
            match &f.kind {
                // Masked is never "fixable": fix.unmask decides.
                FindingKind::UnitMasked { .. } => u.masked = true,
                _ if !f.fixable => {}
                FindingKind::UnitDisabled { .. } => u.disabled = true,
                FindingKind::UnitFailed { .. } => u.failed = true,
                FindingKind::UnitInactive { .. } => u.inactive = true,
                FindingKind::UnitStopped { .. } => u.stopped_by_person = true,
                _ => {}
            }
        }
        u
    }
}

/// Steps 4–6, units: unit-file changes (unmask, enable) go into the plan now, so
/// one daemon-reload follows every file change; reset-failed and start are
/// returned, to run after it.
fn units(
    a: &Assessment,
    obs: &Observation,
    policy: &FixPolicy,
    swap_stays_on: bool,
    p: &mut Plan,
) -> Vec<Action> {
    let mut run: Vec<Action> = Vec::new();
    for u in &obs.units {
        let name = u.name.as_str();
        let Probe::Ok(st) = &u.state else { continue };
        let f = UnitFindings::of(a, name);
        // kubelet's container runtime: never unmasked here, whatever
        // fix.unmask says (its findings say what stays a repair).
        let runtime = obs.runtime.as_ref().and_then(|r| r.unit.as_deref()) == Some(name);
        if f.masked && (runtime || !unmask(name, policy, p)) {
            continue;
        }
        let disabled = f.masked || f.disabled;
        let stopped = f.masked || f.failed || f.stopped_by_person || f.inactive;
        if disabled {
            enable(name, policy, p);
        }
        if stopped {
            let kubelet = u.required == KUBELET_UNIT;
            if let Some(a) = start(name, st, f, kubelet && swap_stays_on, policy, p) {
                // Only a unit that is really failed (or in its start limit)
                // needs reset-failed, and only as part of a start that runs:
                // alone it would leave the unit looking cleanly stopped
                // (Result=success), as if a person had stopped it.
                if f.failed && st.active_state == crate::systemd::types::ActiveState::Failed {
                    run.push(Action {
                        step: Step::ResetFailed { unit: name.into() },
                        reason: format!(
                            "clear the failed state (Result={}) and start limit before starting",
                            st.result
                        ),
                    });
                }
                run.push(a);
            }
        }
    }
    run
}

/// Unmask a masked unit when config allows; false: leave it alone.
fn unmask(name: &str, policy: &FixPolicy, p: &mut Plan) -> bool {
    if !policy.unmask {
        p.skipped.push(Skip {
            id: "unmask",
            subject: name.into(),
            reason: "unit is masked; taint-guard never unmasks unless fix.unmask is on".into(),
        });
        return false;
    }
    p.actions.push(Action {
        step: Step::UnmaskUnit { unit: name.into() },
        reason: "masked (fix.unmask is on)".into(),
    });
    true
}

fn enable(name: &str, policy: &FixPolicy, p: &mut Plan) {
    if policy.enable {
        p.actions.push(Action {
            step: Step::Enable { unit: name.into() },
            reason: "not enabled: would not start at boot".into(),
        });
    } else {
        p.skipped.push(Skip {
            id: "enable",
            subject: name.into(),
            reason: "fix.enable is off in config".into(),
        });
    }
}

/// Start a unit that is down, unless policy, a person's stop or swap that
/// stays on (for kubelet) says not to.
fn start(
    name: &str,
    st: &crate::observation::UnitState,
    f: UnitFindings,
    swap_blocks: bool,
    policy: &FixPolicy,
    p: &mut Plan,
) -> Option<Action> {
    let skip = if !policy.start {
        "fix.start is off in config"
    } else if f.stopped_by_person && !policy.start_stopped {
        "stopped cleanly after running in this boot (a person's systemctl stop?): left stopped"
    } else if swap_blocks {
        "swap stays on and kubelet refuses it: starting would only crash-loop"
    } else {
        return Some(Action {
            step: Step::Start { unit: name.into() },
            reason: format!("not running ({}/{})", st.active_state, st.sub_state),
        });
    };
    p.skipped.push(Skip {
        id: "start",
        subject: name.into(),
        reason: skip.into(),
    });
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use crate::evaluate::evaluate;
    use crate::fstab::SwapEntry;
    use crate::kubelet::SwapPolicy;
    use crate::observation::{FstabSwap, UnitObservation};
    use crate::swap::{ActiveSwap, Memory, SwapNow, SwapUnit};

    fn obs(
        load: &str,
        active: &str,
        sub: &str,
        ufs: &str,
        swap_used_mib: Option<u64>,
        avail_mib: u64,
    ) -> Observation {
        let devices = swap_used_mib
            .map(|u| {
                vec![ActiveSwap {
                    device: "/swapfile".into(),
                    kind: "file".into(),
                    size_kib: 1 << 20,
                    used_kib: u * 1024,
                    priority: -2,
                }]
            })
            .unwrap_or_default();
        let entries = if swap_used_mib.is_some() {
            vec![SwapEntry {
                line: 4,
                spec: "/swapfile".into(),
                device: "/swapfile".into(),
                options: "sw".into(),
                text: "/swapfile none swap sw 0 0".into(),
                unit: Some("swapfile.swap".into()),
                boot: crate::fstab::Boot::Activates,
                if_first: None,
            }]
        } else {
            vec![]
        };
        Observation {
            bus_error: None,
            pause: None,
            // Read (and nothing tight) whenever swap is on.
            swap_cgroups: swap_used_mib.map(|_| {
                Probe::Ok(crate::cgroup::SwapCgroups {
                    version: "v2".into(),
                    cgroups: vec![],
                })
            }),
            units: vec![UnitObservation::kubelet(
                load,
                active,
                sub,
                ufs,
                "exit-code",
            )],
            swap_now: Probe::Ok(SwapNow {
                devices,
                memory: Memory {
                    available_bytes: avail_mib * MIB,
                    ..Default::default()
                },
            }),
            fstab: Probe::Ok(FstabSwap {
                path: "/etc/fstab".into(),
                not_at_boot: vec![],
                swap_disabled_by_cmdline: false,
                cmdline_switch: None,
                entries,
            }),
            swap_units: Probe::Ok(vec![]),
            swap_origins: Default::default(),
            kubelet_policy: Some(KubeletPolicy::Known(SwapPolicy::builtin(true))),
            virtualization: Probe::Ok(crate::virt::Virtualization::None),
            kernel: Default::default(),
            kubelet_cert: None,
            clock: None,
            runtime: None,
            cgroup_driver: None,
            resolv_conf: None,
        }
    }

    fn steps(o: &Observation, policy: &FixPolicy) -> (Vec<String>, Plan) {
        let a = evaluate(o, &Config::default());
        let p = plan(&a, o, policy, None);
        (
            p.actions
                .iter()
                .map(|a| format!("{} {}", a.step.id(), a.step.subject()))
                .collect(),
            p,
        )
    }

    #[test]
    fn seed_incident_full_order() {
        let o = obs("loaded", "inactive", "dead", "disabled", Some(10), 4096);
        let (s, p) = steps(&o, &Config::default().fix);
        assert_eq!(
            s,
            vec![
                "swapoff /swapfile",
                "fstab-comment /etc/fstab:4",
                "enable kubelet.service",
                "daemon-reload systemd",
                "start kubelet.service"
            ]
        );
        assert!(p.skipped.is_empty());
    }

    #[test]
    fn file_changes_for_all_units_then_one_reload_then_starts() {
        let mut o = obs("loaded", "inactive", "dead", "disabled", None, 4096);
        let mut second = o.units[0].clone();
        second.required = "containerd.service".into();
        second.name = "containerd.service".into();
        o.units.push(second);
        let (s, _) = steps(&o, &Config::default().fix);
        assert_eq!(
            s,
            vec![
                "enable kubelet.service",
                "enable containerd.service",
                "daemon-reload systemd",
                "start kubelet.service",
                "start containerd.service"
            ]
        );
    }

    #[test]
    fn healthy_plans_nothing() {
        let o = obs("loaded", "active", "running", "enabled", None, 4096);
        let (s, p) = steps(&o, &Config::default().fix);
        assert!(s.is_empty() && p.skipped.is_empty());
    }

    #[test]
    fn crash_loop_resets_then_starts_once() {
        let o = obs(
            "loaded",
            "activating",
            "auto-restart",
            "enabled",
            None,
            4096,
        );
        // In auto-restart: no reset-failed (it is not failed), one start.
        let (s, _) = steps(&o, &Config::default().fix);
        assert_eq!(s, vec!["start kubelet.service"]);
        // Really failed (start limit): reset-failed first.
        let o = obs("loaded", "failed", "failed", "enabled", None, 4096);
        let (s, _) = steps(&o, &Config::default().fix);
        assert_eq!(
            s,
            vec!["reset-failed kubelet.service", "start kubelet.service"]
        );
    }

    #[test]
    fn reset_failed_never_without_its_start() {
        // Failed with swap on that cannot be turned off (too little
        // memory): the start is skipped, and so is reset-failed — alone it
        // would make kubelet look cleanly stopped (Result=success), and the
        // daemon would then leave it down as a person's stop.
        let o = obs("loaded", "failed", "failed", "enabled", Some(8192), 512);
        let (s, p) = steps(&o, &Config::default().fix);
        assert!(!s.iter().any(|x| x.starts_with("reset-failed")), "{s:?}");
        assert!(p.skipped.iter().any(|k| k.id == "start"), "{:?}", p.skipped);
        // fix.start off: no reset-failed either.
        let mut policy = Config::default().fix;
        policy.start = false;
        let o = obs("loaded", "failed", "failed", "enabled", None, 4096);
        let (s, _) = steps(&o, &policy);
        assert!(s.is_empty(), "{s:?}");
    }

    fn runtime(o: &mut Observation, active: &str, sub: &str, ufs: &str) {
        let mut u = UnitObservation::kubelet("loaded", active, sub, ufs, "success");
        u.required = "containerd.service".into();
        u.name = "containerd.service".into();
        if ufs == "masked" {
            if let Probe::Ok(st) = &mut u.state {
                st.load_state = "masked".into();
            }
        }
        o.units.push(u);
        o.runtime = Some(crate::observation::RuntimeObservation {
            endpoint: Some("/run/containerd/containerd.sock".into()),
            endpoint_from: "flag".into(),
            unit: Some("containerd.service".into()),
            unit_from: "the process listening".into(),
            answers: Some(Probe::Ok(active == "active")),
            cri_disabled: None,
        });
    }

    #[test]
    fn runtime_unit_is_only_enabled_while_it_runs() {
        let mut o = obs("loaded", "active", "running", "enabled", None, 4096);
        runtime(&mut o, "active", "running", "disabled");
        let (s, _) = steps(&o, &Config::default().fix);
        assert_eq!(
            s,
            vec!["enable containerd.service", "daemon-reload systemd"]
        );
        // Stopped (and disabled): neither enabled nor started; the findings
        // carry the remedy.
        let mut o = obs("loaded", "active", "running", "enabled", None, 4096);
        runtime(&mut o, "inactive", "dead", "disabled");
        let (s, _) = steps(&o, &Config::default().fix);
        assert!(s.is_empty(), "{s:?}");
        let a = evaluate(&o, &Config::default());
        assert!(a
            .findings
            .iter()
            .filter(|f| f.kind.unit() == Some("containerd.service"))
            .all(|f| !f.fixable && f.remedy.is_some()));
        // Masked: never unmasked, whatever fix.unmask says.
        let mut o = obs("loaded", "active", "running", "enabled", None, 4096);
        runtime(&mut o, "inactive", "dead", "masked");
        let mut pol = Config::default().fix;
        pol.unmask = true;
        let (s, _) = steps(&o, &pol);
        assert!(s.is_empty(), "{s:?}");
    }

    #[test]
    fn only_what_is_in_effect_is_persisted() {
        use crate::observation::{KernelObservation, ModuleObservation, SysctlObservation};
        use crate::readiness::{BootValue, ModuleBoot, ModuleNow};
        let mut o = obs("loaded", "active", "running", "enabled", None, 4096);
        let module = |name: &str, now| ModuleObservation {
            name: name.into(),
            now: Probe::Ok(now),
            at_boot: Probe::Ok(ModuleBoot::NotLoaded),
        };
        let sysctl = |now: &str| SysctlObservation {
            key: "net.ipv4.ip_forward".into(),
            want: "1".into(),
            now: Probe::Ok(Some(now.into())),
            at_boot: Probe::Ok(BootValue {
                value: Some("0".into()),
                from: "kernel default".into(),
                ours_wins: true,
                overridden_after_ours_by: None,
            }),
        };
        o.kernel = KernelObservation {
            skipped: None,
            platform: Default::default(),
            ours_masked: Default::default(),
            modules: vec![
                module("br_netfilter", ModuleNow::Loaded),
                module("overlay", ModuleNow::Absent),
            ],
            sysctls: vec![sysctl("1")],
        };
        let (s, p) = steps(&o, &Config::default().fix);
        assert_eq!(
            s,
            vec![
                "module-persist br_netfilter",
                "sysctl-persist net.ipv4.ip_forward"
            ]
        );
        assert!(p.actions.iter().all(|a| !a.step.changes_files()));
        // Not in effect now: nothing persisted, nothing loaded or set.
        o.kernel.sysctls = vec![sysctl("0")];
        o.kernel.modules.remove(0);
        let (s, _) = steps(&o, &Config::default().fix);
        assert!(s.is_empty(), "{s:?}");
        // Each opt-out holds.
        o.kernel.modules = vec![module("br_netfilter", ModuleNow::Loaded)];
        o.kernel.sysctls = vec![sysctl("1")];
        let mut cfg = Config::default();
        cfg.fix.persist_modules = false;
        cfg.fix.persist_sysctls = false;
        let a = evaluate(&o, &cfg);
        assert!(plan(&a, &o, &cfg.fix, None).actions.is_empty());
    }

    #[test]
    fn masked_is_left_alone_unless_allowed() {
        let o = obs("masked", "inactive", "dead", "masked", None, 4096);
        let (s, p) = steps(&o, &Config::default().fix);
        assert!(s.is_empty());
        assert_eq!(p.skipped[0].id, "unmask");
        let mut pol = Config::default().fix;
        pol.unmask = true;
        let (s, _) = steps(&o, &pol);
        assert_eq!(
            s,
            vec![
                "unmask kubelet.service",
                "enable kubelet.service",
                "daemon-reload systemd",
                "start kubelet.service"
            ]
        );
    }

    #[test]
    fn swapoff_guard_refuses_with_numbers_and_holds_start() {
        let o = obs("loaded", "inactive", "dead", "enabled", Some(900), 1000);
        let (s, p) = steps(&o, &Config::default().fix);
        assert_eq!(
            s,
            vec!["fstab-comment /etc/fstab:4", "daemon-reload systemd"]
        );
        assert_eq!(p.findings.len(), 1);
        assert_eq!(p.findings[0].id(), "swapoff-unsafe");
        let swapoff = p.skipped.iter().find(|k| k.id == "swapoff").unwrap();
        assert!(swapoff.reason.contains("900 MiB of swap in use would not fit in 1000 MiB of available memory with a 256 MiB margin"), "{}", swapoff.reason);
        assert!(p
            .skipped
            .iter()
            .any(|k| k.id == "start" && k.reason.contains("crash-loop")));
    }

    #[test]
    fn policy_switches_turn_steps_into_skips() {
        let o = obs("loaded", "inactive", "dead", "disabled", Some(10), 4096);
        let mut pol = Config::default().fix;
        pol.swapoff = false;
        pol.fstab = false;
        pol.enable = false;
        let (s, p) = steps(&o, &pol);
        assert!(s.is_empty(), "{s:?}");
        let ids: Vec<_> = p.skipped.iter().map(|k| k.id).collect();
        assert_eq!(ids, vec!["swapoff", "fstab-comment", "enable", "start"]);
    }

    #[test]
    fn tolerated_swap_is_not_touched() {
        let mut o = obs("loaded", "active", "running", "enabled", Some(10), 4096);
        o.kubelet_policy = Some(KubeletPolicy::Known(SwapPolicy::builtin(false)));
        let (s, _) = steps(&o, &Config::default().fix);
        assert!(s.is_empty());
    }

    #[test]
    fn swap_units_disabled_or_masked() {
        let mut o = obs("loaded", "active", "running", "enabled", None, 4096);
        o.swap_units = Probe::Ok(vec![SwapUnit {
            name: "dev-sdb2.swap".into(),
            path: "/etc/systemd/system/dev-sdb2.swap".into(),
            state: "enabled".into(),
            what: Some("/dev/sdb2".into()),
            source_path: None,
        }]);
        let (s, _) = steps(&o, &Config::default().fix);
        assert_eq!(
            s,
            vec!["swap-unit-disable dev-sdb2.swap", "daemon-reload systemd"]
        );
        let mut pol = Config::default().fix;
        pol.mask_swap_units = true;
        assert_eq!(
            steps(&o, &pol).0,
            vec!["swap-unit-mask dev-sdb2.swap", "daemon-reload systemd"]
        );
    }

    #[test]
    fn swap_that_cannot_be_turned_off_holds_the_start() {
        let mut o = obs("loaded", "inactive", "dead", "enabled", Some(10), 4096);
        if let Probe::Ok(now) = &mut o.swap_now {
            now.devices[0].device = "/swapfile (deleted)".into();
        }
        let (s, p) = steps(&o, &Config::default().fix);
        assert_eq!(
            s,
            vec!["fstab-comment /etc/fstab:4", "daemon-reload systemd"]
        );
        assert!(p.skipped.iter().any(|k| k.id == "start"));
    }

    #[test]
    fn generated_swap_units_are_masked() {
        let mut o = obs("loaded", "active", "running", "enabled", None, 4096);
        o.swap_units = Probe::Ok(vec![SwapUnit {
            name: "dev-zram0.swap".into(),
            path: "/run/systemd/generator/dev-zram0.swap".into(),
            state: "generated".into(),
            what: Some("/dev/zram0".into()),
            source_path: None,
        }]);
        let (s, _) = steps(&o, &Config::default().fix);
        assert_eq!(
            s,
            vec!["swap-unit-mask dev-zram0.swap", "daemon-reload systemd"]
        );
    }

    /// systemd refuses a second line for a unit only while the first is
    /// there: the one that would take over is commented out in the same step.
    #[test]
    fn duplicate_fstab_line_that_takes_over_is_planned_too() {
        let mut o = obs("loaded", "inactive", "dead", "enabled", Some(10), 4096);
        if let Probe::Ok(f) = &mut o.fstab {
            let mut dup = f.entries[0].clone();
            dup.line = 9;
            dup.boot = crate::fstab::Boot::Duplicate;
            dup.if_first = Some(crate::fstab::Boot::Activates);
            f.not_at_boot.push(dup);
        }
        let a = evaluate(&o, &Config::default());
        let p = plan(&a, &o, &Config::default().fix, None);
        let lines: Vec<_> = p
            .actions
            .iter()
            .filter_map(|a| match &a.step {
                Step::CommentFstab { lines, .. } => Some(lines.clone()),
                _ => None,
            })
            .collect();
        assert_eq!(lines, vec![vec![4, 9]]);
    }

    /// Commenting out the line plus a daemon-reload is the whole repair of
    /// an fstab-generated unit: never a MaskUnit, whatever the policy.
    #[test]
    fn fstab_generated_units_are_never_masked() {
        let mut o = obs("loaded", "active", "running", "enabled", Some(10), 4096);
        let unit = |dir: &str, state: &str| SwapUnit {
            name: "swapfile.swap".into(),
            path: format!("{dir}/swapfile.swap"),
            state: state.into(),
            what: Some("/swapfile".into()),
            source_path: None,
        };
        let mut pol = Config::default().fix;
        pol.mask_swap_units = true;
        let mask = |s: &[String]| s.iter().any(|x| x.starts_with("swap-unit-mask"));
        // The generator's own unit: no finding, no step but the fstab edit.
        o.swap_units = Probe::Ok(vec![unit("/run/systemd/generator", "generated")]);
        let (s, _) = steps(&o, &pol);
        assert_eq!(
            s,
            vec![
                "swapoff /swapfile",
                "fstab-comment /etc/fstab:4",
                "daemon-reload systemd"
            ]
        );
        // An admin's unit of the same name: disabled, not masked.
        o.swap_units = Probe::Ok(vec![unit("/etc/systemd/system", "enabled")]);
        let (s, _) = steps(&o, &pol);
        assert!(
            s.contains(&"swap-unit-disable swapfile.swap".to_string()),
            "{s:?}"
        );
        assert!(!mask(&s), "{s:?}");
        // Another generator's unit of that name: left alone, said why.
        o.swap_units = Probe::Ok(vec![unit("/run/systemd/generator.late", "generated")]);
        let (s, p) = steps(&o, &pol);
        assert!(!mask(&s), "{s:?}");
        assert!(p
            .skipped
            .iter()
            .any(|k| k.id == "swap-unit-mask" && k.reason.contains("never masks")));
        // Also when the line is noauto (no finding for it, its name stays).
        if let Probe::Ok(f) = &mut o.fstab {
            let mut e = f.entries.remove(0);
            e.boot = crate::fstab::Boot::Noauto;
            f.not_at_boot.push(e);
        }
        assert!(!mask(&steps(&o, &pol).0));
    }

    #[test]
    fn severity_overrides_do_not_change_what_is_repaired() {
        let o = obs("loaded", "inactive", "dead", "enabled", Some(10), 4096);
        let mut cfg = Config::default();
        cfg.severity.insert("swap-active".into(), Severity::Warning);
        let a = evaluate(&o, &cfg);
        let p = plan(&a, &o, &cfg.fix, None);
        let s: Vec<String> = p.actions.iter().map(|a| a.step.id().to_string()).collect();
        assert_eq!(
            s,
            vec!["swapoff", "fstab-comment", "daemon-reload", "start"]
        );
    }

    #[test]
    fn pause_skips_everything() {
        let o = obs("loaded", "inactive", "dead", "disabled", Some(10), 4096);
        let a = evaluate(&o, &Config::default());
        let pause = Pause {
            until: "2030-01-01T00:00:00Z".parse().unwrap(),
            reason: Some("kernel upgrade".into()),
            by: None,
            since: None,
        };
        let p = plan(&a, &o, &Config::default().fix, Some(&pause));
        assert!(p.actions.is_empty());
        assert_eq!(p.skipped.len(), 4);
        assert!(p.skipped[0].reason.contains("kernel upgrade"));
    }

    #[test]
    fn swapoff_refused_for_a_tight_cgroup_or_unreadable_cgroups() {
        let mut o = obs("loaded", "inactive", "dead", "enabled", Some(100), 4096);
        o.swap_cgroups = Some(Probe::Ok(crate::cgroup::SwapCgroups {
            version: "v2".into(),
            cgroups: vec![crate::cgroup::CgroupSwap {
                path: "/kubepods.slice/pod-a".into(),
                swap_bytes: 100 * MIB,
                limit_bytes: 256 * MIB,
                usage_bytes: 200 * MIB,
            }],
        }));
        let a = evaluate(&o, &Config::default());
        let p = plan(&a, &o, &Config::default().fix, None);
        let (s, _) = (
            p.actions.iter().map(|a| a.step.id()).collect::<Vec<_>>(),
            (),
        );
        assert!(!s.contains(&"swapoff") && !s.contains(&"start"), "{s:?}");
        assert_eq!(p.findings[0].id(), "swapoff-unsafe");
        assert!(p.findings[0].message.contains("/kubepods.slice/pod-a"));
        let skip = p.skipped.iter().find(|x| x.id == "swapoff").unwrap();
        assert!(
            skip.reason.contains(
                "cgroup /kubepods.slice/pod-a holds 100 MiB of swap but has 56 MiB of headroom"
            ),
            "{}",
            skip.reason
        );
        // Which cgroups hold the swap cannot be read: not known to be safe.
        o.swap_cgroups = Some(Probe::Failed("swap accounting off".into()));
        let a = evaluate(&o, &Config::default());
        let p = plan(&a, &o, &Config::default().fix, None);
        assert!(!p.actions.iter().any(|a| a.step.id() == "swapoff"));
        assert!(
            p.findings[0].message.contains("cannot be read"),
            "{}",
            p.findings[0].message
        );
        // Nothing swapped out: nothing to charge back, swapoff is safe.
        let mut o = obs("loaded", "inactive", "dead", "enabled", Some(0), 4096);
        o.swap_cgroups = None;
        let a = evaluate(&o, &Config::default());
        let p = plan(&a, &o, &Config::default().fix, None);
        assert_eq!(p.actions[0].step.id(), "swapoff");
    }

    #[test]
    fn nothing_is_repaired_while_a_unit_is_being_stopped() {
        let mut o = obs(
            "loaded",
            "deactivating",
            "stop-sigterm",
            "disabled",
            Some(10),
            4096,
        );
        if let Probe::Ok(st) = &mut o.units[0].state {
            st.job = Some("stop".into());
        }
        let a = evaluate(&o, &Config::default());
        let p = plan(&a, &o, &Config::default().fix, None);
        assert!(p.actions.is_empty(), "{:?}", p.actions);
        assert!(p.skipped.iter().all(|x| x.id == "stopping"));
        assert_eq!(p.skipped.len(), 2, "swap now and in fstab: {:?}", p.skipped);
    }
}
