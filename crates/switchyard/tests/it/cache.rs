//! The response cache: hits that cost nothing, TTLs that hold, tenants that
//! never meet, stream replay, fallback answers kept out, listing and purges
//! that really delete (memory and Redis).

use std::time::Duration;

use serde_json::{Value, json};

use crate::harness::*;
use crate::mock::Reply;

pub const CONFIG: &str = r#"
[[routes]]
name = "smart"
targets = ["anthropic/claude-test", "openai/gpt-test"]

[[routes]]
name = "smart-cached"
cache_fallback = true
targets = ["anthropic/claude-test", "openai/gpt-test"]

[pricing."openai/gpt-test"]
input_per_mtok_usd = 2.0
output_per_mtok_usd = 8.0
"#;

fn chat(model: &str, text: &str) -> Value {
    json!({"model": model, "messages": [{"role": "user", "content": text}], "max_tokens": 16})
}

async fn ask(
    gw: &Gw,
    path: &str,
    body: &Value,
    headers: &[(&str, &str)],
) -> (u16, http::HeaderMap, String) {
    gw.post_raw(path, body.to_string().into_bytes(), headers)
        .await
}

fn cache_of(h: &http::HeaderMap) -> &str {
    h["x-switchyard-cache"].to_str().unwrap()
}

pub async fn cache_flow(gw: &Gw) {
    let ttl = [("x-switchyard-cache-ttl", "60")];
    let body = chat("openai/gpt-test", "cache me");
    let before = gw.mocks.openai.count();
    let (_, h1, b1) = ask(gw, "/v1/chat/completions", &body, &ttl).await;
    let (_, h2, b2) = ask(gw, "/v1/chat/completions", &body, &ttl).await;
    assert_eq!((cache_of(&h1), cache_of(&h2)), ("MISS", "HIT"));
    assert_eq!(b1, b2, "the hit is the answer the caller got");
    assert_eq!(gw.mocks.openai.count() - before, 1, "one upstream call");
    assert_eq!(h2["x-switchyard-cost-usd"], "0");
    assert_eq!(h2["x-switchyard-provider"], "openai");
    let hit = crate::logs::record(gw, h2["x-switchyard-request-id"].to_str().unwrap()).await;
    assert_eq!(hit["cache"], "HIT");
    assert_eq!(hit["cost_usd"], 0.0);
    assert!(
        (hit["saved_usd"].as_f64().unwrap() - (11.0 * 2.0 + 7.0 * 8.0) / 1e6).abs() < 1e-12,
        "{hit}"
    );

    // Any change to a forwarded field is another entry.
    let mut other = body.clone();
    other["temperature"] = json!(0.3);
    let (_, h, _) = ask(gw, "/v1/chat/completions", &other, &ttl).await;
    assert_eq!(cache_of(&h), "MISS");
    // Skip, or TTL 0: neither read nor written.
    let (_, h, _) = ask(
        gw,
        "/v1/chat/completions",
        &body,
        &[
            ("x-switchyard-cache-ttl", "60"),
            ("x-switchyard-skip-cache", "true"),
        ],
    )
    .await;
    assert_eq!(cache_of(&h), "BYPASS");
    let (_, h, _) = ask(
        gw,
        "/v1/chat/completions",
        &body,
        &[("x-switchyard-cache-ttl", "0")],
    )
    .await;
    assert_eq!(cache_of(&h), "BYPASS");
    // A caller-chosen key replaces the derived part.
    let custom = [
        ("x-switchyard-cache-ttl", "60"),
        ("x-switchyard-cache-key", "classify:42"),
    ];
    let (_, h, b_first) = ask(
        gw,
        "/v1/chat/completions",
        &chat("openai/gpt-test", "one"),
        &custom,
    )
    .await;
    assert_eq!(cache_of(&h), "MISS");
    let (_, h, b_again) = ask(
        gw,
        "/v1/chat/completions",
        &chat("openai/gpt-test", "two"),
        &custom,
    )
    .await;
    assert_eq!(cache_of(&h), "HIT");
    assert_eq!(b_first, b_again);
    // Errors are not stored.
    gw.mocks
        .openai
        .script([Reply::Json(500, json!({"error": {"message": "x"}}), vec![])]);
    let err_body = chat("openai/gpt-test", "fails once");
    let (s, _, _) = ask(gw, "/v1/chat/completions", &err_body, &ttl).await;
    assert_eq!(s, 500);
    let (s, h, _) = ask(gw, "/v1/chat/completions", &err_body, &ttl).await;
    assert_eq!((s, cache_of(&h)), (200, "MISS"));
    // Bad values are refused by name.
    let (s, _, v) = gw
        .post_with(
            "/v1/chat/completions",
            &body,
            &[("x-switchyard-cache-ttl", "soon")],
        )
        .await;
    assert_eq!(
        (s, v["error"]["param"].as_str()),
        (400, Some("x-switchyard-cache-ttl"))
    );
}

