//! Configuration: command-line flags, environment variables (with a `.env` file) and an optional
//! TOML file, merged once at start-up into the typed [`Config`].
//!
//! Precedence, highest first: flags, environment variables, the config file, defaults.

mod cli;
mod file;
mod units;

use std::collections::BTreeMap;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

pub use cli::{Cli, Command, DemoArgs, ServeArgs, UnknownModel};
pub use units::{parse_duration, parse_size};

/// The LM Studio URL used when no upstream is configured, as in the original tool.
pub const DEFAULT_UPSTREAM: &str = "http://localhost:1234";
pub const DEFAULT_PORT: u16 = 4321;
pub const DEFAULT_REFRESH_INTERVAL: Duration = Duration::from_secs(5);
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(300);
pub const DEFAULT_MAX_PAYLOAD: usize = 50 * 1024 * 1024;
pub const DEFAULT_MAX_QUEUE: usize = 512;
pub const DEFAULT_QUEUE_TIMEOUT: Duration = Duration::from_secs(300);
pub const DEFAULT_SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(30);
/// Most worker threads; also the default's bound on machines with more CPUs.
pub const MAX_WORKERS: usize = 256;

/// The complete, validated configuration.
#[derive(Clone, Debug)]
pub struct Config {
    pub listen: SocketAddr,
    pub upstreams: Vec<UpstreamConfig>,
    pub refresh_interval: Duration,
    /// Bound on reading an upstream's model listing; not a flag, since only tests need another.
    pub listing_timeout: Duration,
    pub request_timeout: Duration,
    pub max_payload: usize,
    pub log_level: String,
    pub request_log: bool,
    /// Whether lmlb allows any origin and responds to CORS preflights.
    pub cors: bool,
    pub unknown_model: UnknownModel,
    pub api_keys: Vec<Secret>,
    pub shutdown_timeout: Duration,
    /// Threads serving client connections (see [`crate::server`]).
    pub workers: usize,
    pub queue: QueueLimits,
    /// Client-facing name to the model or instance id it stands for.
    pub aliases: BTreeMap<String, String>,
    /// Per-model settings, keyed by model id (an instance id without its `:N`).
    pub models: BTreeMap<String, ModelSettings>,
}

/// One LM Studio (or other OpenAI-compatible) server.
#[derive(Clone, Debug, PartialEq)]
pub struct UpstreamConfig {
    /// Shown in logs, `/health` and the `x-lmlb-upstream` header; the URL unless named.
    pub name: String,
    /// Origin such as `http://127.0.0.1:1234`, without a trailing slash.
    pub url: String,
    /// Sent as `Authorization: Bearer` (LM Studio 0.4's API tokens).
    pub api_token: Option<Secret>,
}

impl UpstreamConfig {
    /// `host:port` of the upstream, for connecting and for the `Host` header.
    pub fn authority(&self) -> &str {
        self.url.strip_prefix("http://").unwrap_or(&self.url)
    }
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct QueueLimits {
    pub max_size: usize,
    pub timeout: Duration,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct ModelSettings {
    /// Slots per instance, overriding what the upstream reports.
    pub slots: Option<u32>,
    pub max_queue: Option<usize>,
    pub queue_timeout: Option<Duration>,
}

/// A key or token whose `Debug` output hides the value.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), DEFAULT_PORT),
            upstreams: vec![UpstreamConfig {
                name: DEFAULT_UPSTREAM.to_string(),
                url: DEFAULT_UPSTREAM.to_string(),
                api_token: None,
            }],
            refresh_interval: DEFAULT_REFRESH_INTERVAL,
            listing_timeout: crate::catalog::DEFAULT_LISTING_TIMEOUT,
            request_timeout: DEFAULT_REQUEST_TIMEOUT,
            max_payload: DEFAULT_MAX_PAYLOAD,
            log_level: "info".to_string(),
            request_log: false,
            cors: true,
            unknown_model: UnknownModel::Reject,
            api_keys: Vec::new(),
            shutdown_timeout: DEFAULT_SHUTDOWN_TIMEOUT,
            workers: default_workers(),
            queue: QueueLimits {
                max_size: DEFAULT_MAX_QUEUE,
                timeout: DEFAULT_QUEUE_TIMEOUT,
            },
            aliases: BTreeMap::new(),
            models: BTreeMap::new(),
        }
    }
}

