//! Prometheus metrics, rendered at `/metrics`.
//!
//! Labels stay low-cardinality: provider, model (served targets only),
//! status and cache status; never a key id or a tag. A label set past
//! [`MAX_SERIES`] distinct values is counted under `model="other"`, so a
//! caller inventing model names cannot grow the registry without bound.
//!
//! Beside the gateway's own, the OpenTelemetry GenAI client metrics, named
//! as an OpenTelemetry Prometheus exporter names them:
//! `gen_ai_client_token_usage` (`gen_ai.client.token.usage`),
//! `gen_ai_client_operation_duration_seconds` and, for streams,
//! `gen_ai_client_operation_time_to_first_chunk_seconds`, each with the
//! semantic conventions' bucket boundaries and attributes
//! (`gen_ai_operation_name`, `gen_ai_provider_name`,
//! `gen_ai_response_model`, `gen_ai_token_type`, `error_type`).

use crate::FastMap;
use std::fmt::Write;
use std::sync::Mutex;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::Duration;

use crate::chat::Usage;

const MAX_SERIES: usize = 2000;
/// Seconds.
const LATENCY_BUCKETS: [f64; 14] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0,
];
const ATTEMPT_BUCKETS: [f64; 5] = [1.0, 2.0, 3.0, 5.0, 8.0];
/// The GenAI conventions' boundaries: tokens, operation seconds, seconds to
/// the first chunk.
const TOKEN_BUCKETS: [f64; 14] = [
    1.0, 4.0, 16.0, 64.0, 256.0, 1024.0, 4096.0, 16384.0, 65536.0, 262144.0, 1048576.0, 4194304.0,
    16777216.0, 67108864.0,
];
const OPERATION_BUCKETS: [f64; 14] = [
    0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92,
];
const FIRST_CHUNK_BUCKETS: [f64; 16] = [
    0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
];
/// GenAI (operation, provider, model) series kept; past it a new model is
/// `other`.
const MAX_GENAI_SERIES: usize = 500;

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

/// What is counted for one served provider and model.
#[derive(Debug, Default)]
struct Series {
    /// By status and cache status.
    requests: FastMap<(u16, &'static str), u64>,
    /// Input, output, cached, reasoning.
    tokens: [u64; 4],
    cost: f64,
    /// Whether tokens were ever counted (only then are they rendered).
    counted: bool,
}

const TOKEN_KINDS: [&str; 4] = ["input", "output", "cached", "reasoning"];

/// Series by provider, then model: looked up by `&str` at each level, so a
/// request that counts into existing series allocates nothing.
#[derive(Debug, Default)]
struct Registry {
    series: FastMap<String, FastMap<String, Series>>,
    /// Provider/model pairs in `series`.
    pairs: usize,
    latency: FastMap<String, Histogram>,
    ttft: FastMap<String, Histogram>,
    attempts: Histogram,
    /// GenAI series by (operation, provider), then model: found by `&str`
    /// like the others, their labels written only when rendered.
    genai: FastMap<(&'static str, &'static str), FastMap<String, GenAiSeries>>,
    /// Models in `genai`, over every (operation, provider).
    genai_models: usize,
}

/// The GenAI histograms of one operation, provider and model.
#[derive(Debug, Default)]
struct GenAiSeries {
    /// Input, output.
    tokens: [Histogram; 2],
    /// Calls that succeeded.
    duration: Histogram,
    /// Calls that failed, by error type.
    errors: FastMap<String, Histogram>,
    first_chunk: Histogram,
}

/// One model call, as the GenAI client metrics see it.
pub struct GenAi<'a> {
    /// `chat`, `embeddings`.
    pub operation: &'static str,
    /// `gen_ai.provider.name`: `openai`, `anthropic`, `gcp.gemini`...
    pub provider: &'static str,
    pub model: &'a str,
    pub duration: Duration,
    /// Streams only.
    pub first_chunk: Option<Duration>,
    pub usage: Option<&'a Usage>,
    /// The error class, when it failed.
    pub error: Option<&'a str>,
}

impl Registry {
    /// The series for `provider`/`model`; past [`MAX_SERIES`] pairs a new
    /// model counts as `other`.
    fn series(&mut self, provider: &str, model: &str) -> &mut Series {
        if !self.series.contains_key(provider) {
            self.series.insert(provider.to_owned(), FastMap::default());
        }
        let full = self.pairs >= MAX_SERIES;
        let Some(models) = self.series.get_mut(provider) else {
            unreachable!("inserted above")
        };
        let model = if full && !models.contains_key(model) {
            "other"
        } else {
            model
        };
        if !models.contains_key(model) {
            self.pairs += 1;
            models.insert(model.to_owned(), Series::default());
        }
        let Some(series) = models.get_mut(model) else {
            unreachable!("inserted above")
        };
        series
    }
}

/// Observes `v` in `key`'s histogram (at most 64 keys).
fn observe_in(map: &mut FastMap<String, Histogram>, key: &str, v: f64) {
    if let Some(h) = map.get_mut(key) {
        h.observe(&LATENCY_BUCKETS, v);
    } else if map.len() < 64 {
        let mut h = Histogram::default();
        h.observe(&LATENCY_BUCKETS, v);
        map.insert(key.to_owned(), h);
    }
}

