//! /etc/fstab: find the swap lines that activate at boot, and comment them
//! out without touching any other byte.
//!
//! Pure: callers read and write the file (see `files`).

use serde::{Deserialize, Serialize};

/// One live (uncommented, not `noauto`) swap line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SwapEntry {
    /// 1-based line number.
    pub line: usize,
    /// First field as written (`UUID=…`, `/dev/mapper/…`, `/swapfile`).
    pub spec: String,
    /// `spec` resolved to a device path (`UUID=x` → `/dev/disk/by-uuid/x`),
    /// octal escapes (`\040`) decoded.
    pub device: String,
    pub options: String,
    /// The line as written, without its line ending.
    pub text: String,
}

/// Every live swap entry in `content`.
pub fn swap_entries(content: &str) -> Vec<SwapEntry> {
    all_swap_entries(content)
        .into_iter()
        .filter(|e| !e.options.split(',').any(|o| o == "noauto"))
        .collect()
}

/// Every uncommented swap entry, `noauto` ones included (systemd still
/// generates a unit for those, without hooking it to swap.target).
pub fn all_swap_entries(content: &str) -> Vec<SwapEntry> {
    let mut out = Vec::new();
    for (idx, raw) in split_lines(content).enumerate() {
        let text = raw.trim_end_matches(['\n', '\r']);
        let trimmed = text.trim_start();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        let fields: Vec<&str> = trimmed.split_whitespace().collect();
        if fields.len() < 3 || fields[2] != "swap" {
            continue;
        }
        let options = fields.get(3).copied().unwrap_or("defaults");
        out.push(SwapEntry {
            line: idx + 1,
            spec: fields[0].to_string(),
            device: spec_to_device(&unescape(fields[0])),
            options: options.to_string(),
            text: text.to_string(),
        });
    }
    out
}

/// Lines of `content`, each with its own line ending (if any).
fn split_lines(content: &str) -> impl Iterator<Item = &str> {
    content.split_inclusive('\n')
}

