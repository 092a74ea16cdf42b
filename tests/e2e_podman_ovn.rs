//! The OVN mode end to end, with real podman (5.4, netavark 1.14) on simulated hosts whose
//! control plane is OVN 25.03 (`lab.sh up N --ovn`: NB and SB as 3-member Raft clusters and
//! ovn-northd on hosts 1-3, ovn-controller on every host; see `contrib/lab/ovn.sh`).
//!
//! The network is made with the user's command, `--opt ovn=<the NB remotes>` instead of `peers`:
//! `podman network create -d geneve-ovs --internal --opt ovn=tcp:10.99.0.1:6641,... net1`, the
//! same on every host, which lists no other host.
//! * three hosts, then a fourth that joins later (`lab.sh add-host`: only ovn-controller) and
//!   creates the network: its container reaches, is reached by and is resolved by name from the
//!   containers of hosts 1-3, with nothing done on those hosts; `podman run --name db` on host 1
//!   answers `ping db` and `ping db.net1` from host 3 (podman writes the network's gateway
//!   port, which `setup` returns, into `resolv.conf`); the join time is printed;
//! * a container that takes another's address and announces it (`arping -U`) moves nobody's
//!   neighbour entry: port security; the same with its port security cleared in NB does, so the
//!   check can fail;
//! * the host of the NB leader is killed: the others' containers keep talking, a new container
//!   starts on a surviving host once a new leader is elected (the gap is printed), and the
//!   killed host's container comes back after its boot;
//! * full-size frames and TCP cross between hosts (the MTU leaves room for OVN's GENEVE option);
//! * the network is not internal: outbound NAT (a server outside sees the host's underlay
//!   address) and `podman run -p` from outside, and from a container on another host; names
//!   OVN does not know go, through the gateway address podman wrote into the container's
//!   `resolv.conf`, to the name server of the host's `/etc/resolv.conf` (a test's DNS server
//!   outside the hosts): an outside name resolves to its answer, an unknown one gets its
//!   NXDOMAIN at once (the times are printed), and `db` and `db.net1` are still OVN's;
//! * a host rebooted (`lab.sh reboot`): `podman start` brings its container back;
//! * a static address (`--ip`) already in use on another host is refused at once, naming the
//!   container that has it and its chassis, and leaves nothing behind;
//! * SSL remotes (`lab.sh up N --ovn-ssl`, ovs-pki certificates in the hosts' SSL table).
//!
//!
//! Print the figures with `--nocapture`.

mod podman_lab;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{ensure, Context, Result};
use podman_lab::dns;
use podman_lab::ovn::OvnDb;
use podman_lab::resolv_conf::RESOLV_CONF;
use podman_lab::{ok, wait, Container, Host, PodmanLab};

const NET: &str = "net1";
/// A first packet may wait for ovn-controller to install the port's flows.
const SETTLE: Duration = Duration::from_secs(30);
/// A Raft election after a member is lost, with OVN's default 1 s election timer.
const ELECTION: Duration = Duration::from_secs(60);
/// Traffic of a container started right after its central host's boot. Its logical port,
/// made again with a new MAC, reaches the other chassis only through an active ovn-northd,
/// and the northds that were connected to the host that went reconnect with OVSDB's backoff
/// (up to 8 s a try; seen: NB lost at 39.2 s, back at 47.2 s), through the cluster's election
/// and the lock's move. In the lab the first ping came 1 to 10 s after `podman start` (25
/// reboots, idle machine), and not within 30 s once in CI with two suites running. The
/// wait's time is printed.
const REJOIN: Duration = Duration::from_secs(120);
/// A server outside the hosts (on the underlay switch).
const OUTSIDE: &str = "10.99.0.254";
/// A name only the name server outside knows, and its address there (never contacted).
const OUTSIDE_NAME: &str = "outside.example";
const OUTSIDE_NAME_ADDRESS: Ipv4Addr = Ipv4Addr::new(10, 99, 0, 77);
/// A name nobody knows.
const UNKNOWN_NAME: &str = "nowhere.example";

/// The user's command with `ovn` instead of `peers`, on host `h`, `--internal`.
fn ovn_network(lab: &PodmanLab, h: Host) -> Result<serde_json::Value> {
    let nb = lab.ovn_env()?.nb;
    h.create_network(NET, &["--internal", "--opt", &format!("ovn={nb}")])
}

