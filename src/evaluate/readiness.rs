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
    for m in &obs.kernel.modules {
        module(m, cfg, out);
    }
    let bridge = obs
        .kernel
        .modules
        .iter()
        .find(|m| modules::canonical(&m.name) == "br_netfilter");
    for s in &obs.kernel.sysctls {
        sysctl_finding(s, bridge, cfg, out);
    }
}

fn kubelet_refuses(obs: &Observation, out: &mut Vec<Finding>) {
    let (Some(KubeletPolicy::Unknown(u)), Some(k)) = (&obs.kubelet_policy, obs.kubelet()) else {
        return;
    };
    let Some(why) = &u.kubelet_refuses else {
        return;
    };
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

fn module(m: &crate::observation::ModuleObservation, cfg: &Config, out: &mut Vec<Finding>) {
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
            if !b.loads() {
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
                    if cfg.fix.persist_modules {
                        format!("; the remedy lists it in {}", modules::OURS)
                    } else {
                        "; fix.persist_modules is off in config".into()
                    }
                ),
                Some(Remedy::cmd(&persist)),
                cfg.fix.persist_modules,
            ));
        }
    }
}

fn sysctl_finding(
    s: &crate::observation::SysctlObservation,
    bridge: Option<&crate::observation::ModuleObservation>,
    cfg: &Config,
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
    let overridden = boot.overridden_after_ours_by.as_ref().map(|at| {
        format!(
            "; {at} sets it after any line in {}: change it there",
            sysctl::OURS
        )
    });
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
    let fixable = overridden.is_none() && cfg.fix.persist_sysctls;
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
            kubelet_policy: Some(KubeletPolicy::Known(SwapPolicy::builtin(true))),
            virtualization: Probe::Ok(crate::virt::Virtualization::None),
            kernel,
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
            modules: vec![
                module("overlay", ModuleNow::Loaded, ModuleBoot::OnUse),
                module("br_netfilter", ModuleNow::BuiltIn, ModuleBoot::BuiltIn),
            ],
            sysctls: vec![sysctl("net.ipv4.ip_forward", Some("1"), Some("1"), None)],
        });
        let a = evaluate(&o, &Config::default());
        assert_eq!((a.status, a.reboot_safe), (Status::Ok, Some(true)));
    }

    #[test]
    fn in_effect_now_but_lost_at_reboot_is_not_reboot_safe() {
        let o = node(KernelObservation {
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
        assert_eq!((a.status, a.reboot_safe), (Status::Warning, Some(false)));
        // An operator who silences it to info keeps reboot_safe honest to
        // what they asked: info findings do not count.
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
    }

    #[test]
    fn wrong_now_missing_module_and_overridden_file() {
        let o = node(KernelObservation {
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
        }));
        let a = evaluate(&o, &Config::default());
        assert_eq!(
            ids(&o),
            vec![("kubelet-config-invalid", "kubelet.service".into(), false)]
        );
        assert_eq!((a.status, a.reboot_safe), (Status::Critical, Some(false)));
        // Merely not reproduced: no such claim.
        if let Some(KubeletPolicy::Unknown(u)) = &mut o.kubelet_policy {
            u.kubelet_refuses = None;
        }
        assert!(ids(&o).is_empty());
    }
}
