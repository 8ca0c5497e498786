//! Carry out a plan. The only module of the fix path with side effects;
//! each effect goes through one seam (systemd over D-Bus, swapoff(2),
//! `files`).

use std::time::Duration;

use jiff::Timestamp;

use crate::config::Config;
use crate::fstab;
use crate::hostroot::HostRoot;
use crate::plan::{Plan, Step};
use crate::systemd::{JobMode, UnitManager};

pub use crate::plan::{ActionOutcome, Outcome};

/// The plan as a dry run: every action `planned`, every skip `skipped`.
pub fn dry_run(plan: &Plan) -> Vec<ActionOutcome> {
    let mut out: Vec<ActionOutcome> = plan
        .actions
        .iter()
        .map(|a| ActionOutcome {
            id: a.step.id().into(),
            subject: a.step.subject(),
            outcome: Outcome::Planned,
            detail: a.reason.clone(),
        })
        .collect();
    out.extend(skips(plan));
    out
}

fn skips(plan: &Plan) -> impl Iterator<Item = ActionOutcome> + '_ {
    plan.skipped.iter().map(|s| ActionOutcome {
        id: s.id.into(),
        subject: s.subject.clone(),
        outcome: Outcome::Skipped,
        detail: s.reason.clone(),
    })
}

/// The marker comment put before each commented-out fstab line.
pub fn fstab_marker(now: Timestamp) -> String {
    // Whole seconds, truncated like the backup's name, so the two agree.
    let now = now.strftime("%Y-%m-%dT%H:%M:%SZ");
    format!("taint-guard {now}: swap line commented out, kubelet refuses to start with swap on (original line below)")
}

/// The suffix of backup file names (`20261127T233915Z`).
pub fn stamp(now: Timestamp) -> String {
    now.strftime("%Y%m%dT%H%M%SZ").to_string()
}

/// The fstab edit a `CommentFstab` step would make: (old, new) contents,
/// from one read of the file's bytes (shown lossily: bytes that are not
/// UTF-8 as U+FFFD; the edit itself keeps them).
pub fn fstab_edit(
    host: &HostRoot,
    path: &str,
    lines: &[usize],
    now: Timestamp,
) -> anyhow::Result<(String, String)> {
    let p = host.resolve(path)?;
    let (old, new) = fstab::preview(&p, lines, &fstab_marker(now))?;
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    Ok((text(&old), text(&new)))
}

/// The swapoff(2) seam: a test can count calls and make one fail or hang.
pub trait Swapoff: Send + Sync + 'static {
    fn swapoff(&self, path: &std::path::Path) -> anyhow::Result<()>;
}

/// The real syscall (fault point `apply::swapoff` before it).
pub struct Kernel;

impl Swapoff for Kernel {
    fn swapoff(&self, path: &std::path::Path) -> anyhow::Result<()> {
        crate::files::failpoint("apply::swapoff")?;
        crate::swap::swapoff(path)
    }
}

/// Apply the plan in order. A failed or timed-out swapoff holds back
/// starting the units (kubelet would only crash-loop); other failures do not
/// stop later steps.
pub async fn apply<S: UnitManager>(
    plan: &Plan,
    sd: Option<&S>,
    host: &HostRoot,
    cfg: &Config,
    now: Timestamp,
) -> Vec<ActionOutcome> {
    apply_with(plan, sd, std::sync::Arc::new(Kernel), host, cfg, now).await
}

