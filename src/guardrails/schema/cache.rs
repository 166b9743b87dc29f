//! Compiled client schemas, per shard: an agent sends the same schema with every call, and
//! compiling one costs far more than checking an output against it.

use std::collections::HashMap;

use serde_json::Value;

use super::check::{OutputSchema, SchemaError, SchemaOrigin};

/// Most schemas kept; when full, the cache starts over (schemas are small and few).
const MAX_ENTRIES: usize = 256;
/// Most bytes of schema text kept as keys.
const MAX_KEY_BYTES: usize = 4 * 1024 * 1024;

/// A shard's compiled client schemas, keyed by their JSON text (exact, so no collision
/// can hand one request another's schema).
#[derive(Default)]
pub struct ValidatorCache {
    compiled: HashMap<String, OutputSchema>,
    key_bytes: usize,
}

impl ValidatorCache {
    /// An empty cache.
    pub fn new() -> Self {
        Self::default()
    }

    /// The compiled form of a client's `schema`, compiled on first sight.
    pub fn get_or_compile(&mut self, schema: &Value) -> Result<OutputSchema, SchemaError> {
        let key = schema.to_string();
        if let Some(found) = self.compiled.get(&key) {
            return Ok(found.clone());
        }
        let compiled = OutputSchema::compile(schema, SchemaOrigin::Request)?;
        if self.compiled.len() >= MAX_ENTRIES || self.key_bytes + key.len() > MAX_KEY_BYTES {
            self.compiled.clear();
            self.key_bytes = 0;
        }
        if key.len() <= MAX_KEY_BYTES {
            self.key_bytes += key.len();
            self.compiled.insert(key, compiled.clone());
        }
        Ok(compiled)
    }

    /// Schemas held.
    pub fn len(&self) -> usize {
        self.compiled.len()
    }

    /// True when none is held.
    pub fn is_empty(&self) -> bool {
        self.compiled.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_schema_is_compiled_once_and_the_cache_stays_bounded() {
        let mut cache = ValidatorCache::new();
        let s = json!({"type": "object"});
        cache.get_or_compile(&s).unwrap();
        cache.get_or_compile(&s).unwrap();
        assert_eq!(cache.len(), 1);
        for i in 0..(MAX_ENTRIES + 10) {
            cache
                .get_or_compile(&json!({"type": "object", "maxProperties": i}))
                .unwrap();
        }
        assert!(cache.len() <= MAX_ENTRIES);
        assert!(cache.get_or_compile(&json!({"type": 7})).is_err());
    }
}
