//! Keys, scopes, rate limits and hard budgets: lifecycle through the admin
//! API and the CLI, deny-by-default auth, exact limits under concurrency on
//! one process and on two sharing Redis and Postgres.

use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::binary::BIN;
use crate::harness::*;
use crate::mock::Gate;

pub const KEYED: &str = r#"
[auth]
require_keys = true

[[routes]]
name = "eu-first"
targets = ["openai/gpt-test", "google/gemini-test"]

[pricing."openai/gpt-test"]
input_per_mtok_usd = 1000.0
output_per_mtok_usd = 1000.0
"#;

fn chat(model: &str) -> Value {
    json!({"model": model, "messages": [{"role": "user", "content": "Say hi"}], "max_tokens": 10})
}

async fn call(gw: &Gw, key: &str, body: &Value) -> (u16, http::HeaderMap, Value) {
    gw.post_with(
        "/v1/chat/completions",
        body,
        &[("authorization", &format!("Bearer {key}"))],
    )
    .await
}

#[tokio::test]
async fn key_lifecycle_through_the_admin_api() {
    let gw = Gw::start(KEYED).await;
    let (id, secret) = gw
        .create_key(json!({"name": "search-team", "models": ["openai/*", "eu-first"], "rpm": 100, "metadata": {"team": "search"}}))
        .await;
    assert!(
        secret.starts_with("sk-sy-") && secret.len() >= 6 + 43,
        "{secret}"
    );
    assert!(id.starts_with("key_"));

    // Listed and shown without the secret.
    let (s, list) = gw.admin_call("GET", "/admin/v1/keys", None).await;
    assert_eq!(s, 200);
    assert!(!list.to_string().contains(&secret[6..]), "{list}");
    assert_eq!(list["data"][0]["last4"], secret[secret.len() - 4..]);
    assert!(list["data"][0].get("hash").is_none());
    let (_, shown) = gw
        .admin_call("GET", &format!("/admin/v1/keys/{id}"), None)
        .await;
    assert_eq!(shown["name"], "search-team");
    assert_eq!(shown["rpm"], 100);

    // Usable with Bearer and with x-api-key, on both dialects.
    let (s, _, _) = call(&gw, &secret, &chat("openai/gpt-test")).await;
    assert_eq!(s, 200);
    let (s, _, _) = gw
        .post_with(
            "/v1/messages",
            &chat("eu-first"),
            &[("x-api-key", secret.as_str())],
        )
        .await;
    assert_eq!(s, 200);

    // Scopes: a model outside the globs is 403.
    let (s, _, v) = call(&gw, &secret, &chat("anthropic/claude-test")).await;
    assert_eq!(s, 403, "{v}");
    assert_eq!(v["error"]["type"], "permission_error");

    // Update, then revoke: refused at once.
    let (s, v) = gw
        .admin_call(
            "PATCH",
            &format!("/admin/v1/keys/{id}"),
            Some(json!({"rpm": null, "models": ["*"]})),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["rpm"], Value::Null);
    let (s, _, _) = call(&gw, &secret, &chat("anthropic/claude-test")).await;
    assert_eq!(s, 200, "the new globs apply");
    let (s, v) = gw
        .admin_call("DELETE", &format!("/admin/v1/keys/{id}"), None)
        .await;
    assert_eq!((s, v["revoked"].as_bool()), (200, Some(true)));
    let (s, _, _) = call(&gw, &secret, &chat("openai/gpt-test")).await;
    assert_eq!(s, 401);
    let (s, _) = gw
        .admin_call(
            "PATCH",
            &format!("/admin/v1/keys/{id}"),
            Some(json!({"rpm": 1})),
        )
        .await;
    assert_eq!(s, 409);
    let (s, _) = gw
        .admin_call("DELETE", "/admin/v1/keys/key_nope", None)
        .await;
    assert_eq!(s, 404);

    // Bad bodies name the field; privileged fields are refused.
    for (body, field) in [
        (json!({"name": "x", "rpm": -1}), "rpm"),
        (json!({"name": "x", "id": "key_mine"}), "id"),
        (json!({"name": "x", "key": "sk-sy-chosen"}), "key"),
        (json!({"name": "x", "created_at": 0}), "created_at"),
        (json!({"name": "x", "log": "everything"}), "log"),
        (json!({"name": "x", "metadata": {"a": [1]}}), "metadata.a"),
        (json!({"rpm": 5}), "name"),
    ] {
        let (s, v) = gw
            .admin_call("POST", "/admin/v1/keys", Some(body.clone()))
            .await;
        assert_eq!(s, 400, "{body}");
        assert_eq!(v["error"]["param"], field, "{body}: {v}");
    }
    let (s, _) = gw
        .admin_call("POST", "/admin/v1/keys", Some(json!("not an object")))
        .await;
    assert_eq!(s, 400);
    gw.shutdown().await;
}

