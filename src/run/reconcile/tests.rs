//! Each rule of the daemon as a deterministic test on made-up instants: no
//! sleeps, no runtime, no I/O.

use super::*;
use crate::fstab::SwapEntry;
use crate::kubelet::{KubeletPolicy, SwapPolicy};
use crate::observation::{FstabSwap, UnitObservation, UnitState};
use crate::swap::{ActiveSwap, Memory as MemInfo, SwapNow};

const MIB: u64 = 1 << 20;

fn t0() -> Instant {
    Instant::now()
}

fn wall0() -> Timestamp {
    "2026-12-02T12:00:00Z".parse().unwrap()
}

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

fn us(t: Timestamp) -> u64 {
    t.as_microsecond() as u64
}

fn kubelet(active: &str, sub: &str, ufs: &str, result: &str) -> UnitState {
    UnitState {
        load_state: "loaded".into(),
        active_state: active.into(),
        sub_state: sub.into(),
        unit_file_state: ufs.into(),
        result: result.into(),
        fragment_path: "/usr/lib/systemd/system/kubelet.service".into(),
        ..Default::default()
    }
}

fn entry(line: usize, text: &str) -> SwapEntry {
    SwapEntry {
        line,
        spec: "/swapfile".into(),
        device: "/swapfile".into(),
        options: "sw".into(),
        text: text.into(),
        unit: Some("swapfile.swap".into()),
        boot: crate::fstab::Boot::Activates,
        if_first: None,
    }
}

const SWAP_LINE: &str = "/swapfile none swap sw 0 0";

/// A node: kubelet in `st`, swap off, fstab without swap lines.
fn node(st: UnitState) -> Observation {
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
        virtualization: Probe::Ok(crate::virt::Virtualization::None),
        kernel: Default::default(),
        kubelet_cert: None,
        clock: None,
        runtime: None,
        cgroup_driver: None,
        resolv_conf: None,
    }
}

/// Swap on (`used_mib` of it in use, `avail_mib` of memory available).
fn swap_on(mut o: Observation, used_mib: u64, avail_mib: u64) -> Observation {
    o.swap_now = Probe::Ok(SwapNow {
        devices: vec![ActiveSwap {
            device: "/swapfile".into(),
            kind: "file".into(),
            size_kib: 1 << 20,
            used_kib: used_mib * 1024,
            priority: -2,
        }],
        memory: MemInfo {
            total_bytes: 8192 * MIB,
            available_bytes: avail_mib * MIB,
            swap_total_bytes: 16384 * MIB,
            swap_free_bytes: (16384 - used_mib) * MIB,
        },
    });
    o.swap_cgroups = Some(Probe::Ok(crate::cgroup::SwapCgroups {
        version: "v2".into(),
        cgroups: vec![],
    }));
    o
}

fn fstab_lines(mut o: Observation, lines: &[(usize, &str)]) -> Observation {
    o.fstab = Probe::Ok(FstabSwap {
        path: "/etc/fstab".into(),
        entries: lines.iter().map(|(n, t)| entry(*n, t)).collect(),
        not_at_boot: vec![],
        swap_disabled_by_cmdline: false,
        cmdline_switch: None,
    });
    o
}

fn cfg() -> Config {
    let mut c = Config::default();
    c.run.report_initial_delay_secs = 0;
    c.run.report_initial_delay_ok_secs = 0;
    c
}

struct World {
    r: Reconciler,
    cfg: Config,
    t0: Instant,
    w0: Timestamp,
    oos: OutOfService,
}

impl World {
    fn new(cfg: Config) -> World {
        let t0 = t0();
        World {
            r: Reconciler::new(t0, &cfg, 7, Memory::default()),
            cfg,
            t0,
            w0: wall0(),
            oos: OutOfService::Known(false),
        }
    }