#[derive(Debug, Default)]
pub struct Metrics {
    reg: Mutex<Registry>,
    open_streams: AtomicI64,
    /// Answers with usage but no price (cost null, not 0).
    unpriced: AtomicU64,
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
        let provider = provider.unwrap_or("none");
        let mut r = self.lock();
        *r.series(provider, model.unwrap_or("none"))
            .requests
            .entry((status, cache))
            .or_default() += 1;
        observe_in(&mut r.latency, provider, latency.as_secs_f64());
        if let Some(t) = ttft {
            observe_in(&mut r.ttft, provider, t.as_secs_f64());
        }
    }

    pub fn tokens(&self, provider: &str, model: &str, u: &Usage, cost: Option<f64>) {
        if cost.is_none() {
            self.unpriced.fetch_add(1, Ordering::Relaxed);
        }
        let mut r = self.lock();
        let s = r.series(provider, model);
        for (slot, n) in s.tokens.iter_mut().zip([
            u.input_tokens,
            u.output_tokens,
            u.cached_input_tokens,
            u.reasoning_tokens,
        ]) {
            *slot = slot.saturating_add(n);
        }
        s.cost += cost.unwrap_or(0.0);
        s.counted = true;
    }

    /// A model call in the OpenTelemetry GenAI client metrics.
    pub fn genai(&self, g: &GenAi<'_>) {
        let mut guard = self.lock();
        let r = &mut *guard;
        let models = r.genai.entry((g.operation, g.provider)).or_default();
        let model = if r.genai_models >= MAX_GENAI_SERIES && !models.contains_key(g.model) {
            "other"
        } else {
            g.model
        };
        if !models.contains_key(model) {
            models.insert(model.to_owned(), GenAiSeries::default());
            r.genai_models += 1;
        }
        let Some(s) = models.get_mut(model) else {
            unreachable!("inserted above")
        };
        if let Some(u) = g.usage {
            s.tokens[0].observe(&TOKEN_BUCKETS, u.input_tokens as f64);
            s.tokens[1].observe(&TOKEN_BUCKETS, u.output_tokens as f64);
        }
        let duration = match g.error {
            None => &mut s.duration,
            Some(e) => {
                if !s.errors.contains_key(e) {
                    s.errors.insert(e.to_owned(), Histogram::default());
                }
                let Some(h) = s.errors.get_mut(e) else {
                    unreachable!("inserted above")
                };
                h
            }
        };
        duration.observe(&OPERATION_BUCKETS, g.duration.as_secs_f64());
        if let Some(t) = g.first_chunk {
            s.first_chunk.observe(&FIRST_CHUNK_BUCKETS, t.as_secs_f64());
        }
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
        let mut pairs: Vec<(&String, &String, &Series)> = r
            .series
            .iter()
            .flat_map(|(p, models)| models.iter().map(move |(m, s)| (p, m, s)))
            .collect();
        pairs.sort_by(|a, b| (a.0, a.1).cmp(&(b.0, b.1)));
        for (p, m, series) in &pairs {
            let mut rows: Vec<_> = series.requests.iter().collect();
            rows.sort();
            for ((s, c), n) in rows {
                let _ = writeln!(
                    out,
                    "switchyard_requests_total{{provider=\"{}\",model=\"{}\",status=\"{s}\",cache=\"{c}\"}} {n}",
                    esc(p),
                    esc(m)
                );
            }
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
        for (p, m, series) in pairs.iter().filter(|x| x.2.counted) {
            for (k, n) in TOKEN_KINDS.iter().zip(series.tokens) {
                let _ = writeln!(
                    out,
                    "switchyard_tokens_total{{provider=\"{}\",model=\"{}\",kind=\"{k}\"}} {n}",
                    esc(p),
                    esc(m)
                );
            }
        }
        out.push_str("# HELP switchyard_cost_usd_total Cost in US dollars at the price table.\n# TYPE switchyard_cost_usd_total counter\n");
        for (p, m, series) in pairs.iter().filter(|x| x.2.counted) {
            let _ = writeln!(
                out,
                "switchyard_cost_usd_total{{provider=\"{}\",model=\"{}\"}} {}",
                esc(p),
                esc(m),
                series.cost
            );
        }
        let _ = writeln!(
            out,
            "# HELP switchyard_unpriced_total Answers whose model has no price (their cost is null, not 0).\n# TYPE switchyard_unpriced_total counter\nswitchyard_unpriced_total {}",
            self.unpriced.load(Ordering::Relaxed)
        );
        out.push_str("# HELP switchyard_attempts Upstream attempts per request.\n# TYPE switchyard_attempts histogram\n");
        r.attempts
            .render(&mut out, "switchyard_attempts", "", &ATTEMPT_BUCKETS);
        render_genai(&mut out, &r.genai);
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

/// The GenAI histograms, their label sets written here.
fn render_genai(
    out: &mut String,
    genai: &FastMap<(&'static str, &'static str), FastMap<String, GenAiSeries>>,
) {
    let mut all: Vec<(String, &GenAiSeries)> = genai
        .iter()
        .flat_map(|((op, provider), models)| {
            models.iter().map(move |(model, s)| {
                let base = format!(
                    "gen_ai_operation_name=\"{op}\",gen_ai_provider_name=\"{provider}\",gen_ai_response_model=\"{}\"",
                    esc(model)
                );
                (base, s)
            })
        })
        .collect();
    all.sort_by(|a, b| a.0.cmp(&b.0));
    let head = |out: &mut String, name: &str, help: &str| {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} histogram");
    };
    let name = "gen_ai_client_token_usage";
    head(
        out,
        name,
        "Number of input and output tokens used (OpenTelemetry gen_ai.client.token.usage).",
    );
    for (base, s) in &all {
        for (kind, h) in ["input", "output"].iter().zip(&s.tokens) {
            if h.count > 0 {
                let labels = format!("{base},gen_ai_token_type=\"{kind}\"");
                h.render(out, name, &labels, &TOKEN_BUCKETS);
            }
        }
    }
    let name = "gen_ai_client_operation_duration_seconds";
    head(
        out,
        name,
        "GenAI operation duration (OpenTelemetry gen_ai.client.operation.duration).",
    );
    for (base, s) in &all {
        if s.duration.count > 0 {
            s.duration.render(out, name, base, &OPERATION_BUCKETS);
        }
        for (error, h) in sorted(&s.errors) {
            let labels = format!("{base},error_type=\"{}\"", esc(error));
            h.render(out, name, &labels, &OPERATION_BUCKETS);
        }
    }
    let name = "gen_ai_client_operation_time_to_first_chunk_seconds";
    head(
        out,
        name,
        "Time to the first chunk of a stream (OpenTelemetry gen_ai.client.operation.time_to_first_chunk).",
    );
    for (base, s) in &all {
        if s.first_chunk.count > 0 {
            s.first_chunk.render(out, name, base, &FIRST_CHUNK_BUCKETS);
        }
    }
}

fn sorted(m: &FastMap<String, Histogram>) -> Vec<(&String, &Histogram)> {
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
        m.tokens("p", "unknown", &Usage::default(), None);
        let text = m.render("");
        assert!(text.contains("switchyard_unpriced_total 1"), "{text}");
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
        assert!(m.lock().pairs <= MAX_SERIES + 1);
        assert!(m.render("").contains("model=\"other\",status=\"404\""));
    }

    #[test]
    fn genai_client_metrics_follow_the_conventions_and_stay_bounded() {
        let m = Metrics::default();
        let usage = Usage {
            input_tokens: 20,
            output_tokens: 3,
            ..Default::default()
        };
        m.genai(&GenAi {
            operation: "chat",
            provider: "openai",
            model: "gpt-5",
            duration: Duration::from_millis(300),
            first_chunk: Some(Duration::from_millis(30)),
            usage: Some(&usage),
            error: None,
        });
        m.genai(&GenAi {
            operation: "chat",
            provider: "anthropic",
            model: "claude",
            duration: Duration::from_millis(50),
            first_chunk: None,
            usage: None,
            error: Some("rate_limited"),
        });
        let text = m.render("");
        let base = "gen_ai_operation_name=\"chat\",gen_ai_provider_name=\"openai\",gen_ai_response_model=\"gpt-5\"";
        assert!(
            text.contains("# TYPE gen_ai_client_token_usage histogram"),
            "{text}"
        );
        assert!(
            text.contains(&format!(
                "gen_ai_client_token_usage_bucket{{{base},gen_ai_token_type=\"input\",le=\"64\"}} 1"
            )),
            "{text}"
        );
        assert!(
            text.contains(&format!(
                "gen_ai_client_token_usage_bucket{{{base},gen_ai_token_type=\"input\",le=\"16\"}} 0"
            )),
            "{text}"
        );
        assert!(
            text.contains(&format!(
                "gen_ai_client_token_usage_sum{{{base},gen_ai_token_type=\"output\"}} 3"
            )),
            "{text}"
        );
        assert!(
            text.contains(&format!(
                "gen_ai_client_operation_duration_seconds_bucket{{{base},le=\"0.32\"}} 1"
            )),
            "{text}"
        );
        assert!(
            text.contains(&format!(
                "gen_ai_client_operation_time_to_first_chunk_seconds_bucket{{{base},le=\"0.04\"}} 1"
            )),
            "{text}"
        );
        assert!(text.contains("gen_ai_provider_name=\"anthropic\",gen_ai_response_model=\"claude\",error_type=\"rate_limited\",le=\"0.08\"} 1"), "{text}");
        for i in 0..(MAX_GENAI_SERIES + 20) {
            m.genai(&GenAi {
                operation: "chat",
                provider: "openai",
                model: &format!("made-up-{i}"),
                duration: Duration::from_millis(1),
                first_chunk: None,
                usage: None,
                error: None,
            });
        }
        assert!(m.lock().genai_models <= MAX_GENAI_SERIES + 1);
        assert!(m.render("").contains("gen_ai_response_model=\"other\""));
    }
}
