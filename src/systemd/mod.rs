//! systemd over D-Bus: the one seam for reading and changing units.
//!
//! Connects to the system bus (`DBUS_SYSTEM_BUS_ADDRESS` honoured). Only the
//! few Manager/Unit/Service members that systemd 252 and later all have are
//! declared here.

use std::collections::HashMap;
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use futures_util::StreamExt;
use zbus::zvariant::{OwnedObjectPath, OwnedValue};

use crate::kubelet::ServiceSpec;
pub mod bootgraph;
pub mod types;

pub use types::UnitState;

#[zbus::proxy(
    interface = "org.freedesktop.systemd1.Manager",
    default_service = "org.freedesktop.systemd1",
    default_path = "/org/freedesktop/systemd1",
    gen_blocking = false
)]
trait Manager {
    fn load_unit(&self, name: &str) -> zbus::Result<OwnedObjectPath>;
    fn start_unit(&self, name: &str, mode: &str) -> zbus::Result<OwnedObjectPath>;
    fn reset_failed_unit(&self, name: &str) -> zbus::Result<()>;
    fn enable_unit_files(
        &self,
        files: &[&str],
        runtime: bool,
        force: bool,
    ) -> zbus::Result<(bool, Vec<(String, String, String)>)>;
    fn disable_unit_files(
        &self,
        files: &[&str],
        runtime: bool,
    ) -> zbus::Result<Vec<(String, String, String)>>;
    fn mask_unit_files(
        &self,
        files: &[&str],
        runtime: bool,
        force: bool,
    ) -> zbus::Result<Vec<(String, String, String)>>;
    fn unmask_unit_files(
        &self,
        files: &[&str],
        runtime: bool,
    ) -> zbus::Result<Vec<(String, String, String)>>;
    fn list_unit_files_by_patterns(
        &self,
        states: &[&str],
        patterns: &[&str],
    ) -> zbus::Result<Vec<(String, String)>>;
    fn reload(&self) -> zbus::Result<()>;
    fn subscribe(&self) -> zbus::Result<()>;
    #[zbus(signal)]
    fn job_removed(
        &self,
        id: u32,
        job: zbus::zvariant::ObjectPath<'_>,
        unit: &str,
        result: &str,
    ) -> zbus::Result<()>;
    #[zbus(signal)]
    fn unit_files_changed(&self) -> zbus::Result<()>;
    #[zbus(signal)]
    fn reloading(&self, active: bool) -> zbus::Result<()>;
    #[zbus(property)]
    fn system_state(&self) -> zbus::Result<String>;
    #[zbus(property)]
    fn environment(&self) -> zbus::Result<Vec<String>>;
    #[zbus(property)]
    fn virtualization(&self) -> zbus::Result<String>;
}

/// systemd job modes taint-guard uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobMode {
    /// Refuse when it conflicts with a queued job (a person's stop): never
    /// replace what someone else asked for.
    Fail,
}

impl JobMode {
    pub fn as_str(self) -> &'static str {
        match self {
            JobMode::Fail => "fail",
        }
    }
}

/// Operations on units that observe and apply need. Implemented by
/// [`Systemd`]; the daemon and tests can supply their own.
#[allow(async_fn_in_trait)]
pub trait UnitManager {
    async fn unit_state(&self, name: &str) -> Result<UnitState>;
    /// Swap unit files in states that make them activate at boot: (path, state).
    async fn boot_swap_unit_files(&self) -> Result<Vec<(String, String)>>;
    /// Unit-file changes (enable, disable, mask, unmask) take effect in the
    /// manager after [`UnitManager::reload`]; the planner schedules one.
    async fn enable(&self, unit: &str) -> Result<()>;
    async fn disable(&self, unit: &str) -> Result<()>;
    async fn mask(&self, unit: &str) -> Result<()>;
    async fn unmask(&self, unit: &str) -> Result<()>;
    async fn reload(&self) -> Result<()>;
    async fn reset_failed(&self, unit: &str) -> Result<()>;
    /// The manager's `Virtualization`: what systemd detects it runs in
    /// (empty for bare metal); see [`crate::virt`].
    async fn virtualization(&self) -> Result<String>;
    /// StartUnit(mode=fail: a conflicting queued job — a person's stop —
    /// makes systemd refuse rather than replace it) and wait for the job;
    /// returns the job result (`done`, `failed`, `timeout`…). Errors when
    /// systemd refuses the job.
    async fn start(&self, unit: &str, mode: JobMode, timeout: Duration) -> Result<String>;
    /// StartUnit(mode=fail) without waiting for the job (`--no-block`).
    async fn queue_start(&self, unit: &str, mode: JobMode) -> Result<()>;
    /// systemd-timedated's view of the clock (`org.freedesktop.timedate1`,
    /// activated on demand); `Ok(None)` where nothing answers for it here
    /// (test fakes).
    async fn clock(&self) -> Result<Option<types::ClockState>> {
        Ok(None)
    }
}

