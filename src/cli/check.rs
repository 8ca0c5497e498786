use std::time::Duration;

use clap::{Args, ValueEnum};

use super::{exit, Context, NodeArgs};
use crate::apply::{self, ActionOutcome};
use crate::config::Config;
use crate::evaluate::{self, Assessment};
use crate::observation::Observation;
use crate::observe::{self, Sources};
use crate::output::{self, CheckOutput};
use crate::plan;
use crate::report;
use crate::systemd::Systemd;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    Human,
    Json,
}

/// Check that kubelet runs now and will after a reboot; with --fix, repair
/// it. Exit 0 ok, 1 warning, 2 critical, 3 unknown, 64 usage, 78 config.
#[derive(Debug, Args)]
pub struct CheckCmd {
    #[arg(long, value_enum, default_value_t = Format::Human)]
    pub output: Format,

    /// Repair what can be repaired: swapoff, comment swap out of fstab,
    /// disable swap units, reset-failed, enable and start the units.
    #[arg(long)]
    pub fix: bool,

    /// With --fix: print the plan and the fstab diff, change nothing.
    #[arg(long, requires = "fix")]
    pub dry_run: bool,

    /// With --fix: only these repairs (repeatable): swapoff, fstab-comment,
    /// swap-unit-disable, swap-unit-mask, unmask, reset-failed, enable,
    /// start, pause-clear. A daemon-reload follows file changes.
    #[arg(long, requires = "fix", value_name = "ACTION", value_parser = clap::builder::PossibleValuesParser::new(plan::ACTION_IDS))]
    pub only: Vec<String>,

    /// With --fix: queue start jobs and return without waiting for them
    /// (for the boot-time unit ordered before kubelet.service).
    #[arg(long, requires = "fix")]
    pub no_block: bool,

    /// With --fix: run unattended, as the boot unit does: `[run] remediate
    /// = false` turns repair off (the plan is shown, nothing is done), a
    /// stopped unit is started only with `[run] start_stopped`, and the
    /// Node's out-of-service taint as the daemon last read it (kept in
    /// /var/lib/taint-guard) holds every repair, and the decisions the daemon
    /// saw people make are honoured.
    #[arg(long, requires = "fix")]
    pub unattended: bool,

    /// Write the result to this node's Node object (annotations, the
    /// KubeletHostProblem condition, Events). An unreachable API server is
    /// reported and does not change the exit code.
    #[arg(long)]
    pub report: bool,

    #[command(flatten)]
    pub node: NodeArgs,
}

const BUS_TIMEOUT: Duration = Duration::from_secs(5);

impl CheckCmd {
    pub fn run(self, ctx: &Context) -> u8 {
        let cfg = match ctx.load_config() {
            Ok(c) => c,
            Err(e) => {
                eprintln!("taint-guard: invalid config: {e}");
                return exit::CONFIG;
            }
        };
        let rt = match tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        {
            Ok(rt) => rt,
            Err(e) => {
                eprintln!("taint-guard: cannot start runtime: {e}");
                return exit::UNKNOWN;
            }
        };
        rt.block_on(self.run_async(ctx, &cfg))
    }

