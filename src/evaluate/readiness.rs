//! Findings of the reboot-readiness checks beyond kubelet and swap: kernel
//! modules, sysctls, and a kubelet config the next start refuses. Pure.

use super::{finding, Finding, FindingKind, ProbeTarget, Severity};
use crate::config::Config;
use crate::kubelet::KubeletPolicy;
use crate::observation::{Observation, Probe};
use crate::readiness::{modules, sysctl, ModuleBoot, ModuleNow};
use crate::remedy::Remedy;

/// `sh -c 'printf …'` appending one line to `file`: the pasted remedy does
/// exactly this and nothing else.
fn append_line(line: &str, file: &str) -> Vec<String> {
    vec![
        "sh".into(),
        "-c".into(),
        format!(
            "printf '%s\\n' {} >> {}",
            crate::remedy::quote(line),
            crate::remedy::quote(file)
        ),
    ]
}

pub(super) fn findings(obs: &Observation, cfg: &Config, out: &mut Vec<Finding>) {
    kubelet_refuses(obs, out);
    if let Some(c) = &obs.kubelet_cert {
        kubelet_cert(c, cfg, out);
    }
    if let Some(r) = &obs.runtime {
        runtime(r, obs, out);
    }
    if let Some(c) = &obs.cgroup_driver {
        cgroup_driver(c, out);
    }
    match &obs.clock {
        Some(Probe::Failed(e)) => out.push(finding(
            FindingKind::ProbeFailed {
                target: ProbeTarget::Clock,
            },
            Severity::Unknown,
            format!("cannot tell whether the clock is synchronised: {e}"),
            None,
            false,
        )),
        // In a container the clock is the host's, and timedated there may
        // not even be allowed to read its state (nspawn filters adjtimex).
        Some(Probe::Ok(c)) if !c.ntp_synchronized && !in_container(obs) => clock(c, out),
        _ => {}
    }
    if let Some(r) = &obs.resolv_conf {
        if r.producer_at_boot == Some(false) {
            out.push(finding(
                FindingKind::ResolvConfNotAtBoot {
                    path: r.path.clone(),
                },
                Severity::Warning,
                format!(
                    "kubelet's resolvConf {} ({}) is written by {}, which does not start at boot: after the next boot the file is gone and pods get no DNS config (the Node still goes Ready); enable it, or point resolvConf at a file that survives",
                    r.path, r.from, r.producer
                ),
                Some(Remedy::systemctl(&["enable", &r.producer])),
                false,
            ));
        }
    }
    let masked = obs.kernel.ours_masked;
    let platform = &obs.kernel.platform;
    // Not needed here at all (no CNI bridge): not checked.
    for m in &obs.kernel.modules {
        if platform.not_needed(&modules::canonical(&m.name)).is_none() {
            module(m, cfg, masked.modules, out);
        }
    }
    let bridge = obs
        .kernel
        .modules
        .iter()
        .find(|m| modules::canonical(&m.name) == "br_netfilter");
    for s in &obs.kernel.sysctls {
        if platform.not_needed(&s.key).is_some() {
            continue;
        }
        let mut found = Vec::new();
        sysctl_finding(s, bridge, cfg, masked.sysctls, &mut found);
        // Set again at every start by a component of the platform: not
        // persisting it loses nothing.
        if platform.reapplied_by(&s.key).is_some() {
            found.retain(|f| !matches!(f.kind, FindingKind::SysctlNotPersisted { .. }));
        }
        out.extend(found);
    }
}

fn kubelet_refuses(obs: &Observation, out: &mut Vec<Finding>) {
    let (Some(KubeletPolicy::Unknown(u)), Some(k)) = (&obs.kubelet_policy, obs.kubelet()) else {
        return;
    };
    let Some(why) = &u.kubelet_refuses else {
        return;
    };
    if u.not_joined {
        out.push(finding(
            FindingKind::KubeletConfigInvalid {
                unit: k.name.clone(),
            },
            Severity::Info,
            format!(
                "{} is not joined to a cluster yet ({why}; no credentials either): it exits at every start until `kubeadm join` writes its config and credentials, by design",
                k.name
            ),
            None,
            false,
        ));
        return;
    }
    out.push(finding(
        FindingKind::KubeletConfigInvalid {
            unit: k.name.clone(),
        },
        Severity::Critical,
        format!(
            "the next start of {} will fail: {why}; a running kubelet keeps the config it started with, so the failure comes at the next restart or reboot",
            k.name
        ),
        None,
        false,
    ));
}

