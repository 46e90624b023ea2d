//! Bad input and failures: each a clear error in the caller's dialect, never
//! a panic, and nothing sent upstream when the request itself is wrong.

use std::time::Duration;

use serde_json::{Value, json};

use crate::harness::*;
use crate::mock::Reply;

fn openai_error(v: &Value) -> (&str, Option<&str>, &str) {
    (
        v["error"]["type"].as_str().unwrap(),
        v["error"]["param"].as_str(),
        v["error"]["message"].as_str().unwrap(),
    )
}

fn anthropic_error(v: &Value) -> (&str, &str) {
    assert_eq!(v["type"], "error", "{v}");
    (
        v["error"]["type"].as_str().unwrap(),
        v["error"]["message"].as_str().unwrap(),
    )
}

fn upstream_calls(gw: &Gw) -> usize {
    gw.mocks.openai.count()
        + gw.mocks.anthropic.count()
        + gw.mocks.gemini.count()
        + gw.mocks.compat.count()
}

#[tokio::test]
async fn bad_requests_are_refused_in_the_callers_dialect_before_any_upstream_call() {
    let mocks = start_mocks().await;
    let gw = Gw::start_full(mocks, "max_body_bytes = 4096", "").await;
    let oa = "/v1/chat/completions";
    let an = "/v1/messages";
    let user = json!([{"role": "user", "content": "hi"}]);
    // (path, body, status, param or anthropic error-message fragment)
    let cases: Vec<(&str, Vec<u8>, u16, &str)> = vec![
        (oa, b"{not json".to_vec(), 400, ""),
        (oa, b"[1,2,3]".to_vec(), 400, ""),
        (oa, json!({"messages": user}).to_string().into_bytes(), 400, "model"),
        (oa, json!({"model": "openai/gpt-test"}).to_string().into_bytes(), 400, "messages"),
        (oa, json!({"model": "openai/gpt-test", "messages": "hi"}).to_string().into_bytes(), 400, "messages"),
        (oa, json!({"model": 7, "messages": user}).to_string().into_bytes(), 400, "model"),
        (oa, json!({"model": "openai/gpt-test", "messages": user, "temperature": "hot"}).to_string().into_bytes(), 400, "temperature"),
        (oa, json!({"model": "openai/gpt-test", "messages": [{"role": "wizard", "content": "x"}]}).to_string().into_bytes(), 400, "messages[0].role"),
        (oa, json!({"model": "openai/gpt-test", "messages": [{"role": "tool", "content": "x"}]}).to_string().into_bytes(), 400, "messages[0].tool_call_id"),
        (oa, json!({"model": "openai/gpt-test", "messages": [{"role": "user", "content": 5}]}).to_string().into_bytes(), 400, "messages[0].content"),
        (oa, json!({"model": "nope/gpt", "messages": user}).to_string().into_bytes(), 404, "model"),
        (oa, json!({"model": "gpt-without-provider", "messages": user}).to_string().into_bytes(), 404, "model"),
        (oa, json!({"model": "openai/", "messages": user}).to_string().into_bytes(), 404, "model"),
        (oa, json!({"model": "anthropic/claude-test", "messages": user, "seed": 7}).to_string().into_bytes(), 400, "seed"),
        (oa, json!({"model": "anthropic/claude-test", "messages": user, "logprobs": true}).to_string().into_bytes(), 400, "logprobs"),
        (oa, json!({"model": "google/gemini-test", "messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}}]}]}).to_string().into_bytes(), 400, "messages[0].content[0]"),
        (oa, json!({"model": "openai/gpt-test", "messages": user, "pad": "x".repeat(8000)}).to_string().into_bytes(), 413, ""),
        (oa, json!({"model": format!("openai/{}", "m".repeat(300)), "messages": user}).to_string().into_bytes(), 400, "model"),
        (oa, format!("{{{}}}", (0..300).map(|i| format!("\"f{i}\":0")).collect::<Vec<_>>().join(",")).into_bytes(), 400, ""),
        (an, b"{".to_vec(), 400, "not valid JSON"),
        (an, json!({"model": format!("openai/{}", "m".repeat(300)), "max_tokens": 5, "messages": user}).to_string().into_bytes(), 400, "at most 256"),
        (an, json!({"model": "openai/gpt-test", "max_tokens": 5}).to_string().into_bytes(), 400, "messages"),
        (an, json!({"model": "openai/gpt-test", "max_tokens": 5, "messages": [{"role": "system", "content": "x"}]}).to_string().into_bytes(), 400, "messages[0].role"),
        (an, json!({"model": "openai/gpt-test", "max_tokens": 5, "messages": user, "top_k": 3}).to_string().into_bytes(), 400, "top_k"),
        (an, json!({"model": "openai/gpt-test", "max_tokens": 5, "messages": user, "tools": [{"type": "web_search_20250305", "name": "web_search"}]}).to_string().into_bytes(), 400, "tools[0].type"),
        (an, json!({"model": "x/y", "max_tokens": 5, "messages": user}).to_string().into_bytes(), 404, "no provider named `x`"),
        (an, json!({"model": "openai/gpt-test", "max_tokens": 5, "messages": user, "pad": "x".repeat(8000)}).to_string().into_bytes(), 413, ""),
    ];
    let before = upstream_calls(&gw);
    for (path, body, status, expect) in cases {
        let shown = String::from_utf8_lossy(&body[..body.len().min(120)]).into_owned();
        let (s, h, text) = gw.post_raw(path, body, &[]).await;
        assert_eq!(s, status, "{path} {shown}: {text}");
        assert!(h.contains_key("x-switchyard-request-id"), "{shown}");
        assert_eq!(h["content-type"], "application/json");
        let v: Value = serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON: {text}"));
        if path == oa {
            let (kind, param, message) = openai_error(&v);
            assert!(!message.is_empty());
            match status {
                413 => assert!(message.contains("4096"), "{message}"),
                404 => assert_eq!(kind, "not_found_error"),
                _ => assert_eq!(kind, "invalid_request_error"),
            }
            if !expect.is_empty() {
                assert_eq!(param, Some(expect), "{shown}: {text}");
                assert!(
                    message.contains(expect.split('[').next().unwrap()),
                    "{message}"
                );
            }
        } else {
            let (kind, message) = anthropic_error(&v);
            match status {
                413 => assert_eq!(kind, "request_too_large"),
                404 => assert_eq!(kind, "not_found_error"),
                _ => assert_eq!(kind, "invalid_request_error"),
            }
            assert!(
                message.contains(expect),
                "{message} should mention {expect}"
            );
        }
    }
    assert_eq!(upstream_calls(&gw), before, "nothing may reach a provider");
    // Unknown paths and methods answer in dialect too.
    let (s, _, v) = gw.post("/v1/nope", &json!({})).await;
    assert_eq!(s, 404);
    assert_eq!(openai_error(&v).0, "not_found_error");
    let (s, _, v) = gw
        .post_with(
            "/v1/chat/completions",
            &json!({}),
            &[("x-switchyard-request-timeout", "soon")],
        )
        .await;
    assert_eq!(s, 400);
    assert_eq!(openai_error(&v).1, Some("x-switchyard-request-timeout"));
    gw.shutdown().await;
}

#[tokio::test]
async fn upstream_errors_keep_their_status_and_name_the_provider() {
    let gw = Gw::start("").await;
    let body = |model: &str| json!({"model": model, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 5});

    gw.mocks.openai.script([Reply::Json(
        429,
        json!({"error": {"message": "Rate limit reached for requests", "type": "requests", "code": "rate_limit_exceeded"}}),
        vec![("retry-after", "7".into())],
    )]);
    let (s, h, v) = gw
        .post("/v1/chat/completions", &body("openai/gpt-test"))
        .await;
    assert_eq!(s, 429);
    assert_eq!(h["retry-after"], "7");
    assert_eq!(h["x-switchyard-request-id"].len(), 36);
    // Which target answered with the error, and after how many attempts.
    assert_eq!(h["x-switchyard-provider"], "openai");
    assert_eq!(h["x-switchyard-model"], "gpt-test");
    assert_eq!(h["x-switchyard-attempts"], "1");
    let (kind, _, message) = openai_error(&v);
    assert_eq!(kind, "rate_limit_error");
    assert!(
        message.starts_with("provider openai: Rate limit reached"),
        "{message}"
    );

    // Anthropic's overloaded is 529, and an Anthropic caller sees its type.
    gw.mocks.anthropic.script([Reply::Json(
        529,
        json!({"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}, "request_id": "req_1"}),
        vec![],
    )]);
    let (s, _, v) = gw
        .post("/v1/messages", &body("anthropic/claude-test"))
        .await;
    assert_eq!(s, 529);
    assert_eq!(
        anthropic_error(&v),
        ("overloaded_error", "provider anthropic: Overloaded")
    );

    // A rejected provider key: the status stays, the upstream text (which
    // may quote the key) does not. (Another provider: openai asked above
    // for a pause of 7 s, and is not asked again before it.)
    gw.mocks.compat.script([Reply::Json(
        401,
        json!({"error": {"message": format!("Incorrect API key provided: {COMPAT_KEY}"), "type": "invalid_request_error", "code": "invalid_api_key"}}),
        vec![],
    )]);
    let (s, _, v) = gw
        .post("/v1/chat/completions", &body("compat/local-test"))
        .await;
    assert_eq!(s, 401);
    assert!(
        openai_error(&v)
            .2
            .contains("rejected the gateway's credential"),
        "{v}"
    );

    // Gemini's error shape, to an Anthropic caller.
    gw.mocks.gemini.script([Reply::Json(
        400,
        json!({"error": {"code": 400, "message": "Invalid value at 'contents'", "status": "INVALID_ARGUMENT"}}),
        vec![],
    )]);
    let (s, _, v) = gw.post("/v1/messages", &body("google/gemini-test")).await;
    assert_eq!(s, 400);
    assert_eq!(
        anthropic_error(&v),
        (
            "invalid_request_error",
            "provider google: Invalid value at 'contents'"
        )
    );

    // A body that is not the provider's dialect at all.
    gw.mocks
        .gemini
        .script([Reply::Json(200, json!(["not", "a", "response"]), vec![])]);
    let (s, _, v) = gw
        .post("/v1/chat/completions", &body("google/gemini-test"))
        .await;
    assert_eq!(s, 502, "{v}");
    assert!(openai_error(&v).2.contains("provider google"), "{v}");
    gw.shutdown().await;
}

#[tokio::test]
async fn timeouts_and_unreachable_providers() {
    let mocks = start_mocks().await;
    let extra = r#"
[[providers]]
name = "slow"
kind = "openai-compatible"
base_url = "SLOW"
timeout_ms = 300

[[providers]]
name = "down"
kind = "openai-compatible"
base_url = "http://127.0.0.1:9/v1"
"#
    .replace("SLOW", &mocks.compat.base_url());
    let gw = Gw::start_with(mocks, &extra).await;
    let body =
        |model: &str| json!({"model": model, "messages": [{"role": "user", "content": "hi"}]});

    gw.mocks.compat.script([Reply::Hang]);
    let t = std::time::Instant::now();
    let (s, _, v) = gw.post("/v1/chat/completions", &body("slow/m")).await;
    assert_eq!(s, 504, "{v}");
    assert!(t.elapsed() < Duration::from_secs(3));
    assert!(
        openai_error(&v)
            .2
            .contains("provider slow sent no response headers within 300ms"),
        "{v}"
    );

    // The request's own deadline, cut while an attempt waits: the 504's
    // record still names the attempt and how long it ran.
    gw.mocks.compat.script([Reply::Hang]);
    let (s, h, v) = gw
        .post_with(
            "/v1/chat/completions",
            &body("slow/m"),
            &[("x-switchyard-request-timeout", "150")],
        )
        .await;
    assert_eq!(s, 504, "{v}");
    assert_eq!(h["x-switchyard-attempts"], "1");
    let r = crate::logs::record(&gw, h["x-switchyard-request-id"].to_str().unwrap()).await;
    let a = &r["attempts"][0];
    assert_eq!(a["target"], "slow/m", "{r}");
    assert_eq!(a["error_class"], "deadline_exceeded", "{r}");
    assert!(a["duration_ms"].as_f64().unwrap() >= 100.0, "{r}");

    let (s, _, v) = gw.post("/v1/messages", &json!({"model": "down/m", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]})).await;
    assert_eq!(s, 502, "{v}");
    assert_eq!(anthropic_error(&v).0, "api_error");
    assert!(
        anthropic_error(&v)
            .1
            .contains("provider down could not be reached"),
        "{v}"
    );

    // A stream that goes silent after its first events: it ends with a
    // terminal error once the upstream has said nothing for timeout_ms.
    gw.mocks.compat.script([Reply::Sse {
        pieces: vec![
            (Duration::ZERO, crate::mock::openai_chunk("one ")),
            (Duration::from_secs(30), crate::mock::openai_chunk("never")),
        ],
        abort: false,
    }]);
    let t = std::time::Instant::now();
    let (s, _, text) = gw
        .post_raw(
            "/v1/chat/completions",
            json!({"model": "slow/m", "stream": true, "messages": [{"role": "user", "content": "hi"}]})
                .to_string()
                .into_bytes(),
            &[],
        )
        .await;
    assert_eq!(s, 200);
    assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());
    assert!(text.contains("one "), "{text}");
    assert!(
        text.contains("\"error\"") && text.contains("next stream event"),
        "a terminal error event: {text}"
    );
    assert!(!text.contains("[DONE]"), "never a clean end: {text}");

    // The caller's deadline for the whole call.
    gw.mocks.compat.script([Reply::Delay(
        Duration::from_millis(250),
        Box::new(Reply::Default),
    )]);
    let (s, _, v) = gw
        .post_with(
            "/v1/chat/completions",
            &body("compat/m"),
            &[("x-switchyard-request-timeout", "100")],
        )
        .await;
    assert_eq!(s, 504, "{v}");
    assert!(openai_error(&v).2.contains("deadline of 100ms"), "{v}");
    gw.shutdown().await;
}

/// A stream that fails after its first byte ends with the caller's terminal
/// error event, never a clean end.
#[tokio::test]
async fn streams_that_break_end_with_a_terminal_error() {
    let gw = Gw::start("").await;
    let text = |t: &str| {
        format!(
            "event: content_block_delta\ndata: {}\n\n",
            json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": t}})
        )
    };
    let start = format!(
        "event: message_start\ndata: {}\n\nevent: content_block_start\ndata: {}\n\n",
        json!({"type": "message_start", "message": {"id": "msg_1", "type": "message", "role": "assistant", "model": "claude-test", "content": [], "stop_reason": null, "usage": {"input_tokens": 5, "output_tokens": 1}}}),
        json!({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}})
    );
    let overloaded = "event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\",\"message\":\"Overloaded\"}}\n\n";

    // Anthropic `event: error` after text, to an OpenAI caller.
    gw.mocks.anthropic.script([Reply::Sse {
        pieces: vec![
            (Duration::ZERO, start.clone()),
            (Duration::ZERO, text("Hel")),
            (Duration::from_millis(30), text("lo")),
            (Duration::from_millis(30), overloaded.to_owned()),
        ],
        abort: false,
    }]);
    let body = json!({"model": "anthropic/claude-test", "stream": true, "messages": [{"role": "user", "content": "hi"}]});
    let (s, _, raw) = gw
        .post_raw("/v1/chat/completions", body.to_string().into_bytes(), &[])
        .await;
    assert_eq!(s, 200);
    let events = sse(&raw);
    let last = &events.last().unwrap().1;
    assert!(!raw.contains("[DONE]"), "no clean end: {raw}");
    let err: Value = serde_json::from_str(last).unwrap();
    assert_eq!(err["error"]["type"], "server_error", "{raw}");
    assert!(
        err["error"]["message"]
            .as_str()
            .unwrap()
            .contains("provider anthropic: Overloaded"),
        "{raw}"
    );
    assert!(
        raw.contains("Hel") && raw.contains("lo"),
        "what arrived before the failure is kept: {raw}"
    );

    // A connection that breaks mid-stream, to an Anthropic caller.
    gw.mocks.openai.script([Reply::Sse {
        pieces: vec![
            (Duration::ZERO, crate::mock::openai_chunk("Hel")),
            (Duration::from_millis(30), crate::mock::openai_chunk("lo")),
        ],
        abort: true,
    }]);
    let body = json!({"model": "openai/gpt-test", "stream": true, "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]});
    let (s, _, raw) = gw
        .post_raw("/v1/messages", body.to_string().into_bytes(), &[])
        .await;
    assert_eq!(s, 200);
    let events = sse(&raw);
    let (name, data) = events.last().unwrap();
    assert_eq!(name.as_deref(), Some("error"), "{raw}");
    assert!(!raw.contains("message_stop"), "{raw}");
    let err: Value = serde_json::from_str(data).unwrap();
    assert_eq!(err["type"], "error");
    assert!(
        err["error"]["message"]
            .as_str()
            .unwrap()
            .contains("provider openai"),
        "{raw}"
    );

    // An upstream that stops without its end marker is a failure too.
    gw.mocks.openai.script([Reply::Sse {
        pieces: vec![(Duration::ZERO, crate::mock::openai_chunk("Hel"))],
        abort: false,
    }]);
    let body = json!({"model": "openai/gpt-test", "stream": true, "messages": [{"role": "user", "content": "hi"}]});
    let (_, _, raw) = gw
        .post_raw("/v1/chat/completions", body.to_string().into_bytes(), &[])
        .await;
    let last: Value = serde_json::from_str(&sse(&raw).last().unwrap().1).unwrap();
    assert!(
        last["error"]["message"]
            .as_str()
            .unwrap()
            .contains("before its answer was complete"),
        "{raw}"
    );

    // Garbled SSE from a Gemini upstream.
    gw.mocks.gemini.script([Reply::Sse {
        pieces: vec![
            (
                Duration::ZERO,
                "data: {\"candidates\":[{\"content\":{\"parts\":[{\"text\":\"Hi\"}]}}]}\r\n\r\n"
                    .into(),
            ),
            (Duration::from_millis(30), "data: {garbage\r\n\r\n".into()),
        ],
        abort: false,
    }]);
    let body = json!({"model": "google/gemini-test", "stream": true, "messages": [{"role": "user", "content": "hi"}]});
    let (_, _, raw) = gw
        .post_raw("/v1/chat/completions", body.to_string().into_bytes(), &[])
        .await;
    let last: Value = serde_json::from_str(&sse(&raw).last().unwrap().1).unwrap();
    assert!(
        last["error"]["message"]
            .as_str()
            .unwrap()
            .contains("cannot read"),
        "{raw}"
    );

    // An error before anything was produced is a plain HTTP error.
    gw.mocks.anthropic.script([Reply::Sse {
        pieces: vec![(Duration::ZERO, overloaded.to_owned())],
        abort: false,
    }]);
    let body = json!({"model": "anthropic/claude-test", "stream": true, "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]});
    let (s, _, v) = gw.post("/v1/messages", &body).await;
    assert_eq!(s, 529, "{v}");
    assert_eq!(anthropic_error(&v).0, "overloaded_error");
    gw.shutdown().await;
}
