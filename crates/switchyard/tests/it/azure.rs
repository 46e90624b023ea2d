//! `kind = "azure"` over real HTTP: the v1 API and the deployment form,
//! `api-key` and Entra ID tokens (from a variable, or fetched with client
//! credentials from a mock token endpoint that checks the grant), Azure's
//! stream opening and content filters, and `retry-after-ms`.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State;
use axum::response::IntoResponse;
use serde_json::{Value, json};

use crate::core::{Inbound, call, request};
use crate::harness::*;
use crate::mock::{Kind, Mock, Reply};

const AZURE_KEY: &str = "azure-canary-key-0f1e2d3c4b5a6978";
const CLIENT_SECRET: &str = "entra-canary-secret-5e4d3c2b1a09";
const API_VERSION: &str = "2024-10-21";

fn no_azure_canary(text: &str) {
    assert!(!text.contains(AZURE_KEY), "the Azure key leaked: {text}");
    assert!(
        !text.contains(CLIENT_SECRET),
        "the client secret leaked: {text}"
    );
}

/// The two URL forms over one mock: `az` (v1 API) and `azd` (deployments,
/// with an API version), both with `api-key`.
fn azure_toml(azure: &Mock) -> String {
    format!(
        r#"
[[providers]]
name = "az"
kind = "azure"
base_url = "http://{addr}/openai/v1"
api_key_env = "AZ_KEY"
jurisdiction = "eu"
timeout_ms = 5000

[[providers]]
name = "azd"
kind = "azure"
base_url = "http://{addr}/openai"
api_version = "{API_VERSION}"
api_key_env = "AZ_KEY"
timeout_ms = 5000
"#,
        addr = azure.addr
    )
}

async fn start(extra: &str, env: &[(&str, &str)]) -> Gw {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/switchyard.db", dir.path().display());
    let mut all = vec![("AZ_KEY", AZURE_KEY)];
    all.extend_from_slice(env);
    Gw::start_env(start_mocks().await, "", extra, &url, dir, &all).await
}

fn header(r: &crate::mock::Recorded, name: &str) -> Option<String> {
    r.headers.get(name).map(|v| v.to_str().unwrap().to_owned())
}

