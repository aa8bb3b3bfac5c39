//! The response body type of every endpoint, and response builders.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::header::{CACHE_CONTROL, CONTENT_TYPE, HeaderValue};
use http::{Response, StatusCode};
use http_body::{Body, Frame, SizeHint};

use crate::record::Entry;
use crate::stream::TokenStream;

const JSON: HeaderValue = HeaderValue::from_static("application/json; charset=utf-8");
const EVENT_STREAM: HeaderValue = HeaderValue::from_static("text/event-stream");
const NO_CACHE: HeaderValue = HeaderValue::from_static("no-cache");

/// A complete body (sent with `content-length`) or a token stream (sent chunked). Bytes
/// are copied into a recording when one is attached.
pub(crate) struct SimBody {
    kind: Kind,
    recording: Option<Arc<Entry>>,
}

enum Kind {
    Full(Option<Bytes>),
    Stream(Box<TokenStream>),
}

impl SimBody {
    pub fn full(bytes: impl Into<Bytes>) -> Self {
        Self {
            kind: Kind::Full(Some(bytes.into())),
            recording: None,
        }
    }

    pub fn stream(stream: TokenStream) -> Self {
        Self {
            kind: Kind::Stream(Box::new(stream)),
            recording: None,
        }
    }

    pub fn record_into(&mut self, entry: Arc<Entry>) {
        self.recording = Some(entry);
    }
}

impl Body for SimBody {
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        let this = self.get_mut();
        let next = match &mut this.kind {
            Kind::Full(bytes) => Poll::Ready(bytes.take().map(Ok)),
            Kind::Stream(stream) => stream.poll_next(cx),
        };
        if let (Poll::Ready(Some(Ok(bytes))), Some(entry)) = (&next, &this.recording) {
            entry.append_response(bytes);
        }
        next.map(|chunk| chunk.map(|result| result.map(Frame::data)))
    }

    fn is_end_stream(&self) -> bool {
        matches!(&self.kind, Kind::Full(None))
    }

    fn size_hint(&self) -> SizeHint {
        match &self.kind {
            Kind::Full(Some(bytes)) => SizeHint::with_exact(bytes.len() as u64),
            Kind::Full(None) => SizeHint::with_exact(0),
            Kind::Stream(_) => SizeHint::default(),
        }
    }
}

/// The instance that served a request, kept in the response's extensions for recordings.
#[derive(Clone)]
pub(crate) struct ServedBy(pub Arc<str>);

pub(crate) fn json_response(status: StatusCode, body: impl Into<Bytes>) -> Response<SimBody> {
    let mut response = Response::new(SimBody::full(body));
    *response.status_mut() = status;
    response.headers_mut().insert(CONTENT_TYPE, JSON);
    response
}

/// Serializes `value` into a JSON response.
pub(crate) fn json_value<T: serde::Serialize>(status: StatusCode, value: &T) -> Response<SimBody> {
    let mut body = Vec::with_capacity(256);
    crate::sse::write_json(&mut body, value);
    json_response(status, body)
}

pub(crate) fn sse_response(stream: TokenStream) -> Response<SimBody> {
    let mut response = Response::new(SimBody::stream(stream));
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, EVENT_STREAM);
    headers.insert(CACHE_CONTROL, NO_CACHE);
    response
}
