//! Stored conversations under load: 50 chains of 5 turns each, all at
//! once, every turn on another provider, two keys. No turn may lose
//! history or see another chain's; no key may read the other's. Then a
//! second gateway on the same storage (nothing in its memory) continues
//! every chain from the database. On SQLite, and on Postgres.

use std::time::Duration;

use serde_json::{Value, json};

use crate::harness::*;

const MODELS: [&str; 4] = [
    "anthropic/claude-test",
    "openai/gpt-test",
    "google/gemini-test",
    "compat/local-test",
];
const CHAINS: usize = 50;
const TURNS: usize = 5;

fn marker(chain: usize, turn: usize) -> String {
    format!("chain-{chain:02}-turn-{turn}")
}

/// Every request any mock received, as text.
fn sent(gw: &Gw) -> Vec<String> {
    [
        &gw.mocks.openai,
        &gw.mocks.anthropic,
        &gw.mocks.gemini,
        &gw.mocks.compat,
    ]
    .iter()
    .flat_map(|m| m.requests())
    .map(|r| String::from_utf8_lossy(&r.body).into_owned())
    .collect()
}

/// A turn with `key`: its status and body.
async fn post_turn(
    gw: &Gw,
    key: &str,
    model: &str,
    text: &str,
    previous: Option<&str>,
) -> (u16, Value) {
    let mut body = json!({"model": model, "input": text});
    if let Some(p) = previous {
        body["previous_response_id"] = json!(p);
    }
    let (s, _, v) = gw
        .post_with(
            "/v1/responses",
            &body,
            &[("authorization", &format!("Bearer {key}"))],
        )
        .await;
    (s, v)
}

async fn turn(gw: &Gw, key: &str, model: &str, text: &str, previous: Option<&str>) -> Value {
    let (s, v) = post_turn(gw, key, model, text, previous).await;
    assert_eq!(s, 200, "{text}: {v}");
    v
}

/// One more turn after `previous`, on OpenAI: its status and body.
async fn continue_chain(gw: &Gw, key: &str, previous: &str) -> (u16, Value) {
    post_turn(gw, key, "openai/gpt-test", "and then?", Some(previous)).await
}

/// Deletes stored response `id` with `key`: the status.
async fn delete(gw: &Gw, key: &str, id: &str) -> u16 {
    let r = gw
        .http
        .delete(gw.url(&format!("/v1/responses/{id}")))
        .bearer_auth(key)
        .send()
        .await
        .unwrap();
    r.status().as_u16()
}

/// Checks that the upstream request for each turn held exactly its chain's
/// earlier turns.
fn check_history(requests: &[String], chain: usize, upto: usize) {
    let own = marker(chain, upto);
    // Turn `upto`'s request: it holds its marker, and no later turn's.
    let mut found = requests
        .iter()
        .filter(|r| r.contains(&own) && !r.contains(&marker(chain, upto + 1)));
    let req = found
        .next()
        .unwrap_or_else(|| panic!("no upstream request for {own}"));
    assert!(found.next().is_none(), "{own}: sent twice");
    for t in 0..=upto {
        assert!(
            req.contains(&marker(chain, t)),
            "{own}: turn {t} missing from {req}"
        );
    }
    for other in 0..CHAINS {
        if other != chain {
            assert!(
                !req.contains(&format!("chain-{other:02}-")),
                "{own}: chain {other} leaked into it"
            );
        }
    }
}

