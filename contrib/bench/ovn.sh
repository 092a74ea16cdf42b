# shellcheck shell=bash
# The OVN mode (bench.sh --ovn): the lab's OVN facts for the report, the OVN networks the other
# phases measure beside the mesh's, and the joining host: a host added to the running lab
# (`lab.sh add-host`, only ovn-controller), which creates the network and starts its first
# container; timed from `podman run` until that container is answered by a container on every
# other host. Nothing is run on the other hosts meanwhile. JOIN_RUNS hosts join, one at a time.

# The NB remotes of the lab, as the plugin's `ovn` option takes them.
OVN_NB=""

ovn_lab_meta() {
	OVN_NB=$("$LAB" env | sed -n 's/^LAB_OVN_NB=//p' | tr -d '\\')
	[[ -n $OVN_NB ]] || die "the lab has no OVN (lab.sh env gives no LAB_OVN_NB)"
	meta ovn_nb "$OVN_NB"
	meta ovn "$(host 1 ovn-controller --version | awk 'NR == 1 {print $NF}')"
	meta ovn_central "$("$LAB" env | sed -n 's/^LAB_OVN_CENTRAL=//p')"
}

# ovn_network H NAME SUBNET: the OVN network NAME on host H, with host H's eighth of SUBNET (a
# /24) as its range: hosts 1-8 never lease the same address.
ovn_network() {
	local h=$1 name=$2 subnet=$3 base first
	base=${subnet%.0/24}
	((h <= 8)) || die "ovn_network: host $h has no eighth of $subnet"
	first=$(((h - 1) * 32 + 1))
	host "$h" podman network create -d geneve-ovs --internal --subnet "$subnet" \
		--ip-range "$base.$first-$base.$((first + 29))" --opt "ovn=$OVN_NB" "$name" >/dev/null
}

# Milliseconds since the epoch.
now_ms() { echo $(($(date +%s%N) / 1000000)); }

ovn_join() {
	local h ip
	local -a targets=()
	for h in 1 2 3; do
		ovn_network "$h" bench-join 192.168.124.0/24
		host "$h" podman run -d --name bench-join --net bench-join --cap-add NET_RAW \
			localhost/busybox sleep 1000000 >/dev/null
		ip=$(host "$h" podman inspect \
			-f '{{(index .NetworkSettings.Networks "bench-join").IPAddress}}' bench-join)
		targets+=("$ip")
	done
	local r t0 t1 ok n
	for ((r = 0; r < JOIN_RUNS; r++)); do
		"$LAB" add-host
		h=$("$LAB" env | sed -n 's/^LAB_HOSTS=//p')
		ovn_network "$h" bench-join 192.168.124.0/24
		t0=$(now_ms)
		host "$h" podman run -d --name bench-join --net bench-join --cap-add NET_RAW \
			localhost/busybox sleep 1000000 >/dev/null
		# Every other host's container answers; each is pinged until it does (1 s per try).
		for ip in "${targets[@]}"; do
			ok=0
			for n in $(seq 60); do
				if host "$h" podman exec bench-join ping -c1 -W1 "$ip" >/dev/null 2>&1; then
					ok=1
					break
				fi
			done
			((ok)) || die "joining host $h: no answer from $ip within 60 tries"
		done
		t1=$(now_ms)
		printf 'ovn.join_ms\t%d\t%d\n' "$r" $((t1 - t0)) >>"$SAMPLES"
		log "joining host $h answered by hosts 1-3 $((t1 - t0)) ms after podman run"
		targets+=("$(host "$h" podman inspect \
			-f '{{(index .NetworkSettings.Networks "bench-join").IPAddress}}' bench-join)")
	done
}
