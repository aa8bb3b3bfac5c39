//! Command-line flags and the environment variables of the original Node.js tool.
//!
//! Every value is optional here so that the config file can fill what the command line and the
//! environment leave out; defaults are applied in [`super::Config::resolve`].

use std::net::IpAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

#[derive(Debug, Parser)]
#[command(
    name = "lmlb",
    version,
    about = "A model-aware load balancer for LM Studio",
    long_about = "lmlb sits in front of one or more LM Studio servers. A client sends an ordinary \
                  OpenAI request for a model; lmlb sends it to an idle instance of that model on any \
                  upstream, and queues it while every instance is busy."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,

    #[command(flatten)]
    pub serve: ServeArgs,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Start a simulated LM Studio in-process and lmlb in front of it, then print a curl to try.
    Demo(DemoArgs),
}

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Port for lmlb to listen on (0 picks a free one). Default: 4321.
    #[arg(long, env = "LOAD_BALANCER_PORT")]
    pub port: Option<u16>,

    /// Generation speed of the simulated instances, in tokens per second. Default: 20.
    #[arg(long, default_value_t = 20.0, hide_default_value = true)]
    pub tokens_per_second: f64,
}

#[derive(Debug, Args, Default)]
pub struct ServeArgs {
    /// LM Studio server URL; repeat the flag for several servers. The variable takes a
    /// comma-separated list. Default: http://localhost:1234.
    #[arg(
        long = "upstream",
        value_name = "URL",
        env = "LM_STUDIO_URL",
        value_delimiter = ','
    )]
    pub upstreams: Vec<String>,

    /// TOML file with upstreams, API tokens, aliases, slot overrides and queue limits.
    #[arg(long, value_name = "FILE", env = "LMLB_CONFIG")]
    pub config: Option<PathBuf>,

    /// Port to listen on. Default: 4321.
    #[arg(long, env = "LOAD_BALANCER_PORT")]
    pub port: Option<u16>,

    /// Address to listen on; 0.0.0.0 serves the network. Default: 127.0.0.1.
    #[arg(long, env = "LMLB_BIND")]
    pub bind: Option<IpAddr>,

    /// How often each upstream's loaded models are read, in milliseconds (or with a unit: 5s).
    /// Default: 5000.
    #[arg(
        long = "refresh-interval",
        value_name = "MS",
        env = "MODEL_REFRESH_INTERVAL"
    )]
    pub refresh_interval: Option<String>,

    /// Maximum silence from an upstream, in milliseconds: before its response headers and between
    /// two parts of its body (or with a unit: 5m). Default: 300000.
    #[arg(long = "request-timeout", value_name = "MS", env = "REQUEST_TIMEOUT")]
    pub request_timeout: Option<String>,

    /// Largest accepted request body, such as 50mb; larger bodies get 413. Default: 50mb.
    #[arg(
        long = "max-payload-size",
        value_name = "SIZE",
        env = "MAX_PAYLOAD_SIZE"
    )]
    pub max_payload_size: Option<String>,

    /// Log filter: error, warn, info, debug, trace, or tracing directives. Default: info.
    #[arg(long = "log-level", value_name = "LEVEL", env = "LOG_LEVEL")]
    pub log_level: Option<String>,

    /// Log one line per request: method, path, model, instance, upstream, status, queue wait and
    /// duration. Default: false.
    #[arg(
        long = "request-log",
        value_name = "BOOL",
        env = "ENABLE_REQUEST_LOGGING",
        num_args = 0..=1,
        default_missing_value = "true"
    )]
    pub request_log: Option<String>,

    /// Most requests waiting per model; more get 503 with Retry-After. Default: 512.
    #[arg(long = "max-queue", value_name = "N", env = "LMLB_MAX_QUEUE")]
    pub max_queue: Option<usize>,

    /// Maximum wait in the queue for a free slot, in milliseconds (or 60s). Default: 300000.
    #[arg(long = "queue-timeout", value_name = "MS", env = "LMLB_QUEUE_TIMEOUT")]
    pub queue_timeout: Option<String>,

    /// Policy for a request naming a model that no upstream has loaded: reject it with 404, or
    /// send it to any loaded model of the right type (the original tool's behaviour). Default:
    /// reject.
    #[arg(long = "unknown-model", value_enum, env = "LMLB_UNKNOWN_MODEL")]
    pub unknown_model: Option<UnknownModel>,

    /// Key that clients must send as "Authorization: Bearer KEY"; repeat for several. The
    /// variable takes a comma-separated list. Without keys, lmlb needs no authentication.
    #[arg(
        long = "api-key",
        value_name = "KEY",
        env = "LMLB_API_KEYS",
        value_delimiter = ',',
        hide_env_values = true
    )]
    pub api_keys: Vec<String>,

    /// Allow browser pages from any origin to call lmlb (CORS), as the original tool did.
    /// Default: true.
    #[arg(long = "cors", value_name = "BOOL", env = "LMLB_CORS", num_args = 0..=1, default_missing_value = "true")]
    pub cors: Option<String>,

    /// How long in-flight requests may run after SIGINT or SIGTERM, in milliseconds (or 30s).
    /// Default: 30000.
    #[arg(
        long = "shutdown-timeout",
        value_name = "MS",
        env = "LMLB_SHUTDOWN_TIMEOUT"
    )]
    pub shutdown_timeout: Option<String>,

    /// Threads that serve client connections, each with its own connections to the upstreams
    /// (1 to 256). Default: one per CPU.
    #[arg(long = "workers", value_name = "N", env = "LMLB_WORKERS")]
    pub workers: Option<usize>,
}

/// Policy for requests naming a model that is not loaded anywhere.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum UnknownModel {
    /// Respond with 404 `model_not_found`.
    #[default]
    Reject,
    /// Send the request to any loaded model of the endpoint's type.
    Any,
}
