//! Storage: one pool, SQLite by default or Postgres, chosen by URL.
//!
//! A closed enum rather than a trait: there are two backends, both always
//! compiled in and tested. SQL that differs between them lives with the code
//! that owns the table.

use std::str::FromStr;
use std::time::Duration;

use sqlx::postgres::{PgPool, PgPoolOptions};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};

/// Numbers `?` placeholders for Postgres (`$1`, `$2`, ...). The SQL we
/// write never has a `?` inside a string literal.
pub fn pg(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len() + 16);
    let mut n = 0;
    for c in sql.chars() {
        if c == '?' {
            n += 1;
            out.push('$');
            out.push_str(&n.to_string());
        } else {
            out.push(c);
        }
    }
    out
}

/// Embedded migrations: (version, name, SQLite SQL, Postgres SQL).
const MIGRATIONS: &[(i64, &str, &str, &str)] = &[
    (
        1,
        "keys",
        include_str!("../migrations/sqlite/0001_keys.sql"),
        include_str!("../migrations/postgres/0001_keys.sql"),
    ),
    (
        2,
        "logs",
        include_str!("../migrations/sqlite/0002_logs.sql"),
        include_str!("../migrations/postgres/0002_logs.sql"),
    ),
    (
        3,
        "rollups",
        include_str!("../migrations/sqlite/0003_rollups.sql"),
        include_str!("../migrations/postgres/0003_rollups.sql"),
    ),
    (
        4,
        "key_spend",
        include_str!("../migrations/sqlite/0004_key_spend.sql"),
        include_str!("../migrations/postgres/0004_key_spend.sql"),
    ),
    (
        5,
        "partial_indexes",
        include_str!("../migrations/sqlite/0005_partial_indexes.sql"),
        include_str!("../migrations/postgres/0005_partial_indexes.sql"),
    ),
    (
        6,
        "responses",
        include_str!("../migrations/sqlite/0006_responses.sql"),
        include_str!("../migrations/postgres/0006_responses.sql"),
    ),
    (
        7,
        "tools",
        include_str!("../migrations/sqlite/0007_tools.sql"),
        include_str!("../migrations/postgres/0007_tools.sql"),
    ),
    (
        8,
        "approvals_audit",
        include_str!("../migrations/sqlite/0008_approvals_audit.sql"),
        include_str!("../migrations/postgres/0008_approvals_audit.sql"),
    ),
    (
        9,
        "mcp_pins",
        include_str!("../migrations/sqlite/0009_mcp_pins.sql"),
        include_str!("../migrations/postgres/0009_mcp_pins.sql"),
    ),
    (
        10,
        "gateway_secrets",
        include_str!("../migrations/sqlite/0010_gateway_secrets.sql"),
        include_str!("../migrations/postgres/0010_gateway_secrets.sql"),
    ),
    (
        11,
        "key_concurrency",
        include_str!("../migrations/sqlite/0011_key_concurrency.sql"),
        include_str!("../migrations/postgres/0011_key_concurrency.sql"),
    ),
    (
        12,
        "trace_id",
        include_str!("../migrations/sqlite/0012_trace_id.sql"),
        include_str!("../migrations/postgres/0012_trace_id.sql"),
    ),
    (
        13,
        "partitions",
        include_str!("../migrations/sqlite/0013_partitions.sql"),
        include_str!("../migrations/postgres/0013_partitions.sql"),
    ),
    (
        14,
        "tag_sets",
        include_str!("../migrations/sqlite/0014_tag_sets.sql"),
        include_str!("../migrations/postgres/0014_tag_sets.sql"),
    ),
    (
        15,
        "unfinished_unindexed",
        include_str!("../migrations/sqlite/0015_unfinished_unindexed.sql"),
        include_str!("../migrations/postgres/0015_unfinished_unindexed.sql"),
    ),
    (
        16,
        "tags_and_bodies",
        include_str!("../migrations/sqlite/0016_tags_and_bodies.sql"),
        include_str!("../migrations/postgres/0016_tags_and_bodies.sql"),
    ),
    (
        17,
        "status_errors_only",
        include_str!("../migrations/sqlite/0017_status_errors_only.sql"),
        include_str!("../migrations/postgres/0017_status_errors_only.sql"),
    ),
];

/// Runs `$body` on whichever pool `$storage` is, with `$pool` bound to it
/// and `$sql` to the query `$q` (written with `?` placeholders) as that
/// database numbers them: one query written once for both backends. The
/// pools' types differ, so `$body` is compiled once for each.
macro_rules! on_pool {
    ($storage:expr, $q:expr, |$pool:ident, $sql:ident| $body:expr) => {
        match $storage {
            $crate::storage::Storage::Sqlite($pool) => {
                let $sql: &str = $q;
                $body
            }
            $crate::storage::Storage::Postgres($pool) => {
                let numbered = $crate::storage::pg($q);
                let $sql: &str = &numbered;
                $body
            }
        }
    };
}
pub(crate) use on_pool;

