//! The Responses API over real HTTP: every provider kind, stream and not,
//! text and tools; stored conversations (previous_response_id across
//! providers, item_reference, GET/DELETE/input_items, per key); resuming a
//! stream by response id; and a mid-stream failure ending in
//! `response.failed`.

use serde_json::{Value, json};

use crate::harness::*;
use crate::mock::Reply;

/// (model, which mock serves it, native Responses upstream).
const MODELS: [(&str, &str, bool); 4] = [
    ("openai/gpt-test", "openai", true),
    ("anthropic/claude-test", "anthropic", false),
    ("google/gemini-test", "gemini", false),
    ("compat/local-test", "compat", false),
];

fn mock<'a>(gw: &'a Gw, name: &str) -> &'a crate::mock::Mock {
    match name {
        "openai" => &gw.mocks.openai,
        "anthropic" => &gw.mocks.anthropic,
        "gemini" => &gw.mocks.gemini,
        _ => &gw.mocks.compat,
    }
}

pub(crate) fn tools() -> Value {
    json!([{"type": "function", "name": "get_weather", "description": "Weather",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
            "strict": false}])
}

/// Every member a strict client requires of a Response object.
fn assert_response_object(v: &Value, what: &str) {
    for k in [
        "id",
        "object",
        "created_at",
        "status",
        "model",
        "output",
        "parallel_tool_calls",
        "tool_choice",
        "tools",
        "usage",
        "error",
        "incomplete_details",
        "instructions",
        "metadata",
        "temperature",
        "top_p",
        "text",
        "reasoning",
        "store",
        "truncation",
    ] {
        assert!(v.get(k).is_some(), "{what}: no `{k}` in {v}");
    }
    assert_eq!(v["object"], "response", "{what}");
    assert!(v["id"].as_str().unwrap().starts_with("resp_"), "{what}");
}

/// The text and the function calls of a Response's output.
pub(crate) fn read_output(v: &Value) -> (String, Vec<(String, Value)>) {
    let mut text = String::new();
    let mut calls = Vec::new();
    for item in v["output"].as_array().unwrap() {
        match item["type"].as_str().unwrap() {
            "message" => {
                for p in item["content"].as_array().unwrap() {
                    assert_eq!(p["annotations"], json!([]), "{item}");
                    text.push_str(p["text"].as_str().unwrap());
                }
            }
            "function_call" => calls.push((
                item["name"].as_str().unwrap().to_owned(),
                serde_json::from_str(item["arguments"].as_str().unwrap()).unwrap(),
            )),
            _ => {}
        }
    }
    (text, calls)
}

/// A stream's events, checked for OpenAI's order rules: `response.created`
/// first, `sequence_number` rising by one from 0, `output_item.added`
/// before an item's events, `content_part.added` before text deltas, and
/// exactly one terminal event, last. Returns the terminal event.
pub fn check_stream(text: &str, what: &str) -> (Vec<Value>, Value) {
    let events = sse(text);
    assert!(!events.is_empty(), "{what}: no events");
    let mut parsed = Vec::new();
    let mut added = std::collections::HashSet::new();
    let mut parts = std::collections::HashSet::new();
    for (n, (name, data)) in events.iter().enumerate() {
        let v: Value = serde_json::from_str(data).unwrap();
        let kind = v["type"].as_str().unwrap().to_owned();
        assert_eq!(name.as_deref(), Some(kind.as_str()), "{what}: event name");
        assert_eq!(
            v["sequence_number"],
            json!(n),
            "{what}: sequence at {n}: {v}"
        );
        if n == 0 {
            assert_eq!(kind, "response.created", "{what}");
        }
        let index = v["output_index"].as_u64();
        match kind.as_str() {
            "response.output_item.added" => {
                added.insert(index.unwrap());
            }
            "response.content_part.added" => {
                parts.insert(index.unwrap());
            }
            "response.output_text.delta" => {
                assert!(
                    parts.contains(&index.unwrap()),
                    "{what}: delta before its part"
                )
            }
            _ => {
                if let Some(i) = index {
                    assert!(added.contains(&i), "{what}: {kind} before its item");
                }
            }
        }
        parsed.push(v);
    }
    let terminal: Vec<&Value> = parsed
        .iter()
        .filter(|v| {
            matches!(
                v["type"].as_str(),
                Some("response.completed" | "response.incomplete" | "response.failed")
            )
        })
        .collect();
    assert_eq!(terminal.len(), 1, "{what}: terminal events {terminal:?}");
    let last = parsed.last().unwrap().clone();
    assert_eq!(&last, terminal[0], "{what}: the terminal event is not last");
    (parsed, last)
}

