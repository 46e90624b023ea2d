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

use crate::{FastMap, FastSet};

use super::rollup::{Batch, DAY_MS, HOUR_MS, Sums, flush_sums};
use super::spool::Spool;

mod statements;
use super::{Begin, End, Entry};
use crate::gateway::Gateway;
use crate::storage::{Storage, pg};

/// Entries read from the spool at a time.
const BATCH: usize = 2000;
/// Entries per transaction at most: a transaction holds the database's
/// write lock (SQLite has one) for a few milliseconds, not for a whole
/// batch, so a tool call's audit record waits at most that long.
const TX_ENTRIES: usize = 250;
/// A process whose heartbeat is older than this is presumed dead.
const DEAD_AFTER_MS: i64 = 30_000;
/// Entries the writer handles between yields to the requests it shares the
/// runtime with (each costs it some tens of microseconds).
const YIELD_EVERY: usize = 32;
/// How long the writer lets entries gather after the first one arrives.
const GATHER: Duration = Duration::from_millis(100);
/// Rows deleted per retention statement.
const RETENTION_BATCH: i64 = 5000;

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
    loop {
        let drained = match drain_once(&gw).await {
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
        match drain_once(&gw).await {
            Ok(0) => break,
            Ok(_) => {}
            Err(e) => {
                tracing::warn!(error = %e, "Request logs left in the spool at shutdown; the next start writes them");
                break;
            }
        }
    }
    let _ = off_runtime(&rec.spool, Spool::sync).await;
}

