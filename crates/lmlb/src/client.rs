//! The HTTP client lmlb uses to talk to upstreams, with pooled keep-alive connections.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};

pub type HttpClient = Client<HttpConnector, Full<Bytes>>;

/// How long an idle pooled connection to an upstream is kept open.
const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(90);

/// Bound on establishing a TCP connection, so a host that drops packets fails fast and the
/// request can move to another instance.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

pub fn build() -> HttpClient {
    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    connector.set_connect_timeout(Some(CONNECT_TIMEOUT));
    Client::builder(TokioExecutor::new())
        .pool_idle_timeout(POOL_IDLE_TIMEOUT)
        .pool_timer(TokioTimer::new())
        .build(connector)
}