    fn at(&self, s: u64) -> (Instant, Timestamp) {
        (
            self.t0 + secs(s),
            self.w0
                .checked_add(jiff::SignedDuration::from_secs(s as i64))
                .unwrap(),
        )
    }

    fn step(&mut self, s: u64, obs: &Observation) -> Decision {
        let (now, wall) = self.at(s);
        self.r.step(&Input {
            now,
            wall,
            obs,
            cfg: &self.cfg,
            config_error: None,
            out_of_service: &self.oos,
        })
    }

    /// Step, run the repairs as if they all worked, deliver any report.
    fn step_done(&mut self, s: u64, obs: &Observation) -> Decision {
        let d = self.step(s, obs);
        if let Some((plan, _)) = &d.repair {
            let outs = outcomes(plan, Outcome::Done);
            self.r.applied(plan, &outs, obs, self.at(s).0);
        }
        if d.report.is_some() {
            self.r.reported(Reported::Delivered, self.at(s).0);
        }
        d
    }
}

fn outcomes(plan: &Plan, o: Outcome) -> Vec<ActionOutcome> {
    plan.actions
        .iter()
        .map(|a| ActionOutcome {
            id: a.step.id().into(),
            subject: a.step.subject(),
            outcome: o,
            detail: "d".into(),
        })
        .collect()
}

fn steps(d: &Decision) -> Vec<String> {
    d.repair
        .as_ref()
        .map(|(p, _)| {
            p.actions
                .iter()
                .map(|a| format!("{} {}", a.step.id(), a.step.subject()))
                .collect()
        })
        .unwrap_or_default()
}

fn finding<'a>(d: &'a Decision, id: &str) -> Option<&'a Finding> {
    d.assessment.findings.iter().find(|f| f.id() == id)
}

// Problem 1: its own reset-failed left kubelet down for good.
#[test]
fn reset_failed_only_as_part_of_a_start_that_runs() {
    let mut c = cfg();
    c.run.start_grace_secs = 60;
    let mut w = World::new(c);
    let failed = || kubelet("failed", "failed", "enabled", "exit-code");
    // Failed, swap on and too big to turn off: nothing is started, so
    // nothing is reset either.
    let stuck = swap_on(node(failed()), 4096, 512);
    let d = w.step(0, &stuck);
    assert!(
        !steps(&d).iter().any(|s| s.starts_with("reset-failed")),
        "{:?}",
        steps(&d)
    );
    // Swap freed (a person stopped the workload), still inside the grace:
    // the start waits, and the reset-failed with it.
    let freed = node(failed());
    let d = w.step(30, &freed);
    assert_eq!(steps(&d), Vec::<String>::new());
    assert_eq!(
        d.wake_at,
        Some(w.t0 + secs(60)),
        "woken when the grace ends"
    );
    // Grace over: reset-failed and start together, in that order.
    let d = w.step(60, &freed);
    assert_eq!(
        steps(&d),
        vec!["reset-failed kubelet.service", "start kubelet.service"]
    );
    // Never `unit-stopped` on the way: the unit was never left reset and down.
    assert!(finding(&d, "unit-stopped").is_none());
}

