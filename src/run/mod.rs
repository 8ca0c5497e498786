//! `taint-guard run`: the node daemon. A thin shell around the pure
//! [`reconcile::Reconciler`]: it owns the event sources, debouncing and
//! timers, runs the effects the reconciler asks for (`apply`, the
//! reporting actor) and feeds their results back. No repair or report rule
//! lives here.
//!
//! One current-thread runtime. Every await of the loop — observing
//! systemd, applying a repair, waiting for events — runs inside one
//! [`Guard`] that answers SIGTERM/SIGINT and keeps the systemd watchdog fed,
//! and observing has an overall deadline: a PID 1 busy with a slow
//! daemon-reload neither trips `WatchdogSec=` nor turns SIGTERM into
//! SIGKILL.

pub mod metrics;
pub mod reconcile;
pub mod reporter;
pub mod schedule;
pub mod sources;

use std::future::Future;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::{mpsc, watch};
use tokio::time::{sleep_until, Instant};

use crate::apply;
use crate::config::{Config, ConfigError};
use crate::hostroot::HostRoot;
use crate::observation::Observation;
use crate::observe::{self, Sources};
use crate::systemd::{Systemd, UnitManager};

use metrics::{Health, Metrics};
use reconcile::{Decision, Input, Level, OutOfService, Reconciler, Reported};
use schedule::{jitter_down, Debounce};
use sources::{Bus, FileEvent, FileWatch, SwapsWatch, Wake};

pub use reconcile::status_line;

/// Everything `run` is started with (from the command line).
#[derive(Debug, Clone)]
pub struct Options {
    pub host: HostRoot,
    pub config_path: Option<PathBuf>,
    pub proc_swaps: PathBuf,
    pub cgroup_root: PathBuf,
    pub assume_virtualization: Option<String>,
    pub node_name: Option<String>,
    pub kubeconfig: Option<PathBuf>,
}

/// Observing systemd takes at most this long in all; past it the node is
/// judged from what could be read (systemd's part unknown).
pub const OBSERVE_DEADLINE: Duration = Duration::from_secs(20);

/// Where the daemon keeps the last out-of-service value it read (under the
/// host root), for its own restarts and for the boot unit after a reboot
/// (so not in /run, which the reboot empties).
pub const OUT_OF_SERVICE_FILE: &str = "/var/lib/taint-guard/out-of-service.json";

/// Where the daemon keeps what must outlive it ([`reconcile::Memory`]: the
/// people's decisions it honours, the lines it commented out).
pub const MEMORY_FILE: &str = "/var/lib/taint-guard/memory.json";

/// The kept out-of-service value's `at` is refreshed at most this often.
const KEEP_EVERY: jiff::SignedDuration = jiff::SignedDuration::from_mins(10);

/// Run until SIGTERM or SIGINT; the exit code.
pub fn run(opts: Options) -> u8 {
    let cfg = match Config::load(opts.config_path.as_deref()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("taint-guard: invalid config: {e}");
            return crate::exit::CONFIG;
        }
    };
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("taint-guard: cannot start runtime: {e}");
            return crate::exit::UNKNOWN;
        }
    };
    let local = tokio::task::LocalSet::new();
    let code = local.block_on(&rt, start(opts, cfg));
    // Drop the tasks inside the runtime (zbus deregisters its match rules
    // on drop), then abandon what is left (a swapoff thread past its
    // bound) at once.
    {
        let _rt = rt.enter();
        drop(local);
    }
    rt.shutdown_background();
    code
}

/// systemd's service notifications (no-ops outside a notify service).
mod notify {
    use sd_notify::NotifyState;

    pub fn ready(status: &str) {
        let _ = sd_notify::notify(&[NotifyState::Ready, NotifyState::Status(status)]);
    }
    pub fn status(status: &str) {
        let _ = sd_notify::notify(&[NotifyState::Status(status)]);
    }
    pub fn watchdog() {
        let _ = sd_notify::notify(&[NotifyState::Watchdog]);
    }
    pub fn stopping() {
        let _ = sd_notify::notify(&[NotifyState::Stopping]);
    }
}