#[tokio::test]
async fn both_url_forms_serve_every_inbound_dialect() {
    let azure = Mock::start(Kind::OpenAi).await;
    let gw = start(&azure_toml(&azure), &[]).await;
    let mut ran = 0;
    for (model, uri) in [
        ("az/gpt-4o", "/openai/v1/chat/completions".to_owned()),
        (
            "azd/my-deployment",
            format!("/openai/deployments/my-deployment/chat/completions?api-version={API_VERSION}"),
        ),
    ] {
        for inbound in [Inbound::OpenAi, Inbound::Anthropic] {
            for stream in [false, true] {
                for tools in [false, true] {
                    let what = format!("{inbound:?} → {model} stream={stream} tools={tools}");
                    let (_, h, o) =
                        call(&gw, inbound, &request(inbound, model, stream, tools)).await;
                    let provider = model.split('/').next().unwrap();
                    assert_eq!(h["x-switchyard-provider"], provider, "{what}");
                    if tools {
                        assert_eq!(o.finish, "tool_calls", "{what}: {o:?}");
                        assert_eq!(o.calls.len(), 2, "{what}: {o:?}");
                        assert_eq!(o.calls[0].2, json!({"city": "Paris"}), "{what}");
                    } else {
                        assert_eq!(o.text, "Hello from openai. You said: Say hi", "{what}");
                        assert_eq!(o.finish, "stop", "{what}");
                    }
                    assert_eq!(o.usage, Some((11, 7)), "{what}");
                    let up = azure.last();
                    assert_eq!(up.uri, uri, "{what}");
                    assert_eq!(header(&up, "api-key").as_deref(), Some(AZURE_KEY));
                    assert_eq!(header(&up, "authorization"), None, "{what}");
                    let body = up.json();
                    assert_eq!(body["model"], model.split('/').nth(1).unwrap(), "{what}");
                    if inbound == Inbound::Anthropic {
                        assert_eq!(body["max_completion_tokens"], 256, "{what}: {body}");
                    }
                    ran += 1;
                }
            }
        }
    }
    assert_eq!(ran, 16);

    // The Responses API and the Gemini API, translated to chat completions.
    let (s, _, v) = gw
        .post(
            "/v1/responses",
            &json!({"model": "az/gpt-4o", "input": "Say hi"}),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(
        v["output"][0]["content"][0]["text"], "Hello from openai. You said: Say hi",
        "{v}"
    );
    assert_eq!(azure.last().uri, "/openai/v1/chat/completions");
    let (s, _, v) = gw
        .post(
            "/v1beta/models/azd/my-deployment:generateContent",
            &json!({"contents": [{"role": "user", "parts": [{"text": "Say hi"}]}]}),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(
        v["candidates"][0]["content"]["parts"][0]["text"],
        "Hello from openai. You said: Say hi"
    );
    assert!(
        azure
            .last()
            .uri
            .starts_with("/openai/deployments/my-deployment/")
    );

    // Embeddings, in both forms.
    for (model, uri) in [
        (
            "az/text-embedding-3-small",
            "/openai/v1/embeddings".to_owned(),
        ),
        (
            "azd/emb",
            format!("/openai/deployments/emb/embeddings?api-version={API_VERSION}"),
        ),
    ] {
        let (s, _, v) = gw
            .post(
                "/v1/embeddings",
                &json!({"model": model, "input": ["a", "b"]}),
            )
            .await;
        assert_eq!(s, 200, "{v}");
        assert_eq!(v["data"].as_array().unwrap().len(), 2);
        let up = azure.last();
        assert_eq!(up.uri, uri);
        assert_eq!(header(&up, "api-key").as_deref(), Some(AZURE_KEY));
    }
    let (_, v) = gw.admin_call("GET", "/admin/v1/providers", None).await;
    no_azure_canary(&v.to_string());
    no_azure_canary(&logs());
    gw.shutdown().await;
}

fn chunk(v: Value) -> (Duration, String) {
    (Duration::ZERO, format!("data: {v}\n\n"))
}

/// Azure's stream opens with its prompt filter's results (`choices: []`,
/// empty id) and a filtered answer ends with `content_filter`: each caller
/// hears it in its own terms.
#[tokio::test]
async fn the_prompt_filter_chunk_and_a_filtered_answer_reach_each_dialect() {
    let azure = Mock::start(Kind::OpenAi).await;
    let gw = start(&azure_toml(&azure), &[]).await;
    let filtered = || Reply::Sse {
        pieces: vec![
            chunk(
                json!({"choices": [], "created": 0, "id": "", "model": "", "object": "", "prompt_filter_results": [{"prompt_index": 0, "content_filter_results": {"hate": {"filtered": false, "severity": "safe"}}}]}),
            ),
            chunk(
                json!({"choices": [{"content_filter_results": {}, "delta": {"content": "", "role": "assistant"}, "finish_reason": null, "index": 0}], "created": 1733000000, "id": "chatcmpl-az1", "model": "gpt-4o-2024-11-20", "object": "chat.completion.chunk"}),
            ),
            chunk(
                json!({"choices": [{"content_filter_results": {"hate": {"filtered": false, "severity": "safe"}}, "delta": {"content": "Hel"}, "finish_reason": null, "index": 0}], "created": 1733000000, "id": "chatcmpl-az1", "model": "gpt-4o-2024-11-20", "object": "chat.completion.chunk"}),
            ),
            chunk(
                json!({"choices": [{"content_filter_results": {"violence": {"filtered": true, "severity": "medium"}}, "delta": {}, "finish_reason": "content_filter", "index": 0}], "created": 1733000000, "id": "chatcmpl-az1", "model": "gpt-4o-2024-11-20", "object": "chat.completion.chunk"}),
            ),
            chunk(
                json!({"choices": [], "created": 1733000000, "id": "chatcmpl-az1", "model": "gpt-4o-2024-11-20", "object": "chat.completion.chunk", "usage": {"prompt_tokens": 9, "completion_tokens": 2, "total_tokens": 11}}),
            ),
            (Duration::ZERO, "data: [DONE]\n\n".into()),
        ],
        abort: false,
    };
    // Anthropic callers: a refusal.
    azure.script([filtered()]);
    let (_, _, o) = call(
        &gw,
        Inbound::Anthropic,
        &request(Inbound::Anthropic, "az/gpt-4o", true, false),
    )
    .await;
    assert_eq!(
        (o.text.as_str(), o.finish.as_str(), o.usage),
        ("Hel", "refusal", Some((9, 2)))
    );
    // OpenAI callers: Azure's own chunks, the opening one included.
    azure.script([filtered()]);
    let (s, _, raw) = gw
        .post_raw(
            "/v1/chat/completions",
            request(Inbound::OpenAi, "az/gpt-4o", true, false)
                .to_string()
                .into_bytes(),
            &[],
        )
        .await;
    assert_eq!(s, 200);
    let chunks = sse_json(&raw);
    assert!(chunks[0]["prompt_filter_results"].is_array(), "{raw}");
    assert!(
        chunks
            .iter()
            .any(|c| c["choices"][0]["finish_reason"] == "content_filter"),
        "{raw}"
    );
    // Gemini callers: SAFETY.
    azure.script([filtered()]);
    let (s, _, raw) = gw
        .post_raw(
            "/v1beta/models/az/gpt-4o:streamGenerateContent?alt=sse",
            json!({"contents": [{"role": "user", "parts": [{"text": "Say hi"}]}]})
                .to_string()
                .into_bytes(),
            &[],
        )
        .await;
    assert_eq!(s, 200);
    assert!(
        sse_json(&raw)
            .iter()
            .any(|c| c["candidates"][0]["finishReason"] == "SAFETY"),
        "{raw}"
    );
    gw.shutdown().await;
}

fn content_filter_error() -> Reply {
    Reply::Json(
        400,
        json!({"error": {"message": "The response was filtered due to the prompt triggering Azure OpenAI's content management policy.", "type": null, "param": "prompt", "code": "content_filter", "status": 400, "innererror": {"code": "ResponsibleAIPolicyViolation", "content_filter_result": {"hate": {"filtered": true, "severity": "high"}, "jailbreak": {"filtered": false, "detected": false}, "violence": {"filtered": false, "severity": "safe"}}}}}),
        vec![],
    )
}

/// A prompt the operator's content filter refused is said as such in the
/// caller's dialect, and not sent to the route's next provider.
#[tokio::test]
async fn a_content_filter_refusal_is_carried_and_not_failed_over() {
    let azure = Mock::start(Kind::OpenAi).await;
    let routes = format!(
        "{}\n[[routes]]\nname = \"guarded\"\nstrategy = \"fallback\"\ntargets = [\"az/gpt-4o\", \"openai/gpt-test\"]\n",
        azure_toml(&azure)
    );
    let gw = start(&routes, &[]).await;
    for (path, inbound) in [
        ("/v1/chat/completions", Inbound::OpenAi),
        ("/v1/messages", Inbound::Anthropic),
    ] {
        azure.script([content_filter_error()]);
        let before = gw.mocks.openai.count();
        let (s, _, v) = gw
            .post(path, &request(inbound, "guarded", false, false))
            .await;
        assert_eq!(s, 400, "{v}");
        let (kind, message) = match inbound {
            Inbound::OpenAi => (&v["error"]["code"], &v["error"]["message"]),
            Inbound::Anthropic => (&v["error"]["type"], &v["error"]["message"]),
        };
        let message = message.as_str().unwrap();
        assert!(
            message.contains("content management policy") && message.contains("hate (high)"),
            "{v}"
        );
        if inbound == Inbound::OpenAi {
            assert_eq!(kind, "content_filter", "{v}");
        } else {
            assert_eq!(kind, "invalid_request_error", "{v}");
        }
        assert_eq!(gw.mocks.openai.count(), before, "not failed over");
    }
    gw.shutdown().await;
}

/// `retry-after-ms` is honoured: a short wait pauses the model for that
/// long; a daily quota's wait sends the call to the route's next target
/// rather than holding it.
#[tokio::test]
async fn retry_after_ms_pauses_and_a_daily_quota_fails_over() {
    let azure = Mock::start(Kind::OpenAi).await;
    let routes = format!(
        "{}\n[[routes]]\nname = \"r\"\nstrategy = \"fallback\"\ntargets = [\"az/gpt-4o\", \"openai/gpt-test\"]\n",
        azure_toml(&azure)
    );
    let gw = start(&routes, &[]).await;
    let limited = |ms: &str| {
        Reply::Json(
            429,
            json!({"error": {"code": "429", "message": "Requests to the ChatCompletions_Create Operation under Azure OpenAI API version 2024-10-21 have exceeded token rate limit of your current OpenAI S0 pricing tier."}}),
            vec![
                ("retry-after-ms", ms.to_owned()),
                ("retry-after", "1".to_owned()),
            ],
        )
    };
    azure.script([limited("700")]);
    let chat = |model: &str| request(Inbound::OpenAi, model, false, false);
    let (s, _, _) = gw.post("/v1/chat/completions", &chat("az/gpt-4o")).await;
    assert_eq!(s, 429);
    let before = azure.count();
    let (s, h, _) = gw.post("/v1/chat/completions", &chat("az/gpt-4o")).await;
    assert_eq!(s, 429, "paused for 700 ms");
    assert_eq!(h["retry-after"], "1");
    assert_eq!(azure.count(), before, "not asked while paused");
    tokio::time::sleep(Duration::from_millis(750)).await;
    let (s, _, _) = gw.post("/v1/chat/completions", &chat("az/gpt-4o")).await;
    assert_eq!(s, 200, "asked again after retry-after-ms");

    // A day's wait: the route's next target answers now.
    azure.script([limited("86400000")]);
    let (s, h, v) = gw.post("/v1/chat/completions", &chat("r")).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(h["x-switchyard-provider"], "openai");
    let before = azure.count();
    let (_, h, _) = gw.post("/v1/chat/completions", &chat("r")).await;
    assert_eq!(h["x-switchyard-provider"], "openai");
    assert_eq!(azure.count(), before, "the exhausted model rests");
    gw.shutdown().await;
}

/// A mock Entra ID token endpoint: checks the client-credentials grant and
/// issues `tok-1`, `tok-2`, ... living `life` seconds.
#[derive(Clone, Default)]
struct Entra {
    fetches: Arc<AtomicUsize>,
    life: Arc<AtomicU64>,
    forms: Arc<Mutex<Vec<String>>>,
}

async fn token(State(e): State<Entra>, body: String) -> axum::response::Response {
    e.forms.lock().unwrap().push(body.clone());
    let form: Vec<(String, String)> = body
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.replace("%2F", "/").replace("%3A", ":")))
        .collect();
    let get = |k: &str| form.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
    if get("grant_type") != Some("client_credentials")
        || get("client_id") != Some("app-id")
        || get("scope") != Some("https://cognitiveservices.azure.com/.default")
    {
        return (
            http::StatusCode::BAD_REQUEST,
            axum::Json(json!({"error": "invalid_request"})),
        )
            .into_response();
    }
    if get("client_secret") != Some(CLIENT_SECRET) {
        return (
            http::StatusCode::UNAUTHORIZED,
            axum::Json(json!({"error": "invalid_client", "error_description": format!("AADSTS7000215: Invalid client secret provided: {}", get("client_secret").unwrap_or(""))})),
        )
            .into_response();
    }
    let n = e.fetches.fetch_add(1, Ordering::SeqCst) + 1;
    // Some endpoints send the lifetime as a string.
    axum::Json(json!({"token_type": "Bearer", "expires_in": e.life.load(Ordering::SeqCst).to_string(), "ext_expires_in": 3599, "access_token": format!("tok-{n}")}))
        .into_response()
}

