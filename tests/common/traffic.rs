//! Traffic between containers: TCP transfers with iperf3, bounded in bytes and time.

use std::time::Duration;

use anyhow::{bail, Context, Result};
use serde_json::Value;

use super::cmd::{self, Cmd};
use super::container::Container;
use super::wait;

/// What a finished transfer reports.
#[derive(Debug, Clone, Copy)]
pub struct Transfer {
    /// What the sender sent: the full amount asked for, once the test finished.
    pub bytes_sent: u64,
    /// What the receiver counted; iperf3 stops counting when the sender reports the
    /// end, so this is usually somewhat less than `bytes_sent`.
    pub bytes_received: u64,
    /// Receiver's rate.
    pub bits_per_second: f64,
}

/// Start a one-shot iperf3 server in `server` on `port` and wait until it listens.
/// It runs in the background and exits after one test; anything left is killed with
/// the container's namespace.
pub fn start_iperf3_server(server: &Container, port: u16) -> Result<()> {
    let port_s = port.to_string();
    server.exec_ok("iperf3", &["-s", "-1", "-D", "-p", &port_s])?;
    let filter = format!("sport = :{port}");
    wait::until(
        &format!("iperf3 to listen on {port} in {}", server.name()),
        Duration::from_secs(10),
        || {
            Ok(!server
                .exec_ok("ss", &["-Hltn", filter.as_str()])?
                .is_empty())
        },
    )
}

/// Send `bytes` (iperf3 syntax, e.g. "10M") from `client` to the iperf3 server at
/// `server_ip:port` (`reverse`: the server sends), failing on a connection that cannot
/// be made within 3 s or a transfer that does not finish within `limit`.
pub fn iperf3_client(
    client: &Container,
    server_ip: &str,
    port: u16,
    bytes: &str,
    reverse: bool,
    limit: Duration,
) -> Result<Transfer> {
    let port_s = port.to_string();
    let mut args = vec![
        "-c",
        server_ip,
        "-p",
        &port_s,
        "-n",
        bytes,
        "--connect-timeout",
        "3000",
        "-J",
    ];
    if reverse {
        args.push("-R");
    }
    let c = Cmd::in_netns(client.name(), "iperf3", &args).timeout(limit);
    let display = c.display().to_string();
    let out = c.output()?;
    cmd::check(&display, &out)?;
    let v: Value = serde_json::from_slice(&out.stdout).context("iperf3 -J output")?;
    if let Some(e) = v.get("error") {
        bail!("iperf3: {e}");
    }
    let sent = &v["end"]["sum_sent"];
    let received = &v["end"]["sum_received"];
    Ok(Transfer {
        bytes_sent: sent["bytes"].as_u64().context("end.sum_sent.bytes")?,
        bytes_received: received["bytes"]
            .as_u64()
            .context("end.sum_received.bytes")?,
        bits_per_second: received["bits_per_second"]
            .as_f64()
            .context("end.sum_received.bits_per_second")?,
    })
}

/// Server and client together: a full TCP transfer from `client` to `server`.
pub fn tcp_transfer(
    client: &Container,
    server: &Container,
    server_ip: &str,
    port: u16,
    bytes: &str,
    reverse: bool,
) -> Result<Transfer> {
    start_iperf3_server(server, port)?;
    iperf3_client(
        client,
        server_ip,
        port,
        bytes,
        reverse,
        Duration::from_secs(60),
    )
}