/// Runs a future while answering a stop request and feeding the watchdog.
pub struct Guard {
    stop: mpsc::Receiver<()>,
    stopped: bool,
    /// Half of `WATCHDOG_USEC`.
    every: Option<Duration>,
    next: Option<Instant>,
    pet: Box<dyn FnMut()>,
}

impl Guard {
    pub fn new(
        stop: mpsc::Receiver<()>,
        watchdog: Option<Duration>,
        pet: Box<dyn FnMut()>,
    ) -> Guard {
        let every = watchdog.map(|w| w / 2);
        Guard {
            stop,
            stopped: false,
            every,
            next: every.map(|e| Instant::now() + e),
            pet,
        }
    }

    /// `fut`'s output, or None when a stop was asked for first.
    pub async fn run<F: Future>(&mut self, fut: F) -> Option<F::Output> {
        if self.stopped {
            return None;
        }
        tokio::pin!(fut);
        loop {
            let far = Instant::now() + Duration::from_secs(86400);
            tokio::select! {
                biased;
                _ = self.stop.recv() => {
                    self.stopped = true;
                    return None;
                }
                _ = sleep_until(self.next.unwrap_or(far)), if self.next.is_some() => {
                    (self.pet)();
                    self.next = self.every.map(|e| Instant::now() + e);
                }
                r = &mut fut => return Some(r),
            }
        }
    }
}

/// Observe with an overall deadline: past it, systemd's part is unknown.
pub async fn observe_bounded<S: UnitManager>(
    sd: Result<&S, &str>,
    src: &Sources,
    cfg: &Config,
    deadline: Duration,
) -> Observation {
    match tokio::time::timeout(deadline, observe::observe(sd, src, cfg)).await {
        Ok(o) => o,
        Err(_) => {
            let why = format!(
                "systemd did not answer within {}s (PID 1 busy?)",
                deadline.as_secs()
            );
            observe::observe::<S>(Err(&why), src, cfg).await
        }
    }
}

/// The last out-of-service value read, as kept in /run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeptOutOfService {
    pub out_of_service: bool,
    pub at: Timestamp,
    pub node: String,
}

/// Read what the daemon kept (None: nothing, or unreadable).
pub fn kept_out_of_service(host: &HostRoot) -> Option<KeptOutOfService> {
    let text = std::fs::read_to_string(host.path(OUT_OF_SERVICE_FILE)).ok()?;
    serde_json::from_str(&text).ok()
}

/// Read the daemon's [`reconcile::Memory`] (empty when none or unreadable).
pub fn kept_memory(host: &HostRoot) -> reconcile::Memory {
    std::fs::read_to_string(host.path(MEMORY_FILE))
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok())
        .unwrap_or_default()
}

/// Write `value` as JSON to `node_path` under the host root, atomically; a
/// read-only host (the report-only pod) is said at debug level only.
fn keep<T: Serialize>(host: &HostRoot, node_path: &str, value: &T) {
    let path = host.path(node_path);
    let r = (|| -> anyhow::Result<()> {
        if let Some(d) = path.parent() {
            std::fs::create_dir_all(d)?;
        }
        crate::files::write_atomic(&path, serde_json::to_string(value)?.as_bytes(), None)
    })();
    if let Err(e) = r {
        tracing::debug!("cannot keep {}: {e:#}", path.display());
    }
}

fn keep_out_of_service(host: &HostRoot, k: &KeptOutOfService) {
    keep(host, OUT_OF_SERVICE_FILE, k);
}

