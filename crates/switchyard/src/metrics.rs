//! Prometheus metrics, rendered at `/metrics`.
//!
//! Labels stay low-cardinality: provider, model (served targets only),
//! status and cache status; never a key id or a tag. A label set past
//! [`MAX_SERIES`] distinct values is counted under `model="other"`, so a
//! caller inventing model names cannot grow the registry without bound.

use std::collections::HashMap;
use std::fmt::Write;
use std::sync::Mutex;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use crate::chat::Usage;

const MAX_SERIES: usize = 2000;
/// Seconds.
const LATENCY_BUCKETS: [f64; 14] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0,
];
const ATTEMPT_BUCKETS: [f64; 5] = [1.0, 2.0, 3.0, 5.0, 8.0];

#[derive(Debug, Default, Clone)]
struct Histogram {
    counts: Vec<u64>,
    sum: f64,
    count: u64,
}

impl Histogram {
    fn observe(&mut self, bounds: &[f64], v: f64) {
        if self.counts.is_empty() {
            self.counts = vec![0; bounds.len()];
        }
        for (i, b) in bounds.iter().enumerate() {
            if v <= *b {
                self.counts[i] += 1;
            }
        }
        self.sum += v;
        self.count += 1;
    }

    fn render(&self, out: &mut String, name: &str, labels: &str, bounds: &[f64]) {
        let sep = if labels.is_empty() { "" } else { "," };
        for (i, b) in bounds.iter().enumerate() {
            let _ = writeln!(
                out,
                "{name}_bucket{{{labels}{sep}le=\"{b}\"}} {}",
                self.counts.get(i).copied().unwrap_or(0)
            );
        }
        let _ = writeln!(
            out,
            "{name}_bucket{{{labels}{sep}le=\"+Inf\"}} {}",
            self.count
        );
        let _ = writeln!(out, "{name}_sum{{{labels}}} {}", self.sum);
        let _ = writeln!(out, "{name}_count{{{labels}}} {}", self.count);
    }
}

