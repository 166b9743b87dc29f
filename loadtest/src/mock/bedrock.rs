//! AWS Bedrock Runtime Converse: `POST /model/{modelId}/converse` (JSON) and
//! `POST /model/{modelId}/converse-stream` (`application/vnd.amazon.eventstream` frames), with
//! SigV4 authentication checked as AWS checks it.
//!
//! Authentication: an `authorization` header `AWS4-HMAC-SHA256 Credential=KEY/DATE/REGION/bedrock/aws4_request,
//! SignedHeaders=…, Signature=…` and `x-amz-date` are required (else 403
//! `MissingAuthenticationTokenException` / `IncompleteSignatureException`, or
//! `InvalidSignatureException` for a scope not for `bedrock`). When the server is given a
//! secret (`MockConfig::aws_secret_access_key`, env `MOCKLLM_AWS_SECRET_ACCESS_KEY`) the
//! signature is recomputed from the request as received and a mismatch is 403
//! `InvalidSignatureException`; with an access key id configured too, another key id is 403
//! `UnrecognizedClientException`. The clock-skew check AWS makes is not made (tests sign
//! with fixed times).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::peer::Peer;
use aws_sigv4::http_request::{sign, SignableBody, SignableRequest, SigningSettings};
use aws_sigv4::sign::v4;
use aws_smithy_runtime_api::client::identity::Identity;
use serde::Deserialize;
use serde_json::{json, Value};

use super::config::{MockConfig, RequestKnobs};
use super::deliver::{fault_before_answer, send_events, send_json, EventStream};
use super::dialect::Dialect;
use super::fault::Fault;
use super::handler::ServerContext;
use super::request::Request;
use super::respond::{random_id, sleep_if_any, write_json, Next};
use super::stats::Endpoint;
use super::text;
use super::tools::{self, PlannedCall, ToolSpec, ToolTrigger};

/// Bytes of tool input JSON per streamed `toolUse` delta.
const INPUT_PIECE: usize = 8;

/// The `x-amzn-ErrorType` namespace AWS appends to the error name.
const ERROR_NAMESPACE: &str = "http://internal.amazon.com/coral/com.amazon.bedrock/";

/// The Bedrock exception name for an HTTP status (error responses and stream exceptions).
pub fn exception_name(status: u16) -> &'static str {
    match status {
        403 => "AccessDeniedException",
        404 => "ResourceNotFoundException",
        408 => "ModelTimeoutException",
        424 => "ModelErrorException",
        429 => "ThrottlingException",
        503 => "ServiceUnavailableException",
        500..=599 => "InternalServerException",
        _ => "ValidationException",
    }
}

/// `x-amzn-errortype: NAME:namespace\r\n`, the header that carries a Bedrock error's type.
pub fn error_type_header(name: &str) -> String {
    format!("x-amzn-errortype: {name}:{ERROR_NAMESPACE}\r\n")
}

/// Appends one event-stream frame (string headers, `payload`) to `out`: total length, headers
/// length, prelude CRC32, headers, payload, message CRC32.
pub fn encode_frame(headers: &[(&str, &str)], payload: &[u8], out: &mut Vec<u8>) {
    let start = out.len();
    out.extend_from_slice(&[0; 12]);
    for (name, value) in headers {
        out.push(name.len().min(255) as u8);
        out.extend_from_slice(&name.as_bytes()[..name.len().min(255)]);
        out.push(7);
        let value = &value.as_bytes()[..value.len().min(u16::MAX as usize)];
        out.extend_from_slice(&(value.len() as u16).to_be_bytes());
        out.extend_from_slice(value);
    }
    let headers_len = (out.len() - start - 12) as u32;
    out.extend_from_slice(payload);
    let total = (out.len() - start + 4) as u32;
    out[start..start + 4].copy_from_slice(&total.to_be_bytes());
    out[start + 4..start + 8].copy_from_slice(&headers_len.to_be_bytes());
    let prelude_crc = crc32fast::hash(&out[start..start + 8]);
    out[start + 8..start + 12].copy_from_slice(&prelude_crc.to_be_bytes());
    let crc = crc32fast::hash(&out[start..]);
    out.extend_from_slice(&crc.to_be_bytes());
}

/// An `event` frame of type `event_type` with a JSON payload.
fn event(event_type: &str, payload: &Value) -> Vec<u8> {
    let mut out = Vec::with_capacity(128);
    encode_frame(
        &[
            (":event-type", event_type),
            (":content-type", "application/json"),
            (":message-type", "event"),
        ],
        payload.to_string().as_bytes(),
        &mut out,
    );
    out
}

