//! The OpenAPI 3.1 document of both listeners, served at `GET
//! /admin/v1/openapi.json`.
//!
//! Nothing in it is kept by hand apart from one line of prose per
//! operation: the paths come from the route tables the routers are built
//! from ([`crate::admin::ROUTES`], [`crate::api::PROTECTED`] and the health
//! routes), and every admin answer's schema from the type its handler
//! serializes ([`crate::admin::views`] and the stores' row types), through
//! schemars. A unit test checks that each route has an operation, and the
//! integration tests check every admin answer they receive against it.

use std::sync::OnceLock;

use schemars::JsonSchema;
use schemars::generate::{SchemaGenerator, SchemaSettings};
use serde_json::{Map, Value, json};

use crate::admin::views;

/// The document, built on first use.
pub fn document() -> &'static Value {
    static DOC: OnceLock<Value> = OnceLock::new();
    DOC.get_or_init(build)
}

/// A query parameter: name, JSON Schema, what it does.
type Param = (&'static str, Value, &'static str);

/// One admin operation, before it is written out.
struct AdminOp {
    summary: &'static str,
    query: Vec<Param>,
    body: Option<Value>,
    ok: u16,
    answer: Value,
    /// Error statuses beyond 401 and 403, which every admin route has.
    errors: &'static [u16],
}

fn build() -> Value {
    let mut answers = SchemaSettings::draft2020_12()
        .for_serialize()
        .with(|s| {
            s.definitions_path = "/components/schemas".into();
            s.meta_schema = None;
        })
        .into_generator();
    // Request bodies inline: they are few, and described as they are read
    // (a deserialize contract), which differs from how answers are written.
    let mut bodies = SchemaSettings::draft2020_12()
        .for_deserialize()
        .with(|s| {
            s.inline_subschemas = true;
            s.meta_schema = None;
        })
        .into_generator();

    let mut paths = Map::new();
    let admin_error = answers.subschema_for::<crate::wire::openai::error::Envelope>();
    for (method, path) in crate::admin::ROUTES {
        let Some(op) = admin_operation(method, path, &mut answers, &mut bodies) else {
            continue;
        };
        let operation = write_admin(method, path, op, &admin_error);
        entry(&mut paths, path).insert(method.to_ascii_lowercase(), operation);
    }
    let errors = DialectErrors {
        openai: admin_error.into(),
        anthropic: answers
            .subschema_for::<crate::wire::anthropic::error::Envelope>()
            .into(),
        gemini: answers
            .subschema_for::<crate::wire::gemini::answer::ErrorEnvelope>()
            .into(),
    };
    for (method, path) in crate::api::PROTECTED {
        let Some(d) = data_plane(method, path) else {
            continue;
        };
        for m in methods(method, path) {
            let op = write_data_plane(m, path, &d, &errors);
            entry(&mut paths, &openapi_path(path)).insert(m.to_owned(), op);
        }
    }
    for path in crate::api::health::PUBLIC_PATHS {
        let summary = match *path {
            "/healthz" => "Liveness: the process answers",
            "/readyz" => "Readiness: storage reachable and at least one provider usable",
            _ => "Prometheus metrics (text exposition format)",
        };
        let media = if *path == "/metrics" {
            "text/plain"
        } else {
            "application/json"
        };
        entry(&mut paths, path).insert(
            "get".into(),
            json!({
                "summary": summary,
                "tags": ["health"],
                "security": [],
                "responses": {
                    "200": {"description": "OK", "content": {media: {"schema": {}}}},
                    "503": {"description": "Not ready", "content": {media: {"schema": {}}}},
                },
            }),
        );
    }

    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "Switchyard",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "A self-hosted AI inference gateway. The data plane (tag `data-plane`, \
                on `[server] listen`) speaks the providers' own APIs: OpenAI Chat Completions and \
                Responses, Anthropic Messages and Gemini; their bodies are those APIs' and are not \
                repeated here. The admin API (tag `admin`, on `[server] admin_listen`) needs the \
                admin token as a bearer token.",
        },
        "tags": [
            {"name": "admin", "description": "The operator's API, on the admin listener."},
            {"name": "data-plane", "description": "What agents call, on the main listener."},
            {"name": "health", "description": "Unauthenticated probes, on the main listener."},
        ],
        "paths": paths,
        "components": {
            "schemas": answers.take_definitions(true),
            "securitySchemes": {
                "adminToken": {"type": "http", "scheme": "bearer",
                    "description": "The admin token (`auth.admin_token_env`, or the generated token file)."},
                "agentKey": {"type": "http", "scheme": "bearer",
                    "description": "A Switchyard key (`sk-sy-...`)."},
                "anthropicKey": {"type": "apiKey", "in": "header", "name": "x-api-key",
                    "description": "A Switchyard key, as Anthropic clients send theirs."},
                "geminiKey": {"type": "apiKey", "in": "header", "name": "x-goog-api-key",
                    "description": "A Switchyard key, as Gemini clients send theirs."},
            },
        },
    })
}

