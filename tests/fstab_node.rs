//! taint-guard's fstab → swap unit mapping against systemd's own binaries:
//! `systemd-escape --path` and systemd-fstab-generator itself, run on tricky
//! fstab files with `SYSTEMD_FSTAB`/`SYSTEMD_PROC_CMDLINE`, writing into a
//! temp dir (nothing on the machine changes).
//!
//! The generator makes no swap unit inside a container (`detect_container()`
//! in add_swap), and CI runs in one, so — as in a systemd-nspawn node, where
//! it is the same — a small LD_PRELOAD shim makes `detect_container()` and
//! `path_is_read_only_fs()` (exported by libsystemd-shared) return 0. The
//! rest of the generator is the real systemd 252 code. Needs systemd 252
//! and a C compiler; otherwise every test shows as ignored in the runner's
//! summary (libtest-mimic), and fails with TG_REQUIRE_SYSTEMD=1.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use taint_guard::fstab::{self, Boot};

const GENERATOR: &str = "/lib/systemd/system-generators/systemd-fstab-generator";

/// Why these tests cannot run here, if they cannot.
fn unavailable() -> Option<String> {
    if !Path::new(GENERATOR).exists() {
        return Some(format!("{GENERATOR} not found"));
    }
    let v = Command::new("systemctl").arg("--version").output().ok()?;
    let v = String::from_utf8_lossy(&v.stdout).into_owned();
    if !v.starts_with("systemd 252 ") {
        return Some(format!(
            "systemd here is {:?}, the mapping models 252",
            v.lines().next().unwrap_or("")
        ));
    }
    if Command::new("cc").arg("--version").output().is_err() {
        return Some("no C compiler for the container shim".into());
    }
    None
}

/// The shim: `detect_container()` answers `container` (a positive value is
/// systemd's "in a container").
fn shim(dir: &Path, container: bool) -> PathBuf {
    let c = dir.join("shim.c");
    std::fs::write(
        &c,
        format!(
            "int detect_container(void) {{ return {}; }}\n\
             int path_is_read_only_fs(const char *p) {{ (void) p; return 0; }}\n",
            u8::from(container)
        ),
    )
    .unwrap();
    let so = dir.join("shim.so");
    let st = Command::new("cc")
        .args(["-shared", "-fPIC", "-o"])
        .arg(&so)
        .arg(&c)
        .status()
        .unwrap();
    assert!(st.success(), "building the shim");
    so
}

/// Run the real generator on `fstab` with `cmdline`, outside a container:
/// the swap units it wrote and the ones it hooked to swap.target.
fn generate(fstab: &[u8], cmdline: &str) -> (BTreeSet<String>, BTreeSet<String>) {
    generate_in(fstab, cmdline, false)
}

fn generate_in(
    fstab: &[u8],
    cmdline: &str,
    container: bool,
) -> (BTreeSet<String>, BTreeSet<String>) {
    let t = tempfile::tempdir().unwrap();
    let so = shim(t.path(), container);
    let f = t.path().join("fstab");
    std::fs::write(&f, fstab).unwrap();
    let out = t.path().join("out");
    for d in ["out", "early", "late"] {
        std::fs::create_dir(t.path().join(d)).unwrap();
    }
    let r = Command::new(GENERATOR)
        .arg(&out)
        .arg(t.path().join("early"))
        .arg(t.path().join("late"))
        .env("SYSTEMD_FSTAB", &f)
        .env("SYSTEMD_PROC_CMDLINE", cmdline)
        .env("SYSTEMD_EFI_OPTIONS", "")
        .env("SYSTEMD_LOG_LEVEL", "debug")
        .env("LD_PRELOAD", &so)
        .output()
        .unwrap();
    let log = String::from_utf8_lossy(&r.stderr);
    let names = |dir: &Path| -> BTreeSet<String> {
        std::fs::read_dir(dir)
            .map(|rd| {
                rd.map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                    .filter(|n| n.ends_with(".swap"))
                    .collect()
            })
            .unwrap_or_default()
    };
    let written = names(&out);
    let mut at_boot = names(&out.join("swap.target.requires"));
    at_boot.extend(names(&out.join("swap.target.wants")));
    assert_eq!(
        log.contains("Running in a container, ignoring fstab swap entry"),
        container && !cmdline.contains("swap=0") && !cmdline.contains("fstab=0"),
        "the shim did not take: {log}"
    );
    (written, at_boot)
}

/// Our view of the same file: (units written, units at boot).
fn ours(fstab: &[u8], cmdline: &str) -> (BTreeSet<String>, BTreeSet<String>) {
    ours_in(fstab, cmdline, None)
}