/// The `exception` frame reporting an error after the stream began
/// (`:exception-type` is the exception name with a lower-case first letter).
pub fn exception_frame(status: u16, message: &str) -> Vec<u8> {
    let name = exception_name(status);
    let mut kind = String::with_capacity(name.len());
    let mut chars = name.chars();
    if let Some(c) = chars.next() {
        kind.push(c.to_ascii_lowercase());
    }
    kind.extend(chars);
    let mut out = Vec::with_capacity(128);
    encode_frame(
        &[
            (":exception-type", &kind),
            (":content-type", "application/json"),
            (":message-type", "exception"),
        ],
        json!({ "message": message }).to_string().as_bytes(),
        &mut out,
    );
    out
}

/// The fields of a Converse request the mock reads.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ConverseRequest {
    messages: Vec<Message>,
    #[serde(default)]
    system: Option<Vec<Value>>,
    #[serde(default)]
    inference_config: Option<InferenceConfig>,
    #[serde(default)]
    tool_config: Option<ToolConfig>,
}

#[derive(Debug, Deserialize)]
struct Message {
    role: String,
    content: Vec<Value>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct InferenceConfig {
    #[serde(default)]
    max_tokens: Option<u32>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ToolConfig {
    tools: Vec<Value>,
    #[serde(default)]
    tool_choice: Option<Value>,
}

/// Text of the `text` blocks (joined by spaces).
fn blocks_text(blocks: &[Value]) -> String {
    blocks
        .iter()
        .filter_map(|b| b.get("text").and_then(Value::as_str))
        .collect::<Vec<_>>()
        .join(" ")
}

/// The text (and JSON) of the `toolResult` blocks, or `None` when there is none.
fn tool_results(blocks: &[Value]) -> Option<String> {
    let results: Vec<String> = blocks
        .iter()
        .filter_map(|b| b.get("toolResult"))
        .map(|r| {
            r.get("content")
                .and_then(Value::as_array)
                .map(|c| {
                    c.iter()
                        .map(|p| match (p.get("text"), p.get("json")) {
                            (Some(Value::String(t)), _) => t.clone(),
                            (_, Some(j)) => j.to_string(),
                            _ => String::new(),
                        })
                        .collect::<Vec<_>>()
                        .join(" ")
                })
                .unwrap_or_default()
        })
        .collect();
    (!results.is_empty()).then(|| results.join(" "))
}

/// Writes a Bedrock error: `{"message"}` with the type in `x-amzn-errortype`; counted as a
/// bad request.
async fn error(
    stream: &mut Peer<'_>,
    status: u16,
    name: &str,
    message: &str,
    keep_alive: bool,
    ctx: &ServerContext,
) -> std::io::Result<Next> {
    ctx.stats.count_request(Endpoint::BadRequest);
    let body = Dialect::Bedrock.error_body(status, message);
    write_json(stream, status, &body, keep_alive, &error_type_header(name)).await
}

/// Why a request's SigV4 authentication failed: (status, exception name, message).
type AuthFailure = (u16, &'static str, String);

/// The parts of an `authorization` header.
#[derive(Debug, PartialEq, Eq)]
struct Authorization<'a> {
    key_id: &'a str,
    date: &'a str,
    region: &'a str,
    service: &'a str,
    signed_headers: &'a str,
    signature: &'a str,
}

fn parse_authorization(value: &str) -> Option<Authorization<'_>> {
    let rest = value.strip_prefix("AWS4-HMAC-SHA256 ")?;
    let (mut credential, mut signed, mut signature) = (None, None, None);
    for part in rest.split(',') {
        let (k, v) = part.trim().split_once('=')?;
        match k {
            "Credential" => credential = Some(v),
            "SignedHeaders" => signed = Some(v),
            "Signature" => signature = Some(v),
            _ => return None,
        }
    }
    let mut scope = credential?.split('/');
    let auth = Authorization {
        key_id: scope.next()?,
        date: scope.next()?,
        region: scope.next()?,
        service: scope.next()?,
        signed_headers: signed?,
        signature: signature?,
    };
    (scope.next()? == "aws4_request" && scope.next().is_none()).then_some(auth)
}

/// `20240610T061320Z` → time.
fn parse_amz_date(s: &str) -> Option<SystemTime> {
    let b = s.as_bytes();
    if b.len() != 16 || b[8] != b'T' || b[15] != b'Z' {
        return None;
    }
    let num = |r: std::ops::Range<usize>| s.get(r)?.parse::<i64>().ok();
    let (y, m, d) = (num(0..4)?, num(4..6)?, num(6..8)?);
    let (hh, mm, ss) = (num(9..11)?, num(11..13)?, num(13..15)?);
    if !(1..=12).contains(&m) || !(1..=31).contains(&d) || hh > 23 || mm > 59 || ss > 60 {
        return None;
    }
    // Days from the civil date (Howard Hinnant's algorithm).
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let secs = days * 86_400 + hh * 3600 + mm * 60 + ss;
    Some(UNIX_EPOCH + Duration::from_secs(u64::try_from(secs).ok()?))
}

/// Checks the request's SigV4 authentication (see the module documentation).
fn check_auth(request: &Request, config: &MockConfig) -> Result<(), AuthFailure> {
    let Some(value) = request.header("authorization") else {
        return Err((
            403,
            "MissingAuthenticationTokenException",
            "Missing Authentication Token".into(),
        ));
    };
    let incomplete = |what: &str| {
        (
            403,
            "IncompleteSignatureException",
            format!("Authorization header requires {what}. Authorization={value}"),
        )
    };
    let auth = parse_authorization(value)
        .ok_or_else(|| incomplete("'Credential', 'Signature' and 'SignedHeaders' parameters"))?;
    let amz_date = request
        .header("x-amz-date")
        .ok_or_else(|| incomplete("existence of either a 'X-Amz-Date' or a 'Date' header"))?;
    if auth.service != "bedrock" {
        return Err((
            403,
            "InvalidSignatureException",
            format!(
                "Credential should be scoped to correct service: 'bedrock'. Found '{}'",
                auth.service
            ),
        ));
    }
    let Some(secret) = config.aws_secret_access_key.as_deref() else {
        return Ok(());
    };
    if config
        .aws_access_key_id
        .as_deref()
        .is_some_and(|id| id != auth.key_id)
    {
        return Err((
            403,
            "UnrecognizedClientException",
            "The security token included in the request is invalid.".into(),
        ));
    }
    let invalid = || {
        (
            403,
            "InvalidSignatureException",
            "The request signature we calculated does not match the signature you provided. \
             Check your AWS Secret Access Key and signing method."
                .to_string(),
        )
    };
    let time = parse_amz_date(amz_date).ok_or_else(invalid)?;
    if !amz_date.starts_with(auth.date) {
        return Err(invalid());
    }
    let expected = signature_for(request, &auth, secret, time).ok_or_else(invalid)?;
    if expected != auth.signature {
        return Err(invalid());
    }
    Ok(())
}

/// Recomputes the signature of `request` over the headers it says it signed.
fn signature_for(
    request: &Request,
    auth: &Authorization<'_>,
    secret: &str,
    time: SystemTime,
) -> Option<String> {
    let host = request.header("host")?;
    let mut headers = Vec::new();
    for name in auth.signed_headers.split(';') {
        let values: Vec<&str> = request
            .headers
            .iter()
            .filter(|(n, _)| n == name)
            .map(|(_, v)| v.trim())
            .collect();
        if values.is_empty() {
            return None;
        }
        headers.extend(values.into_iter().map(|v| (name, v)));
    }
    let identity: Identity =
        aws_credential_types::Credentials::new(auth.key_id, secret, None, None, "mockllm").into();
    let mut settings = SigningSettings::default();
    // Sign exactly the headers the client listed.
    settings.excluded_headers = None;
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region(auth.region)
        .name(auth.service)
        .time(time)
        .settings(settings)
        .build()
        .ok()?
        .into();
    let uri = if request.query.is_empty() {
        format!("https://{host}{}", request.path)
    } else {
        format!("https://{host}{}?{}", request.path, request.query)
    };
    let signable = SignableRequest::new(
        &request.method_name,
        uri,
        headers.into_iter(),
        SignableBody::Bytes(&request.body),
    )
    .ok()?;
    let (_, signature) = sign(signable, &params).ok()?.into_parts();
    Some(signature)
}

/// Routes `POST /model/{modelId}/converse` and `/converse-stream`.
pub async fn route(
    stream: &mut Peer<'_>,
    request: &Request,
    knobs: RequestKnobs,
    ctx: &ServerContext,
) -> std::io::Result<Next> {
    let keep_alive = request.keep_alive;
    let rest = request.path.trim_start_matches("/model/");
    let streaming = match rest.rsplit_once('/') {
        Some((model, "converse")) if !model.is_empty() => false,
        Some((model, "converse-stream")) if !model.is_empty() => true,
        _ => {
            let msg = format!("Unknown operation: {}", request.path);
            return error(
                stream,
                404,
                "UnknownOperationException",
                &msg,
                keep_alive,
                ctx,
            )
            .await;
        }
    };
    if let Err((status, name, msg)) = check_auth(request, &ctx.config) {
        return error(stream, status, name, &msg, keep_alive, ctx).await;
    }
    let body: ConverseRequest = match serde_json::from_slice(&request.body) {
        Ok(b) => b,
        Err(e) => {
            let msg =
                format!("Malformed input request: {e}, please reformat your input and try again.");
            return error(stream, 400, "ValidationException", &msg, keep_alive, ctx).await;
        }
    };
    if let Err(msg) = validate(&body) {
        return error(stream, 400, "ValidationException", msg, keep_alive, ctx).await;
    }
    ctx.stats.count_request(if streaming {
        Endpoint::BedrockConverseStream
    } else {
        Endpoint::BedrockConverse
    });
    let streaming = Fault::streams(knobs.fault, streaming);
    if let Some(done) = fault_before_answer(
        stream,
        &knobs,
        streaming,
        Dialect::Bedrock,
        keep_alive,
        &ctx.stats,
    )
    .await
    {
        return done;
    }
    let answer = plan_answer(&body, request, &knobs);
    if streaming {
        send_events(
            stream,
            answer.events(),
            &knobs,
            Dialect::Bedrock,
            keep_alive,
            &ctx.stats,
        )
        .await
    } else {
        sleep_if_any(knobs.ttft + knobs.itl * answer.output_tokens).await;
        let out = answer.response().to_string();
        send_json(stream, out.as_bytes(), &knobs, keep_alive, &ctx.stats).await
    }
}

/// The checks Converse makes on the conversation, with its messages.
fn validate(body: &ConverseRequest) -> Result<(), &'static str> {
    let Some(first) = body.messages.first() else {
        return Err(
            "The model returned the following errors: messages: at least one message is required",
        );
    };
    if first.role != "user" {
        return Err("A conversation must start with a user message. Try again with a conversation that starts with a user message.");
    }
    for pair in body.messages.windows(2) {
        if pair[0].role == pair[1].role {
            return Err("A conversation must alternate between user and assistant roles. Make sure the conversation alternates between user and assistant roles and try again.");
        }
    }
    if body
        .messages
        .iter()
        .any(|m| m.role != "user" && m.role != "assistant")
    {
        return Err("messages.role: Member must satisfy enum value set: [user, assistant]");
    }
    let uses_tools = body.messages.iter().any(|m| {
        m.content
            .iter()
            .any(|b| b.get("toolUse").is_some() || b.get("toolResult").is_some())
    });
    if uses_tools && body.tool_config.is_none() {
        return Err("The toolConfig field must be defined when using toolUse and toolResult content blocks.");
    }
    if body
        .messages
        .iter()
        .flat_map(|m| &m.content)
        .any(|b| b.get("text").and_then(Value::as_str) == Some(""))
    {
        return Err("The text field in the ContentBlock object is blank. Add text to the text field, and try again.");
    }
    Ok(())
}

