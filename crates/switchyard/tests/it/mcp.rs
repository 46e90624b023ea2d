//! The MCP gateway through the real binary, with the official `mcp` Python
//! SDK on both sides: as the upstream server (tools with and without
//! annotations, tests/sdk/mcp_upstream.py) and as the agent's client in
//! both protocol modes (tests/sdk/mcp_client.py). A person approves or
//! denies held writes through the admin API while the client waits; the
//! client's own elicitation answer decides where the operator allows it;
//! a tool whose definition changes is withheld until accepted; and the
//! upstream credential never reaches the agent, a log line or the audit
//! chain, while the agent's key never reaches the upstream.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};

use crate::binary::{BIN, Binary, required_env};

const UPSTREAM_SECRET: &str = "mcp-canary-upstream-token-8c1f3e5a7b";
const ADMIN_TOKEN: &str = "test-admin-token-0123456789abcdef";

fn script(name: &str) -> String {
    format!("{}/tests/sdk/{name}", env!("CARGO_MANIFEST_DIR"))
}

/// The Python upstream MCP server.
struct Upstream {
    child: Child,
    port: u16,
    dir: PathBuf,
}

impl Upstream {
    fn start(python: &str, dir: &Path, variant: &str, port: Option<u16>) -> Upstream {
        let mut cmd = Command::new(python);
        cmd.arg(script("mcp_upstream.py"))
            .arg(dir)
            .arg(UPSTREAM_SECRET)
            .arg(variant)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        if let Some(p) = port {
            cmd.env("MCP_UPSTREAM_PORT", p.to_string());
        }
        let mut child = cmd.spawn().expect("start the upstream MCP server");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let port = line
            .trim()
            .strip_prefix("port ")
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("the upstream said {line:?}"));
        Upstream {
            child,
            port,
            dir: dir.to_owned(),
        }
    }

    fn lines(&self, file: &str) -> Vec<Value> {
        std::fs::read_to_string(self.dir.join(file))
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    fn runs(&self, item: i64) -> usize {
        self.lines("runs.jsonl")
            .iter()
            .filter(|r| r["item_id"] == item)
            .count()
    }

    fn stop(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Upstream {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

struct Setup {
    bin: Binary,
    key: String,
    other_key: String,
    eu_key: String,
    http: reqwest::Client,
    _dir: tempfile::TempDir,
}

fn create_key(config: &Path, args: &[&str]) -> String {
    let made = Command::new(BIN)
        .args(["keys", "create", "--config"])
        .arg(config)
        .args(args)
        .output()
        .unwrap();
    assert!(
        made.status.success(),
        "{}",
        String::from_utf8_lossy(&made.stderr)
    );
    let v: Value = serde_json::from_slice(&made.stdout).unwrap();
    v["key"].as_str().unwrap().to_owned()
}

fn gateway(port: u16) -> Setup {
    // reqwest is built without a bundled crypto provider (as the gateway is).
    let _ = rustls::crypto::ring::default_provider().install_default();
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("switchyard.toml");
    let server = |name: &str, extra: &str| {
        format!(
            r#"
[[mcp_servers]]
name = "{name}"
url = "http://127.0.0.1:{port}/mcp"
auth = {{ header = "Authorization", value_env = "MCP_UP_TOKEN", prefix = "Bearer " }}
list_ttl_s = 1
approval_timeout_s = 30
{extra}
"#
        )
    };
    std::fs::write(
        &config,
        format!(
            "[server]\nlisten = \"127.0.0.1:0\"\nadmin_listen = \"127.0.0.1:0\"\n[auth]\nrequire_keys = true\n\
             [storage]\nurl = \"sqlite://{}/sy.db\"\n{}{}",
            dir.path().display(),
            server("up", "reads = [\"search_*\"]\njurisdiction = \"eu\""),
            server("self", "client_approval = true"),
        ),
    )
    .unwrap();
    let key = create_key(
        &config,
        &[
            "--name",
            "mcp-agent",
            "--tools",
            "up__get_*,up__search_*,up__whoami,up__delete_item,self__delete_item",
            "--metadata",
            "team=agents",
        ],
    );
    let other_key = create_key(&config, &["--name", "other", "--tools", "*"]);
    let eu_key = create_key(
        &config,
        &["--name", "eu", "--tools", "*", "--jurisdictions", "eu"],
    );
    let bin = Binary::start(
        &config,
        &[
            ("MCP_UP_TOKEN", UPSTREAM_SECRET),
            ("SWITCHYARD_ADMIN_TOKEN", ADMIN_TOKEN),
        ],
    );
    Setup {
        bin,
        key,
        other_key,
        eu_key,
        http: reqwest::Client::builder().no_proxy().build().unwrap(),
        _dir: dir,
    }
}

impl Setup {
    async fn admin(&self, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        let mut rb = self
            .http
            .request(method.parse().unwrap(), format!("{}{path}", self.bin.admin))
            .bearer_auth(ADMIN_TOKEN);
        if let Some(b) = body {
            rb = rb.json(&b);
        }
        let r = rb.send().await.unwrap();
        let status = r.status().as_u16();
        let v = r.json().await.unwrap_or(Value::Null);
        crate::openapi::check(method, path, status, &v);
        (status, v)
    }

    /// Runs the Python client with `plan`; what it printed.
    async fn client(&self, python: &str, mode: &str, plan: Value) -> Value {
        self.client_as(&self.key, python, mode, plan).await
    }

    async fn client_as(&self, key: &str, python: &str, mode: &str, plan: Value) -> Value {
        let (python, url, key) = (
            python.to_owned(),
            format!("{}/mcp", self.bin.base),
            key.to_owned(),
        );
        let mode = mode.to_owned();
        let out = tokio::task::spawn_blocking(move || {
            Command::new(python)
                .arg(script("mcp_client.py"))
                .args([&url, &key, &mode, &plan.to_string()])
                .output()
                .unwrap()
        })
        .await
        .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success(),
            "the MCP client failed:\n{stdout}\n{}\n--- gateway ---\n{}",
            String::from_utf8_lossy(&out.stderr),
            tail(&self.bin.stderr())
        );
        assert!(!stdout.contains(UPSTREAM_SECRET), "{stdout}");
        serde_json::from_str(stdout.lines().last().unwrap()).unwrap()
    }
}

fn tail(s: &str) -> String {
    let lines: Vec<&str> = s.lines().collect();
    lines[lines.len().saturating_sub(80)..].join("\n")
}

/// A person at the admin API: approves held writes of item 7, denies those
/// of item 8 with a reason, leaves everything else alone.
fn approver(setup: Arc<Setup>, decided: Arc<Mutex<Vec<String>>>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            let (_, list) = setup
                .admin("GET", "/admin/v1/approvals?state=pending", None)
                .await;
            for a in list["data"].as_array().cloned().unwrap_or_default() {
                let args = a["arguments"].as_str().unwrap_or("");
                let body = if args.contains("\"item_id\":7") {
                    json!({"decision": "approve"})
                } else if args.contains("\"item_id\":8") {
                    json!({"decision": "deny", "reason": "not today"})
                } else {
                    continue;
                };
                let id = a["id"].as_str().unwrap().to_owned();
                let (status, _) = setup
                    .admin("POST", &format!("/admin/v1/approvals/{id}"), Some(body))
                    .await;
                assert_eq!(status, 200);
                decided.lock().unwrap().push(id);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
}

fn call(out: &Value, i: usize) -> &Value {
    &out["calls"][i]
}

/// The item a `delete_item` call says it deleted (its answer is JSON text).
fn deleted(call: &Value) -> Value {
    let text = call["text"].as_str().unwrap_or("null");
    serde_json::from_str::<Value>(text).unwrap_or(Value::Null)["deleted"].clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mcp_clients_through_the_binary_in_both_protocol_modes() {
    let Some(python) = required_env("SWITCHYARD_SDK_PYTHON") else {
        return;
    };
    let updir = tempfile::tempdir().unwrap();
    let upstream = Upstream::start(&python, updir.path(), "1", None);
    let setup = Arc::new(gateway(upstream.port));
    let decided = Arc::new(Mutex::new(Vec::new()));
    let person = approver(setup.clone(), decided.clone());
    let plan = json!([
        {"tool": "up__get_weather", "args": {"city": "Oslo"}},
        {"tool": "up__search_docs", "args": {"query": "approvals"}},
        {"tool": "up__whoami"},
        {"tool": "up__delete_item", "args": {"item_id": 7}},
        {"tool": "up__delete_item", "args": {"item_id": 8}},
        {"tool": "up__echo_plain", "args": {"text": "hi"}},
        {"tool": "self__delete_item", "args": {"item_id": 100}},
        {"tool": "self__delete_item", "args": {"item_id": 101}},
    ]);
    for mode in ["legacy", "2026-07-28"] {
        let out = setup.client(&python, mode, plan.clone()).await;
        println!("{mode}: {out}");
        let names: Vec<&str> = out["tools"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["name"].as_str().unwrap())
            .collect();
        let mut sorted = names.clone();
        sorted.sort();
        assert_eq!(
            sorted,
            [
                "self__delete_item",
                "up__delete_item",
                "up__get_weather",
                "up__search_docs",
                "up__whoami"
            ],
            "{mode}: only the tools the key may use"
        );
        let tool = |n: &str| {
            out["tools"]
                .as_array()
                .unwrap()
                .iter()
                .find(|t| t["name"] == n)
                .unwrap()
                .clone()
        };
        // Classified: an operator's read, an annotated read, a write.
        assert_eq!(tool("up__search_docs")["annotations"]["readOnlyHint"], true);
        assert_eq!(
            tool("up__search_docs")["meta"]["switchyard/approval"],
            "none"
        );
        assert_eq!(tool("up__get_weather")["annotations"]["readOnlyHint"], true);
        assert_eq!(
            tool("up__delete_item")["annotations"]["readOnlyHint"],
            false
        );
        assert_eq!(
            tool("up__delete_item")["meta"]["switchyard/approval"],
            "required"
        );
        assert_eq!(call(&out, 0)["text"], "Sunny in Oslo", "{mode}");
        assert_eq!(call(&out, 1)["text"], "3 documents match approvals");
        // The upstream answered with its credential: the agent never sees it.
        assert_eq!(call(&out, 2)["text"], "called with [redacted]");
        // Held, approved by a person, run.
        assert_eq!(call(&out, 3)["is_error"], false, "{mode}: {out}");
        assert_eq!(deleted(call(&out, 3)), 7);
        // Held, denied by a person.
        assert_eq!(call(&out, 4)["is_error"], true);
        let denied = call(&out, 4)["text"].as_str().unwrap();
        assert!(
            denied.starts_with("approval_denied") && denied.contains("not today"),
            "{denied}"
        );
        // Not among the key's tools: refused by the protocol.
        assert!(
            call(&out, 5)["error"]
                .as_str()
                .unwrap()
                .contains("may not use tool `up__echo_plain`"),
            "{out}"
        );
        // The client's own answer decides where the operator allows it.
        assert_eq!(call(&out, 6)["is_error"], false, "{mode}: {out}");
        assert_eq!(deleted(call(&out, 6)), 100);
        assert_eq!(call(&out, 7)["is_error"], true);
        assert!(
            call(&out, 7)["text"]
                .as_str()
                .unwrap()
                .contains("declined by the MCP client")
        );
        let asked = out["asked"].as_array().unwrap();
        assert_eq!(asked.len(), 2, "{mode}: {out}");
        assert!(asked[0].as_str().unwrap().contains("self__delete_item"));
    }
    // A key limited to the EU sees only the server that says it is there.
    let out = setup
        .client_as(
            &setup.eu_key,
            &python,
            "2026-07-28",
            json!([{"tool": "self__delete_item", "args": {"item_id": 5}}]),
        )
        .await;
    let names: Vec<&str> = out["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert!(
        names.iter().all(|n| n.starts_with("up__")) && names.contains(&"up__echo_plain"),
        "{out}"
    );
    assert!(
        call(&out, 0)["text"]
            .as_str()
            .unwrap()
            .starts_with("jurisdiction_refused"),
        "{out}"
    );
    person.abort();
    assert_eq!(decided.lock().unwrap().len(), 4);
    // Each approved write ran once per mode; the denied and declined never.
    assert_eq!(upstream.runs(7), 2);
    assert_eq!(upstream.runs(100), 2);
    assert_eq!(upstream.runs(8), 0);
    assert_eq!(upstream.runs(5), 0);
    assert_eq!(upstream.runs(101), 0);
    assert!(
        upstream
            .lines("runs.jsonl")
            .iter()
            .all(|r| r["tool"] == "delete_item")
    );
    // What reached the upstream: its credential on every request, never
    // the agent's key.
    let seen = upstream.lines("headers.jsonl");
    assert!(seen.len() > 10);
    for h in &seen {
        assert_eq!(h["authorization"], format!("Bearer {UPSTREAM_SECRET}"));
        let text = h.to_string();
        assert!(
            !text.contains(&setup.key) && !text.contains("sk-sy-"),
            "{text}"
        );
    }

    probes(&setup).await;
    audited(&setup).await;

    let setup = Arc::try_unwrap(setup).ok().unwrap();
    let logs = setup.bin.stop();
    let leaks: Vec<&str> = logs
        .lines()
        .filter(|l| l.contains(UPSTREAM_SECRET))
        .collect();
    assert!(
        leaks.is_empty(),
        "the upstream credential in a log line:\n{}",
        leaks.join("\n")
    );
    upstream.stop();
}

/// What the protocol refuses before any tool is called.
async fn probes(setup: &Setup) {
    let url = format!("{}/mcp", setup.bin.base);
    let post = |key: &str, body: Value| {
        setup
            .http
            .post(&url)
            .bearer_auth(key)
            .header("accept", "application/json, text/event-stream")
            .header("content-type", "application/json")
            .body(body.to_string())
    };
    // No key.
    let r = setup.http.post(&url).body("{}").send().await.unwrap();
    assert_eq!(r.status(), 401);
    // A batch.
    let batch = json!([
        {"jsonrpc": "2.0", "id": 1, "method": "tools/list"},
        {"jsonrpc": "2.0", "id": 2, "method": "tools/list"}
    ]);
    let r = post(&setup.key, batch).send().await.unwrap();
    assert_eq!(r.status(), 400);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"]["code"], -32600, "{v}");
    // 2026-07-28: a header that disagrees with the body.
    let meta = json!({
        "io.modelcontextprotocol/protocolVersion": "2026-07-28",
        "io.modelcontextprotocol/clientCapabilities": {},
    });
    let r = post(
        &setup.key,
        json!({"jsonrpc": "2.0", "id": 3, "method": "tools/call",
               "params": {"name": "up__get_weather", "arguments": {"city": "x"}, "_meta": meta}}),
    )
    .header("mcp-protocol-version", "2026-07-28")
    .header("mcp-method", "tools/call")
    .header("mcp-name", "up__delete_item")
    .send()
    .await
    .unwrap();
    assert_eq!(r.status(), 400);
    let text = r.text().await.unwrap();
    assert!(text.contains("-32020"), "{text}");
    // A session belongs to the key that opened it.
    let init = json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-11-25", "capabilities": {},
        "clientInfo": {"name": "probe", "version": "1"}}});
    let r = post(&setup.key, init).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let session = r.headers()["mcp-session-id"].to_str().unwrap().to_owned();
    let list = json!({"jsonrpc": "2.0", "id": 2, "method": "tools/list"});
    let r = post(&setup.other_key, list.clone())
        .header("mcp-session-id", &session)
        .header("mcp-protocol-version", "2025-11-25")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404, "another key in this session");
    let r = post(&setup.key, list)
        .header("mcp-session-id", &session)
        .header("mcp-protocol-version", "2025-11-25")
        .send()
        .await
        .unwrap();
    assert_ne!(r.status(), 404);
}

