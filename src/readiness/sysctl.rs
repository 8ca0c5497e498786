//! Sysctls: the value now (`/proc/sys`), and the value the next boot sets,
//! worked out the way systemd-sysctl (252) and the kernel set it.
//!
//! At boot the kernel first applies `sysctl.KEY=VALUE` words of its command
//! line (Linux ≥ 5.8). Then systemd-sysctl reads every `*.conf` of
//! `/etc/sysctl.d`, `/run/sysctl.d`, `/usr/local/lib/sysctl.d`,
//! `/usr/lib/sysctl.d` (and `/lib/sysctl.d`): a file name in an earlier
//! directory hides the same name in a later one (a symlink to /dev/null or
//! an empty file masks it), and the files run in the order of their names,
//! whatever their directory. `/etc/sysctl.conf` is read only through a link
//! in one of them (Debian's procps ships `/etc/sysctl.d/99-sysctl.conf`).
//! In a file: blank lines and lines starting with `#` or `;` are skipped, a
//! line without `=` is ignored, key and value are trimmed, a leading `-` on
//! the key means "ignore a failure", and the key is normalised (`.` and `/`
//! swap when the first separator is `/`). A later assignment of a key —
//! later line, later file — replaces an earlier one. A glob key applies
//! only to keys that no explicit line sets.
//!
//! Pure: files come in as bytes.

use serde::{Deserialize, Serialize};

/// systemd-sysctl's directories, highest precedence first.
pub const SYSCTL_DIRS: [&str; 5] = [
    "/etc/sysctl.d",
    "/run/sysctl.d",
    "/usr/local/lib/sysctl.d",
    "/usr/lib/sysctl.d",
    "/lib/sysctl.d",
];

/// The file taint-guard persists sysctls in: named to run after the
/// distribution's `99-sysctl.conf`.
pub const OURS: &str = "/etc/sysctl.d/99-taint-guard.conf";

/// Kernel defaults of the sysctls taint-guard knows (the value a fresh boot
/// has when nothing sets it). `net.bridge.*` exist once br_netfilter is in.
pub fn kernel_default(key: &str) -> Option<&'static str> {
    match key {
        "net.ipv4.ip_forward" | "net.ipv4.conf.all.forwarding" => Some("0"),
        "net.ipv6.conf.all.forwarding" => Some("0"),
        "net.bridge.bridge-nf-call-iptables"
        | "net.bridge.bridge-nf-call-ip6tables"
        | "net.bridge.bridge-nf-call-arptables" => Some("1"),
        _ => None,
    }
}

/// `net.ipv4.ip_forward` and `net.ipv4.conf.all.forwarding` are one value
/// in the kernel (writing either sets both).
fn aliases(key: &str) -> &[&'static str] {
    match key {
        "net.ipv4.ip_forward" => &["net.ipv4.conf.all.forwarding"],
        "net.ipv4.conf.all.forwarding" => &["net.ipv4.ip_forward"],
        _ => &[],
    }
}

/// The dotted form of a key as systemd normalises it (`net/ipv4/ip_forward`
/// → `net.ipv4.ip_forward`; `net.ipv4.conf.eth0/1.forwarding` keeps its
/// `/` as part of a name component). The comparison form here is dotted,
/// with `/` inside a component kept as `/`.
pub fn normalize(key: &str) -> String {
    match key.find(['.', '/']) {
        Some(i) if key.as_bytes()[i] == b'/' => key
            .chars()
            .map(|c| match c {
                '/' => '.',
                '.' => '/',
                c => c,
            })
            .collect(),
        _ => key.to_string(),
    }
}

/// The path of a (dotted) key under /proc/sys.
pub fn proc_path(key: &str) -> String {
    let rel: String = key
        .chars()
        .map(|c| match c {
            '.' => '/',
            '/' => '.',
            c => c,
        })
        .collect();
    format!("/proc/sys/{rel}")
}

