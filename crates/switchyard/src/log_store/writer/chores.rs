//! The writer's rounds of housekeeping: this process's heartbeat, the
//! unfinished requests of processes that died settled as `interrupted`,
//! and retention in bounded batches.

use sqlx::Row;

use super::super::rollup::{Batch, DAY_MS, HOUR_MS, Sums, flush_sums};
use super::off_runtime;
use crate::gateway::Gateway;
use crate::storage::{Storage, on_pool, pg};

/// A process whose heartbeat is older than this is presumed dead.
const DEAD_AFTER_MS: i64 = 30_000;
/// Rows deleted per retention statement.
const RETENTION_BATCH: i64 = 5000;

pub(super) async fn heartbeat(s: &Storage, instance: &str, spool: &str) -> Result<(), sqlx::Error> {
    let now = crate::clock::unix_ms();
    const Q: &str = "INSERT INTO instances (id, spool, started_ms, beat_ms) VALUES (?, ?, ?, ?) \
                     ON CONFLICT (id) DO UPDATE SET beat_ms = excluded.beat_ms";
    on_pool!(s, Q, |p, sql| {
        sqlx::query(sql)
            .bind(instance)
            .bind(spool)
            .bind(now)
            .bind(now)
            .execute(p)
            .await
            .map(drop)
    })?;
    Ok(())
}

