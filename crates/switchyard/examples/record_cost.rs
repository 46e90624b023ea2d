//! What one call's record costs to put into SQLite, by driver: the same
//! calls, the same schema (Switchyard's migrations), the same transactions
//! of 250 spool entries, written either by the log writer itself (sqlx:
//! `writer::write_batch`) or by rusqlite on a thread of its own with
//! prepared statements, a row at a time.
//!
//! Run under callgrind twice, with `calls` and with 0, and divide the
//! difference by `calls`: instructions per record, every thread counted
//! (sqlx's SQLite worker included), the same on every run.
//!
//! ```text
//! cargo build --profile profiling --example record_cost
//! valgrind --tool=callgrind --callgrind-out-file=/dev/null \
//!     target/profiling/examples/record_cost sqlx 3000
//! ```
//!
//! Driver `none` only builds the calls' entries: subtract it to see the
//! database's part alone.
//!
//! Options after the count: `--tags N` (tags per call, default 0, as in
//! the benchmark), `--bare` (the `requests` table's eight secondary
//! indexes dropped first, to see what they cost).

use std::collections::HashMap;
use std::sync::mpsc;

use rusqlite::{Connection, TransactionBehavior, params};
use switchyard::config::LogMode;
use switchyard::log_store::rollup::{Batch, Sums, UPSERT, UPSERT_SET, UPSERT_SPEND, UPSERT_TAG};
use switchyard::log_store::writer::{tag_value, write_batch};
use switchyard::log_store::{Begin, End, Entry};
use switchyard::routing::Attempt;
use switchyard::storage::Storage;

// The gateway's allocator (see main.rs): allocation is part of the cost.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Spool entries per transaction, as the writer's `TX_ENTRIES`.
const TX_ENTRIES: usize = 250;
/// 2026-12-07 10:00 UTC: every run writes the same rows.
const T0: i64 = 1_796_637_600_000;

const INDEXES: [&str; 8] = [
    "requests_time",
    "requests_key_time",
    "requests_provider_time",
    "requests_model_time",
    "requests_route_time",
    "requests_status_time",
    "requests_error_time",
    "requests_begun",
];

const INSERT_ONE: &str = "INSERT INTO requests (id, time_ms, instance, state, key_id, route, requested_model, dialect, stream, \
    log_mode, est_input_tokens, metadata, request_body, provider, model, status, error_class, latency_ms, ttft_ms, input_tokens, \
    output_tokens, cached_tokens, reasoning_tokens, usage_source, cost_usd, saved_usd, price_version, cache, attempts, excluded, \
    response_body, hold_usd, trace_id) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, \
    ?19, ?20, ?21, ?22, ?23, ?24, ?25, ?26, ?27, ?28, ?29, ?30, ?31, ?32, ?33) ON CONFLICT (id) DO NOTHING";
const TAG_ONE: &str = "INSERT INTO request_tags (request_id, tag, value, time_ms) VALUES (?1, ?2, ?3, ?4) ON CONFLICT DO NOTHING";

struct Args {
    driver: String,
    calls: usize,
    tags: usize,
    bare: bool,
}

fn args() -> Result<Args, String> {
    let mut it = std::env::args().skip(1);
    let usage = "usage: record_cost <sqlx|rusqlite|none> <calls> [--tags N] [--bare]";
    let driver = it.next().ok_or(usage)?;
    if !["sqlx", "rusqlite", "none"].contains(&driver.as_str()) {
        return Err(usage.into());
    }
    let calls = it.next().and_then(|c| c.parse().ok()).ok_or(usage)?;
    let mut a = Args {
        driver,
        calls,
        tags: 0,
        bare: false,
    };
    while let Some(flag) = it.next() {
        match flag.as_str() {
            "--tags" => a.tags = it.next().and_then(|n| n.parse().ok()).ok_or(usage)?,
            "--bare" => a.bare = true,
            _ => return Err(usage.into()),
        }
    }
    Ok(a)
}

