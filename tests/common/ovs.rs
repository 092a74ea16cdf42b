//! One private Open vSwitch instance: its own database, ovsdb-server and ovs-vswitchd,
//! all files in one directory, the switch daemon inside one network namespace.
//!
//! The machine has no OVS kernel module, so ovs-vswitchd runs with `--disable-system`:
//! only the userspace (`netdev`) datapath is offered in `Open_vSwitch.datapath_types`.
//! Without that flag it also lists `system`, and creating a `system` bridge then fails
//! (the bridge row exists, vswitchd logs "failed to open datapath").

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result};

use super::cmd::Cmd;
use super::process;

const SCHEMA: &str = "/usr/share/openvswitch/vswitch.ovsschema";

/// Seconds ovs-vsctl / ovs-appctl may wait for a daemon before giving up.
const CTL_TIMEOUT_SECS: u32 = 10;

/// Paths and commands of one OVS instance. Starting and stopping are explicit so that
/// robustness tests can take a daemon away and bring it back.
pub struct Ovs {
    dir: PathBuf,
    netns: String,
}

impl Ovs {
    /// Create the database in `dir` (which must exist); starts nothing.
    pub fn create(dir: &Path, netns: &str) -> Result<Self> {
        let ovs = Ovs {
            dir: dir.to_path_buf(),
            netns: netns.to_string(),
        };
        Cmd::new("ovsdb-tool")
            .arg("create")
            .arg(ovs.file("conf.db"))
            .arg(SCHEMA)
            .run()?;
        Ok(ovs)
    }

    /// An instance whose files already exist in `dir`: enough to stop its daemons.
    pub fn existing(dir: &Path) -> Self {
        Ovs {
            dir: dir.to_path_buf(),
            netns: String::new(),
        }
    }

    /// The directory holding db, sockets, pidfiles and logs (the instance's OVS_RUNDIR).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn file(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    /// `unix:<dir>/db.sock`, the database address for clients.
    pub fn db_remote(&self) -> String {
        format!("unix:{}", self.file("db.sock").display())
    }

    /// The directory path as a marker that appears in both daemons' command lines, so
    /// that a pid read from a pidfile is checked to be ours before it is signalled. The
    /// trailing slash keeps `.../h1` from matching `.../h10`.
    fn marker(&self) -> String {
        format!("{}/", self.dir.display())
    }

    /// A daemon command run inside the namespace, with every OVS directory pointing at
    /// the private one. `--detach` returns once the daemon is ready to serve.
    fn daemon(&self, program: &str, args: Vec<String>) -> Cmd {
        let dir = &self.dir;
        Cmd::in_netns(&self.netns, program, &args)
            .args([
                format!(
                    "--pidfile={}",
                    self.file(&format!("{program}.pid")).display()
                ),
                format!(
                    "--unixctl={}",
                    self.file(&format!("{program}.ctl")).display()
                ),
                format!(
                    "--log-file={}",
                    self.file(&format!("{program}.log")).display()
                ),
                "--detach".to_string(),
                "--no-chdir".to_string(),
            ])
            .env("OVS_RUNDIR", dir)
            .env("OVS_LOGDIR", dir)
            .env("OVS_DBDIR", dir)
            .timeout(Duration::from_secs(30))
    }

    pub fn start_ovsdb(&self) -> Result<()> {
        self.daemon(
            "ovsdb-server",
            vec![
                self.file("conf.db").display().to_string(),
                format!("--remote=punix:{}", self.file("db.sock").display()),
            ],
        )
        .run()
        .with_context(|| self.log_tail("ovsdb-server"))?;
        self.require_running("ovsdb-server")
    }

    /// `ovs-vsctl --no-wait init`: needed once after the database is created.
    pub fn init_db(&self) -> Result<()> {
        self.vsctl_cmd(&["--no-wait", "init"]).run()?;
        Ok(())
    }

    pub fn start_vswitchd(&self) -> Result<()> {
        self.daemon(
            "ovs-vswitchd",
            vec![self.db_remote(), "--disable-system".to_string()],
        )
        .run()
        .with_context(|| self.log_tail("ovs-vswitchd"))?;
        self.require_running("ovs-vswitchd")
    }

    /// ovs-vswitchd without `--disable-system`: it then offers the kernel datapath too
    /// (`Open_vSwitch.datapath_types` lists `system`), though this machine's kernel cannot
    /// realise a bridge of that type. Enough for what reads the database (`create`'s
    /// choices, the firewall), not for traffic on such a bridge.
    pub fn start_vswitchd_offering_system(&self) -> Result<()> {
        self.daemon("ovs-vswitchd", vec![self.db_remote()])
            .run()
            .with_context(|| self.log_tail("ovs-vswitchd"))?;
        self.require_running("ovs-vswitchd")
    }

    pub fn stop_vswitchd(&self) -> Result<()> {
        process::stop_by_pidfile(&self.file("ovs-vswitchd.pid"), &self.marker())
    }

    pub fn stop_ovsdb(&self) -> Result<()> {
        process::stop_by_pidfile(&self.file("ovsdb-server.pid"), &self.marker())
    }

    /// Stop both daemons, the switch first (it would only reconnect to the database).
    pub fn stop(&self) -> Result<()> {
        let a = self.stop_vswitchd();
        let b = self.stop_ovsdb();
        a.and(b)
    }

    /// Pid of the named daemon ("ovsdb-server" or "ovs-vswitchd") if it runs.
    pub fn pid(&self, program: &str) -> Option<i32> {
        process::pid_from_file(&self.file(&format!("{program}.pid")), &self.marker())
    }

    fn require_running(&self, program: &str) -> Result<()> {
        match self.pid(program) {
            Some(pid) => process::require_alive(pid, program),
            None => Err(anyhow::anyhow!(
                "{program} did not start\n{}",
                self.log_tail(program)
            )),
        }
    }

    /// The last lines of a daemon's log, for error messages.
    pub fn log_tail(&self, program: &str) -> String {
        let path = self.file(&format!("{program}.log"));
        match std::fs::read_to_string(&path) {
            Ok(s) => {
                let lines: Vec<&str> = s.lines().collect();
                let from = lines.len().saturating_sub(20);
                format!("{}:\n{}", path.display(), lines[from..].join("\n"))
            }
            Err(e) => format!("{}: {e}", path.display()),
        }
    }

    /// ovs-vsctl against this instance's database, with a bounded wait.
    pub fn vsctl_cmd<S: AsRef<str>>(&self, args: &[S]) -> Cmd {
        Cmd::new("ovs-vsctl")
            .arg(format!("--db={}", self.db_remote()))
            .arg(format!("--timeout={CTL_TIMEOUT_SECS}"))
            .args(args.iter().map(|a| a.as_ref()))
            .timeout(Duration::from_secs(u64::from(CTL_TIMEOUT_SECS) + 10))
    }

    /// ovs-appctl against this instance's ovs-vswitchd.
    pub fn appctl_cmd<S: AsRef<str>>(&self, args: &[S]) -> Cmd {
        Cmd::new("ovs-appctl")
            .arg(format!(
                "--target={}",
                self.file("ovs-vswitchd.ctl").display()
            ))
            .arg(format!("--timeout={CTL_TIMEOUT_SECS}"))
            .args(args.iter().map(|a| a.as_ref()))
            .timeout(Duration::from_secs(u64::from(CTL_TIMEOUT_SECS) + 10))
    }
}
