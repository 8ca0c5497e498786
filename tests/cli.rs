//! The binary's command line, without a node: both spellings of check,
//! completions and man pages from the real executable.

use std::process::Command;

fn tg(args: &[&str]) -> (i32, String, String) {
    let o = Command::new(env!("CARGO_BIN_EXE_taint-guard"))
        .env("DBUS_SYSTEM_BUS_ADDRESS", "unix:path=/nonexistent/bus")
        .env_remove("KUBECONFIG")
        .env_remove("NODE_NAME")
        .args(args)
        .output()
        .expect("running taint-guard");
    (
        o.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

#[test]
fn check_flag_runs_the_same_check() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("config.toml");
    std::fs::write(&cfg, "").unwrap();
    let cfg = cfg.to_str().unwrap();
    // Swap from a file of its own: the host's may change between the two
    // runs (other test processes turn swap on and off).
    let swaps = dir.path().join("swaps");
    std::fs::write(&swaps, "Filename\tType\tSize\tUsed\tPriority\n").unwrap();
    let swaps = swaps.to_str().unwrap();
    let sub = tg(&[
        "--config",
        cfg,
        "check",
        "--proc-swaps",
        swaps,
        "--output",
        "json",
    ]);
    let flag = tg(&[
        "--config",
        cfg,
        "--check",
        "--proc-swaps",
        swaps,
        "--output",
        "json",
    ]);
    assert_eq!(sub.0, 3, "no bus is unknown: {sub:?}");
    assert_eq!(flag.0, sub.0, "{flag:?}");
    let json = |s: &str| serde_json::from_str::<serde_json::Value>(s).unwrap();
    let (a, b) = (json(&sub.1), json(&flag.1));
    assert_eq!(b["status"], "unknown");
    // The same verdict (the memory figures move between two runs).
    for k in ["status", "reboot_safe", "findings"] {
        assert_eq!(a[k], b[k], "{k}");
    }
    // Usage errors are usage errors under both spellings.
    assert_eq!(tg(&["--check", "--dry-run"]).0, 64);
    let (code, help, _) = tg(&["--help"]);
    assert_eq!(code, 0);
    assert!(help.contains("check, --check"), "{help}");
    assert!(!help.contains("\n  man "), "man is hidden: {help}");
}

#[test]
fn completions_and_man_pages_from_the_binary() {
    for (shell, marker) in [
        ("bash", "complete -F _taint__guard"),
        ("zsh", "#compdef taint-guard"),
        ("fish", "complete -c taint-guard"),
    ] {
        let (code, out, err) = tg(&["completions", shell]);
        assert_eq!(code, 0, "{err}");
        assert!(out.contains(marker), "{shell}: {out}");
    }
    assert_eq!(tg(&["completions", "tcsh"]).0, 64);
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("man");
    let (code, listed, err) = tg(&["man", "--out", out.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    // taint-guard, check, completions, explain (node, nodes, pod), pause,
    // resume, run.
    assert_eq!(listed.lines().count(), 10, "{listed}");
    for page in [
        "taint-guard.1",
        "taint-guard-check.1",
        "taint-guard-run.1",
        "taint-guard-explain-pod.1",
    ] {
        let text = std::fs::read_to_string(out.join(page)).unwrap();
        assert!(text.contains(".TH"), "{page}: {text}");
    }
}
