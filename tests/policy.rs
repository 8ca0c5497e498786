//! kubelet's swap policy against the real thing: for each configuration a
//! node boots with swap on and kubelet's unit starts; `check --fix` must
//! leave swap alone exactly when that kubelet runs with it and remove it
//! exactly when it refuses it. An ExecStart that is not a kubelet leaves
//! swap and fstab untouched, and says why.
//!
//! Every configuration kubelet v1.20.2 can express (flags, `--config`,
//! environment files, `export` lines, `_` in flag names, the last flag
//! winning, a bare boolean, `--` ending the flags) is decided by the real
//! kubelet v1.20.2 (on fake-cri, registering with a real kube-apiserver:
//! harness/cluster.rs): it runs when its Node appears, it refuses when it
//! exits saying "running with swap on is not supported". The rest, which
//! 1.20.2 cannot answer, is decided by stand-ins that apply kubelet's,
//! k3s's and kubelite's own rules independently of taint-guard's parser
//! (tests/fixtures/node/{kubelet,k3s,snap}); their names start with
//! `stand_in_`: `--config-dir` (kubelet 1.28+), k3s and microk8s.

mod harness;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::{Duration, Instant};

use harness::cluster;
use harness::kube::KubeApi;
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

/// The API server the real kubelets register with, started by the first
/// real-kubelet scenario and stopped at the end of main.
static API: std::sync::Mutex<Option<KubeApi>> = std::sync::Mutex::new(None);

/// A node whose kubelet is the real one; its Node object is deleted with it.
struct RealNode {
    node: Option<Node>,
    name: String,
}

impl std::ops::Deref for RealNode {
    type Target = Node;
    fn deref(&self) -> &Node {
        self.node.as_ref().unwrap()
    }
}

impl Drop for RealNode {
    fn drop(&mut self) {
        drop(self.node.take());
        if let Some(api) = API.lock().unwrap_or_else(|p| p.into_inner()).as_ref() {
            let _ = api
                .handle()
                .admin("DELETE", &format!("/api/v1/nodes/{}", self.name), None);
        }
    }
}

/// Boot `name` with the real kubelet v1.20.2 (not enabled, not started)
/// registering as Node `name`, then `prepare`.
fn boot_real(name: &str, prepare: impl FnOnce(&Path)) -> RealNode {
    let bin = cluster::binaries().unwrap();
    let (ca, creds, server) = {
        let mut api = API.lock().unwrap_or_else(|p| p.into_inner());
        let api = api.get_or_insert_with(|| KubeApi::start(&bin));
        (api.ca_pem.clone(), api.node_creds(name), api.server())
    };
    let node = Node::boot(name, Kubelet::Kubeadm, |root| {
        cluster::install_real_kubelet(root, &bin, name, &ca, &creds, &server);
        prepare(root);
    });
    RealNode {
        node: Some(node),
        name: name.to_string(),
    }
}

/// The real kubelet's config (harness/cluster.rs) with `extra` lines.
fn real_config(extra: &str) -> String {
    format!("{}{extra}", cluster::KUBELET_CONFIG)
}

/// Start the real kubelet with swap on: true once it is past its swap
/// check (it says "Attempting to register node", or its Node is there)
/// with no restart; false when it exits saying it refuses swap. Exiting
/// for any other reason fails the test.
fn real_runs_with_swap(node: &RealNode) -> bool {
    node.exec(&format!(
        "systemctl enable {KUBELET} >/dev/null 2>&1; systemctl start {KUBELET}"
    ));
    let deadline = Instant::now() + Duration::from_secs(60);
    let journal = || node.exec(&format!("journalctl -b -u {KUBELET} --no-pager"));
    loop {
        let restarts: u32 = node.prop(KUBELET, "NRestarts").parse().unwrap_or(0);
        let sub = node.prop(KUBELET, "SubState");
        if restarts > 0 || sub == "auto-restart" || sub == "failed" {
            let j = journal();
            assert!(
                j.contains("running with swap on is not supported"),
                "kubelet exited for another reason than swap:\n{j}"
            );
            return false;
        }
        let registered = API
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
            .map(|api| {
                api.handle()
                    .admin("GET", &format!("/api/v1/nodes/{}", node.name), None)
                    .0
                    == 200
            })
            .unwrap_or(false);
        if sub == "running" && (registered || journal().contains("Attempting to register node")) {
            return true;
        }
        assert!(
            Instant::now() < deadline,
            "the real kubelet neither registered nor exited within 60s ({sub}):\n{}",
            journal()
        );
        std::thread::sleep(Duration::from_millis(300));
    }
}