/// [`apply`] with the swapoff seam given.
pub async fn apply_with<S: UnitManager, K: Swapoff>(
    plan: &Plan,
    sd: Option<&S>,
    kernel: std::sync::Arc<K>,
    host: &HostRoot,
    cfg: &Config,
    now: Timestamp,
) -> Vec<ActionOutcome> {
    let mut out = Vec::new();
    let mut swap_still_on = false;
    // One bound for all swapoffs together (the boot unit's TimeoutStartSec
    // is sized on it).
    let swapoff_deadline =
        tokio::time::Instant::now() + Duration::from_secs(cfg.fix.swapoff_timeout_secs);
    let pause_cap = jiff::SignedDuration::from_hours(cfg.pause.max_hours.min(1 << 40) as i64);
    for a in &plan.actions {
        // The plan was made from an observation that may be minutes old
        // (swapoff takes time): a pause taken since stops every later side
        // effect (swapoff, the fstab edit, swap units, unit steps).
        let effect = !matches!(a.step, Step::ClearPause { .. } | Step::Reload);
        let paused_now = effect
            .then(|| crate::pause::read(host, Timestamp::now(), pause_cap))
            .flatten()
            .and_then(|st| st.active().cloned());
        let (outcome, detail) = match (&a.step, sd) {
            (_, _) if paused_now.is_some() => (
                Outcome::Skipped,
                format!(
                    "paused since the check: {}",
                    paused_now
                        .as_ref()
                        .map(|p| p.describe())
                        .unwrap_or_default()
                ),
            ),
            (Step::Swapoff { device }, _) if swap_still_on => (
                Outcome::Skipped,
                format!("an earlier swapoff did not finish: {device} left on"),
            ),
            (Step::Swapoff { device }, _) => {
                let r = swapoff_bounded(
                    kernel.clone(),
                    host.path(device),
                    swapoff_deadline.saturating_duration_since(tokio::time::Instant::now()),
                )
                .await;
                match r {
                    (Outcome::Done, _) => (Outcome::Done, format!("swap on {device} turned off")),
                    other => {
                        swap_still_on = true;
                        other
                    }
                }
            }
            (Step::CommentFstab { path, lines }, _) => {
                comment_fstab(host, path, lines, now, cfg.fix.fstab_backups)
            }
            // reset-failed is part of the start it prepares: never alone (a
            // unit reset without its start looks stopped by a person).
            (Step::ResetFailed { unit }, _)
                if swap_still_on
                    || !plan
                        .actions
                        .iter()
                        .any(|x| x.step == (Step::Start { unit: unit.clone() })) =>
            {
                (
                    Outcome::Skipped,
                    format!("{unit} will not be started now: left as it is"),
                )
            }
            (Step::PersistModule { module }, _) => persist_line(
                host,
                crate::readiness::modules::OURS,
                |old| crate::readiness::modules::persist_text(old, module),
                now,
                &format!("{module} listed"),
            ),
            (Step::PersistSysctl { key, value }, _) => persist_line(
                host,
                crate::readiness::sysctl::OURS,
                |old| crate::readiness::sysctl::persist_text(old, key, value),
                now,
                &format!("`{key} = {value}` written"),
            ),
            (Step::ClearPause { path }, _) => {
                match crate::pause::clear_expired(host, path, now, pause_cap) {
                    Ok(true) => (Outcome::Done, format!("removed the expired pause {path}")),
                    Ok(false) => (
                        Outcome::Skipped,
                        format!("{path} is gone or no longer expired"),
                    ),
                    Err(e) => (Outcome::Failed, format!("{e:#}")),
                }
            }
            (Step::Start { unit }, Some(_)) if swap_still_on => (
                Outcome::Skipped,
                format!("swap is still on: not starting {unit}"),
            ),
            (Step::Start { unit }, Some(sd)) => match sd.unit_state(unit).await {
                // A stop that began (or ended) since the check is a
                // person's: not undone. Started by someone else: done.
                Ok(st) if crate::evaluate::motion(&st) == crate::evaluate::Motion::Stopping => (
                    Outcome::Skipped,
                    format!(
                        "{unit} is being stopped ({}/{}): not starting it",
                        st.active_state, st.sub_state
                    ),
                ),
                Ok(st)
                    if crate::evaluate::motion(&st) == crate::evaluate::Motion::Up
                        && st.active_state == crate::systemd::types::ActiveState::Active =>
                {
                    (Outcome::Skipped, format!("{unit} is already active"))
                }
                _ => start(sd, unit, cfg).await,
            },
            (step, Some(sd)) => {
                let r = match step {
                    Step::DisableUnit { unit } => sd.disable(unit).await,
                    Step::MaskUnit { unit } => sd.mask(unit).await,
                    Step::UnmaskUnit { unit } => sd.unmask(unit).await,
                    Step::ResetFailed { unit } => sd.reset_failed(unit).await,
                    Step::Enable { unit } => match crate::files::failpoint("apply::enable") {
                        Ok(()) => sd.enable(unit).await,
                        Err(e) => Err(e),
                    },
                    Step::Reload => sd.reload().await,
                    Step::Swapoff { .. }
                    | Step::CommentFstab { .. }
                    | Step::Start { .. }
                    | Step::ClearPause { .. }
                    | Step::PersistModule { .. }
                    | Step::PersistSysctl { .. } => {
                        unreachable!("handled above")
                    }
                };
                match r {
                    Ok(()) => (Outcome::Done, a.reason.clone()),
                    Err(e) => (Outcome::Failed, format!("{e:#}")),
                }
            }
            (_, None) => (Outcome::Failed, "no connection to systemd".into()),
        };
        tracing::info!(
            action = a.step.id(),
            unit = a.step.unit(),
            subject = %a.step.subject(),
            outcome = outcome.as_str(),
            "{} {}: {}: {detail}",
            a.step.id(),
            a.step.subject(),
            outcome.as_str()
        );
        out.push(ActionOutcome {
            id: a.step.id().into(),
            subject: a.step.subject(),
            outcome,
            detail,
        });
    }
    out.extend(skips(plan));
    out
}

