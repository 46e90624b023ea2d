//! Zero-downtime restarts through the real binary: each new process started
//! with the same `--handover` path takes the listening sockets over, the
//! old one drains and exits, and the calls of a steady load (keep-alive
//! connections, streams, one slow stream in flight) all succeed.

use std::time::{Duration, Instant};

use serde_json::json;

use crate::binary::{Binary, config_file, env_with};
use crate::harness::{assert_no_canary, redis_url, start_mocks};
use crate::mock::Reply;

/// Waits for `bin` to exit by itself; its exit status and log.
fn exits(mut bin: Binary) -> (bool, String) {
    let started = Instant::now();
    loop {
        if let Ok(Some(status)) = bin.child.try_wait() {
            std::thread::sleep(Duration::from_millis(50));
            return (status.success(), bin.stderr());
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "the old process did not exit:\n{}",
            bin.stderr()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

async fn chat(http: &reqwest::Client, base: &str, stream: bool) -> Result<(), String> {
    let body = json!({"model": "openai/gpt-test", "stream": stream,
        "messages": [{"role": "user", "content": "hello"}]});
    let r = http
        .post(format!("{base}/v1/chat/completions"))
        .json(&body)
        .send()
        .await
        .map_err(|e| format!("send: {e:?}"))?;
    let status = r.status().as_u16();
    let text = r.text().await.map_err(|e| format!("read: {e:?}"))?;
    let complete = if stream {
        text.contains("data: [DONE]")
    } else {
        text.contains("\"choices\"")
    };
    if status == 200 && complete {
        Ok(())
    } else {
        Err(format!("{status}: {text}"))
    }
}

#[tokio::test]
async fn three_restarts_by_socket_handover_fail_no_call() {
    let mocks = start_mocks().await;
    let dir = tempfile::tempdir().unwrap();
    let file = config_file(dir.path(), &mocks, "[auth]\nrequire_keys = false\n");
    let path = dir.path().join("handover.sock");
    let path_s = path.display().to_string();
    let env = env_with(&[("SWITCHYARD_HANDOVER", path_s.as_str())]);
    let owned: Vec<(String, String)> = env
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let mut current = Binary::start(&file, &env);
    let base = current.base.clone();

    let t0 = Instant::now();
    let stop = tokio_util::sync::CancellationToken::new();
    let mut workers = Vec::new();
    for w in 0..6u32 {
        let (base, stop) = (base.clone(), stop.clone());
        workers.push(tokio::spawn(async move {
            // One client each: its pooled keep-alive connections meet every
            // process change.
            let http = reqwest::Client::builder().no_proxy().build().unwrap();
            let (mut sent, mut failed) = (0u32, Vec::new());
            while !stop.is_cancelled() {
                let stream = (sent + w).is_multiple_of(2);
                if let Err(e) = chat(&http, &base, stream).await {
                    failed.push(format!("{:?}: {e}", t0.elapsed()));
                }
                sent += 1;
            }
            (sent, failed)
        }));
    }

    for round in 1..=3 {
        tokio::time::sleep(Duration::from_millis(300)).await;
        // A slow stream in flight on the old process when it hands over.
        mocks.openai.script([Reply::Delay(
            Duration::from_millis(800),
            Box::new(Reply::Default),
        )]);
        let slow = {
            let base = base.clone();
            tokio::spawn(async move {
                let http = reqwest::Client::builder().no_proxy().build().unwrap();
                chat(&http, &base, true).await
            })
        };
        tokio::time::sleep(Duration::from_millis(100)).await;
        let next = tokio::task::spawn_blocking({
            let (file, owned) = (file.clone(), owned.clone());
            move || {
                let env: Vec<(&str, &str)> = owned
                    .iter()
                    .map(|(k, v)| (k.as_str(), v.as_str()))
                    .collect();
                Binary::start(&file, &env)
            }
        })
        .await
        .unwrap();
        assert_eq!(next.base, base, "round {round}: the same address");
        let old = std::mem::replace(&mut current, next);
        let (ok, log) = tokio::task::spawn_blocking(move || exits(old))
            .await
            .unwrap();
        assert!(ok, "round {round}: the old process failed:\n{log}");
        assert!(log.contains("draining"), "{log}");
        assert_no_canary(&log);
        slow.await
            .unwrap()
            .unwrap_or_else(|e| panic!("round {round}: the stream in flight failed: {e}"));
        assert!(
            current.stderr().contains("Took the listening sockets over"),
            "{}",
            current.stderr()
        );
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.cancel();
    let (mut sent, mut failed) = (0, Vec::new());
    for w in workers {
        let (s, f) = w.await.unwrap();
        sent += s;
        failed.extend(f);
    }
    assert!(
        failed.is_empty(),
        "{} of {sent} calls failed: {failed:?}",
        failed.len()
    );
    assert!(sent > 100, "only {sent} calls");
    eprintln!(
        "handover: 3 restarts under load, {sent} calls sent, 0 failed, 3 streams in flight completed"
    );
    let log = current.stop();
    assert_no_canary(&log);
}

/// With Redis, a stream its caller left on the old process is read to its
/// end through the new one, while the old one finishes generating it.
#[tokio::test]
async fn a_stream_left_on_the_old_process_resumes_on_the_new_one() {
    use crate::streams::{read_all, read_some, slow_stream, text_of};
    let Some(redis) = redis_url().map(|u| format!("{u}/6")) else {
        return;
    };
    let mocks = start_mocks().await;
    let dir = tempfile::tempdir().unwrap();
    let extra = format!("[auth]\nrequire_keys = false\n[redis]\nurl = \"{redis}\"\n");
    let file = config_file(dir.path(), &mocks, &extra);
    let path = dir.path().join("handover.sock").display().to_string();
    let env = env_with(&[("SWITCHYARD_HANDOVER", path.as_str())]);
    let old = Binary::start(&file, &env);
    mocks
        .openai
        .script([slow_stream(30, Duration::from_millis(20))]);
    let http = reqwest::Client::builder().no_proxy().build().unwrap();
    let body = json!({"model": "openai/gpt-test", "stream": true,
        "messages": [{"role": "user", "content": "hello"}]});
    let resp = http
        .post(format!("{}/v1/chat/completions", old.base))
        .json(&body)
        .send()
        .await
        .unwrap();
    let (id, first) = read_some(resp, 4).await;
    let last = first.last().unwrap().0;
    // The caller leaves; a new process takes over; the old one drains.
    let new = Binary::start(&file, &env);
    let (ok, log) = tokio::task::spawn_blocking(move || exits(old))
        .await
        .unwrap();
    assert!(ok, "{log}");
    // A fresh connection reaches the new process only.
    let http = reqwest::Client::builder().no_proxy().build().unwrap();
    let rest = http
        .get(format!("{}/v1/streams/{id}", new.base))
        .header("last-event-id", last.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(rest.status(), 200);
    let rest = read_all(rest).await;
    let joined: Vec<(u64, String)> = first.into_iter().chain(rest).collect();
    let ids: Vec<u64> = joined.iter().map(|(i, _)| *i).collect();
    assert_eq!(ids, (0..ids.len() as u64).collect::<Vec<_>>(), "{joined:?}");
    assert_eq!(joined.last().unwrap().1, "[DONE]");
    assert_eq!(
        text_of(&joined),
        (0..30).map(|i| format!("w{i} ")).collect::<String>()
    );
    assert_eq!(mocks.openai.count(), 1, "generated once");
    let log = new.stop();
    assert_no_canary(&log);
}
