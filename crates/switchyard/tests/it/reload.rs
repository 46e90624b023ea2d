//! Hot reload, through the real binary: `POST /admin/v1/config/reload` and
//! `SIGHUP` swap the configuration for new calls, leave calls in flight on
//! the one they started with, change nothing for a bad file, and keep what
//! only a restart can change.

use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::binary::{Binary, env_with};
use crate::harness::{Mocks, assert_no_canary, providers_toml, start_mocks};
use crate::mock::Reply;

const TOKEN: &str = "test-admin-token-0123456789abcdef";

/// A config whose route `smart` goes to `target`; without the `openai`
/// provider when `drop_openai`.
fn config(dir: &std::path::Path, mocks: &Mocks, target: &str, drop_openai: bool) -> String {
    let providers: String = providers_toml(mocks)
        .split("[[providers]]")
        .filter(|block| !block.trim().is_empty())
        .filter(|block| !(drop_openai && block.contains("name = \"openai\"")))
        .map(|block| format!("[[providers]]{block}"))
        .collect();
    format!(
        "[server]\nlisten = \"127.0.0.1:0\"\nadmin_listen = \"127.0.0.1:0\"\n\
         [storage]\nurl = \"sqlite://{}/sy.db\"\n[auth]\nrequire_keys = false\n\
         {providers}\n[[routes]]\nname = \"smart\"\nstrategy = \"fallback\"\ntargets = [\"{target}\"]\n",
        dir.display()
    )
}

struct Client {
    http: reqwest::Client,
    base: String,
    admin: String,
}

/// What one call got: status, the provider that served it, whether a
/// stream ended with `[DONE]`.
struct Got {
    status: u16,
    provider: String,
    complete: bool,
}

impl Client {
    fn new(bin: &Binary) -> Client {
        Client {
            http: reqwest::Client::builder().no_proxy().build().unwrap(),
            base: bin.base.clone(),
            admin: bin.admin.clone(),
        }
    }

    async fn chat(&self, stream: bool) -> Got {
        let body = json!({"model": "smart", "stream": stream,
            "messages": [{"role": "user", "content": "hello"}]});
        let r = match self
            .http
            .post(format!("{}/v1/chat/completions", self.base))
            .json(&body)
            .send()
            .await
        {
            Ok(r) => r,
            Err(_) => {
                return Got {
                    status: 0,
                    provider: String::new(),
                    complete: false,
                };
            }
        };
        let status = r.status().as_u16();
        let provider = r
            .headers()
            .get("x-switchyard-provider")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned();
        let text = r.text().await.unwrap_or_default();
        let complete = if stream {
            text.contains("data: [DONE]")
        } else {
            serde_json::from_str::<Value>(&text).is_ok_and(|v| v["choices"][0].is_object())
        };
        Got {
            status,
            provider,
            complete,
        }
    }

    async fn reload(&self) -> (u16, Value) {
        let r = self
            .http
            .post(format!("{}/admin/v1/config/reload", self.admin))
            .bearer_auth(TOKEN)
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        let v: Value = r.json().await.unwrap();
        crate::openapi::check("POST", "/admin/v1/config/reload", status, &v);
        (status, v)
    }

    async fn running_config(&self) -> Value {
        let r = self
            .http
            .get(format!("{}/admin/v1/config", self.admin))
            .bearer_auth(TOKEN)
            .send()
            .await
            .unwrap();
        r.json().await.unwrap()
    }

