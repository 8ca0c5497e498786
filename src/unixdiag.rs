//! Which listening unix socket is bound to a given socket file: the
//! kernel's sock_diag (`NETLINK_SOCK_DIAG`, `UDIAG_SHOW_VFS`) gives each
//! socket's inode with the device and inode of the file it is bound to.
//! The name in /proc/net/unix is not enough: a listener bound to a
//! temporary name and renamed into place (Kubernetes' CreateListener does
//! that) keeps its first name there. Sockets of this process's network
//! namespace only.

use std::io;
use std::mem::size_of;

const NETLINK_SOCK_DIAG: i32 = 4;
const SOCK_DIAG_BY_FAMILY: u16 = 20;
const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;
const TCP_LISTEN: u32 = 10;
const UDIAG_SHOW_VFS: u32 = 0x2;
const UNIX_DIAG_VFS: u16 = 1;

#[repr(C)]
struct Request {
    // struct nlmsghdr
    len: u32,
    ty: u16,
    flags: u16,
    seq: u32,
    pid: u32,
    // struct unix_diag_req
    family: u8,
    protocol: u8,
    pad: u16,
    states: u32,
    ino: u32,
    show: u32,
    cookie: [u32; 2],
}

/// The kernel's own form of a device number (`MKDEV`: the superblock's
/// `s_dev`, as sock_diag reports it), from stat's.
fn encode_dev(dev: u64) -> u32 {
    let (major, minor) = (libc::major(dev), libc::minor(dev));
    (major << 20) | minor
}

/// Socket inodes of the listening unix sockets bound to the file with
/// this `st_dev` and `st_ino`.
pub fn listeners_bound_to(dev: u64, ino: u64) -> io::Result<Vec<u64>> {
    // SAFETY: plain system calls on a file descriptor owned here; the
    // buffers are sized and the lengths checked before every read.
    unsafe {
        let fd = libc::socket(
            libc::AF_NETLINK,
            libc::SOCK_DGRAM | libc::SOCK_CLOEXEC,
            NETLINK_SOCK_DIAG,
        );
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        let close = scopeguard(fd);
        let req = Request {
            len: size_of::<Request>() as u32,
            ty: SOCK_DIAG_BY_FAMILY,
            flags: (libc::NLM_F_REQUEST | libc::NLM_F_DUMP) as u16,
            seq: 1,
            pid: 0,
            family: libc::AF_UNIX as u8,
            protocol: 0,
            pad: 0,
            states: 1 << TCP_LISTEN,
            ino: 0,
            show: UDIAG_SHOW_VFS,
            cookie: [!0, !0],
        };
        let sent = libc::send(
            fd,
            &req as *const Request as *const libc::c_void,
            size_of::<Request>(),
            0,
        );
        if sent < 0 {
            return Err(io::Error::last_os_error());
        }
        let want_dev = encode_dev(dev);
        let mut out = Vec::new();
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = libc::recv(fd, buf.as_mut_ptr() as *mut libc::c_void, buf.len(), 0);
            if n < 0 {
                return Err(io::Error::last_os_error());
            }
            let n = n as usize;
            let mut off = 0;
            while off + 16 <= n {
                let u32_at = |o: usize| u32::from_ne_bytes(buf[o..o + 4].try_into().unwrap());
                let u16_at = |o: usize| u16::from_ne_bytes(buf[o..o + 2].try_into().unwrap());
                let len = u32_at(off) as usize;
                let ty = u16_at(off + 4);
                if len < 16 || off + len > n {
                    break;
                }
                match ty {
                    NLMSG_DONE => {
                        drop(close);
                        return Ok(out);
                    }
                    NLMSG_ERROR => {
                        let errno = i32::from_ne_bytes(buf[off + 16..off + 20].try_into().unwrap());
                        return Err(io::Error::from_raw_os_error(-errno));
                    }
                    _ => {}
                }
                // struct unix_diag_msg: family, type, state, pad, ino,
                // cookie[2]; then attributes.
                let msg = off + 16;
                if msg + 16 <= off + len {
                    let sock_ino = u32_at(msg + 4) as u64;
                    let mut a = msg + 16;
                    while a + 4 <= off + len {
                        let alen = u16_at(a) as usize;
                        let aty = u16_at(a + 2);
                        if alen < 4 || a + alen > off + len {
                            break;
                        }
                        if aty == UNIX_DIAG_VFS && alen >= 12 {
                            let vfs_ino = u32_at(a + 4) as u64;
                            let vfs_dev = u32_at(a + 8);
                            if vfs_ino == ino && vfs_dev == want_dev {
                                out.push(sock_ino);
                            }
                        }
                        a += (alen + 3) & !3;
                    }
                }
                off += (len + 3) & !3;
            }
            if n == 0 {
                return Ok(out);
            }
        }
    }
}

struct Close(i32);

impl Drop for Close {
    fn drop(&mut self) {
        // SAFETY: the descriptor is ours and closed once.
        unsafe {
            libc::close(self.0);
        }
    }
}

fn scopeguard(fd: i32) -> Close {
    Close(fd)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    #[test]
    fn a_listener_renamed_into_place_is_found_by_its_file() {
        let dir = tempfile::tempdir().unwrap();
        let tmp = dir.path().join("12345");
        let fin = dir.path().join("runtime.sock");
        let l = std::os::unix::net::UnixListener::bind(&tmp).unwrap();
        std::fs::rename(&tmp, &fin).unwrap();
        let m = std::fs::metadata(&fin).unwrap();
        let found = listeners_bound_to(m.dev(), m.ino()).unwrap();
        assert_eq!(found.len(), 1, "{found:?}");
        drop(l);
        assert!(listeners_bound_to(m.dev(), m.ino()).unwrap().is_empty());
    }
}
