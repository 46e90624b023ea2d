//! The running gateway's shared state: configuration, providers, the
//! upstream client, storage, and the tracker for work that must outlive the
//! request that started it. Built once at start, shared by every handler.

use std::sync::Arc;

use tokio_util::task::TaskTracker;

use crate::config::{Config, Env};
use crate::providers::{Providers, client::Client};
use crate::storage::Storage;

pub struct Gateway {
    /// What a reload replaces: the configuration and what is built from it
    /// (providers, prices, tools, MCP servers). A call keeps the gateway it
    /// started on, so it ends on the configuration it began with.
    pub config: Arc<Config>,
    pub providers: Providers,
    pub prices: crate::pricing::PriceTable,
    /// Credentialed tools, with their credentials.
    pub tools: crate::tools::Tools,
    /// The MCP gateway: upstream servers (reloaded), sessions and the
    /// request-state key (kept).
    pub mcp: crate::mcp::Mcp,
    /// Everything below is state, shared by every generation of the
    /// gateway a reload makes.
    pub client: Client,
    pub storage: Storage,
    /// Work that must finish even if its request's client goes away
    /// (stream pumps, log writes). Shutdown waits for it.
    pub tasks: TaskTracker,
    /// Cancelled when shutdown's grace period is over: calls and streams
    /// still running end now, in order (a terminal error, a record, a
    /// settled permit), before the process goes.
    pub stopping: tokio_util::sync::CancellationToken,
    pub admin_token: Arc<crate::admin::AdminToken>,
    pub health: Arc<crate::routing::health::Health>,
    pub keys: Arc<crate::keys::Keys>,
    pub limiter: Arc<crate::limits::Limiter>,
    pub budget: Arc<crate::budget::Ledger>,
    pub redis: Option<crate::kv::Kv>,
    pub recorder: Arc<crate::log_store::Recorder>,
    pub metrics: Arc<crate::metrics::Metrics>,
    pub tracer: Arc<crate::telemetry::Tracer>,
    pub cache: Arc<crate::cache::Cache>,
    pub streams: Arc<crate::stream::registry::Streams>,
    pub sessions: Arc<crate::admin::dashboard::Sessions>,
    /// Responses stored in the last minutes (the rest is in storage).
    pub conversations: Arc<crate::conversations::Recent>,
    /// Held writes and their waiters.
    pub approvals: Arc<crate::approvals::Approvals>,
    /// Tool calls' audit records, appended in groups.
    pub audit: Arc<crate::audit::Group>,
    /// Taken by the two busy writers of the database (the log writer, a
    /// transaction at a time, and the audit group) so that they queue here
    /// in turn rather than in SQLite's busy handler, which sleeps in steps
    /// of up to 100 ms before it tries the lock again.
    pub db_writes: Arc<tokio::sync::Mutex<()>>,
    /// The bound on calls in flight (`[server] max_concurrent`).
    pub inflight: Arc<crate::inflight::InFlight>,
    /// How the admin API reaches the reloader (set once serving).
    pub reloader: Arc<std::sync::OnceLock<std::sync::Weak<crate::server::reload::Reloader>>>,
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
            Some(r) => Some(crate::kv::connect(r).await?),
            None => None,
        };
        let instance = format!("inst_{}", uuid::Uuid::now_v7().simple());
        let spool = open_spool(&config, &instance)?;
        let recorder = crate::log_store::Recorder::new(
            spool,
            instance,
            config.logs.spool_max_bytes,
            config.logs.on_spool_full,
            config.logs.backlog_bytes,
            match &storage {
                Storage::Sqlite(p) => Some(crate::log_store::writer::Lite::open(
                    p,
                    &config.storage.url,
                )?),
                Storage::Postgres(_) => None,
            },
        );
        let cache = match &redis {
            Some(c) => crate::cache::Cache::redis(
                c.clone(),
                config.cache.max_entries,
                config.cache.max_bytes,
            ),
            None => crate::cache::Cache::memory(config.cache.max_entries, config.cache.max_bytes),
        };
        // `[redis] on_unavailable = "local"`: limits and budgets counted in
        // this process while Redis cannot be reached.
        let fallback = config
            .redis
            .as_ref()
            .is_some_and(|r| r.on_unavailable == crate::config::OnUnavailable::Local);
        let limiter = match &redis {
            Some(c) => crate::limits::Limiter::redis(c.clone(), fallback),
            None => crate::limits::Limiter::memory(),
        };
        let budget = crate::budget::Ledger::new(storage.clone(), redis.clone(), fallback);
        let mcp = crate::mcp::Mcp::new(&config, env, &storage).await?;
        let db_writes = Arc::new(tokio::sync::Mutex::new(()));
        Ok(Arc::new(Gateway {
            budget: Arc::new(budget),
            health: Arc::new(health),
            prices,
            keys: Arc::new(keys),
            limiter: Arc::new(limiter),
            redis,
            recorder: Arc::new(recorder),
            cache: Arc::new(cache),
            streams: crate::stream::registry::Streams::new(crate::stream::registry::Retention {
                undelivered: config.streams.retain,
                delivered: config.streams.delivered_retain,
                max_bytes: usize::try_from(config.streams.max_retained_bytes).unwrap_or(usize::MAX),
            }),
            sessions: Default::default(),
            conversations: Default::default(),
            tools: crate::tools::Tools::new(&config, env),
            approvals: Default::default(),
            audit: Arc::new(crate::audit::Group::new(db_writes.clone())),
            db_writes,
            mcp,
            inflight: Arc::new(crate::inflight::InFlight::new(&config.server)),
            metrics: Default::default(),
            tracer: Arc::new(crate::telemetry::Tracer::from_env(env, client.clone())),
            config: Arc::new(config),
            providers,
            client,
            storage,
            tasks: TaskTracker::new(),
            stopping: Default::default(),
            admin_token: Arc::new(admin_token),
            reloader: Default::default(),
        }))
    }

    /// The next generation: `config`'s providers, routes, prices, tools,
    /// MCP servers and per-call settings, over this gateway's state (keys,
    /// limits, budgets, cache, streams, records, sessions, circuits). The
    /// settings only a restart can change are kept as they are; the caller
    /// has named them (see [`crate::server::reload::restart_only`]).
    pub fn reloaded(&self, config: Config, env: &Env) -> anyhow::Result<Gateway> {
        Ok(Gateway {
            providers: Providers::new(&config, env),
            prices: crate::pricing::PriceTable::load(&config.pricing),
            tools: crate::tools::Tools::new(&config, env),
            mcp: self.mcp.reloaded(&config, env)?,
            config: Arc::new(config),
            client: self.client.clone(),
            storage: self.storage.clone(),
            tasks: self.tasks.clone(),
            stopping: self.stopping.clone(),
            admin_token: self.admin_token.clone(),
            health: self.health.clone(),
            keys: self.keys.clone(),
            limiter: self.limiter.clone(),
            budget: self.budget.clone(),
            redis: self.redis.clone(),
            recorder: self.recorder.clone(),
            metrics: self.metrics.clone(),
            tracer: self.tracer.clone(),
            cache: self.cache.clone(),
            streams: self.streams.clone(),
            sessions: self.sessions.clone(),
            conversations: self.conversations.clone(),
            approvals: self.approvals.clone(),
            audit: self.audit.clone(),
            db_writes: self.db_writes.clone(),
            inflight: self.inflight.clone(),
            reloader: self.reloader.clone(),
        })
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
    // Boxed: a call's future is kilobytes, and the task moves what it is
    // given several times on its way in (spawn, the task cell, its stages).
    let work = Box::pin(work(left));
    tasks.spawn(async move {
        let _ = tx.send(work.await);
    });
    rx.await.ok()
}
