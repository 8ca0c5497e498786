//! Fleet simulation: the daemon's own decision and reporting code at fleet
//! scale, on a simulated clock. Prints figures; asserts none.
//!
//!     cargo bench --bench fleet                      # 5,000 nodes
//!     NODES=500 FLAP_PERCENT=1 BUDGET=50 cargo bench --bench fleet
//!
//! Each of NODES nodes is one `run::reconcile::Reconciler` (the daemon's
//! state machine, not a model of it) stepped when the daemon's shell would
//! step it: at its `wake_at`, at each resync (`run.resync_secs`, jittered as
//! the shell does) and when its observation changes. Every report it asks
//! for goes through `report::report_with` (the reporter's own GET and
//! writes) to an in-process API server that answers like kube-apiserver for
//! the calls used (GET Node; JSON merge patch of `nodes/NAME`; strategic
//! merge of `nodes/NAME/status`, conditions merged by type; create and
//! patch of Events) and counts every request by simulated second. The one
//! modelled part is the reporter's watch of its own Node: one WATCH per
//! node, first after a random delay up to `report_initial_delay_secs` (as
//! `run::reporter::task` does), again when the server ends it
//! (`report::watch_timeout` picks the `timeoutSeconds` the daemon sends),
//! counted as reads.
//!
//! Scenario: a site-wide power loss of OUTAGE_MIN minutes (default 90: every
//! condition's heartbeat is then older than `report.heartbeat_mins`); every
//! node's daemon starts in the same second; then HOURS (6) of steady state
//! in which FLAP_PERCENT (1) % of the nodes flap — kubelet fails for two
//! minutes every ten (two real changes each time). The config is the
//! shipped default unless CONFIG names a file.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use http::{Method, Request, Response, StatusCode};
use jiff::Timestamp;
use kube::client::Body;
use kube::Client;
use serde_json::{json, Value};

use taint_guard::config::Config;
use taint_guard::kubelet::{KubeletPolicy, SwapPolicy};
use taint_guard::observation::{FstabSwap, Observation, Probe, UnitObservation};
use taint_guard::report::{self, Retry};
use taint_guard::run::reconcile::{Input, Memory, OutOfService, Reconciler, Reported};
use taint_guard::run::schedule::jitter_down;
use taint_guard::swap::SwapNow;
use taint_guard::systemd::types::UnitState;

fn env<T: std::str::FromStr>(k: &str, d: T) -> T {
    std::env::var(k)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(d)
}

/// What the counting API server saw, per simulated second.
#[derive(Default)]
struct Counts {
    /// Simulated milliseconds since the daemons started.
    now_ms: u64,
    reads: BTreeMap<u64, u64>,
    writes: BTreeMap<u64, u64>,
    /// Writes per node (by name) since `steady_from`.
    steady_writes: BTreeMap<String, u64>,
    steady_from_ms: u64,
    nodes: BTreeMap<String, Value>,
    events: u64,
}

impl Counts {
    fn count(&mut self, write: bool, node: Option<&str>) {
        let s = self.now_ms / 1000;
        if write {
            *self.writes.entry(s).or_default() += 1;
            if let (Some(n), true) = (node, self.now_ms >= self.steady_from_ms) {
                *self.steady_writes.entry(n.to_string()).or_default() += 1;
            }
        } else {
            *self.reads.entry(s).or_default() += 1;
        }
    }
}

