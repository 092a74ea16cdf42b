//! Encryption between hosts (`--opt encrypt=ipsec`): OVS IPsec (ovs-monitor-ipsec driving
//! strongSwan) on the kernel datapath, run by `e2e_kernel.rs` (the guest's kernel has xfrm and
//! ESP; this machine's has not, and the userspace datapath refuses encryption).
//!
//! Every claim is checked on the wire: a capture on a host's underlay port (`eth0`, the port of
//! its `br-phy` towards the lab's switch) while containers talk.

use std::time::Duration;

use anyhow::{ensure, Context, Result};
use serde_json::Value;

use super::overlay::{internal_network, opt, MESH_RANGES, NET, SEED_RANGES, SUBNET};
use crate::podman_lab::{ok, stdout, wait, Container, Host, PodmanLab, IMAGE};

/// Where the lab installs the plugin in each host.
const PLUGIN_IN_HOST: &str = "/usr/libexec/netavark/geneve-ovs";
/// The key file every host gets.
pub const PSK_FILE: &str = "/etc/geneve-ovs/overlay.psk";
const KEY: &str = "lab-key-0123456789-abcdefghijklmnop";
const WRONG_KEY: &str = "another-key-9876543210-zyxwvutsrq";
/// IKE under software emulation: the first exchange plus a retransmission can take a while,
/// longer on a loaded machine (each `podman exec` of the wait then takes seconds itself). One
/// run took 150 s before the first answer, so the bound leaves room past that.
pub const IKE_SETTLE: Duration = Duration::from_secs(300);

/// The charon setting the README recommends (ovs-monitor-ipsec's own strongswan.d file
/// misspells it): how long the kernel holds back packets of a trap policy whose key exchange
/// did not start, before it asks the IKE daemon again (default 165 s).
pub const CHARON_ACQUIRE: &str =
    "charon {\n  plugins {\n    kernel-netlink {\n      xfrm_acq_expires = 10\n    }\n  }\n}\n";

/// Starts ovs-monitor-ipsec (which restarts strongSwan) on `h`, as the openvswitch-ipsec
/// service does, and writes the key file (root, 0600).
pub fn start_ipsec(h: Host, key: &str) -> Result<()> {
    h.write_file(
        "/etc/strongswan.d/geneve-ovs.conf",
        CHARON_ACQUIRE.as_bytes().to_vec(),
    )?;
    // charon's log, for [`ike_diagnostics`].
    h.write_file(
        "/etc/strongswan.d/geneve-ovs-log.conf",
        b"charon {\n  filelog {\n    lab {\n      path = /var/log/charon.log\n      default = 1\n    }\n  }\n}\n"
            .to_vec(),
    )?;
    h.exec_ok(&["mkdir", "-p", "/etc/geneve-ovs"])?;
    h.write_file(PSK_FILE, format!("{key}\n").into_bytes())?;
    h.exec_ok(&["chmod", "600", PSK_FILE])?;
    // Left by a certificates scenario (the lab's reset keeps the Open_vSwitch row): with them
    // OVS IPsec refuses keyed tunnels, and so does create.
    h.vsctl(&[
        "remove",
        "Open_vSwitch",
        ".",
        "other_config",
        "certificate",
        "private_key",
        "ca_cert",
    ])?;
    // Run before by an earlier scenario: start the IKE daemon afresh, without the security
    // associations (and the kernel's pending requests) of that scenario's keys.
    h.exec_ok(&[
        "sh",
        "-c",
        "pidfile=/run/openvswitch/ovs-monitor-ipsec.pid; \
         if [ -f $pidfile ] && kill -0 $(cat $pidfile) 2>/dev/null; then \
         ipsec stop >/dev/null 2>&1; ip xfrm state flush; ip xfrm policy flush; \
         ipsec start >/dev/null 2>&1; exit 0; fi; \
         python3 /usr/share/openvswitch/scripts/ovs-monitor-ipsec --ike-daemon=strongswan \
         --pidfile=$pidfile --log-file=/var/log/openvswitch/ovs-monitor-ipsec.log --detach \
         unix:/run/openvswitch/db.sock",
    ])?;
    wait_for_charon(h)
}

/// Waits until the IKE daemon runs on `h` (ovs-monitor-ipsec and the starter start it in the
/// background), as `create` requires.
fn wait_for_charon(h: Host) -> Result<()> {
    wait::until(
        &format!("charon running on host {}", h.index()),
        Duration::from_secs(60),
        || Ok(charon_running(h)),
    )
}

fn charon_running(h: Host) -> bool {
    ok(&h.exec(&[
        "sh",
        "-c",
        "kill -0 \"$(cat /var/run/charon.pid)\" 2>/dev/null",
    ]))
}

fn encrypted_flags() -> Vec<String> {
    vec![
        "--opt".into(),
        "encrypt=ipsec".into(),
        "--opt".into(),
        format!("psk_file={PSK_FILE}"),
    ]
}

/// `geneve-ovs status --json` on `h`: exit code and report.
pub fn status(h: Host) -> Result<(i32, Value)> {
    let out = h.exec(&[PLUGIN_IN_HOST, "status", "--json"]);
    let report: Value = serde_json::from_slice(&out.stdout)
        .with_context(|| format!("status printed {:?}", String::from_utf8_lossy(&out.stdout)))?;
    Ok((out.status.code().unwrap_or(-1), report))
}

