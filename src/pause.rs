//! Maintenance pause: while a pause is in force, nothing is remediated —
//! not by `check --fix`, not by the boot unit, not by the daemon.
//!
//! The pause lives in `/var/lib/taint-guard/pause` under the host root, so
//! it survives the reboot it is usually taken for (a kernel upgrade). It
//! always ends: `until` is required and capped (`[pause] max_hours`). A
//! pause file in `/run/taint-guard/pause` (older releases) is honoured too.

use std::path::Path;

use anyhow::{anyhow, Context, Result};
use jiff::{SignedDuration, Timestamp};
use serde::{Deserialize, Serialize};

use crate::hostroot::HostRoot;

pub const PAUSE_FILE: &str = "/var/lib/taint-guard/pause";
/// Where releases before 0.2 wrote it (cleared by a reboot).
pub const LEGACY_PAUSE_FILE: &str = "/run/taint-guard/pause";

/// What `taint-guard pause` writes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pause {
    /// RFC 3339.
    pub until: Timestamp,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Who paused (`SUDO_USER`, `USER` or the uid).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub by: Option<String>,
    /// When.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub since: Option<Timestamp>,
}

impl Pause {
    pub fn describe(&self) -> String {
        let mut s = format!("maintenance pause until {}", self.until);
        if let Some(by) = &self.by {
            s += &format!(" by {by}");
        }
        if let Some(r) = &self.reason {
            s += &format!(" ({r})");
        }
        s + "; `taint-guard resume` ends it"
    }
}

/// The pause file as found on the node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PauseState {
    #[serde(flatten)]
    pub pause: Pause,
    /// Node path of the file.
    pub path: String,
    /// Ended: repairs are on again; reported once as `pause-expired` and
    /// removed by the next repair run.
    pub expired: bool,
}

impl PauseState {
    /// The pause in force, if it is.
    pub fn active(&self) -> Option<&Pause> {
        (!self.expired).then_some(&self.pause)
    }
}

/// Read the pause at `now`. A pause file that cannot be read or parsed
/// counts as a pause in force (the operator meant to stop us), with the
/// error as its reason, until its mtime + `max`. `max` caps how long any
/// pause lasts from its start: the earliest of `since`, the file's mtime
/// and `now` (a `since` in the future does not lift the cap). Unknown
/// fields are ignored: a file from a newer release still pauses, capped.
pub fn read(host: &HostRoot, now: Timestamp, max: SignedDuration) -> Option<PauseState> {
    // A live pause in either place wins over an expired one in the other.
    let mut expired = None;
    for node_path in [PAUSE_FILE, LEGACY_PAUSE_FILE] {
        let path = host.path(node_path);
        let Some(pause) = read_capped(&path, now, max) else {
            continue;
        };
        let st = PauseState {
            expired: pause.until <= now,
            pause,
            path: node_path.into(),
        };
        if !st.expired {
            return Some(st);
        }
        expired.get_or_insert(st);
    }
    expired
}

/// The pause in the file at `path`, capped; None when there is no file.
fn read_capped(path: &Path, now: Timestamp, max: SignedDuration) -> Option<Pause> {
    let mtime = std::fs::metadata(path)
        .and_then(|m| m.modified())
        .ok()
        .and_then(|m| Timestamp::try_from(m).ok());
    let cap_from = |start: Timestamp| start.checked_add(max).unwrap_or(Timestamp::MAX);
    match read_file(path) {
        Ok(None) => None,
        Ok(Some(mut p)) => {
            let start = [p.since, mtime, Some(now)]
                .into_iter()
                .flatten()
                .min()
                .unwrap_or(now);
            p.until = p.until.min(cap_from(start));
            Some(p)
        }
        Err(e) => Some(Pause {
            until: cap_from(mtime.unwrap_or(now).min(now)),
            reason: Some(format!(
                "{e:#}; remove the file or run `taint-guard resume`"
            )),
            by: None,
            since: mtime,
        }),
    }
}

fn read_file(path: &Path) -> Result<Option<Pause>> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
    };
    let p: Pause = toml::from_str(&text).map_err(|e| {
        let (l, c) = e
            .span()
            .map(|s| crate::diag::line_col(&text, s.start))
            .unwrap_or((0, 0));
        anyhow!(
            "{}:{l}:{c}: invalid pause file: {}",
            path.display(),
            e.message()
        )
    })?;
    Ok(Some(p))
}

