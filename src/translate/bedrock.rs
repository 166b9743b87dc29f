//! OpenAI Chat Completions ⇄ AWS Bedrock Converse: the request towards Bedrock
//! ([`chat_to_converse_request`]), the whole response back ([`converse_to_chat_response`]) and
//! Bedrock errors in OpenAI's shape ([`bedrock_error_to_openai`]). The stream is in
//! `bedrock_stream`. The model id is not in the Converse body (it is in the URL path).
//!
//! A field Converse cannot honour is refused with `TranslateError::Unsupported`, never dropped.
//! A field whose value is `null` or `false` counts as absent.

use super::write::parse_data_url;
use serde_json::{Map, Value};

use super::bedrock_types as br;
use super::error::{BEDROCK, OPENAI};
use super::openai_types as oa;
use super::request::reject_extra;
use super::response::{openai_error_body, unix_now};
use super::TranslateError;
use crate::wire::{FinishReason, Usage};

/// Translates an OpenAI Chat Completions request into a Bedrock Converse request body (for
/// `converse` or `converse-stream`: the caller picks the URL from the `stream` flag, which is
/// not sent; `stream_options.include_usage` is read by the stream translator, Bedrock always
/// reports usage).
pub fn chat_to_converse_request(body: &[u8]) -> Result<Vec<u8>, TranslateError> {
    let req: oa::ChatRequest =
        serde_json::from_slice(body).map_err(|e| TranslateError::invalid("OpenAI request", e))?;
    reject_extra(&req.extra, "", BEDROCK)?;
    if req.n.is_some_and(|n| n != 1) {
        return Err(TranslateError::unsupported("n", BEDROCK));
    }
    if let Some(so) = &req.stream_options {
        reject_extra(&so.extra, "stream_options.", BEDROCK)?;
    }
    if let Some(effort) = req.reasoning_effort {
        // Reasoning is configured per model family in `additionalModelRequestFields`
        // (Anthropic `thinking`, Nova `reasoningConfig`, ...), not in Converse itself.
        return Err(TranslateError::unsupported(
            format!("reasoning_effort={effort}"),
            BEDROCK,
        ));
    }
    if req.parallel_tool_calls == Some(false) {
        return Err(TranslateError::unsupported(
            "parallel_tool_calls=false",
            BEDROCK,
        ));
    }
    let mut out = br::ConverseRequest::default();
    if let Some(t) = req.temperature {
        if t > 1.0 {
            return Err(TranslateError::unsupported("temperature>1", BEDROCK));
        }
    }
    let stop = match req.stop {
        Some(oa::StopSequences::One(s)) => Some(vec![s]),
        Some(oa::StopSequences::Many(v)) if !v.is_empty() => Some(v),
        _ => None,
    };
    let inference = br::InferenceConfig {
        max_tokens: req.max_completion_tokens.or(req.max_tokens),
        temperature: req.temperature,
        top_p: req.top_p,
        stop_sequences: stop,
    };
    if inference.max_tokens.is_some()
        || inference.temperature.is_some()
        || inference.top_p.is_some()
        || inference.stop_sequences.is_some()
    {
        out.inference_config = Some(inference);
    }
    if let Some(rf) = req.response_format {
        match rf.kind.as_str() {
            "text" => {}
            "json_schema" => {
                let js = rf.json_schema.ok_or_else(|| {
                    TranslateError::invalid("OpenAI request", "response_format.json_schema missing")
                })?;
                let schema = js.schema.ok_or_else(|| {
                    TranslateError::invalid(
                        "OpenAI request",
                        "response_format.json_schema.schema missing",
                    )
                })?;
                out.output_config = Some(br::OutputConfig {
                    text_format: br::OutputFormat {
                        kind: "json_schema".into(),
                        structure: br::OutputFormatStructure {
                            json_schema: br::JsonSchemaDefinition {
                                schema: serde_json::to_string(&schema)
                                    .map_err(|e| TranslateError::invalid("OpenAI request", e))?,
                                name: Some(js.name),
                                description: js.description,
                            },
                        },
                    },
                });
            }
            other => {
                return Err(TranslateError::unsupported(
                    format!("response_format.type={other}"),
                    BEDROCK,
                ))
            }
        }
    }
    if let Some(user) = req.user {
        let mut md = Map::new();
        md.insert("user".into(), Value::String(user));
        out.request_metadata = Some(md);
    }
    let (system, messages, history_has_tools) = chat_messages(req.messages)?;
    out.system = (!system.is_empty()).then_some(system);
    out.messages = messages;
    let tools = req
        .tools
        .unwrap_or_default()
        .into_iter()
        .enumerate()
        .map(chat_tool)
        .collect::<Result<Vec<_>, _>>()?;
    out.tool_config = tool_config(tools, req.tool_choice, history_has_tools)?;
    serde_json::to_vec(&out).map_err(|e| TranslateError::invalid("Bedrock request", e))
}

