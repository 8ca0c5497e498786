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

impl HostRoot {
    /// Like [`HostRoot::path`], but following symlinks as the node would:
    /// an absolute link target is taken relative to the host root, never to
    /// this process's root (in a pod, `/host/etc/fstab -> /etc/static/fstab`
    /// must not read the pod's /etc). A missing component ends the walk
    /// (the caller sees NotFound when it opens the result).
    pub fn resolve(&self, node_path: impl AsRef<Path>) -> std::io::Result<PathBuf> {
        let mut todo: Vec<std::ffi::OsString> = Vec::new();
        push_components(&mut todo, node_path.as_ref());
        let mut cur = self.0.clone();
        let mut depth = 0usize;
        let mut links = 0;
        while let Some(c) = todo.pop() {
            if c == ".." {
                if depth > 0 {
                    cur.pop();
                    depth -= 1;
                }
                continue;
            }
            let next = cur.join(&c);
            match std::fs::symlink_metadata(&next) {
                Ok(m) if m.file_type().is_symlink() => {
                    links += 1;
                    if links > 40 {
                        return Err(std::io::Error::other(format!(
                            "too many levels of symbolic links at {}",
                            next.display()
                        )));
                    }
                    let target = std::fs::read_link(&next)?;
                    if target.is_absolute() {
                        cur = self.0.clone();
                        depth = 0;
                    }
                    push_components(&mut todo, &target);
                }
                Ok(_) => {
                    cur = next;
                    depth += 1;
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    cur = next;
                    while let Some(rest) = todo.pop() {
                        cur.push(rest);
                    }
                    return Ok(cur);
                }
                Err(e) => return Err(e),
            }
        }
        Ok(cur)
    }
}

/// Push the normal and `..` components of `p` so that the first one is on top.
fn push_components(stack: &mut Vec<std::ffi::OsString>, p: &Path) {
    for c in p.components().rev() {
        match c {
            std::path::Component::Normal(x) => stack.push(x.to_os_string()),
            std::path::Component::ParentDir => stack.push("..".into()),
            _ => {}
        }
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

    #[test]
    fn resolve_keeps_symlinks_inside_the_root() {
        let t = tempfile::tempdir().unwrap();
        let root = HostRoot::new(t.path());
        std::fs::create_dir_all(t.path().join("etc/static")).unwrap();
        std::fs::write(t.path().join("etc/static/fstab"), "x").unwrap();
        // Absolute link: relative to the host root, not to ours.
        std::os::unix::fs::symlink("/etc/static/fstab", t.path().join("etc/fstab")).unwrap();
        assert_eq!(
            root.resolve("/etc/fstab").unwrap(),
            t.path().join("etc/static/fstab")
        );
        // Relative link, a linked directory, and `..` that cannot escape.
        std::os::unix::fs::symlink("static/fstab", t.path().join("etc/fstab2")).unwrap();
        assert_eq!(
            root.resolve("/etc/fstab2").unwrap(),
            t.path().join("etc/static/fstab")
        );
        std::os::unix::fs::symlink("/etc/static", t.path().join("conf")).unwrap();
        assert_eq!(
            root.resolve("/conf/fstab").unwrap(),
            t.path().join("etc/static/fstab")
        );
        std::os::unix::fs::symlink("../../../../etc", t.path().join("etc/up")).unwrap();
        assert_eq!(
            root.resolve("/etc/up/static/fstab").unwrap(),
            t.path().join("etc/static/fstab")
        );
        // Missing parts are kept as they are; loops are errors.
        assert_eq!(
            root.resolve("/etc/nope/x").unwrap(),
            t.path().join("etc/nope/x")
        );
        std::os::unix::fs::symlink("/loop", t.path().join("loop")).unwrap();
        assert!(root.resolve("/loop").is_err());
    }
}