/// Decode fstab's octal escapes (`\040` for space, `\011` tab, `\134` backslash).
pub fn unescape(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && i + 3 < b.len()
            && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c))
        {
            let v = (b[i + 1] - b'0') as u32 * 64
                + (b[i + 2] - b'0') as u32 * 8
                + (b[i + 3] - b'0') as u32;
            if let Ok(byte) = u8::try_from(v) {
                out.push(byte);
                i += 4;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// `UUID=x` → `/dev/disk/by-uuid/x`, as systemd-fstab-generator does.
pub fn spec_to_device(spec: &str) -> String {
    for (tag, dir) in [
        ("UUID=", "by-uuid"),
        ("LABEL=", "by-label"),
        ("PARTUUID=", "by-partuuid"),
        ("PARTLABEL=", "by-partlabel"),
    ] {
        if let Some(v) = spec.strip_prefix(tag) {
            let v = v.trim_matches('"');
            return format!("/dev/disk/{dir}/{}", v.replace('/', "\\x2f"));
        }
    }
    spec.to_string()
}

/// The result of commenting out swap lines.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Edit {
    pub new_content: String,
    /// Line numbers (1-based, in the old file) that were commented out.
    pub changed_lines: Vec<usize>,
}

/// Comment out the given lines (1-based) of `content`: before each, a
/// marker comment saying what did it and when; the line itself kept, behind
/// `#`. Line endings (LF, CRLF, none at EOF) are preserved; all other bytes
/// are unchanged. Lines that are not live swap lines are left alone.
pub fn comment_out(content: &str, lines: &[usize], marker: &str) -> Edit {
    let live: Vec<usize> = swap_entries(content)
        .into_iter()
        .map(|e| e.line)
        .filter(|l| lines.contains(l))
        .collect();
    let mut out = String::with_capacity(content.len() + live.len() * (marker.len() + 8));
    for (idx, raw) in split_lines(content).enumerate() {
        if live.contains(&(idx + 1)) {
            let body = raw.trim_end_matches(['\n', '\r']);
            let ending = &raw[body.len()..];
            // A final line without a newline keeps having none.
            let marker_ending = if ending.is_empty() { "\n" } else { ending };
            out.push_str("# ");
            out.push_str(marker);
            out.push_str(marker_ending);
            out.push('#');
            out.push_str(body);
            out.push_str(ending);
        } else {
            out.push_str(raw);
        }
    }
    Edit {
        new_content: out,
        changed_lines: live,
    }
}

/// A unified diff of an fstab edit, for `--dry-run`.
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

    #[test]
    fn finds_uuid_swap_line_with_number() {
        let e = swap_entries(DEBIAN);
        assert_eq!(e.len(), 1);
        assert_eq!(e[0].line, 5);
        assert_eq!(
            e[0].device,
            "/dev/disk/by-uuid/9b7a1a1e-31c8-4e1a-9a0e-1f0e6c2d2a11"
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
        let e = swap_entries(s);
        let devs: Vec<_> = e.iter().map(|e| (e.line, e.device.as_str())).collect();
        assert_eq!(
            devs,
            vec![
                (2, "/dev/mapper/centos-swap"),
                (3, "/dev/disk/by-label/SWAP"),
                (4, "/dev/disk/by-partuuid/abcd-02"),
                (5, "/swap file"),
                (6, "/swapfile"),
            ]
        );
    }

    #[test]
    fn ignores_comments_noauto_and_other_types() {
        let s = "#/swapfile none swap sw 0 0\n   # UUID=x none swap sw 0 0\n/swap2 none swap noauto,sw 0 0\n/swap3 none swap sw,noauto\n/dev/sda2 /swap ext4 defaults 0 0\n\n";
        assert!(swap_entries(s).is_empty());
    }

    #[test]
    fn missing_options_field_counts_as_defaults() {
        let e = swap_entries("/swapfile none swap\n");
        assert_eq!(e.len(), 1);
        assert_eq!(e[0].options, "defaults");
    }

    #[test]
    fn comment_out_keeps_every_other_byte() {
        let edit = comment_out(DEBIAN, &[5], "taint-guard MARK");
        assert_eq!(edit.changed_lines, vec![5]);
        let old: Vec<&str> = DEBIAN.split_inclusive('\n').collect();
        let new: Vec<&str> = edit.new_content.split_inclusive('\n').collect();
        assert_eq!(new.len(), old.len() + 1);
        assert_eq!(&new[..4], &old[..4]);
        assert_eq!(new[4], "# taint-guard MARK\n");
        assert_eq!(new[5], format!("#{}", old[4]));
        assert_eq!(&new[6..], &old[5..]);
        assert!(swap_entries(&edit.new_content).is_empty());
    }

    #[test]
    fn comment_out_crlf_and_no_final_newline() {
        let s = "a / ext4 defaults 0 1\r\n/swapfile none swap sw 0 0";
        let edit = comment_out(s, &[2], "M");
        assert_eq!(
            edit.new_content,
            "a / ext4 defaults 0 1\r\n# M\n#/swapfile none swap sw 0 0"
        );
        let s = "/swapfile none swap sw 0 0\r\nb / ext4 defaults 0 1\r\n";
        let edit = comment_out(s, &[1], "M");
        assert_eq!(
            edit.new_content,
            "# M\r\n#/swapfile none swap sw 0 0\r\nb / ext4 defaults 0 1\r\n"
        );
    }

    #[test]
    fn comment_out_ignores_lines_that_are_not_live_swap() {
        let edit = comment_out(DEBIAN, &[4, 6], "M");
        assert!(edit.changed_lines.is_empty());
        assert_eq!(edit.new_content, DEBIAN);
    }

    #[test]
    fn diff_is_unified() {
        let edit = comment_out(DEBIAN, &[5], "M");
        let d = unified_diff("/etc/fstab", DEBIAN, &edit.new_content);
        assert!(
            d.starts_with("--- /etc/fstab\n+++ /etc/fstab (after --fix)\n@@"),
            "{d}"
        );
        assert!(d.contains("\n-UUID=9b7a1a1e"));
        assert!(d.contains("\n+#UUID=9b7a1a1e"));
        assert!(d.contains("\n+# M\n"));
    }

    #[test]
    fn unescape_octal() {
        assert_eq!(unescape("/a\\040b\\011c"), "/a b\tc");
        assert_eq!(unescape("/a\\04"), "/a\\04");
        assert_eq!(unescape("\\134x"), "\\x");
    }
}
