//! /etc/fstab as systemd 252 reads it: which swap lines turn swap on at
//! boot, the unit systemd-fstab-generator makes from each, and commenting
//! them out without touching any other byte.
//!
//! The file is bytes, never assumed UTF-8 (a Latin-1 comment is common).
//! Lines are read as glibc's getmntent(3) reads them (systemd-fstab-generator
//! uses it), then mapped as the generator does (`fstab_node_to_udev_node`,
//! `encode_devnode_name`, `unit_name_from_path`, `noauto`, `systemd.swap=`).
//! Sources: systemd-stable 252.39 (src/fstab-generator/fstab-generator.c,
//! src/shared/fstab-util.c, src/shared/device-nodes.c, src/basic/utf8.c,
//! src/basic/proc-cmdline.c), glibc 2.36 misc/mntent_r.c; checked against
//! the real binaries (tests/fstab_node.rs runs systemd-fstab-generator).
//!
//! Everything here is pure except [`comment_out_swap_lines`] and
//! [`preview`], which read and rewrite the file through `files`.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};

/// glibc's getmntent() reads a line into a 4096-byte buffer: longer lines
/// are cut to their first 4095 bytes, and the rest is dropped.
pub const GETMNTENT_LINE_MAX: usize = 4095;

/// What systemd does at boot with one uncommented swap line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Boot {
    /// The generator writes the unit and hooks it to swap.target: swap on.
    Activates,
    /// `noauto` (the last of `noauto`/`auto`): the unit is written, but
    /// nothing pulls it in.
    Noauto,
    /// An earlier line makes the same unit name; the generator refuses this
    /// one ("Duplicate entry"), so only the earlier line counts.
    Duplicate,
    /// `systemd.swap=0` or `fstab=0` on the kernel command line: the
    /// generator makes no swap unit at all.
    DisabledByCmdline,
    /// systemd runs in a container: the generator ignores fstab swap lines
    /// ("Running in a container, ignoring fstab swap entry").
    InContainer,
    /// systemd cannot name a unit after the device (`..` in the path…):
    /// the generator logs an error and skips the line.
    NoUnitName,
    /// `x-systemd.makefs` on something systemd cannot format (not under
    /// /dev/ or /sys/, or a name too long for `systemd-mkswap@.service`):
    /// the unit is written, but the generator fails before hooking it to
    /// swap.target.
    MakefsFailed,
}

impl Boot {
    /// The generator writes a unit file for the line.
    pub fn unit_written(self) -> bool {
        matches!(self, Boot::Activates | Boot::Noauto | Boot::MakefsFailed)
    }
}

/// One uncommented swap line (type field exactly `swap`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SwapEntry {
    /// 1-based line number.
    pub line: usize,
    /// First field as written (`UUID=…`, `/dev/mapper/…`, `/swapfile`);
    /// bytes that are not UTF-8 shown as U+FFFD.
    pub spec: String,
    /// The generator's `What=`: `spec` with getmntent's escapes (`\040`)
    /// decoded and `UUID=x` → `/dev/disk/by-uuid/x` (value unquoted and
    /// devnode-encoded: a space is `\x20`).
    pub device: String,
    /// Options field, decoded (empty when the line has none).
    pub options: String,
    /// The line as written, without its line ending.
    pub text: String,
    /// The unit the generator names after `device`; None when it cannot.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unit: Option<String>,
    pub boot: Boot,
    /// For a `duplicate`: what systemd does with the line once no earlier
    /// line claims its unit (commented out, say).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub if_first: Option<Boot>,
}

/// The four text fields of an fstab line, decoded as getmntent(3) does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mntent {
    pub fsname: Vec<u8>,
    pub dir: Vec<u8>,
    pub fstype: Vec<u8>,
    pub opts: Vec<u8>,
    /// The first field before decoding.
    pub raw_fsname: Vec<u8>,
}

/// Physical lines of `content`: (1-based number, bytes without the `\n`,
/// whether a `\n` ended it). A `\r` before the `\n` stays in the line, as
/// it does for getmntent.
pub fn lines(content: &[u8]) -> impl Iterator<Item = (usize, &[u8], bool)> {
    let mut rest = content;
    let mut n = 0;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        n += 1;
        Some(match rest.iter().position(|&b| b == b'\n') {
            Some(i) => {
                let line = &rest[..i];
                rest = &rest[i + 1..];
                (n, line, true)
            }
            None => {
                let line = rest;
                rest = &[];
                (n, line, false)
            }
        })
    })
}

/// One line as glibc 2.36's getmntent_r() reads it; None for blank and
/// comment lines. Fields are split on space and tab only (not `\r`), each
/// decoded with [`decode_name`]; missing fields are empty.
pub fn getmntent(line: &[u8], newline: bool) -> Option<Mntent> {
    let mut buf = line;
    if buf.len() >= GETMNTENT_LINE_MAX {
        // fgets() filled the buffer without reaching the newline: glibc
        // keeps these bytes untrimmed and skips the rest of the line.
        buf = &buf[..GETMNTENT_LINE_MAX];
    } else if newline {
        // Trailing blanks before the newline are chopped with it.
        while let [head @ .., b' ' | b'\t'] = buf {
            buf = head;
        }
    }
    let blank = |b: &u8| *b == b' ' || *b == b'\t';
    let start = buf.iter().position(|b| !blank(b)).unwrap_or(buf.len());
    let mut head: Option<&[u8]> = Some(&buf[start..]);
    if matches!(head, Some([] | [b'#', ..])) {
        return None;
    }
    // strsep(&head, " \t"), then skip blanks: as glibc does, field by field.
    let mut next = || -> Option<&[u8]> {
        let h = head?;
        let (tok, rest) = match h.iter().position(blank) {
            Some(i) => (&h[..i], Some(&h[i + 1..])),
            None => (h, None),
        };
        head = rest.map(|r| {
            let skip = r.iter().position(|b| !blank(b)).unwrap_or(r.len());
            &r[skip..]
        });
        Some(tok)
    };
    let raw_fsname = next().unwrap_or_default().to_vec();
    let dir = next().map(decode_name).unwrap_or_default();
    let fstype = next().map(decode_name).unwrap_or_default();
    let opts = next().map(decode_name).unwrap_or_default();
    Some(Mntent {
        fsname: decode_name(&raw_fsname),
        dir,
        fstype,
        opts,
        raw_fsname,
    })
}

/// glibc's decode_name(): only `\040` (space), `\011` (tab), `\012`
/// (newline), `\134` and `\\` (backslash) are decoded; any other `\NNN`
/// stays as written.
pub fn decode_name(field: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(field.len());
    let mut i = 0;
    while i < field.len() {
        let rest = &field[i..];
        let (byte, used) = match rest {
            [b'\\', b'0', b'4', b'0', ..] => (b' ', 4),
            [b'\\', b'0', b'1', b'1', ..] => (b'\t', 4),
            [b'\\', b'0', b'1', b'2', ..] => (b'\n', 4),
            [b'\\', b'\\', ..] => (b'\\', 2),
            [b'\\', b'1', b'3', b'4', ..] => (b'\\', 4),
            [b, ..] => (*b, 1),
            [] => unreachable!(),
        };
        out.push(byte);
        i += used;
    }
    out
}

/// Decode escapes in a path the kernel printed (/proc/swaps), which uses
/// the same four octal escapes as fstab.
pub fn unescape(s: &str) -> String {
    String::from_utf8_lossy(&decode_name(s.as_bytes())).into_owned()
}