/// A call as the benchmark's same-dialect JSON case records it: a key, a
/// price, one attempt, usage reported; a begin and its end side by side.
fn entries(calls: usize, tags: usize) -> Vec<Entry> {
    let mut out = Vec::with_capacity(calls * 2);
    for n in 0..calls {
        let time_ms = T0 + n as i64;
        let id = format!(
            "{:08x}-{:04x}-7000-8000-{:012x}",
            time_ms >> 16,
            time_ms & 0xffff,
            n
        );
        let metadata = (0..tags)
            .map(|t| {
                (
                    format!("tag{t}"),
                    serde_json::Value::from(format!("value{}", n % 7)),
                )
            })
            .collect();
        out.push(Entry::Begin(Begin {
            id: id.clone(),
            time_ms,
            instance: "0193a6b2-bench-instance".into(),
            key_id: Some("key_3f9c2a".into()),
            route: None,
            requested_model: "mock/gpt-4o-mini".into(),
            dialect: "openai".into(),
            stream: false,
            log_mode: LogMode::Metadata,
            est_input_tokens: 31,
            metadata,
            request_body: None,
            hold_usd: Some(0.000_42),
            trace_id: Some(format!("{:032x}", n as u128 * 7919)),
        }));
        out.push(Entry::End(End {
            id,
            time_ms: time_ms + 1,
            provider: Some("mock".into()),
            model: Some("gpt-4o-mini".into()),
            status: 200,
            error_class: None,
            latency_ms: 0.84,
            ttft_ms: None,
            input_tokens: Some(27),
            output_tokens: Some(12),
            cached_tokens: Some(0),
            reasoning_tokens: None,
            usage_source: Some("reported".into()),
            cost_usd: Some(0.000_011_25),
            saved_usd: None,
            price_version: Some("builtin-2026-11".into()),
            cache: "MISS".into(),
            attempts: vec![Attempt {
                target: "mock/gpt-4o-mini".into(),
                jurisdiction: None,
                start_ms: 0.05,
                duration_ms: 0.71,
                outcome: "ok".into(),
                error_class: None,
                status: Some(200),
                span_id: [0; 8],
            }],
            excluded: Vec::new(),
            response_body: None,
        }));
    }
    out
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let a = args()?;
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("records.db");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let storage = rt.block_on(async {
        let s = Storage::connect(&format!("sqlite:{}", path.display())).await?;
        s.migrate().await?;
        if a.bare
            && let Storage::Sqlite(p) = &s
        {
            for index in INDEXES {
                sqlx::query(&format!("DROP INDEX {index}"))
                    .execute(p)
                    .await?;
            }
        }
        anyhow::Ok(s)
    })?;
    let entries = entries(a.calls, a.tags);
    if a.driver == "none" {
        rt.block_on(storage.close());
        println!(
            "{} calls' entries built",
            std::hint::black_box(entries).len() / 2
        );
        return Ok(());
    }
    if a.driver == "sqlx" {
        rt.block_on(async {
            for tx in entries.chunks(TX_ENTRIES) {
                write_batch(&storage, tx).await?;
            }
            storage.close().await;
            anyhow::Ok(())
        })?;
    } else {
        rt.block_on(storage.close());
        let mut conn = Connection::open(&path)?;
        conn.execute_batch(
            "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; PRAGMA secure_delete = FAST; \
             PRAGMA temp_store = MEMORY; PRAGMA busy_timeout = 5000;",
        )?;
        // The writer's own thread, fed over a channel as a runtime would.
        let (send, take) = mpsc::sync_channel::<Vec<Entry>>(4);
        let writer = std::thread::spawn(move || -> rusqlite::Result<()> {
            for batch in take {
                write_rusqlite(&mut conn, &batch)?;
            }
            Ok(())
        });
        for tx in entries.chunks(TX_ENTRIES) {
            send.send(tx.to_vec())?;
        }
        drop(send);
        writer.join().map_err(|_| "the writer thread panicked")??;
    }
    let check = Connection::open(&path)?;
    let rows: i64 = check.query_row(
        "SELECT count(*) FROM requests WHERE state = 'complete'",
        [],
        |r| r.get(0),
    )?;
    let sums: i64 = check.query_row(
        "SELECT coalesce(sum(requests), 0) FROM usage_sums WHERE span_ms = 3600000",
        [],
        |r| r.get(0),
    )?;
    println!(
        "{} calls, {} tags each, by {}: {rows} rows, {sums} in the sums",
        a.calls, a.tags, a.driver
    );
    if rows != a.calls as i64 || sums != a.calls as i64 {
        return Err("rows or sums missing".into());
    }
    Ok(())
}