fn kubelet_cert(
    c: &crate::observation::KubeletCertObservation,
    cfg: &Config,
    out: &mut Vec<Finding>,
) {
    // A file taint-guard may not read is its own limit, never kubelet's
    // fault: unknown (and so the reboot's safety), with what would read it.
    if let Some(d) = &c.denied {
        // Root is refused only by a security module; anyone else by the
        // file's mode, which root passes.
        let who_reads = if d.uid == 0 {
            "A security module (SELinux, AppArmor) refuses it to root: allow taint-guard to read it"
        } else {
            "Root reads it (taint-guard.service on the host, or a pod with runAsUser: 0)"
        };
        out.push(finding(
            FindingKind::ProbeFailed {
                target: ProbeTarget::Credentials(d.path.clone()),
            },
            Severity::Unknown,
            format!(
                "taint-guard runs as uid {} and may not read {} (permission denied), so kubelet's client certificate is not checked here; \
                 that is this process's limit, not the node's. {who_reads}, \
                 or turn this check off where it cannot be made: [readiness] kubelet_cert = false",
                d.uid, d.path
            ),
            None,
            false,
        ));
        return;
    }
    let unreadable = |path: &str, e: &str, out: &mut Vec<Finding>| {
        out.push(finding(
            FindingKind::KubeletCredentialsUnreadable { path: path.into() },
            Severity::Critical,
            format!("kubelet's credentials ({}) cannot be used: {e}: kubelet cannot talk to the API server with them", c.kubeconfig),
            None,
            false,
        ))
    };
    if let Some(Probe::Failed(e)) = &c.ca {
        unreadable(c.ca_from.as_deref().unwrap_or(&c.kubeconfig), e, out);
    }
    let v = match &c.cert {
        Probe::Ok(v) => v,
        Probe::Failed(e) => {
            let at = if c.cert_from.starts_with('/') {
                &c.cert_from
            } else {
                &c.kubeconfig
            };
            unreadable(at, e, out);
            return;
        }
    };
    let rotation = if c.rotate_certificates {
        format!("rotation is on ({})", c.rotate_certificates_from)
    } else {
        format!("rotation is off ({})", c.rotate_certificates_from)
    };
    let who = v
        .subject
        .as_deref()
        .map(|s| format!(" ({s})"))
        .unwrap_or_default();
    let now = c.checked_at;
    if now >= v.not_after || now < v.not_before {
        let when = if now < v.not_before {
            format!(
                "is not valid before {} (this machine's clock says {now}: is it wrong?)",
                v.not_before
            )
        } else {
            format!("expired at {}", v.not_after)
        };
        out.push(finding(
            FindingKind::KubeletCertExpired { cert: c.cert_from.clone() },
            Severity::Critical,
            format!(
                "kubelet's client certificate{who} {when}: the API server refuses it, so kubelet cannot renew its lease or post the Node's status; {rotation}; {}",
                match &c.bootstrap_kubeconfig {
                    Some(b) => format!("at its next start kubelet asks for a new one with its --bootstrap-kubeconfig {b}, which works only while that file's token is valid"),
                    None => "kubelet has no --bootstrap-kubeconfig to ask for a new one with: issue a new one (kubeadm's documentation: \"Certificate Management with kubeadm\", \"Kubelet client certificate rotation fails\"), or join the node again".into(),
                }
            ),
            None,
            false,
        ));
        // With a bootstrap kubeconfig on disk, kubelet's next start finds
        // the client config no longer valid (isClientConfigStillValid) and
        // asks for a new certificate with it: whether its token is still
        // accepted is not known here, so neither is the boot.
        if c.bootstrap_kubeconfig.is_some() {
            if let Some(f) = out.last_mut() {
                f.reboot_unknown = true;
            }
        }
        return;
    }
    let left = v.not_after.duration_since(now);
    let days = left.as_secs() / 86_400;
    let expiring = |why: String, out: &mut Vec<Finding>| {
        out.push(finding(
            FindingKind::KubeletCertExpiring { cert: c.cert_from.clone() },
            Severity::Warning,
            format!(
                "kubelet's client certificate{who} expires at {} (in {days} days); {rotation}: {why}",
                v.not_after
            ),
            None,
            false,
        ))
    };
    if c.rotate_certificates {
        // kubelet's certificate manager (client-go) asks for a new one at a
        // jittered 70-90 % of the lifetime from notBefore: until 90 %, a
        // certificate near its end is one kubelet will still replace
        // (short-lived ones always are), not a finding.
        let lifetime = v.not_after.duration_since(v.not_before);
        let latest = v
            .not_before
            .checked_add(lifetime.mul_f64(0.9))
            .unwrap_or(v.not_after);
        if now >= latest {
            expiring(
                format!("kubelet asks for a new one between 70 % and 90 % of its lifetime (by {latest} at the latest) and still uses this one: is its CertificateSigningRequest approved?"),
                out,
            );
        }
        return;
    }
    let warn =
        jiff::SignedDuration::from_hours(cfg.readiness.cert_warn_days.min(1 << 30) as i64 * 24);
    if cfg.readiness.cert_warn_days > 0 && left < warn {
        expiring(
            format!(
                "under readiness.cert_warn_days = {}, and nothing renews it: renew it before then",
                cfg.readiness.cert_warn_days
            ),
            out,
        );
    }
}