// Problem 2: a crash-looping kubelet stormed the API.
#[test]
fn a_crash_loop_is_one_finding_and_one_report_burst() {
    let mut w = World::new(cfg());
    let mut jobs = 0;
    let mut statuses = BTreeSet::new();
    let mut last = None;
    // Ten minutes of a kubelet that dies at once and is restarted every
    // 10 s (RestartSec=10): running for 1 s, then auto-restart for 9 s.
    for cycle in 0..60u64 {
        let s = cycle * 10;
        let started = w.at(s).1;
        let mut running = kubelet("active", "running", "enabled", "success");
        running.n_restarts = cycle as u32;
        running.active_enter_timestamp = us(started);
        let mut restarting = kubelet("activating", "auto-restart", "enabled", "exit-code");
        restarting.n_restarts = cycle as u32;
        restarting.exec_main_status = 1;
        restarting.active_enter_timestamp = us(started);
        restarting.inactive_enter_timestamp = us(started) + 500_000;
        for (t, o) in [(s, node(running)), (s + 1, node(restarting))] {
            let d = w.step(t, &o);
            statuses.insert(d.assessment.status.as_str());
            if d.report.is_some() {
                jobs += 1;
                w.r.reported(Reported::Delivered, w.at(t).0);
            }
            last = Some(d);
        }
    }
    // The first look at the unit is while it runs (no finding yet), then it
    // is one critical finding for the whole loop.
    assert!(jobs <= 2, "{jobs} report bursts in 10 minutes");
    assert!(statuses.len() <= 2, "{statuses:?}");
    let d = last.unwrap();
    let f = finding(&d, "unit-failed").expect("still crash-looping");
    let o = f.occurrences.expect("counted");
    assert_eq!(o.count, 59);
    assert_eq!(o.first, w.at(1).1);
    assert_eq!(o.last, w.at(591).1);
    // Stable for a minute: resolved, once.
    let mut up = kubelet("active", "running", "enabled", "success");
    up.n_restarts = 60;
    up.active_enter_timestamp = us(w.at(600).1);
    let d = w.step(630, &node(up.clone()));
    assert!(
        finding(&d, "unit-failed").is_some(),
        "held while not yet stable"
    );
    assert_eq!(d.wake_at.map(|t| t - w.t0), Some(secs(660)));
    let d = w.step(660, &node(up));
    assert!(finding(&d, "unit-failed").is_none());
    assert!(d
        .say
        .iter()
        .any(|s| s.text.starts_with("resolved: unit-failed")));
}

#[test]
fn reports_are_one_burst_per_interval_and_the_last_state_is_written() {
    let mut c = cfg();
    c.run.report_min_interval_secs = 60;
    // Reporting alone (no repair wake-ups in the way).
    c.run.remediate = false;
    let mut w = World::new(c);
    let ok = node(kubelet("active", "running", "enabled", "success"));
    let down = node(kubelet("inactive", "dead", "enabled", "success"));
    let disabled = node(kubelet("active", "running", "disabled", "success"));
    let d = w.step(0, &ok);
    assert!(
        d.report.is_some(),
        "first report at once (no initial delay)"
    );
    w.r.reported(Reported::Delivered, w.at(0).0);
    // Changes inside the window: none written now, one wake-up at its end.
    let d = w.step(5, &down);
    assert!(d.report.is_none());
    assert_eq!(d.wake_at, Some(w.t0 + secs(60)));
    // Back to what the Node says already: nothing due but the heartbeat.
    let d = w.step(10, &ok);
    assert!(d.report.is_none());
    assert!(d.wake_at.unwrap() > w.t0 + secs(600), "only the heartbeat");
    let d = w.step(20, &disabled);
    assert!(d.report.is_none());
    assert_eq!(d.wake_at, Some(w.t0 + secs(60)));
    // The trailing edge writes the state in force then.
    let d = w.step(60, &disabled);
    let job = d.report.expect("trailing edge");
    assert!(job
        .assessment
        .findings
        .iter()
        .any(|f| f.id() == "unit-disabled"));
    // Never two at once.
    let d = w.step(61, &ok);
    assert!(d.report.is_none());
    w.r.reported(Reported::Delivered, w.at(61).0);
    // Back to what was written last: nothing new, nothing to write.
    let d = w.step(121, &disabled);
    assert!(d.report.is_none());
}

