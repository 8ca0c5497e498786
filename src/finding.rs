//! Findings: what evaluate says about the node, typed.
//!
//! Each finding carries a [`FindingKind`] naming what it is about with typed
//! fields (a unit, a swap device, an fstab line); the stable string `id` and
//! `subject` of the JSON output, the Node annotations and the config keys
//! are derived from it, never parsed back by the planner.

use serde::ser::SerializeStruct;
use serde::{Serialize, Serializer};

use std::fmt;
use std::str::FromStr;

use serde::Deserialize;

use crate::remedy::Remedy;

/// The unit taint-guard looks after first; the kubelet flavours
/// (`k3s.service`, …) stand in for it when it is not installed.
pub const KUBELET_UNIT: &str = "kubelet.service";

/// Every finding id, stable across releases (config keys refer to them).
pub const FINDING_IDS: [&str; 28] = [
    "unit-missing",
    "unit-masked",
    "unit-broken",
    "unit-disabled",
    "unit-inactive",
    "unit-stopped",
    "unit-stopping",
    "unit-failed",
    "pause-expired",
    "swap-active",
    "swap-in-fstab",
    "swap-unit-enabled",
    "swapoff-unsafe",
    "probe-failed",
    "config-invalid",
    "kubelet-config-invalid",
    "module-not-loaded",
    "module-not-persisted",
    "sysctl-wrong",
    "sysctl-not-persisted",
    "kubelet-cert-expired",
    "kubelet-cert-expiring",
    "kubelet-credentials-unreadable",
    "clock-unsynchronised",
    "runtime-unreachable",
    "runtime-cri-disabled",
    "resolv-conf-not-at-boot",
    "cgroup-driver-mismatch",
];

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Info,
    Warning,
    Unknown,
    Critical,
}

impl FromStr for Severity {
    type Err = ();
    fn from_str(s: &str) -> Result<Self, ()> {
        Ok(match s {
            "info" => Severity::Info,
            "warning" => Severity::Warning,
            "unknown" => Severity::Unknown,
            "critical" => Severity::Critical,
            _ => return Err(()),
        })
    }
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Severity::Info => "info",
            Severity::Warning => "warning",
            Severity::Unknown => "unknown",
            Severity::Critical => "critical",
        })
    }
}

/// A probe that could not run.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ProbeTarget {
    /// No connection to systemd at all: the one cause, said once.
    SystemBus,
    /// One unit's properties.
    Unit(String),
    /// Active swap (`/proc/swaps`).
    ProcSwaps,
    /// The fstab file (node path).
    Fstab(String),
    /// The list of swap unit files.
    SwapUnits,
    /// What systemd runs in (a container activates no swap).
    Virtualization,
    /// A kernel state or boot configuration source of the readiness checks
    /// (`/proc/modules`, `modules-load.d`, `sysctl.d`, `/proc/sys/…`).
    Kernel(String),
    /// systemd-timedated (`org.freedesktop.timedate1`).
    Clock,
    /// kubelet's container runtime socket (node path).
    Runtime(String),
    /// A file of kubelet's credentials (node path).
    Credentials(String),
}

impl ProbeTarget {
    fn subject(&self) -> String {
        match self {
            ProbeTarget::SystemBus => "system-bus".into(),
            ProbeTarget::Unit(u) => u.clone(),
            ProbeTarget::ProcSwaps => "/proc/swaps".into(),
            ProbeTarget::Fstab(p) => p.clone(),
            ProbeTarget::SwapUnits => "swap-units".into(),
            ProbeTarget::Virtualization => "virtualization".into(),
            ProbeTarget::Kernel(s) => s.clone(),
            ProbeTarget::Clock => "timedate1".into(),
            ProbeTarget::Runtime(s) => format!("runtime:{s}"),
            ProbeTarget::Credentials(s) => format!("credentials:{s}"),
        }
    }
}

