//! The dashboard: static pages embedded in the binary, and sign-in
//! sessions for them.
//!
//! Signing in with the admin token yields a session cookie (`HttpOnly`,
//! `SameSite=Strict`, `Secure` behind TLS, expiring) and a CSRF token the
//! page sends on every state-changing call. Sessions live in this process's
//! memory: signing in again after a restart is the price of keeping no
//! session store. The pages themselves hold no data and no secret.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{Path, Request, State};
use axum::response::{IntoResponse, Response};
use http::{HeaderMap, HeaderValue, StatusCode};
use rand::RngCore;
use subtle::ConstantTimeEq;

use super::admin_error;
use crate::gateway::Gateway;

include!(concat!(env!("OUT_DIR"), "/dashboard_assets.rs"));

/// How long a sign-in lasts.
pub const SESSION_TTL: Duration = Duration::from_secs(12 * 3600);
pub const COOKIE: &str = "sy_session";

#[derive(Debug, Clone)]
struct Session {
    csrf: String,
    expires_ms: i64,
}

/// Signed-in dashboard sessions, by session id.
#[derive(Debug, Default)]
pub struct Sessions(Mutex<HashMap<String, Session>>);

fn random_hex(n: usize) -> String {
    let mut b = vec![0u8; n];
    rand::rngs::OsRng.fill_bytes(&mut b);
    crate::keys::hex(&b)
}

fn eq(a: &str, b: &str) -> bool {
    a.len() == b.len() && bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

impl Sessions {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Session>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn create(&self) -> (String, Session) {
        let id = random_hex(32);
        let s = Session {
            csrf: random_hex(32),
            expires_ms: crate::clock::unix_ms() + SESSION_TTL.as_millis() as i64,
        };
        let mut map = self.lock();
        let now = crate::clock::unix_ms();
        map.retain(|_, s| s.expires_ms > now);
        map.insert(id.clone(), s.clone());
        (id, s)
    }

    fn get(&self, id: &str) -> Option<Session> {
        let now = crate::clock::unix_ms();
        self.lock().get(id).filter(|s| s.expires_ms > now).cloned()
    }

    fn remove(&self, id: &str) {
        self.lock().remove(id);
    }

    /// Checks a request's session cookie, and for a state-changing method
    /// its CSRF header. `Err` is the status to answer with.
    pub fn check(&self, headers: &HeaderMap, method: &http::Method) -> Result<(), StatusCode> {
        let id = cookie(headers).ok_or(StatusCode::UNAUTHORIZED)?;
        let s = self.get(&id).ok_or(StatusCode::UNAUTHORIZED)?;
        let safe = matches!(
            *method,
            http::Method::GET | http::Method::HEAD | http::Method::OPTIONS
        );
        if !safe {
            let presented = headers
                .get("x-csrf-token")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("");
            if !eq(presented, &s.csrf) {
                return Err(StatusCode::FORBIDDEN);
            }
        }
        Ok(())
    }
}

fn cookie(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == COOKIE)
        .map(|(_, v)| v.to_owned())
}

/// Behind TLS (a terminating proxy says so), cookies are `Secure`.
fn secure(headers: &HeaderMap) -> bool {
    headers
        .get("x-forwarded-proto")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("https"))
}

fn set_cookie(value: &str, max_age: u64, secure: bool) -> HeaderValue {
    let s = format!(
        "{COOKIE}={value}; Path=/; HttpOnly; SameSite=Strict; Max-Age={max_age}{}",
        if secure { "; Secure" } else { "" }
    );
    HeaderValue::from_str(&s).unwrap_or_else(|_| HeaderValue::from_static("sy_session=; Max-Age=0"))
}

fn asset(name: &str) -> Response {
    match ASSETS.iter().find(|(n, _, _)| *n == name) {
        Some((_, bytes, ct)) => {
            let mut r = Response::new(Body::from(Bytes::from_static(bytes)));
            let h = r.headers_mut();
            h.insert(http::header::CONTENT_TYPE, HeaderValue::from_static(ct));
            h.insert(
                http::header::CACHE_CONTROL,
                HeaderValue::from_static("no-cache"),
            );
            // Nothing but our own files, no framing by other sites.
            h.insert(
                "content-security-policy",
                HeaderValue::from_static(
                    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'",
                ),
            );
            h.insert(
                "x-content-type-options",
                HeaderValue::from_static("nosniff"),
            );
            h.insert("referrer-policy", HeaderValue::from_static("no-referrer"));
            r
        }
        None => admin_error(StatusCode::NOT_FOUND, "not_found_error", "no such asset"),
    }
}

