//! The Responses API surface: `POST /v1/responses`, served by any
//! provider.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::State;
use axum::response::Response;
use http::Request;

use super::read_request;
use crate::dialect::Dialect;
use crate::gateway::Gateway;
use crate::pipeline;

pub(super) async fn create(State(gw): State<Arc<Gateway>>, req: Request<Body>) -> Response {
    match read_request(&gw, req, Dialect::Responses).await {
        Ok((parts, body)) => pipeline::chat(gw, Dialect::Responses, parts, body).await,
        Err(resp) => resp,
    }
}
