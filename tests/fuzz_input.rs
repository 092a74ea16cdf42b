//! Fuzzing what the plugin reads: podman's JSON on stdin and the option values in it.
//!
//! Two levels, both bounded so that they run in every `cargo test`:
//!
//! * in-process, many cases: the protocol types and the option parser/resolver (with made-up
//!   host facts) must never panic, and options that resolve must survive the round trip through
//!   `to_options` unchanged;
//! * the real binary, fewer cases (a process each): `create`, `setup` and `teardown` fed with
//!   mutated podman documents must answer with exactly one `{"error": "..."}` and exit code 1.
//!   They run in a private network namespace and with `OVS_RUNDIR` pointing nowhere, so no
//!   input can reach an OVS or a link of the machine.
//!
//! The inputs start from documents captured from podman 5.4 and are mutated structurally
//! (values replaced by arbitrary JSON, keys removed or added) and textually (bytes inserted,
//! removed, replaced). `GENEVE_OVS_FUZZ_SCALE=N` multiplies every case count by N.

mod common;

use std::collections::BTreeMap;
use std::io::Write;
use std::net::IpAddr;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};

use anyhow::Result;
use geneve_ovs::options::{self, HostFacts, Stage, UnderlayRoute};
use geneve_ovs::types::{Network, NetworkPluginExec};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use serde_json::{json, Map, Value};

/// `create` input captured from podman 5.4.2.
const CREATE_IN: &str = include_str!("fixtures/podman-create.json");

/// `setup`/`teardown` input captured from podman 5.4.2 (nulls included).
const SETUP_IN: &str = include_str!("fixtures/podman-setup.json");

/// Cases of the in-process option test.
const OPTION_CASES: u32 = 5_000;
/// Cases of the in-process document test.
const DOCUMENT_CASES: u32 = 5_000;
/// Cases per command of the binary test (each one process).
const CASES: u32 = 200;

fn scale() -> u32 {
    std::env::var("GENEVE_OVS_FUZZ_SCALE")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1)
        .max(1)
}

fn runner(cases: u32) -> TestRunner {
    TestRunner::new(Config {
        cases: cases * scale(),
        // Shrinking a failure is worth it; the bound keeps a failing run short.
        max_shrink_iters: 2000,
        failure_persistence: None,
        ..Config::default()
    })
}

/// Strings that sit on the edges of what the parser accepts.
fn tricky_string() -> impl Strategy<Value = String> {
    prop_oneof![
        Just(String::new()),
        Just(" ".to_string()),
        Just("0".to_string()),
        Just("1".to_string()),
        Just("-1".to_string()),
        Just("+5".to_string()),
        Just("4294967296".to_string()),
        Just("18446744073709551616".to_string()),
        Just("99999999999999999999999999".to_string()),
        Just("16777215".to_string()),
        Just("16777216".to_string()),
        Just("65535".to_string()),
        Just("65536".to_string()),
        Just("1280".to_string()),
        Just("67".to_string()),
        Just("true".to_string()),
        Just("false".to_string()),
        Just("system".to_string()),
        Just("netdev".to_string()),
        Just("10.99.0.1".to_string()),
        Just("10.99.0.2,10.99.0.3".to_string()),
        Just("10.99.0.2,,".to_string()),
        Just("fd99::2, 10.99.0.2".to_string()),
        Just("fe80::1".to_string()),
        Just("0.0.0.0".to_string()),
        Just("255.255.255.255".to_string()),
        Just("224.0.0.1".to_string()),
        Just("::".to_string()),
        Just("192.168.121.0/24".to_string()),
        Just("fd12::/64".to_string()),
        Just("0a:58:c0:a8:00:01".to_string()),
        Just("zz:zz:zz:zz:zz:zz".to_string()),
        Just("eth0".to_string()),
        Just("a/b".to_string()),
        Just("x".repeat(300)),
        Just("é\u{0}\u{202e}".to_string()),
        any::<String>(),
        prop::collection::vec(
            prop::sample::select("0123456789abcdef:.,/ ".chars().collect::<Vec<_>>()),
            0..40
        )
        .prop_map(String::from_iter),
    ]
}

/// Option maps: known names (and some others) with tricky values.
fn option_map() -> impl Strategy<Value = BTreeMap<String, String>> {
    let name = prop_oneof![
        4 => prop::sample::select(vec![
            "peers", "vni", "mtu", "datapath", "dst_port", "local_ip", "bfd",
        ])
        .prop_map(str::to_string),
        1 => any::<String>(),
    ];
    prop::collection::btree_map(name, tricky_string(), 0..8)
}