/// One batch from the spool into the database. Returns entries written.
pub async fn drain_once(gw: &Gateway) -> anyhow::Result<usize> {
    let spool = &gw.recorder.spool;
    let (from, lines, to) = off_runtime(spool, |s| {
        let from = s.checkpoint();
        let (lines, to) = s.read(from, BATCH)?;
        Ok((from, lines, to))
    })
    .await?;
    if lines.is_empty() {
        if to != from {
            off_runtime(spool, move |s| s.commit(from, to)).await?;
        }
        return Ok(0);
    }
    let mut entries = Vec::with_capacity(lines.len());
    for (n, line) in lines.iter().enumerate() {
        // The writer shares the runtime with requests: a few dozen entries
        // at a time, then their turn.
        if n % YIELD_EVERY == YIELD_EVERY - 1 {
            tokio::task::yield_now().await;
        }
        match Entry::decode(line) {
            Ok(e) => entries.push(e),
            // Not ours to fix; skipping it must not block everything after.
            Err(e) => tracing::error!(error = %e, "Unreadable spool entry skipped"),
        }
    }
    let entries = Arc::new(entries);
    for start in (0..entries.len()).step_by(TX_ENTRIES) {
        let range = start..entries.len().min(start + TX_ENTRIES);
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
    off_runtime(spool, move |s| s.commit(from, to)).await?;
    Ok(entries.len())
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

/// The UPDATE that finishes a request in state `$from`.
macro_rules! finish_sql {
    ($from:literal) => {
        concat!(
            "UPDATE requests SET state = 'complete', provider = ?, model = ?, status = ?, error_class = ?, latency_ms = ?, ttft_ms = ?, \
             input_tokens = ?, output_tokens = ?, cached_tokens = ?, reasoning_tokens = ?, usage_source = ?, cost_usd = ?, saved_usd = ?, \
             price_version = ?, cache = ?, attempts = ?, excluded = ?, response_body = ? WHERE id = ? AND state = '",
            $from,
            "' RETURNING time_ms, key_id, route, metadata"
        )
    };
}

/// [`finish_sql`] bound to the `End` `$e`.
macro_rules! end_update {
    ($sql:expr, $e:expr) => {
        sqlx::query($sql)
            .bind(&$e.provider)
            .bind(&$e.model)
            .bind(i64::from($e.status))
            .bind(&$e.error_class)
            .bind($e.latency_ms)
            .bind($e.ttft_ms)
            .bind($e.input_tokens.map(|v| v as i64))
            .bind($e.output_tokens.map(|v| v as i64))
            .bind($e.cached_tokens.map(|v| v as i64))
            .bind($e.reasoning_tokens.map(|v| v as i64))
            .bind(&$e.usage_source)
            .bind($e.cost_usd)
            .bind($e.saved_usd)
            .bind(&$e.price_version)
            .bind(&$e.cache)
            .bind(serde_json::to_string(&$e.attempts).unwrap_or_else(|_| "[]".into()))
            .bind(serde_json::to_string(&$e.excluded).unwrap_or_else(|_| "[]".into()))
            .bind(&$e.response_body)
            .bind(&$e.id)
    };
}

/// The sums of a request just finished by `End` `$e`, from the row the
/// UPDATE returned (time_ms, key_id, route, metadata).
macro_rules! end_sums {
    ($r:expr, $e:expr) => {{
        let r = $r;
        let metadata: String = r.try_get("metadata")?;
        finished_by(
            $e,
            r.try_get("time_ms")?,
            r.try_get("key_id")?,
            r.try_get("route")?,
            &metadata,
        )
    }};
}

/// The sums of a request that `e` finished: its row's admission time, key,
/// route and metadata (the JSON object of its tags), `e`'s outcome.
fn finished_by(
    e: &End,
    time_ms: i64,
    key_id: Option<String>,
    route: Option<String>,
    metadata: &str,
) -> Sums {
    Sums::finished(
        time_ms,
        key_id,
        route,
        metadata,
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
}

/// The sums a stored, finished row added.
macro_rules! stored_sums {
    ($r:expr, $interrupted:expr) => {{
        let r = $r;
        let metadata: String = r.try_get("metadata")?;
        Sums::finished(
            r.try_get("time_ms")?,
            r.try_get("key_id")?,
            r.try_get("route")?,
            &metadata,
            r.try_get("provider")?,
            r.try_get("model")?,
            r.try_get("status")?,
            $interrupted,
        )
        .with_usage(
            r.try_get("input_tokens")?,
            r.try_get("output_tokens")?,
            r.try_get("cached_tokens")?,
            r.try_get("cost_usd")?,
            r.try_get("saved_usd")?,
        )
    }};
}

/// Rows per multi-row INSERT on Postgres (33 columns each: well inside its
/// limit on bound parameters).
const ROWS_PER_INSERT: usize = 100;

/// Splits `items` into runs of the sizes in `sizes` (largest first, the
/// last 1), so that a multi-row statement comes in a handful of shapes
/// that stay in the connection's prepared-statement cache: preparing a
/// statement of thousands of parameters costs more than running it.
fn fixed_chunks<'a, T>(
    mut items: &'a [T],
    sizes: &'static [usize],
) -> impl Iterator<Item = &'a [T]> {
    std::iter::from_fn(move || {
        let n = sizes.iter().copied().find(|&n| n <= items.len())?;
        let (head, rest) = items.split_at(n);
        items = rest;
        Some(head)
    })
}

const ROW_RUNS: &[usize] = &[ROWS_PER_INSERT, 20, 4, 1];
const TAG_RUNS: &[usize] = &[4 * ROWS_PER_INSERT, 80, 16, 4, 1];

/// The columns of a `requests` row written whole.
const REQUEST_COLUMNS: &str = "INSERT INTO requests (id, time_ms, instance, state, key_id, route, requested_model, dialect, stream, \
    log_mode, est_input_tokens, metadata, request_body, provider, model, status, error_class, latency_ms, ttft_ms, input_tokens, \
    output_tokens, cached_tokens, reasoning_tokens, usage_source, cost_usd, saved_usd, price_version, cache, attempts, excluded, \
    response_body, hold_usd, trace_id) ";

/// A request's row as the batch knows it: its begin, and its end when that
/// is in the same batch (then the row is written complete, in one insert).
struct NewRow<'a> {
    begin: &'a Begin,
    end: Option<&'a End>,
}

impl NewRow<'_> {
    /// The sums a complete row adds.
    fn sums(&self) -> Option<Sums> {
        let (b, e) = (self.begin, self.end?);
        let s = finished_by(e, b.time_ms, b.key_id.clone(), b.route.clone(), "{}").with_tags(
            b.metadata
                .iter()
                .map(|(k, v)| (k.clone(), tag_value(v)))
                .collect(),
        );
        Some(s)
    }
}

