//! Kernel modules: loaded now, and loaded again at the next boot.
//!
//! Now: `/proc/modules` lists the loadable modules that are in; a module
//! built into the kernel is not there, and is seen by what it provides
//! (`overlay` in /proc/filesystems, br_netfilter's /proc/sys/net/bridge) or
//! by `/sys/module/NAME`. A kernel without module support has no
//! /proc/modules at all: everything it has is built in.
//!
//! Next boot: a built-in module is there again (the same kernel). A
//! loadable one is loaded by systemd-modules-load from the `*.conf` files
//! of `/etc/modules-load.d`, `/run/modules-load.d`,
//! `/usr/local/lib/modules-load.d`, `/usr/lib/modules-load.d` (and
//! `/lib/modules-load.d`) — one name per line, `#` and `;` comments, a file
//! name in an earlier directory hiding the same name in a later one — and
//! from `modules_load=` / `rd.modules_load=` on the kernel command line
//! (comma-separated). Debian's `/etc/modules` is read through its link
//! `/etc/modules-load.d/modules.conf`. A file system module (`overlay`) is
//! also loaded by the kernel itself on the first mount of that type
//! (`request_module("fs-overlay")`), when the module is installed for the
//! kernel (modules.dep).
//!
//! Pure: the files come in as bytes.

use serde::{Deserialize, Serialize};

pub const MODULES_LOAD_DIRS: [&str; 5] = [
    "/etc/modules-load.d",
    "/run/modules-load.d",
    "/usr/local/lib/modules-load.d",
    "/usr/lib/modules-load.d",
    "/lib/modules-load.d",
];

/// The file taint-guard persists modules in.
pub const OURS: &str = "/etc/modules-load.d/taint-guard.conf";

/// modprobe treats `-` and `_` in module names alike.
pub fn canonical(name: &str) -> String {
    name.replace('-', "_")
}

/// What is in the kernel now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ModuleNow {
    /// A loadable module, loaded (/proc/modules).
    Loaded,
    /// Built into the kernel.
    BuiltIn,
    Absent,
}

/// Why it is there after the next boot, or that it is not.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "by")]
pub enum ModuleBoot {
    BuiltIn,
    /// A modules-load.d line (`file:line`).
    Listed {
        at: String,
    },
    /// `modules_load=` on the kernel command line.
    Cmdline,
    /// Loaded by the kernel on first use (a file system's `fs-NAME`).
    OnUse,
    NotLoaded,
}

impl ModuleBoot {
    pub fn loads(&self) -> bool {
        !matches!(self, ModuleBoot::NotLoaded)
    }
}

/// Names in /proc/modules (canonical).
pub fn proc_modules(text: &str) -> Vec<String> {
    text.lines()
        .filter_map(|l| l.split_whitespace().next())
        .map(canonical)
        .collect()
}

/// Module names listed by one modules-load.d file, with their line.
pub fn parse_file(path: &str, bytes: &[u8]) -> Vec<(String, String)> {
    String::from_utf8_lossy(bytes)
        .lines()
        .enumerate()
        .filter_map(|(i, l)| {
            let l = l.trim();
            (!l.is_empty() && !l.starts_with(['#', ';']))
                .then(|| (canonical(l), format!("{path}:{}", i + 1)))
        })
        .collect()
}

/// Names from `modules_load=` (either spelling of the separator) on the
/// kernel command line; with `rd`, from `rd.modules_load=` instead, which
/// only a systemd initrd's systemd-modules-load reads (the real root's
/// ignores `rd.` words, and an initramfs-tools initrd runs no systemd).
pub fn cmdline_modules(cmdline: &str, rd: bool) -> Vec<String> {
    let want = if rd {
        "rd.modules_load"
    } else {
        "modules_load"
    };
    cmdline
        .split_whitespace()
        .filter_map(|w| w.split_once('='))
        .filter(|(k, _)| k.replace('-', "_") == want)
        .flat_map(|(_, v)| v.split(',').map(canonical).collect::<Vec<_>>())
        .filter(|n| !n.is_empty())
        .collect()
}

/// Whether modules.dep lists `name` as installed for the running kernel.
pub fn installed(modules_dep: &str, name: &str) -> bool {
    let want = canonical(name);
    modules_dep.lines().any(|l| {
        let path = l.split(':').next().unwrap_or("");
        let file = path.rsplit('/').next().unwrap_or("");
        let stem = file.split(".ko").next().unwrap_or("");
        file.contains(".ko") && canonical(stem) == want
    })
}

/// File systems the kernel loads its module for on first mount.
pub fn loaded_on_use(name: &str) -> bool {
    canonical(name) == "overlay"
}

