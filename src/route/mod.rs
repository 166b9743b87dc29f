//! Routing: the immutable [`RouteTable`] compiled from a [`Config`], and the lock-free
//! [`SharedRouteTable`] that shards read on every request and reloads swap whole. A table is
//! pure data: connectors, resolved addresses and credentials live in the upstream registry.
//!
//! Nothing in a table changes after it is built. Anything that must survive a swap
//! (connection pools, resolved addresses) is keyed by stable names outside the table.

mod headers;
mod health;
mod provider;
mod retry;
mod table;

pub use headers::HeaderAllowList;
pub use health::{
    exhausted_for, retry_after, AttemptResult, Availability, EjectPolicy, RouteHealth,
};
pub use provider::{CredentialRef, Provider, ProviderAddr, Scheme};
pub use retry::{RetryBudgets, RetryPolicy};
pub use table::{
    fnv1a, AttemptPlan, Capabilities, ModelRoute, Needs, OutputRules, PlanInput, RequestFacts,
    RouteCache, RouteRule, RouteTable, SharedRouteTable, Target,
};
