//! The admin listener: the operator's API (and, later, the dashboard).
//!
//! Every route here needs the admin token as `Authorization: Bearer`. The
//! token comes from the variable `auth.admin_token_env` names; when that is
//! unset the gateway makes one, stores it with mode 0600 next to the
//! database, and prints where. Agent keys never open these routes.

mod cache;
pub mod dashboard;
mod keys;
mod logs;
pub(crate) mod mcp;
pub(crate) mod tools;
pub mod views;

pub use views::ApiKeyView;

use std::path::PathBuf;
use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, delete, get, patch, post};
use http::StatusCode;
use subtle::ConstantTimeEq;

use crate::config::{Config, Env};
use crate::gateway::Gateway;
use crate::providers::Secret;

/// The admin token, and the file it was stored in when generated.
#[derive(Debug)]
pub struct AdminToken {
    token: Secret,
    pub file: Option<PathBuf>,
}

impl AdminToken {
    pub fn resolve(config: &Config, env: &Env) -> anyhow::Result<AdminToken> {
        if let Some(t) = env.get(&config.auth.admin_token_env) {
            if t.len() < 16 {
                anyhow::bail!(
                    "${} holds an admin token shorter than 16 characters; use a long random value",
                    config.auth.admin_token_env
                );
            }
            return Ok(AdminToken {
                token: Secret::new(t.to_owned()),
                file: None,
            });
        }
        let dir = config.storage.data_dir();
        std::fs::create_dir_all(&dir)?;
        let path = dir.join("switchyard-admin-token");
        if let Ok(existing) = std::fs::read_to_string(&path) {
            let t = existing.trim();
            if t.len() >= 16 {
                return Ok(AdminToken {
                    token: Secret::new(t.to_owned()),
                    file: Some(path),
                });
            }
        }
        let token = format!("sy-admin-{}", random_hex(32));
        write_private(&path, &token)?;
        Ok(AdminToken {
            token: Secret::new(token),
            file: Some(path),
        })
    }

    pub fn matches(&self, presented: &str) -> bool {
        let a = presented.as_bytes();
        let b = self.token.expose().as_bytes();
        a.len() == b.len() && bool::from(a.ct_eq(b))
    }
}

/// `n` random bytes from the operating system, as hex.
fn random_hex(n: usize) -> String {
    use rand::RngCore;
    let mut bytes = vec![0u8; n];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Writes a file only its owner can read.
fn write_private(path: &std::path::Path, contents: &str) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    f.write_all(contents.as_bytes())?;
    f.write_all(b"\n")?;
    Ok(())
}

/// Every admin route, as (method, path). The router is built from this
/// table; a test checks each refuses a request without the admin token.
pub const ROUTES: &[(&str, &str)] = &[
    ("GET", "/admin/v1/config"),
    ("POST", "/admin/v1/config/reload"),
    ("GET", "/admin/v1/providers"),
    ("GET", "/admin/v1/keys"),
    ("POST", "/admin/v1/keys"),
    ("GET", "/admin/v1/keys/{id}"),
    ("PATCH", "/admin/v1/keys/{id}"),
    ("DELETE", "/admin/v1/keys/{id}"),
    ("GET", "/admin/v1/logs"),
    ("GET", "/admin/v1/logs/{id}"),
    ("GET", "/admin/v1/usage"),
    ("GET", "/admin/v1/stats"),
    ("GET", "/admin/v1/cache"),
    ("DELETE", "/admin/v1/cache"),
    ("DELETE", "/admin/v1/cache/{id}"),
    ("GET", "/admin/v1/approvals"),
    ("POST", "/admin/v1/approvals/{id}"),
    ("GET", "/admin/v1/tool-calls"),
    ("GET", "/admin/v1/audit/verify"),
    ("GET", "/admin/v1/mcp/changes"),
    ("POST", "/admin/v1/mcp/changes/{id}"),
    ("GET", "/admin/v1/openapi.json"),
];

