use clap::Args;

use super::{exit, Context};
use crate::pause::{self, Pause};

/// Stop all remediation until a time (a maintenance pause), by `check
/// --fix`, the boot unit and the daemon alike. Written to
/// /var/lib/taint-guard/pause under the host root: it survives reboots and
/// ends by itself. `--status` shows the pause in force.
#[derive(Debug, Args)]
pub struct PauseCmd {
    /// How long, e.g. `30m`, `2h`, `1h30m` (at most `[pause] max_hours`).
    #[arg(long = "for", value_name = "DURATION", value_parser = parse_duration, required_unless_present = "status")]
    pub duration: Option<jiff::SignedDuration>,
    /// Why (shown in `check` output and events).
    #[arg(long, conflicts_with = "status")]
    pub reason: Option<String>,
    /// Show the pause in force (who, why, until) and change nothing.
    /// Exit 0 when paused, 1 when not.
    #[arg(long)]
    pub status: bool,
}

fn parse_duration(s: &str) -> Result<jiff::SignedDuration, String> {
    let d: jiff::SignedDuration = s
        .parse()
        .map_err(|e| format!("not a duration like 30m or 2h: {e}"))?;
    if d.is_negative() || d.is_zero() {
        return Err("must be positive".into());
    }
    Ok(d)
}

/// Who is pausing: the sudo caller, the login user, or the uid.
fn who() -> Option<String> {
    for var in ["SUDO_USER", "USER", "LOGNAME"] {
        if let Ok(v) = std::env::var(var) {
            if !v.is_empty() {
                return Some(v);
            }
        }
    }
    // SAFETY: getuid has no preconditions.
    Some(format!("uid {}", unsafe { libc::getuid() }))
}

impl PauseCmd {
    pub fn run(self, ctx: &Context) -> u8 {
        let cfg = match ctx.load_config() {
            Ok(c) => c,
            Err(e) => {
                eprintln!("taint-guard: invalid config: {e}");
                return exit::CONFIG;
            }
        };
        let max = jiff::SignedDuration::from_hours(cfg.pause.max_hours.min(1 << 40) as i64);
        let now = jiff::Timestamp::now();
        if self.status {
            return match pause::read(&ctx.host, now, max) {
                Some(st) if !st.expired => {
                    println!("paused: {} ({})", st.pause.describe(), st.path);
                    exit::OK
                }
                Some(st) => {
                    println!(
                        "not paused: the pause in {} ended at {}",
                        st.path, st.pause.until
                    );
                    exit::WARNING
                }
                None => {
                    println!("not paused");
                    exit::WARNING
                }
            };
        }
        let Some(duration) = self.duration else {
            eprintln!("taint-guard: pause needs --for DURATION");
            return exit::USAGE;
        };
        if duration > max {
            eprintln!(
                "taint-guard: a pause lasts at most {}h ([pause] max_hours); asked for {duration:#}",
                cfg.pause.max_hours
            );
            return exit::USAGE;
        }
        let until = match now.checked_add(duration) {
            Ok(t) => t,
            Err(e) => {
                eprintln!("taint-guard: invalid duration: {e}");
                return exit::USAGE;
            }
        };
        let p = Pause {
            until,
            reason: self.reason,
            by: who(),
            since: Some(now),
        };
        match pause::pause(&ctx.host, &p) {
            Ok(path) => {
                println!("paused: {} ({})", p.describe(), path.display());
                exit::OK
            }
            Err(e) => {
                eprintln!("taint-guard: {e:#}");
                exit::UNKNOWN
            }
        }
    }
}

/// End a maintenance pause.
#[derive(Debug, Args)]
pub struct ResumeCmd {}

impl ResumeCmd {
    pub fn run(self, ctx: &Context) -> u8 {
        match pause::resume(&ctx.host) {
            Ok(true) => {
                println!("resumed: maintenance pause removed");
                exit::OK
            }
            Ok(false) => {
                println!("resumed: there was no pause");
                exit::OK
            }
            Err(e) => {
                eprintln!("taint-guard: {e:#}");
                exit::UNKNOWN
            }
        }
    }
}
