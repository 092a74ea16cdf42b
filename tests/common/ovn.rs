//! OVN in the lab: a central (northbound and southbound ovsdb-servers, ovn-northd) in the
//! underlay switch's namespace, reachable from every host at [`CENTRAL_IP`], and
//! ovn-controller on each host (userspace datapath, its underlay address as encap-ip).
//!
//! [`OvnLab::with_ssl_nb`] makes the northbound database listen on `ssl:` only, with a CA made
//! by `ovs-pki` in the lab's directory that signs the central's and every host's certificate,
//! each host's recorded in its Open vSwitch SSL table (`ovs-vsctl set-ssl`), as an operator
//! does once per host.
//!
//! Every daemon is started with its own pidfile in the lab's directory and stopped by pid
//! (checked against the command line) when the [`OvnLab`] is dropped, also on panic; the lab
//! itself is dropped after them, so its OVS daemons and namespaces go last.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{ensure, Context, Result};
use serde_json::Value;

use super::cmd::Cmd;
use super::podman::{self, setup};
use super::{ip, process, wait, Container, Host, Lab, Underlay};

/// The central's address on the underlay switch's bridge.
pub const CENTRAL_IP: &str = "10.99.0.250";
/// `--opt ovn=` for networks of this lab.
pub const NB_REMOTE: &str = "tcp:10.99.0.250:6641";
/// `--opt ovn=` for networks of a lab made by [`OvnLab::with_ssl_nb`].
pub const NB_SSL_REMOTE: &str = "ssl:10.99.0.250:6641";
const SB_REMOTE: &str = "tcp:10.99.0.250:6642";

/// The subnet of the OVN networks the tests make in this lab (inside the lab's namespaces).
pub const SUBNET: &str = "192.168.120.0/24";

/// podman's config of OVN network `name` on [`SUBNET`], its northbound database at `remote`
/// (the `ovn` option).
pub fn network_at(name: &str, remote: &str) -> Value {
    podman::network(name, SUBNET, None, &[("ovn", remote)])
}

/// The address of the `i`-th container of a test on [`SUBNET`].
pub fn container_ip(i: usize) -> String {
    format!("192.168.120.{}", 10 + i)
}

/// Sets up container `label` on `host` with address `address` from network `net` (as
/// `create` saved it). Returns the container and the request its teardown needs.
pub fn start(host: &Host, net: &Value, label: &str, address: &str) -> Result<(Container, Value)> {
    let c = host.container(label)?;
    let exec = podman::exec(net, label, &[address], None);
    setup(host, &c, &exec).with_context(|| format!("setup of {label} on {}", host.name()))?;
    Ok((c, exec))
}

/// The daemons of a central, as (pidfile stem, schema or program).
const CENTRAL_DAEMONS: &[&str] = &["ovn-northd", "ovsdb-nb", "ovsdb-sb"];

/// A lab whose hosts are OVN chassis.
pub struct OvnLab {
    central: PathBuf,
    /// Whether NB listens on `ssl:` (and every host has its certificate in its SSL table).
    ssl: bool,
    /// Hosts whose ovn-controller was started.
    controllers: Vec<usize>,
    lab: Lab,
}

impl OvnLab {
    /// A lab of `n_hosts` hosts with the central running and ovn-controller on hosts
    /// `1..=with_controllers`, each having made its `br-int`.
    pub fn new(n_hosts: usize, with_controllers: usize) -> Result<OvnLab> {
        Self::build(n_hosts, with_controllers, false)
    }

    /// As [`OvnLab::new`], with the northbound database reachable only over SSL
    /// ([`NB_SSL_REMOTE`]) and every host's key, certificate and the lab's CA in its SSL table.
    pub fn with_ssl_nb(n_hosts: usize, with_controllers: usize) -> Result<OvnLab> {
        Self::build(n_hosts, with_controllers, true)
    }

