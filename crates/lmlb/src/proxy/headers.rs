//! Header rules for forwarding: hop-by-hop headers stay on their hop, the client's address is
//! appended to `X-Forwarded-For`, and upstream credentials replace lmlb's own.

use std::net::SocketAddr;

use http::header::HeaderValue;

use super::http1::{self, HeaderLines};
use crate::config::UpstreamConfig;
use crate::request::ClientRequest;

/// Headers that a forwarded request never carries over from the client: the upstream gets its
/// own `Host` and `Content-Length`, lmlb has read the whole body (so `Expect` has nothing left to
/// wait for), and `X-Forwarded-For` is extended, not copied.
const REPLACED: [&[u8]; 4] = [b"host", b"content-length", b"expect", b"x-forwarded-for"];

/// Header values that are the same for every request to one upstream, built once.
pub struct UpstreamHeaders {
    /// The upstream's `host:port`, sent as `Host`.
    pub host: Option<HeaderValue>,
    /// The line `x-lmlb-upstream: NAME`, naming the upstream that served a response. Empty when
    /// the name cannot be a header value.
    pub name_line: Box<[u8]>,
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
            name_line: header_line("x-lmlb-upstream", &upstream.name).into(),
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

/// Writes the upstream request's header lines, built from the client's headers.
///
/// Hop-by-hop headers stay behind, and `strip_client_auth` removes the client's credentials when
/// they were lmlb's own API key. The upstream's token, when it has one, replaces `Authorization`.
pub fn write_request_headers(
    out: &mut Vec<u8>,
    client: &ClientRequest,
    peer: &Peer,
    upstream: &UpstreamHeaders,
    strip_client_auth: bool,
    body_len: usize,
) {
    let named = client.has_header("connection");
    let skip_authorization = strip_client_auth || upstream.authorization.is_some();
    let skipped = |name: &[u8]| {
        let same = |other: &[u8]| name.eq_ignore_ascii_case(other);
        http1::is_hop_by_hop(name)
            || REPLACED.iter().any(|replaced| same(replaced))
            || (named && http1::connection_has(client.header_values("connection"), name))
            || (skip_authorization && same(b"authorization"))
            || (strip_client_auth && same(b"x-api-key"))
    };

    for (name, value) in client.headers() {
        if !skipped(name) {
            http1::write_header(out, name, value);
        }
    }

    http1::write_header(
        out,
        "content-length",
        http1::decimal(body_len as u64, &mut [0; 20]),
    );
    write_forwarded_for(out, client, peer);
    if let Some(host) = &upstream.host {
        http1::write_header(out, "host", host.as_bytes());
    }
    if let Some(authorization) = &upstream.authorization {
        http1::write_header(out, "authorization", authorization.as_bytes());
    }
}

/// Writes `X-Forwarded-For`: the chain the client sent, if any, then the client's address.
fn write_forwarded_for(out: &mut Vec<u8>, client: &ClientRequest, peer: &Peer) {
    out.extend_from_slice(b"x-forwarded-for: ");
    for previous in client.header_values("x-forwarded-for") {
        out.extend_from_slice(previous);
        out.extend_from_slice(b", ");
    }
    out.extend_from_slice(peer.forwarded_for.as_bytes());
    out.extend_from_slice(b"\r\n");
}

/// Adds the header lines that name where a request ran: the instance, when a balanced request
/// ran on one, and the upstream.
pub fn mark_response(lines: &mut HeaderLines, instance: Option<&str>, upstream: &UpstreamHeaders) {
    if let Some(instance) = instance.filter(|id| is_header_value(id.as_bytes())) {
        lines.push("x-lmlb-instance", instance.as_bytes());
    }
    lines.extend_from_slice(&upstream.name_line);
}

/// Returns `name: value\r\n`, or nothing when `value` cannot be a header value.
fn header_line(name: &str, value: &str) -> Vec<u8> {
    let mut line = Vec::new();
    if is_header_value(value.as_bytes()) {
        http1::write_header(&mut line, name, value.as_bytes());
    }
    line
}

/// Returns whether `value` can be sent as a header value: visible characters, spaces and tabs.
fn is_header_value(value: &[u8]) -> bool {
    value
        .iter()
        .all(|&byte| byte == b'\t' || (byte >= b' ' && byte != 0x7f))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Secret, upstream_from_url};

