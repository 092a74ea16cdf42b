//! End-to-end lab with real podman: the simulated hosts of `contrib/lab/lab.sh`, each a
//! network namespace plus a mount namespace whose root is a Debian trixie tree with its own
//! Open vSwitch, podman 5 and netavark, and the freshly built plugin installed as
//! `/usr/libexec/netavark/geneve-ovs`.
//!
//! Two datapaths, one harness ([`Datapath`]): on this machine, OVS's userspace datapath
//! ([`PodmanLab::up`]); in a QEMU guest running Debian's kernel, OVS's kernel datapath, as
//! production hosts run it ([`PodmanLab::up_kernel`], `lab.sh up N --kernel`). Every method works
//! the same on both: `lab.sh` forwards its verbs into the guest.
//!
//! Use from a test file as `mod podman_lab;` and start with [`PodmanLab::up`]:
//!
//! ```text
//! let lab = PodmanLab::up("seed", 2)?;            // hosts 1 and 2, underlay 10.99.0.1/.2
//! let h1 = lab.host(1);
//! h1.podman_ok(&["network", "create", "-d", "geneve-ovs", ...])?;
//! let c = h1.run_sleeper("c1", "net1")?;          // busybox container, NET_RAW for ping
//! c.wait_ping("192.168.120.129", SETTLE)?;
//! ```
//!
//! Each lab lives in a directory of its own under [`LABS_ROOT`] (its namespace names derive
//! from that path, so labs of parallel tests never collide). Dropping the [`PodmanLab`], also
//! when the test panics, runs `lab.sh down` and removes the directory; labs of a test process
//! that was killed outright are removed by the next [`PodmanLab::up`]. The root filesystem is
//! built once by `contrib/lab/rootfs.sh` and cached (`LAB_CACHE`, default
//! `/var/cache/geneve-ovs-lab`); concurrent first calls wait on its lock for the one build.
//!
//! Facts the tests rely on (see `contrib/lab/README.md`):
//! * host i has the underlay addresses 10.99.0.i/24 and fd99::i/64 on its OVS bridge `br-phy`,
//!   MTU 1500; its ovs-vswitchd offers the userspace (`netdev`) datapath only, or in the kernel
//!   mode the kernel's (`system`) as well ([`PodmanLab::datapath`]);
//! * the image `localhost/busybox` has busybox applets (`ping` needs `--cap-add NET_RAW`, and
//!   has no `-M`), `/var/www/index.html` and Debian's `/etc/motd`;
//! * tools of the host's root fs (iputils `ping -M do`, iproute2 `ip -j`) run in a container's
//!   network namespace with `nsenter -t PID -n` ([`Container::in_netns`]);
//! * the underlay switch namespace stands for the world outside the hosts
//!   ([`PodmanLab::outside`], `lab.sh switch`).
//!
//! The command runner, the polling helper and the tiny DNS server are the netns harness's
//! (`tests/common/`), shared as they are.

// Each test binary compiles this module on its own and uses only part of it.
#![allow(dead_code)]

#[path = "../common/cmd.rs"]
pub mod cmd;
#[path = "../common/dns.rs"]
pub mod dns;
pub mod netns;
pub mod ovn;
pub mod resolv_conf;
#[path = "../common/wait.rs"]
pub mod wait;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Once;
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};
use serde_json::Value;

use cmd::{describe, Cmd};

/// Where the labs of the tests live, one directory per lab.
pub const LABS_ROOT: &str = "/var/tmp/geneve-ovs-e2e";
/// The image every lab host has (imported from the cached busybox tarball).
pub const IMAGE: &str = "localhost/busybox";
/// MTU of the lab's underlay (veths and `br-phy`).
pub const UNDERLAY_MTU: u32 = 1500;
/// The plugin binary under test.
pub const PLUGIN: &str = env!("CARGO_BIN_EXE_geneve-ovs");

/// The binary the labs install: [`PLUGIN`], or the one `LAB_TEST_PLUGIN` names (to check that
/// a test fails against a deliberately broken build).
pub fn plugin_under_test() -> String {
    match std::env::var("LAB_TEST_PLUGIN") {
        Ok(path) if !path.is_empty() => {
            eprintln!("[e2e] LAB_TEST_PLUGIN: installing {path} instead of {PLUGIN}");
            path
        }
        _ => PLUGIN.to_string(),
    }
}

/// `up` may build the root filesystem first (a minute or two on a cold cache, longer on a
/// slow mirror).
const UP_TIMEOUT: Duration = Duration::from_secs(20 * 60);
/// `down` removes containers with podman first, then whatever is left.
const DOWN_TIMEOUT: Duration = Duration::from_secs(5 * 60);
/// Any podman or host command.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(120);

