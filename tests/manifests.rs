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
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding};
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
        "ConfigMap" => drop(typed::<ConfigMap>(doc, what)),
        "DaemonSet" => drop(typed::<DaemonSet>(doc, what)),
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
    assert_eq!(n, 8, "manifests in {}", base.display());
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
    docs.iter().find(|d| d["kind"] == kind).unwrap()
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
    // Next to the .deb: as the base, with repair pinned off.
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
    ];
    libtest_mimic::run(&args, trials).exit_code()
}