/// The tunnels of network `name` in a status report.
fn tunnels_of<'a>(report: &'a Value, name: &str) -> Vec<&'a Value> {
    report["networks"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|n| n["name"] == name)
        .flat_map(|n| n["tunnels"].as_array().into_iter().flatten())
        .collect()
}

/// What host `h`'s underlay port sees while `traffic` runs in `h`: one line per packet of
/// GENEVE (`udp port PORT` for each port given) or ESP, as `tcpdump -n` prints them.
fn capture(h: Host, ports: &[u16], traffic: &str) -> Result<Vec<String>> {
    let filter = ports
        .iter()
        .map(|p| format!("udp port {p}"))
        .chain(["esp".to_string()])
        .collect::<Vec<_>>()
        .join(" or ");
    let script = format!(
        "tcpdump -lnni eth0 -c 400 '{filter}' >/tmp/capture 2>/dev/null & pid=$!; sleep 2; \
         {traffic}; sleep 1; kill $pid; wait $pid 2>/dev/null; cat /tmp/capture"
    );
    let text = h.exec_ok(&["sh", "-c", &script])?;
    Ok(text.lines().map(str::to_string).collect())
}

fn esp_lines(lines: &[String]) -> usize {
    lines.iter().filter(|l| l.contains(": ESP(")).count()
}

fn udp_lines(lines: &[String], port: u16) -> Vec<&String> {
    let dot = format!(".{port}:");
    let dot_src = format!(".{port} >");
    lines
        .iter()
        .filter(|l| l.contains("UDP") && (l.contains(&dot) || l.contains(&dot_src)))
        .collect()
}

/// A busybox web server in `c`'s network serving /etc on 8080, fetched from `from` (TCP).
fn tcp_across(web_host: Host, from: &Container, name: &str) -> Result<()> {
    let web = web_host.run_detached(
        &format!("web-{name}"),
        &["--net", name],
        &["httpd", "-f", "-p", "8080", "-h", "/etc"],
    )?;
    let url = format!("http://{}:8080/motd", web.ip(name)?);
    let motd = web_host.podman_ok(&["run", "--rm", IMAGE, "cat", "/etc/motd"])?;
    let fetched = from.fetch(&url, IKE_SETTLE)?;
    ensure!(
        fetched.trim() == motd.trim(),
        "TCP across {name}: fetched {fetched:?}"
    );
    Ok(())
}

/// Two hosts with encrypt=ipsec and a pre-shared key: ping and TCP cross, the underlay carries
/// only ESP between the hosts (no GENEVE on UDP 6081), `status` says each tunnel is encrypted
/// and established, and `podman network inspect` holds the key's path, never the key.
pub fn two_hosts_psk_only_esp_on_the_wire(lab: &PodmanLab) -> Result<()> {
    let (h1, h2) = (lab.host(1), lab.host(2));
    let peers = lab.all_peers();
    let flags = encrypted_flags();
    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    for (h, range) in lab.hosts().into_iter().zip(SEED_RANGES) {
        start_ipsec(h, KEY)?;
        let net = internal_network(h, NET, SUBNET, range, &peers, &flags)?;
        assert_eq!(opt(&net, "encrypt"), "ipsec");
        assert_eq!(opt(&net, "psk_file"), PSK_FILE);
        // ESP's overhead comes off the MTU.
        assert_eq!(opt(&net, "mtu"), "1410");
        let inspect = h.podman_ok(&["network", "inspect", NET])?;
        ensure!(
            !inspect.contains(KEY),
            "the key in network inspect: {inspect}"
        );
    }
    let c1 = h1.run_sleeper("c1", NET)?;
    let c2 = h2.run_sleeper("c2", NET)?;
    let (ip1, ip2) = (c1.ip(NET)?, c2.ip(NET)?);
    wait_ping_ike(&c1, &ip2, &[h1, h2])?;
    // Both ends' trap policies may start a key exchange; the pair the first ping rode on can
    // be replaced once by the other end's, and a packet sent meanwhile is lost: wait again.
    wait_ping_ike(&c2, &ip1, &[h1, h2])?;
    tcp_across(h1, &c2, NET)?;

    let lines = capture(
        h1,
        &[6081],
        &format!("podman exec c1 ping -c 10 -i 0.2 {ip2} >/dev/null"),
    )?;
    eprintln!("[ipsec] capture on host 1: {} lines", lines.len());
    let clear = udp_lines(&lines, 6081);
    ensure!(clear.is_empty(), "clear GENEVE on the underlay: {clear:#?}");
    ensure!(esp_lines(&lines) >= 20, "too little ESP: {lines:#?}");

    for h in [h1, h2] {
        let (code, report) = status(h)?;
        let tunnels = tunnels_of(&report, NET);
        ensure!(tunnels.len() == 1, "{report:#}");
        ensure!(
            tunnels[0]["encrypted"] == true && tunnels[0]["ipsec"] == "established",
            "h{}: {report:#}",
            h.index()
        );
        ensure!(code == 0, "h{}: status exit {code}: {report:#}", h.index());
    }
    Ok(())
}