/// swapoff(2) in a thread of its own, waited for at most `bound`. Past it
/// the thread is abandoned: in a one-shot run the process then exits, and a
/// fatal signal makes the kernel abandon the swapoff (swap stays on); the
/// daemon lets it run on.
async fn swapoff_bounded<K: Swapoff>(
    kernel: std::sync::Arc<K>,
    path: std::path::PathBuf,
    bound: Duration,
) -> (Outcome, String) {
    let (tx, rx) = tokio::sync::oneshot::channel();
    let shown = path.display().to_string();
    let spawned = std::thread::Builder::new()
        .name("swapoff".into())
        .spawn(move || {
            let _ = tx.send(kernel.swapoff(&path));
        });
    if let Err(e) = spawned {
        return (
            Outcome::Failed,
            format!("cannot start a swapoff thread: {e}"),
        );
    }
    match tokio::time::timeout(bound, rx).await {
        Ok(Ok(Ok(()))) => (Outcome::Done, String::new()),
        Ok(Ok(Err(e))) => (Outcome::Failed, format!("{e:#}")),
        Ok(Err(_)) => (Outcome::Failed, format!("swapoff {shown}: the thread died")),
        Err(_) => (
            Outcome::TimedOut,
            format!(
                "swapoff {shown} did not finish within the bound (fix.swapoff_timeout_secs, for all swapoffs together; {} ms were left for this one): swap stays on, nothing is started",
                bound.as_millis()
            ),
        ),
    }
}

