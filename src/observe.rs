//! Gather an [`Observation`]: units over D-Bus, swap from /proc, files
//! under the host root. Probes fail independently: one that cannot run is
//! recorded as `Probe::Failed`, never a panic or an early return.

use std::path::Path;

use anyhow::{Context, Result};

use crate::config::Config;
use crate::finding::KUBELET_UNIT;
use crate::fstab;
use crate::hostroot::HostRoot;
use crate::kubelet::{self, DirEntry, KubeletPolicy, NodeFiles};
use crate::observation::{FstabSwap, Observation, Probe, UnitObservation};
use crate::observation::{KernelObservation, ModuleObservation, SysctlObservation};
use crate::swap::{self, SwapUnit};
use crate::systemd::UnitManager;
use crate::virt::Virtualization;

pub use crate::paths::FSTAB;

/// Where to look.
#[derive(Debug, Clone)]
pub struct Sources {
    pub host: HostRoot,
    /// /proc/swaps of this kernel (swap is kernel-global, so the agent's own
    /// /proc serves in a pod too).
    pub proc_swaps: std::path::PathBuf,
    /// The cgroupfs root (/sys/fs/cgroup), read for the swapoff guard.
    pub cgroup_root: std::path::PathBuf,
    /// Take this as systemd's `Virtualization` instead of asking it (tests:
    /// a container standing in for a VM or bare metal).
    pub assume_virtualization: Option<String>,
}

impl Sources {
    /// The kernel command line, beside `proc_swaps` (`/proc/cmdline`).
    pub fn proc_cmdline(&self) -> std::path::PathBuf {
        self.proc_swaps.with_file_name("cmdline")
    }
}

/// Observe the node. `systemd` is the bus connection, or why there is none.
pub async fn observe<S: UnitManager>(
    systemd: Result<&S, &str>,
    src: &Sources,
    cfg: &Config,
) -> Observation {
    // Every question to systemd at once, over the one connection: their
    // round trips overlap (systemd answers them in order).
    let units_q = futures_util::future::join_all(
        cfg.required_units
            .iter()
            .map(|required| observe_unit(systemd, required, cfg)),
    );
    let swap_units_q = async {
        match systemd {
            Ok(sd) => Probe::from_result(swap_units(sd, &src.host).await),
            Err(e) => Probe::Failed(e.to_string()),
        }
    };
    let virtualization_q = async {
        match (&src.assume_virtualization, systemd) {
            (Some(id), _) => {
                Probe::from_result(Virtualization::from_systemd(id).map_err(anyhow::Error::msg))
            }
            (None, Ok(sd)) => Probe::from_result(
                sd.virtualization()
                    .await
                    .and_then(|id| Virtualization::from_systemd(&id).map_err(anyhow::Error::msg)),
            ),
            (None, Err(e)) => Probe::Failed(e.to_string()),
        }
    };
    let clock_q = async {
        match (cfg.readiness.clock, systemd) {
            (false, _) | (_, Err(_)) => None,
            (true, Ok(sd)) => match sd.clock().await {
                Ok(Some(mut c)) => {
                    // /proc/uptime beside /proc/swaps: seconds since boot.
                    c.uptime_secs =
                        std::fs::read_to_string(src.proc_swaps.with_file_name("uptime"))
                            .ok()
                            .and_then(|s| s.split('.').next().and_then(|n| n.trim().parse().ok()));
                    Some(Probe::Ok(c))
                }
                Ok(None) => None,
                Err(e) => Some(Probe::Failed(format!("{e:#}"))),
            },
        }
    };
    let ((units, swap_units, virtualization), clock) = futures_util::future::join(
        futures_util::future::join3(units_q, swap_units_q, virtualization_q),
        clock_q,
    )
    .await;
    let kubelet_policy = units
        .iter()
        .find(|u| u.required == KUBELET_UNIT)
        .and_then(|u| match &u.state {
            // With no bus, the bus finding says why, once.
            Probe::Failed(_) if systemd.is_err() => Some(KubeletPolicy::unknown(
                "systemd could not be asked for kubelet's unit",
            )),
            Probe::Failed(e) => Some(KubeletPolicy::unknown(format!(
                "kubelet unit {} unreadable: {e}",
                u.name
            ))),
            Probe::Ok(s) if s.load_state == crate::systemd::types::LoadState::NotFound => None,
            Probe::Ok(s) => {
                let policy = policy_for(&u.name, s.service.as_ref(), &src.host);
                match (&policy, s.service.as_ref()) {
                    (KubeletPolicy::Known(p), Some(spec)) => {
                        let running = running_kubelet(&u.name, s, spec, p, src);
                        Some(kubelet::running::check(policy, &spec.exec_path, running))
                    }
                    _ => Some(policy),
                }
            }
        });
    let upstream = kubelet_policy
        .as_ref()
        .and_then(|p| p.known())
        .filter(|p| p.flavour == kubelet::Flavour::Kubelet);
    let mut units = units;
    let runtime = match (upstream, systemd) {
        (Some(p), Ok(sd)) if cfg.readiness.runtime => {
            let (r, unit) = observe_runtime(sd, src, p.runtime_endpoint.as_ref()).await;
            // A runtime already among the required units is observed once.
            if let Some(u) = unit.filter(|u| !units.iter().any(|x| x.name == u.name)) {
                units.push(u);
            }
            Some(r)
        }
        _ => None,
    };
    let mut boot = BootFiles::load(src, virtualization.ok().and_then(Virtualization::container));
    at_boot(&mut units, &mut boot);
    // containerd's config file: `--config PATH`, `--config=PATH`, `-c PATH`,
    // `-c=PATH` of its ExecStart, else its default path; without its
    // ExecStart the file is not known.
    let containerd_config = units
        .iter()
        .find(|u| u.name == "containerd.service")
        .and_then(|u| u.state.ok())
        .and_then(|s| s.service.as_ref())
        .map(|s| {
            let a = &s.exec_start;
            a.iter()
                .enumerate()
                .find_map(|(i, w)| match w.split_once('=') {
                    Some(("--config" | "-c", v)) => Some(v.to_string()),
                    _ if matches!(w.as_str(), "--config" | "-c") => a.get(i + 1).cloned(),
                    _ => None,
                })
                .unwrap_or_else(|| "/etc/containerd/config.toml".into())
        });
    // It accepts connections, and serves no CRI when its config turns the
    // plugin off.
    let mut runtime = runtime;
    if let Some(r) = runtime
        .as_mut()
        .filter(|r| r.unit.as_deref() == Some("containerd.service"))
    {
        if let Some(p) = &containerd_config {
            if let Ok(Some(text)) = read_optional(&src.host, p) {
                r.cri_disabled = crate::readiness::cgroup_driver::containerd_cri_disabled(p, &text);
            }
        }
    }
    let cgroup_driver = match (upstream.and_then(|p| p.cgroup_driver.as_ref()), &runtime) {
        (Some((driver, from)), Some(r)) if r.unit.as_deref() == Some("containerd.service") => {
            let path = containerd_config.clone();
            let text = match &path {
                Some(p) => read_optional(&src.host, p),
                None => Err(anyhow::anyhow!(
                    "containerd.service's ExecStart could not be read"
                )),
            };
            let path = path.unwrap_or_default();
            Some(crate::observation::CgroupDriverObservation {
                kubelet: driver.clone(),
                kubelet_from: from.clone(),
                runtime_unit: "containerd.service".into(),
                runtime: match text {
                    Ok(t) => {
                        // containerd 2 (its program's build information)
                        // reports its driver over CRI.
                        let program = units
                            .iter()
                            .find(|u| u.name == "containerd.service")
                            .and_then(|u| u.state.ok())
                            .and_then(|s| s.service.as_ref())
                            .map(|s| s.exec_path.clone())
                            .unwrap_or_default();
                        let info = (!program.is_empty())
                            .then(|| {
                                crate::gobuild::modinfo(
                                    &src.host
                                        .resolve(&program)
                                        .unwrap_or_else(|_| src.host.path(&program)),
                                )
                            })
                            .flatten();
                        crate::readiness::cgroup_driver::containerd2(&program, info.as_deref())
                            .unwrap_or_else(|| {
                                crate::readiness::cgroup_driver::containerd(&path, t.as_deref())
                            })
                    }
                    Err(e) => crate::readiness::cgroup_driver::RuntimeDriver::Unknown {
                        why: format!("{e:#}"),
                    },
                },
            })
        }
        _ => None,
    };
    // kubelet's resolvConf written under /run by a service: whether that
    // service starts at boot (pods' DNS config after the next boot).
    let resolv_conf = upstream
        .and_then(|p| p.resolv_conf.as_ref())
        .and_then(|(path, from)| {
            let producer = [
                ("/run/systemd/resolve/", "systemd-resolved.service"),
                ("/run/NetworkManager/", "NetworkManager.service"),
                ("/run/resolvconf/", "resolvconf.service"),
            ]
            .iter()
            .find(|(dir, _)| path.starts_with(dir))
            .map(|(_, u)| u.to_string())?;
            let producer_at_boot = match boot.at_boot(&producer) {
                crate::systemd::types::AtBoot::Pulled { .. }
                | crate::systemd::types::AtBoot::StartedBy { .. } => Some(true),
                crate::systemd::types::AtBoot::NotStarted { .. } => Some(false),
                crate::systemd::types::AtBoot::Unknown { .. } => None,
            };
            Some(crate::observation::ResolvConfObservation {
                path: path.clone(),
                from: from.clone(),
                producer,
                producer_at_boot,
            })
        });
    // k3s and rke2 load these modules and set these sysctls at every start
    // (their agent's system setup); in a container the kernel is the
    // host's, and the node's systemd-modules-load and systemd-sysctl are
    // skipped there.
    let kernel_skip = match (
        kubelet_policy
            .as_ref()
            .and_then(|p| p.known())
            .map(|p| p.flavour),
        virtualization.ok().and_then(Virtualization::container),
    ) {
        (_, Some(id)) => Some(format!(
            "systemd runs in a container ({id}): the kernel is the host's"
        )),
        (Some(f @ (kubelet::Flavour::K3s | kubelet::Flavour::Rke2)), _) => Some(format!(
            "{f:?} loads its kernel modules and sets its sysctls itself at every start"
        )),
        (Some(kubelet::Flavour::Microk8s), _) => Some(
            "microk8s's kubelite wrapper loads its kernel modules and sets its sysctls itself at every start".into(),
        ),
        _ => None,
    };
    let kubelet_cert = upstream
        .and_then(|p| p.credentials.as_ref())
        .filter(|_| cfg.readiness.kubelet_cert)
        .and_then(|c| observe_kubelet_cert(&src.host, c));
    let container = virtualization.ok().and_then(Virtualization::container);
    let swap_now = Probe::from_result(swap::observe_now(&src.proc_swaps));
    let fstab = Probe::from_result(read_fstab(&src.host, &src.proc_cmdline(), container));
    let swap_origins = swap_origins(&src.host, &swap_now, &fstab, &swap_units);
    let swap_in_use = swap_now
        .ok()
        .is_some_and(|n| n.devices.iter().any(|d| d.used_kib > 0));
    let swap_cgroups =
        swap_in_use.then(|| Probe::from_result(crate::cgroup::observe(&src.cgroup_root)));
    Observation {
        swap_cgroups,
        bus_error: systemd.err().map(str::to_string),
        pause: crate::pause::read(
            &src.host,
            jiff::Timestamp::now(),
            jiff::SignedDuration::from_hours(cfg.pause.max_hours.min(i64::MAX as u64 / 3600) as i64),
        ),
        units,
        swap_now,
        fstab,
        swap_origins,
        swap_units,
        kubelet_policy,
        virtualization,
        kernel: {
            let mut k = observe_kernel(src, cfg, kernel_skip);
            if k.skipped.is_none() {
                k.platform = platform(src, &mut boot);
            }
            k
        },
        kubelet_cert,
        clock,
        runtime,
        cgroup_driver,
        resolv_conf,
    }
}

