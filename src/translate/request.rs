//! Request bodies from one dialect to the other: `openai_to_anthropic_request` and
//! `anthropic_to_openai_request`. Pure functions from the client's bytes to the upstream's.
//!
//! A field the target cannot honour is refused with `TranslateError::Unsupported`, never
//! dropped, with two documented exceptions that the target has no way to express and that do
//! not change the answer: `cache_control` markers (OpenAI caches prompts by itself) and
//! `thinking` / `redacted_thinking` blocks in assistant history (OpenAI takes no reasoning
//! input). A field whose value is `null` or `false` counts as absent.

use super::write::parse_data_url;
use serde_json::{json, Map, Value};

use super::anthropic_types as an;
use super::error::{ANTHROPIC, OPENAI};
use super::openai_types as oa;
use super::TranslateError;

/// `max_tokens` sent to Anthropic when the OpenAI request sets neither `max_completion_tokens`
/// nor `max_tokens` (Anthropic requires it; OpenAI's default is "up to the model's limit").
pub const DEFAULT_MAX_TOKENS: u64 = 4096;

/// Translates an OpenAI Chat Completions request into an Anthropic Messages request for
/// `upstream_model`. The stream flag is kept; `stream_options.include_usage` is read by the
/// stream translator (see [`openai_include_usage`]) and not sent (Anthropic always reports usage).
pub fn openai_to_anthropic_request(
    body: &[u8],
    upstream_model: &str,
) -> Result<Vec<u8>, TranslateError> {
    let req: oa::ChatRequest =
        serde_json::from_slice(body).map_err(|e| TranslateError::invalid("OpenAI request", e))?;
    reject_extra(&req.extra, "", ANTHROPIC)?;
    if req.n.is_some_and(|n| n != 1) {
        return Err(TranslateError::unsupported("n", ANTHROPIC));
    }
    let mut out = an::MessagesRequest {
        model: upstream_model.to_owned(),
        max_tokens: Some(
            req.max_completion_tokens
                .or(req.max_tokens)
                .unwrap_or(DEFAULT_MAX_TOKENS),
        ),
        top_p: req.top_p,
        stream: req.stream,
        ..an::MessagesRequest::default()
    };
    if let Some(t) = req.temperature {
        if t > 1.0 {
            return Err(TranslateError::unsupported("temperature>1", ANTHROPIC));
        }
        out.temperature = Some(t);
    }
    out.stop_sequences = match req.stop {
        Some(oa::StopSequences::One(s)) => Some(vec![s]),
        Some(oa::StopSequences::Many(v)) if !v.is_empty() => Some(v),
        _ => None,
    };
    if let Some(so) = &req.stream_options {
        reject_extra(&so.extra, "stream_options.", ANTHROPIC)?;
    }
    if let Some(tools) = req.tools {
        out.tools = Some(
            tools
                .into_iter()
                .enumerate()
                .map(openai_tool)
                .collect::<Result<_, _>>()?,
        );
    }
    out.tool_choice = openai_tool_choice(req.tool_choice, req.parallel_tool_calls)?;
    if let Some(rf) = req.response_format {
        match rf.kind.as_str() {
            "text" => {}
            "json_schema" => {
                let schema = rf.json_schema.and_then(|j| j.schema).ok_or_else(|| {
                    TranslateError::invalid(
                        "OpenAI request",
                        "response_format.json_schema.schema missing",
                    )
                })?;
                out.output_config = Some(an::OutputConfig {
                    format: Some(an::OutputFormat {
                        kind: "json_schema".into(),
                        schema,
                    }),
                    ..an::OutputConfig::default()
                });
            }
            other => {
                return Err(TranslateError::unsupported(
                    format!("response_format.type={other}"),
                    ANTHROPIC,
                ))
            }
        }
    }
    if let Some(effort) = req.reasoning_effort {
        if !matches!(effort.as_str(), "low" | "medium" | "high") {
            return Err(TranslateError::unsupported(
                format!("reasoning_effort={effort}"),
                ANTHROPIC,
            ));
        }
        out.output_config
            .get_or_insert_with(an::OutputConfig::default)
            .effort = Some(effort);
    }
    if let Some(user) = req.user {
        out.metadata = Some(an::Metadata {
            user_id: Some(user),
            extra: Map::new(),
        });
    }
    let (system, messages) = openai_messages(req.messages)?;
    out.system = system;
    out.messages = messages;
    serde_json::to_vec(&out).map_err(|e| TranslateError::invalid("Anthropic request", e))
}

/// Whether an OpenAI request asks for a usage chunk at the end of its stream
/// (`stream_options.include_usage`); the stream translator needs it.
pub fn openai_include_usage(body: &[u8]) -> bool {
    #[derive(serde::Deserialize)]
    struct Probe {
        stream_options: Option<oa::StreamOptions>,
    }
    serde_json::from_slice::<Probe>(body)
        .ok()
        .and_then(|p| p.stream_options)
        .and_then(|s| s.include_usage)
        .unwrap_or(false)
}

