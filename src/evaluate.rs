//! Pure judgement: observation + config → findings, status, reboot safety.

use serde::{Deserialize, Serialize};

use crate::config::Config;
use crate::kubelet::KubeletPolicy;
use crate::observation::{Observation, Probe, UnitObservation, UnitState};
use crate::remedy::Remedy;
use crate::systemd::types::{
    ActiveState, AtBoot, JobType, LoadState, ServiceResult, UnitFileState,
};

pub use crate::finding::{Severity, FINDING_IDS};

mod readiness;

/// Overall status, with the monitoring-plugins exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Ok,
    Warning,
    Critical,
    Unknown,
}

impl Status {
    pub fn exit_code(self) -> u8 {
        match self {
            Status::Ok => 0,
            Status::Warning => 1,
            Status::Critical => 2,
            Status::Unknown => 3,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Status::Ok => "ok",
            Status::Warning => "warning",
            Status::Critical => "critical",
            Status::Unknown => "unknown",
        }
    }
}

pub use crate::finding::{Finding, FindingKind, ProbeTarget, KUBELET_UNIT};

/// Findings plus the verdict drawn from them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Assessment {
    pub status: Status,
    /// Will kubelet come back by itself after a reboot? `None` when that
    /// cannot be known (systemd could not be asked, a probe failed).
    pub reboot_safe: Option<bool>,
    /// What will differ after the next boot without keeping the Node from
    /// going Ready (a module or sysctl in effect now and not persisted):
    /// `ID:SUBJECT` of those findings. Its own verdict: `reboot_safe`
    /// keeps the one meaning, kubelet back and the Node Ready.
    pub after_reboot: Vec<String>,
    pub findings: Vec<Finding>,
}

pub fn evaluate(obs: &Observation, cfg: &Config) -> Assessment {
    let mut f = Vec::new();
    if let Some(e) = &obs.bus_error {
        // One cause, said once: the units and swap units it hides are not
        // repeated as findings of their own.
        f.push(finding(
            FindingKind::ProbeFailed { target: ProbeTarget::SystemBus },
            Severity::Unknown,
            format!("cannot ask systemd: {e}. Not a systemd host? In a pod, mount the host's /run/dbus and set DBUS_SYSTEM_BUS_ADDRESS=unix:path=/host/run/dbus/system_bus_socket"),
            None,
            false,
        ));
    } else {
        for u in &obs.units {
            unit_findings(u, &mut f);
        }
    }
    if let Some(p) = &obs.pause {
        if p.expired {
            f.push(finding(
                FindingKind::PauseExpired,
                Severity::Info,
                format!("the maintenance pause ended at {}{}; repairs are on again (check --fix removes the pause file)", p.pause.until, p.pause.reason.as_deref().map(|r| format!(" ({r})")).unwrap_or_default()),
                Some(Remedy::cmd(&["taint-guard", "resume"])),
                false,
            ));
        }
    }
    swap_findings(obs, cfg, &mut f);
    readiness::findings(obs, cfg, &mut f);
    not_joined(obs, &mut f);
    assess(f, cfg)
}

/// A node image before `kubeadm join`: kubelet exits at every start by
/// design until join writes its config and credentials. Its failing or
/// crash-looping is then said, not critical: nothing is broken yet, and no
/// repair (a restart) can help.
fn not_joined(obs: &Observation, f: &mut [Finding]) {
    let (Some(KubeletPolicy::Unknown(u)), Some(k)) = (&obs.kubelet_policy, obs.kubelet()) else {
        return;
    };
    if !u.not_joined {
        return;
    }
    for x in f.iter_mut() {
        if matches!(&x.kind, FindingKind::UnitFailed { unit } | FindingKind::UnitInactive { unit } if *unit == k.name)
        {
            x.severity = Severity::Info;
            x.fixable = false;
            x.remedy = None;
            x.message = format!(
                "{} (not joined yet: expected until `kubeadm join`)",
                x.message
            );
        }
    }
}

/// `a` with more findings (the planner's `swapoff-unsafe`, the daemon's
/// `config-invalid`), judged again.
pub fn with_findings(a: Assessment, more: Vec<Finding>, cfg: &Config) -> Assessment {
    if more.is_empty() {
        return a;
    }
    let mut f = a.findings;
    f.extend(more);
    assess(f, cfg)
}

/// Apply severity overrides, sort, and draw the verdict.
pub fn assess(mut findings: Vec<Finding>, cfg: &Config) -> Assessment {
    for x in &mut findings {
        if let Some(s) = cfg.severity.get(x.id()) {
            x.severity = *s;
        }
    }
    findings.sort_by_key(|f| std::cmp::Reverse(f.severity));
    let worst = findings.iter().map(|x| x.severity).max();
    let status = match worst {
        None | Some(Severity::Info) => Status::Ok,
        Some(Severity::Warning) => Status::Warning,
        Some(Severity::Unknown) => Status::Unknown,
        Some(Severity::Critical) => Status::Critical,
    };
    // kubelet will not come back by itself. What is in effect now and lost
    // at the reboot, without stopping the Node from going Ready, is said
    // apart (`after_reboot`).
    // A critical whose effect on the next boot is not known (an expired
    // certificate kubelet may replace with its bootstrap kubeconfig)
    // makes the boot unknown, not unsafe.
    let unsafe_ = findings
        .iter()
        .any(|x| x.severity == Severity::Critical && x.kind.breaks_boot() && !x.reboot_unknown);
    let after_reboot = findings
        .iter()
        .filter(|x| x.severity >= Severity::Warning && x.kind.lost_at_reboot() && !x.reboot_unknown)
        .map(|x| format!("{}:{}", x.id(), x.subject()))
        .collect();
    let unknown = findings
        .iter()
        .any(|x| matches!(x.kind, FindingKind::ProbeFailed { .. }) || x.reboot_unknown);
    let reboot_safe = if unsafe_ {
        Some(false)
    } else if unknown {
        None
    } else {
        Some(true)
    };
    Assessment {
        status,
        reboot_safe,
        after_reboot,
        findings,
    }
}

fn finding(
    kind: FindingKind,
    severity: Severity,
    message: String,
    remedy: Option<Remedy>,
    fixable: bool,
) -> Finding {
    Finding::new(kind, severity, message, remedy, fixable)
}

/// Whether the unit starts at the next boot: what the unit files that
/// survive a reboot say ([`AtBoot`]: pulled in by the default target, or
/// started by a unit that is); where that was not read, enabled or
/// generated, or (static, alias) pulled in by another unit. Not known
/// counts as starting: nothing is done because of it.
pub fn boots(s: &UnitState) -> bool {
    match &s.at_boot {
        Some(AtBoot::Pulled { .. } | AtBoot::StartedBy { .. } | AtBoot::Unknown { .. }) => {
            return true
        }
        Some(AtBoot::NotStarted { .. }) => return false,
        None => {}
    }
    match s.unit_file_state {
        UnitFileState::Enabled | UnitFileState::Generated => true,
        UnitFileState::Static | UnitFileState::Alias => !s.wanted_by.is_empty(),
        _ => false,
    }
}

