//! Request heads from clients (RFC 9112): checked and located within the read buffer, with the
//! framing of the body that follows. These are pure functions over the connection's read buffer,
//! and the I/O is in `connection`.

use std::mem::MaybeUninit;

use bytes::{Buf, Bytes, BytesMut};
use http::uri::PathAndQuery;
use http::{Method, Uri, Version};

use crate::proxy::http1::{Framing, LengthError, connection_has, content_length, ends_chunked};
use crate::request::{ClientRequest, Field, Span};

/// Request headers accepted from a client; more is an error.
const MAX_HEADERS: usize = 100;

/// The largest request head accepted from a client.
pub const MAX_HEAD_BYTES: usize = 64 * 1024;

/// A parsed request head and how to read its body.
#[derive(Debug)]
pub struct RequestHead {
    /// The request, whose body is still to be read.
    pub request: ClientRequest,
    /// `Length(0)` when the request has no body.
    pub framing: Framing,
    /// Whether the client lets the connection carry another request after this one.
    pub keep_alive: bool,
    /// The client waits for `100 Continue` before it sends the body.
    pub expects_continue: bool,
}

/// A request head that lmlb rejects with an error response, after which it closes the connection.
#[derive(Debug, PartialEq, Eq)]
pub enum HeadError {
    /// The head is larger than [`MAX_HEAD_BYTES`] or has more than 100 headers.
    TooLarge,
    /// The head is not valid HTTP/1.1. The text describes the fault.
    Malformed(&'static str),
}

/// The request line as ranges within the head, the head's length and its number of headers.
struct Layout {
    length: usize,
    method: Span,
    target: Span,
    version: u8,
    count: usize,
}

/// Parses a request head at the start of `buf` and removes it from `buf`.
///
/// Returns `Ok(None)` while the head is incomplete. Empty lines before the request line are
/// skipped, as RFC 9112 recommends for servers.
pub fn parse_request_head(buf: &mut BytesMut) -> Result<Option<RequestHead>, HeadError> {
    let leading = buf
        .iter()
        .take_while(|&&b| b == b'\r' || b == b'\n')
        .count();
    buf.advance(leading);

    // Filled in place: returning the table by value would copy its 1.6 KB.
    let mut fields = [Field::default(); MAX_HEADERS];
    let Some(layout) = locate(buf, &mut fields)? else {
        return Ok(None);
    };

    // The target and the header lines stay in the head, which is not copied.
    let head = buf.split_to(layout.length).freeze();
    let span = |(from, to): Span| from as usize..to as usize;
    let method = Method::from_bytes(&head[span(layout.method)])
        .map_err(|_| HeadError::Malformed("the request method is invalid"))?;
    let target = parse_target(head.slice(span(layout.target)))?;
    let version = if layout.version == 1 {
        Version::HTTP_11
    } else {
        Version::HTTP_10
    };

    let fields = fields[..layout.count].to_vec();
    let request = ClientRequest::new(head, method, version, target, fields);
    complete(request).map(Some)
}

/// Reads the request target as the path and query that an upstream gets. The absolute form
/// (`http://host/path`) gives its path, and the asterisk form (`*`) stays as it is.
fn parse_target(target: Bytes) -> Result<PathAndQuery, HeadError> {
    let invalid = |_| HeadError::Malformed("the request target is invalid");
    if target.first() == Some(&b'/') {
        return PathAndQuery::from_maybe_shared(target).map_err(invalid);
    }
    let uri = Uri::from_maybe_shared(target).map_err(invalid)?;
    Ok(uri
        .path_and_query()
        .cloned()
        .unwrap_or_else(|| PathAndQuery::from_static("/")))
}

/// Finds where the request line and each header line lie, without building anything yet.
fn locate(buf: &[u8], fields: &mut [Field; MAX_HEADERS]) -> Result<Option<Layout>, HeadError> {
    // Uninitialized, because filling the slots first would cost more than parsing.
    let mut slots = [const { MaybeUninit::<httparse::Header<'_>>::uninit() }; MAX_HEADERS];
    let mut parsed = httparse::Request::new(&mut []);
    let length = match parsed.parse_with_uninit_headers(buf, &mut slots) {
        Ok(httparse::Status::Complete(length)) => length,
        Ok(httparse::Status::Partial) if buf.len() > MAX_HEAD_BYTES => {
            return Err(HeadError::TooLarge);
        }
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(httparse::Error::TooManyHeaders) => return Err(HeadError::TooLarge),
        Err(httparse::Error::Version) => {
            return Err(HeadError::Malformed(
                "only HTTP/1.0 and HTTP/1.1 are served",
            ));
        }
        Err(_) => return Err(HeadError::Malformed("the request head is malformed")),
    };
    if length > MAX_HEAD_BYTES {
        return Err(HeadError::TooLarge);
    }

    let start = buf.as_ptr() as usize;
    // The head is at most 64 KiB, so every offset fits in a `u32`.
    let range = |part: &[u8]| {
        let from = part.as_ptr() as usize - start;
        (from as u32, (from + part.len()) as u32)
    };
    let (Some(method), Some(target), Some(version)) = (parsed.method, parsed.path, parsed.version)
    else {
        return Err(HeadError::Malformed("the request line is incomplete"));
    };
    for (field, header) in fields.iter_mut().zip(parsed.headers.iter()) {
        field.name = range(header.name.as_bytes());
        field.value = range(header.value);
    }
    Ok(Some(Layout {
        length,
        method: range(method.as_bytes()),
        target: range(target.as_bytes()),
        version,
        count: parsed.headers.len(),
    }))
}

/// Works out the body's framing and the connection's persistence from the headers.
fn complete(request: ClientRequest) -> Result<RequestHead, HeadError> {
    let connection = || request.header_values("connection");
    let mut keep_alive = if request.version() == Version::HTTP_11 {
        !connection_has(connection(), b"close")
    } else {
        connection_has(connection(), b"keep-alive")
    };
    let framing = body_framing(&request)?;
    if framing == Framing::Chunked && request.has_header("content-length") {
        // Both framings at once is how requests are smuggled past proxies: the chunked one
        // wins (the length is not forwarded), and the connection ends with this request.
        keep_alive = false;
    }
    let expects_continue = request
        .header("expect")
        .is_some_and(|value| value.eq_ignore_ascii_case(b"100-continue"));
    Ok(RequestHead {
        request,
        framing,
        keep_alive,
        expects_continue,
    })
}

/// Returns the request body's framing by RFC 9112, section 6.3: chunked, a length, or none.
fn body_framing(request: &ClientRequest) -> Result<Framing, HeadError> {
    match ends_chunked(request.header_values("transfer-encoding")) {
        Some(true) => return Ok(Framing::Chunked),
        Some(false) => {
            return Err(HeadError::Malformed(
                "the request's Transfer-Encoding does not end in chunked",
            ));
        }
        None => {}
    }
    match content_length(request.header_values("content-length")) {
        Ok(length) => Ok(Framing::Length(length.unwrap_or(0))),
        Err(LengthError::Invalid) => Err(HeadError::Malformed(
            "the request's Content-Length is invalid",
        )),
        Err(LengthError::Conflicting) => Err(HeadError::Malformed(
            "the request has conflicting Content-Length headers",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Option<RequestHead>, HeadError> {
        parse_request_head(&mut BytesMut::from(text))
    }

    fn head(text: &str) -> RequestHead {
        parse(text).unwrap().expect("a complete head")
    }

    #[test]
    fn post_head_leaves_body_in_buffer() {
        let mut buf = BytesMut::from(
            "POST /v1/chat/completions?x=1 HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\nX-Two: 1\r\nX-Two: 2\r\n\r\n{}",
        );
        let head = parse_request_head(&mut buf).unwrap().unwrap();
        let request = &head.request;
        assert_eq!(request.method(), Method::POST);
        assert_eq!(request.path(), "/v1/chat/completions");
        assert_eq!(request.target(), "/v1/chat/completions?x=1");
        assert_eq!(request.version(), Version::HTTP_11);
        assert_eq!(request.header("host"), Some(&b"a"[..]));
        assert_eq!(request.header_values("x-two").count(), 2);
        assert_eq!(head.framing, Framing::Length(2));
        assert!(head.keep_alive);
        assert!(!head.expects_continue);
        assert_eq!(&buf[..], b"{}");
    }

    #[test]
    fn incomplete_head_waits_for_more() {
        let mut buf = BytesMut::from("GET /health HTTP/1.1\r\nHost: a\r\n");
        assert_eq!(parse_request_head(&mut buf).unwrap().map(|_| ()), None);
        assert_eq!(buf.len(), 31, "nothing is consumed");
    }

    #[test]
    fn blank_lines_before_a_request_are_skipped() {
        let head = head("\r\n\r\nGET /health HTTP/1.1\r\n\r\n");
        assert_eq!(head.request.path(), "/health");
        assert_eq!(head.framing, Framing::Length(0));
    }

    #[test]
    fn persistence_follows_the_version_and_connection_header() {
        assert!(!head("GET / HTTP/1.1\r\nConnection: Close\r\n\r\n").keep_alive);
        assert!(!head("GET / HTTP/1.0\r\n\r\n").keep_alive);
        assert!(head("GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n").keep_alive);
    }

    #[test]
    fn chunked_beats_length_and_closes() {
        let head = head(
            "POST / HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\nContent-Length: 5\r\n\r\n",
        );
        assert_eq!(head.framing, Framing::Chunked);
        assert!(!head.keep_alive);
    }

    #[test]
    fn targets_are_forwarded_in_origin_form() {
        let target = |line: &str| {
            head(&format!("{line}\r\n\r\n"))
                .request
                .target()
                .to_string()
        };
        assert_eq!(
            target("GET http://lmlb.local:4321/v1/models?x=1 HTTP/1.1"),
            "/v1/models?x=1"
        );
        assert_eq!(target("GET http://lmlb.local HTTP/1.1"), "/");
        assert_eq!(target("OPTIONS * HTTP/1.1"), "*");
        assert_eq!(target("GET /health#top HTTP/1.1"), "/health");
    }

    #[test]
    fn expect_continue_is_noticed() {
        let head = head("POST / HTTP/1.1\r\nExpect: 100-Continue\r\nContent-Length: 1\r\n\r\n");
        assert!(head.expects_continue);
    }

    #[test]
    fn bad_framing_is_refused() {
        let cases = [
            "POST / HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n",
            "POST / HTTP/1.1\r\nContent-Length: 12x\r\n\r\n",
            "POST / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
            "POST / HTTP/1.1\r\nContent-Length: 99999999999999999999\r\n\r\n",
        ];
        for case in cases {
            assert!(
                matches!(parse(case), Err(HeadError::Malformed(_))),
                "{case:?}"
            );
        }
        let same = head("POST / HTTP/1.1\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\n");
        assert_eq!(same.framing, Framing::Length(3));
    }

    #[test]
    fn malformed_heads_are_refused() {
        for case in [
            "GET / HTTP/2.0\r\n\r\n",
            "GET  / HTTP/1.1\r\n\r\n",
            "GET / HTTP/1.1\r\nBad Name: 1\r\n\r\n",
            "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
        ] {
            assert!(
                matches!(parse(case), Err(HeadError::Malformed(_))),
                "{case:?}"
            );
        }
    }

    #[test]
    fn oversized_heads_are_refused() {
        let long = format!(
            "GET / HTTP/1.1\r\nX-Long: {}\r\n",
            "a".repeat(MAX_HEAD_BYTES)
        );
        assert_eq!(parse(&long).unwrap_err(), HeadError::TooLarge);

        let many: String = (0..=MAX_HEADERS).map(|i| format!("X-{i}: 1\r\n")).collect();
        let request = format!("GET / HTTP/1.1\r\n{many}\r\n");
        assert_eq!(parse(&request).unwrap_err(), HeadError::TooLarge);
    }
}