fn openai_tool((i, tool): (usize, oa::Tool)) -> Result<an::Tool, TranslateError> {
    if tool.kind != "function" {
        return Err(TranslateError::unsupported(
            format!("tools[{i}].type={}", tool.kind),
            ANTHROPIC,
        ));
    }
    reject_extra(&tool.extra, &format!("tools[{i}]."), ANTHROPIC)?;
    let f = tool.function.ok_or_else(|| {
        TranslateError::invalid("OpenAI request", format!("tools[{i}].function missing"))
    })?;
    reject_extra(&f.extra, &format!("tools[{i}].function."), ANTHROPIC)?;
    Ok(an::Tool {
        name: f.name,
        description: f.description,
        input_schema: Some(
            f.parameters
                .unwrap_or_else(|| json!({"type": "object", "properties": {}})),
        ),
        strict: f.strict,
        ..an::Tool::default()
    })
}

fn openai_tool_choice(
    choice: Option<oa::ToolChoice>,
    parallel: Option<bool>,
) -> Result<Option<an::ToolChoice>, TranslateError> {
    let mut out = match choice {
        None => None,
        Some(oa::ToolChoice::Mode(m)) => {
            let kind = match m.as_str() {
                "auto" => "auto",
                "none" => "none",
                "required" => "any",
                _ => {
                    return Err(TranslateError::unsupported(
                        format!("tool_choice={m}"),
                        ANTHROPIC,
                    ))
                }
            };
            Some(an::ToolChoice {
                kind: kind.into(),
                ..an::ToolChoice::default()
            })
        }
        Some(oa::ToolChoice::Named(n)) => {
            if n.kind != "function" {
                return Err(TranslateError::unsupported(
                    format!("tool_choice.type={}", n.kind),
                    ANTHROPIC,
                ));
            }
            Some(an::ToolChoice {
                kind: "tool".into(),
                name: Some(n.function.name),
                disable_parallel_tool_use: None,
            })
        }
    };
    if parallel == Some(false) {
        let c = out.get_or_insert_with(|| an::ToolChoice {
            kind: "auto".into(),
            ..an::ToolChoice::default()
        });
        if c.kind != "none" {
            c.disable_parallel_tool_use = Some(true);
        }
    }
    Ok(out)
}

/// Splits OpenAI messages into Anthropic's `system` and turns. Leading `system`/`developer`
/// messages become the system prompt; consecutive `tool` messages become `tool_result`
/// blocks of one user turn; consecutive turns of one role are merged.
fn openai_messages(
    msgs: Vec<oa::ChatMessage>,
) -> Result<(Option<an::Content>, Vec<an::Message>), TranslateError> {
    let mut system: Vec<an::Content> = Vec::new();
    let mut turns: Vec<an::Message> = Vec::new();
    for (i, m) in msgs.into_iter().enumerate() {
        let at = format!("messages[{i}]");
        reject_extra(&m.extra, &format!("{at}."), ANTHROPIC)?;
        if m.name.is_some() {
            return Err(TranslateError::unsupported(format!("{at}.name"), ANTHROPIC));
        }
        match m.role.as_str() {
            "system" | "developer" => {
                if !turns.is_empty() {
                    return Err(TranslateError::unsupported(
                        format!(
                            "{at}.role={} after the first user or assistant message",
                            m.role
                        ),
                        ANTHROPIC,
                    ));
                }
                system.push(text_only(m.content, &at)?);
            }
            "user" => {
                let content = match m.content {
                    None => an::Content::Text(String::new()),
                    Some(oa::MessageContent::Text(s)) => an::Content::Text(s),
                    Some(oa::MessageContent::Parts(parts)) => an::Content::Blocks(
                        parts
                            .into_iter()
                            .enumerate()
                            .map(|(j, p)| user_part(p, &format!("{at}.content[{j}]")))
                            .collect::<Result<_, _>>()?,
                    ),
                };
                push_turn(&mut turns, "user", content);
            }
            "assistant" => {
                let content = assistant_content(m.content, m.refusal, m.tool_calls, &at)?;
                push_turn(&mut turns, "assistant", content);
            }
            "tool" => {
                let id = m.tool_call_id.ok_or_else(|| {
                    TranslateError::invalid("OpenAI request", format!("{at}.tool_call_id missing"))
                })?;
                let block = an::Block {
                    kind: "tool_result".into(),
                    tool_use_id: Some(id),
                    content: Some(text_only(m.content, &at)?),
                    ..an::Block::default()
                };
                push_turn(&mut turns, "user", an::Content::Blocks(vec![block]));
            }
            other => {
                return Err(TranslateError::unsupported(
                    format!("{at}.role={other}"),
                    ANTHROPIC,
                ))
            }
        }
    }
    let system = match system.len() {
        0 => None,
        1 => system.pop(),
        _ => Some(an::Content::Blocks(
            system.into_iter().flat_map(into_blocks).collect(),
        )),
    };
    Ok((system, turns))
}