/// Inserts `$rows` (a slice of [`NewRow`]) with multi-row INSERTs that skip
/// ids already stored; evaluates to the ids inserted (Postgres).
macro_rules! insert_rows {
    ($tx:expr, $rows:expr) => {{
        let tx = $tx;
        let mut inserted: FastSet<String> = FastSet::default();
        for chunk in fixed_chunks($rows, ROW_RUNS) {
            tokio::task::yield_now().await;
            let sql = statements::insert_requests(chunk.len());
            let mut q = sqlx::query_scalar::<sqlx::Postgres, String>(&sql);
            for r in chunk {
                let b = r.begin;
                let e = r.end;
                q = q
                    .bind(b.id.as_str())
                    .bind(b.time_ms)
                    .bind(b.instance.as_str())
                    .bind(if e.is_some() { "complete" } else { "begun" })
                    .bind(b.key_id.as_deref())
                    .bind(b.route.as_deref())
                    .bind(b.requested_model.as_str())
                    .bind(b.dialect.as_str())
                    .bind(b.stream)
                    .bind(log_mode_str(b.log_mode))
                    .bind(b.est_input_tokens as i64)
                    .bind(serde_json::to_string(&b.metadata).unwrap_or_else(|_| "{}".into()))
                    .bind(b.request_body.as_deref())
                    .bind(e.and_then(|e| e.provider.as_deref()))
                    .bind(e.and_then(|e| e.model.as_deref()))
                    .bind(e.map(|e| i64::from(e.status)))
                    .bind(e.and_then(|e| e.error_class.as_deref()))
                    .bind(e.map(|e| e.latency_ms))
                    .bind(e.and_then(|e| e.ttft_ms))
                    .bind(e.and_then(|e| e.input_tokens).map(|v| v as i64))
                    .bind(e.and_then(|e| e.output_tokens).map(|v| v as i64))
                    .bind(e.and_then(|e| e.cached_tokens).map(|v| v as i64))
                    .bind(e.and_then(|e| e.reasoning_tokens).map(|v| v as i64))
                    .bind(e.and_then(|e| e.usage_source.as_deref()))
                    .bind(e.and_then(|e| e.cost_usd))
                    .bind(e.and_then(|e| e.saved_usd))
                    .bind(e.and_then(|e| e.price_version.as_deref()))
                    .bind(e.map(|e| e.cache.as_str()))
                    .bind(
                        e.map(|e| {
                            serde_json::to_string(&e.attempts).unwrap_or_else(|_| "[]".into())
                        })
                        .unwrap_or_else(|| "[]".into()),
                    )
                    .bind(
                        e.map(|e| {
                            serde_json::to_string(&e.excluded).unwrap_or_else(|_| "[]".into())
                        })
                        .unwrap_or_else(|| "[]".into()),
                    )
                    .bind(e.and_then(|e| e.response_body.as_deref()))
                    .bind(b.hold_usd)
                    .bind(b.trace_id.as_deref());
            }
            let ids: Vec<String> = q.fetch_all(&mut *tx).await?;
            inserted.extend(ids);
        }
        // Tags of the rows just inserted (a row already stored has them).
        let tags: Vec<(&str, &String, String, i64)> = $rows
            .iter()
            .filter(|r| inserted.contains(r.begin.id.as_str()))
            .flat_map(|r| {
                r.begin
                    .metadata
                    .iter()
                    .map(move |(k, v)| (r.begin.id.as_str(), k, tag_value(v), r.begin.time_ms))
            })
            .collect();
        for chunk in fixed_chunks(&tags, TAG_RUNS) {
            let sql = statements::insert_tags(chunk.len());
            let mut q = sqlx::query::<sqlx::Postgres>(&sql);
            for (id, tag, value, time) in chunk {
                q = q
                    .bind(*id)
                    .bind(tag.as_str())
                    .bind(value.as_str())
                    .bind(*time);
            }
            q.execute(&mut *tx).await?;
        }
        inserted
    }};
}

