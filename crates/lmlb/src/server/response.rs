//! Response heads and body framing for clients (RFC 9112). Pure functions that write into the
//! connection's output buffer; the I/O is in `connection`.

use std::cell::RefCell;
use std::time::{SystemTime, UNIX_EPOCH};

use http::header;
use http::{Method, StatusCode, Version, response};
use http_body::SizeHint;

use crate::cors;
use crate::proxy::http1::{HeaderLines, decimal, write_header};

/// The way the response body is delimited on the wire.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BodyFraming {
    /// No body: a response to `HEAD`, a 1xx, 204 or 304.
    Bodiless,
    /// `Content-Length`: the body's size is known before it is sent.
    Length(u64),
    /// `Transfer-Encoding: chunked`, for streams of unknown length.
    Chunked,
    /// The body ends when the connection closes: unknown length to an HTTP/1.0 client.
    UntilClose,
}

impl BodyFraming {
    /// Picks the framing for a response to `method` from a client speaking `version`.
    pub fn choose(method: &Method, status: StatusCode, version: Version, size: &SizeHint) -> Self {
        let bodiless = *method == Method::HEAD
            || status.is_informational()
            || status == StatusCode::NO_CONTENT
            || status == StatusCode::NOT_MODIFIED;
        if bodiless {
            return BodyFraming::Bodiless;
        }
        match size.exact() {
            Some(length) => BodyFraming::Length(length),
            None if version == Version::HTTP_11 => BodyFraming::Chunked,
            None => BodyFraming::UntilClose,
        }
    }
}

/// Headers that describe the connection or the framing, which lmlb writes itself.
const OWN_HEADERS: [&[u8]; 4] = [
    b"connection",
    b"transfer-encoding",
    b"content-length",
    b"keep-alive",
];

/// Compares header names, ignoring case.
fn same_name(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.eq_ignore_ascii_case(b)
}

/// Writes the status line and headers, ending with the blank line.
///
/// `lines` are an upstream's header lines (`name: value\r\n` each), written after the response's
/// own headers, which win where both have one. With `cors`, the CORS headers that allow any
/// origin win over both. `keep_alive` is whether the connection stays open after this response.
/// The head states it for an HTTP/1.0 client when it does, and for an HTTP/1.1 client when it
/// does not.
pub fn write_head(
    out: &mut Vec<u8>,
    head: &response::Parts,
    lines: &HeaderLines,
    framing: BodyFraming,
    version: Version,
    keep_alive: bool,
    cors: bool,
) {
    out.extend_from_slice(b"HTTP/1.1 ");
    out.extend_from_slice(head.status.as_str().as_bytes());
    out.push(b' ');
    out.extend_from_slice(head.status.canonical_reason().unwrap_or("").as_bytes());
    out.extend_from_slice(b"\r\n");

    // A response to HEAD keeps the length of the body it would have had.
    let passes = |name: &[u8]| {
        let kept_length = framing == BodyFraming::Bodiless && same_name(name, b"content-length");
        let framed = !kept_length && OWN_HEADERS.iter().any(|own| same_name(own, name));
        let replaced_by_cors = cors && cors::is_allow_header(name);
        !framed && !replaced_by_cors
    };
    for (name, value) in &head.headers {
        if passes(name.as_str().as_bytes()) {
            write_header(out, name.as_str(), value.as_bytes());
        }
    }
    if cors {
        out.extend_from_slice(cors::ALLOW_ANY_ORIGIN);
    }

    let mut dated = head.headers.contains_key(header::DATE);
    if head.headers.is_empty() && !(cors && lines.has_cors()) {
        // No line is replaced, and none is a framing header, so the lines are copied whole.
        out.extend_from_slice(lines.as_bytes());
        dated |= lines.has_date();
    } else {
        for line in lines.as_bytes().split_inclusive(|&byte| byte == b'\n') {
            let name = line.split(|&byte| byte == b':').next().unwrap_or_default();
            let overridden = head
                .headers
                .keys()
                .any(|own| same_name(own.as_str().as_bytes(), name));
            if passes(name) && !overridden {
                dated |= same_name(name, b"date");
                out.extend_from_slice(line);
            }
        }
    }
    if !dated {
        with_date(|date| write_header(out, "date", date));
    }

    match framing {
        BodyFraming::Length(length) => {
            write_header(out, "content-length", decimal(length, &mut [0; 20]));
        }
        BodyFraming::Chunked => write_header(out, "transfer-encoding", b"chunked"),
        BodyFraming::Bodiless | BodyFraming::UntilClose => {}
    }
    match (keep_alive, version) {
        (false, _) => write_header(out, "connection", b"close"),
        (true, Version::HTTP_10) => write_header(out, "connection", b"keep-alive"),
        (true, _) => {}
    }
    out.extend_from_slice(b"\r\n");
}

