use clap::Args;

use super::{exit, Context};
use crate::pause::{self, Pause};

/// Stop all remediation until a time (a maintenance pause). Written to
/// /run/taint-guard/pause under the host root, so a reboot clears it.
#[derive(Debug, Args)]
pub struct PauseCmd {
    /// How long, e.g. `30m`, `2h`, `1h30m`.
    #[arg(long = "for", value_name = "DURATION", value_parser = parse_duration)]
    pub duration: jiff::SignedDuration,
    /// Why (shown in `check` output and events).
    #[arg(long)]
    pub reason: Option<String>,
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

impl PauseCmd {
    pub fn run(self, ctx: &Context) -> u8 {
        let until = match jiff::Timestamp::now().checked_add(self.duration) {
            Ok(t) => t,
            Err(e) => {
                eprintln!("taint-guard: invalid duration: {e}");
                return exit::USAGE;
            }
        };
        let p = Pause {
            until,
            reason: self.reason,
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
