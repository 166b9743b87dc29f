//! Policy: who may call the gateway (and later: limits, budgets, guardrails).

mod keys;

pub use keys::{sha256_hex, GatewayKeys, KeyCheck};
