//! The translation matrix over real HTTP: each inbound dialect × each
//! adapter kind × stream/non-stream × text/tools, checking what the client
//! got and what the gateway sent upstream.

use serde_json::{Value, json};

use crate::harness::*;
use crate::mock::{Mock, Recorded};

#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Inbound {
    OpenAi,
    Anthropic,
}

/// What a client made of an answer, whatever its dialect.
#[derive(Debug, Default, PartialEq)]
pub(crate) struct Outcome {
    pub text: String,
    pub calls: Vec<(String, String, Value)>,
    pub finish: String,
    pub usage: Option<(u64, u64)>,
}

const MODELS: [(&str, &str); 4] = [
    ("openai/gpt-test", "openai"),
    ("anthropic/claude-test", "anthropic"),
    ("google/gemini-test", "gemini"),
    ("compat/local-test", "openai"),
];

fn tools(inbound: Inbound) -> Value {
    let schema =
        json!({"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]});
    match inbound {
        Inbound::OpenAi => json!([
            {"type": "function", "function": {"name": "get_weather", "description": "Weather", "parameters": schema}},
            {"type": "function", "function": {"name": "get_time", "parameters": schema}}
        ]),
        Inbound::Anthropic => json!([
            {"name": "get_weather", "description": "Weather", "input_schema": schema},
            {"name": "get_time", "input_schema": schema}
        ]),
    }
}

pub(crate) fn request(inbound: Inbound, model: &str, stream: bool, with_tools: bool) -> Value {
    let mut body = match inbound {
        Inbound::OpenAi => json!({
            "model": model,
            "messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Say hi"}],
            "max_tokens": 256,
            "temperature": 0.5,
        }),
        Inbound::Anthropic => json!({
            "model": model,
            "system": "Be brief.",
            "messages": [{"role": "user", "content": "Say hi"}],
            "max_tokens": 256,
            "temperature": 0.5,
        }),
    };
    if stream {
        body["stream"] = json!(true);
        if inbound == Inbound::OpenAi {
            body["stream_options"] = json!({"include_usage": true});
        }
    }
    if with_tools {
        body["tools"] = tools(inbound);
    }
    body
}

fn path(inbound: Inbound) -> &'static str {
    match inbound {
        Inbound::OpenAi => "/v1/chat/completions",
        Inbound::Anthropic => "/v1/messages",
    }
}