/// How long connecting to the runtime's socket may take.
pub const RUNTIME_CONNECT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(3);

/// The well-known runtime units, by the socket they serve.
pub const RUNTIME_UNITS: [(&str, &str); 4] = [
    ("containerd.sock", "containerd.service"),
    ("crio.sock", "crio.service"),
    ("cri-dockerd.sock", "cri-docker.service"),
    ("dockershim.sock", "docker.service"),
];

/// kubelet's container runtime: the socket from its config, the unit of the
/// process listening on it (its cgroup names it), else the well-known unit
/// for that socket, else the first well-known unit installed; with the
/// unit's state (as a unit observation of its own) and whether the socket
/// accepts a connection.
async fn observe_runtime<S: UnitManager>(
    sd: &S,
    src: &Sources,
    endpoint: Option<&(String, String)>,
) -> (
    crate::observation::RuntimeObservation,
    Option<UnitObservation>,
) {
    let proc = src.proc_swaps.parent().unwrap_or(Path::new("/proc"));
    let socket = endpoint.and_then(|(e, _)| {
        e.strip_prefix("unix://")
            .or_else(|| e.starts_with('/').then_some(e.as_str()))
            .map(String::from)
    });
    let mut r = crate::observation::RuntimeObservation {
        endpoint: socket.clone(),
        endpoint_from: endpoint
            .map(|(e, from)| format!("{e} ({from})"))
            .unwrap_or_else(|| "not set: kubelet's version-dependent default".into()),
        unit: None,
        unit_from: String::new(),
        answers: None,
        cri_disabled: None,
    };
    if let Some(sock) = &socket {
        if let Some((pid, unit)) = socket_listener(proc, &src.host, sock) {
            r.unit_from = format!("the process listening on {sock} (PID {pid}) runs in it");
            r.unit = Some(unit);
        }
        let path = src
            .host
            .resolve(sock)
            .unwrap_or_else(|_| src.host.path(sock));
        // Async, and bounded: a runtime whose listen backlog is full (hung,
        // not accepting) blocks connect(2), and must not stall the check.
        let connect = tokio::time::timeout(
            RUNTIME_CONNECT_TIMEOUT,
            tokio::net::UnixStream::connect(&path),
        );
        r.answers = Some(match connect.await.unwrap_or_else(|_| {
            Err(std::io::Error::new(std::io::ErrorKind::TimedOut, "timed out"))
        }) {
            Ok(_) => Probe::Ok(true),
            Err(e) if e.kind() == std::io::ErrorKind::TimedOut => Probe::Failed(format!(
                "{sock} did not accept a connection within {RUNTIME_CONNECT_TIMEOUT:?}: the runtime listens but does not accept (hung, or its backlog is full)"
            )),
            Err(e)
                if matches!(
                    e.raw_os_error(),
                    Some(libc::ECONNREFUSED) | Some(libc::ENOENT) | Some(libc::ENOTSOCK)
                ) =>
            {
                Probe::Ok(false)
            }
            // The socket is root's (containerd makes it 0660): this
            // process's limit, not the runtime's fault.
            Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => Probe::Failed(format!(
                "taint-guard runs as uid {} and may not connect to {sock} ({e}); that is this process's limit, not the runtime's: root can (taint-guard.service on the host), or turn this check off where it cannot be made: [readiness] runtime = false",
                // SAFETY: geteuid has no preconditions.
                unsafe { libc::geteuid() }
            )),
            Err(e) => Probe::Failed(format!("connecting to {sock}: {e}")),
        });
    }
    let mut candidates: Vec<&str> = match &socket {
        Some(sock) => RUNTIME_UNITS
            .iter()
            .filter(|(name, _)| sock.ends_with(&format!("/{name}")))
            .map(|(_, u)| *u)
            .collect(),
        None => RUNTIME_UNITS.iter().map(|(_, u)| *u).collect(),
    };
    candidates.dedup();
    if r.unit.is_none() {
        for c in candidates {
            if let Ok(st) = sd.unit_state(c).await {
                if st.load_state != crate::systemd::types::LoadState::NotFound {
                    r.unit_from = match &socket {
                        Some(sock) => {
                            format!("the well-known unit for {sock} (nothing listens on it now)")
                        }
                        None => "the first well-known runtime unit installed".into(),
                    };
                    r.unit = Some(c.to_string());
                    break;
                }
            }
        }
    }
    if r.unit.is_none() {
        r.unit_from = "unknown: no process listening on the socket is visible from here and no well-known runtime unit is installed".into();
    }
    let unit = match &r.unit {
        Some(u) => Some(UnitObservation {
            required: u.clone(),
            name: u.clone(),
            state: Probe::from_result(sd.unit_state(u).await),
        }),
        None => None,
    };
    (r, unit)
}

