//! Turns the raw samples of a run into `results.md` (tables, targets met or missed, the machine)
//! and the data files `plot.gp` draws. Nothing here measures: it reads `samples.tsv`
//! (`series<TAB>rep<TAB>value`) and `meta.tsv` (`key<TAB>value`) written by the run.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::fs;
use std::path::Path;

use anyhow::{Context, Result};

use crate::stats::{paired_ratio, values, values_in, Series, Summary};

mod ovn;

/// The targets, in one place.
/// `setup` median with the default options (duplicate-address detection on).
const SETUP_MEDIAN_MAX_MS: f64 = 15.0;
/// `setup` with gateway and NAT against internal's, side by side.
const NAT_SETUP_RATIO_MAX: f64 = 1.2;
/// `teardown` median with gateway and NAT.
const NAT_TEARDOWN_MAX_MS: f64 = 20.0;
const PODMAN_RUN_RATIO_MAX: f64 = 1.0;
const TCP_VS_SEED_MIN: f64 = 1.15;
const TCP_VS_UNDERLAY_MIN: f64 = 0.95;
const RTT_VS_SEED_MAX: f64 = 1.0;
/// Growth from the first to the last containers of the scale run: met at this ratio, or at
/// no more than Open vSwitch's own `add-port` growth in the same run.
const SCALE_RATIO_MAX: f64 = 1.3;
const CREATE_PEERS: u32 = 256;
const CREATE_PEERS_MAX_MS: f64 = 200.0;
/// 15 MB, in KiB (ru_maxrss unit).
const RSS_MAX_KIB: f64 = 15_000_000.0 / 1024.0;
/// Containers in each end of the scale run that are compared: 50 of 200, fewer in a short run.
fn scale_window(n: usize) -> usize {
    (n / 4).clamp(1, 50)
}
/// Networks in each end of the many-networks run that are compared: 10 of 50.
fn networks_window(n: usize) -> usize {
    (n / 5).clamp(1, 10)
}

/// The control-plane configurations driven directly, in table order.
const CYCLE_LABELS: &[(&str, &str)] = &[
    ("internal", "internal network, default options"),
    ("nat", "network with gateway and NAT, default options"),
    ("dad-off", "internal, `dad=false`"),
    ("dad-on", "internal, `dad=true`"),
    (
        "dad-50",
        "internal, `dad_timeout_ms=50` (a constant window, the former default)",
    ),
    ("ps-off", "internal, `port_security=false`"),
    ("ovn", "OVN mode (`--opt ovn=`), internal, default options"),
];
/// `podman run` configurations, and the pairs compared.
const PODMAN_LABELS: &[(&str, &str)] = &[
    (
        "geneve-internal",
        "geneve-ovs `--internal` (default options)",
    ),
    ("bridge-internal", "bridge `--internal`"),
    ("geneve-nat", "geneve-ovs (gateway, NAT; default options)"),
    ("bridge-nat", "bridge (gateway, NAT)"),
    ("geneve-dad-off", "geneve-ovs `--internal`, `dad=false`"),
    ("geneve-dad-on", "geneve-ovs `--internal`, `dad=true`"),
    (
        "geneve-ps-off",
        "geneve-ovs `--internal`, `port_security=false`",
    ),
    ("geneve-ovn", "geneve-ovs OVN mode `--internal`"),
];
const PODMAN_PAIRS: &[(&str, &str, &str)] = &[
    (
        "geneve-internal",
        "bridge-internal",
        "geneve-ovs / bridge, internal",
    ),
    ("geneve-nat", "bridge-nat", "geneve-ovs / bridge, with NAT"),
    (
        "geneve-dad-off",
        "bridge-internal",
        "geneve-ovs `dad=false` / bridge, internal",
    ),
    (
        "geneve-dad-on",
        "geneve-dad-off",
        "`dad=true` / `dad=false`",
    ),
    ("geneve-internal", "geneve-ps-off", "port security on / off"),
    (
        "geneve-ovn",
        "bridge-internal",
        "geneve-ovs OVN mode / bridge, internal",
    ),
];
const PATHS: &[(&str, &str)] = &[
    ("geneve", "geneve-ovs"),
    ("seed", "seed topology (bridge + veth + OVS + GENEVE)"),
    ("underlay", "underlay, host to host (the limit)"),
    ("geneve_open", "geneve-ovs, `port_security=false`"),
    ("ovn", "geneve-ovs, OVN mode"),
];
const PEER_COUNTS: &[u32] = &[1, 8, 32, 64, 256];

