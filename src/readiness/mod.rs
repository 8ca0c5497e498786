//! Reboot readiness beyond kubelet and swap: what a node relies on that was
//! set by hand and may not come back after the next boot.
//!
//! - [`modules`] — kernel modules kubelet networking needs (`overlay`,
//!   `br_netfilter`): in the kernel now, and loaded again at boot.
//! - [`sysctl`] — sysctls (`net.ipv4.ip_forward`, …): the value now, and
//!   the value the next boot sets.
//! - [`cert`] — kubelet's client certificate: expired or expiring.
//! - [`cgroup_driver`] — kubelet's cgroup driver against containerd's.
//!
//! Each observation keeps "now" and "at the next boot" apart, so evaluate
//! can say what a reboot would lose. Pure: observe reads the files.

pub mod cert;
pub mod cgroup_driver;
pub mod modules;
pub mod platform;
pub mod sysctl;

pub use modules::{ModuleBoot, ModuleNow};
pub use sysctl::BootValue;