/// Write taint-guard's own file `node_path` (modules-load.d, sysctl.d) as
/// `edit` makes it from its current text: created atomically when new; an
/// existing one rewritten atomically with a backup beside it, only the line
/// meant changing.
fn persist_line(
    host: &HostRoot,
    node_path: &str,
    edit: impl Fn(&str) -> String,
    now: Timestamp,
    what: &str,
) -> (Outcome, String) {
    // Ours is a plain file, or nothing yet: a link (to /dev/null: masked)
    // or anything else there is a person's, never written through.
    let target = host.path(node_path);
    match std::fs::symlink_metadata(&target) {
        Ok(m) if !m.is_file() => {
            return (
                Outcome::Skipped,
                format!("{node_path} is not a plain file (masked?): left as it is"),
            )
        }
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            return (Outcome::Failed, format!("{node_path}: {e}"))
        }
        _ => {}
    }
    use std::path::Path;
    if let Ok(dir) = host.resolve(Path::new(node_path).parent().unwrap_or(Path::new("/"))) {
        if dir != target.parent().unwrap_or(Path::new("/")) {
            return (
                Outcome::Skipped,
                format!("the directory of {node_path} is a link: left as it is"),
            );
        }
    }
    let old = match std::fs::read_to_string(&target) {
        Ok(t) => Some(t),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return (Outcome::Failed, format!("reading {node_path}: {e}")),
    };
    let new = edit(old.as_deref().unwrap_or(""));
    if old.as_deref() == Some(new.as_str()) {
        return (Outcome::Skipped, format!("{node_path} already says so"));
    }
    let r = match &old {
        None => target
            .parent()
            .map(std::fs::create_dir_all)
            .transpose()
            .map_err(anyhow::Error::from)
            .and_then(|_| crate::files::write_atomic(&target, new.as_bytes(), None))
            .map(|()| format!("{what}: created {node_path}")),
        Some(_) => crate::files::rewrite(&target, new.as_bytes(), &stamp(now)).map(|bak| {
            let bak = bak
                .strip_prefix(host.root())
                .map(|p| format!("/{}", p.display()))
                .unwrap_or_else(|_| bak.display().to_string());
            format!("{what} in {node_path}; previous version saved as {bak}")
        }),
    };
    match r {
        Ok(d) => (Outcome::Done, d),
        Err(e) => (Outcome::Failed, format!("{e:#}")),
    }
}

fn comment_fstab(
    host: &HostRoot,
    path: &str,
    lines: &[usize],
    now: Timestamp,
    keep_backups: usize,
) -> (Outcome, String) {
    let list = |l: &[usize]| {
        l.iter()
            .map(|l| l.to_string())
            .collect::<Vec<_>>()
            .join(", ")
    };
    // A symlinked fstab is rewritten where it really lives (inside the host
    // root), with the backup next to it; the link stays a link.
    let target = match host.resolve(path) {
        Ok(t) => t,
        Err(e) => return (Outcome::Failed, format!("resolving {path}: {e}")),
    };
    let o = match fstab::comment_out_swap_lines(&target, lines, &fstab_marker(now), &stamp(now)) {
        Ok(o) => o,
        Err(e) => return (Outcome::Failed, format!("{e:#}")),
    };
    let Some(bak) = o.backup else {
        return (
            Outcome::Skipped,
            format!(
                "{path} has no live swap line at line {} any more",
                list(lines)
            ),
        );
    };
    // Keep the newest backups taint-guard made; a person's are never touched.
    if let Err(e) = crate::files::prune_backups(&target, keep_backups) {
        tracing::warn!("pruning old backups of {path}: {e:#}");
    }
    let bak = bak
        .strip_prefix(host.root())
        .map(|p| format!("/{}", p.display()))
        .unwrap_or_else(|_| bak.display().to_string());
    let mut detail = format!(
        "commented out {path} line {}; original saved as {bak}",
        list(&o.commented)
    );
    if o.attempts > 1 {
        detail +=
            &format!(" ({path} changed while being edited; the other writer's change was kept)");
    }
    if !o.missing.is_empty() {
        detail += &format!(
            "; line {} no longer a swap line, left alone",
            list(&o.missing)
        );
    }
    (Outcome::Done, detail)
}

/// A start refused because another job is queued for the unit (job mode
/// `fail` never replaces one: a person's stop, or systemd's own) is a
/// conflict we step back from, not a failure of ours.
fn start_refused(unit: &str, e: anyhow::Error) -> (Outcome, String) {
    let text = format!("{e:#}");
    let destructive = e
        .chain()
        .filter_map(|c| c.downcast_ref::<crate::systemd::JobRefused>())
        .any(|r| r.is_destructive());
    if destructive {
        (
            Outcome::Skipped,
            format!("not starting {unit}: another job is queued for it (a stop in progress?) and taint-guard does not replace it: {text}"),
        )
    } else {
        (Outcome::Failed, text)
    }
}

