//! Configuration: TOML fragments merged from /usr/lib, /run and /etc
//! (later overrides earlier, drop-ins in `config.d/*.toml` after the main
//! file, ordered by file name), then validated into typed settings.
//!
//! Unknown keys are errors, reported with file, line and column.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::finding::{Severity, FINDING_IDS};

/// Directories searched, lowest precedence first.
pub const CONFIG_DIRS: [&str; 3] = [
    "/usr/lib/taint-guard",
    "/run/taint-guard",
    "/etc/taint-guard",
];

/// Known alternatives to kubelet.service, tried in order.
pub const KUBELET_ALTERNATIVES: [&str; 5] = [
    "k3s.service",
    "k3s-agent.service",
    "rke2-server.service",
    "rke2-agent.service",
    "snap.microk8s.daemon-kubelite.service",
];

/// A configuration file that could not be used.
#[derive(Debug, thiserror::Error)]
#[error("{path}:{line}:{column}: {message}")]
pub struct ConfigError {
    pub path: String,
    pub line: usize,
    pub column: usize,
    pub message: String,
}

/// Validated settings.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    pub required_units: Vec<String>,
    pub kubelet_alternatives: Vec<String>,
    pub severity: BTreeMap<String, Severity>,
    pub fix: FixPolicy,
    pub report: ReportSettings,
    pub pause: PauseSettings,
    pub run: RunSettings,
    pub readiness: Readiness,
    /// Files merged, in order (for `--verbose` and errors).
    pub sources: Vec<PathBuf>,
}

/// What `check --fix` may do.
#[derive(Debug, Clone, PartialEq)]
pub struct FixPolicy {
    pub swapoff: bool,
    pub fstab: bool,
    pub swap_units: bool,
    pub mask_swap_units: bool,
    pub enable: bool,
    pub start: bool,
    pub unmask: bool,
    pub swapoff_min_free_mib: u64,
    pub start_timeout_secs: u64,
    pub settle_secs: u64,
    /// Wait for start jobs and the settle time (false: queue and return).
    pub wait_for_start: bool,
    /// Bound on one swapoff(2); past it the repair reports `timed-out` and
    /// nothing is started. One bound for all swapoffs of a repair together.
    pub swapoff_timeout_secs: u64,
    /// How many `fstab.taint-guard.*.bak` backups to keep (the newest;
    /// at least 1: the newest is the undo of the last edit).
    pub fstab_backups: usize,
    /// Start a unit that was stopped cleanly after running in this boot
    /// (`unit-stopped`: a person's `systemctl stop`). `check --fix` does
    /// (a person asked for the repair); the daemon will not by default.
    /// Not a config key yet: set by the caller.
    pub start_stopped: bool,
    /// List a module that is in the kernel now in
    /// /etc/modules-load.d/taint-guard.conf, so the next boot loads it too.
    pub persist_modules: bool,
    /// Write a sysctl that has the required value now to
    /// /etc/sysctl.d/99-taint-guard.conf, so the next boot sets it too.
    pub persist_sysctls: bool,
}

/// Reboot readiness beyond kubelet and swap: what the node needs in the
/// kernel now and at the next boot.
#[derive(Debug, Clone, PartialEq)]
pub struct Readiness {
    /// Kernel modules kubelet networking needs (empty: not checked).
    pub modules: Vec<String>,
    /// Sysctls and the value they need (empty: not checked). A
    /// `net.bridge.*` key is checked only while br_netfilter is in.
    pub sysctls: BTreeMap<String, String>,
    /// Check kubelet's client certificate (expired: critical).
    pub kubelet_cert: bool,
    /// Warn this many days before it expires (0: no warning).
    pub cert_warn_days: u64,
    /// Check that the clock is NTP-synchronised (systemd-timedated).
    pub clock: bool,
    /// Check kubelet's container runtime unit and socket.
    pub runtime: bool,
}

