//! Prices: the shipped table (`data/prices.json`, USD per million tokens,
//! generated from public sources by `scripts/gen-prices.py`) with the
//! configuration's `[pricing."provider/model"]` overrides on top.
//!
//! A model without a price has no cost (`None`), never a cost of zero.
//! Cached input tokens are priced once, at the cached rate. Web searches a
//! provider runs itself are priced by the search, where the price is known
//! (see [`WEB_SEARCH_PER_1K_USD`]).

use std::collections::HashMap;

use serde::Deserialize;

use crate::chat::Usage;
use crate::config::RawPrice;

/// USD per million tokens for one model.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Price {
    pub input: f64,
    pub output: f64,
    #[serde(default)]
    pub cached_input: Option<f64>,
    #[serde(default)]
    pub cache_write: Option<f64>,
    #[serde(default)]
    pub max_output_tokens: Option<u32>,
    /// USD per 1,000 web searches the provider runs.
    #[serde(default)]
    pub web_search_per_1k: Option<f64>,
}

/// What providers bill per 1,000 web searches, by the shipped table's key
/// prefix; the shipped table itself holds token prices only.
///
/// Anthropic's web search tool costs $10 per 1,000 searches on every model
/// (its pricing page, "Web search tool"), counted in
/// `usage.server_tool_use.web_search_requests`. Google bills grounding
/// with Google Search per grounded prompt or per query past a free daily
/// allowance, and reports neither in a response: a Gemini call's searches
/// stay unpriced, as does OpenAI's native search (its usage has no count).
pub const WEB_SEARCH_PER_1K_USD: &[(&str, f64)] = &[("anthropic/", 10.0)];

impl Price {
    /// What `usage` costs. Input tokens split into uncached, cache reads and
    /// cache writes, each priced once at its own rate (a missing rate falls
    /// back to the input rate).
    pub fn cost(&self, u: &Usage) -> f64 {
        let cached = u.cached_input_tokens.min(u.input_tokens);
        let written = u.cache_write_tokens.min(u.input_tokens - cached);
        let plain = u.input_tokens - cached - written;
        let per = |tokens: u64, rate: f64| tokens as f64 * rate / 1_000_000.0;
        per(plain, self.input)
            + per(cached, self.cached_input.unwrap_or(self.input))
            + per(written, self.cache_write.unwrap_or(self.input))
            + per(u.output_tokens, self.output)
            + u.web_search_requests as f64 * self.web_search_per_1k.unwrap_or(0.0) / 1_000.0
    }

    /// Input and output rates together, for ordering targets by price.
    pub fn rank(&self) -> f64 {
        self.input + self.output
    }
}

impl From<RawPrice> for Price {
    fn from(r: RawPrice) -> Price {
        Price {
            input: r.input_per_mtok_usd,
            output: r.output_per_mtok_usd,
            cached_input: r.cached_input_per_mtok_usd,
            cache_write: r.cache_write_per_mtok_usd,
            max_output_tokens: r.max_output_tokens,
            web_search_per_1k: r.web_search_per_1k_usd,
        }
    }
}

#[derive(Debug, Clone)]
pub struct PriceTable {
    /// The shipped table's version, recorded with each cost.
    pub version: String,
    prices: HashMap<String, Price>,
}

#[derive(Deserialize)]
struct File {
    version: String,
    models: HashMap<String, Price>,
}

