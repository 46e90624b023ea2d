//! Wire formats: what OpenAI, Anthropic and Gemini put on the wire, and the
//! conversions between them and the canonical [`crate::chat`] model.
//!
//! Everything here is pure: bytes or values in, bytes or values out. No IO,
//! no async, no logging, no clock. Callers pass in what a conversion needs to
//! know about the world (ids, timestamps).

pub mod anthropic;
pub mod bedrock;
pub mod gemini;
pub mod openai;
pub mod responses;
pub mod scan;
pub mod sse;
pub mod template;

use std::borrow::Cow;
use std::fmt;

use serde::de::{DeserializeOwned, IgnoredAny, MapAccess, Visitor};
use serde::{Deserialize, Deserializer};
use serde_json::value::RawValue;

/// Collects the keys of a map it is flattened into, ignoring the values: the
/// fields a struct did not declare.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct UnknownKeys(pub Vec<String>);

impl<'de> Deserialize<'de> for UnknownKeys {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = UnknownKeys;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a map")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<UnknownKeys, A::Error> {
                let mut keys = Vec::new();
                while let Some(k) = map.next_key::<String>()? {
                    let _: IgnoredAny = map.next_value()?;
                    keys.push(k);
                }
                Ok(UnknownKeys(keys))
            }
        }
        d.deserialize_map(V)
    }
}

/// A request body that could not be decoded: which field, and what was wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct DecodeError {
    /// JSON path of the offending field (`messages[2].content`), or empty
    /// when the body as a whole is at fault.
    pub field: String,
    pub message: String,
}

/// The longest `model` accepted: far past any provider's model names, and
/// short enough that a name never weighs on the health table, a record or
/// an error message.
pub const MAX_MODEL_BYTES: usize = 256;

/// A request's `model`, checked: present, not empty, not absurdly long.
pub fn check_model(model: Option<&str>) -> Result<(), DecodeError> {
    match model {
        None => Err(DecodeError::missing("model")),
        Some("") => Err(DecodeError::new("model", "`model` must not be empty")),
        Some(m) if m.len() > MAX_MODEL_BYTES => Err(DecodeError::new(
            "model",
            format!(
                "`model` is {} bytes long; at most {MAX_MODEL_BYTES} are accepted",
                m.len()
            ),
        )),
        Some(_) => Ok(()),
    }
}

impl DecodeError {
    /// The message names the field when it does not already.
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        let field = field.into();
        let mut message = message.into();
        if !field.is_empty() && !message.contains(&format!("`{field}`")) {
            message = format!("`{field}`: {message}");
        }
        DecodeError { field, message }
    }

    pub fn missing(field: &str) -> Self {
        DecodeError::new(field, format!("missing required field `{field}`"))
    }
}

/// Content that is either a string or a list of parts, read without
/// serde's untagged buffering (which cannot carry raw JSON values inside).
#[derive(Debug)]
pub enum TextOrList<T> {
    Text(String),
    List(Vec<T>),
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for TextOrList<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<T>(std::marker::PhantomData<T>);
        impl<'de, T: Deserialize<'de>> Visitor<'de> for V<T> {
            type Value = TextOrList<T>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string or an array of content parts")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(TextOrList::Text(v.to_owned()))
            }
            fn visit_string<E: serde::de::Error>(self, v: String) -> Result<Self::Value, E> {
                Ok(TextOrList::Text(v))
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<Self::Value, A::Error> {
                let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(4));
                while let Some(item) = seq.next_element()? {
                    out.push(item);
                }
                Ok(TextOrList::List(out))
            }
        }
        d.deserialize_any(V(std::marker::PhantomData))
    }
}

/// What can go wrong while reading an upstream stream.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StreamError {
    /// The upstream reported an error inside the stream (after its 200).
    #[error("{message}")]
    Upstream {
        /// The HTTP status this error would have had (529 for Anthropic's
        /// overloaded_error, 500 when the upstream gives no hint).
        status: u16,
        /// The upstream's own error type or code, when it gave one.
        kind: Option<String>,
        message: String,
    },
    /// The upstream sent bytes that are not its dialect's stream.
    #[error("malformed upstream stream: {0}")]
    Malformed(String),
}

/// The top-level members of a JSON object, values left as raw JSON.
///
/// Decoders walk this list once: known keys are parsed into typed values,
/// unknown ones are kept raw so a same-dialect call can forward them
/// untouched and a cross-dialect call can refuse them by name.
#[derive(Debug)]
pub struct Fields<'a>(pub Vec<(Cow<'a, str>, &'a RawValue)>);

impl<'a> Fields<'a> {
    pub fn parse(body: &'a [u8]) -> Result<Fields<'a>, DecodeError> {
        let mut de = serde_json::Deserializer::from_slice(body);
        let fields = Fields::deserialize(&mut de).map_err(|e| body_error(&e))?;
        de.end().map_err(|e| body_error(&e))?;
        Ok(fields)
    }

    pub fn get(&self, key: &str) -> Option<&'a RawValue> {
        self.0.iter().find(|(k, _)| k == key).map(|(_, v)| *v)
    }
}

/// Top-level members a request body may have.
const MAX_FIELDS: usize = 256;

