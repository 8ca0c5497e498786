//! Rewriting node files without ever leaving them torn or missing: a
//! backup first (never overwriting an older one), then a temp file in the
//! same directory, fsync, rename over the original, fsync the directory.
//! Owner and mode are preserved.
//!
//! The temp files have no name while they are written ([`Temp`]: Linux's
//! `O_TMPFILE`): a process killed (SIGKILL, a power cut) before the end
//! leaves nothing behind. A backup gets its name by `linkat(2)` straight to
//! it (never over an existing file); the new content by `linkat(2)` to a
//! `.NAME.tg-*` name and `rename(2)` over the file, two system calls apart.
//! A name left in that window is swept by the next rewrite
//! ([`sweep_stale_temps`]). Filesystems without `O_TMPFILE` get a named
//! temp file (removed on every exit but SIGKILL).
//!
//! [`rewrite_with`] builds the new content and the backup from one read of
//! the file and, right before the rename, checks that nobody changed the file
//! meanwhile (else it starts over on the new content), so a concurrent
//! writer's change is never lost (left: the microseconds between that check
//! and the rename(2); nothing in Linux locks /etc/fstab against writers).
//!
//! With the `failpoints` feature, each step can be made to fail
//! (`files::backup`, `files::write`, `files::fsync`, `files::before-rename`,
//! `files::rename`, `files::fsync-dir` (after the rename, before the
//! directory's fsync)); `files::before-rename` runs between
//! writing the temp file and the check, where a test can play the other
//! writer.

use std::fs::File;
use std::io::Write;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use anyhow::{anyhow, Context, Result};

/// A fault point (the `failpoints` feature; nothing otherwise). In test
/// builds reaching it is logged first, so a test holding the process there
/// (`FAILPOINTS=NAME=sleep(MS)`) knows when it got there, e.g. to cut a VM's
/// power at that moment.
pub(crate) fn failpoint(_name: &str) -> Result<()> {
    #[cfg(feature = "failpoints")]
    tracing::info!(FAILPOINT = _name, "at fail point {_name}");
    fail::fail_point!(_name, |_| Err(anyhow!("failpoint {_name}")));
    Ok(())
}

/// Write a backup copy of `path` next to it, named `NAME.taint-guard.STAMP.bak`
/// (`.1`, `.2`… appended when that name is taken). Returns its path.
pub fn backup(path: &Path, stamp: &str) -> Result<PathBuf> {
    let (original, meta) = read_once(path)?;
    backup_bytes(path, &original, &meta, stamp)
}

/// Remove all but the newest `keep` backups of `path` that [`backup`] made
/// (`NAME.taint-guard.*.bak` next to it; newest by modification time, then
/// name). Returns how many were removed.
pub fn prune_backups(path: &Path, keep: usize) -> Result<usize> {
    let dir = parent(path);
    let name = path
        .file_name()
        .ok_or_else(|| anyhow!("{} has no file name", path.display()))?
        .to_string_lossy()
        .into_owned();
    let prefix = format!("{name}.taint-guard.");
    let mut baks: Vec<(std::time::SystemTime, String, PathBuf)> = std::fs::read_dir(dir)
        .with_context(|| format!("listing {}", dir.display()))?
        .flatten()
        .filter_map(|e| {
            let n = e.file_name().to_string_lossy().into_owned();
            if !(n.starts_with(&prefix) && n.ends_with(".bak")) {
                return None;
            }
            let m = e.metadata().ok().filter(|m| m.is_file())?;
            Some((m.modified().ok()?, n, e.path()))
        })
        .collect();
    baks.sort();
    let excess = baks.len().saturating_sub(keep.max(1));
    let mut removed = 0;
    for (_, _, p) in baks.into_iter().take(excess) {
        std::fs::remove_file(&p).with_context(|| format!("removing {}", p.display()))?;
        removed += 1;
    }
    if removed > 0 {
        fsync_dir(dir)?;
    }
    Ok(removed)
}