fn lab_script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("contrib/lab/lab.sh")
}

/// The OVS datapath a lab's hosts run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Datapath {
    /// `netdev`: ovs-vswitchd's userspace datapath, on this machine.
    Userspace,
    /// `system`: the kernel's `openvswitch` module, in the lab's QEMU guest.
    Kernel,
}

impl Datapath {
    /// The name OVS (and the plugin's `datapath` option) gives it.
    pub fn ovs_name(self) -> &'static str {
        match self {
            Datapath::Userspace => "netdev",
            Datapath::Kernel => "system",
        }
    }
}

/// A running lab of `hosts` simulated podman hosts; removed on drop.
pub struct PodmanLab {
    name: String,
    dir: PathBuf,
    /// How many hosts it has now (atomic: [`PodmanLab::add_host`] adds one while containers of
    /// the others, which borrow the lab, keep running).
    hosts: AtomicUsize,
    prefix: String,
    switch_netns: PathBuf,
    started: Instant,
    datapath: Datapath,
    /// False for a view of the first hosts of another lab ([`PodmanLab::first_hosts`]):
    /// dropping it leaves the lab up.
    owned: bool,
}

impl PodmanLab {
    /// Brings up `hosts` hosts with the plugin installed in each, on the userspace datapath.
    /// `name` names the lab's directory (with this process's id), for the messages and for
    /// finding leftovers.
    pub fn up(name: &str, hosts: usize) -> Result<PodmanLab> {
        PodmanLab::up_with(Datapath::Userspace, name, hosts)
    }

    /// The same in the QEMU guest, on the kernel datapath (`lab.sh up N --kernel`). Fails,
    /// never skips, when the guest cannot start (no QEMU, no kernel package, ...).
    pub fn up_kernel(name: &str, hosts: usize) -> Result<PodmanLab> {
        PodmanLab::up_with(Datapath::Kernel, name, hosts)
    }

    pub fn up_with(datapath: Datapath, name: &str, hosts: usize) -> Result<PodmanLab> {
        PodmanLab::up_with_flags(datapath, name, hosts, &[])
    }

    /// `lab.sh up HOSTS [--kernel] FLAGS... --plugin PLUGIN`.
    fn up_with_flags(
        datapath: Datapath,
        name: &str,
        hosts: usize,
        flags: &[&str],
    ) -> Result<PodmanLab> {
        remove_stale_labs();
        let started = Instant::now();
        let dir = Path::new(LABS_ROOT).join(format!("{name}-{}", std::process::id()));
        fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        fs::write(dir.join(OWNER_FILE), owner_stamp(std::process::id())?)
            .context("writing the lab's owner file")?;
        // Built before `up` runs, so that a failed or half-made lab is removed by Drop too.
        let mut lab = PodmanLab {
            name: name.to_string(),
            dir,
            hosts: AtomicUsize::new(hosts),
            prefix: String::new(),
            switch_netns: PathBuf::new(),
            started,
            datapath,
            owned: true,
        };
        let mut args = vec!["up".to_string(), hosts.to_string()];
        if datapath == Datapath::Kernel {
            args.push("--kernel".to_string());
        }
        args.extend(flags.iter().map(|f| f.to_string()));
        args.extend(["--plugin".to_string(), plugin_under_test()]);
        let out = lab.script().args(&args).timeout(UP_TIMEOUT).output()?;
        if !out.status.success() {
            bail!(
                "lab.sh {} failed ({datapath:?} datapath):\n{}",
                args.join(" "),
                describe(&out)
            );
        }
        let env = lab.script().arg("env").run()?;
        for line in env.lines() {
            if let Some(v) = line.strip_prefix("LAB_PREFIX=") {
                lab.prefix = v.to_string();
            } else if let Some(v) = line.strip_prefix("LAB_SWITCH_NETNS=") {
                lab.switch_netns = PathBuf::from(v);
            }
        }
        ensure!(
            !lab.prefix.is_empty() && lab.switch_netns.is_absolute(),
            "unexpected `lab.sh env` output:\n{env}"
        );
        eprintln!(
            "[e2e {name}] {hosts} host(s) up in {:.1?} ({datapath:?} datapath, prefix {})",
            started.elapsed(),
            lab.prefix
        );
        Ok(lab)
    }

    /// The datapath of this lab's hosts.
    pub fn datapath(&self) -> Datapath {
        self.datapath
    }

