//! Observe: one record per request, written as a JSON line by a writer thread off the shards;
//! its spans, exported over OTLP by another thread (`trace`).

mod record;
pub mod trace;
mod writer;

pub use record::{rfc3339_millis, AttemptRecord, GuardrailRecord, RequestRecord, Reservation};
pub use writer::{LogWriter, RecordSink};
