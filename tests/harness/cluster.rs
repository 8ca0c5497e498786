//! A real Kubernetes v1.20.2 around the nodes: etcd and kube-apiserver
//! (harness/kube.rs), kube-controller-manager (the node lifecycle controller
//! with a short grace), kube-scheduler, a control-plane Node, and workers:
//! systemd-nspawn nodes (harness/mod.rs) laid out as `kubeadm join` leaves
//! them, whose `/usr/bin/kubelet` is the real kubelet on `fake-cri`
//! (kubelet's own fake CRI runtime: it answers RuntimeReady and
//! NetworkReady, so kubelet registers and posts Ready without containers).
//!
//! The control-plane Node is kept Ready by a heartbeat thread (its Lease and
//! its Ready condition renewed every 3 s, as its kubelet would): the node
//! lifecycle controller needs a second, healthy Node (with the worker alone
//! it enters "master disruption mode" and never sets NoExecute), and two
//! real kubelets cannot share the host's ports. What the node lifecycle
//! controller, the scheduler and the worker's kubelet do is theirs.
//!
//! The binaries come from `tests/kube/build.sh`, in `$TG_APISERVER_BIN` or
//! `~/.cache/taint-guard/apiserver-bin`.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::kube::{spawn, ApiHandle, Creds, KubeApi};
use super::{Kubelet, Node};

/// Every binary the cluster needs, next to each other.
pub const BINS: [&str; 7] = [
    "kube-apiserver",
    "etcd",
    "kube-controller-manager",
    "kube-scheduler",
    "kubelet",
    "kubectl",
    "fake-cri",
];

/// The control-plane Node's name.
pub const CONTROL_PLANE: &str = "control-plane";

/// The node lifecycle controller's grace: a Node whose kubelet is silent
/// this long is Ready=Unknown and tainted `unreachable`.
pub const GRACE_SECS: u64 = 16;

/// Where the binaries are, or why they are not usable (a build under way
/// counts as there: see [`super::kube::binaries`]).
pub fn binaries() -> Result<PathBuf, String> {
    let dir = super::kube::binaries()?;
    super::kube::present(&dir, &BINS)?;
    Ok(dir)
}

/// The requirement for [`super::run_requiring`]: the cluster's binaries,
/// TG_REQUIRE_CLUSTER=1 turning their absence into failures.
pub fn requirement() -> (Option<String>, &'static str) {
    (binaries().err(), "TG_REQUIRE_CLUSTER")
}

pub struct Cluster {
    pub api: KubeApi,
    pub bin: PathBuf,
    controller_manager: Option<Child>,
    scheduler: Option<Child>,
    heartbeat_stop: Arc<AtomicBool>,
    heartbeat: Option<std::thread::JoinHandle<()>>,
}

fn now() -> String {
    let o = Command::new("date")
        .args(["-u", "+%Y-%m-%dT%H:%M:%S.%6NZ"])
        .output()
        .unwrap();
    String::from_utf8_lossy(&o.stdout).trim().to_string()
}

