//! The background writer: spool → database, in batches, idempotently.
//!
//! Each round reads what the spool holds past its checkpoint, upserts it in
//! one transaction, and moves the checkpoint only after the commit. A
//! failed round (database down) is retried with backoff; the spool holds
//! everything meanwhile. Rounds also keep this process's heartbeat, settle
//! the unfinished requests of processes that died as `interrupted` with
//! estimated usage, and apply retention in bounded batches.

use std::sync::Arc;
use std::time::Duration;

use sqlx::Row;
use tokio_util::sync::CancellationToken;

use crate::FastSet;

use super::rollup::{Batch, Sums, flush_sums};
use super::spool::Spool;

pub mod hold;
mod statements;
use super::Entry;
use crate::gateway::Gateway;
use crate::storage::{Storage, pg};
use hold::Holding;

/// Entries read from the spool at a time.
const BATCH: usize = 2000;
/// Entries per transaction at most: a transaction holds the database's
/// write lock (SQLite has one) for a few milliseconds, not for a whole
/// batch, so a tool call's audit record waits at most that long.
const TX_ENTRIES: usize = 250;
/// Entries the writer handles between yields to the requests it shares the
/// runtime with (each costs it some tens of microseconds).
const YIELD_EVERY: usize = 32;
/// How long the writer lets entries gather after the first one arrives.
const GATHER: Duration = Duration::from_millis(100);

/// Runs until `stop` is cancelled, then drains what it can.
pub async fn run(gw: Arc<Gateway>, stop: CancellationToken) {
    let rec = &gw.recorder;
    let storage = &gw.storage;
    let spool_dir = rec.spool.dir().display().to_string();
    if let Err(e) = heartbeat(storage, &rec.instance, &spool_dir).await {
        tracing::warn!(error = %e, "Could not record this process's heartbeat");
    }
    // Today's partition (Postgres) before the first records go in.
    if let Err(e) = super::partitions::ensure(storage, crate::clock::unix_ms()).await {
        tracing::warn!(error = %e, "Could not make the request records' day partitions");
    }
    let mut backoff = Duration::from_millis(100);
    let mut last_chores = tokio::time::Instant::now() - Duration::from_secs(3600);
    let mut settled_previous = false;
    // Begins wait for their ends on SQLite only (see `hold`).
    let sqlite = matches!(storage, Storage::Sqlite(_));
    let mut hold = Holding::new(&rec.instance, rec.spool.checkpoint(), sqlite);
    loop {
        let drained = match drain_once(&gw, &mut hold, false).await {
            Ok(n) => {
                backoff = Duration::from_millis(100);
                rec.pace.writing(true);
                n
            }
            Err(e) => {
                rec.pace.writing(false);
                tracing::warn!(error = %e, pending_bytes = rec.spool.pending(), "Could not write request logs; retrying (the spool keeps them)");
                tokio::select! {
                    _ = stop.cancelled() => break,
                    _ = tokio::time::sleep(backoff) => {}
                }
                backoff = (backoff * 2).min(Duration::from_secs(5));
                continue;
            }
        };
        // Every earlier owner of this spool is gone (we hold its lock): once
        // their entries are in, their unfinished requests are settled.
        if !settled_previous && drained == 0 {
            match settle_previous_owners(&gw, &spool_dir).await {
                Ok(n) => {
                    if n > 0 {
                        tracing::info!(requests = n, "Settled requests interrupted by a restart");
                    }
                    settled_previous = true;
                    gw.budget.mark_ready();
                }
                Err(e) => tracing::warn!(error = %e, "Could not settle interrupted requests"),
            }
        }
        if last_chores.elapsed() > Duration::from_secs(5) {
            last_chores = tokio::time::Instant::now();
            crate::storage::deprioritize_workers();
            if let Err(e) = chores(&gw).await {
                tracing::warn!(error = %e, "Log housekeeping failed");
            }
        }
        if drained >= BATCH {
            continue;
        }
        tokio::select! {
            _ = stop.cancelled() => break,
            _ = rec.notify.notified() => {
                // Let a burst gather into one transaction: fewer, larger
                // transactions cost the database far less per record. Not
                // while requests wait for the writer.
                tokio::select! {
                    _ = tokio::time::sleep(GATHER) => {}
                    _ = rec.pace.hurried() => {}
                }
            }
            _ = tokio::time::sleep(Duration::from_millis(500)) => {}
        }
    }
    // Shutdown: one last drain, bounded in time by the caller.
    rec.pace.writing(false);
    for _ in 0..50 {
        // Whatever is still held is written: the next owner of the spool
        // settles it.
        match drain_once(&gw, &mut hold, true).await {
            Ok(0) if hold.held() == 0 => break,
            Ok(_) => {}
            Err(e) => {
                tracing::warn!(error = %e, "Request logs left in the spool at shutdown; the next start writes them");
                break;
            }
        }
    }
    let _ = off_runtime(&rec.spool, Spool::sync).await;
}

