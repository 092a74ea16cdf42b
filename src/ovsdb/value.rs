//! The OVSDB JSON encoding of values (RFC 7047 section 5.1), both ways.
//!
//! OVSDB does not send plain JSON arrays and objects for its compound types: a UUID is
//! `["uuid", "..."]`, a set is `["set", [..]]` (but a one-element set may be sent as the bare
//! element), a map is `["map", [[k, v], ..]]`. Building these by hand with `json!` is easy to get
//! subtly wrong, and reading them back needs the "bare atom is a one-element set" rule every
//! time, so both directions live here. Decoders return errors instead of panicking because the
//! values come from the server.

use std::collections::BTreeMap;

use anyhow::{bail, Context, Result};
use serde_json::Value;

/// A reference to an existing row by its UUID, as OVSDB expects it in a row or condition.
///
/// The string is not checked: UUIDs normally come from the server itself, and the server
/// rejects a malformed one with a clear error.
pub fn uuid(uuid: &str) -> Value {
    Value::Array(vec!["uuid".into(), uuid.into()])
}

/// A reference to a row inserted earlier in the same transaction under `uuid-name` `name`.
///
/// The name is validated (`[A-Za-z_][A-Za-z0-9_]*`) because the server's answer to a bad one is
/// a bare "Type mismatch" that does not point at the name (a hyphen is the usual culprit).
pub fn named_uuid(name: &str) -> Result<Value> {
    check_uuid_name(name)?;
    Ok(Value::Array(vec!["named-uuid".into(), name.into()]))
}

/// Fails unless `name` can be used as a `uuid-name` (`[A-Za-z_][A-Za-z0-9_]*`, RFC 7047 `<id>`).
pub fn check_uuid_name(name: &str) -> Result<()> {
    let mut chars = name.chars();
    let valid = match chars.next() {
        Some(first) => {
            (first.is_ascii_alphabetic() || first == '_')
                && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        }
        None => false,
    };
    if !valid {
        bail!("invalid OVSDB uuid-name {name:?}: it must match [A-Za-z_][A-Za-z0-9_]*");
    }
    Ok(())
}

/// An OVSDB set of the given atoms (`["set", [..]]`); an empty set clears an optional column.
pub fn set(elements: Vec<Value>) -> Value {
    Value::Array(vec!["set".into(), Value::Array(elements)])
}

/// An OVSDB map (`["map", [[k, v], ..]]`) from key/value pairs, e.g. for `external_ids` or
/// `options`. Keys and values may be anything that converts into an atom (strings, integers,
/// UUID values).
pub fn map<I, K, V>(entries: I) -> Value
where
    I: IntoIterator<Item = (K, V)>,
    K: Into<Value>,
    V: Into<Value>,
{
    let pairs = entries
        .into_iter()
        .map(|(k, v)| Value::Array(vec![k.into(), v.into()]))
        .collect();
    Value::Array(vec!["map".into(), Value::Array(pairs)])
}

/// If `value` is a tagged compound `[tag, payload]` with one of the OVSDB tags, returns both.
fn tagged(value: &Value) -> Option<(&str, &Value)> {
    match value.as_array().map(Vec::as_slice) {
        Some([Value::String(tag), payload]) => match tag.as_str() {
            "set" | "map" | "uuid" | "named-uuid" => Some((tag.as_str(), payload)),
            _ => None,
        },
        _ => None,
    }
}

/// The elements of a set column. The server sends a one-element set as the bare atom, so a
/// bare atom (string, number, boolean or UUID) is returned as a one-element set.
pub fn set_elements(value: &Value) -> Result<Vec<Value>> {
    match tagged(value) {
        Some(("set", Value::Array(elements))) => Ok(elements.clone()),
        Some(("set", _)) => bail!("malformed OVSDB set {value}: the elements are not an array"),
        Some(("map", _)) => bail!("expected an OVSDB set or atom, got a map: {value}"),
        Some(_) => Ok(vec![value.clone()]),
        None => match value {
            Value::String(_) | Value::Number(_) | Value::Bool(_) => Ok(vec![value.clone()]),
            _ => bail!("expected an OVSDB set or atom, got {value}"),
        },
    }
}

