//! `explain nodes` on a 1,000-node fleet against an in-process API server
//! (kube's tower-test mock answering the two LISTs with JSON serialised
//! the way the API server sends it): LISTs, decoding, judging and the
//! table, per run. Prints figures; asserts none.
//!
//!     cargo bench --bench explain            # NODES=5000 for more

use std::time::{Duration, Instant};

use http::{Request, Response};
use kube::client::Body;
use kube::Client;
use serde_json::{json, Value};

use taint_guard::cli::explain::human_fleet;
use taint_guard::explain::{self, fetch};

/// A Node as kubelet and taint-guard leave it: labels, conditions, a few
/// taints on one in ten, taint-guard's annotations and condition.
fn node(i: usize) -> Value {
    let bad = i % 10 == 0;
    let findings = if bad {
        json!([{"id": "unit-disabled", "severity": "critical", "subject": "kubelet.service",
            "message": "kubelet.service is not enabled (UnitFileState=disabled): it will not start at boot",
            "remedy": "systemctl enable --now kubelet.service"}])
    } else {
        json!([])
    };
    let cond = |t: &str, s: &str| {
        json!({"type": t, "status": s, "reason": "KubeletReady", "message": "kubelet is posting ready status",
               "lastHeartbeatTime": "2026-12-04T12:00:00Z", "lastTransitionTime": "2026-12-01T08:00:00Z"})
    };
    json!({
        "metadata": {"name": format!("node-{i:05}"), "uid": format!("uid-{i}"), "resourceVersion": "1",
            "labels": {"kubernetes.io/hostname": format!("node-{i:05}"), "kubernetes.io/os": "linux",
                       "kubernetes.io/arch": "amd64", "node.kubernetes.io/instance-type": "m5.large"},
            "annotations": {"taint-guard.io/status": if bad { "critical" } else { "ok" },
                "taint-guard.io/reboot-safe": if bad { "false" } else { "true" },
                "taint-guard.io/findings": findings.to_string(),
                "taint-guard.io/since": "2026-12-04T11:00:00Z",
                "taint-guard.io/reporter": format!("host/node-{i:05}"),
                "node.alpha.kubernetes.io/ttl": "0",
                "volumes.kubernetes.io/controller-managed-attach-detach": "true"}},
        "spec": {"podCIDR": "10.244.0.0/24",
            "taints": if bad { json!([{"key": "node.kubernetes.io/unreachable", "effect": "NoSchedule"},
                {"key": "node.kubernetes.io/unreachable", "effect": "NoExecute", "timeAdded": "2026-12-04T11:50:00Z"}]) } else { json!(null) }},
        "status": {
            "capacity": {"cpu": "2", "memory": "8Gi", "pods": "110"},
            "allocatable": {"cpu": "2", "memory": "7Gi", "pods": "110"},
            "conditions": [cond("MemoryPressure", "False"), cond("DiskPressure", "False"),
                cond("PIDPressure", "False"), cond("Ready", if bad { "Unknown" } else { "True" }),
                {"type": "KubeletHostProblem", "status": if bad { "True" } else { "False" },
                 "reason": "KubeletHostOK", "message": "fine",
                 "lastHeartbeatTime": "2026-12-04T11:55:00Z", "lastTransitionTime": "2026-12-04T11:00:00Z"}],
            "addresses": [{"type": "InternalIP", "address": format!("10.0.{}.{}", i / 250, i % 250)},
                          {"type": "Hostname", "address": format!("node-{i:05}")}],
            "nodeInfo": {"kubeletVersion": "v1.20.2", "kernelVersion": "6.1.0", "osImage": "Debian GNU/Linux 12",
                "containerRuntimeVersion": "containerd://1.6.20", "kubeProxyVersion": "v1.20.2",
                "operatingSystem": "linux", "architecture": "amd64", "machineID": "m", "systemUUID": "s",
                "bootID": "b"}}
    })
}

fn lease(i: usize) -> Value {
    json!({"metadata": {"name": format!("node-{i:05}"), "namespace": "kube-node-lease", "resourceVersion": "1"},
           "spec": {"holderIdentity": format!("node-{i:05}"), "leaseDurationSeconds": 40,
                    "renewTime": "2026-12-04T11:59:50.000000Z"}})
}

fn list(kind: &str, items: Vec<Value>) -> Vec<u8> {
    serde_json::to_vec(&json!({"kind": format!("{kind}List"), "apiVersion": "v1",
        "metadata": {"resourceVersion": "1"}, "items": items}))
    .unwrap()
}

fn main() {
    let n: usize = std::env::var("NODES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1000);
    let runs = 30;
    let nodes = list("Node", (0..n).map(node).collect());
    let leases = list("Lease", (0..n).map(lease).collect());
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut times = Vec::new();
    let mut requests = 0;
    let mut bytes = 0;
    rt.block_on(async {
        for _ in 0..runs + 1 {
            let (service, mut handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
            let (nb, lb) = (nodes.clone(), leases.clone());
            let server = tokio::spawn(async move {
                let mut served = 0;
                while let Some((req, send)) = handle.next_request().await {
                    served += 1;
                    let body = if req.uri().path().contains("leases") {
                        lb.clone()
                    } else {
                        nb.clone()
                    };
                    send.send_response(
                        Response::builder()
                            .header("content-type", "application/json")
                            .body(Body::from(body))
                            .unwrap(),
                    );
                }
                served
            });
            let client = Client::new(service, "default");
            let t0 = Instant::now();
            let (ns, ls) = fetch::fleet(&client, Duration::from_secs(30))
                .await
                .unwrap();
            let rows = explain::fleet(&ns, &ls, jiff::Timestamp::now());
            let text = human_fleet(&rows);
            let took = t0.elapsed();
            drop(client);
            requests = server.await.unwrap();
            bytes = text.len();
            times.push(took.as_secs_f64());
        }
    });
    times.remove(0); // warm-up
    times.sort_by(f64::total_cmp);
    let pct = |p: f64| times[((times.len() - 1) as f64 * p).round() as usize] * 1e3;
    println!(
        "explain nodes, {n} nodes ({:.1} MiB of Node JSON), in-process API server, {runs} runs:",
        nodes.len() as f64 / (1 << 20) as f64
    );
    println!(
        "  median {:.1} ms, p90 {:.1} ms, max {:.1} ms; {requests} requests per run; table {bytes} bytes",
        pct(0.5),
        pct(0.9),
        pct(1.0)
    );
}
