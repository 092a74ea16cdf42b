//! The lab: several simulated hosts joined by an underlay switch.
//!
//! Layout for a lab with prefix `P` (`gvl<pid>x<n>`):
//! * netns `Psw`: Linux bridge `br0` (the underlay switch), one port `p<i>` per host;
//! * netns `Ph<i>`: veth end `eth0`, a private OVS whose netdev bridge `br-phy` holds
//!   `eth0` and carries the host's underlay address;
//! * directory `$TMPDIR/geneve-ovs-lab/P/h<i>`: that OVS's database, sockets, logs.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Once;
use std::time::Duration;

use anyhow::{bail, Context, Result};

use super::cmd::Cmd;
use super::host::Host;
use super::ovs::Ovs;
use super::{ip, netns, process, wait};

/// MTU of every underlay link. Overlay interfaces must be smaller by
/// [`Underlay::geneve_overhead`], or full-size frames are dropped silently.
pub const UNDERLAY_MTU: u32 = 1500;

/// Name of the underlay switch bridge in the switch namespace.
const SWITCH_BRIDGE: &str = "br0";

/// The host end of each underlay veth.
pub const UNDERLAY_NIC: &str = "eth0";

/// The netdev OVS bridge that carries each host's underlay address.
pub const UNDERLAY_BRIDGE: &str = "br-phy";

/// How long a fresh underlay may take until every host reaches every other.
const UNDERLAY_READY: Duration = Duration::from_secs(15);

/// Address family of the underlay network.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Underlay {
    /// 10.99.0.<i>/24
    V4,
    /// fd99::<i>/64
    V6,
}

impl Underlay {
    /// Underlay address of host `i` (1-based).
    pub fn host_ip(self, i: usize) -> IpAddr {
        match self {
            Underlay::V4 => IpAddr::V4(Ipv4Addr::new(10, 99, 0, i as u8)),
            Underlay::V6 => IpAddr::V6(Ipv6Addr::new(0xfd99, 0, 0, 0, 0, 0, 0, i as u16)),
        }
    }

    pub fn prefix_len(self) -> u8 {
        match self {
            Underlay::V4 => 24,
            Underlay::V6 => 64,
        }
    }

    /// Bytes GENEVE (no options) adds to an overlay frame on this underlay.
    pub fn geneve_overhead(self) -> u32 {
        match self {
            Underlay::V4 => 50,
            Underlay::V6 => 70,
        }
    }
}

/// Base directory of all labs' private files.
fn base_dir() -> PathBuf {
    std::env::temp_dir().join("geneve-ovs-lab")
}

pub struct Lab {
    prefix: String,
    dir: PathBuf,
    underlay: Underlay,
    hosts: Vec<Host>,
}

impl Lab {
    /// Build a lab of `n_hosts` hosts (1..=200) on the given underlay, with every
    /// host's OVS running and every host able to reach every other over the underlay.
    pub fn new(n_hosts: usize, underlay: Underlay) -> Result<Lab> {
        if !(1..=200).contains(&n_hosts) {
            bail!("a lab has 1 to 200 hosts, not {n_hosts}");
        }
        static CLEANUP: Once = Once::new();
        CLEANUP.call_once(cleanup_stale);

        static COUNTER: AtomicUsize = AtomicUsize::new(0);
        let n = COUNTER.fetch_add(1, Ordering::SeqCst);
        let prefix = format!("{}{}x{n}", netns::TAG, std::process::id());
        let dir = base_dir().join(&prefix);
        // From here on, Drop undoes whatever part of the setup was done.
        let mut lab = Lab {
            prefix,
            dir,
            underlay,
            hosts: Vec::new(),
        };
        lab.build(n_hosts)
            .with_context(|| format!("setting up lab {}", lab.prefix))?;
        Ok(lab)
    }