/// The PID listening on unix socket `sock` (a node path) and the systemd
/// unit its cgroup names: /proc/net/unix gives the listening socket's
/// inode, /proc/PID/fd the process holding it. `None` when no process
/// listens on it, or the holder is PID 1 (socket activation) or not in a
/// unit.
fn socket_listener(proc: &Path, host: &HostRoot, sock: &str) -> Option<(u32, String)> {
    let want = host.resolve(sock).ok()?;
    let table = std::fs::read_to_string(proc.join("net/unix")).ok()?;
    // Num RefCount Protocol Flags Type St Inode Path; Flags 00010000:
    // listening.
    let inodes: Vec<String> = table
        .lines()
        .skip(1)
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            let path = f.get(7)?;
            let listening = f.get(3)? == &"00010000";
            let same = host.resolve(path).ok().is_some_and(|p| p == want);
            (listening && same).then(|| format!("socket:[{}]", f[6]))
        })
        .collect();
    // A listener bound to a temporary name and renamed into place keeps
    // that name in /proc/net/unix: the kernel's sock_diag ties it to the
    // file itself.
    let mut inodes = inodes;
    if let Ok(m) = std::fs::metadata(&want) {
        use std::os::unix::fs::MetadataExt;
        if let Ok(found) = crate::unixdiag::listeners_bound_to(m.dev(), m.ino()) {
            inodes.extend(found.into_iter().map(|i| format!("socket:[{i}]")));
        }
    }
    inodes.sort();
    inodes.dedup();
    if inodes.is_empty() {
        return None;
    }
    for e in std::fs::read_dir(proc).ok()?.flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(fds) = std::fs::read_dir(e.path().join("fd")) else {
            continue;
        };
        let holds = fds.flatten().any(|fd| {
            std::fs::read_link(fd.path())
                .is_ok_and(|t| inodes.iter().any(|i| t.as_os_str() == i.as_str()))
        });
        // The same path in another root (the host's own runtime, seen while
        // checking a container's root) is another socket.
        use std::os::unix::fs::MetadataExt;
        let same_root = match (
            std::fs::metadata(e.path().join("root")),
            std::fs::metadata(host.root()),
        ) {
            (Ok(a), Ok(b)) => a.dev() == b.dev() && a.ino() == b.ino(),
            _ => false,
        };
        if holds {
            tracing::debug!(pid, same_root, "holds the runtime socket");
        }
        if !holds || !same_root {
            continue;
        }
        // PID 1 (socket activation: init.scope) or a process outside any
        // service: not the runtime's unit; another holder may be.
        let Ok(cgroup) = std::fs::read_to_string(e.path().join("cgroup")) else {
            continue;
        };
        let unit = cgroup
            .lines()
            .filter_map(|l| l.rsplit(':').next())
            .filter_map(|p| p.rsplit('/').next())
            .find(|u| u.ends_with(".service"));
        if let Some(unit) = unit {
            return Some((pid, unit.to_string()));
        }
    }
    None
}

