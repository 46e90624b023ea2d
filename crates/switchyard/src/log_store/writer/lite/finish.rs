//! An end whose request's row is already stored (its call outlasted the
//! writer's round, or its process was presumed dead): the row finished by
//! an UPDATE, and the sums it adds (or corrects).

use rusqlite::{CachedStatement, OptionalExtension, Transaction, params};

use super::super::super::End;
use super::super::super::rollup::{Batch, Sums};
use super::super::{attempts_json, finished_by};

const BEGUN: &str =
    "SELECT time_ms, key_id, route, metadata, rowid FROM requests WHERE id = ? AND state = 'begun'";
const INTERRUPTED: &str = "SELECT time_ms, key_id, route, metadata, rowid, provider, model, status, input_tokens, \
    output_tokens, cached_tokens, cost_usd, saved_usd FROM requests WHERE id = ? AND state = 'interrupted'";

/// Finishes requests whose rows are stored, with the statements of the
/// usual case prepared once for a transaction's ends (a statement from
/// the connection's cache costs about 2.5k instructions each time: its
/// text hashed, the cache's order kept).
pub(super) struct Finishing<'c> {
    begun: CachedStatement<'c>,
    update_begun: CachedStatement<'c>,
}

impl<'c> Finishing<'c> {
    pub(super) fn prepare(tx: &'c Transaction<'_>) -> rusqlite::Result<Finishing<'c>> {
        Ok(Finishing {
            begun: tx.prepare_cached(BEGUN)?,
            update_begun: tx.prepare_cached(finish_sql!("rowid", "begun", ""))?,
        })
    }

    /// Finishes a request whose row is stored: the usual step out of
    /// `begun` adds it to the sums; a replayed end finds it complete and
    /// adds nothing; a request settled as interrupted (its process presumed
    /// dead) has the estimate taken back out of the sums and the real
    /// outcome put in.
    ///
    /// What the sums need of the row is read before the UPDATE rather than
    /// returned by it: RETURNING makes SQLite treat the update as a
    /// multi-write, which, with NOT NULL checks that may abort it, keeps a
    /// statement journal of every page the update touches. The read costs
    /// less: 109.7k -> 97.4k a record (`bench/record-cost.sh`, `--split`).
    /// The same read gives the row's rowid, so the UPDATE finds the row
    /// without a second search of the id's index. The transaction holds
    /// SQLite's write lock (`IMMEDIATE`), so the row read is the row
    /// updated.
    pub(super) fn finish_stored(
        &mut self,
        tx: &Transaction<'_>,
        e: &End,
        batch: &mut Batch,
    ) -> rusqlite::Result<()> {
        let begun = self.begun.query_row([&e.id], Admitted::read).optional()?;
        if let Some(a) = begun {
            finish(&mut self.update_begun, e, a.rowid)?;
            batch.add(&a.finished_by(e));
            return Ok(());
        }
        let interrupted = tx
            .prepare_cached(INTERRUPTED)?
            .query_row([&e.id], |r| {
                let a = Admitted::read(r)?;
                let old = Sums::finished(
                    a.time_ms,
                    a.key_id.clone(),
                    a.route.clone(),
                    &a.metadata,
                    r.get(5)?,
                    r.get(6)?,
                    r.get(7)?,
                    true,
                )
                .with_usage(
                    r.get(8)?,
                    r.get(9)?,
                    r.get(10)?,
                    r.get(11)?,
                    r.get(12)?,
                );
                Ok((a, old))
            })
            .optional()?;
        if let Some((a, old)) = interrupted {
            batch.add(&old.negated());
            let mut update = tx.prepare_cached(finish_sql!("rowid", "interrupted", ""))?;
            finish(&mut update, e, a.rowid)?;
            batch.add(&a.finished_by(e));
        }
        Ok(())
    }
}

/// A stored row's admission time, key, route and tags (its metadata):
/// what the sums of its finishing need, and its rowid. The first five
/// columns of [`BEGUN`] and [`INTERRUPTED`].
struct Admitted {
    time_ms: i64,
    key_id: Option<String>,
    route: Option<String>,
    metadata: String,
    rowid: i64,
}

impl Admitted {
    fn read(r: &rusqlite::Row<'_>) -> rusqlite::Result<Admitted> {
        Ok(Admitted {
            time_ms: r.get(0)?,
            key_id: r.get(1)?,
            route: r.get(2)?,
            metadata: r.get(3)?,
            rowid: r.get(4)?,
        })
    }

    fn finished_by(self, e: &End) -> Sums {
        finished_by(e, self.time_ms, self.key_id, self.route, &self.metadata)
    }
}

/// Runs a [`super::finish_sql`] UPDATE (by rowid, without RETURNING) for
/// `e` on the row `rowid`.
fn finish(update: &mut CachedStatement<'_>, e: &End, rowid: i64) -> rusqlite::Result<()> {
    let attempts = attempts_json(&e.attempts);
    let excluded = serde_json::to_string(&e.excluded).unwrap_or_else(|_| "[]".into());
    update.execute(params![
        e.provider,
        e.model,
        i64::from(e.status),
        e.error_class,
        e.latency_ms,
        e.ttft_ms,
        e.input_tokens.map(|v| v as i64),
        e.output_tokens.map(|v| v as i64),
        e.cached_tokens.map(|v| v as i64),
        e.reasoning_tokens.map(|v| v as i64),
        e.usage_source,
        e.cost_usd,
        e.saved_usd,
        e.price_version,
        e.cache,
        attempts,
        excluded,
        e.response_body,
        rowid,
    ])?;
    Ok(())
}
