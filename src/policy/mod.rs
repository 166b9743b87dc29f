//! Policy: who may call the gateway, and how much (limits and budgets).

mod browser;
mod budget;
mod keys;
mod price;
mod rate;
mod window;

pub use browser::BrowserPolicy;
pub use budget::{
    usd_to_micros, BadAmount, Budget, BudgetRefusal, BudgetReservation, BudgetUsage, MICROS_PER_USD,
};
pub use keys::{sha256_hex, GatewayKeys, KeyCheck};
pub use price::Price;
pub use rate::{
    duration_string, retry_after_secs, Bucket, RateError, RateRefusal, RateState, MINUTE_NS,
};
pub use window::{UnknownWindow, Window};
