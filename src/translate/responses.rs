//! OpenAI Responses API ⇄ OpenAI Chat Completions: requests one way
//! ([`responses_to_chat_request`]), whole responses the other way
//! ([`chat_to_responses_response`]); streams are in `responses_stream`.
//!
//! A field Chat Completions cannot honour is refused with `TranslateError::Unsupported`, never
//! dropped, with these documented exceptions, none of which changes what the model is asked:
//!
//! - `reasoning` input items are dropped: they are the model's own earlier reasoning, which
//!   Chat Completions has no field for (as with Anthropic `thinking` history). Refusing them
//!   would refuse the gateway's own output sent back by the next turn.
//! - Item `id`s, `status` and assistant `phase` labels, and `annotations` / `logprobs` on
//!   `output_text` history are output metadata; the text is kept.
//! - `metadata` is not sent upstream (OpenAI refuses chat `metadata` without `store`); it is
//!   echoed in the response (see [`ResponsesEcho`]), which is all the Responses API does with it
//!   when nothing is stored.
//! - `max_tool_calls` only limits built-in tools, which are refused anyway.
//! - `stream_options.include_obfuscation`: delta events are never padded.
//! - `truncation: "disabled"` and `store: false` are Chat Completions' behaviour.
//!
//! Refused: `previous_response_id` and `conversation` (Chat Completions keeps no conversation
//! state), `store: true` and `background: true` (nothing is kept to retrieve later), a
//! non-empty `include`, `prompt` (stored templates), `truncation: "auto"`, `reasoning.summary`
//! (Chat Completions gives no summaries), non-function tools and tool choices, `input_file` /
//! `input_image` by `file_id` or `file_url`, `item_reference` and every other item type,
//! `top_logprobs`, and any unknown field whose value is not `null` or `false`.

use serde::Deserialize;
use serde_json::{json, Map, Value};

use super::error::OPENAI;
use super::openai_types as oa;
use super::request::reject_extra;
use super::responses_types as rt;
use super::TranslateError;
use crate::wire::FinishReason;

/// How errors name the client's dialect.
const RESPONSES_REQUEST: &str = "OpenAI Responses request";

/// Translates an OpenAI Responses request into an OpenAI Chat Completions request for
/// `upstream_model`. A streamed request gets `stream_options.include_usage = true`: the
/// Responses stream always ends with usage.
pub fn responses_to_chat_request(
    body: &[u8],
    upstream_model: &str,
) -> Result<Vec<u8>, TranslateError> {
    let req: rt::ResponsesRequest =
        serde_json::from_slice(body).map_err(|e| TranslateError::invalid(RESPONSES_REQUEST, e))?;
    for (field, present) in [
        ("previous_response_id", req.previous_response_id.is_some()),
        ("conversation", req.conversation.is_some()),
    ] {
        if present {
            return Err(TranslateError::unsupported(
                format!("{field} (the target keeps no conversation state: send the whole conversation in `input`)"),
                OPENAI,
            ));
        }
    }
    reject_extra(&req.extra, "", OPENAI)?;
    if req.store == Some(true) {
        return Err(TranslateError::unsupported(
            "store=true (nothing is stored: send `store: false`)",
            OPENAI,
        ));
    }
    if req.background == Some(true) {
        return Err(TranslateError::unsupported("background", OPENAI));
    }
    if let Some(first) = req.include.as_ref().and_then(|i| i.first()) {
        return Err(TranslateError::unsupported(
            format!("include={first}"),
            OPENAI,
        ));
    }
    match req.truncation.as_deref() {
        None | Some("disabled") => {}
        Some(t) => {
            return Err(TranslateError::unsupported(
                format!("truncation={t}"),
                OPENAI,
            ))
        }
    }
    let mut out = oa::ChatRequest {
        model: upstream_model.to_owned(),
        max_completion_tokens: req.max_output_tokens,
        temperature: req.temperature,
        top_p: req.top_p,
        parallel_tool_calls: req.parallel_tool_calls,
        user: req.user,
        ..oa::ChatRequest::default()
    };
    if let Some(so) = &req.stream_options {
        reject_extra(&so.extra, "stream_options.", OPENAI)?;
    }
    if req.stream == Some(true) {
        out.stream = Some(true);
        out.stream_options = Some(oa::StreamOptions {
            include_usage: Some(true),
            extra: Map::new(),
        });
    }
    for (key, value) in [
        ("safety_identifier", req.safety_identifier),
        ("prompt_cache_key", req.prompt_cache_key),
        ("service_tier", req.service_tier),
    ] {
        if let Some(v) = value {
            out.extra.insert(key.into(), Value::String(v));
        }
    }
    if let Some(tools) = req.tools {
        out.tools = Some(
            tools
                .into_iter()
                .enumerate()
                .map(chat_tool)
                .collect::<Result<_, _>>()?,
        );
    }
    out.tool_choice = req.tool_choice.map(chat_tool_choice).transpose()?;
    if let Some(text) = req.text {
        reject_extra(&text.extra, "text.", OPENAI)?;
        if let Some(format) = text.format {
            out.response_format = Some(chat_response_format(format)?);
        }
        if let Some(v) = text.verbosity {
            out.extra.insert("verbosity".into(), Value::String(v));
        }
    }
    if let Some(r) = req.reasoning {
        reject_extra(&r.extra, "reasoning.", OPENAI)?;
        if r.summary.is_some() || r.generate_summary.is_some() {
            return Err(TranslateError::unsupported("reasoning.summary", OPENAI));
        }
        out.reasoning_effort = r.effort;
    }
    if let Some(instructions) = req.instructions {
        out.messages.push(oa::ChatMessage {
            role: "system".into(),
            content: Some(oa::MessageContent::Text(instructions)),
            ..oa::ChatMessage::default()
        });
    }
    match req.input {
        None => return Err(TranslateError::invalid(RESPONSES_REQUEST, "input missing")),
        Some(rt::Input::Text(s)) => out.messages.push(oa::ChatMessage {
            role: "user".into(),
            content: Some(oa::MessageContent::Text(s)),
            ..oa::ChatMessage::default()
        }),
        Some(rt::Input::Items(items)) => {
            for (i, item) in items.into_iter().enumerate() {
                input_item(item, &format!("input[{i}]"), &mut out.messages)?;
            }
        }
    }
    serde_json::to_vec(&out).map_err(|e| TranslateError::invalid("OpenAI request", e))
}

