//! Event sources: systemd over D-Bus (with reconnects), /proc/swaps
//! (POLLPRI), and inotify on the directories of the files that decide a
//! finding. They only say "look again"; the loop decides what that means.

use std::collections::{BTreeMap, BTreeSet};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use inotify::{Inotify, WatchDescriptor, WatchMask};
use tokio::io::unix::AsyncFd;
use tokio::io::Interest;
use tokio::sync::{mpsc, watch};

use crate::systemd::{Change, Systemd};

use super::metrics::Metrics;
use super::schedule::{full_jitter, Backoff};

/// Why the loop should look again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Wake {
    Bus(Change),
    /// The connection to the bus was lost (or could not be made).
    BusLost(String),
    /// Connected (again): resync.
    BusUp,
}

/// The connection to systemd, as the loop sees it.
#[derive(Clone)]
pub enum Bus {
    /// The first attempt has not finished yet.
    Connecting,
    Up(Arc<Systemd>),
    Down {
        error: String,
    },
}

/// Connect, subscribe, forward changes; on loss reconnect with backoff,
/// subscribe again and say so (the loop resyncs). Runs until dropped.
pub async fn bus_task(
    mut units: watch::Receiver<Vec<String>>,
    tx: mpsc::Sender<Wake>,
    state: watch::Sender<Bus>,
    metrics: Rc<Metrics>,
) {
    let mut backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(5));
    let mut connected_before = false;
    loop {
        let sd = match Systemd::connect(Duration::from_secs(5)).await {
            Ok(sd) => Arc::new(sd),
            Err(e) => {
                let error = format!("{e:#}");
                // Said (and evaluated) once per distinct failure, not at
                // every retry.
                if !matches!(&*state.borrow(), Bus::Down { error: old } if *old == error) {
                    tracing::warn!("systemd: {error}; retrying");
                    state.send_replace(Bus::Down {
                        error: error.clone(),
                    });
                    let _ = tx.try_send(Wake::BusLost(error));
                }
                tokio::time::sleep(full_jitter(backoff.fail()).max(Duration::from_millis(50)))
                    .await;
                continue;
            }
        };
        // Subscribe before the streams exist would lose nothing either way:
        // the loop resyncs on BusUp.
        let watched = units.borrow_and_update().clone();
        let stream = match sd.changes(&watched).await {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!("systemd: cannot watch units: {e:#}; retrying");
                tokio::time::sleep(full_jitter(backoff.fail())).await;
                continue;
            }
        };
        if let Err(e) = sd.subscribe().await {
            tracing::warn!("systemd: {e:#}");
        }
        if connected_before {
            metrics.reconnected();
            tracing::info!("systemd: connected again to the system bus");
        }
        connected_before = true;
        backoff.reset();
        state.send_replace(Bus::Up(sd.clone()));
        let _ = tx.try_send(Wake::BusUp);
        let mut stream = stream;
        loop {
            tokio::select! {
                c = stream.next() => match c {
                    Some(Change::ManagerRestarted) => {
                        // daemon-reexec: systemd keeps subscriptions across
                        // it, but say it again (harmless when it did).
                        if let Err(e) = sd.subscribe().await {
                            tracing::warn!("systemd: {e:#}");
                        }
                        let _ = tx.try_send(Wake::Bus(Change::ManagerRestarted));
                    }
                    Some(c) => {
                        let _ = tx.try_send(Wake::Bus(c));
                    }
                    None => break,
                },
                r = units.changed() => {
                    if r.is_err() {
                        return;
                    }
                    let watched = units.borrow_and_update().clone();
                    match sd.changes(&watched).await {
                        Ok(s) => stream = s,
                        Err(_) => break,
                    }
                }
            }
        }
        let error = "the connection to the system bus was lost".to_string();
        tracing::warn!("systemd: {error}; reconnecting");
        state.send_replace(Bus::Down {
            error: error.clone(),
        });
        let _ = tx.try_send(Wake::BusLost(error));
        tokio::time::sleep(full_jitter(backoff.fail())).await;
    }
}

/// /proc/swaps wakes pollers with POLLPRI whenever a swap area is turned on
/// or off (mm/swapfile.c `swaps_poll`).
pub struct SwapsWatch {
    fd: AsyncFd<std::fs::File>,
}

impl SwapsWatch {
    pub fn open(path: &Path) -> std::io::Result<SwapsWatch> {
        let f = std::fs::File::open(path)?;
        // SAFETY: the AsyncFd owns the File; its descriptor is neither
        // replaced nor closed while registered.
        let fd = unsafe { AsyncFd::register_with_interest(f, Interest::PRIORITY)? };
        Ok(SwapsWatch { fd })
    }

    /// Wait for the next change.
    pub async fn changed(&self) -> std::io::Result<()> {
        let mut g = self.fd.ready(Interest::PRIORITY).await?;
        g.clear_ready();
        Ok(())
    }

    pub fn raw_fd(&self) -> i32 {
        self.fd.get_ref().as_raw_fd()
    }
}

/// Names of interest in one watched directory (None: any name).
type Names = Option<BTreeSet<std::ffi::OsString>>;