/// What the unit is doing right now, as far as taint-guard may act on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Motion {
    /// Running, or a start/restart is under way: nothing to do.
    Up,
    /// A stop is in progress (deactivating, or a stop job queued): a person
    /// or systemd is stopping it, and nobody should start it now.
    Stopping,
    /// Stopped cleanly after running in this boot (`Result=success`): most
    /// likely `systemctl stop` by a person.
    StoppedCleanly,
    /// Not running, and not started in this boot (or stopped otherwise).
    Down,
}

/// Classify a unit's motion. A unit's timestamps start at 0 on every boot
/// (they survive only daemon-reload/reexec), so a non-zero
/// ActiveEnterTimestamp means "was active in this boot".
pub fn motion(s: &UnitState) -> Motion {
    let job = s.job.as_ref();
    if job == Some(&JobType::Stop) || (s.active_state == ActiveState::Deactivating && job.is_none())
    {
        return Motion::Stopping;
    }
    // Any other queued job (start, restart, try-restart, reload-or-start,
    // verify-active) brings the unit up: it is starting, not stopped.
    if job.is_some()
        || !matches!(
            s.active_state,
            ActiveState::Inactive | ActiveState::Deactivating
        )
    {
        return Motion::Up;
    }
    if s.result == ServiceResult::Success
        && s.active_enter_timestamp > 0
        && s.inactive_enter_timestamp >= s.active_enter_timestamp
    {
        return Motion::StoppedCleanly;
    }
    Motion::Down
}

fn unit_findings(u: &UnitObservation, out: &mut Vec<Finding>) {
    let name = u.name.as_str();
    let s: &UnitState = match &u.state {
        Probe::Ok(s) => s,
        Probe::Failed(e) => {
            out.push(finding(
                FindingKind::ProbeFailed {
                    target: ProbeTarget::Unit(name.into()),
                },
                Severity::Unknown,
                format!("cannot read {name} from systemd: {e}"),
                None,
                false,
            ));
            return;
        }
    };
    let alt = if u.name != u.required {
        format!(" (used in place of {}, which is not installed)", u.required)
    } else {
        String::new()
    };
    match &s.load_state {
        LoadState::NotFound => {
            let msg = if u.required == KUBELET_UNIT {
                format!("{name} is not installed, and neither is any known alternative (k3s, rke2, microk8s): install the package that ships it, or remove it from required_units in /etc/taint-guard/config.toml")
            } else {
                format!("{name} is not installed: install the package that ships it, or remove it from required_units in /etc/taint-guard/config.toml")
            };
            out.push(finding(
                FindingKind::UnitMissing { unit: name.into() },
                Severity::Critical,
                msg,
                None,
                false,
            ));
            return;
        }
        LoadState::Masked => {
            out.push(finding(
                FindingKind::UnitMasked { unit: name.into() },
                Severity::Critical,
                format!("{name}{alt} is masked: systemd will not start it, now or at boot"),
                Some(Remedy::systemctl(&["unmask", name]).then(&[
                    "systemctl",
                    "enable",
                    "--now",
                    name,
                ])),
                false,
            ));
            return;
        }
        LoadState::Loaded => {}
        other => {
            out.push(finding(
                FindingKind::UnitBroken { unit: name.into() },
                Severity::Critical,
                format!(
                    "{name}{alt} failed to load (LoadState={other}): see `systemctl status {name}`, fix the unit file, then run `systemctl daemon-reload`"
                ),
                None,
                false,
            ));
            return;
        }
    }
    let motion = motion(s);
    let inactive = matches!(motion, Motion::Down | Motion::StoppedCleanly);
    if motion == Motion::Stopping {
        // Someone (or systemd) is stopping it: report, never interfere —
        // not even enable, which a person mid-change may not want.
        out.push(finding(
            FindingKind::UnitStopping { unit: name.into() },
            Severity::Warning,
            format!(
                "{name}{alt} is being stopped ({}/{}{}): taint-guard does not start or enable a unit while a stop is in progress",
                s.active_state,
                s.sub_state,
                if s.job == Some(JobType::Stop) { ", stop job queued" } else { "" }
            ),
            None,
            false,
        ));
        return;
    }
    // ExecStart, Environment and the rest come from systemd as it loaded
    // the unit; edited since, the next start uses the files on disk.
    if s.need_daemon_reload {
        out.push(finding(
            FindingKind::ProbeFailed {
                target: ProbeTarget::Unit(name.into()),
            },
            Severity::Unknown,
            format!(
                "{name}'s unit files changed on disk since systemd loaded them (NeedDaemonReload): its next start and the next boot use the files on disk, and taint-guard reads the unit as systemd loaded it; run `systemctl daemon-reload` so both agree"
            ),
            Some(Remedy::systemctl(&["daemon-reload"])),
            false,
        ));
    }
    if let Some(AtBoot::Unknown { reason }) = &s.at_boot {
        out.push(finding(
            FindingKind::ProbeFailed {
                target: ProbeTarget::Unit(name.into()),
            },
            Severity::Unknown,
            reason.clone(),
            None,
            false,
        ));
    }
    if !boots(s) {
        // (message, remedy, fixable by EnableUnitFiles)
        let (how, remedy, fixable) = match &s.unit_file_state {
            // Its [Install] links exist, yet what they hang it on does not
            // start at boot: enabling again changes nothing.
            UnitFileState::Enabled | UnitFileState::Generated => (
                format!(
                    "is {} but nothing that starts at boot pulls it in ({}): it will not start at boot; see `systemctl list-dependencies --reverse {name}` and `systemctl get-default`",
                    s.unit_file_state,
                    s.at_boot.as_ref().map(AtBoot::describe).unwrap_or_default()
                ),
                None,
                false,
            ),
            UnitFileState::EnabledRuntime => (
                "is enabled only until the next reboot (enabled-runtime)".to_string(),
                Some(Remedy::systemctl(&["enable", name])),
                true,
            ),
            // No [Install] section: enabling cannot work; something must
            // pull it in.
            UnitFileState::Static => (
                "has no [Install] section and nothing pulls it in (UnitFileState=static): it will not start at boot".to_string(),
                Some(Remedy::systemctl(&["add-wants", "multi-user.target", name])),
                false,
            ),
            UnitFileState::Alias => (
                "is an alias that nothing pulls in (UnitFileState=alias): it will not start at boot; enable the unit it aliases (`systemctl status` names it)".to_string(),
                None,
                false,
            ),
            other => (
                format!(
                    "is not enabled (UnitFileState={}): it will not start at boot",
                    if other.as_str().is_empty() { "unknown" } else { other.as_str() }
                ),
                Some(if inactive {
                    Remedy::systemctl(&["enable", "--now", name])
                } else {
                    Remedy::systemctl(&["enable", name])
                }),
                true,
            ),
        };
        // Only configuration under /run starts it (a runtime enable, a
        // drop-in there): said, with the chain.
        let how = match &s.at_boot {
            Some(AtBoot::NotStarted {
                until_reboot: Some(chain),
            }) if s.unit_file_state != UnitFileState::EnabledRuntime => format!(
                "{how} (only configuration under /run starts it now: {}, gone at the next boot)",
                chain.join(" → ")
            ),
            _ => how,
        };
        // Where the remedy does not start it, a separate inactive finding
        // carries `systemctl start`.
        out.push(finding(
            FindingKind::UnitDisabled { unit: name.into() },
            Severity::Critical,
            format!("{name}{alt} {how}"),
            remedy,
            fixable,
        ));
    }
    // `auto-restart`, and `auto-restart-queued` on systemd 254+.
    let crash_loop = s.active_state == ActiveState::Activating && s.sub_state.is_auto_restart();
    if s.active_state == ActiveState::Failed || crash_loop {
        // No restart count in the message: it lands in Node annotations,
        // which must not change on every run while the loop goes on.
        let what = if crash_loop {
            "is crash-looping"
        } else {
            "has failed"
        };
        out.push(finding(
            FindingKind::UnitFailed { unit: name.into() },
            Severity::Critical,
            format!("{name}{alt} {what}: Result={}, exit status {}; see `journalctl -u {name} -b -n 50`", s.result, s.exec_main_status),
            Some(Remedy::systemctl(&["reset-failed", name]).then(&["systemctl", "restart", name])),
            true,
        ));
    } else if motion == Motion::StoppedCleanly {
        let when = jiff::Timestamp::from_microsecond(s.inactive_enter_timestamp as i64)
            .map(|t| t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string())
            .unwrap_or_else(|_| "?".into());
        out.push(finding(
            FindingKind::UnitStopped { unit: name.into() },
            Severity::Critical,
            format!(
                "{name}{alt} was stopped cleanly at {when} after running in this boot (Result=success: `systemctl stop`?); it stays down until someone starts it"
            ),
            Some(Remedy::systemctl(&["start", name])),
            true,
        ));
    } else if inactive {
        out.push(finding(
            FindingKind::UnitInactive { unit: name.into() },
            Severity::Critical,
            format!(
                "{name}{alt} is not running ({}/{})",
                s.active_state, s.sub_state
            ),
            Some(Remedy::systemctl(&["start", name])),
            true,
        ));
    }
}