/// What a finding is, and about what.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum FindingKind {
    UnitMissing {
        unit: String,
    },
    UnitMasked {
        unit: String,
    },
    UnitBroken {
        unit: String,
    },
    /// Not enabled (or only until the next reboot, or nothing pulls it in).
    UnitDisabled {
        unit: String,
    },
    /// Not running, and not started in this boot.
    UnitInactive {
        unit: String,
    },
    /// Stopped cleanly after running in this boot (a person's stop?).
    UnitStopped {
        unit: String,
    },
    /// Being stopped: never interfered with.
    UnitStopping {
        unit: String,
    },
    /// Failed, or crash-looping.
    UnitFailed {
        unit: String,
    },
    PauseExpired,
    /// A swap area in /proc/swaps (the kernel's name for it).
    SwapActive {
        device: String,
    },
    /// A live swap line of fstab that systemd activates at boot.
    SwapInFstab {
        path: String,
        line: usize,
    },
    /// A swap unit that activates swap at boot outside fstab.
    SwapUnitEnabled {
        unit: String,
    },
    /// swapoff refused by the planner's guard, for these devices.
    SwapoffUnsafe {
        devices: Vec<String>,
    },
    ProbeFailed {
        target: ProbeTarget,
    },
    /// The configuration could not be (re)loaded; the daemon kept the last
    /// good one.
    ConfigInvalid {
        path: String,
    },
    /// kubelet will refuse its next start (its config file, or the unit's
    /// EnvironmentFile): a reboot hazard even while it runs today.
    KubeletConfigInvalid {
        unit: String,
    },
    /// A module kubelet networking needs is not in the kernel.
    ModuleNotLoaded {
        module: String,
    },
    /// In the kernel now, not loaded again at the next boot.
    ModuleNotPersisted {
        module: String,
    },
    /// A sysctl has another value than the one required.
    SysctlWrong {
        key: String,
    },
    /// Right now, not what the next boot sets.
    SysctlNotPersisted {
        key: String,
    },
    /// kubelet's client certificate is past its notAfter (or before its
    /// notBefore): the API server refuses kubelet.
    KubeletCertExpired {
        cert: String,
    },
    /// It expires within `readiness.cert_warn_days`.
    KubeletCertExpiring {
        cert: String,
    },
    /// kubelet's kubeconfig, client certificate or CA cannot be read or
    /// parsed.
    KubeletCredentialsUnreadable {
        path: String,
    },
    /// The clock is not NTP-synchronised: certificates and leases are
    /// judged by it.
    ClockUnsynchronised,
    /// Nothing accepts a connection on kubelet's container runtime socket
    /// now (while its unit, when one is known, is active).
    RuntimeUnreachable {
        endpoint: String,
    },
    /// The runtime accepts connections but its config turns its CRI off
    /// (containerd's `disabled_plugins`): not now, not after a reboot.
    RuntimeCriDisabled {
        endpoint: String,
    },
    /// kubelet's resolvConf is written under /run by a service that does
    /// not start at boot: after the next boot pods get no DNS config.
    ResolvConfNotAtBoot {
        path: String,
    },
    /// kubelet's cgroup driver differs from its runtime's (subject: the
    /// runtime's unit).
    CgroupDriverMismatch {
        unit: String,
    },
}

