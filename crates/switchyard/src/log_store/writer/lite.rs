//! SQLite's side of the log writer: a connection of its own, on a thread of
//! its own, writing each transaction with prepared statements a row at a
//! time (rusqlite).
//!
//! The same rows through sqlx cost over half as much again (84.8k against
//! 54.0k instructions per call's record, `bench/record-cost.sh`): its multi-row
//! statements bind every value through boxed arguments and reach SQLite's
//! worker thread over a channel a statement at a time. Here a whole
//! transaction is one job for the thread. Postgres keeps sqlx (see
//! `upsert_all!`); everything else on SQLite (queries, settling, retention)
//! keeps the pool, and shares the database's one write lock with this
//! connection through `Gateway::db_writes` and the busy timeout.

use std::ops::Range;
use std::sync::{Arc, LazyLock, Mutex, mpsc};
use std::time::Duration;

use rusqlite::types::ToSql;
use rusqlite::{Connection, OpenFlags, Transaction, TransactionBehavior, params, params_from_iter};
use sqlx::SqlitePool;

use super::super::rollup::{Batch, Group, Totals, UPSERT, UPSERT_SET, UPSERT_SPEND, UPSERT_TAG};
use super::super::{Begin, End, Entry};
use super::statements::REQUEST_COLUMN_COUNT;
use super::{NewRow, REQUEST_COLUMNS, attempts_json, ends_by_id, log_mode_str, tag_value};
use crate::FastSet;
use crate::conversations::store::{DELETE_ITEMS, DELETE_RESPONSE, INSERT_ITEM, INSERT_RESPONSE};

/// The thread's name: `storage::deprioritize_workers` finds it by this.
pub(crate) const THREAD: &str = "sqlite-records";

type Job = Box<dyn FnOnce(&mut Connection) + Send>;

/// The writer's connection, owned by its thread; closed (or dropped), the
/// thread ends.
#[derive(Debug)]
pub struct Lite {
    jobs: Mutex<Option<mpsc::Sender<Job>>>,
    thread: Mutex<Option<std::thread::JoinHandle<()>>>,
}

impl Lite {
    /// A connection to the database that `pool` opened from `url`, opened
    /// as sqlx opens it.
    pub fn open(pool: &SqlitePool, url: &str) -> anyhow::Result<Lite> {
        let options = pool.connect_options();
        let name = options.get_filename();
        let conn = connect(name, &Sharing::of(url)).map_err(|e| {
            let name = name.display();
            anyhow::anyhow!("cannot open SQLite database {name} for records: {e}")
        })?;
        conn.busy_timeout(Duration::from_secs(5))?;
        // As the pool's connections (see `Storage::connect`).
        conn.execute_batch(
            "PRAGMA synchronous = NORMAL; PRAGMA secure_delete = FAST; PRAGMA temp_store = MEMORY; \
             PRAGMA foreign_keys = ON;",
        )?;
        conn.set_prepared_statement_cache_capacity(24);
        let (jobs, take) = mpsc::channel::<Job>();
        let thread = std::thread::Builder::new()
            .name(THREAD.into())
            .spawn(move || serve(conn, take))?;
        Ok(Lite {
            jobs: Mutex::new(Some(jobs)),
            thread: Mutex::new(Some(thread)),
        })
    }

    /// Ends the thread once its jobs are done, and closes the connection:
    /// before the pool closes, so that the pool's last connection is the
    /// database's last and checkpoints the WAL into the file.
    pub async fn close(&self) {
        drop(self.jobs.lock().unwrap_or_else(|p| p.into_inner()).take());
        let thread = self.thread.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(thread) = thread {
            let _ = tokio::task::spawn_blocking(move || thread.join()).await;
        }
    }

    /// Writes `entries[range]` in one transaction on the writer's thread.
    pub async fn write(&self, entries: Arc<Vec<Entry>>, range: Range<usize>) -> anyhow::Result<()> {
        let (done, result) = tokio::sync::oneshot::channel();
        let job: Job = Box::new(move |conn| {
            let run = std::panic::AssertUnwindSafe(|| write(conn, &entries[range]));
            let outcome = match std::panic::catch_unwind(run) {
                Ok(written) => written.map_err(anyhow::Error::from),
                Err(panic) => {
                    let why = panic
                        .downcast_ref::<&str>()
                        .map(|s| s.to_string())
                        .or_else(|| panic.downcast_ref::<String>().cloned())
                        .unwrap_or_default();
                    Err(anyhow::anyhow!("the records' transaction panicked: {why}"))
                }
            };
            let _ = done.send(outcome);
        });
        let gone = || anyhow::anyhow!("the SQLite records writer's thread has stopped");
        let jobs = self.jobs.lock().unwrap_or_else(|p| p.into_inner()).clone();
        jobs.ok_or_else(gone)?.send(job).map_err(|_| gone())?;
        result.await.map_err(|_| gone())?
    }
}

