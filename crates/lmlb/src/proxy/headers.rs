//! Header rules for forwarding: hop-by-hop headers stay on their hop, the client's address is
//! appended to `X-Forwarded-For`, and upstream credentials replace lmlb's own.

use std::net::SocketAddr;

use http::header::{self, HeaderMap, HeaderName, HeaderValue};

use super::http1;
use crate::config::UpstreamConfig;

pub const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
pub const X_LMLB_INSTANCE: HeaderName = HeaderName::from_static("x-lmlb-instance");
pub const X_LMLB_UPSTREAM: HeaderName = HeaderName::from_static("x-lmlb-upstream");

/// Headers that a forwarded request never carries over from the client: the upstream gets its
/// own `Host` and `Content-Length`, lmlb has read the whole body (so `Expect` has nothing left to
/// wait for), and `X-Forwarded-For` is extended, not copied.
const REPLACED: [HeaderName; 4] = [
    header::HOST,
    header::CONTENT_LENGTH,
    header::EXPECT,
    X_FORWARDED_FOR,
];

const X_API_KEY: HeaderName = HeaderName::from_static("x-api-key");

/// Header values that are the same for every request to one upstream, built once.
pub struct UpstreamHeaders {
    /// The upstream's `host:port`, sent as `Host`.
    pub host: Option<HeaderValue>,
    /// The upstream's name, sent back as `x-lmlb-upstream`.
    pub name: Option<HeaderValue>,
    /// `Bearer TOKEN` when the upstream has an API token.
    pub authorization: Option<HeaderValue>,
}

impl UpstreamHeaders {
    pub fn new(upstream: &UpstreamConfig) -> UpstreamHeaders {
        let authorization = upstream
            .api_token
            .as_ref()
            .and_then(|token| HeaderValue::from_str(&format!("Bearer {}", token.expose())).ok());
        UpstreamHeaders {
            host: HeaderValue::from_str(upstream.authority()).ok(),
            name: HeaderValue::from_str(&upstream.name).ok(),
            authorization,
        }
    }
}

/// The client end of a connection: its address, and that address as an `X-Forwarded-For` value.
#[derive(Clone, Debug)]
pub struct Peer {
    pub addr: SocketAddr,
    forwarded_for: HeaderValue,
}

impl Peer {
    pub fn new(addr: SocketAddr) -> Peer {
        let forwarded_for = HeaderValue::from_str(&addr.ip().to_string())
            .expect("an IP address is a valid header value");
        Peer {
            addr,
            forwarded_for,
        }
    }
}

/// Returns the headers that the `Connection` header lists as hop-by-hop.
fn named_by_connection(headers: &HeaderMap) -> Vec<HeaderName> {
    headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .filter_map(|name| HeaderName::from_bytes(name.trim().as_bytes()).ok())
        .collect()
}

/// Writes the upstream request's header lines, built from the client's headers.
///
/// Hop-by-hop headers stay behind, and `strip_client_auth` removes the client's credentials when
/// they were lmlb's own API key. The upstream's token, when it has one, replaces `Authorization`.
pub fn write_request_headers(
    out: &mut Vec<u8>,
    client: &HeaderMap,
    peer: &Peer,
    upstream: &UpstreamHeaders,
    strip_client_auth: bool,
    body_len: usize,
) {
    let named = named_by_connection(client);
    let skip_authorization = strip_client_auth || upstream.authorization.is_some();
    let skipped = |name: &HeaderName| {
        http1::is_hop_by_hop(name.as_str())
            || REPLACED.contains(name)
            || named.contains(name)
            || (skip_authorization && *name == header::AUTHORIZATION)
            || (strip_client_auth && *name == X_API_KEY)
    };

    for (name, value) in client {
        if !skipped(name) {
            http1::write_header(out, name.as_str(), value.as_bytes());
        }
    }

    http1::write_header(
        out,
        "content-length",
        http1::decimal(body_len as u64, &mut [0; 20]),
    );
    http1::write_header(
        out,
        "x-forwarded-for",
        forwarded_for(client, peer).as_bytes(),
    );
    if let Some(host) = &upstream.host {
        http1::write_header(out, "host", host.as_bytes());
    }
    if let Some(authorization) = &upstream.authorization {
        http1::write_header(out, "authorization", authorization.as_bytes());
    }
}

/// Appends the client's address to the `X-Forwarded-For` chain that it sent, if any.
fn forwarded_for(client: &HeaderMap, peer: &Peer) -> HeaderValue {
    let previous: Vec<&str> = client
        .get_all(X_FORWARDED_FOR)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .collect();
    if previous.is_empty() {
        return peer.forwarded_for.clone();
    }
    let chain = format!("{}, {}", previous.join(", "), peer.addr.ip());
    HeaderValue::from_str(&chain).unwrap_or_else(|_| peer.forwarded_for.clone())
}

