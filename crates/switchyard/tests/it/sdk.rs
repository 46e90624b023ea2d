//! The official OpenAI and Anthropic Python SDKs against the built binary:
//! each inbound dialect × each adapter kind × stream/non-stream ×
//! text/tools, plus tool-result round trips (tests/sdk/conformance.py).

use std::process::Command;

use crate::binary::{Binary, required_env};
use crate::harness::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn official_sdks_against_the_binary() {
    let Some(python) = required_env("SWITCHYARD_SDK_PYTHON") else {
        return;
    };
    let mocks = start_mocks().await;
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("switchyard.toml");
    std::fs::write(
        &config,
        format!(
            "[server]\nlisten = \"127.0.0.1:0\"\nadmin_listen = \"127.0.0.1:0\"\n[storage]\nurl = \"sqlite://{}/sy.db\"\n{}{}",
            dir.path().display(),
            providers_toml(&mocks),
            // A route whose primary is down: the SDKs must not notice.
            "\n[[providers]]\nname = \"broken\"\nkind = \"anthropic\"\nbase_url = \"http://127.0.0.1:9/v1\"\n\n[[routes]]\nname = \"smart\"\ntargets = [\"broken/claude-x\", \"openai/gpt-test\"]\n"
        ),
    )
    .unwrap();
    let env: Vec<(&str, &str)> = vec![
        ("MOCK_OPENAI_KEY", OPENAI_KEY),
        ("MOCK_ANTHROPIC_KEY", ANTHROPIC_KEY),
        ("MOCK_GEMINI_KEY", GEMINI_KEY),
        ("MOCK_COMPAT_KEY", COMPAT_KEY),
    ];
    // A real Switchyard key, made with the CLI in the same storage.
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
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/sdk/conformance.py");
    let base = bin.base.clone();
    let out = tokio::task::spawn_blocking(move || {
        Command::new(python)
            .arg(script)
            .args(["--base-url", &base])
            .args([
                "--models",
                "openai/gpt-test,anthropic/claude-test,google/gemini-test,compat/local-test",
            ])
            .args(["--route", "smart", "--route-kind", "openai"])
            .args(["--api-key", &key])
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let summary = stdout.lines().last().unwrap_or("");
    println!("SDK conformance: {summary}");
    let logs = bin.stop();
    assert!(
        out.status.success(),
        "SDK conformance failed:\n{stdout}\n{stderr}\n--- gateway log tail ---\n{}",
        tail(&logs)
    );
    assert_no_canary(&stdout);
    assert_no_canary(&logs);
    let v: serde_json::Value = serde_json::from_str(summary).unwrap();
    assert!(v["passed"].as_u64().unwrap() >= 66, "{summary}");
    assert_eq!(v["failed"], 0);
}

fn tail(s: &str) -> String {
    let lines: Vec<&str> = s.lines().collect();
    lines[lines.len().saturating_sub(60)..].join("\n")
}