/// News first: a first report with a problem waits at most
/// `report_initial_delay_secs`, one that says all is well up to
/// `report_initial_delay_ok_secs` (a fleet back from a power loss spreads
/// its heartbeat refreshes); the same random fraction for both.
#[test]
fn a_first_report_with_a_problem_goes_before_one_that_says_all_is_well() {
    let mut c = Config::default();
    c.run.report_initial_delay_secs = 30;
    c.run.report_initial_delay_ok_secs = 300;
    // Report only: the wake asked for is the first report's.
    c.run.remediate = false;
    let ok = node(kubelet("active", "running", "enabled", "success"));
    let bad = swap_on(ok.clone(), 10, 1000);
    let mut w = World::new(c.clone());
    let wake_ok = w.step(0, &ok).wake_at.expect("first report scheduled") - w.t0;
    let mut v = World::new(c);
    let wake_bad = v.step(0, &bad).wake_at.expect("first report scheduled") - v.t0;
    assert!(wake_bad <= secs(30), "{wake_bad:?}");
    assert!(wake_ok <= secs(300), "{wake_ok:?}");
    // The same fraction of each window (seed 7).
    let (a, b) = (wake_ok.as_secs_f64() / 300.0, wake_bad.as_secs_f64() / 30.0);
    assert!((a - b).abs() < 1e-6, "{a} {b}");
    // All well: nothing at the short delay. Turning into a problem before
    // the first report: it goes at once (the short delay has passed).
    let t = wake_bad.as_secs() + 1;
    assert!(
        secs(t) < wake_ok,
        "seed 7's fraction: {wake_bad:?} {wake_ok:?}"
    );
    assert!(w.step(t, &ok).report.is_none());
    assert!(w.step(t, &bad).report.is_some());
    // The default: 6 × report_initial_delay_secs.
    let d = Config::default();
    assert_eq!(d.run.report_initial_delay_ok_secs, 180);
}

/// A repair's Events are news: a first report that carries them takes the
/// short delay even though all is well after the repair.
#[test]
fn a_first_report_with_repair_events_takes_the_short_delay() {
    let mut c = Config::default();
    c.run.report_initial_delay_secs = 30;
    c.run.report_initial_delay_ok_secs = 300;
    c.run.start_grace_secs = 0;
    let mut w = World::new(c);
    let down = node(kubelet("inactive", "dead", "disabled", "success"));
    let d = w.step(0, &down);
    let (plan, _) = d.repair.clone().expect("seed incident repaired");
    w.r.applied(&plan, &outcomes(&plan, Outcome::Done), &down, w.at(0).0);
    let ok = node(kubelet("active", "running", "enabled", "success"));
    let d = w.step(1, &ok);
    assert!(d.report.is_none(), "not before the random delay");
    let wake = d.wake_at.expect("the first report scheduled") - w.t0;
    assert!(wake <= secs(30), "{wake:?}");
    let d = w.step(30, &ok);
    let job = d.report.expect("the first report, within the short delay");
    assert!(!job.events.is_empty(), "{job:?}");
}

/// A later fragment that sets report_initial_delay_secs alone moves the
/// all-is-well delay with it (6 ×); one that sets it keeps its own.
#[test]
fn the_all_is_well_delay_follows_the_merged_config() {
    let parse = |texts: &[(&str, &str)]| {
        Config::from_texts(
            &texts
                .iter()
                .map(|(p, t)| (std::path::PathBuf::from(p), t.to_string()))
                .collect::<Vec<_>>(),
        )
        .unwrap()
    };
    let c = parse(&[("a.toml", "[run]\nreport_initial_delay_secs = 10\n")]);
    assert_eq!(c.run.report_initial_delay_ok_secs, 60);
    let c = parse(&[
        ("a.toml", "[run]\nreport_initial_delay_ok_secs = 500\n"),
        ("b.toml", "[run]\nreport_initial_delay_secs = 0\n"),
    ]);
    assert_eq!(
        (
            c.run.report_initial_delay_secs,
            c.run.report_initial_delay_ok_secs
        ),
        (0, 500)
    );
}

