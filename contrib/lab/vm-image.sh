#!/bin/bash
# Build (once) and cache the guest of the lab's kernel-datapath mode (`lab.sh up N --kernel`):
# Debian's kernel, a small initramfs that mounts the guest's root disk, and that disk, an ext4
# image of the lab's cached trixie root filesystem (rootfs.sh) plus the kernel's modules.
#
# Usage: vm-image.sh [--force]
#   Prints the path of the build directory on stdout; progress goes to stderr.
#
# Environment:
#   LAB_CACHE           cache directory (default /var/cache/geneve-ovs-lab), shared with rootfs.sh
#   LAB_KERNEL_PACKAGE  Debian kernel package (default: what this machine's linux-image-amd64
#                       depends on, e.g. linux-image-6.1.0-57-amd64)
#
# Layout of the cache:
#   $LAB_CACHE/kernel-<package>_<version>/   the unpacked kernel package
#   $LAB_CACHE/vm-<hash>/vmlinuz             the kernel
#   $LAB_CACHE/vm-<hash>/initrd              uncompressed newc cpio: busybox, the modules needed to
#                                            mount the disk, /init
#   $LAB_CACHE/vm-<hash>/disk.img            ext4: the rootfs + /usr/lib/modules/<version>
#                                            + /lab/rootfs/busybox.tar; opened read-only by QEMU
#   $LAB_CACHE/vm-<hash>/STAMP               what was built
# <hash> covers the rootfs build, the kernel package and version, and this script's text, so any
# change of them builds a new guest; an unchanged one is reused. Builds happen in a temporary
# directory renamed into place when complete.
#
# Inside the guest, /init loads virtio, ext4 and overlay, mounts the disk read-only, puts a
# tmpfs overlay over it as the root, moves the read-only disk to /lab/rootfs/root (the lower
# layer of the lab's hosts, as the rootfs tree is on the machine), mounts the 9p share `lab`
# (the command channel, see vm.sh) at /lab/share and runs /lab/share/vm-agent.sh under catatonit.
set -euo pipefail

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
LAB_CACHE=${LAB_CACHE:-/var/cache/geneve-ovs-lab}
export LAB_CACHE

log() { printf '[vm-image %s] %s\n' "$(date +%T)" "$*" >&2; }
die() {
	log "error: $*"
	exit 1
}

FORCE=0
for arg in "$@"; do
	case $arg in
	--force) FORCE=1 ;;
	-h | --help)
		sed -n '2,/^set -euo/p' "$0" | sed -e '$d' -e 's/^# \{0,1\}//'
		exit 0
		;;
	*) die "unknown argument: $arg" ;;
	esac
done
[[ $(id -u) -eq 0 ]] || die "must run as root"
for tool in apt-get apt-cache dpkg-deb depmod modprobe mkfs.ext4 busybox; do
	command -v "$tool" >/dev/null || die "$tool is missing (see the package list of .ci/run)"
done
[[ $(busybox 2>&1) == *cpio* ]] || die "this busybox has no cpio applet"

ROOTFS=$("$SCRIPT_DIR/rootfs.sh")
[[ -f $ROOTFS/.complete ]] || die "rootfs.sh gave no complete build"

# The kernel package: the one Debian's meta package points at, at its candidate version.
# Package lists missing (a machine after apt-get clean): fetch them once.
POLICY=$(apt-cache policy linux-image-amd64 2>/dev/null || true)
if [[ $POLICY != *"Candidate: "[0-9]* ]]; then
	log "no package lists for linux-image-amd64; apt-get update"
	apt-get update -q >&2 || log "apt-get update reported errors; trying anyway"
fi
PKG=${LAB_KERNEL_PACKAGE:-}
if [[ -z $PKG ]]; then
	PKG=$(apt-cache depends linux-image-amd64 2>/dev/null | sed -n 's/^ *Depends: \(linux-image-[0-9].*\)$/\1/p' | head -1)
	[[ -n $PKG ]] || die "cannot resolve linux-image-amd64 (apt-get update? or set LAB_KERNEL_PACKAGE)"