fn handler(method: &str, path: &str) -> Option<MethodRouter<Arc<Gateway>>> {
    Some(match (method, path) {
        ("GET", "/admin/v1/config") => get(config),
        ("POST", "/admin/v1/config/reload") => post(reload),
        ("GET", "/admin/v1/providers") => get(providers),
        ("GET", "/admin/v1/keys") => get(keys::list),
        ("POST", "/admin/v1/keys") => post(keys::create),
        ("GET", "/admin/v1/keys/{id}") => get(keys::show),
        ("PATCH", "/admin/v1/keys/{id}") => patch(keys::update),
        ("DELETE", "/admin/v1/keys/{id}") => delete(keys::revoke),
        ("GET", "/admin/v1/logs") => get(logs::list),
        ("GET", "/admin/v1/logs/{id}") => get(logs::show),
        ("GET", "/admin/v1/usage") => get(logs::usage),
        ("GET", "/admin/v1/stats") => get(logs::stats),
        ("GET", "/admin/v1/cache") => get(cache::list),
        ("DELETE", "/admin/v1/cache") => delete(cache::purge),
        ("DELETE", "/admin/v1/cache/{id}") => delete(cache::purge_one),
        ("GET", "/admin/v1/approvals") => get(tools::approvals),
        ("POST", "/admin/v1/approvals/{id}") => post(tools::decide),
        ("GET", "/admin/v1/tool-calls") => get(tools::tool_calls),
        ("GET", "/admin/v1/audit/verify") => get(tools::verify),
        ("GET", "/admin/v1/mcp/changes") => get(mcp::changes),
        ("POST", "/admin/v1/mcp/changes/{id}") => post(mcp::decide),
        ("GET", "/admin/v1/openapi.json") => get(openapi),
        _ => return None,
    })
}

/// The admin router; every route behind the token check (a layer over the
/// whole router, fallback included, so nothing escapes it).
pub fn router(gw: Arc<Gateway>) -> Router {
    let mut r: Router<Arc<Gateway>> = Router::new();
    let mut seen: Vec<&str> = Vec::new();
    for (_, path) in ROUTES {
        if seen.contains(path) {
            continue;
        }
        seen.push(path);
        // One MethodRouter per path, merging the methods the table lists.
        let mut mr: Option<MethodRouter<Arc<Gateway>>> = None;
        for (m, p) in ROUTES.iter().filter(|(_, p)| p == path) {
            match handler(m, p) {
                Some(h) => {
                    mr = Some(match mr {
                        Some(prev) => prev.merge(h),
                        None => h,
                    })
                }
                None => tracing::error!(method = m, path = p, "No handler for an admin route"),
            }
        }
        if let Some(mr) = mr {
            // Another method on a known path: the admin error, and the
            // methods that path has in `Allow`.
            let allow: Vec<&str> = ROUTES
                .iter()
                .filter(|(_, p)| p == path)
                .map(|(m, _)| *m)
                .collect();
            let allow = allow.join(", ");
            let mr = mr.fallback(move |req: Request| {
                let allow = allow.clone();
                async move {
                    let mut resp = admin_error(
                        StatusCode::METHOD_NOT_ALLOWED,
                        "invalid_request_error",
                        &format!(
                            "{} is not allowed on {}; allowed: {allow}",
                            req.method(),
                            req.uri().path()
                        ),
                    );
                    if let Ok(v) = http::HeaderValue::from_str(&allow) {
                        resp.headers_mut().insert(http::header::ALLOW, v);
                    }
                    resp
                }
            });
            r = r.route(path, mr);
        }
    }
    // The layer wraps every route above and the fallback; the dashboard's
    // pages and its sign-in endpoint are added after it, on purpose: they
    // hold no data.
    let protected = r
        .fallback(not_found)
        .layer(middleware::from_fn_with_state(gw.clone(), require_admin));
    let public: Router<Arc<Gateway>> = Router::new()
        .route("/", get(dashboard::index))
        .route("/login", get(dashboard::login_page))
        .route("/assets/{name}", get(dashboard::assets))
        .route(
            "/admin/session",
            post(dashboard::sign_in)
                .get(dashboard::current)
                .delete(dashboard::sign_out),
        );
    protected.merge(public).with_state(gw)
}

/// The admin listener's paths that need neither token nor session.
pub const PUBLIC_PATHS: &[&str] = &["/", "/login", "/assets/{name}", "/admin/session"];

async fn require_admin(State(gw): State<Arc<Gateway>>, req: Request, next: Next) -> Response {
    let presented = req
        .headers()
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .map(str::trim);
    match presented {
        Some(t) if gw.admin_token.matches(t) => next.run(req).await,
        Some(_) => admin_error(
            StatusCode::UNAUTHORIZED,
            "authentication_error",
            "the admin token is required",
        ),
        // The dashboard: a session cookie, and CSRF for changes.
        None => match gw.sessions.check(req.headers(), req.method()) {
            Ok(()) => next.run(req).await,
            Err(StatusCode::FORBIDDEN) => admin_error(
                StatusCode::FORBIDDEN,
                "permission_error",
                "a state-changing call needs the session's x-csrf-token",
            ),
            Err(_) => admin_error(
                StatusCode::UNAUTHORIZED,
                "authentication_error",
                "the admin token is required",
            ),
        },
    }
}

