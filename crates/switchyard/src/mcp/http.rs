//! `/mcp` at the HTTP layer: rmcp's Streamable HTTP service, and what it
//! leaves to us in front of it. A JSON-RPC batch (removed from MCP in
//! 2025-06-18) is refused with `-32600` rather than rmcp's `415`; a body
//! over the limit is refused before it is read; and a session
//! (`Mcp-Session-Id`, the versions up to 2025-11-25) belongs to the key
//! that opened it: rmcp routes any POST that names a session into it, so
//! without this another key that learnt the id could call tools, or answer
//! an elicitation, in it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Body;
use axum::response::{IntoResponse, Response};
use http::{Method, Request, StatusCode};
use http_body_util::BodyExt;
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::{StreamableHttpServerConfig, StreamableHttpService};
use tokio::time::Instant;

use super::handler::Handler;
use crate::auth::Caller;
use crate::gateway::Gateway;

pub type Service = StreamableHttpService<Handler, LocalSessionManager>;

/// How long an idle session lives: past the longest approval wait, so a
/// call held for a person does not lose its session.
fn session_idle(gw: &Gateway) -> Duration {
    let longest = gw
        .config
        .mcp_servers
        .iter()
        .map(|m| m.approval_timeout)
        .max()
        .unwrap_or_default();
    (longest + Duration::from_secs(60)).max(Duration::from_secs(600))
}

/// The rmcp service `/mcp` hands requests to.
pub fn service(gw: Arc<Gateway>) -> Service {
    let mut sessions = LocalSessionManager::default();
    sessions.session_config.keep_alive = Some(session_idle(&gw));
    let mut config = StreamableHttpServerConfig::default()
        .with_sse_keep_alive(Some(Duration::from_secs(15)))
        .with_cancellation_token(gw.stopping.child_token())
        .with_max_request_body_bytes(
            usize::try_from(gw.config.server.max_body_bytes).unwrap_or(usize::MAX),
        );
    // rmcp's Host check guards a local server against DNS rebinding (a web
    // page whose name now resolves to 127.0.0.1). That matters when keys
    // are not required (loopback only): keep it to loopback names then.
    // With keys required a page cannot present one, and agents reach the
    // gateway by whatever name it has.
    if gw.config.auth.require_keys {
        config = config.disable_allowed_hosts();
    }
    let factory_gw = gw.clone();
    StreamableHttpService::new(
        move || Ok(Handler::new(factory_gw.clone())),
        Arc::new(sessions),
        config,
    )
}

/// Which key opened each session, and when it was last used.
#[derive(Debug, Default)]
pub struct Bindings {
    map: Mutex<HashMap<String, (Option<String>, Instant)>>,
}

impl Bindings {
    fn bind(&self, session: &str, key: Option<&str>, idle: Duration) {
        let mut m = self.map.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        m.retain(|_, (_, last)| now.duration_since(*last) < idle);
        m.insert(session.to_owned(), (key.map(str::to_owned), now));
    }

    /// Whether `key` opened `session` (and it is still known).
    fn owned_by(&self, session: &str, key: Option<&str>) -> bool {
        let mut m = self.map.lock().unwrap_or_else(|e| e.into_inner());
        match m.get_mut(session) {
            Some((owner, last)) if owner.as_deref() == key => {
                *last = Instant::now();
                true
            }
            _ => false,
        }
    }

    fn unbind(&self, session: &str) {
        let mut m = self.map.lock().unwrap_or_else(|e| e.into_inner());
        m.remove(session);
    }
}

/// A JSON-RPC error with no id (the request's was not read).
fn refuse(status: StatusCode, code: i32, message: &str) -> Response {
    (
        status,
        [(http::header::CONTENT_TYPE, "application/json")],
        serde_json::json!({
            "jsonrpc": "2.0",
            "id": null,
            "error": {"code": code, "message": message},
        })
        .to_string(),
    )
        .into_response()
}

/// One HTTP request to `/mcp` (behind the auth layer).
pub async fn serve(gw: Arc<Gateway>, svc: Service, req: Request<Body>) -> Response {
    let key = req
        .extensions()
        .get::<Caller>()
        .and_then(|c| c.key_id().map(str::to_owned));
    let session = req
        .headers()
        .get("mcp-session-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    if let Some(id) = &session
        && !gw.mcp.sessions.owned_by(id, key.as_deref())
    {
        // The same answer as for a session that never was.
        return refuse(StatusCode::NOT_FOUND, -32001, "session not found");
    }
    let method = req.method().clone();
    let req = if method == Method::POST {
        let limit = usize::try_from(gw.config.server.max_body_bytes).unwrap_or(usize::MAX);
        let (parts, body) = req.into_parts();
        let bytes = match http_body_util::Limited::new(body, limit).collect().await {
            Ok(b) => b.to_bytes(),
            Err(_) => {
                return refuse(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    -32600,
                    &format!("the request body is over {limit} bytes"),
                );
            }
        };
        if bytes.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'[') {
            return refuse(
                StatusCode::BAD_REQUEST,
                -32600,
                "JSON-RPC batches are not accepted (MCP removed them in 2025-06-18): send one message per POST",
            );
        }
        Request::from_parts(parts, Body::from(bytes))
    } else {
        req
    };
    let resp = svc.handle(req).await;
    if method == Method::POST
        && session.is_none()
        && let Some(id) = resp
            .headers()
            .get("mcp-session-id")
            .and_then(|v| v.to_str().ok())
    {
        gw.mcp.sessions.bind(id, key.as_deref(), session_idle(&gw));
    }
    if method == Method::DELETE
        && let Some(id) = &session
        && resp.status().is_success()
    {
        gw.mcp.sessions.unbind(id);
    }
    resp.map(Body::new)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_session_belongs_to_the_key_that_opened_it() {
        let b = Bindings::default();
        let idle = Duration::from_secs(60);
        b.bind("s1", Some("key_a"), idle);
        b.bind("s2", None, idle);
        assert!(b.owned_by("s1", Some("key_a")));
        assert!(!b.owned_by("s1", Some("key_b")));
        assert!(!b.owned_by("s1", None));
        assert!(b.owned_by("s2", None));
        assert!(!b.owned_by("s2", Some("key_a")));
        assert!(!b.owned_by("s3", Some("key_a")));
        b.unbind("s1");
        assert!(!b.owned_by("s1", Some("key_a")));
    }
}