async fn run(storage: &str, dir: tempfile::TempDir, dir2: tempfile::TempDir) {
    let extra = "[auth]\nrequire_keys = true\n";
    let gw = Gw::start_on(start_mocks().await, "", extra, storage, dir).await;
    let keys = [
        gw.create_key(json!({"name": "a"})).await.1,
        gw.create_key(json!({"name": "b"})).await.1,
    ];
    let chains = (0..CHAINS).map(|c| {
        let gw = &gw;
        let key = keys[c % 2].clone();
        async move {
            let mut ids: Vec<String> = Vec::new();
            for t in 0..TURNS {
                let model = MODELS[(c + t) % MODELS.len()];
                let v = turn(
                    gw,
                    &key,
                    model,
                    &marker(c, t),
                    ids.last().map(String::as_str),
                )
                .await;
                ids.push(v["id"].as_str().unwrap().to_owned());
            }
            ids
        }
    });
    let all: Vec<Vec<String>> = futures_util::future::join_all(chains).await;
    let last: Vec<String> = all.iter().map(|ids| ids[TURNS - 1].clone()).collect();
    let requests = sent(&gw);
    assert_eq!(requests.len(), CHAINS * TURNS);
    for c in 0..CHAINS {
        for t in 0..TURNS {
            check_history(&requests, c, t);
        }
    }
    // Each key reads its own chains and nothing of the other's.
    for (c, id) in last.iter().enumerate() {
        let r = gw
            .http
            .get(gw.url(&format!("/v1/responses/{id}")))
            .bearer_auth(&keys[(c + 1) % 2])
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 404, "chain {c} read by the other key");
    }
    // Once the writer has them all, a gateway with nothing in memory
    // continues every chain from storage.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let r = gw
            .http
            .get(gw.url(&format!("/v1/responses/{}", last[CHAINS - 1])))
            .bearer_auth(&keys[(CHAINS - 1) % 2])
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        if stored_count(storage).await >= CHAINS * TURNS {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the writer did not store every response"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let second = Gw::start_on(start_mocks().await, "", extra, storage, dir2).await;
    let more = last.iter().enumerate().map(|(c, id)| {
        let second = &second;
        let key = keys[c % 2].clone();
        async move {
            turn(
                second,
                &key,
                MODELS[c % MODELS.len()],
                &marker(c, TURNS),
                Some(id),
            )
            .await
        }
    });
    futures_util::future::join_all(more).await;
    let requests = sent(&second);
    for c in 0..CHAINS {
        check_history(&requests, c, TURNS);
    }
    // Read from the database, a chain still belongs to its key.
    let (s, e) = continue_chain(&second, &keys[1], &last[0]).await;
    assert_eq!(s, 404, "chain 0 continued by the other key: {e}");
    // A turn deleted here, not yet by the writer: the chain read from the
    // database stops at its tombstone.
    assert_eq!(delete(&second, &keys[0], &all[2][1]).await, 200);
    let (s, e) = continue_chain(&second, &keys[0], &last[2]).await;
    assert_eq!(s, 404, "chain 2 went on past its deleted turn 1: {e}");
    // A turn deleted by the other gateway, gone from the database: the
    // chain breaks there.
    assert_eq!(delete(&gw, &keys[0], &all[4][2]).await, 200);
    // The second gateway never held it: it answers from the database.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let r = second
            .http
            .get(second.url(&format!("/v1/responses/{}", all[4][2])))
            .bearer_auth(&keys[0])
            .send()
            .await
            .unwrap();
        if r.status() == 404 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the deletion was not written"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (s, e) = continue_chain(&second, &keys[0], &last[4]).await;
    assert_eq!(s, 404, "chain 4 went on past a turn no longer stored: {e}");
    assert_eq!(e["error"]["code"], "previous_response_not_found", "{e}");
    // Other chains read from the database still go on.
    let (s, e) = continue_chain(&second, &keys[0], &last[6]).await;
    assert_eq!(s, 200, "{e}");
    println!(
        "stored chains on {}: {CHAINS} chains × {TURNS} turns at once across 4 providers and 2 keys, then one more turn each on a second gateway: no history lost, none leaked",
        storage.split(':').next().unwrap()
    );
    second.shutdown().await;
    gw.shutdown().await;
}

