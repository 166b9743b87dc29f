//! Policy: who may call the gateway, and how much (limits and budgets).
//!
//! Limits and budgets sit behind [`Governor`] (admit, settle, release, read); the default
//! [`LocalGovernor`] keeps its counters in this process, lock-free.

mod browser;
mod budget;
mod governance;
mod governor;
mod keys;
mod local;
mod price;
mod pricing;
mod rate;
mod runs;
mod store;
mod tenancy;
mod window;

pub use browser::BrowserPolicy;
pub use budget::{
    usd_to_micros, BadAmount, Budget, BudgetRefusal, BudgetReservation, BudgetUsage, MICROS_PER_USD,
};
pub use governance::{key_profile, limits, Governance};
pub use governor::{
    Admission, AdmitError, Ask, Governor, Now, Refusal, Rule, Scope, Settled, Usage, Used,
};
pub use keys::{sha256_hex, GatewayKeys, KeyCheck};
pub use local::{
    BudgetRule, GovernorError, GovernorRules, KeyRules, Limits, LocalGovernor, RunBudget,
};
pub use price::Price;
pub use pricing::{ModelPrice, Prices};
pub use rate::{
    duration_string, retry_after_secs, Bucket, RateError, RateRefusal, RateState, MINUTE_NS,
};
pub use runs::{
    Fingerprint, RunRefusal, RunRegistry, RunRules, RunState, RunTicket, RunView, MAX_RUN_ID,
};
pub use store::{SpendRow, Store, StoreError, StoredKey, StoredTenant};
pub use tenancy::{AccessProfile, BadPattern, ProfileParts, Tenancy};
pub use window::{UnknownWindow, Window};
