//! Pure timing: jitter, exponential backoff, the debouncer that turns a
//! burst of events into one evaluation, and the per-action repair backoff.
//! Everything takes `now` (a clock passed in: tests use made-up instants).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// `d` shortened by a random fraction of up to `frac` (0..=1): timers that
/// many nodes start at once drift apart, and never run late.
pub fn jitter_down(d: Duration, frac: f64) -> Duration {
    d.mul_f64(1.0 - frac.clamp(0.0, 1.0) * fastrand::f64())
}

/// A uniformly random duration in `[0, d]` ("full jitter").
pub fn full_jitter(d: Duration) -> Duration {
    d.mul_f64(fastrand::f64())
}

/// Exponential backoff: `base`, `2·base`, `4·base`… capped at `cap`.
#[derive(Debug, Clone)]
pub struct Backoff {
    base: Duration,
    cap: Duration,
    /// Failures in a row.
    pub failures: u32,
}

impl Backoff {
    pub fn new(base: Duration, cap: Duration) -> Backoff {
        Backoff {
            base,
            cap: cap.max(base),
            failures: 0,
        }
    }

    /// The ceiling of the wait after the current number of failures
    /// (zero before the first).
    pub fn ceiling(&self) -> Duration {
        if self.failures == 0 {
            return Duration::ZERO;
        }
        let exp = (self.failures - 1).min(31);
        self.base.saturating_mul(1u32 << exp).min(self.cap)
    }

    /// Record a failure; the wait before the next try.
    pub fn fail(&mut self) -> Duration {
        self.failures = self.failures.saturating_add(1);
        self.ceiling()
    }

    pub fn reset(&mut self) {
        self.failures = 0;
    }
}

/// One evaluation per burst: the first event opens a window that closes
/// after `quiet` without events, and no later than `max` after it opened.
#[derive(Debug, Clone)]
pub struct Debounce {
    quiet: Duration,
    max: Duration,
    opened: Option<Instant>,
    due: Option<Instant>,
}

impl Debounce {
    pub fn new(quiet: Duration) -> Debounce {
        Debounce {
            quiet,
            // A steady stream of events still gets evaluated.
            max: (quiet * 10).max(Duration::from_millis(100)),
            opened: None,
            due: None,
        }
    }

    /// An event arrived.
    pub fn event(&mut self, now: Instant) {
        let opened = *self.opened.get_or_insert(now);
        self.due = Some((now + self.quiet).min(opened + self.max));
    }

    /// When the burst is over and the evaluation should run.
    pub fn due(&self) -> Option<Instant> {
        self.due
    }

    /// The evaluation runs: the window closes.
    pub fn fire(&mut self) {
        self.opened = None;
        self.due = None;
    }
}

/// Per-repair backoff: an action (`start kubelet.service`) that is still
/// needed after it was made waits `base`, then twice that, … up to `cap`
/// before it is made again. Forgotten once the plan has not asked for it
/// for as long as its current wait: a unit that runs for a moment between
/// crashes does not reset it.
#[derive(Debug, Clone)]
pub struct RepairBackoff<K: Ord + Clone = String> {
    base: Duration,
    cap: Duration,
    entries: BTreeMap<K, Entry>,
}

#[derive(Debug, Clone)]
struct Entry {
    backoff: Backoff,
    not_before: Instant,
    /// Not needed since then.
    resolved: Option<Instant>,
}

/// What the backoff says about one attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Attempt {
    /// Go ahead; `n` is the attempt number (1 = first time).
    Go { n: u32 },
    /// Not before this instant.
    Wait { until: Instant },
}

impl<K: Ord + Clone> RepairBackoff<K> {
    pub fn new(base: Duration, cap: Duration) -> RepairBackoff<K> {
        RepairBackoff {
            base,
            cap,
            entries: BTreeMap::new(),
        }
    }

    /// May `key` be attempted now?
    pub fn check(&self, key: &K, now: Instant) -> Attempt {
        match self.entries.get(key) {
            None => Attempt::Go { n: 1 },
            Some(e) if e.not_before <= now => Attempt::Go {
                n: e.backoff.failures + 1,
            },
            Some(e) => Attempt::Wait {
                until: e.not_before,
            },
        }
    }

    /// `key` is being attempted now; returns the wait before the next
    /// attempt should it still be needed then.
    pub fn attempted(&mut self, key: &K, now: Instant) -> Duration {
        let e = self.entries.entry(key.clone()).or_insert(Entry {
            backoff: Backoff::new(self.base, self.cap),
            not_before: now,
            resolved: None,
        });
        let wait = e.backoff.fail();
        e.not_before = now + wait;
        wait
    }