/// Boot with the real kubelet, swap on, start, judge, fix, and check the
/// fix matched what the real kubelet did.
fn real_scenario(name: &str, prepare: impl FnOnce(&Path)) -> (RealNode, bool, Value) {
    harness::host_global("swap on");
    let node = boot_real(name, |root| {
        harness::install_fstab(root);
        prepare(root);
    });
    node.swap_on("/swapfile", 16);
    let runs = real_runs_with_swap(&node);
    let (_, v) = node.check_json(&["--fix"]);
    check_verdict(&node, runs, &v);
    (node, runs, v)
}

/// taint-guard's verdict (when it knows the policy) equals what the
/// kubelet did, and the fix followed it.
fn check_verdict(node: &Node, runs: bool, v: &Value) {
    let pol = &v["observations"]["kubelet_policy"];
    if let Some(known) = pol.get("known") {
        assert_eq!(
            known["fail_swap_on"], !runs,
            "policy {pol:#} vs kubelet running={runs}"
        );
        assert_eq!(swap_is_on(node), runs, "{v:#}");
        let fstab = node.read("/etc/fstab");
        assert_eq!(fstab.contains("\n/swapfile"), runs, "{fstab}");
    }
}

const KUBELET: &str = "kubelet.service";

/// Boot, swap on, start, judge, fix, and check the fix matched the stand-in.
fn scenario(
    name: &str,
    kubelet: Kubelet,
    unit_name: &str,
    prepare: impl FnOnce(&Path),
) -> (Node, bool, Value) {
    harness::host_global("swap on");
    let node = Node::boot(name, kubelet, |root| {
        harness::install_fstab(root);
        prepare(root);
    });
    node.swap_on("/swapfile", 16);
    let runs = runs_with_swap(&node, unit_name);
    let (_, v) = node.check_json(&["--fix"]);
    check_verdict(&node, runs, &v);
    (node, runs, v)
}

/// The argv taint-guard expanded equals the running kubelet's
/// /proc/MAINPID/cmdline (after the stand-in's interpreter).
fn argv_matches_process(node: &Node, unit: &str, v: &Value) {
    let pid = node.prop(unit, "MainPID");
    let raw = node.exec(&format!("tr '\\0' '\\n' < /proc/{pid}/cmdline"));
    let mut cmdline: Vec<&str> = raw.lines().collect();
    // A stand-in runs under its interpreter.
    if cmdline[0] == "/bin/sh" {
        cmdline.remove(0);
    }
    let ours: Vec<String> = v["observations"]["kubelet_policy"]["known"]["argv"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap().to_string())
        .collect();
    assert_eq!(ours, cmdline, "argv");
}

fn config_file_false_keeps_swap() {
    let (node, runs, v) = real_scenario("pol-cfgfalse", |root| {
        put(
            root,
            "/var/lib/kubelet/config.yaml",
            &real_config("failSwapOn: false\n"),
            0o644,
        );
    });
    assert!(runs);
    argv_matches_process(&node, "kubelet.service", &v);
}

