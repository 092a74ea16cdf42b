# shellcheck shell=bash
# The lab's kernel-datapath mode, sourced by lab.sh: one QEMU guest (software emulation, TCG:
# nested KVM does not run everywhere) with Debian's kernel and its `openvswitch` module, in which
# lab.sh itself runs the lab's hosts with OVS's kernel datapath. The verbs of lab.sh on this
# machine are forwarded to lab.sh in the guest, so tests and people use the same verbs in both
# modes.
#
# The command channel is a 9p share ($LAB_DIR/vm/share, /lab/share in the guest): a request is
# a directory with the command, its environment and its standard input, renamed into place when
# complete; the guest's agent (vm-agent.sh) runs it and writes stdout, stderr and finally the
# exit status back into that directory. No network between the machine and the guest, no port,
# nothing to authenticate; concurrent requests are independent directories.
#
# State: $STATE/mode holds "kernel"; $LAB_DIR/vm/qemu.pid the QEMU process this lab started
# (the only one `down` kills, after checking that its command line names this lab's share).

VM_DIR=$LAB_DIR/vm
VM_SHARE=$VM_DIR/share
# Inside the guest: where lab.sh keeps the lab (a tmpfs) and where the share is mounted.
GUEST_LAB_DIR=/var/tmp/geneve-ovs-lab
GUEST_SHARE=/lab/share
# Guest size: 2 vCPUs (multi-threaded TCG), RAM for the root overlay, the hosts' upper layers
# and their containers, all in tmpfs.
VM_CPUS=${LAB_VM_CPUS:-2}
VM_MEM_MB=${LAB_VM_MEM_MB:-3072}
# Bounds: boot to the agent's ready file; any forwarded command (up has its own).
VM_BOOT_TIMEOUT=${LAB_VM_BOOT_TIMEOUT:-300}
VM_CALL_TIMEOUT=${LAB_VM_TIMEOUT:-900}

is_kernel_mode() { [[ -f $STATE/mode && $(cat "$STATE/mode") == kernel ]]; }

vm_pid() { cat "$VM_DIR/qemu.pid" 2>/dev/null || true; }

# Whether PID is the QEMU of this lab (a pid alone may have been reused).
vm_pid_is_ours() {
	local pid=$1
	[[ -n $pid && -r /proc/$pid/cmdline ]] || return 1
	local cmdline
	# Read first: with pipefail, grep -q closing a pipe early would fail the check.
	cmdline=$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null) || return 1
	[[ $cmdline == *"path=$VM_SHARE,"* ]]
}

vm_alive() { vm_pid_is_ours "$(vm_pid)"; }

vm_console_tail() {
	[[ -f $VM_DIR/console.log ]] && tail -n "${1:-15}" "$VM_DIR/console.log" | sed 's/^/[guest] /' >&2
	return 0
}

# Removes a request: renamed first to a dot name the agent never looks at, so that it can never
# see a half-deleted request (and claim it again).
vm_forget() {
	local done=${1%/*}/.done-${1##*/}
	mv -T "$1" "$done" 2>/dev/null && rm -rf "$done" 2>/dev/null
	return 0
}

