//! Compaction items the gateway makes (`POST /v1/responses/compact` on a
//! provider without OpenAI's own compaction): the summary of a long
//! conversation, sealed into a `compaction` item's `encrypted_content`
//! behind `sy1c.`, and expanded again on any provider as a user message
//! that says what it is. OpenAI's own compaction items are not ours: they
//! go only to OpenAI, on the native path.

use base64::Engine;

/// What a sealed summary starts with.
pub const PREFIX: &str = "sy1c.";

/// The `encrypted_content` for a summary.
pub fn seal(summary: &str) -> String {
    format!(
        "{PREFIX}{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(summary.as_bytes())
    )
}

/// The summary a sealed blob holds; `None` for a blob that is not ours.
pub fn open(blob: &str) -> Option<String> {
    let b64 = blob.strip_prefix(PREFIX)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(b64)
        .ok()?;
    String::from_utf8(bytes).ok()
}

/// The text a summary is given to a model as.
pub fn as_message_text(summary: &str) -> String {
    format!("[The conversation before this point was compacted. Its summary follows.]\n{summary}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summaries_round_trip_and_foreign_blobs_are_not_ours() {
        let s = "The user wants X; we did Y.";
        assert_eq!(open(&seal(s)).as_deref(), Some(s));
        assert!(open("gAAAAAopaque").is_none());
        assert!(open("sy1.eyJ9").is_none());
    }
}
