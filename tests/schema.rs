//! The JSON Schema in `plugin-schema/` and the option parser must describe the same options:
//! the same names, kinds, defaults and bounds. Bounds are also probed on the parser itself.

use std::collections::BTreeMap;

use geneve_ovs::options::{self, Kind, OptionDefault, OPTIONS};
use serde_json::Value;

fn schema() -> Value {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/plugin-schema/options.schema.json"
    );
    let text = std::fs::read_to_string(path).expect("schema file is readable");
    serde_json::from_str(&text).expect("schema is JSON")
}

fn accepts(name: &str, value: &str) -> bool {
    let map: BTreeMap<String, String> = [(name.to_string(), value.to_string())].into();
    options::parse(&map).is_ok()
}

#[test]
fn same_option_names() {
    let schema = schema();
    assert_eq!(schema["additionalProperties"], Value::Bool(false));
    let props = schema["properties"].as_object().expect("properties");
    let mut in_schema: Vec<&str> = props.keys().map(String::as_str).collect();
    let mut in_parser: Vec<&str> = OPTIONS.iter().map(|o| o.name).collect();
    in_schema.sort();
    in_parser.sort();
    assert_eq!(in_schema, in_parser);
}

#[test]
fn same_kinds_bounds_and_defaults() {
    let schema = schema();
    for spec in OPTIONS {
        let prop = &schema["properties"][spec.name];
        assert_eq!(
            prop["type"], "string",
            "{}: podman passes strings",
            spec.name
        );
        match spec.kind {
            Kind::Integer { min, max } | Kind::IntegerOrAuto { min, max } => {
                assert_eq!(prop["x-integer"]["minimum"], min, "{} minimum", spec.name);
                assert_eq!(prop["x-integer"]["maximum"], max, "{} maximum", spec.name);
                if matches!(spec.kind, Kind::IntegerOrAuto { .. }) {
                    assert_eq!(prop["pattern"], "^(auto|[0-9]+)$", "{}", spec.name);
                    assert!(accepts(spec.name, "auto"), "{} accepts auto", spec.name);
                    assert!(!accepts(spec.name, "Auto"), "{} refuses Auto", spec.name);
                } else {
                    assert_eq!(prop["pattern"], "^[0-9]+$", "{}", spec.name);
                }
                // Probe the parser at and beyond the schema's bounds.
                let lo = prop["x-integer"]["minimum"].as_u64().unwrap();
                let hi = prop["x-integer"]["maximum"].as_u64().unwrap();
                assert!(
                    accepts(spec.name, &lo.to_string()),
                    "{} accepts {lo}",
                    spec.name
                );
                assert!(
                    accepts(spec.name, &hi.to_string()),
                    "{} accepts {hi}",
                    spec.name
                );
                assert!(
                    !accepts(spec.name, &(hi + 1).to_string()),
                    "{} refuses {}",
                    spec.name,
                    hi + 1
                );
                if lo > 0 {
                    assert!(
                        !accepts(spec.name, &(lo - 1).to_string()),
                        "{} refuses {}",
                        spec.name,
                        lo - 1
                    );
                }
                assert!(!accepts(spec.name, "12a"), "{} refuses 12a", spec.name);
            }
            Kind::Enum(words) => {
                let listed: Vec<&str> = prop["enum"]
                    .as_array()
                    .expect("enum")
                    .iter()
                    .map(|v| v.as_str().expect("enum of strings"))
                    .collect();
                assert_eq!(listed, words, "{} values", spec.name);
                for w in words {
                    assert!(accepts(spec.name, w), "{} accepts {w}", spec.name);
                }
                assert!(!accepts(spec.name, "no-such-value"), "{}", spec.name);
            }
            Kind::Address => {
                assert_eq!(prop["x-format"], "ip-address", "{}", spec.name);
                assert!(accepts(spec.name, "10.99.0.1") && accepts(spec.name, "fd99::1"));
                assert!(!accepts(spec.name, "10.99.0"), "{}", spec.name);
            }
            Kind::AddressList => {
                assert_eq!(
                    prop["x-format"], "comma-separated-ip-addresses",
                    "{}",
                    spec.name
                );
                assert!(accepts(spec.name, "10.99.0.1,fd99::2") && accepts(spec.name, ""));
                assert!(!accepts(spec.name, "10.99.0.1,x"), "{}", spec.name);
            }
            Kind::Path => {
                assert_eq!(prop["x-format"], "absolute-path", "{}", spec.name);
                assert!(
                    accepts(spec.name, "/etc/geneve-ovs/net1.psk"),
                    "{}",
                    spec.name
                );
                assert!(!accepts(spec.name, "net1.psk"), "{}", spec.name);
            }
            Kind::RemoteList => {
                assert_eq!(
                    prop["x-format"], "comma-separated-ovsdb-remotes",
                    "{}",
                    spec.name
                );
                assert!(accepts(
                    spec.name,
                    "10.99.0.1,tcp:[fd99::2]:6641,unix:/run/nb.sock"
                ));
                assert!(!accepts(spec.name, "10.99.0.1,x"), "{}", spec.name);
                assert!(!accepts(spec.name, ""), "{}", spec.name);
            }
            Kind::Bool => {
                assert_eq!(prop["x-boolean"], true, "{}", spec.name);
                assert_eq!(
                    prop["enum"],
                    serde_json::json!(["true", "false"]),
                    "{} values",
                    spec.name
                );
                assert!(accepts(spec.name, "true") && accepts(spec.name, "false"));
                for bad in ["yes", "1", "TRUE", "", " true"] {
                    assert!(!accepts(spec.name, bad), "{} refuses {bad:?}", spec.name);
                }
            }
        }
        match spec.default {
            OptionDefault::Value(v) => {
                assert_eq!(prop["default"], v, "{} default", spec.name);
                assert!(prop.get("x-derived").is_none(), "{}", spec.name);
                assert!(accepts(spec.name, v), "{} accepts its default", spec.name);
            }
            OptionDefault::Derived(how) => {
                assert!(prop.get("default").is_none(), "{}", spec.name);
                let text = prop["x-derived"].as_str().expect("x-derived");
                // The schema may say it in more words, but must start with the parser's rule.
                let norm = |s: &str| s.split_whitespace().collect::<Vec<_>>().join(" ");
                let first_words: String =
                    norm(how).split(' ').take(3).collect::<Vec<_>>().join(" ");
                assert!(
                    norm(text).starts_with(&first_words),
                    "{}: {text:?} vs {how:?}",
                    spec.name
                );
            }
            OptionDefault::None => {
                assert!(
                    prop.get("default").is_none() && prop.get("x-derived").is_none(),
                    "{}",
                    spec.name
                );
            }
        }
    }
}