/// kubelet's container runtime. Its unit's own findings (disabled,
/// inactive, failed…) came from the unit checks; here they learn whose unit
/// it is, and only enabling a runtime that runs stays a repair: starting,
/// restarting or unmasking a runtime is left to a person, with the remedy.
/// When no unit can be tied to the socket (nothing listens on it now and
/// no well-known runtime unit is installed), whether it comes back at boot
/// is unknown: only what is certain now is said.
fn runtime(r: &crate::observation::RuntimeObservation, obs: &Observation, out: &mut Vec<Finding>) {
    let endpoint = r
        .endpoint
        .clone()
        .unwrap_or_else(|| "container-runtime".into());
    let active = r.unit.as_ref().and_then(|unit| {
        obs.units
            .iter()
            .find(|u| &u.name == unit)
            .and_then(|u| u.state.ok())
            .map(|s| s.active_state == crate::systemd::types::ActiveState::Active)
    });
    if let Some(unit) = &r.unit {
        let triggers = obs
            .units
            .iter()
            .find(|u| &u.name == unit)
            .and_then(|u| u.state.ok())
            .map(|s| s.triggered_by.clone())
            .unwrap_or_default();
        for f in out
            .iter_mut()
            .filter(|f| f.kind.unit() == Some(unit.as_str()))
        {
            f.fixable &= f.id() == "unit-disabled" && active == Some(true);
            f.message += &format!(" ({unit} is kubelet's container runtime: {})", r.unit_from);
            // Started on demand (cri-docker.socket): a disabled service is
            // how it is installed; whether its trigger starts at boot is not
            // checked here.
            if f.id() == "unit-disabled" && !triggers.is_empty() {
                f.severity = Severity::Warning;
                f.fixable = false;
                f.remedy = None;
                f.reboot_unknown = true;
                f.message += &format!(
                    "; it is started on demand by {}, whose own boot state is not checked here",
                    triggers.join(", ")
                );
            }
        }
    }
    if let (Some(why), Some(Probe::Ok(true))) = (&r.cri_disabled, &r.answers) {
        out.push(finding(
            FindingKind::RuntimeCriDisabled {
                endpoint: endpoint.clone(),
            },
            Severity::Critical,
            format!(
                "{} accepts connections on {} but serves no CRI: its config turns the CRI plugin off ({why}); kubelet cannot run pods with it (remove the entry and restart the runtime)",
                r.unit.as_deref().unwrap_or("the runtime"),
                r.endpoint.as_deref().unwrap_or_default()
            ),
            None,
            false,
        ));
        return;
    }
    match (&r.answers, &r.unit) {
        // A known unit that is down: its own findings say so.
        (Some(Probe::Ok(false)), Some(_)) if active != Some(true) => {}
        (Some(Probe::Ok(false)), unit) => {
            let mut f = finding(
                FindingKind::RuntimeUnreachable { endpoint },
                Severity::Critical,
                match unit {
                    Some(u) => format!(
                        "{u} is active but its socket {} does not accept a connection: kubelet cannot reach its container runtime",
                        r.endpoint.as_deref().unwrap_or_default()
                    ),
                    None => format!(
                        "nothing accepts a connection on kubelet's container runtime endpoint {}: kubelet cannot run pods; no process listens on it and no well-known runtime unit (containerd, crio, cri-docker, docker) is installed, so which unit serves it, and whether it starts at boot, is unknown",
                        r.endpoint_from
                    ),
                },
                None,
                false,
            );
            f.reboot_unknown = unit.is_none();
            out.push(f);
        }
        (Some(Probe::Failed(e)), _) => out.push(finding(
            FindingKind::ProbeFailed {
                target: ProbeTarget::Runtime(endpoint),
            },
            Severity::Unknown,
            format!("cannot tell whether kubelet's container runtime answers: {e}"),
            None,
            false,
        )),
        _ => {}
    }
}

fn cgroup_driver(c: &crate::observation::CgroupDriverObservation, out: &mut Vec<Finding>) {
    use crate::readiness::cgroup_driver::RuntimeDriver;
    let RuntimeDriver::Known { driver, from } = &c.runtime else {
        return;
    };
    if driver == &c.kubelet {
        return;
    }
    out.push(finding(
        FindingKind::CgroupDriverMismatch {
            unit: c.runtime_unit.clone(),
        },
        Severity::Warning,
        format!(
            "kubelet's cgroup driver is {} ({}) but {}'s is {driver} ({from}): two managers of the same cgroups; pods are unstable under resource pressure (kubelet ≥ 1.28 with KubeletCgroupDriverFromCRI takes the runtime's instead). Make them agree (kubeadm's guide: systemd in both), then restart the runtime and kubelet",
            c.kubelet, c.kubelet_from, c.runtime_unit
        ),
        None,
        false,
    ));
}

fn in_container(obs: &Observation) -> bool {
    obs.virtualization
        .ok()
        .and_then(crate::virt::Virtualization::container)
        .is_some()
}

/// How long after a boot an unsynchronised clock is expected: an NTP
/// daemon sets the kernel's flag only after several polls (chrony and
/// timesyncd take minutes).
pub const CLOCK_SETTLE_SECS: u64 = 20 * 60;

fn clock(c: &crate::systemd::types::ClockState, out: &mut Vec<Finding>) {
    // Just booted: not synchronised *yet* is what every boot looks like.
    if let Some(up) = c.uptime_secs.filter(|u| *u < CLOCK_SETTLE_SECS) {
        out.push(finding(
            FindingKind::ClockUnsynchronised,
            Severity::Info,
            format!(
                "the clock is not NTP-synchronised yet, {} min after the boot: expected for the first minutes (warned about after {} min of uptime)",
                up / 60,
                CLOCK_SETTLE_SECS / 60
            ),
            None,
            false,
        ));
        return;
    }
    // No NTP service at all: the clock may well be kept another way (the
    // hypervisor's ptp_kvm with phc2sys, PTP hardware), which the kernel's
    // flag does not show. Said, with what would tell; not a warning.
    if !c.ntp && !c.can_ntp {
        out.push(finding(
            FindingKind::ClockUnsynchronised,
            Severity::Info,
            "the kernel's clock flag says not synchronised and systemd-timedated knows no NTP service here; if the hypervisor or PTP keeps the clock (ptp_kvm, phc2sys) the flag stays off while in sync — `chronyc tracking` or `phc_ctl` tells; with no time service at all, install one (systemd-timesyncd or chrony)".to_string(),
            None,
            false,
        ));
        return;
    }
    let (why, remedy) = match (c.ntp, c.can_ntp) {
        (true, _) => (
            "an NTP service systemd-timedated knows is running but has not synchronised it (timedatectl timesync-status, or the service's own status, says why)".to_string(),
            None,
        ),
        (false, true) => (
            "no NTP service systemd-timedated knows is running; the remedy enables and starts it".to_string(),
            Some(Remedy::cmd(&["timedatectl", "set-ntp", "true"])),
        ),
        (false, false) => (
            "systemd-timedated knows no NTP service here (it knows systemd-timesyncd and the units listed in ntp-units.d; a chrony or ntpd it does not list is not known to it)".to_string(),
            None,
        ),
    };
    out.push(finding(
        FindingKind::ClockUnsynchronised,
        Severity::Warning,
        format!("the clock is not NTP-synchronised (the kernel's flag, as timedatectl shows it; chrony without `rtcsync` leaves it off while in sync): {why}; a skewed clock makes certificates look expired or not yet valid and leases look stale"),
        remedy,
        false,
    ));
}

