//! Observe: one record per request, written as a JSON line by a writer thread off the shards;
//! its spans, exported over OTLP by another thread (`trace`).

pub mod logs;
mod query;
mod recent;
mod record;
pub mod trace;
mod writer;

pub use query::{parse_since, FilterError, RecordFilter, StatusMatch, MAX_LIMIT};
pub use recent::{RecordViews, UsageBy, UsageRow, DEFAULT_RECENT};
pub use record::{rfc3339_millis, AttemptRecord, GuardrailRecord, RequestRecord, Reservation};
pub use writer::{LogWriter, RecordSink};
