//! packaging/kubernetes: every manifest deserializes into its k8s-openapi
//! type with nothing dropped (a misspelt field would be), and the kustomize
//! output of the base and both overlays renders and keeps its promises.
//! The RBAC rules are checked against a real API server in tests/kube.rs.

use std::path::{Path, PathBuf};
use std::process::Command;

use k8s_openapi::api::admissionregistration::v1::{
    ValidatingAdmissionPolicy, ValidatingAdmissionPolicyBinding,
};
use k8s_openapi::api::apps::v1::DaemonSet;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, ServiceAccount};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, Role, RoleBinding};
use serde_json::Value;

fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("packaging/kubernetes")
}

/// `doc` read as `T` and written back loses nothing: every field is one the
/// API type knows, with the right shape.
fn typed<T: serde::de::DeserializeOwned + serde::Serialize>(doc: &Value, what: &str) -> T {
    let t: T = serde_json::from_value(doc.clone())
        .unwrap_or_else(|e| panic!("{what}: not a valid {}: {e}", std::any::type_name::<T>()));
    let back = serde_json::to_value(&t).unwrap();
    assert_eq!(&back, doc, "{what}: fields lost or changed in the API type");
    t
}

fn check_doc(doc: &Value, what: &str) {
    let kind = doc["kind"].as_str().unwrap_or_default();
    match kind {
        "Namespace" => drop(typed::<Namespace>(doc, what)),
        "ServiceAccount" => drop(typed::<ServiceAccount>(doc, what)),
        "ClusterRole" => drop(typed::<ClusterRole>(doc, what)),
        "ClusterRoleBinding" => drop(typed::<ClusterRoleBinding>(doc, what)),
        "Role" => drop(typed::<Role>(doc, what)),
        "RoleBinding" => drop(typed::<RoleBinding>(doc, what)),
        "ConfigMap" => drop(typed::<ConfigMap>(doc, what)),
        "DaemonSet" => drop(typed::<DaemonSet>(doc, what)),
        "NetworkPolicy" => drop(typed::<NetworkPolicy>(doc, what)),
        "ValidatingAdmissionPolicy" => drop(typed::<ValidatingAdmissionPolicy>(doc, what)),
        "ValidatingAdmissionPolicyBinding" => {
            drop(typed::<ValidatingAdmissionPolicyBinding>(doc, what))
        }
        other => panic!("{what}: unexpected kind {other:?}"),
    }
}

fn yaml_docs(text: &str) -> Vec<Value> {
    text.split("\n---")
        .filter(|d| !d.trim().is_empty())
        .map(|d| serde_norway::from_str::<Value>(d).unwrap())
        .filter(|v| !v.is_null())
        .collect()
}

fn every_manifest_is_a_valid_api_object() {
    let base = dir().join("base");
    let mut n = 0;
    for e in std::fs::read_dir(&base).unwrap() {
        let p = e.unwrap().path();
        let name = p.file_name().unwrap().to_string_lossy().into_owned();
        if name == "kustomization.yaml" || !name.ends_with(".yaml") {
            continue;
        }
        for doc in yaml_docs(&std::fs::read_to_string(&p).unwrap()) {
            check_doc(&doc, &name);
            n += 1;
        }
    }
    assert_eq!(n, 11, "manifests in {}", base.display());
}

fn render(rel: &str) -> Vec<Value> {
    let out = Command::new("kubectl")
        .arg("kustomize")
        .arg(dir().join(rel))
        .output()
        .expect("running kubectl kustomize");
    assert!(
        out.status.success(),
        "kubectl kustomize {rel}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    yaml_docs(&String::from_utf8(out.stdout).unwrap())
}

fn find<'a>(docs: &'a [Value], kind: &str) -> &'a Value {
    docs.iter()
        .find(|d| d["kind"] == kind)
        .unwrap_or_else(|| panic!("no {kind} in the rendered manifests"))
}