/// `wait_ping` by the name (`NAME` or `NAME.NETWORK`) of a container on another host: a name
/// only OVN's DNS knows, through the resolver `setup` gave podman.
fn wait_ping_name(from: &Container, name: &str) -> Result<()> {
    from.wait_ping(name, SETTLE)
}

/// The address the container's resolver gives for `name` (busybox nslookup).
fn resolve(from: &Container, name: &str) -> Result<String> {
    let out = from.exec_ok(&["nslookup", "-type=a", name])?;
    // The answer follows the server's own lines: the last "Address" line is the name's.
    out.lines()
        .rfind(|l| l.trim_start().starts_with("Address"))
        .and_then(|l| l.split_whitespace().last())
        .map(str::to_string)
        .with_context(|| format!("no address for {name} in:\n{out}"))
}

/// The user's command with `ovn` instead of `peers` and without `--internal`, on host `h`.
fn open_ovn_network(lab: &PodmanLab, h: Host) -> Result<serde_json::Value> {
    let nb = lab.ovn_env()?.nb;
    h.create_network(NET, &["--opt", &format!("ovn={nb}")])
}

#[test]
fn three_hosts_then_a_joining_host_by_address_and_by_name() -> Result<()> {
    let lab = PodmanLab::up_ovn("ovn-join", 3)?;
    let mut containers = Vec::new();
    for h in lab.hosts() {
        let net = ovn_network(&lab, h)?;
        ensure!(
            net["options"]["ovn"].as_str().is_some(),
            "h{}: network without its ovn option: {net}",
            h.index()
        );
        let name = if h.index() == 1 {
            "db".to_string()
        } else {
            format!("c{}", h.index())
        };
        let c = h.run_sleeper(&name, NET)?;
        let ip = c.ip(NET)?;
        containers.push((c, ip));
    }
    for (a, _) in &containers {
        for (b, ip) in &containers {
            if a.name() != b.name() {
                a.wait_ping(ip, SETTLE)?;
            }
        }
    }
    // The example: the database on host 1, by name from host 3, through the name
    // server podman wrote into the container's resolv.conf.
    let (db, db_ip) = &containers[0];
    let (c3, _) = &containers[2];
    let resolv = c3.exec_ok(&["cat", "/etc/resolv.conf"])?;
    let gateway = lab.host(3).inspect_network(NET)?["subnets"][0]["gateway"]
        .as_str()
        .map(str::to_string)
        .context("the network's gateway")?;
    eprintln!("[ovn-join] host 3's container's resolv.conf:\n{resolv}");
    ensure!(
        resolv
            .lines()
            .find(|l| l.starts_with("nameserver"))
            .is_some_and(|l| l.split_whitespace().nth(1) == Some(gateway.as_str())),
        "the first name server is not the gateway port {gateway}:\n{resolv}"
    );
    wait_ping_name(c3, "db")?;
    wait_ping_name(c3, &format!("db.{NET}"))?;
    let started = Instant::now();
    let answer = resolve(c3, "db")?;
    eprintln!(
        "[ovn-join] name lookup from host 3: {:.1?}",
        started.elapsed()
    );
    ensure!(
        answer == *db_ip,
        "db resolves to {answer} on host 3, its address is {db_ip}"
    );
    ensure!(db.host().index() == 1, "db is on host 1");

    // Host 4 joins: only ovn-controller and the network; nothing is run on hosts 1-3.
    let four = lab.add_host()?;
    let h4 = lab.host(four);
    ovn_network(&lab, h4)?;
    let start = Instant::now();
    let c4 = h4.run_sleeper("c4", NET)?;
    let c4_ip = c4.ip(NET)?;
    for (c, ip) in &containers {
        c4.wait_ping(ip, SETTLE)?;
        c.wait_ping(&c4_ip, SETTLE)?;
    }
    let joined = start.elapsed();
    eprintln!(
        "[ovn-join] joining host: podman run to answering every other host's container {joined:.1?}"
    );
    for (c, _) in &containers {
        wait_ping_name(&c4, c.name())?;
        wait_ping_name(c, "c4")?;
        wait_ping_name(c, &format!("c4.{NET}"))?;
    }
    let answer = resolve(db, "c4")?;
    ensure!(
        answer == c4_ip,
        "c4 resolves on host 1 to {answer}, its address is {c4_ip}"
    );
    // Names go at teardown: host 3 no longer resolves a removed container.
    h4.podman_ok(&["rm", "-f", "-t", "0", "c4"])?;
    wait::until("c4's DNS record to go", SETTLE, || {
        Ok(!ok(&c3.exec(&["nslookup", "-type=a", "c4"])))
    })?;
    lab.down_and_check()
}

