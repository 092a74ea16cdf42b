#!/bin/bash
# The agent inside the lab's guest (kernel-datapath mode, see vm.sh): prepares the guest's
# mounts and kernel modules, then serves requests from the machine outside through the 9p share
# mounted at /lab/share.
#
# A request is a directory /lab/share/req/ID, renamed into place by the machine once complete:
#   argv      the command, NUL-separated
#   env       NAME=VALUE entries to add, NUL-separated (optional)
#   stdin     the command's standard input (optional; /dev/null otherwise)
#   timeout   seconds after which the command is killed
# The agent claims it (mkdir ID/claimed, atomic), runs it in the background with stdout and
# stderr written to ID/stdout and ID/stderr, and finally writes the exit status to ID/rc
# (renamed into place, so the machine never reads a half-written status). The machine removes
# the directory. The command `__poweroff` powers the guest off at once.
#
# Runs as the child of catatonit (PID 1), which reaps the orphans of podman and OVS.
set -uo pipefail
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
export HOME=/root LANG=C.UTF-8
SHARE=/lab/share

say() { printf 'lab-agent: %s\n' "$*" >/dev/console; }

mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t cgroup2 cgroup2 /sys/fs/cgroup
mkdir -p /dev/pts /dev/shm
# devtmpfs has no /dev/fd: bash's process substitution and many tools need it.
ln -sfn /proc/self/fd /dev/fd
ln -sfn /proc/self/fd/0 /dev/stdin
ln -sfn /proc/self/fd/1 /dev/stdout
ln -sfn /proc/self/fd/2 /dev/stderr
mount -t devpts -o gid=5,mode=620,ptmxmode=666 devpts /dev/pts
mount -t tmpfs -o mode=1777 shm /dev/shm
# The lab's state and the hosts' upper layers: tmpfs, never the overlay root (an overlay's
# upper layer cannot live on an overlay).
for d in /run /tmp /var/tmp; do mount -t tmpfs -o mode=1777 tmpfs "$d"; done
chmod 0755 /run
mkdir -p /run/netns /run/lock
hostname lab-vm
ip link set lo up
# What the lab and the plugin use; everything else loads on demand through modprobe.
for m in openvswitch geneve vxlan veth bridge tun nf_tables nft_chain_nat nft_ct nft_nat xfrm_user esp4 esp6 \
	nf_conntrack br_netfilter; do
	modprobe "$m" || say "modprobe $m failed"
done
# br_netfilter would send bridged frames (the underlay switch) through the host's nftables.
sysctl -qw net.bridge.bridge-nf-call-iptables=0 net.bridge.bridge-nf-call-ip6tables=0 \
	net.bridge.bridge-nf-call-arptables=0 2>/dev/null || true

mkdir -p "$SHARE/req"
{
	printf 'kernel=%s\n' "$(uname -r)"
	printf 'modules=%s\n' "$(cut -d' ' -f1 /proc/modules | sort | tr '\n' ' ')"
} >"$SHARE/ready.tmp"
mv -f "$SHARE/ready.tmp" "$SHARE/ready"
say "ready ($(uname -r))"

serve() {
	local d=$1 rc tmo in=/dev/null
	local -a argv=() envs=()
	mapfile -d '' -t argv <"$d/argv"
	if [[ -f $d/env ]]; then mapfile -d '' -t envs <"$d/env"; fi
	read -r tmo <"$d/timeout" || tmo=600
	[[ -f $d/stdin ]] && in=$d/stdin
	if [[ ${argv[0]:-} == __poweroff ]]; then
		sync
		echo o >/proc/sysrq-trigger
		return
	fi
	cd / || return
	timeout -k 5 "$tmo" env "${envs[@]}" "${argv[@]}" <"$in" >"$d/stdout" 2>"$d/stderr"
	rc=$?
	printf '%s\n' "$rc" >"$d/rc.tmp"
	mv -f "$d/rc.tmp" "$d/rc"
}

# A pause without a fork per round (TCG makes every process start expensive).
exec {PAUSE}<> <(:)
while true; do
	for d in "$SHARE"/req/*; do
		[[ -f $d/argv ]] || continue
		mkdir "$d/claimed" 2>/dev/null || continue
		serve "$d" &
	done
	read -r -t 0.05 -u "$PAUSE" _
done
