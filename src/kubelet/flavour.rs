//! k3s, rke2 and microk8s: where their kubelet gets its flags.
//!
//! k3s and rke2 (rke2 runs k3s' agent code, with `rke2` in every path;
//! research notes in the closing note of issue 7):
//! - The config file is `$K3S_CONFIG_FILE` (`$RKE2_CONFIG_FILE`) if set,
//!   else the first `--config`/`-c` on the command line, else
//!   `/etc/rancher/{k3s,rke2}/config.yaml`; then `<config>.d/*.yaml|*.yml`
//!   (case-insensitive suffix, lexical order, directories skipped). For each
//!   key a later file replaces the value, or appends to it when the key ends
//!   in `+`. The resulting flags go before the command line's.
//! - `--kubelet-arg NAME=VALUE` values: from the config files, then the
//!   command line (urfave/cli appends); k3s' docs say command-line values
//!   replace the config list instead. Both readings are computed; when they
//!   disagree the policy is unknown.
//! - Two k3s eras: older ones pass `--fail-swap-on=false` on kubelet's
//!   command line (user kubelet-args override it, map semantics, leading
//!   `--` kept); newer ones write `failSwapOn: false` into
//!   `<data-dir>/agent/etc/kubelet.conf.d/00-k3s-defaults.conf`, copy a user
//!   `config=` to `10-cli-config.conf` and `config-dir=` to
//!   `20-cli-config-dir/`, and pass the rest as flags (leading `--` stripped).
//!   The era is not known from outside, so both are computed; when they
//!   disagree the policy is unknown.
//!
//! microk8s (kubelite, 1.21+): `snap run microk8s.daemon-kubelite` runs
//! kubelite with `--kubelet-args-file` (default
//! `$SNAP_DATA/args/kubelet`), whose lines are trimmed, `#` lines skipped,
//! all quotes deleted (newer releases; older ones keep them, so a line with
//! a quote makes the policy unknown), split on single spaces and expanded
//! with os.ExpandEnv. The args are then kubelet's.

use super::{
    apply_config, flags, walk_config_dir, Cx, Flavour, Merge, SourceState, UnitEnv, Verdict,
};

