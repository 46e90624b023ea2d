//! Google Gemini `generateContent` (generativelanguage API, v1beta).
//!
//! Gemini is an upstream dialect only: callers speak OpenAI or Anthropic.
//! Vendor constraints worth knowing before touching this code:
//! - Roles are `user` and `model`; system text is `systemInstruction`; tool
//!   results are `functionResponse` parts in a user turn, matched to their
//!   call by *name* (and by `id` where the model gave one), so the encoder
//!   looks the name up from the call earlier in the conversation.
//! - Function calls arrive whole (no argument deltas), without ids on older
//!   models; we number them `call_<n>`.
//! - Newer models attach a `thoughtSignature` to function-call parts and
//!   refuse the next turn unless it comes back. OpenAI and Anthropic callers
//!   have nowhere to keep it but the tool-call id, so the id carries it:
//!   `gts_<len>_<signature, base64url>` + the plain id. The gateway stays
//!   stateless and any replica can decode it.
//! - `promptTokenCount` includes cached tokens; `candidatesTokenCount`
//!   excludes thoughts, which are billed as output.
//! - Streams (`alt=sse`) send a whole `GenerateContentResponse` per event,
//!   repeating cumulative `usageMetadata`; no `[DONE]`, the body just ends.
//! - Images go inline as base64; a bare https URL is not something
//!   `fileData` accepts, so it is refused rather than fetched.

pub mod embeddings;
pub mod request;
pub mod response;
pub mod stream;

pub use embeddings::{decode_embeddings, encode_embeddings};
pub use request::encode_request;
pub use response::{decode_error, decode_response};
pub use stream::StreamDecoder;

use base64::Engine;

/// Packs a thought signature into a tool-call id (see the module doc).
pub fn id_with_signature(id: &str, signature: &str) -> String {
    let sig = match base64::engine::general_purpose::STANDARD.decode(signature) {
        Ok(bytes) => base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes),
        // Not base64 after all: keep it out rather than corrupt it.
        Err(_) => return id.to_owned(),
    };
    format!("gts_{}_{sig}{id}", sig.len())
}

/// Splits a tool-call id made by [`id_with_signature`] back into the plain
/// id and the signature (standard base64, as Gemini sent it).
pub fn split_signature(id: &str) -> (&str, Option<String>) {
    let Some(rest) = id.strip_prefix("gts_") else {
        return (id, None);
    };
    let Some((len, rest)) = rest.split_once('_') else {
        return (id, None);
    };
    let Ok(len) = len.parse::<usize>() else {
        return (id, None);
    };
    if rest.len() < len || !rest.is_char_boundary(len) {
        return (id, None);
    }
    let (sig, plain) = rest.split_at(len);
    match base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(sig) {
        Ok(bytes) => (
            plain,
            Some(base64::engine::general_purpose::STANDARD.encode(bytes)),
        ),
        Err(_) => (id, None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_round_trip_through_tool_call_ids() {
        let sig = "CtYBAdHtim+/9x==";
        let sig = base64::engine::general_purpose::STANDARD.encode(
            base64::engine::general_purpose::STANDARD
                .decode(sig)
                .unwrap_or_else(|_| b"\x01\x02\xff".to_vec()),
        );
        let id = id_with_signature("call_0", &sig);
        assert!(id.starts_with("gts_"));
        assert!(
            id.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-'),
            "{id}"
        );
        assert_eq!(split_signature(&id), ("call_0", Some(sig)));
        assert_eq!(split_signature("call_0"), ("call_0", None));
        assert_eq!(split_signature("gts_zz_x"), ("gts_zz_x", None));
    }
}