/// The victim's neighbour entry for `ip`, if any.
fn neighbour_mac(victim: &Container, ip: &str) -> Result<Option<String>> {
    victim.neighbour(ip)
}

/// The impostor takes `ip` and announces it three times; returns the MAC the victim then
/// resolves `ip` to.
fn announce_stolen_address(
    impostor: &Container,
    victim: &Container,
    ip: &str,
) -> Result<Option<String>> {
    impostor.exec_ok(&["ip", "addr", "replace", &format!("{ip}/32"), "dev", "eth0"])?;
    // Unsolicited ARP replies and requests for the stolen address (busybox arping).
    let _ = impostor.exec(&["arping", "-U", "-c", "3", "-I", "eth0", "-s", ip, ip]);
    let _ = impostor.exec(&["arping", "-A", "-c", "3", "-I", "eth0", "-s", ip, ip]);
    std::thread::sleep(Duration::from_secs(1));
    neighbour_mac(victim, ip)
}

/// The logical switch port whose `addresses` hold `mac`.
fn logical_port_of(h: Host, mac: &str) -> Result<String> {
    let text = h.nbctl(&[
        "--bare",
        "--columns=name,addresses",
        "list",
        "Logical_Switch_Port",
    ])?;
    // Records are separated by blank lines: name, then addresses.
    let mut fields = text.split("\n\n").map(|r| r.lines().collect::<Vec<_>>());
    fields
        .find(|r| r.len() >= 2 && r[1].to_ascii_lowercase().contains(mac))
        .map(|r| r[0].trim().to_string())
        .with_context(|| format!("no logical switch port with {mac}:\n{text}"))
}

#[test]
fn spoofing_is_blocked_by_port_security() -> Result<()> {
    let lab = PodmanLab::up_ovn("ovn-spoof", 2)?;
    let (h1, h2) = (lab.host(1), lab.host(2));
    for h in lab.hosts() {
        ovn_network(&lab, h)?;
    }
    let owner = h1.run_sleeper("owner", NET)?;
    let impostor = h1.run_detached(
        "impostor",
        &["--net", NET, "--cap-add", "NET_ADMIN,NET_RAW"],
        &["sleep", "3600"],
    )?;
    let victim = h2.run_sleeper("victim", NET)?;
    let owner_ip = owner.ip(NET)?;
    let owner_mac = owner.mac()?;
    let impostor_mac = impostor.mac()?;
    victim.wait_ping(&owner_ip, SETTLE)?;
    ensure!(neighbour_mac(&victim, &owner_ip)? == Some(owner_mac.clone()));

    let port = logical_port_of(h1, &impostor_mac)?;
    let security = h1.nbctl(&["lsp-get-port-security", &port])?;
    ensure!(
        security.contains(&impostor_mac),
        "the impostor's port {port} has no port security: {security:?}"
    );
    let after = announce_stolen_address(&impostor, &victim, &owner_ip)?;
    ensure!(
        after == Some(owner_mac.clone()),
        "with port security the victim resolves {owner_ip} to {after:?}, the owner is {owner_mac}"
    );
    // The impostor's own frames from the stolen address reach nobody: its ping from it fails.
    ensure!(
        !ok(&impostor.exec(&[
            "ping",
            "-c",
            "2",
            "-W",
            "1",
            "-I",
            &owner_ip,
            &victim.ip(NET)?
        ])),
        "a ping from the stolen address was answered"
    );

    // The control: the same with the impostor's port security cleared moves the victim.
    h1.nbctl(&["lsp-set-port-security", &port])?;
    wait::until("the stolen address to reach the victim", SETTLE, || {
        Ok(announce_stolen_address(&impostor, &victim, &owner_ip)? == Some(impostor_mac.clone()))
    })
    .context("without port security the spoof should have worked (the check could not fail)")?;
    lab.down_and_check()
}

