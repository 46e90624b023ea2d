//! The Responses API and the Gemini API under the same policy as the other
//! dialects: a key's model globs, rate limits and budget; jurisdictions;
//! the cache; records with tags, cost and their dialect. Each refusal in
//! the caller's own error shape.

use serde_json::{Value, json};

use crate::harness::*;

/// (path, body, how its errors look) for a dialect calling `model`.
fn call(dialect: &str, model: &str, text: &str) -> (String, Value) {
    match dialect {
        "responses" => (
            "/v1/responses".into(),
            json!({"model": model, "input": text, "max_output_tokens": 64}),
        ),
        _ => (
            format!("/v1beta/models/{model}:generateContent"),
            json!({"contents": [{"role": "user", "parts": [{"text": text}]}], "generationConfig": {"maxOutputTokens": 64}}),
        ),
    }
}

/// The error's code (Responses: OpenAI's shape) or status (Gemini's).
fn error_of(dialect: &str, v: &Value) -> String {
    match dialect {
        "responses" => v["error"]["code"].as_str().unwrap_or("").to_owned(),
        _ => v["error"]["status"].as_str().unwrap_or("").to_owned(),
    }
}

#[tokio::test]
async fn keys_limits_budgets_jurisdictions_cache_and_records_cover_the_new_dialects() {
    let gw = Gw::start("[auth]\nrequire_keys = true\n[pricing.\"anthropic/claude-test\"]\ninput_per_mtok_usd = 1000000.0\noutput_per_mtok_usd = 1000000.0\n").await;
    for dialect in ["responses", "gemini"] {
        let (_, scoped) = gw
            .create_key(
                json!({"name": format!("{dialect}-scoped"), "models": ["anthropic/*"], "rpm": 2,
                               "metadata": {"team": dialect}}),
            )
            .await;
        let auth = |k: &str| {
            if dialect == "gemini" {
                ("x-goog-api-key", k.to_owned())
            } else {
                ("authorization", format!("Bearer {k}"))
            }
        };
        let (h, v) = auth(&scoped);
        let headers = [(h, v.as_str())];
        // The rpm counted below must fall in one minute's window.
        crate::harness::within_one_minute().await;
        // A model outside the key's globs.
        let (path, body) = call(dialect, "openai/gpt-test", "hi");
        let (s, _, e) = gw.post_with(&path, &body, &headers).await;
        assert_eq!(s, 403, "{dialect}: {e}");
        assert_eq!(
            error_of(dialect, &e),
            if dialect == "gemini" {
                "PERMISSION_DENIED"
            } else {
                "forbidden"
            },
            "{dialect}: {e}"
        );
        // Served, tagged, cached on the second call.
        let (path, body) = call(dialect, "anthropic/claude-test", "cache me");
        let mut with_cache = headers.to_vec();
        with_cache.push(("x-switchyard-cache-ttl", "60"));
        with_cache.push(("x-switchyard-metadata", r#"{"run":"policy"}"#));
        let (s, h1, v) = gw.post_with(&path, &body, &with_cache).await;
        assert_eq!(s, 200, "{dialect}: {v}");
        assert_eq!(h1["x-switchyard-cache"], "MISS", "{dialect}");
        let (s, h2, _) = gw.post_with(&path, &body, &with_cache).await;
        assert_eq!(s, 200, "{dialect}");
        assert_eq!(h2["x-switchyard-cache"], "HIT", "{dialect}");
        // rpm 2: the third call is refused, in the caller's shape.
        let (s, _, e) = gw.post_with(&path, &body, &headers).await;
        assert_eq!(s, 429, "{dialect}: {e}");
        assert_eq!(
            error_of(dialect, &e),
            if dialect == "gemini" {
                "RESOURCE_EXHAUSTED"
            } else {
                "rate_limit_exceeded"
            },
            "{dialect}: {e}"
        );
        // Records: the dialect, the tags, the cost.
        let id = h1["x-switchyard-request-id"].to_str().unwrap();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        let record = loop {
            let (s, r) = gw
                .admin_call("GET", &format!("/admin/v1/logs/{id}"), None)
                .await;
            // Complete: its begin and end may land in different batches.
            if s == 200 && r["state"] != "begun" {
                break r;
            }
            assert!(std::time::Instant::now() < deadline, "{dialect}: no record");
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        };
        assert_eq!(record["dialect"], dialect, "{record}");
        assert_eq!(record["metadata"]["team"], dialect, "{record}");
        assert_eq!(record["metadata"]["run"], "policy", "{record}");
        assert!(record["cost_usd"].as_f64().unwrap() > 0.0, "{record}");
        // A budget too small for one call: 402 in the caller's shape.
        let (_, poor) = gw
            .create_key(json!({"name": format!("{dialect}-poor"), "budget_usd": 0.000001, "budget_period": "day"}))
            .await;
        let (h, v) = auth(&poor);
        let (s, _, e) = gw.post_with(&path, &body, &[(h, v.as_str())]).await;
        assert_eq!(s, 402, "{dialect}: {e}");
        if dialect == "responses" {
            assert_eq!(e["error"]["code"], "budget_exceeded");
        } else {
            assert!(
                e["error"]["message"].as_str().unwrap().contains("budget"),
                "{e}"
            );
        }
        // Jurisdiction: only EU providers; Anthropic is tagged us.
        let (_, any) = gw
            .create_key(json!({"name": format!("{dialect}-eu")}))
            .await;
        let (h, v) = auth(&any);
        let (s, _, e) = gw
            .post_with(
                &path,
                &body,
                &[(h, v.as_str()), ("x-switchyard-jurisdiction", "eu")],
            )
            .await;
        assert_eq!(s, 403, "{dialect}: {e}");
        if dialect == "responses" {
            assert_eq!(e["error"]["code"], "no_compliant_provider");
        }
        let (path, body) = call(dialect, "google/gemini-test", "eu please");
        let (s, h, _) = gw
            .post_with(
                &path,
                &body,
                &[(h, v.as_str()), ("x-switchyard-jurisdiction", "eu")],
            )
            .await;
        assert_eq!(s, 200, "{dialect}");
        assert_eq!(h["x-switchyard-provider"], "google");
    }
    gw.shutdown().await;
}
