#!/bin/bash
# The data-plane benchmark on OVS's kernel datapath (`bench.sh --kernel`): in the lab's QEMU
# guest (lab.sh up 2 --kernel), TCP throughput (iperf3) and round-trip time (ping) between
# containers on two hosts, over four paths side by side in one run, alternating within each
# repetition:
#   geneve    a geneve-ovs network (kernel datapath, GENEVE vport, MTU 1450), on UDP 6082 so that
#             the ipsec path's policies (UDP 6081 between the two hosts) do not cover it
#   ipsec     a geneve-ovs network with encrypt=ipsec (OVS IPsec, strongSwan, ESP AES-GCM in
#             transport mode; MTU 1410), on UDP 6081
#   docker    the data plane of Docker's overlay network as Swarm builds it, by hand: per host a
#             Linux bridge with a kernel VXLAN device (VNI 4097, UDP 4789, MTU 1450) and the
#             container's veth, the peer's VTEP in the bridge's forwarding table
#   seed      the seed's hand-made topology (contrib/lab/seed-topology.sh) on the kernel
#             datapath: podman bridge + veth + OVS bridge + GENEVE port
#   underlay  host to host, the limit
# Under emulation (TCG) absolute figures mean nothing; the ratios between paths measured in one
# guest compare the code paths, and are what the report gives.
#
# Usage: contrib/bench/bench.sh --kernel [--quick] [--out DIR] [--plugin PATH] [--keep-lab]
# Writes DIR/results.md (the table and the ratios), DIR/samples.tsv, DIR/meta.tsv, DIR/bench.log.
set -euo pipefail

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$BENCH_DIR/../.." && pwd)
LAB=$REPO/contrib/lab/lab.sh
SEED=$REPO/contrib/lab/seed-topology.sh
# shellcheck source=contrib/bench/lib.sh
. "$BENCH_DIR/lib.sh"

PATHS=(geneve ipsec docker seed underlay)
declare -A PORT=([geneve]=5201 [docker]=5202 [seed]=5203 [underlay]=5204 [ipsec]=5205)
PSK_FILE=/etc/geneve-ovs/bench.psk
# Per path and host: nsenter prefix of the container's network namespace, and its address.
declare -A NS IP

# The docker path on host H of 2: namespace dk (the container), bridge dk-br, VXLAN dk-vx.
docker_up() {
	local h=$1 peer=$((3 - $1))
	# shellcheck disable=SC2016 # expanded by the host's shell
	host "$h" /bin/sh -euc '
		h=$1 peer=$2
		ip link add dk-br type bridge
		ip link add dk-vx type vxlan id 4097 dstport 4789 local "10.99.0.$h" dev br-phy \
			nolearning
		ip link set dk-vx mtu 1450 master dk-br
		# The peer VTEP for broadcast and unknown unicast, as the overlay driver programs it.
		bridge fdb append 00:00:00:00:00:00 dev dk-vx dst "10.99.0.$peer"
		ip netns add dk
		ip link add dk-h type veth peer name eth0 netns dk
		ip link set dk-h mtu 1450 master dk-br up
		ip -n dk link set eth0 mtu 1450 up
		ip -n dk link set lo up
		ip -n dk addr add "192.168.123.$h/24" dev eth0
		ip link set dk-vx up
		ip link set dk-br up
	' sh "$h" "$peer"
	NS[docker-$h]="nsenter --net=/run/netns/dk"
	IP[docker-$h]=192.168.123.$h
}

docker_down() {
	host "$1" /bin/sh -c 'ip netns del dk; ip link del dk-h; ip link del dk-vx; ip link del dk-br' \
		2>/dev/null || true
}

ends() {
	local path=$1 h=$2 ctr net pid
	case $path in
	geneve) ctr=bench-dp net=bench-dp ;;
	ipsec) ctr=bench-ipsec net=bench-ipsec ;;
	seed) ctr=seed-net1 net=net1 ;;
	underlay)
		NS[$path-$h]=""
		IP[$path-$h]=10.99.0.$h
		return
		;;
	docker) return ;;
	esac
	pid=$(container_pid "$h" "$ctr")
	NS[$path-$h]="nsenter -t $pid -n"
	IP[$path-$h]=$(host "$h" podman inspect \
		-f "{{(index .NetworkSettings.Networks \"$net\").IPAddress}}" "$ctr")
}

in_path() {
	local path=$1 h=$2
	shift 2
	# shellcheck disable=SC2086 # the nsenter prefix is several words, or none
	host "$h" ${NS[$path-$h]} "$@"
}

