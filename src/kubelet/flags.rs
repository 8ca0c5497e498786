//! kubelet's command line as kubelet parses it: spf13/pflag with
//! `cliflag.WordSepNormalizeFunc` (every `_` in a flag name becomes `-`),
//! `--name=value`, `--name value` (the next word is taken whatever it looks
//! like), a bool flag alone meaning true (its value only with `=`), Go's
//! `strconv.ParseBool` for bool values, the last occurrence winning, and
//! `--` ending the flags. kubelet refuses to start on any non-flag argument
//! ("unknown command"), a bad bool, or a value-taking flag without a value;
//! those are reported as errors, because kubelet would not start at all.

/// What a kubelet command line says about swap and our other concerns.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct KubeletFlags {
    pub config: Option<String>,
    pub config_dir: Option<String>,
    /// The value and the argument that set it (as written).
    pub fail_swap_on: Option<(bool, String)>,
    pub hostname_override: Option<String>,
    /// `--kubeconfig`: the credentials kubelet talks to the API server with.
    pub kubeconfig: Option<String>,
    /// `--rotate-certificates` and the argument that set it.
    pub rotate_certificates: Option<(bool, String)>,
    /// `--container-runtime-endpoint`.
    pub container_runtime_endpoint: Option<String>,
    /// `--cgroup-driver`.
    pub cgroup_driver: Option<String>,
    /// `--cert-dir` and `--bootstrap-kubeconfig`.
    pub cert_dir: Option<String>,
    pub bootstrap_kubeconfig: Option<String>,
    /// `--resolv-conf`.
    pub resolv_conf: Option<String>,
    /// Every flag given (normalised names, without `--`).
    pub names: std::collections::BTreeSet<String>,
}

/// kubelet bool flags (kubelet ≥ 1.2x: KubeletFlags, KubeletConfiguration
/// flags and the global klog/version/help flags). A bool flag never takes
/// the next word as its value.
const BOOL_FLAGS: &[&str] = &[
    "fail-swap-on",
    "help",
    "version",
    "logtostderr",
    "alsologtostderr",
    "add-dir-header",
    "skip-headers",
    "skip-log-headers",
    "one-output",
    "log-json-split-stream",
    "anonymous-auth",
    "authentication-token-webhook",
    "cgroups-per-qos",
    "cpu-cfs-quota",
    "enable-controller-attach-detach",
    "enable-debugging-handlers",
    "enable-server",
    "enable-load-reader",
    "exit-on-lock-contention",
    "experimental-allocatable-ignore-eviction",
    "experimental-check-node-capabilities-before-mount",
    "fail-cgroupv1",
    "kernel-memcg-notification",
    "keep-terminated-pod-volumes",
    "local-storage-capacity-isolation",
    "make-iptables-util-chains",
    "protect-kernel-defaults",
    "register-node",
    "register-schedulable",
    "rotate-certificates",
    "rotate-server-certificates",
    "runonce",
    "seccomp-default",
    "serialize-image-pulls",
    "enable-cadvisor-json-endpoints",
    "containerized",
    "reregister-node",
];

/// Flags we read, all of which take a value.
const VALUE_FLAGS: &[&str] = &[
    "config",
    "config-dir",
    "hostname-override",
    "kubeconfig",
    "container-runtime-endpoint",
    "cgroup-driver",
    "cert-dir",
    "bootstrap-kubeconfig",
    "resolv-conf",
];

/// The flags whose position matters to us.
/// (`--kubeconfig` only names the credentials the certificate check reads:
/// misreading it cannot change what is done about swap.)
fn relevant(name: &str) -> bool {
    matches!(
        name,
        "fail-swap-on" | "config" | "config-dir" | "hostname-override"
    )
}

/// WordSepNormalizeFunc.
pub fn normalize(name: &str) -> String {
    name.replace('_', "-")
}

/// strconv.ParseBool.
pub fn parse_go_bool(v: &str) -> Option<bool> {
    match v {
        "1" | "t" | "T" | "true" | "TRUE" | "True" => Some(true),
        "0" | "f" | "F" | "false" | "FALSE" | "False" => Some(false),
        _ => None,
    }
}

/// The long-flag name a word would set, if it is one.
fn flag_name(word: &str) -> Option<String> {
    let body = word.strip_prefix("--")?;
    let name = body.split_once('=').map(|(n, _)| n).unwrap_or(body);
    Some(normalize(name))
}