#[derive(Debug, Default)]
struct Registry {
    requests: HashMap<(String, String, u16, &'static str), u64>,
    latency: HashMap<String, Histogram>,
    ttft: HashMap<String, Histogram>,
    tokens: HashMap<(String, String, &'static str), u64>,
    cost: HashMap<(String, String), f64>,
    attempts: Histogram,
}

#[derive(Debug, Default)]
pub struct Metrics {
    reg: Mutex<Registry>,
    open_streams: AtomicI64,
}

fn bounded<K: std::hash::Hash + Eq, V>(map: &HashMap<K, V>, key: &K) -> bool {
    map.contains_key(key) || map.len() < MAX_SERIES
}

impl Metrics {
    fn lock(&self) -> std::sync::MutexGuard<'_, Registry> {
        self.reg.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// One finished request.
    pub fn request(
        &self,
        provider: Option<&str>,
        model: Option<&str>,
        status: u16,
        cache: &'static str,
        latency: Duration,
        ttft: Option<Duration>,
    ) {
        let provider = provider.unwrap_or("none").to_owned();
        let mut r = self.lock();
        let mut key = (
            provider.clone(),
            model.unwrap_or("none").to_owned(),
            status,
            cache,
        );
        if !bounded(&r.requests, &key) {
            key.1 = "other".into();
        }
        *r.requests.entry(key).or_default() += 1;
        if r.latency.len() < 64 || r.latency.contains_key(&provider) {
            r.latency
                .entry(provider.clone())
                .or_default()
                .observe(&LATENCY_BUCKETS, latency.as_secs_f64());
            if let Some(t) = ttft {
                r.ttft
                    .entry(provider)
                    .or_default()
                    .observe(&LATENCY_BUCKETS, t.as_secs_f64());
            }
        }
    }

    pub fn tokens(&self, provider: &str, model: &str, u: &Usage, cost: Option<f64>) {
        let mut r = self.lock();
        let mut model = model.to_owned();
        if !bounded(&r.cost, &(provider.to_owned(), model.clone())) {
            model = "other".into();
        }
        for (kind, n) in [
            ("input", u.input_tokens),
            ("output", u.output_tokens),
            ("cached", u.cached_input_tokens),
            ("reasoning", u.reasoning_tokens),
        ] {
            *r.tokens
                .entry((provider.to_owned(), model.clone(), kind))
                .or_default() += n;
        }
        *r.cost.entry((provider.to_owned(), model)).or_default() += cost.unwrap_or(0.0);
    }

    pub fn attempts(&self, n: usize) {
        self.lock().attempts.observe(&ATTEMPT_BUCKETS, n as f64);
    }

    pub fn stream_opened(&self) {
        self.open_streams.fetch_add(1, Ordering::Relaxed);
    }

    pub fn stream_closed(&self) {
        self.open_streams.fetch_sub(1, Ordering::Relaxed);
    }

    /// The Prometheus text exposition. `gauges` are extra lines computed by
    /// the caller (circuit state, spool depth...).
    pub fn render(&self, extra: &str) -> String {
        let r = self.lock();
        let mut out = String::with_capacity(4096);
        out.push_str("# HELP switchyard_requests_total Requests finished, by served provider and model, status and cache status.\n# TYPE switchyard_requests_total counter\n");
        let mut rows: Vec<_> = r.requests.iter().collect();
        rows.sort_by(|a, b| a.0.cmp(b.0));
        for ((p, m, s, c), n) in rows {
            let _ = writeln!(
                out,
                "switchyard_requests_total{{provider=\"{}\",model=\"{}\",status=\"{s}\",cache=\"{c}\"}} {n}",
                esc(p),
                esc(m)
            );
        }
        out.push_str("# HELP switchyard_request_duration_seconds Time from request to last byte.\n# TYPE switchyard_request_duration_seconds histogram\n");
        for (p, h) in sorted(&r.latency) {
            h.render(
                &mut out,
                "switchyard_request_duration_seconds",
                &format!("provider=\"{}\"", esc(p)),
                &LATENCY_BUCKETS,
            );
        }
        out.push_str("# HELP switchyard_time_to_first_token_seconds Time from request to the first streamed byte.\n# TYPE switchyard_time_to_first_token_seconds histogram\n");
        for (p, h) in sorted(&r.ttft) {
            h.render(
                &mut out,
                "switchyard_time_to_first_token_seconds",
                &format!("provider=\"{}\"", esc(p)),
                &LATENCY_BUCKETS,
            );
        }
        out.push_str("# HELP switchyard_tokens_total Tokens, by kind.\n# TYPE switchyard_tokens_total counter\n");
        let mut rows: Vec<_> = r.tokens.iter().collect();
        rows.sort_by(|a, b| a.0.cmp(b.0));
        for ((p, m, k), n) in rows {
            let _ = writeln!(
                out,
                "switchyard_tokens_total{{provider=\"{}\",model=\"{}\",kind=\"{k}\"}} {n}",
                esc(p),
                esc(m)
            );
        }
        out.push_str("# HELP switchyard_cost_usd_total Cost in US dollars at the price table.\n# TYPE switchyard_cost_usd_total counter\n");
        let mut rows: Vec<_> = r.cost.iter().collect();
        rows.sort_by(|a, b| a.0.cmp(b.0));
        for ((p, m), c) in rows {
            let _ = writeln!(
                out,
                "switchyard_cost_usd_total{{provider=\"{}\",model=\"{}\"}} {c}",
                esc(p),
                esc(m)
            );
        }
        out.push_str("# HELP switchyard_attempts Upstream attempts per request.\n# TYPE switchyard_attempts histogram\n");
        r.attempts
            .render(&mut out, "switchyard_attempts", "", &ATTEMPT_BUCKETS);
        out.push_str("# HELP switchyard_open_streams Streams being generated now.\n# TYPE switchyard_open_streams gauge\n");
        let _ = writeln!(
            out,
            "switchyard_open_streams {}",
            self.open_streams.load(Ordering::Relaxed)
        );
        out.push_str(extra);
        out
    }
}

fn sorted(m: &HashMap<String, Histogram>) -> Vec<(&String, &Histogram)> {
    let mut v: Vec<_> = m.iter().collect();
    v.sort_by(|a, b| a.0.cmp(b.0));
    v
}

/// Escapes a label value.
fn esc(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_and_histograms_and_bounds_cardinality() {
        let m = Metrics::default();
        m.request(
            Some("openai"),
            Some("gpt-5"),
            200,
            "MISS",
            Duration::from_millis(30),
            Some(Duration::from_millis(10)),
        );
        m.tokens(
            "openai",
            "gpt-5",
            &Usage {
                input_tokens: 5,
                output_tokens: 7,
                ..Default::default()
            },
            Some(0.5),
        );
        m.attempts(2);
        let text = m.render("");
        assert!(text.contains("switchyard_requests_total{provider=\"openai\",model=\"gpt-5\",status=\"200\",cache=\"MISS\"} 1"), "{text}");
        assert!(text.contains(
            "switchyard_request_duration_seconds_bucket{provider=\"openai\",le=\"0.05\"} 1"
        ));
        assert!(text.contains(
            "switchyard_tokens_total{provider=\"openai\",model=\"gpt-5\",kind=\"output\"} 7"
        ));
        assert!(text.contains("switchyard_attempts_bucket{le=\"2\"} 1"));
        for i in 0..(MAX_SERIES + 50) {
            m.request(
                Some("p"),
                Some(&format!("m{i}")),
                404,
                "BYPASS",
                Duration::ZERO,
                None,
            );
        }
        assert!(m.lock().requests.len() <= MAX_SERIES + 1);
    }
}
