//! `kind = "vertex"` over real HTTP: Gemini (`publishers/google`) and
//! Claude (`publishers/anthropic`, `rawPredict`) behind one base URL, with
//! tokens from a service-account key: a JWT signed RS256 that the mock
//! token endpoint verifies with the key's public half, exchanged for
//! tokens that are cached, fetched again before they expire, and dropped
//! when Vertex answers 401.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State;
use axum::response::IntoResponse;
use base64::Engine;
use serde_json::{Value, json};

use crate::core::{Inbound, call, request};
use crate::harness::*;
use crate::mock::{Kind, Mock, Reply};

const KEY_FILE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/testdata/google/service_account.json"
);
const PUBLIC_KEY: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/testdata/google/service_account_pub.der"
);
const PROJECT: &str = "example-project";
const LOCATION: &str = "europe-west4";

/// A mock Google token endpoint: checks the JWT bearer grant's signature
/// and claims, and issues `ya29.tok-1`, `ya29.tok-2`, ... living `life`
/// seconds.
#[derive(Clone, Default)]
struct Tokens {
    fetches: Arc<AtomicUsize>,
    life: Arc<AtomicU64>,
    refused: Arc<Mutex<Vec<String>>>,
}

fn b64(s: &str) -> Option<Vec<u8>> {
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(s)
        .ok()
}

/// What is wrong with a grant, if anything.
fn grant_problem(form: &str, audience: &str) -> Option<String> {
    let field = |k: &str| {
        form.split('&')
            .find_map(|kv| kv.strip_prefix(&format!("{k}=")))
            .map(|v| v.replace("%3A", ":"))
    };
    if field("grant_type").as_deref() != Some("urn:ietf:params:oauth:grant-type:jwt-bearer") {
        return Some(format!("grant_type: {form}"));
    }
    let jwt = field("assertion")?;
    let parts: Vec<&str> = jwt.split('.').collect();
    let [head, claims, sig] = parts.as_slice() else {
        return Some("not three parts".into());
    };
    let key = std::fs::read(PUBLIC_KEY).unwrap();
    let verified =
        ring::signature::UnparsedPublicKey::new(&ring::signature::RSA_PKCS1_2048_8192_SHA256, key)
            .verify(format!("{head}.{claims}").as_bytes(), &b64(sig)?);
    if verified.is_err() {
        return Some("the signature does not verify".into());
    }
    let h: Value = serde_json::from_slice(&b64(head)?).ok()?;
    let c: Value = serde_json::from_slice(&b64(claims)?).ok()?;
    let now = switchyard::clock::unix_s();
    let ok = h["alg"] == "RS256"
        && c["iss"] == "switchyard-test@example-project.iam.gserviceaccount.com"
        && c["aud"] == audience
        && c["scope"] == "https://www.googleapis.com/auth/cloud-platform"
        && c["iat"].as_u64().is_some_and(|t| t.abs_diff(now) < 60)
        && c["exp"].as_u64().is_some_and(|t| t > now);
    (!ok).then(|| format!("claims: {h} {c}"))
}

async fn token(
    State((t, audience)): State<(Tokens, String)>,
    body: String,
) -> axum::response::Response {
    if let Some(problem) = grant_problem(&body, &audience) {
        t.refused.lock().unwrap().push(problem);
        return (
            http::StatusCode::BAD_REQUEST,
            axum::Json(
                json!({"error": "invalid_grant", "error_description": "Invalid JWT Signature."}),
            ),
        )
            .into_response();
    }
    let n = t.fetches.fetch_add(1, Ordering::SeqCst) + 1;
    axum::Json(json!({"access_token": format!("ya29.tok-{n}"), "expires_in": t.life.load(Ordering::SeqCst), "token_type": "Bearer"}))
        .into_response()
}

/// The token endpoint, and a copy of the test key file pointing at it.
async fn start_tokens(life: u64, dir: &std::path::Path) -> (Tokens, String) {
    let t = Tokens::default();
    t.life.store(life, Ordering::SeqCst);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/token", listener.local_addr().unwrap());
    let app = axum::Router::new()
        .route("/token", axum::routing::post(token))
        .with_state((t.clone(), url.clone()));
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let mut key: Value = serde_json::from_str(&std::fs::read_to_string(KEY_FILE).unwrap()).unwrap();
    key["token_uri"] = json!(url);
    let path = dir.join("key.json");
    std::fs::write(&path, key.to_string()).unwrap();
    (t, path.display().to_string())
}

async fn start(life: u64) -> (Gw, Mock, Tokens) {
    let vertex = Mock::start(Kind::Gemini).await;
    let dir = tempfile::tempdir().unwrap();
    let (tokens, key) = start_tokens(life, dir.path()).await;
    let url = format!("sqlite://{}/switchyard.db", dir.path().display());
    let extra = format!(
        r#"
[[providers]]
name = "vx"
kind = "vertex"
project = "{PROJECT}"
location = "{LOCATION}"
base_url = "http://{}/v1/projects/{PROJECT}/locations/{LOCATION}"
credentials_file_env = "VX_KEY_FILE"
timeout_ms = 5000
"#,
        vertex.addr
    );
    let gw = Gw::start_env(
        start_mocks().await,
        "",
        &extra,
        &url,
        dir,
        &[("VX_KEY_FILE", &key)],
    )
    .await;
    (gw, vertex, tokens)
}