fn entry<'a>(paths: &'a mut Map<String, Value>, path: &str) -> &'a mut Map<String, Value> {
    let v = paths
        .entry(path.to_owned())
        .or_insert_with(|| Value::Object(Map::new()));
    match v {
        Value::Object(m) => m,
        _ => unreachable!("paths only hold objects"),
    }
}

/// axum's `{*rest}` (a tail, slashes included) as an OpenAPI template.
fn openapi_path(path: &str) -> String {
    path.replace("{*", "{")
}

/// The `{name}` parameters of a path template.
fn path_params(path: &str) -> Vec<Value> {
    path.split('/')
        .filter_map(|seg| seg.strip_prefix('{')?.strip_suffix('}'))
        .map(|name| {
            let (name, tail) = match name.strip_prefix('*') {
                Some(n) => (n, true),
                None => (name, false),
            };
            let description = if tail {
                "The rest of the path, slashes included."
            } else {
                "An id or name."
            };
            json!({"name": name, "in": "path", "required": true,
                "schema": {"type": "string"}, "description": description})
        })
        .collect()
}

fn schema_of<T: JsonSchema>(g: &mut SchemaGenerator) -> Value {
    g.subschema_for::<T>().into()
}

fn string() -> Value {
    json!({"type": "string"})
}

fn time() -> Value {
    json!({"type": "string", "description": "Unix milliseconds, or an RFC 3339 UTC time (`2026-11-28T10:00:00Z`)."})
}

fn limit(max: u32) -> Value {
    json!({"type": "integer", "minimum": 1, "maximum": max})
}

fn one_of(values: &[&str]) -> Value {
    json!({"type": "string", "enum": values})
}

