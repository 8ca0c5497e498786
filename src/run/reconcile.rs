//! The daemon's decisions as one pure, clock-driven state machine.
//!
//! [`Reconciler::step`] takes an observation, the time (a monotonic
//! instant and the wall clock, both passed in), what is known of the Node's
//! out-of-service taint and the config, and returns what to do: the repairs
//! to run now, whether to write a report and what, what to log, and when
//! to be woken again. The daemon's shell (`run/mod.rs`) only runs effects
//! and feeds their results back ([`Reconciler::applied`],
//! [`Reconciler::reported`]). No I/O, no async, no clock of its own: every
//! rule here is a deterministic test on made-up instants.
//!
//! The rules:
//! - **Repairs** are `plan`'s (exactly `check --fix`'s), gated: nothing
//!   while the Node is (or was last known to be) out of service; a start
//!   waits `start_grace_secs` from when the unit went down; an action still
//!   needed after it was made is backed off (doubling), keyed by what it
//!   acts on (a unit, a device, an fstab line's bytes), never by line
//!   numbers; a reset-failed only goes with a start that runs.
//! - **Intent**: a change this daemon saw a person or a tool make — a swap
//!   line put back in fstab after it was commented out (or added while
//!   watching), kubelet stopped and disabled — is reported and not
//!   reverted, unless `run.enforce`. The seed incident (kubelet disabled
//!   while running, or down since boot and never enabled) is repaired.
//! - **Crash loops** are one finding while they last: the unit running
//!   between two crashes does not end it (it must stay up
//!   [`STABLE_AFTER_RESTART`]); its restart count and first and last times
//!   go up without being news.
//! - **Reports**: at most one write burst per `report_min_interval_secs`,
//!   trailing edge (the last state is always written), a heartbeat every
//!   `report_heartbeat_mins`, backoff with full jitter while the API server
//!   fails, a random delay before the first (short when it carries a
//!   problem, `report_initial_delay_ok_secs` when all is well), never two
//!   at once.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use crate::config::{Config, ConfigError, FixPolicy};
use crate::evaluate::{self, Assessment, Finding, FindingKind, Motion, Severity};
use crate::finding::Occurrences;
use crate::observation::{Observation, Probe};
use crate::plan::{self, Action, ActionOutcome, Outcome, Plan, Skip, Step};
use crate::report::node::OUT_OF_SERVICE;

use super::schedule::{Attempt, Backoff, RepairBackoff};

/// A crash-looping unit that runs again counts as recovered only after it
/// has stayed up this long without another restart.
pub const STABLE_AFTER_RESTART: Duration = Duration::from_secs(60);

/// At most this many repair outcomes wait to be reported as Events; older
/// ones are dropped (the Node's condition still says where things stand).
pub const MAX_PENDING_EVENTS: usize = 32;

/// What is known of the Node's `node.kubernetes.io/out-of-service` taint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OutOfService {
    /// Never read: no API server reached since start, nothing persisted.
    Unknown,
    /// As the API server says now (a live watch, or a read just made).
    Known(bool),
    /// The last value read, at `at`; the API server cannot be asked now.
    LastKnown { value: bool, at: Timestamp },
}

/// Everything one decision depends on.
#[derive(Debug, Clone)]
pub struct Input<'a> {
    pub now: Instant,
    pub wall: Timestamp,
    pub obs: &'a Observation,
    pub cfg: &'a Config,
    /// Why the last config reload failed (the previous config is `cfg`).
    pub config_error: Option<&'a ConfigError>,
    pub out_of_service: &'a OutOfService,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    Info,
    Warn,
}

/// One line for the journal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Say {
    pub level: Level,
    pub text: String,
    /// The finding it is about, for structured fields.
    pub finding_id: Option<&'static str>,
    /// The unit it is about (`UNIT=` in the journal).
    pub unit: Option<String>,
}

impl Say {
    fn new(level: Level, text: String) -> Say {
        Say {
            level,
            text,
            finding_id: None,
            unit: None,
        }
    }

    fn about(mut self, f: &Finding) -> Say {
        self.finding_id = Some(f.id());
        self.unit = f.kind.unit().map(String::from);
        self
    }
}

/// A report to write now.
#[derive(Debug, Clone)]
pub struct ReportJob {
    pub assessment: Assessment,
    /// Repairs to post as Events.
    pub events: Vec<ActionOutcome>,
}

