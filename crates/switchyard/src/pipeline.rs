//! The journey of one model call, one stage per file, in the order a call
//! meets them:
//!
//! 1. [`run`]: the call runs in a tracked task of its own, raced against
//!    its deadline, its caller leaving and shutdown; a failure anywhere
//!    ends there (record closed, permit released, error in the caller's
//!    dialect).
//! 2. [`admit`]: a stored [`conversation`] the call continues put into its
//!    input, the body decoded in the caller's dialect
//!    ([`crate::dialect`]), the `Idempotency-Key` claimed
//!    ([`idempotency`]), policy applied (the caller's header [`options`],
//!    model scope, jurisdictions, rate limits, budget), the plan made and
//!    the record opened before anything goes upstream; a [`cached`] answer
//!    short-cuts the rest.
//! 3. [`attempts`]: each target in turn, until one answers or an error
//!    must not fail over.
//! 4. [`answer`]: the upstream's answer read, bounded, and put in the
//!    caller's dialect; a stream up to its first event.
//! 5. [`deliver`]: the answer handed over: priced, cached, resolved for
//!    idempotent retries, kept in its conversation; a stream registered
//!    and given to its [`pump`].
//! 6. [`finish`]: the record closed with usage and cost, the permit
//!    settled, metrics and the [`trace`].
//!
//! [`embeddings`] is the same journey without streams; [`tokens`] counts a
//! request's tokens without making it; [`compact`] summarises a
//! conversation through the journey itself. Nothing in here
//! matches on a dialect: what differs per dialect is [`crate::dialect`]'s.

mod admit;
mod answer;
mod attempts;
mod cached;
mod compact;
mod conversation;
mod ctx;
mod deliver;
mod embeddings;
mod finish;
mod idempotency;
mod options;
mod pump;
mod run;
mod tokens;
mod trace;

use std::sync::Arc;

use axum::response::Response;
use bytes::Bytes;
use http::request::Parts;

pub use answer::read_body;
pub(crate) use attempts::propagate as propagate_trace;
pub use compact::compact;
pub(crate) use ctx::caller;
pub use ctx::{ATTEMPTS, CACHE, COST, Ctx, MODEL, PROVIDER, REQUEST_ID, unix_now};
pub use embeddings::embeddings;
pub use finish::cost;
pub use options::{constraints, metadata};
pub use pump::sse_response;
pub use run::in_own_task;
pub use tokens::{count_tokens, input_tokens};

use crate::dialect::Dialect;
use crate::gateway::Gateway;

/// A chat call in any caller dialect (`POST /v1/chat/completions`,
/// `POST /v1/messages`).
///
/// The call runs in a tracked task of its own, not in the handler: when a
/// caller goes away, hyper drops the handler's future, and a call cut at an
/// arbitrary await would leave its budget hold, its record and its
/// idempotency claim unsettled. In its own task it finishes (the answer is
/// recorded and billed once, and a retry with the same Idempotency-Key
/// attaches to it) or, with `streams.continue_on_disconnect` off, stops
/// and settles as `client_gone`.
pub async fn chat(gw: Arc<Gateway>, dialect: Dialect, parts: Parts, body: Bytes) -> Response {
    let task_gw = gw.clone();
    in_own_task(&gw, dialect, move |left| {
        run::run(task_gw, dialect, parts, body, left)
    })
    .await
}
