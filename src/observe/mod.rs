//! Observe: one record per request, written as a JSON line by a writer thread off the shards
//! (which also keeps the newest records and an hourly usage ledger for the admin API);
//! Prometheus metrics counted from the same record on each shard (`metrics`); its spans,
//! exported over OTLP by another thread (`trace`); `infergate logs` over the files (`logs`).

pub mod logs;
pub mod metrics;
mod query;
mod recent;
mod record;
pub mod trace;
mod writer;

pub use query::{parse_since, FilterError, RecordFilter, StatusMatch, MAX_LIMIT};
pub use recent::{RecordViews, UsageBy, UsageRow, DEFAULT_RECENT};
pub use record::{
    rfc3339_millis, unix_ms_now, AttemptRecord, CostParts, GuardrailRecord, RequestRecord,
    Reservation,
};
pub use writer::{LogWriter, RecordDrops, RecordSink};
