//! `kind = "bedrock"` over real HTTP, against a mock Bedrock runtime that
//! speaks Converse and ConverseStream (AWS event stream frames with real
//! CRCs) and checks every call's SigV4 signature by computing it again:
//! each inbound dialect × stream × tools, tool results, a Bedrock API key,
//! exception frames before and after the first byte, corrupt frames, and
//! the error classes that fail over or do not.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::response::Response;
use http::{HeaderMap, StatusCode};
use serde_json::{Value, json};
use switchyard::providers::sigv4;
use switchyard::wire::bedrock::eventstream;

use crate::core::{Inbound, call, request};
use crate::harness::*;

const KEY_ID: &str = "AKIDSWITCHYARDTEST01";
const SECRET: &str = "aws-secret-canary-wJalrXUtnFEMI/K7MDENG";
const SESSION: &str = "aws-session-canary-FwoGZXIvYXdzEJr";
const BEARER: &str = "bedrock-api-key-canary-ABSKQmVkcm9ja0FQSUtleQ";
const REGION: &str = "eu-central-1";
/// A model id with `:` (and a `.`-prefixed inference profile), signed as
/// sent.
const MODEL: &str = "eu.anthropic.claude-sonnet-4-20250514-v1:0";

fn no_aws_canary(text: &str) {
    for c in [SECRET, SESSION, BEARER] {
        assert!(!text.contains(c), "an AWS credential leaked: {text}");
    }
}

/// What the mock answers next.
#[derive(Clone)]
enum Reply {
    /// The deterministic answer (see [`answer`]).
    Default,
    /// A status, a JSON body and `x-amzn-errortype`.
    Error(u16, &'static str, &'static str),
    /// A 200 event stream of these raw bytes, then the body ends.
    Frames(Vec<u8>),
    /// A 200 Converse answer.
    Answer(Value),
    /// A 400 that quotes the session token the call carried (an upstream
    /// that echoes a credential; the gateway must not pass it on).
    EchoToken,
}

#[derive(Clone, Debug)]
struct Seen {
    uri: String,
    headers: HeaderMap,
    body: Value,
}

#[derive(Default)]
struct MockState {
    seen: Mutex<Vec<Seen>>,
    script: Mutex<VecDeque<Reply>>,
}

#[derive(Clone)]
struct Bedrock {
    addr: std::net::SocketAddr,
    state: Arc<MockState>,
}

impl Bedrock {
    async fn start() -> Bedrock {
        let state = Arc::new(MockState::default());
        let app = axum::Router::new()
            .fallback(handle)
            .with_state(state.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Bedrock { addr, state }
    }

    fn script(&self, replies: impl IntoIterator<Item = Reply>) {
        self.state.script.lock().unwrap().extend(replies);
    }

    fn seen(&self) -> Vec<Seen> {
        self.state.seen.lock().unwrap().clone()
    }

    fn last(&self) -> Seen {
        self.seen().pop().expect("the mock saw no call")
    }
}

/// Unix seconds of an `x-amz-date` (`20261206T013000Z`).
fn amz_date(v: &str) -> Option<u64> {
    let d = |r: std::ops::Range<usize>| v.get(r)?.parse::<i64>().ok();
    let (y, m, day) = (d(0..4)?, d(4..6)?, d(6..8)?);
    let (h, min, s) = (d(9..11)?, d(11..13)?, d(13..15)?);
    // Days from civil (proleptic Gregorian).
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * ((m + 9) % 12) + 2) / 5 + day - 1;
    let days = era * 146_097 + yoe * 365 + yoe / 4 - yoe / 100 + doy - 719_468;
    u64::try_from(days * 86_400 + h * 3600 + min * 60 + s).ok()
}

/// The signature the call should carry, computed again from what arrived;
/// `None` when it matches (or the call carries the API key instead).
fn signature_problem(
    method: &http::Method,
    uri: &http::Uri,
    h: &HeaderMap,
    body: &[u8],
) -> Option<String> {
    if h.get("authorization")?.to_str().ok()? == format!("Bearer {BEARER}") {
        return None;
    }
    if h.get("x-amz-security-token").and_then(|v| v.to_str().ok()) != Some(SESSION) {
        return Some("no session token".into());
    }
    let creds = sigv4::Credentials {
        access_key_id: KEY_ID.into(),
        secret_access_key: SECRET.into(),
        session_token: Some(SESSION.into()),
    };
    verify(method, uri, h, body, &creds, REGION, "bedrock")
}

/// Whether `h` carries `creds`' SigV4 signature of the request for
/// `service` in `region`; what is wrong if not.
fn verify(
    method: &http::Method,
    uri: &http::Uri,
    h: &HeaderMap,
    body: &[u8],
    creds: &sigv4::Credentials,
    region: &str,
    service: &str,
) -> Option<String> {
    let auth = h.get("authorization")?.to_str().ok()?.to_owned();
    if !auth.starts_with("AWS4-HMAC-SHA256 ") {
        return Some(format!("unknown authorization scheme: {auth}"));
    }
    let signed: Vec<&str> = auth
        .split("SignedHeaders=")
        .nth(1)?
        .split(',')
        .next()?
        .split(';')
        .collect();
    let mut again = HeaderMap::new();
    for name in &signed {
        if matches!(
            *name,
            "x-amz-date" | "x-amz-security-token" | "x-amz-content-sha256"
        ) {
            continue;
        }
        for v in h.get_all(*name) {
            again.append(
                http::HeaderName::from_bytes(name.as_bytes()).unwrap(),
                v.clone(),
            );
        }
    }
    let when = amz_date(h.get("x-amz-date")?.to_str().ok()?)?;
    sigv4::sign(
        method,
        uri,
        &mut again,
        body,
        creds,
        region,
        service,
        when,
        sigv4::Options::default(),
    )
    .ok()?;
    let want = again.get("authorization")?.to_str().ok()?;
    (want != auth).then(|| format!("signature mismatch: got {auth}, want {want}"))
}

