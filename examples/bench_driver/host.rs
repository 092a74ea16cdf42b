//! What the driver needs from the lab host around the timed runs: network namespaces standing
//! in for containers (`ip netns`) and removing a benchmark bridge (`ovs-vsctl`). Made before and
//! removed after the timed plugin runs, so their cost never counts. Namespace names carry our
//! pid, so two drivers never collide; [`Namespaces`] removes what it made also when a loop fails.

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use anyhow::{bail, Context, Result};

/// Namespaces made by this driver, deleted on drop.
pub struct Namespaces {
    names: Vec<String>,
}

impl Namespaces {
    pub fn new() -> Namespaces {
        Namespaces { names: Vec::new() }
    }

    /// Makes a new namespace and returns its path (`/run/netns/NAME`).
    pub fn add(&mut self, label: &str) -> Result<PathBuf> {
        Ok(PathBuf::from("/run/netns").join(self.add_named(label)?))
    }

    /// Makes a new namespace and returns its name.
    pub fn add_named(&mut self, label: &str) -> Result<String> {
        let name = format!("gob{}-{label}", std::process::id());
        ip(&["netns", "add", &name])?;
        self.names.push(name.clone());
        Ok(name)
    }
}

impl Drop for Namespaces {
    fn drop(&mut self) {
        for name in self.names.drain(..) {
            if let Err(err) = ip(&["netns", "del", &name]) {
                eprintln!("bench-driver: could not delete netns {name}: {err:#}");
            }
        }
    }
}

/// How long ovs-vswitchd is given to handle a link change before its counter is read again:
/// a main-loop iteration takes tens of milliseconds with 200 ports on this machine.
const LINK_SETTLE: Duration = Duration::from_millis(500);

/// The netlink requests ovs-vswitchd sends because of a veth pair it has nothing to do with,
/// created in the host's namespace and deleted again (its coverage counter `netlink_sent`
/// before and after). Every link change on the host costs it this, whoever makes it; how it
/// grows with the ports on its bridges is what makes each container's own link changes cost
/// more as containers are added (docs/benchmarks.md, "Setup growth").
pub fn vswitchd_requests_for_a_foreign_link() -> Result<f64> {
    let name = format!("gle{}", std::process::id());
    let before = vswitchd_netlink_sent()?;
    ip(&[
        "link",
        "add",
        &name,
        "type",
        "veth",
        "peer",
        "name",
        &format!("{name}p"),
    ])?;
    std::thread::sleep(LINK_SETTLE);
    ip(&["link", "del", &name])?;
    std::thread::sleep(LINK_SETTLE);
    let after = vswitchd_netlink_sent()?;
    Ok(after.saturating_sub(before) as f64)
}

/// ovs-vswitchd's coverage counter `netlink_sent`: the netlink requests it has sent so far.
fn vswitchd_netlink_sent() -> Result<u64> {
    let out = Command::new("ovs-appctl")
        .args(["coverage/read-counter", "netlink_sent"])
        .output()
        .context("cannot run ovs-appctl")?;
    if !out.status.success() {
        bail!(
            "ovs-appctl coverage/read-counter netlink_sent failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    let text = String::from_utf8_lossy(&out.stdout);
    text.trim()
        .parse()
        .with_context(|| format!("ovs-appctl coverage/read-counter printed {text:?}"))
}

/// Runs `ip ARGS...`, failing with its message.
pub fn ip(args: &[&str]) -> Result<()> {
    let out = Command::new("ip")
        .args(args)
        .output()
        .context("cannot run ip")?;
    if !out.status.success() {
        bail!(
            "ip {} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

/// `ovs-vsctl --if-exists del-br BRIDGE`: removes a benchmark network's bridge between runs.
pub fn delete_bridge(bridge: &str) -> Result<()> {
    vsctl(&["--if-exists", "del-br", bridge])
}

/// Runs `ovs-vsctl ARGS...`, failing with its message.
pub fn vsctl(args: &[&str]) -> Result<()> {
    let out = Command::new("ovs-vsctl")
        .args(args)
        .output()
        .context("cannot run ovs-vsctl")?;
    if !out.status.success() {
        bail!(
            "ovs-vsctl {} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}