/// Start the real kubelet (swap off): `Ok(())` once it is past loading its
/// config (it says "Attempting to register node", or its Node is there),
/// `Err(journal)` when it exits instead.
fn real_starts(node: &RealNode) -> Result<(), String> {
    node.exec(&format!("systemctl start {KUBELET}"));
    let deadline = Instant::now() + Duration::from_secs(60);
    // This start's lines only (the unit's earlier runs said other things).
    let invocation = node.prop(KUBELET, "InvocationID");
    let journal = || {
        node.exec(&format!(
            "journalctl -b _SYSTEMD_INVOCATION_ID={invocation} --no-pager"
        ))
    };
    loop {
        let restarts: u32 = node.prop(KUBELET, "NRestarts").parse().unwrap_or(0);
        let sub = node.prop(KUBELET, "SubState");
        if restarts > 0 || sub == "auto-restart" || sub == "failed" {
            return Err(journal());
        }
        if sub == "running" && journal().contains("Attempting to register node") {
            return Ok(());
        }
        assert!(
            Instant::now() < deadline,
            "the real kubelet neither registered nor exited within 60s ({sub}):\n{}",
            journal()
        );
        std::thread::sleep(Duration::from_millis(300));
    }
}

/// A KubeletConfiguration the next start refuses is a reboot hazard:
/// taint-guard says `kubelet-config-invalid` (critical, not reboot-safe)
/// while the old kubelet still runs, and the real kubelet v1.20.2, started
/// again, refuses it. A config kubelet only warns about (an unknown field:
/// v1beta1 falls back to lenient decoding) or that taint-guard cannot read
/// as kubelet does (`failSwapOn: yes`, a YAML 1.1 bool) is not called a
/// refusal, and the real kubelet runs with each.
fn real_kubelet_refuses_exactly_the_config_taint_guard_said() {
    let node = boot_real("pol-badcfg", |_| {});
    node.exec(&format!("systemctl enable {KUBELET} >/dev/null 2>&1"));
    real_starts(&node).expect("the real kubelet with the good config");
    let cases = [
        ("not YAML", "failSwapOn: [\n", true),
        ("no kind", "", true),
        ("unknown field", "notAKubeletField: 1\n", false),
        ("YAML 1.1 bool", "failSwapOn: yes\n", false),
    ];
    for (what, extra, refused) in cases {
        let text = if what == "no kind" {
            cluster::KUBELET_CONFIG.replace("kind: KubeletConfiguration\n", "")
        } else {
            real_config(extra)
        };
        node.write("/var/lib/kubelet/config.yaml", &text);
        // Today's kubelet still runs with the config it started with.
        assert_eq!(node.prop(KUBELET, "SubState"), "running", "{what}");
        let (code, v) = node.check_json(&[]);
        let said = v["findings"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f["id"] == "kubelet-config-invalid");
        assert_eq!(said, refused, "{what}: taint-guard said {v:#}");
        if refused {
            assert_eq!(code, 2, "{what}: {v:#}");
            assert_eq!(v["reboot_safe"], false, "{what}");
        }
        node.exec(&format!(
            "systemctl stop {KUBELET}; systemctl reset-failed {KUBELET}"
        ));
        let started = real_starts(&node);
        assert_eq!(
            started.is_err(),
            refused,
            "{what}: the real kubelet {}",
            match &started {
                Ok(()) => "ran".to_string(),
                Err(j) => format!("refused:\n{j}"),
            }
        );
        if let Err(j) = &started {
            assert!(
                j.contains("failed to load Kubelet config file"),
                "{what}:\n{j}"
            );
            // Back to the good config for the next case.
            node.write("/var/lib/kubelet/config.yaml", cluster::KUBELET_CONFIG);
            node.exec(&format!(
                "systemctl reset-failed {KUBELET}; systemctl stop {KUBELET}"
            ));
            real_starts(&node).expect("the real kubelet with the good config again");
        }
    }
}

