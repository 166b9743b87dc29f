//! What each provider model costs: a built-in table of current list prices for the named
//! provider kinds, under the config's `[pricing]` overrides.
//!
//! Lookups are by the provider's model name (a target's `model`). A dated snapshot
//! (`gpt-4o-mini-2024-07-18`, `claude-3-5-haiku-20241022`) or `-latest` alias is priced as its
//! family when it has no entry of its own.

use crate::FastMap;

use super::budget::BadAmount;
use super::price::Price;
use crate::config::PriceConfig;

/// A model's price and, when known, its own most output tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ModelPrice {
    /// Micro-dollars per million tokens.
    pub price: Price,
    /// The most output tokens the model produces in one call.
    pub max_output_tokens: Option<u64>,
}

/// List prices in USD per 1M tokens: model, input, cached input, output, max output tokens.
/// Prices change: `[pricing]` in the config overrides any of these.
const BUILT_IN: &[(&str, f64, f64, f64, u64)] = &[
    // OpenAI
    ("gpt-5", 1.25, 0.125, 10.0, 128_000),
    ("gpt-5-mini", 0.25, 0.025, 2.0, 128_000),
    ("gpt-5-nano", 0.05, 0.005, 0.40, 128_000),
    ("gpt-4.1", 2.0, 0.50, 8.0, 32_768),
    ("gpt-4.1-mini", 0.40, 0.10, 1.60, 32_768),
    ("gpt-4.1-nano", 0.10, 0.025, 0.40, 32_768),
    ("gpt-4o", 2.50, 1.25, 10.0, 16_384),
    ("gpt-4o-mini", 0.15, 0.075, 0.60, 16_384),
    ("o3", 2.0, 0.50, 8.0, 100_000),
    ("o3-mini", 1.10, 0.55, 4.40, 100_000),
    ("o4-mini", 1.10, 0.275, 4.40, 100_000),
    ("text-embedding-3-small", 0.02, 0.02, 0.0, 0),
    ("text-embedding-3-large", 0.13, 0.13, 0.0, 0),
    ("text-embedding-ada-002", 0.10, 0.10, 0.0, 0),
    // Anthropic (cached input: cache reads)
    ("claude-opus-4-1", 15.0, 1.50, 75.0, 32_000),
    ("claude-opus-4-0", 15.0, 1.50, 75.0, 32_000),
    ("claude-sonnet-4-5", 3.0, 0.30, 15.0, 64_000),
    ("claude-sonnet-4-0", 3.0, 0.30, 15.0, 64_000),
    ("claude-haiku-4-5", 1.0, 0.10, 5.0, 64_000),
    ("claude-3-7-sonnet", 3.0, 0.30, 15.0, 64_000),
    ("claude-3-5-sonnet", 3.0, 0.30, 15.0, 8_192),
    ("claude-3-5-haiku", 0.80, 0.08, 4.0, 8_192),
    ("claude-3-haiku", 0.25, 0.03, 1.25, 4_096),
    // Google Gemini (prompts up to 200k tokens)
    ("gemini-2.5-pro", 1.25, 0.31, 10.0, 65_536),
    ("gemini-2.5-flash", 0.30, 0.075, 2.50, 65_536),
    ("gemini-2.5-flash-lite", 0.10, 0.025, 0.40, 65_536),
    ("gemini-2.0-flash", 0.10, 0.025, 0.40, 8_192),
];

/// Prices by provider model name.
#[derive(Debug, Clone, Default)]
pub struct Prices {
    by_model: FastMap<String, ModelPrice>,
}

