//! What systemd says about a unit, parsed once at the D-Bus boundary into
//! enums: the judgement matches on variants, never on strings. A value this
//! release does not know is kept as systemd said it (`Other`), so nothing is
//! lost and it still shows in messages and the JSON output.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::kubelet::ServiceSpec;

macro_rules! systemd_enum {
    ($(#[$m:meta])* $name:ident { $($(#[$vm:meta])* $var:ident = $s:literal),* $(,)? }) => {
        $(#[$m])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash)]
        pub enum $name {
            $($(#[$vm])* $var,)*
            /// A value this release does not know, as systemd said it.
            Other(String),
        }

        impl $name {
            pub fn as_str(&self) -> &str {
                match self {
                    $($name::$var => $s,)*
                    $name::Other(s) => s,
                }
            }
        }

        impl From<&str> for $name {
            fn from(s: &str) -> Self {
                match s {
                    $($s => $name::$var,)*
                    o => $name::Other(o.into()),
                }
            }
        }

        impl Default for $name {
            /// Not said (an empty string over D-Bus).
            fn default() -> Self {
                $name::Other(String::new())
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                Ok($name::from(String::deserialize(d)?.as_str()))
            }
        }
    };
}

systemd_enum! {
    /// `LoadState`.
    LoadState {
        Loaded = "loaded",
        NotFound = "not-found",
        BadSetting = "bad-setting",
        Error = "error",
        Masked = "masked",
        Stub = "stub",
        Merged = "merged",
    }
}

systemd_enum! {
    /// `ActiveState`.
    ActiveState {
        Active = "active",
        Reloading = "reloading",
        Inactive = "inactive",
        Failed = "failed",
        Activating = "activating",
        Deactivating = "deactivating",
        Maintenance = "maintenance",
        Refreshing = "refreshing",
    }
}

systemd_enum! {
    /// `SubState` (of services; other unit types' sub-states are `Other`).
    SubState {
        Dead = "dead",
        Condition = "condition",
        StartPre = "start-pre",
        Start = "start",
        StartPost = "start-post",
        Running = "running",
        Exited = "exited",
        Reload = "reload",
        Stop = "stop",
        StopWatchdog = "stop-watchdog",
        StopSigterm = "stop-sigterm",
        StopSigkill = "stop-sigkill",
        StopPost = "stop-post",
        FinalSigterm = "final-sigterm",
        FinalSigkill = "final-sigkill",
        Failed = "failed",
        /// Waiting `RestartSec=` before a restart (systemd < 254 and after).
        AutoRestart = "auto-restart",
        /// The restart job queued (systemd 254+).
        AutoRestartQueued = "auto-restart-queued",
        Cleaning = "cleaning",
    }
}

systemd_enum! {
    /// `UnitFileState`.
    UnitFileState {
        Enabled = "enabled",
        EnabledRuntime = "enabled-runtime",
        Linked = "linked",
        LinkedRuntime = "linked-runtime",
        Alias = "alias",
        Masked = "masked",
        MaskedRuntime = "masked-runtime",
        Static = "static",
        Disabled = "disabled",
        Indirect = "indirect",
        Generated = "generated",
        Transient = "transient",
        Bad = "bad",
    }
}

systemd_enum! {
    /// A service's `Result`.
    ServiceResult {
        Success = "success",
        Resources = "resources",
        Protocol = "protocol",
        Timeout = "timeout",
        ExitCode = "exit-code",
        Signal = "signal",
        CoreDump = "core-dump",
        Watchdog = "watchdog",
        StartLimitHit = "start-limit-hit",
        OomKill = "oom-kill",
    }
}

systemd_enum! {
    /// The type of a job queued for a unit.
    JobType {
        Start = "start",
        VerifyActive = "verify-active",
        Stop = "stop",
        Reload = "reload",
        ReloadOrStart = "reload-or-start",
        Restart = "restart",
        TryRestart = "try-restart",
        TryReload = "try-reload",
        Nop = "nop",
    }
}

impl SubState {
    /// Between two runs of a `Restart=` loop.
    pub fn is_auto_restart(&self) -> bool {
        matches!(self, SubState::AutoRestart | SubState::AutoRestartQueued)
    }
}

/// A unit's state as systemd reports it over D-Bus.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct UnitState {
    pub load_state: LoadState,
    pub active_state: ActiveState,
    pub sub_state: SubState,
    pub unit_file_state: UnitFileState,
    /// Service `Result` (`success`, `exit-code`, `start-limit-hit`…).
    pub result: ServiceResult,
    pub n_restarts: u32,
    pub exec_main_status: i32,
    /// Microseconds since the epoch; 0 when never.
    pub active_enter_timestamp: u64,
    pub inactive_enter_timestamp: u64,
    pub fragment_path: String,
    /// Units that pull this one in (WantedBy, RequiredBy, UpheldBy).
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub wanted_by: Vec<String>,
    /// Units that start it on demand (TriggeredBy: a .socket, .path…).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub triggered_by: Vec<String>,
    /// The unit's files changed on disk since systemd loaded them
    /// (`NeedDaemonReload`): the next start and the next boot use what is
    /// on disk, not what systemd reports now.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub need_daemon_reload: bool,
    /// Whether and how it starts at the next boot, from the unit files
    /// that survive a reboot (observe fills it in; `None` where not read).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub at_boot: Option<AtBoot>,
    /// Type of the job queued for the unit (`start`, `stop`…), if any.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub job: Option<JobType>,
    /// ExecStart/Environment for kubelet's policy (services only).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub service: Option<ServiceSpec>,
}

/// Whether and how a unit starts at the next boot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "is", rename_all = "snake_case")]
pub enum AtBoot {
    /// In the default target's closure: the chain of units that pulls it
    /// in, from the default target to the unit.
    Pulled { chain: Vec<String> },
    /// Started by `by`, itself in the closure (`chain` pulls it in).
    StartedBy {
        by: String,
        /// How: `triggers it (socket)`, `runs systemctl start kubelet`…
        how: String,
        chain: Vec<String>,
    },
    /// Nothing that survives a reboot starts it. `until_reboot` is the
    /// chain that starts it counting what is only under /run (a runtime
    /// enable, a drop-in in /run/systemd/system), when there is one.
    NotStarted {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        until_reboot: Option<Vec<String>>,
    },
    /// Not every source could be read as systemd reads it: why.
    Unknown { reason: String },
}

impl AtBoot {
    /// One line for people: "pulled in by graphical.target → …".
    pub fn describe(&self) -> String {
        match self {
            AtBoot::Pulled { chain } => format!("pulled in at boot: {}", chain.join(" → ")),
            AtBoot::StartedBy { by, how, chain } => {
                format!("{by} {how} at every boot ({})", chain.join(" → "))
            }
            AtBoot::NotStarted { until_reboot: None } => {
                "nothing in the configuration that survives a reboot starts it".into()
            }
            AtBoot::NotStarted {
                until_reboot: Some(c),
            } => format!(
                "started only by configuration under /run, gone at the next boot ({})",
                c.join(" → ")
            ),
            AtBoot::Unknown { reason } => reason.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parsed_once_and_nothing_lost() {
        assert_eq!(ActiveState::from("activating"), ActiveState::Activating);
        assert!(SubState::from("auto-restart-queued").is_auto_restart());
        // A value a newer systemd may send: kept, shown, serialised as is.
        let s = UnitFileState::from("enabled-someday");
        assert_eq!(s, UnitFileState::Other("enabled-someday".into()));
        assert_eq!(s.to_string(), "enabled-someday");
        let st = UnitState {
            load_state: "loaded".into(),
            active_state: "refreshing".into(),
            result: "oom-kill".into(),
            job: Some("stop".into()),
            ..Default::default()
        };
        let json = serde_json::to_string(&st).unwrap();
        assert!(json.contains(r#""active_state":"refreshing""#), "{json}");
        assert_eq!(serde_json::from_str::<UnitState>(&json).unwrap(), st);
        assert_eq!(UnitState::default().load_state.as_str(), "");
    }
}

/// systemd-timedated's view of the clock.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClockState {
    /// The kernel says the clock is synchronised (adjtimex: STA_UNSYNC
    /// clear, maximum error under 16 s), as an NTP daemon keeps it.
    pub ntp_synchronized: bool,
    /// An NTP service timedated knows (systemd-timesyncd, or a unit listed
    /// in ntp-units.d) is active.
    pub ntp: bool,
    /// timedated knows one here.
    pub can_ntp: bool,
    /// Seconds since this boot (/proc/uptime), filled in by observe: an
    /// NTP daemon takes minutes after a boot to set the kernel's flag.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uptime_secs: Option<u64>,
}