/// One transaction: each new row and its tags by a prepared statement, the
/// sums of the transaction's calls one upsert per group. Every call in this
/// measurement has its begin and end in the same transaction.
fn write_rusqlite(conn: &mut Connection, entries: &[Entry]) -> rusqlite::Result<()> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let ends: HashMap<&str, &End> = entries
        .iter()
        .filter_map(|e| match e {
            Entry::End(e) => Some((e.id.as_str(), e)),
            _ => None,
        })
        .collect();
    let mut batch = Batch::default();
    {
        let mut row = tx.prepare_cached(INSERT_ONE)?;
        let mut tag = tx.prepare_cached(TAG_ONE)?;
        for b in entries.iter().filter_map(|e| match e {
            Entry::Begin(b) => Some(b),
            _ => None,
        }) {
            let e = ends.get(b.id.as_str()).copied();
            let attempts =
                e.map(|e| serde_json::to_string(&e.attempts).unwrap_or_else(|_| "[]".into()));
            let excluded =
                e.map(|e| serde_json::to_string(&e.excluded).unwrap_or_else(|_| "[]".into()));
            let inserted = row.execute(params![
                b.id,
                b.time_ms,
                b.instance,
                if e.is_some() { "complete" } else { "begun" },
                b.key_id,
                b.route,
                b.requested_model,
                b.dialect,
                b.stream,
                "metadata",
                b.est_input_tokens as i64,
                serde_json::to_string(&b.metadata).unwrap_or_else(|_| "{}".into()),
                b.request_body,
                e.and_then(|e| e.provider.as_deref()),
                e.and_then(|e| e.model.as_deref()),
                e.map(|e| i64::from(e.status)),
                e.and_then(|e| e.error_class.as_deref()),
                e.map(|e| e.latency_ms),
                e.and_then(|e| e.ttft_ms),
                e.and_then(|e| e.input_tokens).map(|v| v as i64),
                e.and_then(|e| e.output_tokens).map(|v| v as i64),
                e.and_then(|e| e.cached_tokens).map(|v| v as i64),
                e.and_then(|e| e.reasoning_tokens).map(|v| v as i64),
                e.and_then(|e| e.usage_source.as_deref()),
                e.and_then(|e| e.cost_usd),
                e.and_then(|e| e.saved_usd),
                e.and_then(|e| e.price_version.as_deref()),
                e.map(|e| e.cache.as_str()),
                attempts.as_deref().unwrap_or("[]"),
                excluded.as_deref().unwrap_or("[]"),
                e.and_then(|e| e.response_body.as_deref()),
                b.hold_usd,
                b.trace_id,
            ])? == 1;
            if !inserted {
                continue;
            }
            let tags: Vec<(String, String)> = b
                .metadata
                .iter()
                .map(|(k, v)| (k.clone(), tag_value(v)))
                .collect();
            for (k, v) in &tags {
                tag.execute(params![b.id, k, v, b.time_ms])?;
            }
            if let Some(e) = e {
                let s = Sums::finished(
                    b.time_ms,
                    b.key_id.clone(),
                    b.route.clone(),
                    "{}",
                    e.provider.clone(),
                    e.model.clone(),
                    Some(i64::from(e.status)),
                    false,
                )
                .with_usage(
                    e.input_tokens.map(|v| v as i64),
                    e.output_tokens.map(|v| v as i64),
                    e.cached_tokens.map(|v| v as i64),
                    e.cost_usd,
                    e.saved_usd,
                )
                .with_tags(tags);
                batch.add(&s);
            }
        }
    }
    flush(&tx, &batch)?;
    tx.commit()
}

/// The batch's sums, one upsert per group, as `rollup::flush_sums`.
fn flush(tx: &rusqlite::Transaction<'_>, b: &Batch) -> rusqlite::Result<()> {
    let mut sums = tx.prepare_cached(UPSERT)?;
    for ((span, start, provider, model, key, route, status), t) in &b.sums {
        sums.execute(params![
            span,
            start,
            provider,
            model,
            key,
            route,
            status,
            t.requests,
            t.errors,
            t.input_tokens,
            t.output_tokens,
            t.cached_tokens,
            t.cost_usd,
            t.saved_usd
        ])?;
    }
    let mut tags = tx.prepare_cached(UPSERT_TAG)?;
    for ((tag, value, (span, start, provider, model, key, route, status)), t) in &b.tags {
        tags.execute(params![
            tag,
            value,
            span,
            start,
            provider,
            model,
            key,
            route,
            status,
            t.requests,
            t.errors,
            t.input_tokens,
            t.output_tokens,
            t.cached_tokens,
            t.cost_usd,
            t.saved_usd
        ])?;
    }
    let mut sets = tx.prepare_cached(UPSERT_SET)?;
    for ((set, (span, start, provider, model, key, route, status)), t) in &b.sets {
        sets.execute(params![
            set,
            span,
            start,
            provider,
            model,
            key,
            route,
            status,
            t.requests,
            t.errors,
            t.input_tokens,
            t.output_tokens,
            t.cached_tokens,
            t.cost_usd,
            t.saved_usd
        ])?;
    }
    let mut spend = tx.prepare_cached(UPSERT_SPEND)?;
    for ((key, day), cost) in &b.spend {
        spend.execute(params![key, day, cost])?;
    }
    Ok(())
}
