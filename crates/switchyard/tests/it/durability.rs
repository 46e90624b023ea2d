//! Records that are never lost: the real binary killed with SIGKILL under
//! load and restarted, and a database outage under load.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rand::{Rng, SeedableRng};
use serde_json::{Value, json};
use sqlx::Row;
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

use crate::binary::Binary;
use crate::harness::*;
use crate::mock::Reply;

/// Request ids the upstream mocks saw (the gateway sends its id upstream).
fn upstream_ids(m: &Mocks) -> HashSet<String> {
    [&m.openai, &m.anthropic, &m.gemini, &m.compat]
        .iter()
        .flat_map(|m| m.requests())
        .filter_map(|r| {
            r.headers
                .get("x-switchyard-request-id")
                .map(|v| v.to_str().unwrap().to_owned())
        })
        .collect()
}

/// Sends requests from `workers` tasks until `stop`; returns the ids of the
/// responses that completed (the client saw all of them).
async fn load(base: String, workers: usize, stop: CancellationToken, seed: u64) -> Vec<String> {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let http = reqwest::Client::builder().no_proxy().build().unwrap();
    let mut tasks = Vec::new();
    for w in 0..workers {
        let (base, stop, seen, http) = (base.clone(), stop.clone(), seen.clone(), http.clone());
        tasks.push(tokio::spawn(async move {
            let mut rng = rand::rngs::StdRng::seed_from_u64(seed * 100 + w as u64);
            while !stop.is_cancelled() {
                let model = [
                    "openai/gpt-test",
                    "anthropic/claude-test",
                    "google/gemini-test",
                ][rng.gen_range(0..3)];
                let stream = rng.gen_bool(0.4);
                let body = json!({"model": model, "stream": stream, "max_tokens": 8,
                                  "messages": [{"role": "user", "content": "durable"}]});
                let r = http
                    .post(format!("{base}/v1/chat/completions"))
                    .header("content-type", "application/json")
                    .body(body.to_string())
                    .send()
                    .await;
                let Ok(r) = r else { continue };
                let id = r
                    .headers()
                    .get("x-switchyard-request-id")
                    .map(|v| v.to_str().unwrap().to_owned());
                let ok = r.status() == 200;
                // Only a response read to its end was seen by the client.
                if let (Ok(text), Some(id)) = (r.text().await, id)
                    && ok
                    && (!stream || text.contains("[DONE]"))
                {
                    seen.lock().unwrap().push(id);
                }
            }
        }));
    }
    for t in tasks {
        let _ = t.await;
    }
    seen.lock().unwrap().clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sigkill_under_load_loses_no_record() {
    let mocks = start_mocks().await;
    // Upstream answers take a little while, so kills land mid-request.
    for m in [&mocks.openai, &mocks.anthropic, &mocks.gemini] {
        m.script((0..100_000).map(|i| {
            Reply::Delay(
                Duration::from_millis(2 + (i % 20) as u64),
                Box::new(Reply::Default),
            )
        }));
    }
    let dir = tempfile::tempdir().unwrap();
    let config = crate::binary::config_file(dir.path(), &mocks, "");
    let env = crate::binary::env_with(&[("RUST_LOG", "warn")]);
    let mut rng = rand::rngs::StdRng::seed_from_u64(42);
    let mut client_seen: Vec<String> = Vec::new();
    let cycles = 10;
    for cycle in 0..cycles {
        let bin = Binary::start(&config, &env);
        let stop = CancellationToken::new();
        let load = tokio::spawn(load(bin.base.clone(), 6, stop.clone(), cycle));
        tokio::time::sleep(Duration::from_millis(rng.gen_range(150..700))).await;
        // SIGKILL: no goodbye.
        let pid = bin.child.id().to_string();
        let _ = std::process::Command::new("kill")
            .args(["-KILL", &pid])
            .status();
        stop.cancel();
        client_seen.extend(load.await.unwrap());
        drop(bin);
    }
    // A last, clean start: it drains what the killed ones left and settles
    // their unfinished requests.
    let bin = Binary::start(&config, &env);
    let db = sqlx::SqlitePool::connect(&format!("sqlite://{}/sy.db", dir.path().display()))
        .await
        .unwrap();
    let upstream = upstream_ids(&mocks);
    let started = Instant::now();
    let records: HashMap<String, String> = loop {
        let rows = sqlx::query("SELECT id, state FROM requests")
            .fetch_all(&db)
            .await
            .unwrap();
        let map: HashMap<String, String> = rows
            .iter()
            .map(|r| (r.get::<String, _>(0), r.get::<String, _>(1)))
            .collect();
        let settled = upstream
            .iter()
            .all(|id| map.get(id).is_some_and(|s| s != "begun"));
        if settled || started.elapsed() > Duration::from_secs(20) {
            break map;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let total: i64 = sqlx::query("SELECT COUNT(*) FROM requests")
        .fetch_one(&db)
        .await
        .unwrap()
        .get(0);
    let distinct: i64 = sqlx::query("SELECT COUNT(DISTINCT id) FROM requests")
        .fetch_one(&db)
        .await
        .unwrap()
        .get(0);
    let integrity: String = sqlx::query("PRAGMA integrity_check")
        .fetch_one(&db)
        .await
        .unwrap()
        .get(0);
    let missing_seen: Vec<&String> = client_seen
        .iter()
        .filter(|id| !records.contains_key(*id))
        .collect();
    let unsettled: Vec<&String> = upstream
        .iter()
        .filter(|id| records.get(*id).is_none_or(|s| s == "begun"))
        .collect();
    let interrupted = records.values().filter(|s| *s == "interrupted").count();
    println!(
        "crash durability: {cycles} SIGKILL cycles, {} responses seen by clients, {} upstream calls, {} records ({} interrupted), {} missing, {} duplicates, integrity {integrity}",
        client_seen.len(),
        upstream.len(),
        records.len(),
        interrupted,
        missing_seen.len() + unsettled.len(),
        total - distinct
    );
    assert!(client_seen.len() > 50, "the load ran");
    assert!(
        missing_seen.is_empty(),
        "responses without a record: {missing_seen:?}"
    );
    assert!(
        unsettled.is_empty(),
        "upstream calls without an end or interrupted record: {unsettled:?}"
    );
    assert_eq!(total, distinct);
    assert_eq!(integrity, "ok");
    db.close().await;
    bin.stop();
}

/// One chat call through `base`; the request id the gateway gave it, once
/// its answer is read (None if the connection broke).
async fn one_call(base: String) -> Option<String> {
    let http = reqwest::Client::builder().no_proxy().build().unwrap();
    let r = http
        .post(format!("{base}/v1/chat/completions"))
        .json(&json!({"model": "openai/gpt-test", "max_tokens": 8,
                      "messages": [{"role": "user", "content": "held"}]}))
        .send()
        .await
        .ok()?;
    let id = r
        .headers()
        .get("x-switchyard-request-id")?
        .to_str()
        .ok()?
        .to_owned();
    assert_eq!(r.status(), 200);
    r.text().await.ok()?;
    Some(id)
}

/// The states of the stored records, by id.
async fn states(db: &sqlx::SqlitePool) -> HashMap<String, String> {
    sqlx::query("SELECT id, state FROM requests")
        .fetch_all(db)
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get::<String, _>(0), r.get::<String, _>(1)))
        .collect()
}

/// Polls until the record `id` is in `state` (20 s at most).
async fn wait_for_state(db: &sqlx::SqlitePool, id: &str, state: &str) {
    let started = Instant::now();
    loop {
        let now = states(db).await;
        if now.get(id).map(String::as_str) == Some(state) {
            return;
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "record {id} not {state}: {now:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A call in flight across the writer's rounds has no row yet: its begin
/// waits, in the spool, for its end, and the two are written as one row.
/// A process killed while a begin waits leaves it in the spool (the
/// checkpoint stays before it): the next start writes it and settles it as
/// interrupted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_in_flight_waits_in_the_spool_and_survives_a_kill() {
    let mocks = start_mocks().await;
    mocks.openai.script([
        Reply::Delay(Duration::from_secs(3), Box::new(Reply::Default)),
        Reply::Delay(Duration::from_secs(60), Box::new(Reply::Default)),
    ]);
    // Once the upstream has `n` calls, the writer has had time to read
    // their begins (its rounds are at most 600 ms apart).
    let upstream_has = |n: usize| {
        let mocks = &mocks;
        async move {
            let started = Instant::now();
            while upstream_ids(mocks).len() < n {
                assert!(
                    started.elapsed() < Duration::from_secs(10),
                    "call {n} never went up"
                );
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            tokio::time::sleep(Duration::from_millis(800)).await;
        }
    };
    let dir = tempfile::tempdir().unwrap();
    let config = crate::binary::config_file(dir.path(), &mocks, "");
    let env = crate::binary::env_with(&[("RUST_LOG", "warn")]);
    let bin = Binary::start(&config, &env);
    let db = sqlx::SqlitePool::connect(&format!("sqlite://{}/sy.db", dir.path().display()))
        .await
        .unwrap();
    let first = tokio::spawn(one_call(bin.base.clone()));
    upstream_has(1).await;
    assert_eq!(states(&db).await, HashMap::new(), "no begun row while held");
    let first = first.await.unwrap().expect("the first call is answered");
    wait_for_state(&db, &first, "complete").await;

    let second = tokio::spawn(one_call(bin.base.clone()));
    upstream_has(2).await;
    assert_eq!(states(&db).await.len(), 1, "the second call is held");
    let pid = bin.child.id().to_string();
    let _ = std::process::Command::new("kill")
        .args(["-KILL", &pid])
        .status();
    assert_eq!(second.await.unwrap(), None);
    drop(bin);
    let upstream = upstream_ids(&mocks);
    let held: Vec<&String> = upstream.iter().filter(|id| **id != first).collect();
    assert_eq!(held.len(), 1, "{upstream:?}");

    let bin = Binary::start(&config, &env);
    wait_for_state(&db, held[0], "interrupted").await;
    assert_eq!(states(&db).await.len(), 2);
    db.close().await;
    bin.stop();
}

/// A TCP proxy that can be cut: what the gateway's database connection
/// goes through, so the test can take "the database" away without touching
/// the machine's Postgres.
struct Proxy {
    addr: std::net::SocketAddr,
    up: Arc<Mutex<CancellationToken>>,
}

impl Proxy {
    async fn start(target: std::net::SocketAddr) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let up = Arc::new(Mutex::new(CancellationToken::new()));
        let state = up.clone();
        tokio::spawn(async move {
            loop {
                let Ok((mut client, _)) = listener.accept().await else {
                    continue;
                };
                let token = state.lock().unwrap().clone();
                if token.is_cancelled() {
                    drop(client);
                    continue;
                }
                tokio::spawn(async move {
                    let Ok(mut server) = TcpStream::connect(target).await else {
                        return;
                    };
                    tokio::select! {
                        _ = token.cancelled() => {}
                        _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
                    }
                });
            }
        });
        Proxy { addr, up }
    }

    /// A proxy to the Postgres of `pg` (a test URL), and the URL through it.
    async fn to_postgres(pg: &str) -> (Proxy, String) {
        let (host_port, rest) = pg
            .strip_prefix("postgres://postgres@")
            .unwrap()
            .split_once('/')
            .unwrap();
        let proxy = Proxy::start(host_port.parse().unwrap()).await;
        let via = format!("postgres://postgres@{}/{rest}", proxy.addr);
        (proxy, via)
    }

    /// Cuts every connection and refuses new ones.
    fn cut(&self) {
        self.up.lock().unwrap().cancel();
    }

    fn restore(&self) {
        *self.up.lock().unwrap() = CancellationToken::new();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_database_outage_delays_records_and_loses_none() {
    let Some(pg) = postgres_url().await else {
        return;
    };
    // Route the gateway's Postgres connection through the proxy.
    let (proxy, via) = Proxy::to_postgres(&pg).await;
    let gw = Gw::start_on(
        start_mocks().await,
        "",
        "",
        &via,
        tempfile::tempdir().unwrap(),
    )
    .await;
    let mut ids = Vec::new();
    let send = |gw: &Gw| {
        let url = gw.url("/v1/chat/completions");
        let http = gw.http.clone();
        async move {
            let r = http
                .post(url)
                .header("content-type", "application/json")
                .body(json!({"model": "openai/gpt-test", "messages": [{"role": "user", "content": "hi"}]}).to_string())
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 200, "responses continue during the outage");
            r.headers()["x-switchyard-request-id"]
                .to_str()
                .unwrap()
                .to_owned()
        }
    };
    for _ in 0..20 {
        ids.push(send(&gw).await);
    }
    proxy.cut();
    let outage = Instant::now();
    while outage.elapsed() < Duration::from_secs(3) {
        ids.push(send(&gw).await);
    }
    let pending = gw.running.gateway.recorder.spool.pending();
    assert!(pending > 0, "the spool holds what the database cannot take");
    proxy.restore();
    let restored = Instant::now();
    let db = sqlx::PgPool::connect(&pg).await.unwrap();
    loop {
        let n: i64 = sqlx::query("SELECT COUNT(*) FROM requests WHERE state = 'complete'")
            .fetch_one(&db)
            .await
            .unwrap()
            .get(0);
        if n as usize >= ids.len() || restored.elapsed() > Duration::from_secs(30) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let drain = restored.elapsed();
    let rows = sqlx::query("SELECT id FROM requests WHERE state = 'complete'")
        .fetch_all(&db)
        .await
        .unwrap();
    let got: HashSet<String> = rows.iter().map(|r| r.get::<String, _>(0)).collect();
    let missing = ids.iter().filter(|id| !got.contains(*id)).count();
    println!(
        "database outage: {} requests ({} during a 3 s outage), spool peaked at {pending} bytes, drained {:?} after the database came back, {missing} lost, {} duplicates",
        ids.len(),
        ids.len() - 20,
        drain,
        rows.len() - got.len()
    );
    assert_eq!(missing, 0);
    assert_eq!(rows.len(), got.len());
    db.close().await;
    gw.shutdown().await;
}

/// A gateway on Postgres behind a cut-able proxy, with a spool of a few
/// records and the given choice for when it is full.
async fn gateway_with_small_spool(pg: &str, on_full: &str) -> (Gw, Proxy) {
    let (proxy, via) = Proxy::to_postgres(pg).await;
    let extra = format!("[logs]\nspool_max_bytes = 4096\non_spool_full = \"{on_full}\"\n");
    let gw = Gw::start_on(
        start_mocks().await,
        "",
        &extra,
        &via,
        tempfile::tempdir().unwrap(),
    )
    .await;
    (gw, proxy)
}

async fn chat_status(gw: &Gw) -> (u16, Value) {
    let r = gw
        .http
        .post(gw.url("/v1/chat/completions"))
        .header("content-type", "application/json")
        .body(
            json!({"model": "openai/gpt-test", "messages": [{"role": "user", "content": "hi"}]})
                .to_string(),
        )
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    let body = r.bytes().await.unwrap();
    (status, serde_json::from_slice(&body).unwrap_or(Value::Null))
}

/// The value of the counter `name` at `/metrics`.
async fn counter(gw: &Gw, name: &str) -> u64 {
    let text = gw.metrics().await;
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
        .unwrap_or_else(|| panic!("no {name} in {text}"))
        .trim()
        .parse()
        .unwrap()
}

async fn dropped_metric(gw: &Gw) -> u64 {
    counter(gw, "switchyard_log_records_dropped_total").await
}

/// Past `[logs] backlog_bytes` not yet in the database, a new request waits
/// for the writer's next commit: every call is still answered and recorded,
/// and the wait is counted. With the default bound, calls one after
/// another never wait.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_wait_for_a_writer_that_is_behind() {
    let gw = Gw::start("[logs]\nbacklog_bytes = 1\n").await;
    let calls = 8;
    for _ in 0..calls {
        assert_eq!(chat_status(&gw).await.0, 200);
    }
    let paced = counter(&gw, "switchyard_requests_paced_total").await;
    assert!(
        (1..=calls).contains(&paced),
        "each call after the first finds the last one's record pending: {paced}"
    );
    let started = Instant::now();
    loop {
        let (s, v) = gw
            .admin_call("GET", "/admin/v1/logs?status=200", None)
            .await;
        assert_eq!(s, 200);
        if v["data"].as_array().unwrap().len() == calls as usize {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "records missing: {v}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    gw.shutdown().await;

    let gw = Gw::start("").await;
    for _ in 0..calls {
        assert_eq!(chat_status(&gw).await.0, 200);
    }
    assert_eq!(counter(&gw, "switchyard_requests_paced_total").await, 0);
    gw.shutdown().await;
}

/// With the database gone and the spool full, a call that could not be
/// recorded is never made: 503 before any upstream call. Once the
/// database is back and the spool drained, calls go through again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_spool_refuses_before_any_upstream_call() {
    let Some(pg) = postgres_url().await else {
        return;
    };
    let (gw, proxy) = gateway_with_small_spool(&pg, "refuse").await;
    assert_eq!(chat_status(&gw).await.0, 200);
    proxy.cut();
    let mut answered = 0;
    let refused = loop {
        let (status, body) = chat_status(&gw).await;
        match status {
            200 => answered += 1,
            503 => break body,
            other => panic!("unexpected {other}: {body}"),
        }
        assert!(answered < 100, "a 4 KiB spool never filled");
    };
    assert_eq!(refused["error"]["code"], "unavailable", "{refused}");
    let message = refused["error"]["message"].as_str().unwrap();
    assert!(message.contains("spool is full"), "{message}");
    let upstream = gw.mocks.openai.count();
    for _ in 0..5 {
        assert_eq!(chat_status(&gw).await.0, 503);
    }
    assert_eq!(
        gw.mocks.openai.count(),
        upstream,
        "refused calls never reached the provider"
    );
    assert_eq!(dropped_metric(&gw).await, 0, "refusing drops nothing");
    proxy.restore();
    let back = Instant::now();
    loop {
        if chat_status(&gw).await.0 == 200 {
            break;
        }
        assert!(
            back.elapsed() < Duration::from_secs(30),
            "the spool never drained"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    println!("full spool (refuse): {answered} answered during the outage before the first 503");
    gw.shutdown().await;
}

/// Best-effort: with the spool full, calls go on, what could not be
/// recorded is counted, and a gap record says how many were dropped.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn best_effort_drops_with_a_count_and_a_gap_record() {
    let Some(pg) = postgres_url().await else {
        return;
    };
    let (gw, proxy) = gateway_with_small_spool(&pg, "best-effort").await;
    let db = sqlx::PgPool::connect(&pg).await.unwrap();
    let gaps_before: i64 = sqlx::query("SELECT COUNT(*) FROM requests WHERE state = 'gap'")
        .fetch_one(&db)
        .await
        .unwrap()
        .get(0);
    proxy.cut();
    for _ in 0..60 {
        let (status, body) = chat_status(&gw).await;
        assert_eq!(status, 200, "best-effort never refuses: {body}");
    }
    let dropped = dropped_metric(&gw).await;
    assert!(dropped > 0, "60 calls into a 4 KiB spool dropped nothing");
    proxy.restore();
    let back = Instant::now();
    // The gap is written with the next begin that fits.
    let gap = loop {
        assert_eq!(chat_status(&gw).await.0, 200);
        // Counted first, read after: a gap written between the two reads
        // is then still found.
        let n: i64 = sqlx::query("SELECT COUNT(*) FROM requests WHERE state = 'gap'")
            .fetch_one(&db)
            .await
            .unwrap()
            .get(0);
        let row = sqlx::query(
            "SELECT metadata FROM requests WHERE state = 'gap' ORDER BY time_ms DESC LIMIT 1",
        )
        .fetch_optional(&db)
        .await
        .unwrap();
        if n > gaps_before {
            break row.map(|r| r.get::<String, _>(0)).unwrap();
        }
        assert!(
            back.elapsed() < Duration::from_secs(30),
            "no gap record after the outage"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    // Calls made before the spool drained may have been dropped too: the
    // gap counts every one, as the counter does.
    let gap: Value = serde_json::from_str(&gap).unwrap();
    let total = dropped_metric(&gw).await;
    assert!(total >= dropped);
    assert_eq!(gap["dropped"].as_u64(), Some(total), "{gap}");
    println!(
        "full spool (best-effort): 60 calls answered during the outage, {dropped} dropped; gap record {gap}"
    );
    db.close().await;
    gw.shutdown().await;
}

/// Issue 18, fault 1: two gateways whose SQLite files sit in one folder
/// used to share the default spool (per folder), so the second refused to
/// start. Each database now has its own; and a second process on the same
/// database takes the next free one instead of refusing.
#[tokio::test]
async fn gateways_on_databases_in_one_folder_start_side_by_side() {
    let dir = tempfile::tempdir().unwrap();
    let mocks = start_mocks().await;
    let config = |db: &str| {
        let text = format!(
            "[server]\nlisten = \"127.0.0.1:0\"\nadmin_listen = \"127.0.0.1:0\"\n\
             [storage]\nurl = \"sqlite://{}/{db}\"\n{}",
            dir.path().display(),
            providers_toml(&mocks)
        );
        switchyard::config::Config::parse(&text, None, &env()).unwrap()
    };
    let mut running = Vec::new();
    for db in ["a.db", "b.db", "a.db"] {
        let r = switchyard::server::start(config(db), &env())
            .await
            .unwrap_or_else(|e| panic!("the gateway on {db} did not start: {e:#}"));
        running.push(r);
    }
    for name in ["a-spool", "b-spool", "a-spool-2"] {
        assert!(dir.path().join(name).is_dir(), "{name}");
    }
    let http = reqwest::Client::builder().no_proxy().build().unwrap();
    for r in &running {
        let resp = http
            .post(format!("http://{}/v1/chat/completions", r.addr))
            .json(&json!({"model": "openai/gpt-test", "messages": [{"role": "user", "content": "hi"}]}))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
    }
    for r in running {
        r.shutdown().await;
    }
}

/// Replicas on other hosts (pods) use the same spool path for folders of
/// their own: a starting gateway settles the previous owner of its spool
/// and processes whose heartbeat stopped, never a live replica's calls in
/// flight that happen to share the path (they were marked interrupted
/// during every rolling update before).
#[tokio::test]
async fn a_starting_replica_leaves_live_replicas_calls_alone() {
    let dir_a = tempfile::tempdir().unwrap();
    let dir_b = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/sy.db", dir_a.path().display());
    let a = Gw::start_on(start_mocks().await, "", "", &url, dir_a).await;
    let pool = sqlx::SqlitePool::connect(&url).await.unwrap();
    let spool_b = format!("{}/spool", dir_b.path().display());
    let now = switchyard::clock::unix_ms();
    for (instance, beat, request) in [
        ("replica-on-another-host", now, "req-live"),
        ("replica-gone", now - 120_000, "req-dead"),
    ] {
        sqlx::query("INSERT INTO instances (id, spool, started_ms, beat_ms) VALUES (?, ?, ?, ?)")
            .bind(instance)
            .bind(&spool_b)
            .bind(now - 600_000)
            .bind(beat)
            .execute(&pool)
            .await
            .unwrap();
        sqlx::query(
            "INSERT INTO requests (id, time_ms, instance, state, requested_model, dialect, stream, log_mode) \
             VALUES (?, ?, ?, 'begun', 'openai/gpt-test', 'openai', 0, 'metadata')",
        )
        .bind(request)
        .bind(now - 1_000)
        .bind(instance)
        .execute(&pool)
        .await
        .unwrap();
    }
    let b = Gw::start_on(start_mocks().await, "", "", &url, dir_b).await;
    let state = |id: &'static str| {
        let pool = pool.clone();
        async move {
            sqlx::query_scalar::<_, String>("SELECT state FROM requests WHERE id = ?")
                .bind(id)
                .fetch_one(&pool)
                .await
                .unwrap()
        }
    };
    let started = Instant::now();
    while state("req-dead").await == "begun" {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "a process whose heartbeat stopped is settled"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(state("req-dead").await, "interrupted");
    assert_eq!(
        state("req-live").await,
        "begun",
        "a live replica's call in flight is left to it"
    );
    b.shutdown().await;
    a.shutdown().await;
}
