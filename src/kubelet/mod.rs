//! Kubelet's effective swap policy, derived as systemd and kubelet derive it.
//!
//! The verdict is [`KubeletPolicy::Known`] only when every source this
//! flavour of kubelet reads was read and parsed the way its reader parses
//! it; anything else is [`KubeletPolicy::Unknown`], naming what could not be
//! reproduced, and nothing is changed because of it.
//!
//! - [`envfile`] — the unit's Environment=, EnvironmentFile= (systemd 252's
//!   parser, globs, `-`) and the `$VAR`/`${VAR}` expansion of ExecStart.
//! - [`flags`] — kubelet's pflag command line.
//! - [`config`] — `--config` and `--config-dir` KubeletConfiguration files.
//! - [`flavour`] — k3s/rke2 (`--kubelet-arg`, config.yaml + config.yaml.d)
//!   and microk8s (`args/kubelet`).
//!
//! Pure: files are read through [`NodeFiles`].

pub mod config;
pub mod envfile;
pub mod flags;
pub mod flavour;
pub mod running;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// What systemd tells about the unit over D-Bus.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceSpec {
    /// The program ExecStart runs (first element of the ExecStart tuple).
    #[serde(default)]
    pub exec_path: String,
    /// argv of the (last) ExecStart= command, `$VARS` unexpanded.
    pub exec_start: Vec<String>,
    /// ExecStartEx flags of that command (`no-env-expand` for `:`…).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub exec_flags: Vec<String>,
    /// How many ExecStart= commands the unit has.
    #[serde(default)]
    pub exec_count: usize,
    /// Environment= entries, `KEY=VALUE`.
    pub environment: Vec<String>,
    /// EnvironmentFile= entries: path on the node, and whether a missing
    /// file is ignored (`-` prefix).
    pub environment_files: Vec<(String, bool)>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unset_environment: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pass_environment: Vec<String>,
    /// The service manager's environment (Manager.Environment), which
    /// systemd puts under the unit's own; None when not read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub manager_environment: Option<Vec<String>>,
    /// The main process (MainPID), 0 when none; when it was started
    /// (ExecMainStartTimestamp, µs since the epoch, and ...Monotonic, µs
    /// since boot). For the check against the running kubelet.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub main_pid: u32,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub exec_main_start_usec: u64,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub exec_main_start_monotonic_usec: u64,
    /// The unit's drop-ins (DropInPaths).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub drop_in_paths: Vec<String>,
}

fn is_zero<T: Default + PartialEq>(v: &T) -> bool {
    *v == T::default()
}

/// Which kubelet runs in the unit (from the ExecStart program).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Flavour {
    /// Upstream kubelet (kubeadm, distro packages).
    Kubelet,
    K3s,
    Rke2,
    /// microk8s' kubelite (`snap run microk8s.daemon-kubelite`).
    Microk8s,
}

/// How a source was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SourceState {
    Read,
    Absent,
    /// Absent or unusable, and allowed to be (`-` prefix).
    Ignored,
    /// Could not be read (permission, I/O error).
    Unreadable,
    /// Read, but not usable (parse error).
    Invalid,
    /// Built into the program, not a file.
    Builtin,
}

/// A file, directory or built-in default consulted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Source {
    /// What it is to kubelet or systemd (`EnvironmentFile`, `--config`…).
    pub role: String,
    pub path: String,
    pub state: SourceState,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

/// How kubelet will treat swap, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SwapPolicy {
    pub flavour: Flavour,
    /// kubelet refuses to start while swap is on.
    pub fail_swap_on: bool,
    /// Which source decided `fail_swap_on`.
    pub fail_swap_on_from: String,
    /// `memorySwap.swapBehavior`, if set.
    pub swap_behavior: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub swap_behavior_from: Option<String>,
    /// `--config`, when one is named.
    pub config_file: Option<String>,
    /// `--hostname-override`, used for the node name.
    pub hostname_override: Option<String>,
    /// The unit's ExecStart argv after systemd's expansion.
    pub argv: Vec<String>,
    pub sources: Vec<Source>,
    /// `argv` against the running kubelet's command line.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub argv_check: Option<running::ArgvCheck>,
    /// `--kubeconfig` and certificate rotation (upstream kubelet only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credentials: Option<Credentials>,
    /// The container runtime endpoint kubelet dials, and what set it
    /// (upstream kubelet only; `None`: its version's default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub runtime_endpoint: Option<(String, String)>,
    /// kubelet's cgroup driver and what set it (upstream kubelet only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cgroup_driver: Option<(String, String)>,
    /// kubelet's `resolvConf` (`--resolv-conf`; default /etc/resolv.conf)
    /// and where it was set: pods' DNS config is read from it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resolv_conf: Option<(String, String)>,
}

