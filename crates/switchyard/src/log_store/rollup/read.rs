//! Reading the sums back: the whole days and hours of a usage query.
//!
//! No tag among the dimensions reads `usage_sums`; one tag reads
//! `usage_sums_tags` (requests without the tag are the totals less the
//! tagged sums); two or more read `usage_sums_sets`, whose rows hold each
//! request's whole set of tags, so any combination of tags (and their
//! absence) is a grouping of its rows.

use std::collections::HashMap;
use std::collections::hash_map::Entry;

use sqlx::Row;

use crate::log_store::query::{Arg, Dimension, UsageRow, bind_all};
use crate::storage::{Storage, pg};

/// A group key: the bucket, then each dimension's value.
pub type Key = (Option<i64>, Vec<Option<String>>);

/// Usage rows by group, merged across the parts of a query (sums of whole
/// days, sums of whole hours, records of cut hours) and sorted once at the
/// end: hashing 100ks of keys costs less than keeping them ordered.
pub type Groups = HashMap<Key, UsageRow>;

/// Adds `row` into the group `key` of `into`.
pub fn merge(into: &mut Groups, key: Key, row: UsageRow) {
    match into.entry(key) {
        Entry::Occupied(mut e) => add(e.get_mut(), &row),
        Entry::Vacant(e) => {
            e.insert(row);
        }
    }
}

/// Adds the `span` sums over `[from, to)` (aligned to `span`, either end
/// open) into `into`, grouped like the records query. Requires
/// [`super::serves`].
pub async fn usage(
    s: &Storage,
    span: i64,
    group_by: &[Dimension],
    from: Option<i64>,
    to: Option<i64>,
    bucket_ms: Option<i64>,
    into: &mut Groups,
) -> Result<(), sqlx::Error> {
    let mut tags: Vec<(usize, &str)> = Vec::new();
    let mut columns: Vec<&'static str> = Vec::new();
    for (i, d) in group_by.iter().enumerate() {
        match d {
            Dimension::Column(c) => columns.push(c),
            Dimension::Tag(t) => tags.push((i, t)),
        }
    }
    let at: Vec<usize> = tags.iter().map(|(i, _)| *i).collect();
    let read = |table| Query {
        table,
        span,
        columns: &columns,
        from,
        to,
        bucket_ms,
    };
    match tags.as_slice() {
        [] => place(read(Table::Sums).run(s).await?, &at, into),
        [_, _, ..] => {
            let names: Vec<&str> = tags.iter().map(|(_, t)| *t).collect();
            place(read(Table::Sets(&names)).run(s).await?, &at, into);
        }
        [(_, tag)] => {
            let totals = read(Table::Sums).run(s).await?;
            let tagged = read(Table::Tag(tag)).run(s).await?;
            // Requests without the tag form the null group: the totals
            // less the tagged sums of the same bucket and columns.
            let mut untagged: HashMap<(Option<i64>, Vec<Option<String>>), UsageRow> = totals
                .into_iter()
                .map(|r| ((r.bucket, r.columns), r.sums))
                .collect();
            let mut probe = (None, Vec::new());
            for r in &tagged {
                probe.0 = r.bucket;
                probe.1.clone_from(&r.columns);
                if let Some(rest) = untagged.get_mut(&probe) {
                    subtract(rest, &r.sums);
                }
            }
            place(tagged, &at, into);
            let rest = untagged
                .into_iter()
                .filter(|(_, sums)| sums.requests > 0)
                .map(|((bucket, columns), sums)| Read {
                    bucket,
                    columns,
                    tags: vec![None],
                    sums,
                });
            place(rest, &at, into);
        }
    }
    Ok(())
}

/// One row read from a sums table.
struct Read {
    bucket: Option<i64>,
    /// The column dimensions' values, in order.
    columns: Vec<Option<String>>,
    /// The tag dimensions' values, in order.
    tags: Vec<Option<String>>,
    sums: UsageRow,
}