/// What the shell should do after a step.
#[derive(Debug, Clone)]
pub struct Decision {
    /// The verdict as reported and logged (crash loops held, the daemon's
    /// own findings included).
    pub assessment: Assessment,
    /// Repairs to run now, in order; `attempts[i]` is `plan.actions[i]`'s
    /// attempt number (1 = first).
    pub repair: Option<(Plan, Vec<u32>)>,
    pub report: Option<ReportJob>,
    /// Step again at this instant even without an event.
    pub wake_at: Option<Instant>,
    pub say: Vec<Say>,
    /// The new `STATUS=` line, when it changed.
    pub status: Option<String>,
}

/// What a report came back with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reported {
    /// The Node says what it should (written, or nothing was needed).
    Delivered,
    /// Another reporter keeps this Node's status up to date: nothing was
    /// written (one reporter per Node).
    OtherReporter(String),
    /// Not delivered (unreachable, timed out, refused, failed): try again.
    Failed(String),
    /// Reporting is not possible here (no node name or credentials).
    Skipped(String),
}

/// What a repair is backed off under: the thing it acts on.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum RepairKey {
    Swapoff {
        device: String,
    },
    /// fstab lines by their bytes (numbers move when the file is edited).
    FstabLines {
        path: String,
        lines: Vec<String>,
    },
    /// A unit step; reset-failed shares its start's key.
    Unit {
        step: &'static str,
        unit: String,
    },
    Other {
        step: &'static str,
        subject: String,
    },
}

/// An fstab swap line, by what it says.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct LineKey {
    pub path: String,
    pub text: String,
}

/// What the daemon must not forget across its restarts and the node's
/// reboots (kept under /var/lib/taint-guard): the people's decisions it
/// honours, and the lines it commented out itself. The boot unit honours
/// it too (`check --fix --unattended`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Memory {
    /// Units a person or a tool stopped and disabled.
    #[serde(default)]
    pub unit_intents: BTreeSet<String>,
    /// Swap lines put back (or added) by a person or a tool.
    #[serde(default)]
    pub line_intents: BTreeSet<LineKey>,
    /// Swap lines taint-guard commented out (at most [`MAX_REVERTED`]).
    #[serde(default)]
    pub reverted: BTreeSet<LineKey>,
}

/// How many commented-out lines are remembered.
pub const MAX_REVERTED: usize = 64;

/// A unit disabled while it runs (the seed incident) is enabled only once
/// it has stayed so this long: `systemctl disable --now` disables, reloads
/// and only then queues the stop, and that moment is a person's, not the
/// seed incident.
pub const ENABLE_SETTLE: Duration = Duration::from_secs(2);

impl Memory {
    /// Mark the findings a remembered intent covers as not fixable, saying
    /// why and what would undo it (unless `enforce`). Used by the daemon and
    /// by the boot unit.
    pub fn honour(&self, a: &mut Assessment, obs: &Observation, enforce: bool) {
        if enforce {
            return;
        }
        for x in a.findings.iter_mut() {
            match &x.kind {
                FindingKind::SwapInFstab { path, line } => {
                    let Some(text) = line_texts(obs, &[*line]).pop() else {
                        continue;
                    };
                    let k = LineKey {
                        path: path.clone(),
                        text,
                    };
                    if self.line_intents.contains(&k) {
                        let how = if self.reverted.contains(&k) {
                            "was put back after taint-guard commented it out"
                        } else {
                            "was added while taint-guard was watching"
                        };
                        x.fixable = false;
                        x.message += &format!(
                            "; this line {how} (a person, or a tool such as Ansible?): reported, not reverted (run.enforce = true reverts it)"
                        );
                    }
                }
                FindingKind::UnitDisabled { unit }
                | FindingKind::UnitStopped { unit }
                | FindingKind::UnitInactive { unit }
                    if self.unit_intents.contains(unit) =>
                {
                    let unit = unit.clone();
                    x.fixable = false;
                    x.message += &format!(
                        "; {unit} was stopped and disabled, by a person or a tool (decommissioning?): reported, not reverted (run.enforce = true reverts it); to bring it back: systemctl enable --now {unit}"
                    );
                }
                _ => {}
            }
        }
    }
}

#[derive(Debug, Clone)]
struct CrashLoop {
    first: Timestamp,
    last: Timestamp,
    restarts: u32,
    finding: Finding,
}

#[derive(Debug, Clone)]
struct ReportState {
    /// Not before this instant (the random delay after start): a first
    /// report with a problem, and one when all is well.
    first_at: Instant,
    first_ok_at: Instant,
    in_flight: Option<(String, usize)>,
    last_attempt: Option<Instant>,
    next_heartbeat: Option<Instant>,
    /// Fingerprint of what the Node was last brought in line with.
    written: Option<String>,
    retry: Backoff,
    retry_at: Option<Instant>,
    pending: Vec<ActionOutcome>,
    /// Another reporter seen on the Node (said once).
    other: Option<String>,
    last_problem: Option<String>,
}

