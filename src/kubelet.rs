//! Kubelet's effective swap policy, derived as kubelet itself would:
//! the unit's ExecStart argv, expanded with its Environment= and
//! EnvironmentFile= values the way systemd does, then `--config` (a
//! KubeletConfiguration YAML) with command-line flags taking precedence.
//!
//! Pure apart from the injected file reader, so it is fixture-tested.

use std::collections::BTreeMap;

use anyhow::{anyhow, Result};
use serde::{Deserialize, Serialize};

/// What systemd tells about the unit over D-Bus.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceSpec {
    /// argv of the (last) ExecStart= command, `$VARS` unexpanded.
    pub exec_start: Vec<String>,
    /// Environment= entries, `KEY=VALUE`.
    pub environment: Vec<String>,
    /// EnvironmentFile= entries: path on the node, and whether a missing
    /// file is ignored (`-` prefix).
    pub environment_files: Vec<(String, bool)>,
}

/// How kubelet will treat swap, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SwapPolicy {
    /// kubelet refuses to start while swap is on.
    pub fail_swap_on: bool,
    /// Where `fail_swap_on` came from (a flag, a config file key, a default).
    pub decided_by: String,
    pub config_file: Option<String>,
    /// `memorySwap.swapBehavior` from the config file, if set.
    pub swap_behavior: Option<String>,
    /// `--hostname-override`, used for the node name.
    pub hostname_override: Option<String>,
    /// The expanded argv.
    pub argv: Vec<String>,
}

impl SwapPolicy {
    /// kubelet's built-in behaviour, with nothing configured.
    pub fn builtin(fail_swap_on: bool) -> SwapPolicy {
        SwapPolicy {
            fail_swap_on,
            decided_by: "default".to_string(),
            config_file: None,
            swap_behavior: None,
            hostname_override: None,
            argv: Vec::new(),
        }
    }
}

/// Which kind of kubelet runs in the unit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flavour {
    /// Upstream kubelet (kubeadm, distro packages, microk8s' kubelite):
    /// refuses swap unless told otherwise.
    Kubelet,
    /// k3s and rke2 embed kubelet: their own flags are not kubelet's (only
    /// `--kubelet-arg` is), and they pass `fail-swap-on=false` by default.
    Embedded,
}

impl Flavour {
    pub fn of_unit(unit: &str) -> Flavour {
        if unit.starts_with("k3s") || unit.starts_with("rke2") {
            Flavour::Embedded
        } else {
            Flavour::Kubelet
        }
    }
}

/// Reads a file on the node by its node path. `Ok(None)` when it does not exist.
pub type ReadFile<'a> = &'a dyn Fn(&str) -> Result<Option<String>>;

/// Derive kubelet's swap policy. Like kubelet, a config file is read only
/// when `--config` names one (kubeadm's drop-in always does).
pub fn swap_policy(spec: &ServiceSpec, flavour: Flavour, read: ReadFile) -> Result<SwapPolicy> {
    let env = environment(spec, read)?;
    let argv = expand_argv(&spec.exec_start, &env);
    let flags = Flags::parse(&argv, flavour);

    let mut policy = SwapPolicy {
        hostname_override: flags.hostname_override.clone(),
        argv: argv.clone(),
        ..SwapPolicy::builtin(flavour == Flavour::Kubelet)
    };
    if flavour == Flavour::Embedded {
        policy.decided_by = "default of k3s/rke2's embedded kubelet".into();
    }
    if let Some(path) = flags.config {
        match read(&path)? {
            Some(text) => {
                let cfg = parse_config(&text, &path)?;
                policy.config_file = Some(path.clone());
                policy.swap_behavior = cfg.memory_swap.and_then(|m| m.swap_behavior);
                if let Some(v) = cfg.fail_swap_on {
                    policy.fail_swap_on = v;
                    policy.decided_by = format!("failSwapOn: {v} in {path}");
                }
            }
            None => {
                return Err(anyhow!(
                    "kubelet config {path} (from --config) does not exist"
                ));
            }
        }
    }
    if let Some(v) = flags.fail_swap_on {
        policy.fail_swap_on = v;
        policy.decided_by = format!("flag --fail-swap-on={v}");
    }
    Ok(policy)
}