fi
VER=$(apt-cache policy "$PKG" 2>/dev/null | sed -n 's/^ *Candidate: //p')
[[ -n $VER && $VER != "(none)" ]] || die "no installable candidate for $PKG (apt-get update?)"
KDIR=$LAB_CACHE/kernel-${PKG}_$VER

HASH=$(printf 'rootfs=%s\nkernel=%s=%s\nscript=%s\n' "${ROOTFS##*/}" "$PKG" "$VER" \
	"$(sha256sum <"${BASH_SOURCE[0]}" | cut -c1-64)" | sha256sum | cut -c1-16)
FINAL=$LAB_CACHE/vm-$HASH

mkdir -p "$LAB_CACHE"
exec {LOCK_FD}>"$LAB_CACHE/.vm-lock"
if ! flock -n "$LOCK_FD"; then
	log "another guest build holds $LAB_CACHE/.vm-lock; waiting"
	flock "$LOCK_FD"
fi

if [[ $FORCE -eq 0 && -f $FINAL/.complete ]]; then
	printf '%s\n' "$FINAL"
	exit 0
fi

START=$(date +%s)
BUILD=
cleanup() {
	local rc=$?
	if [[ -n $BUILD && -d $BUILD ]]; then rm -rf --one-file-system "$BUILD"; fi
	[[ $rc -eq 0 ]] || log "guest build failed or was interrupted; cache left unchanged"
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

if [[ ! -f $KDIR/.complete ]]; then
	log "downloading $PKG $VER (Debian's kernel, about 70 MB)"
	rm -rf "$KDIR" "$KDIR.tmp"
	mkdir -p "$KDIR.tmp"
	# apt-get download writes into the current directory, as _apt when it can.
	chmod 0777 "$KDIR.tmp"
	(cd "$KDIR.tmp" && apt-get download -q "$PKG=$VER" >&2) || die "apt-get download $PKG=$VER failed"
	dpkg-deb -x "$KDIR.tmp"/*.deb "$KDIR.tmp/root"
	rm -f "$KDIR.tmp"/*.deb
	touch "$KDIR.tmp/.complete"
	mv -T "$KDIR.tmp" "$KDIR"
fi
KVER=$(ls "$KDIR/root/lib/modules")
[[ -n $KVER && -f $KDIR/root/boot/vmlinuz-$KVER ]] || die "$KDIR holds no kernel"

rm -rf --one-file-system "$LAB_CACHE"/.vm-build.*
BUILD=$(mktemp -d "$LAB_CACHE/.vm-build.XXXXXX")
chmod 0755 "$BUILD"
cp "$KDIR/root/boot/vmlinuz-$KVER" "$BUILD/vmlinuz"

# The modules the guest may load: networking, file systems, crypto and library code, and the
# drivers of QEMU's virtio devices and of virtual links (no sound, graphics, usb, ...).
log "kernel $KVER: selecting modules"
MODSRC=$KDIR/root/lib/modules/$KVER
MODS=$BUILD/modules/$KVER
mkdir -p "$MODS/kernel/drivers"
for d in net fs crypto lib arch block mm virt; do
	[[ -d $MODSRC/kernel/$d ]] && cp -a "$MODSRC/kernel/$d" "$MODS/kernel/"
done
for d in net virtio block char; do
	[[ -d $MODSRC/kernel/drivers/$d ]] && cp -a "$MODSRC/kernel/drivers/$d" "$MODS/kernel/drivers/"
done
cp -a "$MODSRC"/modules.order "$MODSRC"/modules.builtin "$MODSRC"/modules.builtin.modinfo "$MODS/"
mkdir -p "$BUILD/modules-base/lib/modules"
mv "$MODS" "$BUILD/modules-base/lib/modules/$KVER"
depmod -b "$BUILD/modules-base" "$KVER"
MODS=$BUILD/modules-base/lib/modules/$KVER

# initramfs: busybox, the modules to reach the disk and the share (in load order), /init.
log "initramfs"
INITRD=$BUILD/initrd.d
mkdir -p "$INITRD/bin" "$INITRD/mods" "$INITRD/dev" "$INITRD/proc" "$INITRD/sys" "$INITRD/newroot" "$INITRD/ro" "$INITRD/rw"
cp "$(readlink -f "$(command -v busybox)")" "$INITRD/bin/busybox"
: >"$INITRD/mods/order"
for m in crc32c_generic virtio_pci virtio_blk ext4 overlay 9pnet_virtio 9p; do
	while read -r kind path _; do
		[[ $kind == insmod ]] || continue
		base=${path##*/}
		if ! grep -qx "$base" "$INITRD/mods/order"; then
			cp "$path" "$INITRD/mods/$base"
			printf '%s\n' "$base" >>"$INITRD/mods/order"
		fi
	done < <(modprobe -d "$BUILD/modules-base" -S "$KVER" --show-depends "$m")