impl Cluster {
    /// etcd, kube-apiserver, the control-plane Node (Ready, heartbeating),
    /// kube-scheduler, then kube-controller-manager (after the control-plane
    /// Node is Ready: kubernetes#94183, fixed in 1.20.5, wedges the NoExecute
    /// queue for good if it ever sees every Node NotReady).
    pub fn start(bin: &Path) -> Cluster {
        let api = KubeApi::start(bin);
        super::kube::wait_for_build(bin, &BINS);
        let kc = api.admin_kubeconfig();
        let d = api.dir.path().to_path_buf();
        let mut c = Cluster {
            api,
            bin: bin.to_path_buf(),
            controller_manager: None,
            scheduler: None,
            heartbeat_stop: Arc::new(AtomicBool::new(false)),
            heartbeat: None,
        };
        c.api.create_node(
            CONTROL_PLANE,
            "True",
            &[("node-role.kubernetes.io/master", "NoSchedule")],
        );
        let h = c.api.handle();
        let stop = c.heartbeat_stop.clone();
        c.heartbeat = Some(std::thread::spawn(move || heartbeat(h, stop)));
        c.scheduler = Some(spawn(
            Command::new("timeout")
                .args(["-k", "5", "3600"])
                .arg(bin.join("kube-scheduler"))
                .arg(format!("--kubeconfig={}", kc.display()))
                .arg(format!("--authentication-kubeconfig={}", kc.display()))
                .arg(format!("--authorization-kubeconfig={}", kc.display()))
                .arg("--leader-elect=false")
                .arg("--bind-address=127.0.0.1")
                .arg(format!("--secure-port={}", super::free_port()))
                .arg("--port=0"),
            &d.join("scheduler.log"),
        ));
        c.controller_manager = Some(spawn(
            Command::new("timeout")
                .args(["-k", "5", "3600"])
                .arg(bin.join("kube-controller-manager"))
                .arg(format!("--kubeconfig={}", kc.display()))
                .arg(format!("--authentication-kubeconfig={}", kc.display()))
                .arg(format!("--authorization-kubeconfig={}", kc.display()))
                .arg("--controllers=*")
                .arg("--leader-elect=false")
                .arg("--use-service-account-credentials=false")
                .arg(format!(
                    "--service-account-private-key-file={}",
                    d.join("sa.key").display()
                ))
                .arg(format!("--root-ca-file={}", d.join("ca.crt").display()))
                .arg("--node-monitor-period=2s")
                .arg(format!("--node-monitor-grace-period={GRACE_SECS}s"))
                .arg("--bind-address=127.0.0.1")
                .arg(format!("--secure-port={}", super::free_port()))
                .arg("--port=0"),
            &d.join("controller-manager.log"),
        ));
        // The service-account controller makes `default` in `default`
        // (pods need it): that is the controller manager up and working.
        c.wait(
            "the default ServiceAccount (controller manager up)",
            60,
            |c| {
                c.check_children();
                c.api
                    .handle()
                    .admin(
                        "GET",
                        "/api/v1/namespaces/default/serviceaccounts/default",
                        None,
                    )
                    .0
                    == 200
            },
        );
        c
    }

    fn check_children(&mut self) {
        let d = self.api.dir.path().to_path_buf();
        for (name, child) in [
            ("kube-scheduler", &mut self.scheduler),
            ("kube-controller-manager", &mut self.controller_manager),
        ] {
            if let Some(Ok(Some(st))) = child.as_mut().map(|c| c.try_wait()) {
                let log = name.trim_start_matches("kube-");
                panic!(
                    "{name} exited ({st}):\n{}",
                    fs::read_to_string(d.join(format!("{log}.log"))).unwrap_or_default()
                );
            }
        }
    }