fn chat_tool((i, tool): (usize, rt::Tool)) -> Result<oa::Tool, TranslateError> {
    if tool.kind != "function" {
        return Err(TranslateError::unsupported(
            format!("tools[{i}].type={}", tool.kind),
            OPENAI,
        ));
    }
    reject_extra(&tool.extra, &format!("tools[{i}]."), OPENAI)?;
    let name = tool.name.ok_or_else(|| {
        TranslateError::invalid(RESPONSES_REQUEST, format!("tools[{i}].name missing"))
    })?;
    Ok(oa::Tool {
        kind: "function".into(),
        function: Some(oa::FunctionDef {
            name,
            description: tool.description,
            parameters: tool.parameters,
            strict: tool.strict,
            extra: Map::new(),
        }),
        extra: Map::new(),
    })
}

fn chat_tool_choice(choice: Value) -> Result<oa::ToolChoice, TranslateError> {
    match choice {
        Value::String(mode) => match mode.as_str() {
            "auto" | "none" | "required" => Ok(oa::ToolChoice::Mode(mode)),
            _ => Err(TranslateError::unsupported(
                format!("tool_choice={mode}"),
                OPENAI,
            )),
        },
        Value::Object(mut obj) => {
            let kind = obj
                .remove("type")
                .and_then(|t| t.as_str().map(str::to_owned))
                .unwrap_or_default();
            if kind != "function" {
                return Err(TranslateError::unsupported(
                    format!("tool_choice.type={kind}"),
                    OPENAI,
                ));
            }
            let name = match obj.remove("name") {
                Some(Value::String(n)) => n,
                _ => {
                    return Err(TranslateError::invalid(
                        RESPONSES_REQUEST,
                        "tool_choice.name missing",
                    ))
                }
            };
            reject_extra(&obj, "tool_choice.", OPENAI)?;
            Ok(oa::ToolChoice::Named(oa::NamedToolChoice {
                kind,
                function: oa::FunctionName { name },
            }))
        }
        other => Err(TranslateError::invalid(
            RESPONSES_REQUEST,
            format!("tool_choice: unexpected {other}"),
        )),
    }
}

fn chat_response_format(f: rt::TextFormat) -> Result<oa::ResponseFormat, TranslateError> {
    reject_extra(&f.extra, "text.format.", OPENAI)?;
    match f.kind.as_str() {
        "text" | "json_object" => Ok(oa::ResponseFormat {
            kind: f.kind,
            json_schema: None,
        }),
        "json_schema" => {
            let name = f.name.ok_or_else(|| {
                TranslateError::invalid(RESPONSES_REQUEST, "text.format.name missing")
            })?;
            Ok(oa::ResponseFormat {
                kind: f.kind,
                json_schema: Some(oa::JsonSchemaFormat {
                    name,
                    description: f.description,
                    schema: f.schema,
                    strict: f.strict,
                }),
            })
        }
        other => Err(TranslateError::unsupported(
            format!("text.format.type={other}"),
            OPENAI,
        )),
    }
}

/// Refuses fields of `item` that belong to other item kinds.
fn reject_fields(fields: &[(&str, bool)], at: &str) -> Result<(), TranslateError> {
    match fields.iter().find(|(_, present)| *present) {
        Some((name, _)) => Err(TranslateError::unsupported(format!("{at}.{name}"), OPENAI)),
        None => Ok(()),
    }
}

