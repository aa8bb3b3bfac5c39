//! The load generator: an HTTP/1.1 client and the three load shapes the
//! scenarios use.
//!
//! - [`closed_loop`]: N connections, each sending the next request as soon as
//!   the previous response arrives (throughput and latency).
//! - [`stream`]: many concurrent SSE streams, timing every token.
//! - [`replay`]: open-loop replay of a timed trace (scheduling).

pub mod closed_loop;
pub mod http;
pub mod replay;
pub mod sse;
pub mod stream;

#[cfg(test)]
pub(crate) mod test_server;
