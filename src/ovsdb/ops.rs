//! Builders for the operations of a `transact` request (RFC 7047 section 5.2).
//!
//! Each builder returns the operation as JSON, ready to go into [`super::Client::transact`].
//! They exist so that member names (`uuid-name`, `where`, `mutations`, `until`...) are spelled
//! in one place, and so that a transaction reads as a list of intentions rather than JSON.

use anyhow::Result;
use serde_json::{Map, Value};

use super::value::check_uuid_name;

/// A condition for a `where` clause: `[column, function, value]`, e.g.
/// `cond("name", "==", "br0")` or
/// `cond("external_ids", "includes", map([("k", "v")]))`.
///
/// `function` is one of `==`, `!=`, `<`, `<=`, `>`, `>=`, `includes`, `excludes`; it is not
/// checked here because the server rejects an unknown one with a clear syntax error.
pub fn cond(column: &str, function: &str, value: impl Into<Value>) -> Value {
    Value::Array(vec![column.into(), function.into(), value.into()])
}

/// A mutation for [`mutate`]: `[column, mutator, value]`, e.g. `mutation("next_cfg", "+=", 1)`
/// or `mutation("ports", "delete", set(vec![uuid(u)]))`. Mutators: `+=`, `-=`, `*=`, `/=`,
/// `%=`, `insert`, `delete` (an `insert` into a map never overwrites an existing key).
pub fn mutation(column: &str, mutator: &str, value: impl Into<Value>) -> Value {
    Value::Array(vec![column.into(), mutator.into(), value.into()])
}

/// Starts an operation object with its `op` and `table` members.
fn op(name: &str, table: &str) -> Map<String, Value> {
    let mut object = Map::new();
    object.insert("op".into(), name.into());
    object.insert("table".into(), table.into());
    object
}

/// Inserts `row` (an object of column values) into `table`.
///
/// With `uuid_name`, later operations of the same transaction can refer to the new row with
/// [`super::value::named_uuid`]; the name is validated here for the same reason as there.
pub fn insert(table: &str, uuid_name: Option<&str>, row: Value) -> Result<Value> {
    let mut object = op("insert", table);
    object.insert("row".into(), row);
    if let Some(name) = uuid_name {
        check_uuid_name(name)?;
        object.insert("uuid-name".into(), name.into());
    }
    Ok(Value::Object(object))
}

/// Selects the rows of `table` matching every condition of `where_` (none: all rows).
/// `columns` limits the columns returned (`None`: all of them, which is large for Bridge or
/// Interface rows).
pub fn select(table: &str, where_: Vec<Value>, columns: Option<&[&str]>) -> Value {
    let mut object = op("select", table);
    object.insert("where".into(), Value::Array(where_));
    if let Some(columns) = columns {
        object.insert("columns".into(), columns_value(columns));
    }
    Value::Object(object)
}

/// Sets the columns given in `row` on every matching row.
pub fn update(table: &str, where_: Vec<Value>, row: Value) -> Value {
    let mut object = op("update", table);
    object.insert("where".into(), Value::Array(where_));
    object.insert("row".into(), row);
    Value::Object(object)
}

/// Applies `mutations` (see [`mutation`]) to every matching row. This is how references are
/// added or removed without a read-modify-write race, e.g. a port added to `Bridge.ports`.
pub fn mutate(table: &str, where_: Vec<Value>, mutations: Vec<Value>) -> Value {
    let mut object = op("mutate", table);
    object.insert("where".into(), Value::Array(where_));
    object.insert("mutations".into(), Value::Array(mutations));
    Value::Object(object)
}

/// Deletes the matching rows. Rows still referenced cannot be deleted (the transaction fails
/// with a referential integrity violation); in OVS, unreferenced Bridge/Port/Interface rows are
/// garbage-collected, so they are removed by dropping the reference instead.
pub fn delete(table: &str, where_: Vec<Value>) -> Value {
    let mut object = op("delete", table);
    object.insert("where".into(), Value::Array(where_));
    Value::Object(object)
}

/// The comparison of a [`wait`] operation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Until {
    /// Wait until the selected columns of the matching rows equal the given rows.
    Equal,
    /// Wait until they differ from the given rows, e.g. from `[]` to wait for a match to exist.
    NotEqual,
}

impl Until {
    /// The wire spelling of the comparison.
    fn as_str(self) -> &'static str {
        match self {
            Until::Equal => "==",
            Until::NotEqual => "!=",
        }
    }
}

/// Waits on the server until the `columns` of the rows matching `where_` compare `until` to
/// `rows`, or fails the transaction with error "timed out" after `timeout_ms` milliseconds
/// (`None`: wait forever, which only makes sense with a client timeout behind it).
///
/// Used to wait for ovs-vswitchd to apply a configuration: `where_` =
/// `[cond("cur_cfg", ">=", n)]`, `columns` = `["cur_cfg"]`, [`Until::NotEqual`], `rows` = `[]`.
/// A wait that can never be satisfied (ovs-vswitchd down) therefore ends with a
/// [`super::TransactError`] whose error is "timed out" rather than hanging.
pub fn wait(
    table: &str,
    where_: Vec<Value>,
    columns: &[&str],
    until: Until,
    rows: Vec<Value>,
    timeout_ms: Option<u64>,
) -> Value {
    let mut object = op("wait", table);
    object.insert("where".into(), Value::Array(where_));
    object.insert("columns".into(), columns_value(columns));
    object.insert("until".into(), until.as_str().into());
    object.insert("rows".into(), Value::Array(rows));
    if let Some(timeout) = timeout_ms {
        object.insert("timeout".into(), timeout.into());
    }
    Value::Object(object)
}