fn probe_failed(target: &str, why: &str, what: &str, out: &mut Vec<Finding>) {
    out.push(finding(
        FindingKind::ProbeFailed {
            target: ProbeTarget::Kernel(target.into()),
        },
        Severity::Unknown,
        format!("cannot tell {what}: {why}"),
        None,
        false,
    ));
}

fn module(
    m: &crate::observation::ModuleObservation,
    cfg: &Config,
    ours_masked: bool,
    out: &mut Vec<Finding>,
) {
    let name = &m.name;
    let now = match &m.now {
        Probe::Ok(n) => *n,
        Probe::Failed(e) => {
            probe_failed(
                "/proc/modules",
                e,
                &format!("whether {name} is loaded"),
                out,
            );
            return;
        }
    };
    let boot = match &m.at_boot {
        Probe::Ok(b) => b,
        Probe::Failed(e) => {
            if now != ModuleNow::BuiltIn {
                probe_failed(
                    "modules-load.d",
                    e,
                    &format!("whether {name} is loaded at the next boot"),
                    out,
                );
            }
            return;
        }
    };
    let persist = append_line(name, modules::OURS);
    match (now, boot) {
        (ModuleNow::Absent, b) => {
            let mut remedy = Remedy::cmd(&["modprobe", name]);
            if !b.loads() && !ours_masked {
                remedy = remedy.then(&persist);
            }
            out.push(finding(
                FindingKind::ModuleNotLoaded {
                    module: name.clone(),
                },
                Severity::Warning,
                format!(
                    "kernel module {name} is not loaded{}: kubelet's pod networking needs it",
                    match b {
                        ModuleBoot::Listed { at } => format!(
                            " (listed in {at}, yet not in the kernel: is it installed for this kernel?)"
                        ),
                        ModuleBoot::Cmdline => {
                            " (named by modules_load= on the kernel command line, yet not in the kernel)".into()
                        }
                        ModuleBoot::OnUse => {
                            " yet (the kernel loads it at the first mount that needs it)".into()
                        }
                        _ => String::new(),
                    }
                ),
                Some(remedy),
                false,
            ));
        }
        (_, b) if b.loads() => {}
        (_, _) => {
            out.push(finding(
                FindingKind::ModuleNotPersisted {
                    module: name.clone(),
                },
                Severity::Warning,
                format!(
                    "kernel module {name} is loaded now, but nothing loads it at the next boot (no modules-load.d line, no modules_load= on the kernel command line): after a reboot it is missing until something loads it again{}",
                    if ours_masked {
                        format!("; {} is masked (a link): list it in a file of your own", modules::OURS)
                    } else if cfg.fix.persist_modules {
                        format!("; the remedy lists it in {}", modules::OURS)
                    } else {
                        "; fix.persist_modules is off in config".into()
                    }
                ),
                (!ours_masked).then(|| Remedy::cmd(&persist)),
                cfg.fix.persist_modules && !ours_masked,
            ));
        }
    }
}

fn sysctl_finding(
    s: &crate::observation::SysctlObservation,
    bridge: Option<&crate::observation::ModuleObservation>,
    cfg: &Config,
    ours_masked: bool,
    out: &mut Vec<Finding>,
) {
    let key = &s.key;
    let now = match &s.now {
        Probe::Ok(v) => v,
        Probe::Failed(e) => {
            probe_failed(
                &sysctl::proc_path(key),
                e,
                &format!("the value of {key}"),
                out,
            );
            return;
        }
    };
    let is_bridge = key.starts_with("net.bridge.");
    let Some(now) = now else {
        // net.bridge.* exist only while br_netfilter is in: checked only
        // when it is in use, and its own finding says when it is missing.
        if is_bridge && bridge.is_none_or(|b| b.now != Probe::Ok(ModuleNow::Loaded)) {
            return;
        }
        out.push(finding(
            FindingKind::SysctlWrong { key: key.clone() },
            Severity::Warning,
            format!("{key} does not exist in this kernel"),
            None,
            false,
        ));
        return;
    };
    let boot = match &s.at_boot {
        Probe::Ok(b) => b,
        Probe::Failed(e) => {
            probe_failed(
                "sysctl.d",
                e,
                &format!("the value of {key} at the next boot"),
                out,
            );
            return;
        }
    };
    let want = &s.want;
    let line = format!("{key} = {want}");
    let persist = append_line(&line, sysctl::OURS);
    let boot_ok = boot
        .value
        .as_deref()
        .is_some_and(|v| sysctl::same_value(v, want));
    let at_boot = match &boot.value {
        Some(v) => format!("the next boot sets {v} ({})", boot.from),
        None => "no file sets it for the next boot and its kernel default is not known here".into(),
    };
    // A line of ours would not be the last word: name the one that is.
    let overridden = match (&boot.overridden_after_ours_by, ours_masked) {
        (Some(at), _) => Some(format!(
            "; {at} sets it after any line in {}: change it there",
            sysctl::OURS
        )),
        (None, true) => Some(format!(
            "; {} is masked (a link): set it in a file of your own",
            sysctl::OURS
        )),
        (None, false) => None,
    };
    if !sysctl::same_value(now, want) {
        let mut remedy = Remedy::cmd(&["sysctl", "-w", &format!("{key}={want}")]);
        if !boot_ok && overridden.is_none() {
            remedy = remedy.then(&persist);
        }
        out.push(finding(
            FindingKind::SysctlWrong { key: key.clone() },
            Severity::Warning,
            format!(
                "{key} is {now}, kubelet's pod networking needs {want}; {at_boot}{}",
                overridden.clone().unwrap_or_default()
            ),
            Some(remedy),
            false,
        ));
        return;
    }
    if boot_ok {
        return;
    }
    // Nothing is written because of an unknown: with the boot value not
    // known, the line would be a guess's repair.
    let fixable = overridden.is_none() && cfg.fix.persist_sysctls && boot.value.is_some();
    let mut f = finding(
        FindingKind::SysctlNotPersisted { key: key.clone() },
        Severity::Warning,
        format!(
            "{key} is {want} now, but {at_boot}: set by hand (sysctl -w) or by a tool, lost at a reboot until something sets it again{}{}",
            overridden.clone().unwrap_or_default(),
            match (&overridden, cfg.fix.persist_sysctls) {
                (Some(_), _) => String::new(),
                (None, true) => format!("; the remedy writes it to {}", sysctl::OURS),
                (None, false) => "; fix.persist_sysctls is off in config".into(),
            }
        ),
        overridden.is_none().then(|| Remedy::cmd(&persist)),
        fixable,
    );
    f.reboot_unknown = boot.value.is_none();
    out.push(f);
}

