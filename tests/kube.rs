//! Reporting against a real Kubernetes API server (etcd + kube-apiserver on
//! loopback, see harness/kube.rs) with the node's own credentials, the Node
//! authorizer and NodeRestriction, from a real-systemd node (harness/mod.rs).
//!
//! Ignored (shown as such) where the binaries or nspawn are missing; with
//! TG_REQUIRE_APISERVER=1 / TG_REQUIRE_SYSTEMD=1 (CI) a missing part fails.

mod harness;

use std::path::Path;

use harness::kube::{Creds, KubeApi};
use harness::{Kubelet, Node};
use serde_json::{json, Value};

const UNREACHABLE: [(&str, &str); 2] = [
    ("node.kubernetes.io/unreachable", "NoExecute"),
    ("node.kubernetes.io/unreachable", "NoSchedule"),
];

/// Lay out the kubelet's credentials as kubeadm does: the CA in
/// /etc/kubernetes/pki, the client certificate and key in one PEM under
/// /var/lib/kubelet/pki, and /etc/kubernetes/kubelet.conf naming them by
/// absolute (`relative = false`) or relative paths.
fn install_kubelet_creds(root: &Path, api: &KubeApi, creds: &Creds, relative: bool) {
    let put = |p: &str, c: &str| {
        let f = root.join(p.trim_start_matches('/'));
        std::fs::create_dir_all(f.parent().unwrap()).unwrap();
        std::fs::write(f, c).unwrap();
    };
    put("/etc/kubernetes/pki/ca.crt", &api.ca_pem);
    let pem = format!("{}{}", creds.cert, creds.key);
    if relative {
        put("/etc/kubernetes/pki/kubelet-client.pem", &pem);
        put(
            "/etc/kubernetes/kubelet.conf",
            &api.kubeconfig(
                "pki/ca.crt",
                "pki/kubelet-client.pem",
                "pki/kubelet-client.pem",
            ),
        );
    } else {
        put("/var/lib/kubelet/pki/kubelet-client-current.pem", &pem);
        put(
            "/etc/kubernetes/kubelet.conf",
            &api.kubeconfig(
                "/etc/kubernetes/pki/ca.crt",
                "/var/lib/kubelet/pki/kubelet-client-current.pem",
                "/var/lib/kubelet/pki/kubelet-client-current.pem",
            ),
        );
    }
}

fn condition<'a>(node: &'a Value, type_: &str) -> Option<&'a Value> {
    node["status"]["conditions"]
        .as_array()?
        .iter()
        .find(|c| c["type"] == type_)
}

fn writes(audit: &[(String, String)]) -> Vec<&(String, String)> {
    audit
        .iter()
        .filter(|(v, _)| v != "get" && v != "list" && v != "watch")
        .collect()
}

