//! The Debian package and the quadlet units, on a lab host with the trixie root fs (podman 5,
//! netavark, Open vSwitch, dpkg, quadlet):
//!
//! * `contrib/deb/build.sh` builds the package from the binary under test; installed with
//!   `dpkg -i` on a host that has no plugin, `podman info` lists the driver and a network works;
//!   `dpkg -r` takes the driver away, `dpkg -P` leaves not one file behind (the host's file tree
//!   is compared with its state before the installation);
//! * the documented `contrib/quadlet/net1.network` and `web.container` pass quadlet's dry run,
//!   the network command the unit generates makes the network `net1` exactly as the hand-made
//!   command does (same VNI and subnet), and the container unit joins it. Without
//!   `NetworkName=`, the same unit would make `systemd-net1`, another overlay.

mod podman_lab;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{bail, ensure, Context, Result};
use podman_lab::{ok, stdout, Host, PodmanLab, PLUGIN};

const SETTLE: Duration = Duration::from_secs(20);
const PLUGIN_PATH: &str = "/usr/libexec/netavark/geneve-ovs";
/// The hosts of the documented quadlet unit, and the lab's in their place.
const DOC_PEERS: &str = "192.168.0.10,192.168.0.11,192.168.0.12";
const LAB_PEERS: &str = "10.99.0.1,10.99.0.2,10.99.0.3";

/// A scratch directory of this process, removed when dropped (also on failure).
struct Scratch(PathBuf);

