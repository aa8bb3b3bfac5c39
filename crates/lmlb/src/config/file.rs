//! The optional TOML configuration file.
//!
//! Every table rejects unknown fields, so a typo stops start-up with a message naming the field.
//!
//! ```toml
//! port = 4321
//! bind = "127.0.0.1"
//! refresh_interval = "5s"
//! request_timeout = "300s"
//! max_payload_size = "50mb"
//! unknown_model = "reject"
//! workers = 2
//! api_keys = ["sk-local-1"]
//!
//! [[upstream]]
//! name = "desk"
//! url = "http://127.0.0.1:1234"
//! api_token = "sk-lm-abc:def"
//!
//! [queue]
//! max_size = 512
//! timeout = "300s"
//!
//! [aliases]
//! "gpt-4o-mini" = "qwen2.5-7b-instruct"
//!
//! [models."qwen2.5-7b-instruct"]
//! slots = 2
//! max_queue = 64
//! queue_timeout = "60s"
//! ```

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::Path;

use serde::Deserialize;

use super::cli::UnknownModel;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    pub port: Option<u16>,
    pub bind: Option<IpAddr>,
    pub refresh_interval: Option<DurationValue>,
    pub request_timeout: Option<DurationValue>,
    pub max_payload_size: Option<SizeValue>,
    pub log_level: Option<String>,
    pub request_log: Option<bool>,
    pub cors: Option<bool>,
    pub unknown_model: Option<UnknownModel>,
    pub shutdown_timeout: Option<DurationValue>,
    pub workers: Option<usize>,
    #[serde(default)]
    pub api_keys: Vec<String>,
    #[serde(default, rename = "upstream")]
    pub upstreams: Vec<FileUpstream>,
    #[serde(default)]
    pub queue: FileQueue,
    #[serde(default)]
    pub aliases: BTreeMap<String, String>,
    #[serde(default)]
    pub models: BTreeMap<String, FileModel>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileUpstream {
    pub name: Option<String>,
    pub url: String,
    pub api_token: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileQueue {
    pub max_size: Option<usize>,
    pub timeout: Option<DurationValue>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileModel {
    pub slots: Option<u32>,
    pub max_queue: Option<usize>,
    pub queue_timeout: Option<DurationValue>,
}

/// A duration written as milliseconds (`30000`) or as a string with a unit (`"30s"`).
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum DurationValue {
    Millis(u64),
    Text(String),
}

impl DurationValue {
    pub fn text(&self) -> String {
        match self {
            DurationValue::Millis(ms) => ms.to_string(),
            DurationValue::Text(text) => text.clone(),
        }
    }
}

/// A size written as bytes (`1048576`) or as a string with a unit (`"50mb"`).
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum SizeValue {
    Bytes(u64),
    Text(String),
}

impl SizeValue {
    pub fn text(&self) -> String {
        match self {
            SizeValue::Bytes(bytes) => bytes.to_string(),
            SizeValue::Text(text) => text.clone(),
        }
    }
}

/// Reads and parses a config file; the error names the file and the offending field.
pub fn read(path: &Path) -> Result<FileConfig, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|error| format!("cannot read config file {}: {error}", path.display()))?;
    parse(&text).map_err(|error| format!("invalid config file {}: {error}", path.display()))
}

pub fn parse(text: &str) -> Result<FileConfig, String> {
    toml::from_str(text).map_err(|error| error.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn full_example_parses() {
        let config = parse(
            r#"
            port = 8080
            refresh_interval = "2s"
            request_timeout = 1000
            [[upstream]]
            name = "desk"
            url = "http://127.0.0.1:1234"
            api_token = "secret"
            [queue]
            max_size = 3
            [aliases]
            fast = "qwen"
            [models.qwen]
            slots = 4
            "#,
        )
        .unwrap();
        assert_eq!(config.port, Some(8080));
        assert_eq!(config.upstreams.len(), 1);
        assert_eq!(config.upstreams[0].api_token.as_deref(), Some("secret"));
        assert_eq!(config.queue.max_size, Some(3));
        assert_eq!(config.aliases["fast"], "qwen");
        assert_eq!(config.models["qwen"].slots, Some(4));
        assert_eq!(config.request_timeout.unwrap().text(), "1000");
    }

    #[test]
    fn typo_names_the_field() {
        let error = parse("[[upstream]]\nurl = \"http://x\"\napi_tokn = \"s\"\n").unwrap_err();
        assert!(error.contains("api_tokn"), "{error}");
    }

    #[test]
    fn unknown_top_level_key_rejected() {
        let error = parse("prot = 1\n").unwrap_err();
        assert!(error.contains("prot"), "{error}");
    }
}
