//! Integration tests: lmlb against in-process simulated LM Studio servers, over real sockets.

mod balancing;
mod cli;
mod client_http;
mod common;
mod disconnect;
mod endpoints;
mod errors;
mod framing;
mod lifecycle;
mod streaming;
mod upstreams;
