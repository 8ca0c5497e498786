//! packaging/kubernetes's ValidatingAdmissionPolicy: its own CEL, read
//! from the YAML and run by the `cel` crate (no API server that enforces
//! admission policies can be built here: the newest buildable is 1.20; the
//! policy keeps to the CEL both engines share, as its header says).
//!
//! `object` and `oldObject` are what the real v1.20.2 API server makes of a
//! PATCH: each patch is sent (as admin) to a kubelet-like Node and the Node
//! before and the answer after are the policy's input, as an admission
//! plugin sees them (the server has merged the patch and kept what the
//! endpoint may not change). The patches taint-guard sends come from its
//! reporter's own builders (`report::node::{changes, sign,
//! annotations_patch, condition_patch}`); each is admitted. Each abuse a
//! compromised pod could try with `patch` on Nodes is refused, with the
//! message naming the field.

mod harness;

use std::collections::HashMap;
use std::sync::Arc;

use cel::{Context, Env, Program, Value as Cel};
use harness::kube::KubeApi;
use jiff::Timestamp;
use k8s_openapi::api::core::v1::Node;
use serde::Deserialize;
use serde_json::{json, Value};

use taint_guard::config::Config;
use taint_guard::evaluate::{self, Finding, FindingKind, Severity};
use taint_guard::remedy::Remedy;
use taint_guard::report::node as reporting;

const SA: &str = "system:serviceaccount:taint-guard:taint-guard";
const CLAIM: &str = "authentication.kubernetes.io/node-name";
const MERGE: &str = "application/merge-patch+json";
const STRATEGIC: &str = "application/strategic-merge-patch+json";

/// The policy's expressions, compiled.
struct Policy {
    env: Arc<Env>,
    match_conditions: Vec<(String, Program)>,
    variables: Vec<(String, Program)>,
    /// (expression's source, program, messageExpression)
    validations: Vec<(String, Program, Program)>,
}

impl Policy {
    fn load() -> Policy {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/packaging/kubernetes/base/validatingadmissionpolicy.yaml"
        );
        let doc: Value =
            serde_norway::Deserializer::from_str(&std::fs::read_to_string(path).unwrap())
                .map(|d| Value::deserialize(d).unwrap())
                .next()
                .unwrap();
        let env = Arc::new(Env::stdlib());
        let compile = |src: &str| {
            env.compile(src)
                .unwrap_or_else(|e| panic!("{path}: {src}: {e}"))
        };
        let spec = &doc["spec"];
        let named = |key: &str| -> Vec<(String, Program)> {
            spec[key]
                .as_array()
                .map(|a| {
                    a.iter()
                        .map(|v| {
                            (
                                v["name"].as_str().unwrap().to_string(),
                                compile(v["expression"].as_str().unwrap()),
                            )
                        })
                        .collect()
                })
                .unwrap_or_default()
        };
        let validations = spec["validations"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| {
                let src = v["expression"].as_str().unwrap();
                assert_eq!(v["reason"], "Forbidden", "{src}");
                (
                    src.to_string(),
                    compile(src),
                    compile(
                        v["messageExpression"]
                            .as_str()
                            .expect("a messageExpression"),
                    ),
                )
            })
            .collect();
        assert_eq!(spec["failurePolicy"], "Fail");
        Policy {
            match_conditions: named("matchConditions"),
            variables: named("variables"),
            validations,
            env,
        }
    }

    /// Ok: admitted (or not this policy's business); Err: the message of
    /// every validation that refused, in order. An expression that errors
    /// or is not a bool fails the test: on a real Node it must not.
    fn admit(&self, object: &Value, old: &Value, request: &Value) -> Result<(), Vec<String>> {
        let mut ctx = Context::with_env(self.env.clone());
        ctx.add_variable("object", object).unwrap();
        ctx.add_variable("oldObject", old).unwrap();
        ctx.add_variable("request", request).unwrap();
        let truth = |ctx: &Context, what: &str, p: &Program| match p.execute(ctx) {
            Ok(Cel::Bool(b)) => b,
            other => panic!("{what}: {other:?}"),
        };
        for (name, p) in &self.match_conditions {
            if !truth(&ctx, name, p) {
                return Ok(());
            }
        }
        let mut vars: HashMap<String, Cel> = HashMap::new();
        for (name, p) in &self.variables {
            let v = p
                .execute(&ctx)
                .unwrap_or_else(|e| panic!("variables.{name}: {e:?}"));
            vars.insert(name.clone(), v);
            ctx.add_variable_from_value("variables", Cel::from(vars.clone()));
        }
        let refused: Vec<String> = self
            .validations
            .iter()
            .filter(|(src, p, _)| !truth(&ctx, src, p))
            .map(|(src, _, m)| match m.execute(&ctx) {
                Ok(Cel::String(s)) => s.to_string(),
                other => panic!("messageExpression of {src}: {other:?}"),
            })
            .collect();
        if refused.is_empty() {
            Ok(())
        } else {
            Err(refused)
        }
    }
}