/// Values compare as the kernel prints them: words separated by white space.
pub fn same_value(a: &str, b: &str) -> bool {
    a.split_whitespace().eq(b.split_whitespace())
}

/// One assignment in a sysctl.d file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Assignment {
    pub key: String,
    /// `None`: a `-KEY` line, which only keeps glob lines off KEY.
    pub value: Option<String>,
    pub glob: bool,
    /// `file:line`.
    pub at: String,
}

/// Parse one file as systemd-sysctl does.
pub fn parse_file(path: &str, bytes: &[u8]) -> Vec<Assignment> {
    let text = String::from_utf8_lossy(bytes);
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let p = line.trim();
        if p.is_empty() || p.starts_with('#') || p.starts_with(';') {
            continue;
        }
        let (k, v) = match p.split_once('=') {
            Some((k, v)) => (k, Some(v.trim().to_string())),
            // `-KEY` alone keeps globs off KEY; any other line without `=`
            // is ignored.
            None if p.starts_with('-') => (p, None),
            None => continue,
        };
        let k = k.trim();
        let key = normalize(k.strip_prefix('-').unwrap_or(k).trim());
        out.push(Assignment {
            glob: crate::kubelet::envfile::has_glob_magic(&key),
            key,
            value: v,
            at: format!("{path}:{}", i + 1),
        });
    }
    out
}

/// One sysctl.d file found: its name, node path, and bytes (`None`: masked
/// by a link to /dev/null).
#[derive(Debug, Clone)]
pub struct ConfFile {
    pub path: String,
    pub bytes: Option<Vec<u8>>,
}

/// Pick the files systemd-sysctl runs, in order, from `(dir, entries)` as
/// listed in [`SYSCTL_DIRS`] order: the first directory holding a name wins,
/// files run sorted by name.
pub fn effective_files(found: Vec<ConfFile>) -> Vec<ConfFile> {
    let mut by_name: std::collections::BTreeMap<String, ConfFile> = Default::default();
    for f in found {
        let name = f.path.rsplit('/').next().unwrap_or(&f.path).to_string();
        by_name.entry(name).or_insert(f);
    }
    by_name.into_values().collect()
}

/// Where the boot value of a key comes from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BootValue {
    /// The value after boot; `None` when nothing sets it and the kernel's
    /// default is not known here.
    pub value: Option<String>,
    /// `file:line`, `kernel command line`, or `kernel default`.
    pub from: String,
    /// A line for the key in [`OURS`] would be the last word at boot
    /// (no file that runs after it sets the key).
    pub ours_wins: bool,
    /// The file that runs after ours and sets the key, when one does.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub overridden_after_ours_by: Option<String>,
}

