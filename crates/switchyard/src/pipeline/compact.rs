//! `POST /v1/responses/compact` (Codex compacts long sessions with it),
//! for every provider: the gateway asks the model that would serve the
//! conversation to summarise it, through the ordinary journey (policy,
//! budget, failover, record), and answers as OpenAI does: the
//! conversation's user messages, then one `compaction` item whose sealed
//! summary any provider can be given again ([`wire::responses::compaction`]).

use std::sync::Arc;

use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use http::request::Parts;
use http_body_util::BodyExt;
use serde_json::value::RawValue;
use serde_json::{Value, json};

use super::ctx::{Ctx, caller};
use crate::dialect::Dialect;
use crate::error::{GatewayError, Result};
use crate::gateway::Gateway;
use crate::wire::responses::compaction;
use crate::wire::{self, Fields, TextOrList, field};

/// What the model is asked to do.
const INSTRUCTIONS: &str = "You compact a conversation so it can go on in a smaller context. \
Write a faithful, dense summary of everything needed to continue it: the user's goals and \
constraints, decisions made, facts learned, tool calls that mattered and their results, files \
and code touched, open questions and the next steps. Keep names, numbers and identifiers \
exact. Write only the summary.";
const ASK: &str = "Summarise the conversation above as instructed.";

/// The largest answer of an internal call read.
const MAX_ANSWER: usize = 64 * 1024 * 1024;

pub async fn compact(gw: Arc<Gateway>, parts: Parts, body: Bytes) -> Response {
    let ctx = Ctx::new(&gw, Dialect::Responses);
    match run(&gw, &ctx, parts, body).await {
        Ok(resp) => resp,
        Err(e) => ctx.error(e),
    }
}

/// The user messages among `items`, as they were.
fn user_messages(items: &[Box<RawValue>]) -> Vec<Value> {
    items
        .iter()
        .filter_map(|i| serde_json::from_str::<Value>(i.get()).ok())
        .filter(|v| v["role"] == "user" && (v["type"].is_null() || v["type"] == "message"))
        .collect()
}

async fn run(gw: &Arc<Gateway>, ctx: &Ctx, parts: Parts, body: Bytes) -> Result<Response> {
    let fields = Fields::parse(&body)?;
    let model: String = field(
        "model",
        fields
            .get("model")
            .ok_or_else(|| wire::DecodeError::missing("model"))?,
    )?;
    let input: Vec<Box<RawValue>> = match fields.get("input") {
        None => Vec::new(),
        Some(raw) => match field::<Option<TextOrList<Box<RawValue>>>>("input", raw)? {
            None => Vec::new(),
            Some(TextOrList::Text(t)) => vec![wire::to_raw(&json!({
                "type": "message", "role": "user",
                "content": [{"type": "input_text", "text": t}],
            }))],
            Some(TextOrList::List(l)) => l,
        },
    };
    let previous: Option<String> = match fields.get("previous_response_id") {
        Some(v) => wire::opt_field("previous_response_id", v)?,
        None => None,
    };
    // The whole conversation, for its user messages.
    let mut items = Vec::new();
    if let Some(id) = &previous {
        let owner = caller(&parts)?.key_id().unwrap_or("anonymous").to_owned();
        let (_, history) = crate::conversations::history(gw, &owner, id)
            .await
            .map_err(|e| {
                GatewayError::Unavailable(format!("the response store is unavailable: {e}"))
            })?
            .ok_or_else(|| GatewayError::MissingReference {
                param: "previous_response_id".into(),
                code: "previous_response_not_found",
                message: format!("Previous response with id '{id}' not found"),
            })?;
        items.extend(history);
    }
    items.extend(input.iter().cloned());
    let mut ask: Vec<&RawValue> = input.iter().map(|b| &**b).collect();
    let prompt = wire::to_raw(&json!({"role": "user", "content": ASK}));
    ask.push(&prompt);
    let mut internal = json!({
        "model": model,
        "instructions": match fields.get("instructions").and_then(|v| serde_json::from_str::<String>(v.get()).ok()) {
            Some(theirs) => format!("{INSTRUCTIONS}\n\nThe conversation's own instructions were:\n{theirs}"),
            None => INSTRUCTIONS.to_owned(),
        },
        "input": ask,
        "store": false,
    });
    if let Some(id) = &previous {
        internal["previous_response_id"] = json!(id);
    }
    let resp = super::chat(
        gw.clone(),
        Dialect::Responses,
        parts,
        Bytes::from(wire::to_vec(&internal)),
    )
    .await;
    if !resp.status().is_success() {
        return Ok(resp);
    }
    let (head, body) = resp.into_parts();
    let bytes = http_body_util::Limited::new(body, MAX_ANSWER)
        .collect()
        .await
        .map_err(|e| GatewayError::Internal(format!("the summary could not be read: {e}")))?
        .to_bytes();
    let answer: Value = serde_json::from_slice(&bytes)
        .map_err(|e| GatewayError::Internal(format!("the summary is not a Response: {e}")))?;
    let summary: String = answer["output"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|i| i["type"] == "message")
        .flat_map(|i| i["content"].as_array().cloned().unwrap_or_default())
        .filter_map(|c| c["text"].as_str().map(str::to_owned))
        .collect();
    let mut output = user_messages(&items);
    output.push(json!({
        "id": format!("cmp_{}", ctx.id.simple()),
        "type": "compaction",
        "encrypted_content": compaction::seal(&summary),
    }));
    let mut out = axum::Json(json!({
        "id": format!("resp_{}", ctx.id.simple()),
        "object": "response.compaction",
        "created_at": crate::clock::unix_s(),
        "output": output,
        "usage": answer["usage"],
    }))
    .into_response();
    // What served the summary, as the internal call's answer said.
    for (name, value) in head.headers.iter() {
        if name.as_str().starts_with("x-switchyard-") && name != super::REQUEST_ID {
            out.headers_mut().insert(name.clone(), value.clone());
        }
    }
    ctx.stamp(out.headers_mut());
    Ok(out)
}