    /// Note which keys the plan still asks for; forget those it has not
    /// asked for during their whole current wait.
    pub fn retain(&mut self, needed: &dyn Fn(&K) -> bool, now: Instant) {
        self.entries.retain(|k, e| {
            // Unneeded for its whole wait: forgotten, also when it is needed
            // again now (a new problem starts afresh).
            if e.resolved
                .is_some_and(|since| now.saturating_duration_since(since) >= e.backoff.ceiling())
            {
                return false;
            }
            if needed(k) {
                e.resolved = None;
            } else {
                e.resolved.get_or_insert(now);
            }
            true
        });
    }

    /// Change the waits (a reloaded config); entries keep their counts.
    pub fn set_bounds(&mut self, base: Duration, cap: Duration) {
        self.base = base;
        self.cap = cap.max(base);
        for e in self.entries.values_mut() {
            e.backoff.base = self.base;
            e.backoff.cap = self.cap;
        }
    }

    /// The earliest instant a waiting repair may be tried again.
    pub fn next_due(&self, now: Instant) -> Option<Instant> {
        self.entries
            .values()
            .filter(|e| e.resolved.is_none())
            .map(|e| e.not_before)
            .filter(|t| *t > now)
            .min()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_to_the_cap() {
        let mut b = Backoff::new(Duration::from_secs(10), Duration::from_secs(60));
        let waits: Vec<u64> = (0..6).map(|_| b.fail().as_secs()).collect();
        assert_eq!(waits, vec![10, 20, 40, 60, 60, 60]);
        b.reset();
        assert_eq!(b.ceiling(), Duration::ZERO);
        assert_eq!(b.fail(), Duration::from_secs(10));
        // Huge failure counts do not overflow.
        b.failures = u32::MAX - 1;
        assert_eq!(b.fail(), Duration::from_secs(60));
    }

    #[test]
    fn jitters_stay_in_bounds() {
        let d = Duration::from_secs(300);
        for _ in 0..1000 {
            let j = jitter_down(d, 0.1);
            assert!(j <= d && j >= Duration::from_secs(270), "{j:?}");
            assert!(full_jitter(d) <= d);
        }
    }

    #[test]
    fn a_burst_is_one_evaluation() {
        let mut d = Debounce::new(Duration::from_millis(10));
        let t0 = Instant::now();
        assert_eq!(d.due(), None);
        // Five events 3 ms apart: one window, closing 10 ms after the last.
        for i in 0..5 {
            d.event(t0 + Duration::from_millis(3 * i));
        }
        assert_eq!(d.due(), Some(t0 + Duration::from_millis(22)));
        d.fire();
        assert_eq!(d.due(), None);
    }

    #[test]
    fn an_endless_stream_is_still_evaluated() {
        let mut d = Debounce::new(Duration::from_millis(10));
        let t0 = Instant::now();
        for i in 0..100 {
            d.event(t0 + Duration::from_millis(5 * i));
        }
        assert_eq!(d.due(), Some(t0 + Duration::from_millis(100)));
    }

    #[test]
    fn repair_backoff_bounds_attempts() {
        let mut r: RepairBackoff<&str> =
            RepairBackoff::new(Duration::from_secs(10), Duration::from_secs(40));
        let key = "start kubelet.service";
        let t0 = Instant::now();
        let at = |s: u64| t0 + Duration::from_secs(s);
        // A crash loop: the repair is needed again right after each attempt.
        let mut attempts = Vec::new();
        for s in 0..200 {
            if let Attempt::Go { n } = r.check(&key, at(s)) {
                attempts.push((s, n));
                r.attempted(&key, at(s));
            }
        }
        assert_eq!(
            attempts,
            vec![
                (0, 1),
                (10, 2),
                (30, 3),
                (70, 4),
                (110, 5),
                (150, 6),
                (190, 7)
            ]
        );
        let now = at(200);
        assert!(matches!(r.check(&key, now), Attempt::Wait { .. }));
        assert!(r.next_due(now).is_some());
        // Up for a moment between crashes: not forgotten.
        r.retain(&|_| false, now);
        assert_eq!(r.next_due(now), None, "no wake-up for a resolved repair");
        r.retain(&|_| true, at(201));
        assert!(matches!(r.check(&key, at(201)), Attempt::Wait { .. }));
        // Up for as long as the current wait (40 s): forgotten, the next
        // failure starts afresh.
        r.retain(&|_| false, at(201));
        r.retain(&|_| true, at(241));
        assert_eq!(r.check(&key, at(241)), Attempt::Go { n: 1 });
    }
}
