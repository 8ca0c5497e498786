//! The Debian package (packaging/deb): its contents and lintian, then
//! `dpkg -i` on a real-systemd node in the seed incident's state (kubeadm's
//! kubelet never enabled, swap on and in fstab) protecting it with no other
//! step, an upgrade, `dpkg -r` and `dpkg -P`. The units are verified and
//! scored (packaging/security-score.sh) inside the node.

mod harness;

use std::process::Command;

use harness::{Kubelet, Node};

fn sh(cmd: &str) -> std::process::Output {
    Command::new("sh").arg("-c").arg(cmd).output().unwrap()
}

/// Every file the package must ship, where Debian expects it.
const SHIPPED: &[&str] = &[
    "./usr/bin/taint-guard",
    "./usr/bin/kubectl-taint_guard",
    "./usr/lib/systemd/system/taint-guard.service",
    "./usr/lib/systemd/system/taint-guard-check.service",
    "./usr/lib/taint-guard/config.d/50-debian.toml",
    "./usr/share/doc/taint-guard/README.md",
    "./usr/share/doc/taint-guard/examples/config.toml",
    "./usr/share/doc/taint-guard/copyright",
    "./usr/share/doc/taint-guard/changelog.Debian.gz",
    "./usr/share/man/man1/taint-guard.1.gz",
    "./usr/share/man/man1/taint-guard-check.1.gz",
    "./usr/share/man/man1/taint-guard-pause.1.gz",
    "./usr/share/man/man1/taint-guard-resume.1.gz",
    "./usr/share/man/man1/taint-guard-run.1.gz",
    "./usr/share/man/man1/taint-guard-completions.1.gz",
    "./usr/share/man/man1/taint-guard-explain.1.gz",
    "./usr/share/man/man1/taint-guard-explain-node.1.gz",
    "./usr/share/man/man1/taint-guard-explain-pod.1.gz",
    "./usr/share/man/man1/taint-guard-explain-nodes.1.gz",
    "./usr/share/man/man1/kubectl-taint_guard.1.gz",
    "./usr/share/bash-completion/completions/taint-guard",
    "./usr/share/zsh/vendor-completions/_taint-guard",
    "./usr/share/fish/vendor_completions.d/taint-guard.fish",
    "./usr/share/lintian/overrides/taint-guard",
];

fn package_contents_and_lintian() {
    let deb = harness::deb::package();
    let o = Command::new("dpkg-deb")
        .arg("-c")
        .arg(&deb)
        .output()
        .unwrap();
    assert!(o.status.success());
    let listing = String::from_utf8_lossy(&o.stdout);
    let files: Vec<&str> = listing
        .lines()
        .filter_map(|l| l.split_whitespace().nth(5))
        .collect();
    for want in SHIPPED {
        assert!(
            files.contains(want),
            "{want} missing from the .deb:\n{listing}"
        );
    }
    // The kubectl plugin is a relative symlink to the binary.
    assert!(
        listing
            .lines()
            .any(|l| l.starts_with('l')
                && l.ends_with("./usr/bin/kubectl-taint_guard -> taint-guard")),
        "{listing}"
    );
    // Nothing in /etc: the operator's files there are never a package's.
    assert!(!files.iter().any(|f| f.starts_with("./etc")), "{listing}");

    if !sh("command -v lintian").status.success() {
        let o = sh("export DEBIAN_FRONTEND=noninteractive; apt-get update -qq && apt-get install -y -qq lintian");
        assert!(o.status.success(), "apt-get install lintian: {o:?}");
    }
    // Clean at every level, pedantic included; what remains is overridden
    // in packaging/deb/lintian-overrides, each with its reason.
    let o = Command::new("lintian")
        .args(["-I", "--pedantic"])
        .arg(&deb)
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&o.stdout);
    let tags: Vec<&str> = out
        .lines()
        .filter(|l| l.len() > 2 && l.as_bytes()[1] == b':' && !l.starts_with("N:"))
        // That override is for the release build's optimised code; this
        // debug build has no such byte sequences.
        .filter(|l| !l.contains("unused-override spelling-error-in-binary"))
        .collect();
    assert!(
        o.status.success() && tags.is_empty(),
        "lintian: {tags:#?}\n{}",
        String::from_utf8_lossy(&o.stderr)
    );
}