struct Shell {
    opts: Options,
    cfg: Config,
    config_error: Option<ConfigError>,
    src: Sources,
    bus: watch::Receiver<Bus>,
    units_tx: watch::Sender<Vec<String>>,
    metrics: Rc<Metrics>,
    health: Arc<Health>,
    files: Option<FileWatch>,
    reports: Option<mpsc::Sender<reporter::Request>>,
    oos: OutOfService,
    oos_kept: Option<KeptOutOfService>,
    /// Observed before: the reporter has been asked to connect.
    connected: bool,
    /// The last `STATUS=` line.
    status: String,
    /// READY=1 was sent.
    ready: bool,
    /// The reconciler's memory as last written.
    kept: reconcile::Memory,
}

async fn start(opts: Options, cfg: Config) -> u8 {
    let metrics = Rc::new(Metrics::new());
    let health = Arc::new(Health::new(
        Duration::from_secs(cfg.run.health_bus_down_secs),
        stall_bound(&cfg),
    ));
    if !cfg.run.metrics_listen.is_empty() {
        // Validated when the config was parsed.
        let addr = cfg.run.metrics_listen.parse().expect("validated");
        match metrics::bind(addr).await {
            Ok(l) => {
                tracing::info!("serving /metrics, /healthz and /livez on {addr}");
                tokio::task::spawn_local(metrics::serve(l, metrics.clone(), health.clone()));
            }
            Err(e) => {
                eprintln!("taint-guard: cannot listen on {addr} (run.metrics_listen): {e}");
                return crate::exit::CONFIG;
            }
        }
    }
    let (Ok(mut term), Ok(mut int), Ok(hup)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
        signal(SignalKind::hangup()),
    ) else {
        eprintln!("taint-guard: cannot install signal handlers");
        return crate::exit::UNKNOWN;
    };
    let (stop_tx, stop_rx) = mpsc::channel(1);
    tokio::task::spawn_local(async move {
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
        let _ = stop_tx.send(()).await;
    });
    let mut guard = Guard::new(
        stop_rx,
        sd_notify::watchdog_enabled(),
        Box::new(notify::watchdog),
    );

    let (wake_tx, wake_rx) = mpsc::channel::<Wake>(256);
    let (bus_tx, bus_rx) = watch::channel(Bus::Connecting);
    let (units_tx, units_rx) = watch::channel(watched_units(&cfg));
    tokio::task::spawn_local(sources::bus_task(
        units_rx,
        wake_tx,
        bus_tx,
        metrics.clone(),
    ));
    let (msg_tx, msg_rx) = mpsc::channel::<reporter::Message>(16);
    let reports = if cfg.run.report {
        let (tx, rx) = mpsc::channel(2);
        let ropts = crate::report::Options {
            node_name: opts.node_name.clone(),
            kubeconfig: opts.kubeconfig.clone(),
            host: opts.host.clone(),
            timeout: Duration::from_secs(cfg.report.api_timeout_secs),
            max_findings_bytes: cfg.report.findings_annotation_max_bytes,
            heartbeat: Duration::from_secs(cfg.report.heartbeat_mins.saturating_mul(60)),
        };
        tokio::task::spawn_local(reporter::task(
            ropts,
            crate::report::reporter_id(),
            Duration::from_secs(cfg.run.resync_secs),
            // Nothing kept from an earlier run: whether repairs are held is
            // unknown until the first read, so the watch opens at once.
            match kept_out_of_service(&opts.host) {
                Some(_) => Duration::from_secs(cfg.run.report_initial_delay_secs),
                None => Duration::ZERO,
            },
            rx,
            msg_tx,
            metrics.clone(),
        ));
        Some(tx)
    } else {
        drop(msg_tx);
        None
    };
    let swaps = match SwapsWatch::open(&opts.proc_swaps) {
        Ok(w) => Some(w),
        Err(e) => {
            tracing::warn!(
                "cannot watch {} for swap changes ({e}): seen at the resync only",
                opts.proc_swaps.display()
            );
            None
        }
    };
    let files = match FileWatch::new() {
        Ok(w) => Some(w),
        Err(e) => {
            tracing::warn!("inotify unavailable ({e}): file changes seen at the resync only");
            None
        }
    };
    let oos_kept = kept_out_of_service(&opts.host);
    let oos = match &oos_kept {
        Some(k) => OutOfService::LastKnown {
            value: k.out_of_service,
            at: k.at,
        },
        None => OutOfService::Unknown,
    };
    let mut shell = Shell {
        src: Sources {
            host: opts.host.clone(),
            proc_swaps: opts.proc_swaps.clone(),
            cgroup_root: opts.cgroup_root.clone(),
            assume_virtualization: opts.assume_virtualization.clone(),
        },
        opts,
        cfg,
        config_error: None,
        bus: bus_rx,
        units_tx,
        metrics,
        health,
        files,
        reports,
        oos,
        oos_kept,
        connected: false,
        status: String::new(),
        ready: false,
        kept: reconcile::Memory::default(),
    };
    let seed = fastrand::u64(..);
    shell.kept = kept_memory(&shell.opts.host);
    let mut rec = Reconciler::new(now(), &shell.cfg, seed, shell.kept.clone());
    let code = shell
        .main_loop(&mut rec, &mut guard, wake_rx, msg_rx, hup, swaps)
        .await;
    notify::stopping();
    tracing::info!("stopping");
    code
}

