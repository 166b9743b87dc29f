//! Admit: the key may call the alias, and its and its tenant's limits and budgets hold the
//! request's worst case. What is reserved here is settled (or released) by
//! [`super::super::settle`] once the request ends.

use bytes::Bytes;

use super::super::outcome::{Next, Outcome};
use super::super::session::{ClientRequest, RateHeaders, Session};
use crate::api::{with_max_output_tokens, ApiError, ErrorKind};
use crate::observe::Reservation;
use crate::policy::{
    AdmitError, Ask, Fingerprint, Governor, Price, Prices, Refusal, Rule, RunRefusal, Scope,
};
use crate::route::ModelRoute;
use crate::wire::Endpoint;

/// Checks the key's model allow-list, joins the request's agent run, and reserves against
/// the key's, tenant's and run's limits and budgets.
pub fn admit(s: &mut Session<'_>, request: &mut ClientRequest, route: &ModelRoute) -> Next {
    if let Some(profile) = &s.profile {
        if let Err(scope) = profile.allows(&route.alias) {
            return Err(Outcome::Fail(not_allowed(scope, &route.alias)));
        }
    }
    if s.endpoint == Endpoint::CountTokens {
        return Ok(());
    }
    join_run(s, request)?;
    let run_budget = s.run.as_ref().is_some_and(|t| t.run().budget.is_some());
    if s.profile.is_none() && !run_budget {
        // An open gateway (no keys) has no one to hold to limits.
        return Ok(());
    }
    reserve(s, request, route)
}

/// Reserves the request's worst case with the governor.
fn reserve(s: &mut Session<'_>, request: &mut ClientRequest, route: &ModelRoute) -> Next {
    let gov = &s.table.governance;
    let (price, output_cap) = route_price(route, &gov.prices);
    let ask = Ask {
        key: s.profile.as_ref().map_or("", |p| &p.key),
        prompt_tokens: prompt_bound(&request.body, gov.image_tokens),
        max_output_tokens: match s.endpoint {
            Endpoint::Embeddings => Some(0),
            _ => request.view.max_output_tokens,
        },
        output_cap,
        min_output_tokens: gov.min_output_tokens,
        price,
        run: s.run.as_ref().and_then(|t| t.run().budget.as_ref()),
    };
    let governor = &*s.ctx.governor;
    match governor.admit(&ask, governor.now()) {
        Ok(admission) => {
            s.rate = RateHeaders {
                requests: admission.requests,
                tokens: admission.tokens,
            };
            let lowered = admission
                .max_output_changed
                .then_some(admission.max_output_tokens)
                .flatten();
            s.record.reservation = Some(Reservation {
                usd: micros_to_usd(admission.reserved_micros),
                tokens: admission.reserved_tokens,
                max_output_tokens: lowered,
            });
            s.admission = Some(admission);
            match lowered {
                Some(n) => set_max_output_tokens(s, request, n),
                None => Ok(()),
            }
        }
        Err(AdmitError::Refused(refusal)) => {
            s.rate = RateHeaders::of_refusal(&refusal);
            s.record.refused_by = Some(format!("{} {}", refusal.scope, refusal.rule));
            Err(Outcome::Fail(refused(&refusal)))
        }
        Err(e @ AdmitError::Unpriced(_)) => Err(Outcome::Fail(ApiError::new(
            ErrorKind::Internal,
            "model_not_priced",
            format!("{e}; add the model to [pricing]."),
        ))),
    }
}

/// Joins the agent run the request names, if it names one; refused by the run's rules.
fn join_run(s: &mut Session<'_>, request: &ClientRequest) -> Next {
    let Some(id) = run_id(s, &request.body) else {
        return Ok(());
    };
    let profile = s.profile.as_deref();
    let owner = profile.map_or("-", |p| p.tenant.as_deref().unwrap_or(&p.key));
    let rules = profile.and_then(|p| p.runs);
    let fingerprint = match rules.and_then(|r| r.loop_repeat) {
        Some(_) => Fingerprint::of(&request.body),
        None => Fingerprint::default(),
    };
    let governor = &*s.ctx.governor;
    let begun = governor
        .runs()
        .begin(owner, &id, rules, fingerprint, governor.now());
    s.record.run_id = Some(crate::api::bounded(&id));
    match begun {
        Ok(ticket) => {
            s.run = Some(ticket);
            Ok(())
        }
        Err(refusal) => {
            s.record.refused_by = Some(refusal.to_string());
            tracing::info!(run = %crate::api::bounded(&id), %refusal, "agent run refused a call");
            Err(Outcome::Fail(run_refused(&refusal)))
        }
    }
}

