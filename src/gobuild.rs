//! The build information Go (1.18 and later) embeds in a program: the
//! `.go.buildinfo` ELF section, whose module lines name what was built
//! (`path github.com/containerd/containerd/v2/cmd/containerd`). Read from
//! the section headers and that section only, never the whole binary.

use std::io::{Read, Seek, SeekFrom};

const MAGIC: &[u8] = b"\xff Go buildinf:";

/// The module information of the Go program at `path` (the text `go
/// version -m` prints: `path …`, `mod …`, `build …` lines); `None` when it
/// is not a little-endian ELF64 Go program with inline build information.
pub fn modinfo(path: &std::path::Path) -> Option<String> {
    let mut f = std::fs::File::open(path).ok()?;
    let mut eh = [0u8; 64];
    f.read_exact(&mut eh).ok()?;
    // ELF, 64-bit, little-endian.
    if &eh[..4] != b"\x7fELF" || eh[4] != 2 || eh[5] != 1 {
        return None;
    }
    let u16at = |b: &[u8], o: usize| u16::from_le_bytes([b[o], b[o + 1]]) as u64;
    let u32at = |b: &[u8], o: usize| u32::from_le_bytes(b[o..o + 4].try_into().unwrap()) as u64;
    let u64at = |b: &[u8], o: usize| u64::from_le_bytes(b[o..o + 8].try_into().unwrap());
    let (shoff, shentsize, shnum, shstrndx) = (
        u64at(&eh, 0x28),
        u16at(&eh, 0x3a),
        u16at(&eh, 0x3c),
        u16at(&eh, 0x3e),
    );
    if shentsize != 64 || shnum == 0 || shnum > 4096 || shstrndx >= shnum {
        return None;
    }
    let mut sh = vec![0u8; (shnum * 64) as usize];
    f.seek(SeekFrom::Start(shoff)).ok()?;
    f.read_exact(&mut sh).ok()?;
    let section = |i: u64| {
        let o = (i * 64) as usize;
        (u32at(&sh, o), u64at(&sh, o + 0x18), u64at(&sh, o + 0x20))
    };
    let (_, str_off, str_size) = section(shstrndx);
    let mut names = vec![0u8; str_size.min(1 << 20) as usize];
    f.seek(SeekFrom::Start(str_off)).ok()?;
    f.read_exact(&mut names).ok()?;
    let name_at = |o: u64| {
        let s = &names[(o as usize).min(names.len())..];
        &s[..s.iter().position(|&b| b == 0).unwrap_or(s.len())]
    };
    let (off, size) = (0..shnum)
        .map(section)
        .find(|(n, _, _)| name_at(*n) == b".go.buildinfo")
        .map(|(_, o, s)| (o, s))?;
    let mut b = vec![0u8; size.min(1 << 20) as usize];
    f.seek(SeekFrom::Start(off)).ok()?;
    f.read_exact(&mut b).ok()?;
    parse(&b)
}

/// The section's bytes: a 32-byte header (magic, pointer size, flags with
/// bit 2 for inline strings), then the Go version and the module
/// information, each a uvarint length and bytes; the module information
/// is wrapped in 16-byte sentinels.
pub fn parse(b: &[u8]) -> Option<String> {
    if !b.starts_with(MAGIC) || b.len() < 32 || b[15] & 2 == 0 {
        return None;
    }
    let mut rest = &b[32..];
    let mut string = || {
        let (mut n, mut shift, mut i) = (0usize, 0, 0);
        loop {
            let byte = *rest.get(i)?;
            n |= ((byte & 0x7f) as usize) << shift;
            i += 1;
            if byte & 0x80 == 0 {
                break;
            }
            shift += 7;
            if shift > 35 {
                return None;
            }
        }
        let s = rest.get(i..i + n)?;
        rest = &rest[i + n..];
        Some(s)
    };
    let _version = string()?;
    let info = string()?;
    let info = if info.len() >= 32 {
        &info[16..info.len() - 16]
    } else {
        info
    };
    Some(String::from_utf8_lossy(info).into_owned())
}

/// The main package's path (`path` line).
pub fn main_path(modinfo: &str) -> Option<&str> {
    modinfo.lines().find_map(|l| l.strip_prefix("path\t"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A `.go.buildinfo` section as Go 1.18+ writes it.
    pub fn section(info: &str) -> Vec<u8> {
        let mut b = MAGIC.to_vec();
        b.push(8);
        b.push(2);
        b.resize(32, 0);
        let v = b"go1.22.5";
        b.push(v.len() as u8);
        b.extend_from_slice(v);
        let wrapped = [&[0u8; 16][..], info.as_bytes(), &[0u8; 16][..]].concat();
        let mut n = wrapped.len();
        while n >= 0x80 {
            b.push((n as u8) | 0x80);
            n >>= 7;
        }
        b.push(n as u8);
        b.extend_from_slice(&wrapped);
        b
    }

    #[test]
    fn module_lines_from_the_section() {
        let info = "path\tgithub.com/containerd/containerd/v2/cmd/containerd\nmod\tgithub.com/containerd/containerd/v2\tv2.0.2\t\nbuild\t-trimpath=true\n".repeat(2);
        let got = parse(&section(&info)).unwrap();
        assert_eq!(
            main_path(&got),
            Some("github.com/containerd/containerd/v2/cmd/containerd")
        );
        assert_eq!(
            parse(b"not a go binary at all, longer than thirty-two bytes"),
            None
        );
    }

    /// A real Go program named by TG_GO_PROGRAM (the suite's kubelet):
    /// `cargo test --lib gobuild -- --ignored`.
    #[test]
    #[ignore = "needs TG_GO_PROGRAM, a Go program to read"]
    fn a_real_go_program() {
        let p = std::env::var("TG_GO_PROGRAM").expect("TG_GO_PROGRAM");
        let info = modinfo(std::path::Path::new(&p)).expect("build information");
        assert!(main_path(&info).is_some(), "{info}");
        eprintln!("{}", main_path(&info).unwrap());
    }

    #[test]
    fn not_a_go_program() {
        assert_eq!(modinfo(std::path::Path::new("/bin/sh")), None);
        assert_eq!(modinfo(std::path::Path::new("/nonexistent")), None);
    }
}