/// kubelet's client certificate, signed by the cluster's CA, rotation on
/// (the test cluster's kubelet config, as kubeadm's): an expired one is
/// `kubelet-cert-expired` (critical, not reboot-safe), and the real kubelet
/// v1.20.2 with it never gets its Node registered; one past 90 % of its
/// lifetime, the latest moment kubelet's certificate manager asks for a
/// new one, is `kubelet-cert-expiring` (a warning); one with 10 days left
/// of 11 is no finding (kubelet replaces it at 70-90 %: a fixed 30-day
/// window would warn on every short-lived certificate); the real kubelet
/// registers with both.
fn real_kubelet_client_certificate_expired_and_expiring() {
    for (name, from, to, expect) in [
        (
            "pol-certold",
            -30 * 86_400,
            -86_400,
            Some(("kubelet-cert-expired", "critical")),
        ),
        (
            "pol-certlate",
            -100 * 86_400,
            10 * 86_400,
            Some(("kubelet-cert-expiring", "warning")),
        ),
        ("pol-certyoung", -86_400, 10 * 86_400, None),
    ] {
        let expired = from < 0 && to < 0;
        let creds = API
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get_or_insert_with(|| KubeApi::start(&cluster::binaries().unwrap()))
            .node_creds_valid(name, from, to);
        let node = boot_real(name, |root| {
            put(
                root,
                "/var/lib/kubelet/pki/kubelet-client-current.pem",
                &format!("{}{}", creds.cert, creds.key),
                0o600,
            );
        });
        let (code, v) = node.check_json(&[]);
        let certs: Vec<&Value> = v["findings"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|f| {
                f["id"]
                    .as_str()
                    .is_some_and(|id| id.starts_with("kubelet-cert"))
            })
            .collect();
        match expect {
            Some((id, severity)) => {
                assert_eq!(certs.len(), 1, "{name}: {v:#}");
                let f = certs[0];
                assert_eq!(f["id"], id, "{name}: {v:#}");
                assert_eq!(
                    f["subject"],
                    "/var/lib/kubelet/pki/kubelet-client-current.pem"
                );
                assert_eq!(f["severity"], severity);
            }
            None => assert!(certs.is_empty(), "{name}: {v:#}"),
        }
        assert_eq!(
            code, 2,
            "{name}: the kubelet unit is disabled and inactive too"
        );
        node.exec(&format!(
            "systemctl enable {KUBELET} >/dev/null 2>&1; systemctl start {KUBELET}"
        ));
        let registered = || {
            API.lock()
                .unwrap_or_else(|p| p.into_inner())
                .as_ref()
                .map(|api| {
                    api.handle()
                        .admin("GET", &format!("/api/v1/nodes/{name}"), None)
                        .0
                        == 200
                })
                .unwrap_or(false)
        };
        let deadline = Instant::now() + Duration::from_secs(if expired { 40 } else { 60 });
        while !registered() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(500));
        }
        let journal = node.exec(&format!("journalctl -b -u {KUBELET} --no-pager | tail -20"));
        assert_eq!(
            registered(),
            !expired,
            "{name}: the real kubelet's Node registered: {}\n{journal}",
            registered()
        );
    }
}