/// Appends a turn, merging it into the previous one when the role is the same.
fn push_turn(turns: &mut Vec<an::Message>, role: &str, content: an::Content) {
    if let Some(last) = turns.last_mut() {
        if last.role == role {
            let mut blocks = into_blocks(std::mem::take(&mut last.content));
            blocks.extend(into_blocks(content));
            last.content = an::Content::Blocks(blocks);
            return;
        }
    }
    turns.push(an::Message {
        role: role.into(),
        content,
        extra: Map::new(),
    });
}

fn into_blocks(c: an::Content) -> Vec<an::Block> {
    match c {
        an::Content::Text(s) if s.is_empty() => Vec::new(),
        an::Content::Text(s) => vec![an::Block::text(s)],
        an::Content::Blocks(b) => b,
    }
}

/// Content that may only hold text (system prompts, tool results).
fn text_only(content: Option<oa::MessageContent>, at: &str) -> Result<an::Content, TranslateError> {
    match content {
        None => Ok(an::Content::Text(String::new())),
        Some(oa::MessageContent::Text(s)) => Ok(an::Content::Text(s)),
        Some(oa::MessageContent::Parts(parts)) => {
            let mut blocks = Vec::with_capacity(parts.len());
            for (j, p) in parts.into_iter().enumerate() {
                reject_extra(&p.extra, &format!("{at}.content[{j}]."), ANTHROPIC)?;
                match (p.kind.as_str(), p.text) {
                    ("text", Some(t)) => blocks.push(an::Block::text(t)),
                    (kind, _) => {
                        return Err(TranslateError::unsupported(
                            format!("{at}.content[{j}].type={kind}"),
                            ANTHROPIC,
                        ))
                    }
                }
            }
            Ok(an::Content::Blocks(blocks))
        }
    }
}

fn user_part(p: oa::ContentPart, at: &str) -> Result<an::Block, TranslateError> {
    if !matches!(p.kind.as_str(), "text" | "image_url" | "file") {
        return Err(TranslateError::unsupported(
            format!("{at}.type={}", p.kind),
            ANTHROPIC,
        ));
    }
    reject_extra(&p.extra, &format!("{at}."), ANTHROPIC)?;
    match p.kind.as_str() {
        "text" => Ok(an::Block::text(p.text.unwrap_or_default())),
        "image_url" => {
            let img = p.image_url.ok_or_else(|| {
                TranslateError::invalid("OpenAI request", format!("{at}.image_url missing"))
            })?;
            reject_extra(&img.extra, &format!("{at}.image_url."), ANTHROPIC)?;
            if let Some(d) = img.detail.filter(|d| d != "auto") {
                return Err(TranslateError::unsupported(
                    format!("{at}.image_url.detail={d}"),
                    ANTHROPIC,
                ));
            }
            let source = match parse_data_url(&img.url) {
                Some((media_type, data)) => base64_source(media_type, data),
                None if img.url.starts_with("data:") => {
                    return Err(TranslateError::unsupported(
                        format!("{at}.image_url.url (non-base64 data URL)"),
                        ANTHROPIC,
                    ))
                }
                None => an::Source {
                    kind: "url".into(),
                    url: Some(img.url),
                    ..an::Source::default()
                },
            };
            Ok(an::Block {
                kind: "image".into(),
                source: Some(source),
                ..an::Block::default()
            })
        }
        "file" => {
            let f = p.file.ok_or_else(|| {
                TranslateError::invalid("OpenAI request", format!("{at}.file missing"))
            })?;
            reject_extra(&f.extra, &format!("{at}.file."), ANTHROPIC)?;
            if f.file_id.is_some() {
                return Err(TranslateError::unsupported(
                    format!("{at}.file.file_id"),
                    ANTHROPIC,
                ));
            }
            let data = f.file_data.unwrap_or_default();
            let (media_type, data) = parse_data_url(&data).ok_or_else(|| {
                TranslateError::unsupported(
                    format!("{at}.file.file_data (not a base64 data URL)"),
                    ANTHROPIC,
                )
            })?;
            Ok(an::Block {
                kind: "document".into(),
                source: Some(base64_source(media_type, data)),
                title: f.filename,
                ..an::Block::default()
            })
        }
        other => Err(TranslateError::unsupported(
            format!("{at}.type={other}"),
            ANTHROPIC,
        )),
    }
}

fn base64_source(media_type: &str, data: &str) -> an::Source {
    an::Source {
        kind: "base64".into(),
        media_type: Some(media_type.to_owned()),
        data: Some(data.to_owned()),
        ..an::Source::default()
    }
}

