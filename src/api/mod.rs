//! The client-facing API: what each endpoint accepts, the borrowed view of a request body,
//! and errors in the client's own dialect. (The endpoints themselves are
//! [`crate::wire::Endpoint`].)

mod error;
mod json_scan;
mod json_strings;
mod openai;

pub use error::{ApiError, ErrorKind};
pub use json_scan::{find_top_level_value, is_whole_json, JsonSpan};
pub(crate) use json_scan::{for_each_element, for_each_member, skip_ws};
pub use json_strings::{
    decode_string, key_is, replace_strings, string_values, unescape_into, write_string, StringValue,
};
pub use openai::{
    max_output_fields, with_max_output_tokens, ChatRequestView, JsonScratch, RequestBodyError,
};

/// The longest client-supplied string copied into a record, a log line or an error message;
/// longer ones are cut (at a character boundary) and marked with `…`.
pub const MAX_ECHOED_CHARS: usize = 256;

/// `s` cut to [`MAX_ECHOED_CHARS`] characters, with `…` when it was longer: client strings
/// that the gateway echoes (a model name in an error, a record field) stay small.
pub fn bounded(s: &str) -> String {
    match s.char_indices().nth(MAX_ECHOED_CHARS) {
        None => s.to_string(),
        Some((cut, _)) => {
            let mut out = String::with_capacity(cut + 3);
            out.push_str(s.get(..cut).unwrap_or_default());
            out.push('…');
            out
        }
    }
}