    /// Calls until one is served by `provider` (a SIGHUP is applied a
    /// moment after it is sent).
    async fn until_served_by(&self, provider: &str) {
        let started = Instant::now();
        loop {
            let got = self.chat(false).await;
            assert_eq!(got.status, 200);
            if got.provider == provider {
                return;
            }
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "never served by {provider}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

fn hup(bin: &Binary) {
    let pid = bin.child.id().to_string();
    let ok = Command::new("kill").args(["-HUP", &pid]).status().unwrap();
    assert!(ok.success());
}

async fn wait_for_log(bin: &Binary, needle: &str) {
    let started = Instant::now();
    while !bin.stderr().contains(needle) {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "the log never said {needle:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn a_reload_swaps_the_configuration_for_new_calls_only() {
    let mocks = start_mocks().await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("switchyard.toml");
    std::fs::write(&file, config(dir.path(), &mocks, "openai/gpt-test", false)).unwrap();
    let bin = Binary::start(&file, &env_with(&[("SWITCHYARD_ADMIN_TOKEN", TOKEN)]));
    let c = Client::new(&bin);
    assert_eq!(c.chat(false).await.provider, "openai");

    // A slow stream starts on the first configuration...
    mocks.openai.script([Reply::Delay(
        Duration::from_millis(1500),
        Box::new(Reply::Default),
    )]);
    let before = mocks.openai.count();
    let slow = {
        let c = Client::new(&bin);
        tokio::spawn(async move { c.chat(true).await })
    };
    while mocks.openai.count() == before {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // ...the next one drops its provider altogether...
    std::fs::write(
        &file,
        config(dir.path(), &mocks, "anthropic/claude-test", true),
    )
    .unwrap();
    let (s, v) = c.reload().await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["generation"], 2);
    assert_eq!(v["restart_required"], json!([]));
    assert_eq!(v["providers"], 3);
    // ...new calls take the new route at once...
    let got = c.chat(false).await;
    assert_eq!((got.status, got.provider.as_str()), (200, "anthropic"));
    // ...and the stream in flight ends whole on the provider it began with.
    let got = slow.await.unwrap();
    assert_eq!((got.status, got.provider.as_str()), (200, "openai"));
    assert!(got.complete, "the stream in flight was cut");
    let running = c.running_config().await;
    assert!(
        !running["providers"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["name"] == "openai"),
        "{running}"
    );

    // A bad file changes nothing, and the answer names the key at fault.
    let good = std::fs::read_to_string(&file).unwrap();
    std::fs::write(
        &file,
        good.replace("strategy = \"fallback\"", "strategy = \"sideways\""),
    )
    .unwrap();
    let (s, v) = c.reload().await;
    assert_eq!(s, 400, "{v}");
    assert_eq!(v["error"]["param"], "routes[0].strategy", "{v}");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("nothing changed: "),
        "{v}"
    );
    assert_eq!(c.chat(false).await.provider, "anthropic");
    // The same by SIGHUP: refused in the log, nothing changed.
    hup(&bin);
    wait_for_log(&bin, "Configuration reload (SIGHUP) refused").await;
    assert_eq!(c.chat(false).await.provider, "anthropic");

    // SIGHUP with a good file; a changed listen address is named, not taken.
    let listen = running["server"]["listen"].clone();
    std::fs::write(
        &file,
        config(dir.path(), &mocks, "google/gemini-test", false).replace(
            "listen = \"127.0.0.1:0\"\nadmin",
            "listen = \"127.0.0.1:1\"\nadmin",
        ),
    )
    .unwrap();
    hup(&bin);
    c.until_served_by("google").await;
    wait_for_log(&bin, "apply only after a restart").await;
    let running = c.running_config().await;
    assert_eq!(running["server"]["listen"], listen);
    let (s, v) = c.reload().await;
    assert_eq!((s, &v["generation"]), (200, &json!(4)), "{v}");
    assert_eq!(v["restart_required"], json!(["server.listen"]));

    let log = bin.stop();
    assert_no_canary(&log);
}

/// Reloads during steady traffic: every call answered, each by the
/// configuration in force when it started.
#[tokio::test]
async fn twenty_reloads_under_steady_traffic_fail_no_call() {
    let mocks = start_mocks().await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("switchyard.toml");
    let configs = [
        (
            config(dir.path(), &mocks, "openai/gpt-test", false),
            "openai",
        ),
        (
            config(dir.path(), &mocks, "anthropic/claude-test", false),
            "anthropic",
        ),
    ];
    std::fs::write(&file, &configs[0].0).unwrap();
    let bin = Binary::start(&file, &env_with(&[("SWITCHYARD_ADMIN_TOKEN", TOKEN)]));
    let c = Client::new(&bin);
    let t0 = Instant::now();
    let stop = tokio_util::sync::CancellationToken::new();
    let mut workers = Vec::new();
    for w in 0..6 {
        let (c, stop) = (Client::new(&bin), stop.clone());
        workers.push(tokio::spawn(async move {
            let mut calls = Vec::new();
            let mut n = 0u32;
            while !stop.is_cancelled() {
                let start = t0.elapsed();
                let stream = (n + w).is_multiple_of(2);
                let got = c.chat(stream).await;
                calls.push((start, t0.elapsed(), stream, got));
                n += 1;
            }
            calls
        }));
    }
    // Each reload: when it was asked for, when it was surely in force, and
    // the provider its configuration routes to.
    let mut windows = Vec::new();
    for i in 1..=20 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let (text, provider) = &configs[i % 2];
        std::fs::write(&file, text).unwrap();
        let asked = t0.elapsed();
        if i % 4 == 0 {
            hup(&bin);
            c.until_served_by(provider).await;
        } else {
            let (s, v) = c.reload().await;
            assert_eq!(s, 200, "{v}");
        }
        windows.push((asked, t0.elapsed(), *provider));
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    stop.cancel();
    let mut calls = Vec::new();
    for w in workers {
        calls.extend(w.await.unwrap());
    }
    let failed: Vec<_> = calls
        .iter()
        .filter(|(_, _, _, g)| g.status != 200 || !g.complete)
        .map(|(s, _, stream, g)| (s, stream, g.status, g.provider.clone()))
        .collect();
    assert!(failed.is_empty(), "failed calls: {failed:?}");
    // A call that started after a reload was in force and was answered
    // before the next was asked for was served by that reload's
    // configuration. (Its answer, not its start, bounds it: the client
    // takes its start time a moment before the request leaves, and the
    // next reload may overtake it in that moment.)
    let mut checked = 0;
    for (k, (_, in_force, provider)) in windows.iter().enumerate() {
        let next = windows.get(k + 1).map_or(Duration::MAX, |w| w.0);
        for (start, end, _, got) in &calls {
            if *start > *in_force && *end < next {
                assert_eq!(
                    got.provider,
                    *provider,
                    "a call started under reload {} was served by another configuration",
                    k + 1
                );
                checked += 1;
            }
        }
    }
    assert!(checked > 100, "only {checked} calls fell inside a window");
    eprintln!(
        "reload under load: {} calls ({} streams), 0 failed, 20 reloads (15 by the admin API, 5 by SIGHUP), {checked} checked against the configuration in force",
        calls.len(),
        calls.iter().filter(|(_, _, stream, _)| *stream).count()
    );
    let log = bin.stop();
    assert_no_canary(&log);
}

/// One `response.create` on an open Responses socket, read to its terminal
/// event: that event's type and the provider whose mock saw the call.
async fn create_on<S>(ws: &mut S, mocks: &Mocks) -> (String, &'static str)
where
    S: futures_util::Sink<tokio_tungstenite::tungstenite::Message>
        + futures_util::Stream<
            Item = Result<
                tokio_tungstenite::tungstenite::Message,
                tokio_tungstenite::tungstenite::Error,
            >,
        > + Unpin,
    S::Error: std::fmt::Debug,
{
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;
    let before = (mocks.openai.count(), mocks.anthropic.count());
    let create =
        json!({"type": "response.create", "model": "smart", "input": "hello", "store": false});
    ws.send(Message::Text(create.to_string().into()))
        .await
        .unwrap();
    loop {
        let msg = tokio::time::timeout(Duration::from_secs(10), ws.next())
            .await
            .expect("a terminal event within 10 s")
            .expect("the socket stays open")
            .unwrap();
        let Message::Text(text) = msg else { continue };
        let v: Value = serde_json::from_str(&text).unwrap();
        let kind = v["type"].as_str().unwrap_or_default().to_owned();
        if matches!(
            kind.as_str(),
            "response.completed" | "response.failed" | "response.incomplete" | "error"
        ) {
            let by = match (
                mocks.openai.count() - before.0,
                mocks.anthropic.count() - before.1,
            ) {
                (1, 0) => "openai",
                (0, 1) => "anthropic",
                (0, 0) => "none",
                _ => "both",
            };
            return (kind, by);
        }
    }
}

/// A Responses WebSocket opened before a reload: its next create runs on
/// the new configuration, and under its key as the key is now (a bound on
/// calls in flight set later holds; revoked, the create is refused on the
/// open socket).
#[tokio::test]
async fn an_open_responses_socket_takes_a_reload_and_a_revocation() {
    let mocks = start_mocks().await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("switchyard.toml");
    let keyed = |target: &str| {
        config(dir.path(), &mocks, target, false)
            .replace("require_keys = false", "require_keys = true")
    };
    std::fs::write(&file, keyed("openai/gpt-test")).unwrap();
    let bin = Binary::start(&file, &env_with(&[("SWITCHYARD_ADMIN_TOKEN", TOKEN)]));
    let c = Client::new(&bin);
    let r = c
        .http
        .post(format!("{}/admin/v1/keys", c.admin))
        .bearer_auth(TOKEN)
        .json(&json!({"name": "socket"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let key: Value = r.json().await.unwrap();
    let secret = key["key"].as_str().unwrap();

    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let mut req = format!("{}/v1/responses", bin.base.replacen("http", "ws", 1))
        .into_client_request()
        .unwrap();
    req.headers_mut()
        .insert("authorization", format!("Bearer {secret}").parse().unwrap());
    let (mut ws, _) = tokio_tungstenite::connect_async(req).await.unwrap();
    assert_eq!(
        create_on(&mut ws, &mocks).await,
        ("response.completed".to_owned(), "openai")
    );

    std::fs::write(&file, keyed("anthropic/claude-test")).unwrap();
    let (s, v) = c.reload().await;
    assert_eq!((s, &v["generation"]), (200, &json!(2)), "{v}");
    assert_eq!(
        create_on(&mut ws, &mocks).await,
        ("response.completed".to_owned(), "anthropic"),
        "the socket's next create takes the new route"
    );

    // A bound set on the key now holds for the open socket: with one call
    // in flight allowed, of two creates at once one runs and one gets 503.
    let key_url = format!("{}/admin/v1/keys/{}", c.admin, key["id"].as_str().unwrap());
    let r = c
        .http
        .patch(&key_url)
        .bearer_auth(TOKEN)
        .json(&json!({"max_concurrent": 1}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    mocks.anthropic.script([Reply::Delay(
        Duration::from_millis(1500),
        Box::new(Reply::Default),
    )]);
    {
        use futures_util::{SinkExt, StreamExt};
        use tokio_tungstenite::tungstenite::Message;
        for lane in ["a", "b"] {
            let create = json!({"type": "response.create", "model": "smart", "input": "hello",
                "store": false, "stream_id": lane});
            ws.send(Message::Text(create.to_string().into()))
                .await
                .unwrap();
        }
        let mut ends = Vec::new();
        while ends.len() < 2 {
            let msg = tokio::time::timeout(Duration::from_secs(10), ws.next())
                .await
                .expect("both lanes end within 10 s")
                .unwrap()
                .unwrap();
            let Message::Text(text) = msg else { continue };
            let v: Value = serde_json::from_str(&text).unwrap();
            match v["type"].as_str() {
                Some("response.completed") => ends.push(200),
                Some("error") => ends.push(v["status"].as_u64().unwrap()),
                _ => {}
            }
        }
        ends.sort_unstable();
        assert_eq!(ends, [200, 503], "one create in flight at a time");
    }

    let r = c
        .http
        .delete(&key_url)
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(
        create_on(&mut ws, &mocks).await,
        ("error".to_owned(), "none"),
        "a revoked key's socket makes no more calls"
    );
    drop(ws);
    assert_no_canary(&bin.stop());
}
