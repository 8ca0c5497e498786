//! What on the node brings a module or sysctl back by itself at every
//! start, or makes it unneeded, recognised from configuration on disk: the
//! CNI (its config in /etc/cni/net.d), Docker, ufw. Pure: observe reads the
//! files.
//!
//! - `br_netfilter` and `net.bridge.bridge-nf-call-*` matter only where pod
//!   traffic crosses a Linux bridge (the `bridge` plugin, flannel, weave);
//!   Cilium, Calico and the AWS VPC CNI route pods without one, and kubeadm
//!   ≥ 1.30 no longer requires the module.
//! - `net.ipv4.ip_forward` is set again at every start by the CNI `bridge`
//!   and `ptp` plugins (at every pod network setup), Calico's Felix
//!   (`IPForwarding`, on by default), Cilium's agent, dockerd (unless
//!   `"ip-forward": false`), and ufw when its sysctl file sets it.

use serde::{Deserialize, Serialize};

/// The facts observe gathered.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Platform {
    /// The CNI config the runtime uses (the first of /etc/cni/net.d by
    /// name, `.conf`, `.conflist`, `.json`) and its plugin types.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cni: Option<Cni>,
    /// docker.service starts at boot and dockerd sets ip_forward.
    #[serde(default)]
    pub docker_forwards: bool,
    /// ufw starts at boot, is enabled, and this file of its sets
    /// ip_forward to 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ufw_forwards: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cni {
    pub file: String,
    pub types: Vec<String>,
}

/// CNI plugins that route pods without a Linux bridge.
const UNBRIDGED: [&str; 3] = ["cilium-cni", "calico", "aws-cni"];

/// Chained plugins that put no pod anywhere (they adjust what the main
/// plugin set up).
const CHAINED: [&str; 7] = [
    "portmap",
    "bandwidth",
    "tuning",
    "firewall",
    "sbr",
    "loopback",
    "egress-cni",
];

impl Platform {
    /// Why this module or sysctl need not be checked at all here.
    pub fn not_needed(&self, name: &str) -> Option<String> {
        let bridge_thing = name == "br_netfilter" || name.starts_with("net.bridge.bridge-nf-call-");
        let cni = self.cni.as_ref()?;
        // Only a CNI known to route without a bridge, and nothing else in
        // the chain that is not known (multus, say, delegates elsewhere).
        let known = cni
            .types
            .iter()
            .all(|t| UNBRIDGED.contains(&t.as_str()) || CHAINED.contains(&t.as_str()));
        let routed = cni.types.iter().any(|t| UNBRIDGED.contains(&t.as_str()));
        if !bridge_thing || !known || !routed {
            return None;
        }
        Some(format!(
            "the CNI ({}: {}) puts no pod on a Linux bridge",
            cni.file,
            cni.types.join(", ")
        ))
    }

    /// What sets this sysctl again at every start, so that not persisting
    /// it loses nothing.
    pub fn reapplied_by(&self, key: &str) -> Option<String> {
        if key != "net.ipv4.ip_forward" {
            return None;
        }
        if let Some(c) = &self.cni {
            let has = |t: &str| c.types.iter().any(|x| x == t);
            if has("bridge") || has("ptp") || has("flannel") {
                return Some(format!(
                    "the CNI bridge/ptp plugin ({}) enables forwarding at every pod network setup",
                    c.file
                ));
            }
            if has("calico") {
                return Some(format!(
                    "Calico's Felix sets it at every start (IPForwarding, on by default; {})",
                    c.file
                ));
            }
            if has("cilium-cni") {
                return Some(format!(
                    "Cilium's agent sets it at every start ({})",
                    c.file
                ));
            }
        }
        if self.docker_forwards {
            return Some(
                "dockerd sets it at every start (docker.service starts at boot; no \"ip-forward\": false in /etc/docker/daemon.json)".into(),
            );
        }
        self.ufw_forwards.as_ref().map(|f| {
            format!("ufw applies {f} at every start (ufw.service starts at boot, ENABLED=yes)")
        })
    }
}

