//! `geneve-ovs info`: the plugin's version and the plugin API version it speaks.

use anyhow::Result;

use crate::types::{PluginInfo, API_VERSION};

pub fn run() -> Result<String> {
    let info = PluginInfo {
        version: env!("CARGO_PKG_VERSION").to_string(),
        api_version: API_VERSION.to_string(),
    };
    Ok(serde_json::to_string(&info)?)
}
