//! Policy: who may call the gateway (and later: limits, budgets, guardrails).

mod browser;
mod keys;

pub use browser::BrowserPolicy;
pub use keys::{sha256_hex, GatewayKeys, KeyCheck};