/// Appends the chat messages for one input item.
fn input_item(
    item: rt::InputItem,
    at: &str,
    out: &mut Vec<oa::ChatMessage>,
) -> Result<(), TranslateError> {
    reject_extra(&item.extra, &format!("{at}."), OPENAI)?;
    match item.kind.as_deref() {
        None | Some("message") => {
            reject_fields(
                &[
                    ("call_id", item.call_id.is_some()),
                    ("name", item.name.is_some()),
                    ("arguments", item.arguments.is_some()),
                    ("output", item.output.is_some()),
                    ("summary", item.summary.is_some()),
                    ("encrypted_content", item.encrypted_content.is_some()),
                ],
                at,
            )?;
            message_item(item, at, out)
        }
        Some("function_call") => {
            reject_fields(
                &[
                    ("role", item.role.is_some()),
                    ("content", item.content.is_some()),
                    ("output", item.output.is_some()),
                ],
                at,
            )?;
            let call = oa::ToolCall {
                id: item.call_id.ok_or_else(|| {
                    TranslateError::invalid(RESPONSES_REQUEST, format!("{at}.call_id missing"))
                })?,
                kind: "function".into(),
                function: oa::FunctionCall {
                    name: item.name.ok_or_else(|| {
                        TranslateError::invalid(RESPONSES_REQUEST, format!("{at}.name missing"))
                    })?,
                    arguments: item.arguments.unwrap_or_default(),
                },
            };
            // Calls of one turn (and the text before them) are one assistant message.
            match out.last_mut() {
                Some(last) if last.role == "assistant" => {
                    last.tool_calls.get_or_insert_with(Vec::new).push(call)
                }
                _ => out.push(oa::ChatMessage {
                    role: "assistant".into(),
                    tool_calls: Some(vec![call]),
                    ..oa::ChatMessage::default()
                }),
            }
            Ok(())
        }
        Some("function_call_output") => {
            reject_fields(
                &[
                    ("role", item.role.is_some()),
                    ("content", item.content.is_some()),
                    ("name", item.name.is_some()),
                    ("arguments", item.arguments.is_some()),
                ],
                at,
            )?;
            let id = item.call_id.ok_or_else(|| {
                TranslateError::invalid(RESPONSES_REQUEST, format!("{at}.call_id missing"))
            })?;
            let content = match item.output {
                None => oa::MessageContent::Text(String::new()),
                Some(rt::Content::Text(s)) => oa::MessageContent::Text(s),
                Some(rt::Content::Parts(parts)) => oa::MessageContent::Parts(text_parts(
                    parts,
                    &format!("{at}.output"),
                    &["input_text"],
                )?),
            };
            out.push(oa::ChatMessage {
                role: "tool".into(),
                content: Some(content),
                tool_call_id: Some(id),
                ..oa::ChatMessage::default()
            });
            Ok(())
        }
        // The model's own earlier reasoning: Chat Completions takes none (see the module doc).
        Some("reasoning") => Ok(()),
        Some(other) => Err(TranslateError::unsupported(
            format!("{at}.type={other}"),
            OPENAI,
        )),
    }
}

fn message_item(
    item: rt::InputItem,
    at: &str,
    out: &mut Vec<oa::ChatMessage>,
) -> Result<(), TranslateError> {
    let role = item
        .role
        .ok_or_else(|| TranslateError::invalid(RESPONSES_REQUEST, format!("{at}.role missing")))?;
    let content = item.content.ok_or_else(|| {
        TranslateError::invalid(RESPONSES_REQUEST, format!("{at}.content missing"))
    })?;
    let message = match role.as_str() {
        "user" => oa::ChatMessage {
            role,
            content: Some(match content {
                rt::Content::Text(s) => oa::MessageContent::Text(s),
                rt::Content::Parts(parts) => oa::MessageContent::Parts(
                    parts
                        .into_iter()
                        .enumerate()
                        .map(|(j, p)| user_part(p, &format!("{at}.content[{j}]")))
                        .collect::<Result<_, _>>()?,
                ),
            }),
            ..oa::ChatMessage::default()
        },
        "system" | "developer" => oa::ChatMessage {
            role,
            content: Some(match content {
                rt::Content::Text(s) => oa::MessageContent::Text(s),
                rt::Content::Parts(parts) => oa::MessageContent::Parts(text_parts(
                    parts,
                    &format!("{at}.content"),
                    &["input_text"],
                )?),
            }),
            ..oa::ChatMessage::default()
        },
        "assistant" => {
            let (text, refusal) = match content {
                rt::Content::Text(s) => (Some(s), None),
                rt::Content::Parts(parts) => assistant_parts(parts, at)?,
            };
            oa::ChatMessage {
                role,
                content: text.map(oa::MessageContent::Text),
                refusal,
                ..oa::ChatMessage::default()
            }
        }
        other => {
            return Err(TranslateError::unsupported(
                format!("{at}.role={other}"),
                OPENAI,
            ))
        }
    };
    out.push(message);
    Ok(())
}

/// Text-only parts (system prompts, tool outputs) as chat `text` parts.
fn text_parts(
    parts: Vec<rt::InputPart>,
    at: &str,
    kinds: &[&str],
) -> Result<Vec<oa::ContentPart>, TranslateError> {
    parts
        .into_iter()
        .enumerate()
        .map(|(j, p)| {
            if !kinds.contains(&p.kind.as_str()) {
                return Err(TranslateError::unsupported(
                    format!("{at}[{j}].type={}", p.kind),
                    OPENAI,
                ));
            }
            reject_extra(&p.extra, &format!("{at}[{j}]."), OPENAI)?;
            Ok(oa::ContentPart::text(p.text.unwrap_or_default()))
        })
        .collect()
}

fn user_part(p: rt::InputPart, at: &str) -> Result<oa::ContentPart, TranslateError> {
    reject_extra(&p.extra, &format!("{at}."), OPENAI)?;
    match p.kind.as_str() {
        "input_text" => Ok(oa::ContentPart::text(p.text.unwrap_or_default())),
        "input_image" => {
            if p.file_id.is_some() {
                return Err(TranslateError::unsupported(format!("{at}.file_id"), OPENAI));
            }
            let url = p.image_url.ok_or_else(|| {
                TranslateError::invalid(RESPONSES_REQUEST, format!("{at}.image_url missing"))
            })?;
            let detail = match p.detail {
                None => None,
                Some(d) if matches!(d.as_str(), "auto" | "low" | "high") => Some(d),
                Some(d) => {
                    return Err(TranslateError::unsupported(
                        format!("{at}.detail={d}"),
                        OPENAI,
                    ))
                }
            };
            Ok(oa::ContentPart {
                kind: "image_url".into(),
                image_url: Some(oa::ImageUrl {
                    url,
                    detail,
                    extra: Map::new(),
                }),
                ..oa::ContentPart::default()
            })
        }
        "input_file" => {
            for (field, present) in [
                ("file_id", p.file_id.is_some()),
                ("file_url", p.file_url.is_some()),
            ] {
                if present {
                    return Err(TranslateError::unsupported(format!("{at}.{field}"), OPENAI));
                }
            }
            let data = p.file_data.ok_or_else(|| {
                TranslateError::invalid(RESPONSES_REQUEST, format!("{at}.file_data missing"))
            })?;
            Ok(oa::ContentPart {
                kind: "file".into(),
                file: Some(oa::FileData {
                    file_data: Some(data),
                    file_id: None,
                    filename: p.filename,
                    extra: Map::new(),
                }),
                ..oa::ContentPart::default()
            })
        }
        other => Err(TranslateError::unsupported(
            format!("{at}.type={other}"),
            OPENAI,
        )),
    }
}

