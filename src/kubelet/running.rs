//! The derived command line checked against the kubelet systemd runs.
//!
//! systemd expands the unit's ExecStart when it starts kubelet, and the
//! process's `/proc/PID/cmdline` is that expansion. When nothing the
//! expansion is made of changed since (the unit's files, its environment
//! files), the derivation must reproduce it. When it does not, taint-guard
//! does not read this unit the way systemd did: the policy is unknown.
//!
//! Pure: the process and the files' ages are read by `observe`.

use serde::{Deserialize, Serialize};

use super::{Flavour, KubeletPolicy, UnknownPolicy};

/// The kubelet process systemd runs, as this machine's /proc shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunningKubelet {
    pub pid: u32,
    /// `/proc/PID/cmdline`, split at its NULs.
    pub cmdline: Vec<String>,
    /// Files the command line is made of (unit file, drop-ins, environment
    /// files) modified after kubelet started: node paths.
    pub changed_since_start: Vec<String>,
}

/// What comparing the derived command line with the running kubelet's
/// found (`kubelet_policy.known.argv_check` in `--output json`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "state")]
pub enum ArgvCheck {
    /// kubelet (this PID) runs with exactly the derived command line.
    Matches { pid: u32 },
    /// Files it is made of changed since kubelet started: the running one
    /// may differ from what a restart gives, which is what was derived.
    SourcesChanged { pid: u32, changed: Vec<String> },
    /// Not compared, and why: not running, not visible from here (a pod
    /// without the host's PID namespace), not plain kubelet.
    NotCompared { why: String },
}

/// Check a derived policy against the running kubelet. A known policy
/// gains its [`ArgvCheck`]; one whose command line the running kubelet
/// contradicts, with nothing changed since it started, becomes unknown.
/// `exec_path` is the program systemd executed (ExecStart's path).
pub fn check(
    policy: KubeletPolicy,
    exec_path: &str,
    running: Result<RunningKubelet, String>,
) -> KubeletPolicy {
    let KubeletPolicy::Known(mut p) = policy else {
        return policy;
    };
    if p.flavour != Flavour::Kubelet {
        // k3s, rke2 and kubelite run kubelet inside themselves: their own
        // command line is not kubelet's.
        p.argv_check = Some(ArgvCheck::NotCompared {
            why: format!("{:?} runs kubelet in-process", p.flavour).to_lowercase(),
        });
        return KubeletPolicy::Known(p);
    }
    let r = match running {
        Ok(r) => r,
        Err(why) => {
            p.argv_check = Some(ArgvCheck::NotCompared { why });
            return KubeletPolicy::Known(p);
        }
    };
    if !r.changed_since_start.is_empty() {
        p.argv_check = Some(ArgvCheck::SourcesChanged {
            pid: r.pid,
            changed: r.changed_since_start,
        });
        return KubeletPolicy::Known(p);
    }
    if argv_matches(&p.argv, exec_path, &r.cmdline) {
        p.argv_check = Some(ArgvCheck::Matches { pid: r.pid });
        return KubeletPolicy::Known(p);
    }
    KubeletPolicy::Unknown(UnknownPolicy {
        reason: format!(
            "kubelet (PID {}) runs as {}, but its unit gives {}, and nothing that command line \
             is made of changed since kubelet started: taint-guard does not read this unit as \
             systemd did (or systemd was reloaded with an edited unit after kubelet started; \
             a restart of kubelet makes them agree)",
            r.pid,
            show(&r.cmdline),
            show(&p.argv),
        ),
        flavour: Some(p.flavour),
        sources: p.sources,
        kubelet_refuses: None,
        not_joined: false,
    })
}

/// `cmdline` is what executing `exec_path` with `argv` gives: the same, or,
/// for a script, the kernel's `#!` rewrite (binfmt_script): the interpreter,
/// its optional argument, the script's path, then `argv[1..]`.
pub fn argv_matches(argv: &[String], exec_path: &str, cmdline: &[String]) -> bool {
    if cmdline == argv {
        return true;
    }
    let rest = argv.get(1..).unwrap_or_default();
    (1..=2).any(|k| {
        cmdline.len() == k + 1 + rest.len() && cmdline[k] == exec_path && cmdline[k + 1..] == *rest
    })
}