/// kubelet's client certificate and CA, from the kubeconfig its
/// `--kubeconfig` names (read under the host root, its file paths too).
/// `None` when kubelet has no `--kubeconfig`, the file does not exist (the
/// node has not joined), or its user authenticates without a certificate.
fn observe_kubelet_cert(
    host: &HostRoot,
    creds: &kubelet::Credentials,
) -> Option<crate::observation::KubeletCertObservation> {
    use crate::readiness::cert;
    use crate::report::identity;
    let path = std::path::PathBuf::from(&creds.kubeconfig);
    // Refused even a look (a folder on the way this process may not
    // search): not "absent", but denied, said below when it is opened.
    let exists = host
        .resolve(&path)
        .map(|p| seen_or_denied(&p))
        .unwrap_or_else(|e| e.kind() == std::io::ErrorKind::PermissionDenied);
    if !exists {
        return None;
    }
    let mut out = crate::observation::KubeletCertObservation {
        kubeconfig: creds.kubeconfig.clone(),
        cert_from: creds.kubeconfig.clone(),
        cert: Probe::Failed(String::new()),
        ca: None,
        ca_from: None,
        rotate_certificates: creds.rotate_certificates,
        rotate_certificates_from: creds.rotate_certificates_from.clone(),
        bootstrap_kubeconfig: creds
            .bootstrap_kubeconfig
            .clone()
            .filter(|b| host.resolve(b).is_ok_and(|p| p.exists())),
        checked_at: jiff::Timestamp::now(),
        denied: None,
    };
    // A file this process may not open: nothing is judged (see `denied`).
    macro_rules! unless_denied {
        ($real:expr, $shown:expr) => {
            if let Some(d) = read_denied($real, $shown) {
                out.denied = Some(d);
                return Some(out);
            }
        };
    }
    unless_denied!(
        &host.resolve(&path).unwrap_or_else(|_| host.path(&path)),
        &creds.kubeconfig
    );
    // With rotation on, kubelet's certificate store takes
    // CERT_DIR/kubelet-client-current.pem before the kubeconfig's.
    let current = format!(
        "{}/kubelet-client-current.pem",
        creds.cert_dir.trim_end_matches('/')
    );
    let current_path = host
        .resolve(&current)
        .unwrap_or_else(|_| host.path(&current));
    let from_store = creds.rotate_certificates && seen_or_denied(&current_path);
    if from_store {
        unless_denied!(&current_path, &current);
        out.cert_from = current.clone();
        out.cert = Probe::from_result(
            std::fs::read(&current_path)
                .map_err(|e| format!("{current}: {e}"))
                .and_then(|b| cert::first_certificate(&b).map_err(|e| format!("{current}: {e}")))
                .map_err(anyhow::Error::msg),
        );
    }
    let kc = match identity::load(&identity::Source::Kubelet(path), host) {
        Ok(Some(kc)) => kc,
        Ok(None) => return None,
        Err(e) => {
            out.cert = Probe::Failed(e);
            return Some(out);
        }
    };
    let ctx = kc
        .current_context
        .as_deref()
        .and_then(|c| kc.contexts.iter().find(|x| x.name == c))
        .and_then(|c| c.context.clone());
    let Some(ctx) = ctx else {
        out.cert = Probe::Failed(format!(
            "{}: no current context: kubelet cannot use it",
            creds.kubeconfig
        ));
        return Some(out);
    };
    let auth = ctx
        .user
        .as_deref()
        .and_then(|u| kc.auth_infos.iter().find(|a| a.name == u))
        .and_then(|a| a.auth_info.clone())?;
    let shown = |p: &str| {
        std::path::Path::new(p)
            .strip_prefix(host.root())
            .map(|r| format!("/{}", r.display()))
            .unwrap_or_else(|_| p.to_string())
    };
    // Decoded as for the kubeconfig's identity (report::identity).
    let b64 = |s: &str| identity::base64_standard(s).ok_or_else(|| "not base64".to_string());
    let pem: Result<Vec<u8>, String> =
        match (&auth.client_certificate_data, &auth.client_certificate) {
            _ if from_store => Ok(Vec::new()),
            (Some(d), _) => {
                out.cert_from = format!("client-certificate-data in {}", creds.kubeconfig);
                b64(d)
            }
            (None, Some(p)) => {
                out.cert_from = shown(p);
                unless_denied!(Path::new(p), &shown(p));
                std::fs::read(p).map_err(|e| format!("{}: {e}", shown(p)))
            }
            // A token or an exec plugin: no certificate to expire.
            (None, None) => return None,
        };
    if !from_store {
        out.cert = Probe::from_result(
            pem.and_then(|b| {
                cert::first_certificate(&b).map_err(|e| format!("{}: {e}", out.cert_from))
            })
            .map_err(anyhow::Error::msg),
        );
    }
    let cluster = ctx.cluster.as_str().to_string();
    let cl = kc
        .clusters
        .iter()
        .find(|c| c.name == cluster)
        .and_then(|c| c.cluster.clone());
    if let Some(cl) = cl {
        let ca = match (&cl.certificate_authority_data, &cl.certificate_authority) {
            (Some(d), _) => {
                out.ca_from = Some(format!(
                    "certificate-authority-data in {}",
                    creds.kubeconfig
                ));
                Some(b64(d))
            }
            (None, Some(p)) => {
                out.ca_from = Some(shown(p));
                unless_denied!(Path::new(p), &shown(p));
                Some(std::fs::read(p).map_err(|e| format!("{}: {e}", shown(p))))
            }
            (None, None) => None,
        };
        out.ca = ca.map(|r| {
            Probe::from_result(
                r.and_then(|b| cert::ca_bundle(&b))
                    .map_err(anyhow::Error::msg),
            )
        });
    }
    Some(out)
}

/// `real` exists, or this process may not tell (EACCES on the way):
/// `Path::exists` says false for both, which would take a refusal for an
/// absence.
fn seen_or_denied(real: &Path) -> bool {
    match std::fs::metadata(real) {
        Ok(_) => true,
        Err(e) => e.kind() == std::io::ErrorKind::PermissionDenied,
    }
}

/// `real` (node path `shown`) refused to this process: opening it fails
/// with EACCES or EPERM. Any other outcome is for the reader to say.
fn read_denied(real: &Path, shown: &str) -> Option<crate::observation::ReadDenied> {
    match std::fs::File::open(real) {
        Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => {
            Some(crate::observation::ReadDenied {
                path: shown.to_string(),
                // SAFETY: geteuid has no preconditions.
                uid: unsafe { libc::geteuid() },
            })
        }
        _ => None,
    }
}