/// `fstab_node_to_udev_node()`: `LABEL=`, `UUID=`, `PARTUUID=`,
/// `PARTLABEL=` (case-sensitive) → `/dev/disk/by-*/VALUE`, the value with
/// one pair of matching outer quotes removed and devnode-encoded
/// ([`encode_devnode_name`]); anything else unchanged (not simplified).
pub fn spec_to_device(fsname: &[u8]) -> Vec<u8> {
    for (tag, dir) in [
        (&b"LABEL="[..], "label"),
        (b"UUID=", "uuid"),
        (b"PARTUUID=", "partuuid"),
        (b"PARTLABEL=", "partlabel"),
    ] {
        if let Some(v) = fsname.strip_prefix(tag) {
            let v = match v {
                [q @ (b'"' | b'\''), inner @ .., last] if q == last => inner,
                _ => v,
            };
            let mut out = format!("/dev/disk/by-{dir}/").into_bytes();
            out.extend(encode_devnode_name(v));
            return out;
        }
    }
    fsname.to_vec()
}

/// `encode_devnode_name()`: a valid multi-byte UTF-8 character (as
/// systemd's `utf8_encoded_valid_unichar()` judges it) is kept; every other
/// byte outside `[0-9A-Za-z#+-.:=@_]`, and `\`, becomes `\xNN`.
pub fn encode_devnode_name(s: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(s.len());
    let mut i = 0;
    while i < s.len() {
        let n = utf8_valid_unichar_len(&s[i..]);
        if n > 1 {
            out.extend_from_slice(&s[i..i + n]);
            i += n;
            continue;
        }
        let b = s[i];
        if b.is_ascii_alphanumeric() || b"#+-.:=@_".contains(&b) {
            out.push(b);
        } else {
            out.extend(format!("\\x{b:02x}").bytes());
        }
        i += 1;
    }
    out
}

/// systemd's `utf8_encoded_valid_unichar()`: the length of the valid
/// character at the start of `s`, or 0. Rejects overlong forms, surrogates,
/// code points above U+10FFFF, U+FDD0..U+FDEF and U+xxFFFE/U+xxFFFF.
fn utf8_valid_unichar_len(s: &[u8]) -> usize {
    let Some(&first) = s.first() else { return 0 };
    let len = match first {
        0x00..=0x7f => return 1,
        _ if first & 0xe0 == 0xc0 => 2,
        _ if first & 0xf0 == 0xe0 => 3,
        _ if first & 0xf8 == 0xf0 => 4,
        _ if first & 0xfc == 0xf8 => 5,
        _ if first & 0xfe == 0xfc => 6,
        _ => return 0,
    };
    // Past the end reads as NUL: not a continuation byte.
    if s.len() < len || s[1..len].iter().any(|&b| b & 0xc0 != 0x80) {
        return 0;
    }
    let mut c: u32 = u32::from(first) & (0x7f >> len);
    for &b in &s[1..len] {
        c = (c << 6) | u32::from(b & 0x3f);
    }
    let encoded_len = match c {
        0..=0x7f => 1,
        0x80..=0x7ff => 2,
        0x800..=0xffff => 3,
        0x1_0000..=0x1f_ffff => 4,
        0x20_0000..=0x3ff_ffff => 5,
        _ => 6,
    };
    let valid = c < 0x11_0000
        && c & 0xffff_f800 != 0xd800
        && !(0xfdd0..=0xfdef).contains(&c)
        && c & 0xfffe != 0xfffe;
    if encoded_len == len && valid {
        len
    } else {
        0
    }
}

/// `fstab_test_yes_no_option(opts, "yes\0no\0")`: whether the last of the
/// two options in `opts` is `yes` (`name=value` counts as `name`; commas
/// escaped with `\` do not split).
pub fn test_yes_no_option(opts: &[u8], yes: &[u8], no: &[u8]) -> bool {
    let mut found = None;
    for word in split_options(opts) {
        for (name, is_yes) in [(yes, true), (no, false)] {
            if let Some(rest) = word.strip_prefix(name) {
                if rest.is_empty() || rest[0] == b'=' {
                    found = Some(is_yes);
                    break;
                }
            }
        }
    }
    found == Some(true)
}

/// `fstab_test_option(opts, name)`: `name` or `name=…` is among the options.
pub fn test_option(opts: &[u8], name: &[u8]) -> bool {
    split_options(opts).iter().any(|w| {
        w.strip_prefix(name)
            .is_some_and(|r| r.is_empty() || r[0] == b'=')
    })
}

/// `generator_hook_up_mkswap()` gets past its checks for this `What=`:
/// `is_device_path()` (a component after /dev/ or /sys/) and an instance
/// name `systemd-mkswap@ESCAPED.service` under 256 bytes.
fn can_mkswap(what: &[u8]) -> bool {
    let comps: Vec<&[u8]> = what
        .split(|&b| b == b'/')
        .filter(|c| !c.is_empty() && *c != b".")
        .collect();
    let device = what.first() == Some(&b'/')
        && comps.len() >= 2
        && (comps[0] == b"dev" || comps[0] == b"sys")
        && comps.iter().all(|c| c.len() <= 255);
    device
        && crate::unitname::escape_path(what)
            .is_ok_and(|e| "systemd-mkswap@".len() + e.len() + ".service".len() < 256)
}

/// Options split on commas not escaped by `\` (`\,` and `\\` are escapes).
fn split_options(opts: &[u8]) -> Vec<&[u8]> {
    let mut out = Vec::new();
    let (mut start, mut i) = (0, 0);
    while i < opts.len() {
        match opts[i] {
            b'\\' => i += 2,
            b',' => {
                out.push(&opts[start..i]);
                i += 1;
                start = i;
            }
            _ => i += 1,
        }
    }
    out.push(&opts[start.min(opts.len())..]);
    out
}

/// The EFI variable systemd parses before the kernel command line, as PID 1
/// caches it (`SystemdOptions`, systemd's vendor GUID).
pub const EFI_OPTIONS_CACHE: &str =
    "/run/systemd/efivars/SystemdOptions-8cf2644b-4b0b-428f-9387-6d876050dc67";

/// The kernel command line word that stops systemd-fstab-generator from
/// making swap units (`systemd.swap=0`, `fstab=no`…), or None. `efi` is the
/// SystemdOptions EFI variable, parsed first (the command line overrides
/// it). As systemd 252 does: words split on whitespace with `'`/`"`
/// quoting; `rd.` words ignored outside the initrd; the last valid value of
/// each key wins; a bare key means true; an unparsable value is ignored.
pub fn swap_disabled_by_cmdline(efi: Option<&[u8]>, cmdline: &[u8]) -> Option<String> {
    // (key, last effective word that set it false, or None when true)
    let mut fstab: Option<Vec<u8>> = None;
    let mut swap: Option<Vec<u8>> = None;
    for word in efi
        .into_iter()
        .flat_map(cmdline_words)
        .chain(cmdline_words(cmdline))
    {
        let (key, value) = match word.iter().position(|&b| b == b'=') {
            Some(i) => (&word[..i], Some(&word[i + 1..])),
            None => (&word[..], None),
        };
        let slot = match key {
            b"fstab" => &mut fstab,
            b"systemd.swap" => &mut swap,
            _ => continue,
        };
        match value.map(parse_boolean).unwrap_or(Some(true)) {
            Some(true) => *slot = None,
            Some(false) => *slot = Some(word.clone()),
            None => {}
        }
    }
    fstab
        .or(swap)
        .map(|w| String::from_utf8_lossy(&w).into_owned())
}

