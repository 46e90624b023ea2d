//! The OpenAPI document against real answers.
//!
//! [`check`] validates an admin answer against the operation the document
//! gives its method, path and status; the harness calls it on every admin
//! call any test makes, so each answer the suite sees is checked. The test
//! here calls every admin route at least once, successes and errors.
//!
//! The validator covers the JSON Schema 2020-12 keywords the document
//! uses and refuses any other, so a schema it cannot check fails loudly
//! instead of passing.

use serde_json::{Value, json};

use crate::harness::Gw;

fn document() -> &'static Value {
    switchyard::openapi::document()
}

/// The template of `path` (query dropped) among the document's admin paths.
fn template(path: &str) -> Option<&'static str> {
    let path = path.split('?').next().unwrap_or(path);
    let segs: Vec<&str> = path.split('/').collect();
    let mut best: Option<(&'static str, usize)> = None;
    for t in document()["paths"].as_object()?.keys() {
        if !t.starts_with("/admin/v1/") {
            continue;
        }
        let tsegs: Vec<&str> = t.split('/').collect();
        if tsegs.len() != segs.len() {
            continue;
        }
        let mut literal = 0;
        let fits = tsegs.iter().zip(&segs).all(|(t, s)| {
            if t.starts_with('{') {
                true
            } else {
                literal += 1;
                t == s
            }
        });
        if fits && best.is_none_or(|(_, n)| literal > n) {
            best = Some((t.as_str(), literal));
        }
    }
    best.map(|(t, _)| t)
}

/// Checks an admin answer against the document: panics naming the route,
/// the status and the first part of the body that does not fit.
pub fn check(method: &str, path: &str, status: u16, body: &Value) {
    let Some(t) = template(path) else {
        return; // not a route (a 404 test)
    };
    let op = &document()["paths"][t][method.to_ascii_lowercase()];
    if !op.is_object() {
        return; // a method the route does not have (a 405 test)
    }
    let response = &op["responses"][status.to_string()];
    assert!(
        response.is_object(),
        "{method} {t}: status {status} is not in the OpenAPI document: {body}"
    );
    let schema = &response["content"]["application/json"]["schema"];
    if let Err(e) = validate(schema, body, "$") {
        panic!("{method} {t} {status}: the answer does not fit the OpenAPI document: {e}\n{body}");
    }
}

