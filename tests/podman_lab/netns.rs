//! Sockets in another network namespace (the lab's underlay switch, which stands for the
//! world outside the hosts), without any tool on the machine.
//!
//! A socket belongs to the namespace its creating thread was in, and stays there whichever
//! thread uses it later: a short-lived thread enters the namespace with `setns`, opens the
//! socket and hands it back. Only that thread ever changes namespace.

use std::fs::File;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};

/// Runs `f` on a new thread that has entered the network namespace `netns` (a path such as
/// `/run/netns/NAME`), and returns its result.
pub fn in_netns<T: Send + 'static>(
    netns: &Path,
    f: impl FnOnce() -> Result<T> + Send + 'static,
) -> Result<T> {
    let path: PathBuf = netns.to_path_buf();
    let file = File::open(&path).with_context(|| format!("opening {}", path.display()))?;
    std::thread::spawn(move || {
        // SAFETY: setns only reads the descriptor, which `file` keeps open; it changes the
        // network namespace of this thread alone.
        let rc = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
        if rc != 0 {
            bail!(
                "setns({}): {}",
                path.display(),
                std::io::Error::last_os_error()
            );
        }
        f()
    })
    .join()
    .map_err(|_| anyhow!("the thread in {} panicked", netns.display()))?
}

/// A TCP listener on `addr` inside `netns`.
pub fn listen(netns: &Path, addr: SocketAddr) -> Result<TcpListener> {
    in_netns(netns, move || {
        TcpListener::bind(addr).with_context(|| format!("binding {addr}"))
    })
}

/// Waits up to `timeout` for one connection; returns the peer's address and the first line it
/// sent, and closes the connection.
pub fn accept_one(listener: &TcpListener, timeout: Duration) -> Result<(SocketAddr, String)> {
    listener.set_nonblocking(true)?;
    let deadline = Instant::now() + timeout;
    let (stream, peer) = loop {
        match listener.accept() {
            Ok(conn) => break conn,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                if Instant::now() >= deadline {
                    bail!("no connection within {timeout:?}");
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(e) => return Err(e).context("accept"),
        }
    };
    stream.set_nonblocking(false)?;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    // One line, then close: the client may wait for the server to close first.
    let mut line = String::new();
    BufReader::new(stream)
        .read_line(&mut line)
        .with_context(|| format!("reading from {peer}"))?;
    Ok((peer, line.trim_end().to_string()))
}

/// `GET path` over HTTP/1.0 to `addr` from inside `netns`; returns the status line and the
/// body.
pub fn http_get(netns: &Path, addr: SocketAddr, path: &str) -> Result<(String, String)> {
    let mut stream = in_netns(netns, move || {
        TcpStream::connect_timeout(&addr, Duration::from_secs(3))
            .with_context(|| format!("connecting to {addr}"))
    })?;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    stream.set_write_timeout(Some(Duration::from_secs(5)))?;
    write!(stream, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n")?;
    let mut response = String::new();
    stream
        .read_to_string(&mut response)
        .with_context(|| format!("reading the answer of {addr}"))?;
    let (head, body) = response
        .split_once("\r\n\r\n")
        .with_context(|| format!("no HTTP header in {response:?}"))?;
    let status = head.lines().next().unwrap_or_default().to_string();
    Ok((status, body.to_string()))
}
