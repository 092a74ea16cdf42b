# shellcheck shell=bash
# Shared helpers of bench.sh: logging, the samples and meta files, tools, build, the lab, the
# report. Sourced; expects REPO, LAB, BENCH_DIR, OUT, SAMPLES, META, PLUGIN_IN_HOST and
# DRIVER_IN_HOST from bench.sh.

log() { printf '[bench %s] %s\n' "$(date +%T)" "$*" >&2; }
die() {
	log "error: $*"
	exit 1
}

# meta KEY VALUE: one fact about the run, for the report's header.
meta() { printf '%s\t%s\n' "$1" "$2" >>"$META"; }

# host H CMD...: run CMD in lab host H.
host() { "$LAB" exec "$@"; }

# The driver inside host H, its samples appended to the run's samples.
driver() {
	local h=$1
	shift
	host "$h" "$DRIVER_IN_HOST" "$@" >>"$SAMPLES"
}

load_average() { cut -d' ' -f1-3 /proc/loadavg; }

# phase NAME: run function NAME, logging and recording how long it took.
phase() {
	local t=$SECONDS
	log "== $1"
	"$1"
	meta "duration_$1" $((SECONDS - t))
	log "== $1 done in $((SECONDS - t)) s"
}

need_tools() {
	local t
	for t in jq nsenter ip cargo; do
		command -v "$t" >/dev/null || die "$t is missing (apt-get install jq util-linux iproute2; rustup for cargo)"
	done
	if ! command -v gnuplot >/dev/null; then
		log "gnuplot is missing: apt-get install gnuplot-nox"
		DEBIAN_FRONTEND=noninteractive apt-get install -y -q gnuplot-nox >/dev/null 2>&1 ||
			{ apt-get update -q >/dev/null 2>&1 &&
				DEBIAN_FRONTEND=noninteractive apt-get install -y -q gnuplot-nox >/dev/null 2>&1; } ||
			log "warning: could not install gnuplot-nox; the PNG plot will be skipped"
	fi
}

# build [PLUGIN]: the driver always, the plugin unless a binary was given.
build() {
	local -a what=(--example bench_driver)
	if [[ -n $1 ]]; then
		PLUGIN=$(readlink -f "$1")
		[[ -x $PLUGIN ]] || die "plugin $1 is not an executable file"
	else
		what+=(--bin geneve-ovs)
		PLUGIN=$REPO/target/release/geneve-ovs
	fi
	log "cargo build --release ${what[*]}"
	(cd "$REPO" && cargo build --release --quiet "${what[@]}") || die "build failed"
	DRIVER=$REPO/target/release/examples/bench_driver
	meta plugin_version "$("$PLUGIN" --version | awk '{print $2}')"
	local commit
	commit=$(git -C "$REPO" rev-parse --short HEAD 2>/dev/null || echo unknown)
	if [[ -n $(git -C "$REPO" status --porcelain --untracked-files=no 2>/dev/null) ]]; then
		commit+="-dirty"
	fi
	meta commit "$commit"
}

machine_meta() {
	meta date "$(date -u '+%Y-%m-%d %H:%M UTC')"
	meta cpu "$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1)"
	meta cpus "$(nproc)"
	meta memory "$(awk '/^MemTotal/ {printf "%.0f GB", $2 / 1e6}' /proc/meminfo)"
	meta os "$(. /etc/os-release && echo "$PRETTY_NAME")"
	meta kernel "$(uname -r)"
	meta load_start "$(load_average)"
}

lab_up() {
	local -a hosts=(1 2) ovn=()
	if ((OVN)); then
		hosts=(1 2 3)
		ovn=(--ovn)
	fi
	meta hosts "${#hosts[@]}"
	"$LAB" up "${#hosts[@]}" "${ovn[@]}" --plugin "$PLUGIN"
	((OVN == 0)) || ovn_lab_meta
	local h
	for h in "${hosts[@]}"; do
		# shellcheck disable=SC2016 # expanded by the host's shell
		host "$h" /bin/sh -euc 'cat >"$1.new" && chmod 0755 "$1.new" && mv -f "$1.new" "$1"' \
			sh "$DRIVER_IN_HOST" <"$DRIVER"
	done
	if ((USERSPACE_TSO)); then
		for h in 1 2; do enable_userspace_tso "$h"; done
		wait_underlay
	fi
	meta ovs_tso "$(host 1 ovs-vsctl get Interface eth0 status:tx_tcp_seg_offload 2>/dev/null |
		grep -q true && echo on || echo off)"
	meta podman "$(host 1 podman version --format '{{.Client.Version}}')"
	meta netavark "$(host 1 /usr/lib/podman/netavark --version | awk '{print $2}')"
	meta ovs "$(host 1 ovs-vsctl --version | awk 'NR == 1 {print $NF}')"
}

# Restarts host H's ovs-vswitchd with userspace TSO enabled (it is read only at start), the
# way lab.sh starts it.
enable_userspace_tso() {
	local h=$1
	log "host $h: ovs-vswitchd with userspace-tso-enable=true"
	# shellcheck disable=SC2016 # expanded by the host's shell
	host "$h" /bin/sh -euc '
		ovs-vsctl set Open_vSwitch . other_config:userspace-tso-enable=true
		pid=$(cat /run/openvswitch/ovs-vswitchd.pid)
		ovs-appctl -t ovs-vswitchd exit
		while kill -0 "$pid" 2>/dev/null; do sleep 0.1; done
		ovs-vswitchd --disable-system --pidfile --detach -vconsole:off \
			--log-file=/var/log/openvswitch/ovs-vswitchd.log
	'
}

# Waits until host 1 reaches host 2 over the underlay.
wait_underlay() {
	local _
	for _ in $(seq 50); do
		host 1 ping -c1 -W1 10.99.0.2 >/dev/null 2>&1 && return 0
		sleep 0.2
	done
	die "no underlay between hosts 1 and 2"
}

lab_down() {
	local rc=$?
	log "taking the lab down"
	if "$LAB" down >/dev/null 2>&1; then
		# The directory is ours when bench.sh made it: only lab.sh's lock file is left in it.
		if [[ -z ${BENCH_LAB_DIR:-} ]]; then
			rm -f "$LAB_DIR/.lock"
			rmdir "$LAB_DIR" 2>/dev/null || log "warning: $LAB_DIR is not empty; left in place"
		fi
	else
		log "warning: lab.sh down failed (LAB_DIR=$LAB_DIR)"
	fi
	exit "$rc"
}

# PID of container C's first process in host H (its network namespace is the container's).
container_pid() { host "$1" podman inspect -f '{{.State.Pid}}' "$2"; }

report() {
	log "writing $OUT/results.md"
	"$DRIVER" report "$SAMPLES" "$META" "$OUT"
	if command -v gnuplot >/dev/null; then
		local sub
		sub=$(awk -F'\t' '$1 == "date" {d = $2} $1 == "ovs_tso" {t = $2}
			END {printf "%s, OVS userspace datapath, userspace TSO %s", d, t}' "$META")
		(cd "$OUT/plot" && gnuplot -e "out='$OUT/results.png'; sub='$sub'" "$BENCH_DIR/plot.gp") ||
			log "warning: gnuplot failed; no PNG"
	fi
}
