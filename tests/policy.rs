//! kubelet's swap policy against the real thing: for each configuration a
//! node boots with swap on, the unit starts with a stand-in that applies
//! kubelet's (k3s', kubelite's) own rules independently of taint-guard's
//! parser (tests/fixtures/node/{kubelet,k3s,snap}), and `check --fix` must
//! leave swap alone exactly when the stand-in runs with it and remove it
//! exactly when the stand-in refuses it. An ExecStart that is not a kubelet
//! leaves swap and fstab untouched, and says why.

mod harness;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::{Duration, Instant};

use harness::{Kubelet, Node};
use serde_json::Value;

const HEAD: &str = "apiVersion: kubelet.config.k8s.io/v1beta1\nkind: KubeletConfiguration\n";
const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/node");

fn put(root: &Path, node_path: &str, content: &str, mode: u32) {
    let p = root.join(node_path.trim_start_matches('/'));
    fs::create_dir_all(p.parent().unwrap()).unwrap();
    fs::write(&p, content).unwrap();
    fs::set_permissions(&p, fs::Permissions::from_mode(mode)).unwrap();
}

fn stand_in(root: &Path, node_path: &str, fixture: &str) {
    put(
        root,
        node_path,
        &fs::read_to_string(Path::new(FIXTURES).join(fixture)).unwrap(),
        0o755,
    );
}

fn unit(exec: &str, extra: &str) -> String {
    format!("[Service]\n{extra}ExecStart={exec}\nRestart=always\nRestartSec=10\n[Install]\nWantedBy=multi-user.target\n")
}

