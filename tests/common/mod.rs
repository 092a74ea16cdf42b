//! Integration-test lab: several simulated hosts, each a network namespace with its own
//! Open vSwitch (userspace datapath), joined by an underlay switch.
//!
//! Use from a test file as `mod common;` and start with [`Lab::new`]. Everything the lab
//! makes (namespaces, daemons, files) is removed when the [`Lab`] is dropped, also when
//! the test panics; leftovers of runs that were killed outright are removed by the next
//! `Lab::new`.
//!
//! ```text
//! let lab = Lab::new(2, Underlay::V4)?;          // hosts 1 and 2, underlay 10.99.0.1/.2
//! let h1 = lab.host(1);
//! let c = h1.container("web")?;                  // a netns for the plugin to wire up
//! let out = h1.plugin(&["setup", c.netns_path().to_str().unwrap()], &json);
//! h1.vsctl(&["list-br"])?;                       // OVS of that host only
//! c.wait_ping("192.168.120.2", Duration::from_secs(10))?;
//! ```
//!
//! Facts the lab is built on (checked by `tests/lab_selftest.rs`):
//! * ovs-vswitchd runs with `--disable-system`, so `Open_vSwitch.datapath_types` is
//!   `[netdev]`: the userspace datapath, which sends tunnel packets itself from the
//!   `br-phy` bridge that carries the host's underlay address.
//! * A veth end that OVS does not own but whose packets OVS reads (the container end)
//!   needs TX checksum offload off, or TCP fails while ping works.
//! * The overlay MTU must be the underlay's (1500) minus 50 (IPv4) or 70 (IPv6).

// Each test binary compiles this module on its own and uses only part of it.
#![allow(dead_code)]

pub mod background;
pub mod cmd;
pub mod container;
pub mod dns;
pub mod frames;
pub mod host;
pub mod lab;
pub mod manual;
pub mod netns;
pub mod operate;
pub mod ovn;
pub mod ovs;
pub mod podman;
pub mod process;
pub mod resolv_conf;
pub mod traffic;
pub mod wait;

#[allow(unused_imports)]
pub use container::Container;
#[allow(unused_imports)]
pub use host::Host;
#[allow(unused_imports)]
pub use lab::{Lab, Underlay, UNDERLAY_MTU};

use anyhow::Result;

/// `ip <args>`, required to succeed.
pub fn ip(args: &[&str]) -> Result<String> {
    cmd::Cmd::new("ip").args(args).run()
}

/// A few quick pings from namespace `netns` to `target`; true when any is answered.
pub fn ping_in(netns: &str, target: &str) -> bool {
    cmd::Cmd::in_netns(
        netns,
        "ping",
        &["-q", "-c", "3", "-i", "0.2", "-W", "1", target],
    )
    .output()
    .is_ok_and(|o| o.status.success())
}

/// One ping with a one second wait; for polling loops.
pub fn ping_once(netns: &str, target: &str) -> bool {
    cmd::Cmd::in_netns(netns, "ping", &["-q", "-c", "1", "-W", "1", target])
        .output()
        .is_ok_and(|o| o.status.success())
}
