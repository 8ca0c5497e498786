use clap::Args;

use super::{Context, NodeArgs};

/// The node daemon: re-evaluate on every change (systemd over D-Bus,
/// /proc/swaps, fstab, kubelet's config, the pause file), repair by policy
/// ([fix] and [run]), report on change. Stops cleanly on SIGTERM; SIGHUP
/// reloads the configuration.
#[derive(Debug, Args)]
pub struct RunCmd {
    #[command(flatten)]
    pub node: NodeArgs,
}

impl RunCmd {
    pub fn run(self, ctx: &Context) -> u8 {
        crate::run::run(crate::run::Options {
            host: ctx.host.clone(),
            config_path: ctx.config_path.clone(),
            proc_swaps: self.node.proc_swaps,
            cgroup_root: self.node.cgroup_root,
            assume_virtualization: ctx.assume_virtualization.clone(),
            node_name: self.node.node_name,
            kubeconfig: self.node.kubeconfig,
        })
    }
}
