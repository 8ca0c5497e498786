use std::path::PathBuf;

use clap::Args;

use super::Context;

/// The node daemon: re-evaluate on every change (systemd over D-Bus,
/// /proc/swaps, fstab, kubelet's config, the pause file), repair by policy
/// ([fix] and [run]), report on change. Stops cleanly on SIGTERM; SIGHUP
/// reloads the configuration.
#[derive(Debug, Args)]
pub struct RunCmd {
    /// Node name (default: $NODE_NAME, the node identity, kubelet's
    /// --hostname-override, the hostname).
    #[arg(long, value_name = "NAME")]
    pub node_name: Option<String>,

    /// Kubeconfig (default: $KUBECONFIG, in-cluster, the kubelet's
    /// /etc/kubernetes/kubelet.conf under --host-root).
    #[arg(long, value_name = "PATH")]
    pub kubeconfig: Option<PathBuf>,

    /// Where to read active swap from (swap is kernel-global).
    #[arg(long, default_value = "/proc/swaps", value_name = "PATH", hide = true)]
    pub proc_swaps: PathBuf,

    /// The cgroupfs root, for the swapoff guard.
    #[arg(
        long,
        default_value = "/sys/fs/cgroup",
        value_name = "PATH",
        hide = true
    )]
    pub cgroup_root: PathBuf,
}

impl RunCmd {
    pub fn run(self, ctx: &Context) -> u8 {
        crate::run::run(crate::run::Options {
            host: ctx.host.clone(),
            config_path: ctx.config_path.clone(),
            proc_swaps: self.proc_swaps,
            cgroup_root: self.cgroup_root,
            node_name: self.node_name,
            kubeconfig: self.kubeconfig,
        })
    }
}