fn admin_operation(
    method: &str,
    path: &str,
    g: &mut SchemaGenerator,
    bodies: &mut SchemaGenerator,
) -> Option<AdminOp> {
    use crate::approvals::Approval;
    use crate::audit::{Listed as AuditRecord, Verdict};
    use crate::cache::EntryMeta;
    use crate::log_store::query::{Record, UsageRow};
    use crate::mcp::pins::Change;
    use views::{CachePage, Deleted, KeyView, List, Page, Providers, Stats};

    let op = |summary, query, body, ok, answer, errors| AdminOp {
        summary,
        query,
        body,
        ok,
        answer,
        errors,
    };
    let since_until = || {
        vec![
            ("since", time(), "Start of the range (inclusive)."),
            ("until", time(), "End of the range (exclusive)."),
        ]
    };
    let bucket = || {
        (
            "bucket",
            one_of(&["minute", "hour", "day"]),
            "Sums per time bucket.",
        )
    };
    Some(match (method, path) {
        ("GET", "/admin/v1/config") => op(
            "The resolved configuration; provider keys as the variable that holds them and whether it is set",
            vec![],
            None,
            200,
            schema_of::<crate::config::Config>(g),
            &[],
        ),
        ("POST", "/admin/v1/config/reload") => op(
            "Read the configuration file again and apply it (as SIGHUP does); a file with any fault changes nothing",
            vec![],
            None,
            200,
            schema_of::<crate::server::reload::Outcome>(g),
            &[400, 503],
        ),
        ("GET", "/admin/v1/providers") => op(
            "Each provider with its circuit, error rate, latency and last error, and the same per model",
            vec![],
            None,
            200,
            schema_of::<Providers>(g),
            &[],
        ),
        ("GET", "/admin/v1/keys") => op(
            "List keys",
            vec![(
                "include_revoked",
                json!({"type": "boolean"}),
                "Revoked keys too.",
            )],
            None,
            200,
            schema_of::<List<KeyView>>(g),
            &[400, 503],
        ),
        ("POST", "/admin/v1/keys") => op(
            "Create a key; the answer holds its secret, shown this once",
            vec![],
            Some(schema_of::<crate::keys::manage::KeySpec>(bodies)),
            201,
            schema_of::<KeyView>(g),
            &[400, 503],
        ),
        ("GET", "/admin/v1/keys/{id}") => op(
            "Show a key, with its budget spent and held in the current period",
            vec![],
            None,
            200,
            schema_of::<KeyView>(g),
            &[404, 503],
        ),
        ("PATCH", "/admin/v1/keys/{id}") => op(
            "Change a key's settings (a field left out keeps its value, null clears it)",
            vec![],
            Some(schema_of::<crate::keys::manage::KeySpec>(bodies)),
            200,
            schema_of::<KeyView>(g),
            &[400, 404, 409, 503],
        ),
        ("DELETE", "/admin/v1/keys/{id}") => op(
            "Revoke a key",
            vec![],
            None,
            200,
            schema_of::<KeyView>(g),
            &[404, 409, 503],
        ),
        ("GET", "/admin/v1/logs") => {
            let mut q: Vec<Param> = ["key", "route", "provider", "model", "error_class"]
                .into_iter()
                .map(|n| (n, string(), "Only records with this value."))
                .collect();
            q.push((
                "trace_id",
                string(),
                "Only the records of this W3C trace id.",
            ));
            q.push((
                "status",
                json!({"type": "integer"}),
                "Only answers with this HTTP status.",
            ));
            q.extend(since_until());
            q.push(("limit", limit(500), "Records per page (default 50)."));
            q.push(("cursor", string(), "`next_cursor` of the previous page."));
            op(
                "Request records, newest first; `metadata.<tag>=<value>` filters by a caller's tag",
                q,
                None,
                200,
                schema_of::<Page<Record, String>>(g),
                &[400, 503],
            )
        }
        ("GET", "/admin/v1/logs/{id}") => op(
            "One request record, with its attempts and (log mode full) bodies",
            vec![],
            None,
            200,
            schema_of::<Record>(g),
            &[404, 503],
        ),
        ("GET", "/admin/v1/usage") => {
            let mut q: Vec<Param> = vec![(
                "group_by",
                string(),
                "Up to 4 of provider, model, key, route, status, metadata.<tag>, comma-separated.",
            )];
            q.extend(since_until());
            q.push(bucket());
            op(
                "Requests, tokens and cost summed per group",
                q,
                None,
                200,
                schema_of::<List<UsageRow>>(g),
                &[400, 503],
            )
        }
        ("GET", "/admin/v1/stats") => {
            let mut q = since_until();
            q.push(bucket());
            op(
                "Traffic, errors, latency and time-to-first-token percentiles per bucket, with the busiest models and providers",
                q,
                None,
                200,
                schema_of::<Stats>(g),
                &[400, 503],
            )
        }
        ("GET", "/admin/v1/cache") => op(
            "Cache entries (metadata only, never bodies)",
            vec![
                ("namespace", string(), "Only this namespace."),
                ("limit", limit(500), "Entries per page (default 50)."),
                ("cursor", string(), "`next_cursor` of the previous page."),
            ],
            None,
            200,
            schema_of::<CachePage<EntryMeta>>(g),
            &[400, 503],
        ),
        ("DELETE", "/admin/v1/cache") => op(
            "Purge the cache, or one namespace of it",
            vec![("namespace", string(), "Only this namespace.")],
            None,
            200,
            schema_of::<Deleted>(g),
            &[400, 503],
        ),
        ("DELETE", "/admin/v1/cache/{id}") => op(
            "Purge one cache entry",
            vec![],
            None,
            200,
            schema_of::<Deleted>(g),
            &[404, 503],
        ),
        ("GET", "/admin/v1/approvals") => op(
            "Held tool calls and their decisions",
            vec![
                (
                    "state",
                    one_of(&["pending", "approved", "denied", "expired", "executed"]),
                    "Only this state.",
                ),
                ("limit", limit(500), "At most this many (default 100)."),
            ],
            None,
            200,
            schema_of::<List<Approval>>(g),
            &[400, 503],
        ),
        ("POST", "/admin/v1/approvals/{id}") => op(
            "Approve or deny a held tool call",
            vec![],
            Some(schema_of::<crate::admin::tools::Decision>(bodies)),
            200,
            schema_of::<Approval>(g),
            &[400, 404, 409, 503],
        ),
        ("GET", "/admin/v1/tool-calls") => op(
            "The audit trail of tool calls and decisions, newest first",
            vec![
                (
                    "kind",
                    one_of(&[
                        "tool_call",
                        "approval_requested",
                        "approval_decided",
                        "mcp_change_decided",
                    ]),
                    "Only this kind of record.",
                ),
                (
                    "cursor",
                    json!({"type": "integer"}),
                    "`next_cursor` of the previous page.",
                ),
                ("limit", limit(500), "Records per page (default 100)."),
            ],
            None,
            200,
            schema_of::<Page<AuditRecord, i64>>(g),
            &[400, 503],
        ),
        ("GET", "/admin/v1/audit/verify") => op(
            "Re-walk the audit chain from its start and check every hash",
            vec![],
            None,
            200,
            schema_of::<Verdict>(g),
            &[503],
        ),
        ("GET", "/admin/v1/mcp/changes") => op(
            "MCP tools whose definition changed after the gateway pinned them",
            vec![(
                "state",
                one_of(&["pending", "accepted", "rejected"]),
                "Only this state.",
            )],
            None,
            200,
            schema_of::<List<Change>>(g),
            &[400, 503],
        ),
        ("POST", "/admin/v1/mcp/changes/{id}") => op(
            "Accept or reject a changed MCP tool",
            vec![],
            Some(schema_of::<crate::admin::mcp::Decision>(bodies)),
            200,
            schema_of::<Option<Change>>(g),
            &[400, 404, 503],
        ),
        ("GET", "/admin/v1/openapi.json") => op(
            "This document",
            vec![],
            None,
            200,
            json!({"type": "object"}),
            &[],
        ),
        _ => return None,
    })
}

