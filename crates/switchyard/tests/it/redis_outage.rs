//! Redis going away mid-load and coming back: with `[redis] on_unavailable
//! = "local"` calls keep flowing on per-process limits and budgets, and go
//! back to the shared counts once Redis answers again; with the default
//! (`refuse`) a call under a limited key is refused while it is away, and
//! served again after.

use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde_json::json;

use crate::harness::{Gw, postgres_url, redis_conn, redis_keys, start_mocks};

/// A redis-server of this test's own, on a fixed port, that can be killed
/// and started again.
struct Server {
    bin: String,
    port: u16,
    child: Option<Child>,
}

impl Server {
    fn start(bin: &str) -> Server {
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let mut s = Server {
            bin: bin.to_owned(),
            port,
            child: None,
        };
        s.up();
        s
    }

    fn up(&mut self) {
        let child = Command::new(&self.bin)
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        self.child = Some(child);
        let started = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(started.elapsed() < Duration::from_secs(10));
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn down(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.down();
    }
}

async fn chat(gw: &Gw, key: &str) -> u16 {
    let r = gw
        .http
        .post(gw.url("/v1/chat/completions"))
        .bearer_auth(key)
        .json(&json!({"model": "openai/gpt-test", "max_tokens": 10,
            "messages": [{"role": "user", "content": "Say hi"}]}))
        .send()
        .await
        .unwrap();
    r.status().as_u16()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn calls_flow_on_local_counts_while_redis_is_away_and_return_to_it() {
    let Some(bin) = crate::binary::required_env("SWITCHYARD_REDIS_SERVER") else {
        return;
    };
    let Some(pg) = postgres_url().await else {
        return;
    };
    let mut redis = Server::start(&bin);
    let config = format!(
        "{}\n[redis]\nurl = \"{}\"\non_unavailable = \"local\"\n",
        crate::keys::KEYED,
        redis.url()
    );
    let start = async || {
        Gw::start_on(
            start_mocks().await,
            "",
            &config,
            &pg,
            tempfile::tempdir().unwrap(),
        )
        .await
    };
    let (a, b) = (Arc::new(start().await), Arc::new(start().await));
    let (_, key) = a
        .create_key(
            json!({"name": "load", "rpm": 100000, "budget_usd": 1000.0, "budget_period": "day"}),
        )
        .await;
    tokio::time::sleep(Duration::from_millis(1200)).await;

    let stop = tokio_util::sync::CancellationToken::new();
    let (sent, failed) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let mut workers = Vec::new();
    for w in 0..4 {
        let gw = if w % 2 == 0 { a.clone() } else { b.clone() };
        let (key, stop, sent, failed) = (key.clone(), stop.clone(), sent.clone(), failed.clone());
        workers.push(tokio::spawn(async move {
            while !stop.is_cancelled() {
                if chat(&gw, &key).await != 200 {
                    failed.fetch_add(1, Ordering::Relaxed);
                }
                sent.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    redis.down();
    let at_outage = sent.load(Ordering::Relaxed);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let during = sent.load(Ordering::Relaxed) - at_outage;
    redis.up();
    // The connections find Redis again; the counts go back to it.
    let url = redis.url();
    let started = Instant::now();
    loop {
        let mut conn = redis_conn(&url).await;
        if !redis_keys(&mut conn, "sy:rl:*").await.is_empty() {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "the limiter never went back to Redis"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.cancel();
    for w in workers {
        w.await.unwrap();
    }
    let (sent, failed) = (sent.load(Ordering::Relaxed), failed.load(Ordering::Relaxed));
    assert_eq!(failed, 0, "{failed} of {sent} calls failed");
    assert!(during > 20, "only {during} calls while Redis was away");
    let mut conn = redis_conn(&url).await;
    assert!(
        !redis_keys(&mut conn, "sy:budget:*").await.is_empty(),
        "budgets back in Redis"
    );
    eprintln!(
        "redis outage (on_unavailable = local): {sent} calls over two gateways, 0 failed, {during} of them while Redis was down for 1.5 s; counts back in Redis after it returned"
    );
    for gw in [a, b] {
        Arc::into_inner(gw).unwrap().shutdown().await;
    }

    // The default refuses what it cannot count, and serves it again after.
    let config = format!(
        "{}\n[redis]\nurl = \"{}\"\n",
        crate::keys::KEYED,
        redis.url()
    );
    let gw = Gw::start_on(
        start_mocks().await,
        "",
        &config,
        &pg,
        tempfile::tempdir().unwrap(),
    )
    .await;
    let (_, limited) = gw.create_key(json!({"name": "limited", "rpm": 1000})).await;
    let (_, open) = gw.create_key(json!({"name": "open"})).await;
    assert_eq!(chat(&gw, &limited).await, 200);
    redis.down();
    let refused = chat(&gw, &limited).await;
    assert!(
        matches!(refused, 429 | 503),
        "refused while Redis is away: {refused}"
    );
    assert_eq!(
        chat(&gw, &open).await,
        200,
        "a key without limits needs no Redis"
    );
    redis.up();
    let started = Instant::now();
    while chat(&gw, &limited).await != 200 {
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "never served again"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    gw.shutdown().await;
}
