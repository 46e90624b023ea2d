//! Google Gemini `generateContent` (generativelanguage API, v1 and v1beta),
//! spoken both ways: to Gemini upstreams, and by callers that use the
//! google-genai SDKs or the Gemini CLI against the gateway.
//!
//! Vendor constraints worth knowing before touching this code:
//! - Roles are `user` and `model`; system text is `systemInstruction`; tool
//!   results are `functionResponse` parts in a user turn, matched to their
//!   call by *name* (and by `id` where the model gave one), so the encoder
//!   looks the name up from the call earlier in the conversation, and the
//!   inbound decoder matches a result without an id to the call by name.
//! - Function calls arrive whole (no argument deltas), without ids on older
//!   models; we number them `call_<n>`.
//! - Newer models attach a `thoughtSignature` to function-call parts and
//!   refuse the next turn unless it comes back. OpenAI and Anthropic callers
//!   have nowhere to keep it but the tool-call id, so the id carries it:
//!   `gts_<len>_<signature, base64url>` + the plain id. The gateway stays
//!   stateless and any replica can decode it.
//! - A Gemini *caller* keeps another provider's reasoning state the same
//!   way Gemini's own: in the `thoughtSignature` of a thought part (see
//!   [`thought_signature`]). The SDKs hold signatures as bytes and may send
//!   them back in the URL-safe alphabet, so signatures are compared as bytes.
//! - `promptTokenCount` includes cached tokens; `candidatesTokenCount`
//!   excludes thoughts, which are billed as output.
//! - Streams (`alt=sse`) send a whole `GenerateContentResponse` per event,
//!   repeating cumulative `usageMetadata`; no `[DONE]`, the body just ends.
//!   The SDKs' chat sessions keep a streamed turn in their history only if
//!   every chunk has content and some chunk has a `finishReason`.
//! - The google-genai SDKs mix camelCase and snake_case in one body
//!   (`inlineData.mime_type`, `thinkingConfig.thinking_budget`); inbound
//!   decoding accepts both spellings everywhere.
//! - Images go inline as base64, and an image URL is refused. Documents
//!   (PDF, text) go inline too, or as `fileData` with a public https URL,
//!   which Gemini fetches itself since its January 2026 input update
//!   (Gemini 3 models; older ones answer 400). Files API and `gs://` URIs
//!   need Google's credentials: a Gemini caller's reach Gemini only.

pub mod answer;
pub mod embeddings;
pub mod inbound;
pub mod request;
pub mod response;
pub mod stream;

pub use answer::{StreamEncoder, encode_error, encode_response, status_name};
pub use embeddings::{decode_embeddings, encode_embeddings};
pub use inbound::{decode_request, field_name, rewrite_request};
pub use request::encode_request;
pub use response::{decode_error, decode_response};
pub use stream::{Relay, StreamDecoder};

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

/// Decodes base64 in either alphabet, padded or not: the SDKs keep
/// signatures as bytes and write them back URL-safe (pydantic), where
/// Gemini itself sent the standard alphabet.
fn decode_base64(s: &str) -> Option<Vec<u8>> {
    use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
    [STANDARD, URL_SAFE, STANDARD_NO_PAD, URL_SAFE_NO_PAD]
        .iter()
        .find_map(|e| e.decode(s).ok())
}

/// A caller's `thoughtSignature` in standard base64 (as Gemini sends it),
/// whichever alphabet the caller wrote it in; `None` when it is not base64.
pub fn normalize_signature(signature: &str) -> Option<String> {
    decode_base64(signature).map(|b| base64::engine::general_purpose::STANDARD.encode(b))
}

/// What the gateway itself put in a thought part's `thoughtSignature` for
/// a Gemini caller, read back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Thought {
    /// The signature of a thinking block from another provider
    /// (Anthropic), for [`crate::chat::Part::Thinking`].
    Signed(String),
    /// Redacted thinking (Anthropic's encrypted `data`).
    Redacted(String),
    /// A signature the gateway did not make (Gemini's own): meaningless to
    /// any other provider.
    Foreign,
}

const SIGNED_TAG: &[u8] = b"switchyard:thinking:";
const REDACTED_TAG: &[u8] = b"switchyard:redacted:";

/// Another provider's thinking signature as a `thoughtSignature`: a Gemini
/// caller keeps it (as bytes) and sends it back with the thought, so the
/// signing provider gets its thinking block back intact in a tool loop.
/// Tagged, so that a signature Gemini made is never mistaken for one.
pub fn thought_signature(signature: &str) -> String {
    tagged(SIGNED_TAG, signature)
}

/// Redacted thinking as a `thoughtSignature` on an empty thought part.
pub fn redacted_signature(data: &str) -> String {
    tagged(REDACTED_TAG, data)
}

fn tagged(tag: &[u8], payload: &str) -> String {
    let mut bytes = Vec::with_capacity(tag.len() + payload.len());
    bytes.extend_from_slice(tag);
    bytes.extend_from_slice(payload.as_bytes());
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// Reads a thought part's `thoughtSignature`; `None` when it is not base64.
pub fn read_thought_signature(signature: &str) -> Option<Thought> {
    let bytes = decode_base64(signature)?;
    let text = |rest: &[u8]| String::from_utf8(rest.to_vec()).ok();
    Some(if let Some(rest) = bytes.strip_prefix(SIGNED_TAG) {
        text(rest).map_or(Thought::Foreign, Thought::Signed)
    } else if let Some(rest) = bytes.strip_prefix(REDACTED_TAG) {
        text(rest).map_or(Thought::Foreign, Thought::Redacted)
    } else {
        Thought::Foreign
    })
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

    /// pydantic writes bytes back URL-safe; the bytes are what count.
    #[test]
    fn signatures_survive_either_base64_alphabet() {
        let std = "+/8A/w==";
        assert_eq!(normalize_signature("-_8A_w==").as_deref(), Some(std));
        assert_eq!(normalize_signature("-_8A_w").as_deref(), Some(std));
        assert_eq!(normalize_signature(std).as_deref(), Some(std));
        assert_eq!(normalize_signature("not base64!"), None);
    }

    #[test]
    fn thought_signatures_round_trip_and_foreign_ones_are_told_apart() {
        let sig = "ErUBCkYIAxgCIkB+/x==";
        let packed = thought_signature(sig);
        assert_eq!(
            read_thought_signature(&packed),
            Some(Thought::Signed(sig.into()))
        );
        // As the SDK sends it back: URL-safe, unpadded.
        let bytes = decode_base64(&packed).unwrap();
        let url = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
        assert_eq!(
            read_thought_signature(&url),
            Some(Thought::Signed(sig.into()))
        );
        assert_eq!(
            read_thought_signature(&redacted_signature("EmwKAhgB")),
            Some(Thought::Redacted("EmwKAhgB".into()))
        );
        assert_eq!(
            read_thought_signature("CtYBAdHtim8="),
            Some(Thought::Foreign)
        );
        assert_eq!(read_thought_signature("%%"), None);
    }
}