fn chat_tool((i, tool): (usize, oa::Tool)) -> Result<br::ToolEntry, TranslateError> {
    if tool.kind != "function" {
        return Err(TranslateError::unsupported(
            format!("tools[{i}].type={}", tool.kind),
            BEDROCK,
        ));
    }
    reject_extra(&tool.extra, &format!("tools[{i}]."), BEDROCK)?;
    let f = tool.function.ok_or_else(|| {
        TranslateError::invalid("OpenAI request", format!("tools[{i}].function missing"))
    })?;
    reject_extra(&f.extra, &format!("tools[{i}].function."), BEDROCK)?;
    Ok(br::ToolEntry {
        tool_spec: br::ToolSpec {
            name: f.name,
            description: f.description,
            input_schema: br::InputSchema {
                json: f
                    .parameters
                    .unwrap_or_else(|| serde_json::json!({"type": "object", "properties": {}})),
            },
            strict: f.strict,
        },
    })
}

/// `toolConfig` from the tools and `tool_choice`. Converse has no `none` choice: with no tool
/// blocks in the history, `none` is honoured by not sending the tools at all; with tool blocks
/// in the history Converse requires `toolConfig`, which would let the model call tools, so
/// `none` is refused there. Tool blocks in the history with no `tools` are refused likewise.
fn tool_config(
    tools: Vec<br::ToolEntry>,
    choice: Option<oa::ToolChoice>,
    history_has_tools: bool,
) -> Result<Option<br::ToolConfig>, TranslateError> {
    let choice = match choice {
        None => None,
        Some(oa::ToolChoice::Mode(m)) => match m.as_str() {
            "auto" => Some(serde_json::json!({"auto": {}})),
            "required" => Some(serde_json::json!({"any": {}})),
            "none" if history_has_tools => {
                return Err(TranslateError::unsupported(
                    "tool_choice=none with tool calls in the history",
                    BEDROCK,
                ))
            }
            "none" => return Ok(None),
            _ => {
                return Err(TranslateError::unsupported(
                    format!("tool_choice={m}"),
                    BEDROCK,
                ))
            }
        },
        Some(oa::ToolChoice::Named(n)) => {
            if n.kind != "function" {
                return Err(TranslateError::unsupported(
                    format!("tool_choice.type={}", n.kind),
                    BEDROCK,
                ));
            }
            Some(serde_json::json!({"tool": {"name": n.function.name}}))
        }
    };
    if tools.is_empty() {
        if history_has_tools {
            return Err(TranslateError::unsupported(
                "messages with tool calls but no tools",
                BEDROCK,
            ));
        }
        if choice.is_some() {
            return Err(TranslateError::invalid(
                "OpenAI request",
                "tool_choice without tools",
            ));
        }
        return Ok(None);
    }
    Ok(Some(br::ToolConfig {
        tools,
        tool_choice: choice,
    }))
}

/// Splits OpenAI messages into Converse `system` and turns. `system` / `developer` messages
/// before the first turn become system blocks; `tool` messages become `toolResult` blocks in
/// a user turn; same-role neighbours are merged. Also says whether any tool block was written.
#[allow(clippy::type_complexity)]
fn chat_messages(
    msgs: Vec<oa::ChatMessage>,
) -> Result<(Vec<br::SystemBlock>, Vec<br::Message>, bool), TranslateError> {
    let mut system = Vec::new();
    let mut turns: Vec<br::Message> = Vec::new();
    let mut has_tools = false;
    for (i, m) in msgs.into_iter().enumerate() {
        let at = format!("messages[{i}]");
        reject_extra(&m.extra, &format!("{at}."), BEDROCK)?;
        if m.name.is_some() {
            return Err(TranslateError::unsupported(format!("{at}.name"), BEDROCK));
        }
        match m.role.as_str() {
            "system" | "developer" => {
                if !turns.is_empty() {
                    return Err(TranslateError::unsupported(
                        format!(
                            "{at}.role={} after the first user or assistant message",
                            m.role
                        ),
                        BEDROCK,
                    ));
                }
                for text in text_only(m.content, &at)? {
                    system.push(br::SystemBlock {
                        text: Some(text),
                        extra: Map::new(),
                    });
                }
            }
            "user" => {
                let blocks = match m.content {
                    None => Vec::new(),
                    Some(oa::MessageContent::Text(s)) => text_block(s).into_iter().collect(),
                    Some(oa::MessageContent::Parts(parts)) => parts
                        .into_iter()
                        .enumerate()
                        .map(|(j, p)| user_part(p, &format!("{at}.content[{j}]")))
                        .collect::<Result<Vec<_>, _>>()?
                        .into_iter()
                        .flatten()
                        .collect(),
                };
                push_turn(&mut turns, "user", blocks);
            }
            "assistant" => {
                if turns.is_empty() {
                    return Err(TranslateError::unsupported(
                        format!("{at}.role=assistant before any user message"),
                        BEDROCK,
                    ));
                }
                let blocks = assistant_blocks(m.content, m.refusal, m.tool_calls, &at)?;
                has_tools |= blocks.iter().any(|b| b.tool_use.is_some());
                push_turn(&mut turns, "assistant", blocks);
            }
            "tool" => {
                let id = m.tool_call_id.ok_or_else(|| {
                    TranslateError::invalid("OpenAI request", format!("{at}.tool_call_id missing"))
                })?;
                let content = text_only(m.content, &at)?
                    .into_iter()
                    .map(br::ContentBlock::text)
                    .collect();
                has_tools = true;
                push_turn(
                    &mut turns,
                    "user",
                    vec![br::ContentBlock {
                        tool_result: Some(br::ToolResultBlock {
                            tool_use_id: id,
                            content,
                            status: None,
                        }),
                        ..br::ContentBlock::default()
                    }],
                );
            }
            other => {
                return Err(TranslateError::unsupported(
                    format!("{at}.role={other}"),
                    BEDROCK,
                ))
            }
        }
    }
    Ok((system, turns, has_tools))
}

