//! A provider's reasoning state carried through a Responses caller.
//!
//! Anthropic thinking blocks must come back with their signatures, and
//! redacted ones byte for byte; a Responses client keeps reasoning only as
//! a `reasoning` item's opaque `encrypted_content`. So the gateway seals
//! each block into that field behind a versioned prefix
//! (`sy1.` + base64url of `{"p": provider, "t": text, "s": signature}` or
//! `{"p", "r": redacted data}`), naming the provider that made it. On the
//! way back a sealed block becomes a canonical thinking part whose
//! signature still says where it came from ([`wrap`]); just before a call
//! is encoded for a target, [`for_provider`] unwraps the blocks of that
//! provider and drops every other one, so a blob never reaches a provider
//! that did not make it (the `invalid_encrypted_content` fault). OpenAI's
//! own blobs are not ours: they go only to OpenAI, on the native path.

use std::borrow::Cow;

use base64::Engine;
use serde::{Deserialize, Serialize};

use crate::chat::{Part, Request};

/// What a sealed blob starts with.
pub const PREFIX: &str = "sy1.";

/// What a wrapped canonical signature (or redacted data) starts with.
const WRAPPED: &str = "sy1:";

#[derive(Serialize, Deserialize)]
struct Sealed {
    p: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    t: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    s: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    r: Option<String>,
}

/// The `encrypted_content` for a canonical reasoning part `provider` made;
/// `None` for a part nothing can be sent back for (no signature).
pub fn seal(provider: &str, part: &Part) -> Option<String> {
    let sealed = match part {
        Part::Thinking {
            text,
            signature: Some(s),
        } => Sealed {
            p: provider.to_owned(),
            t: Some(text.clone()),
            s: Some(s.clone()),
            r: None,
        },
        Part::RedactedThinking { data } => Sealed {
            p: provider.to_owned(),
            t: None,
            s: None,
            r: Some(data.clone()),
        },
        _ => return None,
    };
    let json = crate::wire::to_vec(&sealed);
    Some(format!(
        "{PREFIX}{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(json)
    ))
}

/// A sealed blob as a canonical part whose signature (or data) is wrapped
/// with the provider's name; `None` for a blob that is not ours.
pub fn open(blob: &str) -> Option<Part> {
    let b64 = blob.strip_prefix(PREFIX)?;
    let json = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(b64)
        .ok()?;
    let s: Sealed = serde_json::from_slice(&json).ok()?;
    let wrap = |inner: &str| format!("{WRAPPED}{}:{inner}", s.p);
    match (s.r.as_deref(), s.s.as_deref()) {
        (Some(data), _) => Some(Part::RedactedThinking { data: wrap(data) }),
        (None, Some(sig)) => Some(Part::Thinking {
            text: s.t.clone().unwrap_or_default(),
            signature: Some(wrap(sig)),
        }),
        (None, None) => None,
    }
}

/// Splits a wrapped value into its provider and the value itself.
fn unwrap(v: &str) -> Option<(&str, &str)> {
    v.strip_prefix(WRAPPED)?.split_once(':')
}

fn is_wrapped(p: &Part) -> bool {
    match p {
        Part::Thinking {
            signature: Some(s), ..
        } => s.starts_with(WRAPPED),
        Part::RedactedThinking { data } => data.starts_with(WRAPPED),
        _ => false,
    }
}

/// The request as `provider` may receive it: reasoning it made, unwrapped;
/// reasoning any other provider made, gone. Borrowed when there is none.
pub fn for_provider<'r>(req: &'r Request, provider: &str) -> Cow<'r, Request> {
    if !req.messages.iter().any(|m| m.parts.iter().any(is_wrapped)) {
        return Cow::Borrowed(req);
    }
    let mut out = req.clone();
    for m in &mut out.messages {
        let parts = std::mem::take(&mut m.parts);
        let origins = std::mem::take(&mut m.origin.parts);
        for (j, p) in parts.into_iter().enumerate() {
            let kept = match p {
                Part::Thinking {
                    text,
                    signature: Some(s),
                } if s.starts_with(WRAPPED) => match unwrap(&s) {
                    Some((from, sig)) if from == provider => Some(Part::Thinking {
                        text,
                        signature: Some(sig.to_owned()),
                    }),
                    _ => None,
                },
                Part::RedactedThinking { data } if data.starts_with(WRAPPED) => {
                    match unwrap(&data) {
                        Some((from, d)) if from == provider => {
                            Some(Part::RedactedThinking { data: d.to_owned() })
                        }
                        _ => None,
                    }
                }
                other => Some(other),
            };
            if let Some(p) = kept {
                m.parts.push(p);
                m.origin.parts.push(origins.get(j).copied().unwrap_or(j));
            }
        }
    }
    // An assistant turn that held only foreign reasoning says nothing.
    out.messages.retain(|m| !m.parts.is_empty());
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chat::{Message, Role};

    #[test]
    fn sealed_reasoning_goes_back_only_to_its_provider() {
        let thinking = Part::Thinking {
            text: "let me think".into(),
            signature: Some("EqQBCkYIAxgC".into()),
        };
        let blob = seal("anthropic", &thinking).unwrap();
        assert!(blob.starts_with(PREFIX));
        let opened = open(&blob).unwrap();
        let req = Request {
            messages: vec![
                Message::new(
                    Role::User,
                    vec![Part::Text {
                        text: "hi".into(),
                        cache_control: None,
                    }],
                    0,
                ),
                Message::new(Role::Assistant, vec![opened], 1),
            ],
            ..Request::default()
        };
        let same = for_provider(&req, "anthropic");
        assert_eq!(same.messages[1].parts, vec![thinking]);
        let other = for_provider(&req, "google");
        assert_eq!(other.messages.len(), 1, "the reasoning-only turn is gone");
        assert!(open("gAAAAABopaqueOpenAIblob").is_none());
        assert!(open("sy1.!!!").is_none());
        let redacted = Part::RedactedThinking {
            data: "cmVkYWN0ZWQ=".into(),
        };
        let back = open(&seal("anthropic", &redacted).unwrap()).unwrap();
        let req = Request {
            messages: vec![Message::new(Role::Assistant, vec![back], 0)],
            ..Request::default()
        };
        assert_eq!(
            for_provider(&req, "anthropic").messages[0].parts,
            vec![redacted]
        );
    }

    #[test]
    fn requests_without_sealed_reasoning_are_not_copied() {
        let req = Request::default();
        assert!(matches!(for_provider(&req, "x"), Cow::Borrowed(_)));
    }
}