fn yaml_scalar(v: &serde_norway::Value) -> Option<String> {
    use serde_norway::Value;
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Bool(b) => Some(b.to_string()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// Values of the keys that matter, merged across config.yaml and its drop-ins.
#[derive(Debug, Default, Clone)]
struct K3sConfig {
    kubelet_args: Vec<String>,
    data_dir: Option<String>,
    node_name: Option<String>,
}

fn read_k3s_yaml(cx: &mut Cx, path: &str, cfg: &mut K3sConfig) -> Result<bool, String> {
    let Some(bytes) = cx.read("k3s config", path)? else {
        return Ok(false);
    };
    let value: serde_norway::Value = match serde_norway::from_slice(&bytes) {
        Ok(v) => v,
        Err(e) => {
            let msg = match e.location() {
                Some(l) => format!("{path}:{}:{}: {e}", l.line(), l.column()),
                None => format!("{path}: {e}"),
            };
            cx.invalid(&msg);
            return Err(format!("{msg}: k3s refuses it"));
        }
    };
    let map = match value {
        serde_norway::Value::Mapping(m) => m,
        serde_norway::Value::Null => return Ok(true),
        _ => {
            cx.invalid("not a mapping");
            return Err(format!("{path}: not a YAML mapping"));
        }
    };
    for (k, v) in map {
        let Some(k) = k.as_str() else { continue };
        let (name, append) = match k.strip_suffix('+') {
            Some(n) => (n, true),
            None => (k, false),
        };
        let list = match &v {
            serde_norway::Value::Sequence(s) => {
                s.iter().map(yaml_scalar).collect::<Option<Vec<_>>>()
            }
            other => yaml_scalar(other).map(|s| vec![s]),
        };
        match name {
            "kubelet-arg" => {
                let Some(list) = list else {
                    return Err(format!(
                        "{path}: kubelet-arg is not a string or a list of strings"
                    ));
                };
                if append {
                    cfg.kubelet_args.extend(list);
                } else {
                    cfg.kubelet_args = list;
                }
            }
            "data-dir" => cfg.data_dir = list.and_then(|l| l.last().cloned()),
            "node-name" => cfg.node_name = list.and_then(|l| l.last().cloned()),
            _ => {}
        }
    }
    Ok(true)
}

/// k3s' flag value for `names` (`--x v`, `--x=v`, `-x v`, `-x=v`): first or last.
fn cli_values(args: &[String], names: &[&str]) -> Vec<String> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < args.len() {
        let a = &args[i];
        i += 1;
        let body = a.strip_prefix("--").or_else(|| a.strip_prefix('-'));
        let Some(body) = body else { continue };
        let (n, v) = match body.split_once('=') {
            Some((n, v)) => (n, Some(v.to_string())),
            None => (body, None),
        };
        if names.contains(&n) {
            match v {
                Some(v) => out.push(v),
                None => {
                    if let Some(v) = args.get(i) {
                        out.push(v.clone());
                        i += 1;
                    }
                }
            }
        }
    }
    out
}

/// Split a kubelet-arg into (name, value) as k3s does.
fn split_arg(a: &str, strip_dashes: bool) -> (String, String) {
    let a = if strip_dashes {
        a.trim_start_matches("--")
    } else {
        a
    };
    match a.split_once('=') {
        Some((k, v)) => (k.to_string(), v.to_string()),
        None => (a.to_string(), "true".to_string()),
    }
}

/// Legacy era: `--fail-swap-on=false` among k3s' own kubelet flags, user
/// kubelet-args replacing same-named defaults (leading `--` kept).
fn legacy(cx: &mut Cx, user: &[String]) -> Result<Verdict, String> {
    let mut map: Vec<(String, String)> = vec![("fail-swap-on".into(), "false".into())];
    for a in user {
        let (k, v) = split_arg(a, false);
        match map.iter_mut().find(|(mk, _)| *mk == k) {
            Some(slot) => slot.1 = v,
            None => map.push((k, v)),
        }
    }
    let args: Vec<String> = map.iter().map(|(k, v)| format!("--{k}={v}")).collect();
    let mut v = super::kubelet(cx, &args)?;
    if v.fail_swap_on_from == "flag --fail-swap-on=false"
        && !user.iter().any(|a| split_arg(a, false).0 == "fail-swap-on")
    {
        v.fail_swap_on_from = "k3s built-in default (--fail-swap-on=false)".into();
    }
    Ok(v)
}

/// Newer era: config drop-in directory with k3s' defaults file first.
fn modern(cx: &mut Cx, program: &str, user: &[String], data_dir: &str) -> Result<Verdict, String> {
    let mut flag_args = Vec::new();
    let mut user_config = None;
    let mut user_config_dir = None;
    for a in user {
        let (k, v) = split_arg(a, true);
        let norm = flags::normalize(&k);
        if norm.ends_with('+') || norm.ends_with('-') {
            let base = norm.trim_end_matches(['+', '-']);
            if matches!(base, "fail-swap-on" | "config" | "config-dir") {
                return Err(format!(
                    "kubelet-arg {a:?}: k3s' +=/-= forms for {base} are not reproduced"
                ));
            }
        }
        match norm.as_str() {
            "config" => user_config = Some(v),
            "config-dir" => user_config_dir = Some(v),
            _ => flag_args.push(format!("--{k}={v}")),
        }
    }
    let f = flags::parse(&flag_args)?;
    let conf_d = format!(
        "{}/agent/etc/kubelet.conf.d",
        data_dir.trim_end_matches('/')
    );
    let defaults_name = format!("00-{program}-defaults.conf");
    let mut m = Merge::default();
    // (name, what): 0 = k3s defaults, 1 = user config, 2 = user config dir, 3 = on disk
    let mut entries: Vec<(String, u8, bool)> = vec![(defaults_name.clone(), 0, false)];
    if user_config.is_some() {
        entries.push(("10-cli-config.conf".into(), 1, false));
    }
    if user_config_dir.is_some() {
        entries.push(("20-cli-config-dir".into(), 2, true));
    }
    if let Some(disk) = cx.list("k3s kubelet.conf.d", &conf_d)? {
        for e in disk {
            if e.name == defaults_name
                || e.name == "10-cli-config.conf"
                || e.name == "20-cli-config-dir"
            {
                continue;
            }
            entries.push((e.name, 3, e.is_dir));
        }
    }
    entries.sort_by(|a, b| a.0.cmp(&b.0));
    for (name, what, is_dir) in entries {
        match what {
            0 => {
                cx.note(
                    "k3s kubelet defaults",
                    &format!("{conf_d}/{name}"),
                    SourceState::Builtin,
                    Some("failSwapOn: false".into()),
                );
                m.fail_swap_on = Some((
                    false,
                    format!("{program} built-in default ({name}: failSwapOn: false)"),
                ));
            }
            1 => apply_config(
                cx,
                &mut m,
                "kubelet-arg config",
                user_config.as_deref().unwrap_or_default(),
                true,
            )?,
            2 => walk_config_dir(cx, &mut m, user_config_dir.as_deref().unwrap_or_default())?,
            _ => {
                let p = format!("{conf_d}/{name}");
                if is_dir {
                    walk_config_dir(cx, &mut m, &p)?;
                } else if name.ends_with(".conf") {
                    apply_config(cx, &mut m, "--config-dir drop-in", &p, true)?;
                }
            }
        }
    }
    if let Some((v, arg)) = &f.fail_swap_on {
        m.fail_swap_on = Some((*v, format!("kubelet-arg {}", arg.trim_start_matches("--"))));
    }
    let (fail_swap_on, from) = m.fail_swap_on.unwrap_or((false, String::new()));
    Ok(Verdict {
        fail_swap_on,
        fail_swap_on_from: from,
        swap_behavior: m.swap_behavior,
        config_file: user_config,
        hostname_override: f.hostname_override,
        // k3s and rke2 keep their own certificates and run their own
        // containerd.
        credentials: None,
        runtime_endpoint: None,
        cgroup_driver: None,
        resolv_conf: None,
    })
}

/// k3s or rke2 with this expanded argv.
pub(crate) fn k3s(
    cx: &mut Cx,
    flavour: Flavour,
    argv: &[String],
    env: &UnitEnv,
) -> Result<Verdict, String> {
    let program = if flavour == Flavour::Rke2 {
        "rke2"
    } else {
        "k3s"
    };
    match argv.get(1).map(String::as_str) {
        Some("server") | Some("agent") => {}
        other => {
            return Err(format!(
                "{program} subcommand {:?} is not server or agent",
                other.unwrap_or("")
            ))
        }
    }
    let args = &argv[2..];
    let env_name = format!("{}_CONFIG_FILE", program.to_uppercase());
    let config_path = match env.get(&env_name).map_err(|e| format!("{env_name}: {e}"))? {
        Some(p) => p,
        None => cli_values(args, &["config", "c"])
            .into_iter()
            .next()
            .unwrap_or_else(|| format!("/etc/rancher/{program}/config.yaml")),
    };
    let mut cfg = K3sConfig::default();
    read_k3s_yaml(cx, &config_path, &mut cfg)?;
    let dropin_dir = format!("{config_path}.d");
    if let Some(entries) = cx.list(&format!("{program} config.yaml.d"), &dropin_dir)? {
        let mut entries = entries;
        entries.sort_by(|a, b| a.name.cmp(&b.name));
        for e in entries {
            let lower = e.name.to_lowercase();
            if e.is_dir || !(lower.ends_with(".yaml") || lower.ends_with(".yml")) {
                continue;
            }
            read_k3s_yaml(cx, &format!("{dropin_dir}/{}", e.name), &mut cfg)?;
        }
    }
    let cli_args = cli_values(args, &["kubelet-arg"]);
    let data_dir = cli_values(args, &["data-dir", "d"])
        .pop()
        .or(cfg.data_dir.clone())
        .unwrap_or_else(|| format!("/var/lib/rancher/{program}"));
    let node_name = cli_values(args, &["node-name"])
        .pop()
        .or(cfg.node_name.clone());

    // The two readings of config list + command line.
    let accumulate: Vec<String> = cfg.kubelet_args.iter().chain(&cli_args).cloned().collect();
    let replace: Vec<String> = if cli_args.is_empty() {
        cfg.kubelet_args.clone()
    } else {
        cli_args.clone()
    };
    let mut verdicts = Vec::new();
    for (list, reading) in [
        (&accumulate, "config list then command line"),
        (&replace, "command line replacing the config list"),
    ] {
        for era in ["newer", "older"] {
            let v = if era == "newer" {
                modern(cx, program, list, &data_dir)
            } else {
                legacy(cx, list)
            };
            verdicts.push((v, reading, era));
        }
    }
    // Sources were noted once per run; keep each path once.
    let mut seen = std::collections::HashSet::new();
    cx.sources
        .retain(|s| seen.insert((s.role.clone(), s.path.clone())));
    let first = verdicts[0].0.clone();
    for (v, reading, era) in &verdicts[1..] {
        let same = match (&first, v) {
            (Ok(a), Ok(b)) => a.fail_swap_on == b.fail_swap_on,
            _ => false,
        };
        if !same {
            let show = |r: &Result<Verdict, String>| match r {
                Ok(v) => format!("failSwapOn={} ({})", v.fail_swap_on, v.fail_swap_on_from),
                Err(e) => e.clone(),
            };
            return Err(format!(
                "{program}'s kubelet swap policy depends on its version: newer {program} with the config list then command line gives {}, {era} {program} ({reading}) gives {}",
                show(&first),
                show(v)
            ));
        }
    }
    let mut v = first?;
    if !cli_args.is_empty() || !cfg.kubelet_args.is_empty() {
        if let Some(src) = kubelet_arg_source(
            &v.fail_swap_on_from,
            &cli_args,
            &cfg.kubelet_args,
            &config_path,
        ) {
            v.fail_swap_on_from = src;
        }
    }
    v.hostname_override = v.hostname_override.or(node_name);
    Ok(v)
}

/// "kubelet-arg fail-swap-on=true" → where it was written.
fn kubelet_arg_source(
    from: &str,
    cli: &[String],
    cfg: &[String],
    config_path: &str,
) -> Option<String> {
    let arg = from.strip_prefix("kubelet-arg ")?;
    let is = |a: &String| a.trim_start_matches("--") == arg;
    if cli.iter().any(is) {
        Some(format!("--kubelet-arg={arg} (argv)"))
    } else if cfg.iter().any(is) {
        Some(format!(
            "kubelet-arg {arg} in {config_path} or its .d drop-ins"
        ))
    } else {
        None
    }
}

/// The values snapd gives a microk8s daemon (through the `current` links).
const SNAP_VARS: &[(&str, &str)] = &[
    ("SNAP", "/snap/microk8s/current"),
    ("SNAP_DATA", "/var/snap/microk8s/current"),
    ("SNAP_COMMON", "/var/snap/microk8s/common"),
];

/// os.ExpandEnv over the snap variables; any other `$` is not reproduced.
fn expand_snap(word: &str, file: &str) -> Result<String, String> {
    let mut out = String::new();
    let mut rest = word;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        let (name, len) = if let Some(b) = after.strip_prefix('{') {
            match b.find('}') {
                Some(e) => (&b[..e], e + 2),
                None => return Err(format!("{file}: unterminated ${{ in {word:?}")),
            }
        } else {
            let e = after
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(after.len());
            (&after[..e], e)
        };
        match SNAP_VARS.iter().find(|(k, _)| *k == name) {
            Some((_, v)) => out.push_str(v),
            None => {
                return Err(format!(
                    "{file}: ${name} in {word:?} is not one of SNAP, SNAP_DATA, SNAP_COMMON"
                ))
            }
        }
        rest = &after[len..];
    }
    out.push_str(rest);
    Ok(out)
}