/// Something changed in systemd that may change a finding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// A watched unit's properties changed (state, job, unit file state).
    Unit(String),
    /// A job of a watched unit finished.
    JobRemoved { unit: String, result: String },
    /// Unit files were enabled, disabled, masked… anywhere.
    UnitFilesChanged,
    /// A daemon-reload finished: ExecStart and Environment may differ.
    Reloaded,
    /// systemd took the bus name again (daemon-reexec): subscribe again.
    ManagerRestarted,
}

/// systemd's object path of a unit (`bus_label_escape`: every byte but
/// ASCII letters and digits as `_xx`).
pub fn unit_object_path(unit: &str) -> String {
    let mut p = String::from("/org/freedesktop/systemd1/unit/");
    if unit.is_empty() {
        p.push('_');
    }
    for b in unit.bytes() {
        if b.is_ascii_alphanumeric() {
            p.push(b as char);
        } else {
            p.push_str(&format!("_{b:02x}"));
        }
    }
    p
}

/// Bound on each D-Bus method call (Reload can take a while on big hosts).
const METHOD_TIMEOUT: Duration = Duration::from_secs(30);

/// A connection to systemd on the system bus.
pub struct Systemd {
    conn: zbus::Connection,
    manager: ManagerProxy<'static>,
}

impl Systemd {
    /// Connect to the system bus, with a bounded wait.
    pub async fn connect(timeout: Duration) -> Result<Systemd> {
        let addr = std::env::var("DBUS_SYSTEM_BUS_ADDRESS")
            .unwrap_or_else(|_| "unix:path=/run/dbus/system_bus_socket".into());
        let fut = async {
            // Every call is bounded: a stalled PID 1 must not hang a boot
            // check that kubelet is ordered after.
            let conn = zbus::connection::Builder::system()?
                .method_timeout(METHOD_TIMEOUT)
                .build()
                .await?;
            let manager = ManagerProxy::builder(&conn)
                .cache_properties(zbus::proxy::CacheProperties::No)
                .build()
                .await?;
            Ok::<_, zbus::Error>(Systemd { conn, manager })
        };
        // One line: zbus repeats its io error as its source, so only the
        // root cause is said.
        match tokio::time::timeout(timeout, fut).await {
            Err(_) => bail!("no answer on the system bus at {addr} within {timeout:?}"),
            Ok(Err(e)) => {
                let mut root: &dyn std::error::Error = &e;
                while let Some(s) = root.source() {
                    root = s;
                }
                bail!("cannot connect to the system bus at {addr}: {root}")
            }
            Ok(Ok(s)) => Ok(s),
        }
    }

    /// Ask systemd to send unit and job signals (`Subscribe`); being
    /// subscribed already is fine.
    pub async fn subscribe(&self) -> Result<()> {
        match self.manager.subscribe().await {
            Ok(()) => Ok(()),
            Err(zbus::Error::MethodError(name, _, _))
                if name.as_str().ends_with("AlreadySubscribed") =>
            {
                Ok(())
            }
            Err(e) => Err(e).context("Subscribe"),
        }
    }