/// One batch from the spool into the database, past the begins `hold`
/// keeps back (all of them written, when `release`). Returns the entries
/// read. A round that fails leaves `hold` to read again from the spool's
/// checkpoint.
async fn drain_once(gw: &Gateway, hold: &mut Holding, release: bool) -> anyhow::Result<usize> {
    let outcome = write_round(gw, hold, release).await;
    if outcome.is_err() {
        hold.reset();
    }
    outcome
}

async fn write_round(gw: &Gateway, hold: &mut Holding, release: bool) -> anyhow::Result<usize> {
    let spool = &gw.recorder.spool;
    let from = hold.cursor();
    let (lines, to) = off_runtime(spool, move |s| s.read_placed(from, BATCH)).await?;
    let read = lines.len();
    let mut placed = Vec::with_capacity(lines.len());
    for (n, (at, line)) in lines.iter().enumerate() {
        // The writer shares the runtime with requests: a few dozen entries
        // at a time, then their turn.
        if n % YIELD_EVERY == YIELD_EVERY - 1 {
            tokio::task::yield_now().await;
        }
        match Entry::decode(line) {
            Ok(e) => placed.push((*at, e)),
            // Not ours to fix; skipping it must not block everything after.
            Err(e) => tracing::error!(error = %e, "Unreadable spool entry skipped"),
        }
    }
    drop(lines);
    let (counted, counted_to) = hold.unseen(to);
    let round = hold.round(placed, to, crate::clock::unix_ms(), release);
    let durable = round.durable;
    let entries = Arc::new(round.entries);
    for range in hold::transactions(&entries, TX_ENTRIES) {
        let _turn = gw.db_writes.lock().await;
        write_range(gw, &entries, range).await?;
        // Requests waiting for the writer (see `pace`) go on after each
        // transaction, not after the whole round: a wait is one
        // transaction's few milliseconds.
        gw.recorder.pace.wrote();
    }
    gw.conversations
        .committed(entries.iter().filter_map(|e| match e {
            Entry::Response(r) => Some((r.id.as_str(), false)),
            Entry::ResponseDeleted { id } => Some((id.as_str(), true)),
            _ => None,
        }));
    if to != from || durable != hold.durable() {
        let moved = (durable != hold.durable()).then_some(durable);
        off_runtime(spool, move |s| s.advance(counted, counted_to, moved)).await?;
        // A round of held begins alone wrote nothing, but the backlog
        // shrank: whoever waits on it goes on.
        gw.recorder.pace.wrote();
    }
    hold.written(to, durable);
    Ok(read)
}

/// Runs `f` on the spool on a blocking thread: the spool's reads and its
/// checkpoint's `fdatasync` (milliseconds on a slow disk) must not hold up
/// the runtime's worker, which on a one-core machine is every request's.
async fn off_runtime<T: Send + 'static>(
    spool: &Arc<Spool>,
    f: impl FnOnce(&Spool) -> std::io::Result<T> + Send + 'static,
) -> std::io::Result<T> {
    let spool = Arc::clone(spool);
    tokio::task::spawn_blocking(move || f(&spool))
        .await
        .map_err(std::io::Error::other)?
}

#[macro_use]
mod upsert;
use upsert::*;
mod chores;
use chores::{chores, heartbeat, settle_previous_owners};
pub use chores::{retention, settle_interrupted};
mod lite;
pub use lite::Lite;
pub(crate) use lite::THREAD as SQLITE_THREAD;

/// Writes entries in one transaction; safe to repeat.
pub async fn write_batch(gw: &Gateway, entries: &[Entry]) -> anyhow::Result<()> {
    write_range(gw, &Arc::new(entries.to_vec()), 0..entries.len()).await
}