/// Every invalid case gets the same generic 401, in the caller's dialect.
#[tokio::test]
async fn auth_is_one_generic_401_and_deny_by_default() {
    let gw = Gw::start(KEYED).await;
    let (id, secret) = gw.create_key(json!({"name": "k"})).await;
    let cases: Vec<Vec<(&str, String)>> = vec![
        vec![],
        vec![(
            "authorization",
            "Bearer sk-sy-wrongwrongwrongwrongwrongwrongwrongwrongwro".into(),
        )],
        vec![("authorization", format!("Bearer {}x", secret))],
        vec![("x-api-key", "nonsense".into())],
        vec![("authorization", format!("Basic {secret}"))],
        vec![("authorization", format!("Bearer {}", gw.admin_token))],
    ];
    let mut bodies = Vec::new();
    for headers in &cases {
        let h: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let (s, _, text) = gw
            .post_raw(
                "/v1/chat/completions",
                chat("openai/gpt-test").to_string().into_bytes(),
                &h,
            )
            .await;
        assert_eq!(s, 401, "{headers:?}");
        assert!(!text.contains("sk-sy"), "no echo: {text}");
        bodies.push(text);
        let (s, _, text) = gw
            .post_raw(
                "/v1/messages",
                chat("openai/gpt-test").to_string().into_bytes(),
                &h,
            )
            .await;
        assert_eq!(s, 401);
        assert!(
            text.contains("\"authentication_error\"") && text.starts_with("{\"type\":\"error\""),
            "{text}"
        );
    }
    assert!(
        bodies.windows(2).all(|w| w[0] == w[1]),
        "identical: {bodies:?}"
    );

    // Every protected data-plane route, every admin route.
    for (method, path) in switchyard::api::PROTECTED {
        let path = path
            .replace("{provider}", "openai")
            .replace("{*rest}", "models")
            .replace("{id}", "x");
        let m = if *method == "ANY" { "GET" } else { method };
        let r = gw
            .http
            .request(m.parse().unwrap(), gw.url(&path))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 401, "{method} {path} must need a key");
        let r = gw
            .http
            .request(m.parse().unwrap(), gw.url(&path))
            .bearer_auth(&gw.admin_token)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 401, "the admin token is not a data-plane key");
    }
    for (method, path) in switchyard::admin::ROUTES {
        let path = path.replace("{id}", &id);
        let r = gw
            .http
            .request(method.parse().unwrap(), gw.admin_url(&path))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 401, "{method} {path} must need the admin token");
        let r = gw
            .http
            .request(method.parse().unwrap(), gw.admin_url(&path))
            .bearer_auth(&secret)
            .send()
            .await
            .unwrap();
        assert_eq!(
            r.status(),
            401,
            "{method} {path}: agent keys never reach admin routes"
        );
    }
    let r = gw
        .http
        .get(gw.admin_url("/admin/v1/nothing-here"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401, "even unknown admin paths need the token");
    for path in switchyard::api::health::PUBLIC_PATHS {
        let r = gw.http.get(gw.url(path)).send().await.unwrap();
        assert_eq!(r.status(), 200, "{path} is public");
    }
    gw.shutdown().await;
}

/// `n` requests released together (within one minute's window), spread over
/// `gws`: (admitted, refused, each answer's headers).
pub async fn burst(gws: &[&Gw], secret: &str, n: usize) -> (usize, usize, Vec<http::HeaderMap>) {
    burst_through(gws, secret, n, None).await
}

/// A burst whose admitted calls wait at the OpenAI mocks until every one of
/// the `n` is decided: for limits that a settled call would make room in
/// (tokens, budgets).
pub async fn held_burst(
    gws: &[&Gw],
    secret: &str,
    n: usize,
) -> (usize, usize, Vec<http::HeaderMap>) {
    let gate = Gate::hold(gws.iter().map(|g| &g.mocks.openai), n);
    burst_through(gws, secret, n, Some(&gate)).await
}