fn config_of(docs: &[Value]) -> String {
    find(docs, "ConfigMap")["data"]["config.toml"]
        .as_str()
        .unwrap()
        .to_string()
}

fn kustomize_renders_and_keeps_its_promises() {
    let base = render(".");
    for d in &base {
        check_doc(d, "rendered base");
        assert_eq!(
            d["metadata"]["labels"]["app.kubernetes.io/name"], "taint-guard",
            "{d:#}"
        );
    }
    // Events only in `default` (the namespace Node events are recorded
    // in), the rest in taint-guard; no cluster-wide events.
    for d in &base {
        let ns = d["metadata"]["namespace"].as_str();
        match d["kind"].as_str().unwrap() {
            "Role" | "RoleBinding" => assert_eq!(ns, Some("default"), "{d:#}"),
            "ServiceAccount" | "ConfigMap" | "DaemonSet" | "NetworkPolicy" => {
                assert_eq!(ns, Some("taint-guard"), "{d:#}")
            }
            _ => assert_eq!(ns, None, "{d:#}"),
        }
    }
    let cr = find(&base, "ClusterRole");
    assert!(
        !cr["rules"].to_string().contains("events"),
        "events must not be cluster-wide: {cr:#}"
    );
    let ds = find(&base, "DaemonSet");
    let pod = &ds["spec"]["template"]["spec"];
    let c = &pod["containers"][0];
    assert_eq!(pod["priorityClassName"], "system-node-critical");
    assert_eq!(pod["hostPID"], false);
    assert_eq!(
        pod["tolerations"],
        serde_json::json!([{"operator": "Exists"}])
    );
    assert!(c["env"]
        .as_array()
        .unwrap()
        .iter()
        .any(|e| e["name"] == "NODE_NAME"
            && e["valueFrom"]["fieldRef"]["fieldPath"] == "spec.nodeName"));
    assert!(c["args"]
        .as_array()
        .unwrap()
        .iter()
        .any(|a| a == "--host-root=/host"));
    assert_eq!(c["securityContext"]["privileged"], false);
    assert_eq!(
        c["securityContext"]["capabilities"]["drop"],
        serde_json::json!(["ALL"])
    );
    assert_eq!(
        c["image"],
        format!("taint-guard:{}", env!("CARGO_PKG_VERSION")).as_str(),
        "the DaemonSet runs this version's image"
    );
    // kubelet probes from the node, at the pod's IP unless `host` is set
    // (127.0.0.1 there is the node's loopback, not the pod's): no `host`,
    // and the daemon listens on the pod's addresses at the probed port.
    assert_eq!(c["livenessProbe"]["httpGet"]["path"], "/livez");
    assert_eq!(c["readinessProbe"]["httpGet"]["path"], "/healthz");
    assert_eq!(
        c["livenessProbe"]["httpGet"]["port"],
        c["readinessProbe"]["httpGet"]["port"]
    );
    let probe = &c["livenessProbe"]["httpGet"];
    for p in ["livenessProbe", "readinessProbe"] {
        assert!(c[p]["httpGet"].get("host").is_none(), "{p}: {:#}", c[p]);
    }
    let port = c["ports"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == probe["port"] || p["containerPort"] == probe["port"])
        .unwrap_or_else(|| panic!("probe port {} is not a container port", probe["port"]))
        ["containerPort"]
        .as_u64()
        .unwrap();
    let listen_of = |docs: &[Value]| -> std::net::SocketAddr {
        let text = config_of(docs);
        let t: toml::Table = text.parse().unwrap();
        t["run"]["metrics_listen"]
            .as_str()
            .unwrap()
            .parse()
            .unwrap()
    };
    let listen = listen_of(&base);
    assert!(listen.ip().is_unspecified(), "metrics_listen {listen}");
    assert_eq!(u64::from(listen.port()), port);
    // Report-only: nobody, no capability, the host read-only, the
    // runtime's seccomp profile (tests/image.rs runs it for real).
    assert!(
        c["volumeMounts"]
            .as_array()
            .unwrap()
            .iter()
            .all(|m| m["readOnly"] == true),
        "{:#}",
        c["volumeMounts"]
    );
    let sc = &c["securityContext"];
    assert_eq!(sc["runAsUser"], 65534);
    assert_eq!(sc["runAsNonRoot"], true);
    assert_eq!(sc["allowPrivilegeEscalation"], false);
    assert_eq!(sc["readOnlyRootFilesystem"], true);
    assert_eq!(sc["capabilities"], serde_json::json!({"drop": ["ALL"]}));
    assert_eq!(sc["seccompProfile"]["type"], "RuntimeDefault");
    assert!(config_of(&base).contains("remediate = false"));
    // The repair overlay: repair on, root, privileged (swapoff(2) of a
    // block device, seccomp, CAP_SYS_ADMIN), the host writable (a swap file
    // is opened through it; fstab's rename).
    let repair = render("overlays/repair");
    assert!(config_of(&repair).contains("remediate = true"));
    let rc = &find(&repair, "DaemonSet")["spec"]["template"]["spec"]["containers"][0];
    let writable: Vec<&str> = rc["volumeMounts"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["readOnly"] != true)
        .map(|m| m["mountPath"].as_str().unwrap())
        .collect();
    assert_eq!(writable, vec!["/host"]);
    let rsc = &rc["securityContext"];
    assert_eq!(rsc["privileged"], true);
    assert_eq!(rsc["runAsUser"], 0);
    assert_eq!(rsc["runAsNonRoot"], false);
    assert!(rsc.get("capabilities").is_none(), "{rsc:#}");
    assert_eq!(listen_of(&repair), listen);
    // Next to the .deb: as the base, with repair pinned off and reporting
    // off (the host's service reports: one reporter per Node).
    let hso = render("overlays/host-service-only");
    let hc = &find(&hso, "DaemonSet")["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(hc, c, "host-service-only changes only the ConfigMap");
    assert_eq!(listen_of(&hso), listen);
    for d in repair.iter().chain(&hso) {
        check_doc(d, "rendered overlay");
    }
    // The ConfigMaps are valid taint-guard configuration (unknown keys are
    // errors, with file:line:column).
    for (what, docs) in [
        ("base", &base),
        ("repair", &repair),
        ("host-service-only", &hso),
    ] {
        let text = config_of(docs);
        let cfg = taint_guard::config::Config::from_texts(&[(
            PathBuf::from(format!("{what}/configmap/config.toml")),
            text,
        )])
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(cfg.run.remediate, what == "repair", "{what}");
        assert_eq!(cfg.run.report, what != "host-service-only", "{what}");
    }
    for (what, docs) in [
        ("base", &base),
        ("repair", &repair),
        ("host-service-only", &hso),
    ] {
        network_policy_fits_the_pod(docs, what);
    }
}

/// The NetworkPolicy selects the DaemonSet's pods (same namespace, its
/// selector a subset of the pod template's labels), isolates them both ways,
/// lets in only the port the daemon serves on (the probes' port) and out only
/// the API server's ports: no rule without ports (one would open everything),
/// no DNS (the API server is KUBERNETES_SERVICE_HOST, an IP).
fn network_policy_fits_the_pod(docs: &[Value], what: &str) {
    let ds = find(docs, "DaemonSet");
    let np_doc = find(docs, "NetworkPolicy");
    let np: NetworkPolicy = typed(np_doc, what);
    assert_eq!(
        np.metadata.namespace.as_deref(),
        ds["metadata"]["namespace"].as_str(),
        "{what}: the NetworkPolicy is not in the DaemonSet's namespace"
    );
    let spec = np.spec.unwrap();
    let pod_labels = ds["spec"]["template"]["metadata"]["labels"]
        .as_object()
        .unwrap();
    let sel = spec.pod_selector.clone().unwrap_or_default();
    assert!(
        sel.match_expressions.is_none(),
        "{what}: keep the selector to matchLabels"
    );
    let match_labels = sel.match_labels.clone().unwrap_or_default();
    assert!(
        !match_labels.is_empty(),
        "{what}: an empty podSelector selects every pod of the namespace"
    );
    for (k, v) in &match_labels {
        assert_eq!(
            pod_labels.get(k).and_then(Value::as_str),
            Some(v.as_str()),
            "{what}: podSelector {k}={v} does not select the DaemonSet's pods ({pod_labels:?})"
        );
    }
    // The DaemonSet's own selector picks the same pods.
    let ds_sel = ds["spec"]["selector"]["matchLabels"].as_object().unwrap();
    for (k, v) in &match_labels {
        assert_eq!(ds_sel.get(k).and_then(Value::as_str), Some(v.as_str()));
    }
    assert_eq!(
        spec.policy_types.as_deref(),
        Some(&["Ingress".to_string(), "Egress".to_string()][..]),
        "{what}"
    );
    use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
    let c = &ds["spec"]["template"]["spec"]["containers"][0];
    let ingress = spec.ingress.unwrap();
    assert_eq!(ingress.len(), 1, "{what}: {ingress:?}");
    let ports = ingress[0].ports.clone().unwrap_or_default();
    assert_eq!(ports.len(), 1, "{what}: ingress ports {ports:?}");
    assert_eq!(ports[0].protocol.as_deref(), Some("TCP"));
    let container_port = c["ports"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| match &ports[0].port {
            Some(IntOrString::String(name)) => p["name"] == name.as_str(),
            Some(IntOrString::Int(n)) => p["containerPort"] == *n,
            None => false,
        })
        .unwrap_or_else(|| panic!("{what}: ingress port {:?} is no container port", ports[0]));
    assert_eq!(container_port["name"], "metrics");
    assert_eq!(container_port["containerPort"], 9101);
    assert_eq!(
        c["livenessProbe"]["httpGet"]["port"], container_port["name"],
        "{what}: the probes use the port the policy lets in"
    );
    let egress = spec.egress.unwrap();
    assert!(
        !egress.is_empty(),
        "{what}: no egress: the API is unreachable"
    );
    let mut out: Vec<i32> = Vec::new();
    for rule in &egress {
        let ports = rule
            .ports
            .as_ref()
            .filter(|p| !p.is_empty())
            .unwrap_or_else(|| panic!("{what}: an egress rule without ports: {rule:?}"));
        for p in ports {
            assert_eq!(p.protocol.as_deref(), Some("TCP"), "{what}: {p:?}");
            assert!(p.end_port.is_none(), "{what}: {p:?}");
            match p.port {
                Some(IntOrString::Int(n)) => out.push(n),
                ref other => panic!("{what}: egress port {other:?}"),
            }
        }
    }
    out.sort();
    assert_eq!(
        out,
        vec![443, 6443],
        "{what}: egress to the API server only"
    );
    // No name is resolved: in-cluster config is KUBERNETES_SERVICE_HOST, and
    // nothing in the pod points at a kubeconfig with a host name.
    assert!(
        c["env"]
            .as_array()
            .unwrap()
            .iter()
            .all(|e| e["name"] != "KUBECONFIG"),
        "{what}"
    );
    assert!(
        c["args"]
            .as_array()
            .unwrap()
            .iter()
            .all(|a| !a.as_str().unwrap().starts_with("--kubeconfig")),
        "{what}"
    );
}

/// packaging/kubernetes/prometheus: every alert's expression parses as
/// PromQL and names only metrics the daemon exports (its own registry,
/// encoded), each alert has a `for`, a severity and a summary.
fn prometheus_rules_parse_and_name_the_daemons_metrics() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/packaging/kubernetes/prometheus/prometheusrule.yaml"
    );
    let doc: serde_json::Value =
        serde_norway::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    assert_eq!(doc["kind"], "PrometheusRule");
    // The daemon's registry, in the states the alerts are about: policy
    // unknown, an API request made. (Families without a series are not
    // encoded at all.)
    let m = taint_guard::run::metrics::Metrics::new();
    let mut obs: taint_guard::observation::Observation =
        serde_json::from_value(serde_json::json!({
            "units": [], "swap_now": {"failed": "x"}, "fstab": {"failed": "x"},
            "swap_units": {"failed": "x"}, "kubelet_policy": null
        }))
        .unwrap();
    obs.kubelet_policy = Some(taint_guard::kubelet::KubeletPolicy::unknown("x"));
    m.observed(&obs);
    m.api("get", "ok", 1);
    let exported = m.encode();
    assert!(
        exported.contains(r#"taint_guard_kubelet_policy{state="unknown",argv_check="none"} 1"#),
        "{exported}"
    );
    let mut alerts = Vec::new();
    for group in doc["spec"]["groups"].as_array().unwrap() {
        for rule in group["rules"].as_array().unwrap() {
            let name = rule["alert"].as_str().unwrap();
            let expr = rule["expr"].as_str().unwrap();
            promql_parser::parser::parse(expr).unwrap_or_else(|e| panic!("{name}: {expr}: {e}"));
            let metrics: Vec<&str> = expr
                .match_indices("taint_guard_")
                .map(|(i, _)| {
                    let rest = &expr[i..];
                    let end = rest
                        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                        .unwrap_or(rest.len());
                    &rest[..end]
                })
                .collect();
            assert!(!metrics.is_empty(), "{name} names no metric of ours");
            for m in metrics {
                let base = m.strip_suffix("_total").unwrap_or(m);
                assert!(
                    exported.contains(&format!("# TYPE {base} ")),
                    "{name}: the daemon exports no {m}:\n{exported}"
                );
            }
            assert!(rule["for"].is_string(), "{name}: no for");
            assert!(rule["labels"]["severity"].is_string(), "{name}");
            assert!(rule["annotations"]["summary"].is_string(), "{name}");
            alerts.push(name.to_string());
        }
    }
    for want in [
        "TaintGuardNodeNotRebootSafe",
        "TaintGuardRebootSafetyUnknown",
        "TaintGuardKubeletPolicyUnknown",
        "TaintGuardLostAtReboot",
        "TaintGuardReportStale",
    ] {
        assert!(
            alerts.iter().any(|a| a == want),
            "{want} missing: {alerts:?}"
        );
    }
}