/// Arbitrary JSON, biased towards the shapes podman sends.
fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>().prop_map(|f| json!(f)),
        tricky_string().prop_map(Value::String),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map(tricky_string(), inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect::<Map<_, _>>())),
        ]
    })
}

/// One structural edit at the node reached by following `path` (each step picks a child by
/// index modulo the number of children).
#[derive(Debug, Clone)]
enum Edit {
    Replace(Vec<usize>, Value),
    Remove(Vec<usize>),
    Add(Vec<usize>, String, Value),
}

fn edit() -> impl Strategy<Value = Edit> {
    let path = prop::collection::vec(any::<usize>(), 0..5);
    prop_oneof![
        3 => (path.clone(), json_value()).prop_map(|(p, v)| Edit::Replace(p, v)),
        1 => path.clone().prop_map(Edit::Remove),
        1 => (path, tricky_string(), json_value()).prop_map(|(p, k, v)| Edit::Add(p, k, v)),
    ]
}

/// The child slot a path step leads to: object key or array index.
fn step(node: &Value, choice: usize) -> Option<Result<String, usize>> {
    match node {
        Value::Object(map) if !map.is_empty() => {
            map.keys().nth(choice % map.len()).cloned().map(Ok)
        }
        Value::Array(items) if !items.is_empty() => Some(Err(choice % items.len())),
        _ => None,
    }
}

fn apply(doc: &mut Value, edit: &Edit) {
    let path = match edit {
        Edit::Replace(p, _) | Edit::Remove(p) | Edit::Add(p, _, _) => p,
    };
    apply_at(doc, path, edit);
}

/// Descends along `path` as far as it leads, then edits there.
fn apply_at(node: &mut Value, path: &[usize], edit: &Edit) {
    if path.len() > 1 {
        if let Some(slot) = step(node, path[0]) {
            let child = match slot {
                Ok(key) => &mut node[&key],
                Err(i) => &mut node[i],
            };
            return apply_at(child, &path[1..], edit);
        }
    }
    let slot = path.first().and_then(|&c| step(node, c));
    match edit {
        Edit::Replace(_, value) => match slot {
            Some(Ok(key)) => node[&key] = value.clone(),
            Some(Err(i)) => node[i] = value.clone(),
            None => *node = value.clone(),
        },
        Edit::Remove(_) => match (slot, node) {
            (Some(Ok(key)), Value::Object(map)) => {
                map.remove(&key);
            }
            (Some(Err(i)), Value::Array(items)) => {
                items.remove(i);
            }
            _ => {}
        },
        Edit::Add(_, key, value) => {
            if let Value::Object(map) = node {
                map.insert(key.clone(), value.clone());
            }
        }
    }
}

/// Byte-level edits of a JSON text: (position, what, byte).
fn text_edits() -> impl Strategy<Value = Vec<(usize, u8, u8)>> {
    prop::collection::vec((any::<usize>(), 0u8..3, any::<u8>()), 1..6)
}

fn mutate_text(text: &str, edits: &[(usize, u8, u8)]) -> Vec<u8> {
    let mut bytes = text.as_bytes().to_vec();
    for &(pos, what, byte) in edits {
        let at = pos % (bytes.len() + 1);
        match what {
            0 => bytes.insert(at, byte),
            1 if at < bytes.len() => {
                bytes.remove(at);
            }
            _ if at < bytes.len() => bytes[at] = byte,
            _ => bytes.push(byte),
        }
    }
    bytes
}

/// `base` with a few structural edits.
fn structural(base: &'static str) -> impl Strategy<Value = Value> {
    let doc: Value = serde_json::from_str(base).expect("captured document");
    prop::collection::vec(edit(), 1..4).prop_map(move |edits| {
        let mut d = doc.clone();
        for e in &edits {
            apply(&mut d, e);
        }
        d
    })
}

/// A mutated version of `base`: structural edits, then maybe byte edits, or pure noise.
fn mutated(base: &'static str) -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        6 => structural(base).prop_map(|d| d.to_string().into_bytes()),
        3 => (structural(base), text_edits()).prop_map(|(d, e)| mutate_text(&d.to_string(), &e)),
        1 => prop::collection::vec(any::<u8>(), 0..200),
    ]
}

/// Host facts for the resolver: fixed, plausible, never failing.
struct FakeHost;

