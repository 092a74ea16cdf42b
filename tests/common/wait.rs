//! Polling for a condition with a bounded time, instead of fixed sleeps.

use std::time::{Duration, Instant};

use anyhow::{anyhow, Result};

/// Pause between two polls: short, because every condition here is cheap to check.
const POLL: Duration = Duration::from_millis(50);

/// Call `probe` until it returns `Ok(Some(value))`, or fail after `timeout` with the
/// description `what` and the last error or "not yet" the probe gave.
pub fn until_some<T>(
    what: &str,
    timeout: Duration,
    mut probe: impl FnMut() -> Result<Option<T>>,
) -> Result<T> {
    let start = Instant::now();
    loop {
        let last = match probe() {
            Ok(Some(v)) => return Ok(v),
            Ok(None) => None,
            Err(e) => Some(e),
        };
        if start.elapsed() >= timeout {
            return Err(match last {
                Some(e) => e.context(format!("timed out after {timeout:?} waiting for {what}")),
                None => anyhow!("timed out after {timeout:?} waiting for {what}"),
            });
        }
        std::thread::sleep(POLL);
    }
}

/// Call `probe` until it returns `Ok(true)`; see [`until_some`].
pub fn until(what: &str, timeout: Duration, mut probe: impl FnMut() -> Result<bool>) -> Result<()> {
    until_some(what, timeout, || Ok(probe()?.then_some(())))
}
