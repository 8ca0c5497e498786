//! The cgroup driver kubelet uses against the one its container runtime
//! uses. kubelet's comes from `--cgroup-driver` or `cgroupDriver`
//! (v1beta1's default: `cgroupfs`; kubeadm writes `systemd`). containerd's
//! is the `SystemdCgroup` option of the runc runtime it runs pods with, in
//! its config file:
//!
//! - `version = 2`: `[plugins."io.containerd.grpc.v1.cri".containerd]`'s
//!   `default_runtime_name` (default `runc`), then that runtime's
//!   `options.SystemdCgroup`;
//! - `version = 3` (containerd 2): not compared — containerd 2 reports its
//!   driver over CRI and kubelet ≥ 1.31 takes it from there.
//!
//! Only an explicit `SystemdCgroup` is taken as known: its default differs
//! between containerd releases, and a config with `imports` merges files
//! not read here. Anything else is unknown, and nothing is claimed.
//!
//! Pure: the config's text comes in.

use serde::{Deserialize, Serialize};

/// What containerd's config says of its cgroup driver.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RuntimeDriver {
    /// `systemd` or `cgroupfs`, and the line that said so.
    Known {
        driver: String,
        from: String,
    },
    Unknown {
        why: String,
    },
}

/// Whether containerd's config turns its CRI plugin off
/// (`disabled_plugins`, containerd 1's `cri` / `io.containerd.grpc.v1.cri`,
/// containerd 2's `io.containerd.cri.v1.*`): where it says so. containerd
/// then accepts connections on its socket and answers no CRI call.
pub fn containerd_cri_disabled(path: &str, text: &str) -> Option<String> {
    let t: toml::Table = text.parse().ok()?;
    let list = t.get("disabled_plugins")?.as_array()?;
    let hit = list.iter().filter_map(|v| v.as_str()).find(|p| {
        *p == "cri" || *p == "io.containerd.grpc.v1.cri" || p.starts_with("io.containerd.cri.v1.")
    })?;
    let line = text
        .lines()
        .position(|l| l.trim_start().starts_with("disabled_plugins"))
        .map(|n| format!("{path}:{}", n + 1))
        .unwrap_or_else(|| path.to_string());
    Some(format!("disabled_plugins names {hit:?} ({line})"))
}

/// containerd 2's program (its Go build information names
/// `github.com/containerd/containerd/v2`) reads even a `version = 2` file,
/// migrating it, and reports its cgroup driver over CRI, which kubelet 1.31
/// and later take instead of their own setting: the file's driver is then
/// not what decides. `program`: the path of containerd's ExecStart, and
/// its build information when it could be read.
pub fn containerd2(program: &str, modinfo: Option<&str>) -> Option<RuntimeDriver> {
    let main = modinfo.and_then(crate::gobuild::main_path)?;
    main.starts_with("github.com/containerd/containerd/v2/")
        .then(|| RuntimeDriver::Unknown {
            why: format!(
                "{program} is containerd 2 ({main}): it reads a version 2 file by migrating it and reports its cgroup driver over CRI, which kubelet 1.31 and later use instead of their own setting; not compared"
            ),
        })
}

