# shellcheck shell=bash
# Data plane between containers on lab hosts 1 and 2: TCP throughput (iperf3) and round-trip
# time (ping) over (a) a geneve-ovs network, (b) the seed's hand-made topology (podman bridge +
# veth + OVS + GENEVE, contrib/lab/seed-topology.sh: same userspace datapath, same MTU), and
# (c) the underlay host to host, the limit, and (d) a geneve-ovs network with
# `port_security=false` (no anti-spoofing flows), when the plugin has that option: what port
# security costs; (e) with --ovn, an OVN network (`--opt ovn=`). iperf3 and ping are the hosts' own (root fs), run inside the container's
# network namespace. The paths alternate within each repetition.

# Server port of each path's iperf3.
declare -A IPERF_PORT=([geneve]=5201 [seed]=5202 [underlay]=5203 [geneve_open]=5204 [ovn]=5205)

# The paths measured; geneve_open is added by dp_setup when the plugin has port_security, ovn
# with --ovn.
DP_PATHS=(geneve seed underlay)

# Network namespace (as nsenter arguments) and address of each path's end on host H.
declare -A DP_NS DP_IP

# dp_ends PATH H: fills DP_NS[PATH-H] and DP_IP[PATH-H].
dp_ends() {
	local path=$1 h=$2 ctr net pid
	case $path in
	geneve) ctr=bench-dp net=bench-dp ;;
	geneve_open) ctr=bench-dpo net=bench-dpo ;;
	ovn) ctr=bench-dpn net=bench-dpn ;;
	seed) ctr=seed-net1 net=net1 ;;
	underlay)
		DP_NS[$path-$h]=""
		DP_IP[$path-$h]=10.99.0.$h
		return
		;;
	esac
	pid=$(container_pid "$h" "$ctr")
	DP_NS[$path-$h]="nsenter -t $pid -n"
	DP_IP[$path-$h]=$(host "$h" podman inspect \
		-f "{{(index .NetworkSettings.Networks \"$net\").IPAddress}}" "$ctr")
}

# in_path PATH H CMD...: CMD in host H, inside PATH's network namespace there.
in_path() {
	local path=$1 h=$2
	shift 2
	# shellcheck disable=SC2086 # the nsenter prefix is several words, or none
	host "$h" ${DP_NS[$path-$h]} "$@"
}

# MTU of the container interface of PATH on host 1 (asked over netlink: the host's /sys shows
# the host's own interfaces, not the container's).
link_mtu() {
	in_path "$1" 1 ip -o link show dev eth0 | sed -n 's/.* mtu \([0-9]*\) .*/\1/p'
}

dp_setup() {
	local h
	for h in 1 2; do
		# The same command as the seed: one subnet, a disjoint range per host, the default MTU.
		host "$h" podman network create -d geneve-ovs --internal --subnet 192.168.121.0/24 \
			--ip-range "192.168.121.$((h * 128 - 127))-192.168.121.$((h * 128 - 2))" \
			--opt peers=10.99.0.1,10.99.0.2 bench-dp >/dev/null
		host "$h" podman run -d --name bench-dp --net bench-dp --cap-add NET_RAW \
			localhost/busybox sleep 1000000 >/dev/null
		if option_available port_security; then
			host "$h" podman network create -d geneve-ovs --internal --subnet 192.168.122.0/24 \
				--ip-range "192.168.122.$((h * 128 - 127))-192.168.122.$((h * 128 - 2))" \
				--opt peers=10.99.0.1,10.99.0.2 --opt port_security=false bench-dpo >/dev/null
			host "$h" podman run -d --name bench-dpo --net bench-dpo --cap-add NET_RAW \
				localhost/busybox sleep 1000000 >/dev/null
		fi
		if ((OVN)); then
			ovn_network "$h" bench-dpn 192.168.123.0/24
			host "$h" podman run -d --name bench-dpn --net bench-dpn --cap-add NET_RAW \
				localhost/busybox sleep 1000000 >/dev/null
		fi
	done
	option_available port_security && DP_PATHS=(geneve seed underlay geneve_open)
	((OVN == 0)) || DP_PATHS+=(ovn)
	"$SEED" up 1 2
	"$SEED" check 1 2 || die "the seed topology does not carry traffic"
	local path
	for path in "${DP_PATHS[@]}"; do
		for h in 1 2; do dp_ends "$path" "$h"; done
	done
	# The overlay must carry traffic before it is measured.
	local try
	for try in $(seq 20); do
		in_path geneve 1 ping -c1 -W1 "${DP_IP[geneve-2]}" >/dev/null 2>&1 && break
		((try < 20)) || die "no traffic over the geneve-ovs network"
	done
	if ((OVN)); then
		for try in $(seq 60); do
			in_path ovn 1 ping -c1 -W1 "${DP_IP[ovn-2]}" >/dev/null 2>&1 && break
			((try < 60)) || die "no traffic over the OVN network"
		done
		meta mtu_ovn "$(link_mtu ovn)"
	fi
	# What makes the comparison fair: same MTU, same datapath on both overlays.
	meta mtu_geneve "$(link_mtu geneve)"
	meta mtu_seed "$(link_mtu seed)"
	meta datapath_geneve "$(host 1 ovs-vsctl get Bridge \
		"$(host 1 podman network inspect -f '{{.NetworkInterface}}' bench-dp)" datapath_type)"
	meta datapath_seed "$(host 1 ovs-vsctl get Bridge ovs_net1 datapath_type)"
	for path in "${DP_PATHS[@]}"; do
		in_path "$path" 2 iperf3 -s -D -p "${IPERF_PORT[$path]}" -I "/tmp/bench-iperf3-$path.pid"
	done
	sleep 0.5
}

