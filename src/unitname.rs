//! systemd's unit names for paths (`unit_name_path_escape`,
//! `unit_name_from_path`), used by fstab and swap alike. Tested against
//! systemd's own vectors and generator in `swap`'s tests and
//! tests/fstab_node.rs.

/// Why systemd cannot name a unit after a path (`unit_name_from_path`
/// fails with EINVAL, and systemd-fstab-generator skips the line).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UnitNameError {
    #[error("the path has a `..` component")]
    DotDot,
    #[error("a path component is longer than 255 bytes")]
    ComponentTooLong,
    #[error("the path is 4096 bytes or longer")]
    TooLong,
    #[error("the path is `.`")]
    Dot,
    #[error("the path contains a NUL byte")]
    Nul,
}

/// systemd's path escaping, `unit_name_path_escape()` in systemd 252's
/// src/basic/unit-name.c (what `systemd-escape --path` prints): simplify
/// the path (repeated `/` and `.` components dropped), `/` and the empty
/// path become `-`; a `..` component, a component over 255 bytes or a path
/// of PATH_MAX bytes or more is refused; then leading `/` dropped, a leading
/// `.` escaped, `/` → `-`, and every byte outside `[A-Za-z0-9:_.]`
/// (including `-`, `\` and all non-ASCII bytes) → `\xNN`.
/// `/dev/mapper/a-b` → `dev-mapper-a\x2db`.
pub fn escape_path(path: &[u8]) -> Result<String, UnitNameError> {
    if path.contains(&0) {
        return Err(UnitNameError::Nul);
    }
    let absolute = path.first() == Some(&b'/');
    // path_simplify(): empty and `.` components go, `..` stays.
    let parts: Vec<&[u8]> = path
        .split(|&b| b == b'/')
        .filter(|c| !c.is_empty() && *c != b".")
        .collect();
    if parts.is_empty() {
        // Simplified to "", "/" (empty_or_root: `-`) or "." (not normalized).
        return if absolute || path.is_empty() {
            Ok("-".into())
        } else {
            Err(UnitNameError::Dot)
        };
    }
    // path_is_normalized() on the simplified path.
    if parts.iter().any(|c| c.len() > 255) {
        return Err(UnitNameError::ComponentTooLong);
    }
    if parts.iter().any(|c| *c == b"..") {
        return Err(UnitNameError::DotDot);
    }
    let simplified_len =
        usize::from(absolute) + parts.iter().map(|c| c.len()).sum::<usize>() + parts.len() - 1;
    if simplified_len >= 4096 {
        return Err(UnitNameError::TooLong);
    }
    // do_escape() on the simplified path without its leading `/`.
    let joined = parts.join(&b'/');
    let mut out = String::with_capacity(joined.len());
    for (i, &b) in joined.iter().enumerate() {
        match b {
            b'/' => out.push('-'),
            b'.' if i == 0 => out.push_str("\\x2e"),
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b':' | b'_' | b'.' => out.push(b as char),
            _ => out.push_str(&format!("\\x{b:02x}")),
        }
    }
    Ok(out)
}

/// systemd's `UNIT_NAME_MAX`: names this long or longer are hashed.
const UNIT_NAME_MAX: usize = 256;

/// `unit_name_from_path()` (systemd 252): the escaped path plus `suffix`
/// (with its dot, `.swap`); a name of 256 bytes or more is cut to fit and
/// ends in `_` and the SipHash-2-4 of the full name and its NUL (key
/// ecf237fb58324a32849f069b0d21eb9a), as `unit_name_hash_long()` does.
/// `systemd-escape --path` does not hash: it is no reference for long paths.
pub fn unit_name_from_path(path: &[u8], suffix: &str) -> Result<String, UnitNameError> {
    let name = format!("{}{suffix}", escape_path(path)?);
    if name.len() < UNIT_NAME_MAX {
        return Ok(name);
    }
    const KEY: [u8; 16] = [
        0xec, 0xf2, 0x37, 0xfb, 0x58, 0x32, 0x4a, 0x32, 0x84, 0x9f, 0x06, 0x9b, 0x0d, 0x21, 0xeb,
        0x9a,
    ];
    let mut h = siphasher::sip::SipHasher24::new_with_key(&KEY);
    // siphash24_string() hashes the terminating NUL too.
    std::hash::Hasher::write(&mut h, name.as_bytes());
    std::hash::Hasher::write(&mut h, &[0]);
    let hash: String = std::hash::Hasher::finish(&h)
        .to_le_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    // The suffix without its dot, as strrchr(name, '.') + 1 gives it.
    let type_len = suffix.len().saturating_sub(1);
    let keep = UNIT_NAME_MAX - 1 - type_len - hash.len() - 2;
    // The escaped name is ASCII, so any byte offset is a char boundary.
    Ok(format!("{}_{hash}{suffix}", &name[..keep]))
}

/// The swap unit systemd makes for a device path (`What=`).
pub fn unit_name_for(device: &[u8]) -> Result<String, UnitNameError> {
    unit_name_from_path(device, ".swap")
}
