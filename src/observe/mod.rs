//! Observe: one record per request, written as a JSON line by a writer thread off the shards.

mod record;
mod writer;

pub use record::{AttemptRecord, RequestRecord};
pub use writer::{LogWriter, RecordSink};
