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
    pub admin_token: crate::admin::AdminToken,
    pub health: crate::routing::health::Health,
    pub prices: crate::pricing::PriceTable,
}

impl Gateway {
    pub async fn new(config: Config, env: &Env) -> anyhow::Result<Arc<Gateway>> {
        let providers = Providers::new(&config, env);
        let client = Client::new()?;
        let storage = Storage::connect(&config.storage.url).await?;
        let admin_token = crate::admin::AdminToken::resolve(&config, env)?;
        let health = crate::routing::health::Health::new(config.circuit.clone());
        let prices = crate::pricing::PriceTable::load(&config.pricing);
        Ok(Arc::new(Gateway {
            health,
            prices,
            config: Arc::new(config),
            providers,
            client,
            storage,
            tasks: TaskTracker::new(),
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
