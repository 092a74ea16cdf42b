//! The plugin's transactions on the OVN northbound database: a network's switch, a
//! container's logical port and DNS records. (Whether a port is up is read from this host's
//! ovn-controller instead, in `control::ovn`.)
//!
//! Every host writes to the same database at the same time, so each change is one
//! transaction guarded by `wait` operations on what it was decided from (the switch's
//! absence, its `ports` and `dns_records`), read again and retried when another host got
//! there first. That makes two setups of one address on two hosts safe: the second sees the
//! first's port on its retry and is refused.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use serde_json::{json, Value};

use super::plan::{self, Acl, SwitchRemoval};
use super::schema::{
    is_owned, DnsRow, SwitchPortRow, SwitchRow, DB, DNS_COLUMNS, PORT_COLUMNS, ROLE_DNS,
    SWITCH_COLUMNS,
};
use crate::options::NetworkConfig;
use crate::ovs::schema::{common_ids, keys, ContainerPort};
use crate::ovsdb::{ops, value, Client, Remote, TransactError, Until, TIMED_OUT};

/// How long connecting to one remote may take before the next one is tried.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// How long one request may take (a Raft cluster may be electing a leader).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// How often a change is decided again after another host changed the same rows.
const ATTEMPTS: usize = 20;

/// A connection to the northbound database.
pub struct Northbound {
    client: Client,
}

/// One container's logical port as the plugin writes it.
pub struct PortRequest<'a> {
    pub cfg: &'a NetworkConfig,
    pub port: &'a ContainerPort,
    /// The logical port's name ([`plan::port_name`]).
    pub name: &'a str,
    /// This host's chassis (its OVS `system-id`).
    pub chassis: &'a str,
    /// The container's names for DNS.
    pub dns_names: &'a [String],
}

impl Northbound {
    /// Connects to the first remote of `remotes` that serves the northbound database, the
    /// leader of a Raft cluster in preference to a follower (a follower forwards writes, but a
    /// disconnected one serves stale data). The error lists why each remote was not taken.
    pub fn connect(remotes: &[Remote]) -> Result<Northbound> {
        let mut follower = None;
        let mut why = Vec::new();
        for remote in remotes {
            match try_remote(remote) {
                Ok((client, Role::Leader)) => return Ok(Northbound { client }),
                Ok((client, Role::Follower)) => {
                    if follower.is_none() {
                        follower = Some(client);
                    }
                }
                Err(err) => {
                    // Errors of the transport already name the remote; others do not.
                    let text = format!("{err:#}");
                    if text.contains(&remote.to_string()) {
                        why.push(text);
                    } else {
                        why.push(format!("{remote}: {text}"));
                    }
                }
            }
        }
        if let Some(client) = follower {
            return Ok(Northbound { client });
        }
        bail!(
            "cannot reach the OVN northbound database (option ovn): {}; check that \
             ovsdb-server of OVN_Northbound (ovn-central) runs there and listens on that \
             address (ovn-nbctl --db=REMOTE show)",
            why.join("; ")
        )
    }

    /// The remote this connection uses.
    pub fn remote(&self) -> &Remote {
        self.client.remote()
    }

    fn transact(&mut self, ops: Vec<Value>) -> Result<Vec<Value>> {
        self.client.transact(DB, ops)
    }

    /// Runs `ops_`, a change decided from rows read just before and guarded by `wait`
    /// operations on them. `Ok(None)` when a guard failed: another host changed those rows
    /// meanwhile, so the caller reads them again and decides anew (within [`ATTEMPTS`]).
    /// Any other failure is returned with `doing` (what the change was) as its context.
    fn transact_guarded(
        &mut self,
        ops_: Vec<Value>,
        doing: impl FnOnce() -> String,
    ) -> Result<Option<Vec<Value>>> {
        match self.transact(ops_) {
            Ok(results) => Ok(Some(results)),
            Err(err) if is_guard_failure(&err) => Ok(None),
            Err(err) => Err(err).context(doing()),
        }
    }

