//! The container image and the DaemonSet's pod, run for real: the image that
//! packaging/image/build.sh builds from packaging/Containerfile (its
//! `prebuilt` stage: no image registry is reachable here), started by podman
//! with runc (the low-level runtime containerd and CRI-O use) from exactly the
//! rendered DaemonSet's pod spec — args, env (NODE_NAME from the downward
//! API), securityContext (user, capabilities, read-only root filesystem, no
//! privilege escalation, seccomp), memory limit, termination grace and
//! volumes — with the hostPath volumes taken from a real-systemd node
//! (harness/mod.rs: its rootfs is the host's `/`, its bus directory the
//! host's /run/dbus), the ServiceAccount token from the real API server's
//! TokenRequest (harness/kube.rs) where kubelet would project it, and
//! KUBERNETES_SERVICE_HOST/PORT pointing at that server.
//!
//! Not modelled: the pod's network namespace (the API server listens on this
//! machine's loopback, so the container shares the host's network; the
//! probe's target is checked in tests/manifests.rs), scheduling fields
//! (priority class, tolerations). A pod-spec field the translation does not
//! know fails the test, so it cannot silently drop a new one.
//!
//! Ignored (shown as such) without root, nspawn, the API server binaries, or
//! podman and runc; with TG_REQUIRE_IMAGE=1 (CI) a missing part fails.

mod harness;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use harness::kube::KubeApi;
use harness::{Kubelet, Node};
use k8s_openapi::api::apps::v1::DaemonSet;
use k8s_openapi::api::core::v1::{ConfigMap, Container, PodSpec};
use serde_json::Value;

const REPO: &str = env!("CARGO_MANIFEST_DIR");
const SA_DIR: &str = "/var/run/secrets/kubernetes.io/serviceaccount";

