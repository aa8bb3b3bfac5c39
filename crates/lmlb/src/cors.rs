//! Cross-origin access for browser front ends, on by default as in the original tool.

use http::header::{self, HeaderValue};
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

/// The header lines that every response carries while CORS is on. The connection writes them,
/// so they reach errors and lmlb's own endpoints as well as relayed responses.
pub const ALLOW_ANY_ORIGIN: &[u8] = b"access-control-allow-origin: *\r\n\
access-control-expose-headers: x-lmlb-instance, x-lmlb-upstream, retry-after\r\n";

/// Returns whether `name` is one of the headers in [`ALLOW_ANY_ORIGIN`], which replace an
/// upstream's own.
pub fn is_allow_header(name: &[u8]) -> bool {
    name.eq_ignore_ascii_case(b"access-control-allow-origin")
        || name.eq_ignore_ascii_case(b"access-control-expose-headers")
}
