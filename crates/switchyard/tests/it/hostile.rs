//! Hostile and careless clients (issue 18): connections that never send a
//! request head, or go quiet after an answer, are closed after
//! `header_read_timeout_ms`; request heads and bodies trickled byte by byte
//! are cut off; request-smuggling shapes (Content-Length with
//! Transfer-Encoding, two Content-Lengths, obs-fold, bare CR) are refused;
//! and past `max_concurrent` calls wait at most `queue_timeout_ms`, then get
//! 503 with `Retry-After` in the caller's dialect.

use std::time::{Duration, Instant};

use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::harness::*;

const SERVER: &str = "header_read_timeout_ms = 300\nrequest_timeout_ms = 2000";

async fn gw() -> Gw {
    Gw::start_full(start_mocks().await, SERVER, "").await
}

fn addr(gw: &Gw) -> String {
    gw.base.trim_start_matches("http://").to_owned()
}

/// Reads until the peer closes (or `limit` passes); what was read and
/// whether it closed.
async fn read_until_closed(s: &mut TcpStream, limit: Duration) -> (String, bool) {
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        match tokio::time::timeout_at(deadline, s.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return (String::from_utf8_lossy(&out).into_owned(), true),
            Ok(Ok(n)) => out.extend_from_slice(&buf[..n]),
            Err(_) => return (String::from_utf8_lossy(&out).into_owned(), false),
        }
    }
}

#[tokio::test]
async fn a_connection_that_sends_nothing_is_closed() {
    let gw = gw().await;
    let started = Instant::now();
    let mut s = TcpStream::connect(addr(&gw)).await.unwrap();
    let (_, closed) = read_until_closed(&mut s, Duration::from_secs(3)).await;
    assert!(closed, "an idle connection stayed open");
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    gw.shutdown().await;
}

#[tokio::test]
async fn a_connection_quiet_after_its_answer_is_closed() {
    let gw = gw().await;
    let mut s = TcpStream::connect(addr(&gw)).await.unwrap();
    s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let started = Instant::now();
    let (text, closed) = read_until_closed(&mut s, Duration::from_secs(3)).await;
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    assert!(
        closed,
        "a keep-alive connection idle after its answer stayed open"
    );
    assert!(started.elapsed() < Duration::from_secs(2));
    gw.shutdown().await;
}