/// The calls are in the audit chain (which verifies, and never holds the
/// credential) and in usage by the key's tag.
async fn audited(setup: &Setup) {
    let (status, v) = setup.admin("GET", "/admin/v1/audit/verify", None).await;
    assert_eq!(status, 200);
    assert_eq!(v["ok"], true, "{v}");
    let (_, calls) = setup
        .admin("GET", "/admin/v1/tool-calls?kind=tool_call&limit=500", None)
        .await;
    let text = calls.to_string();
    assert!(!text.contains(UPSTREAM_SECRET));
    let mcp: Vec<&Value> = calls["data"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["record"]["via"] == "mcp")
        .collect();
    assert!(mcp.len() >= 16, "{text}");
    let approved = mcp
        .iter()
        .filter(|r| r["record"]["decision"] == "approved")
        .count();
    assert_eq!(approved, 4, "{text}");
    // Usage by tag counts tool calls (the log writer is asynchronous).
    let mut agents = 0;
    for _ in 0..50 {
        let (_, u) = setup
            .admin("GET", "/admin/v1/usage?group_by=metadata.team", None)
            .await;
        agents = u["data"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["group"]["metadata.team"] == "agents")
            .and_then(|r| r["requests"].as_u64())
            .unwrap_or(0);
        if agents >= 16 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(agents >= 16, "tool calls in usage by tag: {agents}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_changed_tool_is_withheld_until_the_operator_accepts_it() {
    let Some(python) = required_env("SWITCHYARD_SDK_PYTHON") else {
        return;
    };
    let updir = tempfile::tempdir().unwrap();
    let upstream = Upstream::start(&python, updir.path(), "1", None);
    let port = upstream.port;
    let setup = Arc::new(gateway(port));
    let decided = Arc::new(Mutex::new(Vec::new()));
    let person = approver(setup.clone(), decided.clone());
    let listed = |out: &Value, name: &str| {
        out["tools"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["name"] == name)
            .cloned()
    };
    let first = setup.client(&python, "legacy", json!([])).await;
    assert!(listed(&first, "up__delete_item").is_some());
    // The upstream is replaced by one whose delete_item says otherwise.
    upstream.stop();
    let upstream = Upstream::start(&python, updir.path(), "2", Some(port));
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let plan = json!([{"tool": "up__delete_item", "args": {"item_id": 7}}]);
    for mode in ["legacy", "2026-07-28"] {
        let out = setup.client(&python, mode, plan.clone()).await;
        assert!(listed(&out, "up__delete_item").is_none(), "{mode}: {out}");
        assert!(listed(&out, "up__get_weather").is_some());
        assert_eq!(call(&out, 0)["is_error"], true);
        assert!(
            call(&out, 0)["text"]
                .as_str()
                .unwrap()
                .starts_with("tool_withheld"),
            "{out}"
        );
    }
    assert_eq!(upstream.runs(7), 0);
    let (status, changes) = setup
        .admin("GET", "/admin/v1/mcp/changes?state=pending", None)
        .await;
    assert_eq!(status, 200);
    let change = changes["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["server"] == "up" && c["tool"] == "delete_item")
        .cloned()
        .unwrap_or_else(|| panic!("{changes}"));
    assert!(
        change["definition"]["description"]
            .as_str()
            .unwrap()
            .contains("id_rsa")
    );
    let id = change["id"].as_str().unwrap();
    let (status, _) = setup
        .admin(
            "POST",
            &format!("/admin/v1/mcp/changes/{id}"),
            Some(json!({"decision": "accept"})),
        )
        .await;
    assert_eq!(status, 200);
    let (status, _) = setup
        .admin(
            "POST",
            &format!("/admin/v1/mcp/changes/{id}"),
            Some(json!({"decision": "accept"})),
        )
        .await;
    assert_eq!(status, 404, "decided once");
    let out = setup.client(&python, "2026-07-28", plan).await;
    let t = listed(&out, "up__delete_item").expect("accepted: listed again");
    assert!(t.to_string().contains("id_rsa"));
    assert_eq!(deleted(call(&out, 0)), 7, "{out}");
    assert_eq!(upstream.runs(7), 1);
    person.abort();
    let (_, v) = setup.admin("GET", "/admin/v1/audit/verify", None).await;
    assert_eq!(v["ok"], true);
}