/// Finishes, one at a time, requests whose row is already stored, adding
/// what each changes to `$batch`.
macro_rules! finish_stored {
    ($tx:expr, $q:expr, $ends:expr, $batch:expr) => {{
        let tx = $tx;
        for e in $ends {
            // The usual step, begun -> complete, adds the request to the
            // sums; a replayed entry finds it complete and adds nothing.
            let finished = end_update!(&$q(finish_sql!("begun")), e)
                .fetch_optional(&mut *tx)
                .await?;
            if let Some(r) = finished {
                $batch.add(&end_sums!(&r, e));
            } else {
                // Settled as interrupted before its end arrived (its process
                // was presumed dead): the real outcome replaces the
                // estimate, in the sums too.
                let old = sqlx::query(&$q(
                    "SELECT time_ms, key_id, route, metadata, provider, model, status, input_tokens, output_tokens, cached_tokens, \
                     cost_usd, saved_usd FROM requests WHERE id = ? AND state = 'interrupted'",
                ))
                .bind(&e.id)
                .fetch_optional(&mut *tx)
                .await?;
                if let Some(old) = old {
                    $batch.add(&stored_sums!(&old, true).negated());
                    let r = end_update!(&$q(finish_sql!("interrupted")), e)
                        .fetch_one(&mut *tx)
                        .await?;
                    $batch.add(&end_sums!(&r, e));
                }
            }
        }
    }};
}

/// The ends among `entries`, by request id.
fn ends_by_id(entries: &[Entry]) -> FastMap<&str, &End> {
    entries
        .iter()
        .filter_map(|e| match e {
            Entry::End(e) => Some((e.id.as_str(), e)),
            _ => None,
        })
        .collect()
}

/// One batch in one transaction on Postgres (SQLite's is [`lite`]'s):
/// new rows by multi-row inserts (a request
/// whose begin and end are both in the batch is inserted complete), the
/// ends of rows already stored one by one, then the sums of everything the
/// batch finished, one upsert per group.
macro_rules! upsert_all {
    ($tx:expr, $q:expr, $unique:expr, $entries:expr) => {{
        let tx = $tx;
        let entries: &[Entry] = $entries;
        let ends = ends_by_id(entries);
        let rows: Vec<NewRow<'_>> = entries
            .iter()
            .filter_map(|e| match e {
                Entry::Begin(b) => Some(NewRow {
                    begin: b,
                    end: ends.get(b.id.as_str()).copied(),
                }),
                _ => None,
            })
            .collect();
        let inserted = insert_rows!(&mut *tx, &rows);
        let mut batch = Batch::default();
        let mut merged: FastSet<&str> = FastSet::default();
        for r in &rows {
            if r.end.is_some() && inserted.contains(r.begin.id.as_str()) {
                merged.insert(r.begin.id.as_str());
                if let Some(s) = r.sums() {
                    batch.add(&s);
                }
            }
        }
        let rest = entries.iter().filter_map(|e| match e {
            Entry::End(e) if !merged.contains(e.id.as_str()) => Some(e),
            _ => None,
        });
        finish_stored!(&mut *tx, $q, rest, batch);
        for e in entries {
            if let Entry::Gap { time_ms, dropped } = e {
                sqlx::query(&$q(&format!(
                    "INSERT INTO requests (id, time_ms, instance, state, requested_model, dialect, stream, log_mode, metadata) \
                     VALUES (?, ?, '-', 'gap', '-', '-', ?, 'none', ?) ON CONFLICT {} DO NOTHING",
                    $unique
                )))
                .bind(format!("gap_{time_ms}_{dropped}"))
                .bind(time_ms)
                .bind(false)
                .bind(format!("{{\"dropped\":{dropped}}}"))
                .execute(&mut *tx)
                .await?;
            }
        }
        flush_sums!(tx, $q, &batch);
        // Stored responses, and deletions, in the order they were spooled.
        for e in entries {
            match e {
                Entry::Response(r) => crate::conversations::store::insert_response!(tx, $q, r),
                Entry::ResponseDeleted { id } => {
                    crate::conversations::store::delete_response!(tx, $q, id)
                }
                _ => {}
            }
        }
    }};
}

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

async fn heartbeat(s: &Storage, instance: &str, spool: &str) -> Result<(), sqlx::Error> {
    let now = crate::clock::unix_ms();
    const Q: &str = "INSERT INTO instances (id, spool, started_ms, beat_ms) VALUES (?, ?, ?, ?) \
                     ON CONFLICT (id) DO UPDATE SET beat_ms = excluded.beat_ms";
    match s {
        Storage::Sqlite(p) => {
            sqlx::query(Q)
                .bind(instance)
                .bind(spool)
                .bind(now)
                .bind(now)
                .execute(p)
                .await?;
        }
        Storage::Postgres(p) => {
            sqlx::query(&pg(Q))
                .bind(instance)
                .bind(spool)
                .bind(now)
                .bind(now)
                .execute(p)
                .await?;
        }
    }
    Ok(())
}

