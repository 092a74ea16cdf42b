//! The OVN mode's part of `results.md` (`bench.sh --ovn`): its targets against the mesh mode
//! measured in the same run, the joining host, and its `setup` growth. The OVN rows of the
//! control-plane and data-plane tables come with the mesh's (their labels are in the parent's
//! tables); this part only exists when the run measured the OVN mode.

use std::fmt::Write as _;

use super::{ms, ratio, row, rtt, scale_window, verdict, Data, SCALE_RATIO_MAX, TABLE_HEAD};

/// OVN `setup` against the mesh mode's with duplicate-address detection on: at most 1×.
const SETUP_VS_DAD_ON_MAX: f64 = 1.0;
/// TCP throughput as a fraction of the mesh mode's, and the same for round trips (as speed:
/// the mesh's RTT over OVN's).
const DATA_VS_MESH_MIN: f64 = 0.8;

pub fn section(d: &Data, md: &mut String) {
    if d.get("ovn.setup_ms").is_none() && d.get("ovn.join_ms").is_none() {
        return;
    }
    let _ = writeln!(
        md,
        "## OVN mode, beside the mesh mode\n\n{} hosts, NB and SB as {}-member Raft clusters \
         (OVN {}), networks with `--opt ovn={}`; measured in the same loops as the mesh mode's \
         networks, alternating.\n\n| target | figure | |\n|---|---|---|",
        d.meta("hosts"),
        d.meta("ovn_central"),
        d.meta("ovn"),
        d.meta("ovn_nb"),
    );
    let mut line = |target: &str, figure: Option<String>, ok: Option<bool>| {
        let (figure, result) = match figure {
            Some(f) => (f, verdict(ok)),
            None => ("–".to_string(), "not measured"),
        };
        let _ = writeln!(md, "| {target} | {figure} | {result} |");
    };

    let setup = d.ratio("ovn.setup_ms", "dad-on.setup_ms");
    let (o, m) = (d.summary("ovn.setup_ms"), d.summary("dad-on.setup_ms"));
    line(
        &format!("`setup` ≤ {SETUP_VS_DAD_ON_MAX}× the mesh mode's with `dad=true`"),
        match (setup, o, m) {
            (Some(r), Some(o), Some(m)) => Some(format!(
                "{} vs {} median, ratio {} ({}–{})",
                ms(o.median),
                ms(m.median),
                ratio(r.median),
                ratio(r.min),
                ratio(r.max)
            )),
            (None, Some(o), _) => Some(format!(
                "{} median (mesh with DAD not measured)",
                ms(o.median)
            )),
            _ => None,
        },
        setup.map(|r| r.median <= SETUP_VS_DAD_ON_MAX),
    );
    let podman = d.ratio("podman.geneve-ovn_ms", "podman.bridge-internal_ms");
    line(
        "`podman run` / bridge driver (internal)",
        podman.map(|r| format!("{} ({}–{})", ratio(r.median), ratio(r.min), ratio(r.max))),
        None,
    );
    let tcp = d.ratio("tcp.ovn_mbps", "tcp.geneve_mbps");
    line(
        &format!("TCP ≥ {DATA_VS_MESH_MIN}× the mesh mode"),
        tcp.map(|r| format!("{} ({}–{})", ratio(r.median), ratio(r.min), ratio(r.max))),
        tcp.map(|r| r.median >= DATA_VS_MESH_MIN),
    );
    let speed = d.ratio("rtt.geneve_ms", "rtt.ovn_ms");
    let (o, m) = (d.summary("rtt.ovn_ms"), d.summary("rtt.geneve_ms"));
    line(
        &format!("RTT: the mesh's / OVN's ≥ {DATA_VS_MESH_MIN}×"),
        match (speed, o, m) {
            (Some(r), Some(o), Some(m)) => Some(format!(
                "{} vs {} median, ratio {} ({}–{})",
                rtt(o.median),
                rtt(m.median),
                ratio(r.median),
                ratio(r.min),
                ratio(r.max)
            )),
            _ => None,
        },
        speed.map(|r| r.median >= DATA_VS_MESH_MIN),
    );
    let join = d.summary("ovn.join_ms");
    line(
        "joining host: first `podman run` to answered by every other host",
        join.map(|s| format!("{} (of {} joins, max {})", ms(s.median), s.n, ms(s.max))),
        None,
    );
    let n = d.get("ovn-scale.setup_ms").map_or(0, |s| s.len());
    let w = scale_window(n);
    let ends = d.ends("ovn-scale.setup_ms", w);
    let reference = d.ends("scale.ovs_add_port_ms", w);
    line(
        &format!(
            "`setup` flat to {n} containers (as the mesh mode's: last {w} ≤ {SCALE_RATIO_MAX}× \
             the first {w}, or no more than `ovs-vsctl add-port`'s growth)"
        ),
        ends.map(|(f, l, r)| format!("{} ({} → {})", ratio(r), ms(f.median), ms(l.median))),
        ends.map(|(_, _, r)| {
            r <= SCALE_RATIO_MAX || reference.is_some_and(|(_, _, reference)| r <= reference)
        }),
    );

    let _ = writeln!(md, "\n{TABLE_HEAD}");
    if let Some(s) = d.summary("ovn.join_ms") {
        row(md, "joining host, `podman run` to answered by all", &s, ms);
    }
    if let Some((first, last, _)) = ends {
        row(
            md,
            &format!("`setup`, containers 1–{w} of {n} on one OVN network"),
            &first,
            ms,
        );
        row(
            md,
            &format!("`setup`, containers {}–{n}", n.saturating_sub(w) + 1),
            &last,
            ms,
        );
    }
    if let Some(s) = d.summary("ovn-scale.teardown_ms") {
        row(md, "`teardown` of those containers", &s, ms);
    }
    super::link_event_rows(d, "ovn-scale.link_event_netlink", md);
    md.push('\n');
}
