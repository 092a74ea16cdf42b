//! The kernel-datapath suite: the scenarios of the userspace suite (`e2e_podman*.rs`), the same
//! bodies (`tests/scenarios/`), on the datapath production hosts run: OVS's `openvswitch`
//! kernel module, in a QEMU guest running Debian's kernel (`lab.sh up N --kernel`), with real
//! podman and netavark in each lab host.
//!
//! Booting the guest and starting each host's OVS is the slow part under software emulation,
//! so one guest serves a group of scenarios: each runs on its own (on the first hosts of the
//! lab, as many as it needs), its failure is reported by its name, and [`PodmanLab::reset`]
//! clears the hosts before the next. Two groups of about equal length, so that two test
//! threads run them side by side. The group fails when
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
use scenarios::{ipsec, open, overlay, recovery, underlay};

type Scenario = fn(&PodmanLab) -> Result<()>;

/// Runs every scenario on the first `hosts` hosts of `lab`, each followed by a reset of the
/// whole lab; fails naming those that failed. `KERNEL_SCENARIOS=NAME,...` runs only those (to
/// work on one), and says so.
fn run_group(lab: &PodmanLab, scenarios: &[(&str, usize, Scenario)]) -> Result<()> {
    assert_eq!(lab.datapath(), Datapath::Kernel);
    let only: Option<Vec<String>> = std::env::var("KERNEL_SCENARIOS")
        .ok()
        .filter(|v| !v.is_empty())
        .map(|v| v.split(',').map(str::to_string).collect());
    let mut failed = Vec::new();
    for (name, hosts, scenario) in scenarios {
        if let Some(only) = &only {
            if !only.iter().any(|o| o == name) {
                eprintln!("[kernel] scenario {name}: not selected by KERNEL_SCENARIOS");
                continue;
            }
        }
        let start = Instant::now();
        let result = scenario(&lab.first_hosts(*hosts));
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

/// Internal and non-internal networks on two hosts.
#[test]
fn kernel_datapath_overlay() -> Result<()> {
    let lab = PodmanLab::up_kernel("kernel-overlay", 2)?;
    run_group(
        &lab,
        &[
            (
                "seed_scenario_two_hosts",
                2,
                overlay::seed_scenario_two_hosts,
            ),
            (
                "mtu_is_the_underlays_minus_50_and_full_frames_cross",
                2,
                overlay::mtu_is_the_underlays_minus_50_and_full_frames_cross,
            ),
            (
                "ipv6_overlay_and_ipv6_underlay",
                2,
                overlay::ipv6_overlay_and_ipv6_underlay,
            ),
            (
                "open_network_gateway_and_outbound_nat",
                2,
                open::open_network_gateway_and_outbound_nat,
            ),
            (
                "open_network_port_mapping_and_isolation",
                2,
                open::open_network_port_mapping_and_isolation,
            ),
        ],
    )
}

/// Three hosts without a flood loop, then on two of them the underlay filter, BFD, an
/// ovs-vswitchd crash and a reboot.
#[test]
fn kernel_datapath_mesh_underlay_and_recovery() -> Result<()> {
    let lab = PodmanLab::up_kernel("kernel-mesh", 3)?;
    run_group(
        &lab,
        &[
            (
                "three_hosts_every_pair_pings_without_flooding",
                3,
                overlay::three_hosts_every_pair_pings_without_flooding,
            ),
            (
                "underlay_filter_geneve_only_from_peers",
                2,
                underlay::geneve_only_from_peers,
            ),
            ("bfd_up_down_in_status", 2, underlay::bfd_up_down_in_status),
            (
                "vswitchd_restart_while_containers_run",
                2,
                recovery::vswitchd_restart_while_containers_run,
            ),
            ("reboot_then_gc_and_podman_start_reconnect", 2, |lab| {
                recovery::reboot_case(lab, "kernel-reboot-gc", true)
            }),
        ],
    )
}

/// Encryption between hosts (`encrypt=ipsec`, OVS IPsec with strongSwan): two hosts with a
/// pre-shared key (only ESP on the wire), a wrong key on one host (nothing crosses, `status`
/// exits 2 naming the tunnel), three hosts with a clear network beside the encrypted one and
/// a host leaving; certificates from one CA (only ESP on the wire), and a host whose
/// certificate another CA signed (nothing crosses, `status` exits 2 naming the tunnel); a host
/// joining and leaving a running encrypted network (its tunnels encrypted, then its IPsec state
/// gone); the IKE daemon stopped (`create` refuses naming it, `status` exits 2).
#[test]
fn kernel_datapath_ipsec() -> Result<()> {
    let lab = PodmanLab::up_kernel("kernel-ipsec", 3)?;
    run_group(
        &lab,
        &[
            (
                "ipsec_two_hosts_psk_only_esp_on_the_wire",
                2,
                ipsec::two_hosts_psk_only_esp_on_the_wire,
            ),
            (
                "ipsec_wrong_key_nothing_crosses_and_status_says_which_tunnel",
                2,
                ipsec::wrong_key_nothing_crosses_and_status_says_which_tunnel,
            ),
            (
                "ipsec_three_hosts_encrypted_and_clear_side_by_side",
                3,
                ipsec::three_hosts_encrypted_and_clear_side_by_side,
            ),
            (
                "ipsec_two_hosts_certificates_only_esp_on_the_wire",
                2,
                ipsec::two_hosts_certificates_only_esp_on_the_wire,
            ),
            (
                "ipsec_certificate_of_another_ca_nothing_crosses",
                2,
                ipsec::certificate_of_another_ca_nothing_crosses,
            ),
            (
                "ipsec_peers_added_and_removed_get_and_lose_ipsec",
                3,
                ipsec::peers_added_and_removed_get_and_lose_ipsec,
            ),
            (
                "ipsec_ike_daemon_stopped_create_refuses_and_status_says_down",
                2,
                ipsec::ike_daemon_stopped_create_refuses_and_status_says_down,
            ),
        ],
    )
}
