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
