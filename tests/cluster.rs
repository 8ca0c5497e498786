//! The seed incident on a real Kubernetes v1.20.2 (harness/cluster.rs):
//! etcd, kube-apiserver, the node lifecycle controller, the scheduler, and a
//! kubeadm-style worker booted under systemd-nspawn whose kubelet is the
//! real one. A power loss is SIGKILL of the worker's init and nspawn; power
//! back is the same rootfs booted again. taint-guard is installed in the
//! worker as the README's "From source" says (binary and units copied,
//! `systemctl enable`), and driven only through its binary and units.
//!
//! Ignored (shown as such) where root, nspawn or the binaries are missing;
//! with TG_REQUIRE_SYSTEMD=1, TG_REQUIRE_APISERVER=1 and TG_REQUIRE_CLUSTER=1
//! (CI) a missing part fails. `TG_CRASHLOOP_RESTARTS` (default 25) is how
//! many restarts the crash-loop replay lets kubelet make.

mod harness;

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use harness::cluster::{self, both_unreachable, untainted, Cluster, Worker};
use serde_json::{json, Value};

const KUBELET: &str = "kubelet.service";

/// The Node's KubeletHostProblem condition, if any.
fn host_problem(c: &Cluster, name: &str) -> Option<Value> {
    c.node(name)
        .and_then(|n| cluster::condition(&n, "KubeletHostProblem").cloned())
}

/// Install taint-guard in a running worker as the README's "From source"
/// does: the binary, the units, `config` as /etc/taint-guard/config.toml,
/// then `systemctl enable` of `units` (`--now` when `now`).
fn install_taint_guard(w: &Worker, config: &str, units: &[&str], now: bool) {
    let node = w.node();
    let root = &node.root;
    std::fs::copy(
        env!("CARGO_BIN_EXE_taint-guard"),
        root.join("usr/bin/taint-guard"),
    )
    .unwrap();
    for u in units {
        std::fs::copy(
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("systemd")
                .join(u),
            root.join("etc/systemd/system").join(u),
        )
        .unwrap();
    }
    node.write(
        "/etc/taint-guard/config.toml",
        &format!("{config}\n{}", harness::HOST_KERNEL),
    );
    node.exec(&format!(
        "systemctl daemon-reload && systemctl enable {}{} 2>&1",
        if now { "--now " } else { "" },
        units.join(" ")
    ));
}