fn ours_in(
    fstab: &[u8],
    cmdline: &str,
    container: Option<&str>,
) -> (BTreeSet<String>, BTreeSet<String>) {
    let switch = fstab::swap_disabled_by_cmdline(None, cmdline.as_bytes());
    let lines = fstab::swap_lines(fstab, switch.as_deref(), container).unwrap();
    let written = lines
        .iter()
        .filter(|e| e.boot.unit_written())
        .filter_map(|e| e.unit.clone())
        .collect();
    let at_boot = lines
        .iter()
        .filter(|e| e.boot == Boot::Activates)
        .filter_map(|e| e.unit.clone())
        .collect();
    (written, at_boot)
}

const TRICKY: &[u8] = b"# caf\xe9: a Latin-1 comment\n\
UUID=3e5b0a8c-6f1e-4a1a-9a4b-1f2e3d4c5b6a none swap sw 0 0\n\
UUID=ABCD-1234 none swap sw\n\
LABEL=my\\040swap none swap sw,pri=5,nofail\n\
LABEL=\"dq\" none swap defaults\n\
LABEL='sq' none swap sw\n\
LABEL=a\\011b none swap sw\n\
LABEL=e\\134f none swap sw\n\
LABEL=g\\041h none swap sw\n\
LABEL=appl\xc3\xa9 none swap sw\n\
LABEL=caf\xe9 none swap sw\n\
PARTUUID=0a1b2c3d-02 none swap sw\n\
PARTLABEL=swap@1 none swap x-systemd.device-timeout=5s\n\
/dev/mapper/vg-swap_1 none swap sw 0 0\n\
/.hidden/sw//file none swap sw\n\
/swap%file none swap sw\n\
/var//tmp/./sw/ none swap sw\n\
/sw\\040space none swap sw\r\n\
/crlf-short none swap\r\n\
/noauto-a none swap noauto,sw\n\
/noauto-b none swap noauto,auto\n\
/noauto-c none swap noauto=0\n\
/dev/../bad none swap sw\n\
/swapfile none swap noauto\n\
//swapfile/ none swap sw\n\
label=lower none swap sw\n\
/xsd none swap x-systemd.makefs,x-systemd.growfs,x-systemd.automount,_netdev\n\
/xsd2 none swap x-systemd.growfs,x-systemd.device-timeout=3s,x-systemd.requires=a.mount\n\
/dev/sda3 /mnt ext4 defaults 0 2\n\
/last none swap sw";

fn unit_names_and_boot_match_systemd_fstab_generator() {
    let mut fstab = TRICKY.to_vec();
    fstab.extend(b"\n");
    // Hashed unit names (256+ bytes), one with a makefs that fits and one
    // whose systemd-mkswap@ name does not.
    fstab.extend(format!("/{} none swap sw\n", "l".repeat(252)).as_bytes());
    fstab.extend(format!("/dev/{} none swap x-systemd.makefs\n", "d".repeat(228)).as_bytes());
    fstab.extend(format!("/dev/{} none swap x-systemd.makefs\n", "e".repeat(229)).as_bytes());
    fstab.extend(b"/dev/sdz9 none swap x-systemd.makefs\n");
    let cmdline = "BOOT_IMAGE=/vmlinuz root=/dev/sda1 ro quiet";
    let (want_written, want_boot) = generate(&fstab, cmdline);
    let (written, at_boot) = ours(&fstab, cmdline);
    assert!(want_written.len() > 20, "{want_written:?}");
    assert_eq!(written, want_written);
    assert_eq!(at_boot, want_boot);
    // The hashed long name is among them.
    assert!(written.iter().any(|n| n.len() == 255), "{written:?}");
}

fn kernel_command_line_matches_systemd_fstab_generator() {
    let fstab = b"/swapfile none swap sw 0 0\n/s2 none swap noauto\n";
    for cmdline in [
        "quiet systemd.swap=0",
        "systemd.swap=false",
        "systemd.swap=0 systemd.swap=1",
        "systemd.swap=0 systemd.swap",
        "systemd.swap=bogus",
        "\"systemd.swap=no\"",
        "fstab=0",
        "rd.fstab=0 rd.systemd.swap=0",
        "systemd_swap=0",
    ] {
        assert_eq!(
            ours(fstab, cmdline),
            generate(fstab, cmdline),
            "cmdline {cmdline:?}"
        );
    }
}

