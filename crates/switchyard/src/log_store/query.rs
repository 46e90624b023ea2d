//! Reading records back: the log list with filters and cursor paging, one
//! record, usage grouped by any dimension or tag ([`usage`]), and dashboard
//! stats.
//!
//! Every filter maps to an indexed column (or the tags table's index), and
//! lists page by `(time_ms, id)`, so a page costs the same on the millionth
//! row as on the first.

mod group;
mod usage;

use serde::Serialize;
use sqlx::Row;

pub use group::Group;
pub use usage::{Dimension, UsageRow, usage, usage_from_records};

use crate::storage::{Storage, pg};

/// A bound value, so one SQL text serves both backends.
#[derive(Debug, Clone)]
pub enum Arg {
    Int(i64),
    Text(String),
}

/// What `GET /admin/v1/logs` may filter on.
#[derive(Debug, Clone, Default)]
pub struct LogFilter {
    pub key: Option<String>,
    pub route: Option<String>,
    pub provider: Option<String>,
    pub model: Option<String>,
    pub status: Option<i64>,
    pub error_class: Option<String>,
    pub trace_id: Option<String>,
    pub since: Option<i64>,
    pub until: Option<i64>,
    /// `metadata.<tag>=<value>` pairs, all required.
    pub tags: Vec<(String, String)>,
    /// Only this key's records (tenancy).
    pub owner: Option<String>,
}

#[derive(Debug, Clone, Serialize, PartialEq, schemars::JsonSchema)]
pub struct Record {
    pub id: String,
    pub time_ms: i64,
    pub state: String,
    pub key_id: Option<String>,
    pub route: Option<String>,
    pub requested_model: String,
    pub dialect: String,
    pub stream: bool,
    pub log_mode: String,
    pub provider: Option<String>,
    pub model: Option<String>,
    pub status: Option<i64>,
    pub error_class: Option<String>,
    pub latency_ms: Option<f64>,
    pub ttft_ms: Option<f64>,
    pub input_tokens: Option<i64>,
    pub output_tokens: Option<i64>,
    pub cached_tokens: Option<i64>,
    pub reasoning_tokens: Option<i64>,
    pub usage_source: Option<String>,
    pub cost_usd: Option<f64>,
    pub saved_usd: Option<f64>,
    pub price_version: Option<String>,
    pub cache: Option<String>,
    pub metadata: serde_json::Value,
    pub attempts: serde_json::Value,
    pub excluded: serde_json::Value,
    pub request_body: Option<String>,
    pub response_body: Option<String>,
    pub trace_id: Option<String>,
}

const RECORD_COLUMNS: &str = "r.id, r.time_ms, r.state, r.key_id, r.route, r.requested_model, r.dialect, r.stream, r.log_mode, \
    r.provider, r.model, r.status, r.error_class, r.latency_ms, r.ttft_ms, r.input_tokens, r.output_tokens, r.cached_tokens, \
    r.reasoning_tokens, r.usage_source, r.cost_usd, r.saved_usd, r.price_version, r.cache, r.metadata, r.attempts, r.excluded, \
    r.request_body, r.response_body, r.trace_id";

macro_rules! decode_record {
    ($r:expr) => {{
        let r = $r;
        let metadata: String = r.try_get("metadata")?;
        let attempts: String = r.try_get("attempts")?;
        let excluded: String = r.try_get("excluded")?;
        Record {
            id: r.try_get("id")?,
            time_ms: r.try_get("time_ms")?,
            state: r.try_get("state")?,
            key_id: r.try_get("key_id")?,
            route: r.try_get("route")?,
            requested_model: r.try_get("requested_model")?,
            dialect: r.try_get("dialect")?,
            stream: r.try_get("stream")?,
            log_mode: r.try_get("log_mode")?,
            provider: r.try_get("provider")?,
            model: r.try_get("model")?,
            status: r.try_get("status")?,
            error_class: r.try_get("error_class")?,
            latency_ms: r.try_get("latency_ms")?,
            ttft_ms: r.try_get("ttft_ms")?,
            input_tokens: r.try_get("input_tokens")?,
            output_tokens: r.try_get("output_tokens")?,
            cached_tokens: r.try_get("cached_tokens")?,
            reasoning_tokens: r.try_get("reasoning_tokens")?,
            usage_source: r.try_get("usage_source")?,
            cost_usd: r.try_get("cost_usd")?,
            saved_usd: r.try_get("saved_usd")?,
            price_version: r.try_get("price_version")?,
            cache: r.try_get("cache")?,
            metadata: serde_json::from_str(&metadata).unwrap_or_default(),
            attempts: serde_json::from_str(&attempts).unwrap_or_default(),
            excluded: serde_json::from_str(&excluded).unwrap_or_default(),
            request_body: r.try_get("request_body")?,
            response_body: r.try_get("response_body")?,
            trace_id: r.try_get("trace_id")?,
        }
    }};
}

