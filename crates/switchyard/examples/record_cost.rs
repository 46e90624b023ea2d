//! What one call's record costs to put into SQLite: the same calls, the
//! same schema (Switchyard's migrations), the same transactions of 250
//! spool entries as the log writer, written by the writer's own SQLite
//! connection (`writer::Lite`).
//!
//! Run under callgrind twice, with `calls` and with 0, and divide the
//! difference by `calls`: instructions per record, every thread counted,
//! the same on every run (`bench/record-cost.sh` does this).
//!
//! ```text
//! cargo build --profile profiling --example record_cost
//! valgrind --tool=callgrind --callgrind-out-file=/dev/null \
//!     target/profiling/examples/record_cost writer 3000
//! ```
//!
//! Driver `none` only builds the calls' entries: subtract it to see the
//! database's part alone. Driver `segments` is a sketch of a segment
//! store (see `write_segments`), for what one would cost. (Before the writer had its own connection, the
//! same rows through sqlx cost 84.8k instructions per record past building
//! them, and 57.0k through rusqlite: BENCHMARKS.md.)
//!
//! Options after the count: `--tags N` (tags per call, default 0, as in
//! the benchmark), `--tag-values N` (the distinct values each tag takes,
//! default 7; one per call, as a session id, is the sums' worst case), `--bare` (the `requests` table's eight secondary
//! indexes dropped first, to see what they cost), `--split` (each call's
//! begin and end in different transactions, as for a call longer than
//! the writer's round: the row is inserted begun, then updated; without
//! it, a begin and its end are side by side and make one insert),
//! `--held` (the `--split` order of entries, read by the writer in rounds
//! of 250 that hold each begin back until its end, `writer::hold`, as the
//! gateway does: what a call longer than the writer's round costs now).

use std::sync::Arc;

use switchyard::config::LogMode;
use switchyard::log_store::spool::Checkpoint;
use switchyard::log_store::writer::Lite;
use switchyard::log_store::writer::hold::{Holding, transactions};
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
const INSTANCE: &str = "0193a6b2-bench-instance";

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

struct Args {
    driver: String,
    calls: usize,
    tags: usize,
    tag_values: usize,
    bare: bool,
    split: bool,
    held: bool,
}

fn args() -> Result<Args, String> {
    let mut it = std::env::args().skip(1);
    let usage = "usage: record_cost <writer|none|segments> <calls> [--tags N] [--tag-values N] [--bare] [--split] [--held]";
    let driver = it.next().ok_or(usage)?;
    if !["writer", "none", "segments"].contains(&driver.as_str()) {
        return Err(usage.into());
    }
    let calls = it.next().and_then(|c| c.parse().ok()).ok_or(usage)?;
    let mut a = Args {
        driver,
        calls,
        tags: 0,
        tag_values: 7,
        bare: false,
        split: false,
        held: false,
    };
    while let Some(flag) = it.next() {
        match flag.as_str() {
            "--tags" => a.tags = it.next().and_then(|n| n.parse().ok()).ok_or(usage)?,
            "--tag-values" => {
                a.tag_values = it
                    .next()
                    .and_then(|n| n.parse().ok())
                    .filter(|&n| n > 0)
                    .ok_or(usage)?
            }
            "--bare" => a.bare = true,
            "--split" => a.split = true,
            "--held" => a.held = true,
            _ => return Err(usage.into()),
        }
    }
    Ok(a)
}

