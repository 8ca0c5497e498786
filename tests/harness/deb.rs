//! The Debian package, built by the tests themselves from the binary under
//! test (`packaging/deb/build.sh --profile dev --no-build`, so a
//! `--features failpoints` test build packages its fail points), once per
//! test process. Installs cargo-deb (the version below) when missing.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// The cargo-deb release the packaging was written and tested against.
pub const CARGO_DEB_VERSION: &str = "3.8.0";

fn cargo() -> String {
    std::env::var("CARGO").unwrap_or_else(|_| "cargo".into())
}

fn ensure_cargo_deb() {
    // One install at a time on the machine: test processes run side by side.
    let _lock = super::flock("/tmp/taint-guard-cargo-deb.lock", libc::LOCK_EX);
    let have = Command::new(cargo())
        .args(["deb", "--version"])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    if have {
        return;
    }
    eprintln!("installing cargo-deb {CARGO_DEB_VERSION} (cargo install, once)");
    let o = Command::new(cargo())
        .args([
            "install",
            "cargo-deb",
            "--locked",
            "--version",
            CARGO_DEB_VERSION,
        ])
        .env("CARGO_BUILD_JOBS", "1")
        .output()
        .expect("running cargo install");
    assert!(
        o.status.success(),
        "cargo install cargo-deb failed:\n{}",
        String::from_utf8_lossy(&o.stderr)
    );
}

/// The .deb of the binary under test (built once per process).
pub fn package() -> PathBuf {
    static DEB: OnceLock<PathBuf> = OnceLock::new();
    DEB.get_or_init(|| {
        ensure_cargo_deb();
        let bin = Path::new(env!("CARGO_BIN_EXE_taint-guard"));
        // <target>/debug/taint-guard
        let target_dir = bin.parent().and_then(Path::parent).expect("target dir");
        // Per process: other test processes build and install theirs meanwhile.
        let out = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
            .join("deb")
            .join(std::process::id().to_string());
        std::fs::create_dir_all(&out).unwrap();
        let deb = out.join("taint-guard_test_amd64.deb");
        let _ = std::fs::remove_file(&deb);
        let o = Command::new(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/packaging/deb/build.sh"
        ))
        .args([
            "--profile",
            "dev",
            "--no-build",
            "--fast",
            "--strip",
            "-q",
            "-o",
        ])
        .arg(&deb)
        .env("CARGO_TARGET_DIR", target_dir)
        .env("CARGO", cargo())
        .output()
        .expect("running packaging/deb/build.sh");
        assert!(
            o.status.success() && deb.is_file(),
            "packaging/deb/build.sh failed:\n{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
        deb
    })
    .clone()
}