macro_rules! bind_all {
    ($q:expr, $args:expr) => {{
        let mut q = $q;
        for a in $args {
            q = match a {
                Arg::Int(i) => q.bind(*i),
                Arg::Text(t) => q.bind(t.clone()),
            };
        }
        q
    }};
}
pub(crate) use bind_all;

/// The cursor for the page after `r`.
pub fn cursor_of(r: &Record) -> String {
    format!("{}.{}", r.time_ms, r.id)
}

fn parse_cursor(c: &str) -> Option<(i64, String)> {
    let (t, id) = c.split_once('.')?;
    Some((t.parse().ok()?, id.to_owned()))
}

/// Builds the WHERE clause (and joins) for `f` into `sql`/`args`. With
/// `driven`, the first tag is joined already as `d`, and the others are
/// matched on its rows (before the record is read).
fn filtered(f: &LogFilter, driven: bool, sql: &mut String, args: &mut Vec<Arg>) {
    let id = if driven { "d.request_id" } else { "r.id" };
    for (i, (tag, value)) in f.tags.iter().enumerate().skip(usize::from(driven)) {
        sql.push_str(&format!(
            " JOIN request_tags t{i} ON t{i}.request_id = {id} AND t{i}.tag = ? AND t{i}.value = ?"
        ));
        args.push(Arg::Text(tag.clone()));
        args.push(Arg::Text(value.clone()));
    }
    sql.push_str(" WHERE r.state <> 'gap'");
    let mut eq = |col: &str, v: &Option<String>| {
        if let Some(v) = v {
            sql.push_str(&format!(" AND r.{col} = ?"));
            args.push(Arg::Text(v.clone()));
        }
    };
    eq("key_id", &f.key);
    eq("route", &f.route);
    eq("provider", &f.provider);
    eq("model", &f.model);
    eq("error_class", &f.error_class);
    eq("trace_id", &f.trace_id);
    eq("key_id", &f.owner);
    if let Some(s) = f.status {
        // Statuses other than 200 are indexed (migration 17); saying so
        // lets the planner use that partial index. 200s are read by time.
        sql.push_str(if s == 200 {
            " AND r.status = ?"
        } else {
            " AND r.status = ? AND r.status <> 200"
        });
        args.push(Arg::Int(s));
    }
    time_range("r.time_ms", f, sql, args);
}

/// `f`'s time range on the column `col`.
fn time_range(col: &str, f: &LogFilter, sql: &mut String, args: &mut Vec<Arg>) {
    if let Some(t) = f.since {
        sql.push_str(&format!(" AND {col} >= ?"));
        args.push(Arg::Int(t));
    }
    if let Some(t) = f.until {
        sql.push_str(&format!(" AND {col} < ?"));
        args.push(Arg::Int(t));
    }
}

/// The query for one page of records, newest first.
///
/// Filtered by tags, the first tag's index drives: its rows for that value
/// in (time, id) order, newest first, each joined to its record by the
/// record's primary key (and so to the one day partition that holds it).
/// A page then reads about as many rows as it returns, whether the tag is
/// on every record or on one in a hundred thousand. On Postgres the record
/// is a LATERAL lookup kept from being flattened (`OFFSET 0`): joined
/// plainly, the two equal columns make the planner expect one row in all,
/// and it would hash-join every tagged record before taking the first 50.
fn page_sql(
    f: &LogFilter,
    postgres: bool,
    cursor: Option<(i64, String)>,
    limit: u32,
) -> (String, Vec<Arg>) {
    let mut sql = format!("SELECT {RECORD_COLUMNS} FROM ");
    let mut args = Vec::new();
    let (time, id) = match f.tags.first() {
        Some((tag, value)) => {
            sql.push_str(if postgres {
                "request_tags d JOIN LATERAL (SELECT * FROM requests \
                 WHERE id = d.request_id AND time_ms = d.time_ms OFFSET 0) r ON"
            } else {
                "request_tags d JOIN requests r ON r.id = d.request_id AND r.time_ms = d.time_ms AND"
            });
            sql.push_str(" d.tag = ? AND d.value = ?");
            args.push(Arg::Text(tag.clone()));
            args.push(Arg::Text(value.clone()));
            ("d.time_ms", "d.request_id")
        }
        None => {
            sql.push_str("requests r");
            ("r.time_ms", "r.id")
        }
    };
    filtered(f, !f.tags.is_empty(), &mut sql, &mut args);
    if !f.tags.is_empty() {
        // The same bounds on the driving index (the record's own bounds,
        // added by `filtered`, choose its partitions).
        time_range("d.time_ms", f, &mut sql, &mut args);
    }
    if let Some((t, last)) = cursor {
        sql.push_str(&format!(" AND ({time} < ? OR ({time} = ? AND {id} < ?))"));
        args.push(Arg::Int(t));
        args.push(Arg::Int(t));
        args.push(Arg::Text(last));
    }
    sql.push_str(&format!(" ORDER BY {time} DESC, {id} DESC LIMIT {limit}"));
    (sql, args)
}