/// Merges rows into `into`, each key with the tag values put back at their
/// dimensions' places (`at`, ascending).
fn place(rows: impl IntoIterator<Item = Read>, at: &[usize], into: &mut Groups) {
    for r in rows {
        let mut values = Vec::with_capacity(r.columns.len() + r.tags.len());
        let mut columns = r.columns.into_iter();
        let mut tags = r.tags.into_iter();
        let mut next_tag = at.iter().peekable();
        for i in 0..at.len() + columns.len() {
            let from_tag = next_tag.next_if(|&&t| t == i).is_some();
            values.push(if from_tag {
                tags.next().flatten()
            } else {
                columns.next().flatten()
            });
        }
        merge(into, (r.bucket, values), r.sums);
    }
}

#[derive(Clone, Copy)]
enum Table<'a> {
    /// `usage_sums`: no tag values.
    Sums,
    /// `usage_sums_tags` for one tag.
    Tag(&'a str),
    /// `usage_sums_sets`, each of these tags' values read from the set.
    Sets(&'a [&'a str]),
}

struct Query<'a> {
    table: Table<'a>,
    span: i64,
    columns: &'a [&'static str],
    from: Option<i64>,
    to: Option<i64>,
    bucket_ms: Option<i64>,
}

impl Query<'_> {
    fn sql(&self, postgres: bool) -> (String, Vec<Arg>) {
        let bucket = match self.bucket_ms {
            // Each row is one bucket already: group on the key's column.
            Some(b) if b == self.span => "start_ms".to_owned(),
            Some(b) => format!("((start_ms / {b}) * {b})"),
            None => "CAST(NULL AS BIGINT)".into(),
        };
        let mut select = vec![format!("{bucket} AS bucket")];
        let mut groups = vec!["bucket".to_owned()];
        for (n, c) in self.columns.iter().enumerate() {
            select.push(match *c {
                "status" => format!("CAST(NULLIF(status, 0) AS TEXT) AS c{n}"),
                c => format!("NULLIF({c}, '') AS c{n}"),
            });
            groups.push(format!("c{n}"));
        }
        let mut args: Vec<Arg> = Vec::new();
        let table = match self.table {
            Table::Sums => "usage_sums",
            Table::Tag(_) => {
                select.push("value AS t0".into());
                groups.push("t0".into());
                "usage_sums_tags"
            }
            Table::Sets(names) => {
                for (n, name) in names.iter().enumerate() {
                    if postgres {
                        select.push(format!("CAST(tags AS jsonb) ->> ? AS t{n}"));
                        args.push(Arg::Text((*name).to_owned()));
                    } else {
                        select.push(format!("json_extract(tags, ?) AS t{n}"));
                        args.push(Arg::Text(json_path(name)));
                    }
                    groups.push(format!("t{n}"));
                }
                "usage_sums_sets"
            }
        };
        // Counts are summed as doubles (exact below 2^53): Postgres sums
        // BIGINTs as NUMERIC, which costs more than reading the rows.
        let sum = |c: &str| format!("CAST(SUM(CAST({c} AS DOUBLE PRECISION)) AS BIGINT) AS {c}");
        let mut sql = format!(
            "SELECT {}, {}, {}, {}, {}, {}, SUM(cost_usd) AS cost_usd, SUM(saved_usd) AS saved_usd \
             FROM {table} WHERE",
            select.join(", "),
            sum("requests"),
            sum("errors"),
            sum("input_tokens"),
            sum("output_tokens"),
            sum("cached_tokens"),
        );
        // Columns in primary-key order: (tag,) span, start.
        if let Table::Tag(t) = self.table {
            sql.push_str(" tag = ? AND");
            args.push(Arg::Text(t.to_owned()));
        }
        sql.push_str(" span_ms = ?");
        args.push(Arg::Int(self.span));
        if let Some(f) = self.from {
            sql.push_str(" AND start_ms >= ?");
            args.push(Arg::Int(f));
        }
        if let Some(t) = self.to {
            sql.push_str(" AND start_ms < ?");
            args.push(Arg::Int(t));
        }
        // Sums that a late end took back out leave rows of zero requests
        // (summed as doubles too: the NUMERIC sum would cost as much again).
        sql.push_str(&format!(
            " GROUP BY {} HAVING SUM(CAST(requests AS DOUBLE PRECISION)) > 0",
            groups.join(", ")
        ));
        (sql, args)
    }

    async fn run(&self, s: &Storage) -> Result<Vec<Read>, sqlx::Error> {
        let tag_values = match self.table {
            Table::Sums => 0,
            Table::Tag(_) => 1,
            Table::Sets(names) => names.len(),
        };
        // Columns by position: bucket, the columns, the tag values, sums.
        let n = self.columns.len();
        let at = 1 + n + tag_values;
        macro_rules! collect {
            ($rows:expr) => {{
                let rows = $rows;
                let mut out = Vec::with_capacity(rows.len());
                for r in rows {
                    let mut columns = Vec::with_capacity(n);
                    for i in 1..=n {
                        columns.push(r.try_get::<Option<String>, _>(i)?);
                    }
                    let mut tags = Vec::with_capacity(tag_values);
                    for i in 1 + n..at {
                        tags.push(r.try_get::<Option<String>, _>(i)?);
                    }
                    let bucket: Option<i64> = r.try_get(0)?;
                    out.push(Read {
                        bucket,
                        columns,
                        tags,
                        sums: UsageRow {
                            bucket,
                            group: serde_json::Map::new(),
                            requests: r.try_get(at)?,
                            errors: r.try_get(at + 1)?,
                            input_tokens: r.try_get(at + 2)?,
                            output_tokens: r.try_get(at + 3)?,
                            cached_tokens: r.try_get(at + 4)?,
                            cost_usd: r.try_get::<Option<f64>, _>(at + 5)?.unwrap_or(0.0),
                            saved_usd: r.try_get::<Option<f64>, _>(at + 6)?.unwrap_or(0.0),
                        },
                    });
                }
                out
            }};
        }
        Ok(match s {
            Storage::Sqlite(p) => {
                let (sql, args) = self.sql(false);
                collect!(bind_all!(sqlx::query(&sql), &args).fetch_all(p).await?)
            }
            Storage::Postgres(p) => {
                let (sql, args) = self.sql(true);
                let sql = pg(&sql);
                // Enough memory to group in a hash table rather than sort
                // on disk (a grouping by user and day can have 100ks of
                // groups), and no parallel workers: the gather of their
                // partial groups costs more than it saves on sums this
                // size. For this query only.
                let mut tx = p.begin().await?;
                sqlx::query("SET LOCAL work_mem = '64MB'")
                    .execute(&mut *tx)
                    .await?;
                sqlx::query("SET LOCAL max_parallel_workers_per_gather = 0")
                    .execute(&mut *tx)
                    .await?;
                let rows = bind_all!(sqlx::query(&sql), &args)
                    .fetch_all(&mut *tx)
                    .await?;
                tx.commit().await?;
                collect!(rows)
            }
        })
    }
}

/// SQLite's JSON path to a top-level key (see [`super::serves`] for the
/// names it can quote).
fn json_path(name: &str) -> String {
    format!("$.\"{name}\"")
}

fn subtract(a: &mut UsageRow, b: &UsageRow) {
    a.requests -= b.requests;
    a.errors -= b.errors;
    a.input_tokens -= b.input_tokens;
    a.output_tokens -= b.output_tokens;
    a.cached_tokens -= b.cached_tokens;
    a.cost_usd -= b.cost_usd;
    a.saved_usd -= b.saved_usd;
}

/// Adds `b` into `a`.
pub fn add(a: &mut UsageRow, b: &UsageRow) {
    a.requests += b.requests;
    a.errors += b.errors;
    a.input_tokens += b.input_tokens;
    a.output_tokens += b.output_tokens;
    a.cached_tokens += b.cached_tokens;
    a.cost_usd += b.cost_usd;
    a.saved_usd += b.saved_usd;
}