/// The unit's environment after Environment= then each EnvironmentFile= in
/// order (later assignments win, as in systemd).
pub fn environment(spec: &ServiceSpec, read: ReadFile) -> Result<BTreeMap<String, String>> {
    let mut env = BTreeMap::new();
    for kv in &spec.environment {
        if let Some((k, v)) = kv.split_once('=') {
            env.insert(k.to_string(), v.to_string());
        }
    }
    for (path, ignore_missing) in &spec.environment_files {
        match read(path)? {
            Some(text) => env.extend(parse_env_file(&text)),
            None if *ignore_missing => {}
            None => return Err(anyhow!("EnvironmentFile {path} does not exist")),
        }
    }
    Ok(env)
}

/// Parse a systemd EnvironmentFile: `KEY=VALUE` lines, `#`/`;` comments,
/// single or double quotes, backslash line continuation.
pub fn parse_env_file(text: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut logical = String::new();
    let mut lines = text.lines().peekable();
    while let Some(line) = lines.next() {
        if let Some(stripped) = line.strip_suffix('\\') {
            if !is_comment(&logical, stripped) {
                logical.push_str(stripped);
                if lines.peek().is_some() {
                    continue;
                }
            }
        } else {
            logical.push_str(line);
        }
        let l = std::mem::take(&mut logical);
        let t = l.trim();
        if t.is_empty() || t.starts_with('#') || t.starts_with(';') {
            continue;
        }
        let Some((k, v)) = t.split_once('=') else {
            continue;
        };
        let k = k.trim();
        let k = k.strip_prefix("export ").map(str::trim).unwrap_or(k);
        if k.is_empty() || !k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            continue;
        }
        out.push((k.to_string(), unquote(v.trim())));
    }
    out
}

fn is_comment(acc: &str, line: &str) -> bool {
    acc.is_empty() && matches!(line.trim_start().chars().next(), Some('#' | ';'))
}

fn unquote(v: &str) -> String {
    let mut out = String::new();
    let mut chars = v.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '"' => {
                while let Some(c) = chars.next() {
                    match c {
                        '"' => break,
                        '\\' => {
                            if let Some(n) = chars.next() {
                                out.push(n);
                            }
                        }
                        _ => out.push(c),
                    }
                }
            }
            '\'' => {
                for c in chars.by_ref() {
                    if c == '\'' {
                        break;
                    }
                    out.push(c);
                }
            }
            '\\' => {
                if let Some(n) = chars.next() {
                    out.push(n);
                }
            }
            _ => out.push(c),
        }
    }
    out
}

/// Expand `$VAR` and `${VAR}` in an ExecStart argv as systemd does: a word
/// that is exactly `$VAR` becomes the value split on whitespace (zero or
/// more words); `${VAR}` is replaced in place, keeping one word.
/// Unset variables expand to nothing.
pub fn expand_argv(argv: &[String], env: &BTreeMap<String, String>) -> Vec<String> {
    let mut out = Vec::new();
    for (i, word) in argv.iter().enumerate() {
        if i > 0 {
            if let Some(name) = word.strip_prefix('$') {
                if !name.is_empty()
                    && !name.starts_with('{')
                    && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
                {
                    if let Some(v) = env.get(name) {
                        out.extend(v.split_whitespace().map(str::to_string));
                    }
                    continue;
                }
            }
        }
        out.push(expand_braced(word, env));
    }
    out
}

fn expand_braced(word: &str, env: &BTreeMap<String, String>) -> String {
    let mut out = String::new();
    let mut rest = word;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        match rest[start + 2..].find('}') {
            Some(end) => {
                let name = &rest[start + 2..start + 2 + end];
                out.push_str(env.get(name).map(String::as_str).unwrap_or(""));
                rest = &rest[start + 3 + end..];
            }
            None => {
                out.push_str(&rest[start..]);
                rest = "";
            }
        }
    }
    out.push_str(rest);
    out
}

/// The flags that matter to us, last occurrence winning (as pflag does).
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Flags {
    pub config: Option<String>,
    pub fail_swap_on: Option<bool>,
    pub hostname_override: Option<String>,
}