impl SwapPolicy {
    /// kubelet's built-in behaviour, with nothing configured (fixtures).
    pub fn builtin(fail_swap_on: bool) -> SwapPolicy {
        SwapPolicy {
            flavour: Flavour::Kubelet,
            fail_swap_on,
            fail_swap_on_from: "default".into(),
            swap_behavior: None,
            swap_behavior_from: None,
            config_file: None,
            hostname_override: None,
            argv: Vec::new(),
            sources: Vec::new(),
            argv_check: None,
            credentials: None,
            runtime_endpoint: None,
            cgroup_driver: None,
            resolv_conf: None,
        }
    }
}

/// Why the policy is not known.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UnknownPolicy {
    pub reason: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flavour: Option<Flavour>,
    pub sources: Vec<Source>,
    /// Set when the next start of kubelet is certain to fail (not merely
    /// unknown): a reboot hazard even while today's kubelet runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kubelet_refuses: Option<String>,
    /// A node image before `kubeadm join`: kubelet's `--config` file and
    /// its credentials are not written yet, and it exits at every start by
    /// design until they are.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub not_joined: bool,
}

// Made once per check: the size of the variants does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KubeletPolicy {
    Known(SwapPolicy),
    Unknown(UnknownPolicy),
}

impl KubeletPolicy {
    pub fn known(&self) -> Option<&SwapPolicy> {
        match self {
            KubeletPolicy::Known(p) => Some(p),
            KubeletPolicy::Unknown(_) => None,
        }
    }

    pub fn unknown(reason: impl Into<String>) -> KubeletPolicy {
        KubeletPolicy::Unknown(UnknownPolicy {
            reason: reason.into(),
            flavour: None,
            sources: Vec::new(),
            kubelet_refuses: None,
            not_joined: false,
        })
    }
}

/// A directory entry as readdir(3) reports it (symlinks not followed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirEntry {
    pub name: String,
    pub is_dir: bool,
}

/// The node's files, by node path.
pub trait NodeFiles {
    /// `Ok(None)` when the file does not exist.
    fn read(&self, node_path: &str) -> std::io::Result<Option<Vec<u8>>>;
    /// Entries sorted by name; `Ok(None)` when there is no such directory.
    fn list_dir(&self, node_path: &str) -> std::io::Result<Option<Vec<DirEntry>>>;
}

/// Gathers sources while a policy is worked out.
pub(crate) struct Cx<'a> {
    pub files: &'a dyn NodeFiles,
    pub sources: Vec<Source>,
    /// Set where the next start of kubelet (or of its unit) is certain to
    /// fail: a config file missing, empty, not YAML or not a
    /// KubeletConfiguration, an EnvironmentFile systemd refuses.
    pub refusal: Option<String>,
    /// The node was never joined: no `--config` file and no credentials
    /// (`--kubeconfig`, `--bootstrap-kubeconfig`) yet.
    pub not_joined: bool,
}

