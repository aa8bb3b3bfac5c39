//! A client's request as it arrived: the head kept as the bytes read off the socket, with the
//! positions of its header lines, and the whole body.
//!
//! Routing reads a few headers and forwarding copies the rest line by line, so neither needs a
//! header map. Building one for every request cost about 2,600 of lmlb's 27,800 instructions per
//! request (callgrind).

use bytes::Bytes;
use http::uri::PathAndQuery;
use http::{Method, Version};

/// Byte range within the head. The head is at most 64 KiB, so every offset fits in a `u32`.
pub(crate) type Span = (u32, u32);

/// Byte ranges of one header line within the head.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Field {
    pub name: Span,
    pub value: Span,
}

/// A request from a client: method, target, version, header lines in their order, and body.
#[derive(Debug)]
pub struct ClientRequest {
    head: Bytes,
    method: Method,
    version: Version,
    target: PathAndQuery,
    fields: Vec<Field>,
    body: Bytes,
}

impl ClientRequest {
    /// Builds a request from a head that has been checked, with the ranges of its header lines.
    pub(crate) fn new(
        head: Bytes,
        method: Method,
        version: Version,
        target: PathAndQuery,
        fields: Vec<Field>,
    ) -> ClientRequest {
        ClientRequest {
            head,
            method,
            version,
            target,
            fields,
            body: Bytes::new(),
        }
    }

    pub fn method(&self) -> &Method {
        &self.method
    }

    pub fn version(&self) -> Version {
        self.version
    }

    /// Returns the path, without the query.
    pub fn path(&self) -> &str {
        self.target.path()
    }

    /// Returns the path and query, as an upstream expects them on its request line.
    pub fn target(&self) -> &str {
        self.target.as_str()
    }

    /// Returns the size of the head as the client sent it, in bytes.
    pub fn head_len(&self) -> usize {
        self.head.len()
    }

    pub fn body(&self) -> &Bytes {
        &self.body
    }

    pub fn set_body(&mut self, body: Bytes) {
        self.body = body;
    }

    /// Returns every header line as a name and a value, in the order the client sent them.
    pub fn headers(&self) -> impl Iterator<Item = (&[u8], &[u8])> {
        self.fields
            .iter()
            .map(|field| (self.bytes(field.name), self.bytes(field.value)))
    }

    /// Returns the values of every header called `name` (compared without case), in order.
    pub fn header_values<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a [u8]> + 'a {
        self.headers()
            .filter(move |(field, _)| field.eq_ignore_ascii_case(name.as_bytes()))
            .map(|(_, value)| value)
    }

    /// Returns the value of the first header called `name`.
    pub fn header<'a>(&'a self, name: &'a str) -> Option<&'a [u8]> {
        self.header_values(name).next()
    }

    /// Returns the value of the first header called `name`, if it is text.
    pub fn header_str<'a>(&'a self, name: &'a str) -> Option<&'a str> {
        self.header(name)
            .and_then(|value| std::str::from_utf8(value).ok())
    }

    pub fn has_header(&self, name: &str) -> bool {
        self.header(name).is_some()
    }

    fn bytes(&self, (from, to): Span) -> &[u8] {
        &self.head[from as usize..to as usize]
    }
}

#[cfg(test)]
impl ClientRequest {
    /// Parses a complete request head written as text, for tests.
    pub(crate) fn from_text(text: &str) -> ClientRequest {
        let mut buf = bytes::BytesMut::from(text);
        crate::server::request::parse_request_head(&mut buf)
            .expect("a valid head")
            .expect("a complete head")
            .request
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_are_found_without_case() {
        let request = ClientRequest::from_text(
            "POST /v1/chat/completions?x=1 HTTP/1.1\r\nHost: a\r\nX-Two: 1\r\nx-two: 2\r\n\r\n",
        );
        assert_eq!(request.method(), Method::POST);
        assert_eq!(request.path(), "/v1/chat/completions");
        assert_eq!(request.target(), "/v1/chat/completions?x=1");
        assert_eq!(request.header("HOST"), Some(&b"a"[..]));
        assert_eq!(request.header_str("host"), Some("a"));
        let twos: Vec<&[u8]> = request.header_values("X-TWO").collect();
        assert_eq!(twos, [b"1", b"2"]);
        assert!(!request.has_header("x-three"));
        let names: Vec<&[u8]> = request.headers().map(|(name, _)| name).collect();
        assert_eq!(names, [&b"Host"[..], b"X-Two", b"x-two"]);
    }
}