/// Write the pause file (atomically, fsynced: it must survive a power cut).
pub fn pause(host: &HostRoot, pause: &Pause) -> Result<std::path::PathBuf> {
    let path = host.path(PAUSE_FILE);
    let dir = path.parent().expect("has parent");
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let text = toml::to_string(pause).context("serialising pause")?;
    crate::files::write_atomic(&path, text.as_bytes(), None)?;
    // A legacy pause would outlive this one's resume otherwise.
    remove(&host.path(LEGACY_PAUSE_FILE))?;
    Ok(path)
}

/// Remove the pause (both places). Returns whether there was one.
pub fn resume(host: &HostRoot) -> Result<bool> {
    let a = remove(&host.path(PAUSE_FILE))?;
    let b = remove(&host.path(LEGACY_PAUSE_FILE))?;
    Ok(a || b)
}

/// Remove an expired pause file (expired by its `until` or by the same cap
/// [`read`] applies, unreadable files included), unless it was replaced by
/// a live one since.
pub fn clear_expired(
    host: &HostRoot,
    node_path: &str,
    now: Timestamp,
    max: SignedDuration,
) -> Result<bool> {
    let path = host.path(node_path);
    match read_capped(&path, now, max) {
        Some(p) if p.until <= now => remove(&path),
        _ => Ok(false),
    }
}

