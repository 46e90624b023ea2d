//! Record queries at a million rows (or `SWITCHYARD_SCALE_ROWS`): plans use
//! indexes, and the time each query takes is printed (a measurement, not an
//! assertion: run with
//! `cargo test --release --test it scale -- --ignored --nocapture`).
//!
//! Seeding 10 million records takes half an hour: with
//! `SWITCHYARD_SCALE_SCHEMA=<name>` the Postgres test seeds that schema once,
//! keeps it, and later runs measure the queries on it as it is (drop it by
//! hand when done).

use std::time::Instant;

use switchyard::log_store::query::{self, Dimension, LogFilter};
use switchyard::storage::Storage;

fn rows() -> i64 {
    std::env::var("SWITCHYARD_SCALE_ROWS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000)
}

/// Seeds `ROWS` complete records over the last 30 days, a tenth of them per
/// provider, tags `team` (20 values) and `user` (1000 values) on each.
async fn seed(s: &Storage) {
    #[allow(non_snake_case)]
    let ROWS = rows();
    let now = switchyard::clock::unix_ms();
    // On Postgres, the days' partitions first (as the gateway makes them).
    switchyard::log_store::partitions::ensure_range(s, now - span_days(31), now + span_days(1))
        .await
        .unwrap();
    let span = 30 * 86_400_000i64;
    let requests = format!(
        "WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM s WHERE i < {ROWS}) \
         INSERT INTO requests (id, time_ms, instance, state, key_id, route, requested_model, dialect, stream, log_mode, \
         provider, model, status, error_class, latency_ms, ttft_ms, input_tokens, output_tokens, cached_tokens, cost_usd, cache, metadata) \
         SELECT 'r' || i, {now} - (i * {span} / {ROWS}), 'seed', 'complete', 'key_' || (i % 50), NULL, 'p' || (i % 10) || '/m' || (i % 7), 'openai', FALSE, 'metadata', \
         'p' || (i % 10), 'm' || (i % 7), CASE WHEN i % 97 = 0 THEN 503 ELSE 200 END, CASE WHEN i % 97 = 0 THEN 'overloaded' ELSE NULL END, \
         20 + (i % 400), 5 + (i % 50), 100 + (i % 900), 10 + (i % 300), i % 64, (i % 1000) / 1000000.0, 'BYPASS', '{{}}' FROM s"
    );
    let tags = format!(
        "WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM s WHERE i < {ROWS}) \
         INSERT INTO request_tags (request_id, tag, value, time_ms) \
         SELECT 'r' || i, 'team', 't' || (i % 20), {now} - (i * {span} / {ROWS}) FROM s \
         UNION ALL SELECT 'r' || i, 'user', 'u' || (i % 1000), {now} - (i * {span} / {ROWS}) FROM s"
    );
    match s {
        Storage::Sqlite(p) => {
            sqlx::query(&requests.replace("FALSE", "0"))
                .execute(p)
                .await
                .unwrap();
            sqlx::query(&tags).execute(p).await.unwrap();
            sqlx::query("ANALYZE").execute(p).await.unwrap();
        }
        Storage::Postgres(p) => {
            let series = |q: &str| {
                q.replace(
                    &format!("WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM s WHERE i < {ROWS})"),
                    &format!("WITH s(i) AS (SELECT generate_series(1, {ROWS})::BIGINT)"),
                )
            };
            sqlx::query(&series(&requests)).execute(p).await.unwrap();
            sqlx::query(&series(&tags)).execute(p).await.unwrap();
            // What autovacuum does in a running deployment (the test
            // machines run Postgres with it off): statistics, and the
            // visibility map that lets index-only scans skip the heap.
            sqlx::query("VACUUM (ANALYZE)").execute(p).await.unwrap();
        }
    }
}

fn span_days(n: i64) -> i64 {
    n * 86_400_000
}

async fn measure(s: &Storage, backend: &str) {
    if seeded(s).await {
        println!("{backend}: measuring the records already seeded");
    } else {
        build(s, backend).await;
    }
    queries(s, backend).await;
}

/// Whether the store holds records already (a kept schema).
async fn seeded(s: &Storage) -> bool {
    let q = "SELECT EXISTS (SELECT 1 FROM requests)";
    match s {
        Storage::Sqlite(p) => sqlx::query_scalar(q).fetch_one(p).await,
        Storage::Postgres(p) => sqlx::query_scalar(q).fetch_one(p).await,
    }
    .unwrap()
}

/// Seeds the records, then builds their sums.
async fn build(s: &Storage, backend: &str) {
    #[allow(non_snake_case)]
    let ROWS = rows();
    let t = Instant::now();
    seed(s).await;
    println!("{backend}: seeded {ROWS} records in {:?}", t.elapsed());
    // The records went in behind the writer's back: build their sums the
    // way an upgrade does, by applying the rollup migrations anew.
    let t = Instant::now();
    for q in [
        "DELETE FROM switchyard_migrations WHERE version IN (3, 14)",
        "DROP TABLE usage_sums",
        "DROP TABLE usage_sums_tags",
        "DROP TABLE usage_sums_sets",
    ] {
        match s {
            Storage::Sqlite(p) => sqlx::query(q).execute(p).await.map(drop),
            Storage::Postgres(p) => sqlx::query(q).execute(p).await.map(drop),
        }
        .unwrap();
    }
    s.migrate().await.unwrap();
    // Statistics (and, on Postgres, the visibility map) for the new
    // tables, as autovacuum (or SQLite's optimize) would keep them in a
    // running deployment.
    match s {
        Storage::Sqlite(p) => sqlx::query("ANALYZE").execute(p).await.map(drop),
        Storage::Postgres(p) => sqlx::query("VACUUM (ANALYZE)").execute(p).await.map(drop),
    }
    .unwrap();
    println!(
        "{backend}: sums of {ROWS} records built in {:?}",
        t.elapsed()
    );
}

async fn queries(s: &Storage, backend: &str) {
    let now = switchyard::clock::unix_ms();
    let day = 86_400_000;
    let cases: Vec<(&str, LogFilter)> = vec![
        ("newest page", LogFilter::default()),
        (
            "by key",
            LogFilter {
                key: Some("key_7".into()),
                ..Default::default()
            },
        ),
        (
            "by provider",
            LogFilter {
                provider: Some("p3".into()),
                ..Default::default()
            },
        ),
        (
            "by status 503",
            LogFilter {
                status: Some(503),
                ..Default::default()
            },
        ),
        (
            "by tag team=t5",
            LogFilter {
                tags: vec![("team".into(), "t5".into())],
                ..Default::default()
            },
        ),
        (
            "by tag user=u42, last 7 days",
            LogFilter {
                tags: vec![("user".into(), "u42".into())],
                since: Some(now - 7 * day),
                ..Default::default()
            },
        ),
        (
            "by tags team=t2 and user=u42",
            LogFilter {
                tags: vec![("team".into(), "t2".into()), ("user".into(), "u42".into())],
                ..Default::default()
            },
        ),
        (
            "by error class, a day",
            LogFilter {
                error_class: Some("overloaded".into()),
                since: Some(now - 2 * day),
                until: Some(now - day),
                ..Default::default()
            },
        ),
    ];
    for (name, f) in cases {
        let t = Instant::now();
        let (rows, next) = query::list(s, &f, None, 50).await.unwrap();
        let first = t.elapsed();
        let t = Instant::now();
        if let Some(c) = &next {
            query::list(s, &f, Some(c), 50).await.unwrap();
        }
        let second = t.elapsed();
        let plan = query::explain_list(s, &f).await.unwrap();
        println!(
            "{backend}: logs {name}: {} rows, first page {first:?}, next page {second:?}\n    plan: {}",
            rows.len(),
            plan.replace('\n', " | ")
        );
    }
    for (name, dims, since, bucket) in [
        (
            "usage by provider, 30 days",
            vec![Dimension::Column("provider")],
            now - 30 * day,
            None,
        ),
        (
            "usage by team tag, 30 days",
            vec![Dimension::Tag("team".into())],
            now - 30 * day,
            None,
        ),
        (
            "usage by user tag x model per day, 30 days",
            vec![Dimension::Tag("user".into()), Dimension::Column("model")],
            now - 30 * day,
            Some(day),
        ),
        (
            "usage by team x model, 7 days",
            vec![Dimension::Tag("team".into()), Dimension::Column("model")],
            now - 7 * day,
            None,
        ),
        (
            "usage by team x user (two tags), 7 days",
            vec![Dimension::Tag("team".into()), Dimension::Tag("user".into())],
            now - 7 * day,
            None,
        ),
        (
            "usage by team x user per day, 30 days",
            vec![Dimension::Tag("team".into()), Dimension::Tag("user".into())],
            now - 30 * day,
            Some(day),
        ),
    ] {
        let t = Instant::now();
        let rows = query::usage(s, &dims, Some(since), None, bucket)
            .await
            .unwrap();
        let fast = t.elapsed();
        let t = Instant::now();
        let slow = query::usage_from_records(s, &dims, Some(since), None, bucket)
            .await
            .unwrap();
        let slow_t = t.elapsed();
        let requests = |r: &[query::UsageRow]| r.iter().map(|r| r.requests).sum::<i64>();
        assert_eq!(requests(&rows), requests(&slow), "{name}");
        println!(
            "{backend}: {name}: {} groups in {fast:?} (from records alone: {slow_t:?})",
            rows.len()
        );
    }
    let t = Instant::now();
    let rows = query::usage(
        s,
        &[Dimension::Tag("team".into())],
        Some(now - day),
        None,
        Some(3_600_000),
    )
    .await
    .unwrap();
    println!(
        "{backend}: usage by team per hour, 1 day: {} rows in {:?}",
        rows.len(),
        t.elapsed()
    );
    let t = Instant::now();
    let (rows, _) = query::stats(s, now - day, now, 3_600_000).await.unwrap();
    println!(
        "{backend}: stats per hour, 1 day: {} buckets in {:?}",
        rows.len(),
        t.elapsed()
    );
}

#[tokio::test]
#[ignore = "a measurement; run by hand (see the module doc)"]
async fn a_million_records_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let s = Storage::connect(&format!("sqlite://{}/scale.db", dir.path().display()))
        .await
        .unwrap();
    s.migrate().await.unwrap();
    measure(&s, "sqlite").await;
}

#[tokio::test]
#[ignore = "a measurement; run by hand (see the module doc)"]
async fn a_million_records_on_postgres() {
    let url = match std::env::var("SWITCHYARD_SCALE_SCHEMA") {
        Ok(schema) => {
            assert!(
                schema
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_'),
                "SWITCHYARD_SCALE_SCHEMA must be a plain name"
            );
            crate::harness::postgres_schema(&schema).await
        }
        Err(_) => crate::harness::postgres_url().await,
    };
    let Some(url) = url else {
        return;
    };
    let s = Storage::connect(&url).await.unwrap();
    s.migrate().await.unwrap();
    measure(&s, "postgres").await;
}