impl Shell {
    async fn main_loop(
        &mut self,
        rec: &mut Reconciler,
        guard: &mut Guard,
        mut wake_rx: mpsc::Receiver<Wake>,
        mut msg_rx: mpsc::Receiver<reporter::Message>,
        mut hup: tokio::signal::unix::Signal,
        swaps: Option<SwapsWatch>,
    ) -> u8 {
        // The first evaluation waits for the first connection attempt (at
        // most its 5 s bound), so it does not report "no bus" needlessly.
        let mut bus = self.bus.clone();
        let first = async {
            while matches!(*bus.borrow(), Bus::Connecting) {
                if bus.changed().await.is_err() {
                    break;
                }
            }
        };
        if guard.run(first).await.is_none() {
            return crate::exit::OK;
        }
        let mut debounce = Debounce::new(Duration::from_millis(self.cfg.run.debounce_ms));
        let mut resync_at = Instant::now();
        let mut wake_at: Option<std::time::Instant> = None;
        let (mut wakes_open, mut msgs_open) = (true, self.reports.is_some());
        loop {
            self.health.turned();
            self.health.bus(matches!(*self.bus.borrow(), Bus::Up(_)));
            let far = Instant::now() + Duration::from_secs(86400 * 365);
            let due = debounce.due();
            // One wait for the next thing to do; every branch is cheap.
            let evaluate = guard
                .run(async {
                    tokio::select! {
                        _ = hup.recv() => {
                            self.reload_config("SIGHUP");
                            debounce = Debounce::new(Duration::from_millis(self.cfg.run.debounce_ms));
                            debounce.event(now());
                            false
                        }
                        w = wake_rx.recv(), if wakes_open => {
                            match w {
                                Some(w) => tracing::debug!("wake: {w:?}"),
                                None => wakes_open = false,
                            }
                            debounce.event(now());
                            false
                        }
                        r = async { swaps.as_ref().expect("guarded").changed().await }, if swaps.is_some() => {
                            if let Err(e) = r {
                                tracing::warn!("/proc/swaps poll: {e}");
                            }
                            debounce.event(now());
                            false
                        }
                        ev = async { match self.files.as_mut() { Some(f) => f.next().await, None => std::future::pending().await } } => {
                            match ev {
                                Some(FileEvent::Config(p)) => {
                                    self.reload_config(&p.display().to_string());
                                    debounce = Debounce::new(Duration::from_millis(self.cfg.run.debounce_ms));
                                }
                                Some(ev) => tracing::debug!("wake: {ev:?}"),
                                None => {
                                    tracing::warn!("file watching stopped: changes are seen at the resync, which tries again");
                                    self.files = None;
                                }
                            }
                            debounce.event(now());
                            false
                        }
                        m = msg_rx.recv(), if msgs_open => {
                            match m {
                                Some(m) => self.message(rec, m),
                                None => {
                                    tracing::warn!("the reporting task ended: not reporting");
                                    msgs_open = false;
                                    self.reports = None;
                                }
                            }
                            debounce.event(now());
                            false
                        }
                        _ = sleep_until(due.map_or(far, Instant::from_std)), if due.is_some() => {
                            debounce.fire();
                            true
                        }
                        _ = sleep_until(wake_at.map_or(far, Instant::from_std)), if wake_at.is_some() => true,
                        _ = sleep_until(resync_at) => {
                            resync_at = Instant::now()
                                + jitter_down(Duration::from_secs(self.cfg.run.resync_secs), 0.1);
                            if self.files.is_none() {
                                // inotify failed earlier: try again, and
                                // reload the config, which it would have said.
                                self.files = FileWatch::new().ok();
                                self.reload_config("resync without inotify");
                            }
                            true
                        }
                    }
                })
                .await;
            let Some(evaluate) = evaluate else { break };
            if !evaluate {
                continue;
            }
            match self.cycle(rec, guard).await {
                Some(w) => wake_at = w,
                None => break,
            }
        }
        crate::exit::OK
    }

