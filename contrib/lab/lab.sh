#!/bin/bash
# A lab of simulated podman hosts on one machine: each host is a network namespace plus a
# persistent mount namespace whose root is an overlay of a cached Debian trixie root filesystem,
# with its own Open vSwitch (userspace datapath) and its own podman. The hosts share an underlay
# switch (a Linux bridge in its own network namespace).
#
# Usage:
#   lab.sh up N [--kernel] [--ovn [--ovn-ssl]] [--plugin PATH]
#                                   start N hosts (and install the plugin binary into each);
#                                   --kernel: inside one QEMU guest running Debian's kernel,
#                                   with OVS's kernel datapath (see vm.sh), instead of the
#                                   userspace datapath on this machine;
#                                   --ovn: OVN's NB and SB as Raft clusters and ovn-northd on
#                                   hosts 1..3, ovn-controller on every host (see ovn.sh);
#                                   --ovn-ssl: the same over SSL, with an ovs-pki CA
#   lab.sh add-host                 one more host (N+1), with the lab's plugin; in an OVN lab
#                                   it runs only ovn-controller (a host joining the cluster)
#   lab.sh down                     tear everything down (idempotent, also after a crash)
#   lab.sh exec H CMD [ARGS...]     run CMD inside host H (1..N)
#   lab.sh podman H [ARGS...]       run podman inside host H
#   lab.sh install-plugin PATH [H...]  (re)install the plugin binary into hosts (default: all)
#   lab.sh reboot H                 what a power cut and boot do to host H (see cmd_reboot)
#   lab.sh crash H / lab.sh boot H  the two halves of reboot: the power cut (every process of
#                                   the host killed), and the boot that brings the host back
#   lab.sh ovn-leader nb|sb         the central host whose NB (SB) member is the Raft leader
#   lab.sh start-vswitchd H         start host H's ovs-vswitchd as `up` does (after a crash)
#   lab.sh switch CMD [ARGS...]     run CMD in the underlay switch's namespace, which stands for
#                                   the world outside the hosts (its bridge is br0)
#   lab.sh env                      print shell assignments describing the running lab
#   lab.sh status                   short human-readable summary
#
# Every verb works the same in both modes: in the kernel mode they are forwarded into the guest.
#
# Environment:
#   LAB_DIR     state directory (default /var/tmp/geneve-ovs-lab); one lab per LAB_DIR
#   LAB_CACHE   root filesystem cache, passed to rootfs.sh (default /var/cache/geneve-ovs-lab)
#   LAB_PREFIX  prefix of the namespace names (default: derived from LAB_DIR, so two labs with
#               different LAB_DIRs never collide)
#   LAB_PASS_ENV  extra variable names (space separated) passed into host commands; RUST_LOG,
#               RUST_BACKTRACE, TERM and GENEVE_OVS_* always are
#   LAB_VM_CPUS, LAB_VM_MEM_MB, LAB_VM_TIMEOUT, LAB_VM_BOOT_TIMEOUT  the guest (see vm.sh)
# Set by vm.sh for lab.sh inside the guest: LAB_DATAPATH=system (OVS with its kernel datapath)
# and LAB_ROOTFS (the rootfs, the guest's read-only disk, instead of building one).
#
# Host i: network namespace /run/netns/$LAB_PREFIX-h<i>, mount namespace file
# $LAB_DIR/ns/h<i>.mnt, underlay address 10.99.0.<i>/24 and fd99::<i>/64 on OVS bridge br-phy.
set -euo pipefail

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
LAB_DIR=${LAB_DIR:-/var/tmp/geneve-ovs-lab}
mkdir -p "$LAB_DIR"
LAB_DIR=$(cd "$LAB_DIR" && pwd -P)
LAB_CACHE=${LAB_CACHE:-/var/cache/geneve-ovs-lab}
export LAB_CACHE
if [[ -z ${LAB_PREFIX:-} ]]; then
	if [[ -f $LAB_DIR/state/prefix ]]; then
		LAB_PREFIX=$(cat "$LAB_DIR/state/prefix")
	else
		LAB_PREFIX=gl$(printf '%s' "$LAB_DIR" | sha256sum | cut -c1-6)
	fi
fi
STATE=$LAB_DIR/state
NSDIR=$LAB_DIR/ns
SWITCH_NS=$LAB_PREFIX-sw
PLUGIN_DEST=/usr/libexec/netavark/geneve-ovs
HOST_PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
MAX_HOSTS=200
# OVS's datapath in the hosts: netdev (userspace, this machine has no openvswitch module) or
# system (the kernel's; in the guest of the kernel mode).
LAB_DATAPATH=${LAB_DATAPATH:-netdev}
[[ $LAB_DATAPATH == netdev || $LAB_DATAPATH == system ]] ||
	{ echo "LAB_DATAPATH must be netdev or system, not '$LAB_DATAPATH'" >&2 && exit 1; }

