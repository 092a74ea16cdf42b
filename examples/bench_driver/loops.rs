//! The timed loops, each printing one sample per line on stdout as `series<TAB>rep<TAB>value`
//! (the format `report` reads). Only plugin processes are timed; namespaces and bridge removal
//! happen outside the timed part. Every loop undoes what it set up, also when it fails half-way.

use std::io::Write;
use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde_json::Value;

use crate::host::{self, delete_bridge, Namespaces};
use crate::plugin::{Plugin, Run};
use crate::requests;

/// Untimed setup/teardown cycles before the timed ones: the first runs pay for cold caches.
const WARMUP: usize = 3;

/// Where the samples go.
pub struct Samples<W: Write> {
    out: W,
}

impl<W: Write> Samples<W> {
    pub fn new(out: W) -> Self {
        Samples { out }
    }

    pub fn put(&mut self, series: &str, rep: usize, value: f64) -> Result<()> {
        writeln!(self.out, "{series}\t{rep}\t{value:.4}").context("writing a sample")?;
        self.out.flush().context("writing a sample")
    }

    /// Wall time and peak RSS of one plugin run.
    fn run(&mut self, series: &str, rep: usize, run: &Run) -> Result<()> {
        self.put(&format!("{series}_ms"), rep, run.millis())?;
        let command = series.rsplit('.').next().unwrap_or(series);
        self.put(&format!("rss_kib.{command}"), rep, run.max_rss_kib as f64)
    }
}

/// A container the plugin set up; torn down (untimed) on drop unless `teardown` ran.
struct Attached<'a> {
    plugin: &'a Plugin,
    netns: PathBuf,
    request: String,
    done: bool,
}

impl<'a> Attached<'a> {
    fn setup(plugin: &'a Plugin, netns: &Path, request: String) -> Result<(Attached<'a>, Run)> {
        let run = plugin.run(&["setup", &path_str(netns)?], &request)?;
        Ok((
            Attached {
                plugin,
                netns: netns.to_path_buf(),
                request,
                done: false,
            },
            run,
        ))
    }

    fn teardown(mut self) -> Result<Run> {
        self.done = true;
        self.plugin
            .run(&["teardown", &path_str(&self.netns)?], &self.request)
    }
}

impl Drop for Attached<'_> {
    fn drop(&mut self) {
        if self.done {
            return;
        }
        let netns = self.netns.display().to_string();
        if let Err(err) = self.plugin.run(&["teardown", &netns], &self.request) {
            eprintln!("bench-driver: cleanup teardown failed: {err:#}");
        }
    }
}

fn path_str(path: &Path) -> Result<String> {
    path.to_str()
        .map(str::to_string)
        .with_context(|| format!("path {} is not UTF-8", path.display()))
}

/// `runs` setup/teardown pairs of one container on `network` (as podman saved it), after
/// [`WARMUP`] untimed pairs. Series `<label>.setup_ms`, `<label>.teardown_ms`; repetitions
/// numbered from `first_rep` (a run made of several chunks numbers them on).
pub fn cycle<W: Write>(
    plugin: &Plugin,
    network: &Value,
    runs: usize,
    label: &str,
    first_rep: usize,
    samples: &mut Samples<W>,
) -> Result<()> {
    let mut namespaces = Namespaces::new();
    let netns = namespaces.add("cycle")?;
    let ip = requests::nth_address(&requests::first_subnet(network)?, 0)?;
    for i in 0..WARMUP + runs {
        let request = requests::exec(network, &format!("{label}-{i}"), ip).to_string();
        let (attached, setup) = Attached::setup(plugin, &netns, request)
            .with_context(|| format!("{label}: setup {i}"))?;
        let teardown = attached
            .teardown()
            .with_context(|| format!("{label}: teardown {i}"))?;
        if i >= WARMUP {
            let rep = first_rep + i - WARMUP;
            samples.run(&format!("{label}.setup"), rep, &setup)?;
            samples.run(&format!("{label}.teardown"), rep, &teardown)?;
        }
    }
    Ok(())
}

/// Sets up `count` containers one after the other on `network`, keeping them, then tears them
/// all down: series `<series>.setup_ms` and `<series>.teardown_ms` (`scale` for the mesh
/// mode's run), rep = the container's number; and `<series>.link_event_netlink` with none and
/// with all of them attached (see [`link_event_cost`]).
pub fn fill<W: Write>(
    plugin: &Plugin,
    network: &Value,
    count: usize,
    series: &str,
    samples: &mut Samples<W>,
) -> Result<()> {
    let mut namespaces = Namespaces::new();
    let subnet = requests::first_subnet(network)?;
    let mut paths = Vec::with_capacity(count);
    for i in 0..count {
        paths.push(namespaces.add(&format!("f{i}"))?);
    }
    link_event_cost(&format!("{series}.link_event_netlink"), 0, samples)?;
    let mut attached = Vec::with_capacity(count);
    for (i, netns) in paths.iter().enumerate() {
        let ip = requests::nth_address(&subnet, u32::try_from(i)?)?;
        let request = requests::exec(network, &format!("fill-{i}"), ip).to_string();
        let (container, run) = Attached::setup(plugin, netns, request)
            .with_context(|| format!("setup of container {i}"))?;
        attached.push(container);
        samples.run(&format!("{series}.setup"), i, &run)?;
    }
    link_event_cost(&format!("{series}.link_event_netlink"), count, samples)?;
    for (i, container) in attached.into_iter().enumerate() {
        let run = container
            .teardown()
            .with_context(|| format!("teardown of container {i}"))?;
        samples.run(&format!("{series}.teardown"), i, &run)?;
    }
    Ok(())
}