async fn burst_through(
    gws: &[&Gw],
    secret: &str,
    n: usize,
    gate: Option<&Gate>,
) -> (usize, usize, Vec<http::HeaderMap>) {
    crate::harness::within_one_minute().await;
    let barrier = Arc::new(tokio::sync::Barrier::new(n));
    let answered = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for i in 0..n {
        let gw_url = gws[i % gws.len()].url("/v1/chat/completions");
        let http = gws[0].http.clone();
        let (barrier, answered) = (barrier.clone(), answered.clone());
        let auth = format!("Bearer {secret}");
        tasks.push(tokio::spawn(async move {
            barrier.wait().await;
            let r = http
                .post(gw_url)
                .header("authorization", auth)
                .header("content-type", "application/json")
                .body(chat("openai/gpt-test").to_string())
                .send()
                .await
                .unwrap();
            answered.fetch_add(1, Ordering::SeqCst);
            let h = r.headers().clone();
            (r.status().as_u16(), h)
        }));
    }
    if let Some(gate) = gate {
        gate.open_when_decided(n, &answered).await;
    }
    let mut ok = 0;
    let mut limited = 0;
    let mut headers = Vec::new();
    for t in tasks {
        let (s, h) = t.await.unwrap();
        match s {
            200 => ok += 1,
            429 | 402 => limited += 1,
            other => panic!("unexpected status {other}"),
        }
        headers.push(h);
    }
    (ok, limited, headers)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn rate_limits_are_exact_under_concurrency() {
    let gw = Gw::start(KEYED).await;
    let (_, secret) = gw.create_key(json!({"name": "r", "rpm": 5})).await;
    let (ok, limited, headers) = burst(&[&gw], &secret, 50).await;
    println!("rpm=5, 50 concurrent: {ok} admitted, {limited} refused");
    assert_eq!((ok, limited), (5, 45));
    let refused = headers
        .iter()
        .find(|h| h.contains_key("retry-after"))
        .unwrap();
    assert_eq!(refused["x-ratelimit-limit-requests"], "5");
    assert_eq!(refused["x-ratelimit-remaining-requests"], "0");
    assert!(
        refused["x-ratelimit-reset-requests"]
            .to_str()
            .unwrap()
            .ends_with('s')
    );
    assert!(
        headers
            .iter()
            .all(|h| h.contains_key("x-ratelimit-limit-requests")),
        "on every keyed response"
    );

    // Tokens: each call holds body/3 + 10 output tokens until it settles;
    // with answers held nothing settles during the burst.
    let hold = (chat("openai/gpt-test").to_string().len() as u64).div_ceil(3) + 10;
    let (_, secret) = gw
        .create_key(json!({"name": "t", "tpm": hold * 2 + hold / 2}))
        .await;
    let (ok, _, _) = held_burst(&[&gw], &secret, 20).await;
    println!("tpm={}, 20 concurrent: {ok} admitted", hold * 2 + hold / 2);
    assert_eq!(ok, 2, "two holds fit");
    gw.shutdown().await;
}

/// The mock reports 11 input and 7 output tokens; at $1000/Mtok each call
/// costs $0.018 and holds (body/3 + 10) tokens' worth. A budget of ten holds
/// admits at most ten, and settles below the budget.
pub async fn budget_case(gws: &[&Gw]) -> (usize, f64, f64) {
    let gw = gws[0];
    let body_tokens = (chat("openai/gpt-test").to_string().len() as f64 / 3.0).ceil();
    let hold = (body_tokens + 10.0) * 1000.0 / 1e6;
    let budget = hold * 10.0 + hold / 2.0;
    let (id, secret) = gw
        .create_key(json!({"name": "b", "budget_usd": budget, "budget_period": "day"}))
        .await;
    // Let every replica see the new key.
    tokio::time::sleep(Duration::from_millis(600)).await;
    // Answers held, so every hold is taken before any settles.
    let (ok, _, _) = held_burst(gws, &secret, 50).await;
    // Settlement runs after the responses.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (_, shown) = gw
        .admin_call("GET", &format!("/admin/v1/keys/{id}"), None)
        .await;
    let spent = shown["budget_spent_usd"].as_f64().unwrap();
    let held = shown["budget_held_usd"].as_f64().unwrap();
    assert!(held.abs() < 1e-9, "nothing left held: {held}");
    // Spend what is left, one call at a time; then the answer is 402
    // budget_exceeded, in each caller's dialect, and nothing goes upstream.
    let mut total = spent;
    while total + hold <= budget + 1e-12 {
        let (s, _, v) = call(gw, &secret, &chat("openai/gpt-test")).await;
        assert_eq!(s, 200, "{v}");
        total += 0.018;
    }
    assert!(total <= budget + 1e-9);
    let upstream = gw.mocks.openai.count();
    let (s, _, v) = gw
        .post_with(
            "/v1/messages",
            &chat("openai/gpt-test"),
            &[("x-api-key", secret.as_str())],
        )
        .await;
    assert_eq!(s, 402, "{v}");
    assert_eq!(v["type"], "error");
    assert_eq!(v["error"]["type"], "billing_error");
    let (s, _, v) = call(gw, &secret, &chat("openai/gpt-test")).await;
    assert_eq!(s, 402, "{v}");
    assert_eq!(v["error"]["code"], "budget_exceeded");
    assert_eq!(gw.mocks.openai.count(), upstream, "refused before any call");
    (ok, spent, budget)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn budgets_are_a_hard_cap_on_one_process() {
    let gw = Gw::start(KEYED).await;
    let (ok, spent, budget) = budget_case(&[&gw]).await;
    println!(
        "budget for 10 holds, 50 concurrent on one process: {ok} admitted, spent ${spent:.4} of ${budget:.4}, overspend ${:.4}",
        (spent - budget).max(0.0)
    );
    assert_eq!(ok, 10, "holds for exactly ten calls fit");
    assert!(spent <= budget + 1e-9);
    assert!(
        (spent - ok as f64 * 0.018).abs() < 1e-9,
        "settled at the actual cost: {spent}"
    );
    // Less than one hold left of ten and a half: near exhaustion, which
    // /metrics says as a count of keys (never their ids).
    let text = gw.metrics().await;
    for line in [
        "switchyard_budget_keys{state=\"ok\"} 0",
        "switchyard_budget_keys{state=\"near\"} 1",
        "switchyard_budget_keys{state=\"exhausted\"} 0",
        "switchyard_spool_max_bytes 268435456",
    ] {
        assert!(text.lines().any(|l| l == line), "{line}\n{text}");
    }
    let ratio: f64 = text
        .lines()
        .find_map(|l| l.strip_prefix("switchyard_budget_used_ratio_max "))
        .unwrap()
        .parse()
        .unwrap();
    assert!((0.9..1.0).contains(&ratio), "{ratio}");
    gw.shutdown().await;
}

/// A caller that hangs up mid-call leaves nothing unsettled: the call
/// finishes in its own task, is recorded, and its budget hold settles at
/// the real cost; with `continue_on_disconnect` off it stops, is recorded
/// as `client_gone` and its hold is released.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_caller_that_hangs_up_leaves_nothing_unsettled() {
    for keep_going in [true, false] {
        let gw = Gw::start(&format!(
            "{KEYED}\n[streams]\ncontinue_on_disconnect = {keep_going}\n"
        ))
        .await;
        let (id, secret) = gw
            .create_key(json!({"name": "h", "budget_usd": 10.0, "budget_period": "day"}))
            .await;
        gw.mocks.openai.script([crate::mock::Reply::Delay(
            Duration::from_millis(600),
            Box::new(crate::mock::Reply::Default),
        )]);
        let r = gw
            .http
            .post(gw.url("/v1/chat/completions"))
            .bearer_auth(&secret)
            .header("content-type", "application/json")
            .timeout(Duration::from_millis(150))
            .body(chat("openai/gpt-test").to_string())
            .send()
            .await;
        assert!(r.is_err(), "the client gave up first");
        tokio::time::sleep(Duration::from_millis(900)).await;
        let (_, listed) = gw
            .admin_call("GET", &format!("/admin/v1/logs?key={id}"), None)
            .await;
        let rid = listed["data"][0]["id"].as_str().unwrap().to_owned();
        let rec = crate::logs::record(&gw, &rid).await;
        let (_, shown) = gw
            .admin_call("GET", &format!("/admin/v1/keys/{id}"), None)
            .await;
        let held = shown["budget_held_usd"].as_f64().unwrap();
        let spent = shown["budget_spent_usd"].as_f64().unwrap();
        assert!(
            held.abs() < 1e-9,
            "{keep_going}: nothing left held: {shown}"
        );
        if keep_going {
            assert_eq!(rec["status"], 200, "{rec}");
            assert!(
                (spent - 0.018).abs() < 1e-9,
                "billed once at its cost: {spent}"
            );
        } else {
            assert_eq!(
                (rec["status"].as_u64(), rec["error_class"].as_str()),
                (Some(499), Some("client_gone")),
                "{rec}"
            );
            assert!(
                spent.abs() < 1e-9,
                "nothing answered, nothing billed: {spent}"
            );
        }
        gw.shutdown().await;
    }
}

/// A stream cut short before the upstream reported usage still counts
/// against the budget: at its whole hold, recorded as estimated, never as
/// free.
#[tokio::test]
async fn a_stream_cut_before_its_usage_is_not_free() {
    let gw = Gw::start(KEYED).await;
    let (id, secret) = gw
        .create_key(json!({"name": "cut", "budget_usd": 10.0, "budget_period": "day"}))
        .await;
    gw.mocks.openai.script([crate::mock::Reply::Sse {
        pieces: vec![
            (Duration::ZERO, crate::mock::openai_chunk("one ")),
            (Duration::from_millis(20), crate::mock::openai_chunk("two ")),
        ],
        abort: true,
    }]);
    let mut body = chat("openai/gpt-test");
    body["stream"] = json!(true);
    let (s, h, text) = gw
        .post_raw(
            "/v1/chat/completions",
            body.to_string().into_bytes(),
            &[("authorization", &format!("Bearer {secret}"))],
        )
        .await;
    assert_eq!(s, 200);
    assert!(text.contains("one"), "{text}");
    let rec = crate::logs::record(&gw, h["x-switchyard-request-id"].to_str().unwrap()).await;
    assert!(rec["status"].as_u64().unwrap() >= 400, "{rec}");
    assert_eq!(rec["usage_source"], "estimated", "{rec}");
    let cost = rec["cost_usd"].as_f64().unwrap();
    assert!(cost > 0.0, "{rec}");
    tokio::time::sleep(Duration::from_millis(200)).await;
    let (_, shown) = gw
        .admin_call("GET", &format!("/admin/v1/keys/{id}"), None)
        .await;
    let spent = shown["budget_spent_usd"].as_f64().unwrap();
    assert!(
        (spent - cost).abs() < 1e-9,
        "spent {spent}, recorded {cost}"
    );
    assert!(shown["budget_held_usd"].as_f64().unwrap().abs() < 1e-9);
    gw.shutdown().await;
}

/// Two gateway processes' worth of state (two servers in this process,
/// separate memory) sharing Redis and Postgres.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn limits_and_budgets_hold_across_two_replicas() {
    let (Some(pg), Some(redis)) = (postgres_url().await, redis_url()) else {
        return;
    };
    let extra = format!("{KEYED}\n[redis]\nurl = \"{redis}\"\n");
    let a = Gw::start_on(
        start_mocks().await,
        "",
        &extra,
        &pg,
        tempfile::tempdir().unwrap(),
    )
    .await;
    let b = Gw::start_on(
        start_mocks().await,
        "",
        &extra,
        &pg,
        tempfile::tempdir().unwrap(),
    )
    .await;
    let (_, secret) = a.create_key(json!({"name": "r2", "rpm": 5})).await;
    tokio::time::sleep(Duration::from_millis(600)).await;
    let (ok, limited, _) = burst(&[&a, &b], &secret, 50).await;
    println!("rpm=5, 50 concurrent over two replicas (Redis): {ok} admitted, {limited} refused");
    assert_eq!((ok, limited), (5, 45));
    // Tokens: two holds fit the minute's tokens, whichever replica admits.
    let hold = (chat("openai/gpt-test").to_string().len() as u64).div_ceil(3) + 10;
    let (_, secret) = a
        .create_key(json!({"name": "t2", "tpm": hold * 2 + hold / 2}))
        .await;
    tokio::time::sleep(Duration::from_millis(600)).await;
    let (ok, limited, _) = held_burst(&[&a, &b], &secret, 20).await;
    println!(
        "tpm={}, 20 concurrent over two replicas (Redis): {ok} admitted, {limited} refused",
        hold * 2 + hold / 2
    );
    assert_eq!((ok, limited), (2, 18), "two holds fit");
    let (ok, spent, budget) = budget_case(&[&a, &b]).await;
    println!(
        "budget for 10 holds, 50 concurrent over two replicas (Redis ledger, Postgres records): {ok} admitted, spent ${spent:.4} of ${budget:.4}, overspend ${:.4}",
        (spent - budget).max(0.0)
    );
    assert_eq!(ok, 10);
    assert!(spent <= budget + 1e-9);
    a.shutdown().await;
    b.shutdown().await;
}