log() { printf '[lab %s] %s\n' "$(date +%T)" "$*" >&2; }
die() {
	log "error: $*"
	exit 1
}

# shellcheck source=contrib/lab/vm.sh
. "$SCRIPT_DIR/vm.sh"
# shellcheck source=contrib/lab/ovn.sh
. "$SCRIPT_DIR/ovn.sh"

host_ns() { printf '%s-h%s' "$LAB_PREFIX" "$1"; }
host_mnt() { printf '%s/h%s.mnt' "$NSDIR" "$1"; }
host_dir() { printf '%s/hosts/h%s' "$LAB_DIR" "$1"; }

# Accept "2" or "h2"; check that the host exists.
parse_host() {
	local h=${1#h}
	[[ $h =~ ^[0-9]+$ ]] || die "bad host '$1' (expected a number 1..N)"
	[[ -f $STATE/hosts ]] || die "no lab is up in $LAB_DIR"
	((h >= 1 && h <= $(cat "$STATE/hosts"))) || die "no host $h (lab has $(cat "$STATE/hosts"))"
	mountpoint -q "$(host_mnt "$h")" || die "host $h has no mount namespace (lab broken? run down)"
	printf '%s' "$h"
}

# Run a command inside host H: its network namespace and its mount namespace (whose root is the
# host's root fs). The environment is reset to a clean one so nothing from the caller's machine
# (TMPDIR, CONTAINERS_CONF, ...) leaks into the host.
host_run() {
	local h=$1
	shift
	local -a envs=("PATH=$HOST_PATH" "HOME=/root" "LANG=C.UTF-8" "USER=root")
	local name
	for name in TERM RUST_LOG RUST_BACKTRACE ${LAB_PASS_ENV:-} $(compgen -e | grep '^GENEVE_OVS_' || true); do
		if [[ -n ${!name+x} ]]; then envs+=("$name=${!name}"); fi
	done
	nsenter --net="/run/netns/$(host_ns "$h")" --mount="$(host_mnt "$h")" -- \
		/usr/bin/env -i "${envs[@]}" "$@" 9>&-
}

# The lock is fd 9. Everything that may outlive this script (OVS daemons, conmon, containers)
# is started with fd 9 closed, or it would hold the lab's lock forever.
lock_lab() {
	exec 9>"$LAB_DIR/.lock"
	flock 9
}

# ---------------------------------------------------------------------------------------------
# down: works from whatever exists, not only from the recorded state, so that it also cleans a
# lab whose `up` crashed or whose state files are partial.

ns_inode() { stat -L -c %i "$1" 2>/dev/null || true; }

# PIDs of processes whose network namespace or mount namespace is one of the given inodes.
pids_in_ns() {
	local -A want=()
	local i p link ino
	for i in "$@"; do [[ -n $i ]] && want[$i]=1; done
	((${#want[@]})) || return 0
	for p in /proc/[0-9]*; do
		for link in "$p/ns/net" "$p/ns/mnt"; do
			ino=$(readlink "$link" 2>/dev/null) || continue
			ino=${ino#*[}
			ino=${ino%]}
			if [[ -n ${want[$ino]:-} ]]; then
				printf '%s\n' "${p#/proc/}"
				break
			fi
		done
	done
}

# PIDs of processes in the cgroups podman made for the given container IDs (catches container
# processes whose conmon is already gone).
pids_of_containers() {
	(($#)) || return 0
	local pattern
	pattern=$(printf '%s|' "$@")
	pattern=${pattern%|}
	grep -lE "libpod-(conmon-)?(${pattern})" /proc/[0-9]*/cgroup 2>/dev/null |
		sed -e 's#^/proc/##' -e 's#/cgroup$##' || true
}

kill_pids() {
	local -a pids
	mapfile -t pids < <("$@" | grep -vx "$$" | sort -u)
	((${#pids[@]})) || return 0
	log "stopping ${#pids[@]} leftover process(es)"
	kill -TERM "${pids[@]}" 2>/dev/null || true
	local n
	for n in $(seq 30); do
		mapfile -t pids < <("$@" | grep -vx "$$" | sort -u)
		((${#pids[@]})) || return 0
		sleep 0.1
	done
	kill -KILL "${pids[@]}" 2>/dev/null || true
	sleep 0.2
}

# Mount points at or below a directory, in this mount namespace.
mounts_under() {
	awk -v d="$1" '$2 == d || index($2, d "/") == 1 { print $2 }' /proc/mounts
}

teardown_host() {
	local h=$1 ns mnt dir
	ns=$(host_ns "$h")
	mnt=$(host_mnt "$h")
	dir=$(host_dir "$h")
	local -a ctrs=()
	if mountpoint -q "$mnt" && [[ -e /run/netns/$ns ]]; then
		# Containers first, the clean way; then OVS by its own exit command.
		mapfile -t ctrs < <(timeout 30 nsenter --net="/run/netns/$ns" --mount="$mnt" -- \
			/usr/bin/env -i PATH="$HOST_PATH" podman ps -aq --no-trunc 2>/dev/null || true)
		if ((${#ctrs[@]})); then
			timeout 120 nsenter --net="/run/netns/$ns" --mount="$mnt" -- \
				/usr/bin/env -i PATH="$HOST_PATH" podman rm -af -t 0 >/dev/null 2>&1 ||
				log "host $h: podman rm failed; killing its processes"
		fi
		timeout 10 nsenter --net="/run/netns/$ns" --mount="$mnt" -- /usr/bin/env -i PATH="$HOST_PATH" \
			sh -c 'ovs-appctl -t ovs-vswitchd exit; ovs-appctl -t ovsdb-server exit' >/dev/null 2>&1 || true
	fi
	kill_pids pids_in_ns "$(ns_inode "/run/netns/$ns")" "$(ns_inode "$mnt")"
	kill_pids pids_of_containers "${ctrs[@]}"
	if mountpoint -q "$mnt"; then umount "$mnt" || umount -l "$mnt"; fi
	rm -f "$mnt"
	if [[ -e /run/netns/$ns ]]; then ip netns del "$ns" 2>/dev/null || true; fi
	# The host's overlay and its mounts lived only in its mount namespace; a leftover mount of
	# ours in this namespace would be a bug, but never delete through one.
	local -a left
	mapfile -t left < <(mounts_under "$dir")
	if ((${#left[@]})); then
		log "host $h: unexpected mounts under $dir; unmounting"
		printf '%s\n' "${left[@]}" | sort -r | xargs -r -n1 umount -l || true
	fi
	rm -rf --one-file-system "$dir"
}

cmd_down() {
	lock_lab
	do_down
}

do_down() {
	local -A hosts=()
	local h ns f
	# The kernel mode: everything lives in the guest; stopping it leaves nothing here.
	if is_kernel_mode || [[ -d $VM_DIR ]]; then
		vm_down
		rm -rf "$STATE"
		log "lab in $LAB_DIR is down"
		return 0
	fi
	# Hosts known from the state, from namespaces with our prefix and from mount-ns files.
	if [[ -f $STATE/hosts ]]; then
		for h in $(seq "$(cat "$STATE/hosts")"); do hosts[$h]=1; done
	fi
	while read -r ns _; do
		if [[ $ns =~ ^${LAB_PREFIX}-h([0-9]+)$ ]]; then hosts[${BASH_REMATCH[1]}]=1; fi
	done < <(ip netns list 2>/dev/null)
	for f in "$NSDIR"/h*.mnt "$LAB_DIR"/hosts/h*; do
		[[ -e $f ]] || continue
		f=${f##*/h}
		hosts[${f%.mnt}]=1
	done
	for h in $(printf '%s\n' "${!hosts[@]}" | sort -n); do
		log "tearing down host $h"
		teardown_host "$h"
	done
	if [[ -e /run/netns/$SWITCH_NS ]]; then
		kill_pids pids_in_ns "$(ns_inode "/run/netns/$SWITCH_NS")"
		ip netns del "$SWITCH_NS" || true
	fi
	if mountpoint -q "$NSDIR"; then umount "$NSDIR" || umount -l "$NSDIR"; fi
	rm -rf --one-file-system "$NSDIR" "$LAB_DIR/hosts" "$LAB_DIR/pki"
	if [[ -f $STATE/rootfs && -d "$(cat "$STATE/rootfs")/users" ]]; then
		rm -f "$(cat "$STATE/rootfs")/users/$LAB_PREFIX"
	fi
	rm -rf "$STATE"
	log "lab in $LAB_DIR is down"
}

# ---------------------------------------------------------------------------------------------
# up

write_host_config() {
	local h=$1 up
	up=$(host_dir "$h")/upper
	mkdir -p "$up/etc/containers" "$up/etc/openvswitch" "$up/var/log/openvswitch" "$up/root"
	cat >"$up/etc/containers/containers.conf" <<-'EOF'
		# Simulated lab host: no systemd, a private cgroup2 mount without controllers.
		[containers]
		pids_limit = 0

		[engine]
		cgroup_manager = "cgroupfs"
		events_logger = "file"
		runtime = "crun"

		[network]
		network_backend = "netavark"
	EOF
	cat >"$up/etc/containers/storage.conf" <<-'EOF'
		# vfs: the host root is already an overlay, and overlay on overlay does not work.
		[storage]
		driver = "vfs"
		runroot = "/run/containers/storage"
		graphroot = "/var/lib/containers/storage"
	EOF
	printf 'lab-h%s\n' "$h" >"$up/etc/hostname"
}

# Create host H's persistent mount namespace: overlay root, proc, sysfs and a cgroup2 mounted from
# inside the host's network namespace (sysfs then shows that namespace's devices), /dev, a private
# /dev/shm (podman keeps its lock table there), tmpfs /run and /tmp; then pivot_root into it.
make_mount_ns() {
	local h=$1 dir mnt
	dir=$(host_dir "$h")
	mnt=$(host_mnt "$h")
	mkdir -p "$dir/upper" "$dir/work" "$dir/root"
	touch "$mnt"
	# shellcheck disable=SC2016 # expanded by the inner shell
	nsenter --net="/run/netns/$(host_ns "$h")" -- \
		unshare --mount="$mnt" --propagation private -- /bin/sh -euc '
		root=$1
		mount -t overlay overlay -o "lowerdir=$2,upperdir=$3,workdir=$4" "$root"
		mount -t proc proc "$root/proc"
		mount -t sysfs sysfs "$root/sys"
		mount -t cgroup2 cgroup2 "$root/sys/fs/cgroup"
		mount --rbind /dev "$root/dev"
		mount -t tmpfs -o mode=1777,size=256m shm "$root/dev/shm"
		mount -t tmpfs -o mode=0755 run "$root/run"
		mount -t tmpfs -o mode=1777 tmp "$root/tmp"
		mkdir -p "$root/run/lock" "$root/run/netns" "$root/run/openvswitch" "$root/.oldroot"
		cd "$root"
		pivot_root . .oldroot
		umount -l /.oldroot
		rmdir /.oldroot
	' sh "$dir/root" "$ROOTFS/root" "$dir/upper" "$dir/work" 9>&-
}

start_ovs() {
	local h=$1
	# shellcheck disable=SC2016 # expanded by the host's shell
	host_run "$h" /bin/sh -euc '
		db=/etc/openvswitch/conf.db
		[ -f "$db" ] || ovsdb-tool create "$db" /usr/share/openvswitch/vswitch.ovsschema
		ovsdb-server "$db" --remote=punix:/run/openvswitch/db.sock --pidfile --detach -vconsole:off \
			--log-file=/var/log/openvswitch/ovsdb-server.log
		ovs-vsctl --no-wait init
		ovs-vsctl --no-wait set Open_vSwitch . "external_ids:hostname=lab-h$1"
	' sh "$h"
	start_vswitchd "$h"
}

# ovs-vswitchd of host H, as a boot starts it: userspace datapath only unless the lab runs the
# kernel's (LAB_DATAPATH=system, where the openvswitch module is loaded).
start_vswitchd() {
	local h=$1 only_userspace=--disable-system
	[[ $LAB_DATAPATH == netdev ]] || only_userspace=
	# shellcheck disable=SC2086 # an optional flag
	host_run "$h" ovs-vswitchd $only_userspace --pidfile --detach -vconsole:off \
		--log-file=/var/log/openvswitch/ovs-vswitchd.log
}

# Underlay of host H: veth from the switch's bridge to the host's eth0, eth0 in the netdev bridge
# br-phy, the underlay addresses on br-phy (OVS sends tunnel traffic itself from there).
make_underlay() {
	local h=$1 ns
	ns=$(host_ns "$h")
	ip -n "$SWITCH_NS" link add "h$h" type veth peer name eth0 netns "$ns"
	ip -n "$SWITCH_NS" link set "h$h" master br0 up
	# OVS reads the host end through AF_PACKET: the end outside OVS must not leave checksums to
	# offload, or TCP through the tunnels fails while ping works.
	nsenter --net="/run/netns/$SWITCH_NS" -- ethtool -K "h$h" tx off >/dev/null
	# shellcheck disable=SC2016 # expanded by the host's shell
	host_run "$h" /bin/sh -euc '
		i=$1
		ip link set lo up
		sysctl -qw net.ipv6.conf.eth0.disable_ipv6=1
		ip link set eth0 up
		ovs-vsctl add-br br-phy -- set Bridge br-phy "datapath_type=$2" \
			-- add-port br-phy eth0
		ip link set br-phy up
		ip addr add "10.99.0.$i/24" dev br-phy
		ip -6 addr add "fd99::$i/64" dev br-phy nodad
	' sh "$h" "$LAB_DATAPATH"
}

install_plugin() {
	local h=$1 path=$2
	# shellcheck disable=SC2016 # expanded by the host's shell
	host_run "$h" /bin/sh -euc '
		mkdir -p "${1%/*}"
		cat >"$1.new"
		chmod 0755 "$1.new"
		mv -f "$1.new" "$1"
	' sh "$PLUGIN_DEST" <"$path"
}

import_image() {
	local h=$1
	host_run "$h" podman import --quiet --change 'CMD=["/bin/sh"]' - localhost/busybox \
		<"$ROOTFS/busybox.tar" >/dev/null
}

# Host H from nothing to running: namespaces, root fs, OVS, underlay, image, plugin.
bring_up_host() {
	local h=$1 plugin=$2
	log "host $h: namespaces and root fs"
	ip netns add "$(host_ns "$h")"
	write_host_config "$h"
	make_mount_ns "$h"
	log "host $h: OVS ($LAB_DATAPATH datapath) and underlay 10.99.0.$h"
	start_ovs "$h"
	make_underlay "$h"
	log "host $h: busybox image"
	import_image "$h"
	if [[ -n $plugin ]]; then
		install_plugin "$h" "$plugin"
	fi
}

check_underlay() {
	host_run 1 ping -c1 -W5 "10.99.0.$1" >/dev/null || die "underlay: host 1 cannot reach 10.99.0.$1"
}

# add-host: host N+1 joins a running lab, with the lab's plugin. In an OVN lab it gets
# ovn-controller only: nothing runs on the other hosts, as when a machine joins a real cluster.
cmd_add_host() {
	[[ $(id -u) -eq 0 ]] || die "must run as root"
	lock_lab
	[[ -f $STATE/complete ]] || die "no complete lab is up in $LAB_DIR"
	! is_kernel_mode || die "add-host works on the userspace lab only"
	local n h plugin
	n=$(cat "$STATE/hosts")
	h=$((n + 1))
	((h <= MAX_HOSTS)) || die "the lab has $MAX_HOSTS hosts already"
	ROOTFS=$(cat "$STATE/rootfs")
	plugin=$(cat "$STATE/plugin")
	local start
	start=$(date +%s%N)
	# Counted at once, so that `down` finds the host even if this fails half-way.
	printf '%s
' "$h" >"$STATE/hosts"
	bring_up_host "$h" "$plugin"
	check_underlay "$h"
	if ovn_enabled; then ovn_up_hosts "$h" "$h"; fi
	local ms=$((($(date +%s%N) - start) / 1000000))
	log "host $h added in $((ms / 1000)).$(printf '%03d' $((ms % 1000))) s"
}

UP_OK=0
up_exit() {
	local rc=$?
	if [[ $UP_OK -eq 0 ]]; then
		trap - ERR
		log "up failed (exit $rc); removing what it made"
		do_down || true
	fi
	exit "$rc"
}

cmd_up() {
	local n=${1:-} plugin="" kernel=0 ovn=0 ovn_ssl=0
	if ! [[ $n =~ ^[0-9]+$ ]] || ((n < 1 || n > MAX_HOSTS)); then
		die "usage: lab.sh up N [--kernel] [--ovn [--ovn-ssl]] [--plugin PATH] (1 <= N <= $MAX_HOSTS)"
	fi
	shift
	while (($#)); do
		case $1 in
		--kernel)
			kernel=1
			shift
			;;
		--ovn)
			ovn=1
			shift
			;;
		--ovn-ssl)
			ovn=1
			ovn_ssl=1
			shift
			;;
		--plugin)
			[[ $# -ge 2 ]] || die "--plugin needs a path"
			plugin=$(readlink -f "$2")
			[[ -f $plugin && -x $plugin ]] || die "plugin binary $2 is not an executable file"
			shift 2
			;;
		*) die "unknown argument to up: $1" ;;
		esac
	done
	((kernel == 0 || ovn == 0)) ||
		die "--ovn runs on the userspace lab only (the kernel mode's guest has no OVN packages)"
	[[ $(id -u) -eq 0 ]] || die "must run as root"
	lock_lab
	if [[ -f $STATE/hosts ]] || ip netns list | grep -q "^$SWITCH_NS\b"; then
		die "a lab is already up in $LAB_DIR (prefix $LAB_PREFIX); run 'lab.sh down' first"
	fi

	local start
	start=$(date +%s%N)
	if ((kernel)); then
		trap up_exit EXIT
		trap 'exit 130' INT
		trap 'exit 143' TERM
		mkdir -p "$STATE"
		printf '%s\n' "$LAB_PREFIX" >"$STATE/prefix"
		printf '%s\n' "$n" >"$STATE/hosts"
		printf '%s\n' "$plugin" >"$STATE/plugin"
		vm_up "$n" "$plugin"
		UP_OK=1
		touch "$STATE/complete"
		trap - EXIT INT TERM
		local ms=$((($(date +%s%N) - start) / 1000000))
		log "kernel-datapath lab up: $n host(s) in one guest in $((ms / 1000)).$(printf '%03d' $((ms % 1000))) s (LAB_DIR=$LAB_DIR, qemu pid $(vm_pid))"
		return 0
	fi
	if [[ -n ${LAB_ROOTFS:-} ]]; then
		ROOTFS=$LAB_ROOTFS
	else
		ROOTFS=$("$SCRIPT_DIR/rootfs.sh")
	fi
	[[ -f $ROOTFS/.complete ]] || die "rootfs.sh gave no complete build"

	trap up_exit EXIT
	trap 'log "failed at line $LINENO: $BASH_COMMAND"' ERR
	trap 'exit 130' INT
	trap 'exit 143' TERM

	mkdir -p "$STATE" "$NSDIR" "$LAB_DIR/hosts"
	printf '%s\n' "$LAB_PREFIX" >"$STATE/prefix"
	printf '%s\n' "$ROOTFS" >"$STATE/rootfs"
	printf '%s\n' "$n" >"$STATE/hosts"
	printf '%s\n' "$plugin" >"$STATE/plugin"
	if [[ -d $ROOTFS/users ]]; then printf '%s\n' "$LAB_DIR" >"$ROOTFS/users/$LAB_PREFIX"; fi
	# The mount-ns files must sit on a private mount, or binding them would propagate them into
	# the very namespaces they pin.
	mountpoint -q "$NSDIR" || mount --bind "$NSDIR" "$NSDIR"
	mount --make-private "$NSDIR"

	ip netns add "$SWITCH_NS"
	ip -n "$SWITCH_NS" link set lo up
	nsenter --net="/run/netns/$SWITCH_NS" -- sysctl -qw net.ipv6.conf.all.disable_ipv6=1 \
		net.ipv6.conf.default.disable_ipv6=1
	ip -n "$SWITCH_NS" link add br0 type bridge mcast_snooping 0
	ip -n "$SWITCH_NS" link set br0 up

	local h
	for h in $(seq "$n"); do
		bring_up_host "$h" "$plugin"
	done

	# The underlay must carry traffic before anyone builds tunnels on it.
	if ((n >= 2)); then
		for h in $(seq 2 "$n"); do check_underlay "$h"; done
	fi
	if ((ovn)); then
		ovn_init "$((n < OVN_MAX_CENTRAL ? n : OVN_MAX_CENTRAL))" "$ovn_ssl"
		ovn_up_hosts 1 "$n"
	fi

	UP_OK=1
	touch "$STATE/complete"
	trap - EXIT ERR INT TERM
	local ms=$((($(date +%s%N) - start) / 1000000))
	log "lab up: $n host(s) in $((ms / 1000)).$(printf '%03d' $((ms % 1000))) s (LAB_DIR=$LAB_DIR, prefix $LAB_PREFIX)"
	[[ -z $plugin ]] || log "plugin $plugin installed as $PLUGIN_DEST in every host"
}

# ---------------------------------------------------------------------------------------------
# reboot: what a power cut and a boot leave of host H. Every process of the host dies by SIGKILL
# (conmon first, so no container is torn down), its runtime state goes (/run, /dev/shm and /tmp
# are tmpfs on a real host: podman's state, the containers' network namespaces, OVS's sockets),
# the devices that live only in memory go (container veths, OVS's tap devices), then the host
# boots: OVS starts from its database (/etc/openvswitch/conf.db persists) and the network
# configuration puts the underlay addresses back on br-phy. Containers stay stopped, as they do
# after a boot until something runs `podman start`; podman notices the boot on its next command.

cmd_reboot() {
	lock_lab
	crash_host "$1"
	boot_host "$1"
}

# The power cut: every process of host H killed, its memory (tmpfs, in-memory devices) gone.
crash_host() {
	local h=$1 ns mnt
	ns=$(host_ns "$h")
	mnt=$(host_mnt "$h")
	local -a ctrs pids conmons=() others=()
	mapfile -t ctrs < <(host_run "$h" podman ps -aq --no-trunc)
	mapfile -t pids < <({
		pids_of_containers "${ctrs[@]}"
		pids_in_ns "$(ns_inode "/run/netns/$ns")" "$(ns_inode "$mnt")"
	} | grep -vx "$$" | sort -u)
	local p
	for p in "${pids[@]}"; do
		if [[ $(cat "/proc/$p/comm" 2>/dev/null) == conmon ]]; then conmons+=("$p"); else others+=("$p"); fi
	done
	# conmon first: once it is gone nobody runs the container's exit command (its teardown).
	((${#conmons[@]} == 0)) || kill -KILL "${conmons[@]}" 2>/dev/null || true
	((${#others[@]} == 0)) || kill -KILL "${others[@]}" 2>/dev/null || true
	# A daemon's --monitor may have started it again between two kills: kill until none is left.
	local round
	for round in $(seq 50); do
		mapfile -t pids < <(pids_in_ns "$(ns_inode "/run/netns/$ns")" "$(ns_inode "$mnt")" | grep -vx "$$" | sort -u)
		((${#pids[@]})) || break
		((round < 50)) || die "host $h: processes ${pids[*]} outlived the power cut"
		kill -KILL "${pids[@]}" 2>/dev/null || true
		sleep 0.02
	done
	log "host $h: killed ${#conmons[@]} conmon and ${#others[@]} other process(es)"
	if [[ $LAB_DATAPATH == system ]]; then
		# The kernel's datapath (its bridges' internal devices, the tunnel vport) is memory: a
		# boot starts without it, and ovs-vswitchd builds it again from the database.
		host_run "$h" sh -c 'for dp in $(ovs-dpctl dump-dps); do ovs-dpctl del-dp "$dp"; done'
	fi
	# shellcheck disable=SC2016 # expanded by the host's shell
	host_run "$h" /bin/sh -euc '
		for n in /run/netns/*; do
			if [ -e "$n" ]; then umount "$n" 2>/dev/null || true; rm -f "$n"; fi
		done
		while mountpoint -q /run/netns; do umount /run/netns; done
		for d in $(ip -j -d link show | jq -r ".[] | select(.linkinfo.info_kind == \"tun\"
			or (.ifname | test(\"^gv\"))) | .ifname"); do
			ip link del "$d" 2>/dev/null || true
		done
		# The kernel forgets its packet filter: whatever the host wants back must be restored
		# by its boot (the plugin: its gc unit, or its next create or setup).
		nft flush ruleset
		find /run /dev/shm /tmp -mindepth 1 -maxdepth 1 -exec rm -rf {} +
		mkdir -p /run/lock /run/netns /run/openvswitch
	'
	log "host $h: down"
}

# The boot: OVS from its database, the underlay addresses, and in an OVN lab the host's OVN
# daemons from their files (a central host's database members rejoin their clusters).
boot_host() {
	local h=$1
	log "host $h: booting"
	start_ovs "$h"
	# shellcheck disable=SC2016 # expanded by the host's shell
	host_run "$h" /bin/sh -euc '
		i=$1
		n=0
		until ip link show br-phy >/dev/null 2>&1; do
			n=$((n + 1))
			[ "$n" -le 200 ] || { echo "br-phy did not come back" >&2; exit 1; }
			sleep 0.05
		done
		ip link set br-phy up
		ip addr add "10.99.0.$i/24" dev br-phy
		ip -6 addr add "fd99::$i/64" dev br-phy nodad
	' sh "$h"
	if ovn_enabled; then ovn_boot_host "$h"; fi
	log "host $h: up again"
}

# ---------------------------------------------------------------------------------------------

# LAB_MODE says where the paths are: "userspace" (on this machine) or "kernel" (inside the
# guest: the namespaces and mount files of the LAB_H* variables are the guest's).
cmd_env() {
	[[ -f $STATE/hosts ]] || die "no lab is up in $LAB_DIR"
	if is_kernel_mode; then
		printf 'LAB_MODE=kernel\nLAB_DIR=%q\nLAB_PREFIX=%q\nLAB_VM_PID=%q\nLAB_VM_IMAGE=%q\n' \
			"$LAB_DIR" "$LAB_PREFIX" "$(vm_pid)" "$(cat "$STATE/vm-image" 2>/dev/null)"
		vm_lab 60 env | grep -v -e '^LAB_DIR=' -e '^LAB_PREFIX=' -e '^LAB_MODE='
		return 0
	fi
	local n h
	n=$(cat "$STATE/hosts")
	printf 'LAB_MODE=%s\nLAB_DATAPATH=%q\n' "$([[ $LAB_DATAPATH == netdev ]] && echo userspace || echo kernel)" "$LAB_DATAPATH"
	printf 'LAB_DIR=%q\nLAB_PREFIX=%q\nLAB_HOSTS=%q\nLAB_ROOTFS=%q\nLAB_SWITCH_NETNS=%q\n' \
		"$LAB_DIR" "$LAB_PREFIX" "$n" "$(cat "$STATE/rootfs")" "/run/netns/$SWITCH_NS"
	for h in $(seq "$n"); do
		printf 'LAB_H%s_NETNS=%q\nLAB_H%s_MNTNS=%q\nLAB_H%s_IP=%q\nLAB_H%s_IP6=%q\n' \
			"$h" "/run/netns/$(host_ns "$h")" "$h" "$(host_mnt "$h")" \
			"$h" "10.99.0.$h" "$h" "fd99::$h"
	done
	if ovn_enabled; then ovn_env; else printf 'LAB_OVN=0\n'; fi
}

cmd_status() {
	if [[ ! -f $STATE/hosts ]]; then
		echo "no lab up in $LAB_DIR"
		return 0
	fi
	local n h
	n=$(cat "$STATE/hosts")
	if is_kernel_mode; then
		if vm_alive; then
			echo "lab in $LAB_DIR: kernel datapath, $n host(s) in the guest of qemu pid $(vm_pid) ($(cat "$STATE/vm-image" 2>/dev/null))"
			vm_lab 60 status
		else
			echo "lab in $LAB_DIR: kernel datapath, $n host(s), GUEST NOT RUNNING; run 'lab.sh down'"
		fi
		return 0
	fi
	echo "lab in $LAB_DIR: $n host(s), prefix $LAB_PREFIX, $LAB_DATAPATH datapath, rootfs $(cat "$STATE/rootfs")"
	[[ -f $STATE/complete ]] || echo "INCOMPLETE: 'up' did not finish; run 'lab.sh down'"
	if ovn_enabled; then
		echo "OVN ($(ovn_proto)): NB $(ovn_remotes $OVN_NB_PORT), NB leader host $(ovn_leader nb), SB leader host $(ovn_leader sb)"
	fi
	for h in $(seq "$n"); do
		if ! mountpoint -q "$(host_mnt "$h")" || [[ ! -e /run/netns/$(host_ns "$h") ]]; then
			printf 'host %s: missing\n' "$h"
			continue
		fi
		printf 'host %s: netns %s, underlay 10.99.0.%s, containers running: %s\n' "$h" \
			"$(host_ns "$h")" "$h" "$(host_run "$h" podman ps -q 2>/dev/null | wc -l)"
	done
}

# The kernel mode: every verb but up and down runs in the guest, on the same lab.sh.
forward_to_guest() {
	local cmd=$1
	shift
	case $cmd in
	install-plugin)
		(($# >= 1)) || die "usage: lab.sh install-plugin PATH [H...]"
		[[ -f $1 && -x $1 ]] || die "plugin binary $1 is not an executable file"
		cp "$1" "$VM_SHARE/plugin.new"
		mv -f "$VM_SHARE/plugin.new" "$VM_SHARE/plugin"
		shift
		vm_lab "$VM_CALL_TIMEOUT" install-plugin "$GUEST_SHARE/plugin" "$@"
		;;
	exec | podman)
		(($# >= 1)) || die "usage: lab.sh $cmd H ..."
		local h=${1#h}
		[[ $h =~ ^[0-9]+$ ]] && ((h >= 1 && h <= $(cat "$STATE/hosts"))) ||
			die "no host '$1' (lab has $(cat "$STATE/hosts"))"
		shift
		if [[ $cmd == podman ]]; then set -- podman "$@"; fi
		(($#)) || die "usage: lab.sh exec H CMD [ARGS...]"
		vm_host_exec "$h" "$@"
		;;
	*) vm_lab "$VM_CALL_TIMEOUT" "$cmd" "$@" ;;
	esac
}

main() {
	local cmd=${1:-}
	(($#)) && shift
	case $cmd in
	exec | podman | install-plugin | reboot | crash | boot | start-vswitchd | switch)
		if is_kernel_mode; then
			forward_to_guest "$cmd" "$@"
			return
		fi
		;;
	esac
	case $cmd in
	up) cmd_up "$@" ;;
	down) cmd_down ;;
	exec)
		(($# >= 2)) || die "usage: lab.sh exec H CMD [ARGS...]"
		local h
		h=$(parse_host "$1")
		shift
		host_run "$h" "$@"
		;;
	podman)
		(($# >= 1)) || die "usage: lab.sh podman H [ARGS...]"
		local h
		h=$(parse_host "$1")
		shift
		host_run "$h" podman "$@"
		;;
	install-plugin)
		(($# >= 1)) || die "usage: lab.sh install-plugin PATH [H...]"
		local path=$1 h
		shift
		[[ -f $path && -x $path ]] || die "plugin binary $path is not an executable file"
		[[ -f $STATE/hosts ]] || die "no lab is up in $LAB_DIR"
		# shellcheck disable=SC2046 # one word per host number
		(($#)) || set -- $(seq "$(cat "$STATE/hosts")")
		for h in "$@"; do
			h=$(parse_host "$h")
			install_plugin "$h" "$path"
		done
		printf '%s\n' "$(readlink -f "$path")" >"$STATE/plugin"
		;;
	reboot | crash | boot)
		(($# == 1)) || die "usage: lab.sh $cmd H"
		local h
		h=$(parse_host "$1")
		case $cmd in
		reboot) cmd_reboot "$h" ;;
		crash) lock_lab && crash_host "$h" ;;
		boot) lock_lab && boot_host "$h" ;;
		esac
		;;
	add-host)
		(($# == 0)) || die "usage: lab.sh add-host"
		cmd_add_host
		;;
	ovn-leader)
		[[ $# -eq 1 && ($1 == nb || $1 == sb) ]] || die "usage: lab.sh ovn-leader nb|sb"
		[[ -f $STATE/hosts ]] || die "no lab is up in $LAB_DIR"
		ovn_enabled || die "the lab in $LAB_DIR has no OVN (up N --ovn)"
		local leader
		leader=$(ovn_leader "$1")
		[[ -n $leader ]] || die "the ${1^^} cluster has no leader now"
		printf '%s
' "$leader"
		;;
	start-vswitchd)
		(($# == 1)) || die "usage: lab.sh start-vswitchd H"
		local h
		h=$(parse_host "$1")
		start_vswitchd "$h"
		;;
	switch)
		(($# >= 1)) || die "usage: lab.sh switch CMD [ARGS...]"
		[[ -e /run/netns/$SWITCH_NS ]] || die "no lab is up in $LAB_DIR"
		nsenter --net="/run/netns/$SWITCH_NS" -- "$@"
		;;
	env) cmd_env ;;
	status) cmd_status ;;
	-h | --help | help | "")
		sed -n '2,/^set -euo/p' "$0" | sed -e '$d' -e 's/^# \{0,1\}//'
		;;
	*) die "unknown command '$cmd' (try --help)" ;;
	esac
}

main "$@"
