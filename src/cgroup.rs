//! Memory cgroups holding swapped pages. swapoff(2) charges every page it
//! brings back to the memory cgroup that owns it: a pod close to its limit
//! can be OOM-killed by a swapoff even when the host has memory to spare.
//! The repair looks at each cgroup's swap against its headroom first.
//!
//! cgroup v2 (`memory.swap.current`, `memory.max`, `memory.current`, all
//! hierarchical) and v1 with swap accounting (`memory.stat` `total_swap`,
//! `memory.limit_in_bytes`, `memory.usage_in_bytes`) are read. Pure data
//! out; the walk takes the cgroupfs root as a path for tests.

use std::path::Path;

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};

/// A cgroup with swapped pages and a memory limit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CgroupSwap {
    /// Path below the memory hierarchy's root (`/kubepods.slice/…`).
    pub path: String,
    pub swap_bytes: u64,
    pub limit_bytes: u64,
    pub usage_bytes: u64,
}

impl CgroupSwap {
    /// Memory it may still take before hitting its limit.
    pub fn headroom(&self) -> u64 {
        self.limit_bytes.saturating_sub(self.usage_bytes)
    }
}

/// What the cgroup walk saw.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SwapCgroups {
    /// `v2`, or `v1` (memory controller with swap accounting).
    pub version: String,
    /// Limited cgroups holding swap (hierarchical figures).
    pub cgroups: Vec<CgroupSwap>,
}

/// v1's "no limit" is a page-rounded i64::MAX.
const V1_UNLIMITED: u64 = 1 << 62;

/// Walk the memory hierarchy under `root` (normally /sys/fs/cgroup).
pub fn observe(root: &Path) -> Result<SwapCgroups> {
    let has_memory = |p: &Path| {
        std::fs::read_to_string(p.join("cgroup.controllers"))
            .map(|c| c.split_whitespace().any(|x| x == "memory"))
            .unwrap_or(false)
    };
    if has_memory(root) {
        return walk(root, Version::V2);
    }
    let v1 = root.join("memory");
    if v1.join("memory.stat").is_file() {
        if !v1.join("memory.memsw.usage_in_bytes").is_file() {
            bail!(
                "cgroup v1 without swap accounting ({} has no memory.memsw.*; boot with swapaccount=1): cannot tell which cgroups hold swap",
                v1.display()
            );
        }
        return walk(&v1, Version::V1);
    }
    let unified = root.join("unified");
    if has_memory(&unified) {
        return walk(&unified, Version::V2);
    }
    bail!("no memory cgroup hierarchy under {}", root.display())
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Version {
    V1,
    V2,
}

fn walk(top: &Path, v: Version) -> Result<SwapCgroups> {
    let mut out = Vec::new();
    let mut todo = vec![top.to_path_buf()];
    while let Some(dir) = todo.pop() {
        let rd = std::fs::read_dir(&dir).with_context(|| format!("reading {}", dir.display()))?;
        for e in rd.flatten() {
            if e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                todo.push(e.path());
            }
        }
        if dir == top {
            continue; // the root cgroup has no limit
        }
        match read_one(top, &dir, v) {
            Ok(Some(c)) => out.push(c),
            Ok(None) => {}
            // A cgroup removed mid-walk is skipped, not an error.
            Err(_) if !dir.exists() => {}
            Err(e) => return Err(e),
        }
    }
    out.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(SwapCgroups {
        version: match v {
            Version::V1 => "v1",
            Version::V2 => "v2",
        }
        .into(),
        cgroups: out,
    })
}