    /// The first `n` hosts of this lab as a lab of their own (the others stay up, untouched):
    /// lets one slow-to-start kernel-datapath lab serve scenarios of different sizes.
    pub fn first_hosts(&self, n: usize) -> PodmanLab {
        assert!(
            n >= 1 && n <= self.hosts.load(Ordering::SeqCst),
            "the lab has {} hosts",
            self.hosts.load(Ordering::SeqCst)
        );
        PodmanLab {
            name: self.name.clone(),
            dir: self.dir.clone(),
            hosts: AtomicUsize::new(n),
            prefix: self.prefix.clone(),
            switch_netns: self.switch_netns.clone(),
            started: self.started,
            datapath: self.datapath,
            owned: false,
        }
    }

    /// Runs `args` in the underlay switch's namespace (`lab.sh switch`), which stands for the
    /// world outside the hosts; returns stdout.
    pub fn outside(&self, args: &[&str]) -> Result<String> {
        let out = self.script().arg("switch").args(args).output_lossy();
        ensure!(
            ok(&out),
            "outside: `{}` failed:\n{}",
            args.join(" "),
            describe(&out)
        );
        Ok(stdout(&out))
    }

    /// Starts an HTTP server outside the hosts on `addr:port` (busybox httpd, in the switch's
    /// namespace) whose `/cgi-bin/who` answers with the client's address as the server sees
    /// it, and whose `/index.html` is "outside". Stopped by [`PodmanLab::reset`] or `down`.
    pub fn start_outside_server(&self, addr: &str, port: u16) -> Result<()> {
        self.outside(&[
            "sh",
            "-euc",
            r#"d="$LAB_DIR/outside-$2"
            mkdir -p "$d/cgi-bin"
            printf 'outside\n' >"$d/index.html"
            printf '#!/bin/sh\necho "Content-Type: text/plain"\necho\necho "$REMOTE_ADDR"\n' \
                >"$d/cgi-bin/who"
            chmod 0755 "$d/cgi-bin/who"
            busybox httpd -f -p "$1:$2" -h "$d" </dev/null >/dev/null 2>&1 &
            echo $! >"$d/pid""#,
            "sh",
            addr,
            &port.to_string(),
        ])?;
        Ok(())
    }

    /// `GET /path` over HTTP/1.0 to `addr:port` from outside the hosts (bash's `/dev/tcp` in the
    /// switch's namespace: the same shell on the machine and in the guest): the body of a 200
    /// answer, or `None` when the request failed.
    pub fn outside_get(&self, addr: &str, port: u16, path: &str) -> Option<String> {
        let out = self
            .script()
            .args([
                "switch",
                "timeout",
                "5",
                "bash",
                "-c",
                r#"exec 3<>"/dev/tcp/$1/$2" && printf 'GET %s HTTP/1.0\r\nHost: %s\r\n\r\n' "$3" "$1" >&3 && cat <&3"#,
                "bash",
                addr,
                &port.to_string(),
                path,
            ])
            .output_lossy();
        if !ok(&out) {
            return None;
        }
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        let (head, body) = text.split_once("\r\n\r\n")?;
        head.lines()
            .next()
            .is_some_and(|status| status.contains(" 200 "))
            .then(|| body.trim_end().to_string())
    }

    /// Between two scenarios on one lab: no container, no network but podman's own, no
    /// bridge but `br-phy` at MTU 1500, no outside server or address, every ovs-vswitchd
    /// running. Fails when a host cannot be brought back.
    pub fn reset(&self) -> Result<()> {
        for h in self.hosts() {
            if !ok(&h.exec(&["ovs-appctl", "-t", "ovs-vswitchd", "version"])) {
                h.start_vswitchd()?;
            }
            h.podman_ok(&["rm", "-af", "-t", "0"])?;
            let nets = h.network_names()?;
            let ours: Vec<&str> = nets
                .iter()
                .map(String::as_str)
                .filter(|n| *n != "podman")
                .collect();
            if !ours.is_empty() {
                let mut args = vec!["network", "rm", "-f"];
                args.extend(ours);
                h.podman_ok(&args)?;
            }
            for br in h.bridges()? {
                if br != "br-phy" {
                    h.vsctl(&["--if-exists", "del-br", &br])?;
                }
            }
            h.vsctl(&["set", "Interface", "br-phy", "mtu_request=1500"])?;
            wait::until("br-phy MTU 1500", Duration::from_secs(10), || {
                Ok(h.exec_ok(&["cat", "/sys/class/net/br-phy/mtu"])? == "1500")
            })?;
            h.exec_ok(&[
                "sh",
                "-c",
                "nft delete table inet geneve_ovs 2>/dev/null || true",
            ])?;
        }
        self.outside(&[
            "sh",
            "-c",
            r#"for p in "$LAB_DIR"/outside-*/pid; do [ -f "$p" ] && kill "$(cat "$p")" 2>/dev/null; rm -rf "${p%/pid}"; done; ip addr flush dev br0; true"#,
        ])?;
        Ok(())
    }