/// One host with a wrong key: nothing crosses (no clear GENEVE either), and `status` on the
/// other host names the tunnel that is not encrypted and exits 2.
pub fn wrong_key_nothing_crosses_and_status_says_which_tunnel(lab: &PodmanLab) -> Result<()> {
    let (h1, h2) = (lab.host(1), lab.host(2));
    let peers = lab.all_peers();
    let flags = encrypted_flags();
    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    for ((h, range), key) in lab
        .hosts()
        .into_iter()
        .zip(SEED_RANGES)
        .zip([KEY, WRONG_KEY])
    {
        start_ipsec(h, key)?;
        internal_network(h, NET, SUBNET, range, &peers, &flags)?;
    }
    let c1 = h1.run_sleeper("c1", NET)?;
    let c2 = h2.run_sleeper("c2", NET)?;
    let ip2 = c2.ip(NET)?;
    let lines = capture(
        h1,
        &[6081],
        &format!("podman exec c1 ping -c 15 -W 1 {ip2} >/dev/null || true"),
    )?;
    ensure!(!c1.ping(&ip2), "a ping crossed with two different keys");
    let clear = udp_lines(&lines, 6081);
    ensure!(
        clear.is_empty(),
        "clear GENEVE with a wrong key: {clear:#?}"
    );
    ensure!(
        esp_lines(&lines) == 0,
        "ESP with a wrong key (an SA was made?): {lines:#?}"
    );
    let (code, report) = status(h1)?;
    let tunnels = tunnels_of(&report, NET);
    ensure!(tunnels.len() == 1, "{report:#}");
    let t = tunnels[0];
    ensure!(
        t["peer"] == h2.ip() && t["state"] == "down" && t["ipsec"] != "established",
        "{report:#}"
    );
    let error = t["error"].as_str().unwrap_or_default();
    ensure!(
        error.contains("IPsec") && error.contains(&h2.ip()),
        "{report:#}"
    );
    ensure!(code == 2, "status exit {code}: {report:#}");
    let text = h1.exec(&[PLUGIN_IN_HOST, "status"]);
    ensure!(
        stdout(&text).contains("ipsec no-sa") || stdout(&text).contains("ipsec one-way"),
        "{}",
        stdout(&text)
    );
    Ok(())
}

/// Three hosts: an encrypted network (every pair pings) and a clear one beside it on UDP 6082,
/// on the same hosts. On the wire the clear network's GENEVE shows (UDP 6082) and the
/// encrypted one's does not (only ESP); then host 3 leaves the encrypted network's peers (create
/// again on host 1): its tunnel and its IPsec configuration go with it.
pub fn three_hosts_encrypted_and_clear_side_by_side(lab: &PodmanLab) -> Result<()> {
    let peers = lab.all_peers();
    let flags = encrypted_flags();
    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    let clear_flags = ["--opt", "dst_port=6082"];
    let mut encrypted = Vec::new();
    let mut clear = Vec::new();
    for (h, range) in lab.hosts().into_iter().zip(MESH_RANGES) {
        start_ipsec(h, KEY)?;
        internal_network(h, NET, SUBNET, range, &peers, &flags)?;
        let range2 = range.replace("192.168.120.", "192.168.121.");
        internal_network(
            h,
            "clear",
            "192.168.121.0/24",
            &range2,
            &peers,
            &clear_flags,
        )?;
        let c = h.run_sleeper(&format!("e{}", h.index()), NET)?;
        let ip = c.ip(NET)?;
        encrypted.push((c, ip));
        let c = h.run_sleeper(&format!("p{}", h.index()), "clear")?;
        let ip = c.ip("clear")?;
        clear.push((c, ip));
    }
    for pairs in [&encrypted, &clear] {
        for (a, _) in pairs.iter() {
            for (b, ip) in pairs.iter() {
                if a.name() != b.name() {
                    wait_ping_ike(a, ip, &lab.hosts())
                        .with_context(|| format!("{} -> {}", a.name(), b.name()))?;
                }
            }
        }
    }
    let h1 = lab.host(1);
    let traffic = format!(
        "podman exec e1 ping -c 8 -i 0.2 {} >/dev/null; podman exec p1 ping -c 8 -i 0.2 {} >/dev/null",
        encrypted[1].1, clear[1].1
    );
    let lines = capture(h1, &[6081, 6082], &traffic)?;
    let leaked = udp_lines(&lines, 6081);
    ensure!(
        leaked.is_empty(),
        "clear GENEVE of the encrypted network: {leaked:#?}"
    );
    ensure!(
        udp_lines(&lines, 6082).len() >= 16,
        "the clear network's GENEVE is not on the wire: {lines:#?}"
    );
    ensure!(esp_lines(&lines) >= 16, "too little ESP: {lines:#?}");

    // Host 3 leaves the encrypted network (create again with the two others).
    let two = format!("{},{}", lab.host(1).ip(), lab.host(2).ip());
    h1.podman_ok(&["network", "rm", "-f", NET])?;
    internal_network(h1, NET, SUBNET, MESH_RANGES[0], &two, &flags)?;
    let h3 = lab.host(3).ip();
    wait::until(
        "host 3's IPsec configuration gone from host 1",
        Duration::from_secs(30),
        || {
            let conf = h1.exec_ok(&["cat", "/etc/ipsec.conf"])?;
            Ok(!conf.contains(&format!("right={h3}")))
        },
    )?;
    let sets = h1.exec_ok(&[
        "nft",
        "list",
        "set",
        "inet",
        "geneve_ovs",
        "underlay_ipsec4",
    ])?;
    ensure!(
        !sets.contains(&h3) && sets.contains(&lab.host(2).ip()),
        "{sets}"
    );
    let out = h1.exec(&["ip", "xfrm", "policy"]);
    ensure!(ok(&out), "ip xfrm policy failed");
    Ok(())
}

