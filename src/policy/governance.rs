//! [`Governance`]: the config's tenants, keys, limits, budgets and prices compiled into
//! what the request path reads, checked so that every budget can bound every call it pays
//! for.

use std::str::FromStr;

use super::budget::usd_to_micros;
use super::governor::Scope;
use super::local::{BudgetRule, GovernorRules, KeyRules, Limits};
use super::pricing::Prices;
use super::runs::RunRules;
use super::tenancy::{AccessProfile, ProfileParts, Tenancy};
use super::window::Window;
use crate::config::{BudgetConfig, Config, ConfigError, KeyConfig, LimitsConfig, TenantConfig};

/// What admission needs from the config, compiled with the route table.
#[derive(Debug, Clone, Default)]
pub struct Governance {
    /// Limits and budgets of keys and tenants, for the process-wide governor.
    pub rules: GovernorRules,
    /// Each key's tenant, allowed models, region and labels.
    pub tenancy: Tenancy,
    /// Model prices (built-in under `[pricing]`).
    pub prices: Prices,
    /// Refuse rather than lower max output tokens below this.
    pub min_output_tokens: u64,
    /// Tokens counted per image when bounding a prompt.
    pub image_tokens: u64,
    /// Body fields (dotted paths) a run id is read from without the header.
    pub run_id_fields: Vec<String>,
}

impl Governance {
    /// Compiles `[tenants]`, the keys' rules and `[pricing]`; refuses unknown tenants, bad
    /// amounts, windows or globs, and a budget over a model without a price.
    pub fn compile(cfg: &Config) -> Result<Self, ConfigError> {
        let prices = Prices::compile(&cfg.pricing).map_err(|(model, e)| {
            ConfigError::Invalid(format!("pricing {model:?}: {e:?} is not a price"))
        })?;
        let mut rules = GovernorRules::default();
        for (name, t) in &cfg.tenants {
            rules.tenants.push((
                name.clone(),
                limits(Scope::Tenant, name, &t.limits, t.budget.as_ref())?,
            ));
        }
        let mut tenancy = Tenancy::default();
        for k in &cfg.auth.keys {
            let tenant = match &k.tenant {
                Some(t) => Some((
                    t.as_str(),
                    cfg.tenants.get(t).ok_or_else(|| {
                        ConfigError::Invalid(format!(
                        "auth key {:?} belongs to tenant {t:?}, which [tenants] does not define",
                        k.name
                    ))
                    })?,
                )),
                None => None,
            };
            let key_limits = limits(Scope::Key, &k.name, &k.limits, k.budget.as_ref())?;
            let profile = key_profile(k, tenant)?;
            check_prices(cfg, &prices, k, &profile, tenant)?;
            tenancy.insert(profile);
            rules.keys.push(KeyRules {
                name: k.name.clone(),
                tenant: k.tenant.clone(),
                limits: key_limits,
            });
        }
        Ok(Self {
            rules,
            tenancy,
            prices,
            min_output_tokens: cfg.governance.min_output_tokens,
            image_tokens: cfg.governance.image_tokens,
            run_id_fields: cfg.governance.run_id_fields.clone(),
        })
    }
}

/// A key's or tenant's limits as the governor takes them.
pub fn limits(
    scope: Scope,
    name: &str,
    l: &LimitsConfig,
    budget: Option<&BudgetConfig>,
) -> Result<Limits, ConfigError> {
    let budget = match budget {
        Some(b) => {
            let per = Window::from_str(&b.per).map_err(|_| {
                ConfigError::Invalid(format!(
                    "{scope} {name:?}: budget per = {:?}; use minute, hour, day, month or total",
                    b.per
                ))
            })?;
            let cap_micros = usd_to_micros(b.usd)
                .ok()
                .filter(|c| *c > 0)
                .ok_or_else(|| {
                    ConfigError::Invalid(format!(
                        "{scope} {name:?}: budget usd = {} must be a positive amount",
                        b.usd
                    ))
                })?;
            Some(BudgetRule { cap_micros, per })
        }
        None => None,
    };
    for (what, v) in [("rpm", l.rpm), ("tpm", l.tpm)] {
        if v == Some(0) {
            return Err(ConfigError::Invalid(format!(
                "{scope} {name:?}: limits.{what} = 0 would refuse everything; remove the key instead"
            )));
        }
    }
    Ok(Limits {
        rpm: l.rpm,
        tpm: l.tpm,
        budget,
    })
}

/// A key's access profile from its config and its tenant's.
pub fn key_profile(
    k: &KeyConfig,
    tenant: Option<(&str, &TenantConfig)>,
) -> Result<AccessProfile, ConfigError> {
    let own = ProfileParts {
        models: k.models.as_deref(),
        region: k.region.as_deref(),
        metadata: Some(&k.metadata),
    };
    let tenant_parts = tenant.map(|(name, t)| {
        (
            name,
            ProfileParts {
                models: t.models.as_deref(),
                region: t.region.as_deref(),
                metadata: Some(&t.metadata),
            },
        )
    });
    let mut profile =
        AccessProfile::compile(&k.name, &own, tenant_parts.as_ref().map(|(n, p)| (*n, p)))
            .map_err(|e| ConfigError::Invalid(e.to_string()))?;
    profile.guardrails = tenant
        .map(|(_, t)| t.guardrails.clone())
        .unwrap_or_default();
    profile.runs = RunRules::compile(
        &k.name,
        k.runs.as_ref(),
        tenant.and_then(|(_, t)| t.runs.as_ref()),
    )?;
    Ok(profile)
}

