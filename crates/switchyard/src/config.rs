//! Configuration: `switchyard.toml` + environment → a validated [`Config`].
//!
//! Two types, as the style guide asks: [`RawConfig`] is what serde reads
//! (unknown keys refused, defaults filled), [`Config`] is what the rest of
//! the gateway uses (references resolved, durations typed). Validation is
//! pure: the environment comes in as an [`Env`] snapshot, so tests never
//! touch the process environment. Secrets are never read here; a provider
//! names the variable that holds its key and `providers` reads it at start.

pub mod azure;
pub mod bedrock;
pub mod providers;
pub mod tools;
pub mod vertex;

pub use providers::{Preset, ProviderConfig, ProviderKind, RawProvider, check_base_url, presets};

use std::collections::{BTreeMap, HashSet};
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize};

/// A snapshot of environment variables.
#[derive(Debug, Clone, Default)]
pub struct Env(pub BTreeMap<String, String>);

impl Env {
    pub fn from_process() -> Env {
        Env(std::env::vars().collect())
    }

    pub fn get(&self, key: &str) -> Option<&str> {
        self.0
            .get(key)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    }

    pub fn with(mut self, key: &str, value: &str) -> Env {
        self.0.insert(key.to_owned(), value.to_owned());
        self
    }
}

/// A configuration error: which file, which key, what was expected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub file: Option<PathBuf>,
    pub key: String,
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let file = self
            .file
            .as_deref()
            .map(|p| p.display().to_string())
            .unwrap_or_else(|| "embedded defaults".into());
        if self.key.is_empty() {
            write!(f, "{file}: {}", self.message)
        } else {
            write!(f, "{file}: `{}`: {}", self.key, self.message)
        }
    }
}

impl std::error::Error for ConfigError {}