/// The value of an optional column (a set of at most one element, like `Interface.ofport`):
/// `None` when the set is empty.
pub fn optional(value: &Value) -> Result<Option<Value>> {
    let mut elements = set_elements(value)?;
    match elements.len() {
        0 => Ok(None),
        1 => Ok(elements.pop()),
        n => bail!("expected an OVSDB set of at most one element, got {n}: {value}"),
    }
}

/// The key/value pairs of a map column, atoms left as they are (e.g. `Interface.statistics`,
/// whose values are integers).
pub fn map_entries(value: &Value) -> Result<Vec<(Value, Value)>> {
    let pairs = match tagged(value) {
        Some(("map", Value::Array(pairs))) => pairs,
        _ => bail!("expected an OVSDB map, got {value}"),
    };
    pairs
        .iter()
        .map(|pair| match pair.as_array().map(Vec::as_slice) {
            Some([k, v]) => Ok((k.clone(), v.clone())),
            _ => bail!("malformed OVSDB map entry {pair} (expected [key, value])"),
        })
        .collect()
}

/// A string-to-string map column (`external_ids`, `options`, `other_config`, `bfd_status`...).
pub fn string_map(value: &Value) -> Result<BTreeMap<String, String>> {
    map_entries(value)?
        .into_iter()
        .map(|(k, v)| match (k, v) {
            (Value::String(k), Value::String(v)) => Ok((k, v)),
            (k, v) => bail!("OVSDB map entry [{k}, {v}] is not string to string"),
        })
        .collect()
}

/// The UUID string of a `["uuid", "..."]` value (a row's `_uuid`, a reference column, the result
/// of an insert).
pub fn uuid_str(value: &Value) -> Result<&str> {
    match tagged(value) {
        Some(("uuid", Value::String(uuid))) => Ok(uuid),
        _ => bail!("expected an OVSDB UUID [\"uuid\", \"...\"], got {value}"),
    }
}

/// An integer atom (OVSDB integers are 64-bit signed).
pub fn integer(value: &Value) -> Result<i64> {
    value
        .as_i64()
        .with_context(|| format!("expected an OVSDB integer, got {value}"))
}

/// A string atom.
pub fn string(value: &Value) -> Result<&str> {
    value
        .as_str()
        .with_context(|| format!("expected an OVSDB string, got {value}"))
}

/// The rows of a `select` result (`{"rows": [..]}`), so callers need not index into the JSON.
pub fn rows(result: &Value) -> Result<&[Value]> {
    result
        .get("rows")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .with_context(|| format!("expected a select result {{\"rows\": [..]}}, got {result}"))
}

/// The UUID of the row created by an `insert` (`{"uuid": ["uuid", ".."]}`).
pub fn inserted_uuid(result: &Value) -> Result<&str> {
    let value = result
        .get("uuid")
        .with_context(|| format!("expected an insert result {{\"uuid\": ..}}, got {result}"))?;
    uuid_str(value)
}

/// The number of rows an `update`, `mutate` or `delete` matched (`{"count": N}`).
pub fn count(result: &Value) -> Result<u64> {
    result
        .get("count")
        .and_then(Value::as_u64)
        .with_context(|| format!("expected a result {{\"count\": N}}, got {result}"))
}

