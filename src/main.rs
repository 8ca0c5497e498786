//! Wiring only: parse, log, dispatch, exit.

use std::process::ExitCode;

fn main() -> ExitCode {
    // Test builds only: fail points from $FAILPOINTS.
    #[cfg(feature = "failpoints")]
    let _failpoints = fail::FailScenario::setup();
    let cli = match taint_guard::cli::parse() {
        Ok(cli) => cli,
        Err(code) => return ExitCode::from(code),
    };
    taint_guard::cli::init_logging(cli.verbose);
    ExitCode::from(cli.run())
}