done
cat >"$INITRD/init" <<'EOF'
#!/bin/busybox sh
# First stage of the lab's guest: reach the root disk, put a tmpfs overlay over it, switch.
/bin/busybox --install -s /bin
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
fail() { echo "lab-init: $*"; echo o >/proc/sysrq-trigger; sleep 10; }
# A CPU-specific variant (crc32c-intel without SSE 4.2) may refuse: the generic one serves.
while read -r m; do insmod "/mods/$m" 2>/dev/null || echo "lab-init: $m not loaded"; done </mods/order
n=0
until [ -b /dev/vda ]; do
	n=$((n + 1)); [ "$n" -le 100 ] || fail "no /dev/vda"; sleep 0.1
done
mount -t ext4 -o ro /dev/vda /ro || fail "mounting /dev/vda"
mount -t tmpfs -o mode=0755 rw /rw || fail "tmpfs"
mkdir -p /rw/upper /rw/work
mount -t overlay overlay -o lowerdir=/ro,upperdir=/rw/upper,workdir=/rw/work /newroot || fail "overlay"
mount --move /ro /newroot/lab/rootfs/root || fail "moving the disk"
mount -t 9p -o trans=virtio,version=9p2000.L,msize=262144,cache=none lab /newroot/lab/share || fail "9p share"
mount --move /dev /newroot/dev
umount /proc /sys
exec switch_root /newroot /usr/bin/catatonit -- /bin/bash /lab/share/vm-agent.sh
EOF
chmod 0755 "$INITRD/init"
(cd "$INITRD" && find . | busybox cpio -o -H newc >"$BUILD/initrd" 2>/dev/null)
rm -rf "$INITRD"

# The disk: the rootfs tree, hard-linked (same file system as the cache), plus the modules and
# the lab's mount points.
log "disk image from $ROOTFS (takes a minute under load)"
TREE=$BUILD/tree
cp -al "$ROOTFS/root" "$TREE"
mkdir -p "$TREE/usr/lib/modules"
cp -a "$MODS" "$TREE/usr/lib/modules/$KVER"
mkdir -p "$TREE/lab/rootfs/root" "$TREE/lab/share"
cp "$ROOTFS/busybox.tar" "$TREE/lab/rootfs/busybox.tar"
touch "$TREE/lab/rootfs/.complete"
printf 'lab-vm\n' >"$TREE/etc/hostname"
SIZE_MB=$(($(du -sm "$TREE" | cut -f1) * 5 / 4 + 200))
mkfs.ext4 -q -F -L lab-root -d "$TREE" -E root_owner=0:0 "$BUILD/disk.img" "${SIZE_MB}M" >&2
rm -rf --one-file-system "$TREE" "$BUILD/modules-base"

{
	printf 'rootfs=%s\nkernel=%s=%s (%s)\nbuilt=%s\n' "$ROOTFS" "$PKG" "$VER" "$KVER" "$(date -u +%FT%TZ)"
} >"$BUILD/STAMP"
touch "$BUILD/.complete"
if [[ -d $FINAL ]]; then rm -rf --one-file-system "$FINAL"; fi
mv -T "$BUILD" "$FINAL"
BUILD=
# Older guests of this cache are not used by anything but a running lab's QEMU, which holds
# its files open: removing them is safe.
for d in "$LAB_CACHE"/vm-*; do
	[[ $d == "$FINAL" ]] || rm -rf --one-file-system "$d"
done
log "guest built in $(($(date +%s) - START)) s: $FINAL ($(du -sh "$FINAL" | cut -f1))"
printf '%s\n' "$FINAL"