fn swap_findings(obs: &Observation, cfg: &Config, out: &mut Vec<Finding>) {
    let first = out.len();
    swap_findings_inner(obs, out);
    // A remedy only where it does what it says: not for swap kubelet
    // tolerates or whose policy is unknown (that swap stays), and the
    // taint-guard one only where --fix would act on it.
    let paused = obs.pause.as_ref().and_then(|p| p.active());
    for f in &mut out[first..] {
        if !f.fixable {
            f.remedy = None;
            continue;
        }
        if f.id() != "swap-in-fstab" {
            continue;
        }
        if let Some(p) = paused {
            f.remedy = None;
            f.message += &format!("; repairs are paused until {}", p.until);
        } else if !cfg.fix.fstab {
            f.remedy = None;
            f.message += "; fix.fstab is off in config: comment the line out by hand, then systemctl daemon-reload";
        } else {
            f.message += "; the remedy comments it out (marker line, original kept behind #, backup next to the file; --dry-run shows the diff)";
        }
    }
    // Swap on at the next boot, and no telling whether kubelet refuses it.
    if matches!(obs.kubelet_policy, Some(KubeletPolicy::Unknown(_))) {
        for f in &mut out[first..] {
            f.reboot_unknown = f.kind.swap_at_boot();
        }
    }
}