/// Who made an operator's decision: the dashboard (a session cookie) or
/// the admin API (the token).
fn decided_by(headers: &http::HeaderMap) -> &'static str {
    if headers.contains_key(http::header::COOKIE) {
        "dashboard"
    } else {
        "admin-api"
    }
}

pub fn admin_error(status: StatusCode, kind: &str, message: &str) -> Response {
    let body = crate::wire::openai::encode_error(message, kind, None, None);
    let mut resp = (status, Body::from(body)).into_response();
    resp.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    resp
}

async fn not_found(req: Request) -> Response {
    admin_error(
        StatusCode::NOT_FOUND,
        "not_found_error",
        &format!("no admin route for {} {}", req.method(), req.uri().path()),
    )
}

/// `GET /admin/v1/config`: the resolved configuration. Provider keys show as
/// the variable that holds them and whether it is set, never the value.
async fn config(State(gw): State<Arc<Gateway>>) -> Response {
    let mut v = serde_json::to_value(&*gw.config).unwrap_or_default();
    if let Some(list) = v.get_mut("providers").and_then(|p| p.as_array_mut()) {
        for p in list.iter_mut() {
            let name = p
                .get("name")
                .and_then(|n| n.as_str())
                .unwrap_or("")
                .to_owned();
            let set = gw.providers.get(&name).is_some_and(|p| p.has_credential());
            if let Some(obj) = p.as_object_mut() {
                let env = obj.remove("api_key_env");
                let env = env.and_then(|e| e.as_str().map(str::to_owned));
                let view = ApiKeyView { env, set };
                obj.insert(
                    "api_key".into(),
                    serde_json::to_value(view).unwrap_or_default(),
                );
            }
        }
    }
    if let Some(s) = v.get_mut("storage").and_then(|s| s.get_mut("url"))
        && let Some(url) = s.as_str()
    {
        *s = serde_json::Value::String(crate::config::redact_url(url));
    }
    if let Some(s) = v.get_mut("redis").and_then(|s| s.get_mut("url"))
        && let Some(url) = s.as_str()
    {
        *s = serde_json::Value::String(crate::config::redact_url(url));
    }
    axum::Json(v).into_response()
}

/// `POST /admin/v1/config/reload`: the configuration file read again and
/// swapped in whole, or nothing changed and the answer says why.
async fn reload(State(gw): State<Arc<Gateway>>) -> Response {
    use crate::server::reload::ReloadError;
    let Some(reloader) = gw.reloader() else {
        return admin_error(
            StatusCode::SERVICE_UNAVAILABLE,
            "server_error",
            "this process cannot reload",
        );
    };
    match reloader.reload().await {
        Ok(outcome) => axum::Json(outcome).into_response(),
        Err(e) => {
            tracing::error!(error = %e, "Configuration reload refused; nothing changed");
            let param = match &e {
                ReloadError::Invalid(c) if !c.key.is_empty() => Some(c.key.as_str()),
                _ => None,
            };
            let body = crate::wire::openai::encode_error(
                &format!("nothing changed: {e}"),
                "invalid_request_error",
                param,
                None,
            );
            let mut r = (StatusCode::BAD_REQUEST, body).into_response();
            r.headers_mut().insert(
                http::header::CONTENT_TYPE,
                http::HeaderValue::from_static("application/json"),
            );
            r
        }
    }
}

/// `GET /admin/v1/providers`: each provider with its circuit, error rate,
/// latency and last error, and the same for each provider/model target seen.
async fn providers(State(gw): State<Arc<Gateway>>) -> Response {
    let now = tokio::time::Instant::now();
    let snapshot = gw.health.snapshot(now);
    let providers = gw
        .providers
        .list
        .iter()
        .map(|p| {
            let name = p.name();
            let prefix = format!("{name}/");
            views::ProviderView {
                name: name.to_owned(),
                kind: p.kind(),
                base_url: p.config.base_url.clone(),
                jurisdiction: p.config.jurisdiction.clone(),
                key_set: p.has_credential(),
                health: snapshot.iter().find(|s| s.key == name).cloned(),
                targets: snapshot
                    .iter()
                    .filter(|s| s.key.starts_with(&prefix))
                    .cloned()
                    .collect(),
            }
        })
        .collect();
    axum::Json(views::Providers { providers }).into_response()
}

/// `GET /admin/v1/openapi.json`: the OpenAPI 3.1 document of both
/// listeners, built from the route tables and the answers' types.
async fn openapi() -> Response {
    axum::Json(crate::openapi::document()).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_admin_route_has_a_handler() {
        for (method, path) in ROUTES {
            assert!(handler(method, path).is_some(), "{method} {path}");
        }
    }
}
