//! [`Session`]: everything one request owns on its way through the phases: the client
//! connection, the head, the request once read, the chosen route, the cache fill and the
//! record that [`super::finish`] sends at the end.

use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;

use super::caching::CacheFill;
use super::ShardCtx;
use crate::api::ChatRequestView;
use crate::guardrails::schema::{OutputSchema, Violation};
use crate::http::{RequestHead, ResponseHead, ServerConn, ServerLimits};
use crate::observe::RequestRecord;
use crate::policy::{AccessProfile, Admission, Price, RateState, Refusal, Rule, RunTicket};
use crate::route::RouteTable;
use crate::wire::{Endpoint, Usage, WireApi};

/// One request on its way through the phases.
pub struct Session<'a> {
    /// The shard serving it.
    pub ctx: &'a ShardCtx,
    /// The route table current when its head arrived.
    pub table: &'a RouteTable,
    /// The client connection.
    pub conn: &'a mut ServerConn,
    /// Size and time bounds for reading the request.
    pub limits: &'a ServerLimits,
    /// The request head.
    pub head: RequestHead,
    /// `x-infergate-request-id`.
    pub request_id: IdText,
    /// When the head was read.
    pub started: Instant,
    /// The endpoint (Chat Completions until the path is known).
    pub endpoint: Endpoint,
    /// The format of the client's error bodies.
    pub dialect: WireApi,
    /// The client wants the connection kept and the shard is not draining.
    pub keep_alive: bool,
    /// The request body was read to its end (a response before that closes the connection
    /// when a body was announced).
    pub body_read: bool,
    /// What to store in the caches once the answer is complete (None: not cached).
    pub cache: Option<CacheFill>,
    /// The record, filled in as the phases go and sent by `finish`.
    pub record: RequestRecord,
    /// Who the key is: tenant, allowed models, region (none on an open gateway).
    pub profile: Option<Arc<AccessProfile>>,
    /// What admission holds against limits and budgets, until `finish` settles it.
    pub admission: Option<Admission>,
    /// The limits' state for the `x-ratelimit-*` headers.
    pub rate: RateHeaders,
    /// The price of the model whose answer was taken.
    pub price: Option<Price>,
    /// The tokens the answer reported.
    pub usage: Option<Usage>,
    /// The call's place in its agent run, if it belongs to one.
    pub run: Option<RunTicket>,
    /// The guardrail policies that apply (the alias's and the tenant's).
    pub guardrails: Vec<Arc<crate::guardrails::GuardrailPolicy>>,
    /// What a streamed answer's guardrails fired (filled while the stream is relayed).
    pub stream_hits: Option<std::rc::Rc<std::cell::RefCell<Vec<crate::guardrails::Hit>>>>,
    /// The JSON schemas the answer's output must match (the alias's, the client's).
    pub schemas: Vec<OutputSchema>,
    /// What a streamed answer's schema check found (filled when the stream ends).
    pub stream_verdict: Option<std::rc::Rc<std::cell::RefCell<Option<Violation>>>>,
    /// A streamed call asked of the provider whole (`buffer_stream`): its checked answer
    /// is sent as a stream; the flag is the client's `include_usage`.
    pub replay_stream: Option<bool>,
    /// What answers thrown away for failing their schema used (charged with the answer).
    pub discarded: Discarded,
    /// With `log_bodies`: the guardrail rules the recorded bodies are redacted with.
    pub log_bodies: Option<Vec<Arc<crate::guardrails::GuardrailPolicy>>>,
    /// The trace it belongs to and its span ids.
    pub trace: crate::observe::trace::TraceContext,
}

/// Tokens and cost of answers the gateway threw away (an output that failed its schema):
/// the provider was paid for them.
#[derive(Debug, Clone, Copy, Default)]
pub struct Discarded {
    /// Their tokens.
    pub usage: Usage,
    /// Their cost in micro-dollars, at each answering target's price.
    pub cost_micros: u64,
}

impl Discarded {
    /// Adds one thrown-away answer.
    pub fn add(&mut self, usage: Option<Usage>, cost_micros: u64) {
        if let Some(u) = usage {
            self.usage += u;
        }
        self.cost_micros += cost_micros;
    }

    /// Whether anything was thrown away.
    pub fn any(&self) -> bool {
        self.cost_micros > 0 || self.usage != Usage::default()
    }
}

/// The state `x-ratelimit-*` headers report: the tightest request and token limits.
#[derive(Debug, Clone, Copy, Default)]
pub struct RateHeaders {
    /// Requests per minute.
    pub requests: Option<RateState>,
    /// Tokens per minute.
    pub tokens: Option<RateState>,
}

impl RateHeaders {
    /// What a refusal by a rate limit reports (a budget refusal reports none).
    pub fn of_refusal(r: &Refusal) -> Self {
        match r.rule {
            Rule::Requests => Self {
                requests: r.rate,
                tokens: None,
            },
            Rule::Tokens => Self {
                requests: None,
                tokens: r.rate,
            },
            Rule::Budget => Self::default(),
        }
    }

    /// Whether there is anything to report (then a provider's own headers are not passed on).
    pub fn any(&self) -> bool {
        self.requests.is_some() || self.tokens.is_some()
    }