/// Read `path` once: its bytes and, from the same open file, its metadata.
fn read_once(path: &Path) -> Result<(Vec<u8>, std::fs::Metadata)> {
    use std::io::Read;
    let mut f = File::open(path).with_context(|| format!("reading {}", path.display()))?;
    let meta = f
        .metadata()
        .with_context(|| format!("stat {}", path.display()))?;
    let mut bytes = Vec::with_capacity(meta.len() as usize);
    f.read_to_end(&mut bytes)
        .with_context(|| format!("reading {}", path.display()))?;
    Ok((bytes, meta))
}

/// Write `original` (the bytes `path` had) as the backup of `path`, with
/// its owner and mode; never over an existing file.
fn backup_bytes(
    path: &Path,
    original: &[u8],
    meta: &std::fs::Metadata,
    stamp: &str,
) -> Result<PathBuf> {
    failpoint("files::backup")?;
    let dir = parent(path);
    let name = path
        .file_name()
        .ok_or_else(|| anyhow!("{} has no file name", path.display()))?
        .to_string_lossy()
        .into_owned();
    let mut tmp = Temp::new(dir, &name)?;
    tmp.file().write_all(original)?;
    copy_owner_mode(tmp.file(), meta)?;
    tmp.file().sync_all()?;
    for n in 0.. {
        let candidate = if n == 0 {
            dir.join(format!("{name}.taint-guard.{stamp}.bak"))
        } else {
            dir.join(format!("{name}.taint-guard.{stamp}.{n}.bak"))
        };
        match tmp.persist_noclobber(&candidate) {
            Ok(()) => {
                fsync_dir(dir)?;
                return Ok(candidate);
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => {
                return Err(e).with_context(|| format!("writing backup {}", candidate.display()))
            }
        }
    }
    unreachable!()
}

/// A temp file in a directory: nameless (`O_TMPFILE`) where the filesystem
/// allows, else named `.NAME.tg-*` (removed when dropped).
pub(crate) enum Temp {
    Anonymous {
        file: File,
        dir: PathBuf,
        name: String,
    },
    Named(tempfile::NamedTempFile),
}

impl Temp {
    fn new(dir: &Path, name: &str) -> Result<Temp> {
        use std::os::unix::fs::OpenOptionsExt;
        // Naming it later goes through /proc/self/fd: without /proc, a
        // named temp file.
        let anon = if Path::new("/proc/self/fd").is_dir() {
            std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .custom_flags(libc::O_TMPFILE)
                .mode(0o600)
                .open(dir)
        } else {
            Err(std::io::Error::from_raw_os_error(libc::EOPNOTSUPP))
        };
        match anon {
            Ok(file) => Ok(Temp::Anonymous {
                file,
                dir: dir.to_path_buf(),
                name: name.to_string(),
            }),
            // No O_TMPFILE here (EOPNOTSUPP; EISDIR or EINVAL from kernels
            // or filesystems that do not know it): a named one.
            Err(e)
                if matches!(
                    e.raw_os_error(),
                    Some(libc::EOPNOTSUPP | libc::EISDIR | libc::EINVAL)
                ) =>
            {
                tempfile::Builder::new()
                    .prefix(&format!(".{name}.tg-"))
                    .tempfile_in(dir)
                    .map(Temp::Named)
                    .with_context(|| format!("creating a temp file in {}", dir.display()))
            }
            Err(e) => Err(e).with_context(|| format!("creating a temp file in {}", dir.display())),
        }
    }

    fn file(&mut self) -> &mut File {
        match self {
            Temp::Anonymous { file, .. } => file,
            Temp::Named(t) => t.as_file_mut(),
        }
    }

    fn shown(&self) -> String {
        match self {
            Temp::Anonymous { dir, .. } => format!("a temp file in {}", dir.display()),
            Temp::Named(t) => t.path().display().to_string(),
        }
    }

    /// Give the file the name `to`, never over an existing file.
    fn persist_noclobber(&mut self, to: &Path) -> std::io::Result<()> {
        match self {
            Temp::Anonymous { file, .. } => link(file, to),
            Temp::Named(t) => {
                std::fs::hard_link(t.path(), to)?;
                // The temp name goes when `t` is dropped.
                Ok(())
            }
        }
    }

    /// Replace `to` with this file (rename(2)).
    fn persist(self, to: &Path) -> std::io::Result<()> {
        match self {
            Temp::Anonymous { file, dir, name } => {
                // A name for the two system calls from here to the rename.
                let mut rng = fastrand::Rng::new();
                for _ in 0..100 {
                    let n: String = (0..8).map(|_| rng.alphanumeric()).collect();
                    let tmp = dir.join(format!(".{name}.tg-{n}"));
                    match link(&file, &tmp) {
                        Ok(()) => {
                            return std::fs::rename(&tmp, to).inspect_err(|_| {
                                let _ = std::fs::remove_file(&tmp);
                            })
                        }
                        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
                        Err(e) => return Err(e),
                    }
                }
                Err(std::io::Error::other("no free temp name"))
            }
            Temp::Named(t) => t.persist(to).map(|_| ()).map_err(|e| e.error),
        }
    }
}

/// linkat(2) of an open (nameless) file to `to`, through /proc/self/fd
/// (AT_EMPTY_PATH would need CAP_DAC_READ_SEARCH).
fn link(file: &File, to: &Path) -> std::io::Result<()> {
    use std::os::fd::AsRawFd;
    use std::os::unix::ffi::OsStrExt;
    let from = std::ffi::CString::new(format!("/proc/self/fd/{}", file.as_raw_fd()))
        .map_err(std::io::Error::other)?;
    let to = std::ffi::CString::new(to.as_os_str().as_bytes()).map_err(std::io::Error::other)?;
    // SAFETY: two NUL-terminated paths that outlive the call.
    let r = unsafe {
        libc::linkat(
            libc::AT_FDCWD,
            from.as_ptr(),
            libc::AT_FDCWD,
            to.as_ptr(),
            libc::AT_SYMLINK_FOLLOW,
        )
    };
    if r == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// Replace `path` with `content` atomically. `like` gives the owner and mode
/// to keep (the original file's metadata); None keeps the defaults.
pub fn write_atomic(path: &Path, content: &[u8], like: Option<&std::fs::Metadata>) -> Result<()> {
    sweep_stale_temps(path);
    let tmp = write_temp(path, content, like)?;
    failpoint("files::rename")?;
    tmp.persist(path)
        .with_context(|| format!("renaming over {}", path.display()))?;
    failpoint("files::fsync-dir")?;
    fsync_dir(parent(path))
}

/// `content` in a synced temp file next to `path`, owner and mode from
/// `like` (0644 without).
fn write_temp(path: &Path, content: &[u8], like: Option<&std::fs::Metadata>) -> Result<Temp> {
    let dir = parent(path);
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut tmp = Temp::new(dir, &name)?;
    failpoint("files::write")?;
    let shown = tmp.shown();
    tmp.file()
        .write_all(content)
        .with_context(|| format!("writing {shown}"))?;
    if let Some(meta) = like {
        copy_owner_mode(tmp.file(), meta)?;
    } else {
        tmp.file()
            .set_permissions(std::fs::Permissions::from_mode(0o644))?;
    }
    failpoint("files::fsync")?;
    tmp.file()
        .sync_all()
        .with_context(|| format!("fsync {shown}"))?;
    Ok(tmp)
}

/// Remove `.NAME.tg-*` temp files that a power cut or a SIGKILL during an
/// earlier rewrite left next to `path` (the rename never happened; the file
/// itself is whole). Only files last modified before this boot or more
/// than [`TEMP_ORPHANED_AFTER`] ago are taken: no running writer still owns
/// them (ours hold a name for two system calls, or, without `O_TMPFILE`,
/// for one write and fsync). Best effort: what cannot be removed is logged
/// and left. Returns what was removed.
pub fn sweep_stale_temps(path: &Path) -> Vec<PathBuf> {
    let orphaned = std::time::SystemTime::now()
        .checked_sub(TEMP_ORPHANED_AFTER)
        .unwrap_or(std::time::UNIX_EPOCH);
    let before = match boot_time() {
        Some(boot) => boot.max(orphaned),
        None => orphaned,
    };
    sweep_temps_before(path, before)
}

/// A `.NAME.tg-*` file untouched this long has no writer left.
pub const TEMP_ORPHANED_AFTER: std::time::Duration = std::time::Duration::from_secs(600);

/// The kernel's boot time (`btime` of /proc/stat).
fn boot_time() -> Option<std::time::SystemTime> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let secs: u64 = stat
        .lines()
        .find_map(|l| l.strip_prefix("btime "))?
        .trim()
        .parse()
        .ok()?;
    Some(std::time::UNIX_EPOCH + std::time::Duration::from_secs(secs))
}

fn sweep_temps_before(path: &Path, boot: std::time::SystemTime) -> Vec<PathBuf> {
    let dir = parent(path);
    let Some(name) = path.file_name() else {
        return Vec::new();
    };
    let prefix = format!(".{}.tg-", name.to_string_lossy());
    let Ok(rd) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut removed = Vec::new();
    for e in rd.flatten() {
        if !e.file_name().to_string_lossy().starts_with(&prefix) {
            continue;
        }
        // Not following symlinks: only our own regular temp files.
        let Ok(meta) = std::fs::symlink_metadata(e.path()) else {
            continue;
        };
        let stale = meta.file_type().is_file() && meta.modified().is_ok_and(|m| m < boot);
        if !stale {
            continue;
        }
        match std::fs::remove_file(e.path()) {
            Ok(()) => {
                tracing::info!(path = %e.path().display(), "removed a temp file an interrupted rewrite left");
                removed.push(e.path());
            }
            Err(err) => {
                tracing::warn!(path = %e.path().display(), "cannot remove a stale temp file: {err}")
            }
        }
    }
    removed
}

/// Back up `path`, then replace it with `content`. Returns the backup path.
/// Fails, writing nothing, if the file changes while this runs.
pub fn rewrite(path: &Path, content: &[u8], stamp: &str) -> Result<PathBuf> {
    match rewrite_with(path, stamp, 1, |_| Ok((Some(content.to_vec()), ())))? {
        Rewrite::Written { backup, .. } => Ok(backup),
        Rewrite::Unchanged { .. } => unreachable!("the edit always writes"),
    }
}

/// What [`rewrite_with`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rewrite<T> {
    /// The edit had nothing to change; nothing written.
    Unchanged { value: T, attempts: u32 },
    Written {
        value: T,
        backup: PathBuf,
        /// Reads it took: 1, plus one per concurrent change.
        attempts: u32,
    },
}

