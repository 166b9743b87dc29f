//! infergate: a shard-per-core inference gateway for AI agent fleets.
pub mod embed;