impl HostFacts for FakeHost {
    fn local_addresses(&mut self) -> Result<Vec<IpAddr>> {
        Ok(vec!["10.99.0.1".parse()?, "fd99::1".parse()?])
    }
    fn underlay_route(&mut self, peer: IpAddr) -> Result<Option<UnderlayRoute>> {
        let source: IpAddr = if peer.is_ipv4() {
            "10.99.0.1".parse()?
        } else {
            "fd99::1".parse()?
        };
        Ok((!peer.is_loopback()).then_some(UnderlayRoute {
            mtu: 1500,
            source: Some(source),
        }))
    }
    fn route_destinations(&mut self) -> Result<Vec<ipnet::IpNet>> {
        Ok(vec!["10.99.0.0/24".parse()?, "172.16.0.0/12".parse()?])
    }
    fn datapath_types(&mut self) -> Result<Vec<String>> {
        Ok(vec!["netdev".into(), "system".into()])
    }
    fn read_psk(&mut self, path: &std::path::Path) -> Result<geneve_ovs::ipsec::Psk> {
        geneve_ovs::ipsec::check_key_text(path, "0123456789abcdef0123")
    }
    fn check_pki_files(&mut self, _pki: &geneve_ovs::ipsec::HostPki) -> Result<()> {
        Ok(())
    }
    fn check_ipsec_software(&mut self) -> Result<()> {
        Ok(())
    }
}

/// Parses and resolves `network` as create and setup would; checks the write-back round trip.
fn resolve_both_ways(network: &Network) -> Result<(), TestCaseError> {
    let _ = options::parse(&network.options());
    let _ = options::resolve(network, Stage::Saved, &mut FakeHost);
    if let Ok(cfg) = options::resolve(network, Stage::Create, &mut FakeHost) {
        let mut saved = network.clone();
        saved.options = Some(cfg.to_options());
        let again = options::resolve(&saved, Stage::Saved, &mut FakeHost);
        prop_assert!(
            again.is_ok(),
            "{:?} no longer resolves: {again:?}",
            saved.options
        );
        prop_assert_eq!(again.ok(), Some(cfg));
    }
    Ok(())
}

/// Plugin processes started by the binary test.
static EXECUTIONS: AtomicUsize = AtomicUsize::new(0);
/// Of those, the runs whose input passed every check and failed only at the OVS connection.
static REACHED_OVS: AtomicUsize = AtomicUsize::new(0);

#[test]
fn option_maps_never_panic_and_round_trip() {
    let base: Network = serde_json::from_str(CREATE_IN).expect("captured document");
    let mut runner = runner(OPTION_CASES);
    runner
        .run(&option_map(), |options| {
            let mut network = base.clone();
            network.options = Some(options);
            resolve_both_ways(&network)
        })
        .unwrap();
    println!("option maps: {} cases", OPTION_CASES * scale());
}

#[test]
fn mutated_documents_never_panic_in_process() {
    let mut runner = runner(DOCUMENT_CASES);
    let documents = prop_oneof![mutated(CREATE_IN), mutated(SETUP_IN)];
    runner
        .run(&documents, |bytes| {
            let text = String::from_utf8_lossy(&bytes);
            if let Ok(network) = serde_json::from_str::<Network>(&text) {
                resolve_both_ways(&network)?;
                // What create prints must parse again.
                let back = serde_json::to_string(&network).expect("serialise");
                prop_assert!(serde_json::from_str::<Network>(&back).is_ok());
            }
            if let Ok(exec) = serde_json::from_str::<NetworkPluginExec>(&text) {
                resolve_both_ways(&exec.network)?;
                let _ = geneve_ovs::naming::host_veth_name(&exec.network.id, &exec.container_id);
                if let Some(mac) = &exec.network_options.static_mac {
                    let _ = geneve_ovs::naming::parse_mac(mac);
                }
            }
            Ok(())
        })
        .unwrap();
    println!("documents in process: {} cases", DOCUMENT_CASES * scale());
}

/// A private, empty network namespace for the binary runs, deleted on drop.
struct PrivateNetns {
    name: String,
}

impl PrivateNetns {
    fn new() -> Result<Self> {
        let name = format!("{}{}fuzz", common::netns::TAG, std::process::id());
        common::netns::add(&name)?;
        Ok(PrivateNetns { name })
    }
}

impl Drop for PrivateNetns {
    fn drop(&mut self) {
        if let Err(e) = common::netns::delete(&self.name) {
            eprintln!("[fuzz] cleanup of {}: {e:#}", self.name);
        }
    }
}

