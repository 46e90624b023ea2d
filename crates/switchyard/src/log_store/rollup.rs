//! Usage sums per hour and per day, so usage over weeks reads thousands of
//! rows rather than millions.
//!
//! The writer adds a request's [`Sums`] to `usage_sums`, per tag to
//! `usage_sums_tags` and by its whole set of tags to `usage_sums_sets`,
//! once per [`SPANS`] in the same transaction that finishes the request,
//! and only on the step out of `begun` (or out of `interrupted`, taking
//! the interrupted estimate back out), so a replayed
//! spool entry adds nothing twice. A usage query reads whole days, then
//! whole hours, here, and only the cut hours at the edges of its range from
//! the records themselves (see [`plan`]).
//!
//! The tables have no NULLs: an absent key, route, provider or model is
//! stored as `''` and an absent status as `0`, and read back as null.

mod read;

use std::collections::BTreeMap;

use super::query::Dimension;
pub use read::{Figures, Groups, Key, usage};

pub const HOUR_MS: i64 = 3_600_000;
pub const DAY_MS: i64 = 86_400_000;
/// The spans summed, longest first.
pub const SPANS: [i64; 2] = [DAY_MS, HOUR_MS];

/// One request's contribution (or, negated, its withdrawal).
#[derive(Debug, Clone, PartialEq)]
pub struct Sums {
    /// Admission time of the request.
    pub time_ms: i64,
    pub provider: String,
    pub model: String,
    pub key_id: String,
    pub route: String,
    pub status: i64,
    pub requests: i64,
    pub errors: i64,
    pub input_tokens: i64,
    pub output_tokens: i64,
    pub cached_tokens: i64,
    pub cost_usd: f64,
    pub saved_usd: f64,
    pub tags: Vec<(String, String)>,
    /// The whole set of tags as one JSON object, keys sorted (`{}` for
    /// none): the key of `usage_sums_sets`.
    pub tag_set: String,
}

impl Sums {
    /// A finished request: `time_ms` is its admission time, `metadata` the
    /// stored JSON object of its tags.
    #[allow(clippy::too_many_arguments)]
    pub fn finished(
        time_ms: i64,
        key_id: Option<String>,
        route: Option<String>,
        metadata: &str,
        provider: Option<String>,
        model: Option<String>,
        status: Option<i64>,
        interrupted: bool,
    ) -> Sums {
        let status = status.unwrap_or(0);
        let tags = tags_of(metadata);
        Sums {
            time_ms,
            provider: provider.unwrap_or_default(),
            model: model.unwrap_or_default(),
            key_id: key_id.unwrap_or_default(),
            route: route.unwrap_or_default(),
            status,
            requests: 1,
            errors: i64::from(interrupted || status >= 400),
            input_tokens: 0,
            output_tokens: 0,
            cached_tokens: 0,
            cost_usd: 0.0,
            saved_usd: 0.0,
            tag_set: tag_set(&tags),
            tags,
        }
    }

    pub fn with_usage(
        mut self,
        input: Option<i64>,
        output: Option<i64>,
        cached: Option<i64>,
        cost: Option<f64>,
        saved: Option<f64>,
    ) -> Sums {
        self.input_tokens = input.unwrap_or(0);
        self.output_tokens = output.unwrap_or(0);
        self.cached_tokens = cached.unwrap_or(0);
        self.cost_usd = cost.unwrap_or(0.0);
        self.saved_usd = saved.unwrap_or(0.0);
        self
    }

    /// The same request with these tags (rather than its metadata's).
    pub fn with_tags(mut self, tags: Vec<(String, String)>) -> Sums {
        self.tag_set = tag_set(&tags);
        self.tags = tags;
        self
    }

    pub fn negated(mut self) -> Sums {
        self.requests = -self.requests;
        self.errors = -self.errors;
        self.input_tokens = -self.input_tokens;
        self.output_tokens = -self.output_tokens;
        self.cached_tokens = -self.cached_tokens;
        self.cost_usd = -self.cost_usd;
        self.saved_usd = -self.saved_usd;
        self
    }
}