async fn start<S: UnitManager>(sd: &S, unit: &str, cfg: &Config) -> (Outcome, String) {
    if !cfg.fix.wait_for_start {
        return match sd.queue_start(unit, JobMode::Fail).await {
            Ok(()) => (
                Outcome::Done,
                format!("start job for {unit} queued (not waiting for it)"),
            ),
            Err(e) => start_refused(unit, e),
        };
    }
    let t0 = std::time::Instant::now();
    let job = match sd
        .start(
            unit,
            JobMode::Fail,
            Duration::from_secs(cfg.fix.start_timeout_secs),
        )
        .await
    {
        Ok(r) => r,
        Err(e) => return start_refused(unit, e),
    };
    let job_ms = t0.elapsed().as_millis();
    if job != "done" {
        let why = sd
            .unit_state(unit)
            .await
            .map(|s| format!("Result={}, exit status {}", s.result, s.exec_main_status))
            .unwrap_or_default();
        return (
            Outcome::Failed,
            format!("start job for {unit} finished with result '{job}' ({why}); see journalctl -u {unit} -b"),
        );
    }
    // A crash-looping service passes its start job; make sure it stays up.
    tokio::time::sleep(Duration::from_secs(cfg.fix.settle_secs)).await;
    match sd.unit_state(unit).await {
        Ok(s) if s.active_state == crate::systemd::types::ActiveState::Active => (
            Outcome::Done,
            format!(
                "{unit} active ({}) {job_ms} ms after StartUnit, still active after {}s",
                s.sub_state, cfg.fix.settle_secs
            ),
        ),
        Ok(s) => (
            Outcome::Failed,
            format!(
                "{unit} started but is {}/{} after {}s: Result={}, exit status {}; see journalctl -u {unit} -b",
                s.active_state, s.sub_state, cfg.fix.settle_secs, s.result, s.exec_main_status
            ),
        ),
        Err(e) => (Outcome::Failed, format!("{e:#}")),
    }
}

#[cfg(test)]
mod tests {
    use std::cell::RefCell;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    use super::*;
    use crate::observation::UnitState;
    use crate::plan::Action;

    /// Records every call, in order; answers as configured.
    #[derive(Default)]
    struct FakeSd {
        calls: RefCell<Vec<String>>,
        /// Error text StartUnit answers with, if any.
        start_error: Option<crate::systemd::JobRefused>,
        started: std::cell::Cell<bool>,
        /// The unit's state before any start: (ActiveState, job).
        before: Option<(&'static str, Option<&'static str>)>,
    }

    impl UnitManager for FakeSd {
        async fn unit_state(&self, name: &str) -> anyhow::Result<UnitState> {
            self.calls.borrow_mut().push(format!("state {name}"));
            let (active, job) = if self.started.get() {
                ("active", None)
            } else {
                self.before.unwrap_or(("inactive", None))
            };
            Ok(UnitState {
                load_state: "loaded".into(),
                active_state: active.into(),
                sub_state: "-".into(),
                job: job.map(Into::into),
                ..Default::default()
            })
        }
        async fn boot_swap_unit_files(&self) -> anyhow::Result<Vec<(String, String)>> {
            Ok(vec![])
        }
        async fn virtualization(&self) -> anyhow::Result<String> {
            Ok(String::new())
        }
        async fn enable(&self, unit: &str) -> anyhow::Result<()> {
            self.calls.borrow_mut().push(format!("enable {unit}"));
            Ok(())
        }
        async fn disable(&self, unit: &str) -> anyhow::Result<()> {
            self.calls.borrow_mut().push(format!("disable {unit}"));
            Ok(())
        }
        async fn mask(&self, unit: &str) -> anyhow::Result<()> {
            self.calls.borrow_mut().push(format!("mask {unit}"));
            Ok(())
        }
        async fn unmask(&self, unit: &str) -> anyhow::Result<()> {
            self.calls.borrow_mut().push(format!("unmask {unit}"));
            Ok(())
        }
        async fn reload(&self) -> anyhow::Result<()> {
            self.calls.borrow_mut().push("reload".into());
            Ok(())
        }
        async fn reset_failed(&self, unit: &str) -> anyhow::Result<()> {
            self.calls.borrow_mut().push(format!("reset-failed {unit}"));
            Ok(())
        }
        async fn start(&self, unit: &str, mode: JobMode, _t: Duration) -> anyhow::Result<String> {
            self.calls
                .borrow_mut()
                .push(format!("start {unit} mode={}", mode.as_str()));
            self.started.set(self.start_error.is_none());
            match &self.start_error {
                Some(e) => Err(anyhow::Error::new(e.clone()).context("StartUnit")),
                None => Ok("done".into()),
            }
        }
        async fn queue_start(&self, unit: &str, mode: JobMode) -> anyhow::Result<()> {
            self.calls
                .borrow_mut()
                .push(format!("queue-start {unit} mode={}", mode.as_str()));
            Ok(())
        }
    }

