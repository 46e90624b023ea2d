//! What a Response object repeats of its request, whatever served it.
//!
//! Strict clients validate every Response object against OpenAI's schema,
//! so every member is present (`null` where unset, OpenAI's live default
//! where it has one). The members that come from the request are rendered
//! once per request, here, and spliced into each object the answer needs
//! (`response.created`, `in_progress`, the terminal event, the body).

use serde_json::value::RawValue;

use crate::chat;
use crate::wire::{Fields, scan};

/// A tool by its flat name, in the caller's own terms.
#[derive(Debug, Clone)]
pub struct ToolName {
    pub flat: String,
    pub name: String,
    pub namespace: Option<String>,
    pub freeform: bool,
}

/// The request's side of every Response object of one call.
#[derive(Debug)]
pub struct Echo {
    /// What a native upstream's objects are corrected to: the gateway
    /// keeps the conversation (OpenAI never saw `previous_response_id`)
    /// and decides whether the answer is stored.
    previous_response_id: Option<String>,
    store: bool,
    /// `resp_...`: the id the answer goes by (and is stored and resumed by).
    pub id: String,
    /// The request's members, rendered: `"instructions":null,...`.
    members: String,
    /// Tools that go back in the caller's terms (freeform, namespaced).
    tools: Vec<ToolName>,
}