#[cfg(test)]
mod tests {
    use crate::config::Config;
    use crate::evaluate::{evaluate, Status};
    use crate::kubelet::{KubeletPolicy, SwapPolicy, UnknownPolicy};
    use crate::observation::{
        FstabSwap, KernelObservation, ModuleObservation, Observation, Probe, SysctlObservation,
        UnitObservation,
    };
    use crate::readiness::{BootValue, ModuleBoot, ModuleNow};
    use crate::swap::SwapNow;

    fn node(kernel: KernelObservation) -> Observation {
        Observation {
            bus_error: None,
            pause: None,
            swap_cgroups: None,
            units: vec![UnitObservation::kubelet(
                "loaded", "active", "running", "enabled", "success",
            )],
            swap_now: Probe::Ok(SwapNow::default()),
            fstab: Probe::Ok(FstabSwap::empty("/etc/fstab")),
            swap_units: Probe::Ok(vec![]),
            swap_origins: Default::default(),
            kubelet_policy: Some(KubeletPolicy::Known(SwapPolicy::builtin(true))),
            virtualization: Probe::Ok(crate::virt::Virtualization::None),
            kernel,
            kubelet_cert: None,
            clock: None,
            runtime: None,
            cgroup_driver: None,
            resolv_conf: None,
        }
    }

    fn module(name: &str, now: ModuleNow, boot: ModuleBoot) -> ModuleObservation {
        ModuleObservation {
            name: name.into(),
            now: Probe::Ok(now),
            at_boot: Probe::Ok(boot),
        }
    }

    fn sysctl(
        key: &str,
        now: Option<&str>,
        boot: Option<&str>,
        after: Option<&str>,
    ) -> SysctlObservation {
        SysctlObservation {
            key: key.into(),
            want: "1".into(),
            now: Probe::Ok(now.map(String::from)),
            at_boot: Probe::Ok(BootValue {
                value: boot.map(String::from),
                from: "/etc/sysctl.d/k8s.conf:1".into(),
                ours_wins: after.is_none(),
                overridden_after_ours_by: after.map(String::from),
            }),
        }
    }

    fn ids(o: &Observation) -> Vec<(&'static str, String, bool)> {
        evaluate(o, &Config::default())
            .findings
            .iter()
            .map(|f| (f.id(), f.subject(), f.fixable))
            .collect()
    }

    #[test]
    fn persisted_and_in_effect_is_clean() {
        let o = node(KernelObservation {
            skipped: None,
            platform: Default::default(),
            ours_masked: Default::default(),
            modules: vec![
                module("overlay", ModuleNow::Loaded, ModuleBoot::OnUse),
                module("br_netfilter", ModuleNow::BuiltIn, ModuleBoot::BuiltIn),
            ],
            sysctls: vec![sysctl("net.ipv4.ip_forward", Some("1"), Some("1"), None)],
        });
        let a = evaluate(&o, &Config::default());
        assert_eq!((a.status, a.reboot_safe), (Status::Ok, Some(true)));
    }

    /// The clock: a warning only past the first minutes after a boot and
    /// where an NTP service is known; before, or with none known (the
    /// hypervisor or PTP may keep it), said at info with what would tell.
    /// resolvConf under /run written by a service that does not start at
    /// boot: the Node comes back Ready, pods' DNS does not: after_reboot,
    /// not reboot_safe.
    #[test]
    fn resolv_conf_whose_writer_does_not_start_at_boot() {
        let mut o = node(KernelObservation::default());
        o.resolv_conf = Some(crate::observation::ResolvConfObservation {
            path: "/run/systemd/resolve/resolv.conf".into(),
            from: "resolvConf in /var/lib/kubelet/config.yaml".into(),
            producer: "systemd-resolved.service".into(),
            producer_at_boot: Some(false),
        });
        let a = evaluate(&o, &Config::default());
        assert_eq!(
            ids(&o),
            vec![(
                "resolv-conf-not-at-boot",
                "/run/systemd/resolve/resolv.conf".into(),
                false
            )]
        );
        assert_eq!(a.reboot_safe, Some(true));
        assert_eq!(
            a.after_reboot,
            vec!["resolv-conf-not-at-boot:/run/systemd/resolve/resolv.conf".to_string()]
        );
        for at_boot in [Some(true), None] {
            if let Some(r) = &mut o.resolv_conf {
                r.producer_at_boot = at_boot;
            }
            assert!(ids(&o).is_empty());
        }
    }