impl FindingKind {
    /// The stable id (config keys, JSON, annotations).
    pub fn id(&self) -> &'static str {
        match self {
            FindingKind::UnitMissing { .. } => "unit-missing",
            FindingKind::UnitMasked { .. } => "unit-masked",
            FindingKind::UnitBroken { .. } => "unit-broken",
            FindingKind::UnitDisabled { .. } => "unit-disabled",
            FindingKind::UnitInactive { .. } => "unit-inactive",
            FindingKind::UnitStopped { .. } => "unit-stopped",
            FindingKind::UnitStopping { .. } => "unit-stopping",
            FindingKind::UnitFailed { .. } => "unit-failed",
            FindingKind::PauseExpired => "pause-expired",
            FindingKind::SwapActive { .. } => "swap-active",
            FindingKind::SwapInFstab { .. } => "swap-in-fstab",
            FindingKind::SwapUnitEnabled { .. } => "swap-unit-enabled",
            FindingKind::SwapoffUnsafe { .. } => "swapoff-unsafe",
            FindingKind::ProbeFailed { .. } => "probe-failed",
            FindingKind::ConfigInvalid { .. } => "config-invalid",
            FindingKind::KubeletConfigInvalid { .. } => "kubelet-config-invalid",
            FindingKind::ModuleNotLoaded { .. } => "module-not-loaded",
            FindingKind::ModuleNotPersisted { .. } => "module-not-persisted",
            FindingKind::SysctlWrong { .. } => "sysctl-wrong",
            FindingKind::SysctlNotPersisted { .. } => "sysctl-not-persisted",
            FindingKind::KubeletCertExpired { .. } => "kubelet-cert-expired",
            FindingKind::KubeletCertExpiring { .. } => "kubelet-cert-expiring",
            FindingKind::KubeletCredentialsUnreadable { .. } => "kubelet-credentials-unreadable",
            FindingKind::ClockUnsynchronised => "clock-unsynchronised",
            FindingKind::RuntimeUnreachable { .. } => "runtime-unreachable",
            FindingKind::RuntimeCriDisabled { .. } => "runtime-cri-disabled",
            FindingKind::ResolvConfNotAtBoot { .. } => "resolv-conf-not-at-boot",
            FindingKind::CgroupDriverMismatch { .. } => "cgroup-driver-mismatch",
        }
    }

    /// What it is about, as shown: a unit, a device, `/etc/fstab:LINE`.
    pub fn subject(&self) -> String {
        match self {
            FindingKind::UnitMissing { unit }
            | FindingKind::UnitMasked { unit }
            | FindingKind::UnitBroken { unit }
            | FindingKind::UnitDisabled { unit }
            | FindingKind::UnitInactive { unit }
            | FindingKind::UnitStopped { unit }
            | FindingKind::UnitStopping { unit }
            | FindingKind::UnitFailed { unit }
            | FindingKind::SwapUnitEnabled { unit } => unit.clone(),
            FindingKind::PauseExpired => "pause".into(),
            FindingKind::SwapActive { device } => device.clone(),
            FindingKind::SwapInFstab { path, line } => format!("{path}:{line}"),
            FindingKind::SwapoffUnsafe { devices } => devices.join(","),
            FindingKind::ProbeFailed { target } => target.subject(),
            FindingKind::ConfigInvalid { path } => path.clone(),
            FindingKind::KubeletConfigInvalid { unit } => unit.clone(),
            FindingKind::ModuleNotLoaded { module }
            | FindingKind::ModuleNotPersisted { module } => module.clone(),
            FindingKind::SysctlWrong { key } | FindingKind::SysctlNotPersisted { key } => {
                key.clone()
            }
            FindingKind::KubeletCertExpired { cert }
            | FindingKind::KubeletCertExpiring { cert } => cert.clone(),
            FindingKind::KubeletCredentialsUnreadable { path } => path.clone(),
            FindingKind::ClockUnsynchronised => "clock".into(),
            FindingKind::RuntimeUnreachable { endpoint } => endpoint.clone(),
            FindingKind::RuntimeCriDisabled { endpoint } => endpoint.clone(),
            FindingKind::ResolvConfNotAtBoot { path } => path.clone(),
            FindingKind::CgroupDriverMismatch { unit } => unit.clone(),
        }
    }

    /// The required unit this finding is about, for unit findings.
    pub fn unit(&self) -> Option<&str> {
        match self {
            FindingKind::UnitMissing { unit }
            | FindingKind::UnitMasked { unit }
            | FindingKind::UnitBroken { unit }
            | FindingKind::UnitDisabled { unit }
            | FindingKind::UnitInactive { unit }
            | FindingKind::UnitStopped { unit }
            | FindingKind::UnitStopping { unit }
            | FindingKind::UnitFailed { unit } => Some(unit),
            _ => None,
        }
    }

    /// Critical findings of these kinds mean kubelet will not come back by
    /// itself after a reboot.
    pub fn breaks_boot(&self) -> bool {
        matches!(
            self,
            FindingKind::UnitMissing { .. }
                | FindingKind::UnitMasked { .. }
                | FindingKind::UnitBroken { .. }
                | FindingKind::UnitDisabled { .. }
                | FindingKind::UnitFailed { .. }
                | FindingKind::SwapInFstab { .. }
                | FindingKind::SwapUnitEnabled { .. }
                | FindingKind::KubeletConfigInvalid { .. }
                | FindingKind::KubeletCertExpired { .. }
                | FindingKind::KubeletCredentialsUnreadable { .. }
                | FindingKind::RuntimeCriDisabled { .. }
        )
    }

    /// Something in effect now that the next boot does not bring back: the
    /// node is not reboot-safe while such a finding stands (at warning or
    /// above, and unless the finding says the boot value is unknown).
    pub fn lost_at_reboot(&self) -> bool {
        matches!(
            self,
            FindingKind::ModuleNotPersisted { .. }
                | FindingKind::SysctlNotPersisted { .. }
                | FindingKind::ResolvConfNotAtBoot { .. }
        )
    }

    /// Swap that turns on at the next boot.
    pub fn swap_at_boot(&self) -> bool {
        matches!(
            self,
            FindingKind::SwapInFstab { .. } | FindingKind::SwapUnitEnabled { .. }
        )
    }

    /// The kind an id and subject stand for (the inverse of [`id`] and
    /// [`subject`]); `None` for an unknown id or a subject of the wrong shape.
    ///
    /// [`id`]: FindingKind::id
    /// [`subject`]: FindingKind::subject
    pub fn from_parts(id: &str, subject: &str) -> Option<FindingKind> {
        let unit = || subject.to_string();
        Some(match id {
            "unit-missing" => FindingKind::UnitMissing { unit: unit() },
            "unit-masked" => FindingKind::UnitMasked { unit: unit() },
            "unit-broken" => FindingKind::UnitBroken { unit: unit() },
            "unit-disabled" => FindingKind::UnitDisabled { unit: unit() },
            "unit-inactive" => FindingKind::UnitInactive { unit: unit() },
            "unit-stopped" => FindingKind::UnitStopped { unit: unit() },
            "unit-stopping" => FindingKind::UnitStopping { unit: unit() },
            "unit-failed" => FindingKind::UnitFailed { unit: unit() },
            "pause-expired" if subject == "pause" => FindingKind::PauseExpired,
            "swap-active" => FindingKind::SwapActive { device: unit() },
            "swap-in-fstab" => {
                let (path, line) = subject.rsplit_once(':')?;
                FindingKind::SwapInFstab {
                    path: path.into(),
                    line: line.parse().ok()?,
                }
            }
            "swap-unit-enabled" => FindingKind::SwapUnitEnabled { unit: unit() },
            "swapoff-unsafe" => FindingKind::SwapoffUnsafe {
                devices: subject.split(',').map(String::from).collect(),
            },
            "probe-failed" => FindingKind::ProbeFailed {
                target: match subject {
                    "system-bus" => ProbeTarget::SystemBus,
                    "/proc/swaps" => ProbeTarget::ProcSwaps,
                    "swap-units" => ProbeTarget::SwapUnits,
                    "virtualization" => ProbeTarget::Virtualization,
                    "timedate1" => ProbeTarget::Clock,
                    s if s.starts_with("runtime:") => {
                        ProbeTarget::Runtime(s["runtime:".len()..].into())
                    }
                    s if s.starts_with("credentials:") => {
                        ProbeTarget::Credentials(s["credentials:".len()..].into())
                    }
                    s if s.starts_with("/proc/") || s == "modules-load.d" || s == "sysctl.d" => {
                        ProbeTarget::Kernel(s.into())
                    }
                    s if s.starts_with('/') => ProbeTarget::Fstab(s.into()),
                    s => ProbeTarget::Unit(s.into()),
                },
            },
            "config-invalid" => FindingKind::ConfigInvalid { path: unit() },
            "kubelet-config-invalid" => FindingKind::KubeletConfigInvalid { unit: unit() },
            "module-not-loaded" => FindingKind::ModuleNotLoaded { module: unit() },
            "module-not-persisted" => FindingKind::ModuleNotPersisted { module: unit() },
            "sysctl-wrong" => FindingKind::SysctlWrong { key: unit() },
            "sysctl-not-persisted" => FindingKind::SysctlNotPersisted { key: unit() },
            "kubelet-cert-expired" => FindingKind::KubeletCertExpired { cert: unit() },
            "kubelet-cert-expiring" => FindingKind::KubeletCertExpiring { cert: unit() },
            "clock-unsynchronised" if subject == "clock" => FindingKind::ClockUnsynchronised,
            "runtime-unreachable" => FindingKind::RuntimeUnreachable { endpoint: unit() },
            "runtime-cri-disabled" => FindingKind::RuntimeCriDisabled { endpoint: unit() },
            "resolv-conf-not-at-boot" => FindingKind::ResolvConfNotAtBoot { path: unit() },
            "cgroup-driver-mismatch" => FindingKind::CgroupDriverMismatch { unit: unit() },
            "kubelet-credentials-unreadable" => {
                FindingKind::KubeletCredentialsUnreadable { path: unit() }
            }
            _ => return None,
        })
    }
}

