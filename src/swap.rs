//! Swap now (/proc/swaps, memory totals), swap units, and the swapoff(2)
//! syscall.

use std::path::Path;

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

/// One active swap area from /proc/swaps.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ActiveSwap {
    /// Path as the kernel prints it (octal escapes decoded).
    pub device: String,
    /// `partition` or `file`.
    pub kind: String,
    pub size_kib: u64,
    pub used_kib: u64,
    pub priority: i64,
}

/// Memory figures that decide whether swapoff is safe.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Memory {
    pub total_bytes: u64,
    pub available_bytes: u64,
    pub swap_total_bytes: u64,
    pub swap_free_bytes: u64,
}

/// Swap in use right now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct SwapNow {
    pub devices: Vec<ActiveSwap>,
    pub memory: Memory,
}

/// Parse /proc/swaps. `source` names the file in errors.
pub fn parse_proc_swaps(content: &str, source: &str) -> Result<Vec<ActiveSwap>> {
    let mut out = Vec::new();
    for (idx, line) in content.lines().enumerate() {
        if idx == 0 && line.starts_with("Filename") {
            continue;
        }
        if line.trim().is_empty() {
            continue;
        }
        let f: Vec<&str> = line.split_whitespace().collect();
        let bad = || {
            anyhow::anyhow!(
                "{source}:{}:1: expected 5 fields (Filename Type Size Used Priority), got {line:?}",
                idx + 1
            )
        };
        if f.len() < 5 {
            return Err(bad());
        }
        let num = |s: &str| s.parse::<u64>().map_err(|_| bad());
        out.push(ActiveSwap {
            device: crate::fstab::unescape(f[0]),
            kind: f[1].to_string(),
            size_kib: num(f[2])?,
            used_kib: num(f[3])?,
            priority: f[4].parse().map_err(|_| bad())?,
        });
    }
    Ok(out)
}

/// Read /proc/swaps at `proc_swaps` and the memory totals.
pub fn observe_now(proc_swaps: &Path) -> Result<SwapNow> {
    let content = std::fs::read_to_string(proc_swaps)
        .with_context(|| format!("reading {}", proc_swaps.display()))?;
    let devices = parse_proc_swaps(&content, &proc_swaps.display().to_string())?;
    Ok(SwapNow {
        devices,
        memory: memory()?,
    })
}

fn memory() -> Result<Memory> {
    let mut sys = sysinfo::System::new().context("reading memory totals")?;
    sys.refresh_memory();
    Ok(Memory {
        total_bytes: sys.total_memory(),
        available_bytes: sys.available_memory(),
        swap_total_bytes: sys.total_swap(),
        swap_free_bytes: sys.free_swap(),
    })
}

/// Turn off the swap area at `path` (swapoff(2)).
pub fn swapoff(path: &Path) -> Result<()> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(path.as_os_str().as_bytes())
        .with_context(|| format!("swap path {} contains NUL", path.display()))?;
    // SAFETY: `c` is a valid NUL-terminated string that outlives the call.
    let rc = unsafe { libc::swapoff(c.as_ptr()) };
    if rc != 0 {
        let err = std::io::Error::last_os_error();
        return Err(err).with_context(|| format!("swapoff {}", path.display()));
    }
    Ok(())
}

/// A swap unit that systemd activates at boot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SwapUnit {
    pub name: String,
    /// Unit file path on the node.
    pub path: String,
    /// UnitFileState (`enabled`, `enabled-runtime`, `linked`…).
    pub state: String,
    /// `What=` from the unit file, when readable.
    pub what: Option<String>,
}

/// `What=` of a `[Swap]` section.
pub fn unit_what(unit_file: &str) -> Option<String> {
    let mut in_swap = false;
    let mut what = None;
    for line in unit_file.lines() {
        let l = line.trim();
        if l.starts_with('[') {
            in_swap = l == "[Swap]";
        } else if in_swap {
            if let Some(v) = l.strip_prefix("What=") {
                what = Some(v.trim().to_string());
            }
        }
    }
    what
}

/// systemd's path escaping (`systemd-escape --path`): `/dev/mapper/a-b` →
/// `dev-mapper-a\x2db`.
pub fn escape_path(path: &str) -> String {
    let trimmed: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    if trimmed.is_empty() {
        return "-".to_string();
    }
    let joined = trimmed.join("/");
    let mut out = String::new();
    for (i, b) in joined.bytes().enumerate() {
        match b {
            b'/' => out.push('-'),
            b'.' if i == 0 => out.push_str("\\x2e"),
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b':' | b'_' | b'.' => out.push(b as char),
            _ => out.push_str(&format!("\\x{b:02x}")),
        }
    }
    out
}

/// The swap unit name systemd generates for a device path.
pub fn unit_name_for(device: &str) -> String {
    format!("{}.swap", escape_path(device))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_proc_swaps() {
        let s = "Filename\t\t\t\tType\t\tSize\t\tUsed\t\tPriority\n/dev/dm-1                               partition\t8388604\t\t0\t\t-2\n/swap\\040file                               file\t\t1048572\t\t5120\t\t-3\n";
        let v = parse_proc_swaps(s, "/proc/swaps").unwrap();
        assert_eq!(v.len(), 2);
        assert_eq!(v[0].device, "/dev/dm-1");
        assert_eq!(v[0].kind, "partition");
        assert_eq!(v[0].size_kib, 8388604);
        assert_eq!(v[0].priority, -2);
        assert_eq!(v[1].device, "/swap file");
        assert_eq!(v[1].used_kib, 5120);
    }

    #[test]
    fn empty_proc_swaps() {
        let v =
            parse_proc_swaps("Filename\t\t\t\tType\t\tSize\t\tUsed\t\tPriority\n", "p").unwrap();
        assert!(v.is_empty());
    }

    #[test]
    fn bad_proc_swaps_names_line() {
        let e = parse_proc_swaps(
            "Filename Type Size Used Priority\n/dev/x partition big 0 -2\n",
            "/proc/swaps",
        )
        .unwrap_err();
        assert!(e.to_string().starts_with("/proc/swaps:2:1:"), "{e}");
    }

    #[test]
    fn escapes_like_systemd() {
        assert_eq!(escape_path("/swapfile"), "swapfile");
        assert_eq!(
            escape_path("/dev/mapper/centos-swap"),
            "dev-mapper-centos\\x2dswap"
        );
        assert_eq!(
            escape_path("/dev/disk/by-uuid/9b7a-11"),
            "dev-disk-by\\x2duuid-9b7a\\x2d11"
        );
        assert_eq!(escape_path("/.hidden/a b"), "\\x2ehidden-a\\x20b");
        assert_eq!(unit_name_for("/swapfile"), "swapfile.swap");
    }

    #[test]
    fn reads_what() {
        let u = "[Unit]\nDescription=x\n[Swap]\nWhat=/dev/sdb2\nPriority=5\n[Install]\nWantedBy=swap.target\n";
        assert_eq!(unit_what(u).as_deref(), Some("/dev/sdb2"));
        assert_eq!(unit_what("[Unit]\nWhat=/x\n"), None);
    }
}
