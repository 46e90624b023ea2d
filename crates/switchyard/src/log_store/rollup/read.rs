//! Reading the sums back: the whole days and hours of a usage query.
//!
//! No tag among the dimensions reads `usage_sums`; one tag reads
//! `usage_sums_tags` (requests without the tag are the totals less the
//! tagged sums); two or more read `usage_sums_sets`, whose rows hold each
//! request's whole set of tags, so any combination of tags (and their
//! absence) is a grouping of its rows.

use std::collections::HashMap;

use futures_util::TryStreamExt;
use sqlx::Row;

use crate::log_store::query::{Arg, Dimension, Group, UsageRow, bind_all};
use crate::storage::{Storage, pg};

/// A group key: the bucket, then each dimension's value.
pub type Key = (Option<i64>, Vec<Option<String>>);

/// What a group sums.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Figures {
    pub requests: i64,
    pub errors: i64,
    pub input_tokens: i64,
    pub output_tokens: i64,
    pub cached_tokens: i64,
    pub cost_usd: f64,
    pub saved_usd: f64,
}

impl Figures {
    pub fn of(r: &UsageRow) -> Figures {
        Figures {
            requests: r.requests,
            errors: r.errors,
            input_tokens: r.input_tokens,
            output_tokens: r.output_tokens,
            cached_tokens: r.cached_tokens,
            cost_usd: r.cost_usd,
            saved_usd: r.saved_usd,
        }
    }

    /// The usage row of these figures for `bucket` and `group`.
    pub fn row(self, bucket: Option<i64>, group: Group) -> UsageRow {
        UsageRow {
            bucket,
            group,
            requests: self.requests,
            errors: self.errors,
            input_tokens: self.input_tokens,
            output_tokens: self.output_tokens,
            cached_tokens: self.cached_tokens,
            cost_usd: self.cost_usd,
            saved_usd: self.saved_usd,
        }
    }

    fn add(&mut self, b: &Figures) {
        self.requests += b.requests;
        self.errors += b.errors;
        self.input_tokens += b.input_tokens;
        self.output_tokens += b.output_tokens;
        self.cached_tokens += b.cached_tokens;
        self.cost_usd += b.cost_usd;
        self.saved_usd += b.saved_usd;
    }

    fn subtract(&mut self, b: &Figures) {
        self.requests -= b.requests;
        self.errors -= b.errors;
        self.input_tokens -= b.input_tokens;
        self.output_tokens -= b.output_tokens;
        self.cached_tokens -= b.cached_tokens;
        self.cost_usd -= b.cost_usd;
        self.saved_usd -= b.saved_usd;
    }
}

/// Usage by group, gathered from the parts of a query (sums of whole days,
/// sums of whole hours, records of cut hours) and put in order once at the
/// end: one sort of a vector, then adding up the runs of equal keys, costs
/// less than hashing 100ks of keys as they come or keeping them ordered.
#[derive(Debug, Default)]
pub struct Groups(Vec<(Key, Figures)>);

impl Groups {
    pub fn push(&mut self, key: Key, figures: Figures) {
        self.0.push((key, figures));
    }

    /// Each group once, in key order.
    pub fn finish(mut self) -> Vec<(Key, Figures)> {
        self.0.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        // `dedup_by` hands over the later of two neighbours first.
        self.0.dedup_by(|later, kept| {
            let same = later.0 == kept.0;
            if same {
                kept.1.add(&later.1);
            }
            same
        });
        self.0
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
        [] => read(Table::Sums).run(s, &at, into).await?,
        [_, _, ..] => {
            let names: Vec<&str> = tags.iter().map(|(_, t)| *t).collect();
            read(Table::Sets(&names)).run(s, &at, into).await?;
        }
        [(p, tag)] => {
            let mut totals = Groups::default();
            read(Table::Sums).run(s, &[], &mut totals).await?;
            // Requests without the tag form the null group: the totals
            // less the tagged sums of the same bucket and columns.
            let mut untagged: HashMap<Key, Figures> = totals.0.into_iter().collect();
            let first = into.0.len();
            read(Table::Tag(tag)).run(s, &at, into).await?;
            // Each tagged key, its tag taken out, is a key of the totals:
            // look it up in place rather than build a copy of it.
            let mut probe: Key = (None, Vec::new());
            for (key, figures) in &mut into.0[first..] {
                let value = key.1.remove(*p);
                probe.0 = key.0;
                probe.1 = std::mem::take(&mut key.1);
                if let Some(rest) = untagged.get_mut(&probe) {
                    rest.subtract(figures);
                }
                key.1 = std::mem::take(&mut probe.1);
                key.1.insert(*p, value);
            }
            for ((bucket, mut values), figures) in untagged {
                if figures.requests > 0 {
                    values.insert(*p, None);
                    into.push((bucket, values), figures);
                }
            }
        }
    }
    Ok(())
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

    /// Reads the rows into `into`, each key with its tag values at their
    /// dimensions' places (`at`, ascending; as many as the table has).
    async fn run(&self, s: &Storage, at: &[usize], into: &mut Groups) -> Result<(), sqlx::Error> {
        // Columns by position: bucket, the columns, the tag values, sums.
        let n = self.columns.len();
        let sums = 1 + n + at.len();
        macro_rules! read {
            ($rows:expr) => {{
                let mut rows = $rows;
                while let Some(r) = rows.try_next().await? {
                    let mut values = Vec::with_capacity(n + at.len());
                    let (mut column, mut tag) = (1, 1 + n);
                    for i in 0..n + at.len() {
                        let from = if at.contains(&i) {
                            &mut tag
                        } else {
                            &mut column
                        };
                        values.push(r.try_get::<Option<String>, _>(*from)?);
                        *from += 1;
                    }
                    let figures = Figures {
                        requests: r.try_get(sums)?,
                        errors: r.try_get(sums + 1)?,
                        input_tokens: r.try_get(sums + 2)?,
                        output_tokens: r.try_get(sums + 3)?,
                        cached_tokens: r.try_get(sums + 4)?,
                        cost_usd: r.try_get::<Option<f64>, _>(sums + 5)?.unwrap_or(0.0),
                        saved_usd: r.try_get::<Option<f64>, _>(sums + 6)?.unwrap_or(0.0),
                    };
                    into.push((r.try_get(0)?, values), figures);
                }
            }};
        }
        match s {
            Storage::Sqlite(p) => {
                let (sql, args) = self.sql(false);
                read!(bind_all!(sqlx::query(&sql), &args).fetch(p))
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
                // Rows decoded as they arrive, none held.
                read!(bind_all!(sqlx::query(&sql), &args).fetch(&mut *tx));
                tx.commit().await?;
            }
        }
        Ok(())
    }
}

/// SQLite's JSON path to a top-level key (see [`super::serves`] for the
/// names it can quote).
fn json_path(name: &str) -> String {
    format!("$.\"{name}\"")
}
