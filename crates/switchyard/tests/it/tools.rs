//! Credentialed tools over real HTTP: a mock tool API that echoes what it
//! got; reads pass with the credential injected and the agent's key kept
//! back; paths that try to leave `base_url`, sent byte for byte, never
//! reach it; writes wait for a person (or get `202` and are replayed),
//! run once with the approved body, never when denied or expired; the
//! tool's credential never reaches an answer, a log line or the audit
//! chain; and an edited audit record is found.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Request, State};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::harness::*;

pub const TOOL_SECRET: &str = "ghp_canary_tool_secret_5f2e9c7a1b";

/// What the tool API received.
#[derive(Debug, Clone)]
pub struct Seen {
    pub method: String,
    pub uri: String,
    pub headers: http::HeaderMap,
    pub body: Bytes,
}

#[derive(Clone, Default)]
pub struct ToolApi {
    pub addr: Option<SocketAddr>,
    pub seen: Arc<Mutex<Vec<Seen>>>,
}

impl ToolApi {
    pub async fn start() -> ToolApi {
        let api = ToolApi::default();
        let seen = api.seen.clone();
        let app = Router::new().fallback(echo).with_state(seen);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        ToolApi {
            addr: Some(addr),
            ..api
        }
    }

    pub fn base(&self) -> String {
        format!("http://{}/api", self.addr.unwrap())
    }

    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }
}

/// Echoes the call, headers included (so a leaked credential would show).
async fn echo(State(seen): State<Arc<Mutex<Vec<Seen>>>>, req: Request) -> axum::response::Response {
    let (parts, body) = req.into_parts();
    let body = axum::body::to_bytes(body, usize::MAX).await.unwrap();
    seen.lock().unwrap().push(Seen {
        method: parts.method.to_string(),
        uri: parts.uri.to_string(),
        headers: parts.headers.clone(),
        body: body.clone(),
    });
    let headers: serde_json::Map<String, Value> = parts
        .headers
        .iter()
        .map(|(k, v)| (k.to_string(), json!(v.to_str().unwrap_or(""))))
        .collect();
    axum::Json(
        json!({"method": parts.method.as_str(), "uri": parts.uri.to_string(),
                      "headers": headers, "body": String::from_utf8_lossy(&body)}),
    )
    .into_response_with_cookie()
}

trait WithCookie {
    fn into_response_with_cookie(self) -> axum::response::Response;
}

impl WithCookie for axum::Json<Value> {
    fn into_response_with_cookie(self) -> axum::response::Response {
        use axum::response::IntoResponse;
        let mut r = self.into_response();
        r.headers_mut()
            .insert("set-cookie", "session=upstream".parse().unwrap());
        r
    }
}

pub fn tools_toml(api: &ToolApi, approval_timeout_s: u64) -> String {
    format!(
        r#"
[[tools]]
name = "gh"
base_url = "{base}"
auth = {{ header = "Authorization", value_env = "TOOL_GH_TOKEN", prefix = "Bearer " }}
graphql = ["/graphql"]
reads = ["POST /search/*"]
writes = ["GET /admin/*"]
approval_timeout_s = {approval_timeout_s}

[[tools]]
name = "open"
base_url = "{base}"
approval = "none"

[[tools]]
name = "locked"
base_url = "{base}"
approval = "deny"
"#,
        base = api.base()
    )
}

pub async fn start(api: &ToolApi, timeout_s: u64, extra: &str, storage: Option<&str>) -> Gw {
    let config = format!(
        "[auth]\nrequire_keys = true\n{}\n{extra}",
        tools_toml(api, timeout_s)
    );
    let dir = tempfile::tempdir().unwrap();
    let url = storage
        .map(str::to_owned)
        .unwrap_or_else(|| format!("sqlite://{}/switchyard.db", dir.path().display()));
    Gw::start_env(
        start_mocks().await,
        "",
        &config,
        &url,
        dir,
        &[("TOOL_GH_TOKEN", TOOL_SECRET)],
    )
    .await
}

