//! `[[tools]]` and `[approvals]`: the HTTP tools agents call through the
//! gateway (DESIGN §8), each with its credential, the operator's read and
//! write overrides, and what a write needs.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::Seconds;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTool {
    pub name: String,
    pub base_url: String,
    #[serde(default)]
    pub auth: Option<RawToolAuth>,
    #[serde(default)]
    pub graphql: Vec<String>,
    #[serde(default)]
    pub reads: Vec<String>,
    #[serde(default)]
    pub writes: Vec<String>,
    #[serde(default)]
    pub approval: Option<Approval>,
    #[serde(default)]
    pub approval_timeout_s: Option<Seconds>,
    #[serde(default)]
    pub timeout_ms: Option<super::Millis>,
    #[serde(default)]
    pub jurisdiction: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawToolAuth {
    pub header: String,
    pub value_env: String,
    #[serde(default)]
    pub prefix: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawMcpServer {
    pub name: String,
    pub url: String,
    #[serde(default)]
    pub auth: Option<RawToolAuth>,
    #[serde(default)]
    pub reads: Vec<String>,
    #[serde(default)]
    pub writes: Vec<String>,
    #[serde(default)]
    pub client_approval: Option<bool>,
    #[serde(default)]
    pub list_ttl_s: Option<Seconds>,
    #[serde(default)]
    pub approval: Option<Approval>,
    #[serde(default)]
    pub approval_timeout_s: Option<Seconds>,
    #[serde(default)]
    pub timeout_ms: Option<super::Millis>,
    #[serde(default)]
    pub jurisdiction: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawApprovals {
    pub timeout_s: Option<Seconds>,
}

/// What a write needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
#[schemars(rename = "ApprovalPolicy")]
pub enum Approval {
    /// A person approves each write (the default).
    Required,
    /// Writes pass, still classified and audited.
    None,
    /// Writes are refused.
    Deny,
}

/// An operator's override: `METHOD /path/glob`, or `/path/glob` for any
/// method.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct Rule {
    pub method: Option<String>,
    pub path: String,
}

impl Rule {
    fn parse(s: &str) -> Result<Rule, String> {
        let s = s.trim();
        let (method, path) = match s.split_once(' ') {
            Some((m, p)) => (Some(m.trim().to_ascii_uppercase()), p.trim()),
            None => (None, s),
        };
        if !path.starts_with('/') {
            return Err(format!(
                "expected `METHOD /path` or `/path` (globs with *), got \"{s}\""
            ));
        }
        if let Some(m) = &method
            && (m.is_empty() || !m.bytes().all(|b| b.is_ascii_uppercase()))
        {
            return Err(format!("`{m}` is not an HTTP method"));
        }
        Ok(Rule {
            method,
            path: path.to_owned(),
        })
    }

    /// Whether the rule covers `method` on `path`.
    pub fn matches(&self, method: &str, path: &str) -> bool {
        self.method.as_deref().is_none_or(|m| m == method) && crate::keys::glob(&self.path, path)
    }
}

/// Where a tool's credential goes.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct ToolAuth {
    pub header: String,
    pub value_env: String,
    pub prefix: String,
}

#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct ToolConfig {
    pub name: String,
    /// No trailing slash; `{rest}` is appended after one.
    pub base_url: String,
    pub auth: Option<ToolAuth>,
    /// Paths whose POST bodies are GraphQL documents (globs).
    pub graphql: Vec<String>,
    pub reads: Vec<Rule>,
    pub writes: Vec<Rule>,
    pub approval: Approval,
    #[serde(serialize_with = "super::ser_duration")]
    #[schemars(with = "String")]
    pub approval_timeout: Duration,
    #[serde(serialize_with = "super::ser_duration")]
    #[schemars(with = "String")]
    pub timeout: Duration,
    /// Where the tool's API runs (`eu`, `us`): a key or request limited to
    /// jurisdictions may call it only when it names one of theirs.
    pub jurisdiction: Option<String>,
}

