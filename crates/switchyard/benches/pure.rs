//! Micro-benchmarks of the pure parts of a request's path, and of the key
//! and limit checks: `cargo bench -p switchyard --bench pure`.
//!
//! Each works on the same realistic chat call the load benchmark sends
//! (`bench/run.sh`): a system and a user message, `max_tokens`,
//! `temperature`. Under `cargo test` every benchmark runs once, as a smoke
//! test.

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use switchyard::dialect::Dialect;
use switchyard::wire::{self, sse};

const REQUEST: &[u8] = br#"{"model":"openai/gpt-4o","messages":[{"role":"system","content":"You are a concise assistant. Answer in one sentence and do not use lists."},{"role":"user","content":"Summarise the plot of Hamlet in one sentence for a reader who has not seen the play."}],"max_tokens":256,"temperature":0.2}"#;

/// One content chunk as OpenAI streams it.
const CHUNK: &[u8] = br#"data: {"id":"chatcmpl-BenchMock7Xq2Lr9Vd3Kp0Wz","object":"chat.completion.chunk","created":1741569952,"model":"gpt-4o-2024-08-06","service_tier":"default","system_fingerprint":"fp_f9f4fb6dbf","choices":[{"index":0,"delta":{"content":" quick"},"logprobs":null,"finish_reason":null}],"usage":null,"obfuscation":"x3Tq"}

"#;

fn decode_and_translate(c: &mut Criterion) {
    c.bench_function("decode an OpenAI chat request", |b| {
        b.iter(|| wire::openai::decode_request(black_box(REQUEST)).map(|r| r.0.messages.len()))
    });
    let (req, fields) = match wire::openai::decode_request(REQUEST) {
        Ok(x) => x,
        Err(e) => panic!("the benchmark request does not decode: {e:?}"),
    };
    c.bench_function("translate to OpenAI (same dialect: rewrite)", |b| {
        b.iter(|| wire::openai::rewrite_request(black_box(&fields), "gpt-4o", false).len())
    });
    c.bench_function("translate to Anthropic", |b| {
        b.iter(|| {
            wire::anthropic::encode_request(black_box(&req), "claude-sonnet-4-5", 4096)
                .map(|v| v.len())
        })
    });
    c.bench_function("translate to Gemini", |b| {
        b.iter(|| wire::gemini::encode_request(black_box(&req)).map(|v| v.len()))
    });
    c.bench_function("derive a cache key", |b| {
        b.iter(|| {
            switchyard::cache::key(
                black_box("key_01"),
                Dialect::OpenAi,
                false,
                black_box(&fields),
                None,
            )
        })
    });
}

fn stream_chunks(c: &mut Criterion) {
    c.bench_function("parse an SSE chunk", |b| {
        let mut parser = sse::Parser::new(1 << 20);
        let mut out = Vec::with_capacity(4);
        b.iter(|| {
            out.clear();
            parser.feed(black_box(CHUNK), &mut out).map(|_| out.len())
        })
    });
    let mut events = Vec::new();
    if sse::Parser::new(1 << 20).feed(CHUNK, &mut events).is_err() || events.len() != 1 {
        panic!("the benchmark chunk is not one SSE event");
    }
    let event = events.remove(0);
    c.bench_function(
        "relay a chunk to the same dialect (usage, finish read)",
        |b| {
            let mut relay = wire::openai::stream::Relay::new(false);
            let mut w = sse::Writer::new(0);
            b.iter(|| {
                let r = relay.relay(black_box(&event), &mut w);
                w.buf.clear();
                r
            })
        },
    );
    c.bench_function("translate a chunk to Anthropic events", |b| {
        let mut decoder = wire::openai::StreamDecoder::default();
        let mut encoder = wire::anthropic::StreamEncoder::new("msg_1".into(), "m".into());
        let mut w = sse::Writer::new(0);
        let mut decoded = Vec::new();
        b.iter(|| {
            decoded.clear();
            let r = decoder.decode(black_box(&event), &mut decoded);
            for e in &decoded {
                encoder.encode(e, &mut w);
            }
            w.buf.clear();
            r
        })
    });
}