fn reason(status: u16) -> &'static str {
    http::StatusCode::from_u16(status)
        .ok()
        .and_then(|s| s.canonical_reason())
        .unwrap_or("Error")
}

fn write_admin(method: &str, path: &str, op: AdminOp, error: &schemars::Schema) -> Value {
    let mut params = path_params(path);
    params.extend(op.query.into_iter().map(|(name, schema, description)| {
        json!({"name": name, "in": "query", "required": false,
            "schema": schema, "description": description})
    }));
    let mut responses = Map::new();
    responses.insert(
        op.ok.to_string(),
        json!({"description": reason(op.ok), "content": {"application/json": {"schema": op.answer}}}),
    );
    let mut errors = vec![401, 403];
    errors.extend_from_slice(op.errors);
    errors.sort_unstable();
    for status in errors {
        responses.insert(
            status.to_string(),
            json!({"description": reason(status), "content": {"application/json": {"schema": error}}}),
        );
    }
    let mut v = json!({
        "operationId": operation_id(method, path),
        "summary": op.summary,
        "tags": ["admin"],
        "security": [{"adminToken": []}],
        "parameters": params,
        "responses": responses,
    });
    if let Some(body) = op.body {
        v["requestBody"] =
            json!({"required": true, "content": {"application/json": {"schema": body}}});
    }
    v
}

