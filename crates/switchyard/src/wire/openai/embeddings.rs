//! `/v1/embeddings`: decode a caller's request, encode an answer built from
//! another provider's vectors.

use base64::Engine;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use crate::wire::{DecodeError, Fields, field, is_neutral, opt_field};

#[derive(Debug, Clone, PartialEq)]
pub struct EmbeddingsRequest {
    pub model: String,
    pub input: EmbeddingInput,
    /// `base64` or `float` (the default).
    pub base64: bool,
    pub dimensions: Option<u32>,
    pub unknown_fields: Vec<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum EmbeddingInput {
    Text(String),
    Texts(Vec<String>),
    Tokens(Vec<u32>),
    TokenBatches(Vec<Vec<u32>>),
}

/// Inputs one request may carry (OpenAI's own limit).
pub const MAX_INPUTS: usize = 2048;

/// One item of an input array.
#[derive(Deserialize)]
#[serde(untagged)]
enum Item {
    Text(String),
    Token(u32),
    Tokens(Vec<u32>),
}

/// Decoded item by item (an untagged enum would first copy the whole array
/// into serde's buffer), at most [`MAX_INPUTS`] of them.
impl<'de> Deserialize<'de> for EmbeddingInput {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = EmbeddingInput;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a string, or an array of strings, of token ids or of token-id arrays")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(EmbeddingInput::Text(v.to_owned()))
            }
            fn visit_string<E: serde::de::Error>(self, v: String) -> Result<Self::Value, E> {
                Ok(EmbeddingInput::Text(v))
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<Self::Value, A::Error> {
                use serde::de::Error;
                let mut out = None;
                let mut n = 0;
                while let Some(item) = seq.next_element::<Item>()? {
                    n += 1;
                    if n > MAX_INPUTS {
                        return Err(A::Error::custom(format!(
                            "at most {MAX_INPUTS} inputs per request"
                        )));
                    }
                    match (&mut out, item) {
                        (None, Item::Text(t)) => out = Some(EmbeddingInput::Texts(vec![t])),
                        (None, Item::Token(t)) => out = Some(EmbeddingInput::Tokens(vec![t])),
                        (None, Item::Tokens(t)) => {
                            out = Some(EmbeddingInput::TokenBatches(vec![t]));
                        }
                        (Some(EmbeddingInput::Texts(v)), Item::Text(t)) => v.push(t),
                        (Some(EmbeddingInput::Tokens(v)), Item::Token(t)) => v.push(t),
                        (Some(EmbeddingInput::TokenBatches(v)), Item::Tokens(t)) => v.push(t),
                        _ => {
                            return Err(A::Error::custom(
                                "an input array holds strings, token ids or token-id arrays, not a mix",
                            ));
                        }
                    }
                }
                Ok(out.unwrap_or(EmbeddingInput::Texts(Vec::new())))
            }
        }
        d.deserialize_any(V)
    }
}

impl EmbeddingInput {
    /// The texts, when the input is text (token ids only make sense to the
    /// tokenizer of the model that made them).
    pub fn texts(&self) -> Option<Vec<String>> {
        match self {
            EmbeddingInput::Text(t) => Some(vec![t.clone()]),
            EmbeddingInput::Texts(v) => Some(v.clone()),
            _ => None,
        }
    }

    /// Bytes of input, for estimates.
    pub fn byte_len(&self) -> usize {
        match self {
            EmbeddingInput::Text(t) => t.len(),
            EmbeddingInput::Texts(v) => v.iter().map(String::len).sum(),
            EmbeddingInput::Tokens(v) => v.len() * 4,
            EmbeddingInput::TokenBatches(v) => v.iter().map(|b| b.len() * 4).sum(),
        }
    }
}

pub fn decode_embeddings_request(
    body: &[u8],
) -> Result<(EmbeddingsRequest, Fields<'_>), DecodeError> {
    let fields = Fields::parse(body)?;
    let mut model = None;
    let mut input = None;
    let mut base64 = false;
    let mut dimensions = None;
    let mut unknown_fields = Vec::new();
    for (key, raw) in &fields.0 {
        let raw: &RawValue = raw;
        match key.as_ref() {
            "model" => model = Some(field::<String>("model", raw)?),
            "input" => input = Some(field::<EmbeddingInput>("input", raw)?),
            "encoding_format" => {
                base64 = match opt_field::<String>("encoding_format", raw)?.as_deref() {
                    None | Some("float") => false,
                    Some("base64") => true,
                    Some(other) => {
                        return Err(DecodeError::new(
                            "encoding_format",
                            format!("unknown encoding_format `{other}`: expected float or base64"),
                        ));
                    }
                }
            }
            "dimensions" => dimensions = opt_field(key, raw)?,
            other => {
                if !is_neutral(raw) {
                    unknown_fields.push(other.to_owned());
                }
            }
        }
    }
    crate::wire::check_model(model.as_deref())?;
    let model = model.unwrap_or_default();
    let input = input.ok_or_else(|| DecodeError::missing("input"))?;
    Ok((
        EmbeddingsRequest {
            model,
            input,
            base64,
            dimensions,
            unknown_fields,
        },
        fields,
    ))
}

#[derive(Serialize)]
struct ListOut<'a> {
    object: &'static str,
    data: Vec<EmbeddingOut>,
    model: &'a str,
    usage: UsageOut,
}

#[derive(Serialize)]
struct EmbeddingOut {
    object: &'static str,
    index: usize,
    embedding: VectorOut,
}

#[derive(Serialize)]
#[serde(untagged)]
enum VectorOut {
    Floats(Vec<f64>),
    Base64(String),
}

