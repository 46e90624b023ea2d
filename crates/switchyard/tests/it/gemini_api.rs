//! The Gemini API inbound over real HTTP: generateContent and
//! streamGenerateContent (SSE and JSON array) through every provider kind,
//! function calling round trips, model names holding `/`, keys in
//! `x-goog-api-key` and `?key=`, countTokens (counted by a Gemini provider,
//! estimated for others), embedContent / batchEmbedContents, the model
//! list, and errors in Gemini's shape.

use serde_json::{Value, json};

use crate::harness::*;

const MODELS: [(&str, &str); 4] = [
    ("google/gemini-test", "gemini"),
    ("anthropic/claude-test", "anthropic"),
    ("openai/gpt-test", "openai"),
    ("compat/local-test", "openai"),
];

pub(crate) fn body(with_tools: bool) -> Value {
    let mut b = json!({
        "contents": [{"role": "user", "parts": [{"text": "Say hi"}]}],
        "systemInstruction": {"role": "user", "parts": [{"text": "Be brief."}]},
        "generationConfig": {"temperature": 0.5, "maxOutputTokens": 256},
    });
    if with_tools {
        b["tools"] = json!([{"functionDeclarations": [{"name": "get_weather", "description": "Weather",
            "parameters": {"type": "OBJECT", "properties": {"city": {"type": "STRING"}}, "required": ["city"]}}]}]);
    }
    b
}

/// The text and function calls of a GenerateContentResponse (or a list of
/// streamed ones), and the last finishReason.
pub(crate) fn read(chunks: &[Value]) -> (String, Vec<(String, Value)>, String) {
    let mut text = String::new();
    let mut calls = Vec::new();
    let mut finish = String::new();
    for c in chunks {
        let cand = &c["candidates"][0];
        for p in cand["content"]["parts"]
            .as_array()
            .cloned()
            .unwrap_or_default()
        {
            if let Some(t) = p["text"].as_str() {
                text.push_str(t);
            }
            if !p["functionCall"].is_null() {
                calls.push((
                    p["functionCall"]["name"].as_str().unwrap().to_owned(),
                    p["functionCall"]["args"].clone(),
                ));
            }
        }
        if let Some(f) = cand["finishReason"].as_str() {
            finish = f.to_owned();
        }
    }
    (text, calls, finish)
}

#[tokio::test]
async fn every_provider_serves_the_gemini_api_streamed_or_not() {
    let gw = Gw::start("[auth]\nrequire_keys = true\n").await;
    let (_, key) = gw.create_key(json!({"name": "genai"})).await;
    let mut n = 0;
    for (model, kind) in MODELS {
        for version in ["v1beta", "v1"] {
            for (method, query) in [
                ("generateContent", ""),
                ("streamGenerateContent", "?alt=sse"),
                ("streamGenerateContent", ""),
            ] {
                for tools in [false, true] {
                    let what = format!("{model} {version} {method}{query} tools={tools}");
                    let path = format!("/{version}/models/{model}:{method}{query}");
                    let (s, h, text) = gw
                        .post_raw(
                            &path,
                            body(tools).to_string().into_bytes(),
                            &[("x-goog-api-key", &key)],
                        )
                        .await;
                    assert_eq!(s, 200, "{what}: {text}");
                    let chunks: Vec<Value> = match (method, query) {
                        ("generateContent", _) => vec![serde_json::from_str(&text).unwrap()],
                        (_, "?alt=sse") => {
                            assert_eq!(h["content-type"], "text/event-stream", "{what}");
                            sse_json(&text)
                        }
                        _ => {
                            assert_eq!(h["content-type"], "application/json", "{what}");
                            serde_json::from_str::<Vec<Value>>(&text).unwrap_or_else(|e| {
                                panic!("{what}: not a JSON array ({e}): {text}")
                            })
                        }
                    };
                    let (out, calls, finish) = read(&chunks);
                    assert_eq!(finish, "STOP", "{what}");
                    if tools {
                        assert_eq!(
                            calls,
                            vec![("get_weather".to_owned(), json!({"city": "Paris"}))],
                            "{what}"
                        );
                    } else {
                        assert_eq!(
                            out,
                            format!("Hello from {kind}. You said: Say hi"),
                            "{what}"
                        );
                    }
                    let usage = &chunks.last().unwrap()["usageMetadata"];
                    assert!(
                        usage["promptTokenCount"].as_u64().unwrap() > 0,
                        "{what}: {usage}"
                    );
                    n += 1;
                }
            }
        }
    }
    println!("gemini api matrix: {n} cases (4 provider kinds × 2 versions × 3 forms × tools)");
    gw.shutdown().await;
}

#[tokio::test]
async fn a_function_response_round_trips_to_every_provider() {
    let gw = Gw::start("").await;
    for (model, _) in MODELS {
        let b = json!({"contents": [
            {"role": "user", "parts": [{"text": "Weather in Paris?"}]},
            {"role": "model", "parts": [{"functionCall": {"name": "get_weather", "args": {"city": "Paris"}}}]},
            {"role": "user", "parts": [{"functionResponse": {"name": "get_weather", "response": {"output": "18C"}}}]}],
            "tools": body(true)["tools"]});
        let (s, _, v) = gw
            .post(&format!("/v1beta/models/{model}:generateContent"), &b)
            .await;
        assert_eq!(s, 200, "{model}: {v}");
        let (text, _, _) = read(&[v]);
        assert!(
            text.starts_with("Tool result received:") && text.contains("18C"),
            "{model}: {text}"
        );
    }
    gw.shutdown().await;
}