/// The plugin types of one CNI config file (`plugins[].type` of a
/// `.conflist`, `type` of a `.conf`); `None` when it is not one.
pub fn cni_types(text: &str) -> Option<Vec<String>> {
    let v: serde_json::Value = serde_json::from_str(text).ok()?;
    let types: Vec<String> = match v.get("plugins").and_then(|p| p.as_array()) {
        Some(ps) => ps
            .iter()
            .filter_map(|p| p.get("type").and_then(|t| t.as_str()).map(String::from))
            .collect(),
        None => v
            .get("type")
            .and_then(|t| t.as_str())
            .map(|t| vec![t.to_string()])
            .unwrap_or_default(),
    };
    (!types.is_empty()).then_some(types)
}

/// Whether dockerd forwards: `ip-forward` not false in daemon.json.
pub fn docker_forwards(daemon_json: Option<&str>) -> bool {
    match daemon_json.and_then(|t| serde_json::from_str::<serde_json::Value>(t).ok()) {
        Some(v) => v.get("ip-forward").and_then(|b| b.as_bool()) != Some(false),
        None => daemon_json.is_none(),
    }
}

/// Whether a ufw sysctl file sets ip_forward to 1 (`net/ipv4/ip_forward=1`
/// or dotted), the last line winning.
pub fn ufw_sets_forward(text: &str) -> bool {
    let mut on = false;
    for l in text.lines().map(str::trim) {
        if l.starts_with('#') || l.starts_with(';') {
            continue;
        }
        if let Some((k, v)) = l.split_once('=') {
            if k.trim().replace('/', ".") == "net.ipv4.ip_forward" {
                on = v.trim() == "1";
            }
        }
    }
    on
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with(types: &[&str]) -> Platform {
        Platform {
            cni: Some(Cni {
                file: "/etc/cni/net.d/05-x.conflist".into(),
                types: types.iter().map(|s| s.to_string()).collect(),
            }),
            ..Default::default()
        }
    }

    #[test]
    fn bridge_things_only_where_the_cni_bridges() {
        assert!(with(&["cilium-cni"]).not_needed("br_netfilter").is_some());
        assert!(with(&["calico", "portmap", "bandwidth"])
            .not_needed("net.bridge.bridge-nf-call-iptables")
            .is_some());
        assert!(with(&["flannel", "portmap"])
            .not_needed("br_netfilter")
            .is_none());
        assert!(with(&["bridge"]).not_needed("br_netfilter").is_none());
        assert!(with(&["cilium-cni"]).not_needed("overlay").is_none());
        // A CNI not known to route without a bridge: as configured.
        assert!(with(&["multus"]).not_needed("br_netfilter").is_none());
        assert!(with(&["macvlan"]).not_needed("br_netfilter").is_none());
        // No CNI config known: as configured.
        assert!(Platform::default().not_needed("br_netfilter").is_none());
    }

    #[test]
    fn who_sets_ip_forward_again() {
        assert!(with(&["calico"])
            .reapplied_by("net.ipv4.ip_forward")
            .unwrap()
            .contains("Felix"));
        assert!(with(&["cilium-cni"])
            .reapplied_by("net.ipv4.ip_forward")
            .is_some());
        assert!(with(&["bridge"])
            .reapplied_by("net.ipv4.ip_forward")
            .is_some());
        assert!(with(&["macvlan"])
            .reapplied_by("net.ipv4.ip_forward")
            .is_none());
        assert!(with(&["calico"])
            .reapplied_by("net.bridge.bridge-nf-call-iptables")
            .is_none());
        let docker = Platform {
            docker_forwards: true,
            ..Default::default()
        };
        assert!(docker
            .reapplied_by("net.ipv4.ip_forward")
            .unwrap()
            .contains("dockerd"));
        assert!(docker_forwards(None));
        assert!(docker_forwards(Some("{\"log-driver\": \"json-file\"}")));
        assert!(!docker_forwards(Some("{\"ip-forward\": false}")));
        assert!(ufw_sets_forward("# comment\nnet/ipv4/ip_forward=1\n"));
        assert!(!ufw_sets_forward("#net/ipv4/ip_forward=1\n"));
        assert_eq!(
            cni_types(
                r#"{"cniVersion":"0.3.1","name":"k8s-pod-network","plugins":[{"type":"calico"},{"type":"portmap"}]}"#
            ),
            Some(vec!["calico".into(), "portmap".into()])
        );
        assert_eq!(
            cni_types(r#"{"type":"bridge","bridge":"cni0"}"#),
            Some(vec!["bridge".into()])
        );
    }
}