fn read_one(top: &Path, dir: &Path, v: Version) -> Result<Option<CgroupSwap>> {
    let num = |name: &str| -> Result<Option<u64>> {
        let t = std::fs::read_to_string(dir.join(name))?;
        let t = t.trim();
        if t == "max" {
            return Ok(None);
        }
        Ok(Some(t.parse().with_context(|| format!("{name}: {t:?}"))?))
    };
    let (swap, limit, usage) = match v {
        Version::V2 => {
            let swap = match num("memory.swap.current") {
                Ok(s) => s,
                // Memory controlled here but no swap file: swap accounting
                // is off (swapaccount=0). Who holds swap cannot be told.
                Err(_) if dir.join("memory.current").exists() => bail!(
                    "{} has no memory.swap.current (swap accounting off?): cannot tell which cgroups hold swap",
                    dir.display()
                ),
                Err(_) => return Ok(None),
            };
            (swap, num("memory.max")?, num("memory.current")?)
        }
        Version::V1 => {
            let stat = std::fs::read_to_string(dir.join("memory.stat"))?;
            let swap = stat
                .lines()
                .find_map(|l| l.strip_prefix("total_swap "))
                .and_then(|n| n.trim().parse().ok());
            let limit = num("memory.limit_in_bytes")?.filter(|l| *l < V1_UNLIMITED);
            (swap, limit, num("memory.usage_in_bytes")?)
        }
    };
    let (Some(swap), Some(limit), Some(usage)) = (swap, limit, usage) else {
        return Ok(None);
    };
    if swap == 0 {
        return Ok(None);
    }
    let rel = dir.strip_prefix(top).unwrap_or(dir);
    Ok(Some(CgroupSwap {
        path: format!("/{}", rel.display()),
        swap_bytes: swap,
        limit_bytes: limit,
        usage_bytes: usage,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn put(root: &Path, rel: &str, files: &[(&str, &str)]) {
        let d = root.join(rel);
        std::fs::create_dir_all(&d).unwrap();
        for (n, c) in files {
            std::fs::write(d.join(n), c).unwrap();
        }
    }

    #[test]
    fn v2_finds_limited_cgroups_with_swap() {
        let t = tempfile::tempdir().unwrap();
        let r = t.path();
        put(r, "", &[("cgroup.controllers", "cpu io memory pids\n")]);
        put(
            r,
            "kubepods.slice/pod-a",
            &[
                ("memory.swap.current", "104857600\n"),
                ("memory.max", "268435456\n"),
                ("memory.current", "209715200\n"),
            ],
        );
        // No limit: its pages can come back without an OOM kill.
        put(
            r,
            "system.slice",
            &[
                ("memory.swap.current", "4096\n"),
                ("memory.max", "max\n"),
                ("memory.current", "1\n"),
            ],
        );
        // No swap.
        put(
            r,
            "user.slice",
            &[
                ("memory.swap.current", "0\n"),
                ("memory.max", "1000\n"),
                ("memory.current", "1\n"),
            ],
        );
        let s = observe(r).unwrap();
        assert_eq!(s.version, "v2");
        assert_eq!(
            s.cgroups,
            vec![CgroupSwap {
                path: "/kubepods.slice/pod-a".into(),
                swap_bytes: 100 << 20,
                limit_bytes: 256 << 20,
                usage_bytes: 200 << 20,
            }]
        );
        assert_eq!(s.cgroups[0].headroom(), 56 << 20);
    }

    #[test]
    fn v2_without_swap_accounting_is_an_error_not_a_guess() {
        let t = tempfile::tempdir().unwrap();
        let r = t.path();
        put(r, "", &[("cgroup.controllers", "memory\n")]);
        put(
            r,
            "pod",
            &[("memory.max", "1000\n"), ("memory.current", "1\n")],
        );
        let e = observe(r).unwrap_err().to_string();
        assert!(e.contains("swap accounting off"), "{e}");
    }

    #[test]
    fn v1_with_swap_accounting_uses_total_swap() {
        let t = tempfile::tempdir().unwrap();
        let r = t.path();
        put(
            r,
            "memory",
            &[
                ("memory.stat", "swap 0\n"),
                ("memory.memsw.usage_in_bytes", "0"),
            ],
        );
        put(
            r,
            "memory/hog",
            &[
                ("memory.stat", "cache 0\nswap 1048576\ntotal_swap 2097152\n"),
                ("memory.limit_in_bytes", "16777216\n"),
                ("memory.usage_in_bytes", "16000000\n"),
            ],
        );
        put(
            r,
            "memory/free",
            &[
                ("memory.stat", "total_swap 2097152\n"),
                ("memory.limit_in_bytes", "9223372036854771712\n"),
                ("memory.usage_in_bytes", "1\n"),
            ],
        );
        let s = observe(r).unwrap();
        assert_eq!(s.version, "v1");
        assert_eq!(s.cgroups.len(), 1);
        assert_eq!(s.cgroups[0].path, "/hog");
        assert_eq!(s.cgroups[0].swap_bytes, 2 << 20);
    }

    #[test]
    fn v1_without_swap_accounting_is_an_error_not_a_guess() {
        let t = tempfile::tempdir().unwrap();
        put(t.path(), "memory", &[("memory.stat", "")]);
        let e = observe(t.path()).unwrap_err().to_string();
        assert!(e.contains("swapaccount=1"), "{e}");
    }
}
