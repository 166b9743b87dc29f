//! Guardrail policies as the config names them (`[guardrails.NAME]`): which rules, what to
//! do with a match (block, redact, flag) and on which side (request, response), each
//! compiled once per route table into one [`Detector`].

use std::collections::HashMap;
use std::sync::Arc;

use super::compile::RuleSpec;
use super::detector::Detector;
use crate::config::{GuardrailAction, GuardrailConfig, GuardrailSide};

/// One compiled policy.
#[derive(Debug)]
pub struct GuardrailPolicy {
    /// Its name in `[guardrails]`.
    pub name: Arc<str>,
    /// What a match does.
    pub action: GuardrailAction,
    /// Scans what clients send.
    pub on_request: bool,
    /// Scans what providers return.
    pub on_response: bool,
    /// Its rules in one matcher (shared with the stream scanners of relayed answers).
    pub detector: Arc<Detector>,
}

/// Why a policy does not compile.
#[derive(Debug, thiserror::Error)]
#[error("guardrail {name:?}: {reason}")]
pub struct BadPolicy {
    /// The policy.
    pub name: String,
    /// What is wrong.
    pub reason: String,
}

impl GuardrailPolicy {
    /// Compiles `[guardrails.NAME]`; no rules and no custom rules is an error (a policy
    /// that can never fire is a mistake worth saying).
    pub fn compile(name: &str, cfg: &GuardrailConfig) -> Result<Self, BadPolicy> {
        let bad = |reason: String| BadPolicy {
            name: name.to_string(),
            reason,
        };
        if cfg.rules.is_empty() && cfg.custom.is_empty() {
            return Err(bad("it names no rules".into()));
        }
        if cfg.on.is_empty() {
            return Err(bad("`on` names neither request nor response".into()));
        }
        let mut specs = Vec::with_capacity(cfg.rules.len() + cfg.custom.len());
        for r in &cfg.rules {
            specs.push(RuleSpec::builtin(r).map_err(|e| bad(e.to_string()))?);
        }
        for c in &cfg.custom {
            specs.push(RuleSpec::custom(c.name.clone(), c.regex.clone()));
        }
        let detector = Detector::new(&specs).map_err(|e| bad(e.to_string()))?;
        Ok(Self {
            name: Arc::from(name),
            action: cfg.action,
            on_request: cfg.on.contains(&GuardrailSide::Request),
            on_response: cfg.on.contains(&GuardrailSide::Response),
            detector: Arc::new(detector),
        })
    }
}

/// Every policy of the config, by name.
#[derive(Debug, Clone, Default)]
pub struct GuardrailPolicies {
    by_name: HashMap<String, Arc<GuardrailPolicy>>,
}

impl GuardrailPolicies {
    /// Compiles every `[guardrails]` policy.
    pub fn compile<'a>(
        cfgs: impl IntoIterator<Item = (&'a String, &'a GuardrailConfig)>,
    ) -> Result<Self, BadPolicy> {
        let mut by_name = HashMap::new();
        for (name, cfg) in cfgs {
            by_name.insert(name.clone(), Arc::new(GuardrailPolicy::compile(name, cfg)?));
        }
        Ok(Self { by_name })
    }

    /// The policy called `name`.
    pub fn get(&self, name: &str) -> Option<&Arc<GuardrailPolicy>> {
        self.by_name.get(name)
    }

    /// The policies `names` lists, in order; `Err` names the first unknown one.
    pub fn resolve(&self, names: &[String]) -> Result<Vec<Arc<GuardrailPolicy>>, String> {
        names
            .iter()
            .map(|n| self.by_name.get(n).cloned().ok_or_else(|| n.clone()))
            .collect()
    }
}