/// The daemon's memory. See the module docs for its rules.
#[derive(Debug, Clone)]
pub struct Reconciler {
    rng: fastrand::Rng,
    down: BTreeMap<String, Instant>,
    backoff: RepairBackoff<RepairKey>,
    backoff_cfg: (u64, u64),
    crash: BTreeMap<String, CrashLoop>,
    /// Since when each unit has been seen disabled while up.
    disabled_up: BTreeMap<String, Instant>,
    seen_fstab: Option<BTreeSet<LineKey>>,
    memory: Memory,
    report: ReportState,
    said_findings: Vec<Finding>,
    said_skips: Vec<(String, String)>,
    said_oos: Option<String>,
    status: String,
}

/// The `[fix]` policy as the daemon applies it.
pub fn fix_policy(cfg: &Config) -> FixPolicy {
    let mut p = cfg.fix.clone();
    // Never a masked unit: a mask is a person's decision, whatever
    // fix.unmask says for a person running check --fix.
    p.unmask = false;
    p.start_stopped = cfg.run.start_stopped;
    // Queue the start and watch: the result arrives as an event, and the
    // loop (and the watchdog) never wait on a start job.
    p.wait_for_start = false;
    p
}

fn secs(d: Duration) -> String {
    format!("{:.1}s", d.as_secs_f64())
}

fn earliest(a: Option<Instant>, b: Option<Instant>) -> Option<Instant> {
    match (a, b) {
        (Some(x), Some(y)) => Some(x.min(y)),
        (x, None) => x,
        (None, y) => y,
    }
}

/// What makes a report new: the verdict and each finding's words, not a
/// crash loop's count.
fn fingerprint(a: &Assessment) -> String {
    let f: Vec<(&str, Severity, String, &str)> = a
        .findings
        .iter()
        .map(|f| (f.id(), f.severity, f.subject(), f.message.as_str()))
        .collect();
    serde_json::to_string(&(&a.status, a.reboot_safe, f)).unwrap_or_default()
}

impl Reconciler {
    /// `seed` drives the jitter (tests pass a constant); `memory` is what
    /// an earlier run kept.
    pub fn new(now: Instant, cfg: &Config, seed: u64, memory: Memory) -> Reconciler {
        let mut rng = fastrand::Rng::with_seed(seed);
        // One random fraction for both delays: a node keeps its place in
        // the fleet's order whichever applies.
        let f = rng.f64();
        let delay = Duration::from_secs(cfg.run.report_initial_delay_secs).mul_f64(f);
        let delay_ok = Duration::from_secs(cfg.run.report_initial_delay_ok_secs).mul_f64(f);
        Reconciler {
            rng,
            down: BTreeMap::new(),
            backoff: RepairBackoff::new(
                Duration::from_secs(cfg.run.repair_backoff_secs.max(1)),
                Duration::from_secs(cfg.run.repair_backoff_max_secs.max(1)),
            ),
            backoff_cfg: (cfg.run.repair_backoff_secs, cfg.run.repair_backoff_max_secs),
            crash: BTreeMap::new(),
            disabled_up: BTreeMap::new(),
            seen_fstab: None,
            memory,
            report: ReportState {
                first_at: now + delay,
                first_ok_at: now + delay_ok,
                in_flight: None,
                last_attempt: None,
                next_heartbeat: None,
                written: None,
                retry: Backoff::new(
                    Duration::from_secs(1),
                    Duration::from_secs(cfg.run.report_backoff_max_secs.max(1)),
                ),
                retry_at: None,
                pending: Vec::new(),
                other: None,
                last_problem: None,
            },
            said_findings: Vec::new(),
            said_skips: Vec::new(),
            said_oos: None,
            status: String::new(),
        }
    }

