//! The running gateway's shared state: configuration, providers, the
//! upstream client, storage, and the tracker for work that must outlive the
//! request that started it. Built once at start, shared by every handler.

use std::sync::Arc;

use tokio_util::task::TaskTracker;

use crate::config::{Config, Env};
use crate::providers::{Providers, client::Client};
use crate::storage::Storage;

pub struct Gateway {
    pub config: Arc<Config>,
    pub providers: Providers,
    pub client: Client,
    pub storage: Storage,
    /// Work that must finish even if its request's client goes away
    /// (stream pumps, log writes). Shutdown waits for it.
    pub tasks: TaskTracker,
    /// Cancelled when shutdown's grace period is over: calls and streams
    /// still running end now, in order (a terminal error, a record, a
    /// settled permit), before the process goes.
    pub stopping: tokio_util::sync::CancellationToken,
    pub admin_token: crate::admin::AdminToken,
    pub health: crate::routing::health::Health,
    pub prices: crate::pricing::PriceTable,
    pub keys: crate::keys::Keys,
    pub limiter: crate::limits::Limiter,
    pub budget: crate::budget::Ledger,
    pub redis: Option<redis::aio::ConnectionManager>,
    pub recorder: crate::log_store::Recorder,
    pub metrics: crate::metrics::Metrics,
    pub tracer: crate::telemetry::Tracer,
    pub cache: crate::cache::Cache,
    pub streams: Arc<crate::stream::registry::Streams>,
    pub sessions: crate::admin::dashboard::Sessions,
    /// Responses stored in the last minutes (the rest is in storage).
    pub conversations: crate::conversations::Recent,
    /// Credentialed tools, with their credentials.
    pub tools: crate::tools::Tools,
    /// Held writes and their waiters.
    pub approvals: crate::approvals::Approvals,
    /// The MCP gateway: upstream servers, sessions, the request-state key.
    pub mcp: crate::mcp::Mcp,
    /// The bound on calls in flight (`[server] max_concurrent`).
    pub inflight: crate::inflight::InFlight,
}

impl Gateway {
    pub async fn new(config: Config, env: &Env) -> anyhow::Result<Arc<Gateway>> {
        let providers = Providers::new(&config, env);
        let client = Client::new()?;
        let storage = Storage::connect(&config.storage.url).await?;
        storage.migrate().await?;
        let admin_token = crate::admin::AdminToken::resolve(&config, env)?;
        let health = crate::routing::health::Health::new(config.circuit.clone());
        let prices = crate::pricing::PriceTable::load(&config.pricing);
        let keys = crate::keys::Keys::load(storage.clone()).await?;
        let redis = match &config.redis {
            Some(r) => Some(connect_redis(&r.url).await?),
            None => None,
        };
        let instance = format!("inst_{}", uuid::Uuid::now_v7().simple());
        let spool = open_spool(&config, &instance)?;
        let recorder = crate::log_store::Recorder::new(
            spool,
            instance,
            config.logs.spool_max_bytes,
            config.logs.on_spool_full,
        );
        let cache = match &redis {
            Some(c) => crate::cache::Cache::redis(
                c.clone(),
                config.cache.max_entries,
                config.cache.max_bytes,
            ),
            None => crate::cache::Cache::memory(config.cache.max_entries, config.cache.max_bytes),
        };
        let limiter = match &redis {
            Some(c) => crate::limits::Limiter::redis(c.clone()),
            None => crate::limits::Limiter::memory(),
        };
        let budget = crate::budget::Ledger::new(storage.clone(), redis.clone());
        let mcp = crate::mcp::Mcp::new(&config, env, &storage).await?;
        Ok(Arc::new(Gateway {
            budget,
            health,
            prices,
            keys,
            limiter,
            redis,
            recorder,
            cache,
            streams: crate::stream::registry::Streams::new(crate::stream::registry::Retention {
                undelivered: config.streams.retain,
                delivered: config.streams.delivered_retain,
                max_bytes: usize::try_from(config.streams.max_retained_bytes).unwrap_or(usize::MAX),
            }),
            sessions: Default::default(),
            conversations: Default::default(),
            tools: crate::tools::Tools::new(&config, env),
            approvals: Default::default(),
            mcp,
            inflight: crate::inflight::InFlight::new(&config.server),
            metrics: crate::metrics::Metrics::default(),
            tracer: crate::telemetry::Tracer::from_env(env, client.clone()),
            config: Arc::new(config),
            providers,
            client,
            storage,
            tasks: TaskTracker::new(),
            stopping: Default::default(),
            admin_token,
        }))
    }

    /// Spawns work that must run to completion; shutdown waits for it.
    pub fn spawn<F>(&self, fut: F)
    where
        F: std::future::Future<Output = ()> + Send + 'static,
    {
        self.tasks.spawn(fut);
    }
}

/// The log spool: the configured directory, or the database's default;
/// when another process on this machine holds the default (replicas
/// sharing a database and a working directory), the next free one of
/// `{default}-2` … `-8` (a restart may take over another's: its records
/// belong to the same database, and the writer settles them).
fn open_spool(config: &Config, instance: &str) -> anyhow::Result<crate::log_store::spool::Spool> {
    use crate::log_store::spool::{Spool, SpoolError};
    if let Some(dir) = &config.logs.spool_dir {
        return Ok(Spool::open(dir, instance)?);
    }
    let first = config.storage.default_spool_dir();
    let mut last = None;
    for n in 1..=8 {
        let dir = if n == 1 {
            first.clone()
        } else {
            let mut name = first.as_os_str().to_owned();
            name.push(format!("-{n}"));
            std::path::PathBuf::from(name)
        };
        match Spool::open(&dir, instance) {
            Ok(s) => return Ok(s),
            Err(e @ SpoolError::Locked(_)) => last = Some(e),
            Err(e) => return Err(e.into()),
        }
    }
    Err(last.map_or_else(
        || anyhow::anyhow!("no spool directory"),
        anyhow::Error::from,
    ))
}

/// Runs `work` as a task of `tasks` and waits for what it returns; `None`
/// only if the task died without answering. `work` gets a token cancelled
/// when this future is dropped (its caller went away): it may stop, but
/// nothing is cut short under it.
pub async fn own_task<F, Fut, T>(tasks: &TaskTracker, work: F) -> Option<T>
where
    F: FnOnce(tokio_util::sync::CancellationToken) -> Fut,
    Fut: std::future::Future<Output = T> + Send + 'static,
    T: Send + 'static,
{
    let left = tokio_util::sync::CancellationToken::new();
    let _cancel_when_dropped = left.clone().drop_guard();
    let (tx, rx) = tokio::sync::oneshot::channel();
    let work = work(left);
    tasks.spawn(async move {
        let _ = tx.send(work.await);
    });
    rx.await.ok()
}

async fn connect_redis(url: &str) -> anyhow::Result<redis::aio::ConnectionManager> {
    let client = redis::Client::open(url)?;
    match tokio::time::timeout(
        std::time::Duration::from_secs(5),
        redis::aio::ConnectionManager::new(client),
    )
    .await
    {
        Ok(conn) => Ok(conn?),
        Err(_) => anyhow::bail!(
            "Redis at {} did not answer within 5s",
            crate::config::redact_url(url)
        ),
    }
}
