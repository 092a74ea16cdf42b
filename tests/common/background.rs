//! Long-running commands (captures, servers) that a test starts inside a namespace and that
//! stop when the test lets go of them, also when it panics.

use std::fs::File;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{Context, Result};

/// A process started with `ip netns exec`; killed and reaped on drop.
pub struct Background {
    child: Child,
    what: String,
}

impl Background {
    /// Starts `program args` in namespace `netns` with its stdout and stderr in `output`.
    pub fn start(netns: &str, program: &str, args: &[&str], output: &Path) -> Result<Background> {
        let file =
            File::create(output).with_context(|| format!("creating {}", output.display()))?;
        let err = file.try_clone()?;
        let child = Command::new("ip")
            .args(["netns", "exec", netns, program])
            .args(args)
            .stdin(Stdio::null())
            .stdout(file)
            .stderr(err)
            .spawn()
            .with_context(|| format!("starting {program} in {netns}"))?;
        let what = format!("{program} in {netns}");
        // Captures need a moment to open their socket before the traffic they should see.
        std::thread::sleep(Duration::from_millis(300));
        Ok(Background { child, what })
    }

    /// What runs, for messages.
    pub fn what(&self) -> &str {
        &self.what
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        // SIGTERM first so that captures flush what they saw; then make sure.
        let pid = self.child.id() as i32;
        let _ = super::process::signal(pid, libc::SIGTERM);
        for _ in 0..20 {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