/// What the answer holds.
enum Content {
    Text(Vec<String>),
    ToolUse(Vec<(String, PlannedCall)>),
}

struct Answer {
    content: Content,
    stop_reason: &'static str,
    input_tokens: u32,
    output_tokens: u32,
}

fn plan_answer(body: &ConverseRequest, request: &Request, knobs: &RequestKnobs) -> Answer {
    let last_user = body.messages.iter().rev().find(|m| m.role == "user");
    let tool_result = last_user.and_then(|m| tool_results(&m.content));
    let prompt = last_user
        .map(|m| blocks_text(&m.content))
        .unwrap_or_default();
    let chars: usize = body
        .messages
        .iter()
        .map(|m| Value::Array(m.content.clone()).to_string().len())
        .sum::<usize>()
        + body.system.as_ref().map_or(0, |s| blocks_text(s).len())
        + body
            .tool_config
            .as_ref()
            .map_or(0, |t| t.tools.iter().map(|t| t.to_string().len()).sum());
    let content = match tool_result {
        Some(result) => Content::Text(text::tool_result_tokens(&result, knobs.tokens)),
        None => {
            let calls = plan_calls(body, &prompt, request, knobs);
            if calls.is_empty() {
                Content::Text(text::reply_or_scripted(knobs.reply, &prompt, knobs.tokens))
            } else {
                Content::ToolUse(
                    calls
                        .into_iter()
                        .map(|c| (random_id("tooluse_", 22), c))
                        .collect(),
                )
            }
        }
    };
    let max = body.inference_config.as_ref().and_then(|c| c.max_tokens);
    let (content, stop_reason) = match content {
        Content::Text(mut tokens) => match max {
            Some(m) if tokens.len() > m as usize => {
                tokens.truncate(m as usize);
                (Content::Text(tokens), "max_tokens")
            }
            _ => (Content::Text(tokens), "end_turn"),
        },
        calls @ Content::ToolUse(_) => (calls, "tool_use"),
    };
    let output_tokens = match &content {
        Content::Text(tokens) => u32::try_from(tokens.len()).unwrap_or(u32::MAX),
        Content::ToolUse(calls) => calls
            .iter()
            .map(|(_, c)| text::estimate_tokens(c.arguments.to_string().len() + c.name.len()))
            .sum(),
    };
    Answer {
        content,
        stop_reason,
        input_tokens: text::estimate_tokens(chars),
        output_tokens,
    }
}