/// Assistant history parts: `output_text` (or `input_text`) joined into the text, `refusal`
/// parts into the refusal.
fn assistant_parts(
    parts: Vec<rt::InputPart>,
    at: &str,
) -> Result<(Option<String>, Option<String>), TranslateError> {
    let mut text: Option<String> = None;
    let mut refusal: Option<String> = None;
    for (j, p) in parts.into_iter().enumerate() {
        let pat = format!("{at}.content[{j}]");
        reject_extra(&p.extra, &format!("{pat}."), OPENAI)?;
        match p.kind.as_str() {
            "output_text" | "input_text" => text
                .get_or_insert_with(String::new)
                .push_str(p.text.as_deref().unwrap_or_default()),
            "refusal" => refusal
                .get_or_insert_with(String::new)
                .push_str(p.refusal.as_deref().unwrap_or_default()),
            other => {
                return Err(TranslateError::unsupported(
                    format!("{pat}.type={other}"),
                    OPENAI,
                ))
            }
        }
    }
    Ok((text, refusal))
}

/// What a `response` object repeats from its request (`tools`, `tool_choice`, `temperature`,
/// `instructions`, `metadata`, ...). Chat Completions answers do not carry these, so the
/// caller that still has the client's request builds this with [`ResponsesEcho::from_request`];
/// [`ResponsesEcho::default`] gives OpenAI's defaults.
#[derive(Debug, Clone, PartialEq)]
pub struct ResponsesEcho {
    instructions: Option<String>,
    max_output_tokens: Option<u64>,
    parallel_tool_calls: bool,
    reasoning: Value,
    temperature: Option<f64>,
    text: Value,
    tool_choice: Value,
    tools: Vec<Value>,
    top_p: Option<f64>,
    user: Option<String>,
    metadata: Value,
}

impl Default for ResponsesEcho {
    fn default() -> Self {
        Self {
            instructions: None,
            max_output_tokens: None,
            parallel_tool_calls: true,
            reasoning: json!({"effort": null, "summary": null}),
            temperature: None,
            text: json!({"format": {"type": "text"}}),
            tool_choice: json!("auto"),
            tools: Vec::new(),
            top_p: None,
            user: None,
            metadata: json!({}),
        }
    }
}

impl ResponsesEcho {
    /// Reads the echoed fields of a Responses request; absent or unreadable fields keep their
    /// defaults (the request was validated by [`responses_to_chat_request`]). Function tools
    /// get the nullable fields OpenAI always returns (`description`, `parameters`, `strict`).
    pub fn from_request(body: &[u8]) -> Self {
        #[derive(Deserialize, Default)]
        #[serde(default)]
        struct Probe {
            instructions: Option<String>,
            max_output_tokens: Option<u64>,
            parallel_tool_calls: Option<bool>,
            reasoning: Option<Value>,
            temperature: Option<f64>,
            text: Option<Value>,
            tool_choice: Option<Value>,
            tools: Option<Vec<Value>>,
            top_p: Option<f64>,
            user: Option<String>,
            metadata: Option<Value>,
        }
        let p: Probe = serde_json::from_slice(body).unwrap_or_default();
        let d = Self::default();
        let mut reasoning = d.reasoning;
        if let (Some(Value::Object(given)), Some(out)) = (p.reasoning, reasoning.as_object_mut()) {
            out.extend(given);
        }
        let tools = p
            .tools
            .unwrap_or_default()
            .into_iter()
            .map(|mut t| {
                if let Some(obj) = t.as_object_mut() {
                    if obj.get("type").and_then(Value::as_str) == Some("function") {
                        for key in ["description", "parameters", "strict"] {
                            obj.entry(key).or_insert(Value::Null);
                        }
                    }
                }
                t
            })
            .collect();
        Self {
            instructions: p.instructions,
            max_output_tokens: p.max_output_tokens,
            parallel_tool_calls: p.parallel_tool_calls.unwrap_or(true),
            reasoning,
            temperature: p.temperature,
            text: p.text.unwrap_or(d.text),
            tool_choice: p.tool_choice.unwrap_or(d.tool_choice),
            tools,
            top_p: p.top_p,
            user: p.user,
            metadata: p.metadata.unwrap_or(d.metadata),
        }
    }
}

/// The `response` object of a translated answer.
pub(crate) struct ResponseParts {
    pub id: String,
    pub created_at: u64,
    pub status: &'static str,
    pub error: Option<rt::ResponseError>,
    pub incomplete: Option<&'static str>,
    pub output: Vec<rt::OutputItem>,
    pub usage: Option<rt::ResponsesUsage>,
}