fn bearer(r: &crate::mock::Recorded) -> String {
    r.headers
        .get("authorization")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default()
}

fn private_key() -> String {
    let key: Value = serde_json::from_str(&std::fs::read_to_string(KEY_FILE).unwrap()).unwrap();
    key["private_key"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn gemini_and_claude_on_vertex_serve_every_inbound_dialect() {
    let (gw, vertex, tokens) = start(3600).await;
    let base = format!("/v1/projects/{PROJECT}/locations/{LOCATION}");
    let mut ran = 0;
    for (model, kind) in [
        ("vx/gemini-2.5-pro", "gemini"),
        ("vx/claude-sonnet-4@20250514", "anthropic"),
    ] {
        for inbound in [Inbound::OpenAi, Inbound::Anthropic] {
            for stream in [false, true] {
                for tools in [false, true] {
                    let what = format!("{inbound:?} → {model} stream={stream} tools={tools}");
                    let (_, h, o) =
                        call(&gw, inbound, &request(inbound, model, stream, tools)).await;
                    assert_eq!(h["x-switchyard-provider"], "vx", "{what}");
                    if tools {
                        assert_eq!(o.finish, "tool_calls", "{what}: {o:?}");
                        assert_eq!(o.calls.len(), 2, "{what}: {o:?}");
                        assert_eq!(o.calls[0].2, json!({"city": "Paris"}), "{what}");
                    } else {
                        assert_eq!(
                            o.text,
                            format!("Hello from {kind}. You said: Say hi"),
                            "{what}"
                        );
                        assert_eq!(o.finish, "stop", "{what}");
                    }
                    let up = vertex.last();
                    assert_eq!(bearer(&up), "Bearer ya29.tok-1", "{what}");
                    let id = model.split('/').nth(1).unwrap();
                    let body = up.json();
                    let want = match (kind, stream) {
                        ("gemini", false) => {
                            format!("{base}/publishers/google/models/{id}:generateContent")
                        }
                        ("gemini", true) => format!(
                            "{base}/publishers/google/models/{id}:streamGenerateContent?alt=sse"
                        ),
                        (_, false) => format!("{base}/publishers/anthropic/models/{id}:rawPredict"),
                        (_, true) => {
                            format!("{base}/publishers/anthropic/models/{id}:streamRawPredict")
                        }
                    };
                    assert_eq!(up.uri, want, "{what}");
                    if kind == "anthropic" {
                        assert_eq!(body["anthropic_version"], "vertex-2023-10-16", "{what}");
                        assert!(body.get("model").is_none(), "{what}: {body}");
                        assert!(up.headers.get("anthropic-version").is_none(), "{what}");
                        assert_eq!(body["max_tokens"], 256, "{what}");
                    } else {
                        assert_eq!(body["contents"][0]["parts"][0]["text"], "Say hi", "{what}");
                    }
                    ran += 1;
                }
            }
        }
    }
    assert_eq!(ran, 16);
    // The Gemini API and the Responses API, to both publishers.
    for (model, kind) in [
        ("vx/claude-sonnet-4@20250514", "anthropic"),
        ("vx/gemini-2.5-pro", "gemini"),
    ] {
        let (s, _, v) = gw
            .post(
                &format!("/v1beta/models/{model}:generateContent"),
                &json!({"contents": [{"role": "user", "parts": [{"text": "Say hi"}]}]}),
            )
            .await;
        assert_eq!(s, 200, "{v}");
        assert_eq!(
            v["candidates"][0]["content"]["parts"][0]["text"],
            format!("Hello from {kind}. You said: Say hi")
        );
        let (s, _, v) = gw
            .post("/v1/responses", &json!({"model": model, "input": "Say hi"}))
            .await;
        assert_eq!(s, 200, "{v}");
        assert_eq!(
            v["output"][0]["content"][0]["text"],
            format!("Hello from {kind}. You said: Say hi"),
            "{v}"
        );
    }
    assert_eq!(
        tokens.fetches.load(Ordering::SeqCst),
        1,
        "one token for every call"
    );
    assert!(
        tokens.refused.lock().unwrap().is_empty(),
        "{:?}",
        tokens.refused
    );
    let key = private_key();
    let body = key.lines().nth(1).unwrap();
    for text in [
        logs(),
        gw.admin_call("GET", "/admin/v1/providers", None)
            .await
            .1
            .to_string(),
    ] {
        assert!(!text.contains(body), "the private key leaked");
        assert!(!text.contains("ya29.tok-"), "a token leaked");
    }
    gw.shutdown().await;
}

/// Tokens are fetched once for calls at once, again at half their life,
/// and once more when Vertex refuses one.
#[tokio::test]
async fn tokens_are_cached_refreshed_and_replaced_when_refused() {
    let (gw, vertex, tokens) = start(2).await;
    let chat = request(Inbound::OpenAi, "vx/gemini-2.5-pro", false, false);
    let calls = (0..6).map(|_| gw.post("/v1/chat/completions", &chat));
    for (s, _, v) in futures_util::future::join_all(calls).await {
        assert_eq!(s, 200, "{v}");
    }
    assert_eq!(tokens.fetches.load(Ordering::SeqCst), 1);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let (s, _, _) = gw.post("/v1/chat/completions", &chat).await;
    assert_eq!(s, 200);
    assert_eq!(bearer(&vertex.last()), "Bearer ya29.tok-2");
    vertex.script([Reply::Json(
        401,
        json!({"error": {"code": 401, "message": "Request had invalid authentication credentials. Expected OAuth 2 access token.", "status": "UNAUTHENTICATED"}}),
        vec![],
    )]);
    let before = vertex.count();
    let (s, _, v) = gw.post("/v1/chat/completions", &chat).await;
    assert_eq!(s, 200, "{v}");
    let seen = vertex.requests();
    assert_eq!(seen.len(), before + 2);
    assert_eq!(bearer(&seen[before + 1]), "Bearer ya29.tok-3");
    gw.shutdown().await;
}

/// Vertex's own `vertex_event` events in a Claude stream are skipped.
#[tokio::test]
async fn vertex_events_in_a_claude_stream_are_skipped() {
    let (gw, vertex, _) = start(3600).await;
    let piece =
        |event: &str, data: Value| (Duration::ZERO, format!("event: {event}\ndata: {data}\n\n"));
    vertex.script([Reply::Sse {
        pieces: vec![
            piece("vertex_event", json!({"type": "vertex_event", "info": "routing"})),
            piece("message_start", json!({"type": "message_start", "message": {"id": "msg_vx1", "type": "message", "role": "assistant", "model": "claude-sonnet-4-20250514", "content": [], "stop_reason": null, "usage": {"input_tokens": 9, "output_tokens": 1}}})),
            piece("content_block_start", json!({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}})),
            piece("content_block_delta", json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Hi there"}})),
            (Duration::ZERO, "event: vertex_event\ndata: not json at all\n\n".into()),
            piece("content_block_stop", json!({"type": "content_block_stop", "index": 0})),
            piece("message_delta", json!({"type": "message_delta", "delta": {"stop_reason": "end_turn"}, "usage": {"output_tokens": 3}})),
            piece("message_stop", json!({"type": "message_stop"})),
        ],
        abort: false,
    }]);
    let (_, _, o) = call(
        &gw,
        Inbound::OpenAi,
        &request(Inbound::OpenAi, "vx/claude-sonnet-4@20250514", true, false),
    )
    .await;
    assert_eq!((o.text.as_str(), o.finish.as_str()), ("Hi there", "stop"));
    gw.shutdown().await;
}

/// Embeddings through `:predict`, to OpenAI and Gemini callers; a Claude
/// model is refused (Anthropic has none).
#[tokio::test]
async fn embeddings_go_through_predict() {
    let (gw, vertex, _) = start(3600).await;
    let (s, _, v) = gw
        .post(
            "/v1/embeddings",
            &json!({"model": "vx/text-embedding-005", "input": ["a", "b"], "dimensions": 3}),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["data"].as_array().unwrap().len(), 2, "{v}");
    assert_eq!(v["data"][1]["embedding"], json!([0.4, 0.5, 0.6]));
    assert_eq!(
        v["usage"]["prompt_tokens"], 6,
        "the statistics' counts: {v}"
    );
    let up = vertex.last();
    assert_eq!(
        up.uri,
        format!(
            "/v1/projects/{PROJECT}/locations/{LOCATION}/publishers/google/models/text-embedding-005:predict"
        )
    );
    assert_eq!(
        up.json(),
        json!({"instances": [{"content": "a"}, {"content": "b"}], "parameters": {"outputDimensionality": 3}})
    );
    assert_eq!(bearer(&up), "Bearer ya29.tok-1");
    let (s, _, v) = gw
        .post(
            "/v1beta/models/vx/gemini-embedding-001:embedContent",
            &json!({"content": {"parts": [{"text": "a"}]}}),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["embedding"]["values"], json!([0.4, 0.5, 0.6]), "{v}");
    let (s, _, v) = gw
        .post(
            "/v1/embeddings",
            &json!({"model": "vx/claude-sonnet-4@20250514", "input": "a"}),
        )
        .await;
    assert_eq!(s, 400, "{v}");
    gw.shutdown().await;
}

/// The Gemini and Responses APIs, whole and streamed, with and without
/// tools, to both publishers.
#[tokio::test]
async fn the_gemini_and_responses_apis_to_both_publishers() {
    let (gw, _, _) = start(3600).await;
    let mut ran = 0;
    for (model, greeting) in [
        ("vx/gemini-2.5-pro", "Hello from gemini."),
        ("vx/claude-sonnet-4@20250514", "Hello from anthropic."),
    ] {
        ran += crate::clouds::other_dialects(&gw, model, greeting).await;
    }
    assert_eq!(ran, 16);
    gw.shutdown().await;
}