/// The run id: the `x-infergate-run-id` header, else the configured body fields.
fn run_id(s: &Session<'_>, body: &[u8]) -> Option<String> {
    if let Some(id) = s.head.headers.get("x-infergate-run-id") {
        return Some(String::from_utf8_lossy(id.trim_ascii()).into_owned());
    }
    body_field(body, &s.table.governance.run_id_fields)
}

/// The first of `fields` (dotted paths: `user`, `metadata.user_id`) that is a string in the
/// JSON `body`; the body is parsed only when there are fields to look for.
pub fn body_field(body: &[u8], fields: &[String]) -> Option<String> {
    if fields.is_empty() {
        return None;
    }
    let v: serde_json::Value = serde_json::from_slice(body).ok()?;
    fields.iter().find_map(|path| {
        let found = path.split('.').try_fold(&v, |v, part| v.get(part))?;
        found.as_str().map(str::to_string)
    })
}

/// The client's error for a call its run refused.
fn run_refused(r: &RunRefusal) -> ApiError {
    let (kind, code) = match r {
        RunRefusal::Killed(_) => (ErrorKind::PermissionDenied, "run_killed"),
        RunRefusal::Stopped(..) => (ErrorKind::PermissionDenied, "run_stopped"),
        RunRefusal::Steps(_) => (ErrorKind::PermissionDenied, "run_step_limit"),
        RunRefusal::Wall(_) => (ErrorKind::PermissionDenied, "run_time_limit"),
        RunRefusal::Loop { .. } => (ErrorKind::PermissionDenied, "run_loop_detected"),
        RunRefusal::Concurrency(_) => (ErrorKind::RateLimited, "run_concurrency_limit"),
        RunRefusal::BadId => (ErrorKind::InvalidRequest, "invalid_run_id"),
    };
    let retry = matches!(r, RunRefusal::Concurrency(_)).then_some(1);
    ApiError::new(kind, code, format!("{}.", r)).with_retry_after(retry)
}

/// Micro-dollars as dollars, for records.
pub fn micros_to_usd(micros: u64) -> f64 {
    micros as f64 / 1e6
}

/// The most any target of the route charges per token (the call may fall back to any of
/// them), and the largest output any of them produces; `None` when one is unknown.
fn route_price(route: &ModelRoute, prices: &Prices) -> (Option<Price>, Option<u64>) {
    let mut worst = Price::default();
    let mut cap = Some(0u64);
    for t in route.all_targets() {
        let Some(p) = prices.get(&t.model) else {
            return (None, None);
        };
        worst.input = worst.input.max(p.price.input);
        worst.cached_input = worst.cached_input.max(p.price.cached_input);
        worst.output = worst.output.max(p.price.output);
        cap = cap.zip(p.max_output_tokens).map(|(a, b)| a.max(b));
    }
    (Some(worst), cap)
}

/// An upper bound of the prompt's tokens without tokenizing: every token of a byte-level
/// BPE covers at least one byte of the body (whose JSON around the text also covers each
/// message's overhead), and each image or file reference counts `image_tokens`.
pub fn prompt_bound(body: &[u8], image_tokens: u64) -> u64 {
    const MEDIA: [&[u8]; 5] = [
        b"\"image_url\"",
        b"\"input_image\"",
        b"\"image\"",
        b"\"document\"",
        b"\"input_file\"",
    ];
    let media: usize = MEDIA
        .iter()
        .map(|m| memchr::memmem::find_iter(body, m).count())
        .sum();
    (body.len() as u64).saturating_add((media as u64).saturating_mul(image_tokens))
}