/// A Node as kubelet and, before the outage, taint-guard left it.
fn node_json(name: &str, heartbeat: Timestamp) -> Value {
    let cond = |t: &str, s: &str| {
        json!({"type": t, "status": s, "reason": "KubeletReady", "message": "kubelet is posting ready status",
               "lastHeartbeatTime": heartbeat.to_string(), "lastTransitionTime": "2026-12-01T08:00:00Z"})
    };
    json!({
        "apiVersion": "v1", "kind": "Node",
        "metadata": {"name": name, "uid": format!("uid-{name}"), "resourceVersion": "1",
            "labels": {"kubernetes.io/hostname": name, "kubernetes.io/os": "linux"},
            "annotations": {"taint-guard.io/status": "ok", "taint-guard.io/reboot-safe": "true",
                "taint-guard.io/findings": "[]", "taint-guard.io/since": "2026-12-01T08:00:00Z",
                "taint-guard.io/reporter": format!("host/{name}")}},
        "spec": {"podCIDR": "10.244.0.0/24"},
        "status": {
            "capacity": {"cpu": "2", "memory": "8Gi", "pods": "110"},
            "conditions": [cond("MemoryPressure", "False"), cond("DiskPressure", "False"),
                cond("PIDPressure", "False"), cond("Ready", "True"),
                {"type": "KubeletHostProblem", "status": "False", "reason": "KubeletHostOK",
                 "message": "kubelet.service is enabled and active; swap is off and off at boot",
                 "lastHeartbeatTime": heartbeat.to_string(), "lastTransitionTime": "2026-12-01T08:00:00Z"}],
            "nodeInfo": {"kubeletVersion": "v1.20.2"}}
    })
}

fn merge(target: &mut Value, patch: &Value) {
    match (target, patch) {
        (Value::Object(t), Value::Object(p)) => {
            for (k, v) in p {
                if v.is_null() {
                    t.remove(k);
                } else {
                    merge(t.entry(k.clone()).or_insert(Value::Null), v);
                }
            }
        }
        (t, p) => *t = p.clone(),
    }
}

/// The strategic merge of `status.conditions` (merge key `type`).
fn merge_conditions(node: &mut Value, patch: &Value) {
    let Some(new) = patch["status"]["conditions"].as_array() else {
        return;
    };
    let cs = node["status"]["conditions"]
        .as_array_mut()
        .expect("conditions");
    for c in new {
        match cs.iter_mut().find(|x| x["type"] == c["type"]) {
            Some(x) => merge(x, c),
            None => cs.push(c.clone()),
        }
    }
}

fn answer(status: StatusCode, v: &Value) -> Response<Body> {
    Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(Body::from(serde_json::to_vec(v).unwrap()))
        .unwrap()
}

async fn serve(req: Request<Body>, counts: &Mutex<Counts>) -> Response<Body> {
    use http_body_util::BodyExt;
    let (parts, body) = req.into_parts();
    let bytes = body
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let patch: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    let path = parts.uri.path().to_string();
    let seg: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let mut c = counts.lock().unwrap();
    match (&parts.method, seg.as_slice()) {
        (&Method::GET, ["api", "v1", "nodes", name]) => {
            c.count(false, Some(name));
            match c.nodes.get(*name) {
                Some(n) => answer(StatusCode::OK, n),
                None => answer(
                    StatusCode::NOT_FOUND,
                    &json!({"kind": "Status", "code": 404}),
                ),
            }
        }
        (&Method::PATCH, ["api", "v1", "nodes", name, rest @ ..]) => {
            c.count(true, Some(name));
            let name = name.to_string();
            let n = c.nodes.get_mut(&name).expect("known node");
            if rest == ["status"] {
                merge_conditions(n, &patch);
            } else {
                merge(&mut n["metadata"], &patch["metadata"]);
            }
            let rv = n["metadata"]["resourceVersion"]
                .as_str()
                .and_then(|s| s.parse::<u64>().ok())
                .unwrap_or(1);
            n["metadata"]["resourceVersion"] = json!((rv + 1).to_string());
            answer(StatusCode::OK, &n.clone())
        }
        (&Method::POST, ["api", "v1", "namespaces", _, "events"]) => {
            let node = patch["involvedObject"]["name"].as_str().map(String::from);
            c.count(true, node.as_deref());
            c.events += 1;
            let mut e = patch.clone();
            e["metadata"]["resourceVersion"] = json!("1");
            if e["metadata"]["name"].is_null() {
                e["metadata"]["name"] = json!(format!("ev-{}", c.events));
            }
            answer(StatusCode::CREATED, &e)
        }
        (&Method::PATCH, ["api", "v1", "namespaces", _, "events", _]) => {
            c.count(true, None);
            answer(StatusCode::OK, &patch)
        }
        _ => {
            c.count(false, None);
            answer(
                StatusCode::NOT_FOUND,
                &json!({"kind": "Status", "code": 404, "message": path}),
            )
        }
    }
}