pub(super) async fn index() -> Response {
    asset("index.html")
}

pub(super) async fn login_page() -> Response {
    asset("login.html")
}

pub(super) async fn assets(Path(name): Path<String>) -> Response {
    asset(&name)
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct SignIn {
    token: String,
}

/// `POST /admin/session`: the admin token for a session.
pub(super) async fn sign_in(
    State(gw): State<Arc<Gateway>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let Ok(s) = serde_json::from_slice::<SignIn>(&body) else {
        return admin_error(
            StatusCode::BAD_REQUEST,
            "invalid_request_error",
            "expected {\"token\": \"...\"}",
        );
    };
    if !gw.admin_token.matches(s.token.trim()) {
        return admin_error(
            StatusCode::UNAUTHORIZED,
            "authentication_error",
            "that is not the admin token",
        );
    }
    let (id, session) = gw.sessions.create();
    let mut r = axum::Json(
        serde_json::json!({"csrf": session.csrf, "expires_at": session.expires_ms / 1000}),
    )
    .into_response();
    r.headers_mut().insert(
        http::header::SET_COOKIE,
        set_cookie(&id, SESSION_TTL.as_secs(), secure(&headers)),
    );
    r
}

/// `GET /admin/session`: the session's CSRF token, for a page loaded anew.
pub(super) async fn current(State(gw): State<Arc<Gateway>>, headers: HeaderMap) -> Response {
    match cookie(&headers).and_then(|id| gw.sessions.get(&id)) {
        Some(s) => {
            axum::Json(serde_json::json!({"csrf": s.csrf, "expires_at": s.expires_ms / 1000}))
                .into_response()
        }
        None => admin_error(
            StatusCode::UNAUTHORIZED,
            "authentication_error",
            "not signed in",
        ),
    }
}

/// `DELETE /admin/session`: sign out (needs the CSRF token).
pub(super) async fn sign_out(State(gw): State<Arc<Gateway>>, req: Request) -> Response {
    let headers = req.headers();
    if let Err(status) = gw.sessions.check(headers, req.method()) {
        return admin_error(
            status,
            "authentication_error",
            "not signed in, or the CSRF token is missing",
        );
    }
    if let Some(id) = cookie(headers) {
        gw.sessions.remove(&id);
    }
    let mut r = StatusCode::NO_CONTENT.into_response();
    r.headers_mut()
        .insert(http::header::SET_COOKIE, set_cookie("", 0, secure(headers)));
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sessions_need_the_cookie_and_csrf_for_changes() {
        let s = Sessions::default();
        let (id, sess) = s.create();
        let mut h = HeaderMap::new();
        assert_eq!(
            s.check(&h, &http::Method::GET),
            Err(StatusCode::UNAUTHORIZED)
        );
        h.insert(
            http::header::COOKIE,
            format!("other=1; {COOKIE}={id}").parse().unwrap(),
        );
        assert_eq!(s.check(&h, &http::Method::GET), Ok(()));
        assert_eq!(s.check(&h, &http::Method::POST), Err(StatusCode::FORBIDDEN));
        h.insert("x-csrf-token", "wrong".parse().unwrap());
        assert_eq!(
            s.check(&h, &http::Method::DELETE),
            Err(StatusCode::FORBIDDEN)
        );
        h.insert("x-csrf-token", sess.csrf.parse().unwrap());
        assert_eq!(s.check(&h, &http::Method::DELETE), Ok(()));
        s.remove(&id);
        assert_eq!(
            s.check(&h, &http::Method::GET),
            Err(StatusCode::UNAUTHORIZED)
        );
    }

    #[test]
    fn the_pages_are_embedded() {
        assert!(ASSETS.iter().any(|(n, _, _)| *n == "index.html"));
        assert!(ASSETS.iter().any(|(n, _, _)| *n == "login.html"));
    }
}