#[test]
fn the_heartbeat_is_well_inside_the_staleness_rule() {
    let mut w = World::new(cfg());
    let ok = node(kubelet("active", "running", "enabled", "success"));
    assert!(w.step(0, &ok).report.is_some());
    w.r.reported(Reported::Delivered, w.at(0).0);
    let d = w.step(1, &ok);
    let hb = d.wake_at.expect("heartbeat scheduled") - w.t0;
    // 20 min jittered down by up to 10 %: with the 60 min refresh, far from
    // the 120 min after which a condition counts as stale.
    assert!(hb >= secs(18 * 60) && hb <= secs(20 * 60), "{hb:?}");
    assert!(d.report.is_none());
    let d = w.step(hb.as_secs() + 1, &ok);
    assert!(d.report.is_some(), "heartbeat written");
}

#[test]
fn a_failed_report_is_retried_with_backoff_and_keeps_its_events() {
    let mut c = cfg();
    c.run.report_min_interval_secs = 1;
    c.run.start_grace_secs = 0;
    let mut w = World::new(c);
    let down = node(kubelet("inactive", "dead", "disabled", "success"));
    let d = w.step(0, &down);
    let (plan, _) = d.repair.clone().expect("seed incident repaired");
    w.r.applied(&plan, &outcomes(&plan, Outcome::Done), &down, w.at(0).0);
    assert!(w.r.pending_events() > 0);
    assert!(d.report.is_some());
    w.r.reported(Reported::Failed("unreachable".into()), w.at(0).0);
    assert!(w.r.pending_events() > 0, "kept for the retry");
    let d = w.step(0, &down);
    assert!(d.report.is_none());
    let retry = d.wake_at.expect("retry scheduled");
    assert!(retry <= w.t0 + secs(1));
    let d = w.step(2, &down);
    let job = d.report.expect("retried");
    assert!(!job.events.is_empty(), "events go with the retry");
    w.r.reported(Reported::Delivered, w.at(2).0);
    assert_eq!(w.r.pending_events(), 0);
    // Bounded: a thousand outcomes never reported keep at most the newest.
    // The same outcome again is one pending Event, not one per attempt.
    for _ in 0..10 {
        w.r.applied(&plan, &outcomes(&plan, Outcome::Failed), &down, w.at(3).0);
    }
    assert_eq!(w.r.pending_events(), plan.actions.len());
    // Bounded: a thousand different outcomes never reported keep the newest.
    for i in 0..1000 {
        let mut o = outcomes(&plan, Outcome::Failed);
        for x in &mut o {
            x.detail = format!("attempt {i}");
        }
        w.r.applied(&plan, &o, &down, w.at(3).0);
    }
    assert_eq!(w.r.pending_events(), MAX_PENDING_EVENTS);
}

// Problem 3: it fought people and tools over fstab.
#[test]
fn a_swap_line_put_back_is_reported_not_reverted() {
    let mut c = cfg();
    c.run.start_grace_secs = 0;
    let mut w = World::new(c);
    let up = || kubelet("active", "running", "enabled", "success");
    // Boot: the line is there (the seed incident): commented out.
    let with_line = fstab_lines(node(up()), &[(3, SWAP_LINE)]);
    let d = w.step_done(0, &with_line);
    assert_eq!(
        steps(&d),
        vec!["fstab-comment /etc/fstab:3", "daemon-reload systemd"]
    );
    let without = node(up());
    w.step_done(1, &without);
    // Ansible puts it back, one line further down (our marker line is above).
    let again = fstab_lines(node(up()), &[(5, SWAP_LINE)]);
    let d = w.step_done(100, &again);
    assert_eq!(steps(&d), Vec::<String>::new(), "not reverted");
    let f = finding(&d, "swap-in-fstab").unwrap();
    assert!(!f.fixable);
    assert!(f
        .message
        .contains("put back after taint-guard commented it out"));
    assert!(f.remedy.is_some(), "the exact remedy is still given");
    assert_eq!(
        d.say
            .iter()
            .filter(|s| s.text.contains("swap line `") && s.text.contains("reported, not reverted"))
            .count(),
        1
    );
    // Said once, not at every evaluation.
    let d = w.step_done(200, &again);
    assert!(!d.say.iter().any(|s| s.text.contains("put back")));
    // With run.enforce it is reverted.
    w.cfg.run.enforce = true;
    let d = w.step(300, &again);
    assert_eq!(
        steps(&d),
        vec!["fstab-comment /etc/fstab:5", "daemon-reload systemd"]
    );
}