pub async fn send(
    gw: &Gw,
    method: &str,
    path: &str,
    key: &str,
    body: &str,
    extra: &[(&str, &str)],
) -> (u16, http::HeaderMap, Value) {
    let mut rb = gw
        .http
        .request(method.parse().unwrap(), gw.url(path))
        .bearer_auth(key)
        .header("content-type", "application/json")
        .body(body.to_owned());
    for (k, v) in extra {
        rb = rb.header(*k, *v);
    }
    let r = rb.send().await.unwrap();
    let status = r.status().as_u16();
    let headers = r.headers().clone();
    let text = r.text().await.unwrap();
    assert!(
        !text.contains(TOOL_SECRET),
        "the tool secret reached an answer: {text}"
    );
    (
        status,
        headers,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

/// Sends a request line byte for byte (no client normalises the path).
async fn raw_get(gw: &Gw, path: &str, key: &str) -> u16 {
    let addr = gw.base.trim_start_matches("http://").to_owned();
    let mut s = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let req = format!(
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {key}\r\nConnection: close\r\n\r\n"
    );
    s.write_all(req.as_bytes()).await.unwrap();
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut out)).await;
    let text = String::from_utf8_lossy(&out);
    text.split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0)
}

async fn pending(gw: &Gw) -> Vec<Value> {
    let (s, v) = gw
        .admin_call("GET", "/admin/v1/approvals?state=pending", None)
        .await;
    assert_eq!(s, 200, "{v}");
    v["data"].as_array().unwrap().clone()
}

async fn decide(gw: &Gw, id: &str, decision: &str, reason: &str) -> (u16, Value) {
    gw.admin_call(
        "POST",
        &format!("/admin/v1/approvals/{id}"),
        Some(json!({"decision": decision, "reason": reason})),
    )
    .await
}

#[tokio::test]
async fn reads_pass_with_the_credential_and_without_the_agents_key() {
    let api = ToolApi::start().await;
    let gw = start(&api, 300, "", None).await;
    let (_, key) = gw
        .create_key(json!({"name": "agent", "tools": ["gh"]}))
        .await;
    let (_, none) = gw.create_key(json!({"name": "no-tools"})).await;
    let (s, h, v) = send(
        &gw,
        "GET",
        "/tools/gh/repos/a/b?per_page=2",
        &key,
        "",
        &[("x-trace", "1")],
    )
    .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["uri"], "/api/repos/a/b?per_page=2");
    assert!(
        h.get("set-cookie").is_none(),
        "an upstream cookie came back"
    );
    let seen = api.seen();
    let got = &seen[0];
    assert_eq!(
        got.headers["authorization"],
        format!("Bearer {TOOL_SECRET}")
    );
    assert_eq!(got.headers["x-trace"], "1");
    assert!(
        !format!("{:?}", got.headers).contains(&key),
        "the agent's key went upstream"
    );
    // The echo held the credential: scrubbed on its way back.
    assert_eq!(v["headers"]["authorization"], "Bearer [redacted]");
    // A read by POST under the operator's reads rule; a GraphQL query.
    let (s, _, _) = send(
        &gw,
        "POST",
        "/tools/gh/search/code",
        &key,
        r#"{"q":"x"}"#,
        &[],
    )
    .await;
    assert_eq!(s, 200);
    let (s, _, _) = send(
        &gw,
        "POST",
        "/tools/gh/graphql",
        &key,
        r#"{"query":"{ viewer { login } }"}"#,
        &[],
    )
    .await;
    assert_eq!(s, 200);
    // A key without the tool, an unknown tool.
    let (s, _, e) = send(&gw, "GET", "/tools/gh/repos", &none, "", &[]).await;
    assert_eq!(s, 403, "{e}");
    let (s, _, _) = send(&gw, "GET", "/tools/nope/x", &key, "", &[]).await;
    assert!(s == 403 || s == 404);
    assert_eq!(api.seen().len(), 3);
    // A tool call counts against its key's rate limit like a model call:
    // past it, 429 with Retry-After and nothing sent.
    let (_, limited) = gw
        .create_key(json!({"name": "slow", "tools": ["gh"], "rpm": 1}))
        .await;
    crate::harness::within_one_minute().await;
    let (s, _, _) = send(&gw, "GET", "/tools/gh/repos", &limited, "", &[]).await;
    assert_eq!(s, 200);
    let (s, h, e) = send(&gw, "GET", "/tools/gh/repos", &limited, "", &[]).await;
    assert_eq!(s, 429, "{e}");
    assert!(h.contains_key("retry-after"));
    assert_eq!(api.seen().len(), 4);
    gw.shutdown().await;
}