pub struct Data {
    series: BTreeMap<String, Series>,
    meta: BTreeMap<String, String>,
}

impl Data {
    pub fn load(samples: &Path, meta_file: &Path) -> Result<Data> {
        let mut series: BTreeMap<String, Series> = BTreeMap::new();
        let text = fs::read_to_string(samples)
            .with_context(|| format!("reading {}", samples.display()))?;
        for (n, line) in text.lines().enumerate() {
            let mut fields = line.split('\t');
            let (Some(name), Some(rep), Some(value), None) =
                (fields.next(), fields.next(), fields.next(), fields.next())
            else {
                anyhow::bail!(
                    "{}:{}: expected 3 fields: {line:?}",
                    samples.display(),
                    n + 1
                );
            };
            let rep: usize = rep
                .parse()
                .with_context(|| format!("{}:{}: repetition", samples.display(), n + 1))?;
            let value: f64 = value
                .parse()
                .with_context(|| format!("{}:{}: value", samples.display(), n + 1))?;
            series
                .entry(name.to_string())
                .or_default()
                .entry(rep)
                .or_default()
                .push(value);
        }
        let mut meta = BTreeMap::new();
        if let Ok(text) = fs::read_to_string(meta_file) {
            for line in text.lines() {
                if let Some((k, v)) = line.split_once('\t') {
                    meta.insert(k.to_string(), v.to_string());
                }
            }
        }
        Ok(Data { series, meta })
    }

    fn get(&self, name: &str) -> Option<&Series> {
        self.series.get(name)
    }

    fn summary(&self, name: &str) -> Option<Summary> {
        self.get(name).and_then(|s| Summary::of(&values(s)))
    }

    fn ratio(&self, a: &str, b: &str) -> Option<Summary> {
        paired_ratio(self.get(a)?, self.get(b)?)
    }

    fn meta(&self, key: &str) -> &str {
        self.meta.get(key).map(String::as_str).unwrap_or("?")
    }

    /// Peak RSS over every plugin run of every kind.
    fn peak_rss(&self) -> Option<(f64, String)> {
        self.series
            .iter()
            .filter_map(|(name, s)| {
                let cmd = name.strip_prefix("rss_kib.")?;
                Some((Summary::of(&values(s))?.max, cmd.to_string()))
            })
            .max_by(|a, b| a.0.total_cmp(&b.0))
    }

    /// Medians of the first and last `window` repetitions of a series, and their ratio.
    fn ends(&self, name: &str, window: usize) -> Option<(Summary, Summary, f64)> {
        let s = self.get(name)?;
        let last_rep = *s.keys().next_back()?;
        let first = Summary::of(&values_in(s, 0..window))?;
        let last = Summary::of(&values_in(
            s,
            (last_rep + 1).saturating_sub(window)..last_rep + 1,
        ))?;
        Some((first, last, last.median / first.median))
    }
}

fn ms(v: f64) -> String {
    if v >= 100.0 {
        format!("{v:.0} ms")
    } else {
        format!("{v:.1} ms")
    }
}

fn count(v: f64) -> String {
    format!("{v:.0}")
}

/// The netlink requests ovs-vswitchd sent for a veth pair it does not know, created and deleted,
/// with no container and with all of them on the bridge: the part of every link change's cost
/// that grows with the containers (the fill's `link_event_netlink` series, rep = containers).
fn link_event_rows(d: &Data, series: &str, md: &mut String) {
    let Some(s) = d.get(series) else {
        return;
    };
    for (containers, values) in s {
        if let Some(summary) = Summary::of(values) {
            row(
                md,
                &format!(
                    "reference: ovs-vswitchd's netlink requests for a veth pair it does not \
                     know, created and deleted, {containers} containers on the bridge"
                ),
                &summary,
                count,
            );
        }
    }
}