impl Config {
    /// Builds a configuration for the given upstream URLs, everything else at its default.
    pub fn for_upstreams<S: AsRef<str>>(urls: &[S]) -> Result<Config, String> {
        let upstreams = urls
            .iter()
            .map(|url| upstream_from_url(url.as_ref(), None, None))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Config {
            upstreams,
            ..Config::default()
        })
    }

    /// Merges flags and environment (already in `args`) over the config file and the defaults.
    pub fn resolve(args: &ServeArgs) -> Result<Config, String> {
        let file = match &args.config {
            Some(path) => file::read(path)?,
            None => file::FileConfig::default(),
        };
        let defaults = Config::default();

        let port = args.port.or(file.port).unwrap_or(DEFAULT_PORT);
        let bind = args.bind.or(file.bind).unwrap_or(defaults.listen.ip());

        let config = Config {
            listen: SocketAddr::new(bind, port),
            upstreams: resolve_upstreams(args, &file)?,
            listing_timeout: defaults.listing_timeout,
            refresh_interval: pick_duration(
                "refresh interval",
                args.refresh_interval.as_deref(),
                file.refresh_interval.as_ref().map(|v| v.text()),
                DEFAULT_REFRESH_INTERVAL,
            )?,
            request_timeout: pick_duration(
                "request timeout",
                args.request_timeout.as_deref(),
                file.request_timeout.as_ref().map(|v| v.text()),
                DEFAULT_REQUEST_TIMEOUT,
            )?,
            max_payload: resolve_payload(args, &file)?,
            log_level: check_log_level(
                args.log_level
                    .clone()
                    .or(file.log_level.clone())
                    .unwrap_or(defaults.log_level),
            )?,
            request_log: match &args.request_log {
                Some(text) => units::parse_bool(text)
                    .map_err(|e| format!("--request-log (ENABLE_REQUEST_LOGGING): {e}"))?,
                None => file.request_log.unwrap_or(false),
            },
            cors: match &args.cors {
                Some(text) => {
                    units::parse_bool(text).map_err(|e| format!("--cors (LMLB_CORS): {e}"))?
                }
                None => file.cors.unwrap_or(true),
            },
            unknown_model: args
                .unknown_model
                .or(file.unknown_model)
                .unwrap_or_default(),
            api_keys: resolve_api_keys(args, &file),
            shutdown_timeout: pick_duration(
                "shutdown timeout",
                args.shutdown_timeout.as_deref(),
                file.shutdown_timeout.as_ref().map(|v| v.text()),
                DEFAULT_SHUTDOWN_TIMEOUT,
            )?,
            workers: args.workers.or(file.workers).unwrap_or(defaults.workers),
            queue: QueueLimits {
                max_size: args
                    .max_queue
                    .or(file.queue.max_size)
                    .unwrap_or(DEFAULT_MAX_QUEUE),
                timeout: pick_duration(
                    "queue timeout",
                    args.queue_timeout.as_deref(),
                    file.queue.timeout.as_ref().map(|v| v.text()),
                    DEFAULT_QUEUE_TIMEOUT,
                )?,
            },
            aliases: file.aliases.clone(),
            models: resolve_models(&file)?,
        };
        if config.refresh_interval.is_zero() {
            return Err("refresh interval: must be greater than 0".to_string());
        }
        if !(1..=MAX_WORKERS).contains(&config.workers) {
            return Err(format!(
                "--workers (LMLB_WORKERS, or `workers` in the config file): must be 1 to {MAX_WORKERS}, got {}",
                config.workers
            ));
        }
        Ok(config)
    }

    /// Settings for one model, with the global queue limits filled in.
    pub fn queue_limits_for(&self, model: &str) -> QueueLimits {
        let settings = self.models.get(model);
        QueueLimits {
            max_size: settings
                .and_then(|s| s.max_queue)
                .unwrap_or(self.queue.max_size),
            timeout: settings
                .and_then(|s| s.queue_timeout)
                .unwrap_or(self.queue.timeout),
        }
    }
}