    fn build(n_hosts: usize, with_controllers: usize, ssl: bool) -> Result<OvnLab> {
        let lab = Lab::new(n_hosts, Underlay::V4)?;
        let central = lab.dir().join("central");
        let mut ovn = OvnLab {
            central,
            ssl,
            controllers: Vec::new(),
            lab,
        };
        std::fs::create_dir_all(&ovn.central)?;
        if ssl {
            let pki = ovn.pki();
            pki_init(&pki).context("making the lab's CA")?;
            for i in 1..=n_hosts {
                let (key, cert) = ovn.sign(&format!("host{i}"))?;
                ovn.host(i)
                    .vsctl(&["set-ssl", &key, &cert, &ovn.ca_cert()])?;
            }
        }
        ovn.start_central().context("starting the OVN central")?;
        for i in 1..=with_controllers {
            ovn.join(i)?;
        }
        Ok(ovn)
    }

    /// `--opt ovn=` for networks of this lab.
    pub fn nb_remote(&self) -> &'static str {
        if self.ssl {
            NB_SSL_REMOTE
        } else {
            NB_REMOTE
        }
    }

    /// podman's config of OVN network `name` on [`SUBNET`] for this lab's northbound
    /// database ([`OvnLab::nb_remote`]).
    pub fn network(&self, name: &str) -> Value {
        network_at(name, self.nb_remote())
    }

    /// `create` of `net` on hosts `1..=n`, each required to have saved this lab's
    /// northbound database as the `ovn` option. Returns the saved configs in host order.
    pub fn create_on_hosts(&self, n: usize, net: &Value) -> Result<Vec<Value>> {
        (1..=n)
            .map(|i| {
                let saved = podman::create(self.host(i), net)?;
                ensure!(
                    saved["options"]["ovn"] == self.nb_remote(),
                    "create on host {i} saved another ovn option: {saved}"
                );
                Ok(saved)
            })
            .collect()
    }

    /// One container per host of `saved` (as [`OvnLab::create_on_hosts`] returns them):
    /// `c{i}` on host `i` at [`container_ip`]`(i)`. Returns each with its teardown request.
    pub fn start_containers(&self, saved: &[Value]) -> Result<Vec<(Container, Value)>> {
        (1..=saved.len())
            .map(|i| {
                start(
                    self.host(i),
                    &saved[i - 1],
                    &format!("c{i}"),
                    &container_ip(i),
                )
            })
            .collect()
    }

    /// The names of the northbound database's logical switches.
    pub fn switches(&self) -> Result<Vec<String>> {
        Ok(self
            .nbctl(&["--bare", "--columns=name", "list", "Logical_Switch"])?
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .map(str::to_string)
            .collect())
    }

    /// The lab's CA (`ovs-pki` directory).
    fn pki(&self) -> PathBuf {
        self.central.join("pki")
    }

    /// The certificate of the lab's CA, which signed every certificate of [`OvnLab::sign`].
    pub fn ca_cert(&self) -> String {
        self.pki().join("switchca/cacert.pem").display().to_string()
    }

    /// A new key and certificate named `name`, signed by the lab's CA: (key, certificate).
    pub fn sign(&self, name: &str) -> Result<(String, String)> {
        pki_sign(&self.pki(), &self.central.join("certs"), name)
    }

    pub fn lab(&self) -> &Lab {
        &self.lab
    }

    pub fn host(&self, i: usize) -> &Host {
        self.lab.host(i)
    }

    fn start_central(&self) -> Result<()> {
        let sw = self.lab.switch_netns();
        ip(&[
            "-n",
            &sw,
            "addr",
            "add",
            &format!("{CENTRAL_IP}/24"),
            "dev",
            "br0",
        ])?;
        for (db, schema, port) in [
            ("nb", "/usr/share/ovn/ovn-nb.ovsschema", 6641),
            ("sb", "/usr/share/ovn/ovn-sb.ovsschema", 6642),
        ] {
            let file = self.central.join(format!("{db}.db"));
            Cmd::new("ovsdb-tool")
                .arg("create")
                .arg(&file)
                .arg(schema)
                .run()?;
            let mut args = vec![
                file.display().to_string(),
                format!(
                    "--remote=punix:{}",
                    self.central.join(format!("{db}.sock")).display()
                ),
            ];
            if self.ssl && db == "nb" {
                let (key, cert) = self.sign("central")?;
                args.extend([
                    format!("--remote=pssl:{port}:{CENTRAL_IP}"),
                    format!("--private-key={key}"),
                    format!("--certificate={cert}"),
                    format!("--ca-cert={}", self.ca_cert()),
                ]);
            } else {
                args.push(format!("--remote=ptcp:{port}:{CENTRAL_IP}"));
            }
            self.daemon(&sw, "ovsdb-server", &format!("ovsdb-{db}"), args)?;
        }
        self.start_northd()
    }

    /// Starts the central's ovn-northd (again, after [`OvnLab::stop_northd`]).
    pub fn start_northd(&self) -> Result<()> {
        self.daemon(
            &self.lab.switch_netns(),
            "ovn-northd",
            "ovn-northd",
            vec![
                format!("--ovnnb-db=unix:{}", self.central.join("nb.sock").display()),
                format!("--ovnsb-db=unix:{}", self.central.join("sb.sock").display()),
            ],
        )
    }

    /// Starts a daemon in `netns` with its pidfile, control socket and log named `stem`.
    fn daemon(&self, netns: &str, program: &str, stem: &str, args: Vec<String>) -> Result<()> {
        let dir = &self.central;
        Cmd::in_netns(netns, program, &args)
            .args([
                format!("--pidfile={}", dir.join(format!("{stem}.pid")).display()),
                format!("--unixctl={}", dir.join(format!("{stem}.ctl")).display()),
                format!("--log-file={}", dir.join(format!("{stem}.log")).display()),
                "--detach".to_string(),
                "--no-chdir".to_string(),
            ])
            .env("OVS_RUNDIR", dir)
            .env("OVN_RUNDIR", dir)
            .env("OVS_DBDIR", dir)
            .timeout(Duration::from_secs(30))
            .run()
            .with_context(|| {
                format!(
                    "starting {stem}: {}",
                    tail(&dir.join(format!("{stem}.log")))
                )
            })?;
        Ok(())
    }

    /// Host `i` becomes a chassis: ovn-controller's settings, then ovn-controller, then the
    /// wait for its `br-int`.
    pub fn join(&mut self, i: usize) -> Result<()> {
        self.configure(i)?;
        self.start_controller(i)
    }

    /// Only the Open_vSwitch settings ovn-controller needs (`system-id`, remotes, encap).
    pub fn configure(&self, i: usize) -> Result<()> {
        let host = self.lab.host(i);
        host.vsctl(&[
            "set",
            "open",
            ".",
            &format!("external_ids:system-id=chassis-{i}"),
            &format!("external_ids:ovn-remote={SB_REMOTE}"),
            "external_ids:ovn-encap-type=geneve",
            &format!("external_ids:ovn-encap-ip={}", host.underlay_ip()),
            "external_ids:ovn-bridge-datapath-type=netdev",
        ])?;
        Ok(())
    }

    /// Starts ovn-controller on host `i` and waits for its `br-int`.
    pub fn start_controller(&mut self, i: usize) -> Result<()> {
        let host = self.lab.host(i);
        let dir = host.ovs_rundir().to_path_buf();
        self.controllers.push(i);
        Cmd::in_netns(
            host.name(),
            "ovn-controller",
            &[format!("unix:{}", dir.join("db.sock").display())],
        )
        .args([
            format!("--pidfile={}", dir.join("ovn-controller.pid").display()),
            format!("--log-file={}", dir.join("ovn-controller.log").display()),
            "--detach".to_string(),
            "--no-chdir".to_string(),
        ])
        .env("OVS_RUNDIR", &dir)
        .env("OVN_RUNDIR", &dir)
        .timeout(Duration::from_secs(30))
        .run()
        .with_context(|| tail(&dir.join("ovn-controller.log")))?;
        wait::until(
            &format!("ovn-controller of {} to create br-int", host.name()),
            Duration::from_secs(20),
            || Ok(host.vsctl(&["br-exists", "br-int"]).is_ok()),
        )
    }

    /// Stops host `i`'s ovn-controller (by its pidfile, checked against its command line).
    pub fn stop_controller(&self, i: usize) -> Result<()> {
        let dir = self.lab.host(i).ovs_rundir();
        process::stop_by_pidfile(
            &dir.join("ovn-controller.pid"),
            &format!("{}/", dir.display()),
        )
    }

    /// Stops one of the central's daemons (`ovsdb-nb`, `ovsdb-sb`, `ovn-northd`).
    pub fn stop_central(&self, stem: &str) -> Result<()> {
        process::stop_by_pidfile(
            &self.central.join(format!("{stem}.pid")),
            &format!("{}/", self.central.display()),
        )
    }

    /// Stops the central's ovn-northd (by its pidfile): NB changes stop reaching SB, as while
    /// the central hosts re-elect after a reboot.
    pub fn stop_northd(&self) -> Result<()> {
        let marker = format!("{}/", self.central.display());
        process::stop_by_pidfile(&self.central.join("ovn-northd.pid"), &marker)
    }

    /// `ovn-nbctl ARGS` against the lab's northbound database.
    pub fn nbctl(&self, args: &[&str]) -> Result<String> {
        Cmd::new("ovn-nbctl")
            .arg(format!(
                "--db=unix:{}",
                self.central.join("nb.sock").display()
            ))
            .args(args)
            .timeout(Duration::from_secs(20))
            .run()
    }

    /// `ovn-sbctl ARGS` against the lab's southbound database.
    pub fn sbctl(&self, args: &[&str]) -> Result<String> {
        Cmd::new("ovn-sbctl")
            .arg(format!(
                "--db=unix:{}",
                self.central.join("sb.sock").display()
            ))
            .args(args)
            .timeout(Duration::from_secs(20))
            .run()
    }

    /// The log of a central daemon (`ovn-northd`, `ovsdb-nb`, `ovsdb-sb`), for failures.
    pub fn central_log(&self, stem: &str) -> String {
        tail(&self.central.join(format!("{stem}.log")))
    }
}

