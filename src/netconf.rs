//! podman's saved network configurations (`/etc/containers/networks/*.json`): which geneve-ovs
//! networks still exist on this host.
//!
//! podman never tells the plugin that a network was removed (`podman network rm` does not
//! call it), so the files podman keeps are the only record of which networks are alive. Each
//! file is the network as `create` returned it, named `<network name>.json`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde_json::Value;

/// podman's default network configuration directory for rootful podman.
pub const DEFAULT_DIR: &str = "/etc/containers/networks";

/// The environment variable that overrides [`DEFAULT_DIR`] (the `--network-config-dir` flag
/// overrides both).
pub const DIR_ENV: &str = "GENEVE_OVS_NETWORK_CONFIG_DIR";

/// The driver name podman records for the plugin's networks.
pub const DRIVER: &str = "geneve-ovs";

/// One geneve-ovs network podman has saved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SavedNetwork {
    pub name: String,
    pub id: String,
    pub network_interface: Option<String>,
    pub options: BTreeMap<String, String>,
    pub file: PathBuf,
}

/// What the configuration directory says.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SavedNetworks {
    pub dir: PathBuf,
    /// The geneve-ovs networks, by file name order.
    pub networks: Vec<SavedNetwork>,
    /// Files that could not be read or parsed, with the reason. Their names (the file name
    /// without `.json`) may be networks of ours: nothing named so counts as removed.
    pub unreadable: Vec<(PathBuf, String)>,
}

impl SavedNetworks {
    /// The saved geneve-ovs network named `name`.
    pub fn named(&self, name: &str) -> Option<&SavedNetwork> {
        self.networks.iter().find(|n| n.name == name)
    }

    /// Whether an unreadable file might hold the network `name`.
    pub fn maybe_unreadable(&self, name: &str) -> bool {
        self.unreadable
            .iter()
            .any(|(file, _)| file.file_stem().and_then(|s| s.to_str()) == Some(name))
    }
}

/// The directory to read: `flag`, else `$GENEVE_OVS_NETWORK_CONFIG_DIR`, else [`DEFAULT_DIR`].
pub fn dir_from(flag: Option<&Path>) -> PathBuf {
    if let Some(dir) = flag {
        return dir.to_path_buf();
    }
    std::env::var_os(DIR_ENV)
        .filter(|d| !d.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(DEFAULT_DIR))
}

/// Reads every `*.json` file of `dir`. A missing or unreadable directory is an error: it says
/// nothing about which networks exist.
pub fn load(dir: &Path) -> Result<SavedNetworks> {
    let entries = std::fs::read_dir(dir)
        .with_context(|| format!("cannot read podman's network directory {}", dir.display()))?;
    let mut files: Vec<PathBuf> = entries
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| p.extension().and_then(|e| e.to_str()) == Some("json"))
        .collect();
    files.sort();
    let mut saved = SavedNetworks {
        dir: dir.to_path_buf(),
        ..SavedNetworks::default()
    };
    for file in files {
        match read_one(&file) {
            Ok(Some(network)) => saved.networks.push(network),
            Ok(None) => {}
            Err(err) => saved.unreadable.push((file, format!("{err:#}"))),
        }
    }
    Ok(saved)
}

/// One file: `Some` for a geneve-ovs network, `None` for another driver's.
fn read_one(file: &Path) -> Result<Option<SavedNetwork>> {
    let text = std::fs::read_to_string(file)?;
    parse(&text).map(|n| {
        n.map(|mut n| {
            n.file = file.to_path_buf();
            n
        })
    })
}

/// Parses one saved network; `None` when it belongs to another driver.
pub fn parse(text: &str) -> Result<Option<SavedNetwork>> {
    let doc: Value = serde_json::from_str(text).context("not JSON")?;
    let field = |name: &str| {
        doc.get(name)
            .and_then(Value::as_str)
            .with_context(|| format!("no string {name:?}"))
    };
    if field("driver")? != DRIVER {
        return Ok(None);
    }
    let options = doc
        .get("options")
        .and_then(Value::as_object)
        .map(|o| {
            o.iter()
                .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string())))
                .collect()
        })
        .unwrap_or_default();
    Ok(Some(SavedNetwork {
        name: field("name")?.to_string(),
        id: field("id")?.to_string(),
        network_interface: doc
            .get("network_interface")
            .and_then(Value::as_str)
            .map(str::to_string),
        options,
        file: PathBuf::new(),
    }))
}