dp_teardown() {
	local path
	for path in "${DP_PATHS[@]}"; do
		# shellcheck disable=SC2016 # expanded by the host's shell
		host 2 /bin/sh -c 'kill "$(cat "$1")"' sh "/tmp/bench-iperf3-$path.pid" || true
	done
	"$SEED" down 1 2
	local h
	for h in 1 2; do
		host "$h" podman rm -f -t 0 bench-dp >/dev/null
		host "$h" podman network rm -f bench-dp >/dev/null
		if [[ ${DP_PATHS[*]} == *geneve_open* ]]; then
			host "$h" podman rm -f -t 0 bench-dpo >/dev/null
			host "$h" podman network rm -f bench-dpo >/dev/null
		fi
		if ((OVN)); then
			host "$h" podman rm -f -t 0 bench-dpn >/dev/null
			host "$h" podman network rm -f bench-dpn >/dev/null
		fi
	done
}

# One iperf3 run from host 1 to host 2 over PATH: the receiver's rate, Mbit/s.
iperf_once() {
	local path=$1 json
	json=$(in_path "$path" 1 iperf3 -c "${DP_IP[$path-2]}" -p "${IPERF_PORT[$path]}" \
		-t "$IPERF_SECONDS" -O 1 -J) || die "iperf3 over $path failed"
	jq -r '.end.sum_received.bits_per_second / 1e6' <<<"$json"
}

# PING_COUNT round trips from host 1 to host 2 over PATH, one RTT in ms per line. A lost reply
# (ping then exits 1) is logged and the batch keeps the replies it got: one drop on a loaded
# machine must not end the run.
ping_batch() {
	local path=$1 out
	out=$(in_path "$path" 1 ping -n -c "$PING_COUNT" -i 0.02 -W 2 "${DP_IP[$path-2]}") ||
		log "ping over $path: $(grep -o '[0-9]* received' <<<"$out" || echo no) replies of $PING_COUNT"
	sed -n 's/.* time=\([0-9.]*\) ms$/\1/p' <<<"$out"
}

data_plane() {
	dp_setup
	meta iperf_seconds "$IPERF_SECONDS"
	local -a paths=("${DP_PATHS[@]}")
	local n=${#paths[@]} r k path v
	for ((r = 0; r < IPERF_REPS; r++)); do
		for ((k = 0; k < n; k++)); do
			path=${paths[(k + r) % n]}
			v=$(iperf_once "$path")
			printf 'tcp.%s_mbps\t%d\t%s\n' "$path" "$r" "$v" >>"$SAMPLES"
			log "iperf3 $path: $v Mbit/s"
		done
	done
	for ((r = 0; r < PING_BATCHES; r++)); do
		for ((k = 0; k < n; k++)); do
			path=${paths[(k + r) % n]}
			ping_batch "$path" | awk -v s="rtt.${path}_ms" -v r="$r" '{printf "%s\t%d\t%s\n", s, r, $1}' \
				>>"$SAMPLES"
		done
	done
	log "ping: $PING_BATCHES batches of $PING_COUNT per path"
	dp_teardown
}