fn tags_of(metadata: &str) -> Vec<(String, String)> {
    if metadata == "{}" {
        return Vec::new();
    }
    match serde_json::from_str::<serde_json::Map<String, serde_json::Value>>(metadata) {
        Ok(m) => m
            .iter()
            .map(|(k, v)| (k.clone(), super::writer::tag_value(v)))
            .collect(),
        Err(_) => Vec::new(),
    }
}

/// The canonical text of a set of tags: a JSON object of string values,
/// keys in byte order (the order the upgrade migration writes too).
fn tag_set(tags: &[(String, String)]) -> String {
    if tags.is_empty() {
        return "{}".into();
    }
    let sorted: BTreeMap<&str, &str> = tags.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    serde_json::to_string(&sorted).unwrap_or_else(|_| "{}".into())
}

pub const UPSERT: &str = "INSERT INTO usage_sums (span_ms, start_ms, provider, model, key_id, route, status, requests, errors, \
    input_tokens, output_tokens, cached_tokens, cost_usd, saved_usd) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) \
    ON CONFLICT (span_ms, start_ms, provider, model, key_id, route, status) DO UPDATE SET \
    requests = usage_sums.requests + excluded.requests, errors = usage_sums.errors + excluded.errors, \
    input_tokens = usage_sums.input_tokens + excluded.input_tokens, output_tokens = usage_sums.output_tokens + excluded.output_tokens, \
    cached_tokens = usage_sums.cached_tokens + excluded.cached_tokens, cost_usd = usage_sums.cost_usd + excluded.cost_usd, \
    saved_usd = usage_sums.saved_usd + excluded.saved_usd";

pub const UPSERT_TAG: &str = "INSERT INTO usage_sums_tags (tag, value, span_ms, start_ms, provider, model, key_id, route, status, requests, errors, \
    input_tokens, output_tokens, cached_tokens, cost_usd, saved_usd) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) \
    ON CONFLICT (tag, span_ms, start_ms, value, provider, model, key_id, route, status) DO UPDATE SET \
    requests = usage_sums_tags.requests + excluded.requests, errors = usage_sums_tags.errors + excluded.errors, \
    input_tokens = usage_sums_tags.input_tokens + excluded.input_tokens, output_tokens = usage_sums_tags.output_tokens + excluded.output_tokens, \
    cached_tokens = usage_sums_tags.cached_tokens + excluded.cached_tokens, cost_usd = usage_sums_tags.cost_usd + excluded.cost_usd, \
    saved_usd = usage_sums_tags.saved_usd + excluded.saved_usd";

pub const UPSERT_SET: &str = "INSERT INTO usage_sums_sets (tags, span_ms, start_ms, provider, model, key_id, route, status, requests, errors, \
    input_tokens, output_tokens, cached_tokens, cost_usd, saved_usd) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) \
    ON CONFLICT (span_ms, start_ms, tags, provider, model, key_id, route, status) DO UPDATE SET \
    requests = usage_sums_sets.requests + excluded.requests, errors = usage_sums_sets.errors + excluded.errors, \
    input_tokens = usage_sums_sets.input_tokens + excluded.input_tokens, output_tokens = usage_sums_sets.output_tokens + excluded.output_tokens, \
    cached_tokens = usage_sums_sets.cached_tokens + excluded.cached_tokens, cost_usd = usage_sums_sets.cost_usd + excluded.cost_usd, \
    saved_usd = usage_sums_sets.saved_usd + excluded.saved_usd";

/// Spend per key and UTC day (see `crate::budget`).
pub const UPSERT_SPEND: &str = "INSERT INTO key_spend (key_id, day_ms, spent_usd) VALUES (?, ?, ?) \
    ON CONFLICT (key_id, day_ms) DO UPDATE SET spent_usd = key_spend.spent_usd + excluded.spent_usd";

/// One group of `usage_sums`: span, start, provider, model, key, route,
/// status.
pub type Group = (i64, i64, String, String, String, String, i64);

