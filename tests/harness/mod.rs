//! A real systemd to test against: a debootstrap'd Debian rootfs booted
//! with systemd-nspawn, its /run/dbus bound to a host folder so the agent
//! on the host reaches the container's systemd through
//! DBUS_SYSTEM_BUS_ADDRESS and reads its files through --host-root.
//!
//! Needs Linux and root; installs debootstrap and systemd-container with
//! apt when missing. The test targets are `harness = false` (libtest-mimic):
//! elsewhere every scenario shows as *ignored* in the runner's summary, never
//! as passed; with TG_REQUIRE_SYSTEMD=1 (CI) each fails instead.
//!
//! The base rootfs is cached under the cargo target dir (or at
//! $TG_ROOTFS_CACHE) and copied per node.

#![allow(dead_code)]

pub mod apiserver;
pub mod cluster;
pub mod deb;
pub mod kube;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/node");

fn tmp() -> PathBuf {
    PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
}

fn sh(cmd: &str) -> Output {
    Command::new("sh")
        .arg("-c")
        .arg(cmd)
        .output()
        .expect("running sh")
}

fn have(bin: &str) -> bool {
    sh(&format!("command -v {bin}")).status.success()
}

/// Why this machine cannot run the real-systemd tests, if it cannot.
fn unsupported() -> Option<String> {
    if !cfg!(target_os = "linux") {
        return Some("not Linux".into());
    }
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Some("not root (systemd-nspawn needs root)".into());
    }
    None
}

/// How a scenario holds the machine. Nodes share the host's kernel, so
/// what is global to it (swap above all: it stops every real kubelet on the
/// machine and shows in every node's /proc/swaps; the clock's state; memory
/// pressure) is what decides who may run beside whom:
/// - a scenario that only *reads* such state shares the machine: its nodes
///   run beside other shared scenarios' nodes, in this process or another;
/// - a scenario that *changes* it ([`host_global`]: swap on, the clock's
///   flag, a memory hog) has the machine alone.
///
/// Across processes (test runners run test binaries, and nextest every
/// test, as processes of their own) this is a reader-writer lock on
/// `/tmp/taint-guard-nspawn.lock`, with a turnstile
/// (`/tmp/taint-guard-nspawn.turnstile`) that lets a waiting writer in
/// before readers that come after it (flock alone would let a stream of
/// readers starve it). Within one process, nodes that share the machine
/// share one hold of the lock: a process already holding it never waits at
/// the turnstile again (a writer waiting there would wait for it in turn: a
/// deadlock). (The real kubelet's ports are per node: harness/cluster.rs.)
pub struct Exclusive {
    /// Held by a node taken alone only: nodes that share the machine may
    /// be up side by side in one process too (a matrix of workers).
    _guard: Option<MutexGuard<'static, ()>>,
    _lock: Hold,
    /// Taken alone ([`host_global`]): this scenario may change what is
    /// global to the host's kernel.
    alone: bool,
}

static SERIAL: Mutex<()> = Mutex::new(());

/// This process's shared hold of the machine lock: how many nodes use it,
/// and the file that holds it.
static SHARED: Mutex<(usize, Option<fs::File>)> = Mutex::new((0, None));

/// A hold of the machine lock: exclusive, or one use of the process's
/// shared hold (released with its last use).
enum Hold {
    Alone(#[allow(dead_code)] fs::File),
    Shared,
}

impl Drop for Hold {
    fn drop(&mut self) {
        if let Hold::Shared = self {
            let mut s = SHARED.lock().unwrap_or_else(|p| p.into_inner());
            s.0 -= 1;
            if s.0 == 0 {
                s.1 = None;
            }
        }
    }
}

const MACHINE_LOCK: &str = "/tmp/taint-guard-nspawn.lock";
const TURNSTILE: &str = "/tmp/taint-guard-nspawn.turnstile";

pub fn flock(path: &str, op: libc::c_int) -> fs::File {
    let f = fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)
        .unwrap_or_else(|e| panic!("lock file {path}: {e}"));
    // SAFETY: flock on an open fd; released when the file is closed.
    let rc = unsafe { libc::flock(std::os::fd::AsRawFd::as_raw_fd(&f), op) };
    assert_eq!(rc, 0, "flock {path}: {}", std::io::Error::last_os_error());
    f
}