/// Monotonic timestamp property of a unit, in µs.
fn mono(node: &Node, unit: &str, prop: &str) -> u64 {
    node.prop(unit, prop)
        .parse()
        .unwrap_or_else(|e| panic!("{unit} {prop}: {e}"))
}

fn dpkg_install_protects_the_seed_incident_then_remove_and_purge() {
    harness::host_global("swap on");
    let deb = harness::deb::package();
    let mut node = Node::boot("deb", Kubelet::Kubeadm, |root| {
        harness::install_fstab(root);
        std::fs::copy(&deb, root.join("root/taint-guard.deb")).unwrap();
        std::fs::copy(
            concat!(env!("CARGO_MANIFEST_DIR"), "/packaging/security-score.sh"),
            root.join("root/security-score.sh"),
        )
        .unwrap();
    });
    node.swap_on("/swapfile", 16);
    assert_eq!(node.prop("kubelet.service", "UnitFileState"), "disabled");
    assert_eq!(node.prop("kubelet.service", "ActiveState"), "inactive");

    // The one step: dpkg -i.
    node.exec("dpkg -i /root/taint-guard.deb");
    // The kubectl plugin resolves to the binary.
    assert_eq!(
        node.exec("readlink -f /usr/bin/kubectl-taint_guard").trim(),
        "/usr/bin/taint-guard"
    );
    node.exec("kubectl-taint_guard explain node --help >/dev/null");
    for unit in ["taint-guard.service", "taint-guard-check.service"] {
        assert_eq!(node.prop(unit, "UnitFileState"), "enabled", "{unit}");
        // (/lib is /usr/lib on a merged-/usr system, and systemd says /lib.)
        let frag = node.prop(unit, "FragmentPath");
        assert!(
            [
                format!("/usr/lib/systemd/system/{unit}"),
                format!("/lib/systemd/system/{unit}")
            ]
            .contains(&frag),
            "{frag}"
        );
    }
    // The daemon runs now (Type=notify: active means READY=1 arrived); the
    // boot unit waits for the next boot.
    assert_eq!(node.prop("taint-guard.service", "ActiveState"), "active");
    assert_eq!(
        node.prop("taint-guard-check.service", "ActiveState"),
        "inactive"
    );

    // Power cycle; nothing typed after it.
    node.reboot();
    node.wait_for("kubelet active", |n| {
        n.prop("kubelet.service", "ActiveState") == "active"
    });
    let check = "taint-guard-check.service";
    assert_eq!(node.prop(check, "ActiveState"), "active");
    assert_eq!(node.prop(check, "Result"), "success");
    // The boot unit had finished before kubelet's start began.
    let check_done = mono(&node, check, "ActiveEnterTimestampMonotonic");
    let kubelet_began = mono(&node, "kubelet.service", "InactiveExitTimestampMonotonic");
    assert!(
        check_done > 0 && check_done <= kubelet_began,
        "{check} active at {check_done} µs, kubelet started at {kubelet_began} µs"
    );
    assert_eq!(node.prop("kubelet.service", "UnitFileState"), "enabled");
    let swaps = node.exec("cat /proc/swaps");
    assert!(!swaps.contains("/swapfile"), "{swaps}");
    let fstab = node.read("/etc/fstab");
    assert!(fstab.contains("\n#/swapfile\t"), "{fstab}");
    // The daemon: active (READY), and healthy by its STATUS= and by check.
    assert_eq!(node.prop("taint-guard.service", "ActiveState"), "active");
    node.wait_for("daemon status ok", |n| {
        n.prop("taint-guard.service", "StatusText") == "ok: no problems; reboot-safe"
    });
    let o = node.try_exec("taint-guard check");
    assert_eq!(o.status.code(), Some(0), "{o:?}");
    // `taint-guard --check` is the same command.
    let o = node.try_exec("taint-guard --check --output json");
    assert_eq!(o.status.code(), Some(0), "{o:?}");

    // systemctl reload: SIGHUP to the same process, still active.
    let pid = node.prop("taint-guard.service", "MainPID");
    node.exec("systemctl reload taint-guard.service");
    assert_eq!(node.prop("taint-guard.service", "MainPID"), pid);
    assert_eq!(node.prop("taint-guard.service", "ActiveState"), "active");
    let j = node.exec("journalctl -b -u taint-guard.service --no-pager");
    assert!(j.to_lowercase().contains("reload"), "{j}");

    // The units as systemd 252 sees them, and their exposure scores.
    node.exec(
        "systemd-analyze verify /usr/lib/systemd/system/taint-guard.service \
         /usr/lib/systemd/system/taint-guard-check.service",
    );
    let scores = node.try_exec("sh /root/security-score.sh /usr/lib/systemd/system");
    let text = String::from_utf8_lossy(&scores.stdout);
    eprintln!(
        "{}",
        text.lines()
            .filter(|l| l.contains("Overall"))
            .collect::<Vec<_>>()
            .join("\n")
    );
    assert!(
        scores.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&scores.stderr)
    );

    // Man pages and completions where their tools look.
    node.exec("test -s /usr/share/man/man1/taint-guard-check.1.gz");
    node.exec("test -s /usr/share/bash-completion/completions/taint-guard");

    // An operator override, then an upgrade (same version again): the
    // daemon restarted, the override untouched.
    let local = "[run]\nstart_grace_secs = 30\n";
    node.write("/etc/taint-guard/config.d/90-local.toml", local);
    let before = node.prop("taint-guard.service", "InvocationID");
    node.exec("dpkg -i /root/taint-guard.deb");
    assert_eq!(node.prop("taint-guard.service", "ActiveState"), "active");
    assert_ne!(node.prop("taint-guard.service", "InvocationID"), before);
    assert_eq!(node.read("/etc/taint-guard/config.d/90-local.toml"), local);
    node.exec("taint-guard pause --for 1h --reason test");

    // dpkg -r: both units stopped and gone, /etc kept, kubelet left alone.
    node.exec("dpkg -r taint-guard");
    for unit in ["taint-guard.service", check] {
        assert_eq!(node.prop(unit, "ActiveState"), "inactive", "{unit}");
        let load = node.prop(unit, "LoadState");
        assert!(load == "masked" || load == "not-found", "{unit}: {load}");
    }
    node.exec("test ! -e /usr/bin/taint-guard");
    assert_eq!(node.read("/etc/taint-guard/config.d/90-local.toml"), local);
    node.exec("test -e /var/lib/taint-guard/pause");
    assert_eq!(node.prop("kubelet.service", "ActiveState"), "active");

    // dpkg -P: /etc/taint-guard and the pause gone, no unit state left.
    node.exec("dpkg -P taint-guard");
    node.exec("test ! -e /etc/taint-guard && test ! -e /var/lib/taint-guard");
    for unit in ["taint-guard.service", check] {
        assert_eq!(node.prop(unit, "LoadState"), "not-found", "{unit}");
    }
    let left = node
        .exec("find /etc/systemd /var/lib/systemd/deb-systemd-helper-enabled -name 'taint-guard*'");
    assert!(left.trim().is_empty(), "left behind: {left}");
    assert_eq!(node.prop("kubelet.service", "ActiveState"), "active");
}

fn main() -> std::process::ExitCode {
    harness::run(vec![
        harness::trial("package_contents_and_lintian", package_contents_and_lintian),
        harness::trial(
            "dpkg_install_protects_the_seed_incident_then_remove_and_purge",
            dpkg_install_protects_the_seed_incident_then_remove_and_purge,
        ),
    ])
}
