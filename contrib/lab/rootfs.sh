#!/bin/bash
# Build (once) and cache the Debian trixie root filesystem that every simulated lab host runs
# on, plus a tiny busybox image tarball for `podman import`.
#
# Usage: rootfs.sh [--force] [--print]
#   --force  rebuild even when a complete cached build exists
#   --print  only print the path of the current build (build it first if needed)
#
# Environment:
#   LAB_CACHE   cache directory (default /var/cache/geneve-ovs-lab)
#   LAB_MIRROR  Debian mirror (default: the first Debian mirror in this machine's apt sources)
#   LAB_SUITE   Debian suite (default trixie; podman >= 4.5 and netavark >= 1.6 are needed)
#
# Layout of the cache:
#   $LAB_CACHE/rootfs-<hash>/root/         the root filesystem (read-only lower dir of the hosts)
#   $LAB_CACHE/rootfs-<hash>/busybox.tar   image tarball: /bin/busybox plus applet links
#   $LAB_CACHE/rootfs-<hash>/STAMP         what was built (suite, mirror, packages, recipe)
#   $LAB_CACHE/rootfs-<hash>/users/        one file per lab currently using this build
#   $LAB_CACHE/current -> rootfs-<hash>    switched atomically (rename of a symlink)
# <hash> covers the suite, the package list and the recipe version, so a change of any of them
# builds a new tree; an unchanged one is reused. A build runs in a temporary directory and is
# renamed into place only when complete, so an interrupted build never leaves a broken cache.
set -euo pipefail

# Bump when the way the tree is built changes (not only its package list).
RECIPE_VERSION=3

PACKAGES=(
	podman netavark aardvark-dns conmon crun catatonit
	golang-github-containers-common
	openvswitch-switch openvswitch-common
	busybox-static iproute2 iputils-ping procps kmod
	nftables iptables jq iperf3 ethtool tcpdump
	util-linux mount ca-certificates
	ovn-central ovn-host
	openvswitch-ipsec strongswan-starter strongswan-charon
)

LAB_CACHE=${LAB_CACHE:-/var/cache/geneve-ovs-lab}
LAB_SUITE=${LAB_SUITE:-trixie}

log() { printf '[rootfs %s] %s\n' "$(date +%T)" "$*" >&2; }
die() {
	log "error: $*"
	exit 1
}

# The Debian mirror this machine already uses (deb.debian.org here): first `URIs:` (deb822) or
# `deb URI` (one-line format) entry that ends in /debian, skipping the security archive.
detect_mirror() {
	local f uri
	for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources; do
		[[ -r $f ]] || continue
		while read -r uri; do
			case $uri in
			*/debian | */debian/) printf '%s\n' "${uri%/}" && return 0 ;;
			esac
		done < <(sed -nE -e 's/^[[:space:]]*URIs:[[:space:]]*//p' \
			-e 's/^[[:space:]]*deb[[:space:]]+(\[[^]]*\][[:space:]]+)?([^[:space:]]+).*/\2/p' "$f" |
			tr ' ' '\n')
	done
	return 1
}

FORCE=0
PRINT_ONLY=0
for arg in "$@"; do
	case $arg in
	--force) FORCE=1 ;;
	--print) PRINT_ONLY=1 ;;
	-h | --help)
		sed -n '2,/^set -euo/p' "$0" | sed -e '$d' -e 's/^# \{0,1\}//'
		exit 0
		;;
	*) die "unknown argument: $arg" ;;
	esac
done

[[ $(id -u) -eq 0 ]] || die "must run as root"
command -v mmdebstrap >/dev/null || die "mmdebstrap is missing (apt-get install mmdebstrap)"

LAB_MIRROR=${LAB_MIRROR:-$(detect_mirror || true)}
[[ -n $LAB_MIRROR ]] || die "no Debian mirror found in apt sources; set LAB_MIRROR"