impl Flags {
    pub fn parse(argv: &[String], flavour: Flavour) -> Flags {
        let mut f = Flags::default();
        // k3s's `--node-name`; a `--kubelet-arg=hostname-override=` wins
        // over it, as k3s appends user kubelet args after its own.
        let mut node_name = None;
        let mut i = 1;
        while i < argv.len() {
            let arg = &argv[i];
            i += 1;
            let via_kubelet_arg = arg.starts_with("--kubelet-arg");
            // k3s/rke2 pass kubelet flags as `--kubelet-arg=NAME=VALUE`.
            let (name, inline) = if let Some(v) = arg.strip_prefix("--kubelet-arg=") {
                split_flag(&format!("--{}", v.trim_start_matches("--")))
            } else if arg == "--kubelet-arg" {
                match argv.get(i) {
                    Some(v) => {
                        i += 1;
                        split_flag(&format!("--{}", v.trim_start_matches("--")))
                    }
                    None => continue,
                }
            } else if flavour == Flavour::Embedded {
                // k3s's own flags (`--config` is k3s's config file); only
                // its `--node-name` matters to us.
                if let Some(v) = arg.strip_prefix("--node-name=") {
                    node_name = Some(v.to_string());
                } else if arg == "--node-name" {
                    node_name = argv.get(i).cloned().or(node_name);
                    i += 1;
                }
                continue;
            } else {
                split_flag(arg)
            };
            let Some(name) = name else { continue };
            // `--flag value`; a `--kubelet-arg NAME` carries its value inline
            // or not at all.
            let value = |inline: Option<String>, i: &mut usize| -> Option<String> {
                inline.or_else(|| {
                    if via_kubelet_arg {
                        return None;
                    }
                    let v = argv.get(*i).cloned();
                    *i += 1;
                    v
                })
            };
            match name.as_str() {
                "config" => f.config = value(inline, &mut i),
                "hostname-override" => f.hostname_override = value(inline, &mut i),
                "fail-swap-on" => {
                    f.fail_swap_on = Some(match inline.as_deref() {
                        None => true,
                        Some(v) => parse_go_bool(v).unwrap_or(true),
                    })
                }
                _ => {}
            }
        }
        f.hostname_override = f.hostname_override.or(node_name);
        f
    }
}

fn split_flag(arg: &str) -> (Option<String>, Option<String>) {
    let Some(body) = arg.strip_prefix("--") else {
        return (None, None);
    };
    match body.split_once('=') {
        Some((n, v)) => (Some(n.to_string()), Some(v.to_string())),
        None => (Some(body.to_string()), None),
    }
}

