#![allow(unreachable_pub, dead_code, clippy::unwrap_used, clippy::expect_used)]

//! The one integration-test binary: a real gateway over real sockets, in
//! front of mock upstreams that speak each provider's wire format.

mod azure;
mod bedrock;
mod binary;
mod cache;
mod clouds;
mod cluster;
mod codex;
mod conversations;
mod core;
mod dashboard;
mod dialect_policy;
mod durability;
mod errors;
mod fixtures;
mod fuzz;
mod gemini_api;
mod handover;
mod harness;
mod hostile;
mod keys;
mod logs;
mod mcp;
mod mock;
mod openapi;
mod redis_cluster;
mod redis_outage;
mod reload;
mod responses;
mod routing;
mod scale;
mod sdk;
mod secrets;
mod streams;
mod surface;
mod tools;
mod vertex;
