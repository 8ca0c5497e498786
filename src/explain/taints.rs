//! Pure: who puts the well-known taints on a Node, on what condition, and
//! who takes them off (Kubernetes' "Taints and Tolerations" and "Well-Known
//! Labels, Annotations and Taints" pages; pkg/controller/nodelifecycle).

use serde::Serialize;

/// What is known about one taint key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct WellKnown {
    pub key: &'static str,
    /// Who adds it.
    pub set_by: &'static str,
    /// On what.
    pub when: &'static str,
    /// Who removes it, and when.
    pub removed: &'static str,
    /// The Node condition (type, status) that keeps it on: removing the
    /// taint by hand while that holds does not stick.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub held_by: Option<(&'static str, &'static str)>,
    /// The node is broken (not a policy): the fix is on the node, never a
    /// toleration.
    pub broken: bool,
}

const LIFECYCLE: &str = "the node lifecycle controller (kube-controller-manager)";

pub const TABLE: &[WellKnown] = &[
    WellKnown {
        key: "node.kubernetes.io/not-ready",
        set_by: LIFECYCLE,
        when: "Ready=False: kubelet posts status but says the node is not ready",
        removed: "by the controller once kubelet reports Ready=True",
        held_by: Some(("Ready", "False")),
        broken: true,
    },
    WellKnown {
        key: "node.kubernetes.io/unreachable",
        set_by: LIFECYCLE,
        when: "Ready=Unknown: kubelet stopped posting status and renewing its lease (kubelet not running, or the node off or off the network)",
        removed: "by the controller once kubelet posts Ready=True again",
        held_by: Some(("Ready", "Unknown")),
        broken: true,
    },
    WellKnown {
        key: "node.kubernetes.io/memory-pressure",
        set_by: LIFECYCLE,
        when: "MemoryPressure=True (kubelet's eviction thresholds)",
        removed: "by the controller once kubelet reports MemoryPressure=False",
        held_by: Some(("MemoryPressure", "True")),
        broken: true,
    },
    WellKnown {
        key: "node.kubernetes.io/disk-pressure",
        set_by: LIFECYCLE,
        when: "DiskPressure=True (kubelet's eviction thresholds)",
        removed: "by the controller once kubelet reports DiskPressure=False",
        held_by: Some(("DiskPressure", "True")),
        broken: true,
    },
    WellKnown {
        key: "node.kubernetes.io/pid-pressure",
        set_by: LIFECYCLE,
        when: "PIDPressure=True (kubelet's eviction thresholds)",
        removed: "by the controller once kubelet reports PIDPressure=False",
        held_by: Some(("PIDPressure", "True")),
        broken: true,
    },
    WellKnown {
        key: "node.kubernetes.io/network-unavailable",
        set_by: LIFECYCLE,
        when: "NetworkUnavailable=True (set by the cloud route controller or the network plugin)",
        removed: "by the controller once the network plugin or route controller sets NetworkUnavailable=False",
        held_by: Some(("NetworkUnavailable", "True")),
        broken: true,
    },
    WellKnown {
        key: "node.kubernetes.io/unschedulable",
        set_by: LIFECYCLE,
        when: "spec.unschedulable=true (kubectl cordon or drain)",
        removed: "by the controller after kubectl uncordon",
        held_by: None,
        broken: false,
    },
    WellKnown {
        key: "node.kubernetes.io/out-of-service",
        set_by: "a person or a tool (non-graceful node shutdown)",
        when: "the node was shut down and will not come back soon: its pods are force-deleted and their volumes detached",
        removed: "by a person or that tool, once the node is back",
        held_by: None,
        broken: false,
    },
    WellKnown {
        key: "node.cloudprovider.kubernetes.io/uninitialized",
        set_by: "kubelet started with --cloud-provider=external",
        when: "at registration, until the cloud controller manager has initialised the Node",
        removed: "by the cloud controller manager",
        held_by: None,
        broken: true,
    },
    WellKnown {
        key: "node-role.kubernetes.io/control-plane",
        set_by: "kubeadm, at init and join --control-plane",
        when: "the node runs the control plane: workloads stay off it by design",
        removed: "only by a person who wants workloads there",
        held_by: None,
        broken: false,
    },
    WellKnown {
        key: "node-role.kubernetes.io/master",
        set_by: "kubeadm before 1.25, at init and join --control-plane",
        when: "the node runs the control plane: workloads stay off it by design",
        removed: "only by a person who wants workloads there",
        held_by: None,
        broken: false,
    },
];

/// The table's entry for `key`, if it is well known.
pub fn lookup(key: &str) -> Option<&'static WellKnown> {
    TABLE.iter().find(|w| w.key == key)
}