// ------------------------------------------------------------------ raw

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    #[serde(default)]
    pub server: RawServer,
    #[serde(default)]
    pub storage: RawStorage,
    #[serde(default)]
    pub redis: Option<RawRedis>,
    #[serde(default)]
    pub auth: RawAuth,
    #[serde(default)]
    pub providers: Vec<RawProvider>,
    #[serde(default)]
    pub routes: Vec<RawRoute>,
    #[serde(default)]
    pub cache: RawCache,
    #[serde(default)]
    pub streams: RawStreams,
    #[serde(default)]
    pub logs: RawLogs,
    #[serde(default)]
    pub pricing: BTreeMap<String, RawPrice>,
    #[serde(default)]
    pub circuit: RawCircuit,
    #[serde(default)]
    pub limits: RawLimits,
    #[serde(default)]
    pub responses: RawResponses,
    #[serde(default)]
    pub tools: Vec<tools::RawTool>,
    #[serde(default)]
    pub mcp_servers: Vec<tools::RawMcpServer>,
    #[serde(default)]
    pub approvals: tools::RawApprovals,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawResponses {
    pub store: Option<bool>,
    pub retain_days: Option<u32>,
    #[serde(default)]
    pub drop_unsupported_tools: Vec<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawLimits {
    pub max_output_tokens: Option<u32>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCircuit {
    pub failures: Option<u32>,
    pub cooldown_ms: Option<Millis>,
    pub max_cooldown_ms: Option<Millis>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawServer {
    pub listen: Option<String>,
    pub admin_listen: Option<String>,
    pub max_body_bytes: Option<u64>,
    pub header_read_timeout_ms: Option<Millis>,
    pub request_timeout_ms: Option<Millis>,
    pub shutdown_grace_ms: Option<Millis>,
    pub max_concurrent: Option<u32>,
    pub queue_timeout_ms: Option<Millis>,
    pub write_timeout_ms: Option<Millis>,
    pub log_format: Option<LogFormat>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawStorage {
    pub url: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRedis {
    pub url: String,
    #[serde(default)]
    pub cluster: bool,
    #[serde(default)]
    pub on_unavailable: OnUnavailable,
}

/// What limits and budgets do while Redis cannot be reached.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize, schemars::JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum OnUnavailable {
    /// Calls under a key with a rate limit or a budget are refused (503 /
    /// 429 with Retry-After): nothing is let through that cannot be
    /// counted for every replica.
    #[default]
    Refuse,
    /// Each process counts on its own until Redis is back (limits and
    /// budgets then hold per replica, not across them).
    Local,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAuth {
    pub require_keys: Option<bool>,
    pub admin_token_env: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRoute {
    pub name: String,
    pub strategy: Option<Strategy>,
    pub targets: Vec<RawTarget>,
    pub max_attempts: Option<u32>,
    #[serde(default)]
    pub cache_fallback: bool,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum RawTarget {
    Model(String),
    Weighted(RawWeighted),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawWeighted {
    pub model: String,
    #[serde(default = "one")]
    pub weight: u32,
}

fn one() -> u32 {
    1
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCache {
    pub default_ttl_s: Option<Seconds>,
    pub max_entries: Option<u64>,
    pub max_bytes: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawStreams {
    pub continue_on_disconnect: Option<bool>,
    pub max_detached: Option<u32>,
    pub max_buffer_bytes: Option<u64>,
    pub retain_s: Option<Seconds>,
    pub delivered_retain_s: Option<Seconds>,
    pub max_retained_bytes: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawLogs {
    pub mode: Option<LogMode>,
    pub retain_days: Option<u32>,
    pub body_retain_days: Option<u32>,
    pub spool_dir: Option<String>,
    pub spool_max_bytes: Option<u64>,
    pub on_spool_full: Option<SpoolFull>,
    pub backlog_bytes: Option<u64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Deserialize, Serialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawPrice {
    pub input_per_mtok_usd: f64,
    pub output_per_mtok_usd: f64,
    pub cached_input_per_mtok_usd: Option<f64>,
    pub cache_write_per_mtok_usd: Option<f64>,
    pub max_output_tokens: Option<u32>,
    /// USD per 1,000 web searches the provider runs (Anthropic's web
    /// search tool); `anthropic/` models default to Anthropic's $10.
    pub web_search_per_1k_usd: Option<f64>,
}

/// A duration read in milliseconds: an integer (`60000`) or a string with a
/// unit (`"60s"`, `"1m30s"`, `"250ms"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Millis(pub Duration);

/// A duration read in seconds: an integer (`600`) or a string with a unit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Seconds(pub Duration);

#[derive(Deserialize)]
#[serde(untagged)]
enum DurationRepr {
    Int(u64),
    Text(String),
}

impl<'de> Deserialize<'de> for Millis {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match DurationRepr::deserialize(d)? {
            DurationRepr::Int(n) => Ok(Millis(Duration::from_millis(n))),
            DurationRepr::Text(s) => parse_duration(&s)
                .map(Millis)
                .map_err(serde::de::Error::custom),
        }
    }
}

impl<'de> Deserialize<'de> for Seconds {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match DurationRepr::deserialize(d)? {
            DurationRepr::Int(n) => Ok(Seconds(Duration::from_secs(n))),
            DurationRepr::Text(s) => parse_duration(&s)
                .map(Seconds)
                .map_err(serde::de::Error::custom),
        }
    }
}

/// Parses `"1h"`, `"1m30s"`, `"250ms"`, `"2.5s"`.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let bad =
        || format!("expected a duration such as \"30s\", \"1m30s\" or \"250ms\", got \"{s}\"");
    let mut rest = s.trim();
    if rest.is_empty() {
        return Err(bad());
    }
    let mut total = Duration::ZERO;
    while !rest.is_empty() {
        let num_end = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(bad)?;
        let value: f64 = rest[..num_end].parse().map_err(|_| bad())?;
        rest = &rest[num_end..];
        let unit_end = rest
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(rest.len());
        let unit = &rest[..unit_end];
        rest = &rest[unit_end..];
        let secs = match unit {
            "ms" => value / 1000.0,
            "s" => value,
            "m" => value * 60.0,
            "h" => value * 3600.0,
            "d" => value * 86400.0,
            _ => return Err(bad()),
        };
        total += Duration::from_secs_f64(secs);
    }
    Ok(total)
}

/// Writes a duration the way a person reads it: `60s`, `1m30s`, `250ms`.
pub fn fmt_duration(d: Duration) -> String {
    let ms = d.as_millis();
    if ms == 0 {
        return "0s".into();
    }
    if !ms.is_multiple_of(1000) {
        return format!("{ms}ms");
    }
    let mut s = (ms / 1000) as u64;
    let mut out = String::new();
    for (unit, size) in [("d", 86400), ("h", 3600), ("m", 60)] {
        if s >= size {
            out.push_str(&format!("{}{unit}", s / size));
            s %= size;
        }
    }
    if s > 0 || out.is_empty() {
        out.push_str(&format!("{s}s"));
    }
    out
}

// ------------------------------------------------------------ validated

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Strategy {
    Fallback,
    Weighted,
    LeastLatency,
    Cheapest,
}

#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Deserialize, Serialize, schemars::JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum LogMode {
    /// Keep nothing but usage and cost (no bodies, no tags beyond the key's).
    None,
    /// Ids, usage, cost, tags, timings; no bodies.
    Metadata,
    /// Everything, bodies included.
    Full,
}

/// The process's log lines: `text` for people, `json` (one object a line)
/// for log stores.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize, schemars::JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

impl std::str::FromStr for LogFormat {
    type Err = String;
    fn from_str(s: &str) -> Result<LogFormat, String> {
        match s {
            "text" => Ok(LogFormat::Text),
            "json" => Ok(LogFormat::Json),
            other => Err(format!("expected text or json, got \"{other}\"")),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum SpoolFull {
    Refuse,
    BestEffort,
}

#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct Config {
    /// The file this came from; `None` for embedded defaults.
    pub source: Option<PathBuf>,
    pub server: ServerConfig,
    pub storage: StorageConfig,
    pub redis: Option<RedisConfig>,
    pub auth: AuthConfig,
    pub providers: Vec<ProviderConfig>,
    pub routes: Vec<RouteConfig>,
    pub cache: CacheConfig,
    pub streams: StreamsConfig,
    pub logs: LogsConfig,
    pub pricing: BTreeMap<String, RawPrice>,
    pub circuit: CircuitConfig,
    pub limits: LimitsConfig,
    pub responses: ResponsesConfig,
    /// `[[tools]]`: HTTP tools agents call through the gateway.
    pub tools: Vec<tools::ToolConfig>,
    /// `[[mcp_servers]]`: MCP servers the gateway's `/mcp` federates.
    pub mcp_servers: Vec<tools::McpServerConfig>,
}

/// The Responses API's stored conversations and built-in tools.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct ResponsesConfig {
    /// False: nothing is ever stored (`store: true` is answered with
    /// `"store": false`).
    pub store: bool,
    pub retain_days: u32,
    /// Built-in tools (`web_search`, ...) dropped, not refused, where the
    /// target has no equivalent; the answer's `x-switchyard-dropped-tools`
    /// names them.
    pub drop_unsupported_tools: Vec<String>,
}

/// Sizing of rate-limit and budget holds.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct LimitsConfig {
    /// Output tokens assumed for a call that sets no max_tokens, when the
    /// price table does not know the model's own limit.
    pub max_output_tokens: u32,
}

/// Circuit breakers: `failures` consecutive failures (connect failures and
/// upstream errors counted apart) open a provider or a provider/model for
/// `cooldown`, doubling with each repeated ejection up to `max_cooldown`.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct CircuitConfig {
    pub failures: u32,
    #[serde(serialize_with = "ser_duration")]
    #[schemars(with = "String")]
    pub cooldown: Duration,
    #[serde(serialize_with = "ser_duration")]
    #[schemars(with = "String")]
    pub max_cooldown: Duration,
}

#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct ServerConfig {
    pub listen: SocketAddr,
    pub admin_listen: SocketAddr,
    pub max_body_bytes: u64,
    #[serde(serialize_with = "ser_duration")]
    #[schemars(with = "String")]
    pub header_read_timeout: Duration,
    /// Default deadline for a whole call, all attempts together;
    /// `x-switchyard-request-timeout` may shorten it.
    #[serde(serialize_with = "ser_duration")]
    #[schemars(with = "String")]
    pub request_timeout: Duration,
    #[serde(serialize_with = "ser_duration")]
    #[schemars(with = "String")]
    pub shutdown_grace: Duration,
    /// Calls in flight per process (a stream until its end); 0: unbounded.
    pub max_concurrent: u32,
    /// How long a call past `max_concurrent` may wait for room before a
    /// 503 with `Retry-After`.
    #[serde(serialize_with = "ser_duration")]
    #[schemars(with = "String")]
    pub queue_timeout: Duration,
    /// A write to a client that makes no progress this long (it stopped
    /// reading) closes the connection.
    #[serde(serialize_with = "ser_duration")]
    #[schemars(with = "String")]
    pub write_timeout: Duration,
    /// What the process writes to stderr: text, or one JSON object a line.
    pub log_format: LogFormat,
}

#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct StorageConfig {
    pub url: String,
}

impl StorageConfig {
    /// The SQLite database file, if the storage is one.
    fn sqlite_file(&self) -> Option<&Path> {
        self.url
            .strip_prefix("sqlite://")
            .or_else(|| self.url.strip_prefix("sqlite:"))
            .map(|p| p.split('?').next().unwrap_or(p))
            .filter(|p| *p != ":memory:" && !p.is_empty())
            .map(Path::new)
    }

    /// The directory the database lives in (for SQLite), where the admin
    /// token file and the log spool go by default.
    pub fn data_dir(&self) -> PathBuf {
        self.sqlite_file()
            .and_then(Path::parent)
            .filter(|d| !d.as_os_str().is_empty())
            .map_or_else(|| PathBuf::from("."), Path::to_path_buf)
    }

    /// Where the log spool goes when `logs.spool_dir` is not set: one per
    /// database, so gateways on different databases never share one (nor
    /// replay one's records into the other's database). SQLite: beside the
    /// file, named after it (`switchyard.db` → `switchyard-spool`);
    /// otherwise in the working directory, named after a digest of the
    /// URL without its password.
    pub fn default_spool_dir(&self) -> PathBuf {
        match self.sqlite_file() {
            Some(file) => {
                let stem = file
                    .file_stem()
                    .map_or_else(|| "switchyard".into(), |s| s.to_string_lossy());
                self.data_dir().join(format!("{stem}-spool"))
            }
            None if self.url.starts_with("sqlite:") => PathBuf::from("switchyard-spool"),
            None => {
                use sha2::Digest;
                let digest = sha2::Sha256::digest(redact_url(&self.url).as_bytes());
                PathBuf::from(format!(
                    "switchyard-spool-{}",
                    &crate::keys::hex(&digest)[..12]
                ))
            }
        }
    }
}

#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct RedisConfig {
    pub url: String,
    /// A Redis Cluster (or Valkey cluster): `url` is one of its nodes, the
    /// others are found from it.
    pub cluster: bool,
    pub on_unavailable: OnUnavailable,
}

#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct AuthConfig {
    pub require_keys: bool,
    pub admin_token_env: String,
}

#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct RouteConfig {
    pub name: String,
    pub strategy: Strategy,
    pub targets: Vec<TargetConfig>,
    pub max_attempts: Option<u32>,
    pub cache_fallback: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct TargetConfig {
    pub provider: String,
    pub model: String,
    pub weight: u32,
}

impl TargetConfig {
    pub fn full_name(&self) -> String {
        format!("{}/{}", self.provider, self.model)
    }
}

#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct CacheConfig {
    #[serde(serialize_with = "ser_duration")]
    #[schemars(with = "String")]
    pub default_ttl: Duration,
    pub max_entries: u64,
    pub max_bytes: u64,
}

#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct StreamsConfig {
    pub continue_on_disconnect: bool,
    pub max_detached: u32,
    pub max_buffer_bytes: u64,
    /// How long an ended stream its caller did not read to the end is kept.
    #[serde(serialize_with = "ser_duration")]
    #[schemars(with = "String")]
    pub retain: Duration,
    /// How long an ended stream its caller read whole is kept.
    #[serde(serialize_with = "ser_duration")]
    #[schemars(with = "String")]
    pub delivered_retain: Duration,
    /// Bytes all ended streams may keep together.
    pub max_retained_bytes: u64,
}

#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct LogsConfig {
    pub mode: LogMode,
    pub retain_days: u32,
    pub body_retain_days: u32,
    pub spool_dir: Option<PathBuf>,
    pub spool_max_bytes: u64,
    pub on_spool_full: SpoolFull,
    /// Past this many spool bytes not yet in the database, while the writer
    /// is writing, new requests wait for it (0: never).
    pub backlog_bytes: u64,
}