/// Members and their value when the request did not set them (OpenAI's
/// live defaults).
const DEFAULTS: &[(&str, &str)] = &[
    ("background", "false"),
    ("frequency_penalty", "0.0"),
    ("instructions", "null"),
    ("max_output_tokens", "null"),
    ("max_tool_calls", "null"),
    ("parallel_tool_calls", "true"),
    ("presence_penalty", "0.0"),
    ("previous_response_id", "null"),
    ("prompt_cache_key", "null"),
    ("prompt_cache_retention", "null"),
    ("reasoning", r#"{"effort":null,"summary":null}"#),
    ("safety_identifier", "null"),
    ("service_tier", r#""default""#),
    ("temperature", "1.0"),
    ("text", r#"{"format":{"type":"text"},"verbosity":"medium"}"#),
    ("tool_choice", r#""auto""#),
    ("tools", "[]"),
    ("top_logprobs", "0"),
    ("top_p", "1.0"),
    ("truncation", r#""disabled""#),
    ("user", "null"),
    ("metadata", "{}"),
];

impl Echo {
    /// `store`: whether the gateway keeps this response (the caller's
    /// `store` where the key and configuration allow it).
    pub fn new(id: String, fields: &Fields<'_>, req: &chat::Request, store: bool) -> Echo {
        let mut members = String::with_capacity(512);
        for (key, default) in DEFAULTS {
            let value = fields
                .get(key)
                .map(RawValue::get)
                .filter(|v| *v != "null" || *key == "previous_response_id")
                .unwrap_or(default);
            if !members.is_empty() {
                members.push(',');
            }
            members.push('"');
            members.push_str(key);
            members.push_str("\":");
            members.push_str(value);
        }
        members.push_str(if store {
            r#","store":true"#
        } else {
            r#","store":false"#
        });
        let tools = req
            .tools
            .iter()
            .filter(|t| t.origin.freeform || t.origin.namespace.is_some())
            .map(|t| ToolName {
                flat: t.name.clone(),
                name: t.origin.name.clone().unwrap_or_else(|| t.name.clone()),
                namespace: t.origin.namespace.clone(),
                freeform: t.origin.freeform,
            })
            .collect();
        let previous_response_id = fields
            .get("previous_response_id")
            .and_then(|v| serde_json::from_str::<Option<String>>(v.get()).ok())
            .flatten();
        Echo {
            previous_response_id,
            store,
            id,
            members,
            tools,
        }
    }

    /// The caller's terms for a tool the model called by its flat name.
    pub fn tool(&self, flat: &str) -> Option<&ToolName> {
        self.tools.iter().find(|t| t.flat == flat)
    }

    /// A native upstream's Response object as the caller gets it: its id,
    /// `previous_response_id` and `store` are the gateway's (the gateway
    /// stores it, resumes it and keeps its conversation under its own id:
    /// an upstream's ids are not ours to trust as unique).
    pub fn correct(&self, object: &str) -> Option<String> {
        String::from_utf8(self.correct_bytes(object.as_bytes())?).ok()
    }

    /// [`Echo::correct`] on bytes: the three members are spliced in, the
    /// rest of the object kept byte for byte (a decode and re-encode of a
    /// whole Response object cost more than the rest of the call).
    pub fn correct_bytes(&self, object: &[u8]) -> Option<Vec<u8>> {
        let id = serde_json::to_string(&self.id).ok()?;
        let previous = serde_json::to_string(&self.previous_response_id).ok()?;
        let store: &[u8] = if self.store { b"true" } else { b"false" };
        let fixed = [
            ("id", id.as_bytes()),
            ("previous_response_id", previous.as_bytes()),
            ("store", store),
        ];
        scan::set_members(object, &fixed).or_else(|| {
            // What the walk leaves to serde (escaped or repeated keys).
            let mut m: serde_json::Map<String, serde_json::Value> =
                serde_json::from_slice(object).ok()?;
            m.insert("id".into(), self.id.clone().into());
            m.insert(
                "previous_response_id".into(),
                self.previous_response_id.clone().into(),
            );
            m.insert("store".into(), self.store.into());
            serde_json::to_vec(&m).ok()
        })
    }

    /// The request's members, for splicing into a Response object.
    pub fn members(&self) -> &str {
        &self.members
    }

    /// The item id for output item `n` of this response (`msg`, `fc`, ...).
    pub fn item_id(&self, prefix: &str, n: usize) -> String {
        let suffix = self.id.strip_prefix("resp_").unwrap_or(&self.id);
        format!("{prefix}_{suffix}{n:02x}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unset_members_take_openais_defaults_and_set_ones_are_echoed() {
        let body = br#"{"model":"m","input":"hi","temperature":0.2,"metadata":{"a":"b"},"tools":null,"include":["reasoning.encrypted_content"]}"#;
        let (req, fields) = super::super::decode_request(body).unwrap();
        let e = Echo::new("resp_x".into(), &fields, &req, false);
        let v: serde_json::Value = serde_json::from_str(&format!("{{{}}}", e.members())).unwrap();
        assert_eq!(v["temperature"], 0.2);
        assert_eq!(v["metadata"]["a"], "b");
        assert_eq!(v["tools"], serde_json::json!([]));
        assert_eq!(v["top_p"], 1.0);
        assert_eq!(v["store"], false);
        assert_eq!(v["tool_choice"], "auto");
        assert_eq!(e.item_id("msg", 1), "msg_x01");
    }

    #[test]
    fn correcting_keeps_the_upstreams_bytes_and_sets_the_gateways_members() {
        let body = br#"{"model":"m","input":"hi","previous_response_id":"resp_prev"}"#;
        let (req, fields) = super::super::decode_request(body).unwrap();
        let e = Echo::new("resp_ours".into(), &fields, &req, true);
        let up = r#"{"id":"resp_up","object":"response","output":[{"id":"msg_1","content":[{"text":"a\u00e9"}]}],"store":false,"previous_response_id":null}"#;
        assert_eq!(
            e.correct(up).unwrap(),
            r#"{"id":"resp_ours","object":"response","output":[{"id":"msg_1","content":[{"text":"a\u00e9"}]}],"store":true,"previous_response_id":"resp_prev"}"#
        );
        // What the walk refuses, serde corrects (a repeated key: its last).
        let v: serde_json::Value = serde_json::from_str(
            &e.correct(r#"{"id":"a","id":"b","status":"completed"}"#)
                .unwrap(),
        )
        .unwrap();
        assert_eq!(v["id"], "resp_ours");
        assert_eq!(v["store"], true);
        assert_eq!(v["previous_response_id"], "resp_prev");
        assert_eq!(e.correct("not json"), None);
    }
}