fn plan_calls(
    body: &ConverseRequest,
    prompt: &str,
    request: &Request,
    knobs: &RequestKnobs,
) -> Vec<PlannedCall> {
    let Some(config) = &body.tool_config else {
        return Vec::new();
    };
    let specs: Vec<ToolSpec<'_>> = config
        .tools
        .iter()
        .filter_map(|t| {
            let spec = t.get("toolSpec")?;
            Some(ToolSpec {
                name: spec.get("name")?.as_str()?,
                schema: spec.get("inputSchema").and_then(|s| s.get("json")),
            })
        })
        .collect();
    let choice = config.tool_choice.as_ref();
    let chosen = choice
        .and_then(|c| c.get("tool"))
        .and_then(|t| t.get("name"))
        .and_then(Value::as_str)
        .or_else(|| {
            choice
                .and_then(|c| c.get("any"))
                .and_then(|_| specs.first().map(|t| t.name))
        });
    let trigger = ToolTrigger {
        forced: request.header("x-mock-tool-call").or(chosen),
        count: knobs.tool_calls,
    };
    tools::plan(&specs, prompt, trigger)
}

impl Answer {
    fn usage(&self) -> Value {
        json!({
            "inputTokens": self.input_tokens,
            "outputTokens": self.output_tokens,
            "totalTokens": self.input_tokens + self.output_tokens,
        })
    }