#[tokio::test]
async fn keys_errors_tokens_embeddings_and_models_in_geminis_terms() {
    let gw = Gw::start("[auth]\nrequire_keys = true\n").await;
    let (_, key) = gw.create_key(json!({"name": "genai"})).await;
    let path = "/v1beta/models/anthropic/claude-test:generateContent";
    // A key in the query, as Google's API takes it.
    let (s, _, _) = gw
        .post_with(&format!("{path}?key={key}"), &body(false), &[])
        .await;
    assert_eq!(s, 200);
    // No key, a bad body: Gemini-shaped errors.
    let (s, _, e) = gw.post_with(path, &body(false), &[]).await;
    assert_eq!(s, 401, "{e}");
    assert_eq!(e["error"]["status"], "UNAUTHENTICATED", "{e}");
    let (s, _, e) = gw
        .post_with(path, &json!({"contents": []}), &[("x-goog-api-key", &key)])
        .await;
    assert_eq!(s, 400, "{e}");
    assert_eq!(e["error"]["status"], "INVALID_ARGUMENT", "{e}");
    assert!(
        e["error"]["message"].as_str().unwrap().contains("contents"),
        "{e}"
    );
    let auth = [("x-goog-api-key", key.as_str())];
    // What a target cannot express is refused by its Gemini name.
    let mut top_k = body(false);
    top_k["generationConfig"]["topK"] = json!(40.0);
    let (s, _, e) = gw
        .post_with(
            "/v1beta/models/openai/gpt-test:generateContent",
            &top_k,
            &auth,
        )
        .await;
    assert_eq!(s, 400, "{e}");
    assert!(
        e["error"]["message"]
            .as_str()
            .unwrap()
            .contains("generationConfig.topK"),
        "{e}"
    );
    // countTokens: a Gemini provider counts, others are estimated.
    let count = json!({"contents": [{"role": "user", "parts": [{"text": "one two three four"}]}]});
    gw.mocks.gemini.script([crate::mock::Reply::Json(
        200,
        json!({"totalTokens": 5}),
        vec![],
    )]);
    let (s, h, v) = gw
        .post_with(
            "/v1beta/models/google/gemini-test:countTokens",
            &count,
            &auth,
        )
        .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["totalTokens"], 5);
    assert_eq!(h["x-switchyard-token-count"], "provider");
    assert!(
        gw.mocks
            .gemini
            .last()
            .uri
            .ends_with("/models/gemini-test:countTokens")
    );
    let (s, h, v) = gw
        .post_with(
            "/v1beta/models/anthropic/claude-test:countTokens",
            &count,
            &auth,
        )
        .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["totalTokens"], 5, "18 bytes at about 4 a token");
    assert_eq!(h["x-switchyard-token-count"], "estimated");
    // Embeddings, to a Gemini and to an OpenAI-dialect provider.
    for model in ["google/gemini-test", "openai/gpt-test"] {
        let (s, _, v) = gw
            .post_with(
                &format!("/v1beta/models/{model}:batchEmbedContents"),
                &json!({"requests": [
                    {"model": format!("models/{model}"), "content": {"parts": [{"text": "a"}]}},
                    {"model": format!("models/{model}"), "content": {"parts": [{"text": "b"}]}}]}),
                &auth,
            )
            .await;
        assert_eq!(s, 200, "{model}: {v}");
        assert_eq!(v["embeddings"].as_array().unwrap().len(), 2, "{model}: {v}");
        assert_eq!(
            v["embeddings"][0]["values"],
            json!([0.1, 0.2, 0.3]),
            "{model}"
        );
        let (s, _, v) = gw
            .post_with(
                &format!("/v1/models/{model}:embedContent"),
                &json!({"content": {"parts": [{"text": "a"}]}}),
                &auth,
            )
            .await;
        assert_eq!(s, 200, "{model}: {v}");
        assert_eq!(v["embedding"]["values"], json!([0.1, 0.2, 0.3]), "{model}");
    }
    // The batch reached Gemini naming its own model in every request.
    let sent = gw
        .mocks
        .gemini
        .requests()
        .iter()
        .rev()
        .find(|r| r.uri.contains(":batchEmbedContents"))
        .unwrap()
        .json();
    assert_eq!(sent["requests"][1]["model"], "models/gemini-test");
    // The model list, in Gemini's shape on either path with a Gemini key.
    for list in ["/v1beta/models", "/v1/models"] {
        let r = gw
            .http
            .get(gw.url(list))
            .header("x-goog-api-key", &key)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{list}");
        let v: Value = serde_json::from_str(&r.text().await.unwrap()).unwrap();
        let names: Vec<&str> = v["models"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["name"].as_str().unwrap())
            .collect();
        assert!(
            names.contains(&"models/google/gemini-test"),
            "{list}: {names:?}"
        );
    }
    let r = gw
        .http
        .get(gw.url("/v1/models"))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap();
    let v: Value = serde_json::from_str(&r.text().await.unwrap()).unwrap();
    assert_eq!(
        v["object"], "list",
        "an OpenAI caller still gets OpenAI's list"
    );
    gw.shutdown().await;
}
