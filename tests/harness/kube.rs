//! A real Kubernetes API server for tests: etcd and kube-apiserver on
//! loopback ports chosen per run, in a temporary directory, with a
//! throwaway CA (rcgen), client certificates for `admin` (system:masters)
//! and for `system:node:NAME` (system:nodes), `--authorization-mode=Node,RBAC`
//! and the NodeRestriction admission plugin, and an audit log to count
//! requests by user.
//!
//! The binaries come from `tests/kube/build.sh` (kube-apiserver v1.20.2
//! built from Debian's source package, Debian's etcd), found at `$TG_APISERVER_BIN` or
//! `~/.cache/taint-guard/apiserver-bin`.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose,
};
use serde::Deserialize;
use serde_json::{json, Value};

/// Where the binaries are, or why they are not usable. While
/// tests/kube/build.sh is building them (it holds `DIR.lock`), they count
/// as there: a test that needs them waits in [`KubeApi::start`], and says
/// so if the build then left them missing. No waiting here: this is asked
/// when the trials are listed and made, for every trial of a binary.
pub fn binaries() -> Result<PathBuf, String> {
    let dir = bin_dir()?;
    present(&dir, &["kube-apiserver", "etcd"])?;
    Ok(dir)
}

fn bin_dir() -> Result<PathBuf, String> {
    let dir = std::env::var_os("TG_APISERVER_BIN")
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("HOME")
                .map(|h| PathBuf::from(h).join(".cache/taint-guard/apiserver-bin"))
        })
        .ok_or("no TG_APISERVER_BIN and no HOME")?;
    // As the build script names it: no trailing `/` (its lock is `DIR.lock`).
    Ok(dir.components().collect())
}

/// `names` are all in `dir`, or a build of them is under way.
pub fn present(dir: &Path, names: &[&str]) -> Result<(), String> {
    let missing: Vec<&str> = names
        .iter()
        .copied()
        .filter(|b| !dir.join(b).is_file())
        .collect();
    if missing.is_empty() || building(dir) {
        return Ok(());
    }
    Err(format!(
        "{} missing from {}: build them with tests/kube/build.sh (or set TG_APISERVER_BIN)",
        missing.join(", "),
        dir.display()
    ))
}

fn build_lock(dir: &Path) -> Option<fs::File> {
    fs::File::open(format!("{}.lock", dir.display())).ok()
}

/// tests/kube/build.sh holds `DIR.lock` right now.
fn building(dir: &Path) -> bool {
    let Some(f) = build_lock(dir) else {
        return false;
    };
    // SAFETY: flock on an open fd; released when `f` is dropped.
    let rc = unsafe {
        libc::flock(
            std::os::fd::AsRawFd::as_raw_fd(&f),
            libc::LOCK_SH | libc::LOCK_NB,
        )
    };
    rc != 0
}

/// Wait for a build of `dir` under way to end (a shared lock on
/// `DIR.lock`), so a suite started beside the build (.ci/run starts both)
/// runs these tests once the programs are there; then they must be.
pub fn wait_for_build(dir: &Path, names: &[&str]) {
    if let Some(f) = build_lock(dir) {
        let t = Instant::now();
        // SAFETY: flock on an open fd; released when `f` is dropped.
        unsafe { libc::flock(std::os::fd::AsRawFd::as_raw_fd(&f), libc::LOCK_SH) };
        if t.elapsed() > Duration::from_secs(1) {
            eprintln!(
                "waited {:.0?} for tests/kube/build.sh to finish",
                t.elapsed()
            );
        }
    }
    let missing: Vec<&str> = names
        .iter()
        .copied()
        .filter(|b| !dir.join(b).is_file())
        .collect();
    assert!(
        missing.is_empty(),
        "{} missing from {} after tests/kube/build.sh ended: see its output (.ci/run: target/ci/kube-build.log)",
        missing.join(", "),
        dir.display()
    );
}

/// A client identity: certificate and key, PEM.
#[derive(Clone)]
pub struct Creds {
    pub cert: String,
    pub key: String,
}

pub struct KubeApi {
    pub dir: tempfile::TempDir,
    pub port: u16,
    pub ca_pem: String,
    ca: CertifiedIssuer<'static, KeyPair>,
    pub admin: Creds,
    bin: PathBuf,
    etcd: Option<Child>,
    apiserver: Option<Child>,
    etcd_port: u16,
}