/// Validates `v` against `schema`; the error names the JSON path.
pub fn validate(schema: &Value, v: &Value, at: &str) -> Result<(), String> {
    let obj = match schema {
        Value::Bool(true) => return Ok(()),
        Value::Bool(false) => return Err(format!("{at}: nothing is allowed here")),
        Value::Object(o) => o,
        other => return Err(format!("{at}: not a schema: {other}")),
    };
    for (k, s) in obj {
        match k.as_str() {
            "$ref" => {
                let name = s
                    .as_str()
                    .and_then(|r| r.strip_prefix("#/components/schemas/"))
                    .ok_or_else(|| format!("{at}: unsupported $ref {s}"))?;
                let target = &document()["components"]["schemas"][name];
                if target.is_null() {
                    return Err(format!("{at}: dangling $ref {name}"));
                }
                validate(target, v, at)?;
            }
            "type" => {
                let types: Vec<&str> = match s {
                    Value::String(t) => vec![t.as_str()],
                    Value::Array(a) => a.iter().filter_map(Value::as_str).collect(),
                    _ => return Err(format!("{at}: bad type keyword {s}")),
                };
                if !types.iter().any(|t| is_type(t, v)) {
                    return Err(format!("{at}: expected {types:?}, got {v}"));
                }
            }
            "enum" => {
                let options = s.as_array().ok_or("enum is not an array")?;
                if !options.contains(v) {
                    return Err(format!("{at}: {v} is not one of {s}"));
                }
            }
            "const" => {
                if s != v {
                    return Err(format!("{at}: expected {s}, got {v}"));
                }
            }
            "properties" => {
                if let (Some(props), Some(o)) = (s.as_object(), v.as_object()) {
                    for (name, sub) in props {
                        if let Some(x) = o.get(name) {
                            validate(sub, x, &format!("{at}.{name}"))?;
                        }
                    }
                }
            }
            "required" => {
                if let Some(o) = v.as_object() {
                    for name in s.as_array().into_iter().flatten().filter_map(Value::as_str) {
                        if !o.contains_key(name) {
                            return Err(format!("{at}: required property `{name}` is missing"));
                        }
                    }
                }
            }
            "additionalProperties" => {
                if let Some(o) = v.as_object() {
                    let known = obj.get("properties").and_then(Value::as_object);
                    for (name, x) in o {
                        if known.is_some_and(|p| p.contains_key(name)) {
                            continue;
                        }
                        validate(s, x, &format!("{at}.{name}"))
                            .map_err(|e| format!("{e} (property `{name}` is not in the schema)"))?;
                    }
                }
            }
            "items" => {
                if let Some(a) = v.as_array() {
                    for (i, x) in a.iter().enumerate() {
                        validate(s, x, &format!("{at}[{i}]"))?;
                    }
                }
            }
            "anyOf" | "oneOf" => {
                let options = s.as_array().ok_or("anyOf/oneOf is not an array")?;
                let fits = options
                    .iter()
                    .filter(|o| validate(o, v, at).is_ok())
                    .count();
                let ok = if k == "oneOf" { fits == 1 } else { fits >= 1 };
                if !ok {
                    let why: Vec<String> = options
                        .iter()
                        .filter_map(|o| validate(o, v, at).err())
                        .collect();
                    return Err(format!("{at}: {fits} of the {k} options fit: {why:?}"));
                }
            }
            "allOf" => {
                for o in s.as_array().ok_or("allOf is not an array")? {
                    validate(o, v, at)?;
                }
            }
            "minimum" | "maximum" => {
                if let (Some(bound), Some(x)) = (s.as_f64(), v.as_f64()) {
                    let ok = if k == "minimum" {
                        x >= bound
                    } else {
                        x <= bound
                    };
                    if !ok {
                        return Err(format!("{at}: {x} is past the {k} {bound}"));
                    }
                }
            }
            // Annotations: nothing to check.
            "description" | "title" | "format" | "default" | "examples" | "deprecated"
            | "readOnly" | "writeOnly" | "$schema" => {}
            other => return Err(format!("{at}: the validator does not know `{other}`")),
        }
    }
    Ok(())
}

fn is_type(t: &str, v: &Value) -> bool {
    match t {
        "null" => v.is_null(),
        "boolean" => v.is_boolean(),
        "object" => v.is_object(),
        "array" => v.is_array(),
        "string" => v.is_string(),
        "number" => v.is_number(),
        "integer" => v.is_i64() || v.is_u64() || v.as_f64().is_some_and(|f| f.fract() == 0.0),
        _ => false,
    }
}

#[test]
fn the_validator_refuses_what_does_not_fit() {
    let schema = json!({"type": "object", "required": ["a"], "additionalProperties": false,
        "properties": {"a": {"type": "integer", "minimum": 0}, "b": {"anyOf": [{"type": "string"}, {"type": "null"}]}}});
    assert!(validate(&schema, &json!({"a": 1, "b": null}), "$").is_ok());
    assert!(validate(&schema, &json!({"a": 1, "b": "x"}), "$").is_ok());
    for bad in [
        json!({}),
        json!({"a": -1}),
        json!({"a": 1.5}),
        json!({"a": 1, "b": 2}),
        json!({"a": 1, "c": 1}),
        json!([]),
    ] {
        assert!(validate(&schema, &bad, "$").is_err(), "{bad} passed");
    }
    let e = validate(&json!({"not": {}}), &json!(1), "$").unwrap_err();
    assert!(e.contains("does not know"), "{e}");
    // A reference into the document resolves.
    let key = json!({"$ref": "#/components/schemas/Key"});
    assert!(validate(&key, &json!({"id": "k"}), "$").is_err());
}

