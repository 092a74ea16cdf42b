#!/bin/bash
# The classic two-host podman + Open vSwitch + GENEVE setup, replayed with the geneve-ovs
# plugin instead of the manual steps, on two simulated hosts of this machine (see README.md
# here): build the plugin, bring up two hosts, then on each
#   podman network create -d geneve-ovs --internal --subnet 192.168.120.0/24 \
#       --ip-range <this host's half> --opt peers=10.99.0.1,10.99.0.2 net1
# a busybox container on each host, ping both ways, busybox httpd serving /etc on host 1 and
# `wget -O - http://<ip>:8080/motd` from host 2. Each step prints the command it runs, then
# its output; `ovs-vsctl show` of host 1 shows what the plugin built. Everything is removed at
# the end, also on failure or Ctrl-C.
#
# Usage: contrib/lab/demo.sh [--plugin PATH] [--keep]
#   --plugin PATH  use this plugin binary instead of building one with cargo
#   --keep         leave the hosts up at the end (take them down with the command printed)
#
# Needs root on Debian 12 or 13; installs what it lacks (mmdebstrap, ethtool, iproute2, and gcc
# to link the plugin) with apt-get. Building the plugin needs cargo (Rust >= 1.88). The first
# run builds the hosts' root filesystem from a Debian mirror (about a minute); later runs take
# a few seconds.
#
# Environment: LAB_DIR (default /var/tmp/geneve-ovs-demo), LAB_CACHE, LAB_MIRROR as for lab.sh.
set -euo pipefail

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$SCRIPT_DIR/../.." && pwd)
LAB=$SCRIPT_DIR/lab.sh
export LAB_DIR=${LAB_DIR:-/var/tmp/geneve-ovs-demo}
unset LAB_PREFIX

NET=net1
SUBNET=192.168.120.0/24
RANGE1=192.168.120.1-192.168.120.126
RANGE2=192.168.120.129-192.168.120.254
PEERS=10.99.0.1,10.99.0.2
IMAGE=localhost/busybox
APT_PACKAGES=(mmdebstrap ethtool iproute2 util-linux ca-certificates)
# Only to build the plugin: cargo links with the C compiler driver.
BUILD_PACKAGES=(gcc libc6-dev)

if [[ -t 1 ]]; then
	BOLD=$'\e[1m' CMD=$'\e[36m' DIM=$'\e[2m' OFF=$'\e[0m'
else
	BOLD='' CMD='' DIM='' OFF=''
fi

step() { printf '\n%s==> %s%s\n' "$BOLD" "$*" "$OFF"; }
note() { printf '%s%s%s\n' "$DIM" "$*" "$OFF"; }
die() {
	printf 'demo: error: %s\n' "$*" >&2
	exit 1
}

# The command line as one would type it: words with spaces or shell characters quoted.
show_command() {
	local prompt=$1 word out=""
	shift
	for word in "$@"; do
		if [[ $word =~ ^[][A-Za-z0-9_./:=,@%+-]+$ ]]; then
			out+=" $word"
		else
			out+=" '${word//\'/\'\\\'\'}'"
		fi
	done
	printf '%s%s#%s%s\n' "$CMD" "$prompt" "$out" "$OFF"
}

# on H CMD...: show CMD, run it in host H, show its output indented. Fails the demo on error.
on() {
	local h=$1 out rc=0
	shift
	show_command "host$h" "$@"
	out=$("$LAB" exec "$h" "$@" 2>&1) || rc=$?
	if [[ -n $out ]]; then printf '%s\n' "$out" | sed 's/^/    /'; fi
	[[ $rc -eq 0 ]] || die "the command above failed (exit $rc)"
}

# quietly H CMD...: run in host H and print only stdout (for values the demo needs).
quietly() {
	local h=$1
	shift
	"$LAB" exec "$h" "$@"
}

PLUGIN=""
KEEP=0
while (($#)); do
	case $1 in
	--plugin)
		[[ $# -ge 2 ]] || die "--plugin needs a path"
		PLUGIN=$2
		shift 2
		;;
	--keep)
		KEEP=1
		shift
		;;
	-h | --help)
		sed -n '2,/^set -euo/p' "$0" | sed -e '$d' -e 's/^# \{0,1\}//'
		exit 0
		;;
	*) die "unknown argument: $1 (try --help)" ;;
	esac
done

[[ $(id -u) -eq 0 ]] || die "run as root (the hosts are network and mount namespaces)"
START=$(date +%s)

# ---------------------------------------------------------------------------------------------
step "What this machine needs"
[[ -n $PLUGIN ]] || APT_PACKAGES+=("${BUILD_PACKAGES[@]}")
missing=()
for p in "${APT_PACKAGES[@]}"; do
	if [[ $(dpkg-query -W -f='${Status}' "$p" 2>/dev/null) != "install ok installed" ]]; then
		missing+=("$p")
	fi
