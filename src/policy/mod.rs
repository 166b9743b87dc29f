//! Policy: who may call the gateway, and how much (limits and budgets).

mod browser;
mod keys;
mod rate;

pub use browser::BrowserPolicy;
pub use keys::{sha256_hex, GatewayKeys, KeyCheck};
pub use rate::{
    duration_string, retry_after_secs, Bucket, RateError, RateRefusal, RateState, MINUTE_NS,
};