    fn build(&mut self, n_hosts: usize) -> Result<()> {
        std::fs::create_dir_all(&self.dir)
            .with_context(|| format!("creating {}", self.dir.display()))?;
        let sw = self.switch_netns();
        netns::add(&sw)?;
        ip(&["-n", &sw, "link", "add", SWITCH_BRIDGE, "type", "bridge"])?;
        // No snooping: MLD state learned from a host must never hide IPv6 neighbour
        // discovery from another; the lab switch just floods like a dumb switch.
        ip(&[
            "-n",
            &sw,
            "link",
            "set",
            SWITCH_BRIDGE,
            "type",
            "bridge",
            "mcast_snooping",
            "0",
        ])?;
        ip(&["-n", &sw, "link", "set", SWITCH_BRIDGE, "up"])?;
        for i in 1..=n_hosts {
            let host = self.add_host(i)?;
            self.hosts.push(host);
            let host = &self.hosts[i - 1];
            host_underlay(host, self.underlay)
                .with_context(|| format!("underlay of {}", host.name()))?;
        }
        self.wait_underlay()
    }

    /// Namespace, switch port and running OVS of host `i`; the underlay bridge comes
    /// after the host is registered, so that a failure there still stops its daemons.
    fn add_host(&self, i: usize) -> Result<Host> {
        let sw = self.switch_netns();
        let name = format!("{}h{i}", self.prefix);
        netns::add(&name)?;
        let port = format!("p{i}");
        ip(&[
            "-n",
            &sw,
            "link",
            "add",
            &port,
            "mtu",
            &UNDERLAY_MTU.to_string(),
            "type",
            "veth",
            "peer",
            "name",
            UNDERLAY_NIC,
            "mtu",
            &UNDERLAY_MTU.to_string(),
            "netns",
            &name,
        ])?;
        ip(&[
            "-n",
            &sw,
            "link",
            "set",
            &port,
            "master",
            SWITCH_BRIDGE,
            "up",
        ])?;
        // The switch end is the one OVS does not own. Only OVS itself sends into the
        // underlay (with complete checksums), so TCP works without this; it is off
        // anyway so that anything the kernel might send there is checksummed too.
        Cmd::in_netns(&sw, "ethtool", &["-K", &port, "tx", "off"]).run()?;
        ip(&["-n", &name, "link", "set", UNDERLAY_NIC, "up"])?;

        let dir = self.dir.join(format!("h{i}"));
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        let ovs = Ovs::create(&dir, &name)?;
        let host = Host {
            index: i,
            netns: name,
            underlay_ip: self.underlay.host_ip(i),
            underlay_prefix_len: self.underlay.prefix_len(),
            ovs,
        };
        // On failure this host never joins the lab, whose Drop would stop its daemons:
        // stop here whatever did start.
        if let Err(e) = start_ovs(&host.ovs) {
            let _ = host.ovs.stop();
            return Err(e);
        }
        Ok(host)
    }

    /// Every host pings every other over the underlay. This proves the lab works and
    /// fills ARP/ND caches (which OVS's tunnel neighbour cache learns from).
    fn wait_underlay(&self) -> Result<()> {
        for a in &self.hosts {
            for b in &self.hosts {
                if a.index != b.index {
                    let target = b.underlay_ip.to_string();
                    wait::until(
                        &format!("{} to reach {target} on the underlay", a.name()),
                        UNDERLAY_READY,
                        || Ok(super::ping_once(a.name(), &target)),
                    )?;
                }
            }
        }
        Ok(())
    }

    /// Host `i`, 1-based.
    ///
    /// # Panics
    /// When `i` is not a host of this lab: a mistake in the test itself.
    pub fn host(&self, i: usize) -> &Host {
        match i.checked_sub(1).and_then(|k| self.hosts.get(k)) {
            Some(h) => h,
            None => panic!("lab has hosts 1..={}, not {i}", self.hosts.len()),
        }
    }

    pub fn hosts(&self) -> &[Host] {
        &self.hosts
    }

    /// The unique prefix of every namespace name of this lab.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    pub fn underlay(&self) -> Underlay {
        self.underlay
    }

    /// Largest overlay MTU that fits in the underlay with GENEVE encapsulation.
    pub fn overlay_mtu(&self) -> u32 {
        UNDERLAY_MTU - self.underlay.geneve_overhead()
    }

    /// Name of the namespace holding the underlay switch.
    pub fn switch_netns(&self) -> String {
        format!("{}sw", self.prefix)
    }

    /// The directory holding every host's OVS files.
    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

