//! Embeddings on Bedrock, through `InvokeModel` (`/model/{id}/invoke`),
//! whose bodies are each model family's own: Amazon Titan Text Embeddings
//! (one text per call, `inputText`) and Cohere Embed (`texts`, a batch).

use serde::Deserialize;
use serde_json::json;

use crate::chat::Untranslatable;

const TARGET: &str = "a Bedrock provider";

/// The embedding model families the gateway speaks to on Bedrock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    Titan,
    Cohere,
}

impl Family {
    /// The family of `model` (inference-profile prefixes allowed), or why
    /// it cannot be called.
    pub fn of(model: &str) -> Result<Family, Untranslatable> {
        if model.contains("amazon.titan-embed") {
            Ok(Family::Titan)
        } else if model.contains("cohere.embed") {
            Ok(Family::Cohere)
        } else {
            Err(Untranslatable::new(
                "model",
                TARGET,
                "embeddings go to Titan (amazon.titan-embed-*) and Cohere (cohere.embed-*) models",
            ))
        }
    }
}

/// The `InvokeModel` body embedding `texts`.
pub fn encode_request(
    family: Family,
    texts: &[String],
    dimensions: Option<u32>,
) -> Result<Vec<u8>, Untranslatable> {
    let body = match (family, texts) {
        (_, []) => return Err(Untranslatable::new("input", TARGET, "nothing to embed")),
        (Family::Titan, [text]) => {
            let mut v = json!({ "inputText": text });
            if let Some(d) = dimensions {
                v["dimensions"] = d.into();
            }
            v
        }
        (Family::Titan, _) => {
            return Err(Untranslatable::new(
                "input",
                TARGET,
                "Titan embeds one text per call: send one, or use a Cohere model for a batch",
            ));
        }
        (Family::Cohere, _) => {
            if dimensions.is_some() {
                return Err(Untranslatable::new(
                    "dimensions",
                    TARGET,
                    "Cohere Embed on Bedrock has no output dimensions to choose",
                ));
            }
            json!({ "texts": texts, "input_type": "search_document" })
        }
    };
    Ok(crate::wire::to_vec(&body))
}

#[derive(Deserialize)]
#[serde(untagged)]
enum CohereVectors {
    Floats(Vec<Vec<f64>>),
    ByType { float: Vec<Vec<f64>> },
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Answer {
    /// Titan.
    embedding: Option<Vec<f64>>,
    input_text_token_count: Option<u64>,
    /// Cohere.
    embeddings: Option<CohereVectors>,
}

/// The vectors, in input order, and the input tokens where the model
/// reports them (Titan does; Cohere does not).
pub fn decode_response(body: &[u8]) -> Option<(Vec<Vec<f64>>, Option<u64>)> {
    let a: Answer = serde_json::from_slice(body).ok()?;
    match (a.embedding, a.embeddings) {
        (Some(v), _) => Some((vec![v], a.input_text_token_count)),
        (None, Some(CohereVectors::Floats(v) | CohereVectors::ByType { float: v })) => {
            Some((v, None))
        }
        (None, None) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn titan_and_cohere_bodies_and_answers() {
        let t = vec!["hello".to_owned()];
        assert_eq!(
            Family::of("amazon.titan-embed-text-v2:0").unwrap(),
            Family::Titan
        );
        assert_eq!(
            Family::of("cohere.embed-english-v3").unwrap(),
            Family::Cohere
        );
        assert_eq!(Family::of("anthropic.claude-3").unwrap_err().field, "model");
        let b: serde_json::Value =
            serde_json::from_slice(&encode_request(Family::Titan, &t, Some(256)).unwrap()).unwrap();
        assert_eq!(b, json!({"inputText": "hello", "dimensions": 256}));
        let two = vec!["a".to_owned(), "b".to_owned()];
        assert_eq!(
            encode_request(Family::Titan, &two, None).unwrap_err().field,
            "input"
        );
        let b: serde_json::Value =
            serde_json::from_slice(&encode_request(Family::Cohere, &two, None).unwrap()).unwrap();
        assert_eq!(
            b,
            json!({"texts": ["a", "b"], "input_type": "search_document"})
        );
        assert_eq!(
            decode_response(br#"{"embedding":[0.5,0.25],"inputTextTokenCount":2}"#),
            Some((vec![vec![0.5, 0.25]], Some(2)))
        );
        assert_eq!(
            decode_response(br#"{"embeddings":[[1.0],[2.0]],"id":"x","response_type":"embeddings_floats","texts":["a","b"]}"#),
            Some((vec![vec![1.0], vec![2.0]], None))
        );
        assert_eq!(
            decode_response(
                br#"{"embeddings":{"float":[[1.0]]},"response_type":"embeddings_by_type"}"#
            ),
            Some((vec![vec![1.0]], None))
        );
        assert_eq!(decode_response(b"{}"), None);
    }
}
