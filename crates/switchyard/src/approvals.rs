//! Held writes (DESIGN §8): a write to a tool that needs approval becomes
//! an approval request; a person approves or denies it (admin API,
//! dashboard); approved, it runs exactly once, with the body that was
//! approved; denied or expired, never.
//!
//! The database is the one truth, so replicas sharing it agree: a decision
//! is a conditional UPDATE of a pending, unexpired row (a second decision
//! finds nothing to change), and running an approved call is another
//! (`approved` → `executed` where the body's digest matches), which one
//! caller wins. A waiter on this process is woken at once by a decision
//! made here; a decision made on another replica is seen within
//! [`POLL`].

pub mod store;

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::storage::Storage;

/// How often a waiter looks for a decision made elsewhere.
pub const POLL: Duration = Duration::from_millis(200);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
#[schemars(rename = "ApprovalState")]
pub enum State {
    Pending,
    Approved,
    Denied,
    Expired,
    Executed,
}

impl State {
    pub fn as_str(self) -> &'static str {
        match self {
            State::Pending => "pending",
            State::Approved => "approved",
            State::Denied => "denied",
            State::Expired => "expired",
            State::Executed => "executed",
        }
    }

    pub fn parse(s: &str) -> Option<State> {
        Some(match s {
            "pending" => State::Pending,
            "approved" => State::Approved,
            "denied" => State::Denied,
            "expired" => State::Expired,
            "executed" => State::Executed,
            _ => return None,
        })
    }
}

/// One approval request.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct Approval {
    pub id: String,
    pub created_ms: i64,
    pub expires_ms: i64,
    pub state: State,
    /// `http` (a tool call) or `mcp` (an MCP tool call).
    pub kind: String,
    pub tool: String,
    pub method: Option<String>,
    pub path: Option<String>,
    /// What the call carries, for the person deciding (absent in log mode
    /// `none`: only its digest is kept).
    pub arguments: Option<String>,
    /// SHA-256 of the exact body, hex: what runs must match it.
    pub body_digest: String,
    pub key_id: Option<String>,
    pub tags: serde_json::Map<String, serde_json::Value>,
    pub request_id: String,
    pub decided_ms: Option<i64>,
    pub decided_by: Option<String>,
    pub reason: Option<String>,
    pub executed_ms: Option<i64>,
}

/// Why a decision was not taken.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecideError {
    #[error("no approval request with that id")]
    NotFound,
    #[error("the request was already {0}")]
    Closed(&'static str),
}

/// Why an approved call may not run.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClaimError {
    #[error("no approval request with that id for this call")]
    NotFound,
    #[error("the request is still waiting for a decision")]
    Pending,
    #[error("the request was denied")]
    Denied(Option<String>),
    #[error("the request expired before a decision")]
    Expired,
    #[error("the approved call has already run: an approval is used once")]
    Used,
    #[error("this body is not the one that was approved")]
    Mismatch,
}

/// The approval requests, and the waiters of this process.
#[derive(Debug, Default)]
pub struct Approvals {
    decided: tokio::sync::Notify,
}

impl Approvals {
    pub async fn create(&self, s: &Storage, a: &Approval) -> anyhow::Result<()> {
        store::insert(s, a).await
    }

    /// The request, its state as of now (a pending one past its expiry is
    /// expired, and stored so).
    pub async fn get(&self, s: &Storage, id: &str) -> anyhow::Result<Option<Approval>> {
        let Some(mut a) = store::get(s, id).await? else {
            return Ok(None);
        };
        if a.state == State::Pending && a.expires_ms <= crate::clock::unix_ms() {
            store::expire(s, id).await?;
            a.state = State::Expired;
        }
        Ok(Some(a))
    }

    pub async fn decide(
        &self,
        s: &Storage,
        id: &str,
        approve: bool,
        by: &str,
        reason: Option<&str>,
    ) -> anyhow::Result<Result<Approval, DecideError>> {
        let state = if approve {
            State::Approved
        } else {
            State::Denied
        };
        let changed = store::decide(s, id, state, by, reason).await?;
        let now = self.get(s, id).await?;
        if changed {
            self.decided.notify_waiters();
        }
        Ok(match (changed, now) {
            (true, Some(a)) => Ok(a),
            (_, None) => Err(DecideError::NotFound),
            (false, Some(a)) => Err(DecideError::Closed(a.state.as_str())),
        })
    }

    /// Waits until the request is decided or `deadline` passes; the state
    /// then.
    pub async fn wait(
        &self,
        s: &Storage,
        id: &str,
        deadline: tokio::time::Instant,
    ) -> anyhow::Result<State> {
        loop {
            let notified = self.decided.notified();
            let state = self.get(s, id).await?.map_or(State::Expired, |a| a.state);
            if state != State::Pending {
                return Ok(state);
            }
            let now = tokio::time::Instant::now();
            if now >= deadline {
                return Ok(State::Pending);
            }
            let nap = POLL.min(deadline - now);
            tokio::select! {
                () = notified => {}
                () = tokio::time::sleep(nap) => {}
            }
        }
    }

    /// Takes an approved request for running: `Ok` exactly once, for the
    /// body that was approved.
    pub async fn claim(
        &self,
        s: &Storage,
        id: &str,
        digest: &str,
    ) -> anyhow::Result<Result<Approval, ClaimError>> {
        if store::claim(s, id, digest).await? {
            return Ok(self.get(s, id).await?.ok_or(ClaimError::NotFound));
        }
        Ok(Err(match self.get(s, id).await? {
            None => ClaimError::NotFound,
            Some(a) => match a.state {
                State::Pending => ClaimError::Pending,
                State::Denied => ClaimError::Denied(a.reason),
                State::Expired => ClaimError::Expired,
                State::Executed => ClaimError::Used,
                State::Approved => ClaimError::Mismatch,
            },
        }))
    }

    pub async fn list(
        &self,
        s: &Storage,
        state: Option<State>,
        limit: i64,
    ) -> anyhow::Result<Vec<Approval>> {
        store::expire_due(s, crate::clock::unix_ms()).await?;
        store::list(s, state, limit).await
    }
}
