//! HTTP/1.1 framing for requests to upstreams: the request head, the response head and the
//! response body's framing (RFC 9112). These are pure functions over buffers, and the I/O is in
//! `connection`.
//!
//! lmlb forwards each request over a connection that the request's own task reads and writes, so
//! the request and its response pass no channel between tasks on the way.

use std::mem::MaybeUninit;

use bytes::{Buf, Bytes, BytesMut};
use http::{Method, StatusCode};

/// Response headers accepted from an upstream; more is an error.
const MAX_HEADERS: usize = 100;

/// The largest response head accepted from an upstream.
pub const MAX_HEAD_BYTES: usize = 64 * 1024;

/// Bytes kept free after an upstream's header lines for the `x-lmlb-*` lines added to them.
const OWN_LINES_ROOM: usize = 128;

/// The largest chunk-size line accepted, extensions included.
const MAX_CHUNK_LINE: usize = 4096;

/// A response that an upstream framed in a way lmlb cannot read.
#[derive(Debug, thiserror::Error)]
#[error("invalid response from the upstream: {0}")]
pub struct FramingError(pub &'static str);

/// A request ready to be written to an upstream.
pub struct Outgoing {
    pub method: Method,
    /// Request line, headers and body.
    pub bytes: Vec<u8>,
}

/// Starts a request with its request line; header lines and the body follow.
pub fn start_request(method: &Method, target: &str, capacity: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(capacity);
    out.extend_from_slice(method.as_str().as_bytes());
    out.push(b' ');
    out.extend_from_slice(target.as_bytes());
    out.extend_from_slice(b" HTTP/1.1\r\n");
    out
}

/// Writes one header line.
pub fn write_header(out: &mut Vec<u8>, name: impl AsRef<[u8]>, value: &[u8]) {
    out.extend_from_slice(name.as_ref());
    out.extend_from_slice(b": ");
    out.extend_from_slice(value);
    out.extend_from_slice(b"\r\n");
}

/// Formats `value` in decimal into `buf`, without allocating.
pub(crate) fn decimal(mut value: u64, buf: &mut [u8; 20]) -> &[u8] {
    let mut start = buf.len();
    loop {
        start -= 1;
        buf[start] = b'0' + (value % 10) as u8;
        value /= 10;
        if value == 0 {
            return &buf[start..];
        }
    }
}

/// Ends the header section and appends the body, given as pieces to join.
pub fn finish_request(out: &mut Vec<u8>, body: &[&[u8]]) {
    out.extend_from_slice(b"\r\n");
    for piece in body {
        out.extend_from_slice(piece);
    }
}

/// A parsed response head and how to read the body that follows it.
#[derive(Debug)]
pub struct ResponseHead {
    pub status: StatusCode,
    /// The upstream's header lines that pass on to the client.
    pub lines: HeaderLines,
    pub framing: Framing,
    /// Whether the connection can carry another request once the body has been read.
    pub keep_alive: bool,
}

/// An upstream's header lines that pass on to the client, each `name: value\r\n`, with room for
/// lmlb's own after them.
///
/// Only [`parse_response_head`] fills them, so they hold no header that describes the connection
/// or the framing. (A `Content-Length` stays only on a response that has no body.) The client's
/// response head can therefore copy them whole, unless lmlb replaces one of them.
#[derive(Debug, Default)]
pub struct HeaderLines {
    bytes: Vec<u8>,
    has_date: bool,
    has_cors: bool,
}

impl HeaderLines {
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// Returns whether one of the lines is `Date`.
    pub fn has_date(&self) -> bool {
        self.has_date
    }

    /// Returns whether one of the lines is a CORS header that lmlb writes itself when CORS is on.
    pub fn has_cors(&self) -> bool {
        self.has_cors
    }

    /// Adds one of lmlb's own header lines, which must not be one the flags above describe.
    pub fn push(&mut self, name: &str, value: &[u8]) {
        write_header(&mut self.bytes, name, value);
    }

    /// Adds lines prepared by lmlb, as [`push`](Self::push) does.
    pub fn extend_from_slice(&mut self, lines: &[u8]) {
        self.bytes.extend_from_slice(lines);
    }
}

/// The rule that finds the end of a response body.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Framing {
    /// `Content-Length` bytes, or none at all.
    Length(u64),
    /// `Transfer-Encoding: chunked`.
    Chunked,
    /// Everything until the upstream closes the connection.
    UntilClose,
}