#[tokio::test]
async fn memory_cache_hits_misses_and_bypasses() {
    let gw = Gw::start(CONFIG).await;
    cache_flow(&gw).await;
    gw.shutdown().await;
}

#[tokio::test]
async fn redis_cache_hits_misses_and_bypasses() {
    // A database of its own: other tests purge theirs.
    let Some(redis) = redis_url().map(|u| format!("{u}/3")) else {
        return;
    };
    let gw = Gw::start(&format!("{CONFIG}\n[redis]\nurl = \"{redis}\"\n")).await;
    gw.admin_call("DELETE", "/admin/v1/cache", None).await;
    cache_flow(&gw).await;
    gw.shutdown().await;
}

/// A one-second entry: a hit while it lives, a miss once it has expired,
/// and gone from the listing. Returns the expired entry's id.
async fn expiry_flow(gw: &Gw, before_expiry: impl AsyncFnOnce(&str)) -> String {
    let ttl = [("x-switchyard-cache-ttl", "1")];
    let body = chat("openai/gpt-test", "short-lived");
    let (_, h, _) = ask(gw, "/v1/chat/completions", &body, &ttl).await;
    assert_eq!(cache_of(&h), "MISS");
    let (_, h, _) = ask(gw, "/v1/chat/completions", &body, &ttl).await;
    assert_eq!(cache_of(&h), "HIT");
    let (_, v) = gw.admin_call("GET", "/admin/v1/cache", None).await;
    let listed = v["data"].as_array().unwrap();
    assert_eq!(listed.len(), 1, "{v}");
    let id = listed[0]["id"].as_str().unwrap().to_owned();
    before_expiry(&id).await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let (_, v) = gw.admin_call("GET", "/admin/v1/cache", None).await;
    assert!(
        v["data"].as_array().unwrap().is_empty(),
        "expired, unlisted: {v}"
    );
    let (_, h, _) = ask(gw, "/v1/chat/completions", &body, &ttl).await;
    assert_eq!(
        cache_of(&h),
        "MISS",
        "expired, whatever the backend still holds"
    );
    id
}

#[tokio::test]
async fn expired_entries_are_never_served() {
    let gw = Gw::start(CONFIG).await;
    expiry_flow(&gw, async |_| {}).await;
    gw.shutdown().await;
}

/// Redis would drop the entry at its expiry on its own; here its expiry is
/// taken off, so Redis still holds the entry when it is asked for, and the
/// gateway's own check is what keeps it from being served.
#[tokio::test]
async fn expired_entries_are_never_served_from_redis() {
    let Some(redis_url) = redis_url().map(|u| format!("{u}/6")) else {
        return;
    };
    let gw = Gw::start(&format!("{CONFIG}\n[redis]\nurl = \"{redis_url}\"\n")).await;
    gw.admin_call("DELETE", "/admin/v1/cache", None).await;
    let mut conn = redis_conn(&redis_url).await;
    let mut c = conn.clone();
    let id = expiry_flow(&gw, async move |id| {
        let kept: i64 = redis::cmd("PERSIST")
            .arg(format!("sy:{{cache}}:e:{id}"))
            .query_async(&mut c)
            .await
            .unwrap();
        assert_eq!(kept, 1, "the entry had a Redis expiry to take off");
    })
    .await;
    // The miss stored the answer again, under the same id, with a fresh
    // expiry in Redis too.
    tokio::time::sleep(Duration::from_millis(100)).await;
    let pttl: i64 = redis::cmd("PTTL")
        .arg(format!("sy:{{cache}}:e:{id}"))
        .query_async(&mut conn)
        .await
        .unwrap();
    assert!((1..=1000).contains(&pttl), "Redis expiry set again: {pttl}");
    // Another write prunes what has expired from the indexes.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    ask(
        &gw,
        "/v1/chat/completions",
        &chat("openai/gpt-test", "long-lived"),
        &[("x-switchyard-cache-ttl", "60")],
    )
    .await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    let indexed: Vec<String> = redis::cmd("ZRANGE")
        .arg("sy:{cache}:idx")
        .arg(0)
        .arg(-1)
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(indexed.len(), 1, "only the live entry is indexed");
    assert_ne!(indexed[0], id);
    gw.shutdown().await;
}

