//! `/metrics` (Prometheus text format) and `/healthz`, served with the
//! hyper already in the dependency tree, on the daemon's own thread.

use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::{Request, Response, StatusCode};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;
use tokio::time::Instant;

use crate::apply::ActionOutcome;
use crate::evaluate::Assessment;
use crate::observation::Observation;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct FindingLabels {
    pub id: String,
    pub severity: String,
    pub subject: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StatusLabels {
    pub status: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RepairLabels {
    pub action: String,
    pub outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PolicyLabels {
    /// `known` or `unknown`.
    pub state: String,
    /// The check against the running kubelet (`matches`,
    /// `sources_changed`, `not_compared`), `none` when not made.
    pub argv_check: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ApiLabels {
    pub verb: String,
    pub outcome: String,
}

/// Every metric the daemon keeps.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    findings: Family<FindingLabels, Gauge>,
    status: Family<StatusLabels, Gauge>,
    reboot_safe: Gauge,
    after_reboot: Gauge,
    kubelet_policy: Family<PolicyLabels, Gauge>,
    repairs: Family<RepairLabels, Counter>,
    evaluations: Counter,
    evaluation_seconds: Histogram,
    api_requests: Family<ApiLabels, Counter>,
    last_report: Gauge,
    dbus_reconnects: Counter,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("taint_guard");
        let m = Metrics {
            findings: Family::default(),
            status: Family::default(),
            reboot_safe: Gauge::default(),
            after_reboot: Gauge::default(),
            kubelet_policy: Family::default(),
            repairs: Family::default(),
            evaluations: Counter::default(),
            evaluation_seconds: Histogram::new(exponential_buckets(0.0005, 2.0, 14)),
            api_requests: Family::default(),
            last_report: Gauge::default(),
            dbus_reconnects: Counter::default(),
            registry: Registry::default(),
        };
        registry.register(
            "findings",
            "Current findings (1 per finding) by id, severity and subject",
            m.findings.clone(),
        );
        registry.register(
            "status",
            "The verdict: 1 for the current status (ok, warning, critical, unknown)",
            m.status.clone(),
        );
        registry.register(
            "reboot_safe",
            "1: kubelet comes back after a reboot; 0: it does not; -1: unknown",
            m.reboot_safe.clone(),
        );
        registry.register(
            "after_reboot",
            "What will differ after the next boot without keeping the Node from going Ready (modules, sysctls in effect now and not persisted): how many",
            m.after_reboot.clone(),
        );
        registry.register(
            "kubelet_policy",
            "1 for kubelet's swap policy as last derived: known or unknown, and its check against the running kubelet; none when no kubelet unit",
            m.kubelet_policy.clone(),
        );
        registry.register(
            "repairs",
            "Repairs made, by action and outcome",
            m.repairs.clone(),
        );
        registry.register("evaluations", "Evaluations run", m.evaluations.clone());
        registry.register(
            "evaluation_duration_seconds",
            "Time to observe and judge the node (repairs excluded)",
            m.evaluation_seconds.clone(),
        );
        registry.register(
            "api_requests",
            "Kubernetes API requests, by verb and outcome (failed requests under verb=request, outcome=the report state)",
            m.api_requests.clone(),
        );
        registry.register(
            "last_report_success_timestamp_seconds",
            "Unix time of the last report that reached the API server",
            m.last_report.clone(),
        );
        registry.register(
            "dbus_reconnects",
            "Connections to the system bus made again after one was lost",
            m.dbus_reconnects.clone(),
        );
        Metrics { registry, ..m }
    }

    pub fn evaluated(&self, a: &Assessment, took: Duration) {
        self.evaluations.inc();
        self.evaluation_seconds.observe(took.as_secs_f64());
        self.findings.clear();
        for f in &a.findings {
            self.findings
                .get_or_create(&FindingLabels {
                    id: f.id().into(),
                    severity: f.severity.to_string(),
                    subject: f.subject(),
                })
                .set(1);
        }
        for s in ["ok", "warning", "critical", "unknown"] {
            self.status
                .get_or_create(&StatusLabels { status: s.into() })
                .set(i64::from(a.status.as_str() == s));
        }
        self.reboot_safe.set(match a.reboot_safe {
            Some(true) => 1,
            Some(false) => 0,
            None => -1,
        });
        self.after_reboot.set(a.after_reboot.len() as i64);
    }

    /// kubelet's swap policy as the last observation derived it.
    pub fn observed(&self, obs: &Observation) {
        use crate::kubelet::{running::ArgvCheck, KubeletPolicy};
        self.kubelet_policy.clear();
        let Some(policy) = &obs.kubelet_policy else {
            return;
        };
        let (state, check) = match policy {
            KubeletPolicy::Known(p) => (
                "known",
                match &p.argv_check {
                    Some(ArgvCheck::Matches { .. }) => "matches",
                    Some(ArgvCheck::SourcesChanged { .. }) => "sources_changed",
                    Some(ArgvCheck::NotCompared { .. }) => "not_compared",
                    None => "none",
                },
            ),
            KubeletPolicy::Unknown(_) => ("unknown", "none"),
        };
        self.kubelet_policy
            .get_or_create(&PolicyLabels {
                state: state.into(),
                argv_check: check.into(),
            })
            .set(1);
    }

    pub fn repaired(&self, outcomes: &[ActionOutcome]) {
        for o in outcomes {
            self.repairs
                .get_or_create(&RepairLabels {
                    action: o.id.clone(),
                    outcome: o.outcome.as_str().into(),
                })
                .inc();
        }
    }

    pub fn api(&self, verb: &str, outcome: &str, n: u64) {
        if n > 0 {
            self.api_requests
                .get_or_create(&ApiLabels {
                    verb: verb.into(),
                    outcome: outcome.into(),
                })
                .inc_by(n);
        }
    }

    pub fn reported(&self, unix_secs: i64) {
        self.last_report.set(unix_secs);
    }

    pub fn reconnected(&self) {
        self.dbus_reconnects.inc();
    }

    pub fn encode(&self) -> String {
        let mut s = String::new();
        // Writing to a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut s, &self.registry);
        s
    }
}

/// What /healthz looks at.
#[derive(Debug)]
pub struct Health {
    pub bus_down_since: Mutex<Option<Instant>>,
    pub last_turn: Mutex<Instant>,
    /// 503 past this much bus downtime.
    pub bus_bound: Mutex<Duration>,
    /// 503 when the loop has not turned for this long.
    pub stall_bound: Mutex<Duration>,
}

impl Health {
    pub fn new(bus_bound: Duration, stall_bound: Duration) -> Health {
        Health {
            bus_down_since: Mutex::new(None),
            last_turn: Mutex::new(Instant::now()),
            bus_bound: Mutex::new(bus_bound),
            stall_bound: Mutex::new(stall_bound),
        }
    }

    fn lock<T: Copy>(m: &Mutex<T>) -> T {
        *m.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn turned(&self) {
        *self.last_turn.lock().unwrap_or_else(|p| p.into_inner()) = Instant::now();
    }

    pub fn bus(&self, up: bool) {
        let mut g = self
            .bus_down_since
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        match (up, *g) {
            (true, _) => *g = None,
            (false, None) => *g = Some(Instant::now()),
            (false, Some(_)) => {}
        }
    }

    /// /healthz: (healthy, why not) — the loop turns and systemd's bus is
    /// reachable (or was, within the bound).
    pub fn check(&self, now: Instant) -> (bool, String) {
        if let Some(since) = Health::lock(&self.bus_down_since) {
            let down = now.saturating_duration_since(since);
            if down > Health::lock(&self.bus_bound) {
                return (
                    false,
                    format!(
                        "systemd's bus unreachable for {}s (run.health_bus_down_secs)",
                        down.as_secs()
                    ),
                );
            }
        }
        self.check_live(now)
    }

    /// /livez: (alive, why not) — the loop turns, whatever the bus does. A
    /// restart cannot bring systemd's bus back, and the loop reconnects by
    /// itself: what a liveness probe should restart for is a stuck loop.
    pub fn check_live(&self, now: Instant) -> (bool, String) {
        let idle = now.saturating_duration_since(Health::lock(&self.last_turn));
        if idle > Health::lock(&self.stall_bound) {
            return (
                false,
                format!("the event loop has not turned for {}s", idle.as_secs()),
            );
        }
        (true, "ok".into())
    }
}

fn respond(status: StatusCode, ctype: &str, body: String) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = status;
    if let Ok(v) = hyper::header::HeaderValue::from_str(ctype) {
        r.headers_mut().insert(hyper::header::CONTENT_TYPE, v);
    }
    r
}

fn route(req: &Request<Incoming>, m: &Metrics, h: &Health) -> Response<Full<Bytes>> {
    match (req.method(), req.uri().path()) {
        (&hyper::Method::GET, "/metrics") => respond(
            StatusCode::OK,
            "text/plain; version=0.0.4; charset=utf-8",
            m.encode(),
        ),
        (&hyper::Method::GET, path @ ("/healthz" | "/livez")) => {
            let (ok, why) = match path {
                "/healthz" => h.check(Instant::now()),
                _ => h.check_live(Instant::now()),
            };
            let code = if ok {
                StatusCode::OK
            } else {
                StatusCode::SERVICE_UNAVAILABLE
            };
            respond(code, "text/plain; charset=utf-8", format!("{why}\n"))
        }
        _ => respond(StatusCode::NOT_FOUND, "text/plain", "not found\n".into()),
    }
}

/// Bind `addr` (fails fast, so a bad address is said at start).
pub async fn bind(addr: SocketAddr) -> std::io::Result<tokio::net::TcpListener> {
    tokio::net::TcpListener::bind(addr).await
}

/// What one client may hold of the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// A request's head must arrive within this, the first request's and
    /// each next one's on a kept-alive connection: a client that sends half
    /// a request (slowloris) or idles is disconnected.
    pub header_read_timeout: Duration,
    /// Connections served at once. Past it a new connection is closed at
    /// once, and the ones being served go on.
    pub max_connections: usize,
}

impl Default for Limits {
    /// kubelet's probes and a scraper or two need a handful; 10 s is twice
    /// the DaemonSet's probe timeout.
    fn default() -> Self {
        Limits {
            header_read_timeout: Duration::from_secs(10),
            max_connections: 16,
        }
    }
}

/// Serve until the task is dropped, with [`Limits::default`].
pub async fn serve(listener: tokio::net::TcpListener, m: Rc<Metrics>, h: Arc<Health>) {
    serve_with(listener, m, h, Limits::default()).await
}

/// Serve until the task is dropped. HTTP/1 only; one task per connection,
/// at most `limits.max_connections` of them.
pub async fn serve_with(
    listener: tokio::net::TcpListener,
    m: Rc<Metrics>,
    h: Arc<Health>,
    limits: Limits,
) {
    let slots = Arc::new(tokio::sync::Semaphore::new(limits.max_connections));
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            // EMFILE and the like: back off instead of spinning.
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        };
        // Past the cap: closed at once, unanswered. Waiting for a slot
        // instead would let idle connections queue up without bound.
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            drop(stream);
            continue;
        };
        let (m, h) = (m.clone(), h.clone());
        tokio::task::spawn_local(async move {
            let _slot = slot;
            let svc = hyper::service::service_fn(move |req: Request<Incoming>| {
                let r = route(&req, &m, &h);
                async move { Ok::<_, std::convert::Infallible>(r) }
            });
            let io = hyper_util::rt::TokioIo::new(stream);
            // The header read timeout needs hyper's timer; it runs from the
            // moment hyper waits for a request head, so it also ends a
            // kept-alive connection left idle.
            let _ = hyper::server::conn::http1::Builder::new()
                .timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(limits.header_read_timeout)
                .serve_connection(io, svc)
                .await;
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use crate::evaluate::{Finding, FindingKind, Severity};

    #[test]
    fn findings_come_and_go() {
        let m = Metrics::new();
        let f = Finding::new(
            FindingKind::UnitInactive {
                unit: "kubelet.service".into(),
            },
            Severity::Critical,
            "x".into(),
            None,
            true,
        );
        let a = crate::evaluate::assess(vec![f], &Config::default());
        m.evaluated(&a, Duration::from_millis(3));
        let text = m.encode();
        assert!(
            text.contains(r#"taint_guard_findings{id="unit-inactive",severity="critical",subject="kubelet.service"} 1"#),
            "{text}"
        );
        assert!(text.contains(r#"taint_guard_status{status="critical"} 1"#));
        assert!(text.contains("taint_guard_reboot_safe 1"));
        let ok = crate::evaluate::assess(vec![], &Config::default());
        m.evaluated(&ok, Duration::from_millis(3));
        let text = m.encode();
        assert!(!text.contains("unit-inactive"), "{text}");
        assert!(text.contains("taint_guard_evaluations_total 2"), "{text}");
    }

    #[test]
    fn kubelet_policy_state_and_check() {
        use crate::kubelet::{running::ArgvCheck, KubeletPolicy, SwapPolicy};
        let m = Metrics::new();
        let mut p = SwapPolicy::builtin(true);
        p.argv_check = Some(ArgvCheck::SourcesChanged {
            pid: 7,
            changed: vec!["/etc/default/kubelet".into()],
        });
        let mut obs: Observation = serde_json::from_value(serde_json::json!({
            "units": [], "swap_now": {"failed": "x"}, "fstab": {"failed": "x"},
            "swap_units": {"failed": "x"}, "kubelet_policy": null
        }))
        .unwrap();
        obs.kubelet_policy = Some(KubeletPolicy::Known(p));
        m.observed(&obs);
        let text = m.encode();
        assert!(
            text.contains(
                r#"taint_guard_kubelet_policy{state="known",argv_check="sources_changed"} 1"#
            ),
            "{text}"
        );
        obs.kubelet_policy = Some(KubeletPolicy::unknown("x"));
        m.observed(&obs);
        let text = m.encode();
        assert!(
            text.contains(r#"taint_guard_kubelet_policy{state="unknown",argv_check="none"} 1"#),
            "{text}"
        );
        assert!(!text.contains("sources_changed"), "{text}");
        obs.kubelet_policy = None;
        m.observed(&obs);
        assert!(!m.encode().contains("taint_guard_kubelet_policy{"));
    }

    #[tokio::test(start_paused = true)]
    async fn livez_turns_503_when_the_loop_stalls() {
        let h = Health::new(Duration::from_secs(60), Duration::from_secs(600));
        tokio::time::advance(Duration::from_secs(599)).await;
        assert!(h.check_live(Instant::now()).0);
        tokio::time::advance(Duration::from_secs(2)).await;
        let (ok, why) = h.check_live(Instant::now());
        assert!(!ok && why.contains("has not turned"), "{why}");
        assert!(!h.check(Instant::now()).0);
        h.turned();
        assert!(h.check_live(Instant::now()).0);
    }

    #[tokio::test(start_paused = true)]
    async fn healthz_turns_503_when_the_bus_stays_down() {
        let h = Health::new(Duration::from_secs(60), Duration::from_secs(3600));
        assert!(h.check(Instant::now()).0);
        h.bus(false);
        tokio::time::advance(Duration::from_secs(30)).await;
        h.turned();
        assert!(h.check(Instant::now()).0);
        tokio::time::advance(Duration::from_secs(31)).await;
        let (ok, why) = h.check(Instant::now());
        assert!(!ok && why.contains("bus unreachable"), "{why}");
        // Alive all the same: the loop turns.
        assert!(h.check_live(Instant::now()).0);
        h.bus(true);
        assert!(h.check(Instant::now()).0);
    }

    /// The server on a LocalSet (it serves with spawn_local), with `limits`;
    /// its address.
    async fn server(limits: Limits) -> SocketAddr {
        let l = bind("127.0.0.1:0".parse().unwrap()).await.unwrap();
        let addr = l.local_addr().unwrap();
        let h = Arc::new(Health::new(
            Duration::from_secs(60),
            Duration::from_secs(600),
        ));
        tokio::task::spawn_local(serve_with(l, Rc::new(Metrics::new()), h, limits));
        addr
    }

    /// A client on its own thread (blocking std I/O, so the server's task
    /// runs meanwhile): what `f` returns.
    async fn client<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
        tokio::task::spawn_blocking(f).await.unwrap()
    }

    /// Read until the server closes the connection, for at most `bound`:
    /// the bytes read and whether it closed (EOF or reset) in time.
    fn read_until_closed(s: &mut std::net::TcpStream, bound: Duration) -> (Vec<u8>, bool) {
        use std::io::Read;
        let deadline = std::time::Instant::now() + bound;
        let mut got = Vec::new();
        let mut buf = [0u8; 4096];
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            if left.is_zero() {
                return (got, false);
            }
            s.set_read_timeout(Some(left)).unwrap();
            match s.read(&mut buf) {
                Ok(0) => return (got, true),
                Ok(n) => got.extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return (got, true),
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) =>
                {
                    return (got, false)
                }
                Err(e) => panic!("read: {e}"),
            }
        }
    }

    /// GET `path` on a new connection: the status line, or None when the
    /// connection is closed without an answer.
    fn get(addr: SocketAddr, path: &str) -> Option<String> {
        use std::io::Write;
        let mut s = std::net::TcpStream::connect(addr).unwrap();
        // The server may have closed it already: a failed write is no answer.
        let _ = write!(
            s,
            "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        );
        let (got, closed) = read_until_closed(&mut s, Duration::from_secs(5));
        assert!(closed, "GET {path}: no close within 5 s");
        let text = String::from_utf8_lossy(&got).into_owned();
        text.lines().next().map(str::to_string)
    }

    /// Slowloris: half a request head, then nothing. The server closes
    /// the connection once the header read timeout has passed (and not
    /// before), with no answer; others are served meanwhile.
    #[tokio::test]
    async fn a_client_sending_half_a_request_is_disconnected() {
        tokio::task::LocalSet::new()
            .run_until(async {
                let timeout = Duration::from_millis(300);
                let addr = server(Limits {
                    header_read_timeout: timeout,
                    max_connections: 4,
                })
                .await;
                let (got, closed, took) = client(move || {
                    use std::io::Write;
                    let mut s = std::net::TcpStream::connect(addr).unwrap();
                    let t = std::time::Instant::now();
                    s.write_all(b"GET /livez HTTP/1.1\r\nHost: x\r\n").unwrap();
                    let (got, closed) = read_until_closed(&mut s, Duration::from_secs(5));
                    (got, closed, t.elapsed())
                })
                .await;
                assert!(
                    closed,
                    "still open after 5 s (header read timeout {timeout:?})"
                );
                assert!(got.is_empty(), "{}", String::from_utf8_lossy(&got));
                assert!(took >= timeout, "closed after {took:?}, before the timeout");
                // A client that sends nothing at all: the same.
                let (_, closed) = client(move || {
                    let mut s = std::net::TcpStream::connect(addr).unwrap();
                    read_until_closed(&mut s, Duration::from_secs(5))
                })
                .await;
                assert!(closed, "a silent connection still open after 5 s");
                let status = client(move || get(addr, "/livez")).await;
                assert_eq!(status.as_deref(), Some("HTTP/1.1 200 OK"));
            })
            .await;
    }

    /// Connections past the cap are closed at once, unanswered; once one
    /// held connection goes, /livez answers again.
    #[tokio::test]
    async fn connections_past_the_cap_are_closed_at_once() {
        tokio::task::LocalSet::new()
            .run_until(async {
                let addr = server(Limits {
                    // Long enough that only the client's close frees a slot.
                    header_read_timeout: Duration::from_secs(30),
                    max_connections: 2,
                })
                .await;
                let (held, over) = client(move || {
                    let held: Vec<_> = (0..2)
                        .map(|_| std::net::TcpStream::connect(addr).unwrap())
                        .collect();
                    // Both are accepted (and hold their slots) once a third
                    // connection is refused; retried, as accept runs apart.
                    let over = get(addr, "/livez");
                    (held, over)
                })
                .await;
                assert_eq!(over, None, "a connection past the cap was answered");
                let (status, _held) = client(move || {
                    let mut held = held;
                    drop(held.pop());
                    let deadline = std::time::Instant::now() + Duration::from_secs(5);
                    loop {
                        let s = get(addr, "/livez");
                        if s.is_some() || std::time::Instant::now() > deadline {
                            return (s, held);
                        }
                        std::thread::sleep(Duration::from_millis(20));
                    }
                })
                .await;
                assert_eq!(status.as_deref(), Some("HTTP/1.1 200 OK"));
            })
            .await;
    }
}