/// Parses a response head at the start of `buf` and removes it from `buf`.
///
/// Returns `Ok(None)` while the head is incomplete. Informational (1xx) responses are skipped.
/// `method` is the request's, since a response to `HEAD` has no body whatever its headers state.
pub fn parse_response_head(
    buf: &mut BytesMut,
    method: &Method,
) -> Result<Option<ResponseHead>, FramingError> {
    loop {
        // Uninitialized, because filling the slots first would cost more than parsing.
        let mut slots = [const { MaybeUninit::<httparse::Header<'_>>::uninit() }; MAX_HEADERS];
        let mut parsed = httparse::Response::new(&mut []);
        let parse = httparse::ParserConfig::default().parse_response_with_uninit_headers(
            &mut parsed,
            buf,
            &mut slots,
        );
        let length = match parse {
            Ok(httparse::Status::Complete(length)) => length,
            Ok(httparse::Status::Partial) if buf.len() > MAX_HEAD_BYTES => {
                return Err(FramingError("the response head is too large"));
            }
            Ok(httparse::Status::Partial) => return Ok(None),
            Err(httparse::Error::TooManyHeaders) => {
                return Err(FramingError("the response has too many headers"));
            }
            Err(_) => return Err(FramingError("the response head is malformed")),
        };
        let code = parsed.code.unwrap_or(0);
        let version = parsed.version.unwrap_or(1);
        if (100..200).contains(&code) && code != 101 {
            buf.advance(length);
            continue;
        }

        let status = StatusCode::from_u16(code)
            .map_err(|_| FramingError("the response status is invalid"))?;
        let fields = &*parsed.headers;
        let framing = framing(status, fields, method)?;
        // After 101 the connection speaks another protocol, which lmlb never requests.
        let close = connection_has(values(fields, "connection"), b"close")
            || status == StatusCode::SWITCHING_PROTOCOLS;
        let keep_alive = match version {
            1 => !close,
            _ => !close && connection_has(values(fields, "connection"), b"keep-alive"),
        };
        let bodiless = *method == Method::HEAD
            || status == StatusCode::NO_CONTENT
            || status == StatusCode::NOT_MODIFIED;
        let lines = passed_lines(fields, length + OWN_LINES_ROOM, bodiless);
        buf.advance(length);
        return Ok(Some(ResponseHead {
            status,
            lines,
            framing,
            keep_alive: keep_alive && framing != Framing::UntilClose,
        }));
    }
}

/// Header names that describe one connection, not the message (RFC 9110, section 7.6.1).
const HOP_BY_HOP: [&str; 9] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

/// Returns whether a header describes one connection only, whatever the case of its name.
pub(crate) fn is_hop_by_hop(name: &[u8]) -> bool {
    HOP_BY_HOP
        .iter()
        .any(|hop| hop.as_bytes().eq_ignore_ascii_case(name))
}

/// Copies the header lines that pass on to the client, each as `name: value\r\n`. Hop-by-hop
/// headers, those that the `Connection` header names, and `x-lmlb-*` (lmlb sets its own) stay.
/// So does `Content-Length`, which lmlb writes itself, unless the response is `bodiless`: then it
/// states the length of a body that is not sent, and passes on.
fn passed_lines(fields: &[httparse::Header<'_>], capacity: usize, bodiless: bool) -> HeaderLines {
    let named = values(fields, "connection").next().is_some();
    let mut lines = HeaderLines {
        bytes: Vec::with_capacity(capacity),
        ..HeaderLines::default()
    };
    for field in fields {
        let name = field.name.as_bytes();
        let own = name
            .get(..7)
            .is_some_and(|prefix| prefix.eq_ignore_ascii_case(b"x-lmlb-"));
        let length = !bodiless && name.eq_ignore_ascii_case(b"content-length");
        if own
            || length
            || is_hop_by_hop(name)
            || (named && connection_has(values(fields, "connection"), name))
        {
            continue;
        }
        lines.has_date |= name.eq_ignore_ascii_case(b"date");
        lines.has_cors |= crate::cors::is_allow_header(name);
        write_header(&mut lines.bytes, field.name, field.value);
    }
    lines
}

/// Returns the values of every header called `name`, in order.
fn values<'a>(
    fields: &'a [httparse::Header<'a>],
    name: &'a str,
) -> impl Iterator<Item = &'a [u8]> + 'a {
    fields
        .iter()
        .filter(move |field| field.name.eq_ignore_ascii_case(name))
        .map(|field| field.value)
}

/// Finds the body's framing by the rules of RFC 9112, section 6.3, in their order.
fn framing(
    status: StatusCode,
    fields: &[httparse::Header<'_>],
    method: &Method,
) -> Result<Framing, FramingError> {
    let bodiless = *method == Method::HEAD
        || status.is_informational()
        || status == StatusCode::NO_CONTENT
        || status == StatusCode::NOT_MODIFIED;
    if bodiless {
        return Ok(Framing::Length(0));
    }

    match ends_chunked(values(fields, "transfer-encoding")) {
        Some(true) => return Ok(Framing::Chunked),
        Some(false) => return Ok(Framing::UntilClose),
        None => {}
    }
    match content_length(values(fields, "content-length")) {
        Ok(Some(length)) => Ok(Framing::Length(length)),
        Ok(None) => Ok(Framing::UntilClose),
        Err(LengthError::Invalid) => Err(FramingError("the response's Content-Length is invalid")),
        Err(LengthError::Conflicting) => Err(FramingError(
            "the response has conflicting Content-Length headers",
        )),
    }
}

/// Returns whether the last transfer coding is `chunked`, or `None` without `Transfer-Encoding`.
pub(crate) fn ends_chunked<'a>(values: impl Iterator<Item = &'a [u8]>) -> Option<bool> {
    let mut last = None;
    for value in values {
        let coding = value
            .split(|&byte| byte == b',')
            .next_back()
            .unwrap_or_default();
        last = Some(coding.trim_ascii().eq_ignore_ascii_case(b"chunked"));
    }
    last
}

/// A `Content-Length` that does not give one body length.
pub(crate) enum LengthError {
    Invalid,
    Conflicting,
}

/// Reads `Content-Length`, which may repeat only with the same value.
pub(crate) fn content_length<'a>(
    mut values: impl Iterator<Item = &'a [u8]>,
) -> Result<Option<u64>, LengthError> {
    let Some(first) = values.next() else {
        return Ok(None);
    };
    let length = parse_length(first).ok_or(LengthError::Invalid)?;
    if values.any(|other| parse_length(other) != Some(length)) {
        return Err(LengthError::Conflicting);
    }
    Ok(Some(length))
}

