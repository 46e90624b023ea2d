//! Resumable streams: generated once, billed once, read by re-attaching
//! after any event; idempotent retries that attach instead of calling the
//! provider again; the bounds on detached streams and buffers.

use std::time::Duration;

use futures_util::StreamExt;
use rand::{Rng, SeedableRng};
use serde_json::{Value, json};

use crate::harness::*;
use crate::mock::Reply;

/// An OpenAI stream of `n` text chunks, `gap` apart, then finish and
/// [DONE]: what the mock sends.
pub fn slow_stream(n: usize, gap: Duration) -> Reply {
    let mut pieces: Vec<(Duration, String)> = (0..n)
        .map(|i| {
            (
                if i == 0 { Duration::ZERO } else { gap },
                crate::mock::openai_chunk(&format!("w{i} ")),
            )
        })
        .collect();
    pieces.push((
        gap,
        format!(
            "data: {}\n\n",
            json!({"id": "chatcmpl-x", "object": "chat.completion.chunk", "created": 1, "model": "m",
                   "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
        ),
    ));
    pieces.push((
        Duration::ZERO,
        format!(
            "data: {}\n\n",
            json!({"id": "chatcmpl-x", "object": "chat.completion.chunk", "created": 1, "model": "m",
                   "choices": [], "usage": {"prompt_tokens": 5, "completion_tokens": n}})
        ),
    ));
    pieces.push((Duration::ZERO, "data: [DONE]\n\n".into()));
    Reply::Sse {
        pieces,
        abort: false,
    }
}

/// For a test that reads a stream again after some reader had all of it:
/// kept then too (by default it is forgotten at once).
const REREAD: &str = "[streams]\ndelivered_retain_s = 600\n";

fn body() -> Value {
    json!({"model": "openai/gpt-test", "stream": true, "messages": [{"role": "user", "content": "go"}]})
}

/// A streamed chat call with [`body`] to `gw`, ready for more headers.
pub fn stream_call(gw: &Gw) -> reqwest::RequestBuilder {
    gw.http
        .post(gw.url("/v1/chat/completions"))
        .header("content-type", "application/json")
        .body(body().to_string())
}

/// An SSE event as read: (id, event name, data).
type Named = (u64, Option<String>, String);

/// Reads SSE events from a response until `stop` of them have arrived;
/// returns (request id, events).
async fn read_named(resp: reqwest::Response, stop: usize) -> (String, Vec<Named>) {
    let id = resp.headers()["x-switchyard-request-id"]
        .to_str()
        .unwrap()
        .to_owned();
    let mut parser = switchyard::wire::sse::Parser::new(0);
    let mut events = Vec::new();
    let mut out = Vec::new();
    let mut s = resp.bytes_stream();
    while out.len() < stop {
        let Some(Ok(chunk)) = s.next().await else {
            break;
        };
        parser.feed(&chunk, &mut events).unwrap();
        for e in events.drain(..) {
            out.push((
                e.id.as_deref().unwrap().parse().unwrap(),
                e.name().map(str::to_owned),
                e.data_str().to_owned(),
            ));
        }
    }
    (id, out)
}

/// [`read_named`] for a dialect whose events carry no names: (id, data).
pub async fn read_some(resp: reqwest::Response, stop: usize) -> (String, Vec<(u64, String)>) {
    let (id, events) = read_named(resp, stop).await;
    (id, events.into_iter().map(|(i, _, d)| (i, d)).collect())
}

pub async fn read_all(resp: reqwest::Response) -> Vec<(u64, String)> {
    read_some(resp, usize::MAX).await.1
}

async fn resume(gw: &Gw, id: &str, after: Option<u64>, auth: Option<&str>) -> reqwest::Response {
    let mut rb = gw.http.get(gw.url(&format!("/v1/streams/{id}")));
    if let Some(a) = after {
        rb = rb.header("last-event-id", a.to_string());
    }
    if let Some(k) = auth {
        rb = rb.bearer_auth(k);
    }
    rb.send().await.unwrap()
}

pub fn text_of(events: &[(u64, String)]) -> String {
    events
        .iter()
        .filter(|(_, d)| d != "[DONE]")
        .filter_map(|(_, d)| serde_json::from_str::<Value>(d).ok())
        .filter_map(|v| {
            v["choices"][0]["delta"]["content"]
                .as_str()
                .map(str::to_owned)
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn resuming_at_random_points_reads_the_whole_generation_once() {
    let gw = Gw::start(REREAD).await;
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    let n = 30;
    let want: String = (0..n).map(|i| format!("w{i} ")).collect();
    let trials = 200;
    let mut mismatches = 0;
    let before = gw.mocks.openai.count();
    for t in 0..trials {
        gw.mocks
            .openai
            .script([slow_stream(n, Duration::from_micros(300))]);
        let resp = stream_call(&gw).send().await.unwrap();
        let cut = rng.gen_range(1..n + 3);
        let (id, first) = read_some(resp, cut).await;
        // The connection is gone; generation goes on. Re-attach after the
        // last event read (or, sometimes, from the start).
        let from_start = t % 10 == 0;
        let after = if from_start {
            None
        } else {
            first.last().map(|(i, _)| *i)
        };
        let rest = read_all(resume(&gw, &id, after, None).await).await;
        let joined: Vec<(u64, String)> = if from_start {
            rest.clone()
        } else {
            first.iter().cloned().chain(rest).collect()
        };
        let ids: Vec<u64> = joined.iter().map(|(i, _)| *i).collect();
        let contiguous = ids == (0..ids.len() as u64).collect::<Vec<_>>();
        let complete = joined.last().map(|(_, d)| d.as_str()) == Some("[DONE]");
        if !(contiguous && complete && text_of(&joined) == want) {
            mismatches += 1;
            eprintln!("trial {t}: cut {cut}: {joined:?}");
        }
    }
    let calls = gw.mocks.openai.count() - before;
    println!(
        "resume trials: {trials}, mismatches: {mismatches}, upstream calls per generation: {:.2}",
        calls as f64 / trials as f64
    );
    assert_eq!(mismatches, 0);
    assert_eq!(calls, trials, "one upstream call per generation");
    gw.shutdown().await;
}

#[tokio::test]
async fn a_detached_stream_finishes_and_is_billed_once() {
    let gw = Gw::start(&format!(
        "{REREAD}[pricing.\"openai/gpt-test\"]\ninput_per_mtok_usd = 1.0\noutput_per_mtok_usd = 1.0\n"
    ))
    .await;
    gw.mocks
        .openai
        .script([slow_stream(20, Duration::from_millis(10))]);
    let resp = stream_call(&gw).send().await.unwrap();
    let (id, first) = read_some(resp, 2).await;
    assert_eq!(first.len(), 2);
    tokio::time::sleep(Duration::from_millis(400)).await;
    let all = read_all(resume(&gw, &id, None, None).await).await;
    assert_eq!(all.last().unwrap().1, "[DONE]");
    assert_eq!(
        text_of(&all),
        (0..20).map(|i| format!("w{i} ")).collect::<String>()
    );
    let r = crate::logs::record(&gw, &id).await;
    assert_eq!(r["status"], 200, "{r}");
    assert_eq!(r["output_tokens"], 20);
    assert_eq!(gw.mocks.openai.count(), 1);
    // Unknown ids, and bad Last-Event-ID values.
    let resp = resume(&gw, "0190aaaa-0000-7000-8000-000000000000", None, None).await;
    assert_eq!(resp.status(), 404);
    let resp = gw
        .http
        .get(gw.url(&format!("/v1/streams/{id}")))
        .header("last-event-id", "banana")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    gw.shutdown().await;
}

#[tokio::test]
async fn only_the_caller_that_made_a_stream_can_read_it() {
    let gw = Gw::start(&format!("{REREAD}[auth]\nrequire_keys = true\n")).await;
    let (_, a) = gw.create_key(json!({"name": "a"})).await;
    let (_, b) = gw.create_key(json!({"name": "b"})).await;
    let resp = stream_call(&gw).bearer_auth(&a).send().await.unwrap();
    let id = resp.headers()["x-switchyard-request-id"]
        .to_str()
        .unwrap()
        .to_owned();
    let _ = read_all(resp).await;
    let theirs = resume(&gw, &id, None, Some(&b)).await;
    let unknown = resume(&gw, "0190aaaa-0000-7000-8000-000000000000", None, Some(&b)).await;
    assert_eq!(
        (theirs.status(), unknown.status()),
        (http::StatusCode::NOT_FOUND, http::StatusCode::NOT_FOUND)
    );
    assert_eq!(
        theirs.text().await.unwrap(),
        unknown.text().await.unwrap(),
        "indistinguishable from absent"
    );
    let mine = resume(&gw, &id, None, Some(&a)).await;
    assert_eq!(mine.status(), 200);
    assert!(resume(&gw, &id, None, None).await.status() == 401);
    gw.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn idempotent_retries_attach_instead_of_generating_again() {
    let gw = Gw::start("").await;
    // A stream, retried while it runs and after it ended.
    gw.mocks
        .openai
        .script([slow_stream(15, Duration::from_millis(10))]);
    let send = |key: &str, b: Value| {
        gw.http
            .post(gw.url("/v1/chat/completions"))
            .header("content-type", "application/json")
            .header("idempotency-key", key)
            .body(b.to_string())
            .send()
    };
    let first = send("job-1", body()).await.unwrap();
    let first_id = first.headers()["x-switchyard-request-id"]
        .to_str()
        .unwrap()
        .to_owned();
    let retry = send("job-1", body()).await.unwrap();
    assert_eq!(
        retry.headers()["x-switchyard-request-id"],
        first_id.as_str()
    );
    assert_eq!(retry.headers()["x-switchyard-idempotent-replay"], "true");
    let (a, b) = (read_all(first).await, read_all(retry).await);
    assert_eq!(a, b, "the retry reads the same events");
    let later = read_all(send("job-1", body()).await.unwrap()).await;
    assert_eq!(later, a);
    assert_eq!(gw.mocks.openai.count(), 1, "generated once");
    // Same key, another body: refused.
    let mut other = body();
    other["temperature"] = json!(0.1);
    let r = send("job-1", other).await.unwrap();
    assert_eq!(r.status(), 422);
    assert!(r.text().await.unwrap().contains("different request body"));

    // A complete answer, retried while it is being generated.
    gw.mocks.openai.script([Reply::Delay(
        Duration::from_millis(300),
        Box::new(Reply::Default),
    )]);
    let plain =
        json!({"model": "openai/gpt-test", "messages": [{"role": "user", "content": "once"}]});
    let (r1, r2) = tokio::join!(send("job-2", plain.clone()), async {
        tokio::time::sleep(Duration::from_millis(50)).await;
        send("job-2", plain.clone()).await
    });
    let (r1, r2) = (r1.unwrap(), r2.unwrap());
    assert_eq!(
        r1.headers()["x-switchyard-request-id"],
        r2.headers()["x-switchyard-request-id"]
    );
    assert_eq!(r1.text().await.unwrap(), r2.text().await.unwrap());
    assert_eq!(gw.mocks.openai.count(), 2);
    // A failed first request does not stick: the retry runs.
    gw.mocks
        .openai
        .script([Reply::Json(500, json!({"error": {"message": "x"}}), vec![])]);
    let r = send("job-3", plain.clone()).await.unwrap();
    assert_eq!(r.status(), 500);
    let r = send("job-3", plain.clone()).await.unwrap();
    assert_eq!(r.status(), 200);
    gw.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn detached_streams_and_buffers_are_bounded() {
    let gw = Gw::start(&format!(
        "{REREAD}max_detached = 1\nmax_buffer_bytes = 2000\n"
    ))
    .await;
    // Two streams left alone: the second is past the limit and stops.
    let mut ids = Vec::new();
    for _ in 0..2 {
        gw.mocks
            .openai
            .script([slow_stream(30, Duration::from_millis(15))]);
        let resp = stream_call(&gw).send().await.unwrap();
        let (id, _) = read_some(resp, 1).await;
        ids.push(id);
    }
    let a = crate::logs::record(&gw, &ids[0]).await;
    let b = crate::logs::record(&gw, &ids[1]).await;
    let classes: Vec<&str> = [&a, &b]
        .iter()
        .map(|r| r["error_class"].as_str().unwrap_or(""))
        .collect();
    assert!(
        classes.contains(&"detached_limit"),
        "one was cancelled and says so: {classes:?}"
    );
    // Re-attached, the stopped one ends with an error event, not cleanly.
    let stopped = if a["error_class"] == "detached_limit" {
        &ids[0]
    } else {
        &ids[1]
    };
    let events = read_all(resume(&gw, stopped, None, None).await).await;
    let last: Value = serde_json::from_str(&events.last().unwrap().1).unwrap();
    assert!(
        last["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("max_detached")),
        "{events:?}"
    );
    assert!(events.iter().all(|(_, d)| d != "[DONE]"), "{events:?}");
    // A stream past max_buffer_bytes cannot be resumed from the start, and
    // says so.
    gw.mocks.openai.script([slow_stream(200, Duration::ZERO)]);
    let resp = stream_call(&gw).send().await.unwrap();
    let id = resp.headers()["x-switchyard-request-id"]
        .to_str()
        .unwrap()
        .to_owned();
    let all = read_all(resp).await;
    assert_eq!(
        all.last().unwrap().1,
        "[DONE]",
        "the live reader loses nothing"
    );
    let r = resume(&gw, &id, None, None).await;
    assert_eq!(r.status(), 410);
    assert!(
        r.text()
            .await
            .unwrap()
            .contains("outgrew its resume buffer")
    );
    // An idempotent retry of such a stream is told so too, not handed a
    // stream with its beginning missing.
    gw.mocks.openai.script([slow_stream(200, Duration::ZERO)]);
    let send = || stream_call(&gw).header("idempotency-key", "big-one").send();
    let first = read_all(send().await.unwrap()).await;
    assert_eq!(first.last().unwrap().1, "[DONE]");
    let again = send().await.unwrap();
    assert_eq!(again.status(), 410);
    assert!(
        again
            .text()
            .await
            .unwrap()
            .contains("outgrew its resume buffer")
    );
    gw.shutdown().await;
}

/// The same through Redis: a retry on another replica of a stream that
/// outgrew its buffer is a 410, and so is a resume there.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_outgrown_stream_is_gone_on_every_replica() {
    let Some(redis) = redis_url().map(|u| format!("{u}/9")) else {
        return;
    };
    let extra = format!("[redis]\nurl = \"{redis}\"\n[streams]\nmax_buffer_bytes = 2000\n");
    let a = Gw::start(&extra).await;
    let b = Gw::start(&extra).await;
    a.mocks.openai.script([slow_stream(200, Duration::ZERO)]);
    let key = format!("big-{}", uuid::Uuid::now_v7().simple());
    let send = |gw: &Gw| {
        stream_call(gw)
            .header("idempotency-key", key.clone())
            .send()
    };
    let resp = send(&a).await.unwrap();
    let (id, all) = read_some(resp, usize::MAX).await;
    assert_eq!(
        all.last().unwrap().1,
        "[DONE]",
        "the live reader loses nothing"
    );
    let again = send(&b).await.unwrap();
    assert_eq!(again.status(), 410);
    assert!(
        again
            .text()
            .await
            .unwrap()
            .contains("outgrew its resume buffer")
    );
    assert_eq!(resume(&b, &id, None, None).await.status(), 410);
    assert_eq!(b.mocks.openai.count(), 0, "nothing generated again");
    a.shutdown().await;
    b.shutdown().await;
}

/// A stream started on one replica resumes through another, and an
/// idempotent retry sent to the other attaches, through the shared Redis.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn streams_resume_and_retries_attach_across_replicas() {
    let Some(redis) = redis_url().map(|u| format!("{u}/5")) else {
        return;
    };
    let extra = format!("[redis]\nurl = \"{redis}\"\n");
    let a = Gw::start(&extra).await;
    let b = Gw::start(&extra).await;
    a.mocks
        .openai
        .script([slow_stream(25, Duration::from_millis(8))]);
    let resp = stream_call(&a).send().await.unwrap();
    let (id, first) = read_some(resp, 4).await;
    let last = first.last().unwrap().0;
    // While A is still generating, B takes over the reading.
    let rest = read_all(resume(&b, &id, Some(last), None).await).await;
    let joined: Vec<(u64, String)> = first.into_iter().chain(rest).collect();
    let ids: Vec<u64> = joined.iter().map(|(i, _)| *i).collect();
    assert_eq!(ids, (0..ids.len() as u64).collect::<Vec<_>>(), "{joined:?}");
    assert_eq!(joined.last().unwrap().1, "[DONE]");
    assert_eq!(
        text_of(&joined),
        (0..25).map(|i| format!("w{i} ")).collect::<String>()
    );
    assert_eq!((a.mocks.openai.count(), b.mocks.openai.count()), (1, 0));

    // Idempotency across replicas.
    a.mocks
        .openai
        .script([slow_stream(10, Duration::from_millis(10))]);
    let key = format!("cross-{}", uuid::Uuid::now_v7().simple());
    let send = |gw: &Gw| {
        stream_call(gw)
            .header("idempotency-key", key.clone())
            .send()
    };
    let r1 = send(&a).await.unwrap();
    let r2 = send(&b).await.unwrap();
    assert_eq!(
        r1.headers()["x-switchyard-request-id"],
        r2.headers()["x-switchyard-request-id"]
    );
    let (e1, e2) = (read_all(r1).await, read_all(r2).await);
    assert_eq!(e1, e2);
    assert_eq!(
        (a.mocks.openai.count(), b.mocks.openai.count()),
        (2, 0),
        "generated once, on A"
    );
    // The claim ends with the stream it leads to: kept streams.retain_s
    // (600) after the end, not the request timeout on top of that.
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut conn = redis_conn(&redis).await;
    let ttl: i64 = redis::cmd("TTL")
        .arg(format!("sy:idem:{{anonymous:{key}}}"))
        .query_async(&mut conn)
        .await
        .unwrap();
    assert!((1..=600).contains(&ttl), "idempotency claim TTL {ttl}");

    // Log mode none: the stream (and its idempotency claim) never leaves
    // A's memory, so B cannot find it and Redis holds nothing of it.
    a.mocks
        .openai
        .script([slow_stream(10, Duration::from_millis(5))]);
    let key = format!("private-{}", uuid::Uuid::now_v7().simple());
    let resp = stream_call(&a)
        .header("x-switchyard-log", "none")
        .header("idempotency-key", key.clone())
        .send()
        .await
        .unwrap();
    let (id, _) = read_some(resp, 2).await;
    assert_eq!(resume(&b, &id, None, None).await.status(), 404);
    let mine = read_all(resume(&a, &id, None, None).await).await;
    assert_eq!(mine.last().unwrap().1, "[DONE]");
    let keys = redis_keys(&mut conn, "sy:*").await;
    assert!(
        !keys.iter().any(|k| k.contains(&id) || k.contains(&key)),
        "nothing of a log-mode-none stream in Redis: {keys:?}"
    );
    a.shutdown().await;
    b.shutdown().await;
}

/// A stream its caller read to the end is forgotten after
/// `delivered_retain_s`, in Redis as in memory: the mirrors do not pile up
/// for `retain_s` at the rate streams are served.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delivered_streams_leave_redis_with_their_local_copy() {
    let Some(redis) = redis_url().map(|u| format!("{u}/8")) else {
        return;
    };
    let gw = Gw::start(&format!(
        "[redis]\nurl = \"{redis}\"\n[streams]\ndelivered_retain_s = 1\n"
    ))
    .await;
    let resp = stream_call(&gw).send().await.unwrap();
    let (id, events) = read_named(resp, usize::MAX).await;
    assert_eq!(events.last().unwrap().2, "[DONE]");
    let mut conn = redis_conn(&redis).await;
    // sy:stream:{<id>} and sy:streammeta:{<id>}
    let mirror = format!("sy:stream*:{{{id}}}");
    assert_eq!(
        redis_keys(&mut conn, &mirror).await.len(),
        2,
        "mirrored while it is kept"
    );
    let started = std::time::Instant::now();
    while !redis_keys(&mut conn, &mirror).await.is_empty() {
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "the mirror of a delivered stream outlives delivered_retain_s"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(resume(&gw, &id, None, None).await.status(), 404);
    gw.shutdown().await;
}

/// By default a stream its caller read to the end is forgotten the moment
/// the end is read (nobody has anything left to resume), unless an
/// `Idempotency-Key` points at it: a retry must still attach.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_read_to_its_end_is_forgotten_at_once_unless_idempotent() {
    let gw = Gw::start("").await;
    let resp = stream_call(&gw).send().await.unwrap();
    let (id, events) = read_named(resp, usize::MAX).await;
    assert_eq!(events.last().unwrap().2, "[DONE]");
    assert_eq!(resume(&gw, &id, None, None).await.status(), 404);

    let resp = stream_call(&gw)
        .header("idempotency-key", "kept-for-a-retry")
        .send()
        .await
        .unwrap();
    let (id, events) = read_named(resp, usize::MAX).await;
    let resumed = resume(&gw, &id, Some(0), None).await;
    assert_eq!(resumed.status(), 200);
    assert_eq!(read_all(resumed).await.len(), events.len() - 1);
    gw.shutdown().await;
}

/// Shutdown gives running streams the grace period, then ends them in
/// order: the caller reads a terminal error (never a clean end, never just
/// a reset), and the record says 503 shutting_down, not `interrupted`.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn shutdown_ends_running_streams_with_a_record() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/switchyard.db", dir.path().display());
    let gw = Gw::start_on(
        start_mocks().await,
        "shutdown_grace_ms = 1000",
        "",
        &url,
        dir,
    )
    .await;
    gw.mocks
        .openai
        .script([slow_stream(100, Duration::from_millis(50))]);
    let resp = stream_call(&gw).send().await.unwrap();
    let id = resp.headers()["x-switchyard-request-id"]
        .to_str()
        .unwrap()
        .to_owned();
    let reading = tokio::spawn(read_named(resp, usize::MAX));
    tokio::time::sleep(Duration::from_millis(200)).await;
    let Gw {
        running,
        dir,
        mocks,
        ..
    } = gw;
    let t = std::time::Instant::now();
    running.shutdown().await;
    let took = t.elapsed();
    let (_, events) = reading.await.unwrap();
    let last = &events.last().unwrap().2;
    assert!(last.contains("shutting down"), "{events:?}");
    assert!(events.iter().all(|(_, _, d)| d != "[DONE]"));
    assert!(took < Duration::from_secs(3), "shutdown took {took:?}");
    // The next start on the same data reads the record as written.
    let gw = Gw::start_on(mocks, "", "", &url, dir).await;
    let r = crate::logs::record(&gw, &id).await;
    assert_eq!(
        (r["status"].as_u64(), r["error_class"].as_str()),
        (Some(503), Some("shutting_down")),
        "{r}"
    );
    gw.shutdown().await;
}

pub fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

/// Memory stays bounded with many detached streams: the real binary, its
/// resident set measured idle and with N streams generating alone.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn many_detached_streams_stay_within_memory_bounds() {
    let mocks = start_mocks().await;
    let n = 300;
    mocks
        .openai
        .script((0..n).map(|_| slow_stream(60, Duration::from_millis(50))));
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("sy.toml");
    std::fs::write(
        &config,
        format!(
            "[server]\nlisten = \"127.0.0.1:0\"\nadmin_listen = \"127.0.0.1:0\"\n[storage]\nurl = \"sqlite://{}/sy.db\"\n[streams]\nmax_detached = 1000\nmax_buffer_bytes = 65536\n{}",
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
    tokio::time::sleep(Duration::from_millis(300)).await;
    let idle = rss_kib(pid);
    let http = reqwest::Client::builder().no_proxy().build().unwrap();
    let mut started = 0;
    for _ in 0..n {
        let resp = http
            .post(format!("{}/v1/chat/completions", bin.base))
            .header("content-type", "application/json")
            .body(body().to_string())
            .send()
            .await
            .unwrap();
        let (_, first) = read_some(resp, 1).await;
        started += usize::from(!first.is_empty());
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let detached = rss_kib(pid);
    let metrics = http
        .get(format!("{}/metrics", bin.base))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let open: u64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("switchyard_open_streams "))
        .and_then(|v| v.parse().ok())
        .unwrap();
    println!(
        "detached streams: {started} started and left; {open} still generating; RSS idle {} MiB, with them {} MiB ({} KiB per stream)",
        idle / 1024,
        detached / 1024,
        detached.saturating_sub(idle) / started.max(1) as u64
    );
    assert_eq!(started, n);
    assert!(open > 0, "generation goes on without the clients");
    assert!(detached < 256 * 1024, "RSS {detached} KiB");
    bin.stop();
}

/// An Anthropic stream of `n` text deltas, `gap` apart, as the mock sends
/// it: named events, a ping, cumulative usage in `message_delta`, no [DONE].
fn slow_anthropic_stream(n: usize, gap: Duration) -> Reply {
    let ev = |name: &str, data: Value| format!("event: {name}\ndata: {data}\n\n");
    let mut pieces = vec![
        (
            Duration::ZERO,
            ev(
                "message_start",
                json!({"type": "message_start", "message": {"id": "msg_01", "type": "message",
                    "role": "assistant", "model": "claude-test", "content": [], "stop_reason": null,
                    "stop_sequence": null, "usage": {"input_tokens": 5, "output_tokens": 1}}}),
            ),
        ),
        (
            Duration::ZERO,
            ev(
                "content_block_start",
                json!({"type": "content_block_start", "index": 0,
                       "content_block": {"type": "text", "text": ""}}),
            ),
        ),
        (Duration::ZERO, ev("ping", json!({"type": "ping"}))),
    ];
    for i in 0..n {
        pieces.push((
            gap,
            ev(
                "content_block_delta",
                json!({"type": "content_block_delta", "index": 0,
                       "delta": {"type": "text_delta", "text": format!("w{i} ")}}),
            ),
        ));
    }
    for (name, data) in [
        (
            "content_block_stop",
            json!({"type": "content_block_stop", "index": 0}),
        ),
        (
            "message_delta",
            json!({"type": "message_delta", "delta": {"stop_reason": "end_turn", "stop_sequence": null},
                   "usage": {"output_tokens": n}}),
        ),
        ("message_stop", json!({"type": "message_stop"})),
    ] {
        pieces.push((gap, ev(name, data)));
    }
    Reply::Sse {
        pieces,
        abort: false,
    }
}

/// The text of an Anthropic event sequence, checking as it goes that each
/// event is named and its data's `type` repeats the name.
fn anthropic_text(events: &[Named]) -> String {
    let mut text = String::new();
    for (i, name, data) in events {
        let v: Value = serde_json::from_str(data).unwrap();
        assert_eq!(name.as_deref(), v["type"].as_str(), "event {i}: {data}");
        if let Some(t) = v["delta"]["text"].as_str() {
            text.push_str(t);
        }
    }
    text
}

/// The Anthropic dialect resumes as the OpenAI one does: named events with
/// contiguous ids, ending in `message_stop`, from an Anthropic upstream
/// and from a translated OpenAI one; one upstream call per generation; an
/// unknown id is a 404 in Anthropic's error shape.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn anthropic_streams_resume_in_their_own_dialect() {
    let gw = Gw::start(REREAD).await;
    let mut rng = rand::rngs::StdRng::seed_from_u64(11);
    let n = 12;
    let want: String = (0..n).map(|i| format!("w{i} ")).collect();
    let trials = 25;
    for model in ["anthropic/claude-test", "openai/gpt-test"] {
        let mock = if model.starts_with("anthropic") {
            &gw.mocks.anthropic
        } else {
            &gw.mocks.openai
        };
        let before = mock.count();
        let mut mismatches = 0;
        for t in 0..trials {
            let gap = Duration::from_micros(500);
            mock.script([if model.starts_with("anthropic") {
                slow_anthropic_stream(n, gap)
            } else {
                slow_stream(n, gap)
            }]);
            let resp = gw
                .http
                .post(gw.url("/v1/messages"))
                .header("content-type", "application/json")
                .header("anthropic-version", "2023-06-01")
                .body(
                    json!({"model": model, "max_tokens": 64, "stream": true,
                           "messages": [{"role": "user", "content": "go"}]})
                    .to_string(),
                )
                .send()
                .await
                .unwrap();
            assert_eq!(resp.status(), 200);
            let cut = rng.gen_range(1..n + 6);
            let (id, first) = read_named(resp, cut).await;
            let after = first.last().map(|(i, _, _)| *i);
            let (_, rest) = read_named(resume(&gw, &id, after, None).await, usize::MAX).await;
            let joined: Vec<Named> = first.into_iter().chain(rest).collect();
            let ids: Vec<u64> = joined.iter().map(|(i, _, _)| *i).collect();
            let names: Vec<&str> = joined
                .iter()
                .map(|(_, e, _)| e.as_deref().unwrap_or(""))
                .collect();
            let ok = ids == (0..ids.len() as u64).collect::<Vec<_>>()
                && names.first() == Some(&"message_start")
                && names.ends_with(&["message_delta", "message_stop"])
                && names.iter().filter(|n| **n == "message_stop").count() == 1
                && anthropic_text(&joined) == want;
            // Read again from the start, once it has ended: the same events.
            let (_, again) = read_named(resume(&gw, &id, None, None).await, usize::MAX).await;
            if !ok || again != joined {
                mismatches += 1;
                eprintln!("{model} trial {t}: cut {cut}: {joined:?}");
            }
        }
        let calls = mock.count() - before;
        println!(
            "anthropic-dialect resume via {model}: {trials} trials, {mismatches} mismatches, {calls} upstream calls"
        );
        assert_eq!(mismatches, 0, "{model}");
        assert_eq!(calls, trials, "{model}: one upstream call per generation");
    }
    let resp = gw
        .http
        .get(gw.url("/v1/streams/0190aaaa-0000-7000-8000-000000000000"))
        .header("anthropic-version", "2023-06-01")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 404);
    let v: Value = serde_json::from_str(&resp.text().await.unwrap()).unwrap();
    assert_eq!(
        (v["type"].as_str(), v["error"]["type"].as_str()),
        (Some("error"), Some("not_found_error")),
        "{v}"
    );
    gw.shutdown().await;
}
