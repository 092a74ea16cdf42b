//! Building the plugin's topology by hand with ovs-vsctl and ip: what the lab's
//! self-test uses to prove the facts the plugin relies on, and what plugin tests can
//! use to set up a reference topology or a foreign port.

use anyhow::{bail, Result};

use super::container::Container;
use super::host::Host;

impl Host {
    /// A bridge on the userspace datapath (the only one this lab's vswitchd offers).
    pub fn add_netdev_bridge(&self, bridge: &str) -> Result<()> {
        self.vsctl(&[
            "add-br",
            bridge,
            "--",
            "set",
            "Bridge",
            bridge,
            "datapath_type=netdev",
        ])?;
        self.require_port_ok(bridge)
    }

    /// A GENEVE tunnel port to `remote_ip` with VNI `key`, marked protected so that
    /// tunnels never forward to each other (split horizon for a full mesh).
    pub fn add_geneve_port(
        &self,
        bridge: &str,
        port: &str,
        remote_ip: &str,
        key: u32,
    ) -> Result<()> {
        self.vsctl(&[
            "add-port",
            bridge,
            port,
            "--",
            "set",
            "Interface",
            port,
            "type=geneve",
            &format!("options:remote_ip={remote_ip}"),
            &format!("options:key={key}"),
            "--",
            "set",
            "Port",
            port,
            "protected=true",
        ])?;
        self.require_port_ok(port)
    }

    /// Join `container` to `bridge` by a veth pair: `host_if` on the host as an OVS
    /// port, `eth0` in the container with `cidr` and `mtu`. TX checksum offload is
    /// turned off on the container end, which OVS does not own: OVS reads the veth with
    /// AF_PACKET and forwards checksum-less packets as they are, so TCP would fail.
    pub fn wire_container(
        &self,
        container: &Container,
        bridge: &str,
        host_if: &str,
        cidr: &str,
        mtu: u32,
    ) -> Result<()> {
        let mtu = mtu.to_string();
        let h = self.name();
        let c = container.name();
        super::ip(&[
            "-n", h, "link", "add", host_if, "mtu", &mtu, "type", "veth", "peer", "name", "eth0",
            "mtu", &mtu, "netns", c,
        ])?;
        super::ip(&["-n", h, "link", "set", host_if, "up"])?;
        container.exec_ok("ethtool", &["-K", "eth0", "tx", "off"])?;
        if cidr.contains(':') {
            super::ip(&["-n", c, "addr", "add", cidr, "dev", "eth0", "nodad"])?;
        } else {
            super::ip(&["-n", c, "addr", "add", cidr, "dev", "eth0"])?;
        }
        super::ip(&["-n", c, "link", "set", "eth0", "up"])?;
        self.vsctl(&["add-port", bridge, host_if])?;
        self.require_port_ok(host_if)
    }

    /// Fail unless vswitchd accepted the interface (ofport assigned, no error): before
    /// OVS 3.6 ovs-vsctl exits 0 even when vswitchd could not add a port.
    pub fn require_port_ok(&self, iface: &str) -> Result<()> {
        let ofport = self.vsctl(&["get", "Interface", iface, "ofport"])?;
        let error = self.vsctl(&["get", "Interface", iface, "error"])?;
        match ofport.parse::<i64>() {
            Ok(n) if n > 0 && error == "[]" => Ok(()),
            _ => bail!(
                "vswitchd did not add {iface} on {}: ofport={ofport} error={error}\n{}",
                self.name(),
                self.log_tail("ovs-vswitchd")
            ),
        }
    }
}