/// Appends a turn, merging it into the previous one when the role is the same.
fn push_turn(turns: &mut Vec<br::Message>, role: &str, blocks: Vec<br::ContentBlock>) {
    if let Some(last) = turns.last_mut() {
        if last.role == role {
            last.content.extend(blocks);
            return;
        }
    }
    turns.push(br::Message {
        role: role.into(),
        content: blocks,
    });
}

/// A text block, or nothing for empty text (Converse refuses blank text blocks).
fn text_block(s: String) -> Option<br::ContentBlock> {
    (!s.is_empty()).then(|| br::ContentBlock::text(s))
}

/// Content that may only hold text (system prompts, tool results), as its non-empty texts.
fn text_only(content: Option<oa::MessageContent>, at: &str) -> Result<Vec<String>, TranslateError> {
    match content {
        None => Ok(Vec::new()),
        Some(oa::MessageContent::Text(s)) => Ok((!s.is_empty()).then_some(s).into_iter().collect()),
        Some(oa::MessageContent::Parts(parts)) => {
            let mut texts = Vec::with_capacity(parts.len());
            for (j, p) in parts.into_iter().enumerate() {
                reject_extra(&p.extra, &format!("{at}.content[{j}]."), BEDROCK)?;
                match (p.kind.as_str(), p.text) {
                    ("text", Some(t)) if t.is_empty() => {}
                    ("text", Some(t)) => texts.push(t),
                    (kind, _) => {
                        return Err(TranslateError::unsupported(
                            format!("{at}.content[{j}].type={kind}"),
                            BEDROCK,
                        ))
                    }
                }
            }
            Ok(texts)
        }
    }
}

fn user_part(p: oa::ContentPart, at: &str) -> Result<Option<br::ContentBlock>, TranslateError> {
    if !matches!(p.kind.as_str(), "text" | "image_url" | "file") {
        return Err(TranslateError::unsupported(
            format!("{at}.type={}", p.kind),
            BEDROCK,
        ));
    }
    reject_extra(&p.extra, &format!("{at}."), BEDROCK)?;
    match p.kind.as_str() {
        "image_url" => {
            let img = p.image_url.ok_or_else(|| {
                TranslateError::invalid("OpenAI request", format!("{at}.image_url missing"))
            })?;
            reject_extra(&img.extra, &format!("{at}.image_url."), BEDROCK)?;
            if let Some(d) = img.detail.filter(|d| d != "auto") {
                return Err(TranslateError::unsupported(
                    format!("{at}.image_url.detail={d}"),
                    BEDROCK,
                ));
            }
            let Some((media_type, data)) = parse_data_url(&img.url) else {
                // Converse takes image bytes or an S3 location, never an http(s) URL.
                return Err(TranslateError::unsupported(
                    format!("{at}.image_url.url (only base64 data URLs)"),
                    BEDROCK,
                ));
            };
            let format = match media_type {
                "image/png" => "png",
                "image/jpeg" | "image/jpg" => "jpeg",
                "image/gif" => "gif",
                "image/webp" => "webp",
                other => {
                    return Err(TranslateError::unsupported(
                        format!("{at}.image_url.url media type {other}"),
                        BEDROCK,
                    ))
                }
            };
            Ok(Some(br::ContentBlock {
                image: Some(br::ImageBlock {
                    format: format.into(),
                    source: bytes_source(data),
                }),
                ..br::ContentBlock::default()
            }))
        }
        "file" => {
            let f = p.file.ok_or_else(|| {
                TranslateError::invalid("OpenAI request", format!("{at}.file missing"))
            })?;
            reject_extra(&f.extra, &format!("{at}.file."), BEDROCK)?;
            if f.file_id.is_some() {
                return Err(TranslateError::unsupported(
                    format!("{at}.file.file_id"),
                    BEDROCK,
                ));
            }
            let data = f.file_data.unwrap_or_default();
            let (media_type, data) = parse_data_url(&data).ok_or_else(|| {
                TranslateError::unsupported(
                    format!("{at}.file.file_data (not a base64 data URL)"),
                    BEDROCK,
                )
            })?;
            let format = document_format(media_type).ok_or_else(|| {
                TranslateError::unsupported(
                    format!("{at}.file.file_data media type {media_type}"),
                    BEDROCK,
                )
            })?;
            Ok(Some(br::ContentBlock {
                document: Some(br::DocumentBlock {
                    format: format.into(),
                    name: document_name(f.filename.as_deref()),
                    source: bytes_source(data),
                }),
                ..br::ContentBlock::default()
            }))
        }
        _ => Ok(text_block(p.text.unwrap_or_default())),
    }
}