/// Continuous pings of `to` from `from` over `secs` seconds: (sent, received).
fn ping_counts(from: &Container, to: &str, secs: u32) -> Result<(u32, u32)> {
    let out = from.exec(&["ping", "-q", "-i", "0.2", "-w", &secs.to_string(), to]);
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let line = text
        .lines()
        .find(|l| l.contains("packets transmitted"))
        .with_context(|| format!("no ping summary:\n{text}"))?;
    let mut nums = line
        .split(|c: char| !c.is_ascii_digit())
        .filter(|s| !s.is_empty());
    let sent = nums.next().context("sent")?.parse()?;
    let received = nums.next().context("received")?.parse()?;
    Ok((sent, received))
}

#[test]
fn leader_host_killed_containers_keep_talking_and_new_ones_start() -> Result<()> {
    let lab = PodmanLab::up_ovn("ovn-leader", 3)?;
    let mut containers = Vec::new();
    for h in lab.hosts() {
        ovn_network(&lab, h)?;
        let c = h.run_sleeper(&format!("c{}", h.index()), NET)?;
        let ip = c.ip(NET)?;
        containers.push((c, ip));
    }
    for (a, _) in &containers {
        for (b, ip) in &containers {
            if a.name() != b.name() {
                a.wait_ping(ip, SETTLE)?;
            }
        }
    }
    let leader = lab.ovn_leader(OvnDb::Northbound, ELECTION)?;
    let survivors: Vec<usize> = (1..=3).filter(|i| *i != leader).collect();
    let (a, _) = &containers[survivors[0] - 1];
    let (_, b_ip) = &containers[survivors[1] - 1];

    let crashed = Instant::now();
    lab.host(leader).crash()?;
    // The survivors' containers keep talking while the cluster elects a new leader.
    let (sent, received) = ping_counts(a, b_ip, 5)?;
    eprintln!(
        "[ovn-leader] host {leader} (NB leader) killed: {} to {b_ip}: {received}/{sent} answered",
        a.name()
    );
    ensure!(
        sent > 0 && received * 10 >= sent * 9,
        "{} lost {} of {sent} pings to {b_ip} after the leader's host died",
        a.name(),
        sent - received
    );
    // A new container on a surviving host, retried until the control plane takes it.
    let host = lab.host(survivors[1]);
    let late = wait::until_some("a new container on a surviving host", ELECTION, || {
        let out = host.podman(&[
            "run",
            "-d",
            "--name",
            "late",
            "--net",
            NET,
            "--cap-add",
            "NET_RAW",
            podman_lab::IMAGE,
            "sleep",
            "3600",
        ]);
        if ok(&out) {
            return Ok(Some(()));
        }
        let _ = host.podman(&["rm", "-f", "-t", "0", "late"]);
        Ok(None)
    });
    late?;
    let gap = crashed.elapsed();
    let new_leader = lab.ovn_leader(OvnDb::Northbound, ELECTION)?;
    eprintln!(
        "[ovn-leader] new NB leader host {new_leader}; a new container started {gap:.1?} after host {leader} was killed"
    );
    ensure!(new_leader != leader, "host {leader} still leads");
    let late = Container::on(host, "late");
    late.wait_ping(&containers[survivors[0] - 1].1, SETTLE)?;

    // The killed host boots; its container comes back with `podman start`.
    let dead = lab.host(leader);
    dead.boot()?;
    dead.podman_ok(&["start", &format!("c{leader}")])?;
    let (back, _) = &containers[leader - 1];
    let back_ip = back.ip(NET)?;
    let started = Instant::now();
    back.wait_ping(b_ip, REJOIN)?;
    late.wait_ping(&back_ip, REJOIN)?;
    eprintln!(
        "[ovn-leader] host {leader}'s container answered {:.1?} after its podman start",
        started.elapsed()
    );
    lab.down_and_check()
}

#[test]
fn full_size_frames_and_tcp_cross_between_hosts() -> Result<()> {
    let lab = PodmanLab::up_ovn("ovn-mtu", 2)?;
    let (h1, h2) = (lab.host(1), lab.host(2));
    for h in lab.hosts() {
        ovn_network(&lab, h)?;
    }
    let server = h1.run_detached(
        "server",
        &["--net", NET, "--cap-add", "NET_RAW"],
        &[
            "sh",
            "-c",
            "dd if=/dev/zero of=/var/www/big bs=1024 count=512 2>/dev/null && httpd -f -p 80 -h /var/www",
        ],
    )?;
    let client = h2.run_sleeper("client", NET)?;
    let server_ip = server.ip(NET)?;
    client.wait_ping(&server_ip, SETTLE)?;
    // The container MTU leaves room for OVN's encapsulation: a don't-fragment ping of exactly
    // the MTU crosses.
    let mtu = client.mtu("eth0")?;
    let out = client.ping_df(&server_ip, mtu - 28)?;
    ensure!(
        ok(&out),
        "a {mtu}-byte don't-fragment ping did not cross:\n{}",
        String::from_utf8_lossy(&out.stdout)
    );
    // TCP with full-size segments: half a megabyte over HTTP.
    let size = client.exec_ok(&[
        "sh",
        "-c",
        &format!("wget -q -T 10 -O - http://{server_ip}/big | wc -c"),
    ])?;
    ensure!(size.trim() == "524288", "fetched {size} bytes of 524288");
    lab.down_and_check()
}

