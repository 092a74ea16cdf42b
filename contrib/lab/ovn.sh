# OVN control plane of the lab (`lab.sh up N --ovn [--ovn-ssl]`), sourced by lab.sh.
#
# Hosts 1..min(N,3) are the "central" hosts: each runs a member of the northbound (NB) and of the
# southbound (SB) database's Raft cluster and an ovn-northd (OVN's own lock in SB makes one of
# them active, the others standby). Every host runs ovn-controller, configured through its
# Open_vSwitch external_ids as a production host is (system-id, ovn-remote, ovn-encap-type,
# ovn-encap-ip, ovn-bridge-datapath-type=netdev); it builds br-int and the GENEVE tunnels to the
# other chassis by itself. Hosts added later (`lab.sh add-host`) run only ovn-controller: the
# joining hosts of the OVN mode.
#
# With --ovn-ssl every connection is SSL: a CA made with ovs-pki in $LAB_DIR/pki signs a
# certificate per host, installed in the host as $OVN_SSL_KEY, $OVN_SSL_CERT and $OVN_SSL_CA;
# the databases listen on pssl: (clients and Raft), northd uses the files on its command line,
# and ovn-controller (and any other client of the host, such as the plugin) finds them in the
# host's Open_vSwitch SSL table (`ovs-vsctl set-ssl`).
#
# Files of a host: databases in /etc/ovn (they persist across `lab.sh reboot`, as a disk does),
# sockets, pidfiles and control sockets in /run/ovn, logs in /var/log/ovn.

OVN_NB_PORT=6641
OVN_SB_PORT=6642
OVN_NB_RAFT_PORT=6643
OVN_SB_RAFT_PORT=6644
OVN_MAX_CENTRAL=3
OVN_SSL_KEY=/etc/ovn/ovn-privkey.pem
OVN_SSL_CERT=/etc/ovn/ovn-cert.pem
OVN_SSL_CA=/etc/ovn/cacert.pem
# How long a cluster may take to elect a leader, or a chassis to register.
OVN_WAIT_S=60

ovn_enabled() { [[ -f $STATE/ovn ]]; }
ovn_central_count() { cat "$STATE/ovn"; }
ovn_proto() { if [[ -f $STATE/ovn-ssl ]]; then echo ssl; else echo tcp; fi; }
ovn_is_central() { (($1 <= $(ovn_central_count))); }

# The remotes of one database as OVSDB clients take them: "tcp:10.99.0.1:6641,tcp:10.99.0.2:6641".
ovn_remotes() {
	local port=$1 proto h out=""
	proto=$(ovn_proto)
	for h in $(seq "$(ovn_central_count)"); do out+="${out:+,}$proto:10.99.0.$h:$port"; done
	printf '%s' "$out"
}

# SSL arguments for the daemons and OVN's command-line clients of a host (none over TCP).
ovn_ssl_args() {
	[[ $(ovn_proto) == ssl ]] || return 0
	printf '%s\n' "--private-key=$OVN_SSL_KEY" "--certificate=$OVN_SSL_CERT" "--ca-cert=$OVN_SSL_CA"
}

# Marks the lab as an OVN lab with `central` database members; makes the CA for SSL.
ovn_init() {
	local central=$1 ssl=$2
	printf '%s\n' "$central" >"$STATE/ovn"
	if ((ssl)); then
		touch "$STATE/ovn-ssl"
		log "OVN: certificate authority (ovs-pki) in $LAB_DIR/pki"
		ovs-pki --dir="$LAB_DIR/pki" --force init >/dev/null
	fi
}

