//! The text of the writer's multi-row INSERTs on Postgres, built once per
//! shape (SQLite's records go through `lite`, a row at a time).
//!
//! A batch is inserted in runs of a few fixed sizes (see `fixed_chunks`),
//! so each statement has a handful of shapes. Their text is
//! long (a run of 100 requests binds 3,300 values), and building it for
//! every run, placeholder by placeholder, cost more than binding the
//! values; now it is built the first time a shape is used and kept.

use std::borrow::Cow;
use std::sync::OnceLock;

use super::{REQUEST_COLUMNS, ROW_RUNS, TAG_RUNS};

/// `head`, then `rows` groups of `columns` placeholders (`$1`, `$2`, …),
/// then `tail`.
fn values(head: &str, columns: usize, rows: usize, tail: &str) -> String {
    let mut sql = String::with_capacity(head.len() + tail.len() + rows * columns * 6 + 8);
    sql.push_str(head);
    sql.push_str("VALUES ");
    let mut n = 0;
    for row in 0..rows {
        if row > 0 {
            sql.push_str(", ");
        }
        sql.push('(');
        for column in 0..columns {
            if column > 0 {
                sql.push_str(", ");
            }
            n += 1;
            sql.push('$');
            sql.push_str(&n.to_string());
        }
        sql.push(')');
    }
    sql.push_str(tail);
    sql
}

/// The columns of a `requests` row (see [`REQUEST_COLUMNS`]).
pub(super) const REQUEST_COLUMN_COUNT: usize = 33;

/// The text of the shape `rows` from `cache` (one slot per size in
/// `runs`), built by `build` the first time; a size not in `runs` (which
/// `fixed_chunks` never makes) is built for its one use.
fn kept(
    cache: &'static [OnceLock<String>],
    runs: &[usize],
    rows: usize,
    build: impl FnOnce() -> String,
) -> Cow<'static, str> {
    match runs.iter().position(|&n| n == rows) {
        Some(at) => Cow::Borrowed(cache[at].get_or_init(build)),
        None => Cow::Owned(build()),
    }
}

/// The INSERT of `rows` requests (one of [`ROW_RUNS`]), skipping ids
/// already stored and returning those it inserted.
pub(super) fn insert_requests(rows: usize) -> Cow<'static, str> {
    static CACHE: [OnceLock<String>; ROW_RUNS.len()] = [const { OnceLock::new() }; ROW_RUNS.len()];
    kept(&CACHE, ROW_RUNS, rows, || {
        // Partitioned by time_ms: the key includes it (migration 13).
        values(
            REQUEST_COLUMNS,
            REQUEST_COLUMN_COUNT,
            rows,
            " ON CONFLICT (id, time_ms) DO NOTHING RETURNING id",
        )
    })
}

/// The INSERT of `rows` tags (one of [`TAG_RUNS`]).
pub(super) fn insert_tags(rows: usize) -> Cow<'static, str> {
    static CACHE: [OnceLock<String>; TAG_RUNS.len()] = [const { OnceLock::new() }; TAG_RUNS.len()];
    kept(&CACHE, TAG_RUNS, rows, || {
        values(
            "INSERT INTO request_tags (request_id, tag, value, time_ms) ",
            4,
            rows,
            " ON CONFLICT (request_id, tag) DO NOTHING",
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The text is what sqlx's QueryBuilder wrote for the same shape, so the
    /// statements are the ones the migrations' tables were used with.
    #[test]
    fn the_text_is_what_the_query_builder_writes() {
        fn built(rows: usize, tail: &str) -> String {
            let mut qb = sqlx::QueryBuilder::<sqlx::Postgres>::new("INSERT INTO t (a, b) ");
            qb.push_values(0..rows, |mut v, _| {
                v.push_bind(1i64).push_bind(2i64);
            });
            qb.push(tail);
            qb.into_sql()
        }
        for rows in [1, 4, 20] {
            assert_eq!(
                values("INSERT INTO t (a, b) ", 2, rows, " X"),
                built(rows, " X")
            );
        }
        assert_eq!(
            REQUEST_COLUMNS.matches(',').count() + 1,
            REQUEST_COLUMN_COUNT
        );
        let sql = insert_requests(4);
        assert!(sql.ends_with("($100, $101, $102, $103, $104, $105, $106, $107, $108, $109, $110, $111, $112, $113, $114, $115, $116, $117, $118, $119, $120, $121, $122, $123, $124, $125, $126, $127, $128, $129, $130, $131, $132) ON CONFLICT (id, time_ms) DO NOTHING RETURNING id"), "{sql}");
        assert!(matches!(sql, Cow::Borrowed(_)));
        assert!(matches!(insert_requests(3), Cow::Owned(_)));
        assert_eq!(
            insert_tags(1),
            "INSERT INTO request_tags (request_id, tag, value, time_ms) VALUES ($1, $2, $3, $4) ON CONFLICT (request_id, tag) DO NOTHING"
        );
    }
}