    /// containerd accepting connections with its CRI turned off in its
    /// config: kubelet can run no pod, now or after a reboot.
    #[test]
    fn a_runtime_that_serves_no_cri_is_not_reboot_safe() {
        let mut o = node(KernelObservation::default());
        o.runtime = Some(crate::observation::RuntimeObservation {
            endpoint: Some("/run/containerd/containerd.sock".into()),
            endpoint_from: "flag".into(),
            unit: None,
            unit_from: String::new(),
            answers: Some(Probe::Ok(true)),
            cri_disabled: Some("disabled_plugins names \"cri\"".into()),
        });
        let a = evaluate(&o, &Config::default());
        assert_eq!(
            ids(&o),
            vec![(
                "runtime-cri-disabled",
                "/run/containerd/containerd.sock".into(),
                false
            )]
        );
        assert_eq!((a.status, a.reboot_safe), (Status::Critical, Some(false)));
        if let Some(r) = &mut o.runtime {
            r.cri_disabled = None;
        }
        assert!(ids(&o).is_empty());
    }

    #[test]
    fn clock_warns_only_when_it_should_be_synchronised() {
        use crate::systemd::types::ClockState;
        let judge = |ntp: bool, can_ntp: bool, up: Option<u64>| {
            let mut o = node(KernelObservation::default());
            o.clock = Some(Probe::Ok(ClockState {
                ntp_synchronized: false,
                ntp,
                can_ntp,
                uptime_secs: up,
            }));
            let a = evaluate(&o, &Config::default());
            assert_eq!(a.findings.len(), 1, "{:?}", a.findings);
            (a.findings[0].severity, a.findings[0].message.clone())
        };
        let (sev, m) = judge(true, true, Some(5 * 60));
        assert_eq!(sev, crate::finding::Severity::Info);
        assert!(m.contains("5 min after the boot"), "{m}");
        assert_eq!(
            judge(true, true, Some(3600)).0,
            crate::finding::Severity::Warning
        );
        assert_eq!(
            judge(false, true, None).0,
            crate::finding::Severity::Warning
        );
        let (sev, m) = judge(false, false, Some(3600));
        assert_eq!(sev, crate::finding::Severity::Info);
        assert!(m.contains("ptp_kvm"), "{m}");
    }

    #[test]
    fn in_effect_now_but_lost_at_reboot_is_said_apart_from_reboot_safe() {
        let o = node(KernelObservation {
            skipped: None,
            platform: Default::default(),
            ours_masked: Default::default(),
            modules: vec![module(
                "br_netfilter",
                ModuleNow::Loaded,
                ModuleBoot::NotLoaded,
            )],
            sysctls: vec![sysctl("net.ipv4.ip_forward", Some("1"), Some("0"), None)],
        });
        let a = evaluate(&o, &Config::default());
        assert_eq!(
            ids(&o),
            vec![
                ("module-not-persisted", "br_netfilter".into(), true),
                ("sysctl-not-persisted", "net.ipv4.ip_forward".into(), true),
            ]
        );
        // The Node still goes Ready after the boot: reboot-safe keeps that
        // one meaning; what differs is its own verdict.
        assert_eq!((a.status, a.reboot_safe), (Status::Warning, Some(true)));
        assert_eq!(
            a.after_reboot,
            vec![
                "module-not-persisted:br_netfilter".to_string(),
                "sysctl-not-persisted:net.ipv4.ip_forward".to_string()
            ]
        );
        // An operator who silences them to info: info findings do not
        // count.
        let mut cfg = Config::default();
        cfg.severity.insert(
            "module-not-persisted".into(),
            crate::finding::Severity::Info,
        );
        cfg.severity.insert(
            "sysctl-not-persisted".into(),
            crate::finding::Severity::Info,
        );
        let a = evaluate(&o, &cfg);
        assert_eq!((a.status, a.reboot_safe), (Status::Ok, Some(true)));
        assert!(a.after_reboot.is_empty());
    }