    fn metrics(&self) -> Value {
        json!({ "latencyMs": 100 + self.output_tokens * 10 })
    }

    /// The `converse` response body.
    fn response(&self) -> Value {
        let blocks: Vec<Value> = match &self.content {
            Content::Text(tokens) => vec![json!({ "text": tokens.concat() })],
            Content::ToolUse(calls) => calls
                .iter()
                .map(|(id, c)| {
                    json!({"toolUse": {"toolUseId": id, "name": c.name, "input": c.arguments}})
                })
                .collect(),
        };
        json!({
            "output": {"message": {"role": "assistant", "content": blocks}},
            "stopReason": self.stop_reason,
            "usage": self.usage(),
            "metrics": self.metrics(),
        })
    }

    /// `messageStart`, (`contentBlockStart` for tool use), `contentBlockDelta`s,
    /// `contentBlockStop`, `messageStop`, `metadata`: the documented order.
    fn events(&self) -> EventStream {
        let mut events = EventStream {
            lead: vec![event("messageStart", &json!({"role": "assistant"}))],
            ..EventStream::default()
        };
        let last = match &self.content {
            Content::Text(tokens) => {
                events.paced = tokens
                    .iter()
                    .map(|t| {
                        event(
                            "contentBlockDelta",
                            &json!({"contentBlockIndex": 0, "delta": {"text": t}}),
                        )
                    })
                    .collect();
                0
            }
            Content::ToolUse(calls) => {
                for (index, (id, call)) in calls.iter().enumerate() {
                    let start = event(
                        "contentBlockStart",
                        &json!({"contentBlockIndex": index,
                                "start": {"toolUse": {"toolUseId": id, "name": call.name}}}),
                    );
                    if index == 0 {
                        events.lead.push(start);
                    } else {
                        let mut both = block_stop(index - 1);
                        both.extend_from_slice(&start);
                        events.paced.push(both);
                    }
                    let input = call.arguments.to_string();
                    for piece in tools::pieces(&input, INPUT_PIECE) {
                        events.paced.push(event(
                            "contentBlockDelta",
                            &json!({"contentBlockIndex": index,
                                    "delta": {"toolUse": {"input": piece}}}),
                        ));
                    }
                }
                calls.len().saturating_sub(1)
            }
        };
        events.tail.push(block_stop(last));
        events.tail.push(event(
            "messageStop",
            &json!({"stopReason": self.stop_reason}),
        ));
        events.tail.push(event(
            "metadata",
            &json!({"usage": self.usage(), "metrics": self.metrics()}),
        ));
        events
    }
}