/// The required modules and sysctls: the kernel now (this process's /proc,
/// beside `src.proc_swaps`: the host's kernel; sysctls of this process's
/// network namespace), and what the node's files make of the next boot.
pub fn observe_kernel(src: &Sources, cfg: &Config, skip: Option<String>) -> KernelObservation {
    use crate::readiness::{modules, sysctl};
    let mut out = KernelObservation {
        skipped: skip,
        ..Default::default()
    };
    if out.skipped.is_some() {
        return out;
    }
    let proc = src.proc_swaps.parent().unwrap_or(Path::new("/proc"));
    let cmdline = std::fs::read(src.proc_cmdline())
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .map_err(|e| format!("reading {}: {e}", src.proc_cmdline().display()));
    // A file that may be missing: Ok(None); any other failure is said.
    let optional = |p: &Path| match std::fs::read_to_string(p) {
        Ok(t) => Ok(Some(t)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(format!("reading {}: {e}", p.display())),
    };
    if !cfg.readiness.modules.is_empty() {
        out.ours_masked.modules = masked(&src.host, modules::OURS);
        // No /proc/modules: a kernel without module support, everything
        // it has is built in.
        let loaded = optional(&proc.join("modules")).map(|t| t.map(|t| modules::proc_modules(&t)));
        let release = optional(&proc.join("sys/kernel/osrelease")).and_then(|r| {
            r.map(|r| r.trim().to_string())
                .ok_or_else(|| "no /proc/sys/kernel/osrelease".to_string())
        });
        let node_file = |name: &str| -> Result<Option<String>, String> {
            let r = release.clone()?;
            read_optional(&src.host, &format!("/lib/modules/{r}/{name}"))
                .map_err(|e| format!("{e:#}"))
        };
        let builtin = node_file("modules.builtin");
        let dep = node_file("modules.dep");
        let files = conf_files(&src.host, &modules::MODULES_LOAD_DIRS);
        let initrd = systemd_initrd(&src.host);
        let filesystems = optional(&proc.join("filesystems"));
        for name in &cfg.readiness.modules {
            let canon = modules::canonical(name);
            let now = (|| -> Result<modules::ModuleNow, String> {
                let loaded = loaded.clone()?;
                if loaded.as_ref().is_some_and(|l| l.contains(&canon)) {
                    return Ok(modules::ModuleNow::Loaded);
                }
                // Built in: listed in modules.builtin, or what it provides
                // is there without it being loaded.
                let provides = match canon.as_str() {
                    "overlay" => filesystems
                        .clone()?
                        .unwrap_or_default()
                        .lines()
                        .any(|l| l.split_whitespace().last() == Some("overlay")),
                    "br_netfilter" => proc.join("sys/net/bridge").is_dir(),
                    _ => false,
                };
                let in_builtin = match &builtin {
                    Ok(b) => b
                        .as_deref()
                        .unwrap_or_default()
                        .lines()
                        .any(|l| modules::installed(&format!("{l}:"), &canon)),
                    // Without module support there is no modules.builtin
                    // to need.
                    Err(_) if loaded.is_none() => false,
                    Err(e) => return Err(e.clone()),
                };
                Ok(
                    if provides || in_builtin || Path::new("/sys/module").join(&canon).is_dir() {
                        modules::ModuleNow::BuiltIn
                    } else {
                        modules::ModuleNow::Absent
                    },
                )
            })();
            let at_boot = (|| -> Result<modules::ModuleBoot, String> {
                let n = now.clone()?;
                let f = files.as_ref().map_err(Clone::clone)?;
                let c = cmdline.as_ref().map_err(Clone::clone)?;
                let d = if modules::loaded_on_use(name) && n != modules::ModuleNow::BuiltIn {
                    dep.clone()?
                } else {
                    None
                };
                let b = modules::boot(name, n, f, c, d.as_deref(), initrd == Some(true));
                // Named only by rd.modules_load= and the initrd's kind not
                // known: whether it loads is not known either.
                if !b.loads()
                    && initrd.is_none()
                    && modules::cmdline_modules(c, true).contains(&canon)
                {
                    return Err(format!(
                        "{name} is named by rd.modules_load= on the kernel command line, which only a systemd initrd reads; which initrd generator this node uses (dracut, initramfs-tools, mkinitcpio) is not known"
                    ));
                }
                Ok(b)
            })();
            out.modules.push(ModuleObservation {
                name: name.clone(),
                now: Probe::from_result(now.map_err(anyhow::Error::msg)),
                at_boot: Probe::from_result(at_boot.map_err(anyhow::Error::msg)),
            });
        }
    }
    if !cfg.readiness.sysctls.is_empty() {
        out.ours_masked.sysctls = masked(&src.host, sysctl::OURS);
        let files = conf_files(&src.host, &sysctl::SYSCTL_DIRS);
        for (key, want) in &cfg.readiness.sysctls {
            let p = proc.join(sysctl::proc_path(key).trim_start_matches("/proc/"));
            let now = match std::fs::read_to_string(&p) {
                Ok(v) => Probe::Ok(Some(v.trim().to_string())),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Probe::Ok(None),
                Err(e) => Probe::Failed(format!("reading {}: {e}", p.display())),
            };
            let at_boot = match (&files, &cmdline) {
                (Err(e), _) | (_, Err(e)) => Probe::Failed(e.clone()),
                (Ok(f), Ok(c)) => Probe::Ok(sysctl::boot_value(key, f, c)),
            };
            out.sysctls.push(SysctlObservation {
                key: key.clone(),
                want: want.clone(),
                now,
                at_boot,
            });
        }
    }
    out
}

/// taint-guard's own file is a link (to /dev/null: a person masked it):
/// never written through.
fn masked(host: &HostRoot, node_path: &str) -> bool {
    std::fs::symlink_metadata(host.path(node_path)).is_ok_and(|m| !m.is_file())
}

/// The `*.conf` files systemd-sysctl / systemd-modules-load run from
/// `dirs` (highest precedence first), in order, with their bytes; a link to
/// /dev/null masks its name.
fn conf_files(
    host: &HostRoot,
    dirs: &[&str],
) -> std::result::Result<Vec<crate::readiness::sysctl::ConfFile>, String> {
    use crate::readiness::sysctl::{effective_files, ConfFile};
    let mut found = Vec::new();
    for dir in dirs {
        let entries = match NodeFiles::list_dir(host, dir) {
            Ok(Some(e)) => e,
            Ok(None) => continue,
            Err(e) => return Err(format!("listing {dir}: {e}")),
        };
        for e in entries
            .into_iter()
            .filter(|e| e.name.ends_with(".conf") && !e.name.starts_with('.') && !e.is_dir)
        {
            let path = format!("{dir}/{}", e.name);
            let masked =
                std::fs::read_link(host.path(&path)).is_ok_and(|t| t == Path::new("/dev/null"));
            let bytes = if masked {
                None
            } else {
                match NodeFiles::read(host, &path) {
                    Ok(b) => Some(b.unwrap_or_default()),
                    Err(e) => return Err(format!("reading {path}: {e}")),
                }
            };
            found.push(ConfFile { path, bytes });
        }
    }
    Ok(effective_files(found))
}

/// Why systemd cannot run the unit's ExecStart program at its next start
/// (status 203/EXEC): it does not exist on the node now, is not a file, or
/// no one may execute it. `None` when it can run, or when this process may
/// not look (that is unknown, not the node's fault).
fn exec_refused(spec: &kubelet::ServiceSpec, host: &HostRoot) -> Option<String> {
    use std::os::unix::fs::PermissionsExt;
    let path = spec.exec_path.as_str();
    if !path.starts_with('/') {
        return None;
    }
    let p = host.resolve(path).unwrap_or_else(|_| host.path(path));
    match std::fs::metadata(&p) {
        Ok(m) if !m.is_file() => Some(format!(
            "ExecStart program {path} is not a file: systemd cannot run it (status 203/EXEC)"
        )),
        Ok(m) if m.permissions().mode() & 0o111 == 0 => Some(format!(
            "ExecStart program {path} is not executable (mode {:o}): systemd cannot run it (status 203/EXEC)",
            m.permissions().mode() & 0o7777
        )),
        Ok(_) => None,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Some(format!(
            "ExecStart program {path} does not exist: systemd cannot run it (status 203/EXEC)"
        )),
        Err(_) => None,
    }
}

/// What on disk turns each active swap on at boot: an fstab line or a
/// swap unit naming the same device or file (paths resolved under the
/// host root, so `UUID=…`, `/dev/mapper/…` and `/dev/dm-1` meet).
fn swap_origins(
    host: &HostRoot,
    now: &Probe<swap::SwapNow>,
    fstab: &Probe<FstabSwap>,
    units: &Probe<Vec<SwapUnit>>,
) -> std::collections::BTreeMap<String, Option<String>> {
    let (Probe::Ok(now), Probe::Ok(fstab), Probe::Ok(units)) = (now, fstab, units) else {
        return Default::default();
    };
    let real = |p: &str| host.resolve(p).ok();
    let mut known: Vec<(std::path::PathBuf, String)> = Vec::new();
    for e in fstab.entries.iter().chain(&fstab.not_at_boot) {
        if let Some(r) = real(&e.device) {
            known.push((r, format!("{}:{}", fstab.path, e.line)));
        }
    }
    for u in units {
        if let Some(r) = u.what.as_deref().and_then(real) {
            known.push((r, u.name.clone()));
        }
    }
    now.devices
        .iter()
        .filter(|d| !d.device.ends_with(" (deleted)"))
        .map(|d| {
            let origin = real(&d.device)
                .and_then(|r| known.iter().find(|(k, _)| *k == r).map(|(_, o)| o.clone()));
            (d.device.clone(), origin)
        })
        .collect()
}

/// Whether the node's initrd runs systemd (and so its
/// systemd-modules-load reads `rd.modules_load=`): dracut builds one when
/// systemd is installed, mkinitcpio with its `systemd` hook; Debian's and
/// Ubuntu's initramfs-tools never. `None` when no generator is recognised.
fn systemd_initrd(host: &HostRoot) -> Option<bool> {
    let exists = |p: &str| host.resolve(p).is_ok_and(|p| p.exists());
    if exists("/usr/lib/dracut/modules.d") || exists("/usr/bin/dracut") {
        return Some(true);
    }
    if exists("/usr/sbin/mkinitramfs") || exists("/etc/initramfs-tools/initramfs.conf") {
        return Some(false);
    }
    if let Ok(Some(conf)) = read_optional(host, "/etc/mkinitcpio.conf") {
        return Some(
            conf.lines()
                .rev()
                .find(|l| l.trim_start().starts_with("HOOKS="))
                .is_some_and(|l| {
                    l.split(|c: char| !c.is_alphanumeric() && c != '-')
                        .any(|w| w == "systemd")
                }),
        );
    }
    None
}

/// The unit files that survive a reboot, loaded once per observation for
/// every question of what starts at boot. The kernel command line's
/// `systemd.unit=` is this boot's, and not the node's own in a container
/// (systemd there reads PID 1's arguments).
struct BootFiles<'a> {
    src: &'a Sources,
    cmdline: (Option<String>, Vec<String>),
    persistent: crate::systemd::bootgraph::BootGraph,
    /// With what lives only under /run too: what systemd loads now.
    everything: Option<crate::systemd::bootgraph::BootGraph>,
}