#[tokio::test]
async fn tenants_never_share_entries() {
    let gw = Gw::start(&format!("[auth]\nrequire_keys = true\n{CONFIG}")).await;
    let (_, a) = gw.create_key(json!({"name": "a", "cache_ttl_s": 60})).await;
    let (_, b) = gw.create_key(json!({"name": "b", "cache_ttl_s": 60})).await;
    let (_, c) = gw
        .create_key(json!({"name": "c", "cache_ttl_s": 60, "cache_namespace": "shared"}))
        .await;
    let (_, d) = gw
        .create_key(json!({"name": "d", "cache_ttl_s": 60, "cache_namespace": "shared"}))
        .await;
    let body = chat("openai/gpt-test", "tenant");
    let bearer = |k: &str| format!("Bearer {k}");
    let (_, h, _) = ask(
        &gw,
        "/v1/chat/completions",
        &body,
        &[("authorization", &bearer(&a))],
    )
    .await;
    assert_eq!(
        cache_of(&h),
        "MISS",
        "the key's default TTL turns caching on"
    );
    let (_, h, _) = ask(
        &gw,
        "/v1/chat/completions",
        &body,
        &[("authorization", &bearer(&a))],
    )
    .await;
    assert_eq!(cache_of(&h), "HIT");
    let (_, h, _) = ask(
        &gw,
        "/v1/chat/completions",
        &body,
        &[("authorization", &bearer(&b))],
    )
    .await;
    assert_eq!(cache_of(&h), "MISS", "another key, another namespace");
    let (auth_a, auth_b) = (bearer(&a), bearer(&b));
    let _ = ask(
        &gw,
        "/v1/chat/completions",
        &body,
        &[
            ("authorization", auth_a.as_str()),
            ("x-switchyard-cache-key", "same"),
        ],
    )
    .await;
    let (_, h, _) = ask(
        &gw,
        "/v1/chat/completions",
        &body,
        &[
            ("authorization", auth_b.as_str()),
            ("x-switchyard-cache-key", "same"),
        ],
    )
    .await;
    assert_eq!(
        cache_of(&h),
        "MISS",
        "a custom key never crosses namespaces"
    );
    // Keys that share a namespace share entries.
    let (_, h, _) = ask(
        &gw,
        "/v1/chat/completions",
        &body,
        &[("authorization", &bearer(&c))],
    )
    .await;
    assert_eq!(cache_of(&h), "MISS");
    let (_, h, _) = ask(
        &gw,
        "/v1/chat/completions",
        &body,
        &[("authorization", &bearer(&d))],
    )
    .await;
    assert_eq!(cache_of(&h), "HIT");
    gw.shutdown().await;
}

/// A streamed answer is stored as its events and replayed as a stream,
/// byte for byte, in each caller dialect.
#[tokio::test]
async fn streams_replay_their_events() {
    let gw = Gw::start(CONFIG).await;
    for (path, model) in [
        ("/v1/chat/completions", "anthropic/claude-test"),
        ("/v1/messages", "openai/gpt-test"),
        ("/v1/chat/completions", "openai/gpt-test"),
        ("/v1/messages", "anthropic/claude-test"),
    ] {
        let mut body = chat(model, "stream me");
        body["stream"] = json!(true);
        let ttl = [("x-switchyard-cache-ttl", "60")];
        let (_, h1, first) = ask(&gw, path, &body, &ttl).await;
        // The entry is written when the stream ends, just after the bytes.
        tokio::time::sleep(Duration::from_millis(100)).await;
        let (_, h2, again) = ask(&gw, path, &body, &ttl).await;
        assert_eq!(
            (cache_of(&h1), cache_of(&h2)),
            ("MISS", "HIT"),
            "{path} {model}"
        );
        assert_eq!(h2["content-type"], "text/event-stream");
        assert_eq!(sse(&first), sse(&again), "{path} {model}: same events");
        assert_eq!(first, again);
    }
    gw.shutdown().await;
}

#[tokio::test]
async fn fallback_answers_are_stored_only_where_the_route_allows() {
    let gw = Gw::start(CONFIG).await;
    let ttl = [("x-switchyard-cache-ttl", "60")];
    for (route, stored) in [("smart", false), ("smart-cached", true)] {
        gw.mocks.anthropic.script([Reply::Json(
            503,
            json!({"type": "error", "error": {"type": "overloaded_error", "message": "x"}}),
            vec![],
        )]);
        let body = chat(route, "fallback");
        let (_, h, _) = ask(&gw, "/v1/chat/completions", &body, &ttl).await;
        assert_eq!(h["x-switchyard-provider"], "openai");
        tokio::time::sleep(Duration::from_millis(50)).await;
        let (_, h, _) = ask(&gw, "/v1/chat/completions", &body, &ttl).await;
        if stored {
            assert_eq!(cache_of(&h), "HIT", "{route}");
            assert_eq!(
                h["x-switchyard-provider"], "openai",
                "the entry says which target served"
            );
        } else {
            assert_eq!(
                cache_of(&h),
                "MISS",
                "{route}: a degraded answer does not stick"
            );
            assert_eq!(h["x-switchyard-provider"], "anthropic");
        }
    }
    gw.shutdown().await;
}