/// Returns one worker per CPU, as nginx's `worker_processes auto` does, and at most [`MAX_WORKERS`].
pub fn default_workers() -> usize {
    std::thread::available_parallelism().map_or(1, |cpus| cpus.get().min(MAX_WORKERS))
}

fn resolve_upstreams(
    args: &ServeArgs,
    file: &file::FileConfig,
) -> Result<Vec<UpstreamConfig>, String> {
    let mut upstreams = Vec::new();
    for url in args
        .upstreams
        .iter()
        .map(|u| u.trim())
        .filter(|u| !u.is_empty())
    {
        upstreams.push(upstream_from_url(url, None, None)?);
    }
    if upstreams.is_empty() {
        for (index, entry) in file.upstreams.iter().enumerate() {
            let upstream =
                upstream_from_url(&entry.url, entry.name.clone(), entry.api_token.clone())
                    .map_err(|e| format!("upstream[{index}].url: {e}"))?;
            upstreams.push(upstream);
        }
    }
    if upstreams.is_empty() {
        upstreams.push(upstream_from_url(DEFAULT_UPSTREAM, None, None)?);
    }
    check_unique_names(&upstreams)?;
    Ok(upstreams)
}

fn check_unique_names(upstreams: &[UpstreamConfig]) -> Result<(), String> {
    for (index, upstream) in upstreams.iter().enumerate() {
        if upstreams[..index]
            .iter()
            .any(|other| other.name == upstream.name)
        {
            return Err(format!(
                "upstream \"{}\" is configured twice; give each upstream its own name or URL",
                upstream.name
            ));
        }
    }
    Ok(())
}

/// Validates an upstream URL and normalizes it to an origin.
///
/// A trailing `/v1` is dropped, since users often paste the OpenAI base URL.
pub fn upstream_from_url(
    url: &str,
    name: Option<String>,
    api_token: Option<String>,
) -> Result<UpstreamConfig, String> {
    let uri: http::Uri = url
        .parse()
        .map_err(|e| format!("invalid upstream URL \"{url}\": {e}"))?;
    match uri.scheme_str() {
        Some("http") => {}
        Some("https") => {
            return Err(format!(
                "upstream URL \"{url}\" uses https, which lmlb does not support; LM Studio serves plain http"
            ));
        }
        _ => {
            return Err(format!(
                "invalid upstream URL \"{url}\": expected http://HOST:PORT"
            ));
        }
    }
    let Some(authority) = uri.authority() else {
        return Err(format!("invalid upstream URL \"{url}\": missing host"));
    };
    let path = uri.path().trim_end_matches('/');
    if !path.is_empty() && path != "/v1" {
        return Err(format!(
            "invalid upstream URL \"{url}\": expected a server address such as http://127.0.0.1:1234 without a path"
        ));
    }

    let origin = format!("http://{authority}");
    Ok(UpstreamConfig {
        name: name.unwrap_or_else(|| origin.clone()),
        url: origin,
        api_token: api_token.map(Secret::new),
    })
}

/// Accepts a plain level (`warning` as `warn`) or tracing directives such as `lmlb=debug`.
/// A misspelled plain level is an error, because tracing would read it as a target and log nothing.
fn check_log_level(level: String) -> Result<String, String> {
    let lower = level.trim().to_ascii_lowercase();
    if lower.contains('=') || lower.contains(',') {
        return Ok(level);
    }
    match lower.as_str() {
        "off" | "error" | "warn" | "info" | "debug" | "trace" => Ok(lower),
        "warning" => Ok("warn".to_string()),
        _ => Err(format!(
            "invalid log level \"{level}\": use error, warn, info, debug, trace or off"
        )),
    }
}