fn rtt(v: f64) -> String {
    format!("{v:.3} ms")
}

fn mbps(v: f64) -> String {
    format!("{v:.0} Mbit/s")
}

fn ratio(v: f64) -> String {
    format!("{v:.2}×")
}

fn mb(kib: f64) -> String {
    format!("{:.1} MB", kib * 1024.0 / 1e6)
}

fn verdict(ok: Option<bool>) -> &'static str {
    match ok {
        Some(true) => "met",
        Some(false) => "**missed**",
        None => "",
    }
}

/// A table row `| what | n | median | p99 | min | max |`.
fn row(out: &mut String, what: &str, s: &Summary, fmt: fn(f64) -> String) {
    let _ = writeln!(
        out,
        "| {what} | {} | {} | {} | {} | {} |",
        s.n,
        fmt(s.median),
        fmt(s.p99),
        fmt(s.min),
        fmt(s.max)
    );
}

const TABLE_HEAD: &str = "| | runs | median | p99 | min | max |\n|---|---:|---:|---:|---:|---:|";

pub fn write(data: &Data, dir: &Path) -> Result<()> {
    let mut md = String::new();
    header(data, &mut md);
    targets(data, &mut md);
    control(data, &mut md);
    dataplane(data, &mut md);
    scale(data, &mut md);
    ovn::section(data, &mut md);
    fs::write(dir.join("results.md"), md).context("writing results.md")?;
    plot_data(data, dir)
}

fn header(d: &Data, md: &mut String) {
    let _ = writeln!(md, "# geneve-ovs benchmark results\n");
    let _ = writeln!(
        md,
        "Run of {} ({} mode, {} s). Plugin {} (commit {}).\n",
        d.meta("date"),
        d.meta("mode"),
        d.meta("duration_s"),
        d.meta("plugin_version"),
        d.meta("commit"),
    );
    let _ = writeln!(
        md,
        "**Machine:** {} ({} CPUs), {} RAM, {}, kernel {}; load average {} at the start, {} at \
         the end (other work on the machine shares the CPUs).  \n**Lab:** {} simulated hosts \
         (`contrib/lab`), podman {}, netavark {}, Open vSwitch {} with the userspace datapath \
         (no OVS kernel module), userspace TSO {}; overlay MTU {} (geneve-ovs) and {} (seed), bridges on \
         datapath `{}` (geneve-ovs) and `{}` (seed).\n",
        d.meta("cpu"),
        d.meta("cpus"),
        d.meta("memory"),
        d.meta("os"),
        d.meta("kernel"),
        d.meta("load_start"),
        d.meta("load_end"),
        d.meta("hosts"),
        d.meta("podman"),
        d.meta("netavark"),
        d.meta("ovs"),
        d.meta("ovs_tso"),
        d.meta("mtu_geneve"),
        d.meta("mtu_seed"),
        d.meta("datapath_geneve"),
        d.meta("datapath_seed"),
    );
    let _ = writeln!(
        md,
        "Every figure is the median over the runs, with min and max (and p99 for latencies). \
         Every ratio is taken per repetition between configurations measured side by side in \
         this run (alternating order), then summarised the same way.\n"
    );
}