#[derive(Debug, Clone)]
pub enum Storage {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

impl Storage {
    pub async fn connect(url: &str) -> anyhow::Result<Storage> {
        if url.starts_with("sqlite:") {
            let opts = SqliteConnectOptions::from_str(url)?
                .create_if_missing(true)
                .journal_mode(SqliteJournalMode::Wal)
                .synchronous(SqliteSynchronous::Normal)
                // Deleted bodies and purged entries are overwritten, not
                // left in free pages.
                .pragma("secure_delete", "FAST")
                // Statement journals (which a multi-row insert keeps so it
                // can be undone alone) in memory, not in temporary files:
                // otherwise every page it touches is written twice.
                .pragma("temp_store", "memory")
                .busy_timeout(Duration::from_secs(5));
            let pool = SqlitePoolOptions::new()
                .max_connections(4)
                .connect_with(opts)
                .await
                .map_err(|e| anyhow::anyhow!("cannot open SQLite database {url}: {e}"))?;
            Ok(Storage::Sqlite(pool))
        } else {
            let pool = PgPoolOptions::new()
                .max_connections(8)
                .acquire_timeout(Duration::from_secs(5))
                .connect(url)
                .await
                .map_err(|e| {
                    anyhow::anyhow!(
                        "cannot connect to Postgres at {}: {e}",
                        crate::config::redact_url(url)
                    )
                })?;
            Ok(Storage::Postgres(pool))
        }
    }

    /// Applies the embedded migrations this database has not seen yet, in
    /// order, each in its own transaction. On Postgres an advisory lock keeps
    /// replicas that start together from racing.
    pub async fn migrate(&self) -> anyhow::Result<()> {
        const TABLE: &str = "CREATE TABLE IF NOT EXISTS switchyard_migrations (version BIGINT PRIMARY KEY, name TEXT NOT NULL, applied_at BIGINT NOT NULL)";
        let now = crate::clock::unix_ms();
        match self {
            Storage::Sqlite(pool) => {
                sqlx::query(TABLE).execute(pool).await?;
                for (version, name, sql, _) in MIGRATIONS {
                    let done: Option<(i64,)> = sqlx::query_as(
                        "SELECT version FROM switchyard_migrations WHERE version = ?",
                    )
                    .bind(version)
                    .fetch_optional(pool)
                    .await?;
                    if done.is_some() {
                        continue;
                    }
                    let mut tx = pool.begin().await?;
                    sqlx::raw_sql(sql).execute(&mut *tx).await?;
                    sqlx::query("INSERT INTO switchyard_migrations (version, name, applied_at) VALUES (?, ?, ?)")
                        .bind(version)
                        .bind(name)
                        .bind(now)
                        .execute(&mut *tx)
                        .await?;
                    tx.commit().await?;
                }
            }
            Storage::Postgres(pool) => {
                let mut conn = pool.acquire().await?;
                sqlx::query("SELECT pg_advisory_lock(7421001)")
                    .execute(&mut *conn)
                    .await?;
                let result = async {
                    sqlx::query(TABLE).execute(&mut *conn).await?;
                    for (version, name, _, sql) in MIGRATIONS {
                        let done: Option<(i64,)> =
                            sqlx::query_as("SELECT version FROM switchyard_migrations WHERE version = $1")
                                .bind(version)
                                .fetch_optional(&mut *conn)
                                .await?;
                        if done.is_some() {
                            continue;
                        }
                        let mut tx = sqlx::Connection::begin(&mut *conn).await?;
                        sqlx::raw_sql(sql).execute(&mut *tx).await?;
                        sqlx::query("INSERT INTO switchyard_migrations (version, name, applied_at) VALUES ($1, $2, $3)")
                            .bind(version)
                            .bind(name)
                            .bind(now)
                            .execute(&mut *tx)
                            .await?;
                        tx.commit().await?;
                    }
                    Ok::<_, sqlx::Error>(())
                }
                .await;
                let _ = sqlx::query("SELECT pg_advisory_unlock(7421001)")
                    .execute(&mut *conn)
                    .await;
                result?;
            }
        }
        Ok(())
    }

    /// Whether the database answers.
    pub async fn ping(&self) -> bool {
        match self {
            Storage::Sqlite(p) => sqlx::query("SELECT 1").execute(p).await.is_ok(),
            Storage::Postgres(p) => sqlx::query("SELECT 1").execute(p).await.is_ok(),
        }
    }

