//! Paths on the node (under `--host-root`) that more than one part reads.

/// The fstab systemd-fstab-generator reads.
pub const FSTAB: &str = "/etc/fstab";