/// How `name` comes back at boot: `files` are the modules-load.d files
/// systemd-modules-load runs (after hiding by name; `None` bytes: masked).
pub fn boot(
    name: &str,
    now: ModuleNow,
    files: &[super::sysctl::ConfFile],
    cmdline: &str,
    modules_dep: Option<&str>,
    systemd_initrd: bool,
) -> ModuleBoot {
    let want = canonical(name);
    if now == ModuleNow::BuiltIn {
        return ModuleBoot::BuiltIn;
    }
    for f in files {
        let Some(b) = &f.bytes else { continue };
        if let Some((_, at)) = parse_file(&f.path, b).into_iter().find(|(n, _)| *n == want) {
            return ModuleBoot::Listed { at };
        }
    }
    if cmdline_modules(cmdline, false).contains(&want)
        || (systemd_initrd && cmdline_modules(cmdline, true).contains(&want))
    {
        return ModuleBoot::Cmdline;
    }
    if loaded_on_use(name) && modules_dep.is_some_and(|d| installed(d, name)) {
        return ModuleBoot::OnUse;
    }
    ModuleBoot::NotLoaded
}

/// The new text of [`OURS`] with `name` listed (unchanged if it is).
pub fn persist_text(old: &str, name: &str) -> String {
    if parse_file(OURS, old.as_bytes())
        .iter()
        .any(|(n, _)| *n == canonical(name))
    {
        return old.to_string();
    }
    let mut t = if old.is_empty() {
        "# Written by taint-guard: modules in the kernel that nothing loaded at boot.\n".to_string()
    } else {
        old.to_string()
    };
    if !t.ends_with('\n') {
        t.push('\n');
    }
    t.push_str(name);
    t.push('\n');
    t
}

#[cfg(test)]
mod tests {
    use super::super::sysctl::{effective_files, ConfFile};
    use super::*;

    #[test]
    fn listed_cmdline_on_use_and_masked() {
        let files = effective_files(vec![
            ConfFile {
                path: "/etc/modules-load.d/k8s.conf".into(),
                bytes: Some(b"# k8s\noverlay\n br-netfilter \n".to_vec()),
            },
            ConfFile {
                path: "/usr/lib/modules-load.d/k8s.conf".into(),
                bytes: Some(b"nf_conntrack\n".to_vec()),
            },
        ]);
        assert_eq!(
            boot("br_netfilter", ModuleNow::Loaded, &files, "", None, false),
            ModuleBoot::Listed {
                at: "/etc/modules-load.d/k8s.conf:3".into()
            }
        );
        // /etc's k8s.conf hides /usr/lib's.
        assert_eq!(
            boot("nf_conntrack", ModuleNow::Loaded, &files, "", None, false),
            ModuleBoot::NotLoaded
        );
        assert_eq!(
            boot(
                "br_netfilter",
                ModuleNow::Loaded,
                &[],
                "ro modules-load=a,br_netfilter",
                None,
                false
            ),
            ModuleBoot::Cmdline
        );
        // rd.modules_load= is read by a systemd initrd only: outside one
        // (initramfs-tools) it loads nothing.
        let rd = "ro rd.modules_load=br_netfilter";
        assert_eq!(
            boot("br_netfilter", ModuleNow::Loaded, &[], rd, None, false),
            ModuleBoot::NotLoaded
        );
        assert_eq!(
            boot("br_netfilter", ModuleNow::Loaded, &[], rd, None, true),
            ModuleBoot::Cmdline
        );
        let dep = "kernel/fs/overlayfs/overlay.ko.xz:\nkernel/net/bridge/br_netfilter.ko.xz: kernel/net/bridge/bridge.ko.xz\n";
        assert_eq!(
            boot("overlay", ModuleNow::Loaded, &[], "", Some(dep), false),
            ModuleBoot::OnUse
        );
        assert_eq!(
            boot("br_netfilter", ModuleNow::Loaded, &[], "", Some(dep), false),
            ModuleBoot::NotLoaded
        );
        assert_eq!(
            boot("br_netfilter", ModuleNow::BuiltIn, &[], "", None, false),
            ModuleBoot::BuiltIn
        );
        let masked = effective_files(vec![
            ConfFile {
                path: "/etc/modules-load.d/k8s.conf".into(),
                bytes: None,
            },
            ConfFile {
                path: "/usr/lib/modules-load.d/k8s.conf".into(),
                bytes: Some(b"br_netfilter\n".to_vec()),
            },
        ]);
        assert_eq!(
            boot("br_netfilter", ModuleNow::Loaded, &masked, "", None, false),
            ModuleBoot::NotLoaded
        );
    }

    #[test]
    fn persist_text_adds_once() {
        let t = persist_text("", "br_netfilter");
        assert!(t.ends_with("\nbr_netfilter\n"));
        assert_eq!(persist_text(&t, "br-netfilter"), t);
        assert_eq!(
            persist_text("overlay", "br_netfilter"),
            "overlay\nbr_netfilter\n"
        );
        assert_eq!(
            proc_modules("br_netfilter 32768 0 - Live 0x0\noverlay 1 2 - Live 0\n"),
            vec!["br_netfilter", "overlay"]
        );
    }
}
