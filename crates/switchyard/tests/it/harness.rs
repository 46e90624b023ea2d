//! Starts a real gateway in this process, on port 0, in front of the mock
//! upstreams, with canary provider keys; plus HTTP helpers and a log capture
//! shared by every test in the binary.

use std::sync::{Arc, Mutex, OnceLock};

use serde_json::Value;
use switchyard::config::{Config, Env};
use switchyard::server::Running;

use crate::mock::{Kind, Mock};

/// Canary provider keys: they must never appear in a response, a header or
/// a log line.
pub const OPENAI_KEY: &str = "sk-canary-openai-7f3a9c1e5b2d4680";
pub const ANTHROPIC_KEY: &str = "sk-ant-canary-anthropic-9e8d7c6b5a";
pub const GEMINI_KEY: &str = "AIzaCanaryGemini0123456789abcdef";
pub const COMPAT_KEY: &str = "canary-compat-key-31415926535";
pub const CANARIES: [&str; 4] = [OPENAI_KEY, ANTHROPIC_KEY, GEMINI_KEY, COMPAT_KEY];

pub struct Mocks {
    pub openai: Mock,
    pub anthropic: Mock,
    pub gemini: Mock,
    pub compat: Mock,
}

pub struct Gw {
    pub running: Running,
    pub base: String,
    pub admin: String,
    pub mocks: Mocks,
    pub http: reqwest::Client,
    pub admin_token: String,
    pub dir: tempfile::TempDir,
}

static LOGS: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();

#[derive(Clone)]
struct Capture(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Everything every in-process gateway has logged so far.
pub fn logs() -> String {
    init_logs();
    String::from_utf8_lossy(&LOGS.get().unwrap().lock().unwrap()).into_owned()
}

fn init_logs() {
    LOGS.get_or_init(|| {
        let buf = Arc::new(Mutex::new(Vec::new()));
        let writer = Capture(buf.clone());
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new(
                "trace,hyper=debug,hyper_util=debug,h2=info,sqlx=debug,tokio=info,runtime=info,rmcp=warn",
            ))
            .with_writer(move || writer.clone())
            .with_ansi(false)
            .try_init();
        buf
    });
}

pub fn env() -> Env {
    Env::default()
        .with("MOCK_OPENAI_KEY", OPENAI_KEY)
        .with("MOCK_ANTHROPIC_KEY", ANTHROPIC_KEY)
        .with("MOCK_GEMINI_KEY", GEMINI_KEY)
        .with("MOCK_COMPAT_KEY", COMPAT_KEY)
        .with(
            "SWITCHYARD_ADMIN_TOKEN",
            "test-admin-token-0123456789abcdef",
        )
}

pub async fn start_mocks() -> Mocks {
    // reqwest is built without a bundled crypto provider (as the gateway is).
    let _ = rustls::crypto::ring::default_provider().install_default();
    Mocks {
        openai: Mock::start(Kind::OpenAi).await,
        anthropic: Mock::start(Kind::Anthropic).await,
        gemini: Mock::start(Kind::Gemini).await,
        compat: Mock::start(Kind::OpenAi).await,
    }
}

/// The provider section pointing at `mocks`: providers `openai`,
/// `anthropic`, `google` (gemini) and `compat` (openai-compatible).
pub fn providers_toml(m: &Mocks) -> String {
    format!(
        r#"
[[providers]]
name = "openai"
kind = "openai"
base_url = "{}"
api_key_env = "MOCK_OPENAI_KEY"
jurisdiction = "us"
timeout_ms = 5000
models = ["gpt-test"]

[[providers]]
name = "anthropic"
kind = "anthropic"
base_url = "{}"
api_key_env = "MOCK_ANTHROPIC_KEY"
jurisdiction = "us"
timeout_ms = 5000
models = ["claude-test"]

[[providers]]
name = "google"
kind = "gemini"
base_url = "{}"
api_key_env = "MOCK_GEMINI_KEY"
jurisdiction = "eu"
timeout_ms = 5000
models = ["gemini-test"]

[[providers]]
name = "compat"
kind = "openai-compatible"
base_url = "{}"
api_key_env = "MOCK_COMPAT_KEY"
jurisdiction = "eu"
timeout_ms = 5000
models = ["local-test"]
"#,
        m.openai.base_url(),
        m.anthropic.base_url(),
        m.gemini.base_url(),
        m.compat.base_url()
    )
}

