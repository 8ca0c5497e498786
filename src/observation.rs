//! What `observe` saw on the node: plain data, serialisable, so evaluate and
//! plan are tested from JSON/struct fixtures and `--output json` shows it.

use serde::{Deserialize, Serialize};

use crate::kubelet::KubeletPolicy;
use crate::swap::{SwapNow, SwapUnit};

/// The result of one probe: what it saw, or why it could not look.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Probe<T> {
    Ok(T),
    Failed(String),
}

impl<T> Probe<T> {
    pub fn ok(&self) -> Option<&T> {
        match self {
            Probe::Ok(v) => Some(v),
            Probe::Failed(_) => None,
        }
    }

    pub fn from_result(r: anyhow::Result<T>) -> Self {
        match r {
            Ok(v) => Probe::Ok(v),
            Err(e) => Probe::Failed(format!("{e:#}")),
        }
    }
}

pub use crate::systemd::types::UnitState;

/// One required unit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UnitObservation {
    /// The unit the config requires (`kubelet.service`).
    pub required: String,
    /// The unit actually checked: `required`, or the alternative found
    /// (`k3s.service`) when `required` is kubelet.service and not found.
    pub name: String,
    pub state: Probe<UnitState>,
}

#[cfg(test)]
impl UnitObservation {
    /// kubelet.service in the given states, for fixtures.
    pub fn kubelet(
        load: &str,
        active: &str,
        sub: &str,
        unit_file_state: &str,
        result: &str,
    ) -> Self {
        UnitObservation {
            required: "kubelet.service".into(),
            name: "kubelet.service".into(),
            state: Probe::Ok(UnitState {
                load_state: load.into(),
                active_state: active.into(),
                sub_state: sub.into(),
                unit_file_state: unit_file_state.into(),
                result: result.into(),
                ..Default::default()
            }),
        }
    }
}

/// The swap lines of /etc/fstab, as systemd-fstab-generator reads them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FstabSwap {
    /// Node path of the file (`/etc/fstab`).
    pub path: String,
    /// Swap lines systemd activates at boot (`boot: activates`).
    pub entries: Vec<crate::fstab::SwapEntry>,
    /// Uncommented swap lines systemd does not activate at boot, each with
    /// why (`noauto`, a duplicate, no valid unit name, swap off on the
    /// kernel command line). `noauto` ones still get a generated unit.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub not_at_boot: Vec<crate::fstab::SwapEntry>,
    /// The kernel command line (or the SystemdOptions EFI variable) turns
    /// fstab swap off: `systemd.swap=0`, `fstab=0`…
    #[serde(default)]
    pub swap_disabled_by_cmdline: bool,
    /// The word that did, when one did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cmdline_switch: Option<String>,
}

impl FstabSwap {
    /// Units systemd-fstab-generator writes for these lines (boot or not).
    pub fn generated_units(&self) -> impl Iterator<Item = &str> {
        self.entries
            .iter()
            .chain(&self.not_at_boot)
            .filter(|e| e.boot.unit_written())
            .filter_map(|e| e.unit.as_deref())
    }

    /// Every unit name an uncommented swap line maps to, whether or not
    /// systemd writes it this boot (noauto, duplicate, swap off on the
    /// command line): names taint-guard never masks.
    pub fn unit_names(&self) -> impl Iterator<Item = &str> {
        self.entries
            .iter()
            .chain(&self.not_at_boot)
            .filter_map(|e| e.unit.as_deref())
    }

    /// No swap lines, for fixtures.
    pub fn empty(path: &str) -> Self {
        FstabSwap {
            path: path.into(),
            entries: vec![],
            not_at_boot: vec![],
            swap_disabled_by_cmdline: false,
            cmdline_switch: None,
        }
    }
}

/// Everything `check` looks at.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Observation {
    /// Why systemd could not be asked (no system bus), if it could not: the
    /// one cause behind every unit and swap-unit probe then.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bus_error: Option<String>,
    /// The maintenance pause file, in force or expired.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pause: Option<crate::pause::PauseState>,
    /// Memory cgroups holding swap, read only while swap is in use (the
    /// swapoff guard needs them).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub swap_cgroups: Option<Probe<crate::cgroup::SwapCgroups>>,
    pub units: Vec<UnitObservation>,
    pub swap_now: Probe<SwapNow>,
    pub fstab: Probe<FstabSwap>,
    pub swap_units: Probe<Vec<SwapUnit>>,
    /// Each active swap device or file, and what on disk turns it on at
    /// boot (an fstab line, a swap unit), `None` when nothing read does:
    /// its return at the next boot is then not known. Empty when fstab or
    /// the swap units could not be read.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub swap_origins: std::collections::BTreeMap<String, Option<String>>,
    /// kubelet's swap policy; `None` when no kubelet unit was found.
    pub kubelet_policy: Option<KubeletPolicy>,
    /// What the node's systemd runs in: in a container it activates no
    /// swap, and the swap /proc/swaps shows is the host's.
    #[serde(default = "bare_metal")]
    pub virtualization: Probe<crate::virt::Virtualization>,
    /// The required kernel modules and sysctls, now and at the next boot.
    #[serde(default)]
    pub kernel: KernelObservation,
    /// kubelet's client certificate, when its `--kubeconfig` exists and
    /// authenticates with one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kubelet_cert: Option<KubeletCertObservation>,
    /// systemd-timedated's view of the clock, when asked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clock: Option<Probe<crate::systemd::types::ClockState>>,
    /// kubelet's container runtime (upstream kubelet, policy known); its
    /// unit's state is among `units`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub runtime: Option<RuntimeObservation>,
    /// kubelet's cgroup driver against containerd's (when containerd is
    /// kubelet's runtime).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cgroup_driver: Option<CgroupDriverObservation>,
    /// kubelet's resolvConf, when a service writes it under /run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resolv_conf: Option<ResolvConfObservation>,
}

