//! `taint-guard run`: the node daemon. It owns event sources, debouncing
//! and scheduling only; every judgement is `evaluate` and `plan`, every
//! effect `apply` and `report`, exactly as for `check --fix --report`.
//!
//! One current-thread runtime. Between events nothing runs but three
//! timers: the resync (default 5 min), the report heartbeat (1 h) and the
//! systemd watchdog (half of `WATCHDOG_USEC`), each jittered.

pub mod metrics;
pub mod repair;
pub mod reporter;
pub mod schedule;
pub mod sources;

use std::cell::RefCell;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::{mpsc, watch};
use tokio::time::{sleep_until, Instant};

use crate::apply::{self, ActionOutcome};
use crate::config::{Config, ConfigError};
use crate::evaluate::{self, Assessment, Finding, FindingKind, Severity};
use crate::hostroot::HostRoot;
use crate::observation::Observation;
use crate::observe::{self, Sources};
use crate::plan;
use crate::systemd::Systemd;

use metrics::{Health, Metrics};
use repair::{DownSince, Gated};
use schedule::{jitter_down, Debounce, RepairBackoff};
use sources::{Bus, FileEvent, FileWatch, SwapsWatch, Wake};

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

/// Run until SIGTERM or SIGINT; the exit code.
pub fn run(opts: Options) -> u8 {
    let cfg = match Config::load(opts.config_path.as_deref()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("taint-guard: invalid config: {e}");
            return crate::cli::exit::CONFIG;
        }
    };
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("taint-guard: cannot start runtime: {e}");
            return crate::cli::exit::UNKNOWN;
        }
    };
    let local = tokio::task::LocalSet::new();
    let code = local.block_on(&rt, Daemon::start(opts, cfg));
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

struct Daemon {
    opts: Options,
    cfg: Config,
    /// Why the last config (re)load failed: kept as a finding.
    config_error: Option<ConfigError>,
    src: Sources,
    bus: watch::Receiver<Bus>,
    units_tx: watch::Sender<Vec<String>>,
    down: DownSince,
    backoff: RepairBackoff,
    /// When a held-back repair may run (grace, backoff).
    repair_due: Option<Instant>,
    out_of_service: watch::Receiver<Option<bool>>,
    snapshot_tx: watch::Sender<Option<reporter::Snapshot>>,
    pending: reporter::Pending,
    metrics: Rc<Metrics>,
    health: Arc<Health>,
    files: Option<FileWatch>,
    /// What was said last: the verdict line and the findings.
    last_status: String,
    last_findings: Vec<Finding>,
    last_skips: Vec<String>,
    last_fingerprint: String,
    watchdog: Option<Duration>,
}