fn outcome_openai(v: &Value) -> Outcome {
    let m = &v["choices"][0]["message"];
    Outcome {
        text: m["content"].as_str().unwrap_or("").to_owned(),
        calls: m["tool_calls"]
            .as_array()
            .map(|tc| {
                tc.iter()
                    .map(|c| {
                        (
                            c["id"].as_str().unwrap().to_owned(),
                            c["function"]["name"].as_str().unwrap().to_owned(),
                            serde_json::from_str(c["function"]["arguments"].as_str().unwrap())
                                .unwrap(),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default(),
        finish: v["choices"][0]["finish_reason"]
            .as_str()
            .unwrap()
            .to_owned(),
        usage: Some((
            v["usage"]["prompt_tokens"].as_u64().unwrap(),
            v["usage"]["completion_tokens"].as_u64().unwrap(),
        )),
    }
}

fn outcome_openai_stream(raw: &str) -> Outcome {
    let events = sse(raw);
    assert_eq!(events.last().map(|e| e.1.as_str()), Some("[DONE]"), "{raw}");
    let mut o = Outcome::default();
    let mut calls: Vec<(String, String, String)> = Vec::new();
    for v in sse_json(raw) {
        assert!(v.get("error").is_none(), "{raw}");
        assert_eq!(v["object"], "chat.completion.chunk");
        if let Some(u) = v.get("usage").filter(|u| !u.is_null()) {
            o.usage = Some((
                u["prompt_tokens"].as_u64().unwrap(),
                u["completion_tokens"].as_u64().unwrap(),
            ));
        }
        let Some(c) = v["choices"].get(0) else {
            continue;
        };
        if let Some(t) = c["delta"]["content"].as_str() {
            o.text.push_str(t);
        }
        for tc in c["delta"]["tool_calls"]
            .as_array()
            .cloned()
            .unwrap_or_default()
        {
            let i = tc["index"].as_u64().unwrap() as usize;
            if calls.len() <= i {
                calls.resize(i + 1, Default::default());
            }
            if let Some(id) = tc["id"].as_str() {
                calls[i].0 = id.into();
            }
            if let Some(n) = tc["function"]["name"].as_str() {
                calls[i].1 = n.into();
            }
            if let Some(a) = tc["function"]["arguments"].as_str() {
                calls[i].2.push_str(a);
            }
        }
        if let Some(f) = c["finish_reason"].as_str() {
            o.finish = f.into();
        }
    }
    o.calls = calls
        .into_iter()
        .map(|(id, n, a)| (id, n, serde_json::from_str(&a).unwrap()))
        .collect();
    o
}

fn outcome_anthropic(v: &Value) -> Outcome {
    assert_eq!(v["type"], "message", "{v}");
    let mut o = Outcome::default();
    for b in v["content"].as_array().unwrap() {
        match b["type"].as_str().unwrap() {
            "text" => o.text.push_str(b["text"].as_str().unwrap()),
            "tool_use" => o.calls.push((
                b["id"].as_str().unwrap().into(),
                b["name"].as_str().unwrap().into(),
                b["input"].clone(),
            )),
            _ => {}
        }
    }
    o.finish = match v["stop_reason"].as_str().unwrap() {
        "end_turn" => "stop".into(),
        "tool_use" => "tool_calls".into(),
        other => other.into(),
    };
    o.usage = Some((
        v["usage"]["input_tokens"].as_u64().unwrap(),
        v["usage"]["output_tokens"].as_u64().unwrap(),
    ));
    o
}

fn outcome_anthropic_stream(raw: &str) -> Outcome {
    let events = sse(raw);
    let names: Vec<String> = events
        .iter()
        .map(|e| e.0.clone().unwrap_or_default())
        .collect();
    assert_eq!(
        names.first().map(String::as_str),
        Some("message_start"),
        "{raw}"
    );
    assert_eq!(
        names.last().map(String::as_str),
        Some("message_stop"),
        "{raw}"
    );
    assert!(!names.contains(&"error".to_owned()), "{raw}");
    let mut o = Outcome::default();
    let mut blocks: Vec<(String, String, String, String)> = Vec::new(); // type, id, name, text/json
    let mut input = 0;
    for (name, d) in events {
        let v: Value = serde_json::from_str(&d).unwrap();
        assert_eq!(
            v["type"].as_str(),
            name.as_deref(),
            "event name and type agree"
        );
        match name.as_deref().unwrap() {
            "message_start" => input = v["message"]["usage"]["input_tokens"].as_u64().unwrap(),
            "content_block_start" => {
                let i = v["index"].as_u64().unwrap() as usize;
                assert_eq!(i, blocks.len(), "blocks start in order");
                let b = &v["content_block"];
                blocks.push((
                    b["type"].as_str().unwrap().into(),
                    b["id"].as_str().unwrap_or("").into(),
                    b["name"].as_str().unwrap_or("").into(),
                    String::new(),
                ));
            }
            "content_block_delta" => {
                let i = v["index"].as_u64().unwrap() as usize;
                let d = &v["delta"];
                match d["type"].as_str().unwrap() {
                    "text_delta" => blocks[i].3.push_str(d["text"].as_str().unwrap()),
                    "input_json_delta" => blocks[i].3.push_str(d["partial_json"].as_str().unwrap()),
                    _ => {}
                }
            }
            "message_delta" => {
                o.finish = match v["delta"]["stop_reason"].as_str().unwrap() {
                    "end_turn" => "stop".into(),
                    "tool_use" => "tool_calls".into(),
                    other => other.into(),
                };
                let u = &v["usage"];
                let inp = u["input_tokens"].as_u64().unwrap_or(input);
                o.usage = Some((inp.max(input), u["output_tokens"].as_u64().unwrap()));
            }
            _ => {}
        }
    }
    for (kind, id, name, body) in blocks {
        match kind.as_str() {
            "text" => o.text.push_str(&body),
            "tool_use" => o
                .calls
                .push((id, name, serde_json::from_str(&body).unwrap())),
            _ => {}
        }
    }
    o
}

/// Checks what reached the upstream: path, credential, translated body.
fn check_upstream(model: &str, inbound: Inbound, stream: bool, with_tools: bool, r: &Recorded) {
    let body = r.json();
    let hdr = |k: &str| r.headers.get(k).map(|v| v.to_str().unwrap().to_owned());
    // The caller's own credential and cookies never travel upstream.
    let all_headers = format!("{:?}", r.headers);
    assert!(!all_headers.contains("client-secret"), "{all_headers}");
    assert!(hdr("cookie").is_none());
    let provider = model.split('/').next().unwrap();
    match provider {
        "openai" | "compat" => {
            assert_eq!(r.uri, "/v1/chat/completions");
            let key = if provider == "openai" {
                OPENAI_KEY
            } else {
                COMPAT_KEY
            };
            assert_eq!(hdr("authorization"), Some(format!("Bearer {key}")));
            assert!(hdr("x-api-key").is_none());
            assert_eq!(body["model"], model.split('/').nth(1).unwrap());
            assert_eq!(body["stream"].as_bool().unwrap_or(false), stream);
            if stream {
                assert_eq!(
                    body["stream_options"]["include_usage"], true,
                    "usage is always requested upstream"
                );
            }
            let msgs = body["messages"].as_array().unwrap();
            assert_eq!(msgs[0], json!({"role": "system", "content": "Be brief."}));
            assert_eq!(msgs[1]["role"], "user");
            assert_eq!(msgs[1]["content"], "Say hi");
            if inbound == Inbound::Anthropic {
                // Translated: OpenAI itself wants max_completion_tokens,
                // compatible servers max_tokens.
                let field = if provider == "openai" {
                    "max_completion_tokens"
                } else {
                    "max_tokens"
                };
                assert_eq!(body[field], 256, "{body}");
            }
            if with_tools {
                assert_eq!(body["tools"][0]["function"]["name"], "get_weather");
                assert_eq!(
                    body["tools"][0]["function"]["parameters"]["required"][0],
                    "city"
                );
            }
        }
        "anthropic" => {
            assert_eq!(r.uri, "/v1/messages");
            assert_eq!(hdr("x-api-key").as_deref(), Some(ANTHROPIC_KEY));
            assert!(hdr("authorization").is_none());
            assert!(hdr("anthropic-version").is_some());
            assert_eq!(body["model"], "claude-test");
            assert_eq!(body["max_tokens"], 256);
            assert_eq!(body["messages"][0]["role"], "user");
            if inbound == Inbound::OpenAi {
                assert_eq!(body["system"][0]["text"], "Be brief.");
                assert_eq!(body["messages"][0]["content"][0]["text"], "Say hi");
            }
            if with_tools {
                assert_eq!(body["tools"][0]["name"], "get_weather");
                assert_eq!(body["tools"][0]["input_schema"]["required"][0], "city");
            }
        }
        "google" => {
            let want = if stream {
                "/v1beta/models/gemini-test:streamGenerateContent?alt=sse"
            } else {
                "/v1beta/models/gemini-test:generateContent"
            };
            assert_eq!(r.uri, want);
            assert_eq!(hdr("x-goog-api-key").as_deref(), Some(GEMINI_KEY));
            assert!(hdr("authorization").is_none());
            assert_eq!(body["systemInstruction"]["parts"][0]["text"], "Be brief.");
            assert_eq!(
                body["contents"][0],
                json!({"role": "user", "parts": [{"text": "Say hi"}]})
            );
            assert_eq!(body["generationConfig"]["maxOutputTokens"], 256);
            assert_eq!(body["generationConfig"]["temperature"], 0.5);
            if with_tools {
                let decl = &body["tools"][0]["functionDeclarations"][0];
                assert_eq!(decl["name"], "get_weather");
                assert_eq!(decl["parametersJsonSchema"]["required"][0], "city");
            }
        }
        _ => unreachable!(),
    }
}

fn mock_for<'a>(gw: &'a Gw, model: &str) -> &'a Mock {
    match model.split('/').next().unwrap() {
        "openai" => &gw.mocks.openai,
        "anthropic" => &gw.mocks.anthropic,
        "google" => &gw.mocks.gemini,
        _ => &gw.mocks.compat,
    }
}

pub(crate) async fn call(
    gw: &Gw,
    inbound: Inbound,
    body: &Value,
) -> (u16, http::HeaderMap, Outcome) {
    let stream = body["stream"].as_bool().unwrap_or(false);
    let headers = [
        ("authorization", "Bearer client-secret-should-not-travel"),
        ("cookie", "session=client-secret-cookie"),
    ];
    let (status, h, raw) = gw
        .post_raw(path(inbound), body.to_string().into_bytes(), &headers)
        .await;
    assert_eq!(status, 200, "{raw}");
    let o = match (inbound, stream) {
        (Inbound::OpenAi, false) => outcome_openai(&serde_json::from_str(&raw).unwrap()),
        (Inbound::OpenAi, true) => {
            assert_eq!(h["content-type"], "text/event-stream");
            outcome_openai_stream(&raw)
        }
        (Inbound::Anthropic, false) => outcome_anthropic(&serde_json::from_str(&raw).unwrap()),
        (Inbound::Anthropic, true) => outcome_anthropic_stream(&raw),
    };
    (status, h, o)
}

#[tokio::test]
async fn translation_matrix() {
    let gw = Gw::start("").await;
    let mut ran = 0;
    for inbound in [Inbound::OpenAi, Inbound::Anthropic] {
        for (model, kind) in MODELS {
            for stream in [false, true] {
                for with_tools in [false, true] {
                    let what = format!("{inbound:?} → {model} stream={stream} tools={with_tools}");
                    let body = request(inbound, model, stream, with_tools);
                    let (_, h, o) = call(&gw, inbound, &body).await;
                    assert_eq!(
                        h["x-switchyard-provider"],
                        model.split('/').next().unwrap(),
                        "{what}"
                    );
                    assert_eq!(
                        h["x-switchyard-model"],
                        model.split('/').nth(1).unwrap(),
                        "{what}"
                    );
                    assert!(h.contains_key("x-switchyard-request-id"), "{what}");
                    if with_tools {
                        assert_eq!(o.finish, "tool_calls", "{what}: {o:?}");
                        assert_eq!(o.calls.len(), 2, "{what}: {o:?}");
                        assert_eq!(o.calls[0].1, "get_weather", "{what}");
                        assert_eq!(o.calls[0].2, json!({"city": "Paris"}), "{what}");
                        assert_eq!(o.calls[1].1, "get_time", "{what}");
                        assert_eq!(o.calls[1].2, json!({"city": "Rome"}), "{what}");
                        assert!(o.calls.iter().all(|c| !c.0.is_empty()), "{what}: ids");
                        assert_ne!(o.calls[0].0, o.calls[1].0, "{what}: distinct ids");
                    } else {
                        assert_eq!(
                            o.text,
                            format!("Hello from {kind}. You said: Say hi"),
                            "{what}"
                        );
                        assert_eq!(o.finish, "stop", "{what}");
                    }
                    assert_eq!(o.usage, Some((11, 7)), "{what}");
                    check_upstream(
                        model,
                        inbound,
                        stream,
                        with_tools,
                        &mock_for(&gw, model).last(),
                    );
                    ran += 1;
                }
            }
        }
    }
    assert_eq!(ran, 32);
    gw.shutdown().await;
}

/// Tool results go back to each provider in its own shape, with the ids the
/// gateway handed out, and the answer comes back.
#[tokio::test]
async fn tool_result_round_trip() {
    let gw = Gw::start("").await;
    for inbound in [Inbound::OpenAi, Inbound::Anthropic] {
        for (model, _) in MODELS {
            for stream in [false, true] {
                let what = format!("{inbound:?} → {model} stream={stream}");
                let first = request(inbound, model, false, true);
                let (_, _, o) = call(&gw, inbound, &first).await;
                let mut body = first.clone();
                let msgs = body["messages"].as_array_mut().unwrap();
                match inbound {
                    Inbound::OpenAi => {
                        msgs.push(json!({"role": "assistant", "content": null, "tool_calls": o.calls.iter().map(|(id, name, args)| json!({"id": id, "type": "function", "function": {"name": name, "arguments": args.to_string()}})).collect::<Vec<_>>()}));
                        msgs.push(json!({"role": "tool", "tool_call_id": o.calls[0].0, "content": "sunny, 21C"}));
                        msgs.push(json!({"role": "tool", "tool_call_id": o.calls[1].0, "content": "14:00"}));
                    }
                    Inbound::Anthropic => {
                        msgs.push(json!({"role": "assistant", "content": o.calls.iter().map(|(id, name, args)| json!({"type": "tool_use", "id": id, "name": name, "input": args})).collect::<Vec<_>>()}));
                        msgs.push(json!({"role": "user", "content": [
                            {"type": "tool_result", "tool_use_id": o.calls[0].0, "content": "sunny, 21C"},
                            {"type": "tool_result", "tool_use_id": o.calls[1].0, "content": [{"type": "text", "text": "14:00"}]}
                        ]}));
                    }
                }
                if stream {
                    body["stream"] = json!(true);
                }
                let (_, _, o2) = call(&gw, inbound, &body).await;
                assert_eq!(o2.text, "Tool result received: sunny, 21C", "{what}");
                // Upstream saw the result in its own shape, tied to its call.
                let up = mock_for(&gw, model).last().json();
                match model.split('/').next().unwrap() {
                    "anthropic" => {
                        let last = up["messages"].as_array().unwrap().last().unwrap().clone();
                        assert_eq!(last["role"], "user", "{what}");
                        assert_eq!(last["content"][0]["type"], "tool_result", "{what}");
                        assert_eq!(last["content"][1]["type"], "tool_result", "{what}");
                        let prev = &up["messages"].as_array().unwrap()[1];
                        assert_eq!(prev["content"][0]["type"], "tool_use", "{what}");
                        assert_eq!(
                            prev["content"][0]["input"],
                            json!({"city": "Paris"}),
                            "{what}"
                        );
                    }
                    "google" => {
                        let contents = up["contents"].as_array().unwrap();
                        assert_eq!(contents[1]["role"], "model", "{what}");
                        assert_eq!(
                            contents[1]["parts"][0]["functionCall"]["name"], "get_weather",
                            "{what}"
                        );
                        let last = contents.last().unwrap();
                        assert_eq!(
                            last["parts"][0]["functionResponse"]["name"], "get_weather",
                            "{what}"
                        );
                        assert_eq!(
                            last["parts"][0]["functionResponse"]["response"]["output"],
                            "sunny, 21C",
                            "{what}"
                        );
                        assert_eq!(
                            last["parts"][1]["functionResponse"]["name"], "get_time",
                            "{what}"
                        );
                    }
                    _ => {
                        let msgs = up["messages"].as_array().unwrap();
                        let n = msgs.len();
                        assert_eq!(msgs[n - 2]["role"], "tool", "{what}");
                        assert_eq!(msgs[n - 2]["tool_call_id"], o.calls[0].0.as_str(), "{what}");
                        assert_eq!(
                            msgs[n - 3]["tool_calls"][0]["function"]["name"],
                            "get_weather",
                            "{what}"
                        );
                    }
                }
            }
        }
    }
    gw.shutdown().await;
}

/// Without `stream_options.include_usage` an OpenAI caller sees no usage
/// chunk, though the gateway asked upstream for one.
#[tokio::test]
async fn usage_the_caller_did_not_ask_for_stays_hidden() {
    let gw = Gw::start("").await;
    for (model, _) in MODELS {
        let mut body = request(Inbound::OpenAi, model, true, false);
        body.as_object_mut().unwrap().remove("stream_options");
        let (status, _, raw) = gw
            .post_raw("/v1/chat/completions", body.to_string().into_bytes(), &[])
            .await;
        assert_eq!(status, 200);
        for v in sse_json(&raw) {
            assert!(v.get("usage").is_none_or(Value::is_null), "{model}: {raw}");
            assert!(
                !v["choices"].as_array().unwrap().is_empty(),
                "{model}: no usage-only chunk: {raw}"
            );
        }
        assert!(raw.trim_end().ends_with("data: [DONE]"), "{raw}");
    }
    gw.shutdown().await;
}

/// Every streamed event carries an `id:`, numbered from 0.
#[tokio::test]
async fn streamed_events_are_numbered() {
    let gw = Gw::start("").await;
    for inbound in [Inbound::OpenAi, Inbound::Anthropic] {
        for (model, _) in MODELS {
            let body = request(inbound, model, true, false);
            let (_, _, raw) = gw
                .post_raw(path(inbound), body.to_string().into_bytes(), &[])
                .await;
            let mut p = switchyard::wire::sse::Parser::new(0);
            let mut evs = Vec::new();
            p.feed(raw.as_bytes(), &mut evs).unwrap();
            let ids: Vec<u64> = evs
                .iter()
                .map(|e| e.id.as_deref().unwrap().parse().unwrap())
                .collect();
            let want: Vec<u64> = (0..ids.len() as u64).collect();
            assert_eq!(ids, want, "{inbound:?} {model}");
        }
    }
    gw.shutdown().await;
}