/// `GET /admin/v1/keys/{id}` → `getKeysId`, `POST /v1/messages` →
/// `postV1Messages`.
fn operation_id(method: &str, path: &str) -> String {
    let mut id = method.to_ascii_lowercase();
    let rest = path.trim_start_matches("/admin/v1/");
    for word in rest.split(|c: char| !c.is_ascii_alphanumeric()) {
        let mut chars = word.chars();
        if let Some(first) = chars.next() {
            id.push(first.to_ascii_uppercase());
            id.push_str(chars.as_str());
        }
    }
    id
}

#[derive(Clone, Copy)]
enum Caller {
    OpenAi,
    Anthropic,
    Gemini,
    /// Whatever the provider, tool or stream behind it answers.
    Upstream,
}

struct DataPlaneOp {
    summary: &'static str,
    caller: Caller,
    streams: bool,
}

struct DialectErrors {
    openai: Value,
    anthropic: Value,
    gemini: Value,
}

fn data_plane(method: &str, path: &str) -> Option<DataPlaneOp> {
    use Caller::*;
    let op = |summary, caller, streams| DataPlaneOp {
        summary,
        caller,
        streams,
    };
    Some(match (method, path) {
        ("POST", "/v1/chat/completions") => op("OpenAI Chat Completions", OpenAi, true),
        ("POST", "/v1/embeddings") => op("OpenAI Embeddings", OpenAi, false),
        ("GET", "/v1/models") => op(
            "The models and routes this key may call (OpenAI's list; Anthropic's with `anthropic-version`)",
            OpenAi,
            false,
        ),
        ("POST", "/v1/messages") => op("Anthropic Messages", Anthropic, true),
        ("POST", "/v1/responses") => op("OpenAI Responses: create", OpenAi, true),
        ("GET", "/v1/responses") => {
            op("OpenAI Responses over a WebSocket (Upgrade)", OpenAi, false)
        }
        ("POST", "/v1/responses/compact") => op("OpenAI Responses: compact", OpenAi, false),
        ("POST", "/v1/responses/input_tokens") => {
            op("OpenAI Responses: count input tokens", OpenAi, false)
        }
        ("GET", "/v1/responses/{id}") => op(
            "OpenAI Responses: a stored response (`?stream=true` replays it)",
            OpenAi,
            true,
        ),
        ("DELETE", "/v1/responses/{id}") => {
            op("OpenAI Responses: delete a stored response", OpenAi, false)
        }
        ("GET", "/v1/responses/{id}/input_items") => {
            op("OpenAI Responses: a stored response's input", OpenAi, false)
        }
        ("POST", "/v1beta/models/{*rest}") | ("POST", "/v1/models/{*rest}") => op(
            "Gemini: `{model}:generateContent`, `:streamGenerateContent`, `:countTokens`, `:embedContent`, `:batchEmbedContents`",
            Gemini,
            true,
        ),
        ("GET", "/v1beta/models") => op("Gemini: list models", Gemini, false),
        ("GET", "/v1beta/models/{*rest}") | ("GET", "/v1/models/{*rest}") => {
            op("A model (Gemini's shape under /v1beta)", Gemini, false)
        }
        ("ANY", "/passthrough/{provider}/{*rest}") => op(
            "Any call to a provider's own API, with the provider's key added",
            Upstream,
            true,
        ),
        ("ANY", "/tools/{tool}") | ("ANY", "/tools/{tool}/{*rest}") => op(
            "A credentialed HTTP tool: reads pass, writes may wait for an approval (202)",
            Upstream,
            false,
        ),
        ("GET", "/v1/tool-approvals/{id}") => op("The state of a held tool call", OpenAi, false),
        ("ANY", "/mcp") => op(
            "The MCP gateway (Streamable HTTP): the tools of every configured MCP server",
            Upstream,
            true,
        ),
        ("GET", "/v1/streams/{id}") => op(
            "Resume a buffered stream from `Last-Event-ID`",
            Upstream,
            true,
        ),
        _ => return None,
    })
}