    /// `lab.sh` for this lab's directory (never another lab's prefix from the environment).
    fn script(&self) -> Cmd {
        Cmd::new(lab_script())
            .env("LAB_DIR", &self.dir)
            .env("LAB_PREFIX", "")
            .timeout(COMMAND_TIMEOUT)
    }

    pub fn host(&self, index: usize) -> Host<'_> {
        assert!(
            (1..=self.hosts.load(Ordering::SeqCst)).contains(&index),
            "no host {index} in a lab of {}",
            self.hosts.load(Ordering::SeqCst)
        );
        Host { lab: self, index }
    }

    pub fn hosts(&self) -> Vec<Host<'_>> {
        (1..=self.hosts.load(Ordering::SeqCst))
            .map(|i| self.host(i))
            .collect()
    }

    /// The underlay addresses of all hosts, comma-separated, as `--opt peers=` takes them.
    pub fn all_peers(&self) -> String {
        self.hosts()
            .iter()
            .map(Host::ip)
            .collect::<Vec<_>>()
            .join(",")
    }

    /// The IPv6 underlay addresses of all hosts, comma-separated.
    pub fn all_peers6(&self) -> String {
        self.hosts()
            .iter()
            .map(Host::ip6)
            .collect::<Vec<_>>()
            .join(",")
    }

    /// The underlay switch's network namespace (a Linux bridge `br0` joining the hosts).
    pub fn switch_netns(&self) -> &Path {
        &self.switch_netns
    }

    /// Gives the switch an underlay address, so that it stands for a machine outside the
    /// hosts ("the internet").
    pub fn add_switch_address(&self, cidr: &str) -> Result<()> {
        self.outside(&["ip", "addr", "add", cidr, "dev", "br0"])?;
        Ok(())
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// Takes the lab down now and checks that nothing of it is left: no namespace with its
    /// prefix, no mount under its directory, no directory.
    pub fn down_and_check(self) -> Result<()> {
        let prefix = format!("{}-", self.prefix);
        let dir = self.dir.clone();
        drop(self);
        let namespaces = Cmd::new("ip").args(["netns", "list"]).run()?;
        let left: Vec<&str> = namespaces
            .lines()
            .filter(|l| l.starts_with(&prefix))
            .collect();
        ensure!(left.is_empty(), "namespaces left behind: {left:?}");
        let mounts = fs::read_to_string("/proc/self/mounts")?;
        let dir_text = dir.display().to_string();
        ensure!(
            !mounts.contains(&dir_text),
            "mounts left under {dir_text}:\n{mounts}"
        );
        ensure!(!dir.exists(), "{dir_text} left behind");
        Ok(())
    }

    /// What a failing test needs to see: containers and OVS of every host.
    fn dump_state(&self) {
        for h in self.hosts() {
            for args in [
                &["podman", "ps", "-a"][..],
                &["ovs-vsctl", "show"],
                &["ip", "-br", "addr"],
                &["nft", "list", "ruleset"],
            ] {
                let out = h.exec(args);
                eprintln!(
                    "[e2e {} h{}] {}:\n{}{}",
                    self.name,
                    h.index,
                    args.join(" "),
                    String::from_utf8_lossy(&out.stdout),
                    String::from_utf8_lossy(&out.stderr)
                );
            }
        }
    }
}

impl Drop for PodmanLab {
    fn drop(&mut self) {
        if !self.owned {
            return;
        }
        if std::thread::panicking() && !self.prefix.is_empty() {
            self.dump_state();
        }
        let out = self
            .script()
            .arg("down")
            .timeout(DOWN_TIMEOUT)
            .output_lossy();
        if out.status.success() {
            if let Err(err) = fs::remove_dir_all(&self.dir) {
                eprintln!("[e2e {}] removing {}: {err}", self.name, self.dir.display());
            }
        } else {
            // Left in place: the next run's stale-lab sweep tries again.
            eprintln!(
                "[e2e {}] lab.sh down failed:\n{}",
                self.name,
                describe(&out)
            );
        }
        eprintln!(
            "[e2e {}] lab existed for {:.1?}",
            self.name,
            self.started.elapsed()
        );
    }
}