/// Adds the headers that tell the client where its request ran.
pub fn mark_response(
    headers: &mut HeaderMap,
    instance: Option<HeaderValue>,
    upstream: &UpstreamHeaders,
) {
    if let Some(value) = instance {
        headers.insert(X_LMLB_INSTANCE, value);
    }
    if let Some(value) = &upstream.name {
        headers.insert(X_LMLB_UPSTREAM, value.clone());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Secret, upstream_from_url};

    /// Returns the forwarded header lines as (name, value) pairs, in order.
    fn prepare(
        client: &HeaderMap,
        upstream: &UpstreamConfig,
        strip: bool,
        len: usize,
    ) -> Vec<(String, String)> {
        let peer = Peer::new("127.0.0.1:5000".parse().unwrap());
        let mut out = Vec::new();
        let upstream = UpstreamHeaders::new(upstream);
        write_request_headers(&mut out, client, &peer, &upstream, strip, len);
        String::from_utf8(out)
            .unwrap()
            .split_terminator("\r\n")
            .map(|line| {
                let (name, value) = line.split_once(": ").expect("a header line");
                (name.to_string(), value.to_string())
            })
            .collect()
    }

    /// Returns every value of `name` among the forwarded headers.
    fn values<'a>(headers: &'a [(String, String)], name: &str) -> Vec<&'a str> {
        headers
            .iter()
            .filter(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
            .collect()
    }

    fn local_upstream() -> UpstreamConfig {
        upstream_from_url("http://127.0.0.1:1", None, None).unwrap()
    }

    #[test]
    fn forwarded_request_drops_hop_by_hop() {
        let mut client = HeaderMap::new();
        client.insert(
            header::CONNECTION,
            HeaderValue::from_static("keep-alive, x-private"),
        );
        client.insert("x-private", HeaderValue::from_static("1"));
        client.insert("keep-alive", HeaderValue::from_static("timeout=5"));
        client.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
        client.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        client.append("x-trace", HeaderValue::from_static("a"));
        client.append("x-trace", HeaderValue::from_static("b"));

        let headers = prepare(&client, &local_upstream(), false, 2);
        let names: Vec<&str> = headers.iter().map(|(name, _)| name.as_str()).collect();
        assert_eq!(
            names,
            [
                "content-type",
                "x-trace",
                "x-trace",
                "content-length",
                "x-forwarded-for",
                "host"
            ]
        );
        assert_eq!(values(&headers, "x-trace"), ["a", "b"]);
        assert_eq!(values(&headers, "host"), ["127.0.0.1:1"]);
        assert_eq!(values(&headers, "content-length"), ["2"]);
    }

    #[test]
    fn forwarded_for_appends() {
        let mut client = HeaderMap::new();
        client.insert(X_FORWARDED_FOR, HeaderValue::from_static("10.0.0.1"));
        let headers = prepare(&client, &local_upstream(), false, 7);
        assert_eq!(values(&headers, "x-forwarded-for"), ["10.0.0.1, 127.0.0.1"]);
        assert_eq!(values(&headers, "content-length"), ["7"]);
    }

    #[test]
    fn forwarded_for_joins_lines() {
        let mut client = HeaderMap::new();
        client.append(X_FORWARDED_FOR, HeaderValue::from_static("10.0.0.1"));
        client.append(X_FORWARDED_FOR, HeaderValue::from_static("10.0.0.2"));
        let headers = prepare(&client, &local_upstream(), false, 0);
        assert_eq!(
            values(&headers, "x-forwarded-for"),
            ["10.0.0.1, 10.0.0.2, 127.0.0.1"]
        );
    }

    #[test]
    fn forwarded_for_without_previous() {
        let headers = prepare(&HeaderMap::new(), &local_upstream(), false, 0);
        assert_eq!(values(&headers, "x-forwarded-for"), ["127.0.0.1"]);
    }

    #[test]
    fn expect_continue_not_forwarded() {
        let mut client = HeaderMap::new();
        client.insert(header::EXPECT, HeaderValue::from_static("100-continue"));
        client.insert(header::HOST, HeaderValue::from_static("localhost:4321"));
        client.insert(header::CONTENT_LENGTH, HeaderValue::from_static("3000"));
        let headers = prepare(&client, &local_upstream(), false, 3000);
        assert!(values(&headers, "expect").is_empty());
        assert_eq!(values(&headers, "host"), ["127.0.0.1:1"]);
        assert_eq!(values(&headers, "content-length"), ["3000"]);
    }

    #[test]
    fn upstream_token_replaces_client_key() {
        let mut upstream = local_upstream();
        upstream.api_token = Some(Secret::new("lm-token"));
        let mut client = HeaderMap::new();
        client.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("Bearer lmlb-key"),
        );
        client.insert(X_API_KEY, HeaderValue::from_static("lmlb-key"));
        let headers = prepare(&client, &upstream, true, 0);
        assert_eq!(values(&headers, "authorization"), ["Bearer lm-token"]);
        assert!(values(&headers, "x-api-key").is_empty());
    }

    #[test]
    fn upstream_token_without_inbound_keys() {
        let mut upstream = local_upstream();
        upstream.api_token = Some(Secret::new("lm-token"));
        let mut client = HeaderMap::new();
        client.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("Bearer for-lm-studio"),
        );
        let headers = prepare(&client, &upstream, false, 0);
        assert_eq!(values(&headers, "authorization"), ["Bearer lm-token"]);
    }

    #[test]
    fn client_auth_kept_without_inbound_keys() {
        let mut client = HeaderMap::new();
        client.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("Bearer for-lm-studio"),
        );
        client.insert(X_API_KEY, HeaderValue::from_static("for-anthropic"));
        let headers = prepare(&client, &local_upstream(), false, 0);
        assert_eq!(values(&headers, "authorization"), ["Bearer for-lm-studio"]);
        assert_eq!(values(&headers, "x-api-key"), ["for-anthropic"]);
    }
}