fn assistant_content(
    content: Option<oa::MessageContent>,
    refusal: Option<String>,
    tool_calls: Option<Vec<oa::ToolCall>>,
    at: &str,
) -> Result<an::Content, TranslateError> {
    let calls = tool_calls.unwrap_or_default();
    if let (Some(oa::MessageContent::Text(s)), None, true) = (&content, &refusal, calls.is_empty())
    {
        return Ok(an::Content::Text(s.clone()));
    }
    let mut blocks = Vec::new();
    match content {
        Some(oa::MessageContent::Text(s)) if !s.is_empty() => blocks.push(an::Block::text(s)),
        None | Some(oa::MessageContent::Text(_)) => {}
        Some(oa::MessageContent::Parts(parts)) => {
            for (j, p) in parts.into_iter().enumerate() {
                reject_extra(&p.extra, &format!("{at}.content[{j}]."), ANTHROPIC)?;
                match p.kind.as_str() {
                    "text" => blocks.push(an::Block::text(p.text.unwrap_or_default())),
                    "refusal" => blocks.push(an::Block::text(p.refusal.unwrap_or_default())),
                    other => {
                        return Err(TranslateError::unsupported(
                            format!("{at}.content[{j}].type={other}"),
                            ANTHROPIC,
                        ))
                    }
                }
            }
        }
    }
    if let Some(r) = refusal {
        blocks.push(an::Block::text(r));
    }
    for (k, call) in calls.into_iter().enumerate() {
        let input: Value = serde_json::from_str(&call.function.arguments).map_err(|e| {
            TranslateError::invalid(
                "OpenAI request",
                format!("{at}.tool_calls[{k}].function.arguments: {e}"),
            )
        })?;
        blocks.push(an::Block {
            kind: "tool_use".into(),
            id: Some(call.id),
            name: Some(call.function.name),
            input: Some(input),
            ..an::Block::default()
        });
    }
    Ok(an::Content::Blocks(blocks))
}

/// Translates an Anthropic Messages request into an OpenAI Chat Completions request for
/// `upstream_model`. A streamed request gets `stream_options.include_usage = true` so that the
/// stream carries usage.
pub fn anthropic_to_openai_request(
    body: &[u8],
    upstream_model: &str,
) -> Result<Vec<u8>, TranslateError> {
    let req: an::MessagesRequest = serde_json::from_slice(body)
        .map_err(|e| TranslateError::invalid("Anthropic request", e))?;
    reject_extra(&req.extra, "", OPENAI)?;
    if req.top_k.is_some() {
        return Err(TranslateError::unsupported("top_k", OPENAI));
    }
    let mut out = oa::ChatRequest {
        model: upstream_model.to_owned(),
        max_completion_tokens: req.max_tokens,
        temperature: req.temperature,
        top_p: req.top_p,
        stop: req
            .stop_sequences
            .filter(|v| !v.is_empty())
            .map(oa::StopSequences::Many),
        ..oa::ChatRequest::default()
    };
    if req.stream == Some(true) {
        out.stream = Some(true);
        out.stream_options = Some(oa::StreamOptions {
            include_usage: Some(true),
            extra: Map::new(),
        });
    } else {
        out.stream = req.stream;
    }
    if let Some(md) = req.metadata {
        reject_extra(&md.extra, "metadata.", OPENAI)?;
        out.user = md.user_id;
    }
    if let Some(th) = req.thinking {
        reject_extra(&th.extra, "thinking.", OPENAI)?;
        match (th.kind.as_str(), th.budget_tokens) {
            ("disabled", _) => {}
            ("enabled", Some(b)) => out.reasoning_effort = Some(effort_for_budget(b).into()),
            (kind, _) => {
                return Err(TranslateError::unsupported(
                    format!("thinking.type={kind}"),
                    OPENAI,
                ))
            }
        }
    }
    if let Some(oc) = req.output_config {
        reject_extra(&oc.extra, "output_config.", OPENAI)?;
        if let Some(f) = oc.format {
            if f.kind != "json_schema" {
                return Err(TranslateError::unsupported(
                    format!("output_config.format.type={}", f.kind),
                    OPENAI,
                ));
            }
            out.response_format = Some(oa::ResponseFormat {
                kind: "json_schema".into(),
                json_schema: Some(oa::JsonSchemaFormat {
                    name: "output".into(),
                    description: None,
                    schema: Some(f.schema),
                    strict: Some(true),
                }),
            });
        }
        if let Some(e) = oc.effort {
            if !matches!(e.as_str(), "low" | "medium" | "high") {
                return Err(TranslateError::unsupported(
                    format!("output_config.effort={e}"),
                    OPENAI,
                ));
            }
            out.reasoning_effort = Some(e);
        }
    }
    if let Some(tools) = req.tools {
        let mut list = Vec::with_capacity(tools.len());
        for (i, t) in tools.into_iter().enumerate() {
            reject_extra(&t.extra, &format!("tools[{i}]."), OPENAI)?;
            if let Some(kind) = t.kind.filter(|k| k != "custom") {
                return Err(TranslateError::unsupported(
                    format!("tools[{i}].type={kind}"),
                    OPENAI,
                ));
            }
            list.push(oa::Tool {
                kind: "function".into(),
                function: Some(oa::FunctionDef {
                    name: t.name,
                    description: t.description,
                    parameters: t.input_schema,
                    strict: t.strict,
                    extra: Map::new(),
                }),
                extra: Map::new(),
            });
        }
        out.tools = Some(list);
    }
    if let Some(tc) = req.tool_choice {
        out.tool_choice = Some(match tc.kind.as_str() {
            "auto" => oa::ToolChoice::Mode("auto".into()),
            "any" => oa::ToolChoice::Mode("required".into()),
            "none" => oa::ToolChoice::Mode("none".into()),
            "tool" => oa::ToolChoice::Named(oa::NamedToolChoice {
                kind: "function".into(),
                function: oa::FunctionName {
                    name: tc.name.unwrap_or_default(),
                },
            }),
            other => {
                return Err(TranslateError::unsupported(
                    format!("tool_choice.type={other}"),
                    OPENAI,
                ))
            }
        });
        if tc.disable_parallel_tool_use == Some(true) {
            out.parallel_tool_calls = Some(false);
        }
    }
    let mut messages = Vec::with_capacity(req.messages.len() + 1);
    if let Some(system) = req.system {
        let content = match system {
            an::Content::Text(s) => oa::MessageContent::Text(s),
            an::Content::Blocks(blocks) => {
                oa::MessageContent::Parts(text_parts(blocks, "system", OPENAI)?)
            }
        };
        messages.push(oa::ChatMessage {
            role: "system".into(),
            content: Some(content),
            ..oa::ChatMessage::default()
        });
    }
    for (i, m) in req.messages.into_iter().enumerate() {
        let at = format!("messages[{i}]");
        reject_extra(&m.extra, &format!("{at}."), OPENAI)?;
        match m.role.as_str() {
            "user" => anthropic_user_turn(m.content, &at, &mut messages)?,
            "assistant" => messages.push(anthropic_assistant_turn(m.content, &at)?),
            other => {
                return Err(TranslateError::unsupported(
                    format!("{at}.role={other}"),
                    OPENAI,
                ))
            }
        }
    }
    out.messages = messages;
    serde_json::to_vec(&out).map_err(|e| TranslateError::invalid("OpenAI request", e))
}

