//! Read or write: what one HTTP tool call is, decided from the very bytes
//! that go upstream, failing closed (DESIGN §8).
//!
//! In order: an operator's `writes` rule makes it a write; a
//! method-override header or parameter (`X-HTTP-Method-Override`,
//! `X-HTTP-Method`, `X-Method-Override`, `_method`) makes it a write (a
//! server may honour one); an operator's `reads` rule makes it a read; on a
//! GraphQL path the document decides (a read only when every operation in
//! it is a query: a mutation or subscription, a batch holding one, a GET
//! carrying one, a persisted query with no document, or a document that
//! does not parse, are writes); otherwise `GET`, `HEAD` and `OPTIONS` are
//! reads and every other method a write.

use apollo_parser::Parser;
use apollo_parser::cst::{Definition, OperationType};
use http::HeaderMap;
use serde_json::Value;

use crate::config::tools::ToolConfig;

/// What a call is, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Class {
    Read(&'static str),
    Write(&'static str),
}

impl Class {
    pub fn is_write(&self) -> bool {
        matches!(self, Class::Write(_))
    }

    pub fn as_str(&self) -> &'static str {
        match self {
            Class::Read(_) => "read",
            Class::Write(_) => "write",
        }
    }

    pub fn reason(&self) -> &'static str {
        match self {
            Class::Read(r) | Class::Write(r) => r,
        }
    }
}

/// Headers some servers take as the real method.
const OVERRIDE_HEADERS: &[&str] = &[
    "x-http-method-override",
    "x-http-method",
    "x-method-override",
];

/// The most GraphQL tokens a document may have (a parser's work is bounded).
const MAX_TOKENS: usize = 100_000;

/// One call: its method, its path (the part after the tool's name,
/// starting with `/`, as sent), its query, headers and body.
pub struct Call<'a> {
    pub method: &'a str,
    pub path: &'a str,
    pub query: Option<&'a str>,
    pub headers: &'a HeaderMap,
    pub body: &'a [u8],
}

pub fn classify(tool: &ToolConfig, c: &Call<'_>) -> Class {
    if tool.writes.iter().any(|r| r.matches(c.method, c.path)) {
        return Class::Write("an operator's writes rule");
    }
    if OVERRIDE_HEADERS.iter().any(|h| c.headers.contains_key(*h)) {
        return Class::Write("a method-override header");
    }
    if query_has(c.query, "_method") || form_has_method(c.headers, c.body) {
        return Class::Write("a _method parameter");
    }
    if tool.reads.iter().any(|r| r.matches(c.method, c.path)) {
        return Class::Read("an operator's reads rule");
    }
    // A GraphQL document travels by GET or POST; any other method on a
    // GraphQL path is judged by the method, whatever its body says.
    if matches!(c.method, "GET" | "HEAD" | "POST")
        && tool.graphql.iter().any(|g| crate::keys::glob(g, c.path))
    {
        return graphql(c);
    }
    match c.method {
        "GET" | "HEAD" | "OPTIONS" => Class::Read("a safe method"),
        _ => Class::Write("a method that changes state"),
    }
}

/// The decoded values of `name` in a query string.
fn query_values(query: Option<&str>, name: &str) -> Vec<String> {
    let Some(q) = query else { return Vec::new() };
    q.split('&')
        .filter_map(|kv| {
            let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
            (decode(k) == name).then(|| decode(v))
        })
        .collect()
}

fn query_has(query: Option<&str>, name: &str) -> bool {
    let Some(q) = query else { return false };
    q.split('&')
        .any(|kv| decode(kv.split_once('=').map_or(kv, |(k, _)| k)) == name)
}

/// Percent-decoding (and `+` as a space), lossily: a name that does not
/// decode cleanly is compared as decoded as far as it goes.
fn decode(s: &str) -> String {
    let hex = |c: u8| (c as char).to_digit(16);
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' if i + 3 <= b.len() => match (hex(b[i + 1]), hex(b[i + 2])) {
                (Some(h), Some(l)) => {
                    out.push((h * 16 + l) as u8);
                    i += 2;
                }
                _ => out.push(b'%'),
            },
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A form body (`application/x-www-form-urlencoded`) naming `_method`.
fn form_has_method(headers: &HeaderMap, body: &[u8]) -> bool {
    let form = headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.to_ascii_lowercase()
                .starts_with("application/x-www-form-urlencoded")
        });
    form && query_has(std::str::from_utf8(body).ok(), "_method")
}

/// Whether a GraphQL document is made of queries only: `Some(true)` all
/// queries, `Some(false)` a mutation or subscription, `None` not a
/// document that parses (or holds no operation).
fn document_reads(doc: &str) -> Option<bool> {
    let tree = Parser::new(doc).token_limit(MAX_TOKENS).parse();
    if tree.errors().next().is_some() {
        return None;
    }
    let mut operations = 0;
    for def in tree.document().definitions() {
        match def {
            Definition::OperationDefinition(op) => {
                operations += 1;
                match op.operation_type() {
                    // `{ ... }`: the query shorthand.
                    None => {}
                    Some(t) if is_query(&t) => {}
                    Some(_) => return Some(false),
                }
            }
            Definition::FragmentDefinition(_) => {}
            // Type-system definitions have no place in a request.
            _ => return None,
        }
    }
    (operations > 0).then_some(true)
}

fn is_query(t: &OperationType) -> bool {
    t.query_token().is_some() && t.mutation_token().is_none() && t.subscription_token().is_none()
}

/// A GraphQL request: `query` in the URL (GET), or a JSON body holding one
/// request or a batch of them, or an `application/graphql` body.
fn graphql(c: &Call<'_>) -> Class {
    let verdict = |docs: &[Option<String>]| -> Class {
        if docs.is_empty() {
            return Class::Write("a GraphQL request with no document");
        }
        for d in docs {
            match d.as_deref().map(document_reads) {
                None => return Class::Write("a persisted GraphQL query with no document"),
                Some(None) => return Class::Write("a GraphQL document that does not parse"),
                Some(Some(false)) => return Class::Write("a GraphQL mutation or subscription"),
                Some(Some(true)) => {}
            }
        }
        Class::Read("GraphQL queries only")
    };
    let mut docs: Vec<Option<String>> = query_values(c.query, "query")
        .into_iter()
        .map(Some)
        .collect();
    if c.method == "GET" || c.method == "HEAD" {
        if docs.is_empty() && query_has(c.query, "extensions") {
            docs.push(None);
        }
        return verdict(&docs);
    }
    if !docs.is_empty() {
        // A document in the URL and another in the body: both must read.
        docs.clear();
        docs.push(None);
        return verdict(&docs);
    }
    let content_type = c
        .headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_ascii_lowercase();
    if content_type.starts_with("application/graphql") {
        return verdict(&[std::str::from_utf8(c.body).ok().map(str::to_owned)]);
    }
    let Ok(body) = serde_json::from_slice::<Value>(c.body) else {
        return Class::Write("a GraphQL body that is not JSON");
    };
    let requests: Vec<&Value> = match &body {
        Value::Array(batch) => batch.iter().collect(),
        one => vec![one],
    };
    let docs: Vec<Option<String>> = requests
        .iter()
        .map(|r| r.get("query").and_then(Value::as_str).map(str::to_owned))
        .collect();
    if requests.iter().any(|r| !r.is_object()) {
        return Class::Write("a GraphQL batch with a request that is not an object");
    }
    verdict(&docs)
}

#[cfg(test)]
mod tests;