/// One thing wrong (or worth knowing) on the node. Serialised as
/// `{id, severity, subject, message, remedy, fixable, reboot_unknown?}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    pub kind: FindingKind,
    pub severity: Severity,
    pub message: String,
    /// The exact command line an operator would paste (every argument
    /// quoted for POSIX sh); None where no command fixes it.
    pub remedy: Option<Remedy>,
    /// `check --fix` can repair it (under the default policy).
    pub fixable: bool,
    /// Whether kubelet comes back after a reboot depends on it, and that
    /// cannot be known (swap on at boot, kubelet's swap policy unknown).
    pub reboot_unknown: bool,
    /// For a finding that keeps recurring (a crash loop): how often, first
    /// and last seen. Not part of what makes a finding new: a count going up
    /// is not news worth a write of its own.
    pub occurrences: Option<Occurrences>,
}

/// How often a recurring finding was seen (a crash loop's restarts).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Occurrences {
    /// systemd's `NRestarts` for a crash loop.
    pub count: u32,
    pub first: jiff::Timestamp,
    pub last: jiff::Timestamp,
}

impl Finding {
    pub fn new(
        kind: FindingKind,
        severity: Severity,
        message: String,
        remedy: Option<Remedy>,
        fixable: bool,
    ) -> Finding {
        Finding {
            kind,
            severity,
            message,
            remedy,
            fixable,
            reboot_unknown: false,
            occurrences: None,
        }
    }