/// Every key the limiter and the ledger leave in Redis expires: a budget
/// account refused on its first hold, and a rate-limit window that is gone
/// (expired) before a long request settles against it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn limit_and_budget_state_in_redis_always_expires() {
    let Some(redis_url) = redis_url().map(|u| format!("{u}/7")) else {
        return;
    };
    let mut conn = redis_conn(&redis_url).await;
    let _: () = redis::cmd("FLUSHDB").query_async(&mut conn).await.unwrap();
    let gw = Gw::start(&format!("{KEYED}\n[redis]\nurl = \"{redis_url}\"\n")).await;
    let (_, poor) = gw
        .create_key(json!({"name": "poor", "budget_usd": 0.000001, "budget_period": "day"}))
        .await;
    let (s, _, _) = call(&gw, &poor, &chat("openai/gpt-test")).await;
    assert_eq!(s, 402);
    let (_, slow) = gw
        .create_key(json!({"name": "slow", "tpm": 1_000_000}))
        .await;
    gw.mocks.openai.script([crate::mock::Reply::Delay(
        Duration::from_millis(500),
        Box::new(crate::mock::Reply::Default),
    )]);
    let running = {
        let url = gw.url("/v1/chat/completions");
        let http = gw.http.clone();
        tokio::spawn(async move {
            http.post(url)
                .bearer_auth(slow)
                .header("content-type", "application/json")
                .body(chat("openai/gpt-test").to_string())
                .send()
                .await
                .unwrap()
                .status()
        })
    };
    tokio::time::sleep(Duration::from_millis(200)).await;
    let windows = redis_keys(&mut conn, "sy:rl:*").await;
    assert!(!windows.is_empty(), "the request is counted in a window");
    // The window expires while the request runs.
    let _: () = redis::cmd("DEL")
        .arg(&windows)
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(running.await.unwrap(), 200);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let keys = redis_keys(&mut conn, "sy:*").await;
    assert!(
        keys.iter().any(|k| k.starts_with("sy:budget:")),
        "the account was seeded: {keys:?}"
    );
    for k in &keys {
        let ttl: i64 = redis::cmd("TTL")
            .arg(k)
            .query_async(&mut conn)
            .await
            .unwrap();
        assert!(ttl > 0, "{k} never expires (TTL {ttl})");
    }
    gw.shutdown().await;
}

