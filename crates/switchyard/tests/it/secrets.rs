//! Canary provider keys never leave the gateway: not in a response, a header
//! or a log line, at trace level, on success and failure paths alike.

use std::time::Duration;

use serde_json::json;

use crate::harness::*;
use crate::mock::Reply;

#[tokio::test]
async fn canary_keys_appear_in_no_response_header_or_log() {
    let gw = Gw::start("").await;
    let user = json!([{"role": "user", "content": "hi"}]);
    // Upstream errors that quote the key back, on every kind and path.
    let quoting = |status: u16| {
        Reply::Json(
            status,
            json!({"error": {"message": format!("bad key {OPENAI_KEY} {ANTHROPIC_KEY} {GEMINI_KEY} {COMPAT_KEY}"), "type": "x"}}),
            vec![],
        )
    };
    for m in [
        &gw.mocks.openai,
        &gw.mocks.anthropic,
        &gw.mocks.gemini,
        &gw.mocks.compat,
    ] {
        m.script([quoting(401), quoting(500), quoting(429)]);
    }
    for model in ["openai/a", "anthropic/b", "google/c", "compat/d"] {
        for path in ["/v1/chat/completions", "/v1/messages"] {
            for stream in [false, true] {
                let body =
                    json!({"model": model, "messages": user, "max_tokens": 5, "stream": stream});
                // post_raw asserts no canary in body or headers.
                gw.post_raw(path, body.to_string().into_bytes(), &[]).await;
            }
        }
    }
    // A mid-stream failure and a passthrough with an error.
    gw.mocks.anthropic.script([Reply::Sse {
        pieces: vec![(
            Duration::ZERO,
            format!("event: error\ndata: {}\n\n", json!({"type": "error", "error": {"type": "api_error", "message": format!("leak {ANTHROPIC_KEY}")}})),
        )],
        abort: false,
    }]);
    gw.post_raw(
        "/v1/chat/completions",
        json!({"model": "anthropic/x", "messages": user, "stream": true})
            .to_string()
            .into_bytes(),
        &[],
    )
    .await;
    let r = gw
        .http
        .get(gw.url("/passthrough/google/models"))
        .send()
        .await
        .unwrap();
    let text = format!("{:?} {}", r.headers().clone(), r.text().await.unwrap());
    assert_no_canary(&text);
    let r = gw
        .http
        .get(format!("{}/admin/v1/config", gw.admin))
        .bearer_auth(&gw.admin_token)
        .send()
        .await
        .unwrap();
    assert_no_canary(&r.text().await.unwrap());
    gw.shutdown().await;
    let logs = logs();
    assert!(
        logs.contains("Request finished") || logs.contains("Request failed"),
        "logs were captured"
    );
    assert_no_canary(&logs);
}
