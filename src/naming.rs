//! Deterministic names and identifiers.
//!
//! Every host of an overlay runs its own `podman network create`, and nothing is coordinated
//! between them. Whatever must agree across hosts (the VNI) or must be found again later by
//! another plugin run (a container's host veth) is therefore derived from stable inputs with
//! SHA-256, never stored or chosen at random.

use std::net::IpAddr;

use anyhow::{bail, Result};
use sha2::{Digest, Sha256};

/// The largest GENEVE VNI: the field is 24 bits wide, and 0 is reserved here as "unset".
pub const MAX_VNI: u32 = 16_777_215;

/// Linux interface names (and so OVS port names) are at most 15 bytes (IFNAMSIZ - 1).
pub const MAX_IFNAME_LEN: usize = 15;

fn sha256(parts: &[&[u8]]) -> [u8; 32] {
    let mut hasher = Sha256::new();
    for part in parts {
        // Length-prefix every part so that ("ab","c") and ("a","bc") hash differently.
        hasher.update((part.len() as u64).to_be_bytes());
        hasher.update(part);
    }
    hasher.finalize().into()
}

fn hex(bytes: &[u8], len: usize) -> String {
    let mut s: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    s.truncate(len);
    s
}

/// The default VNI of a network: `1 + (u32::from_be_bytes(SHA-256(name)[0..4]) mod 16777215)`.
///
/// It depends on the network name only, so every host that creates a network of the same name
/// agrees on the VNI without talking to the others, and the result is always in 1..=16777215.
/// By hand: `printf %s NAME | sha256sum`, take the first 8 hex digits as an integer N, and the
/// VNI is `1 + N % 16777215`.
pub fn default_vni(network_name: &str) -> u32 {
    let digest: [u8; 32] = Sha256::digest(network_name.as_bytes()).into();
    let word = u32::from_be_bytes([digest[0], digest[1], digest[2], digest[3]]);
    1 + word % MAX_VNI
}

/// The default OVS bridge name of a network: `gnv` followed by the VNI in decimal.
///
/// At most 3 + 8 = 11 characters, and two networks on one host never share a VNI, so the name
/// is unique per host and says at a glance which overlay a bridge carries.
pub fn default_bridge_name(vni: u32) -> String {
    format!("gnv{vni}")
}

/// The OVS port name of the tunnel to one peer: `gt` + VNI (6 hex) + 7 hex digits of a hash of
/// the tunnel's identity (peer, local address, UDP port). Exactly 15 characters.
///
/// OVS port names are global to the database, so the VNI keeps tunnels of two networks to the
/// same peer apart, and the hash keeps tunnels of one network to different peers apart.
pub fn tunnel_port_name(vni: u32, peer: IpAddr, local_ip: Option<IpAddr>, dst_port: u16) -> String {
    let local = local_ip.map(|ip| ip.to_string()).unwrap_or_default();
    let digest = sha256(&[
        peer.to_string().as_bytes(),
        local.as_bytes(),
        &dst_port.to_be_bytes(),
    ]);
    format!("gt{vni:06x}{}", hex(&digest, 7))
}

/// The host-side veth (and OVS port) name of a container's attachment: `gv` + 13 hex digits of
/// SHA-256(network id, container id). Exactly 15 characters.
///
/// `teardown` receives the same two ids, so it always finds the link again, even after a crash,
/// without any state of its own.
pub fn host_veth_name(network_id: &str, container_id: &str) -> String {
    let digest = sha256(&[network_id.as_bytes(), container_id.as_bytes()]);
    format!("gv{}", hex(&digest, 13))
}

