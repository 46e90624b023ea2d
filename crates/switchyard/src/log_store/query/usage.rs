//! Usage: sums of finished requests grouped by any dimension or tag, per
//! time bucket, from the rollup sums where they answer and from the
//! records themselves where they do not.

use std::sync::Arc;

use serde::Serialize;
use sqlx::Row;

use super::{Arg, Group, bind_all};
use crate::storage::{Storage, pg};

/// A grouping dimension.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Dimension {
    Column(&'static str),
    Tag(String),
}

impl Dimension {
    pub fn parse(s: &str) -> Option<Dimension> {
        Some(match s {
            "provider" => Dimension::Column("provider"),
            "model" => Dimension::Column("model"),
            "key" => Dimension::Column("key_id"),
            "route" => Dimension::Column("route"),
            "status" => Dimension::Column("status"),
            _ => {
                let tag = s.strip_prefix("metadata.")?;
                if tag.is_empty() || tag.len() > 64 {
                    return None;
                }
                Dimension::Tag(tag.to_owned())
            }
        })
    }

    fn name(&self) -> String {
        match self {
            Dimension::Column("key_id") => "key".into(),
            Dimension::Column(c) => (*c).to_owned(),
            Dimension::Tag(t) => format!("metadata.{t}"),
        }
    }
}

#[derive(Debug, Clone, Serialize, PartialEq, schemars::JsonSchema)]
pub struct UsageRow {
    pub bucket: Option<i64>,
    /// Each dimension's value by its name (null when absent).
    #[schemars(with = "std::collections::BTreeMap<String, Option<String>>")]
    pub group: Group,
    pub requests: i64,
    pub errors: i64,
    pub input_tokens: i64,
    pub output_tokens: i64,
    pub cached_tokens: i64,
    pub cost_usd: f64,
    pub saved_usd: f64,
}

/// Sums of finished requests per group (and per time bucket when
/// `bucket_ms` is set) over `[since, until)`.
///
/// Whole days and hours come from the sums (see [`crate::log_store::rollup`]), the cut
/// hours at either edge from the records; groupings the sums cannot answer
/// (minute buckets, a tag name holding a quote) read the records throughout.
pub async fn usage(
    s: &Storage,
    group_by: &[Dimension],
    since: Option<i64>,
    until: Option<i64>,
    bucket_ms: Option<i64>,
) -> Result<Vec<UsageRow>, sqlx::Error> {
    use crate::log_store::rollup::{self, Source};
    if !rollup::serves(group_by, bucket_ms) {
        return usage_from_records(s, group_by, since, until, bucket_ms).await;
    }
    let names: Arc<[String]> = group_by.iter().map(Dimension::name).collect();
    let mut all = rollup::Groups::default();
    for (source, from, to) in rollup::plan(since, until, bucket_ms) {
        match source {
            Source::Sums(span) => {
                rollup::usage(s, span, group_by, from, to, bucket_ms, &mut all).await?
            }
            Source::Records => {
                for row in usage_from_records(s, group_by, from, to, bucket_ms).await? {
                    let figures = rollup::Figures::of(&row);
                    all.push((row.bucket, row.group.into_values()), figures);
                }
            }
        }
    }
    let rows = all
        .finish()
        .into_iter()
        .map(|((bucket, values), figures)| {
            let group = Group::new(names.clone(), values);
            figures.row(bucket, group)
        })
        .collect();
    Ok(normalized(rows, group_by, bucket_ms))
}

/// Groups without requests dropped; an ungrouped total always present.
fn normalized(
    mut rows: Vec<UsageRow>,
    group_by: &[Dimension],
    bucket_ms: Option<i64>,
) -> Vec<UsageRow> {
    rows.retain(|r| r.requests > 0);
    if rows.is_empty() && group_by.is_empty() && bucket_ms.is_none() {
        rows.push(UsageRow {
            bucket: None,
            group: Group::default(),
            requests: 0,
            errors: 0,
            input_tokens: 0,
            output_tokens: 0,
            cached_tokens: 0,
            cost_usd: 0.0,
            saved_usd: 0.0,
        });
    }
    rows
}

