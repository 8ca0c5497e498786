//! The shell's own promises on a paused clock: a slow PID 1 neither trips
//! the watchdog nor delays a stop.

use std::cell::RefCell;
use std::rc::Rc;

use super::*;
use crate::observation::UnitState;
use crate::systemd::JobMode;

/// A systemd whose every call takes `delay` (a PID 1 busy with a slow
/// daemon-reload or a reexec).
struct SlowSd {
    delay: Duration,
}

impl UnitManager for SlowSd {
    async fn unit_state(&self, _: &str) -> anyhow::Result<UnitState> {
        tokio::time::sleep(self.delay).await;
        Ok(UnitState {
            load_state: "loaded".into(),
            active_state: "active".into(),
            sub_state: "running".into(),
            unit_file_state: "enabled".into(),
            ..Default::default()
        })
    }
    async fn boot_swap_unit_files(&self) -> anyhow::Result<Vec<(String, String)>> {
        tokio::time::sleep(self.delay).await;
        Ok(vec![])
    }
    async fn virtualization(&self) -> anyhow::Result<String> {
        tokio::time::sleep(self.delay).await;
        Ok(String::new())
    }
    async fn enable(&self, _: &str) -> anyhow::Result<()> {
        tokio::time::sleep(self.delay).await;
        Ok(())
    }
    async fn disable(&self, _: &str) -> anyhow::Result<()> {
        tokio::time::sleep(self.delay).await;
        Ok(())
    }
    async fn mask(&self, _: &str) -> anyhow::Result<()> {
        tokio::time::sleep(self.delay).await;
        Ok(())
    }
    async fn unmask(&self, _: &str) -> anyhow::Result<()> {
        tokio::time::sleep(self.delay).await;
        Ok(())
    }
    async fn reload(&self) -> anyhow::Result<()> {
        tokio::time::sleep(self.delay).await;
        Ok(())
    }
    async fn reset_failed(&self, _: &str) -> anyhow::Result<()> {
        tokio::time::sleep(self.delay).await;
        Ok(())
    }
    async fn start(&self, _: &str, _: JobMode, _: Duration) -> anyhow::Result<String> {
        tokio::time::sleep(self.delay).await;
        Ok("done".into())
    }
    async fn queue_start(&self, _: &str, _: JobMode) -> anyhow::Result<()> {
        tokio::time::sleep(self.delay).await;
        Ok(())
    }
}

fn sources(dir: &Path) -> Sources {
    std::fs::create_dir_all(dir.join("etc")).unwrap();
    std::fs::write(dir.join("etc/fstab"), "").unwrap();
    std::fs::write(dir.join("swaps"), "Filename\tType\tSize\tUsed\tPriority\n").unwrap();
    Sources {
        host: HostRoot::new(dir),
        proc_swaps: dir.join("swaps"),
        cgroup_root: dir.join("cgroup"),
        assume_virtualization: Some("none".into()),
    }
}

type Pets = Rc<RefCell<Vec<Instant>>>;

/// Every watchdog notification, as instants.
fn pets() -> (Pets, Box<dyn FnMut()>) {
    let log = Rc::new(RefCell::new(Vec::new()));
    let l = log.clone();
    (log, Box::new(move || l.borrow_mut().push(Instant::now())))
}

/// Problem 5: observe was awaited outside the watchdog; with PID 1 slow it
/// tripped `WatchdogSec=30s`.
#[tokio::test(start_paused = true)]
async fn a_slow_pid1_neither_trips_the_watchdog_nor_hangs_observing() {
    let t = tempfile::tempdir().unwrap();
    let src = sources(t.path());
    let cfg = Config::default();
    let sd = SlowSd {
        delay: Duration::from_secs(25),
    };
    let (_stop_tx, stop_rx) = mpsc::channel(1);
    let (log, pet) = pets();
    let watchdog = Duration::from_secs(30);
    let mut g = Guard::new(stop_rx, Some(watchdog), pet);
    let t0 = Instant::now();
    let obs = g
        .run(observe_bounded(Ok(&sd), &src, &cfg, OBSERVE_DEADLINE))
        .await
        .expect("not stopped");
    // Bounded: unknown past the deadline, never a guess.
    assert_eq!(t0.elapsed(), OBSERVE_DEADLINE);
    assert!(
        obs.bus_error
            .as_deref()
            .unwrap_or("")
            .contains("did not answer within 20s"),
        "{:?}",
        obs.bus_error
    );
    // And a slow repair (enable + reload + queue start, 25 s each): the
    // watchdog is fed every 15 s all along.
    let plan = crate::plan::Plan {
        actions: vec![
            crate::plan::Action {
                step: crate::plan::Step::Enable {
                    unit: "kubelet.service".into(),
                },
                reason: "r".into(),
            },
            crate::plan::Action {
                step: crate::plan::Step::Reload,
                reason: "r".into(),
            },
        ],
        ..Default::default()
    };
    let mut acfg = cfg.clone();
    acfg.fix = reconcile::fix_policy(&cfg);
    let done = g
        .run(apply::apply(
            &plan,
            Some(&sd),
            &src.host,
            &acfg,
            Timestamp::now(),
        ))
        .await
        .expect("not stopped");
    assert_eq!(done.len(), 2);
    let log = log.borrow();
    let mut last = t0;
    for p in log.iter() {
        assert!(*p - last <= watchdog / 2, "a gap of {:?}", *p - last);
        last = *p;
    }
    assert!(Instant::now() - last <= watchdog / 2);
    assert!(log.len() >= 4, "{} notifications", log.len());
}

/// SIGTERM during a slow call: answered at once, not after the call.
#[tokio::test(start_paused = true)]
async fn a_stop_is_answered_in_the_middle_of_a_slow_call() {
    let t = tempfile::tempdir().unwrap();
    let src = sources(t.path());
    let cfg = Config::default();
    let sd = SlowSd {
        delay: Duration::from_secs(600),
    };
    let (stop_tx, stop_rx) = mpsc::channel(1);
    let (_log, pet) = pets();
    let mut g = Guard::new(stop_rx, Some(Duration::from_secs(30)), pet);
    let t0 = Instant::now();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_secs(3)).await;
        stop_tx.send(()).await.unwrap();
    });
    let r = g
        .run(observe_bounded(
            Ok(&sd),
            &src,
            &cfg,
            Duration::from_secs(3600),
        ))
        .await;
    assert!(r.is_none());
    assert_eq!(t0.elapsed(), Duration::from_secs(3));
    // Stopped stays stopped.
    assert!(g.run(async {}).await.is_none());
}

#[test]
fn the_out_of_service_state_is_kept_and_read_back() {
    let t = tempfile::tempdir().unwrap();
    let host = HostRoot::new(t.path());
    assert_eq!(kept_out_of_service(&host), None);
    let k = KeptOutOfService {
        out_of_service: true,
        at: "2026-12-02T12:00:00Z".parse().unwrap(),
        node: "worker-1".into(),
    };
    keep_out_of_service(&host, &k);
    assert_eq!(kept_out_of_service(&host), Some(k));
}

#[test]
fn watches_kubelet_flavours_too() {
    let u = watched_units(&Config::default());
    assert_eq!(u[0], "kubelet.service");
    assert!(u.contains(&"k3s.service".to_string()));
}