/// After `--fix` comments out the lines [`fstab::lines_to_stop`] names, the
/// real generator hooks none of those units to swap.target, even where
/// a duplicate line was waiting to take over; every other unit stays.
fn commented_units_stay_off_for_systemd_fstab_generator() {
    let mut fstab = TRICKY.to_vec();
    fstab.extend(
        b"\n/dup none swap sw\n/dup none swap sw,pri=3\n/dup none swap noauto\n\
          /dup2 none swap sw\n/dup2 none swap noauto\n/dup2 none swap sw\n\
          /keep none swap sw\n/dup3 none swap sw\n/dup3 none swap sw\n/dup3 none swap sw\n",
    );
    let cmdline = "quiet";
    let entries = fstab::swap_lines(&fstab, None, None).unwrap();
    let (_, boot_before) = generate(&fstab, cmdline);
    for target in ["dup.swap", "dup2.swap", "dup3.swap"] {
        let lines: Vec<usize> = entries
            .iter()
            .filter(|e| e.boot == Boot::Activates && e.unit.as_deref() == Some(target))
            .map(|e| e.line)
            .collect();
        assert_eq!(lines.len(), 1, "{target}");
        let stop = fstab::lines_to_stop(&entries, &lines);
        let edit = fstab::comment_out(&fstab, &stop, "taint-guard test");
        assert_eq!(edit.changed_lines, stop);
        let (_, boot_after) = generate(&edit.new_content, cmdline);
        assert!(
            !boot_after.contains(target),
            "{target}: {stop:?} {boot_after:?}"
        );
        let mut want = boot_before.clone();
        want.remove(target);
        assert_eq!(boot_after, want, "{target}: only that unit went");
    }
    // Without lines_to_stop, the duplicate really would take over.
    let first: Vec<usize> = entries
        .iter()
        .filter(|e| e.boot == Boot::Activates && e.unit.as_deref() == Some("dup.swap"))
        .map(|e| e.line)
        .collect();
    let naive = fstab::comment_out(&fstab, &first, "taint-guard test");
    assert!(generate(&naive.new_content, cmdline).1.contains("dup.swap"));
}

/// In a container the real generator writes no swap unit at all, with or
/// without the command line's switch; so do we.
fn container_matches_systemd_fstab_generator() {
    let mut fstab = TRICKY.to_vec();
    fstab.extend(b"\n");
    for cmdline in ["quiet", "quiet systemd.swap=0"] {
        let want = generate_in(&fstab, cmdline, true);
        assert_eq!(want, (BTreeSet::new(), BTreeSet::new()), "{cmdline:?}");
        assert_eq!(ours_in(&fstab, cmdline, Some("lxc")), want, "{cmdline:?}");
    }
}

fn escape_path_matches_systemd_escape() {
    for p in [
        "/swapfile",
        "/dev/mapper/centos-swap",
        "/dev/disk/by-label/my\\x20swap",
        "/.hidden/a b",
        "/var//tmp/./sw/",
        "/a\\b@c%d=e+f#g~h",
        "/appl\u{e9}",
        "/",
        "",
    ] {
        let out = Command::new("systemd-escape")
            .args(["--path", "--suffix=swap", "--"])
            .arg(p)
            .output()
            .unwrap();
        assert!(out.status.success(), "{p:?}");
        let want = String::from_utf8(out.stdout).unwrap();
        assert_eq!(
            taint_guard::swap::unit_name_for(p.as_bytes()).unwrap(),
            want.trim_end_matches('\n'),
            "{p:?}"
        );
    }
}

fn main() -> std::process::ExitCode {
    let args = libtest_mimic::Arguments::from_args();
    let tests: [(&str, fn()); 5] = [
        (
            "unit_names_and_boot_match_systemd_fstab_generator",
            unit_names_and_boot_match_systemd_fstab_generator,
        ),
        (
            "kernel_command_line_matches_systemd_fstab_generator",
            kernel_command_line_matches_systemd_fstab_generator,
        ),
        (
            "commented_units_stay_off_for_systemd_fstab_generator",
            commented_units_stay_off_for_systemd_fstab_generator,
        ),
        (
            "container_matches_systemd_fstab_generator",
            container_matches_systemd_fstab_generator,
        ),
        (
            "escape_path_matches_systemd_escape",
            escape_path_matches_systemd_escape,
        ),
    ];
    let why = unavailable();
    let required = std::env::var("TG_REQUIRE_SYSTEMD").as_deref() == Ok("1");
    if let Some(w) = &why {
        eprintln!("systemd-fstab-generator comparisons ignored: {w}");
    }
    let trials = tests
        .into_iter()
        .map(|(name, f)| {
            let ignored = why.is_some() && !required;
            let why = why.clone();
            let t = libtest_mimic::Trial::test(name, move || {
                if let (Some(w), true) = (&why, required) {
                    return Err(format!("cannot run here ({w}) and TG_REQUIRE_SYSTEMD=1").into());
                }
                std::panic::catch_unwind(f).map_err(|e| {
                    e.downcast_ref::<String>()
                        .cloned()
                        .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
                        .unwrap_or_else(|| "panicked".into())
                        .into()
                })
            });
            t.with_ignored_flag(ignored)
        })
        .collect();
    libtest_mimic::run(&args, trials).exit_code()
}