/// The Converse document format of a media type.
fn document_format(media_type: &str) -> Option<&'static str> {
    Some(match media_type {
        "application/pdf" => "pdf",
        "text/csv" => "csv",
        "application/msword" => "doc",
        "application/vnd.openxmlformats-officedocument.wordprocessingml.document" => "docx",
        "application/vnd.ms-excel" => "xls",
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet" => "xlsx",
        "text/html" => "html",
        "text/plain" => "txt",
        "text/markdown" => "md",
        _ => return None,
    })
}

/// A `DocumentBlock.name` from a file name. Converse allows only alphanumerics, single
/// whitespace characters, hyphens, parentheses and square brackets, 1 to 200 characters:
/// the extension is cut (the format says it), every other character becomes `-`, whitespace
/// runs become one space, and an empty result becomes `document`.
fn document_name(filename: Option<&str>) -> String {
    let base = filename.unwrap_or_default();
    let base = base.rsplit_once('.').map_or(base, |(stem, _)| stem);
    let mut name = String::with_capacity(base.len().min(200));
    for c in base.chars() {
        if name.chars().count() >= 200 {
            break;
        }
        if c.is_whitespace() {
            if !name.ends_with(' ') {
                name.push(' ');
            }
        } else if c.is_alphanumeric() || matches!(c, '-' | '(' | ')' | '[' | ']') {
            name.push(c);
        } else {
            name.push('-');
        }
    }
    let name = name.trim();
    if name.is_empty() {
        "document".to_owned()
    } else {
        name.to_owned()
    }
}

fn bytes_source(data: &str) -> br::BytesSource {
    br::BytesSource {
        bytes: Some(data.to_owned()),
        extra: Map::new(),
    }
}

fn assistant_blocks(
    content: Option<oa::MessageContent>,
    refusal: Option<String>,
    tool_calls: Option<Vec<oa::ToolCall>>,
    at: &str,
) -> Result<Vec<br::ContentBlock>, TranslateError> {
    let mut blocks = Vec::new();
    match content {
        None => {}
        Some(oa::MessageContent::Text(s)) => blocks.extend(text_block(s)),
        Some(oa::MessageContent::Parts(parts)) => {
            for (j, p) in parts.into_iter().enumerate() {
                reject_extra(&p.extra, &format!("{at}.content[{j}]."), BEDROCK)?;
                match p.kind.as_str() {
                    "text" => blocks.extend(text_block(p.text.unwrap_or_default())),
                    "refusal" => blocks.extend(text_block(p.refusal.unwrap_or_default())),
                    other => {
                        return Err(TranslateError::unsupported(
                            format!("{at}.content[{j}].type={other}"),
                            BEDROCK,
                        ))
                    }
                }
            }
        }
    }
    if let Some(r) = refusal {
        blocks.extend(text_block(r));
    }
    for (k, call) in tool_calls.unwrap_or_default().into_iter().enumerate() {
        if call.kind != "function" {
            return Err(TranslateError::unsupported(
                format!("{at}.tool_calls[{k}].type={}", call.kind),
                BEDROCK,
            ));
        }
        let input: Value = if call.function.arguments.trim().is_empty() {
            Value::Object(Map::new())
        } else {
            serde_json::from_str(&call.function.arguments).map_err(|e| {
                TranslateError::invalid(
                    "OpenAI request",
                    format!("{at}.tool_calls[{k}].function.arguments: {e}"),
                )
            })?
        };
        blocks.push(br::ContentBlock {
            tool_use: Some(br::ToolUseBlock {
                tool_use_id: call.id,
                name: call.function.name,
                input,
                extra: Map::new(),
            }),
            ..br::ContentBlock::default()
        });
    }
    Ok(blocks)
}