/// `thinking.budget_tokens` → `reasoning_effort`: below 4096 `low`, below 16384 `medium`,
/// else `high`.
fn effort_for_budget(budget: u64) -> &'static str {
    match budget {
        0..4096 => "low",
        4096..16384 => "medium",
        _ => "high",
    }
}

/// Text blocks → OpenAI text parts (`cache_control` dropped).
fn text_parts(
    blocks: Vec<an::Block>,
    at: &str,
    target: &'static str,
) -> Result<Vec<oa::ContentPart>, TranslateError> {
    let mut parts = Vec::with_capacity(blocks.len());
    for (j, b) in blocks.into_iter().enumerate() {
        reject_extra(&b.extra, &format!("{at}[{j}]."), target)?;
        match (b.kind.as_str(), b.text) {
            ("text", Some(t)) => parts.push(oa::ContentPart::text(t)),
            (kind, _) => {
                return Err(TranslateError::unsupported(
                    format!("{at}[{j}].type={kind}"),
                    target,
                ))
            }
        }
    }
    Ok(parts)
}

/// A user turn: its `tool_result` blocks become `tool` messages (first, as OpenAI wants them
/// right after the assistant's calls), the rest one `user` message.
fn anthropic_user_turn(
    content: an::Content,
    at: &str,
    out: &mut Vec<oa::ChatMessage>,
) -> Result<(), TranslateError> {
    let blocks = match content {
        an::Content::Text(s) => {
            out.push(oa::ChatMessage {
                role: "user".into(),
                content: Some(oa::MessageContent::Text(s)),
                ..oa::ChatMessage::default()
            });
            return Ok(());
        }
        an::Content::Blocks(b) => b,
    };
    let mut parts = Vec::new();
    for (j, b) in blocks.into_iter().enumerate() {
        let bat = format!("{at}.content[{j}]");
        reject_extra(&b.extra, &format!("{bat}."), OPENAI)?;
        match b.kind.as_str() {
            "text" => parts.push(oa::ContentPart::text(b.text.unwrap_or_default())),
            "image" => {
                let url = match b.source {
                    Some(s) if s.kind == "base64" => {
                        reject_extra(&s.extra, &format!("{bat}.source."), OPENAI)?;
                        format!(
                            "data:{};base64,{}",
                            s.media_type.unwrap_or_default(),
                            s.data.unwrap_or_default()
                        )
                    }
                    Some(s) if s.kind == "url" => s.url.unwrap_or_default(),
                    Some(s) => {
                        return Err(TranslateError::unsupported(
                            format!("{bat}.source.type={}", s.kind),
                            OPENAI,
                        ))
                    }
                    None => {
                        return Err(TranslateError::invalid(
                            "Anthropic request",
                            format!("{bat}.source missing"),
                        ))
                    }
                };
                parts.push(oa::ContentPart {
                    kind: "image_url".into(),
                    image_url: Some(oa::ImageUrl {
                        url,
                        detail: None,
                        extra: Map::new(),
                    }),
                    ..oa::ContentPart::default()
                });
            }
            "document" => {
                let s = b.source.ok_or_else(|| {
                    TranslateError::invalid("Anthropic request", format!("{bat}.source missing"))
                })?;
                reject_extra(&s.extra, &format!("{bat}.source."), OPENAI)?;
                let media = s.media_type.unwrap_or_default();
                if s.kind != "base64" {
                    return Err(TranslateError::unsupported(
                        format!("{bat}.source.type={}", s.kind),
                        OPENAI,
                    ));
                }
                if media != "application/pdf" {
                    return Err(TranslateError::unsupported(
                        format!("{bat}.source.media_type={media}"),
                        OPENAI,
                    ));
                }
                parts.push(oa::ContentPart {
                    kind: "file".into(),
                    file: Some(oa::FileData {
                        file_data: Some(format!(
                            "data:{media};base64,{}",
                            s.data.unwrap_or_default()
                        )),
                        file_id: None,
                        filename: Some(b.title.unwrap_or_else(|| "document.pdf".into())),
                        extra: Map::new(),
                    }),
                    ..oa::ContentPart::default()
                });
            }
            "tool_result" => {
                let text = match b.content {
                    None => String::new(),
                    Some(an::Content::Text(s)) => s,
                    Some(an::Content::Blocks(inner)) => {
                        text_parts(inner, &format!("{bat}.content"), OPENAI)?
                            .into_iter()
                            .filter_map(|p| p.text)
                            .collect::<Vec<_>>()
                            .join("\n")
                    }
                };
                let text = if b.is_error == Some(true) {
                    format!("Error: {text}")
                } else {
                    text
                };
                out.push(oa::ChatMessage {
                    role: "tool".into(),
                    content: Some(oa::MessageContent::Text(text)),
                    tool_call_id: b.tool_use_id,
                    ..oa::ChatMessage::default()
                });
            }
            other => {
                return Err(TranslateError::unsupported(
                    format!("{bat}.type={other}"),
                    OPENAI,
                ))
            }
        }
    }
    if !parts.is_empty() {
        out.push(oa::ChatMessage {
            role: "user".into(),
            content: Some(oa::MessageContent::Parts(parts)),
            ..oa::ChatMessage::default()
        });
    }
    Ok(())
}