/// A new CA in `dir` (`ovs-pki init`), its log kept there too.
pub fn pki_init(dir: &Path) -> Result<()> {
    Cmd::new("ovs-pki")
        .arg(format!("--dir={}", dir.display()))
        .arg(format!("--log={}", dir.with_extension("log").display()))
        .arg("init")
        .timeout(Duration::from_secs(120))
        .run()?;
    Ok(())
}

/// A key and certificate `name` made in `work` and signed by the CA in `pki`, as
/// (key, certificate) paths.
pub fn pki_sign(pki: &Path, work: &Path, name: &str) -> Result<(String, String)> {
    std::fs::create_dir_all(work)?;
    // ovs-pki writes NAME-privkey.pem, NAME-req.pem and NAME-cert.pem in its working directory.
    Cmd::new("sh")
        .args([
            "-ec",
            "cd \"$1\" && shift && exec ovs-pki \"$@\"",
            "sh",
            &work.display().to_string(),
            &format!("--dir={}", pki.display()),
            &format!("--log={}", pki.with_extension("log").display()),
            "--force",
            "req+sign",
            name,
            "switch",
        ])
        .timeout(Duration::from_secs(120))
        .run()?;
    let file = |suffix: &str| {
        work.join(format!("{name}-{suffix}.pem"))
            .display()
            .to_string()
    };
    Ok((file("privkey"), file("cert")))
}