# OVS IPsec on host H as the README's setup has it: the key file (root, 0600), charon's
# acquire timeout, ovs-monitor-ipsec (which restarts strongSwan).
ipsec_up() {
	local h=$1
	# shellcheck disable=SC2016 # expanded by the host's shell
	host "$h" /bin/sh -euc '
		mkdir -p /etc/geneve-ovs
		umask 077
		printf "%s\n" "bench-key-0123456789-abcdefghijklmnop" >"$1"
		printf "charon {\n plugins {\n  kernel-netlink {\n   xfrm_acq_expires = 10\n  }\n }\n}\n" \
			>/etc/strongswan.d/geneve-ovs.conf
		python3 /usr/share/openvswitch/scripts/ovs-monitor-ipsec --ike-daemon=strongswan \
			--pidfile=/run/openvswitch/ovs-monitor-ipsec.pid \
			--log-file=/var/log/openvswitch/ovs-monitor-ipsec.log --detach \
			unix:/run/openvswitch/db.sock
		# create requires the IKE daemon, which the monitor starts in the background.
		i=0
		until kill -0 "$(cat /var/run/charon.pid 2>/dev/null)" 2>/dev/null; do
			i=$((i + 1))
			[ "$i" -le 120 ] || { echo "charon did not start within 60 s" >&2; exit 1; }
			sleep 0.5
		done
	' sh "$PSK_FILE"
}

setup() {
	local h path
	for h in 1 2; do
		host "$h" podman network create -d geneve-ovs --internal --subnet 192.168.121.0/24 \
			--ip-range "192.168.121.$((h * 128 - 127))-192.168.121.$((h * 128 - 2))" \
			--opt peers=10.99.0.1,10.99.0.2 --opt dst_port=6082 bench-dp >/dev/null
		host "$h" podman run -d --name bench-dp --net bench-dp --cap-add NET_RAW \
			localhost/busybox sleep 1000000 >/dev/null
		ipsec_up "$h"
		host "$h" podman network create -d geneve-ovs --internal --subnet 192.168.124.0/24 \
			--ip-range "192.168.124.$((h * 128 - 127))-192.168.124.$((h * 128 - 2))" \
			--opt peers=10.99.0.1,10.99.0.2 --opt encrypt=ipsec --opt "psk_file=$PSK_FILE" \
			bench-ipsec >/dev/null
		host "$h" podman run -d --name bench-ipsec --net bench-ipsec --cap-add NET_RAW \
			localhost/busybox sleep 1000000 >/dev/null
		docker_up "$h"
	done
	SEED_DATAPATH=system "$SEED" up 1 2
	"$SEED" check 1 2 || die "the seed topology does not carry traffic"
	for path in "${PATHS[@]}"; do
		for h in 1 2; do ends "$path" "$h"; done
		# IKE under emulation takes a while on the ipsec path.
		local try tries=30
		[[ $path == ipsec ]] && tries=120
		for try in $(seq "$tries"); do
			in_path "$path" 1 ping -c1 -W1 "${IP[$path-2]}" >/dev/null 2>&1 &&
				in_path "$path" 2 ping -c1 -W1 "${IP[$path-1]}" >/dev/null 2>&1 && break
			((try < tries)) || die "no traffic over the $path path"
		done
		meta "mtu_$path" "$(in_path "$path" 1 ip -o link show | sed -n 's/^[0-9]*: \(eth0\|br-phy\)[@:].* mtu \([0-9]*\) .*/\2/p' | head -1)"
		in_path "$path" 2 iperf3 -s -D -p "${PORT[$path]}" -I "/tmp/bench-iperf3-$path.pid"
	done
	meta datapath_geneve "$(host 1 ovs-vsctl get Bridge \
		"$(host 1 podman network inspect -f '{{.NetworkInterface}}' bench-dp)" datapath_type)"
	meta datapath_seed "$(host 1 ovs-vsctl get Bridge ovs_net1 datapath_type)"
	sleep 0.5
}

