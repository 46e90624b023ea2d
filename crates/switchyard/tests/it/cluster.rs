//! The loopback cluster: three gateway processes behind HAProxy (Debian's,
//! started here), sharing Postgres and Redis, under a steady load of calls
//! and streams while each replica in turn is stopped (SIGTERM) and started
//! again. No call fails; a stream whose caller left is read to its end
//! through another replica; rate limits and budgets stay exact across all
//! three.

use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::binary::{Binary, env_with, required_env};
use crate::harness::{
    Mocks, assert_no_canary, postgres_url, providers_toml, redis_conn, redis_url, start_mocks,
    within_one_minute,
};
use crate::mock::Gate;

const TOKEN: &str = "test-admin-token-0123456789abcdef";
const REPLICAS: usize = 3;

fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

fn replica_config(
    dir: &std::path::Path,
    i: usize,
    port: u16,
    pg: &str,
    redis: &str,
    mocks: &Mocks,
) -> std::path::PathBuf {
    let file = dir.join(format!("replica-{i}.toml"));
    std::fs::write(
        &file,
        format!(
            "[server]\nlisten = \"127.0.0.1:{port}\"\nadmin_listen = \"127.0.0.1:0\"\nshutdown_grace_ms = 5000\n\
             [storage]\nurl = \"{pg}\"\n[redis]\nurl = \"{redis}\"\n[auth]\nrequire_keys = true\n\
             [logs]\nspool_dir = \"{}/spool-{i}\"\n{}\n\
             [pricing.\"openai/gpt-test\"]\ninput_per_mtok_usd = 1000.0\noutput_per_mtok_usd = 1000.0\n",
            dir.display(),
            providers_toml(mocks)
        ),
    )
    .unwrap();
    file
}

struct Haproxy {
    child: Child,
    base: String,
}

impl Drop for Haproxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// HAProxy in front of `ports`: round robin, `/readyz` checked every 200 ms,
/// a connection refused or an empty answer retried on another replica, and
/// the replica that answered named in `x-served-by`. A check may take up to
/// 2 s (`timeout check`): without it the whole check had to finish within
/// the 200 ms interval, and on a loaded machine all three replicas could
/// miss it at once, leaving HAProxy answering 503 (no server) to every call
/// for a moment (the suite failed so once, 1270 calls of 4597).
fn haproxy(bin: &str, dir: &std::path::Path, ports: &[u16]) -> Haproxy {
    let front = free_port();
    let servers: String = ports
        .iter()
        .enumerate()
        .map(|(i, p)| format!("    server r{i} 127.0.0.1:{p} check\n"))
        .collect();
    let cfg = dir.join("haproxy.cfg");
    std::fs::write(
        &cfg,
        format!(
            "global\n    maxconn 4096\n\
             defaults\n    mode http\n    timeout connect 1s\n    timeout client 30s\n    timeout server 30s\n\
             \x20   retries 3\n    option redispatch\n    retry-on conn-failure empty-response\n\
             frontend fe\n    bind 127.0.0.1:{front}\n    default_backend be\n\
             backend be\n    balance roundrobin\n    option httpchk GET /readyz\n    http-check expect status 200\n\
             \x20   timeout check 2s\n\
             \x20   default-server inter 200ms fall 1 rise 2\n\
             \x20   http-response set-header x-served-by %s\n{servers}"
        ),
    )
    .unwrap();
    let check = Command::new(bin)
        .args(["-c", "-f"])
        .arg(&cfg)
        .output()
        .unwrap();
    assert!(
        check.status.success(),
        "haproxy -c: {}",
        String::from_utf8_lossy(&check.stderr)
    );
    let child = Command::new(bin)
        .args(["-db", "-f"])
        .arg(&cfg)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    Haproxy {
        child,
        base: format!("http://127.0.0.1:{front}"),
    }
}