impl Scratch {
    fn new(tag: &str) -> Result<Scratch> {
        let dir = std::env::temp_dir().join(format!("geneve-ovs-{tag}-{}", std::process::id()));
        std::fs::create_dir_all(&dir)?;
        Ok(Scratch(dir))
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Builds the package of the binary under test with `contrib/deb/build.sh`; its path.
fn build_package(out: &Path) -> Result<PathBuf> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("contrib/deb/build.sh");
    let run = Command::new(&script)
        .arg(out)
        .env("GENEVE_OVS_BIN", PLUGIN)
        .output()
        .context("running contrib/deb/build.sh")?;
    ensure!(
        run.status.success(),
        "build.sh failed: {}",
        String::from_utf8_lossy(&run.stderr)
    );
    let deb = PathBuf::from(String::from_utf8_lossy(&run.stdout).trim());
    ensure!(deb.is_file(), "build.sh printed {deb:?}, not a file");
    Ok(deb)
}

fn dpkg_deb(args: &[&str]) -> Result<String> {
    let out = Command::new("dpkg-deb").args(args).output()?;
    ensure!(out.status.success(), "dpkg-deb {args:?} failed");
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The drivers `podman info` lists.
fn network_plugins(h: &Host) -> Result<String> {
    h.podman_ok(&["info", "--format", "{{.Plugins.Network}}"])
}

/// Every path of the host's root fs, but the kernel's, runtime and scratch trees, OVS's
/// database and podman's storage and network directory, which change with any use.
fn file_tree(h: &Host) -> Result<BTreeSet<String>> {
    const CHANGING: &[&str] = &[
        "/proc",
        "/sys",
        "/dev",
        "/run",
        "/tmp",
        "/var/tmp",
        "/var/lib/containers",
        "/var/cache",
        "/var/log",
        "/var/lib/openvswitch",
        "/etc/openvswitch",
        "/etc/containers/networks",
    ];
    let mut args = vec!["find", "/", "-xdev", "("];
    for (i, path) in CHANGING.iter().enumerate() {
        if i > 0 {
            args.push("-o");
        }
        args.extend(["-path", path]);
    }
    args.extend([")", "-prune", "-o", "-print"]);
    let out = h.exec_ok(&args)?;
    Ok(out.lines().map(str::to_string).collect())
}

#[test]
fn the_package_installs_works_and_purges_without_a_trace() -> Result<()> {
    let scratch = Scratch::new("deb")?;
    let deb = build_package(&scratch.0)?;
    let deb_str = deb.to_str().context("package path")?;

    // What the package holds and needs.
    let depends = dpkg_deb(&["-f", deb_str, "Depends"])?;
    for want in ["openvswitch-switch", "nftables", "podman (>= 4.5)"] {
        ensure!(depends.contains(want), "Depends lacks {want}: {depends}");
    }
    let contents = dpkg_deb(&["-c", deb_str])?;
    for path in [
        "./usr/libexec/netavark/geneve-ovs",
        "./usr/sbin/geneve-ovs -> ../libexec/netavark/geneve-ovs",
        "./usr/lib/systemd/system/geneve-ovs-gc.service",
        "./usr/lib/systemd/system/geneve-ovs-flows.service",
        "./usr/lib/firewalld/services/geneve.xml",
        "./usr/share/geneve-ovs/geneve-ovs.nft",
        "./usr/share/man/man1/geneve-ovs.1.gz",
        "./usr/share/man/man1/geneve-ovs-peers.1.gz",
        "./usr/share/man/man5/geneve-ovs-options.5.gz",
        "./usr/share/bash-completion/completions/geneve-ovs",
        "./usr/share/zsh/vendor-completions/_geneve-ovs",
        "./usr/share/fish/vendor_completions.d/geneve-ovs.fish",
    ] {
        ensure!(
            contents.contains(path),
            "the package lacks {path}:\n{contents}"
        );
    }

    let lab = PodmanLab::up("deb", 1)?;
    let h = lab.host(1);
    // The lab installs the plugin by hand: this host starts without it.
    h.exec_ok(&["rm", "-f", PLUGIN_PATH])?;
    h.exec_ok(&["rmdir", "/usr/libexec/netavark"])?;
    ensure!(
        !network_plugins(&h)?.contains("geneve-ovs"),
        "podman still sees the plugin"
    );
    let before = file_tree(&h)?;

    h.write_file("/tmp/geneve-ovs.deb", std::fs::read(&deb)?)?;
    h.exec_ok(&["dpkg", "-i", "/tmp/geneve-ovs.deb"])?;
    let plugins = network_plugins(&h)?;
    ensure!(
        plugins.contains("geneve-ovs"),
        "podman info lists {plugins}"
    );
    let version = h.exec_ok(&["geneve-ovs", "--version"])?;
    ensure!(
        version.trim() == format!("geneve-ovs {}", env!("CARGO_PKG_VERSION")),
        "{version}"
    );
    h.exec_ok(&[
        "test",
        "-L",
        "/etc/systemd/system/multi-user.target.wants/geneve-ovs-gc.service",
    ])
    .context("the boot-time gc unit is not enabled")?;
    h.exec_ok(&[
        "test",
        "-L",
        "/etc/systemd/system/ovs-vswitchd.service.wants/geneve-ovs-flows.service",
    ])
    .context("the flow-restore unit is not enabled")?;

    // A network works: two containers on it reach each other.
    h.create_network("net1", &["--internal", "--subnet", "192.168.120.0/24"])?;
    let c1 = h.run_sleeper("c1", "net1")?;
    let c2 = h.run_sleeper("c2", "net1")?;
    c1.wait_ping(&c2.ip("net1")?, SETTLE)?;
    let status = h.exec(&["geneve-ovs", "status", "net1"]);
    ensure!(ok(&status), "status: {}", stdout(&status));

    // Gone again: containers, network, its bridge (gc), then the package.
    h.podman_ok(&["rm", "-f", "-t", "0", "c1", "c2"])?;
    h.podman_ok(&["network", "rm", "net1"])?;
    h.exec_ok(&["geneve-ovs", "gc"])?;
    h.exec_ok(&["dpkg", "-r", "geneve-ovs"])?;
    ensure!(
        !network_plugins(&h)?.contains("geneve-ovs"),
        "removed, podman still lists it"
    );
    h.exec_ok(&["dpkg", "-P", "geneve-ovs"])?;
    h.exec_ok(&["rm", "-f", "/tmp/geneve-ovs.deb"])?;
    let status = h.exec(&["dpkg-query", "-W", "-f=${Status}", "geneve-ovs"]);
    ensure!(
        !ok(&status) || stdout(&status).contains("not-installed"),
        "dpkg still knows the package: {}",
        stdout(&status)
    );
    let after = file_tree(&h)?;
    // dpkg's own bookkeeping (status backups) may appear; nothing else may.
    let appeared: Vec<&String> = after
        .difference(&before)
        .filter(|p| !p.starts_with("/var/lib/dpkg/") || p.contains("geneve"))
        .collect();
    let vanished: Vec<&String> = before.difference(&after).collect();
    if !appeared.is_empty() || !vanished.is_empty() {
        bail!("after purge: left behind {appeared:?}, lost {vanished:?}");
    }
    ensure!(
        h.bridges()? == ["br-phy"],
        "bridges left: {:?}",
        h.bridges()?
    );
    let table = h.exec(&["nft", "list", "table", "inet", "geneve_ovs"]);
    ensure!(!ok(&table), "the nftables table is left");
    Ok(())
}

/// `quadlet -dryrun` over the units in /etc/containers/systemd of `h`.
fn quadlet_dry_run(h: &Host) -> Result<String> {
    let out = h.exec(&["/usr/libexec/podman/quadlet", "-dryrun"]);
    ensure!(
        ok(&out),
        "quadlet -dryrun failed: {}",
        podman_lab::stderr(&out)
    );
    Ok(stdout(&out))
}

/// The `ExecStart=` of the generated service `name` in a dry run's output.
fn exec_start(dry_run: &str, service: &str) -> Result<String> {
    let section = dry_run
        .split("---")
        .skip_while(|s| !s.contains(service))
        .nth(1)
        .with_context(|| format!("no {service} in:\n{dry_run}"))?;
    section
        .lines()
        .find_map(|l| l.strip_prefix("ExecStart="))
        .map(str::to_string)
        .with_context(|| format!("{service} has no ExecStart:\n{section}"))
}

#[test]
fn the_quadlet_units_make_the_same_network_as_the_hand_made_command() -> Result<()> {
    let lab = PodmanLab::up("quadlet", 1)?;
    let h = lab.host(1);
    let units = Path::new(env!("CARGO_MANIFEST_DIR")).join("contrib/quadlet");
    h.exec_ok(&["mkdir", "-p", "/etc/containers/systemd"])?;
    // The documented units, with the lab's underlay addresses for the documentation's.
    let localized = |unit: &str| -> Result<String> {
        Ok(std::fs::read_to_string(units.join(unit))?.replace(DOC_PEERS, LAB_PEERS))
    };
    for unit in ["net1.network", "web.container"] {
        h.write_file(
            &format!("/etc/containers/systemd/{unit}"),
            localized(unit)?.into_bytes(),
        )?;
    }
    let dry = quadlet_dry_run(&h)?;
    let create = exec_start(&dry, "net1-network.service")?;
    for want in [
        "network create",
        "--driver geneve-ovs",
        "--opt peers=",
        "--opt hosts=8",
    ] {
        ensure!(create.contains(want), "{want:?} missing from {create}");
    }
    ensure!(
        create.trim_end().ends_with(" net1"),
        "the network is not named net1: {create}"
    );
    let run = exec_start(&dry, "web.service")?;
    ensure!(
        run.contains("--network net1") || run.contains("--network=net1"),
        "web does not join net1: {run}"
    );
    let web_unit = dry
        .split("---")
        .skip_while(|s| !s.contains("web.service"))
        .nth(1)
        .unwrap_or_default();
    ensure!(
        web_unit.contains("Requires=net1-network.service"),
        "web is not ordered after its network:\n{web_unit}"
    );

    // The unit's command, as systemd would run it, makes the network the hand-made command
    // makes: same name, VNI, subnet and this host's range.
    let argv: Vec<&str> = create.split_whitespace().collect();
    h.exec_ok(&argv)?;
    let by_unit = h.inspect_network("net1")?;
    h.podman_ok(&["network", "rm", "net1"])?;
    let by_hand = h.create_network(
        "net1",
        &["--opt", &format!("peers={LAB_PEERS}"), "--opt", "hosts=8"],
    )?;
    h.podman_ok(&["network", "rm", "net1"])?;
    for key in ["vni", "peers", "hosts"] {
        ensure!(
            by_unit["options"][key] == by_hand["options"][key],
            "{key}: unit {} vs hand {}",
            by_unit["options"][key],
            by_hand["options"][key]
        );
    }
    ensure!(
        by_unit["subnets"] == by_hand["subnets"],
        "unit {} vs hand {}",
        by_unit["subnets"],
        by_hand["subnets"]
    );
    ensure!(by_unit["driver"] == "geneve-ovs");

    // Without NetworkName= the same unit names its network systemd-net1: another VNI.
    let unnamed = localized("net1.network")?
        .lines()
        .filter(|l| !l.starts_with("NetworkName="))
        .collect::<Vec<_>>()
        .join("\n");
    h.write_file("/etc/containers/systemd/net1.network", unnamed.into_bytes())?;
    let create = exec_start(&quadlet_dry_run(&h)?, "net1-network.service")?;
    ensure!(create.trim_end().ends_with(" systemd-net1"), "{create}");
    ensure!(
        geneve_ovs::naming::default_vni("systemd-net1") != geneve_ovs::naming::default_vni("net1")
    );
    Ok(())
}