fn resolve_payload(args: &ServeArgs, file: &file::FileConfig) -> Result<usize, String> {
    let text = args
        .max_payload_size
        .clone()
        .or(file.max_payload_size.as_ref().map(|v| v.text()));
    match text {
        Some(text) => parse_size(&text).map_err(|e| format!("max payload size: {e}")),
        None => Ok(DEFAULT_MAX_PAYLOAD),
    }
}

fn resolve_api_keys(args: &ServeArgs, file: &file::FileConfig) -> Vec<Secret> {
    let keys = if args.api_keys.is_empty() {
        &file.api_keys
    } else {
        &args.api_keys
    };
    keys.iter()
        .map(|key| key.trim())
        .filter(|key| !key.is_empty())
        .map(Secret::new)
        .collect()
}

fn resolve_models(file: &file::FileConfig) -> Result<BTreeMap<String, ModelSettings>, String> {
    let mut models = BTreeMap::new();
    for (id, entry) in &file.models {
        if entry.slots == Some(0) {
            return Err(format!("models.\"{id}\".slots: must be at least 1"));
        }
        let queue_timeout = match &entry.queue_timeout {
            Some(value) => Some(
                parse_duration(&value.text())
                    .map_err(|e| format!("models.\"{id}\".queue_timeout: {e}"))?,
            ),
            None => None,
        };
        let settings = ModelSettings {
            slots: entry.slots,
            max_queue: entry.max_queue,
            queue_timeout,
        };
        models.insert(id.clone(), settings);
    }
    Ok(models)
}