/// The ids of taint-guard's findings about kubelet, from the Node's
/// `taint-guard.io/findings` annotation.
fn kubelet_findings(c: &Cluster, name: &str) -> Vec<String> {
    let n = c.node(name).unwrap_or(Value::Null);
    let findings: Value = serde_json::from_str(
        n["metadata"]["annotations"]["taint-guard.io/findings"]
            .as_str()
            .unwrap_or("[]"),
    )
    .unwrap_or(Value::Null);
    findings
        .as_array()
        .map(|a| {
            a.iter()
                .filter(|f| f["subject"] == KUBELET)
                .filter_map(|f| f["id"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

fn wait_ready(c: &mut Cluster, name: &str, secs: u64) -> Duration {
    c.wait(&format!("Node {name} Ready=True"), secs, |c| {
        c.ready(name) == "True"
    })
}

/// Cut the worker's power and wait until the controller has put both
/// `unreachable` taints on its Node (Ready=Unknown).
fn power_loss_until_tainted(c: &mut Cluster, w: &mut Worker) -> Duration {
    w.node_mut().power_loss();
    let name = w.name.clone();
    let took = c.wait(
        &format!("both unreachable taints on {name}"),
        cluster::GRACE_SECS + 45,
        |c| both_unreachable(&c.taints(&name)),
    );
    assert_eq!(c.ready(&name), "Unknown");
    took
}

/// A pod that only this worker can take, created while it is tainted: the
/// scheduler says why it cannot place it.
fn pinned_pod_pending(c: &mut Cluster, pod: &str, name: &str) {
    c.create_pinned_pod(pod, name);
    c.wait(&format!("the scheduler's word on {pod}"), 30, |c| {
        c.pod_unschedulable(pod)
            .is_some_and(|m| m.contains("node.kubernetes.io/unreachable"))
    });
    assert_eq!(c.pod_node(pod), None);
}

/// A worker whose kubelet was started by hand and never enabled, Ready.
fn seed_worker(c: &mut Cluster, vm: &str, name: &str) -> Worker {
    let w = c.boot_worker(vm, name, |_| {});
    w.node().exec(&format!("systemctl start {KUBELET}"));
    wait_ready(c, name, 90);
    assert_eq!(w.node().prop(KUBELET, "UnitFileState"), "disabled");
    w
}

/// `kubectl taint-guard ARGS` through the real kubectl, as the admin: the
/// plugin is found on PATH as `kubectl-taint_guard`, a symlink to the
/// binary, as the .deb ships it. Returns the exit code and stdout; stderr
/// goes to the test's output.
fn kubectl_plugin(c: &Cluster, args: &[&str]) -> (i32, String) {
    let dir = c.api.dir.path().join("plugins");
    let link = dir.join("kubectl-taint_guard");
    if !link.exists() {
        std::fs::create_dir_all(&dir).unwrap();
        std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_taint-guard"), &link).unwrap();
    }
    let path = format!(
        "{}:{}",
        dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let out = std::process::Command::new(c.bin.join("kubectl"))
        .arg("taint-guard")
        .args(args)
        .env("PATH", path)
        .env("KUBECONFIG", c.api.admin_kubeconfig())
        .stderr(std::process::Stdio::inherit())
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

/// `explain pod` as JSON through kubectl, and its tally equal to the real
/// scheduler's word on the pod (its PodScheduled message, and the
/// FailedScheduling event explain read), whitespace normalised.
fn explain_pod_matches_scheduler(c: &Cluster, pod: &str) -> Value {
    let (code, out) = kubectl_plugin(
        c,
        &["explain", "pod", &format!("default/{pod}"), "-o", "json"],
    );
    assert_eq!(code, 0, "{out}");
    let e: Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"));
    let words = |s: &str| s.split_whitespace().collect::<Vec<_>>().join(" ");
    let sched = c.pod_unschedulable(pod).unwrap_or_default();
    assert_eq!(
        words(e["tally"].as_str().unwrap_or_default()),
        words(&sched),
        "explain pod {pod} against the scheduler: {e:#}"
    );
    assert_eq!(e["matches_event"], true, "{e:#}");
    e
}

/// How many outages replays 1 and its baseline go through
/// (`TG_BENCH_REPLAYS`, default 1; benches/cluster-bench.sh sets more).
fn replays() -> usize {
    std::env::var("TG_BENCH_REPLAYS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1)
        .max(1)
}

fn median(v: &[f64]) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// One line for benches/cluster-bench.sh: `FIGURE what: median (runs)`.
fn figure(what: &str, secs: &[f64]) {
    let list: Vec<String> = secs.iter().map(|s| format!("{s:.1}")).collect();
    eprintln!(
        "FIGURE {what}: median {:.1} s over {} run(s) [{}]",
        median(secs),
        secs.len(),
        list.join(", ")
    );
}

/// Replay 1: taint-guard's boot unit. kubelet running but never enabled;
/// the power fails long enough for both taints; power back: with no
/// command, kubelet is enabled and active, the Node Ready, both taints
/// removed by the controller, the pinned pod bound. Each further replay
/// (TG_BENCH_REPLAYS) first puts kubelet back in the seed state (running,
/// disabled).
fn boot_unit_heals_power_loss(c: &mut Cluster) {
    let name = "seed-boot";
    let mut w = seed_worker(c, "cboot", name);
    install_taint_guard(&w, "", &["taint-guard-check.service"], false);
    let (mut gone, mut bound) = (Vec::new(), Vec::new());
    for i in 0..replays() {
        if i > 0 {
            w.node().exec(&format!("systemctl disable {KUBELET} 2>&1"));
            assert_eq!(w.node().prop(KUBELET, "UnitFileState"), "disabled");
            assert_eq!(w.node().prop(KUBELET, "ActiveState"), "active");
        }
        power_loss_until_tainted(c, &mut w);
        let pod = format!("pinned-boot-{i}");
        pinned_pod_pending(c, &pod, name);

        let t0 = w.node_mut().power_on();
        c.wait("both taints gone", 120, |c| {
            untainted(&c.taints(name)) && c.ready(name) == "True"
        });
        gone.push(t0.elapsed().as_secs_f64());
        c.wait("the pinned pod bound", 60, |c| {
            c.pod_node(&pod).as_deref() == Some(name)
        });
        bound.push(t0.elapsed().as_secs_f64());
        let node = w.node();
        assert_eq!(node.prop(KUBELET, "UnitFileState"), "enabled");
        assert_eq!(node.prop(KUBELET, "ActiveState"), "active");
        assert_eq!(
            node.prop("taint-guard-check.service", "ActiveState"),
            "active"
        );
        assert_eq!(node.prop("taint-guard-check.service", "Result"), "success");
        c.delete_pod(&pod);
    }
    figure("boot unit: power back -> both taints gone", &gone);
    figure("boot unit: power back -> pinned pod bound", &bound);
}

/// Replay 1's baseline: the same outage without taint-guard. The node
/// comes back with kubelet inactive and disabled, and stays tainted, its
/// pod unscheduled, until a person types the fix; measured from the
/// command (the page that brought the person is not in it).
fn baseline_without_taint_guard_stays_tainted(c: &mut Cluster) {
    let name = "seed-base";
    let mut w = seed_worker(c, "cbase", name);
    let (mut gone, mut bound) = (Vec::new(), Vec::new());
    for i in 0..replays() {
        if i > 0 {
            w.node().exec(&format!("systemctl disable {KUBELET} 2>&1"));
        }
        power_loss_until_tainted(c, &mut w);
        let pod = format!("pinned-base-{i}");
        pinned_pod_pending(c, &pod, name);
        let t0 = w.node_mut().power_on();
        // Longer than the boot unit needs to heal it (the first time).
        let hold = if i == 0 { 30 } else { 5 };
        while t0.elapsed() < Duration::from_secs(hold) {
            std::thread::sleep(Duration::from_secs(1));
            assert!(both_unreachable(&c.taints(name)), "{:?}", c.taints(name));
        }
        assert_eq!(c.ready(name), "Unknown");
        assert_eq!(c.pod_node(&pod), None);
        let node = w.node();
        assert_eq!(node.prop(KUBELET, "ActiveState"), "inactive");
        assert_eq!(node.prop(KUBELET, "UnitFileState"), "disabled");

        // A person, paged, types the fix.
        let typed = Instant::now();
        node.exec(&format!("systemctl enable --now {KUBELET} 2>&1"));
        c.wait("both taints gone after the person's fix", 120, |c| {
            untainted(&c.taints(name)) && c.ready(name) == "True"
        });
        gone.push(typed.elapsed().as_secs_f64());
        c.wait("the pinned pod bound", 60, |c| {
            c.pod_node(&pod).as_deref() == Some(name)
        });
        bound.push(typed.elapsed().as_secs_f64());
        c.delete_pod(&pod);
    }
    figure(
        "baseline: `systemctl enable --now kubelet` typed -> both taints gone",
        &gone,
    );
    figure(
        "baseline: `systemctl enable --now kubelet` typed -> pinned pod bound",
        &bound,
    );
}

/// Replay 2: the daemon, report-only. The same outage: once the node is
/// back the Node carries KubeletHostProblem=True naming the disabled,
/// inactive kubelet and the remedy, while the taints stay (the report
/// never makes a dead kubelet look alive: the controller keeps it tainted
/// past its grace). A person's `systemctl enable --now kubelet` → False.
fn report_only_daemon_names_the_cause_while_tainted(c: &mut Cluster) {
    let name = "seed-report";
    let mut w = seed_worker(c, "creport", name);
    install_taint_guard(
        &w,
        "[run]\nremediate = false\nreport_initial_delay_secs = 0\n",
        &["taint-guard.service"],
        true,
    );
    c.wait("the report of the running, disabled kubelet", 60, |c| {
        kubelet_findings(c, name) == ["unit-disabled"]
    });
    power_loss_until_tainted(c, &mut w);
    let f = kubelet_findings(c, name);
    assert_eq!(f, ["unit-disabled"], "reported while the node was down?");
    let t0 = w.node_mut().power_on();
    eprintln!(
        "replay 2: booted {:.1}s after power back",
        t0.elapsed().as_secs_f64()
    );
    // Before the outage the condition was already True (kubelet running,
    // not enabled): what is new after power back is kubelet not running,
    // in the findings the condition's message points to.
    c.wait("the report of the node as it came back", 60, |c| {
        host_problem(c, name).is_some_and(|h| h["status"] == "True")
            && kubelet_findings(c, name).contains(&"unit-inactive".to_string())
    });
    eprintln!(
        "replay 2: the cause on the Node {:.1}s after power back",
        t0.elapsed().as_secs_f64()
    );
    let h = host_problem(c, name).unwrap();
    let msg = h["message"].as_str().unwrap_or_default();
    assert_eq!(h["reason"], "UnitDisabled", "{h:#}");
    assert!(msg.contains("kubelet.service is not enabled"), "{h:#}");
    assert!(
        msg.contains("remedy: systemctl enable --now kubelet.service"),
        "{h:#}"
    );
    let f = kubelet_findings(c, name);
    assert!(f.contains(&"unit-disabled".to_string()), "{f:?}");
    let n = c.node(name).unwrap();
    assert_eq!(
        n["metadata"]["annotations"]["taint-guard.io/status"],
        "critical"
    );
    assert_eq!(
        w.node().prop("taint-guard.service", "ActiveState"),
        "active"
    );
    // Still tainted, and still after the controller's grace has passed
    // again: the report did not renew the Node's health.
    let reported = Instant::now();
    while reported.elapsed() < Duration::from_secs(cluster::GRACE_SECS + 6) {
        let t = c.taints(name);
        assert!(both_unreachable(&t), "{t:?}");
        assert_eq!(c.ready(name), "Unknown");
        std::thread::sleep(Duration::from_secs(1));
    }
    let node = w.node();
    assert_eq!(node.prop(KUBELET, "ActiveState"), "inactive");
    assert_eq!(node.prop(KUBELET, "UnitFileState"), "disabled");

    // `explain`, as a kubectl plugin through the real kubectl (issue 19):
    // a pod pinned to the worker and one that tolerates and selects
    // nothing; the tally must be the real scheduler's, word for word.
    let (pinned, plain) = ("explain-pinned", "explain-plain");
    pinned_pod_pending(c, pinned, name);
    c.create_pod(plain, json!({}));
    c.wait("the scheduler's word on the plain pod", 30, |c| {
        c.pod_unschedulable(plain).is_some()
    });
    c.wait("the FailedScheduling events explain reads", 30, |c| {
        [pinned, plain].iter().all(|p| {
            kubectl_plugin(c, &["explain", "pod", p, "-o", "json"])
                .1
                .contains("\"event\"")
        })
    });
    for p in [pinned, plain] {
        let e = explain_pod_matches_scheduler(c, p);
        let advice = e["nodes"]
            .as_array()
            .and_then(|ns| ns.iter().find(|n| n["node"] == name))
            .cloned()
            .unwrap_or_default();
        assert_eq!(advice["broken"], true, "{e:#}");
        assert_eq!(
            e["next_step"],
            format!("fix the node {name}: kubectl taint-guard explain node {name}")
        );
        let (_, text) = kubectl_plugin(c, &["explain", "pod", p]);
        eprintln!("$ kubectl taint-guard explain pod {p}\n{text}");
    }
    let (code, text) = kubectl_plugin(c, &["explain", "node", name]);
    eprintln!("$ kubectl taint-guard explain node {name}\n{text}");
    assert_eq!(code, 0);
    for want in [
        "node.kubernetes.io/unreachable:NoExecute since",
        "Ready=Unknown \"Kubelet stopped posting node status.\"",
        "lease not renewed for",
        "kubelet.service is not enabled",
        "removing it by hand will not stick",
        &format!("Next step: on {name}: systemctl enable --now kubelet.service"),
    ] {
        assert!(text.contains(want), "no {want:?} in\n{text}");
    }
    let (code, text) = kubectl_plugin(c, &["explain", "nodes"]);
    eprintln!("$ kubectl taint-guard explain nodes\n{text}");
    assert_eq!(code, 0);
    let first = text.lines().nth(1).unwrap_or_default();
    assert!(
        first.starts_with(name) && first.contains(" false ") && first.contains("critical"),
        "{text}"
    );
    // A name that is not there: one line, non-zero.
    assert_eq!(kubectl_plugin(c, &["explain", "node", "no-such-node"]).0, 1);

    // The person's fix, the remedy explain printed, pasted on the node.
    node.exec("systemctl enable --now kubelet.service 2>&1");
    c.wait("KubeletHostProblem=False", 60, |c| {
        host_problem(c, name).is_some_and(|h| h["status"] == "False")
    });
    c.wait("both taints gone", 90, |c| {
        untainted(&c.taints(name)) && c.ready(name) == "True"
    });
    c.wait("the pinned pod bound", 90, |c| c.pod_node(pinned).is_some());
    let (code, out) = kubectl_plugin(c, &["explain", "pod", pinned, "-o", "json"]);
    assert_eq!(code, 0);
    let e: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(e["bound_to"], name, "{e:#}");
    let (_, text) = kubectl_plugin(c, &["explain", "pod", pinned]);
    eprintln!("$ kubectl taint-guard explain pod {pinned}\n{text}");
    c.delete_pod(pinned);
    c.delete_pod(plain);
}

/// Replay 3: swap on with a live fstab line and kubelet restarted: the
/// real kubelet refuses and loops; the daemon (repair on) turns swap off
/// and comments the line; kubelet runs and the Node is Ready.
fn swap_refused_by_kubelet_repaired_by_daemon(c: &mut Cluster) {
    harness::host_global("swap on");
    let name = "seed-swap";
    let w = c.boot_worker("cswap", name, |_| {});
    let node = w.node();
    node.exec(&format!("systemctl enable --now {KUBELET} 2>&1"));
    wait_ready(c, name, 90);
    install_taint_guard(
        &w,
        "[run]\nreport_initial_delay_secs = 0\n",
        &["taint-guard.service"],
        false,
    );
    let node = w.node();
    node.exec("printf '/swapfile none swap sw 0 0\\n' >> /etc/fstab");
    node.swap_on("/swapfile", 64);
    node.exec(&format!("systemctl restart {KUBELET}"));
    node.wait_for("kubelet refusing swap", |n| {
        n.prop(KUBELET, "NRestarts").parse::<u32>().unwrap_or(0) >= 1
    });
    let journal = node.exec(&format!("journalctl -b -u {KUBELET} --no-pager"));
    assert!(
        journal.contains("running with swap on is not supported"),
        "{journal}"
    );

    node.exec("systemctl start taint-guard.service");
    // swapoff first, then the fstab line: wait for both.
    node.wait_for("swap off and its fstab line commented", |n| {
        !n.exec("cat /proc/swaps").contains("/swapfile")
            && !n.read("/etc/fstab").contains("\n/swapfile")
    });
    let fstab = node.read("/etc/fstab");
    assert!(!fstab.contains("\n/swapfile"), "{fstab}");
    assert!(fstab.contains("/swapfile"), "{fstab}");
    c.wait("kubelet running", 60, |_| {
        node.prop(KUBELET, "SubState") == "running"
    });
    // Running, and it stays up (not one more restart) until Ready.
    let restarts = node.prop(KUBELET, "NRestarts");
    wait_ready(c, name, 90);
    c.wait("Ready=True with kubelet up", 30, |c| {
        c.ready(name) == "True" && node.prop(KUBELET, "SubState") == "running"
    });
    assert_eq!(node.prop(KUBELET, "NRestarts"), restarts);
}

/// Replay 4: the real kubelet crash-looping on a bad flag for
/// TG_CRASHLOOP_RESTARTS restarts (default 25: what 300 s of kubeadm's
/// `RestartSec=10` gives) under taint-guard.service, repair off, reporting
/// to the real API server: taint-guard's writes (verbs other than
/// get/list/watch by the node's identity, not from kubelet), counted from
/// the audit log, are at most 12. The evidence is restarts counted, not
/// time waited: the test's own drop-in shortens `RestartSec=` to 2 s, so
/// the loop turns five times as fast as kubeadm's, and the daemon's
/// `report_min_interval_secs` is shortened by the same factor (60 → 12 s),
/// so the bound also holds per reporting window as it did over 300 s.
fn crash_looping_kubelet_few_api_writes(c: &mut Cluster) {
    let want: u64 = std::env::var("TG_CRASHLOOP_RESTARTS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(25);
    let name = "seed-loop";
    let w = c.boot_worker("cloop", name, |_| {});
    let node = w.node();
    node.exec(&format!("systemctl enable --now {KUBELET} 2>&1"));
    wait_ready(c, name, 90);
    node.write(
        "/etc/default/kubelet",
        "KUBELET_EXTRA_ARGS=--no-such-flag=1\n",
    );
    node.write(
        "/etc/systemd/system/kubelet.service.d/30-test-fast-restart.conf",
        "[Service]\nRestartSec=2\n",
    );
    node.exec(&format!(
        "systemctl daemon-reload && systemctl restart {KUBELET}"
    ));
    node.wait_for("kubelet crash-looping", |n| {
        n.prop(KUBELET, "NRestarts").parse::<u32>().unwrap_or(0) >= 1
    });
    let journal = node.exec(&format!("journalctl -b -u {KUBELET} --no-pager"));
    assert!(journal.contains("no-such-flag"), "{journal}");
    let user = format!("system:node:{name}");
    let before = c.api.audit_events().len();
    install_taint_guard(
        &w,
        "[run]\nremediate = false\nreport_initial_delay_secs = 0\nreport_min_interval_secs = 12\n",
        &["taint-guard.service"],
        true,
    );
    let t0 = Instant::now();
    let nrestarts = || -> u64 { node.prop(KUBELET, "NRestarts").parse().unwrap() };
    let first = nrestarts();
    // Bounded: at kubeadm's own RestartSec=10 these restarts would take
    // 12 s each; at 2 s they take about 2.5.
    let deadline = Duration::from_secs(12 * want);
    while nrestarts() - first < want && t0.elapsed() < deadline {
        std::thread::sleep(Duration::from_secs(1));
    }
    let secs = t0.elapsed().as_secs();
    let restarts = nrestarts() - first;
    let events = c.api.audit_events();
    let ours: Vec<(String, String)> = events[before..]
        .iter()
        .filter(|e| {
            e["user"]["username"] == user.as_str()
                && !e["userAgent"]
                    .as_str()
                    .unwrap_or_default()
                    .starts_with("kubelet/")
        })
        .map(|e| {
            (
                e["verb"].as_str().unwrap_or("").to_string(),
                e["requestURI"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect();
    let writes: Vec<&(String, String)> = ours
        .iter()
        .filter(|(v, _)| !matches!(v.as_str(), "get" | "list" | "watch"))
        .collect();
    eprintln!(
        "replay 4: kubelet crash-looped {secs}s ({restarts} restarts); taint-guard made {} API writes ({} requests in all)",
        writes.len(),
        ours.len()
    );
    let h = host_problem(c, name).expect("KubeletHostProblem");
    assert_eq!(h["status"], "True", "{h:#}");
    assert!(
        restarts >= want,
        "kubelet restarted only {restarts} times in {secs}s"
    );
    assert_eq!(node.prop("taint-guard.service", "NRestarts"), "0");
    assert!(
        writes.len() <= 12,
        "{} writes in {secs}s of a crash loop: {writes:#?}",
        writes.len()
    );
}

/// The report-only DaemonSet's view of a healthy kubeadm worker: the real
/// kubelet enabled and running, its Node Ready, its credentials as kubeadm
/// writes them (kubelet.conf and the client certificate 0600, root's).
/// taint-guard run as the pod runs it — uid and gid 65534, no
/// supplementary group, no capability — against the node:
/// - with the base ConfigMap's configuration: no finding, reboot-safe,
///   exit 0 (the checks uid 65534 cannot make are off there, said once in
///   the ConfigMap and the README);
/// - with every check on (the defaults): what it may not read is its own
///   limit — one `probe-failed` for the credentials, naming the uid and
///   what would read them, and one for the runtime's socket — unknown, with
///   no critical and no "not reboot-safe";
/// - as root, the defaults: every check made, OK, reboot-safe.
fn report_only_pod_uid_on_a_healthy_kubeadm_worker(c: &mut Cluster) {
    use std::os::unix::fs::MetadataExt;
    let name = "pod-uid";
    let w = c.boot_worker("cpoduid", name, |_| {});
    let node = w.node();
    node.exec(&format!("systemctl enable --now {KUBELET} 2>&1"));
    wait_ready(c, name, 90);
    for f in [
        "etc/kubernetes/kubelet.conf",
        "var/lib/kubelet/pki/kubelet-client-current.pem",
    ] {
        let m = std::fs::metadata(node.root.join(f)).unwrap();
        assert_eq!(
            (m.mode() & 0o777, m.uid()),
            (0o600, 0),
            "kubeadm's mode of /{f}"
        );
    }
    let pod = node.dir.join("pod-config.toml");
    std::fs::write(&pod, harness::report_only_pod_config()).unwrap();
    let defaults = node.dir.join("default-config.toml");
    std::fs::write(&defaults, harness::HOST_KERNEL).unwrap();
    let check = |config: &Path, as_pod: bool| -> (i32, Value) {
        let inner = node.tg_command_with(config, &["check", "--output", "json"]);
        let mut cmd = if as_pod {
            let mut pod = std::process::Command::new("setpriv");
            pod.args([
                "--reuid=65534",
                "--regid=65534",
                "--clear-groups",
                "--inh-caps=-all",
                "--bounding-set=-all",
                "--",
            ]);
            harness::under(pod, &inner)
        } else {
            inner
        };
        let o = cmd.output().unwrap();
        let out = String::from_utf8_lossy(&o.stdout);
        let v: Value = serde_json::from_str(&out).unwrap_or_else(|e| {
            panic!(
                "invalid JSON ({e}): {out}\n{}",
                String::from_utf8_lossy(&o.stderr)
            )
        });
        (o.status.code().unwrap_or(-1), v)
    };
    let findings = |v: &Value| -> Vec<(String, String, String)> {
        v["findings"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|f| {
                (
                    f["id"].as_str().unwrap_or_default().to_string(),
                    f["subject"].as_str().unwrap_or_default().to_string(),
                    f["severity"].as_str().unwrap_or_default().to_string(),
                )
            })
            .collect()
    };
    // The pod, as deployed.
    let (code, v) = check(&pod, true);
    assert_eq!(
        (code, findings(&v), &v["reboot_safe"]),
        (0, vec![], &json!(true)),
        "{v:#}"
    );
    // What a person sees from it (printed for the record).
    let mut as_pod = std::process::Command::new("setpriv");
    as_pod.args([
        "--reuid=65534",
        "--regid=65534",
        "--clear-groups",
        "--inh-caps=-all",
        "--bounding-set=-all",
        "--",
    ]);
    let o = harness::under(as_pod, &node.tg_command_with(&pod, &["check"]))
        .output()
        .unwrap();
    eprintln!(
        "report-only pod (uid 65534, base ConfigMap) on a healthy kubeadm worker, exit {}:\n{}",
        o.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&o.stdout)
    );
    // The pod's uid with every check on: unknown, never critical.
    let (code, v) = check(&defaults, true);
    let f = findings(&v);
    assert!(
        f.iter().all(|(_, _, sev)| sev != "critical"),
        "a critical from what uid 65534 may not read: {v:#}"
    );
    assert_eq!(code, 3, "unknown: {v:#}");
    assert_eq!(v["reboot_safe"], Value::Null, "{v:#}");
    let creds = v["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["subject"] == "credentials:/etc/kubernetes/kubelet.conf")
        .unwrap_or_else(|| panic!("no probe-failed for the credentials: {v:#}"));
    assert_eq!(creds["id"], "probe-failed", "{v:#}");
    let m = creds["message"].as_str().unwrap();
    assert!(
        m.contains("uid 65534") && m.contains("Root reads it"),
        "{m}"
    );
    assert!(
        f.iter()
            .any(|(id, subject, _)| id == "probe-failed" && subject.starts_with("runtime:")),
        "{v:#}"
    );
    // A folder on the way it may not search (/etc/kubernetes 0700): the
    // same refusal, not "no kubeconfig, not joined".
    let etc_k8s = node.root.join("etc/kubernetes");
    let mode = |m: u32| {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&etc_k8s, std::fs::Permissions::from_mode(m)).unwrap()
    };
    mode(0o700);
    let (code, v) = check(&defaults, true);
    mode(0o755);
    assert_eq!(code, 3, "{v:#}");
    assert!(
        findings(&v).contains(&(
            "probe-failed".into(),
            "credentials:/etc/kubernetes/kubelet.conf".into(),
            "unknown".into()
        )),
        "a folder it may not search is not an absent kubeconfig: {v:#}"
    );
    // Root, every check on: all made, and all well.
    let (code, v) = check(&defaults, false);
    assert_eq!(
        (code, findings(&v), &v["reboot_safe"]),
        (0, vec![], &json!(true)),
        "{v:#}"
    );
}

/// One state of a worker for [`prediction_matrix_against_the_real_kubelet`]:
/// its name and what is done to a Ready worker (kubelet enabled and
/// running) before the prediction.
type MatrixRow = (&'static str, fn(&Cluster, &Worker));

const MATRIX: [MatrixRow; 13] = [
    ("healthy", |_, _| {}),
    ("kubelet-disabled", |_, w| {
        w.node().exec("systemctl disable kubelet.service 2>&1");
    }),
    ("kubelet-enabled-runtime", |_, w| {
        w.node().exec(
            "systemctl disable kubelet.service 2>&1 && systemctl enable --runtime kubelet.service 2>&1",
        );
    }),
    ("kubelet-wanted-by-a-drop-in", |_, w| {
        w.node().exec(
            "systemctl disable kubelet.service 2>&1 && mkdir -p /etc/systemd/system/multi-user.target.d && \
             printf '[Unit]\\nWants=kubelet.service\\n' > /etc/systemd/system/multi-user.target.d/50-kubelet.conf && \
             systemctl daemon-reload",
        );
    }),
    ("kubelet-started-by-a-boot-hook", |_, w| {
        w.node().write(
            "/etc/systemd/system/node-boot-hook.service",
            "[Service]\nType=oneshot\nExecStart=/bin/systemctl start --no-block kubelet.service\n[Install]\nWantedBy=multi-user.target\n",
        );
        w.node().exec(
            "systemctl disable kubelet.service 2>&1 && systemctl daemon-reload && systemctl enable node-boot-hook.service 2>&1",
        );
    }),
    ("kubelet-masked", |_, w| {
        w.node().exec("systemctl mask kubelet.service 2>&1");
    }),
    ("runtime-disabled", |_, w| {
        w.node().exec("systemctl disable fake-cri.service 2>&1");
    }),
    ("config-not-yaml", |_, w| {
        let c = w.node().read("/var/lib/kubelet/config.yaml");
        w.node().write(
            "/var/lib/kubelet/config.yaml",
            &format!("{c}evictionHard: [\n"),
        );
    }),
    ("config-refused-by-validation", |_, w| {
        let c = w.node().read("/var/lib/kubelet/config.yaml");
        w.node().write(
            "/var/lib/kubelet/config.yaml",
            &format!("{c}imageGCHighThresholdPercent: 101\n"),
        );
    }),
    ("config-unknown-field", |_, w| {
        let c = w.node().read("/var/lib/kubelet/config.yaml");
        w.node().write(
            "/var/lib/kubelet/config.yaml",
            &format!("{c}noSuchField: 1\n"),
        );
    }),
    ("config-file-gone", |_, w| {
        w.node().exec("rm /var/lib/kubelet/config.yaml");
    }),
    ("program-gone", |_, w| {
        w.node().exec("mv /usr/bin/kubelet /usr/bin/kubelet.moved");
    }),
    ("client-certificate-expired", |c, w| {
        let creds = c.api.node_creds_valid(&w.name, -30 * 86_400, -86_400);
        w.node().write(
            "/var/lib/kubelet/pki/kubelet-client-current.pem",
            &format!("{}{}", creds.cert, creds.key),
        );
    }),
];

/// Whether the Node's Ready condition is True with a heartbeat from
/// `after` on: the real kubelet of this boot reported.
fn ready_since(c: &Cluster, name: &str, after: jiff::Timestamp) -> bool {
    c.node(name)
        .and_then(|n| cluster::condition(&n, "Ready").cloned())
        .is_some_and(|r| {
            r["status"] == "True"
                && r["lastHeartbeatTime"]
                    .as_str()
                    .and_then(|t| t.parse::<jiff::Timestamp>().ok())
                    .is_some_and(|t| t >= after)
        })
}

/// The prediction against reality: for each of 13 node states (the unit
/// graph, kubelet's config and program, the runtime, the credentials),
/// `check --output json`'s `reboot_safe` on a Ready worker of the real
/// v1.20.2 cluster, then a power loss and the same rootfs booted again, then
/// whether the real kubelet's Node is Ready with a heartbeat from after the
/// boot. Every row must agree; `null` (unknown) counts as a miss: each
/// outcome here is knowable from the node's files. Workers run in batches
/// of up to 7 side by side; a batch waits 100 s after the power comes back
/// (the kubelets that come back report within ~30 s).
fn prediction_matrix_against_the_real_kubelet(c: &mut Cluster) {
    let mut table = Vec::new();
    for (b, batch) in MATRIX.chunks(7).enumerate() {
        let mut ws: Vec<Worker> = batch
            .iter()
            .enumerate()
            .map(|(i, (row, _))| {
                let w = c.boot_worker(&format!("mx{b}{i}"), &format!("mx-{row}"), |_| {});
                w.node()
                    .exec(&format!("systemctl enable --now {KUBELET} 2>&1"));
                w
            })
            .collect();
        for w in &ws {
            wait_ready(c, &w.name.clone(), 120);
        }
        let mut predicted = Vec::new();
        for (w, (row, setup)) in ws.iter().zip(batch) {
            setup(c, w);
            let (_, v) = w.node().check_json(&[]);
            let ids: Vec<String> = v["findings"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|f| f["severity"] != "info")
                .map(|f| {
                    format!(
                        "{} {}",
                        f["id"].as_str().unwrap_or(""),
                        f["subject"].as_str().unwrap_or("")
                    )
                })
                .collect();
            predicted.push((row, v["reboot_safe"].clone(), ids));
        }
        for w in &mut ws {
            w.node_mut().power_loss();
        }
        let back = jiff::Timestamp::now();
        for w in &mut ws {
            w.node_mut().power_on();
        }
        let t0 = Instant::now();
        let names: Vec<String> = ws.iter().map(|w| w.name.clone()).collect();
        let expect_back: Vec<bool> = predicted.iter().map(|p| p.1 == json!(true)).collect();
        // Until every row predicted safe is back (or 240 s), and at least
        // 100 s: those predicted unsafe have had their chance.
        loop {
            let up: Vec<bool> = names.iter().map(|n| ready_since(c, n, back)).collect();
            let waited = t0.elapsed();
            let all_back = up.iter().zip(&expect_back).all(|(u, e)| *u || !*e);
            if (all_back && waited >= Duration::from_secs(100))
                || waited >= Duration::from_secs(240)
            {
                break;
            }
            std::thread::sleep(Duration::from_secs(2));
        }
        for ((row, safe, ids), n) in predicted.into_iter().zip(&names) {
            let up = ready_since(c, n, back);
            table.push((row.to_string(), safe, ids, up));
        }
        drop(ws);
    }
    let mut out = String::from("| node state | reboot_safe before | Node Ready after the boot | agree | findings before |\n|---|---|---|---|---|\n");
    let mut misses = Vec::new();
    for (row, safe, ids, up) in &table {
        let agree = *safe == json!(*up);
        if !agree {
            misses.push(row.clone());
        }
        out += &format!(
            "| {row} | {safe} | {} | {} | {} |\n",
            if *up { "yes" } else { "no" },
            if agree { "yes" } else { "**NO**" },
            ids.join(", ")
        );
    }
    eprintln!("{out}");
    if let Ok(dir) = std::env::var("TG_MATRIX_OUT") {
        let _ = std::fs::write(Path::new(&dir).join("prediction-matrix.md"), &out);
    }
    assert!(misses.is_empty(), "rows that disagree: {misses:?}\n{out}");
    // Both outcomes occur: the comparison can fail either way.
    assert!(
        table.iter().any(|r| r.3) && table.iter().any(|r| !r.3),
        "{out}"
    );
}

type Scenario = fn(&mut Cluster);

/// Reboot readiness, the container runtime, against the real kubelet: the
/// worker's runtime (fake-cri.service, serving the socket kubelet's flags
/// name) runs but is disabled, kubelet itself enabled. Before the reboot
/// taint-guard says so: `unit-disabled` on fake-cri.service (found from the
/// process listening on the socket), critical, not reboot-safe, `--fix`
/// may enable it (it runs; the remedy is `systemctl enable`). Without the
/// repair, after the reboot the real kubelet comes up without its runtime
/// and the Node is not Ready, as predicted; taint-guard then says the
/// runtime is unreachable and, the socket's unit no longer being known,
/// reboot safety unknown; a person enabling and starting it brings the
/// Node back.
fn runtime_disabled_predicted_before_the_reboot(c: &mut Cluster) {
    let name = "rt-worker";
    let mut w = c.boot_worker("crt", name, |_| {});
    w.node()
        .exec(&format!("systemctl enable --now {KUBELET} 2>&1"));
    wait_ready(c, name, 90);
    let rt = "fake-cri.service";
    w.node().exec(&format!("systemctl disable {rt} 2>&1"));
    let (code, v) = w.node().check_json(&[]);
    assert_eq!(code, 2, "{v:#}");
    let ids: Vec<(String, String)> = v["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["id"].as_str().unwrap().into(),
                f["subject"].as_str().unwrap().into(),
            )
        })
        .collect();
    assert_eq!(
        ids,
        vec![("unit-disabled".to_string(), rt.to_string())],
        "{v:#}"
    );
    assert_eq!(v["reboot_safe"], false);
    assert_eq!(v["findings"][0]["fixable"], true);
    // It runs: enabling it is the whole repair before the reboot.
    assert_eq!(v["findings"][0]["remedy"], format!("systemctl enable {rt}"));
    assert!(
        v["observations"]["runtime"]["unit_from"]
            .as_str()
            .unwrap()
            .starts_with("the process listening on /run/fake-cri/fake-cri.sock"),
        "{v:#}"
    );

    // The reboot taint-guard warned about (no repair made).
    w.node_mut().reboot();
    assert_eq!(w.node().prop(rt, "ActiveState"), "inactive");
    c.wait("Node no longer Ready after the reboot", 120, |c| {
        c.ready(name) != "True"
    });
    // It stays so: kubelet has no runtime.
    std::thread::sleep(Duration::from_secs(20));
    assert_ne!(c.ready(name), "True");
    // Nothing listens on the socket now, and fake-cri.service is not a
    // well-known runtime unit: taint-guard says the runtime is unreachable
    // and no longer claims which unit serves it (reboot safety unknown).
    let (code, v) = w.node().check_json(&["--fix"]);
    assert_eq!(code, 2, "{v:#}");
    assert!(
        v["findings"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f["id"] == "runtime-unreachable"
                && f["subject"] == "/run/fake-cri/fake-cri.sock"),
        "{v:#}"
    );
    assert_eq!(v["reboot_safe"], serde_json::Value::Null);
    // --fix neither enabled nor started it.
    assert_eq!(w.node().prop(rt, "ActiveState"), "inactive");
    // A person, after the reboot: the runtime enabled and started.
    w.node().exec(&format!("systemctl enable --now {rt} 2>&1"));
    wait_ready(c, name, 120);
    let (code, v) = w.node().check_json(&[]);
    assert_eq!(code, 0, "{v:#}");
}

fn main() -> std::process::ExitCode {
    let scenarios: Vec<(&'static str, Scenario)> = vec![
        ("power_loss_healed_by_boot_unit", boot_unit_heals_power_loss),
        (
            "power_loss_baseline_without_taint_guard_stays_tainted",
            baseline_without_taint_guard_stays_tainted,
        ),
        (
            "report_only_daemon_names_the_cause_while_tainted",
            report_only_daemon_names_the_cause_while_tainted,
        ),
        (
            "swap_refused_by_kubelet_repaired_by_daemon",
            swap_refused_by_kubelet_repaired_by_daemon,
        ),
        (
            "runtime_disabled_predicted_before_the_reboot",
            runtime_disabled_predicted_before_the_reboot,
        ),
        (
            "crash_looping_kubelet_few_api_writes",
            crash_looping_kubelet_few_api_writes,
        ),
        (
            "report_only_pod_uid_on_a_healthy_kubeadm_worker",
            report_only_pod_uid_on_a_healthy_kubeadm_worker,
        ),
        (
            "prediction_matrix_against_the_real_kubelet",
            prediction_matrix_against_the_real_kubelet,
        ),
    ];
    let bin = cluster::binaries();
    let shared: Arc<Mutex<Option<Cluster>>> = Default::default();
    let trials = scenarios
        .into_iter()
        .map(|(name, f)| {
            let shared = shared.clone();
            let bin = bin.clone();
            harness::trial_with(name, move || {
                let mut guard = shared.lock().unwrap_or_else(|p| p.into_inner());
                let c = guard.get_or_insert_with(|| Cluster::start(bin.as_ref().unwrap()));
                f(c)
            })
        })
        .collect();
    let code = harness::run_requiring(
        trials,
        &[
            (harness::kube::binaries().err(), "TG_REQUIRE_APISERVER"),
            cluster::requirement(),
        ],
    );
    // Stop the control plane before exiting.
    drop(shared.lock().unwrap_or_else(|p| p.into_inner()).take());
    code
}
