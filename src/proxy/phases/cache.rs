//! Cache: an identical (exact) or equivalent (semantic) answer from memory. A miss leaves a
//! fill in the session, which stores the answer once it is complete.

use super::super::caching::{self, CacheHit};
use super::super::outcome::{Body, Next, Outcome, Response};
use super::super::session::{ClientRequest, Session};
use crate::route::ModelRoute;
use crate::translate::replay_chat_completion;
use crate::wire::{Endpoint, Usage};

/// Answers from the cache, or notes the miss and goes on.
pub async fn lookup(s: &mut Session<'_>, request: &ClientRequest, route: &ModelRoute) -> Next {
    if s.endpoint != Endpoint::ChatCompletions {
        return Ok(());
    }
    let (Some(policy), Some(caches)) = (&route.cache, &s.ctx.caches) else {
        return Ok(());
    };
    let tenant = s.record.key.clone().unwrap_or_default();
    match caching::lookup(
        caches,
        policy,
        &tenant,
        &route.alias,
        &s.head,
        &request.body,
    )
    .await
    {
        Ok(hit) => Err(Outcome::Respond(Box::new(cached(s, request, hit)))),
        Err(fill) => {
            s.record.cache = Some(fill.status);
            s.record.cache_note = fill.note.clone();
            s.cache = Some(fill);
            Ok(())
        }
    }
}

/// The stored completion as is, or replayed as a stream when one was asked for.
fn cached(s: &mut Session<'_>, request: &ClientRequest, hit: CacheHit) -> Response {
    s.record.cache = Some(hit.kind);
    s.record.cache_similarity = hit.similarity;
    let stored = &hit.response.body;
    let mut head = s
        .response_head(200)
        .header("x-infergate-cache", hit.kind.as_bytes())
        .header_display("x-infergate-attempts", 0);
    if let Some(sim) = hit.similarity {
        head = head.header_display("x-infergate-cache-similarity", format_args!("{sim:.4}"));
    }
    let usage = Usage::from_openai_body(stored);
    let replay = if request.view.stream {
        replay_chat_completion(stored, request.view.include_usage)
    } else {
        None
    };
    let mut response = match replay {
        Some(sse) => Response {
            status: 200,
            head,
            body: Body::Events(sse.into()),
            usage: None,
            error: None,
        },
        None => Response::full(
            200,
            head.header("content-type", hit.response.content_type.as_bytes()),
            stored.clone(),
        ),
    };
    response.usage = usage;
    response
}
