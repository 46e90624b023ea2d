//! The data plane, one file per surface. Handlers read the request, hand it
//! to [`crate::pipeline`], and return what it answers.
//!
//! Every route here needs a key (when keys are required) except those in
//! [`health`], which are mounted apart on purpose.

pub mod anthropic;
pub mod health;
pub mod openai;
pub mod passthrough;

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::response::Response;
use bytes::Bytes;
use http::Request;
use http::request::Parts;
use http_body_util::BodyExt;

use crate::chat::Dialect;
use crate::error::GatewayError;
use crate::gateway::Gateway;
use crate::pipeline::Ctx;

/// The data-plane router.
pub fn router(gw: Arc<Gateway>) -> Router {
    Router::new()
        .merge(openai::routes())
        .merge(anthropic::routes())
        .merge(passthrough::routes())
        .merge(health::routes())
        .fallback(not_found)
        .with_state(gw)
}

async fn not_found(
    axum::extract::State(gw): axum::extract::State<Arc<Gateway>>,
    req: Request<Body>,
) -> Response {
    let dialect = if req.uri().path().starts_with("/v1/messages") {
        Dialect::Anthropic
    } else {
        Dialect::OpenAi
    };
    let ctx = Ctx::new(&gw, dialect);
    ctx.error(GatewayError::NotFound(format!(
        "no route for {} {}",
        req.method(),
        req.uri().path()
    )))
}

/// Reads a request body up to the configured limit. A larger body is a 413
/// in the caller's dialect, refused before it is read in full.
pub async fn read_request(
    gw: &Gateway,
    req: Request<Body>,
    dialect: Dialect,
) -> Result<(Parts, Bytes), Response> {
    let limit = gw.config.server.max_body_bytes;
    let too_large = || Ctx::new(gw, dialect).error(GatewayError::PayloadTooLarge { limit });
    if let Some(len) = req
        .headers()
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
        && len > limit
    {
        return Err(too_large());
    }
    let (parts, body) = req.into_parts();
    let limited = http_body_util::Limited::new(body, limit as usize);
    match limited.collect().await {
        Ok(c) => Ok((parts, c.to_bytes())),
        Err(e)
            if e.downcast_ref::<http_body_util::LengthLimitError>()
                .is_some() =>
        {
            Err(too_large())
        }
        Err(_) => Err(Ctx::new(gw, dialect).error(GatewayError::BadRequest(
            crate::wire::DecodeError::new("", "the request body could not be read"),
        ))),
    }
}