/// The file in a lab directory that names the test process owning it.
const OWNER_FILE: &str = "owner";

/// "pid start-time": a pid alone could have been reused by another process.
fn owner_stamp(pid: u32) -> Result<String> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // Field 22 (starttime); the fields after the command name, which may hold spaces,
    // start at field 3.
    let after = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest)
        .context("malformed /proc/PID/stat")?;
    let start = after
        .split_whitespace()
        .nth(19)
        .context("no start time in /proc/PID/stat")?;
    Ok(format!("{pid} {start}"))
}

/// Takes down the labs whose test process is gone (killed before its Drop ran). Once per
/// process; labs of live processes, this one's included, are left alone.
fn remove_stale_labs() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let Ok(entries) = fs::read_dir(LABS_ROOT) else {
            return;
        };
        for entry in entries.flatten() {
            let dir = entry.path();
            let Ok(owner) = fs::read_to_string(dir.join(OWNER_FILE)) else {
                continue;
            };
            let alive = owner
                .split_whitespace()
                .next()
                .and_then(|p| p.parse::<u32>().ok())
                .and_then(|pid| owner_stamp(pid).ok())
                .is_some_and(|now| now == owner.trim());
            if alive {
                continue;
            }
            eprintln!("[e2e] removing the stale lab in {}", dir.display());
            let out = Cmd::new(lab_script())
                .env("LAB_DIR", &dir)
                .env("LAB_PREFIX", "")
                .arg("down")
                .timeout(DOWN_TIMEOUT)
                .output_lossy();
            if out.status.success() {
                let _ = fs::remove_dir_all(&dir);
            } else {
                eprintln!("[e2e] lab.sh down failed:\n{}", describe(&out));
            }
        }
    });
}

/// Whether a command succeeded.
pub fn ok(out: &Output) -> bool {
    out.status.success()
}

pub fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).trim_end().to_string()
}

pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).trim_end().to_string()
}

/// One simulated host of a lab.
#[derive(Clone, Copy)]
pub struct Host<'a> {
    lab: &'a PodmanLab,
    index: usize,
}

impl<'a> Host<'a> {
    pub fn index(&self) -> usize {
        self.index
    }

    /// The host's IPv4 underlay address.
    pub fn ip(&self) -> String {
        format!("10.99.0.{}", self.index)
    }

    /// The host's IPv6 underlay address.
    pub fn ip6(&self) -> String {
        format!("fd99::{}", self.index)
    }

    /// The underlay addresses of the other hosts, comma-separated.
    pub fn other_peers(&self) -> String {
        self.lab
            .hosts()
            .iter()
            .filter(|h| h.index != self.index)
            .map(Host::ip)
            .collect::<Vec<_>>()
            .join(",")
    }

    fn tag(&self) -> String {
        format!("[e2e {} h{}]", self.lab.name, self.index)
    }

    /// `lab.sh reboot H`: what a power cut and a boot do to this host. Every process dies by
    /// SIGKILL (conmon first: no container is torn down), `/run`, `/dev/shm` and `/tmp` are
    /// emptied (podman's state, the containers' network namespaces), container veths and OVS's
    /// tap devices are deleted, then OVS starts from its database, which persists, and the
    /// underlay addresses are back. Containers stay stopped until `podman start`.
    pub fn reboot(&self) -> Result<()> {
        let start = Instant::now();
        let out = self
            .lab
            .script()
            .args(["reboot", &self.index.to_string()])
            .output_lossy();
        eprintln!("{} reboot ({:.1?})", self.tag(), start.elapsed());
        ensure!(
            ok(&out),
            "lab.sh reboot {} failed:\n{}",
            self.index,
            describe(&out)
        );
        Ok(())
    }

    /// Kills this host's ovs-vswitchd the hard way (SIGKILL by its pidfile): a crash.
    pub fn kill_vswitchd(&self) -> Result<()> {
        self.exec_ok(&[
            "sh",
            "-c",
            "kill -9 \"$(cat /run/openvswitch/ovs-vswitchd.pid)\"",
        ])?;
        Ok(())
    }

    /// Starts this host's ovs-vswitchd as the lab's `up` and a boot do (`lab.sh
    /// start-vswitchd`: with the kernel datapath where the lab has it). The one place the
    /// tests restart the daemon: what a host's service manager does after a crash.
    pub fn start_vswitchd(&self) -> Result<()> {
        let out = self
            .lab
            .script()
            .args(["start-vswitchd", &self.index.to_string()])
            .output_lossy();
        ensure!(
            ok(&out),
            "lab.sh start-vswitchd {} failed:\n{}",
            self.index,
            describe(&out)
        );
        Ok(())
    }