fn kubelet(active: &str, sub: &str, result: &str) -> UnitState {
    UnitState {
        load_state: "loaded".into(),
        active_state: active.into(),
        sub_state: sub.into(),
        unit_file_state: "enabled".into(),
        result: result.into(),
        fragment_path: "/usr/lib/systemd/system/kubelet.service".into(),
        ..Default::default()
    }
}

fn observation(up: bool, at_us: u64) -> Observation {
    let mut st = if up {
        kubelet("active", "running", "success")
    } else {
        kubelet("failed", "failed", "exit-code")
    };
    if up {
        st.active_enter_timestamp = at_us;
    } else {
        st.inactive_enter_timestamp = at_us;
    }
    Observation {
        bus_error: None,
        pause: None,
        swap_cgroups: None,
        units: vec![UnitObservation {
            required: "kubelet.service".into(),
            name: "kubelet.service".into(),
            state: Probe::Ok(st),
        }],
        swap_now: Probe::Ok(SwapNow::default()),
        fstab: Probe::Ok(FstabSwap::empty("/etc/fstab")),
        swap_units: Probe::Ok(vec![]),
        swap_origins: Default::default(),
        kubelet_policy: Some(KubeletPolicy::Known(SwapPolicy::builtin(true))),
        virtualization: Probe::Ok(taint_guard::virt::Virtualization::None),
        kernel: Default::default(),
        kubelet_cert: None,
        clock: None,
        runtime: None,
        cgroup_driver: None,
        resolv_conf: None,
    }
}

struct Sim {
    rec: Reconciler,
    obs: Observation,
    flaps: bool,
    /// Simulated ms of the next resync, the next flap toggle, the next
    /// watch (re)connect and the reconciler's own wake.
    resync: u64,
    flap: u64,
    watch: u64,
    wake: Option<u64>,
    first_delivered: Option<u64>,
    changes_steady: u64,
    /// Reports that wrote anything, in steady state.
    bursts_steady: u64,
}

impl Sim {
    fn next(&self) -> u64 {
        let mut t = self.resync.min(self.watch);
        if self.flaps {
            t = t.min(self.flap);
        }
        self.wake.map_or(t, |w| t.min(w))
    }
}

