//! Scenario bodies shared by the userspace suite (`e2e_podman*.rs`, [`PodmanLab::up`]) and the
//! kernel-datapath suite (`e2e_kernel.rs`, [`PodmanLab::up_kernel`]): one body per property,
//! run on both datapaths. Each is `fn(&PodmanLab) -> Result<()>` on a lab of the size its
//! documentation names, and may leave containers and networks behind for
//! [`PodmanLab::reset`] or the lab's `down`.
//!
//! [`PodmanLab::up`]: crate::podman_lab::PodmanLab::up
//! [`PodmanLab::up_kernel`]: crate::podman_lab::PodmanLab::up_kernel
//! [`PodmanLab::reset`]: crate::podman_lab::PodmanLab::reset

// Each test binary uses only part of them.
#![allow(dead_code)]

pub mod ipsec;
pub mod open;
pub mod overlay;
pub mod recovery;
pub mod underlay;
