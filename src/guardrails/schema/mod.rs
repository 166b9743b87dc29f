//! JSON-schema enforcement of structured output: when a client asks for it (Chat
//! `response_format`, Responses `text.format`, Messages `output_config.format`) or an alias
//! names a schema file (`json_schema`), the model's output must parse and match.
//!
//! - [`OutputSchema`]: a compiled schema and [`Violation`], the first way an output fails it
//!   (named by path and rule, never echoing the output's values).
//! - [`requested_schema`]: the schema a request asks for, read from the client's dialect.
//! - [`output_texts`]: the texts of a whole answer that must match (one per choice; tool
//!   calls and refusals are not output to check).
//! - [`SchemaCheckedStream`]: the same check on a streamed answer, at its end; an invalid
//!   output ends the stream with an error event instead of its terminal event.
//! - [`ValidatorCache`]: compiled client schemas per shard (agents send the same one often).

mod cache;
mod check;
mod output;
mod request;
mod stream;

pub use cache::ValidatorCache;
pub use check::{check_all, OutputSchema, SchemaError, SchemaOrigin, Violation};
pub use output::{output_texts, OutputText};
pub use request::{requested_schema, RequestedSchema};
pub use stream::SchemaCheckedStream;

/// Largest output the gateway validates; a longer one is a violation (it could not be
/// checked in bounded memory).
pub const MAX_OUTPUT_BYTES: usize = 8 * 1024 * 1024;