measure() {
	local r k path v
	meta iperf_seconds "$IPERF_SECONDS"
	for ((r = 0; r < IPERF_REPS; r++)); do
		for ((k = 0; k < ${#PATHS[@]}; k++)); do
			path=${PATHS[(k + r) % ${#PATHS[@]}]}
			v=$(in_path "$path" 1 iperf3 -c "${IP[$path-2]}" -p "${PORT[$path]}" \
				-t "$IPERF_SECONDS" -O 1 -J | jq -r '.end.sum_received.bits_per_second / 1e6') ||
				die "iperf3 over $path failed"
			printf 'tcp.%s_mbps\t%d\t%s\n' "$path" "$r" "$v" >>"$SAMPLES"
			log "iperf3 $path: $v Mbit/s"
		done
	done
	for ((r = 0; r < PING_BATCHES; r++)); do
		for ((k = 0; k < ${#PATHS[@]}; k++)); do
			path=${PATHS[(k + r) % ${#PATHS[@]}]}
			in_path "$path" 1 ping -n -c "$PING_COUNT" -i 0.05 -W 2 "${IP[$path-2]}" |
				sed -n 's/.* time=\([0-9.]*\) ms$/\1/p' |
				awk -v s="rtt.${path}_ms" -v r="$r" '{printf "%s\t%d\t%s\n", s, r, $1}' >>"$SAMPLES"
		done
	done
	log "ping: $PING_BATCHES batches of $PING_COUNT per path"
}

median() {
	awk -F'\t' -v s="$1" '$1 == s {print $3}' "$SAMPLES" | sort -g |
		awk '{v[NR] = $1} END {if (NR == 0) print "nan"; else if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2}'
}

report() {
	local path tcp rtt
	local -A T R
	for path in "${PATHS[@]}"; do
		T[$path]=$(median "tcp.${path}_mbps")
		R[$path]=$(median "rtt.${path}_ms")
	done
	ratio() { awk -v a="$1" -v b="$2" 'BEGIN {if (b > 0) printf "%.2f", a / b; else print "nan"}'; }
	{
		printf '# Data plane on the kernel datapath (in a QEMU TCG guest)\n\n'
		printf 'Medians of %s iperf3 runs of %s s and %s x %s pings per path, the paths alternating.\n' \
			"$IPERF_REPS" "$IPERF_SECONDS" "$PING_BATCHES" "$PING_COUNT"
		printf 'Under emulation only the ratios mean something.\n\n'
		printf '| path | TCP Mbit/s | TCP vs underlay | TCP vs docker | RTT ms | RTT vs underlay | RTT vs docker |\n'
		printf '|---|---:|---:|---:|---:|---:|---:|\n'
		for path in "${PATHS[@]}"; do
			printf '| %s | %.0f | %s | %s | %.3f | %s | %s |\n' "$path" "${T[$path]}" \
				"$(ratio "${T[$path]}" "${T[underlay]}")" "$(ratio "${T[$path]}" "${T[docker]}")" \
				"${R[$path]}" "$(ratio "${R[$path]}" "${R[underlay]}")" "$(ratio "${R[$path]}" "${R[docker]}")"
		done
		printf '\ngeneve-ovs vs the seed topology: TCP %s, RTT %s\n' \
			"$(ratio "${T[geneve]}" "${T[seed]}")" "$(ratio "${R[geneve]}" "${R[seed]}")"
		printf '\nencrypted (encrypt=ipsec) vs clear geneve-ovs: TCP %s, RTT %s\n' \
			"$(ratio "${T[ipsec]}" "${T[geneve]}")" "$(ratio "${R[ipsec]}" "${R[geneve]}")"
		printf '\n| fact | value |\n|---|---|\n'
		awk -F'\t' '{printf "| %s | %s |\n", $1, $2}' "$META"
	} >"$OUT/results.md"
	cat "$OUT/results.md"
}

main() {
	local out="" plugin="" keep=0 quick=0
	while (($#)); do
		case $1 in
		--kernel) ;;
		--quick) quick=1 ;;
		--out)
			[[ $# -ge 2 ]] || die "--out needs a directory"
			out=$2
			shift
			;;
		--plugin)
			[[ $# -ge 2 ]] || die "--plugin needs a path"
			plugin=$2
			shift
			;;
		--keep-lab) keep=1 ;;
		-h | --help)
			sed -n '2,/^set -euo/p' "$0" | sed -e '$d' -e 's/^# \{0,1\}//'
			exit 0
			;;
		*) die "unknown argument $1 (try --help)" ;;
		esac
		shift
	done
	if ((quick)); then
		IPERF_REPS=2 IPERF_SECONDS=3 PING_BATCHES=2 PING_COUNT=10
	else
		IPERF_REPS=5 IPERF_SECONDS=5 PING_BATCHES=10 PING_COUNT=20
	fi
	[[ $(id -u) -eq 0 ]] || die "must run as root (the lab needs it)"
	out=${out:-bench-results/kernel-$(date -u +%Y%m%dT%H%M%SZ)}
	mkdir -p "$out"
	OUT=$(cd "$out" && pwd)
	SAMPLES=$OUT/samples.tsv
	META=$OUT/meta.tsv
	: >"$SAMPLES"
	: >"$META"
	exec > >(tee "$OUT/bench.log") 2>&1
	local start=$SECONDS
	if [[ -n $plugin ]]; then
		PLUGIN=$(readlink -f "$plugin")
	else
		log "cargo build --release --bin geneve-ovs"
		(cd "$REPO" && cargo build --release --quiet --bin geneve-ovs) || die "build failed"
		PLUGIN=$REPO/target/release/geneve-ovs
	fi
	[[ -x $PLUGIN ]] || die "plugin $PLUGIN is not an executable file"
	machine_meta
	meta mode "kernel datapath, $([[ $quick == 1 ]] && echo quick || echo full)"
	meta commit "$(git -C "$REPO" rev-parse --short HEAD 2>/dev/null || echo unknown)"
	export LAB_DIR=${BENCH_LAB_DIR:-$(mktemp -d /var/tmp/geneve-ovs-bench.XXXXXX)}
	if ((keep)); then
		trap 'log "lab left up: LAB_DIR=$LAB_DIR"' EXIT
	else
		trap lab_down EXIT
	fi
	trap 'exit 130' INT
	trap 'exit 143' TERM
	meta hosts 2
	"$LAB" up 2 --kernel --plugin "$PLUGIN"
	meta guest "$("$LAB" exec 1 uname -r), $(sed -n 's/^LAB_VM_IMAGE=//p' < <("$LAB" env))"
	meta ovs "$(host 1 ovs-vsctl --version | awk 'NR == 1 {print $NF}')"
	phase setup
	phase measure
	meta duration_s $((SECONDS - start))
	report
	log "done in $((SECONDS - start)) s: $OUT/results.md"
}

main "$@"