fn block_stop(index: usize) -> Vec<u8> {
    event("contentBlockStop", &json!({ "contentBlockIndex": index }))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn unhex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    /// Splits a byte stream into frames, checking both CRCs: [(headers, payload)].
    #[allow(clippy::type_complexity)]
    fn frames(mut b: &[u8]) -> Vec<(Vec<(String, String)>, Vec<u8>)> {
        let mut out = Vec::new();
        while !b.is_empty() {
            let total = u32::from_be_bytes(b[0..4].try_into().unwrap()) as usize;
            let hlen = u32::from_be_bytes(b[4..8].try_into().unwrap()) as usize;
            assert_eq!(
                u32::from_be_bytes(b[8..12].try_into().unwrap()),
                crc32fast::hash(&b[..8])
            );
            assert_eq!(
                u32::from_be_bytes(b[total - 4..total].try_into().unwrap()),
                crc32fast::hash(&b[..total - 4])
            );
            let mut h = &b[12..12 + hlen];
            let mut headers = Vec::new();
            while !h.is_empty() {
                let n = h[0] as usize;
                let name = String::from_utf8(h[1..1 + n].to_vec()).unwrap();
                assert_eq!(h[1 + n], 7);
                let vlen = u16::from_be_bytes([h[2 + n], h[3 + n]]) as usize;
                let value = String::from_utf8(h[4 + n..4 + n + vlen].to_vec()).unwrap();
                headers.push((name, value));
                h = &h[4 + n + vlen..];
            }
            out.push((headers, b[12 + hlen..total - 4].to_vec()));
            b = &b[total..];
        }
        out
    }

    fn header<'a>(h: &'a [(String, String)], name: &str) -> &'a str {
        h.iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
            .unwrap()
    }

    #[test]
    fn frame_encoder_matches_the_aws_vector() {
        let mut out = Vec::new();
        encode_frame(
            &[("content-type", "application/json")],
            b"{'foo':'bar'}",
            &mut out,
        );
        assert_eq!(out, unhex("0000003d0000002007fd83960c636f6e74656e742d747970650700106170706c69636174696f6e2f6a736f6e7b27666f6f273a27626172277d8d9c08b1"));
    }

    fn request(headers: &[(&str, &str)], path: &str, body: &[u8]) -> Request {
        Request {
            method: super::super::request::Method::Post,
            method_name: "POST".into(),
            path: path.into(),
            query: String::new(),
            headers: headers
                .iter()
                .map(|(n, v)| (n.to_string(), v.to_string()))
                .collect(),
            keep_alive: true,
            knobs: Ok(RequestKnobs::from_config(&MockConfig::default())),
            body: body.to_vec(),
        }
    }

    /// The botocore-signed Converse request also used by infergate's signer test.
    fn botocore_request(signature: &str) -> Request {
        let auth = format!("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20240610/us-west-2/bedrock/aws4_request, SignedHeaders=accept;content-type;host;x-amz-date;x-amz-security-token, Signature={signature}");
        request(
            &[
                ("host", "bedrock-runtime.us-west-2.amazonaws.com"),
                ("content-type", "application/json"),
                ("accept", "application/json"),
                ("x-amz-date", "20240610T061320Z"),
                ("x-amz-security-token", "FQoGZXIvYXdzEXAMPLETOKEN"),
                ("authorization", &auth),
            ],
            "/model/anthropic.claude-3-5-sonnet-20240620-v1%3A0/converse",
            br#"{"messages":[{"role":"user","content":[{"text":"Hello"}]}]}"#,
        )
    }

    const BOTOCORE_SIGNATURE: &str =
        "9932f8d9fa07bb9cc72fd8d12ae4a06311d5ce081ebfe523388686702342383c";

    fn with_secret(key_id: Option<&str>) -> MockConfig {
        MockConfig {
            aws_secret_access_key: Some("wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY".into()),
            aws_access_key_id: key_id.map(str::to_owned),
            ..MockConfig::default()
        }
    }

    #[test]
    fn signatures_are_verified_when_a_secret_is_set() {
        let good = botocore_request(BOTOCORE_SIGNATURE);
        assert_eq!(check_auth(&good, &with_secret(None)), Ok(()));
        assert_eq!(check_auth(&good, &with_secret(Some("AKIDEXAMPLE"))), Ok(()));
        assert_eq!(check_auth(&good, &MockConfig::default()), Ok(()));
        let bad = botocore_request(&BOTOCORE_SIGNATURE.replace('9', "8"));
        assert_eq!(
            check_auth(&bad, &with_secret(None)).unwrap_err().1,
            "InvalidSignatureException"
        );
        // Without a secret only the form is checked.
        assert_eq!(check_auth(&bad, &MockConfig::default()), Ok(()));
        assert_eq!(
            check_auth(&good, &with_secret(Some("AKIAOTHER")))
                .unwrap_err()
                .1,
            "UnrecognizedClientException"
        );
        let mut tampered = botocore_request(BOTOCORE_SIGNATURE);
        tampered.body = br#"{"messages":[{"role":"user","content":[{"text":"Hellp"}]}]}"#.to_vec();
        assert_eq!(
            check_auth(&tampered, &with_secret(None)).unwrap_err().1,
            "InvalidSignatureException"
        );
    }

    #[test]
    fn malformed_authentication_is_refused() {
        let none = request(
            &[("x-amz-date", "20240610T061320Z")],
            "/model/m/converse",
            b"{}",
        );
        assert_eq!(
            check_auth(&none, &MockConfig::default()).unwrap_err(),
            (
                403,
                "MissingAuthenticationTokenException",
                "Missing Authentication Token".into()
            )
        );
        let partial = request(
            &[
                (
                    "authorization",
                    "AWS4-HMAC-SHA256 Credential=AKID/20240610/us-east-1/bedrock/aws4_request",
                ),
                ("x-amz-date", "20240610T061320Z"),
            ],
            "/model/m/converse",
            b"{}",
        );
        assert_eq!(
            check_auth(&partial, &MockConfig::default()).unwrap_err().1,
            "IncompleteSignatureException"
        );
        let wrong_service = request(
            &[("authorization", "AWS4-HMAC-SHA256 Credential=AKID/20240610/us-east-1/s3/aws4_request, SignedHeaders=host, Signature=ab"), ("x-amz-date", "20240610T061320Z")],
            "/model/m/converse",
            b"{}",
        );
        assert_eq!(
            check_auth(&wrong_service, &MockConfig::default())
                .unwrap_err()
                .1,
            "InvalidSignatureException"
        );
        let no_date = request(
            &[("authorization", "AWS4-HMAC-SHA256 Credential=AKID/20240610/us-east-1/bedrock/aws4_request, SignedHeaders=host, Signature=ab")],
            "/model/m/converse",
            b"{}",
        );
        assert_eq!(
            check_auth(&no_date, &MockConfig::default()).unwrap_err().1,
            "IncompleteSignatureException"
        );
    }

    #[test]
    fn amz_dates_parse() {
        assert_eq!(
            parse_amz_date("20240610T061320Z"),
            Some(UNIX_EPOCH + Duration::from_secs(1_718_000_000))
        );
        assert_eq!(
            parse_amz_date("20150830T123600Z"),
            Some(UNIX_EPOCH + Duration::from_secs(1_440_938_160))
        );
        assert_eq!(parse_amz_date("2024-06-10"), None);
    }

    fn converse(body: Value) -> ConverseRequest {
        serde_json::from_value(body).unwrap()
    }

    fn knobs() -> RequestKnobs {
        RequestKnobs {
            tokens: 4,
            ..RequestKnobs::from_config(&MockConfig::default())
        }
    }

    #[test]
    fn text_stream_is_in_documented_order() {
        let body =
            converse(json!({"messages": [{"role": "user", "content": [{"text": "hello there"}]}]}));
        let req = request(&[], "/model/m/converse-stream", b"");
        let answer = plan_answer(&body, &req, &knobs());
        let ev = answer.events();
        let all: Vec<u8> = ev
            .lead
            .iter()
            .chain(&ev.paced)
            .chain(&ev.tail)
            .flatten()
            .copied()
            .collect();
        let f = frames(&all);
        let types: Vec<&str> = f.iter().map(|(h, _)| header(h, ":event-type")).collect();
        assert_eq!(
            types,
            [
                "messageStart",
                "contentBlockDelta",
                "contentBlockDelta",
                "contentBlockDelta",
                "contentBlockDelta",
                "contentBlockStop",
                "messageStop",
                "metadata"
            ]
        );
        for (h, _) in &f {
            assert_eq!(header(h, ":message-type"), "event");
            assert_eq!(header(h, ":content-type"), "application/json");
        }
        let text: String = f[1..5]
            .iter()
            .map(|(_, p)| {
                serde_json::from_slice::<Value>(p).unwrap()["delta"]["text"]
                    .as_str()
                    .unwrap()
                    .to_owned()
            })
            .collect();
        assert!(text.starts_with("Echo:"));
        let meta: Value = serde_json::from_slice(&f[7].1).unwrap();
        assert_eq!(meta["usage"]["outputTokens"], 4);
        let stop: Value = serde_json::from_slice(&f[6].1).unwrap();
        assert_eq!(stop["stopReason"], "end_turn");
    }

    #[test]
    fn tools_are_called_and_results_answered() {
        let tools = json!({"tools": [{"toolSpec": {"name": "get_weather", "inputSchema": {"json":
            {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}}]});
        let body = converse(json!({"toolConfig": tools, "messages": [
            {"role": "user", "content": [{"text": "What is the weather in Paris?"}]}]}));
        let req = request(&[], "/model/m/converse", b"");
        let answer = plan_answer(&body, &req, &knobs());
        let resp = answer.response();
        assert_eq!(resp["stopReason"], "tool_use");
        let tu = &resp["output"]["message"]["content"][0]["toolUse"];
        assert_eq!(tu["name"], "get_weather");
        assert_eq!(tu["input"], json!({"city": "Paris"}));
        assert!(tu["toolUseId"].as_str().unwrap().starts_with("tooluse_"));
        let ev = answer.events();
        let all: Vec<u8> = ev
            .lead
            .iter()
            .chain(&ev.paced)
            .chain(&ev.tail)
            .flatten()
            .copied()
            .collect();
        let f = frames(&all);
        assert_eq!(header(&f[1].0, ":event-type"), "contentBlockStart");
        let start: Value = serde_json::from_slice(&f[1].1).unwrap();
        assert_eq!(start["start"]["toolUse"]["name"], "get_weather");
        let input: String = f
            .iter()
            .filter(|(h, _)| header(h, ":event-type") == "contentBlockDelta")
            .map(|(_, p)| {
                serde_json::from_slice::<Value>(p).unwrap()["delta"]["toolUse"]["input"]
                    .as_str()
                    .unwrap()
                    .to_owned()
            })
            .collect();
        assert_eq!(
            serde_json::from_str::<Value>(&input).unwrap(),
            json!({"city": "Paris"})
        );

        let body = converse(json!({"toolConfig": tools, "messages": [
            {"role": "user", "content": [{"text": "What is the weather in Paris?"}]},
            {"role": "assistant", "content": [{"toolUse": {"toolUseId": "t1", "name": "get_weather", "input": {"city": "Paris"}}}]},
            {"role": "user", "content": [{"toolResult": {"toolUseId": "t1", "content": [{"text": "18C sunny"}]}}]}]}));
        let resp = plan_answer(&body, &req, &knobs()).response();
        assert_eq!(resp["stopReason"], "end_turn");
        let text = resp["output"]["message"]["content"][0]["text"]
            .as_str()
            .unwrap();
        assert!(text.contains("18C") && text.contains("sunny"), "{text}");
    }

    #[test]
    fn conversation_rules_are_checked() {
        let ok = converse(json!({"messages": [{"role": "user", "content": [{"text": "a"}]}]}));
        assert!(validate(&ok).is_ok());
        let assistant_first =
            converse(json!({"messages": [{"role": "assistant", "content": [{"text": "a"}]}]}));
        assert!(validate(&assistant_first)
            .unwrap_err()
            .contains("start with a user"));
        let twice = converse(json!({"messages": [
            {"role": "user", "content": [{"text": "a"}]}, {"role": "user", "content": [{"text": "b"}]}]}));
        assert!(validate(&twice).unwrap_err().contains("alternate"));
        let no_config = converse(json!({"messages": [
            {"role": "user", "content": [{"toolResult": {"toolUseId": "t", "content": [{"text": "r"}]}}]}]}));
        assert!(validate(&no_config).unwrap_err().contains("toolConfig"));
        let blank = converse(json!({"messages": [{"role": "user", "content": [{"text": ""}]}]}));
        assert!(validate(&blank).unwrap_err().contains("blank"));
    }

    #[test]
    fn max_tokens_truncates() {
        let body = converse(json!({"inferenceConfig": {"maxTokens": 2},
            "messages": [{"role": "user", "content": [{"text": "hello"}]}]}));
        let resp = plan_answer(&body, &request(&[], "/", b""), &knobs()).response();
        assert_eq!(resp["stopReason"], "max_tokens");
        assert_eq!(resp["usage"]["outputTokens"], 2);
    }

    #[test]
    fn exception_frames_name_the_exception() {
        let f = frames(&exception_frame(429, "Too many requests"));
        assert_eq!(header(&f[0].0, ":message-type"), "exception");
        assert_eq!(header(&f[0].0, ":exception-type"), "throttlingException");
        assert_eq!(
            serde_json::from_slice::<Value>(&f[0].1).unwrap(),
            json!({"message": "Too many requests"})
        );
        assert_eq!(exception_name(500), "InternalServerException");
        assert_eq!(
            error_type_header("ValidationException"),
            "x-amzn-errortype: ValidationException:http://internal.amazon.com/coral/com.amazon.bedrock/\r\n"
        );
    }
}
