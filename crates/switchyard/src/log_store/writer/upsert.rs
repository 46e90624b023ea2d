//! The SQL of a batch of records, as macros both writers expand: the
//! Postgres writer through sqlx (`upsert_all!` in `write_range`) and the
//! SQLite one through rusqlite (`lite`), which share the statements' text
//! and the sums each record adds. Declared `#[macro_use]` before them.

use crate::FastMap;

use super::super::rollup::Sums;
use super::super::{Begin, End, Entry};
use super::tag_value;

/// The UPDATE that finishes a request in state `$from`, found by its id,
/// returning what its sums need; for SQLite found by `$key` (its rowid)
/// with `$tail` in place of that RETURNING clause (see `lite::finish`).
macro_rules! finish_sql {
    ($from:literal) => {
        finish_sql!("id", $from, " RETURNING time_ms, key_id, route, metadata")
    };
    ($key:literal, $from:literal, $tail:literal) => {
        concat!(
            "UPDATE requests SET state = 'complete', provider = ?, model = ?, status = ?, error_class = ?, latency_ms = ?, ttft_ms = ?, \
             input_tokens = ?, output_tokens = ?, cached_tokens = ?, reasoning_tokens = ?, usage_source = ?, cost_usd = ?, saved_usd = ?, \
             price_version = ?, cache = ?, attempts = ?, excluded = ?, response_body = ? WHERE ",
            $key,
            " = ? AND state = '",
            $from,
            "'",
            $tail
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
            .bind($crate::log_store::writer::attempts_json(&$e.attempts))
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
pub(super) fn finished_by(
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
pub(super) const ROWS_PER_INSERT: usize = 100;

/// Splits `items` into runs of the sizes in `sizes` (largest first, the
/// last 1), so that a multi-row statement comes in a handful of shapes
/// that stay in the connection's prepared-statement cache: preparing a
/// statement of thousands of parameters costs more than running it.
pub(super) fn fixed_chunks<'a, T>(
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

pub(super) const ROW_RUNS: &[usize] = &[ROWS_PER_INSERT, 20, 4, 1];
pub(super) const TAG_RUNS: &[usize] = &[4 * ROWS_PER_INSERT, 80, 16, 4, 1];

/// The columns of a `requests` row written whole.
pub(super) const REQUEST_COLUMNS: &str = "INSERT INTO requests (id, time_ms, instance, state, key_id, route, requested_model, dialect, stream, \
    log_mode, est_input_tokens, metadata, request_body, provider, model, status, error_class, latency_ms, ttft_ms, input_tokens, \
    output_tokens, cached_tokens, reasoning_tokens, usage_source, cost_usd, saved_usd, price_version, cache, attempts, excluded, \
    response_body, hold_usd, trace_id) ";

/// A request's row as the batch knows it: its begin, and its end when that
/// is in the same batch (then the row is written complete, in one insert).
pub(super) struct NewRow<'a> {
    pub(super) begin: &'a Begin,
    pub(super) end: Option<&'a End>,
}

impl NewRow<'_> {
    /// The sums a complete row adds.
    pub(super) fn sums(&self) -> Option<Sums> {
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
                        e.map(|e| $crate::log_store::writer::attempts_json(&e.attempts))
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
pub(super) fn ends_by_id(entries: &[Entry]) -> FastMap<&str, &End> {
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
