//! The day partitions of `requests` on Postgres (migration 13): made ahead
//! of the days that will need them, and dropped whole once past
//! `logs.retain_days`. SQLite keeps one table and deletes by rows.

use sqlx::Row;

use crate::storage::Storage;

pub const DAY_MS: i64 = 86_400_000;

/// Days ahead of today that have a partition waiting.
const AHEAD_DAYS: i64 = 2;

fn name(day: i64) -> String {
    format!("requests_d{day}")
}

/// Makes the partitions of the days from `from_ms` to `to_ms` (inclusive)
/// that do not exist yet; returns how many it made. A day whose records
/// already sit in `requests_default` (written before its partition
/// existed) keeps them there: such a day gets no partition, and the log
/// says why.
pub async fn ensure_range(s: &Storage, from_ms: i64, to_ms: i64) -> Result<usize, sqlx::Error> {
    let Storage::Postgres(p) = s else {
        return Ok(0);
    };
    let existing = days(s).await?;
    let mut made = 0;
    for day in from_ms.div_euclid(DAY_MS)..=to_ms.div_euclid(DAY_MS) {
        if day < 0 || existing.contains(&day) {
            continue;
        }
        let sql = format!(
            "CREATE TABLE IF NOT EXISTS {} PARTITION OF requests FOR VALUES FROM ({}) TO ({})",
            name(day),
            day * DAY_MS,
            (day + 1) * DAY_MS
        );
        match sqlx::query(&sql).execute(p).await {
            Ok(_) => made += 1,
            // Another replica made it a moment ago, or the default
            // partition holds rows of that day.
            Err(e) => {
                tracing::warn!(day, error = %e, "Could not make a day partition of the request records")
            }
        }
    }
    Ok(made)
}

/// Partitions for yesterday through [`AHEAD_DAYS`] from `now_ms`.
pub async fn ensure(s: &Storage, now_ms: i64) -> Result<usize, sqlx::Error> {
    ensure_range(s, now_ms - DAY_MS, now_ms + AHEAD_DAYS * DAY_MS).await
}

/// The days that have a partition.
pub async fn days(s: &Storage) -> Result<Vec<i64>, sqlx::Error> {
    let Storage::Postgres(p) = s else {
        return Ok(Vec::new());
    };
    let rows = sqlx::query(
        "SELECT c.relname AS name FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid \
         WHERE i.inhparent = 'requests'::regclass",
    )
    .fetch_all(p)
    .await?;
    let mut days = Vec::new();
    for r in rows {
        let n: String = r.try_get("name")?;
        if let Some(day) = n.strip_prefix("requests_d").and_then(|d| d.parse().ok()) {
            days.push(day);
        }
    }
    days.sort_unstable();
    Ok(days)
}

/// Drops the partitions whose whole day is before `before_ms`; returns how
/// many. (Rows of such days in `requests_default` are left to the row
/// deletes of retention.)
pub async fn drop_before(s: &Storage, before_ms: i64) -> Result<usize, sqlx::Error> {
    let Storage::Postgres(p) = s else {
        return Ok(0);
    };
    let mut dropped = 0;
    for day in days(s).await? {
        if (day + 1) * DAY_MS <= before_ms {
            sqlx::query(&format!("DROP TABLE IF EXISTS {}", name(day)))
                .execute(p)
                .await?;
            dropped += 1;
        }
    }
    Ok(dropped)
}