    /// Every change to `units` and to the manager, as one stream. It ends
    /// when the connection to the bus is lost.
    pub async fn changes(
        &self,
        units: &[String],
    ) -> Result<futures_util::stream::BoxStream<'static, Change>> {
        use futures_util::stream::{select_all, BoxStream};
        let mut streams: Vec<BoxStream<'static, Change>> = Vec::new();
        for unit in units {
            let props = zbus::fdo::PropertiesProxy::builder(&self.conn)
                .destination("org.freedesktop.systemd1")?
                .path(unit_object_path(unit))?
                .cache_properties(zbus::proxy::CacheProperties::No)
                .build()
                .await?;
            let name = unit.clone();
            let s = props
                .receive_properties_changed()
                .await
                .with_context(|| format!("watching {unit}"))?;
            streams.push(s.map(move |_| Change::Unit(name.clone())).boxed());
        }
        let watched: Vec<String> = units.to_vec();
        let jobs = self.manager.receive_job_removed().await?;
        streams.push(
            jobs.filter_map(move |sig| {
                let c = sig.args().ok().and_then(|a| {
                    watched
                        .iter()
                        .any(|u| u == a.unit())
                        .then(|| Change::JobRemoved {
                            unit: a.unit().to_string(),
                            result: a.result().to_string(),
                        })
                });
                std::future::ready(c)
            })
            .boxed(),
        );
        let files = self.manager.receive_unit_files_changed().await?;
        streams.push(files.map(|_| Change::UnitFilesChanged).boxed());
        let reloads = self.manager.receive_reloading().await?;
        streams.push(
            reloads
                .filter_map(|sig| {
                    // Reloading(false): the reload is over.
                    let done = sig.args().is_ok_and(|a| !a.active);
                    std::future::ready(done.then_some(Change::Reloaded))
                })
                .boxed(),
        );
        let dbus = zbus::fdo::DBusProxy::new(&self.conn).await?;
        let owners = dbus
            .receive_name_owner_changed_with_args(&[(0, "org.freedesktop.systemd1")])
            .await?;
        streams.push(
            owners
                .filter_map(|sig| {
                    let back = sig.args().is_ok_and(|a| a.new_owner().is_some());
                    std::future::ready(back.then_some(Change::ManagerRestarted))
                })
                .boxed(),
        );
        Ok(select_all(streams).boxed())
    }

    /// `Manager.SystemState` (`running`, `degraded`, `starting`…).
    pub async fn system_state(&self) -> Result<String> {
        Ok(self.manager.system_state().await?)
    }

    /// org.freedesktop.DBus.Properties of one systemd object, uncached.
    async fn properties(
        &self,
        path: &OwnedObjectPath,
    ) -> Result<zbus::fdo::PropertiesProxy<'static>> {
        Ok(zbus::fdo::PropertiesProxy::builder(&self.conn)
            .destination("org.freedesktop.systemd1")?
            .path(path.clone())?
            .cache_properties(zbus::proxy::CacheProperties::No)
            .build()
            .await?)
    }

    async fn job_type(&self, job: &OwnedObjectPath) -> Result<String> {
        let iface = zbus::names::InterfaceName::try_from("org.freedesktop.systemd1.Job")?;
        let v = self.properties(job).await?.get(iface, "JobType").await?;
        Ok(String::try_from(v)?)
    }

    async fn get_all(
        &self,
        path: &OwnedObjectPath,
        iface: &str,
    ) -> Result<HashMap<String, OwnedValue>> {
        let iface = zbus::names::InterfaceName::try_from(iface)?;
        Ok(self.properties(path).await?.get_all(iface).await?)
    }
}

/// systemd refused a start job: its D-Bus error name and its words.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("systemd refused to start {unit}: {message} ({name})")]
pub struct JobRefused {
    pub unit: String,
    /// The D-Bus error name (`org.freedesktop.systemd1.TransactionIsDestructive`).
    pub name: String,
    pub message: String,
}

impl JobRefused {
    /// Another job is queued for the unit and mode `fail` does not replace it.
    pub fn is_destructive(&self) -> bool {
        self.name == "org.freedesktop.systemd1.TransactionIsDestructive"
    }
}

/// systemd's own words when it refuses a start job, typed by error name.
fn refused(unit: &str, e: zbus::Error) -> anyhow::Error {
    match e {
        zbus::Error::MethodError(name, msg, _) => anyhow::Error::new(JobRefused {
            unit: unit.into(),
            name: name.as_str().into(),
            message: msg.unwrap_or_default(),
        }),
        other => anyhow!("StartUnit({unit}): {other}"),
    }
}

fn take<T: TryFrom<OwnedValue>>(m: &mut HashMap<String, OwnedValue>, key: &str) -> Option<T> {
    m.remove(key).and_then(|v| T::try_from(v).ok())
}

fn string(m: &mut HashMap<String, OwnedValue>, key: &str) -> String {
    take::<String>(m, key).unwrap_or_default()
}

type ExecCommand = (String, Vec<String>, bool, u64, u64, u64, u64, u32, i32, i32);
/// ExecStartEx: flags as strings (`no-env-expand` for a `:` prefix…).
type ExecCommandEx = (
    String,
    Vec<String>,
    Vec<String>,
    u64,
    u64,
    u64,
    u64,
    u32,
    i32,
    i32,
);