    #[test]
    fn wrong_now_missing_module_and_overridden_file() {
        let o = node(KernelObservation {
            skipped: None,
            platform: Default::default(),
            ours_masked: Default::default(),
            modules: vec![module(
                "br_netfilter",
                ModuleNow::Absent,
                ModuleBoot::NotLoaded,
            )],
            sysctls: vec![
                // net.bridge.* absent with br_netfilter missing: said once,
                // by the module.
                sysctl("net.bridge.bridge-nf-call-iptables", None, Some("1"), None),
                sysctl("net.ipv4.ip_forward", Some("0"), Some("0"), None),
            ],
        });
        let a = evaluate(&o, &Config::default());
        assert_eq!(
            ids(&o),
            vec![
                ("module-not-loaded", "br_netfilter".into(), false),
                ("sysctl-wrong", "net.ipv4.ip_forward".into(), false),
            ]
        );
        // Not lost at a reboot: nothing in effect now is missing then.
        assert_eq!(a.reboot_safe, Some(true));
        assert_eq!(
            a.findings[0].remedy_line().unwrap(),
            r#"modprobe br_netfilter && sh -c "printf '%s\\n' br_netfilter >> /etc/modules-load.d/taint-guard.conf""#
        );
        assert_eq!(
            a.findings[1].remedy_line().unwrap(),
            r#"sysctl -w 'net.ipv4.ip_forward=1' && sh -c "printf '%s\\n' 'net.ipv4.ip_forward = 1' >> /etc/sysctl.d/99-taint-guard.conf""#
        );
        // A file after ours sets it back: no remedy that would not stick.
        let o = node(KernelObservation {
            skipped: None,
            platform: Default::default(),
            ours_masked: Default::default(),
            modules: vec![],
            sysctls: vec![sysctl(
                "net.ipv4.ip_forward",
                Some("1"),
                Some("0"),
                Some("/etc/sysctl.d/zz.conf:2"),
            )],
        });
        let a = evaluate(&o, &Config::default());
        let f = &a.findings[0];
        assert_eq!(
            (f.id(), f.fixable, f.remedy.is_none()),
            ("sysctl-not-persisted", false, true)
        );
        assert!(
            f.message.contains("/etc/sysctl.d/zz.conf:2"),
            "{}",
            f.message
        );
        // Unknown kernel default and no file: not claimed lost, not safe.
        let o = node(KernelObservation {
            skipped: None,
            platform: Default::default(),
            ours_masked: Default::default(),
            modules: vec![],
            sysctls: vec![sysctl("vm.overcommit_memory", Some("1"), None, None)],
        });
        let a = evaluate(&o, &Config::default());
        assert!(a.findings[0].reboot_unknown);
        assert_eq!(a.reboot_safe, None);
    }

    #[test]
    fn unreadable_sources_are_unknown_once() {
        let o = node(KernelObservation {
            skipped: None,
            platform: Default::default(),
            ours_masked: Default::default(),
            modules: vec![ModuleObservation {
                name: "br_netfilter".into(),
                now: Probe::Ok(ModuleNow::Loaded),
                at_boot: Probe::Failed("listing /etc/modules-load.d: permission denied".into()),
            }],
            sysctls: vec![],
        });
        let a = evaluate(&o, &Config::default());
        assert_eq!(a.status, Status::Unknown);
        assert_eq!(
            ids(&o),
            vec![("probe-failed", "modules-load.d".into(), false)]
        );
    }

    #[test]
    fn a_config_kubelet_refuses_is_critical_while_it_runs() {
        let mut o = node(KernelObservation::default());
        o.kubelet_policy = Some(KubeletPolicy::Unknown(UnknownPolicy {
            reason: "x".into(),
            flavour: None,
            sources: vec![],
            kubelet_refuses: Some("/var/lib/kubelet/config.yaml:3:1: did not find expected key: kubelet would not start".into()),
            not_joined: false,
        }));
        let a = evaluate(&o, &Config::default());
        assert_eq!(
            ids(&o),
            vec![("kubelet-config-invalid", "kubelet.service".into(), false)]
        );
        assert_eq!((a.status, a.reboot_safe), (Status::Critical, Some(false)));
        // A node image before `kubeadm join`, kubelet crash-looping by
        // design: said, not critical, and no restart planned.
        if let Some(KubeletPolicy::Unknown(u)) = &mut o.kubelet_policy {
            u.not_joined = true;
        }
        o.units = vec![crate::observation::UnitObservation::kubelet(
            "loaded",
            "activating",
            "auto-restart",
            "enabled",
            "exit-code",
        )];
        let a = evaluate(&o, &Config::default());
        assert!(
            a.findings
                .iter()
                .all(|f| f.severity == crate::finding::Severity::Info && !f.fixable),
            "{:?}",
            a.findings
        );
        assert_eq!(a.status, Status::Ok);
        // Merely not reproduced: no such claim.
        if let Some(KubeletPolicy::Unknown(u)) = &mut o.kubelet_policy {
            u.kubelet_refuses = None;
            u.not_joined = false;
        }
        o.units = node(KernelObservation::default()).units;
        assert!(ids(&o).is_empty());
    }

    fn cert_obs(
        not_after: &str,
        now: &str,
        rotate: bool,
    ) -> crate::observation::KubeletCertObservation {
        crate::observation::KubeletCertObservation {
            kubeconfig: "/etc/kubernetes/kubelet.conf".into(),
            cert_from: "/var/lib/kubelet/pki/kubelet-client-current.pem".into(),
            cert: Probe::Ok(crate::readiness::cert::CertValidity {
                not_before: "2025-01-01T00:00:00Z".parse().unwrap(),
                not_after: not_after.parse().unwrap(),
                subject: Some("system:node:w1".into()),
            }),
            ca: Some(Probe::Ok(1)),
            ca_from: Some("/etc/kubernetes/pki/ca.crt".into()),
            rotate_certificates: rotate,
            rotate_certificates_from: "default (v1beta1: false)".into(),
            bootstrap_kubeconfig: None,
            checked_at: now.parse().unwrap(),
            denied: None,
        }
    }

    /// An expired client certificate: critical now; after the boot, kubelet
    /// asks for a new one with its bootstrap kubeconfig when that file is
    /// there (whether its token is still accepted is not known: unknown),
    /// and cannot without it (not reboot-safe).
    #[test]
    fn expired_certificate_with_and_without_a_bootstrap_kubeconfig() {
        let mut o = node(KernelObservation::default());
        o.kubelet_cert = Some(cert_obs(
            "2026-01-01T00:00:00Z",
            "2026-02-01T00:00:00Z",
            true,
        ));
        let a = evaluate(&o, &Config::default());
        assert_eq!((a.status, a.reboot_safe), (Status::Critical, Some(false)));
        if let Some(c) = &mut o.kubelet_cert {
            c.bootstrap_kubeconfig = Some("/etc/kubernetes/bootstrap-kubelet.conf".into());
        }
        let a = evaluate(&o, &Config::default());
        assert_eq!((a.status, a.reboot_safe), (Status::Critical, None));
        assert!(a.findings[0].reboot_unknown);
    }

