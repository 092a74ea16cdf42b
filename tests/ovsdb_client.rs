//! The OVSDB client against a real ovsdb-server (no ovs-vswitchd), each test with its own
//! database, socket and server process, removed again by a Drop guard even when the test fails.
//!
//! Fails when Open vSwitch is not installed: these tests need the real server.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use geneve_ovs::ovsdb::ops::{cond, delete, insert, mutate, mutation, select, wait};
use geneve_ovs::ovsdb::value::{
    column, count, inserted_uuid, integer, map, named_uuid, rows, set, set_elements, string_map,
    uuid, uuid_str,
};
use geneve_ovs::ovsdb::{
    Client, TransactError, Until, CONSTRAINT_VIOLATION, REFERENTIAL_INTEGRITY_VIOLATION, TIMED_OUT,
};
use serde_json::{json, Value};

const DB: &str = "Open_vSwitch";
const SCHEMA: &str = "/usr/share/openvswitch/vswitch.ovsschema";

/// A private ovsdb-server in a temporary directory, stopped and removed on drop.
struct OvsdbServer {
    dir: PathBuf,
}

impl OvsdbServer {
    /// Starts a server with an initialised Open_vSwitch database, or returns `None` when Open
    /// vSwitch is not installed.
    fn start() -> Option<OvsdbServer> {
        if !Path::new(SCHEMA).exists()
            || Command::new("ovsdb-server")
                .arg("--version")
                .output()
                .is_err()
        {
            // The suite is meant to run against a real server: a missing one is a failure,
            // not a pass.
            panic!("Open vSwitch (ovsdb-server, {SCHEMA}) is not installed");
        }
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "geneve-ovs-ovsdb-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir(&dir).expect("create the server directory");
        // From here on, Drop cleans up whatever got started.
        let server = OvsdbServer { dir };
        run(Command::new("ovsdb-tool")
            .arg("create")
            .arg(server.dir.join("conf.db"))
            .arg(SCHEMA));
        run(Command::new("ovsdb-server")
            .arg(server.dir.join("conf.db"))
            .arg(format!("--remote=punix:{}", server.socket().display()))
            .arg(format!("--pidfile={}", server.pidfile().display()))
            .arg(format!("--unixctl={}", server.dir.join("ctl").display()))
            .arg(format!("--log-file={}", server.dir.join("log").display()))
            .arg("--detach"));
        // The equivalent of `ovs-vsctl init`: the one Open_vSwitch row.
        server
            .client()
            .transact(DB, vec![insert(DB, None, json!({})).unwrap()])
            .expect("initialise the database");
        Some(server)
    }

    fn socket(&self) -> PathBuf {
        self.dir.join("db.sock")
    }

    fn pidfile(&self) -> PathBuf {
        self.dir.join("ovsdb-server.pid")
    }

    fn pid(&self) -> Option<libc::pid_t> {
        std::fs::read_to_string(self.pidfile())
            .ok()?
            .trim()
            .parse()
            .ok()
    }

    fn client(&self) -> Client {
        Client::connect(&self.socket()).expect("connect to the test ovsdb-server")
    }

    fn signal(&self, signal: libc::c_int) {
        if let Some(pid) = self.pid() {
            // SAFETY: kill(2) has no memory-safety preconditions.
            unsafe { libc::kill(pid, signal) };
        }
    }
}