impl PriceTable {
    /// The shipped table with `overrides` applied.
    pub fn load<'a>(overrides: impl IntoIterator<Item = (&'a String, &'a RawPrice)>) -> PriceTable {
        // JSON, not TOML: serde_json reads it into the table with little
        // else allocated, where the TOML parser's tokens and events for a
        // table this size took 3.6 MB (freed, but kept by the allocator:
        // about 3 MB of the idle process).
        let file: File = serde_json::from_str(include_str!("../data/prices.json"))
            .expect("data/prices.json is valid (checked by a unit test)");
        let mut prices = file.models;
        let mut version = file.version;
        let mut overridden = false;
        for (k, v) in overrides {
            prices.insert(k.clone(), Price::from(*v));
            overridden = true;
        }
        if overridden {
            version.push_str("+config");
        }
        for (key, price) in &mut prices {
            if price.web_search_per_1k.is_none() {
                price.web_search_per_1k = WEB_SEARCH_PER_1K_USD
                    .iter()
                    .find(|(prefix, _)| key.starts_with(prefix))
                    .map(|(_, usd)| *usd);
            }
        }
        PriceTable { version, prices }
    }

    /// The price of `provider/model`, if known.
    pub fn get(&self, provider: &str, model: &str) -> Option<&Price> {
        self.prices.get(&format!("{provider}/{model}"))
    }

    /// The price of `model` at `provider`: under the provider's own name,
    /// else under its kind's (the shipped table lists `bedrock/...`,
    /// `azure/...` and `vertex/...`, whatever a provider of that kind is
    /// named).
    ///
    /// A provider bound to a region (Bedrock) is priced by its region's
    /// entry first (`bedrock/eu-central-1/...`: regional premiums).
    pub fn for_provider(
        &self,
        provider: &crate::providers::Provider,
        model: &str,
    ) -> Option<&Price> {
        let name = provider.name();
        let kind = provider.kind().as_str();
        let regional = provider.config.region.as_deref().and_then(|r| {
            self.prices
                .get(&format!("{name}/{r}/{model}"))
                .or_else(|| self.prices.get(&format!("{kind}/{r}/{model}")))
        });
        regional
            .or_else(|| self.get(name, model))
            .or_else(|| self.get(kind, model))
    }

    pub fn len(&self) -> usize {
        self.prices.len()
    }

    pub fn is_empty(&self) -> bool {
        self.prices.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shipped_table_parses_and_covers_every_vendor() {
        let t = PriceTable::load([]);
        assert!(t.len() > 300, "{}", t.len());
        for p in [
            "openai",
            "anthropic",
            "google",
            "mistral",
            "deepseek",
            "groq",
            "xai",
            "moonshot",
            "dashscope",
            "azure",
            "bedrock",
            "vertex",
        ] {
            assert!(
                t.prices.keys().any(|k| k.starts_with(&format!("{p}/"))),
                "no prices for {p}"
            );
        }
        let gpt4o = t.get("openai", "gpt-4o").unwrap();
        assert_eq!(
            (gpt4o.input, gpt4o.output, gpt4o.cached_input),
            (2.5, 10.0, Some(1.25))
        );
    }

    #[test]
    fn cached_tokens_are_priced_once_at_the_cached_rate() {
        let p = Price {
            input: 3.0,
            output: 15.0,
            cached_input: Some(0.3),
            cache_write: Some(3.75),
            max_output_tokens: None,
            web_search_per_1k: None,
        };
        let u = Usage {
            input_tokens: 1_000_000,
            output_tokens: 100_000,
            cached_input_tokens: 400_000,
            cache_write_tokens: 100_000,
            reasoning_tokens: 50_000,
            web_search_requests: 0,
        };
        // 500k plain at 3.0, 400k cached at 0.3, 100k written at 3.75,
        // 100k output (reasoning included) at 15.0.
        let want = 1.5 + 0.12 + 0.375 + 1.5;
        assert!((p.cost(&u) - want).abs() < 1e-9, "{}", p.cost(&u));
    }

    #[test]
    fn overrides_replace_and_extend() {
        let raw = RawPrice {
            input_per_mtok_usd: 1.0,
            output_per_mtok_usd: 2.0,
            cached_input_per_mtok_usd: None,
            cache_write_per_mtok_usd: None,
            max_output_tokens: None,
            web_search_per_1k_usd: None,
        };
        let key = "local/qwen3-8b".to_string();
        let t = PriceTable::load([(&key, &raw)]);
        assert_eq!(t.get("local", "qwen3-8b").unwrap().output, 2.0);
        assert!(t.version.ends_with("+config"));
        assert!(t.get("local", "nope").is_none());
    }

    /// Anthropic bills its web search by the search, on every model; an
    /// operator's own price for an Anthropic model keeps that fee unless
    /// it names another.
    #[test]
    fn anthropic_web_searches_cost_ten_dollars_a_thousand() {
        let raw = RawPrice {
            input_per_mtok_usd: 3.0,
            output_per_mtok_usd: 15.0,
            cached_input_per_mtok_usd: None,
            cache_write_per_mtok_usd: None,
            max_output_tokens: None,
            web_search_per_1k_usd: None,
        };
        let key = "anthropic/claude-custom".to_string();
        let t = PriceTable::load([(&key, &raw)]);
        let u = Usage {
            input_tokens: 1_000,
            output_tokens: 100,
            web_search_requests: 3,
            ..Usage::default()
        };
        for model in ["claude-sonnet-4-5", "claude-custom"] {
            let p = t.get("anthropic", model).unwrap();
            let tokens = Usage {
                web_search_requests: 0,
                ..u
            };
            assert!(
                (p.cost(&u) - p.cost(&tokens) - 0.03).abs() < 1e-9,
                "{model}"
            );
        }
        let gemini = t.get("google", "gemini-2.5-flash").unwrap();
        assert_eq!(gemini.web_search_per_1k, None);
    }
}
