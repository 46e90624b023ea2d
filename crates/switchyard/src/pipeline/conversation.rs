//! A turn of a stored conversation (the Responses dialect): before the body
//! is decoded, the conversation it continues (`previous_response_id`) and
//! the items it refers to (`item_reference`) are put into its `input`, so
//! every provider sees the whole conversation; whether the answer is kept
//! is decided; and when the answer is complete, it is kept.

use std::sync::Arc;

use bytes::Bytes;
use http::request::Parts;
use serde_json::value::RawValue;

use super::ctx::Ctx;
use crate::auth::Caller;
use crate::conversations::{self, StoredResponse};
use crate::error::{GatewayError, Result};
use crate::gateway::Gateway;
use crate::routing::{Plan, Target};
use crate::wire::{Fields, TextOrList, field};

/// What a Responses turn carries to its end.
pub(super) struct Turn {
    /// The answer is kept.
    pub store: bool,
    owner: String,
    /// The response this turn continues.
    pub previous: Option<Arc<StoredResponse>>,
    /// The body to decode when it is not the caller's own: the caller's
    /// with its conversation put into `input`.
    pub expanded: Option<Bytes>,
    /// This turn's own input items, each with an id, to keep.
    input: Vec<Box<RawValue>>,
}

fn not_found(param: &str, code: &'static str, message: String) -> GatewayError {
    GatewayError::MissingReference {
        param: param.to_owned(),
        code,
        message,
    }
}

/// The turn a request begins: `None` for dialects without stored
/// conversations.
pub(super) async fn begin(
    gw: &Gateway,
    ctx: &Ctx,
    caller: &Caller,
    parts: &Parts,
    body: &Bytes,
) -> Result<Option<Turn>> {
    if !ctx.dialect.keeps_conversations() {
        return Ok(None);
    }
    let fields = Fields::parse(body)?;
    let owner = caller.key_id().unwrap_or("anonymous").to_owned();
    let asked = match fields.get("store") {
        Some(v) => crate::wire::opt_field::<bool>("store", v)?.unwrap_or(true),
        None => true,
    };
    let store = asked
        && gw.config.responses.store
        && crate::policy::log_mode(gw, caller, &parts.headers)? != crate::config::LogMode::None;
    let previous_id = match fields.get("previous_response_id") {
        Some(v) => crate::wire::opt_field::<String>("previous_response_id", v)?,
        None => None,
    };
    let Some(input) = fields.get("input") else {
        return Err(crate::wire::DecodeError::missing("input").into());
    };
    // This turn's items, an item_reference replaced by the item it names.
    let mut items: Vec<Box<RawValue>> = match field::<TextOrList<Box<RawValue>>>("input", input)? {
        TextOrList::Text(t) => vec![crate::wire::to_raw(&serde_json::json!({
            "type": "message", "role": "user",
            "content": [{"type": "input_text", "text": t}],
        }))],
        TextOrList::List(l) => l,
    };
    let mut referred = false;
    for (i, item) in items.iter_mut().enumerate() {
        if let Some(id) = reference(item) {
            let found = conversations::find_item(gw, &owner, &id)
                .await
                .map_err(unavailable)?;
            *item = found.ok_or_else(|| {
                not_found(
                    &format!("input[{i}].id"),
                    "item_not_found",
                    format!("Item with id '{id}' not found: it is not in a stored response of this key (never stored, deleted, or expired)"),
                )
            })?;
            referred = true;
        }
    }
    let previous = match &previous_id {
        None => None,
        Some(id) => Some(
            conversations::history(gw, &owner, id)
                .await
                .map_err(unavailable)?
                .ok_or_else(|| {
                    not_found(
                        "previous_response_id",
                        "previous_response_not_found",
                        format!(
                            "Previous response with id '{id}' not found: the gateway keeps a response only for the key that made it, \
                             when it was sent with store true, the key's log mode is not none and [responses] store is on, \
                             for [responses] retain_days, until it is deleted"
                        ),
                    )
                })?,
        ),
    };
    let expanded = match &previous {
        None if !referred => None,
        _ => {
            let history = previous.as_ref().map(|(_, h)| h.as_slice()).unwrap_or(&[]);
            let mut all: Vec<&RawValue> = Vec::with_capacity(history.len() + items.len());
            all.extend(history.iter().map(|b| &**b));
            all.extend(items.iter().map(|b| &**b));
            Some(Bytes::from(with_input(&fields, &all)))
        }
    };
    if store {
        for (n, item) in items.iter_mut().enumerate() {
            if conversations::item_id(item).is_none() {
                *item = with_id(item, &format!("in_{}{n:02x}", ctx.id.simple()));
            }
        }
    }
    Ok(Some(Turn {
        store,
        owner,
        previous: previous.map(|(r, _)| r),
        expanded,
        input: if store { items } else { Vec::new() },
    }))
}

fn unavailable(e: anyhow::Error) -> GatewayError {
    GatewayError::Unavailable(format!("the response store is unavailable: {e}"))
}