impl<'de: 'a, 'a> Deserialize<'de> for Fields<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> Visitor<'de> for V<'a> {
            type Value = Fields<'a>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut out = Vec::with_capacity(map.size_hint().unwrap_or(12));
                while let Some(key) = map.next_key::<Cow<'de, str>>()? {
                    let value: &'de RawValue = map.next_value()?;
                    // A real request has a few dozen; the duplicate check
                    // below is linear, so the count is bounded.
                    if out.len() == MAX_FIELDS {
                        return Err(serde::de::Error::custom(format!(
                            "more than {MAX_FIELDS} top-level fields"
                        )));
                    }
                    if out.iter().any(|(k, _): &(Cow<str>, _)| *k == key) {
                        return Err(serde::de::Error::custom(format!("duplicate field `{key}`")));
                    }
                    out.push((key, value));
                }
                Ok(Fields(out))
            }
        }
        d.deserialize_map(V(std::marker::PhantomData))
    }
}

fn body_error(e: &serde_json::Error) -> DecodeError {
    let message = match e.classify() {
        serde_json::error::Category::Data => format!("request body must be a JSON object: {e}"),
        _ => format!("request body is not valid JSON: {e}"),
    };
    DecodeError::new("", message)
}

/// Parses one field's raw value, reporting the full path of whatever inside
/// it is wrong (`messages[1].tool_calls[0].function`).
pub fn field<T: DeserializeOwned>(name: &str, raw: &RawValue) -> Result<T, DecodeError> {
    // The plain decoder first; only a value that fails is decoded again,
    // tracking the path, to name the part at fault.
    if let Ok(v) = serde_json::from_str(raw.get()) {
        return Ok(v);
    }
    let mut de = serde_json::Deserializer::from_str(raw.get());
    serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let inner = e.path().to_string();
        let path = if inner == "." || inner.is_empty() {
            name.to_owned()
        } else if inner.starts_with('[') {
            format!("{name}{inner}")
        } else {
            format!("{name}.{inner}")
        };
        let msg = strip_position(&e.into_inner().to_string());
        DecodeError::new(path.clone(), format!("invalid `{path}`: {msg}"))
    })
}

/// Like [`field`], but JSON `null` reads as absent.
pub fn opt_field<T: DeserializeOwned>(
    name: &str,
    raw: &RawValue,
) -> Result<Option<T>, DecodeError> {
    if raw.get() == "null" {
        return Ok(None);
    }
    field(name, raw).map(Some)
}

/// serde_json appends " at line 1 column 57": positions in a sub-document
/// mean nothing to the caller, the path already says where.
fn strip_position(msg: &str) -> String {
    match msg.rfind(" at line ") {
        Some(i) => msg[..i].to_owned(),
        None => msg.to_owned(),
    }
}

/// Clones a raw JSON value into an owned box.
pub fn own(raw: &RawValue) -> Box<RawValue> {
    raw.to_owned()
}

/// Renders a value as raw JSON.
pub fn to_raw<T: serde::Serialize + ?Sized>(value: &T) -> Box<RawValue> {
    serde_json::value::to_raw_value(value).expect("our wire types always serialise")
}

/// Serialises to bytes. Our own types always serialise.
pub fn to_vec<T: serde::Serialize + ?Sized>(value: &T) -> Vec<u8> {
    serde_json::to_vec(value).expect("our wire types always serialise")
}

/// True when a raw JSON value is one the dialects treat as "not set".
pub fn is_neutral(raw: &RawValue) -> bool {
    matches!(raw.get(), "null" | "0" | "0.0" | "false" | "[]" | "{}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_keep_order_and_reject_duplicates() {
        let f = Fields::parse(br#"{"b":1,"a":{"x":[1,2]},"c":"s"}"#).unwrap();
        let keys: Vec<_> = f.0.iter().map(|(k, _)| k.as_ref()).collect();
        assert_eq!(keys, ["b", "a", "c"]);
        assert_eq!(f.get("a").unwrap().get(), r#"{"x":[1,2]}"#);
        let e = Fields::parse(br#"{"a":1,"a":2}"#).err().unwrap();
        assert!(e.message.contains("duplicate field `a`"), "{}", e.message);
    }

    #[test]
    fn body_errors_say_what_is_wrong() {
        let e = Fields::parse(b"{not json").err().unwrap();
        assert!(
            e.message.starts_with("request body is not valid JSON"),
            "{}",
            e.message
        );
        let e = Fields::parse(b"[1,2]").err().unwrap();
        assert!(
            e.message.starts_with("request body must be a JSON object"),
            "{}",
            e.message
        );
        assert!(Fields::parse(b"{} x").is_err());
    }

    #[test]
    fn field_errors_carry_the_path() {
        #[derive(Deserialize, Debug)]
        #[allow(dead_code)]
        struct M {
            role: String,
        }
        let raw: Box<RawValue> = serde_json::from_str(r#"[{"role":"user"},{"role":5}]"#).unwrap();
        let e = field::<Vec<M>>("messages", &raw).unwrap_err();
        assert_eq!(e.field, "messages[1].role");
        assert!(e.message.contains("invalid type"), "{}", e.message);
    }
}