impl UnitManager for Systemd {
    async fn unit_state(&self, name: &str) -> Result<UnitState> {
        let path = self
            .manager
            .load_unit(name)
            .await
            .with_context(|| format!("LoadUnit({name})"))?;
        // The unit's, the service's and the manager's properties asked at
        // once (one round trip's wait, not three); the service's are used
        // only for a loaded service.
        let service = name.ends_with(".service");
        let (u, svc, manager_environment) = futures_util::future::join3(
            self.get_all(&path, "org.freedesktop.systemd1.Unit"),
            async {
                match service {
                    true => Some(
                        self.get_all(&path, "org.freedesktop.systemd1.Service")
                            .await,
                    ),
                    false => None,
                }
            },
            async {
                match service {
                    true => self.manager.environment().await.ok(),
                    false => None,
                }
            },
        )
        .await;
        let mut u = u.with_context(|| format!("reading properties of {name}"))?;
        let mut st = UnitState {
            load_state: string(&mut u, "LoadState").as_str().into(),
            active_state: string(&mut u, "ActiveState").as_str().into(),
            sub_state: string(&mut u, "SubState").as_str().into(),
            unit_file_state: string(&mut u, "UnitFileState").as_str().into(),
            active_enter_timestamp: take(&mut u, "ActiveEnterTimestamp").unwrap_or(0),
            inactive_enter_timestamp: take(&mut u, "InactiveEnterTimestamp").unwrap_or(0),
            fragment_path: string(&mut u, "FragmentPath"),
            need_daemon_reload: take(&mut u, "NeedDaemonReload").unwrap_or(false),
            ..Default::default()
        };
        st.triggered_by = take::<Vec<String>>(&mut u, "TriggeredBy").unwrap_or_default();
        for key in ["WantedBy", "RequiredBy", "UpheldBy"] {
            st.wanted_by
                .extend(take::<Vec<String>>(&mut u, key).unwrap_or_default());
        }
        if let Some((id, job)) = take::<(u32, OwnedObjectPath)>(&mut u, "Job") {
            if id != 0 {
                st.job = Some(
                    self.job_type(&job)
                        .await
                        .unwrap_or_else(|_| "unknown".into())
                        .as_str()
                        .into(),
                );
            }
        }
        if let (Some(svc), types::LoadState::Loaded) = (svc, &st.load_state) {
            let mut s = svc.with_context(|| format!("reading service properties of {name}"))?;
            st.result = string(&mut s, "Result").as_str().into();
            st.n_restarts = take(&mut s, "NRestarts").unwrap_or(0);
            st.exec_main_status = take(&mut s, "ExecMainStatus").unwrap_or(0);
            // ExecStartEx (systemd ≥ 243) carries the command's flags;
            // ExecStart is the fallback.
            let exec: Vec<ExecCommandEx> = match take::<Vec<ExecCommandEx>>(&mut s, "ExecStartEx") {
                Some(v) => v,
                None => take::<Vec<ExecCommand>>(&mut s, "ExecStart")
                    .unwrap_or_default()
                    .into_iter()
                    .map(|c| (c.0, c.1, Vec::new(), c.3, c.4, c.5, c.6, c.7, c.8, c.9))
                    .collect(),
            };
            let last = exec.last();
            let drop_in_paths = take(&mut u, "DropInPaths").unwrap_or_default();
            st.service = Some(ServiceSpec {
                exec_path: last.map(|c| c.0.clone()).unwrap_or_default(),
                exec_start: last.map(|c| c.1.clone()).unwrap_or_default(),
                exec_flags: last.map(|c| c.2.clone()).unwrap_or_default(),
                exec_count: exec.len(),
                environment: take(&mut s, "Environment").unwrap_or_default(),
                environment_files: take(&mut s, "EnvironmentFiles").unwrap_or_default(),
                unset_environment: take(&mut s, "UnsetEnvironment").unwrap_or_default(),
                pass_environment: take(&mut s, "PassEnvironment").unwrap_or_default(),
                manager_environment,
                main_pid: take(&mut s, "MainPID").unwrap_or(0),
                exec_main_start_usec: take(&mut s, "ExecMainStartTimestamp").unwrap_or(0),
                exec_main_start_monotonic_usec: take(&mut s, "ExecMainStartTimestampMonotonic")
                    .unwrap_or(0),
                drop_in_paths,
            });
        }
        Ok(st)
    }

