//! One upstream MCP server: the connection to it (Streamable HTTP, both
//! protocol eras, its credential added by the gateway), and its tools as
//! last listed, each with its pin and its class.
//!
//! The connection is opened on first use and again after it fails. The
//! list is re-read when it is older than `list_ttl`, once for all callers
//! at a time, and each tool in it is checked against its pin then.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use http::{HeaderName, HeaderValue};
use rmcp::model::{CallToolRequestParams, CallToolResponse, JsonObject, ProtocolVersion, Tool};
use rmcp::service::{ClientLifecycleMode, ClientServiceExt, RoleClient, RunningService};
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use tokio::time::Instant;

use super::pins::{self, Pin};
use crate::config::tools::McpServerConfig;
use crate::keys::glob;
use crate::providers::Secret;
use crate::storage::Storage;

/// How a tool's calls are treated, and why.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    Read(&'static str),
    Write(&'static str),
}

impl Class {
    pub fn is_write(self) -> bool {
        matches!(self, Class::Write(_))
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Class::Read(_) => "read",
            Class::Write(_) => "write",
        }
    }

    pub fn reason(self) -> &'static str {
        match self {
            Class::Read(r) | Class::Write(r) => r,
        }
    }
}

/// DESIGN §8: a read only when the operator lists it in `reads`, or its
/// `readOnlyHint` is true and the operator has not listed it in `writes`;
/// a tool with no annotations is a write.
pub fn classify(config: &McpServerConfig, tool: &Tool) -> Class {
    let name = tool.name.as_ref();
    if config.reads.iter().any(|g| glob(g, name)) {
        return Class::Read("listed in reads");
    }
    if config.writes.iter().any(|g| glob(g, name)) {
        return Class::Write("listed in writes");
    }
    match tool.annotations.as_ref().and_then(|a| a.read_only_hint) {
        Some(true) => Class::Read("readOnlyHint"),
        Some(false) => Class::Write("readOnlyHint false"),
        None => Class::Write("no readOnlyHint"),
    }
}

/// A tool as the upstream last listed it.
#[derive(Debug, Clone)]
pub struct Listed {
    pub tool: Tool,
    pub pin: Pin,
    pub class: Class,
}

#[derive(Debug)]
struct Catalogue {
    read_at: Instant,
    tools: Arc<Vec<Listed>>,
}

type Connection = RunningService<RoleClient, ()>;

/// Why an upstream could not be used.
#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    #[error("MCP server `{0}` could not be reached: {1}")]
    Connect(String, String),
    #[error("MCP server `{0}` failed: {1}")]
    Call(String, String),
    #[error("MCP server `{0}` did not answer within {1:?}")]
    Timeout(String, Duration),
    #[error("the pin store is unavailable: {0}")]
    Pins(String),
}

pub struct Upstream {
    pub config: McpServerConfig,
    header: Option<(HeaderName, HeaderValue)>,
    secret: Option<Secret>,
    http: reqwest::Client,
    conn: tokio::sync::Mutex<Option<Arc<Connection>>>,
    catalogue: RwLock<Option<Catalogue>>,
    refreshing: tokio::sync::Mutex<()>,
}

impl std::fmt::Debug for Upstream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Upstream")
            .field("name", &self.config.name)
            .field("url", &self.config.url)
            .finish_non_exhaustive()
    }
}

impl Upstream {
    pub fn new(config: McpServerConfig, env: &crate::config::Env) -> anyhow::Result<Upstream> {
        let secret = config
            .auth
            .as_ref()
            .and_then(|a| env.get(&a.value_env))
            .map(|v| Secret::new(v.to_owned()));
        let header = match (&config.auth, &secret) {
            (Some(a), Some(s)) => {
                let name = HeaderName::from_bytes(a.header.as_bytes())?;
                let mut value = HeaderValue::from_str(&format!("{}{}", a.prefix, s.expose()))
                    .map_err(|_| {
                        anyhow::anyhow!(
                            "mcp_servers `{}`: the value of {} is not a valid header value",
                            config.name,
                            a.value_env
                        )
                    })?;
                value.set_sensitive(true);
                Some((name, value))
            }
            _ => None,
        };
        // The gateway's own policy: no redirects (a redirect could carry the
        // credential elsewhere), connections reused.
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(Duration::from_secs(10))
            .build()?;
        Ok(Upstream {
            config,
            header,
            secret,
            http,
            conn: tokio::sync::Mutex::new(None),
            catalogue: RwLock::new(None),
            refreshing: tokio::sync::Mutex::new(()),
        })
    }