#[tokio::test]
async fn every_provider_serves_responses_text_and_tools_streamed_or_not() {
    let gw = Gw::start("").await;
    let mut cases = 0;
    for (model, upstream, native) in MODELS {
        for stream in [false, true] {
            for with_tools in [false, true] {
                let what = format!("{model} stream={stream} tools={with_tools}");
                let mut body = json!({"model": model, "input": "Say hi", "instructions": "Be brief.",
                                      "stream": stream, "metadata": {"run": "matrix"}});
                if with_tools {
                    body["tools"] = tools();
                }
                let before = mock(&gw, upstream).count();
                let (status, headers, text) = gw
                    .post_raw("/v1/responses", body.to_string().into_bytes(), &[])
                    .await;
                assert_eq!(status, 200, "{what}: {text}");
                assert_eq!(mock(&gw, upstream).count(), before + 1, "{what}");
                let sent = mock(&gw, upstream).last();
                assert_eq!(
                    sent.uri.ends_with("/responses"),
                    native,
                    "{what}: sent to {}",
                    sent.uri
                );
                assert_eq!(
                    headers["x-switchyard-provider"],
                    model.split('/').next().unwrap()
                );
                let response = if stream {
                    let (_, terminal) = check_stream(&text, &what);
                    assert_eq!(terminal["type"], "response.completed", "{what}");
                    terminal["response"].clone()
                } else {
                    serde_json::from_str(&text).unwrap()
                };
                assert_response_object(&response, &what);
                assert_eq!(response["status"], "completed", "{what}");
                let (out_text, calls) = read_output(&response);
                if with_tools {
                    assert_eq!(calls.len(), 1, "{what}: {response}");
                    assert_eq!(calls[0].0, "get_weather");
                    assert_eq!(calls[0].1, json!({"city": "Paris"}));
                } else {
                    assert!(out_text.contains("You said: Say hi"), "{what}: {out_text}");
                }
                assert!(
                    response["usage"]["input_tokens"].as_u64().unwrap() > 0,
                    "{what}"
                );
                assert!(
                    response["usage"]["input_tokens_details"]["cached_tokens"].is_u64(),
                    "{what}"
                );
                if !native {
                    assert_eq!(response["metadata"], json!({"run": "matrix"}), "{what}");
                    assert_eq!(response["instructions"], "Be brief.", "{what}");
                }
                cases += 1;
            }
        }
    }
    println!("responses matrix: {cases} cases (4 provider kinds × stream × tools)");
    gw.shutdown().await;
}

#[tokio::test]
async fn a_tool_round_trip_reaches_every_provider_in_its_own_terms() {
    let gw = Gw::start("").await;
    for (model, upstream, _) in MODELS {
        let body = json!({"model": model, "tools": tools(), "input": [
            {"role": "user", "content": "Weather in Paris?"},
            {"type": "function_call", "call_id": "call_abc", "name": "get_weather", "arguments": "{\"city\":\"Paris\"}"},
            {"type": "function_call_output", "call_id": "call_abc", "output": "18C"}]});
        let (status, _, v) = gw.post("/v1/responses", &body).await;
        assert_eq!(status, 200, "{model}: {v}");
        let (text, _) = read_output(&v);
        assert_eq!(text, "Tool result received: 18C", "{model}");
        // Gemini matches a result to its call by name; the others by id.
        if upstream != "gemini" {
            let s = mock(&gw, upstream).last().json().to_string();
            assert!(
                s.contains("call_abc"),
                "{model}: the call id went upstream: {s}"
            );
        }
    }
    gw.shutdown().await;
}