/// systemd's parse_boolean().
fn parse_boolean(v: &[u8]) -> Option<bool> {
    let v = v.to_ascii_lowercase();
    match &v[..] {
        b"1" | b"yes" | b"y" | b"true" | b"t" | b"on" => Some(true),
        b"0" | b"no" | b"n" | b"false" | b"f" | b"off" => Some(false),
        _ => None,
    }
}

/// extract_first_word(EXTRACT_UNQUOTE|EXTRACT_RELAX|EXTRACT_RETAIN_ESCAPE)
/// over the whole line: words split on " \t\n\r", quotes group and are
/// removed, an unclosed quote runs to the end, `\` is an ordinary byte.
pub(crate) fn cmdline_words(line: &[u8]) -> Vec<Vec<u8>> {
    let sep = |b: u8| matches!(b, b' ' | b'\t' | b'\n' | b'\r');
    let mut words = Vec::new();
    let mut i = 0;
    while i < line.len() && line[i] != 0 {
        if sep(line[i]) {
            i += 1;
            continue;
        }
        let mut word = Vec::new();
        let mut quote = None;
        while i < line.len() && line[i] != 0 {
            let b = line[i];
            i += 1;
            match quote {
                Some(q) if b == q => quote = None,
                Some(_) => word.push(b),
                None if b == b'"' || b == b'\'' => quote = Some(b),
                None if sep(b) => break,
                None => word.push(b),
            }
        }
        // rd.* words are for the initrd only; this is the real root.
        if !word.starts_with(b"rd.") {
            words.push(word);
        }
    }
    words
}

/// The fstab could not be read the way systemd reads it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScanError {
    /// glibc stops a line at a NUL byte and may then swallow the next line:
    /// we do not guess what systemd made of it.
    #[error("line {0} contains a NUL byte; cannot tell how systemd reads this file")]
    Nul(usize),
}

/// Every uncommented swap line of `content`, with what systemd does with
/// it at boot. `cmdline_off` is the kernel command line word that turns
/// fstab swap off ([`swap_disabled_by_cmdline`]); `container` is systemd's
/// container id when it runs in one. The generator checks them in that
/// order, before it names a unit.
pub fn swap_lines(
    content: &[u8],
    cmdline_off: Option<&str>,
    container: Option<&str>,
) -> Result<Vec<SwapEntry>, ScanError> {
    let mut out: Vec<SwapEntry> = Vec::new();
    for (n, line, newline) in lines(content) {
        if line.contains(&0) {
            return Err(ScanError::Nul(n));
        }
        let Some(me) = getmntent(line, newline) else {
            continue;
        };
        if me.fstype != b"swap" {
            continue;
        }
        let what = spec_to_device(&me.fsname);
        let unit = crate::unitname::unit_name_for(&what).ok();
        let alone = if test_option(&me.opts, b"x-systemd.makefs") && !can_mkswap(&what) {
            Boot::MakefsFailed
        } else if test_yes_no_option(&me.opts, b"noauto", b"auto") {
            Boot::Noauto
        } else {
            Boot::Activates
        };
        let mut if_first = None;
        let boot = if cmdline_off.is_some() {
            Boot::DisabledByCmdline
        } else if container.is_some() {
            Boot::InContainer
        } else if unit.is_none() {
            Boot::NoUnitName
        } else if out.iter().any(|e| e.boot.unit_written() && e.unit == unit) {
            if_first = Some(alone);
            Boot::Duplicate
        } else {
            alone
        };
        let text = line.strip_suffix(b"\r").unwrap_or(line);
        out.push(SwapEntry {
            line: n,
            spec: lossy(&me.raw_fsname),
            device: lossy(&what),
            options: lossy(&me.opts),
            text: lossy(text),
            unit,
            boot,
            if_first,
        });
    }
    Ok(out)
}

/// The lines to comment out so that fstab activates none of the units of
/// `lines` at boot: `lines`, plus every later line of the same unit that
/// systemd takes instead once the earlier ones are gone (it refuses a
/// second line for a unit only while the first one is there). `entries`
/// are every uncommented swap line ([`swap_lines`]); the result is sorted.
pub fn lines_to_stop<'a>(
    entries: impl IntoIterator<Item = &'a SwapEntry>,
    lines: &[usize],
) -> Vec<usize> {
    let mut all: Vec<&SwapEntry> = entries.into_iter().collect();
    all.sort_by_key(|e| e.line);
    let units: Vec<&str> = all
        .iter()
        .filter(|e| lines.contains(&e.line))
        .filter_map(|e| e.unit.as_deref())
        .collect();
    let mut out: Vec<usize> = lines.to_vec();
    // systemd's first-line-wins, replayed without the commented lines,
    // until no line of those units would come up.
    loop {
        let mut written: Vec<&str> = Vec::new();
        let mut takes_over = None;
        for e in all.iter().filter(|e| !out.contains(&e.line)) {
            let boot = match (e.boot, &e.unit) {
                (Boot::Duplicate, Some(u)) if !written.contains(&u.as_str()) => {
                    e.if_first.unwrap_or(Boot::Duplicate)
                }
                (Boot::Duplicate, _) => Boot::Duplicate,
                (b, _) => b,
            };
            if let (true, Some(u)) = (boot.unit_written(), &e.unit) {
                written.push(u);
                if boot == Boot::Activates && units.contains(&u.as_str()) {
                    takes_over = Some(e.line);
                    break;
                }
            }
        }
        match takes_over {
            Some(n) => out.push(n),
            None => break,
        }
    }
    out.sort_unstable();
    out.dedup();
    out
}

fn lossy(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Whether line `n` (1-based) of `content` is an uncommented swap line.
fn is_swap_line(line: &[u8], newline: bool) -> bool {
    getmntent(line, newline).is_some_and(|m| m.fstype == b"swap")
}

/// The result of commenting out swap lines.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Edit {
    pub new_content: Vec<u8>,
    /// Line numbers (1-based, in the old file) that were commented out.
    pub changed_lines: Vec<usize>,
}

/// Comment out the given lines (1-based) of `content`: before each, a
/// marker comment saying what did it and when; the line itself kept, behind
/// `#`. Line endings (LF, CRLF, none at EOF) are preserved; all other bytes
/// are unchanged. Lines that are not uncommented swap lines are left alone.
pub fn comment_out(content: &[u8], lines_to_comment: &[usize], marker: &str) -> Edit {
    let mut out = Vec::with_capacity(content.len() + lines_to_comment.len() * (marker.len() + 8));
    let mut changed = Vec::new();
    for (n, line, newline) in lines(content) {
        if lines_to_comment.contains(&n) && is_swap_line(line, newline) {
            let crlf = line.ends_with(b"\r");
            out.extend_from_slice(b"# ");
            out.extend_from_slice(marker.as_bytes());
            out.extend_from_slice(if crlf { b"\r\n" } else { b"\n" });
            out.push(b'#');
            changed.push(n);
        }
        out.extend_from_slice(line);
        if newline {
            out.push(b'\n');
        }
    }
    Edit {
        new_content: out,
        changed_lines: changed,
    }
}

/// Find `targets` (line number and bytes, as first read) in `content`,
/// which may have changed since: each target is the swap line with the same
/// bytes nearest its old number. Returns (found line numbers, targets not
/// found).
fn locate(content: &[u8], targets: &[(usize, Vec<u8>)]) -> (Vec<usize>, Vec<usize>) {
    let all: Vec<(usize, &[u8], bool)> = lines(content).collect();
    let mut found: Vec<usize> = Vec::new();
    let mut missing = Vec::new();
    for (old, bytes) in targets {
        let best = all
            .iter()
            .filter(|(n, l, nl)| *l == &bytes[..] && !found.contains(n) && is_swap_line(l, *nl))
            .min_by_key(|(n, _, _)| n.abs_diff(*old));
        match best {
            Some((n, _, _)) => found.push(*n),
            None => missing.push(*old),
        }
    }
    found.sort_unstable();
    (found, missing)
}

