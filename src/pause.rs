//! Maintenance pause: while `/run/taint-guard/pause` (under the host root)
//! says so, nothing is remediated. /run is tmpfs, so a reboot clears it.

use anyhow::{anyhow, Context, Result};
use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use crate::hostroot::HostRoot;

pub const PAUSE_FILE: &str = "/run/taint-guard/pause";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Pause {
    /// RFC 3339.
    pub until: Timestamp,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

impl Pause {
    pub fn describe(&self) -> String {
        match &self.reason {
            Some(r) => format!(
                "maintenance pause until {} ({r}); `taint-guard resume` ends it",
                self.until
            ),
            None => format!(
                "maintenance pause until {}; `taint-guard resume` ends it",
                self.until
            ),
        }
    }
}

/// The pause in force at `now`, if any. An unreadable pause file counts as a
/// pause (the operator meant to stop us); an expired one does not.
pub fn active(host: &HostRoot, now: Timestamp) -> Result<Option<Pause>> {
    let path = host.path(PAUSE_FILE);
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
    };
    let p: Pause = toml::from_str(&text).map_err(|e| {
        let (l, c) = e
            .span()
            .map(|s| crate::config::line_col(&text, s.start))
            .unwrap_or((0, 0));
        anyhow!(
            "{}:{l}:{c}: invalid pause file: {}",
            path.display(),
            e.message()
        )
    })?;
    Ok((p.until > now).then_some(p))
}

/// Write the pause file (atomically).
pub fn pause(host: &HostRoot, pause: &Pause) -> Result<std::path::PathBuf> {
    let path = host.path(PAUSE_FILE);
    let dir = path.parent().expect("has parent");
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let text = toml::to_string(pause).context("serialising pause")?;
    crate::files::write_atomic(&path, text.as_bytes(), None)?;
    Ok(path)
}

/// Remove the pause file. Returns whether there was one.
pub fn resume(host: &HostRoot) -> Result<bool> {
    let path = host.path(PAUSE_FILE);
    match std::fs::remove_file(&path) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(e).with_context(|| format!("removing {}", path.display())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pause_resume_roundtrip_and_expiry() {
        let t = tempfile::tempdir().unwrap();
        let host = HostRoot::new(t.path());
        let now: Timestamp = "2026-11-27T12:00:00Z".parse().unwrap();
        assert_eq!(active(&host, now).unwrap(), None);
        let p = Pause {
            until: "2026-11-27T14:00:00Z".parse().unwrap(),
            reason: Some("kernel upgrade".into()),
        };
        let path = pause(&host, &p).unwrap();
        assert!(path.starts_with(t.path()));
        assert_eq!(active(&host, now).unwrap(), Some(p.clone()));
        assert_eq!(
            active(&host, "2026-11-27T15:00:00Z".parse().unwrap()).unwrap(),
            None
        );
        assert!(resume(&host).unwrap());
        assert!(!resume(&host).unwrap());
        assert_eq!(active(&host, now).unwrap(), None);
    }

    #[test]
    fn bad_pause_file_is_an_error_with_location() {
        let t = tempfile::tempdir().unwrap();
        let host = HostRoot::new(t.path());
        std::fs::create_dir_all(host.path("/run/taint-guard")).unwrap();
        std::fs::write(host.path(PAUSE_FILE), "until = \"tomorrow\"\n").unwrap();
        let e = active(&host, Timestamp::now()).unwrap_err().to_string();
        assert!(
            e.contains("run/taint-guard/pause:1:9: invalid pause file"),
            "{e}"
        );
    }
}
