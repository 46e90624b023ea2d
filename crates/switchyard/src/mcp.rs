//! The MCP gateway (DESIGN §8): `POST /mcp` for agents, federating the
//! configured `[[mcp_servers]]` as `{server}__{tool}`, each call
//! classified, writes held for approval, tool definitions pinned.
//!
//! The protocol (both eras: the session-based versions up to 2025-11-25
//! and the session-less 2026-07-28) is rmcp's; around it: [`http`] (what
//! rmcp does not do at the HTTP layer: refusing batches, binding a session
//! to the key that opened it), [`handler`] (`tools/list`, `tools/call`),
//! [`call`] (one call: class, rate limit, [`hold`], upstream, audit),
//! [`upstream`] (the connections and lists), [`pins`] and [`seal`].

pub mod call;
pub mod handler;
pub mod hold;
pub mod http;
pub mod pins;
pub mod seal;
pub mod upstream;

use std::collections::HashMap;
use std::sync::Arc;

use upstream::Upstream;

use crate::config::{Config, Env};

/// Every configured upstream MCP server, by name, in configuration order.
#[derive(Debug, Default)]
pub struct Servers {
    list: Vec<Arc<Upstream>>,
    by_name: HashMap<String, Arc<Upstream>>,
}

impl Servers {
    pub fn new(config: &Config, env: &Env) -> anyhow::Result<Servers> {
        let mut s = Servers::default();
        for m in &config.mcp_servers {
            let up = Arc::new(Upstream::new(m.clone(), env)?);
            s.by_name.insert(m.name.clone(), up.clone());
            s.list.push(up);
        }
        Ok(s)
    }

    pub fn iter(&self) -> impl Iterator<Item = &Arc<Upstream>> {
        self.list.iter()
    }

    pub fn get(&self, name: &str) -> Option<&Arc<Upstream>> {
        self.by_name.get(name)
    }

    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    /// Every upstream credential, to keep out of what agents are sent.
    pub fn secrets(&self) -> Vec<String> {
        self.list
            .iter()
            .filter_map(|u| u.secret().map(str::to_owned))
            .filter(|s| s.len() >= 8)
            .collect()
    }
}

/// `{server}__{tool}` → (server, tool). Server names never hold `__`.
pub fn split(name: &str) -> Option<(&str, &str)> {
    name.split_once("__")
        .filter(|(s, t)| !s.is_empty() && !t.is_empty())
}

/// The name a tool of `server` has on the gateway.
pub fn federated(server: &str, tool: &str) -> String {
    format!("{server}__{tool}")
}

/// The MCP gateway's state: the upstreams, the request-state key, and
/// which key opened each session.
#[derive(Debug)]
pub struct Mcp {
    /// From the configuration: rebuilt by a reload.
    pub servers: Servers,
    /// Kept across reloads: the request-state key and the client sessions.
    pub sealer: Arc<seal::Sealer>,
    pub sessions: Arc<http::Bindings>,
}

impl Mcp {
    pub async fn new(
        config: &Config,
        env: &Env,
        storage: &crate::storage::Storage,
    ) -> anyhow::Result<Mcp> {
        Ok(Mcp {
            servers: Servers::new(config, env)?,
            sealer: Arc::new(seal::Sealer::load(storage).await?),
            sessions: Default::default(),
        })
    }

    /// The same sessions and key, with the servers `config` lists.
    pub fn reloaded(&self, config: &Config, env: &Env) -> anyhow::Result<Mcp> {
        Ok(Mcp {
            servers: Servers::new(config, env)?,
            sealer: self.sealer.clone(),
            sessions: self.sessions.clone(),
        })
    }

    /// Every tool credential (HTTP tools' and MCP servers'), to scrub.
    pub fn secrets(&self) -> Vec<String> {
        self.servers.secrets()
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn federated_names_split_at_the_first_double_underscore() {
        assert_eq!(
            super::split("jira__create_issue"),
            Some(("jira", "create_issue"))
        );
        assert_eq!(super::split("jira__a__b"), Some(("jira", "a__b")));
        assert_eq!(super::split("jira"), None);
        assert_eq!(super::split("__x"), None);
        assert_eq!(super::split("x__"), None);
    }
}
