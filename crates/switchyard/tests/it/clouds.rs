//! The Gemini API and the Responses API, whole and streamed, with and
//! without tools, against a model of each cloud kind (Azure, Bedrock,
//! Vertex): the rest of the translation matrix beside each kind's own
//! OpenAI and Anthropic runs.

use serde_json::{Value, json};

use crate::harness::*;

/// Runs the eight calls on `model`; `greeting` is its mock's text answer's
/// start. Returns how many ran.
pub async fn other_dialects(gw: &Gw, model: &str, greeting: &str) -> usize {
    let mut ran = 0;
    for tools in [false, true] {
        for (method, query) in [
            ("generateContent", ""),
            ("streamGenerateContent", "?alt=sse"),
        ] {
            let what = format!("gemini {model} {method} tools={tools}");
            let (s, _, text) = gw
                .post_raw(
                    &format!("/v1beta/models/{model}:{method}{query}"),
                    crate::gemini_api::body(tools).to_string().into_bytes(),
                    &[],
                )
                .await;
            assert_eq!(s, 200, "{what}: {text}");
            let chunks: Vec<Value> = if query.is_empty() {
                vec![serde_json::from_str(&text).unwrap()]
            } else {
                sse_json(&text)
            };
            let (out, calls, finish) = crate::gemini_api::read(&chunks);
            assert_eq!(finish, "STOP", "{what}: {text}");
            check(&what, tools, greeting, &out, &calls);
            ran += 1;
        }
        for stream in [false, true] {
            let what = format!("responses {model} stream={stream} tools={tools}");
            let mut body = json!({"model": model, "input": "Say hi", "stream": stream});
            if tools {
                body["tools"] = crate::responses::tools();
            }
            let (s, _, text) = gw
                .post_raw("/v1/responses", body.to_string().into_bytes(), &[])
                .await;
            assert_eq!(s, 200, "{what}: {text}");
            let response = if stream {
                let (_, last) = crate::responses::check_stream(&text, &what);
                assert_eq!(last["type"], "response.completed", "{what}");
                last["response"].clone()
            } else {
                serde_json::from_str(&text).unwrap()
            };
            let (out, calls) = crate::responses::read_output(&response);
            check(&what, tools, greeting, &out, &calls);
            ran += 1;
        }
    }
    ran
}

fn check(what: &str, tools: bool, greeting: &str, text: &str, calls: &[(String, Value)]) {
    if tools {
        assert_eq!(
            calls.first(),
            Some(&("get_weather".to_owned(), json!({"city": "Paris"}))),
            "{what}: {calls:?}"
        );
    } else {
        assert_eq!(text, format!("{greeting} You said: Say hi"), "{what}");
        assert!(calls.is_empty(), "{what}");
    }
}
