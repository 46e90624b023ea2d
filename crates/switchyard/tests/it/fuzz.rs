//! Fuzzing on the stable toolchain (no nightly here, so no libFuzzer):
//! structure-aware mutation of a corpus, a bounded number of cases per
//! target in every test run, every case run under `catch_unwind`.
//!
//! The corpus is the golden fixtures (requests, answers and streams of
//! every dialect) plus `tests/fuzz/<target>/*`; what a target found is kept
//! there too and replayed first, as regression tests. A crash is written to
//! `tests/fuzz/crashes/<target>-<digest>` and the test fails naming it.
//!
//! `SWITCHYARD_FUZZ_CASES` (default 1500 per target) and
//! `SWITCHYARD_FUZZ_SEED` run longer or elsewhere:
//! `SWITCHYARD_FUZZ_CASES=200000 cargo test --test it fuzz::`.

mod mutate;

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::PathBuf;

use rand::SeedableRng;
use rand::rngs::StdRng;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use switchyard::config::{Config, Env};
use switchyard::dialect::{Dialect, Echo, Envelope, ErrorParts, Start};
use switchyard::providers::{Inbound, Providers, chat_call};
use switchyard::stream::Translator;
use switchyard::wire;

const DIALECTS: [Dialect; 4] = [
    Dialect::OpenAi,
    Dialect::Anthropic,
    Dialect::Gemini,
    Dialect::Responses,
];