/// Every admin route, called for real; each answer checked by the harness
/// against the document (successes and the errors each route documents).
#[tokio::test]
async fn every_admin_route_answers_as_the_document_says() {
    use crate::tools::{ToolApi, send, start};

    let api = ToolApi::start().await;
    let prices =
        "[pricing.\"openai/gpt-test\"]\ninput_per_mtok_usd = 2.0\noutput_per_mtok_usd = 8.0\n";
    let gw: Gw = start(&api, 300, prices, None).await;
    let mut called: Vec<(&str, &str)> = Vec::new();
    let mut call = async |method: &'static str, path: &str, body: Option<Value>| {
        let (status, v) = gw.admin_call(method, path, body).await;
        if let Some(t) = template(path) {
            called.push((method, t));
        }
        (status, v)
    };

    // The document itself, as served, is the one the checks read.
    let (s, served) = call("GET", "/admin/v1/openapi.json", None).await;
    assert_eq!(s, 200);
    assert_eq!(&served, document());
    assert_eq!(served["openapi"], "3.1.0");

    let (s, _) = call("GET", "/admin/v1/config", None).await;
    assert_eq!(s, 200);
    // This gateway runs on text, not a file: nothing to read again (the
    // reload tests run the binary on a file).
    let (s, v) = call("POST", "/admin/v1/config/reload", None).await;
    assert_eq!(s, 400, "{v}");

    // Keys: created, listed, shown (with a budget), changed, revoked.
    let (s, k) = call(
        "POST",
        "/admin/v1/keys",
        Some(
            json!({"name": "agent", "tools": ["gh"], "budget_usd": 5, "budget_period": "day",
            "metadata": {"team": "a"}}),
        ),
    )
    .await;
    assert_eq!(s, 201, "{k}");
    let (id, key) = (
        k["id"].as_str().unwrap().to_owned(),
        k["key"].as_str().unwrap().to_owned(),
    );
    let (s, _) = call("POST", "/admin/v1/keys", Some(json!({"nme": "x"}))).await;
    assert_eq!(s, 400);
    let (s, v) = call("GET", &format!("/admin/v1/keys/{id}"), None).await;
    assert_eq!(s, 200);
    assert!(v["budget_spent_usd"].is_number(), "{v}");
    let (s, _) = call("GET", "/admin/v1/keys/nope", None).await;
    assert_eq!(s, 404);
    let (s, _) = call(
        "PATCH",
        &format!("/admin/v1/keys/{id}"),
        Some(json!({"rpm": 1000, "cache_ttl_s": null})),
    )
    .await;
    assert_eq!(s, 200);
    let (s, _) = call("GET", "/admin/v1/keys?include_revoked=maybe", None).await;
    assert_eq!(s, 400);

    // Traffic: a cached chat call and a held tool write.
    let chat = json!({"model": "openai/gpt-test", "messages": [{"role": "user", "content": "hi"}]});
    let r = gw
        .http
        .post(gw.url("/v1/chat/completions"))
        .bearer_auth(&key)
        .header("x-switchyard-cache-ttl", "60")
        .json(&chat)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let request_id = r.headers()["x-switchyard-request-id"]
        .to_str()
        .unwrap()
        .to_owned();
    crate::logs::record(&gw, &request_id).await;
    let (s, _, held) = send(
        &gw,
        "DELETE",
        "/tools/gh/repos/a/b",
        &key,
        "",
        &[("prefer", "respond-async")],
    )
    .await;
    assert_eq!(s, 202, "{held}");
    let approval = held["approval_id"].as_str().unwrap().to_owned();

    let (s, _) = call("GET", "/admin/v1/providers", None).await;
    assert_eq!(s, 200);
    let (s, v) = call("GET", "/admin/v1/logs?limit=1&metadata.team=a", None).await;
    assert_eq!(s, 200);
    assert!(!v["data"].as_array().unwrap().is_empty(), "{v}");
    let (s, _) = call("GET", "/admin/v1/logs?limit=0", None).await;
    assert_eq!(s, 400);
    let (s, _) = call("GET", &format!("/admin/v1/logs/{request_id}"), None).await;
    assert_eq!(s, 200);
    let (s, _) = call("GET", "/admin/v1/logs/nope", None).await;
    assert_eq!(s, 404);
    let (s, v) = call(
        "GET",
        "/admin/v1/usage?group_by=provider,metadata.team&bucket=hour",
        None,
    )
    .await;
    assert_eq!(s, 200);
    assert!(!v["data"].as_array().unwrap().is_empty(), "{v}");
    let (s, _) = call("GET", "/admin/v1/usage?group_by=colour", None).await;
    assert_eq!(s, 400);
    let (s, v) = call("GET", "/admin/v1/stats?bucket=minute", None).await;
    assert_eq!(s, 200);
    assert!(v["totals"]["requests"].as_u64().unwrap() >= 1, "{v}");
    let (s, _) = call("GET", "/admin/v1/stats?bucket=week", None).await;
    assert_eq!(s, 400);

    // The cache: listed, one entry purged, then the rest.
    let (s, v) = call("GET", "/admin/v1/cache?limit=10", None).await;
    assert_eq!(s, 200);
    let entry = v["data"][0]["id"].as_str().unwrap().to_owned();
    let (s, _) = call("GET", "/admin/v1/cache?cursor=x", None).await;
    assert_eq!(s, 400);
    let (s, _) = call("DELETE", &format!("/admin/v1/cache/{entry}"), None).await;
    assert_eq!(s, 200);
    let (s, _) = call("DELETE", &format!("/admin/v1/cache/{entry}"), None).await;
    assert_eq!(s, 404);
    let (s, _) = call("DELETE", "/admin/v1/cache?namespace=none", None).await;
    assert_eq!(s, 200);

    // Approvals: listed, decided, decided again (409), and the audit trail.
    let (s, v) = call("GET", "/admin/v1/approvals?state=pending", None).await;
    assert_eq!(s, 200);
    assert_eq!(v["data"][0]["id"], approval.as_str());
    let (s, _) = call("GET", "/admin/v1/approvals?state=lost", None).await;
    assert_eq!(s, 400);
    let path = format!("/admin/v1/approvals/{approval}");
    let (s, _) = call("POST", &path, Some(json!({"decision": "maybe"}))).await;
    assert_eq!(s, 400);
    let (s, _) = call(
        "POST",
        &path,
        Some(json!({"decision": "approve", "reason": "ok"})),
    )
    .await;
    assert_eq!(s, 200);
    let (s, _) = call("POST", &path, Some(json!({"decision": "deny"}))).await;
    assert_eq!(s, 409);
    let (s, _) = call(
        "POST",
        "/admin/v1/approvals/nope",
        Some(json!({"decision": "deny"})),
    )
    .await;
    assert_eq!(s, 404);
    let (s, v) = call("GET", "/admin/v1/tool-calls?limit=1", None).await;
    assert_eq!(s, 200);
    assert!(v["next_cursor"].is_i64(), "{v}");
    let (s, _) = call("GET", "/admin/v1/tool-calls?limit=x", None).await;
    assert_eq!(s, 400);
    let (s, v) = call("GET", "/admin/v1/audit/verify", None).await;
    assert_eq!((s, &v["ok"]), (200, &json!(true)), "{v}");

    // MCP changes: none here (the MCP tests check a real one through the
    // same harness check).
    let (s, _) = call("GET", "/admin/v1/mcp/changes?state=pending", None).await;
    assert_eq!(s, 200);
    let (s, _) = call("GET", "/admin/v1/mcp/changes?state=new", None).await;
    assert_eq!(s, 400);
    let (s, _) = call(
        "POST",
        "/admin/v1/mcp/changes/nope",
        Some(json!({"decision": "accept"})),
    )
    .await;
    assert_eq!(s, 404);

    // Revoked last: a second revocation and a change are refused.
    let (s, _) = call("DELETE", &format!("/admin/v1/keys/{id}"), None).await;
    assert_eq!(s, 200);
    let (s, _) = call(
        "PATCH",
        &format!("/admin/v1/keys/{id}"),
        Some(json!({"rpm": 1})),
    )
    .await;
    assert_eq!(s, 409);
    let (s, v) = call("GET", "/admin/v1/keys?include_revoked=true", None).await;
    assert_eq!(s, 200);
    assert_eq!(v["data"][0]["revoked"], true, "{v}");

    // Every route of the table was called.
    let mut missing = Vec::new();
    for (method, path) in switchyard::admin::ROUTES {
        if !called.contains(&(*method, *path)) {
            missing.push(format!("{method} {path}"));
        }
    }
    assert!(missing.is_empty(), "not called: {missing:?}");
    eprintln!(
        "openapi: {} admin routes checked against the document: {}",
        switchyard::admin::ROUTES.len(),
        switchyard::admin::ROUTES
            .iter()
            .map(|(m, p)| format!("{m} {p}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
}