async fn get(gw: &Gw, path: &str, key: &str) -> (u16, Value) {
    let r = gw
        .http
        .get(gw.url(path))
        .bearer_auth(key)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    let text = r.text().await.unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

#[tokio::test]
async fn stored_conversations_continue_on_any_provider_and_stay_with_their_key() {
    let gw = Gw::start("[auth]\nrequire_keys = true\n").await;
    let (_, alice) = gw.create_key(json!({"name": "alice"})).await;
    let (_, bob) = gw.create_key(json!({"name": "bob"})).await;
    let auth = |k: &str| format!("Bearer {k}");
    // Turn 1 on Anthropic.
    let (s, _, first) = gw
        .post_with(
            "/v1/responses",
            &json!({"model": "anthropic/claude-test", "input": "My name is Ada."}),
            &[("authorization", &auth(&alice))],
        )
        .await;
    assert_eq!(s, 200, "{first}");
    assert_eq!(first["store"], true);
    let id1 = first["id"].as_str().unwrap().to_owned();
    // Turn 2 on OpenAI natively, continuing it: the whole conversation goes
    // upstream, with no previous_response_id OpenAI would not know.
    let (s, _, second) = gw
        .post_with(
            "/v1/responses",
            &json!({"model": "openai/gpt-test", "input": "What is my name?", "previous_response_id": id1}),
            &[("authorization", &auth(&alice))],
        )
        .await;
    assert_eq!(s, 200, "{second}");
    assert_eq!(second["previous_response_id"], id1.as_str());
    let sent = gw.mocks.openai.last().json();
    assert!(sent.get("previous_response_id").is_none(), "{sent}");
    let input = sent["input"].as_array().unwrap();
    let texts: Vec<String> = input.iter().map(|i| i.to_string()).collect();
    assert_eq!(input.len(), 3, "{texts:?}");
    assert!(texts[0].contains("My name is Ada."));
    assert!(texts[1].contains("Hello from anthropic"));
    assert!(texts[2].contains("What is my name?"));
    let id2 = second["id"].as_str().unwrap().to_owned();
    // Turn 3 on Gemini from turn 2: three turns of history.
    let (s, _, third) = gw
        .post_with(
            "/v1/responses",
            &json!({"model": "google/gemini-test", "input": "Thanks", "previous_response_id": id2}),
            &[("authorization", &auth(&alice))],
        )
        .await;
    assert_eq!(s, 200, "{third}");
    let contents = gw.mocks.gemini.last().json()["contents"]
        .as_array()
        .unwrap()
        .len();
    assert_eq!(contents, 5, "user, model, user, model, user");
    // The stored response, its input items, for its key only.
    let (s, got) = get(&gw, &format!("/v1/responses/{id2}"), &alice).await;
    assert_eq!(s, 200, "{got}");
    assert_eq!(got["id"], id2.as_str());
    assert_eq!(got["output"], second["output"]);
    let (s, items) = get(&gw, &format!("/v1/responses/{id2}/input_items"), &alice).await;
    assert_eq!(s, 200, "{items}");
    assert_eq!(items["object"], "list");
    assert_eq!(items["data"].as_array().unwrap().len(), 1, "{items}");
    assert!(items["data"][0]["id"].is_string(), "{items}");
    assert_eq!(items["has_more"], false);
    let (s, e) = get(&gw, &format!("/v1/responses/{id2}"), &bob).await;
    assert_eq!(s, 404, "another key's response: {e}");
    let (s, _, e) = gw
        .post_with(
            "/v1/responses",
            &json!({"model": "openai/gpt-test", "input": "hi", "previous_response_id": id1}),
            &[("authorization", &auth(&bob))],
        )
        .await;
    assert_eq!(s, 404, "{e}");
    assert_eq!(e["error"]["code"], "previous_response_not_found");
    assert_eq!(e["error"]["param"], "previous_response_id");
    // An item of a stored response, by reference.
    let item = first["output"][0]["id"].as_str().unwrap().to_owned();
    let (s, _, v) = gw
        .post_with(
            "/v1/responses",
            &json!({"model": "compat/local-test", "input": [
                {"type": "item_reference", "id": item},
                {"role": "user", "content": "Go on"}]}),
            &[("authorization", &auth(&alice))],
        )
        .await;
    assert_eq!(s, 200, "{v}");
    let msgs = gw.mocks.compat.last().json()["messages"].clone();
    assert_eq!(msgs[0]["role"], "assistant", "{msgs}");
    assert!(
        msgs[0].to_string().contains("Hello from anthropic"),
        "{msgs}"
    );
    // DELETE, then it is gone (and so is a continuation).
    let r = gw
        .http
        .delete(gw.url(&format!("/v1/responses/{id1}")))
        .bearer_auth(&alice)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let v: Value = serde_json::from_str(&r.text().await.unwrap()).unwrap();
    assert_eq!(v["deleted"], true);
    let (s, _) = get(&gw, &format!("/v1/responses/{id1}"), &alice).await;
    assert_eq!(s, 404);
    let (s, _, _) = gw
        .post_with(
            "/v1/responses",
            &json!({"model": "openai/gpt-test", "input": "x", "previous_response_id": id2}),
            &[("authorization", &auth(&alice))],
        )
        .await;
    assert_eq!(s, 404, "a chain with a deleted turn cannot continue");
    gw.shutdown().await;
}

#[tokio::test]
async fn nothing_is_stored_for_store_false_or_a_key_that_logs_nothing() {
    let gw = Gw::start("[auth]\nrequire_keys = true\n").await;
    let (_, quiet) = gw.create_key(json!({"name": "q", "log": "none"})).await;
    let (_, loud) = gw.create_key(json!({"name": "l"})).await;
    for (key, body) in [
        (
            &quiet,
            json!({"model": "anthropic/claude-test", "input": "a"}),
        ),
        (
            &loud,
            json!({"model": "anthropic/claude-test", "input": "a", "store": false}),
        ),
    ] {
        let (s, _, v) = gw
            .post_with(
                "/v1/responses",
                &body,
                &[("authorization", &format!("Bearer {key}"))],
            )
            .await;
        assert_eq!(s, 200, "{v}");
        assert_eq!(v["store"], false, "{v}");
        let id = v["id"].as_str().unwrap();
        let (s, _) = get(&gw, &format!("/v1/responses/{id}"), key).await;
        assert_eq!(s, 404);
    }
    gw.shutdown().await;
}

#[tokio::test]
async fn a_stream_that_fails_midway_ends_with_response_failed() {
    let gw = Gw::start("").await;
    gw.mocks.anthropic.script([Reply::Sse {
        pieces: vec![
            (std::time::Duration::ZERO, "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_1\",\"type\":\"message\",\"role\":\"assistant\",\"model\":\"claude-test\",\"content\":[],\"stop_reason\":null,\"usage\":{\"input_tokens\":5,\"output_tokens\":1}}}\n\n".into()),
            (std::time::Duration::ZERO, "event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n\n".into()),
            (std::time::Duration::ZERO, "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"Partial\"}}\n\n".into()),
        ],
        abort: true,
    }]);
    let (status, _, text) = gw
        .post_raw(
            "/v1/responses",
            json!({"model": "anthropic/claude-test", "input": "x", "stream": true})
                .to_string()
                .into_bytes(),
            &[],
        )
        .await;
    assert_eq!(status, 200);
    let (events, terminal) = check_stream(&text, "cut stream");
    assert_eq!(terminal["type"], "response.failed", "{text}");
    assert_eq!(terminal["response"]["status"], "failed");
    assert!(terminal["response"]["error"]["message"].is_string());
    let error = &events[events.len() - 2];
    assert_eq!(error["type"], "error");
    assert!(
        error["error"]["message"].is_string(),
        "nested, as OpenAI sends it: {error}"
    );
    gw.shutdown().await;
}

#[tokio::test]
async fn a_response_stream_resumes_by_its_id_after_a_sequence_number() {
    // Streams read to the end are kept only when configured to be.
    let gw = Gw::start("[streams]\ndelivered_retain_s = 30\n").await;
    for model in ["anthropic/claude-test", "openai/gpt-test"] {
        let (status, _, text) = gw
            .post_raw(
                "/v1/responses",
                json!({"model": model, "input": "one two three four", "stream": true})
                    .to_string()
                    .into_bytes(),
                &[],
            )
            .await;
        assert_eq!(status, 200);
        let (events, terminal) = check_stream(&text, model);
        let id = terminal["response"]["id"].as_str().unwrap().to_owned();
        assert_eq!(
            events[0]["response"]["id"], terminal["response"]["id"],
            "{model}: one id from created to the end"
        );
        let after = 3;
        let r = gw
            .http
            .get(gw.url(&format!(
                "/v1/responses/{id}?stream=true&starting_after={after}"
            )))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{model}");
        let replay = sse_json(&r.text().await.unwrap());
        assert_eq!(replay.len(), events.len() - after - 1, "{model}");
        assert_eq!(replay[0]["sequence_number"], json!(after + 1), "{model}");
        assert_eq!(replay.last().unwrap(), &terminal, "{model}");
    }
    gw.shutdown().await;
}

#[tokio::test]
async fn a_chain_continues_on_the_provider_that_served_it() {
    let gw = Gw::start(
        "[[routes]]\nname = \"smart\"\nstrategy = \"fallback\"\ntargets = [\"anthropic/claude-test\", \"google/gemini-test\"]\n",
    )
    .await;
    // The first turn fails over to Gemini.
    gw.mocks.anthropic.script([Reply::Json(
        500,
        json!({"type": "error", "error": {"type": "api_error", "message": "boom"}}),
        vec![],
    )]);
    let (s, h, first) = gw
        .post("/v1/responses", &json!({"model": "smart", "input": "one"}))
        .await;
    assert_eq!(s, 200, "{first}");
    assert_eq!(h["x-switchyard-provider"], "google");
    let (anthropic, gemini) = (gw.mocks.anthropic.count(), gw.mocks.gemini.count());
    // The next turn names the same route: it goes to Gemini first, though
    // Anthropic is the route's first target and healthy again.
    let (s, h, second) = gw
        .post(
            "/v1/responses",
            &json!({"model": "smart", "input": "two", "previous_response_id": first["id"]}),
        )
        .await;
    assert_eq!(s, 200, "{second}");
    assert_eq!(h["x-switchyard-provider"], "google");
    assert_eq!(gw.mocks.anthropic.count(), anthropic);
    assert_eq!(gw.mocks.gemini.count(), gemini + 1);
    // Naming another model takes it elsewhere.
    let (s, h, _) = gw
        .post(
            "/v1/responses",
            &json!({"model": "anthropic/claude-test", "input": "three", "previous_response_id": second["id"]}),
        )
        .await;
    assert_eq!(s, 200);
    assert_eq!(h["x-switchyard-provider"], "anthropic");
    gw.shutdown().await;
}

#[tokio::test]
async fn input_tokens_are_counted_by_a_native_provider_and_estimated_elsewhere() {
    let gw = Gw::start("").await;
    let body = |model: &str| json!({"model": model, "input": "one two three four", "instructions": "abcd"});
    let (s, h, v) = gw
        .post("/v1/responses/input_tokens", &body("openai/gpt-test"))
        .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(
        v,
        json!({"object": "response.input_tokens", "input_tokens": 11})
    );
    assert_eq!(h["x-switchyard-token-count"], "provider");
    assert!(
        gw.mocks
            .openai
            .last()
            .uri
            .ends_with("/responses/input_tokens")
    );
    let (s, h, v) = gw
        .post("/v1/responses/input_tokens", &body("anthropic/claude-test"))
        .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["object"], "response.input_tokens");
    assert_eq!(v["input_tokens"], 6, "22 bytes at about 4 a token");
    assert_eq!(h["x-switchyard-token-count"], "estimated");
    gw.shutdown().await;
}