/// The value `key` (dotted) has after the next boot.
pub fn boot_value(key: &str, files: &[ConfFile], cmdline: &str) -> BootValue {
    // The key and its alias: separate entries to systemd-sysctl.
    let keys: Vec<&str> = std::iter::once(key)
        .chain(aliases(key).iter().copied())
        .collect();
    let ours_name = OURS.rsplit('/').next().unwrap_or(OURS);
    let mut cmdline_value = None;
    let mut after_ours = None;
    // The kernel's own `sysctl.` words come first.
    for w in cmdline.split_whitespace() {
        if let Some((k, v)) = w.strip_prefix("sysctl.").and_then(|w| w.split_once('=')) {
            if keys.contains(&normalize(k).as_str()) {
                cmdline_value = Some(v.to_string());
            }
        }
    }
    // systemd-sysctl's one ordered map over every file, keyed by the
    // line's key (a glob or not): a key seen again with another value — a
    // `-KEY` line's none included — is removed and appended; with the same
    // value it stays where it was.
    struct Entry {
        key: String,
        value: Option<String>,
        glob: bool,
        at: String,
    }
    let mut map: Vec<Entry> = Vec::new();
    for f in files {
        let Some(bytes) = &f.bytes else { continue };
        let name = f.path.rsplit('/').next().unwrap_or(&f.path);
        for a in parse_file(&f.path, bytes) {
            // Only an explicit line for the key in a file after ours (a
            // `-KEY` too: it drops our assignment) overrides our line.
            if !a.glob && a.key == key && name > ours_name {
                after_ours.get_or_insert_with(|| a.at.clone());
            }
            if let Some(i) = map.iter().position(|e| e.key == a.key) {
                if map[i].value == a.value {
                    continue;
                }
                map.remove(i);
            }
            map.push(Entry {
                key: a.key,
                value: a.value,
                glob: a.glob,
                at: a.at,
            });
        }
    }
    // Per concrete key: its explicit entry, if any (none written for a
    // `-KEY`, and no glob either); else the glob entries that match it,
    // written in the map's order, the last one staying.
    let mut assigned: Vec<(String, String)> = Vec::new();
    for k in &keys {
        let v = match map.iter().find(|e| !e.glob && e.key == *k) {
            Some(e) => e.value.clone().map(|v| (v, e.at.clone())),
            None => map
                .iter()
                .rev()
                .filter(|e| e.glob && glob_matches(&e.key, k))
                .find_map(|e| e.value.clone().map(|v| (v, e.at.clone()))),
        };
        if let Some(v) = v {
            assigned.push(v);
        }
    }
    let mut values: Vec<&str> = assigned.iter().map(|(v, _)| v.as_str()).collect();
    values.sort();
    values.dedup();
    let (value, from) = match values.len() {
        // Written in the order of systemd-sysctl's ordered map (an entry
        // moves to the end only when its value changes): which one the
        // kernel keeps is not reproduced here.
        2.. => (
            None,
            format!(
                "{} are set to different values ({}): which one systemd-sysctl writes last is not reproduced",
                keys.join(" and "),
                assigned
                    .iter()
                    .map(|(v, at)| format!("{v} at {at}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        ),
        1 => {
            let (v, at) = assigned.last().cloned().unwrap_or_default();
            (Some(v), at)
        }
        _ => match cmdline_value {
            Some(v) => (Some(v), "kernel command line".to_string()),
            None => (
                kernel_default(key).map(String::from),
                "kernel default".to_string(),
            ),
        },
    };
    BootValue {
        value,
        from,
        ours_wins: after_ours.is_none(),
        overridden_after_ours_by: after_ours,
    }
}

/// A glob line's key matches `key` (both dotted) as systemd-sysctl finds
/// it: glob(3) over /proc/sys, so `*`, `?` and `[…]` match within one path
/// component (a `.` of the dotted form), never across one, and not a
/// component's leading `.`.
fn glob_matches(pattern: &str, key: &str) -> bool {
    let path = |s: &str| -> String {
        s.chars()
            .map(|c| match c {
                '.' => '/',
                '/' => '.',
                c => c,
            })
            .collect()
    };
    crate::kubelet::envfile::fnmatch_pathname(&path(pattern), &path(key))
}

/// The line [`OURS`] gets for `key = value`, and the file's new text from
/// its old one: an existing line for the key is replaced, else one is
/// appended.
pub fn persist_text(old: &str, key: &str, value: &str) -> String {
    let line = format!("{key} = {value}");
    let mut out = Vec::new();
    let mut done = false;
    for l in old.lines() {
        let k = l
            .split_once('=')
            .map(|(k, _)| normalize(k.trim().trim_start_matches('-')));
        if !l.trim_start().starts_with(['#', ';']) && k.as_deref() == Some(key) {
            if !done {
                out.push(line.clone());
                done = true;
            }
            continue;
        }
        out.push(l.to_string());
    }
    if !done {
        if out.is_empty() {
            out.push(
                "# Written by taint-guard: sysctls in effect that no file set for the next boot."
                    .into(),
            );
        }
        out.push(line);
    }
    out.join("\n") + "\n"
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f(path: &str, text: &str) -> ConfFile {
        ConfFile {
            path: path.into(),
            bytes: Some(text.as_bytes().to_vec()),
        }
    }

    #[test]
    fn minus_key_replaces_an_earlier_assignment_and_globs_stay_in_a_component() {
        let key = "net.ipv4.ip_forward";
        // `KEY=1`, then `-KEY`: systemd-sysctl replaces the option with
        // the negative match, so nothing sets the key.
        let files = vec![
            f("/etc/sysctl.d/10-k8s.conf", "net.ipv4.ip_forward = 1\n"),
            f("/etc/sysctl.d/20-off.conf", "-net.ipv4.ip_forward\n"),
        ];
        let b = boot_value(key, &files, "");
        assert_eq!(
            (b.value.as_deref(), b.from.as_str()),
            (Some("0"), "kernel default"),
            "{b:?}"
        );
        // A later file after ours with `-KEY` drops our line too.
        let files = vec![
            f(
                "/etc/sysctl.d/99-taint-guard.conf",
                "net.ipv4.ip_forward = 1\n",
            ),
            f("/etc/sysctl.d/zz-off.conf", "-net.ipv4.ip_forward\n"),
        ];
        let b = boot_value(key, &files, "");
        assert_eq!(b.value.as_deref(), Some("0"), "{b:?}");
        assert_eq!(
            b.overridden_after_ours_by.as_deref(),
            Some("/etc/sysctl.d/zz-off.conf:1")
        );
        // `-KEY`, then `KEY=1`: the assignment is back.
        let files = vec![
            f("/etc/sysctl.d/10-off.conf", "-net.ipv4.ip_forward\n"),
            f("/etc/sysctl.d/20-on.conf", "net.ipv4.ip_forward=1\n"),
        ];
        assert_eq!(boot_value(key, &files, "").value.as_deref(), Some("1"));
        // glob(3) over /proc/sys: `*` stays within one component.
        let across = vec![f("/etc/sysctl.d/50-glob.conf", "net.* = 1\n")];
        assert_eq!(
            boot_value(key, &across, "").from,
            "kernel default",
            "net.* is net/*: one level, not net/ipv4/ip_forward"
        );
        let within = vec![f("/etc/sysctl.d/50-glob.conf", "net.ipv4.ip_forw* = 1\n")];
        assert_eq!(boot_value(key, &within, "").value.as_deref(), Some("1"));
        let nested = vec![f("/etc/sysctl.d/50-glob.conf", "net.*.ip_forward = 1\n")];
        assert_eq!(boot_value(key, &nested, "").value.as_deref(), Some("1"));
    }

    #[test]
    fn later_file_and_line_win_and_explicit_beats_glob() {
        let files = effective_files(vec![
            f("/etc/sysctl.d/10-a.conf", "net.ipv4.ip_forward = 1\n"),
            f(
                "/usr/lib/sysctl.d/50-b.conf",
                "net/ipv4/ip_forward=0\n# x\n",
            ),
            f("/usr/lib/sysctl.d/10-a.conf", "net.ipv4.ip_forward = 0\n"),
        ]);
        // /etc's 10-a hides /usr/lib's; 50-b runs after it.
        let b = boot_value("net.ipv4.ip_forward", &files, "");
        assert_eq!(b.value.as_deref(), Some("0"));
        assert_eq!(b.from, "/usr/lib/sysctl.d/50-b.conf:1");
        assert!(b.ours_wins);
        // An explicit key beats a glob for the same key.
        let files = vec![
            f(
                "/etc/sysctl.d/10-k8s.conf",
                "net.bridge.bridge-nf-call-iptables=1\n",
            ),
            f(
                "/etc/sysctl.d/90-glob.conf",
                "net.bridge.bridge-nf-call-*tables = 0\n",
            ),
        ];
        let b = boot_value("net.bridge.bridge-nf-call-iptables", &files, "");
        assert_eq!(b.value.as_deref(), Some("1"), "{b:?}");
        let files = vec![
            f("/etc/sysctl.d/10-x.conf", "-net.ipv4.ip_forward\n"),
            f(
                "/etc/sysctl.d/90-glob.conf",
                "net.ipv4.ip_*= 1\nno assignment here\n",
            ),
        ];
        let b = boot_value("net.ipv4.ip_forward", &files, "");
        assert_eq!(
            (b.value.as_deref(), b.from.as_str()),
            (Some("0"), "kernel default")
        );
        // The alias: conf.all.forwarding is the same value.
        let files = vec![f(
            "/etc/sysctl.d/10-k8s.conf",
            "-net.ipv4.conf.all.forwarding = 1\n",
        )];
        assert_eq!(
            boot_value("net.ipv4.ip_forward", &files, "")
                .value
                .as_deref(),
            Some("1")
        );
    }

    #[test]
    fn key_and_alias_disagreeing_is_unknown() {
        let files = vec![
            f("/etc/sysctl.d/10-k8s.conf", "net.ipv4.ip_forward = 1\n"),
            f(
                "/etc/sysctl.d/90-x.conf",
                "net.ipv4.conf.*.forwarding = 0\n",
            ),
        ];
        let b = boot_value("net.ipv4.ip_forward", &files, "");
        assert_eq!(b.value, None, "{b:?}");
        assert!(b.from.contains("not reproduced"), "{}", b.from);
        // Agreeing: known.
        let files = vec![
            f("/etc/sysctl.d/10-k8s.conf", "net.ipv4.ip_forward = 1\n"),
            f(
                "/etc/sysctl.d/90-x.conf",
                "- net.ipv4.conf.all.forwarding = 1\n",
            ),
        ];
        assert_eq!(
            boot_value("net.ipv4.ip_forward", &files, "")
                .value
                .as_deref(),
            Some("1")
        );
    }

    #[test]
    fn defaults_cmdline_masking_and_ours() {
        assert_eq!(
            boot_value("net.ipv4.ip_forward", &[], "").value.as_deref(),
            Some("0")
        );
        let b = boot_value("net.bridge.bridge-nf-call-iptables", &[], "");
        assert_eq!(
            (b.value.as_deref(), b.from.as_str()),
            (Some("1"), "kernel default")
        );
        assert_eq!(boot_value("vm.swappiness", &[], "").value, None);
        let b = boot_value(
            "net.ipv4.ip_forward",
            &[],
            "quiet sysctl.net.ipv4.ip_forward=1",
        );
        assert_eq!(b.value.as_deref(), Some("1"));
        let masked = vec![
            ConfFile {
                path: "/etc/sysctl.d/k8s.conf".into(),
                bytes: None,
            },
            f("/usr/lib/sysctl.d/k8s.conf", "net.ipv4.ip_forward=1\n"),
        ];
        assert_eq!(
            boot_value("net.ipv4.ip_forward", &effective_files(masked), "")
                .value
                .as_deref(),
            Some("0")
        );
        let late = vec![f("/etc/sysctl.d/zz-late.conf", "net.ipv4.ip_forward=0\n")];
        let b = boot_value("net.ipv4.ip_forward", &late, "");
        assert!(!b.ours_wins);
        assert_eq!(
            b.overridden_after_ours_by.as_deref(),
            Some("/etc/sysctl.d/zz-late.conf:1")
        );
    }

    #[test]
    fn persist_text_replaces_or_appends_only_its_key() {
        let t = persist_text("", "net.ipv4.ip_forward", "1");
        assert!(t.ends_with("\nnet.ipv4.ip_forward = 1\n"), "{t}");
        let t2 = persist_text(&t, "net.bridge.bridge-nf-call-iptables", "1");
        assert_eq!(t2.lines().count(), 3);
        let t3 = persist_text(
            "# keep\nnet/ipv4/ip_forward=0\nvm.x = 2\n",
            "net.ipv4.ip_forward",
            "1",
        );
        assert_eq!(t3, "# keep\nnet.ipv4.ip_forward = 1\nvm.x = 2\n");
    }
}