/// An upstream MCP server whose tools the gateway's `/mcp` offers as
/// `{name}__{tool}`.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct McpServerConfig {
    pub name: String,
    /// Its Streamable HTTP endpoint.
    pub url: String,
    pub auth: Option<ToolAuth>,
    /// Tool-name globs the operator declares reads, and writes (a read
    /// glob is checked first; a tool neither lists is decided by its
    /// annotations).
    pub reads: Vec<String>,
    pub writes: Vec<String>,
    /// The MCP client's own elicitation answer may decide a held write.
    pub client_approval: bool,
    #[serde(serialize_with = "super::ser_duration")]
    #[schemars(with = "String")]
    pub list_ttl: Duration,
    pub approval: Approval,
    #[serde(serialize_with = "super::ser_duration")]
    #[schemars(with = "String")]
    pub approval_timeout: Duration,
    #[serde(serialize_with = "super::ser_duration")]
    #[schemars(with = "String")]
    pub timeout: Duration,
    /// As for tools.
    pub jurisdiction: Option<String>,
}

/// The default time a held write waits for a person.
pub const APPROVAL_TIMEOUT: Duration = Duration::from_secs(300);

/// Validates `[[tools]]`; `err(key, message)` names what is wrong.
pub fn validate<E>(
    raw: Vec<RawTool>,
    approvals: &RawApprovals,
    err: impl Fn(&str, String) -> E,
) -> Result<Vec<ToolConfig>, E> {
    let default_timeout = approvals.timeout_s.map_or(APPROVAL_TIMEOUT, |s| s.0);
    let mut out: Vec<ToolConfig> = Vec::new();
    for (i, t) in raw.into_iter().enumerate() {
        let at = |k: &str| format!("tools[{i}].{k}");
        let name = t.name.trim().to_owned();
        check_name(&name).map_err(|m| err(&at("name"), m))?;
        if out.iter().any(|o| o.name == name) {
            return Err(err(&at("name"), format!("a second tool named \"{name}\"")));
        }
        let base_url = super::check_base_url(&t.base_url).map_err(|m| err(&at("base_url"), m))?;
        let auth = auth(t.auth, &at).map_err(|(k, m)| err(&k, m))?;
        let rules = |list: Vec<String>, key: &str| -> Result<Vec<Rule>, E> {
            list.iter()
                .enumerate()
                .map(|(j, r)| Rule::parse(r).map_err(|m| err(&at(&format!("{key}[{j}]")), m)))
                .collect()
        };
        for (j, g) in t.graphql.iter().enumerate() {
            if !g.starts_with('/') {
                return Err(err(
                    &at(&format!("graphql[{j}]")),
                    format!("expected a path such as \"/graphql\", got \"{g}\""),
                ));
            }
        }
        let timeout = t.timeout_ms.map_or(Duration::from_secs(60), |m| m.0);
        if timeout.is_zero() {
            return Err(err(&at("timeout_ms"), "must be greater than zero".into()));
        }
        out.push(ToolConfig {
            name,
            base_url,
            auth,
            graphql: t.graphql,
            reads: rules(t.reads, "reads")?,
            writes: rules(t.writes, "writes")?,
            approval: t.approval.unwrap_or(Approval::Required),
            approval_timeout: t.approval_timeout_s.map_or(default_timeout, |s| s.0),
            timeout,
            jurisdiction: jurisdiction(t.jurisdiction).map_err(|m| err(&at("jurisdiction"), m))?,
        });
    }
    Ok(out)
}

/// One jurisdiction tag, lower-cased.
fn jurisdiction(j: Option<String>) -> Result<Option<String>, String> {
    let Some(j) = j.map(|j| j.trim().to_ascii_lowercase()) else {
        return Ok(None);
    };
    if j.is_empty() || j.contains(',') {
        return Err(format!(
            "expected one tag such as \"eu\" or \"us\", got \"{j}\""
        ));
    }
    Ok(Some(j))
}

