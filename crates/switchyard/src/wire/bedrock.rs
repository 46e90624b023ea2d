//! AWS Bedrock Converse (`/model/{modelId}/converse` and
//! `/converse-stream`), spoken to Bedrock upstreams: canonical requests
//! encoded as Converse bodies, Converse answers and stream events decoded.
//!
//! Vendor constraints worth knowing before touching this code:
//! - Roles alternate strictly (user, assistant, user, ...) and start with
//!   the user; tool results are `toolResult` blocks in a user turn, all the
//!   results of one round in one turn.
//! - Streams are not SSE but `application/vnd.amazon.eventstream` binary
//!   frames (see [`eventstream`]), each carrying one JSON event named by its
//!   `:event-type` header; an exception frame can arrive inside a 200.
//! - `inputTokens` excludes cache reads and writes.

pub mod embeddings;
pub mod eventstream;
pub mod request;
pub mod response;
pub mod stream;

pub use request::encode_request;
pub use response::{decode_error, decode_response, peek_usage};
pub use stream::StreamDecoder;