    async fn run_async(self, ctx: &Context, cfg: &Config) -> u8 {
        let mut cfg = cfg.clone();
        if self.no_block {
            cfg.fix.wait_for_start = false;
        }
        // A person ran --fix: a unit they (or a colleague) stopped earlier
        // is started too. Unattended (the boot unit), the daemon's rule.
        cfg.fix.start_stopped = !self.unattended || cfg.run.start_stopped;
        let cfg = &cfg;
        let src = Sources {
            host: ctx.host.clone(),
            proc_swaps: self.node.proc_swaps.clone(),
            cgroup_root: self.node.cgroup_root.clone(),
            assume_virtualization: ctx.assume_virtualization.clone(),
        };
        let conn = Systemd::connect(BUS_TIMEOUT)
            .await
            .map_err(|e| format!("{e:#}"));
        let sd = conn.as_ref().map_err(String::as_str);

        let mut obs = observe::observe(sd, &src, cfg).await;
        let mut assessment = evaluate::evaluate(&obs, cfg);
        let mut actions: Option<Vec<ActionOutcome>> = None;
        let mut fstab_diff: Option<String> = None;

        if self.fix {
            let now = jiff::Timestamp::now();
            if self.unattended {
                // What the daemon saw people decide (kubelet stopped and
                // disabled, a swap line put back) holds at boot too.
                crate::run::kept_memory(&ctx.host).honour(&mut assessment, &obs, cfg.run.enforce);
            }
            let pause = obs.pause.as_ref().and_then(|p| p.active()).cloned();
            let mut p = plan::plan(&assessment, &obs, &cfg.fix, pause.as_ref()).only(&self.only);
            if self.unattended {
                let kept = crate::run::kept_out_of_service(&ctx.host);
                if let Some(why) = unattended_hold(cfg.run.remediate, kept.as_ref(), now) {
                    p = p.hold_all(&why);
                } else if kept.is_none() && !p.actions.is_empty() {
                    tracing::info!("whether the Node carries {} is unknown here (nothing kept in {}; this check does not ask the API server): repairs are not held by it", report::node::OUT_OF_SERVICE, crate::run::OUT_OF_SERVICE_FILE);
                }
            }
            if self.dry_run {
                for a in &p.actions {
                    if let plan::Step::CommentFstab { path, lines } = &a.step {
                        if let Ok((old, new)) = apply::fstab_edit(&ctx.host, path, lines, now) {
                            fstab_diff = Some(crate::fstab::unified_diff(path, &old, &new));
                        }
                    }
                }
                actions = Some(apply::dry_run(&p));
                assessment = with_plan_findings(assessment, &p, cfg);
            } else {
                let done = apply::apply(&p, sd.ok(), &ctx.host, cfg, now).await;
                if !p.actions.is_empty() {
                    obs = observe::observe(sd, &src, cfg).await;
                    assessment = evaluate::evaluate(&obs, cfg);
                }
                assessment = with_plan_findings(assessment, &p, cfg);
                actions = Some(done);
            }
        }

        let report_json = if self.report {
            let opts = report::Options {
                node_name: self.node.node_name.clone(),
                kubeconfig: self.node.kubeconfig.clone(),
                host: ctx.host.clone(),
                timeout: Duration::from_secs(cfg.report.api_timeout_secs),
                max_findings_bytes: cfg.report.findings_annotation_max_bytes,
                heartbeat: Duration::from_secs(cfg.report.heartbeat_mins.saturating_mul(60)),
            };
            let outcome = report::report(
                &opts,
                &assessment,
                actions.as_deref().unwrap_or(&[]),
                &obs,
                self.dry_run,
            )
            .await;
            Some(serde_json::to_value(&outcome).unwrap_or_default())
        } else {
            None
        };

        print(
            self.output,
            &assessment,
            actions.as_deref(),
            fstab_diff.as_deref(),
            report_json.as_ref(),
            &obs,
        );
        assessment.status.exit_code()
    }
}

/// Why an unattended repair (the boot unit) does nothing, if it does not.
pub fn unattended_hold(
    remediate: bool,
    kept: Option<&crate::run::KeptOutOfService>,
    now: jiff::Timestamp,
) -> Option<String> {
    if !remediate {
        return Some(
            "repair is off ([run] remediate = false): nothing is repaired unattended".into(),
        );
    }
    let k = kept.filter(|k| k.out_of_service)?;
    let ago = now.duration_since(k.at).as_secs().max(0);
    Some(format!(
        "the Node carried {} when the daemon last read it ({}s ago): taint-guard repairs nothing",
        report::node::OUT_OF_SERVICE,
        ago
    ))
}

/// Findings the planner added (swapoff-unsafe) join the verdict.
fn with_plan_findings(a: Assessment, p: &plan::Plan, cfg: &Config) -> Assessment {
    evaluate::with_findings(a, p.findings.clone(), cfg)
}

fn print(
    format: Format,
    a: &Assessment,
    actions: Option<&[ActionOutcome]>,
    diff: Option<&str>,
    report: Option<&serde_json::Value>,
    obs: &Observation,
) {
    let out = CheckOutput {
        status: a.status.as_str(),
        reboot_safe: a.reboot_safe,
        after_reboot: &a.after_reboot,
        findings: &a.findings,
        actions,
        fstab_diff: diff,
        report,
        observations: obs,
    };
    match format {
        Format::Human => print!("{}", output::human(&out)),
        Format::Json => println!("{}", output::json(&out)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Problem 4: `[run] remediate = false` did not reach the boot unit.
    #[test]
    fn the_boot_units_switches() {
        let now: jiff::Timestamp = "2026-12-02T12:00:00Z".parse().unwrap();
        assert!(unattended_hold(false, None, now)
            .unwrap()
            .contains("remediate = false"));
        assert_eq!(unattended_hold(true, None, now), None);
        let k = crate::run::KeptOutOfService {
            out_of_service: true,
            at: "2026-12-02T11:59:00Z".parse().unwrap(),
            node: "w".into(),
        };
        assert!(unattended_hold(true, Some(&k), now)
            .unwrap()
            .contains("(60s ago)"));
        let k = crate::run::KeptOutOfService {
            out_of_service: false,
            ..k
        };
        assert_eq!(unattended_hold(true, Some(&k), now), None);
        let p = plan::Plan {
            actions: vec![
                plan::Action {
                    step: plan::Step::Enable {
                        unit: "kubelet.service".into(),
                    },
                    reason: "r".into(),
                },
                plan::Action {
                    step: plan::Step::Reload,
                    reason: "r".into(),
                },
            ],
            ..Default::default()
        }
        .hold_all("off");
        assert!(p.actions.is_empty());
        assert_eq!(p.skipped.len(), 1);
    }
}