/// How a SQLite URL shares its database, read as sqlx-sqlite reads it
/// (`SqliteConnectOptions::from_str`, whose options do not say): in
/// memory for `:memory:` and `mode=memory`, which also share a cache
/// unless `cache=private`; the VFS named.
#[derive(Debug, Default, PartialEq)]
struct Sharing {
    memory: bool,
    shared: bool,
    vfs: Option<String>,
}

impl Sharing {
    fn of(url: &str) -> Sharing {
        let rest = url.strip_prefix("sqlite:").unwrap_or(url);
        let rest = rest.strip_prefix("//").unwrap_or(rest);
        let (database, params) = rest.split_once('?').unwrap_or((rest, ""));
        let memory = database == ":memory:";
        let mut s = Sharing {
            memory,
            shared: memory,
            vfs: None,
        };
        for pair in params.split('&') {
            match pair.split_once('=') {
                Some(("mode", "memory")) => (s.memory, s.shared) = (true, true),
                Some(("cache", cache)) => s.shared = cache == "shared",
                Some(("vfs", vfs)) => s.vfs = Some(vfs.to_owned()),
                _ => {}
            }
        }
        s
    }
}

/// Opens the database `name` as sqlx opened it for the pool (see
/// sqlx-sqlite's `EstablishParams`): always as a URI, in memory and with
/// a shared cache where the pool's is (`sqlite::memory:` is a shared
/// in-memory database of this process, `file:sqlx-in-memory-N`: the same
/// name opens the same one), with the same VFS. Read-write: the pool
/// created the file.
fn connect(name: &std::path::Path, how: &Sharing) -> rusqlite::Result<Connection> {
    let mut flags = OpenFlags::SQLITE_OPEN_READ_WRITE
        | OpenFlags::SQLITE_OPEN_URI
        | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    if how.memory {
        flags |= OpenFlags::SQLITE_OPEN_MEMORY;
    }
    flags |= if how.shared {
        OpenFlags::SQLITE_OPEN_SHARED_CACHE
    } else {
        OpenFlags::SQLITE_OPEN_PRIVATE_CACHE
    };
    match &how.vfs {
        Some(vfs) => Connection::open_with_flags_and_vfs(name, flags, vfs.as_str()),
        None => Connection::open_with_flags(name, flags),
    }
}

/// The thread: jobs in turn until the [`Lite`] is closed or dropped. A function of
/// its own, not inlined, so that `bench/icount.py` can count it.
#[inline(never)]
fn serve(mut conn: Connection, jobs: mpsc::Receiver<Job>) {
    for job in jobs {
        // A transaction that could not even roll back must not keep the
        // database's write lock for good.
        if !conn.is_autocommit() {
            let _ = conn.execute_batch("ROLLBACK");
        }
        job(&mut conn);
    }
}

/// A `requests` row whole ([`REQUEST_COLUMNS`]), skipping an id already
/// stored.
static INSERT_ROW: LazyLock<String> = LazyLock::new(|| {
    let values = vec!["?"; REQUEST_COLUMN_COUNT].join(", ");
    format!("{REQUEST_COLUMNS}VALUES ({values}) ON CONFLICT (id) DO NOTHING")
});
const INSERT_TAG: &str = "INSERT INTO request_tags (request_id, tag, value, time_ms) VALUES (?1, ?2, ?3, ?4) ON CONFLICT (request_id, tag) DO NOTHING";
const INSERT_GAP: &str = "INSERT INTO requests (id, time_ms, instance, state, requested_model, dialect, stream, log_mode, metadata) \
    VALUES (?1, ?2, '-', 'gap', '-', '-', 0, 'none', ?3) ON CONFLICT (id) DO NOTHING";
/// One transaction, as `upsert_all!` writes it on Postgres: new rows (a
/// request whose begin and end are both here inserted complete) and their
/// tags, then the ends of rows already stored, gaps, the sums of everything
/// finished, and stored responses in the order they were spooled.
fn write(conn: &mut Connection, entries: &[Entry]) -> rusqlite::Result<()> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let ends = ends_by_id(entries);
    let mut batch = Batch::default();
    let mut merged: FastSet<&str> = FastSet::default();
    {
        let mut row = tx.prepare_cached(&INSERT_ROW)?;
        let mut tag = tx.prepare_cached(INSERT_TAG)?;
        for b in entries.iter().filter_map(|e| match e {
            Entry::Begin(b) => Some(b),
            _ => None,
        }) {
            let end = ends.get(b.id.as_str()).copied();
            if !insert_row(&mut row, b, end)? {
                continue; // stored already, with its tags
            }
            for (k, v) in &b.metadata {
                tag.execute(params![b.id, k, tag_value(v), b.time_ms])?;
            }
            if let Some(s) = (NewRow { begin: b, end }).sums() {
                merged.insert(b.id.as_str());
                batch.add(&s);
            }
        }
    }
    let mut stored = entries
        .iter()
        .filter_map(|e| match e {
            Entry::End(e) if !merged.contains(e.id.as_str()) => Some(e),
            _ => None,
        })
        .peekable();
    if stored.peek().is_some() {
        let mut finishing = finish::Finishing::prepare(&tx)?;
        for e in stored {
            finishing.finish_stored(&tx, e, &mut batch)?;
        }
    }
    for e in entries {
        if let Entry::Gap { time_ms, dropped } = e {
            tx.prepare_cached(INSERT_GAP)?.execute(params![
                format!("gap_{time_ms}_{dropped}"),
                time_ms,
                format!("{{\"dropped\":{dropped}}}")
            ])?;
        }
    }
    flush(&tx, &batch)?;
    responses(&tx, entries)?;
    tx.commit()
}