/// An assistant turn: text blocks joined into `content`, `tool_use` blocks into `tool_calls`;
/// `thinking` / `redacted_thinking` blocks dropped (OpenAI takes no reasoning input).
fn anthropic_assistant_turn(
    content: an::Content,
    at: &str,
) -> Result<oa::ChatMessage, TranslateError> {
    let blocks = match content {
        an::Content::Text(s) => {
            return Ok(oa::ChatMessage {
                role: "assistant".into(),
                content: Some(oa::MessageContent::Text(s)),
                ..oa::ChatMessage::default()
            })
        }
        an::Content::Blocks(b) => b,
    };
    let mut text = String::new();
    let mut calls = Vec::new();
    for (j, b) in blocks.into_iter().enumerate() {
        let bat = format!("{at}.content[{j}]");
        match b.kind.as_str() {
            "thinking" | "redacted_thinking" => continue,
            "text" => {
                reject_extra(&b.extra, &format!("{bat}."), OPENAI)?;
                text.push_str(b.text.as_deref().unwrap_or_default());
            }
            "tool_use" => {
                reject_extra(&b.extra, &format!("{bat}."), OPENAI)?;
                let arguments = serde_json::to_string(&b.input.unwrap_or_else(|| json!({})))
                    .map_err(|e| TranslateError::invalid("Anthropic request", e))?;
                calls.push(oa::ToolCall {
                    id: b.id.unwrap_or_default(),
                    kind: "function".into(),
                    function: oa::FunctionCall {
                        name: b.name.unwrap_or_default(),
                        arguments,
                    },
                });
            }
            other => {
                return Err(TranslateError::unsupported(
                    format!("{bat}.type={other}"),
                    OPENAI,
                ))
            }
        }
    }
    Ok(oa::ChatMessage {
        role: "assistant".into(),
        content: if text.is_empty() && !calls.is_empty() {
            None
        } else {
            Some(oa::MessageContent::Text(text))
        },
        tool_calls: if calls.is_empty() { None } else { Some(calls) },
        ..oa::ChatMessage::default()
    })
}