# Runs ARGV in the guest (as root, in its root namespace) and exits with its status; its stdout
# and stderr become ours (stderr as it comes, for progress). TIMEOUT bounds the command in the
# guest (killed there) and the wait here.
#   vm_call TIMEOUT ARGV...
vm_call() {
	local tmo=$1
	shift
	vm_alive || die "the lab's guest is not running (see $VM_DIR/console.log; run 'lab.sh down')"
	local id tmp req
	id=$(date +%s%N)-$$-$RANDOM
	tmp=$VM_SHARE/req/.$id
	req=$VM_SHARE/req/$id
	mkdir -p "$tmp"
	printf '%s\0' "$@" >"$tmp/argv"
	printf '%s\n' "$tmo" >"$tmp/timeout"
	local name
	: >"$tmp/env"
	for name in TERM RUST_LOG RUST_BACKTRACE ${LAB_PASS_ENV:-} $(compgen -e | grep '^GENEVE_OVS_' || true); do
		if [[ -n ${!name+x} ]]; then printf '%s=%s\0' "$name" "${!name}" >>"$tmp/env"; fi
	done
	if [[ -n ${LAB_PASS_ENV:-} ]]; then printf 'LAB_PASS_ENV=%s\0' "$LAB_PASS_ENV" >>"$tmp/env"; fi
	# Standard input only when it is data (a file or a pipe), never a terminal.
	if [[ -f /dev/stdin || -p /dev/stdin ]]; then cat >"$tmp/stdin"; fi
	mv -T "$tmp" "$req"
	local deadline=$((SECONDS + tmo + 10)) off=0 size n=0
	while [[ ! -f $req/rc ]]; do
		if [[ -f $req/stderr ]]; then
			size=$(stat -c %s "$req/stderr")
			if ((size > off)); then
				tail -c +$((off + 1)) "$req/stderr" | head -c $((size - off)) >&2
				off=$size
			fi
		fi
		if ((SECONDS > deadline)); then
			vm_forget "$req"
			log "guest command timed out after ${tmo} s: $*"
			return 124
		fi
		n=$((n + 1))
		if ((n % 50 == 0)) && ! vm_alive; then
			vm_forget "$req"
			vm_console_tail
			die "the guest died while running: $*"
		fi
		sleep 0.02
	done
	[[ -f $req/stderr ]] && tail -c +$((off + 1)) "$req/stderr" >&2
	[[ -f $req/stdout ]] && cat "$req/stdout"
	local rc
	rc=$(cat "$req/rc")
	vm_forget "$req"
	return "$rc"
}

# lab.sh in the guest, on the guest's lab.
vm_lab() {
	local tmo=$1
	shift
	vm_call "$tmo" env LAB_DIR="$GUEST_LAB_DIR" LAB_PREFIX=lab LAB_DATAPATH=system \
		LAB_ROOTFS=/lab/rootfs /bin/bash "$GUEST_SHARE/lab/lab.sh" "$@"
}

# `lab.sh exec H CMD...` in the guest without starting lab.sh there (a process start costs a
# lot under emulation): the same namespaces and the same clean environment as host_run.
vm_host_exec() {
	local h=$1
	shift
	local -a envs=("PATH=$HOST_PATH" "HOME=/root" "LANG=C.UTF-8" "USER=root")
	local name
	for name in TERM RUST_LOG RUST_BACKTRACE ${LAB_PASS_ENV:-} $(compgen -e | grep '^GENEVE_OVS_' || true); do
		if [[ -n ${!name+x} ]]; then envs+=("$name=${!name}"); fi
	done
	vm_call "$VM_CALL_TIMEOUT" nsenter --net="/run/netns/lab-h$h" \
		--mount="$GUEST_LAB_DIR/ns/h$h.mnt" -- /usr/bin/env -i "${envs[@]}" "$@"
}

# Copies the scripts the guest runs into the share (fresh on every up: the guest image holds
# none of them, so a change of lab.sh needs no image rebuild).
vm_copy_scripts() {
	mkdir -p "$VM_SHARE/lab"
	cp "$SCRIPT_DIR/lab.sh" "$SCRIPT_DIR/vm.sh" "$SCRIPT_DIR/ovn.sh" "$SCRIPT_DIR/seed-topology.sh" "$VM_SHARE/lab/"
	cp "$SCRIPT_DIR/vm-agent.sh" "$VM_SHARE/vm-agent.sh"
	if [[ -d $SCRIPT_DIR/../bench ]]; then
		rm -rf "$VM_SHARE/bench"
		cp -r "$SCRIPT_DIR/../bench" "$VM_SHARE/bench"
	fi
}