async fn handle(State(state): State<Arc<MockState>>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let body = axum::body::to_bytes(body, usize::MAX)
        .await
        .unwrap_or_default();
    let v: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    state.seen.lock().unwrap().push(Seen {
        uri: parts.uri.to_string(),
        headers: parts.headers.clone(),
        body: v.clone(),
    });
    if parts.headers.get("authorization").is_none() {
        return error(403, "AccessDeniedException", "Missing Authentication Token");
    }
    if let Some(problem) = signature_problem(&parts.method, &parts.uri, &parts.headers, &body) {
        eprintln!("bedrock mock: {problem}");
        return error(
            403,
            "InvalidSignatureException",
            "The request signature we calculated does not match the signature you provided.",
        );
    }
    let reply = state
        .script
        .lock()
        .unwrap()
        .pop_front()
        .unwrap_or(Reply::Default);
    if parts.uri.path().ends_with("/invoke") {
        let body = if parts.uri.path().contains("titan-embed") {
            json!({"embedding": [0.7, 0.8], "inputTextTokenCount": 4})
        } else {
            let n = v["texts"].as_array().map_or(0, Vec::len);
            json!({"embeddings": vec![json!([0.9, 1.0]); n], "id": "emb-1", "response_type": "embeddings_floats", "texts": v["texts"]})
        };
        let mut r = Response::new(Body::from(body.to_string()));
        r.headers_mut()
            .insert("content-type", "application/json".parse().unwrap());
        return r;
    }
    let stream = parts.uri.path().ends_with("/converse-stream");
    match reply {
        Reply::Error(status, kind, message) => error(status, kind, message),
        Reply::EchoToken => {
            let token = parts
                .headers
                .get("x-amz-security-token")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("none");
            let message = format!("Malformed input request: x-amz-security-token {token}");
            error(400, "ValidationException", &message)
        }
        Reply::Frames(bytes) => frames(bytes),
        Reply::Answer(v) => {
            let mut r = Response::new(Body::from(v.to_string()));
            r.headers_mut()
                .insert("content-type", "application/json".parse().unwrap());
            r
        }
        Reply::Default if stream => frames(stream_of(&answer(&v))),
        Reply::Default => {
            let a = answer(&v);
            let mut r = Response::new(Body::from(
                json!({
                    "output": {"message": {"role": "assistant", "content": a.content}},
                    "stopReason": a.stop,
                    "usage": {"inputTokens": 11, "outputTokens": 7, "totalTokens": 18},
                    "metrics": {"latencyMs": 120}
                })
                .to_string(),
            ));
            r.headers_mut()
                .insert("content-type", "application/json".parse().unwrap());
            r
        }
    }
}

fn error(status: u16, kind: &str, message: &str) -> Response {
    let mut r = Response::new(Body::from(json!({ "message": message }).to_string()));
    *r.status_mut() = StatusCode::from_u16(status).unwrap();
    let h = r.headers_mut();
    h.insert("content-type", "application/json".parse().unwrap());
    h.insert(
        "x-amzn-errortype",
        format!("{kind}:http://internal.amazon.com/coral/com.amazon.bedrock/")
            .parse()
            .unwrap(),
    );
    r
}

fn frames(bytes: Vec<u8>) -> Response {
    // In pieces that cut frames, as a network does.
    let pieces: Vec<Result<Vec<u8>, std::io::Error>> =
        bytes.chunks(37).map(|c| Ok(c.to_vec())).collect();
    let mut r = Response::new(Body::from_stream(futures_util::stream::iter(pieces)));
    r.headers_mut().insert(
        "content-type",
        "application/vnd.amazon.eventstream".parse().unwrap(),
    );
    r
}

struct Answer {
    content: Vec<Value>,
    stop: &'static str,
}