fn show(argv: &[String]) -> String {
    let words: Vec<std::borrow::Cow<str>> = argv
        .iter()
        .map(|a| shlex::try_quote(a).unwrap_or(std::borrow::Cow::Borrowed("<NUL>")))
        .collect();
    format!("`{}`", words.join(" "))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kubelet::SwapPolicy;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    fn policy(argv: &[&str]) -> KubeletPolicy {
        let mut p = SwapPolicy::builtin(true);
        p.argv = s(argv);
        KubeletPolicy::Known(p)
    }

    fn running(cmdline: &[&str], changed: &[&str]) -> Result<RunningKubelet, String> {
        Ok(RunningKubelet {
            pid: 42,
            cmdline: s(cmdline),
            changed_since_start: s(changed),
        })
    }

    const KUBELET: &str = "/usr/bin/kubelet";

    #[test]
    fn the_same_command_line_matches() {
        let p = check(
            policy(&[KUBELET, "--config=/var/lib/kubelet/config.yaml"]),
            KUBELET,
            running(&[KUBELET, "--config=/var/lib/kubelet/config.yaml"], &[]),
        );
        assert_eq!(
            p.known().unwrap().argv_check,
            Some(ArgvCheck::Matches { pid: 42 })
        );
    }

    #[test]
    fn a_script_matches_after_its_interpreter() {
        // #!/bin/sh, and #!/usr/bin/env bash (an interpreter argument).
        for cmdline in [
            &["/bin/sh", KUBELET, "--fail-swap-on=false"][..],
            &["/usr/bin/env", "bash", KUBELET, "--fail-swap-on=false"][..],
        ] {
            assert!(argv_matches(
                &s(&[KUBELET, "--fail-swap-on=false"]),
                KUBELET,
                &s(cmdline)
            ));
        }
        // argv[0] set with `@`: the kernel passes the path, not argv[0].
        assert!(argv_matches(
            &s(&["kubelet-renamed", "-v"]),
            KUBELET,
            &s(&["/bin/sh", KUBELET, "-v"])
        ));
        // One argument more or less, or in another place, is no match.
        for cmdline in [
            &["/bin/sh", KUBELET][..],
            &["/bin/sh", KUBELET, "-v", "-v"][..],
            &["/bin/sh", "x", KUBELET, "y", "-v"][..],
            &["/bin/sh", "/usr/local/bin/kubelet", "-v"][..],
        ] {
            assert!(
                !argv_matches(&s(&[KUBELET, "-v"]), KUBELET, &s(cmdline)),
                "{cmdline:?}"
            );
        }
    }

    #[test]
    fn a_contradiction_with_nothing_changed_is_unknown() {
        let p = check(
            policy(&[KUBELET, "--fail-swap-on=true"]),
            KUBELET,
            running(&[KUBELET, "--fail-swap-on=false"], &[]),
        );
        let KubeletPolicy::Unknown(u) = p else {
            panic!("{p:?}")
        };
        assert!(u.reason.contains("PID 42"), "{}", u.reason);
        assert!(u.reason.contains("--fail-swap-on=false"), "{}", u.reason);
        assert_eq!(u.flavour, Some(Flavour::Kubelet));
    }

    #[test]
    fn a_contradiction_after_a_change_is_not_compared() {
        let p = check(
            policy(&[KUBELET, "--fail-swap-on=true"]),
            KUBELET,
            running(
                &[KUBELET, "--fail-swap-on=false"],
                &["/etc/default/kubelet"],
            ),
        );
        assert_eq!(
            p.known().unwrap().argv_check,
            Some(ArgvCheck::SourcesChanged {
                pid: 42,
                changed: s(&["/etc/default/kubelet"])
            })
        );
    }

    #[test]
    fn not_running_and_not_kubelet_are_not_compared() {
        let p = check(
            policy(&[KUBELET]),
            KUBELET,
            Err("kubelet is not running".into()),
        );
        assert!(matches!(
            p.known().unwrap().argv_check,
            Some(ArgvCheck::NotCompared { .. })
        ));
        let mut k3s = SwapPolicy::builtin(false);
        k3s.flavour = Flavour::K3s;
        k3s.argv = s(&["/usr/local/bin/k3s", "server"]);
        let p = check(
            KubeletPolicy::Known(k3s),
            "/usr/local/bin/k3s",
            running(&["/usr/local/bin/k3s", "agent"], &[]),
        );
        assert!(matches!(
            p.known().unwrap().argv_check,
            Some(ArgvCheck::NotCompared { .. })
        ));
        // An unknown policy stays what it is.
        let u = KubeletPolicy::unknown("x");
        assert_eq!(check(u.clone(), KUBELET, running(&["y"], &[])), u);
    }
}
