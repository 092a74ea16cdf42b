//! The JSON documents podman 5.4 sends to the plugin, built the way podman builds them
//! (captured shapes, `null`s included), and small wrappers to run the plugin with them.

use std::process::Output;

use anyhow::{bail, Context, Result};
use serde_json::{json, Value};

use super::{Container, Host};

/// A 64-hex-digit id derived from a label, as podman's random ids look.
pub fn id(label: &str) -> String {
    let mut out = String::new();
    let mut x: u64 = 0xcbf2_9ce4_8422_2325;
    while out.len() < 64 {
        for b in label.bytes() {
            x ^= u64::from(b);
            x = x.wrapping_mul(0x100_0000_01b3);
        }
        out.push_str(&format!("{x:016x}"));
    }
    out.truncate(64);
    out
}

/// What `podman network create -d geneve-ovs --internal --subnet SUBNET [--ip-range RANGE]
/// --opt k=v ...` sends to `create`.
pub fn network(
    name: &str,
    subnet: &str,
    range: Option<(&str, &str)>,
    options: &[(&str, &str)],
) -> Value {
    let mut sub = json!({ "subnet": subnet });
    if let Some((start, end)) = range {
        sub["lease_range"] = json!({ "start_ip": start, "end_ip": end });
    }
    let opts: serde_json::Map<String, Value> = options
        .iter()
        .map(|(k, v)| (k.to_string(), Value::String(v.to_string())))
        .collect();
    json!({
        "name": name,
        "id": id(&format!("network {name}")),
        "driver": "geneve-ovs",
        "created": "2026-11-26T06:42:40.598345136Z",
        "subnets": [sub],
        "ipv6_enabled": subnet.contains(':'),
        "internal": true,
        "dns_enabled": true,
        "options": opts,
    })
}

/// What `setup`/`teardown` get for container `label` with static IPs (podman's IPAM result).
pub fn exec(network: &Value, label: &str, ips: &[&str], mac: Option<&str>) -> Value {
    let cid = id(&format!("container {label}"));
    json!({
        "container_id": cid,
        "container_name": label,
        "port_mappings": null,
        "network": network,
        "network_options": {
            "aliases": [&cid[..12]],
            "interface_name": "eth0",
            "static_ips": ips,
            "static_mac": mac,
            "options": null,
        },
    })
}

/// The plugin's stdout as JSON, requiring success and exactly one JSON document.
pub fn ok_json(out: &Output) -> Result<Value> {
    let stdout = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        bail!(
            "plugin failed ({}): stdout {stdout:?} stderr {:?}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    serde_json::from_str(&stdout)
        .with_context(|| format!("plugin stdout is not one JSON document: {stdout:?}"))
}

/// The plugin's error message, requiring exit code 1 and `{"error": "..."}` alone on stdout.
pub fn error_of(out: &Output) -> Result<String> {
    let stdout = String::from_utf8_lossy(&out.stdout);
    if out.status.code() != Some(1) {
        bail!(
            "expected exit code 1, got {} (stdout {stdout:?})",
            out.status
        );
    }
    let v: Value =
        serde_json::from_str(&stdout).with_context(|| format!("error is not JSON: {stdout:?}"))?;
    let obj = v.as_object().context("error is not an object")?;
    if obj.len() != 1 {
        bail!("error object must have only the error key: {v}");
    }
    Ok(obj["error"]
        .as_str()
        .context("error is not a string")?
        .to_string())
}

/// Runs `create` on `host` and returns the network podman would save.
pub fn create(host: &Host, network: &Value) -> Result<Value> {
    ok_json(&host.plugin(&["create"], &network.to_string())).context("create")
}

/// Runs `setup` for `container` and returns the StatusBlock.
pub fn setup(host: &Host, container: &Container, exec: &Value) -> Result<Value> {
    let netns = container.netns_path();
    let netns = netns.to_str().context("netns path")?;
    ok_json(&host.plugin(&["setup", netns], &exec.to_string())).context("setup")
}

/// Runs `teardown` for `container`, requiring success and an empty stdout.
pub fn teardown(host: &Host, netns: &str, exec: &Value) -> Result<()> {
    let out = host.plugin(&["teardown", netns], &exec.to_string());
    if !out.status.success() || !out.stdout.is_empty() {
        bail!(
            "teardown failed ({}): stdout {:?} stderr {:?}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(())
}
