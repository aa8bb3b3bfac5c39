//! lmlb: a model-aware load balancer for LM Studio.
//!
//! A client sends an ordinary OpenAI (or LM Studio, or Anthropic) request for a model; lmlb picks
//! an idle instance of that model on any configured upstream, rewrites the body's `model` to that
//! instance, and streams the response back untouched. While every instance is busy, the request
//! waits in the model's queue.
//!
//! Data flows one way: request, then the scheduler grants a slot, then the proxy forwards, then
//! the slot guard frees the slot when the response ends.
//!
//! # Layout
//! - [`config`]: flags, environment variables and the TOML file, merged into a typed [`Config`].
//! - [`catalog`]: discovery and health of upstreams; feeds instances to the scheduler.
//! - [`scheduler`]: slots, least-loaded selection and FIFO queues; no I/O.
//! - [`proxy`]: body rewrite, forwarding and streaming of balanced and pass-through requests.
//! - [`api`]: lmlb's own endpoints (`/health`, `/models`, `/metrics`, `/dashboard`, listings).
//! - [`server`]: the listener, the worker threads that serve client connections, and graceful
//!   shutdown.
//! - [`demo`]: the simulator and lmlb together, for a first try.

#![forbid(unsafe_code)]

pub mod api;
pub mod app;
pub mod catalog;
pub mod client;
pub mod config;
pub mod cors;
mod deadline;
pub mod demo;
pub mod error;
pub mod model;
pub mod proxy;
pub mod request;
pub mod router;
pub mod scheduler;
pub mod server;
pub mod telemetry;

pub use config::Config;
pub use server::Server;
