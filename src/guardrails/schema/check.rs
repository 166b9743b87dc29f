//! A compiled output schema and the first violation of an output.

use std::sync::Arc;

use jsonschema::Validator;
use serde_json::Value;

use super::MAX_OUTPUT_BYTES;

/// Where a schema came from (the record and the error say which one failed).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SchemaOrigin {
    /// The alias's `json_schema` file.
    Route,
    /// The client's request (`response_format`, `text.format`, `output_config.format`).
    Request,
}

impl SchemaOrigin {
    /// How records and errors name it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Route => "route",
            Self::Request => "request",
        }
    }
}

/// A JSON schema an answer's output must match, compiled once.
#[derive(Clone)]
pub struct OutputSchema {
    validator: Arc<Validator>,
    /// Where it came from.
    pub origin: SchemaOrigin,
}

impl std::fmt::Debug for OutputSchema {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OutputSchema")
            .field("origin", &self.origin)
            .finish_non_exhaustive()
    }
}

/// A schema that does not compile.
#[derive(Debug, Clone, thiserror::Error)]
#[error("invalid JSON schema: {0}")]
pub struct SchemaError(pub String);

/// The first way an output fails its schema. Messages name the place and the rule; the
/// output's own values are masked (they may hold what guardrails would redact).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Violation {
    /// The output is empty.
    #[error("the output is empty")]
    Empty,
    /// The output is not JSON.
    #[error("the output is not valid JSON ({0})")]
    NotJson(String),
    /// The output is JSON that breaks a rule of the schema.
    #[error("at `{path}`: {message}")]
    Schema {
        /// JSON pointer of the offending value (`/` for the whole output).
        path: String,
        /// The rule it breaks.
        message: String,
    },
    /// The output is too long to validate.
    #[error("the output is longer than {MAX_OUTPUT_BYTES} bytes")]
    TooLarge,
}

impl OutputSchema {
    /// Compiles `schema`. References to other documents are refused (a client's schema
    /// never makes the gateway fetch anything).
    pub fn compile(schema: &Value, origin: SchemaOrigin) -> Result<Self, SchemaError> {
        let validator = jsonschema::validator_for(schema)
            .map_err(|e| SchemaError(format!("{} (at `{}`)", e.masked(), e.schema_path())))?;
        Ok(Self {
            validator: Arc::new(validator),
            origin,
        })
    }

    /// Checks one output text.
    pub fn check(&self, text: &str) -> Result<(), Violation> {
        let value = parse(text)?;
        self.check_value(&value)
    }

    fn check_value(&self, value: &Value) -> Result<(), Violation> {
        match self.validator.validate(value) {
            Ok(()) => Ok(()),
            Err(e) => {
                let path = e.instance_path().to_string();
                Err(Violation::Schema {
                    path: if path.is_empty() { "/".into() } else { path },
                    message: e.masked().to_string(),
                })
            }
        }
    }
}

/// Checks `text` against every schema (parsed once); the first violation wins.
pub fn check_all(schemas: &[OutputSchema], text: &str) -> Result<(), Violation> {
    if schemas.is_empty() {
        return Ok(());
    }
    let value = parse(text)?;
    schemas.iter().try_for_each(|s| s.check_value(&value))
}

fn parse(text: &str) -> Result<Value, Violation> {
    if text.len() > MAX_OUTPUT_BYTES {
        return Err(Violation::TooLarge);
    }
    if text.trim().is_empty() {
        return Err(Violation::Empty);
    }
    serde_json::from_str(text).map_err(|e| {
        // serde's message names the line and column, never the text.
        Violation::NotJson(e.to_string())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn person() -> OutputSchema {
        OutputSchema::compile(
            &json!({"type": "object", "properties": {"name": {"type": "string"}, "age": {"type": "integer"}},
                    "required": ["name", "age"], "additionalProperties": false}),
            SchemaOrigin::Request,
        )
        .unwrap()
    }

    #[test]
    fn a_matching_output_passes() {
        assert_eq!(person().check(r#"{"name": "Ada", "age": 36}"#), Ok(()));
    }

    #[test]
    fn violations_name_the_place_and_rule_never_the_value() {
        let err = person()
            .check(r#"{"name": "Ada", "age": "secret-value"}"#)
            .unwrap_err();
        let Violation::Schema { path, message } = &err else {
            panic!("{err:?}");
        };
        assert_eq!(path, "/age");
        assert!(message.contains("integer"), "{message}");
        assert!(!err.to_string().contains("secret-value"), "{err}");
        let missing = person().check(r#"{"name": "Ada"}"#).unwrap_err();
        assert!(missing.to_string().contains("age"), "{missing}");
        assert!(matches!(
            person().check(r#"{"name": "Ada", "age": 1, "x": 2}"#),
            Err(Violation::Schema { .. })
        ));
    }

    #[test]
    fn non_json_and_empty_outputs_are_violations() {
        assert!(matches!(
            person().check("Sure! Here is the JSON: {"),
            Err(Violation::NotJson(_))
        ));
        assert_eq!(person().check("  "), Err(Violation::Empty));
        let not_json = person().check("my password is hunter2").unwrap_err();
        assert!(!not_json.to_string().contains("hunter2"));
    }

    #[test]
    fn remote_references_and_bad_schemas_do_not_compile() {
        let remote = json!({"$ref": "http://127.0.0.1:1/schema.json"});
        assert!(OutputSchema::compile(&remote, SchemaOrigin::Request).is_err());
        let bad = json!({"type": "no-such-type"});
        assert!(OutputSchema::compile(&bad, SchemaOrigin::Request).is_err());
    }

    #[test]
    fn every_schema_is_checked() {
        let small =
            OutputSchema::compile(&json!({"maxProperties": 1}), SchemaOrigin::Route).unwrap();
        let both = [person(), small];
        assert!(check_all(&both, r#"{"name": "A", "age": 1}"#).is_err());
        assert!(check_all(&both[..1], r#"{"name": "A", "age": 1}"#).is_ok());
        assert!(check_all(&[], "not json").is_ok());
    }
}