    pub fn secret(&self) -> Option<&str> {
        self.secret.as_ref().map(Secret::expose)
    }

    async fn connect(&self) -> Result<Arc<Connection>, UpstreamError> {
        let mut slot = self.conn.lock().await;
        if let Some(c) = slot.as_ref()
            && !c.is_closed()
        {
            return Ok(c.clone());
        }
        let mut cfg = StreamableHttpClientTransportConfig::with_uri(self.config.url.as_str())
            .max_json_response_size(16 << 20);
        if let Some((name, value)) = &self.header {
            cfg = cfg.custom_headers(HashMap::from([(name.clone(), value.clone())]));
        }
        let transport = StreamableHttpClientTransport::with_client(self.http.clone(), cfg);
        let mode = ClientLifecycleMode::Auto {
            preferred_versions: vec![ProtocolVersion::V_2026_07_28],
            legacy_version: Some(ProtocolVersion::V_2025_11_25),
        };
        let name = &self.config.name;
        let conn = tokio::time::timeout(
            self.config.timeout,
            ().serve_with_lifecycle(transport, mode),
        )
        .await
        .map_err(|_| UpstreamError::Timeout(name.clone(), self.config.timeout))?
        .map_err(|e| UpstreamError::Connect(name.clone(), self.scrubbed(&e.to_string())))?;
        let conn = Arc::new(conn);
        *slot = Some(conn.clone());
        Ok(conn)
    }

    /// Forgets a connection that failed, so the next use opens another.
    async fn drop_connection(&self, failed: &Arc<Connection>) {
        let mut slot = self.conn.lock().await;
        if slot.as_ref().is_some_and(|c| Arc::ptr_eq(c, failed)) {
            *slot = None;
        }
    }

    /// An upstream's error text, with its credential never in it.
    fn scrubbed(&self, text: &str) -> String {
        match self.secret() {
            Some(s) if s.len() >= 8 => text.replace(s, "[redacted]"),
            _ => text.to_owned(),
        }
    }

    /// The tools, re-read when the list is older than `list_ttl` (or
    /// `force`).
    pub async fn tools(
        &self,
        storage: &Storage,
        force: bool,
    ) -> Result<Arc<Vec<Listed>>, UpstreamError> {
        if !force && let Some(t) = self.fresh() {
            return Ok(t);
        }
        let _one = self.refreshing.lock().await;
        if !force && let Some(t) = self.fresh() {
            return Ok(t);
        }
        let listed = match self.list_once().await {
            Ok(l) => l,
            // A session the upstream forgot (it restarted): once more, anew.
            Err(_) => self.list_once().await?,
        };
        let mut tools = Vec::with_capacity(listed.len());
        for tool in listed {
            let json = serde_json::to_value(&tool).unwrap_or_default();
            let pin = pins::observe(storage, &self.config.name, &json)
                .await
                .map_err(|e| UpstreamError::Pins(e.to_string()))?;
            let class = classify(&self.config, &tool);
            tools.push(Listed { tool, pin, class });
        }
        let tools = Arc::new(tools);
        *self.catalogue.write().unwrap_or_else(|e| e.into_inner()) = Some(Catalogue {
            read_at: Instant::now(),
            tools: tools.clone(),
        });
        Ok(tools)
    }

    fn fresh(&self) -> Option<Arc<Vec<Listed>>> {
        let c = self.catalogue.read().unwrap_or_else(|e| e.into_inner());
        c.as_ref()
            .filter(|c| c.read_at.elapsed() < self.config.list_ttl)
            .map(|c| c.tools.clone())
    }