/// The seed incident reported with the node's own credentials; an
/// identical run writes nothing; --fix flips the condition.
fn seed_incident_reported_with_node_credentials(api: &mut KubeApi) {
    let name = "seed-1";
    api.create_node(name, "Unknown", &UNREACHABLE);
    let creds = api.node_creds(name);
    let node = Node::boot("kseed", Kubelet::Kubeadm, |root| {
        install_kubelet_creds(root, api, &creds, false)
    });
    let user = format!("system:node:{name}");

    // No --node-name: the name comes from the kubelet's certificate.
    let (code, v) = node.check_json(&["--report"]);
    assert_eq!(code, 2, "{v:#}");
    let r = &v["report"];
    assert_eq!(r["state"], "updated", "{r:#}");
    assert_eq!(r["node"], name, "{r:#}");
    assert_eq!(r["identity"], user.as_str(), "{r:#}");
    let n = api.node(name);
    let ann = &n["metadata"]["annotations"];
    assert_eq!(ann["taint-guard.io/status"], "critical", "{n:#}");
    assert_eq!(ann["taint-guard.io/reboot-safe"], "false");
    let c = condition(&n, "KubeletHostProblem").expect("condition");
    assert_eq!(c["status"], "True");
    assert_eq!(c["reason"], "UnitDisabled");
    // kubelet's own conditions are all still there.
    for t in ["Ready", "MemoryPressure", "DiskPressure", "PIDPressure"] {
        assert!(condition(&n, t).is_some(), "{t} lost: {n:#}");
    }
    assert_eq!(condition(&n, "Ready").unwrap()["status"], "Unknown");
    let evs = api.events(name);
    assert_eq!(evs.len(), 1, "{evs:#?}");
    assert_eq!(evs[0]["type"], "Warning");
    assert_eq!(evs[0]["reason"], "UnitDisabled");
    assert!(r["taints"]
        .as_array()
        .unwrap()
        .iter()
        .any(|t| t.as_str().unwrap().contains(
            "node.kubernetes.io/unreachable:NoExecute is caused by finding unit-disabled"
        )));
    let first = api.audit(&user);
    assert_eq!(
        writes(&first)
            .iter()
            .map(|(v, _)| v.as_str())
            .collect::<Vec<_>>(),
        vec!["patch", "patch", "create"],
        "{first:#?}"
    );

    // The same again: one GET, no write.
    let (code, v) = node.check_json(&["--report"]);
    assert_eq!(code, 2);
    assert_eq!(v["report"]["state"], "unchanged", "{v:#}");
    let second = api.audit(&user);
    assert_eq!(second.len(), first.len() + 1, "{second:#?}");
    assert_eq!(second.last().unwrap().0, "get");

    // Repaired: the condition flips to False with a new transition time.
    let t0 = c["lastTransitionTime"].as_str().unwrap().to_string();
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let (code, v) = node.check_json(&["--fix", "--report"]);
    assert_eq!(code, 0, "{v:#}");
    let n = api.node(name);
    let c = condition(&n, "KubeletHostProblem").unwrap();
    assert_eq!(c["status"], "False", "{n:#}");
    assert!(
        c["lastTransitionTime"].as_str().unwrap() > t0.as_str(),
        "{c:#}"
    );
    assert_eq!(n["metadata"]["annotations"]["taint-guard.io/status"], "ok");
    assert!(condition(&n, "Ready").is_some());

    // Nothing changes, but the heartbeat is older than the period (0 here):
    // the condition is rewritten with a new heartbeat, same transition.
    let c1 = c.clone();
    std::fs::write(
        &node.config,
        format!(
            "[fix]\nsettle_secs = 1\n[report]\nheartbeat_mins = 0\n{}",
            harness::HOST_KERNEL
        ),
    )
    .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let (_, v) = node.check_json(&["--report"]);
    assert_eq!(v["report"]["state"], "updated", "{v:#}");
    let n = api.node(name);
    let c2 = condition(&n, "KubeletHostProblem").unwrap();
    assert!(
        c2["lastHeartbeatTime"].as_str() > c1["lastHeartbeatTime"].as_str(),
        "{c2:#}"
    );
    assert_eq!(c2["lastTransitionTime"], c1["lastTransitionTime"]);
    assert_eq!(c2["status"], "False");
}

/// The same repair failing on two runs: the second is not dropped as
/// AlreadyExists but counted on the Event (node credentials may patch
/// Events, not get them).
fn recurring_repair_failure_is_counted(api: &mut KubeApi) {
    let name = "loop-5";
    api.create_node(name, "True", &[]);
    let creds = api.node_creds(name);
    let node = Node::boot("kloop", Kubelet::Kubeadm, |root| {
        install_kubelet_creds(root, api, &creds, false);
        harness::kubelet_dropin(
            root,
            "20-false.conf",
            "[Service]\nExecStart=\nExecStart=/bin/false\n",
        );
    });
    node.exec("systemctl enable kubelet.service");
    for _ in 0..2 {
        let (code, v) = node.check_json(&["--fix", "--report"]);
        assert_eq!(code, 2, "{v:#}");
        assert!(v["report"]["errors"].is_null(), "{v:#}");
    }
    let evs = api.events(name);
    let failed: Vec<&Value> = evs
        .iter()
        .filter(|e| e["reason"] == "StartFailed")
        .collect();
    assert_eq!(failed.len(), 1, "{evs:#?}");
    assert_eq!(failed[0]["count"], 2, "{:#}", failed[0]);
    assert!(failed[0]["lastTimestamp"].as_str() >= failed[0]["firstTimestamp"].as_str());
}