    /// A credentials file this process may not read (kubeadm's 0600, the
    /// report-only pod's uid 65534): unknown, never a critical about kubelet,
    /// the reboot's safety unknown, with the uid and what would read it.
    #[test]
    fn kubelet_credentials_denied_to_this_process_are_unknown_not_critical() {
        let mut c = cert_obs("2027-01-01T00:00:00Z", "2026-01-01T00:00:00Z", true);
        c.cert = Probe::Failed(String::new());
        c.denied = Some(crate::observation::ReadDenied {
            path: "/etc/kubernetes/kubelet.conf".into(),
            uid: 65534,
        });
        let mut o = node(KernelObservation::default());
        o.kubelet_cert = Some(c);
        let a = evaluate(&o, &Config::default());
        assert_eq!(
            ids(&o),
            vec![(
                "probe-failed",
                "credentials:/etc/kubernetes/kubelet.conf".into(),
                false
            )]
        );
        assert_eq!((a.status, a.reboot_safe), (Status::Unknown, None));
        let m = &a.findings[0].message;
        assert!(
            m.contains("uid 65534")
                && m.contains("permission denied")
                && m.contains("Root reads it")
                && m.contains("kubelet_cert = false"),
            "{m}"
        );
        // Root refused: a security module, not the mode.
        let mut c = o.kubelet_cert.clone().unwrap();
        c.denied.as_mut().unwrap().uid = 0;
        o.kubelet_cert = Some(c);
        let a = evaluate(&o, &Config::default());
        let m = &a.findings[0].message;
        assert!(
            m.contains("uid 0") && m.contains("security module") && !m.contains("Root reads it"),
            "{m}"
        );
    }

    #[test]
    fn kubelet_certificate_expired_expiring_and_unreadable() {
        let at = |not_after: &str, now: &str, rotate: bool| {
            let mut o = node(KernelObservation::default());
            o.kubelet_cert = Some(cert_obs(not_after, now, rotate));
            evaluate(&o, &Config::default())
        };
        let a = at("2026-01-01T00:00:00Z", "2026-01-01T00:00:00Z", false);
        assert_eq!(a.findings[0].id(), "kubelet-cert-expired");
        assert_eq!((a.status, a.reboot_safe), (Status::Critical, Some(false)));
        assert!(
            a.findings[0]
                .message
                .contains("expired at 2026-01-01T00:00:00Z"),
            "{}",
            a.findings[0].message
        );
        // Before notBefore: the clock is suspect, the API server refuses it.
        let a = at("2027-01-01T00:00:00Z", "2024-06-01T00:00:00Z", false);
        assert!(
            a.findings[0].message.contains("is not valid before"),
            "{}",
            a.findings[0].message
        );
        // Rotation on, past 90 % of the lifetime (notBefore 2025-01-01) and
        // still this one: kubelet should have replaced it.
        let a = at("2026-01-20T00:00:00Z", "2026-01-01T00:00:00Z", true);
        assert_eq!(a.findings[0].id(), "kubelet-cert-expiring");
        assert_eq!((a.status, a.reboot_safe), (Status::Warning, Some(true)));
        assert!(
            a.findings[0].message.contains("in 19 days")
                && a.findings[0].message.contains("between 70 % and 90 %")
                && a.findings[0].message.contains("CertificateSigningRequest"),
            "{}",
            a.findings[0].message
        );
        // Rotation on, 10 days left of 11 (a short-lived certificate, 9 %
        // of it used): kubelet replaces it at 70-90 %; no warning, though
        // under cert_warn_days.
        let mut c = cert_obs("2026-01-11T00:00:00Z", "2026-01-01T00:00:00Z", true);
        if let Probe::Ok(v) = &mut c.cert {
            v.not_before = "2025-12-31T00:00:00Z".parse().unwrap();
        }
        let mut o = node(KernelObservation::default());
        o.kubelet_cert = Some(c);
        assert!(ids(&o).is_empty(), "{:?}", ids(&o));
        // Rotation off: the fixed window.
        let a = at("2026-01-20T00:00:00Z", "2026-01-01T00:00:00Z", false);
        assert_eq!(a.findings[0].id(), "kubelet-cert-expiring");
        assert!(
            a.findings[0].message.contains("nothing renews it"),
            "{}",
            a.findings[0].message
        );
        // 31 days left: nothing; a warning window of 0 days: nothing either.
        assert!(at("2026-02-01T00:00:00Z", "2026-01-01T00:00:00Z", false)
            .findings
            .is_empty());
        let mut cfg = Config::default();
        cfg.readiness.cert_warn_days = 0;
        let mut o = node(KernelObservation::default());
        o.kubelet_cert = Some(cert_obs(
            "2026-01-02T00:00:00Z",
            "2026-01-01T00:00:00Z",
            false,
        ));
        assert!(evaluate(&o, &cfg).findings.is_empty());
        let mut c = cert_obs("2027-01-01T00:00:00Z", "2026-01-01T00:00:00Z", false);
        c.ca = Some(Probe::Failed(
            "/etc/kubernetes/pki/ca.crt: No such file or directory".into(),
        ));
        o.kubelet_cert = Some(c);
        assert_eq!(
            ids(&o),
            vec![(
                "kubelet-credentials-unreadable",
                "/etc/kubernetes/pki/ca.crt".into(),
                false
            )]
        );
    }
}
