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

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(untagged)]
pub enum EmbeddingInput {
    Text(String),
    Texts(Vec<String>),
    Tokens(Vec<u32>),
    TokenBatches(Vec<Vec<u32>>),
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
    let model = model.ok_or_else(|| DecodeError::missing("model"))?;
    if model.is_empty() {
        return Err(DecodeError::new("model", "`model` must not be empty"));
    }
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
}