#[tokio::test]
async fn jurisdictions_of_the_key_and_the_request_apply_to_tools() {
    let api = ToolApi::start().await;
    let extra = format!(
        "[[tools]]\nname = \"eu_api\"\nbase_url = \"{}\"\njurisdiction = \"EU\"\n",
        api.base()
    );
    let gw = start(&api, 300, &extra, None).await;
    let (_, eu) = gw
        .create_key(json!({"name": "eu-only", "tools": ["*"], "jurisdictions": ["eu"], "metadata": {"team": "eu-agents"}}))
        .await;
    let (_, any) = gw
        .create_key(json!({"name": "anywhere", "tools": ["*"]}))
        .await;
    let (s, _, v) = send(&gw, "GET", "/tools/eu_api/x", &eu, "", &[]).await;
    assert_eq!(s, 200, "{v}");
    // A tool that declares no jurisdiction is not for a key limited to some.
    let (s, _, v) = send(&gw, "GET", "/tools/gh/x", &eu, "", &[]).await;
    assert_eq!(s, 403, "{v}");
    assert!(v.to_string().contains("no declared jurisdiction"), "{v}");
    // The request's own header narrows it further.
    let (s, _, _) = send(
        &gw,
        "GET",
        "/tools/eu_api/x",
        &any,
        "",
        &[("x-switchyard-jurisdiction", "us")],
    )
    .await;
    assert_eq!(s, 403);
    let (s, _, _) = send(
        &gw,
        "GET",
        "/tools/eu_api/x",
        &any,
        "",
        &[("x-switchyard-jurisdiction", "eu")],
    )
    .await;
    assert_eq!(s, 200);
    assert_eq!(api.seen().len(), 2, "refused calls never reach the tool");
    // Tool calls are in the request log, by the key's tag, as dialect `tool`.
    let mut n = 0;
    for _ in 0..50 {
        let (_, u) = gw
            .admin_call("GET", "/admin/v1/usage?group_by=metadata.team", None)
            .await;
        n = u["data"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["group"]["metadata.team"] == "eu-agents")
            .and_then(|r| r["requests"].as_u64())
            .unwrap_or(0);
        if n == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(n, 2, "the eu key's two tool calls in usage by its tag");
    let (_, logs) = gw.admin_call("GET", "/admin/v1/logs?limit=10", None).await;
    let rows = logs["data"].as_array().unwrap();
    assert!(
        rows.iter().any(|r| r["dialect"] == "tool"
            && r["requested_model"] == "eu_api"
            && r["status"] == 200),
        "{logs}"
    );
    gw.shutdown().await;
}

#[tokio::test]
async fn paths_that_leave_base_url_never_reach_the_tool() {
    let api = ToolApi::start().await;
    let gw = start(&api, 300, "", None).await;
    let (_, key) = gw
        .create_key(json!({"name": "agent", "tools": ["*"]}))
        .await;
    let escapes = [
        "/tools/gh/../admin",
        "/tools/gh/repos/../../x",
        "/tools/gh/%2e%2e/x",
        "/tools/gh/%2E%2E%2Fx",
        "/tools/gh/repos%2f..%2fx",
        "/tools/gh/..%5cx",
        "/tools/gh/%5c%5cevil",
        "/tools/gh//evil.example.com/x",
        "/tools/gh/@evil.example.com",
        "/tools/gh/%40evil",
        "/tools/gh/http:%2f%2fevil.example.com",
        "/tools/gh/%252e%252e/x",
        "/tools/gh/%ef%bc%8e%ef%bc%8e/x",
        "/tools/gh/repos/%00",
        "/tools/gh/./x",
    ];
    let mut results = Vec::new();
    for p in escapes {
        let code = raw_get(&gw, p, &key).await;
        results.push((p, code));
        assert!(code == 400 || code == 404, "{p}: {code}");
    }
    println!("escape inputs over HTTP: {results:?}");
    assert!(api.seen().is_empty(), "{:?}", api.seen());
    gw.shutdown().await;
}

#[tokio::test]
async fn writes_wait_for_a_person_and_run_once_with_the_approved_body() {
    let api = ToolApi::start().await;
    let gw = Arc::new(start(&api, 300, "", None).await);
    let (_, key) = gw.create_key(json!({"name": "agent", "tools": ["gh", "open", "locked"], "metadata": {"team": "ops"}})).await;
    // The waiting form: the call answers once a person approves.
    let waiting = {
        let gw = gw.clone();
        let key = key.clone();
        tokio::spawn(async move {
            send(
                &gw,
                "POST",
                "/tools/gh/repos/a/b/issues",
                &key,
                r#"{"title":"bug"}"#,
                &[],
            )
            .await
        })
    };
    let mut held = Vec::new();
    for _ in 0..100 {
        held = pending(&gw).await;
        if !held.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(held.len(), 1);
    let a = &held[0];
    assert_eq!(a["tool"], "gh");
    assert_eq!(a["method"], "POST");
    assert_eq!(a["path"], "/repos/a/b/issues");
    assert_eq!(a["arguments"], r#"{"title":"bug"}"#);
    assert_eq!(a["tags"]["team"], "ops");
    assert!(api.seen().is_empty(), "nothing ran before the approval");
    let (s, v) = decide(&gw, a["id"].as_str().unwrap(), "approve", "looks fine").await;
    assert_eq!(s, 200, "{v}");
    let (s, _, v) = waiting.await.unwrap();
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["body"], r#"{"title":"bug"}"#);
    assert_eq!(api.seen().len(), 1);
    // A second decision changes nothing.
    let (s, _) = decide(&gw, a["id"].as_str().unwrap(), "deny", "late").await;
    assert_eq!(s, 409);

    // The async form: 202 at once, replayed once approved.
    let (s, _, v) = send(
        &gw,
        "DELETE",
        "/tools/gh/repos/a/b",
        &key,
        "",
        &[("prefer", "respond-async")],
    )
    .await;
    assert_eq!(s, 202, "{v}");
    let id = v["approval_id"].as_str().unwrap().to_owned();
    let status_url = v["status_url"].as_str().unwrap().to_owned();
    let (s, _, st) = send(&gw, "GET", &status_url, &key, "", &[]).await;
    assert_eq!(s, 200);
    assert_eq!(st["status"], "pending");
    let replay = [
        ("x-switchyard-approval", id.as_str()),
        ("prefer", "respond-async"),
    ];
    let (s, _, _) = send(&gw, "DELETE", "/tools/gh/repos/a/b", &key, "", &replay).await;
    assert_eq!(s, 202, "still pending");
    decide(&gw, &id, "approve", "ok").await;
    let (s, _, _) = send(&gw, "DELETE", "/tools/gh/repos/a/b", &key, "", &replay).await;
    assert_eq!(s, 200);
    let (s, _, e) = send(&gw, "DELETE", "/tools/gh/repos/a/b", &key, "", &replay).await;
    assert_eq!(s, 409, "an approval is used once: {e}");
    assert_eq!(e["error"]["code"], "approval_used");
    assert_eq!(api.seen().len(), 2);

    // Another body under an approval: refused.
    let (_, _, v) = send(
        &gw,
        "PUT",
        "/tools/gh/x",
        &key,
        "one",
        &[("prefer", "respond-async")],
    )
    .await;
    let id = v["approval_id"].as_str().unwrap().to_owned();
    decide(&gw, &id, "approve", "ok").await;
    let (s, _, e) = send(
        &gw,
        "PUT",
        "/tools/gh/x",
        &key,
        "two",
        &[("x-switchyard-approval", &id)],
    )
    .await;
    assert_eq!(s, 409, "{e}");
    assert_eq!(e["error"]["code"], "approval_body_mismatch");
    let (s, _, e) = send(
        &gw,
        "PUT",
        "/tools/gh/other",
        &key,
        "one",
        &[("x-switchyard-approval", &id)],
    )
    .await;
    assert_eq!(s, 404, "another path: {e}");

    // Denied: never runs, and says why.
    let (_, _, v) = send(
        &gw,
        "POST",
        "/tools/gh/repos",
        &key,
        "{}",
        &[("prefer", "respond-async")],
    )
    .await;
    let id = v["approval_id"].as_str().unwrap().to_owned();
    decide(&gw, &id, "deny", "not today").await;
    let (s, _, e) = send(
        &gw,
        "POST",
        "/tools/gh/repos",
        &key,
        "{}",
        &[("x-switchyard-approval", &id)],
    )
    .await;
    assert_eq!(s, 403, "{e}");
    assert_eq!(e["error"]["code"], "approval_denied");
    assert!(
        e["error"]["message"]
            .as_str()
            .unwrap()
            .contains("not today")
    );

    // Tools whose writes need nobody, or are refused.
    let (s, _, _) = send(&gw, "POST", "/tools/open/things", &key, "{}", &[]).await;
    assert_eq!(s, 200);
    let (s, _, e) = send(&gw, "POST", "/tools/locked/things", &key, "{}", &[]).await;
    assert_eq!(s, 403, "{e}");
    // A GET made a write by an override header is held like any write.
    let (s, _, _) = send(
        &gw,
        "GET",
        "/tools/gh/repos",
        &key,
        "",
        &[
            ("x-http-method-override", "DELETE"),
            ("prefer", "respond-async"),
        ],
    )
    .await;
    assert_eq!(s, 202);
    // GET under the operator's writes rule, too.
    let (s, _, _) = send(
        &gw,
        "GET",
        "/tools/gh/admin/users",
        &key,
        "",
        &[("prefer", "respond-async")],
    )
    .await;
    assert_eq!(s, 202);
    assert_eq!(
        api.seen().len(),
        3,
        "the waited write, the replayed delete and the open write; nothing else"
    );
    let gw = Arc::try_unwrap(gw).ok().unwrap();
    gw.shutdown().await;
}

#[tokio::test]
async fn a_write_nobody_decides_expires_and_never_runs() {
    let api = ToolApi::start().await;
    let gw = start(&api, 1, "", None).await;
    let (_, key) = gw
        .create_key(json!({"name": "agent", "tools": ["gh"]}))
        .await;
    let (s, _, e) = send(&gw, "POST", "/tools/gh/repos", &key, "{}", &[]).await;
    assert_eq!(s, 408, "{e}");
    assert_eq!(e["error"]["code"], "approval_timeout");
    let (s, v) = gw
        .admin_call("GET", "/admin/v1/approvals?state=expired", None)
        .await;
    assert_eq!(s, 200);
    let id = v["data"][0]["id"].as_str().unwrap().to_owned();
    let (s, _) = decide(&gw, &id, "approve", "too late").await;
    assert_eq!(s, 409);
    assert!(api.seen().is_empty());
    gw.shutdown().await;
}

#[tokio::test]
async fn the_audit_chain_holds_every_call_and_finds_an_edit() {
    let api = ToolApi::start().await;
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/switchyard.db", dir.path().display());
    let gw = start(&api, 300, "", Some(&url)).await;
    let (_, key) = gw
        .create_key(json!({"name": "agent", "tools": ["gh"]}))
        .await;
    send(&gw, "GET", "/tools/gh/repos", &key, "", &[]).await;
    let (_, _, v) = send(
        &gw,
        "POST",
        "/tools/gh/repos",
        &key,
        "{}",
        &[("prefer", "respond-async")],
    )
    .await;
    decide(&gw, v["approval_id"].as_str().unwrap(), "deny", "no").await;
    let (s, v) = gw.admin_call("GET", "/admin/v1/tool-calls", None).await;
    assert_eq!(s, 200);
    let kinds: Vec<&str> = v["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["kind"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds,
        [
            "approval_decided",
            "tool_call",
            "approval_requested",
            "tool_call"
        ]
    );
    let text = v.to_string();
    assert!(!text.contains(TOOL_SECRET));
    assert!(
        !logs().contains(TOOL_SECRET),
        "the tool secret reached a log line"
    );
    let (s, v) = gw.admin_call("GET", "/admin/v1/audit/verify", None).await;
    assert_eq!(s, 200);
    assert_eq!(v["ok"], true, "{v}");
    assert_eq!(v["records"], 4);
    // Someone edits the second record in the database.
    let pool = sqlx::SqlitePool::connect(&url).await.unwrap();
    sqlx::query("UPDATE audit SET record = replace(record, '\"read\"', '\"write\"') WHERE seq = 1")
        .execute(&pool)
        .await
        .unwrap();
    pool.close().await;
    let (_, v) = gw.admin_call("GET", "/admin/v1/audit/verify", None).await;
    assert_eq!(v["ok"], false, "{v}");
    assert_eq!(v["first_bad"], 1, "{v}");
    gw.shutdown().await;
}

/// 20 held writes; 200 approvals, denials and replays racing on them at
/// once, spread over `gws` (replicas sharing storage). Returns (approved,
/// executed, duplicates).
async fn race(api: &ToolApi, gws: &[&Gw], key: &str) -> (usize, usize, usize) {
    const WRITES: usize = 20;
    let mut ids = Vec::new();
    for i in 0..WRITES {
        let (s, _, v) = send(
            gws[i % gws.len()],
            "POST",
            "/tools/gh/items",
            key,
            &format!(r#"{{"n":{i}}}"#),
            &[("prefer", "respond-async")],
        )
        .await;
        assert_eq!(s, 202, "{v}");
        ids.push(v["approval_id"].as_str().unwrap().to_owned());
    }
    let mut tasks = Vec::new();
    for n in 0..200usize {
        let i = n % WRITES;
        let gw = gws[n % gws.len()];
        let id = ids[i].clone();
        let key = key.to_owned();
        tasks.push(async move {
            match n / WRITES {
                // Writes 0..15 are approved (three times over), 15..20 denied.
                0..=2 if i < 15 => {
                    decide(gw, &id, "approve", "race").await;
                }
                0..=1 => {
                    decide(gw, &id, "deny", "race").await;
                }
                _ => {
                    send(
                        gw,
                        "POST",
                        "/tools/gh/items",
                        &key,
                        &format!(r#"{{"n":{i}}}"#),
                        &[("x-switchyard-approval", &id), ("prefer", "respond-async")],
                    )
                    .await;
                }
            }
        });
    }
    futures_util::future::join_all(tasks).await;
    // What was approved but not yet replayed runs now, once.
    for (i, id) in ids.iter().enumerate() {
        send(
            gws[0],
            "POST",
            "/tools/gh/items",
            key,
            &format!(r#"{{"n":{i}}}"#),
            &[("x-switchyard-approval", id), ("prefer", "respond-async")],
        )
        .await;
    }
    let seen = api.seen();
    let mut executed = 0;
    let mut duplicates = 0;
    for i in 0..WRITES {
        let body = format!(r#"{{"n":{i}}}"#);
        let runs = seen.iter().filter(|s| s.body == body.as_bytes()).count();
        if i < 15 {
            assert!(runs >= 1, "approved write {i} never ran");
        } else {
            assert_eq!(runs, 0, "denied write {i} ran");
        }
        executed += runs;
        duplicates += runs.saturating_sub(1);
    }
    (15, executed, duplicates)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn approved_writes_run_exactly_once_under_racing_approvals_and_replays() {
    let api = ToolApi::start().await;
    let gw = start(&api, 300, "", None).await;
    let (_, key) = gw
        .create_key(json!({"name": "agent", "tools": ["gh"]}))
        .await;
    let (approved, executed, duplicates) = race(&api, &[&gw], &key).await;
    println!(
        "exactly-once, one process: 20 held writes, 200 racing approvals/denials/replays: {approved} approved, {executed} executed, {duplicates} duplicates, 5 denied never run"
    );
    assert_eq!((executed, duplicates), (approved, 0));
    gw.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn approved_writes_run_exactly_once_across_two_replicas() {
    let (Some(pg), Some(redis)) = (postgres_url().await, redis_url()) else {
        return;
    };
    let api = ToolApi::start().await;
    let extra = format!("[redis]\nurl = \"{redis}\"\n");
    let a = start(&api, 300, &extra, Some(&pg)).await;
    let b = start(&api, 300, &extra, Some(&pg)).await;
    let (_, key) = a
        .create_key(json!({"name": "agent", "tools": ["gh"]}))
        .await;
    // The other replica learns of the key within a second.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let (approved, executed, duplicates) = race(&api, &[&a, &b], &key).await;
    println!(
        "exactly-once, two replicas on Postgres and Redis: 20 held writes, 200 racing approvals/denials/replays: {approved} approved, {executed} executed, {duplicates} duplicates, 5 denied never run"
    );
    assert_eq!((executed, duplicates), (approved, 0));
    let (_, v) = a.admin_call("GET", "/admin/v1/audit/verify", None).await;
    assert_eq!(v["ok"], true, "one chain, appended by both replicas: {v}");
    b.shutdown().await;
    a.shutdown().await;
}