/// Where each host keeps its certificate, its key and the CA's certificate.
pub const CERT_FILE: &str = "/etc/geneve-ovs/host-cert.pem";
pub const KEY_FILE: &str = "/etc/geneve-ovs/host-privkey.pem";
pub const CA_FILE: &str = "/etc/geneve-ovs/cacert.pem";

/// Makes CA `ca` in /root/pki/`ca` on `on` (an RSA key and a self-signed certificate).
fn make_ca(on: Host, ca: &str) -> Result<()> {
    on.exec_ok(&[
        "sh",
        "-c",
        &format!(
            "set -e; mkdir -p /root/pki/{ca}; cd /root/pki/{ca}; \
             openssl req -x509 -newkey rsa:2048 -nodes -keyout cakey.pem -out cacert.pem \
             -days 30 -subj '/O=geneve-ovs lab/CN={ca}' 2>/dev/null"
        ),
    ])?;
    Ok(())
}

/// A host certificate for underlay address `ip` from CA `ca` (made on `on`), as the README
/// says: CN and IP subjectAltName the address. Returns the certificate and the key (PEM).
fn issue(on: Host, ca: &str, ip: &str) -> Result<(String, String)> {
    on.exec_ok(&[
        "sh",
        "-c",
        &format!(
            "set -e; cd /root/pki/{ca}; \
             openssl genrsa -traditional -out {ip}-privkey.pem 2048 2>/dev/null; \
             openssl req -new -key {ip}-privkey.pem -subj '/O=geneve-ovs/CN={ip}' \
             -out {ip}-req.pem; \
             printf 'subjectAltName=IP:{ip}\\n' >{ip}.ext; \
             openssl x509 -req -in {ip}-req.pem -CA cacert.pem -CAkey cakey.pem \
             -CAcreateserial -days 30 -extfile {ip}.ext -out {ip}-cert.pem 2>/dev/null"
        ),
    ])?;
    let dir = format!("/root/pki/{ca}");
    let cert = on.exec_ok(&["cat", &format!("{dir}/{ip}-cert.pem")])?;
    let key = on.exec_ok(&["cat", &format!("{dir}/{ip}-privkey.pem")])?;
    Ok((cert, key))
}

/// Installs a certificate, its key (root, 0600) and the CA's certificate on `h`, on a host
/// whose OVS has no certificate settings yet, and starts OVS IPsec there.
fn install_certificates(h: Host, cert: &str, key: &str, ca_cert: &str) -> Result<()> {
    // strongSwan trusts the CA ovs-monitor-ipsec names in its `ca` section only once it is in
    // its own CA directory too (README: the setup step); start_ipsec's restart loads it.
    h.write_file(
        "/etc/ipsec.d/cacerts/geneve-ovs-ca.pem",
        format!("{}\n", ca_cert.trim()).into_bytes(),
    )?;
    // Also clears the certificate settings an earlier scenario left.
    start_ipsec(h, KEY)?;
    for (path, text, mode) in [
        (CERT_FILE, cert, "644"),
        (KEY_FILE, key, "600"),
        (CA_FILE, ca_cert, "644"),
    ] {
        h.write_file(path, format!("{}\n", text.trim()).into_bytes())?;
        h.exec_ok(&["chmod", mode, path])?;
    }
    Ok(())
}

fn certificate_flags() -> Vec<String> {
    [
        "encrypt=ipsec".to_string(),
        format!("cert={CERT_FILE}"),
        format!("key={KEY_FILE}"),
        format!("ca={CA_FILE}"),
    ]
    .into_iter()
    .flat_map(|o| ["--opt".to_string(), o])
    .collect()
}

/// What a failed key exchange leaves to read on `h`: strongSwan's view, its log and
/// ovs-monitor-ipsec's (no key material: `statusall` prints none).
fn ike_diagnostics(h: Host) -> String {
    let out = h.exec(&[
        "sh",
        "-c",
        "ipsec statusall 2>&1 | head -40; tail -40 /var/log/charon.log 2>&1; \
         tail -20 /var/log/openvswitch/ovs-monitor-ipsec.log 2>&1; \
         grep -v -i psk /etc/ipsec.conf | head -60",
    ]);
    format!("{}{}", stdout(&out), crate::podman_lab::stderr(&out))
}