/// Settles the unfinished requests of the processes that owned this spool
/// before us, and forgets those processes: the owner named in the spool
/// itself (we hold its lock, so it is gone), and any other process recorded
/// with this spool path whose heartbeat stopped. A path alone proves
/// nothing: replicas on other hosts (pods) use the same path for their own
/// folders, and their calls in flight are not ours to settle.
async fn settle_previous_owners(gw: &Gateway, spool: &str) -> anyhow::Result<usize> {
    const Q: &str = "SELECT id FROM instances WHERE spool = ? AND id <> ? AND beat_ms < ?";
    let me = &gw.recorder.instance;
    let dead_before = crate::clock::unix_ms() - DEAD_AFTER_MS;
    let stale: Vec<String> = match &gw.storage {
        Storage::Sqlite(p) => {
            sqlx::query_scalar(Q)
                .bind(spool)
                .bind(me)
                .bind(dead_before)
                .fetch_all(p)
                .await?
        }
        Storage::Postgres(p) => {
            sqlx::query_scalar(&pg(Q))
                .bind(spool)
                .bind(me)
                .bind(dead_before)
                .fetch_all(p)
                .await?
        }
    };
    // The spool's own earlier owners (one may have died before its first
    // heartbeat, so have no row), then those whose heartbeat stopped.
    let mut owners = gw.recorder.spool.previous_owners.clone();
    for s in stale {
        if !owners.contains(&s) {
            owners.push(s);
        }
    }
    let mut n = 0;
    for owner in owners {
        n += settle_interrupted(gw, Some(&owner)).await?;
        const D: &str = "DELETE FROM instances WHERE id = ?";
        match &gw.storage {
            Storage::Sqlite(p) => {
                sqlx::query(D).bind(&owner).execute(p).await?;
            }
            Storage::Postgres(p) => {
                sqlx::query(&pg(D)).bind(&owner).execute(p).await?;
            }
        }
    }
    if !gw.recorder.spool.previous_owners.is_empty() {
        let me = me.to_owned();
        off_runtime(&gw.recorder.spool, move |s| s.previous_owners_settled(&me))
            .await
            .map_err(|e| anyhow::anyhow!("the spool's OWNER file: {e}"))?;
    }
    Ok(n)
}

/// Heartbeat, settling of dead processes' requests, retention.
async fn chores(gw: &Gateway) -> anyhow::Result<()> {
    let spool = gw.recorder.spool.dir().display().to_string();
    heartbeat(&gw.storage, &gw.recorder.instance, &spool).await?;
    settle_interrupted(gw, None).await?;
    super::partitions::ensure(&gw.storage, crate::clock::unix_ms()).await?;
    retention(gw).await?;
    for _ in 0..4 {
        if crate::conversations::store::expire(
            &gw.storage,
            crate::clock::unix_ms(),
            RETENTION_BATCH / 10,
        )
        .await?
            < (RETENTION_BATCH / 10) as u64
        {
            break;
        }
    }
    Ok(())
}