/// Runs the plugin with `args` and `stdin` in `ns`; requires one `{"error": string}` on
/// stdout and exit code 1.
fn expect_json_error(
    ns: &geneve_ovs::netns::Netns,
    args: &[&str],
    stdin: &[u8],
) -> Result<(), TestCaseError> {
    EXECUTIONS.fetch_add(1, Ordering::Relaxed);
    let out = ns
        .enter(|| {
            let mut child = Command::new(common::host::PLUGIN_BIN)
                .args(args)
                .env_clear()
                .env("OVS_RUNDIR", "/nonexistent/geneve-ovs-fuzz")
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()?;
            if let Some(mut input) = child.stdin.take() {
                let _ = input.write_all(stdin);
            }
            Ok(child.wait_with_output()?)
        })
        .map_err(|e| TestCaseError::fail(format!("{e:#}")))?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    prop_assert!(!stderr.contains("panicked"), "panic: {stderr}");
    prop_assert_eq!(
        out.status.code(),
        Some(1),
        "stdout {} stderr {}",
        stdout,
        stderr
    );
    let doc: Value = serde_json::from_str(&stdout).map_err(|e| {
        TestCaseError::fail(format!("stdout is not one JSON document ({e}): {stdout:?}"))
    })?;
    let obj = doc.as_object();
    prop_assert!(
        obj.is_some_and(|o| o.len() == 1 && o.get("error").is_some_and(Value::is_string)),
        "not {{\"error\": string}}: {}",
        doc
    );
    if doc["error"]
        .as_str()
        .is_some_and(|e| e.contains("cannot connect to the OVSDB server"))
    {
        REACHED_OVS.fetch_add(1, Ordering::Relaxed);
    }
    Ok(())
}

#[test]
fn the_binary_answers_every_bad_input_with_one_json_error() -> Result<()> {
    let private = PrivateNetns::new()?;
    let ns = geneve_ovs::netns::Netns::open(&common::netns::path(&private.name))?;
    let before = EXECUTIONS.load(Ordering::Relaxed);
    let started = std::time::Instant::now();
    let netns_arg = "/nonexistent/netns/fuzz";
    for (args, base) in [
        (vec!["create"], CREATE_IN),
        (vec!["setup", netns_arg], SETUP_IN),
        (vec!["teardown", netns_arg], SETUP_IN),
    ] {
        let mut runner = runner(CASES);
        runner
            .run(&mutated(base), |bytes| {
                expect_json_error(&ns, &args, &bytes)
            })
            .map_err(|e| anyhow::anyhow!("{args:?}: {e}"))?;
    }
    // Option values through the real create.
    let base: Value = serde_json::from_str(CREATE_IN)?;
    let mut runner = runner(CASES);
    runner
        .run(&option_map(), |options| {
            let mut doc = base.clone();
            doc["options"] = json!(options);
            expect_json_error(&ns, &["create"], doc.to_string().as_bytes())
        })
        .map_err(|e| anyhow::anyhow!("create options: {e}"))?;
    // No stdin at all, and a plugin command without its argument.
    for args in [&["create"][..], &["setup"], &["teardown"]] {
        expect_json_error(&ns, args, b"").map_err(|e| anyhow::anyhow!("{args:?}: {e}"))?;
    }
    // Arguments netavark never sends are the command line's usage errors: no panic, nothing on
    // stdout, the reason on stderr, exit code 64.
    for args in [&["bogus"][..], &[], &["status", "--bogus"]] {
        let out = ns.enter(|| {
            Ok(Command::new(common::host::PLUGIN_BIN)
                .args(args)
                .env_clear()
                .env("OVS_RUNDIR", "/nonexistent/geneve-ovs-fuzz")
                .stdin(Stdio::null())
                .output()?)
        })?;
        let stderr = String::from_utf8_lossy(&out.stderr);
        anyhow::ensure!(!stderr.contains("panicked"), "{args:?}: panic: {stderr}");
        anyhow::ensure!(
            out.status.code() == Some(64) && out.stdout.is_empty() && !stderr.is_empty(),
            "{args:?}: {out:?}"
        );
    }
    println!(
        "binary: {} executions in {:?}, {} of them valid enough to get to the OVS connection",
        EXECUTIONS.load(Ordering::Relaxed) - before,
        started.elapsed(),
        REACHED_OVS.load(Ordering::Relaxed)
    );
    Ok(())
}
