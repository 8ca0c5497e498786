//! Command line: one struct per subcommand, each with `run`.

mod check;
pub mod explain;
mod gen;
mod pause;
mod run;

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::config::Config;
use crate::hostroot::HostRoot;

pub use check::CheckCmd;
pub use explain::ExplainCmd;
pub use gen::{write_man_pages, CompletionsCmd, ManCmd};
pub use pause::{PauseCmd, ResumeCmd};
pub use run::RunCmd;

/// Exit codes (monitoring-plugins convention for `check`, sysexits for the rest).
pub use crate::exit;

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

    /// Take this as what systemd on the node runs in (its Virtualization
    /// property: none, kvm, lxc…) instead of asking it. For tests, where a
    /// container stands in for a VM or bare metal.
    #[arg(
        long,
        global = true,
        value_name = "ID",
        hide = true,
        env = "TAINT_GUARD_ASSUME_VIRTUALIZATION"
    )]
    pub assume_virtualization: Option<String>,

    /// More log output (-v info, -vv debug, -vvv trace); RUST_LOG overrides.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    // `taint-guard --check` is the same as `taint-guard check` (listed in
    // --help as `check, --check`).
    #[command(long_flag = "check")]
    Check(CheckCmd),
    Explain(ExplainCmd),
    Pause(PauseCmd),
    Resume(ResumeCmd),
    Run(RunCmd),
    Completions(CompletionsCmd),
    #[command(hide = true)]
    Man(ManCmd),
}

/// Where `check` and `run` find the node: its name, the API server and
/// the kernel's files.
#[derive(Debug, Args)]
pub struct NodeArgs {
    /// Node name (default: $NODE_NAME, the node identity, kubelet's
    /// --hostname-override, the hostname).
    #[arg(long, value_name = "NAME")]
    pub node_name: Option<String>,

    /// Kubeconfig (default: $KUBECONFIG, in-cluster, the kubelet's
    /// /etc/kubernetes/kubelet.conf under --host-root).
    #[arg(long, value_name = "PATH")]
    pub kubeconfig: Option<PathBuf>,

    /// Where to read active swap from (swap is kernel-global).
    #[arg(long, default_value = "/proc/swaps", value_name = "PATH", hide = true)]
    pub proc_swaps: PathBuf,

    /// The cgroupfs root, for the swapoff guard.
    #[arg(
        long,
        default_value = "/sys/fs/cgroup",
        value_name = "PATH",
        hide = true
    )]
    pub cgroup_root: PathBuf,
}

/// Settings every command shares.
pub struct Context {
    pub host: HostRoot,
    pub config_path: Option<PathBuf>,
    pub assume_virtualization: Option<String>,
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
            assume_virtualization: self.assume_virtualization,
        };
        match self.command {
            Command::Check(c) => c.run(&ctx),
            Command::Explain(c) => c.run(&ctx),
            Command::Pause(c) => c.run(&ctx),
            Command::Resume(c) => c.run(&ctx),
            Command::Run(c) => c.run(&ctx),
            Command::Completions(c) => c.run(&ctx),
            Command::Man(c) => c.run(&ctx),
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

    #[test]
    fn check_flag_is_an_alias_of_the_check_subcommand() {
        let args = ["--output", "json", "--fix", "--no-block"];
        for first in ["check", "--check"] {
            let mut argv = vec!["taint-guard", first];
            argv.extend(args);
            let c = Cli::try_parse_from(&argv).unwrap_or_else(|e| panic!("{first}: {e}"));
            let Command::Check(ck) = c.command else {
                panic!("{first} did not parse as check")
            };
            assert!(ck.fix && ck.no_block && ck.output == check::Format::Json);
        }
        // Global flags before it, too.
        let c = Cli::try_parse_from(["taint-guard", "--host-root", "/host", "--check"]).unwrap();
        assert!(matches!(c.command, Command::Check(_)));
        assert_eq!(c.host_root, PathBuf::from("/host"));
    }

    #[test]
    fn completions_for_each_shell_know_the_subcommands_and_flags() {
        for shell in [
            clap_complete::Shell::Bash,
            clap_complete::Shell::Zsh,
            clap_complete::Shell::Fish,
        ] {
            let mut buf = Vec::new();
            clap_complete::generate(shell, &mut Cli::command(), "taint-guard", &mut buf);
            let s = String::from_utf8(buf).unwrap();
            for word in [
                "check",
                "pause",
                "resume",
                "run",
                "completions",
                "dry-run",
                "host-root",
            ] {
                assert!(s.contains(word), "{shell}: no {word} in\n{s}");
            }
        }
    }

    #[test]
    fn one_man_page_per_subcommand() {
        let dir = tempfile::tempdir().unwrap();
        let pages = write_man_pages(dir.path()).unwrap();
        let names: Vec<String> = pages
            .iter()
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(
            names,
            [
                "taint-guard-check.1",
                "taint-guard-completions.1",
                "taint-guard-explain-node.1",
                "taint-guard-explain-nodes.1",
                "taint-guard-explain-pod.1",
                "taint-guard-explain.1",
                "taint-guard-pause.1",
                "taint-guard-resume.1",
                "taint-guard-run.1",
                "taint-guard.1"
            ]
        );
        let check = std::fs::read_to_string(dir.path().join("taint-guard-check.1")).unwrap();
        assert!(check.starts_with(".ie") || check.contains(".TH"), "{check}");
        assert!(
            check.contains("taint\\-guard\\-check") && check.contains("dry\\-run"),
            "{check}"
        );
        let top = std::fs::read_to_string(dir.path().join("taint-guard.1")).unwrap();
        assert!(top.contains("taint\\-guard\\-check(1)"), "{top}");
    }
}