/// The daemon (`taint-guard run`): event handling, repair rules, reporting
/// schedule, metrics. Durations in the unit their key names.
#[derive(Debug, Clone, PartialEq)]
pub struct RunSettings {
    /// Repair at all, unattended (false: observe and report only). The one
    /// switch for both unattended paths: the daemon and the boot unit
    /// (`check --fix --unattended`). A person's `check --fix` is not affected.
    pub remediate: bool,
    /// Revert what a person or a tool was seen to change (a swap line put
    /// back in fstab, kubelet stopped and disabled). Default false: such a
    /// change is reported, not fought.
    pub enforce: bool,
    /// A unit is started only after it has been down this long.
    pub start_grace_secs: u64,
    /// Start a unit stopped cleanly in this boot (`unit-stopped`).
    pub start_stopped: bool,
    /// A repair that keeps being needed waits this long, doubling per
    /// attempt up to `repair_backoff_max_secs`.
    pub repair_backoff_secs: u64,
    pub repair_backoff_max_secs: u64,
    /// Quiet time that ends a burst of events (one evaluation per burst).
    pub debounce_ms: u64,
    /// Full resync, jittered.
    pub resync_secs: u64,
    /// Report to the Node object.
    pub report: bool,
    /// Report even when nothing changed, this often (jittered).
    pub report_heartbeat_mins: u64,
    /// At most one write burst to the API per this many seconds; the last
    /// state is always written (trailing edge).
    pub report_min_interval_secs: u64,
    /// Random delay before the first report when it carries a problem (the
    /// verdict is not ok), up to this.
    pub report_initial_delay_secs: u64,
    /// Random delay before the first report when all is well, up to this:
    /// news first, and a fleet that starts in the same second (a site's
    /// power back) spreads its heartbeat refreshes. Unset: 6 ×
    /// `report_initial_delay_secs`.
    pub report_initial_delay_ok_secs: u64,
    /// Cap of the backoff while the API server is unreachable.
    pub report_backoff_max_secs: u64,
    /// `ADDR:PORT` for /metrics, /healthz and /livez; empty: off.
    pub metrics_listen: String,
    /// /healthz says 503 once systemd's bus has been unreachable this long.
    pub health_bus_down_secs: u64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct PauseSettings {
    /// No pause lasts longer than this from its start.
    pub max_hours: u64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ReportSettings {
    pub api_timeout_secs: u64,
    /// Refresh the condition's lastHeartbeatTime when older than this.
    pub heartbeat_mins: u64,
    pub findings_annotation_max_bytes: usize,
}

impl Default for Config {
    fn default() -> Self {
        Config::from_fragments(&[]).expect("defaults are valid")
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Fragment {
    required_units: Option<Vec<String>>,
    kubelet_alternatives: Option<Vec<String>>,
    #[serde(default)]
    severity: BTreeMap<String, toml::Spanned<String>>,
    #[serde(default)]
    fix: FixFragment,
    #[serde(default)]
    report: ReportFragment,
    #[serde(default)]
    pause: PauseFragment,
    #[serde(default)]
    run: RunFragment,
    #[serde(default)]
    readiness: ReadinessFragment,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ReadinessFragment {
    modules: Option<Vec<String>>,
    sysctls: Option<BTreeMap<String, toml::Spanned<String>>>,
    kubelet_cert: Option<bool>,
    cert_warn_days: Option<u64>,
    clock: Option<bool>,
    runtime: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RunFragment {
    remediate: Option<bool>,
    enforce: Option<bool>,
    start_grace_secs: Option<u64>,
    start_stopped: Option<bool>,
    repair_backoff_secs: Option<u64>,
    repair_backoff_max_secs: Option<u64>,
    debounce_ms: Option<u64>,
    resync_secs: Option<u64>,
    report: Option<bool>,
    report_heartbeat_mins: Option<u64>,
    report_min_interval_secs: Option<u64>,
    report_initial_delay_secs: Option<u64>,
    report_initial_delay_ok_secs: Option<u64>,
    report_backoff_max_secs: Option<u64>,
    metrics_listen: Option<String>,
    health_bus_down_secs: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct PauseFragment {
    max_hours: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FixFragment {
    swapoff: Option<bool>,
    fstab: Option<bool>,
    swap_units: Option<bool>,
    mask_swap_units: Option<bool>,
    enable: Option<bool>,
    start: Option<bool>,
    unmask: Option<bool>,
    swapoff_min_free_mib: Option<u64>,
    start_timeout_secs: Option<u64>,
    settle_secs: Option<u64>,
    wait_for_start: Option<bool>,
    swapoff_timeout_secs: Option<u64>,
    fstab_backups: Option<usize>,
    persist_modules: Option<bool>,
    persist_sysctls: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ReportFragment {
    api_timeout_secs: Option<u64>,
    heartbeat_mins: Option<u64>,
    findings_annotation_max_bytes: Option<usize>,
}

impl Config {
    /// Load from an explicit file (`--config PATH`), or from the standard
    /// directories when `explicit` is None. A missing explicit file is an error.
    pub fn load(explicit: Option<&Path>) -> Result<Config, ConfigError> {
        let files = match explicit {
            Some(p) => {
                if !p.exists() {
                    return Err(ConfigError {
                        path: p.display().to_string(),
                        line: 0,
                        column: 0,
                        message: "no such file".into(),
                    });
                }
                vec![p.to_path_buf()]
            }
            None => discover(&CONFIG_DIRS.map(PathBuf::from)),
        };
        let mut frags = Vec::new();
        for f in &files {
            let text = std::fs::read_to_string(f).map_err(|e| ConfigError {
                path: f.display().to_string(),
                line: 0,
                column: 0,
                message: format!("cannot read: {e}"),
            })?;
            frags.push((f.clone(), text));
        }
        Config::from_texts(&frags)
    }

    /// Parse and merge `(path, text)` pairs in order.
    pub fn from_texts(texts: &[(PathBuf, String)]) -> Result<Config, ConfigError> {
        let mut frags = Vec::new();
        for (path, text) in texts {
            let frag: Fragment = toml::from_str(text).map_err(|e| {
                let (line, column) = e.span().map(|s| line_col(text, s.start)).unwrap_or((0, 0));
                ConfigError {
                    path: path.display().to_string(),
                    line,
                    column,
                    message: e.message().to_string(),
                }
            })?;
            frags.push((path.clone(), text.as_str(), frag));
        }
        let mut cfg = Config::from_fragments(&frags)?;
        cfg.sources = texts.iter().map(|(p, _)| p.clone()).collect();
        Ok(cfg)
    }

    fn from_fragments(frags: &[(PathBuf, &str, Fragment)]) -> Result<Config, ConfigError> {
        let mut c = Config {
            required_units: vec![crate::finding::KUBELET_UNIT.into()],
            kubelet_alternatives: KUBELET_ALTERNATIVES.map(String::from).to_vec(),
            severity: BTreeMap::new(),
            fix: FixPolicy {
                swapoff: true,
                fstab: true,
                swap_units: true,
                mask_swap_units: false,
                enable: true,
                start: true,
                unmask: false,
                swapoff_min_free_mib: 256,
                start_timeout_secs: 60,
                settle_secs: 3,
                wait_for_start: true,
                swapoff_timeout_secs: 120,
                fstab_backups: 5,
                start_stopped: true,
                persist_modules: true,
                persist_sysctls: true,
            },
            // kubeadm's install guide: overlay and br_netfilter loaded, IPv4
            // forwarding on, bridged traffic through iptables.
            readiness: Readiness {
                modules: vec!["overlay".into(), "br_netfilter".into()],
                sysctls: [
                    ("net.ipv4.ip_forward", "1"),
                    ("net.bridge.bridge-nf-call-iptables", "1"),
                ]
                .into_iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
                kubelet_cert: true,
                cert_warn_days: 30,
                clock: true,
                runtime: true,
            },
            report: ReportSettings {
                api_timeout_secs: 10,
                heartbeat_mins: 60,
                findings_annotation_max_bytes: 4096,
            },
            pause: PauseSettings { max_hours: 24 },
            run: RunSettings {
                remediate: true,
                enforce: false,
                start_grace_secs: 60,
                start_stopped: false,
                repair_backoff_secs: 10,
                repair_backoff_max_secs: 600,
                debounce_ms: 3,
                resync_secs: 300,
                report: true,
                report_heartbeat_mins: 20,
                report_min_interval_secs: 60,
                report_initial_delay_secs: 30,
                report_initial_delay_ok_secs: 0,
                report_backoff_max_secs: 300,
                metrics_listen: String::new(),
                health_bus_down_secs: 60,
            },
            sources: vec![],
        };
        let mut ok_delay = None;
        for (path, text, f) in frags {
            macro_rules! set {
                ($dst:expr, $src:expr) => {
                    if let Some(v) = $src.clone() {
                        $dst = v;
                    }
                };
            }
            set!(c.required_units, f.required_units);
            set!(c.kubelet_alternatives, f.kubelet_alternatives);
            set!(c.fix.swapoff, f.fix.swapoff);
            set!(c.fix.fstab, f.fix.fstab);
            set!(c.fix.swap_units, f.fix.swap_units);
            set!(c.fix.mask_swap_units, f.fix.mask_swap_units);
            set!(c.fix.enable, f.fix.enable);
            set!(c.fix.start, f.fix.start);
            set!(c.fix.unmask, f.fix.unmask);
            set!(c.fix.swapoff_min_free_mib, f.fix.swapoff_min_free_mib);
            set!(c.fix.start_timeout_secs, f.fix.start_timeout_secs);
            set!(c.fix.settle_secs, f.fix.settle_secs);
            set!(c.fix.wait_for_start, f.fix.wait_for_start);
            set!(c.fix.swapoff_timeout_secs, f.fix.swapoff_timeout_secs);
            set!(c.fix.fstab_backups, f.fix.fstab_backups);
            set!(c.fix.persist_modules, f.fix.persist_modules);
            set!(c.fix.persist_sysctls, f.fix.persist_sysctls);
            set!(c.readiness.modules, f.readiness.modules);
            set!(c.readiness.kubelet_cert, f.readiness.kubelet_cert);
            set!(c.readiness.cert_warn_days, f.readiness.cert_warn_days);
            set!(c.readiness.clock, f.readiness.clock);
            set!(c.readiness.runtime, f.readiness.runtime);
            if let Some(m) = &f.readiness.sysctls {
                let mut out = BTreeMap::new();
                for (k, v) in m {
                    let bad = |message: String| {
                        let (line, column) = line_col(text, v.span().start);
                        ConfigError {
                            path: path.display().to_string(),
                            line,
                            column,
                            message,
                        }
                    };
                    let key = crate::readiness::sysctl::normalize(k);
                    // Every path component of /proc/sys/… a plain name: no
                    // glob, no `.`/`..`, nothing that leaves /proc/sys.
                    if key.is_empty()
                        || key.contains(['*', '?', '[', ' ', '=', '\\'])
                        || key
                            .split(['.', '/'])
                            .any(|c| c.is_empty() || c == "." || c == "..")
                    {
                        return Err(bad(format!(
                            "readiness.sysctls: `{k}` is not a sysctl name (net.ipv4.ip_forward)"
                        )));
                    }
                    if v.get_ref().trim().is_empty() || v.get_ref().contains('\n') {
                        return Err(bad(format!(
                            "readiness.sysctls: the value of `{k}` must be one line, not empty"
                        )));
                    }
                    out.insert(key, v.get_ref().trim().to_string());
                }
                c.readiness.sysctls = out;
            }
            if let Some(bad) = c.readiness.modules.iter().find(|m| {
                m.is_empty()
                    || !m
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
            }) {
                return Err(ConfigError {
                    path: path.display().to_string(),
                    line: 0,
                    column: 0,
                    message: format!(
                        "readiness.modules: `{bad}` is not a module name (br_netfilter)"
                    ),
                });
            }
            set!(c.pause.max_hours, f.pause.max_hours);
            set!(c.run.remediate, f.run.remediate);
            set!(c.run.enforce, f.run.enforce);
            set!(c.run.start_grace_secs, f.run.start_grace_secs);
            set!(c.run.start_stopped, f.run.start_stopped);
            set!(c.run.repair_backoff_secs, f.run.repair_backoff_secs);
            set!(c.run.repair_backoff_max_secs, f.run.repair_backoff_max_secs);
            set!(c.run.debounce_ms, f.run.debounce_ms);
            set!(c.run.resync_secs, f.run.resync_secs);
            set!(c.run.report, f.run.report);
            set!(c.run.report_heartbeat_mins, f.run.report_heartbeat_mins);
            set!(
                c.run.report_min_interval_secs,
                f.run.report_min_interval_secs
            );
            set!(
                c.run.report_initial_delay_secs,
                f.run.report_initial_delay_secs
            );
            if f.run.report_initial_delay_ok_secs.is_some() {
                ok_delay = f.run.report_initial_delay_ok_secs;
            }
            set!(c.run.report_backoff_max_secs, f.run.report_backoff_max_secs);
            set!(c.run.metrics_listen, f.run.metrics_listen);
            set!(c.run.health_bus_down_secs, f.run.health_bus_down_secs);
            set!(c.report.api_timeout_secs, f.report.api_timeout_secs);
            set!(c.report.heartbeat_mins, f.report.heartbeat_mins);
            set!(
                c.report.findings_annotation_max_bytes,
                f.report.findings_annotation_max_bytes
            );
            for (id, sev) in &f.severity {
                let err = |message: String| {
                    let (line, column) = line_col(text, sev.span().start);
                    ConfigError {
                        path: path.display().to_string(),
                        line,
                        column,
                        message,
                    }
                };
                if !FINDING_IDS.contains(&id.as_str()) {
                    return Err(err(format!(
                        "unknown finding id `{id}` in [severity], expected one of: {}",
                        FINDING_IDS.join(", ")
                    )));
                }
                let s: Severity = sev
                    .get_ref()
                    .parse()
                    .map_err(|_| err(format!("invalid severity `{}` for `{id}`, expected info, warning, critical or unknown", sev.get_ref())))?;
                c.severity.insert(id.clone(), s);
            }
            if !c.run.metrics_listen.is_empty()
                && c.run
                    .metrics_listen
                    .parse::<std::net::SocketAddr>()
                    .is_err()
            {
                return Err(ConfigError {
                    path: path.display().to_string(),
                    line: 0,
                    column: 0,
                    message: format!(
                        "run.metrics_listen `{}` is not ADDR:PORT (e.g. 127.0.0.1:9479)",
                        c.run.metrics_listen
                    ),
                });
            }
            if c.run.resync_secs == 0 || c.run.report_heartbeat_mins == 0 {
                return Err(ConfigError {
                    path: path.display().to_string(),
                    line: 0,
                    column: 0,
                    message: "run.resync_secs and run.report_heartbeat_mins must be at least 1"
                        .into(),
                });
            }
            if c.fix.fstab_backups == 0 {
                return Err(ConfigError {
                    path: path.display().to_string(),
                    line: 0,
                    column: 0,
                    message: "fix.fstab_backups must be at least 1 (the newest backup is the undo of the last edit)".into(),
                });
            }
            if c.required_units.is_empty() {
                return Err(ConfigError {
                    path: path.display().to_string(),
                    line: 0,
                    column: 0,
                    message: "required_units must name at least one unit".into(),
                });
            }
        }
        c.run.report_initial_delay_ok_secs =
            ok_delay.unwrap_or(c.run.report_initial_delay_secs.saturating_mul(6));
        // Checked on the merged config: fragments may set one each.
        let (hb, every) = (c.report.heartbeat_mins, c.run.report_heartbeat_mins);
        let last = frags
            .last()
            .map(|(p, _, _)| p.display().to_string())
            .unwrap_or_default();
        if hb.saturating_add(every) > MAX_HEARTBEAT_AGE_MINS || every > MAX_REPORT_EVERY_MINS {
            return Err(ConfigError {
                path: last,
                line: 0,
                column: 0,
                message: format!(
                    "report.heartbeat_mins ({hb}) + run.report_heartbeat_mins ({every}) must be at most {}, and run.report_heartbeat_mins at most {MAX_REPORT_EVERY_MINS}: a KubeletHostProblem heartbeat older than {} minutes means taint-guard stopped reporting, and the TaintGuardReportStale alert fires after an hour without a report",
                    MAX_HEARTBEAT_AGE_MINS,
                    STALE_AFTER_MINS
                ),
            });
        }
        Ok(c)
    }
}

/// A KubeletHostProblem heartbeat older than this (minutes) means its
/// reporter stopped (`report::node::STALE_AFTER`).
pub const STALE_AFTER_MINS: u64 = 120;

/// `report.heartbeat_mins + run.report_heartbeat_mins` may not exceed this
/// (a heartbeat then stays well inside [`STALE_AFTER_MINS`]).
pub const MAX_HEARTBEAT_AGE_MINS: u64 = 100;

/// The daemon reads the Node at least this often (minutes): the
/// PrometheusRule's TaintGuardReportStale waits an hour for a report.
pub const MAX_REPORT_EVERY_MINS: u64 = 50;

/// Main files then drop-ins, as zincati does: for `config.toml` and each
/// `config.d/NAME.toml`, the highest-precedence directory's copy wins;
/// drop-ins are applied in file-name order after the main files.
pub fn discover(dirs: &[PathBuf]) -> Vec<PathBuf> {
    let mut main = Vec::new();
    for d in dirs {
        let p = d.join("config.toml");
        if p.is_file() {
            main.push(p);
        }
    }
    let mut dropins: BTreeMap<String, PathBuf> = BTreeMap::new();
    for d in dirs {
        let Ok(rd) = std::fs::read_dir(d.join("config.d")) else {
            continue;
        };
        for e in rd.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if name.ends_with(".toml") && e.path().is_file() {
                dropins.insert(name, e.path());
            }
        }
    }
    main.extend(dropins.into_values());
    main
}

pub use crate::diag::line_col;

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(texts: &[(&str, &str)]) -> Result<Config, ConfigError> {
        Config::from_texts(
            &texts
                .iter()
                .map(|(p, t)| (PathBuf::from(p), t.to_string()))
                .collect::<Vec<_>>(),
        )
    }

    #[test]
    fn defaults() {
        let c = Config::default();
        assert_eq!(c.required_units, vec!["kubelet.service"]);
        assert!(c.fix.swapoff && c.fix.fstab && c.fix.enable && c.fix.start && c.fix.swap_units);
        assert!(!c.fix.unmask && !c.fix.mask_swap_units);
        assert_eq!(c.kubelet_alternatives.len(), 5);
    }

    #[test]
    fn example_file_parses_and_equals_defaults() {
        let text = include_str!("../config/config.toml");
        let c = parse(&[("config/config.toml", text)]).unwrap();
        let d = Config::default();
        assert_eq!(
            (c.required_units, c.fix, c.report, c.severity, c.run),
            (d.required_units, d.fix, d.report, d.severity, d.run)
        );
    }

    #[test]
    fn later_fragments_override() {
        let c = parse(&[
            ("/usr/lib/taint-guard/config.toml", "required_units = [\"kubelet.service\", \"containerd.service\"]\n[fix]\nstart = false\n"),
            ("/etc/taint-guard/config.d/10-x.toml", "[fix]\nstart = true\nfstab = false\n[severity]\nswap-active = \"warning\"\n"),
        ])
        .unwrap();
        assert_eq!(
            c.required_units,
            vec!["kubelet.service", "containerd.service"]
        );
        assert!(c.fix.start);
        assert!(!c.fix.fstab);
        assert_eq!(c.severity["swap-active"], Severity::Warning);
    }

    #[test]
    fn unknown_key_names_file_line_column() {
        let e = parse(&[(
            "/etc/taint-guard/config.toml",
            "required_units = []\n[fix]\n  swapof = true\n",
        )])
        .unwrap_err();
        assert_eq!(
            (e.path.as_str(), e.line, e.column),
            ("/etc/taint-guard/config.toml", 3, 3),
            "{e}"
        );
        assert!(e.message.contains("unknown field `swapof`"), "{e}");
        assert!(e
            .to_string()
            .starts_with("/etc/taint-guard/config.toml:3:3: "));
    }

    #[test]
    fn wrong_type_and_syntax_errors_are_located() {
        let e = parse(&[("c.toml", "[fix]\nsettle_secs = \"three\"\n")]).unwrap_err();
        assert_eq!((e.line, e.column), (2, 15), "{e}");
        let e = parse(&[("c.toml", "[fix\n")]).unwrap_err();
        assert_eq!(e.line, 1, "{e}");
    }

    #[test]
    fn heartbeats_that_readers_would_call_stale_are_refused() {
        let c = parse(&[("c.toml", "[report]\nheartbeat_mins = 80\n")]).unwrap();
        assert_eq!(c.report.heartbeat_mins + c.run.report_heartbeat_mins, 100);
        let e = parse(&[("c.toml", "[report]\nheartbeat_mins = 90\n")]).unwrap_err();
        assert!(
            e.message.contains("must be at most 100") && e.message.contains("120 minutes"),
            "{e}"
        );
        // On the merged config: one fragment may raise one and another
        // lower the other.
        let c = parse(&[
            ("a.toml", "[report]\nheartbeat_mins = 90\n"),
            ("b.toml", "[run]\nreport_heartbeat_mins = 10\n"),
        ])
        .unwrap();
        assert_eq!(c.report.heartbeat_mins + c.run.report_heartbeat_mins, 100);
        let e = parse(&[(
            "c.toml",
            "[run]\nreport_heartbeat_mins = 55\n[report]\nheartbeat_mins = 5\n",
        )])
        .unwrap_err();
        assert!(e.message.contains("at most 50"), "{e}");
    }

    #[test]
    fn bad_severity_values_and_ids() {
        let e = parse(&[("c.toml", "[severity]\nswap-active = \"loud\"\n")]).unwrap_err();
        assert_eq!((e.line, e.column), (2, 15), "{e}");
        assert!(e.message.contains("invalid severity `loud`"));
        let e = parse(&[("c.toml", "\n[severity]\nno-such-id = \"info\"\n")]).unwrap_err();
        assert_eq!(e.line, 3);
        assert!(e.message.contains("unknown finding id `no-such-id`"));
    }

    #[test]
    fn empty_required_units_rejected() {
        let e = parse(&[("c.toml", "required_units = []\n")]).unwrap_err();
        assert!(e.message.contains("at least one unit"));
    }

    #[test]
    fn discover_orders_and_masks_dropins() {
        let t = tempfile::tempdir().unwrap();
        let dirs: Vec<PathBuf> = ["usr", "run", "etc"]
            .iter()
            .map(|d| t.path().join(d))
            .collect();
        for d in &dirs {
            std::fs::create_dir_all(d.join("config.d")).unwrap();
        }
        std::fs::write(dirs[0].join("config.toml"), "").unwrap();
        std::fs::write(dirs[2].join("config.toml"), "").unwrap();
        std::fs::write(dirs[0].join("config.d/20-b.toml"), "").unwrap();
        std::fs::write(dirs[2].join("config.d/20-b.toml"), "").unwrap();
        std::fs::write(dirs[1].join("config.d/10-a.toml"), "").unwrap();
        std::fs::write(dirs[1].join("config.d/ignored.conf"), "").unwrap();
        let got = discover(&dirs);
        let rel: Vec<String> = got
            .iter()
            .map(|p| p.strip_prefix(t.path()).unwrap().display().to_string())
            .collect();
        assert_eq!(
            rel,
            vec![
                "usr/config.toml",
                "etc/config.toml",
                "run/config.d/10-a.toml",
                "etc/config.d/20-b.toml"
            ]
        );
    }

    #[test]
    fn line_col_math() {
        assert_eq!(line_col("abc\ndef", 0), (1, 1));
        assert_eq!(line_col("abc\ndef", 5), (2, 2));
    }
}