impl Prices {
    /// The built-in table with `overrides` (the config's `[pricing]`) on top.
    pub fn compile<'a>(
        overrides: impl IntoIterator<Item = (&'a String, &'a PriceConfig)>,
    ) -> Result<Self, (String, BadAmount)> {
        let mut by_model = FastMap::default();
        for &(model, input, cached, output, max_out) in BUILT_IN {
            let price =
                Price::from_usd(input, output, Some(cached)).map_err(|e| (model.to_string(), e))?;
            let max_output_tokens = (max_out > 0).then_some(max_out);
            by_model.insert(
                model.to_string(),
                ModelPrice {
                    price,
                    max_output_tokens,
                },
            );
        }
        for (model, p) in overrides {
            let price = Price::from_usd(p.input, p.output, p.cached_input)
                .map_err(|e| (model.clone(), e))?;
            let inherited = by_model.get(model).and_then(|m| m.max_output_tokens);
            by_model.insert(
                model.clone(),
                ModelPrice {
                    price,
                    max_output_tokens: p.max_output_tokens.or(inherited),
                },
            );
        }
        Ok(Self { by_model })
    }

    /// The price of `model`, or of its family when `model` is a dated snapshot of it.
    pub fn get(&self, model: &str) -> Option<&ModelPrice> {
        if let Some(p) = self.by_model.get(model) {
            return Some(p);
        }
        let family = snapshot_family(model)?;
        self.by_model.get(family)
    }
}

/// `gpt-4o-2024-08-06` → `gpt-4o`, `claude-3-5-haiku-20241022` → `claude-3-5-haiku`,
/// `claude-3-5-sonnet-latest` → `claude-3-5-sonnet`.
fn snapshot_family(model: &str) -> Option<&str> {
    if let Some(family) = model.strip_suffix("-latest") {
        return Some(family);
    }
    let bytes = model.as_bytes();
    let digits = |s: &[u8]| !s.is_empty() && s.iter().all(u8::is_ascii_digit);
    // -YYYYMMDD
    if let Some(cut) = model.len().checked_sub(9) {
        if bytes.get(cut) == Some(&b'-') && bytes.get(cut + 1..).is_some_and(digits) {
            return model.get(..cut);
        }
    }
    // -YYYY-MM-DD
    if let Some(cut) = model.len().checked_sub(11) {
        let tail = bytes.get(cut..)?;
        let shape = tail.len() == 11
            && tail.first() == Some(&b'-')
            && tail.get(5) == Some(&b'-')
            && tail.get(8) == Some(&b'-')
            && tail.get(1..5).is_some_and(digits)
            && tail.get(6..8).is_some_and(digits)
            && tail.get(9..11).is_some_and(digits);
        if shape {
            return model.get(..cut);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snapshots_are_priced_as_their_family() {
        let p = Prices::compile([]).unwrap();
        let mini = p.get("gpt-4o-mini").unwrap();
        assert_eq!(p.get("gpt-4o-mini-2024-07-18"), Some(mini));
        assert_eq!(mini.price.input, 150_000);
        assert_eq!(mini.max_output_tokens, Some(16_384));
        assert!(p.get("claude-3-5-haiku-20241022").is_some());
        assert!(p.get("claude-3-5-sonnet-latest").is_some());
        // A different model that merely starts like a known one is not priced as it.
        assert!(p.get("gpt-4o-audio-preview").is_none());
        assert!(p.get("gpt-4o-2024").is_none());
        assert!(p.get("mock-1").is_none());
    }

    #[test]
    fn the_config_overrides_and_adds() {
        let over = [
            (
                "gpt-4o-mini".to_string(),
                PriceConfig {
                    input: 1.0,
                    output: 2.0,
                    cached_input: None,
                    max_output_tokens: None,
                },
            ),
            (
                "mock-1".to_string(),
                PriceConfig {
                    input: 1.0,
                    output: 1.0,
                    cached_input: Some(0.5),
                    max_output_tokens: Some(100),
                },
            ),
        ];
        let p = Prices::compile(over.iter().map(|(k, v)| (k, v))).unwrap();
        let mini = p.get("gpt-4o-mini").unwrap();
        assert_eq!(mini.price.input, 1_000_000);
        assert_eq!(mini.price.cached_input, 1_000_000);
        // The model's own output cap stays when only the price is overridden.
        assert_eq!(mini.max_output_tokens, Some(16_384));
        assert_eq!(p.get("mock-1").unwrap().max_output_tokens, Some(100));
        let bad = [(
            "x".to_string(),
            PriceConfig {
                input: -1.0,
                output: 1.0,
                cached_input: None,
                max_output_tokens: None,
            },
        )];
        assert_eq!(
            Prices::compile(bad.iter().map(|(k, v)| (k, v)))
                .unwrap_err()
                .0,
            "x"
        );
    }
}