    /// Runs `args` in the host (its namespaces and root fs); never fails to return.
    pub fn exec(&self, args: &[&str]) -> Output {
        let start = Instant::now();
        let out = self
            .lab
            .script()
            .arg("exec")
            .arg(self.index.to_string())
            .args(args)
            .output_lossy();
        eprintln!(
            "{} {} ({:.1?}, {})",
            self.tag(),
            args.join(" "),
            start.elapsed(),
            out.status
        );
        out
    }

    /// Writes `data` to `path` inside the host's root fs (through the host's own shell, so
    /// that the overlay sees it like any file the host made).
    pub fn write_file(&self, path: &str, data: Vec<u8>) -> Result<()> {
        let out = self
            .lab
            .script()
            .arg("exec")
            .arg(self.index.to_string())
            .args(["/bin/sh", "-c", "cat >\"$1\"", "sh", path])
            .stdin(data)
            .output()?;
        ensure!(
            ok(&out),
            "h{}: writing {path} failed:\n{}",
            self.index,
            describe(&out)
        );
        Ok(())
    }

    /// Runs `args` in the host and requires success; returns stdout.
    pub fn exec_ok(&self, args: &[&str]) -> Result<String> {
        let out = self.exec(args);
        if !ok(&out) {
            bail!(
                "h{}: `{}` failed:\n{}",
                self.index,
                args.join(" "),
                describe(&out)
            );
        }
        Ok(stdout(&out))
    }

    pub fn podman(&self, args: &[&str]) -> Output {
        let mut full = vec!["podman"];
        full.extend_from_slice(args);
        self.exec(&full)
    }

    pub fn podman_ok(&self, args: &[&str]) -> Result<String> {
        let mut full = vec!["podman"];
        full.extend_from_slice(args);
        self.exec_ok(&full)
    }

    pub fn vsctl(&self, args: &[&str]) -> Result<String> {
        let mut full = vec!["ovs-vsctl"];
        full.extend_from_slice(args);
        self.exec_ok(&full)
    }

    /// `podman network create -d geneve-ovs FLAGS... NAME`, then the network as
    /// `podman network inspect` shows it.
    pub fn create_network(&self, name: &str, flags: &[&str]) -> Result<Value> {
        let mut args = vec!["network", "create", "-d", "geneve-ovs"];
        args.extend_from_slice(flags);
        args.push(name);
        self.podman_ok(&args)?;
        self.inspect_network(name)
    }

    /// `podman network inspect NAME`, the network object.
    pub fn inspect_network(&self, name: &str) -> Result<Value> {
        let text = self.podman_ok(&["network", "inspect", name])?;
        let all: Value = serde_json::from_str(&text).context("network inspect output")?;
        all.get(0)
            .cloned()
            .with_context(|| format!("network inspect {name} gave {text}"))
    }

    /// The names of `podman network ls`.
    pub fn network_names(&self) -> Result<Vec<String>> {
        Ok(self
            .podman_ok(&["network", "ls", "--format", "{{.Name}}"])?
            .lines()
            .map(str::to_string)
            .collect())
    }