thread_local! {
    /// Set by [`host_global`] for the rest of the trial on this thread.
    static ALONE: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Declare, before booting its nodes, that this scenario changes what is
/// global to the host's kernel (`why`: swap, the clock, memory): its nodes
/// then take the machine alone (see [`Exclusive`]). Lasts until the trial
/// ends ([`trial_with`] resets it).
pub fn host_global(why: &str) {
    nextest_group_agrees(true, why);
    ALONE.with(|a| a.set(true));
}

/// Under nextest, `.config/nextest.toml`'s `host-global` group must hold
/// exactly the scenarios that call [`host_global`]: one that is missing
/// there would wait for the machine while holding a thread among shared
/// ones; one that is listed but shares the machine only runs later than it
/// could. Either is a mistake in that file, said here rather than found
/// as a slow run.
fn nextest_group_agrees(alone: bool, why: &str) {
    let Ok(group) = std::env::var("NEXTEST_TEST_GROUP") else {
        return;
    };
    let test = std::env::var("NEXTEST_TEST_NAME").unwrap_or_default();
    if alone {
        assert_eq!(
            group, "host-global",
            "{test} changes what is global to the host ({why}): add it to the host-global group in .config/nextest.toml"
        );
    } else {
        assert_ne!(
            group, "host-global",
            "{test} shares the machine: take it out of the host-global group in .config/nextest.toml"
        );
    }
}

/// Take the machine for one real-systemd scenario: shared, or alone after
/// [`host_global`]. Only called from a trial that [`run`] did not mark
/// ignored.
pub fn require() -> Exclusive {
    let alone = ALONE.with(|a| a.get());
    if !alone {
        nextest_group_agrees(false, "");
    }
    let guard = alone.then(|| SERIAL.lock().unwrap_or_else(|p| p.into_inner()));
    let lock = if alone {
        // The turnstile first: readers that come after this wait for us.
        let turnstile = flock(TURNSTILE, libc::LOCK_EX);
        let lock = flock(MACHINE_LOCK, libc::LOCK_EX);
        drop(turnstile);
        Hold::Alone(lock)
    } else {
        let mut s = SHARED.lock().unwrap_or_else(|p| p.into_inner());
        if s.0 == 0 {
            let turnstile = flock(TURNSTILE, libc::LOCK_SH);
            s.1 = Some(flock(MACHINE_LOCK, libc::LOCK_SH));
            drop(turnstile);
        }
        s.0 += 1;
        Hold::Shared
    };
    ensure_prerequisites();
    swapoff_orphans();
    let swaps = fs::read_to_string("/proc/swaps").unwrap_or_default();
    assert!(
        swaps.lines().count() <= 1,
        "the host has swap on; these tests need a host without swap of its own:\n{swaps}"
    );
    Exclusive {
        _guard: guard,
        _lock: lock,
        alone,
    }
}

/// Swap left on by a node whose test process is gone (killed before its
/// `Drop` ran, e.g. by the runner's timeout): turned off, so one killed
/// test does not fail every later one on this machine. /proc/swaps names a
/// node's swap by its path inside the node; the node's folder is
/// `nodes/NAME.PID`, and only folders whose process is gone are looked at.
/// Called with the machine lock held: no live node's swap is touched.
fn swapoff_orphans() {
    let swaps = fs::read_to_string("/proc/swaps").unwrap_or_default();
    let paths: Vec<&str> = swaps
        .lines()
        .skip(1)
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    if paths.is_empty() {
        return;
    }
    let Ok(nodes) = fs::read_dir(tmp().join("nodes")) else {
        return;
    };
    for node in nodes.flatten() {
        let name = node.file_name().to_string_lossy().into_owned();
        let Some(pid) = name
            .rsplit_once('.')
            .and_then(|(_, p)| p.parse::<u32>().ok())
        else {
            continue;
        };
        if Path::new(&format!("/proc/{pid}")).exists() {
            continue;
        }
        for p in &paths {
            // Its path inside the node (a node's own swapon), or the host's.
            let file = match Path::new(p).starts_with(node.path()) {
                true => PathBuf::from(p),
                false => node.path().join("root").join(p.trim_start_matches('/')),
            };
            if file.is_file() {
                let ok = Command::new("swapoff")
                    .arg(&file)
                    .status()
                    .is_ok_and(|s| s.success());
                eprintln!(
                    "swap {} left on by a test process that is gone (PID {pid}): swapoff {}",
                    file.display(),
                    if ok { "done" } else { "failed" }
                );
            }
        }
    }
}

/// One real-systemd scenario as a trial.
pub fn trial(name: &'static str, f: fn()) -> libtest_mimic::Trial {
    trial_with(name, f)
}

/// A trial from any closure; a panic is its failure, with the message.
pub fn trial_with(
    name: &'static str,
    f: impl FnOnce() + Send + std::panic::UnwindSafe + 'static,
) -> libtest_mimic::Trial {
    libtest_mimic::Trial::test(name, move || {
        ALONE.with(|a| a.set(false));
        std::panic::catch_unwind(f).map_err(|e| {
            let msg = e
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "panicked".into());
            libtest_mimic::Failed::from(msg)
        })
    })
}

/// Run the trials. On a machine that cannot boot a node every trial is
/// shown as ignored (the runner's summary counts it), with the reason on
/// stderr; with TG_REQUIRE_SYSTEMD=1 every trial fails instead.
pub fn run(trials: Vec<libtest_mimic::Trial>) -> std::process::ExitCode {
    run_requiring(trials, &[])
}

/// [`run`], with more requirements: (why not, if not; the variable that
/// turns a skip into a failure).
pub fn run_requiring(
    trials: Vec<libtest_mimic::Trial>,
    more: &[(Option<String>, &str)],
) -> std::process::ExitCode {
    let args = libtest_mimic::Arguments::from_args();
    let mut missing: Vec<(String, &str)> = Vec::new();
    if let Some(why) = unsupported() {
        missing.push((why, "TG_REQUIRE_SYSTEMD"));
    }
    for (why, var) in more {
        if let Some(w) = why {
            missing.push((w.clone(), var));
        }
    }
    let required: Vec<String> = missing
        .iter()
        .filter(|(_, var)| std::env::var(var).as_deref() == Ok("1"))
        .map(|(why, var)| format!("{why} and {var}=1"))
        .collect();
    let trials = if !required.is_empty() {
        let why = required.join("; ");
        trials
            .into_iter()
            .map(|t| {
                let name = t.name().to_string();
                let why = why.clone();
                libtest_mimic::Trial::test(name, move || {
                    Err(format!("these tests cannot run here: {why}").into())
                })
            })
            .collect()
    } else if !missing.is_empty() {
        let why: Vec<&str> = missing.iter().map(|(w, _)| w.as_str()).collect();
        eprintln!("scenarios ignored: {}", why.join("; "));
        trials
            .into_iter()
            .map(|t| t.with_ignored_flag(true))
            .collect()
    } else {
        trials
    };
    libtest_mimic::run(&args, trials).exit_code()
}