    /// swapoff(2) stand-in: counts calls; fails, hangs or succeeds.
    struct FakeKernel {
        calls: AtomicUsize,
        fail: bool,
        hang: Duration,
    }

    impl Swapoff for FakeKernel {
        fn swapoff(&self, _path: &std::path::Path) -> anyhow::Result<()> {
            self.calls.fetch_add(1, Ordering::SeqCst);
            std::thread::sleep(self.hang);
            if self.fail {
                anyhow::bail!("swapoff /swapfile: Cannot allocate memory (os error 12)");
            }
            Ok(())
        }
    }

    fn kernel(fail: bool, hang_ms: u64) -> Arc<FakeKernel> {
        Arc::new(FakeKernel {
            calls: AtomicUsize::new(0),
            fail,
            hang: Duration::from_millis(hang_ms),
        })
    }

    fn seed_plan() -> Plan {
        let act = |step| Action {
            step,
            reason: "r".into(),
        };
        let unit = || "kubelet.service".to_string();
        Plan {
            actions: vec![
                act(Step::Swapoff {
                    device: "/swapfile".into(),
                }),
                act(Step::Enable { unit: unit() }),
                act(Step::Reload),
                act(Step::Start { unit: unit() }),
            ],
            ..Default::default()
        }
    }

    fn cfg() -> Config {
        let mut c = Config::default();
        c.fix.settle_secs = 0;
        c.fix.swapoff_timeout_secs = 1;
        c
    }

    fn outcomes(v: &[ActionOutcome]) -> Vec<(&str, Outcome)> {
        v.iter().map(|o| (o.id.as_str(), o.outcome)).collect()
    }

    #[tokio::test]
    async fn order_and_job_mode_fail() {
        let sd = FakeSd::default();
        let k = kernel(false, 0);
        let host = HostRoot::new("/nonexistent");
        let out = apply_with(
            &seed_plan(),
            Some(&sd),
            k.clone(),
            &host,
            &cfg(),
            Timestamp::now(),
        )
        .await;
        assert_eq!(
            outcomes(&out),
            vec![
                ("swapoff", Outcome::Done),
                ("enable", Outcome::Done),
                ("daemon-reload", Outcome::Done),
                ("start", Outcome::Done)
            ]
        );
        assert_eq!(k.calls.load(Ordering::SeqCst), 1);
        assert_eq!(
            *sd.calls.borrow(),
            vec![
                "enable kubelet.service",
                "reload",
                // Still stopped, not being stopped: start.
                "state kubelet.service",
                "start kubelet.service mode=fail",
                "state kubelet.service"
            ]
        );
        // --no-block queues with the same mode.
        let sd = FakeSd::default();
        let mut c = cfg();
        c.fix.wait_for_start = false;
        apply_with(
            &seed_plan(),
            Some(&sd),
            kernel(false, 0),
            &host,
            &c,
            Timestamp::now(),
        )
        .await;
        assert_eq!(
            sd.calls.borrow().last().unwrap(),
            "queue-start kubelet.service mode=fail"
        );
    }