/// Rows in `responses`.
async fn stored_count(storage: &str) -> usize {
    let q = "SELECT COUNT(*) FROM responses";
    let n: i64 = if storage.starts_with("sqlite") {
        let pool = sqlx::SqlitePool::connect(storage).await.unwrap();
        let n = sqlx::query_scalar(q).fetch_one(&pool).await.unwrap();
        pool.close().await;
        n
    } else {
        let pool = sqlx::PgPool::connect(storage).await.unwrap();
        let n = sqlx::query_scalar(q).fetch_one(&pool).await.unwrap();
        pool.close().await;
        n
    };
    n as usize
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_concurrent_chains_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/switchyard.db", dir.path().display());
    run(&url, dir, tempfile::tempdir().unwrap()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_concurrent_chains_on_postgres() {
    let Some(pg) = postgres_url().await else {
        return;
    };
    run(
        &pg,
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
    )
    .await;
}

/// While the writer cannot commit (another connection holds SQLite's write
/// lock) more is stored than memory keeps for it: the oldest response is
/// let go, and a turn that continues it waits for the writer instead of
/// missing it, then goes on with its whole history.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_response_let_go_before_the_writer_had_it_is_waited_for() {
    let gw = Gw::start("").await;
    let url = format!("sqlite://{}/switchyard.db", gw.dir.path().display());
    let pool = sqlx::SqlitePool::connect(&url).await.unwrap();
    let lock = pool.begin_with("BEGIN IMMEDIATE").await.unwrap();
    let store = |input: String| {
        let gw = &gw;
        async move {
            let (s, _, v) = gw
                .post_with(
                    "/v1/responses",
                    &json!({"model": "openai/gpt-test", "input": input}),
                    &[],
                )
                .await;
            assert_eq!(s, 200, "{v}");
            v["id"].as_str().unwrap().to_owned()
        }
    };
    let first = store("the-first-turn".into()).await;
    // 26 MiB of inputs: past what memory holds of uncommitted responses.
    let big = "x".repeat(1 << 20);
    for n in 0..26 {
        store(format!("{n} {big}")).await;
    }
    let next = {
        let (base, http) = (gw.base.clone(), gw.http.clone());
        let first = first.clone();
        tokio::spawn(async move {
            let body = json!({"model": "openai/gpt-test", "input": "and then?", "previous_response_id": first});
            let r = http
                .post(format!("{base}/v1/responses"))
                .json(&body)
                .send()
                .await
                .unwrap();
            (r.status().as_u16(), r.text().await.unwrap())
        })
    };
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(!next.is_finished(), "the first turn was still in memory");
    lock.rollback().await.unwrap();
    pool.close().await;
    let (s, body) = tokio::time::timeout(Duration::from_secs(30), next)
        .await
        .expect("the continuation never came back")
        .unwrap();
    assert_eq!(s, 200, "{body}");
    let sent = gw.mocks.openai.last().json();
    assert!(
        sent.to_string().contains("the-first-turn"),
        "history lost: {sent}"
    );
    gw.shutdown().await;
}

/// 123 stored responses with 0 to 3 items each, written twice (a spool
/// replayed) and then with some deleted, leave each response and item
/// once, in order, and the deleted ones none.
#[tokio::test]
async fn stored_responses_survive_a_replay_and_deletions() {
    use switchyard::conversations::store::{ItemRow, Row};
    use switchyard::log_store::{Entry, writer};
    let gw = Gw::start("").await;
    let s = &gw.running.gateway;
    let rows: Vec<Entry> = (0..123)
        .map(|n| {
            Entry::Response(Box::new(Row {
                id: format!("resp_run_{n:03}"),
                owner: "anonymous".into(),
                created_ms: 1,
                expires_ms: i64::MAX,
                previous_id: (n > 0).then(|| format!("resp_run_{:03}", n - 1)),
                requested_model: "openai/gpt-test".into(),
                provider: Some("openai".into()),
                model: None,
                request_id: format!("req_{n}"),
                response: format!(r#"{{"id":"resp_run_{n:03}"}}"#),
                items: (0..n % 4)
                    .map(|i| ItemRow {
                        item_id: format!("item_{n}_{i}"),
                        is_output: i % 2 == 1,
                        item: format!(r#"{{"id":"item_{n}_{i}"}}"#),
                    })
                    .collect(),
            }))
        })
        .collect();
    writer::write_batch(s, &rows).await.unwrap();
    writer::write_batch(s, &rows[40..]).await.unwrap();
    let deleted: Vec<Entry> = (0..123)
        .step_by(10)
        .map(|n| Entry::ResponseDeleted {
            id: format!("resp_run_{n:03}"),
        })
        .collect();
    writer::write_batch(s, &deleted).await.unwrap();
    let url = format!("sqlite://{}/switchyard.db", gw.dir.path().display());
    let pool = sqlx::SqlitePool::connect(&url).await.unwrap();
    let responses: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM responses")
        .fetch_one(&pool)
        .await
        .unwrap();
    let items: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM response_items")
        .fetch_one(&pool)
        .await
        .unwrap();
    let kept = (0..123).filter(|n| n % 10 != 0);
    assert_eq!(responses, kept.clone().count() as i64);
    assert_eq!(items, kept.map(|n| (n % 4) as i64).sum::<i64>());
    // Each item where it belongs, in order.
    let seq: Vec<(i64, String)> = sqlx::query_as(
        "SELECT seq, item FROM response_items WHERE response_id = 'resp_run_007' ORDER BY seq",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(
        seq,
        (0..3)
            .map(|i| (i, format!(r#"{{"id":"item_7_{i}"}}"#)))
            .collect::<Vec<_>>()
    );
    pool.close().await;
    gw.shutdown().await;
}
