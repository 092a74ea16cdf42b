//! The OVN lab (`lab.sh up N --ovn`, see `contrib/lab/ovn.sh`): hosts 1..3 each run a member
//! of OVN's northbound and southbound Raft clusters and an ovn-northd, every host an
//! ovn-controller; hosts added later ([`PodmanLab::add_host`]) run only ovn-controller.
//! What the OVN-mode tests need beyond the mesh's harness: the NB remotes as the plugin's
//! `ovn` option takes them, the leader of a cluster, a host crashed and booted apart (a
//! leader taken away for a while), and OVN's own command-line clients in a host.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};

use super::cmd::describe;
use super::{ok, Datapath, Host, PodmanLab};

/// One of OVN's two clustered databases.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OvnDb {
    Northbound,
    Southbound,
}

impl OvnDb {
    fn lab_name(self) -> &'static str {
        match self {
            OvnDb::Northbound => "nb",
            OvnDb::Southbound => "sb",
        }
    }
}

/// What `lab.sh env` says of an OVN lab.
#[derive(Clone, Debug)]
pub struct OvnEnv {
    /// The NB remotes, comma-separated (`tcp:10.99.0.1:6641,...`): the plugin's `ovn` option.
    pub nb: String,
    /// The SB remotes, comma-separated.
    pub sb: String,
    /// Members per cluster (hosts 1..central).
    pub central: usize,
    /// Whether every connection is SSL.
    pub ssl: bool,
}

/// Where the SSL key, certificate and CA certificate sit in every host of an `--ovn-ssl` lab.
pub const SSL_FILES: [&str; 3] = [
    "/etc/ovn/ovn-privkey.pem",
    "/etc/ovn/ovn-cert.pem",
    "/etc/ovn/cacert.pem",
];

impl PodmanLab {
    /// `hosts` hosts with the plugin, OVN over TCP.
    pub fn up_ovn(name: &str, hosts: usize) -> Result<PodmanLab> {
        PodmanLab::up_with_flags(Datapath::Userspace, name, hosts, &["--ovn"])
    }

    /// `hosts` hosts with the plugin, OVN over SSL (an ovs-pki CA, a certificate per host).
    pub fn up_ovn_ssl(name: &str, hosts: usize) -> Result<PodmanLab> {
        PodmanLab::up_with_flags(Datapath::Userspace, name, hosts, &["--ovn-ssl"])
    }

    /// The OVN part of `lab.sh env`.
    pub fn ovn_env(&self) -> Result<OvnEnv> {
        let text = self.script().arg("env").run()?;
        let value = |key: &str| -> Option<String> {
            text.lines()
                .find_map(|l| l.strip_prefix(&format!("{key}=")))
                // printf %q escapes the commas of a remote list; nothing else in these values.
                .map(|v| v.replace('\\', ""))
        };
        ensure!(
            value("LAB_OVN").as_deref() == Some("1"),
            "the lab has no OVN (lab.sh up N --ovn):\n{text}"
        );
        Ok(OvnEnv {
            nb: value("LAB_OVN_NB").context("no LAB_OVN_NB in lab.sh env")?,
            sb: value("LAB_OVN_SB").context("no LAB_OVN_SB in lab.sh env")?,
            central: value("LAB_OVN_CENTRAL")
                .and_then(|v| v.parse().ok())
                .context("no LAB_OVN_CENTRAL in lab.sh env")?,
            ssl: value("LAB_OVN_SSL").as_deref() == Some("1"),
        })
    }

    /// `lab.sh add-host`: one more host with the lab's plugin; in an OVN lab only its
    /// ovn-controller runs, and nothing is done on the other hosts. Returns its index.
    pub fn add_host(&self) -> Result<usize> {
        let start = Instant::now();
        let out = self.script().arg("add-host").output_lossy();
        ensure!(ok(&out), "lab.sh add-host failed:\n{}", describe(&out));
        let index = self.hosts.load(Ordering::SeqCst) + 1;
        self.hosts.store(index, Ordering::SeqCst);
        eprintln!(
            "[e2e {}] host {index} added ({:.1?})",
            self.name,
            start.elapsed()
        );
        Ok(index)
    }

    /// The central host whose member of `db` is the Raft leader now, waiting up to `timeout`
    /// for there to be one.
    pub fn ovn_leader(&self, db: OvnDb, timeout: Duration) -> Result<usize> {
        let start = Instant::now();
        loop {
            let out = self
                .script()
                .args(["ovn-leader", db.lab_name()])
                .output_lossy();
            if ok(&out) {
                let text = String::from_utf8_lossy(&out.stdout);
                return text
                    .trim()
                    .parse()
                    .with_context(|| format!("lab.sh ovn-leader printed {text:?}"));
            }
            if start.elapsed() > timeout {
                bail!("no {db:?} leader within {timeout:?}:\n{}", describe(&out));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Host<'_> {
    /// `lab.sh crash H`: the power cut half of a reboot. Every process of the host is killed
    /// (containers, OVS, its OVN database members, northd and ovn-controller); the host stays
    /// down until [`Host::boot`].
    pub fn crash(&self) -> Result<()> {
        self.lab_verb("crash")
    }

    /// `lab.sh boot H`: OVS, the underlay and the host's OVN daemons start again from their
    /// files; containers stay stopped until `podman start`.
    pub fn boot(&self) -> Result<()> {
        self.lab_verb("boot")
    }

    fn lab_verb(&self, verb: &str) -> Result<()> {
        let start = Instant::now();
        let out = self
            .lab
            .script()
            .args([verb, &self.index.to_string()])
            .output_lossy();
        eprintln!("{} {verb} ({:.1?})", self.tag(), start.elapsed());
        ensure!(
            ok(&out),
            "lab.sh {verb} {} failed:\n{}",
            self.index,
            describe(&out)
        );
        Ok(())
    }

    /// `ovn-nbctl ARGS...` in this host against the lab's NB cluster (with the host's
    /// certificate in an SSL lab); returns stdout.
    pub fn nbctl(&self, args: &[&str]) -> Result<String> {
        let env = self.lab.ovn_env()?;
        self.ovn_ctl("ovn-nbctl", &env.nb, env.ssl, args)
    }

    /// `ovn-sbctl ARGS...` in this host against the lab's SB cluster.
    pub fn sbctl(&self, args: &[&str]) -> Result<String> {
        let env = self.lab.ovn_env()?;
        self.ovn_ctl("ovn-sbctl", &env.sb, env.ssl, args)
    }

    fn ovn_ctl(&self, tool: &str, db: &str, ssl: bool, args: &[&str]) -> Result<String> {
        let db_arg = format!("--db={db}");
        let mut full = vec![tool, "--timeout=20", db_arg.as_str()];
        let [key, cert, ca] = SSL_FILES.map(String::from);
        let ssl_args = [
            format!("--private-key={key}"),
            format!("--certificate={cert}"),
            format!("--ca-cert={ca}"),
        ];
        if ssl {
            full.extend(ssl_args.iter().map(String::as_str));
        }
        full.extend_from_slice(args);
        self.exec_ok(&full)
    }
}