impl Gw {
    /// A gateway in front of fresh mocks, with `extra` appended to the config.
    pub async fn start(extra: &str) -> Gw {
        let mocks = start_mocks().await;
        Gw::start_with(mocks, extra).await
    }

    pub async fn start_with(mocks: Mocks, extra: &str) -> Gw {
        Gw::start_full(mocks, "", extra).await
    }

    /// `server` goes inside the `[server]` table, `extra` after providers.
    pub async fn start_full(mocks: Mocks, server: &str, extra: &str) -> Gw {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}/switchyard.db", dir.path().display());
        Gw::start_on(mocks, server, extra, &url, dir).await
    }

    /// As [`Gw::start_full`], on the storage at `storage_url`.
    pub async fn start_on(
        mocks: Mocks,
        server: &str,
        extra: &str,
        storage_url: &str,
        dir: tempfile::TempDir,
    ) -> Gw {
        Gw::start_env(mocks, server, extra, storage_url, dir, &[]).await
    }

    /// As [`Gw::start_on`], with more environment variables.
    pub async fn start_env(
        mocks: Mocks,
        server: &str,
        extra: &str,
        storage_url: &str,
        dir: tempfile::TempDir,
        more_env: &[(&str, &str)],
    ) -> Gw {
        init_logs();
        let text = format!(
            r#"
[server]
listen = "127.0.0.1:0"
admin_listen = "127.0.0.1:0"
{}

[storage]
url = "{}"
{}
{}"#,
            server,
            storage_url,
            providers_toml(&mocks),
            extra
        );
        // Each gateway gets its own spool, next to its data.
        let spool = format!("spool_dir = \"{}/spool\"\n", dir.path().display());
        let text = if text.contains("[logs]") {
            text.replacen("[logs]\n", &format!("[logs]\n{spool}"), 1)
        } else {
            format!("{text}\n[logs]\n{spool}")
        };
        let mut env = env();
        for (k, v) in more_env {
            env = env.with(k, v);
        }
        let config = Config::parse(&text, None, &env).unwrap_or_else(|e| panic!("{e}"));
        let running = switchyard::server::start(config, &env).await.unwrap();
        Gw {
            base: format!("http://{}", running.addr),
            admin: format!("http://{}", running.admin_addr),
            running,
            mocks,
            http: reqwest::Client::builder().no_proxy().build().unwrap(),
            admin_token: "test-admin-token-0123456789abcdef".into(),
            dir,
        }
    }

    pub fn admin_url(&self, path: &str) -> String {
        format!("{}{path}", self.admin)
    }

    /// An admin API call with the admin token; status and JSON body.
    pub async fn admin_call(&self, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        let mut rb = self
            .http
            .request(method.parse().unwrap(), self.admin_url(path))
            .bearer_auth(&self.admin_token);
        if let Some(b) = body {
            rb = rb
                .header("content-type", "application/json")
                .body(b.to_string());
        }
        let r = rb.send().await.unwrap();
        let status = r.status().as_u16();
        let text = r.text().await.unwrap();
        let v = serde_json::from_str(&text).unwrap_or(Value::String(text));
        // Every admin answer any test sees, against the OpenAPI document.
        crate::openapi::check(method, path, status, &v);
        (status, v)
    }

    /// Creates a key through the admin API; returns (id, secret).
    pub async fn create_key(&self, body: Value) -> (String, String) {
        let (s, v) = self.admin_call("POST", "/admin/v1/keys", Some(body)).await;
        assert_eq!(s, 201, "{v}");
        (
            v["id"].as_str().unwrap().to_owned(),
            v["key"].as_str().unwrap().to_owned(),
        )
    }

    /// The Prometheus text at `/metrics`.
    pub async fn metrics(&self) -> String {
        let r = self.http.get(self.url("/metrics")).send().await.unwrap();
        assert_eq!(r.status(), 200);
        r.text().await.unwrap()
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// POSTs JSON; returns status, headers and the body as JSON.
    pub async fn post(&self, path: &str, body: &Value) -> (u16, http::HeaderMap, Value) {
        self.post_with(path, body, &[]).await
    }

    pub async fn post_with(
        &self,
        path: &str,
        body: &Value,
        headers: &[(&str, &str)],
    ) -> (u16, http::HeaderMap, Value) {
        let (s, h, text) = self
            .post_raw(path, body.to_string().into_bytes(), headers)
            .await;
        let v = serde_json::from_str(&text).unwrap_or_else(|_| Value::String(text));
        (s, h, v)
    }

    pub async fn post_raw(
        &self,
        path: &str,
        body: Vec<u8>,
        headers: &[(&str, &str)],
    ) -> (u16, http::HeaderMap, String) {
        let mut rb = self
            .http
            .post(self.url(path))
            .header("content-type", "application/json")
            .body(body);
        for (k, v) in headers {
            rb = rb.header(*k, *v);
        }
        let resp = rb.send().await.unwrap();
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let text = resp.text().await.unwrap();
        assert_no_canary(&text);
        assert_no_canary(&format!("{headers:?}"));
        (status, headers, text)
    }

    pub async fn shutdown(self) {
        self.running.shutdown().await;
    }
}