    /// Adds the headers OpenAI's clients read: limit, remaining, reset (a duration).
    pub fn write(&self, mut head: ResponseHead) -> ResponseHead {
        const NAMES: [[&str; 3]; 2] = [
            [
                "x-ratelimit-limit-requests",
                "x-ratelimit-remaining-requests",
                "x-ratelimit-reset-requests",
            ],
            [
                "x-ratelimit-limit-tokens",
                "x-ratelimit-remaining-tokens",
                "x-ratelimit-reset-tokens",
            ],
        ];
        for ([limit, remaining, reset], state) in
            NAMES.into_iter().zip([self.requests, self.tokens])
        {
            if let Some(st) = state {
                head = head
                    .header_display(limit, st.limit)
                    .header_display(remaining, st.remaining)
                    .header(reset, st.reset().as_bytes());
            }
        }
        head
    }
}

/// What identifies a request from its head on: its id and endpoint, known before the
/// request runs so even a request that panics is answered and recorded under them.
#[derive(Debug, Clone)]
pub struct RequestId {
    /// `x-infergate-request-id`.
    pub id: IdText,
    /// The endpoint the path names, if any.
    pub endpoint: Option<Endpoint>,
}

impl RequestId {
    /// Draws an id for the request `head` starts.
    pub fn new(head: &RequestHead) -> Self {
        Self {
            id: IdText::random(),
            endpoint: Endpoint::from_path(head.path()),
        }
    }
}

/// A request id, 32 lowercase hex digits of a random `u128`, held inline so the copies the
/// panic guard and the session keep don't allocate; the record gets its own `String`.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct IdText([u8; 32]);

impl IdText {
    /// A new random id.
    pub fn random() -> Self {
        Self::of(fastrand::u128(..))
    }

    /// `n` as 32 lowercase hex digits, as `format!("{n:032x}")` writes it.
    fn of(n: u128) -> Self {
        let mut text = [b'0'; 32];
        for (i, digit) in text.iter_mut().enumerate() {
            let nibble = (n >> (124 - 4 * i)) & 0xf;
            *digit = char::from_digit(nibble as u32, 16).map_or(b'0', |c| c as u8);
        }
        Self(text)
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        std::str::from_utf8(&self.0).unwrap_or_default()
    }

    /// The id's bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

impl std::fmt::Display for IdText {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::fmt::Debug for IdText {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(self.as_str(), f)
    }
}

/// The client's request once its body is read and parsed.
pub struct ClientRequest {
    /// The body as received.
    pub body: Bytes,
    /// The fields the gateway reads (the model, streaming), with the model's place in `body`.
    pub view: ChatRequestView,
}

impl<'a> Session<'a> {
    /// Starts a request: the clock, its id, an empty record.
    pub fn new(
        ctx: &'a ShardCtx,
        table: &'a RouteTable,
        conn: &'a mut ServerConn,
        head: RequestHead,
        limits: &'a ServerLimits,
        id: RequestId,
    ) -> Self {
        let request_id = id.id;
        let mut record = RequestRecord::started(request_id.as_str().to_owned(), ctx.shard_id);
        let trace = ctx.tracer.begin(&head.headers);
        record.trace_id = trace.trace_id;
        let keep_alive = head.wants_keep_alive() && !ctx.lifecycle.is_draining();
        Self {
            ctx,
            table,
            conn,
            limits,
            head,
            request_id,
            started: Instant::now(),
            endpoint: Endpoint::ChatCompletions,
            dialect: WireApi::Chat,
            keep_alive,
            body_read: false,
            cache: None,
            record,
            profile: None,
            admission: None,
            rate: RateHeaders::default(),
            price: None,
            usage: None,
            run: None,
            guardrails: Vec::new(),
            stream_hits: None,
            schemas: Vec::new(),
            stream_verdict: None,
            replay_stream: None,
            discarded: Discarded::default(),
            log_bodies: None,
            trace,
        }
    }

    /// Sets the endpoint once the path is known; errors come in its dialect from then on.
    pub fn set_endpoint(&mut self, endpoint: Endpoint) {
        self.endpoint = endpoint;
        self.dialect = endpoint.error_wire();
        self.record.endpoint = endpoint.as_str();
    }

    /// Whether the connection can serve another request after this one's response.
    pub fn can_keep_alive(&self) -> bool {
        self.keep_alive && (self.body_read || !announces_body(&self.head))
    }

    /// Starts a response head with the gateway's own headers (the request id, and the
    /// key's rate limits when it has any).
    pub fn response_head(&self, status: u16) -> ResponseHead {
        let head = ResponseHead::new(Vec::with_capacity(512), status)
            .header("x-infergate-request-id", self.request_id.as_bytes());
        if self.rate.any() {
            self.rate.write(head)
        } else {
            head
        }
    }

    /// Milliseconds since the head was read.
    pub fn elapsed_ms(&self) -> f64 {
        super::ms_since(self.started)
    }
}

/// Whether the request announced a body.
fn announces_body(head: &RequestHead) -> bool {
    head.headers.get("transfer-encoding").is_some()
        || head
            .headers
            .get_str("content-length")
            .is_some_and(|v| v.trim() != "0")
}

#[cfg(test)]
mod tests {
    use super::IdText;

    #[test]
    fn id_text_is_32_lowercase_hex_digits() {
        for n in [
            0,
            1,
            0xabc,
            u128::MAX,
            0x0123_4567_89ab_cdef_fedc_ba98_7654_3210,
        ] {
            assert_eq!(IdText::of(n).as_str(), format!("{n:032x}"));
        }
        let id = IdText::random();
        assert_eq!(id.to_string(), id.as_str());
        assert_eq!(format!("{id:?}"), format!("{:?}", id.as_str()));
    }
}