/// Rewrites the body with the max output tokens the budget affords (the admission stays
/// held; `finish` settles it).
fn set_max_output_tokens(s: &mut Session<'_>, request: &mut ClientRequest, n: u64) -> Next {
    let rewritten = with_max_output_tokens(s.endpoint, &request.body, n).map(Bytes::from);
    let view = rewritten
        .as_ref()
        .and_then(|b| s.ctx.scratch.borrow_mut().parse(s.endpoint, b).ok());
    match (rewritten, view) {
        (Some(body), Some(view)) => {
            *request = ClientRequest { body, view };
            Ok(())
        }
        _ => Err(Outcome::Fail(ApiError::new(
            ErrorKind::Internal,
            "max_tokens_not_set",
            "The budget required lowering the request's max output tokens, which failed.",
        ))),
    }
}

/// 403 naming whose allow-list refused the alias.
fn not_allowed(scope: Scope, alias: &str) -> ApiError {
    ApiError::new(
        ErrorKind::PermissionDenied,
        "model_not_allowed",
        format!(
            "This key may not use model `{}`: it is not among the {scope}'s allowed models.",
            crate::api::bounded(alias)
        ),
    )
    .with_param("model")
}

/// 429 naming the rule (key or tenant; requests, tokens or budget), never the key.
fn refused(r: &Refusal) -> ApiError {
    let (kind, code, what) = match r.rule {
        Rule::Budget => (
            ErrorKind::QuotaExceeded,
            "insufficient_quota",
            "Budget exceeded",
        ),
        Rule::Requests | Rule::Tokens => (
            ErrorKind::RateLimited,
            "rate_limit_exceeded",
            "Rate limit exceeded",
        ),
    };
    ApiError::new(kind, code, format!("{what}: {r}.")).with_retry_after(r.retry_after_secs())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use crate::route::RouteTable;

    #[test]
    fn the_prompt_bound_covers_text_and_media() {
        let text = br#"{"model":"m","messages":[{"role":"user","content":"say \"image\" twice"}]}"#;
        assert_eq!(prompt_bound(text, 1000), text.len() as u64);
        let img = br#"{"messages":[{"role":"user","content":[{"type":"image","source":{}}]}]}"#;
        assert_eq!(prompt_bound(img, 1000), img.len() as u64 + 1000);
    }

    #[test]
    fn a_route_costs_its_dearest_target() {
        let cfg = r#"
[providers.m]
kind = "mock"
[models.a]
targets = [{ provider = "m", model = "gpt-4o-mini" }, { provider = "m", model = "gpt-4o" }]
[models.b]
targets = [{ provider = "m", model = "gpt-4o-mini" }, { provider = "m", model = "mock-1" }]
"#;
        let table = RouteTable::compile(&Config::parse(cfg).unwrap()).unwrap();
        let prices = &table.governance.prices;
        let (price, cap) = route_price(table.model("a").unwrap(), prices);
        assert_eq!(price.unwrap().input, 2_500_000);
        assert_eq!(cap, Some(16_384));
        assert_eq!(route_price(table.model("b").unwrap(), prices), (None, None));
    }

    #[test]
    fn refusals_are_429s_that_say_when_and_which_rule() {
        let r = Refusal {
            scope: Scope::Tenant,
            rule: Rule::Budget,
            limit: 1_000_000,
            retry_after_ms: Some(3_600_500),
            rate: None,
        };
        let e = refused(&r);
        assert_eq!(
            (e.status(), e.code, e.retry_after_s),
            (429, "insufficient_quota", Some(3601))
        );
        assert!(
            e.message.contains("tenant budget of $1.000000"),
            "{}",
            e.message
        );
        let rate = refused(&Refusal {
            scope: Scope::Key,
            rule: Rule::Requests,
            limit: 2,
            retry_after_ms: Some(10),
            ..r
        });
        assert_eq!(
            (rate.code, rate.retry_after_s),
            ("rate_limit_exceeded", Some(1))
        );
        assert!(rate.message.contains("key request limit of 2 per minute"));
    }
}