async fn admin_flow(gw: &Gw) -> Vec<String> {
    let (_, ka) = gw
        .create_key(json!({"name": "a", "cache_namespace": "team-a"}))
        .await;
    let (_, kb) = gw
        .create_key(json!({"name": "b", "cache_namespace": "team-b"}))
        .await;
    let mut canaries = Vec::new();
    for (k, n) in [(&ka, 3), (&kb, 2)] {
        for i in 0..n {
            let canary = format!("CACHE-CANARY-{i}-{}", &k[k.len() - 6..]);
            ask(
                gw,
                "/v1/chat/completions",
                &chat("openai/gpt-test", &canary),
                &[
                    ("authorization", &format!("Bearer {k}")),
                    ("x-switchyard-cache-ttl", "60"),
                ],
            )
            .await;
            canaries.push(canary);
        }
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    let (s, v) = gw.admin_call("GET", "/admin/v1/cache", None).await;
    assert_eq!(s, 200, "{v}");
    let all = v["data"].as_array().unwrap();
    assert_eq!(all.len(), 5, "{v}");
    let e = &all[0];
    for f in [
        "id",
        "namespace",
        "key_hash",
        "requested_model",
        "provider",
        "model",
        "size_bytes",
        "created_at",
        "expires_at",
    ] {
        assert!(!e[f].is_null(), "{f} listed: {e}");
    }
    assert!(!v.to_string().contains("CACHE-CANARY"), "never bodies");
    let (_, v) = gw
        .admin_call("GET", "/admin/v1/cache?namespace=team-a&limit=2", None)
        .await;
    assert_eq!(v["data"].as_array().unwrap().len(), 2);
    let next = v["next_cursor"].as_str().unwrap().to_owned();
    let (_, v2) = gw
        .admin_call(
            "GET",
            &format!("/admin/v1/cache?namespace=team-a&limit=2&cursor={next}"),
            None,
        )
        .await;
    assert_eq!(v2["data"].as_array().unwrap().len(), 1);
    let one = v["data"][0]["id"].as_str().unwrap().to_owned();
    let (s, v) = gw
        .admin_call("DELETE", &format!("/admin/v1/cache/{one}"), None)
        .await;
    assert_eq!((s, v["deleted"].as_u64()), (200, Some(1)));
    let (s, _) = gw
        .admin_call("DELETE", &format!("/admin/v1/cache/{one}"), None)
        .await;
    assert_eq!(s, 404);
    let (_, v) = gw
        .admin_call("DELETE", "/admin/v1/cache?namespace=team-b", None)
        .await;
    assert_eq!(v["deleted"], 2);
    let (_, v) = gw.admin_call("GET", "/admin/v1/cache", None).await;
    assert_eq!(v["data"].as_array().unwrap().len(), 2);
    let (_, v) = gw.admin_call("DELETE", "/admin/v1/cache", None).await;
    assert_eq!(v["deleted"], 2);
    let (_, v) = gw.admin_call("GET", "/admin/v1/cache", None).await;
    assert!(v["data"].as_array().unwrap().is_empty());
    let (s, _) = gw
        .admin_call("GET", "/admin/v1/cache?colour=red", None)
        .await;
    assert_eq!(s, 400);
    canaries
}

#[tokio::test]
async fn admin_lists_and_purges_the_memory_cache() {
    let gw = Gw::start(&format!("[auth]\nrequire_keys = true\n{CONFIG}")).await;
    admin_flow(&gw).await;
    gw.shutdown().await;
}

/// A purge in Redis really deletes: afterwards not one stored byte of the
/// purged bodies is left under the cache's keys.
#[tokio::test]
async fn purges_really_delete_from_redis() {
    let Some(redis_url) = redis_url().map(|u| format!("{u}/4")) else {
        return;
    };
    let gw = Gw::start(&format!(
        "[auth]\nrequire_keys = true\n{CONFIG}\n[redis]\nurl = \"{redis_url}\"\n"
    ))
    .await;
    gw.admin_call("DELETE", "/admin/v1/cache", None).await;
    let canaries = admin_flow(&gw).await;
    let mut conn = redis_conn(&redis_url).await;
    let keys = redis_keys(&mut conn, "sy:{cache}:*").await;
    let mut dump = Vec::new();
    for k in &keys {
        let v: Option<Vec<u8>> = redis::cmd("DUMP")
            .arg(k)
            .query_async(&mut conn)
            .await
            .unwrap();
        dump.extend(v.unwrap_or_default());
    }
    for c in canaries {
        assert!(
            !dump.windows(c.len()).any(|w| w == c.as_bytes()),
            "{c} still in Redis"
        );
    }
    gw.shutdown().await;
}