fn main() {
    let n: usize = env("NODES", 5000);
    // Long enough for several hourly heartbeat refreshes per node (the
    // steady-state figure is a rate over whole refresh cycles).
    let hours: f64 = env("HOURS", 6.0);
    let flap_percent: f64 = env("FLAP_PERCENT", 1.0);
    let budget: f64 = env("BUDGET", 50.0);
    let outage_min: i64 = env("OUTAGE_MIN", 90);
    let cfg = match std::env::var("CONFIG") {
        Ok(p) => Config::load(Some(std::path::Path::new(&p))).expect("CONFIG"),
        Err(_) => Config::default(),
    };
    let mut cfg = cfg;
    // Reporting on, nothing repaired: the figures are the API server's.
    cfg.run.remediate = false;
    cfg.run.report = true;
    let end_ms = (hours * 3_600_000.0) as u64 + 600_000;
    let wall0: Timestamp = "2026-12-02T12:00:00Z".parse().unwrap();
    let t0 = Instant::now();
    let flap_every = 600_000u64;
    let flap_down = 120_000u64;
    let mut rng = fastrand::Rng::with_seed(7);

    let counts = Arc::new(Mutex::new(Counts {
        // Unknown until every node has reported once.
        steady_from_ms: u64::MAX,
        ..Counts::default()
    }));
    let names: Vec<String> = (0..n).map(|i| format!("node-{i:05}")).collect();
    {
        let mut c = counts.lock().unwrap();
        let hb = wall0 - jiff::SignedDuration::from_mins(outage_min);
        for name in &names {
            c.nodes.insert(name.clone(), node_json(name, hb));
        }
    }
    let flapping = ((n as f64) * flap_percent / 100.0).round() as usize;
    let resync = Duration::from_secs(cfg.run.resync_secs);
    let mut sims: Vec<Sim> = (0..n)
        .map(|i| Sim {
            rec: Reconciler::new(t0, &cfg, rng.u64(..), Memory::default()),
            obs: observation(true, wall0.as_microsecond() as u64),
            flaps: i < flapping,
            resync: jitter_down(resync, 0.1).as_millis() as u64,
            flap: rng.u64(0..flap_every),
            // The reporter's first watch: after a random delay up to
            // report_initial_delay_secs (run::reporter::task).
            watch: (cfg.run.report_initial_delay_secs as f64 * 1000.0 * rng.f64()) as u64,
            wake: Some(0),
            first_delivered: None,
            changes_steady: 0,
            bursts_steady: 0,
        })
        .collect();

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let started = Instant::now();
    let mut steps = 0u64;
    let mut reports = 0u64;
    let mut watches = 0u64;
    let steady_from = Arc::new(Mutex::new(None::<u64>));
    let mut delivered = 0usize;
    rt.block_on(async {
        let (service, mut handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
        let server_counts = counts.clone();
        tokio::spawn(async move {
            while let Some((req, send)) = handle.next_request().await {
                send.send_response(serve(req, &server_counts).await);
            }
        });
        let client = Client::new(service, "default");
        let mut queue: BinaryHeap<Reverse<(u64, usize)>> =
            (0..n).map(|i| Reverse((0, i))).collect();
        while let Some(Reverse((t, i))) = queue.pop() {
            if t > end_ms {
                break;
            }
            let s = &mut sims[i];
            if s.next() != t {
                continue; // superseded
            }
            counts.lock().unwrap().now_ms = t;
            let now = t0 + Duration::from_millis(t);
            let wall = wall0 + Duration::from_millis(t);
            if s.watch <= t {
                // The reporter's watch of its Node (modelled: one request).
                counts.lock().unwrap().count(false, None);
                watches += 1;
                s.watch = t + u64::from(report::watch_timeout(&mut rng)) * 1000 + 200;
            }
            if s.resync <= t {
                s.resync = t + jitter_down(resync, 0.1).as_millis() as u64;
            }
            if s.flaps && s.flap <= t {
                let up = s
                    .obs
                    .kubelet()
                    .and_then(|u| match &u.state {
                        Probe::Ok(st) => Some(st.active_state.as_str() == "active"),
                        _ => None,
                    })
                    .unwrap_or(true);
                s.obs = observation(!up, wall.as_microsecond() as u64);
                s.flap = t + if up {
                    flap_down
                } else {
                    flap_every - flap_down
                };
                if steady_from.lock().unwrap().is_some_and(|f| t >= f) {
                    s.changes_steady += 1;
                }
            }
            // The shell steps on every turn of its loop.
            loop {
                steps += 1;
                let d = s.rec.step(&Input {
                    now,
                    wall,
                    obs: &s.obs,
                    cfg: &cfg,
                    config_error: None,
                    out_of_service: &OutOfService::Known(false),
                });
                // Never again in the same instant (the shell's loop turns).
                s.wake = d
                    .wake_at
                    .map(|w| (w.saturating_duration_since(t0).as_millis() as u64).max(t + 1));
                let Some(job) = d.report else { break };
                reports += 1;
                let name = &names[i];
                let reporter = format!("host/{name}");
                let input = report::Input {
                    node: name,
                    node_source: "simulated",
                    identity: None,
                    assessment: &job.assessment,
                    actions: &job.events,
                    kubelet_unit: Some("kubelet.service"),
                    dry_run: false,
                    max_findings_bytes: cfg.report.findings_annotation_max_bytes,
                    heartbeat: Duration::from_secs(cfg.report.heartbeat_mins * 60),
                    timeout: Duration::from_secs(cfg.report.api_timeout_secs),
                    retry: Retry::default(),
                    reporter: Some(&reporter),
                };
                let out = report::report_with(client.clone(), &input, wall).await;
                if !out.writes.is_empty() && steady_from.lock().unwrap().is_some_and(|f| t >= f) {
                    s.bursts_steady += 1;
                }
                let r = if out.errors.is_empty() {
                    if s.first_delivered.is_none() {
                        s.first_delivered = Some(t);
                        delivered += 1;
                    }
                    Reported::Delivered
                } else {
                    Reported::Failed(out.summary.clone())
                };
                s.rec.reported(r, now);
            }
            if delivered == n && steady_from.lock().unwrap().is_none() {
                // Steady state starts a minute after the last first report.
                let f = t + 60_000;
                *steady_from.lock().unwrap() = Some(f);
                counts.lock().unwrap().steady_from_ms = f;
            }
            let s = &sims[i];
            queue.push(Reverse((s.next(), i)));
        }
    });
    let took = started.elapsed();

    let c = counts.lock().unwrap();
    let all_reported = sims
        .iter()
        .filter_map(|s| s.first_delivered)
        .max()
        .unwrap_or(0);
    let steady = steady_from.lock().unwrap().unwrap_or(end_ms);
    let span_s = (end_ms / 1000) as f64;
    let peak = |m: &BTreeMap<u64, u64>, from: u64, to: u64| {
        m.range(from / 1000..to / 1000)
            .map(|(_, v)| *v)
            .max()
            .unwrap_or(0)
    };
    let total = |m: &BTreeMap<u64, u64>| m.values().sum::<u64>();
    let steady_hours = (end_ms.saturating_sub(steady)) as f64 / 3_600_000.0;
    let per_node_hour = |flaps: bool| {
        let (mut w, mut b, mut ch, mut k) = (0u64, 0u64, 0u64, 0u64);
        for (i, s) in sims.iter().enumerate() {
            if s.flaps == flaps {
                w += c.steady_writes.get(&names[i]).copied().unwrap_or(0);
                b += s.bursts_steady;
                ch += s.changes_steady;
                k += 1;
            }
        }
        let k = k.max(1) as f64 * steady_hours;
        (w as f64 / k, b as f64 / k, ch as f64 / k)
    };
    let (sw, sb, _) = per_node_hour(false);
    let (fw, fb, fch) = per_node_hour(true);
    let startup_writes = peak(&c.writes, 0, steady);
    println!(
        "fleet simulation: {n} nodes, outage {outage_min} min, {hours} h steady with {flap_percent} % flapping ({flapping} nodes: kubelet fails 2 min in every 10); config: report_initial_delay_secs {}, report_min_interval_secs {}, report_heartbeat_mins {}, report.heartbeat_mins {}",
        cfg.run.report_initial_delay_secs,
        cfg.run.report_min_interval_secs,
        cfg.run.report_heartbeat_mins,
        cfg.report.heartbeat_mins
    );
    println!(
        "  simulated {:.0} s in {:.1} s: {steps} reconciler steps, {reports} reports, {watches} watches (modelled)",
        span_s,
        took.as_secs_f64()
    );
    println!(
        "  time until every node has reported: {:.1} s",
        all_reported as f64 / 1000.0
    );
    println!(
        "  start-up (until {:.0} s): peak {} writes/s (budget {budget}: {}), peak {} reads/s",
        steady as f64 / 1000.0,
        startup_writes,
        if (startup_writes as f64) <= budget {
            "under"
        } else {
            "OVER"
        },
        peak(&c.reads, 0, steady)
    );
    println!(
        "  whole run: mean {:.2} requests/s ({:.2} writes/s), peak {} requests/s",
        (total(&c.reads) + total(&c.writes)) as f64 / span_s,
        total(&c.writes) as f64 / span_s,
        {
            let mut all: BTreeMap<u64, u64> = c.reads.clone();
            for (k, v) in &c.writes {
                *all.entry(*k).or_default() += v;
            }
            peak(&all, 0, end_ms)
        }
    );
    println!(
        "  steady state ({steady_hours:.2} h): {sw:.2} writes per node per hour in {sb:.2} bursts (steady nodes; goal <= 1), flapping nodes {fw:.2} writes/h in {fb:.2} bursts/h for {fch:.1} real changes/h (goal <= 1 + changes; a change is one burst of up to 3 requests: annotations, condition, Event); peak {} writes/s, {} reads/s",
        peak(&c.writes, steady, end_ms),
        peak(&c.reads, steady, end_ms)
    );
    println!(
        "  sizing: here a first report is one write (the condition's stale heartbeat), spread over report_initial_delay_ok_secs ({} s): {:.1} writes/s on average for {n} nodes; keep nodes / report_initial_delay_ok_secs at about 2/3 of the budget",
        cfg.run.report_initial_delay_ok_secs,
        n as f64 / cfg.run.report_initial_delay_ok_secs.max(1) as f64
    );
}