fn targets(d: &Data, md: &mut String) {
    let _ = writeln!(md, "## Targets\n\n| target | figure | |\n|---|---|---|");
    let mut line = |target: &str, figure: String, ok: Option<bool>| {
        let result = if figure == "–" {
            "not measured"
        } else {
            verdict(ok)
        };
        let _ = writeln!(md, "| {target} | {figure} | {result} |");
    };

    let s = d.summary("internal.setup_ms");
    line(
        &format!("`setup` median ≤ {SETUP_MEDIAN_MAX_MS} ms (internal, default options)"),
        s.map_or("–".into(), |s| {
            format!("{} (p99 {})", ms(s.median), ms(s.p99))
        }),
        s.map(|s| s.median <= SETUP_MEDIAN_MAX_MS),
    );
    if let Some(s) = d.summary("dad-off.setup_ms") {
        line(
            "(reference: `setup`, internal, `dad=false`)",
            format!("{} (p99 {})", ms(s.median), ms(s.p99)),
            None,
        );
    }
    if let Some(s) = d.summary("dad-50.setup_ms") {
        line(
            "(reference: `setup`, internal, `dad_timeout_ms=50`, the former default)",
            format!("{} (p99 {})", ms(s.median), ms(s.p99)),
            None,
        );
    }
    if let Some(r) = d.ratio("internal.setup_ms", "dad-50.setup_ms") {
        line(
            "(reference: `setup` with the measured window / the 50 ms one, side by side)",
            format!("{} ({}–{})", ratio(r.median), ratio(r.min), ratio(r.max)),
            None,
        );
    }
    let nat = d.ratio("nat.setup_ms", "internal.setup_ms");
    line(
        &format!("`setup` with NAT ≤ {NAT_SETUP_RATIO_MAX}× internal (default options)"),
        nat.map_or("–".into(), |r| {
            format!("{} ({}–{})", ratio(r.median), ratio(r.min), ratio(r.max))
        }),
        nat.map(|r| r.median <= NAT_SETUP_RATIO_MAX),
    );
    let down = d.summary("nat.teardown_ms");
    line(
        &format!("`teardown` median ≤ {NAT_TEARDOWN_MAX_MS} ms (with NAT)"),
        down.map_or("–".into(), |s| {
            format!("{} (p99 {})", ms(s.median), ms(s.p99))
        }),
        down.map(|s| s.median <= NAT_TEARDOWN_MAX_MS),
    );
    for (step, what) in [
        ("setup", "`setup`'s bundle"),
        ("teardown", "`teardown`'s delete"),
    ] {
        let (inproc, ofctl) = (
            format!("flows.openflow_{step}_ms"),
            format!("flows.ofctl_{step}_ms"),
        );
        if let (Some(r), Some(a), Some(b)) = (
            d.ratio(&inproc, &ofctl),
            d.summary(&inproc),
            d.summary(&ofctl),
        ) {
            line(
                &format!(
                    "(reference: {what} of port flows in-process / by `ovs-ofctl`, side by side)"
                ),
                format!(
                    "{} vs {} median, ratio {} ({}–{})",
                    ms(a.median),
                    ms(b.median),
                    ratio(r.median),
                    ratio(r.min),
                    ratio(r.max)
                ),
                None,
            );
        }
    }
    for (a, b, what) in &PODMAN_PAIRS[..2] {
        let r = d.ratio(&format!("podman.{a}_ms"), &format!("podman.{b}_ms"));
        line(
            &format!("`podman run` ≤ {PODMAN_RUN_RATIO_MAX}× bridge ({what}, default options)"),
            r.map_or("–".into(), |r| {
                format!("{} ({}–{})", ratio(r.median), ratio(r.min), ratio(r.max))
            }),
            r.map(|r| r.median <= PODMAN_RUN_RATIO_MAX),
        );
    }
    let tcp_seed = d.ratio("tcp.geneve_mbps", "tcp.seed_mbps");
    line(
        &format!("TCP ≥ {TCP_VS_SEED_MIN}× seed topology"),
        tcp_seed.map_or("–".into(), |r| {
            format!("{} ({}–{})", ratio(r.median), ratio(r.min), ratio(r.max))
        }),
        tcp_seed.map(|r| r.median >= TCP_VS_SEED_MIN),
    );
    let tcp_under = d.ratio("tcp.geneve_mbps", "tcp.underlay_mbps");
    line(
        &format!("TCP ≥ {TCP_VS_UNDERLAY_MIN}× underlay"),
        tcp_under.map_or("–".into(), |r| {
            format!("{} ({}–{})", ratio(r.median), ratio(r.min), ratio(r.max))
        }),
        tcp_under.map(|r| r.median >= TCP_VS_UNDERLAY_MIN),
    );
    let rtt_seed = d.ratio("rtt.geneve_ms", "rtt.seed_ms");
    let (g, s) = (d.summary("rtt.geneve_ms"), d.summary("rtt.seed_ms"));
    line(
        &format!("RTT ≤ {RTT_VS_SEED_MAX}× the seed topology"),
        match (rtt_seed, g, s) {
            (Some(r), Some(g), Some(s)) => format!(
                "{} vs {} median, ratio {} ({}–{})",
                rtt(g.median),
                rtt(s.median),
                ratio(r.median),
                ratio(r.min),
                ratio(r.max)
            ),
            _ => "–".into(),
        },
        rtt_seed.map(|r| r.median <= RTT_VS_SEED_MAX),
    );
    let n = d.get("scale.setup_ms").map_or(0, |s| s.len());
    let w = scale_window(n);
    let ends = d.ends("scale.setup_ms", w);
    let reference = d.ends("scale.ovs_add_port_ms", w);
    line(
        &format!(
            "setup flat to {n} containers (median of the last {w} ≤ {SCALE_RATIO_MAX}× the \
             first {w}, or no more than `ovs-vsctl add-port`'s own growth)"
        ),
        ends.map_or("–".into(), |(f, l, r)| {
            format!("{} ({} → {})", ratio(r), ms(f.median), ms(l.median))
        }),
        ends.map(|(_, _, r)| {
            r <= SCALE_RATIO_MAX || reference.is_some_and(|(_, _, reference)| r <= reference)
        }),
    );
    if let Some((f, l, r)) = reference {
        line(
            "(reference: `ovs-vsctl add-port` alone, same bridge size)",
            format!("{} ({} → {})", ratio(r), ms(f.median), ms(l.median)),
            None,
        );
    }
    let created = d.summary(&format!("peers-{CREATE_PEERS}.create_ms"));
    line(
        &format!("`create` with {CREATE_PEERS} peers < {CREATE_PEERS_MAX_MS} ms"),
        created.map_or("–".into(), |s| {
            format!("{} (max {})", ms(s.median), ms(s.max))
        }),
        created.map(|s| s.median < CREATE_PEERS_MAX_MS),
    );
    let rss = d.peak_rss();
    line(
        "plugin peak RSS < 15 MB",
        rss.as_ref()
            .map_or("–".into(), |(kib, cmd)| format!("{} (`{cmd}`)", mb(*kib))),
        rss.as_ref().map(|(kib, _)| *kib < RSS_MAX_KIB),
    );
    md.push('\n');
}

