//! Reloading the configuration without a restart: `SIGHUP`, or `POST
//! /admin/v1/config/reload`.
//!
//! A reload reads the file again and validates it whole; a file with any
//! fault changes nothing. A good one becomes a new generation of the
//! gateway ([`Gateway::reloaded`]: new providers, routes, prices, tools,
//! MCP servers and per-call settings over the same keys, limits, budgets,
//! cache, streams and records) with routers of its own, swapped in at once.
//! Every request looks the routers up as it arrives, so the next one sees
//! the new generation, while each call already running keeps the gateway it
//! started on to its end (a stream included). Settings that only a restart
//! can apply (listeners, storage, Redis, the sizes of shared state) are kept
//! as they were and named in the answer and the log.

use std::sync::{Arc, Weak};

use arc_swap::ArcSwap;
use axum::Router;
use serde::Serialize;

use crate::config::{Config, ConfigError, Env};
use crate::gateway::Gateway;

/// One generation: its gateway and the routers built on it.
pub struct Live {
    pub gateway: Arc<Gateway>,
    pub api: Router,
    pub admin: Router,
    pub generation: u64,
}

pub struct Reloader {
    live: ArcSwap<Live>,
    env: Env,
    /// The MCP service lives across generations: its sessions are the
    /// clients' (its handlers reach the newest gateway through
    /// [`Gateway::current`]).
    mcp: crate::mcp::http::Service,
    /// One reload at a time.
    busy: tokio::sync::Mutex<()>,
}

/// What a reload did.
#[derive(Debug, Serialize, schemars::JsonSchema)]
#[schemars(rename = "Reload")]
pub struct Outcome {
    /// The file read.
    pub source: String,
    /// Counts up from 1 (the configuration the process started with).
    pub generation: u64,
    /// Settings the file changes that only a restart applies; they keep
    /// their running values (shown by `GET /admin/v1/config`).
    pub restart_required: Vec<String>,
    pub providers: usize,
    pub routes: usize,
    pub tools: usize,
    pub mcp_servers: usize,
}

/// Why a reload changed nothing.
#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    /// The file is not a valid configuration (it names the key at fault).
    #[error("{0}")]
    Invalid(ConfigError),
    /// Valid, but what it describes could not be built.
    #[error("{0}")]
    Failed(anyhow::Error),
    /// Started without a file: there is nothing to read again.
    #[error(
        "the gateway was started without a configuration file (serve --config <file>); there is nothing to read again"
    )]
    NoFile,
}

impl Reloader {
    /// The first generation; the gateway learns where its reloader is.
    pub fn new(gateway: Arc<Gateway>, env: Env) -> Arc<Reloader> {
        let mcp = crate::mcp::http::service(gateway.clone());
        let live = Live::new(gateway.clone(), &mcp, 1);
        let reloader = Arc::new(Reloader {
            live: ArcSwap::from_pointee(live),
            env,
            mcp,
            busy: tokio::sync::Mutex::new(()),
        });
        // A weak link: generations are dropped once their last call ends.
        let _ = gateway.reloader.set(Arc::downgrade(&reloader));
        reloader
    }

    /// The newest generation.
    pub fn live(&self) -> arc_swap::Guard<Arc<Live>> {
        self.live.load()
    }

    /// Reads the configuration file again and swaps it in, or changes
    /// nothing and says why.
    pub async fn reload(&self) -> Result<Outcome, ReloadError> {
        let _one = self.busy.lock().await;
        let old = self.live.load_full();
        let running = &old.gateway.config;
        let path = running.source.as_ref().ok_or(ReloadError::NoFile)?;
        let mut config = Config::load(path, &self.env).map_err(ReloadError::Invalid)?;
        let restart_required = keep_restart_only(running, &mut config);
        let next = old
            .gateway
            .reloaded(config, &self.env)
            .map_err(ReloadError::Failed)?;
        let gateway = Arc::new(next);
        let outcome = Outcome {
            source: path.display().to_string(),
            generation: old.generation + 1,
            restart_required,
            providers: gateway.config.providers.len(),
            routes: gateway.config.routes.len(),
            tools: gateway.config.tools.len(),
            mcp_servers: gateway.config.mcp_servers.len(),
        };
        self.live
            .store(Arc::new(Live::new(gateway, &self.mcp, outcome.generation)));
        tracing::info!(
            generation = outcome.generation,
            providers = outcome.providers,
            routes = outcome.routes,
            restart_required = ?outcome.restart_required,
            "Configuration reloaded"
        );
        if !outcome.restart_required.is_empty() {
            tracing::warn!(
                settings = %outcome.restart_required.join(", "),
                "These settings changed in the file but apply only after a restart"
            );
        }
        Ok(outcome)
    }
}