/// `cmd` started with stdout and stderr in `log`.
pub fn spawn(cmd: &mut Command, log: &Path) -> Child {
    let log = fs::File::create(log).unwrap();
    cmd.stdin(Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .expect("spawning")
}

impl KubeApi {
    pub fn start(bin: &Path) -> KubeApi {
        wait_for_build(bin, &["kube-apiserver", "etcd"]);
        let dir = tempfile::Builder::new()
            .prefix("tg-kube-")
            .tempdir()
            .unwrap();
        let d = dir.path();
        // CA, serving certificate, admin and service-account keys.
        let ca_key = KeyPair::generate().unwrap();
        let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
        p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        p.distinguished_name
            .push(DnType::CommonName, "taint-guard test CA");
        p.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let ca = CertifiedIssuer::self_signed(p, ca_key).unwrap();
        let ca_pem = ca.pem();
        fs::write(d.join("ca.crt"), &ca_pem).unwrap();
        let serving = leaf(
            &ca,
            "kube-apiserver",
            None,
            &["127.0.0.1", "localhost", "kubernetes"],
            ExtendedKeyUsagePurpose::ServerAuth,
        );
        fs::write(d.join("apiserver.crt"), &serving.cert).unwrap();
        fs::write(d.join("apiserver.key"), &serving.key).unwrap();
        let admin = leaf(
            &ca,
            "admin",
            Some("system:masters"),
            &[],
            ExtendedKeyUsagePurpose::ClientAuth,
        );
        let sa = KeyPair::generate().unwrap();
        fs::write(d.join("sa.key"), sa.serialize_pem()).unwrap();
        fs::write(d.join("sa.pub"), sa.public_key_pem()).unwrap();
        fs::write(
            d.join("audit-policy.yaml"),
            "apiVersion: audit.k8s.io/v1\nkind: Policy\nomitStages: [RequestReceived]\nrules:\n- level: Metadata\n",
        )
        .unwrap();
        let mut api = KubeApi {
            dir,
            port: super::free_port(),
            ca_pem,
            ca,
            admin,
            bin: bin.to_path_buf(),
            etcd: None,
            apiserver: None,
            etcd_port: super::free_port(),
        };
        api.start_etcd();
        api.start_apiserver_on_a_free_port();
        api
    }

    /// The first start: `free_port` found the port free, but until
    /// kube-apiserver binds it an outgoing connection (to etcd, say) may
    /// take it as its source port; then another port is tried.
    fn start_apiserver_on_a_free_port(&mut self) {
        for _ in 0..4 {
            match self.try_start_apiserver() {
                Ok(()) => return,
                Err(log) if log.contains("address already in use") => {
                    eprintln!(
                        "kube-apiserver: port {} was taken meanwhile; another",
                        self.port
                    );
                    self.port = super::free_port();
                }
                Err(log) => panic!("kube-apiserver exited:\n{log}"),
            }
        }
        self.start_apiserver();
    }

    fn start_etcd(&mut self) {
        let d = self.dir.path();
        let peer = super::free_port();
        let url = format!("http://127.0.0.1:{}", self.etcd_port);
        self.etcd = Some(spawn(
            Command::new("timeout")
                .args(["-k", "5", "3600"])
                .arg(self.bin.join("etcd"))
                .arg(format!("--data-dir={}", d.join("etcd").display()))
                .arg(format!("--listen-client-urls={url}"))
                .arg(format!("--advertise-client-urls={url}"))
                .arg(format!("--listen-peer-urls=http://127.0.0.1:{peer}"))
                .arg(format!(
                    "--initial-advertise-peer-urls=http://127.0.0.1:{peer}"
                ))
                .arg(format!("--initial-cluster=default=http://127.0.0.1:{peer}"))
                .arg("--unsafe-no-fsync"),
            &d.join("etcd.log"),
        ));
    }

    /// Start (or restart, on the same port) kube-apiserver and wait for
    /// /readyz; a port still held by a closing connection is tried again.
    pub fn start_apiserver(&mut self) {
        let mut tries = 0;
        while let Err(log) = self.try_start_apiserver() {
            tries += 1;
            assert!(
                log.contains("address already in use") && tries < 10,
                "kube-apiserver exited:\n{log}"
            );
            std::thread::sleep(Duration::from_secs(1));
        }
    }

    /// Start kube-apiserver and wait for /readyz; Err(its log) when it
    /// exited.
    fn try_start_apiserver(&mut self) -> Result<(), String> {
        let d = self.dir.path();
        let f = |n: &str| d.join(n).display().to_string();
        self.apiserver = Some(spawn(
            Command::new("timeout")
                .args(["-k", "5", "3600"])
                .arg(self.bin.join("kube-apiserver"))
                .arg(format!(
                    "--etcd-servers=http://127.0.0.1:{}",
                    self.etcd_port
                ))
                .arg("--bind-address=127.0.0.1")
                .arg("--advertise-address=127.0.0.1")
                .arg(format!("--secure-port={}", self.port))
                .arg("--insecure-port=0")
                .arg(format!("--cert-dir={}", f("certs")))
                .arg(format!("--tls-cert-file={}", f("apiserver.crt")))
                .arg(format!("--tls-private-key-file={}", f("apiserver.key")))
                .arg(format!("--client-ca-file={}", f("ca.crt")))
                .arg("--authorization-mode=Node,RBAC")
                .arg("--enable-admission-plugins=NodeRestriction")
                .arg(format!("--service-account-key-file={}", f("sa.pub")))
                .arg(format!(
                    "--service-account-signing-key-file={}",
                    f("sa.key")
                ))
                .arg("--service-account-issuer=https://kubernetes.default.svc")
                .arg("--service-cluster-ip-range=10.96.0.0/24")
                .arg(format!("--audit-policy-file={}", f("audit-policy.yaml")))
                .arg(format!("--audit-log-path={}", f("audit.log")))
                .arg("--audit-log-mode=blocking")
                .arg("--event-ttl=1h"),
            &d.join("apiserver.log"),
        ));
        let deadline = Instant::now() + Duration::from_secs(90);
        loop {
            if let Ok((200, body)) = self.raw("GET", "/readyz", None, &self.admin.clone()) {
                if body.trim() == "ok" {
                    return Ok(());
                }
            }
            if let Some(Ok(Some(st))) = self.apiserver.as_mut().map(|c| c.try_wait()) {
                self.apiserver = None;
                return Err(format!(
                    "({st})\n{}",
                    fs::read_to_string(d.join("apiserver.log")).unwrap_or_default()
                ));
            }
            assert!(
                Instant::now() < deadline,
                "kube-apiserver not ready within 90s:\n{}",
                fs::read_to_string(d.join("apiserver.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(250));
        }
    }

    /// Stop kube-apiserver (etcd keeps the data).
    pub fn stop_apiserver(&mut self) {
        if let Some(c) = self.apiserver.take() {
            stop(c);
        }
        // Until the port refuses connections.
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
            assert!(Instant::now() < deadline, "kube-apiserver still listening");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn server(&self) -> String {
        format!("https://127.0.0.1:{}", self.port)
    }

    /// Client credentials for the kubelet of `node` (system:node:NODE in
    /// system:nodes), signed by the cluster CA.
    pub fn node_creds(&self, node: &str) -> Creds {
        leaf(
            &self.ca,
            &format!("system:node:{node}"),
            Some("system:nodes"),
            &[],
            ExtendedKeyUsagePurpose::ClientAuth,
        )
    }

    /// [`KubeApi::node_creds`], valid from `from` to `to` (seconds from
    /// now; negative: in the past), signed by the cluster CA.
    pub fn node_creds_valid(&self, node: &str, from: i64, to: i64) -> Creds {
        let now = time::OffsetDateTime::now_utc();
        leaf_valid(
            &self.ca,
            &format!("system:node:{node}"),
            Some("system:nodes"),
            &[],
            ExtendedKeyUsagePurpose::ClientAuth,
            Some((
                now + time::Duration::seconds(from),
                now + time::Duration::seconds(to),
            )),
        )
    }

    /// A kubeconfig like kubeadm's kubelet.conf, with the certificate and
    /// key in files (`cert`, `key`: paths written into it as given).
    pub fn kubeconfig(&self, ca: &str, cert: &str, key: &str) -> String {
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- cluster:\n    certificate-authority: {ca}\n    server: {}\n  name: default-cluster\ncontexts:\n- context:\n    cluster: default-cluster\n    namespace: default\n    user: default-auth\n  name: default-context\ncurrent-context: default-context\nusers:\n- name: default-auth\n  user:\n    client-certificate: {cert}\n    client-key: {key}\n",
            self.server()
        )
    }

    /// One HTTPS request with `creds` (curl: a real client, not our code).
    pub fn raw(
        &self,
        method: &str,
        path: &str,
        body: Option<(&str, &Value)>,
        creds: &Creds,
    ) -> Result<(u16, String), String> {
        self.raw_as(method, path, body, creds, None)
    }

    /// [`KubeApi::raw`], optionally impersonating `user` (with its groups
    /// as a service account's would be).
    pub fn raw_as(
        &self,
        method: &str,
        path: &str,
        body: Option<(&str, &Value)>,
        creds: &Creds,
        impersonate: Option<(&str, &[&str])>,
    ) -> Result<(u16, String), String> {
        self.handle().raw_as(method, path, body, creds, impersonate)
    }

    /// What a request needs, without the server's processes: for threads
    /// that call the server while the test holds the [`KubeApi`].
    pub fn handle(&self) -> ApiHandle {
        ApiHandle {
            dir: self.dir.path().to_path_buf(),
            port: self.port,
            admin: self.admin.clone(),
        }
    }

    /// A kubeconfig for `admin` (certificate and key in files next to it),
    /// for the control plane's own programs and kubectl.
    pub fn admin_kubeconfig(&self) -> PathBuf {
        let d = self.dir.path();
        let kc = d.join("admin.conf");
        if !kc.exists() {
            fs::write(d.join("admin.crt"), &self.admin.cert).unwrap();
            fs::write(d.join("admin.key"), &self.admin.key).unwrap();
            let f = |n: &str| d.join(n).display().to_string();
            fs::write(
                &kc,
                self.kubeconfig(&f("ca.crt"), &f("admin.crt"), &f("admin.key")),
            )
            .unwrap();
        }
        kc
    }

    /// The audit log's entries (one JSON object per line, ResponseComplete
    /// only).
    pub fn audit_events(&self) -> Vec<Value> {
        let text = fs::read_to_string(self.dir.path().join("audit.log")).unwrap_or_default();
        text.lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .filter(|e| e["stage"] == "ResponseComplete")
            .collect()
    }

    /// Apply the DaemonSet's namespace, ServiceAccount and RBAC from
    /// packaging/kubernetes/base (once per server; a second apply finds
    /// them there).
    pub fn apply_daemonset_rbac(&self) {
        let base = Path::new(env!("CARGO_MANIFEST_DIR")).join("packaging/kubernetes/base");
        for (file, path) in [
            ("namespace.yaml", "/api/v1/namespaces"),
            (
                "serviceaccount.yaml",
                "/api/v1/namespaces/taint-guard/serviceaccounts",
            ),
            (
                "clusterrole.yaml",
                "/apis/rbac.authorization.k8s.io/v1/clusterroles",
            ),
            (
                "clusterrolebinding.yaml",
                "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings",
            ),
            (
                "role-events.yaml",
                "/apis/rbac.authorization.k8s.io/v1/namespaces/default/roles",
            ),
            (
                "role-events.yaml",
                "/apis/rbac.authorization.k8s.io/v1/namespaces/default/rolebindings",
            ),
        ] {
            let text = fs::read_to_string(base.join(file)).unwrap();
            // A file may hold several documents: the one whose kind the
            // path names.
            let kind = path.rsplit('/').next().unwrap_or_default();
            let doc = serde_norway::Deserializer::from_str(&text)
                .map(|d| Value::deserialize(d).unwrap())
                .find(|d| {
                    d["kind"]
                        .as_str()
                        .is_some_and(|k| format!("{}s", k.to_lowercase()) == kind)
                })
                .unwrap_or_else(|| panic!("no {kind} in {file}"));
            let (code, body) = self
                .raw("POST", path, Some(("application/json", &doc)), &self.admin)
                .unwrap();
            assert!(
                code == 201 || code == 409,
                "POST {path}: HTTP {code}: {body}"
            );
        }
    }

    /// A token of the DaemonSet's ServiceAccount (TokenRequest, one hour),
    /// as kubelet projects into its pods.
    pub fn daemonset_token(&self) -> String {
        let req = serde_json::json!({"apiVersion": "authentication.k8s.io/v1",
                                     "kind": "TokenRequest",
                                     "spec": {"expirationSeconds": 3600}});
        let tok = self.admin_call(
            "POST",
            "/api/v1/namespaces/taint-guard/serviceaccounts/taint-guard/token",
            Some(("application/json", &req)),
        );
        tok["status"]["token"].as_str().expect("token").to_string()
    }

    /// As admin; panics unless the answer is 2xx. Returns the JSON.
    pub fn admin_call(&self, method: &str, path: &str, body: Option<(&str, &Value)>) -> Value {
        let (code, text) = self.raw(method, path, body, &self.admin).unwrap();
        assert!(
            (200..300).contains(&code),
            "{method} {path}: HTTP {code}: {text}"
        );
        serde_json::from_str(&text).unwrap_or(Value::Null)
    }

    /// Register a Node as kubelet would: the object, then its status with
    /// kubelet's conditions (Ready=`ready`), and `taints`.
    pub fn create_node(&self, name: &str, ready: &str, taints: &[(&str, &str)]) -> Value {
        let taints: Vec<Value> = taints
            .iter()
            .map(|(k, e)| json!({"key": k, "effect": e}))
            .collect();
        self.admin_call(
            "POST",
            "/api/v1/nodes",
            Some((
                "application/json",
                &json!({"apiVersion": "v1", "kind": "Node",
                        "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name}},
                        "spec": {"taints": taints}}),
            )),
        );
        let t = "2026-11-28T00:00:00Z";
        let cond = |type_: &str, status: &str, reason: &str| {
            json!({"type": type_, "status": status, "reason": reason, "message": reason,
                   "lastHeartbeatTime": t, "lastTransitionTime": t})
        };
        self.admin_call(
            "PATCH",
            &format!("/api/v1/nodes/{name}/status"),
            Some((
                "application/strategic-merge-patch+json",
                &json!({"status": {"conditions": [
                    cond("MemoryPressure", "False", "KubeletHasSufficientMemory"),
                    cond("DiskPressure", "False", "KubeletHasNoDiskPressure"),
                    cond("PIDPressure", "False", "KubeletHasSufficientPID"),
                    cond("Ready", ready, if ready == "True" { "KubeletReady" } else { "NodeStatusUnknown" }),
                ]}}),
            )),
        )
    }

    pub fn node(&self, name: &str) -> Value {
        self.admin_call("GET", &format!("/api/v1/nodes/{name}"), None)
    }

    /// core/v1 Events about `node` (namespace default).
    pub fn events(&self, node: &str) -> Vec<Value> {
        let v = self.admin_call(
            "GET",
            &format!("/api/v1/namespaces/default/events?fieldSelector=involvedObject.name={node}"),
            None,
        );
        v["items"].as_array().cloned().unwrap_or_default()
    }

    /// Requests in the audit log by `user` (verb, URI), in order.
    pub fn audit(&self, user: &str) -> Vec<(String, String)> {
        let text = fs::read_to_string(self.dir.path().join("audit.log")).unwrap_or_default();
        text.lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .filter(|e| e["stage"] == "ResponseComplete" && e["user"]["username"] == user)
            .map(|e| {
                (
                    e["verb"].as_str().unwrap_or("").to_string(),
                    e["requestURI"].as_str().unwrap_or("").to_string(),
                )
            })
            .collect()
    }
}

/// The API server's address and credentials, cheap to clone into a thread.
#[derive(Clone)]
pub struct ApiHandle {
    dir: PathBuf,
    port: u16,
    pub admin: Creds,
}

impl ApiHandle {
    /// One HTTPS request with `creds` (curl: a real client, not our code),
    /// optionally impersonating `user` with its groups.
    pub fn raw_as(
        &self,
        method: &str,
        path: &str,
        body: Option<(&str, &Value)>,
        creds: &Creds,
        impersonate: Option<(&str, &[&str])>,
    ) -> Result<(u16, String), String> {
        let d = &self.dir;
        let id = format!("{:x}", fxhash(&creds.cert));
        let cert = d.join(format!("c-{id}.crt"));
        let key = d.join(format!("c-{id}.key"));
        if !cert.exists() {
            fs::write(&cert, &creds.cert).unwrap();
            fs::write(&key, &creds.key).unwrap();
        }
        let mut c = Command::new("curl");
        c.args(["-sS", "--max-time", "10", "-o", "-", "-w", "\n%{http_code}"])
            .arg("--cacert")
            .arg(d.join("ca.crt"))
            .arg("--cert")
            .arg(&cert)
            .arg("--key")
            .arg(&key)
            .args(["-X", method]);
        if let Some((user, groups)) = impersonate {
            c.args(["-H", &format!("Impersonate-User: {user}")]);
            for g in groups {
                c.args(["-H", &format!("Impersonate-Group: {g}")]);
            }
        }
        if let Some((ct, v)) = body {
            c.args(["-H", &format!("Content-Type: {ct}")])
                .args(["--data-binary", &v.to_string()]);
        }
        let o = c
            .arg(format!("https://127.0.0.1:{}{path}", self.port))
            .output()
            .map_err(|e| format!("curl: {e}"))?;
        if !o.status.success() {
            return Err(String::from_utf8_lossy(&o.stderr).into_owned());
        }
        let out = String::from_utf8_lossy(&o.stdout).into_owned();
        let (body, code) = out.rsplit_once('\n').unwrap_or(("", "0"));
        Ok((code.trim().parse().unwrap_or(0), body.to_string()))
    }

    /// As admin: (status, JSON or Null); status 0 when curl itself failed.
    pub fn admin(&self, method: &str, path: &str, body: Option<(&str, &Value)>) -> (u16, Value) {
        match self.raw_as(method, path, body, &self.admin, None) {
            Ok((code, text)) => (code, serde_json::from_str(&text).unwrap_or(Value::Null)),
            Err(_) => (0, Value::Null),
        }
    }
}

/// A scenario against the binary's one API server.
pub type Scenario = fn(&mut KubeApi);

/// Run `scenarios` as trials sharing one API server, started by the first
/// scenario that runs (~5 s) and stopped before returning; each scenario
/// makes its own Nodes. `more`: further requirements, as for
/// [`super::run_requiring`] (the API server's binaries are one).
pub fn run_scenarios(
    scenarios: Vec<(&'static str, Scenario)>,
    more: &[(Option<String>, &str)],
) -> std::process::ExitCode {
    let bin = binaries();
    let api: std::sync::Arc<std::sync::Mutex<Option<KubeApi>>> = Default::default();
    let trials = scenarios
        .into_iter()
        .map(|(name, f)| {
            let api = api.clone();
            let bin = bin.clone();
            super::trial_with(name, move || {
                let mut guard = api.lock().unwrap_or_else(|p| p.into_inner());
                let api = guard.get_or_insert_with(|| KubeApi::start(bin.as_ref().unwrap()));
                f(api)
            })
        })
        .collect();
    let mut required = vec![(bin.as_ref().err().cloned(), "TG_REQUIRE_APISERVER")];
    required.extend(more.iter().cloned());
    let code = super::run_requiring(trials, &required);
    // Stop etcd and kube-apiserver before exiting.
    drop(api.lock().unwrap_or_else(|p| p.into_inner()).take());
    code
}

impl Drop for KubeApi {
    fn drop(&mut self) {
        for c in [self.apiserver.take(), self.etcd.take()]
            .into_iter()
            .flatten()
        {
            stop(c);
        }
    }
}

/// SIGTERM to `timeout`, which passes it on to the server and exits with
/// it (SIGKILL would orphan the server), then wait; SIGKILL only as a last
/// resort.
pub fn stop(mut c: Child) {
    // SAFETY: kill(2) on our own child.
    unsafe { libc::kill(c.id() as i32, libc::SIGTERM) };
    let deadline = Instant::now() + Duration::from_secs(15);
    while c.try_wait().ok().flatten().is_none() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = c.kill();
    let _ = c.wait();
}

fn fxhash(s: &str) -> u64 {
    s.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

fn leaf(
    ca: &CertifiedIssuer<'static, KeyPair>,
    cn: &str,
    org: Option<&str>,
    sans: &[&str],
    usage: ExtendedKeyUsagePurpose,
) -> Creds {
    leaf_valid(ca, cn, org, sans, usage, None)
}

fn leaf_valid(
    ca: &CertifiedIssuer<'static, KeyPair>,
    cn: &str,
    org: Option<&str>,
    sans: &[&str],
    usage: ExtendedKeyUsagePurpose,
    validity: Option<(time::OffsetDateTime, time::OffsetDateTime)>,
) -> Creds {
    let key = KeyPair::generate().unwrap();
    let mut p =
        CertificateParams::new(sans.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap();
    if let Some((from, to)) = validity {
        p.not_before = from;
        p.not_after = to;
    }
    p.distinguished_name.push(DnType::CommonName, cn);
    if let Some(o) = org {
        p.distinguished_name.push(DnType::OrganizationName, o);
    }
    p.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    p.extended_key_usages = vec![usage];
    let cert = p.signed_by(&key, ca).unwrap();
    Creds {
        cert: cert.pem(),
        key: key.serialize_pem(),
    }
}