/// microk8s' kubelite.
pub(crate) fn microk8s(cx: &mut Cx) -> Result<Verdict, String> {
    // --kubelet-args-file from args/kubelite (bash-parsed by the wrapper:
    // only plain words are reproduced).
    let kubelite = "/var/snap/microk8s/current/args/kubelite";
    let mut args_file = "/var/snap/microk8s/current/args/kubelet".to_string();
    if let Some(bytes) = cx.read("microk8s args/kubelite", kubelite)? {
        let text = String::from_utf8_lossy(&bytes);
        for line in text.lines() {
            let t = line.trim();
            if t.is_empty() || t.starts_with('#') || !t.contains("kubelet-args-file") {
                continue;
            }
            if t.contains(['"', '\'', '`', '\\', '(', ';', '|', '&']) || t.contains("$(") {
                return Err(format!(
                    "{kubelite}: {t:?} needs bash to read; not reproduced"
                ));
            }
            let words: Vec<&str> = t.split_whitespace().collect();
            for (i, w) in words.iter().enumerate() {
                if let Some(v) = w.strip_prefix("--kubelet-args-file=") {
                    args_file = expand_snap(v, kubelite)?;
                } else if *w == "--kubelet-args-file" {
                    if let Some(v) = words.get(i + 1) {
                        args_file = expand_snap(v, kubelite)?;
                    }
                }
            }
        }
    }
    let Some(bytes) = cx.read("microk8s kubelet args", &args_file)? else {
        return Err(format!(
            "{args_file} does not exist: kubelite fails to start"
        ));
    };
    let text = String::from_utf8_lossy(&bytes).into_owned();
    let mut args = vec!["kubelet".to_string()];
    for line in text.lines() {
        let t = line.trim();
        if t.is_empty() || t.starts_with('#') {
            continue;
        }
        if t.contains(['"', '\'']) {
            cx.invalid("quotes");
            return Err(format!(
                "{args_file}: line {t:?} has quotes, which microk8s releases treat differently"
            ));
        }
        for part in t.split(' ') {
            args.push(expand_snap(part, &args_file)?);
        }
    }
    let mut v = super::kubelet(cx, &args[1..])?;
    if let Some(rest) = v.fail_swap_on_from.strip_prefix("flag ") {
        v.fail_swap_on_from = format!("{rest} in {args_file}");
    }
    Ok(v)
}