fn parse_length(value: &[u8]) -> Option<u64> {
    let value = value.trim_ascii();
    if value.is_empty() || value.len() > 19 || !value.iter().all(u8::is_ascii_digit) {
        return None;
    }
    value.iter().try_fold(0u64, |total, digit| {
        total.checked_mul(10)?.checked_add(u64::from(digit - b'0'))
    })
}

/// Returns whether the `Connection` header values list `option`.
pub(crate) fn connection_has<'a>(values: impl Iterator<Item = &'a [u8]>, option: &[u8]) -> bool {
    values
        .flat_map(|value| value.split(|&byte| byte == b','))
        .any(|token| token.trim_ascii().eq_ignore_ascii_case(option))
}

/// A reader of one response body out of a buffer, piece by piece, by its framing.
#[derive(Debug)]
pub struct BodyDecoder {
    state: State,
}

#[derive(Debug, PartialEq, Eq)]
enum State {
    /// Bytes left of a `Content-Length` body.
    Length(u64),
    /// Before a chunk-size line.
    ChunkSize,
    /// Bytes left of the current chunk's data.
    ChunkData(u64),
    /// The CRLF after a chunk's data.
    ChunkEnd,
    /// Trailer lines after the last chunk, up to an empty line.
    Trailers,
    UntilClose,
    Done,
}