fn sh(cmd: &mut Command) -> (bool, String, String) {
    let o = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    (
        o.status.success(),
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

fn podman() -> Command {
    // crun 1.8 (Debian 12) refuses hosts with cgroup v1 controllers and a
    // cgroup2 mount beside them ("hybrid"); runc runs there.
    let mut c = Command::new("podman");
    c.args(["--runtime", "runc"]);
    c
}

/// Why the image scenarios cannot run here, if they cannot.
fn missing_tools() -> Option<String> {
    let have = |b: &str| {
        Command::new("sh")
            .arg("-c")
            .arg(format!("command -v {b}"))
            .output()
            .is_ok_and(|o| o.status.success())
    };
    let missing: Vec<&str> = ["podman", "runc", "kubectl"]
        .into_iter()
        .filter(|b| !have(b))
        .collect();
    (!missing.is_empty()).then(|| format!("{} not installed", missing.join(", ")))
}

/// The image, built once per run by packaging/image/build.sh and tagged as
/// the DaemonSet names it (`taint-guard:VERSION`, found locally).
fn image() -> &'static str {
    static IMAGE: OnceLock<Result<String, String>> = OnceLock::new();
    let r = IMAGE.get_or_init(|| {
        let tag = format!("taint-guard:{}", env!("CARGO_PKG_VERSION"));
        // One build of the tag at a time: the image's test processes run
        // side by side, and the second finds cargo's and podman's caches warm.
        let _lock = harness::flock("/tmp/taint-guard-image.lock", libc::LOCK_EX);
        let t = Instant::now();
        let (ok, out, err) = sh(Command::new("bash")
            .arg(Path::new(REPO).join("packaging/image/build.sh"))
            .arg(&tag));
        if !ok {
            return Err(format!("packaging/image/build.sh failed:\n{out}\n{err}"));
        }
        let (_, size, _) = sh(podman().args(["image", "inspect", "-f", "{{.Size}}", &tag]));
        eprintln!(
            "image {tag}: {:.1} MB uncompressed, built in {:.0?}",
            size.trim().parse::<f64>().unwrap_or(0.0) / 1e6,
            t.elapsed()
        );
        Ok(tag)
    });
    r.as_deref().unwrap_or_else(|e| panic!("{e}"))
}

/// The DaemonSet and ConfigMap that `kubectl kustomize DIR` renders.
fn render(rel: &str) -> (DaemonSet, ConfigMap) {
    let (ok, out, err) = sh(Command::new("kubectl")
        .arg("kustomize")
        .arg(Path::new(REPO).join("packaging/kubernetes").join(rel)));
    assert!(ok, "kubectl kustomize {rel}: {err}");
    let docs: Vec<Value> = out
        .split("\n---")
        .filter_map(|d| serde_norway::from_str::<Value>(d).ok())
        .collect();
    let pick = |kind: &str| {
        docs.iter()
            .find(|d| d["kind"] == kind)
            .cloned()
            .unwrap_or_else(|| panic!("no {kind} in {rel}"))
    };
    (
        serde_json::from_value(pick("DaemonSet")).unwrap(),
        serde_json::from_value(pick("ConfigMap")).unwrap(),
    )
}

/// Every key of `v` must be one the translation models.
fn only_known(v: &impl serde::Serialize, known: &[&str], what: &str) {
    let v = serde_json::to_value(v).unwrap();
    for k in v.as_object().into_iter().flat_map(|o| o.keys()) {
        assert!(
            known.contains(&k.as_str()),
            "{what}.{k}: not modelled by tests/image.rs; teach it what kubelet does with it"
        );
    }
}

/// Capability names as the manifest spells them, to their bit.
fn cap_bit(name: &str) -> u32 {
    match name {
        "CHOWN" => 0,
        "DAC_OVERRIDE" => 1,
        "DAC_READ_SEARCH" => 2,
        "FOWNER" => 3,
        "SYS_ADMIN" => 21,
        other => panic!("capability {other}: add its bit here"),
    }
}

/// A pod of the DaemonSet on `node`, as kubelet would start it there.
struct Pod {
    name: String,
    dir: PathBuf,
    /// (path, port) of the liveness and readiness probes.
    liveness: (String, u16),
    readiness: (String, u16),
    /// CapEff the process must have (None: privileged, all of them).
    cap_eff: Option<u64>,
    grace: i64,
}

impl Pod {
    fn start(ds: &DaemonSet, cm: &ConfigMap, node: &Node, node_name: &str, api: &KubeApi) -> Pod {
        let tpl = ds.spec.as_ref().unwrap().template.spec.as_ref().unwrap();
        let pod: &PodSpec = tpl;
        only_known(
            pod,
            &[
                "serviceAccountName",
                "priorityClassName",
                "tolerations",
                "hostPID",
                "hostNetwork",
                "hostIPC",
                "terminationGracePeriodSeconds",
                "containers",
                "volumes",
            ],
            "spec.template.spec",
        );
        assert_eq!(pod.host_pid, Some(false));
        assert_eq!(pod.host_ipc, Some(false));
        assert_eq!(pod.host_network, Some(false));
        assert_eq!(pod.containers.len(), 1);
        let c: &Container = &pod.containers[0];
        only_known(
            c,
            &[
                "name",
                "image",
                "imagePullPolicy",
                "args",
                "env",
                "securityContext",
                "resources",
                "livenessProbe",
                "readinessProbe",
                "ports",
                "volumeMounts",
            ],
            "container",
        );
        let image = image();
        assert_eq!(
            c.image.as_deref(),
            Some(image),
            "the image the DaemonSet runs"
        );

        let name = format!("tg-pod-{}", node.name);
        let dir = node.dir.join("pod");
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let mut a: Vec<String> = vec!["run".into(), "-d".into(), "--pull=never".into()];
        a.push(format!("--name={name}"));
        // The API server is on this machine's loopback: share its network.
        a.push("--network=host".into());
        // Within this sandbox's own limits (podman's defaults exceed them,
        // and runc may only lower them here).
        for (flag, res) in [
            ("nofile", libc::RLIMIT_NOFILE),
            ("nproc", libc::RLIMIT_NPROC),
        ] {
            let mut l = libc::rlimit {
                rlim_cur: 0,
                rlim_max: 0,
            };
            // SAFETY: getrlimit fills the struct we pass.
            assert_eq!(unsafe { libc::getrlimit(res, &mut l) }, 0);
            let n = l.rlim_cur.min(4096);
            a.push(format!("--ulimit={flag}={n}:{n}"));
        }
        let grace = pod.termination_grace_period_seconds.unwrap_or(30);
        a.push(format!("--stop-timeout={grace}"));

        // The ServiceAccount token, where kubelet projects it.
        assert_eq!(pod.service_account_name.as_deref(), Some("taint-guard"));
        let sa = dir.join("serviceaccount");
        std::fs::create_dir_all(&sa).unwrap();
        std::fs::write(sa.join("token"), api.daemonset_token()).unwrap();
        std::fs::write(sa.join("ca.crt"), &api.ca_pem).unwrap();
        std::fs::write(sa.join("namespace"), "taint-guard").unwrap();
        a.push(format!("--volume={}:{SA_DIR}:ro", sa.display()));
        a.push("--env=KUBERNETES_SERVICE_HOST=127.0.0.1".into());
        a.push(format!("--env=KUBERNETES_SERVICE_PORT={}", api.port));
        // The node stands in for a VM (see harness::VM_STAND_IN).
        a.push("--env=TAINT_GUARD_ASSUME_VIRTUALIZATION=none".into());

        for e in c.env.iter().flatten() {
            let v = match (&e.value, &e.value_from) {
                (Some(v), None) => v.clone(),
                (None, Some(from)) => {
                    let path = from.field_ref.as_ref().map(|f| f.field_path.as_str());
                    assert_eq!(path, Some("spec.nodeName"), "env {}", e.name);
                    node_name.to_string()
                }
                _ => panic!("env {}: not modelled", e.name),
            };
            a.push(format!("--env={}={v}", e.name));
        }

        let sc = c.security_context.as_ref().expect("securityContext");
        only_known(
            sc,
            &[
                "runAsUser",
                "runAsGroup",
                "runAsNonRoot",
                "privileged",
                "allowPrivilegeEscalation",
                "readOnlyRootFilesystem",
                "capabilities",
                "seccompProfile",
            ],
            "securityContext",
        );
        let uid = sc.run_as_user.unwrap_or(0);
        assert!(
            !(sc.run_as_non_root == Some(true) && uid == 0),
            "kubelet refuses"
        );
        match sc.run_as_group {
            Some(gid) => a.push(format!("--user={uid}:{gid}")),
            None => a.push(format!("--user={uid}")),
        }
        let privileged = sc.privileged == Some(true);
        if privileged {
            // Every capability, every device, no seccomp filter.
            a.push("--privileged".into());
        }
        if sc.allow_privilege_escalation == Some(false) {
            a.push("--security-opt=no-new-privileges".into());
        }
        if sc.read_only_root_filesystem == Some(true) {
            // kubelet adds no tmpfs of its own.
            a.push("--read-only".into());
            a.push("--read-only-tmpfs=false".into());
        }
        // The effective set the process must end up with: the added ones
        // for uid 0 (runtimes give a non-root process none: no ambient
        // capabilities), all of them when privileged.
        let mut cap_eff = None;
        if let Some(caps) = sc.capabilities.as_ref() {
            assert_eq!(caps.drop.as_deref(), Some(&["ALL".to_string()][..]));
            a.push("--cap-drop=all".into());
            let mut eff = 0u64;
            for cap in caps.add.iter().flatten() {
                a.push(format!("--cap-add={cap}"));
                eff |= 1 << cap_bit(cap);
            }
            cap_eff = Some(if uid == 0 { eff } else { 0 });
        }
        if privileged {
            cap_eff = None;
        }
        match sc.seccomp_profile.as_ref().map(|p| p.type_.as_str()) {
            // podman's default profile stands in for the runtime's default.
            Some("RuntimeDefault") => {}
            Some("Unconfined") => a.push("--security-opt=seccomp=unconfined".into()),
            other => panic!("seccompProfile {other:?}: not modelled"),
        }
        let res = c.resources.as_ref().expect("resources");
        if let Some(mem) = res.limits.as_ref().and_then(|l| l.get("memory")) {
            let mib = mem.0.strip_suffix("Mi").expect("memory limit in Mi");
            // kubelet gives a container no swap beyond its limit.
            a.push(format!("--memory={mib}m"));
            a.push(format!("--memory-swap={mib}m"));
        }

        // The pod's port, moved to a free one of this machine (the pod
        // shares the host's network here): the ConfigMap's listener and the
        // probes follow it.
        let metrics_port = c
            .ports
            .iter()
            .flatten()
            .find(|p| p.name.as_deref() == Some("metrics"))
            .expect("a port named metrics")
            .container_port as u16;
        let host_port = harness::free_port();

        // Volumes: hostPath from the node (its rootfs is the host's /, its
        // bus directory the host's /run/dbus), configMap as files.
        let volumes = pod.volumes.as_deref().unwrap_or_default();
        let mut targets = BTreeSet::new();
        for m in c.volume_mounts.iter().flatten() {
            only_known(
                m,
                &["name", "mountPath", "readOnly", "mountPropagation"],
                "volumeMount",
            );
            let v = volumes
                .iter()
                .find(|v| v.name == m.name)
                .unwrap_or_else(|| panic!("volume {}", m.name));
            only_known(v, &["name", "hostPath", "configMap"], "volume");
            let src = if let Some(hp) = &v.host_path {
                let src = match hp.path.as_str() {
                    "/run/dbus" => node.bus.clone(),
                    p => node.root.join(p.trim_start_matches('/')),
                };
                match hp.type_.as_deref() {
                    Some("Directory") => assert!(src.is_dir(), "{}", src.display()),
                    Some("DirectoryOrCreate") => std::fs::create_dir_all(&src).unwrap(),
                    other => panic!("hostPath type {other:?}: not modelled"),
                }
                if hp.path == "/" {
                    // A real host's / carries /run and /sys mounts, which
                    // kubelet's rbind brings along: the bus directory's
                    // mount point, and the host's cgroups (the node shares
                    // this machine's kernel) for the swapoff guard.
                    for d in ["run/dbus", "sys/fs/cgroup"] {
                        std::fs::create_dir_all(src.join(d)).unwrap();
                    }
                    a.push(format!(
                        "--volume=/sys/fs/cgroup:{}/sys/fs/cgroup:ro,rslave",
                        m.mount_path
                    ));
                }
                src
            } else if let Some(cmv) = &v.config_map {
                assert_eq!(cmv.name, cm.metadata.name.clone().unwrap());
                let d = dir.join(format!("configmap-{}", v.name));
                std::fs::create_dir_all(&d).unwrap();
                for (k, text) in cm.data.iter().flatten() {
                    let text = match k.as_str() {
                        "config.toml" => on_port(text, metrics_port, host_port),
                        _ => text.clone(),
                    };
                    std::fs::write(d.join(k), text).unwrap();
                }
                d
            } else {
                unreachable!()
            };
            let mut opts = vec![if m.read_only == Some(true) {
                "ro"
            } else {
                "rw"
            }];
            match m.mount_propagation.as_deref() {
                None | Some("None") => {}
                Some("HostToContainer") => opts.push("rslave"),
                other => panic!("mountPropagation {other:?}: not modelled"),
            }
            assert!(targets.insert(m.mount_path.clone()));
            a.push(format!(
                "--volume={}:{}:{}",
                src.display(),
                m.mount_path,
                opts.join(",")
            ));
        }

        // kubelet's HTTP probes (with the host's network here, the pod's IP
        // is this machine's loopback).
        let http_probe = |p: Option<&k8s_openapi::api::core::v1::Probe>, what: &str| {
            let get = p
                .and_then(|p| p.http_get.as_ref())
                .unwrap_or_else(|| panic!("{what}: an httpGet probe"));
            assert_eq!(get.host, None, "{what}: see tests/manifests.rs");
            use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
            let port = match &get.port {
                IntOrString::Int(p) => *p,
                IntOrString::String(n) => {
                    c.ports
                        .iter()
                        .flatten()
                        .find(|p| p.name.as_deref() == Some(n))
                        .unwrap_or_else(|| panic!("no port named {n}"))
                        .container_port
                }
            };
            assert_eq!(port as u16, metrics_port, "{what}: the metrics port");
            (get.path.clone().unwrap_or_default(), host_port)
        };
        let liveness = http_probe(c.liveness_probe.as_ref(), "livenessProbe");
        let readiness = http_probe(c.readiness_probe.as_ref(), "readinessProbe");

        a.push(image.to_string());
        a.extend(c.args.iter().flatten().cloned());
        let _ = sh(podman().args(["rm", "-f", "-t", "0", &name]));
        let (ok, out, err) = sh(podman().args(&a));
        assert!(ok, "podman {a:?}:\n{out}\n{err}");
        Pod {
            name,
            dir,
            liveness,
            readiness,
            cap_eff,
            grace,
        }
    }

    fn logs(&self) -> String {
        let (_, out, err) = sh(podman().args(["logs", &self.name]));
        format!("{out}{err}")
    }

    /// /proc/PID/status of the container's process.
    fn status(&self) -> String {
        let (ok, pid, err) = sh(podman().args(["inspect", "-f", "{{.State.Pid}}", &self.name]));
        assert!(ok, "{err}");
        std::fs::read_to_string(format!("/proc/{}/status", pid.trim())).unwrap()
    }

    fn status_field(&self, key: &str) -> String {
        self.status()
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{key}:")))
            .unwrap_or_else(|| panic!("{key} in /proc/PID/status"))
            .trim()
            .to_string()
    }

    /// The HTTP status kubelet's probe gets.
    fn probe(&self, (path, port): &(String, u16)) -> Option<u16> {
        harness::http_get(*port, path).map(|(code, _)| code)
    }

    /// kubelet's stop: SIGTERM, then SIGKILL after the grace period.
    /// Returns the exit code and how long the stop took.
    fn stop(&self) -> (i64, Duration) {
        let t = Instant::now();
        let (ok, _, err) = sh(podman().args(["stop", "-t", &self.grace.to_string(), &self.name]));
        assert!(ok, "podman stop: {err}");
        let took = t.elapsed();
        let (_, code, _) = sh(podman().args(["inspect", "-f", "{{.State.ExitCode}}", &self.name]));
        (code.trim().parse().unwrap(), took)
    }
}

impl Drop for Pod {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let _ = std::fs::write(self.dir.join("pod.log"), self.logs());
            eprintln!("pod log:\n{}", self.logs());
        }
        let _ = sh(podman().args(["rm", "-f", "-t", "0", &self.name]));
    }
}

