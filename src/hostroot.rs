//! Path mapping under `--host-root`.
//!
//! Every file the agent reads or rewrites on the node (fstab, kubelet's env
//! and config files, swap unit files, the pause file) is named by its path
//! on the node and resolved here, so the same binary works on the host
//! (`/`), in a DaemonSet pod with the host mounted at `/host`, and in tests.

use std::path::{Path, PathBuf};

/// The node's root filesystem as seen by this process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostRoot(PathBuf);

impl HostRoot {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        HostRoot(root.into())
    }

    pub fn root(&self) -> &Path {
        &self.0
    }

    pub fn is_root(&self) -> bool {
        self.0 == Path::new("/")
    }

    /// Map a path on the node (absolute, or taken as absolute) to a path for
    /// this process. `..` components cannot climb above the host root.
    pub fn path(&self, node_path: impl AsRef<Path>) -> PathBuf {
        let mut out = self.0.clone();
        let mut depth = 0usize;
        for c in node_path.as_ref().components() {
            match c {
                std::path::Component::Normal(p) => {
                    out.push(p);
                    depth += 1;
                }
                std::path::Component::ParentDir if depth > 0 => {
                    out.pop();
                    depth -= 1;
                }
                _ => {}
            }
        }
        out
    }
}

impl Default for HostRoot {
    fn default() -> Self {
        HostRoot::new("/")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_under_root() {
        let r = HostRoot::new("/host");
        assert_eq!(r.path("/etc/fstab"), PathBuf::from("/host/etc/fstab"));
        assert_eq!(r.path("etc/fstab"), PathBuf::from("/host/etc/fstab"));
        assert_eq!(r.path("/../../etc/x"), PathBuf::from("/host/etc/x"));
        assert_eq!(r.path("/var/lib/../x"), PathBuf::from("/host/var/x"));
        assert_eq!(
            HostRoot::default().path("/etc/fstab"),
            PathBuf::from("/etc/fstab")
        );
    }
}