/// Marks the `begun` requests of one dead process (or of every process
/// whose heartbeat stopped) as `interrupted`, with estimated usage: the
/// input estimate from admission, no output, cost at the target's price.
pub async fn settle_interrupted(gw: &Gateway, instance: Option<&str>) -> anyhow::Result<usize> {
    let s = &gw.storage;
    let dead_before = crate::clock::unix_ms() - DEAD_AFTER_MS;
    let select = match instance {
        Some(_) => {
            "SELECT id, requested_model, est_input_tokens, hold_usd FROM requests WHERE state = 'begun' AND instance = ?"
        }
        None => {
            "SELECT r.id, r.requested_model, r.est_input_tokens, r.hold_usd FROM requests r JOIN instances i ON i.id = r.instance \
                 WHERE r.state = 'begun' AND i.beat_ms < ?"
        }
    };
    let rows: Vec<(String, String, i64, Option<f64>)> = match s {
        Storage::Sqlite(p) => {
            let q = sqlx::query(select);
            let q = match instance {
                Some(i) => q.bind(i.to_owned()),
                None => q.bind(dead_before),
            };
            q.fetch_all(p)
                .await?
                .iter()
                .map(|r| Ok((r.try_get(0)?, r.try_get(1)?, r.try_get(2)?, r.try_get(3)?)))
                .collect::<Result<_, sqlx::Error>>()?
        }
        Storage::Postgres(p) => {
            let sql = pg(select);
            let q = sqlx::query(&sql);
            let q = match instance {
                Some(i) => q.bind(i.to_owned()),
                None => q.bind(dead_before),
            };
            q.fetch_all(p)
                .await?
                .iter()
                .map(|r| Ok((r.try_get(0)?, r.try_get(1)?, r.try_get(2)?, r.try_get(3)?)))
                .collect::<Result<_, sqlx::Error>>()?
        }
    };
    let mut n = 0;
    for (id, model, est, hold) in rows {
        let usage = crate::chat::Usage {
            input_tokens: est.max(0) as u64,
            ..Default::default()
        };
        // A call with a budget hold is settled at the hold (the most it
        // could have cost: the budget never under-counts); else at the
        // input estimate at the requested model's price.
        let cost = hold.or_else(|| {
            model
                .split_once('/')
                .and_then(|(p, m)| match gw.providers.get(p) {
                    Some(provider) => gw.prices.for_provider(provider, m),
                    None => gw.prices.get(p, m),
                })
                .map(|p| p.cost(&usage))
        });
        const Q: &str = "UPDATE requests SET state = 'interrupted', error_class = 'interrupted', input_tokens = ?, output_tokens = 0, \
                         usage_source = 'estimated', cost_usd = ?, price_version = ? WHERE id = ? AND state = 'begun' \
                         RETURNING time_ms, key_id, route, metadata, provider, model, status, input_tokens, output_tokens, cached_tokens, cost_usd, saved_usd";
        macro_rules! settle {
            ($tx:expr, $q:expr) => {{
                let tx = $tx;
                let row = sqlx::query(&$q(Q))
                    .bind(est)
                    .bind(cost)
                    .bind(&gw.prices.version)
                    .bind(&id)
                    .fetch_optional(&mut *tx)
                    .await?;
                match row {
                    Some(r) => {
                        let mut batch = Batch::default();
                        batch.add(&stored_sums!(&r, true));
                        flush_sums!(tx, $q, &batch);
                        1
                    }
                    None => 0,
                }
            }};
        }
        let done = match s {
            Storage::Sqlite(p) => {
                let mut tx = p.begin_with("BEGIN IMMEDIATE").await?;
                let n = settle!(&mut *tx, |q: &str| q.to_owned());
                tx.commit().await?;
                n
            }
            Storage::Postgres(p) => {
                let mut tx = p.begin().await?;
                let n = settle!(&mut *tx, pg);
                tx.commit().await?;
                n
            }
        };
        n += done as usize;
    }
    Ok(n)
}

