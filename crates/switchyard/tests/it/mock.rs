//! Mock upstreams that speak each provider's documented wire format
//! (shapes from ../shared/WIRE.md), record every request, and answer either
//! deterministically from the request (the default) or from a script of
//! faults and raw replies.
//!
//! Default behaviour, which the SDK conformance script also relies on:
//! - last message is a tool result → text `Tool result received: <content>`
//!   (content of the first result);
//! - the request has tools → calls the first tool with `{"city":"Paris"}`
//!   and, when there is a second, it with `{"city":"Rome"}` (parallel);
//! - otherwise → text `Hello from <kind>. You said: <last user text>`.
//!   Usage: 11 input tokens, 7 output tokens.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::response::Response;
use futures_util::StreamExt;
use http::{HeaderMap, StatusCode};
use serde_json::{Value, json};

mod responses;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    OpenAi,
    Anthropic,
    Gemini,
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::OpenAi => "openai",
            Kind::Anthropic => "anthropic",
            Kind::Gemini => "gemini",
        }
    }
}

/// What the mock answers to the next request.
#[derive(Debug, Clone)]
pub enum Reply {
    /// The deterministic answer described in the module doc.
    Default,
    /// A status with a JSON body and extra headers.
    Json(u16, Value, Vec<(&'static str, String)>),
    /// A 200 SSE body made of these raw pieces, each after its delay; with
    /// `abort`, the connection breaks after the last piece instead of
    /// ending cleanly.
    Sse {
        pieces: Vec<(Duration, String)>,
        abort: bool,
    },
    /// Waits before answering.
    Delay(Duration, Box<Reply>),
    /// Waits until the gate (a [`Gate`]'s token) opens, then answers.
    Held(tokio_util::sync::CancellationToken, Box<Reply>),
    /// Never answers.
    Hang,
}

/// Answers held back while a burst of calls is admitted: a call let
/// through reaches a mock and waits there, a refused one has its answer;
/// when the two add up to the whole burst, the gate opens. So a burst
/// against a budget or a token limit (where a settled call frees room for
/// another) is measured the same however slowly the machine admits it.
pub struct Gate {
    token: tokio_util::sync::CancellationToken,
    mocks: Vec<Mock>,
    seen: usize,
}

impl Gate {
    /// Holds the next `n` answers of each of `mocks` (one mock named twice
    /// counts once).
    pub fn hold<'a>(mocks: impl IntoIterator<Item = &'a Mock>, n: usize) -> Gate {
        let mut unique: Vec<Mock> = Vec::new();
        for m in mocks {
            if !unique.iter().any(|u| u.addr == m.addr) {
                unique.push(m.clone());
            }
        }
        let token = tokio_util::sync::CancellationToken::new();
        for m in &unique {
            m.script((0..n).map(|_| Reply::Held(token.clone(), Box::new(Reply::Default))));
        }
        let seen = unique.iter().map(Mock::count).sum();
        Gate {
            token,
            mocks: unique,
            seen,
        }
    }

    /// Calls that have reached one of the mocks since [`Gate::hold`].
    fn arrived(&self) -> usize {
        self.mocks.iter().map(Mock::count).sum::<usize>() - self.seen
    }

    /// Opens once every one of `n` calls is decided: `answered` (calls that
    /// have their answer) and the calls held at the mocks add up to `n`.
    /// The answers not used are dropped from the mocks' scripts.
    pub async fn open_when_decided(&self, n: usize, answered: &std::sync::atomic::AtomicUsize) {
        let started = std::time::Instant::now();
        loop {
            let done = answered.load(std::sync::atomic::Ordering::SeqCst);
            let held = self.arrived();
            if done + held >= n {
                break;
            }
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "a held burst of {n}: after 60 s only {done} answered and {held} held"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        self.token.cancel();
        for m in &self.mocks {
            m.clear_script();
        }
    }
}

impl Drop for Gate {
    fn drop(&mut self) {
        self.token.cancel();
    }
}

#[derive(Debug, Clone)]
pub struct Recorded {
    pub method: String,
    /// Path and query.
    pub uri: String,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Recorded {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }
}

#[derive(Default)]
struct MockState {
    requests: Mutex<Vec<Recorded>>,
    script: Mutex<VecDeque<Reply>>,
}

#[derive(Clone)]
pub struct Mock {
    pub addr: SocketAddr,
    pub kind: Kind,
    state: Arc<MockState>,
}

impl Mock {
    pub async fn start(kind: Kind) -> Mock {
        let state = Arc::new(MockState::default());
        let app = Router::new()
            .fallback(handle)
            .with_state((kind, state.clone()));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        Mock { addr, kind, state }
    }

    /// The base URL a provider config points at.
    pub fn base_url(&self) -> String {
        match self.kind {
            Kind::Gemini => format!("http://{}/v1beta", self.addr),
            _ => format!("http://{}/v1", self.addr),
        }
    }

    /// Queues replies for the next requests (then back to the default).
    pub fn script(&self, replies: impl IntoIterator<Item = Reply>) {
        self.state.script.lock().unwrap().extend(replies);
    }

    /// Drops replies still queued.
    pub fn clear_script(&self) {
        self.state.script.lock().unwrap().clear();
    }

    pub fn requests(&self) -> Vec<Recorded> {
        self.state.requests.lock().unwrap().clone()
    }

    pub fn count(&self) -> usize {
        self.state.requests.lock().unwrap().len()
    }

    pub fn last(&self) -> Recorded {
        self.requests().pop().expect("the mock saw no request")
    }
}

async fn handle(State((kind, state)): State<(Kind, Arc<MockState>)>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let body = axum::body::to_bytes(body, usize::MAX)
        .await
        .unwrap_or_default();
    let uri = parts.uri.to_string();
    state.requests.lock().unwrap().push(Recorded {
        method: parts.method.to_string(),
        uri: uri.clone(),
        headers: parts.headers.clone(),
        body: body.clone(),
    });
    let reply = state
        .script
        .lock()
        .unwrap()
        .pop_front()
        .unwrap_or(Reply::Default);
    // Vertex serves Claude under the same base as Gemini, in Anthropic's
    // dialect.
    let kind = if uri.contains("/publishers/anthropic/") {
        Kind::Anthropic
    } else {
        kind
    };
    respond(kind, &uri, &body, reply).await
}

fn respond(
    kind: Kind,
    uri: &str,
    body: &Bytes,
    reply: Reply,
) -> std::pin::Pin<Box<dyn Future<Output = Response> + Send>> {
    let uri = uri.to_owned();
    let body = body.clone();
    Box::pin(async move {
        match reply {
            Reply::Hang => {
                std::future::pending::<()>().await;
                unreachable!()
            }
            Reply::Delay(d, inner) => {
                tokio::time::sleep(d).await;
                respond(kind, &uri, &body, *inner).await
            }
            Reply::Held(gate, inner) => {
                gate.cancelled().await;
                respond(kind, &uri, &body, *inner).await
            }
            Reply::Json(status, v, headers) => {
                let mut r = Response::new(Body::from(v.to_string()));
                *r.status_mut() = StatusCode::from_u16(status).unwrap();
                r.headers_mut()
                    .insert("content-type", "application/json".parse().unwrap());
                for (k, v) in headers {
                    r.headers_mut().insert(k, v.parse().unwrap());
                }
                r
            }
            Reply::Sse { pieces, abort } => sse_response(pieces, abort),
            Reply::Default => default_reply(kind, &uri, &body),
        }
    })
}

fn sse_response(pieces: Vec<(Duration, String)>, abort: bool) -> Response {
    let stream = futures_util::stream::iter(pieces)
        .then(|(d, s)| async move {
            if !d.is_zero() {
                tokio::time::sleep(d).await;
            }
            Ok::<_, std::io::Error>(Bytes::from(s))
        })
        .chain(
            futures_util::stream::iter(abort.then_some(())).then(|()| async {
                // Let what was written reach the client before the connection
                // breaks: a reset can discard data the peer has not read yet.
                tokio::time::sleep(Duration::from_millis(50)).await;
                Err(std::io::Error::other("mock abort"))
            }),
        );
    let mut r = Response::new(Body::from_stream(stream));
    r.headers_mut()
        .insert("content-type", "text/event-stream".parse().unwrap());
    r
}

/// What the request asks for, read from its own dialect.
struct Ask {
    model: String,
    stream: bool,
    include_usage: bool,
    tools: Vec<String>,
    tool_result: Option<String>,
    user_text: String,
}

fn text_of(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Array(parts) => parts
            .iter()
            .filter_map(|p| p.get("text").and_then(Value::as_str))
            .collect::<Vec<_>>()
            .join(""),
        _ => String::new(),
    }
}

fn read_ask(kind: Kind, uri: &str, body: &Value) -> Ask {
    match kind {
        Kind::OpenAi => {
            let last = body["messages"]
                .as_array()
                .and_then(|m| m.last())
                .cloned()
                .unwrap_or(Value::Null);
            // The first tool result of the trailing run of tool messages.
            let msgs = body["messages"].as_array().cloned().unwrap_or_default();
            let mut first_result = None;
            for m in msgs.iter().rev() {
                if m["role"] == "tool" {
                    first_result = Some(text_of(&m["content"]));
                } else {
                    break;
                }
            }
            Ask {
                model: body["model"].as_str().unwrap_or("").into(),
                stream: body["stream"].as_bool().unwrap_or(false),
                include_usage: body["stream_options"]["include_usage"]
                    .as_bool()
                    .unwrap_or(false),
                tools: body["tools"]
                    .as_array()
                    .map(|t| {
                        t.iter()
                            .filter_map(|t| t["function"]["name"].as_str().map(String::from))
                            .collect()
                    })
                    .unwrap_or_default(),
                tool_result: if last["role"] == "tool" {
                    first_result
                } else {
                    None
                },
                user_text: if last["role"] == "user" {
                    text_of(&last["content"])
                } else {
                    String::new()
                },
            }
        }
        Kind::Anthropic => {
            let last = body["messages"]
                .as_array()
                .and_then(|m| m.last())
                .cloned()
                .unwrap_or(Value::Null);
            let blocks = last["content"].as_array().cloned().unwrap_or_default();
            let tool_result = blocks
                .iter()
                .find(|b| b["type"] == "tool_result")
                .map(|b| text_of(&b["content"]));
            Ask {
                model: body["model"].as_str().unwrap_or("").into(),
                stream: body["stream"].as_bool().unwrap_or(false),
                include_usage: true,
                tools: body["tools"]
                    .as_array()
                    .map(|t| {
                        t.iter()
                            .filter_map(|t| t["name"].as_str().map(String::from))
                            .collect()
                    })
                    .unwrap_or_default(),
                tool_result,
                user_text: text_of(&last["content"]),
            }
        }
        Kind::Gemini => {
            let last = body["contents"]
                .as_array()
                .and_then(|m| m.last())
                .cloned()
                .unwrap_or(Value::Null);
            let parts = last["parts"].as_array().cloned().unwrap_or_default();
            let tool_result = parts.iter().find_map(|p| {
                let r = &p["functionResponse"]["response"];
                if r.is_null() {
                    None
                } else {
                    Some(
                        r.get("output")
                            .or(r.get("error"))
                            .map(|v| {
                                v.as_str()
                                    .map(String::from)
                                    .unwrap_or_else(|| v.to_string())
                            })
                            .unwrap_or_else(|| r.to_string()),
                    )
                }
            });
            let model = uri
                .split("/models/")
                .nth(1)
                .and_then(|r| r.split(':').next())
                .unwrap_or("")
                .to_owned();
            Ask {
                model,
                stream: uri.contains(":streamGenerateContent"),
                include_usage: true,
                tools: body["tools"][0]["functionDeclarations"]
                    .as_array()
                    .map(|t| {
                        t.iter()
                            .filter_map(|t| t["name"].as_str().map(String::from))
                            .collect()
                    })
                    .unwrap_or_default(),
                tool_result,
                user_text: parts
                    .iter()
                    .filter_map(|p| p["text"].as_str())
                    .collect::<Vec<_>>()
                    .join(""),
            }
        }
    }
}

/// The answer: text, or tool calls (name, arguments).
enum Answer {
    Text(String),
    Calls(Vec<(String, Value)>),
}

fn answer(kind: Kind, ask: &Ask) -> Answer {
    if let Some(r) = &ask.tool_result {
        return Answer::Text(format!("Tool result received: {r}"));
    }
    if !ask.tools.is_empty() {
        let mut calls = vec![(ask.tools[0].clone(), json!({"city": "Paris"}))];
        if ask.tools.len() > 1 {
            calls.push((ask.tools[1].clone(), json!({"city": "Rome"})));
        }
        return Answer::Calls(calls);
    }
    Answer::Text(format!(
        "Hello from {}. You said: {}",
        kind.name(),
        ask.user_text
    ))
}

/// Splits text into word-sized pieces that concatenate back.
fn words(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    for c in text.chars() {
        cur.push(c);
        if c == ' ' {
            out.push(std::mem::take(&mut cur));
        }
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

/// Splits a JSON text into three fragments.
fn thirds(s: &str) -> Vec<String> {
    let chars: Vec<char> = s.chars().collect();
    let n = chars.len();
    let a = n / 3;
    let b = 2 * n / 3;
    vec![
        chars[..a].iter().collect(),
        chars[a..b].iter().collect(),
        chars[b..].iter().collect(),
    ]
}

fn default_reply(kind: Kind, uri: &str, body: &Bytes) -> Response {
    let v: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    if uri.contains("/embeddings") {
        let n = match &v["input"] {
            Value::Array(a) => a.len(),
            _ => 1,
        };
        let data: Vec<Value> = (0..n)
            .map(|i| json!({"object": "embedding", "index": i, "embedding": [0.1, 0.2, 0.3]}))
            .collect();
        return json_response(
            json!({"object": "list", "data": data, "model": v["model"], "usage": {"prompt_tokens": 5, "total_tokens": 5}}),
        );
    }
    if uri.contains(":countTokens") {
        return json_response(
            json!({"totalTokens": 4, "promptTokensDetails": [{"modality": "TEXT", "tokenCount": 4}]}),
        );
    }
    if uri.contains(":embedContent") {
        return json_response(json!({"embedding": {"values": [0.1, 0.2, 0.3]}}));
    }
    if uri.contains(":predict") {
        // Vertex AI's embeddings.
        let predictions: Vec<Value> = v["instances"]
            .as_array()
            .map(|i| {
                i.iter()
                    .map(|_| json!({"embeddings": {"values": [0.4, 0.5, 0.6], "statistics": {"token_count": 3, "truncated": false}}}))
                    .collect()
            })
            .unwrap_or_default();
        return json_response(
            json!({"predictions": predictions, "metadata": {"billableCharacterCount": 12}}),
        );
    }
    if uri.contains(":batchEmbedContents") {
        let n = v["requests"].as_array().map(Vec::len).unwrap_or(0);
        let embeddings: Vec<Value> = (0..n).map(|_| json!({"values": [0.1, 0.2, 0.3]})).collect();
        return json_response(json!({"embeddings": embeddings}));
    }
    if kind == Kind::OpenAi && uri.ends_with("/responses/input_tokens") {
        return json_response(json!({"object": "response.input_tokens", "input_tokens": 11}));
    }
    if kind == Kind::OpenAi && uri.ends_with("/responses") {
        let ask = responses::read_ask(&v);
        let ans = answer(kind, &ask);
        return if ask.stream {
            sse_response(responses::stream(&ask, &ans), false)
        } else {
            json_response(responses::message(&ask, &ans))
        };
    }
    let is_chat = uri.contains("/chat/completions")
        || uri.contains("/messages")
        || uri.contains(":rawPredict")
        || uri.contains(":streamRawPredict")
        || uri.contains(":generateContent")
        || uri.contains(":streamGenerateContent");
    if !is_chat {
        // Passthrough tests: say what arrived.
        return json_response(json!({"mock": kind.name(), "uri": uri, "body": v}));
    }
    let ask = read_ask(kind, uri, &v);
    let ans = answer(kind, &ask);
    match (kind, ask.stream) {
        (Kind::OpenAi, false) => json_response(openai_message(&ask, &ans)),
        (Kind::OpenAi, true) => sse_response(openai_stream(&ask, &ans), false),
        (Kind::Anthropic, false) => json_response(anthropic_message(&ask, &ans)),
        (Kind::Anthropic, true) => sse_response(anthropic_stream(&ask, &ans), false),
        (Kind::Gemini, false) => json_response(gemini_message(&ask, &ans)),
        (Kind::Gemini, true) => sse_response(gemini_stream(&ask, &ans), false),
    }
}

fn json_response(v: Value) -> Response {
    let mut r = Response::new(Body::from(v.to_string()));
    r.headers_mut()
        .insert("content-type", "application/json".parse().unwrap());
    r
}

fn data(v: Value) -> (Duration, String) {
    (Duration::ZERO, format!("data: {v}\n\n"))
}

fn named(event: &str, v: Value) -> (Duration, String) {
    (Duration::ZERO, format!("event: {event}\ndata: {v}\n\n"))
}

pub fn openai_usage() -> Value {
    json!({"prompt_tokens": 11, "completion_tokens": 7, "total_tokens": 18,
           "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
           "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0, "accepted_prediction_tokens": 0, "rejected_prediction_tokens": 0}})
}

fn openai_message(ask: &Ask, ans: &Answer) -> Value {
    let (content, tool_calls, finish) = match ans {
        Answer::Text(t) => (json!(t), None, "stop"),
        Answer::Calls(calls) => (
            Value::Null,
            Some(
                calls
                    .iter()
                    .enumerate()
                    .map(|(i, (name, args))| {
                        json!({"id": format!("call_mock_{i}"), "type": "function", "function": {"name": name, "arguments": args.to_string()}})
                    })
                    .collect::<Vec<_>>(),
            ),
            "tool_calls",
        ),
    };
    let mut message =
        json!({"role": "assistant", "content": content, "refusal": null, "annotations": []});
    if let Some(tc) = tool_calls {
        message["tool_calls"] = json!(tc);
    }
    json!({"id": "chatcmpl-mock", "object": "chat.completion", "created": 1_700_000_000, "model": ask.model,
           "system_fingerprint": "fp_mock", "service_tier": "default",
           "choices": [{"index": 0, "message": message, "logprobs": null, "finish_reason": finish}],
           "usage": openai_usage()})
}

fn openai_stream(ask: &Ask, ans: &Answer) -> Vec<(Duration, String)> {
    let chunk = |delta: Value, finish: Value| {
        let mut c = json!({"id": "chatcmpl-mock", "object": "chat.completion.chunk", "created": 1_700_000_000,
                           "model": ask.model, "system_fingerprint": "fp_mock",
                           "choices": [{"index": 0, "delta": delta, "logprobs": null, "finish_reason": finish}]});
        if ask.include_usage {
            c["usage"] = Value::Null;
        }
        data(c)
    };
    let mut out = vec![chunk(
        json!({"role": "assistant", "content": "", "refusal": null}),
        Value::Null,
    )];
    let finish = match ans {
        Answer::Text(t) => {
            for w in words(t) {
                out.push(chunk(json!({"content": w}), Value::Null));
            }
            "stop"
        }
        Answer::Calls(calls) => {
            for (i, (name, args)) in calls.iter().enumerate() {
                out.push(chunk(
                    json!({"tool_calls": [{"index": i, "id": format!("call_mock_{i}"), "type": "function", "function": {"name": name, "arguments": ""}}]}),
                    Value::Null,
                ));
                for frag in thirds(&args.to_string()) {
                    out.push(chunk(
                        json!({"tool_calls": [{"index": i, "function": {"arguments": frag}}]}),
                        Value::Null,
                    ));
                }
            }
            "tool_calls"
        }
    };
    out.push(chunk(json!({}), json!(finish)));
    if ask.include_usage {
        out.push(data(json!({"id": "chatcmpl-mock", "object": "chat.completion.chunk", "created": 1_700_000_000,
                             "model": ask.model, "system_fingerprint": "fp_mock", "choices": [], "usage": openai_usage()})));
    }
    out.push((Duration::ZERO, "data: [DONE]\n\n".into()));
    out
}

fn anthropic_usage(output: u64) -> Value {
    json!({"input_tokens": 11, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0, "output_tokens": output, "service_tier": "standard"})
}

fn anthropic_message(ask: &Ask, ans: &Answer) -> Value {
    let (content, stop) = match ans {
        Answer::Text(t) => (json!([{"type": "text", "text": t}]), "end_turn"),
        Answer::Calls(calls) => (
            json!(calls
                .iter()
                .enumerate()
                .map(|(i, (name, args))| json!({"type": "tool_use", "id": format!("toolu_mock_{i}"), "name": name, "input": args}))
                .collect::<Vec<_>>()),
            "tool_use",
        ),
    };
    json!({"id": "msg_mock", "type": "message", "role": "assistant", "model": ask.model, "content": content,
           "stop_reason": stop, "stop_sequence": null, "usage": anthropic_usage(7)})
}

fn anthropic_stream(ask: &Ask, ans: &Answer) -> Vec<(Duration, String)> {
    let mut out = vec![named(
        "message_start",
        json!({"type": "message_start", "message": {"id": "msg_mock", "type": "message", "role": "assistant", "model": ask.model,
               "content": [], "stop_reason": null, "stop_sequence": null, "usage": anthropic_usage(1)}}),
    )];
    let stop = match ans {
        Answer::Text(t) => {
            out.push(named("content_block_start", json!({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}})));
            out.push(named("ping", json!({"type": "ping"})));
            for w in words(t) {
                out.push(named("content_block_delta", json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": w}})));
            }
            out.push(named(
                "content_block_stop",
                json!({"type": "content_block_stop", "index": 0}),
            ));
            "end_turn"
        }
        Answer::Calls(calls) => {
            for (i, (name, args)) in calls.iter().enumerate() {
                out.push(named(
                    "content_block_start",
                    json!({"type": "content_block_start", "index": i, "content_block": {"type": "tool_use", "id": format!("toolu_mock_{i}"), "name": name, "input": {}}}),
                ));
                out.push(named("content_block_delta", json!({"type": "content_block_delta", "index": i, "delta": {"type": "input_json_delta", "partial_json": ""}})));
                for frag in thirds(&args.to_string()) {
                    out.push(named("content_block_delta", json!({"type": "content_block_delta", "index": i, "delta": {"type": "input_json_delta", "partial_json": frag}})));
                }
                out.push(named(
                    "content_block_stop",
                    json!({"type": "content_block_stop", "index": i}),
                ));
            }
            "tool_use"
        }
    };
    out.push(named(
        "message_delta",
        json!({"type": "message_delta", "delta": {"stop_reason": stop, "stop_sequence": null}, "usage": {"output_tokens": 7}}),
    ));
    out.push(named("message_stop", json!({"type": "message_stop"})));
    out
}

fn gemini_usage(candidates: u64) -> Value {
    json!({"promptTokenCount": 11, "candidatesTokenCount": candidates, "totalTokenCount": 11 + candidates})
}

fn gemini_parts(ans: &Answer) -> (Value, &'static str) {
    match ans {
        Answer::Text(t) => (json!([{"text": t}]), "STOP"),
        Answer::Calls(calls) => (
            json!(
                calls
                    .iter()
                    .map(|(name, args)| json!({"functionCall": {"name": name, "args": args}}))
                    .collect::<Vec<_>>()
            ),
            "STOP",
        ),
    }
}

fn gemini_message(ask: &Ask, ans: &Answer) -> Value {
    let (parts, finish) = gemini_parts(ans);
    json!({"candidates": [{"content": {"role": "model", "parts": parts}, "finishReason": finish, "index": 0}],
           "usageMetadata": gemini_usage(7), "modelVersion": ask.model, "responseId": "resp-mock"})
}

fn gemini_stream(ask: &Ask, ans: &Answer) -> Vec<(Duration, String)> {
    let chunk = |parts: Value, finish: Option<&str>, candidates: u64| {
        let mut cand = json!({"content": {"role": "model", "parts": parts}, "index": 0});
        if let Some(f) = finish {
            cand["finishReason"] = json!(f);
        }
        (
            Duration::ZERO,
            format!(
                "data: {}\r\n\r\n",
                json!({"candidates": [cand], "usageMetadata": gemini_usage(candidates), "modelVersion": ask.model, "responseId": "resp-mock"})
            ),
        )
    };
    match ans {
        Answer::Text(t) => {
            let ws = words(t);
            let n = ws.len();
            ws.into_iter()
                .enumerate()
                .map(|(i, w)| {
                    let last = i + 1 == n;
                    chunk(
                        json!([{"text": w}]),
                        last.then_some("STOP"),
                        if last { 7 } else { i as u64 + 1 },
                    )
                })
                .collect()
        }
        Answer::Calls(_) => {
            let (parts, finish) = gemini_parts(ans);
            vec![chunk(parts, Some(finish), 7)]
        }
    }
}

/// Raw SSE helpers for scripted replies.
pub fn openai_chunk(text: &str) -> String {
    format!(
        "data: {}\n\n",
        json!({"id": "chatcmpl-x", "object": "chat.completion.chunk", "created": 1, "model": "m",
               "choices": [{"index": 0, "delta": {"content": text}, "finish_reason": null}]})
    )
}

/// A streamed answer that calls tool `name` with `args`, in the dialect a
/// mock of `kind` streams (`responses`: OpenAI's Responses API).
pub fn tool_call_stream(kind: Kind, responses: bool, name: &str, args: Value) -> Reply {
    let ask = Ask {
        model: "mock-model".into(),
        stream: true,
        include_usage: true,
        tools: vec![name.to_owned()],
        tool_result: None,
        user_text: String::new(),
    };
    let ans = Answer::Calls(vec![(name.to_owned(), args)]);
    let pieces = match kind {
        Kind::OpenAi if responses => responses::stream(&ask, &ans),
        Kind::OpenAi => openai_stream(&ask, &ans),
        Kind::Anthropic => anthropic_stream(&ask, &ans),
        Kind::Gemini => gemini_stream(&ask, &ans),
    };
    Reply::Sse {
        pieces,
        abort: false,
    }
}
