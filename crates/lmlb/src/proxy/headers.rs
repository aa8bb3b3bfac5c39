//! Header rules for forwarding: hop-by-hop headers stay on their hop, the client's address is
//! appended to `X-Forwarded-For`, and upstream credentials replace lmlb's own.

use std::net::IpAddr;

use http::header::{self, HeaderMap, HeaderName, HeaderValue};

use crate::config::UpstreamConfig;

/// Headers that describe one connection, not the message (RFC 9110, section 7.6.1).
const HOP_BY_HOP: [HeaderName; 8] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    header::PROXY_AUTHENTICATE,
    header::PROXY_AUTHORIZATION,
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
];

pub const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
pub const X_LMLB_INSTANCE: HeaderName = HeaderName::from_static("x-lmlb-instance");
pub const X_LMLB_UPSTREAM: HeaderName = HeaderName::from_static("x-lmlb-upstream");

/// Removes hop-by-hop headers, including those the `Connection` header names.
pub fn strip_hop_by_hop(headers: &mut HeaderMap) {
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .filter_map(|name| HeaderName::from_bytes(name.trim().as_bytes()).ok())
        .collect();
    for name in named.iter().chain(HOP_BY_HOP.iter()) {
        headers.remove(name);
    }
    headers.remove(header::UPGRADE);
}

/// Turns the client's request headers into the upstream request's headers.
///
/// `strip_client_auth` removes the client's credentials when they were lmlb's own API key.
pub fn prepare_request(
    headers: &mut HeaderMap,
    client_ip: IpAddr,
    upstream: &UpstreamConfig,
    strip_client_auth: bool,
    body_len: usize,
) {
    strip_hop_by_hop(headers);
    headers.remove(header::HOST);
    // lmlb has already read the whole body, so the upstream has nothing to wait for.
    headers.remove(header::EXPECT);
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(body_len));
    append_forwarded_for(headers, client_ip);

    if strip_client_auth {
        headers.remove(header::AUTHORIZATION);
        headers.remove(HeaderName::from_static("x-api-key"));
    }
    if let Some(token) = &upstream.api_token
        && let Ok(value) = HeaderValue::from_str(&format!("Bearer {}", token.expose()))
    {
        headers.insert(header::AUTHORIZATION, value);
    }
}

fn append_forwarded_for(headers: &mut HeaderMap, client_ip: IpAddr) {
    let value = match headers.get(&X_FORWARDED_FOR).and_then(|v| v.to_str().ok()) {
        Some(previous) => format!("{previous}, {client_ip}"),
        None => client_ip.to_string(),
    };
    if let Ok(value) = HeaderValue::from_str(&value) {
        headers.insert(X_FORWARDED_FOR, value);
    }
}

/// Adds the headers that tell the client where its request ran.
pub fn mark_response(headers: &mut HeaderMap, instance: &str, upstream: &str) {
    strip_hop_by_hop(headers);
    if let Ok(value) = HeaderValue::from_str(instance) {
        headers.insert(X_LMLB_INSTANCE, value);
    }
    if let Ok(value) = HeaderValue::from_str(upstream) {
        headers.insert(X_LMLB_UPSTREAM, value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Secret, upstream_from_url};

    #[test]
    fn hop_by_hop_and_named_headers_removed() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::CONNECTION,
            HeaderValue::from_static("keep-alive, x-private"),
        );
        headers.insert("x-private", HeaderValue::from_static("1"));
        headers.insert("keep-alive", HeaderValue::from_static("timeout=5"));
        headers.insert(
            header::TRANSFER_ENCODING,
            HeaderValue::from_static("chunked"),
        );
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        strip_hop_by_hop(&mut headers);
        assert_eq!(headers.len(), 1);
        assert!(headers.contains_key(header::CONTENT_TYPE));
    }

    #[test]
    fn forwarded_for_appends() {
        let upstream = upstream_from_url("http://127.0.0.1:1", None, None).unwrap();
        let mut headers = HeaderMap::new();
        headers.insert(X_FORWARDED_FOR, HeaderValue::from_static("10.0.0.1"));
        prepare_request(
            &mut headers,
            "127.0.0.1".parse().unwrap(),
            &upstream,
            false,
            7,
        );
        assert_eq!(headers[X_FORWARDED_FOR], "10.0.0.1, 127.0.0.1");
        assert_eq!(headers[header::CONTENT_LENGTH], "7");
    }

    #[test]
    fn expect_continue_not_forwarded() {
        let upstream = upstream_from_url("http://127.0.0.1:1", None, None).unwrap();
        let mut headers = HeaderMap::new();
        headers.insert(header::EXPECT, HeaderValue::from_static("100-continue"));
        headers.insert(header::HOST, HeaderValue::from_static("localhost:4321"));
        prepare_request(
            &mut headers,
            "127.0.0.1".parse().unwrap(),
            &upstream,
            false,
            3000,
        );
        assert!(!headers.contains_key(header::EXPECT));
        assert!(!headers.contains_key(header::HOST));
    }

    #[test]
    fn upstream_token_replaces_client_key() {
        let mut upstream = upstream_from_url("http://127.0.0.1:1", None, None).unwrap();
        upstream.api_token = Some(Secret::new("lm-token"));
        let mut headers = HeaderMap::new();
        headers.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("Bearer lmlb-key"),
        );
        prepare_request(
            &mut headers,
            "127.0.0.1".parse().unwrap(),
            &upstream,
            true,
            0,
        );
        assert_eq!(headers[header::AUTHORIZATION], "Bearer lm-token");
    }

    #[test]
    fn client_auth_kept_without_inbound_keys() {
        let upstream = upstream_from_url("http://127.0.0.1:1", None, None).unwrap();
        let mut headers = HeaderMap::new();
        headers.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("Bearer for-lm-studio"),
        );
        prepare_request(
            &mut headers,
            "127.0.0.1".parse().unwrap(),
            &upstream,
            false,
            0,
        );
        assert_eq!(headers[header::AUTHORIZATION], "Bearer for-lm-studio");
    }
}
