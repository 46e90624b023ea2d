//! `/admin/v1/keys`: create, list, show, update and revoke keys. A secret
//! appears once, in the answer to its creation; afterwards a key shows its
//! id, its name and the last four characters of its secret.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use http::StatusCode;
use serde::Deserialize;

use super::admin_error;
use super::views::{KeyView, List};
use crate::gateway::Gateway;
use crate::keys::manage::{self, KeySpec, ManageError};

fn failure(e: ManageError) -> Response {
    match e {
        ManageError::Field(f) => {
            let body = crate::wire::openai::encode_error(
                &f.to_string(),
                "invalid_request_error",
                Some(&f.field),
                None,
            );
            let mut r = (StatusCode::BAD_REQUEST, body).into_response();
            r.headers_mut().insert(
                http::header::CONTENT_TYPE,
                http::HeaderValue::from_static("application/json"),
            );
            r
        }
        ManageError::NotFound => admin_error(
            StatusCode::NOT_FOUND,
            "not_found_error",
            "no key with that id",
        ),
        ManageError::Revoked => admin_error(
            StatusCode::CONFLICT,
            "invalid_request_error",
            "the key is revoked",
        ),
        ManageError::Store(e) => {
            tracing::error!(error = %e, "Key store failed");
            admin_error(
                StatusCode::SERVICE_UNAVAILABLE,
                "server_error",
                "the key store is unavailable",
            )
        }
    }
}

pub(super) async fn create(State(gw): State<Arc<Gateway>>, body: Bytes) -> Response {
    let spec = match KeySpec::parse(&body) {
        Ok(s) => s,
        Err(f) => return failure(ManageError::Field(f)),
    };
    match manage::create(&gw.storage, spec).await {
        Ok((k, secret)) => {
            let v = KeyView {
                secret: Some(secret),
                ..KeyView::new(k)
            };
            (StatusCode::CREATED, axum::Json(v)).into_response()
        }
        Err(e) => failure(e),
    }
}

#[derive(Deserialize)]
pub(super) struct ListQuery {
    #[serde(default)]
    include_revoked: bool,
}

pub(super) async fn list(
    State(gw): State<Arc<Gateway>>,
    q: Result<Query<ListQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    // An admin error like any other, not axum's text.
    let Ok(Query(q)) = q else {
        return super::logs::bad("include_revoked", "expected true or false");
    };
    match crate::keys::store::list(&gw.storage, q.include_revoked).await {
        Ok(keys) => axum::Json(List {
            data: keys.into_iter().map(KeyView::new).collect(),
        })
        .into_response(),
        Err(e) => failure(e.into()),
    }
}

pub(super) async fn show(State(gw): State<Arc<Gateway>>, Path(id): Path<String>) -> Response {
    match crate::keys::store::get(&gw.storage, &id).await {
        Ok(Some(k)) => {
            let status = match k.budget_usd {
                Some(_) => gw.budget.status(&k, crate::clock::unix_ms()).await.ok(),
                None => None,
            };
            let v = KeyView {
                budget_spent_usd: status.map(|(spent, _)| spent),
                budget_held_usd: status.map(|(_, held)| held),
                ..KeyView::new(k)
            };
            axum::Json(v).into_response()
        }
        Ok(None) => failure(ManageError::NotFound),
        Err(e) => failure(e.into()),
    }
}

pub(super) async fn update(
    State(gw): State<Arc<Gateway>>,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    let spec = match KeySpec::parse(&body) {
        Ok(s) => s,
        Err(f) => return failure(ManageError::Field(f)),
    };
    match manage::update(&gw.storage, &id, spec).await {
        Ok(k) => {
            // Reload here at once; other replicas follow within a second.
            let _ = gw.keys.refresh().await;
            axum::Json(KeyView::new(k)).into_response()
        }
        Err(e) => failure(e),
    }
}

pub(super) async fn revoke(State(gw): State<Arc<Gateway>>, Path(id): Path<String>) -> Response {
    match manage::revoke(&gw.storage, &id).await {
        Ok(k) => {
            gw.keys.forget(&k.id);
            let _ = gw.keys.refresh().await;
            axum::Json(KeyView::new(k)).into_response()
        }
        Err(e) => failure(e),
    }
}