    #[tokio::test]
    async fn failed_swapoff_means_no_start() {
        let sd = FakeSd::default();
        let host = HostRoot::new("/nonexistent");
        let out = apply_with(
            &seed_plan(),
            Some(&sd),
            kernel(true, 0),
            &host,
            &cfg(),
            Timestamp::now(),
        )
        .await;
        assert_eq!(
            outcomes(&out),
            vec![
                ("swapoff", Outcome::Failed),
                ("enable", Outcome::Done),
                ("daemon-reload", Outcome::Done),
                ("start", Outcome::Skipped)
            ]
        );
        assert!(!sd.calls.borrow().iter().any(|c| c.starts_with("start")));
    }

    #[tokio::test]
    async fn hung_swapoff_times_out_and_nothing_starts() {
        let sd = FakeSd::default();
        let host = HostRoot::new("/nonexistent");
        // The fake swapoff returns Ok after 5 s: TimedOut (not Done) is what
        // shows the 1 s bound held — no wall-clock assertion to flake.
        let out = apply_with(
            &seed_plan(),
            Some(&sd),
            kernel(false, 5000),
            &host,
            &cfg(),
            Timestamp::now(),
        )
        .await;
        assert_eq!(out[0].outcome, Outcome::TimedOut);
        assert!(
            out[0].detail.contains("did not finish within the bound"),
            "{}",
            out[0].detail
        );
        assert_eq!(out[3].outcome, Outcome::Skipped);
        assert!(!sd.calls.borrow().iter().any(|c| c.starts_with("start")));
    }

    #[tokio::test]
    async fn a_queued_job_is_not_replaced() {
        let sd = FakeSd {
            start_error: Some(crate::systemd::JobRefused {
                unit: "kubelet.service".into(),
                name: "org.freedesktop.systemd1.TransactionIsDestructive".into(),
                message: "Transaction for kubelet.service/start is destructive (kubelet.service has 'stop' job queued, but 'start' is included in transaction).".into(),
            }),
            ..Default::default()
        };
        let host = HostRoot::new("/nonexistent");
        let out = apply_with(
            &seed_plan(),
            Some(&sd),
            kernel(false, 0),
            &host,
            &cfg(),
            Timestamp::now(),
        )
        .await;
        assert_eq!(out[3].outcome, Outcome::Skipped);
        assert!(
            out[3].detail.contains("does not replace it"),
            "{}",
            out[3].detail
        );
    }

    /// swapoff(2) that takes long, during which a person pauses taint-guard.
    struct PausedDuringSwapoff {
        host: HostRoot,
    }

    impl Swapoff for PausedDuringSwapoff {
        fn swapoff(&self, _: &std::path::Path) -> anyhow::Result<()> {
            crate::pause::pause(
                &self.host,
                &crate::pause::Pause {
                    until: Timestamp::now() + jiff::SignedDuration::from_hours(1),
                    reason: Some("taken during swapoff".into()),
                    by: None,
                    since: None,
                },
            )?;
            Ok(())
        }
    }