/// Parse kubelet's arguments (without argv[0]).
pub fn parse(args: &[String]) -> Result<KubeletFlags, String> {
    let mut f = KubeletFlags::default();
    let mut i = 0;
    while i < args.len() {
        let word = &args[i];
        i += 1;
        if word == "--" {
            if let Some(extra) = args.get(i) {
                return Err(format!(
                    "kubelet refuses to start: non-flag argument {extra:?} after \"--\" (unknown command)"
                ));
            }
            break;
        }
        if !word.starts_with('-') || word.len() == 1 {
            return Err(format!(
                "kubelet refuses to start: non-flag argument {word:?} (unknown command)"
            ));
        }
        let Some(body) = word.strip_prefix("--") else {
            // Shorthands: kubelet defines -v (a value) and -h (help).
            let rest = &word[1..];
            if let Some(v) = rest.strip_prefix('v') {
                if v.is_empty() {
                    if args.get(i).is_none() {
                        return Err("kubelet refuses to start: flag needs an argument: -v".into());
                    }
                    i += 1;
                }
                continue;
            }
            return Err(format!(
                "kubelet does not run with shorthand flag {word:?} (only -v is accepted; -h prints help)"
            ));
        };
        if body.is_empty() || body.starts_with('-') || body.starts_with('=') {
            return Err(format!("kubelet refuses to start: bad flag syntax: {word}"));
        }
        let (raw, inline) = match body.split_once('=') {
            Some((n, v)) => (n, Some(v.to_string())),
            None => (body, None),
        };
        let name = normalize(raw);
        f.names.insert(name.clone());
        let is_bool = BOOL_FLAGS.contains(&name.as_str());
        let value = match inline {
            Some(v) => Some(v),
            None if is_bool => None,
            None if VALUE_FLAGS.contains(&name.as_str()) => match args.get(i) {
                Some(v) => {
                    i += 1;
                    Some(v.clone())
                }
                None => {
                    return Err(format!(
                        "kubelet refuses to start: flag needs an argument: --{name}"
                    ))
                }
            },
            None => {
                // A flag we do not know the type of. A following non-flag
                // word is its value (were the flag a bool, kubelet would
                // refuse the stray word and not start at all). A following
                // flag is ambiguous: taken as a value if the flag wants one.
                match args.get(i) {
                    Some(next) if !next.starts_with('-') => {
                        i += 1;
                    }
                    Some(next) => {
                        let later_relevant = args[i..]
                            .iter()
                            .filter_map(|a| flag_name(a))
                            .any(|n| relevant(&n));
                        if later_relevant {
                            return Err(format!(
                                "cannot tell whether kubelet flag --{name} takes {next:?} as its value (not a flag taint-guard knows the type of)"
                            ));
                        }
                    }
                    None => {}
                }
                None
            }
        };
        match name.as_str() {
            "fail-swap-on" => {
                let v = match value.as_deref() {
                    None => true,
                    Some(v) => parse_go_bool(v).ok_or_else(|| {
                        format!(
                            "kubelet refuses to start: invalid boolean {v:?} for --fail-swap-on"
                        )
                    })?,
                };
                f.fail_swap_on = Some((v, word.clone()));
            }
            "rotate-certificates" => {
                let v = match value.as_deref() {
                    None => true,
                    Some(v) => parse_go_bool(v).ok_or_else(|| {
                        format!(
                            "kubelet refuses to start: invalid boolean {v:?} for --rotate-certificates"
                        )
                    })?,
                };
                f.rotate_certificates = Some((v, word.clone()));
            }
            "kubeconfig" => f.kubeconfig = value,
            "container-runtime-endpoint" => f.container_runtime_endpoint = value,
            "cgroup-driver" => f.cgroup_driver = value,
            "resolv-conf" => f.resolv_conf = value,
            "cert-dir" => f.cert_dir = value,
            "bootstrap-kubeconfig" => f.bootstrap_kubeconfig = value,
            "config" => f.config = value,
            "config-dir" => f.config_dir = value,
            "hostname-override" => f.hostname_override = value,
            _ => {}
        }
    }
    Ok(f)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(args: &[&str]) -> Result<KubeletFlags, String> {
        parse(&args.iter().map(|s| s.to_string()).collect::<Vec<_>>())
    }

    #[test]
    fn forms_normalisation_last_wins() {
        let f = p(&[
            "--fail_swap_on=false",
            "--config",
            "/c.yaml",
            "--config-dir=/d",
            "--fail-swap-on",
            "--hostname_override",
            "h",
            "--fail-swap-on=F",
        ])
        .unwrap();
        assert_eq!(f.fail_swap_on, Some((false, "--fail-swap-on=F".into())));
        assert_eq!(f.config.as_deref(), Some("/c.yaml"));
        assert_eq!(f.config_dir.as_deref(), Some("/d"));
        assert_eq!(f.hostname_override.as_deref(), Some("h"));
        let f = p(&[
            "--kubeconfig=/etc/kubernetes/kubelet.conf",
            "--rotate-certificates",
        ])
        .unwrap();
        assert_eq!(
            f.kubeconfig.as_deref(),
            Some("/etc/kubernetes/kubelet.conf")
        );
        assert_eq!(
            f.rotate_certificates,
            Some((true, "--rotate-certificates".into()))
        );
        // Bare bool is true.
        assert!(p(&["--fail-swap-on"]).unwrap().fail_swap_on.unwrap().0);
        // --config takes the next word whatever it looks like.
        assert_eq!(
            p(&["--config", "--fail-swap-on=false"])
                .unwrap()
                .config
                .as_deref(),
            Some("--fail-swap-on=false")
        );
        // Known value flags with unknown value flags: `--node-ip 1.2.3.4` is fine.
        let f = p(&[
            "--node-ip",
            "10.0.0.1",
            "-v",
            "2",
            "-v=3",
            "--fail-swap-on=0",
        ])
        .unwrap();
        assert!(!f.fail_swap_on.unwrap().0);
    }

    #[test]
    fn what_kubelet_refuses() {
        assert!(p(&["--fail-swap-on", "false"])
            .unwrap_err()
            .contains("unknown command"));
        assert!(p(&["--fail-swap-on=yes"])
            .unwrap_err()
            .contains("invalid boolean"));
        assert!(p(&["--fail-swap-on="])
            .unwrap_err()
            .contains("invalid boolean"));
        assert!(p(&["--config"]).unwrap_err().contains("needs an argument"));
        assert!(p(&["--", "x"]).unwrap_err().contains("unknown command"));
        assert!(p(&["--fail-swap-on=false", "--"]).is_ok());
        assert!(p(&["---x"]).unwrap_err().contains("bad flag syntax"));
        // An unknown flag followed by a flag we care about is ambiguous.
        assert!(p(&["--brand-new", "--fail-swap-on=false"])
            .unwrap_err()
            .contains("cannot tell"));
        assert!(p(&["--brand-new", "--other", "x"]).is_ok());
    }
}
