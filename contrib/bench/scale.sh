# shellcheck shell=bash
# Scale, on lab host 1, the plugin driven directly: setup time as one network goes from 0 to
# SCALE_CONTAINERS containers (and, for reference, `ovs-vsctl add-port` alone as a bridge goes
# from 0 to as many ports); create time with 1, 8, 32, 64 and 256 peers (10.99.0.2 onwards:
# past 10.99.0.255 they have no route in the lab host, so their tunnels reach nothing); NETWORKS
# networks with one container each.

scale() {
	# With duplicate-address detection, every setup also listens for answers for about the same
	# time, which would hide how the rest grows. The scale runs turn it off when it exists.
	local net=bench-int
	local -a opts=()
	if ((DAD)); then
		net=bench-dadoff
		opts=(dad=false)
		meta scale_options "\`dad=false\`"
	else
		meta scale_options "default options"
	fi
	driver 1 fill "$PLUGIN_IN_HOST" "/etc/containers/networks/$net.json" "$SCALE_CONTAINERS"
	log "setup of $SCALE_CONTAINERS containers on one network"
	if ((OVN)); then
		driver 1 fill "$PLUGIN_IN_HOST" /etc/containers/networks/bench-ovn.json \
			"$SCALE_CONTAINERS" ovn-scale
		log "setup of $SCALE_CONTAINERS containers on one OVN network"
	fi
	# The same growth on Open vSwitch alone (silent veths added with ovs-vsctl), for reference.
	driver 1 ovs-ports "/etc/containers/networks/$net.json" "$SCALE_CONTAINERS"
	log "ovs-vsctl add-port of $SCALE_CONTAINERS silent veths, for reference"
	driver 1 create-peers "$PLUGIN_IN_HOST" "$PEER_RUNS" 10.99.0.2 1,8,32,64,256
	log "create with 1, 8, 32, 64, 256 peers, $PEER_RUNS runs"
	driver 1 networks "$PLUGIN_IN_HOST" "$NETWORKS" 10.99.0.2 "${opts[@]}"
	log "$NETWORKS networks"
}