/// containerd's driver from its config file `path` (`text`; `None`: the
/// file does not exist).
pub fn containerd(path: &str, text: Option<&str>) -> RuntimeDriver {
    let unknown = |why: String| RuntimeDriver::Unknown { why };
    let Some(text) = text else {
        return unknown(format!(
            "{path} does not exist: containerd's built-in default, which differs between releases"
        ));
    };
    let t: toml::Table = match text.parse() {
        Ok(t) => t,
        Err(e) => return unknown(format!("{path} is not TOML: {}", e.message())),
    };
    // `imports = []` (what `containerd config default` writes) merges
    // nothing; any other value names files that may override this one.
    match t.get("imports") {
        None => {}
        Some(toml::Value::Array(a)) if a.is_empty() => {}
        Some(_) => {
            return unknown(format!(
                "{path} imports other files, which are not read here"
            ))
        }
    }
    let version = t.get("version").and_then(|v| v.as_integer()).unwrap_or(1);
    let plugin = match version {
        2 => "io.containerd.grpc.v1.cri",
        // containerd 2 reports its driver over CRI, and kubelet ≥ 1.31
        // (KubeletCgroupDriverFromCRI, on by default) takes it from there.
        3 => {
            return unknown(format!(
                "{path} is containerd 2's (version 3): kubelet 1.31 and later take the driver from containerd over CRI"
            ))
        }
        v => return unknown(format!("{path}: config version {v} is not read here")),
    };
    let cri = t
        .get("plugins")
        .and_then(|p| p.get(plugin))
        .and_then(|c| c.get("containerd"));
    let name = cri
        .and_then(|c| c.get("default_runtime_name"))
        .and_then(|n| n.as_str())
        .unwrap_or("runc");
    let opt = cri
        .and_then(|c| c.get("runtimes"))
        .and_then(|r| r.get(name))
        .and_then(|r| r.get("options"))
        .and_then(|o| o.get("SystemdCgroup"));
    match opt.and_then(|v| v.as_bool()) {
        Some(b) => {
            // The line, for the message, when only one line sets it.
            let lines: Vec<usize> = text
                .lines()
                .enumerate()
                .filter(|(_, l)| l.trim_start().starts_with("SystemdCgroup"))
                .map(|(i, _)| i + 1)
                .collect();
            let line = match lines.as_slice() {
                [n] => format!("{path}:{n}"),
                _ => path.to_string(),
            };
            RuntimeDriver::Known {
                driver: if b { "systemd" } else { "cgroupfs" }.into(),
                from: format!("SystemdCgroup = {b} ({line})"),
            }
        }
        None => unknown(format!(
            "{path} does not set SystemdCgroup for runtime {name:?}: containerd's default, which differs between releases"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const V2: &str = "version = 2\n[plugins.\"io.containerd.grpc.v1.cri\".containerd.runtimes.runc]\n  runtime_type = \"io.containerd.runc.v2\"\n  [plugins.\"io.containerd.grpc.v1.cri\".containerd.runtimes.runc.options]\n    SystemdCgroup = true\n";

    #[test]
    fn explicit_settings_only() {
        assert_eq!(
            containerd("/etc/containerd/config.toml", Some(V2)),
            RuntimeDriver::Known {
                driver: "systemd".into(),
                from: "SystemdCgroup = true (/etc/containerd/config.toml:5)".into()
            }
        );
        let v2 = V2.replace("true", "false");
        assert!(matches!(
            containerd("/c", Some(&v2)),
            RuntimeDriver::Known { driver, .. } if driver == "cgroupfs"
        ));
        let v3 = "version = 3\n[plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc.options]\nSystemdCgroup = false\n";
        assert!(matches!(
            containerd("/c", Some(v3)),
            RuntimeDriver::Unknown { .. }
        ));
        // Another default runtime without the option: unknown.
        let other = format!("{V2}[plugins.\"io.containerd.grpc.v1.cri\".containerd]\ndefault_runtime_name = \"kata\"\n");
        assert!(matches!(
            containerd("/c", Some(&other)),
            RuntimeDriver::Unknown { .. }
        ));
        // `containerd config default` (1.7) writes `imports = []`: nothing
        // merged, the file's own setting is the driver.
        let default_style = format!("disabled_plugins = []\nimports = []\noom_score = 0\n{V2}");
        assert!(matches!(
            containerd("/c", Some(&default_style)),
            RuntimeDriver::Known { driver, .. } if driver == "systemd"
        ));
        for t in [
            None,
            Some("imports = [\"/etc/containerd/conf.d/*.toml\"]\nversion = 2\n"),
            Some("imports = \"/etc/containerd/conf.d/x.toml\"\nversion = 2\n"),
            Some("version = 2\n"),
            Some("[[x"),
            Some("version = 1\n"),
        ] {
            assert!(
                matches!(containerd("/c", t), RuntimeDriver::Unknown { .. }),
                "{t:?}"
            );
        }
    }
}

#[cfg(test)]
mod cri_tests {
    use super::{containerd2, containerd_cri_disabled, RuntimeDriver};

    /// containerd 2 with a migrated version 2 file: not compared (before,
    /// the file's SystemdCgroup was compared with kubelet's setting).
    #[test]
    fn containerd_2_is_not_compared() {
        let two = "path\tgithub.com/containerd/containerd/v2/cmd/containerd\nmod\tgithub.com/containerd/containerd/v2\tv2.0.2\t\n";
        assert!(matches!(
            containerd2("/usr/bin/containerd", Some(two)),
            Some(RuntimeDriver::Unknown { .. })
        ));
        let one = "path\tgithub.com/containerd/containerd/cmd/containerd\nmod\tgithub.com/containerd/containerd\tv1.7.22\t\n";
        assert_eq!(containerd2("/usr/bin/containerd", Some(one)), None);
        assert_eq!(containerd2("/usr/bin/containerd", None), None);
    }

    #[test]
    fn cri_turned_off_in_containerd_config() {
        let p = "/etc/containerd/config.toml";
        assert_eq!(
            containerd_cri_disabled(p, "version = 2\ndisabled_plugins = [\"cri\"]\n").as_deref(),
            Some("disabled_plugins names \"cri\" (/etc/containerd/config.toml:2)")
        );
        assert!(
            containerd_cri_disabled(p, "disabled_plugins = [\"io.containerd.grpc.v1.cri\"]")
                .is_some()
        );
        assert!(containerd_cri_disabled(
            p,
            "version = 3\ndisabled_plugins = [\"io.containerd.cri.v1.runtime\"]"
        )
        .is_some());
        // What `containerd config default` writes, and other plugins off.
        assert!(
            containerd_cri_disabled(p, "version = 2\ndisabled_plugins = []\nimports = []\n")
                .is_none()
        );
        assert!(containerd_cri_disabled(
            p,
            "disabled_plugins = [\"io.containerd.snapshotter.v1.btrfs\"]"
        )
        .is_none());
    }
}
