//! Where one run of a command spends its time: named phases, reported in one debug line at
//! the end (`RUST_LOG=geneve_ovs=debug`). Cheap enough to stay on in every run (one clock
//! read per phase), so an operator asking why a `setup` is slow on their host gets the
//! same breakdown the benchmark's analysis used, without a profiler.

use std::fmt::Write as _;
use std::time::{Duration, Instant};

/// The phases of one run so far.
pub struct Phases {
    command: &'static str,
    start: Instant,
    last: Instant,
    done: Vec<(&'static str, Duration)>,
}

impl Phases {
    /// Starts timing `command`'s run now.
    pub fn start(command: &'static str) -> Phases {
        let now = Instant::now();
        Phases {
            command,
            start: now,
            last: now,
            done: Vec::new(),
        }
    }

    /// Ends the phase `name`: the time since the previous mark (or the start) is its own.
    pub fn mark(&mut self, name: &'static str) {
        let now = Instant::now();
        self.done.push((name, now - self.last));
        self.last = now;
    }

    /// "setup 12.34 ms: options 0.40, veth 2.10, ..." (milliseconds; the total is up to the
    /// last mark).
    pub fn summary(&self) -> String {
        let total = self.last - self.start;
        let mut line = format!("{} {:.2} ms:", self.command, millis(total));
        for (i, (name, took)) in self.done.iter().enumerate() {
            let sep = if i == 0 { " " } else { ", " };
            let _ = write!(line, "{sep}{name} {:.2}", millis(*took));
        }
        line
    }

    /// Logs [`Phases::summary`] at debug level.
    pub fn log(&self) {
        if log::log_enabled!(log::Level::Debug) {
            log::debug!("{}", self.summary());
        }
    }
}

fn millis(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phases_add_up_to_the_total_in_order() {
        let mut phases = Phases::start("setup");
        std::thread::sleep(Duration::from_millis(2));
        phases.mark("veth");
        phases.mark("port");
        let line = phases.summary();
        assert!(line.starts_with("setup "), "{line}");
        let veth = line.find("veth ").expect("veth named");
        let port = line.find("port ").expect("port named");
        assert!(veth < port, "{line}");
        let sum: Duration = phases.done.iter().map(|(_, d)| *d).sum();
        assert_eq!(sum, phases.last - phases.start);
        assert!(phases.done[0].1 >= Duration::from_millis(2));
    }

    #[test]
    fn no_phase_is_an_empty_list() {
        let phases = Phases::start("teardown");
        assert_eq!(phases.summary(), "teardown 0.00 ms:");
    }
}
