#!/bin/bash
# Self-test of the lab, in a lab directory of its own that it always removes: N hosts (default 2)
# come up; podman runs a container; a podman bridge network works on host 1 (the container pings
# its gateway); the hand-made seed overlay connects a container on every host with every other
# (ping, and TCP with busybox httpd/wget); `down` leaves no namespace, mount or process behind.
# Usage: selftest.sh [N] [--plugin PATH]    Prints "N passed, N failed" at the end.
set -euo pipefail

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
LAB=$SCRIPT_DIR/lab.sh
N=2
if [[ ${1:-} =~ ^[0-9]+$ ]]; then
	N=$1
	shift
fi
LAB_DIR=$(mktemp -d /var/tmp/geneve-ovs-lab-selftest.XXXXXX)
export LAB_DIR
unset LAB_PREFIX
PASSED=0
FAILED=0

finish() {
	"$LAB" down >/dev/null 2>&1 || true
	rm -rf --one-file-system "$LAB_DIR"
}
trap finish EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

check() {
	local name=$1
	shift
	if "$@" >/tmp/lab-selftest.$$.out 2>&1; then
		PASSED=$((PASSED + 1))
		echo "ok   $name"
	else
		FAILED=$((FAILED + 1))
		echo "FAIL $name"
		sed 's/^/     /' /tmp/lab-selftest.$$.out
	fi
	rm -f /tmp/lab-selftest.$$.out
}

check "up $N" "$LAB" up "$N" "$@"
prefix=$("$LAB" env | sed -n 's/^LAB_PREFIX=//p')
check "podman run true" "$LAB" podman 1 run --rm localhost/busybox true
check "userspace datapath" sh -c "'$LAB' exec 1 ovs-vsctl get Open_vSwitch . datapath_types | grep -qw netdev"
check "bridge network" "$LAB" podman 1 network create selftest
# shellcheck disable=SC2016 # expanded in the container
check "container pings its gateway" "$LAB" podman 1 run --rm --net selftest --cap-add NET_RAW \
	localhost/busybox sh -c 'ping -c 2 -W 2 "$(ip route | awk "/default/ {print \$3}")"'
check "seed topology up" "$SCRIPT_DIR/seed-topology.sh" up
check "seed topology: pings across hosts" "$SCRIPT_DIR/seed-topology.sh" check
"$LAB" podman 1 exec -d seed-net1 httpd -p 8080 -h /var/www >/dev/null 2>&1 || true
ip1=$("$LAB" podman 1 inspect -f '{{(index .NetworkSettings.Networks "net1").IPAddress}}' seed-net1)
check "seed topology: TCP across hosts" "$LAB" podman 2 exec seed-net1 \
	sh -c "for i in 1 2 3 4 5; do wget -q -T 3 -O - http://$ip1:8080/index.html && exit 0; sleep 0.5; done; exit 1"
# Processes of the lab: everything in the hosts' network namespaces (OVS, conmon, aardvark-dns)
# and the containers' own processes. After down none may be left (zombies do not count).
lab_pids=()
for h in $(seq "$N"); do
	mapfile -t -O "${#lab_pids[@]}" lab_pids < <(ip netns pids "$prefix-h$h" 2>/dev/null)
	mapfile -t -O "${#lab_pids[@]}" lab_pids < <("$LAB" podman "$h" ps -q |
		xargs -r "$LAB" podman "$h" inspect -f '{{.State.Pid}}' 2>/dev/null)
done
alive() {
	local p state
	for p in "${lab_pids[@]}"; do
		state=$(awk '{print $3}' "/proc/$p/stat" 2>/dev/null) || continue
		[[ $state == Z ]] || echo "$p $(tr '\0' ' ' <"/proc/$p/cmdline")"
	done
}
echo "     (${#lab_pids[@]} lab processes before down)"
check "seed topology down" "$SCRIPT_DIR/seed-topology.sh" down
check "down" "$LAB" down
check "no namespace left" sh -c "! ip netns list | grep -q '^$prefix-'"
check "no mount left" sh -c "! grep -qF ' $LAB_DIR/' /proc/mounts"
check "no lab process left" test -z "$(alive)"

echo "$PASSED passed, $FAILED failed"
[[ $FAILED -eq 0 ]]
