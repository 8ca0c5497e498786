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
    /// `SourcePath=` from the unit file (`/etc/fstab` for the units
    /// systemd-fstab-generator writes), when readable and set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_path: Option<String>,
}

/// Where systemd-fstab-generator writes its units (the normal generator
/// directory; a same-named unit in /etc/systemd/system overrides it).
pub const FSTAB_GENERATOR_DIR: &str = "/run/systemd/generator";

impl SwapUnit {
    /// Written by systemd-fstab-generator: in its directory, and either
    /// named after one of `fstab_units` or saying `SourcePath=/etc/fstab`.
    pub fn from_fstab<'a>(&self, mut fstab_units: impl Iterator<Item = &'a str>) -> bool {
        let in_generator_dir =
            Path::new(&self.path) == Path::new(FSTAB_GENERATOR_DIR).join(&self.name);
        in_generator_dir
            && (self.source_path.as_deref() == Some(crate::paths::FSTAB)
                || fstab_units.any(|u| u == self.name))
    }
}

/// `SourcePath=` of a unit file's `[Unit]` section.
pub fn unit_source_path(unit_file: &str) -> Option<String> {
    section_value(unit_file, "[Unit]", "SourcePath=")
}

fn section_value(unit_file: &str, section: &str, key: &str) -> Option<String> {
    let mut inside = false;
    let mut value = None;
    for line in unit_file.lines() {
        let l = line.trim();
        if l.starts_with('[') {
            inside = l == section;
        } else if inside {
            if let Some(v) = l.strip_prefix(key) {
                value = Some(v.trim().to_string());
            }
        }
    }
    value
}

/// `What=` of a `[Swap]` section.
pub fn unit_what(unit_file: &str) -> Option<String> {
    section_value(unit_file, "[Swap]", "What=")
}

pub use crate::unitname::{escape_path, unit_name_for, unit_name_from_path, UnitNameError};

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

    fn esc(p: &str) -> Result<String, UnitNameError> {
        escape_path(p.as_bytes())
    }

    #[test]
    fn escapes_like_systemd() {
        assert_eq!(esc("/swapfile").unwrap(), "swapfile");
        assert_eq!(
            esc("/dev/mapper/centos-swap").unwrap(),
            "dev-mapper-centos\\x2dswap"
        );
        assert_eq!(
            esc("/dev/disk/by-uuid/9b7a-11").unwrap(),
            "dev-disk-by\\x2duuid-9b7a\\x2d11"
        );
        assert_eq!(esc("/.hidden/a b").unwrap(), "\\x2ehidden-a\\x20b");
        assert_eq!(unit_name_for(b"/swapfile").unwrap(), "swapfile.swap");
        // Latin-1 bytes are escaped one by one; so is UTF-8.
        assert_eq!(escape_path(b"/sw\xe9p").unwrap(), "sw\\xe9p");
        assert_eq!(esc("/appl\u{e9}").unwrap(), "appl\\xc3\\xa9");
        assert_eq!(
            esc("/a\\b@c%d=e+f#g").unwrap(),
            "a\\x5cb\\x40c\\x25d\\x3de\\x2bf\\x23g"
        );
    }

    /// systemd 252 src/test/test-unit-name.c, TEST(unit_name_from_path)
    /// and TEST(unit_name_escape), verbatim.
    #[test]
    fn systemd_unit_name_from_path_vectors() {
        let one = |p: &str, suffix: &str| unit_name_from_path(p.as_bytes(), suffix);
        assert_eq!(one("/waldo", ".mount").unwrap(), "waldo.mount");
        assert_eq!(one("/waldo/quuix", ".mount").unwrap(), "waldo-quuix.mount");
        assert_eq!(one("/waldo/quuix/", ".mount").unwrap(), "waldo-quuix.mount");
        assert_eq!(one("", ".mount").unwrap(), "-.mount");
        assert_eq!(one("/", ".mount").unwrap(), "-.mount");
        assert_eq!(one("///", ".mount").unwrap(), "-.mount");
        assert_eq!(one("/foo/../bar", ".mount"), Err(UnitNameError::DotDot));
        assert_eq!(one("/foo/./bar", ".mount").unwrap(), "foo-bar.mount");
        let long = format!("/waldo{}", "a".repeat(246));
        let want = format!("waldo{}_7736d9ed33c2ec55.mount", "a".repeat(227));
        assert_eq!(want.len(), 255);
        assert_eq!(one(&long, ".mount").unwrap(), want);
        // unit_name_escape("ab+-c.a/bc@foo.service")
        assert_eq!(
            esc("ab+-c.a/bc@foo.service").unwrap(),
            "ab\\x2b\\x2dc.a-bc\\x40foo.service"
        );
    }

    /// Names checked against systemd 252's generator and systemd-escape
    /// (/work/research/fstab-generator.md, section 3).
    #[test]
    fn generator_swap_names() {
        let n = |p: &str| unit_name_for(p.as_bytes());
        assert_eq!(n("/dev/sda2").unwrap(), "dev-sda2.swap");
        assert_eq!(
            n("/dev/disk/by-partlabel/swap@1").unwrap(),
            "dev-disk-by\\x2dpartlabel-swap\\x401.swap"
        );
        assert_eq!(
            n("/dev/disk/by-label/my\\x20swap").unwrap(),
            "dev-disk-by\\x2dlabel-my\\x5cx20swap.swap"
        );
        assert_eq!(n("/.hidden/sw//file").unwrap(), "\\x2ehidden-sw-file.swap");
        assert_eq!(n("/swap%file").unwrap(), "swap\\x25file.swap");
        assert_eq!(n("/var//tmp/./sw/").unwrap(), "var-tmp-sw.swap");
        assert_eq!(n("/").unwrap(), "-.swap");
        assert_eq!(n("/dev/../sw6"), Err(UnitNameError::DotDot));
        assert_eq!(n("label=lower").unwrap(), "label\\x3dlower.swap");
        assert_eq!(n("."), Err(UnitNameError::Dot));
        assert_eq!(n("./"), Err(UnitNameError::Dot));
        assert_eq!(
            n(&format!("/{}", "x".repeat(256))),
            Err(UnitNameError::ComponentTooLong)
        );
        assert_eq!(n(&"/x".repeat(2048)), Err(UnitNameError::TooLong));
        // 233 bytes of the full name, `_`, 16 hex digits, `.swap`: 255.
        let long = n(&format!("/{}", "a".repeat(251))).unwrap();
        assert_eq!(long.len(), 255);
        assert!(long.starts_with(&"a".repeat(233)), "{long}");
    }

    #[test]
    fn reads_what() {
        let u = "[Unit]\nDescription=x\n[Swap]\nWhat=/dev/sdb2\nPriority=5\n[Install]\nWantedBy=swap.target\n";
        assert_eq!(unit_what(u).as_deref(), Some("/dev/sdb2"));
        assert_eq!(unit_what("[Unit]\nWhat=/x\n"), None);
        let g = "# Automatically generated by systemd-fstab-generator\n\n[Unit]\nDocumentation=man:fstab(5) man:systemd-fstab-generator(8)\nSourcePath=/etc/fstab\n\n[Swap]\nWhat=/swapfile\nOptions=sw\n";
        assert_eq!(unit_source_path(g).as_deref(), Some("/etc/fstab"));
        assert_eq!(unit_what(g).as_deref(), Some("/swapfile"));
    }
}
