//! The kernel-datapath suite: the scenarios of the userspace suite (`e2e_podman*.rs`), the same
//! bodies (`tests/scenarios/`), on the datapath production hosts run: OVS's `openvswitch`
//! kernel module, in a QEMU guest running Debian's kernel (`lab.sh up N --kernel`), with real
//! podman and netavark in each lab host.
//!
//! Booting the guest and starting each host's OVS is the slow part under software emulation,
//! so one guest serves a group of scenarios: each runs on its own, its failure is reported by
//! its name, and [`PodmanLab::reset`] clears the hosts before the next. The group fails when
//! any of its scenarios does, naming all that failed. When the guest cannot start (no QEMU, no
//! kernel package, a guest that does not boot), the suite fails with the reason: it never
//! skips.
//!
//! Only here (a property of the kernel's receive path): the underlay filter drops a stranger's
//! GENEVE before OVS sees it (`scenarios/underlay.rs` says why not on the userspace datapath).

mod podman_lab;
mod scenarios;

use std::time::Instant;

use anyhow::{bail, Result};
use podman_lab::{Datapath, PodmanLab};
use scenarios::{open, overlay, recovery, underlay};

type Scenario = fn(&PodmanLab) -> Result<()>;

/// Runs every scenario on `lab`, each followed by a reset; fails naming those that failed.
/// `KERNEL_SCENARIOS=NAME,...` runs only those (to work on one), and says so.
fn run_group(lab: &PodmanLab, scenarios: &[(&str, Scenario)]) -> Result<()> {
    assert_eq!(lab.datapath(), Datapath::Kernel);
    let only: Option<Vec<String>> = std::env::var("KERNEL_SCENARIOS")
        .ok()
        .filter(|v| !v.is_empty())
        .map(|v| v.split(',').map(str::to_string).collect());
    let mut failed = Vec::new();
    for (name, scenario) in scenarios {
        if let Some(only) = &only {
            if !only.iter().any(|o| o == name) {
                eprintln!("[kernel] scenario {name}: not selected by KERNEL_SCENARIOS");
                continue;
            }
        }
        let start = Instant::now();
        let result = scenario(lab);
        let took = start.elapsed();
        match &result {
            Ok(()) => eprintln!("[kernel] scenario {name}: ok in {took:.1?}"),
            Err(err) => {
                eprintln!("[kernel] scenario {name}: FAILED in {took:.1?}: {err:#}");
                failed.push(format!("{name}: {err:#}"));
            }
        }
        if let Err(err) = lab.reset() {
            failed.push(format!("reset after {name}: {err:#}"));
            break;
        }
    }
    if !failed.is_empty() {
        bail!(
            "{} of {} scenario(s) failed on the kernel datapath:\n{}",
            failed.len(),
            scenarios.len(),
            failed.join("\n")
        );
    }
    Ok(())
}

#[test]
fn kernel_datapath_two_hosts() -> Result<()> {
    let lab = PodmanLab::up_kernel("kernel2", 2)?;
    run_group(
        &lab,
        &[
            ("seed_scenario_two_hosts", overlay::seed_scenario_two_hosts),
            (
                "mtu_is_the_underlays_minus_50_and_full_frames_cross",
                overlay::mtu_is_the_underlays_minus_50_and_full_frames_cross,
            ),
            (
                "ipv6_overlay_and_ipv6_underlay",
                overlay::ipv6_overlay_and_ipv6_underlay,
            ),
            (
                "open_network_gateway_and_outbound_nat",
                open::open_network_gateway_and_outbound_nat,
            ),
            (
                "open_network_port_mapping_and_isolation",
                open::open_network_port_mapping_and_isolation,
            ),
            (
                "underlay_filter_geneve_only_from_peers",
                underlay::geneve_only_from_peers,
            ),
            ("bfd_up_down_in_status", underlay::bfd_up_down_in_status),
            (
                "vswitchd_restart_while_containers_run",
                recovery::vswitchd_restart_while_containers_run,
            ),
            ("reboot_then_gc_and_podman_start_reconnect", |lab| {
                recovery::reboot_case(lab, "kernel-reboot-gc", true)
            }),
        ],
    )
}

#[test]
fn kernel_datapath_three_hosts() -> Result<()> {
    let lab = PodmanLab::up_kernel("kernel3", 3)?;
    run_group(
        &lab,
        &[(
            "three_hosts_every_pair_pings_without_flooding",
            overlay::three_hosts_every_pair_pings_without_flooding,
        )],
    )
}