# The mirror is recorded in STAMP but not hashed: the same packages from another mirror are the
# same tree.
mapfile -t SORTED < <(printf '%s\n' "${PACKAGES[@]}" | sort -u)
HASH_INPUT=$(printf 'recipe=%s\nsuite=%s\npackages=%s\n' "$RECIPE_VERSION" "$LAB_SUITE" "${SORTED[*]}")
HASH=$(printf '%s' "$HASH_INPUT" | sha256sum | cut -c1-16)
FINAL="$LAB_CACHE/rootfs-$HASH"

mkdir -p "$LAB_CACHE"
# One builder at a time per cache; a second caller waits and then finds the build done.
exec {LOCK_FD}>"$LAB_CACHE/.lock"
if ! flock -n "$LOCK_FD"; then
	log "another build holds $LAB_CACHE/.lock; waiting"
	flock "$LOCK_FD"
fi

switch_current() {
	ln -sfn "rootfs-$HASH" "$LAB_CACHE/.current.tmp"
	mv -T "$LAB_CACHE/.current.tmp" "$LAB_CACHE/current"
}

# LAB_DIRs of the labs that still use build $1. A lab registers itself in users/ with its
# LAB_DIR; a registration whose LAB_DIR has no state any more is stale and is dropped.
live_users() {
	local u
	for u in "$1"/users/*; do
		[[ -f $u ]] || continue
		if [[ -f "$(cat "$u")/state/rootfs" ]]; then cat "$u"; else rm -f "$u"; fi
	done
}

# Remove builds that are neither current nor used by a lab that is still up.
prune_old() {
	local d
	for d in "$LAB_CACHE"/rootfs-*; do
		[[ -d $d && $d != "$FINAL" ]] || continue
		if [[ -z $(live_users "$d") ]]; then
			log "removing old build $d"
			rm -rf --one-file-system "$d"
		else
			log "keeping old build $d (a lab still uses it)"
		fi
	done
	# Leftovers of interrupted builds.
	rm -rf --one-file-system "$LAB_CACHE"/.build.*
}

if [[ $FORCE -eq 0 && -f $FINAL/.complete ]]; then
	switch_current
	[[ $PRINT_ONLY -eq 1 ]] || log "cached build is up to date: $FINAL"
	printf '%s\n' "$FINAL"
	exit 0
fi

# A running lab has this tree as the lower layer of its hosts' overlays: never replace it.
if [[ -d $FINAL ]] && users=$(live_users "$FINAL") && [[ -n $users ]]; then
	die "$FINAL is in use by the lab(s) in: $users; run 'lab.sh down' there first"
fi
prune_old

BUILD=$(mktemp -d "$LAB_CACHE/.build.XXXXXX")
chmod 0755 "$BUILD"
cleanup() {
	local rc=$?
	if [[ -n ${HEARTBEAT_PID:-} ]]; then kill "$HEARTBEAT_PID" 2>/dev/null || true; fi
	# Interrupted while mmdebstrap runs: stop it and let it undo its own mounts first.
	if [[ -n ${MMDEBSTRAP_PID:-} ]] && kill -0 "$MMDEBSTRAP_PID" 2>/dev/null; then
		log "stopping mmdebstrap"
		kill -TERM "$MMDEBSTRAP_PID" 2>/dev/null || true
		wait "$MMDEBSTRAP_PID" 2>/dev/null || true
	fi
	if [[ -n ${BUILD:-} && -d $BUILD ]]; then
		# mmdebstrap unmounts what it mounted itself; make sure before deleting anything.
		if grep -q " $BUILD/" /proc/mounts; then
			grep " $BUILD/" /proc/mounts | cut -d' ' -f2 | sort -r | xargs -r -n1 umount -l || true
		fi
		rm -rf --one-file-system "$BUILD"
	fi
	[[ $rc -eq 0 ]] || log "build failed or was interrupted; cache left unchanged"
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

START=$(date +%s)
log "building $LAB_SUITE root filesystem from $LAB_MIRROR into $BUILD (takes a minute or two)"
log "packages: ${SORTED[*]}"
# Progress: mmdebstrap prints one line per stage; a heartbeat shows that long stages still move.
# It must not keep the lock open (its sleep would hold it after the build ends).
(
	exec {LOCK_FD}>&-
	while sleep 15; do log "... still building ($(($(date +%s) - START)) s)"; done
) &
HEARTBEAT_PID=$!

# --variant=apt: Essential packages + apt + what we list (no Recommends). mmdebstrap installs
# its own policy-rc.d while building, so the OVS postinst does not start daemons on this machine.
INCLUDE=$(
	IFS=,
	printf '%s' "${SORTED[*]}"
)
# In the background and waited for, so that INT/TERM reach our trap at once (bash runs traps
# only after a foreground child exits).
mmdebstrap --variant=apt --include="$INCLUDE" \
	--aptopt='Acquire::Retries "3"' \
	--dpkgopt='path-exclude=/usr/share/doc/*' \
	--dpkgopt='path-include=/usr/share/doc/*/copyright' \
	--dpkgopt='path-exclude=/usr/share/man/*' \
	--dpkgopt='path-exclude=/usr/share/locale/*' \
	"$LAB_SUITE" "$BUILD/root" "$LAB_MIRROR" </dev/null &
MMDEBSTRAP_PID=$!
wait "$MMDEBSTRAP_PID"
MMDEBSTRAP_PID=

kill "$HEARTBEAT_PID" 2>/dev/null || true
HEARTBEAT_PID=

log "root filesystem done ($(($(date +%s) - START)) s, $(du -sh "$BUILD/root" | cut -f1)); building busybox image"

# Busybox image: the static binary and a link per applet under /bin, a minimal /etc.
BB_BIN=$BUILD/root/usr/bin/busybox
[[ -x $BB_BIN ]] || BB_BIN=$BUILD/root/bin/busybox
[[ -x $BB_BIN ]] || die "busybox-static did not install a busybox binary"
IMG=$BUILD/image
mkdir -p "$IMG/bin" "$IMG/etc" "$IMG/tmp" "$IMG/root" "$IMG/proc" "$IMG/sys" "$IMG/dev" "$IMG/var/www"
chmod 1777 "$IMG/tmp"
cp "$BB_BIN" "$IMG/bin/busybox"
for applet in $("$IMG/bin/busybox" --list); do
	[[ $applet == busybox ]] || ln -s busybox "$IMG/bin/$applet"
done
for needed in sh ip ping wget httpd nc cat sleep; do
	[[ -e $IMG/bin/$needed ]] || die "busybox has no applet $needed"
done
printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n' >"$IMG/etc/passwd"
printf 'root:x:0:\nnogroup:x:65534:\n' >"$IMG/etc/group"
printf 'lab busybox image\n' >"$IMG/var/www/index.html"
# Debian's /etc/motd, as a Debian-based image has it: what the demo serves across hosts.
cp "$BUILD/root/etc/motd" "$IMG/etc/motd"
tar --numeric-owner --owner=0 --group=0 --sort=name --mtime=@0 -C "$IMG" -cf "$BUILD/busybox.tar" .
rm -rf "$IMG"

{
	printf '%s\n' "$HASH_INPUT"
	printf 'mirror=%s\nbuilt=%s\n' "$LAB_MIRROR" "$(date -u +%FT%TZ)"
	# shellcheck disable=SC2016 # ${Version} is a dpkg-query format field, not a shell variable
	dpkg-query --admindir="$BUILD/root/var/lib/dpkg" -W -f '${Package}=${Version}\n' \
		podman netavark openvswitch-switch crun conmon
} >"$BUILD/STAMP"
mkdir -p "$BUILD/users"
touch "$BUILD/.complete"

# Replace an earlier (forced) build of the same hash, then publish.
if [[ -d $FINAL ]]; then
	mv -T "$FINAL" "$LAB_CACHE/.build.old.$$"
	rm -rf --one-file-system "$LAB_CACHE/.build.old.$$"
fi
mv -T "$BUILD" "$FINAL"
BUILD=
switch_current
log "done in $(($(date +%s) - START)) s: $FINAL"
sed 's/^/[rootfs]   /' "$FINAL/STAMP" >&2
printf '%s\n' "$FINAL"