#[test]
fn a_swap_line_added_while_watching_is_a_persons() {
    let mut w = World::new(cfg());
    let up = || kubelet("active", "running", "enabled", "success");
    w.step_done(0, &node(up()));
    let added = fstab_lines(node(up()), &[(7, "/swap.img none swap sw 0 0")]);
    let d = w.step_done(10, &added);
    assert_eq!(steps(&d), Vec::<String>::new());
    assert!(finding(&d, "swap-in-fstab")
        .unwrap()
        .message
        .contains("added while taint-guard was watching"));
}

#[test]
fn backoff_follows_the_line_not_its_number() {
    let mut c = cfg();
    c.run.start_grace_secs = 0;
    c.run.repair_backoff_secs = 10;
    let mut w = World::new(c);
    let up = || kubelet("active", "running", "enabled", "success");
    let at3 = fstab_lines(node(up()), &[(3, SWAP_LINE)]);
    let d = w.step(0, &at3);
    let (plan, _) = d.repair.unwrap();
    w.r.applied(&plan, &outcomes(&plan, Outcome::Failed), &at3, w.at(0).0);
    // The same line, moved by someone's edit above it: still backed off.
    let at4 = fstab_lines(node(up()), &[(4, SWAP_LINE)]);
    let d = w.step(1, &at4);
    assert_eq!(steps(&d), Vec::<String>::new());
    assert_eq!(d.wake_at, Some(w.t0 + secs(10)));
    let d = w.step(10, &at4);
    assert_eq!(d.repair.unwrap().1[0], 2, "second attempt");
}

#[test]
fn kubelet_stopped_and_disabled_is_left_alone() {
    let mut c = cfg();
    c.run.start_grace_secs = 0;
    let mut w = World::new(c);
    let mut running = kubelet("active", "running", "enabled", "success");
    running.active_enter_timestamp = us(w.at(0).1) - 1;
    w.step_done(0, &node(running.clone()));
    // `systemctl disable --now kubelet`: a clean stop of a disabled unit.
    let mut gone = kubelet("inactive", "dead", "disabled", "success");
    gone.active_enter_timestamp = running.active_enter_timestamp;
    gone.inactive_enter_timestamp = us(w.at(5).1);
    let d = w.step_done(5, &node(gone.clone()));
    assert_eq!(steps(&d), Vec::<String>::new(), "not re-enabled");
    let f = finding(&d, "unit-disabled").unwrap();
    assert!(
        !f.fixable && f.message.contains("stopped and disabled"),
        "{f:?}"
    );
    assert!(f.message.contains("systemctl enable --now kubelet.service"));
    // Still left alone later.
    let d = w.step_done(600, &node(gone.clone()));
    assert_eq!(steps(&d), Vec::<String>::new());
    // A person brings it back: the intent ends; a later crash is repaired.
    w.step_done(700, &node(running));
    let failed = kubelet("failed", "failed", "enabled", "exit-code");
    let d = w.step_done(800, &node(failed));
    assert_eq!(
        steps(&d),
        vec!["reset-failed kubelet.service", "start kubelet.service"]
    );
    // With run.enforce it is re-enabled and started.
    let mut w = World::new(cfg());
    w.cfg.run.enforce = true;
    w.cfg.run.start_stopped = true;
    w.cfg.run.start_grace_secs = 0;
    let d = w.step(0, &node(gone));
    assert!(steps(&d).contains(&"enable kubelet.service".to_string()));
}

