#!/bin/bash
# The hand-made overlay that geneve-ovs replaces, built on a running lab (lab.sh up N): on each
# host a podman bridge network with the same subnet and a disjoint IP range, its Linux bridge
# joined by a veth pair to an OVS bridge (the lab's datapath) that holds one GENEVE port per peer
# host (Port protected, so tunnels never forward to each other). Kept as the baseline that
# benchmarks compare the plugin against.
#
# Usage:
#   seed-topology.sh up [H...]     build it on the given hosts (default: every lab host)
#   seed-topology.sh check [H...]  one container per host; each pings every other across
#   seed-topology.sh down [H...]   remove the containers, the network and the bridges
#
# Environment: LAB_DIR as for lab.sh; SEED_NET (default net1), SEED_SUBNET (default
# 192.168.120.0/24, a /24), SEED_MTU (default 1450 = 1500 minus GENEVE over IPv4),
# SEED_VNI (GENEVE key, default 0 as in the hand-made setup), SEED_DATAPATH (the OVS bridge's
# datapath: netdev, the userspace one the lab runs on this machine, or system, the kernel's, in
# the lab's kernel mode; default: what the lab's env says).
set -euo pipefail

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
LAB=$SCRIPT_DIR/lab.sh
NET=${SEED_NET:-net1}
SUBNET=${SEED_SUBNET:-192.168.120.0/24}
MTU=${SEED_MTU:-1450}
VNI=${SEED_VNI:-0}
DATAPATH=${SEED_DATAPATH:-}
OVS_BR=ovs_$NET
# veth between the podman bridge and OVS: LB_END joins the Linux bridge, OVS_END the OVS bridge.
LB_END=sd-$NET-lb
OVS_END=sd-$NET-ovs

log() { printf '[seed %s] %s\n' "$(date +%T)" "$*" >&2; }
die() {
	log "error: $*"
	exit 1
}