/// The admission request for a PATCH of `name` (its status when `status`)
/// by taint-guard's service account whose token names `claim`'s Node.
fn request(name: &str, status: bool, claim: Option<&str>) -> Value {
    let mut user = json!({"username": SA,
        "groups": ["system:serviceaccounts", "system:serviceaccounts:taint-guard", "system:authenticated"]});
    if let Some(c) = claim {
        user["extra"] = json!({ CLAIM: [c] });
    }
    let mut r = json!({"operation": "UPDATE", "name": name, "userInfo": user,
        "kind": {"group": "", "version": "v1", "kind": "Node"},
        "resource": {"group": "", "version": "v1", "resource": "nodes"}});
    if status {
        r["subResource"] = json!("status");
    }
    r
}

/// A Node as kubelet keeps it: labels, podCIDR, conditions, addresses,
/// capacity, nodeInfo; `taints` and `unschedulable` as given.
fn kubelet_like(api: &KubeApi, name: &str, taints: &[(&str, &str)], cordoned: bool) -> Value {
    api.create_node(name, "True", taints);
    api.admin_call(
        "PATCH",
        &format!("/api/v1/nodes/{name}"),
        Some((
            MERGE,
            &json!({"metadata": {"labels": {"kubernetes.io/os": "linux", "kubernetes.io/arch": "amd64"},
                                 "annotations": {"node.alpha.kubernetes.io/ttl": "0"}},
                    "spec": {"podCIDR": "10.244.1.0/24", "podCIDRs": ["10.244.1.0/24"],
                             "unschedulable": cordoned}}),
        )),
    );
    api.admin_call(
        "PATCH",
        &format!("/api/v1/nodes/{name}/status"),
        Some((
            STRATEGIC,
            &json!({"status": {
                "addresses": [{"type": "InternalIP", "address": "10.0.0.7"}, {"type": "Hostname", "address": name}],
                "capacity": {"cpu": "2", "memory": "8Gi", "pods": "110"},
                "allocatable": {"cpu": "2", "memory": "7Gi", "pods": "110"},
                "daemonEndpoints": {"kubeletEndpoint": {"Port": 10250}},
                "nodeInfo": {"kubeletVersion": "v1.20.2", "machineID": "m", "systemUUID": "s", "bootID": "b",
                             "kernelVersion": "6.1.0", "osImage": "Debian GNU/Linux 12",
                             "containerRuntimeVersion": "containerd://1.6.20", "kubeProxyVersion": "v1.20.2",
                             "operatingSystem": "linux", "architecture": "amd64"}}}),
        )),
    )
}

/// Send `patch` (as admin) and return (oldObject, object): the Node before,
/// and the API server's answer.
fn patched(api: &KubeApi, name: &str, status: bool, ctype: &str, patch: &Value) -> (Value, Value) {
    let old = api.node(name);
    let path = if status {
        format!("/api/v1/nodes/{name}/status")
    } else {
        format!("/api/v1/nodes/{name}")
    };
    let new = api.admin_call("PATCH", &path, Some((ctype, patch)));
    (old, new)
}

fn finding(kind: FindingKind, msg: &str, remedy: &[&str]) -> Finding {
    Finding::new(
        kind,
        Severity::Critical,
        msg.into(),
        Some(Remedy::cmd(remedy)),
        true,
    )
}

