//! Runs the plugin binary once and measures that one process: wall time from spawn to reap, and
//! its peak resident set size from the kernel's accounting (`wait4`), nothing of our own.

use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

/// The plugin executable under test.
pub struct Plugin {
    pub path: PathBuf,
}

/// One finished plugin process.
pub struct Run {
    pub wall: Duration,
    /// Peak RSS in KiB (`ru_maxrss`).
    pub max_rss_kib: u64,
    pub stdout: String,
}

impl Run {
    pub fn millis(&self) -> f64 {
        self.wall.as_secs_f64() * 1000.0
    }
}

impl Plugin {
    /// Runs `plugin ARGS...` with `input` on stdin; fails unless it exits 0. stdout is kept for
    /// the caller, stderr only for the error message.
    pub fn run(&self, args: &[&str], input: &str) -> Result<Run> {
        let start = Instant::now();
        let mut child = Command::new(&self.path)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .with_context(|| format!("cannot run {}", self.path.display()))?;
        let pid = libc::pid_t::try_from(child.id()).context("child pid out of range")?;
        let (mut stdin, mut stdout, mut stderr) =
            match (child.stdin.take(), child.stdout.take(), child.stderr.take()) {
                (Some(i), Some(o), Some(e)) => (i, o, e),
                _ => bail!("the plugin's pipes were not set up"),
            };
        // stderr on its own thread: a chatty plugin must not block on a full pipe while we
        // wait for its stdout.
        let errors = std::thread::spawn(move || {
            let mut text = String::new();
            let _ = stderr.read_to_string(&mut text);
            text
        });
        // A plugin that fails early closes stdin before reading it: not our error to report.
        let _ = stdin.write_all(input.as_bytes());
        drop(stdin);
        let mut out = String::new();
        stdout
            .read_to_string(&mut out)
            .context("reading the plugin's stdout")?;
        let mut status: libc::c_int = 0;
        // SAFETY: an all-zero `rusage` is a valid value (plain integers and timevals).
        let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
        // SAFETY: `pid` is our own unreaped child; `status` and `usage` are live, exclusively
        // borrowed locals the kernel writes into.
        let rc = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
        let wall = start.elapsed();
        if rc != pid {
            return Err(std::io::Error::last_os_error()).context("wait4 on the plugin");
        }
        let err = errors.join().unwrap_or_default();
        if !(libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0) {
            bail!(
                "plugin {} failed (wait status {status}): stdout {out:?} stderr {err:?}",
                args.join(" ")
            );
        }
        Ok(Run {
            wall,
            max_rss_kib: u64::try_from(usage.ru_maxrss).unwrap_or(0),
            stdout: out,
        })
    }
}
