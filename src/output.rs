//! Rendering for people (one screen) and machines (`--output json`).

use std::fmt::Write as _;

use serde::Serialize;

use crate::evaluate::{Assessment, Severity};
use crate::observation::{Observation, Probe};

/// Everything `check` prints in JSON.
#[derive(Debug, Serialize)]
pub struct CheckOutput<'a> {
    pub status: &'static str,
    /// `null` when reboot safety cannot be known.
    pub reboot_safe: Option<bool>,
    /// What will differ after the next boot without keeping the Node from
    /// going Ready (`ID:SUBJECT` of those findings).
    pub after_reboot: &'a [String],
    pub findings: &'a [crate::evaluate::Finding],
    #[serde(skip_serializing_if = "Option::is_none")]
    pub actions: Option<&'a [crate::plan::ActionOutcome]>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fstab_diff: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub report: Option<&'a serde_json::Value>,
    pub observations: &'a Observation,
}

pub fn json(out: &CheckOutput) -> String {
    serde_json::to_string_pretty(out).expect("serialisable")
}

fn label(s: Severity) -> &'static str {
    match s {
        Severity::Info => "INFO",
        Severity::Warning => "WARNING",
        Severity::Unknown => "UNKNOWN",
        Severity::Critical => "CRITICAL",
    }
}

/// The human report: units, findings with remedies, actions, verdict.
pub fn human(out: &CheckOutput) -> String {
    let mut s = String::new();
    for u in &out.observations.units {
        match &u.state {
            Probe::Ok(st) => {
                let alt = if u.name != u.required {
                    format!(" (in place of {}, not installed)", u.required)
                } else {
                    String::new()
                };
                let _ = writeln!(
                    s,
                    "unit {}{alt}: {} {}/{} {}",
                    u.name,
                    st.load_state,
                    st.active_state,
                    st.sub_state,
                    if st.unit_file_state.as_str().is_empty() {
                        "-"
                    } else {
                        st.unit_file_state.as_str()
                    }
                );
                // Who starts it at boot, where that is not its own
                // [Install] links.
                if let Some(b @ crate::systemd::bootgraph::AtBoot::StartedBy { .. }) = &st.at_boot {
                    let _ = writeln!(s, "  at boot: {}", b.describe());
                }
            }
            // The bus error is one finding; not repeated per unit.
            Probe::Failed(_) if out.observations.bus_error.is_some() => {}
            Probe::Failed(e) => {
                let _ = writeln!(s, "unit {}: unknown ({e})", u.name);
            }
        }
    }
    match &out.observations.kubelet_policy {
        Some(crate::kubelet::KubeletPolicy::Known(p)) => {
            let _ = writeln!(
                s,
                "kubelet swap policy: failSwapOn={} ({})",
                p.fail_swap_on, p.fail_swap_on_from
            );
        }
        Some(crate::kubelet::KubeletPolicy::Unknown(u)) => {
            let _ = writeln!(s, "kubelet swap policy: unknown ({})", u.reason);
        }
        None => {}
    }
    if let Some(p) = out.observations.pause.as_ref().and_then(|p| p.active()) {
        let _ = writeln!(s, "paused: {}", p.describe());
    }
    if !out.findings.is_empty() {
        s.push('\n');
    }
    for f in out.findings {
        let _ = writeln!(
            s,
            "{:<8} {:<20} {}",
            label(f.severity),
            f.subject(),
            f.message
        );
        if let Some(r) = &f.remedy {
            let _ = writeln!(s, "{:<8} {:<20} remedy: {r}", "", "");
        }
    }
    if let Some(diff) = out.fstab_diff {
        let _ = write!(s, "\n{diff}");
    }
    if let Some(actions) = out.actions {
        s.push('\n');
        if actions.is_empty() {
            s.push_str("fix: nothing to do\n");
        }
        for a in actions {
            let _ = writeln!(
                s,
                "fix {:<8} {:<16} {:<20} {}",
                a.outcome.as_str(),
                a.id,
                a.subject,
                a.detail
            );
        }
    }
    if let Some(r) = out.report {
        let _ = writeln!(
            s,
            "\nreport: {}",
            r.get("summary").and_then(|v| v.as_str()).unwrap_or("-")
        );
        let taints = r.get("taints").and_then(|v| v.as_array());
        for t in taints.into_iter().flatten().filter_map(|t| t.as_str()) {
            let _ = writeln!(s, "  {t}");
        }
    }
    let n = |sev| out.findings.iter().filter(|f| f.severity == sev).count();
    let counts: Vec<String> = [Severity::Critical, Severity::Unknown, Severity::Warning]
        .into_iter()
        .filter(|sev| n(*sev) > 0)
        .map(|sev| format!("{} {}", n(sev), sev))
        .collect();
    let _ = writeln!(
        s,
        "\n{}: {}; {}",
        out.status.to_uppercase(),
        if counts.is_empty() {
            "no problems found".to_string()
        } else {
            counts.join(", ")
        },
        match out.reboot_safe {
            Some(true) => "reboot-safe: kubelet will come back after a reboot",
            Some(false) => "NOT reboot-safe: kubelet will not come back by itself after a reboot",
            None =>
                "reboot safety unknown: not everything kubelet's return depends on could be read",
        }
    );
    if !out.after_reboot.is_empty() {
        let _ = writeln!(
            s,
            "after a reboot (the Node still goes Ready): lost {}",
            out.after_reboot.join(", ")
        );
    }
    s
}

/// The status string of an assessment.
pub fn status_str(a: &Assessment) -> &'static str {
    a.status.as_str()
}