    /// Decide. Call after every observation (events, timers, `wake_at`).
    pub fn step(&mut self, i: &Input) -> Decision {
        let mut say = Vec::new();
        let mut wake: Option<Instant> = None;
        let cfg = i.cfg;
        if (cfg.run.repair_backoff_secs, cfg.run.repair_backoff_max_secs) != self.backoff_cfg {
            self.backoff_cfg = (cfg.run.repair_backoff_secs, cfg.run.repair_backoff_max_secs);
            self.backoff.set_bounds(
                Duration::from_secs(cfg.run.repair_backoff_secs.max(1)),
                Duration::from_secs(cfg.run.repair_backoff_max_secs.max(1)),
            );
        }

        let mut a = evaluate::evaluate(i.obs, cfg);
        self.witness(i, &mut a, &mut say);
        let (held, crash_wake) = self.track_crash_loops(i, &mut a);
        wake = earliest(wake, crash_wake);
        self.track_down(&a, i.now);
        self.track_disabled_up(i);

        let mut extra: Vec<Finding> = Vec::new();
        let mut repair = None;
        if cfg.run.remediate {
            let policy = fix_policy(cfg);
            let pause = i.obs.pause.as_ref().and_then(|p| p.active()).cloned();
            let raw = plan::plan(&a, i.obs, &policy, pause.as_ref());
            let (gated, attempts, due) = self.gate(raw, i, &mut say);
            wake = earliest(wake, due);
            extra.extend(gated.findings.iter().cloned());
            self.say_skips(&gated.skipped, &mut say);
            if !gated.actions.is_empty() {
                repair = Some((gated, attempts));
            }
        }
        if let Some(e) = i.config_error {
            extra.push(Finding::new(
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
        extra.extend(held);
        let a = evaluate::with_findings(a, extra, cfg);
        self.say_findings(&a, &mut say);
        let line = status_line(&a, cfg.run.remediate);
        let status = (line != self.status).then(|| {
            self.status = line.clone();
            line
        });

        let (report, report_wake) = self.report_due(&a, i);
        wake = earliest(wake, report_wake);
        Decision {
            assessment: a,
            repair,
            report,
            wake_at: wake,
            say,
            status,
        }
    }

    /// The repairs of the last decision ran; `before` is the observation
    /// they were planned from. Call with the outcomes in plan order.
    pub fn applied(
        &mut self,
        plan: &Plan,
        outcomes: &[ActionOutcome],
        before: &Observation,
        now: Instant,
    ) {
        for (act, out) in plan.actions.iter().zip(outcomes) {
            // Skipped counts too: a repair apply declined (a pause taken
            // since, already active) is not tried again in a tight loop.
            if out.outcome != Outcome::Planned && counts(act) {
                self.backoff.attempted(&key(act, before), now);
            }
            if let (Step::CommentFstab { path, lines }, Outcome::Done) = (&act.step, out.outcome) {
                for text in line_texts(before, lines) {
                    self.memory.reverted.insert(LineKey {
                        path: path.clone(),
                        text,
                    });
                }
                while self.memory.reverted.len() > MAX_REVERTED {
                    self.memory.reverted.pop_first();
                }
            }
        }
        let news = outcomes
            .iter()
            .filter(|o| o.outcome != Outcome::Skipped && o.outcome != Outcome::Planned)
            .filter(|o| !(o.id == "daemon-reload" && o.outcome == Outcome::Done))
            .cloned();
        for o in news {
            // The same outcome again is one Event (its count goes up).
            if !self.report.pending.contains(&o) {
                self.report.pending.push(o);
            }
        }
        let excess = self.report.pending.len().saturating_sub(MAX_PENDING_EVENTS);
        self.report.pending.drain(..excess);
    }

    /// A report of the last decision came back. Step again afterwards.
    pub fn reported(&mut self, r: Reported, now: Instant) -> Vec<Say> {
        let mut say = Vec::new();
        let Some((fp, events)) = self.report.in_flight.take() else {
            return say;
        };
        let ok = |s: &mut Self| {
            s.report.written = Some(fp.clone());
            let n = events.min(s.report.pending.len());
            s.report.pending.drain(..n);
            s.report.retry.reset();
            s.report.retry_at = None;
        };
        match &r {
            Reported::Delivered => {
                ok(self);
                self.report.other = None;
            }
            Reported::OtherReporter(who) => {
                // Not ours to write: look again at the heartbeat.
                ok(self);
                if self.report.other.as_deref() != Some(who) {
                    say.push(Say::new(Level::Warn, format!("report: another reporter ({who}) keeps this Node's taint-guard status; not writing while its heartbeat is fresh (one reporter per Node: set report = false in one of them)")));
                    self.report.other = Some(who.clone());
                }
            }
            Reported::Skipped(why) => {
                ok(self);
                self.report.pending.clear();
                if self.report.last_problem.as_deref() != Some(why) {
                    say.push(Say::new(Level::Warn, format!("report: {why}")));
                }
            }
            Reported::Failed(why) => {
                let wait = self.report.retry.fail().mul_f64(self.rng.f64());
                self.report.retry_at = Some(now + wait);
                // A failed heartbeat is retried with the backoff, not an
                // interval later (that would near the staleness rule).
                self.report.next_heartbeat = Some(now);
                if self.report.last_problem.as_deref() != Some(why) {
                    say.push(Say::new(
                        Level::Warn,
                        format!("report: {why}; retrying with backoff"),
                    ));
                }
            }
        }
        let problem = match &r {
            Reported::Failed(w) | Reported::Skipped(w) => Some(w.clone()),
            _ => None,
        };
        if problem.is_none() && self.report.last_problem.is_some() {
            say.push(Say::new(Level::Info, "report: delivered again".into()));
        }
        self.report.last_problem = problem;
        say
    }

    /// What must outlive this process (the shell keeps it on disk).
    pub fn memory(&self) -> &Memory {
        &self.memory
    }

    /// Whether a report is being written now.
    pub fn reporting(&self) -> bool {
        self.report.in_flight.is_some()
    }

    /// Repairs not yet reported (for metrics and tests).
    pub fn pending_events(&self) -> usize {
        self.report.pending.len()
    }

    fn report_due(&mut self, a: &Assessment, i: &Input) -> (Option<ReportJob>, Option<Instant>) {
        let cfg = i.cfg;
        if !cfg.run.report || self.report.in_flight.is_some() {
            return (None, None);
        }
        let now = i.now;
        let fp = fingerprint(a);
        let dirty =
            self.report.written.as_deref() != Some(fp.as_str()) || !self.report.pending.is_empty();
        let heartbeat_due = self.report.next_heartbeat.is_some_and(|t| now >= t);
        // The long delay only for a first report that is no news at all:
        // a repair's Events are news even when all is well after it.
        let quiet = self.report.written.is_none()
            && a.status == evaluate::Status::Ok
            && self.report.pending.is_empty();
        let mut not_before = if quiet {
            self.report.first_ok_at
        } else {
            self.report.first_at
        };
        if let Some(t) = self.report.last_attempt {
            not_before = not_before.max(t + Duration::from_secs(cfg.run.report_min_interval_secs));
        }
        if let Some(t) = self.report.retry_at {
            not_before = not_before.max(t);
        }
        if !(dirty || heartbeat_due) {
            return (None, self.report.next_heartbeat);
        }
        if now < not_before {
            // Trailing edge: whatever the state is then gets written.
            return (None, Some(not_before));
        }
        self.report.last_attempt = Some(now);
        let heartbeat = Duration::from_secs(cfg.run.report_heartbeat_mins.saturating_mul(60));
        self.report.next_heartbeat = Some(now + heartbeat.mul_f64(1.0 - 0.1 * self.rng.f64()));
        self.report.in_flight = Some((fp, self.report.pending.len()));
        (
            Some(ReportJob {
                assessment: a.clone(),
                events: self.report.pending.clone(),
            }),
            None,
        )
    }

    /// Changes a person or a tool was seen to make: reported, not reverted
    /// (unless `run.enforce`). Kept in [`Memory`].
    fn witness(&mut self, i: &Input, a: &mut Assessment, say: &mut Vec<Say>) {
        let enforce = i.cfg.run.enforce;
        if let Probe::Ok(f) = &i.obs.fstab {
            let live: BTreeSet<LineKey> = f
                .entries
                .iter()
                .chain(&f.not_at_boot)
                .map(|e| LineKey {
                    path: f.path.clone(),
                    text: e.text.clone(),
                })
                .collect();
            self.memory.line_intents.retain(|k| live.contains(k));
            for k in &live {
                let put_back = self.memory.reverted.contains(k);
                let added = self.seen_fstab.as_ref().is_some_and(|p| !p.contains(k));
                if (put_back || added) && self.memory.line_intents.insert(k.clone()) {
                    let how = if put_back {
                        "put back after taint-guard commented it out"
                    } else {
                        "added while taint-guard was watching"
                    };
                    let mut m = Say::new(
                        Level::Warn,
                        format!(
                            "{}: swap line `{}` {how} (a person, or a tool such as Ansible or cloud-init?): {}",
                            k.path,
                            k.text,
                            if enforce { "reverting it (run.enforce)" } else { "reported, not reverted" }
                        ),
                    );
                    m.finding_id = Some("swap-in-fstab");
                    say.push(m);
                }
            }
            self.seen_fstab = Some(live);
        }
        for u in &i.obs.units {
            let Probe::Ok(st) = &u.state else { continue };
            if st.load_state != crate::systemd::types::LoadState::Loaded {
                continue;
            }
            let boots = evaluate::boots(st);
            let motion = evaluate::motion(st);
            let name = u.name.clone();
            if boots || motion == Motion::Up || motion == Motion::Stopping {
                self.memory.unit_intents.remove(&name);
                continue;
            }
            // systemd's own record of a clean stop in this boot, on a unit
            // that is not enabled: `systemctl disable --now`, or a stop of
            // a kubelet that was never enabled. Remembered across reboots,
            // where the record is gone.
            if motion == Motion::StoppedCleanly && self.memory.unit_intents.insert(name.clone()) {
                let mut m = Say::new(
                    Level::Warn,
                    format!(
                        "{name} was stopped and disabled (a person or a tool decommissioning the node?): {}",
                        if enforce { "enabling and starting it (run.enforce)" } else { "reported, not reverted" }
                    ),
                );
                m.finding_id = Some("unit-disabled");
                m.unit = Some(name.clone());
                say.push(m);
            }
        }
        self.memory.honour(a, i.obs, enforce);
    }

    /// A crash loop is one finding while it lasts; returns the findings
    /// held (the unit runs for a moment between crashes) and when to look
    /// again.
    fn track_crash_loops(
        &mut self,
        i: &Input,
        a: &mut Assessment,
    ) -> (Vec<Finding>, Option<Instant>) {
        let mut held = Vec::new();
        let mut wake = None;
        let mut present = BTreeSet::new();
        for u in &i.obs.units {
            let Probe::Ok(st) = &u.state else { continue };
            let name = u.name.as_str();
            present.insert(name.to_string());
            let failing = a
                .findings
                .iter_mut()
                .find(|f| matches!(&f.kind, FindingKind::UnitFailed { unit } if unit == name));
            if let Some(f) = failing {
                let e = self.crash.entry(name.to_string()).or_insert(CrashLoop {
                    first: i.wall,
                    last: i.wall,
                    restarts: st.n_restarts,
                    finding: f.clone(),
                });
                if st.n_restarts != e.restarts {
                    e.last = i.wall;
                }
                e.restarts = st.n_restarts;
                f.occurrences = Some(Occurrences {
                    count: st.n_restarts,
                    first: e.first,
                    last: e.last,
                });
                e.finding = f.clone();
                continue;
            }
            let Some(e) = self.crash.get(name) else {
                continue;
            };
            // NRestarts drops to 0 on a start by hand: a new story.
            let same_loop = st.n_restarts >= e.restarts;
            let up_for = Timestamp::from_microsecond(st.active_enter_timestamp as i64)
                .ok()
                .and_then(|t| Duration::try_from(i.wall.duration_since(t)).ok())
                .unwrap_or(Duration::ZERO);
            let starting = evaluate::motion(st) == Motion::Up
                && st.active_state != crate::systemd::types::ActiveState::Active;
            let running = st.active_state == crate::systemd::types::ActiveState::Active;
            if same_loop && (starting || (running && up_for < STABLE_AFTER_RESTART)) {
                let mut f = e.finding.clone();
                f.occurrences = Some(Occurrences {
                    count: st.n_restarts,
                    first: e.first,
                    last: e.last,
                });
                held.push(f);
                if running {
                    wake = earliest(wake, Some(i.now + (STABLE_AFTER_RESTART - up_for)));
                }
            } else {
                self.crash.remove(name);
            }
        }
        self.crash.retain(|k, _| present.contains(k));
        (held, wake)
    }

    fn track_disabled_up(&mut self, i: &Input) {
        let mut now_up = BTreeSet::new();
        for u in &i.obs.units {
            let Probe::Ok(st) = &u.state else { continue };
            if !evaluate::boots(st) && evaluate::motion(st) == Motion::Up {
                now_up.insert(u.name.clone());
            }
        }
        self.disabled_up.retain(|u, _| now_up.contains(u));
        for u in now_up {
            self.disabled_up.entry(u).or_insert(i.now);
        }
    }

    fn track_down(&mut self, a: &Assessment, now: Instant) {
        let down: Vec<&str> = a
            .findings
            .iter()
            .filter_map(|f| match &f.kind {
                FindingKind::UnitInactive { unit }
                | FindingKind::UnitStopped { unit }
                | FindingKind::UnitFailed { unit } => Some(unit.as_str()),
                _ => None,
            })
            .collect();
        self.down.retain(|u, _| down.contains(&u.as_str()));
        for u in down {
            self.down.entry(u.to_string()).or_insert(now);
        }
    }

    /// The daemon's rules on top of `plan`: out-of-service, grace, backoff,
    /// reset-failed only with its start.
    fn gate(
        &mut self,
        plan: Plan,
        i: &Input,
        say: &mut Vec<Say>,
    ) -> (Plan, Vec<u32>, Option<Instant>) {
        let now = i.now;
        let grace = Duration::from_secs(i.cfg.run.start_grace_secs);
        let keys: Vec<RepairKey> = plan.actions.iter().map(|a| key(a, i.obs)).collect();
        self.backoff.retain(&|k| keys.contains(k), now);
        let hold = match i.out_of_service {
            OutOfService::Known(true) => Some(format!(
                "the Node carries {OUT_OF_SERVICE}: taint-guard repairs nothing"
            )),
            OutOfService::LastKnown { value: true, at } => Some(format!(
                "the Node carried {OUT_OF_SERVICE} when last read ({} ago; the API server cannot be asked now): taint-guard repairs nothing",
                age(i.wall, *at)
            )),
            _ => None,
        };
        let oos_note = match i.out_of_service {
            OutOfService::Unknown if !plan.actions.is_empty() => Some(format!(
                "whether the Node carries {OUT_OF_SERVICE} is unknown (never read: no API server reached yet, nothing kept in /var/lib/taint-guard): repairs are not held by it"
            )),
            OutOfService::LastKnown { value: false, at } if !plan.actions.is_empty() => Some(format!(
                "the Node did not carry {OUT_OF_SERVICE} when last read, {} ago: repairs go ahead", age(i.wall, *at)
            )),
            _ => None,
        };
        // Said once (the age in it changes: compare up to the first digit).
        let head = |s: &str| {
            s.split(|c: char| c.is_ascii_digit())
                .next()
                .unwrap_or("")
                .to_string()
        };
        if let Some(n) = &oos_note {
            if self.said_oos.as_deref().map(head) != Some(head(n)) {
                say.push(Say::new(Level::Info, n.clone()));
            }
        }
        self.said_oos = oos_note;
        let mut out = Plan {
            actions: Vec::new(),
            skipped: plan.skipped,
            findings: plan.findings,
        };
        let mut attempts = Vec::new();
        let mut due: Option<Instant> = None;
        for (a, k) in plan.actions.into_iter().zip(keys) {
            if a.step == Step::Reload {
                // Put back below only when a kept action changes files.
                continue;
            }
            let skip = |reason: String| Skip {
                id: a.step.id(),
                subject: a.step.subject(),
                reason,
            };
            if let Some(h) = &hold {
                out.skipped.push(skip(h.clone()));
                continue;
            }
            if let Step::Enable { unit } = &a.step {
                if let Some(since) = self.disabled_up.get(unit) {
                    let ready = *since + ENABLE_SETTLE;
                    if ready > now {
                        out.skipped.push(skip(format!(
                            "disabled while running for {}s: enabled after {}s (a `systemctl disable --now` stops it next)",
                            (now - *since).as_secs(),
                            ENABLE_SETTLE.as_secs()
                        )));
                        due = earliest(due, Some(ready));
                        continue;
                    }
                }
            }
            if let Step::Start { unit } | Step::ResetFailed { unit } = &a.step {
                let since = self.down.get(unit).copied().unwrap_or(now);
                let ready = since + grace;
                if ready > now {
                    out.skipped.push(skip(format!(
                        "down for {}s; started after {}s (run.start_grace_secs)",
                        (now - since).as_secs(),
                        grace.as_secs()
                    )));
                    due = earliest(due, Some(ready));
                    continue;
                }
            }
            match self.backoff.check(&k, now) {
                Attempt::Go { n } => {
                    if n > 1 && counts(&a) {
                        let base = self.backoff_cfg.0.max(1);
                        let cap = self.backoff_cfg.1.max(base);
                        let next = base.saturating_mul(1u64 << (n - 1).min(40)).min(cap);
                        let mut m = Say::new(Level::Warn, format!(
                            "repair {} {} still needed after {} attempt(s): attempt {n}; if still needed, the next in {next}s",
                            a.step.id(),
                            a.step.subject(),
                            n - 1
                        ));
                        m.unit = a.step.unit().map(String::from);
                        say.push(m);
                    }
                    attempts.push(n);
                    out.actions.push(a);
                }
                Attempt::Wait { until } => {
                    out.skipped.push(skip(format!(
                        "made before and still needed: next attempt in {} (run.repair_backoff_secs)",
                        secs(until.saturating_duration_since(now))
                    )));
                    due = earliest(due, Some(until));
                }
            }
        }
        // reset-failed goes with the start it prepares: alone it would
        // leave the unit looking stopped by a person (Result=success).
        let starts: Vec<String> = out
            .actions
            .iter()
            .filter_map(|a| match &a.step {
                Step::Start { unit } => Some(unit.clone()),
                _ => None,
            })
            .collect();
        let mut idx = 0;
        out.actions.retain(|a| {
            let keep = !matches!(&a.step, Step::ResetFailed { unit } if !starts.contains(unit));
            if !keep {
                attempts.remove(idx);
            } else {
                idx += 1;
            }
            keep
        });
        // One daemon-reload after the file changes, before any start.
        if out.actions.iter().any(|a| a.step.changes_files()) {
            let at = out
                .actions
                .iter()
                .position(|a| matches!(a.step, Step::ResetFailed { .. } | Step::Start { .. }))
                .unwrap_or(out.actions.len());
            out.actions.insert(
                at,
                Action {
                    step: Step::Reload,
                    reason: "unit files or fstab changed: reload systemd (daemon-reload)".into(),
                },
            );
            attempts.insert(at, 1);
        }
        (out, attempts, due)
    }

    fn say_findings(&mut self, a: &Assessment, say: &mut Vec<Say>) {
        for f in &a.findings {
            if !self
                .said_findings
                .iter()
                .any(|o| o.kind == f.kind && o.severity == f.severity && o.fixable == f.fixable)
            {
                say.push(
                    Say::new(
                        Level::Warn,
                        format!("{} {}: {}", f.severity, f.subject(), f.message),
                    )
                    .about(f),
                );
            }
        }
        for o in &self.said_findings {
            if !a.findings.iter().any(|f| f.kind == o.kind) {
                say.push(
                    Say::new(Level::Info, format!("resolved: {} {}", o.id(), o.subject())).about(o),
                );
            }
        }
        self.said_findings = a.findings.clone();
    }

    fn say_skips(&mut self, skipped: &[Skip], say: &mut Vec<Say>) {
        // Said once, not at every evaluation (the seconds in a grace or
        // backoff message change: compare up to the first digit).
        let head = |r: &str| {
            r.split(|c: char| c.is_ascii_digit())
                .next()
                .unwrap_or("")
                .to_string()
        };
        let now: Vec<(String, String)> = skipped
            .iter()
            .map(|s| (format!("{} {}", s.id, s.subject), s.reason.clone()))
            .collect();
        for (what, why) in &now {
            if !self
                .said_skips
                .iter()
                .any(|(w, r)| w == what && head(r) == head(why))
            {
                say.push(Say::new(Level::Info, format!("repair held: {what}: {why}")));
            }
        }
        self.said_skips = now;
    }
}

fn age(now: Timestamp, at: Timestamp) -> String {
    let s = now.duration_since(at).as_secs().max(0);
    if s < 120 {
        format!("{s}s")
    } else if s < 7200 {
        format!("{}min", s / 60)
    } else {
        format!("{}h", s / 3600)
    }
}

/// Whether the action counts as an attempt of its key (a reset-failed is
/// part of its start's attempt; a daemon-reload is plumbing).
fn counts(a: &Action) -> bool {
    !matches!(a.step, Step::ResetFailed { .. } | Step::Reload)
}

/// The texts of fstab lines `lines` (numbers as observed in `obs`).
fn line_texts(obs: &Observation, lines: &[usize]) -> Vec<String> {
    let Some(f) = obs.fstab.ok() else {
        return Vec::new();
    };
    lines
        .iter()
        .filter_map(|n| {
            f.entries
                .iter()
                .chain(&f.not_at_boot)
                .find(|e| e.line == *n)
                .map(|e| e.text.clone())
        })
        .collect()
}

/// The key an action is backed off under.
pub fn key(a: &Action, obs: &Observation) -> RepairKey {
    match &a.step {
        Step::Swapoff { device } => RepairKey::Swapoff {
            device: device.clone(),
        },
        Step::CommentFstab { path, lines } => {
            let mut t = line_texts(obs, lines);
            t.sort();
            RepairKey::FstabLines {
                path: path.clone(),
                lines: t,
            }
        }
        Step::ResetFailed { unit } | Step::Start { unit } => RepairKey::Unit {
            step: "start",
            unit: unit.clone(),
        },
        Step::Enable { unit }
        | Step::DisableUnit { unit }
        | Step::MaskUnit { unit }
        | Step::UnmaskUnit { unit } => RepairKey::Unit {
            step: a.step.id(),
            unit: unit.clone(),
        },
        s => RepairKey::Other {
            step: s.id(),
            subject: s.subject(),
        },
    }
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
mod tests;