/// Start `unit` with swap on; true when it stays running, false when it
/// exits (kubelet refusing swap).
fn runs_with_swap(node: &Node, unit: &str) -> bool {
    node.exec(&format!(
        "systemctl enable {unit} >/dev/null 2>&1; systemctl start {unit}"
    ));
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut running_since: Option<Instant> = None;
    loop {
        let sub = node.prop(unit, "SubState");
        let restarts: u32 = node.prop(unit, "NRestarts").parse().unwrap_or(0);
        if restarts > 0 || sub == "auto-restart" || sub == "failed" {
            return false;
        }
        if sub == "running" {
            let t = *running_since.get_or_insert_with(Instant::now);
            if t.elapsed() > Duration::from_secs(2) {
                return true;
            }
        } else {
            running_since = None;
        }
        assert!(
            Instant::now() < deadline,
            "{unit} neither ran nor failed: {sub}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn swap_is_on(node: &Node) -> bool {
    node.exec("cat /proc/swaps").contains("/swapfile")
}

/// Boot, swap on, start, judge, fix, and check the fix matched the stand-in.
fn scenario(
    name: &str,
    kubelet: Kubelet,
    unit_name: &str,
    prepare: impl FnOnce(&Path),
) -> (Node, bool, Value) {
    let node = Node::boot(name, kubelet, |root| {
        harness::install_fstab(root);
        prepare(root);
    });
    node.swap_on("/swapfile", 16);
    let runs = runs_with_swap(&node, unit_name);
    let (_, v) = node.check_json(&["--fix"]);
    let pol = &v["observations"]["kubelet_policy"];
    if let Some(known) = pol.get("known") {
        assert_eq!(
            known["fail_swap_on"], !runs,
            "policy {pol:#} vs stand-in running={runs}"
        );
        assert_eq!(swap_is_on(&node), runs, "{v:#}");
        let fstab = node.read("/etc/fstab");
        assert_eq!(fstab.contains("\n/swapfile"), runs, "{fstab}");
    }
    (node, runs, v)
}

/// The argv taint-guard expanded equals the running kubelet's
/// /proc/MAINPID/cmdline (after the stand-in's interpreter).
fn argv_matches_process(node: &Node, unit: &str, v: &Value) {
    let pid = node.prop(unit, "MainPID");
    let raw = node.exec(&format!("tr '\\0' '\\n' < /proc/{pid}/cmdline"));
    let cmdline: Vec<&str> = raw.lines().collect();
    assert_eq!(cmdline[0], "/bin/sh", "{cmdline:?}");
    let ours: Vec<String> = v["observations"]["kubelet_policy"]["known"]["argv"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap().to_string())
        .collect();
    assert_eq!(ours, cmdline[1..].to_vec(), "argv");
}

fn config_file_false_keeps_swap() {
    let (node, runs, v) = scenario(
        "pol-cfgfalse",
        Kubelet::Kubeadm,
        "kubelet.service",
        |root| {
            put(
                root,
                "/var/lib/kubelet/config.yaml",
                &format!("{HEAD}failSwapOn: false\n"),
                0o644,
            );
        },
    );
    assert!(runs);
    argv_matches_process(&node, "kubelet.service", &v);
}

fn config_dir_dropin_turns_it_back_on() {
    let (_node, runs, v) = scenario("pol-dropin", Kubelet::Kubeadm, "kubelet.service", |root| {
        put(
            root,
            "/var/lib/kubelet/config.yaml",
            &format!("{HEAD}failSwapOn: false\n"),
            0o644,
        );
        put(
            root,
            "/etc/default/kubelet",
            "KUBELET_EXTRA_ARGS=--config-dir=/etc/kubernetes/kubelet.conf.d\n",
            0o644,
        );
        put(
            root,
            "/etc/kubernetes/kubelet.conf.d/10-a.conf",
            &format!("{HEAD}failSwapOn: false\n"),
            0o644,
        );
        put(
            root,
            "/etc/kubernetes/kubelet.conf.d/20-swap.conf",
            &format!("{HEAD}failSwapOn: true\n"),
            0o644,
        );
    });
    assert!(!runs);
    assert_eq!(
        v["observations"]["kubelet_policy"]["known"]["fail_swap_on_from"],
        "failSwapOn: true in /etc/kubernetes/kubelet.conf.d/20-swap.conf"
    );
}

fn default_kubelet_flag_with_underscores() {
    let (node, runs, v) = scenario("pol-flag", Kubelet::Kubeadm, "kubelet.service", |root| {
        put(
            root,
            "/etc/default/kubelet",
            "# extra args\nKUBELET_EXTRA_ARGS=\"--fail_swap_on=false --node-labels 'a=b'\"\n",
            0o644,
        );
    });
    assert!(runs);
    argv_matches_process(&node, "kubelet.service", &v);
}

fn export_line_is_ignored_by_systemd() {
    let (_node, runs, v) = scenario("pol-export", Kubelet::Kubeadm, "kubelet.service", |root| {
        put(
            root,
            "/etc/default/kubelet",
            "export KUBELET_EXTRA_ARGS=--fail-swap-on=false\n",
            0o644,
        );
    });
    assert!(!runs);
    assert_eq!(
        v["observations"]["kubelet_policy"]["known"]["fail_swap_on"],
        true
    );
}

fn k3s_kubelet_arg_in_config_dropin() {
    let (_node, runs, v) = scenario("pol-k3s", Kubelet::None, "k3s.service", |root| {
        stand_in(root, "/usr/local/bin/k3s", "k3s");
        stand_in(root, "/usr/bin/kubelet", "kubelet");
        put(
            root,
            "/etc/systemd/system/k3s.service",
            &unit(
                "/usr/local/bin/k3s server",
                "EnvironmentFile=-/etc/systemd/system/k3s.service.env\n",
            ),
            0o644,
        );
        put(
            root,
            "/etc/rancher/k3s/config.yaml",
            "kubelet-arg:\n  - max-pods=50\n",
            0o644,
        );
        put(
            root,
            "/etc/rancher/k3s/config.yaml.d/50-x.yaml",
            "kubelet-arg+:\n  - \"fail-swap-on=true\"\n",
            0o644,
        );
    });
    assert!(!runs);
    assert_eq!(
        v["observations"]["kubelet_policy"]["known"]["flavour"],
        "k3s"
    );
}

fn k3s_default_tolerates_swap() {
    let (_node, runs, _v) = scenario("pol-k3sdef", Kubelet::None, "k3s.service", |root| {
        stand_in(root, "/usr/local/bin/k3s", "k3s");
        stand_in(root, "/usr/bin/kubelet", "kubelet");
        put(
            root,
            "/etc/systemd/system/k3s.service",
            &unit("/usr/local/bin/k3s server", ""),
            0o644,
        );
    });
    assert!(runs);
}

fn microk8s_args_file() {
    let (_node, runs, v) = scenario(
        "pol-mk8s",
        Kubelet::None,
        "snap.microk8s.daemon-kubelite.service",
        |root| {
            stand_in(root, "/usr/bin/snap", "snap");
            stand_in(root, "/usr/bin/kubelet", "kubelet");
            put(
                root,
                "/etc/systemd/system/snap.microk8s.daemon-kubelite.service",
                &unit("/usr/bin/snap run microk8s.daemon-kubelite", ""),
                0o644,
            );
            put(root, "/var/snap/microk8s/current/args/kubelet", "--kubeconfig=${SNAP_DATA}/credentials/kubelet.config\n--root-dir=${SNAP_COMMON}/var/lib/kubelet\n--fail-swap-on=false\n# --fail-swap-on=true\n", 0o644);
        },
    );
    assert!(runs);
    assert_eq!(
        v["observations"]["kubelet_policy"]["known"]["flavour"],
        "microk8s"
    );
}

fn wrapper_exec_start_leaves_swap_alone() {
    let (node, runs, v) = scenario("pol-wrapper", Kubelet::Kubeadm, "kubelet.service", |root| {
        put(
            root,
            "/usr/local/bin/kubelet-wrapper.sh",
            "#!/bin/sh\nexec /usr/bin/kubelet \"$@\"\n",
            0o755,
        );
        put(root, "/etc/systemd/system/kubelet.service.d/20-wrapper.conf", "[Service]\nExecStart=\nExecStart=/usr/local/bin/kubelet-wrapper.sh $KUBELET_KUBECONFIG_ARGS $KUBELET_CONFIG_ARGS\n", 0o644);
    });
    // The stand-in refuses swap, yet the wrapper makes the policy unknown:
    // nothing is changed.
    assert!(!runs);
    let reason = v["observations"]["kubelet_policy"]["unknown"]["reason"]
        .as_str()
        .unwrap();
    assert!(
        reason.contains("/usr/local/bin/kubelet-wrapper.sh, not a kubelet binary"),
        "{reason}"
    );
    assert!(swap_is_on(&node));
    assert!(node.read("/etc/fstab").contains("\n/swapfile"));
    let f = v["findings"].as_array().unwrap();
    let swap: Vec<&Value> = f
        .iter()
        .filter(|f| f["id"] == "swap-active" || f["id"] == "swap-in-fstab")
        .collect();
    assert_eq!(swap.len(), 2, "{v:#}");
    for f in swap {
        assert_eq!(f["severity"], "warning");
        assert_eq!(f["fixable"], false);
        assert!(f["message"].as_str().unwrap().contains(
            "kubelet's swap policy is unknown (ExecStart runs /usr/local/bin/kubelet-wrapper.sh"
        ));
    }
}

/// `check --output json` run inside the node (its PID namespace, where
/// kubelet's MainPID is kubelet): the policy and its argv check.
fn check_inside(node: &Node) -> Value {
    let o = node.try_exec(
        "TAINT_GUARD_ASSUME_VIRTUALIZATION=none /usr/bin/taint-guard check --output json",
    );
    let out = String::from_utf8_lossy(&o.stdout);
    let v: Value = serde_json::from_str(&out)
        .unwrap_or_else(|e| panic!("{e}: {out}{}", String::from_utf8_lossy(&o.stderr)));
    v["observations"]["kubelet_policy"].clone()
}

/// `systemctl restart kubelet` (`redirect`: of its output) and wait for it
/// to run.
fn restart_kubelet(node: &Node, redirect: &str) {
    node.exec(&format!("systemctl restart kubelet.service{redirect}"));
    node.wait_for("kubelet running", |n| {
        n.prop("kubelet.service", "SubState") == "running"
    });
}

/// The derived command line is checked against the running kubelet's
/// /proc/MAINPID/cmdline by taint-guard itself: it matches; after an edit
/// of an environment file it is not compared (the running kubelet predates
/// it) and the policy stays known; a unit edited and loaded after kubelet
/// started (restart without daemon-reload, then daemon-reload) contradicts
/// the running kubelet with nothing newer than it, and the policy is
/// unknown until kubelet is restarted. From another PID namespace (the
/// host, as a pod without hostPID) it is not compared.
fn argv_checked_against_the_running_kubelet() {
    let node = Node::boot("pol-argv", Kubelet::Kubeadm, |root| {
        fs::copy(
            env!("CARGO_BIN_EXE_taint-guard"),
            root.join("usr/bin/taint-guard"),
        )
        .unwrap();
    });
    assert!(runs_with_swap(&node, "kubelet.service"));
    let pid: u64 = node.prop("kubelet.service", "MainPID").parse().unwrap();
    let pol = check_inside(&node);
    assert_eq!(
        pol["known"]["argv_check"],
        serde_json::json!({"state": "matches", "pid": pid}),
        "{pol:#}"
    );
    let (_, v) = node.check_json(&[]);
    let from_host = &v["observations"]["kubelet_policy"]["known"]["argv_check"];
    assert_eq!(from_host["state"], "not_compared", "{from_host:#}");

    node.write("/etc/default/kubelet", "KUBELET_EXTRA_ARGS=--v=2\n");
    let pol = check_inside(&node);
    assert_eq!(
        pol["known"]["argv_check"],
        serde_json::json!({"state": "sources_changed", "pid": pid,
                           "changed": ["/etc/default/kubelet"]}),
        "{pol:#}"
    );
    restart_kubelet(&node, "");
    let pol = check_inside(&node);
    assert_eq!(pol["known"]["argv_check"]["state"], "matches", "{pol:#}");
    assert!(pol["known"]["argv"]
        .as_array()
        .unwrap()
        .iter()
        .any(|a| a == "--v=2"));

    // Edited, kubelet restarted on the old unit, then reloaded.
    node.write(
        "/etc/systemd/system/kubelet.service.d/20-verbose.conf",
        "[Service]\nExecStart=\nExecStart=/usr/bin/kubelet $KUBELET_CONFIG_ARGS $KUBELET_EXTRA_ARGS --v=4\n",
    );
    restart_kubelet(&node, " 2>/dev/null");
    node.exec("systemctl daemon-reload");
    let pol = check_inside(&node);
    let reason = pol["unknown"]["reason"].as_str().unwrap_or_default();
    assert!(
        reason.contains("does not read this unit as systemd did")
            && reason.contains("--v=4")
            && reason.contains("restart of kubelet"),
        "{pol:#}"
    );
    restart_kubelet(&node, "");
    let pol = check_inside(&node);
    assert_eq!(pol["known"]["argv_check"]["state"], "matches", "{pol:#}");
}

fn main() -> std::process::ExitCode {
    harness::run(vec![
        harness::trial("config_file_false_keeps_swap", config_file_false_keeps_swap),
        harness::trial(
            "config_dir_dropin_turns_it_back_on",
            config_dir_dropin_turns_it_back_on,
        ),
        harness::trial(
            "default_kubelet_flag_with_underscores",
            default_kubelet_flag_with_underscores,
        ),
        harness::trial(
            "export_line_is_ignored_by_systemd",
            export_line_is_ignored_by_systemd,
        ),
        harness::trial(
            "k3s_kubelet_arg_in_config_dropin",
            k3s_kubelet_arg_in_config_dropin,
        ),
        harness::trial("k3s_default_tolerates_swap", k3s_default_tolerates_swap),
        harness::trial("microk8s_args_file", microk8s_args_file),
        harness::trial(
            "wrapper_exec_start_leaves_swap_alone",
            wrapper_exec_start_leaves_swap_alone,
        ),
        harness::trial(
            "argv_checked_against_the_running_kubelet",
            argv_checked_against_the_running_kubelet,
        ),
    ])
}