/// The path of the network namespace of `c`, for the test's own DNS client.
fn netns_of(c: &Container) -> Result<PathBuf> {
    Ok(PathBuf::from(format!("/proc/{}/ns/net", c.pid()?)))
}

#[test]
fn open_network_outbound_nat_published_port_and_outside_names() -> Result<()> {
    let lab = PodmanLab::up_ovn("ovn-open", 2)?;
    lab.add_switch_address(&format!("{OUTSIDE}/24"))?;
    // The hosts' name server, outside: one name, NXDOMAIN for every other.
    let name_server = dns::Server::start(
        lab.switch_netns(),
        OUTSIDE.parse()?,
        53,
        &[(OUTSIDE_NAME, OUTSIDE_NAME_ADDRESS)],
    )?;
    let originals = lab
        .hosts()
        .iter()
        .map(|h| h.exec_ok(&["cat", RESOLV_CONF]))
        .collect::<Result<Vec<_>>>()?;
    let mut resolv_confs = Vec::new();
    for h in lab.hosts() {
        // Read by `setup`: it must name the server before the first container starts.
        resolv_confs.push(h.replace_resolv_conf(&format!(
            "# the test's name server outside the hosts\nnameserver {OUTSIDE}\n"
        ))?);
    }
    let (h1, h2) = (lab.host(1), lab.host(2));
    for h in lab.hosts() {
        let net = open_ovn_network(&lab, h)?;
        ensure!(
            net["internal"] == false,
            "the user's network is not internal"
        );
    }
    let c1 = h1.run_sleeper("c1", NET)?;
    let db = h2.run_sleeper("db", NET)?;
    let db_ip = db.ip(NET)?;
    c1.wait_ping(&db_ip, SETTLE)?;

    lab.start_outside_server(OUTSIDE, 9000)?;
    for c in [&c1, &db] {
        let seen = c.fetch(&format!("http://{OUTSIDE}:9000/cgi-bin/who"), SETTLE)?;
        ensure!(
            seen.trim().parse::<IpAddr>()? == c.host().ip().parse::<IpAddr>()?,
            "{} seen outside as {seen}, not as its host",
            c.name()
        );
    }

    // Names, through the one name server podman wrote into the containers' resolv.conf.
    let gateway = h1.inspect_network(NET)?["subnets"][0]["gateway"]
        .as_str()
        .map(str::to_string)
        .context("the network's gateway")?;
    let resolv = c1.exec_ok(&["cat", "/etc/resolv.conf"])?;
    eprintln!("[ovn-open] c1's resolv.conf:\n{resolv}");
    let servers: Vec<&str> = resolv
        .lines()
        .filter_map(|l| l.strip_prefix("nameserver "))
        .map(str::trim)
        .collect();
    ensure!(
        servers == [gateway.as_str()],
        "the container's only name server should be the gateway {gateway}:\n{resolv}"
    );
    // An outside name: the host's name server answers, from either host, and sees the query
    // come from the host's own address (the outbound NAT).
    for c in [&c1, &db] {
        let before = name_server.seen().len();
        let started = Instant::now();
        let answer = resolve(c, OUTSIDE_NAME)?;
        eprintln!(
            "[ovn-open] {OUTSIDE_NAME} from host {}: {answer} in {:.1?} (podman exec included)",
            c.host().index(),
            started.elapsed()
        );
        ensure!(
            answer == OUTSIDE_NAME_ADDRESS.to_string(),
            "{OUTSIDE_NAME} resolves in {} to {answer}, the name server says {OUTSIDE_NAME_ADDRESS}",
            c.name()
        );
        let asked = name_server.seen()[before..].to_vec();
        ensure!(
            !asked.is_empty()
                && asked
                    .iter()
                    .all(|q| q.from.ip().to_string() == c.host().ip()),
            "the name server should have been asked by host {} ({}) only: {asked:?}",
            c.host().index(),
            c.host().ip()
        );
    }
    // An unknown name: the name server's NXDOMAIN, at once rather than after a timeout.
    let started = Instant::now();
    let out = c1.exec(&["nslookup", "-type=a", UNKNOWN_NAME]);
    let took = started.elapsed();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    eprintln!("[ovn-open] nslookup {UNKNOWN_NAME}: {took:.1?} (podman exec included):\n{text}");
    ensure!(
        !ok(&out) && text.contains("NXDOMAIN"),
        "nslookup {UNKNOWN_NAME} should fail with the name server's NXDOMAIN:\n{text}"
    );
    // The same query alone, from the container's namespace (no `podman exec` in the time);
    // an unanswered one would fail after the client's 3 s.
    let (c1_netns, at_gateway) = (netns_of(&c1)?, SocketAddr::new(gateway.parse()?, 53));
    let started = Instant::now();
    let answer = dns::lookup_udp(&c1_netns, at_gateway, UNKNOWN_NAME)?;
    let took = started.elapsed();
    eprintln!("[ovn-open] one query for {UNKNOWN_NAME} from c1's namespace: {took:.1?}");
    ensure!(
        answer == dns::Answer::Nothing(3),
        "{UNKNOWN_NAME}: {answer:?}, not NXDOMAIN"
    );
    ensure!(
        took < Duration::from_secs(2),
        "NXDOMAIN for {UNKNOWN_NAME} took {took:?}"
    );
    // The network's own names are still OVN's: answered without asking the name server.
    for name in ["db".to_string(), format!("db.{NET}")] {
        let answer = resolve(&c1, &name)?;
        ensure!(
            answer == db_ip,
            "{name} resolves on host 1 to {answer}, its address is {db_ip}"
        );
    }
    let seen = name_server.seen();
    ensure!(
        seen.iter()
            .all(|q| q.name != "db" && q.name != format!("db.{NET}")),
        "OVN's names reached the host's name server: {seen:?}"
    );

    h1.run_detached(
        "web",
        &["--net", NET, "-p", "8080:80"],
        &["httpd", "-f", "-p", "80", "-h", "/var/www"],
    )?;
    let page = wait::until_some("host 1's published port from outside", SETTLE, || {
        Ok(lab.outside_get(&h1.ip(), 8080, "/index.html"))
    })?;
    let inside = Container::on(h1, "web").exec_ok(&["cat", "/var/www/index.html"])?;
    ensure!(page == inside, "published port answered {page:?}");
    // And from a container on the other host, across the overlay.
    let web_ip = Container::on(h1, "web").ip(NET)?;
    let body = db.fetch(&format!("http://{web_ip}/index.html"), SETTLE)?;
    ensure!(body == inside, "db got {body:?}");
    drop(resolv_confs);
    for (h, original) in lab.hosts().iter().zip(&originals) {
        let now = h.exec_ok(&["cat", RESOLV_CONF])?;
        ensure!(
            now == *original,
            "h{}: {RESOLV_CONF} not restored: {now:?}, was {original:?}",
            h.index()
        );
    }
    drop(name_server);
    lab.down_and_check()
}

