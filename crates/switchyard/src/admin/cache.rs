//! `/admin/v1/cache`: what the cache holds (metadata, never bodies), and
//! purges that really delete.

use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use http::StatusCode;
use serde::Deserialize;

use super::admin_error;
use super::views::{CachePage, Deleted};
use crate::gateway::Gateway;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ListQuery {
    namespace: Option<String>,
    limit: Option<usize>,
    cursor: Option<String>,
}

fn failed(e: redis::RedisError) -> Response {
    tracing::error!(error = %e, "Cache backend failed");
    admin_error(
        StatusCode::SERVICE_UNAVAILABLE,
        "server_error",
        &format!("the cache backend failed: {e}"),
    )
}

type QueryResult<T> = Result<Query<T>, axum::extract::rejection::QueryRejection>;

fn bad_query(e: axum::extract::rejection::QueryRejection) -> Response {
    admin_error(
        StatusCode::BAD_REQUEST,
        "invalid_request_error",
        &e.body_text(),
    )
}

pub(super) async fn list(State(gw): State<Arc<Gateway>>, q: QueryResult<ListQuery>) -> Response {
    let q = match q {
        Ok(Query(q)) => q,
        Err(e) => return bad_query(e),
    };
    let limit = q.limit.unwrap_or(50).clamp(1, 500);
    let offset = match q.cursor.as_deref().map(str::parse::<usize>) {
        None => 0,
        Some(Ok(n)) => n,
        Some(Err(_)) => {
            return admin_error(
                StatusCode::BAD_REQUEST,
                "invalid_request_error",
                "`cursor`: not a cursor from this API",
            );
        }
    };
    match gw
        .cache
        .list(
            q.namespace.as_deref(),
            offset,
            limit + 1,
            crate::clock::unix_ms(),
        )
        .await
    {
        Ok(mut entries) => {
            let next = (entries.len() > limit).then(|| (offset + limit).to_string());
            entries.truncate(limit);
            axum::Json(CachePage {
                data: entries,
                next_cursor: next,
                backend: gw.cache.backend(),
            })
            .into_response()
        }
        Err(e) => failed(e),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct PurgeQuery {
    namespace: Option<String>,
}

pub(super) async fn purge(State(gw): State<Arc<Gateway>>, q: QueryResult<PurgeQuery>) -> Response {
    let q = match q {
        Ok(Query(q)) => q,
        Err(e) => return bad_query(e),
    };
    let r = match q.namespace {
        Some(ns) => gw.cache.purge_namespace(&ns).await,
        None => gw.cache.purge_all().await,
    };
    match r {
        Ok(n) => axum::Json(Deleted { deleted: n }).into_response(),
        Err(e) => failed(e),
    }
}

pub(super) async fn purge_one(State(gw): State<Arc<Gateway>>, Path(id): Path<String>) -> Response {
    match gw.cache.purge_id(&id).await {
        Ok(0) => admin_error(
            StatusCode::NOT_FOUND,
            "not_found_error",
            "no cache entry with that id",
        ),
        Ok(n) => axum::Json(Deleted { deleted: n }).into_response(),
        Err(e) => failed(e),
    }
}