vm_boot() {
	command -v qemu-system-x86_64 >/dev/null ||
		die "qemu-system-x86_64 is missing: apt-get install qemu-system-x86 (the kernel mode needs it)"
	local image
	image=$("$SCRIPT_DIR/vm-image.sh") || die "building the guest image failed"
	[[ -f $image/.complete ]] || die "vm-image.sh gave no complete build"
	printf '%s\n' "$image" >"$STATE/vm-image"
	mkdir -p "$VM_SHARE/req"
	vm_copy_scripts
	log "booting the guest ($VM_CPUS vCPUs, $VM_MEM_MB MiB, software emulation) from $image"
	# Nested KVM hangs on some machines and is not needed: TCG, multi-threaded.
	qemu-system-x86_64 -name "geneve-ovs-lab" -accel tcg,thread=multi -cpu max \
		-smp "$VM_CPUS" -m "$VM_MEM_MB" \
		-display none -monitor none -serial "file:$VM_DIR/console.log" -no-reboot -nic none \
		-kernel "$image/vmlinuz" -initrd "$image/initrd" \
		-append "console=ttyS0 panic=-1 quiet" \
		-drive "file=$image/disk.img,format=raw,if=virtio,readonly=on" \
		-virtfs "local,path=$VM_SHARE,mount_tag=lab,security_model=none" \
		-daemonize -pidfile "$VM_DIR/qemu.pid" 9>&- ||
		die "qemu-system-x86_64 did not start"
	local start=$SECONDS
	until [[ -f $VM_SHARE/ready ]]; do
		if ! vm_alive; then
			vm_console_tail 30
			die "the guest stopped during boot (console above, full log $VM_DIR/console.log)"
		fi
		if ((SECONDS - start > VM_BOOT_TIMEOUT)); then
			vm_console_tail 30
			die "the guest did not become ready within $VM_BOOT_TIMEOUT s"
		fi
		if (((SECONDS - start) % 15 == 14)); then log "... guest still booting ($((SECONDS - start)) s)"; fi
		sleep 0.2
	done
	log "guest ready in $((SECONDS - start)) s: $(tr '\n' ' ' <"$VM_SHARE/ready" | cut -c1-120)..."
	grep -q ' openvswitch ' <<<" $(sed -n 's/^modules=//p' "$VM_SHARE/ready") " ||
		die "the guest has no openvswitch module loaded"
}

vm_up() {
	local n=$1 plugin=$2
	printf 'kernel\n' >"$STATE/mode"
	vm_boot
	local -a args=(up "$n")
	if [[ -n $plugin ]]; then
		cp "$plugin" "$VM_SHARE/plugin"
		args+=(--plugin "$GUEST_SHARE/plugin")
	fi
	vm_lab 1800 "${args[@]}"
}

# Stops the guest: power off, and in any case the QEMU process this lab started, by pid. Safe to call on a half-made or dead guest.
vm_down() {
	local pid
	pid=$(vm_pid)
	if vm_pid_is_ours "$pid"; then
		if [[ -f $VM_SHARE/ready ]]; then
			# No lab down in the guest first: everything of the lab lives in the guest's memory,
			# and a power-off takes it all. The reply never comes.
			mkdir -p "$VM_SHARE/req/.off" && printf '__poweroff\0' >"$VM_SHARE/req/.off/argv" &&
				mv -T "$VM_SHARE/req/.off" "$VM_SHARE/req/off" || true
		fi
		local i
		if [[ -f $VM_SHARE/ready ]]; then
			for i in $(seq 100); do
				vm_pid_is_ours "$pid" || break
				sleep 0.1
			done
		fi
		if vm_pid_is_ours "$pid"; then
			log "stopping qemu (pid $pid)"
			kill -TERM "$pid" 2>/dev/null || true
			for i in $(seq 50); do
				vm_pid_is_ours "$pid" || break
				sleep 0.1
			done
			if vm_pid_is_ours "$pid"; then kill -KILL "$pid" 2>/dev/null || true; fi
		fi
	fi
	rm -rf --one-file-system "$VM_DIR"
}