/// NodeRestriction: this node's credentials cannot write another Node; the
/// refusal is said clearly and the local result is kept.
fn another_nodes_name_is_forbidden(api: &mut KubeApi) {
    api.create_node("own-2", "True", &[]);
    api.create_node("other-2", "True", &[]);
    let creds = api.node_creds("own-2");
    let node = Node::boot("kforbid", Kubelet::Kubeadm, |root| {
        install_kubelet_creds(root, api, &creds, true)
    });
    let (code, v) = node.check_json(&["--report", "--node-name", "other-2"]);
    assert_eq!(code, 2, "local result kept: {v:#}");
    let r = &v["report"];
    assert_eq!(r["state"], "forbidden", "{r:#}");
    let s = r["summary"].as_str().unwrap();
    assert!(
        s.contains("NodeRestriction lets system:node:own-2 write only node own-2"),
        "{s}"
    );
    let other = api.node("other-2");
    assert!(
        other["metadata"]["annotations"]["taint-guard.io/status"].is_null(),
        "{other:#}"
    );
    assert!(condition(&other, "KubeletHostProblem").is_none());
    // Its own name works with the same (relative-path) kubeconfig.
    let (_, v) = node.check_json(&["--report"]);
    assert_eq!(v["report"]["state"], "updated", "{v:#}");
}

/// Another writer changes the Node between our GET and our PATCH: no
/// conflict (our patches carry no resourceVersion), and nothing of theirs
/// is lost.
fn concurrent_writer_is_not_clobbered(api: &mut KubeApi) {
    let name = "conc-3";
    api.create_node(name, "True", &[]);
    let creds = api.node_creds(name);
    let node = Node::boot("kconc", Kubelet::Kubeadm, |root| {
        install_kubelet_creds(root, api, &creds, false)
    });
    let child = node
        .tg_command(&["check", "--output", "json", "--report"])
        .env("FAILPOINTS", "report::after-get=sleep(2000)")
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(800));
    let before = api.node(name)["metadata"]["resourceVersion"].clone();
    api.admin_call(
        "PATCH",
        &format!("/api/v1/nodes/{name}"),
        Some((
            "application/merge-patch+json",
            &json!({"metadata": {"annotations": {"example.com/owner": "ansible"}, "labels": {"rack": "r7"}}}),
        )),
    );
    api.admin_call(
        "PATCH",
        &format!("/api/v1/nodes/{name}/status"),
        Some((
            "application/strategic-merge-patch+json",
            &json!({"status": {"conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady", "message": "again", "lastHeartbeatTime": "2026-11-28T00:00:05Z", "lastTransitionTime": "2026-11-28T00:00:00Z"}]}}),
        )),
    );
    let out = child.wait_with_output().unwrap();
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["report"]["state"], "updated", "{v:#}");
    let n = api.node(name);
    assert_ne!(n["metadata"]["resourceVersion"], before);
    let ann = &n["metadata"]["annotations"];
    assert_eq!(ann["example.com/owner"], "ansible", "{n:#}");
    assert_eq!(ann["taint-guard.io/status"], "critical", "{n:#}");
    assert_eq!(n["metadata"]["labels"]["rack"], "r7");
    assert_eq!(condition(&n, "Ready").unwrap()["message"], "again");
    assert_eq!(
        condition(&n, "KubeletHostProblem").unwrap()["status"],
        "True"
    );
}

/// The API server goes away: the local verdict and exit code are the same,
/// the report says unreachable; back again, the next run reports.
fn api_server_down_then_back(api: &mut KubeApi) {
    let name = "down-4";
    api.create_node(name, "True", &[]);
    let creds = api.node_creds(name);
    let node = Node::boot("kdown", Kubelet::Kubeadm, |root| {
        install_kubelet_creds(root, api, &creds, false)
    });
    let (code_local, _) = node.check_json(&[]);
    api.stop_apiserver();
    let t = std::time::Instant::now();
    let (code, v) = node.check_json(&["--report"]);
    assert_eq!(code, code_local, "{v:#}");
    assert_eq!(v["report"]["state"], "unreachable", "{v:#}");
    assert!(t.elapsed() < std::time::Duration::from_secs(40), "bounded");
    api.start_apiserver();
    let (code, v) = node.check_json(&["--report"]);
    assert_eq!(code, code_local);
    assert_eq!(v["report"]["state"], "updated", "{v:#}");
    assert_eq!(
        api.node(name)["metadata"]["annotations"]["taint-guard.io/status"],
        "critical"
    );
}