/// config.toml with `[run] metrics_listen` on `to` instead of `from`.
fn on_port(text: &str, from: u16, to: u16) -> String {
    let mut t: toml::Table = text.parse().unwrap();
    let run = t["run"].as_table_mut().expect("[run]");
    let listen: std::net::SocketAddr = run["metrics_listen"].as_str().unwrap().parse().unwrap();
    assert_eq!(listen.port(), from, "metrics_listen is the metrics port");
    let moved = std::net::SocketAddr::new(listen.ip(), to);
    run.insert("metrics_listen".into(), moved.to_string().into());
    toml::to_string(&t).unwrap()
}

/// With `extra` `[run]` settings added to the rendered ConfigMap's
/// config.toml (timings only, so the scenario need not wait a minute).
fn with_run_settings(mut cm: ConfigMap, extra: &[(&str, toml::Value)]) -> ConfigMap {
    let data = cm.data.as_mut().unwrap();
    let text = data.get("config.toml").unwrap();
    let mut t: toml::Table = text.parse().unwrap();
    let run = t
        .entry("run")
        .or_insert_with(|| toml::Value::Table(Default::default()))
        .as_table_mut()
        .unwrap();
    for (k, v) in extra {
        run.insert(k.to_string(), v.clone());
    }
    // The pod sees the host's kernel: its modules and sysctls are not the
    // node's (harness::HOST_KERNEL).
    harness::merge_toml(&mut t, harness::HOST_KERNEL.parse().unwrap());
    data.insert("config.toml".into(), toml::to_string(&t).unwrap());
    cm
}