/// Writes the size line that starts a chunk of `length` bytes.
pub fn chunk_start(length: usize, out: &mut Vec<u8>) {
    out.extend_from_slice(hex(length, &mut [0; 16]));
    out.extend_from_slice(b"\r\n");
}

/// Returns what follows a chunk's data: its line end, and the last chunk too when `last`.
pub fn chunk_end(last: bool) -> &'static [u8] {
    if last { b"\r\n0\r\n\r\n" } else { b"\r\n" }
}

/// The last chunk, with no trailers.
pub const LAST_CHUNK: &[u8] = b"0\r\n\r\n";

/// The interim response after which a client sends the body it held back.
pub const CONTINUE: &[u8] = b"HTTP/1.1 100 Continue\r\n\r\n";

fn hex(mut value: usize, buf: &mut [u8; 16]) -> &[u8] {
    let mut start = buf.len();
    loop {
        start -= 1;
        buf[start] = b"0123456789abcdef"[value & 0xf];
        value >>= 4;
        if value == 0 {
            return &buf[start..];
        }
    }
}

/// Passes the `Date` header's value to `use_date`, formatted once a second per thread.
fn with_date<R>(use_date: impl FnOnce(&[u8]) -> R) -> R {
    thread_local! {
        static DATE: RefCell<(u64, String)> = const { RefCell::new((u64::MAX, String::new())) };
    }
    let now = SystemTime::now();
    let second = now
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| since.as_secs());
    DATE.with_borrow_mut(|(cached, text)| {
        if *cached != second {
            *cached = second;
            *text = httpdate::fmt_http_date(now);
        }
        use_date(text.as_bytes())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proxy::http1::parse_response_head;
    use bytes::BytesMut;
    use http::{HeaderValue, Response};

    /// Returns the header lines that lmlb passes on from an upstream response with `headers`.
    fn upstream_lines(headers: &[u8]) -> HeaderLines {
        let mut head = BytesMut::from(&b"HTTP/1.1 200 OK\r\n"[..]);
        head.extend_from_slice(headers);
        head.extend_from_slice(b"\r\n");
        parse_response_head(&mut head, &Method::GET)
            .expect("a valid head")
            .expect("a complete head")
            .lines
    }

    fn encode(
        response: Response<()>,
        lines: &[u8],
        framing: BodyFraming,
        version: Version,
        keep_alive: bool,
    ) -> String {
        let (parts, ()) = response.into_parts();
        let lines = upstream_lines(lines);
        let mut out = Vec::new();
        write_head(
            &mut out, &parts, &lines, framing, version, keep_alive, false,
        );
        String::from_utf8(out).unwrap()
    }

    fn response_with(headers: &[(&'static str, &'static str)]) -> Response<()> {
        let mut response = Response::new(());
        for (name, value) in headers {
            response
                .headers_mut()
                .append(*name, HeaderValue::from_static(value));
        }
        response
    }

    #[test]
    fn sized_head_has_length_and_date() {
        let response = response_with(&[("content-type", "application/json")]);
        let text = encode(
            response,
            b"",
            BodyFraming::Length(12),
            Version::HTTP_11,
            true,
        );
        assert!(text.starts_with("HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n"));
        assert!(text.contains("\r\ncontent-length: 12\r\n"));
        assert!(text.contains("\r\ndate: "));
        assert!(text.contains(" GMT\r\n"));
        assert!(text.ends_with("\r\n\r\n"));
        assert!(!text.contains("connection"));
    }

    #[test]
    fn framing_and_connection_headers_are_lmlbs_own() {
        let response = response_with(&[
            ("content-length", "999"),
            ("transfer-encoding", "gzip"),
            ("connection", "upgrade"),
            ("date", "Tue, 01 Dec 2026 00:00:00 GMT"),
        ]);
        let text = encode(response, b"", BodyFraming::Chunked, Version::HTTP_11, false);
        assert!(!text.contains("999"));
        assert!(!text.contains("gzip"));
        assert!(!text.contains("upgrade"));
        assert!(text.contains("\r\ntransfer-encoding: chunked\r\n"));
        assert!(text.contains("\r\nconnection: close\r\n"));
        assert_eq!(
            text.matches("date: ").count(),
            1,
            "the upstream's date is kept"
        );
    }

    #[test]
    fn upstream_lines_pass_unless_lmlb_sets_the_header() {
        let response = response_with(&[("access-control-allow-origin", "*")]);
        let lines = b"Content-Type: text/event-stream\r\nAccess-Control-Allow-Origin: https://a\r\nContent-Length: 7\r\nDate: Tue, 01 Dec 2026 00:00:00 GMT\r\n";
        let text = encode(
            response,
            lines,
            BodyFraming::Chunked,
            Version::HTTP_11,
            true,
        );
        assert!(text.contains("\r\nContent-Type: text/event-stream\r\n"));
        assert!(text.contains("\r\naccess-control-allow-origin: *\r\n"));
        assert!(!text.contains("https://a"), "lmlb's own CORS header wins");
        assert!(
            !text.contains("Content-Length"),
            "the framing is lmlb's own"
        );
        assert_eq!(
            text.matches("ate: ").count(),
            1,
            "the upstream's date is kept"
        );
    }

    #[test]
    fn cors_headers_replace_the_upstreams() {
        let (parts, ()) = Response::new(()).into_parts();
        let lines = upstream_lines(
            b"Access-Control-Allow-Origin: https://a\r\nContent-Type: text/plain\r\n",
        );
        let mut out = Vec::new();
        let framing = BodyFraming::Length(0);
        write_head(
            &mut out,
            &parts,
            &lines,
            framing,
            Version::HTTP_11,
            true,
            true,
        );
        let text = String::from_utf8(out).unwrap();

        assert!(text.contains("\r\naccess-control-allow-origin: *\r\n"));
        assert!(text.contains("\r\naccess-control-expose-headers: x-lmlb-instance"));
        assert!(!text.contains("https://a"));
        assert!(text.contains("\r\nContent-Type: text/plain\r\n"));
    }

    #[test]
    fn upstream_lines_copied_whole() {
        let lines = b"Content-Type: application/json\r\nContent-Length: 7\r\nDate: Tue, 01 Dec 2026 00:00:00 GMT\r\n";
        let text = encode(
            Response::new(()),
            lines,
            BodyFraming::Length(7),
            Version::HTTP_11,
            true,
        );
        assert_eq!(
            text,
            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nDate: Tue, 01 Dec 2026 00:00:00 GMT\r\ncontent-length: 7\r\n\r\n"
        );
    }

    #[test]
    fn head_responses_keep_their_length() {
        let response = response_with(&[("content-length", "42")]);
        let text = encode(response, b"", BodyFraming::Bodiless, Version::HTTP_11, true);
        assert!(text.contains("\r\ncontent-length: 42\r\n"));
    }

    #[test]
    fn http10_clients_are_told_the_connection_stays() {
        let text = encode(
            Response::new(()),
            b"",
            BodyFraming::Length(0),
            Version::HTTP_10,
            true,
        );
        assert!(text.contains("\r\nconnection: keep-alive\r\n"));
    }

    #[test]
    fn framing_follows_method_status_version_and_size() {
        let exact = SizeHint::with_exact(5);
        let unknown = SizeHint::default();
        let choose = BodyFraming::choose;
        let (get, head) = (&Method::GET, &Method::HEAD);
        let (ok, v11, v10) = (StatusCode::OK, Version::HTTP_11, Version::HTTP_10);
        assert_eq!(choose(get, ok, v11, &exact), BodyFraming::Length(5));
        assert_eq!(choose(get, ok, v11, &unknown), BodyFraming::Chunked);
        assert_eq!(choose(get, ok, v10, &unknown), BodyFraming::UntilClose);
        assert_eq!(choose(head, ok, v11, &exact), BodyFraming::Bodiless);
        let no_content = StatusCode::NO_CONTENT;
        assert_eq!(choose(get, no_content, v11, &exact), BodyFraming::Bodiless);
    }

    #[test]
    fn chunk_sizes_are_hexadecimal() {
        for (length, line) in [(0, "0\r\n"), (10, "a\r\n"), (4096, "1000\r\n")] {
            let mut out = Vec::new();
            chunk_start(length, &mut out);
            assert_eq!(out, line.as_bytes());
        }
    }
}