fn control(d: &Data, md: &mut String) {
    let _ = writeln!(
        md,
        "## Control plane\n\nThe plugin driven directly with the JSON podman sends, inside lab \
         host 1 (one peer), after {} untimed warm-up runs; wall time of the plugin process \
         alone.\n\n{TABLE_HEAD}",
        3
    );
    for (label, what) in CYCLE_LABELS {
        for cmd in ["setup", "teardown"] {
            if let Some(s) = d.summary(&format!("{label}.{cmd}_ms")) {
                row(md, &format!("`{cmd}`, {what}"), &s, ms);
            }
        }
    }
    for (label, what) in PODMAN_LABELS {
        if let Some(s) = d.summary(&format!("podman.{label}_ms")) {
            row(md, &format!("`podman run --rm` on {what}"), &s, ms);
        }
    }
    for (a, b, what) in PODMAN_PAIRS {
        if let Some(r) = d.ratio(&format!("podman.{a}_ms"), &format!("podman.{b}_ms")) {
            row(md, &format!("ratio {what}"), &r, ratio);
        }
    }
    if let Some(r) = d.ratio("internal.setup_ms", "ps-off.setup_ms") {
        row(md, "ratio `setup`, port security on / off", &r, ratio);
    }
    let _ = writeln!(md);
    let _ = writeln!(
        md,
        "Duplicate-address detection: {}; the plugin's defaults: {}.\n",
        d.meta("dad"),
        d.meta("dad_defaults")
    );
    let kinds: Vec<String> = d
        .series
        .iter()
        .filter_map(|(name, s)| {
            let cmd = name.strip_prefix("rss_kib.")?;
            let s = Summary::of(&values(s))?;
            Some(format!("`{cmd}` {} (median {})", mb(s.max), mb(s.median)))
        })
        .collect();
    if !kinds.is_empty() {
        let _ = writeln!(
            md,
            "Peak RSS of the plugin process: {}.\n",
            kinds.join(", ")
        );
    }
}

