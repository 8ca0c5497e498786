//! Carry out a plan. The only module of the fix path with side effects;
//! each effect goes through one seam (systemd over D-Bus, swapoff(2),
//! `files`).

use std::time::Duration;

use jiff::Timestamp;
use serde::Serialize;

use crate::config::Config;
use crate::fstab;
use crate::hostroot::HostRoot;
use crate::plan::{Plan, Step};
use crate::systemd::UnitManager;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    Planned,
    Done,
    Skipped,
    Failed,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Planned => "planned",
            Outcome::Done => "done",
            Outcome::Skipped => "skipped",
            Outcome::Failed => "failed",
        }
    }
}

/// What happened to one action.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ActionOutcome {
    pub id: String,
    pub subject: String,
    pub outcome: Outcome,
    pub detail: String,
}

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

/// Apply the plan in order. A failed swapoff holds back starting the units
/// (kubelet would only crash-loop); other failures do not stop later steps.
pub async fn apply<S: UnitManager>(
    plan: &Plan,
    sd: Option<&S>,
    host: &HostRoot,
    cfg: &Config,
    now: Timestamp,
) -> Vec<ActionOutcome> {
    let mut out = Vec::new();
    let mut swap_still_on = false;
    for a in &plan.actions {
        let (outcome, detail) = match (&a.step, sd) {
            (Step::Swapoff { device }, _) => match crate::swap::swapoff(&host.path(device)) {
                Ok(()) => (Outcome::Done, format!("swap on {device} turned off")),
                Err(e) => {
                    swap_still_on = true;
                    (Outcome::Failed, format!("{e:#}"))
                }
            },
            (Step::CommentFstab { path, lines }, _) => comment_fstab(host, path, lines, now),
            (Step::Start { unit }, Some(_)) if swap_still_on => (
                Outcome::Skipped,
                format!("swap is still on: not starting {unit}"),
            ),
            (Step::Start { unit }, Some(sd)) => start(sd, unit, cfg).await,
            (step, Some(sd)) => {
                let r = match step {
                    Step::DisableUnit { unit } => sd.disable(unit).await,
                    Step::MaskUnit { unit } => sd.mask(unit).await,
                    Step::UnmaskUnit { unit } => sd.unmask(unit).await,
                    Step::ResetFailed { unit } => sd.reset_failed(unit).await,
                    Step::Enable { unit } => sd.enable(unit).await,
                    Step::Reload => sd.reload().await,
                    Step::Swapoff { .. } | Step::CommentFstab { .. } | Step::Start { .. } => {
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
        tracing::info!(action = a.step.id(), subject = %a.step.subject(), outcome = outcome.as_str(), "{detail}");
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

fn comment_fstab(
    host: &HostRoot,
    path: &str,
    lines: &[usize],
    now: Timestamp,
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

async fn start<S: UnitManager>(sd: &S, unit: &str, cfg: &Config) -> (Outcome, String) {
    if !cfg.fix.wait_for_start {
        return match sd.queue_start(unit).await {
            Ok(()) => (
                Outcome::Done,
                format!("start job for {unit} queued (not waiting for it)"),
            ),
            Err(e) => (Outcome::Failed, format!("{e:#}")),
        };
    }
    let t0 = std::time::Instant::now();
    let job = match sd
        .start(unit, Duration::from_secs(cfg.fix.start_timeout_secs))
        .await
    {
        Ok(r) => r,
        Err(e) => return (Outcome::Failed, format!("{e:#}")),
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
        Ok(s) if s.active_state == "active" => (
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