/// Every target a budgeted key can reach must have a price, or its calls can't be bounded.
fn check_prices(
    cfg: &Config,
    prices: &Prices,
    k: &KeyConfig,
    profile: &AccessProfile,
    tenant: Option<(&str, &TenantConfig)>,
) -> Result<(), ConfigError> {
    let run_budget = profile.runs.is_some_and(|r| r.max_usd_micros.is_some());
    let owner = match (&k.budget, tenant) {
        (Some(_), _) => format!("key {:?}", k.name),
        (None, Some((name, t))) if t.budget.is_some() => format!("tenant {name:?}"),
        _ if run_budget => format!("agent runs (runs.max_usd) of key {:?}", k.name),
        _ => return Ok(()),
    };
    for (alias, route) in &cfg.models {
        if profile.allows(alias).is_err() {
            continue;
        }
        if let Some(t) = route
            .targets
            .iter()
            .find(|t| prices.get(&t.model).is_none())
        {
            return Err(ConfigError::Invalid(format!(
                "the budget of {owner} applies to model {alias:?}, whose target model {:?} has no price: add [pricing.{:?}] (USD per 1M tokens)",
                t.model, t.model
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: &str = r#"
[providers.m]
kind = "mock"
[models."gpt-4o-mini"]
targets = [{ provider = "m", model = "gpt-4o-mini" }]
[models.local]
targets = [{ provider = "m", model = "mock-1" }]
[tenants.acme]
models = ["gpt-4o-mini", "claude-*"]
limits = { rpm = 600, tpm = 200000 }
region = "eu-west"
"#;

    fn compile(extra: &str) -> Result<Governance, ConfigError> {
        Governance::compile(&Config::parse(&format!("{BASE}{extra}")).unwrap())
    }

    #[test]
    fn the_issue_example_compiles() {
        let g = compile(
            r#"
budget = { usd = 50.0, per = "day" }
[auth]
keys = [ { name = "acme-bot-1", sha256 = "00", tenant = "acme", limits = { rpm = 60 }, budget = { usd = 1.0, per = "day" } } ]
[pricing."gpt-4o-mini"]
input = 0.15
output = 0.60
cached_input = 0.075
"#,
        )
        .unwrap();
        let key = &g.rules.keys[0];
        assert_eq!(key.limits.rpm, Some(60));
        assert_eq!(key.limits.budget.unwrap().cap_micros, 1_000_000);
        assert_eq!(g.rules.tenants[0].1.budget.unwrap().per, Window::Day);
        let p = g.tenancy.get("acme-bot-1").unwrap();
        assert_eq!(p.region.as_deref(), Some("eu-west"));
        assert_eq!(p.allows("local"), Err(Scope::Tenant));
        assert_eq!(g.min_output_tokens, 16);
    }

    #[test]
    fn a_budget_over_an_unpriced_model_names_it() {
        let key = r#"
[auth]
keys = [ { name = "k", sha256 = "00", budget = { usd = 1.0, per = "day" } } ]
"#;
        let err = compile(key).unwrap_err().to_string();
        assert!(
            err.contains("\"mock-1\"") && err.contains("key \"k\""),
            "{err}"
        );
        // Priced, it compiles; a key that can't reach the model doesn't need its price.
        assert!(compile(&format!(
            "{key}[pricing.\"mock-1\"]\ninput = 1.0\noutput = 2.0\n"
        ))
        .is_ok());
        let tenant_key = "budget = { usd = 5.0, per = \"month\" }\n[auth]\nkeys = [ { name = \"k\", sha256 = \"00\", tenant = \"acme\" } ]\n";
        assert!(compile(tenant_key).is_ok());
        // A run budget needs prices too.
        let run_key =
            "[auth]\nkeys = [ { name = \"r\", sha256 = \"00\", runs = { max_usd = 1.0 } } ]\n";
        let err = compile(run_key).unwrap_err().to_string();
        assert!(
            err.contains("runs.max_usd") && err.contains("\"mock-1\""),
            "{err}"
        );
    }

    #[test]
    fn bad_rules_are_refused_with_the_reason() {
        let cases = [
            ("[auth]\nkeys = [ { name = \"k\", sha256 = \"00\", tenant = \"nobody\" } ]\n", "nobody"),
            ("[auth]\nkeys = [ { name = \"k\", sha256 = \"00\", budget = { usd = 1.0, per = \"week\" } } ]\n", "week"),
            ("[auth]\nkeys = [ { name = \"k\", sha256 = \"00\", limits = { rpm = 0 } } ]\n", "rpm"),
            ("[auth]\nkeys = [ { name = \"k\", sha256 = \"00\", budget = { usd = -1.0, per = \"day\" } } ]\n", "usd"),
            ("[pricing.x]\ninput = -1.0\noutput = 1.0\n", "pricing"),
        ];
        for (extra, needle) in cases {
            let err = compile(extra).unwrap_err().to_string();
            assert!(err.contains(needle), "{extra}: {err}");
        }
    }
}