fn wait_until(secs: u64, what: &str, mut cond: impl FnMut() -> bool, log: impl Fn() -> String) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !cond() {
        if Instant::now() > deadline {
            panic!("timed out after {secs} s waiting for {what}\n{}", log());
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn condition(node: &Value, type_: &str) -> Value {
    node["status"]["conditions"]
        .as_array()
        .and_then(|cs| cs.iter().find(|c| c["type"] == type_))
        .cloned()
        .unwrap_or(Value::Null)
}

fn swap_on(path: &str) -> bool {
    std::fs::read_to_string("/proc/swaps")
        .unwrap()
        .lines()
        .skip(1)
        .any(|l| l.split_whitespace().next() == Some(path))
}

/// The seed incident on a node: kubeadm's kubelet installed, never
/// enabled; /swapfile on and in fstab.
fn seed_node(name: &str) -> Node {
    // Built (or found built) before the node takes the machine alone: a
    // compile must not hold every other node back.
    image();
    harness::host_global("swap on");
    let node = Node::boot(name, Kubelet::Kubeadm, harness::install_fstab);
    node.swap_on("/swapfile", 16);
    node
}

const SA: &str = "system:serviceaccount:taint-guard:taint-guard";

/// The ServiceAccount wrote `node_name`'s Node, and otherwise only Events
/// and the Nodes of this binary's other pods (one API server serves them
/// all; each pod's NODE_NAME is its own).
fn only_own_node_written(api: &KubeApi, node_name: &str) {
    let writes: Vec<_> = api
        .audit(SA)
        .into_iter()
        .filter(|(v, _)| v != "get" && v != "list" && v != "watch")
        .collect();
    let own = format!("/api/v1/nodes/{node_name}");
    assert!(
        writes.iter().any(|(_, u)| u.starts_with(&own)),
        "{writes:#?}"
    );
    for (v, u) in &writes {
        assert!(
            u.starts_with("/api/v1/nodes/img-")
                || u.starts_with("/api/v1/namespaces/default/events"),
            "{v} {u}"
        );
    }
}

/// A swap area on a loop device (a block device, as a swap partition or
/// zram is), turned on from the host; the node gets its device node, as a
/// host's /dev (devtmpfs) would show it. Off and detached when dropped.
struct LoopSwap {
    dev: String,
}

impl LoopSwap {
    fn on(node: &Node, mib: u32) -> LoopSwap {
        let img = node.dir.join("loop-swap.img");
        let run = |cmd: &str| {
            let (ok, out, err) = sh(Command::new("sh").arg("-c").arg(cmd));
            assert!(ok, "`{cmd}`: {out}{err}");
            out.trim().to_string()
        };
        run(&format!(
            "dd if=/dev/zero of={0} bs=1M count={mib} status=none && mkswap {0} >/dev/null",
            img.display()
        ));
        let dev = run(&format!("losetup --find --show {}", img.display()));
        let swap = LoopSwap { dev };
        run(&format!("swapon {}", swap.dev));
        let minor = run(&format!("stat -c %T {}", swap.dev));
        run(&format!(
            "mknod {}{} b 7 $((0x{minor}))",
            node.root.display(),
            swap.dev
        ));
        swap
    }
}

impl Drop for LoopSwap {
    fn drop(&mut self) {
        let _ = Command::new("swapoff").arg(&self.dev).output();
        let _ = Command::new("losetup").arg("-d").arg(&self.dev).output();
    }
}

/// The base (report-only) DaemonSet on the seed incident: it reports
/// `critical` on its own Node with the ServiceAccount's token, answers its
/// probes, runs as nobody with no capability, and changes nothing on the
/// host — not even when told to repair from inside the pod.
fn report_only_pod_reports_and_changes_nothing(api: &mut KubeApi) {
    api.apply_daemonset_rbac();
    let node_name = "img-report";
    api.create_node(node_name, "True", &[]);
    let node = seed_node("imgrep");
    let fstab = std::fs::read(node.root.join("etc/fstab")).unwrap();
    let (ds, cm) = render(".");
    let cm = with_run_settings(cm, &[("report_initial_delay_secs", 0.into())]);
    let pod = Pod::start(&ds, &cm, &node, node_name, api);

    wait_until(
        60,
        "the pod's report",
        || api.node(node_name)["metadata"]["annotations"]["taint-guard.io/status"] == "critical",
        || pod.logs(),
    );
    let n = api.node(node_name);
    let c = condition(&n, "KubeletHostProblem");
    assert_eq!(c["status"], "True", "{n:#}");
    assert_eq!(c["reason"], "UnitDisabled", "{n:#}");
    assert_eq!(
        n["metadata"]["annotations"]["taint-guard.io/reboot-safe"],
        "false"
    );
    // The whole verdict, as known as from the host: kubelet's swap policy
    // was read through /host by a process that is not root.
    assert!(
        pod.logs().contains("swap file /swapfile is active"),
        "{}",
        pod.logs()
    );
    assert_eq!(pod.probe(&pod.liveness), Some(200), "{}", pod.logs());
    assert_eq!(pod.probe(&pod.readiness), Some(200), "{}", pod.logs());
    let cap_eff = u64::from_str_radix(&pod.status_field("CapEff"), 16).unwrap();
    assert_eq!(Some(cap_eff), pod.cap_eff, "effective capabilities");
    assert_eq!(cap_eff, 0);
    assert_eq!(pod.status_field("NoNewPrivs"), "1");
    assert!(pod.status_field("Uid").starts_with("65534"), "uid");
    let rss = pod.status_field("VmRSS");

    // Told to repair from inside the pod, it cannot: no capability for
    // swapoff, a read-only /host, and systemd refuses unit changes from
    // anyone but root.
    let (_, out, err) = sh(podman().args([
        "exec",
        &pod.name,
        "/taint-guard",
        "--host-root=/host",
        "--config=/etc/taint-guard/config.toml",
        "check",
        "--fix",
        "--output",
        "json",
    ]));
    let v: Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}\n{err}"));
    let outcome = |id: &str| {
        v["actions"]
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["id"] == id)
            .map(|a| {
                (
                    a["outcome"].as_str().unwrap().to_string(),
                    a["detail"].to_string(),
                )
            })
            .unwrap_or_else(|| panic!("no {id} action: {v:#}"))
    };
    for id in ["swapoff", "fstab-comment", "enable"] {
        let (o, detail) = outcome(id);
        assert_eq!(o, "failed", "{id}: {detail}");
    }
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(std::fs::read(node.root.join("etc/fstab")).unwrap(), fstab);
    assert!(swap_on("/swapfile"), "swap turned off by a report-only pod");
    assert_eq!(node.prop("kubelet.service", "UnitFileState"), "disabled");
    assert_eq!(node.prop("kubelet.service", "ActiveState"), "inactive");
    assert!(
        !pod.logs().contains(" ERROR "),
        "errors logged:\n{}",
        pod.logs()
    );
    let (code, took) = pod.stop();
    assert_eq!(code, 0, "exit code on SIGTERM\n{}", pod.logs());
    assert!(
        took < Duration::from_secs(pod.grace as u64),
        "stop took {took:?}"
    );
    eprintln!("report-only pod: VmRSS {rss}, stopped in {took:.1?}");
    only_own_node_written(api, node_name);
}

