//! What systemd on the node says it runs in: the manager's `Virtualization`
//! property, systemd's `detect_virtualization()` (a container first, else a
//! VM; the empty string for neither).
//!
//! It matters for swap. In a container systemd makes no swap units from
//! fstab (systemd-fstab-generator: "Running in a container, ignoring fstab
//! swap entry") and starts none at all (src/core/swap.c `swap_supported()`:
//! `detect_container() <= 0`); the swap that /proc/swaps shows there is the
//! host's, and turning it off would change the host. Ids are those of
//! systemd's `virtualization_table` (src/basic/virt.c, v219 to v257); an id
//! not in it comes from a newer systemd and is not guessed at.

use serde::{Deserialize, Serialize};

/// systemd's container ids.
const CONTAINERS: &[&str] = &[
    "openvz",
    "lxc",
    "lxc-libvirt",
    "systemd-nspawn",
    "docker",
    "podman",
    "rkt",
    "wsl",
    "proot",
    "pouch",
    "container-other",
];

/// systemd's VM ids.
const VMS: &[&str] = &[
    "kvm",
    "amazon",
    "qemu",
    "bochs",
    "xen",
    "uml",
    "vmware",
    "oracle",
    "microsoft",
    "zvm",
    "parallels",
    "bhyve",
    "qnx",
    "acrn",
    "powervm",
    "apple",
    "sre",
    "google",
    "vm-other",
];

/// Where the node's systemd runs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", content = "id", rename_all = "snake_case")]
pub enum Virtualization {
    /// Bare metal.
    None,
    /// A virtual machine: systemd handles swap as on bare metal.
    Vm(String),
    /// A container (LXC, nspawn, a kind node…): systemd activates no swap.
    Container(String),
}

impl Virtualization {
    /// Classify the `Virtualization` property's value. `Err` names an id
    /// this build does not know.
    pub fn from_systemd(id: &str) -> Result<Self, String> {
        let id = id.trim();
        if id.is_empty() || id == "none" {
            Ok(Virtualization::None)
        } else if CONTAINERS.contains(&id) {
            Ok(Virtualization::Container(id.into()))
        } else if VMS.contains(&id) {
            Ok(Virtualization::Vm(id.into()))
        } else {
            Err(format!(
                "systemd reports virtualization {id:?}, which this taint-guard does not know as a container or a VM"
            ))
        }
    }

    /// The container id, when systemd runs in one.
    pub fn container(&self) -> Option<&str> {
        match self {
            Virtualization::Container(id) => Some(id),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_systemd_ids() {
        assert_eq!(Virtualization::from_systemd(""), Ok(Virtualization::None));
        assert_eq!(
            Virtualization::from_systemd("none"),
            Ok(Virtualization::None)
        );
        assert_eq!(
            Virtualization::from_systemd("kvm"),
            Ok(Virtualization::Vm("kvm".into()))
        );
        assert_eq!(
            Virtualization::from_systemd("systemd-nspawn")
                .unwrap()
                .container(),
            Some("systemd-nspawn")
        );
        assert_eq!(
            Virtualization::from_systemd("lxc").unwrap().container(),
            Some("lxc")
        );
        assert!(Virtualization::from_systemd("qemu")
            .unwrap()
            .container()
            .is_none());
        let e = Virtualization::from_systemd("hologram").unwrap_err();
        assert!(e.contains("\"hologram\""), "{e}");
    }

    #[test]
    fn no_id_is_both() {
        for c in CONTAINERS {
            assert!(!VMS.contains(c), "{c}");
        }
    }
}