/// Sets option `name` to `value` in the saved network `file`, atomically: the new document is
/// written to a temporary file beside it (same permissions, not named `*.json` so that no reader
/// takes it for a network), flushed to disk, and renamed over the old one, so that podman and
/// `setup` see either the old network or the new one, never half a file. Every other field is
/// kept as it was (keys may come out in another order; podman does not mind).
pub fn set_option(file: &Path, name: &str, value: &str) -> Result<()> {
    use std::io::Write;

    let text = std::fs::read_to_string(file)
        .with_context(|| format!("cannot read podman's saved network {}", file.display()))?;
    let mut doc: Value =
        serde_json::from_str(&text).with_context(|| format!("{} is not JSON", file.display()))?;
    if doc.get("driver").and_then(Value::as_str) != Some(DRIVER) {
        anyhow::bail!("{} is not a geneve-ovs network", file.display());
    }
    let object = doc
        .as_object_mut()
        .with_context(|| format!("{} is not a JSON object", file.display()))?;
    let options = object
        .entry("options")
        .or_insert_with(|| Value::Object(Default::default()));
    if options.is_null() {
        *options = Value::Object(Default::default());
    }
    options
        .as_object_mut()
        .with_context(|| format!("the options of {} are not a JSON object", file.display()))?
        .insert(name.to_string(), Value::String(value.to_string()));
    let new_text = serde_json::to_string_pretty(&doc)?;

    let dir = file.parent().unwrap_or_else(|| Path::new("."));
    let base = file
        .file_name()
        .and_then(|n| n.to_str())
        .with_context(|| format!("{} has no file name", file.display()))?;
    let temp = dir.join(format!(".{base}.geneve-ovs-{}", std::process::id()));
    let permissions = std::fs::metadata(file)?.permissions();
    let written = (|| -> Result<()> {
        let mut out = std::fs::File::create(&temp)?;
        out.set_permissions(permissions)?;
        out.write_all(new_text.as_bytes())?;
        out.write_all(b"\n")?;
        out.sync_all()?;
        std::fs::rename(&temp, file)?;
        // The rename itself is on disk once the directory is.
        std::fs::File::open(dir)?.sync_all()?;
        Ok(())
    })();
    if written.is_err() {
        let _ = std::fs::remove_file(&temp);
    }
    written.with_context(|| format!("cannot rewrite podman's saved network {}", file.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_option_rewrites_one_option_and_keeps_the_rest() {
        let dir = std::env::temp_dir().join(format!("geneve-ovs-setopt-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("net1.json");
        let before = r#"{"name":"net1","id":"aa","driver":"geneve-ovs","created":"2026-01-01T00:00:00Z",
            "subnets":[{"subnet":"192.168.120.0/24","gateway":"192.168.120.1",
            "lease_range":{"start_ip":"192.168.120.2","end_ip":"192.168.120.127"}}],
            "options":{"peers":"10.99.0.2","vni":"5001"},"labels":{"a":"b"},"future_field":[1,2]}"#;
        std::fs::write(&file, before).unwrap();
        set_option(&file, "peers", "10.99.0.2,10.99.0.3").unwrap();
        let after: Value = serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
        let mut want: Value = serde_json::from_str(before).unwrap();
        want["options"]["peers"] = Value::String("10.99.0.2,10.99.0.3".into());
        assert_eq!(after, want);
        // Nothing but the network is left in the directory.
        let names: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["net1.json"]);
        std::fs::write(
            dir.join("other.json"),
            r#"{"name":"o","id":"b","driver":"bridge"}"#,
        )
        .unwrap();
        assert!(set_option(&dir.join("other.json"), "peers", "x").is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn reads_geneve_networks_and_names_bad_files() {
        let dir = std::env::temp_dir().join(format!("geneve-ovs-netconf-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(
            dir.join("net1.json"),
            r#"{"name":"net1","id":"aa","driver":"geneve-ovs","network_interface":"gnv5",
                "options":{"mtu":"1450","peers":"10.99.0.2"},"internal":true}"#,
        )
        .unwrap();
        std::fs::write(
            dir.join("podman.json"),
            r#"{"name":"podman","id":"bb","driver":"bridge"}"#,
        )
        .unwrap();
        std::fs::write(dir.join("broken.json"), "{").unwrap();
        std::fs::write(dir.join("notes.txt"), "ignored").unwrap();
        let saved = load(&dir).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(saved.networks.len(), 1);
        let n = saved.named("net1").unwrap();
        assert_eq!(n.id, "aa");
        assert_eq!(n.network_interface.as_deref(), Some("gnv5"));
        assert_eq!(n.options["mtu"], "1450");
        assert!(saved.maybe_unreadable("broken"));
        assert!(!saved.maybe_unreadable("net1"));
    }

    #[test]
    fn a_missing_directory_is_an_error() {
        let err = load(Path::new("/nonexistent/networks")).unwrap_err();
        assert!(format!("{err:#}").contains("/nonexistent/networks"));
    }

    #[test]
    fn other_drivers_are_skipped_and_odd_shapes_refused() {
        assert_eq!(parse(r#"{"driver":"macvlan"}"#).unwrap(), None);
        assert!(parse(r#"{"driver":"geneve-ovs","name":"x"}"#).is_err());
        assert!(parse("[]").is_err());
        let n = parse(r#"{"driver":"geneve-ovs","name":"x","id":"y","options":null}"#)
            .unwrap()
            .unwrap();
        assert!(n.options.is_empty());
    }
}