/// ovsdb-server, database init, ovs-vswitchd.
fn start_ovs(ovs: &Ovs) -> Result<()> {
    ovs.start_ovsdb()?;
    ovs.init_db()?;
    ovs.start_vswitchd()
}

/// The underlay bridge `br-phy` holding the host's NIC, with the host's address.
fn host_underlay(host: &Host, underlay: Underlay) -> Result<()> {
    host.vsctl(&[
        "add-br",
        UNDERLAY_BRIDGE,
        "--",
        "set",
        "Bridge",
        UNDERLAY_BRIDGE,
        "datapath_type=netdev",
        "--",
        "add-port",
        UNDERLAY_BRIDGE,
        UNDERLAY_NIC,
    ])?;
    host.require_port_ok(UNDERLAY_BRIDGE)?;
    host.require_port_ok(UNDERLAY_NIC)?;
    let n = host.name();
    let cidr = host.underlay_cidr();
    match underlay {
        Underlay::V4 => ip(&["-n", n, "addr", "add", &cidr, "dev", UNDERLAY_BRIDGE])?,
        Underlay::V6 => ip(&[
            "-n",
            n,
            "addr",
            "add",
            &cidr,
            "dev",
            UNDERLAY_BRIDGE,
            "nodad",
        ])?,
    };
    ip(&["-n", n, "link", "set", UNDERLAY_BRIDGE, "up"])?;
    Ok(())
}

impl Drop for Lab {
    fn drop(&mut self) {
        if std::thread::panicking() {
            // The directory goes away below: show what the daemons said first.
            for h in &self.hosts {
                eprintln!("[lab] {} {}", h.name(), h.log_tail("ovs-vswitchd"));
            }
        }
        let mut errors = Vec::new();
        for h in &self.hosts {
            if let Err(e) = h.ovs.stop() {
                errors.push(e);
            }
        }
        errors.extend(netns::delete_with_prefix(&self.prefix));
        if let Err(e) = remove_dir(&self.dir) {
            errors.push(e);
        }
        for e in errors {
            eprintln!("[lab] cleanup of {}: {e:#}", self.prefix);
        }
    }
}

fn remove_dir(dir: &Path) -> Result<()> {
    match std::fs::remove_dir_all(dir) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e).with_context(|| format!("removing {}", dir.display())),
    }
}

/// Remove what crashed runs of this harness left behind: labs whose owning process
/// is gone. Their daemons are stopped by pidfile, their namespaces (and anything still
/// running inside) deleted, their directories removed. Labs of live processes, and
/// anything not named by this harness, are left alone.
pub fn cleanup_stale() {
    let stale = |prefix: &str| {
        netns::parse_prefix(prefix).is_some_and(|(p, pid)| p == prefix && !process::alive(pid))
    };
    let mut errors = Vec::new();
    if let Ok(entries) = std::fs::read_dir(base_dir()) {
        for entry in entries.filter_map(|e| e.ok()) {
            let Ok(prefix) = entry.file_name().into_string() else {
                continue;
            };
            if !stale(&prefix) {
                continue;
            }
            let dir = entry.path();
            if let Ok(hosts) = std::fs::read_dir(&dir) {
                for h in hosts.filter_map(|e| e.ok()) {
                    // OVN's daemons (a central, ovn-controllers) first: they talk to OVS.
                    errors.extend(super::ovn::stop_in(&h.path()));
                    if let Err(e) = Ovs::existing(&h.path()).stop() {
                        errors.push(e);
                    }
                }
            }
            errors.extend(netns::delete_with_prefix(&prefix));
            if let Err(e) = remove_dir(&dir) {
                errors.push(e);
            }
        }
    }
    // Namespaces whose directory was already gone (or never made).
    match netns::list() {
        Ok(names) => {
            for name in names {
                if let Some((prefix, _)) = netns::parse_prefix(&name) {
                    if stale(&prefix) {
                        if let Err(e) = netns::delete(&name) {
                            errors.push(e);
                        }
                    }
                }
            }
        }
        Err(e) => errors.push(e),
    }
    for e in errors {
        eprintln!("[lab] cleanup of stale labs: {e:#}");
    }
}
