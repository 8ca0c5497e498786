#!/bin/bash
# The VM base for tests/vm.rs: a debootstrap'd Debian bookworm with its own
# kernel, systemd as PID 1 and qemu-guest-agent, booted by qemu/TCG with
# direct kernel boot (no partition table, root=/dev/vda).
#
#   tests/vm/image.sh OUTDIR
#
# Writes OUTDIR/root (the rootfs, to be copied and turned into an ext4 image
# with `mkfs.ext4 -d` per test), OUTDIR/vmlinux (the kernel decompressed to
# a plain ELF: under TCG this skips ~6 s of XZ) and OUTDIR/initrd.img (only
# virtio_pci, virtio_blk, ext4: 6 MB instead of 36). ~3 min, once: the
# caller caches OUTDIR keyed by this file's hash. The Debian mirror is the
# one this host's apt sources name, read now, written nowhere.
set -euo pipefail
out=${1:?OUTDIR}
mirror=$(awk '/^URIs:/ && $2 ~ /^https?:/ && $2 !~ /security/ {print $2; exit}' /etc/apt/sources.list.d/*.sources 2>/dev/null || true)
[ -n "$mirror" ] || mirror=$(awk '$1=="deb" && $2 ~ /^https?:/ && $2 !~ /security/ {print $2; exit}' /etc/apt/sources.list)
[ -n "$mirror" ] || { echo "no Debian mirror in this host's apt sources" >&2; exit 1; }

rm -rf "$out.partial"
mkdir -p "$out.partial"
cd "$out.partial"
debootstrap --variant=minbase \
	--include=systemd,systemd-sysv,dbus,udev,util-linux,mount,linux-image-amd64,kmod,e2fsprogs,initramfs-tools,qemu-guest-agent \
	bookworm root "$mirror" >debootstrap.log
sed -i 's/^MODULES=.*/MODULES=list/' root/etc/initramfs-tools/initramfs.conf
printf 'virtio_pci\nvirtio_blk\next4\n' >>root/etc/initramfs-tools/modules
chroot root update-initramfs -u -k all >/dev/null
cp root/boot/initrd.img-* initrd.img
python3 -c 'import lzma,glob;d=open(glob.glob("root/boot/vmlinuz-*")[0],"rb").read();open("vmlinux","wb").write(lzma.LZMADecompressor().decompress(d[d.find(b"\xfd7zXZ\0"):]))'
echo vmtest >root/etc/hostname
chroot root passwd -d root >/dev/null
chroot root systemctl disable apt-daily.timer apt-daily-upgrade.timer dpkg-db-backup.timer e2scrub_all.timer fstrim.timer >/dev/null 2>&1 || true
cd ..
rm -rf "$out"
mv "$out.partial" "$out"