/// A revocation on one replica stops the key on the other within a second.
#[tokio::test]
async fn revocation_reaches_other_replicas_within_a_second() {
    let Some(pg) = postgres_url().await else {
        return;
    };
    let a = Gw::start_on(
        start_mocks().await,
        "",
        KEYED,
        &pg,
        tempfile::tempdir().unwrap(),
    )
    .await;
    let b = Gw::start_on(
        start_mocks().await,
        "",
        KEYED,
        &pg,
        tempfile::tempdir().unwrap(),
    )
    .await;
    let (id, secret) = a.create_key(json!({"name": "rev"})).await;
    let (s, _, _) = call(&b, &secret, &chat("openai/gpt-test")).await;
    assert_eq!(
        s, 200,
        "a key made on one replica works on the other at once"
    );
    let (s, _) = a
        .admin_call("DELETE", &format!("/admin/v1/keys/{id}"), None)
        .await;
    assert_eq!(s, 200);
    let t = Instant::now();
    loop {
        let (s, _, _) = call(&b, &secret, &chat("openai/gpt-test")).await;
        if s == 401 {
            break;
        }
        assert!(
            t.elapsed() < Duration::from_secs(1),
            "still accepted after {:?}",
            t.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    println!("revocation latency across replicas: {:?}", t.elapsed());
    a.shutdown().await;
    b.shutdown().await;
}

#[tokio::test]
async fn the_cli_manages_keys_in_the_configured_storage() {
    let gw = Gw::start(KEYED).await;
    let config = gw.dir.path().join("cli.toml");
    std::fs::write(
        &config,
        format!(
            "[storage]\nurl = \"sqlite://{}/switchyard.db\"\n",
            gw.dir.path().display()
        ),
    )
    .unwrap();
    let run = |args: &[&str]| {
        let out = Command::new(BIN)
            .arg("keys")
            .args(args)
            .arg("--config")
            .arg(&config)
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (code, out, err) = run(&[
        "create",
        "--name",
        "cli-key",
        "--models",
        "openai/*",
        "--rpm",
        "7",
        "--metadata",
        "team=infra",
        "--jurisdictions",
        "us,eu",
    ]);
    assert_eq!(code, Some(0), "{err}");
    let v: Value = serde_json::from_str(&out).unwrap();
    let secret = v["key"].as_str().unwrap().to_owned();
    let id = v["id"].as_str().unwrap().to_owned();
    assert_eq!(v["rpm"], 7);
    assert_eq!(v["metadata"]["team"], "infra");
    // The running gateway picks it up.
    tokio::time::sleep(Duration::from_millis(600)).await;
    let (s, h, _) = call(&gw, &secret, &chat("openai/gpt-test")).await;
    assert_eq!(s, 200);
    assert_eq!(h["x-ratelimit-limit-requests"], "7");
    let (code, out, _) = run(&["list"]);
    assert_eq!(code, Some(0));
    assert!(out.contains(&id) && !out.contains(&secret[6..]), "{out}");
    let (code, out, err) = run(&["update", &id, "--rpm", "9", "--clear", "models"]);
    assert_eq!(code, Some(0), "{err}");
    assert!(out.contains("\"rpm\": 9"), "{out}");
    // Bad flags: clear errors naming the flag.
    let (code, _, err) = run(&["create", "--name", "x", "--rpm", "lots"]);
    assert_eq!(code, Some(2));
    assert!(err.contains("--rpm"), "{err}");
    let (code, _, err) = run(&[
        "create",
        "--name",
        "x",
        "--budget-usd",
        "5",
        "--budget-period",
        "week",
    ]);
    assert_eq!(code, Some(2));
    assert!(err.contains("--budget-period"), "{err}");
    let (code, _, err) = run(&["create", "--name", "x", "--metadata", "noequals"]);
    assert_eq!(code, Some(2));
    assert!(err.contains("--metadata"), "{err}");
    let (code, _, err) = run(&["update", &id, "--clear", "name"]);
    assert_eq!(code, Some(2), "{err}");
    let (code, _, err) = run(&["revoke", "key_missing"]);
    assert_eq!(code, Some(2), "{err}");
    let (code, _, _) = run(&["revoke", &id]);
    assert_eq!(code, Some(0));
    tokio::time::sleep(Duration::from_millis(600)).await;
    let (s, _, _) = call(&gw, &secret, &chat("openai/gpt-test")).await;
    assert_eq!(s, 401);

    // The secret is nowhere at rest (database, WAL) or in the logs.
    let mut checked = 0;
    for f in ["switchyard.db", "switchyard.db-wal", "switchyard.db-shm"] {
        if let Ok(bytes) = std::fs::read(gw_dir_file(&config, f)) {
            assert!(
                !contains(&bytes, &secret.as_bytes()[6..]),
                "{f} holds the secret"
            );
            checked += bytes.len();
        }
    }
    assert!(checked > 0);
    assert!(
        !logs().contains(&secret[6..]),
        "a log line holds the secret"
    );
    gw.shutdown().await;
}

fn gw_dir_file(config: &std::path::Path, name: &str) -> std::path::PathBuf {
    config.parent().unwrap().join(name)
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

#[tokio::test]
async fn jurisdictions_on_a_key_narrow_every_request() {
    let gw = Gw::start(KEYED).await;
    let (_, secret) = gw
        .create_key(json!({"name": "eu-only", "jurisdictions": ["eu"]}))
        .await;
    let (s, h, _) = call(&gw, &secret, &chat("eu-first")).await;
    assert_eq!(s, 200);
    assert_eq!(
        h["x-switchyard-provider"], "google",
        "the us target is never tried"
    );
    let (s, _, v) = gw
        .post_with(
            "/v1/chat/completions",
            &chat("eu-first"),
            &[
                ("authorization", &format!("Bearer {secret}")),
                ("x-switchyard-jurisdiction", "us"),
            ],
        )
        .await;
    assert_eq!(s, 403, "header ∩ key = nothing: {v}");
    assert_eq!(v["error"]["code"], "no_compliant_provider");
    assert_eq!(gw.mocks.openai.count(), 0);
    // The record keeps the evidence: what was excluded, and why.
    tokio::time::sleep(Duration::from_millis(700)).await;
    let (_, logs) = gw
        .admin_call("GET", "/admin/v1/logs?status=403", None)
        .await;
    let excluded = &logs["data"][0]["excluded"];
    let targets: Vec<&str> = excluded
        .as_array()
        .unwrap_or_else(|| panic!("{logs}"))
        .iter()
        .map(|e| e["target"].as_str().unwrap())
        .collect();
    assert_eq!(targets, ["openai/gpt-test", "google/gemini-test"], "{logs}");
    assert_eq!(excluded[1]["jurisdiction"], "eu");
    assert!(
        excluded[0]["reason"]
            .as_str()
            .unwrap()
            .contains("not in the allowed set")
    );
    gw.shutdown().await;
}

/// Keys on Postgres: the same lifecycle through the same queries.
#[tokio::test]
async fn keys_on_postgres() {
    let Some(pg) = postgres_url().await else {
        return;
    };
    let gw = Gw::start_on(
        start_mocks().await,
        "",
        KEYED,
        &pg,
        tempfile::tempdir().unwrap(),
    )
    .await;
    let (id, secret) = gw.create_key(json!({"name": "pg", "rpm": 3, "budget_usd": 1.0, "jurisdictions": ["us"], "metadata": {"n": 1}})).await;
    let (s, _, _) = call(&gw, &secret, &chat("openai/gpt-test")).await;
    assert_eq!(s, 200);
    let (_, v) = gw
        .admin_call("GET", &format!("/admin/v1/keys/{id}"), None)
        .await;
    assert_eq!(v["jurisdictions"], json!(["us"]));
    assert_eq!(v["budget_period"], "month");
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (_, v) = gw
        .admin_call("GET", &format!("/admin/v1/keys/{id}"), None)
        .await;
    assert!(
        (v["budget_spent_usd"].as_f64().unwrap() - 0.018).abs() < 1e-9,
        "{v}"
    );
    gw.admin_call("DELETE", &format!("/admin/v1/keys/{id}"), None)
        .await;
    let (s, _, _) = call(&gw, &secret, &chat("openai/gpt-test")).await;
    assert_eq!(s, 401);
    gw.shutdown().await;
}

/// Spend is kept with the records: a process killed right after its answers
/// (their records still in the spool) and with a call in flight restarts
/// knowing what was spent, the call in flight settled at what it held, and
/// the budget holds across the restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn budget_spend_survives_sigkill() {
    let mocks = start_mocks().await;
    let dir = tempfile::tempdir().unwrap();
    let config = crate::binary::config_file(dir.path(), &mocks, KEYED);
    let body_tokens = (chat("openai/gpt-test").to_string().len() as f64 / 3.0).ceil();
    let hold = (body_tokens + 10.0) * 1000.0 / 1e6;
    let cost = 0.018;
    let budget = hold * 8.0;
    let out = Command::new(BIN)
        .args(["keys", "create", "--name", "kill", "--budget-usd"])
        .arg(budget.to_string())
        .args(["--budget-period", "total", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    let (id, secret) = (
        v["id"].as_str().unwrap().to_owned(),
        v["key"].as_str().unwrap().to_owned(),
    );
    let token = "kill-test-admin-token-0123456789";
    let env = crate::binary::env_with(&[("SWITCHYARD_ADMIN_TOKEN", token), ("RUST_LOG", "warn")]);
    let http = reqwest::Client::builder().no_proxy().build().unwrap();
    let send = |base: String| {
        let http = http.clone();
        let auth = format!("Bearer {secret}");
        async move {
            http.post(format!("{base}/v1/chat/completions"))
                .header("authorization", auth)
                .header("content-type", "application/json")
                .body(chat("openai/gpt-test").to_string())
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }
    };

    let bin = crate::binary::Binary::start(&config, &env);
    for _ in 0..3 {
        assert_eq!(send(bin.base.clone()).await, 200);
    }
    // A fourth call the upstream takes its time over: in flight at the kill.
    mocks.openai.script([crate::mock::Reply::Delay(
        Duration::from_secs(5),
        Box::new(crate::mock::Reply::Default),
    )]);
    let in_flight = tokio::spawn(send(bin.base.clone()));
    let started = Instant::now();
    while mocks.openai.count() < 4 && started.elapsed() < Duration::from_secs(5) {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // SIGKILL at once: the records are in the spool, perhaps not yet in
    // the database.
    let pid = bin.child.id().to_string();
    let _ = Command::new("kill").args(["-KILL", &pid]).status();
    drop(bin);
    in_flight.abort();

    let bin = crate::binary::Binary::start(&config, &env);
    let shown: Value = serde_json::from_str(
        &http
            .get(format!("{}/admin/v1/keys/{id}", bin.admin))
            .bearer_auth(token)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap(),
    )
    .unwrap();
    let spent = shown["budget_spent_usd"].as_f64().unwrap();
    let before = 3.0 * cost + hold;
    assert!(
        (spent - before).abs() < 1e-9,
        "after the restart, three answers and one interrupted call at its hold: {shown}"
    );
    // What still fits, one call at a time: admitted while spent + hold fits.
    let mut expected = 0;
    let mut s = before;
    while s + hold <= budget + 1e-12 {
        expected += 1;
        s += cost;
    }
    let mut admitted = 0;
    loop {
        match send(bin.base.clone()).await {
            200 => admitted += 1,
            402 => break,
            other => panic!("unexpected status {other}"),
        }
        assert!(admitted <= expected, "the restart forgot what was spent");
    }
    println!(
        "budget across a SIGKILL: 3 calls and 1 in flight before, {admitted} after (expected {expected}), spend carried over ${spent:.3}"
    );
    assert_eq!(admitted, expected);
    drop(bin);
}

/// Passthrough is held to the key's rules like any other call: model
/// globs, jurisdictions, rate limits, no budgets, and a record.
#[tokio::test]
async fn passthrough_keeps_to_the_keys_rules() {
    let gw = Gw::start(KEYED).await;
    let pass = |key: String, path: &'static str, body: Option<Value>| {
        let rb = gw
            .http
            .post(gw.url(path))
            .bearer_auth(key)
            .header("content-type", "application/json");
        let rb = match body {
            Some(b) => rb.body(b.to_string()),
            None => rb,
        };
        async move {
            let r = rb.send().await.unwrap();
            let s = r.status().as_u16();
            let v: Value = serde_json::from_str(&r.text().await.unwrap()).unwrap_or(Value::Null);
            (s, v)
        }
    };
    // Model globs: a body's model is checked; without one, only a glob
    // covering the whole provider lets it through.
    let (_, scoped) = gw
        .create_key(json!({"name": "one-model", "models": ["openai/gpt-test"]}))
        .await;
    let (s, v) = pass(
        scoped.clone(),
        "/passthrough/openai/chat/completions",
        Some(chat("gpt-test")),
    )
    .await;
    assert_eq!(s, 200, "{v}");
    let (s, _) = pass(
        scoped.clone(),
        "/passthrough/openai/chat/completions",
        Some(chat("gpt-other")),
    )
    .await;
    assert_eq!(s, 403);
    let (s, _) = pass(scoped, "/passthrough/openai/files/list", None).await;
    assert_eq!(
        s, 403,
        "no model named: the key must cover the whole provider"
    );
    let (_, whole) = gw
        .create_key(json!({"name": "whole", "models": ["openai/*"]}))
        .await;
    assert_eq!(
        pass(whole, "/passthrough/openai/files/list", None).await.0,
        200
    );
    let upstream_before = gw.mocks.openai.count();

    // Jurisdictions: an eu-only key never reaches the us provider.
    let (_, eu) = gw
        .create_key(json!({"name": "eu", "jurisdictions": ["eu"]}))
        .await;
    let (s, v) = pass(eu.clone(), "/passthrough/openai/files/list", None).await;
    assert_eq!(s, 403, "{v}");
    assert_eq!(v["error"]["code"], "no_compliant_provider");
    assert_eq!(pass(eu, "/passthrough/google/models", None).await.0, 200);

    // Budgets: refused, as nothing could be held for the call.
    let (_, budgeted) = gw.create_key(json!({"name": "b", "budget_usd": 5.0})).await;
    let (s, v) = pass(budgeted, "/passthrough/openai/files/list", None).await;
    assert_eq!(s, 403, "{v}");
    assert!(v["error"]["message"].as_str().unwrap().contains("budget"));

    // Rate limits.
    let (limited_id, limited) = gw.create_key(json!({"name": "r", "rpm": 1})).await;
    assert_eq!(
        pass(limited.clone(), "/passthrough/openai/files/list", None)
            .await
            .0,
        200
    );
    assert_eq!(
        pass(limited, "/passthrough/openai/files/list", None)
            .await
            .0,
        429
    );
    assert_eq!(
        gw.mocks.openai.count(),
        upstream_before + 1,
        "refused calls never went upstream"
    );

    // Records, refusals included.
    tokio::time::sleep(Duration::from_millis(700)).await;
    let (_, logs) = gw
        .admin_call("GET", &format!("/admin/v1/logs?key={limited_id}"), None)
        .await;
    let statuses: Vec<i64> = logs["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["status"].as_i64().unwrap())
        .collect();
    assert_eq!(statuses, [429, 200], "{logs}");
    assert_eq!(logs["data"][1]["requested_model"], "openai/");
    assert_eq!(logs["data"][1]["dialect"], "passthrough");
    gw.shutdown().await;
}
