//! Small pieces every translator shares: writing JSON values by hand into an output buffer
//! (the stream translators build their events this way, without a serde tree per event), and
//! reading `data:` URLs.

use std::io::Write as _;

/// Appends `s` as a JSON string (writing into a `Vec` cannot fail).
pub(super) fn json_str(out: &mut Vec<u8>, s: &str) {
    let _ = serde_json::to_writer(&mut *out, s);
}

/// Appends a decimal number.
pub(super) fn num(out: &mut Vec<u8>, n: u64) {
    let _ = write!(out, "{n}");
}

/// Splits a base64 `data:` URL into its media type and its data (`None`: not one).
pub(super) fn parse_data_url(url: &str) -> Option<(&str, &str)> {
    let rest = url.strip_prefix("data:")?;
    let (meta, data) = rest.split_once(',')?;
    let media_type = meta.strip_suffix(";base64")?;
    Some((media_type, data))
}