/// [`Container::wait_ping`] over encrypted tunnels; on a timeout prints what the IKE daemon of
/// each of `hosts` saw, so that a failed key exchange says why.
fn wait_ping_ike(from: &Container, to: &str, hosts: &[Host]) -> Result<()> {
    let started = std::time::Instant::now();
    let waited = from.wait_ping(to, IKE_SETTLE);
    eprintln!(
        "[ipsec] {} -> {to}: {} after {:.1}s",
        from.name(),
        if waited.is_ok() {
            "answered"
        } else {
            "no answer"
        },
        started.elapsed().as_secs_f64()
    );
    waited.map_err(|err| {
        for h in hosts {
            eprintln!("[ipsec] h{} IKE state:\n{}", h.index(), ike_diagnostics(*h));
        }
        err.context(format!("{} -> {to} over IPsec", from.name()))
    })
}

/// Two hosts with encrypt=ipsec and certificates from one CA, made in the test (CN the host's
/// underlay address): ping and TCP cross, the underlay carries only ESP, `status` says each
/// tunnel is encrypted and established; OVS holds the host's files in other_config and each
/// tunnel the peer's name; a second network naming other files is refused and left nowhere.
pub fn two_hosts_certificates_only_esp_on_the_wire(lab: &PodmanLab) -> Result<()> {
    let (h1, h2) = (lab.host(1), lab.host(2));
    let peers = lab.all_peers();
    make_ca(h1, "lab-ca")?;
    let ca_cert = h1.exec_ok(&["cat", "/root/pki/lab-ca/cacert.pem"])?;
    let flags = certificate_flags();
    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    for (h, range) in lab.hosts().into_iter().zip(SEED_RANGES) {
        let (cert, key) = issue(h1, "lab-ca", &h.ip())?;
        install_certificates(h, &cert, &key, &ca_cert)?;
        let net = internal_network(h, NET, SUBNET, range, &peers, &flags)?;
        assert_eq!(opt(&net, "encrypt"), "ipsec");
        assert_eq!(
            (opt(&net, "cert"), opt(&net, "key"), opt(&net, "ca")),
            (CERT_FILE.into(), KEY_FILE.into(), CA_FILE.into())
        );
        assert_eq!(opt(&net, "psk_file"), "");
        assert_eq!(opt(&net, "mtu"), "1410");
        let inspect = h.podman_ok(&["network", "inspect", NET])?;
        ensure!(!inspect.contains("PRIVATE KEY"), "the key in inspect");
        for (key, path) in [
            ("certificate", CERT_FILE),
            ("private_key", KEY_FILE),
            ("ca_cert", CA_FILE),
        ] {
            let set = h.vsctl(&["get", "Open_vSwitch", ".", &format!("other_config:{key}")])?;
            ensure!(
                set.trim().trim_matches('"') == path,
                "h{}: other_config:{key} is {set}",
                h.index()
            );
        }
        let other = if h.index() == 1 { h2 } else { h1 };
        let options = h.vsctl(&[
            "--bare",
            "--columns=options",
            "find",
            "Interface",
            "type=geneve",
        ])?;
        let options: Vec<&str> = options.split([' ', ',', '\n']).collect();
        let remote_name = format!("remote_name={}", other.ip());
        ensure!(
            options.contains(&remote_name.as_str())
                && !options.iter().any(|o| o.starts_with("psk=")),
            "h{}: tunnel options {options:?}",
            h.index()
        );
    }

    // One certificate per host: another network naming other files is refused, and leaves
    // neither a network nor a bridge.
    h1.exec_ok(&["cp", "-p", CERT_FILE, "/etc/geneve-ovs/other-cert.pem"])?;
    let bridges = h1.bridges()?;
    let out = h1.podman(&[
        "network",
        "create",
        "-d",
        "geneve-ovs",
        "--internal",
        "--subnet",
        "192.168.121.0/24",
        "--opt",
        &format!("peers={peers}"),
        "--opt",
        "encrypt=ipsec",
        "--opt",
        "cert=/etc/geneve-ovs/other-cert.pem",
        "--opt",
        &format!("key={KEY_FILE}"),
        "--opt",
        &format!("ca={CA_FILE}"),
        "other",
    ]);
    let err = crate::podman_lab::stderr(&out);
    ensure!(
        !ok(&out) && err.contains("other_config") && err.contains(CERT_FILE),
        "a second set of certificate files: {err}"
    );
    ensure!(
        !h1.network_names()?.iter().any(|n| n == "other"),
        "network left"
    );
    ensure!(h1.bridges()? == bridges, "a bridge left behind");

    let c1 = h1.run_sleeper("c1", NET)?;
    let c2 = h2.run_sleeper("c2", NET)?;
    let (ip1, ip2) = (c1.ip(NET)?, c2.ip(NET)?);
    wait_ping_ike(&c1, &ip2, &[h1, h2])?;
    // Both ends' trap policies may start a key exchange; the pair the first ping rode on can
    // be replaced once by the other end's, and a packet sent meanwhile is lost: wait again.
    wait_ping_ike(&c2, &ip1, &[h1, h2])?;
    tcp_across(h1, &c2, NET)?;
    let lines = capture(
        h1,
        &[6081],
        &format!("podman exec c1 ping -c 10 -i 0.2 {ip2} >/dev/null"),
    )?;
    let clear = udp_lines(&lines, 6081);
    ensure!(clear.is_empty(), "clear GENEVE on the underlay: {clear:#?}");
    ensure!(esp_lines(&lines) >= 20, "too little ESP: {lines:#?}");
    for h in [h1, h2] {
        let (code, report) = status(h)?;
        let tunnels = tunnels_of(&report, NET);
        ensure!(tunnels.len() == 1, "{report:#}");
        ensure!(
            tunnels[0]["encrypted"] == true && tunnels[0]["ipsec"] == "established",
            "h{}: {report:#}",
            h.index()
        );
        ensure!(code == 0, "h{}: status exit {code}: {report:#}", h.index());
    }
    Ok(())
}