#[test]
fn rebooted_host_containers_come_back() -> Result<()> {
    let lab = PodmanLab::up_ovn("ovn-reboot", 3)?;
    let mut containers = Vec::new();
    for h in lab.hosts() {
        ovn_network(&lab, h)?;
        containers.push(h.run_sleeper(&format!("c{}", h.index()), NET)?);
    }
    let (c1, c3) = (&containers[0], &containers[2]);
    let ip1 = c1.ip(NET)?;
    c3.wait_ping(&ip1, SETTLE)?;
    let h3 = lab.host(3);
    h3.reboot()?;
    let start = Instant::now();
    h3.podman_ok(&["start", "c3"])?;
    let started = start.elapsed();
    let ip3 = c3.ip(NET)?;
    c3.wait_ping(&ip1, REJOIN)?;
    c1.wait_ping(&ip3, REJOIN)?;
    eprintln!(
        "[ovn-reboot] podman start took {started:.1?}; host 3's container answers host 1's \
         {:.1?} after it",
        start.elapsed()
    );
    lab.down_and_check()
}

/// The ports of `br-int` but ovn-controller's tunnels, which it adds whenever it learns of
/// another chassis (on a loaded machine, after the lab is up and while a test runs).
fn non_tunnel_ports(h: Host) -> Result<Vec<String>> {
    let tunnels: Vec<String> = h
        .tunnels()?
        .iter()
        .filter_map(|t| t["name"].as_str().map(str::to_string))
        .collect();
    Ok(h.ports("br-int")?
        .into_iter()
        .filter(|p| !tunnels.contains(p))
        .collect())
}

