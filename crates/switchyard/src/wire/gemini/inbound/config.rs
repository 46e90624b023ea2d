//! The rest of a `generateContent` body: `tools`, `toolConfig` and
//! `generationConfig`, and Gemini's OpenAPI-style `Schema` as JSON Schema.

use serde::Deserialize;
use serde_json::{Map, Number, Value};

use super::note;
use crate::chat::{self, RawJson, ResponseFormat, Thinking, Tool, ToolChoice};
use crate::wire::{DecodeError, UnknownKeys};

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct ToolIn {
    #[serde(default, alias = "function_declarations")]
    function_declarations: Option<Vec<FunctionDeclIn>>,
    /// googleSearch, codeExecution, urlContext...: Gemini's own tools.
    #[serde(flatten)]
    unknown: UnknownKeys,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct FunctionDeclIn {
    name: String,
    #[serde(default)]
    description: Option<String>,
    /// An OpenAPI-style `Schema` (upper-case types, `nullable`).
    #[serde(default)]
    parameters: Option<Value>,
    #[serde(default, alias = "parameters_json_schema")]
    parameters_json_schema: Option<RawJson>,
    /// response, responseJsonSchema, behavior...
    #[serde(flatten)]
    unknown: UnknownKeys,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct ToolConfigIn {
    #[serde(default, alias = "function_calling_config")]
    function_calling_config: Option<FunctionCallingConfigIn>,
    /// retrievalConfig...
    #[serde(flatten)]
    unknown: UnknownKeys,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct FunctionCallingConfigIn {
    #[serde(default)]
    mode: Option<String>,
    #[serde(default, alias = "allowed_function_names")]
    allowed_function_names: Option<Vec<String>>,
    #[serde(flatten)]
    unknown: UnknownKeys,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct GenerationConfigIn {
    #[serde(default)]
    temperature: Option<f64>,
    #[serde(default, alias = "top_p")]
    top_p: Option<f64>,
    /// The Python SDK sends `topK` as a float (`40.0`).
    #[serde(default, alias = "top_k")]
    top_k: Option<Number>,
    #[serde(default, alias = "max_output_tokens")]
    max_output_tokens: Option<Number>,
    #[serde(default, alias = "stop_sequences")]
    stop_sequences: Option<Vec<String>>,
    #[serde(default, alias = "candidate_count")]
    candidate_count: Option<Number>,
    #[serde(default)]
    seed: Option<Number>,
    #[serde(default, alias = "presence_penalty")]
    presence_penalty: Option<f64>,
    #[serde(default, alias = "frequency_penalty")]
    frequency_penalty: Option<f64>,
    #[serde(default, alias = "response_mime_type")]
    response_mime_type: Option<String>,
    #[serde(default, alias = "response_schema")]
    response_schema: Option<Value>,
    #[serde(default, alias = "response_json_schema")]
    response_json_schema: Option<RawJson>,
    #[serde(default, alias = "thinking_config")]
    thinking_config: Option<ThinkingConfigIn>,
    #[serde(flatten)]
    unknown: Map<String, Value>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ThinkingConfigIn {
    #[serde(default, alias = "thinking_budget")]
    thinking_budget: Option<Number>,
    #[serde(default, alias = "include_thoughts")]
    include_thoughts: Option<bool>,
    #[serde(default, alias = "thinking_level")]
    thinking_level: Option<String>,
    #[serde(flatten)]
    unknown: UnknownKeys,
}

pub(super) fn decode_tools(tools: Vec<ToolIn>, req: &mut chat::Request) -> Result<(), DecodeError> {
    for (i, t) in tools.into_iter().enumerate() {
        // Gemini's own tools (googleSearch...) exist only there; `{}` is
        // how they are switched on, so presence is what counts.
        note(&t.unknown, &format!("tools[{i}]"), &mut req.unknown_fields);
        for (k, f) in t
            .function_declarations
            .unwrap_or_default()
            .into_iter()
            .enumerate()
        {
            let at = format!("tools[{i}].functionDeclarations[{k}]");
            // `response` / `responseJsonSchema` describe what the caller's
            // own function returns, not the answer asked for: google-genai
            // sends them with every automatic function call. A Gemini
            // upstream gets them (same-dialect path); for others they are
            // left out, one of README's deliberate exceptions.
            for k in &f.unknown.0 {
                if !matches!(
                    k.as_str(),
                    "response" | "responseJsonSchema" | "response_json_schema"
                ) {
                    req.unknown_fields.push(format!("{at}.{k}"));
                }
            }
            let parameters = match (f.parameters, f.parameters_json_schema) {
                (Some(_), Some(_)) => {
                    return Err(DecodeError::new(
                        format!("{at}.parametersJsonSchema"),
                        format!("`{at}` sets both parameters and parametersJsonSchema; set one"),
                    ));
                }
                (Some(schema), None) => Some(RawJson(crate::wire::to_raw(&json_schema(schema)))),
                (None, schema) => schema,
            };
            req.tools.push(Tool {
                name: f.name,
                description: f.description,
                parameters,
                strict: None,
                cache_control: None,
                origin: Default::default(),
            });
        }
    }
    Ok(())
}

pub(super) fn decode_tool_config(
    tc: ToolConfigIn,
    req: &mut chat::Request,
) -> Result<(), DecodeError> {
    note(&tc.unknown, "toolConfig", &mut req.unknown_fields);
    let Some(fc) = tc.function_calling_config else {
        return Ok(());
    };
    let at = "toolConfig.functionCallingConfig";
    note(&fc.unknown, at, &mut req.unknown_fields);
    let names = fc.allowed_function_names.unwrap_or_default();
    let names_path = format!("{at}.allowedFunctionNames");
    let mode = fc.mode.unwrap_or_default().to_ascii_uppercase();
    req.tool_choice = match mode.as_str() {
        "" | "MODE_UNSPECIFIED" => None,
        "AUTO" => Some(ToolChoice::Auto),
        "NONE" => Some(ToolChoice::None),
        "ANY" => match names.as_slice() {
            [] => Some(ToolChoice::Required),
            [one] => Some(ToolChoice::Named(one.clone())),
            // A subset of the tools: the canonical choice is one or all.
            _ => {
                req.unknown_fields.push(names_path.clone());
                Some(ToolChoice::Required)
            }
        },
        // Calls checked against their schema: what `strict` asks for.
        "VALIDATED" => {
            for t in &mut req.tools {
                t.strict = Some(true);
            }
            None
        }
        other => {
            return Err(DecodeError::new(
                format!("{at}.mode"),
                format!("unknown mode `{other}`: expected AUTO, ANY, NONE or VALIDATED"),
            ));
        }
    };
    if !names.is_empty() && mode != "ANY" {
        req.unknown_fields.push(names_path);
    }
    Ok(())
}

/// A whole number, which the SDKs may write as a float (`40.0`).
fn whole(n: &Number, path: &str) -> Result<i64, DecodeError> {
    if let Some(i) = n.as_i64() {
        return Ok(i);
    }
    let f = n.as_f64().unwrap_or(f64::NAN);
    // 2^53: past it an f64 no longer holds every whole number.
    if f.fract() == 0.0 && f.abs() <= 9_007_199_254_740_992.0 {
        return Ok(f as i64);
    }
    Err(DecodeError::new(
        path,
        format!("`{path}` must be a whole number, not {n}"),
    ))
}

fn count(n: &Number, path: &str) -> Result<u32, DecodeError> {
    u32::try_from(whole(n, path)?).map_err(|_| {
        DecodeError::new(
            path,
            format!("`{path}` must be between 0 and {}, not {n}", u32::MAX),
        )
    })
}

pub(super) fn decode_generation_config(
    g: GenerationConfigIn,
    req: &mut chat::Request,
) -> Result<(), DecodeError> {
    const AT: &str = "generationConfig";
    for (k, v) in &g.unknown {
        let text_only =
            k.as_str().eq_ignore_ascii_case("responseModalities") || k == "response_modalities";
        let neutral = match v {
            Value::Null | Value::Bool(false) => true,
            Value::Array(a) if a.is_empty() => true,
            Value::Object(o) if o.is_empty() => true,
            // Text is what every target answers with.
            Value::Array(a) if text_only => a
                .iter()
                .all(|m| m.as_str().is_some_and(|m| m.eq_ignore_ascii_case("text"))),
            _ => false,
        };
        if !neutral {
            req.unknown_fields.push(format!("{AT}.{k}"));
        }
    }
    req.temperature = g.temperature;
    req.top_p = g.top_p;
    req.presence_penalty = g.presence_penalty;
    req.frequency_penalty = g.frequency_penalty;
    if let Some(n) = &g.top_k {
        req.top_k = Some(count(n, &format!("{AT}.topK"))?);
    }
    if let Some(n) = &g.max_output_tokens {
        req.max_tokens = Some(count(n, &format!("{AT}.maxOutputTokens"))?);
    }
    if let Some(n) = &g.seed {
        req.seed = Some(whole(n, &format!("{AT}.seed"))?);
    }
    req.stop = g.stop_sequences.unwrap_or_default();
    if let Some(n) = &g.candidate_count {
        // One answer is all the canonical response holds; a Gemini upstream
        // gets more on the same-dialect path.
        if count(n, &format!("{AT}.candidateCount"))? > 1 {
            req.unknown_fields.push(format!("{AT}.candidateCount"));
        }
    }
    let schema = match (g.response_schema, g.response_json_schema) {
        (Some(_), Some(_)) => {
            return Err(DecodeError::new(
                format!("{AT}.responseJsonSchema"),
                "`generationConfig` sets both responseSchema and responseJsonSchema; set one",
            ));
        }
        (Some(s), None) => Some(RawJson(crate::wire::to_raw(&json_schema(s)))),
        (None, s) => s,
    };
    let mime = g.response_mime_type.filter(|m| !m.is_empty());
    req.response_format = match (mime.as_deref(), schema) {
        // Enum mode: one value of a schema's `enum`, as plain text.
        (Some("text/x.enum"), _) => {
            req.unknown_fields.push(format!("{AT}.responseMimeType"));
            None
        }
        (None | Some("application/json"), Some(schema)) => Some(ResponseFormat::JsonSchema {
            name: "response".into(),
            schema,
            // Gemini's schemas rarely meet OpenAI's strict rules (every
            // property required, no additional properties); strict there
            // would refuse them.
            strict: None,
        }),
        (Some("application/json"), None) => Some(ResponseFormat::JsonObject),
        (None | Some("text/plain"), None) => None,
        (Some(_), _) => {
            req.unknown_fields.push(format!("{AT}.responseMimeType"));
            None
        }
    };
    if let Some(t) = g.thinking_config {
        let at = format!("{AT}.thinkingConfig");
        note(&t.unknown, &at, &mut req.unknown_fields);
        // includeThoughts only decides whether thoughts are shown; the
        // canonical request has no place for it (see the module doc of
        // `answer`).
        let _ = t.include_thoughts;
        if let Some(n) = &t.thinking_budget {
            let path = format!("{at}.thinkingBudget");
            match whole(n, &path)? {
                // Off, and -1 the model's own default: what no budget says.
                0 | -1 => {}
                b => {
                    let budget_tokens = u32::try_from(b).map_err(|_| {
                        DecodeError::new(
                            path.clone(),
                            format!("`{path}` must be -1, 0 or a positive token count, not {b}"),
                        )
                    })?;
                    req.thinking = Some(Thinking { budget_tokens });
                }
            }
        }
        if let Some(level) = t.thinking_level.filter(|l| !l.is_empty()) {
            if req.thinking.is_some() {
                return Err(DecodeError::new(
                    format!("{at}.thinkingLevel"),
                    format!("`{at}` sets both thinkingBudget and thinkingLevel; set one"),
                ));
            }
            let level = level.to_ascii_lowercase();
            if level != "thinking_level_unspecified" {
                req.reasoning_effort = Some(level);
            }
        }
    }
    Ok(())
}

/// A Gemini `Schema` (OpenAPI 3.0 style: upper-case `type`, `nullable`,
/// `propertyOrdering`) as the JSON Schema other providers take. Other
/// keywords pass as they are.
pub(super) fn json_schema(v: Value) -> Value {
    let Value::Object(m) = v else { return v };
    let mut out = Map::with_capacity(m.len());
    let mut nullable = false;
    let mut ordering = None;
    for (k, v) in m {
        let key = match k.as_str() {
            "type" => {
                match v {
                    Value::String(t) if t.eq_ignore_ascii_case("TYPE_UNSPECIFIED") => {}
                    Value::String(t) => {
                        out.insert(k, Value::String(t.to_ascii_lowercase()));
                    }
                    other => {
                        out.insert(k, other);
                    }
                }
                continue;
            }
            "nullable" => {
                nullable = v == Value::Bool(true);
                continue;
            }
            "propertyOrdering" | "property_ordering" => {
                ordering = Some(v);
                continue;
            }
            "properties" => {
                let v = match v {
                    Value::Object(props) => Value::Object(
                        props
                            .into_iter()
                            .map(|(name, s)| (name, json_schema(s)))
                            .collect(),
                    ),
                    other => other,
                };
                out.insert(k, v);
                continue;
            }
            "items" => {
                out.insert(k, json_schema(v));
                continue;
            }
            "anyOf" | "any_of" => {
                let v = match v {
                    Value::Array(a) => Value::Array(a.into_iter().map(json_schema).collect()),
                    other => other,
                };
                out.insert("anyOf".into(), v);
                continue;
            }
            "max_items" => "maxItems",
            "min_items" => "minItems",
            "max_length" => "maxLength",
            "min_length" => "minLength",
            "max_properties" => "maxProperties",
            "min_properties" => "minProperties",
            _ => {
                out.insert(k, v);
                continue;
            }
        };
        out.insert(key.into(), v);
    }
    if nullable && let Some(Value::String(t)) = out.get("type") {
        let t = t.clone();
        out.insert("type".into(), serde_json::json!([t, "null"]));
    }
    // JSON Schema has no ordering keyword; properties written in that order
    // are what other providers follow.
    if let (Some(Value::Array(order)), Some(Value::Object(props))) =
        (ordering, out.get_mut("properties"))
    {
        let mut sorted = Map::with_capacity(props.len());
        for name in order.iter().filter_map(Value::as_str) {
            if let Some(s) = props.remove(name) {
                sorted.insert(name.to_owned(), s);
            }
        }
        sorted.append(props);
        *props = sorted;
    }
    Value::Object(out)
}
