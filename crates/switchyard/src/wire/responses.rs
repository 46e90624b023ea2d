//! The OpenAI Responses API (`/v1/responses`), as callers speak it and as
//! OpenAI serves it natively.
//!
//! Vendor constraints worth knowing before touching this code (field-level
//! notes were checked against openai-python 3.57 and live captures):
//! - `input` is a string or a list of items; a message item may omit
//!   `type`, an assistant message its id and status. Tool calls and their
//!   outputs are items of their own, matched by `call_id`.
//! - Tools are flat (`{type, name, parameters, strict}`), `custom` tools
//!   take raw text under a grammar, and a `namespace` groups tools whose
//!   calls carry `namespace`. Other targets get a freeform tool as a
//!   function of one string argument `input`, and a namespaced one as
//!   `{namespace}__{name}`; the answer turns both back.
//! - Strict clients validate every Response object: every member present,
//!   `null` where unset. The stream helper of openai-python needs
//!   `response.created` first, `output_item.added` before an item's events,
//!   `content_part.added` before text deltas, and `response.completed` to
//!   build its final response; Codex fails without a terminal event.
//! - A mid-stream failure is an `error` event whose error is nested
//!   (`{"type":"error","error":{...}}`), then `response.failed`.
//! - Reasoning state of other providers travels in `encrypted_content`,
//!   sealed by [`reasoning`].

pub mod compaction;
pub mod echo;
pub mod reasoning;
pub mod relay;
pub mod request;
pub mod response;
pub mod stream;
pub mod types;

#[cfg(test)]
mod props;

pub use echo::Echo;
pub use relay::Relay;
pub use request::{decode_request, rewrite_request};
pub use response::{encode_response, peek_usage};
pub use stream::StreamEncoder;