fn bare_metal() -> Probe<crate::virt::Virtualization> {
    Probe::Ok(crate::virt::Virtualization::None)
}

impl Observation {
    /// The kubelet unit's observation, if kubelet is among the required units.
    pub fn kubelet(&self) -> Option<&UnitObservation> {
        self.units
            .iter()
            .find(|u| u.required == crate::finding::KUBELET_UNIT)
    }
}

/// One module the config requires.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModuleObservation {
    pub name: String,
    pub now: Probe<crate::readiness::ModuleNow>,
    pub at_boot: Probe<crate::readiness::ModuleBoot>,
}

/// One sysctl the config requires.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SysctlObservation {
    /// Dotted (`net.ipv4.ip_forward`).
    pub key: String,
    /// The value the config wants.
    pub want: String,
    /// The value now; `None` when this kernel has no such sysctl.
    pub now: Probe<Option<String>>,
    pub at_boot: Probe<crate::readiness::BootValue>,
}

/// The kernel's state and its boot configuration, for the required
/// modules and sysctls.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct KernelObservation {
    /// Why the kernel checks were not made here, when they were not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub skipped: Option<String>,
    pub modules: Vec<ModuleObservation>,
    pub sysctls: Vec<SysctlObservation>,
    /// What on the node sets modules and sysctls again by itself, or makes
    /// them unneeded (the CNI, Docker, ufw).
    #[serde(default)]
    pub platform: crate::readiness::platform::Platform,
    /// taint-guard's own modules-load.d / sysctl.d file is a link (masked
    /// by a person): never written, no remedy into it.
    #[serde(default)]
    pub ours_masked: OursMasked,
}

/// See [`KernelObservation::ours_masked`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct OursMasked {
    pub modules: bool,
    pub sysctls: bool,
}

/// kubelet's client credentials, as its `--kubeconfig` names them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KubeletCertObservation {
    /// Node path of the kubeconfig.
    pub kubeconfig: String,
    /// The certificate's file (node path), or `client-certificate-data`.
    pub cert_from: String,
    pub cert: Probe<crate::readiness::cert::CertValidity>,
    /// The CA bundle the kubeconfig names (how many certificates), when it
    /// names one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca: Option<Probe<usize>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_from: Option<String>,
    pub rotate_certificates: bool,
    pub rotate_certificates_from: String,
    /// kubelet's `--bootstrap-kubeconfig`, when it names a file that exists.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bootstrap_kubeconfig: Option<String>,
    /// When the certificate was looked at (its "now").
    pub checked_at: jiff::Timestamp,
    /// A file of these credentials that this process may not read: then
    /// nothing above was judged. taint-guard's own limit, not the node's
    /// (kubeadm writes them 0600; the report-only pod runs as uid 65534).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub denied: Option<ReadDenied>,
}

/// A read refused to this process (EACCES, EPERM).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReadDenied {
    /// Node path of the file.
    pub path: String,
    /// The effective uid the read was refused to.
    pub uid: u32,
}

/// kubelet's container runtime: the socket it dials and the unit serving it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RuntimeObservation {
    /// The socket (node path) kubelet dials; `None` when kubelet's config
    /// names none (its version's default then applies).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
    pub endpoint_from: String,
    /// The unit that serves it, and how it was found; `None`: none found.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unit: Option<String>,
    pub unit_from: String,
    /// Whether the socket accepts a connection now (`None`: no unix socket
    /// to try).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub answers: Option<Probe<bool>>,
    /// The runtime accepts connections but its config turns its CRI off
    /// (containerd's `disabled_plugins`): where that is said.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cri_disabled: Option<String>,
}

/// kubelet's cgroup driver and its runtime's.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CgroupDriverObservation {
    pub kubelet: String,
    pub kubelet_from: String,
    /// The runtime's unit (`containerd.service`).
    pub runtime_unit: String,
    pub runtime: crate::readiness::cgroup_driver::RuntimeDriver,
}

/// kubelet's resolvConf, when a service writes it under /run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResolvConfObservation {
    pub path: String,
    pub from: String,
    /// The unit that writes it.
    pub producer: String,
    /// Whether that unit starts at the next boot (`None`: not known).
    pub producer_at_boot: Option<bool>,
}
