//! OpenAI Chat Completions and Embeddings, the dialect most of the world
//! speaks (vLLM, llama.cpp, Ollama, Groq, Mistral, DeepSeek, Moonshot, xAI...).
//!
//! Vendor constraints worth knowing before touching this code:
//! - Tool-call `arguments` are a JSON *string*, streamed as fragments that
//!   concatenate; parallel calls are told apart by `index`.
//! - Usage appears in a stream only with `stream_options.include_usage`, as
//!   one extra chunk with `choices: []` just before `[DONE]`. xAI repeats
//!   cumulative usage on every chunk; Groq has sent it under `x_groq.usage`;
//!   DeepSeek sends `usage: null` everywhere. The last usage seen wins.
//! - `prompt_tokens` includes cached tokens, `completion_tokens` includes
//!   reasoning tokens: the canonical [`Usage`](crate::chat::Usage) counts the
//!   same way, so these map one to one.
//! - A failure after the 200 is a `data:` chunk holding an `error` object.
//! - vLLM omits `finish_reason` on intermediate chunks; absent means null.

pub mod embeddings;
pub mod error;
pub mod request;
pub mod response;
pub mod stream;
pub mod types;

pub use error::{decode_error, encode_error};
pub use request::{decode_request, encode_request, rewrite_request};
pub use response::{decode_response, encode_response};
pub use stream::{StreamDecoder, StreamEncoder};
