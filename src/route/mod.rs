//! Routing: the immutable [`RouteTable`] compiled from a [`Config`], and the lock-free
//! [`SharedRouteTable`] that shards read on every request and reloads swap whole. A table is
//! pure data: connectors, resolved addresses and credentials live in the upstream registry.
//!
//! Nothing in a table changes after it is built. Anything that must survive a swap
//! (connection pools, resolved addresses) is keyed by stable names outside the table; the
//! [`RouteState`] a table points to (each provider's attempts in flight, the board of
//! targets' health) is shared by every table the process compiles.

mod board;
mod headers;
mod health;
mod load;
mod provider;
mod retry;
mod table;

pub use board::{
    BenchReason, HealthBoard, ShardHealthView, TargetHealth, TargetSnapshot, TargetState,
};
pub use headers::HeaderAllowList;
pub use health::{
    exhausted_for, retry_after, AttemptResult, Availability, EjectPolicy, Publish, RouteHealth,
};
pub use load::{InFlightPermit, ProviderLoad, RouteState};
pub use provider::{CredentialRef, Provider, ProviderAddr, Scheme};
pub use retry::{RetryBudgets, RetryPolicy};
pub use table::{
    fnv1a, AttemptPlan, Capabilities, ModelRoute, Needs, OutputRules, PlanInput, RequestFacts,
    RouteCache, RouteRule, RouteTable, SharedRouteTable, Target,
};