/// A name for a tool or a server: letters, digits, `-` and `_`, no `__`.
fn check_name(name: &str) -> Result<(), String> {
    if name.is_empty()
        || name.len() > 64
        || !name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        return Err(format!(
            "expected letters, digits, - and _ (at most 64), got \"{name}\""
        ));
    }
    if name.contains("__") {
        return Err("`__` separates an MCP server from its tools; use another name".into());
    }
    Ok(())
}

fn auth(
    a: Option<RawToolAuth>,
    at: &dyn Fn(&str) -> String,
) -> Result<Option<ToolAuth>, (String, String)> {
    let Some(a) = a else { return Ok(None) };
    if http::HeaderName::from_bytes(a.header.as_bytes()).is_err() {
        return Err((
            at("auth.header"),
            format!("\"{}\" is not a header name", a.header),
        ));
    }
    if a.value_env.is_empty() || a.value_env.contains('=') {
        return Err((
            at("auth.value_env"),
            "expected an environment variable name".into(),
        ));
    }
    Ok(Some(ToolAuth {
        header: a.header.to_ascii_lowercase(),
        value_env: a.value_env,
        prefix: a.prefix.unwrap_or_default(),
    }))
}

/// Validates `[[mcp_servers]]`; their names may not be tools' names.
pub fn validate_mcp<E>(
    raw: Vec<RawMcpServer>,
    approvals: &RawApprovals,
    tools: &[ToolConfig],
    err: impl Fn(&str, String) -> E,
) -> Result<Vec<McpServerConfig>, E> {
    let default_timeout = approvals.timeout_s.map_or(APPROVAL_TIMEOUT, |s| s.0);
    let mut out: Vec<McpServerConfig> = Vec::new();
    for (i, m) in raw.into_iter().enumerate() {
        let at = |k: &str| format!("mcp_servers[{i}].{k}");
        let name = m.name.trim().to_owned();
        check_name(&name).map_err(|msg| err(&at("name"), msg))?;
        if out.iter().any(|o| o.name == name) || tools.iter().any(|t| t.name == name) {
            return Err(err(
                &at("name"),
                format!("a second tool or MCP server named \"{name}\""),
            ));
        }
        let url = super::check_base_url(&m.url).map_err(|msg| err(&at("url"), msg))?;
        let auth = auth(m.auth, &at).map_err(|(k, msg)| err(&k, msg))?;
        for (key, list) in [("reads", &m.reads), ("writes", &m.writes)] {
            for (j, g) in list.iter().enumerate() {
                if g.is_empty() || g.chars().any(char::is_whitespace) {
                    return Err(err(
                        &at(&format!("{key}[{j}]")),
                        "expected a tool-name glob such as `search_*`".into(),
                    ));
                }
            }
        }
        let timeout = m.timeout_ms.map_or(Duration::from_secs(60), |t| t.0);
        if timeout.is_zero() {
            return Err(err(&at("timeout_ms"), "must be greater than zero".into()));
        }
        out.push(McpServerConfig {
            name,
            url,
            auth,
            reads: m.reads,
            writes: m.writes,
            client_approval: m.client_approval.unwrap_or(false),
            list_ttl: m.list_ttl_s.map_or(Duration::from_secs(5), |s| s.0),
            approval: m.approval.unwrap_or(Approval::Required),
            approval_timeout: m.approval_timeout_s.map_or(default_timeout, |s| s.0),
            timeout,
            jurisdiction: jurisdiction(m.jurisdiction)
                .map_err(|msg| err(&at("jurisdiction"), msg))?,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_read_a_method_and_a_path_glob() {
        let r = Rule::parse("post /search/*").unwrap();
        assert_eq!(r.method.as_deref(), Some("POST"));
        assert!(r.matches("POST", "/search/issues"));
        assert!(!r.matches("GET", "/search/issues"));
        let any = Rule::parse("/admin/*").unwrap();
        assert!(any.matches("DELETE", "/admin/x"));
        assert!(Rule::parse("search/*").is_err());
        assert!(Rule::parse("P0ST /x").is_err());
    }
}
