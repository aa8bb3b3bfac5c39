//! Cross-origin access for browser front ends, on by default as in the original tool.

use http::header::{self, HeaderMap, HeaderValue};
use http::{Response, StatusCode};

use crate::proxy::ProxyBody;
use crate::request::ClientRequest;

/// Time browsers may cache a preflight response, in seconds.
const PREFLIGHT_MAX_AGE: &str = "86400";

/// Builds the response to a CORS preflight, allowing the method and headers the browser asked for.
pub fn preflight(request: &ClientRequest) -> Response<ProxyBody> {
    let mut response = Response::new(ProxyBody::full(""));
    *response.status_mut() = StatusCode::NO_CONTENT;
    let headers = response.headers_mut();
    allow_any_origin(headers);
    headers.insert(
        header::ACCESS_CONTROL_ALLOW_METHODS,
        HeaderValue::from_static("GET, POST, PUT, PATCH, DELETE, OPTIONS"),
    );
    let requested = request
        .header("access-control-request-headers")
        .and_then(|value| HeaderValue::from_bytes(value).ok())
        .unwrap_or_else(|| HeaderValue::from_static("authorization, content-type, x-api-key"));
    headers.insert(header::ACCESS_CONTROL_ALLOW_HEADERS, requested);
    headers.insert(
        header::ACCESS_CONTROL_MAX_AGE,
        HeaderValue::from_static(PREFLIGHT_MAX_AGE),
    );
    response
}

pub fn allow_any_origin(headers: &mut HeaderMap) {
    headers.insert(
        header::ACCESS_CONTROL_ALLOW_ORIGIN,
        HeaderValue::from_static("*"),
    );
    headers.insert(
        header::ACCESS_CONTROL_EXPOSE_HEADERS,
        HeaderValue::from_static("x-lmlb-instance, x-lmlb-upstream, retry-after"),
    );
}