/// Stored responses and their deletions, in the order they were spooled.
fn responses(tx: &Transaction<'_>, entries: &[Entry]) -> rusqlite::Result<()> {
    // Each statement taken from the cache once a transaction (see `flush`).
    let (mut response, mut item) = (None, None);
    for e in entries {
        match e {
            Entry::Response(r) => {
                let stmt = match &mut response {
                    Some(stmt) => stmt,
                    None => response.insert(tx.prepare_cached(INSERT_RESPONSE)?),
                };
                let new = stmt.execute(params![
                    r.id,
                    r.owner,
                    r.created_ms,
                    r.expires_ms,
                    r.previous_id,
                    r.requested_model,
                    r.provider,
                    r.model,
                    r.request_id,
                    r.response
                ])?;
                if new > 0 {
                    let stmt = match &mut item {
                        Some(stmt) => stmt,
                        None => item.insert(tx.prepare_cached(INSERT_ITEM)?),
                    };
                    for (seq, i) in r.items.iter().enumerate() {
                        stmt.execute(params![r.id, seq as i64, i.item_id, i.is_output, i.item])?;
                    }
                }
            }
            Entry::ResponseDeleted { id } => {
                tx.prepare_cached(DELETE_ITEMS)?.execute([id])?;
                tx.prepare_cached(DELETE_RESPONSE)?.execute([id])?;
            }
            _ => {}
        }
    }
    Ok(())
}

/// Inserts a request's row, complete if its `end` is known; false if the
/// row was stored already.
fn insert_row(
    stmt: &mut rusqlite::CachedStatement<'_>,
    b: &Begin,
    e: Option<&End>,
) -> rusqlite::Result<bool> {
    let json = |v: Option<String>| v.unwrap_or_else(|| "[]".into());
    let attempts = json(e.map(|e| attempts_json(&e.attempts)));
    let excluded = json(e.and_then(|e| serde_json::to_string(&e.excluded).ok()));
    let metadata = serde_json::to_string(&b.metadata).unwrap_or_else(|_| "{}".into());
    let n = stmt.execute(params![
        b.id,
        b.time_ms,
        b.instance,
        if e.is_some() { "complete" } else { "begun" },
        b.key_id,
        b.route,
        b.requested_model,
        b.dialect,
        b.stream,
        log_mode_str(b.log_mode),
        b.est_input_tokens as i64,
        metadata,
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
        attempts,
        excluded,
        e.and_then(|e| e.response_body.as_deref()),
        b.hold_usd,
        b.trace_id,
    ])?;
    Ok(n > 0)
}

/// The batch's sums, one upsert per group (as `rollup::flush_sums!`).
/// Each statement is taken from the cache once, not once a row: a lookup
/// costs about 2.5k instructions, and a tag whose value is new on every
/// call makes four rows a record.
fn flush(tx: &Transaction<'_>, b: &Batch) -> rusqlite::Result<()> {
    if !b.sums.is_empty() {
        let mut stmt = tx.prepare_cached(UPSERT)?;
        for (group, t) in &b.sums {
            upsert(&mut stmt, &[], group, t)?;
        }
    }
    if !b.tags.is_empty() {
        let mut stmt = tx.prepare_cached(UPSERT_TAG)?;
        for ((tag, value, group), t) in &b.tags {
            upsert(&mut stmt, &[tag, value], group, t)?;
        }
    }
    if !b.sets.is_empty() {
        let mut stmt = tx.prepare_cached(UPSERT_SET)?;
        for ((set, group), t) in &b.sets {
            upsert(&mut stmt, &[set], group, t)?;
        }
    }
    if !b.spend.is_empty() {
        let mut spend = tx.prepare_cached(UPSERT_SPEND)?;
        for ((key, day), cost) in &b.spend {
            spend.execute(params![key, day, cost])?;
        }
    }
    Ok(())
}

/// One upsert of a sums table: the values that pick its row (`first`: a
/// tag and value, a tag set, or none), the group, the totals.
fn upsert(
    stmt: &mut rusqlite::CachedStatement<'_>,
    first: &[&dyn ToSql],
    group: &Group,
    t: &Totals,
) -> rusqlite::Result<usize> {
    let (span, start, provider, model, key, route, status) = group;
    let rest: [&dyn ToSql; 14] = [
        span,
        start,
        provider,
        model,
        key,
        route,
        status,
        &t.requests,
        &t.errors,
        &t.input_tokens,
        &t.output_tokens,
        &t.cached_tokens,
        &t.cost_usd,
        &t.saved_usd,
    ];
    stmt.execute(params_from_iter(first.iter().chain(&rest)))
}

mod finish;

#[cfg(test)]
mod tests;