/// Repetitions of [`host::vswitchd_requests_for_a_foreign_link`] at each end of a fill: its
/// stats refresh (one request per port every 5 s) falls into some, and the median drops them.
const LINK_EVENT_REPS: usize = 5;

/// What ovs-vswitchd sends for a link change that is none of its business, with `containers`
/// containers on the bridge: series `series`, rep = the number of containers. Untimed.
fn link_event_cost<W: Write>(
    series: &str,
    containers: usize,
    samples: &mut Samples<W>,
) -> Result<()> {
    for _ in 0..LINK_EVENT_REPS {
        let requests = host::vswitchd_requests_for_a_foreign_link()?;
        samples.put(series, containers, requests)?;
    }
    Ok(())
}

/// `create` of a new network with each number of peers in `sizes`, `runs` times, the sizes
/// rotated from one run to the next so that drift spreads over all of them; the bridge is
/// removed (untimed) after each. Series `peers-<n>.create_ms`.
pub fn create_peers<W: Write>(
    plugin: &Plugin,
    sizes: &[u32],
    first_peer: Ipv4Addr,
    runs: usize,
    samples: &mut Samples<W>,
) -> Result<()> {
    for r in 0..runs {
        for k in 0..sizes.len() {
            let size = sizes[(k + r) % sizes.len()];
            let name = format!("bench-p{size}-{r}");
            let peers = requests::peer_addresses(first_peer, size);
            let network = requests::network(&name, "10.124.0.0/16", &peers);
            let run = plugin
                .run(&["create"], &network.to_string())
                .with_context(|| format!("create with {size} peers"))?;
            let saved: Value = serde_json::from_str(&run.stdout).context("create's output")?;
            let bridge = saved["network_interface"]
                .as_str()
                .context("create returned no network_interface")?;
            delete_bridge(bridge)?;
            samples.run(&format!("peers-{size}.create"), r, &run)?;
        }
    }
    Ok(())
}

/// `count` networks on this host, one after the other: each is created and gets one container,
/// so the n-th `create` and `setup` run with n-1 networks present. Series `networks.create_ms`
/// and `networks.setup_ms`, rep = the network's number; `options` are extra `--opt K=V`.
/// Everything is removed at the end.
pub fn networks<W: Write>(
    plugin: &Plugin,
    count: usize,
    peer: Ipv4Addr,
    options: &[(&str, &str)],
    samples: &mut Samples<W>,
) -> Result<()> {
    let mut namespaces = Namespaces::new();
    let mut bridges = Bridges(Vec::new());
    let mut attached = Vec::new();
    for i in 0..count {
        let name = format!("bench-n{i}");
        let subnet = format!("10.125.{i}.0/24");
        let network = requests::network_with(&name, &subnet, &[peer], options);
        let run = plugin
            .run(&["create"], &network.to_string())
            .with_context(|| format!("create of network {i}"))?;
        let saved: Value = serde_json::from_str(&run.stdout).context("create's output")?;
        if let Some(bridge) = saved["network_interface"].as_str() {
            bridges.0.push(bridge.to_string());
        }
        samples.run("networks.create", i, &run)?;

        let netns = namespaces.add(&format!("n{i}"))?;
        let ip: IpAddr = requests::nth_address(&subnet, 0)?;
        let request = requests::exec(&saved, &format!("net-{i}"), ip).to_string();
        let (container, run) = Attached::setup(plugin, &netns, request)
            .with_context(|| format!("setup on network {i}"))?;
        attached.push(container);
        samples.run("networks.setup", i, &run)?;
    }
    for container in attached {
        container.teardown()?;
    }
    Ok(())
}

/// Bridges of the networks made by [`networks`], removed on drop (after the containers, which
/// are declared later and so dropped first).
struct Bridges(Vec<String>);

impl Drop for Bridges {
    fn drop(&mut self) {
        for bridge in &self.0 {
            if let Err(err) = delete_bridge(bridge) {
                eprintln!("bench-driver: {err:#}");
            }
        }
    }
}

