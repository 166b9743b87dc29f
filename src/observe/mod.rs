//! Observe: one record per request, written as a JSON line by a writer thread off the shards.

pub mod logs;
mod query;
mod record;
mod writer;

pub use query::{parse_since, FilterError, RecordFilter, StatusMatch, MAX_LIMIT};
pub use record::{rfc3339_millis, AttemptRecord, GuardrailRecord, RequestRecord, Reservation};
pub use writer::{LogWriter, RecordSink};