fn main() -> std::process::ExitCode {
    let args = libtest_mimic::Arguments::from_args();
    let kubectl = Command::new("kubectl")
        .args(["version", "--client"])
        .output()
        .is_ok_and(|o| o.status.success());
    let required = std::env::var("TG_REQUIRE_KUSTOMIZE").as_deref() == Ok("1");
    let trial = |name: &'static str, f: fn()| {
        libtest_mimic::Trial::test(name, move || {
            std::panic::catch_unwind(f).map_err(|e| {
                e.downcast_ref::<String>()
                    .cloned()
                    .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_else(|| "panicked".into())
                    .into()
            })
        })
    };
    if !kubectl {
        eprintln!("kubectl (for `kubectl kustomize`) not found: the render test is ignored");
    }
    let render = if kubectl || required {
        trial(
            "kustomize_renders_and_keeps_its_promises",
            kustomize_renders_and_keeps_its_promises,
        )
    } else {
        trial(
            "kustomize_renders_and_keeps_its_promises",
            kustomize_renders_and_keeps_its_promises,
        )
        .with_ignored_flag(true)
    };
    let trials = vec![
        trial(
            "every_manifest_is_a_valid_api_object",
            every_manifest_is_a_valid_api_object,
        ),
        render,
        trial(
            "prometheus_rules_parse_and_name_the_daemons_metrics",
            prometheus_rules_parse_and_name_the_daemons_metrics,
        ),
    ];
    libtest_mimic::run(&args, trials).exit_code()
}