    /// The network's switch, if the database has one of its name.
    pub fn find_switch(&mut self, name: &str) -> Result<Option<SwitchRow>> {
        let results = self.transact(vec![ops::select(
            "Logical_Switch",
            vec![ops::cond("name", "==", name)],
            Some(SWITCH_COLUMNS),
        )])?;
        match value::rows(&results[0])? {
            [] => Ok(None),
            [row] => SwitchRow::read(row).map(Some),
            rows => bail!(
                "the OVN northbound database has {} logical switches named {name}: remove all \
                 but one (ovn-nbctl ls-list)",
                rows.len()
            ),
        }
    }

    /// The network's switch: found when another host made it (and refused when it is not
    /// this network's, naming the difference), else created with its ACLs. Returns it.
    pub fn ensure_switch(&mut self, cfg: &NetworkConfig) -> Result<SwitchRow> {
        let name = plan::switch_name(&cfg.name);
        for _ in 0..ATTEMPTS {
            if let Some(existing) = self.find_switch(&name)? {
                if let Some(why) = plan::switch_conflict(&existing, cfg) {
                    bail!("{why}");
                }
                return Ok(existing);
            }
            let mut ops_ = vec![ops::wait(
                "Logical_Switch",
                vec![ops::cond("name", "==", name.as_str())],
                &["name"],
                Until::Equal,
                vec![],
                Some(0),
            )];
            let mut acls = Vec::new();
            for (i, acl) in plan::switch_acls(cfg).iter().enumerate() {
                let uuid_name = format!("acl{i}");
                ops_.push(ops::insert("ACL", Some(&uuid_name), acl_row(acl))?);
                acls.push(value::named_uuid(&uuid_name)?);
            }
            ops_.push(ops::insert(
                "Logical_Switch",
                None,
                json!({
                    "name": name,
                    "external_ids": value::map(plan::switch_external_ids(cfg)),
                    "acls": value::set(acls),
                }),
            )?);
            // Created or not, the next round reads the switch (made by this host or another).
            self.transact_guarded(ops_, || format!("creating logical switch {name}"))?;
        }
        Err(kept_changing(&format!("create logical switch {name}")))
    }

    /// The logical ports of `switch`.
    pub fn ports_of(&mut self, switch: &SwitchRow) -> Result<Vec<SwitchPortRow>> {
        if switch.ports.is_empty() {
            return Ok(Vec::new());
        }
        let results = self.transact(vec![ops::select(
            "Logical_Switch_Port",
            vec![],
            Some(PORT_COLUMNS),
        )])?;
        value::rows(&results[0])?
            .iter()
            .map(SwitchPortRow::read)
            .filter(|p| p.as_ref().map_or(true, |p| switch.ports.contains(&p.uuid)))
            .collect()
    }

    /// The DNS row the plugin keeps on `switch`, if it has one.
    fn dns_of(&mut self, switch: &SwitchRow) -> Result<Option<DnsRow>> {
        if switch.dns_records.is_empty() {
            return Ok(None);
        }
        let results = self.transact(vec![ops::select("DNS", vec![], Some(DNS_COLUMNS))])?;
        for row in value::rows(&results[0])? {
            let dns = DnsRow::read(row)?;
            if switch.dns_records.contains(&dns.uuid) && is_owned(&dns.external_ids) {
                return Ok(Some(dns));
            }
        }
        Ok(None)
    }

