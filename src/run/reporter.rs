//! Reporting on its own task: on change, plus a heartbeat; exponential
//! backoff with full jitter while the API server cannot be reached; a
//! random delay before the first report. The loop hands it snapshots and
//! never waits for it.

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

use tokio::sync::watch;

use crate::apply::ActionOutcome;
use crate::evaluate::Assessment;
use crate::observation::Observation;
use crate::report::{self, Options, State, Write};

use super::metrics::Metrics;
use super::schedule::{full_jitter, jitter_down, Backoff};

/// What to report.
#[derive(Debug, Clone)]
pub struct Snapshot {
    pub assessment: Assessment,
    pub observation: Observation,
}

/// Reporting settings the task needs.
#[derive(Debug, Clone)]
pub struct Schedule {
    pub initial_delay: Duration,
    pub heartbeat: Duration,
    pub backoff_max: Duration,
    /// While the Node is out of service, read it again this often: repairs
    /// wait for the taint to go.
    pub out_of_service_recheck: Duration,
}

/// Repairs not yet reported (their Events).
pub type Pending = Rc<RefCell<Vec<ActionOutcome>>>;

fn state_str(s: State) -> String {
    serde_json::to_value(s)
        .ok()
        .and_then(|v| v.as_str().map(String::from))
        .unwrap_or_else(|| "failed".into())
}

/// Run until dropped. `oos` gets whether the Node is out of service, as
/// last read (None: not known).
pub async fn task(
    opts: Options,
    schedule: Schedule,
    mut rx: watch::Receiver<Option<Snapshot>>,
    pending: Pending,
    oos: watch::Sender<Option<bool>>,
    metrics: Rc<Metrics>,
) {
    tokio::time::sleep(full_jitter(schedule.initial_delay)).await;
    let mut backoff = Backoff::new(Duration::from_secs(1), schedule.backoff_max);
    let mut said: Option<String> = None;
    loop {
        let snap = rx.borrow_and_update().clone();
        let Some(snap) = snap else {
            if rx.changed().await.is_err() {
                return;
            }
            continue;
        };
        let actions: Vec<ActionOutcome> = std::mem::take(&mut *pending.borrow_mut());
        let out = report::report(&opts, &snap.assessment, &actions, &snap.observation, false).await;
        account(&metrics, &out);
        oos.send_if_modified(|v| {
            let changed = *v != out.out_of_service;
            *v = out.out_of_service;
            changed
        });
        // One line per state change, not per attempt.
        let line = format!("{:?}", out.state);
        if said.as_deref() != Some(line.as_str()) {
            match out.state {
                State::Unchanged | State::Updated => tracing::info!("report: {}", out.summary),
                _ => tracing::warn!("report: {}", out.summary),
            }
            said = Some(line);
        }
        let wait = match out.state {
            State::Unreachable | State::TimedOut | State::Failed => {
                // Not delivered: try again later, events included.
                pending.borrow_mut().splice(0..0, actions);
                Some(full_jitter(backoff.fail()))
            }
            _ => {
                backoff.reset();
                None
            }
        };
        match wait {
            Some(w) => tokio::time::sleep(w).await,
            None => {
                let next = if out.out_of_service == Some(true) {
                    schedule.out_of_service_recheck.min(schedule.heartbeat)
                } else {
                    schedule.heartbeat
                };
                tokio::select! {
                    r = rx.changed() => if r.is_err() { return },
                    _ = tokio::time::sleep(jitter_down(next, 0.1)) => {}
                }
            }
        }
    }
}

fn account(m: &Metrics, out: &report::Outcome) {
    if out.state == State::Skipped {
        return;
    }
    let mut ok = 0u64;
    if out.out_of_service.is_some() {
        m.api("get", "ok", 1);
        ok += 1;
    }
    for w in &out.writes {
        let (verb, n) = match w {
            Write::Annotations { .. } | Write::Condition { .. } => ("patch", 1),
            Write::Event { .. } => ("create", 1),
            Write::EventRepeat { .. } => ("patch", 2),
        };
        m.api(verb, "ok", n);
        ok += n;
    }
    let failed = u64::from(out.requests).saturating_sub(ok);
    m.api("request", &state_str(out.state), failed);
    if out.errors.is_empty() {
        m.reported(jiff::Timestamp::now().as_second());
    }
}