[[ $SUBNET =~ ^([0-9]+\.[0-9]+\.[0-9]+)\.0/24$ ]] || die "SEED_SUBNET must be a /24 (got $SUBNET)"
NET24=${BASH_REMATCH[1]}
((${#LB_END} <= 15)) || die "SEED_NET '$NET' is too long for interface names"

all_hosts() {
	local n
	n=$("$LAB" env | sed -n 's/^LAB_HOSTS=//p')
	[[ -n $n ]] || die "no lab is up"
	seq "$n"
}

# Disjoint ranges per host: the /24 cut into power-of-two blocks, the first and last address of
# each block left out. With 2 hosts: .1-.126 and .129-.254, as in the hand-made setup.
ip_range() {
	local h=$1 n=$2 block=128
	while ((block * n > 256)); do block=$((block / 2)); done
	((block >= 4)) || die "too many hosts for one /24"
	printf '%s.%s-%s.%s' "$NET24" $(((h - 1) * block + 1)) "$NET24" $((h * block - 2))
}

seed_up() {
	local -a hosts=("$@")
	if [[ -z $DATAPATH ]]; then
		DATAPATH=$("$LAB" env | sed -n 's/^LAB_DATAPATH=//p' | tail -1)
		DATAPATH=${DATAPATH:-netdev}
	fi
	[[ $DATAPATH == netdev || $DATAPATH == system ]] || die "SEED_DATAPATH must be netdev or system, not '$DATAPATH'"
	local n=${#hosts[@]} idx=0 h p
	for h in "${hosts[@]}"; do
		idx=$((idx + 1))
		log "host $h: podman network $NET ($SUBNET, range $(ip_range "$idx" "$n"), mtu $MTU)"
		"$LAB" podman "$h" network create --internal --subnet "$SUBNET" \
			--ip-range "$(ip_range "$idx" "$n")" --opt "mtu=$MTU" "$NET" >/dev/null
		local peers=()
		for p in "${hosts[@]}"; do [[ $p == "$h" ]] || peers+=("$p"); done
		# podman creates its bridge only with the first container: make it now so that it can be
		# linked to OVS; podman then adopts it.
		# shellcheck disable=SC2016 # expanded by the host's shell
		"$LAB" exec "$h" /bin/bash -euc '
			net=$1 ovs_br=$2 lb_end=$3 ovs_end=$4 vni=$5 subnet=$6 datapath=$7
			shift 7
			br=$(podman network inspect "$net" | jq -r ".[0].network_interface")
			gw=$(podman network inspect "$net" | jq -r ".[0].subnets[0].gateway // empty")
			ip link add "$br" type bridge
			ip link set "$br" up
			# netavark adds the gateway address only to a bridge it creates itself, and
			# aardvark-dns (dns_enabled) must bind to it.
			if [ -n "$gw" ]; then ip addr add "$gw/${subnet#*/}" dev "$br"; fi
			ip link add "$lb_end" type veth peer name "$ovs_end"
			# The userspace datapath reads $ovs_end through AF_PACKET: the end outside OVS must
			# compute checksums. The kernel datapath needs no such help.
			if [ "$datapath" = netdev ]; then ethtool -K "$lb_end" tx off >/dev/null; fi
			ip link set "$lb_end" master "$br"
			ovs-vsctl add-br "$ovs_br" -- set Bridge "$ovs_br" "datapath_type=$datapath" \
				-- add-port "$ovs_br" "$ovs_end"
			for peer in "$@"; do
				ovs-vsctl add-port "$ovs_br" "to_h$peer" \
					-- set Interface "to_h$peer" type=geneve \
					options:remote_ip="10.99.0.$peer" options:key="$vni" \
					-- set Port "to_h$peer" protected=true
			done
			ip link set "$ovs_end" up
			ip link set "$lb_end" up
			ip link set "$ovs_br" up
		' sh "$NET" "$OVS_BR" "$LB_END" "$OVS_END" "$VNI" "$SUBNET" "$DATAPATH" "${peers[@]}"
	done
	log "seed topology up on hosts ${hosts[*]}"
}

seed_check() {
	local -a hosts=("$@")
	local h p ip fail=0
	local -A addr=()
	for h in "${hosts[@]}"; do
		"$LAB" podman "$h" run -d --replace --name "seed-$NET" --net "$NET" --cap-add NET_RAW \
			localhost/busybox sleep 3600 >/dev/null
		addr[$h]=$("$LAB" podman "$h" inspect -f "{{(index .NetworkSettings.Networks \"$NET\").IPAddress}}" "seed-$NET")
		log "host $h: container seed-$NET has ${addr[$h]}"
	done
	for h in "${hosts[@]}"; do
		for p in "${hosts[@]}"; do
			[[ $p != "$h" ]] || continue
			ip=${addr[$p]}
			if "$LAB" podman "$h" exec "seed-$NET" ping -c 3 -W 2 "$ip" >/dev/null; then
				log "host $h -> host $p ($ip): ping ok"
			else
				log "host $h -> host $p ($ip): ping FAILED"
				fail=1
			fi
		done
	done
	return "$fail"
}

seed_down() {
	local h
	for h in "$@"; do
		"$LAB" podman "$h" rm -f -t 0 "seed-$NET" >/dev/null 2>&1 || true
		# shellcheck disable=SC2016 # expanded by the host's shell
		"$LAB" exec "$h" /bin/bash -uc '
			net=$1 ovs_br=$2 lb_end=$3
			br=$(podman network inspect "$net" 2>/dev/null | jq -r ".[0].network_interface // empty")
			podman network rm -f "$net" >/dev/null 2>&1 || true
			ovs-vsctl --if-exists del-br "$ovs_br"
			ip link del "$lb_end" 2>/dev/null || true
			if [ -n "$br" ]; then ip link del "$br" 2>/dev/null || true; fi
			true
		' sh "$NET" "$OVS_BR" "$LB_END"
	done
	log "seed topology removed from hosts $*"
}

main() {
	local cmd=${1:-}
	(($#)) && shift
	case $cmd in
	up | check | down) ;;
	*) sed -n '2,/^set -euo/p' "$0" | sed -e '$d' -e 's/^# \{0,1\}//' && exit 2 ;;
	esac
	local -a hosts
	if (($#)); then hosts=("${@#h}"); else mapfile -t hosts < <(all_hosts); fi
	case $cmd in
	up) seed_up "${hosts[@]}" ;;
	check) seed_check "${hosts[@]}" ;;
	down) seed_down "${hosts[@]}" ;;
	esac
}

main "$@"
