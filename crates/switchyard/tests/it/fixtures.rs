//! Golden translation fixtures: data files, one `check` per kind.
//!
//! - `tests/fixtures/requests/*.json`: a caller's request in its dialect and,
//!   per adapter kind, the exact upstream body (or `{"error": "<field>"}`
//!   when the kind cannot express something and the gateway must refuse).
//!   A Gemini caller's body has no model: its URL names `x/any`.
//! - `tests/fixtures/responses/*.json`: an upstream answer and, per caller
//!   dialect, the exact body the caller gets.
//! - `tests/fixtures/streams/*.json`: an upstream SSE body and, per caller
//!   dialect, the events the caller gets (event name + data JSON).
//!
//! `SWITCHYARD_BLESS=1 cargo test fixtures` rewrites the expectations from
//! what the code does now; review the diff before committing it.

use std::path::{Path, PathBuf};

use serde_json::{Value, json};
use switchyard::config::{Config, Env};
use switchyard::dialect::Dialect;
use switchyard::providers::{Inbound, Providers, chat_call};
use switchyard::stream::Translator;
use switchyard::wire;

fn dir(kind: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(kind)
}

fn cases(kind: &str) -> Vec<(PathBuf, Value)> {
    let mut out: Vec<(PathBuf, Value)> = std::fs::read_dir(dir(kind))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .map(|p| {
            let v = serde_json::from_str(&std::fs::read_to_string(&p).unwrap())
                .unwrap_or_else(|e| panic!("{}: {e}", p.display()));
            (p, v)
        })
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    assert!(!out.is_empty(), "no fixtures in {kind}");
    out
}

fn bless() -> bool {
    std::env::var("SWITCHYARD_BLESS").is_ok_and(|v| v == "1")
}

fn save(path: &Path, v: &Value) {
    std::fs::write(path, serde_json::to_string_pretty(v).unwrap() + "\n").unwrap();
}

fn dialect(name: &str) -> Dialect {
    match name {
        "openai" => Dialect::OpenAi,
        "anthropic" => Dialect::Anthropic,
        "gemini" => Dialect::Gemini,
        "responses" => Dialect::Responses,
        other => panic!("unknown dialect {other}"),
    }
}

/// One provider of each adapter kind, named after its kind.
fn providers() -> Providers {
    let text = r#"
[[providers]]
name = "openai"
kind = "openai"
[[providers]]
name = "openai-compatible"
kind = "openai-compatible"
base_url = "http://127.0.0.1:1/v1"
[[providers]]
name = "anthropic"
kind = "anthropic"
[[providers]]
name = "gemini"
kind = "gemini"
"#;
    let env = Env::default();
    Providers::new(&Config::parse(text, None, &env).unwrap(), &env)
}

/// What the gateway sends upstream for `request`, or the refused field.
fn upstream_body(providers: &Providers, inbound: Dialect, kind: &str, request: &Value) -> Value {
    let bytes = request.to_string().into_bytes();
    // A Gemini caller names the model in the URL, as a route would.
    let envelope = switchyard::dialect::Envelope {
        model: "x/any".into(),
        stream: false,
        method: "generateContent".into(),
    };
    let envelope = (inbound == Dialect::Gemini).then_some(&envelope);
    let (req, fields) = match inbound.decode_request(&bytes, envelope) {
        Ok(x) => x,
        Err(e) => return json!({"decode_error": e.field}),
    };
    let echo = inbound.echo(&fixed_id(), &fields, &req, true);
    let inbound = Inbound {
        dialect: inbound,
        request: &req,
        fields: &fields,
        anthropic_version: None,
        anthropic_beta: None,
        echo: &echo,
        drop_tools: &[],
    };
    let provider = providers.get(kind).unwrap();
    match chat_call(provider, &inbound, "test-model") {
        Ok(call) => {
            let mut v: Value = serde_json::from_slice(&call.body).unwrap();
            if kind == "gemini" {
                // The model travels in the URL for Gemini; show it.
                v = json!({"url": call.url.split("/v1beta").nth(1).unwrap(), "body": v});
            }
            v
        }
        Err(e) => json!({"error": e.field}),
    }
}

#[test]
fn request_fixtures() {
    let providers = providers();
    let mut checked = 0;
    for (path, mut case) in cases("requests") {
        let inbound = dialect(case["inbound"].as_str().unwrap());
        let request = case["request"].clone();
        let kinds: Vec<String> = case["targets"]
            .as_object()
            .unwrap()
            .keys()
            .cloned()
            .collect();
        let mut changed = false;
        for kind in kinds {
            let got = upstream_body(&providers, inbound, &kind, &request);
            if bless() {
                changed |= case["targets"][&kind] != got;
                case["targets"][&kind] = got;
            } else {
                assert_eq!(
                    got,
                    case["targets"][&kind],
                    "{} → {kind}\n got: {}",
                    path.display(),
                    serde_json::to_string_pretty(&got).unwrap()
                );
            }
            checked += 1;
        }
        if changed {
            save(&path, &case);
        }
    }
    println!("request fixtures: {checked} translations checked");
}

#[test]
fn response_fixtures() {
    for (path, mut case) in cases("responses") {
        let upstream = dialect(case["upstream"].as_str().unwrap());
        let body = case["response"].to_string().into_bytes();
        let callers: Vec<String> = case["callers"]
            .as_object()
            .unwrap()
            .keys()
            .cloned()
            .collect();
        let mut changed = false;
        for caller in callers {
            let got = translate_response(
                upstream,
                dialect(&caller),
                &body,
                case.get("request").filter(|_| caller == "responses"),
            );
            if bless() {
                changed |= case["callers"][&caller] != got;
                case["callers"][&caller] = got;
            } else {
                assert_eq!(
                    got,
                    case["callers"][&caller],
                    "{} → {caller}\n got: {}",
                    path.display(),
                    serde_json::to_string_pretty(&got).unwrap()
                );
            }
        }
        if changed {
            save(&path, &case);
        }
    }
}