    /// The tools as last read, however old (for checks that cannot wait).
    pub fn last_listed(&self) -> Option<Arc<Vec<Listed>>> {
        let c = self.catalogue.read().unwrap_or_else(|e| e.into_inner());
        c.as_ref().map(|c| c.tools.clone())
    }

    /// Makes the next use re-read the list (a pin was decided).
    pub fn forget_list(&self) {
        *self.catalogue.write().unwrap_or_else(|e| e.into_inner()) = None;
    }

    async fn list_once(&self) -> Result<Vec<Tool>, UpstreamError> {
        let conn = self.connect().await?;
        let name = &self.config.name;
        match tokio::time::timeout(self.config.timeout, conn.list_all_tools()).await {
            Ok(Ok(t)) => Ok(t),
            Ok(Err(e)) => {
                self.drop_connection(&conn).await;
                Err(UpstreamError::Call(
                    name.clone(),
                    self.scrubbed(&e.to_string()),
                ))
            }
            Err(_) => {
                self.drop_connection(&conn).await;
                Err(UpstreamError::Timeout(name.clone(), self.config.timeout))
            }
        }
    }

    /// Calls `tool` once (never retried: a write may have run).
    pub async fn call(
        &self,
        tool: &str,
        arguments: Option<JsonObject>,
    ) -> Result<CallToolResponse, UpstreamError> {
        let conn = self.connect().await?;
        let mut p = CallToolRequestParams::new(tool.to_owned());
        p.arguments = arguments;
        let name = &self.config.name;
        match tokio::time::timeout(self.config.timeout, conn.call_tool_once(p)).await {
            Ok(Ok(r)) => Ok(r),
            Ok(Err(rmcp::ServiceError::McpError(e))) => {
                Err(UpstreamError::Call(name.clone(), self.scrubbed(&e.message)))
            }
            Ok(Err(e)) => {
                self.drop_connection(&conn).await;
                Err(UpstreamError::Call(
                    name.clone(),
                    self.scrubbed(&e.to_string()),
                ))
            }
            Err(_) => Err(UpstreamError::Timeout(name.clone(), self.config.timeout)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rmcp::model::ToolAnnotations;

    fn server(reads: &[&str], writes: &[&str]) -> McpServerConfig {
        McpServerConfig {
            name: "jira".into(),
            url: "http://127.0.0.1:1/mcp".into(),
            auth: None,
            reads: reads.iter().map(|s| s.to_string()).collect(),
            writes: writes.iter().map(|s| s.to_string()).collect(),
            client_approval: false,
            list_ttl: Duration::from_secs(5),
            approval: crate::config::tools::Approval::Required,
            approval_timeout: Duration::from_secs(300),
            timeout: Duration::from_secs(60),
            jurisdiction: None,
        }
    }

    fn tool(name: &str, read_only: Option<bool>) -> Tool {
        let mut t: Tool = serde_json::from_value(serde_json::json!({
            "name": name, "inputSchema": {"type": "object"}
        }))
        .unwrap();
        if let Some(r) = read_only {
            let mut a = ToolAnnotations::default();
            a.read_only_hint = Some(r);
            t.annotations = Some(a);
        }
        t
    }

    #[test]
    fn tools_are_reads_only_when_listed_or_annotated_and_not_overridden() {
        let plain = server(&[], &[]);
        assert_eq!(
            classify(&plain, &tool("get", Some(true))),
            Class::Read("readOnlyHint")
        );
        assert!(classify(&plain, &tool("del", Some(false))).is_write());
        assert!(classify(&plain, &tool("echo", None)).is_write());
        let ops = server(&["search_*", "get_*"], &["*"]);
        assert!(!classify(&ops, &tool("search_issues", None)).is_write());
        assert!(!classify(&ops, &tool("get_issue", Some(false))).is_write());
        assert!(classify(&ops, &tool("list_projects", Some(true))).is_write());
        let writes = server(&[], &["dangerous_*"]);
        assert!(classify(&writes, &tool("dangerous_read", Some(true))).is_write());
        assert!(!classify(&writes, &tool("safe_read", Some(true))).is_write());
    }
}