impl<'a> BootFiles<'a> {
    fn load(src: &'a Sources, container: Option<&str>) -> Self {
        use crate::systemd::bootgraph::{self, BootGraph};
        let cmdline = match container {
            Some(_) => (None, Vec::new()),
            None => std::fs::read(src.proc_cmdline())
                .map(|c| bootgraph::cmdline_units(&fstab::cmdline_words(&c)))
                .unwrap_or_default(),
        };
        let persistent = BootGraph::load(&src.host, true, cmdline.clone());
        BootFiles {
            src,
            cmdline,
            persistent,
            everything: None,
        }
    }

    /// The unit's drop-ins on disk now, as a daemon-reload would load them.
    fn dropins(&mut self, unit: &str) -> Vec<String> {
        let (host, cmdline) = (&self.src.host, self.cmdline.clone());
        self.everything
            .get_or_insert_with(|| crate::systemd::bootgraph::BootGraph::load(host, false, cmdline))
            .dropin_paths(unit)
    }

    fn at_boot(&mut self, unit: &str) -> crate::systemd::types::AtBoot {
        use crate::systemd::bootgraph::{self, BootGraph};
        let (host, cmdline) = (&self.src.host, self.cmdline.clone());
        bootgraph::at_boot(
            &mut self.persistent,
            || BootGraph::load(host, false, cmdline),
            unit,
        )
    }

    fn starts(&mut self, unit: &str) -> bool {
        use crate::systemd::types::AtBoot;
        matches!(
            self.at_boot(unit),
            AtBoot::Pulled { .. } | AtBoot::StartedBy { .. }
        )
    }
}

/// Whether each loaded unit starts at the next boot, from the unit files
/// that survive a reboot ([`crate::systemd::bootgraph`]).
fn at_boot(units: &mut [UnitObservation], boot: &mut BootFiles) {
    for u in units.iter_mut() {
        let name = u.name.clone();
        if let Probe::Ok(s) = &mut u.state {
            if s.load_state == crate::systemd::types::LoadState::Loaded {
                s.at_boot = Some(boot.at_boot(&name));
                // systemd 252's NeedDaemonReload misses a drop-in folder
                // made since the load: a drop-in on disk that systemd has
                // not loaded says so too. (Only that way round: a path
                // systemd lists and this reading does not is not taken as
                // a change.)
                if let Some(spec) = &s.service {
                    if boot
                        .dropins(&name)
                        .iter()
                        .any(|p| !spec.drop_in_paths.contains(p))
                    {
                        s.need_daemon_reload = true;
                    }
                }
            }
        }
    }
}

/// What sets modules and sysctls again by itself, or makes them unneeded
/// ([`crate::readiness::platform`]): the CNI config the runtime uses (the
/// first file of /etc/cni/net.d by name), dockerd, ufw.
fn platform(src: &Sources, boot: &mut BootFiles) -> crate::readiness::platform::Platform {
    use crate::readiness::platform::{self, Cni, Platform};
    let host = &src.host;
    let mut p = Platform::default();
    let dir = "/etc/cni/net.d";
    if let Ok(rd) = std::fs::read_dir(host.resolve(dir).unwrap_or_else(|_| host.path(dir))) {
        let mut names: Vec<String> = rd
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(".conf") || n.ends_with(".conflist") || n.ends_with(".json"))
            .collect();
        names.sort();
        p.cni = names.into_iter().find_map(|n| {
            let file = format!("{dir}/{n}");
            let text = read_optional(host, &file).ok().flatten()?;
            platform::cni_types(&text).map(|types| Cni { file, types })
        });
    }
    if boot.starts("docker.service") {
        let daemon = read_optional(host, "/etc/docker/daemon.json")
            .ok()
            .flatten();
        p.docker_forwards = platform::docker_forwards(daemon.as_deref());
    }
    if boot.starts("ufw.service") {
        let enabled = read_optional(host, "/etc/ufw/ufw.conf")
            .ok()
            .flatten()
            .is_some_and(|t| {
                t.lines()
                    .any(|l| l.trim().replace('"', "") == "ENABLED=yes")
            });
        // /etc/default/ufw's IPT_SYSCTL names the file (this default).
        let file = read_optional(host, "/etc/default/ufw")
            .ok()
            .flatten()
            .and_then(|t| {
                t.lines()
                    .rev()
                    .find_map(|l| l.trim().strip_prefix("IPT_SYSCTL="))
                    .map(|v| v.trim_matches('"').to_string())
            })
            .unwrap_or_else(|| "/etc/ufw/sysctl.conf".into());
        if enabled
            && read_optional(host, &file)
                .ok()
                .flatten()
                .is_some_and(|t| platform::ufw_sets_forward(&t))
        {
            p.ufw_forwards = Some(file);
        }
    }
    p
}