fn tail(log: &Path) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    let start = lines.len().saturating_sub(15);
    format!("{}:\n{}", log.display(), lines[start..].join("\n"))
}

/// Stops the OVN daemons whose pidfiles are in `dir` (a host's or the central's), checking
/// each pid's command line names `dir`. For this lab's Drop and for the stale-lab cleanup.
pub fn stop_in(dir: &Path) -> Vec<anyhow::Error> {
    let marker = format!("{}/", dir.display());
    let mut errors = Vec::new();
    for stem in ["ovn-controller"].iter().chain(CENTRAL_DAEMONS) {
        let pidfile = dir.join(format!("{stem}.pid"));
        if pidfile.exists() {
            if let Err(e) = process::stop_by_pidfile(&pidfile, &marker) {
                errors.push(e);
            }
        }
    }
    errors
}

impl Drop for OvnLab {
    fn drop(&mut self) {
        if std::thread::panicking() {
            for &i in &self.controllers {
                let dir = self.lab.host(i).ovs_rundir().to_path_buf();
                eprintln!("[ovn] {}", tail(&dir.join("ovn-controller.log")));
            }
            eprintln!("[ovn] {}", self.central_log("ovn-northd"));
        }
        let mut errors = Vec::new();
        for &i in &self.controllers {
            errors.extend(stop_in(self.lab.host(i).ovs_rundir()));
        }
        errors.extend(stop_in(&self.central));
        for e in errors {
            eprintln!("[ovn] cleanup: {e:#}");
        }
    }
}