#[test]
fn the_seed_incident_is_still_repaired() {
    let mut c = cfg();
    c.run.start_grace_secs = 0;
    // After the power cut: never enabled, not started in this boot.
    let mut w = World::new(c.clone());
    let d = w.step(0, &node(kubelet("inactive", "dead", "disabled", "success")));
    assert_eq!(
        steps(&d),
        vec![
            "enable kubelet.service",
            "daemon-reload systemd",
            "start kubelet.service"
        ]
    );
    // Before it: running, never enabled — enabled once that has held for
    // ENABLE_SETTLE (a `systemctl disable --now` would stop it meanwhile).
    let mut w = World::new(c);
    let running = node(kubelet("active", "running", "disabled", "success"));
    let d = w.step(0, &running);
    assert_eq!(steps(&d), Vec::<String>::new());
    assert_eq!(d.wake_at, Some(w.t0 + ENABLE_SETTLE));
    let d = w.step(2, &running);
    assert_eq!(
        steps(&d),
        vec!["enable kubelet.service", "daemon-reload systemd"]
    );
}

fn input<'a>(
    now: Instant,
    obs: &'a Observation,
    cfg: &'a Config,
    oos: &'a OutOfService,
) -> Input<'a> {
    Input {
        now,
        wall: wall0(),
        obs,
        cfg,
        config_error: None,
        out_of_service: oos,
    }
}

// Review H2: a person's decision survives the daemon's restart and the
// node's reboot (where systemd's record of the stop is gone).
#[test]
fn a_remembered_decision_outlives_a_reboot() {
    let mut c = cfg();
    c.run.start_grace_secs = 0;
    let mut w = World::new(c.clone());
    let mut gone = kubelet("inactive", "dead", "disabled", "success");
    gone.active_enter_timestamp = us(w.at(0).1);
    gone.inactive_enter_timestamp = us(w.at(1).1);
    assert_eq!(steps(&w.step_done(5, &node(gone))), Vec::<String>::new());
    let kept = w.r.memory().clone();
    assert!(kept.unit_intents.contains("kubelet.service"));
    // After a reboot: down since boot, never enabled — the seed incident's
    // look, but remembered as a person's.
    let t0 = Instant::now();
    let oos = OutOfService::Known(false);
    let boot = node(kubelet("inactive", "dead", "disabled", "success"));
    let mut r = Reconciler::new(t0, &c, 7, kept.clone());
    let d = r.step(&input(t0, &boot, &c, &oos));
    assert!(d.repair.is_none(), "{:?}", d.repair);
    // The boot unit honours it the same way.
    let mut a = evaluate::evaluate(&boot, &c);
    kept.honour(&mut a, &boot, false);
    assert!(a.findings.iter().all(|f| !f.fixable), "{:?}", a.findings);
    // Without the memory it is the seed incident, repaired.
    let mut r = Reconciler::new(t0, &c, 7, Memory::default());
    assert!(r.step(&input(t0, &boot, &c, &oos)).repair.is_some());
}

// Review Low 1: a failed heartbeat is retried with the backoff.
#[test]
fn a_failed_heartbeat_is_retried_soon() {
    let mut w = World::new(cfg());
    let ok = node(kubelet("active", "running", "enabled", "success"));
    assert!(w.step(0, &ok).report.is_some());
    w.r.reported(Reported::Delivered, w.at(0).0);
    let hb = (w.step(1, &ok).wake_at.unwrap() - w.t0).as_secs();
    assert!(w.step(hb + 1, &ok).report.is_some());
    w.r.reported(Reported::Failed("timed out".into()), w.at(hb + 1).0);
    let d = w.step(hb + 2, &ok);
    let next = d.wake_at.unwrap() - w.t0;
    assert!(
        next <= secs(hb + 1 + 60),
        "retried after {next:?}, not an interval later"
    );
    assert!(w.step(hb + 62, &ok).report.is_some());
}