impl ResponseParts {
    pub(crate) fn build(self, model: &str, echo: &ResponsesEcho) -> rt::ResponseObject {
        rt::ResponseObject {
            id: self.id,
            object: "response".into(),
            created_at: self.created_at,
            status: self.status.into(),
            error: self.error,
            incomplete_details: self
                .incomplete
                .map(|r| rt::IncompleteDetails { reason: r.into() }),
            instructions: echo.instructions.clone(),
            max_output_tokens: echo.max_output_tokens,
            model: model.to_owned(),
            output: self.output,
            parallel_tool_calls: echo.parallel_tool_calls,
            previous_response_id: None,
            reasoning: echo.reasoning.clone(),
            store: false,
            temperature: echo.temperature,
            text: echo.text.clone(),
            tool_choice: echo.tool_choice.clone(),
            tools: echo.tools.clone(),
            top_p: echo.top_p,
            truncation: "disabled".into(),
            usage: self.usage,
            user: echo.user.clone(),
            metadata: echo.metadata.clone(),
            background: false,
        }
    }
}

/// The id suffix shared by a response and its items: the chat id without `chatcmpl-`, or a
/// random one when the upstream sent none.
pub(crate) fn id_base(chat_id: &str) -> String {
    let base = chat_id.strip_prefix("chatcmpl-").unwrap_or(chat_id);
    if base.is_empty() {
        std::iter::repeat_with(fastrand::alphanumeric)
            .take(24)
            .collect()
    } else {
        base.to_owned()
    }
}

/// `fc_…` id of the function call item for chat tool call `call_id`.
pub(crate) fn function_call_item_id(call_id: &str) -> String {
    format!("fc_{}", call_id.strip_prefix("call_").unwrap_or(call_id))
}

/// Response `status` and `incomplete_details.reason` for a finish reason.
pub(crate) fn status_for(stop: Option<FinishReason>) -> (&'static str, Option<&'static str>) {
    match stop {
        Some(FinishReason::MaxTokens) => ("incomplete", Some("max_output_tokens")),
        Some(FinishReason::Refusal) => ("incomplete", Some("content_filter")),
        _ => ("completed", None),
    }
}

/// Translates an OpenAI `chat.completion` (its first choice) into a Responses `response` for a
/// client that asked for `client_model`, with the request echo fields at their defaults (see
/// [`chat_to_responses_response_with_echo`]).
pub fn chat_to_responses_response(
    body: &[u8],
    client_model: &str,
) -> Result<Vec<u8>, TranslateError> {
    chat_to_responses_response_with_echo(body, client_model, &ResponsesEcho::default())
}

