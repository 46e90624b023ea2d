//! `/admin/v1/logs`, `/admin/v1/usage`, `/admin/v1/stats`: reading the
//! request records back.

use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use http::StatusCode;

use super::admin_error;
use super::views::{List, Page, Stats, Top};
use crate::gateway::Gateway;
use crate::log_store::query::{self, Dimension, LogFilter};

/// A 400 naming the query parameter at fault.
pub(super) fn bad(param: &str, message: &str) -> Response {
    let body = crate::wire::openai::encode_error(
        &format!("`{param}`: {message}"),
        "invalid_request_error",
        Some(param),
        None,
    );
    let mut r = (StatusCode::BAD_REQUEST, body).into_response();
    r.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    r
}

fn store_failed(e: sqlx::Error) -> Response {
    tracing::error!(error = %e, "Log store query failed");
    // The operator's own API: the database's word helps them, and it holds
    // no secret.
    admin_error(
        StatusCode::SERVICE_UNAVAILABLE,
        "server_error",
        &format!("the log store failed: {e}"),
    )
}

/// A time: unix milliseconds, or an RFC 3339 UTC time (`2026-11-28T10:00:00Z`).
pub(super) fn parse_time(s: &str) -> Option<i64> {
    if let Ok(ms) = s.parse::<i64>() {
        return Some(ms);
    }
    let s = s.strip_suffix('Z')?;
    let (date, time) = s.split_once('T')?;
    let d: Vec<i64> = date
        .split('-')
        .map(|p| p.parse().ok())
        .collect::<Option<_>>()?;
    let time = time.split('.').next()?;
    let t: Vec<i64> = time
        .split(':')
        .map(|p| p.parse().ok())
        .collect::<Option<_>>()?;
    let ([y, m, day], [hh, mm, ss]) = (d.as_slice(), t.as_slice()) else {
        return None;
    };
    let y = if *m <= 2 { y - 1 } else { *y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(((days * 86_400) + hh * 3600 + mm * 60 + ss) * 1000)
}

pub(super) async fn list(
    State(gw): State<Arc<Gateway>>,
    Query(params): Query<Vec<(String, String)>>,
) -> Response {
    let mut f = LogFilter::default();
    let mut cursor = None;
    let mut limit = 50;
    for (k, v) in params {
        match k.as_str() {
            "key" => f.key = Some(v),
            "route" => f.route = Some(v),
            "provider" => f.provider = Some(v),
            "model" => f.model = Some(v),
            "error_class" => f.error_class = Some(v),
            "trace_id" => f.trace_id = Some(v),
            "status" => match v.parse() {
                Ok(s) => f.status = Some(s),
                Err(_) => return bad("status", "expected an HTTP status such as 200 or 429"),
            },
            "since" | "until" => match parse_time(&v) {
                Some(t) if k == "since" => f.since = Some(t),
                Some(t) => f.until = Some(t),
                None => return bad(&k, "expected unix milliseconds or an RFC 3339 UTC time"),
            },
            "limit" => match v.parse::<u32>() {
                Ok(n) if (1..=500).contains(&n) => limit = n,
                _ => return bad("limit", "expected 1 to 500"),
            },
            "cursor" => cursor = Some(v),
            other => match other.strip_prefix("metadata.") {
                Some(tag) if !tag.is_empty() => f.tags.push((tag.to_owned(), v)),
                _ => {
                    return bad(
                        other,
                        "unknown filter; expected key, route, provider, model, status, error_class, trace_id, since, until, metadata.<tag>, limit or cursor",
                    );
                }
            },
        }
    }
    match query::list(&gw.storage, &f, cursor.as_deref(), limit).await {
        Ok((data, next)) => axum::Json(Page {
            data,
            next_cursor: next,
        })
        .into_response(),
        Err(e) => store_failed(e),
    }
}

pub(super) async fn show(State(gw): State<Arc<Gateway>>, Path(id): Path<String>) -> Response {
    match query::get(&gw.storage, &id, None).await {
        Ok(Some(r)) => axum::Json(r).into_response(),
        Ok(None) => admin_error(
            StatusCode::NOT_FOUND,
            "not_found_error",
            "no request with that id",
        ),
        Err(e) => store_failed(e),
    }
}

fn bucket_ms(s: &str) -> Option<i64> {
    match s {
        "minute" => Some(60_000),
        "hour" => Some(3_600_000),
        "day" => Some(86_400_000),
        _ => None,
    }
}

pub(super) async fn usage(
    State(gw): State<Arc<Gateway>>,
    Query(params): Query<Vec<(String, String)>>,
) -> Response {
    let mut group_by = Vec::new();
    let (mut since, mut until, mut bucket) = (None, None, None);
    for (k, v) in params {
        match k.as_str() {
            "group_by" => {
                for d in v.split(',').map(str::trim).filter(|d| !d.is_empty()) {
                    match Dimension::parse(d) {
                        Some(dim) if !group_by.contains(&dim) => group_by.push(dim),
                        Some(_) => {}
                        None => {
                            return bad(
                                "group_by",
                                &format!(
                                    "unknown dimension `{d}`; expected provider, model, key, route, status or metadata.<tag>"
                                ),
                            );
                        }
                    }
                }
                if group_by.len() > 4 {
                    return bad("group_by", "at most 4 dimensions");
                }
            }
            "since" | "until" => match parse_time(&v) {
                Some(t) if k == "since" => since = Some(t),
                Some(t) => until = Some(t),
                None => return bad(&k, "expected unix milliseconds or an RFC 3339 UTC time"),
            },
            "bucket" => match bucket_ms(&v) {
                Some(b) => bucket = Some(b),
                None => return bad("bucket", "expected minute, hour or day"),
            },
            other => {
                return bad(
                    other,
                    "unknown parameter; expected group_by, since, until or bucket",
                );
            }
        }
    }
    match query::usage(&gw.storage, &group_by, since, until, bucket).await {
        Ok(rows) => axum::Json(List { data: rows }).into_response(),
        Err(e) => store_failed(e),
    }
}

pub(super) async fn stats(
    State(gw): State<Arc<Gateway>>,
    Query(params): Query<Vec<(String, String)>>,
) -> Response {
    let now = crate::clock::unix_ms();
    let (mut since, mut until, mut bucket) = (now - 3_600_000, now, 60_000);
    for (k, v) in params {
        match k.as_str() {
            "since" | "until" => match parse_time(&v) {
                Some(t) if k == "since" => since = t,
                Some(t) => until = t,
                None => return bad(&k, "expected unix milliseconds or an RFC 3339 UTC time"),
            },
            "bucket" => match bucket_ms(&v) {
                Some(b) => bucket = b,
                None => return bad("bucket", "expected minute, hour or day"),
            },
            other => return bad(other, "unknown parameter; expected since, until or bucket"),
        }
    }
    let (rows, totals) = match query::stats(&gw.storage, since, until, bucket).await {
        Ok(r) => r,
        Err(e) => return store_failed(e),
    };
    let top = |dim: &'static str| {
        let gw = gw.clone();
        async move {
            let d = [Dimension::parse(dim).unwrap_or(Dimension::Column("provider"))];
            query::usage(&gw.storage, &d, Some(since), Some(until), None)
                .await
                .map(|mut rows| {
                    rows.sort_by_key(|r| std::cmp::Reverse(r.requests));
                    rows.truncate(10);
                    rows.into_iter()
                        .map(|r| Top {
                            name: r
                                .group
                                .get(dim)
                                .map(|v| serde_json::Value::String(v.to_owned()))
                                .unwrap_or_default(),
                            requests: r.requests,
                            errors: r.errors,
                            cost_usd: r.cost_usd,
                        })
                        .collect::<Vec<_>>()
                })
        }
    };
    let (models, providers) = match (top("model").await, top("provider").await) {
        (Ok(m), Ok(p)) => (m, p),
        (Err(e), _) | (_, Err(e)) => return store_failed(e),
    };
    axum::Json(Stats {
        data: rows,
        totals,
        top_models: models,
        top_providers: providers,
    })
    .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_parse() {
        assert_eq!(parse_time("1795860000000"), Some(1_795_860_000_000));
        assert_eq!(parse_time("2026-11-28T10:00:00Z"), Some(1_795_860_000_000));
        assert_eq!(
            parse_time("2026-11-28T10:00:00.123Z"),
            Some(1_795_860_000_000)
        );
        assert_eq!(parse_time("yesterday"), None);
    }
}