/// Translates a Bedrock `converse` response into an OpenAI `chat.completion` for a client that
/// asked for `client_model`. Text blocks are joined into `content`, `toolUse` blocks become
/// `tool_calls` (input serialized as the arguments string), `reasoningContent.reasoningText`
/// becomes `reasoning_content` (the field OpenAI-compatible servers use; redacted reasoning is
/// encrypted and means nothing to the client). Converse responses carry no id: one is made up.
pub fn converse_to_chat_response(
    body: &[u8],
    client_model: &str,
) -> Result<Vec<u8>, TranslateError> {
    let resp: br::ConverseResponse =
        serde_json::from_slice(body).map_err(|e| TranslateError::invalid("Bedrock response", e))?;
    let mut text: Option<String> = None;
    let mut reasoning: Option<String> = None;
    let mut calls = Vec::new();
    let blocks = resp.output.message.map(|m| m.content).unwrap_or_default();
    for b in blocks {
        if let Some(t) = b.text {
            text.get_or_insert_with(String::new).push_str(&t);
        } else if let Some(r) = b.reasoning_content {
            if let Some(rt) = r.reasoning_text {
                reasoning.get_or_insert_with(String::new).push_str(&rt.text);
            }
        } else if let Some(tu) = b.tool_use {
            let arguments = serde_json::to_string(&tu.input)
                .map_err(|e| TranslateError::invalid("Bedrock response", e))?;
            calls.push(oa::ToolCall {
                id: tu.tool_use_id,
                kind: "function".into(),
                function: oa::FunctionCall {
                    name: tu.name,
                    arguments,
                },
            });
        } else {
            let kind = if b.image.is_some() {
                "image".to_owned()
            } else if b.document.is_some() {
                "document".to_owned()
            } else if b.tool_result.is_some() {
                "toolResult".to_owned()
            } else {
                b.extra
                    .keys()
                    .next()
                    .cloned()
                    .unwrap_or_else(|| "unknown".into())
            };
            return Err(TranslateError::unsupported(
                format!("output.message.content[].{kind}"),
                OPENAI,
            ));
        }
    }
    let stop = resp
        .stop_reason
        .as_deref()
        .map(FinishReason::from_bedrock)
        .unwrap_or(FinishReason::EndTurn);
    let out = oa::ChatCompletion {
        id: new_completion_id(),
        object: "chat.completion".into(),
        created: unix_now(),
        model: client_model.to_owned(),
        choices: vec![oa::Choice {
            index: 0,
            message: oa::ResponseMessage {
                role: "assistant".into(),
                content: text,
                refusal: None,
                tool_calls: (!calls.is_empty()).then_some(calls),
                reasoning_content: reasoning,
            },
            logprobs: None,
            finish_reason: Some(stop.openai().into()),
        }],
        usage: Some(
            resp.usage
                .map(|u| Usage::from_bedrock(&u))
                .unwrap_or_default()
                .to_openai(),
        ),
    };
    serde_json::to_vec(&out).map_err(|e| TranslateError::invalid("OpenAI response", e))
}

/// `chatcmpl-<16 hex digits>`: Converse gives no response id.
pub(crate) fn new_completion_id() -> String {
    format!("chatcmpl-{:016x}", fastrand::u64(..))
}

/// Maps a Bedrock error into OpenAI's error shape and status. `error_type` is the
/// `x-amzn-ErrorType` header (`ValidationException:http://internal.amazon.com/...`); without it
/// the body's `__type` (`…#ValidationException`) is used, and without that the status.
///
/// | Bedrock | status | OpenAI `type` | `code` |
/// |---|---|---|---|
/// | `ValidationException` | 400 | `invalid_request_error` | `validation_error` |
/// | `AccessDeniedException` | 403 | `permission_error` | `access_denied` |
/// | `UnrecognizedClientException`, `InvalidSignatureException`, `ExpiredTokenException`, `IncompleteSignatureException`, `MissingAuthenticationTokenException` | 401 | `authentication_error` | `invalid_api_key` |
/// | `ResourceNotFoundException` | 404 | `not_found_error` | `model_not_found` |
/// | `ThrottlingException` | 429 | `rate_limit_error` | `rate_limit_exceeded` |
/// | `ServiceQuotaExceededException` | 429 | `rate_limit_error` | `quota_exceeded` |
/// | `ModelTimeoutException` | 408 | `server_error` | `timeout` |
/// | `ModelNotReadyException` | 503 | `server_error` | `model_not_ready` |
/// | `ServiceUnavailableException` | 503 | `server_error` | `service_unavailable` |
/// | `ModelErrorException`, `ModelStreamErrorException` | 500 | `server_error` | `model_error` |
/// | `InternalServerException` | 500 | `server_error` | `internal_error` |
/// | other | the status | by status | `null` |
///
/// Names are matched without regard to case, so stream exceptions (`throttlingException`)
/// map the same.
pub fn bedrock_error_to_openai(
    status: u16,
    error_type: Option<&str>,
    body: &[u8],
) -> (u16, Vec<u8>) {
    let parsed: br::ErrorBody = serde_json::from_slice(body).unwrap_or_default();
    let message = parsed
        .message
        .filter(|m| !m.is_empty())
        .unwrap_or_else(|| raw_message(body));
    let kind = error_type
        .map(|t| t.split(':').next().unwrap_or(t))
        .or_else(|| {
            parsed
                .kind
                .as_deref()
                .map(|t| t.rsplit('#').next().unwrap_or(t))
        })
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    let (status, oa_type, code) = error_mapping(status, &kind);
    (status, openai_error_body(oa_type, &message, code))
}