    /// Adds a container's logical port and its DNS records in one transaction, refusing at
    /// once an address another port of the switch has (naming its container and chassis). A
    /// port of the same name (this container set up again) is replaced.
    pub fn add_port(&mut self, request: &PortRequest) -> Result<()> {
        let cfg = request.cfg;
        let switch_name = plan::switch_name(&cfg.name);
        for _ in 0..ATTEMPTS {
            let Some(switch) = self.find_switch(&switch_name)? else {
                // `gc` of the last host to leave the network removed its switch while this
                // host still has the network: it is made again (guarded), as `create` would.
                self.ensure_switch(cfg)
                    .with_context(|| format!("OVN northbound database at {}", self.remote()))?;
                continue;
            };
            if let Some(why) = plan::switch_conflict(&switch, cfg) {
                bail!("{why}");
            }
            let ports = self.ports_of(&switch)?;
            if let Some(taken) = plan::address_taken(&ports, request.name, &request.port.addresses)
            {
                bail!(
                    "{taken} on network {}: choose another address (no address can be on two \
                     ports of the network)",
                    cfg.name
                );
            }
            let dns = self.dns_of(&switch)?;
            // Only the first container of a network creates its DNS row: only then does it
            // matter whether the server knows the row's options.
            let dns_options = dns.is_none() && self.dns_has_options()?;
            let ops_ = add_port_ops(request, &switch, &ports, dns.as_ref(), dns_options)?;
            let doing = || format!("adding logical port {}", request.name);
            if self.transact_guarded(ops_, doing)?.is_some() {
                return Ok(());
            }
        }
        Err(kept_changing(&format!("add logical port {}", request.name)))
    }

    /// Removes a container's logical port and the DNS records that still point at its
    /// addresses. Returns whether there was a port.
    pub fn remove_port(&mut self, network: &str, name: &str) -> Result<bool> {
        let switch_name = plan::switch_name(network);
        for _ in 0..ATTEMPTS {
            let Some(switch) = self.find_switch(&switch_name)? else {
                return Ok(false);
            };
            let ports = self.ports_of(&switch)?;
            let Some(port) = ports.iter().find(|p| p.name == name) else {
                return Ok(false);
            };
            if port.owned(keys::CONTAINER_ID).is_none() {
                bail!("logical port {name} was not made by geneve-ovs: leaving it alone");
            }
            let dns = self.dns_of(&switch)?;
            let mut ops_ = vec![
                guard_switch(&switch),
                mutate_switch(&switch, "ports", "delete", value::uuid(&port.uuid)),
            ];
            if let Some(dns) = &dns {
                let stale = records_of(dns, port);
                if !stale.is_empty() {
                    ops_.push(guard_records(dns));
                    ops_.push(ops::mutate(
                        "DNS",
                        vec![ops::cond("_uuid", "==", value::uuid(&dns.uuid))],
                        vec![ops::mutation(
                            "records",
                            "delete",
                            value::set(stale.into_iter().map(Value::from).collect()),
                        )],
                    ));
                }
            }
            let doing = || format!("removing logical port {name}");
            if self.transact_guarded(ops_, doing)?.is_some() {
                return Ok(true);
            }
        }
        Err(kept_changing(&format!("remove logical port {name}")))
    }

    /// Whether this server's `DNS` table has the `options` column (OVN 23.09 and later), where
    /// [`plan::dns_options`] go.
    fn dns_has_options(&mut self) -> Result<bool> {
        let schema = self
            .client
            .call("get_schema", &[Value::from(DB)])
            .context("reading the northbound database's schema")?;
        Ok(schema.pointer("/tables/DNS/columns/options").is_some())
    }