/// Go's strconv.ParseBool, which pflag uses.
fn parse_go_bool(v: &str) -> Option<bool> {
    match v {
        "1" | "t" | "T" | "true" | "TRUE" | "True" => Some(true),
        "0" | "f" | "F" | "false" | "FALSE" | "False" => Some(false),
        _ => None,
    }
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct KubeletConfiguration {
    fail_swap_on: Option<bool>,
    memory_swap: Option<MemorySwap>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct MemorySwap {
    swap_behavior: Option<String>,
}

fn parse_config(text: &str, path: &str) -> Result<KubeletConfiguration> {
    if text.trim().is_empty() {
        return Ok(KubeletConfiguration {
            fail_swap_on: None,
            memory_swap: None,
        });
    }
    serde_norway::from_str(text).map_err(|e| match e.location() {
        Some(loc) => anyhow!(
            "{path}:{}:{}: invalid KubeletConfiguration: {e}",
            loc.line(),
            loc.column()
        ),
        None => anyhow!("{path}: invalid KubeletConfiguration: {e}"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn kubeadm_spec() -> ServiceSpec {
        ServiceSpec {
            exec_start: ["/usr/bin/kubelet", "$KUBELET_KUBECONFIG_ARGS", "$KUBELET_CONFIG_ARGS", "$KUBELET_KUBEADM_ARGS", "$KUBELET_EXTRA_ARGS"]
                .map(String::from)
                .to_vec(),
            environment: vec![
                "KUBELET_KUBECONFIG_ARGS=--bootstrap-kubeconfig=/etc/kubernetes/bootstrap-kubelet.conf --kubeconfig=/etc/kubernetes/kubelet.conf".into(),
                "KUBELET_CONFIG_ARGS=--config=/var/lib/kubelet/config.yaml".into(),
            ],
            environment_files: vec![
                ("/var/lib/kubelet/kubeadm-flags.env".into(), true),
                ("/etc/default/kubelet".into(), true),
            ],
        }
    }

    fn files(map: &[(&str, &str)]) -> HashMap<String, String> {
        map.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn run(spec: &ServiceSpec, fs: &HashMap<String, String>) -> Result<SwapPolicy> {
        swap_policy(spec, Flavour::Kubelet, &|p: &str| Ok(fs.get(p).cloned()))
    }

    #[test]
    fn kubeadm_default_refuses_swap() {
        let fs = files(&[
            ("/var/lib/kubelet/config.yaml", include_str!("../tests/fixtures/kubelet/config-default.yaml")),
            ("/var/lib/kubelet/kubeadm-flags.env", "KUBELET_KUBEADM_ARGS=\"--container-runtime-endpoint=unix:///var/run/containerd/containerd.sock --pod-infra-container-image=registry.k8s.io/pause:3.9\"\n"),
        ]);
        let p = run(&kubeadm_spec(), &fs).unwrap();
        assert!(p.fail_swap_on);
        assert_eq!(p.decided_by, "default");
        assert_eq!(
            p.config_file.as_deref(),
            Some("/var/lib/kubelet/config.yaml")
        );
        assert!(p.argv.contains(
            &"--container-runtime-endpoint=unix:///var/run/containerd/containerd.sock".to_string()
        ));
        assert_eq!(p.argv.len(), 6, "{:?}", p.argv);
    }

    #[test]
    fn config_file_allows_swap() {
        let fs = files(&[(
            "/var/lib/kubelet/config.yaml",
            include_str!("../tests/fixtures/kubelet/config-swap.yaml"),
        )]);
        let p = run(&kubeadm_spec(), &fs).unwrap();
        assert!(!p.fail_swap_on);
        assert_eq!(
            p.decided_by,
            "failSwapOn: false in /var/lib/kubelet/config.yaml"
        );
        assert_eq!(p.swap_behavior.as_deref(), Some("LimitedSwap"));
    }

    #[test]
    fn flag_in_extra_args_overrides_config() {
        let fs = files(&[
            ("/var/lib/kubelet/config.yaml", "failSwapOn: true\n"),
            (
                "/etc/default/kubelet",
                "# extra\nKUBELET_EXTRA_ARGS='--fail-swap-on=false --hostname-override=Node-7'\n",
            ),
        ]);
        let p = run(&kubeadm_spec(), &fs).unwrap();
        assert!(!p.fail_swap_on);
        assert_eq!(p.decided_by, "flag --fail-swap-on=false");
        assert_eq!(p.hostname_override.as_deref(), Some("Node-7"));
    }

    #[test]
    fn bare_bool_flag_and_separate_value_forms() {
        let argv: Vec<String> = [
            "kubelet",
            "--fail-swap-on=false",
            "--config",
            "/c.yaml",
            "--fail-swap-on",
            "--hostname-override",
            "h",
        ]
        .map(String::from)
        .to_vec();
        let f = Flags::parse(&argv, Flavour::Kubelet);
        assert_eq!(f.fail_swap_on, Some(true));
        assert_eq!(f.config.as_deref(), Some("/c.yaml"));
        assert_eq!(f.hostname_override.as_deref(), Some("h"));
    }

    #[test]
    fn k3s_kubelet_arg() {
        let argv: Vec<String> = [
            "/usr/local/bin/k3s",
            "agent",
            "--config",
            "/etc/rancher/k3s/config.yaml",
            "--kubelet-arg=fail-swap-on=true",
            "--kubelet-arg",
            "config=/etc/k.yaml",
            "--node-name",
            "Edge-1",
        ]
        .map(String::from)
        .to_vec();
        let f = Flags::parse(&argv, Flavour::Embedded);
        assert_eq!(f.fail_swap_on, Some(true));
        assert_eq!(
            f.config.as_deref(),
            Some("/etc/k.yaml"),
            "k3s's own --config is not kubelet's"
        );
        assert_eq!(f.hostname_override.as_deref(), Some("Edge-1"));
    }

    #[test]
    fn k3s_kubelet_arg_edge_cases() {
        let parse = |v: &[&str]| {
            Flags::parse(
                &v.iter().map(|s| s.to_string()).collect::<Vec<_>>(),
                Flavour::Embedded,
            )
        };
        // kubelet's own hostname-override beats k3s's --node-name.
        let f = parse(&[
            "k3s",
            "agent",
            "--kubelet-arg=hostname-override=a",
            "--node-name",
            "b",
        ]);
        assert_eq!(f.hostname_override.as_deref(), Some("a"));
        // A trailing --node-name without a value keeps the earlier one.
        let f = parse(&["k3s", "agent", "--node-name=x", "--node-name"]);
        assert_eq!(f.hostname_override.as_deref(), Some("x"));
        // `--kubelet-arg config` without a value does not swallow k3s's next flag.
        let f = parse(&["k3s", "agent", "--kubelet-arg", "config", "--token", "t"]);
        assert_eq!(f.config, None);
    }

    #[test]
    fn k3s_defaults_to_tolerating_swap() {
        let spec = ServiceSpec {
            exec_start: [
                "/usr/local/bin/k3s",
                "agent",
                "--config",
                "/etc/rancher/k3s/config.yaml",
            ]
            .map(String::from)
            .to_vec(),
            ..Default::default()
        };
        let fs: HashMap<String, String> = HashMap::new();
        let p = swap_policy(&spec, Flavour::Embedded, &|p: &str| Ok(fs.get(p).cloned())).unwrap();
        assert!(!p.fail_swap_on);
        assert_eq!(p.config_file, None);
        assert_eq!(Flavour::of_unit("k3s-agent.service"), Flavour::Embedded);
        assert_eq!(Flavour::of_unit("kubelet.service"), Flavour::Kubelet);
    }

    #[test]
    fn missing_config_is_an_error_and_no_flag_reads_no_file() {
        let e = run(&kubeadm_spec(), &HashMap::new()).unwrap_err();
        assert!(
            e.to_string()
                .contains("/var/lib/kubelet/config.yaml (from --config) does not exist"),
            "{e}"
        );
        // Without --config kubelet reads no file, even a leftover one.
        let mut spec = kubeadm_spec();
        spec.environment.pop();
        let fs = files(&[("/var/lib/kubelet/config.yaml", "failSwapOn: false\n")]);
        let p = run(&spec, &fs).unwrap();
        assert!(p.fail_swap_on);
        assert_eq!(p.config_file, None);
    }

    #[test]
    fn bad_yaml_names_file_line_column() {
        let fs = files(&[(
            "/var/lib/kubelet/config.yaml",
            "kind: KubeletConfiguration\nfailSwapOn: maybe\n",
        )]);
        let e = run(&kubeadm_spec(), &fs).unwrap_err().to_string();
        assert!(e.starts_with("/var/lib/kubelet/config.yaml:2:"), "{e}");
    }

    #[test]
    fn required_env_file_missing_is_an_error() {
        let mut spec = kubeadm_spec();
        spec.environment_files
            .push(("/etc/sysconfig/kubelet".into(), false));
        let e = run(&spec, &HashMap::new()).unwrap_err();
        assert!(e.to_string().contains("/etc/sysconfig/kubelet"));
    }

    #[test]
    fn env_file_quoting_comments_continuations() {
        let text = "# comment\n; also comment\nA=plain\nB=\"double \\\"quoted\\\" $x\"\nC='single  spaced'\n  D = padded  \nE=one \\\ntwo\nexport F=exported\nnot a pair\nG=\n";
        let got: BTreeMap<_, _> = parse_env_file(text).into_iter().collect();
        assert_eq!(got["A"], "plain");
        assert_eq!(got["B"], "double \"quoted\" $x");
        assert_eq!(got["C"], "single  spaced");
        assert_eq!(got["D"], "padded");
        assert_eq!(got["E"], "one two");
        assert_eq!(got["F"], "exported");
        assert_eq!(got["G"], "");
        assert_eq!(got.len(), 7);
    }

    #[test]
    fn braced_expansion_keeps_one_word() {
        let env: BTreeMap<String, String> = [("A".to_string(), "x y".to_string())].into();
        let argv: Vec<String> = [
            "/bin/k",
            "--v=${A}",
            "$A",
            "$MISSING",
            "${MISSING}z",
            "${unterminated",
        ]
        .map(String::from)
        .to_vec();
        assert_eq!(
            expand_argv(&argv, &env),
            vec!["/bin/k", "--v=x y", "x", "y", "z", "${unterminated"]
        );
    }
}
