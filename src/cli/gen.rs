//! Shell completions and man pages, generated from the clap definition so
//! they never drift from the parser.

use std::path::PathBuf;

use clap::{Args, CommandFactory};
use clap_complete::Shell;

use super::{exit, Cli, Context};

/// Print a shell completion script (bash, zsh, fish, elvish, powershell) to
/// stdout. The Debian package installs them where each shell looks.
#[derive(Debug, Args)]
pub struct CompletionsCmd {
    #[arg(value_enum)]
    pub shell: Shell,
}

impl CompletionsCmd {
    pub fn run(self, _ctx: &Context) -> u8 {
        let mut cmd = Cli::command();
        clap_complete::generate(self.shell, &mut cmd, "taint-guard", &mut std::io::stdout());
        exit::OK
    }
}

/// Write the man pages (taint-guard.1 and one taint-guard-SUBCOMMAND.1 per
/// subcommand) into a directory. Used to build the package.
#[derive(Debug, Args)]
pub struct ManCmd {
    /// The directory to write the pages to (created if missing).
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
}

impl ManCmd {
    pub fn run(self, _ctx: &Context) -> u8 {
        match write_man_pages(&self.out) {
            Ok(pages) => {
                for p in pages {
                    println!("{}", p.display());
                }
                exit::OK
            }
            Err(e) => {
                eprintln!("taint-guard man: {}: {e}", self.out.display());
                1
            }
        }
    }
}

/// Render every man page into `dir`; returns the files written, sorted.
pub fn write_man_pages(dir: &std::path::Path) -> std::io::Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir)?;
    clap_mangen::generate_to(Cli::command(), dir)?;
    let mut pages: Vec<PathBuf> = std::fs::read_dir(dir)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "1"))
        .collect();
    pages.sort();
    Ok(pages)
}