/// Refuses any field left in `extra` whose value is not `null` or `false` (both mean "off" in
/// these APIs: `"logprobs": false`, `"store": false`).
pub(crate) fn reject_extra(
    extra: &Map<String, Value>,
    prefix: &str,
    target: &'static str,
) -> Result<(), TranslateError> {
    match extra
        .iter()
        .find(|(_, v)| !v.is_null() && **v != Value::Bool(false))
    {
        Some((k, _)) => Err(TranslateError::unsupported(format!("{prefix}{k}"), target)),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn to_anthropic(body: Value) -> Result<Value, TranslateError> {
        let out = openai_to_anthropic_request(&serde_json::to_vec(&body).unwrap(), "claude")?;
        Ok(serde_json::from_slice(&out).unwrap())
    }

    fn to_openai(body: Value) -> Result<Value, TranslateError> {
        let out = anthropic_to_openai_request(&serde_json::to_vec(&body).unwrap(), "gpt")?;
        Ok(serde_json::from_slice(&out).unwrap())
    }

    fn refused(r: Result<Value, TranslateError>, field: &str, target: &str) {
        match r {
            Err(TranslateError::Unsupported {
                field: f,
                target: t,
            }) => {
                assert_eq!((f.as_str(), t), (field, target));
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

    fn an(extra: Value) -> Value {
        let mut b = json!({"model": "m", "max_tokens": 10, "messages": [{"role": "user", "content": "hi"}]});
        b.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        b
    }

    #[test]
    fn openai_fields_anthropic_cannot_honour_are_refused() {
        refused(to_anthropic(oa(json!({"seed": 7}))), "seed", ANTHROPIC);
        refused(
            to_anthropic(oa(json!({"logprobs": true}))),
            "logprobs",
            ANTHROPIC,
        );
        refused(
            to_anthropic(oa(json!({"frequency_penalty": 0.5}))),
            "frequency_penalty",
            ANTHROPIC,
        );
        refused(to_anthropic(oa(json!({"n": 2}))), "n", ANTHROPIC);
        refused(
            to_anthropic(oa(json!({"temperature": 1.5}))),
            "temperature>1",
            ANTHROPIC,
        );
        refused(
            to_anthropic(oa(json!({"response_format": {"type": "json_object"}}))),
            "response_format.type=json_object",
            ANTHROPIC,
        );
        refused(
            to_anthropic(oa(json!({"reasoning_effort": "minimal"}))),
            "reasoning_effort=minimal",
            ANTHROPIC,
        );
        refused(
            to_anthropic(oa(
                json!({"tools": [{"type": "custom", "custom": {"name": "x"}}]}),
            )),
            "tools[0].type=custom",
            ANTHROPIC,
        );
        refused(
            to_anthropic(
                json!({"model": "m", "messages": [{"role": "user", "content": "hi", "name": "bob"}]}),
            ),
            "messages[0].name",
            ANTHROPIC,
        );
        refused(
            to_anthropic(json!({"model": "m", "messages": [
                {"role": "user", "content": "hi"}, {"role": "system", "content": "late"}]})),
            "messages[1].role=system after the first user or assistant message",
            ANTHROPIC,
        );
        refused(
            to_anthropic(
                json!({"model": "m", "messages": [{"role": "user", "content": [
                {"type": "input_audio", "input_audio": {"data": "AA==", "format": "wav"}}]}]}),
            ),
            "messages[0].content[0].type=input_audio",
            ANTHROPIC,
        );
        refused(
            to_anthropic(
                json!({"model": "m", "messages": [{"role": "user", "content": [
                {"type": "image_url", "image_url": {"url": "https://x/y.png", "detail": "low"}}]}]}),
            ),
            "messages[0].content[0].image_url.detail=low",
            ANTHROPIC,
        );
        refused(
            to_anthropic(
                json!({"model": "m", "messages": [{"role": "user", "content": [
                {"type": "file", "file": {"file_id": "file-abc"}}]}]}),
            ),
            "messages[0].content[0].file.file_id",
            ANTHROPIC,
        );
    }

    #[test]
    fn null_fields_count_as_absent() {
        let out =
            to_anthropic(oa(json!({"seed": null, "logprobs": false, "store": false}))).unwrap();
        assert_eq!(out["max_tokens"], json!(DEFAULT_MAX_TOKENS));
    }

    #[test]
    fn anthropic_fields_openai_cannot_honour_are_refused() {
        refused(to_openai(an(json!({"top_k": 5}))), "top_k", OPENAI);
        refused(
            to_openai(an(json!({"container": "c1"}))),
            "container",
            OPENAI,
        );
        refused(
            to_openai(an(json!({"service_tier": "auto"}))),
            "service_tier",
            OPENAI,
        );
        refused(
            to_openai(an(
                json!({"tools": [{"type": "web_search_20250305", "name": "web_search"}]}),
            )),
            "tools[0].type=web_search_20250305",
            OPENAI,
        );
        refused(
            to_openai(an(json!({"thinking": {"type": "adaptive"}}))),
            "thinking.type=adaptive",
            OPENAI,
        );
        refused(
            to_openai(an(json!({"output_config": {"effort": "max"}}))),
            "output_config.effort=max",
            OPENAI,
        );
        refused(
            to_openai(
                json!({"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": [
                {"type": "document", "source": {"type": "url", "url": "https://x/a.pdf"}}]}]}),
            ),
            "messages[0].content[0].source.type=url",
            OPENAI,
        );
        refused(
            to_openai(
                json!({"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": [
                {"type": "text", "text": "x", "citations": [{"type": "char_location"}]}]}]}),
            ),
            "messages[0].content[0].citations",
            OPENAI,
        );
    }

    #[test]
    fn cache_control_and_thinking_history_are_dropped_towards_openai() {
        let out = to_openai(json!({"model": "m", "max_tokens": 5, "messages": [
            {"role": "user", "content": [{"type": "text", "text": "q", "cache_control": {"type": "ephemeral"}}]},
            {"role": "assistant", "content": [
                {"type": "thinking", "thinking": "hmm", "signature": "sig"},
                {"type": "text", "text": "a"}]}],
            "tools": [{"name": "t", "input_schema": {"type": "object"}, "cache_control": {"type": "ephemeral"}}]}))
        .unwrap();
        assert_eq!(
            out["messages"][0]["content"],
            json!([{"type": "text", "text": "q"}])
        );
        assert_eq!(
            out["messages"][1],
            json!({"role": "assistant", "content": "a"})
        );
        assert_eq!(
            out["tools"][0]["function"],
            json!({"name": "t", "parameters": {"type": "object"}})
        );
    }

    #[test]
    fn cache_control_survives_anthropic_round_trip_through_the_types() {
        let body = json!({"model": "m", "max_tokens": 5, "system": [
            {"type": "text", "text": "s", "cache_control": {"type": "ephemeral", "ttl": "1h"}}],
            "messages": [{"role": "user", "content": [{"type": "text", "text": "q", "cache_control": {"type": "ephemeral"}}]}],
            "service_tier": "auto"});
        let req: an::MessagesRequest = serde_json::from_value(body.clone()).unwrap();
        assert_eq!(serde_json::to_value(&req).unwrap(), body);
    }

    #[test]
    fn tool_choice_and_parallel_map_both_ways() {
        let out = to_anthropic(oa(
            json!({"tool_choice": {"type": "function", "function": {"name": "f"}},
            "parallel_tool_calls": false}),
        ))
        .unwrap();
        assert_eq!(
            out["tool_choice"],
            json!({"type": "tool", "name": "f", "disable_parallel_tool_use": true})
        );
        let out = to_anthropic(oa(
            json!({"tool_choice": "none", "parallel_tool_calls": false}),
        ))
        .unwrap();
        assert_eq!(out["tool_choice"], json!({"type": "none"}));
        let out = to_openai(an(json!({"tool_choice": {"type": "tool", "name": "f"}}))).unwrap();
        assert_eq!(
            out["tool_choice"],
            json!({"type": "function", "function": {"name": "f"}})
        );
        assert!(out.get("parallel_tool_calls").is_none());
    }

    #[test]
    fn reasoning_maps_to_effort_and_thinking_budget() {
        let out = to_anthropic(oa(json!({"reasoning_effort": "high"}))).unwrap();
        assert_eq!(out["output_config"], json!({"effort": "high"}));
        let out = to_openai(an(
            json!({"thinking": {"type": "enabled", "budget_tokens": 2048}}),
        ))
        .unwrap();
        assert_eq!(out["reasoning_effort"], json!("low"));
        let out = to_openai(an(
            json!({"thinking": {"type": "enabled", "budget_tokens": 10000}}),
        ))
        .unwrap();
        assert_eq!(out["reasoning_effort"], json!("medium"));
    }

    #[test]
    fn bad_json_is_invalid_not_unsupported() {
        assert!(matches!(
            openai_to_anthropic_request(b"{", "m"),
            Err(TranslateError::Invalid { .. })
        ));
        assert!(matches!(
            anthropic_to_openai_request(b"[]", "m"),
            Err(TranslateError::Invalid { .. })
        ));
    }
}
