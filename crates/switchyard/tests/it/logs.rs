//! Usage, cost and records: one true record per request, filters and
//! grouping by any tag, log modes that keep bodies out of everything,
//! metrics.

use std::time::Duration;

use serde_json::{Value, json};

use crate::harness::*;
use crate::mock::Reply;

const PRICED: &str = r#"
[[routes]]
name = "smart"
targets = ["anthropic/claude-test", "openai/gpt-test"]

[pricing."openai/gpt-test"]
input_per_mtok_usd = 2.0
output_per_mtok_usd = 8.0
cached_input_per_mtok_usd = 0.5

[pricing."anthropic/claude-test"]
input_per_mtok_usd = 3.0
output_per_mtok_usd = 15.0
"#;

fn chat(model: &str, text: &str) -> Value {
    json!({"model": model, "messages": [{"role": "user", "content": text}], "max_tokens": 16})
}

/// Waits until the record of `id` is complete in the database.
pub async fn record(gw: &Gw, id: &str) -> Value {
    let started = std::time::Instant::now();
    loop {
        let (s, v) = gw
            .admin_call("GET", &format!("/admin/v1/logs/{id}"), None)
            .await;
        if s == 200 && v["state"] != "begun" {
            return v;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "no complete record for {id}: {v}"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

fn id_of(h: &http::HeaderMap) -> String {
    h["x-switchyard-request-id"].to_str().unwrap().to_owned()
}

#[tokio::test]
async fn each_request_leaves_one_true_record() {
    let gw = Gw::start(PRICED).await;
    let (_, secret) = gw
        .create_key(json!({"name": "team-key", "metadata": {"team": "default", "owner": "ops"}}))
        .await;
    let auth = format!("Bearer {secret}");
    let meta = r#"{"team":"search","stage":"classify","n":3,"gold":true}"#;
    let (s, h, _) = gw
        .post_with(
            "/v1/chat/completions",
            &chat("openai/gpt-test", "Say hi"),
            &[("authorization", &auth), ("x-switchyard-metadata", meta)],
        )
        .await;
    assert_eq!(s, 200);
    let cost_header: f64 = h["x-switchyard-cost-usd"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    let r = record(&gw, &id_of(&h)).await;
    assert_eq!(r["state"], "complete");
    assert_eq!(r["status"], 200);
    assert_eq!(r["provider"], "openai");
    assert_eq!(r["model"], "gpt-test");
    assert_eq!(r["requested_model"], "openai/gpt-test");
    assert_eq!(
        (r["input_tokens"].as_i64(), r["output_tokens"].as_i64()),
        (Some(11), Some(7))
    );
    assert_eq!(r["usage_source"], "reported");
    let want = (11.0 * 2.0 + 7.0 * 8.0) / 1e6;
    assert!(
        (r["cost_usd"].as_f64().unwrap() - want).abs() < 1e-12,
        "{r}"
    );
    assert!((cost_header - want).abs() < 1e-9);
    assert_eq!(
        r["metadata"],
        json!({"team": "search", "owner": "ops", "stage": "classify", "n": 3, "gold": true})
    );
    assert_eq!(r["attempts"][0]["target"], "openai/gpt-test");
    assert_eq!(r["attempts"][0]["jurisdiction"], "us");
    assert_eq!(r["attempts"][0]["outcome"], "ok");
    assert_eq!(r["log_mode"], "metadata");
    assert!(r["request_body"].is_null() && r["response_body"].is_null());
    assert!(r["latency_ms"].as_f64().unwrap() > 0.0);
    assert_eq!(
        r["key_id"],
        gw.admin_call("GET", "/admin/v1/keys", None).await.1["data"][0]["id"]
    );

    // A failover: both attempts, with jurisdictions, on the record.
    gw.mocks.anthropic.script([Reply::Json(
        529,
        json!({"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}),
        vec![],
    )]);
    let (_, h, _) = gw
        .post_with(
            "/v1/messages",
            &chat("smart", "Say hi"),
            &[("authorization", &auth)],
        )
        .await;
    let r = record(&gw, &id_of(&h)).await;
    assert_eq!(r["route"], "smart");
    let attempts = r["attempts"].as_array().unwrap();
    assert_eq!(attempts.len(), 2);
    assert_eq!(
        (
            attempts[0]["outcome"].as_str(),
            attempts[0]["status"].as_i64()
        ),
        (Some("error"), Some(529))
    );
    assert_eq!(attempts[0]["error_class"], "overloaded");
    assert_eq!(attempts[1]["outcome"], "ok");

    // Streamed usage equals non-streamed usage for the same answer.
    let mut body = chat("anthropic/claude-test", "Say hi");
    let (_, h, _) = gw
        .post_with("/v1/chat/completions", &body, &[("authorization", &auth)])
        .await;
    let plain = record(&gw, &id_of(&h)).await;
    body["stream"] = json!(true);
    let (_, h, _) = gw
        .post_raw(
            "/v1/chat/completions",
            body.to_string().into_bytes(),
            &[("authorization", &auth)],
        )
        .await;
    let streamed = record(&gw, &id_of(&h)).await;
    for f in ["input_tokens", "output_tokens", "cached_tokens", "cost_usd"] {
        assert_eq!(plain[f], streamed[f], "{f}");
    }
    assert!(streamed["ttft_ms"].as_f64().is_some());
    assert_eq!(streamed["stream"], true);

    // Refusals are recorded too.
    let (s, h, _) = gw
        .post_with(
            "/v1/chat/completions",
            &chat("openai/gpt-test", "x"),
            &[
                ("authorization", &auth),
                ("x-switchyard-jurisdiction", "mars"),
            ],
        )
        .await;
    assert_eq!(s, 403);
    let r = record(&gw, &id_of(&h)).await;
    assert_eq!(
        (r["status"].as_i64(), r["error_class"].as_str()),
        (Some(403), Some("no_compliant_provider"))
    );

    // Bad metadata is a 400 naming the header.
    for bad in ["{not json", "[1]", r#"{"a":{"b":1}}"#, r#"{"a":null}"#] {
        let (s, _, v) = gw
            .post_with(
                "/v1/chat/completions",
                &chat("openai/gpt-test", "x"),
                &[("x-switchyard-metadata", bad)],
            )
            .await;
        assert_eq!(s, 400, "{bad}");
        assert_eq!(v["error"]["param"], "x-switchyard-metadata");
    }
    let many: serde_json::Map<String, Value> =
        (0..17).map(|i| (format!("t{i}"), json!(i))).collect();
    let (s, _, _) = gw
        .post_with(
            "/v1/chat/completions",
            &chat("openai/gpt-test", "x"),
            &[("x-switchyard-metadata", &Value::Object(many).to_string())],
        )
        .await;
    assert_eq!(s, 400);
    gw.shutdown().await;
}

#[tokio::test]
async fn filters_paging_and_grouping_by_any_tag() {
    let gw = Gw::start(PRICED).await;
    let mut ids = Vec::new();
    for (team, model) in [
        ("a", "openai/gpt-test"),
        ("a", "anthropic/claude-test"),
        ("b", "openai/gpt-test"),
        ("b", "openai/gpt-test"),
        ("c", "anthropic/claude-test"),
    ] {
        let (_, h, _) = gw
            .post_with(
                "/v1/chat/completions",
                &chat(model, "hi"),
                &[("x-switchyard-metadata", &format!(r#"{{"team":"{team}"}}"#))],
            )
            .await;
        ids.push(id_of(&h));
    }
    for id in &ids {
        record(&gw, id).await;
    }
    let (_, v) = gw
        .admin_call("GET", "/admin/v1/logs?metadata.team=b", None)
        .await;
    let got: Vec<&str> = v["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap())
        .collect();
    assert_eq!(got, [ids[3].as_str(), ids[2].as_str()], "newest first");
    let (_, v) = gw
        .admin_call(
            "GET",
            "/admin/v1/logs?provider=anthropic&metadata.team=c",
            None,
        )
        .await;
    assert_eq!(v["data"].as_array().unwrap().len(), 1);
    let (_, v) = gw
        .admin_call("GET", "/admin/v1/logs?status=200&model=gpt-test", None)
        .await;
    assert_eq!(v["data"].as_array().unwrap().len(), 3);

    // Cursor paging covers everything exactly once.
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(c) => format!("/admin/v1/logs?limit=2&cursor={c}"),
            None => "/admin/v1/logs?limit=2".into(),
        };
        let (_, v) = gw.admin_call("GET", &path, None).await;
        for r in v["data"].as_array().unwrap() {
            seen.push(r["id"].as_str().unwrap().to_owned());
        }
        match v["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => break,
        }
    }
    let mut want = ids.clone();
    want.reverse();
    assert_eq!(seen, want);

    // Usage by tag and provider.
    let (s, v) = gw
        .admin_call(
            "GET",
            "/admin/v1/usage?group_by=metadata.team,provider",
            None,
        )
        .await;
    assert_eq!(s, 200, "{v}");
    let rows = v["data"].as_array().unwrap();
    let b = rows
        .iter()
        .find(|r| r["group"]["metadata.team"] == "b" && r["group"]["provider"] == "openai")
        .unwrap();
    assert_eq!(b["requests"], 2);
    assert_eq!(b["input_tokens"], 22);
    assert!((b["cost_usd"].as_f64().unwrap() - 2.0 * (11.0 * 2.0 + 7.0 * 8.0) / 1e6).abs() < 1e-12);
    let (_, v) = gw
        .admin_call("GET", "/admin/v1/usage?group_by=model&bucket=hour", None)
        .await;
    assert!(v["data"][0]["bucket"].as_i64().unwrap() % 3_600_000 == 0);
    let (s, v) = gw
        .admin_call("GET", "/admin/v1/usage?group_by=colour", None)
        .await;
    assert_eq!((s, v["error"]["param"].as_str()), (400, Some("group_by")));
    let (s, v) = gw
        .admin_call("GET", "/admin/v1/logs?colour=red", None)
        .await;
    assert_eq!((s, v["error"]["param"].as_str()), (400, Some("colour")));
    let (s, v) = gw
        .admin_call("GET", "/admin/v1/keys?include_revoked=maybe", None)
        .await;
    assert_eq!(
        (s, v["error"]["param"].as_str()),
        (400, Some("include_revoked"))
    );
    let r = gw
        .http
        .put(gw.admin_url("/admin/v1/keys/key_x"))
        .bearer_auth(&gw.admin_token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 405);
    assert_eq!(r.headers()["allow"], "GET, PATCH, DELETE");
    let v: Value = r.json().await.unwrap();
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("PUT is not allowed"),
        "{v}"
    );
    let (s, v) = gw
        .admin_call("GET", "/admin/v1/stats?bucket=minute", None)
        .await;
    assert_eq!(s, 200);
    assert_eq!(
        v["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["requests"].as_u64().unwrap())
            .sum::<u64>(),
        5
    );
    assert!(v["data"][0]["p50_latency_ms"].as_f64().is_some());
    assert_eq!(v["totals"]["requests"], 5);
    assert!(v["totals"]["p95_latency_ms"].as_f64().is_some());
    assert_eq!(v["top_models"][0]["name"], "gpt-test");

    // Metrics.
    let text = gw.metrics().await;
    assert!(text.contains("switchyard_requests_total{provider=\"openai\",model=\"gpt-test\",status=\"200\",cache=\"BYPASS\"} 3"), "{text}");
    assert!(text.contains("switchyard_spool_bytes"));
    assert!(text.contains(
        "switchyard_tokens_total{provider=\"anthropic\",model=\"claude-test\",kind=\"input\"} 22"
    ));
    // The OpenTelemetry GenAI names, beside ours: 22 input tokens of
    // Anthropic's in one bucket sum, the duration counted per call.
    assert!(
        text.contains("gen_ai_client_token_usage_sum{gen_ai_operation_name=\"chat\",gen_ai_provider_name=\"anthropic\",gen_ai_response_model=\"claude-test\",gen_ai_token_type=\"input\"} 22"),
        "{text}"
    );
    assert!(
        text.contains("gen_ai_client_operation_duration_seconds_count{gen_ai_operation_name=\"chat\",gen_ai_provider_name=\"openai\",gen_ai_response_model=\"gpt-test\"} 3"),
        "{text}"
    );
    assert!(
        !text.contains("metadata") && !text.contains("key_"),
        "no tags or keys as labels"
    );
    gw.shutdown().await;
}

/// Usage grouping by tag on Postgres, through the same queries.
#[tokio::test]
async fn usage_by_tag_on_postgres_and_plans_use_indexes() {
    let Some(pg) = postgres_url().await else {
        return;
    };
    let gw = Gw::start_on(
        start_mocks().await,
        "",
        PRICED,
        &pg,
        tempfile::tempdir().unwrap(),
    )
    .await;
    let mut last = String::new();
    for team in ["x", "y", "x"] {
        let (_, h, _) = gw
            .post_with(
                "/v1/chat/completions",
                &chat("openai/gpt-test", "hi"),
                &[("x-switchyard-metadata", &format!(r#"{{"team":"{team}"}}"#))],
            )
            .await;
        last = id_of(&h);
    }
    record(&gw, &last).await;
    let (s, v) = gw
        .admin_call("GET", "/admin/v1/usage?group_by=metadata.team", None)
        .await;
    assert_eq!(s, 200, "{v}");
    let x = v["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["group"]["metadata.team"] == "x")
        .unwrap();
    assert_eq!(
        (x["requests"].as_i64(), x["output_tokens"].as_i64()),
        (Some(2), Some(14))
    );
    let (_, v) = gw
        .admin_call("GET", "/admin/v1/logs?metadata.team=y", None)
        .await;
    assert_eq!(v["data"].as_array().unwrap().len(), 1);
    gw.shutdown().await;
}

#[tokio::test]
async fn sqlite_plans_use_indexes() {
    let gw = Gw::start("").await;
    let storage = &gw.running.gateway.storage;
    use switchyard::log_store::query::{LogFilter, explain_list};
    for (f, index) in [
        (LogFilter::default(), "requests_time"),
        (
            LogFilter {
                key: Some("k".into()),
                ..Default::default()
            },
            "requests_key_time",
        ),
        (
            LogFilter {
                tags: vec![("team".into(), "a".into())],
                ..Default::default()
            },
            "request_tags",
        ),
        // Partial indexes (present values only: a begun row has no
        // provider, model or status yet) serve these filters too.
        (
            LogFilter {
                provider: Some("p".into()),
                ..Default::default()
            },
            "requests_provider_time",
        ),
        (
            LogFilter {
                model: Some("m".into()),
                ..Default::default()
            },
            "requests_model_time",
        ),
        (
            LogFilter {
                status: Some(429),
                ..Default::default()
            },
            "requests_status_time",
        ),
        // 200s are not in the status index (migration 17): read by time.
        (
            LogFilter {
                status: Some(200),
                ..Default::default()
            },
            "requests_time",
        ),
        (
            LogFilter {
                error_class: Some("timeout".into()),
                ..Default::default()
            },
            "requests_error_time",
        ),
        (
            LogFilter {
                route: Some("smart".into()),
                ..Default::default()
            },
            "requests_route_time",
        ),
    ] {
        let plan = explain_list(storage, &f).await.unwrap();
        assert!(plan.contains(index), "{f:?} should use {index}:\n{plan}");
        assert!(
            !plan.contains("SCAN r\n") && !plan.ends_with("SCAN r"),
            "no full scan: {plan}"
        );
    }
    gw.shutdown().await;
}

/// `x-switchyard-log` makes a call's record stricter than the key's (or
/// the configured) mode, never looser; a bad value is refused by name.
#[tokio::test]
async fn the_log_header_only_tightens() {
    let gw = Gw::start(&format!(
        "[auth]\nrequire_keys = true\n{PRICED}\n[logs]\nmode = \"full\"\n"
    ))
    .await;
    let (_, strict) = gw
        .create_key(json!({"name": "strict", "log": "metadata"}))
        .await;
    let (_, open) = gw.create_key(json!({"name": "open"})).await;
    let canary = "CANARY-CEILING-5e2";
    // (key, header, the mode the record must be kept in)
    let cases = [
        (&strict, None, "metadata"),
        (&strict, Some("full"), "metadata"),
        (&strict, Some("none"), "none"),
        (&open, None, "full"),
        (&open, Some("metadata"), "metadata"),
        (&open, Some("none"), "none"),
    ];
    for (key, header, want) in cases {
        let auth = format!("Bearer {key}");
        let mut h = vec![("authorization", auth.as_str())];
        if let Some(m) = header {
            h.push(("x-switchyard-log", m));
        }
        let body = chat("openai/gpt-test", canary);
        let (s, hh, _) = gw
            .post_raw("/v1/chat/completions", body.to_string().into_bytes(), &h)
            .await;
        assert_eq!(s, 200);
        let r = record(&gw, &id_of(&hh)).await;
        assert_eq!(r["log_mode"], want, "{header:?}: {r}");
        assert_eq!(
            r["request_body"].to_string().contains(canary),
            want == "full",
            "{header:?}: {r}"
        );
    }
    let (s, _, v) = gw
        .post_with(
            "/v1/chat/completions",
            &chat("openai/gpt-test", "x"),
            &[
                ("authorization", &format!("Bearer {open}")),
                ("x-switchyard-log", "everything"),
            ],
        )
        .await;
    assert_eq!(
        (s, v["error"]["param"].as_str()),
        (400, Some("x-switchyard-log")),
        "{v}"
    );
    gw.shutdown().await;
}

/// Canary strings in prompts and answers, under modes `metadata` and
/// `none`, on the stream, error, fallback and disconnect paths: not one in
/// the database file, its WAL, the spool or the logs. Mode `full` keeps
/// them, which shows the search would find them.
#[tokio::test]
async fn bodies_stay_out_of_everything_but_full_mode() {
    let gw = Gw::start(&format!("{PRICED}\n[logs]\nmode = \"full\"\n")).await;
    let canary = "CANARY-7d1e-PROMPT";
    let mut ids = Vec::new();
    for mode in ["metadata", "none"] {
        let h = [
            ("x-switchyard-log", mode),
            ("x-switchyard-metadata", r#"{"secret_tag":"CANARY-TAG-91"}"#),
        ];
        // Plain and streamed, both dialects (the mock echoes the prompt).
        for path in ["/v1/chat/completions", "/v1/messages"] {
            for stream in [false, true] {
                let mut body = chat("openai/gpt-test", &format!("say {canary}"));
                body["stream"] = json!(stream);
                let (_, hh, text) = gw.post_raw(path, body.to_string().into_bytes(), &h).await;
                assert!(text.contains(canary), "the answer echoes it");
                ids.push(id_of(&hh));
            }
        }
        // Error path and fallback path.
        gw.mocks.openai.script([Reply::Json(
            500,
            json!({"error": {"message": format!("failed on {canary}")}}),
            vec![],
        )]);
        let (_, hh, _) = gw
            .post_raw(
                "/v1/chat/completions",
                chat("openai/gpt-test", canary).to_string().into_bytes(),
                &h,
            )
            .await;
        ids.push(id_of(&hh));
        gw.mocks.anthropic.script([Reply::Json(
            503,
            json!({"type": "error", "error": {"type": "overloaded_error", "message": canary}}),
            vec![],
        )]);
        let (_, hh, _) = gw
            .post_raw(
                "/v1/messages",
                chat("smart", canary).to_string().into_bytes(),
                &h,
            )
            .await;
        ids.push(id_of(&hh));
        // Disconnect mid-stream: read the first bytes, drop the connection.
        gw.mocks.openai.script([Reply::Sse {
            pieces: vec![
                (
                    Duration::ZERO,
                    crate::mock::openai_chunk(&format!("{canary} part one ")),
                ),
                (
                    Duration::from_millis(300),
                    crate::mock::openai_chunk(&format!("{canary} part two")),
                ),
                (Duration::ZERO, "data: [DONE]\n\n".into()),
            ],
            abort: false,
        }]);
        let mut body = chat("openai/gpt-test", canary);
        body["stream"] = json!(true);
        let resp = gw
            .http
            .post(gw.url("/v1/chat/completions"))
            .header("x-switchyard-log", mode)
            .header("content-type", "application/json")
            .body(body.to_string())
            .send()
            .await
            .unwrap();
        ids.push(id_of(resp.headers()));
        let mut stream = resp.bytes_stream();
        use futures_util::StreamExt;
        let _ = stream.next().await;
        drop(stream);
    }
    for id in &ids {
        let r = record(&gw, id).await;
        assert!(
            r["request_body"].is_null() && r["response_body"].is_null(),
            "{r}"
        );
        if r["log_mode"] == "none" {
            assert!(
                r["metadata"].get("secret_tag").is_none(),
                "mode none keeps no request tags: {r}"
            );
        }
    }
    // Every byte at rest, as it is (no checkpoint, no vacuum): the database
    // file, its WAL, the spool.
    let at_rest = || {
        let db = std::fs::read(gw.dir.path().join("switchyard.db")).unwrap();
        let wal = std::fs::read(gw.dir.path().join("switchyard.db-wal")).unwrap_or_default();
        let spool = switchyard::log_store::spool::Spool::raw_bytes(&gw.dir.path().join("spool"));
        (db, wal, spool)
    };
    let hits = |bytes: &[u8]| {
        bytes
            .windows(canary.len())
            .filter(|w| *w == canary.as_bytes())
            .count()
    };
    let (db, wal, spool) = at_rest();
    assert!(
        !wal.is_empty(),
        "the records are in the WAL, not yet checkpointed"
    );
    assert_eq!(hits(&db), 0, "database file");
    assert_eq!(hits(&wal), 0, "WAL");
    assert_eq!(hits(&spool), 0, "spool");
    assert!(!logs().contains(canary), "log lines");
    // One in mode full, as the control: the same search finds it.
    let (_, hh, _) = gw
        .post_raw(
            "/v1/chat/completions",
            chat("openai/gpt-test", canary).to_string().into_bytes(),
            &[],
        )
        .await;
    let full_id = id_of(&hh);
    let full = record(&gw, &full_id).await;
    assert!(full["request_body"].as_str().unwrap().contains(canary));
    assert!(full["response_body"].as_str().unwrap().contains(canary));
    let (db, wal, spool) = at_rest();
    assert!(
        hits(&db) + hits(&wal) > 0,
        "the control row is found at rest"
    );
    assert!(hits(&spool) > 0, "and in the spool");
    assert!(!logs().contains(canary), "log lines");
    gw.shutdown().await;
}

#[tokio::test]
async fn retention_deletes_old_records_and_older_bodies() {
    use sqlx::Row;
    let gw = Gw::start("[logs]\nretain_days = 10\nbody_retain_days = 2\n").await;
    let day = 86_400_000i64;
    let now = switchyard::clock::unix_ms();
    let entries: Vec<switchyard::log_store::Entry> = [(1, "recent"), (5, "bodiless"), (20, "gone")]
        .iter()
        .map(|(age, id)| {
            switchyard::log_store::Entry::Begin(switchyard::log_store::Begin {
                id: (*id).into(),
                time_ms: now - age * day,
                instance: "i".into(),
                key_id: None,
                route: None,
                requested_model: "m".into(),
                dialect: "openai".into(),
                stream: false,
                log_mode: switchyard::config::LogMode::Full,
                est_input_tokens: 1,
                metadata: [("t".to_string(), json!("v"))].into_iter().collect(),
                request_body: Some("body".into()),
                hold_usd: None,
                trace_id: None,
            })
        })
        .collect();
    let g = &gw.running.gateway;
    switchyard::log_store::writer::write_batch(g, &entries)
        .await
        .unwrap();
    let pool = match &g.storage {
        switchyard::storage::Storage::Sqlite(p) => p,
        _ => unreachable!(),
    };
    sqlx::query("UPDATE requests SET state = 'complete'")
        .execute(pool)
        .await
        .unwrap();
    switchyard::log_store::writer::retention(g).await.unwrap();
    // The deleted record's tags went with it; the others' stay.
    let tagged: Vec<String> =
        sqlx::query_scalar("SELECT request_id FROM request_tags ORDER BY request_id")
            .fetch_all(pool)
            .await
            .unwrap();
    assert_eq!(tagged, ["bodiless", "recent"]);
    // Clearing bodies reads the records that have one, not every old one.
    let plan: String = sqlx::query(
        "EXPLAIN QUERY PLAN SELECT id FROM requests WHERE time_ms < ? AND (request_body IS NOT NULL OR response_body IS NOT NULL) LIMIT ?",
    )
    .bind(now)
    .bind(10)
    .fetch_one(pool)
    .await
    .unwrap()
    .get(3);
    assert!(plan.contains("requests_bodies"), "{plan}");
    let (_, v) = gw.admin_call("GET", "/admin/v1/logs", None).await;
    let rows: Vec<(&str, bool)> = v["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["id"].as_str().unwrap(), r["request_body"].is_null()))
        .collect();
    assert_eq!(rows, [("recent", false), ("bodiless", true)]);
    gw.shutdown().await;
}

/// OpenTelemetry: one span per request and one per attempt, with the GenAI
/// attributes, posted as OTLP JSON; no body, no tag.
#[tokio::test]
async fn traces_follow_the_genai_conventions() {
    use std::sync::{Arc, Mutex};
    let got: Arc<Mutex<Vec<Value>>> = Arc::default();
    let sink = got.clone();
    let app = axum::Router::new().route(
        "/v1/traces",
        axum::routing::post(move |body: axum::body::Bytes| {
            let sink = sink.clone();
            async move {
                sink.lock()
                    .unwrap()
                    .push(serde_json::from_slice(&body).unwrap());
                "{}"
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let collector = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/sy.db", dir.path().display());
    let mocks = start_mocks().await;
    // The same OpenAI server a second time, configured to receive the
    // caller's trace context; `openai` itself is not.
    let extra = format!(
        r#"{PRICED}
[[providers]]
name = "traced"
kind = "openai"
base_url = "{}"
api_key_env = "MOCK_OPENAI_KEY"
models = ["gpt-test"]
propagate_trace = true

[[routes]]
name = "traced-route"
targets = ["anthropic/claude-test", "traced/gpt-test"]
"#,
        mocks.openai.base_url()
    );
    let gw = Gw::start_env(
        mocks,
        "",
        &extra,
        &url,
        dir,
        &[("OTEL_EXPORTER_OTLP_ENDPOINT", &collector)],
    )
    .await;
    let spans_of = |trace: &str, n: usize| {
        let got = got.clone();
        let trace = trace.to_owned();
        async move {
            let started = std::time::Instant::now();
            loop {
                let all: Vec<Value> = got
                    .lock()
                    .unwrap()
                    .iter()
                    .flat_map(|b| {
                        b["resourceSpans"][0]["scopeSpans"][0]["spans"]
                            .as_array()
                            .cloned()
                            .unwrap_or_default()
                    })
                    .filter(|s| s["traceId"] == trace.as_str())
                    .collect();
                if all.len() >= n || started.elapsed() > Duration::from_secs(5) {
                    break all;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    };
    let attr = |s: &Value, k: &str| -> Value {
        s["attributes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["key"] == k)
            .map(|a| a["value"].clone())
            .unwrap_or(Value::Null)
    };
    let anthropic_fails = || {
        gw.mocks.anthropic.script([Reply::Json(
            500,
            json!({"type": "error", "error": {"type": "api_error", "message": "x"}}),
            vec![],
        )])
    };

    // 1. The caller's trace: its span is the request span's parent, each
    // attempt a child of the request span; the provider that propagates
    // gets the succeeding attempt's span as its parent, the other nothing.
    const CALLER_TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
    const CALLER_SPAN: &str = "00f067aa0ba902b7";
    anthropic_fails();
    let (s, h, _) = gw
        .post_with(
            "/v1/chat/completions",
            &chat("traced-route", "SPAN-CANARY"),
            &[
                ("x-switchyard-metadata", r#"{"team":"t"}"#),
                (
                    "traceparent",
                    &format!("00-{CALLER_TRACE}-{CALLER_SPAN}-01"),
                ),
                ("tracestate", "vendor=opaque-value"),
            ],
        )
        .await;
    assert_eq!(s, 200);
    let id = id_of(&h);
    let spans = spans_of(CALLER_TRACE, 3).await;
    let text = serde_json::to_string(&spans).unwrap();
    assert!(
        !text.contains("SPAN-CANARY") && !text.contains("\"team\""),
        "no bodies or tags: {text}"
    );
    let root = spans
        .iter()
        .find(|s| s["parentSpanId"] == CALLER_SPAN)
        .unwrap_or_else(|| panic!("the request span is the caller's child: {text}"));
    assert_eq!(root["kind"], 2);
    assert_eq!(
        attr(root, "switchyard.request_id")["stringValue"],
        id.as_str()
    );
    assert_eq!(
        attr(root, "gen_ai.request.model")["stringValue"],
        "traced-route"
    );
    assert_eq!(
        attr(root, "gen_ai.response.model")["stringValue"],
        "gpt-test"
    );
    assert_eq!(attr(root, "gen_ai.provider.name")["stringValue"], "openai");
    assert_eq!(attr(root, "gen_ai.usage.output_tokens")["intValue"], "7");
    let children: Vec<&Value> = spans
        .iter()
        .filter(|s| s["parentSpanId"] == root["spanId"])
        .collect();
    assert_eq!(children.len(), 2, "one span per attempt: {text}");
    assert_eq!(
        attr(children[0], "gen_ai.provider.name")["stringValue"],
        "anthropic"
    );
    assert_eq!(attr(children[0], "error.type")["stringValue"], "server");
    assert_eq!(children[1]["kind"], 3);
    // What the upstream received joins it to the same trace.
    let sent = gw.mocks.openai.last();
    assert_eq!(
        sent.headers["traceparent"].to_str().unwrap(),
        format!(
            "00-{CALLER_TRACE}-{}-01",
            children[1]["spanId"].as_str().unwrap()
        ),
        "the upstream's parent is the attempt's span"
    );
    assert_eq!(sent.headers["tracestate"], "vendor=opaque-value");
    assert!(
        gw.mocks.anthropic.requests().iter().all(
            |r| !r.headers.contains_key("traceparent") && !r.headers.contains_key("tracestate")
        ),
        "a provider not configured to receive it learns nothing of the trace"
    );
    // The record carries the trace beside the request id, and finds it.
    let r = record(&gw, &id).await;
    assert_eq!(r["trace_id"], CALLER_TRACE);
    let (s, v) = gw
        .admin_call(
            "GET",
            &format!("/admin/v1/logs?trace_id={CALLER_TRACE}"),
            None,
        )
        .await;
    assert_eq!(s, 200);
    assert_eq!(v["data"].as_array().unwrap().len(), 1, "{v}");
    assert_eq!(v["data"][0]["id"], id.as_str());

    // 2. No caller trace: the gateway starts one; the record names it; a
    // provider not configured to propagate gets no traceparent.
    anthropic_fails();
    let (s, h, _) = gw
        .post("/v1/chat/completions", &chat("smart", "hello"))
        .await;
    assert_eq!(s, 200);
    let id = id_of(&h);
    let r = record(&gw, &id).await;
    let trace = r["trace_id"].as_str().unwrap().to_owned();
    assert!(trace.len() == 32 && trace != CALLER_TRACE, "{trace}");
    let spans = spans_of(&trace, 3).await;
    let roots: Vec<&Value> = spans
        .iter()
        .filter(|s| s.get("parentSpanId").is_none())
        .collect();
    assert_eq!(roots.len(), 1, "{spans:?}");
    assert_eq!(
        attr(roots[0], "switchyard.request_id")["stringValue"],
        id.as_str()
    );
    assert!(!gw.mocks.openai.last().headers.contains_key("traceparent"));
    // An invalid traceparent is not joined: a new trace.
    let (_, h, _) = gw
        .post_with(
            "/v1/chat/completions",
            &chat("gpt-test", "x"),
            &[("traceparent", "00-zz-00f067aa0ba902b7-01")],
        )
        .await;
    let r = record(&gw, &id_of(&h)).await;
    assert_eq!(r["trace_id"].as_str().unwrap().len(), 32);
    assert!(!r["trace_id"].as_str().unwrap().contains("zz"));
    gw.shutdown().await;
}

/// Usage read from the daily and hourly sums equals usage summed from the records,
/// for every grouping and for ranges that cut hours at both ends, after
/// replayed entries, interrupted requests, and interrupted requests whose
/// end came late.
async fn rollups_match_records(gw: &Gw) {
    use switchyard::log_store::query::{self, Dimension};
    use switchyard::log_store::{Begin, End, Entry, writer};
    let g = &gw.running.gateway;
    let hour = 3_600_000i64;
    let day = 24 * hour;
    let t0 = (switchyard::clock::unix_ms() / hour - 6 * 24) * hour;
    let d0 = (t0 / day + 1) * day;
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    let mut next = |n: u64| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed % n
    };
    let (mut live, mut dead, mut ends_of_dead) = (Vec::new(), Vec::new(), Vec::new());
    for i in 0..600 {
        let mut metadata = serde_json::Map::new();
        if next(4) > 0 {
            metadata.insert("team".into(), json!(["a", "b", "c"][next(3) as usize]));
        }
        if next(2) == 0 {
            metadata.insert("user".into(), json!(format!("u{}", next(5))));
        }
        if next(5) == 0 {
            metadata.insert("n".into(), json!(next(3)));
        }
        let time_ms = t0 + next(5 * day as u64) as i64;
        let is_dead = next(6) == 0;
        let begin = Begin {
            id: format!("req_{i}"),
            time_ms,
            instance: if is_dead { "dead" } else { "live" }.into(),
            key_id: [None, Some("key_1".to_string()), Some("key_2".to_string())][next(3) as usize]
                .clone(),
            route: [None, Some("smart".to_string())][next(2) as usize].clone(),
            requested_model: "openai/gpt-test".into(),
            dialect: "openai".into(),
            stream: false,
            log_mode: switchyard::config::LogMode::Metadata,
            est_input_tokens: 10 + next(100),
            metadata,
            request_body: None,
            hold_usd: None,
            trace_id: None,
        };
        let status = [200, 200, 200, 429, 503][next(5) as usize];
        let end = End {
            id: begin.id.clone(),
            time_ms: time_ms + 500,
            provider: Some(["openai", "anthropic"][next(2) as usize].into()),
            model: Some(["gpt-test", "claude-test"][next(2) as usize].into()),
            status,
            latency_ms: 12.0,
            input_tokens: (status == 200).then(|| next(1000)),
            output_tokens: (status == 200).then(|| next(500)),
            cached_tokens: (next(3) == 0).then(|| next(50)),
            cost_usd: (status == 200).then(|| next(10_000) as f64 / 1e6),
            saved_usd: (next(10) == 0).then_some(0.001),
            cache: "BYPASS".into(),
            ..Default::default()
        };
        if is_dead {
            dead.push(Entry::Begin(begin));
            if next(2) == 0 {
                ends_of_dead.push(Entry::End(end));
            }
        } else {
            live.push(Entry::Begin(begin));
            // A few stay in flight: not counted until they finish.
            if next(20) > 0 {
                live.push(Entry::End(end));
            }
        }
    }
    // The writer commits a batch in several transactions: a request's
    // begin and its end may land in different ones.
    for part in live.chunks(37) {
        writer::write_batch(g, part).await.unwrap();
    }
    // A spool replayed after a crash adds nothing twice.
    writer::write_batch(g, &live[..live.len() / 2])
        .await
        .unwrap();
    writer::write_batch(g, &dead).await.unwrap();
    let settled = writer::settle_interrupted(g, Some("dead")).await.unwrap();
    assert_eq!(settled, dead.len());
    writer::write_batch(g, &ends_of_dead).await.unwrap();
    writer::write_batch(g, &ends_of_dead).await.unwrap();

    let tag = |t: &str| Dimension::Tag(t.into());
    let groupings = [
        vec![],
        vec![Dimension::Column("provider")],
        vec![Dimension::Column("key_id"), Dimension::Column("status")],
        vec![tag("team")],
        vec![tag("team"), Dimension::Column("model")],
        vec![Dimension::Column("route"), tag("user")],
        vec![tag("n")],
        // Two tags and more: the sums of whole tag sets.
        vec![tag("team"), tag("user")],
        vec![
            tag("user"),
            Dimension::Column("model"),
            tag("n"),
            tag("team"),
        ],
    ];
    let ranges = [
        (None, None),
        (Some(t0 + 3 * hour + 1234), Some(t0 + 100 * hour + 999)),
        (Some(d0), Some(d0 + 2 * day)),
        (Some(d0 - 3 * hour), Some(d0 + 2 * day + 5 * hour + 17)),
        (Some(t0 + 5 * hour), Some(t0 + 9 * hour)),
        (Some(t0 + 5 * hour + 1), None),
        (None, Some(t0 + 20 * hour - 1)),
        (Some(t0 + 2 * hour + 10), Some(t0 + 2 * hour + 20_000)),
    ];
    let keyed =
        |rows: Vec<query::UsageRow>| -> std::collections::BTreeMap<String, query::UsageRow> {
            rows.into_iter()
                .map(|r| {
                    (
                        format!(
                            "{:?} {}",
                            r.bucket,
                            serde_json::to_string(&r.group).unwrap()
                        ),
                        r,
                    )
                })
                .collect()
        };
    let mut compared = 0;
    for group_by in &groupings {
        for (since, until) in ranges {
            for bucket in [None, Some(hour), Some(day), Some(60_000)] {
                let fast = keyed(
                    query::usage(&g.storage, group_by, since, until, bucket)
                        .await
                        .unwrap(),
                );
                let slow = keyed(
                    query::usage_from_records(&g.storage, group_by, since, until, bucket)
                        .await
                        .unwrap(),
                );
                let what = format!("{group_by:?} {since:?}..{until:?} per {bucket:?}");
                assert_eq!(
                    fast.keys().collect::<Vec<_>>(),
                    slow.keys().collect::<Vec<_>>(),
                    "{what}"
                );
                for (k, a) in &fast {
                    let b = &slow[k];
                    assert_eq!(
                        (
                            a.requests,
                            a.errors,
                            a.input_tokens,
                            a.output_tokens,
                            a.cached_tokens
                        ),
                        (
                            b.requests,
                            b.errors,
                            b.input_tokens,
                            b.output_tokens,
                            b.cached_tokens
                        ),
                        "{what} {k}"
                    );
                    assert!(
                        (a.cost_usd - b.cost_usd).abs() < 1e-9
                            && (a.saved_usd - b.saved_usd).abs() < 1e-9,
                        "{what} {k}"
                    );
                }
                compared += fast.len();
            }
        }
    }
    assert!(compared > 1000, "{compared} groups compared");
    let total = query::usage(&g.storage, &[], None, None, None)
        .await
        .unwrap();
    let finished = live.iter().filter(|e| matches!(e, Entry::End(_))).count() + dead.len();
    assert_eq!(total[0].requests as usize, finished);

    // The same records paged by tags (the tag index drives the page):
    // every match once, newest first, whatever the page size.
    let begins: Vec<&Begin> = live
        .iter()
        .chain(&dead)
        .filter_map(|e| match e {
            Entry::Begin(b) => Some(b),
            _ => None,
        })
        .collect();
    let filters = [
        (vec![("team", "a")], None, None),
        (vec![("team", "b"), ("user", "u1")], None, None),
        // Bounds relative to t0, not to a day boundary: the records' times
        // are fixed relative to t0, so the count matched is too, whatever
        // the time of day the test runs at.
        (
            vec![("user", "u2"), ("team", "a")],
            Some(t0 + hour),
            Some(t0 + 4 * day),
        ),
        (vec![("n", "2")], Some(t0 + 30 * hour), None),
    ];
    for (tags, since, until) in filters {
        let mut want: Vec<&&Begin> = begins
            .iter()
            .filter(|b| {
                tags.iter().all(|(t, v)| {
                    b.metadata
                        .get(*t)
                        .map(switchyard::log_store::writer::tag_value)
                        == Some((*v).to_owned())
                }) && since.is_none_or(|s| b.time_ms >= s)
                    && until.is_none_or(|u| b.time_ms < u)
            })
            .collect();
        want.sort_by(|a, b| (b.time_ms, &b.id).cmp(&(a.time_ms, &a.id)));
        let want: Vec<&str> = want.iter().map(|b| b.id.as_str()).collect();
        assert!(want.len() >= 5, "{tags:?}: {} records", want.len());
        let f = query::LogFilter {
            tags: tags
                .iter()
                .map(|(t, v)| ((*t).into(), (*v).into()))
                .collect(),
            since,
            until,
            ..Default::default()
        };
        for limit in [1, 7, 500] {
            let (mut got, mut cursor) = (Vec::new(), None);
            loop {
                let (page, next) = query::list(&g.storage, &f, cursor.as_deref(), limit)
                    .await
                    .unwrap();
                got.extend(page.into_iter().map(|r| r.id));
                match next {
                    Some(c) => cursor = Some(c),
                    None => break,
                }
            }
            assert_eq!(got, want, "{tags:?} {since:?}..{until:?} by {limit}");
        }
    }
}

#[tokio::test]
async fn usage_sums_match_records_on_sqlite() {
    let gw = Gw::start("").await;
    rollups_match_records(&gw).await;
    gw.shutdown().await;
}

#[tokio::test]
async fn usage_sums_match_records_on_postgres() {
    let Some(pg) = postgres_url().await else {
        return;
    };
    let gw = Gw::start_on(
        start_mocks().await,
        "",
        "",
        &pg,
        tempfile::tempdir().unwrap(),
    )
    .await;
    rollups_match_records(&gw).await;
    gw.shutdown().await;
}

/// `--log-format json` (here through SWITCHYARD_LOG_FORMAT): every line the
/// process writes, banner and shutdown included, at trace level, is one
/// JSON object; a request's lines carry its request id and the caller's
/// trace id; no provider key, admin token, Switchyard key or body appears.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_logs_parse_line_by_line_and_carry_no_secret() {
    use crate::binary::{BIN, Binary};
    const TOKEN: &str = "json-logs-admin-token-canary-0123456789";
    const BODY: &str = "BODY-CANARY-5b1f0c";
    const TRACE: &str = "0af7651916cd43dd8448eb211c80319c";
    let mocks = start_mocks().await;
    let dir = tempfile::tempdir().unwrap();
    let config = crate::binary::config_file(
        dir.path(),
        &mocks,
        &format!("[logs]\nmode = \"full\"\n{PRICED}"),
    );
    let env = crate::binary::env_with(&[
        ("SWITCHYARD_ADMIN_TOKEN", TOKEN),
        ("SWITCHYARD_LOG_FORMAT", "json"),
    ]);
    let bin = Binary::start(&config, &env);
    let http = reqwest::Client::builder().no_proxy().build().unwrap();
    // A call whose first attempt fails (an info line about it), streamed
    // and whole, with the caller's trace; one with a key that is none of
    // ours; an admin call.
    for stream in [false, true] {
        mocks.anthropic.script([Reply::Json(
            500,
            json!({"type": "error", "error": {"type": "api_error", "message": "x"}}),
            vec![],
        )]);
        let mut body = chat("smart", BODY);
        body["stream"] = json!(stream);
        let r = http
            .post(format!("{}/v1/chat/completions", bin.base))
            .header("traceparent", format!("00-{TRACE}-b7ad6b7169203331-01"))
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        let _ = r.text().await.unwrap();
    }
    let r = http
        .post(format!("{}/v1/chat/completions", bin.base))
        .bearer_auth("sy-canary-not-a-key-0123456789")
        .json(&chat("smart", BODY))
        .send()
        .await
        .unwrap();
    let _ = r.text().await.unwrap();
    let r = http
        .get(format!("{}/admin/v1/logs", bin.admin))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let text = bin.stop();

    let lines: Vec<Value> = text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let v: Value =
                serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}"));
            assert!(
                v.is_object() && v["level"].is_string() && v["timestamp"].is_string(),
                "{l}"
            );
            v
        })
        .collect();
    assert!(lines.len() > 20, "trace level writes plenty: {text}");
    assert_no_canary(&text);
    for secret in [TOKEN, BODY, "sy-canary-not-a-key"] {
        assert!(!text.contains(secret), "{secret} leaked: {text}");
    }
    let banner = lines.iter().find(|v| v["message"] == "serving").unwrap();
    assert!(banner["config"].as_str().unwrap().contains("openai"));
    assert!(lines.iter().any(|v| v["message"] == "shutting down"));
    let failed: Vec<&Value> = lines
        .iter()
        .filter(|v| v["message"] == "Attempt failed")
        .collect();
    assert_eq!(failed.len(), 2, "{text}");
    for v in failed {
        assert_eq!(v["trace_id"], TRACE);
        assert_eq!(v["request_id"].as_str().unwrap().len(), 36);
        assert_eq!(v["target"], "switchyard::pipeline::attempts");
    }

    // A configuration that does not load: the error as JSON too, naming
    // the key at fault; a bad SWITCHYARD_LOG_FORMAT is itself the error.
    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, "[server]\nlisten = \"nowhere\"\n").unwrap();
    let out = std::process::Command::new(BIN)
        .args(["serve", "--log-format", "json", "--config"])
        .arg(&bad)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8(out.stderr).unwrap();
    let v: Value = serde_json::from_str(err.trim()).unwrap_or_else(|e| panic!("{e}: {err}"));
    assert_eq!(v["level"], "ERROR");
    assert!(
        v["message"].as_str().unwrap().contains("server.listen"),
        "{v}"
    );
    let out = std::process::Command::new(BIN)
        .args(["serve", "--config"])
        .arg(&config)
        .env("SWITCHYARD_LOG_FORMAT", "yaml")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(
        err.starts_with("error: ") && err.contains("SWITCHYARD_LOG_FORMAT") && err.contains("yaml"),
        "{err}"
    );
}

/// Postgres keeps request records in one partition per UTC day: a record
/// lands in its day's, the next days' wait ready, and retention drops whole
/// days (their records with them).
#[tokio::test]
async fn postgres_records_live_in_day_partitions_that_retention_drops() {
    use switchyard::log_store::partitions::{self, DAY_MS};
    let Some(pg) = postgres_url().await else {
        return;
    };
    let gw = Gw::start_on(
        start_mocks().await,
        "",
        "",
        &pg,
        tempfile::tempdir().unwrap(),
    )
    .await;
    let (s, h, v) = gw
        .post("/v1/chat/completions", &chat("openai/gpt-test", "hello"))
        .await;
    assert_eq!(s, 200, "{v}");
    let id = h["x-switchyard-request-id"].to_str().unwrap().to_owned();
    let rec = record(&gw, &id).await;
    let day = rec["time_ms"].as_i64().unwrap().div_euclid(DAY_MS);
    let storage = &gw.running.gateway.storage;
    let days = partitions::days(storage).await.unwrap();
    assert!(
        days.contains(&day) && days.contains(&(day + 1)) && days.contains(&(day + 2)),
        "{days:?}"
    );
    let switchyard::storage::Storage::Postgres(p) = storage else {
        panic!("Postgres expected");
    };
    let (home,): (String,) =
        sqlx::query_as("SELECT tableoid::regclass::text FROM requests WHERE id = $1")
            .bind(&id)
            .fetch_one(p)
            .await
            .unwrap();
    assert_eq!(home, format!("requests_d{day}"));
    // Retention up to the end of that day drops it, record and all.
    let dropped = partitions::drop_before(storage, (day + 1) * DAY_MS)
        .await
        .unwrap();
    assert!(dropped >= 1);
    let (n,): (i64,) = sqlx::query_as("SELECT count(*) FROM requests WHERE id = $1")
        .bind(&id)
        .fetch_one(p)
        .await
        .unwrap();
    assert_eq!(n, 0);
    assert!(!partitions::days(storage).await.unwrap().contains(&day));
    // Made again when needed; a record of a day without one goes to the
    // default partition rather than failing.
    assert!(partitions::ensure(storage, day * DAY_MS + 1).await.unwrap() >= 1);
    gw.shutdown().await;
}

/// With two tags the rarer one drives the page (it is counted first), and
/// the pages are the same whichever order the tags were given in, on both
/// backends.
#[tokio::test]
async fn two_tags_page_the_same_in_either_order() {
    use switchyard::log_store::query::{self, LogFilter};
    use switchyard::storage::Storage;
    let dir = tempfile::tempdir().unwrap();
    let mut stores = vec![
        Storage::connect(&format!("sqlite://{}/t.db", dir.path().display()))
            .await
            .unwrap(),
    ];
    if let Some(url) = postgres_url().await {
        stores.push(Storage::connect(&url).await.unwrap());
    }
    let now = switchyard::clock::unix_ms();
    for s in &stores {
        s.migrate().await.unwrap();
        switchyard::log_store::partitions::ensure(s, now)
            .await
            .unwrap();
        // 120 records a second apart: team=a on all, user=u7 on a tenth.
        for i in 0..120i64 {
            let id = format!("r{i:03}");
            let t = now - 1000 * i;
            let mut sql = vec![(
                "INSERT INTO requests (id, time_ms, instance, state, requested_model, dialect, stream, log_mode, metadata) \
                 VALUES (?, ?, 'i', 'complete', 'm', 'openai', 0 = 1, 'metadata', '{}')",
                None,
            )];
            sql.push((
                "INSERT INTO request_tags (request_id, tag, value, time_ms) VALUES (?, ?, ?, ?)",
                Some(("team", "a")),
            ));
            if i % 10 == 3 {
                sql.push((
                    "INSERT INTO request_tags (request_id, tag, value, time_ms) VALUES (?, ?, ?, ?)",
                    Some(("user", "u7")),
                ));
            }
            for (q, tag) in sql {
                match s {
                    Storage::Sqlite(p) => {
                        let q = sqlx::query(q).bind(&id);
                        let q = match tag {
                            None => q.bind(t),
                            Some((k, v)) => q.bind(k).bind(v).bind(t),
                        };
                        q.execute(p).await.unwrap();
                    }
                    Storage::Postgres(p) => {
                        let q = switchyard::storage::pg(q);
                        let q = sqlx::query(&q).bind(&id);
                        let q = match tag {
                            None => q.bind(t),
                            Some((k, v)) => q.bind(k).bind(v).bind(t),
                        };
                        q.execute(p).await.unwrap();
                    }
                }
            }
        }
        let expected: Vec<String> = (0..120)
            .filter(|i| i % 10 == 3)
            .map(|i| format!("r{i:03}"))
            .collect();
        let team = ("team".to_owned(), "a".to_owned());
        let user = ("user".to_owned(), "u7".to_owned());
        for tags in [
            vec![team.clone(), user.clone()],
            vec![user.clone(), team.clone()],
        ] {
            let f = LogFilter {
                tags,
                ..Default::default()
            };
            let mut ids = Vec::new();
            let mut cursor = None;
            loop {
                let (page, next) = query::list(s, &f, cursor.as_deref(), 5).await.unwrap();
                ids.extend(page.iter().map(|r| r.id.clone()));
                match next {
                    Some(c) => cursor = Some(c),
                    None => break,
                }
            }
            assert_eq!(ids, expected, "{:?}", f.tags);
        }
    }
}
