//! End-to-end robustness with real podman on simulated hosts (`contrib/lab/`): the host's
//! life outside the plugin's calls, on an internal network spanning two hosts.
//!
//! * host 1 reboots (`lab.sh reboot`: every process killed, conmon first, so no container
//!   is torn down; runtime state, container veths and OVS's tap devices gone; OVS started
//!   again from its database), `geneve-ovs gc` runs as the boot unit would (or not), then
//!   `podman start`: the container reaches host 2 again, and OVS holds exactly its new port;
//! * ovs-vswitchd of host 1 is killed and started again while the containers run: traffic
//!   comes back by itself, on the same ports.
//!
//! Both print how long recovery took (`--nocapture`).

mod podman_lab;
mod scenarios;

use anyhow::Result;
use podman_lab::PodmanLab;
use scenarios::recovery;

#[test]
fn reboot_then_gc_and_podman_start_reconnect() -> Result<()> {
    recovery::reboot_case(&PodmanLab::up("reboot-gc", 2)?, "reboot-gc", true)
}

/// The gc unit is optional: `setup` replaces the stale port of its container by itself.
#[test]
fn reboot_then_podman_start_alone_reconnects() -> Result<()> {
    recovery::reboot_case(&PodmanLab::up("reboot", 2)?, "reboot", false)
}

#[test]
fn vswitchd_restart_while_containers_run() -> Result<()> {
    recovery::vswitchd_restart_while_containers_run(&PodmanLab::up("vswitchd", 2)?)
}
