//! A simulated LM Studio server for tests, demos and benchmarks.
//!
//! It serves LM Studio's HTTP API on loopback: OpenAI-compatible chat, completions,
//! embeddings and responses, Anthropic's messages, LM Studio's `/api/v0` and `/api/v1`
//! endpoints and model management. Models have loaded instances (`id`, `id:2`, ...), each
//! with `parallel` slots and a FIFO queue. Generation is deterministic and paced by a time
//! to first token and a token rate. Faults can be injected, and `/sim/*` endpoints expose
//! per-instance counters.
//!
//! ```no_run
//! # async fn example() -> std::io::Result<()> {
//! let sim = lmstudio_sim::start(lmstudio_sim::SimConfig::default()).await?;
//! println!("LM Studio simulator at {}", sim.url());
//! let stats = sim.wait_for(|stats| stats.total_served() >= 1).await;
//! # drop(stats);
//! sim.shutdown().await;
//! # Ok(())
//! # }
//! ```
//!
//! # Layout
//! - `config`: [`SimConfig`], [`ModelSpec`] and the `--model` SPEC syntax.
//! - `faults`: [`Faults`] and how requests consume them.
//! - `registry`: models, instance naming, routing a request's `model`, load and unload.
//! - `instance`: one instance's slots, FIFO queue, counters and slot guard.
//! - `text`: prompt token counts, generated words, embedding vectors, ids.
//! - `generation`: timing and non-streaming generation.
//! - `clock`: sub-millisecond deadlines that pace tokens.
//! - `stream`: streaming generation paced by a timer.
//! - `sse`: server-sent event framing.
//! - `body`: the response body type and response builders.
//! - `record`: recordings of inference exchanges.
//! - `stats`: [`Stats`] and the change signal behind [`Simulator::wait_for`].
//! - `handlers`: routing, the API token check, and one module per API family, model
//!   listings, errors and `/sim/*`.
//! - `server`: listening socket, accept loop and connections.
//! - `handle`: [`start`] and the [`Simulator`] handle.

#![forbid(unsafe_code)]

mod body;
mod clock;
mod config;
mod faults;
mod generation;
mod handle;
mod handlers;
mod instance;
mod record;
mod registry;
mod server;
mod sse;
mod stats;
mod stream;
mod text;

pub use config::{ModelKind, ModelSpec, SimConfig};
pub use faults::Faults;
pub use handle::{Simulator, start};
pub use record::RecordedExchange;
pub use stats::{InstanceStats, Stats};