/// The same growth measured on Open vSwitch alone, for reference: `count` veths whose other end
/// sits in a namespace with IPv6 off (so they never send anything), each added by hand with
/// `ovs-vsctl add-port` (which, like the plugin, waits for ovs-vswitchd to apply the change) to a
/// bridge on `datapath`. Series `scale.ovs_add_port_ms`, rep = the port's number.
pub fn ovs_ports<W: Write>(datapath: &str, count: usize, samples: &mut Samples<W>) -> Result<()> {
    let mut namespaces = Namespaces::new();
    let peers = namespaces.add_named("ovsref")?;
    host::ip(&[
        "netns",
        "exec",
        &peers,
        "sysctl",
        "-qw",
        "net.ipv6.conf.all.disable_ipv6=1",
        "net.ipv6.conf.default.disable_ipv6=1",
    ])?;
    let pid = std::process::id();
    let bridge = format!("gobr{pid}");
    let mut bridges = Bridges(Vec::new());
    host::vsctl(&[
        "add-br",
        &bridge,
        "--",
        "set",
        "Bridge",
        &bridge,
        &format!("datapath_type={datapath}"),
    ])?;
    bridges.0.push(bridge.clone());
    let vsctl = Plugin {
        path: PathBuf::from("ovs-vsctl"),
    };
    for i in 0..count {
        // Deleting the namespace at the end deletes these pairs with it.
        let name = format!("gor{pid}-{i}");
        let peer = format!("p{i}");
        host::ip(&[
            "link", "add", &name, "type", "veth", "peer", "name", &peer, "netns", &peers,
        ])?;
        std::fs::write(format!("/proc/sys/net/ipv6/conf/{name}/disable_ipv6"), "1")
            .with_context(|| format!("turning IPv6 off on {name}"))?;
        host::ip(&["link", "set", &name, "up"])?;
        let run = vsctl.run(&["add-port", &bridge, &name], "")?;
        samples.put("scale.ovs_add_port_ms", i, run.millis())?;
    }
    Ok(())
}

/// The port flows `setup` and `teardown` change, installed and deleted the two ways side by
/// side on one secure bridge with one port: with `ovs-ofctl --bundle add-flows` (a process per
/// change, as before) and in-process over the bridge's management socket ([`Switch`]), in
/// turn, `count` times each. Only the flow change is timed. Series `flows.ofctl_setup_ms`,
/// `flows.ofctl_teardown_ms`, `flows.openflow_setup_ms`, `flows.openflow_teardown_ms`.
pub fn flows<W: Write>(count: usize, samples: &mut Samples<W>) -> Result<()> {
    use geneve_ovs::flows::{self as of, FlowChange, PortIdentity};
    use geneve_ovs::ofctl::Ofctl;
    use geneve_ovs::openflow::Switch;
    use std::time::Instant;

    let pid = std::process::id();
    let bridge = format!("gofl{pid}");
    let port = format!("gvfl{pid}");
    let mut bridges = Bridges(Vec::new());
    host::vsctl(&[
        "add-br",
        &bridge,
        "--",
        "set",
        "Bridge",
        &bridge,
        "datapath_type=netdev",
        "fail_mode=secure",
        "--",
        "add-port",
        &bridge,
        &port,
        "--",
        "set",
        "Interface",
        &port,
        "type=internal",
    ])?;
    bridges.0.push(bridge.clone());
    let rundir = geneve_ovs::ovsdb::Client::default_socket()
        .parent()
        .map_or_else(|| PathBuf::from("/"), Path::to_path_buf);
    let identity = PortIdentity {
        port: port.clone(),
        mac: [0x02, 0, 0, 0, 0, 5],
        addresses: vec!["10.130.0.5".parse()?, "fd00:130::5".parse()?],
        gateway_mac: [0x02, 0, 0, 0, 0, 1],
    };
    let cookie = of::port_cookie(&port);
    let mut install = of::replace_cookie(of::base_cookie(130), &of::base_flows(130));
    install.extend(of::replace_cookie(cookie, &of::port_flows(&identity, true)));
    let remove = [FlowChange::DeleteCookie(cookie)];
    let ofctl = Ofctl::new(&rundir);
    let switch = Switch::new(&rundir);
    let timed = |apply: &dyn Fn(&[FlowChange]) -> Result<()>, changes: &[FlowChange]| {
        let start = Instant::now();
        apply(changes).map(|()| start.elapsed().as_secs_f64() * 1000.0)
    };
    let by_ofctl = |changes: &[FlowChange]| ofctl.apply(&bridge, changes);
    let in_process = |changes: &[FlowChange]| switch.apply(&bridge, changes);
    for rep in 0..WARMUP + count {
        let times = [
            timed(&by_ofctl, &install)?,
            timed(&by_ofctl, &remove)?,
            timed(&in_process, &install)?,
            timed(&in_process, &remove)?,
        ];
        if rep >= WARMUP {
            let rep = rep - WARMUP;
            samples.put("flows.ofctl_setup_ms", rep, times[0])?;
            samples.put("flows.ofctl_teardown_ms", rep, times[1])?;
            samples.put("flows.openflow_setup_ms", rep, times[2])?;
            samples.put("flows.openflow_teardown_ms", rep, times[3])?;
        }
    }
    Ok(())
}