/// A current-thread runtime and a migrated SQLite database in a temporary
/// directory, holding one key made from `spec`.
fn with_key(
    spec: &[u8],
) -> (
    tokio::runtime::Runtime,
    tempfile::TempDir,
    switchyard::storage::Storage,
    switchyard::keys::KeyRecord,
    String,
) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap_or_else(|e| panic!("runtime: {e}"));
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
    let (storage, record, secret) = rt.block_on(async {
        let url = format!("sqlite://{}/bench.db", dir.path().display());
        let storage = switchyard::storage::Storage::connect(&url)
            .await
            .unwrap_or_else(|e| panic!("storage: {e}"));
        storage
            .migrate()
            .await
            .unwrap_or_else(|e| panic!("migrate: {e}"));
        let spec = switchyard::keys::manage::KeySpec::parse(spec)
            .unwrap_or_else(|e| panic!("spec: {e:?}"));
        let (record, secret) = switchyard::keys::manage::create(&storage, spec)
            .await
            .unwrap_or_else(|e| panic!("create: {e:?}"));
        (storage, record, secret)
    });
    (rt, dir, storage, record, secret)
}

fn key_and_limits(c: &mut Criterion) {
    let (rt, _dir, storage, record, secret) =
        with_key(br#"{"name":"bench","rpm":100000000,"tpm":100000000000}"#);
    let keys = rt
        .block_on(switchyard::keys::Keys::load(storage))
        .unwrap_or_else(|e| panic!("keys: {e}"));
    c.bench_function("key check (hash the presented secret, find the key)", |b| {
        b.iter(|| rt.block_on(keys.authenticate(black_box(&secret))).is_some())
    });
    let limiter = switchyard::limits::Limiter::memory();
    let now = switchyard::clock::unix_s() as i64;
    c.bench_function(
        "rate-limit check and settle (rpm and tpm, in memory)",
        |b| {
            b.iter(|| {
                let a = rt.block_on(limiter.admit(black_box(&record), 300, now));
                if let Ok(a) = &a {
                    limiter.settle_local(a, 250);
                }
                a.is_ok()
            })
        },
    );
}

fn budget_hold(c: &mut Criterion) {
    let (rt, _dir, storage, record, _) =
        with_key(br#"{"name":"budget","budget_usd":1000000,"budget_period":"total"}"#);
    let ledger = switchyard::budget::Ledger::new(storage, None, false);
    ledger.mark_ready();
    let now = switchyard::clock::unix_ms();
    c.bench_function("budget hold and settle (in memory)", |b| {
        b.iter(|| {
            let h = rt.block_on(ledger.reserve(black_box(&record), 0.004, now, 60_000));
            if let Ok(Some(h)) = &h {
                ledger.settle_local(h, Some(0.0003));
            }
            h.is_ok()
        })
    });
}

/// What running each call in a tracked task of its own costs (a spawn, a
/// oneshot, a cancellation token), against awaiting it in place: on a
/// one-worker runtime, as the benchmark pins the gateway, from inside a
/// task, as a handler runs. The call's future carries 8 KiB of state across
/// an await, so the spawn moves a future of a request's size.
fn own_task(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap_or_else(|e| panic!("runtime: {e}"));
    async fn call(i: u64) -> u64 {
        let state = [i as u8; 8192];
        tokio::task::yield_now().await;
        u64::from(black_box(&state)[4096]) + i
    }
    let timed = |rt: &tokio::runtime::Runtime, n: u64, tracked: bool| {
        rt.block_on(async move {
            tokio::spawn(async move {
                let tasks = tokio_util::task::TaskTracker::new();
                let t = std::time::Instant::now();
                for i in 0..n {
                    let v = if tracked {
                        switchyard::gateway::own_task(&tasks, move |_| call(i)).await
                    } else {
                        Some(call(i).await)
                    };
                    black_box(v);
                }
                t.elapsed()
            })
            .await
            .unwrap_or_else(|e| panic!("bench task: {e}"))
        })
    };
    c.bench_function("a call awaited in place (baseline)", |b| {
        b.iter_custom(|n| timed(&rt, n, false))
    });
    c.bench_function("a call in a tracked task of its own", |b| {
        b.iter_custom(|n| timed(&rt, n, true))
    });
}

criterion_group!(
    benches,
    decode_and_translate,
    stream_chunks,
    key_and_limits,
    budget_hold,
    own_task
);
criterion_main!(benches);
