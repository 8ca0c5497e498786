//! The properties each fuzz target checks, shared by the libFuzzer targets
//! (fuzz/fuzz_targets/*.rs, `cargo +nightly fuzz run TARGET`) and by
//! tests/fuzz_corpus.rs, which replays every committed corpus file through
//! them with the normal test command. Each function panics on a violation.

#![allow(dead_code)]

use std::collections::HashMap;
use std::path::PathBuf;

use taint_guard::fstab;
use taint_guard::kubelet::envfile;

/// fstab: parsing never panics; commenting out nothing is byte-identical;
/// commenting out every live swap line changes only those lines (each
/// becomes the marker line and `#` + itself, line endings kept) and the
/// result has no live swap line left.
pub fn fstab(data: &[u8]) {
    let marker = "taint-guard: swap off for kubelet (fuzz)";
    let Ok(entries) = fstab::swap_lines(data, None, None) else {
        // A NUL byte: refused, never rewritten.
        return;
    };
    assert_eq!(fstab::comment_out(data, &[], marker).new_content, data);
    let lines: Vec<usize> = entries.iter().map(|e| e.line).collect();
    let edit = fstab::comment_out(data, &lines, marker);
    let mut changed = edit.changed_lines.clone();
    changed.sort_unstable();
    let mut want = lines.clone();
    want.sort_unstable();
    want.dedup();
    assert_eq!(changed, want, "every live swap line, and only those");
    // Rebuild the old file from the new one: drop each marker line and the
    // `#` before each changed line.
    let old: Vec<(usize, &[u8], bool)> = fstab::lines(data).collect();
    let new: Vec<(usize, &[u8], bool)> = fstab::lines(&edit.new_content).collect();
    let mut j = 0;
    for (n, line, nl) in &old {
        if changed.contains(n) {
            let (_, m, mnl) = new[j];
            assert!(
                m.starts_with(b"# taint-guard: swap off") && mnl,
                "marker before line {n}"
            );
            j += 1;
            let (_, c, cnl) = new[j];
            assert_eq!((&c[..1], &c[1..], cnl), (&b"#"[..], *line, *nl), "line {n}");
        } else {
            assert_eq!(
                (new[j].1, new[j].2),
                (*line, *nl),
                "line {n} must not change"
            );
        }
        j += 1;
    }
    assert_eq!(j, new.len(), "nothing added at the end");
    let after = fstab::swap_lines(&edit.new_content, None, None).expect("still parses");
    assert!(after.is_empty(), "live swap lines left: {after:?}");
}

/// /proc/swaps: never panics; an error names the source and line.
pub fn proc_swaps(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Err(e) = taint_guard::swap::parse_proc_swaps(text, "/proc/swaps") {
        assert!(e.to_string().starts_with("/proc/swaps:"), "{e}");
    }
}

/// A systemd EnvironmentFile, then an ExecStart line expanded with it as
/// systemd does (the first line of the input is the ExecStart argv, the
/// rest the file): never panics; every assignment has a valid name;
/// expansion asks only for names and never yields an empty argv from a
/// non-empty one that has no `$` word.
pub fn envfile(data: &[u8]) {
    let (exec, file) = match data.iter().position(|&b| b == b'\n') {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &b""[..]),
    };
    let Ok(vars) = envfile::parse_env_file(file) else {
        return;
    };
    for (k, _) in &vars {
        assert!(envfile::env_name_is_valid(k), "{k:?}");
    }
    let map: HashMap<String, String> = vars.into_iter().collect();
    let get = |k: &str| map.get(k).cloned();
    let env = envfile::Env {
        get: &get,
        asked: Default::default(),
    };
    let argv = envfile::split_unquote(&String::from_utf8_lossy(exec));
    let out = envfile::replace_env_argv(&argv, &env);
    if !argv.is_empty() && !argv.iter().any(|w| w.starts_with('$')) {
        assert_eq!(out.len(), argv.len());
    }
    // kubelet's flag parser on the result: never panics.
    let _ = taint_guard::kubelet::flags::parse(&out);
}

/// A KubeletConfiguration (YAML): never panics; an error names the file.
pub fn kubelet_yaml(data: &[u8]) {
    if let Err(e) = taint_guard::kubelet::config::parse(data, "/var/lib/kubelet/config.yaml", false)
    {
        assert!(e.message.starts_with("/var/lib/kubelet/config.yaml"), "{e}");
    }
}

/// taint-guard's TOML config: never panics; an error names file, line and
/// column within the text.
pub fn config_toml(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let path = PathBuf::from("/etc/taint-guard/config.toml");
    if let Err(e) = taint_guard::config::Config::from_texts(&[(path, text.to_string())]) {
        let lines = text.lines().count().max(1);
        assert!(e.line <= lines + 1, "line {} of {lines}", e.line);
        assert_eq!(e.path, "/etc/taint-guard/config.toml");
    }
}

/// kubelet.conf (a kubeconfig): never panics; the identity of its current
/// context, when it parses.
pub fn kubeconfig(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(kc) = kube::config::Kubeconfig::from_yaml(text) {
        let _ = taint_guard::report::identity::identity_of(&kc);
    }
}

/// A target's properties.
pub type Property = fn(&[u8]);

/// Every property by its target's name.
pub const TARGETS: &[(&str, Property)] = &[
    ("fstab", fstab),
    ("proc_swaps", proc_swaps),
    ("envfile", envfile),
    ("kubelet_yaml", kubelet_yaml),
    ("config_toml", config_toml),
    ("kubeconfig", kubeconfig),
];