fn swap_findings_inner(obs: &Observation, out: &mut Vec<Finding>) {
    // Would kubelet refuse to start with swap on? Only a known policy
    // decides; an unknown one makes every swap finding a warning that says
    // why, and nothing is fixable because of it: a node that runs with swap
    // on purpose must not lose it because its kubelet config was unreadable.
    let (sev, fixable, judgement) = match &obs.kubelet_policy {
        None => (Severity::Info, false, "no kubelet unit found".to_string()),
        Some(KubeletPolicy::Known(p)) if p.fail_swap_on => (
            Severity::Critical,
            true,
            format!(
                "kubelet refuses to start while swap is on ({})",
                p.fail_swap_on_from
            ),
        ),
        Some(KubeletPolicy::Known(p)) => (
            Severity::Info,
            false,
            format!("kubelet tolerates swap ({})", p.fail_swap_on_from),
        ),
        Some(KubeletPolicy::Unknown(u)) => (
            Severity::Warning,
            false,
            format!(
                "kubelet's swap policy is unknown ({}): swap left alone",
                u.reason
            ),
        ),
    };

    // In a container systemd activates no swap at all, and the swap the
    // kernel shows is the host's: nothing here is ours to change. When
    // systemd could be asked but not what it runs in, nothing is either.
    let container = obs
        .virtualization
        .ok()
        .and_then(crate::virt::Virtualization::container);
    let refused = fixable;
    let mut fixable = fixable && container.is_none();
    if let (Probe::Failed(e), None) = (&obs.virtualization, &obs.bus_error) {
        fixable = false;
        out.push(finding(
            FindingKind::ProbeFailed {
                target: ProbeTarget::Virtualization,
            },
            Severity::Unknown,
            format!("cannot tell whether systemd runs in a container, where it activates no swap ({e}): swap is left alone"),
            None,
            false,
        ));
    }
    let host_swap = container
        .map(|id| {
            format!(
                "; systemd runs in a container ({id}): this swap is the host's{}",
                if refused { ", turn it off there" } else { "" }
            )
        })
        .unwrap_or_default();

    match &obs.swap_now {
        Probe::Ok(now) => {
            for d in &now.devices {
                // The kernel shows a swap file deleted while in use as
                // `PATH (deleted)`: swapoff(2) cannot name it any more.
                if let Some(path) = d.device.strip_suffix(" (deleted)") {
                    out.push(finding(
                        FindingKind::SwapActive { device: d.device.clone() },
                        sev,
                        format!("swap file {path} was deleted while in use and stays on until reboot (after the fstab fix), or until what uses it restarts; {judgement}"),
                        None,
                        false,
                    ));
                    continue;
                }
                // Nothing read at boot (fstab, swap units) turns it on:
                // whether it comes back is not known — a swap service may
                // (dphys-swapfile, zramswap).
                let unaccounted = refused
                    && container.is_none()
                    && obs.swap_origins.get(&d.device) == Some(&None);
                let mut f = finding(
                    FindingKind::SwapActive {
                        device: d.device.clone(),
                    },
                    sev,
                    // Sizes stay in the observations: a message that moved
                    // with swap usage would rewrite Node annotations each run.
                    format!(
                        "swap {} {} is active; {judgement}{host_swap}{}",
                        d.kind,
                        d.device,
                        if unaccounted {
                            "; nothing taint-guard reads at boot (fstab, swap units) turns it on, so whether it is on again after the next boot is not known: a swap service (dphys-swapfile, zramswap, swapspace) may turn it on"
                        } else {
                            ""
                        }
                    ),
                    Some(Remedy::cmd(&["swapoff", &d.device])),
                    fixable,
                );
                f.reboot_unknown = unaccounted;
                out.push(f);
            }
        }
        Probe::Failed(e) => out.push(finding(
            FindingKind::ProbeFailed {
                target: ProbeTarget::ProcSwaps,
            },
            Severity::Unknown,
            format!("cannot read active swap: {e}"),
            None,
            false,
        )),
    }

    match &obs.fstab {
        Probe::Ok(fs) => {
            for e in &fs.entries {
                out.push(finding(
                    FindingKind::SwapInFstab {
                        path: fs.path.clone(),
                        line: e.line,
                    },
                    sev,
                    format!(
                        "{} line {} turns swap on at boot ({}); {judgement}",
                        fs.path, e.line, e.spec
                    ),
                    Some(Remedy::cmd(&[
                        "taint-guard",
                        "check",
                        "--fix",
                        "--only",
                        "fstab-comment",
                    ])),
                    fixable,
                ));
            }
        }
        Probe::Failed(e) => out.push(finding(
            FindingKind::ProbeFailed {
                target: ProbeTarget::Fstab(crate::paths::FSTAB.into()),
            },
            Severity::Unknown,
            format!("cannot read fstab: {e}"),
            None,
            false,
        )),
    }

    match &obs.swap_units {
        // systemd starts no swap unit in a container (swap_supported()).
        Probe::Ok(_) if container.is_some() => {}
        Probe::Ok(units) => {
            let fstab = obs.fstab.ok();
            for u in units {
                // Only the unit systemd-fstab-generator wrote for an fstab
                // line is explained by fstab (the line's finding covers it):
                // not zram-generator's or gpt-auto's, not a same-named or
                // same-device unit an admin put in /etc/systemd/system.
                let fstab_units = fstab.into_iter().flat_map(|f| f.generated_units());
                if u.from_fstab(fstab_units) {
                    continue;
                }
                out.push(finding(
                    FindingKind::SwapUnitEnabled { unit: u.name.clone() },
                    sev,
                    format!(
                        "swap unit {} ({}, {}) activates {} at boot outside fstab; {judgement}{}",
                        u.name,
                        u.path,
                        u.state,
                        u.what.as_deref().unwrap_or("?"),
                        if u.state == "generated" { " (a generator makes it at every boot: mask it, or turn it off in the generator's config)" } else { "" }
                    ),
                    // A generated unit (zram-generator, gpt-auto) comes back
                    // at every boot unless masked.
                    Some(if u.state == "generated" {
                        Remedy::systemctl(&["mask", &u.name])
                    } else {
                        Remedy::systemctl(&["disable", &u.name])
                    }),
                    fixable,
                ));
            }
        }
        // Said once already, as the system bus finding.
        Probe::Failed(_) if obs.bus_error.is_some() => {}
        Probe::Failed(e) => out.push(finding(
            FindingKind::ProbeFailed {
                target: ProbeTarget::SwapUnits,
            },
            Severity::Unknown,
            format!("cannot list swap units: {e}"),
            None,
            false,
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fstab::SwapEntry;
    use crate::kubelet::SwapPolicy;
    use crate::observation::FstabSwap;
    use crate::swap::{ActiveSwap, SwapNow, SwapUnit};

    fn unit(load: &str, active: &str, sub: &str, ufs: &str) -> UnitObservation {
        UnitObservation::kubelet(load, active, sub, ufs, "success")
    }

    fn policy(fail: bool) -> Option<KubeletPolicy> {
        Some(KubeletPolicy::Known(SwapPolicy::builtin(fail)))
    }

    fn healthy() -> Observation {
        Observation {
            bus_error: None,
            pause: None,
            swap_cgroups: None,
            units: vec![unit("loaded", "active", "running", "enabled")],
            swap_now: Probe::Ok(SwapNow::default()),
            fstab: Probe::Ok(FstabSwap::empty("/etc/fstab")),
            swap_units: Probe::Ok(vec![]),
            swap_origins: Default::default(),
            kubelet_policy: policy(true),
            virtualization: Probe::Ok(crate::virt::Virtualization::None),
            kernel: Default::default(),
            kubelet_cert: None,
            clock: None,
            runtime: None,
            cgroup_driver: None,
            resolv_conf: None,
        }
    }

    fn with_swap(mut o: Observation) -> Observation {
        o.swap_now = Probe::Ok(SwapNow {
            devices: vec![ActiveSwap {
                device: "/swapfile".into(),
                kind: "file".into(),
                size_kib: 65532,
                used_kib: 0,
                priority: -2,
            }],
            memory: Default::default(),
        });
        o.fstab = Probe::Ok(FstabSwap {
            path: "/etc/fstab".into(),
            not_at_boot: vec![],
            swap_disabled_by_cmdline: false,
            cmdline_switch: None,
            entries: vec![SwapEntry {
                line: 3,
                spec: "/swapfile".into(),
                device: "/swapfile".into(),
                options: "sw".into(),
                text: "/swapfile none swap sw 0 0".into(),
                unit: Some("swapfile.swap".into()),
                boot: crate::fstab::Boot::Activates,
                if_first: None,
            }],
        });
        o
    }

    fn ids(a: &Assessment) -> Vec<(&str, Severity, &str)> {
        a.findings
            .iter()
            // Test-only: subjects are built on demand; leaking keeps the
            // expectations as plain string tuples.
            .map(|f| {
                (
                    f.id(),
                    f.severity,
                    &*Box::leak(f.subject().into_boxed_str()),
                )
            })
            .collect()
    }

    #[test]
    fn healthy_is_ok_and_reboot_safe() {
        let a = evaluate(&healthy(), &Config::default());
        assert_eq!(a.status, Status::Ok);
        assert_eq!(a.reboot_safe, Some(true));
        assert!(a.findings.is_empty());
    }

    #[test]
    fn seed_incident_disabled_and_inactive() {
        let mut o = healthy();
        o.units = vec![unit("loaded", "inactive", "dead", "disabled")];
        let a = evaluate(&o, &Config::default());
        assert_eq!(a.status, Status::Critical);
        assert_eq!(a.reboot_safe, Some(false));
        assert_eq!(
            ids(&a),
            vec![
                ("unit-disabled", Severity::Critical, "kubelet.service"),
                ("unit-inactive", Severity::Critical, "kubelet.service")
            ]
        );
        assert_eq!(
            a.findings[0].remedy_line().as_deref(),
            Some("systemctl enable --now kubelet.service")
        );
        assert!(a.findings.iter().all(|f| f.fixable));
    }

    #[test]
    fn inactive_with_a_queued_start_job_is_starting() {
        let mut o = healthy();
        let mut u = unit("loaded", "inactive", "dead", "enabled");
        if let Probe::Ok(s) = &mut u.state {
            s.job = Some("start".into());
        }
        o.units = vec![u.clone()];
        assert!(evaluate(&o, &Config::default()).findings.is_empty());
        if let Probe::Ok(s) = &mut u.state {
            s.job = Some("restart".into());
        }
        o.units = vec![u.clone()];
        assert!(evaluate(&o, &Config::default()).findings.is_empty());
        // A stop job queued: someone is stopping it. Reported, not fixable.
        if let Probe::Ok(s) = &mut u.state {
            s.job = Some("stop".into());
        }
        o.units = vec![u.clone()];
        let a = evaluate(&o, &Config::default());
        assert_eq!(
            ids(&a),
            vec![("unit-stopping", Severity::Warning, "kubelet.service")]
        );
        assert!(!a.findings[0].fixable);
        // Deactivating (a slow ExecStop=) is the same, even when disabled:
        // no enable while someone is mid-change.
        if let Probe::Ok(s) = &mut u.state {
            s.job = None;
            s.active_state = "deactivating".into();
            s.sub_state = "stop-sigterm".into();
            s.unit_file_state = "disabled".into();
        }
        o.units = vec![u];
        let a = evaluate(&o, &Config::default());
        assert_eq!(
            ids(&a),
            vec![("unit-stopping", Severity::Warning, "kubelet.service")]
        );
    }

    #[test]
    fn enabled_but_stopped_is_critical_yet_reboot_safe() {
        let mut o = healthy();
        o.units = vec![unit("loaded", "inactive", "dead", "enabled")];
        let a = evaluate(&o, &Config::default());
        assert_eq!(
            ids(&a),
            vec![("unit-inactive", Severity::Critical, "kubelet.service")]
        );
        assert_eq!(a.reboot_safe, Some(true));
    }

    #[test]
    fn enabled_runtime_is_not_reboot_safe() {
        let mut o = healthy();
        o.units = vec![unit("loaded", "active", "running", "enabled-runtime")];
        let a = evaluate(&o, &Config::default());
        assert_eq!(
            ids(&a),
            vec![("unit-disabled", Severity::Critical, "kubelet.service")]
        );
        assert!(a.findings[0].message.contains("until the next reboot"));
        assert_eq!(
            a.findings[0].remedy_line().as_deref(),
            Some("systemctl enable kubelet.service")
        );
    }

    #[test]
    fn masked_missing_broken_say_one_thing() {
        for (load, id) in [
            ("masked", "unit-masked"),
            ("not-found", "unit-missing"),
            ("bad-setting", "unit-broken"),
        ] {
            let mut o = healthy();
            o.units = vec![unit(
                load,
                "inactive",
                "dead",
                if load == "masked" { "masked" } else { "" },
            )];
            let a = evaluate(&o, &Config::default());
            assert_eq!(
                ids(&a),
                vec![(id, Severity::Critical, "kubelet.service")],
                "{load}"
            );
            assert_eq!(a.reboot_safe, Some(false));
            assert!(!a.findings[0].fixable);
        }
    }

    #[test]
    fn crash_loop_and_failed() {
        let mut o = healthy();
        let mut u = unit("loaded", "activating", "auto-restart", "enabled");
        if let Probe::Ok(s) = &mut u.state {
            s.result = "exit-code".into();
            s.exec_main_status = 1;
            s.n_restarts = 7;
        }
        o.units = vec![u];
        let a = evaluate(&o, &Config::default());
        assert_eq!(
            ids(&a),
            vec![("unit-failed", Severity::Critical, "kubelet.service")]
        );
        assert!(
            a.findings[0]
                .message
                .contains("crash-looping: Result=exit-code, exit status 1"),
            "{}",
            a.findings[0].message
        );
        o.units = vec![unit("loaded", "failed", "failed", "enabled")];
        assert_eq!(
            evaluate(&o, &Config::default()).findings[0].id(),
            "unit-failed"
        );
        // Starting normally is fine.
        o.units = vec![unit("loaded", "activating", "start", "enabled")];
        assert!(evaluate(&o, &Config::default()).findings.is_empty());
    }

    #[test]
    fn alternative_unit_is_named() {
        let mut o = healthy();
        let mut u = unit("loaded", "inactive", "dead", "enabled");
        u.name = "k3s.service".into();
        o.units = vec![u];
        let a = evaluate(&o, &Config::default());
        assert_eq!(a.findings[0].subject(), "k3s.service");
        assert!(a.findings[0]
            .message
            .contains("in place of kubelet.service"));
    }

    #[test]
    fn swap_critical_when_kubelet_refuses() {
        let a = evaluate(&with_swap(healthy()), &Config::default());
        assert_eq!(a.status, Status::Critical);
        assert_eq!(a.reboot_safe, Some(false));
        assert_eq!(
            ids(&a),
            vec![
                ("swap-active", Severity::Critical, "/swapfile"),
                ("swap-in-fstab", Severity::Critical, "/etc/fstab:3")
            ]
        );
        assert_eq!(
            a.findings[1].remedy_line().as_deref(),
            Some("taint-guard check --fix --only fstab-comment")
        );
    }

    #[test]
    fn swap_only_active_is_reboot_safe() {
        let mut o = with_swap(healthy());
        o.fstab = Probe::Ok(FstabSwap::empty("/etc/fstab"));
        let a = evaluate(&o, &Config::default());
        assert_eq!(a.status, Status::Critical);
        assert_eq!(a.reboot_safe, Some(true));
    }

    #[test]
    fn swap_info_when_kubelet_tolerates() {
        let mut o = with_swap(healthy());
        o.kubelet_policy = policy(false);
        let a = evaluate(&o, &Config::default());
        assert_eq!(a.status, Status::Ok);
        assert_eq!(a.reboot_safe, Some(true));
        assert!(a
            .findings
            .iter()
            .all(|f| f.severity == Severity::Info && !f.fixable));
        assert!(a.findings[0].message.contains("kubelet tolerates swap"));
    }

    #[test]
    fn unknown_policy_warns_once_per_finding_and_fixes_nothing() {
        let mut o = with_swap(healthy());
        o.kubelet_policy = Some(KubeletPolicy::unknown(
            "ExecStart runs /usr/local/bin/kubelet-wrapper.sh, not a kubelet binary",
        ));
        let a = evaluate(&o, &Config::default());
        assert_eq!(a.status, Status::Warning);
        assert_eq!(
            ids(&a),
            vec![
                ("swap-active", Severity::Warning, "/swapfile"),
                ("swap-in-fstab", Severity::Warning, "/etc/fstab:3")
            ]
        );
        assert!(a.findings.iter().all(|f| !f.fixable));
        assert!(
            a.findings[0].message.ends_with("kubelet's swap policy is unknown (ExecStart runs /usr/local/bin/kubelet-wrapper.sh, not a kubelet binary): swap left alone"),
            "{}",
            a.findings[0].message
        );
        assert!(!a.findings.iter().any(|f| f.id() == "probe-failed"));
        // Swap on at the next boot and no telling whether kubelet refuses
        // it: reboot safety is unknown, not claimed.
        assert_eq!(a.reboot_safe, None);
        assert!(a.findings[1].reboot_unknown && !a.findings[0].reboot_unknown);
        // Only active now (gone after a reboot): reboot-safe.
        if let Probe::Ok(f) = &mut o.fstab {
            f.entries.clear();
        }
        assert_eq!(evaluate(&o, &Config::default()).reboot_safe, Some(true));
    }

    fn swap_unit(name: &str, dir: &str, state: &str, what: &str) -> SwapUnit {
        SwapUnit {
            name: name.into(),
            path: format!("{dir}/{name}"),
            state: state.into(),
            what: Some(what.into()),
            source_path: None,
        }
    }

    fn unit_findings(a: &Assessment) -> Vec<&str> {
        a.findings
            .iter()
            .filter(|f| f.id() == "swap-unit-enabled")
            .map(|f| &*Box::leak(f.subject().into_boxed_str()))
            .collect()
    }

    #[test]
    fn container_swap_is_the_hosts_and_never_fixable() {
        use crate::virt::Virtualization;
        let mut o = with_swap(healthy());
        o.virtualization = Probe::Ok(Virtualization::Container("lxc".into()));
        // What observe reads in a container: the generator ignores the line.
        if let Probe::Ok(f) = &mut o.fstab {
            let mut e = f.entries.remove(0);
            e.boot = crate::fstab::Boot::InContainer;
            f.not_at_boot.push(e);
        }
        o.swap_units = Probe::Ok(vec![swap_unit(
            "zram0.swap",
            "/run/systemd/generator",
            "generated",
            "/dev/zram0",
        )]);
        let a = evaluate(&o, &Config::default());
        // kubelet still sees the host's swap and would refuse it...
        assert_eq!(
            ids(&a),
            vec![("swap-active", Severity::Critical, "/swapfile")]
        );
        let f = &a.findings[0];
        // ...but nothing on this node can or may turn it off.
        assert!(!f.fixable);
        assert!(f.remedy.is_none());
        assert!(f.message.contains("container (lxc)"), "{}", f.message);
        // Swap kubelet tolerates: no advice to turn it off.
        let mut tolerant = o.clone();
        tolerant.kubelet_policy = policy(false);
        let a = evaluate(&tolerant, &Config::default());
        assert!(a.findings[0].message.ends_with("this swap is the host's"));
        // Same node as a VM: every finding, fixable.
        o.virtualization = Probe::Ok(Virtualization::Vm("kvm".into()));
        let a = evaluate(&o, &Config::default());
        assert_eq!(unit_findings(&a), vec!["zram0.swap"]);
        assert!(a.findings.iter().all(|f| f.fixable));
    }

    #[test]
    fn unreadable_virtualization_is_said_once_and_nothing_is_fixable() {
        let mut o = with_swap(healthy());
        o.virtualization = Probe::Failed("no such property".into());
        let a = evaluate(&o, &Config::default());
        let failed: Vec<_> = a
            .findings
            .iter()
            .filter(|f| f.id() == "probe-failed")
            .collect();
        assert_eq!(failed.len(), 1);
        assert_eq!(failed[0].subject(), "virtualization");
        assert_eq!(failed[0].severity, Severity::Unknown);
        assert!(a.findings.iter().all(|f| !f.fixable && f.remedy.is_none()));
        // With no bus at all, the bus finding is the one cause.
        o.bus_error = Some("no bus".into());
        let a = evaluate(&o, &Config::default());
        assert!(!a.findings.iter().any(|f| f.subject() == "virtualization"));
    }

    #[test]
    fn swap_units_outside_fstab() {
        let mut o = with_swap(healthy());
        o.swap_units = Probe::Ok(vec![
            // An admin's unit for the same file: commenting out the fstab
            // line does not stop it, so it is a finding of its own.
            swap_unit(
                "swap-extra.swap",
                "/etc/systemd/system",
                "enabled",
                "/swapfile",
            ),
            swap_unit(
                "dev-sdb2.swap",
                "/etc/systemd/system",
                "enabled",
                "/dev/sdb2",
            ),
            // fstab-generator's unit for the fstab line: explained.
            swap_unit(
                "swapfile.swap",
                "/run/systemd/generator",
                "generated",
                "/swapfile",
            ),
            // zram-generator's: not explained by fstab.
            swap_unit(
                "dev-zram0.swap",
                "/run/systemd/generator",
                "generated",
                "/dev/zram0",
            ),
        ]);
        let a = evaluate(&o, &Config::default());
        assert_eq!(
            unit_findings(&a),
            vec!["swap-extra.swap", "dev-sdb2.swap", "dev-zram0.swap"]
        );
        let zram = a
            .findings
            .iter()
            .find(|f| f.subject() == "dev-zram0.swap")
            .unwrap();
        assert!(zram
            .remedy_line()
            .as_deref()
            .unwrap()
            .starts_with("systemctl mask dev-zram0.swap"));
        assert_eq!(a.reboot_safe, Some(false));
    }

    /// The fstab-generated unit is recognised by the name systemd gives the
    /// line (LABEL= with a space, dashes), not by its What=.
    #[test]
    fn generated_unit_named_after_the_fstab_line() {
        let fstab = b"LABEL=my\\040swap none swap sw 0 0\nUUID=9b7a-11 none swap noauto 0 0\n";
        let lines = crate::fstab::swap_lines(fstab, None, None).unwrap();
        let (entries, not_at_boot) = lines
            .into_iter()
            .partition(|e| e.boot == crate::fstab::Boot::Activates);
        let mut o = healthy();
        o.fstab = Probe::Ok(FstabSwap {
            entries,
            not_at_boot,
            ..FstabSwap::empty("/etc/fstab")
        });
        let gen = "/run/systemd/generator";
        o.swap_units = Probe::Ok(vec![
            swap_unit(
                "dev-disk-by\\x2dlabel-my\\x5cx20swap.swap",
                gen,
                "generated",
                "/dev/disk/by-label/my\\x20swap",
            ),
            // noauto: generated, not at boot, still fstab's.
            swap_unit(
                "dev-disk-by\\x2duuid-9b7a\\x2d11.swap",
                gen,
                "generated",
                "/dev/disk/by-uuid/9b7a-11",
            ),
            // Old escaping (a real space) would have matched this one.
            swap_unit(
                "dev-disk-by\\x2dlabel-my\\x20swap.swap",
                gen,
                "generated",
                "/dev/disk/by-label/my swap",
            ),
            // Same name as fstab's, but an admin's file that overrides it.
            swap_unit(
                "dev-disk-by\\x2duuid-9b7a\\x2d11.swap",
                "/etc/systemd/system",
                "enabled",
                "/dev/disk/by-uuid/9b7a-11",
            ),
        ]);
        let a = evaluate(&o, &Config::default());
        assert_eq!(
            unit_findings(&a),
            vec![
                "dev-disk-by\\x2dlabel-my\\x20swap.swap",
                "dev-disk-by\\x2duuid-9b7a\\x2d11.swap"
            ]
        );
        assert_eq!(
            a.findings
                .iter()
                .filter(|f| f.id() == "swap-in-fstab")
                .map(|f| &*Box::leak(f.subject().into_boxed_str()))
                .collect::<Vec<_>>(),
            vec!["/etc/fstab:1"]
        );
        // SourcePath=/etc/fstab in the generator's directory is fstab's too
        // (the fstab may already be edited, or unreadable).
        let mut u = swap_unit("other.swap", gen, "generated", "/other");
        u.source_path = Some("/etc/fstab".into());
        o.swap_units = Probe::Ok(vec![u]);
        assert!(unit_findings(&evaluate(&o, &Config::default())).is_empty());
    }

    #[test]
    fn lines_systemd_will_not_activate_are_no_finding() {
        let fstab = b"/swapfile none swap sw 0 0\n/s2 none swap noauto\n";
        for (switch, boot_lines) in [(None, 1), (Some("systemd.swap=0"), 0)] {
            let lines = crate::fstab::swap_lines(fstab, switch, None).unwrap();
            let (entries, not_at_boot) = lines
                .into_iter()
                .partition(|e| e.boot == crate::fstab::Boot::Activates);
            let mut o = healthy();
            o.fstab = Probe::Ok(FstabSwap {
                entries,
                not_at_boot,
                swap_disabled_by_cmdline: switch.is_some(),
                cmdline_switch: switch.map(String::from),
                ..FstabSwap::empty("/etc/fstab")
            });
            let a = evaluate(&o, &Config::default());
            let n = a
                .findings
                .iter()
                .filter(|f| f.id() == "swap-in-fstab")
                .count();
            assert_eq!(n, boot_lines, "{switch:?}");
            assert_eq!(a.reboot_safe, Some(boot_lines == 0));
        }
    }

    #[test]
    fn static_unit_boots_only_when_pulled_in() {
        let mut o = healthy();
        let mut u = unit("loaded", "active", "running", "static");
        o.units = vec![u.clone()];
        let a = evaluate(&o, &Config::default());
        assert_eq!(
            ids(&a),
            vec![("unit-disabled", Severity::Critical, "kubelet.service")]
        );
        assert!(a.findings[0].message.contains("no [Install] section"));
        assert!(!a.findings[0].fixable);
        assert_eq!(
            a.findings[0].remedy_line().as_deref(),
            Some("systemctl add-wants multi-user.target kubelet.service")
        );
        if let Probe::Ok(s) = &mut u.state {
            s.wanted_by = vec!["multi-user.target".into()];
        }
        o.units = vec![u];
        assert!(evaluate(&o, &Config::default()).findings.is_empty());
    }

    /// Active swap that nothing read at boot turns on (no fstab line, no
    /// swap unit: a swap service's, say): its return is not known, so the
    /// boot is not known either, where kubelet refuses swap; accounted
    /// for (fstab line gone: off at boot), reboot-safe.
    #[test]
    fn active_swap_of_unknown_origin_makes_the_boot_unknown() {
        let mut o = with_swap(healthy());
        o.fstab = Probe::Ok(FstabSwap::empty("/etc/fstab"));
        o.swap_origins = [("/swapfile".to_string(), None)].into_iter().collect();
        let a = evaluate(&o, &Config::default());
        assert_eq!(
            ids(&a),
            vec![("swap-active", Severity::Critical, "/swapfile")]
        );
        assert!(a.findings[0].reboot_unknown);
        assert!(
            a.findings[0].message.contains("dphys-swapfile"),
            "{}",
            a.findings[0].message
        );
        assert_eq!(a.reboot_safe, None);
        o.swap_origins = [("/swapfile".to_string(), Some("/etc/fstab:3".to_string()))]
            .into_iter()
            .collect();
        let a = evaluate(&o, &Config::default());
        assert!(!a.findings[0].reboot_unknown);
        assert_eq!(a.reboot_safe, Some(true));
        // Tolerated swap: nothing to know about the boot.
        o.swap_origins = [("/swapfile".to_string(), None)].into_iter().collect();
        o.kubelet_policy = policy(false);
        assert_eq!(evaluate(&o, &Config::default()).reboot_safe, Some(true));
    }

    /// The unit files that survive a reboot decide, not UnitFileState: a
    /// disabled unit a boot hook starts is not disabled; an enabled one
    /// nothing at boot pulls in is, and enabling again is no repair; what
    /// could not be read is unknown, never critical.
    #[test]
    fn starts_at_boot_is_what_the_unit_files_say() {
        let with = |ufs: &str, b: AtBoot| {
            let mut o = healthy();
            let mut u = unit("loaded", "active", "running", ufs);
            if let Probe::Ok(s) = &mut u.state {
                s.at_boot = Some(b);
            }
            o.units = vec![u];
            evaluate(&o, &Config::default())
        };
        let a = with(
            "disabled",
            AtBoot::StartedBy {
                by: "nodeadm-run.service".into(),
                how: "runs `nodeadm init` (EKS)".into(),
                chain: vec!["multi-user.target".into(), "nodeadm-run.service".into()],
            },
        );
        assert!(a.findings.is_empty(), "{:?}", a.findings);
        assert_eq!(a.reboot_safe, Some(true));
        let a = with("enabled", AtBoot::NotStarted { until_reboot: None });
        assert_eq!(
            ids(&a),
            vec![("unit-disabled", Severity::Critical, "kubelet.service")]
        );
        assert!(!a.findings[0].fixable);
        assert_eq!(a.findings[0].remedy_line(), None);
        let a = with(
            "disabled",
            AtBoot::NotStarted {
                until_reboot: Some(vec!["multi-user.target".into(), "kubelet.service".into()]),
            },
        );
        assert!(a.findings[0].fixable);
        assert!(
            a.findings[0]
                .message
                .contains("only configuration under /run"),
            "{}",
            a.findings[0].message
        );
        let a = with(
            "disabled",
            AtBoot::Unknown {
                reason: "cannot tell: /etc/systemd/system: Permission denied".into(),
            },
        );
        assert_eq!(
            ids(&a),
            vec![("probe-failed", Severity::Unknown, "kubelet.service")]
        );
        assert_eq!(a.reboot_safe, None);
        // Not read (a fixture, an older observation): UnitFileState.
        let a = with("enabled", AtBoot::Pulled { chain: vec![] });
        assert!(a.findings.is_empty());
    }

    #[test]
    fn auto_restart_queued_is_a_crash_loop_too() {
        let mut o = healthy();
        o.units = vec![unit(
            "loaded",
            "activating",
            "auto-restart-queued",
            "enabled",
        )];
        assert_eq!(
            evaluate(&o, &Config::default()).findings[0].id(),
            "unit-failed"
        );
    }

    #[test]
    fn deleted_swap_file_is_not_fixable() {
        let mut o = with_swap(healthy());
        if let Probe::Ok(now) = &mut o.swap_now {
            now.devices[0].device = "/swapfile (deleted)".into();
        }
        let a = evaluate(&o, &Config::default());
        let f = a.findings.iter().find(|f| f.id() == "swap-active").unwrap();
        assert!(!f.fixable);
        assert!(f.message.contains("deleted while in use"));
    }

    #[test]
    fn messages_do_not_carry_volatile_numbers() {
        let a1 = evaluate(&with_swap(healthy()), &Config::default());
        let mut o = with_swap(healthy());
        if let Probe::Ok(now) = &mut o.swap_now {
            now.devices[0].used_kib += 12345;
        }
        assert_eq!(a1.findings, evaluate(&o, &Config::default()).findings);
    }

    #[test]
    fn stopped_cleanly_in_this_boot_is_unit_stopped() {
        let mut o = healthy();
        let mut u = unit("loaded", "inactive", "dead", "enabled");
        if let Probe::Ok(s) = &mut u.state {
            s.result = "success".into();
            s.active_enter_timestamp = 1_764_300_000_000_000;
            s.inactive_enter_timestamp = 1_764_300_060_000_000;
        }
        o.units = vec![u.clone()];
        let a = evaluate(&o, &Config::default());
        assert_eq!(
            ids(&a),
            vec![("unit-stopped", Severity::Critical, "kubelet.service")]
        );
        assert!(
            a.findings[0]
                .message
                .contains("stopped cleanly at 2025-11-28T03:21:00Z"),
            "{}",
            a.findings[0].message
        );
        assert_eq!(a.reboot_safe, Some(true));
        // Never active in this boot (the seed incident): unit-inactive.
        if let Probe::Ok(s) = &mut u.state {
            s.active_enter_timestamp = 0;
            s.inactive_enter_timestamp = 0;
        }
        o.units = vec![u];
        assert_eq!(
            evaluate(&o, &Config::default()).findings[0].id(),
            "unit-inactive"
        );
    }

    /// Every remedy is a command line that `sh -c` turns into exactly the
    /// argv intended, for hostile unit names and paths too.
    #[test]
    fn every_remedy_round_trips_through_sh() {
        let hostile = "kube$let;'x\\x2d\" y.service";
        let mut obs = Vec::new();
        for (load, active, sub, ufs) in [
            ("loaded", "inactive", "dead", "disabled"),
            ("masked", "inactive", "dead", "masked"),
            ("loaded", "failed", "failed", "enabled"),
            ("loaded", "inactive", "dead", "static"),
            ("loaded", "active", "running", "enabled-runtime"),
        ] {
            let mut o = with_swap(healthy());
            let mut u = unit(load, active, sub, ufs);
            u.name = hostile.into();
            o.units = vec![u];
            if let Probe::Ok(n) = &mut o.swap_now {
                n.devices[0].device = "/var/lib/swap file $(x);".into();
            }
            o.swap_units = Probe::Ok(vec![crate::swap::SwapUnit {
                name: r"dev-disk-by\x2dlabel-my\x5cx20swap.swap".into(),
                path: "/run/systemd/generator/x.swap".into(),
                state: "generated".into(),
                what: Some("/dev/zram0".into()),
                source_path: None,
            }]);
            obs.push(o);
        }
        let mut n = 0;
        for o in obs {
            for f in evaluate(&o, &Config::default()).findings {
                let Some(r) = &f.remedy else { continue };
                let names: Vec<&str> = r.commands().iter().map(|c| c[0].as_str()).collect();
                let line = r.to_string();
                assert_eq!(
                    crate::remedy::sh_argv(&line, &names),
                    r.commands(),
                    "{line}"
                );
                n += 1;
            }
        }
        assert!(n >= 8, "{n}");
    }

    #[test]
    fn no_bus_is_unknown() {
        let mut o = healthy();
        let e = "cannot connect to the system bus at unix:path=/x: No such file or directory (os error 2)";
        o.bus_error = Some(e.into());
        o.units[0].state = Probe::Failed(e.into());
        o.kubelet_policy = None;
        o.swap_units = Probe::Failed(e.into());
        let a = evaluate(&o, &Config::default());
        assert_eq!(a.status, Status::Unknown);
        assert_eq!(a.status.exit_code(), 3);
        // Reboot safety cannot be known; the cause is said once.
        assert_eq!(a.reboot_safe, None);
        assert_eq!(
            ids(&a),
            vec![("probe-failed", Severity::Unknown, "system-bus")]
        );
        assert_eq!(
            a.findings[0]
                .message
                .matches("No such file or directory")
                .count(),
            1
        );
        assert!(a.findings[0].message.contains("DBUS_SYSTEM_BUS_ADDRESS"));
    }

    #[test]
    fn severity_override() {
        let mut cfg = Config::default();
        cfg.severity.insert("swap-active".into(), Severity::Warning);
        let mut o = with_swap(healthy());
        o.fstab = Probe::Ok(FstabSwap::empty("/etc/fstab"));
        let a = evaluate(&o, &cfg);
        assert_eq!(a.status, Status::Warning);
        assert_eq!(a.status.exit_code(), 1);
    }

    #[test]
    fn every_emitted_id_is_declared() {
        let mut o = with_swap(healthy());
        o.units.push(unit("masked", "inactive", "dead", "masked"));
        o.swap_units = Probe::Failed("x".into());
        for f in evaluate(&o, &Config::default()).findings {
            assert!(FINDING_IDS.contains(&f.id()), "{}", f.id());
        }
    }
}
