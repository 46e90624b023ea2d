//! The text of the writer's multi-row INSERTs, built once per shape.
//!
//! A batch is inserted in runs of a few fixed sizes (see `fixed_chunks`),
//! so each statement has a handful of shapes per database. Their text is
//! long (a run of 100 requests binds 3,300 values), and building it for
//! every run, placeholder by placeholder, cost more than binding the
//! values; now it is built the first time a shape is used and kept.

use std::borrow::Cow;
use std::sync::OnceLock;

use super::{REQUEST_COLUMNS, ROW_RUNS, TAG_RUNS};

/// Which database's placeholders: SQLite's `?`, Postgres's `$1`, `$2`, ….
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Placeholders {
    Sqlite,
    Postgres,
}

impl Placeholders {
    /// The style of the sqlx database `DB`.
    pub(super) fn of<DB: sqlx::Database>() -> Placeholders {
        if DB::NAME == "PostgreSQL" {
            Placeholders::Postgres
        } else {
            Placeholders::Sqlite
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// `head`, then `rows` groups of `columns` placeholders, then `tail`.
fn values(head: &str, columns: usize, rows: usize, tail: &str, style: Placeholders) -> String {
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
            match style {
                Placeholders::Sqlite => sql.push('?'),
                Placeholders::Postgres => {
                    sql.push('$');
                    sql.push_str(&n.to_string());
                }
            }
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
pub(super) fn insert_requests(style: Placeholders, rows: usize) -> Cow<'static, str> {
    static CACHE: [[OnceLock<String>; ROW_RUNS.len()]; 2] =
        [const { [const { OnceLock::new() }; ROW_RUNS.len()] }; 2];
    kept(&CACHE[style.index()], ROW_RUNS, rows, || {
        requests_sql(style, rows)
    })
}

fn requests_sql(style: Placeholders, rows: usize) -> String {
    // Postgres partitions by time_ms: its key includes it (migration 13).
    let unique = match style {
        Placeholders::Sqlite => "(id)",
        Placeholders::Postgres => "(id, time_ms)",
    };
    values(
        REQUEST_COLUMNS,
        REQUEST_COLUMN_COUNT,
        rows,
        &format!(" ON CONFLICT {unique} DO NOTHING RETURNING id"),
        style,
    )
}

/// The INSERT of `rows` tags (one of [`TAG_RUNS`]).
pub(super) fn insert_tags(style: Placeholders, rows: usize) -> Cow<'static, str> {
    static CACHE: [[OnceLock<String>; TAG_RUNS.len()]; 2] =
        [const { [const { OnceLock::new() }; TAG_RUNS.len()] }; 2];
    kept(&CACHE[style.index()], TAG_RUNS, rows, || {
        tags_sql(style, rows)
    })
}

fn tags_sql(style: Placeholders, rows: usize) -> String {
    values(
        "INSERT INTO request_tags (request_id, tag, value, time_ms) ",
        4,
        rows,
        " ON CONFLICT (request_id, tag) DO NOTHING",
        style,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The text is what sqlx's QueryBuilder wrote for the same shape, so the
    /// statements are the ones the migrations' tables were used with.
    #[test]
    fn the_text_is_what_the_query_builder_writes() {
        fn sqlite(rows: usize, tail: &str) -> String {
            let mut qb = sqlx::QueryBuilder::<sqlx::Sqlite>::new("INSERT INTO t (a, b) ");
            qb.push_values(0..rows, |mut v, _| {
                v.push_bind(1i64).push_bind(2i64);
            });
            qb.push(tail);
            qb.into_sql()
        }
        fn postgres(rows: usize, tail: &str) -> String {
            let mut qb = sqlx::QueryBuilder::<sqlx::Postgres>::new("INSERT INTO t (a, b) ");
            qb.push_values(0..rows, |mut v, _| {
                v.push_bind(1i64).push_bind(2i64);
            });
            qb.push(tail);
            qb.into_sql()
        }
        for rows in [1, 4, 20] {
            assert_eq!(
                values("INSERT INTO t (a, b) ", 2, rows, " X", Placeholders::Sqlite),
                sqlite(rows, " X")
            );
            assert_eq!(
                values(
                    "INSERT INTO t (a, b) ",
                    2,
                    rows,
                    " X",
                    Placeholders::Postgres
                ),
                postgres(rows, " X")
            );
        }
        assert_eq!(
            REQUEST_COLUMNS.matches(',').count() + 1,
            REQUEST_COLUMN_COUNT
        );
        assert_eq!(Placeholders::of::<sqlx::Postgres>(), Placeholders::Postgres);
        assert_eq!(Placeholders::of::<sqlx::Sqlite>(), Placeholders::Sqlite);
        let sql = insert_requests(Placeholders::Postgres, 4);
        assert!(sql.ends_with("($100, $101, $102, $103, $104, $105, $106, $107, $108, $109, $110, $111, $112, $113, $114, $115, $116, $117, $118, $119, $120, $121, $122, $123, $124, $125, $126, $127, $128, $129, $130, $131, $132) ON CONFLICT (id, time_ms) DO NOTHING RETURNING id"), "{sql}");
        assert!(matches!(sql, Cow::Borrowed(_)));
        assert!(matches!(
            insert_requests(Placeholders::Sqlite, 3),
            Cow::Owned(_)
        ));
        assert_eq!(
            insert_tags(Placeholders::Sqlite, 1),
            "INSERT INTO request_tags (request_id, tag, value, time_ms) VALUES (?, ?, ?, ?) ON CONFLICT (request_id, tag) DO NOTHING"
        );
    }
}