/// Host 2's certificate is signed by another CA than the one both hosts trust: nothing
/// crosses (no clear GENEVE either, no ESP from host 1), and `status` on host 1 names the
/// tunnel to host 2 and exits 2.
pub fn certificate_of_another_ca_nothing_crosses(lab: &PodmanLab) -> Result<()> {
    let (h1, h2) = (lab.host(1), lab.host(2));
    let peers = lab.all_peers();
    make_ca(h1, "lab-ca")?;
    make_ca(h1, "rogue-ca")?;
    let ca_cert = h1.exec_ok(&["cat", "/root/pki/lab-ca/cacert.pem"])?;
    let flags = certificate_flags();
    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    for ((h, range), ca) in lab
        .hosts()
        .into_iter()
        .zip(SEED_RANGES)
        .zip(["lab-ca", "rogue-ca"])
    {
        let (cert, key) = issue(h1, ca, &h.ip())?;
        install_certificates(h, &cert, &key, &ca_cert)?;
        internal_network(h, NET, SUBNET, range, &peers, &flags)?;
    }
    let c1 = h1.run_sleeper("c1", NET)?;
    let c2 = h2.run_sleeper("c2", NET)?;
    let ip2 = c2.ip(NET)?;
    let lines = capture(
        h1,
        &[6081],
        &format!("podman exec c1 ping -c 15 -W 1 {ip2} >/dev/null || true"),
    )?;
    ensure!(
        !c1.ping(&ip2),
        "a ping crossed with a certificate of another CA"
    );
    let clear = udp_lines(&lines, 6081);
    ensure!(clear.is_empty(), "clear GENEVE: {clear:#?}");
    let from_h1 = format!("{} > ", h1.ip());
    let esp_out: Vec<&String> = lines
        .iter()
        .filter(|l| l.contains(": ESP(") && l.contains(&from_h1))
        .collect();
    ensure!(esp_out.is_empty(), "ESP from host 1 (an SA?): {esp_out:#?}");
    let (code, report) = status(h1)?;
    let tunnels = tunnels_of(&report, NET);
    ensure!(tunnels.len() == 1, "{report:#}");
    let t = tunnels[0];
    ensure!(
        t["peer"] == h2.ip() && t["state"] == "down" && t["ipsec"] != "established",
        "{report:#}"
    );
    let error = t["error"].as_str().unwrap_or_default();
    ensure!(
        error.contains("IPsec") && error.contains(&h2.ip()),
        "{report:#}"
    );
    ensure!(code == 2, "status exit {code}: {report:#}");
    Ok(())
}

/// Whether `text` (`ip xfrm state`, `ip xfrm policy`) names address `ip`: as a word, alone or
/// with a prefix length, so that 10.99.0.3 is not found in 10.99.0.30.
fn names_address(text: &str, ip: &str) -> bool {
    text.split_whitespace()
        .any(|word| word == ip || word.split('/').next() == Some(ip))
}

/// Whether ovs-monitor-ipsec's strongSwan configuration on `h` has a connection to `peer`.
fn ipsec_conf_names(h: Host, peer: &str) -> Result<bool> {
    let conf = h.exec_ok(&["cat", "/etc/ipsec.conf"])?;
    let right = format!("right={peer}");
    Ok(conf.lines().any(|l| l.trim() == right))
}

/// `create` of the encrypted network with `hosts=4` (each host's address range from its place
/// in `peers`, so that `geneve-ovs peers add` can add a host to it).
fn create_with_hosts(h: Host, peers: &str) -> Result<Value> {
    let peers = format!("peers={peers}");
    let flags = encrypted_flags();
    let mut args = vec![
        "--internal",
        "--subnet",
        SUBNET,
        "--opt",
        &peers,
        "--opt",
        "hosts=4",
    ];
    args.extend(flags.iter().map(String::as_str));
    h.create_network(NET, &args)
}

/// Every tunnel of network [`NET`] in `h`'s status is encrypted and established, to exactly
/// the `peers` given, and status exits 0.
fn status_all_established(h: Host, peers: &[String]) -> Result<()> {
    let (code, report) = status(h)?;
    let mut seen: Vec<String> = tunnels_of(&report, NET)
        .iter()
        .map(|t| t["peer"].as_str().unwrap_or_default().to_string())
        .collect();
    seen.sort();
    let mut want = peers.to_vec();
    want.sort();
    ensure!(
        seen == want,
        "h{}: tunnels to {seen:?}, not {want:?}: {report:#}",
        h.index()
    );
    for t in tunnels_of(&report, NET) {
        ensure!(
            t["encrypted"] == true && t["ipsec"] == "established" && t["state"] != "down",
            "h{}: {report:#}",
            h.index()
        );
    }
    ensure!(code == 0, "h{}: status exit {code}: {report:#}", h.index());
    Ok(())
}