fn cases() -> usize {
    std::env::var("SWITCHYARD_FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1500)
}

fn seed(target: &str) -> u64 {
    let base: u64 = std::env::var("SWITCHYARD_FUZZ_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0x5717_c4a2_d00d);
    let h = Sha256::digest(target.as_bytes());
    base ^ u64::from_le_bytes(h[..8].try_into().unwrap())
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests")
}

/// The extra corpus and the regressions of `target`.
fn kept(target: &str) -> Vec<Vec<u8>> {
    let dir = root().join("fuzz").join(target);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .map(|d| d.map(|e| e.unwrap().path()).collect())
        .unwrap_or_default();
    files.sort();
    files.iter().map(|p| std::fs::read(p).unwrap()).collect()
}

fn fixtures(kind: &str) -> Vec<Value> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(root().join("fixtures").join(kind))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    files
        .iter()
        .map(|p| serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap())
        .collect()
}

/// Runs `run` on the kept inputs, the seeds, and `cases()` mutations of
/// the seeds; fails naming each input that panicked.
fn drive(
    target: &str,
    seeds: &[Vec<u8>],
    mutate: &dyn Fn(&mut StdRng, &[u8]) -> Vec<u8>,
    run: &dyn Fn(&[u8]),
) {
    let mut rng = StdRng::seed_from_u64(seed(target));
    let mut inputs: Vec<Vec<u8>> = kept(target);
    let kept_n = inputs.len();
    inputs.extend(seeds.iter().cloned());
    let all_seeds: Vec<Vec<u8>> = inputs.clone();
    assert!(!all_seeds.is_empty(), "{target}: no corpus");
    let mut crashes = Vec::new();
    let n = cases();
    for i in 0..(all_seeds.len() + n) {
        let input = if i < all_seeds.len() {
            all_seeds[i].clone()
        } else {
            let s = &all_seeds[rand::Rng::gen_range(&mut rng, 0..all_seeds.len())];
            mutate(&mut rng, s)
        };
        if catch_unwind(AssertUnwindSafe(|| run(&input))).is_err() {
            let name = format!(
                "{target}-{}",
                switchyard::keys::hex(&Sha256::digest(&input))[..16].to_owned()
            );
            let dir = root().join("fuzz").join("crashes");
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(dir.join(&name), &input).unwrap();
            crashes.push(name);
        }
    }
    println!(
        "fuzz {target}: {} kept + {} seeds + {n} mutations, {} crashes",
        kept_n,
        seeds.len(),
        crashes.len()
    );
    assert!(
        crashes.is_empty(),
        "{target}: inputs that panicked, in tests/fuzz/crashes/: {crashes:?}"
    );
}

fn json_seeds(values: impl IntoIterator<Item = Value>) -> Vec<Vec<u8>> {
    values
        .into_iter()
        .map(|v| serde_json::to_vec(&v).unwrap())
        .collect()
}

/// A JSON mutation of a JSON seed (bytes damage for one that is not).
fn mutate_json(rng: &mut StdRng, seed: &[u8]) -> Vec<u8> {
    match serde_json::from_slice::<Value>(seed) {
        Ok(v) => mutate::document(rng, &v),
        Err(_) => mutate::bytes(rng, seed),
    }
}

/// A stream fixture's upstream body: its events, each a string.
fn sse_of(case: &Value) -> Vec<u8> {
    let mut out = String::new();
    for ev in case["sse"].as_array().unwrap() {
        out.push_str(ev.as_str().unwrap());
    }
    out.into_bytes()
}

fn providers() -> Providers {
    let text = "[[providers]]\nname = \"openai\"\nkind = \"openai\"\n\
                [[providers]]\nname = \"openai-compatible\"\nkind = \"openai-compatible\"\nbase_url = \"http://127.0.0.1:1/v1\"\n\
                [[providers]]\nname = \"anthropic\"\nkind = \"anthropic\"\n\
                [[providers]]\nname = \"gemini\"\nkind = \"gemini\"\n";
    let env = Env::default();
    Providers::new(&Config::parse(text, None, &env).unwrap(), &env)
}

fn responses_echo() -> Echo {
    let body = json!({"model": "m", "input": "hi"}).to_string();
    let (req, fields) = Dialect::Responses
        .decode_request(body.as_bytes(), None)
        .unwrap();
    Dialect::Responses.echo(&uuid::Uuid::nil(), &fields, &req, true)
}

#[test]
fn fuzz_sse_parser() {
    let seeds: Vec<Vec<u8>> = fixtures("streams").iter().map(sse_of).collect();
    drive(
        "sse",
        &seeds,
        &|rng, s| mutate::sse(rng, &String::from_utf8_lossy(s)),
        &|input| {
            // Chunked at points the input itself decides, so a case replays.
            let mut p = wire::sse::Parser::new(1 << 20);
            let mut out = Vec::new();
            let mut rest = input;
            let mut step = 1 + input.first().copied().unwrap_or(7) as usize % 97;
            while !rest.is_empty() {
                let n = step.min(rest.len());
                if p.feed(&rest[..n], &mut out).is_err() {
                    return;
                }
                rest = &rest[n..];
                step = 1 + (step * 31 + 7) % 211;
            }
            p.finish(&mut out);
        },
    );
}

/// Each caller dialect's request decoder, and on success the encoder of
/// every provider kind it may be sent to.
#[test]
fn fuzz_request_decoders_and_upstream_encoders() {
    let providers = providers();
    let all = fixtures("requests");
    for inbound in DIALECTS {
        let mut seeds: Vec<Value> = all
            .iter()
            .filter(|c| c["inbound"] == inbound.as_str())
            .map(|c| c["request"].clone())
            .collect();
        if inbound == Dialect::Gemini {
            seeds.push(json!({"contents": [{"role": "user", "parts": [{"text": "hi"}]}],
                "tools": [{"functionDeclarations": [{"name": "f", "parameters": {"type": "object"}}]}],
                "generationConfig": {"maxOutputTokens": 5, "thinkingConfig": {"thinkingBudget": 10}}}));
        }
        let envelope = Envelope {
            model: "x/any".into(),
            stream: false,
            method: "generateContent".into(),
        };
        drive(
            &format!("request-{}", inbound.as_str()),
            &json_seeds(seeds),
            &mutate_json,
            &|input| {
                let env = (inbound == Dialect::Gemini).then_some(&envelope);
                let Ok((req, fields)) = inbound.decode_request(input, env) else {
                    return;
                };
                let echo = inbound.echo(&uuid::Uuid::nil(), &fields, &req, true);
                let call = Inbound {
                    dialect: inbound,
                    request: &req,
                    fields: &fields,
                    anthropic_version: None,
                    anthropic_beta: None,
                    echo: &echo,
                    drop_tools: &[],
                };
                for kind in ["openai", "openai-compatible", "anthropic", "gemini"] {
                    let _ = chat_call(providers.get(kind).unwrap(), &call, "m");
                }
            },
        );
    }
}

/// Each provider's answer decoder, and on success every caller's encoder.
#[test]
fn fuzz_response_decoders_and_caller_encoders() {
    let all = fixtures("responses");
    let echo = responses_echo();
    for upstream in [Dialect::OpenAi, Dialect::Anthropic, Dialect::Gemini] {
        let seeds: Vec<Value> = all
            .iter()
            .filter(|c| c["upstream"] == upstream.as_str())
            .map(|c| c["response"].clone())
            .collect();
        drive(
            &format!("response-{}", upstream.as_str()),
            &json_seeds(seeds),
            &mutate_json,
            &|input| {
                let _ = upstream.peek_usage(input);
                let _ = upstream.decode_error(input);
                let Ok(r) = upstream.decode_response(input) else {
                    return;
                };
                for caller in DIALECTS {
                    let echo = if caller == Dialect::Responses {
                        &echo
                    } else {
                        &Echo::None
                    };
                    let _ = caller.encode_response(&r, echo, upstream.as_str());
                }
            },
        );
    }
}

/// Each provider's stream, through the translator to every caller.
#[test]
fn fuzz_stream_translators() {
    let all = fixtures("streams");
    let echo = responses_echo();
    for upstream in [Dialect::OpenAi, Dialect::Anthropic, Dialect::Gemini] {
        let seeds: Vec<Vec<u8>> = all
            .iter()
            .filter(|c| c["upstream"] == upstream.as_str())
            .map(sse_of)
            .collect();
        drive(
            &format!("stream-{}", upstream.as_str()),
            &seeds,
            &|rng, s| mutate::sse(rng, &String::from_utf8_lossy(s)),
            &|input| {
                let mut p = wire::sse::Parser::new(1 << 20);
                let mut events = Vec::new();
                if p.feed(input, &mut events).is_err() {
                    return;
                }
                p.finish(&mut events);
                for caller in DIALECTS {
                    let echo = if caller == Dialect::Responses {
                        &echo
                    } else {
                        &Echo::None
                    };
                    let mut t = Translator::new(
                        caller,
                        upstream,
                        Start {
                            id: "id".into(),
                            model: "m".into(),
                            created: 1,
                            include_usage: true,
                            echo,
                            provider: upstream.as_str(),
                        },
                    );
                    let mut w = wire::sse::Writer::new(0);
                    let mut failed = false;
                    for ev in &events {
                        if let Err(e) = t.feed(ev, &mut w) {
                            let body = caller.error_body(&ErrorParts {
                                status: 502,
                                message: &e.to_string(),
                                code: "server_error",
                                param: None,
                                overloaded: false,
                            });
                            t.fail(&mut w, &body);
                            failed = true;
                            break;
                        }
                    }
                    if !failed && t.complete() {
                        t.finish(&mut w);
                    }
                    let _ = w.take();
                }
            },
        );
    }
}

fn tool() -> switchyard::config::tools::ToolConfig {
    let text = "[[tools]]\nname = \"t\"\nbase_url = \"https://api.example.com/v3\"\n\
                graphql = [\"/graphql\"]\nreads = [\"POST /search/*\"]\nwrites = [\"GET /admin/*\"]\n";
    let env = Env::default();
    Config::parse(text, None, &env).unwrap().tools.remove(0)
}

/// The tool classifier on calls built from JSON: `{method, path, query,
/// headers, body}`.
#[test]
fn fuzz_tool_classifier() {
    let tool = tool();
    let seeds = vec![
        json!({"method": "POST", "path": "/graphql", "headers": {"content-type": "application/json"},
               "body": r#"{"query":"query Q { viewer { login } } mutation M { x }","operationName":"Q"}"#}),
        json!({"method": "GET", "path": "/graphql", "query": "query=%7Bviewer%7Blogin%7D%7D", "headers": {}, "body": ""}),
        json!({"method": "POST", "path": "/graphql", "headers": {"content-type": "application/graphql"},
               "body": "fragment F on User { id } query { ...F } # mutation"}),
        json!({"method": "POST", "path": "/graphql", "headers": {"content-type": "application/json"},
               "body": r#"[{"query":"{ a }"},{"query":"mutation { b }"}]"#}),
        json!({"method": "POST", "path": "/graphql", "headers": {"content-type": "application/json"},
               "body": r#"{"extensions":{"persistedQuery":{"version":1,"sha256Hash":"abc"}}}"#}),
        json!({"method": "POST", "path": "/items", "query": "_method=GET",
               "headers": {"content-type": "application/x-www-form-urlencoded"}, "body": "_method=DELETE&a=1"}),
        json!({"method": "GET", "path": "/repos", "headers": {"x-http-method-override": "DELETE"}, "body": ""}),
    ];
    drive(
        "tool-classify",
        &json_seeds(seeds),
        &mutate_json,
        &|input| {
            let Ok(v) = serde_json::from_slice::<Value>(input) else {
                return;
            };
            let s = |k: &str| v.get(k).and_then(Value::as_str).unwrap_or("").to_owned();
            let mut headers = http::HeaderMap::new();
            if let Some(h) = v.get("headers").and_then(Value::as_object) {
                for (k, x) in h {
                    if let (Ok(k), Some(Ok(x))) = (
                        http::HeaderName::from_bytes(k.as_bytes()),
                        x.as_str().map(http::HeaderValue::from_str),
                    ) {
                        headers.append(k, x);
                    }
                }
            }
            let (method, path, query, body) = (s("method"), s("path"), s("query"), s("body"));
            let class = switchyard::tools::classify::classify(
                &tool,
                &switchyard::tools::classify::Call {
                    method: &method,
                    path: &path,
                    query: (!query.is_empty()).then_some(query.as_str()),
                    headers: &headers,
                    body: body.as_bytes(),
                },
            );
            // Fails closed: anything but GET/HEAD/OPTIONS is a write,
            // whatever the body says, except what the operator's reads
            // rule covers and a GraphQL POST (its document decides).
            if !matches!(method.as_str(), "GET" | "HEAD" | "OPTIONS" | "POST") {
                assert!(class.is_write(), "{method} {path} read: {class:?}");
            }
            if method == "POST" && !path.starts_with("/search/") && path != "/graphql" {
                assert!(class.is_write(), "{method} {path} read: {class:?}");
            }
        },
    );
}

/// The tool path check, with its invariant: whatever it accepts stays
/// under `base_url`, with no dot segment, backslash or `@` in it.
#[test]
fn fuzz_tool_paths_never_leave_base_url() {
    let base = "https://api.example.com/v3";
    let seeds: Vec<Vec<u8>> = [
        "repos/a/b",
        "repos/%2e%2e/admin",
        "..%2fadmin",
        "a/./b",
        "%252e%252e/x",
        "x%5c..%5cy",
        "@evil.example.com",
        "repos/a%20b/c",
        "search/code",
        "ü/ß",
    ]
    .iter()
    .map(|s| s.as_bytes().to_vec())
    .collect();
    drive(
        "tool-path",
        &seeds,
        &|rng, s| mutate::bytes(rng, s),
        &|input| {
            let rest = String::from_utf8_lossy(input);
            let Ok(url) = switchyard::tools::path::destination(base, &rest, None) else {
                return;
            };
            let tail = url
                .strip_prefix(base)
                .and_then(|t| t.strip_prefix('/').or(t.is_empty().then_some("")))
                .unwrap_or_else(|| panic!("{rest:?} left base_url: {url}"));
            let path = tail.split(['?', '#']).next().unwrap_or("");
            for seg in path.split('/') {
                let lower = seg.to_ascii_lowercase();
                assert!(
                    seg != ".."
                        && seg != "."
                        && !lower.contains("%2e%2e")
                        && !lower.contains("%2f"),
                    "{rest:?} → {url}"
                );
            }
            assert!(
                !url.contains('\\') && !tail.contains('@') && !tail.contains("//"),
                "{rest:?} → {url}"
            );
        },
    );
}