# A key and certificate for host H signed by the lab's CA, installed in the host with the CA's
# certificate, and recorded in the host's Open_vSwitch SSL table.
ovn_install_cert() {
	local h=$1 work="$LAB_DIR/pki/hosts"
	mkdir -p "$work"
	if [[ ! -f $work/h$h-cert.pem ]]; then
		(cd "$work" && ovs-pki --dir="$LAB_DIR/pki" --force req+sign "h$h" switch >/dev/null)
	fi
	host_run "$h" mkdir -p /etc/ovn
	local src dst
	for pair in "h$h-privkey.pem:$OVN_SSL_KEY" "h$h-cert.pem:$OVN_SSL_CERT" \
		"../switchca/cacert.pem:$OVN_SSL_CA"; do
		src=$work/${pair%%:*}
		dst=${pair#*:}
		# shellcheck disable=SC2016 # expanded by the host's shell
		host_run "$h" /bin/sh -euc 'umask 077; cat >"$1"' sh "$dst" <"$src"
	done
	host_run "$h" ovs-vsctl set-ssl "$OVN_SSL_KEY" "$OVN_SSL_CERT" "$OVN_SSL_CA"
}

# Starts host H's member of database DB (nb or sb), creating or joining the cluster the first
# time: host 1 creates it, the others join through host 1.
ovn_start_db() {
	local h=$1 db=$2 schema name port raft proto
	case $db in
	nb) schema=ovn-nb name=OVN_Northbound port=$OVN_NB_PORT raft=$OVN_NB_RAFT_PORT ;;
	sb) schema=ovn-sb name=OVN_Southbound port=$OVN_SB_PORT raft=$OVN_SB_RAFT_PORT ;;
	esac
	proto=$(ovn_proto)
	local -a ssl
	mapfile -t ssl < <(ovn_ssl_args)
	# shellcheck disable=SC2016 # expanded by the host's shell
	host_run "$h" /bin/sh -euc '
		h=$1 db=$2 schema=$3 name=$4 port=$5 raft=$6 proto=$7
		shift 7
		file=/etc/ovn/ovn${db}_db.db
		mkdir -p /etc/ovn /run/ovn /var/log/ovn
		if [ ! -f "$file" ]; then
			if [ "$h" = 1 ]; then
				ovsdb-tool -vconsole:off create-cluster "$file" "/usr/share/ovn/$schema.ovsschema" \
					"$proto:10.99.0.$h:$raft"
			else
				ovsdb-tool join-cluster "$file" "$name" "$proto:10.99.0.$h:$raft" \
					"$proto:10.99.0.1:$raft"
			fi
		fi
		ovsdb-server "$file" --detach --no-chdir -vconsole:off \
			--pidfile="/run/ovn/ovn${db}_db.pid" --unixctl="/run/ovn/ovn${db}_db.ctl" \
			--log-file="/var/log/ovn/ovsdb-server-$db.log" \
			--remote="punix:/run/ovn/ovn${db}_db.sock" --remote="p$proto:$port:10.99.0.$h" "$@"
	' sh "$h" "$db" "$schema" "$name" "$port" "$raft" "$proto" "${ssl[@]}"
}

# The Raft role of host H's member of DB ("leader", "follower", "candidate"), or nothing.
ovn_db_role() {
	local h=$1 db=$2 name
	[[ $db == nb ]] && name=OVN_Northbound || name=OVN_Southbound
	host_run "$h" ovs-appctl -t "/run/ovn/ovn${db}_db.ctl" cluster/status "$name" 2>/dev/null |
		sed -n 's/^Role: //p'
}

# The central host whose member of DB is the Raft leader (empty when there is none).
ovn_leader() {
	local db=$1 h
	for h in $(seq "$(ovn_central_count)"); do
		if [[ $(ovn_db_role "$h" "$db") == leader ]]; then
			printf '%s\n' "$h"
			return 0
		fi
	done
}

ovn_wait_leader() {
	local db n
	for db in nb sb; do
		for n in $(seq $((OVN_WAIT_S * 10))); do
			[[ -z $(ovn_leader "$db") ]] || continue 2
			sleep 0.1
		done
		die "OVN: the ${db^^} cluster elected no leader within ${OVN_WAIT_S} s"
	done
}

ovn_start_northd() {
	local h=$1
	local -a ssl
	mapfile -t ssl < <(ovn_ssl_args)
	host_run "$h" ovn-northd --detach --no-chdir -vconsole:off \
		--pidfile=/run/ovn/ovn-northd.pid --unixctl=/run/ovn/ovn-northd.ctl \
		--log-file=/var/log/ovn/ovn-northd.log \
		--ovnnb-db="$(ovn_remotes $OVN_NB_PORT)" --ovnsb-db="$(ovn_remotes $OVN_SB_PORT)" "${ssl[@]}"
}