/// Rewrite `path` from its own bytes. Read the file once; `edit` builds the
/// new content from those bytes (None: nothing to change) and a value to
/// return; the backup is those same bytes; the new content goes to a temp
/// file in the same directory (owner and mode of the file read), fsync;
/// right before the rename the file is read again and, if its bytes, inode,
/// owner or mode changed, the temp file and the backup are dropped and it
/// all starts over on the new bytes, at most `tries` times in all, then an
/// error (the file left as the other writer made it). Then rename, fsync
/// the directory.
pub fn rewrite_with<T>(
    path: &Path,
    stamp: &str,
    tries: u32,
    mut edit: impl FnMut(&[u8]) -> Result<(Option<Vec<u8>>, T)>,
) -> Result<Rewrite<T>> {
    let dir = parent(path);
    sweep_stale_temps(path);
    for attempt in 1..=tries {
        let (old, meta) = read_once(path)?;
        let (new, value) = edit(&old)?;
        let Some(new) = new else {
            return Ok(Rewrite::Unchanged {
                value,
                attempts: attempt,
            });
        };
        let backup = backup_bytes(path, &old, &meta, stamp)?;
        let tmp = write_temp(path, &new, Some(&meta))?;
        failpoint("files::before-rename")?;
        let (now, now_meta) = read_once(path)?;
        let same = now == old
            && now_meta.ino() == meta.ino()
            && now_meta.dev() == meta.dev()
            && now_meta.mode() == meta.mode()
            && now_meta.uid() == meta.uid()
            && now_meta.gid() == meta.gid();
        if !same {
            tracing::info!(
                path = %path.display(),
                attempt,
                "changed by another writer while being rewritten; starting over on the new content"
            );
            drop(tmp);
            // Ours, made a moment ago, of content that is gone: not a backup
            // of anything this run replaced.
            std::fs::remove_file(&backup)
                .with_context(|| format!("removing {}", backup.display()))?;
            continue;
        }
        failpoint("files::rename")?;
        tmp.persist(path)
            .with_context(|| format!("renaming over {}", path.display()))?;
        failpoint("files::fsync-dir")?;
        fsync_dir(dir)?;
        return Ok(Rewrite::Written {
            value,
            backup,
            attempts: attempt,
        });
    }
    anyhow::bail!(
        "{} changed while taint-guard was rewriting it, {tries} times in a row; left as the other writer made it, nothing written",
        path.display()
    )
}

