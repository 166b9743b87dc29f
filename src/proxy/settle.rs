//! Settling what admission reserved, once the request's end is known: the call's real
//! usage and cost are charged (never more than the reservation against a budget), a call
//! that was never made gives everything back, and the record gets the cost.

use super::phases::micros_to_usd;
use super::session::Session;
use crate::observe::CostParts;
use crate::policy::{Governor, Price, Used};
use crate::wire::Usage;

/// What a call cost in micro-dollars from its usage: uncached and cached prompt tokens,
/// prompt-cache writes (charged as uncached input) and output.
pub fn cost_micros(price: &Price, u: &Usage) -> u64 {
    price.cost(u.prompt_tokens(), u.cache_read_tokens, u.output_tokens)
}

/// The parts of a call's cost for the record.
fn cost_parts(price: &Price, u: &Usage) -> CostParts {
    let (input, output, cached) =
        price.parts(u.prompt_tokens(), u.cache_read_tokens, u.output_tokens);
    CostParts {
        input_usd: micros_to_usd(input),
        output_usd: micros_to_usd(output),
        cached_usd: micros_to_usd(cached),
    }
}

/// Settles or releases the session's admission and notes the cost in the record.
pub fn settle(s: &mut Session<'_>) {
    let priced = s.price.zip(s.usage).map(|(p, u)| cost_micros(&p, &u));
    s.record.cost = s.price.zip(s.usage).map(|(p, u)| cost_parts(&p, &u));
    let priced = with_discarded(s, priced);
    let Some(admission) = s.admission.take() else {
        s.record.cost_usd = priced.map(micros_to_usd);
        if let Some(ticket) = &s.run {
            let tokens = s.usage.map_or(0, |u| u.prompt_tokens() + u.output_tokens);
            ticket.used(tokens, priced.unwrap_or(0));
        }
        return;
    };
    let governor = &*s.ctx.governor;
    let used = match used(
        s,
        priced,
        admission.reserved_tokens,
        admission.reserved_micros,
    ) {
        Some(used) => used,
        None => {
            governor.release(admission);
            return;
        }
    };
    let settled = governor.settle(admission, used, governor.now());
    s.record.cost_usd = Some(micros_to_usd(settled.cost_micros));
    if let Some(ticket) = &s.run {
        ticket.used(used.tokens, settled.cost_micros);
    }
}

/// Adds the answers thrown away for failing their JSON schema to the usage and the cost:
/// the provider was paid for them.
fn with_discarded(s: &mut Session<'_>, priced: Option<u64>) -> Option<u64> {
    let d = s.discarded;
    if !d.any() {
        return priced;
    }
    let mut usage = s.usage.unwrap_or_default();
    usage += d.usage;
    s.usage = Some(usage);
    s.record.set_usage(Some(usage));
    Some(priced.unwrap_or(0) + d.cost_micros)
}

/// What the request used; `None` when no provider ran it (everything goes back).
fn used(s: &Session<'_>, priced: Option<u64>, tokens: u64, micros: u64) -> Option<Used> {
    let reservation = Used {
        tokens,
        cost_micros: micros,
    };
    if matches!(s.record.cache, Some("hit" | "semantic")) {
        // Served from memory: the request counts, no tokens or money were spent.
        return Some(Used {
            tokens: 0,
            cost_micros: 0,
        });
    }
    if s.record.provider.is_none() && !s.discarded.any() {
        // No provider's answer was taken. A call cut off (the client left, the run was
        // killed) while the provider worked on it may still be billed: charge it as reserved.
        let cut_off =
            s.record.attempts.last().is_some_and(|a| {
                matches!(a.error.as_deref(), Some("client_closed" | "run_killed"))
            });
        return cut_off.then_some(reservation);
    }
    Some(match s.usage {
        Some(u) => Used {
            tokens: u.prompt_tokens().saturating_add(u.output_tokens),
            cost_micros: priced.unwrap_or(micros),
        },
        // An answer (or a stream cut short) without usage: assume the worst.
        None if s.record.status < 300 || s.record.status == 499 => reservation,
        // The provider refused the call: nothing was generated.
        None => Used {
            tokens: 0,
            cost_micros: 0,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cost_counts_cached_and_output_tokens_at_their_prices() {
        let p = Price {
            input: 1_000_000,
            cached_input: 100_000,
            output: 2_000_000,
        };
        let u = Usage {
            input_tokens: 1_000,
            output_tokens: 500,
            cache_read_tokens: 10_000,
            cache_creation_tokens: 0,
        };
        // 1000 × $1/M + 10000 × $0.1/M + 500 × $2/M = 1000 + 1000 + 1000 µ$.
        assert_eq!(cost_micros(&p, &u), 3_000);
    }
}