#[tokio::test]
async fn a_request_head_trickled_byte_by_byte_is_cut_off() {
    let gw = gw().await;
    let mut s = TcpStream::connect(addr(&gw)).await.unwrap();
    let head =
        b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n\r\n";
    let started = Instant::now();
    let mut cut = false;
    for b in head {
        if s.write_all(&[*b]).await.is_err() {
            cut = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (text, closed) = read_until_closed(&mut s, Duration::from_secs(3)).await;
    assert!(cut || closed, "a slow head was served: {text}");
    assert!(!text.contains("200 OK"), "{text}");
    assert!(started.elapsed() < Duration::from_secs(5));
    gw.shutdown().await;
}

#[tokio::test]
async fn a_body_trickled_byte_by_byte_is_cut_off() {
    let gw = gw().await;
    let mut s = TcpStream::connect(addr(&gw)).await.unwrap();
    let body = json!({"model": "openai/gpt-test", "messages": [{"role": "user", "content": "hi"}]})
        .to_string();
    let head = format!(
        "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len() + 1000
    );
    s.write_all(head.as_bytes()).await.unwrap();
    let started = Instant::now();
    for b in body.as_bytes().iter().cycle() {
        if s.write_all(&[*b]).await.is_err() || started.elapsed() > Duration::from_secs(6) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (text, closed) = read_until_closed(&mut s, Duration::from_secs(3)).await;
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "a body trickled for {:?} was still being read",
        started.elapsed()
    );
    assert!(
        text.is_empty() || text.starts_with("HTTP/1.1 408") || closed,
        "{text}"
    );
    gw.shutdown().await;
}

/// Request-smuggling shapes: each refused (400, or the connection closed),
/// never served as a request.
#[tokio::test]
async fn request_smuggling_shapes_are_refused() {
    let gw = gw().await;
    let cases: &[(&str, &str)] = &[
        (
            "Content-Length with Transfer-Encoding",
            "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /healthz HTTP/1.1\r\nHost: x\r\n\r\n",
        ),
        (
            "two different Content-Lengths",
            "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nContent-Length: 40\r\n\r\nabcd",
        ),
        (
            "obs-fold",
            "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Folded: a\r\n b\r\n\r\n",
        ),
        (
            "bare CR in a header",
            "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Bad: a\rb\r\n\r\n",
        ),
        (
            "Transfer-Encoding not chunked last",
            "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\n",
        ),
        (
            "a space before the colon",
            "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length : 4\r\n\r\nabcd",
        ),
    ];
    let mut results = Vec::new();
    for (what, raw) in cases {
        let mut s = TcpStream::connect(addr(&gw)).await.unwrap();
        s.write_all(raw.as_bytes()).await.unwrap();
        let (text, _) = read_until_closed(&mut s, Duration::from_secs(2)).await;
        let status = text
            .split(' ')
            .nth(1)
            .and_then(|c| c.parse::<u16>().ok())
            .unwrap_or(0);
        results.push((*what, status));
        let served = text.matches("HTTP/1.1 2").count();
        assert!(
            status == 0 || status == 400,
            "{what}: answered {status}:\n{text}"
        );
        assert_eq!(served, 0, "{what}: a request was served:\n{text}");
    }
    println!("smuggling shapes: {results:?}");
    gw.shutdown().await;
}

/// Past `max_concurrent`, a call waits `queue_timeout_ms` for a place, then
/// gets 503 with `Retry-After` in its own dialect; a stream holds its place
/// until it ends; places come back.
#[tokio::test]
async fn calls_past_the_bound_wait_then_get_503_in_their_dialect() {
    use crate::mock::Reply;
    let mocks = start_mocks().await;
    let gw = Gw::start_full(mocks, "max_concurrent = 2\nqueue_timeout_ms = 300", "").await;
    let slow = || Reply::Delay(Duration::from_millis(1500), Box::new(Reply::Default));
    gw.mocks.openai.script([slow(), slow()]);
    let chat = json!({"model": "openai/gpt-test", "messages": [{"role": "user", "content": "hi"}]});
    let busy: Vec<_> = (0..2)
        .map(|_| {
            let (http, url, body) = (
                gw.http.clone(),
                gw.url("/v1/chat/completions"),
                chat.clone(),
            );
            tokio::spawn(async move { http.post(url).json(&body).send().await.unwrap().status() })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(gw.running.gateway.inflight.taken(), 2);
    let started = Instant::now();
    let (s, h, v) = gw.post("/v1/chat/completions", &chat).await;
    assert_eq!(s, 503, "{v}");
    assert!(
        started.elapsed() >= Duration::from_millis(280),
        "it waited its queue time"
    );
    assert_eq!(h["retry-after"], "1");
    assert_eq!(v["error"]["code"], "overloaded", "OpenAI's shape: {v}");
    // An Anthropic caller gets Anthropic's shape.
    let (s, _, v) = gw
        .post(
            "/v1/messages",
            &json!({"model": "openai/gpt-test", "max_tokens": 10, "messages": [{"role": "user", "content": "hi"}]}),
        )
        .await;
    assert_eq!(s, 503);
    assert_eq!(v["type"], "error");
    assert_eq!(v["error"]["type"], "overloaded_error", "{v}");
    for b in busy {
        assert_eq!(b.await.unwrap(), 200);
    }
    assert_eq!(gw.running.gateway.inflight.taken(), 0, "places come back");
    // A stream holds its place until its end.
    gw.mocks.openai.script([Reply::Sse {
        pieces: vec![
            (Duration::ZERO, "data: {\"id\":\"c\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"gpt-test\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"a\"},\"finish_reason\":null}]}\n\n".into()),
            (Duration::from_millis(800), "data: {\"id\":\"c\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"gpt-test\",\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}]}\n\ndata: [DONE]\n\n".into()),
        ],
        abort: false,
    }]);
    let mut stream_body = chat.clone();
    stream_body["stream"] = json!(true);
    let resp = gw
        .http
        .post(gw.url("/v1/chat/completions"))
        .json(&stream_body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(
        gw.running.gateway.inflight.taken(),
        1,
        "the stream holds a place"
    );
    let _ = resp.text().await.unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(
        gw.running.gateway.inflight.taken(),
        0,
        "released at its end"
    );
    gw.shutdown().await;
}

/// 10,000 connections that never send a byte, against the real binary:
/// held in bounded memory while they last, all closed after
/// `header_read_timeout_ms`, and the gateway serves on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_idle_connections_stay_within_memory_and_are_closed() {
    let mocks = start_mocks().await;
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("sy.toml");
    std::fs::write(
        &config,
        format!(
            "[server]\nlisten = \"127.0.0.1:0\"\nadmin_listen = \"127.0.0.1:0\"\nheader_read_timeout_ms = 3000\n\
             [storage]\nurl = \"sqlite://{}/sy.db\"\n{}",
            dir.path().display(),
            providers_toml(&mocks)
        ),
    )
    .unwrap();
    let bin = crate::binary::Binary::start(
        &config,
        &[("MOCK_OPENAI_KEY", OPENAI_KEY), ("RUST_LOG", "warn")],
    );
    let pid = bin.child.id();
    let addr = bin.base.trim_start_matches("http://").to_owned();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let idle = crate::streams::rss_kib(pid);
    let opened = Instant::now();
    let mut conns = Vec::with_capacity(10_000);
    while conns.len() < 10_000 {
        let batch: Vec<_> = (0..250)
            .map(|_| {
                let addr = addr.clone();
                tokio::spawn(async move { TcpStream::connect(addr).await })
            })
            .collect();
        for c in batch {
            conns.push(c.await.unwrap().expect("connect"));
        }
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let held = crate::streams::rss_kib(pid);
    println!(
        "10,000 idle connections opened in {:?}: RSS {} MiB idle, {} MiB holding them",
        opened.elapsed(),
        idle / 1024,
        held / 1024
    );
    assert!(
        held < idle + 48 * 1024,
        "10,000 idle connections took {} MiB",
        (held - idle) / 1024
    );
    // All of them closed once the timeout has passed.
    tokio::time::sleep(Duration::from_millis(3200)).await;
    let checks: Vec<_> = conns
        .into_iter()
        .map(|mut c| {
            tokio::spawn(async move {
                let mut b = [0u8; 16];
                matches!(
                    tokio::time::timeout(Duration::from_secs(2), c.read(&mut b)).await,
                    Ok(Ok(0)) | Ok(Err(_))
                )
            })
        })
        .collect();
    let mut closed = 0;
    for c in checks {
        closed += usize::from(c.await.unwrap());
    }
    assert_eq!(closed, 10_000, "idle connections left open");
    let http = reqwest::Client::builder().no_proxy().build().unwrap();
    let r = http
        .get(format!("{}/healthz", bin.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let after = crate::streams::rss_kib(pid);
    println!("after they closed: RSS {} MiB", after / 1024);
    drop(bin);
}

/// A key's own `max_concurrent`: its requests past the bound wait
/// `queue_timeout_ms`, then 503; other keys are not held up by it.
#[tokio::test]
async fn a_keys_own_bound_holds_only_that_key() {
    use crate::mock::Reply;
    let gw = Gw::start_full(
        start_mocks().await,
        "queue_timeout_ms = 200",
        "[auth]\nrequire_keys = true\n",
    )
    .await;
    let (_, one) = gw
        .create_key(json!({"name": "one-at-a-time", "max_concurrent": 1}))
        .await;
    let (_, free) = gw.create_key(json!({"name": "free"})).await;
    let (s, v) = gw
        .admin_call(
            "POST",
            "/admin/v1/keys",
            Some(json!({"name": "bad", "max_concurrent": 0})),
        )
        .await;
    assert_eq!(s, 400, "{v}");
    let slow = || Reply::Delay(Duration::from_millis(1000), Box::new(Reply::Default));
    gw.mocks.openai.script([slow(), slow()]);
    let chat = json!({"model": "openai/gpt-test", "messages": [{"role": "user", "content": "hi"}]});
    let first = {
        let (http, url, body, key) = (
            gw.http.clone(),
            gw.url("/v1/chat/completions"),
            chat.clone(),
            one.clone(),
        );
        tokio::spawn(async move {
            http.post(url)
                .bearer_auth(key)
                .json(&body)
                .send()
                .await
                .unwrap()
                .status()
        })
    };
    tokio::time::sleep(Duration::from_millis(200)).await;
    let r = gw
        .http
        .post(gw.url("/v1/chat/completions"))
        .bearer_auth(&one)
        .json(&chat)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 503);
    assert_eq!(r.headers()["retry-after"], "1");
    let v: serde_json::Value = r.json().await.unwrap();
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("this key is at its limit of 1"),
        "{v}"
    );
    // Another key goes through meanwhile.
    let r = gw
        .http
        .post(gw.url("/v1/chat/completions"))
        .bearer_auth(&free)
        .json(&chat)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(first.await.unwrap(), 200);
    // And the key's place came back.
    let r = gw
        .http
        .post(gw.url("/v1/chat/completions"))
        .bearer_auth(&one)
        .json(&chat)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    gw.shutdown().await;
}

/// A client that asks for a stream and never reads it: once our writes
/// have made no progress for `write_timeout_ms`, the connection is closed
/// (and the call recorded), rather than held for as long as it likes.
#[tokio::test]
async fn a_stream_reader_that_never_reads_is_cut_off() {
    use crate::mock::Reply;
    let gw = Gw::start_full(
        start_mocks().await,
        "write_timeout_ms = 500",
        "[streams]\ncontinue_on_disconnect = false\n",
    )
    .await;
    // About 12 MB of stream, more than the socket buffers hold.
    let piece = format!(
        "data: {{\"id\":\"c\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"gpt-test\",\"choices\":[{{\"index\":0,\"delta\":{{\"content\":\"{}\"}},\"finish_reason\":null}}]}}\n\n",
        "x".repeat(60_000)
    );
    let mut pieces: Vec<(Duration, String)> =
        (0..200).map(|_| (Duration::ZERO, piece.clone())).collect();
    pieces.push((Duration::ZERO, "data: [DONE]\n\n".into()));
    gw.mocks.openai.script([Reply::Sse {
        pieces,
        abort: false,
    }]);
    let sock = tokio::net::TcpSocket::new_v4().unwrap();
    sock.set_recv_buffer_size(4096).unwrap();
    let mut s = sock.connect(addr(&gw).parse().unwrap()).await.unwrap();
    let body = json!({"model": "openai/gpt-test", "stream": true,
                      "messages": [{"role": "user", "content": "hi"}]})
    .to_string();
    let head = format!(
        "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    s.write_all(head.as_bytes()).await.unwrap();
    // Never read, for three times the write timeout.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    // The gateway gave up on us: reading now finds what the buffers held,
    // then the end, never the stream's own end.
    let (text, closed) = read_until_closed(&mut s, Duration::from_secs(5)).await;
    assert!(closed, "the connection stayed open");
    assert!(
        text.starts_with("HTTP/1.1 200"),
        "{}",
        &text[..text.len().min(200)]
    );
    assert!(!text.contains("[DONE]"), "the whole stream was delivered");
    println!(
        "a never-reading client got {} bytes before the cut",
        text.len()
    );
    // The call itself is recorded.
    let (_, logs) = gw.admin_call("GET", "/admin/v1/logs?limit=5", None).await;
    assert!(
        logs["data"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["stream"] == true),
        "{logs}"
    );
    gw.shutdown().await;
}