/// The request id fixtures are made with, so ids in them are stable.
fn fixed_id() -> uuid::Uuid {
    uuid::Uuid::from_u128(0x0190_0000_0000_7000_8000_0000_0000_0001)
}

/// The echo a Responses caller's answers carry in fixtures: a request with
/// no settings but the ones `request` holds.
fn fixture_echo(caller: Dialect, request: Option<&Value>) -> switchyard::dialect::Echo {
    if caller != Dialect::Responses {
        return switchyard::dialect::Echo::None;
    }
    let body = request
        .cloned()
        .unwrap_or_else(|| json!({"model": "m", "input": "hi"}))
        .to_string();
    let (req, fields) = caller
        .decode_request(body.as_bytes(), None)
        .expect("fixture requests decode");
    caller.echo(&fixed_id(), &fields, &req, true)
}

fn translate_response(
    upstream: Dialect,
    caller: Dialect,
    body: &[u8],
    request: Option<&Value>,
) -> Value {
    if upstream == caller {
        // Same dialect: the body passes through untouched.
        return serde_json::from_slice(body).unwrap();
    }
    let mut r = match upstream.decode_response(body) {
        Ok(r) => r,
        Err(e) => return json!({"error": e.message}),
    };
    // As the gateway does, with a clock that stands still.
    if r.created == 0 {
        r.created = 1700000000;
    }
    let echo = fixture_echo(caller, request);
    let mut out: Value = match caller.encode_response(&r, &echo, upstream.as_str()) {
        Ok(b) => serde_json::from_slice(&b).unwrap(),
        Err(e) => return json!({"error": e.message}),
    };
    // The time a Response completed is the clock's.
    if out.get("completed_at").is_some_and(|v| !v.is_null()) {
        out["completed_at"] = json!("<now>");
    }
    out
}

#[test]
fn stream_fixtures() {
    for (path, mut case) in cases("streams") {
        let upstream = dialect(case["upstream"].as_str().unwrap());
        let raw: String = case["sse"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s.as_str().unwrap())
            .collect();
        let callers: Vec<String> = case["callers"]
            .as_object()
            .unwrap()
            .keys()
            .cloned()
            .collect();
        let mut changed = false;
        for caller in callers {
            let include_usage = case["include_usage"].as_bool().unwrap_or(true);
            let got = translate_stream(
                upstream,
                dialect(&caller),
                include_usage,
                raw.as_bytes(),
                case.get("request").filter(|_| caller == "responses"),
            );
            if bless() {
                changed |= case["callers"][&caller] != got;
                case["callers"][&caller] = got;
            } else {
                assert_eq!(
                    got,
                    case["callers"][&caller],
                    "{} → {caller}\n got: {}",
                    path.display(),
                    serde_json::to_string_pretty(&got).unwrap()
                );
            }
        }
        if changed {
            save(&path, &case);
        }
    }
}

/// Runs an upstream SSE body through the translator the gateway uses, and
/// lists what the caller receives as `[event name or null, data]`.
fn translate_stream(
    upstream: Dialect,
    caller: Dialect,
    include_usage: bool,
    raw: &[u8],
    request: Option<&Value>,
) -> Value {
    let echo = fixture_echo(caller, request);
    let mut t = Translator::new(
        caller,
        upstream,
        switchyard::dialect::Start {
            id: "id-default".into(),
            model: "model-default".into(),
            created: 1700000000,
            include_usage,
            echo: &echo,
            provider: upstream.as_str(),
        },
    );
    let mut p = wire::sse::Parser::new(0);
    let mut events = Vec::new();
    p.feed(raw, &mut events).unwrap();
    p.finish(&mut events);
    let mut w = wire::sse::Writer::new(0);
    for ev in &events {
        if let Err(e) = t.feed(ev, &mut w) {
            // Rendered as the gateway renders it: in the caller's dialect.
            let status = match &e {
                wire::StreamError::Upstream { status, .. } => *status,
                wire::StreamError::Malformed(_) => 502,
            };
            let body = caller.error_body(&switchyard::dialect::ErrorParts {
                status,
                message: &e.to_string(),
                code: "server_error",
                param: None,
                overloaded: false,
            });
            t.fail(&mut w, &body);
            return list(&w.take());
        }
    }
    if t.complete() {
        t.finish(&mut w);
    } else {
        // As the gateway ends a stream cut short: a terminal error.
        let body = caller.error_body(&switchyard::dialect::ErrorParts {
            status: 502,
            message: "the upstream ended the stream before its answer was complete",
            code: "broken_stream",
            param: None,
            overloaded: false,
        });
        t.fail(&mut w, &body);
    }
    list(&w.take())
}

fn list(bytes: &[u8]) -> Value {
    let mut p = wire::sse::Parser::new(0);
    let mut out = Vec::new();
    p.feed(bytes, &mut out).unwrap();
    Value::Array(
        out.iter()
            .map(|e| {
                let mut data: Value = serde_json::from_slice(&e.data)
                    .unwrap_or_else(|_| Value::String(e.data_str().into()));
                // The time a Response completed is the clock's.
                if data["response"]["completed_at"].is_number() {
                    data["response"]["completed_at"] = json!("<now>");
                }
                json!([e.name(), data])
            })
            .collect(),
    )
}