    async fn clock(&self) -> Result<Option<types::ClockState>> {
        let props = zbus::fdo::PropertiesProxy::builder(&self.conn)
            .destination("org.freedesktop.timedate1")?
            .path("/org/freedesktop/timedate1")?
            .cache_properties(zbus::proxy::CacheProperties::No)
            .build()
            .await?;
        let iface = zbus::names::InterfaceName::try_from("org.freedesktop.timedate1")?;
        let mut all = props
            .get_all(iface)
            .await
            .context("asking systemd-timedated (org.freedesktop.timedate1)")?;
        let mut flag = |k: &str| -> Result<bool> {
            take::<bool>(&mut all, k).ok_or_else(|| anyhow!("timedate1 has no {k} property"))
        };
        Ok(Some(types::ClockState {
            ntp_synchronized: flag("NTPSynchronized")?,
            ntp: flag("NTP")?,
            can_ntp: flag("CanNTP")?,
            uptime_secs: None,
        }))
    }

    async fn virtualization(&self) -> Result<String> {
        self.manager
            .virtualization()
            .await
            .context("reading the manager's Virtualization property")
    }

    async fn boot_swap_unit_files(&self) -> Result<Vec<(String, String)>> {
        self.manager
            .list_unit_files_by_patterns(&["enabled", "generated"], &["*.swap"])
            .await
            .context("ListUnitFilesByPatterns(*.swap)")
    }

    async fn enable(&self, unit: &str) -> Result<()> {
        // Empty changes are fine: the links were already there (after unmask).
        let (has_install, _changes) = self
            .manager
            .enable_unit_files(&[unit], false, false)
            .await
            .with_context(|| format!("EnableUnitFiles({unit})"))?;
        if !has_install {
            bail!("{unit} has no [Install] section: it cannot be enabled, only pulled in by another unit");
        }
        Ok(())
    }

    async fn disable(&self, unit: &str) -> Result<()> {
        self.manager
            .disable_unit_files(&[unit], false)
            .await
            .with_context(|| format!("DisableUnitFiles({unit})"))?;
        Ok(())
    }

    async fn mask(&self, unit: &str) -> Result<()> {
        self.manager
            .mask_unit_files(&[unit], false, false)
            .await
            .with_context(|| format!("MaskUnitFiles({unit})"))?;
        Ok(())
    }

    async fn unmask(&self, unit: &str) -> Result<()> {
        self.manager
            .unmask_unit_files(&[unit], false)
            .await
            .with_context(|| format!("UnmaskUnitFiles({unit})"))?;
        Ok(())
    }

    async fn reload(&self) -> Result<()> {
        self.manager
            .reload()
            .await
            .context("Reload (daemon-reload)")
    }

    async fn reset_failed(&self, unit: &str) -> Result<()> {
        self.manager
            .reset_failed_unit(unit)
            .await
            .with_context(|| format!("ResetFailedUnit({unit})"))
    }

    async fn queue_start(&self, unit: &str, mode: JobMode) -> Result<()> {
        self.manager
            .start_unit(unit, mode.as_str())
            .await
            .map_err(|e| refused(unit, e))?;
        Ok(())
    }

    async fn start(&self, unit: &str, mode: JobMode, timeout: Duration) -> Result<String> {
        // Subscribe before starting so the JobRemoved signal cannot be missed.
        let _ = self.manager.subscribe().await;
        let mut removed = self
            .manager
            .receive_job_removed()
            .await
            .context("subscribing to JobRemoved")?;
        let job = self
            .manager
            .start_unit(unit, mode.as_str())
            .await
            .map_err(|e| refused(unit, e))?;
        let wait = async {
            while let Some(sig) = removed.next().await {
                let args = sig.args()?;
                if args.job().as_str() == job.as_str() {
                    return Ok::<_, anyhow::Error>(args.result().to_string());
                }
            }
            bail!("the bus closed while waiting for the start job of {unit}")
        };
        tokio::time::timeout(timeout, wait)
            .await
            .map_err(|_| anyhow!("start job for {unit} did not finish within {timeout:?}"))?
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unit_paths_as_systemd_escapes_them() {
        assert_eq!(
            unit_object_path("kubelet.service"),
            "/org/freedesktop/systemd1/unit/kubelet_2eservice"
        );
        assert_eq!(
            unit_object_path("snap.microk8s.daemon-kubelite.service"),
            "/org/freedesktop/systemd1/unit/snap_2emicrok8s_2edaemon_2dkubelite_2eservice"
        );
    }
}