    pub fn backend(&self) -> &'static str {
        match self {
            Storage::Sqlite(_) => "sqlite",
            Storage::Postgres(_) => "postgres",
        }
    }

    pub async fn close(&self) {
        match self {
            Storage::Sqlite(p) => p.close().await,
            Storage::Postgres(p) => p.close().await,
        }
    }
}

/// The nice value SQLite's worker threads run at.
const WORKER_NICE: i32 = 5;

/// Lowers the scheduling priority of this process's SQLite worker threads
/// (sqlx runs each SQLite connection on a thread of its own, and the
/// records' writer has its own, `log_store::writer::lite`), so that the
/// log writer's database work yields the CPU to requests whenever both
/// want it: a record is written a little later rather than an answer
/// delayed. It still gets a share of a busy core (a nice of 5 weighs about
/// a third of a normal thread), so the spool drains under load. Threads are
/// found by name; connections opened later are caught by the next call.
/// Linux only; elsewhere it does nothing.
pub fn deprioritize_workers() {
    #[cfg(target_os = "linux")]
    {
        let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
            return;
        };
        for task in tasks.flatten() {
            let comm = std::fs::read_to_string(task.path().join("comm")).unwrap_or_default();
            if !comm.starts_with("sqlx-sqlite")
                && !comm.starts_with(crate::log_store::writer::SQLITE_THREAD)
            {
                continue;
            }
            let tid = task
                .file_name()
                .to_str()
                .and_then(|t| t.parse::<i32>().ok())
                .and_then(rustix::process::Pid::from_raw);
            if let Some(tid) = tid
                && rustix::process::getpriority_process(Some(tid)).is_ok_and(|n| n < WORKER_NICE)
            {
                let _ = rustix::process::setpriority_process(Some(tid), WORKER_NICE);
            }
        }
    }
}

/// A migrated SQLite database in a temporary folder, for unit tests: the
/// folder (kept alive by the caller), the storage and its pool.
#[cfg(test)]
pub(crate) async fn scratch_sqlite() -> (tempfile::TempDir, Storage, SqlitePool) {
    let dir = tempfile::tempdir().expect("temporary folder");
    let url = format!("sqlite://{}/scratch.db", dir.path().display());
    let s = Storage::connect(&url).await.expect("open SQLite");
    s.migrate().await.expect("migrate");
    let Storage::Sqlite(p) = &s else {
        unreachable!("a sqlite: URL opens SQLite")
    };
    let p = p.clone();
    (dir, s, p)
}

#[cfg(test)]
mod migration_tests;

#[cfg(all(test, target_os = "linux"))]
mod tests {
    /// (thread id, nice) of this process's threads named `prefix*`.
    fn nices(prefix: &str) -> Vec<(String, i64)> {
        std::fs::read_dir("/proc/self/task")
            .expect("procfs")
            .flatten()
            .filter(|t| {
                std::fs::read_to_string(t.path().join("comm"))
                    .unwrap_or_default()
                    .starts_with(prefix)
            })
            .filter_map(|t| {
                let stat = std::fs::read_to_string(t.path().join("stat")).ok()?;
                let after = &stat[stat.rfind(')')? + 2..];
                let nice = after.split(' ').nth(16)?.parse().ok()?;
                Some((t.file_name().to_string_lossy().into_owned(), nice))
            })
            .collect()
    }

    #[tokio::test]
    async fn sqlite_workers_yield_to_requests() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}/n.db", dir.path().display());
        let s = super::Storage::connect(&url).await.unwrap();
        assert!(s.ping().await);
        let super::Storage::Sqlite(p) = &s else {
            unreachable!("a sqlite: URL opens SQLite")
        };
        // The records' own connection's thread too.
        let _lite = crate::log_store::writer::Lite::open(p, &url).unwrap();
        let records = crate::log_store::writer::SQLITE_THREAD;
        // A thread takes its name once it runs.
        for _ in 0..100 {
            if !nices(records).is_empty() {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        let before = [nices("sqlx-sqlite"), nices(records)];
        for threads in &before {
            assert!(threads.iter().any(|(_, n)| *n < 5), "{threads:?}");
        }
        super::deprioritize_workers();
        for (threads, name) in before.iter().zip(["sqlx-sqlite", records]) {
            let after = nices(name);
            for (tid, _) in threads {
                let nice = after.iter().find(|(t, _)| t == tid).map(|(_, n)| *n);
                assert!(nice.is_none_or(|n| n >= 5), "{tid}: {after:?}");
            }
        }
        assert!(
            nices("tokio-runtime").iter().all(|(_, n)| *n < 5),
            "request threads keep theirs"
        );
    }
}