#[derive(Serialize)]
struct UsageOut {
    prompt_tokens: u64,
    total_tokens: u64,
}

/// An OpenAI embeddings answer. With `base64`, each vector is its
/// little-endian f32 bytes in base64, as OpenAI sends them.
pub fn encode_embeddings_response(
    vectors: Vec<Vec<f64>>,
    model: &str,
    base64: bool,
    prompt_tokens: u64,
) -> Vec<u8> {
    let data = vectors
        .into_iter()
        .enumerate()
        .map(|(index, v)| EmbeddingOut {
            object: "embedding",
            index,
            embedding: if base64 {
                let bytes: Vec<u8> = v.iter().flat_map(|f| (*f as f32).to_le_bytes()).collect();
                VectorOut::Base64(base64::engine::general_purpose::STANDARD.encode(bytes))
            } else {
                VectorOut::Floats(v)
            },
        })
        .collect();
    crate::wire::to_vec(&ListOut {
        object: "list",
        data,
        model,
        usage: UsageOut {
            prompt_tokens,
            total_tokens: prompt_tokens,
        },
    })
}

/// Reads `usage.prompt_tokens` from an OpenAI embeddings answer.
pub fn peek_embedding_tokens(body: &[u8]) -> Option<u64> {
    #[derive(Deserialize)]
    struct Peek {
        usage: Option<U>,
    }
    #[derive(Deserialize)]
    struct U {
        #[serde(default)]
        prompt_tokens: u64,
    }
    serde_json::from_slice::<Peek>(body)
        .ok()?
        .usage
        .map(|u| u.prompt_tokens)
}

/// An embeddings request built from texts (a caller of another dialect).
pub fn encode_request(model: &str, texts: &[String], dimensions: Option<u32>) -> Vec<u8> {
    let mut v = serde_json::json!({"model": model, "input": texts, "encoding_format": "float"});
    if let Some(d) = dimensions {
        v["dimensions"] = d.into();
    }
    crate::wire::to_vec(&v)
}

/// The vectors of an OpenAI embeddings answer, floats or base64, in input
/// order.
pub fn decode_vectors(body: &[u8]) -> Option<Vec<Vec<f64>>> {
    #[derive(Deserialize)]
    struct List {
        data: Vec<Item>,
    }
    #[derive(Deserialize)]
    struct Item {
        #[serde(default)]
        index: usize,
        embedding: Vector,
    }
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Vector {
        Floats(Vec<f64>),
        Base64(String),
    }
    let mut list: List = serde_json::from_slice(body).ok()?;
    list.data.sort_by_key(|i| i.index);
    list.data
        .into_iter()
        .map(|i| match i.embedding {
            Vector::Floats(v) => Some(v),
            Vector::Base64(b) => {
                let bytes = base64::engine::general_purpose::STANDARD.decode(b).ok()?;
                Some(
                    bytes
                        .chunks_exact(4)
                        .map(|c| f64::from(f32::from_le_bytes([c[0], c[1], c[2], c[3]])))
                        .collect(),
                )
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_vectors_are_little_endian_f32() {
        let out = encode_embeddings_response(vec![vec![1.0, -2.5]], "m", true, 3);
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        let b64 = v["data"][0]["embedding"].as_str().unwrap();
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(b64)
            .unwrap();
        assert_eq!(bytes.len(), 8);
        assert_eq!(f32::from_le_bytes(bytes[4..8].try_into().unwrap()), -2.5);
        assert_eq!(v["usage"]["prompt_tokens"], 3);
    }

    #[test]
    fn inputs_and_formats_are_checked() {
        let (r, _) = decode_embeddings_request(
            br#"{"model":"a/b","input":["x","y"],"encoding_format":"base64"}"#,
        )
        .unwrap();
        assert!(r.base64);
        assert_eq!(r.input.texts().unwrap().len(), 2);
        let e = decode_embeddings_request(br#"{"model":"a/b","input":{"x":1}}"#).unwrap_err();
        assert_eq!(e.field, "input");
        let e = decode_embeddings_request(br#"{"model":"a/b"}"#).unwrap_err();
        assert_eq!(e.field, "input");
    }

    #[test]
    fn every_input_shape_decodes_and_the_count_is_bounded() {
        let input = |json: &str| {
            decode_embeddings_request(format!(r#"{{"model":"a/b","input":{json}}}"#).as_bytes())
                .map(|(r, _)| r.input)
        };
        assert_eq!(input(r#""hi""#).unwrap(), EmbeddingInput::Text("hi".into()));
        assert_eq!(
            input(r#"["a","b"]"#).unwrap(),
            EmbeddingInput::Texts(vec!["a".into(), "b".into()])
        );
        assert_eq!(input("[1,2]").unwrap(), EmbeddingInput::Tokens(vec![1, 2]));
        assert_eq!(
            input("[[1],[2,3]]").unwrap(),
            EmbeddingInput::TokenBatches(vec![vec![1], vec![2, 3]])
        );
        assert_eq!(input("[]").unwrap(), EmbeddingInput::Texts(vec![]));
        let mixed = input(r#"["a",1]"#).unwrap_err();
        assert!(mixed.message.contains("not a mix"), "{}", mixed.message);
        let many = format!("[{}]", vec![r#""""#; MAX_INPUTS + 1].join(","));
        let e = input(&many).unwrap_err();
        assert_eq!(e.field, "input");
        assert!(e.message.contains("at most 2048"), "{}", e.message);
        assert!(input(&format!("[{}]", vec![r#""""#; MAX_INPUTS].join(","))).is_ok());
    }
}
