//! `lmstudio-sim`: runs the simulated LM Studio server until interrupted.

#![forbid(unsafe_code)]

use std::net::IpAddr;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use lmstudio_sim::{Faults, ModelSpec, SimConfig};
use tracing_subscriber::EnvFilter;

/// A simulated LM Studio server on loopback, with deterministic generation and faults.
#[derive(Parser, Debug)]
#[command(version)]
struct Args {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1")]
    bind: IpAddr,

    /// Port to listen on; 0 picks a free one.
    #[arg(long, default_value_t = 1234)]
    port: u16,

    /// A model: ID[,instances=N][,parallel=K][,type=llm|vlm|embeddings][,state=loaded|not-loaded].
    /// Repeat for several. Without it: qwen2.5-7b-instruct (3 instances of 1 slot),
    /// text-embedding-nomic-embed-text-v1.5 (1 instance) and llama-3.2-1b-instruct (not loaded).
    #[arg(long = "model", value_name = "SPEC")]
    models: Vec<ModelSpec>,

    /// Tokens generated per second and request after the first; 0 generates all at once.
    #[arg(long, default_value_t = 50.0)]
    tokens_per_second: f64,

    /// Time to first token in milliseconds, from getting a slot.
    #[arg(long, default_value_t = 50)]
    ttft_ms: u64,

    /// Prompt tokens processed per second; uncached prompt tokens delay the first token.
    /// 0 turns prompt processing time off.
    #[arg(long, default_value_t = 0.0)]
    prefill_tokens_per_second: f64,

    /// Require `Authorization: Bearer TOKEN` on every endpoint except /sim/* and
    /// /lmstudio-greeting.
    #[arg(long, value_name = "TOKEN")]
    api_token: Option<String>,

    /// Load a downloaded model that has no loaded instance when a request names it.
    #[arg(long)]
    jit: bool,

    /// Time a model load takes, in milliseconds.
    #[arg(long, default_value_t = 500)]
    load_ms: u64,

    /// Respond to the next N inference requests with 500.
    #[arg(long, default_value_t = 0, value_name = "N")]
    fail_next: u32,

    /// Close the connection of the next --close-next streams after K tokens.
    #[arg(long, value_name = "K")]
    close_after_tokens: Option<u32>,

    /// Number of streams to close; defaults to 1 when --close-after-tokens is given.
    #[arg(long, value_name = "N")]
    close_next: Option<u32>,

    /// Leave the next N inference requests without a response.
    #[arg(long, default_value_t = 0, value_name = "N")]
    hang_next: u32,

    /// Respond to the next N non-streaming requests with a truncated JSON body.
    #[arg(long, default_value_t = 0, value_name = "N")]
    malformed_json_next: u32,

    /// Insert a truncated event after the first token of the next N streams.
    #[arg(long, default_value_t = 0, value_name = "N")]
    broken_sse_next: u32,

    /// Delay every inference request by this many milliseconds before it is handled.
    #[arg(long, default_value_t = 0, value_name = "MS")]
    header_delay_ms: u64,

    /// Delay every model listing by this many milliseconds.
    #[arg(long, default_value_t = 0, value_name = "MS")]
    listing_delay_ms: u64,

    /// Precede each streamed token with an SSE comment `: sent_us=MICROS` (Unix time).
    #[arg(long)]
    stamp_tokens: bool,

    /// Tokio worker threads; defaults to half the CPUs (at least 1), since the simulator
    /// usually shares the machine with a balancer and a load generator.
    #[arg(long, value_name = "N")]
    threads: Option<usize>,
}

impl Args {
    fn config(self) -> SimConfig {
        let defaults = SimConfig::default();
        let close_next = self
            .close_next
            .unwrap_or(u32::from(self.close_after_tokens.is_some()));
        SimConfig {
            bind: self.bind,
            port: self.port,
            models: if self.models.is_empty() {
                defaults.models
            } else {
                self.models
            },
            tokens_per_second: self.tokens_per_second,
            ttft: Duration::from_millis(self.ttft_ms),
            prefill_tokens_per_second: self.prefill_tokens_per_second,
            api_token: self.api_token,
            jit: self.jit,
            load_time: Duration::from_millis(self.load_ms),
            faults: Faults {
                fail_next: self.fail_next,
                close_after_tokens: self.close_after_tokens,
                close_next,
                hang_next: self.hang_next,
                malformed_json_next: self.malformed_json_next,
                broken_sse_next: self.broken_sse_next,
                header_delay_ms: self.header_delay_ms,
                listing_delay_ms: self.listing_delay_ms,
            },
            record: false,
            stamp_tokens: self.stamp_tokens,
        }
    }
}

fn main() -> ExitCode {
    let args = Args::parse();
    tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()))
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stdout()))
        .init();

    let threads = args.threads.unwrap_or_else(default_threads);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads.max(1))
        .enable_all()
        .build();
    let runtime = match runtime {
        Ok(runtime) => runtime,
        Err(error) => {
            tracing::error!(%error, "failed to start the Tokio runtime");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(run(args.config()))
}

/// Returns half the CPUs, at least 1. On a 2-core machine one worker served about 25 %
/// more requests per second than two, because two workers and the load generator compete
/// for the cores (see the crate README).
fn default_threads() -> usize {
    std::thread::available_parallelism().map_or(1, |cpus| (cpus.get() / 2).max(1))
}

async fn run(config: SimConfig) -> ExitCode {
    let addr = (config.bind, config.port);
    let simulator = match lmstudio_sim::start(config).await {
        Ok(simulator) => simulator,
        Err(error) => {
            tracing::error!(%error, ?addr, "failed to start");
            return ExitCode::FAILURE;
        }
    };
    if let Err(error) = tokio::signal::ctrl_c().await {
        tracing::error!(%error, "failed to wait for Ctrl-C");
    }
    simulator.shutdown().await;
    ExitCode::SUCCESS
}
