//! Switchyard: a self-hosted AI inference gateway.
//!
//! Modules in the order a request meets them:
//!
//! - [`config`]: `switchyard.toml` + environment → validated [`config::Config`].
//! - [`server`]: listeners, connections, graceful shutdown.
//! - [`api`]: the data plane, one file per surface (OpenAI, Anthropic,
//!   passthrough, health); [`admin`]: the operator's listener.
//! - [`auth`]: credentials → caller.
//! - [`pipeline`]: the journey of one request, as one readable function.
//! - [`wire`] and [`chat`]: the providers' wire formats and the canonical
//!   model between them; [`dialect`]: the one table of what differs per
//!   dialect, caller side and upstream side; pure, no IO.
//! - [`routing`]: `model` → the targets to try.
//! - [`providers`]: adapters (URL, auth, body, error meaning) and
//!   [`providers::client`], the one HTTP client that calls upstreams.
//! - [`stream`]: upstream SSE → caller SSE through a buffer the caller follows.
//! - [`storage`]: the SQLite or Postgres pool.
//! - [`error`]: every failure, rendered in the caller's dialect.
//! - [`gateway`]: the shared state handlers receive.

/// A map of the gateway's own bookkeeping (the record writer's sums,
/// metrics series, provider health), hashed by foldhash instead of std's
/// SipHash: these maps are hashed several times per call, where SipHash
/// cost about 16k instructions of a call's 270k. Its seed is random per
/// process, and its keys are bounded by configuration or by a batch.
pub type FastMap<K, V> = std::collections::HashMap<K, V, foldhash::fast::RandomState>;
/// A set of the gateway's own bookkeeping; see [`FastMap`].
pub type FastSet<T> = std::collections::HashSet<T, foldhash::fast::RandomState>;

pub mod admin;
pub mod api;
pub mod approvals;
pub mod audit;
pub mod auth;
pub mod budget;
pub mod cache;
pub mod chat;
pub mod clock;
pub mod config;
pub mod conversations;
pub mod dialect;
pub mod error;
pub mod gateway;
pub mod inflight;
pub mod keys;
pub mod kv;
pub mod limits;
pub mod log_store;
pub mod mcp;
pub mod metrics;
pub mod openapi;
pub mod pipeline;
pub mod policy;
pub mod pricing;
pub mod providers;
pub mod routing;
pub mod server;
pub mod storage;
pub mod stream;
pub mod telemetry;
pub mod tools;
pub mod wire;