pub fn assert_no_canary(text: &str) {
    for c in CANARIES {
        assert!(!text.contains(c), "a provider key leaked: {text}");
    }
}

/// Parses an SSE body into (event name, data) pairs.
pub fn sse(text: &str) -> Vec<(Option<String>, String)> {
    let mut p = switchyard::wire::sse::Parser::new(0);
    let mut out = Vec::new();
    p.feed(text.as_bytes(), &mut out).unwrap();
    p.finish(&mut out);
    out.into_iter()
        .map(|e| (e.name().map(str::to_owned), e.data_str().to_owned()))
        .collect()
}

/// The JSON data of each event, skipping `[DONE]`.
pub fn sse_json(text: &str) -> Vec<Value> {
    sse(text)
        .into_iter()
        .filter(|(_, d)| d != "[DONE]")
        .map(|(_, d)| serde_json::from_str(&d).unwrap_or_else(|e| panic!("bad SSE JSON {d}: {e}")))
        .collect()
}

/// A Postgres database of its own for one test: a fresh schema in the test
/// server, selected through the connection's search_path.
pub async fn postgres_url() -> Option<String> {
    postgres_schema(&format!("sy_test_{}", uuid::Uuid::now_v7().simple())).await
}

/// The URL of schema `name` (a plain name) in the test server, created if
/// missing.
pub async fn postgres_schema(name: &str) -> Option<String> {
    let base = crate::binary::required_env("SWITCHYARD_TEST_POSTGRES_URL")?;
    let pool = sqlx::PgPool::connect(&base)
        .await
        .unwrap_or_else(|e| panic!("Postgres at {base}: {e}"));
    static SWEPT: tokio::sync::OnceCell<()> = tokio::sync::OnceCell::const_new();
    SWEPT.get_or_init(|| sweep_old_schemas(&pool)).await;
    sqlx::query(&format!("CREATE SCHEMA IF NOT EXISTS {name}"))
        .execute(&pool)
        .await
        .unwrap();
    pool.close().await;
    let sep = if base.contains('?') { '&' } else { '?' };
    Some(format!("{base}{sep}options=-c%20search_path%3D{name}"))
}

