//! Anthropic-dialect surface: `/v1/messages`, served by any provider.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::State;
use axum::response::Response;
use http::Request;

use super::read_request;
use crate::dialect::Dialect;
use crate::gateway::Gateway;
use crate::pipeline;

pub(super) async fn messages(State(gw): State<Arc<Gateway>>, req: Request<Body>) -> Response {
    match read_request(&gw, req, Dialect::Anthropic).await {
        Ok((parts, body)) => pipeline::chat(gw, Dialect::Anthropic, parts, body).await,
        Err(resp) => resp,
    }
}