fn dataplane(d: &Data, md: &mut String) {
    let _ = writeln!(
        md,
        "## Data plane\n\nOne container on each of two lab hosts; iperf3 ({} s per run, TCP, one \
         stream) and ping ({} samples per path) run from the host's root filesystem inside the \
         container's network namespace. The three paths alternate within each repetition.\n",
        d.meta("iperf_seconds"),
        d.get("rtt.geneve_ms").map_or(0, |s| values(s).len()),
    );
    let _ = writeln!(
        md,
        "| path | TCP median | min | max | RTT median | p99 | min | max |\n\
         |---|---:|---:|---:|---:|---:|---:|---:|"
    );
    for (key, what) in PATHS {
        let t = d.summary(&format!("tcp.{key}_mbps"));
        let r = d.summary(&format!("rtt.{key}_ms"));
        if t.is_none() && r.is_none() {
            continue;
        }
        let tcp = t.map_or("– | – | –".into(), |t| {
            format!("{} | {} | {}", mbps(t.median), mbps(t.min), mbps(t.max))
        });
        let lat = r.map_or("– | – | – | –".into(), |r| {
            format!(
                "{} | {} | {} | {}",
                rtt(r.median),
                rtt(r.p99),
                rtt(r.min),
                rtt(r.max)
            )
        });
        let _ = writeln!(md, "| {what} | {tcp} | {lat} |");
    }
    let _ = writeln!(md, "\n{TABLE_HEAD}");
    for (a, b, what) in [
        ("tcp.geneve_mbps", "tcp.seed_mbps", "TCP geneve-ovs / seed"),
        (
            "tcp.geneve_mbps",
            "tcp.underlay_mbps",
            "TCP geneve-ovs / underlay",
        ),
        ("tcp.seed_mbps", "tcp.underlay_mbps", "TCP seed / underlay"),
        ("rtt.geneve_ms", "rtt.seed_ms", "RTT geneve-ovs / seed"),
        (
            "rtt.geneve_ms",
            "rtt.underlay_ms",
            "RTT geneve-ovs / underlay",
        ),
        (
            "tcp.geneve_mbps",
            "tcp.geneve_open_mbps",
            "TCP port security on / off",
        ),
        (
            "rtt.geneve_ms",
            "rtt.geneve_open_ms",
            "RTT port security on / off",
        ),
        ("tcp.ovn_mbps", "tcp.geneve_mbps", "TCP OVN mode / mesh"),
        ("rtt.ovn_ms", "rtt.geneve_ms", "RTT OVN mode / mesh"),
    ] {
        if let Some(r) = d.ratio(a, b) {
            row(md, &format!("ratio {what}"), &r, ratio);
        }
    }
    md.push('\n');
}