    /// Observe, decide, run what was decided. None: stop asked for.
    async fn cycle(
        &mut self,
        rec: &mut Reconciler,
        guard: &mut Guard,
    ) -> Option<Option<std::time::Instant>> {
        let t0 = Instant::now();
        let bus = self.bus.borrow().clone();
        let obs = {
            let (sd, no_bus): (Option<Arc<Systemd>>, String) = match &bus {
                Bus::Up(sd) => (Some(sd.clone()), String::new()),
                Bus::Down { error } => (None, error.clone()),
                Bus::Connecting => (None, "connecting to the system bus".into()),
            };
            let sd_ref: Result<&Systemd, &str> = match &sd {
                Some(s) => Ok(s),
                None => Err(no_bus.as_str()),
            };
            guard
                .run(observe_bounded(
                    sd_ref,
                    &self.src,
                    &self.cfg,
                    OBSERVE_DEADLINE,
                ))
                .await?
        };
        self.metrics.observed(&obs);
        self.sync_watches(&obs);
        if !self.connected {
            self.connected = true;
            if let Some(tx) = &self.reports {
                // Connect now; the Node's watch (the out-of-service taint)
                // opens after the reporter's random first delay.
                let _ = tx.try_send(reporter::Request::Connect(Box::new(obs.clone())));
            }
        }
        let d = rec.step(&Input {
            now: now(),
            wall: Timestamp::now(),
            obs: &obs,
            cfg: &self.cfg,
            config_error: self.config_error.as_ref(),
            out_of_service: &self.oos,
        });
        self.metrics.evaluated(&d.assessment, t0.elapsed());
        self.say(&d);
        if !self.ready {
            // Ready once judged, before any repair: a first swapoff may
            // take minutes, and TimeoutStartSec= must not kill it.
            self.ready = true;
            notify::ready(&self.status);
        }
        if rec.memory() != &self.kept {
            self.kept = rec.memory().clone();
            keep(&self.opts.host, MEMORY_FILE, &self.kept);
        }
        if d.report.is_some() && self.reports.is_none() {
            rec.reported(
                Reported::Skipped(
                    "report = true takes effect at the next start of the daemon".into(),
                ),
                now(),
            );
        }
        if let (Some(job), Some(tx)) = (&d.report, &self.reports) {
            let req = reporter::Request::Report(Box::new(job.clone()), Box::new(obs.clone()));
            if tx.try_send(req).is_err() {
                // Never two in flight: this cannot be full; closed is
                // said when the task's channel ends.
                rec.reported(
                    Reported::Failed("the reporting task is not running".into()),
                    now(),
                );
            }
        }
        let Some((plan, _)) = &d.repair else {
            return Some(d.wake_at);
        };
        let sd = match &bus {
            Bus::Up(sd) => Some(sd.clone()),
            _ => None,
        };
        let mut acfg = self.cfg.clone();
        acfg.fix = reconcile::fix_policy(&self.cfg);
        let done = guard
            .run(apply::apply(
                plan,
                sd.as_deref(),
                &self.src.host,
                &acfg,
                Timestamp::now(),
            ))
            .await?;
        rec.applied(plan, &done, &obs, now());
        self.metrics.repaired(&done);
        // Look again at once: the repair's result is the next report.
        Some(Some(now()))
    }