    /// The network's gateway port ([`plan::gateway_port`]): found when another host made it,
    /// else added to the switch in a transaction guarded like a container port's. Returns its
    /// row, `None` when the network has no gateway address. A port of that name that is not
    /// the plugin's gateway port is refused.
    pub fn ensure_gateway_port(&mut self, cfg: &NetworkConfig) -> Result<Option<SwitchPortRow>> {
        let Some(wanted) = plan::gateway_port(cfg) else {
            return Ok(None);
        };
        let switch_name = plan::switch_name(&cfg.name);
        for _ in 0..ATTEMPTS {
            let Some(switch) = self.find_switch(&switch_name)? else {
                // Removed by `gc` of the last host to leave the network while this host
                // still has it: made again (guarded), as for a container's port.
                self.ensure_switch(cfg)
                    .with_context(|| format!("OVN northbound database at {}", self.remote()))?;
                continue;
            };
            let ports = self.ports_of(&switch)?;
            if let Some(existing) = ports.iter().find(|p| p.name == wanted.name) {
                if let Some(why) = plan::gateway_port_conflict(existing) {
                    bail!("{why}");
                }
                return Ok(Some(existing.clone()));
            }
            let addresses: Vec<IpAddr> = cfg.gateways.iter().map(|g| g.addr()).collect();
            if let Some(taken) = plan::address_taken(&ports, &wanted.name, &addresses) {
                bail!(
                    "network {}: its gateway {taken}: remove that container, or give the \
                     network another --gateway",
                    cfg.name
                );
            }
            let mut ops_ = vec![guard_switch(&switch)];
            ops_.extend(insert_into_switch(
                &switch,
                "ports",
                "Logical_Switch_Port",
                "gateway",
                json!({
                    "name": wanted.name,
                    "type": super::schema::LOCALPORT,
                    "addresses": value::set(vec![wanted.addresses.clone().into()]),
                    "external_ids": value::map(wanted.external_ids.clone()),
                }),
            )?);
            // Added or not, the next round reads the port (made by this host or another).
            self.transact_guarded(ops_, || format!("adding gateway port {}", wanted.name))?;
        }
        Err(kept_changing(&format!("add gateway port {}", wanted.name)))
    }

    /// Whether NB says the logical port `name` is up (northd's relay of the southbound
    /// binding's state).
    pub fn port_is_up(&mut self, name: &str) -> Result<bool> {
        let results = self.transact(vec![ops::select(
            "Logical_Switch_Port",
            vec![ops::cond("name", "==", name)],
            Some(&["up"]),
        )])?;
        Ok(match value::rows(&results[0])?.first() {
            Some(row) => value::optional(value::column(row, "up")?)?
                .and_then(|up| up.as_bool())
                .unwrap_or(false),
            None => false,
        })
    }
}

/// One member of the northbound database's cluster (or the one standalone server) as
/// `status` reports it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Member {
    pub remote: String,
    /// `leader` (also a standalone server), `follower` or `unreachable`.
    pub role: &'static str,
    /// Why it is unreachable.
    pub error: Option<String>,
}

/// Asks every remote of `remotes` whether it serves the northbound database and whether it
/// is its cluster's leader: the cluster as this host sees it, for `status`.
pub fn probe(remotes: &[Remote]) -> Vec<Member> {
    remotes
        .iter()
        .map(|remote| match try_remote(remote) {
            Ok((_, role)) => Member {
                remote: remote.to_string(),
                role: match role {
                    Role::Leader => "leader",
                    Role::Follower => "follower",
                },
                error: None,
            },
            Err(err) => Member {
                remote: remote.to_string(),
                role: "unreachable",
                error: Some(format!("{err:#}")),
            },
        })
        .collect()
}

impl Northbound {
    /// The DNS rows `switch` points at.
    fn dns_rows_of(&mut self, switch: &SwitchRow) -> Result<Vec<DnsRow>> {
        if switch.dns_records.is_empty() {
            return Ok(Vec::new());
        }
        let results = self.transact(vec![ops::select("DNS", vec![], Some(DNS_COLUMNS))])?;
        value::rows(&results[0])?
            .iter()
            .map(DnsRow::read)
            .filter(|d| {
                d.as_ref()
                    .map_or(true, |d| switch.dns_records.contains(&d.uuid))
            })
            .collect()
    }