/// Tool results → `Tool result received: <first>`; tools → calls to the
/// first two with Paris and Rome; else `Hello from bedrock. You said: ...`.
fn answer(body: &Value) -> Answer {
    let last = body["messages"]
        .as_array()
        .and_then(|m| m.last())
        .cloned()
        .unwrap_or(Value::Null);
    let blocks = last["content"].as_array().cloned().unwrap_or_default();
    if let Some(r) = blocks.iter().find_map(|b| b.get("toolResult")) {
        let text = r["content"][0]["text"].as_str().unwrap_or("").to_owned();
        return Answer {
            content: vec![json!({"text": format!("Tool result received: {text}")})],
            stop: "end_turn",
        };
    }
    let tools: Vec<String> = body["toolConfig"]["tools"]
        .as_array()
        .map(|t| {
            t.iter()
                .filter_map(|t| t["toolSpec"]["name"].as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default();
    if !tools.is_empty() {
        let content = tools
            .iter()
            .take(2)
            .zip(["Paris", "Rome"])
            .enumerate()
            .map(|(i, (name, city))| {
                json!({"toolUse": {"toolUseId": format!("tooluse_{i}abc"), "name": name, "input": {"city": city}}})
            })
            .collect();
        return Answer {
            content,
            stop: "tool_use",
        };
    }
    let said = blocks
        .iter()
        .filter_map(|b| b["text"].as_str())
        .collect::<Vec<_>>()
        .join("");
    Answer {
        content: vec![json!({"text": format!("Hello from bedrock. You said: {said}")})],
        stop: "end_turn",
    }
}

/// An event frame as Bedrock writes it, padding field included.
fn event(kind: &str, mut v: Value) -> Vec<u8> {
    v["p"] = json!("abcdefghijklmnopqrstuvwxyzABCDEFGHIJ");
    eventstream::encode_event(kind, v.to_string().as_bytes())
}

fn stream_of(a: &Answer) -> Vec<u8> {
    let mut out = event("messageStart", json!({"role": "assistant"}));
    for (i, block) in a.content.iter().enumerate() {
        if let Some(text) = block["text"].as_str() {
            let (head, tail) = text.split_at(text.len() / 2);
            for piece in [head, tail] {
                out.extend(event(
                    "contentBlockDelta",
                    json!({"contentBlockIndex": i, "delta": {"text": piece}}),
                ));
            }
        } else {
            let call = &block["toolUse"];
            out.extend(event(
                "contentBlockStart",
                json!({"contentBlockIndex": i, "start": {"toolUse": {"toolUseId": call["toolUseId"], "name": call["name"]}}}),
            ));
            let input = call["input"].to_string();
            let (head, tail) = input.split_at(5);
            for piece in [head, tail] {
                out.extend(event(
                    "contentBlockDelta",
                    json!({"contentBlockIndex": i, "delta": {"toolUse": {"input": piece}}}),
                ));
            }
        }
        out.extend(event("contentBlockStop", json!({"contentBlockIndex": i})));
    }
    out.extend(event("messageStop", json!({"stopReason": a.stop})));
    out.extend(event(
        "metadata",
        json!({"usage": {"inputTokens": 11, "outputTokens": 7, "totalTokens": 18}, "metrics": {"latencyMs": 95}}),
    ));
    out
}

fn bedrock_toml(mock: &Bedrock) -> String {
    format!(
        r#"
[[providers]]
name = "br"
kind = "bedrock"
region = "{REGION}"
base_url = "http://{addr}"
aws_access_key_id_env = "BR_KEY_ID"
aws_secret_access_key_env = "BR_SECRET"
aws_session_token_env = "BR_SESSION"
timeout_ms = 5000

[[providers]]
name = "brkey"
kind = "bedrock"
region = "us-east-1"
base_url = "http://{addr}"
bearer_token_env = "BR_BEARER"
timeout_ms = 5000

[[routes]]
name = "resilient"
strategy = "fallback"
targets = ["br/{MODEL}", "openai/gpt-test"]
"#,
        addr = mock.addr
    )
}

async fn start(mock: &Bedrock) -> Gw {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/switchyard.db", dir.path().display());
    Gw::start_env(
        start_mocks().await,
        "",
        &bedrock_toml(mock),
        &url,
        dir,
        &[
            ("BR_KEY_ID", KEY_ID),
            ("BR_SECRET", SECRET),
            ("BR_SESSION", SESSION),
            ("BR_BEARER", BEARER),
        ],
    )
    .await
}

fn path_of(stream: bool) -> String {
    let id = MODEL.replace(':', "%3A");
    if stream {
        format!("/model/{id}/converse-stream")
    } else {
        format!("/model/{id}/converse")
    }
}

#[tokio::test]
async fn every_inbound_dialect_reaches_bedrock_signed() {
    let mock = Bedrock::start().await;
    let gw = start(&mock).await;
    let model = format!("br/{MODEL}");
    let mut ran = 0;
    for inbound in [Inbound::OpenAi, Inbound::Anthropic] {
        for stream in [false, true] {
            for tools in [false, true] {
                let what = format!("{inbound:?} stream={stream} tools={tools}");
                let (_, h, o) = call(&gw, inbound, &request(inbound, &model, stream, tools)).await;
                assert_eq!(h["x-switchyard-provider"], "br", "{what}");
                if tools {
                    assert_eq!(o.finish, "tool_calls", "{what}: {o:?}");
                    assert_eq!(o.calls.len(), 2, "{what}: {o:?}");
                    assert_eq!(o.calls[0].1, "get_weather", "{what}");
                    assert_eq!(o.calls[0].2, json!({"city": "Paris"}), "{what}");
                    assert_eq!(o.calls[1].2, json!({"city": "Rome"}), "{what}");
                } else {
                    assert_eq!(o.text, "Hello from bedrock. You said: Say hi", "{what}");
                    assert_eq!(o.finish, "stop", "{what}");
                }
                assert_eq!(o.usage, Some((11, 7)), "{what}");
                let up = mock.last();
                assert_eq!(up.uri, path_of(stream), "{what}");
                assert!(up.headers.get("x-amz-date").is_some(), "{what}");
                let b = &up.body;
                assert!(
                    b.get("modelId").is_none(),
                    "{what}: the model is in the path"
                );
                assert_eq!(b["system"][0]["text"], "Be brief.", "{what}: {b}");
                assert_eq!(b["messages"][0]["role"], "user", "{what}");
                assert_eq!(b["messages"][0]["content"][0]["text"], "Say hi", "{what}");
                assert_eq!(b["inferenceConfig"]["maxTokens"], 256, "{what}");
                assert_eq!(b["inferenceConfig"]["temperature"], 0.5, "{what}");
                if tools {
                    let spec = &b["toolConfig"]["tools"][0]["toolSpec"];
                    assert_eq!(spec["name"], "get_weather", "{what}");
                    assert_eq!(spec["inputSchema"]["json"]["required"][0], "city", "{what}");
                }
                ran += 1;
            }
        }
    }
    assert_eq!(ran, 8);

    // The Responses API and the Gemini API, whole and streamed.
    let (s, _, v) = gw
        .post("/v1/responses", &json!({"model": model, "input": "Say hi"}))
        .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(
        v["output"][0]["content"][0]["text"], "Hello from bedrock. You said: Say hi",
        "{v}"
    );
    let (s, _, v) = gw
        .post(
            &format!("/v1beta/models/{model}:generateContent"),
            &json!({"contents": [{"role": "user", "parts": [{"text": "Say hi"}]}]}),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(
        v["candidates"][0]["content"]["parts"][0]["text"],
        "Hello from bedrock. You said: Say hi"
    );
    let (s, _, raw) = gw
        .post_raw(
            &format!("/v1beta/models/{model}:streamGenerateContent?alt=sse"),
            json!({"contents": [{"role": "user", "parts": [{"text": "Say hi"}]}]})
                .to_string()
                .into_bytes(),
            &[],
        )
        .await;
    assert_eq!(s, 200);
    let text: String = sse_json(&raw)
        .iter()
        .filter_map(|c| {
            c["candidates"][0]["content"]["parts"][0]["text"]
                .as_str()
                .map(String::from)
        })
        .collect();
    assert_eq!(text, "Hello from bedrock. You said: Say hi", "{raw}");

    // A Bedrock API key: a bearer token, nothing signed.
    let (s, _, v) = gw
        .post(
            "/v1/chat/completions",
            &request(Inbound::OpenAi, "brkey/amazon.nova-pro-v1:0", false, false),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    let up = mock.last();
    assert_eq!(
        up.headers["authorization"],
        format!("Bearer {BEARER}").as_str()
    );
    assert!(up.headers.get("x-amz-date").is_none());

    let (_, v) = gw.admin_call("GET", "/admin/v1/providers", None).await;
    no_aws_canary(&v.to_string());
    no_aws_canary(&logs());
    gw.shutdown().await;
}

/// Parallel tool results go back in one user turn (Bedrock refuses two
/// user turns in a row), tied to their calls by id.
#[tokio::test]
async fn parallel_tool_results_go_back_in_one_turn() {
    let mock = Bedrock::start().await;
    let gw = start(&mock).await;
    let model = format!("br/{MODEL}");
    for inbound in [Inbound::OpenAi, Inbound::Anthropic] {
        let first = request(inbound, &model, false, true);
        let (_, _, o) = call(&gw, inbound, &first).await;
        let mut body = first.clone();
        let msgs = body["messages"].as_array_mut().unwrap();
        match inbound {
            Inbound::OpenAi => {
                msgs.push(json!({"role": "assistant", "content": null, "tool_calls": o.calls.iter().map(|(id, name, args)| json!({"id": id, "type": "function", "function": {"name": name, "arguments": args.to_string()}})).collect::<Vec<_>>()}));
                msgs.push(
                    json!({"role": "tool", "tool_call_id": o.calls[0].0, "content": "sunny, 21C"}),
                );
                msgs.push(
                    json!({"role": "tool", "tool_call_id": o.calls[1].0, "content": "14:00"}),
                );
            }
            Inbound::Anthropic => {
                msgs.push(json!({"role": "assistant", "content": o.calls.iter().map(|(id, name, args)| json!({"type": "tool_use", "id": id, "name": name, "input": args})).collect::<Vec<_>>()}));
                msgs.push(json!({"role": "user", "content": [
                    {"type": "tool_result", "tool_use_id": o.calls[0].0, "content": "sunny, 21C"},
                    {"type": "tool_result", "tool_use_id": o.calls[1].0, "content": "14:00"}
                ]}));
            }
        }
        for stream in [false, true] {
            body["stream"] = json!(stream);
            let (_, _, o2) = call(&gw, inbound, &body).await;
            assert_eq!(o2.text, "Tool result received: sunny, 21C", "{inbound:?}");
            let up = mock.last().body;
            let turns = up["messages"].as_array().unwrap();
            let roles: Vec<&str> = turns.iter().map(|m| m["role"].as_str().unwrap()).collect();
            assert_eq!(roles, ["user", "assistant", "user"], "{up}");
            let results: Vec<&Value> = turns[2]["content"]
                .as_array()
                .unwrap()
                .iter()
                .filter_map(|b| b.get("toolResult"))
                .collect();
            assert_eq!(results.len(), 2, "{up}");
            assert_eq!(
                results[0]["toolUseId"],
                turns[1]["content"][0]["toolUse"]["toolUseId"]
            );
            assert_eq!(
                turns[1]["content"][0]["toolUse"]["toolUseId"],
                "tooluse_0abc"
            );
        }
    }
    gw.shutdown().await;
}

/// An exception frame before the first byte fails over; after it, the
/// caller's stream ends with its dialect's terminal error; a frame with a
/// bad CRC is never passed on as data.
#[tokio::test]
async fn exception_frames_and_corrupt_frames_in_a_200() {
    let mock = Bedrock::start().await;
    let gw = start(&mock).await;
    let throttled = eventstream::encode_exception(
        "throttlingException",
        json!({"message": "Too many tokens, please wait before trying again."})
            .to_string()
            .as_bytes(),
    );
    // Before any output: the route's next target answers.
    mock.script([Reply::Frames(throttled.clone())]);
    let (_, h, o) = call(
        &gw,
        Inbound::Anthropic,
        &request(Inbound::Anthropic, "resilient", true, false),
    )
    .await;
    assert_eq!(h["x-switchyard-provider"], "openai");
    assert_eq!(o.text, "Hello from openai. You said: Say hi");

    // After the first text: a terminal error event, never a clean end.
    let mut bytes = event("messageStart", json!({"role": "assistant"}));
    bytes.extend(event(
        "contentBlockDelta",
        json!({"contentBlockIndex": 0, "delta": {"text": "Partial"}}),
    ));
    let after_text = bytes.clone();
    bytes.extend(eventstream::encode_exception(
        "modelStreamErrorException",
        br#"{"message":"Model stream error","originalStatusCode":500}"#,
    ));
    mock.script([Reply::Frames(bytes)]);
    let model = format!("br/{MODEL}");
    let mut body = request(Inbound::OpenAi, &model, true, false);
    body["stream_options"] = json!({"include_usage": true});
    let (s, _, raw) = gw
        .post_raw("/v1/chat/completions", body.to_string().into_bytes(), &[])
        .await;
    assert_eq!(s, 200);
    assert!(raw.contains("Partial"), "{raw}");
    assert!(raw.contains("Model stream error"), "{raw}");
    assert!(raw.contains("\"error\""), "{raw}");
    mock.script([Reply::Frames({
        let mut b = after_text.clone();
        b.extend(eventstream::encode_exception(
            "throttlingException",
            br#"{"message":"slow down"}"#,
        ));
        b
    })]);
    let (s, _, raw) = gw
        .post_raw(
            "/v1/messages",
            request(Inbound::Anthropic, &model, true, false)
                .to_string()
                .into_bytes(),
            &[],
        )
        .await;
    assert_eq!(s, 200);
    let names: Vec<Option<String>> = sse(&raw).into_iter().map(|e| e.0).collect();
    assert_eq!(names.last().unwrap().as_deref(), Some("error"), "{raw}");

    // A frame whose CRC is wrong: the stream is cut with an error.
    let mut corrupt = after_text.clone();
    let mut last = event(
        "contentBlockDelta",
        json!({"contentBlockIndex": 0, "delta": {"text": "EVIL"}}),
    );
    let n = last.len();
    last[n - 6] ^= 0x20;
    corrupt.extend(last);
    mock.script([Reply::Frames(corrupt)]);
    let (s, _, raw) = gw
        .post_raw(
            "/v1/chat/completions",
            request(Inbound::OpenAi, &model, true, false)
                .to_string()
                .into_bytes(),
            &[],
        )
        .await;
    assert_eq!(s, 200);
    assert!(raw.contains("Partial"), "{raw}");
    assert!(!raw.contains("EVIL") && !raw.contains("EViL"), "{raw}");
    assert!(raw.contains("\"error\""), "{raw}");
    gw.shutdown().await;
}

/// Bedrock's `inputTokens` leaves out cache reads and writes: the caller
/// and the record count each token once, cached ones at their rate, priced
/// by the model id as served (inference-profile prefix kept) whatever the
/// provider is named.
#[tokio::test]
async fn cached_input_is_counted_once_at_its_rate() {
    let mock = Bedrock::start().await;
    let gw = start(&mock).await;
    mock.script([Reply::Answer(json!({
        "output": {"message": {"role": "assistant", "content": [{"text": "cached"}]}},
        "stopReason": "end_turn",
        "usage": {"inputTokens": 100, "outputTokens": 10, "totalTokens": 3110, "cacheReadInputTokens": 2000, "cacheWriteInputTokens": 1000},
        "metrics": {"latencyMs": 80}
    }))]);
    let (s, h, v) = gw
        .post(
            "/v1/chat/completions",
            &request(Inbound::OpenAi, &format!("br/{MODEL}"), false, false),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["usage"]["prompt_tokens"], 3100, "{v}");
    assert_eq!(
        v["usage"]["prompt_tokens_details"]["cached_tokens"], 2000,
        "{v}"
    );
    let r = crate::logs::record(&gw, h["x-switchyard-request-id"].to_str().unwrap()).await;
    assert_eq!(r["input_tokens"], 3100, "{r}");
    assert_eq!(r["cached_tokens"], 2000, "{r}");
    // eu.anthropic.claude-sonnet-4: $3 in, $15 out, $0.30 cache read, $3.75
    // cache write per million.
    let want = (100.0 * 3.0 + 2000.0 * 0.3 + 1000.0 * 3.75 + 10.0 * 15.0) / 1e6;
    let cost = r["cost_usd"].as_f64().unwrap();
    assert!((cost - want).abs() < 1e-9, "{cost} != {want}: {r}");
    // A regional price where the table has one: eu-central-1's MiniMax
    // M2.5 costs $0.36 / $1.44 per million (the base $0.30 / $1.20).
    let (s, h, v) = gw
        .post(
            "/v1/chat/completions",
            &request(Inbound::OpenAi, "br/minimax.minimax-m2.5", false, false),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    let r = crate::logs::record(&gw, h["x-switchyard-request-id"].to_str().unwrap()).await;
    let want = (11.0 * 0.36 + 7.0 * 1.44) / 1e6;
    let cost = r["cost_usd"].as_f64().unwrap();
    assert!((cost - want).abs() < 1e-12, "{cost} != {want}: {r}");
    gw.shutdown().await;
}

/// Throttling fails over; a validation error is the caller's and does not.
#[tokio::test]
async fn throttling_fails_over_and_validation_does_not() {
    let mock = Bedrock::start().await;
    let gw = start(&mock).await;
    mock.script([Reply::Error(
        429,
        "ThrottlingException",
        "Too many requests, please wait before trying again.",
    )]);
    let (s, h, v) = gw
        .post(
            "/v1/chat/completions",
            &request(Inbound::OpenAi, "resilient", false, false),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(h["x-switchyard-provider"], "openai");
    tokio::time::sleep(Duration::from_millis(10)).await;
    let before = gw.mocks.openai.count();
    mock.script([Reply::Error(
        400,
        "ValidationException",
        "The model returned the following errors: messages: roles must alternate",
    )]);
    let (s, _, v) = gw
        .post(
            "/v1/messages",
            &request(Inbound::Anthropic, &format!("br/{MODEL}"), false, false),
        )
        .await;
    assert_eq!(s, 400, "{v}");
    assert_eq!(v["error"]["type"], "invalid_request_error", "{v}");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("roles must alternate"),
        "{v}"
    );
    assert_eq!(gw.mocks.openai.count(), before);
    no_aws_canary(&v.to_string());
    gw.shutdown().await;
}

/// boto3, AWS's own client, against the mock: its signatures pass the
/// mock's check and it reads the mock's answers and frames, so the mock
/// speaks Bedrock's real format (tests/sdk/bedrock_mock.py).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn boto3_reads_the_mock_as_bedrock() {
    let Some(python) = crate::binary::required_env("SWITCHYARD_SDK_PYTHON") else {
        return;
    };
    let mock = Bedrock::start().await;
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/sdk/bedrock_mock.py");
    let endpoint = format!("http://{}", mock.addr);
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new(python)
            .arg(script)
            .args([&endpoint, REGION, KEY_ID, SECRET, SESSION, MODEL])
            .output()
    })
    .await
    .unwrap()
    .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["text"], "Hello from bedrock. You said: Say hi", "{v}");
    assert_eq!(v["usage"]["inputTokens"], 11);
    assert_eq!(v["tool"]["name"], "get_weather");
    assert_eq!(v["tool"]["input"], json!({"city": "Paris"}));
    assert_eq!(v["stop"], "tool_use");
    assert_eq!(v["streamed"], "Hello from bedrock. You said: Say hi");
    assert_eq!(
        v["events"],
        json!([
            "messageStart",
            "contentBlockDelta",
            "contentBlockDelta",
            "contentBlockStop",
            "messageStop",
            "metadata"
        ])
    );
    assert_eq!(v["stream_usage"]["outputTokens"], 7);
    // boto3 sent the model id in the path as the gateway does.
    assert_eq!(mock.last().uri, path_of(true));
}

/// A mock STS (`AssumeRoleWithWebIdentity`) and container credentials
/// endpoint, both issuing the keys the Bedrock mock checks signatures
/// with, living `life` seconds.
#[derive(Clone, Default)]
struct Issuer {
    sts_calls: Arc<Mutex<Vec<String>>>,
    container_calls: Arc<Mutex<Vec<Option<String>>>>,
    life: u64,
}

fn expiring_in(secs: u64) -> String {
    let t = switchyard::clock::unix_s() + secs;
    let (days, rem) = (t / 86_400, t % 86_400);
    // Civil from days (proleptic Gregorian).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// The keys a profile assumes a role with.
const BASE_KEY_ID: &str = "AKIDBASEPROFILE00001";
const BASE_SECRET: &str = "base-profile-secret-canary-0000";

async fn sts(State(i): State<Issuer>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let body = axum::body::to_bytes(body, usize::MAX)
        .await
        .unwrap_or_default();
    let text = String::from_utf8_lossy(&body).into_owned();
    i.sts_calls.lock().unwrap().push(text.clone());
    let role = text.contains("RoleArn=arn%3Aaws%3Aiam%3A%3A123456789012%3Arole%2Fbedrock");
    let ok = if text.contains("Action=AssumeRoleWithWebIdentity") {
        role && text.contains("WebIdentityToken=eyJ.web-identity-canary.sig")
    } else {
        // AssumeRole, signed with the source profile's keys for STS.
        let base = sigv4::Credentials {
            access_key_id: BASE_KEY_ID.into(),
            secret_access_key: BASE_SECRET.into(),
            session_token: None,
        };
        let problem = verify(
            &parts.method,
            &parts.uri,
            &parts.headers,
            &body,
            &base,
            REGION,
            "sts",
        );
        if let Some(p) = &problem {
            eprintln!("sts mock: {p}");
        }
        role && text.contains("Action=AssumeRole&") && problem.is_none()
    };
    let (status, xml) = if ok {
        (
            200,
            format!(
                "<AssumeRoleWithWebIdentityResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\"><AssumeRoleWithWebIdentityResult><Credentials><AccessKeyId>{KEY_ID}</AccessKeyId><SecretAccessKey>{SECRET}</SecretAccessKey><SessionToken>{SESSION}</SessionToken><Expiration>{}</Expiration></Credentials></AssumeRoleWithWebIdentityResult></AssumeRoleWithWebIdentityResponse>",
                expiring_in(i.life)
            ),
        )
    } else {
        (400, "<ErrorResponse><Error><Type>Sender</Type><Code>InvalidIdentityToken</Code><Message>Couldn't retrieve verification key from your identity provider</Message></Error></ErrorResponse>".to_owned())
    };
    let mut r = Response::new(Body::from(xml));
    *r.status_mut() = StatusCode::from_u16(status).unwrap();
    r.headers_mut()
        .insert("content-type", "text/xml".parse().unwrap());
    r
}

async fn container(State(i): State<Issuer>, headers: HeaderMap) -> Response {
    let auth = headers
        .get("authorization")
        .map(|v| v.to_str().unwrap().to_owned());
    i.container_calls.lock().unwrap().push(auth.clone());
    if auth.as_deref() != Some("container-auth-canary") {
        let mut r = Response::new(Body::from("{}"));
        *r.status_mut() = StatusCode::FORBIDDEN;
        return r;
    }
    let mut r = Response::new(Body::from(
        json!({"AccessKeyId": KEY_ID, "SecretAccessKey": SECRET, "Token": SESSION, "Expiration": expiring_in(i.life), "RoleArn": "arn:aws:iam::123456789012:role/bedrock"}).to_string(),
    ));
    r.headers_mut()
        .insert("content-type", "application/json".parse().unwrap());
    r
}

async fn start_issuer(life: u64) -> (Issuer, String) {
    let i = Issuer {
        life,
        ..Issuer::default()
    };
    let app = axum::Router::new()
        .route("/", axum::routing::post(sts))
        .route("/creds", axum::routing::get(container))
        .with_state(i.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (i, format!("http://{addr}"))
}

/// Temporary credentials: a web identity token exchanged at STS, and the
/// container endpoint, each fetched once for calls at once and again
/// before the keys expire.
#[tokio::test]
async fn temporary_credentials_are_fetched_and_refreshed() {
    let mock = Bedrock::start().await;
    let (issuer, url) = start_issuer(2).await;
    let dir = tempfile::tempdir().unwrap();
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, "eyJ.web-identity-canary.sig\n").unwrap();
    let extra = format!(
        "[[providers]]\nname = \"brwi\"\nkind = \"bedrock\"\nregion = \"{REGION}\"\nbase_url = \"http://{}\"\n",
        mock.addr
    );
    let db = format!("sqlite://{}/switchyard.db", dir.path().display());
    let token_path = token_file.display().to_string();
    let gw = Gw::start_env(
        start_mocks().await,
        "",
        &extra,
        &db,
        dir,
        &[
            ("AWS_WEB_IDENTITY_TOKEN_FILE", &token_path),
            ("AWS_ROLE_ARN", "arn:aws:iam::123456789012:role/bedrock"),
            ("AWS_ENDPOINT_URL_STS", &url),
        ],
    )
    .await;
    let chat = request(Inbound::OpenAi, &format!("brwi/{MODEL}"), false, false);
    let calls = (0..5).map(|_| gw.post("/v1/chat/completions", &chat));
    for (s, _, v) in futures_util::future::join_all(calls).await {
        assert_eq!(s, 200, "{v}");
    }
    assert_eq!(
        issuer.sts_calls.lock().unwrap().len(),
        1,
        "one exchange for 5 calls"
    );
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let (s, _, v) = gw.post("/v1/chat/completions", &chat).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(
        issuer.sts_calls.lock().unwrap().len(),
        2,
        "fetched again at half life"
    );
    // An upstream that quotes the session token it was sent: the caller
    // sees the error, not the token.
    mock.script([Reply::EchoToken]);
    let (s, _, v) = gw.post("/v1/chat/completions", &chat).await;
    assert_eq!(s, 400, "{v}");
    let text = v.to_string();
    assert!(text.contains("[redacted]"), "{text}");
    assert!(!text.contains(SESSION), "{text}");
    assert!(!logs().contains("web-identity-canary"));
    assert!(!logs().contains(SESSION));
    gw.shutdown().await;

    // The container endpoint, with its authorization token.
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}/switchyard.db", dir.path().display());
    let extra = format!(
        "[[providers]]\nname = \"brc\"\nkind = \"bedrock\"\nregion = \"{REGION}\"\nbase_url = \"http://{}\"\n",
        mock.addr
    );
    let full = format!("{url}/creds");
    let gw = Gw::start_env(
        start_mocks().await,
        "",
        &extra,
        &db,
        dir,
        &[
            ("AWS_CONTAINER_CREDENTIALS_FULL_URI", &full),
            ("AWS_CONTAINER_AUTHORIZATION_TOKEN", "container-auth-canary"),
        ],
    )
    .await;
    let chat = request(Inbound::Anthropic, &format!("brc/{MODEL}"), true, false);
    for _ in 0..3 {
        let (_, _, o) = call(&gw, Inbound::Anthropic, &chat).await;
        assert_eq!(o.text, "Hello from bedrock. You said: Say hi");
    }
    assert_eq!(
        *issuer.container_calls.lock().unwrap(),
        [Some("container-auth-canary".to_owned())]
    );
    assert!(!logs().contains("container-auth-canary"));
    gw.shutdown().await;
}

/// Embeddings through InvokeModel: Titan (one text, its token count) and
/// Cohere (a batch), to OpenAI and Gemini callers, signed like any call.
#[tokio::test]
async fn embeddings_reach_titan_and_cohere() {
    let mock = Bedrock::start().await;
    let gw = start(&mock).await;
    let (s, h, v) = gw
        .post(
            "/v1/embeddings",
            &json!({"model": "br/amazon.titan-embed-text-v2:0", "input": "hello", "dimensions": 256}),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["data"][0]["embedding"], json!([0.7, 0.8]), "{v}");
    assert_eq!(v["usage"]["prompt_tokens"], 4);
    let up = mock.last();
    assert_eq!(up.uri, "/model/amazon.titan-embed-text-v2%3A0/invoke");
    assert_eq!(up.body, json!({"inputText": "hello", "dimensions": 256}));
    let r = crate::logs::record(&gw, h["x-switchyard-request-id"].to_str().unwrap()).await;
    assert_eq!(
        (r["input_tokens"].as_i64(), r["usage_source"].as_str()),
        (Some(4), Some("reported")),
        "{r}"
    );
    // A batch to Titan is refused by name; Cohere takes it.
    let (s, _, v) = gw
        .post(
            "/v1/embeddings",
            &json!({"model": "br/amazon.titan-embed-text-v2:0", "input": ["a", "b"]}),
        )
        .await;
    assert_eq!(s, 400, "{v}");
    assert!(
        v["error"]["message"].as_str().unwrap().contains("one text"),
        "{v}"
    );
    let (s, _, v) = gw
        .post(
            "/v1beta/models/br/cohere.embed-english-v3:batchEmbedContents",
            &json!({"requests": [
                {"model": "models/br/cohere.embed-english-v3", "content": {"parts": [{"text": "a"}]}},
                {"model": "models/br/cohere.embed-english-v3", "content": {"parts": [{"text": "b"}]}}]}),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["embeddings"].as_array().unwrap().len(), 2, "{v}");
    assert_eq!(v["embeddings"][1]["values"], json!([0.9, 1.0]));
    assert_eq!(mock.last().body["texts"], json!(["a", "b"]));
    gw.shutdown().await;
}

/// Profiles of the config file: a role assumed at STS with a source
/// profile's keys (the request signed for STS), and a
/// `credential_process`.
#[tokio::test]
async fn profiles_assume_roles_and_run_credential_processes() {
    let mock = Bedrock::start().await;
    let (issuer, url) = start_issuer(3600).await;
    let dir = tempfile::tempdir().unwrap();
    let credentials = dir.path().join("credentials");
    std::fs::write(
        &credentials,
        format!(
            "[base]\naws_access_key_id = {BASE_KEY_ID}\naws_secret_access_key = {BASE_SECRET}\n"
        ),
    )
    .unwrap();
    let process = dir.path().join("creds.sh");
    std::fs::write(
        &process,
        format!(
            "#!/bin/sh\nprintf '%s' '{{\"Version\": 1, \"AccessKeyId\": \"{KEY_ID}\", \"SecretAccessKey\": \"{SECRET}\", \"SessionToken\": \"{SESSION}\", \"Expiration\": \"{}\"}}'\n",
            expiring_in(3600)
        ),
    )
    .unwrap();
    let config = dir.path().join("config");
    std::fs::write(
        &config,
        format!(
            "[profile dev]\nrole_arn = arn:aws:iam::123456789012:role/bedrock\nsource_profile = base\n\n[profile tool]\ncredential_process = sh {}\n",
            process.display()
        ),
    )
    .unwrap();
    let paths = (
        credentials.display().to_string(),
        config.display().to_string(),
    );
    for profile in ["dev", "tool"] {
        let extra = format!(
            "[[providers]]\nname = \"brp\"\nkind = \"bedrock\"\nregion = \"{REGION}\"\nbase_url = \"http://{}\"\n",
            mock.addr
        );
        let run = tempfile::tempdir().unwrap();
        let db = format!("sqlite://{}/switchyard.db", run.path().display());
        let gw = Gw::start_env(
            start_mocks().await,
            "",
            &extra,
            &db,
            run,
            &[
                ("AWS_SHARED_CREDENTIALS_FILE", &paths.0),
                ("AWS_CONFIG_FILE", &paths.1),
                ("AWS_PROFILE", profile),
                ("AWS_ENDPOINT_URL_STS", &url),
            ],
        )
        .await;
        let chat = request(Inbound::OpenAi, &format!("brp/{MODEL}"), false, false);
        for _ in 0..2 {
            let (s, _, v) = gw.post("/v1/chat/completions", &chat).await;
            assert_eq!(s, 200, "{profile}: {v}");
        }
        gw.shutdown().await;
    }
    let calls = issuer.sts_calls.lock().unwrap().clone();
    assert_eq!(
        calls.len(),
        1,
        "one AssumeRole for the dev profile's calls: {calls:?}"
    );
    assert!(calls[0].starts_with("Action=AssumeRole&"), "{calls:?}");
    assert!(!logs().contains(BASE_SECRET));
}

/// The Gemini and Responses APIs, whole and streamed, with and without
/// tools.
#[tokio::test]
async fn the_gemini_and_responses_apis() {
    let mock = Bedrock::start().await;
    let gw = start(&mock).await;
    let ran =
        crate::clouds::other_dialects(&gw, &format!("br/{MODEL}"), "Hello from bedrock.").await;
    assert_eq!(ran, 8);
    gw.shutdown().await;
}

/// An exchange STS refuses fails the call with STS's error code only: no
/// token, no message of STS's.
#[tokio::test]
async fn a_refused_web_identity_says_the_code_only() {
    let mock = Bedrock::start().await;
    let (issuer, url) = start_issuer(3600).await;
    let dir = tempfile::tempdir().unwrap();
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, "eyJ.stale-identity-canary.sig").unwrap();
    let extra = format!(
        "[[providers]]\nname = \"brwi\"\nkind = \"bedrock\"\nregion = \"{REGION}\"\nbase_url = \"http://{}\"\n",
        mock.addr
    );
    let db = format!("sqlite://{}/switchyard.db", dir.path().display());
    let token_path = token_file.display().to_string();
    let gw = Gw::start_env(
        start_mocks().await,
        "",
        &extra,
        &db,
        dir,
        &[
            ("AWS_WEB_IDENTITY_TOKEN_FILE", &token_path),
            ("AWS_ROLE_ARN", "arn:aws:iam::123456789012:role/bedrock"),
            ("AWS_ENDPOINT_URL_STS", &url),
        ],
    )
    .await;
    let before = mock.seen().len();
    let (s, _, v) = gw
        .post(
            "/v1/chat/completions",
            &request(Inbound::OpenAi, &format!("brwi/{MODEL}"), false, false),
        )
        .await;
    assert_eq!(s, 502, "{v}");
    let shown = v.to_string();
    assert!(shown.contains("InvalidIdentityToken"), "{shown}");
    assert!(!shown.contains("stale-identity-canary"), "{shown}");
    assert!(!shown.contains("verification key"), "{shown}");
    assert_eq!(
        mock.seen().len(),
        before,
        "nothing reached Bedrock unsigned"
    );
    assert_eq!(issuer.sts_calls.lock().unwrap().len(), 1);
    gw.shutdown().await;
}