async fn observe_unit<S: UnitManager>(
    systemd: Result<&S, &str>,
    required: &str,
    cfg: &Config,
) -> UnitObservation {
    let sd = match systemd {
        Ok(sd) => sd,
        Err(e) => {
            return UnitObservation {
                required: required.into(),
                name: required.into(),
                state: Probe::Failed(e.to_string()),
            }
        }
    };
    let state = Probe::from_result(sd.unit_state(required).await);
    let missing = matches!(&state, Probe::Ok(s) if s.load_state == crate::systemd::types::LoadState::NotFound);
    if missing && required == KUBELET_UNIT {
        for alt in &cfg.kubelet_alternatives {
            if let Ok(s) = sd.unit_state(alt).await {
                if s.load_state != crate::systemd::types::LoadState::NotFound {
                    return UnitObservation {
                        required: required.into(),
                        name: alt.clone(),
                        state: Probe::Ok(s),
                    };
                }
            }
        }
    }
    UnitObservation {
        required: required.into(),
        name: required.into(),
        state,
    }
}

fn policy_for(unit: &str, spec: Option<&kubelet::ServiceSpec>, host: &HostRoot) -> KubeletPolicy {
    match spec {
        Some(spec) => match exec_refused(spec, host) {
            // The program itself is gone: whatever the flags say, the next
            // start fails (a running kubelet keeps its deleted binary).
            Some(why) => KubeletPolicy::Unknown(kubelet::UnknownPolicy {
                reason: why.clone(),
                flavour: None,
                sources: Vec::new(),
                kubelet_refuses: Some(why),
                not_joined: false,
            }),
            None => kubelet::swap_policy(spec, host),
        },
        None => KubeletPolicy::unknown(format!(
            "{unit} is not a loaded service: its ExecStart could not be read"
        )),
    }
}

/// The process systemd runs for `unit`, from this machine's /proc (beside
/// `src.proc_swaps`), and which of the files its command line is made of
/// changed since it started; or why it cannot be compared. A PID is taken
/// as the unit's only when /proc shows it in the unit's cgroup, started
/// when systemd says the main process started: from a pod without the
/// host's PID namespace, or another PID namespace, the same number is
/// another process.
fn running_kubelet(
    unit: &str,
    state: &crate::observation::UnitState,
    spec: &kubelet::ServiceSpec,
    policy: &kubelet::SwapPolicy,
    src: &Sources,
) -> std::result::Result<kubelet::running::RunningKubelet, String> {
    let pid = spec.main_pid;
    if pid == 0 || state.active_state != crate::systemd::types::ActiveState::Active {
        return Err(format!("{unit} is not running"));
    }
    let proc = src.proc_swaps.parent().unwrap_or(Path::new("/proc"));
    let dir = proc.join(pid.to_string());
    let not_visible = || format!("{unit}'s main process (PID {pid}) is not visible here");
    let cgroup = std::fs::read_to_string(dir.join("cgroup")).map_err(|_| not_visible())?;
    if !cgroup.lines().any(|l| {
        l.rsplit(':')
            .next()
            .unwrap_or("")
            .ends_with(&format!("/{unit}"))
    }) {
        return Err(not_visible());
    }
    let stat = std::fs::read_to_string(dir.join("stat")).map_err(|_| not_visible())?;
    // Field 22, starttime, in clock ticks since boot: after the `(comm)`,
    // which may hold spaces and parentheses, it is the 20th.
    let ticks: u64 = stat
        .rsplit_once(')')
        .and_then(|(_, rest)| rest.split_whitespace().nth(19))
        .and_then(|t| t.parse().ok())
        .ok_or_else(|| format!("{}: no start time", dir.join("stat").display()))?;
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
    let started_usec = ticks.saturating_mul(1_000_000) / hz;
    if started_usec.abs_diff(spec.exec_main_start_monotonic_usec) > 2_000_000 {
        return Err(not_visible());
    }
    let cmdline = std::fs::read(dir.join("cmdline")).map_err(|_| not_visible())?;
    let mut cmdline: Vec<String> = cmdline
        .split(|b| *b == 0)
        .map(|a| String::from_utf8_lossy(a).into_owned())
        .collect();
    if cmdline.last().is_some_and(String::is_empty) {
        cmdline.pop();
    }
    // What the command line is made of: the unit's files (what systemd
    // loaded) and its environment files (read at each start).
    let files = std::iter::once(&state.fragment_path)
        .chain(&spec.drop_in_paths)
        .chain(
            policy
                .sources
                .iter()
                .filter(|s| {
                    s.role.starts_with("EnvironmentFile") && s.state == kubelet::SourceState::Read
                })
                .map(|s| &s.path),
        )
        .filter(|p| !p.is_empty());
    let mut changed = Vec::new();
    for f in files {
        let modified = src
            .host
            .resolve(f)
            .and_then(std::fs::metadata)
            .and_then(|m| m.modified());
        let after = match modified {
            Ok(t) => t
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(true, |d| d.as_micros() as u64 > spec.exec_main_start_usec),
            // Gone since: changed.
            Err(_) => true,
        };
        if after && !changed.contains(f) {
            changed.push(f.clone());
        }
    }
    Ok(kubelet::running::RunningKubelet {
        pid,
        cmdline,
        changed_since_start: changed,
    })
}