    /// A message from the reporting actor.
    fn message(&mut self, rec: &mut Reconciler, m: reporter::Message) {
        let now = now();
        match m {
            reporter::Message::Reported {
                result,
                out_of_service,
                summary,
            } => {
                if result == Reported::Delivered {
                    tracing::debug!("report: {summary}");
                }
                for s in rec.reported(result.clone(), now) {
                    log(&s);
                }
                match (out_of_service, &result) {
                    (Some(v), _) => self.out_of_service(Some(v)),
                    (None, Reported::Failed(_)) => self.out_of_service(None),
                    _ => {}
                }
            }
            reporter::Message::OutOfService(v) => self.out_of_service(Some(v)),
            reporter::Message::WatchLost(e) => {
                tracing::debug!("watch of the Node ended: {e}");
                self.out_of_service(None);
            }
        }
    }

    /// What is known of the out-of-service taint changed: Some(read now),
    /// None (cannot be read now: the last value becomes "last known").
    fn out_of_service(&mut self, v: Option<bool>) {
        let now = Timestamp::now();
        match v {
            Some(v) => {
                let before = match &self.oos {
                    OutOfService::Known(b) | OutOfService::LastKnown { value: b, .. } => Some(*b),
                    OutOfService::Unknown => None,
                };
                if before != Some(v) {
                    tracing::info!(
                        "the Node {} {}",
                        if v { "carries" } else { "does not carry" },
                        crate::report::node::OUT_OF_SERVICE
                    );
                }
                self.oos = OutOfService::Known(v);
                // `at` is when it was last read: refreshed on disk at most
                // every 10 minutes, at once when the value changes.
                let stale = self.oos_kept.as_ref().is_none_or(|k| {
                    k.out_of_service != v || now.duration_since(k.at) >= KEEP_EVERY
                });
                if stale {
                    let k = KeptOutOfService {
                        out_of_service: v,
                        at: now,
                        node: self.opts.node_name.clone().unwrap_or_default(),
                    };
                    keep_out_of_service(&self.opts.host, &k);
                    self.oos_kept = Some(k);
                }
            }
            None => {
                if let OutOfService::Known(v) = self.oos {
                    let at = self.oos_kept.as_ref().map_or(now, |k| k.at);
                    self.oos = OutOfService::LastKnown { value: v, at };
                }
            }
        }
    }

    fn say(&mut self, d: &Decision) {
        for s in &d.say {
            log(s);
        }
        if let Some(line) = &d.status {
            notify::status(line);
            self.status = line.clone();
        }
    }