/// The id an `item_reference` names.
fn reference(item: &RawValue) -> Option<String> {
    #[derive(serde::Deserialize)]
    struct Peek {
        #[serde(rename = "type", default)]
        kind: Option<String>,
        #[serde(default)]
        id: Option<String>,
    }
    let p: Peek = serde_json::from_str(item.get()).ok()?;
    (p.kind.as_deref() == Some("item_reference"))
        .then_some(p.id)
        .flatten()
}

/// An item with an `id` added: spliced into its bytes (the walk replaces an
/// `id` member that is there, or appends one), or, for an object the walk
/// leaves to serde, decoded and encoded again.
fn with_id(item: &RawValue, id: &str) -> Box<RawValue> {
    let spliced =
        crate::wire::scan::set_members(item.get().as_bytes(), &[("id", &crate::wire::to_vec(id))])
            .and_then(|b| String::from_utf8(b).ok())
            .and_then(|s| RawValue::from_string(s).ok());
    if let Some(raw) = spliced {
        return raw;
    }
    match serde_json::from_str::<serde_json::Map<String, serde_json::Value>>(item.get()) {
        Ok(mut m) => {
            m.insert("id".into(), id.into());
            crate::wire::to_raw(&m)
        }
        Err(_) => crate::wire::own(item),
    }
}

/// The body with `input` replaced; every other member as it came.
fn with_input(fields: &Fields<'_>, input: &[&RawValue]) -> Vec<u8> {
    let size: usize = input.iter().map(|i| i.get().len() + 1).sum::<usize>()
        + fields
            .0
            .iter()
            .map(|(k, v)| k.len() + v.get().len() + 4)
            .sum::<usize>();
    let mut out = Vec::with_capacity(size + 16);
    out.push(b'{');
    for (n, (k, v)) in fields.0.iter().enumerate() {
        if n > 0 {
            out.push(b',');
        }
        out.extend_from_slice(&crate::wire::to_vec(k.as_ref()));
        out.push(b':');
        if k == "input" {
            out.push(b'[');
            for (j, item) in input.iter().enumerate() {
                if j > 0 {
                    out.push(b',');
                }
                out.extend_from_slice(item.get().as_bytes());
            }
            out.push(b']');
        } else {
            out.extend_from_slice(v.get().as_bytes());
        }
    }
    out.push(b'}');
    out
}

impl Turn {
    /// A turn that continues a response goes first to what served it, when
    /// it names the same model (the route or `provider/model`) it did.
    pub(super) fn prefer_previous(&self, requested: &str, plan: &mut Plan) {
        let Some(p) = &self.previous else { return };
        if p.requested_model != requested {
            return;
        }
        let (Some(provider), Some(model)) = (&p.provider, &p.model) else {
            return;
        };
        let same = |t: &Target| t.provider.name() == provider && t.model == *model;
        if let Some(i) = plan.attempts.iter().position(same)
            && i > 0
        {
            let t = plan.attempts.remove(i);
            plan.attempts.insert(0, t);
        }
    }

    /// Keeps the turn's complete answer (the Response object `response`)
    /// when the turn is stored.
    pub(super) fn finish(
        self,
        gw: &Gateway,
        ctx: &Ctx,
        requested: &str,
        target: &Target,
        response: Option<&str>,
    ) {
        if !self.store {
            return;
        }
        let Some(response) = response else { return };
        #[derive(serde::Deserialize)]
        struct Peek<'a> {
            id: String,
            #[serde(default, borrow)]
            output: Vec<&'a RawValue>,
        }
        let Ok(p) = serde_json::from_str::<Peek>(response) else {
            tracing::warn!(request_id = %ctx.id, trace_id = %ctx.trace, "A Response object could not be read; it is not stored");
            return;
        };
        let now = crate::clock::unix_ms();
        conversations::keep(
            gw,
            StoredResponse {
                id: p.id,
                owner: self.owner,
                created_ms: now,
                expires_ms: now + i64::from(gw.config.responses.retain_days) * 86_400_000,
                previous_id: self.previous.as_ref().map(|r| r.id.clone()),
                requested_model: requested.to_owned(),
                provider: Some(target.provider.name().to_owned()),
                model: Some(target.model.clone()),
                request_id: ctx.id.to_string(),
                response: response.to_owned(),
                input: self.input,
                output: p.output.into_iter().map(crate::wire::own).collect(),
            },
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_item_gets_its_id_spliced_in_or_replaced() {
        let raw = |s: &str| RawValue::from_string(s.to_owned()).unwrap();
        let with = |s: &str| with_id(&raw(s), "in_1").get().to_owned();
        assert_eq!(
            with(r#"{"type":"message","role":"user","content":"hi"}"#),
            r#"{"type":"message","role":"user","content":"hi","id":"in_1"}"#
        );
        assert_eq!(
            with(r#"{"id":null,"type":"message"}"#),
            r#"{"id":"in_1","type":"message"}"#
        );
        assert_eq!(with("{}"), r#"{"id":"in_1"}"#);
        // A key with an escape is left to serde, which gives the same.
        assert_eq!(
            with(r#"{"ty\u0070e":"message"}"#),
            r#"{"type":"message","id":"in_1"}"#
        );
        // Not an object: kept as it is.
        assert_eq!(with(r#""text""#), r#""text""#);
    }
}