fn scale(d: &Data, md: &mut String) {
    let _ = writeln!(
        md,
        "## Scale\n\nThe plugin driven directly in lab host 1, networks with {}.\n\n{TABLE_HEAD}",
        d.meta("scale_options")
    );
    if let Some(s) = d.get("scale.setup_ms") {
        let n = s.len();
        let w = scale_window(n);
        if let Some((first, last, _)) = d.ends("scale.setup_ms", w) {
            row(
                md,
                &format!("`setup`, containers 1–{w} of {n} on one network"),
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
    }
    if let Some(s) = d.get("scale.ovs_add_port_ms") {
        let n = s.len();
        let w = scale_window(n);
        if let Some((first, last, _)) = d.ends("scale.ovs_add_port_ms", w) {
            row(
                md,
                &format!("reference: `ovs-vsctl add-port` alone, ports 1–{w} of {n}"),
                &first,
                ms,
            );
            row(
                md,
                &format!(
                    "reference: `ovs-vsctl add-port` alone, ports {}–{n}",
                    n.saturating_sub(w) + 1
                ),
                &last,
                ms,
            );
        }
    }
    if let Some(s) = d.summary("scale.teardown_ms") {
        row(md, "`teardown` of those containers", &s, ms);
    }
    link_event_rows(d, "scale.link_event_netlink", md);
    for peers in PEER_COUNTS {
        if let Some(s) = d.summary(&format!("peers-{peers}.create_ms")) {
            row(md, &format!("`create` with {peers} peer(s)"), &s, ms);
        }
    }
    for (name, what) in [
        ("networks.create_ms", "`create`"),
        ("networks.setup_ms", "`setup`"),
    ] {
        if let Some(s) = d.get(name) {
            let n = s.len();
            let w = networks_window(n);
            if let Some((first, last, _)) = d.ends(name, w) {
                row(
                    md,
                    &format!("{what}, networks 1–{w} of {n} on one host"),
                    &first,
                    ms,
                );
                row(
                    md,
                    &format!("{what}, networks {}–{n}", n.saturating_sub(w) + 1),
                    &last,
                    ms,
                );
            }
        }
    }
    md.push('\n');
}

/// Data files for `plot.gp`: `label median min max` per bar, and the per-container series.
fn plot_data(d: &Data, dir: &Path) -> Result<()> {
    let plot = dir.join("plot");
    fs::create_dir_all(&plot).context("creating the plot directory")?;
    let bars = |rows: Vec<(String, Option<Summary>)>| -> String {
        let mut out = String::new();
        for (label, s) in rows {
            if let Some(s) = s {
                let _ = writeln!(out, "\"{label}\" {} {} {}", s.median, s.min, s.max);
            }
        }
        out
    };
    let mut control = Vec::new();
    for (label, _) in CYCLE_LABELS {
        for cmd in ["setup", "teardown"] {
            control.push((
                format!("{cmd} {label}"),
                d.summary(&format!("{label}.{cmd}_ms")),
            ));
        }
    }
    let podman = PODMAN_LABELS
        .iter()
        .map(|(l, _)| (l.replace('-', " "), d.summary(&format!("podman.{l}_ms"))))
        .collect();
    let tcp = PATHS
        .iter()
        .map(|(k, _)| (k.to_string(), d.summary(&format!("tcp.{k}_mbps"))))
        .collect();
    // Round trips have rare stalls of tens of ms: their whiskers stop at p99, or the stalls
    // would flatten the bars.
    let rtts = PATHS
        .iter()
        .map(|(k, _)| {
            let s = d.summary(&format!("rtt.{k}_ms"));
            (k.to_string(), s.map(|s| Summary { max: s.p99, ..s }))
        })
        .collect();
    let peers = PEER_COUNTS
        .iter()
        .map(|p| (p.to_string(), d.summary(&format!("peers-{p}.create_ms"))))
        .collect();
    fs::write(plot.join("control.dat"), bars(control))?;
    fs::write(plot.join("podman.dat"), bars(podman))?;
    fs::write(plot.join("tcp.dat"), bars(tcp))?;
    fs::write(plot.join("rtt.dat"), bars(rtts))?;
    fs::write(plot.join("peers.dat"), bars(peers))?;
    for (name, file) in [
        ("scale.setup_ms", "scale.dat"),
        ("scale.ovs_add_port_ms", "ovs.dat"),
        ("networks.setup_ms", "networks.dat"),
    ] {
        let mut points = String::new();
        for (rep, v) in d.get(name).into_iter().flatten() {
            for v in v {
                let _ = writeln!(points, "{} {v}", rep + 1);
            }
        }
        fs::write(plot.join(file), points)?;
    }
    Ok(())
}
