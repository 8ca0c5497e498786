use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Subcommand, ValueEnum};

use super::{exit, Context};
use crate::explain::fetch::{self, Target};
use crate::explain::node::{ago, clean, NodeExplanation};
use crate::explain::{self, FleetRow, PodExplanation};

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    Human,
    Json,
}

/// Read-only, against the cluster: why a Node is tainted, why a pod is not
/// scheduled, which nodes are safe to reboot. Also a kubectl plugin:
/// `kubectl taint-guard explain …` (kubectl-taint_guard on PATH). Exit 0
/// when explained, 1 when it could not be (one line on stderr), 64 usage.
#[derive(Debug, Args)]
pub struct ExplainCmd {
    #[command(subcommand)]
    pub what: What,

    #[arg(long, short = 'o', global = true, value_enum, default_value_t = Format::Human)]
    pub output: Format,

    /// Kubeconfig (default: $KUBECONFIG, ~/.kube/config, in-cluster).
    #[arg(long, global = true, value_name = "PATH")]
    pub kubeconfig: Option<PathBuf>,

    /// The kubeconfig context to use (default: its current-context).
    #[arg(long, global = true, value_name = "NAME")]
    pub context: Option<String>,

    /// Bound on each API request: seconds, or as kubectl writes it (`5s`,
    /// `1m`).
    #[arg(long, global = true, default_value = "10s", value_name = "DURATION", value_parser = parse_timeout)]
    pub request_timeout: Duration,
}

#[derive(Debug, Subcommand)]
pub enum What {
    /// Each taint, who set it and on what condition; the conditions; the
    /// node's lease; taint-guard's findings; one next step.
    Node { name: String },
    /// For a pod the scheduler cannot place: every node as its filters see
    /// it, the tally in its words, next to its FailedScheduling event.
    Pod {
        /// `NAME` or `NAMESPACE/NAME`.
        pod: String,
        /// The pod's namespace (default: the context's, else `default`).
        #[arg(long, short = 'n')]
        namespace: Option<String>,
    },
    /// Every Node, worst first: safe to reboot or not, by taint-guard's
    /// reports (one LIST of Nodes and one of Leases).
    Nodes,
}

/// `10`, `10s`, `1m`, `1m30s`, `500ms`.
fn parse_timeout(s: &str) -> Result<Duration, String> {
    if let Ok(n) = s.parse::<u64>() {
        return Ok(Duration::from_secs(n));
    }
    let d: jiff::SignedDuration = s
        .parse()
        .map_err(|e| format!("{s:?}: not a duration (10, 10s, 1m): {e}"))?;
    Duration::try_from(d)
        .ok()
        .filter(|d| !d.is_zero())
        .ok_or_else(|| format!("{s:?}: must be positive"))
}

impl ExplainCmd {
    pub fn run(self, _ctx: &Context) -> u8 {
        let rt = match tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        {
            Ok(rt) => rt,
            Err(e) => {
                eprintln!("taint-guard explain: {e}");
                return exit::EXPLAIN_FAILED;
            }
        };
        match rt.block_on(self.explain()) {
            Ok(text) => {
                use std::io::Write;
                // A closed pipe (`| head`) is not an error worth a panic.
                let _ = std::io::stdout().lock().write_all(text.as_bytes());
                exit::OK
            }
            Err(e) => {
                eprintln!("taint-guard explain: {e}");
                exit::EXPLAIN_FAILED
            }
        }
    }

