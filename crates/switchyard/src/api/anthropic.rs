//! Anthropic-dialect surface: `/v1/messages`, served by any provider.

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::response::Response;
use axum::routing::post;
use http::Request;

use super::read_request;
use crate::chat::Dialect;
use crate::gateway::Gateway;
use crate::pipeline;

pub fn routes() -> Router<Arc<Gateway>> {
    Router::new().route("/v1/messages", post(messages))
}

async fn messages(State(gw): State<Arc<Gateway>>, req: Request<Body>) -> Response {
    match read_request(&gw, req, Dialect::Anthropic).await {
        Ok((parts, body)) => pipeline::chat(gw, Dialect::Anthropic, parts, body).await,
        Err(resp) => resp,
    }
}
