# shellcheck shell=bash
# Control plane: the plugin's setup and teardown driven directly (wall time of the plugin process,
# peak RSS), and `podman run --rm --net X busybox true` end to end, geneve-ovs networks against
# podman bridge networks on the same host, alternating. With and without duplicate-address
# detection when the plugin has the `dad` option, and without port security (`port_security`)
# when it has that one: the default networks have it on. With --ovn, an OVN network
# (`--opt ovn=`, default options) in the same loops.

# option_available NAME: whether the plugin in host 1 accepts boolean option NAME: asked of the
# binary itself (a `create` with NAME=false of a network that is then removed), so the answer
# always matches what is measured.
option_available() {
	local probe
	probe=$(jq -nc --arg o "$1" '{name: "bench-opt-probe", id: ("d" * 64), driver: "geneve-ovs",
		subnets: [{subnet: "10.128.255.0/24"}], ipv6_enabled: false, internal: true,
		dns_enabled: false, options: {($o): "false"}}')
	local answer
	answer=$(printf '%s' "$probe" | host 1 "$PLUGIN_IN_HOST" create 2>/dev/null) || return 1
	host 1 ovs-vsctl --if-exists del-br "$(jq -r '.network_interface' <<<"$answer")"
	jq -e --arg o "$1" '.options[$o]' <<<"$answer" >/dev/null
}

dad_available() { option_available dad; }

# Networks on host 1: name, then podman network create arguments.
control_networks() {
	local peers=--opt=peers=10.99.0.1,10.99.0.2
	printf '%s\n' \
		"bench-int -d geneve-ovs --internal --subnet 10.123.0.0/16 $peers" \
		"bench-nat -d geneve-ovs --subnet 10.126.0.0/24 $peers" \
		"bench-bint --internal --subnet 10.127.1.0/24" \
		"bench-bnat --subnet 10.127.2.0/24"
	if ((DAD)); then
		printf '%s\n' \
			"bench-dadon -d geneve-ovs --internal --subnet 10.128.1.0/24 $peers --opt=dad=true" \
			"bench-dadoff -d geneve-ovs --internal --subnet 10.128.2.0/24 $peers --opt=dad=false" \
			"bench-dad50 -d geneve-ovs --internal --subnet 10.128.4.0/24 $peers --opt=dad_timeout_ms=50"
	fi
	if ((PORT_SECURITY)); then
		printf '%s\n' \
			"bench-psoff -d geneve-ovs --internal --subnet 10.128.3.0/24 $peers --opt=port_security=false"
	fi
	if ((OVN)); then
		printf '%s\n' "bench-ovn -d geneve-ovs --internal --subnet 10.129.0.0/16 --opt=ovn=$OVN_NB"
	fi
}

control_plane() {
	PORT_SECURITY=0
	option_available port_security && PORT_SECURITY=1
	DAD=0
	if dad_available; then
		DAD=1
		meta dad "measured: networks with \`dad=true\` and \`dad=false\` side by side"
	else
		meta dad "not available: the plugin does not accept the \`dad\` option"
	fi
	local name args
	while read -r name args; do
		# shellcheck disable=SC2086 # one word per argument
		host 1 podman network create $args "$name" >/dev/null
	done < <(control_networks)
	if ((DAD)); then
		# What a network gets without the options: create writes the resolved values back.
		meta dad_defaults "$(host 1 podman network inspect bench-int |
			jq -r '.[0].options | "`dad=\(.dad)`, `dad_timeout_ms=\(.dad_timeout_ms)`"')"
	else
		meta dad_defaults "none"
	fi

	# The plugin alone: chunks of each configuration in turn, so drift spreads over all.
	local -a labels=(internal:bench-int nat:bench-nat)
	# dad-50: a constant 50 ms window (the default before windows were derived from the
	# measured round trips), side by side with the default.
	((DAD)) && labels+=(dad-off:bench-dadoff dad-on:bench-dadon dad-50:bench-dad50)
	((PORT_SECURITY)) && labels+=(ps-off:bench-psoff)
	((OVN)) && labels+=(ovn:bench-ovn)
	local per=$((CYCLES / CYCLE_CHUNKS)) c l
	for ((c = 0; c < CYCLE_CHUNKS; c++)); do
		for l in "${labels[@]}"; do
			driver 1 cycle "$PLUGIN_IN_HOST" "/etc/containers/networks/${l#*:}.json" "$per" \
				"${l%%:*}" $((c * per))
		done
	done
	log "setup/teardown: $((per * CYCLE_CHUNKS)) runs of ${#labels[@]} configurations"
	# The flow change alone, the two ways side by side: ovs-ofctl (as before) and in-process.
	driver 1 flows "$CYCLES"
	log "port flows: $CYCLES installs and deletes by ovs-ofctl and in-process"

	local -a runs=(geneve-internal:bench-int bridge-internal:bench-bint
		geneve-nat:bench-nat bridge-nat:bench-bnat)
	((DAD)) && runs+=(geneve-dad-off:bench-dadoff geneve-dad-on:bench-dadon)
	((PORT_SECURITY)) && runs+=(geneve-ps-off:bench-psoff)
	((OVN)) && runs+=(geneve-ovn:bench-ovn)
	# shellcheck disable=SC2016 # expanded by the host's shell
	host 1 /bin/bash -euc '
		reps=$1
		shift
		n=$#
		run() {
			podman run --rm --net "$1" localhost/busybox true >/dev/null
		}
		for cfg in "$@"; do run "${cfg#*:}"; done    # warm-up, untimed
		for ((r = 0; r < reps; r++)); do
			# Rotate the order every repetition: no configuration always runs first.
			for ((k = 0; k < n; k++)); do
				i=$(((k + r) % n + 1))
				cfg=${!i}
				t0=$EPOCHREALTIME
				run "${cfg#*:}"
				t1=$EPOCHREALTIME
				us=$((10#${t1/./} - 10#${t0/./}))
				printf "podman.%s_ms\t%d\t%d.%03d\n" "${cfg%%:*}" "$r" $((us / 1000)) $((us % 1000))
			done
		done
	' sh "$PODMAN_REPS" "${runs[@]}" >>"$SAMPLES"
	log "podman run: $PODMAN_REPS repetitions of ${#runs[@]} configurations"

	while read -r name _; do
		host 1 podman network rm -f "$name" >/dev/null
	done < <(control_networks | grep -Ev '^bench-(int|dadoff|ovn) ')
}
