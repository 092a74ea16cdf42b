//! How long `setup` listens for answers to its address probes. Pure.
//!
//! Silence is the answer a free address gets, and it takes waiting: the listening window is the
//! whole cost of duplicate-address detection. A constant window is either long on a fast
//! underlay (every container start pays it) or too short on a slow one (a holder's answer comes
//! after it, and the conflict is missed). So by default the window is derived from the round
//! trip to the peers, measured on the underlay by every `setup` while it builds the port
//! ([`super::round_trip`]); `dad_timeout_ms` sets a constant one instead.
//!
//! The bound. The probes go out twice, at the window's start and at its half (see
//! [`super::probe`]). A holder's answer to a probe crosses the underlay twice (one round trip)
//! and is handled on its way by both hosts' switches and the holder's kernel. Each half of the
//! window is [`PROCESSING_ALLOWANCE`] plus twice the slowest peer's measured round trip, so an
//! answer to the second round is heard when the hosts on its way take less than the allowance
//! together and the round trip is at most twice what was measured, and an answer to the first
//! round gets the whole window. A host stalled for longer than that (twice, since there are two
//! rounds) answers too late and the conflict is missed: the same risk as with any constant
//! window, which this one shares on a slow underlay without adapting to it. A peer that did not
//! answer the measurement gets no derived bound: the window is then at least
//! [`UNMEASURED_WINDOW`], the former constant default.

use std::time::Duration;

/// The window `setup` uses for a network: measured or given.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Window {
    /// Derived from the round trips to the peers ([`measured_window`]): the default.
    Measured,
    /// `dad_timeout_ms`: the operator's constant, used as it is.
    Fixed(Duration),
}

/// The time the switches and the holder's kernel may take, together, to deliver a probe and
/// send its answer back, beyond the underlay's round trip. That path is a ping's between two
/// containers of the overlay, whose median in the benchmark's lab (userspace datapath on both
/// hosts) is 0.7 ms on a quiet machine and 1.7 ms on one at load 13; the allowance is several
/// times that (docs/benchmarks.md says what it does not cover).
pub const PROCESSING_ALLOWANCE: Duration = Duration::from_millis(6);

/// The window when a peer's round trip is unknown (it did not answer the measurement in time):
/// the constant default of earlier versions.
pub const UNMEASURED_WINDOW: Duration = Duration::from_millis(50);

/// The longest window: `dad_timeout_ms`'s upper limit.
pub const MAX_WINDOW: Duration = Duration::from_millis(1000);

/// The listening window for peers whose measured round trips are `round_trips` (`None`: that
/// peer did not answer). Without peers only this host's own containers can hold an address,
/// and the window is the allowance alone, twice.
pub fn measured_window(round_trips: &[Option<Duration>]) -> Duration {
    let slowest = round_trips
        .iter()
        .map(|rtt| rtt.unwrap_or(Duration::ZERO))
        .max()
        .unwrap_or(Duration::ZERO);
    let half = PROCESSING_ALLOWANCE.saturating_add(slowest.saturating_mul(2));
    let mut window = half.saturating_mul(2);
    if round_trips.iter().any(Option::is_none) {
        window = window.max(UNMEASURED_WINDOW);
    }
    window.min(MAX_WINDOW)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn a_fast_underlay_gets_the_allowance_twice() {
        let w = measured_window(&[Some(Duration::from_micros(100)), Some(ms(0))]);
        assert_eq!(w, PROCESSING_ALLOWANCE * 2 + Duration::from_micros(400));
        assert!(w < UNMEASURED_WINDOW / 3, "{w:?}");
    }

    #[test]
    fn the_slowest_peer_sets_the_window() {
        // A 40 ms underlay: each half has room for two round trips and the allowance.
        let w = measured_window(&[Some(ms(1)), Some(ms(40)), Some(ms(3))]);
        assert_eq!(w, (PROCESSING_ALLOWANCE + ms(80)) * 2);
        // Longer than the old constant: the constant would have missed this peer's holder.
        assert!(w > UNMEASURED_WINDOW);
    }

    #[test]
    fn an_unmeasured_peer_falls_back_to_the_constant() {
        assert_eq!(measured_window(&[Some(ms(1)), None]), UNMEASURED_WINDOW);
        // ... unless a measured one needs more.
        assert_eq!(
            measured_window(&[None, Some(ms(30))]),
            (PROCESSING_ALLOWANCE + ms(60)) * 2
        );
    }

    #[test]
    fn no_peers_still_listens_for_local_holders() {
        assert_eq!(measured_window(&[]), PROCESSING_ALLOWANCE * 2);
    }

    #[test]
    fn a_very_slow_underlay_is_capped() {
        assert_eq!(measured_window(&[Some(ms(400))]), MAX_WINDOW);
        assert_eq!(measured_window(&[Some(Duration::MAX)]), MAX_WINDOW);
    }
}