/// What [`comment_out_swap_lines`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommentOutcome {
    /// Lines commented out, numbered as in the file that was replaced
    /// (differs from the asked-for numbers when a concurrent writer moved
    /// them). Empty when nothing was written.
    pub commented: Vec<usize>,
    /// Asked-for lines that are no longer uncommented swap lines.
    pub missing: Vec<usize>,
    /// The backup of the replaced file; None when nothing was written.
    pub backup: Option<PathBuf>,
    /// Reads of the file it took (1, or more when it changed meanwhile).
    pub attempts: u32,
}

/// How often [`comment_out_swap_lines`] starts over when the file changes
/// under it before it gives up (leaving the file as the other writer left
/// it).
pub const REWRITE_TRIES: u32 = 3;

/// Comment out swap lines of the fstab at `target` (the real file: resolve
/// symlinks first), for `--fix`. `lines` are 1-based numbers as observed;
/// on the first read they must still be uncommented swap lines, and they
/// are then followed by content: the file is read once, the new content and
/// the backup (`NAME.taint-guard.STAMP.bak`, never overwriting one) are
/// built from those same bytes, and right before the rename the file is
/// read again; if anyone changed it, everything starts over on the new
/// content (so their change is kept), up to [`REWRITE_TRIES`] times, then
/// it stops with an error and writes nothing. Atomic: temp file in the
/// same directory, fsync, rename, fsync of the directory; owner and mode
/// kept.
pub fn comment_out_swap_lines(
    target: &Path,
    lines_to_comment: &[usize],
    marker: &str,
    stamp: &str,
) -> Result<CommentOutcome> {
    // The asked-for lines as first read: (number, bytes).
    let mut targets: Option<Vec<(usize, Vec<u8>)>> = None;
    let r = crate::files::rewrite_with(target, stamp, REWRITE_TRIES, |old| {
        if let Some((n, _, _)) = lines(old).find(|(_, l, _)| l.contains(&0)) {
            bail!("{}: {}", target.display(), ScanError::Nul(n));
        }
        let t = targets.get_or_insert_with(|| {
            lines(old)
                .filter(|(n, l, nl)| lines_to_comment.contains(n) && is_swap_line(l, *nl))
                .map(|(n, l, _)| (n, l.to_vec()))
                .collect()
        });
        let (found, missing) = locate(old, t);
        let edit = comment_out(old, &found, marker);
        let new = (!edit.changed_lines.is_empty()).then_some(edit.new_content);
        Ok((new, (edit.changed_lines, missing)))
    })?;
    // Asked for, but not an uncommented swap line at the first read.
    let targets = targets.unwrap_or_default();
    let not_swap = lines_to_comment
        .iter()
        .filter(|n| !targets.iter().any(|(t, _)| t == *n));
    Ok(match r {
        crate::files::Rewrite::Unchanged {
            value: (_, missing),
            attempts,
        } => CommentOutcome {
            commented: vec![],
            missing: dedup(missing.into_iter().chain(not_swap.copied()).collect()),
            backup: None,
            attempts,
        },
        crate::files::Rewrite::Written {
            value: (commented, missing),
            backup,
            attempts,
        } => CommentOutcome {
            commented,
            missing: dedup(missing.into_iter().chain(not_swap.copied()).collect()),
            backup: Some(backup),
            attempts,
        },
    })
}

fn dedup(mut v: Vec<usize>) -> Vec<usize> {
    v.sort_unstable();
    v.dedup();
    v
}

/// The edit [`comment_out_swap_lines`] would make now, for `--dry-run`:
/// (old, new) bytes, from one read of `target`.
pub fn preview(
    target: &Path,
    lines_to_comment: &[usize],
    marker: &str,
) -> Result<(Vec<u8>, Vec<u8>)> {
    let old = std::fs::read(target).with_context(|| format!("reading {}", target.display()))?;
    if let Some(n) = lines(&old).find(|(_, l, _)| l.contains(&0)).map(|x| x.0) {
        bail!("{}: {}", target.display(), ScanError::Nul(n));
    }
    let new = comment_out(&old, lines_to_comment, marker).new_content;
    Ok((old, new))
}