/// overlays/repair on the seed incident, with a second swap area on a
/// block device: the pod turns both off, comments the fstab line out
/// (through /host, keeping owner and mode, with a backup), enables and
/// starts kubelet over the host's bus, and reports the node healed.
fn repair_pod_heals_the_seed_incident(api: &mut KubeApi) {
    api.apply_daemonset_rbac();
    let node_name = "img-repair";
    api.create_node(node_name, "True", &[]);
    let node = seed_node("imgfix");
    let block = LoopSwap::on(&node, 16);
    let meta0 = std::fs::metadata(node.root.join("etc/fstab")).unwrap();
    let (ds, cm) = render("overlays/repair");
    let cm = with_run_settings(
        cm,
        &[
            ("report_initial_delay_secs", 0.into()),
            ("start_grace_secs", 0.into()),
        ],
    );
    let pod = Pod::start(&ds, &cm, &node, node_name, api);
    wait_until(
        60,
        "kubelet active, swap off",
        || {
            !swap_on("/swapfile")
                && !swap_on(&block.dev)
                && node.prop("kubelet.service", "ActiveState") == "active"
                && node.prop("kubelet.service", "UnitFileState") == "enabled"
        },
        || pod.logs(),
    );
    wait_until(
        60,
        "the pod's report of the healed node",
        || api.node(node_name)["metadata"]["annotations"]["taint-guard.io/status"] == "ok",
        || pod.logs(),
    );
    let fstab = node.read("/etc/fstab");
    assert!(fstab.contains("\n#/swapfile\tnone\tswap"), "{fstab}");
    let meta = std::fs::metadata(node.root.join("etc/fstab")).unwrap();
    use std::os::unix::fs::MetadataExt;
    assert_eq!(
        (meta.uid(), meta.gid(), meta.mode()),
        (meta0.uid(), meta0.gid(), meta0.mode())
    );
    assert_eq!(node.fstab_backups().len(), 1);
    let c = condition(&api.node(node_name), "KubeletHostProblem");
    assert_eq!(c["status"], "False", "{c:#}");
    let rss = pod.status_field("VmRSS");
    let (code, took) = pod.stop();
    assert_eq!(code, 0, "{}", pod.logs());
    eprintln!("repair pod: VmRSS {rss}, stopped in {took:.1?}");
    only_own_node_written(api, node_name);
}