/// Every patch taint-guard's reporter makes, from its own builders, over a
/// Node's life: the first report of the seed incident, a heartbeat, the
/// node healed, another reporter taking over, a repair event's counting
/// (not a Node write). Each is admitted; the last Node still has kubelet's
/// conditions untouched.
fn every_patch_taint_guard_sends_is_admitted(api: &mut KubeApi) {
    let p = Policy::load();
    let name = "adm-own";
    kubelet_like(api, name, &[], false);
    let cfg = Config::default();
    let seed = evaluate::assess(
        vec![
            finding(
                FindingKind::UnitDisabled {
                    unit: "kubelet.service".into(),
                },
                "kubelet.service is not enabled",
                &["systemctl", "enable", "--now", "kubelet.service"],
            ),
            finding(
                FindingKind::UnitInactive {
                    unit: "kubelet.service".into(),
                },
                "kubelet.service is not running",
                &["systemctl", "start", "kubelet.service"],
            ),
        ],
        &cfg,
    );
    let healed = evaluate::assess(vec![], &cfg);
    let t0: Timestamp = "2026-12-04T12:00:00Z".parse().unwrap();
    let heartbeat = jiff::SignedDuration::from_mins(20);
    let steps = [
        (&seed, t0, "pod/taint-guard-x2"),
        (
            &seed,
            t0 + jiff::SignedDuration::from_mins(25),
            "pod/taint-guard-x2",
        ),
        (
            &healed,
            t0 + jiff::SignedDuration::from_mins(26),
            "pod/taint-guard-x2",
        ),
        (
            &healed,
            t0 + jiff::SignedDuration::from_mins(27),
            "host/worker-7",
        ),
    ];
    let mut sent = 0;
    for (a, now, me) in steps {
        let node: Node = serde_json::from_value(api.node(name)).unwrap();
        let mut ch = reporting::changes(&node, a, &[], 4096, heartbeat, now);
        reporting::sign(&node, &mut ch, me);
        let mut patches = Vec::new();
        if let Some(ann) = &ch.annotations {
            patches.push((false, MERGE, reporting::annotations_patch(ann)));
        }
        if let Some(c) = &ch.condition {
            patches.push((true, STRATEGIC, reporting::condition_patch(c)));
        }
        assert!(!patches.is_empty(), "{me} at {now}: nothing to write?");
        for (status, ctype, body) in patches {
            let (old, new) = patched(api, name, status, ctype, &body);
            let r = p.admit(&new, &old, &request(name, status, Some(name)));
            assert_eq!(r, Ok(()), "taint-guard's own patch refused: {body:#}");
            sent += 1;
        }
    }
    assert!(sent >= 6, "only {sent} patches");
    // Removing our own annotation and our condition is ours to do, too.
    let (old, new) = patched(
        api,
        name,
        false,
        MERGE,
        &json!({"metadata": {"annotations": {"taint-guard.io/since": null}}}),
    );
    assert_eq!(
        p.admit(&new, &old, &request(name, false, Some(name))),
        Ok(())
    );
    let (old, new) = patched(
        api,
        name,
        true,
        STRATEGIC,
        &json!({"status": {"conditions": [{"type": "KubeletHostProblem", "$patch": "delete"}]}}),
    );
    assert_eq!(
        p.admit(&new, &old, &request(name, true, Some(name))),
        Ok(())
    );
    let n = api.node(name);
    for t in ["Ready", "MemoryPressure", "DiskPressure", "PIDPressure"] {
        assert!(
            n["status"]["conditions"]
                .as_array()
                .unwrap()
                .iter()
                .any(|c| c["type"] == t),
            "{t} lost"
        );
    }
}

/// One abuse: `patch` sent to Node `name` (created kubelet-like with
/// `taints`/`cordoned`), the policy must refuse, first with a message that
/// contains `says`.
struct Abuse {
    what: &'static str,
    taints: &'static [(&'static str, &'static str)],
    cordoned: bool,
    status: bool,
    ctype: &'static str,
    patch: Value,
    says: &'static str,
}

