//! The proxies lmlb is compared with, each started from a configuration that
//! the bench writes into its run folder.
//!
//! - [`nginx`]: a plain reverse proxy, round-robin or `least_conn`.
//! - [`litellm`]: the LiteLLM proxy with the `least-busy` routing strategy.

pub mod litellm;
pub mod nginx;