/// One page of records, newest first, and the cursor for the next.
pub async fn list(
    s: &Storage,
    f: &LogFilter,
    cursor: Option<&str>,
    limit: u32,
) -> Result<(Vec<Record>, Option<String>), sqlx::Error> {
    let limit = limit.clamp(1, 500);
    let cursor = cursor.and_then(parse_cursor);
    let rarest_first;
    let f = if f.tags.len() > 1 {
        rarest_first = by_rarity(s, f).await?;
        &rarest_first
    } else {
        f
    };
    let mut out = Vec::new();
    match s {
        Storage::Sqlite(p) => {
            let (sql, args) = page_sql(f, false, cursor, limit + 1);
            for r in bind_all!(sqlx::query(&sql), &args).fetch_all(p).await? {
                out.push(decode_record!(&r));
            }
        }
        Storage::Postgres(p) => {
            let (sql, args) = page_sql(f, true, cursor, limit + 1);
            let sql = pg(&sql);
            for r in bind_all!(sqlx::query(&sql), &args).fetch_all(p).await? {
                out.push(decode_record!(&r));
            }
        }
    }
    let next = if out.len() > limit as usize {
        out.truncate(limit as usize);
        out.last().map(cursor_of)
    } else {
        None
    };
    Ok((out, next))
}

/// Tags are counted up to the first of these many rows each, to choose
/// which drives a page; tags that all reach it are counted again up to the
/// next (at ten million records a user's tag and a team's both pass ten
/// thousand rows, and the team's is fifty times the user's).
const RARITY_CAPS: [i64; 2] = [10_000, 100_000];

/// `f` with its tags reordered, fewest rows first (counted over the
/// filter's time range, see [`RARITY_CAPS`]): the first tag drives a page
/// (see [`page_sql`]), and a page driven by a rare tag reads about as many
/// rows as it returns, where a common one would read through every record
/// it has that the rare tag lacks.
async fn by_rarity(s: &Storage, f: &LogFilter) -> Result<LogFilter, sqlx::Error> {
    let mut counted = Vec::with_capacity(f.tags.len());
    for tag in &f.tags {
        counted.push((count_tag(s, f, tag, RARITY_CAPS[0]).await?, tag.clone()));
    }
    for (below, cap) in RARITY_CAPS.into_iter().zip(&RARITY_CAPS[1..]) {
        if counted.iter().filter(|(n, _)| *n == below).count() < 2 {
            break;
        }
        for (n, tag) in counted.iter_mut().filter(|(n, _)| *n == below) {
            *n = count_tag(s, f, tag, *cap).await?;
        }
    }
    // Stable: equally common tags keep the caller's order.
    counted.sort_by_key(|(n, _)| *n);
    Ok(LogFilter {
        tags: counted.into_iter().map(|(_, t)| t).collect(),
        ..f.clone()
    })
}

/// The rows of `tag` in `f`'s time range, counted up to `cap`.
async fn count_tag(
    s: &Storage,
    f: &LogFilter,
    (tag, value): &(String, String),
    cap: i64,
) -> Result<i64, sqlx::Error> {
    let mut sql =
        "SELECT COUNT(*) FROM (SELECT 1 FROM request_tags WHERE tag = ? AND value = ?".to_owned();
    let mut args = vec![Arg::Text(tag.clone()), Arg::Text(value.clone())];
    time_range("time_ms", f, &mut sql, &mut args);
    sql.push_str(&format!(" LIMIT {cap}) t"));
    match s {
        Storage::Sqlite(p) => {
            bind_all!(sqlx::query_scalar(&sql), &args)
                .fetch_one(p)
                .await
        }
        Storage::Postgres(p) => {
            let sql = pg(&sql);
            bind_all!(sqlx::query_scalar(&sql), &args)
                .fetch_one(p)
                .await
        }
    }
}

