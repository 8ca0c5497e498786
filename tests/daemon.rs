//! `taint-guard run` against a real systemd (see harness/mod.rs): the daemon
//! on the host, the node's systemd over D-Bus, its files through
//! --host-root, its findings read from /metrics.

mod harness;

use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use harness::{free_port, http_get, Kubelet, Node};

/// `taint-guard run` on the host against a node.
struct Daemon {
    child: Child,
    port: u16,
    log: std::path::PathBuf,
}

impl Daemon {
    /// Write `[run]` settings (metrics on a free port) plus `extra` to the
    /// node's config file and start the daemon.
    fn start(node: &Node, run: &str, extra: &str) -> Daemon {
        let port = free_port();
        write_config(node, port, run, extra);
        let log = node.dir.join("daemon.log");
        let f = std::fs::File::create(&log).unwrap();
        let child = node
            .tg_command(&["-vv", "run"])
            .env("RUST_LOG", "taint_guard=debug")
            .stdin(Stdio::null())
            .stdout(f.try_clone().unwrap())
            .stderr(f)
            .spawn()
            .expect("starting taint-guard run");
        let d = Daemon { child, port, log };
        d.wait_metrics("the first evaluation", |m| {
            m.contains("taint_guard_evaluations_total")
        });
        d
    }

