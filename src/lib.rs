//! taint-guard: keeps Kubernetes nodes from silently staying NotReady.
//!
//! Data flows one way: [`observe`] (D-Bus, /proc, files under the host
//! root) → [`evaluate`] (pure) → [`plan`] (pure) → [`apply`] (effects) →
//! [`output`] / [`report`] (stdout, journal, the Node object).

pub mod apply;
pub mod cgroup;
pub mod cli;
pub mod config;
pub mod diag;
pub mod evaluate;
pub mod exit;
pub mod explain;
pub mod files;
pub mod finding;
pub mod fstab;
pub mod gobuild;
pub mod hostroot;
pub mod kubelet;
pub mod observation;
pub mod observe;
pub mod output;
pub mod paths;
pub mod pause;
pub mod plan;
pub mod readiness;
pub mod remedy;
pub mod report;
pub mod run;
pub mod swap;
pub mod systemd;
pub mod unitname;
pub mod unixdiag;
pub mod virt;