fn parent(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

fn copy_owner_mode(f: &File, meta: &std::fs::Metadata) -> Result<()> {
    f.set_permissions(std::fs::Permissions::from_mode(meta.mode() & 0o7777))
        .context("setting mode")?;
    std::os::unix::fs::fchown(f, Some(meta.uid()), Some(meta.gid())).context("setting owner")?;
    Ok(())
}

fn fsync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .with_context(|| format!("fsync directory {}", dir.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prune_keeps_the_newest_backups_and_nothing_else() {
        use std::time::{Duration, SystemTime};
        let t = tempfile::tempdir().unwrap();
        let p = t.path().join("fstab");
        std::fs::write(&p, "x\n").unwrap();
        let t0 = SystemTime::now() - Duration::from_secs(3600);
        for i in 0..8u64 {
            let b = t
                .path()
                .join(format!("fstab.taint-guard.2026112{i}T000000Z.bak"));
            let f = File::create(&b).unwrap();
            f.set_modified(t0 + Duration::from_secs(i)).unwrap();
        }
        // A person's backup and another file's backups are not ours to prune.
        std::fs::write(t.path().join("fstab.orig.bak"), "y").unwrap();
        std::fs::write(t.path().join("hosts.taint-guard.20261120T000000Z.bak"), "z").unwrap();
        assert_eq!(prune_backups(&p, 5).unwrap(), 3);
        let mut left: Vec<String> = std::fs::read_dir(t.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        left.sort();
        assert_eq!(
            left,
            vec![
                "fstab",
                "fstab.orig.bak",
                "fstab.taint-guard.20261123T000000Z.bak",
                "fstab.taint-guard.20261124T000000Z.bak",
                "fstab.taint-guard.20261125T000000Z.bak",
                "fstab.taint-guard.20261126T000000Z.bak",
                "fstab.taint-guard.20261127T000000Z.bak",
                "hosts.taint-guard.20261120T000000Z.bak",
            ]
        );
        assert_eq!(prune_backups(&p, 5).unwrap(), 0);
    }

    /// The temp file has no name while it is written: a SIGKILL there
    /// leaves nothing (tests/systemd.rs kills `check --fix` 100 times).
    #[test]
    fn temp_files_are_nameless_until_persisted() {
        let t = tempfile::tempdir().unwrap();
        let p = t.path().join("fstab");
        std::fs::write(&p, "old\n").unwrap();
        let names = || {
            let mut v: Vec<String> = std::fs::read_dir(t.path())
                .unwrap()
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect();
            v.sort();
            v
        };
        let tmp = write_temp(&p, b"new\n", None).unwrap();
        if matches!(tmp, Temp::Named(_)) {
            // A filesystem without O_TMPFILE (overlayfs before Linux 6.7):
            // the named fallback, removed on every exit but SIGKILL.
            eprintln!(
                "no O_TMPFILE under {}: named temp files",
                t.path().display()
            );
            tmp.persist(&p).unwrap();
            assert_eq!(names(), vec!["fstab"]);
            return;
        }
        assert_eq!(names(), vec!["fstab"]);
        tmp.persist(&p).unwrap();
        assert_eq!(names(), vec!["fstab"]);
        assert_eq!(std::fs::read_to_string(&p).unwrap(), "new\n");
        let b = backup(&p, "S").unwrap();
        assert_eq!(names(), vec!["fstab", "fstab.taint-guard.S.bak"]);
        assert_eq!(std::fs::read_to_string(b).unwrap(), "new\n");
        // A temp name a killed writer left: swept once it is 10 minutes old.
        let left = t.path().join(".fstab.tg-Qw3rTy12");
        let f = File::create(&left).unwrap();
        assert!(sweep_stale_temps(&p).is_empty());
        f.set_modified(std::time::SystemTime::now() - TEMP_ORPHANED_AFTER * 2)
            .unwrap();
        assert_eq!(sweep_stale_temps(&p), vec![left]);
    }

    #[test]
    fn only_temp_files_from_before_boot_are_swept() {
        use std::time::{Duration, SystemTime};
        let t = tempfile::tempdir().unwrap();
        let p = t.path().join("fstab");
        std::fs::write(&p, "x\n").unwrap();
        let boot = SystemTime::now() - Duration::from_secs(3600);
        let aged = |name: &str, before_boot: bool| {
            let q = t.path().join(name);
            let f = File::create(&q).unwrap();
            let m = if before_boot {
                boot - Duration::from_secs(60)
            } else {
                boot + Duration::from_secs(60)
            };
            f.set_modified(m).unwrap();
            q
        };
        let stale = aged(".fstab.tg-AbC123", true);
        let live = aged(".fstab.tg-XyZ789", false);
        let other = aged(".hosts.tg-AbC123", true);
        let backup = aged("fstab.taint-guard.S.bak", true);
        std::os::unix::fs::symlink("/nonexistent", t.path().join(".fstab.tg-link")).unwrap();
        assert_eq!(sweep_temps_before(&p, boot), vec![stale.clone()]);
        assert!(!stale.exists());
        for kept in [&live, &other, &backup, &p] {
            assert!(kept.exists(), "{}", kept.display());
        }
        assert!(t.path().join(".fstab.tg-link").symlink_metadata().is_ok());
    }

    #[test]
    fn rewrite_keeps_backup_mode_and_never_clobbers() {
        // Serialises with the fault-injection test (fail points are global).
        let _scenario = fail::FailScenario::setup();
        let t = tempfile::tempdir().unwrap();
        let p = t.path().join("fstab");
        std::fs::write(&p, "old\n").unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o640)).unwrap();
        let b1 = rewrite(&p, b"new\n", "S").unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"new\n");
        assert_eq!(std::fs::read(&b1).unwrap(), b"old\n");
        assert_eq!(std::fs::metadata(&p).unwrap().mode() & 0o7777, 0o640);
        assert_eq!(b1.file_name().unwrap(), "fstab.taint-guard.S.bak");
        let b2 = rewrite(&p, b"newer\n", "S").unwrap();
        assert_eq!(b2.file_name().unwrap(), "fstab.taint-guard.S.1.bak");
        assert_eq!(std::fs::read(&b1).unwrap(), b"old\n");
        assert_eq!(std::fs::read(&b2).unwrap(), b"new\n");
        // No temp files left behind.
        let names: Vec<_> = std::fs::read_dir(t.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert_eq!(names.len(), 3, "{names:?}");
    }

    /// After a failure at any step the file is the old or the new one,
    /// never torn or missing, and no temp file is left.
    #[test]
    #[cfg_attr(
        not(feature = "failpoints"),
        ignore = "needs --features failpoints (the README's test command has it)"
    )]
    fn fault_at_every_step_leaves_old_or_new() {
        let scenario = fail::FailScenario::setup();
        for (point, expect_new) in [
            ("files::backup", false),
            ("files::write", false),
            ("files::fsync", false),
            ("files::before-rename", false),
            ("files::rename", false),
            ("files::fsync-dir", true),
        ] {
            let t = tempfile::tempdir().unwrap();
            let p = t.path().join("fstab");
            let old = "UUID=a / ext4 defaults 0 1\n/swapfile none swap sw 0 0\n";
            let new = "UUID=a / ext4 defaults 0 1\n# marker\n#/swapfile none swap sw 0 0\n";
            std::fs::write(&p, old).unwrap();
            fail::cfg(point, "return").unwrap();
            let r = rewrite(&p, new.as_bytes(), "S");
            fail::remove(point);
            let err = r.expect_err(point).to_string();
            assert!(err.contains(point), "{point}: {err}");
            let now = std::fs::read_to_string(&p).expect("file must exist");
            assert_eq!(now, if expect_new { new } else { old }, "{point}");
            let temps: Vec<_> = std::fs::read_dir(t.path())
                .unwrap()
                .map(|e| e.unwrap().file_name().into_string().unwrap())
                .filter(|n| n.contains(".tg-"))
                .collect();
            assert!(temps.is_empty(), "{point}: temp files left: {temps:?}");
        }
        scenario.teardown();
    }
}