impl Cx<'_> {
    pub fn note(&mut self, role: &str, path: &str, state: SourceState, detail: Option<String>) {
        self.sources.push(Source {
            role: role.into(),
            path: path.into(),
            state,
            detail,
        });
    }

    /// Read a file; an I/O error is recorded and returned as the reason.
    pub fn read(&mut self, role: &str, path: &str) -> Result<Option<Vec<u8>>, String> {
        match self.files.read(path) {
            Ok(Some(b)) => {
                self.note(role, path, SourceState::Read, None);
                Ok(Some(b))
            }
            Ok(None) => {
                self.note(role, path, SourceState::Absent, None);
                Ok(None)
            }
            Err(e) => {
                self.note(role, path, SourceState::Unreadable, Some(e.to_string()));
                Err(format!("cannot read {role} {path}: {e}"))
            }
        }
    }

    pub fn list(&mut self, role: &str, path: &str) -> Result<Option<Vec<DirEntry>>, String> {
        match self.files.list_dir(path) {
            Ok(Some(v)) => {
                self.note(role, path, SourceState::Read, None);
                Ok(Some(v))
            }
            Ok(None) => {
                self.note(role, path, SourceState::Absent, None);
                Ok(None)
            }
            Err(e) => {
                self.note(role, path, SourceState::Unreadable, Some(e.to_string()));
                Err(format!("cannot list {role} {path}: {e}"))
            }
        }
    }

    /// Mark the last source as invalid.
    /// Record that kubelet (or systemd) will refuse the next start; returns
    /// the reason, for `?`.
    pub fn refuse(&mut self, reason: String) -> String {
        self.refusal.get_or_insert_with(|| reason.clone());
        reason
    }

    pub fn invalid(&mut self, detail: &str) {
        if let Some(s) = self.sources.last_mut() {
            s.state = SourceState::Invalid;
            s.detail = Some(detail.into());
        }
    }
}

/// The decision drawn by a flavour module, before the common fields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Verdict {
    pub fail_swap_on: bool,
    pub fail_swap_on_from: String,
    pub swap_behavior: Option<(String, String)>,
    pub config_file: Option<String>,
    pub hostname_override: Option<String>,
    pub credentials: Option<Credentials>,
    pub runtime_endpoint: Option<(String, String)>,
    pub cgroup_driver: Option<(String, String)>,
    pub resolv_conf: Option<(String, String)>,
}

/// How kubelet talks to the API server: its `--kubeconfig`, and whether it
/// rotates its client certificate (`--rotate-certificates`, config
/// `rotateCertificates`; v1beta1's default is false).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Credentials {
    /// Node path of the kubeconfig.
    pub kubeconfig: String,
    pub rotate_certificates: bool,
    pub rotate_certificates_from: String,
    /// `--cert-dir` (default /var/lib/kubelet/pki): with rotation on,
    /// kubelet takes `kubelet-client-current.pem` there first.
    pub cert_dir: String,
    /// `--bootstrap-kubeconfig`: what kubelet requests a new certificate
    /// with when it has none valid.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bootstrap_kubeconfig: Option<String>,
}

/// Names systemd sets itself when it starts a process (execute.c
/// build_environment, service.c service_spawn): their values are not
/// knowable from outside.
const RUNTIME_VARS: &[&str] = &[
    "NOTIFY_SOCKET",
    "MAINPID",
    "MANAGERPID",
    "PIDFILE",
    "LISTEN_PID",
    "LISTEN_FDS",
    "LISTEN_FDNAMES",
    "SERVICE_RESULT",
    "EXIT_CODE",
    "EXIT_STATUS",
    "INVOCATION_ID",
    "JOURNAL_STREAM",
    "HOME",
    "USER",
    "LOGNAME",
    "SHELL",
    "TERM",
    "LOG_NAMESPACE",
    "WATCHDOG_PID",
    "WATCHDOG_USEC",
    "CREDENTIALS_DIRECTORY",
    "SYSTEMD_EXEC_PID",
    "SYSTEMD_NSS_DYNAMIC_BYPASS",
    "RUNTIME_DIRECTORY",
    "STATE_DIRECTORY",
    "CACHE_DIRECTORY",
    "LOGS_DIRECTORY",
    "CONFIGURATION_DIRECTORY",
];

/// The unit's process environment as far as it can be known: the
/// variables set by Environment= and EnvironmentFile= (files win, later
/// ones win), over the manager's, minus UnsetEnvironment=.
pub(crate) struct UnitEnv {
    unit: BTreeMap<String, String>,
    manager: Option<BTreeMap<String, String>>,
    unset: Vec<String>,
    pass: Vec<String>,
}

