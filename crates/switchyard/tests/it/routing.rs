//! Routes, failover, retries, timeouts, circuit breakers and
//! jurisdiction-pinned failover, against fault-injecting mock upstreams.
//! Upstream call counts are exact.

use std::time::Duration;

use rand::{Rng, SeedableRng};
use serde_json::{Value, json};

use crate::harness::*;
use crate::mock::{Mock, Reply};

const ROUTES: &str = r#"
[[routes]]
name = "smart"
strategy = "fallback"
targets = ["anthropic/claude-test", "openai/gpt-test"]

[[routes]]
name = "eu-first"
strategy = "fallback"
targets = ["openai/gpt-test", "google/gemini-test", "compat/local-test"]

[[routes]]
name = "split"
strategy = "weighted"
targets = [{ model = "openai/gpt-test", weight = 3 }, { model = "compat/local-test", weight = 1 }]

[[routes]]
name = "thrifty"
strategy = "cheapest"
targets = ["openai/pricey", "compat/unpriced", "anthropic/cheap"]

[[routes]]
name = "fast"
strategy = "least-latency"
targets = ["openai/slow", "compat/quick"]

[[routes]]
name = "capped"
strategy = "fallback"
max_attempts = 1
targets = ["anthropic/claude-test", "openai/gpt-test"]

[pricing."openai/pricey"]
input_per_mtok_usd = 10.0
output_per_mtok_usd = 30.0

[pricing."anthropic/cheap"]
input_per_mtok_usd = 0.1
output_per_mtok_usd = 0.2

"#;

/// Breakers that trip fast, for the tests about them.
const QUICK_BREAKERS: &str = r#"
[circuit]
failures = 3
cooldown_ms = 400
max_cooldown_ms = 2000
"#;

/// Breakers that never trip in a short test.
const NO_BREAKERS: &str = "\n[circuit]\nfailures = 100000\n";

fn chat(model: &str) -> Value {
    json!({"model": model, "messages": [{"role": "user", "content": "Say hi"}], "max_tokens": 16})
}

fn err(status: u16) -> Reply {
    Reply::Json(
        status,
        json!({"error": {"message": format!("mock {status}"), "type": "server_error"}}),
        vec![],
    )
}

fn counts(gw: &Gw) -> [usize; 4] {
    [
        gw.mocks.openai.count(),
        gw.mocks.anthropic.count(),
        gw.mocks.gemini.count(),
        gw.mocks.compat.count(),
    ]
}

