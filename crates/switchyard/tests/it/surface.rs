//! The rest of the public surface: models list, embeddings, passthrough,
//! health, the admin listener and the CLI.

use std::process::Command;

use serde_json::{Value, json};

use crate::binary::BIN;
use crate::harness::*;

#[tokio::test]
async fn models_lists_configured_models_in_either_shape() {
    let gw = Gw::start("").await;
    let v: Value = gw
        .http
        .get(gw.url("/v1/models"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .map(|t| serde_json::from_str::<Value>(&t).unwrap())
        .unwrap();
    let ids: Vec<&str> = v["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap())
        .collect();
    assert_eq!(v["object"], "list");
    assert_eq!(
        ids,
        [
            "openai/gpt-test",
            "anthropic/claude-test",
            "google/gemini-test",
            "compat/local-test"
        ]
    );
    let v: Value = gw
        .http
        .get(gw.url("/v1/models"))
        .header("anthropic-version", "2023-06-01")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .map(|t| serde_json::from_str::<Value>(&t).unwrap())
        .unwrap();
    assert_eq!(v["data"][0]["type"], "model");
    assert_eq!(v["first_id"], "openai/gpt-test");
    assert_eq!(v["has_more"], false);
    gw.shutdown().await;
}

#[tokio::test]
async fn embeddings_reach_openai_dialect_and_gemini_providers() {
    let gw = Gw::start("").await;
    let (s, h, v) = gw
        .post(
            "/v1/embeddings",
            &json!({"model": "openai/text-embedding-3-small", "input": ["a", "b"]}),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(h["x-switchyard-provider"], "openai");
    assert_eq!(v["data"].as_array().unwrap().len(), 2);
    let up = gw.mocks.openai.last();
    assert_eq!(up.uri, "/v1/embeddings");
    assert_eq!(up.json()["model"], "text-embedding-3-small");
    let r = crate::logs::record(&gw, h["x-switchyard-request-id"].to_str().unwrap()).await;
    assert_eq!(
        (r["status"].as_i64(), r["input_tokens"].as_i64()),
        (Some(200), Some(5)),
        "{r}"
    );
    assert_eq!(r["usage_source"], "reported");

    let (s, _, v) = gw
        .post(
            "/v1/embeddings",
            &json!({"model": "google/text-embedding-004", "input": ["hello", "world"]}),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["data"][1]["embedding"], json!([0.1, 0.2, 0.3]));
    assert_eq!(v["data"][1]["index"], 1);
    let up = gw.mocks.gemini.last();
    assert_eq!(
        up.uri,
        "/v1beta/models/text-embedding-004:batchEmbedContents"
    );
    assert_eq!(
        up.json()["requests"][1]["content"]["parts"][0]["text"],
        "world"
    );
    assert_eq!(
        up.json()["requests"][0]["model"],
        "models/text-embedding-004"
    );

    // The Python SDK asks for base64 by default.
    let (s, _, v) = gw
        .post("/v1/embeddings", &json!({"model": "google/text-embedding-004", "input": "x", "encoding_format": "base64"}))
        .await;
    assert_eq!(s, 200);
    assert_eq!(
        v["data"][0]["embedding"].as_str().unwrap().len(),
        16,
        "3 f32 as base64"
    );

    let (s, _, v) = gw
        .post(
            "/v1/embeddings",
            &json!({"model": "anthropic/claude-test", "input": "x"}),
        )
        .await;
    assert_eq!(s, 400);
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("no embeddings"),
        "{v}"
    );
    gw.shutdown().await;
}

#[tokio::test]
async fn passthrough_forwards_natively_with_the_stored_key_only() {
    let gw = Gw::start("").await;
    let resp = gw
        .http
        .post(gw.url("/passthrough/openai/files/list?purpose=batch&limit=2"))
        .header("authorization", "Bearer client-secret-xyz")
        .header("x-api-key", "client-secret-xyz")
        .header("cookie", "a=client-secret-xyz")
        .header("openai-beta", "assistants=v2")
        .header("content-type", "application/json")
        .body(r#"{"x":1}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["x-switchyard-provider"], "openai");
    let v: Value = serde_json::from_str(&resp.text().await.unwrap()).unwrap();
    assert_eq!(v["uri"], "/v1/files/list?purpose=batch&limit=2");
    let up = gw.mocks.openai.last();
    assert_eq!(up.method, "POST");
    assert_eq!(up.headers["authorization"], format!("Bearer {OPENAI_KEY}"));
    assert_eq!(up.headers["openai-beta"], "assistants=v2");
    assert!(up.headers.get("cookie").is_none());
    assert!(up.headers.get("x-api-key").is_none());
    assert!(!format!("{:?}", up.headers).contains("client-secret"));

    // Anthropic passthrough adds its version header and the key.
    let resp = gw
        .http
        .get(gw.url("/passthrough/anthropic/models"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let up = gw.mocks.anthropic.last();
    assert_eq!(up.headers["x-api-key"], ANTHROPIC_KEY);
    assert_eq!(up.headers["anthropic-version"], "2023-06-01");

    // No path may climb out of the base URL, and unknown providers are 404.
    let before = gw.mocks.openai.count();
    for bad in [
        "/passthrough/openai/../admin",
        "/passthrough/openai/%2e%2e/x",
        "/passthrough/openai/a//b",
    ] {
        let resp = gw.http.get(gw.url(bad)).send().await.unwrap();
        assert!(
            resp.status() == 400 || resp.status() == 404,
            "{bad}: {}",
            resp.status()
        );
    }
    assert_eq!(gw.mocks.openai.count(), before);
    let resp = gw
        .http
        .get(gw.url("/passthrough/nope/x"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 404);
    gw.shutdown().await;
}

#[tokio::test]
async fn health_and_readiness() {
    let gw = Gw::start("").await;
    let r = gw.http.get(gw.url("/healthz")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let r = gw.http.get(gw.url("/readyz")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(
        serde_json::from_str::<Value>(&r.text().await.unwrap()).unwrap()["storage"],
        "sqlite"
    );
    gw.shutdown().await;
}

#[tokio::test]
async fn admin_config_needs_the_token_and_shows_no_secret() {
    let gw = Gw::start("").await;
    let url = format!("{}/admin/v1/config", gw.admin);
    assert_eq!(gw.http.get(&url).send().await.unwrap().status(), 401);
    let wrong = gw
        .http
        .get(&url)
        .bearer_auth("test-admin-token-0123456789abcdeX")
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), 401);
    let r = gw
        .http
        .get(&url)
        .bearer_auth(&gw.admin_token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let text = r.text().await.unwrap();
    assert_no_canary(&text);
    let v: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(
        v["providers"][0]["api_key"],
        json!({"env": "MOCK_OPENAI_KEY", "set": true})
    );
    assert_eq!(v["providers"][2]["kind"], "gemini");
    assert_eq!(v["providers"][0]["timeout"], "5s");
    // The data plane does not serve admin routes.
    let r = gw
        .http
        .get(gw.url("/admin/v1/config"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    gw.shutdown().await;
}

#[test]
fn cli_version_and_check_config() {
    let out = Command::new(BIN).arg("--version").output().unwrap();
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("switchyard "));

    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good.toml");
    std::fs::write(
        &good,
        "[[providers]]\nname = \"openai\"\nkind = \"openai\"\napi_key_env = \"SY_TEST_UNSET_KEY\"\n[[routes]]\nname = \"smart\"\ntargets = [\"openai/gpt-5\"]\n",
    )
    .unwrap();
    let out = Command::new(BIN)
        .arg("check-config")
        .arg(&good)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    assert!(
        stdout.contains("openai") && stdout.contains("https://api.openai.com/v1"),
        "{stdout}"
    );
    assert!(stdout.contains("$SY_TEST_UNSET_KEY (NOT SET)"), "{stdout}");
    assert!(stdout.contains("smart"), "{stdout}");

    let bad = dir.path().join("bad.toml");
    std::fs::write(
        &bad,
        "[[providers]]\nname = \"x\"\nkind = \"openai\"\ntimeout_ms = \"soon\"\n",
    )
    .unwrap();
    let out = Command::new(BIN)
        .arg("check-config")
        .arg(&bad)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("bad.toml") && stderr.contains("providers[0].timeout_ms"),
        "{stderr}"
    );

    let out = Command::new(BIN)
        .arg("serve")
        .arg("--config")
        .arg(&bad)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "serve refuses a bad config too");
}

/// `switchyard serve` with no config file starts on embedded defaults and
/// registers what the environment has, printing no key.
#[test]
fn serve_runs_on_embedded_defaults() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(BIN)
        .arg("serve")
        .current_dir(dir.path())
        .env("SWITCHYARD_LISTEN", "127.0.0.1:0")
        .env("SWITCHYARD_ADMIN_LISTEN", "127.0.0.1:0")
        .env_remove("SWITCHYARD_ADMIN_TOKEN")
        .env("OPENAI_API_KEY", OPENAI_KEY)
        .env("MISTRAL_API_KEY", COMPAT_KEY)
        .env("OLLAMA_HOST", "127.0.0.1:11434")
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let mut seen = String::new();
    let started = std::time::Instant::now();
    use std::io::Read;
    let mut buf = [0u8; 4096];
    while !seen.contains("(mode 0600)") && started.elapsed() < std::time::Duration::from_secs(20) {
        let n = stderr.read(&mut buf).unwrap();
        if n == 0 {
            break;
        }
        seen.push_str(&String::from_utf8_lossy(&buf[..n]));
    }
    let _ = child.kill();
    let _ = child.wait();
    assert!(seen.contains("config: embedded defaults"), "{seen}");
    assert!(
        seen.contains("openai") && seen.contains("mistral") && seen.contains("ollama"),
        "{seen}"
    );
    assert!(seen.contains("$OPENAI_API_KEY (set)"), "{seen}");
    assert_no_canary(&seen);
    let token = dir.path().join("switchyard-admin-token");
    assert!(seen.contains("switchyard-admin-token"), "{seen}");
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&token).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    assert!(
        dir.path().join("switchyard.db").exists(),
        "SQLite file created on first start"
    );
}