    /// Wait up to `secs` for `cond`; the time it took.
    pub fn wait(
        &mut self,
        what: &str,
        secs: u64,
        mut cond: impl FnMut(&mut Cluster) -> bool,
    ) -> Duration {
        let t0 = Instant::now();
        loop {
            if cond(self) {
                return t0.elapsed();
            }
            assert!(
                t0.elapsed() < Duration::from_secs(secs),
                "timed out after {secs}s waiting for {what}"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// The Node, or None when there is none.
    pub fn node(&self, name: &str) -> Option<Value> {
        let (code, v) = self
            .api
            .handle()
            .admin("GET", &format!("/api/v1/nodes/{name}"), None);
        (code == 200).then_some(v)
    }

    /// The Node's taints as `key:effect`.
    pub fn taints(&self, name: &str) -> Vec<String> {
        taints(&self.node(name).unwrap_or(Value::Null))
    }

    /// The status of the Node's Ready condition ("" when there is none).
    pub fn ready(&self, name: &str) -> String {
        condition(&self.node(name).unwrap_or(Value::Null), "Ready")
            .and_then(|c| c["status"].as_str().map(str::to_string))
            .unwrap_or_default()
    }

    pub fn delete_node(&self, name: &str) {
        let _ = self
            .api
            .handle()
            .admin("DELETE", &format!("/api/v1/nodes/{name}"), None);
    }

    /// A pod in `default` that only `node` can take (nodeSelector on its
    /// hostname label), left to the scheduler.
    pub fn create_pinned_pod(&self, pod: &str, node: &str) {
        self.create_pod(pod, json!({"kubernetes.io/hostname": node}));
    }

    /// A pod in `default` with this nodeSelector (`{}`: none) and no
    /// tolerations, left to the scheduler.
    pub fn create_pod(&self, pod: &str, node_selector: Value) {
        let body = json!({"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": pod},
            "spec": {"nodeSelector": node_selector,
                     "automountServiceAccountToken": false,
                     "containers": [{"name": "c", "image": "pause"}]}});
        let (code, v) = self.api.handle().admin(
            "POST",
            "/api/v1/namespaces/default/pods",
            Some(("application/json", &body)),
        );
        assert_eq!(code, 201, "creating pod {pod}: {v:#}");
    }

    /// The node a pod is bound to, if any.
    pub fn pod_node(&self, pod: &str) -> Option<String> {
        let (_, v) = self.api.handle().admin(
            "GET",
            &format!("/api/v1/namespaces/default/pods/{pod}"),
            None,
        );
        v["spec"]["nodeName"].as_str().map(str::to_string)
    }

    /// The scheduler's word on a pod it could not place (its
    /// PodScheduled=False message).
    pub fn pod_unschedulable(&self, pod: &str) -> Option<String> {
        let (_, v) = self.api.handle().admin(
            "GET",
            &format!("/api/v1/namespaces/default/pods/{pod}"),
            None,
        );
        condition(&v, "PodScheduled")
            .filter(|c| c["status"] == "False")
            .and_then(|c| c["message"].as_str().map(str::to_string))
    }

    pub fn delete_pod(&self, pod: &str) {
        let _ = self.api.handle().admin(
            "DELETE",
            &format!("/api/v1/namespaces/default/pods/{pod}?gracePeriodSeconds=0"),
            None,
        );
    }

    /// Boot a worker node `vm` whose kubelet registers as `node_name`,
    /// laid out by [`install_real_kubelet`]; `prepare` runs on its rootfs
    /// after that (e.g. to install taint-guard or change kubelet's files).
    pub fn boot_worker(&self, vm: &str, node_name: &str, prepare: impl FnOnce(&Path)) -> Worker {
        let creds = self.api.node_creds(node_name);
        let server = self.api.server();
        let node = Node::boot(vm, Kubelet::Kubeadm, |root| {
            install_real_kubelet(
                root,
                &self.bin,
                node_name,
                &self.api.ca_pem,
                &creds,
                &server,
            );
            prepare(root);
        });
        Worker {
            node: Some(node),
            name: node_name.to_string(),
            api: self.api.handle(),
        }
    }

    /// The log of a control-plane program ("controller-manager",
    /// "scheduler", "apiserver").
    pub fn log(&self, which: &str) -> String {
        fs::read_to_string(self.api.dir.path().join(format!("{which}.log"))).unwrap_or_default()
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.heartbeat_stop.store(true, Ordering::SeqCst);
        if let Some(h) = self.heartbeat.take() {
            let _ = h.join();
        }
        for c in [self.controller_manager.take(), self.scheduler.take()]
            .into_iter()
            .flatten()
        {
            super::kube::stop(c);
        }
        // etcd and kube-apiserver: KubeApi's own Drop.
    }
}

/// The control-plane Node's kubelet, as far as the node lifecycle
/// controller sees one: its Lease in kube-node-lease renewed and its Ready
/// condition's heartbeat refreshed every 3 s.
fn heartbeat(api: ApiHandle, stop: Arc<AtomicBool>) {
    let lease_path =
        format!("/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/{CONTROL_PLANE}");
    while !stop.load(Ordering::SeqCst) {
        let t = now();
        let lease = json!({"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
            "metadata": {"name": CONTROL_PLANE, "namespace": "kube-node-lease"},
            "spec": {"holderIdentity": CONTROL_PLANE, "leaseDurationSeconds": 40,
                     "renewTime": t}});
        let (code, _) = api.admin(
            "PATCH",
            &lease_path,
            Some((
                "application/merge-patch+json",
                &json!({"spec": {"renewTime": t}}),
            )),
        );
        if code == 404 {
            let _ = api.admin(
                "POST",
                "/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases",
                Some(("application/json", &lease)),
            );
        }
        let _ = api.admin(
            "PATCH",
            &format!("/api/v1/nodes/{CONTROL_PLANE}/status"),
            Some((
                "application/strategic-merge-patch+json",
                &json!({"status": {"conditions": [{"type": "Ready", "status": "True",
                    "reason": "KubeletReady", "message": "heartbeat from the test",
                    "lastHeartbeatTime": t}]}}),
            )),
        );
        for _ in 0..30 {
            if stop.load(Ordering::SeqCst) {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

/// A worker: its node and its Node object. Dropped: the node is halted,
/// then its Node deleted (a dead Node left behind would count in the
/// controller's zone health and change how later Nodes are tainted).
pub struct Worker {
    pub node: Option<Node>,
    pub name: String,
    api: ApiHandle,
}

impl Worker {
    pub fn node(&self) -> &Node {
        self.node.as_ref().unwrap()
    }

    pub fn node_mut(&mut self) -> &mut Node {
        self.node.as_mut().unwrap()
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        drop(self.node.take());
        let _ = self
            .api
            .admin("DELETE", &format!("/api/v1/nodes/{}", self.name), None);
    }
}

pub fn condition<'a>(v: &'a Value, type_: &str) -> Option<&'a Value> {
    v["status"]["conditions"]
        .as_array()?
        .iter()
        .find(|c| c["type"] == type_)
}

pub fn taints(node: &Value) -> Vec<String> {
    node["spec"]["taints"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|t| {
                    format!(
                        "{}:{}",
                        t["key"].as_str().unwrap_or(""),
                        t["effect"].as_str().unwrap_or("")
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

pub const UNREACHABLE_NO_SCHEDULE: &str = "node.kubernetes.io/unreachable:NoSchedule";
pub const UNREACHABLE_NO_EXECUTE: &str = "node.kubernetes.io/unreachable:NoExecute";

/// Both `unreachable` taints are on the Node.
pub fn both_unreachable(taints: &[String]) -> bool {
    taints.iter().any(|t| t == UNREACHABLE_NO_SCHEDULE)
        && taints.iter().any(|t| t == UNREACHABLE_NO_EXECUTE)
}

/// No `unreachable` or `not-ready` taint is left.
pub fn untainted(taints: &[String]) -> bool {
    !taints.iter().any(|t| {
        t.starts_with("node.kubernetes.io/unreachable:")
            || t.starts_with("node.kubernetes.io/not-ready:")
    })
}

fn put(root: &Path, node_path: &str, content: &[u8], mode: u32) {
    let p = root.join(node_path.trim_start_matches('/'));
    fs::create_dir_all(p.parent().unwrap()).unwrap();
    let _ = fs::remove_file(&p);
    fs::write(&p, content).unwrap();
    fs::set_permissions(&p, fs::Permissions::from_mode(mode)).unwrap();
}

fn copy_bin(root: &Path, node_path: &str, from: &Path) {
    let p = root.join(node_path.trim_start_matches('/'));
    fs::create_dir_all(p.parent().unwrap()).unwrap();
    let _ = fs::remove_file(&p);
    fs::copy(from, &p).unwrap();
    fs::set_permissions(&p, fs::Permissions::from_mode(0o755)).unwrap();
}

/// kubelet's config as `kubeadm join` (v1.20) writes it, plus what kubelet
/// needs inside systemd-nspawn (no QoS cgroups or node-allocatable
/// enforcement: the container's cgroup hierarchy is read-only there; no
/// iptables chains; no read-only port).
pub const KUBELET_CONFIG: &str = "\
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
authentication:
  anonymous:
    enabled: false
  webhook:
    cacheTTL: 0s
    enabled: true
  x509:
    clientCAFile: /etc/kubernetes/pki/ca.crt
authorization:
  mode: Webhook
cgroupDriver: systemd
clusterDNS:
- 10.96.0.10
clusterDomain: cluster.local
rotateCertificates: true
staticPodPath: /etc/kubernetes/manifests
# systemd-nspawn:
cgroupsPerQOS: false
enforceNodeAllocatable: []
makeIPTablesUtilChains: false
readOnlyPort: 0
";

/// Before sysinit.target, in the node's own mount namespace: what kubelet
/// insists on that a container does not have. /dev/kmsg (kubelet's OOM
/// watcher opens it) and the sysctls kubelet checks (and would write,
/// read-only here) hold kubelet's values in files bound over
/// /proc/sys/...; the host's are never written. Done before systemd
/// starts other units (as kind's entrypoint does): later, its mounts race
/// with other units' namespace setup.
const NODE_PREP_UNIT: &str = "\
[Unit]
Description=What kubelet needs inside systemd-nspawn (test node)
DefaultDependencies=no
Before=sysinit.target

[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=/usr/local/sbin/kubelet-node-prep

[Install]
WantedBy=sysinit.target
";

const NODE_PREP: &str = "\
#!/bin/sh
set -e
[ -e /dev/kmsg ] || ln -s /dev/null /dev/kmsg
mkdir -p /run/kubelet-sysctl
for kv in vm/overcommit_memory=1 vm/panic_on_oom=0 kernel/panic=10 kernel/panic_on_oops=1 \\
          kernel/keys/root_maxkeys=1000000 kernel/keys/root_maxbytes=25000000; do
  k=${kv%%=*} v=${kv#*=}
  f=/run/kubelet-sysctl/$(echo \"$k\" | tr / .)
  echo \"$v\" > \"$f\"
  mount --bind \"$f\" \"/proc/sys/$k\"
done
";

/// kubelet's own fake CRI runtime, before kubelet.
const FAKE_CRI_UNIT: &str = "\
[Unit]
Description=fake-cri: kubelet's fake CRI runtime (test node)
Before=kubelet.service

[Service]
RuntimeDirectory=fake-cri
ExecStart=/usr/local/bin/fake-cri --listen unix:///run/fake-cri/fake-cri.sock

[Install]
WantedBy=multi-user.target
";

/// Lay out the real kubelet on a rootfs that has kubeadm's unit and
/// drop-in ([`Kubelet::Kubeadm`]): the binary, kubeadm's
/// `kubeadm-flags.env` (fake-cri as the remote runtime, the Node's name),
/// [`KUBELET_CONFIG`], the client certificate `kubeadm join` leaves
/// (`system:node:NAME` in `system:nodes`, signed by the cluster CA) in
/// /var/lib/kubelet/pki referenced from /etc/kubernetes/kubelet.conf, the
/// CA, fake-cri (enabled) and the node-prep unit (enabled). kubelet itself
/// is neither enabled nor started. `server`: the API server's URL.
pub fn install_real_kubelet(
    root: &Path,
    bin: &Path,
    node_name: &str,
    ca_pem: &str,
    creds: &Creds,
    server: &str,
) {
    copy_bin(root, "/usr/bin/kubelet", &bin.join("kubelet"));
    copy_bin(root, "/usr/local/bin/fake-cri", &bin.join("fake-cri"));
    // The node shares the host's network: its kubelet's ports (10250 and
    // 10248 by default) are free ones of its own, so nodes with a real
    // kubelet run side by side (as flags: tests rewrite config.yaml).
    let (port, healthz) = (super::free_port(), super::free_port());
    put(
        root,
        "/var/lib/kubelet/kubeadm-flags.env",
        format!("KUBELET_KUBEADM_ARGS=\"--container-runtime=remote --container-runtime-endpoint=unix:///run/fake-cri/fake-cri.sock --hostname-override={node_name} --port={port} --healthz-port={healthz}\"\n").as_bytes(),
        0o644,
    );
    put(
        root,
        "/var/lib/kubelet/config.yaml",
        KUBELET_CONFIG.as_bytes(),
        0o644,
    );
    put(root, "/etc/kubernetes/pki/ca.crt", ca_pem.as_bytes(), 0o644);
    put(
        root,
        "/var/lib/kubelet/pki/kubelet-client-current.pem",
        format!("{}{}", creds.cert, creds.key).as_bytes(),
        0o600,
    );
    let pem = "/var/lib/kubelet/pki/kubelet-client-current.pem";
    put(
        root,
        "/etc/kubernetes/kubelet.conf",
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- cluster:\n    certificate-authority: /etc/kubernetes/pki/ca.crt\n    server: {server}\n  name: default-cluster\ncontexts:\n- context:\n    cluster: default-cluster\n    namespace: default\n    user: default-auth\n  name: default-context\ncurrent-context: default-context\nusers:\n- name: default-auth\n  user:\n    client-certificate: {pem}\n    client-key: {pem}\n"
        )
        .as_bytes(),
        0o600,
    );
    fs::create_dir_all(root.join("etc/kubernetes/manifests")).unwrap();
    put(
        root,
        "/usr/local/sbin/kubelet-node-prep",
        NODE_PREP.as_bytes(),
        0o755,
    );
    put(
        root,
        "/etc/systemd/system/kubelet-node-prep.service",
        NODE_PREP_UNIT.as_bytes(),
        0o644,
    );
    put(
        root,
        "/etc/systemd/system/fake-cri.service",
        FAKE_CRI_UNIT.as_bytes(),
        0o644,
    );
    for (target, unit) in [
        ("sysinit.target", "kubelet-node-prep.service"),
        ("multi-user.target", "fake-cri.service"),
    ] {
        let wants = root.join(format!("etc/systemd/system/{target}.wants"));
        fs::create_dir_all(&wants).unwrap();
        let link = wants.join(unit);
        let _ = fs::remove_file(&link);
        std::os::unix::fs::symlink(format!("/etc/systemd/system/{unit}"), link).unwrap();
    }
}