/// The DaemonSet's ServiceAccount, bound by packaging/kubernetes's RBAC,
/// may do exactly what reporting needs and nothing else (asked of the real
/// authorizer with SubjectAccessReviews, and tried with impersonation).
fn daemonset_rbac_is_exactly_what_reporting_needs(api: &mut KubeApi) {
    api.apply_daemonset_rbac();
    let user = "system:serviceaccount:taint-guard:taint-guard";
    let groups = [
        "system:serviceaccounts",
        "system:serviceaccounts:taint-guard",
        "system:authenticated",
    ];
    let allowed = |verb: &str, resource: &str, sub: &str, ns: &str| -> bool {
        let review = json!({
            "apiVersion": "authorization.k8s.io/v1", "kind": "SubjectAccessReview",
            "spec": {"user": user, "groups": groups,
                     "resourceAttributes": {"verb": verb, "group": "", "resource": resource,
                                            "subresource": sub, "namespace": ns}}});
        let v = api.admin_call(
            "POST",
            "/apis/authorization.k8s.io/v1/subjectaccessreviews",
            Some(("application/json", &review)),
        );
        v["status"]["allowed"] == true
    };
    let want_allowed = [
        ("get", "nodes", "", ""),
        ("list", "nodes", "", ""),
        ("watch", "nodes", "", ""),
        ("patch", "nodes", "", ""),
        ("patch", "nodes", "status", ""),
        ("create", "events", "", "default"),
        ("patch", "events", "", "default"),
    ];
    let want_denied = [
        ("create", "nodes", "", ""),
        ("update", "nodes", "", ""),
        ("delete", "nodes", "", ""),
        ("update", "nodes", "status", ""),
        ("get", "nodes", "proxy", ""),
        ("get", "events", "", "default"),
        ("delete", "events", "", "default"),
        // Events only in `default`, not cluster-wide.
        ("create", "events", "", "kube-system"),
        ("patch", "events", "", "kube-system"),
        ("create", "events", "", "taint-guard"),
        ("create", "events", "", ""),
        ("get", "secrets", "", "kube-system"),
        ("list", "pods", "", ""),
        ("create", "pods", "eviction", "default"),
        ("patch", "configmaps", "", "taint-guard"),
        ("create", "serviceaccounts", "token", "taint-guard"),
    ];
    for (verb, res, sub, ns) in want_allowed {
        assert!(
            allowed(verb, res, sub, ns),
            "{verb} {res}/{sub} in {ns:?} must be allowed"
        );
    }
    for (verb, res, sub, ns) in want_denied {
        assert!(
            !allowed(verb, res, sub, ns),
            "{verb} {res}/{sub} in {ns:?} must be denied"
        );
    }
    // And for real, as that service account.
    api.create_node("rbac-6", "True", &[]);
    let admin = api.admin.clone();
    let as_sa = Some((user, &groups[..]));
    let patch = json!({"metadata": {"annotations": {"taint-guard.io/status": "ok"}}});
    let (code, body) = api
        .raw_as(
            "PATCH",
            "/api/v1/nodes/rbac-6",
            Some(("application/merge-patch+json", &patch)),
            &admin,
            as_sa,
        )
        .unwrap();
    assert_eq!(code, 200, "{body}");
    let (code, body) = api
        .raw_as("DELETE", "/api/v1/nodes/rbac-6", None, &admin, as_sa)
        .unwrap();
    assert_eq!(code, 403, "{body}");
}