/// Writes `entries[range]` in one transaction: on SQLite by the records'
/// own connection (see [`lite`]), on Postgres through the pool.
async fn write_range(
    gw: &Gateway,
    entries: &Arc<Vec<Entry>>,
    range: std::ops::Range<usize>,
) -> anyhow::Result<()> {
    match (&gw.storage, &gw.recorder.sqlite) {
        (Storage::Sqlite(_), Some(lite)) => lite.write(Arc::clone(entries), range).await,
        (Storage::Sqlite(_), None) => {
            anyhow::bail!("the SQLite records writer was not opened")
        }
        (Storage::Postgres(p), _) => {
            let mut tx = p.begin().await?;
            // Partitioned by time_ms: the key includes it (see migration 13).
            upsert_all!(&mut *tx, pg, "(id, time_ms)", &entries[range]);
            tx.commit().await?;
            Ok(())
        }
    }
}

fn log_mode_str(m: crate::config::LogMode) -> &'static str {
    match m {
        crate::config::LogMode::Full => "full",
        crate::config::LogMode::Metadata => "metadata",
        crate::config::LogMode::None => "none",
    }
}

/// A tag's value as stored and matched: strings as they are, numbers and
/// booleans in their JSON spelling.
pub fn tag_value(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// The `attempts` column: `attempts` as `serde_json::to_string` writes
/// them, written field by field. Through serde's generic map every key of
/// every attempt was escaped again: 2.5k instructions a record, a third of
/// that now.
pub(crate) fn attempts_json(attempts: &[crate::routing::Attempt]) -> String {
    fn text(out: &mut Vec<u8>, s: Option<&str>) {
        match s {
            // Escaped as serde_json escapes; writing to a Vec cannot fail.
            Some(s) => drop(serde_json::to_writer(&mut *out, s)),
            None => out.extend_from_slice(b"null"),
        }
    }
    fn number<T: serde::Serialize>(out: &mut Vec<u8>, n: &T) {
        drop(serde_json::to_writer(&mut *out, n));
    }
    let mut out = Vec::with_capacity(2 + 160 * attempts.len());
    out.push(b'[');
    for (i, a) in attempts.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(b"{\"target\":");
        text(&mut out, Some(&a.target));
        out.extend_from_slice(b",\"jurisdiction\":");
        text(&mut out, a.jurisdiction.as_deref());
        out.extend_from_slice(b",\"start_ms\":");
        number(&mut out, &a.start_ms);
        out.extend_from_slice(b",\"duration_ms\":");
        number(&mut out, &a.duration_ms);
        out.extend_from_slice(b",\"outcome\":");
        text(&mut out, Some(&a.outcome));
        out.extend_from_slice(b",\"error_class\":");
        text(&mut out, a.error_class.as_deref());
        out.extend_from_slice(b",\"status\":");
        number(&mut out, &a.status);
        out.push(b'}');
    }
    out.push(b']');
    String::from_utf8(out).unwrap_or_else(|_| "[]".into())
}

#[cfg(test)]
mod tests {
    use crate::routing::Attempt;

    /// Exactly serde's text, so the column reads the same whichever wrote
    /// it; a field added to `Attempt` fails here until it is written too.
    #[test]
    fn attempts_are_written_as_serde_writes_them() {
        let a = |target: &str, start_ms: f64, error: Option<&str>, status: Option<u16>| Attempt {
            target: target.into(),
            jurisdiction: error.map(|_| "eu".to_string()),
            start_ms,
            duration_ms: start_ms * 3.0 + 1e-7,
            outcome: if error.is_some() { "error" } else { "ok" }.into(),
            error_class: error.map(str::to_owned),
            status,
            span_id: [7; 8],
        };
        for attempts in [
            vec![],
            vec![a("openai/gpt-4o-mini", 0.05, None, None)],
            vec![
                a(
                    "q\"uo\\te/\u{1}\n é",
                    12345.678,
                    Some("rate_limited"),
                    Some(429),
                ),
                a("b/m", 0.0, None, Some(200)),
                a("c/m", 1e21, Some("x"), None),
            ],
        ] {
            assert_eq!(
                super::attempts_json(&attempts),
                serde_json::to_string(&attempts).unwrap()
            );
        }
    }
}