/// (status, OpenAI type, code) for a lower-cased Bedrock error name and the HTTP status.
pub(crate) fn error_mapping(status: u16, kind: &str) -> (u16, &'static str, Option<&'static str>) {
    match kind {
        "validationexception" => (400, "invalid_request_error", Some("validation_error")),
        "accessdeniedexception" => (403, "permission_error", Some("access_denied")),
        "unrecognizedclientexception"
        | "invalidsignatureexception"
        | "expiredtokenexception"
        | "incompletesignatureexception"
        | "missingauthenticationtokenexception" => {
            (401, "authentication_error", Some("invalid_api_key"))
        }
        "resourcenotfoundexception" => (404, "not_found_error", Some("model_not_found")),
        "throttlingexception" => (429, "rate_limit_error", Some("rate_limit_exceeded")),
        "servicequotaexceededexception" => (429, "rate_limit_error", Some("quota_exceeded")),
        "modeltimeoutexception" => (408, "server_error", Some("timeout")),
        "modelnotreadyexception" => (503, "server_error", Some("model_not_ready")),
        "serviceunavailableexception" => (503, "server_error", Some("service_unavailable")),
        "modelerrorexception" | "modelstreamerrorexception" => {
            (500, "server_error", Some("model_error"))
        }
        "internalserverexception" => (500, "server_error", Some("internal_error")),
        _ => {
            let t = match status {
                401 => "authentication_error",
                403 => "permission_error",
                404 => "not_found_error",
                429 => "rate_limit_error",
                s if s >= 500 => "server_error",
                _ => "invalid_request_error",
            };
            (status, t, None)
        }
    }
}