/// The result of one decoding step.
#[derive(Debug, PartialEq, Eq)]
pub enum Decoded {
    Data(Bytes),
    /// The buffer contains no complete piece, so more must be read.
    NeedMore,
    End,
}

impl BodyDecoder {
    pub fn new(framing: Framing) -> BodyDecoder {
        let state = match framing {
            Framing::Length(0) => State::Done,
            Framing::Length(length) => State::Length(length),
            Framing::Chunked => State::ChunkSize,
            Framing::UntilClose => State::UntilClose,
        };
        BodyDecoder { state }
    }

    pub fn is_done(&self) -> bool {
        self.state == State::Done
    }

    /// Bytes of body still expected, when the framing gives a length.
    pub fn remaining(&self) -> Option<u64> {
        match self.state {
            State::Length(left) => Some(left),
            State::Done => Some(0),
            _ => None,
        }
    }

    /// Takes the next piece of the body out of `buf`.
    pub fn decode(&mut self, buf: &mut BytesMut) -> Result<Decoded, FramingError> {
        loop {
            match self.state {
                State::Done => return Ok(Decoded::End),
                State::Length(left) => return Ok(self.take_data(buf, left, State::Done)),
                State::ChunkData(left) => return Ok(self.take_data(buf, left, State::ChunkEnd)),
                State::UntilClose if buf.is_empty() => return Ok(Decoded::NeedMore),
                State::UntilClose => return Ok(Decoded::Data(buf.split().freeze())),
                State::ChunkSize => {
                    let Some(line) = take_line(buf)? else {
                        return Ok(Decoded::NeedMore);
                    };
                    self.state = match parse_chunk_size(&line)? {
                        0 => State::Trailers,
                        size => State::ChunkData(size),
                    };
                }
                State::ChunkEnd => {
                    let Some(line) = take_line(buf)? else {
                        return Ok(Decoded::NeedMore);
                    };
                    if !line.is_empty() {
                        return Err(FramingError("a chunk is longer than its size"));
                    }
                    self.state = State::ChunkSize;
                }
                State::Trailers => {
                    let Some(line) = take_line(buf)? else {
                        return Ok(Decoded::NeedMore);
                    };
                    if line.is_empty() {
                        self.state = State::Done;
                    }
                }
            }
        }
    }

    /// Ends a body that runs until the connection closes. Any other body is cut short.
    pub fn at_eof(&mut self) -> Result<(), FramingError> {
        match self.state {
            State::UntilClose | State::Done => {
                self.state = State::Done;
                Ok(())
            }
            _ => Err(FramingError("the upstream closed the connection mid-body")),
        }
    }

    fn take_data(&mut self, buf: &mut BytesMut, left: u64, next: State) -> Decoded {
        if buf.is_empty() {
            return Decoded::NeedMore;
        }
        let take = usize::try_from(left).map_or(buf.len(), |left| left.min(buf.len()));
        let data = buf.split_to(take).freeze();
        let left = left - take as u64;
        self.state = match left {
            0 => next,
            _ => match self.state {
                State::Length(_) => State::Length(left),
                _ => State::ChunkData(left),
            },
        };
        Decoded::Data(data)
    }
}

/// Takes one CRLF-terminated line out of `buf`, without its line ending.
fn take_line(buf: &mut BytesMut) -> Result<Option<BytesMut>, FramingError> {
    let Some(end) = buf.iter().position(|&byte| byte == b'\n') else {
        if buf.len() > MAX_CHUNK_LINE {
            return Err(FramingError("a chunk line is too long"));
        }
        return Ok(None);
    };
    let mut line = buf.split_to(end + 1);
    line.truncate(end);
    if line.last() == Some(&b'\r') {
        line.truncate(end - 1);
    }
    Ok(Some(line))
}