/// The additive part of a group's row.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Totals {
    pub requests: i64,
    pub errors: i64,
    pub input_tokens: i64,
    pub output_tokens: i64,
    pub cached_tokens: i64,
    pub cost_usd: f64,
    pub saved_usd: f64,
}

impl Totals {
    fn add(&mut self, s: &Sums) {
        self.requests += s.requests;
        self.errors += s.errors;
        self.input_tokens = self.input_tokens.saturating_add(s.input_tokens);
        self.output_tokens = self.output_tokens.saturating_add(s.output_tokens);
        self.cached_tokens = self.cached_tokens.saturating_add(s.cached_tokens);
        self.cost_usd += s.cost_usd;
        self.saved_usd += s.saved_usd;
    }
}

/// The maps of a [`Batch`]: looked up by borrowed keys (see [`GroupOf`]),
/// so that adding a request to a group it shares with an earlier one
/// clones none of its strings.
pub type BatchMap<K, V> = hashbrown::HashMap<K, V, foldhash::fast::RandomState>;

/// The sums of every request one transaction finishes, by group, so that
/// the transaction writes one row per group and span rather than one per
/// request: a batch of a thousand requests to a few models is a handful of
/// upserts.
#[derive(Debug, Default)]
pub struct Batch {
    pub sums: BatchMap<Group, Totals>,
    /// (tag, value, group).
    pub tags: BatchMap<(String, String, Group), Totals>,
    /// (tag set, group).
    pub sets: BatchMap<(String, Group), Totals>,
    /// (key id, UTC day) → cost.
    pub spend: BatchMap<(String, i64), f64>,
}

/// A [`Group`] borrowed from a [`Sums`]. Its fields hash as the tuple's
/// (in order, strings as strings), so it finds the owned key.
#[derive(Clone, Copy, Hash)]
struct GroupOf<'a>(i64, i64, &'a str, &'a str, &'a str, &'a str, i64);

impl GroupOf<'_> {
    fn owned(&self) -> Group {
        let GroupOf(span, start, provider, model, key, route, status) = *self;
        let s = str::to_owned;
        (span, start, s(provider), s(model), s(key), s(route), status)
    }
}

impl hashbrown::Equivalent<Group> for GroupOf<'_> {
    fn equivalent(&self, g: &Group) -> bool {
        let GroupOf(span, start, provider, model, key, route, status) = *self;
        (span, start, status) == (g.0, g.1, g.6)
            && (provider, model, key, route) == (&*g.2, &*g.3, &*g.4, &*g.5)
    }
}

/// A `tags` key borrowed: (tag, value, group).
#[derive(Hash)]
struct TagOf<'a>(&'a str, &'a str, GroupOf<'a>);

impl hashbrown::Equivalent<(String, String, Group)> for TagOf<'_> {
    fn equivalent(&self, k: &(String, String, Group)) -> bool {
        self.0 == k.0 && self.1 == k.1 && self.2.equivalent(&k.2)
    }
}

/// A `sets` key borrowed: (tag set, group).
#[derive(Hash)]
struct SetOf<'a>(&'a str, GroupOf<'a>);

impl hashbrown::Equivalent<(String, Group)> for SetOf<'_> {
    fn equivalent(&self, k: &(String, Group)) -> bool {
        self.0 == k.0 && self.1.equivalent(&k.1)
    }
}

/// A `spend` key borrowed: (key id, day).
#[derive(Hash)]
struct SpendOf<'a>(&'a str, i64);

impl hashbrown::Equivalent<(String, i64)> for SpendOf<'_> {
    fn equivalent(&self, k: &(String, i64)) -> bool {
        self.0 == k.0 && self.1 == k.1
    }
}

/// The value of `key` in `map`, inserted (from `owned`) if missing.
fn slot<'m, K, V: Default, Q>(
    map: &'m mut BatchMap<K, V>,
    key: &Q,
    owned: impl FnOnce() -> K,
) -> &'m mut V
where
    K: std::hash::Hash + Eq,
    Q: std::hash::Hash + hashbrown::Equivalent<K>,
{
    match map.entry_ref(key) {
        hashbrown::hash_map::EntryRef::Occupied(o) => o.into_mut(),
        hashbrown::hash_map::EntryRef::Vacant(v) => v.insert_with_key(owned(), V::default()),
    }
}