    // Issue 18, problem 9: a pause taken during a long swapoff did not stop
    // the fstab edit or the swap-unit disable/mask.
    #[tokio::test]
    async fn a_pause_taken_during_swapoff_stops_every_later_step() {
        let t = tempfile::tempdir().unwrap();
        let host = HostRoot::new(t.path());
        std::fs::create_dir_all(t.path().join("etc")).unwrap();
        let fstab = "/swapfile none swap sw 0 0\n";
        std::fs::write(t.path().join("etc/fstab"), fstab).unwrap();
        let act = |step| Action {
            step,
            reason: "r".into(),
        };
        let plan = Plan {
            actions: vec![
                act(Step::Swapoff {
                    device: "/swapfile".into(),
                }),
                act(Step::CommentFstab {
                    path: "/etc/fstab".into(),
                    lines: vec![1],
                }),
                act(Step::DisableUnit {
                    unit: "dev-sdb2.swap".into(),
                }),
                act(Step::MaskUnit {
                    unit: "dev-sdb3.swap".into(),
                }),
            ],
            ..Plan::default()
        };
        let sd = FakeSd::default();
        let k = Arc::new(PausedDuringSwapoff { host: host.clone() });
        // The fake swapoff writes (and fsyncs) a pause file: on a loaded CI
        // disk that took over cfg()'s 1 s bound. The bound is not under test.
        let mut c = cfg();
        c.fix.swapoff_timeout_secs = 120;
        let out = apply_with(&plan, Some(&sd), k, &host, &c, Timestamp::now()).await;
        assert_eq!(
            outcomes(&out),
            vec![
                ("swapoff", Outcome::Done),
                ("fstab-comment", Outcome::Skipped),
                ("swap-unit-disable", Outcome::Skipped),
                ("swap-unit-mask", Outcome::Skipped),
            ]
        );
        assert!(
            out[1].detail.contains("taken during swapoff"),
            "{}",
            out[1].detail
        );
        assert_eq!(
            std::fs::read_to_string(t.path().join("etc/fstab")).unwrap(),
            fstab
        );
        assert!(sd.calls.borrow().is_empty(), "{:?}", sd.calls.borrow());
    }

    #[tokio::test]
    async fn a_pause_or_a_stop_taken_since_the_check_is_honoured() {
        // A pause written after the plan was made: every side effect skipped.
        let t = tempfile::tempdir().unwrap();
        let host = HostRoot::new(t.path());
        let until = Timestamp::now() + jiff::SignedDuration::from_hours(1);
        crate::pause::pause(
            &host,
            &crate::pause::Pause {
                until,
                reason: Some("mid-repair".into()),
                by: None,
                since: Some(Timestamp::now()),
            },
        )
        .unwrap();
        let sd = FakeSd::default();
        let out = apply_with(
            &seed_plan(),
            Some(&sd),
            kernel(false, 0),
            &host,
            &cfg(),
            Timestamp::now(),
        )
        .await;
        assert_eq!(
            outcomes(&out),
            vec![
                ("swapoff", Outcome::Skipped),
                ("enable", Outcome::Skipped),
                ("daemon-reload", Outcome::Done),
                ("start", Outcome::Skipped)
            ]
        );
        assert!(out[3].detail.contains("mid-repair"), "{}", out[3].detail);
        assert_eq!(*sd.calls.borrow(), vec!["reload"]);

        // A stop began since the check: not started.
        let sd = FakeSd {
            before: Some(("deactivating", Some("stop"))),
            ..Default::default()
        };
        let host = HostRoot::new("/nonexistent");
        let out = apply_with(
            &seed_plan(),
            Some(&sd),
            kernel(false, 0),
            &host,
            &cfg(),
            Timestamp::now(),
        )
        .await;
        assert_eq!(out[3].outcome, Outcome::Skipped);
        assert!(
            out[3].detail.contains("is being stopped"),
            "{}",
            out[3].detail
        );
        assert!(!sd.calls.borrow().iter().any(|c| c.starts_with("start")));
    }

    #[tokio::test]
    async fn after_a_failed_swapoff_no_other_swapoff_starts() {
        let mut plan = seed_plan();
        plan.actions.insert(
            1,
            Action {
                step: Step::Swapoff {
                    device: "/swap2".into(),
                },
                reason: "r".into(),
            },
        );
        let k = kernel(true, 0);
        let sd = FakeSd::default();
        let host = HostRoot::new("/nonexistent");
        let out = apply_with(&plan, Some(&sd), k.clone(), &host, &cfg(), Timestamp::now()).await;
        assert_eq!(out[0].outcome, Outcome::Failed);
        assert_eq!(out[1].outcome, Outcome::Skipped);
        assert_eq!(k.calls.load(Ordering::SeqCst), 1);
    }
}