/// A call as the benchmark's same-dialect JSON case records it: a key, a
/// price, one attempt, usage reported; a begin and its end side by side.
fn entries(calls: usize, tags: usize, tag_values: usize) -> Vec<Entry> {
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
                    serde_json::Value::from(format!("value{}", n % tag_values)),
                )
            })
            .collect();
        out.push(Entry::Begin(Begin {
            id: id.clone(),
            time_ms,
            instance: INSTANCE.into(),
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

/// The same entries with each call's end in a later transaction than its
/// begin: the first transaction holds begins only, each after it the ends
/// of earlier calls and the begins of later ones (`TX_ENTRIES / 2` each).
fn split(side_by_side: Vec<Entry>) -> Vec<Entry> {
    let half = TX_ENTRIES / 2;
    let (mut begins, mut ends) = (Vec::new(), Vec::new());
    for e in side_by_side {
        match e {
            Entry::Begin(_) => begins.push(e),
            _ => ends.push(e),
        }
    }
    let mut out = Vec::with_capacity(begins.len() * 2);
    let mut ends = ends.into_iter();
    let mut begins = begins.into_iter().peekable();
    let mut first = true;
    while begins.peek().is_some() {
        out.extend(begins.by_ref().take(half));
        if !first {
            out.extend(ends.by_ref().take(half));
        }
        first = false;
    }
    out.extend(ends);
    out
}

/// The writer's rounds: `TX_ENTRIES` entries read at a time, sorted by
/// [`Holding`] (begins held until their end), written a transaction each.
async fn write_held(lite: &Lite, entries: Vec<Entry>) -> anyhow::Result<()> {
    let at = |n: usize| Checkpoint {
        seq: 1,
        offset: n as u64,
    };
    let total = entries.len();
    let mut entries = entries.into_iter().enumerate().peekable();
    let mut hold = Holding::new(INSTANCE, at(0), true);
    while entries.peek().is_some() {
        let read: Vec<(Checkpoint, Entry)> = entries
            .by_ref()
            .take(TX_ENTRIES)
            .map(|(n, e)| (at(n), e))
            .collect();
        let end = read.last().map_or(total, |(c, _)| c.offset as usize + 1);
        let round = hold.round(read, at(end), T0, end == total);
        let durable = round.durable;
        let out = Arc::new(round.entries);
        for range in transactions(&out, TX_ENTRIES) {
            lite.write(Arc::clone(&out), range).await?;
        }
        hold.written(at(end), durable);
    }
    Ok(())
}

/// A sketch of a segment store, for its cost alone: each transaction's
/// entries, as the spool encodes them, in one row with the time range they
/// cover (no sums, no summaries for filters). The writer would store the
/// spool's bytes as read; encoding them again here makes this an upper
/// bound. Returns the segments stored.
fn write_segments(
    path: &std::path::Path,
    entries: &[Entry],
) -> Result<i64, Box<dyn std::error::Error>> {
    let mut conn = rusqlite::Connection::open(path)?;
    conn.execute_batch(
        "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; \
         CREATE TABLE record_segments (seq INTEGER PRIMARY KEY, min_time_ms INTEGER NOT NULL, \
         max_time_ms INTEGER NOT NULL, records INTEGER NOT NULL, entries BLOB NOT NULL); \
         CREATE INDEX record_segments_time ON record_segments (max_time_ms);",
    )?;
    for chunk in entries.chunks(TX_ENTRIES) {
        let mut blob = Vec::with_capacity(chunk.len() * 400);
        let (mut min, mut max) = (i64::MAX, i64::MIN);
        for e in chunk {
            blob.extend_from_slice(&e.encode()?);
            if let Entry::Begin(b) = e {
                min = min.min(b.time_ms);
                max = max.max(b.time_ms);
            }
        }
        let tx = conn.transaction()?;
        tx.prepare_cached(
            "INSERT INTO record_segments (min_time_ms, max_time_ms, records, entries) VALUES (?1, ?2, ?3, ?4)",
        )?
        .execute(rusqlite::params![min, max, chunk.len() as i64 / 2, blob])?;
        tx.commit()?;
    }
    Ok(conn.query_row("SELECT count(*) FROM record_segments", [], |r| r.get(0))?)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let a = args()?;
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("records.db");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let entries = entries(a.calls, a.tags, a.tag_values);
    let entries = if a.split || a.held {
        split(entries)
    } else {
        entries
    };
    let calls = entries.len() / 2;
    // Held: handed to the writer's rounds whole, as it decodes them.
    let (entries, held) = if a.held {
        (Arc::new(Vec::new()), Some(entries))
    } else {
        (Arc::new(entries), None)
    };
    rt.block_on(async {
        let url = format!("sqlite:{}", path.display());
        let s = Storage::connect(&url).await?;
        s.migrate().await?;
        let Storage::Sqlite(pool) = &s else {
            unreachable!("a sqlite: URL opens SQLite")
        };
        if a.bare {
            for index in INDEXES {
                sqlx::query(&format!("DROP INDEX {index}"))
                    .execute(pool)
                    .await?;
            }
        }
        if a.driver == "writer" {
            let lite = Lite::open(pool, &url)?;
            if let Some(held) = held {
                write_held(&lite, held).await?;
            } else {
                for start in (0..entries.len()).step_by(TX_ENTRIES) {
                    let range = start..entries.len().min(start + TX_ENTRIES);
                    lite.write(Arc::clone(&entries), range).await?;
                }
            }
        }
        s.close().await;
        anyhow::Ok(())
    })?;
    if a.driver == "segments" {
        let stored = write_segments(&path, &entries)?;
        println!("{calls} calls in {stored} segments");
        return Ok(());
    }
    if a.driver == "none" {
        println!("{calls} calls' entries built");
        return Ok(());
    }
    let check = rusqlite::Connection::open(&path)?;
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
        "{} calls, {} tags each: {rows} rows, {sums} in the sums",
        a.calls, a.tags
    );
    if rows != a.calls as i64 || sums != a.calls as i64 {
        return Err("rows or sums missing".into());
    }
    Ok(())
}