fn every_listed_abuse_is_refused_with_its_field(api: &mut KubeApi) {
    let p = Policy::load();
    let abuses = vec![
        Abuse {
            what: "a label added",
            taints: &[],
            cordoned: false,
            status: false,
            ctype: MERGE,
            patch: json!({"metadata": {"labels": {"disktype": "ssd"}}}),
            says: "may not change the label disktype of Node",
        },
        Abuse {
            what: "a NodeRestriction label (attracts workloads)",
            taints: &[],
            cordoned: false,
            status: false,
            ctype: MERGE,
            patch: json!({"metadata": {"labels": {"node-restriction.kubernetes.io/pci": "true"}}}),
            says: "may not change the label node-restriction.kubernetes.io/pci",
        },
        Abuse {
            what: "a label removed",
            taints: &[],
            cordoned: false,
            status: false,
            ctype: MERGE,
            patch: json!({"metadata": {"labels": {"kubernetes.io/os": null}}}),
            says: "may not change the label kubernetes.io/os",
        },
        Abuse {
            what: "a taint added",
            taints: &[],
            cordoned: false,
            status: false,
            ctype: MERGE,
            patch: json!({"spec": {"taints": [{"key": "evil", "effect": "NoExecute"}]}}),
            says: "may not change spec.taints of Node",
        },
        Abuse {
            what: "a taint removed",
            taints: &[("dedicated", "NoSchedule")],
            cordoned: false,
            status: false,
            ctype: MERGE,
            patch: json!({"spec": {"taints": null}}),
            says: "may not change spec.taints of Node",
        },
        Abuse {
            what: "cordoned",
            taints: &[],
            cordoned: false,
            status: false,
            ctype: MERGE,
            patch: json!({"spec": {"unschedulable": true}}),
            says: "may not change spec.unschedulable of Node",
        },
        Abuse {
            what: "a drained node uncordoned",
            taints: &[],
            cordoned: true,
            status: false,
            ctype: MERGE,
            patch: json!({"spec": {"unschedulable": null}}),
            says: "may not change spec.unschedulable of Node",
        },
        Abuse {
            what: "a foreign annotation",
            taints: &[],
            cordoned: false,
            status: false,
            ctype: MERGE,
            patch: json!({"metadata": {"annotations": {"example.com/owner": "me"}}}),
            says: "only annotations under taint-guard.io/, not example.com/owner",
        },
        Abuse {
            what: "another component's annotation removed",
            taints: &[],
            cordoned: false,
            status: false,
            ctype: MERGE,
            patch: json!({"metadata": {"annotations": {"node.alpha.kubernetes.io/ttl": null}}}),
            says: "only annotations under taint-guard.io/, not node.alpha.kubernetes.io/ttl",
        },
        Abuse {
            what: "a foreign annotation through nodes/status",
            taints: &[],
            cordoned: false,
            status: true,
            ctype: STRATEGIC,
            patch: json!({"metadata": {"annotations": {"example.com/owner": "me"}}}),
            says: "only annotations under taint-guard.io/, not example.com/owner",
        },
        Abuse {
            what: "a label through nodes/status",
            taints: &[],
            cordoned: false,
            status: true,
            ctype: STRATEGIC,
            patch: json!({"metadata": {"labels": {"node-restriction.kubernetes.io/x": "y"}}}),
            says: "may not change the label node-restriction.kubernetes.io/x",
        },
        Abuse {
            what: "a finalizer",
            taints: &[],
            cordoned: false,
            status: false,
            ctype: MERGE,
            patch: json!({"metadata": {"finalizers": ["example.com/hold"]}}),
            says: "may not change metadata.finalizers of Node",
        },
        Abuse {
            what: "kubelet's Ready condition changed",
            taints: &[],
            cordoned: false,
            status: true,
            ctype: STRATEGIC,
            patch: json!({"status": {"conditions": [{"type": "Ready", "status": "False", "reason": "Evil"}]}}),
            says: "only the KubeletHostProblem condition, not Ready of Node",
        },
        Abuse {
            what: "kubelet's DiskPressure condition removed",
            taints: &[],
            cordoned: false,
            status: true,
            ctype: STRATEGIC,
            patch: json!({"status": {"conditions": [{"type": "DiskPressure", "$patch": "delete"}]}}),
            says: "only the KubeletHostProblem condition, not DiskPressure",
        },
        Abuse {
            what: "a condition of our own invention",
            taints: &[],
            cordoned: false,
            status: true,
            ctype: STRATEGIC,
            patch: json!({"status": {"conditions": [{"type": "Evil", "status": "True"}]}}),
            says: "only the KubeletHostProblem condition, not Evil",
        },
        Abuse {
            what: "an address",
            taints: &[],
            cordoned: false,
            status: true,
            ctype: STRATEGIC,
            patch: json!({"status": {"addresses": [{"type": "InternalIP", "address": "10.9.9.9"}]}}),
            says: "may not change status.addresses of Node",
        },
        Abuse {
            what: "capacity",
            taints: &[],
            cordoned: false,
            status: true,
            ctype: STRATEGIC,
            patch: json!({"status": {"capacity": {"cpu": "64"}}}),
            says: "may not change status.capacity of Node",
        },
        Abuse {
            what: "allocatable",
            taints: &[],
            cordoned: false,
            status: true,
            ctype: STRATEGIC,
            patch: json!({"status": {"allocatable": {"pods": "1000"}}}),
            says: "may not change status.allocatable of Node",
        },
        Abuse {
            what: "the kubelet endpoint",
            taints: &[],
            cordoned: false,
            status: true,
            ctype: STRATEGIC,
            patch: json!({"status": {"daemonEndpoints": {"kubeletEndpoint": {"Port": 31337}}}}),
            says: "may not change status.daemonEndpoints of Node",
        },
    ];
    for (i, a) in abuses.iter().enumerate() {
        let name = format!("adm-abuse-{i}");
        kubelet_like(api, &name, a.taints, a.cordoned);
        let (old, new) = patched(api, &name, a.status, a.ctype, &a.patch);
        assert_ne!(
            strip(&old),
            strip(&new),
            "{}: the API server changed nothing, so this case tests nothing",
            a.what
        );
        match p.admit(&new, &old, &request(&name, a.status, Some(&name))) {
            Ok(()) => panic!("{}: admitted: {:#}", a.what, a.patch),
            Err(msgs) => {
                assert!(
                    msgs[0].contains(a.says),
                    "{}: first refusal {:?}, wanted {:?} (all: {msgs:#?})",
                    a.what,
                    msgs[0],
                    a.says
                );
                eprintln!("{:<45} → {}", a.what, msgs[0]);
            }
        }
    }
}

