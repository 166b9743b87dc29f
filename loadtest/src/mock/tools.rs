//! Tool calling, the same in every dialect: when to call a tool, which one, and with what
//! arguments (built from the tool's JSON schema).

use serde_json::{Map, Value};

/// Strings given to location-like string arguments, one per parallel call.
const CITIES: [&str; 4] = ["Paris", "Tokyo", "Lima", "Oslo"];

/// A tool offered by the request: its name and the JSON schema of its input.
#[derive(Debug, Clone, Copy)]
pub struct ToolSpec<'a> {
    /// Function / tool name.
    pub name: &'a str,
    /// `parameters` / `input_schema`, when given.
    pub schema: Option<&'a Value>,
}

/// One tool call the mock answers with.
#[derive(Debug, Clone, PartialEq)]
pub struct PlannedCall {
    /// The tool called.
    pub name: String,
    /// Its arguments: an object with every required property of the schema.
    pub arguments: Value,
}

/// What the request asks the mock to do with tools.
#[derive(Debug, Clone, Copy, Default)]
pub struct ToolTrigger<'a> {
    /// `x-mock-tool-call: NAME`: call this tool whatever the prompt.
    pub forced: Option<&'a str>,
    /// `x-mock-tool-calls: N`: make N calls (parallel tool use).
    pub count: Option<u32>,
}

/// The calls to answer with: none unless the request offers tools and its last user text
/// mentions "weather" (any case) or a trigger header is sent. With `x-mock-tool-call` the
/// named tool is called even when the request does not declare it (arguments `{}`).
/// Otherwise the first tool whose name contains "weather" is called, else the first tool.
pub fn plan(
    tools: &[ToolSpec<'_>],
    last_user_text: &str,
    trigger: ToolTrigger<'_>,
) -> Vec<PlannedCall> {
    let mentions_weather = last_user_text.to_ascii_lowercase().contains("weather");
    let tool = match trigger.forced {
        Some(name) => tools
            .iter()
            .copied()
            .find(|t| t.name == name)
            .unwrap_or(ToolSpec { name, schema: None }),
        None if tools.is_empty() => return Vec::new(),
        None if mentions_weather || trigger.count.is_some() => {
            match tools
                .iter()
                .find(|t| t.name.to_ascii_lowercase().contains("weather"))
            {
                Some(t) => *t,
                None => tools[0],
            }
        }
        None => return Vec::new(),
    };
    (0..trigger.count.unwrap_or(1) as usize)
        .map(|i| PlannedCall {
            name: tool.name.to_string(),
            arguments: tool
                .schema
                .map(|s| arguments_from_schema(s, i))
                .unwrap_or_else(|| Value::Object(Map::new())),
        })
        .collect()
}

/// An object holding a value for each `required` property of an object `schema`; call
/// `i` of a parallel answer gets different strings and numbers than call 0.
pub fn arguments_from_schema(schema: &Value, i: usize) -> Value {
    let mut out = Map::new();
    let properties = schema.get("properties");
    if let Some(required) = schema.get("required").and_then(Value::as_array) {
        for name in required.iter().filter_map(Value::as_str) {
            let property = properties.and_then(|p| p.get(name)).unwrap_or(&Value::Null);
            out.insert(name.to_string(), value_for(name, property, i));
        }
    }
    Value::Object(out)
}

fn value_for(name: &str, schema: &Value, i: usize) -> Value {
    if let Some(first) = schema
        .get("enum")
        .and_then(Value::as_array)
        .and_then(|e| e.first())
    {
        return first.clone();
    }
    let kind = schema
        .get("type")
        .and_then(Value::as_str)
        .unwrap_or("string")
        .to_ascii_lowercase();
    match kind.as_str() {
        "integer" => Value::from(1 + i as u64),
        "number" => Value::from(1.5 + i as f64),
        "boolean" => Value::Bool(true),
        "array" => Value::Array(Vec::new()),
        "object" => arguments_from_schema(schema, i),
        "null" => Value::Null,
        _ => {
            let lower = name.to_ascii_lowercase();
            if ["location", "city", "place", "where"]
                .iter()
                .any(|w| lower.contains(w))
            {
                Value::from(CITIES[i % CITIES.len()])
            } else {
                Value::from(format!("{name}-{i}"))
            }
        }
    }
}

/// Cuts `s` into pieces of about `size` bytes on char boundaries (streamed arguments).
pub fn pieces(s: &str, size: usize) -> Vec<&str> {
    let mut out = Vec::new();
    let mut start = 0;
    while start < s.len() {
        let mut end = (start + size.max(1)).min(s.len());
        while !s.is_char_boundary(end) {
            end += 1;
        }
        out.push(&s[start..end]);
        start = end;
    }
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use serde_json::json;

    fn weather_schema() -> Value {
        json!({"type":"object","properties":{
            "location":{"type":"string"},
            "unit":{"type":"string","enum":["celsius","fahrenheit"]},
            "days":{"type":"integer"}},
            "required":["location","unit"]})
    }

    #[test]
    fn weather_prompt_calls_the_weather_tool() {
        let schema = weather_schema();
        let tools = [
            ToolSpec {
                name: "search",
                schema: None,
            },
            ToolSpec {
                name: "get_weather",
                schema: Some(&schema),
            },
        ];
        let calls = plan(
            &tools,
            "What's the Weather in Paris?",
            ToolTrigger::default(),
        );
        assert_eq!(
            calls,
            vec![PlannedCall {
                name: "get_weather".into(),
                arguments: json!({"location":"Paris","unit":"celsius"})
            }]
        );
        assert!(plan(&tools, "hello", ToolTrigger::default()).is_empty());
        assert!(plan(&[], "weather", ToolTrigger::default()).is_empty());
    }

    #[test]
    fn headers_force_and_multiply_calls() {
        let schema = weather_schema();
        let tools = [ToolSpec {
            name: "get_weather",
            schema: Some(&schema),
        }];
        let two = plan(
            &tools,
            "hi",
            ToolTrigger {
                forced: None,
                count: Some(2),
            },
        );
        assert_eq!(two.len(), 2);
        assert_eq!(two[1].arguments["location"], "Tokyo");
        let forced = plan(
            &[],
            "hi",
            ToolTrigger {
                forced: Some("lookup"),
                count: None,
            },
        );
        assert_eq!(forced[0].name, "lookup");
        assert_eq!(forced[0].arguments, json!({}));
    }

    #[test]
    fn pieces_respect_char_boundaries() {
        assert_eq!(pieces("abcdefg", 3), vec!["abc", "def", "g"]);
        assert_eq!(pieces("aé", 1).concat(), "aé");
        assert!(pieces("", 4).is_empty());
    }
}