/// A unified diff of an fstab edit, for `--dry-run` (bytes that are not
/// UTF-8 shown as U+FFFD; the edit itself keeps them).
pub fn unified_diff(path: &str, old: &str, new: &str) -> String {
    similar::TextDiff::from_lines(old, new)
        .unified_diff()
        .context_radius(2)
        .header(path, &format!("{path} (after --fix)"))
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    const DEBIAN: &str = "# /etc/fstab: static file system information.\n#\n# <file system> <mount point>   <type>  <options>       <dump>  <pass>\nUUID=0a3407de-014b-458b-b5c1-848e92a327a3 /               ext4    errors=remount-ro 0       1\nUUID=9b7a1a1e-31c8-4e1a-9a0e-1f0e6c2d2a11 none            swap    sw              0       0\n/dev/sr0        /media/cdrom0   udf,iso9660 user,noauto     0       0\n";

    fn boot(content: &str) -> Vec<SwapEntry> {
        swap_lines(content.as_bytes(), None, None)
            .unwrap()
            .into_iter()
            .filter(|e| e.boot == Boot::Activates)
            .collect()
    }

    #[test]
    fn finds_uuid_swap_line_with_number_and_unit() {
        let e = boot(DEBIAN);
        assert_eq!(e.len(), 1);
        assert_eq!(e[0].line, 5);
        assert_eq!(
            e[0].device,
            "/dev/disk/by-uuid/9b7a1a1e-31c8-4e1a-9a0e-1f0e6c2d2a11"
        );
        assert_eq!(
            e[0].unit.as_deref(),
            Some("dev-disk-by\\x2duuid-9b7a1a1e\\x2d31c8\\x2d4e1a\\x2d9a0e\\x2d1f0e6c2d2a11.swap")
        );
        assert_eq!(e[0].options, "sw");
    }

    #[test]
    fn centos_mapper_label_partuuid_and_swapfile() {
        let s = "/dev/mapper/centos-root /                       xfs     defaults        0 0\n\
                 /dev/mapper/centos-swap swap                    swap    defaults        0 0\n\
                 LABEL=SWAP\tnone\tswap\tsw\t0\t0\n\
                 PARTUUID=abcd-02  none swap pri=5 0 0\n\
                 /swap\\040file none swap sw 0 0\n\
                 \t  /swapfile   none   swap   sw   0   0";
        let e = boot(s);
        let devs: Vec<_> = e
            .iter()
            .map(|e| (e.line, e.device.as_str(), e.unit.as_deref().unwrap()))
            .collect();
        assert_eq!(
            devs,
            vec![
                (
                    2,
                    "/dev/mapper/centos-swap",
                    "dev-mapper-centos\\x2dswap.swap"
                ),
                (
                    3,
                    "/dev/disk/by-label/SWAP",
                    "dev-disk-by\\x2dlabel-SWAP.swap"
                ),
                (
                    4,
                    "/dev/disk/by-partuuid/abcd-02",
                    "dev-disk-by\\x2dpartuuid-abcd\\x2d02.swap"
                ),
                (5, "/swap file", "swap\\x20file.swap"),
                (6, "/swapfile", "swapfile.swap"),
            ]
        );
    }

    /// systemd 252 src/test/test-fstab-util.c TEST(fstab_node_to_udev_node)
    /// and src/test/test-device-nodes.c TEST(encode_devnode_name), verbatim.
    #[test]
    fn systemd_udev_node_vectors() {
        let n = |s: &str| String::from_utf8(spec_to_device(s.as_bytes())).unwrap();
        assert_eq!(n("LABEL=applé/jack"), "/dev/disk/by-label/applé\\x2fjack");
        assert_eq!(
            n("PARTLABEL=pinkié pie"),
            "/dev/disk/by-partlabel/pinkié\\x20pie"
        );
        assert_eq!(
            n("UUID=037b9d94-148e-4ee4-8d38-67bfe15bb535"),
            "/dev/disk/by-uuid/037b9d94-148e-4ee4-8d38-67bfe15bb535"
        );
        assert_eq!(
            n("PARTUUID=037b9d94-148e-4ee4-8d38-67bfe15bb535"),
            "/dev/disk/by-partuuid/037b9d94-148e-4ee4-8d38-67bfe15bb535"
        );
        assert_eq!(n("PONIES=awesome"), "PONIES=awesome");
        assert_eq!(n("/dev/xda1"), "/dev/xda1");
        let e = |s: &str| String::from_utf8(encode_devnode_name(s.as_bytes())).unwrap();
        assert_eq!(e("systemd sucks"), "systemd\\x20sucks");
        assert_eq!(e("pinkiepie"), "pinkiepie");
        assert_eq!(e("valíd\\ųtf8"), "valíd\\x5cųtf8");
        assert_eq!(e("s/ash/ng"), "s\\x2fash\\x2fng");
        assert_eq!(e("/"), "\\x2f");
        assert_eq!(e("!"), "\\x21");
        assert_eq!(e("QEMU    "), "QEMU\\x20\\x20\\x20\\x20");
    }

    #[test]
    fn devnode_encoding_edges() {
        let e = |s: &[u8]| encode_devnode_name(s);
        // Invalid UTF-8, a lone continuation byte, an overlong `/`, a
        // surrogate, a noncharacter: escaped byte by byte.
        assert_eq!(e(b"a\xe9b"), b"a\\xe9b");
        assert_eq!(e(b"\x80"), b"\\x80");
        assert_eq!(e(b"\xc0\xaf"), b"\\xc0\\xaf");
        assert_eq!(e(b"\xed\xa0\x80"), b"\\xed\\xa0\\x80");
        assert_eq!(e("\u{fdd0}".as_bytes()), b"\\xef\\xb7\\x90");
        assert_eq!(e("\u{fffe}".as_bytes()), b"\\xef\\xbf\\xbe");
        // Valid 4-byte UTF-8 kept; a truncated sequence escaped.
        assert_eq!(e("😀".as_bytes()), "😀".as_bytes());
        assert_eq!(e(b"\xf0\x9f\x98"), b"\\xf0\\x9f\\x98");
        assert_eq!(e(b"#+-.:=@_"), b"#+-.:=@_");
    }

    /// fstab → generator unit names, as systemd 252's generator wrote them
    /// (research notes §3; checked again in tests/fstab_node.rs).
    #[test]
    fn generator_names_for_tricky_lines() {
        let s = "LABEL=my\\040swap none swap sw 0 0\n\
                 LABEL=\"dq\" none swap sw\n\
                 LABEL='sq' none swap sw\n\
                 UUID=ABCD-1234 none swap sw\n\
                 LABEL=a\\011b none swap sw\n\
                 LABEL=e\\134f none swap sw\n\
                 LABEL=g\\041h none swap sw\n\
                 LABEL=UPPER-lower_1.2:3+4#5=6 none swap sw\n\
                 /dev/mapper/vg-swap_1 none swap sw\n\
                 /swap%file none swap sw\n\
                 label=lower none swap sw\n\
                 LABEL=applé none swap sw\n";
        let got: Vec<(String, String)> = swap_lines(s.as_bytes(), None, None)
            .unwrap()
            .into_iter()
            .map(|e| (e.device, e.unit.unwrap()))
            .collect();
        let want = [
            (
                "/dev/disk/by-label/my\\x20swap",
                "dev-disk-by\\x2dlabel-my\\x5cx20swap.swap",
            ),
            ("/dev/disk/by-label/dq", "dev-disk-by\\x2dlabel-dq.swap"),
            ("/dev/disk/by-label/sq", "dev-disk-by\\x2dlabel-sq.swap"),
            (
                "/dev/disk/by-uuid/ABCD-1234",
                "dev-disk-by\\x2duuid-ABCD\\x2d1234.swap",
            ),
            (
                "/dev/disk/by-label/a\\x09b",
                "dev-disk-by\\x2dlabel-a\\x5cx09b.swap",
            ),
            (
                "/dev/disk/by-label/e\\x5cf",
                "dev-disk-by\\x2dlabel-e\\x5cx5cf.swap",
            ),
            (
                "/dev/disk/by-label/g\\x5c041h",
                "dev-disk-by\\x2dlabel-g\\x5cx5c041h.swap",
            ),
            (
                "/dev/disk/by-label/UPPER-lower_1.2:3+4#5=6",
                "dev-disk-by\\x2dlabel-UPPER\\x2dlower_1.2:3\\x2b4\\x235\\x3d6.swap",
            ),
            ("/dev/mapper/vg-swap_1", "dev-mapper-vg\\x2dswap_1.swap"),
            ("/swap%file", "swap\\x25file.swap"),
            ("label=lower", "label\\x3dlower.swap"),
            (
                "/dev/disk/by-label/applé",
                "dev-disk-by\\x2dlabel-appl\\xc3\\xa9.swap",
            ),
        ];
        let want: Vec<(String, String)> = want
            .iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect();
        assert_eq!(got, want);
    }

    #[test]
    fn getmntent_like_glibc() {
        // Checked against glibc 2.36's getmntent() on this machine.
        let m = |s: &[u8]| getmntent(s, true).unwrap();
        assert_eq!(m(b"/a\\101b none swap sw").fsname, b"/a\\101b");
        assert_eq!(m(b"/c\\\\d\\134e none swap").fsname, b"/c\\d\\e");
        assert_eq!(m(b"/c\\\\d\\134e none swap").opts, b"");
        assert_eq!(
            m(b"\t/t\\011x\\012y none swap sw 0 0\r").fsname,
            b"/t\tx\ny"
        );
        // Only space and tab separate: `\r` and `\v` belong to the field.
        assert_eq!(m(b"/crlf none swap\r").fstype, b"swap\r");
        assert_eq!(m(b"/vt\x0bx none swap sw").fsname, b"/vt\x0bx");
        assert_eq!(m(b"/two none").fstype, b"");
        assert_eq!(m(b"/sp none swap sw \t ").opts, b"sw");
        assert_eq!(getmntent(b"   # x none swap", true), None);
        assert_eq!(getmntent(b" \t ", true), None);
    }

    #[test]
    fn comments_crlf_and_long_lines() {
        let s = "#/swapfile none swap sw 0 0\n   # UUID=x none swap sw 0 0\n/dev/sda2 /swap ext4 defaults 0 0\n\n/crlf none swap\r\n/crlf2 none swap sw 0 0\r\n";
        let e = swap_lines(s.as_bytes(), None, None).unwrap();
        assert_eq!(e.len(), 1, "{e:?}");
        assert_eq!(
            (e[0].line, e[0].text.as_str()),
            (6, "/crlf2 none swap sw 0 0")
        );
        // A line of 4095 bytes or more: glibc keeps the first 4095, untrimmed.
        let long = format!("/l none swap {}", "x".repeat(5000));
        let e = swap_lines(long.as_bytes(), None, None).unwrap();
        assert_eq!(
            e[0].options.len(),
            GETMNTENT_LINE_MAX - "/l none swap ".len()
        );
        let cut = format!("/l none {}swap", " ".repeat(GETMNTENT_LINE_MAX - 8));
        assert!(swap_lines(cut.as_bytes(), None, None).unwrap().is_empty());
    }

    #[test]
    fn noauto_last_of_noauto_and_auto_wins() {
        let s = "/a none swap noauto,sw 0 0\n/b none swap sw,noauto\n/c none swap noauto,auto\n/d none swap noauto=0\n/e none swap x\\,noauto\n/f none swap auto,noauto\n/g none swap sw,afternoauto\n";
        let got: Vec<(usize, Boot)> = swap_lines(s.as_bytes(), None, None)
            .unwrap()
            .iter()
            .map(|e| (e.line, e.boot))
            .collect();
        assert_eq!(
            got,
            vec![
                (1, Boot::Noauto),
                (2, Boot::Noauto),
                (3, Boot::Activates),
                (4, Boot::Noauto),
                (5, Boot::Activates),
                (6, Boot::Noauto),
                (7, Boot::Activates),
            ]
        );
        // systemd 252 test-fstab-util.c TEST(fstab_yes_no_option).
        let yn = |o: &str| test_yes_no_option(o.as_bytes(), b"nofail", b"fail");
        assert!(yn("nofail,fail,nofail"));
        assert!(!yn("nofail,nofail,fail"));
        assert!(!yn("abc,cde,afail"));
        assert!(yn("nofail,fail=0,nofail=0"));
        assert!(!yn("nofail,nofail=0,fail=0"));
    }

    #[test]
    fn x_systemd_options_as_the_generator_reads_them() {
        // For swap, systemd 252 reads only noauto/auto, nofail/fail,
        // x-systemd.makefs/growfs/device-timeout.
        let s = "/dev/sdb1 none swap nofail,x-systemd.makefs,x-systemd.growfs 0 0\n/b none swap x-systemd.device-timeout=5s,x-systemd.automount,x-systemd.requires=foo.mount,_netdev\n";
        assert_eq!(boot(s).len(), 2);
        // makefs on a file: the generator fails before the swap.target link.
        let s = "/swapfile none swap x-systemd.makefs\n/dev none swap x-systemd.makefs\n/sys/x none swap x-systemd.makefs=1\n";
        let got: Vec<Boot> = swap_lines(s.as_bytes(), None, None)
            .unwrap()
            .iter()
            .map(|e| e.boot)
            .collect();
        assert_eq!(
            got,
            vec![Boot::MakefsFailed, Boot::MakefsFailed, Boot::Activates]
        );
        let long = format!("/dev/{} none swap x-systemd.makefs\n", "d".repeat(229));
        assert_eq!(
            swap_lines(long.as_bytes(), None, None).unwrap()[0].boot,
            Boot::MakefsFailed
        );
        let fits = format!("/dev/{} none swap x-systemd.makefs\n", "d".repeat(228));
        assert_eq!(
            swap_lines(fits.as_bytes(), None, None).unwrap()[0].boot,
            Boot::Activates
        );
    }

    #[test]
    fn duplicates_and_bad_names() {
        // Same unit name: the first line wins, even when it is noauto.
        let s = "/swapfile none swap noauto\n//swapfile/ none swap sw\n/dev/../sw none swap sw\nUUID=ab-1 none swap sw\n/dev/disk/by-uuid/ab-1 none swap sw\n";
        let got: Vec<(usize, Boot)> = swap_lines(s.as_bytes(), None, None)
            .unwrap()
            .iter()
            .map(|e| (e.line, e.boot))
            .collect();
        assert_eq!(
            got,
            vec![
                (1, Boot::Noauto),
                (2, Boot::Duplicate),
                (3, Boot::NoUnitName),
                (4, Boot::Activates),
                (5, Boot::Duplicate),
            ]
        );
    }

    #[test]
    fn kernel_command_line_switches() {
        let off = |c: &str| swap_disabled_by_cmdline(None, c.as_bytes());
        assert_eq!(off("BOOT_IMAGE=/vmlinuz root=/dev/sda1 ro quiet"), None);
        assert_eq!(
            off("quiet systemd.swap=0").as_deref(),
            Some("systemd.swap=0")
        );
        assert_eq!(
            off("systemd.swap=false").as_deref(),
            Some("systemd.swap=false")
        );
        assert_eq!(off("systemd.swap=OFF").as_deref(), Some("systemd.swap=OFF"));
        assert_eq!(off("systemd.swap=0 systemd.swap=1"), None);
        assert_eq!(off("systemd.swap=0 systemd.swap"), None);
        assert_eq!(
            off("systemd.swap=0 systemd.swap=bogus").as_deref(),
            Some("systemd.swap=0")
        );
        assert_eq!(off("\"systemd.swap=0\"").as_deref(), Some("systemd.swap=0"));
        assert_eq!(
            off("systemd.swap='no'\n").as_deref(),
            Some("systemd.swap=no")
        );
        assert_eq!(off("fstab=no").as_deref(), Some("fstab=no"));
        // rd.* only in the initrd; no relaxed `-`/`_` matching for this key.
        assert_eq!(off("rd.fstab=0 rd.systemd.swap=0"), None);
        assert_eq!(off("systemd_swap=0 systemd.swap.x=0"), None);
        assert_eq!(off("a=\"b c systemd.swap=0"), None);
        // The EFI variable comes first; the kernel command line overrides it.
        assert_eq!(
            swap_disabled_by_cmdline(Some(b"systemd.swap=0"), b"quiet").as_deref(),
            Some("systemd.swap=0")
        );
        assert_eq!(
            swap_disabled_by_cmdline(Some(b"systemd.swap=0"), b"systemd.swap=1"),
            None
        );
        let e = swap_lines(DEBIAN.as_bytes(), Some("systemd.swap=0"), None).unwrap();
        assert_eq!(e[0].boot, Boot::DisabledByCmdline);
        assert!(e[0].unit.is_some());
    }

    #[test]
    fn a_duplicate_that_takes_over_is_commented_too() {
        let s = "/a none swap sw\n\
                 /a none swap noauto\n\
                 /a none swap sw,pri=1\n\
                 /b none swap sw\n\
                 /a none swap sw\n\
                 /b none swap sw\n";
        let e = swap_lines(s.as_bytes(), None, None).unwrap();
        let boots: Vec<_> = e.iter().map(|e| (e.boot, e.if_first)).collect();
        assert_eq!(
            boots,
            vec![
                (Boot::Activates, None),
                (Boot::Duplicate, Some(Boot::Noauto)),
                (Boot::Duplicate, Some(Boot::Activates)),
                (Boot::Activates, None),
                (Boot::Duplicate, Some(Boot::Activates)),
                (Boot::Duplicate, Some(Boot::Activates)),
            ]
        );
        // Line 2 (noauto) then holds /a's name: line 3 stays refused.
        assert_eq!(lines_to_stop(&e, &[1]), vec![1]);
        // Line 2 is not ours to comment out (it never turns swap on), so a
        // line of /b alone: its duplicate 6 takes over, and is added.
        assert_eq!(lines_to_stop(&e, &[4]), vec![4, 6]);
        // Without the noauto line, 3 and then 5 take over in turn.
        let s2: String = s
            .lines()
            .filter(|l| !l.contains("noauto"))
            .map(|l| format!("{l}\n"))
            .collect();
        let e2 = swap_lines(s2.as_bytes(), None, None).unwrap();
        assert_eq!(lines_to_stop(&e2, &[1]), vec![1, 2, 4]);
        // And commenting those leaves no /a line that activates.
        let edit = comment_out(s2.as_bytes(), &lines_to_stop(&e2, &[1]), "M");
        let after = swap_lines(&edit.new_content, None, None).unwrap();
        assert!(
            after
                .iter()
                .all(|x| x.boot != Boot::Activates || x.device != "/a"),
            "{after:?}"
        );
    }

    #[test]
    fn container_ignores_every_swap_line_after_the_cmdline() {
        // fstab-generator's add_swap(): systemd.swap= first, then the
        // container check, both before a unit is named or a duplicate seen.
        let s = b"/a none swap sw\n/a none swap sw\n/b none swap noauto\n/c/../d none swap sw\n";
        let e = swap_lines(s, None, Some("lxc")).unwrap();
        assert_eq!(e.len(), 4);
        assert!(e.iter().all(|e| e.boot == Boot::InContainer), "{e:?}");
        assert!(e.iter().all(|e| !e.boot.unit_written()));
        let e = swap_lines(s, Some("fstab=0"), Some("lxc")).unwrap();
        assert!(e.iter().all(|e| e.boot == Boot::DisabledByCmdline));
    }

    #[test]
    fn latin1_fstab_is_read_and_edited_byte_exact() {
        let s: &[u8] =
            b"# r\xe9sum\xe9 du disque\r\n/sw\xe9p none swap sw 0 0\r\nUUID=a / ext4 defaults 0 1";
        let e = swap_lines(s, None, None).unwrap();
        assert_eq!(e.len(), 1);
        assert_eq!(e[0].line, 2);
        assert_eq!(e[0].unit.as_deref(), Some("sw\\xe9p.swap"));
        assert_eq!(e[0].text, "/sw\u{fffd}p none swap sw 0 0");
        let edit = comment_out(s, &[2], "M");
        assert_eq!(
            edit.new_content,
            b"# r\xe9sum\xe9 du disque\r\n# M\r\n#/sw\xe9p none swap sw 0 0\r\nUUID=a / ext4 defaults 0 1"
        );
        assert!(swap_lines(&edit.new_content, None, None)
            .unwrap()
            .is_empty());
    }

    #[test]
    fn nul_byte_is_not_guessed() {
        assert_eq!(
            swap_lines(b"a / ext4 defaults\n/s\0 none swap sw\n", None, None),
            Err(ScanError::Nul(2))
        );
    }

    #[test]
    fn comment_out_keeps_every_other_byte() {
        let edit = comment_out(DEBIAN.as_bytes(), &[5], "taint-guard MARK");
        assert_eq!(edit.changed_lines, vec![5]);
        let new = String::from_utf8(edit.new_content.clone()).unwrap();
        let old: Vec<&str> = DEBIAN.split_inclusive('\n').collect();
        let new: Vec<&str> = new.split_inclusive('\n').collect();
        assert_eq!(new.len(), old.len() + 1);
        assert_eq!(&new[..4], &old[..4]);
        assert_eq!(new[4], "# taint-guard MARK\n");
        assert_eq!(new[5], format!("#{}", old[4]));
        assert_eq!(&new[6..], &old[5..]);
        assert!(boot(std::str::from_utf8(&edit.new_content).unwrap()).is_empty());
    }

    #[test]
    fn comment_out_crlf_and_no_final_newline() {
        let s = b"a / ext4 defaults 0 1\r\n/swapfile none swap sw 0 0";
        let edit = comment_out(s, &[2], "M");
        assert_eq!(
            edit.new_content,
            b"a / ext4 defaults 0 1\r\n# M\n#/swapfile none swap sw 0 0"
        );
        let s = b"/swapfile none swap sw 0 0\r\nb / ext4 defaults 0 1\r\n";
        let edit = comment_out(s, &[1], "M");
        assert_eq!(
            edit.new_content,
            b"# M\r\n#/swapfile none swap sw 0 0\r\nb / ext4 defaults 0 1\r\n"
        );
    }

    #[test]
    fn comment_out_ignores_lines_that_are_not_swap() {
        let edit = comment_out(DEBIAN.as_bytes(), &[4, 6, 99], "M");
        assert!(edit.changed_lines.is_empty());
        assert_eq!(edit.new_content, DEBIAN.as_bytes());
    }

    #[test]
    fn diff_is_unified() {
        let edit = comment_out(DEBIAN.as_bytes(), &[5], "M");
        let new = String::from_utf8(edit.new_content).unwrap();
        let d = unified_diff("/etc/fstab", DEBIAN, &new);
        assert!(
            d.starts_with("--- /etc/fstab\n+++ /etc/fstab (after --fix)\n@@"),
            "{d}"
        );
        assert!(d.contains("\n-UUID=9b7a1a1e"));
        assert!(d.contains("\n+#UUID=9b7a1a1e"));
        assert!(d.contains("\n+# M\n"));
    }

    #[test]
    fn unescape_like_glibc() {
        assert_eq!(unescape("/a\\040b\\011c"), "/a b\tc");
        assert_eq!(unescape("/a\\04"), "/a\\04");
        assert_eq!(unescape("\\134x"), "\\x");
        assert_eq!(unescape("\\101"), "\\101");
    }

    #[test]
    fn locate_follows_content() {
        let old = b"/a none swap sw\n/b none swap sw\n";
        let targets = vec![(2, b"/b none swap sw".to_vec())];
        // A writer put a line on top and commented out /a.
        let new = b"# added\n#/a none swap sw\n/b none swap sw\n";
        assert_eq!(locate(new, &targets), (vec![3], vec![]));
        assert_eq!(locate(old, &targets), (vec![2], vec![]));
        // The writer removed /b.
        assert_eq!(locate(b"/a none swap sw\n", &targets), (vec![], vec![2]));
    }

    fn read(p: &Path) -> Vec<u8> {
        std::fs::read(p).unwrap()
    }

    #[test]
    fn comment_out_swap_lines_writes_backup_and_keeps_bytes() {
        let _s = fail::FailScenario::setup();
        let t = tempfile::tempdir().unwrap();
        let p = t.path().join("fstab");
        let old: &[u8] = b"# caf\xe9\n/swapfile none swap sw 0 0\n/other none swap noauto\n";
        std::fs::write(&p, old).unwrap();
        let o = comment_out_swap_lines(&p, &[2, 7], "M", "S").unwrap();
        assert_eq!(o.commented, vec![2]);
        assert_eq!(o.missing, vec![7]);
        assert_eq!(o.attempts, 1);
        assert_eq!(read(o.backup.as_ref().unwrap()), old);
        assert_eq!(
            read(&p),
            b"# caf\xe9\n# M\n#/swapfile none swap sw 0 0\n/other none swap noauto\n"
        );
        // Again: nothing left to do, nothing written.
        let o = comment_out_swap_lines(&p, &[2], "M", "S").unwrap();
        assert_eq!((o.commented.len(), o.backup, o.missing), (0, None, vec![2]));
    }

    /// A writer (cloud-init, Ansible) changes the file between our read and
    /// our rename: its change survives and our edit lands on top of it.
    #[test]
    #[cfg_attr(
        not(feature = "failpoints"),
        ignore = "needs --features failpoints (the README's test command has it)"
    )]
    fn concurrent_writer_is_never_lost() {
        use std::io::Write;
        use std::sync::atomic::{AtomicU32, Ordering};
        use std::sync::Arc;
        let scenario = fail::FailScenario::setup();
        let t = tempfile::tempdir().unwrap();
        let p = t.path().join("fstab");
        std::fs::write(
            &p,
            "UUID=a / ext4 defaults 0 1\n/swapfile none swap sw 0 0\n",
        )
        .unwrap();
        let calls = Arc::new(AtomicU32::new(0));
        let (c, path) = (calls.clone(), p.clone());
        fail::cfg_callback("files::before-rename", move || {
            if c.fetch_add(1, Ordering::SeqCst) == 0 {
                // In place, as `>>` does; and one line on top, moving ours.
                let mut f = std::fs::OpenOptions::new()
                    .append(true)
                    .open(&path)
                    .unwrap();
                f.write_all(b"/data /data ext4 defaults 0 2\n").unwrap();
                let now = std::fs::read(&path).unwrap();
                let mut top = b"# cloud-init\n".to_vec();
                top.extend(now);
                std::fs::write(&path, top).unwrap();
            }
        })
        .unwrap();
        let o = comment_out_swap_lines(&p, &[2], "M", "S").unwrap();
        assert_eq!(calls.load(Ordering::SeqCst), 2);
        assert_eq!(o.attempts, 2);
        assert_eq!(o.commented, vec![3]);
        assert_eq!(
            std::fs::read_to_string(&p).unwrap(),
            "# cloud-init\nUUID=a / ext4 defaults 0 1\n# M\n#/swapfile none swap sw 0 0\n/data /data ext4 defaults 0 2\n"
        );
        // The backup is of the file we replaced, the writer's version.
        assert_eq!(
            std::fs::read_to_string(o.backup.unwrap()).unwrap(),
            "# cloud-init\nUUID=a / ext4 defaults 0 1\n/swapfile none swap sw 0 0\n/data /data ext4 defaults 0 2\n"
        );
        let baks = std::fs::read_dir(t.path()).unwrap().count();
        assert_eq!(baks, 2, "fstab and one backup, no stale one, no temp file");

        // A writer that changes it every time: we give up, it keeps its file.
        let path = p.clone();
        fail::cfg_callback("files::before-rename", move || {
            let mut f = std::fs::OpenOptions::new()
                .append(true)
                .open(&path)
                .unwrap();
            f.write_all(b"# again\n").unwrap();
        })
        .unwrap();
        std::fs::write(&p, "/swapfile none swap sw 0 0\n").unwrap();
        let err = comment_out_swap_lines(&p, &[1], "M", "T").unwrap_err();
        assert!(format!("{err:#}").contains("changed while"), "{err:#}");
        assert_eq!(
            std::fs::read_to_string(&p).unwrap(),
            "/swapfile none swap sw 0 0\n# again\n# again\n# again\n"
        );
        fail::remove("files::before-rename");
        scenario.teardown();
    }
}