    /// Removes the switch of network `network`, which this host no longer has, provided it
    /// is still the network whose identity this host recorded and no chassis has a port on
    /// it ([`plan::switch_removal`]): with its DNS rows, in one transaction guarded by a
    /// `wait` on its ports, so that a host adding a port meanwhile wins (the removal is then
    /// decided again and the switch kept). Returns what was decided.
    pub fn remove_unused_switch(
        &mut self,
        network: &str,
        identity: &BTreeMap<String, String>,
        dry_run: bool,
    ) -> Result<SwitchRemoval> {
        let name = plan::switch_name(network);
        for _ in 0..ATTEMPTS {
            let switch = self.find_switch(&name)?;
            let (ports, dns) = match &switch {
                Some(switch) => (self.ports_of(switch)?, self.dns_rows_of(switch)?),
                None => (Vec::new(), Vec::new()),
            };
            let decision = plan::switch_removal(switch.as_ref(), &ports, &dns, identity);
            let (Some(switch), SwitchRemoval::Remove { dns }) = (&switch, &decision) else {
                return Ok(decision);
            };
            if dry_run {
                return Ok(decision);
            }
            let mut ops_ = vec![guard_switch(switch)];
            ops_.extend(
                dns.iter().map(|uuid| {
                    ops::delete("DNS", vec![ops::cond("_uuid", "==", value::uuid(uuid))])
                }),
            );
            ops_.push(ops::delete(
                "Logical_Switch",
                vec![ops::cond("_uuid", "==", value::uuid(&switch.uuid))],
            ));
            let doing = || format!("removing logical switch {name}");
            if self.transact_guarded(ops_, doing)?.is_some() {
                return Ok(decision);
            }
        }
        Err(kept_changing(&format!("remove logical switch {name}")))
    }
}

/// Whether a remote's server is the cluster's leader (or a standalone server) or a follower.
enum Role {
    Leader,
    Follower,
}

/// Connects to one remote and asks its `_Server` database about OVN_Northbound.
fn try_remote(remote: &Remote) -> Result<(Client, Role)> {
    let mut client = Client::connect_remote(remote, CONNECT_TIMEOUT)?;
    client.set_timeout(REQUEST_TIMEOUT);
    let results = client.transact(
        "_Server",
        vec![ops::select(
            "Database",
            vec![ops::cond("name", "==", DB)],
            Some(&["model", "connected", "leader"]),
        )],
    )?;
    let Some(row) = value::rows(&results[0])?.first() else {
        bail!("the server has no {DB} database");
    };
    let flag = |column: &str| value::column(row, column).ok().and_then(Value::as_bool);
    if flag("connected") == Some(false) {
        bail!("its {DB} database is not connected to the rest of its cluster");
    }
    let clustered = value::column(row, "model")
        .ok()
        .and_then(Value::as_str)
        .is_some_and(|m| m == "clustered");
    if clustered && flag("leader") != Some(true) {
        return Ok((client, Role::Follower));
    }
    Ok((client, Role::Leader))
}

/// Whether a transaction failed on one of its `wait` guards: another host changed the rows.
fn is_guard_failure(err: &anyhow::Error) -> bool {
    err.downcast_ref::<TransactError>()
        .is_some_and(|t| t.is(TIMED_OUT))
}

/// The error of a change given up after [`ATTEMPTS`] rounds, each lost to another host's
/// change of the same rows: `doing` says what could not be done.
fn kept_changing(doing: &str) -> anyhow::Error {
    anyhow!("could not {doing}: the OVN database kept changing underneath")
}

/// The mutation of `switch`'s column `column` (`ports`, `dns_records`) by `mutator`
/// (`insert`, `delete`) with the one reference `row` (a UUID or a named UUID).
fn mutate_switch(switch: &SwitchRow, column: &str, mutator: &str, row: Value) -> Value {
    ops::mutate(
        "Logical_Switch",
        vec![ops::cond("_uuid", "==", value::uuid(&switch.uuid))],
        vec![ops::mutation(column, mutator, value::set(vec![row]))],
    )
}

/// A new row `row` of `table`, named `uuid_name` within the transaction, and its reference
/// added to `switch`'s column `column`, both in the same transaction: no host ever reads the
/// row without the switch holding it.
fn insert_into_switch(
    switch: &SwitchRow,
    column: &str,
    table: &str,
    uuid_name: &str,
    row: Value,
) -> Result<[Value; 2]> {
    Ok([
        ops::insert(table, Some(uuid_name), row)?,
        mutate_switch(switch, column, "insert", value::named_uuid(uuid_name)?),
    ])
}

