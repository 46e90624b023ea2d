//! The data plane, one file per surface. Handlers read the request, hand it
//! to [`crate::pipeline`], and return what it answers.
//!
//! Every route here needs a key (when keys are required) except those in
//! [`health`], which are mounted apart on purpose.

pub mod anthropic;
pub mod gemini;
pub mod health;
pub mod openai;
pub mod passthrough;
pub mod responses;
pub mod responses_ws;
pub mod streams;
pub mod tools;

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::response::Response;
use axum::routing::{MethodRouter, any, get, post};
use bytes::Bytes;
use http::Request;
use http::request::Parts;
use http_body_util::BodyExt;

use crate::dialect::Dialect;
use crate::error::GatewayError;
use crate::gateway::Gateway;
use crate::pipeline::Ctx;

/// Every data-plane route that needs a caller, as (method, path). The
/// router is built from this table, so it is the complete list; a test
/// checks each one refuses a request without a key.
pub const PROTECTED: &[(&str, &str)] = &[
    ("POST", "/v1/chat/completions"),
    ("POST", "/v1/embeddings"),
    ("GET", "/v1/models"),
    ("POST", "/v1/messages"),
    ("POST", "/v1/responses"),
    ("GET", "/v1/responses"),
    ("POST", "/v1/responses/compact"),
    ("POST", "/v1/responses/input_tokens"),
    ("GET", "/v1/responses/{id}"),
    ("DELETE", "/v1/responses/{id}"),
    ("GET", "/v1/responses/{id}/input_items"),
    ("POST", "/v1beta/models/{*rest}"),
    ("POST", "/v1/models/{*rest}"),
    ("GET", "/v1beta/models"),
    ("GET", "/v1beta/models/{*rest}"),
    ("GET", "/v1/models/{*rest}"),
    ("ANY", "/passthrough/{provider}/{*rest}"),
    ("ANY", "/tools/{tool}"),
    ("ANY", "/tools/{tool}/{*rest}"),
    ("GET", "/v1/tool-approvals/{id}"),
    ("ANY", "/mcp"),
    ("GET", "/v1/streams/{id}"),
];

/// The dialect of a caller whose path does not say it: an Anthropic SDK
/// sends `anthropic-version`, everyone else is answered as OpenAI.
fn caller_dialect(headers: &http::HeaderMap) -> Dialect {
    if headers.contains_key("anthropic-version") {
        Dialect::Anthropic
    } else {
        Dialect::OpenAi
    }
}

fn handler(
    method: &str,
    path: &str,
    mcp: Option<&crate::mcp::http::Service>,
) -> Option<MethodRouter<Arc<Gateway>>> {
    Some(match (method, path) {
        ("POST", "/v1/chat/completions") => post(openai::chat_completions),
        ("POST", "/v1/embeddings") => post(openai::embeddings),
        ("GET", "/v1/models") => get(openai::models),
        ("POST", "/v1/messages") => post(anthropic::messages),
        ("POST", "/v1/responses") => post(responses::create),
        ("GET", "/v1/responses") => get(responses_ws::upgrade),
        ("POST", "/v1/responses/compact") => post(responses::compact),
        ("POST", "/v1/responses/input_tokens") => post(responses::input_tokens),
        ("GET", "/v1/responses/{id}") => get(responses::retrieve),
        ("DELETE", "/v1/responses/{id}") => axum::routing::delete(responses::delete),
        ("GET", "/v1/responses/{id}/input_items") => get(responses::input_items),
        ("POST", "/v1beta/models/{*rest}") | ("POST", "/v1/models/{*rest}") => post(gemini::call),
        ("GET", "/v1beta/models") => get(gemini::list),
        ("GET", "/v1beta/models/{*rest}") | ("GET", "/v1/models/{*rest}") => get(gemini::get_model),
        ("ANY", "/passthrough/{provider}/{*rest}") => any(passthrough::passthrough),
        ("ANY", "/tools/{tool}") | ("ANY", "/tools/{tool}/{*rest}") => any(tools::call),
        ("GET", "/v1/tool-approvals/{id}") => get(tools::approval),
        ("ANY", "/mcp") => {
            let svc = mcp?.clone();
            any(
                move |axum::extract::State(gw): axum::extract::State<Arc<Gateway>>,
                      req: Request<Body>| {
                    crate::mcp::http::serve(gw, svc.clone(), req)
                },
            )
        }
        ("GET", "/v1/streams/{id}") => get(streams::resume),
        _ => return None,
    })
}

/// The data-plane router: [`PROTECTED`] behind the auth layer, and the
/// public routes of [`health`] beside it. `mcp` is the MCP service, made
/// once for every generation of the gateway (its sessions outlive a
/// reload).
pub fn router(gw: Arc<Gateway>, mcp: crate::mcp::http::Service) -> Router {
    let mut protected = Router::new();
    for (method, path) in PROTECTED {
        match handler(method, path, Some(&mcp)) {
            Some(h) => protected = protected.route(path, h),
            None => tracing::error!(method, path, "No handler for a protected route"),
        }
    }
    let protected = protected.route_layer(axum::middleware::from_fn_with_state(
        gw.clone(),
        crate::auth::layer,
    ));
    Router::new()
        .merge(protected)
        .merge(health::routes())
        .fallback(not_found)
        .with_state(gw)
}

async fn not_found(
    axum::extract::State(gw): axum::extract::State<Arc<Gateway>>,
    req: Request<Body>,
) -> Response {
    let ctx = Ctx::new(&gw, crate::auth::dialect_of_path(&gw, req.uri().path()));
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
    // A body trickled in holds a connection and a buffer: it gets the
    // request's deadline, no more.
    let deadline = gw.config.server.request_timeout;
    let Ok(read) = tokio::time::timeout(deadline, limited.collect()).await else {
        return Err(Ctx::new(gw, dialect).error(GatewayError::RequestTimeout(
            crate::config::fmt_duration(deadline),
        )));
    };
    match read {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_protected_route_has_a_handler() {
        for (method, path) in PROTECTED {
            // `/mcp` needs the rmcp service, which needs a gateway.
            assert!(
                handler(method, path, None).is_some() || *path == "/mcp",
                "{method} {path}"
            );
        }
    }
}