# ovn-controller of host H, configured as a production host's is: through external_ids of its
# Open_vSwitch row (and its SSL table with --ovn-ssl). Under --monitor, which restarts it when
# it dies, as a host's service manager does (Debian's ovn-controller.service: Restart=on-failure).
# It does die: OVN 25.03's ovn-controller aborts ("assertion row->new_datum != NULL failed in
# ovsdb_idl_txn_write__") when an interface it is writing to is deleted under it, as the
# plugin's setup after a reboot deletes the port left in OVS's database before the reboot.
ovn_start_controller() {
	local h=$1
	host_run "$h" mkdir -p /run/ovn /var/log/ovn
	host_run "$h" ovs-vsctl set Open_vSwitch . "external_ids:system-id=lab-h$h" \
		"external_ids:ovn-remote=$(ovn_remotes $OVN_SB_PORT)" \
		external_ids:ovn-encap-type=geneve "external_ids:ovn-encap-ip=10.99.0.$h" \
		"external_ids:ovn-bridge-datapath-type=$LAB_DATAPATH"
	host_run "$h" ovn-controller unix:/run/openvswitch/db.sock --detach --monitor --no-chdir -vconsole:off \
		--pidfile=/run/ovn/ovn-controller.pid --unixctl=/run/ovn/ovn-controller.ctl \
		--log-file=/var/log/ovn/ovn-controller.log
}

# Waits until host H's chassis is in SB and its br-int exists.
ovn_wait_chassis() {
	local h=$1 n
	local -a ssl
	mapfile -t ssl < <(ovn_ssl_args)
	for n in $(seq $((OVN_WAIT_S * 10))); do
		if host_run "$h" ovs-vsctl br-exists br-int &&
			host_run "$h" ovn-sbctl --timeout=5 "${ssl[@]}" --db="$(ovn_remotes $OVN_SB_PORT)" \
				--bare --columns=name find Chassis "name=lab-h$h" 2>/dev/null | grep -qx "lab-h$h"; then
			return 0
		fi
		sleep 0.1
	done
	die "OVN: host $h's chassis lab-h$h did not register in SB within ${OVN_WAIT_S} s (see /var/log/ovn/ovn-controller.log in the host)"
}

# The control plane on hosts FIRST..LAST of a lab whose OVS is running: the central hosts'
# databases (all members started before waiting, as a cluster needs a majority) and northds,
# then every host's ovn-controller.
ovn_up_hosts() {
	local first=$1 last=$2 h
	local -a central=()
	for h in $(seq "$first" "$last"); do
		if [[ $(ovn_proto) == ssl ]]; then ovn_install_cert "$h"; fi
		if ovn_is_central "$h"; then central+=("$h"); fi
	done
	if ((${#central[@]})); then
		for h in "${central[@]}"; do
			log "host $h: OVN NB and SB cluster members ($(ovn_proto))"
			ovn_start_db "$h" nb
			ovn_start_db "$h" sb
		done
		ovn_wait_leader
		for h in "${central[@]}"; do ovn_start_northd "$h"; done
	fi
	for h in $(seq "$first" "$last"); do
		log "host $h: ovn-controller"
		ovn_start_controller "$h"
	done
	for h in $(seq "$first" "$last"); do ovn_wait_chassis "$h"; done
}

# After a boot of host H: its daemons start again from their files, as their services would.
ovn_boot_host() {
	local h=$1
	if ovn_is_central "$h"; then
		ovn_start_db "$h" nb
		ovn_start_db "$h" sb
		ovn_start_northd "$h"
	fi
	ovn_start_controller "$h"
}

ovn_env() {
	printf 'LAB_OVN=1\nLAB_OVN_CENTRAL=%q\nLAB_OVN_NB=%q\nLAB_OVN_SB=%q\n' "$(ovn_central_count)" \
		"$(ovn_remotes $OVN_NB_PORT)" "$(ovn_remotes $OVN_SB_PORT)"
	if [[ $(ovn_proto) == ssl ]]; then
		printf 'LAB_OVN_SSL=1\nLAB_OVN_SSL_KEY=%q\nLAB_OVN_SSL_CERT=%q\nLAB_OVN_SSL_CA=%q\n' \
			"$OVN_SSL_KEY" "$OVN_SSL_CERT" "$OVN_SSL_CA"
	else
		printf 'LAB_OVN_SSL=0\n'
	fi
}