    /// A detached busybox container on `network` that sleeps, with NET_RAW for ping.
    pub fn run_sleeper(&self, name: &str, network: &str) -> Result<Container<'a>> {
        self.run_detached(
            name,
            &["--net", network, "--cap-add", "NET_RAW"],
            &["sleep", "3600"],
        )
    }

    /// `podman run -d --name NAME RUN_ARGS... IMAGE COMMAND...`.
    pub fn run_detached(
        &self,
        name: &str,
        run_args: &[&str],
        command: &[&str],
    ) -> Result<Container<'a>> {
        let mut args = vec!["run", "-d", "--name", name];
        args.extend_from_slice(run_args);
        args.push(IMAGE);
        args.extend_from_slice(command);
        self.podman_ok(&args)?;
        Ok(Container {
            host: *self,
            name: name.to_string(),
        })
    }

    /// The bridges of this host's OVS.
    pub fn bridges(&self) -> Result<Vec<String>> {
        Ok(self
            .vsctl(&["list-br"])?
            .lines()
            .map(str::to_string)
            .collect())
    }

    /// The ports of an OVS bridge.
    pub fn ports(&self, bridge: &str) -> Result<Vec<String>> {
        Ok(self
            .vsctl(&["list-ports", bridge])?
            .lines()
            .map(str::to_string)
            .collect())
    }

    /// Rows of an OVS table matching `conditions` (`ovs-vsctl find`), each as a JSON object
    /// of the requested columns, with OVSDB's sets and maps turned into plain JSON.
    pub fn find(&self, table: &str, columns: &str, conditions: &[&str]) -> Result<Vec<Value>> {
        let mut args = vec![
            "ovs-vsctl",
            "--format=json",
            "--data=json",
            "--columns",
            columns,
            "find",
            table,
        ];
        args.extend_from_slice(conditions);
        let text = self.exec_ok(&args)?;
        let doc: Value = serde_json::from_str(&text).context("ovs-vsctl json output")?;
        let headings: Vec<String> = doc["headings"]
            .as_array()
            .context("headings")?
            .iter()
            .map(|h| h.as_str().unwrap_or_default().to_string())
            .collect();
        let rows = doc["data"].as_array().context("data")?;
        Ok(rows
            .iter()
            .map(|row| {
                let mut obj = serde_json::Map::new();
                for (h, cell) in headings.iter().zip(row.as_array().into_iter().flatten()) {
                    obj.insert(h.clone(), ovsdb_to_json(cell));
                }
                Value::Object(obj)
            })
            .collect())
    }

    /// The GENEVE interfaces of this host's OVS (all bridges).
    pub fn tunnels(&self) -> Result<Vec<Value>> {
        self.find(
            "Interface",
            "name,type,options,statistics,ofport",
            &["type=geneve"],
        )
    }

    /// The names of the network devices of this host.
    pub fn links(&self) -> Result<Vec<String>> {
        let text = self.exec_ok(&["ip", "-j", "link", "show"])?;
        let links: Value = serde_json::from_str(&text).context("ip -j link output")?;
        Ok(links
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|l| l["ifname"].as_str().map(str::to_string))
            .collect())
    }

    /// The MAC learning table of an OVS bridge: (OpenFlow port, MAC).
    pub fn fdb(&self, bridge: &str) -> Result<Vec<(u32, String)>> {
        let text = self.exec_ok(&["ovs-appctl", "fdb/show", bridge])?;
        Ok(text
            .lines()
            .skip(1)
            .filter_map(|l| {
                let mut f = l.split_whitespace();
                let port = f.next()?.parse().ok()?;
                let mac = f.nth(1)?.to_ascii_lowercase();
                Some((port, mac))
            })
            .collect())
    }
}

/// OVSDB JSON (`["set",[...]]`, `["map",[[k,v],...]]`, `["uuid",..]`) as plain JSON: sets
/// become arrays (a one-element set stays a scalar, as OVSDB writes it), maps objects.
fn ovsdb_to_json(v: &Value) -> Value {
    match v.as_array().map(Vec::as_slice) {
        Some([tag, inner]) if tag == "set" => Value::Array(
            inner
                .as_array()
                .into_iter()
                .flatten()
                .map(ovsdb_to_json)
                .collect(),
        ),
        Some([tag, inner]) if tag == "map" => Value::Object(
            inner
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|pair| {
                    let key = pair.get(0)?.as_str()?.to_string();
                    Some((key, ovsdb_to_json(pair.get(1)?)))
                })
                .collect(),
        ),
        Some([tag, id]) if tag == "uuid" || tag == "named-uuid" => id.clone(),
        _ => v.clone(),
    }
}

/// A podman container on a lab host.
pub struct Container<'a> {
    host: Host<'a>,
    name: String,
}