impl Batch {
    pub fn add(&mut self, c: &Sums) {
        for span in SPANS {
            let start = c.time_ms.div_euclid(span) * span;
            let (p, m, k, r) = (&*c.provider, &*c.model, &*c.key_id, &*c.route);
            let group = GroupOf(span, start, p, m, k, r, c.status);
            for (tag, value) in &c.tags {
                let key = TagOf(tag, value, group);
                slot(&mut self.tags, &key, || {
                    (tag.clone(), value.clone(), group.owned())
                })
                .add(c);
            }
            let key = SetOf(&c.tag_set, group);
            slot(&mut self.sets, &key, || (c.tag_set.clone(), group.owned())).add(c);
            slot(&mut self.sums, &group, || group.owned()).add(c);
        }
        if !c.key_id.is_empty() && c.cost_usd != 0.0 {
            let day = c.time_ms.div_euclid(DAY_MS) * DAY_MS;
            let key = SpendOf(&c.key_id, day);
            *slot(&mut self.spend, &key, || (c.key_id.clone(), day)) += c.cost_usd;
        }
    }

    pub fn is_empty(&self) -> bool {
        self.sums.is_empty() && self.spend.is_empty()
    }
}

/// One upsert of a sums table inside `$tx`: the values that pick the
/// table's row (a tag and value, a tag set, or none), then the group, then
/// the totals.
macro_rules! upsert_sums {
    ($tx:expr, $q:expr, $sql:expr, $group:expr, $t:expr $(, $first:expr)*) => {{
        let (span, start, provider, model, key_id, route, status) = $group;
        let t = $t;
        sqlx::query(&$q($sql))
            $(.bind($first))*
            .bind(span)
            .bind(start)
            .bind(provider)
            .bind(model)
            .bind(key_id)
            .bind(route)
            .bind(status)
            .bind(t.requests)
            .bind(t.errors)
            .bind(t.input_tokens)
            .bind(t.output_tokens)
            .bind(t.cached_tokens)
            .bind(t.cost_usd)
            .bind(t.saved_usd)
            .execute(&mut *$tx)
            .await?;
    }};
}
pub(crate) use upsert_sums;

/// Adds a [`Batch`] inside the open transaction `$tx`; `$q` adapts the SQL
/// to the backend.
macro_rules! flush_sums {
    ($tx:expr, $q:expr, $batch:expr) => {{
        use $crate::log_store::rollup::{UPSERT, UPSERT_SET, UPSERT_TAG, upsert_sums};
        let b: &$crate::log_store::rollup::Batch = $batch;
        for (group, t) in &b.sums {
            upsert_sums!($tx, $q, UPSERT, group, t);
        }
        for ((tag, value, group), t) in &b.tags {
            upsert_sums!($tx, $q, UPSERT_TAG, group, t, tag, value);
        }
        for ((tags, group), t) in &b.sets {
            upsert_sums!($tx, $q, UPSERT_SET, group, t, tags);
        }
        for ((key_id, day), cost) in &b.spend {
            sqlx::query(&$q($crate::log_store::rollup::UPSERT_SPEND))
                .bind(key_id)
                .bind(day)
                .bind(cost)
                .execute(&mut *$tx)
                .await?;
        }
    }};
}
pub(crate) use flush_sums;

/// Whether a usage query can read sums at all: buckets (if any) of whole
/// hours, and tag names that a JSON path can quote (none holds `"` or a
/// backslash; such a tag is grouped from the records).
pub fn serves(group_by: &[Dimension], bucket_ms: Option<i64>) -> bool {
    let quotable = group_by.iter().all(|d| match d {
        Dimension::Tag(t) => !t.contains(['"', '\\']),
        Dimension::Column(_) => true,
    });
    quotable && bucket_ms.is_none_or(|b| b > 0 && b % HOUR_MS == 0)
}