/// kubelet's and systemd's files, read under the host root (symlinks
/// resolved inside it).
impl NodeFiles for HostRoot {
    fn read(&self, node_path: &str) -> std::io::Result<Option<Vec<u8>>> {
        let p = self.resolve(node_path)?;
        match std::fs::read(&p) {
            Ok(b) => Ok(Some(b)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            // A path through a regular file: no such file, as for glob(3).
            Err(e) if e.raw_os_error() == Some(libc::ENOTDIR) => Ok(None),
            Err(e) => Err(e),
        }
    }

    fn list_dir(&self, node_path: &str) -> std::io::Result<Option<Vec<DirEntry>>> {
        let p = self.resolve(node_path)?;
        let rd = match std::fs::read_dir(&p) {
            Ok(rd) => rd,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        };
        let mut out = Vec::new();
        for e in rd {
            let e = e?;
            out.push(DirEntry {
                name: e.file_name().to_string_lossy().into_owned(),
                is_dir: e.file_type()?.is_dir(),
            });
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(Some(out))
    }
}

/// Read a node file; `Ok(None)` when it does not exist.
pub fn read_optional(host: &HostRoot, node_path: &str) -> Result<Option<String>> {
    let p = host
        .resolve(node_path)
        .with_context(|| format!("resolving {node_path} under {}", host.root().display()))?;
    match std::fs::read_to_string(&p) {
        Ok(s) => Ok(Some(s)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).with_context(|| format!("reading {}", p.display())),
    }
}

/// fstab's swap lines as systemd will read them at boot. The kernel command
/// line (`systemd.swap=`, `fstab=`) is read from `cmdline`, this kernel's
/// (`/proc/cmdline`, the host's in a pod too), after the SystemdOptions EFI
/// variable as PID 1 cached it on the node. In a container (`container`,
/// systemd's id) the generator ignores every swap line.
fn read_fstab(host: &HostRoot, cmdline: &Path, container: Option<&str>) -> Result<FstabSwap> {
    let cmd = std::fs::read(cmdline).with_context(|| format!("reading {}", cmdline.display()))?;
    let efi = read_optional_bytes(host, fstab::EFI_OPTIONS_CACHE)?;
    let switch = fstab::swap_disabled_by_cmdline(efi.as_deref(), &cmd);
    let bytes = read_optional_bytes(host, FSTAB)?.unwrap_or_default();
    let lines = fstab::swap_lines(&bytes, switch.as_deref(), container)
        .map_err(|e| anyhow::anyhow!("{FSTAB}: {e}"))?;
    let (entries, not_at_boot) = lines
        .into_iter()
        .partition(|e| e.boot == fstab::Boot::Activates);
    Ok(FstabSwap {
        path: FSTAB.into(),
        entries,
        not_at_boot,
        swap_disabled_by_cmdline: switch.is_some(),
        cmdline_switch: switch,
    })
}

/// A node file's bytes; `Ok(None)` when it does not exist.
fn read_optional_bytes(host: &HostRoot, node_path: &str) -> Result<Option<Vec<u8>>> {
    let p = host
        .resolve(node_path)
        .with_context(|| format!("resolving {node_path} under {}", host.root().display()))?;
    match std::fs::read(&p) {
        Ok(b) => Ok(Some(b)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).with_context(|| format!("reading {}", p.display())),
    }
}

async fn swap_units<S: UnitManager>(sd: &S, host: &HostRoot) -> Result<Vec<SwapUnit>> {
    let mut out = Vec::new();
    for (path, state) in sd.boot_swap_unit_files().await? {
        let name = Path::new(&path)
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| path.clone());
        let file = read_optional(host, &path).ok().flatten();
        let what = file.as_deref().and_then(swap::unit_what);
        let source_path = file.as_deref().and_then(swap::unit_source_path);
        out.push(SwapUnit {
            name,
            path,
            state,
            what,
            source_path,
        });
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::observation::UnitState;
    use crate::systemd::JobMode;
    use std::time::Duration;

    /// A systemd with no unit installed.
    struct NoUnits;

    impl UnitManager for NoUnits {
        async fn unit_state(&self, _: &str) -> Result<UnitState> {
            Ok(UnitState {
                load_state: "not-found".into(),
                ..Default::default()
            })
        }
        async fn boot_swap_unit_files(&self) -> Result<Vec<(String, String)>> {
            Ok(vec![])
        }
        async fn virtualization(&self) -> Result<String> {
            Ok(String::new())
        }
        async fn enable(&self, _: &str) -> Result<()> {
            Ok(())
        }
        async fn disable(&self, _: &str) -> Result<()> {
            Ok(())
        }
        async fn mask(&self, _: &str) -> Result<()> {
            Ok(())
        }
        async fn unmask(&self, _: &str) -> Result<()> {
            Ok(())
        }
        async fn reload(&self) -> Result<()> {
            Ok(())
        }
        async fn reset_failed(&self, _: &str) -> Result<()> {
            Ok(())
        }
        async fn start(&self, _: &str, _: JobMode, _: Duration) -> Result<String> {
            Ok("done".into())
        }
        async fn queue_start(&self, _: &str, _: JobMode) -> Result<()> {
            Ok(())
        }
    }

    /// A runtime that listens but never accepts, its backlog full: the
    /// observation returns (unknown), never blocks the check. A blocking
    /// connect(2) here waits until someone accepts.
    #[test]
    fn a_runtime_that_never_accepts_does_not_hang_the_check() {
        let dir = tempfile::tempdir().unwrap();
        let sock = dir.path().join("run/hung.sock");
        std::fs::create_dir_all(sock.parent().unwrap()).unwrap();
        let c_path = std::ffi::CString::new(sock.to_str().unwrap()).unwrap();
        // SAFETY: plain socket(2)/bind(2)/listen(2)/connect(2) on a
        // sockaddr_un built here; the fds live until the process ends.
        unsafe {
            let mut addr: libc::sockaddr_un = std::mem::zeroed();
            addr.sun_family = libc::AF_UNIX as libc::sa_family_t;
            for (i, b) in c_path.as_bytes().iter().enumerate() {
                addr.sun_path[i] = *b as libc::c_char;
            }
            let len = std::mem::size_of::<libc::sockaddr_un>() as libc::socklen_t;
            let addr = &addr as *const _ as *const libc::sockaddr;
            let fd = libc::socket(libc::AF_UNIX, libc::SOCK_STREAM, 0);
            assert!(fd >= 0);
            assert_eq!(libc::bind(fd, addr, len), 0);
            assert_eq!(libc::listen(fd, 0), 0);
            // Fill the backlog: non-blocking connects until one is refused
            // for want of room.
            let mut filled = false;
            for _ in 0..64 {
                let c = libc::socket(libc::AF_UNIX, libc::SOCK_STREAM | libc::SOCK_NONBLOCK, 0);
                if libc::connect(c, addr, len) != 0 {
                    filled = true;
                    break;
                }
            }
            assert!(filled, "the backlog never filled");
        }
        let src = Sources {
            host: HostRoot::new(dir.path()),
            proc_swaps: dir.path().join("proc/swaps"),
            cgroup_root: dir.path().join("cgroup"),
            assume_virtualization: None,
        };
        let endpoint = ("unix:///run/hung.sock".to_string(), "test".to_string());
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let (r, _) = rt
            .block_on(async {
                tokio::time::timeout(
                    Duration::from_secs(30),
                    observe_runtime(&NoUnits, &src, Some(&endpoint)),
                )
                .await
            })
            .expect("the runtime observation hung");
        assert!(
            matches!(r.answers, Some(Probe::Failed(_))),
            "{:?}",
            r.answers
        );
    }
}