/// [`chat_to_responses_response`] with the fields the client's request set echoed back.
///
/// Output items, in order: a `reasoning` item with one `reasoning_text` part when the message
/// has `reasoning_content` (OpenAI-compatible servers); a `message` item with an `output_text`
/// part (`content`) and/or a `refusal` part; one `function_call` item per tool call. Finish
/// reason `length` gives status `incomplete` with reason `max_output_tokens`, `content_filter`
/// status `incomplete` with reason `content_filter`.
pub fn chat_to_responses_response_with_echo(
    body: &[u8],
    client_model: &str,
    echo: &ResponsesEcho,
) -> Result<Vec<u8>, TranslateError> {
    let c: rt::ChatCompletionIn =
        serde_json::from_slice(body).map_err(|e| TranslateError::invalid("OpenAI response", e))?;
    let choice = c
        .choices
        .into_iter()
        .next()
        .ok_or_else(|| TranslateError::invalid("OpenAI response", "no choices"))?;
    let base = id_base(&c.id);
    let stop = choice
        .finish_reason
        .as_deref()
        .map(FinishReason::from_openai);
    let (status, incomplete) = status_for(stop);
    let item_status = if incomplete.is_some() {
        "incomplete"
    } else {
        "completed"
    };
    let m = choice.message;
    let calls = m.tool_calls.unwrap_or_default();
    let mut output = Vec::with_capacity(2 + calls.len());
    if let Some(r) = m.reasoning_content.filter(|r| !r.is_empty()) {
        output.push(rt::OutputItem::Reasoning {
            id: format!("rs_{base}"),
            summary: Vec::new(),
            content: vec![rt::ReasoningText {
                kind: "reasoning_text".into(),
                text: r,
            }],
            status: item_status.into(),
        });
    }
    let mut content = Vec::new();
    if let Some(t) = m
        .content
        .filter(|t| !t.is_empty() || (calls.is_empty() && m.refusal.is_none()))
    {
        content.push(rt::OutputContent::OutputText {
            text: t,
            annotations: Vec::new(),
            logprobs: Vec::new(),
        });
    }
    if let Some(r) = m.refusal.filter(|r| !r.is_empty()) {
        content.push(rt::OutputContent::Refusal { refusal: r });
    }
    if !content.is_empty() {
        output.push(rt::OutputItem::Message {
            id: format!("msg_{base}"),
            status: item_status.into(),
            role: "assistant".into(),
            content,
        });
    }
    for call in calls {
        output.push(rt::OutputItem::FunctionCall {
            id: function_call_item_id(&call.id),
            call_id: call.id,
            name: call.function.name,
            arguments: call.function.arguments,
            status: "completed".into(),
        });
    }
    let out = ResponseParts {
        id: format!("resp_{base}"),
        created_at: if c.created == 0 {
            super::response::unix_now()
        } else {
            c.created
        },
        status,
        error: None,
        incomplete,
        output,
        usage: c.usage.map(rt::ChatUsage::to_responses),
    }
    .build(client_model, echo);
    serde_json::to_vec(&out).map_err(|e| TranslateError::invalid("OpenAI Responses response", e))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn to_chat(body: Value) -> Result<Value, TranslateError> {
        let out = responses_to_chat_request(&serde_json::to_vec(&body).unwrap(), "up")?;
        Ok(serde_json::from_slice(&out).unwrap())
    }

    fn req(extra: Value) -> Value {
        let mut b = json!({"model": "m", "input": "hi"});
        b.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        b
    }

    fn refused(r: Result<Value, TranslateError>, field: &str) {
        match r {
            Err(TranslateError::Unsupported { field: f, target }) => {
                assert_eq!((f.as_str(), target), (field, OPENAI));
            }
            other => panic!("expected refusal of {field}, got {other:?}"),
        }
    }

    #[test]
    fn text_input_and_instructions_become_system_and_user_messages() {
        let out = to_chat(req(
            json!({"instructions": "Be brief.", "max_output_tokens": 50,
            "temperature": 0.2, "top_p": 0.9, "user": "u1", "parallel_tool_calls": false,
            "reasoning": {"effort": "low"}, "store": false, "truncation": "disabled",
            "metadata": {"run": "r1"}, "include": []}),
        ))
        .unwrap();
        assert_eq!(
            out,
            json!({"model": "up", "messages": [
                {"role": "system", "content": "Be brief."},
                {"role": "user", "content": "hi"}],
                "max_completion_tokens": 50, "temperature": 0.2, "top_p": 0.9,
                "parallel_tool_calls": false, "user": "u1", "reasoning_effort": "low"})
        );
    }

    #[test]
    fn stream_asks_for_usage() {
        let out = to_chat(req(json!({"stream": true}))).unwrap();
        assert_eq!(out["stream"], true);
        assert_eq!(out["stream_options"], json!({"include_usage": true}));
        let out = to_chat(req(json!({"stream": false}))).unwrap();
        assert!(out.get("stream").is_none());
    }

    #[test]
    fn multi_turn_items_with_roles_images_and_files() {
        let out = to_chat(json!({"model": "m", "input": [
            {"role": "developer", "content": "Rules."},
            {"type": "message", "role": "user", "content": [
                {"type": "input_text", "text": "What is this?"},
                {"type": "input_image", "image_url": "https://x/y.png", "detail": "low"},
                {"type": "input_image", "image_url": "data:image/png;base64,AAAA"},
                {"type": "input_file", "filename": "a.pdf", "file_data": "data:application/pdf;base64,JVBE"}]},
            {"type": "message", "id": "msg_1", "status": "completed", "role": "assistant", "content": [
                {"type": "output_text", "text": "A cat.", "annotations": [], "logprobs": []}]},
            {"role": "user", "content": "Sure?"},
            {"role": "system", "content": [{"type": "input_text", "text": "Late rule."}]}]}))
        .unwrap();
        assert_eq!(
            out["messages"],
            json!([
                {"role": "developer", "content": "Rules."},
                {"role": "user", "content": [
                    {"type": "text", "text": "What is this?"},
                    {"type": "image_url", "image_url": {"url": "https://x/y.png", "detail": "low"}},
                    {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}},
                    {"type": "file", "file": {"file_data": "data:application/pdf;base64,JVBE", "filename": "a.pdf"}}]},
                {"role": "assistant", "content": "A cat."},
                {"role": "user", "content": "Sure?"},
                {"role": "system", "content": [{"type": "text", "text": "Late rule."}]}
            ])
        );
    }

    #[test]
    fn function_calls_merge_into_one_assistant_turn_and_outputs_become_tool_messages() {
        let out = to_chat(json!({"model": "m", "input": [
            {"role": "user", "content": "Weather in Paris and Tokyo?"},
            {"type": "reasoning", "id": "rs_1", "summary": [], "content": [{"type": "reasoning_text", "text": "two calls"}]},
            {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "Checking."}]},
            {"type": "function_call", "id": "fc_a", "call_id": "call_a", "name": "get_weather", "arguments": "{\"city\":\"Paris\"}", "status": "completed"},
            {"type": "function_call", "call_id": "call_b", "name": "get_weather", "arguments": "{\"city\":\"Tokyo\"}"},
            {"type": "function_call_output", "call_id": "call_a", "output": "18C"},
            {"type": "function_call_output", "call_id": "call_b", "output": [{"type": "input_text", "text": "25C"}]},
            {"type": "function_call", "call_id": "call_c", "name": "f", "arguments": "{}"}]}))
        .unwrap();
        assert_eq!(
            out["messages"],
            json!([
                {"role": "user", "content": "Weather in Paris and Tokyo?"},
                {"role": "assistant", "content": "Checking.", "tool_calls": [
                    {"id": "call_a", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}},
                    {"id": "call_b", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\":\"Tokyo\"}"}}]},
                {"role": "tool", "content": "18C", "tool_call_id": "call_a"},
                {"role": "tool", "content": [{"type": "text", "text": "25C"}], "tool_call_id": "call_b"},
                {"role": "assistant", "tool_calls": [
                    {"id": "call_c", "type": "function", "function": {"name": "f", "arguments": "{}"}}]}
            ])
        );
    }

    #[test]
    fn flat_function_tools_choice_and_json_schema_map_to_chat() {
        let out = to_chat(req(json!({
            "tools": [{"type": "function", "name": "get_weather", "description": "d",
                "parameters": {"type": "object", "properties": {}}, "strict": true}],
            "tool_choice": {"type": "function", "name": "get_weather"},
            "text": {"format": {"type": "json_schema", "name": "out", "strict": true,
                "schema": {"type": "object"}}, "verbosity": "low"}})))
        .unwrap();
        assert_eq!(
            out["tools"],
            json!([{"type": "function", "function": {"name": "get_weather", "description": "d",
                "parameters": {"type": "object", "properties": {}}, "strict": true}}])
        );
        assert_eq!(
            out["tool_choice"],
            json!({"type": "function", "function": {"name": "get_weather"}})
        );
        assert_eq!(
            out["response_format"],
            json!({"type": "json_schema", "json_schema": {"name": "out", "schema": {"type": "object"}, "strict": true}})
        );
        assert_eq!(out["verbosity"], "low");
        let out = to_chat(req(
            json!({"tool_choice": "required", "text": {"format": {"type": "json_object"}}}),
        ))
        .unwrap();
        assert_eq!(out["tool_choice"], "required");
        assert_eq!(out["response_format"], json!({"type": "json_object"}));
    }

    #[test]
    fn conversation_state_is_refused_naming_the_field() {
        for field in ["previous_response_id", "conversation"] {
            let err = to_chat(req(json!({field: "resp_1"}))).unwrap_err();
            let msg = err.to_string();
            assert!(msg.contains(field), "{msg}");
            assert!(msg.contains("keeps no conversation state"), "{msg}");
            assert!(msg.contains(OPENAI), "{msg}");
        }
    }

    #[test]
    fn what_chat_cannot_honour_is_refused() {
        refused(
            to_chat(req(json!({"store": true}))),
            "store=true (nothing is stored: send `store: false`)",
        );
        refused(to_chat(req(json!({"background": true}))), "background");
        refused(
            to_chat(req(json!({"include": ["reasoning.encrypted_content"]}))),
            "include=reasoning.encrypted_content",
        );
        refused(to_chat(req(json!({"prompt": {"id": "pmpt_1"}}))), "prompt");
        refused(
            to_chat(req(json!({"truncation": "auto"}))),
            "truncation=auto",
        );
        refused(to_chat(req(json!({"top_logprobs": 3}))), "top_logprobs");
        refused(
            to_chat(req(
                json!({"reasoning": {"effort": "high", "summary": "auto"}}),
            )),
            "reasoning.summary",
        );
        refused(
            to_chat(req(json!({"tools": [{"type": "web_search"}]}))),
            "tools[0].type=web_search",
        );
        refused(
            to_chat(req(
                json!({"tools": [{"type": "mcp", "server_label": "x", "server_url": "https://x"}]}),
            )),
            "tools[0].type=mcp",
        );
        refused(
            to_chat(req(json!({"tool_choice": {"type": "file_search"}}))),
            "tool_choice.type=file_search",
        );
        refused(
            to_chat(req(json!({"text": {"format": {"type": "grammar"}}}))),
            "text.format.type=grammar",
        );
        refused(
            to_chat(json!({"model": "m", "input": [{"role": "user", "content": [
                {"type": "input_file", "file_id": "file-1"}]}]})),
            "input[0].content[0].file_id",
        );
        refused(
            to_chat(json!({"model": "m", "input": [{"role": "user", "content": [
                {"type": "input_image", "file_id": "file-1"}]}]})),
            "input[0].content[0].file_id",
        );
        refused(
            to_chat(json!({"model": "m", "input": [{"role": "user", "content": [
                {"type": "input_audio", "input_audio": {"data": "AA==", "format": "wav"}}]}]})),
            "input[0].content[0].input_audio",
        );
        refused(
            to_chat(json!({"model": "m", "input": [{"type": "item_reference", "id": "msg_1"}]})),
            "input[0].type=item_reference",
        );
        refused(
            to_chat(
                json!({"model": "m", "input": [{"type": "function_call_output", "call_id": "c",
                "output": [{"type": "input_image", "image_url": "https://x/y.png"}]}]}),
            ),
            "input[0].output[0].type=input_image",
        );
        refused(
            to_chat(json!({"model": "m", "input": [{"role": "tool", "content": "x"}]})),
            "input[0].role=tool",
        );
    }

    #[test]
    fn null_and_false_fields_count_as_absent_and_bad_bodies_are_invalid() {
        let out = to_chat(req(json!({"previous_response_id": null, "store": null,
            "background": false, "top_logprobs": null, "stream_options": {"include_obfuscation": false},
            "max_tool_calls": 3})))
        .unwrap();
        assert_eq!(out["messages"], json!([{"role": "user", "content": "hi"}]));
        assert!(matches!(
            responses_to_chat_request(b"{", "m"),
            Err(TranslateError::Invalid { .. })
        ));
        assert!(matches!(
            responses_to_chat_request(br#"{"model":"m"}"#, "m"),
            Err(TranslateError::Invalid { .. })
        ));
    }

    fn v(b: &[u8]) -> Value {
        serde_json::from_slice(b).unwrap()
    }

    #[test]
    fn text_answer_becomes_a_completed_response_with_usage() {
        let chat = br#"{"id":"chatcmpl-abc","object":"chat.completion","created":1700000000,"model":"gpt","choices":[{"index":0,"message":{"role":"assistant","content":"Hello!","refusal":null},"logprobs":null,"finish_reason":"stop"}],"usage":{"prompt_tokens":10,"completion_tokens":3,"total_tokens":13,"prompt_tokens_details":{"cached_tokens":4},"completion_tokens_details":{"reasoning_tokens":1}}}"#;
        let out = v(&chat_to_responses_response(chat, "alias").unwrap());
        assert_eq!(
            out,
            json!({
                "id": "resp_abc", "object": "response", "created_at": 1700000000,
                "status": "completed", "error": null, "incomplete_details": null,
                "instructions": null, "max_output_tokens": null, "model": "alias",
                "output": [{"type": "message", "id": "msg_abc", "status": "completed", "role": "assistant",
                    "content": [{"type": "output_text", "text": "Hello!", "annotations": [], "logprobs": []}]}],
                "parallel_tool_calls": true, "previous_response_id": null,
                "reasoning": {"effort": null, "summary": null}, "store": false, "temperature": null,
                "text": {"format": {"type": "text"}}, "tool_choice": "auto", "tools": [], "top_p": null,
                "truncation": "disabled",
                "usage": {"input_tokens": 10, "input_tokens_details": {"cached_tokens": 4, "cache_write_tokens": 0},
                    "output_tokens": 3, "output_tokens_details": {"reasoning_tokens": 1}, "total_tokens": 13},
                "user": null, "metadata": {}, "background": false
            })
        );
    }

    #[test]
    fn tool_calls_reasoning_and_echo_reach_the_response() {
        let chat = br#"{"id":"chatcmpl-t","object":"chat.completion","created":1,"model":"g","choices":[{"index":0,"message":{"role":"assistant","content":null,"reasoning_content":"need data","tool_calls":[{"id":"call_1","type":"function","function":{"name":"get_weather","arguments":"{\"city\":\"Paris\"}"}},{"id":"call_2","type":"function","function":{"name":"get_weather","arguments":"{\"city\":\"Oslo\"}"}}]},"finish_reason":"tool_calls"}]}"#;
        let echo = ResponsesEcho::from_request(
            br#"{"model":"m","input":"x","instructions":"Be brief.","temperature":0.5,"metadata":{"k":"v"},
            "tools":[{"type":"function","name":"get_weather","parameters":{"type":"object"}}],"tool_choice":"required",
            "reasoning":{"effort":"low"}}"#,
        );
        let out = v(&chat_to_responses_response_with_echo(chat, "alias", &echo).unwrap());
        assert_eq!(
            out["output"],
            json!([
                {"type": "reasoning", "id": "rs_t", "summary": [], "status": "completed",
                    "content": [{"type": "reasoning_text", "text": "need data"}]},
                {"type": "function_call", "id": "fc_1", "call_id": "call_1", "name": "get_weather",
                    "arguments": "{\"city\":\"Paris\"}", "status": "completed"},
                {"type": "function_call", "id": "fc_2", "call_id": "call_2", "name": "get_weather",
                    "arguments": "{\"city\":\"Oslo\"}", "status": "completed"}
            ])
        );
        assert_eq!(out["status"], "completed");
        assert_eq!(out["usage"], Value::Null);
        assert_eq!(out["instructions"], "Be brief.");
        assert_eq!(out["temperature"], 0.5);
        assert_eq!(out["metadata"], json!({"k": "v"}));
        assert_eq!(out["tool_choice"], "required");
        assert_eq!(out["reasoning"], json!({"effort": "low", "summary": null}));
        assert_eq!(
            out["tools"],
            json!([{"type": "function", "name": "get_weather", "parameters": {"type": "object"},
                "description": null, "strict": null}])
        );
    }

    #[test]
    fn length_and_content_filter_give_incomplete_responses() {
        let chat = br#"{"id":"chatcmpl-l","object":"chat.completion","created":1,"model":"g","choices":[{"index":0,"message":{"role":"assistant","content":"abc"},"finish_reason":"length"}]}"#;
        let out = v(&chat_to_responses_response(chat, "a").unwrap());
        assert_eq!(out["status"], "incomplete");
        assert_eq!(
            out["incomplete_details"],
            json!({"reason": "max_output_tokens"})
        );
        assert_eq!(out["output"][0]["status"], "incomplete");
        let chat = br#"{"id":"chatcmpl-r","object":"chat.completion","created":1,"model":"g","choices":[{"index":0,"message":{"role":"assistant","content":null,"refusal":"I can't."},"finish_reason":"content_filter"}]}"#;
        let out = v(&chat_to_responses_response(chat, "a").unwrap());
        assert_eq!(
            out["incomplete_details"],
            json!({"reason": "content_filter"})
        );
        assert_eq!(
            out["output"][0]["content"],
            json!([{"type": "refusal", "refusal": "I can't."}])
        );
        assert!(matches!(
            chat_to_responses_response(br#"{"id":"x","choices":[]}"#, "a"),
            Err(TranslateError::Invalid { .. })
        ));
    }

    #[test]
    fn responses_output_sent_back_as_input_round_trips() {
        let chat = br#"{"id":"chatcmpl-rt","object":"chat.completion","created":1,"model":"g","choices":[{"index":0,"message":{"role":"assistant","content":"Let me check.","reasoning_content":"hmm","tool_calls":[{"id":"call_9","type":"function","function":{"name":"f","arguments":"{}"}}]},"finish_reason":"tool_calls"}]}"#;
        let resp = v(&chat_to_responses_response(chat, "a").unwrap());
        let mut input = vec![json!({"role": "user", "content": "go"})];
        input.extend(resp["output"].as_array().unwrap().iter().cloned());
        input.push(json!({"type": "function_call_output", "call_id": "call_9", "output": "done"}));
        let out = to_chat(json!({"model": "m", "input": input})).unwrap();
        assert_eq!(
            out["messages"],
            json!([
                {"role": "user", "content": "go"},
                {"role": "assistant", "content": "Let me check.", "tool_calls": [
                    {"id": "call_9", "type": "function", "function": {"name": "f", "arguments": "{}"}}]},
                {"role": "tool", "content": "done", "tool_call_id": "call_9"}
            ])
        );
    }
}
