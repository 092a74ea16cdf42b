//! What operators run: `status` (is every tunnel up, is every container attached) and `gc`
//! (remove what crashes, reboots and `podman network rm` left behind).
//!
//! Both compare three views: the database ([`crate::ovs::inventory`]), the live host
//! ([`host`]) and podman's saved networks ([`crate::netconf`]). The comparisons are pure
//! functions of those views, so the rules are tested without a host.

pub mod gc;
pub mod host;
pub mod status;

#[cfg(test)]
pub(crate) mod fixture;