impl<'a> Container<'a> {
    /// The container `name` that `podman run` made on `host` outside [`Host::run_detached`].
    pub fn on(host: Host<'a>, name: &str) -> Container<'a> {
        Container {
            host,
            name: name.to_string(),
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn host(&self) -> Host<'a> {
        self.host
    }

    /// `podman exec NAME ARGS...` (busybox applets).
    pub fn exec(&self, args: &[&str]) -> Output {
        let mut full = vec!["exec", self.name.as_str()];
        full.extend_from_slice(args);
        self.host.podman(&full)
    }

    pub fn exec_ok(&self, args: &[&str]) -> Result<String> {
        let out = self.exec(args);
        if !ok(&out) {
            bail!(
                "h{} {}: `{}` failed:\n{}",
                self.host.index,
                self.name,
                args.join(" "),
                describe(&out)
            );
        }
        Ok(stdout(&out))
    }

    fn inspect(&self, format: &str) -> Result<String> {
        self.host
            .podman_ok(&["inspect", "--format", format, &self.name])
    }

    /// The container's IPv4 address on `network`, as podman reports it.
    pub fn ip(&self, network: &str) -> Result<String> {
        let ip = self.inspect(&format!(
            "{{{{(index .NetworkSettings.Networks \"{network}\").IPAddress}}}}"
        ))?;
        ensure!(
            !ip.is_empty(),
            "{} has no IPv4 address on {network}",
            self.name
        );
        Ok(ip)
    }

    /// The container's IPv6 address on `network`, as podman reports it.
    pub fn ip6(&self, network: &str) -> Result<String> {
        let ip = self.inspect(&format!(
            "{{{{(index .NetworkSettings.Networks \"{network}\").GlobalIPv6Address}}}}"
        ))?;
        ensure!(
            !ip.is_empty(),
            "{} has no IPv6 address on {network}",
            self.name
        );
        Ok(ip)
    }

    /// The MAC address of the container's `eth0`.
    pub fn mac(&self) -> Result<String> {
        Ok(self
            .exec_ok(&["cat", "/sys/class/net/eth0/address"])?
            .trim()
            .to_ascii_lowercase())
    }

    /// The MTU of a container interface.
    pub fn mtu(&self, ifname: &str) -> Result<u32> {
        let text = self.exec_ok(&["cat", &format!("/sys/class/net/{ifname}/mtu")])?;
        text.trim().parse().context("mtu")
    }

    /// The pid of the container's first process (in the machine's pid namespace, which the
    /// lab hosts share).
    pub fn pid(&self) -> Result<u32> {
        self.inspect("{{.State.Pid}}")?.parse().context("pid")
    }

    /// Runs a tool of the host's root fs in the container's network namespace.
    pub fn in_netns(&self, args: &[&str]) -> Result<Output> {
        let pid = self.pid()?.to_string();
        let mut full = vec!["nsenter", "-t", pid.as_str(), "-n", "--"];
        full.extend_from_slice(args);
        Ok(self.host.exec(&full))
    }

    /// One busybox ping with a one second wait; true when answered.
    pub fn ping(&self, target: &str) -> bool {
        ok(&self.exec(&["ping", "-c", "1", "-W", "1", target]))
    }

    /// Pings `target` until one is answered (ARP, MAC learning and a fresh veth may take a
    /// moment on the first packet).
    pub fn wait_ping(&self, target: &str, timeout: Duration) -> Result<()> {
        wait::until(
            &format!("h{} {} to reach {target}", self.host.index, self.name),
            timeout,
            || Ok(self.ping(target)),
        )
    }

    /// iputils ping with don't-fragment set and `payload` bytes of ICMP data.
    pub fn ping_df(&self, target: &str, payload: u32) -> Result<Output> {
        let size = payload.to_string();
        self.in_netns(&[
            "ping", "-c", "2", "-W", "2", "-M", "do", "-s", &size, target,
        ])
    }

    /// The MAC address the container's neighbour table holds for `ip`, if any.
    pub fn neighbour(&self, ip: &str) -> Result<Option<String>> {
        let out = self.in_netns(&["ip", "-j", "neigh", "show", ip])?;
        ensure!(ok(&out), "ip neigh failed:\n{}", describe(&out));
        let entries: Value = serde_json::from_str(&stdout(&out)).context("ip -j neigh")?;
        Ok(entries
            .as_array()
            .into_iter()
            .flatten()
            .find_map(|e| e["lladdr"].as_str())
            .map(str::to_ascii_lowercase))
    }

    /// Every MAC address in the container's neighbour table.
    pub fn neighbour_macs(&self) -> Result<Vec<String>> {
        let out = self.in_netns(&["ip", "-j", "neigh", "show"])?;
        ensure!(ok(&out), "ip neigh failed:\n{}", describe(&out));
        let entries: Value = serde_json::from_str(&stdout(&out)).context("ip -j neigh")?;
        Ok(entries
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|e| e["lladdr"].as_str())
            .map(str::to_ascii_lowercase)
            .collect())
    }

    /// busybox wget of `url` from inside the container, retried until `timeout` (a server
    /// that was just started may not listen yet); returns the body.
    pub fn fetch(&self, url: &str, timeout: Duration) -> Result<String> {
        wait::until_some(&format!("{} to fetch {url}", self.name), timeout, || {
            let out = self.exec(&["wget", "-q", "-T", "2", "-O", "-", url]);
            Ok(ok(&out).then(|| stdout(&out)))
        })
    }
}