/// Reads the hexadecimal size at the start of a chunk-size line, before any extension.
fn parse_chunk_size(line: &[u8]) -> Result<u64, FramingError> {
    let invalid = FramingError("a chunk size is invalid");
    let digits = line
        .split(|&byte| byte == b';')
        .next()
        .unwrap_or_default()
        .trim_ascii();
    if digits.is_empty() || digits.len() > 15 {
        return Err(invalid);
    }
    digits.iter().try_fold(0u64, |size, &digit| {
        let value = (digit as char)
            .to_digit(16)
            .ok_or(FramingError("a chunk size is invalid"))?;
        Ok(size * 16 + u64::from(value))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(text: &str, method: &Method) -> ResponseHead {
        let mut buf = BytesMut::from(text);
        parse_response_head(&mut buf, method)
            .expect("valid head")
            .expect("complete head")
    }

    fn decode_all(framing: Framing, input: &[&[u8]]) -> Result<Vec<u8>, FramingError> {
        let mut decoder = BodyDecoder::new(framing);
        let mut buf = BytesMut::new();
        let mut body = Vec::new();
        for piece in input {
            buf.extend_from_slice(piece);
            loop {
                match decoder.decode(&mut buf)? {
                    Decoded::Data(data) => body.extend_from_slice(&data),
                    Decoded::NeedMore => break,
                    Decoded::End => return Ok(body),
                }
            }
        }
        decoder.at_eof()?;
        Ok(body)
    }

    #[test]
    fn request_head_and_body() {
        let mut out = start_request(&Method::POST, "/v1/chat/completions?x=1", 0);
        write_header(&mut out, "host", b"127.0.0.1:1234");
        write_header(&mut out, "content-length", b"2");
        finish_request(&mut out, &[b"{", b"}"]);
        assert_eq!(
            out,
            b"POST /v1/chat/completions?x=1 HTTP/1.1\r\nhost: 127.0.0.1:1234\r\ncontent-length: 2\r\n\r\n{}"
        );
    }

    #[test]
    fn head_with_length() {
        let parsed = head(
            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 12\r\n\r\n",
            &Method::POST,
        );
        assert_eq!(parsed.status, StatusCode::OK);
        assert_eq!(
            parsed.lines.as_bytes(),
            b"Content-Type: application/json\r\n",
            "the length is lmlb's to write"
        );
        assert!(!parsed.lines.has_date());
        assert_eq!(parsed.framing, Framing::Length(12));
        assert!(parsed.keep_alive);
    }

    #[test]
    fn bodiless_responses_keep_their_length() {
        let text =
            "HTTP/1.1 200 OK\r\nContent-Length: 12\r\nDate: Tue, 01 Dec 2026 00:00:00 GMT\r\n\r\n";
        let parsed = head(text, &Method::HEAD);
        let lines = parsed.lines.as_bytes();
        assert!(lines.starts_with(b"Content-Length: 12\r\n"), "{lines:?}");
        assert!(parsed.lines.has_date());
        assert!(!parsed.lines.has_cors());

        let cors = head(
            "HTTP/1.1 204 No Content\r\nAccess-Control-Allow-Origin: https://a\r\n\r\n",
            &Method::GET,
        );
        assert!(cors.lines.has_cors());
    }

    #[test]
    fn decimal_formats_every_width() {
        assert_eq!(decimal(0, &mut [0; 20]), b"0");
        assert_eq!(decimal(4096, &mut [0; 20]), b"4096");
        assert_eq!(
            decimal(u64::MAX, &mut [0; 20]),
            u64::MAX.to_string().as_bytes()
        );
    }

    #[test]
    fn connection_level_headers_do_not_pass() {
        let parsed = head(
            "HTTP/1.1 200 OK\r\nConnection: keep-alive, X-Private\r\nX-Private: 1\r\nKeep-Alive: timeout=5\r\nTransfer-Encoding: chunked\r\nX-LMLB-Instance: other\r\nContent-Type: text/event-stream\r\n\r\n",
            &Method::POST,
        );
        assert_eq!(
            parsed.lines.as_bytes(),
            b"Content-Type: text/event-stream\r\n"
        );
        assert_eq!(parsed.framing, Framing::Chunked);
        assert!(parsed.keep_alive);
    }

    #[test]
    fn head_incomplete_then_complete() {
        let mut buf = BytesMut::from("HTTP/1.1 200 OK\r\nContent-Len");
        assert!(
            parse_response_head(&mut buf, &Method::GET)
                .unwrap()
                .is_none()
        );
        buf.extend_from_slice(b"gth: 0\r\n\r\nNEXT");
        let parsed = parse_response_head(&mut buf, &Method::GET)
            .unwrap()
            .unwrap();
        assert_eq!(parsed.framing, Framing::Length(0));
        assert_eq!(&buf[..], b"NEXT", "the body's bytes stay in the buffer");
    }

    #[test]
    fn informational_responses_skipped() {
        let parsed = head(
            "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n",
            &Method::POST,
        );
        assert_eq!(parsed.status, StatusCode::CREATED);
    }

    #[test]
    fn chunked_wins_over_length() {
        let parsed = head(
            "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n",
            &Method::POST,
        );
        assert_eq!(parsed.framing, Framing::Chunked);
    }

    #[test]
    fn bodiless_responses() {
        let to_head = head(
            "HTTP/1.1 200 OK\r\nContent-Length: 99\r\n\r\n",
            &Method::HEAD,
        );
        assert_eq!(to_head.framing, Framing::Length(0));
        let no_content = head("HTTP/1.1 204 No Content\r\n\r\n", &Method::DELETE);
        assert_eq!(no_content.framing, Framing::Length(0));
        assert!(no_content.keep_alive);
    }

    #[test]
    fn close_delimited_not_reused() {
        let parsed = head(
            "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\n",
            &Method::GET,
        );
        assert_eq!(parsed.framing, Framing::UntilClose);
        assert!(!parsed.keep_alive);
    }

    #[test]
    fn connection_close_not_reused() {
        let parsed = head(
            "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 0\r\n\r\n",
            &Method::GET,
        );
        assert!(!parsed.keep_alive);
        let old = head("HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n", &Method::GET);
        assert!(!old.keep_alive);
        let old_kept = head(
            "HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 0\r\n\r\n",
            &Method::GET,
        );
        assert!(old_kept.keep_alive);
    }

    #[test]
    fn invalid_heads_rejected() {
        let cases = [
            "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n",
            "HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
            "HTTP/1.1 200 OK\r\nContent-Length: 99999999999999999999\r\n\r\n",
            "NOT HTTP\r\n\r\n",
        ];
        for case in cases {
            let mut buf = BytesMut::from(case);
            assert!(
                parse_response_head(&mut buf, &Method::GET).is_err(),
                "accepted {case:?}"
            );
        }
    }

    #[test]
    fn oversized_head_rejected() {
        let mut buf = BytesMut::from("HTTP/1.1 200 OK\r\n");
        buf.extend_from_slice(&vec![b'x'; MAX_HEAD_BYTES + 1]);
        assert!(parse_response_head(&mut buf, &Method::GET).is_err());
    }

    #[test]
    fn length_body_in_pieces() {
        let body = decode_all(Framing::Length(11), &[b"hello", b" wor", b"ld"]).unwrap();
        assert_eq!(body, b"hello world");
    }

    #[test]
    fn length_body_cut_short() {
        assert!(decode_all(Framing::Length(11), &[b"hello"]).is_err());
    }

    #[test]
    fn chunked_body_split_anywhere() {
        let wire: &[u8] = b"5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nx-trailer: 1\r\n\r\n";
        for split in 0..wire.len() {
            let (first, second) = wire.split_at(split);
            let body = decode_all(Framing::Chunked, &[first, second]).unwrap();
            assert_eq!(body, b"hello world", "split at {split}");
        }
    }

    #[test]
    fn chunked_body_cut_short() {
        assert!(decode_all(Framing::Chunked, &[b"5\r\nhel"]).is_err());
        assert!(decode_all(Framing::Chunked, &[b"5\r\nhello\r\n"]).is_err());
    }

    #[test]
    fn chunked_body_invalid() {
        assert!(decode_all(Framing::Chunked, &[b"zz\r\n"]).is_err());
        assert!(decode_all(Framing::Chunked, &[b"2\r\nabc\r\n"]).is_err());
    }

    #[test]
    fn close_delimited_body() {
        let body = decode_all(Framing::UntilClose, &[b"data: 1\n\n", b"data: 2\n\n"]).unwrap();
        assert_eq!(body, b"data: 1\n\ndata: 2\n\n");
    }
}