pub async fn get(
    s: &Storage,
    id: &str,
    owner: Option<&str>,
) -> Result<Option<Record>, sqlx::Error> {
    let f = LogFilter {
        owner: owner.map(str::to_owned),
        ..Default::default()
    };
    let mut sql = format!("SELECT {RECORD_COLUMNS} FROM requests r");
    let mut args = Vec::new();
    filtered(&f, false, &mut sql, &mut args);
    sql.push_str(" AND r.id = ?");
    args.push(Arg::Text(id.to_owned()));
    Ok(match s {
        Storage::Sqlite(p) => match bind_all!(sqlx::query(&sql), &args)
            .fetch_optional(p)
            .await?
        {
            Some(r) => Some(decode_record!(&r)),
            None => None,
        },
        Storage::Postgres(p) => {
            let sql = pg(&sql);
            match bind_all!(sqlx::query(&sql), &args)
                .fetch_optional(p)
                .await?
            {
                Some(r) => Some(decode_record!(&r)),
                None => None,
            }
        }
    })
}

#[derive(Debug, Clone, Serialize, PartialEq, schemars::JsonSchema)]
pub struct StatsRow {
    pub bucket: i64,
    pub requests: u64,
    pub errors: u64,
    pub p50_latency_ms: Option<f64>,
    pub p95_latency_ms: Option<f64>,
    pub p50_ttft_ms: Option<f64>,
    pub p95_ttft_ms: Option<f64>,
    pub input_tokens: i64,
    pub output_tokens: i64,
    pub cost_usd: f64,
    pub saved_usd: f64,
    pub cache_hits: u64,
}

/// Per-bucket counts and latency percentiles over `[since, until)`, and the
/// same over the whole range (its `bucket` is `since`), read in one pass
/// (capped at `MAX_STATS_ROWS`, newest kept).
pub async fn stats(
    s: &Storage,
    since: i64,
    until: i64,
    bucket_ms: i64,
) -> Result<(Vec<StatsRow>, StatsRow), sqlx::Error> {
    const MAX_STATS_ROWS: i64 = 200_000;
    let sql = format!(
        "SELECT time_ms, status, state, latency_ms, ttft_ms, input_tokens, output_tokens, cost_usd, saved_usd, cache \
         FROM requests WHERE time_ms >= ? AND time_ms < ? AND state <> 'gap' AND state <> 'begun' \
         ORDER BY time_ms DESC LIMIT {MAX_STATS_ROWS}"
    );
    type Raw = (
        i64,
        Option<i64>,
        String,
        Option<f64>,
        Option<f64>,
        Option<i64>,
        Option<i64>,
        Option<f64>,
        Option<f64>,
        Option<String>,
    );
    macro_rules! raw {
        ($rows:expr) => {{
            let mut v: Vec<Raw> = Vec::new();
            for r in $rows {
                v.push((
                    r.try_get(0)?,
                    r.try_get(1)?,
                    r.try_get(2)?,
                    r.try_get(3)?,
                    r.try_get(4)?,
                    r.try_get(5)?,
                    r.try_get(6)?,
                    r.try_get(7)?,
                    r.try_get(8)?,
                    r.try_get(9)?,
                ));
            }
            v
        }};
    }
    let rows: Vec<Raw> = match s {
        Storage::Sqlite(p) => raw!(
            sqlx::query(&sql)
                .bind(since)
                .bind(until)
                .fetch_all(p)
                .await?
        ),
        Storage::Postgres(p) => raw!(
            sqlx::query(&pg(&sql))
                .bind(since)
                .bind(until)
                .fetch_all(p)
                .await?
        ),
    };
    type Acc = (StatsRow, Vec<f64>, Vec<f64>);
    let empty = |b: i64| -> Acc {
        (
            StatsRow {
                bucket: b,
                requests: 0,
                errors: 0,
                p50_latency_ms: None,
                p95_latency_ms: None,
                p50_ttft_ms: None,
                p95_ttft_ms: None,
                input_tokens: 0,
                output_tokens: 0,
                cost_usd: 0.0,
                saved_usd: 0.0,
                cache_hits: 0,
            },
            Vec::new(),
            Vec::new(),
        )
    };
    let mut buckets: std::collections::BTreeMap<i64, Acc> = Default::default();
    let mut total = empty(since);
    for (t, status, state, lat, ttft, inp, out, cost, saved, cache) in rows {
        let b = t.div_euclid(bucket_ms) * bucket_ms;
        let e = buckets.entry(b).or_insert_with(|| empty(b));
        for e in [e, &mut total] {
            e.0.requests += 1;
            if status.is_some_and(|s| s >= 400) || state == "interrupted" {
                e.0.errors += 1;
            }
            if let Some(l) = lat {
                e.1.push(l);
            }
            if let Some(l) = ttft {
                e.2.push(l);
            }
            e.0.input_tokens += inp.unwrap_or(0);
            e.0.output_tokens += out.unwrap_or(0);
            e.0.cost_usd += cost.unwrap_or(0.0);
            e.0.saved_usd += saved.unwrap_or(0.0);
            if cache.as_deref() == Some("HIT") {
                e.0.cache_hits += 1;
            }
        }
    }
    let done = |(mut row, mut lat, mut ttft): Acc| {
        row.p50_latency_ms = percentile(&mut lat, 0.50);
        row.p95_latency_ms = percentile(&mut lat, 0.95);
        row.p50_ttft_ms = percentile(&mut ttft, 0.50);
        row.p95_ttft_ms = percentile(&mut ttft, 0.95);
        row
    };
    Ok((buckets.into_values().map(done).collect(), done(total)))
}