impl UnitEnv {
    /// `Ok(value)`, or `Err(why it cannot be known)`.
    pub fn get(&self, name: &str) -> Result<Option<String>, String> {
        let v = self.unit.get(name).cloned();
        let v = match v {
            Some(v) => Some(v),
            None if RUNTIME_VARS.contains(&name)
                || name.starts_with("MONITOR_")
                || name.starts_with("TRIGGER_") =>
            {
                return Err(format!("${name} is set by systemd when the unit starts"));
            }
            None if self.pass.iter().any(|p| p == name) => {
                return Err(format!(
                    "${name} comes from PassEnvironment= (systemd's own environment)"
                ));
            }
            None => match &self.manager {
                Some(m) => m.get(name).cloned(),
                None => {
                    return Err(format!(
                        "${name} is not set by the unit and the manager's environment was not read"
                    ))
                }
            },
        };
        // strv_env_delete: a NAME entry removes it; NAME=VALUE only that value.
        let removed = self.unset.iter().any(|u| match u.split_once('=') {
            Some((k, val)) => k == name && v.as_deref() == Some(val),
            None => u == name,
        });
        Ok(if removed { None } else { v })
    }
}

fn kv_map(entries: &[String]) -> BTreeMap<String, String> {
    entries
        .iter()
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// Expand an EnvironmentFile= path (glob(3), sorted) to the files it names.
fn glob_paths(cx: &mut Cx, pattern: &str) -> Result<Vec<String>, String> {
    if !envfile::has_glob_magic(pattern) {
        return Ok(vec![pattern.to_string()]);
    }
    let mut current = vec![String::new()];
    for comp in pattern.split('/').filter(|c| !c.is_empty()) {
        let mut next = Vec::new();
        for base in &current {
            if envfile::has_glob_magic(comp) {
                let dir = if base.is_empty() {
                    "/".to_string()
                } else {
                    base.clone()
                };
                if let Some(entries) = cx.list("EnvironmentFile glob directory", &dir)? {
                    for e in entries {
                        if envfile::fnmatch(comp, &e.name) {
                            next.push(format!("{base}/{}", e.name));
                        }
                    }
                }
            } else {
                next.push(format!("{base}/{comp}"));
            }
        }
        current = next;
    }
    current.sort();
    Ok(current)
}

/// Build the unit's environment as systemd 252 does (exec_context_load_environment).
pub(crate) fn unit_env(cx: &mut Cx, spec: &ServiceSpec) -> Result<UnitEnv, String> {
    let mut unit = kv_map(&spec.environment);
    for (path, ignore) in &spec.environment_files {
        if !path.starts_with('/') {
            if *ignore {
                continue;
            }
            return Err(format!(
                "EnvironmentFile={path} is not absolute: systemd refuses to start the unit"
            ));
        }
        let paths = glob_paths(cx, path)?;
        let mut matched = false;
        for p in paths {
            if let Some(bytes) = cx.read("EnvironmentFile", &p)? {
                match envfile::parse_env_file(&bytes) {
                    Ok(vars) => {
                        matched = true;
                        unit.extend(vars);
                    }
                    Err(e) if *ignore => {
                        cx.invalid(&e.0);
                        matched = true;
                    }
                    Err(e) => {
                        cx.invalid(&e.0);
                        return Err(cx.refuse(format!(
                            "EnvironmentFile {p}: {}: systemd refuses to start the unit",
                            e.0
                        )));
                    }
                }
            }
        }
        if !matched {
            if *ignore {
                if let Some(s) = cx.sources.last_mut() {
                    if s.state == SourceState::Absent {
                        s.state = SourceState::Ignored;
                    }
                }
            } else {
                return Err(cx.refuse(format!(
                    "EnvironmentFile={path} (without \"-\") does not exist: systemd refuses to start the unit"
                )));
            }
        }
    }
    Ok(UnitEnv {
        unit,
        manager: spec.manager_environment.as_deref().map(kv_map),
        unset: spec.unset_environment.clone(),
        pass: spec.pass_environment.clone(),
    })
}

/// ExecStart argv after systemd's expansion.
pub(crate) fn expand(spec: &ServiceSpec, env: &UnitEnv) -> Result<Vec<String>, String> {
    if spec.exec_flags.iter().any(|f| f == "no-env-expand") {
        return Ok(spec.exec_start.clone());
    }
    let err = std::cell::RefCell::new(None);
    let get = |name: &str| match env.get(name) {
        Ok(v) => v,
        Err(e) => {
            err.borrow_mut().get_or_insert(e);
            None
        }
    };
    let e = envfile::Env {
        get: &get,
        asked: Default::default(),
    };
    let argv = envfile::replace_env_argv(&spec.exec_start, &e);
    match err.into_inner() {
        Some(e) => Err(format!("ExecStart uses {e}")),
        None => Ok(argv),
    }
}

fn basename(p: &str) -> &str {
    p.rsplit('/').next().unwrap_or(p)
}

/// Derive kubelet's swap policy from the unit and the node's files.
pub fn swap_policy(spec: &ServiceSpec, files: &dyn NodeFiles) -> KubeletPolicy {
    let mut cx = Cx {
        files,
        sources: Vec::new(),
        refusal: None,
        not_joined: false,
    };
    let flavour = match basename(&spec.exec_path) {
        "kubelet" => Some(Flavour::Kubelet),
        "k3s" => Some(Flavour::K3s),
        "rke2" => Some(Flavour::Rke2),
        "snap" => Some(Flavour::Microk8s),
        _ => None,
    };
    let result = (|| {
        if spec.exec_count > 1 {
            return Err(format!(
                "the unit has {} ExecStart= commands; which one is kubelet is not known",
                spec.exec_count
            ));
        }
        if spec.exec_start.is_empty() || spec.exec_path.is_empty() {
            return Err("the unit has no ExecStart= command".to_string());
        }
        let env = unit_env(&mut cx, spec)?;
        let argv = expand(spec, &env)?;
        let Some(flavour) = flavour else {
            return Err(format!(
                "ExecStart runs {}, not a kubelet binary nor k3s, rke2 or microk8s",
                spec.exec_path
            ));
        };
        let v = match flavour {
            Flavour::Kubelet => kubelet(&mut cx, &argv[1.min(argv.len())..])?,
            Flavour::K3s | Flavour::Rke2 => flavour::k3s(&mut cx, flavour, &argv, &env)?,
            Flavour::Microk8s => {
                if argv.get(1..)
                    != Some(&["run".to_string(), "microk8s.daemon-kubelite".to_string()][..])
                {
                    return Err(format!(
                        "ExecStart runs {} {:?}, not `snap run microk8s.daemon-kubelite`",
                        spec.exec_path,
                        argv.get(1..).unwrap_or_default()
                    ));
                }
                flavour::microk8s(&mut cx)?
            }
        };
        Ok((flavour, argv, v))
    })();
    match result {
        Ok((flavour, argv, v)) => KubeletPolicy::Known(SwapPolicy {
            flavour,
            fail_swap_on: v.fail_swap_on,
            fail_swap_on_from: v.fail_swap_on_from,
            swap_behavior_from: v.swap_behavior.as_ref().map(|s| s.1.clone()),
            swap_behavior: v.swap_behavior.map(|s| s.0),
            config_file: v.config_file,
            hostname_override: v.hostname_override,
            argv,
            sources: cx.sources,
            argv_check: None,
            credentials: v.credentials,
            runtime_endpoint: v.runtime_endpoint,
            cgroup_driver: v.cgroup_driver,
            resolv_conf: v.resolv_conf,
        }),
        Err(reason) => KubeletPolicy::Unknown(UnknownPolicy {
            reason,
            flavour,
            sources: cx.sources,
            kubelet_refuses: cx.refusal,
            not_joined: cx.not_joined,
        }),
    }
}

/// Running state of the merge: value and where it came from.
#[derive(Default)]
pub(crate) struct Merge {
    pub fail_swap_on: Option<(bool, String)>,
    pub swap_behavior: Option<(String, String)>,
    pub rotate_certificates: Option<(bool, String)>,
    pub runtime_endpoint: Option<(String, String)>,
    pub cgroup_driver: Option<(String, String)>,
    /// What kubelet's validation refuses in the files, with the file.
    pub refusals: Vec<(config::Refusal, String)>,
    pub resolv_conf: Option<(String, String)>,
}

impl Merge {
    pub fn apply(&mut self, c: config::ConfigFacts, from: &str) {
        self.refusals
            .extend(c.refusals.into_iter().map(|r| (r, from.to_string())));
        if let Some(r) = c.resolv_conf {
            self.resolv_conf = Some((r, format!("resolvConf in {from}")));
        }
        if let Some(v) = c.fail_swap_on {
            self.fail_swap_on = Some((v, format!("failSwapOn: {v} in {from}")));
        }
        if let Some(b) = c.swap_behavior {
            self.swap_behavior = Some((b, format!("memorySwap.swapBehavior in {from}")));
        }
        if let Some(d) = c.cgroup_driver {
            self.cgroup_driver = Some((d, format!("cgroupDriver in {from}")));
        }
        if let Some(e) = c.container_runtime_endpoint {
            self.runtime_endpoint = Some((e, format!("containerRuntimeEndpoint in {from}")));
        }
        if let Some(v) = c.rotate_certificates {
            self.rotate_certificates = Some((v, format!("rotateCertificates: {v} in {from}")));
        }
    }
}

/// Read one KubeletConfiguration into the merge.
pub(crate) fn apply_config(
    cx: &mut Cx,
    m: &mut Merge,
    role: &str,
    path: &str,
    dropin: bool,
) -> Result<(), String> {
    match cx.read(role, path)? {
        Some(bytes) => match config::parse(&bytes, path, dropin) {
            Ok(c) => {
                m.apply(c, path);
                Ok(())
            }
            Err(e) => {
                cx.invalid(&e.message);
                let why = format!("{}: kubelet would not start", e.message);
                Err(if e.kubelet_refuses { cx.refuse(why) } else { why })
            }
        },
        None => Err(cx.refuse(format!(
            "{role} {path} does not exist: kubelet fails to start (\"failed to load kubelet config file\")"
        ))),
    }
}

/// filepath.WalkDir over a `--config-dir`: lexical, recursive, `*.conf`.
pub(crate) fn walk_config_dir(cx: &mut Cx, m: &mut Merge, dir: &str) -> Result<(), String> {
    let Some(entries) = cx.list("--config-dir", dir)? else {
        return Err(cx.refuse(format!(
            "--config-dir {dir} does not exist: kubelet fails to start (\"failed to walk through kubelet dropin directory\")"
        )));
    };
    let mut entries = entries;
    entries.sort_by(|a, b| a.name.cmp(&b.name));
    for e in entries {
        let p = format!("{}/{}", dir.trim_end_matches('/'), e.name);
        if e.is_dir {
            walk_config_dir(cx, m, &p)?;
        } else if e.name.ends_with(".conf") {
            apply_config(cx, m, "--config-dir drop-in", &p, true)?;
        }
    }
    Ok(())
}

/// Upstream kubelet with these arguments (argv[0] excluded).
pub(crate) fn kubelet(cx: &mut Cx, args: &[String]) -> Result<Verdict, String> {
    let f = flags::parse(args)?;
    let mut m = Merge {
        fail_swap_on: Some((true, "default".into())),
        swap_behavior: None,
        rotate_certificates: None,
        runtime_endpoint: None,
        cgroup_driver: None,
        refusals: Vec::new(),
        resolv_conf: None,
    };
    if let Some(c) = &f.config {
        if let Err(e) = apply_config(cx, &mut m, "--config", c, false) {
            // Not joined yet: no config file and none of the credentials
            // `kubeadm join` writes.
            let absent = |cx: &Cx, p: &Option<String>| {
                p.as_deref()
                    .is_none_or(|p| matches!(cx.files.read(p), Ok(None)))
            };
            let config_absent = cx
                .sources
                .last()
                .is_some_and(|s| s.role == "--config" && s.state == SourceState::Absent);
            cx.not_joined = config_absent
                && f.kubeconfig.is_some()
                && absent(cx, &f.kubeconfig)
                && absent(cx, &f.bootstrap_kubeconfig);
            return Err(e);
        }
    }
    if let Some(d) = &f.config_dir {
        walk_config_dir(cx, &mut m, d)?;
    }
    // kubelet validates the file after the flags are parsed over it: a
    // rule about a field a flag sets is the flag's, not the file's. With
    // drop-ins, a rule may hold only after the merge: not judged.
    if f.config_dir.is_none() {
        if let Some((r, from)) = std::mem::take(&mut m.refusals)
            .into_iter()
            .find(|(r, _)| r.flags.iter().all(|fl| !f.names.contains(*fl)))
        {
            cx.invalid(&r.message);
            return Err(cx.refuse(format!(
                "{from}: {} (kubelet's own validation): kubelet would not start",
                r.message
            )));
        }
    }
    if let Some((v, arg)) = &f.fail_swap_on {
        m.fail_swap_on = Some((*v, format!("flag {arg}")));
    }
    let (fail_swap_on, from) = m.fail_swap_on.unwrap_or((true, "default".into()));
    if let Some((v, arg)) = &f.rotate_certificates {
        m.rotate_certificates = Some((*v, format!("flag {arg}")));
    }
    let (rotate, rotate_from) = m
        .rotate_certificates
        .unwrap_or((false, "default (v1beta1: false)".into()));
    Ok(Verdict {
        fail_swap_on,
        fail_swap_on_from: from,
        swap_behavior: m.swap_behavior,
        config_file: f.config,
        hostname_override: f.hostname_override,
        credentials: f.kubeconfig.map(|k| Credentials {
            kubeconfig: k,
            rotate_certificates: rotate,
            rotate_certificates_from: rotate_from,
            cert_dir: f
                .cert_dir
                .clone()
                .unwrap_or_else(|| "/var/lib/kubelet/pki".into()),
            bootstrap_kubeconfig: f.bootstrap_kubeconfig.clone(),
        }),
        runtime_endpoint: f
            .container_runtime_endpoint
            .map(|e| (e, "flag --container-runtime-endpoint".to_string()))
            .or(m.runtime_endpoint),
        cgroup_driver: Some(
            f.cgroup_driver
                .map(|d| (d, "flag --cgroup-driver".to_string()))
                .or(m.cgroup_driver)
                .unwrap_or(("cgroupfs".into(), "default (v1beta1)".into())),
        ),
        resolv_conf: Some(
            f.resolv_conf
                .map(|r| (r, "flag --resolv-conf".to_string()))
                .or(m.resolv_conf)
                .unwrap_or(("/etc/resolv.conf".into(), "default".into())),
        ),
    })
}

#[cfg(test)]
pub(crate) mod testfs {
    use super::*;
    use std::collections::BTreeMap;

    /// In-memory node files; directories are implied by file paths.
    #[derive(Default)]
    pub struct MemFiles {
        pub files: BTreeMap<String, Vec<u8>>,
        pub unreadable: Vec<String>,
    }

    impl MemFiles {
        pub fn new(files: &[(&str, &str)]) -> MemFiles {
            MemFiles {
                files: files
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.as_bytes().to_vec()))
                    .collect(),
                unreadable: Vec::new(),
            }
        }
    }

    impl NodeFiles for MemFiles {
        fn read(&self, p: &str) -> std::io::Result<Option<Vec<u8>>> {
            if self.unreadable.iter().any(|u| u == p) {
                return Err(std::io::Error::from(std::io::ErrorKind::PermissionDenied));
            }
            Ok(self.files.get(p).cloned())
        }

        fn list_dir(&self, p: &str) -> std::io::Result<Option<Vec<DirEntry>>> {
            if self.unreadable.iter().any(|u| u == p) {
                return Err(std::io::Error::from(std::io::ErrorKind::PermissionDenied));
            }
            let prefix = format!("{}/", p.trim_end_matches('/'));
            let mut out: BTreeMap<String, bool> = BTreeMap::new();
            for k in self.files.keys() {
                if let Some(rest) = k.strip_prefix(&prefix) {
                    match rest.split_once('/') {
                        Some((d, _)) => out.insert(d.to_string(), true),
                        None => out.insert(rest.to_string(), false),
                    };
                }
            }
            if out.is_empty() {
                return Ok(None);
            }
            Ok(Some(
                out.into_iter()
                    .map(|(name, is_dir)| DirEntry { name, is_dir })
                    .collect(),
            ))
        }
    }
}

#[cfg(test)]
mod tests;