/// Properties of the edit `--fix` makes, on generated fstab files: swap,
/// mount, comment, blank and junk lines, duplicates, `noauto`, makefs, tabs,
/// CRLF, no final newline, Latin-1 bytes and lines past glibc's buffer.
#[cfg(test)]
mod props {
    use super::*;
    use proptest::prelude::*;

    fn field(pool: &'static [&'static str]) -> impl Strategy<Value = Vec<u8>> {
        proptest::sample::select(pool).prop_map(|s| s.as_bytes().to_vec())
    }

    fn sep() -> impl Strategy<Value = Vec<u8>> {
        field(&[" ", "\t", "  ", " \t "])
    }

    fn line() -> impl Strategy<Value = Vec<u8>> {
        let entry = (
            field(&["", " ", "\t"]),
            field(&[
                "/a",
                "/b",
                "/a/",
                "//a",
                "UUID=1234",
                "LABEL=s\\040w",
                "/dev/sda2",
                "/dev/../x",
                "/c\\134d",
                "/caf\u{e9}",
            ]),
            sep(),
            field(&["none", "/mnt", "swap"]),
            sep(),
            field(&["swap", "swap", "swap", "ext4", "swapx"]),
            sep(),
            field(&[
                "sw",
                "defaults",
                "noauto",
                "noauto,auto",
                "auto,noauto",
                "sw,pri=5",
                "x-systemd.makefs",
                "nofail,noauto",
            ]),
            field(&["", " 0 0", "\t0\t0", " ", "\t"]),
        )
            .prop_map(|(lead, spec, s1, dir, s2, ty, s3, opts, tail)| {
                [lead, spec, s1, dir, s2, ty, s3, opts, tail].concat()
            });
        prop_oneof![
            6 => entry,
            1 => field(&["", "#", "# comment", "  # indented", "\t"]),
            1 => proptest::collection::vec(1u8..=255, 0..40)
                .prop_map(|v| v.into_iter().filter(|&b| b != b'\n').collect()),
            1 => (0usize..3).prop_map(|k| {
                let mut l = b"/long none swap sw ".to_vec();
                l.resize(GETMNTENT_LINE_MAX - 1 + k, b' ');
                l.extend(b"x");
                l
            }),
        ]
    }

    fn fstab() -> impl Strategy<Value = Vec<u8>> {
        (
            proptest::collection::vec((line(), any::<bool>()), 0..14),
            any::<bool>(),
        )
            .prop_map(|(lines, last_newline)| {
                let n = lines.len();
                let mut out = Vec::new();
                for (i, (mut l, crlf)) in lines.into_iter().enumerate() {
                    if crlf {
                        l.push(b'\r');
                    }
                    out.extend(l);
                    if i + 1 < n || last_newline {
                        out.push(b'\n');
                    }
                }
                out
            })
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

        /// Commenting out what `--fix` would: only those lines change, each
        /// behind one marker line; none of their units comes up at boot any
        /// more; every other unit is exactly as it was.
        #[test]
        fn fix_edit_changes_only_its_lines_and_stops_only_its_units(c in fstab()) {
            let before = swap_lines(&c, None, None).unwrap();
            let live: Vec<usize> = before
                .iter()
                .filter(|e| e.boot == Boot::Activates)
                .map(|e| e.line)
                .collect();
            let units: Vec<&str> = before
                .iter()
                .filter(|e| live.contains(&e.line))
                .filter_map(|e| e.unit.as_deref())
                .collect();
            let stop = lines_to_stop(&before, &live);
            let edit = comment_out(&c, &stop, "MARK");
            prop_assert_eq!(&edit.changed_lines, &stop);

            // Undo: drop each marker line, strip the '#' it guards.
            let mut undone = Vec::new();
            let mut guarded = false;
            for (_, l, nl) in lines(&edit.new_content) {
                if l == b"# MARK" || l == b"# MARK\r" {
                    guarded = true;
                    continue;
                }
                let l = if guarded { l.strip_prefix(b"#").unwrap() } else { l };
                guarded = false;
                undone.extend_from_slice(l);
                if nl {
                    undone.push(b'\n');
                }
            }
            prop_assert_eq!(&undone, &c);

            let after = swap_lines(&edit.new_content, None, None).unwrap();
            let at_boot = |v: &[SwapEntry]| -> std::collections::BTreeSet<String> {
                v.iter()
                    .filter(|e| e.boot == Boot::Activates)
                    .filter_map(|e| e.unit.clone())
                    .collect()
            };
            let mut want = at_boot(&before);
            want.retain(|u| !units.contains(&u.as_str()));
            prop_assert_eq!(at_boot(&after), want);
        }
    }
}