/// Settles the unfinished requests of the processes that owned this spool
/// before us, and forgets those processes: the owner named in the spool
/// itself (we hold its lock, so it is gone), and any other process recorded
/// with this spool path whose heartbeat stopped. A path alone proves
/// nothing: replicas on other hosts (pods) use the same path for their own
/// folders, and their calls in flight are not ours to settle.
pub(super) async fn settle_previous_owners(gw: &Gateway, spool: &str) -> anyhow::Result<usize> {
    const Q: &str = "SELECT id FROM instances WHERE spool = ? AND id <> ? AND beat_ms < ?";
    let me = &gw.recorder.instance;
    let dead_before = crate::clock::unix_ms() - DEAD_AFTER_MS;
    let stale: Vec<String> = on_pool!(&gw.storage, Q, |p, sql| {
        sqlx::query_scalar(sql)
            .bind(spool)
            .bind(me)
            .bind(dead_before)
            .fetch_all(p)
            .await?
    });
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
        on_pool!(&gw.storage, D, |p, sql| sqlx::query(sql)
            .bind(&owner)
            .execute(p)
            .await
            .map(drop))?;
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
pub(super) async fn chores(gw: &Gateway) -> anyhow::Result<()> {
    let spool = gw.recorder.spool.dir().display().to_string();
    heartbeat(&gw.storage, &gw.recorder.instance, &spool).await?;
    settle_interrupted(gw, None).await?;
    super::super::partitions::ensure(&gw.storage, crate::clock::unix_ms()).await?;
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
    let rows: Vec<(String, String, i64, Option<f64>)> = on_pool!(s, select, |p, sql| {
        let q = sqlx::query(sql);
        let q = match instance {
            Some(i) => q.bind(i.to_owned()),
            None => q.bind(dead_before),
        };
        q.fetch_all(p)
            .await?
            .iter()
            .map(|r| Ok((r.try_get(0)?, r.try_get(1)?, r.try_get(2)?, r.try_get(3)?)))
            .collect::<Result<_, sqlx::Error>>()?
    });
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
    let dropped = super::super::partitions::drop_before(s, rows_before).await?;
    if dropped > 0 {
        tracing::info!(
            partitions = dropped,
            "Dropped request records past logs.retain_days"
        );
    }
    let stmts = [
        // Tags: on SQLite a request's go with its row (a trigger, migration 16).
        (
            None,
            "DELETE FROM request_tags WHERE ctid IN (SELECT ctid FROM request_tags WHERE time_ms < ? LIMIT ?)",
            rows_before,
        ),
        (
            Some(
                "DELETE FROM requests WHERE id IN (SELECT id FROM requests WHERE time_ms < ? AND state <> 'begun' LIMIT ?)",
            ),
            "DELETE FROM requests WHERE id IN (SELECT id FROM requests WHERE time_ms < ? AND state <> 'begun' LIMIT ?)",
            rows_before,
        ),
        // Sums go with the last of their span's records.
        (
            Some(
                "DELETE FROM usage_sums WHERE rowid IN (SELECT rowid FROM usage_sums WHERE span_ms = 3600000 AND start_ms < ? LIMIT ?)",
            ),
            "DELETE FROM usage_sums WHERE ctid IN (SELECT ctid FROM usage_sums WHERE span_ms = 3600000 AND start_ms < ? LIMIT ?)",
            rows_before - HOUR_MS,
        ),
        (
            Some(
                "DELETE FROM usage_sums WHERE rowid IN (SELECT rowid FROM usage_sums WHERE span_ms = 86400000 AND start_ms < ? LIMIT ?)",
            ),
            "DELETE FROM usage_sums WHERE ctid IN (SELECT ctid FROM usage_sums WHERE span_ms = 86400000 AND start_ms < ? LIMIT ?)",
            rows_before - DAY_MS,
        ),
        (
            Some(
                "DELETE FROM usage_sums_tags WHERE rowid IN (SELECT rowid FROM usage_sums_tags WHERE span_ms = 3600000 AND start_ms < ? LIMIT ?)",
            ),
            "DELETE FROM usage_sums_tags WHERE ctid IN (SELECT ctid FROM usage_sums_tags WHERE span_ms = 3600000 AND start_ms < ? LIMIT ?)",
            rows_before - HOUR_MS,
        ),
        (
            Some(
                "DELETE FROM usage_sums_tags WHERE rowid IN (SELECT rowid FROM usage_sums_tags WHERE span_ms = 86400000 AND start_ms < ? LIMIT ?)",
            ),
            "DELETE FROM usage_sums_tags WHERE ctid IN (SELECT ctid FROM usage_sums_tags WHERE span_ms = 86400000 AND start_ms < ? LIMIT ?)",
            rows_before - DAY_MS,
        ),
        (
            Some(
                "DELETE FROM usage_sums_sets WHERE rowid IN (SELECT rowid FROM usage_sums_sets WHERE span_ms = 3600000 AND start_ms < ? LIMIT ?)",
            ),
            "DELETE FROM usage_sums_sets WHERE ctid IN (SELECT ctid FROM usage_sums_sets WHERE span_ms = 3600000 AND start_ms < ? LIMIT ?)",
            rows_before - HOUR_MS,
        ),
        (
            Some(
                "DELETE FROM usage_sums_sets WHERE rowid IN (SELECT rowid FROM usage_sums_sets WHERE span_ms = 86400000 AND start_ms < ? LIMIT ?)",
            ),
            "DELETE FROM usage_sums_sets WHERE ctid IN (SELECT ctid FROM usage_sums_sets WHERE span_ms = 86400000 AND start_ms < ? LIMIT ?)",
            rows_before - DAY_MS,
        ),
        (
            Some(
                "UPDATE requests SET request_body = NULL, response_body = NULL WHERE id IN (SELECT id FROM requests WHERE time_ms < ? AND (request_body IS NOT NULL OR response_body IS NOT NULL) LIMIT ?)",
            ),
            "UPDATE requests SET request_body = NULL, response_body = NULL WHERE id IN (SELECT id FROM requests WHERE time_ms < ? AND (request_body IS NOT NULL OR response_body IS NOT NULL) LIMIT ?)",
            bodies_before,
        ),
    ];
    for (lite, post, before) in stmts {
        // A few batches per round keeps each round short.
        for _ in 0..4 {
            let n = match s {
                Storage::Sqlite(p) => match lite {
                    Some(lite) => sqlx::query(lite)
                        .bind(before)
                        .bind(RETENTION_BATCH)
                        .execute(p)
                        .await?
                        .rows_affected(),
                    None => break,
                },
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