async fn start_entra(life: u64) -> (Entra, String) {
    let e = Entra::default();
    e.life.store(life, Ordering::SeqCst);
    let app = axum::Router::new()
        .route("/tenant/oauth2/v2.0/token", axum::routing::post(token))
        .with_state(e.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (e, format!("http://{addr}/tenant/oauth2/v2.0/token"))
}

fn entra_toml(azure: &Mock, token_url: &str) -> String {
    format!(
        r#"
[[providers]]
name = "aze"
kind = "azure"
base_url = "http://{}/openai/v1"
timeout_ms = 5000

[providers.entra]
token_url = "{token_url}"
client_id_env = "AZ_CLIENT"
client_secret_env = "AZ_SECRET"
"#,
        azure.addr
    )
}

fn bearer(r: &crate::mock::Recorded) -> String {
    header(r, "authorization").unwrap_or_default()
}

/// Client-credentials tokens: one fetch for many calls at once, a new token
/// before the old one expires, and a refused token replaced once.
#[tokio::test]
async fn entra_tokens_are_fetched_once_refreshed_and_replaced_when_refused() {
    let azure = Mock::start(Kind::OpenAi).await;
    let (entra, url) = start_entra(2).await;
    let gw = start(
        &entra_toml(&azure, &url),
        &[("AZ_CLIENT", "app-id"), ("AZ_SECRET", CLIENT_SECRET)],
    )
    .await;
    let chat = request(Inbound::OpenAi, "aze/gpt-4o", false, false);
    let calls = (0..8).map(|_| gw.post("/v1/chat/completions", &chat));
    for (s, _, v) in futures_util::future::join_all(calls).await {
        assert_eq!(s, 200, "{v}");
    }
    assert_eq!(
        entra.fetches.load(Ordering::SeqCst),
        1,
        "one fetch for 8 calls"
    );
    assert!(azure.requests().iter().all(|r| bearer(r) == "Bearer tok-1"));
    assert!(
        azure
            .requests()
            .iter()
            .all(|r| header(r, "api-key").is_none())
    );
    // Refreshed at half its two-second life.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let (s, _, _) = gw.post("/v1/chat/completions", &chat).await;
    assert_eq!(s, 200);
    assert_eq!(bearer(&azure.last()), "Bearer tok-2");
    // Refused (revoked): dropped, a fresh one fetched, the call sent once more.
    azure.script([Reply::Json(
        401,
        json!({"error": {"code": "401", "message": "Access denied due to invalid subscription key or wrong API endpoint."}}),
        vec![],
    )]);
    let before = azure.count();
    let (s, _, v) = gw.post("/v1/chat/completions", &chat).await;
    assert_eq!(s, 200, "{v}");
    let seen = azure.requests();
    assert_eq!(seen.len(), before + 2);
    assert_eq!(bearer(&seen[before]), "Bearer tok-2");
    assert_eq!(bearer(&seen[before + 1]), "Bearer tok-3");
    assert_eq!(entra.fetches.load(Ordering::SeqCst), 3);

    // Calls per token over simulated expiries: a call every 100 ms for
    // 3 s with two-second tokens (refreshed each second).
    let first = azure.count();
    for _ in 0..30 {
        let (s, _, _) = gw.post("/v1/chat/completions", &chat).await;
        assert_eq!(s, 200);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let mut per_token: Vec<(String, usize)> = Vec::new();
    for r in &azure.requests()[first..] {
        let t = bearer(r);
        match per_token.last_mut() {
            Some((last, n)) if *last == t => *n += 1,
            _ => per_token.push((t, 1)),
        }
    }
    eprintln!("azure entra: calls per token over 3 s of 2 s tokens: {per_token:?}");
    assert!(
        (3..=5).contains(&per_token.len()),
        "a token a second: {per_token:?}"
    );
    assert!(per_token.iter().all(|(_, n)| *n <= 11), "{per_token:?}");
    let (_, v) = gw.admin_call("GET", "/admin/v1/providers", None).await;
    let shown = v.to_string();
    no_azure_canary(&shown);
    assert!(!shown.contains("tok-"), "{shown}");
    no_azure_canary(&logs());
    assert!(!logs().contains("Bearer tok-"));
    gw.shutdown().await;
}

/// A token from a variable is sent as a bearer token; a client secret the
/// endpoint refuses fails the call with the OAuth error code only.
#[tokio::test]
async fn a_token_variable_is_a_bearer_and_a_refused_secret_is_said_without_it() {
    let azure = Mock::start(Kind::OpenAi).await;
    let (entra, url) = start_entra(3600).await;
    let extra = format!(
        "{}\n[[providers]]\nname = \"azt\"\nkind = \"azure\"\nbase_url = \"http://{}/openai/v1\"\nentra_token_env = \"AZ_TOKEN\"\n",
        entra_toml(&azure, &url),
        azure.addr
    );
    let gw = start(
        &extra,
        &[
            ("AZ_CLIENT", "app-id"),
            ("AZ_SECRET", "entra-canary-wrong-secret-999"),
            ("AZ_TOKEN", "token-from-variable"),
        ],
    )
    .await;
    let (s, _, v) = gw
        .post(
            "/v1/chat/completions",
            &request(Inbound::OpenAi, "azt/gpt-4o", false, false),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(bearer(&azure.last()), "Bearer token-from-variable");

    let (s, _, v) = gw
        .post(
            "/v1/messages",
            &request(Inbound::Anthropic, "aze/gpt-4o", false, false),
        )
        .await;
    assert_eq!(s, 502, "{v}");
    let shown = v.to_string();
    assert!(shown.contains("invalid_client"), "{shown}");
    assert!(!shown.contains("canary-wrong-secret"), "{shown}");
    assert!(!shown.contains("AADSTS"), "{shown}");
    assert_eq!(entra.forms.lock().unwrap().len(), 1);
    assert!(!logs().contains("canary-wrong-secret"));
    gw.shutdown().await;
}

/// The Gemini and Responses APIs, whole and streamed, with and without
/// tools, in both URL forms.
#[tokio::test]
async fn the_gemini_and_responses_apis_in_both_forms() {
    let azure = Mock::start(Kind::OpenAi).await;
    let gw = start(&azure_toml(&azure), &[]).await;
    let mut ran = 0;
    for model in ["az/gpt-4o", "azd/my-deployment"] {
        ran += crate::clouds::other_dialects(&gw, model, "Hello from openai.").await;
    }
    assert_eq!(ran, 16);
    gw.shutdown().await;
}
