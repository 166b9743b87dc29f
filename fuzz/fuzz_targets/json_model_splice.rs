//! The request view (simd-json validation + `ChatRequestView`) and the top-level scanner that
//! finds the `model` value's bytes (`api::find_top_level_value`), then the splice the forward
//! phase makes when a route names another model (the client's bytes around the new name).
//!
//! Invariants: no panic; the model span lies in the body and holds the JSON string the view
//! read; the spliced body is valid, names the new model and otherwise reads the same; the
//! scanner finds every top-level key serde_json sees (in bounds, parsing to the same value).
#![no_main]

use infergate::api::{decode_string, find_top_level_value, write_string, JsonScratch};
use infergate::wire::Endpoint;
use libfuzzer_sys::fuzz_target;

const ENDPOINTS: [Endpoint; 4] = [
    Endpoint::ChatCompletions,
    Endpoint::Messages,
    Endpoint::Responses,
    Endpoint::CountTokens,
];

/// The model the splice puts in: escapes and a non-ASCII character on purpose.
const NEW_MODEL: &str = "upstream/\"model\"\u{e9}\n";

fuzz_target!(|data: &[u8]| {
    let endpoint = ENDPOINTS[data.len() % ENDPOINTS.len()];
    let body = data;
    let mut scratch = JsonScratch::new();
    let view = scratch.parse(endpoint, body);

    // The scanner on whatever serde_json accepts as an object: each top-level key it finds
    // spans the same value (serde_json keeps the last of duplicate keys; the view refuses
    // duplicates, so only check when the view accepted the body).
    if let (Ok(_), Ok(serde_json::Value::Object(map))) =
        (&view, serde_json::from_slice::<serde_json::Value>(body))
    {
        for (key, value) in map.iter().take(16) {
            let span = find_top_level_value(body, key)
                .unwrap_or_else(|| panic!("top-level key {key:?} not found"));
            let bytes = span.slice(body).expect("span within the body");
            let found: serde_json::Value =
                serde_json::from_slice(bytes).expect("a value span holds one JSON value");
            assert_eq!(&found, value, "value of {key:?}");
        }
    }

    let Ok(view) = view else { return };
    let span = view.model_span;
    assert!(span.start < span.end && span.end <= body.len());
    let model = decode_string(body, span).expect("the model span is a JSON string");
    assert_eq!(model, view.model);

    let mut spliced = Vec::with_capacity(body.len() + 32);
    spliced.extend_from_slice(&body[..span.start]);
    write_string(NEW_MODEL, &mut spliced);
    spliced.extend_from_slice(&body[span.end..]);
    let again = JsonScratch::new()
        .parse(endpoint, &spliced)
        .unwrap_or_else(|e| panic!("spliced body refused: {e}"));
    assert_eq!(again.model, NEW_MODEL);
    assert_eq!(again.stream, view.stream);
    assert_eq!(again.include_usage, view.include_usage);
    assert_eq!(again.max_output_tokens, view.max_output_tokens);
    assert_eq!(again.structured_output, view.structured_output);
    assert_eq!(again.tools, view.tools);

    // A budget's lower output cap, set in the body, is read back.
    if let Some(capped) = infergate::api::with_max_output_tokens(endpoint, body, 77) {
        let capped_view = JsonScratch::new()
            .parse(endpoint, &capped)
            .unwrap_or_else(|e| panic!("capped body refused: {e}"));
        assert_eq!(capped_view.max_output_tokens, Some(77));
    }
});