    async fn explain(&self) -> Result<String, fetch::Error> {
        let t = Target {
            kubeconfig: self.kubeconfig.clone(),
            context: self.context.clone(),
            timeout: self.request_timeout,
        };
        let client = fetch::client(&t).await?;
        let now = jiff::Timestamp::now();
        Ok(match &self.what {
            What::Node { name } => {
                let (n, l) = fetch::node(&client, name, t.timeout).await?;
                let l = l.map_err(|e| e.to_string());
                let e = explain::node::explain_with(
                    &n,
                    l.as_ref().map(Option::as_ref).map_err(Clone::clone),
                    now,
                );
                match self.output {
                    Format::Json => json(&e),
                    Format::Human => clean(&human_node(&e)),
                }
            }
            What::Pod { pod, namespace } => {
                let (ns, name) = match pod.split_once('/') {
                    Some((ns, name)) => (ns.to_string(), name.to_string()),
                    None => (
                        namespace
                            .clone()
                            .unwrap_or_else(|| client.default_namespace().to_string()),
                        pod.clone(),
                    ),
                };
                let f = fetch::pod(&client, &ns, &name, t.timeout).await?;
                let e = explain::explain_pod(&f.pod, &f.nodes, &f.events, f.version, prog(), now);
                if let Some(err) = &f.events_error {
                    eprintln!("taint-guard explain: {err} (explained without them)");
                }
                match self.output {
                    Format::Json => json(&e),
                    Format::Human => clean(&human_pod(&e)),
                }
            }
            What::Nodes => {
                let (nodes, leases) = fetch::fleet(&client, t.timeout).await?;
                let rows = explain::fleet(&nodes, &leases, now);
                match self.output {
                    Format::Json => json(&rows),
                    Format::Human => clean(&human_fleet(&rows)),
                }
            }
        })
    }
}

/// How the person ran us: as the kubectl plugin (`kubectl-taint_guard`,
/// run by `kubectl taint-guard`) or directly.
fn prog() -> &'static str {
    let argv0 = std::env::args_os().next().unwrap_or_default();
    let name = std::path::Path::new(&argv0)
        .file_name()
        .unwrap_or_default()
        .to_string_lossy()
        .into_owned();
    if name.starts_with("kubectl-") {
        "kubectl taint-guard"
    } else {
        "taint-guard"
    }
}

/// Pretty JSON with a final newline.
fn json<T: serde::Serialize>(v: &T) -> String {
    serde_json::to_string_pretty(v).unwrap_or_default() + "\n"
}

pub fn human_node(e: &NodeExplanation) -> String {
    let mut s = String::new();
    let since = |t: Option<jiff::Timestamp>| {
        t.map(|t| format!(" since {t} ({} ago)", ago(e.now.duration_since(t))))
            .unwrap_or_default()
    };
    let ready = e.condition("Ready");
    let _ = writeln!(
        s,
        "Node {}: Ready={}{}{}",
        e.name,
        e.ready(),
        since(ready.and_then(|c| c.since)),
        if e.unschedulable { ", cordoned" } else { "" }
    );
    if !e.chain.is_empty() {
        let _ = writeln!(s, "\nWhy: {}", e.chain);
    }
    let _ = writeln!(
        s,
        "\nTaints:{}",
        if e.taints.is_empty() { " none" } else { "" }
    );
    for t in &e.taints {
        let value = if t.value.is_empty() {
            String::new()
        } else {
            format!("={}", t.value)
        };
        let _ = writeln!(
            s,
            "  {}{}:{}{}",
            t.key,
            value,
            t.effect,
            since(t.time_added)
        );
        match t.well_known {
            Some(w) => {
                let _ = writeln!(s, "      set by {} on {}", w.set_by, w.when);
                let _ = writeln!(s, "      removed {}", w.removed);
                if t.held {
                    let (ct, cs) = w.held_by.unwrap_or_default();
                    let _ = writeln!(
                        s,
                        "      removing it by hand will not stick: the node lifecycle controller re-adds it while {ct} is {cs}"
                    );
                }
            }
            None => {
                let _ = writeln!(s, "      set by a person or another controller");
            }
        }
    }
    let _ = writeln!(s, "\nConditions:");
    for c in &e.conditions {
        let age = c
            .since
            .map(|t| ago(e.now.duration_since(t)))
            .unwrap_or_else(|| "-".into());
        let _ = writeln!(
            s,
            "  {:<20} {:<8} {:>7}  {} {}",
            c.type_, c.status, age, c.reason, c.message
        );
    }
    match &e.lease {
        Some(l) => {
            let renewed = l
                .renewed
                .map(|r| format!("renewed {} ago", ago(e.now.duration_since(r))))
                .unwrap_or_else(|| "never renewed".into());
            let _ = writeln!(
                s,
                "\nLease kube-node-lease/{}: {renewed} (duration {}s): {}",
                e.name,
                l.duration_secs,
                if l.expired {
                    "expired — kubelet is not renewing it"
                } else {
                    "kubelet is running"
                }
            );
        }
        None => {
            let _ = writeln!(s, "\nLease kube-node-lease/{}: none", e.name);
        }
    }
    match &e.taint_guard {
        None => {
            let _ = writeln!(s, "\ntaint-guard: no taint-guard report on this node");
        }
        Some(r) => {
            let written = r
                .written
                .map(|w| format!(", written {} ago", ago(e.now.duration_since(w))))
                .unwrap_or_default();
            let _ = writeln!(
                s,
                "\ntaint-guard ({}{written}): status {}, reboot-safe {}",
                r.reporter.as_deref().unwrap_or("reporter unknown"),
                r.status,
                r.reboot_safe
            );
            if r.stale {
                let _ = writeln!(
                    s,
                    "  the report is stale (over two hours without a heartbeat): taint-guard itself may be down"
                );
            }
            if let Some(u) = &r.unreadable {
                let _ = writeln!(s, "  unreadable: {u}");
            }
            for f in &r.findings {
                let _ = writeln!(s, "  {} {} {}: {}", f.severity, f.id, f.subject, f.message);
                if let Some(rem) = &f.remedy {
                    let _ = writeln!(s, "      remedy: {rem}");
                }
            }
        }
    }
    let _ = writeln!(s, "\nNext step: {}", e.next_step);
    s
}