/// Waits until every replica answers `/readyz` through HAProxy's checks
/// (the load balancer answers 200 from each in turn).
async fn until_all_up(http: &reqwest::Client, lb: &str) {
    let started = Instant::now();
    loop {
        let mut seen = std::collections::BTreeSet::new();
        for _ in 0..12 {
            if let Ok(r) = http.get(format!("{lb}/readyz")).send().await
                && r.status() == 200
                && let Some(s) = r.headers().get("x-served-by")
            {
                seen.insert(s.to_str().unwrap().to_owned());
            }
        }
        if seen.len() == REPLICAS {
            return;
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "replicas not all up: {seen:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn chat(model: &str, stream: bool) -> Value {
    json!({"model": model, "stream": stream, "max_tokens": 10,
        "messages": [{"role": "user", "content": "Say hi"}]})
}

async fn call(http: &reqwest::Client, url: &str, key: &str, body: &Value) -> Result<u16, String> {
    let r = http
        .post(format!("{url}/v1/chat/completions"))
        .bearer_auth(key)
        .json(body)
        .send()
        .await
        .map_err(|e| format!("send: {e:?}"))?;
    let status = r.status().as_u16();
    let text = r.text().await.map_err(|e| format!("read: {e:?}"))?;
    if status == 200 {
        let whole = if body["stream"] == true {
            text.contains("data: [DONE]")
        } else {
            text.contains("\"choices\"")
        };
        if !whole {
            return Err(format!("cut short: {text}"));
        }
    }
    Ok(status)
}

/// `n` calls at once through the load balancer, within one minute's
/// window: (admitted, refused). With a `gate`, the admitted calls wait at
/// the mock until all `n` are decided.
async fn burst(lb: &str, key: &str, n: usize, gate: Option<&Gate>) -> (usize, usize) {
    within_one_minute().await;
    let barrier = Arc::new(tokio::sync::Barrier::new(n));
    let answered = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for _ in 0..n {
        let (lb, key) = (lb.to_owned(), key.to_owned());
        let (barrier, answered) = (barrier.clone(), answered.clone());
        tasks.push(tokio::spawn(async move {
            let http = reqwest::Client::builder().no_proxy().build().unwrap();
            barrier.wait().await;
            let r = call(&http, &lb, &key, &chat("openai/gpt-test", false)).await;
            answered.fetch_add(1, Ordering::SeqCst);
            r
        }));
    }
    if let Some(gate) = gate {
        gate.open_when_decided(n, &answered).await;
    }
    let (mut ok, mut refused) = (0, 0);
    for t in tasks {
        match t.await.unwrap() {
            Ok(200) => ok += 1,
            Ok(429 | 402) => refused += 1,
            other => panic!("unexpected answer {other:?}"),
        }
    }
    (ok, refused)
}

async fn create_key(http: &reqwest::Client, admin: &str, body: Value) -> (String, String) {
    let r = http
        .post(format!("{admin}/admin/v1/keys"))
        .bearer_auth(TOKEN)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let v: Value = r.json().await.unwrap();
    (
        v["id"].as_str().unwrap().to_owned(),
        v["key"].as_str().unwrap().to_owned(),
    )
}

/// A slow stream through the load balancer, left after four events: its
/// request id, the events read, and the replica that served it.
async fn leave_a_stream(lb: &str, key: &str) -> (String, Vec<(u64, String)>, String) {
    let http = reqwest::Client::builder().no_proxy().build().unwrap();
    let r = http
        .post(format!("{lb}/v1/chat/completions"))
        .bearer_auth(key)
        .json(&chat("compat/local-test", true))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let served = r.headers()["x-served-by"].to_str().unwrap().to_owned();
    let (id, first) = crate::streams::read_some(r, 4).await;
    (id, first, served)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_rolling_restart_of_three_replicas_behind_haproxy_fails_no_call() {
    let Some(haproxy_bin) = required_env("SWITCHYARD_HAPROXY") else {
        return;
    };
    let (Some(pg), Some(redis)) = (postgres_url().await, redis_url()) else {
        return;
    };
    let redis = format!("{redis}/8");
    let _: () = redis::cmd("FLUSHDB")
        .query_async(&mut redis_conn(&redis).await)
        .await
        .unwrap();
    let mocks = start_mocks().await;
    let dir = tempfile::tempdir().unwrap();
    let env = env_with(&[("SWITCHYARD_ADMIN_TOKEN", TOKEN)]);
    let ports: Vec<u16> = (0..REPLICAS).map(|_| free_port()).collect();
    let files: Vec<_> = (0..REPLICAS)
        .map(|i| replica_config(dir.path(), i, ports[i], &pg, &redis, &mocks))
        .collect();
    let mut replicas: Vec<Option<Binary>> = Vec::new();
    for f in &files {
        // One at a time: the first migrates the schema.
        replicas.push(Some(Binary::start(f, &env)));
    }
    let lb = haproxy(&haproxy_bin, dir.path(), &ports);
    let http = reqwest::Client::builder().no_proxy().build().unwrap();
    until_all_up(&http, &lb.base).await;
    let admin = replicas[0].as_ref().unwrap().admin.clone();
    let (_, load_key) = create_key(&http, &admin, json!({"name": "load"})).await;
    let (_, rpm_key) = create_key(&http, &admin, json!({"name": "rpm", "rpm": 5})).await;
    // Every replica sees new keys within a second.
    tokio::time::sleep(Duration::from_millis(1200)).await;

    // A rate limit holds across the three.
    let (ok, refused) = burst(&lb.base, &rpm_key, 30, None).await;
    assert_eq!((ok, refused), (5, 25), "rpm=5 over three replicas");

    // Steady load through the load balancer.
    let stop = tokio_util::sync::CancellationToken::new();
    let mut workers = Vec::new();
    for w in 0..6u32 {
        let (lb, key, stop) = (lb.base.clone(), load_key.clone(), stop.clone());
        workers.push(tokio::spawn(async move {
            let http = reqwest::Client::builder().no_proxy().build().unwrap();
            let (mut sent, mut failed) = (0u32, Vec::new());
            while !stop.is_cancelled() {
                let body = chat("openai/gpt-test", (sent + w).is_multiple_of(2));
                match call(&http, &lb, &key, &body).await {
                    Ok(200) => {}
                    other => failed.push(format!("{other:?}")),
                }
                sent += 1;
            }
            (sent, failed)
        }));
    }

    let mut resumed = 0;
    for i in 0..REPLICAS {
        tokio::time::sleep(Duration::from_millis(300)).await;
        // A caller leaves a stream; the stream goes on generating.
        mocks
            .compat
            .script([crate::streams::slow_stream(30, Duration::from_millis(30))]);
        let (id, first, served) = leave_a_stream(&lb.base, &load_key).await;
        // Replica i stops (SIGTERM: drain, then exit) and starts again.
        let old = replicas[i].take().unwrap();
        let log = tokio::task::spawn_blocking(move || old.stop())
            .await
            .unwrap();
        assert_no_canary(&log);
        // The stream is read to its end through a replica that neither
        // served it nor is restarting.
        let other = (0..REPLICAS)
            .find(|&j| j != i && format!("r{j}") != served)
            .unwrap();
        let base = replicas[other].as_ref().unwrap().base.clone();
        let r = http
            .get(format!("{base}/v1/streams/{id}"))
            .bearer_auth(&load_key)
            .header("last-event-id", first.last().unwrap().0.to_string())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "resume {id} on r{other}");
        let rest = crate::streams::read_all(r).await;
        let joined: Vec<(u64, String)> = first.into_iter().chain(rest).collect();
        let ids: Vec<u64> = joined.iter().map(|(n, _)| *n).collect();
        assert_eq!(ids, (0..ids.len() as u64).collect::<Vec<_>>());
        assert_eq!(
            crate::streams::text_of(&joined),
            (0..30).map(|n| format!("w{n} ")).collect::<String>()
        );
        resumed += 1;
        let file = files[i].clone();
        let env: Vec<(String, String)> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let started = tokio::task::spawn_blocking(move || {
            let env: Vec<(&str, &str)> =
                env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
            Binary::start(&file, &env)
        })
        .await
        .unwrap();
        replicas[i] = Some(started);
        until_all_up(&http, &lb.base).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.cancel();
    let (mut sent, mut failed) = (0, Vec::new());
    for w in workers {
        let (s, f) = w.await.unwrap();
        sent += s;
        failed.extend(f);
    }
    assert!(
        failed.is_empty(),
        "{} of {sent} calls failed: {failed:?}",
        failed.len()
    );
    assert!(sent > 100, "only {sent} calls");

    // A budget holds across the three, after every one of them restarted:
    // room for ten holds, fifty slow calls at once.
    let body_tokens = (chat("openai/gpt-test", false).to_string().len() as f64 / 3.0).ceil();
    let hold = (body_tokens + 10.0) * 1000.0 / 1e6;
    let budget = hold * 10.0 + hold / 2.0;
    let (budget_id, budget_key) = create_key(
        &http,
        &replicas[1].as_ref().unwrap().admin,
        json!({"name": "budget", "budget_usd": budget, "budget_period": "day"}),
    )
    .await;
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let gate = Gate::hold([&mocks.openai], 50);
    let (ok, refused) = burst(&lb.base, &budget_key, 50, Some(&gate)).await;
    assert_eq!(
        (ok, refused),
        (10, 40),
        "a budget for ten holds over three replicas"
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    let shown: Value = http
        .get(format!(
            "{admin}/admin/v1/keys/{budget_id}",
            admin = replicas[2].as_ref().unwrap().admin
        ))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let spent = shown["budget_spent_usd"].as_f64().unwrap();
    assert!(spent <= budget + 1e-9, "spent {spent} of {budget}");

    eprintln!(
        "cluster: 3 replicas behind HAProxy, each restarted in turn: {sent} calls sent, 0 failed; \
         {resumed} left streams read to their end through another replica; rpm=5 burst of 30: 5 admitted; \
         budget for 10 holds, burst of 50: 10 admitted, spent ${spent:.4} of ${budget:.4}"
    );
    for r in replicas.into_iter().flatten() {
        assert_no_canary(&r.stop());
    }
    drop(lb);
}
