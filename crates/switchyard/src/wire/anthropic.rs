//! Anthropic Messages (`/v1/messages`).
//!
//! Vendor constraints worth knowing before touching this code:
//! - `max_tokens` is required upstream; the provider's `default_max_tokens`
//!   (4096 unless configured) fills it when an OpenAI-dialect caller sent none.
//! - There is no `system` role inside `messages`: system text is top level.
//! - Tool results are `tool_result` blocks inside a *user* turn, and must come
//!   first in it; the canonical model keeps them as `Role::Tool` messages.
//! - `input_tokens` excludes cache reads and cache writes; the canonical
//!   [`Usage`](crate::chat::Usage) counts them all as input.
//! - Streams are named events with no `[DONE]`; `message_delta` usage is
//!   cumulative; a failure after the 200 is `event: error`
//!   (`overloaded_error` means HTTP 529).
//! - Thinking blocks sent back in history need the signature the provider
//!   gave them; reasoning from other providers (unsigned) is not sent.

pub mod error;
pub mod request;
pub mod response;
pub mod stream;
pub mod types;

pub use error::{decode_error, encode_error, error_type_for_status};
pub use request::{decode_request, encode_request, rewrite_request};
pub use response::{decode_response, encode_response};
pub use stream::{StreamDecoder, StreamEncoder};