/// Deletes records past `logs.retain_days` and bodies past
/// `logs.body_retain_days`, a bounded batch at a time.
pub async fn retention(gw: &Gateway) -> Result<(), sqlx::Error> {
    let now = crate::clock::unix_ms();
    let day = 86_400_000i64;
    let rows_before = now - i64::from(gw.config.logs.retain_days) * day;
    let bodies_before = now - i64::from(gw.config.logs.body_retain_days) * day;
    let s = &gw.storage;
    // Postgres: whole days go at once; the row deletes below find only
    // what the default partition holds.
    let dropped = super::partitions::drop_before(s, rows_before).await?;
    if dropped > 0 {
        tracing::info!(
            partitions = dropped,
            "Dropped request records past logs.retain_days"
        );
    }
    let stmts = [
        (
            "DELETE FROM request_tags WHERE rowid IN (SELECT rowid FROM request_tags WHERE time_ms < ? LIMIT ?)",
            "DELETE FROM request_tags WHERE ctid IN (SELECT ctid FROM request_tags WHERE time_ms < ? LIMIT ?)",
            rows_before,
        ),
        (
            "DELETE FROM requests WHERE id IN (SELECT id FROM requests WHERE time_ms < ? AND state <> 'begun' LIMIT ?)",
            "DELETE FROM requests WHERE id IN (SELECT id FROM requests WHERE time_ms < ? AND state <> 'begun' LIMIT ?)",
            rows_before,
        ),
        // Sums go with the last of their span's records.
        (
            "DELETE FROM usage_sums WHERE rowid IN (SELECT rowid FROM usage_sums WHERE span_ms = 3600000 AND start_ms < ? LIMIT ?)",
            "DELETE FROM usage_sums WHERE ctid IN (SELECT ctid FROM usage_sums WHERE span_ms = 3600000 AND start_ms < ? LIMIT ?)",
            rows_before - HOUR_MS,
        ),
        (
            "DELETE FROM usage_sums WHERE rowid IN (SELECT rowid FROM usage_sums WHERE span_ms = 86400000 AND start_ms < ? LIMIT ?)",
            "DELETE FROM usage_sums WHERE ctid IN (SELECT ctid FROM usage_sums WHERE span_ms = 86400000 AND start_ms < ? LIMIT ?)",
            rows_before - DAY_MS,
        ),
        (
            "DELETE FROM usage_sums_tags WHERE rowid IN (SELECT rowid FROM usage_sums_tags WHERE span_ms = 3600000 AND start_ms < ? LIMIT ?)",
            "DELETE FROM usage_sums_tags WHERE ctid IN (SELECT ctid FROM usage_sums_tags WHERE span_ms = 3600000 AND start_ms < ? LIMIT ?)",
            rows_before - HOUR_MS,
        ),
        (
            "DELETE FROM usage_sums_tags WHERE rowid IN (SELECT rowid FROM usage_sums_tags WHERE span_ms = 86400000 AND start_ms < ? LIMIT ?)",
            "DELETE FROM usage_sums_tags WHERE ctid IN (SELECT ctid FROM usage_sums_tags WHERE span_ms = 86400000 AND start_ms < ? LIMIT ?)",
            rows_before - DAY_MS,
        ),
        (
            "DELETE FROM usage_sums_sets WHERE rowid IN (SELECT rowid FROM usage_sums_sets WHERE span_ms = 3600000 AND start_ms < ? LIMIT ?)",
            "DELETE FROM usage_sums_sets WHERE ctid IN (SELECT ctid FROM usage_sums_sets WHERE span_ms = 3600000 AND start_ms < ? LIMIT ?)",
            rows_before - HOUR_MS,
        ),
        (
            "DELETE FROM usage_sums_sets WHERE rowid IN (SELECT rowid FROM usage_sums_sets WHERE span_ms = 86400000 AND start_ms < ? LIMIT ?)",
            "DELETE FROM usage_sums_sets WHERE ctid IN (SELECT ctid FROM usage_sums_sets WHERE span_ms = 86400000 AND start_ms < ? LIMIT ?)",
            rows_before - DAY_MS,
        ),
        (
            "UPDATE requests SET request_body = NULL, response_body = NULL WHERE id IN (SELECT id FROM requests WHERE time_ms < ? AND (request_body IS NOT NULL OR response_body IS NOT NULL) LIMIT ?)",
            "UPDATE requests SET request_body = NULL, response_body = NULL WHERE id IN (SELECT id FROM requests WHERE time_ms < ? AND (request_body IS NOT NULL OR response_body IS NOT NULL) LIMIT ?)",
            bodies_before,
        ),
    ];
    for (lite, post, before) in stmts {
        // A few batches per round keeps each round short.
        for _ in 0..4 {
            let n = match s {
                Storage::Sqlite(p) => sqlx::query(lite)
                    .bind(before)
                    .bind(RETENTION_BATCH)
                    .execute(p)
                    .await?
                    .rows_affected(),
                Storage::Postgres(p) => sqlx::query(&pg(post))
                    .bind(before)
                    .bind(RETENTION_BATCH)
                    .execute(p)
                    .await?
                    .rows_affected(),
            };
            if n < RETENTION_BATCH as u64 {
                break;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_come_in_few_shapes_and_cover_everything() {
        let v: Vec<u32> = (0..257).collect();
        let sizes: Vec<usize> = fixed_chunks(&v, ROW_RUNS).map(<[u32]>::len).collect();
        assert_eq!(sizes, [100, 100, 20, 20, 4, 4, 4, 4, 1]);
        let back: Vec<u32> = fixed_chunks(&v, ROW_RUNS).flatten().copied().collect();
        assert_eq!(back, v);
        assert_eq!(fixed_chunks(&v[..0], ROW_RUNS).count(), 0);
    }
}
