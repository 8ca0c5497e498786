//! Reporting on the Node object: annotations, the KubeletHostProblem
//! condition and Events, written only when something changed.

use std::path::PathBuf;
use std::time::Duration;

use serde::Serialize;

use crate::apply::ActionOutcome;
use crate::evaluate::Assessment;
use crate::hostroot::HostRoot;
use crate::observation::Observation;

/// How to reach the API server and which Node is ours.
#[derive(Debug, Clone)]
pub struct Options {
    pub node_name: Option<String>,
    pub kubeconfig: Option<PathBuf>,
    pub host: HostRoot,
    pub timeout: Duration,
    pub max_findings_bytes: usize,
}

/// What reporting did (printed by `check`).
#[derive(Debug, Clone, Serialize)]
pub struct Outcome {
    pub summary: String,
}

/// Report; never fails the local check.
pub async fn report(
    _opts: &Options,
    _a: &Assessment,
    _actions: &[ActionOutcome],
    _obs: &Observation,
    _dry_run: bool,
) -> Outcome {
    Outcome {
        summary: "skipped (not implemented yet)".into(),
    }
}