fn percentile(v: &mut [f64], q: f64) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let i = ((v.len() as f64 - 1.0) * q).round() as usize;
    Some((v[i] * 100.0).round() / 100.0)
}

/// The query plan SQLite or Postgres chooses for a log-list query, for
/// checking that filters use indexes.
pub async fn explain_list(s: &Storage, f: &LogFilter) -> Result<String, sqlx::Error> {
    let f = &by_rarity(s, f).await?;
    let (sql, args) = page_sql(f, matches!(s, Storage::Postgres(_)), None, 51);
    Ok(match s {
        Storage::Sqlite(p) => {
            let q = format!("EXPLAIN QUERY PLAN {sql}");
            bind_all!(sqlx::query(&q), &args)
                .fetch_all(p)
                .await?
                .iter()
                .map(|r| r.try_get::<String, _>(3).unwrap_or_default())
                .collect::<Vec<_>>()
                .join("\n")
        }
        Storage::Postgres(p) => {
            let q = format!("EXPLAIN {}", pg(&sql));
            bind_all!(sqlx::query(&q), &args)
                .fetch_all(p)
                .await?
                .iter()
                .map(|r| r.try_get::<String, _>(0).unwrap_or_default())
                .collect::<Vec<_>>()
                .join("\n")
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Two tags that both pass the first count are counted again: the
    /// rarer drives the page whatever order the caller gave.
    #[tokio::test]
    async fn tags_past_the_first_count_are_told_apart_by_the_next() {
        let (_dir, s, pool) = crate::storage::scratch_sqlite().await;
        let p = &pool;
        // 30k rows of team=t1, 12k of user=u1 (every request has both
        // tags where i < 12k), and 5 of user=u2.
        sqlx::query(
            "WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM s WHERE i < 30000) \
             INSERT INTO request_tags (request_id, tag, value, time_ms) \
             SELECT 'r' || i, 'team', 't1', i FROM s \
             UNION ALL SELECT 'r' || i, 'user', CASE WHEN i <= 12000 THEN 'u1' ELSE 'u' || i END, i FROM s WHERE i <= 12005",
        )
        .execute(p)
        .await
        .unwrap();
        let tags = |t: &[(&str, &str)]| LogFilter {
            tags: t
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            ..Default::default()
        };
        let order = |f: LogFilter| f.tags.into_iter().map(|(k, _)| k).collect::<Vec<_>>();
        let f = by_rarity(&s, &tags(&[("team", "t1"), ("user", "u1")]))
            .await
            .unwrap();
        assert_eq!(order(f), ["user", "team"]);
        // Below the first count the counts decide at once.
        let f = by_rarity(&s, &tags(&[("team", "t1"), ("user", "u12001")]))
            .await
            .unwrap();
        assert_eq!(order(f), ["user", "team"]);
        // Equally common tags keep the caller's order.
        let f = by_rarity(&s, &tags(&[("user", "u12002"), ("user", "u12003")]))
            .await
            .unwrap();
        assert_eq!(f.tags[0].1, "u12002");
    }
}