#[tokio::test]
async fn retryable_failures_fail_over_and_others_are_returned() {
    let gw = Gw::start(&format!("{ROUTES}{NO_BREAKERS}")).await;
    let overloaded = Reply::Json(
        529,
        json!({"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}),
        vec![],
    );
    let abort_before_bytes = Reply::Sse {
        pieces: vec![],
        abort: true,
    };
    let garbled = Reply::Json(200, json!("not a message"), vec![]);
    let cases: Vec<(&str, Reply, bool)> = vec![
        ("500", err(500), true),
        ("502", err(502), true),
        ("503", err(503), true),
        ("408", err(408), true),
        ("429", err(429), true),
        ("529 overloaded", overloaded, true),
        ("reset before any byte", abort_before_bytes, true),
        ("garbled body", garbled, true),
        ("400", err(400), false),
        ("401", err(401), false),
        ("403", err(403), false),
        ("404", err(404), false),
        ("422", err(422), false),
    ];
    for (what, reply, fails_over) in cases {
        let before = counts(&gw);
        gw.mocks.anthropic.script([reply]);
        let (s, h, v) = gw.post("/v1/chat/completions", &chat("smart")).await;
        let after = counts(&gw);
        assert_eq!(after[1] - before[1], 1, "{what}: primary called once");
        if fails_over {
            assert_eq!(s, 200, "{what}: {v}");
            assert_eq!(after[0] - before[0], 1, "{what}: secondary called once");
            assert_eq!(h["x-switchyard-provider"], "openai", "{what}");
            assert_eq!(h["x-switchyard-model"], "gpt-test", "{what}");
            assert_eq!(h["x-switchyard-attempts"], "2", "{what}");
            assert_eq!(
                v["choices"][0]["message"]["content"],
                "Hello from openai. You said: Say hi"
            );
        } else {
            assert_eq!(
                s,
                what.parse::<u16>().unwrap(),
                "{what}: returned as is: {v}"
            );
            assert_eq!(after[0], before[0], "{what}: never retried");
        }
    }
    gw.shutdown().await;
}

#[tokio::test]
async fn connect_refused_and_timeouts_fail_over() {
    let mocks = start_mocks().await;
    let extra = format!(
        r#"
[[providers]]
name = "down"
kind = "openai-compatible"
base_url = "http://127.0.0.1:9/v1"
jurisdiction = "us"

[[providers]]
name = "slow"
kind = "openai-compatible"
base_url = "{}"
jurisdiction = "us"
timeout_ms = 200
first_chunk_timeout_ms = 200

[[routes]]
name = "r1"
targets = ["down/m", "openai/gpt-test"]

[[routes]]
name = "r2"
targets = ["slow/m", "openai/gpt-test"]
"#,
        mocks.compat.base_url()
    );
    let gw = Gw::start_with(mocks, &extra).await;
    let (s, h, _) = gw.post("/v1/chat/completions", &chat("r1")).await;
    assert_eq!(s, 200);
    assert_eq!(h["x-switchyard-attempts"], "2");

    // No response headers in time.
    gw.mocks.compat.script([Reply::Hang]);
    let t = std::time::Instant::now();
    let (s, h, _) = gw.post("/v1/chat/completions", &chat("r2")).await;
    assert_eq!(s, 200);
    assert_eq!(h["x-switchyard-provider"], "openai");
    assert!(t.elapsed() < Duration::from_secs(2));

    // Headers, then no first event in time (a stream).
    gw.mocks.compat.script([Reply::Sse {
        pieces: vec![(Duration::from_secs(5), crate::mock::openai_chunk("late"))],
        abort: false,
    }]);
    let mut body = chat("r2");
    body["stream"] = json!(true);
    let (s, h, raw) = gw
        .post_raw("/v1/chat/completions", body.to_string().into_bytes(), &[])
        .await;
    assert_eq!(s, 200);
    assert_eq!(h["x-switchyard-provider"], "openai", "{raw}");
    assert!(!raw.contains("late"));
    gw.shutdown().await;
}

#[tokio::test]
async fn streams_fail_over_before_the_first_byte_and_never_after() {
    let gw = Gw::start(&format!("{ROUTES}{NO_BREAKERS}")).await;
    let mut body = chat("smart");
    body["stream"] = json!(true);

    // Before the first byte: an error event straight after the 200.
    gw.mocks.anthropic.script([Reply::Sse {
        pieces: vec![(
            Duration::ZERO,
            "event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\",\"message\":\"Overloaded\"}}\n\n".into(),
        )],
        abort: false,
    }]);
    let before = counts(&gw);
    let (s, h, raw) = gw
        .post_raw("/v1/chat/completions", body.to_string().into_bytes(), &[])
        .await;
    assert_eq!(s, 200);
    assert_eq!(h["x-switchyard-provider"], "openai");
    assert!(
        raw.contains("Hello") && raw.trim_end().ends_with("[DONE]"),
        "{raw}"
    );
    let after = counts(&gw);
    assert_eq!((after[1] - before[1], after[0] - before[0]), (1, 1));

    // Still before the answer: `message_start` and a ping, then the error
    // (how an overloaded Anthropic often answers). Nothing has reached the
    // caller yet, in either dialect, so the route fails over.
    let started_then_overloaded = "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_1\",\"type\":\"message\",\"role\":\"assistant\",\"model\":\"c\",\"content\":[],\"stop_reason\":null,\"usage\":{\"input_tokens\":3,\"output_tokens\":1}}}\n\nevent: ping\ndata: {\"type\":\"ping\"}\n\nevent: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\",\"message\":\"Overloaded\"}}\n\n";
    for path in ["/v1/chat/completions", "/v1/messages"] {
        gw.mocks.anthropic.script([Reply::Sse {
            pieces: vec![(Duration::ZERO, started_then_overloaded.into())],
            abort: false,
        }]);
        let before = counts(&gw);
        let (s, h, raw) = gw.post_raw(path, body.to_string().into_bytes(), &[]).await;
        assert_eq!(
            (s, h["x-switchyard-provider"].to_str().unwrap()),
            (200, "openai"),
            "{path}: {raw}"
        );
        assert!(
            !raw.contains("msg_1"),
            "{path}: nothing of the failed attempt: {raw}"
        );
        assert!(!raw.contains("overloaded"), "{path}: {raw}");
        let after = counts(&gw);
        assert_eq!(
            (after[1] - before[1], after[0] - before[0]),
            (1, 1),
            "{path}"
        );
    }

    // After the first byte: a terminal error, and no second provider.
    let start = "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_1\",\"type\":\"message\",\"role\":\"assistant\",\"model\":\"c\",\"content\":[],\"stop_reason\":null,\"usage\":{\"input_tokens\":3,\"output_tokens\":1}}}\n\nevent: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n\nevent: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"Partial\"}}\n\n";
    gw.mocks.anthropic.script([Reply::Sse {
        pieces: vec![(Duration::ZERO, start.into())],
        abort: true,
    }]);
    let before = counts(&gw);
    let (s, h, raw) = gw
        .post_raw("/v1/chat/completions", body.to_string().into_bytes(), &[])
        .await;
    assert_eq!(s, 200);
    assert_eq!(h["x-switchyard-provider"], "anthropic");
    assert!(raw.contains("Partial"), "{raw}");
    let last: Value = serde_json::from_str(&sse(&raw).last().unwrap().1).unwrap();
    assert!(
        last.get("error").is_some(),
        "terminal error, not a clean end: {raw}"
    );
    assert!(!raw.contains("Hello from openai"), "never both: {raw}");
    let after = counts(&gw);
    assert_eq!((after[1] - before[1], after[0] - before[0]), (1, 0));
    gw.shutdown().await;
}

#[tokio::test]
async fn retry_after_is_honoured_and_attempts_are_capped() {
    let gw = Gw::start(ROUTES).await;
    gw.mocks.anthropic.script([Reply::Json(
        429,
        json!({"type": "error", "error": {"type": "rate_limit_error", "message": "slow down"}}),
        vec![("retry-after", "1".into())],
    )]);
    let (s, _, _) = gw.post("/v1/chat/completions", &chat("smart")).await;
    assert_eq!(s, 200);
    // Within the next second the provider is not asked again.
    let before = counts(&gw);
    for _ in 0..3 {
        let (s, h, _) = gw.post("/v1/chat/completions", &chat("smart")).await;
        assert_eq!(s, 200);
        assert_eq!(h["x-switchyard-attempts"], "1");
        assert_eq!(h["x-switchyard-provider"], "openai");
    }
    assert_eq!(counts(&gw)[1], before[1], "anthropic rested");
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let (_, h, _) = gw.post("/v1/chat/completions", &chat("smart")).await;
    assert_eq!(
        h["x-switchyard-provider"], "anthropic",
        "back after Retry-After"
    );

    // Caps: the header, and the route's max_attempts.
    gw.mocks.anthropic.script([err(503)]);
    let before = counts(&gw);
    let (s, _, _) = gw
        .post_with(
            "/v1/chat/completions",
            &chat("smart"),
            &[("x-switchyard-max-attempts", "1")],
        )
        .await;
    assert_eq!(s, 503);
    assert_eq!(counts(&gw)[0], before[0]);
    gw.mocks.anthropic.script([err(503)]);
    let (s, _, _) = gw.post("/v1/chat/completions", &chat("capped")).await;
    assert_eq!(s, 503);
    assert_eq!(counts(&gw)[0], before[0]);
    let (s, _, v) = gw
        .post_with(
            "/v1/chat/completions",
            &chat("smart"),
            &[("x-switchyard-max-attempts", "0")],
        )
        .await;
    assert_eq!(s, 400, "{v}");

    // A deadline for the whole call, all attempts together.
    gw.mocks.anthropic.script([Reply::Hang]);
    gw.mocks.openai.script([Reply::Hang]);
    let t = std::time::Instant::now();
    let (s, _, v) = gw
        .post_with(
            "/v1/messages",
            &chat("smart"),
            &[("x-switchyard-request-timeout", "300")],
        )
        .await;
    assert_eq!(s, 504, "{v}");
    assert_eq!(v["error"]["type"], "timeout_error");
    assert!(t.elapsed() < Duration::from_millis(1500));
    gw.shutdown().await;
}

#[tokio::test]
async fn circuits_open_half_open_and_close() {
    let gw = Gw::start(&format!("{ROUTES}{QUICK_BREAKERS}")).await;
    // Three failures in a row open anthropic's circuit.
    gw.mocks.anthropic.script([err(500), err(500), err(500)]);
    for _ in 0..3 {
        let (s, _, _) = gw.post("/v1/chat/completions", &chat("smart")).await;
        assert_eq!(s, 200);
    }
    let before = counts(&gw);
    for _ in 0..5 {
        let (_, h, _) = gw.post("/v1/chat/completions", &chat("smart")).await;
        assert_eq!(
            h["x-switchyard-attempts"], "1",
            "open: straight to the secondary"
        );
    }
    assert_eq!(counts(&gw)[1], before[1]);
    let v: Value = serde_json::from_str(
        &gw.http
            .get(format!("{}/admin/v1/providers", gw.admin))
            .bearer_auth(&gw.admin_token)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap(),
    )
    .unwrap();
    let anth = v["providers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "anthropic")
        .unwrap();
    // Upstream errors open the model's circuit; the provider's own (which
    // connection failures open) stays closed for its other models.
    assert_eq!(anth["targets"][0]["key"], "anthropic/claude-test");
    assert_eq!(anth["targets"][0]["circuit"], "open", "{v}");
    assert_eq!(anth["health"]["circuit"], "closed", "{v}");
    assert_eq!(anth["health"]["last_error_class"], "server");
    // After the cooldown one probe goes through; it succeeds and closes it.
    tokio::time::sleep(Duration::from_millis(450)).await;
    let (_, h, _) = gw.post("/v1/chat/completions", &chat("smart")).await;
    assert_eq!(h["x-switchyard-provider"], "anthropic");
    let (_, h, _) = gw.post("/v1/chat/completions", &chat("smart")).await;
    assert_eq!(h["x-switchyard-provider"], "anthropic", "closed again");
    gw.shutdown().await;
}

/// With every target down, attempts per request fall below 1.5 once the
/// breakers have tripped: no retry storm.
#[tokio::test]
async fn a_full_outage_does_not_become_a_retry_storm() {
    let gw = Gw::start(&format!("{ROUTES}{QUICK_BREAKERS}")).await;
    let down: Vec<Reply> = (0..400).map(|_| err(503)).collect();
    gw.mocks.anthropic.script(down.clone());
    gw.mocks.openai.script(down);
    let mut per_request = Vec::new();
    for _ in 0..60 {
        let before = counts(&gw);
        let (s, _, _) = gw.post("/v1/chat/completions", &chat("smart")).await;
        assert_eq!(s, 503);
        let after = counts(&gw);
        per_request.push((after[0] + after[1]) - (before[0] + before[1]));
    }
    let steady: Vec<usize> = per_request[10..].to_vec();
    let avg = steady.iter().sum::<usize>() as f64 / steady.len() as f64;
    println!("full outage: attempts per request {per_request:?}; steady-state average {avg:.2}");
    assert!(avg < 1.5, "{avg}");
    assert!(
        steady.iter().all(|n| *n >= 1),
        "the last target stays tried"
    );
    gw.shutdown().await;
}

#[tokio::test]
async fn jurisdiction_is_a_hard_rule_on_every_path() {
    let gw = Gw::start(ROUTES).await;
    // eu-first: openai (us), google (eu), compat (eu).
    let before = counts(&gw);
    let (s, h, _) = gw
        .post_with(
            "/v1/chat/completions",
            &chat("eu-first"),
            &[("x-switchyard-jurisdiction", "eu")],
        )
        .await;
    assert_eq!(s, 200);
    assert_eq!(h["x-switchyard-provider"], "google");
    assert_eq!(
        counts(&gw)[0],
        before[0],
        "the us provider is never contacted"
    );

    // Failover stays inside the allowed set.
    gw.mocks.gemini.script([err(500)]);
    let (s, h, _) = gw
        .post_with(
            "/v1/messages",
            &chat("eu-first"),
            &[("x-switchyard-jurisdiction", "EU")],
        )
        .await;
    assert_eq!(s, 200);
    assert_eq!(h["x-switchyard-provider"], "compat");
    assert_eq!(counts(&gw)[0], before[0]);

    // Nothing compliant: fail closed with the evidence.
    let (s, _, v) = gw
        .post_with(
            "/v1/chat/completions",
            &chat("smart"),
            &[("x-switchyard-jurisdiction", "eu")],
        )
        .await;
    assert_eq!(s, 403);
    assert_eq!(v["error"]["code"], "no_compliant_provider");
    let m = v["error"]["message"].as_str().unwrap();
    assert!(
        m.contains("[eu]")
            && m.contains("anthropic/claude-test (us)")
            && m.contains("openai/gpt-test (us)"),
        "{m}"
    );
    let (s, _, v) = gw
        .post_with(
            "/v1/messages",
            &chat("openai/gpt-test"),
            &[("x-switchyard-jurisdiction", "eu")],
        )
        .await;
    assert_eq!(s, 403);
    assert_eq!(v["error"]["type"], "permission_error");
    // Passthrough too.
    let r = gw
        .http
        .get(gw.url("/passthrough/openai/models"))
        .header("x-switchyard-jurisdiction", "eu")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    assert_eq!(counts(&gw)[0], before[0]);
    let (s, _, _) = gw
        .post_with(
            "/v1/chat/completions",
            &chat("smart"),
            &[("x-switchyard-jurisdiction", " , ")],
        )
        .await;
    assert_eq!(s, 400);
    gw.shutdown().await;
}

#[tokio::test]
async fn strategies_weighted_cheapest_least_latency() {
    let gw = Gw::start(ROUTES).await;
    let before = counts(&gw);
    for _ in 0..200 {
        let (s, _, _) = gw.post("/v1/chat/completions", &chat("split")).await;
        assert_eq!(s, 200);
    }
    let after = counts(&gw);
    let (a, b) = (after[0] - before[0], after[3] - before[3]);
    assert_eq!(a + b, 200);
    let ratio = a as f64 / b as f64;
    println!("weighted 3:1 over 200 requests: {a}:{b}");
    assert!((1.8..5.0).contains(&ratio), "{a}:{b}");

    let (_, h, _) = gw.post("/v1/chat/completions", &chat("thrifty")).await;
    assert_eq!(h["x-switchyard-provider"], "anthropic", "cheapest first");
    gw.mocks.anthropic.script([err(500)]);
    let (_, h, _) = gw.post("/v1/chat/completions", &chat("thrifty")).await;
    assert_eq!(
        h["x-switchyard-provider"], "openai",
        "then the next price; unpriced last"
    );

    // least-latency: openai is slow, compat quick.
    let slow: Vec<Reply> = (0..50)
        .map(|_| Reply::Delay(Duration::from_millis(60), Box::new(Reply::Default)))
        .collect();
    gw.mocks.openai.script(slow);
    let before = counts(&gw);
    for _ in 0..30 {
        gw.post("/v1/chat/completions", &chat("fast")).await;
    }
    let after = counts(&gw);
    let (slow_n, quick_n) = (after[0] - before[0], after[3] - before[3]);
    println!("least-latency over 30 requests: slow {slow_n}, quick {quick_n}");
    assert!(quick_n >= 25, "slow {slow_n} quick {quick_n}");

    let v: Value = serde_json::from_str(
        &gw.http
            .get(gw.url("/v1/models"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap(),
    )
    .unwrap();
    let ids: Vec<&str> = v["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap())
        .collect();
    for r in ["smart", "eu-first", "split", "thrifty", "fast", "capped"] {
        assert!(ids.contains(&r), "{r} listed");
    }
    gw.shutdown().await;
}

/// Random routes, fault schedules and jurisdiction headers: no request ever
/// reaches a provider outside the allowed set, and attempts never exceed
/// the cap.
#[tokio::test]
async fn random_fault_schedules_never_break_jurisdiction_or_the_cap() {
    let gw = Gw::start(
        r#"
[[routes]]
name = "all"
targets = ["openai/gpt-test", "anthropic/claude-test", "google/gemini-test", "compat/local-test"]
[[routes]]
name = "all-weighted"
strategy = "weighted"
targets = [{ model = "openai/gpt-test", weight = 2 }, { model = "anthropic/claude-test", weight = 1 }, { model = "google/gemini-test", weight = 1 }, { model = "compat/local-test", weight = 3 }]
[[routes]]
name = "all-fast"
strategy = "least-latency"
targets = ["google/gemini-test", "compat/local-test", "openai/gpt-test", "anthropic/claude-test"]
[circuit]
failures = 2
cooldown_ms = 50
"#,
    )
    .await;
    let mocks: [(&Mock, &str); 4] = [
        (&gw.mocks.openai, "us"),
        (&gw.mocks.anthropic, "us"),
        (&gw.mocks.gemini, "eu"),
        (&gw.mocks.compat, "eu"),
    ];
    let mut rng = rand::rngs::StdRng::seed_from_u64(0x5717c4);
    let schedules = 300;
    let mut violations = 0;
    for i in 0..schedules {
        let route = ["all", "all-weighted", "all-fast"][rng.gen_range(0..3)];
        let allowed = ["eu", "us", "eu,us", "cn"][rng.gen_range(0..4)];
        let cap = rng.gen_range(1..=5u32);
        for (m, _) in &mocks {
            let faults: Vec<Reply> = (0..rng.gen_range(0..3))
                .map(|_| match rng.gen_range(0..5) {
                    0 => err(500),
                    1 => err(503),
                    2 => Reply::Json(
                        429,
                        json!({"error": {"message": "x"}}),
                        vec![("retry-after", "0".into())],
                    ),
                    3 => Reply::Sse {
                        pieces: vec![],
                        abort: true,
                    },
                    _ => err(400),
                })
                .collect();
            m.script(faults);
        }
        let before: Vec<usize> = mocks.iter().map(|(m, _)| m.count()).collect();
        let stream = rng.gen_bool(0.3);
        let mut body = chat(route);
        body["stream"] = json!(stream);
        let path = if rng.gen_bool(0.5) {
            "/v1/chat/completions"
        } else {
            "/v1/messages"
        };
        let (status, _, _) = gw
            .post_raw(
                path,
                body.to_string().into_bytes(),
                &[
                    ("x-switchyard-jurisdiction", allowed),
                    ("x-switchyard-max-attempts", &cap.to_string()),
                ],
            )
            .await;
        let mut total = 0;
        for ((m, j), b) in mocks.iter().zip(&before) {
            let n = m.count() - b;
            total += n;
            if n > 0 && !allowed.split(',').any(|a| a == *j) {
                violations += 1;
                eprintln!("schedule {i}: {j} provider contacted under {allowed}");
            }
        }
        assert!(
            total as u32 <= cap,
            "schedule {i}: {total} attempts > cap {cap}"
        );
        if allowed == "cn" {
            assert_eq!((status, total), (403, 0));
        }
        // Clear leftover faults so the next schedule starts clean.
        for (m, _) in &mocks {
            m.clear_script();
        }
    }
    println!("jurisdiction property: {schedules} random fault schedules, {violations} violations");
    assert_eq!(violations, 0);
    gw.shutdown().await;
}

/// A provider that asked for a pause is not asked again before it, even as
/// the only target: the caller gets the wait, in its own dialect.
#[tokio::test]
async fn retry_after_holds_for_a_single_target_too() {
    let gw = Gw::start("").await;
    gw.mocks.anthropic.script([Reply::Json(
        429,
        json!({"type": "error", "error": {"type": "rate_limit_error", "message": "slow down"}}),
        vec![("retry-after", "2".into())],
    )]);
    let (s, _, _) = gw
        .post("/v1/chat/completions", &chat("anthropic/claude-test"))
        .await;
    assert_eq!(s, 429);
    let before = gw.mocks.anthropic.count();
    let (s, h, v) = gw
        .post("/v1/messages", &chat("anthropic/claude-test"))
        .await;
    assert_eq!(s, 429, "{v}");
    assert_eq!(v["type"], "error", "the caller's dialect: {v}");
    let wait: u64 = h["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=2).contains(&wait), "{wait}");
    assert_eq!(gw.mocks.anthropic.count(), before, "not asked again");
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let (s, _, _) = gw
        .post("/v1/chat/completions", &chat("anthropic/claude-test"))
        .await;
    assert_eq!(s, 200, "asked again after the pause");
    gw.shutdown().await;
}

/// Issue 18, fault 2: a 429 with `Retry-After` from one model used to
/// pause every model of the provider; providers rate-limit per model. Only
/// an exhausted quota (the account's) pauses them all.
#[tokio::test]
async fn retry_after_pauses_one_model_and_a_quota_the_whole_provider() {
    let gw = Gw::start("").await;
    gw.mocks.anthropic.script([Reply::Json(
        429,
        json!({"type": "error", "error": {"type": "rate_limit_error", "message": "slow down"}}),
        vec![("retry-after", "5".into())],
    )]);
    let (s, _, _) = gw
        .post("/v1/chat/completions", &chat("anthropic/claude-test"))
        .await;
    assert_eq!(s, 429);
    let before = gw.mocks.anthropic.count();
    let (s, _, v) = gw
        .post("/v1/chat/completions", &chat("anthropic/claude-other"))
        .await;
    assert_eq!(s, 200, "another model of the provider is not paused: {v}");
    assert_eq!(gw.mocks.anthropic.count(), before + 1);
    let (s, _, _) = gw
        .post("/v1/chat/completions", &chat("anthropic/claude-test"))
        .await;
    assert_eq!(s, 429, "the paused model waits");
    assert_eq!(gw.mocks.anthropic.count(), before + 1);

    // Out of credit: every model of the provider waits.
    gw.mocks.openai.script([Reply::Json(
        429,
        json!({"error": {"message": "You exceeded your current quota", "type": "insufficient_quota", "code": "insufficient_quota"}}),
        vec![("retry-after", "5".into())],
    )]);
    let (s, _, _) = gw
        .post("/v1/chat/completions", &chat("openai/gpt-test"))
        .await;
    assert_eq!(s, 429);
    let before = gw.mocks.openai.count();
    let (s, _, _) = gw
        .post("/v1/chat/completions", &chat("openai/gpt-other"))
        .await;
    assert_eq!(s, 429, "an exhausted quota pauses the whole provider");
    assert_eq!(gw.mocks.openai.count(), before);
    gw.shutdown().await;
}