    /// The stable id (`unit-disabled`).
    pub fn id(&self) -> &'static str {
        self.kind.id()
    }

    /// What it is about (`kubelet.service`, `/etc/fstab:5`).
    pub fn subject(&self) -> String {
        self.kind.subject()
    }

    /// The remedy as the command line shown to people.
    pub fn remedy_line(&self) -> Option<String> {
        self.remedy.as_ref().map(|r| r.to_string())
    }
}

impl Serialize for Finding {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let n = 6 + usize::from(self.reboot_unknown) + usize::from(self.occurrences.is_some());
        let mut st = s.serialize_struct("Finding", n)?;
        st.serialize_field("id", self.id())?;
        st.serialize_field("severity", &self.severity)?;
        st.serialize_field("subject", &self.subject())?;
        st.serialize_field("message", &self.message)?;
        st.serialize_field("remedy", &self.remedy)?;
        st.serialize_field("fixable", &self.fixable)?;
        if self.reboot_unknown {
            st.serialize_field("reboot_unknown", &true)?;
        }
        if let Some(o) = &self.occurrences {
            st.serialize_field("occurrences", o)?;
        }
        st.end()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn id_and_subject_round_trip() {
        let kinds = [
            FindingKind::UnitDisabled {
                unit: "kubelet.service".into(),
            },
            FindingKind::SwapInFstab {
                path: "/etc/fstab".into(),
                line: 5,
            },
            FindingKind::SwapoffUnsafe {
                devices: vec!["/swapfile".into(), "/dev/sdb2".into()],
            },
            FindingKind::ProbeFailed {
                target: ProbeTarget::SystemBus,
            },
            FindingKind::ProbeFailed {
                target: ProbeTarget::Fstab("/etc/fstab".into()),
            },
            FindingKind::PauseExpired,
            FindingKind::ConfigInvalid {
                path: "/etc/taint-guard/config.toml".into(),
            },
            FindingKind::KubeletConfigInvalid {
                unit: "kubelet.service".into(),
            },
            FindingKind::ModuleNotLoaded {
                module: "overlay".into(),
            },
            FindingKind::ModuleNotPersisted {
                module: "br_netfilter".into(),
            },
            FindingKind::SysctlWrong {
                key: "net.ipv4.ip_forward".into(),
            },
            FindingKind::SysctlNotPersisted {
                key: "net.bridge.bridge-nf-call-iptables".into(),
            },
            FindingKind::ProbeFailed {
                target: ProbeTarget::Kernel("/proc/modules".into()),
            },
            FindingKind::ProbeFailed {
                target: ProbeTarget::Kernel("sysctl.d".into()),
            },
            FindingKind::KubeletCertExpired {
                cert: "/var/lib/kubelet/pki/kubelet-client-current.pem".into(),
            },
            FindingKind::KubeletCertExpiring {
                cert: "client-certificate-data in /etc/kubernetes/kubelet.conf".into(),
            },
            FindingKind::KubeletCredentialsUnreadable {
                path: "/etc/kubernetes/pki/ca.crt".into(),
            },
            FindingKind::ClockUnsynchronised,
            FindingKind::ProbeFailed {
                target: ProbeTarget::Clock,
            },
            FindingKind::RuntimeUnreachable {
                endpoint: "/run/crio/crio.sock".into(),
            },
            FindingKind::RuntimeCriDisabled {
                endpoint: "/run/containerd/containerd.sock".into(),
            },
            FindingKind::ResolvConfNotAtBoot {
                path: "/run/systemd/resolve/resolv.conf".into(),
            },
            FindingKind::ProbeFailed {
                target: ProbeTarget::Runtime("/run/containerd/containerd.sock".into()),
            },
            FindingKind::ProbeFailed {
                target: ProbeTarget::Credentials("/etc/kubernetes/kubelet.conf".into()),
            },
            FindingKind::CgroupDriverMismatch {
                unit: "containerd.service".into(),
            },
        ];
        for k in kinds {
            assert_eq!(
                FindingKind::from_parts(k.id(), &k.subject()).as_ref(),
                Some(&k)
            );
        }
        assert_eq!(FindingKind::from_parts("swap-in-fstab", "/etc/fstab"), None);
        assert_eq!(FindingKind::from_parts("no-such-id", "x"), None);
    }

    #[test]
    fn serialises_as_before() {
        let mut f = Finding::new(
            FindingKind::SwapInFstab {
                path: "/etc/fstab".into(),
                line: 3,
            },
            Severity::Critical,
            "m".into(),
            None,
            true,
        );
        assert_eq!(
            serde_json::to_string(&f).unwrap(),
            r#"{"id":"swap-in-fstab","severity":"critical","subject":"/etc/fstab:3","message":"m","remedy":null,"fixable":true}"#
        );
        f.reboot_unknown = true;
        assert!(serde_json::to_string(&f)
            .unwrap()
            .ends_with(r#""fixable":true,"reboot_unknown":true}"#));
    }
}
