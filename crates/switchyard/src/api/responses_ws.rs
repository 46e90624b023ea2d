//! The Responses API's WebSocket mode: `GET /v1/responses` upgraded, then
//! `response.create` messages (a `POST /v1/responses` body with a `type`,
//! always streamed) answered with the same events a stream carries, one
//! JSON text frame each, tagged with the create's `stream_id` when it had
//! one. Responses on different `stream_id`s run at once.
//!
//! Each create runs the ordinary journey (policy, budget, failover,
//! record, storage). A continuation (`previous_response_id`) of a
//! response made on this connection works whether or not it was stored:
//! the connection keeps its last responses' conversations, as OpenAI's
//! does; any other id goes to the stored conversations, and an unknown one
//! is the `previous_response_not_found` error event.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use axum::Extension;
use axum::body::Body;
use axum::extract::State;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::response::Response;
use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use http::HeaderMap;
use serde_json::value::RawValue;
use serde_json::{Map, Value, json};
use tokio::sync::mpsc;

use crate::auth::Caller;
use crate::dialect::Dialect;
use crate::gateway::Gateway;
use crate::pipeline;

/// Conversations a connection keeps for continuations.
const KEPT: usize = 64;
/// The largest message taken from a client.
const MAX_MESSAGE: usize = 32 * 1024 * 1024;

/// Request headers that are the socket's, not a create's.
const HOP: &[&str] = &[
    "upgrade",
    "connection",
    "sec-websocket-key",
    "sec-websocket-version",
    "sec-websocket-extensions",
    "sec-websocket-protocol",
    "content-length",
    "transfer-encoding",
];

pub(super) async fn upgrade(
    State(gw): State<Arc<Gateway>>,
    Extension(caller): Extension<Caller>,
    headers: HeaderMap,
    ws: WebSocketUpgrade,
) -> Response {
    let limit = usize::try_from(gw.config.server.max_body_bytes)
        .unwrap_or(MAX_MESSAGE)
        .min(MAX_MESSAGE);
    ws.max_message_size(limit)
        .on_upgrade(move |socket| session(gw, caller, headers, socket))
}

/// The conversations of this connection's responses: id → items.
#[derive(Default)]
struct Kept {
    by_id: HashMap<String, Arc<Vec<Box<RawValue>>>>,
    order: VecDeque<String>,
}

impl Kept {
    fn keep(&mut self, id: String, items: Vec<Box<RawValue>>) {
        if self.order.len() == KEPT
            && let Some(old) = self.order.pop_front()
        {
            self.by_id.remove(&old);
        }
        self.order.push_back(id.clone());
        self.by_id.insert(id, Arc::new(items));
    }
}

async fn session(gw: Arc<Gateway>, caller: Caller, headers: HeaderMap, socket: WebSocket) {
    tracing::debug!(key = caller.key_id(), "Responses WebSocket session opened");
    let (mut sink, mut stream) = socket.split();
    let (tx, mut rx) = mpsc::channel::<String>(256);
    let writer = tokio::spawn(async move {
        while let Some(text) = rx.recv().await {
            if sink.send(Message::Text(text.into())).await.is_err() {
                break;
            }
        }
        let _ = sink.close().await;
    });
    let kept = Arc::new(Mutex::new(Kept::default()));
    let mut headers = headers;
    for h in HOP {
        headers.remove(*h);
    }
    headers.insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    while let Some(Ok(msg)) = stream.next().await {
        let text = match msg {
            Message::Text(t) => t.to_string(),
            Message::Binary(b) => String::from_utf8_lossy(&b).into_owned(),
            Message::Close(_) => break,
            Message::Ping(_) | Message::Pong(_) => continue,
        };
        // Each create is a call of its own, on the newest configuration
        // (a reload reaches open sockets too).
        let gw = gw.current();
        let headers = headers.clone();
        let tx = tx.clone();
        let kept = kept.clone();
        // Each create in a task of its own, tracked: lanes run at once, and
        // a create in flight finishes (and is recorded) if the socket goes.
        gw.clone()
            .spawn(async move { create(gw, headers, text, tx, kept).await });
    }
    drop(tx);
    let _ = writer.await;
}

/// An error event as OpenAI sends it over a socket.
fn error_event(status: u16, code: &str, message: &str, stream_id: Option<&Value>) -> String {
    let mut e = json!({
        "type": "error",
        "status": status,
        "error": {"type": "invalid_request_error", "code": code, "message": message, "param": null},
    });
    if let Some(s) = stream_id {
        e["stream_id"] = s.clone();
    }
    e.to_string()
}

/// The caller of one create: the socket's key as it stands now (revoked,
/// the create is refused; changed, its new limits apply), holding a place
/// within the key's bound on calls in flight.
async fn admitted(
    gw: &Gateway,
    headers: &HeaderMap,
) -> Result<(Caller, Option<tokio::sync::OwnedSemaphorePermit>), crate::error::GatewayError> {
    let caller = crate::auth::authenticate(gw, headers).await?;
    let place = match &caller.key {
        Some(k) => gw.inflight.admit_key(k).await?,
        None => None,
    };
    Ok((caller, place))
}