#[test]
fn static_address_in_use_on_another_host_is_refused_at_once() -> Result<()> {
    let lab = PodmanLab::up_ovn("ovn-inuse", 2)?;
    let (h1, h2) = (lab.host(1), lab.host(2));
    for h in lab.hosts() {
        ovn_network(&lab, h)?;
    }
    let owner = h1.run_sleeper("owner", NET)?;
    let ip = owner.ip(NET)?;
    let ports_before = non_tunnel_ports(h2)?;

    let start = Instant::now();
    let out = h2.podman(&[
        "run",
        "-d",
        "--name",
        "thief",
        "--net",
        NET,
        "--ip",
        &ip,
        podman_lab::IMAGE,
        "sleep",
        "3600",
    ]);
    let took = start.elapsed();
    eprintln!("[ovn-inuse] refusal of {ip} on host 2 took {took:.1?}");
    ensure!(
        !ok(&out),
        "host 2 started a container with {ip}, owner's address"
    );
    let err = podman_lab::stderr(&out);
    ensure!(
        err.contains(&ip) && err.contains("owner") && err.contains("lab-h1"),
        "the refusal should name the address, the container that has it and its chassis:\n{err}"
    );
    // No listening window: well under the mesh mode's duplicate-address detection.
    ensure!(took < Duration::from_secs(5), "refusal took {took:?}");
    // Nothing left: no port on br-int, no logical port with the address but the owner's.
    let ports_after = non_tunnel_ports(h2)?;
    ensure!(
        ports_after == ports_before,
        "br-int of host 2 changed: {ports_before:?} -> {ports_after:?}"
    );
    let with_ip: Vec<String> = h2
        .nbctl(&[
            "--bare",
            "--columns=addresses",
            "list",
            "Logical_Switch_Port",
        ])?
        .lines()
        .filter(|l| l.split_whitespace().any(|w| w == ip))
        .map(str::to_string)
        .collect();
    ensure!(
        with_ip.len() == 1,
        "logical ports with {ip}: {with_ip:?} (expected only the owner's)"
    );
    // The owner is untouched and reachable from host 2.
    let other = h2.run_sleeper("other", NET)?;
    other.wait_ping(&ip, SETTLE)?;
    lab.down_and_check()
}

#[test]
fn ssl_remotes() -> Result<()> {
    let lab = PodmanLab::up_ovn_ssl("ovn-ssl", 2)?;
    let env = lab.ovn_env()?;
    ensure!(
        env.ssl && env.nb.starts_with("ssl:"),
        "not an SSL lab: {env:?}"
    );
    let mut containers = Vec::new();
    for h in lab.hosts() {
        let net = ovn_network(&lab, h)?;
        ensure!(
            net["options"]["ovn"]
                .as_str()
                .is_some_and(|o| o.contains("ssl:")),
            "network without its ssl remotes: {net}"
        );
        containers.push(h.run_sleeper(&format!("s{}", h.index()), NET)?);
    }
    containers[0].wait_ping(&containers[1].ip(NET)?, SETTLE)?;
    containers[1].wait_ping(&containers[0].ip(NET)?, SETTLE)?;
    // The database really is SSL only: the same remotes refuse a client without a certificate.
    let plain = lab.host(1).exec(&[
        "ovn-nbctl",
        "--timeout=5",
        &format!("--db={}", env.nb),
        "ls-list",
    ]);
    ensure!(!ok(&plain), "NB answered without a certificate");
    // Teardown over SSL: removing a container removes its logical port.
    lab.host(2).podman_ok(&["rm", "-f", "-t", "0", "s2"])?;
    let ports = lab
        .host(1)
        .nbctl(&["lsp-list", &format!("geneve-ovs.{NET}")])?;
    let containers_left = ports.lines().filter(|l| !l.ends_with(".gateway)")).count();
    ensure!(containers_left == 1, "logical ports left: {ports}");
    lab.down_and_check()
}