/// `--config-dir` is kubelet 1.28's: 1.20.2 refuses the flag.
fn stand_in_config_dir_dropin_turns_it_back_on() {
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
    let (node, runs, v) = real_scenario("pol-flag", |root| {
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
    let (_node, runs, v) = real_scenario("pol-export", |root| {
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

fn stand_in_k3s_kubelet_arg_in_config_dropin() {
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

fn stand_in_k3s_default_tolerates_swap() {
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

fn stand_in_microk8s_args_file() {
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
    let (node, runs, v) = real_scenario("pol-wrapper", |root| {
        put(
            root,
            "/usr/local/bin/kubelet-wrapper.sh",
            "#!/bin/sh\nexec /usr/bin/kubelet \"$@\"\n",
            0o755,
        );
        put(root, "/etc/systemd/system/kubelet.service.d/20-wrapper.conf", "[Service]\nExecStart=\nExecStart=/usr/local/bin/kubelet-wrapper.sh $KUBELET_KUBECONFIG_ARGS $KUBELET_CONFIG_ARGS $KUBELET_KUBEADM_ARGS\n", 0o644);
    });
    // kubelet refuses swap, yet the wrapper makes the policy unknown:
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

/// Flags: the last `--fail-swap-on` wins (pflag sets the value again).
fn last_flag_wins() {
    let (_node, runs, _v) = real_scenario("pol-last", |root| {
        put(
            root,
            "/etc/default/kubelet",
            "KUBELET_EXTRA_ARGS=\"--fail-swap-on=false --fail-swap-on=true\"\n",
            0o644,
        );
    });
    assert!(!runs);
}

/// A bare `--fail-swap-on` is true, and a flag beats `--config`.
fn bare_boolean_flag_is_true() {
    let (_node, runs, v) = real_scenario("pol-bare", |root| {
        put(
            root,
            "/var/lib/kubelet/config.yaml",
            &real_config("failSwapOn: false\n"),
            0o644,
        );
        put(
            root,
            "/etc/default/kubelet",
            "KUBELET_EXTRA_ARGS=--fail-swap-on\n",
            0o644,
        );
    });
    assert!(!runs);
    assert_eq!(
        v["observations"]["kubelet_policy"]["known"]["fail_swap_on"],
        true
    );
}

/// `--` ends the flags; with nothing after it kubelet runs.
fn double_dash_ends_the_flags() {
    let (_node, runs, _v) = real_scenario("pol-dashdash", |root| {
        put(
            root,
            "/etc/default/kubelet",
            "KUBELET_EXTRA_ARGS=\"--fail-swap-on=false --\"\n",
            0o644,
        );
    });
    assert!(runs);
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
    let node = boot_real("pol-argv", |root| {
        fs::copy(
            env!("CARGO_BIN_EXE_taint-guard"),
            root.join("usr/bin/taint-guard"),
        )
        .unwrap();
    });
    assert!(real_runs_with_swap(&node));
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
        "[Service]\nExecStart=\nExecStart=/usr/bin/kubelet $KUBELET_KUBECONFIG_ARGS $KUBELET_CONFIG_ARGS $KUBELET_KUBEADM_ARGS $KUBELET_EXTRA_ARGS --v=4\n",
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
    let real = || {
        vec![
            cluster::requirement(),
            (harness::kube::binaries().err(), "TG_REQUIRE_APISERVER"),
        ]
    };
    let stand_in = Vec::new;
    let t = harness::trial;
    let code = harness::run_each(
        vec![
            (
                t("config_file_false_keeps_swap", config_file_false_keeps_swap),
                real(),
            ),
            (
                t(
                    "real_kubelet_client_certificate_expired_and_expiring",
                    real_kubelet_client_certificate_expired_and_expiring,
                ),
                real(),
            ),
            (
                t(
                    "real_kubelet_refuses_exactly_the_config_taint_guard_said",
                    real_kubelet_refuses_exactly_the_config_taint_guard_said,
                ),
                real(),
            ),
            (
                t(
                    "default_kubelet_flag_with_underscores",
                    default_kubelet_flag_with_underscores,
                ),
                real(),
            ),
            (
                t(
                    "export_line_is_ignored_by_systemd",
                    export_line_is_ignored_by_systemd,
                ),
                real(),
            ),
            (t("last_flag_wins", last_flag_wins), real()),
            (
                t("bare_boolean_flag_is_true", bare_boolean_flag_is_true),
                real(),
            ),
            (
                t("double_dash_ends_the_flags", double_dash_ends_the_flags),
                real(),
            ),
            (
                t(
                    "wrapper_exec_start_leaves_swap_alone",
                    wrapper_exec_start_leaves_swap_alone,
                ),
                real(),
            ),
            (
                t(
                    "argv_checked_against_the_running_kubelet",
                    argv_checked_against_the_running_kubelet,
                ),
                real(),
            ),
            (
                t(
                    "stand_in_config_dir_dropin_turns_it_back_on",
                    stand_in_config_dir_dropin_turns_it_back_on,
                ),
                stand_in(),
            ),
            (
                t(
                    "stand_in_k3s_kubelet_arg_in_config_dropin",
                    stand_in_k3s_kubelet_arg_in_config_dropin,
                ),
                stand_in(),
            ),
            (
                t(
                    "stand_in_k3s_default_tolerates_swap",
                    stand_in_k3s_default_tolerates_swap,
                ),
                stand_in(),
            ),
            (
                t("stand_in_microk8s_args_file", stand_in_microk8s_args_file),
                stand_in(),
            ),
        ],
        &[],
    );
    // Stop the API server the real kubelets used.
    drop(API.lock().unwrap_or_else(|p| p.into_inner()).take());
    code
}