    /// Reload the configuration; an invalid one keeps the old one and
    /// becomes the finding `config-invalid`.
    fn reload_config(&mut self, why: &str) {
        match Config::load(self.opts.config_path.as_deref()) {
            Ok(c) => {
                if self.config_error.take().is_some() || c != self.cfg {
                    tracing::info!("configuration reloaded ({why})");
                }
                *self
                    .health
                    .bus_bound
                    .lock()
                    .unwrap_or_else(|p| p.into_inner()) =
                    Duration::from_secs(c.run.health_bus_down_secs);
                *self
                    .health
                    .stall_bound
                    .lock()
                    .unwrap_or_else(|p| p.into_inner()) = stall_bound(&c);
                self.units_tx.send_if_modified(|u| {
                    let w = watched_units(&c);
                    let changed = *u != w;
                    *u = w;
                    changed
                });
                self.cfg = c;
            }
            Err(e) => {
                tracing::error!("invalid configuration, keeping the previous one: {e}");
                self.config_error = Some(e);
            }
        }
    }

    /// Watch fstab, kubelet's sources, the pause file and the config.
    fn sync_watches(&mut self, obs: &Observation) {
        let Some(fw) = self.files.as_mut() else {
            return;
        };
        let host = &self.src.host;
        let mut files: Vec<PathBuf> = vec![
            host.path(observe::FSTAB),
            host.path(crate::pause::PAUSE_FILE),
            host.path(crate::pause::LEGACY_PAUSE_FILE),
        ];
        let mut dirs: Vec<PathBuf> = Vec::new();
        let sources = match &obs.kubelet_policy {
            Some(crate::kubelet::KubeletPolicy::Known(p)) => p.sources.as_slice(),
            Some(crate::kubelet::KubeletPolicy::Unknown(u)) => u.sources.as_slice(),
            None => &[],
        };
        for s in sources {
            if s.state == crate::kubelet::SourceState::Builtin || !s.path.starts_with('/') {
                continue;
            }
            let p = host.path(&s.path);
            if s.path.contains(['*', '?', '[']) {
                if let Some(parent) = Path::new(&s.path).parent() {
                    dirs.push(host.path(parent));
                }
            } else if p.is_dir() {
                dirs.push(p);
            } else {
                files.push(p);
            }
        }
        dirs.sort();
        dirs.dedup();
        // kubelet's runtime socket: its appearing (the runtime started) is
        // news; and the unit found serving it is watched on the bus.
        if let Some(r) = &obs.runtime {
            if let Some(sock) = &r.endpoint {
                // Through the node's links (/var/run → /run) inside the
                // host root, as the socket is reached.
                files.push(host.resolve(sock).unwrap_or_else(|_| host.path(sock)));
            }
            if let Some(unit) = &r.unit {
                let unit = unit.clone();
                self.units_tx.send_if_modified(|u| {
                    let add = !u.contains(&unit);
                    if add {
                        u.push(unit);
                    }
                    add
                });
            }
        }
        files.sort();
        files.dedup();
        let config = sources::Config::of(self.opts.config_path.as_deref());
        fw.sync(&files, &dirs, &config);
    }
}

/// The reconciler's clock (tokio's, so tests on a paused clock agree).
fn now() -> std::time::Instant {
    Instant::now().into_std()
}

fn log(s: &reconcile::Say) {
    let unit = s.unit.as_deref();
    match s.level {
        Level::Warn => tracing::warn!(finding_id = s.finding_id, unit, "{}", s.text),
        Level::Info => tracing::info!(finding_id = s.finding_id, unit, "{}", s.text),
    }
}

/// The units whose D-Bus objects are watched: the required ones and the
/// kubelet flavours that may stand in for kubelet.service.
fn watched_units(cfg: &Config) -> Vec<String> {
    let mut u = cfg.required_units.clone();
    u.extend(cfg.kubelet_alternatives.iter().cloned());
    if cfg.readiness.runtime {
        u.extend(
            observe::RUNTIME_UNITS
                .iter()
                .map(|(_, unit)| unit.to_string()),
        );
    }
    u.dedup();
    u
}

/// The loop turns at least at every resync.
fn stall_bound(cfg: &Config) -> Duration {
    Duration::from_secs(cfg.run.resync_secs.saturating_mul(2).saturating_add(60))
}

#[cfg(test)]
mod tests;