impl Live {
    fn new(gateway: Arc<Gateway>, mcp: &crate::mcp::http::Service, generation: u64) -> Live {
        Live {
            api: crate::api::router(gateway.clone(), mcp.clone()),
            admin: crate::admin::router(gateway.clone()),
            gateway,
            generation,
        }
    }
}

impl Gateway {
    /// The newest generation of this gateway (itself when there is no
    /// reloader, or it is gone).
    pub fn current(self: &Arc<Self>) -> Arc<Gateway> {
        self.reloader
            .get()
            .and_then(Weak::upgrade)
            .map(|r| r.live().gateway.clone())
            .unwrap_or_else(|| self.clone())
    }

    /// The reloader, while the process serves.
    pub fn reloader(&self) -> Option<Arc<Reloader>> {
        self.reloader.get().and_then(Weak::upgrade)
    }
}

/// Puts back into `next` every setting a running process cannot change,
/// and names those the file changed.
pub fn keep_restart_only(running: &Config, next: &mut Config) -> Vec<String> {
    let mut changed = Vec::new();
    macro_rules! keep {
        ($($name:literal => $($field:ident).+;)*) => {$(
            if differs(&running.$($field).+, &next.$($field).+) {
                changed.push($name.to_owned());
                next.$($field).+ = running.$($field).+.clone();
            }
        )*};
    }
    keep! {
        "server.listen" => server.listen;
        "server.admin_listen" => server.admin_listen;
        "server.header_read_timeout_ms" => server.header_read_timeout;
        "server.write_timeout_ms" => server.write_timeout;
        "server.shutdown_grace_ms" => server.shutdown_grace;
        "server.max_concurrent" => server.max_concurrent;
        "server.queue_timeout_ms" => server.queue_timeout;
        "server.log_format" => server.log_format;
        "storage.url" => storage.url;
        "redis" => redis;
        "auth.admin_token_env" => auth.admin_token_env;
        // Also decides the MCP service's Host check (made once, for every
        // generation) and whether the listener may be open at all.
        "auth.require_keys" => auth.require_keys;
        "cache.max_entries" => cache.max_entries;
        "cache.max_bytes" => cache.max_bytes;
        "streams" => streams;
        "logs.retain_days" => logs.retain_days;
        "logs.body_retain_days" => logs.body_retain_days;
        "logs.spool_dir" => logs.spool_dir;
        "logs.spool_max_bytes" => logs.spool_max_bytes;
        "logs.on_spool_full" => logs.on_spool_full;
        "logs.backlog_bytes" => logs.backlog_bytes;
        "circuit" => circuit;
    }
    changed
}

/// Whether two settings differ, compared as they serialize (the config
/// types do not all implement `PartialEq`).
fn differs<T: Serialize>(a: &T, b: &T) -> bool {
    serde_json::to_value(a).ok() != serde_json::to_value(b).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Config {
        Config::parse(text, None, &Env::default()).unwrap()
    }

    #[test]
    fn restart_only_settings_keep_their_running_values_and_are_named() {
        let running = parse(
            "[server]\nlisten = \"127.0.0.1:9000\"\nrequest_timeout_ms = 1000\n[logs]\nmode = \"full\"\n",
        );
        let mut next = parse(
            "[server]\nlisten = \"127.0.0.1:9001\"\nrequest_timeout_ms = 2000\n[logs]\nmode = \"metadata\"\nretain_days = 60\n",
        );
        let changed = keep_restart_only(&running, &mut next);
        assert_eq!(changed, ["server.listen", "logs.retain_days"]);
        assert_eq!(next.server.listen, running.server.listen);
        assert_eq!(next.logs.retain_days, running.logs.retain_days);
        // What a reload may change, it changes.
        assert_eq!(next.server.request_timeout.as_millis(), 2000);
        assert_eq!(next.logs.mode, crate::config::LogMode::Metadata);
        let mut same = parse("[server]\nlisten = \"127.0.0.1:9000\"\n");
        assert!(keep_restart_only(&running, &mut same).is_empty());
    }
}
