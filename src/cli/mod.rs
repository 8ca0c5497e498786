//! Command line: one struct per subcommand, each with `run`.

mod check;
mod pause;
mod run;

use std::path::PathBuf;

use clap::{Parser, Subcommand};

use crate::config::Config;
use crate::hostroot::HostRoot;

pub use check::CheckCmd;
pub use pause::{PauseCmd, ResumeCmd};
pub use run::RunCmd;

/// Exit codes (monitoring-plugins convention for `check`, sysexits for the rest).
pub mod exit {
    pub const OK: u8 = 0;
    pub const WARNING: u8 = 1;
    pub const CRITICAL: u8 = 2;
    pub const UNKNOWN: u8 = 3;
    /// EX_USAGE
    pub const USAGE: u8 = 64;
    /// EX_CONFIG
    pub const CONFIG: u8 = 78;
}

/// Keeps Kubernetes nodes from silently staying NotReady: checks that
/// kubelet's systemd unit runs now and will after a reboot, and that swap
/// will not stop it.
#[derive(Debug, Parser)]
#[command(name = "taint-guard", version, propagate_version = true)]
pub struct Cli {
    /// The node's root filesystem: fstab, kubelet's env and config files and
    /// the pause file are read under it (`/host` in the DaemonSet).
    #[arg(long, global = true, default_value = "/", value_name = "DIR")]
    pub host_root: PathBuf,

    /// Use only this config file instead of /usr/lib, /run and
    /// /etc/taint-guard/config.toml and their config.d/*.toml drop-ins.
    #[arg(long, global = true, value_name = "PATH")]
    pub config: Option<PathBuf>,

    /// More log output (-v info, -vv debug, -vvv trace); RUST_LOG overrides.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    Check(CheckCmd),
    Pause(PauseCmd),
    Resume(ResumeCmd),
    Run(RunCmd),
}

/// Settings every command shares.
pub struct Context {
    pub host: HostRoot,
    pub config_path: Option<PathBuf>,
}

impl Context {
    pub fn load_config(&self) -> Result<Config, crate::config::ConfigError> {
        Config::load(self.config_path.as_deref())
    }
}

/// Parse argv; on a usage error print it and return the exit code.
pub fn parse() -> Result<Cli, u8> {
    Cli::try_parse().map_err(|e| {
        let _ = e.print();
        match e.kind() {
            clap::error::ErrorKind::DisplayHelp
            | clap::error::ErrorKind::DisplayVersion
            | clap::error::ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => exit::OK,
            _ => exit::USAGE,
        }
    })
}

impl Cli {
    pub fn run(self) -> u8 {
        let ctx = Context {
            host: HostRoot::new(&self.host_root),
            config_path: self.config,
        };
        match self.command {
            Command::Check(c) => c.run(&ctx),
            Command::Pause(c) => c.run(&ctx),
            Command::Resume(c) => c.run(&ctx),
            Command::Run(c) => c.run(&ctx),
        }
    }
}

/// Logging to stderr, or straight to the journal when started by systemd.
pub fn init_logging(verbose: u8) {
    use tracing_subscriber::prelude::*;
    let default = match verbose {
        0 => "warn",
        1 => "info",
        2 => "debug",
        _ => "trace",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    // Fields as named (FINDING_ID, UNIT, ACTION, OUTCOME), not F_-prefixed.
    let journald = std::env::var_os("JOURNAL_STREAM")
        .and_then(|_| tracing_journald::layer().ok())
        .map(|l| l.with_field_prefix(None));
    let registry = tracing_subscriber::registry().with(filter);
    match journald {
        Some(j) => registry.with(j).init(),
        None => registry
            .with(
                tracing_subscriber::fmt::layer()
                    .with_writer(std::io::stderr)
                    .without_time(),
            )
            .init(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn clap_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn parses_check_flags() {
        let c = Cli::try_parse_from([
            "taint-guard",
            "check",
            "--host-root",
            "/host",
            "--output",
            "json",
            "--fix",
            "--dry-run",
        ])
        .unwrap();
        assert_eq!(c.host_root, PathBuf::from("/host"));
        let Command::Check(ck) = c.command else {
            panic!()
        };
        assert!(ck.fix && ck.dry_run);
        assert!(
            Cli::try_parse_from(["taint-guard", "check", "--dry-run"]).is_err(),
            "--dry-run needs --fix"
        );
        assert!(Cli::try_parse_from(["taint-guard", "check", "--output", "xml"]).is_err());
    }
}