    /// Returns the header lines forwarded for a request with `client_headers`, as (name, value)
    /// pairs in order.
    fn prepare(
        client_headers: &str,
        upstream: &UpstreamConfig,
        strip: bool,
        len: usize,
    ) -> Vec<(String, String)> {
        let client = ClientRequest::from_text(&format!("POST / HTTP/1.1\r\n{client_headers}\r\n"));
        let peer = Peer::new("127.0.0.1:5000".parse().unwrap());
        let mut out = Vec::new();
        let upstream = UpstreamHeaders::new(upstream);
        write_request_headers(&mut out, &client, &peer, &upstream, strip, len);
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
            .filter(|(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
            .collect()
    }

    fn local_upstream() -> UpstreamConfig {
        upstream_from_url("http://127.0.0.1:1", None, None).unwrap()
    }

    #[test]
    fn forwarded_request_drops_hop_by_hop() {
        let client = "Connection: keep-alive, X-Private\r\nx-private: 1\r\nKeep-Alive: timeout=5\r\n\
             Upgrade: websocket\r\nContent-Type: application/json\r\nX-Trace: a\r\nX-Trace: b\r\n";
        let headers = prepare(client, &local_upstream(), false, 2);
        let names: Vec<&str> = headers.iter().map(|(name, _)| name.as_str()).collect();
        assert_eq!(
            names,
            [
                "Content-Type",
                "X-Trace",
                "X-Trace",
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
        let headers = prepare("X-Forwarded-For: 10.0.0.1\r\n", &local_upstream(), false, 7);
        assert_eq!(values(&headers, "x-forwarded-for"), ["10.0.0.1, 127.0.0.1"]);
        assert_eq!(values(&headers, "content-length"), ["7"]);
    }

    #[test]
    fn forwarded_for_joins_lines() {
        let client = "X-Forwarded-For: 10.0.0.1\r\nx-forwarded-for: 10.0.0.2\r\n";
        let headers = prepare(client, &local_upstream(), false, 0);
        assert_eq!(
            values(&headers, "x-forwarded-for"),
            ["10.0.0.1, 10.0.0.2, 127.0.0.1"]
        );
    }

    #[test]
    fn forwarded_for_without_previous() {
        let headers = prepare("", &local_upstream(), false, 0);
        assert_eq!(values(&headers, "x-forwarded-for"), ["127.0.0.1"]);
    }

    #[test]
    fn expect_continue_not_forwarded() {
        let client = "Expect: 100-continue\r\nHost: localhost:4321\r\nContent-Length: 3000\r\n";
        let headers = prepare(client, &local_upstream(), false, 3000);
        assert!(values(&headers, "expect").is_empty());
        assert_eq!(values(&headers, "host"), ["127.0.0.1:1"]);
        assert_eq!(values(&headers, "content-length"), ["3000"]);
    }

    #[test]
    fn upstream_token_replaces_client_key() {
        let mut upstream = local_upstream();
        upstream.api_token = Some(Secret::new("lm-token"));
        let client = "Authorization: Bearer lmlb-key\r\nX-Api-Key: lmlb-key\r\n";
        let headers = prepare(client, &upstream, true, 0);
        assert_eq!(values(&headers, "authorization"), ["Bearer lm-token"]);
        assert!(values(&headers, "x-api-key").is_empty());
    }

    #[test]
    fn upstream_token_without_inbound_keys() {
        let mut upstream = local_upstream();
        upstream.api_token = Some(Secret::new("lm-token"));
        let headers = prepare(
            "Authorization: Bearer for-lm-studio\r\n",
            &upstream,
            false,
            0,
        );
        assert_eq!(values(&headers, "authorization"), ["Bearer lm-token"]);
    }

    #[test]
    fn response_marked_with_instance_and_upstream() {
        let upstream = UpstreamHeaders::new(&local_upstream());
        let mut lines = HeaderLines::default();
        lines.push("Content-Type", b"application/json");
        mark_response(&mut lines, Some("qwen:2"), &upstream);
        let text = String::from_utf8(lines.as_bytes().to_vec()).unwrap();
        let expected = format!(
            "Content-Type: application/json\r\nx-lmlb-instance: qwen:2\r\nx-lmlb-upstream: {}\r\n",
            local_upstream().name
        );
        assert_eq!(text, expected);

        let mut lines = HeaderLines::default();
        mark_response(&mut lines, Some("bad\nid"), &upstream);
        let text = String::from_utf8(lines.as_bytes().to_vec()).unwrap();
        assert!(!text.contains("x-lmlb-instance"), "{text}");
        assert!(text.starts_with("x-lmlb-upstream: "), "{text}");
    }

    #[test]
    fn client_auth_kept_without_inbound_keys() {
        let client = "Authorization: Bearer for-lm-studio\r\nx-api-key: for-anthropic\r\n";
        let headers = prepare(client, &local_upstream(), false, 0);
        assert_eq!(values(&headers, "authorization"), ["Bearer for-lm-studio"]);
        assert_eq!(values(&headers, "x-api-key"), ["for-anthropic"]);
    }
}
