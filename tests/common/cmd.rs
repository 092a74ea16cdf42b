//! Running external commands with a bounded time.
//!
//! Output goes to anonymous temporary files rather than pipes: a daemon or a
//! background process started by the command may keep inherited descriptors open for
//! ever, and a pipe reader would then hang. A file has no such problem, and neither
//! needs helper threads.

use std::ffi::OsStr;
use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::process::ExitStatusExt;
use std::process::{Command, ExitStatus, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

/// Default bound for any command run by the lab.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);

/// A command line to run with a time limit.
pub struct Cmd {
    command: Command,
    display: String,
    stdin: Option<Vec<u8>>,
    timeout: Duration,
}

impl Cmd {
    pub fn new(program: impl AsRef<OsStr>) -> Self {
        let display = program.as_ref().to_string_lossy().into_owned();
        Cmd {
            command: Command::new(program),
            display,
            stdin: None,
            timeout: DEFAULT_TIMEOUT,
        }
    }

    /// The command `program args...` run inside the named network namespace.
    pub fn in_netns<S: AsRef<OsStr>>(netns: &str, program: &str, args: &[S]) -> Self {
        Cmd::new("ip")
            .args(["netns", "exec", netns, program])
            .args(args)
    }

    pub fn arg(mut self, arg: impl AsRef<OsStr>) -> Self {
        self.display.push(' ');
        self.display.push_str(&arg.as_ref().to_string_lossy());
        self.command.arg(arg);
        self
    }

    pub fn args<S: AsRef<OsStr>>(mut self, args: impl IntoIterator<Item = S>) -> Self {
        for a in args {
            self = self.arg(a);
        }
        self
    }

    pub fn env(mut self, key: &str, value: impl AsRef<OsStr>) -> Self {
        self.command.env(key, value);
        self
    }

    /// Start from an empty environment (then add what the program needs with `env`).
    pub fn env_clear(mut self) -> Self {
        self.command.env_clear();
        self
    }

    pub fn stdin(mut self, data: impl Into<Vec<u8>>) -> Self {
        self.stdin = Some(data.into());
        self
    }

    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The command line, for messages.
    pub fn display(&self) -> &str {
        &self.display
    }

    /// Run to completion (or kill at the time limit); a failure to start is an error,
    /// a non-zero exit is not.
    pub fn output(mut self) -> Result<Output> {
        let out = anon_file()?;
        let err = anon_file()?;
        let stdin = match &self.stdin {
            Some(data) => {
                let mut f = anon_file()?;
                f.write_all(data).context("writing stdin file")?;
                f.seek(SeekFrom::Start(0))?;
                Stdio::from(f)
            }
            None => Stdio::null(),
        };
        self.command
            .stdin(stdin)
            .stdout(Stdio::from(out.try_clone()?))
            .stderr(Stdio::from(err.try_clone()?));
        let mut child = self
            .command
            .spawn()
            .with_context(|| format!("cannot start `{}`", self.display))?;
        let deadline = Instant::now() + self.timeout;
        let status = loop {
            if let Some(status) = child.try_wait()? {
                break status;
            }
            if Instant::now() >= deadline {
                // Killing an already exited child is harmless; wait reaps it.
                let _ = child.kill();
                let _ = child.wait();
                let mut stderr = read_all(err)?;
                stderr.extend_from_slice(
                    format!("\n[lab] killed after {:?}", self.timeout).as_bytes(),
                );
                return Ok(Output {
                    status: ExitStatus::from_raw(libc::SIGKILL),
                    stdout: read_all(out)?,
                    stderr,
                });
            }
            std::thread::sleep(Duration::from_millis(5));
        };
        Ok(Output {
            status,
            stdout: read_all(out)?,
            stderr: read_all(err)?,
        })
    }

    /// Like [`Cmd::output`], but a spawn failure becomes a failed `Output` (exit code
    /// 127 and the reason on stderr), for APIs that hand back an `Output` to assert on.
    pub fn output_lossy(self) -> Output {
        let display = self.display.clone();
        self.output().unwrap_or_else(|e| Output {
            status: ExitStatus::from_raw(127 << 8),
            stdout: Vec::new(),
            stderr: format!("[lab] `{display}`: {e:#}").into_bytes(),
        })
    }

    /// Run and require exit status 0; returns stdout with trailing whitespace removed.
    pub fn run(self) -> Result<String> {
        let display = self.display.clone();
        let out = self.output()?;
        check(&display, &out)?;
        Ok(String::from_utf8_lossy(&out.stdout).trim_end().to_string())
    }
}

/// Turn a non-zero exit into an error carrying the command line and its output.
pub fn check(display: &str, out: &Output) -> Result<()> {
    if !out.status.success() {
        bail!(
            "`{display}` failed ({}):\nstdout: {}\nstderr: {}",
            out.status,
            String::from_utf8_lossy(&out.stdout).trim_end(),
            String::from_utf8_lossy(&out.stderr).trim_end()
        );
    }
    Ok(())
}

/// An unnamed file in the temp directory: gone as soon as the last descriptor closes.
/// Where the filesystem lacks O_TMPFILE, a named file unlinked at once does the same.
fn anon_file() -> Result<File> {
    let dir = std::env::temp_dir();
    let unnamed = OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_TMPFILE)
        .open(&dir);
    if let Ok(f) = unnamed {
        return Ok(f);
    }
    static COUNTER: AtomicUsize = AtomicUsize::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let path = dir.join(format!(".geneve-ovs-lab-out.{}.{n}", std::process::id()));
    let f = OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .open(&path)
        .with_context(|| format!("creating {}", path.display()))?;
    std::fs::remove_file(&path).with_context(|| format!("removing {}", path.display()))?;
    Ok(f)
}

fn read_all(mut f: File) -> Result<Vec<u8>> {
    let mut buf = Vec::new();
    f.seek(SeekFrom::Start(0))?;
    f.read_to_end(&mut buf)?;
    Ok(buf)
}

/// Everything a command printed, for messages.
pub fn describe(out: &Output) -> String {
    format!(
        "status {}\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout).trim_end(),
        String::from_utf8_lossy(&out.stderr).trim_end()
    )
}