/// A guard that the switch's ports and DNS rows are still those read.
fn guard_switch(switch: &SwitchRow) -> Value {
    let uuids = |list: &[String]| value::set(list.iter().map(|u| value::uuid(u)).collect());
    ops::wait(
        "Logical_Switch",
        vec![ops::cond("_uuid", "==", value::uuid(&switch.uuid))],
        &["ports", "dns_records"],
        Until::Equal,
        vec![json!({"ports": uuids(&switch.ports), "dns_records": uuids(&switch.dns_records)})],
        Some(0),
    )
}

/// A guard that a DNS row's records are still those read.
fn guard_records(dns: &DnsRow) -> Value {
    ops::wait(
        "DNS",
        vec![ops::cond("_uuid", "==", value::uuid(&dns.uuid))],
        &["records"],
        Until::Equal,
        vec![json!({"records": value::map(dns.records.clone())})],
        Some(0),
    )
}

/// The record names of `dns` that point at exactly `port`'s addresses.
fn records_of(dns: &DnsRow, port: &SwitchPortRow) -> Vec<String> {
    let addresses: Vec<IpAddr> = port
        .addresses
        .iter()
        .flat_map(|a| a.split_whitespace())
        .filter_map(|w| w.parse().ok())
        .collect();
    let value: Vec<String> = addresses.iter().map(IpAddr::to_string).collect();
    let value = value.join(" ");
    dns.records
        .iter()
        .filter(|(_, v)| !value.is_empty() && **v == value)
        .map(|(k, _)| k.clone())
        .collect()
}

/// The operations that add `request`'s port (replacing one of its name) and records.
fn add_port_ops(
    request: &PortRequest,
    switch: &SwitchRow,
    ports: &[SwitchPortRow],
    dns: Option<&DnsRow>,
    dns_options: bool,
) -> Result<Vec<Value>> {
    let entry = plan::port_addresses(request.port);
    let mut out = vec![guard_switch(switch)];
    if let Some(old) = ports.iter().find(|p| p.name == request.name) {
        out.push(mutate_switch(
            switch,
            "ports",
            "delete",
            value::uuid(&old.uuid),
        ));
    }
    out.extend(insert_into_switch(
        switch,
        "ports",
        "Logical_Switch_Port",
        "port",
        json!({
            "name": request.name,
            "addresses": value::set(vec![entry.clone().into()]),
            "port_security": value::set(vec![entry.into()]),
            "options": value::map([("requested-chassis", request.chassis)]),
            "external_ids": value::map(plan::port_external_ids(request.cfg, request.port, request.chassis)),
        }),
    )?);
    let records = plan::dns_records(
        request.dns_names,
        &request.cfg.name,
        &request.port.addresses,
    );
    if records.is_empty() {
        return Ok(out);
    }
    match dns {
        Some(dns) => {
            out.push(guard_records(dns));
            let names: Vec<Value> = records.keys().cloned().map(Value::from).collect();
            let dns_row = || vec![ops::cond("_uuid", "==", value::uuid(&dns.uuid))];
            // A name another container had goes to this one: the latest container of a name
            // is the one its users mean.
            out.push(ops::mutate(
                "DNS",
                dns_row(),
                vec![ops::mutation("records", "delete", value::set(names))],
            ));
            out.push(ops::mutate(
                "DNS",
                dns_row(),
                vec![ops::mutation("records", "insert", value::map(records))],
            ));
        }
        None => {
            let mut ids: BTreeMap<String, String> = common_ids(request.cfg, ROLE_DNS);
            ids.remove(keys::NETWORK_ID);
            let mut row = json!({"records": value::map(records), "external_ids": value::map(ids)});
            if dns_options {
                row["options"] = value::map(plan::dns_options());
            }
            out.extend(insert_into_switch(
                switch,
                "dns_records",
                "DNS",
                "dns",
                row,
            )?);
        }
    }
    Ok(out)
}

/// An ACL as a row to insert.
fn acl_row(acl: &Acl) -> Value {
    json!({
        "priority": acl.priority,
        "direction": acl.direction,
        "match": acl.matches,
        "action": acl.action,
        "external_ids": value::map(acl.external_ids.clone()),
    })
}