/// Whether `name` has the shape of the plugin's host veths: `gv` and 13 lowercase hex digits
/// (see [`host_veth_name`]).
pub fn is_host_veth_name(name: &str) -> bool {
    name.len() == 15
        && name.starts_with("gv")
        && name[2..]
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// The name of a network's gateway port (an OVS internal port holding the subnets' gateway
/// addresses on this host): `gw` followed by the VNI in decimal, at most 10 characters.
pub fn gateway_port_name(vni: u32) -> String {
    format!("gw{vni}")
}

/// The MAC address of a network's gateway port: the same on every host, so that a container
/// keeps a valid neighbour entry for its gateway whichever host it runs on. `02:67:77` (locally
/// administered, unicast) followed by the 24-bit VNI.
pub fn gateway_mac(vni: u32) -> [u8; 6] {
    let [_, a, b, c] = vni.to_be_bytes();
    [0x02, 0x67, 0x77, a, b, c]
}

/// Whether `name` is acceptable to Linux as an interface name (the kernel's `dev_valid_name`):
/// 1 to 15 bytes, not `.` or `..`, and no `/`, `:` or whitespace.
pub fn is_valid_ifname(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_IFNAME_LEN
        && name != "."
        && name != ".."
        && !name
            .chars()
            .any(|c| c == '/' || c == ':' || c.is_whitespace() || c.is_control())
}

/// [`is_valid_ifname`] as an error naming the refused name, for the places that hand a name to
/// the kernel (an ioctl's `ifreq`, a netlink request, a `/proc/sys` path): the one rule every
/// interface name the plugin touches passes, checked before anything is created or opened.
pub fn check_ifname(name: &str) -> Result<()> {
    if !is_valid_ifname(name) {
        bail!(
            "invalid interface name {name:?}: an interface name is 1 to {MAX_IFNAME_LEN} bytes, \
             not '.' or '..', without '/', ':', spaces or control characters"
        );
    }
    Ok(())
}

/// Parses a MAC address in the usual `aa:bb:cc:dd:ee:ff` form.
pub fn parse_mac(text: &str) -> Option<[u8; 6]> {
    let mut mac = [0u8; 6];
    let mut parts = text.split(':');
    for byte in mac.iter_mut() {
        let part = parts.next()?;
        if part.len() != 2 {
            return None;
        }
        *byte = u8::from_str_radix(part, 16).ok()?;
    }
    parts.next().is_none().then_some(mac)
}

/// Formats a MAC address the way podman expects it in a StatusBlock.
pub fn format_mac(mac: &[u8; 6]) -> String {
    mac.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vni_is_deterministic_and_in_range() {
        assert_eq!(default_vni("net1"), default_vni("net1"));
        assert_ne!(default_vni("net1"), default_vni("net2"));
        for i in 0..2000 {
            let vni = default_vni(&format!("network-{i}"));
            assert!((1..=MAX_VNI).contains(&vni), "{vni}");
        }
    }

    #[test]
    fn vni_matches_documented_function() {
        // printf %s net1 | sha256sum -> 6c270ef2...: 1 + 0x6c270ef2 % 16777215 = 2559839.
        assert_eq!(default_vni("net1"), 2_559_839);
    }

    #[test]
    fn names_fit_ifnamsiz() {
        assert_eq!(default_bridge_name(MAX_VNI), "gnv16777215");
        let peer: IpAddr = "fd99::2".parse().unwrap();
        let t = tunnel_port_name(MAX_VNI, peer, None, 6081);
        assert_eq!(t.len(), 15);
        assert!(t.starts_with("gtffffff"));
        assert!(is_valid_ifname(&t));
        let v = host_veth_name("2bfb02a8", "27a4e485");
        assert_eq!(v.len(), 15);
        assert!(is_valid_ifname(&v));
    }

    #[test]
    fn tunnel_names_differ_by_identity() {
        let a: IpAddr = "10.99.0.2".parse().unwrap();
        let b: IpAddr = "10.99.0.3".parse().unwrap();
        let names = [
            tunnel_port_name(5001, a, None, 6081),
            tunnel_port_name(5001, b, None, 6081),
            tunnel_port_name(5002, a, None, 6081),
            tunnel_port_name(5001, a, Some(b), 6081),
            tunnel_port_name(5001, a, None, 6082),
        ];
        for i in 0..names.len() {
            for j in i + 1..names.len() {
                assert_ne!(names[i], names[j]);
            }
        }
    }

    #[test]
    fn veth_names_depend_on_both_ids() {
        assert_ne!(host_veth_name("n1", "c1"), host_veth_name("n2", "c1"));
        assert_ne!(host_veth_name("n1", "c1"), host_veth_name("n1", "c2"));
        assert_ne!(host_veth_name("n1c", "1"), host_veth_name("n1", "c1"));
    }

    #[test]
    fn ifname_validation() {
        for ok in ["eth0", "gnv1", "a", "ovs_net1", "br-0.1", "x23456789012345"] {
            assert!(is_valid_ifname(ok), "{ok}");
        }
        for bad in [
            "",
            ".",
            "..",
            "a/b",
            "a:b",
            "a b",
            "x234567890123456",
            "tab\t",
        ] {
            assert!(!is_valid_ifname(bad), "{bad:?}");
        }
    }

    #[test]
    fn the_checked_form_follows_the_predicate_and_names_the_value() {
        for name in [
            "eth0",
            "x23456789012345",
            "",
            "..",
            "a/b",
            "nul\0inside",
            "x234567890123456",
        ] {
            match check_ifname(name) {
                Ok(()) => assert!(is_valid_ifname(name), "{name:?}"),
                Err(err) => {
                    assert!(!is_valid_ifname(name), "{name:?}");
                    assert!(err.to_string().contains(&format!("{name:?}")), "{err}");
                }
            }
        }
    }

    #[test]
    fn gateway_identity() {
        assert_eq!(gateway_port_name(MAX_VNI), "gw16777215");
        let mac = gateway_mac(0x123456);
        assert_eq!(format_mac(&mac), "02:67:77:12:34:56");
        // Locally administered, unicast.
        assert_eq!(mac[0] & 0b11, 0b10);
    }

    #[test]
    fn mac_round_trip() {
        let mac = parse_mac("0a:58:C0:a8:00:01").unwrap();
        assert_eq!(format_mac(&mac), "0a:58:c0:a8:00:01");
        for bad in [
            "",
            "0a:58:c0:a8:00",
            "0a:58:c0:a8:00:01:02",
            "0a:58:c0:a8:00:zz",
            "a:58:c0:a8:00:011",
        ] {
            assert!(parse_mac(bad).is_none(), "{bad}");
        }
    }
}