/// Why overlays/repair is privileged with /host writable: each weaker pod
/// fails one swapoff(2), says why, and that swap stays on.
/// - /host read-only: a swap file is opened through it (EROFS);
/// - not privileged, with CAP_SYS_ADMIN and no seccomp filter: the device
///   cgroup refuses opening a block device (EPERM), a swap file goes off;
/// - not privileged, with CAP_SYS_ADMIN and the runtime's default seccomp
///   profile: swapoff(2) itself is refused (EPERM).
fn repair_needs_privileged_and_the_host_writable(api: &mut KubeApi) {
    api.apply_daemonset_rbac();
    for (i, what) in [
        "/host read-only",
        "not privileged",
        "RuntimeDefault seccomp",
    ]
    .into_iter()
    .enumerate()
    {
        let node_name = format!("img-control-{i}");
        api.create_node(&node_name, "True", &[]);
        let node = seed_node(&format!("imgctl{i}"));
        let block = (i == 1).then(|| LoopSwap::on(&node, 16));
        let (mut ds, cm) = render("overlays/repair");
        let c = &mut ds
            .spec
            .as_mut()
            .unwrap()
            .template
            .spec
            .as_mut()
            .unwrap()
            .containers[0];
        let sc = c.security_context.as_mut().unwrap();
        match i {
            0 => {
                for m in c.volume_mounts.iter_mut().flatten() {
                    if m.mount_path == "/host" {
                        m.read_only = Some(true);
                    }
                }
            }
            _ => {
                sc.privileged = Some(false);
                sc.allow_privilege_escalation = Some(false);
                sc.capabilities = Some(k8s_openapi::api::core::v1::Capabilities {
                    drop: Some(vec!["ALL".into()]),
                    add: Some(vec!["DAC_READ_SEARCH".into(), "SYS_ADMIN".into()]),
                });
                if i == 2 {
                    sc.seccomp_profile.as_mut().unwrap().type_ = "RuntimeDefault".into();
                }
            }
        }
        let expect = match &block {
            Some(b) => format!("swapoff /host{}: Operation not permitted", b.dev),
            None if i == 0 => "swapoff /host/swapfile: Read-only file system".into(),
            None => "swapoff /host/swapfile: Operation not permitted".into(),
        };
        let cm = with_run_settings(
            cm,
            &[
                ("report_initial_delay_secs", 0.into()),
                ("start_grace_secs", 0.into()),
            ],
        );
        let pod = Pod::start(&ds, &cm, &node, &node_name, api);
        wait_until(
            60,
            &format!("{what}: `{expect}`"),
            || pod.logs().contains(&expect),
            || pod.logs(),
        );
        match &block {
            Some(b) => {
                assert!(swap_on(&b.dev), "{what}");
                wait_until(
                    30,
                    "the swap file off",
                    || !swap_on("/swapfile"),
                    || pod.logs(),
                );
            }
            None => assert!(swap_on("/swapfile"), "{what}"),
        }
        assert_ne!(node.prop("kubelet.service", "ActiveState"), "active");
        let _ = pod.stop();
    }
}

fn main() -> std::process::ExitCode {
    harness::kube::run_scenarios(
        vec![
            (
                "report_only_pod_reports_and_changes_nothing",
                report_only_pod_reports_and_changes_nothing,
            ),
            (
                "repair_pod_heals_the_seed_incident",
                repair_pod_heals_the_seed_incident,
            ),
            (
                "repair_needs_privileged_and_the_host_writable",
                repair_needs_privileged_and_the_host_writable,
            ),
        ],
        &[(missing_tools(), "TG_REQUIRE_IMAGE")],
    )
}