/// [`usage`] read from the records alone.
pub async fn usage_from_records(
    s: &Storage,
    group_by: &[Dimension],
    since: Option<i64>,
    until: Option<i64>,
    bucket_ms: Option<i64>,
) -> Result<Vec<UsageRow>, sqlx::Error> {
    let mut select = Vec::new();
    let mut joins = String::new();
    let mut args = Vec::new();
    for (i, d) in group_by.iter().enumerate() {
        match d {
            Dimension::Column(c) => select.push(format!("CAST(r.{c} AS TEXT) AS g{i}")),
            Dimension::Tag(t) => {
                joins.push_str(&format!(
                    " LEFT JOIN request_tags t{i} ON t{i}.request_id = r.id AND t{i}.tag = ?"
                ));
                args.push(Arg::Text(t.clone()));
                select.push(format!("t{i}.value AS g{i}"));
            }
        }
    }
    let bucket = match bucket_ms {
        Some(b) => format!("((r.time_ms / {b}) * {b})"),
        None => "NULL".into(),
    };
    let mut sql = format!(
        "SELECT {bucket} AS bucket{}{} , COUNT(*) AS requests, \
         COALESCE(SUM(CASE WHEN r.status >= 400 OR r.state = 'interrupted' THEN 1 ELSE 0 END), 0) AS errors, \
         COALESCE(SUM(r.input_tokens), 0) AS input_tokens, COALESCE(SUM(r.output_tokens), 0) AS output_tokens, \
         COALESCE(SUM(r.cached_tokens), 0) AS cached_tokens, COALESCE(SUM(r.cost_usd), 0.0) AS cost_usd, \
         COALESCE(SUM(r.saved_usd), 0.0) AS saved_usd FROM requests r{joins} WHERE r.state IN ('complete', 'interrupted')",
        if select.is_empty() { "" } else { ", " },
        select.join(", ")
    );
    if let Some(t) = since {
        sql.push_str(" AND r.time_ms >= ?");
        args.push(Arg::Int(t));
    }
    if let Some(t) = until {
        sql.push_str(" AND r.time_ms < ?");
        args.push(Arg::Int(t));
    }
    let mut groups: Vec<String> = (0..group_by.len()).map(|i| format!("g{i}")).collect();
    if bucket_ms.is_some() {
        groups.insert(0, "bucket".into());
    }
    if !groups.is_empty() {
        sql.push_str(&format!(" GROUP BY {}", groups.join(", ")));
        sql.push_str(&format!(" ORDER BY {}", groups.join(", ")));
    }
    let names: Arc<[String]> = group_by.iter().map(Dimension::name).collect();
    macro_rules! rows {
        ($rows:expr) => {{
            let mut out = Vec::new();
            for r in $rows {
                let mut values = Vec::with_capacity(names.len());
                for i in 0..names.len() {
                    values.push(r.try_get::<Option<String>, _>(format!("g{i}").as_str())?);
                }
                let group = Group::new(names.clone(), values);
                out.push(UsageRow {
                    bucket: r.try_get("bucket")?,
                    group,
                    requests: r.try_get("requests")?,
                    errors: r.try_get("errors")?,
                    input_tokens: r.try_get("input_tokens")?,
                    output_tokens: r.try_get("output_tokens")?,
                    cached_tokens: r.try_get("cached_tokens")?,
                    cost_usd: r.try_get("cost_usd")?,
                    saved_usd: r.try_get("saved_usd")?,
                });
            }
            out
        }};
    }
    let rows = match s {
        Storage::Sqlite(p) => rows!(bind_all!(sqlx::query(&sql), &args).fetch_all(p).await?),
        Storage::Postgres(p) => {
            // Postgres sums integers as NUMERIC: cast back for decoding.
            let sql = pg(&sql)
                .replace(
                    "COALESCE(SUM(r.input_tokens), 0)",
                    "COALESCE(SUM(r.input_tokens), 0)::BIGINT",
                )
                .replace(
                    "COALESCE(SUM(r.output_tokens), 0)",
                    "COALESCE(SUM(r.output_tokens), 0)::BIGINT",
                )
                .replace(
                    "COALESCE(SUM(r.cached_tokens), 0)",
                    "COALESCE(SUM(r.cached_tokens), 0)::BIGINT",
                )
                .replace(
                    "ELSE 0 END), 0) AS errors",
                    "ELSE 0 END), 0)::BIGINT AS errors",
                )
                .replace("NULL AS bucket", "NULL::BIGINT AS bucket");
            rows!(bind_all!(sqlx::query(&sql), &args).fetch_all(p).await?)
        }
    };
    Ok(normalized(rows, group_by, bucket_ms))
}
