#!/bin/bash
# The geneve-ovs benchmark: control plane, data plane and scale, measured in the lab of
# simulated podman hosts (contrib/lab) side by side with what users would use instead (podman's
# bridge network, the hand-made seed topology, the bare underlay), in one run.
#
# Usage:
#   contrib/bench/bench.sh [--quick] [--ovn] [--out DIR] [--plugin PATH] [--userspace-tso] [--keep-lab]
#   contrib/bench/bench.sh --kernel [--quick] [--out DIR] [--plugin PATH] [--keep-lab]
#
#   --kernel       the data plane on OVS's kernel datapath instead, in the lab's QEMU guest:
#                  geneve-ovs, Docker's overlay data plane (bridge + VXLAN), the seed topology
#                  and the underlay side by side (contrib/bench/kernel.sh)
#   --quick        a smoke run (a few repetitions of everything, about 2 minutes)
#   --ovn          the OVN mode side by side with the mesh mode: 3 hosts with OVN's clustered
#                  databases (lab.sh up 3 --ovn), OVN networks (`--opt ovn=...`) measured in the
#                  same loops as the mesh's (setup, podman run, TCP, RTT, scale), and the time
#                  from a joining host's first container to it answering every other host
#                  (contrib/bench/ovn.sh)
#   --out DIR      where results.md, results.png and the raw samples go
#                  (default: bench-results/<UTC date-time> under the current directory)
#   --plugin PATH  the plugin binary to measure (default: cargo build --release of this tree)
#   --userspace-tso  run the lab's Open vSwitch with other_config:userspace-tso-enable=true
#                  (default: as the lab starts it, without; the results say which)
#   --keep-lab     leave the lab up afterwards (LAB_DIR is printed; `lab.sh down` removes it)
#
# Writes DIR/results.md (tables, targets met or missed, the machine), DIR/results.png,
# DIR/samples.tsv (every sample: series, repetition, value), DIR/meta.tsv and DIR/bench.log.
# Needs root, the lab's requirements (contrib/lab/README.md), jq, and gnuplot for the plot
# (installed with apt-get when missing; without it the PNG is skipped with a warning).
# Environment: LAB_CACHE as for lab.sh; BENCH_LAB_DIR (default: a fresh directory in /var/tmp).
set -euo pipefail

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$BENCH_DIR/../.." && pwd)
LAB=$REPO/contrib/lab/lab.sh
SEED=$REPO/contrib/lab/seed-topology.sh
PLUGIN_IN_HOST=/usr/libexec/netavark/geneve-ovs
DRIVER_IN_HOST=/usr/local/bin/geneve-ovs-bench-driver

# shellcheck source=contrib/bench/lib.sh
. "$BENCH_DIR/lib.sh"
# shellcheck source=contrib/bench/control.sh
. "$BENCH_DIR/control.sh"
# shellcheck source=contrib/bench/dataplane.sh
. "$BENCH_DIR/dataplane.sh"
# shellcheck source=contrib/bench/scale.sh
. "$BENCH_DIR/scale.sh"
# shellcheck source=contrib/bench/ovn.sh
. "$BENCH_DIR/ovn.sh"

usage() { sed -n '2,/^set -euo/p' "$0" | sed -e '$d' -e 's/^# \{0,1\}//'; }

# How much of everything: the full run (about 10 minutes on 2 cores) or a smoke run.
set_mode() {
	MODE=$1
	if [[ $MODE == full ]]; then
		CYCLES=100 CYCLE_CHUNKS=4 PODMAN_REPS=20
		IPERF_REPS=8 IPERF_SECONDS=5 PING_BATCHES=20 PING_COUNT=10
		SCALE_CONTAINERS=200 PEER_RUNS=10 NETWORKS=50 JOIN_RUNS=3
	else
		CYCLES=10 CYCLE_CHUNKS=2 PODMAN_REPS=3
		IPERF_REPS=2 IPERF_SECONDS=2 PING_BATCHES=2 PING_COUNT=10
		SCALE_CONTAINERS=20 PEER_RUNS=2 NETWORKS=5 JOIN_RUNS=1
	fi
}

main() {
	local arg
	for arg in "$@"; do
		if [[ $arg == --kernel ]]; then exec "$BENCH_DIR/kernel.sh" "$@"; fi
	done
	local out="" plugin="" keep=0
	USERSPACE_TSO=0
	OVN=0
	set_mode full
	while (($#)); do
		case $1 in
		--quick) set_mode quick ;;
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
		--userspace-tso) USERSPACE_TSO=1 ;;
		--ovn) OVN=1 ;;
		--keep-lab) keep=1 ;;
		-h | --help)
			usage
			exit 0
			;;
		*) die "unknown argument $1 (try --help)" ;;
		esac
		shift
	done
	[[ $(id -u) -eq 0 ]] || die "must run as root (the lab needs it)"
	out=${out:-bench-results/$(date -u +%Y%m%dT%H%M%SZ)}
	mkdir -p "$out"
	OUT=$(cd "$out" && pwd)
	SAMPLES=$OUT/samples.tsv
	META=$OUT/meta.tsv
	: >"$SAMPLES"
	: >"$META"
	exec > >(tee "$OUT/bench.log") 2>&1

	local start=$SECONDS
	need_tools
	build "$plugin"
	machine_meta
	meta mode "$MODE"

	export LAB_DIR=${BENCH_LAB_DIR:-$(mktemp -d /var/tmp/geneve-ovs-bench.XXXXXX)}
	if ((keep)); then
		trap 'log "lab left up: LAB_DIR=$LAB_DIR"' EXIT
	else
		trap lab_down EXIT
	fi
	trap 'exit 130' INT
	trap 'exit 143' TERM
	phase lab_up
	phase control_plane
	phase data_plane
	phase scale
	if ((OVN)); then phase ovn_join; fi
	meta load_end "$(load_average)"
	meta duration_s $((SECONDS - start))
	report
	log "done in $((SECONDS - start)) s: $OUT/results.md"
}

main "$@"
