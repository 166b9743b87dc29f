//! What tokens cost, in the integer micro-dollars budgets count in.
//!
//! Prices are per million tokens (as providers publish them), held as micro-dollars per
//! million tokens so that `$0.15 / 1M` is exact. A cost is rounded *up* to the micro-dollar,
//! so a worst case is never underestimated.

use super::budget::{usd_to_micros, BadAmount};

const MTOK: u128 = 1_000_000;

/// A model's price, in micro-dollars per million tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Price {
    /// Prompt tokens.
    pub input: u64,
    /// Prompt tokens served from the provider's prompt cache.
    pub cached_input: u64,
    /// Output tokens.
    pub output: u64,
}

impl Price {
    /// A price from the config's USD per 1M tokens (`cached_input` defaults to `input`).
    pub fn from_usd(input: f64, output: f64, cached_input: Option<f64>) -> Result<Self, BadAmount> {
        let input = usd_to_micros(input)?;
        Ok(Self {
            input,
            output: usd_to_micros(output)?,
            cached_input: cached_input
                .map(usd_to_micros)
                .transpose()?
                .unwrap_or(input),
        })
    }

    /// The worst-case cost of `input` prompt tokens (none cached).
    pub fn input_cost(&self, input: u64) -> u64 {
        cost(input, self.input)
    }

    /// The cost of `output` output tokens.
    pub fn output_cost(&self, output: u64) -> u64 {
        cost(output, self.output)
    }

    /// The actual cost of a call from its usage (`cached` is part of `input`).
    pub fn cost(&self, input: u64, cached: u64, output: u64) -> u64 {
        let cached = cached.min(input);
        let micro_mtok = u128::from(input - cached) * u128::from(self.input)
            + u128::from(cached) * u128::from(self.cached_input)
            + u128::from(output) * u128::from(self.output);
        saturate(micro_mtok.div_ceil(MTOK))
    }

    /// The cost's parts in micro-dollars: uncached input, output, cached input (each rounded
    /// up, so they may add to a micro-dollar more than [`Price::cost`]).
    pub fn parts(&self, input: u64, cached: u64, output: u64) -> (u64, u64, u64) {
        let cached = cached.min(input);
        let part = |tokens: u64, price: u64| {
            saturate((u128::from(tokens) * u128::from(price)).div_ceil(MTOK))
        };
        (
            part(input - cached, self.input),
            part(output, self.output),
            part(cached, self.cached_input),
        )
    }

    /// The most output tokens `micros` pays for; `None` when output is free.
    pub fn output_tokens_for(&self, micros: u64) -> Option<u64> {
        if self.output == 0 {
            return None;
        }
        Some(saturate(
            u128::from(micros) * MTOK / u128::from(self.output),
        ))
    }
}

fn cost(tokens: u64, per_mtok: u64) -> u64 {
    saturate((u128::from(tokens) * u128::from(per_mtok)).div_ceil(MTOK))
}

fn saturate(v: u128) -> u64 {
    u64::try_from(v).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn costs_round_up_and_token_counts_round_down() {
        let p = Price::from_usd(0.15, 0.60, Some(0.075)).unwrap();
        assert_eq!(p.input, 150_000);
        assert_eq!(p.input_cost(1_000_000), 150_000);
        assert_eq!(p.input_cost(1), 1, "a fraction of a micro-dollar rounds up");
        assert_eq!(p.output_cost(1000), 600);
        assert_eq!(p.cost(1000, 400, 1000), 90 + 30 + 600);
        assert_eq!(p.output_tokens_for(600), Some(1000));
        assert_eq!(p.output_tokens_for(599), Some(998));
        // What the count pays for never costs more than the amount.
        for m in [0, 1, 7, 599, 12_345] {
            let n = p.output_tokens_for(m).unwrap();
            assert!(p.output_cost(n) <= m);
        }
        assert_eq!(Price::default().output_tokens_for(10), None);
        assert_eq!(
            Price::from_usd(1.0, 2.0, None).unwrap().cached_input,
            1_000_000
        );
    }
}
