//! The official client SDKs against the built binary, in front of the mock
//! upstreams: the OpenAI and Anthropic Python SDKs (each inbound dialect ×
//! each adapter kind × stream/non-stream × text/tools, plus tool-result
//! round trips: tests/sdk/conformance.py), and the Responses API's clients,
//! the `openai` SDK's `responses` and the OpenAI Agents SDK
//! (tests/sdk/responses_clients.py).

use std::process::Command;

use crate::binary::{Binary, required_env};
use crate::harness::*;

const MODELS: &str = "openai/gpt-test,anthropic/claude-test,google/gemini-test,compat/local-test";

/// The binary on its own SQLite storage in front of fresh mocks, with a
/// real Switchyard key made by the CLI in that storage.
struct Running {
    bin: Binary,
    key: String,
    _mocks: Mocks,
    _dir: tempfile::TempDir,
}

async fn start(extra: &str) -> Running {
    let mocks = start_mocks().await;
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("switchyard.toml");
    std::fs::write(
        &config,
        format!(
            "[server]\nlisten = \"127.0.0.1:0\"\nadmin_listen = \"127.0.0.1:0\"\n[storage]\nurl = \"sqlite://{}/sy.db\"\n{}{}",
            dir.path().display(),
            providers_toml(&mocks),
            extra
        ),
    )
    .unwrap();
    let env: Vec<(&str, &str)> = vec![
        ("MOCK_OPENAI_KEY", OPENAI_KEY),
        ("MOCK_ANTHROPIC_KEY", ANTHROPIC_KEY),
        ("MOCK_GEMINI_KEY", GEMINI_KEY),
        ("MOCK_COMPAT_KEY", COMPAT_KEY),
    ];
    let made = Command::new(crate::binary::BIN)
        .args(["keys", "create", "--name", "sdk-conformance", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    assert!(
        made.status.success(),
        "{}",
        String::from_utf8_lossy(&made.stderr)
    );
    let key: serde_json::Value = serde_json::from_slice(&made.stdout).unwrap();
    let key = key["key"].as_str().unwrap().to_owned();
    let bin = Binary::start(&config, &env);
    Running {
        bin,
        key,
        _mocks: mocks,
        _dir: dir,
    }
}

/// Runs a conformance script and returns its JSON summary, after checking
/// that it passed and that no canary secret reached its output or the
/// gateway's log.
async fn run_script(
    python: String,
    running: Running,
    script: &str,
    args: Vec<String>,
) -> serde_json::Value {
    let script = format!("{}/tests/sdk/{script}", env!("CARGO_MANIFEST_DIR"));
    let out = tokio::task::spawn_blocking(move || {
        Command::new(python)
            .arg(script)
            .args(args)
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let summary = stdout.lines().last().unwrap_or("");
    println!("{summary}");
    let logs = running.bin.stop();
    assert!(
        out.status.success(),
        "conformance failed:\n{stdout}\n{stderr}\n--- gateway log tail ---\n{}",
        tail(&logs)
    );
    assert_no_canary(&stdout);
    assert_no_canary(&logs);
    let v: serde_json::Value = serde_json::from_str(summary).unwrap();
    assert_eq!(v["failed"], 0);
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn official_sdks_against_the_binary() {
    let Some(python) = required_env("SWITCHYARD_SDK_PYTHON") else {
        return;
    };
    // A route whose primary is down: the SDKs must not notice.
    let running = start("\n[[providers]]\nname = \"broken\"\nkind = \"anthropic\"\nbase_url = \"http://127.0.0.1:9/v1\"\n\n[[routes]]\nname = \"smart\"\ntargets = [\"broken/claude-x\", \"openai/gpt-test\"]\n").await;
    let args = vec![
        "--base-url".into(),
        running.bin.base.clone(),
        "--models".into(),
        MODELS.into(),
        "--route".into(),
        "smart".into(),
        "--route-kind".into(),
        "openai".into(),
        "--api-key".into(),
        running.key.clone(),
    ];
    let v = run_script(python, running, "conformance.py", args).await;
    assert!(v["passed"].as_u64().unwrap() >= 66, "{v}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn responses_clients_against_the_binary() {
    let Some(python) = required_env("SWITCHYARD_SDK_PYTHON") else {
        return;
    };
    let running = start("").await;
    let args = vec![
        "--base-url".into(),
        running.bin.base.clone(),
        "--models".into(),
        MODELS.into(),
        "--api-key".into(),
        running.key.clone(),
    ];
    let v = run_script(python, running, "responses_clients.py", args).await;
    // 6 openai-sdk and 2 agents cases per provider kind.
    assert!(v["passed"].as_u64().unwrap() >= 32, "{v}");
}

fn tail(s: &str) -> String {
    let lines: Vec<&str> = s.lines().collect();
    lines[lines.len().saturating_sub(60)..].join("\n")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn google_genai_against_the_binary() {
    let Some(python) = required_env("SWITCHYARD_SDK_PYTHON") else {
        return;
    };
    let running = start("").await;
    let args = vec![
        "--base-url".into(),
        running.bin.base.clone(),
        "--models".into(),
        "google/gemini-test,anthropic/claude-test,openai/gpt-test,compat/local-test".into(),
        "--api-key".into(),
        running.key.clone(),
    ];
    let v = run_script(python, running, "genai_client.py", args).await;
    // 9 cases per provider kind and API version.
    assert!(v["passed"].as_u64().unwrap() >= 72, "{v}");
}