/// A body that is not Bedrock's error JSON, as a message (at most 1 KiB).
fn raw_message(body: &[u8]) -> String {
    let s = String::from_utf8_lossy(body.get(..1024).unwrap_or(body))
        .trim()
        .to_owned();
    if s.is_empty() || s.starts_with('{') {
        "upstream error".to_owned()
    } else {
        s
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn to_converse(body: Value) -> Result<Value, TranslateError> {
        let out = chat_to_converse_request(&serde_json::to_vec(&body).unwrap())?;
        Ok(serde_json::from_slice(&out).unwrap())
    }

    fn refused(r: Result<Value, TranslateError>, field: &str) {
        match r {
            Err(TranslateError::Unsupported { field: f, target }) => {
                assert_eq!((f.as_str(), target), (field, BEDROCK));
            }
            other => panic!("expected refusal of {field}, got {other:?}"),
        }
    }

    fn oa(extra: Value) -> Value {
        let mut b = json!({"model": "m", "messages": [{"role": "user", "content": "hi"}]});
        b.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        b
    }

    fn v(b: &[u8]) -> Value {
        serde_json::from_slice(b).unwrap()
    }

    #[test]
    fn full_conversation_maps_to_converse() {
        let out = to_converse(json!({
            "model": "m",
            "messages": [
                {"role": "system", "content": "Be brief."},
                {"role": "developer", "content": [{"type": "text", "text": "Use tools."}]},
                {"role": "user", "content": "Weather in Paris?"},
                {"role": "user", "content": [
                    {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0K"}},
                    {"type": "file", "file": {"filename": "Q3 report.final.pdf", "file_data": "data:application/pdf;base64,JVBERi0x"}}]},
                {"role": "assistant", "content": null, "tool_calls": [
                    {"id": "call_1", "type": "function", "function": {"name": "weather", "arguments": "{\"city\":\"Paris\"}"}}]},
                {"role": "tool", "tool_call_id": "call_1", "content": "18C, sunny"},
                {"role": "user", "content": "Thanks"}
            ],
            "tools": [{"type": "function", "function": {"name": "weather", "description": "Get weather",
                "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}],
            "tool_choice": "required",
            "max_completion_tokens": 256, "temperature": 0.2, "top_p": 0.9, "stop": "END",
            "stream": true, "stream_options": {"include_usage": true}
        }))
        .unwrap();
        assert_eq!(
            out,
            json!({
                "system": [{"text": "Be brief."}, {"text": "Use tools."}],
                "messages": [
                    {"role": "user", "content": [
                        {"text": "Weather in Paris?"},
                        {"image": {"format": "png", "source": {"bytes": "iVBORw0K"}}},
                        {"document": {"format": "pdf", "name": "Q3 report-final", "source": {"bytes": "JVBERi0x"}}}]},
                    {"role": "assistant", "content": [
                        {"toolUse": {"toolUseId": "call_1", "name": "weather", "input": {"city": "Paris"}}}]},
                    {"role": "user", "content": [
                        {"toolResult": {"toolUseId": "call_1", "content": [{"text": "18C, sunny"}]}},
                        {"text": "Thanks"}]}
                ],
                "inferenceConfig": {"maxTokens": 256, "temperature": 0.2, "topP": 0.9, "stopSequences": ["END"]},
                "toolConfig": {
                    "tools": [{"toolSpec": {"name": "weather", "description": "Get weather",
                        "inputSchema": {"json": {"type": "object", "properties": {"city": {"type": "string"}}}}}}],
                    "toolChoice": {"any": {}}}
            })
        );
    }

    #[test]
    fn tool_choice_forms() {
        let tools = json!([{"type": "function", "function": {"name": "f"}}]);
        let out = to_converse(oa(json!({"tools": tools, "tool_choice": "auto"}))).unwrap();
        assert_eq!(out["toolConfig"]["toolChoice"], json!({"auto": {}}));
        let out = to_converse(oa(
            json!({"tools": tools, "tool_choice": {"type": "function", "function": {"name": "f"}}}),
        ))
        .unwrap();
        assert_eq!(
            out["toolConfig"]["toolChoice"],
            json!({"tool": {"name": "f"}})
        );
        assert_eq!(
            out["toolConfig"]["tools"][0]["toolSpec"]["inputSchema"]["json"],
            json!({"type": "object", "properties": {}})
        );
        // `none` without tool history: tools are not sent at all.
        let out = to_converse(oa(json!({"tools": tools, "tool_choice": "none"}))).unwrap();
        assert!(out.get("toolConfig").is_none());
        // `none` with tool history cannot be honoured.
        let history = json!({"model": "m", "tools": tools, "tool_choice": "none", "messages": [
            {"role": "user", "content": "q"},
            {"role": "assistant", "tool_calls": [{"id": "c", "type": "function", "function": {"name": "f", "arguments": "{}"}}]},
            {"role": "tool", "tool_call_id": "c", "content": "r"}]});
        refused(
            to_converse(history.clone()),
            "tool_choice=none with tool calls in the history",
        );
        let mut no_tools = history;
        no_tools.as_object_mut().unwrap().remove("tools");
        no_tools.as_object_mut().unwrap().remove("tool_choice");
        refused(
            to_converse(no_tools),
            "messages with tool calls but no tools",
        );
    }

    #[test]
    fn structured_output_and_user() {
        let out = to_converse(oa(
            json!({"user": "u-1", "response_format": {"type": "json_schema",
            "json_schema": {"name": "answer", "schema": {"type": "object"}, "strict": true}}}),
        ))
        .unwrap();
        assert_eq!(
            out["outputConfig"],
            json!({"textFormat": {"type": "json_schema", "structure": {"jsonSchema": {
                "schema": "{\"type\":\"object\"}", "name": "answer"}}}})
        );
        assert_eq!(out["requestMetadata"], json!({"user": "u-1"}));
        assert!(out.get("inferenceConfig").is_none());
    }

    #[test]
    fn fields_converse_cannot_honour_are_refused() {
        refused(to_converse(oa(json!({"seed": 1}))), "seed");
        refused(to_converse(oa(json!({"n": 3}))), "n");
        refused(
            to_converse(oa(json!({"reasoning_effort": "high"}))),
            "reasoning_effort=high",
        );
        refused(
            to_converse(oa(json!({"response_format": {"type": "json_object"}}))),
            "response_format.type=json_object",
        );
        refused(
            to_converse(oa(json!({"parallel_tool_calls": false}))),
            "parallel_tool_calls=false",
        );
        refused(
            to_converse(oa(json!({"temperature": 1.2}))),
            "temperature>1",
        );
        refused(
            to_converse(
                json!({"model": "m", "messages": [{"role": "user", "content": [
                {"type": "image_url", "image_url": {"url": "https://x/y.png"}}]}]}),
            ),
            "messages[0].content[0].image_url.url (only base64 data URLs)",
        );
        refused(
            to_converse(
                json!({"model": "m", "messages": [{"role": "user", "content": [
                {"type": "image_url", "image_url": {"url": "data:image/bmp;base64,AA"}}]}]}),
            ),
            "messages[0].content[0].image_url.url media type image/bmp",
        );
        refused(
            to_converse(
                json!({"model": "m", "messages": [{"role": "user", "content": [
                {"type": "input_audio", "input_audio": {"data": "AA", "format": "wav"}}]}]}),
            ),
            "messages[0].content[0].type=input_audio",
        );
        refused(
            to_converse(
                json!({"model": "m", "messages": [{"role": "user", "content": [
                {"type": "file", "file": {"file_id": "file-1"}}]}]}),
            ),
            "messages[0].content[0].file.file_id",
        );
        refused(
            to_converse(json!({"model": "m", "messages": [{"role": "assistant", "content": "x"}]})),
            "messages[0].role=assistant before any user message",
        );
        refused(
            to_converse(json!({"model": "m", "messages": [
                {"role": "user", "content": "x"}, {"role": "system", "content": "late"}]})),
            "messages[1].role=system after the first user or assistant message",
        );
        refused(
            to_converse(
                json!({"model": "m", "messages": [{"role": "user", "content": "x", "name": "bob"}]}),
            ),
            "messages[0].name",
        );
        // null / false count as absent.
        assert!(to_converse(oa(json!({"seed": null, "store": false}))).is_ok());
    }

    #[test]
    fn document_names_follow_converse_rules() {
        assert_eq!(document_name(Some("report.pdf")), "report");
        assert_eq!(document_name(Some("a_b  c.d.pdf")), "a-b c-d");
        assert_eq!(document_name(Some(".pdf")), "document");
        assert_eq!(document_name(None), "document");
        assert_eq!(document_name(Some(&"x".repeat(300))).len(), 200);
    }

    #[test]
    fn response_maps_text_tools_reasoning_and_usage() {
        let body = br#"{"output":{"message":{"role":"assistant","content":[
            {"reasoningContent":{"reasoningText":{"text":"think","signature":"s"}}},
            {"text":"Let me check."},
            {"toolUse":{"toolUseId":"tooluse_1","name":"weather","input":{"city":"Paris"}}}]}},
            "stopReason":"tool_use",
            "usage":{"inputTokens":10,"outputTokens":5,"totalTokens":19,"cacheReadInputTokens":3,"cacheWriteInputTokens":1},
            "metrics":{"latencyMs":120}}"#;
        let out = v(&converse_to_chat_response(body, "alias").unwrap());
        assert_eq!(out["model"], "alias");
        assert_eq!(out["object"], "chat.completion");
        assert!(out["id"].as_str().unwrap().starts_with("chatcmpl-"));
        let choice = &out["choices"][0];
        assert_eq!(choice["finish_reason"], "tool_calls");
        assert_eq!(choice["message"]["content"], "Let me check.");
        assert_eq!(choice["message"]["reasoning_content"], "think");
        assert_eq!(
            choice["message"]["tool_calls"],
            json!([{"id": "tooluse_1", "type": "function",
                "function": {"name": "weather", "arguments": "{\"city\":\"Paris\"}"}}])
        );
        assert_eq!(
            out["usage"],
            json!({"prompt_tokens": 14, "completion_tokens": 5, "total_tokens": 19,
                "prompt_tokens_details": {"cached_tokens": 3}})
        );
    }

    #[test]
    fn stop_reasons_map() {
        for (bedrock, openai) in [
            ("end_turn", "stop"),
            ("stop_sequence", "stop"),
            ("max_tokens", "length"),
            ("tool_use", "tool_calls"),
            ("guardrail_intervened", "content_filter"),
            ("content_filtered", "content_filter"),
        ] {
            let body = format!(
                r#"{{"output":{{"message":{{"role":"assistant","content":[{{"text":"x"}}]}}}},"stopReason":"{bedrock}","usage":{{"inputTokens":1,"outputTokens":1,"totalTokens":2}}}}"#
            );
            let out = v(&converse_to_chat_response(body.as_bytes(), "a").unwrap());
            assert_eq!(out["choices"][0]["finish_reason"], openai, "{bedrock}");
        }
        let bad = br#"{"output":{"message":{"role":"assistant","content":[{"image":{"format":"png","source":{"bytes":"AA"}}}]}},"stopReason":"end_turn"}"#;
        assert_eq!(
            converse_to_chat_response(bad, "a").err(),
            Some(TranslateError::unsupported(
                "output.message.content[].image",
                OPENAI
            ))
        );
    }

    #[test]
    fn errors_map_by_header_body_type_or_status() {
        let (st, out) = bedrock_error_to_openai(
            400,
            Some("ValidationException:http://internal.amazon.com/coral/com.amazon.bedrock/"),
            br#"{"message":"The model returned the following errors: bad"}"#,
        );
        assert_eq!(st, 400);
        assert_eq!(
            v(&out),
            json!({"error": {"message": "The model returned the following errors: bad",
                "type": "invalid_request_error", "param": null, "code": "validation_error"}})
        );
        let (st, out) = bedrock_error_to_openai(
            429,
            None,
            br#"{"__type":"com.amazon.coral.availability#ThrottlingException","message":"Too many requests"}"#,
        );
        assert_eq!(st, 429);
        assert_eq!(v(&out)["error"]["code"], "rate_limit_exceeded");
        for (ty, status, code) in [
            ("AccessDeniedException", 403, "access_denied"),
            ("ResourceNotFoundException", 404, "model_not_found"),
            ("ServiceUnavailableException", 503, "service_unavailable"),
            ("ModelTimeoutException", 408, "timeout"),
            ("InternalServerException", 500, "internal_error"),
            ("UnrecognizedClientException", 401, "invalid_api_key"),
        ] {
            let (st, out) = bedrock_error_to_openai(418, Some(ty), br#"{"Message":"m"}"#);
            assert_eq!(
                (st, v(&out)["error"]["code"].clone()),
                (status, json!(code))
            );
            assert_eq!(v(&out)["error"]["message"], "m");
        }
        let (st, out) = bedrock_error_to_openai(502, None, b"<html>Bad Gateway</html>");
        assert_eq!(st, 502);
        assert_eq!(
            v(&out)["error"],
            json!({"message": "<html>Bad Gateway</html>", "type": "server_error", "param": null, "code": null})
        );
    }
}