/// inotify on directories, so files replaced by rename and files that
/// appear later are seen. Only events on names of interest wake the loop.
pub struct FileWatch {
    stream: inotify::EventStream<Vec<u8>>,
    dirs: BTreeMap<PathBuf, (WatchDescriptor, Names)>,
    /// The config's own files and directories: a change there reloads it.
    config: BTreeSet<PathBuf>,
}

/// What a file event was about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FileEvent {
    Config(PathBuf),
    Node(PathBuf),
}

const MASK: WatchMask = WatchMask::CLOSE_WRITE
    .union(WatchMask::MOVED_TO)
    .union(WatchMask::MOVED_FROM)
    .union(WatchMask::CREATE)
    .union(WatchMask::DELETE)
    .union(WatchMask::DELETE_SELF)
    .union(WatchMask::MOVE_SELF)
    .union(WatchMask::ONLYDIR);

impl FileWatch {
    pub fn new() -> std::io::Result<FileWatch> {
        let ino = Inotify::init()?;
        Ok(FileWatch {
            stream: ino.into_event_stream(vec![0u8; 4096])?,
            dirs: BTreeMap::new(),
            config: BTreeSet::new(),
        })
    }

    /// Watch exactly these (host) paths: for each file, its directory
    /// filtered to its name; for a directory, everything in it too. A
    /// directory that does not exist yet is watched for in its parent.
    pub fn sync(&mut self, files: &[PathBuf], dirs: &[PathBuf], config: &Config) {
        let mut want: BTreeMap<PathBuf, Names> = BTreeMap::new();
        let mut add = |dir: &Path, name: Option<&std::ffi::OsStr>| {
            // Climb to an existing directory, watching for the missing child.
            let (mut dir, mut name) = (dir.to_path_buf(), name.map(|n| n.to_os_string()));
            while !dir.is_dir() {
                let Some(parent) = dir.parent() else { return };
                name = dir.file_name().map(|n| n.to_os_string());
                dir = parent.to_path_buf();
            }
            let e = want.entry(dir).or_insert_with(|| Some(BTreeSet::new()));
            match (e.as_mut(), name) {
                (Some(set), Some(n)) => {
                    set.insert(n);
                }
                (_, None) => *e = None,
                (None, Some(_)) => {}
            }
        };
        for f in files.iter().chain(&config.files) {
            if let (Some(d), Some(n)) = (f.parent(), f.file_name()) {
                add(d, Some(n));
            }
        }
        for d in dirs.iter().chain(&config.dirs) {
            add(d, None);
            if let (Some(p), Some(n)) = (d.parent(), d.file_name()) {
                add(p, Some(n));
            }
        }
        self.config = config.files.iter().chain(&config.dirs).cloned().collect();
        let mut watches = self.stream.watches();
        self.dirs.retain(|d, (wd, _)| {
            let keep = want.contains_key(d);
            if !keep {
                let _ = watches.remove(wd.clone());
            }
            keep
        });
        for (d, interest) in want {
            match self.dirs.get_mut(&d) {
                Some(e) => e.1 = interest,
                None => match watches.add(&d, MASK) {
                    Ok(wd) => {
                        self.dirs.insert(d, (wd, interest));
                    }
                    Err(e) => tracing::debug!("inotify: cannot watch {}: {e}", d.display()),
                },
            }
        }
    }

    /// The next event on a name of interest.
    pub async fn next(&mut self) -> Option<FileEvent> {
        loop {
            let ev = match self.stream.next().await? {
                Ok(ev) => ev,
                Err(e) => {
                    tracing::warn!("inotify: {e}");
                    return None;
                }
            };
            let Some((dir, interest)) = self
                .dirs
                .iter()
                .find(|(_, (wd, _))| *wd == ev.wd)
                .map(|(d, (_, i))| (d.clone(), i.clone()))
            else {
                continue;
            };
            if ev.mask.contains(inotify::EventMask::IGNORED) {
                // The directory itself went away: watch again at the next sync.
                self.dirs.remove(&dir);
                return Some(FileEvent::Node(dir));
            }
            let path = match &ev.name {
                Some(n) => {
                    if interest
                        .as_ref()
                        .is_some_and(|set| !set.contains(n.as_os_str()))
                    {
                        continue;
                    }
                    dir.join(n)
                }
                None => dir.clone(),
            };
            let config = self.config.iter().any(|c| path.starts_with(c));
            return Some(if config {
                FileEvent::Config(path)
            } else {
                FileEvent::Node(path)
            });
        }
    }
}

/// taint-guard's own configuration: files (`--config PATH`) or the
/// directories searched and their `config.d`.
#[derive(Debug, Clone, Default)]
pub struct Config {
    pub files: Vec<PathBuf>,
    pub dirs: Vec<PathBuf>,
}

impl Config {
    /// For `--config PATH`, the whole directory of PATH: a ConfigMap volume
    /// updates its files by renaming `..data`, never touching PATH's name.
    pub fn of(explicit: Option<&Path>) -> Config {
        match explicit {
            Some(p) => Config {
                files: vec![],
                dirs: vec![p
                    .parent()
                    .filter(|d| !d.as_os_str().is_empty())
                    .unwrap_or(Path::new("."))
                    .to_path_buf()],
            },
            None => Config {
                files: vec![],
                dirs: crate::config::CONFIG_DIRS
                    .iter()
                    .flat_map(|d| [PathBuf::from(d), Path::new(d).join("config.d")])
                    .collect(),
            },
        }
    }
}