/// ESP lines of a capture to or from `ip`.
fn esp_with(lines: &[String], ip: &str) -> usize {
    let from = format!("{ip} > ");
    let to = format!("> {ip}: ");
    lines
        .iter()
        .filter(|l| l.contains(": ESP(") && (l.contains(&from) || l.contains(&to)))
        .count()
}

/// Peers added to and removed from a running encrypted network get and lose their IPsec
/// configuration: host 3 joins a 2-host network (host 1 with `geneve-ovs peers add` while its
/// container runs, host 2 by creating the network again): its tunnels are encrypted, the
/// underlay carries only ESP to and from it, and status says every tunnel is established.
/// Then it leaves (the reverse): its tunnel, its strongSwan connection, its security
/// associations and policies and its underlay-filter entry are gone from hosts 1 and 2, which
/// still talk over ESP only.
pub fn peers_added_and_removed_get_and_lose_ipsec(lab: &PodmanLab) -> Result<()> {
    let (h1, h2, h3) = (lab.host(1), lab.host(2), lab.host(3));
    let two = format!("{},{}", h1.ip(), h2.ip());
    let three = lab.all_peers();
    for h in [h1, h2] {
        start_ipsec(h, KEY)?;
        create_with_hosts(h, &two)?;
    }
    let c1 = h1.run_sleeper("c1", NET)?;
    let c2 = h2.run_sleeper("c2", NET)?;
    let ip1 = c1.ip(NET)?;
    wait_ping_ike(&c1, &c2.ip(NET)?, &[h1, h2])?;

    // Host 3 joins.
    h1.exec_ok(&[PLUGIN_IN_HOST, "peers", NET, "add", &h3.ip()])?;
    h2.podman_ok(&["network", "rm", "-f", NET])?;
    create_with_hosts(h2, &three)?;
    let c2 = h2.run_sleeper("c2", NET)?;
    start_ipsec(h3, KEY)?;
    create_with_hosts(h3, &three)?;
    let c3 = h3.run_sleeper("c3", NET)?;
    let (ip2, ip3) = (c2.ip(NET)?, c3.ip(NET)?);
    for (from, to) in [
        (&c3, &ip1),
        (&c3, &ip2),
        (&c1, &ip3),
        (&c2, &ip3),
        (&c1, &ip2),
    ] {
        wait_ping_ike(from, to, &[h1, h2, h3]).context("after host 3 joined")?;
    }
    let lines = capture(
        h3,
        &[6081],
        &format!(
            "podman exec c3 ping -c 6 -i 0.2 {ip1} >/dev/null; \
             podman exec c3 ping -c 6 -i 0.2 {ip2} >/dev/null"
        ),
    )?;
    let clear = udp_lines(&lines, 6081);
    ensure!(clear.is_empty(), "clear GENEVE to host 3: {clear:#?}");
    for h in [h1, h2] {
        ensure!(
            esp_with(&lines, &h.ip()) >= 10,
            "too little ESP between host 3 and host {}: {lines:#?}",
            h.index()
        );
    }
    for h in [h1, h2, h3] {
        let others: Vec<String> = [h1, h2, h3]
            .into_iter()
            .filter(|o| o.index() != h.index())
            .map(|o| o.ip())
            .collect();
        status_all_established(h, &others)?;
        ensure!(
            others
                .iter()
                .all(|peer| ipsec_conf_names(h, peer).unwrap_or(false)),
            "h{}: a connection missing in /etc/ipsec.conf",
            h.index()
        );
    }

    // Host 3 leaves.
    h1.exec_ok(&[PLUGIN_IN_HOST, "peers", NET, "remove", &h3.ip()])?;
    h2.podman_ok(&["network", "rm", "-f", NET])?;
    create_with_hosts(h2, &two)?;
    let c2 = h2.run_sleeper("c2", NET)?;
    h3.podman_ok(&["network", "rm", "-f", NET])?;
    let gone = h3.ip();
    for (h, other) in [(h1, h2), (h2, h1)] {
        // What of host 3 was still there at the last look: a timeout says which part stayed.
        let mut left = String::new();
        wait::until(
            &format!("host 3's IPsec state gone from host {}", h.index()),
            Duration::from_secs(60),
            || {
                let conf = ipsec_conf_names(h, &gone)?;
                let policy = h.exec_ok(&["ip", "xfrm", "policy"])?;
                let state = h.exec_ok(&["ip", "xfrm", "state"])?;
                // The SAs' key lines stay out of the log.
                let state_shown: Vec<&str> = state
                    .lines()
                    .filter(|l| {
                        let l = l.trim_start();
                        !(l.starts_with("auth") || l.starts_with("enc") || l.starts_with("aead"))
                    })
                    .collect();
                left = format!(
                    "in ipsec.conf: {conf}\nip xfrm policy:\n{policy}\nip xfrm state (keys left \
                     out):\n{}",
                    state_shown.join("\n")
                );
                Ok(!conf && !names_address(&policy, &gone) && !names_address(&state, &gone))
            },
        )
        .with_context(|| format!("what was left on host {}:\n{left}", h.index()))?;
        let remotes: Vec<String> = h
            .tunnels()?
            .iter()
            .map(|t| {
                t["options"]["remote_ip"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string()
            })
            .collect();
        ensure!(
            remotes == [other.ip()],
            "h{}: tunnels to {remotes:?}",
            h.index()
        );
        let set = h.exec_ok(&[
            "nft",
            "list",
            "set",
            "inet",
            "geneve_ovs",
            "underlay_ipsec4",
        ])?;
        ensure!(
            !names_address(&set.replace(',', " "), &gone) && set.contains(&other.ip()),
            "h{}: {set}",
            h.index()
        );
    }
    let ip2 = c2.ip(NET)?;
    wait_ping_ike(&c1, &ip2, &[h1, h2]).context("after host 3 left")?;
    for (h, other) in [(h1, h2), (h2, h1)] {
        status_all_established(h, &[other.ip()])?;
    }
    let lines = capture(
        h1,
        &[6081],
        &format!("podman exec c1 ping -c 8 -i 0.2 {ip2} >/dev/null"),
    )?;
    let clear = udp_lines(&lines, 6081);
    ensure!(
        clear.is_empty(),
        "clear GENEVE after host 3 left: {clear:#?}"
    );
    ensure!(
        esp_with(&lines, &h2.ip()) >= 14,
        "too little ESP with host 2: {lines:#?}"
    );
    Ok(())
}

/// With the IKE daemon (charon) stopped on host 1, ovs-monitor-ipsec still running: nothing
/// crosses (no clear GENEVE either), `status` there names the tunnel and the stopped daemon and
/// exits 2, and `create` of another encrypted network is refused naming the daemon, leaving no
/// network and no bridge. Started again, the daemon brings the tunnel back.
pub fn ike_daemon_stopped_create_refuses_and_status_says_down(lab: &PodmanLab) -> Result<()> {
    let (h1, h2) = (lab.host(1), lab.host(2));
    let peers = lab.all_peers();
    let flags = encrypted_flags();
    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    for (h, range) in lab.hosts().into_iter().zip(SEED_RANGES) {
        start_ipsec(h, KEY)?;
        internal_network(h, NET, SUBNET, range, &peers, &flags)?;
    }
    let c1 = h1.run_sleeper("c1", NET)?;
    let c2 = h2.run_sleeper("c2", NET)?;
    let ip2 = c2.ip(NET)?;
    wait_ping_ike(&c1, &ip2, &[h1, h2])?;

    h1.exec_ok(&["ipsec", "stop"])?;
    wait::until("charon stopped on host 1", Duration::from_secs(30), || {
        Ok(!charon_running(h1))
    })?;
    let lines = capture(
        h1,
        &[6081],
        &format!("podman exec c1 ping -c 10 -W 1 {ip2} >/dev/null || true"),
    )?;
    ensure!(!c1.ping(&ip2), "a ping crossed without the IKE daemon");
    let clear = udp_lines(&lines, 6081);
    ensure!(
        clear.is_empty(),
        "clear GENEVE without the IKE daemon: {clear:#?}"
    );
    let (code, report) = status(h1)?;
    let tunnels = tunnels_of(&report, NET);
    ensure!(tunnels.len() == 1, "{report:#}");
    let t = tunnels[0];
    ensure!(
        t["peer"] == h2.ip() && t["state"] == "down" && t["ipsec"] != "established",
        "{report:#}"
    );
    // The error says why: this host's IKE daemon.
    let error = t["error"].as_str().unwrap_or_default();
    ensure!(
        error.contains("IPsec") && error.contains(&h2.ip()) && error.contains("IKE daemon"),
        "{report:#}"
    );
    ensure!(code == 2, "status exit {code}: {report:#}");

    let bridges = h1.bridges()?;
    let out = h1.podman(&[
        "network",
        "create",
        "-d",
        "geneve-ovs",
        "--internal",
        "--subnet",
        "192.168.121.0/24",
        "--opt",
        &format!("peers={peers}"),
        "--opt",
        "encrypt=ipsec",
        "--opt",
        &format!("psk_file={PSK_FILE}"),
        "other",
    ]);
    let err = crate::podman_lab::stderr(&out);
    ensure!(
        !ok(&out) && err.contains("IKE daemon") && err.contains("charon"),
        "create without the IKE daemon: {err}"
    );
    ensure!(
        !h1.network_names()?.iter().any(|n| n == "other"),
        "network left"
    );
    ensure!(h1.bridges()? == bridges, "a bridge left behind");

    // Started again, it reads the connections ovs-monitor-ipsec wrote and the tunnel is back.
    h1.exec_ok(&["ipsec", "start"])?;
    wait_for_charon(h1)?;
    wait_ping_ike(&c1, &ip2, &[h1, h2]).context("the tunnel after the IKE daemon started again")?;
    let (code, report) = status(h1)?;
    ensure!(
        code == 0,
        "status exit {code} with the daemon back: {report:#}"
    );
    Ok(())
}