/// Drops the schemas [`postgres_url`] made more than a day ago (their
/// names carry a UUIDv7, which starts with its creation time): a run's
/// schemas are left for a look after a failure, and later runs clear the
/// old ones, so the test server does not fill up. A day is longer than any
/// run (the ignored scale test seeds for half an hour). Best effort: a
/// schema something still holds a lock on is left for the next sweep (the
/// drop waits at most two seconds), and one another process is dropping at
/// the same moment is its business.
async fn sweep_old_schemas(pool: &sqlx::PgPool) {
    let names: Vec<String> = sqlx::query_scalar(
        "SELECT nspname::text FROM pg_namespace WHERE nspname LIKE 'sy\\_test\\_%'",
    )
    .fetch_all(pool)
    .await
    .unwrap_or_default();
    let day_ago = switchyard::clock::unix_ms() - 86_400_000;
    let old: Vec<String> = names
        .into_iter()
        .filter(|n| schema_created_ms(n).is_some_and(|ms| ms < day_ago))
        .collect();
    if old.is_empty() {
        return;
    }
    let Ok(mut conn) = pool.acquire().await else {
        return;
    };
    let _ = sqlx::query("SET lock_timeout = '2s'")
        .execute(&mut *conn)
        .await;
    for name in old {
        let _ = sqlx::query(&format!("DROP SCHEMA IF EXISTS {name} CASCADE"))
            .execute(&mut *conn)
            .await;
    }
    // (lock_timeout stays set on this connection: the caller closes the
    // pool once its schema is made.)
}

/// When [`postgres_url`] made the schema `name` (`sy_test_` and a UUIDv7
/// in hex, whose first 48 bits are its Unix time in milliseconds).
fn schema_created_ms(name: &str) -> Option<i64> {
    let hex = name.strip_prefix("sy_test_")?;
    if hex.len() != 32 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    i64::from_str_radix(&hex[..12], 16).ok()
}

#[test]
fn a_test_schema_is_dated_by_its_uuid() {
    let before = switchyard::clock::unix_ms();
    let name = format!("sy_test_{}", uuid::Uuid::now_v7().simple());
    let after = switchyard::clock::unix_ms();
    let ms = schema_created_ms(&name).unwrap();
    assert!(
        (before..=after).contains(&ms),
        "{ms} not in {before}..={after}"
    );
    assert_eq!(schema_created_ms("sy_test_shared"), None);
    assert_eq!(schema_created_ms("public"), None);
}

/// The sweep drops a schema made two days ago and keeps one made now.
#[tokio::test]
async fn old_test_schemas_are_swept_and_new_ones_kept() {
    let Some(base) = crate::binary::required_env("SWITCHYARD_TEST_POSTGRES_URL") else {
        return;
    };
    let pool = sqlx::PgPool::connect(&base).await.unwrap();
    let fresh = uuid::Uuid::now_v7().simple().to_string();
    let two_days_ago = switchyard::clock::unix_ms() - 2 * 86_400_000;
    let old = format!("sy_test_{two_days_ago:012x}{}", &fresh[12..]);
    let new = format!("sy_test_{fresh}");
    for name in [&old, &new] {
        sqlx::query(&format!("CREATE SCHEMA {name}"))
            .execute(&pool)
            .await
            .unwrap();
        sqlx::query(&format!("CREATE TABLE {name}.t (x INT)"))
            .execute(&pool)
            .await
            .unwrap();
    }
    sweep_old_schemas(&pool).await;
    let left: Vec<String> = sqlx::query_scalar(
        "SELECT nspname::text FROM pg_namespace WHERE nspname = $1 OR nspname = $2",
    )
    .bind(&old)
    .bind(&new)
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(left, vec![new.clone()]);
    sqlx::query(&format!("DROP SCHEMA {new} CASCADE"))
        .execute(&pool)
        .await
        .unwrap();
}

pub fn redis_url() -> Option<String> {
    crate::binary::required_env("SWITCHYARD_TEST_REDIS_URL")
}

/// Waits, when fewer than ten seconds of this minute are left, for the next
/// one: rate limits count in whole minutes, and a burst that straddled two
/// would rightly be let through twice.
pub async fn within_one_minute() {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let into_minute = now.as_millis() % 60_000;
    if into_minute >= 50_000 {
        let left = 60_000 - into_minute as u64 + 100;
        tokio::time::sleep(std::time::Duration::from_millis(left)).await;
    }
}

/// A connection to the test Redis at `url` (with the test's own database).
pub async fn redis_conn(url: &str) -> redis::aio::MultiplexedConnection {
    redis::Client::open(url)
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap()
}

/// The Redis keys matching `pattern`.
pub async fn redis_keys(
    conn: &mut redis::aio::MultiplexedConnection,
    pattern: &str,
) -> Vec<String> {
    redis::cmd("KEYS")
        .arg(pattern)
        .query_async(conn)
        .await
        .unwrap()
}