pub fn human_pod(e: &PodExplanation) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "Pod {}/{}: {}{}",
        e.namespace,
        e.name,
        if e.phase.is_empty() { "?" } else { &e.phase },
        match &e.bound_to {
            Some(n) => format!(", bound to {n}"),
            None => ", not scheduled".into(),
        }
    );
    if e.bound_to.is_none() {
        match (&e.tally, &e.no_tally) {
            (Some(t), _) => {
                let _ = writeln!(
                    s,
                    "\nBy the filters evaluated here, kube-scheduler {}.{} says: {t}",
                    e.version.major, e.version.minor
                );
            }
            (None, Some(why)) => {
                let _ = writeln!(s, "\nNo tally: {why}");
            }
            (None, None) => {}
        }
        if let Some(ev) = &e.event {
            let when = ev
                .last_seen
                .map(|t| format!(", last {} ago", ago(e.now.duration_since(t))))
                .unwrap_or_default();
            let same = match e.matches_event {
                Some(true) => " (the same words)",
                Some(false) => {
                    " (differs from this reconstruction: the scheduler's word is the event's)"
                }
                None => "",
            };
            let _ = writeln!(
                s,
                "Its FailedScheduling event ({}×{when}){same}: {}",
                ev.count, ev.message
            );
        }
        let _ = writeln!(s, "\nPer node:");
        for v in &e.nodes {
            match &v.words {
                Some(w) => {
                    let _ = writeln!(s, "  {}: {w}\n      {}", v.node, v.advice);
                }
                None => {
                    let _ = writeln!(s, "  {}: passes the filters evaluated here", v.node);
                }
            }
        }
    }
    let _ = writeln!(s, "\nNext step: {}", e.next_step);
    s
}

pub fn human_fleet(rows: &[FleetRow]) -> String {
    let mut s = String::new();
    let w = rows.iter().map(|r| r.name.len()).max().unwrap_or(4).max(4);
    let _ = writeln!(
        s,
        "{:<w$}  {:<7}  {:<11}  {:<9}  {:>6}  TAINTS",
        "NODE", "READY", "REBOOT-SAFE", "STATUS", "REPORT"
    );
    for r in rows {
        let _ = writeln!(
            s,
            "{:<w$}  {:<7}  {:<11}  {:<9}  {:>6}  {}",
            r.name,
            r.ready,
            r.reboot_safe,
            r.status,
            explain::report_age(r),
            if r.taints.is_empty() {
                "-".into()
            } else {
                r.taints.join(",")
            }
        );
        for f in &r.findings {
            let _ = writeln!(s, "{:<w$}    {f}", "");
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::parse_timeout;
    use std::time::Duration;

    #[test]
    fn request_timeout_as_kubectl_writes_it() {
        assert_eq!(parse_timeout("10"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_timeout("5s"), Ok(Duration::from_secs(5)));
        assert_eq!(parse_timeout("1m30s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_timeout("500ms"), Ok(Duration::from_millis(500)));
        assert!(parse_timeout("0s").is_err());
        assert!(parse_timeout("-5s").is_err());
        assert!(parse_timeout("soon").is_err());
    }
}
