//! What the driver needs from the lab host around the timed runs: network namespaces standing
//! in for containers (`ip netns`) and removing a benchmark bridge (`ovs-vsctl`). Made before and
//! removed after the timed plugin runs, so their cost never counts. Namespace names carry our
//! pid, so two drivers never collide; [`Namespaces`] removes what it made also when a loop fails.

use std::path::PathBuf;
use std::process::Command;

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
