//! Who a key is: its tenant, the model aliases it may call, its region tag and the labels
//! its records carry. Compiled from the config (and run-time keys) into one
//! [`AccessProfile`] per key, found by the key's name once authentication accepted it.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use globset::{Glob, GlobSet, GlobSetBuilder};

use super::governor::Scope;

/// What one key may do and what its records say about it.
#[derive(Debug)]
pub struct AccessProfile {
    /// The key's name (never the secret).
    pub key: Arc<str>,
    /// The tenant it belongs to.
    pub tenant: Option<Arc<str>>,
    /// The region tag (the key's own, else its tenant's).
    pub region: Option<Arc<str>>,
    /// Labels for the record (the tenant's, overridden by the key's).
    pub metadata: Arc<BTreeMap<String, String>>,
    /// Rules for the key's agent runs.
    pub runs: Option<super::runs::RunRules>,
    /// The tenant's guardrail policies (names of `[guardrails]`).
    pub guardrails: Vec<String>,
    key_models: Option<GlobSet>,
    tenant_models: Option<GlobSet>,
}

/// A model glob that does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{scope} {name:?}: model pattern {pattern:?} is not a valid glob")]
pub struct BadPattern {
    /// Key or tenant.
    pub scope: Scope,
    /// Its name.
    pub name: String,
    /// The pattern.
    pub pattern: String,
}

/// The parts of a key or tenant a profile is made of.
#[derive(Debug, Clone, Default)]
pub struct ProfileParts<'a> {
    /// Allowed aliases (globs); `None`: all.
    pub models: Option<&'a [String]>,
    /// Region tag.
    pub region: Option<&'a str>,
    /// Labels.
    pub metadata: Option<&'a BTreeMap<String, String>>,
}

impl AccessProfile {
    /// A key's profile from its own parts and its tenant's.
    pub fn compile(
        key: &str,
        own: &ProfileParts<'_>,
        tenant: Option<(&str, &ProfileParts<'_>)>,
    ) -> Result<Self, BadPattern> {
        let key_models = globs(Scope::Key, key, own.models)?;
        let tenant_models = match tenant {
            Some((name, parts)) => globs(Scope::Tenant, name, parts.models)?,
            None => None,
        };
        let mut metadata = tenant
            .and_then(|(_, t)| t.metadata.cloned())
            .unwrap_or_default();
        metadata.extend(own.metadata.cloned().unwrap_or_default());
        let region = own
            .region
            .or_else(|| tenant.and_then(|(_, t)| t.region))
            .map(Arc::from);
        Ok(Self {
            key: Arc::from(key),
            tenant: tenant.map(|(name, _)| Arc::from(name)),
            region,
            metadata: Arc::new(metadata),
            runs: None,
            guardrails: Vec::new(),
            key_models,
            tenant_models,
        })
    }

    /// Whether the key may call `alias`; `Err` names whose list refused it.
    pub fn allows(&self, alias: &str) -> Result<(), Scope> {
        if self.key_models.as_ref().is_some_and(|g| !g.is_match(alias)) {
            return Err(Scope::Key);
        }
        if self
            .tenant_models
            .as_ref()
            .is_some_and(|g| !g.is_match(alias))
        {
            return Err(Scope::Tenant);
        }
        Ok(())
    }
}

fn globs(
    scope: Scope,
    name: &str,
    patterns: Option<&[String]>,
) -> Result<Option<GlobSet>, BadPattern> {
    let Some(patterns) = patterns else {
        return Ok(None);
    };
    let mut set = GlobSetBuilder::new();
    for p in patterns {
        let glob = Glob::new(p).map_err(|_| BadPattern {
            scope,
            name: name.to_string(),
            pattern: p.clone(),
        })?;
        set.add(glob);
    }
    set.build().map(Some).map_err(|_| BadPattern {
        scope,
        name: name.to_string(),
        pattern: patterns.join(","),
    })
}

/// Every key's profile by name.
#[derive(Debug, Clone, Default)]
pub struct Tenancy {
    by_key: HashMap<Arc<str>, Arc<AccessProfile>>,
}

impl Tenancy {
    /// Adds (or replaces) a key's profile.
    pub fn insert(&mut self, profile: AccessProfile) {
        self.by_key
            .insert(Arc::clone(&profile.key), Arc::new(profile));
    }

    /// The profile of the key named `key`.
    pub fn get(&self, key: &str) -> Option<&Arc<AccessProfile>> {
        self.by_key.get(key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_may_call_what_both_lists_allow() {
        let key_models = vec!["gpt-*".to_string(), "claude-3-5-haiku".to_string()];
        let tenant_models = vec!["gpt-4o-mini".to_string(), "claude-*".to_string()];
        let mut tenant_meta = BTreeMap::new();
        tenant_meta.insert("team".to_string(), "search".to_string());
        tenant_meta.insert("tier".to_string(), "free".to_string());
        let mut key_meta = BTreeMap::new();
        key_meta.insert("tier".to_string(), "paid".to_string());
        let p = AccessProfile::compile(
            "bot",
            &ProfileParts {
                models: Some(&key_models),
                region: None,
                metadata: Some(&key_meta),
            },
            Some((
                "acme",
                &ProfileParts {
                    models: Some(&tenant_models),
                    region: Some("eu"),
                    metadata: Some(&tenant_meta),
                },
            )),
        )
        .unwrap();
        assert_eq!(p.allows("gpt-4o-mini"), Ok(()));
        assert_eq!(p.allows("claude-3-5-haiku"), Ok(()));
        assert_eq!(p.allows("gpt-4o"), Err(Scope::Tenant));
        assert_eq!(p.allows("claude-opus"), Err(Scope::Key));
        assert_eq!(p.region.as_deref(), Some("eu"));
        assert_eq!(p.metadata["tier"], "paid");
        assert_eq!(p.metadata["team"], "search");
        let open = AccessProfile::compile("x", &ProfileParts::default(), None).unwrap();
        assert_eq!(open.allows("anything"), Ok(()));
        let bad = vec!["[".to_string()];
        let parts = ProfileParts {
            models: Some(&bad),
            ..ProfileParts::default()
        };
        assert!(AccessProfile::compile("x", &parts, None).is_err());
    }
}