/// A comment the server writes to its log with the transaction, so a change in the database
/// history can be traced back to the tool that made it.
pub fn comment(text: &str) -> Value {
    let mut object = Map::new();
    object.insert("op".into(), "comment".into());
    object.insert("comment".into(), text.into());
    Value::Object(object)
}

/// A list of column names as JSON.
fn columns_value(columns: &[&str]) -> Value {
    Value::Array(columns.iter().map(|c| Value::from(*c)).collect())
}

/// The name of an operation (`"insert"`, `"wait"`...), for error messages; `"?"` when the
/// operation has none.
pub(crate) fn op_name(op: &Value) -> &str {
    op.get("op").and_then(Value::as_str).unwrap_or("?")
}

/// The server-side timeout of a `wait` operation, if `op` is one and has a timeout: the client
/// has to wait at least that long for the reply.
pub(crate) fn wait_timeout_ms(op: &Value) -> Option<u64> {
    if op_name(op) != "wait" {
        return None;
    }
    op.get("timeout").and_then(Value::as_u64)
}

#[cfg(test)]
mod tests {
    use super::super::value::{map, named_uuid, set, uuid};
    use super::*;
    use serde_json::json;

    #[test]
    fn builds_operations() {
        assert_eq!(
            insert(
                "Port",
                Some("p0"),
                json!({"name": "p0", "interfaces": named_uuid("i0").unwrap()})
            )
            .unwrap(),
            json!({"op": "insert", "table": "Port", "uuid-name": "p0",
                   "row": {"name": "p0", "interfaces": ["named-uuid", "i0"]}})
        );
        assert_eq!(
            insert("Bridge", None, json!({})).unwrap(),
            json!({"op": "insert", "table": "Bridge", "row": {}})
        );
        assert!(insert("Port", Some("p-0"), json!({})).is_err());
        assert_eq!(
            select(
                "Bridge",
                vec![cond("name", "==", "br0")],
                Some(&["_uuid", "ports"])
            ),
            json!({"op": "select", "table": "Bridge", "where": [["name", "==", "br0"]],
                   "columns": ["_uuid", "ports"]})
        );
        assert_eq!(
            select("Bridge", vec![], None),
            json!({"op": "select", "table": "Bridge", "where": []})
        );
        assert_eq!(
            update(
                "Port",
                vec![cond("_uuid", "==", uuid("u"))],
                json!({"protected": true})
            ),
            json!({"op": "update", "table": "Port", "where": [["_uuid", "==", ["uuid", "u"]]],
                   "row": {"protected": true}})
        );
        assert_eq!(
            mutate(
                "Bridge",
                vec![cond("external_ids", "includes", map([("k", "v")]))],
                vec![mutation("ports", "delete", set(vec![uuid("u")]))]
            ),
            json!({"op": "mutate", "table": "Bridge",
                   "where": [["external_ids", "includes", ["map", [["k", "v"]]]]],
                   "mutations": [["ports", "delete", ["set", [["uuid", "u"]]]]]})
        );
        assert_eq!(
            delete("Port", vec![]),
            json!({"op": "delete", "table": "Port", "where": []})
        );
        assert_eq!(
            wait(
                "Open_vSwitch",
                vec![cond("cur_cfg", ">=", 3)],
                &["cur_cfg"],
                Until::NotEqual,
                vec![],
                Some(5000)
            ),
            json!({"op": "wait", "table": "Open_vSwitch", "where": [["cur_cfg", ">=", 3]],
                   "columns": ["cur_cfg"], "until": "!=", "rows": [], "timeout": 5000})
        );
        assert_eq!(
            wait("T", vec![], &[], Until::Equal, vec![json!({})], None),
            json!({"op": "wait", "table": "T", "where": [], "columns": [], "until": "==",
                   "rows": [{}]})
        );
        assert_eq!(
            comment("geneve-ovs: create"),
            json!({"op": "comment", "comment": "geneve-ovs: create"})
        );
    }

    #[test]
    fn reads_operation_names_and_wait_timeouts() {
        let w = wait("T", vec![], &[], Until::Equal, vec![], Some(250));
        assert_eq!(op_name(&w), "wait");
        assert_eq!(wait_timeout_ms(&w), Some(250));
        assert_eq!(
            wait_timeout_ms(&wait("T", vec![], &[], Until::Equal, vec![], None)),
            None
        );
        assert_eq!(wait_timeout_ms(&comment("x")), None);
        assert_eq!(op_name(&json!({})), "?");
        assert_eq!(op_name(&json!(3)), "?");
    }
}