/// The Node minus what the API server itself moves on every write.
fn strip(n: &Value) -> Value {
    let mut n = n.clone();
    if let Some(m) = n["metadata"].as_object_mut() {
        m.remove("resourceVersion");
        m.remove("managedFields");
    }
    n
}

/// taint-guard's own annotation patch, but on another Node than its pod's,
/// or from a token without the node claim (a cluster before 1.30): refused.
/// Other users (kubelet, a person) are not this policy's business.
fn other_nodes_and_other_users(api: &mut KubeApi) {
    let p = Policy::load();
    let name = "adm-other";
    kubelet_like(api, name, &[], false);
    let ours = reporting::annotations_patch(
        &[("taint-guard.io/status".to_string(), "ok".to_string())]
            .into_iter()
            .collect(),
    );
    let (old, new) = patched(api, name, false, MERGE, &ours);
    let refused = p
        .admit(&new, &old, &request(name, false, Some("worker-9")))
        .unwrap_err();
    assert_eq!(
        refused,
        ["taint-guard may modify only the Node its pod runs on, not adm-other"]
    );
    let refused = p
        .admit(&new, &old, &request(name, false, None))
        .unwrap_err();
    assert!(
        refused[0].contains("only the Node its pod runs on"),
        "{refused:?}"
    );
    // A person relabelling a Node: not matched, admitted by this policy.
    let (old, new) = patched(
        api,
        name,
        false,
        MERGE,
        &json!({"metadata": {"labels": {"disktype": "ssd"}}}),
    );
    let mut person = request(name, false, None);
    person["userInfo"]["username"] = json!("kubernetes-admin");
    assert_eq!(p.admit(&new, &old, &person), Ok(()));
}

fn main() -> std::process::ExitCode {
    harness::kube::run_scenarios(
        vec![
            (
                "every_patch_taint_guard_sends_is_admitted",
                every_patch_taint_guard_sends_is_admitted,
            ),
            (
                "every_listed_abuse_is_refused_with_its_field",
                every_listed_abuse_is_refused_with_its_field,
            ),
            ("other_nodes_and_other_users", other_nodes_and_other_users),
        ],
        &[],
    )
}