pub(crate) fn ser_duration<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&fmt_duration(*d))
}

pub const DEFAULT_LISTEN: &str = "127.0.0.1:8080";
pub const DEFAULT_ADMIN_LISTEN: &str = "127.0.0.1:8081";
pub const DEFAULT_STORAGE_URL: &str = "sqlite://switchyard.db";
pub const DEFAULT_ADMIN_TOKEN_ENV: &str = "SWITCHYARD_ADMIN_TOKEN";
pub const DEFAULT_MAX_TOKENS: u32 = 4096;

impl Config {
    /// Reads and validates a config file.
    pub fn load(path: &Path, env: &Env) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
            file: Some(path.to_owned()),
            key: String::new(),
            message: format!("cannot read the file: {e}"),
        })?;
        Config::parse(&text, Some(path), env)
    }

    /// Parses and validates config text.
    pub fn parse(text: &str, path: Option<&Path>, env: &Env) -> Result<Config, ConfigError> {
        let file = path.map(Path::to_owned);
        let de = toml::Deserializer::parse(text).map_err(|e| ConfigError {
            file: file.clone(),
            key: String::new(),
            message: format!("not valid TOML: {}", e.message()),
        })?;
        let raw: RawConfig = serde_path_to_error::deserialize(de).map_err(|e| {
            let key = e.path().to_string();
            let inner = e.into_inner();
            let mut message = inner.message().to_owned();
            if let Some(span) = inner.span() {
                let line = text[..span.start.min(text.len())].matches('\n').count() + 1;
                message = format!("{message} (line {line})");
            }
            ConfigError {
                file: file.clone(),
                key: if key == "." { String::new() } else { key },
                message,
            }
        })?;
        validate(raw, file, env)
    }

    /// The embedded defaults: every preset whose key variable is set.
    pub fn embedded(env: &Env) -> Result<Config, ConfigError> {
        validate(RawConfig::default(), None, env)
    }

    pub fn provider(&self, name: &str) -> Option<&ProviderConfig> {
        self.providers.iter().find(|p| p.name == name)
    }

    pub fn route(&self, name: &str) -> Option<&RouteConfig> {
        self.routes.iter().find(|r| r.name == name)
    }

    /// What `check-config` and the start banner print: providers, routes
    /// and listeners, with key variables named but never read out.
    pub fn summary(&self, env: &Env) -> String {
        let mut out = String::new();
        let src = self
            .source
            .as_deref()
            .map(|p| p.display().to_string())
            .unwrap_or_else(|| "embedded defaults".into());
        out.push_str(&format!("config: {src}\n"));
        out.push_str(&format!(
            "listen: {}  admin: {}  storage: {}\n",
            self.server.listen,
            self.server.admin_listen,
            redact_url(&self.storage.url)
        ));
        if let Some(r) = &self.redis {
            let kind = if r.cluster { " (cluster)" } else { "" };
            out.push_str(&format!("redis: {}{kind}\n", redact_url(&r.url)));
        }
        out.push_str(&format!("require_keys: {}\n", self.auth.require_keys));
        if self.providers.is_empty() {
            out.push_str("providers: none (set OPENAI_API_KEY, ANTHROPIC_API_KEY, GEMINI_API_KEY, ... or write a config file)\n");
        } else {
            out.push_str("providers:\n");
        }
        for p in &self.providers {
            let key = match &p.api_key_env {
                Some(var) if env.get(var).is_some() => format!("key from ${var} (set)"),
                Some(var) => format!("key from ${var} (NOT SET)"),
                None => "no key".into(),
            };
            out.push_str(&format!(
                "  {:<12} {:<18} {}  jurisdiction={}  timeout={}  {}\n",
                p.name,
                p.kind.as_str(),
                p.base_url,
                p.jurisdiction.as_deref().unwrap_or("unspecified"),
                fmt_duration(p.timeout),
                key
            ));
        }
        if !self.routes.is_empty() {
            out.push_str("routes:\n");
        }
        for r in &self.routes {
            let targets: Vec<String> = r
                .targets
                .iter()
                .map(|t| {
                    if r.strategy == Strategy::Weighted {
                        format!("{} (weight {})", t.full_name(), t.weight)
                    } else {
                        t.full_name()
                    }
                })
                .collect();
            out.push_str(&format!(
                "  {:<12} {:<13} {}\n",
                r.name,
                format!("{:?}", r.strategy).to_lowercase(),
                targets.join(", ")
            ));
        }
        out
    }
}