impl Daemon {
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
                    return crate::cli::exit::CONFIG;
                }
            }
        }
        let (wake_tx, mut wake_rx) = mpsc::channel::<Wake>(256);
        let (bus_tx, bus_rx) = watch::channel(Bus::Connecting);
        let (units_tx, units_rx) = watch::channel(watched_units(&cfg));
        tokio::task::spawn_local(sources::bus_task(
            units_rx,
            wake_tx,
            bus_tx,
            metrics.clone(),
        ));
        let (snapshot_tx, snapshot_rx) = watch::channel(None);
        let (oos_tx, oos_rx) = watch::channel(None);
        let pending: reporter::Pending = Rc::new(RefCell::new(Vec::new()));
        if cfg.run.report {
            let ropts = crate::report::Options {
                node_name: opts.node_name.clone(),
                kubeconfig: opts.kubeconfig.clone(),
                host: opts.host.clone(),
                timeout: Duration::from_secs(cfg.report.api_timeout_secs),
                max_findings_bytes: cfg.report.findings_annotation_max_bytes,
                heartbeat: Duration::from_secs(cfg.report.heartbeat_mins.saturating_mul(60)),
            };
            let sched = reporter::Schedule {
                initial_delay: Duration::from_secs(cfg.run.report_initial_delay_secs),
                heartbeat: Duration::from_secs(cfg.run.report_heartbeat_mins.saturating_mul(60)),
                backoff_max: Duration::from_secs(cfg.run.report_backoff_max_secs),
                out_of_service_recheck: Duration::from_secs(cfg.run.resync_secs),
            };
            tokio::task::spawn_local(reporter::task(
                ropts,
                sched,
                snapshot_rx,
                pending.clone(),
                oos_tx,
                metrics.clone(),
            ));
        }
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
        let mut d = Daemon {
            src: Sources {
                host: opts.host.clone(),
                proc_swaps: opts.proc_swaps.clone(),
                cgroup_root: opts.cgroup_root.clone(),
                assume_virtualization: opts.assume_virtualization.clone(),
            },
            backoff: backoff_of(&cfg),
            opts,
            cfg,
            config_error: None,
            bus: bus_rx,
            units_tx,
            down: DownSince::default(),
            repair_due: None,
            out_of_service: oos_rx,
            snapshot_tx,
            pending,
            metrics,
            health,
            files,
            last_status: String::new(),
            last_findings: Vec::new(),
            last_skips: Vec::new(),
            last_fingerprint: String::new(),
            watchdog: sd_notify::watchdog_enabled(),
        };
        d.main_loop(&mut wake_rx, swaps).await
    }

    async fn main_loop(
        &mut self,
        wake_rx: &mut mpsc::Receiver<Wake>,
        swaps: Option<SwapsWatch>,
    ) -> u8 {
        let (Ok(mut term), Ok(mut int), Ok(mut hup)) = (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
            signal(SignalKind::hangup()),
        ) else {
            eprintln!("taint-guard: cannot install signal handlers");
            return crate::cli::exit::UNKNOWN;
        };
        // The first evaluation waits for the first connection attempt (at
        // most its 5 s bound), so it does not report "no bus" needlessly.
        while matches!(*self.bus.borrow(), Bus::Connecting) {
            if self.bus.changed().await.is_err() {
                break;
            }
        }
        let mut debounce = Debounce::new(Duration::from_millis(self.cfg.run.debounce_ms));
        let far = || Instant::now() + Duration::from_secs(86400 * 365);
        let mut resync_at = Instant::now();
        let mut ready = false;
        let watchdog_every = self.watchdog.map(|w| w / 2);
        let mut watchdog_at = watchdog_every.map(|w| Instant::now() + w);
        loop {
            self.health.turned();
            tokio::select! {
                biased;
                _ = term.recv() => break,
                _ = int.recv() => break,
                _ = hup.recv() => {
                    self.reload_config("SIGHUP");
                    debounce.event(Instant::now());
                }
                _ = sleep_until(watchdog_at.unwrap_or_else(far)), if watchdog_at.is_some() => {
                    notify::watchdog();
                    watchdog_at = watchdog_every.map(|w| Instant::now() + w);
                }
                Some(w) = wake_rx.recv() => {
                    tracing::debug!("wake: {w:?}");
                    if let Wake::BusUp | Wake::BusLost(_) = &w {
                        self.health.bus(matches!(w, Wake::BusUp));
                    }
                    debounce.event(Instant::now());
                }
                r = async { swaps.as_ref().expect("guarded").changed().await }, if swaps.is_some() => {
                    if let Err(e) = r {
                        tracing::warn!("/proc/swaps poll: {e}");
                    }
                    tracing::debug!("wake: /proc/swaps");
                    debounce.event(Instant::now());
                }
                r = self.out_of_service.changed() => {
                    // The Node's out-of-service taint came or went.
                    if r.is_ok() {
                        debounce.event(Instant::now());
                    }
                }
                Some(ev) = async { match self.files.as_mut() { Some(f) => f.next().await, None => std::future::pending().await } } => {
                    tracing::debug!("wake: {ev:?}");
                    if let FileEvent::Config(p) = &ev {
                        self.reload_config(&p.display().to_string());
                    }
                    debounce.event(Instant::now());
                }
                _ = sleep_until(debounce.due().unwrap_or_else(far)), if debounce.due().is_some() => {
                    debounce.fire();
                    if self.cycle(&mut term, &mut int).await.is_break() { break; }
                }
                _ = sleep_until(self.repair_due.unwrap_or_else(far)), if self.repair_due.is_some() => {
                    self.repair_due = None;
                    if self.cycle(&mut term, &mut int).await.is_break() { break; }
                }
                _ = sleep_until(resync_at) => {
                    resync_at = Instant::now() + jitter_down(Duration::from_secs(self.cfg.run.resync_secs), 0.1);
                    if self.cycle(&mut term, &mut int).await.is_break() { break; }
                    if !ready {
                        ready = true;
                        notify::ready(&self.last_status);
                    }
                }
            }
        }
        notify::stopping();
        tracing::info!("stopping");
        crate::cli::exit::OK
    }

    /// Reload the configuration; an invalid one keeps the old one and
    /// becomes the finding `config-invalid`.
    fn reload_config(&mut self, why: &str) {
        match Config::load(self.opts.config_path.as_deref()) {
            Ok(c) => {
                if self.config_error.take().is_some() || c != self.cfg {
                    tracing::info!("configuration reloaded ({why})");
                }
                if c.run.repair_backoff_secs != self.cfg.run.repair_backoff_secs
                    || c.run.repair_backoff_max_secs != self.cfg.run.repair_backoff_max_secs
                {
                    self.backoff = backoff_of(&c);
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

    /// One evaluation, with repair and reporting. Breaks on SIGTERM/SIGINT
    /// received while a repair runs.
    async fn cycle(
        &mut self,
        term: &mut tokio::signal::unix::Signal,
        int: &mut tokio::signal::unix::Signal,
    ) -> std::ops::ControlFlow<()> {
        let bus = self.bus.borrow().clone();
        let (sd, no_bus): (Option<Arc<Systemd>>, String) = match bus {
            Bus::Up(sd) => (Some(sd), String::new()),
            Bus::Down { error } => (None, error),
            Bus::Connecting => (None, "connecting to the system bus".into()),
        };
        let sd_ref: Result<&Systemd, &str> = match &sd {
            Some(s) => Ok(s),
            None => Err(no_bus.as_str()),
        };
        let t0 = Instant::now();
        let mut obs = observe::observe(sd_ref, &self.src, &self.cfg).await;
        let mut a = self.assess(&obs, &[]);
        self.metrics.evaluated(&a, t0.elapsed());
        self.metrics.observed(&obs);
        self.sync_watches(&obs);

        let mut done: Vec<ActionOutcome> = Vec::new();
        let mut gated: Option<Gated> = None;
        if self.cfg.run.remediate {
            let now = Instant::now();
            self.down.update(&a, now);
            let policy = repair::fix_policy(&self.cfg);
            let pause = obs.pause.as_ref().and_then(|p| p.active()).cloned();
            let raw = plan::plan(&a, &obs, &policy, pause.as_ref());
            let keys: Vec<String> = raw.actions.iter().map(repair::key).collect();
            self.backoff.retain(&|k| keys.iter().any(|x| x == k), now);
            let g = repair::gate(
                raw,
                now,
                Duration::from_secs(self.cfg.run.start_grace_secs),
                &self.down,
                *self.out_of_service.borrow(),
                &self.backoff,
            );
            self.repair_due = g.next_due;
            if !g.plan.actions.is_empty() {
                for (act, n) in g.plan.actions.iter().zip(&g.attempts) {
                    if !repair::counts(act) {
                        continue;
                    }
                    let wait = self.backoff.attempted(&repair::key(act), now);
                    if *n > 1 {
                        tracing::warn!(
                            action = act.step.id(),
                            unit = act.step.unit(),
                            "repair {} {} still needed after {} attempt(s): attempt {n}; if still needed, the next in {}s",
                            act.step.id(),
                            act.step.subject(),
                            n - 1,
                            wait.as_secs()
                        );
                    }
                    self.repair_due =
                        Some(self.repair_due.map_or(now + wait, |d| d.min(now + wait)));
                }
                // The daemon's [fix] policy (never wait for a start job).
                let mut acfg = self.cfg.clone();
                acfg.fix = policy;
                let run = apply::apply(
                    &g.plan,
                    sd.as_deref(),
                    &self.src.host,
                    &acfg,
                    jiff::Timestamp::now(),
                );
                tokio::pin!(run);
                let watchdog_every = self.watchdog.map(|w| w / 2);
                done = loop {
                    tokio::select! {
                        biased;
                        _ = term.recv() => return std::ops::ControlFlow::Break(()),
                        _ = int.recv() => return std::ops::ControlFlow::Break(()),
                        _ = tokio::time::sleep(watchdog_every.unwrap_or(Duration::from_secs(86400))), if watchdog_every.is_some() => notify::watchdog(),
                        r = &mut run => break r,
                    }
                };
                let t1 = Instant::now();
                obs = observe::observe(sd_ref, &self.src, &self.cfg).await;
                a = self.assess(&obs, &[]);
                self.metrics.evaluated(&a, t1.elapsed());
                self.metrics.observed(&obs);
                self.down.update(&a, Instant::now());
                self.metrics.repaired(&done);
            }
            a = self.assess_with(a, &g.plan.findings);
            gated = Some(g);
        }
        self.say(&a, gated.as_ref());
        self.publish(&a, obs, done);
        std::ops::ControlFlow::Continue(())
    }

    /// evaluate, plus the daemon's own finding when the config is invalid.
    fn assess(&self, obs: &Observation, extra: &[Finding]) -> Assessment {
        let a = evaluate::evaluate(obs, &self.cfg);
        self.assess_with(a, extra)
    }

    fn assess_with(&self, a: Assessment, extra: &[Finding]) -> Assessment {
        let mut more: Vec<Finding> = extra.to_vec();
        if let Some(e) = &self.config_error {
            more.push(Finding::new(
                FindingKind::ConfigInvalid {
                    path: e.path.clone(),
                },
                Severity::Warning,
                format!(
                    "the configuration could not be loaded ({e}); the previous one stays in force"
                ),
                None,
                false,
            ));
        }
        if more.is_empty() {
            return a;
        }
        evaluate::with_findings(a, more, &self.cfg)
    }

    /// Log what changed (findings come and go, skips), set STATUS=.
    fn say(&mut self, a: &Assessment, g: Option<&Gated>) {
        for f in &a.findings {
            if !self
                .last_findings
                .iter()
                .any(|o| o.kind == f.kind && o.severity == f.severity)
            {
                tracing::warn!(
                    finding_id = f.id(),
                    unit = f.kind.unit(),
                    subject = %f.subject(),
                    severity = %f.severity,
                    "{} {}: {}",
                    f.severity,
                    f.subject(),
                    f.message
                );
            }
        }
        for o in &self.last_findings {
            if !a.findings.iter().any(|f| f.kind == o.kind) {
                tracing::info!(
                    finding_id = o.id(),
                    unit = o.kind.unit(),
                    subject = %o.subject(),
                    "resolved: {} {}",
                    o.id(),
                    o.subject()
                );
            }
        }
        self.last_findings = a.findings.clone();
        if let Some(g) = g {
            let skips: Vec<String> = g
                .plan
                .skipped
                .iter()
                .map(|s| format!("{} {}: {}", s.id, s.subject, s.reason))
                .collect();
            for s in &skips {
                // Said once, not at every evaluation (the seconds in a
                // grace message change: compare the head).
                let head = |x: &str| x.split(':').next().unwrap_or("").to_string();
                if !self.last_skips.iter().any(|o| head(o) == head(s)) {
                    tracing::info!("repair held: {s}");
                }
            }
            self.last_skips = skips;
        }
        let line = status_line(a, self.cfg.run.remediate);
        if line != self.last_status {
            notify::status(&line);
            self.last_status = line;
        }
    }

    /// Hand the result to the reporter when it changed or repairs were made.
    fn publish(&mut self, a: &Assessment, obs: Observation, done: Vec<ActionOutcome>) {
        let fingerprint =
            serde_json::to_string(&(&a.status, a.reboot_safe, &a.findings)).unwrap_or_default();
        let acted = done.iter().any(|o| o.outcome != apply::Outcome::Skipped);
        if fingerprint == self.last_fingerprint && !acted {
            return;
        }
        self.last_fingerprint = fingerprint;
        self.pending.borrow_mut().extend(
            done.into_iter()
                .filter(|o| o.outcome != apply::Outcome::Skipped),
        );
        self.snapshot_tx.send_replace(Some(reporter::Snapshot {
            assessment: a.clone(),
            observation: obs,
        }));
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
        files.sort();
        files.dedup();
        dirs.sort();
        dirs.dedup();
        let config = sources::Config::of(self.opts.config_path.as_deref());
        fw.sync(&files, &dirs, &config);
    }
}

/// The units whose D-Bus objects are watched: the required ones and the
/// kubelet flavours that may stand in for kubelet.service.
fn watched_units(cfg: &Config) -> Vec<String> {
    let mut u = cfg.required_units.clone();
    u.extend(cfg.kubelet_alternatives.iter().cloned());
    u.dedup();
    u
}

fn backoff_of(cfg: &Config) -> RepairBackoff {
    RepairBackoff::new(
        Duration::from_secs(cfg.run.repair_backoff_secs.max(1)),
        Duration::from_secs(cfg.run.repair_backoff_max_secs.max(1)),
    )
}

/// The loop turns at least at every resync.
fn stall_bound(cfg: &Config) -> Duration {
    Duration::from_secs(cfg.run.resync_secs.saturating_mul(2).saturating_add(60))
}

/// The one-line verdict for `systemctl status` (STATUS=).
pub fn status_line(a: &Assessment, remediate: bool) -> String {
    let safe = match a.reboot_safe {
        Some(true) => "reboot-safe",
        Some(false) => "NOT reboot-safe",
        None => "reboot safety unknown",
    };
    let what = match a.findings.first() {
        None => "no problems".to_string(),
        Some(f) if a.findings.len() == 1 => format!("{} {}", f.id(), f.subject()),
        Some(f) => format!(
            "{} {} and {} more",
            f.id(),
            f.subject(),
            a.findings.len() - 1
        ),
    };
    format!(
        "{}: {what}; {safe}{}",
        a.status.as_str(),
        if remediate { "" } else { "; repair off" }
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_line_is_one_line() {
        let cfg = Config::default();
        let ok = evaluate::assess(vec![], &cfg);
        assert_eq!(status_line(&ok, true), "ok: no problems; reboot-safe");
        let f = |unit: &str| {
            Finding::new(
                FindingKind::UnitInactive { unit: unit.into() },
                Severity::Critical,
                "m".into(),
                None,
                true,
            )
        };
        let a = evaluate::assess(vec![f("kubelet.service"), f("containerd.service")], &cfg);
        assert_eq!(
            status_line(&a, false),
            "critical: unit-inactive kubelet.service and 1 more; reboot-safe; repair off"
        );
    }

    #[test]
    fn watches_kubelet_flavours_too() {
        let u = watched_units(&Config::default());
        assert_eq!(u[0], "kubelet.service");
        assert!(u.contains(&"k3s.service".to_string()));
    }
}
