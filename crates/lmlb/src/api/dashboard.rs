//! `GET /dashboard`: a single page that polls `/models` every second.

use http::{HeaderValue, Response, header};

use crate::proxy::ProxyBody;

const PAGE: &str = include_str!("dashboard.html");

pub fn dashboard() -> Response<ProxyBody> {
    let mut response = Response::new(ProxyBody::full(PAGE));
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    response
}