/// A URL with any password replaced, for printing.
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    match rest.split_once('@') {
        Some((userinfo, host)) => match userinfo.split_once(':') {
            Some((user, _)) => format!("{scheme}://{user}:***@{host}"),
            None => url.to_owned(),
        },
        None => url.to_owned(),
    }
}

fn validate(raw: RawConfig, file: Option<PathBuf>, env: &Env) -> Result<Config, ConfigError> {
    let err = |key: &str, message: String| ConfigError {
        file: file.clone(),
        key: key.to_owned(),
        message,
    };
    // Process-level overrides from the environment, applied at the source.
    let listen_s = env
        .get("SWITCHYARD_LISTEN")
        .map(str::to_owned)
        .or(raw.server.listen)
        .unwrap_or_else(|| DEFAULT_LISTEN.into());
    let admin_s = env
        .get("SWITCHYARD_ADMIN_LISTEN")
        .map(str::to_owned)
        .or(raw.server.admin_listen)
        .unwrap_or_else(|| DEFAULT_ADMIN_LISTEN.into());
    let listen: SocketAddr = listen_s.parse().map_err(|_| {
        err(
            "server.listen",
            format!("expected an address such as \"127.0.0.1:8080\", got \"{listen_s}\""),
        )
    })?;
    let admin_listen: SocketAddr = admin_s.parse().map_err(|_| {
        err(
            "server.admin_listen",
            format!("expected an address such as \"127.0.0.1:8081\", got \"{admin_s}\""),
        )
    })?;
    if listen == admin_listen && listen.port() != 0 {
        return Err(err(
            "server.admin_listen",
            "must differ from server.listen: the admin API has its own listener".into(),
        ));
    }
    let storage_url = env
        .get("SWITCHYARD_STORAGE_URL")
        .map(str::to_owned)
        .or(raw.storage.url)
        .unwrap_or_else(|| DEFAULT_STORAGE_URL.into());
    if !(storage_url.starts_with("sqlite:")
        || storage_url.starts_with("postgres://")
        || storage_url.starts_with("postgresql://"))
    {
        return Err(err(
            "storage.url",
            format!(
                "expected a sqlite://... or postgres://... URL, got \"{}\"",
                redact_url(&storage_url)
            ),
        ));
    }
    let cluster = match env.get("SWITCHYARD_REDIS_CLUSTER") {
        Some("true" | "1") => true,
        Some("false" | "0") => false,
        Some(other) => {
            return Err(err(
                "redis.cluster",
                format!("SWITCHYARD_REDIS_CLUSTER must be true or false, got \"{other}\""),
            ));
        }
        None => raw.redis.as_ref().is_some_and(|r| r.cluster),
    };
    let on_unavailable = raw
        .redis
        .as_ref()
        .map(|r| r.on_unavailable)
        .unwrap_or_default();
    let redis = env
        .get("SWITCHYARD_REDIS_URL")
        .map(str::to_owned)
        .or(raw.redis.map(|r| r.url))
        .map(|url| {
            if url.starts_with("redis://") {
                Ok(RedisConfig {
                    url,
                    cluster,
                    on_unavailable,
                })
            } else if url.starts_with("rediss://") {
                // Refused here rather than at the first connection.
                Err(err(
                    "redis.url",
                    "TLS to Redis (rediss://) is not built in: use redis:// on a private network, or a local TLS tunnel".into(),
                ))
            } else {
                Err(err(
                    "redis.url",
                    format!("expected a redis://... URL, got \"{}\"", redact_url(&url)),
                ))
            }
        })
        .transpose()?;
    let require_keys = match env.get("SWITCHYARD_REQUIRE_KEYS") {
        Some("true" | "1") => Some(true),
        Some("false" | "0") => Some(false),
        Some(other) => {
            return Err(err(
                "auth.require_keys",
                format!("SWITCHYARD_REQUIRE_KEYS must be true or false, got \"{other}\""),
            ));
        }
        None => raw.auth.require_keys,
    };
    // Keys are required unless the gateway only listens on loopback: an open
    // gateway spends the operator's provider credit for anyone who reaches it.
    let require_keys = require_keys.unwrap_or(!listen.ip().is_loopback());
    if !require_keys && !listen.ip().is_loopback() {
        return Err(err(
            "auth.require_keys",
            format!(
                "an open gateway (require_keys = false) may only listen on loopback, not {listen}"
            ),
        ));
    }
    let admin_token_env = raw
        .auth
        .admin_token_env
        .unwrap_or_else(|| DEFAULT_ADMIN_TOKEN_ENV.into());

    let mut providers = Vec::new();
    if raw.providers.is_empty() && file.is_none() {
        providers = providers::embedded(env);
    }
    let mut names = HashSet::new();
    for (i, p) in raw.providers.into_iter().enumerate() {
        let at = |k: &str| format!("providers[{i}].{k}");
        if p.name.is_empty()
            || !p
                .name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.')
        {
            return Err(err(
                &at("name"),
                format!(
                    "expected letters, digits, '-', '_' or '.', got \"{}\"",
                    p.name
                ),
            ));
        }
        if !names.insert(p.name.clone()) {
            return Err(err(
                &at("name"),
                format!("provider \"{}\" is defined twice", p.name),
            ));
        }
        providers.push(providers::validate(i, p, env, &err)?);
    }

    let mut routes = Vec::new();
    let mut route_names = HashSet::new();
    for (i, r) in raw.routes.into_iter().enumerate() {
        let at = |k: &str| format!("routes[{i}].{k}");
        if r.name.is_empty() || r.name.contains('/') {
            return Err(err(
                &at("name"),
                format!("expected a name without '/', got \"{}\"", r.name),
            ));
        }
        if !route_names.insert(r.name.clone()) {
            return Err(err(
                &at("name"),
                format!("route \"{}\" is defined twice", r.name),
            ));
        }
        if r.targets.is_empty() {
            return Err(err(
                &at("targets"),
                "a route needs at least one target".into(),
            ));
        }
        let strategy = r.strategy.unwrap_or(Strategy::Fallback);
        let mut targets = Vec::with_capacity(r.targets.len());
        for (j, t) in r.targets.into_iter().enumerate() {
            let tat = format!("routes[{i}].targets[{j}]");
            let (model, weight) = match t {
                RawTarget::Model(m) => (m, 1),
                RawTarget::Weighted(w) => (w.model, w.weight),
            };
            let Some((provider, m)) = model.split_once('/') else {
                return Err(err(
                    &tat,
                    format!("expected \"provider/model\", got \"{model}\""),
                ));
            };
            if !providers
                .iter()
                .any(|p: &ProviderConfig| p.name == provider)
            {
                let known: Vec<&str> = providers.iter().map(|p| p.name.as_str()).collect();
                return Err(err(
                    &tat,
                    format!(
                        "no provider named \"{provider}\" (configured: {})",
                        if known.is_empty() {
                            "none".into()
                        } else {
                            known.join(", ")
                        }
                    ),
                ));
            }
            if m.is_empty() {
                return Err(err(
                    &tat,
                    format!("expected \"provider/model\", got \"{model}\""),
                ));
            }
            if weight == 0 {
                return Err(err(
                    &format!("{tat}.weight"),
                    "must be greater than zero".into(),
                ));
            }
            targets.push(TargetConfig {
                provider: provider.to_owned(),
                model: m.to_owned(),
                weight,
            });
        }
        if r.max_attempts == Some(0) {
            return Err(err(&at("max_attempts"), "must be at least 1".into()));
        }
        routes.push(RouteConfig {
            name: r.name,
            strategy,
            targets,
            max_attempts: r.max_attempts,
            cache_fallback: r.cache_fallback,
        });
    }
    for r in &routes {
        if providers.iter().any(|p| p.name == r.name) {
            return Err(err(
                "routes",
                format!(
                    "route \"{}\" has the name of a provider; names must be distinct",
                    r.name
                ),
            ));
        }
    }

    for (key, price) in &raw.pricing {
        let at = format!("pricing.\"{key}\"");
        if !key.contains('/') {
            return Err(err(&at, "expected a \"provider/model\" key".into()));
        }
        for (name, v) in [
            ("input_per_mtok_usd", Some(price.input_per_mtok_usd)),
            ("output_per_mtok_usd", Some(price.output_per_mtok_usd)),
            ("cached_input_per_mtok_usd", price.cached_input_per_mtok_usd),
            ("cache_write_per_mtok_usd", price.cache_write_per_mtok_usd),
            ("web_search_per_1k_usd", price.web_search_per_1k_usd),
        ] {
            if let Some(v) = v
                && !(v.is_finite() && v >= 0.0)
            {
                return Err(err(
                    &format!("{at}.{name}"),
                    format!("expected a price >= 0, got {v}"),
                ));
            }
        }
    }

    let server = ServerConfig {
        listen,
        admin_listen,
        max_body_bytes: raw.server.max_body_bytes.unwrap_or(32 * 1024 * 1024),
        header_read_timeout: raw
            .server
            .header_read_timeout_ms
            .map(|m| m.0)
            .unwrap_or(Duration::from_secs(10)),
        request_timeout: raw
            .server
            .request_timeout_ms
            .map(|m| m.0)
            .unwrap_or(Duration::from_secs(600)),
        shutdown_grace: raw
            .server
            .shutdown_grace_ms
            .map(|m| m.0)
            .unwrap_or(Duration::from_secs(10)),
        max_concurrent: raw.server.max_concurrent.unwrap_or(0),
        queue_timeout: raw
            .server
            .queue_timeout_ms
            .map(|m| m.0)
            .unwrap_or(Duration::ZERO),
        write_timeout: raw
            .server
            .write_timeout_ms
            .map(|m| m.0)
            .unwrap_or(Duration::from_secs(60)),
        log_format: match env.get("SWITCHYARD_LOG_FORMAT") {
            Some(v) => v
                .parse()
                .map_err(|m: String| err("SWITCHYARD_LOG_FORMAT", m))?,
            None => raw.server.log_format.unwrap_or_default(),
        },
    };
    if server.write_timeout.is_zero() {
        return Err(err(
            "server.write_timeout_ms",
            "must be greater than zero".into(),
        ));
    }
    if server.max_body_bytes == 0 {
        return Err(err(
            "server.max_body_bytes",
            "must be greater than zero".into(),
        ));
    }
    if server.request_timeout.is_zero() {
        return Err(err(
            "server.request_timeout_ms",
            "must be greater than zero".into(),
        ));
    }
    let cache = CacheConfig {
        default_ttl: raw
            .cache
            .default_ttl_s
            .map(|s| s.0)
            .unwrap_or(Duration::ZERO),
        max_entries: raw.cache.max_entries.unwrap_or(100_000),
        max_bytes: raw.cache.max_bytes.unwrap_or(256 * 1024 * 1024),
    };
    let streams = StreamsConfig {
        continue_on_disconnect: raw.streams.continue_on_disconnect.unwrap_or(true),
        max_detached: raw.streams.max_detached.unwrap_or(256),
        max_buffer_bytes: raw.streams.max_buffer_bytes.unwrap_or(8 * 1024 * 1024),
        retain: raw
            .streams
            .retain_s
            .map(|s| s.0)
            .unwrap_or(Duration::from_secs(600)),
        delivered_retain: raw
            .streams
            .delivered_retain_s
            .map(|s| s.0)
            .unwrap_or(Duration::ZERO),
        max_retained_bytes: raw.streams.max_retained_bytes.unwrap_or(32 * 1024 * 1024),
    };
    let logs = LogsConfig {
        mode: raw.logs.mode.unwrap_or(LogMode::Metadata),
        retain_days: raw.logs.retain_days.unwrap_or(30),
        body_retain_days: raw.logs.body_retain_days.unwrap_or(7),
        spool_dir: raw.logs.spool_dir.map(PathBuf::from),
        spool_max_bytes: raw.logs.spool_max_bytes.unwrap_or(256 * 1024 * 1024),
        on_spool_full: raw.logs.on_spool_full.unwrap_or(SpoolFull::Refuse),
        backlog_bytes: raw.logs.backlog_bytes.unwrap_or(4 * 1024 * 1024),
    };
    if logs.body_retain_days > logs.retain_days {
        return Err(err(
            "logs.body_retain_days",
            format!(
                "must not exceed logs.retain_days ({}), got {}",
                logs.retain_days, logs.body_retain_days
            ),
        ));
    }
    let circuit = CircuitConfig {
        failures: raw.circuit.failures.unwrap_or(5),
        cooldown: raw
            .circuit
            .cooldown_ms
            .map(|m| m.0)
            .unwrap_or(Duration::from_secs(5)),
        max_cooldown: raw
            .circuit
            .max_cooldown_ms
            .map(|m| m.0)
            .unwrap_or(Duration::from_secs(300)),
    };
    if circuit.failures == 0 {
        return Err(err("circuit.failures", "must be at least 1".into()));
    }
    if circuit.max_cooldown < circuit.cooldown {
        return Err(err(
            "circuit.max_cooldown_ms",
            "must not be shorter than circuit.cooldown_ms".into(),
        ));
    }
    let responses = ResponsesConfig {
        store: raw.responses.store.unwrap_or(true),
        retain_days: match raw.responses.retain_days {
            Some(0) => {
                return Err(err("responses.retain_days", "must be at least 1".into()));
            }
            Some(d) => d,
            None => 30,
        },
        drop_unsupported_tools: raw.responses.drop_unsupported_tools,
    };
    let tools = tools::validate(raw.tools, &raw.approvals, |k, m| err(k, m))?;
    let mcp_servers =
        tools::validate_mcp(raw.mcp_servers, &raw.approvals, &tools, |k, m| err(k, m))?;
    Ok(Config {
        source: file,
        server,
        storage: StorageConfig { url: storage_url },
        redis,
        auth: AuthConfig {
            require_keys,
            admin_token_env,
        },
        providers,
        routes,
        cache,
        streams,
        logs,
        pricing: raw.pricing,
        circuit,
        limits: LimitsConfig {
            max_output_tokens: raw.limits.max_output_tokens.unwrap_or(32_768),
        },
        responses,
        tools,
        mcp_servers,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::parse(text, Some(Path::new("sy.toml")), &Env::default())
    }

    #[test]
    fn presets_parse() {
        assert!(
            presets()
                .iter()
                .any(|p| p.name == "google" && p.kind == ProviderKind::Gemini)
        );
    }

    #[test]
    fn embedded_defaults_register_what_the_environment_has() {
        let env = Env::default()
            .with("OPENAI_API_KEY", "sk-canary")
            .with("GOOGLE_API_KEY", "g")
            .with("OLLAMA_HOST", "127.0.0.1:11434");
        let c = Config::embedded(&env).unwrap();
        let names: Vec<_> = c.providers.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, ["openai", "google", "ollama"]);
        assert_eq!(
            c.provider("google").unwrap().api_key_env.as_deref(),
            Some("GOOGLE_API_KEY")
        );
        assert_eq!(
            c.provider("ollama").unwrap().base_url,
            "http://127.0.0.1:11434/v1"
        );
        assert_eq!(c.server.listen.to_string(), "127.0.0.1:8080");
        assert_eq!(c.server.admin_listen.to_string(), "127.0.0.1:8081");
        assert!(!c.auth.require_keys);
        let summary = c.summary(&env);
        assert!(!summary.contains("sk-canary"), "{summary}");
        assert!(summary.contains("$OPENAI_API_KEY (set)"), "{summary}");
    }

    #[test]
    fn the_design_sample_parses() {
        let c = parse(
            r#"
[server]
listen = "127.0.0.1:8080"
admin_listen = "127.0.0.1:8081"
[storage]
url = "sqlite://switchyard.db"
[redis]
url = "redis://127.0.0.1:6379"
[auth]
require_keys = true
admin_token_env = "SWITCHYARD_ADMIN_TOKEN"
[[providers]]
name = "openai"
kind = "openai"
base_url = "https://api.openai.com/v1"
api_key_env = "OPENAI_API_KEY"
jurisdiction = "us"
timeout_ms = 60000
models = ["gpt-5", "gpt-5-mini"]
[[providers]]
name = "anthropic"
kind = "anthropic"
[[providers]]
name = "local"
kind = "openai-compatible"
base_url = "http://127.0.0.1:8000/v1/"
timeout_ms = "1m30s"
[[routes]]
name = "smart"
strategy = "fallback"
targets = ["anthropic/claude-opus-4-6", "openai/gpt-5"]
[[routes]]
name = "split"
strategy = "weighted"
targets = [{ model = "openai/gpt-5-mini", weight = 3 }, { model = "local/qwen3-8b", weight = 1 }]
[cache]
default_ttl_s = 0
max_entries = 100000
[pricing."openai/gpt-5"]
input_per_mtok_usd = 1.25
output_per_mtok_usd = 10.0
cached_input_per_mtok_usd = 0.125
"#,
        )
        .unwrap();
        assert_eq!(c.providers.len(), 3);
        assert_eq!(
            c.provider("anthropic").unwrap().base_url,
            "https://api.anthropic.com/v1"
        );
        assert_eq!(
            c.provider("anthropic").unwrap().api_key_env.as_deref(),
            Some("ANTHROPIC_API_KEY")
        );
        let local = c.provider("local").unwrap();
        assert_eq!(local.base_url, "http://127.0.0.1:8000/v1");
        assert_eq!(local.timeout, Duration::from_secs(90));
        assert_eq!(local.api_key_env, None);
        assert_eq!(c.route("split").unwrap().targets[0].weight, 3);
        assert!(c.auth.require_keys);
    }

    #[test]
    fn errors_name_file_key_and_expectation() {
        let e = parse("[[providers]]\nname = \"x\"\nkind = \"opena\"\n").unwrap_err();
        assert_eq!(e.key, "providers[0].kind");
        let shown = e.to_string();
        assert!(shown.starts_with("sy.toml: `providers[0].kind`"), "{shown}");
        assert!(shown.contains("openai-compatible"), "{shown}");

        let e = parse("[server]\nlisten = \"127.0.0.1:8080\"\nlisen = 1\n").unwrap_err();
        assert_eq!(e.key, "server.lisen");
        assert!(e.message.contains("unknown field `lisen`"), "{}", e.message);

        let e =
            parse("[[providers]]\nname=\"a\"\nkind=\"openai\"\ntimeout_ms=\"soon\"\n").unwrap_err();
        assert_eq!(e.key, "providers[0].timeout_ms");
        assert!(e.message.contains("expected a duration"), "{}", e.message);

        let e = parse("[[routes]]\nname=\"r\"\ntargets=[\"nope/m\"]\n").unwrap_err();
        assert_eq!(e.key, "routes[0].targets[0]");

        let e = parse("[redis]\nurl=\"rediss://:secret@cache:6380\"\n").unwrap_err();
        assert_eq!(e.key, "redis.url");
        assert!(e.message.contains("not built in"), "{}", e.message);
        assert!(!e.to_string().contains("secret"));

        let e =
            parse("[[providers]]\nname=\"a\"\nkind=\"openai\"\nbase_url=\"https://u:p@h/v1\"\n")
                .unwrap_err();
        assert_eq!(e.key, "providers[0].base_url");
        assert!(!e.to_string().contains("u:p"));

        let e =
            parse("[server]\nlisten=\"0.0.0.0:8080\"\n[auth]\nrequire_keys=false\n").unwrap_err();
        assert_eq!(e.key, "auth.require_keys");

        let e = parse("not toml = = 1").unwrap_err();
        assert!(e.message.starts_with("not valid TOML"), "{}", e.message);
    }

    #[test]
    fn durations_read_and_print() {
        assert_eq!(parse_duration("1m30s").unwrap(), Duration::from_secs(90));
        assert_eq!(parse_duration("250ms").unwrap(), Duration::from_millis(250));
        assert_eq!(parse_duration("1.5s").unwrap(), Duration::from_millis(1500));
        assert!(parse_duration("5 parsecs").is_err());
        assert_eq!(fmt_duration(Duration::from_secs(90)), "1m30s");
        assert_eq!(fmt_duration(Duration::from_millis(250)), "250ms");
        assert_eq!(fmt_duration(Duration::from_secs(600)), "10m");
    }

    #[test]
    fn env_overrides_apply_at_the_source() {
        let env = Env::default().with("SWITCHYARD_LISTEN", "127.0.0.1:9999");
        let c = Config::parse("", None, &env).unwrap();
        assert_eq!(c.server.listen.port(), 9999);
    }

    #[test]
    fn each_database_has_its_own_default_spool() {
        let at = |url: &str| {
            StorageConfig {
                url: url.to_owned(),
            }
            .default_spool_dir()
        };
        assert_eq!(
            at("sqlite://switchyard.db"),
            PathBuf::from("./switchyard-spool")
        );
        assert_eq!(
            at("sqlite:///srv/sy/a.db"),
            PathBuf::from("/srv/sy/a-spool")
        );
        assert_ne!(at("sqlite:///srv/sy/a.db"), at("sqlite:///srv/sy/b.db"));
        assert_eq!(at("sqlite::memory:"), PathBuf::from("switchyard-spool"));
        let pg = at("postgres://u:secret@db/one");
        assert_ne!(pg, at("postgres://u:secret@db/two"));
        assert_eq!(
            pg,
            at("postgres://u:other@db/one"),
            "the password is not part of it"
        );
        assert!(!pg.to_string_lossy().contains("secret"));
    }

    #[test]
    fn data_dir_follows_the_sqlite_path() {
        let s = StorageConfig {
            url: "sqlite:///var/lib/sy/x.db?mode=rwc".into(),
        };
        assert_eq!(s.data_dir(), PathBuf::from("/var/lib/sy"));
        let s = StorageConfig {
            url: "sqlite://switchyard.db".into(),
        };
        assert_eq!(s.data_dir(), PathBuf::from("."));
    }
}