/// Where one piece of a range is read from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// The sums of this span.
    Sums(i64),
    Records,
}

/// Splits `[since, until)` (either end open) into pieces: whole days from
/// the daily sums, whole hours left at the edges from the hourly sums, and
/// the cut hours left at the very edges from the records. A span is used
/// only when buckets (if any) are whole multiples of it.
pub fn plan(
    since: Option<i64>,
    until: Option<i64>,
    bucket_ms: Option<i64>,
) -> Vec<(Source, Option<i64>, Option<i64>)> {
    let spans: Vec<i64> = SPANS
        .into_iter()
        .filter(|s| bucket_ms.is_none_or(|b| b % s == 0))
        .collect();
    let mut out = Vec::new();
    cover(since, until, &spans, &mut out);
    out
}

fn cover(
    lo: Option<i64>,
    hi: Option<i64>,
    spans: &[i64],
    out: &mut Vec<(Source, Option<i64>, Option<i64>)>,
) {
    if let (Some(l), Some(h)) = (lo, hi)
        && l >= h
    {
        return;
    }
    let Some((&span, finer)) = spans.split_first() else {
        out.push((Source::Records, lo, hi));
        return;
    };
    let a = lo.map(|t| t.div_euclid(span) * span + if t.rem_euclid(span) == 0 { 0 } else { span });
    let b = hi.map(|t| t.div_euclid(span) * span);
    if let (Some(a), Some(b)) = (a, b)
        && a >= b
    {
        cover(lo, hi, finer, out);
        return;
    }
    if let (Some(_), Some(a)) = (lo, a) {
        cover(lo, Some(a), finer, out);
    }
    out.push((Source::Sums(span), a, b));
    if let (Some(b), Some(_)) = (b, hi) {
        cover(Some(b), hi, finer, out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sums_take_hours_and_tags_and_negate() {
        let s = Sums::finished(
            3 * HOUR_MS + 5,
            Some("key_1".into()),
            None,
            r#"{"team":"a","n":3}"#,
            Some("openai".into()),
            Some("gpt-4o".into()),
            Some(429),
            false,
        )
        .with_usage(Some(10), Some(2), None, Some(0.5), None);
        assert_eq!(s.time_ms, 3 * HOUR_MS + 5);
        assert_eq!((s.requests, s.errors, s.status), (1, 1, 429));
        assert_eq!(s.route, "");
        let mut tags = s.tags.clone();
        tags.sort();
        assert_eq!(
            tags,
            vec![("n".into(), "3".into()), ("team".into(), "a".into())]
        );
        let n = s.clone().negated();
        assert_eq!((n.requests, n.errors, n.input_tokens), (-1, -1, -10));
        assert_eq!(n.cost_usd, -0.5);
        assert_eq!(
            s.tag_set, r#"{"n":"3","team":"a"}"#,
            "keys sorted, values text"
        );
        let odd = Sums::finished(
            0,
            None,
            None,
            r#"{"z":"\"q\"","a b":true}"#,
            None,
            None,
            None,
            false,
        );
        assert_eq!(odd.tag_set, r#"{"a b":"true","z":"\"q\""}"#);
        let i = Sums::finished(-1, None, None, "not json", None, None, None, true);
        assert_eq!((i.time_ms, i.status, i.errors), (-1, 0, 1));
        assert!(i.tags.is_empty());
        assert_eq!(i.tag_set, "{}");
    }

    #[test]
    fn a_batch_sums_by_group_and_keeps_spend_per_key_and_day() {
        let one = |key: Option<&str>, model: &str, cost: f64, tags: &str| {
            Sums::finished(
                DAY_MS + 2 * HOUR_MS + 7,
                key.map(str::to_owned),
                None,
                tags,
                Some("openai".into()),
                Some(model.into()),
                Some(200),
                false,
            )
            .with_usage(Some(10), Some(2), None, Some(cost), None)
        };
        let mut b = Batch::default();
        b.add(&one(Some("k1"), "a", 0.5, r#"{"team":"x"}"#));
        b.add(&one(Some("k1"), "a", 0.25, r#"{"team":"x"}"#));
        b.add(&one(Some("k1"), "b", 1.0, "{}"));
        b.add(&one(None, "b", 2.0, "{}"));
        b.add(&one(Some("k1"), "a", 0.5, r#"{"team":"x"}"#).negated());
        // Two models × (key k1, no key for b) × two spans. Found below by
        // owned keys, where they were added by borrowed ones: the two
        // hash alike.
        assert_eq!(b.sums.len(), 6);
        let day_a = &b.sums[&(
            DAY_MS,
            DAY_MS,
            "openai".into(),
            "a".into(),
            "k1".into(),
            "".into(),
            200,
        )];
        assert_eq!(
            (day_a.requests, day_a.input_tokens, day_a.cost_usd),
            (1, 10, 0.25)
        );
        let hour = DAY_MS + 2 * HOUR_MS;
        let tag = &b.tags[&(
            "team".into(),
            "x".into(),
            (
                HOUR_MS,
                hour,
                "openai".into(),
                "a".into(),
                "k1".into(),
                "".into(),
                200,
            ),
        )];
        assert_eq!(tag.requests, 1);
        assert_eq!(b.tags.len(), 2, "one tag, two spans");
        // Sets: {team:x} on model a, {} on model b (keyed and keyless).
        assert_eq!(b.sets.len(), 6);
        let set = &b.sets[&(
            r#"{"team":"x"}"#.to_owned(),
            (
                DAY_MS,
                DAY_MS,
                "openai".into(),
                "a".into(),
                "k1".into(),
                "".into(),
                200,
            ),
        )];
        assert_eq!((set.requests, set.cost_usd), (1, 0.25));
        assert!(b.sets.contains_key(&(
            "{}".to_owned(),
            (
                HOUR_MS,
                hour,
                "openai".into(),
                "b".into(),
                "".into(),
                "".into(),
                200
            )
        )));
        assert_eq!(b.spend.len(), 1, "keyless requests spend no key's budget");
        assert_eq!(b.spend[&("k1".into(), DAY_MS)], 1.25);
    }

    #[test]
    fn plans_days_then_hours_then_records() {
        use Source::*;
        let (h, d) = (HOUR_MS, DAY_MS);
        let since = 10 * d - 2 * h - 5;
        let until = 13 * d + 3 * h + 7;
        assert_eq!(
            plan(Some(since), Some(until), None),
            vec![
                (Records, Some(since), Some(10 * d - 2 * h)),
                (Sums(h), Some(10 * d - 2 * h), Some(10 * d)),
                (Sums(d), Some(10 * d), Some(13 * d)),
                (Sums(h), Some(13 * d), Some(13 * d + 3 * h)),
                (Records, Some(13 * d + 3 * h), Some(until)),
            ]
        );
        // Hour buckets: no days.
        assert_eq!(
            plan(Some(10 * d), None, Some(h)),
            vec![(Sums(h), Some(10 * d), None)]
        );
        // Open ends read sums to the end; inside one hour, records only.
        assert_eq!(plan(None, None, None), vec![(Sums(d), None, None)]);
        assert_eq!(
            plan(Some(5), Some(h - 1), Some(d)),
            vec![(Records, Some(5), Some(h - 1))]
        );
        assert_eq!(plan(Some(5), Some(5), None), vec![]);
        // Minute buckets: records only.
        assert_eq!(
            plan(Some(5), Some(3 * d), Some(60_000)),
            vec![(Records, Some(5), Some(3 * d))]
        );
    }

    #[test]
    fn serves_whole_hours_and_one_tag() {
        let tag = |t: &str| Dimension::Tag(t.into());
        assert!(serves(&[Dimension::Column("model")], None));
        assert!(serves(
            &[tag("a"), Dimension::Column("model")],
            Some(86_400_000)
        ));
        assert!(serves(&[tag("a"), tag("b")], None));
        assert!(!serves(&[tag("a"), tag("say \"b\"")], None));
        assert!(!serves(&[], Some(60_000)));
    }
}
