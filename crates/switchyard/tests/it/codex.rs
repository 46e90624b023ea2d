//! Codex CLI (`@openai/codex`, its native binary from the npm package)
//! running `codex exec` against the gateway, through every provider kind:
//! it speaks only the Responses API, streams, and sends its own tools
//! (functions, a namespace, freeform tools, `web_search`). The mock first
//! asks Codex to run a shell command through its `exec_command` tool;
//! Codex runs it and sends the output back, and the mock's answer echoes
//! that output, which Codex prints.

use std::process::Command;

use serde_json::json;

use crate::binary::required_env;
use crate::harness::*;
use crate::mock::{Kind, tool_call_stream};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn codex_exec_runs_a_tool_loop_through_every_provider() {
    let Some(codex) = required_env("SWITCHYARD_CODEX") else {
        return;
    };
    // Codex offers `web_search` (cached mode) unless told not to; no other
    // provider has that, so the operator drops it rather than refuses.
    let gw = Gw::start(
        "[auth]\nrequire_keys = true\n[responses]\ndrop_unsupported_tools = [\"web_search\"]\n",
    )
    .await;
    let (_, key) = gw.create_key(json!({"name": "codex"})).await;
    let base = format!("{}/v1", gw.base);
    let models = [
        ("anthropic/claude-test", Kind::Anthropic, false),
        ("google/gemini-test", Kind::Gemini, false),
        ("openai/gpt-test", Kind::OpenAi, true),
        ("compat/local-test", Kind::OpenAi, false),
    ];
    // Over HTTP streams, then over the Responses WebSocket mode.
    for ((model, kind, native), websocket) in models
        .iter()
        .copied()
        .map(|m| (m, false))
        .chain(models.iter().copied().map(|m| (m, true)))
    {
        let mock = match model.split('/').next().unwrap() {
            "anthropic" => &gw.mocks.anthropic,
            "google" => &gw.mocks.gemini,
            "openai" => &gw.mocks.openai,
            _ => &gw.mocks.compat,
        };
        let before = mock.count();
        mock.script([tool_call_stream(
            kind,
            native,
            "exec_command",
            json!({"cmd": "echo hello-from-codex"}),
        )]);
        let home = tempfile::tempdir().unwrap();
        let provider = format!(
            "model_providers.sy={{name=\"sy\",base_url=\"{base}\",env_key=\"SY_KEY\",wire_api=\"responses\",supports_websockets={websocket}}}"
        );
        let codex = codex.clone();
        let model_arg = model.to_owned();
        let home_path = home.path().to_owned();
        let key = key.clone();
        let out = tokio::task::spawn_blocking(move || {
            Command::new(&codex)
                .args([
                    "exec",
                    "--skip-git-repo-check",
                    "--sandbox",
                    "danger-full-access",
                ])
                .args(["-c", "model_provider=sy", "-c", &provider])
                .args([
                    "-m",
                    &model_arg,
                    "Run echo hello-from-codex and tell me what it printed.",
                ])
                .env("SY_KEY", &key)
                .env("HOME", &home_path)
                .env("CODEX_HOME", &home_path)
                .current_dir(&home_path)
                .stdin(std::process::Stdio::null())
                .output()
                .unwrap()
        })
        .await
        .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success(),
            "{model}: codex exited {:?}\n{stdout}\n{stderr}",
            out.status
        );
        assert!(
            stdout.contains("Tool result received:") && stdout.contains("hello-from-codex"),
            "{model}: {stdout}\n{stderr}"
        );
        let requests = mock.requests();
        assert_eq!(
            requests.len(),
            before + 2,
            "{model}: one tool call, one answer"
        );
        let second = requests.last().unwrap().json().to_string();
        assert!(
            second.contains("hello-from-codex"),
            "{model}: the tool's output went upstream"
        );
        assert_no_canary(&stdout);
        assert_no_canary(&stderr);
        if websocket {
            assert!(
                logs().contains("Responses WebSocket session opened"),
                "{model}: Codex did not use the WebSocket mode"
            );
        }
        println!(
            "codex exec via {model} (websocket: {websocket}): ok ({} upstream calls)",
            requests.len() - before
        );
    }
    gw.shutdown().await;
}