    fn metrics(&self) -> String {
        http_get(self.port, "/metrics")
            .map(|(_, b)| b)
            .unwrap_or_default()
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Poll /metrics every 5 ms until `cond`; the time it took.
    fn wait_metrics(&self, what: &str, cond: impl Fn(&str) -> bool) -> Duration {
        let t0 = Instant::now();
        loop {
            let m = self.metrics();
            if cond(&m) {
                return t0.elapsed();
            }
            assert!(
                t0.elapsed() < Duration::from_secs(20),
                "timed out waiting for {what}; metrics:\n{m}\nlog:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    fn counter(&self, name_and_labels: &str) -> f64 {
        metric(&self.metrics(), name_and_labels)
    }

    fn signal(&self, sig: i32) {
        // SAFETY: kill(2) on our own child.
        unsafe { libc::kill(self.child.id() as i32, sig) };
    }

    /// SIGTERM; the exit code and how long it took.
    fn stop(mut self) -> (i32, Duration) {
        let t0 = Instant::now();
        self.signal(libc::SIGTERM);
        let st = self.child.wait().unwrap();
        (st.code().unwrap_or(-1), t0.elapsed())
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `extra` may start with `[fix]` keys: they join the `[fix]` table.
fn write_config(node: &Node, port: u16, run: &str, extra: &str) {
    let (fix, extra) = match extra.strip_prefix("[fix]\n") {
        Some(rest) => rest
            .split_once("\n[")
            .map_or((rest, String::new()), |(f, e)| (f, format!("[{e}"))),
        None => ("", extra.to_string()),
    };
    std::fs::write(
        &node.config,
        format!(
            "{extra}\n[fix]\nsettle_secs = 1\n{fix}\n[run]\nmetrics_listen = \"127.0.0.1:{port}\"\nreport = false\n{run}\n{}",
            harness::HOST_KERNEL
        ),
    )
    .unwrap();
}

/// The value of the first sample whose line starts with `key`.
fn metric(m: &str, key: &str) -> f64 {
    m.lines()
        .find(|l| l.starts_with(key))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0)
}

fn finding(id: &str, subject: &str) -> String {
    format!("taint_guard_findings{{id=\"{id}\",severity=\"critical\",subject=\"{subject}\"}} 1")
}

fn has_finding(m: &str, id: &str) -> bool {
    m.lines()
        .any(|l| l.starts_with(&format!("taint_guard_findings{{id=\"{id}\"")))
}

fn active(n: &Node) -> bool {
    n.prop("kubelet.service", "ActiveState") == "active"
}

fn kubelet_running(node: &Node) {
    node.exec("systemctl enable --now kubelet.service");
    node.wait_for("kubelet active", active);
}

// ---------------------------------------------------------------- scenarios

/// A stop is seen at once; with start_stopped and a short grace the unit
/// is started again; by default a person's stop is only reported.
fn stopped_kubelet_restarted_after_grace_or_reported() {
    let node = Node::boot("dstop", Kubelet::Kubeadm, |_| {});
    kubelet_running(&node);
    let d = Daemon::start(&node, "start_stopped = true\nstart_grace_secs = 1\n", "");
    d.wait_metrics("ok", |m| m.contains("taint_guard_status{status=\"ok\"} 1"));
    let t0 = Instant::now();
    node.exec("systemctl stop kubelet.service");
    d.wait_metrics("unit-stopped", |m| {
        m.contains(&finding("unit-stopped", "kubelet.service"))
    });
    node.wait_for("kubelet active again", active);
    let took = t0.elapsed();
    assert!(
        took >= Duration::from_secs(1) && took < Duration::from_secs(5),
        "restarted after {took:?} (grace 1 s)"
    );
    d.wait_metrics("ok again", |m| {
        m.contains("taint_guard_status{status=\"ok\"} 1")
    });
    assert_eq!(
        d.counter("taint_guard_repairs_total{action=\"start\",outcome=\"done\"}"),
        1.0
    );
    let log = d.log();
    assert!(log.contains("unit-stopped"), "{log}");

    // Default: a person's stop stays a stop (reported, held).
    write_config(&node, d.port, "start_grace_secs = 0\n", "");
    d.signal(libc::SIGHUP);
    node.exec("systemctl stop kubelet.service");
    d.wait_metrics("unit-stopped", |m| {
        m.contains(&finding("unit-stopped", "kubelet.service"))
    });
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(node.prop("kubelet.service", "ActiveState"), "inactive");
    let log = d.log();
    assert!(
        log.contains("repair held: start kubelet.service: stopped cleanly"),
        "{log}"
    );
    let (code, took) = d.stop();
    assert_eq!(code, 0);
    assert!(took < Duration::from_secs(1), "stopped in {took:?}");
}

/// disable → unit-disabled; with repair off it stays; on, re-enabled;
/// during a pause, held and still reported; after resume, repaired.
fn disabled_kubelet_reenabled_unless_off_or_paused() {
    let node = Node::boot("ddisable", Kubelet::Kubeadm, |_| {});
    kubelet_running(&node);
    let d = Daemon::start(&node, "remediate = false\n", "");
    node.exec("systemctl disable kubelet.service");
    d.wait_metrics("unit-disabled", |m| {
        m.contains(&finding("unit-disabled", "kubelet.service"))
    });
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(node.prop("kubelet.service", "UnitFileState"), "disabled");

    // Repair on (config reloaded on SIGHUP): enabled again.
    write_config(&node, d.port, "remediate = true\n", "");
    d.signal(libc::SIGHUP);
    node.wait_for("kubelet enabled again", |n| {
        n.prop("kubelet.service", "UnitFileState") == "enabled"
    });
    d.wait_metrics("ok", |m| m.contains("taint_guard_status{status=\"ok\"} 1"));

    // A pause: reported, not repaired.
    let (code, _, err) = node.tg(&["pause", "--for", "1h", "--reason", "kernel upgrade"]);
    assert_eq!(code, 0, "{err}");
    node.exec("systemctl disable kubelet.service");
    d.wait_metrics("unit-disabled while paused", |m| {
        m.contains(&finding("unit-disabled", "kubelet.service"))
    });
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(node.prop("kubelet.service", "UnitFileState"), "disabled");
    assert!(d.log().contains("kernel upgrade"), "{}", d.log());

    // Resume: the pause file goes away (inotify), the repair follows.
    let (code, _, err) = node.tg(&["resume"]);
    assert_eq!(code, 0, "{err}");
    node.wait_for("kubelet enabled after resume", |n| {
        n.prop("kubelet.service", "UnitFileState") == "enabled"
    });
}

/// swapon is seen through /proc/swaps' POLLPRI, an fstab replaced by
/// rename through inotify, both long before the (1 h) resync.
fn swap_and_fstab_changes_seen_without_resync() {
    harness::host_global("swap on");
    let node = Node::boot("dswap", Kubelet::Kubeadm, |_| {});
    kubelet_running(&node);
    let d = Daemon::start(&node, "remediate = false\nresync_secs = 3600\n", "");
    let before = d.counter("taint_guard_evaluations_total");
    node.exec("dd if=/dev/zero of=/swapfile bs=1M count=16 status=none && chmod 600 /swapfile && mkswap /swapfile >/dev/null");
    let t0 = Instant::now();
    node.exec("swapon /swapfile");
    d.wait_metrics("swap-active", |m| has_finding(m, "swap-active"));
    let took = t0.elapsed();
    assert!(took < Duration::from_secs(2), "swap-active after {took:?}");
    assert!(d.counter("taint_guard_evaluations_total") > before);

    let fstab = node.read("/etc/fstab");
    node.write(
        "/etc/fstab.new",
        &format!("{fstab}/swapfile none swap sw 0 0\n"),
    );
    let t0 = Instant::now();
    node.exec("mv /etc/fstab.new /etc/fstab");
    d.wait_metrics("swap-in-fstab", |m| has_finding(m, "swap-in-fstab"));
    let took = t0.elapsed();
    assert!(
        took < Duration::from_secs(2),
        "swap-in-fstab after {took:?}"
    );
    node.exec("swapoff /swapfile");
    d.wait_metrics("swap-active gone", |m| !has_finding(m, "swap-active"));

    // An invalid configuration on SIGHUP: the old one stays, said as a
    // finding and with file:line:col in the log.
    let port = d.port;
    std::fs::write(
        &node.config,
        format!("[run]\nmetrics_listen = \"127.0.0.1:{port}\"\nremediate = false\nresync_secs = 3600\nreport = false\nno_such_key = 1\n"),
    )
    .unwrap();
    d.signal(libc::SIGHUP);
    d.wait_metrics("config-invalid", |m| has_finding(m, "config-invalid"));
    let cfg = node.config.display().to_string();
    assert!(
        d.log()
            .contains(&format!("{cfg}:6:1: unknown field `no_such_key`")),
        "{}",
        d.log()
    );
    write_config(&node, port, "remediate = false\nresync_secs = 3600\n", "");
    d.signal(libc::SIGHUP);
    d.wait_metrics("config-invalid gone", |m| !has_finding(m, "config-invalid"));
}

/// dbus restarted, then systemd re-executed: the daemon reconnects (or
/// keeps its subscription) and still sees the next change.
fn survives_dbus_restart_and_daemon_reexec() {
    let node = Node::boot("dbus", Kubelet::Kubeadm, |_| {});
    kubelet_running(&node);
    let d = Daemon::start(&node, "remediate = false\nhealth_bus_down_secs = 1\n", "");
    d.wait_metrics("ok", |m| m.contains("taint_guard_status{status=\"ok\"} 1"));
    assert_eq!(http_get(d.port, "/healthz").unwrap().0, 200);

    // The bus gone for longer than the bound: /healthz says 503, the loop
    // reports no bus (probe-failed), and comes back with it.
    node.exec("systemctl stop dbus.socket dbus.service");
    d.wait_metrics("probe-failed", |m| has_finding(m, "probe-failed"));
    std::thread::sleep(Duration::from_millis(1500));
    let (code, body) = http_get(d.port, "/healthz").unwrap();
    assert_eq!(code, 503, "{body}");
    assert!(body.contains("bus unreachable"), "{body}");
    // Alive all the same: a restart would not bring the bus back.
    assert_eq!(http_get(d.port, "/livez").unwrap().0, 200);
    node.exec("systemctl start dbus.socket dbus.service");
    d.wait_metrics("ok after dbus came back", |m| {
        m.contains("taint_guard_status{status=\"ok\"} 1")
    });
    assert_eq!(http_get(d.port, "/healthz").unwrap().0, 200);

    node.exec("systemctl restart dbus.service");
    d.wait_metrics("a second reconnect", |m| {
        metric(m, "taint_guard_dbus_reconnects_total") >= 2.0
    });
    node.exec("systemctl stop kubelet.service");
    d.wait_metrics("unit-stopped after the dbus restart", |m| {
        has_finding(m, "unit-stopped")
    });
    node.exec("systemctl start kubelet.service");
    d.wait_metrics("ok", |m| m.contains("taint_guard_status{status=\"ok\"} 1"));

    node.exec("systemctl daemon-reexec");
    node.wait_for("systemd back", |n| {
        n.try_exec("systemctl is-system-running")
            .status
            .code()
            .is_some()
            && n.prop("kubelet.service", "ActiveState") == "active"
    });
    node.exec("systemctl stop kubelet.service");
    d.wait_metrics("unit-stopped after daemon-reexec", |m| {
        has_finding(m, "unit-stopped")
    });
    let (code, _) = d.stop();
    assert_eq!(code, 0);
}

/// A kubelet that fails at every start: attempts are backed off (1, 2, 4 s
/// …), each past the first logged once with its wait; no storm.
fn crash_loop_is_backed_off() {
    let node = Node::boot("dloop", Kubelet::Kubeadm, |root| {
        harness::kubelet_dropin(
            root,
            "20-false.conf",
            "[Service]\nExecStart=\nExecStart=/bin/false\nRestart=no\n",
        );
    });
    node.exec("systemctl enable kubelet.service");
    let d = Daemon::start(
        &node,
        "start_grace_secs = 0\nrepair_backoff_secs = 1\nrepair_backoff_max_secs = 4\n",
        "",
    );
    std::thread::sleep(Duration::from_secs(12));
    let starts = d.counter("taint_guard_repairs_total{action=\"start\",outcome=\"done\"}");
    // Attempts at about 0, 1, 3, 7, 11 s: five, give or take one for timing.
    assert!(
        (3.0..=7.0).contains(&starts),
        "{starts} starts in 12 s\n{}",
        d.metrics()
    );
    // systemd's own count of the kubelet's runs agrees: no storm.
    let runs: usize = node
        .exec("journalctl -u kubelet.service -b --no-pager -o cat | grep -c 'Main process exited' || true")
        .trim()
        .parse()
        .unwrap_or(0);
    assert!(
        runs as f64 <= starts + 1.0,
        "{runs} runs for {starts} starts"
    );
    eprintln!("crash loop: {starts} start attempts, {runs} kubelet runs in 12 s");
    let log = d.log();
    assert!(log.contains("still needed after 1 attempt(s)"), "{log}");
    assert!(log.contains("the next in 4s"), "{log}");
}

/// The service in the node: active only after READY=1, a status line, the
/// watchdog fed, stopped with exit 0 within 1 s.
fn service_unit_notify_watchdog_stop() {
    let node = Node::boot("dunit", Kubelet::Kubeadm, |root| {
        std::fs::copy(
            env!("CARGO_BIN_EXE_taint-guard"),
            root.join("usr/bin/taint-guard"),
        )
        .unwrap();
        std::fs::copy(
            concat!(env!("CARGO_MANIFEST_DIR"), "/systemd/taint-guard.service"),
            root.join("etc/systemd/system/taint-guard.service"),
        )
        .unwrap();
        // A short watchdog, so a missed ping would show within the test.
        let d = root.join("etc/systemd/system/taint-guard.service.d");
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(d.join("test.conf"), "[Service]\nWatchdogSec=2s\n").unwrap();
    });
    kubelet_running(&node);
    let port = free_port();
    node.write(
        "/etc/taint-guard/config.toml",
        &format!("[run]\nmetrics_listen = \"127.0.0.1:{port}\"\nreport = false\n"),
    );
    node.exec("systemctl daemon-reload");
    // Type=notify: `systemctl start` returns once READY=1 arrived.
    node.exec("systemctl start taint-guard.service");
    assert_eq!(node.prop("taint-guard.service", "ActiveState"), "active");
    let status = node.prop("taint-guard.service", "StatusText");
    assert_eq!(status, "ok: no problems; reboot-safe");
    let (code, body) = http_get(port, "/healthz").expect("healthz");
    assert_eq!((code, body.trim()), (200, "ok"));
    // Inside its sandbox (ProtectProc=invisible, its bounding set) the
    // daemon sees kubelet's process, and the derived argv matches it.
    let (_, m) = http_get(port, "/metrics").expect("metrics");
    assert!(
        m.contains(r#"taint_guard_kubelet_policy{state="known",argv_check="matches"} 1"#),
        "{m}"
    );
    let pid = node.prop("taint-guard.service", "MainPID");
    std::thread::sleep(Duration::from_secs(5));
    assert_eq!(
        node.prop("taint-guard.service", "MainPID"),
        pid,
        "watchdog tripped?"
    );
    assert_eq!(node.prop("taint-guard.service", "NRestarts"), "0");
    // A change shows in STATUS=.
    node.exec("systemctl stop kubelet.service");
    node.wait_for("status line", |n| {
        n.prop("taint-guard.service", "StatusText")
            .starts_with("critical: unit-stopped kubelet.service")
    });
    let t0 = Instant::now();
    node.exec("systemctl stop taint-guard.service");
    let took = t0.elapsed();
    assert!(took < Duration::from_secs(1), "stop took {took:?}");
    assert_eq!(node.prop("taint-guard.service", "Result"), "success");
    assert_eq!(node.prop("taint-guard.service", "ExecMainStatus"), "0");
    // The journal has the structured fields.
    let j = node.exec("journalctl -u taint-guard.service -b -o verbose --no-pager");
    assert!(j.contains("FINDING_ID=unit-stopped"), "{j}");
    assert!(j.contains("UNIT=kubelet.service"), "{j}");
}

/// Steady state: evaluations keep coming (file events), the API server
/// sees nothing after the first report.
fn steady_state_makes_no_api_requests() {
    let node = Node::boot("dsteady", Kubelet::Kubeadm, |_| {});
    kubelet_running(&node);
    let fixture: serde_json::Value =
        serde_json::from_str(include_str!("fixtures/report/node-worker-1.json")).unwrap();
    let api = harness::apiserver::FakeApi::start(fixture);
    let d = daemon_with_api(&node, &api, "");
    std::thread::sleep(Duration::from_millis(500));
    let first = api.take_requests();
    assert!(!first.is_empty());
    let before = d.counter("taint_guard_evaluations_total");
    for i in 0..20 {
        // Each rewrite of fstab (unchanged) is an event and an evaluation.
        let fstab = node.read("/etc/fstab");
        node.write("/etc/fstab", &fstab);
        std::thread::sleep(Duration::from_millis(50 + i));
    }
    std::thread::sleep(Duration::from_millis(300));
    let evals = d.counter("taint_guard_evaluations_total") - before;
    assert!(evals >= 10.0, "{evals} evaluations");
    let reqs = api.take_requests();
    assert!(
        reqs.is_empty(),
        "{} requests in steady state: {:?}",
        reqs.len(),
        reqs.iter()
            .map(|r| format!("{} {}", r.method, r.path))
            .collect::<Vec<_>>()
    );
    assert!(d
        .metrics()
        .contains("taint_guard_api_requests_total{verb=\"get\",outcome=\"ok\"}"));
}

/// Nothing happening, nothing evaluated: its own D-Bus calls (LoadUnit of
/// the kubelet flavours when kubelet.service is missing) do not wake it.
fn idle_node_stays_idle() {
    for (name, kubelet) in [("didle", Kubelet::Kubeadm), ("didlenone", Kubelet::None)] {
        let node = Node::boot(name, kubelet, |_| {});
        if kubelet == Kubelet::Kubeadm {
            kubelet_running(&node);
        }
        let d = Daemon::start(&node, "remediate = false\n", "");
        std::thread::sleep(Duration::from_secs(1));
        // From the host, kubelet's PID is the node's PID namespace's.
        let policy = d.metrics();
        let want = match kubelet {
            Kubelet::Kubeadm => {
                "taint_guard_kubelet_policy{state=\"known\",argv_check=\"not_compared\"} 1"
            }
            Kubelet::None => "taint_guard_kubelet_policy{",
        };
        assert_eq!(
            policy.contains(want),
            kubelet == Kubelet::Kubeadm,
            "{policy}"
        );
        let before = d.counter("taint_guard_evaluations_total");
        std::thread::sleep(Duration::from_secs(3));
        let after = d.counter("taint_guard_evaluations_total");
        assert_eq!(before, after, "{name}: evaluations while idle\n{}", d.log());
    }
}

/// A daemon reporting to the stand-in API server.
fn daemon_with_api(node: &Node, api: &harness::apiserver::FakeApi, run: &str) -> Daemon {
    let kc = node.dir.join("kubeconfig");
    api.kubeconfig(&kc);
    let port = free_port();
    std::fs::write(
        &node.config,
        format!("[run]\nmetrics_listen = \"127.0.0.1:{port}\"\nreport = true\nreport_initial_delay_secs = 0\n{run}"),
    )
    .unwrap();
    let log = node.dir.join("daemon.log");
    let f = std::fs::File::create(&log).unwrap();
    let child = node
        .tg_command(&[
            "-v",
            "run",
            "--kubeconfig",
            kc.to_str().unwrap(),
            "--node-name",
            "worker-1",
        ])
        .stdout(f.try_clone().unwrap())
        .stderr(f)
        .spawn()
        .unwrap();
    let d = Daemon { child, port, log };
    d.wait_metrics("the first report", |m| {
        metric(m, "taint_guard_last_report_success_timestamp_seconds") > 0.0
    });
    d
}

/// While the Node carries node.kubernetes.io/out-of-service nothing is
/// repaired (still reported); once it is gone, the repair follows.
fn out_of_service_node_is_not_repaired() {
    let node = Node::boot("doos", Kubelet::Kubeadm, |_| {});
    kubelet_running(&node);
    let mut fixture: serde_json::Value =
        serde_json::from_str(include_str!("fixtures/report/node-worker-1.json")).unwrap();
    fixture["spec"]["taints"] = serde_json::json!([
        {"key": "node.kubernetes.io/out-of-service", "value": "nodeshutdown", "effect": "NoExecute"}
    ]);
    let api = harness::apiserver::FakeApi::start(fixture);
    let d = daemon_with_api(
        &node,
        &api,
        "start_stopped = true\nstart_grace_secs = 0\nresync_secs = 2\n",
    );
    node.exec("systemctl stop kubelet.service");
    d.wait_metrics("unit-stopped", |m| has_finding(m, "unit-stopped"));
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(node.prop("kubelet.service", "ActiveState"), "inactive");
    assert!(
        d.log()
            .contains("node.kubernetes.io/out-of-service: taint-guard repairs nothing"),
        "{}",
        d.log()
    );
    // The taint removed: seen through the daemon's watch of its Node, and
    // the start follows.
    api.state.lock().unwrap().node["spec"]["taints"] = serde_json::json!([]);
    node.wait_for("kubelet started after the taint went", active);
}

/// Problem 1 of issue 18: with swap on that it may not turn off, the
/// daemon used to reset-failed a failed kubelet without starting it: kubelet
/// then looked cleanly stopped (`unit-stopped`) and stayed down for good.
/// Now nothing is reset until the start runs; once swap is freed, kubelet
/// comes back.
fn failing_kubelet_with_swap_on_comes_back_when_swap_is_freed() {
    harness::host_global("swap on");
    let node = Node::boot("dfreed", Kubelet::Kubeadm, |root| {
        // No restart loop: a refused start leaves the unit failed.
        harness::kubelet_dropin(root, "20-norestart.conf", "[Service]\nRestart=no\n");
    });
    kubelet_running(&node);
    node.exec("dd if=/dev/zero of=/swapfile bs=1M count=16 status=none && chmod 600 /swapfile && mkswap /swapfile >/dev/null && swapon /swapfile");
    node.exec("systemctl restart kubelet.service || true");
    node.wait_for("kubelet failed (swap on)", |n| {
        n.prop("kubelet.service", "ActiveState") == "failed"
    });
    let d = Daemon::start(
        &node,
        "start_grace_secs = 0\nrepair_backoff_secs = 1\n",
        "[fix]\nswapoff = false\n",
    );
    d.wait_metrics("unit-failed", |m| has_finding(m, "unit-failed"));
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(
        node.prop("kubelet.service", "ActiveState"),
        "failed",
        "reset without a start:\n{}",
        d.log()
    );
    // A person frees swap: seen through /proc/swaps, reset-failed and start.
    node.exec("swapoff /swapfile");
    node.wait_for("kubelet active after swap was freed", active);
    let log = d.log();
    assert!(!log.contains("unit-stopped"), "{log}");
    assert!(log.contains("reset-failed kubelet.service: done"), "{log}");
}

/// Problem 3 of issue 18: a swap line put back by a person or a tool is
/// reported, not reverted (one revert, then a report); with run.enforce
/// every put-back is reverted, and taint-guard's backups stay within
/// fix.fstab_backups.
fn a_swap_line_put_back_is_reported_not_reverted() {
    const LINE: &str = "/swapfile none swap sw 0 0";
    let node = Node::boot("dreadd", Kubelet::Kubeadm, |root| {
        let f = root.join("etc/fstab");
        let mut t = std::fs::read_to_string(&f).unwrap_or_default();
        t.push_str(&format!("{LINE}\n"));
        std::fs::write(f, t).unwrap();
    });
    kubelet_running(&node);
    node.exec("dd if=/dev/zero of=/swapfile bs=1M count=16 status=none && chmod 600 /swapfile && mkswap /swapfile >/dev/null");
    let live = |n: &Node| n.read("/etc/fstab").lines().any(|l| l == LINE);
    let backups = |n: &Node| {
        n.exec("ls /etc | grep -c '^fstab.taint-guard.*bak$' || true")
            .trim()
            .parse::<usize>()
            .unwrap_or(0)
    };
    let d = Daemon::start(
        &node,
        "start_grace_secs = 0\nrepair_backoff_secs = 1\nrepair_backoff_max_secs = 2\n",
        "[fix]\nfstab_backups = 2\n",
    );
    // At start the line is the seed incident's: commented out.
    node.wait_for("the line commented out", |n| !live(n));
    assert_eq!(backups(&node), 1);
    // Put back three times (Ansible re-run, a person): reported, never reverted.
    for i in 0..3 {
        let t = node.read("/etc/fstab");
        let t: String = t
            .lines()
            .filter(|l| *l != LINE)
            .map(|l| format!("{l}\n"))
            .collect();
        node.write("/etc/fstab", &t);
        std::thread::sleep(Duration::from_millis(300));
        node.write("/etc/fstab", &format!("{t}{LINE}\n"));
        d.wait_metrics("swap-in-fstab", |m| has_finding(m, "swap-in-fstab"));
        std::thread::sleep(Duration::from_secs(3));
        assert!(live(&node), "put-back {i} was reverted:\n{}", d.log());
    }
    assert_eq!(backups(&node), 1, "no edit, no backup");
    let log = d.log();
    assert!(
        log.contains("put back after taint-guard commented it out"),
        "{log}"
    );
    assert!(log.contains("reported, not reverted"), "{log}");
    // run.enforce: each put-back reverted; the backups kept to the cap.
    write_config(
        &node,
        d.port,
        "enforce = true\nstart_grace_secs = 0\nrepair_backoff_secs = 1\nrepair_backoff_max_secs = 2\n",
        "[fix]\nfstab_backups = 2\n",
    );
    d.signal(libc::SIGHUP);
    node.wait_for("reverted under enforce", |n| !live(n));
    for _ in 0..2 {
        let t = node.read("/etc/fstab");
        node.write("/etc/fstab", &format!("{t}{LINE}\n"));
        node.wait_for("reverted again", |n| !live(n));
    }
    assert_eq!(backups(&node), 2, "{}", node.exec("ls -l /etc"));
}

/// Problem 7 of issue 18: a ConfigMap volume updates by renaming `..data`
/// (config.toml is a symlink through it, never touched): the daemon
/// reloads on that.
fn config_reloaded_when_a_configmap_swaps_data() {
    let mut node = Node::boot("dcm", Kubelet::Kubeadm, |_| {});
    kubelet_running(&node);
    node.exec("systemctl disable kubelet.service");
    let cm = node.dir.join("cm");
    let port = free_port();
    let version = |name: &str, remediate: bool| {
        let d = cm.join(name);
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(
            d.join("config.toml"),
            format!("[run]\nmetrics_listen = \"127.0.0.1:{port}\"\nreport = false\nremediate = {remediate}\n"),
        )
        .unwrap();
    };
    version("..2026_12_02_a", false);
    std::os::unix::fs::symlink("..2026_12_02_a", cm.join("..data")).unwrap();
    std::os::unix::fs::symlink("..data/config.toml", cm.join("config.toml")).unwrap();
    node.config = cm.join("config.toml");
    let log = node.dir.join("daemon.log");
    let f = std::fs::File::create(&log).unwrap();
    let child = node
        .tg_command(&["-v", "run"])
        .stdin(Stdio::null())
        .stdout(f.try_clone().unwrap())
        .stderr(f)
        .spawn()
        .unwrap();
    let d = Daemon { child, port, log };
    d.wait_metrics("unit-disabled", |m| {
        m.contains(&finding("unit-disabled", "kubelet.service"))
    });
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(node.prop("kubelet.service", "UnitFileState"), "disabled");
    // kubelet's atomic update: a new timestamped dir, ..data_tmp, rename.
    version("..2026_12_02_b", true);
    std::os::unix::fs::symlink("..2026_12_02_b", cm.join("..data_tmp")).unwrap();
    std::fs::rename(cm.join("..data_tmp"), cm.join("..data")).unwrap();
    node.wait_for("kubelet enabled after the reload", |n| {
        n.prop("kubelet.service", "UnitFileState") == "enabled"
    });
    assert!(d.log().contains("configuration reloaded"), "{}", d.log());
}

/// kubelet's container runtime is watched like kubelet: its unit over
/// D-Bus (a stop is seen at once), and its socket file (a runtime that
/// starts listening clears `runtime-unreachable`), with no resync.
fn runtime_unit_and_socket_seen_without_resync() {
    let node = Node::boot("druntime", Kubelet::Kubeadm, |_| {});
    kubelet_running(&node);
    let d = Daemon::start(&node, "remediate = false\nresync_secs = 3600\n", "");
    let runtime = |m: &str, id: &str| {
        m.lines().any(|l| {
            l.starts_with(&format!("taint_guard_findings{{id=\"{id}\""))
                && l.contains("subject=\"containerd.service\"")
        })
    };
    assert!(
        !has_finding(&d.metrics(), "unit-stopped"),
        "{}",
        d.metrics()
    );
    node.exec("systemctl stop containerd.service");
    d.wait_metrics("containerd's stop", |m| runtime(m, "unit-stopped"));
    node.exec("systemctl start containerd.service");
    d.wait_metrics("containerd back", |m| !runtime(m, "unit-stopped"));

    // kubelet pointed at a socket no runtime serves yet (a change of its
    // flags file), then a runtime listening there.
    node.write(
        "/var/lib/kubelet/kubeadm-flags.env",
        "KUBELET_KUBEADM_ARGS=\"--container-runtime-endpoint=unix:///run/containerd/other.sock\"\n",
    );
    d.wait_metrics("runtime-unreachable", |m| {
        has_finding(m, "runtime-unreachable")
    });
    node.exec("systemd-run -q --unit=other-runtime /usr/bin/systemd-socket-activate --listen=/run/containerd/other.sock --accept /bin/true");
    d.wait_metrics("the socket answering", |m| {
        !has_finding(m, "runtime-unreachable")
    });
    // resync_secs = 3600, and each wait is bounded at 20 s: every change
    // above was an event.
}

fn main() -> std::process::ExitCode {
    harness::run(vec![
        harness::trial(
            "stopped_kubelet_restarted_after_grace_or_reported",
            stopped_kubelet_restarted_after_grace_or_reported,
        ),
        harness::trial(
            "disabled_kubelet_reenabled_unless_off_or_paused",
            disabled_kubelet_reenabled_unless_off_or_paused,
        ),
        harness::trial(
            "swap_and_fstab_changes_seen_without_resync",
            swap_and_fstab_changes_seen_without_resync,
        ),
        harness::trial(
            "runtime_unit_and_socket_seen_without_resync",
            runtime_unit_and_socket_seen_without_resync,
        ),
        harness::trial(
            "survives_dbus_restart_and_daemon_reexec",
            survives_dbus_restart_and_daemon_reexec,
        ),
        harness::trial("crash_loop_is_backed_off", crash_loop_is_backed_off),
        harness::trial(
            "service_unit_notify_watchdog_stop",
            service_unit_notify_watchdog_stop,
        ),
        harness::trial("idle_node_stays_idle", idle_node_stays_idle),
        harness::trial(
            "out_of_service_node_is_not_repaired",
            out_of_service_node_is_not_repaired,
        ),
        harness::trial(
            "steady_state_makes_no_api_requests",
            steady_state_makes_no_api_requests,
        ),
        harness::trial(
            "failing_kubelet_with_swap_on_comes_back_when_swap_is_freed",
            failing_kubelet_with_swap_on_comes_back_when_swap_is_freed,
        ),
        harness::trial(
            "a_swap_line_put_back_is_reported_not_reverted",
            a_swap_line_put_back_is_reported_not_reverted,
        ),
        harness::trial(
            "config_reloaded_when_a_configmap_swaps_data",
            config_reloaded_when_a_configmap_swaps_data,
        ),
    ])
}