fn remove(path: &Path) -> Result<bool> {
    match std::fs::remove_file(path) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(e).with_context(|| format!("removing {}", path.display())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: SignedDuration = SignedDuration::from_hours(24);

    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    #[test]
    fn pause_resume_roundtrip_and_expiry() {
        let t = tempfile::tempdir().unwrap();
        let host = HostRoot::new(t.path());
        let now = ts("2026-11-27T12:00:00Z");
        assert_eq!(read(&host, now, DAY), None);
        let p = Pause {
            until: ts("2026-11-27T14:00:00Z"),
            reason: Some("kernel upgrade".into()),
            by: Some("alice".into()),
            since: Some(now),
        };
        let path = pause(&host, &p).unwrap();
        assert_eq!(path, t.path().join("var/lib/taint-guard/pause"));
        let st = read(&host, now, DAY).unwrap();
        assert_eq!(st.active(), Some(&p));
        assert_eq!(st.path, PAUSE_FILE);
        assert!(st.pause.describe().contains("by alice (kernel upgrade)"));
        // Expired: still read (to be reported once), but not in force.
        let later = ts("2026-11-27T15:00:00Z");
        let st = read(&host, later, DAY).unwrap();
        assert!(st.expired && st.active().is_none());
        assert!(clear_expired(&host, PAUSE_FILE, later, DAY).unwrap());
        assert_eq!(read(&host, later, DAY), None);
        pause(&host, &p).unwrap();
        assert!(resume(&host).unwrap());
        assert!(!resume(&host).unwrap());
        assert_eq!(read(&host, now, DAY), None);
    }

    #[test]
    fn pause_is_capped_from_its_start() {
        let t = tempfile::tempdir().unwrap();
        let host = HostRoot::new(t.path());
        let now = ts("2026-11-27T12:00:00Z");
        let p = Pause {
            until: ts("2027-01-01T00:00:00Z"),
            reason: None,
            by: None,
            since: Some(now),
        };
        pause(&host, &p).unwrap();
        let st = read(&host, now, DAY).unwrap();
        assert_eq!(st.pause.until, ts("2026-11-28T12:00:00Z"));
        assert!(
            read(&host, ts("2026-11-28T12:00:01Z"), DAY)
                .unwrap()
                .expired
        );
    }

    #[test]
    fn legacy_run_pause_is_honoured_and_resume_clears_both() {
        let t = tempfile::tempdir().unwrap();
        let host = HostRoot::new(t.path());
        std::fs::create_dir_all(host.path("/run/taint-guard")).unwrap();
        std::fs::write(
            host.path(LEGACY_PAUSE_FILE),
            "until = \"2026-11-27T14:00:00Z\"\n",
        )
        .unwrap();
        let st = read(&host, ts("2026-11-27T13:00:00Z"), SignedDuration::MAX).unwrap();
        assert_eq!(st.path, LEGACY_PAUSE_FILE);
        assert!(!st.expired);
        assert!(resume(&host).unwrap());
        assert_eq!(read(&host, ts("2026-11-27T13:00:00Z"), DAY), None);
        // An expired pause in /var/lib does not hide a live one in /run.
        std::fs::create_dir_all(host.path("/var/lib/taint-guard")).unwrap();
        std::fs::write(host.path(PAUSE_FILE), "until = \"2026-11-27T10:00:00Z\"\n").unwrap();
        std::fs::write(
            host.path(LEGACY_PAUSE_FILE),
            "until = \"2026-11-27T14:00:00Z\"\n",
        )
        .unwrap();
        let st = read(&host, ts("2026-11-27T13:00:00Z"), SignedDuration::MAX).unwrap();
        assert!(!st.expired && st.path == LEGACY_PAUSE_FILE, "{st:?}");
    }

    fn set_mtime(path: &Path, t: Timestamp) {
        let f = std::fs::File::options().write(true).open(path).unwrap();
        f.set_modified(std::time::SystemTime::from(t)).unwrap();
    }

    #[test]
    fn a_future_since_does_not_lift_the_cap() {
        let t = tempfile::tempdir().unwrap();
        let host = HostRoot::new(t.path());
        let now = ts("2026-11-27T12:00:00Z");
        let p = Pause {
            until: ts("2030-01-01T00:00:00Z"),
            reason: None,
            by: None,
            since: Some(ts("2029-12-31T00:00:00Z")),
        };
        pause(&host, &p).unwrap();
        set_mtime(&host.path(PAUSE_FILE), now);
        // Capped from min(since, mtime, now) = now.
        let st = read(&host, now, DAY).unwrap();
        assert_eq!(st.pause.until, ts("2026-11-28T12:00:00Z"));
        // The mtime caps it too when it is earlier than now.
        let later = ts("2026-11-28T12:00:00Z");
        let st = read(&host, later, DAY).unwrap();
        assert!(st.expired, "{st:?}");
        // And clearing uses the same cap: a pause ended by the cap goes.
        assert!(clear_expired(&host, PAUSE_FILE, later, DAY).unwrap());
        assert_eq!(read(&host, later, DAY), None);
    }

    #[test]
    fn unknown_fields_are_tolerated_and_capped() {
        let t = tempfile::tempdir().unwrap();
        let host = HostRoot::new(t.path());
        std::fs::create_dir_all(host.path("/var/lib/taint-guard")).unwrap();
        let f = host.path(PAUSE_FILE);
        std::fs::write(&f, "until = \"2030-01-01T00:00:00Z\"\nticket = \"OPS-1\"\n").unwrap();
        let now = ts("2026-11-27T12:00:00Z");
        set_mtime(&f, now);
        let st = read(&host, now, DAY).unwrap();
        assert!(st.pause.reason.is_none(), "parsed, not an error: {st:?}");
        assert_eq!(st.pause.until, ts("2026-11-28T12:00:00Z"));
    }

    #[test]
    fn an_unreadable_pause_ends_at_mtime_plus_the_cap_and_is_cleared() {
        let t = tempfile::tempdir().unwrap();
        let host = HostRoot::new(t.path());
        std::fs::create_dir_all(host.path("/var/lib/taint-guard")).unwrap();
        let f = host.path(PAUSE_FILE);
        std::fs::write(&f, "until = \"tomorrow\"\n").unwrap();
        let written = ts("2026-11-27T12:00:00Z");
        set_mtime(&f, written);
        let st = read(&host, ts("2026-11-28T11:59:59Z"), DAY).unwrap();
        assert!(st.active().is_some(), "in force until mtime + max_hours");
        let end = ts("2026-11-28T12:00:00Z");
        let st = read(&host, end, DAY).unwrap();
        assert!(st.expired, "not forever: {st:?}");
        assert!(clear_expired(&host, PAUSE_FILE, end, DAY).unwrap());
        assert_eq!(read(&host, end, DAY), None);
    }

    #[test]
    fn bad_pause_file_counts_as_a_pause_with_the_error() {
        let t = tempfile::tempdir().unwrap();
        let host = HostRoot::new(t.path());
        std::fs::create_dir_all(host.path("/var/lib/taint-guard")).unwrap();
        std::fs::write(host.path(PAUSE_FILE), "until = \"tomorrow\"\n").unwrap();
        let st = read(&host, Timestamp::now(), DAY).unwrap();
        assert!(st.active().is_some());
        let why = st.pause.reason.unwrap();
        assert!(
            why.contains("var/lib/taint-guard/pause:1:9: invalid pause file"),
            "{why}"
        );
    }
}