impl Drop for OvsdbServer {
    fn drop(&mut self) {
        if let Some(pid) = self.pid() {
            // SAFETY: kill(2) has no memory-safety preconditions. SIGCONT first in case a test
            // stopped the server.
            unsafe {
                libc::kill(pid, libc::SIGCONT);
                libc::kill(pid, libc::SIGTERM);
            }
            let started = Instant::now();
            while alive(pid) {
                if started.elapsed() > Duration::from_secs(2) {
                    // SAFETY: as above.
                    unsafe { libc::kill(pid, libc::SIGKILL) };
                    break;
                }
                thread::sleep(Duration::from_millis(10));
            }
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Whether process `pid` still runs. A zombie counts as gone: the daemon's parent is init,
/// which may take its time to reap it.
fn alive(pid: libc::pid_t) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        // The state follows the parenthesised command name.
        Ok(stat) => stat
            .rsplit_once(')')
            .is_some_and(|(_, rest)| !rest.trim_start().starts_with('Z')),
        Err(_) => false,
    }
}

/// Runs a setup command, failing the test with its output if it fails.
fn run(command: &mut Command) {
    let output = command.output().expect("run a setup command");
    assert!(
        output.status.success(),
        "{command:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// The operations that create bridge `bridge` with its internal port and the ports `ports`,
/// and attach it to the Open_vSwitch row, as one transaction would.
fn bridge_ops(bridge: &str, ports: &[&str]) -> Vec<Value> {
    let mut ops = Vec::new();
    let mut port_refs = Vec::new();
    for (i, name) in std::iter::once(&bridge).chain(ports).enumerate() {
        let (iface, port) = (format!("iface{i}"), format!("port{i}"));
        let kind = if i == 0 { "internal" } else { "" };
        ops.push(
            insert(
                "Interface",
                Some(&iface),
                json!({"name": name, "type": kind}),
            )
            .unwrap(),
        );
        ops.push(
            insert(
                "Port",
                Some(&port),
                json!({"name": name, "interfaces": named_uuid(&iface).unwrap()}),
            )
            .unwrap(),
        );
        port_refs.push(named_uuid(&port).unwrap());
    }
    ops.push(
        insert(
            "Bridge",
            Some("br"),
            json!({"name": bridge, "datapath_type": "netdev", "ports": set(port_refs),
                   "external_ids": map([("geneve-ovs/network", "test")])}),
        )
        .unwrap(),
    );
    ops.push(mutate(
        DB,
        vec![],
        vec![mutation(
            "bridges",
            "insert",
            set(vec![named_uuid("br").unwrap()]),
        )],
    ));
    ops
}

/// The only row of `table` whose `name` is `name`, or `None`.
fn row_named(client: &mut Client, table: &str, name: &str) -> Option<Value> {
    let results = client
        .transact(
            DB,
            vec![select(table, vec![cond("name", "==", name)], None)],
        )
        .unwrap();
    let found = rows(&results[0]).unwrap();
    assert!(found.len() <= 1, "{found:?}");
    found.first().cloned()
}

fn next_cfg(client: &mut Client) -> i64 {
    let results = client
        .transact(DB, vec![select(DB, vec![], Some(&["next_cfg"]))])
        .unwrap();
    integer(column(&rows(&results[0]).unwrap()[0], "next_cfg").unwrap()).unwrap()
}

fn transact_error(err: &anyhow::Error) -> &TransactError {
    err.downcast_ref::<TransactError>()
        .unwrap_or_else(|| panic!("not a TransactError: {err:#}"))
}

#[test]
fn inserts_a_bridge_and_reads_it_back() {
    let Some(server) = OvsdbServer::start() else {
        return;
    };
    let mut client = server.client();
    let ops = bridge_ops("br-a", &["p1"]);
    let n = ops.len();
    let results = client.transact(DB, ops).unwrap();
    assert_eq!(results.len(), n);
    let bridge_uuid = inserted_uuid(&results[4]).unwrap().to_string();
    let port_uuids = [
        inserted_uuid(&results[1]).unwrap().to_string(),
        inserted_uuid(&results[3]).unwrap().to_string(),
    ];
    assert_eq!(count(&results[5]).unwrap(), 1);

    let results = client
        .transact(
            DB,
            vec![
                select(
                    "Bridge",
                    vec![cond(
                        "external_ids",
                        "includes",
                        map([("geneve-ovs/network", "test")]),
                    )],
                    Some(&["_uuid", "name", "ports", "external_ids", "datapath_type"]),
                ),
                select(DB, vec![], Some(&["bridges"])),
                select(
                    "Interface",
                    vec![cond("name", "==", "br-a")],
                    Some(&["type"]),
                ),
            ],
        )
        .unwrap();
    let bridges = rows(&results[0]).unwrap();
    assert_eq!(bridges.len(), 1);
    let bridge = &bridges[0];
    assert_eq!(
        uuid_str(column(bridge, "_uuid").unwrap()).unwrap(),
        bridge_uuid
    );
    assert_eq!(column(bridge, "name").unwrap(), "br-a");
    assert_eq!(column(bridge, "datapath_type").unwrap(), "netdev");
    let mut ports: Vec<String> = set_elements(column(bridge, "ports").unwrap())
        .unwrap()
        .iter()
        .map(|p| uuid_str(p).unwrap().to_string())
        .collect();
    ports.sort();
    let mut expected = port_uuids.to_vec();
    expected.sort();
    assert_eq!(ports, expected);
    let external_ids = string_map(column(bridge, "external_ids").unwrap()).unwrap();
    assert_eq!(
        external_ids.get("geneve-ovs/network").map(String::as_str),
        Some("test")
    );
    // One bridge in Open_vSwitch.bridges: sent back as the bare UUID, a one-element set.
    let attached =
        set_elements(column(&rows(&results[1]).unwrap()[0], "bridges").unwrap()).unwrap();
    assert_eq!(attached, vec![uuid(&bridge_uuid)]);
    assert_eq!(
        column(&rows(&results[2]).unwrap()[0], "type").unwrap(),
        "internal"
    );
}

#[test]
fn duplicate_bridge_name_fails_at_commit() {
    let Some(server) = OvsdbServer::start() else {
        return;
    };
    let mut client = server.client();
    client.transact(DB, bridge_ops("br-dup", &[])).unwrap();

    // Same bridge name, but an internal port of another name so that only the Bridge index
    // is violated.
    let mut ops = bridge_ops("br-dup", &[]);
    ops[0] = insert(
        "Interface",
        Some("iface0"),
        json!({"name": "other", "type": "internal"}),
    )
    .unwrap();
    ops[1] = insert(
        "Port",
        Some("port0"),
        json!({"name": "other", "interfaces": named_uuid("iface0").unwrap()}),
    )
    .unwrap();
    let n = ops.len();
    let err = client.transact(DB, ops).unwrap_err();
    let error = transact_error(&err);
    assert!(error.is(CONSTRAINT_VIOLATION), "{error}");
    assert!(error.at_commit, "{error}");
    assert_eq!((error.index, error.op.as_str()), (n, "commit"));
    assert!(
        error
            .details
            .as_deref()
            .unwrap_or("")
            .contains("\"Bridge\""),
        "{error}"
    );
    // Nothing of the failed transaction was kept, and the connection still works.
    assert!(row_named(&mut client, "Port", "other").is_none());
}

#[test]
fn deleting_a_referenced_row_fails_at_commit() {
    let Some(server) = OvsdbServer::start() else {
        return;
    };
    let mut client = server.client();
    client.transact(DB, bridge_ops("br-ref", &["p1"])).unwrap();
    let err = client
        .transact(DB, vec![delete("Port", vec![cond("name", "==", "p1")])])
        .unwrap_err();
    let error = transact_error(&err);
    assert!(error.is(REFERENTIAL_INTEGRITY_VIOLATION), "{error}");
    assert!(error.at_commit && error.index == 1, "{error}");
    assert!(row_named(&mut client, "Port", "p1").is_some());
}

#[test]
fn mutates_next_cfg() {
    let Some(server) = OvsdbServer::start() else {
        return;
    };
    let mut client = server.client();
    let before = next_cfg(&mut client);
    let results = client
        .transact(
            DB,
            vec![
                mutate(DB, vec![], vec![mutation("next_cfg", "+=", 1)]),
                select(DB, vec![], Some(&["next_cfg"])),
            ],
        )
        .unwrap();
    assert_eq!(count(&results[0]).unwrap(), 1);
    let after = integer(column(&rows(&results[1]).unwrap()[0], "next_cfg").unwrap()).unwrap();
    assert_eq!(after, before + 1);
    assert_eq!(next_cfg(&mut client), before + 1);
}

#[test]
fn wait_for_cur_cfg_times_out_without_vswitchd() {
    let Some(server) = OvsdbServer::start() else {
        return;
    };
    let mut client = server.client();
    let results = client
        .transact(
            DB,
            vec![
                mutate(DB, vec![], vec![mutation("next_cfg", "+=", 1)]),
                select(DB, vec![], Some(&["next_cfg"])),
            ],
        )
        .unwrap();
    let target = integer(column(&rows(&results[1]).unwrap()[0], "next_cfg").unwrap()).unwrap();
    let started = Instant::now();
    let err = client
        .transact(
            DB,
            vec![wait(
                DB,
                vec![cond("cur_cfg", ">=", target)],
                &["cur_cfg"],
                Until::NotEqual,
                vec![],
                Some(200),
            )],
        )
        .unwrap_err();
    let elapsed = started.elapsed();
    let error = transact_error(&err);
    assert!(error.is(TIMED_OUT), "{error}");
    assert_eq!(
        (error.index, error.op.as_str(), error.at_commit),
        (0, "wait", false)
    );
    assert!(elapsed >= Duration::from_millis(200), "{elapsed:?}");
    assert!(elapsed < Duration::from_secs(5), "{elapsed:?}");
}

#[test]
fn removing_a_port_from_its_bridge_garbage_collects_it() {
    let Some(server) = OvsdbServer::start() else {
        return;
    };
    let mut client = server.client();
    client
        .transact(DB, bridge_ops("br-gc", &["p1", "p2"]))
        .unwrap();
    let port = row_named(&mut client, "Port", "p1").expect("port p1");
    let port_uuid = uuid_str(column(&port, "_uuid").unwrap())
        .unwrap()
        .to_string();

    client
        .transact(
            DB,
            vec![mutate(
                "Bridge",
                vec![cond("name", "==", "br-gc")],
                vec![mutation("ports", "delete", set(vec![uuid(&port_uuid)]))],
            )],
        )
        .unwrap();
    assert!(row_named(&mut client, "Port", "p1").is_none());
    assert!(row_named(&mut client, "Interface", "p1").is_none());
    assert!(row_named(&mut client, "Port", "p2").is_some());
    assert!(row_named(&mut client, "Interface", "p2").is_some());
    let bridge = row_named(&mut client, "Bridge", "br-gc").expect("bridge");
    assert_eq!(
        set_elements(column(&bridge, "ports").unwrap())
            .unwrap()
            .len(),
        2
    );
}

#[test]
fn missing_socket_names_the_path() {
    let dir = std::env::temp_dir().join(format!("geneve-ovs-ovsdb-missing-{}", std::process::id()));
    let path = dir.join("db.sock");
    let err = Client::connect(&path).unwrap_err();
    let text = format!("{err:#}");
    assert!(text.contains(&format!("unix:{}", path.display())), "{text}");
    assert!(text.contains("ovsdb-server"), "{text}");
    assert!(
        text.contains("systemctl start openvswitch-switch"),
        "{text}"
    );
}

#[test]
fn stale_socket_names_the_path() {
    let dir = std::env::temp_dir().join(format!("geneve-ovs-ovsdb-stale-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("db.sock");
    // A socket file nobody listens on, as a crashed ovsdb-server leaves behind.
    drop(std::os::unix::net::UnixListener::bind(&path).unwrap());
    let err = Client::connect(&path).unwrap_err();
    let _ = std::fs::remove_dir_all(&dir);
    let text = format!("{err:#}");
    assert!(text.contains(&format!("unix:{}", path.display())), "{text}");
    assert!(text.contains("refused"), "{text}");
}

#[test]
fn unknown_database_is_a_clear_error() {
    let Some(server) = OvsdbServer::start() else {
        return;
    };
    let mut client = server.client();
    let dbs = client.call("list_dbs", &[]).unwrap();
    assert!(dbs.as_array().unwrap().contains(&json!(DB)), "{dbs}");
    let err = client
        .transact("Nope", vec![select("Bridge", vec![], None)])
        .unwrap_err();
    assert!(err.downcast_ref::<TransactError>().is_none());
    assert!(err.to_string().contains("unknown database"), "{err}");
    // A refused request leaves the connection usable.
    next_cfg(&mut client);
}

#[test]
fn hung_server_times_out() {
    let Some(server) = OvsdbServer::start() else {
        return;
    };
    let mut client = server.client();
    next_cfg(&mut client);
    client.set_timeout(Duration::from_millis(300));
    server.signal(libc::SIGSTOP);
    let started = Instant::now();
    let err = client
        .transact(DB, vec![select(DB, vec![], Some(&["next_cfg"]))])
        .unwrap_err();
    let elapsed = started.elapsed();
    server.signal(libc::SIGCONT);
    let text = format!("{err:#}");
    assert!(text.contains("no reply from ovsdb-server"), "{text}");
    assert!(text.contains("300ms"), "{text}");
    assert!(
        elapsed >= Duration::from_millis(300) && elapsed < Duration::from_secs(3),
        "{elapsed:?}"
    );
    // A new connection works once the server runs again.
    next_cfg(&mut server.client());
}

#[test]
fn server_exit_is_an_error_not_a_hang() {
    let Some(server) = OvsdbServer::start() else {
        return;
    };
    let mut client = server.client();
    next_cfg(&mut client);
    server.signal(libc::SIGKILL);
    thread::sleep(Duration::from_millis(100));
    let err = client
        .transact(DB, vec![select(DB, vec![], Some(&["next_cfg"]))])
        .unwrap_err();
    let text = format!("{err:#}");
    assert!(
        text.contains(&server.socket().display().to_string()),
        "{text}"
    );
}

/// The median and 90th percentile of `n` timings of `f`, after 20 warm-up runs.
fn measure(n: usize, mut f: impl FnMut()) -> (Duration, Duration) {
    for _ in 0..20 {
        f();
    }
    let mut samples: Vec<Duration> = (0..n)
        .map(|_| {
            let started = Instant::now();
            f();
            started.elapsed()
        })
        .collect();
    samples.sort();
    (samples[n / 2], samples[n * 9 / 10])
}

/// Prints the round-trip time of small transactions (a read and a write); asserts only that
/// it is sane.
#[test]
fn round_trip_latency() {
    let Some(server) = OvsdbServer::start() else {
        return;
    };
    let mut client = server.client();
    let (read_median, read_p90) = measure(200, || {
        client
            .transact(DB, vec![select(DB, vec![], Some(&["next_cfg"]))])
            .unwrap();
    });
    let (write_median, write_p90) = measure(200, || {
        client
            .transact(
                DB,
                vec![
                    mutate(DB, vec![], vec![mutation("next_cfg", "+=", 1)]),
                    select(DB, vec![], Some(&["next_cfg"])),
                ],
            )
            .unwrap();
    });
    eprintln!(
        "OVSDB round trip, 200 small transacts each: select median {read_median:?} \
         (p90 {read_p90:?}); mutate+select median {write_median:?} (p90 {write_p90:?})"
    );
    assert!(read_median < Duration::from_millis(100), "{read_median:?}");
    assert!(
        write_median < Duration::from_millis(100),
        "{write_median:?}"
    );
}