/// A requirement: why it is not met, if not, and the variable that turns
/// its absence into a failure.
pub type Requirement = (Option<String>, &'static str);

/// [`run_requiring`] with requirements per trial as well: each trial
/// comes with its own list on top of `common`. A trial missing a part is
/// ignored, or fails when that part's variable is 1; the others run.
pub fn run_each(
    trials: Vec<(libtest_mimic::Trial, Vec<Requirement>)>,
    common: &[(Option<String>, &str)],
) -> std::process::ExitCode {
    let args = libtest_mimic::Arguments::from_args();
    let mut base: Vec<(String, String)> = Vec::new();
    if let Some(why) = unsupported() {
        base.push((why, "TG_REQUIRE_SYSTEMD".into()));
    }
    for (why, var) in common {
        if let Some(w) = why {
            base.push((w.clone(), var.to_string()));
        }
    }
    let mut reported: Vec<String> = Vec::new();
    let trials = trials
        .into_iter()
        .map(|(t, own)| {
            let mut missing = base.clone();
            for (why, var) in own {
                if let Some(w) = why {
                    missing.push((w, var.to_string()));
                }
            }
            let required: Vec<String> = missing
                .iter()
                .filter(|(_, var)| std::env::var(var).as_deref() == Ok("1"))
                .map(|(why, var)| format!("{why} and {var}=1"))
                .collect();
            if !required.is_empty() {
                let why = required.join("; ");
                let name = t.name().to_string();
                libtest_mimic::Trial::test(name, move || {
                    Err(format!("this test cannot run here: {why}").into())
                })
            } else if !missing.is_empty() {
                for (w, _) in &missing {
                    if !reported.contains(w) {
                        eprintln!("scenarios ignored: {w}");
                        reported.push(w.clone());
                    }
                }
                t.with_ignored_flag(true)
            } else {
                t
            }
        })
        .collect();
    libtest_mimic::run(&args, trials).exit_code()
}

/// Whether this machine can boot nodes (for callers that set up more
/// before running trials).
pub fn can_boot_nodes() -> bool {
    unsupported().is_none()
}

fn ensure_prerequisites() {
    // Test processes run side by side: one apt at a time.
    let _apt = flock("/tmp/taint-guard-apt.lock", libc::LOCK_EX);
    // (package, a command it provides)
    let wanted = [
        ("debootstrap", "debootstrap"),
        ("systemd-container", "systemd-nspawn"),
        ("systemd", "busctl"),
        ("util-linux", "nsenter"),
    ];
    let missing: Vec<&str> = wanted
        .iter()
        .filter(|(_, bin)| !have(bin))
        .map(|(pkg, _)| *pkg)
        .collect();
    if missing.is_empty() {
        return;
    }
    eprintln!("installing {} with apt-get", missing.join(" "));
    let o = sh(&format!(
        "export DEBIAN_FRONTEND=noninteractive; apt-get update -qq && apt-get install -y -qq {}",
        missing.join(" ")
    ));
    assert!(
        o.status.success(),
        "apt-get install failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
}

/// The cached base rootfs, built once (under a file lock, so parallel
/// test processes do not race).
fn base_rootfs() -> PathBuf {
    let base = std::env::var_os("TG_ROOTFS_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| tmp().join("rootfs-bookworm"));
    let parent = base
        .parent()
        .expect("rootfs cache has a parent")
        .to_path_buf();
    fs::create_dir_all(&parent).expect("creating the rootfs cache folder");
    let lock = fs::File::create(parent.join("rootfs.lock")).expect("lock file");
    // SAFETY: flock on an open fd; released when `lock` is dropped.
    assert_eq!(
        unsafe { libc::flock(std::os::fd::AsRawFd::as_raw_fd(&lock), libc::LOCK_EX) },
        0
    );
    // The cache outlives checkouts (.ci/run keeps it in ~/.cache): a rootfs
    // made with other arguments is made again.
    let args = [
        "--variant=minbase",
        "--include=systemd,dbus,systemd-sysv,mount,util-linux",
        "bookworm",
    ];
    let stamp = PathBuf::from(format!("{}.args", base.display()));
    let made_with = fs::read_to_string(&stamp).unwrap_or_default();
    if !base.join("usr/lib/systemd/systemd").exists() || made_with != args.join(" ") {
        let partial = parent.join("rootfs-bookworm.partial");
        let _ = fs::remove_dir_all(&partial);
        eprintln!("debootstrap: building the base rootfs (~1 min, once)");
        let t = Instant::now();
        let o = Command::new("debootstrap")
            .args(args)
            .arg(&partial)
            .arg(apt_mirror())
            .output()
            .expect("running debootstrap");
        assert!(
            o.status.success(),
            "debootstrap failed: {}\n{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
        let _ = fs::remove_dir_all(&base);
        fs::rename(&partial, &base).expect("renaming rootfs");
        fs::write(&stamp, args.join(" ")).unwrap();
        eprintln!("debootstrap: done in {:?}", t.elapsed());
    }
    base
}

/// The Debian mirror this host's own apt sources use (deb822 `URIs:` in
/// /etc/apt/sources.list.d/*.sources, or a `deb URI bookworm main` line), so
/// no mirror host is written into the repository.
pub fn apt_mirror() -> String {
    let mut files: Vec<PathBuf> = fs::read_dir("/etc/apt/sources.list.d")
        .map(|d| d.filter_map(|e| e.ok().map(|e| e.path())).collect())
        .unwrap_or_default();
    files.sort();
    files.insert(0, PathBuf::from("/etc/apt/sources.list"));
    for f in files {
        let text = fs::read_to_string(&f).unwrap_or_default();
        for line in text.lines() {
            let line = line.trim();
            let uri = if let Some(rest) = line.strip_prefix("URIs:") {
                rest.split_whitespace().next()
            } else if let Some(rest) = line.strip_prefix("deb ") {
                rest.split_whitespace().find(|w| !w.starts_with('['))
            } else {
                None
            };
            if let Some(u) = uri {
                if (u.starts_with("http://") || u.starts_with("https://"))
                    && !u.contains("security")
                {
                    return u.to_string();
                }
            }
        }
    }
    panic!("no Debian mirror found in this host's apt sources (/etc/apt/sources.list{{,.d/*}})")
}

/// A free loopback port.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// GET a path on 127.0.0.1:port; (status, body).
pub fn http_get(port: u16, path: &str) -> Option<(u16, String)> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    let code = out.split_whitespace().nth(1)?.parse().ok()?;
    let body = out.split_once("\r\n\r\n").map(|x| x.1).unwrap_or("");
    Some((code, body.to_string()))
}

/// How to lay out kubelet on a node.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Kubelet {
    /// kubeadm's unit, drop-in, env file and config, not enabled.
    Kubeadm,
    /// No kubelet at all.
    None,
}

/// A booted node.
pub struct Node {
    pub name: String,
    pub dir: PathBuf,
    pub root: PathBuf,
    pub bus: PathBuf,
    pub config: PathBuf,
    child: Child,
    leader: u32,
    _exclusive: Exclusive,
}

impl Node {
    /// Copy the base rootfs, lay out kubelet, run `prepare` on the rootfs,
    /// boot it and wait for systemd to be up.
    pub fn boot(name: &str, kubelet: Kubelet, prepare: impl FnOnce(&Path)) -> Node {
        let exclusive = require();
        let base = base_rootfs();
        // Per process: nodes of the same name may run in other test processes.
        let dir = tmp()
            .join("nodes")
            .join(format!("{name}.{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        let root = dir.join("root");
        let o = Command::new("cp")
            .arg("-a")
            .arg(&base)
            .arg(&root)
            .output()
            .unwrap();
        assert!(
            o.status.success(),
            "cp -a rootfs: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        if kubelet == Kubelet::Kubeadm {
            install_kubeadm_kubelet(&root);
        }
        stand_in_for_a_vm(&root);
        // Every taint-guard inside the node (the boot unit, the daemon, the
        // .deb's) reads this too.
        let dropin = root.join("etc/taint-guard/config.d/50-host-kernel.toml");
        fs::create_dir_all(dropin.parent().unwrap()).unwrap();
        fs::write(&dropin, HOST_KERNEL).unwrap();
        prepare(&root);
        let bus = dir.join("bus");
        fs::create_dir_all(&bus).unwrap();
        let config = dir.join("config.toml");
        fs::write(&config, format!("[fix]\nsettle_secs = 1\n{HOST_KERNEL}")).unwrap();

        let child = spawn_nspawn(&dir, &root, &bus, name);
        let mut node = Node {
            name: name.into(),
            dir,
            root,
            bus,
            config,
            child,
            leader: 0,
            _exclusive: exclusive,
        };
        node.wait_booted();
        node
    }

    /// Power-cycle the node: halt the container (SIGTERM to nspawn) and
    /// boot the same rootfs again. Swap the node had on stays on (swap is
    /// kernel-global): the next boot starts with swap on, as if swap.target
    /// had activated it, which systemd does not do inside a container.
    pub fn reboot(&mut self) {
        self.halt();
        let _ = fs::remove_file(self.bus.join("system_bus_socket"));
        self.child = spawn_nspawn(&self.dir, &self.root, &self.bus, &self.name);
        self.wait_booted();
    }

    /// A power loss: SIGKILL to the node's init and to systemd-nspawn, so
    /// nothing in the node gets to shut down (no stop jobs, no sync beyond
    /// what the host's page cache already holds). The rootfs stays; boot it
    /// again with [`Node::power_on`].
    pub fn power_loss(&mut self) {
        let nspawn = children(self.child.id()).into_iter().next();
        // SAFETY: kill(2) on the node's init (seen from the host's PID
        // namespace, where SIGKILL reaches it) and on our nspawn.
        unsafe {
            if self.leader != 0 {
                libc::kill(self.leader as i32, libc::SIGKILL);
            }
            if let Some(n) = nspawn {
                libc::kill(n as i32, libc::SIGKILL);
            }
        }
        let deadline = Instant::now() + Duration::from_secs(20);
        while self.child.try_wait().ok().flatten().is_none() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.leader = 0;
        let _ = fs::remove_file(self.bus.join("system_bus_socket"));
    }

    /// Power back after [`Node::power_loss`]: boot the same rootfs, wait for
    /// systemd. Returns when nspawn was started (the moment power came back).
    pub fn power_on(&mut self) -> Instant {
        let t0 = Instant::now();
        self.child = spawn_nspawn(&self.dir, &self.root, &self.bus, &self.name);
        self.wait_booted();
        t0
    }

    fn halt(&mut self) {
        // SIGTERM to timeout, which passes it on to systemd-nspawn.
        // SAFETY: plain kill(2) on our own child.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(20);
        while self.child.try_wait().ok().flatten().is_none() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The cgroup hierarchies a node gets a cgroup of its own in: the unified
/// one alone on a cgroup v2 host, else the named `systemd` one and the
/// unified one beside it (hybrid).
fn cgroup_hierarchies() -> Vec<&'static str> {
    if Path::new("/sys/fs/cgroup/cgroup.controllers").exists() {
        vec!["/sys/fs/cgroup"]
    } else {
        vec!["/sys/fs/cgroup/systemd", "/sys/fs/cgroup/unified"]
    }
}

/// The node's cgroup (relative to each hierarchy), named after its folder.
fn node_cgroup(dir: &Path) -> String {
    format!(
        "taint-guard-test/{}",
        dir.file_name().unwrap().to_string_lossy()
    )
}

/// Remove a halted node's cgroups, deepest first (rmdir(2) takes only
/// empty cgroups).
fn remove_cgroup(dir: &Path) {
    fn rm(d: &Path) {
        if let Ok(entries) = fs::read_dir(d) {
            for e in entries.flatten() {
                if e.file_type().is_ok_and(|t| t.is_dir()) {
                    rm(&e.path());
                }
            }
        }
        let _ = fs::remove_dir(d);
    }
    for h in cgroup_hierarchies() {
        rm(&Path::new(h).join(node_cgroup(dir)));
    }
}

/// The node's runtime socket directories. The node's /run is a tmpfs that
/// the host-side binary cannot see into (nspawn mounts it over the root's
/// /run), so each is bound from a directory under the root's
/// /var/lib/tg-run, emptied at every boot as a tmpfs would be, and the
/// root's own /run/NAME (hidden from the node by its tmpfs) is a link to
/// it: a socket the node's runtime makes is then at the same path under
/// --host-root, as the host's /run is on a real host.
const RUN_SOCKET_DIRS: [&str; 2] = ["containerd", "fake-cri"];

/// A node whose root holds this file boots with CAP_SYS_TIME, so its
/// systemd-timedated can read the kernel's clock state (nspawn's system call
/// filter refuses adjtimex(2) otherwise, and timedated then says
/// "unsynchronised" whatever the kernel says), as on a VM.
pub const CLOCK_READABLE: &str = "etc/tg-test-clock-readable";

fn spawn_nspawn(dir: &Path, root: &Path, bus: &Path, name: &str) -> Child {
    let mut binds = Vec::new();
    if root.join(CLOCK_READABLE).exists() {
        binds.push("--capability=CAP_SYS_TIME".to_string());
    }
    for d in RUN_SOCKET_DIRS {
        let src = root.join("var/lib/tg-run").join(d);
        let _ = fs::remove_dir_all(&src);
        fs::create_dir_all(&src).unwrap();
        let link = root.join("run").join(d);
        if fs::symlink_metadata(&link).is_ok_and(|m| m.is_dir()) {
            fs::remove_dir_all(&link).unwrap();
        }
        let _ = fs::remove_file(&link);
        std::os::unix::fs::symlink(format!("/var/lib/tg-run/{d}"), &link).unwrap();
        binds.push(format!("--bind={}:/run/{d}", src.display()));
    }
    let log = fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("nspawn.log"))
        .unwrap();
    // Its own cgroup, in each hierarchy systemd-nspawn uses: nodes started
    // from one cgroup would share one payload cgroup (and see each other's
    // processes as their own). The shell moves itself, then execs.
    let cgroup = node_cgroup(dir);
    let mut enter = String::new();
    for h in cgroup_hierarchies() {
        let d = Path::new(h).join(&cgroup);
        if Path::new(h).is_dir() {
            fs::create_dir_all(&d).unwrap_or_else(|e| panic!("{}: {e}", d.display()));
            enter.push_str(&format!("echo $$ >{}/cgroup.procs && ", d.display()));
        }
    }
    Command::new("sh")
        .arg("-c")
        .arg(format!("{enter}exec \"$@\""))
        .arg("sh")
        .arg("setsid")
        .args([
            "timeout",
            "-k",
            "20",
            "1800",
            "systemd-nspawn",
            "-q",
            "--keep-unit",
            "--register=no",
            "-b",
        ])
        .arg("-D")
        .arg(root)
        .arg(format!("--bind={}:/run/dbus", bus.display()))
        .args(&binds)
        .arg("--system-call-filter=@swap")
        .arg(format!("--machine=tg-{name}"))
        .stdin(Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .expect("spawning systemd-nspawn")
}

impl Node {
    pub fn bus_address(&self) -> String {
        format!("unix:path={}", self.bus.join("system_bus_socket").display())
    }

    fn wait_booted(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(st) = self.child.try_wait().unwrap() {
                panic!(
                    "systemd-nspawn exited early ({st}); log:\n{}",
                    fs::read_to_string(self.dir.join("nspawn.log")).unwrap_or_default()
                );
            }
            if self.bus.join("system_bus_socket").exists() {
                let o = Command::new("busctl")
                    .arg(format!("--address={}", self.bus_address()))
                    .args([
                        "get-property",
                        "org.freedesktop.systemd1",
                        "/org/freedesktop/systemd1",
                        "org.freedesktop.systemd1.Manager",
                        "SystemState",
                    ])
                    .output()
                    .unwrap();
                let out = String::from_utf8_lossy(&o.stdout);
                if out.contains("\"running\"") || out.contains("\"degraded\"") {
                    break;
                }
            }
            assert!(
                Instant::now() < deadline,
                "node {} did not boot within 60s; log:\n{}",
                self.name,
                fs::read_to_string(self.dir.join("nspawn.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        // timeout → systemd-nspawn → the container's systemd (the leader).
        let nspawn = children(self.child.id())
            .into_iter()
            .next()
            .expect("nspawn pid");
        self.leader = children(nspawn)
            .into_iter()
            .next()
            .expect("container leader pid");
    }

    /// Run a shell command inside the container; returns stdout, panics on failure.
    pub fn exec(&self, cmd: &str) -> String {
        let o = self.try_exec(cmd);
        assert!(
            o.status.success(),
            "in node {}: `{cmd}` failed: {}{}",
            self.name,
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8_lossy(&o.stdout).into_owned()
    }

    pub fn try_exec(&self, cmd: &str) -> Output {
        Command::new("nsenter")
            .args(["-t", &self.leader.to_string(), "-a", "sh", "-c", cmd])
            .env_remove("DBUS_SYSTEM_BUS_ADDRESS")
            .output()
            .unwrap()
    }

    /// `systemctl show -p PROP --value UNIT` inside the node.
    pub fn prop(&self, unit: &str, prop: &str) -> String {
        self.exec(&format!("systemctl show -p {prop} --value {unit}"))
            .trim()
            .to_string()
    }

    /// Wait until `cond` holds for the unit's properties (polling systemctl).
    pub fn wait_for(&self, what: &str, cond: impl Fn(&Node) -> bool) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while !cond(self) {
            assert!(
                Instant::now() < deadline,
                "node {}: timed out waiting for {what}",
                self.name
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// A command running the taint-guard binary against this node.
    pub fn tg_command(&self, args: &[&str]) -> Command {
        self.tg_command_with(&self.config, args)
    }

    /// [`Node::tg_command`] with the configuration file `config`.
    pub fn tg_command_with(&self, config: &Path, args: &[&str]) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_taint-guard"));
        match self.root.join(VM_STAND_IN.trim_start_matches('/')).exists() {
            true => c.env(ASSUME_VIRT, "none"),
            false => c.env_remove(ASSUME_VIRT),
        };
        c.env("DBUS_SYSTEM_BUS_ADDRESS", self.bus_address())
            .env_remove("KUBECONFIG")
            .env_remove("NODE_NAME")
            .arg("--host-root")
            .arg(&self.root)
            .arg("--config")
            .arg(config)
            .args(args);
        c
    }

    /// Run taint-guard in a network namespace of its own (`unshare -n`),
    /// after `setup` (sh) ran there: the per-namespace sysctls (`net.*`)
    /// are then this run's alone, set without touching the host's.
    /// Returns (exit code, stdout, stderr).
    pub fn tg_in_netns(&self, setup: &str, args: &[&str]) -> (i32, String, String) {
        let mut outer = Command::new("unshare");
        outer.args(["-n", "sh", "-c", &format!("{setup} && exec \"$@\""), "sh"]);
        let o = under(outer, &self.tg_command(args))
            .output()
            .expect("running taint-guard under unshare");
        (
            o.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&o.stdout).into_owned(),
            String::from_utf8_lossy(&o.stderr).into_owned(),
        )
    }

    /// The value of sysctl `key` (dotted) after the node's next boot, as
    /// the node's own systemd-sysctl sets it: run from the node's root in a
    /// fresh network namespace where the key starts from `start` (a boot's
    /// kernel default), limited to the key (`--prefix`) so nothing of the
    /// host's changes. For per-namespace (`net.*`) keys only.
    pub fn sysctl_after_boot(&self, key: &str, start: &str) -> String {
        assert!(
            key.starts_with("net."),
            "{key} is not per network namespace"
        );
        let rel = key.replace('.', "/");
        let path = format!("/proc/sys/{rel}");
        let o = Command::new("unshare")
            .args(["-n", "-m", "sh", "-c"])
            .arg(format!(
                "echo {start} > {path} && mount --bind /proc \"$0/proc\" && chroot \"$0\" /lib/systemd/systemd-sysctl --prefix=/{rel} && cat {path}"
            ))
            .arg(&self.root)
            .output()
            .unwrap();
        assert!(
            o.status.success(),
            "systemd-sysctl of node {}: {}{}",
            self.name,
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8_lossy(&o.stdout).trim().to_string()
    }

    /// Run taint-guard; returns (exit code, stdout, stderr).
    pub fn tg(&self, args: &[&str]) -> (i32, String, String) {
        let o = self.tg_command(args).output().expect("running taint-guard");
        (
            o.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&o.stdout).into_owned(),
            String::from_utf8_lossy(&o.stderr).into_owned(),
        )
    }

    /// Run `check --output json` (plus `extra`) and parse it.
    pub fn check_json(&self, extra: &[&str]) -> (i32, serde_json::Value) {
        let mut args = vec!["check", "--output", "json"];
        args.extend_from_slice(extra);
        let (code, out, err) = self.tg(&args);
        let v = serde_json::from_str(&out)
            .unwrap_or_else(|e| panic!("invalid JSON ({e}): {out}\nstderr: {err}"));
        (code, v)
    }

    /// Create, mkswap and swapon a swap file inside the node.
    pub fn swap_on(&self, path: &str, mib: u32) {
        assert!(
            self._exclusive.alone,
            "swap on in node {} without harness::host_global before its boot: swap is the whole machine's",
            self.name
        );
        self.exec(&format!("dd if=/dev/zero of={path} bs=1M count={mib} status=none && chmod 600 {path} && mkswap {path} >/dev/null && swapon {path}"));
    }

    pub fn write(&self, node_path: &str, content: &str) {
        let p = self.root.join(node_path.trim_start_matches('/'));
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(p, content).unwrap();
    }

    /// The fstab backups taint-guard left in the node's /etc.
    pub fn fstab_backups(&self) -> Vec<PathBuf> {
        let mut v: Vec<PathBuf> = fs::read_dir(self.root.join("etc"))
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| {
                p.file_name()
                    .is_some_and(|n| n.to_string_lossy().starts_with("fstab.taint-guard."))
            })
            .collect();
        v.sort();
        v
    }

    pub fn read(&self, node_path: &str) -> String {
        fs::read_to_string(self.root.join(node_path.trim_start_matches('/'))).unwrap()
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        // Swap is kernel-global: turn off every swap area living in this
        // rootfs before it is deleted (the kernel shows the container's path).
        let own = || -> Vec<PathBuf> {
            fs::read_to_string("/proc/swaps")
                .unwrap_or_default()
                .lines()
                .skip(1)
                .filter_map(|l| l.split_whitespace().next())
                .map(|dev| self.root.join(dev.trim_start_matches('/')))
                .filter(|p| p.is_file())
                .collect()
        };
        let had_swap = !own().is_empty();
        // Off before the machine lock goes (it is a field: dropped after
        // this), retried: swapoff can fail while pages move back.
        for _ in 0..5 {
            let left = own();
            if left.is_empty() {
                break;
            }
            for p in left {
                let _ = Command::new("swapoff").arg(&p).status();
            }
        }
        let left = own();
        self.halt();
        remove_cgroup(&self.dir);
        if !std::thread::panicking() {
            assert!(
                left.is_empty(),
                "node {}: swap still on after swapoff: {left:?}",
                self.name
            );
            assert!(
                !had_swap || self._exclusive.alone,
                "node {} had swap on without harness::host_global before its boot: swap is the whole machine's",
                self.name
            );
        }
        if std::env::var_os("TG_KEEP_NODES").is_none() && !std::thread::panicking() {
            let _ = fs::remove_dir_all(&self.dir);
        }
    }
}

fn children(pid: u32) -> Vec<u32> {
    for _ in 0..200 {
        let s = fs::read_to_string(format!("/proc/{pid}/task/{pid}/children")).unwrap_or_default();
        let v: Vec<u32> = s
            .split_whitespace()
            .filter_map(|x| x.parse().ok())
            .collect();
        if !v.is_empty() {
            return v;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    vec![]
}

/// `inner` run by `outer`, a program that execs the command line it is
/// given last (unshare, setpriv): `inner`'s program and arguments follow
/// `outer`'s, and its environment changes are carried over.
pub fn under(mut outer: Command, inner: &Command) -> Command {
    outer.arg(inner.get_program()).args(inner.get_args());
    for (k, v) in inner.get_envs() {
        match v {
            Some(v) => outer.env(k, v),
            None => outer.env_remove(k),
        };
    }
    outer
}

/// `over` merged into `base`, table by table: a key of `over` replaces the
/// same key of `base`, and tables present in both merge.
pub fn merge_toml(base: &mut toml::Table, over: toml::Table) {
    for (k, v) in over {
        match (base.get_mut(&k), v) {
            (Some(toml::Value::Table(b)), toml::Value::Table(o)) => merge_toml(b, o),
            (_, v) => {
                base.insert(k, v);
            }
        }
    }
}

/// The report-only DaemonSet's configuration, as its pod reads it
/// (packaging/kubernetes/base/configmap.yaml), with [`HOST_KERNEL`] merged
/// in: an nspawn node's kernel is the host's.
pub fn report_only_pod_config() -> String {
    let text = fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/packaging/kubernetes/base/configmap.yaml"
    ))
    .unwrap();
    let cm: serde_json::Value = serde_norway::from_str(&text).unwrap();
    let mut t: toml::Table = cm["data"]["config.toml"].as_str().unwrap().parse().unwrap();
    merge_toml(&mut t, HOST_KERNEL.parse().unwrap());
    toml::to_string(&t).unwrap()
}

/// Config lines for a node that shares the host's kernel (every nspawn
/// node): its modules, sysctls (of the host's network namespace) and clock
/// synchronisation are the host's, not this node's, so those readiness
/// checks are off. The kernel scenarios turn them on, in a network namespace of their
/// own; the VM test has a kernel of its own and keeps them on.
pub const HOST_KERNEL: &str = "[readiness]\nmodules = []\nsysctls = {}\nclock = false\n";

/// kubeadm's install guide's prerequisites, persisted as it says: the
/// modules for the next boot, and the sysctls.
pub const K8S_MODULES: &str = "overlay\nbr_netfilter\n";
pub const K8S_SYSCTLS: &str =
    "net.bridge.bridge-nf-call-iptables = 1\nnet.bridge.bridge-nf-call-ip6tables = 1\nnet.ipv4.ip_forward = 1\n";

/// A stand-in for containerd, enabled: a process in containerd.service
/// listening on containerd's socket (systemd's own socket-activate tool,
/// accepting each connection), so kubelet's runtime is there and answers;
/// no container ever runs.
pub const STAND_IN_CONTAINERD: &str = "[Unit]\nDescription=stand-in for containerd (tests): its socket answers\n[Service]\nRuntimeDirectory=containerd\nRuntimeDirectoryPreserve=yes\nExecStart=/usr/bin/systemd-socket-activate --listen=/run/containerd/containerd.sock --accept /bin/true\n[Install]\nWantedBy=multi-user.target\n";

/// containerd's config as kubeadm's install guide has it: the systemd
/// cgroup driver for runc.
pub const CONTAINERD_CONFIG: &str = "version = 2\n[plugins.\"io.containerd.grpc.v1.cri\".containerd.runtimes.runc]\n  runtime_type = \"io.containerd.runc.v2\"\n  [plugins.\"io.containerd.grpc.v1.cri\".containerd.runtimes.runc.options]\n    SystemdCgroup = true\n";

/// Install kubeadm's kubelet unit, drop-in, env file, config and a stand-in
/// kubelet binary (not enabled, as after `apt-get install kubelet`), with
/// the install guide's modules-load.d and sysctl.d files.
pub fn install_kubeadm_kubelet(root: &Path) {
    for (rel, text) in [
        ("etc/modules-load.d/k8s.conf", K8S_MODULES),
        ("etc/sysctl.d/k8s.conf", K8S_SYSCTLS),
        ("etc/systemd/system/containerd.service", STAND_IN_CONTAINERD),
        ("etc/containerd/config.toml", CONTAINERD_CONFIG),
    ] {
        let p = root.join(rel);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(p, text).unwrap();
    }
    let wants = root.join("etc/systemd/system/multi-user.target.wants");
    fs::create_dir_all(&wants).unwrap();
    let link = wants.join("containerd.service");
    let _ = fs::remove_file(&link);
    std::os::unix::fs::symlink("/etc/systemd/system/containerd.service", link).unwrap();
    let put = |rel: &str, fixture: &str, mode: u32| {
        let p = root.join(rel);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::copy(Path::new(FIXTURES).join(fixture), &p).unwrap();
        fs::set_permissions(&p, fs::Permissions::from_mode(mode)).unwrap();
    };
    put(
        "usr/lib/systemd/system/kubelet.service",
        "kubelet.service",
        0o644,
    );
    put(
        "usr/lib/systemd/system/kubelet.service.d/10-kubeadm.conf",
        "10-kubeadm.conf",
        0o644,
    );
    put("usr/bin/kubelet", "kubelet", 0o755);
    put(
        "var/lib/kubelet/kubeadm-flags.env",
        "kubeadm-flags.env",
        0o644,
    );
    put("var/lib/kubelet/config.yaml", "config.yaml", 0o644);
}

/// A drop-in for kubelet.service in /etc/systemd/system/kubelet.service.d.
pub fn kubelet_dropin(root: &Path, name: &str, content: &str) {
    let d = root.join("etc/systemd/system/kubelet.service.d");
    fs::create_dir_all(&d).unwrap();
    fs::write(d.join(name), content).unwrap();
}

/// `extra.swap`: a swap unit (not enabled yet) that turns /dev/vdb2 on at
/// boot outside fstab.
pub fn install_extra_swap_unit(root: &Path) {
    let unit = "[Swap]\nWhat=/dev/vdb2\n[Install]\nWantedBy=swap.target\n";
    fs::write(root.join("etc/systemd/system/extra.swap"), unit).unwrap();
}

/// Put the fixture fstab (with a live /swapfile line) in place.
pub fn install_fstab(root: &Path) {
    fs::copy(Path::new(FIXTURES).join("fstab"), root.join("etc/fstab")).unwrap();
}

pub fn fixture(name: &str) -> String {
    fs::read_to_string(Path::new(FIXTURES).join(name)).unwrap()
}

/// Install the taint-guard binary and the boot unit (enabled) in a rootfs.
/// The manager drop-in that makes every taint-guard on a node (the host's
/// binary through [`Node::tg_command`], the units inside) take the node as
/// bare metal. systemd-nspawn is a container, where systemd activates no
/// swap (fstab-generator and swap units both check `detect_container()`)
/// and taint-guard leaves swap to the host; the nodes stand in for VMs and
/// bare metal, which the VM test (tests/vm.rs) checks for real. A test of
/// the container itself removes the file in its `prepare`.
pub const VM_STAND_IN: &str = "/etc/systemd/system.conf.d/90-taint-guard-test-vm.conf";
const ASSUME_VIRT: &str = "TAINT_GUARD_ASSUME_VIRTUALIZATION";

fn stand_in_for_a_vm(root: &Path) {
    let p = root.join(VM_STAND_IN.trim_start_matches('/'));
    fs::create_dir_all(p.parent().unwrap()).unwrap();
    fs::write(
        p,
        format!("[Manager]\nDefaultEnvironment={ASSUME_VIRT}=none\n"),
    )
    .unwrap();
}

pub fn install_boot_unit(root: &Path) {
    fs::copy(
        env!("CARGO_BIN_EXE_taint-guard"),
        root.join("usr/bin/taint-guard"),
    )
    .unwrap();
    let unit = root.join("etc/systemd/system/taint-guard-check.service");
    fs::copy(
        concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/systemd/taint-guard-check.service"
        ),
        &unit,
    )
    .unwrap();
    let wants = root.join("etc/systemd/system/multi-user.target.wants");
    fs::create_dir_all(&wants).unwrap();
    let link = wants.join("taint-guard-check.service");
    let _ = fs::remove_file(&link);
    std::os::unix::fs::symlink("/etc/systemd/system/taint-guard-check.service", link).unwrap();
}

/// A process on the host with `alloc` bytes of anonymous memory in a memory
/// cgroup of its own, whose limit is then lowered to `limit`: the kernel
/// pushes the rest to swap (which the caller has turned on). cgroup v2 or
/// v1 (with swap accounting), whichever the host runs.
pub struct MemoryHog {
    cgroup: PathBuf,
    child: Child,
}

impl MemoryHog {
    pub fn start(name: &str, alloc: u64, limit: u64) -> MemoryHog {
        assert!(
            ALONE.with(|a| a.get()),
            "a memory hog without harness::host_global: memory pressure is the whole machine's"
        );
        let v2 = fs::read_to_string("/sys/fs/cgroup/cgroup.controllers")
            .map(|c| c.split_whitespace().any(|x| x == "memory"))
            .unwrap_or(false);
        let (cgroup, limit_file) = if v2 {
            (PathBuf::from("/sys/fs/cgroup").join(name), "memory.max")
        } else {
            (
                PathBuf::from("/sys/fs/cgroup/memory").join(name),
                "memory.limit_in_bytes",
            )
        };
        let _ = fs::remove_dir(&cgroup);
        fs::create_dir(&cgroup).expect("creating the memory cgroup");
        let script = format!(
            "echo $$ > {}/cgroup.procs && exec python3 -c \"import sys,time; b=b'x'*{alloc}; print('ready', flush=True); time.sleep(600)\"",
            cgroup.display()
        );
        let mut child = Command::new("sh")
            .arg("-c")
            .arg(&script)
            .stdout(Stdio::piped())
            .spawn()
            .expect("spawning the memory hog (python3)");
        let mut line = String::new();
        std::io::BufRead::read_line(
            &mut std::io::BufReader::new(child.stdout.take().unwrap()),
            &mut line,
        )
        .unwrap();
        assert_eq!(line.trim(), "ready", "memory hog did not start");
        fs::write(cgroup.join(limit_file), limit.to_string()).expect("lowering the limit");
        let hog = MemoryHog { cgroup, child };
        let want = (alloc - limit) / 2;
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let swapped = hog.swapped(v2);
            if swapped >= want {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "only {swapped} bytes of the hog went to swap"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        hog
    }

    fn swapped(&self, v2: bool) -> u64 {
        if v2 {
            fs::read_to_string(self.cgroup.join("memory.swap.current"))
                .ok()
                .and_then(|s| s.trim().parse().ok())
                .unwrap_or(0)
        } else {
            fs::read_to_string(self.cgroup.join("memory.stat"))
                .unwrap_or_default()
                .lines()
                .find_map(|l| l.strip_prefix("total_swap "))
                .and_then(|n| n.trim().parse().ok())
                .unwrap_or(0)
        }
    }

    pub fn stop(self) {}
}

impl Drop for MemoryHog {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        for _ in 0..100 {
            if fs::remove_dir(&self.cgroup).is_ok() || !self.cgroup.exists() {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}