#[tokio::test]
async fn a_compacted_conversation_goes_on_with_any_provider() {
    let gw = Gw::start("").await;
    let (s, h, v) = gw
        .post(
            "/v1/responses/compact",
            &json!({"model": "anthropic/claude-test", "input": [
                {"role": "user", "content": "Fix the build"},
                {"role": "assistant", "content": [{"type": "output_text", "text": "Done: a missing import"}]},
                {"role": "user", "content": "Now the tests"}]}),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["object"], "response.compaction");
    assert_eq!(h["x-switchyard-provider"], "anthropic");
    let output = v["output"].as_array().unwrap();
    assert_eq!(output.len(), 3, "two user messages and the compaction: {v}");
    assert_eq!(output[0]["content"], "Fix the build");
    let compaction = &output[2];
    assert_eq!(compaction["type"], "compaction");
    let blob = compaction["encrypted_content"].as_str().unwrap();
    assert!(blob.starts_with("sy1c."), "{blob}");
    let asked = gw.mocks.anthropic.last().json();
    assert!(
        asked.to_string().contains("Done: a missing import"),
        "the model saw the conversation"
    );
    // The compacted context, given to other providers: the summary arrives
    // as a message; nothing sealed goes upstream.
    let mut input = output.clone();
    input.push(json!({"role": "user", "content": "Continue"}));
    for (model, mock) in [
        ("google/gemini-test", &gw.mocks.gemini),
        ("openai/gpt-test", &gw.mocks.openai),
    ] {
        let (s, _, v) = gw
            .post("/v1/responses", &json!({"model": model, "input": input}))
            .await;
        assert_eq!(s, 200, "{model}: {v}");
        let sent = mock.last().json().to_string();
        assert!(
            sent.contains("was compacted. Its summary follows"),
            "{model}: {sent}"
        );
        assert!(
            sent.contains("Hello from anthropic"),
            "{model}: the summary itself: {sent}"
        );
        assert!(!sent.contains("sy1c."), "{model}: {sent}");
    }
    gw.shutdown().await;
}