// Problem 6: the out-of-service hold rarely held.
#[test]
fn out_of_service_holds_on_the_last_known_value() {
    let mut c = cfg();
    c.run.start_grace_secs = 0;
    let seed = node(kubelet("inactive", "dead", "disabled", "success"));
    let mut w = World::new(c.clone());
    w.oos = OutOfService::LastKnown {
        value: true,
        at: wall0(),
    };
    let d = w.step(600, &seed);
    assert!(d.repair.is_none());
    assert!(
        d.say
            .iter()
            .any(|s| s.text.contains("when last read (10min ago")),
        "{:?}",
        d.say
    );
    w.oos = OutOfService::Known(true);
    assert!(w.step(601, &seed).repair.is_none());
    w.oos = OutOfService::Known(false);
    assert!(w.step(602, &seed).repair.is_some());
    // Unknown: not held, and said once.
    let mut w = World::new(c);
    w.oos = OutOfService::Unknown;
    let d = w.step(0, &seed);
    assert!(d.repair.is_some());
    let said = |d: &Decision| {
        d.say
            .iter()
            .filter(|s| s.text.contains("is unknown"))
            .count()
    };
    assert_eq!(said(&d), 1);
    let d = w.step(1, &seed);
    assert_eq!(said(&d), 0);
}

#[test]
fn another_reporter_is_said_once_and_not_fought() {
    let mut w = World::new(cfg());
    let ok = node(kubelet("active", "running", "enabled", "success"));
    assert!(w.step(0, &ok).report.is_some());
    let s =
        w.r.reported(Reported::OtherReporter("pod/tg-x".into()), w.at(0).0);
    assert_eq!(s.len(), 1);
    // Nothing new: no retry storm; the heartbeat looks again.
    let d = w.step(61, &ok);
    assert!(d.report.is_none());
    let hb = d.wake_at.unwrap();
    let d = w.step((hb - w.t0).as_secs() + 1, &ok);
    assert!(d.report.is_some());
    let s =
        w.r.reported(Reported::OtherReporter("pod/tg-x".into()), w.at(0).0);
    assert!(s.is_empty(), "said once");
}

#[test]
fn an_invalid_config_is_a_finding_and_status_lines_change_once() {
    let mut w = World::new(cfg());
    let ok = node(kubelet("active", "running", "enabled", "success"));
    let d = w.step(0, &ok);
    assert_eq!(d.status.as_deref(), Some("ok: no problems; reboot-safe"));
    assert_eq!(w.step(1, &ok).status, None);
    let err = ConfigError {
        path: "/etc/taint-guard/config.toml".into(),
        line: 3,
        column: 1,
        message: "bad".into(),
    };
    let (now, wall) = w.at(2);
    let d = w.r.step(&Input {
        now,
        wall,
        obs: &ok,
        cfg: &w.cfg,
        config_error: Some(&err),
        out_of_service: &w.oos,
    });
    assert!(finding(&d, "config-invalid").is_some());
    assert!(d.status.unwrap().starts_with("warning: config-invalid"));
}

#[test]
fn remediate_off_plans_nothing() {
    let mut c = cfg();
    c.run.remediate = false;
    c.run.start_grace_secs = 0;
    let mut w = World::new(c);
    let d = w.step(0, &node(kubelet("inactive", "dead", "disabled", "success")));
    assert!(d.repair.is_none());
    assert!(d.status.unwrap().ends_with("; repair off"));
}

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
fn daemon_policy_never_unmasks_and_never_waits() {
    let mut cfg = Config::default();
    cfg.fix.unmask = true;
    let p = fix_policy(&cfg);
    assert!(!p.unmask && !p.wait_for_start && !p.start_stopped);
    cfg.run.start_stopped = true;
    assert!(fix_policy(&cfg).start_stopped);
}
