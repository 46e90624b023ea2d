//! Credentialed tools (DESIGN §8): agents call third-party APIs through
//! the gateway with their Switchyard key; the gateway fixes the
//! destination from configuration ([`path`]), classifies the call read or
//! write ([`classify`]), holds writes for a person's approval
//! ([`crate::approvals`]), injects the credential only then
//! ([`crate::providers::client`]), and audits everything
//! ([`crate::audit`]).

pub mod classify;
pub mod path;
pub mod proxy;
pub mod usage;

use std::collections::HashMap;
use std::sync::Arc;

use http::{HeaderName, HeaderValue};

use crate::config::tools::ToolConfig;
use crate::config::{Config, Env};
use crate::providers::Secret;

/// Whether a request may reach a tool or MCP server in `jurisdiction`:
/// `x-switchyard-jurisdiction` and the key's list, as for model calls; a
/// tool that names no jurisdiction is refused to a request limited to some.
pub fn jurisdiction_allows(
    headers: &http::HeaderMap,
    caller: &crate::auth::Caller,
    name: &str,
    jurisdiction: Option<&str>,
) -> Result<(), crate::error::GatewayError> {
    let key = caller.key.as_ref().and_then(|k| k.jurisdictions.as_deref());
    let c = crate::pipeline::constraints(headers, key)?;
    match (c.jurisdictions, jurisdiction) {
        (None, _) => Ok(()),
        (Some(allowed), Some(j)) if allowed.iter().any(|a| a == j) => Ok(()),
        (Some(allowed), j) => Err(crate::error::GatewayError::Forbidden(format!(
            "`{name}` is {}; this request may only reach {}",
            j.map_or_else(
                || "in no declared jurisdiction".to_owned(),
                |j| format!("in jurisdiction `{j}`")
            ),
            if allowed.is_empty() {
                "none".to_owned()
            } else {
                allowed.join(", ")
            }
        ))),
    }
}

/// A tool ready to take calls: its configuration and its credential.
#[derive(Debug)]
pub struct Tool {
    pub config: ToolConfig,
    /// The header that carries the credential upstream, built once.
    pub auth: Option<(HeaderName, HeaderValue)>,
    secret: Option<Secret>,
}

/// Every configured tool, by name.
#[derive(Debug, Default)]
pub struct Tools {
    by_name: HashMap<String, Arc<Tool>>,
}

impl Tools {
    /// Reads each tool's credential from the environment snapshot.
    pub fn new(config: &Config, env: &Env) -> Tools {
        let mut by_name = HashMap::new();
        for t in &config.tools {
            let secret = t
                .auth
                .as_ref()
                .and_then(|a| env.get(&a.value_env))
                .map(|v| Secret::new(v.to_owned()));
            let auth = match (&t.auth, &secret) {
                (Some(a), Some(s)) => {
                    let name = HeaderName::from_bytes(a.header.as_bytes()).ok();
                    let value = HeaderValue::from_str(&format!("{}{}", a.prefix, s.expose()))
                        .ok()
                        .map(|mut v| {
                            v.set_sensitive(true);
                            v
                        });
                    name.zip(value)
                }
                _ => None,
            };
            by_name.insert(
                t.name.clone(),
                Arc::new(Tool {
                    config: t.clone(),
                    auth,
                    secret,
                }),
            );
        }
        Tools { by_name }
    }

    pub fn get(&self, name: &str) -> Option<&Arc<Tool>> {
        self.by_name.get(name)
    }

    /// Every tool credential, to scrub from what upstreams send back.
    pub fn secrets(&self) -> Vec<String> {
        self.by_name
            .values()
            .filter_map(|t| t.secret.as_ref().map(|s| s.expose().to_owned()))
            .filter(|s| s.len() >= 8)
            .collect()
    }
}