async fn create(
    gw: Arc<Gateway>,
    headers: HeaderMap,
    text: String,
    tx: mpsc::Sender<String>,
    kept: Arc<Mutex<Kept>>,
) {
    let mut event: Map<String, Value> = match serde_json::from_str(&text) {
        Ok(m) => m,
        Err(e) => {
            let _ = tx
                .send(error_event(
                    400,
                    "invalid_json",
                    &format!("not a JSON object: {e}"),
                    None,
                ))
                .await;
            return;
        }
    };
    let stream_id = event.remove("stream_id");
    match event.remove("type").as_ref().and_then(Value::as_str) {
        Some("response.create") => {}
        other => {
            let what = other.unwrap_or("(none)");
            let _ = tx
                .send(error_event(
                    400,
                    "unsupported_event",
                    &format!("event type `{what}` is not supported here: send response.create"),
                    stream_id.as_ref(),
                ))
                .await;
            return;
        }
    }
    if event.remove("generate") == Some(Value::Bool(false)) {
        let _ = tx
            .send(error_event(
                400,
                "unsupported_parameter",
                "`generate: false` is not supported by this gateway",
                stream_id.as_ref(),
            ))
            .await;
        return;
    }
    // A continuation of this connection's own response.
    let previous = event
        .get("previous_response_id")
        .and_then(Value::as_str)
        .and_then(|id| {
            kept.lock()
                .unwrap_or_else(|e| e.into_inner())
                .by_id
                .get(id)
                .cloned()
        });
    let own_input: Vec<Value> = match event.get("input") {
        Some(Value::String(s)) => vec![
            json!({"type": "message", "role": "user", "content": [{"type": "input_text", "text": s}]}),
        ],
        Some(Value::Array(a)) => a.clone(),
        _ => Vec::new(),
    };
    if let Some(history) = &previous {
        let mut all: Vec<Value> = history
            .iter()
            .filter_map(|i| serde_json::from_str(i.get()).ok())
            .collect();
        all.extend(own_input.iter().cloned());
        event.insert("input".into(), Value::Array(all));
        event.remove("previous_response_id");
    }
    event.insert("stream".into(), Value::Bool(true));
    let mut req = http::Request::builder()
        .method(http::Method::POST)
        .uri("/v1/responses")
        .body(())
        .expect("a fixed request builds");
    *req.headers_mut() = headers;
    let (mut parts, ()) = req.into_parts();
    let resp = match admitted(&gw, &parts.headers).await {
        Ok((caller, place)) => {
            parts.extensions.insert(caller);
            let body = Bytes::from(crate::wire::to_vec(&event));
            let resp = pipeline::chat(gw, Dialect::Responses, parts, body).await;
            crate::inflight::hold(resp, place)
        }
        Err(e) => pipeline::Ctx::new(&gw, Dialect::Responses).error(e),
    };
    let status = resp.status().as_u16();
    if status != 200 {
        let body = axum::body::to_bytes(resp.into_body(), MAX_MESSAGE)
            .await
            .unwrap_or_default();
        let error: Value = serde_json::from_slice::<Value>(&body)
            .ok()
            .and_then(|v| v.get("error").cloned())
            .unwrap_or(Value::Null);
        let mut e = json!({"type": "error", "status": status, "error": error});
        if let Some(s) = &stream_id {
            e["stream_id"] = s.clone();
        }
        let _ = tx.send(e.to_string()).await;
        return;
    }
    let mut parser = crate::wire::sse::Parser::new(MAX_MESSAGE);
    let mut body = Body::into_data_stream(resp.into_body());
    let mut terminal: Option<Value> = None;
    while let Some(Ok(chunk)) = body.next().await {
        let mut events = Vec::new();
        if parser.feed_bytes(&chunk, &mut events).is_err() {
            break;
        }
        for ev in events {
            let Ok(mut v) = serde_json::from_slice::<Value>(&ev.data) else {
                continue;
            };
            if matches!(
                v["type"].as_str(),
                Some("response.completed" | "response.incomplete" | "response.failed")
            ) {
                terminal = Some(v["response"].clone());
            }
            if let Some(s) = &stream_id {
                v["stream_id"] = s.clone();
            }
            if tx.send(v.to_string()).await.is_err() {
                return;
            }
        }
    }
    // What a continuation on this connection needs: the conversation so
    // far, and this response's output.
    if let Some(r) = terminal
        && let Some(id) = r["id"].as_str()
    {
        let mut items: Vec<Box<RawValue>> = previous
            .map(|h| h.iter().cloned().collect())
            .unwrap_or_default();
        items.extend(own_input.iter().map(crate::wire::to_raw));
        for o in r["output"].as_array().into_iter().flatten() {
            items.push(crate::wire::to_raw(o));
        }
        kept.lock()
            .unwrap_or_else(|e| e.into_inner())
            .keep(id.to_owned(), items);
    }
}
