//! Observe: one record per request, written as a JSON line by a writer thread off the shards,
//! and Prometheus metrics counted from the same record on each shard.

pub mod metrics;
mod record;
mod writer;

pub use record::{rfc3339_millis, AttemptRecord, GuardrailRecord, RequestRecord, Reservation};
pub use writer::{LogWriter, RecordDrops, RecordSink};