/// The daemon in pod shape: the host root at a separate path, the node's
/// bus through DBUS_SYSTEM_BUS_ADDRESS, NODE_NAME as the downward API sets
/// it, and the DaemonSet's ServiceAccount token (TokenRequest) bound by the
/// packaged RBAC: it reports the seed incident on its Node.
fn daemon_in_pod_shape_reports_its_node(api: &mut KubeApi) {
    api.apply_daemonset_rbac();
    let name = "pod-7";
    api.create_node(name, "True", &[]);
    let token = api.daemonset_token();
    let node = Node::boot("kpod", Kubelet::Kubeadm, |_| {});
    let kc = node.dir.join("sa.kubeconfig");
    let ca = node.dir.join("ca.crt");
    std::fs::write(&ca, &api.ca_pem).unwrap();
    std::fs::write(
        &kc,
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- cluster:\n    certificate-authority: {}\n    server: {}\n  name: c\ncontexts:\n- context:\n    cluster: c\n    user: sa\n  name: c\ncurrent-context: c\nusers:\n- name: sa\n  user:\n    token: {token}\n",
            ca.display(),
            api.server()
        ),
    )
    .unwrap();
    std::fs::write(
        &node.config,
        "[run]\nremediate = false\nreport_initial_delay_secs = 0\n",
    )
    .unwrap();
    let mut daemon = node
        .tg_command(&["run", "--kubeconfig", kc.to_str().unwrap()])
        .env("NODE_NAME", name)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let n = loop {
        let n = api.node(name);
        if n["metadata"]["annotations"]["taint-guard.io/status"] == "critical" {
            break n;
        }
        if std::time::Instant::now() > deadline {
            // SAFETY: kill(2) on our own child.
            unsafe { libc::kill(daemon.id() as i32, libc::SIGTERM) };
            let _ = daemon.wait();
            panic!("the daemon did not report within 60 s: {n:#}");
        }
        std::thread::sleep(std::time::Duration::from_millis(250));
    };
    // SAFETY: kill(2) on our own child.
    unsafe { libc::kill(daemon.id() as i32, libc::SIGTERM) };
    let st = daemon.wait().unwrap();
    assert!(st.success(), "daemon exit: {st}");
    assert_eq!(
        condition(&n, "KubeletHostProblem").unwrap()["reason"],
        "UnitDisabled"
    );
    let sa = "system:serviceaccount:taint-guard:taint-guard";
    let writes = api.audit(sa);
    assert!(
        writes
            .iter()
            .any(|(v, u)| v == "patch" && u.starts_with(&format!("/api/v1/nodes/{name}"))),
        "{writes:#?}"
    );
    // Nothing but its own Node and Events was touched; the one watch is of
    // its own Node (field-selected), for the out-of-service taint.
    let own_watch = |v: &str, u: &str| {
        v == "watch"
            && u.starts_with("/api/v1/nodes?")
            && u.contains(&format!("fieldSelector=metadata.name%3D{name}&"))
    };
    assert!(
        writes
            .iter()
            .all(|(v, u)| u.starts_with(&format!("/api/v1/nodes/{name}"))
                || u.starts_with("/api/v1/namespaces/default/events")
                || own_watch(v, u)),
        "{writes:#?}"
    );
    assert!(writes.iter().any(|(v, u)| own_watch(v, u)), "{writes:#?}");
    // The kubelet's swap policy and units were still read from the host.
    assert!(node.root.join("etc/fstab").exists());
}

fn main() -> std::process::ExitCode {
    harness::kube::run_scenarios(
        vec![
            (
                "seed_incident_reported_with_node_credentials",
                seed_incident_reported_with_node_credentials,
            ),
            (
                "another_nodes_name_is_forbidden",
                another_nodes_name_is_forbidden,
            ),
            (
                "concurrent_writer_is_not_clobbered",
                concurrent_writer_is_not_clobbered,
            ),
            ("api_server_down_then_back", api_server_down_then_back),
            (
                "recurring_repair_failure_is_counted",
                recurring_repair_failure_is_counted,
            ),
            (
                "daemonset_rbac_is_exactly_what_reporting_needs",
                daemonset_rbac_is_exactly_what_reporting_needs,
            ),
            (
                "daemon_in_pod_shape_reports_its_node",
                daemon_in_pod_shape_reports_its_node,
            ),
        ],
        &[],
    )
}
