//! The simulator's own endpoints under `/sim/`: stats, reset and faults. They need no API
//! token and no fault ever applies to them.

use http::{Method, Request, Response, StatusCode};
use hyper::body::Incoming;
use serde_json::json;

use super::{errors, read_json};
use crate::body::{SimBody, json_value};
use crate::faults::Faults;
use crate::handle::Shared;

pub(crate) async fn handle(shared: &Shared, request: Request<Incoming>) -> Response<SimBody> {
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    match (&method, path.as_str()) {
        (&Method::GET, "/sim/stats") => json_value(StatusCode::OK, &shared.stats()),
        (&Method::POST, "/sim/reset") => {
            shared.reset();
            json_value(StatusCode::OK, &json!({"reset": true}))
        }
        (&Method::GET, "/sim/faults") => json_value(StatusCode::OK, &shared.faults.get()),
        (&Method::POST, "/sim/faults") => match read_json::<Faults>(request).await {
            Ok(faults) => {
                tracing::info!(?faults, "faults set");
                shared.faults.set(faults.clone());
                json_value(StatusCode::OK, &faults)
            }
            Err(response) => response,
        },
        _ => errors::unexpected_endpoint(&method, &path),
    }
}
