//! The schema a request asks its answer to follow, in the client's dialect: Chat
//! `response_format`, Responses `text.format`, Messages `output_config.format` (and the
//! older `output_format`). Only the one field is parsed; the body stays as the client sent it.

use serde_json::Value;

use crate::api::find_top_level_value;
use crate::wire::WireApi;

/// What a request asks of its output's shape.
#[derive(Debug, Clone, PartialEq)]
pub enum RequestedSchema {
    /// No structured output asked for.
    None,
    /// JSON matching this schema (`json_schema`), or any JSON object (`json_object`, as
    /// `{"type": "object"}`).
    Schema(Value),
}

/// Reads the structured-output request of a body in `client`'s dialect. `Err` names the
/// field when it is present but malformed (the client gets a 400).
pub fn requested_schema(client: WireApi, body: &[u8]) -> Result<RequestedSchema, String> {
    let (field, format) = match client {
        WireApi::Chat => match top_level(body, "response_format")? {
            Some(rf) => ("response_format", chat_format(rf)?),
            None => return Ok(RequestedSchema::None),
        },
        WireApi::Responses => match top_level(body, "text")? {
            Some(text) => ("text.format", text.get("format").cloned()),
            None => return Ok(RequestedSchema::None),
        },
        WireApi::Messages => {
            let config = top_level(body, "output_config")?;
            match config.and_then(|c| c.get("format").cloned()) {
                Some(f) => ("output_config.format", Some(f)),
                None => ("output_format", top_level(body, "output_format")?),
            }
        }
        _ => return Ok(RequestedSchema::None),
    };
    let Some(format) = format.filter(|f| !f.is_null()) else {
        return Ok(RequestedSchema::None);
    };
    match format.get("type").and_then(Value::as_str) {
        Some("json_schema") => match format.get("schema") {
            Some(schema) if schema.is_object() || schema.is_boolean() => {
                Ok(RequestedSchema::Schema(schema.clone()))
            }
            _ => Err(format!("{field}.schema must be a JSON schema object")),
        },
        Some("json_object") => Ok(RequestedSchema::Schema(
            serde_json::json!({"type": "object"}),
        )),
        Some(_) | None => Ok(RequestedSchema::None),
    }
}

/// Chat nests the schema one level down: `{type, json_schema: {name, schema, strict}}`;
/// flattened here to the Responses/Messages shape `{type, schema}`.
fn chat_format(rf: Value) -> Result<Option<Value>, String> {
    if rf.get("type").and_then(Value::as_str) != Some("json_schema") {
        return Ok(Some(rf));
    }
    let schema = rf.pointer("/json_schema/schema").cloned().ok_or_else(|| {
        "response_format.json_schema.schema must be a JSON schema object".to_string()
    })?;
    Ok(Some(
        serde_json::json!({"type": "json_schema", "schema": schema}),
    ))
}

/// A top-level field's value, parsed alone.
fn top_level(body: &[u8], key: &str) -> Result<Option<Value>, String> {
    let Some(span) = find_top_level_value(body, key) else {
        return Ok(None);
    };
    let Some(bytes) = span.slice(body) else {
        return Ok(None);
    };
    serde_json::from_slice(bytes)
        .map(Some)
        .map_err(|e| format!("{key} is not valid JSON: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn schema_of(client: WireApi, body: Value) -> RequestedSchema {
        requested_schema(client, body.to_string().as_bytes()).unwrap()
    }

    #[test]
    fn each_dialect_names_its_schema() {
        let s = json!({"type": "object", "required": ["a"]});
        let chat = json!({"model": "m", "response_format": {"type": "json_schema",
            "json_schema": {"name": "x", "schema": s, "strict": true}}});
        let responses = json!({"model": "m", "text": {"format": {"type": "json_schema", "name": "x", "schema": s}}});
        let messages = json!({"model": "m", "output_config": {"format": {"type": "json_schema", "schema": s}}});
        let beta = json!({"model": "m", "output_format": {"type": "json_schema", "schema": s}});
        for (client, body) in [
            (WireApi::Chat, chat),
            (WireApi::Responses, responses),
            (WireApi::Messages, messages),
            (WireApi::Messages, beta),
        ] {
            assert_eq!(
                schema_of(client, body),
                RequestedSchema::Schema(s.clone()),
                "{client:?}"
            );
        }
    }

    #[test]
    fn json_mode_asks_for_an_object_and_text_for_nothing() {
        assert_eq!(
            schema_of(
                WireApi::Chat,
                json!({"response_format": {"type": "json_object"}})
            ),
            RequestedSchema::Schema(json!({"type": "object"}))
        );
        for body in [
            json!({"response_format": {"type": "text"}}),
            json!({"messages": []}),
            json!({"response_format": null}),
        ] {
            assert_eq!(schema_of(WireApi::Chat, body), RequestedSchema::None);
        }
        assert_eq!(
            schema_of(WireApi::Responses, json!({"text": {"verbosity": "low"}})),
            RequestedSchema::None
        );
        // A nested `response_format` (inside a message) is not the request's.
        assert_eq!(
            schema_of(
                WireApi::Chat,
                json!({"messages": [{"response_format": {"type": "json_object"}}]})
            ),
            RequestedSchema::None
        );
    }

    #[test]
    fn a_schema_that_is_missing_is_named() {
        let body =
            json!({"response_format": {"type": "json_schema", "json_schema": {"name": "x"}}});
        let err = requested_schema(WireApi::Chat, body.to_string().as_bytes()).unwrap_err();
        assert!(err.contains("response_format.json_schema.schema"), "{err}");
        let body = json!({"output_config": {"format": {"type": "json_schema", "schema": 3}}});
        assert!(requested_schema(WireApi::Messages, body.to_string().as_bytes()).is_err());
    }
}