fn pick_duration(
    what: &str,
    flag: Option<&str>,
    file: Option<String>,
    default: Duration,
) -> Result<Duration, String> {
    match flag.map(str::to_string).or(file) {
        Some(text) => parse_duration(&text).map_err(|e| format!("{what}: {e}")),
        None => Ok(default),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upstream_url_normalized() {
        let upstream = upstream_from_url("http://127.0.0.1:1234/v1/", None, None).unwrap();
        assert_eq!(upstream.url, "http://127.0.0.1:1234");
        assert_eq!(upstream.name, "http://127.0.0.1:1234");
    }

    #[test]
    fn upstream_url_rejects_https_and_paths() {
        assert!(
            upstream_from_url("https://x:1234", None, None)
                .unwrap_err()
                .contains("https")
        );
        assert!(upstream_from_url("http://x:1234/api", None, None).is_err());
        assert!(upstream_from_url("localhost:1234", None, None).is_err());
    }

    #[test]
    fn defaults_match_original_tool() {
        let config = Config::resolve(&ServeArgs::default()).unwrap();
        assert_eq!(config.listen.port(), 4321);
        assert_eq!(config.upstreams[0].url, "http://localhost:1234");
        assert_eq!(config.request_timeout, Duration::from_secs(300));
        assert_eq!(config.max_payload, 50 * 1024 * 1024);
        assert_eq!(config.listen.ip(), IpAddr::V4(Ipv4Addr::LOCALHOST));
    }

    #[test]
    fn flags_override_defaults() {
        let args = ServeArgs {
            upstreams: vec!["http://a:1".into(), "http://b:2".into()],
            request_timeout: Some("2s".into()),
            max_payload_size: Some("1kb".into()),
            request_log: Some("true".into()),
            workers: Some(3),
            ..ServeArgs::default()
        };
        let config = Config::resolve(&args).unwrap();
        assert_eq!(config.upstreams.len(), 2);
        assert_eq!(config.request_timeout, Duration::from_secs(2));
        assert_eq!(config.max_payload, 1024);
        assert!(config.request_log);
        assert_eq!(config.workers, 3);
    }

    #[test]
    fn workers_out_of_range_rejected() {
        for workers in [0, MAX_WORKERS + 1, usize::MAX] {
            let args = ServeArgs {
                workers: Some(workers),
                ..ServeArgs::default()
            };
            let error = Config::resolve(&args).unwrap_err();
            assert!(error.contains("LMLB_WORKERS"), "{error}");
            assert!(error.contains(&workers.to_string()), "{error}");
        }
    }

    #[test]
    fn bad_value_names_the_setting() {
        let args = ServeArgs {
            queue_timeout: Some("soon".into()),
            ..ServeArgs::default()
        };
        let error = Config::resolve(&args).unwrap_err();
        assert!(error.starts_with("queue timeout"), "{error}");
    }

    #[test]
    fn log_level_checked() {
        assert_eq!(check_log_level("WARNING".into()), Ok("warn".into()));
        assert_eq!(
            check_log_level("lmlb=debug".into()),
            Ok("lmlb=debug".into())
        );
        assert!(
            check_log_level("chatty".into())
                .unwrap_err()
                .contains("chatty")
        );
    }

    #[test]
    fn duplicate_upstreams_rejected() {
        let args = ServeArgs {
            upstreams: vec!["http://a:1".into(), "http://a:1/".into()],
            ..ServeArgs::default()
        };
        assert!(Config::resolve(&args).unwrap_err().contains("twice"));
    }

    #[test]
    fn config_file_resolved() {
        let path = std::env::temp_dir().join(format!("lmlb-config-{}.toml", std::process::id()));
        std::fs::write(
            &path,
            r#"
            port = 9000
            request_timeout = "2m"
            workers = 4
            [[upstream]]
            name = "desk"
            url = "http://127.0.0.1:1234"
            api_token = "sk-lm-1"
            [[upstream]]
            url = "http://127.0.0.1:1235/"
            [queue]
            max_size = 8
            [aliases]
            fast = "qwen"
            [models.qwen]
            slots = 2
            queue_timeout = "10s"
            "#,
        )
        .unwrap();
        let args = ServeArgs {
            config: Some(path.clone()),
            port: Some(9100),
            ..ServeArgs::default()
        };
        let config = Config::resolve(&args).unwrap();
        std::fs::remove_file(path).ok();

        assert_eq!(config.listen.port(), 9100, "the flag wins over the file");
        assert_eq!(config.request_timeout, Duration::from_secs(120));
        assert_eq!(config.workers, 4);
        assert_eq!(config.upstreams[0].name, "desk");
        assert_eq!(
            config.upstreams[0].api_token.as_ref().unwrap().expose(),
            "sk-lm-1"
        );
        assert_eq!(config.upstreams[1].name, "http://127.0.0.1:1235");
        assert_eq!(config.aliases["fast"], "qwen");
        assert_eq!(config.models["qwen"].slots, Some(2));
        let limits = config.queue_limits_for("qwen");
        assert_eq!(limits.max_size, 8);
        assert_eq!(limits.timeout, Duration::from_secs(10));
        assert_eq!(
            config.queue_limits_for("other").timeout,
            DEFAULT_QUEUE_TIMEOUT
        );
    }

    #[test]
    fn zero_slots_rejected() {
        let path = std::env::temp_dir().join(format!("lmlb-zero-{}.toml", std::process::id()));
        std::fs::write(&path, "[models.qwen]\nslots = 0\n").unwrap();
        let args = ServeArgs {
            config: Some(path.clone()),
            ..ServeArgs::default()
        };
        let error = Config::resolve(&args).unwrap_err();
        std::fs::remove_file(path).ok();
        assert!(error.contains("models.\"qwen\".slots"), "{error}");
    }

    #[test]
    fn secret_debug_hides_value() {
        let secret = Secret::new("sk-123");
        assert_eq!(format!("{secret:?}"), "Secret(***)");
    }
}