/// The methods a table row stands for.
fn methods(method: &str, path: &str) -> Vec<&'static str> {
    match (method, path) {
        ("ANY", "/mcp") => vec!["get", "post", "delete"],
        ("ANY", _) => vec!["get", "post", "put", "patch", "delete"],
        ("GET", _) => vec!["get"],
        ("POST", _) => vec!["post"],
        ("DELETE", _) => vec!["delete"],
        _ => vec![],
    }
}

fn write_data_plane(method: &str, path: &str, d: &DataPlaneOp, errors: &DialectErrors) -> Value {
    let (security, error) = match d.caller {
        Caller::OpenAi => (json!([{"agentKey": []}]), Some(&errors.openai)),
        Caller::Anthropic => (
            json!([{"anthropicKey": []}, {"agentKey": []}]),
            Some(&errors.anthropic),
        ),
        Caller::Gemini => (
            json!([{"geminiKey": []}, {"agentKey": []}]),
            Some(&errors.gemini),
        ),
        Caller::Upstream => (
            json!([{"agentKey": []}, {"anthropicKey": []}, {"geminiKey": []}]),
            None,
        ),
    };
    let mut ok = json!({"application/json": {"schema": {}}});
    if d.streams {
        ok["text/event-stream"] = json!({"schema": {"type": "string"}});
    }
    let error_content = match error {
        Some(schema) => json!({"application/json": {"schema": schema}}),
        None => json!({"application/json": {"schema": {}}}),
    };
    let mut v = json!({
        "operationId": operation_id(method, path),
        "summary": d.summary,
        "tags": ["data-plane"],
        "security": security,
        "parameters": path_params(path),
        "responses": {
            "200": {"description": "The provider's answer, in the caller's dialect", "content": ok},
            "default": {"description": "An error, in the caller's dialect", "content": error_content},
        },
    });
    if method != "get" && method != "delete" {
        v["requestBody"] = json!({"content": {"application/json": {"schema": {}}}});
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_route_is_in_the_document() {
        let doc = document();
        assert_eq!(doc["openapi"], "3.1.0");
        for (method, path) in crate::admin::ROUTES {
            let op = &doc["paths"][*path][method.to_ascii_lowercase()];
            assert!(op.is_object(), "{method} {path} has no operation");
            assert!(op["responses"]["401"].is_object(), "{method} {path}");
        }
        for (method, path) in crate::api::PROTECTED {
            for m in methods(method, path) {
                let op = &doc["paths"][openapi_path(path)][m];
                assert!(op.is_object(), "{m} {path} has no operation");
            }
        }
    }

    #[test]
    fn every_reference_resolves() {
        let doc = document();
        let text = doc.to_string();
        let schemas = doc["components"]["schemas"].as_object().unwrap();
        let mut rest = text.as_str();
        let mut seen = 0;
        while let Some(i) = rest.find("\"$ref\":\"#/components/schemas/") {
            rest = &rest[i + 29..];
            let name = &rest[..rest.find('"').unwrap()];
            assert!(schemas.contains_key(name), "dangling reference to {name}");
            seen += 1;
        }
        assert!(seen > 20, "{seen} references");
        // Ids are unique.
        let mut ids: Vec<&str> = doc["paths"]
            .as_object()
            .unwrap()
            .values()
            .flat_map(|p| p.as_object().unwrap().values())
            .filter_map(|op| op["operationId"].as_str())
            .collect();
        let n = ids.len();
        ids.sort_unstable();
        ids.dedup();
        assert_eq!(ids.len(), n, "operation ids repeat");
    }
}
