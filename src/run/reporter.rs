//! The reporting actor: it writes what the reconciler decided, over one
//! long-lived connection, and watches the daemon's own Node for the
//! out-of-service taint (a field-selected watch). It decides nothing: when
//! to write, and what, is [`super::reconcile`]'s.

use std::rc::Rc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::observation::Observation;
use crate::report::{self, Connection, Options, State, Write};

use super::metrics::Metrics;
use super::reconcile::{ReportJob, Reported};
use super::schedule::{full_jitter, Backoff};

/// What the shell asks of the actor.
#[derive(Debug)]
pub enum Request {
    /// Connect now (and start watching the Node), without writing.
    Connect(Box<Observation>),
    Report(Box<ReportJob>, Box<Observation>),
}

/// What the actor tells the shell.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    Reported {
        result: Reported,
        /// The out-of-service taint as the report's GET saw it.
        out_of_service: Option<bool>,
        summary: String,
    },
    /// The Node's out-of-service taint, from the watch.
    OutOfService(bool),
    /// The watch broke (it is restarted with backoff).
    WatchLost(String),
}

/// A connection is rebuilt after this long (kubelet's client certificate
/// rotates), and after any failure to reach or be accepted by the server.
const CONNECTION_MAX_AGE: Duration = Duration::from_secs(3600);

/// Run until the request channel closes. The first watch of the Node
/// starts after a random delay up to `first_watch_within` (a fleet that
/// starts in the same second opens its watches over that time, not in one
/// second: benches/fleet.rs); the reports keep their own delays.
pub async fn task(
    opts: Options,
    reporter: String,
    poll_max: Duration,
    first_watch_within: Duration,
    mut rx: mpsc::Receiver<Request>,
    tx: mpsc::Sender<Message>,
    metrics: Rc<Metrics>,
) {
    let mut conn: Option<(Connection, Instant)> = None;
    let mut watch: Option<JoinHandle<()>> = None;
    let mut first_watch = Some(full_jitter(first_watch_within));
    while let Some(req) = rx.recv().await {
        let obs = match &req {
            Request::Connect(o) | Request::Report(_, o) => o.as_ref(),
        };
        if conn
            .as_ref()
            .is_none_or(|(_, at)| at.elapsed() > CONNECTION_MAX_AGE)
        {
            match report::connect(&opts, obs, false).await {
                Ok(c) => {
                    if let Some(w) = watch.take() {
                        w.abort();
                    }
                    watch = Some(tokio::task::spawn_local(watch_node(
                        c.clone(),
                        tx.clone(),
                        poll_max,
                        opts.timeout,
                        first_watch.take().unwrap_or_default(),
                    )));
                    conn = Some((c, Instant::now()));
                }
                Err(out) => {
                    if let Request::Report(..) = req {
                        // No node name: nothing to report on here. No
                        // credentials yet (a node still joining): try again.
                        let result = match out.node {
                            None => Reported::Skipped(out.summary.clone()),
                            Some(_) => Reported::Failed(out.summary.clone()),
                        };
                        let m = Message::Reported {
                            result,
                            out_of_service: None,
                            summary: out.summary,
                        };
                        if tx.send(m).await.is_err() {
                            return;
                        }
                    }
                    continue;
                }
            }
        }
        let Request::Report(job, obs) = req else {
            continue;
        };
        let (c, _) = conn.as_ref().expect("connected above");
        let out = report::report_on(
            c,
            &opts,
            &job.assessment,
            &job.events,
            &obs,
            false,
            Some(&reporter),
        )
        .await;
        account(&metrics, &out);
        let result = match out.state {
            State::Unchanged | State::Updated | State::DryRun => match &out.other_reporter {
                Some(o) => Reported::OtherReporter(o.clone()),
                None => Reported::Delivered,
            },
            State::Skipped => Reported::Skipped(out.summary.clone()),
            State::Unreachable | State::TimedOut | State::Forbidden => {
                conn = None;
                Reported::Failed(out.summary.clone())
            }
            State::NotFound | State::Failed => Reported::Failed(out.summary.clone()),
        };
        let m = Message::Reported {
            result,
            out_of_service: out.out_of_service,
            summary: out.summary,
        };
        if tx.send(m).await.is_err() {
            return;
        }
    }
    if let Some(w) = watch {
        w.abort();
    }
}

/// Watch the Node for as long as the connection is in use; each break is
/// said to the shell. While the watch cannot be had (an old or strict API
/// server, a proxy), the Node is read instead, at least every `poll_max`.
async fn watch_node(
    conn: Connection,
    tx: mpsc::Sender<Message>,
    poll_max: Duration,
    timeout: Duration,
    after: Duration,
) {
    tokio::time::sleep(after).await;
    let mut backoff = Backoff::new(Duration::from_secs(1), Duration::from_secs(300));
    loop {
        let mut news = false;
        let r = report::watch_out_of_service(&conn, |v| {
            news = true;
            tx.try_send(Message::OutOfService(v)).is_ok() || !tx.is_closed()
        })
        .await;
        if news {
            backoff.reset();
        }
        if tx.is_closed() {
            return;
        }
        let wait = match r {
            Ok(true) => {
                backoff.reset();
                Duration::from_millis(200)
            }
            Ok(false) => full_jitter(backoff.fail()),
            Err(e) => {
                let _ = tx.send(Message::WatchLost(e)).await;
                if let Ok(v) = report::read_out_of_service(&conn, timeout).await {
                    let _ = tx.send(Message::OutOfService(v)).await;
                }
                full_jitter(backoff.fail()).min(poll_max)
            }
        };
        tokio::time::sleep(wait.max(Duration::from_millis(200))).await;
    }
}

fn state_str(s: State) -> String {
    serde_json::to_value(s)
        .ok()
        .and_then(|v| v.as_str().map(String::from))
        .unwrap_or_else(|| "failed".into())
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
