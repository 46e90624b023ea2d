//! Migrations that move data, run on a database that holds some.

use super::{MIGRATIONS, Storage};

/// SQLite's migration 16 rebuilds `request_tags` keyed by request: the
/// tags of stored records come across, a tag whose record is gone (left by
/// the retention before it) does not, and deleting a record deletes its
/// tags.
#[tokio::test]
async fn sixteen_keeps_the_tags_of_stored_records_and_deletes_them_with_it() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/m.db", dir.path().display());
    let Storage::Sqlite(p) = Storage::connect(&url).await.unwrap() else {
        unreachable!("a sqlite: URL opens SQLite")
    };
    let (before, sixteen) = MIGRATIONS.split_at(15);
    assert_eq!(sixteen[0].0, 16);
    for (_, _, sql, _) in before {
        sqlx::raw_sql(sql).execute(&p).await.unwrap();
    }
    sqlx::raw_sql(
        "INSERT INTO requests (id, time_ms, instance, state, requested_model, dialect, stream, log_mode) \
         VALUES ('kept', 1, 'i', 'complete', 'm', 'openai', 0, 'metadata'), \
                ('other', 2, 'i', 'complete', 'm', 'openai', 0, 'metadata'); \
         INSERT INTO request_tags (request_id, tag, value, time_ms) \
         VALUES ('kept', 'team', 'a', 1), ('kept', 'env', 'prod', 1), ('other', 'team', 'b', 2), \
                ('gone', 'team', 'a', 0);",
    )
    .execute(&p)
    .await
    .unwrap();
    sqlx::raw_sql(sixteen[0].2).execute(&p).await.unwrap();

    let tags = || async {
        sqlx::query_as::<_, (String, String, String)>(
            "SELECT request_id, tag, value FROM request_tags ORDER BY request_id, tag",
        )
        .fetch_all(&p)
        .await
        .unwrap()
    };
    let row = |id: &str, tag: &str, value: &str| (id.to_owned(), tag.to_owned(), value.to_owned());
    assert_eq!(
        tags().await,
        [
            row("kept", "env", "prod"),
            row("kept", "team", "a"),
            row("other", "team", "b")
        ]
    );
    sqlx::query("DELETE FROM requests WHERE id = 'kept'")
        .execute(&p)
        .await
        .unwrap();
    assert_eq!(tags().await, [row("other", "team", "b")]);
    // The lookup index a tag filter drives a page with is there again.
    let plan: Vec<(i64, i64, i64, String)> = sqlx::query_as(
        "EXPLAIN QUERY PLAN SELECT request_id FROM request_tags WHERE tag = 'team' AND value = 'b' ORDER BY time_ms",
    )
    .fetch_all(&p)
    .await
    .unwrap();
    assert!(
        plan.iter().any(|r| r.3.contains("request_tags_lookup")),
        "{plan:?}"
    );
}