/// One column of a row, with an error naming the column when the server did not send it
/// (e.g. because it was left out of a `select`'s `columns`).
pub fn column<'a>(row: &'a Value, name: &str) -> Result<&'a Value> {
    row.get(name)
        .with_context(|| format!("OVSDB row has no column {name:?}: {row}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn encodes_compound_values() {
        assert_eq!(uuid("abc"), json!(["uuid", "abc"]));
        assert_eq!(
            named_uuid("port_1").unwrap(),
            json!(["named-uuid", "port_1"])
        );
        assert_eq!(named_uuid("_x").unwrap(), json!(["named-uuid", "_x"]));
        assert_eq!(set(vec![]), json!(["set", []]));
        assert_eq!(
            set(vec![uuid("a"), uuid("b")]),
            json!(["set", [["uuid", "a"], ["uuid", "b"]]])
        );
        assert_eq!(
            map([("remote_ip", "10.99.0.2"), ("key", "5001")]),
            json!(["map", [["remote_ip", "10.99.0.2"], ["key", "5001"]]])
        );
        assert_eq!(map([("a", 1)]), json!(["map", [["a", 1]]]));
        let empty: [(&str, &str); 0] = [];
        assert_eq!(map(empty), json!(["map", []]));
    }

    #[test]
    fn rejects_bad_uuid_names() {
        for bad in ["", "port-1", "1port", "a b", "é", "x.y"] {
            let err = named_uuid(bad).unwrap_err().to_string();
            assert!(err.contains("[A-Za-z_][A-Za-z0-9_]*"), "{bad}: {err}");
        }
    }

    #[test]
    fn decodes_sets() {
        assert_eq!(
            set_elements(&json!(["set", []])).unwrap(),
            Vec::<Value>::new()
        );
        assert_eq!(
            set_elements(&json!(["set", [1, 2]])).unwrap(),
            vec![json!(1), json!(2)]
        );
        // The server sends a one-element set as the bare atom.
        assert_eq!(set_elements(&json!("x")).unwrap(), vec![json!("x")]);
        assert_eq!(set_elements(&json!(7)).unwrap(), vec![json!(7)]);
        assert_eq!(set_elements(&json!(true)).unwrap(), vec![json!(true)]);
        assert_eq!(
            set_elements(&json!(["uuid", "u1"])).unwrap(),
            vec![json!(["uuid", "u1"])]
        );
        assert!(set_elements(&json!(["map", []])).is_err());
        assert!(set_elements(&json!(["set", "x"])).is_err());
        assert!(set_elements(&json!({"a": 1})).is_err());
        assert!(set_elements(&json!(null)).is_err());
        assert!(set_elements(&json!([1, 2])).is_err());
    }

    #[test]
    fn decodes_optional() {
        assert_eq!(optional(&json!(["set", []])).unwrap(), None);
        assert_eq!(optional(&json!(5)).unwrap(), Some(json!(5)));
        assert_eq!(optional(&json!(["set", [5]])).unwrap(), Some(json!(5)));
        assert!(optional(&json!(["set", [1, 2]])).is_err());
    }

    #[test]
    fn decodes_maps() {
        let value = json!(["map", [["b", "2"], ["a", "1"]]]);
        let decoded = string_map(&value).unwrap();
        assert_eq!(
            decoded.into_iter().collect::<Vec<_>>(),
            vec![("a".into(), "1".into()), ("b".into(), "2".into())]
        );
        assert!(string_map(&json!(["map", []])).unwrap().is_empty());
        assert!(string_map(&json!(["map", [["a", 1]]])).is_err());
        assert_eq!(
            map_entries(&json!(["map", [["rx_packets", 3]]])).unwrap(),
            vec![(json!("rx_packets"), json!(3))]
        );
        for bad in [
            json!(["set", []]),
            json!(["map", [["a"]]]),
            json!(["map", "x"]),
            json!(["map", [["a", "b", "c"]]]),
            json!({}),
        ] {
            assert!(map_entries(&bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn decodes_atoms_and_results() {
        assert_eq!(uuid_str(&json!(["uuid", "u1"])).unwrap(), "u1");
        assert!(uuid_str(&json!(["named-uuid", "u1"])).is_err());
        assert!(uuid_str(&json!("u1")).is_err());
        assert!(uuid_str(&json!(["uuid", 1])).is_err());
        assert_eq!(integer(&json!(-1)).unwrap(), -1);
        assert!(integer(&json!(1.5)).is_err());
        assert!(integer(&json!("1")).is_err());
        assert_eq!(string(&json!("s")).unwrap(), "s");
        assert!(string(&json!(1)).is_err());

        assert_eq!(rows(&json!({"rows": [{"a": 1}]})).unwrap().len(), 1);
        assert!(rows(&json!({"count": 1})).is_err());
        assert_eq!(
            inserted_uuid(&json!({"uuid": ["uuid", "u2"]})).unwrap(),
            "u2"
        );
        assert!(inserted_uuid(&json!({})).is_err());
        assert_eq!(count(&json!({"count": 2})).unwrap(), 2);
        assert!(count(&json!({"count": -1})).is_err());
        assert_eq!(column(&json!({"a": 1}), "a").unwrap(), &json!(1));
        assert!(column(&json!({"a": 1}), "b")
            .unwrap_err()
            .to_string()
            .contains("\"b\""));
    }
}
