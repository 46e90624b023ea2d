use super::*;
use crate::storage::Storage;

fn call(id: &str) -> [Entry; 2] {
    let begin = Begin {
        id: id.into(),
        time_ms: 1_796_637_600_000,
        instance: "i".into(),
        key_id: Some("key_1".into()),
        route: None,
        requested_model: "p/m".into(),
        dialect: "openai".into(),
        stream: false,
        log_mode: crate::config::LogMode::Metadata,
        est_input_tokens: 3,
        metadata: [("team".to_string(), serde_json::json!("a"))]
            .into_iter()
            .collect(),
        request_body: None,
        hold_usd: None,
        trace_id: None,
    };
    let end = End {
        id: id.into(),
        status: 200,
        provider: Some("p".into()),
        input_tokens: Some(5),
        cost_usd: Some(0.5),
        cache: "MISS".into(),
        ..End::default()
    };
    [Entry::Begin(begin), Entry::End(end)]
}

/// `sqlite::memory:`, migrated, and its pool (the storage keeps the
/// database alive).
async fn in_memory() -> (Storage, SqlitePool) {
    let s = Storage::connect("sqlite::memory:").await.unwrap();
    s.migrate().await.unwrap();
    let Storage::Sqlite(p) = &s else {
        unreachable!("a sqlite: URL opens SQLite")
    };
    let p = p.clone();
    (s, p)
}

async fn count(p: &SqlitePool, sql: &str) -> i64 {
    sqlx::query_scalar(sql).fetch_one(p).await.unwrap()
}

/// `sqlite::memory:` is one database for the pool and the writer; a
/// replayed transaction adds nothing twice.
#[tokio::test]
async fn writes_what_the_pool_reads_even_in_memory_and_once() {
    let (_s, p) = in_memory().await;
    let p = &p;
    let lite = Lite::open(p, "sqlite::memory:").unwrap();
    let entries = Arc::new([call("r1"), call("r2")].concat());
    lite.write(Arc::clone(&entries), 0..3).await.unwrap();
    lite.write(Arc::clone(&entries), 0..4).await.unwrap();
    lite.write(entries, 0..4).await.unwrap();
    assert_eq!(
        count(p, "SELECT count(*) FROM requests WHERE state = 'complete'").await,
        2
    );
    assert_eq!(
        count(p, "SELECT count(*) FROM request_tags WHERE tag = 'team'").await,
        2
    );
    let hour = "SELECT sum(requests) FROM usage_sums WHERE span_ms = 3600000";
    assert_eq!(count(p, hour).await, 2);
    let tagged =
        "SELECT sum(requests) FROM usage_sums_tags WHERE span_ms = 3600000 AND value = 'a'";
    assert_eq!(count(p, tagged).await, 2);
}

/// On a shared-cache (in-memory) database a reader's table lock makes
/// the writer wait, as sqlx's connections do, not fail; closed, the
/// writer ends and says so.
#[tokio::test]
async fn waits_for_a_shared_cache_reader_and_closes() {
    let (_s, p) = in_memory().await;
    let p = &p;
    let lite = Arc::new(Lite::open(p, "sqlite::memory:").unwrap());
    let mut reader = p.acquire().await.unwrap();
    sqlx::query("BEGIN").execute(&mut *reader).await.unwrap();
    let _: i64 = sqlx::query_scalar("SELECT count(*) FROM requests")
        .fetch_one(&mut *reader)
        .await
        .unwrap();
    let writing = tokio::spawn({
        let lite = Arc::clone(&lite);
        async move { lite.write(Arc::new(call("r1").to_vec()), 0..2).await }
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(!writing.is_finished(), "the writer waits for the reader");
    sqlx::query("COMMIT").execute(&mut *reader).await.unwrap();
    writing.await.unwrap().unwrap();
    drop(reader);
    assert_eq!(count(p, "SELECT count(*) FROM requests").await, 1);
    lite.close().await;
    let e = lite
        .write(Arc::new(call("r2").to_vec()), 0..2)
        .await
        .unwrap_err();
    assert!(e.to_string().contains("stopped"), "{e}");
}

#[test]
fn reads_how_a_url_shares_its_database_as_sqlx_does() {
    let memory = |shared| Sharing {
        memory: true,
        shared,
        vfs: None,
    };
    assert_eq!(Sharing::of("sqlite::memory:"), memory(true));
    assert_eq!(Sharing::of("sqlite://:memory:"), memory(true));
    assert_eq!(Sharing::of("sqlite://x.db?mode=memory"), memory(true));
    assert_eq!(
        Sharing::of("sqlite://?mode=memory&cache=private"),
        memory(false)
    );
    assert_eq!(
        Sharing::of("sqlite://data/switchyard.db"),
        Sharing::default()
    );
    assert!(Sharing::of("sqlite:x.db?mode=rwc&cache=shared").shared);
    assert_eq!(
        Sharing::of("sqlite:x.db?vfs=unix-dotfile").vfs.as_deref(),
        Some("unix-dotfile")
    );
}

/// A transaction that fails is an error for the caller, rolled back
/// whole, and the thread goes on with the next.
#[tokio::test]
async fn a_failed_transaction_is_an_error_and_the_writer_goes_on() {
    let (_dir, s, p) = crate::storage::scratch_sqlite().await;
    let lite = Lite::open(&p, "sqlite://scratch.db").unwrap();
    sqlx::query("ALTER TABLE request_tags RENAME TO request_tags_away")
        .execute(&p)
        .await
        .unwrap();
    let entries = Arc::new(call("r1").to_vec());
    let e = lite.write(Arc::clone(&entries), 0..2).await.unwrap_err();
    assert!(e.to_string().contains("request_tags"), "{e}");
    assert_eq!(count(&p, "SELECT count(*) FROM requests").await, 0);
    sqlx::query("ALTER TABLE request_tags_away RENAME TO request_tags")
        .execute(&p)
        .await
        .unwrap();
    lite.write(entries, 0..2).await.unwrap();
    assert_eq!(count(&p, "SELECT count(*) FROM requests").await, 1);
    drop(s);
}