done
if ((${#missing[@]})); then
	command -v apt-get >/dev/null || die "missing ${missing[*]}, and no apt-get to install them"
	note "installing ${missing[*]} with apt-get"
	apt-get update -qq || note "apt-get update reported errors; trying anyway"
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
else
	note "all there: ${APT_PACKAGES[*]}"
fi

if [[ -z $PLUGIN ]]; then
	step "Building the plugin (cargo build --release)"
	if ! command -v cargo >/dev/null && [[ -f $HOME/.cargo/env ]]; then
		# shellcheck disable=SC1091
		. "$HOME/.cargo/env"
	fi
	if ! command -v cargo >/dev/null; then
		cat >&2 <<-'EOF'
			demo: cargo is not installed. The locked dependencies need Rust 1.88 or later, newer
			than Debian's own cargo (Debian 12 and 13): install it with rustup (https://rustup.rs),
			then run the demo again:
			  curl --proto '=https' --tlsv1.2 -sSf https://sh.rustup.rs | sh -s -- -y
			  . "$HOME/.cargo/env"
			Or pass a plugin binary built elsewhere: contrib/lab/demo.sh --plugin PATH
		EOF
		exit 1
	fi
	(cd "$REPO" && cargo build --release)
	PLUGIN=$REPO/target/release/geneve-ovs
fi
[[ -x $PLUGIN ]] || die "plugin binary $PLUGIN is not executable"

# ---------------------------------------------------------------------------------------------
cleanup() {
	local rc=$?
	trap - EXIT INT TERM
	if [[ $KEEP -eq 1 && $rc -eq 0 ]]; then
		step "The hosts stay up"
		note "run commands in them:  LAB_DIR=$LAB_DIR $LAB podman 1 ps"
		note "take them down:        LAB_DIR=$LAB_DIR $LAB down"
		exit 0
	fi
	step "Cleaning up"
	if "$LAB" down >/tmp/geneve-ovs-demo-down.$$ 2>&1; then
		note "containers, OVS, namespaces and mounts of the demo are gone"
	else
		cat /tmp/geneve-ovs-demo-down.$$ >&2
	fi
	rm -f /tmp/geneve-ovs-demo-down.$$
	rm -rf --one-file-system "$LAB_DIR"
	if [[ $rc -eq 0 ]]; then
		note "demo finished in $(($(date +%s) - START)) s"
	else
		printf 'demo: failed (exit %s)\n' "$rc" >&2
	fi
	exit "$rc"
}

step "Two simulated podman hosts (root fs, Open vSwitch, podman 5 each; underlay 10.99.0.0/24)"
# A demo killed outright may have left its hosts: start clean.
"$LAB" down >/dev/null 2>&1 || true
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
note "root filesystem: built once and cached (first run: about a minute; progress below)"
"$SCRIPT_DIR/rootfs.sh" >/dev/null
UP_LOG=$(mktemp /tmp/geneve-ovs-demo-up.XXXXXX)
if ! "$LAB" up 2 --plugin "$PLUGIN" >"$UP_LOG" 2>&1; then
	cat "$UP_LOG" >&2
	rm -f "$UP_LOG"
	die "lab.sh up failed"
fi
sed -n -e 's/^\[lab [0-9:]*\] \(lab up.*\|plugin .*\)/    \1/p' "$UP_LOG"
rm -f "$UP_LOG"
on 1 podman info --format '{{.Plugins.Network}}'

# ---------------------------------------------------------------------------------------------
step "The same network on both hosts: one subnet, a disjoint address range per host"
on 1 podman network create -d geneve-ovs --internal --subnet "$SUBNET" --ip-range "$RANGE1" \
	--opt "peers=$PEERS" "$NET"
on 2 podman network create -d geneve-ovs --internal --subnet "$SUBNET" --ip-range "$RANGE2" \
	--opt "peers=$PEERS" "$NET"
note "what the plugin resolved (the host's own address is dropped from peers):"
on 1 podman network inspect "$NET" --format '{{json .Options}}'
BRIDGE=$(quietly 1 podman network inspect "$NET" --format '{{.NetworkInterface}}')
note "the OVS bridge and its GENEVE tunnel exist already, before any container:"
on 1 ovs-vsctl list-ports "$BRIDGE"

step "A busybox container on each host"
on 1 podman run -d --name c1 --net "$NET" --cap-add NET_RAW "$IMAGE" sleep 1h
on 2 podman run -d --name c2 --net "$NET" --cap-add NET_RAW "$IMAGE" sleep 1h
on 1 podman exec c1 ip -4 -o addr show dev eth0
on 2 podman exec c2 ip -4 -o addr show dev eth0
IP_FORMAT="{{(index .NetworkSettings.Networks \"$NET\").IPAddress}}"
IP1=$(quietly 1 podman inspect --format "$IP_FORMAT" c1)
IP2=$(quietly 2 podman inspect --format "$IP_FORMAT" c2)

step "Ping across the hosts, both ways"
on 1 podman exec c1 ping -c 3 "$IP2"
on 2 podman exec c2 ping -c 3 "$IP1"

step "A web server on host 1 serving its /etc, and host 2 fetching the motd"
on 1 podman run -d --name web --net "$NET" "$IMAGE" httpd -f -p 8080 -h /etc
WEB=$(quietly 1 podman inspect --format "$IP_FORMAT" web)
on 1 podman inspect --format "$IP_FORMAT" web
# httpd listens within moments of starting; wait for it rather than race it.
for _ in $(seq 50); do
	if quietly 2 podman exec c2 wget -q -O /dev/null "http://$WEB:8080/motd" 2>/dev/null; then break; fi
	sleep 0.1
done
on 2 podman run --rm --net "$NET" "$IMAGE" wget -q -O - "http://$WEB:8080/motd"

step "What the plugin built on host 1"
on 1 ovs-vsctl show

step "Removing the containers (podman rm -f takes their OVS ports and veths with them)"
on 1 podman rm -f -t 0 c1 web
on 2 podman rm -f -t 0 c2
on 1 ovs-vsctl list-ports "$BRIDGE"
