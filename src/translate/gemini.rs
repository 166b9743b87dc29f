//! OpenAI Chat Completions ⇄ Google Gemini, the gateway's leg: a Chat request becomes a
//! `GenerateContentRequest` ([`chat_to_gemini_request`]), a `GenerateContentResponse` becomes a
//! `chat.completion` ([`gemini_to_chat_response`]) and a Google error body becomes OpenAI's
//! ([`gemini_error_to_openai`]). The stream translator is in `gemini_stream`.
//!
//! A field Gemini cannot honour is refused with `TranslateError::Unsupported`, never dropped,
//! with three documented exceptions that do not change the answer: `file.filename` (Gemini's
//! `inlineData` has no name), `response_format.json_schema.name` (a label) and the client's
//! `stream` flag (it picks the URL, not a body field).

use super::write::parse_data_url;
use serde_json::{json, Map, Value};

use super::error::{GEMINI, OPENAI};
use super::gemini_types as gm;
use super::openai_types as oa;
use super::request::reject_extra;
use super::TranslateError;
use crate::wire::{FinishReason, Usage};

/// The `thoughtSignature` Google documents for function calls the model did not produce in
/// this form (history from another model or rebuilt by a client): OpenAI clients cannot carry
/// Gemini's signatures, and Gemini 3 refuses a function call of the current turn without one.
const SKIP_THOUGHT_SIGNATURE: &str = "skip_thought_signature_validator";

/// Image types Gemini reads, by file extension, for http(s) image URLs (`fileData` needs the
/// media type and OpenAI's `image_url` does not carry one).
const IMAGE_EXTENSIONS: [(&str, &str); 7] = [
    ("png", "image/png"),
    ("jpg", "image/jpeg"),
    ("jpeg", "image/jpeg"),
    ("webp", "image/webp"),
    ("heic", "image/heic"),
    ("heif", "image/heif"),
    ("gif", "image/gif"),
];

/// Translates an OpenAI Chat Completions request into a Gemini `GenerateContentRequest`. The
/// model goes in the URL and `stream` picks the method (`:streamGenerateContent?alt=sse`), so
/// neither is written; `stream_options.include_usage` is read by the stream translator's
/// caller (see `openai_include_usage`).
pub fn chat_to_gemini_request(body: &[u8]) -> Result<Vec<u8>, TranslateError> {
    let mut req: oa::ChatRequest =
        serde_json::from_slice(body).map_err(|e| TranslateError::invalid("OpenAI request", e))?;
    let mut gen = gm::GenerationConfig::default();
    // Parameters Gemini has that the OpenAI types leave in `extra`.
    match req.extra.remove("seed") {
        None | Some(Value::Null) => {}
        Some(v) => {
            gen.seed = Some(v.as_i64().ok_or_else(|| {
                TranslateError::invalid("OpenAI request", "seed is not an integer")
            })?)
        }
    }
    gen.presence_penalty = take_number(&mut req.extra, "presence_penalty")?;
    gen.frequency_penalty = take_number(&mut req.extra, "frequency_penalty")?;
    reject_extra(&req.extra, "", GEMINI)?;
    if req.n.is_some_and(|n| n != 1) {
        return Err(TranslateError::unsupported("n", GEMINI));
    }
    if req.user.is_some() {
        return Err(TranslateError::unsupported("user", GEMINI));
    }
    if req.parallel_tool_calls == Some(false) {
        return Err(TranslateError::unsupported(
            "parallel_tool_calls=false",
            GEMINI,
        ));
    }
    if let Some(so) = &req.stream_options {
        reject_extra(&so.extra, "stream_options.", GEMINI)?;
    }
    gen.max_output_tokens = req.max_completion_tokens.or(req.max_tokens);
    gen.temperature = req.temperature;
    gen.top_p = req.top_p;
    gen.stop_sequences = match req.stop {
        Some(oa::StopSequences::One(s)) => Some(vec![s]),
        Some(oa::StopSequences::Many(v)) if !v.is_empty() => Some(v),
        _ => None,
    };
    if let Some(rf) = req.response_format {
        response_format(rf, &mut gen)?;
    }
    if let Some(effort) = req.reasoning_effort {
        gen.thinking_config = Some(gm::ThinkingConfig {
            thinking_budget: Some(thinking_budget(&effort)?),
            extra: Map::new(),
        });
    }
    let mut out = gm::GenerateContentRequest::default();
    let mut any_strict = false;
    if let Some(tools) = req.tools {
        let mut decls = Vec::with_capacity(tools.len());
        for (i, t) in tools.into_iter().enumerate() {
            let (decl, strict) = function_declaration(i, t)?;
            any_strict |= strict;
            decls.push(decl);
        }
        out.tools = Some(vec![gm::Tool {
            function_declarations: Some(decls),
            extra: Map::new(),
        }]);
    }
    out.tool_config = tool_config(req.tool_choice, any_strict)?;
    let (system, contents) = chat_messages(req.messages)?;
    out.system_instruction = system;
    out.contents = contents;
    if gen_is_set(&gen) {
        out.generation_config = Some(gen);
    }
    serde_json::to_vec(&out).map_err(|e| TranslateError::invalid("Gemini request", e))
}

fn gen_is_set(g: &gm::GenerationConfig) -> bool {
    g.max_output_tokens.is_some()
        || g.temperature.is_some()
        || g.top_p.is_some()
        || g.stop_sequences.is_some()
        || g.seed.is_some()
        || g.presence_penalty.is_some()
        || g.frequency_penalty.is_some()
        || g.response_mime_type.is_some()
        || g.thinking_config.is_some()
        || !g.extra.is_empty()
}

/// Removes a numeric field from `extra` (`null` counts as absent).
fn take_number(extra: &mut Map<String, Value>, key: &str) -> Result<Option<f64>, TranslateError> {
    match extra.remove(key) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => v.as_f64().map(Some).ok_or_else(|| {
            TranslateError::invalid("OpenAI request", format!("{key} is not a number"))
        }),
    }
}

/// `response_format`: `json_object` → `responseMimeType: application/json`; `json_schema` →
/// that plus `responseJsonSchema` (full JSON Schema; `responseSchema` is an OpenAPI subset
/// that would lose keywords). The format's `description` goes into the schema when the schema
/// has none; `name` is a label and is not sent; `strict` needs nothing (Gemini always
/// constrains output to `responseJsonSchema`).
fn response_format(
    rf: oa::ResponseFormat,
    gen: &mut gm::GenerationConfig,
) -> Result<(), TranslateError> {
    match rf.kind.as_str() {
        "text" => {}
        "json_object" => gen.response_mime_type = Some("application/json".into()),
        "json_schema" => {
            let js = rf.json_schema.ok_or_else(|| {
                TranslateError::invalid("OpenAI request", "response_format.json_schema missing")
            })?;
            let mut schema = js.schema.ok_or_else(|| {
                TranslateError::invalid(
                    "OpenAI request",
                    "response_format.json_schema.schema missing",
                )
            })?;
            if let Some(d) = js.description {
                match schema.as_object_mut() {
                    Some(o) if !o.contains_key("description") => {
                        o.insert("description".into(), Value::String(d));
                    }
                    _ => {
                        return Err(TranslateError::unsupported(
                            "response_format.json_schema.description (the schema has its own)",
                            GEMINI,
                        ))
                    }
                }
            }
            gen.response_mime_type = Some("application/json".into());
            gen.response_json_schema = Some(schema);
        }
        other => {
            return Err(TranslateError::unsupported(
                format!("response_format.type={other}"),
                GEMINI,
            ))
        }
    }
    Ok(())
}

/// `reasoning_effort` → `thinkingConfig.thinkingBudget`, with the budgets Google's own OpenAI
/// compatibility layer uses (`none` 0, `minimal`/`low` 1024, `medium` 8192, `high` 24576).
/// A budget rather than `thinkingLevel`: Gemini 2.5 knows only budgets, Gemini 3 still
/// accepts them, and the target model is not known here.
fn thinking_budget(effort: &str) -> Result<i64, TranslateError> {
    match effort {
        "none" => Ok(0),
        "minimal" | "low" => Ok(1024),
        "medium" => Ok(8192),
        "high" => Ok(24576),
        other => Err(TranslateError::unsupported(
            format!("reasoning_effort={other}"),
            GEMINI,
        )),
    }
}

/// One OpenAI function tool → a declaration (and whether it asked for `strict`).
fn function_declaration(
    i: usize,
    tool: oa::Tool,
) -> Result<(gm::FunctionDeclaration, bool), TranslateError> {
    if tool.kind != "function" {
        return Err(TranslateError::unsupported(
            format!("tools[{i}].type={}", tool.kind),
            GEMINI,
        ));
    }
    reject_extra(&tool.extra, &format!("tools[{i}]."), GEMINI)?;
    let f = tool.function.ok_or_else(|| {
        TranslateError::invalid("OpenAI request", format!("tools[{i}].function missing"))
    })?;
    reject_extra(&f.extra, &format!("tools[{i}].function."), GEMINI)?;
    Ok((
        gm::FunctionDeclaration {
            name: f.name,
            description: f.description,
            parameters_json_schema: f.parameters,
            extra: Map::new(),
        },
        f.strict == Some(true),
    ))
}

/// `tool_choice` → `functionCallingConfig`: `auto` AUTO, `none` NONE, `required` ANY, a named
/// function ANY with `allowedFunctionNames`. With a `strict` tool, `auto` (or no choice) becomes
/// VALIDATED, Gemini's mode that constrains calls to the schema (ANY already does).
fn tool_config(
    choice: Option<oa::ToolChoice>,
    any_strict: bool,
) -> Result<Option<gm::ToolConfig>, TranslateError> {
    let auto = if any_strict { "VALIDATED" } else { "AUTO" };
    let (mode, names) = match choice {
        None if any_strict => (auto, None),
        None => return Ok(None),
        Some(oa::ToolChoice::Mode(m)) => match m.as_str() {
            "auto" => (auto, None),
            "none" => ("NONE", None),
            "required" => ("ANY", None),
            _ => {
                return Err(TranslateError::unsupported(
                    format!("tool_choice={m}"),
                    GEMINI,
                ))
            }
        },
        Some(oa::ToolChoice::Named(n)) => {
            if n.kind != "function" {
                return Err(TranslateError::unsupported(
                    format!("tool_choice.type={}", n.kind),
                    GEMINI,
                ));
            }
            ("ANY", Some(vec![n.function.name]))
        }
    };
    Ok(Some(gm::ToolConfig {
        function_calling_config: Some(gm::FunctionCallingConfig {
            mode: mode.into(),
            allowed_function_names: names,
        }),
    }))
}

/// Splits OpenAI messages into Gemini's `systemInstruction` and `contents`. Leading
/// `system`/`developer` messages become the system instruction; `assistant` turns are `model`
/// turns; `tool` messages become `functionResponse` parts of a `user` turn, named after the
/// assistant tool call they answer; neighbours of one role are merged.
fn chat_messages(
    msgs: Vec<oa::ChatMessage>,
) -> Result<(Option<gm::Content>, Vec<gm::Content>), TranslateError> {
    let mut system: Vec<gm::Part> = Vec::new();
    let mut contents: Vec<gm::Content> = Vec::new();
    // Tool call id → function name, from the assistant turns seen so far.
    let mut call_names: Vec<(String, String)> = Vec::new();
    for (i, m) in msgs.into_iter().enumerate() {
        let at = format!("messages[{i}]");
        reject_extra(&m.extra, &format!("{at}."), GEMINI)?;
        if m.name.is_some() {
            return Err(TranslateError::unsupported(format!("{at}.name"), GEMINI));
        }
        match m.role.as_str() {
            "system" | "developer" => {
                if !contents.is_empty() {
                    return Err(TranslateError::unsupported(
                        format!(
                            "{at}.role={} after the first user or assistant message",
                            m.role
                        ),
                        GEMINI,
                    ));
                }
                system.extend(
                    text_only(m.content, &at)?
                        .into_iter()
                        .filter(|t| !t.is_empty())
                        .map(gm::Part::text),
                );
            }
            "user" => {
                let parts = match m.content {
                    None => Vec::new(),
                    Some(oa::MessageContent::Text(s)) => text_part(s),
                    Some(oa::MessageContent::Parts(parts)) => {
                        let mut out = Vec::with_capacity(parts.len());
                        for (j, p) in parts.into_iter().enumerate() {
                            if let Some(part) = user_part(p, &format!("{at}.content[{j}]"))? {
                                out.push(part);
                            }
                        }
                        out
                    }
                };
                push_turn(&mut contents, "user", parts);
            }
            "assistant" => {
                let parts = assistant_parts(m, &at, &mut call_names)?;
                push_turn(&mut contents, "model", parts);
            }
            "tool" => {
                let id = m.tool_call_id.ok_or_else(|| {
                    TranslateError::invalid("OpenAI request", format!("{at}.tool_call_id missing"))
                })?;
                let name = call_names
                    .iter()
                    .rev()
                    .find(|(cid, _)| *cid == id)
                    .map(|(_, n)| n.clone())
                    .ok_or_else(|| {
                        TranslateError::invalid(
                            "OpenAI request",
                            format!(
                                "{at}.tool_call_id {id:?} answers no earlier assistant tool call"
                            ),
                        )
                    })?;
                let text = text_only(m.content, &at)?.join("\n");
                let response = match serde_json::from_str::<Value>(&text) {
                    Ok(v @ Value::Object(_)) => v,
                    _ => json!({ "result": text }),
                };
                let part = gm::Part {
                    function_response: Some(gm::FunctionResponse {
                        id: Some(id),
                        name,
                        response,
                    }),
                    ..gm::Part::default()
                };
                push_turn(&mut contents, "user", vec![part]);
            }
            other => {
                return Err(TranslateError::unsupported(
                    format!("{at}.role={other}"),
                    GEMINI,
                ))
            }
        }
    }
    let system = (!system.is_empty()).then_some(gm::Content {
        role: None,
        parts: system,
    });
    Ok((system, contents))
}

/// A text part, or none for empty text (Gemini refuses empty text parts).
fn text_part(s: String) -> Vec<gm::Part> {
    if s.is_empty() {
        Vec::new()
    } else {
        vec![gm::Part::text(s)]
    }
}

/// Appends parts as a turn of `role`, merged into the previous turn when it has that role;
/// a turn without parts is not sent (Gemini refuses empty turns).
fn push_turn(contents: &mut Vec<gm::Content>, role: &str, parts: Vec<gm::Part>) {
    if parts.is_empty() {
        return;
    }
    if let Some(last) = contents.last_mut() {
        if last.role.as_deref() == Some(role) {
            last.parts.extend(parts);
            return;
        }
    }
    contents.push(gm::Content {
        role: Some(role.into()),
        parts,
    });
}

/// The texts of content that may only hold text (system prompts, tool results).
fn text_only(content: Option<oa::MessageContent>, at: &str) -> Result<Vec<String>, TranslateError> {
    match content {
        None => Ok(Vec::new()),
        Some(oa::MessageContent::Text(s)) => Ok(vec![s]),
        Some(oa::MessageContent::Parts(parts)) => {
            let mut texts = Vec::with_capacity(parts.len());
            for (j, p) in parts.into_iter().enumerate() {
                reject_extra(&p.extra, &format!("{at}.content[{j}]."), GEMINI)?;
                match (p.kind.as_str(), p.text) {
                    ("text", Some(t)) => texts.push(t),
                    (kind, _) => {
                        return Err(TranslateError::unsupported(
                            format!("{at}.content[{j}].type={kind}"),
                            GEMINI,
                        ))
                    }
                }
            }
            Ok(texts)
        }
    }
}

/// A user content part: text, an image (`data:` URL → `inlineData`, http(s) URL →
/// `fileData`), a base64 file (→ `inlineData`) or audio (→ `inlineData`).
fn user_part(mut p: oa::ContentPart, at: &str) -> Result<Option<gm::Part>, TranslateError> {
    let audio = if p.kind == "input_audio" {
        p.extra.remove("input_audio")
    } else {
        None
    };
    reject_extra(&p.extra, &format!("{at}."), GEMINI)?;
    match p.kind.as_str() {
        "text" => Ok(p.text.filter(|t| !t.is_empty()).map(gm::Part::text)),
        "image_url" => {
            let img = p.image_url.ok_or_else(|| {
                TranslateError::invalid("OpenAI request", format!("{at}.image_url missing"))
            })?;
            reject_extra(&img.extra, &format!("{at}.image_url."), GEMINI)?;
            if let Some(d) = img.detail.filter(|d| d != "auto") {
                return Err(TranslateError::unsupported(
                    format!("{at}.image_url.detail={d}"),
                    GEMINI,
                ));
            }
            if let Some((mime, data)) = parse_data_url(&img.url) {
                return Ok(Some(inline(mime, data)));
            }
            if img.url.starts_with("data:") {
                return Err(TranslateError::unsupported(
                    format!("{at}.image_url.url (non-base64 data URL)"),
                    GEMINI,
                ));
            }
            let mime = image_type_of_url(&img.url).ok_or_else(|| {
                TranslateError::unsupported(
                    format!(
                        "{at}.image_url.url (an http(s) URL whose path does not end in a known image extension)"
                    ),
                    GEMINI,
                )
            })?;
            Ok(Some(gm::Part {
                file_data: Some(gm::FileData {
                    mime_type: mime.into(),
                    file_uri: img.url,
                }),
                ..gm::Part::default()
            }))
        }
        "file" => {
            let f = p.file.ok_or_else(|| {
                TranslateError::invalid("OpenAI request", format!("{at}.file missing"))
            })?;
            reject_extra(&f.extra, &format!("{at}.file."), GEMINI)?;
            if f.file_id.is_some() {
                return Err(TranslateError::unsupported(
                    format!("{at}.file.file_id"),
                    GEMINI,
                ));
            }
            let data = f.file_data.unwrap_or_default();
            let (mime, data) = parse_data_url(&data).ok_or_else(|| {
                TranslateError::unsupported(
                    format!("{at}.file.file_data (not a base64 data URL)"),
                    GEMINI,
                )
            })?;
            Ok(Some(inline(mime, data)))
        }
        "input_audio" => {
            #[derive(serde::Deserialize)]
            struct InputAudio {
                data: String,
                format: String,
            }
            let a: InputAudio = audio
                .map(serde_json::from_value)
                .transpose()
                .map_err(|e| TranslateError::invalid("OpenAI request", format!("{at}: {e}")))?
                .ok_or_else(|| {
                    TranslateError::invalid("OpenAI request", format!("{at}.input_audio missing"))
                })?;
            let mime = match a.format.as_str() {
                "wav" => "audio/wav",
                "mp3" => "audio/mp3",
                other => {
                    return Err(TranslateError::unsupported(
                        format!("{at}.input_audio.format={other}"),
                        GEMINI,
                    ))
                }
            };
            Ok(Some(inline(mime, &a.data)))
        }
        other => Err(TranslateError::unsupported(
            format!("{at}.type={other}"),
            GEMINI,
        )),
    }
}

fn inline(mime: &str, data: &str) -> gm::Part {
    gm::Part {
        inline_data: Some(gm::Blob {
            mime_type: mime.to_owned(),
            data: data.to_owned(),
        }),
        ..gm::Part::default()
    }
}

/// The image media type of an http(s) URL, from the extension of its path.
fn image_type_of_url(url: &str) -> Option<&'static str> {
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))?;
    let path = rest.split(['?', '#']).next().unwrap_or_default();
    let (_, file) = path.rsplit_once('/')?;
    let (_, ext) = file.rsplit_once('.')?;
    IMAGE_EXTENSIONS
        .iter()
        .find(|(e, _)| e.eq_ignore_ascii_case(ext))
        .map(|(_, m)| *m)
}

/// An assistant message → `model` parts: text (and refusal text), then one `functionCall`
/// per tool call; the first call carries the skip-validation thought signature.
fn assistant_parts(
    m: oa::ChatMessage,
    at: &str,
    call_names: &mut Vec<(String, String)>,
) -> Result<Vec<gm::Part>, TranslateError> {
    let mut parts = Vec::new();
    match m.content {
        None => {}
        Some(oa::MessageContent::Text(s)) => parts.extend(text_part(s)),
        Some(oa::MessageContent::Parts(ps)) => {
            for (j, p) in ps.into_iter().enumerate() {
                reject_extra(&p.extra, &format!("{at}.content[{j}]."), GEMINI)?;
                let text = match p.kind.as_str() {
                    "text" => p.text,
                    "refusal" => p.refusal,
                    other => {
                        return Err(TranslateError::unsupported(
                            format!("{at}.content[{j}].type={other}"),
                            GEMINI,
                        ))
                    }
                };
                parts.extend(text_part(text.unwrap_or_default()));
            }
        }
    }
    if let Some(r) = m.refusal {
        parts.extend(text_part(r));
    }
    for (k, call) in m.tool_calls.unwrap_or_default().into_iter().enumerate() {
        if call.kind != "function" {
            return Err(TranslateError::unsupported(
                format!("{at}.tool_calls[{k}].type={}", call.kind),
                GEMINI,
            ));
        }
        let args: Value = if call.function.arguments.trim().is_empty() {
            json!({})
        } else {
            serde_json::from_str(&call.function.arguments).map_err(|e| {
                TranslateError::invalid(
                    "OpenAI request",
                    format!("{at}.tool_calls[{k}].function.arguments: {e}"),
                )
            })?
        };
        call_names.push((call.id.clone(), call.function.name.clone()));
        parts.push(gm::Part {
            function_call: Some(gm::FunctionCall {
                id: Some(call.id).filter(|id| !id.is_empty()),
                name: call.function.name,
                args: Some(args),
            }),
            thought_signature: (k == 0).then(|| SKIP_THOUGHT_SIGNATURE.to_owned()),
            ..gm::Part::default()
        });
    }
    Ok(parts)
}

/// Translates a Gemini `GenerateContentResponse` (its first candidate) into an OpenAI
/// `chat.completion` for a client that asked for `client_model`. Text parts are joined into
/// `content`, thought parts into `reasoning_content` (the field OpenAI-compatible servers use),
/// `functionCall` parts become `tool_calls` (Gemini's id, or a generated `call_…`). A prompt
/// blocked by `promptFeedback` gives an empty answer with `finish_reason: content_filter`.
/// Usage carries `completion_tokens_details.reasoning_tokens` (Gemini's thinking tokens,
/// counted in `completion_tokens`).
pub fn gemini_to_chat_response(body: &[u8], client_model: &str) -> Result<Vec<u8>, TranslateError> {
    let resp: gm::GenerateContentResponse<'_> =
        serde_json::from_slice(body).map_err(|e| TranslateError::invalid("Gemini response", e))?;
    if let Some(e) = resp.error {
        return Err(TranslateError::invalid(
            "Gemini response",
            format!("error {} {}: {}", e.code, e.status, e.message),
        ));
    }
    let mut text: Option<String> = None;
    let mut reasoning: Option<String> = None;
    let mut calls = Vec::new();
    let mut stop = None;
    if let Some(c) = resp.candidates.into_iter().next() {
        for part in c.content.map(|c| c.parts).unwrap_or_default() {
            match read_part(part)? {
                ReadPart::Text(t) => text.get_or_insert_with(String::new).push_str(&t),
                ReadPart::Thought(t) => reasoning.get_or_insert_with(String::new).push_str(&t),
                ReadPart::Call(call) => calls.push(oa::ToolCall {
                    id: call.id,
                    kind: "function".into(),
                    function: oa::FunctionCall {
                        name: call.name,
                        arguments: call.arguments,
                    },
                }),
                ReadPart::Nothing => {}
            }
        }
        stop = c.finish_reason.as_deref().map(FinishReason::from_gemini);
    } else if resp
        .prompt_feedback
        .as_ref()
        .is_some_and(|f| f.block_reason.is_some())
    {
        stop = Some(FinishReason::Refusal);
    }
    let mut stop = stop.unwrap_or(FinishReason::EndTurn);
    if stop == FinishReason::EndTurn && !calls.is_empty() {
        stop = FinishReason::ToolUse;
    }
    let usage = resp.usage_metadata.unwrap_or_default();
    let out = oa::ChatCompletion {
        id: chat_id(resp.response_id.as_deref()),
        object: "chat.completion".into(),
        created: super::response::unix_now(),
        model: client_model.to_owned(),
        choices: vec![oa::Choice {
            index: 0,
            message: oa::ResponseMessage {
                role: "assistant".into(),
                content: match text {
                    None if !calls.is_empty() => None,
                    t => Some(t.unwrap_or_default()),
                },
                refusal: None,
                tool_calls: (!calls.is_empty()).then_some(calls),
                reasoning_content: reasoning,
            },
            logprobs: None,
            finish_reason: Some(stop.openai().into()),
        }],
        usage: None,
    };
    let mut v =
        serde_json::to_value(&out).map_err(|e| TranslateError::invalid("OpenAI response", e))?;
    if let Some(o) = v.as_object_mut() {
        o.insert("usage".into(), chat_usage(&usage));
    }
    serde_json::to_vec(&v).map_err(|e| TranslateError::invalid("OpenAI response", e))
}

/// `chatcmpl-<responseId>`, or a random id when Gemini sent none.
pub(crate) fn chat_id(response_id: Option<&str>) -> String {
    match response_id.filter(|s| !s.is_empty()) {
        Some(id) => format!("chatcmpl-{id}"),
        None => random_id("chatcmpl-"),
    }
}

/// `prefix` and 24 random alphanumerics.
pub(crate) fn random_id(prefix: &str) -> String {
    let mut id = String::with_capacity(prefix.len() + 24);
    id.push_str(prefix);
    id.extend(std::iter::repeat_with(fastrand::alphanumeric).take(24));
    id
}

/// OpenAI `usage` from Gemini's counts, with `completion_tokens_details.reasoning_tokens`.
pub(crate) fn chat_usage(u: &gm::UsageMetadata) -> Value {
    let t = Usage::from_gemini(u);
    let prompt = t.prompt_tokens();
    json!({
        "prompt_tokens": prompt,
        "completion_tokens": t.output_tokens,
        "total_tokens": prompt + t.output_tokens,
        "prompt_tokens_details": {"cached_tokens": t.cache_read_tokens},
        "completion_tokens_details": {"reasoning_tokens": u.thoughts_token_count},
    })
}

/// A function call of an answer, ready for OpenAI.
pub(crate) struct ReadCall {
    pub(crate) id: String,
    pub(crate) name: String,
    /// The arguments object as a JSON string.
    pub(crate) arguments: String,
}

/// What one answer part is for an OpenAI client.
pub(crate) enum ReadPart<'a> {
    Text(std::borrow::Cow<'a, str>),
    Thought(std::borrow::Cow<'a, str>),
    Call(ReadCall),
    /// An empty part (Gemini sends some carrying only a `thoughtSignature`).
    Nothing,
}

/// Classifies an answer part; media, file and code-execution parts are refused.
pub(crate) fn read_part(p: gm::ResponsePart<'_>) -> Result<ReadPart<'_>, TranslateError> {
    let refused = [
        (p.inline_data.is_some(), "inlineData"),
        (p.file_data.is_some(), "fileData"),
        (p.executable_code.is_some(), "executableCode"),
        (p.code_execution_result.is_some(), "codeExecutionResult"),
    ];
    if let Some((_, kind)) = refused.iter().find(|(present, _)| *present) {
        return Err(TranslateError::unsupported(
            format!("candidates[].content.parts[].{kind}"),
            OPENAI,
        ));
    }
    if let Some(f) = p.function_call {
        let arguments = match &f.args {
            None => "{}".to_owned(),
            Some(a) => serde_json::to_string(a)
                .map_err(|e| TranslateError::invalid("Gemini response", e))?,
        };
        return Ok(ReadPart::Call(ReadCall {
            id: match f.id.as_deref().filter(|s| !s.is_empty()) {
                Some(id) => id.to_owned(),
                None => random_id("call_"),
            },
            name: f.name.into_owned(),
            arguments,
        }));
    }
    Ok(match p.text.filter(|t| !t.is_empty()) {
        None => ReadPart::Nothing,
        Some(t) if p.thought == Some(true) => ReadPart::Thought(t),
        Some(t) => ReadPart::Text(t),
    })
}

/// Maps a Google error (status and body) into OpenAI's error shape, keeping the status and
/// the message. The type follows the status: 400 `invalid_request_error`, 401
/// `authentication_error`, 403 `permission_error`, 404 `not_found_error`, 429
/// `rate_limit_error`, 5xx `server_error`; `code` is Google's canonical status in lower case
/// (`resource_exhausted`). A body that is not Google's shape is kept as the message.
pub fn gemini_error_to_openai(status: u16, body: &[u8]) -> (u16, Vec<u8>) {
    let (message, google_status) = match parse_error(body) {
        Some(e) => (e.message, e.status),
        None => (raw_message(body), String::new()),
    };
    let kind = match status {
        401 => "authentication_error",
        403 => "permission_error",
        404 => "not_found_error",
        429 => "rate_limit_error",
        s if s >= 500 => "server_error",
        _ => "invalid_request_error",
    };
    let code = (!google_status.is_empty()).then(|| google_status.to_ascii_lowercase());
    (
        status,
        super::response::openai_error_body(kind, &message, code.as_deref()),
    )
}

/// Google's error envelope, alone or (non-SSE streams) as the first element of an array.
fn parse_error(body: &[u8]) -> Option<gm::ErrorBody> {
    if body.trim_ascii_start().starts_with(b"[") {
        serde_json::from_slice::<Vec<gm::ErrorEnvelope>>(body)
            .ok()?
            .into_iter()
            .next()
            .map(|e| e.error)
    } else {
        serde_json::from_slice::<gm::ErrorEnvelope>(body)
            .ok()
            .map(|e| e.error)
    }
}

/// A body that is not Google's error JSON, as a message (at most 1 KiB).
fn raw_message(body: &[u8]) -> String {
    let s = String::from_utf8_lossy(body.get(..1024).unwrap_or(body))
        .trim()
        .to_owned();
    if s.is_empty() {
        "upstream error".to_owned()
    } else {
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn to_gemini(body: Value) -> Result<Value, TranslateError> {
        let out = chat_to_gemini_request(&serde_json::to_vec(&body).unwrap())?;
        Ok(serde_json::from_slice(&out).unwrap())
    }

    fn refused(r: Result<Value, TranslateError>, field: &str) {
        match r {
            Err(TranslateError::Unsupported { field: f, target }) => {
                assert_eq!((f.as_str(), target), (field, GEMINI));
            }
            other => panic!("expected refusal of {field}, got {other:?}"),
        }
    }

    fn chat(extra: Value) -> Value {
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
    fn text_request_maps_sampling_and_drops_model_and_stream() {
        let out = to_gemini(chat(
            json!({"stream": true, "temperature": 0.3, "top_p": 0.9,
            "max_tokens": 50, "stop": "END", "seed": 7, "presence_penalty": 0.5,
            "frequency_penalty": -0.5, "n": 1,
            "stream_options": {"include_usage": true}}),
        ))
        .unwrap();
        assert_eq!(
            out,
            json!({"contents": [{"role": "user", "parts": [{"text": "hi"}]}],
                "generationConfig": {"maxOutputTokens": 50, "temperature": 0.3, "topP": 0.9,
                    "stopSequences": ["END"], "seed": 7, "presencePenalty": 0.5,
                    "frequencyPenalty": -0.5}})
        );
        let out = to_gemini(chat(json!({"max_tokens": 50, "max_completion_tokens": 80}))).unwrap();
        assert_eq!(out["generationConfig"], json!({"maxOutputTokens": 80}));
        assert!(to_gemini(chat(json!({})))
            .unwrap()
            .get("generationConfig")
            .is_none());
    }

    #[test]
    fn system_and_multi_turn_map_to_system_instruction_and_roles() {
        let out = to_gemini(json!({"model": "m", "messages": [
            {"role": "system", "content": "be brief"},
            {"role": "developer", "content": [{"type": "text", "text": "use French"}]},
            {"role": "user", "content": "hi"},
            {"role": "user", "content": [{"type": "text", "text": "again"}]},
            {"role": "assistant", "content": "salut"},
            {"role": "user", "content": "bye"}]}))
        .unwrap();
        assert_eq!(
            out["systemInstruction"],
            json!({"parts": [{"text": "be brief"}, {"text": "use French"}]})
        );
        assert_eq!(
            out["contents"],
            json!([
                {"role": "user", "parts": [{"text": "hi"}, {"text": "again"}]},
                {"role": "model", "parts": [{"text": "salut"}]},
                {"role": "user", "parts": [{"text": "bye"}]}])
        );
    }

    #[test]
    fn images_files_and_audio_become_inline_or_file_data() {
        let out = to_gemini(json!({"model": "m", "messages": [{"role": "user", "content": [
            {"type": "text", "text": "what is this?"},
            {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo=", "detail": "auto"}},
            {"type": "image_url", "image_url": {"url": "https://example.com/cat.JPG?size=2"}},
            {"type": "file", "file": {"file_data": "data:application/pdf;base64,JVBERi0=", "filename": "a.pdf"}},
            {"type": "input_audio", "input_audio": {"data": "UklGRg==", "format": "wav"}}]}]}))
        .unwrap();
        assert_eq!(
            out["contents"][0]["parts"],
            json!([
                {"text": "what is this?"},
                {"inlineData": {"mimeType": "image/png", "data": "iVBORw0KGgo="}},
                {"fileData": {"mimeType": "image/jpeg", "fileUri": "https://example.com/cat.JPG?size=2"}},
                {"inlineData": {"mimeType": "application/pdf", "data": "JVBERi0="}},
                {"inlineData": {"mimeType": "audio/wav", "data": "UklGRg=="}}])
        );
    }

    #[test]
    fn parallel_tool_calls_and_results_round_trip_with_name_lookup() {
        let out = to_gemini(json!({"model": "m",
            "tools": [{"type": "function", "function": {"name": "get_weather", "description": "Weather",
                "parameters": {"type": "object", "properties": {"city": {"type": "string"}},
                    "required": ["city"], "additionalProperties": false}}},
                {"type": "function", "function": {"name": "get_time", "parameters": {"type": "object"}}}],
            "tool_choice": "required",
            "messages": [
                {"role": "user", "content": "weather and time in Paris?"},
                {"role": "assistant", "content": null, "tool_calls": [
                    {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}},
                    {"id": "call_2", "type": "function", "function": {"name": "get_time", "arguments": "{}"}}]},
                {"role": "tool", "tool_call_id": "call_1", "content": "{\"temp\":18}"},
                {"role": "tool", "tool_call_id": "call_2", "content": [{"type": "text", "text": "14:00"}]}]}))
        .unwrap();
        assert_eq!(
            out["tools"],
            json!([{"functionDeclarations": [
                {"name": "get_weather", "description": "Weather", "parametersJsonSchema":
                    {"type": "object", "properties": {"city": {"type": "string"}},
                     "required": ["city"], "additionalProperties": false}},
                {"name": "get_time", "parametersJsonSchema": {"type": "object"}}]}])
        );
        assert_eq!(
            out["toolConfig"],
            json!({"functionCallingConfig": {"mode": "ANY"}})
        );
        assert_eq!(
            out["contents"][1],
            json!({"role": "model", "parts": [
                {"functionCall": {"id": "call_1", "name": "get_weather", "args": {"city": "Paris"}},
                 "thoughtSignature": SKIP_THOUGHT_SIGNATURE},
                {"functionCall": {"id": "call_2", "name": "get_time", "args": {}}}]})
        );
        assert_eq!(
            out["contents"][2],
            json!({"role": "user", "parts": [
                {"functionResponse": {"id": "call_1", "name": "get_weather", "response": {"temp": 18}}},
                {"functionResponse": {"id": "call_2", "name": "get_time", "response": {"result": "14:00"}}}]})
        );
        assert_eq!(out["contents"].as_array().unwrap().len(), 3);
        let orphan = to_gemini(json!({"model": "m", "messages": [
            {"role": "user", "content": "x"},
            {"role": "tool", "tool_call_id": "call_9", "content": "r"}]}));
        assert!(matches!(orphan, Err(TranslateError::Invalid { .. })));
    }

    #[test]
    fn tool_choice_modes_and_strict_tools() {
        let tool = json!([{"type": "function", "function": {"name": "f", "strict": true,
            "parameters": {"type": "object"}}}]);
        for (choice, want) in [
            (json!("auto"), json!({"mode": "VALIDATED"})),
            (json!("none"), json!({"mode": "NONE"})),
            (json!("required"), json!({"mode": "ANY"})),
            (
                json!({"type": "function", "function": {"name": "f"}}),
                json!({"mode": "ANY", "allowedFunctionNames": ["f"]}),
            ),
        ] {
            let out = to_gemini(chat(json!({"tools": tool, "tool_choice": choice}))).unwrap();
            assert_eq!(out["toolConfig"]["functionCallingConfig"], want);
        }
        let out = to_gemini(chat(json!({"tools": tool}))).unwrap();
        assert_eq!(
            out["toolConfig"]["functionCallingConfig"]["mode"],
            "VALIDATED"
        );
        let loose = json!([{"type": "function", "function": {"name": "f"}}]);
        let out = to_gemini(chat(json!({"tools": loose, "tool_choice": "auto"}))).unwrap();
        assert_eq!(out["toolConfig"]["functionCallingConfig"]["mode"], "AUTO");
        assert!(to_gemini(chat(json!({"tools": loose})))
            .unwrap()
            .get("toolConfig")
            .is_none());
    }

    #[test]
    fn json_modes_and_reasoning_effort() {
        let out = to_gemini(chat(
            json!({"response_format": {"type": "json_schema", "json_schema": {
                "name": "answer", "description": "The answer", "strict": true,
                "schema": {"type": "object", "properties": {"a": {"anyOf": [{"type": "string"}, {"type": "null"}]}}}}},
                "reasoning_effort": "medium"}),
        ))
        .unwrap();
        assert_eq!(
            out["generationConfig"],
            json!({"responseMimeType": "application/json", "responseJsonSchema":
                {"type": "object", "description": "The answer",
                 "properties": {"a": {"anyOf": [{"type": "string"}, {"type": "null"}]}}},
                "thinkingConfig": {"thinkingBudget": 8192}})
        );
        let out = to_gemini(chat(json!({"response_format": {"type": "json_object"},
            "reasoning_effort": "none"})))
        .unwrap();
        assert_eq!(
            out["generationConfig"],
            json!({"responseMimeType": "application/json", "thinkingConfig": {"thinkingBudget": 0}})
        );
        let out = to_gemini(chat(json!({"response_format": {"type": "text"}}))).unwrap();
        assert!(out.get("generationConfig").is_none());
    }

    #[test]
    fn fields_gemini_cannot_honour_are_refused() {
        refused(to_gemini(chat(json!({"n": 2}))), "n");
        refused(to_gemini(chat(json!({"user": "u1"}))), "user");
        refused(to_gemini(chat(json!({"logprobs": true}))), "logprobs");
        refused(to_gemini(chat(json!({"top_logprobs": 2}))), "top_logprobs");
        refused(
            to_gemini(chat(json!({"logit_bias": {"1": 2}}))),
            "logit_bias",
        );
        refused(
            to_gemini(chat(json!({"parallel_tool_calls": false}))),
            "parallel_tool_calls=false",
        );
        refused(
            to_gemini(chat(json!({"reasoning_effort": "xhigh"}))),
            "reasoning_effort=xhigh",
        );
        refused(
            to_gemini(chat(
                json!({"stream_options": {"include_obfuscation": true}}),
            )),
            "stream_options.include_obfuscation",
        );
        refused(
            to_gemini(chat(
                json!({"tools": [{"type": "custom", "custom": {"name": "x"}}]}),
            )),
            "tools[0].type=custom",
        );
        refused(
            to_gemini(
                json!({"model": "m", "messages": [{"role": "user", "content": "hi", "name": "bob"}]}),
            ),
            "messages[0].name",
        );
        refused(
            to_gemini(json!({"model": "m", "messages": [
                {"role": "user", "content": "hi"}, {"role": "system", "content": "late"}]})),
            "messages[1].role=system after the first user or assistant message",
        );
        refused(
            to_gemini(
                json!({"model": "m", "messages": [{"role": "user", "content": [
                {"type": "image_url", "image_url": {"url": "https://x/y.png", "detail": "low"}}]}]}),
            ),
            "messages[0].content[0].image_url.detail=low",
        );
        refused(
            to_gemini(json!({"model": "m", "messages": [{"role": "user", "content": [
                {"type": "image_url", "image_url": {"url": "https://x/render?id=3"}}]}]})),
            "messages[0].content[0].image_url.url (an http(s) URL whose path does not end in a known image extension)",
        );
        refused(
            to_gemini(
                json!({"model": "m", "messages": [{"role": "user", "content": [
                {"type": "file", "file": {"file_id": "file-abc"}}]}]}),
            ),
            "messages[0].content[0].file.file_id",
        );
        refused(
            to_gemini(
                json!({"model": "m", "messages": [{"role": "user", "content": [
                {"type": "input_audio", "input_audio": {"data": "AA==", "format": "flac"}}]}]}),
            ),
            "messages[0].content[0].input_audio.format=flac",
        );
        // null and false count as absent.
        assert!(to_gemini(chat(
            json!({"logprobs": false, "seed": null, "store": false})
        ))
        .is_ok());
        assert!(matches!(
            chat_to_gemini_request(b"{"),
            Err(TranslateError::Invalid { .. })
        ));
    }

    #[test]
    fn response_text_thoughts_and_usage() {
        let body = br#"{"candidates":[{"content":{"role":"model","parts":[
            {"text":"Let me think","thought":true},{"text":"Hello"},{"text":" world","thoughtSignature":"c2ln"}]},
            "finishReason":"STOP","index":0,"safetyRatings":[]}],
            "usageMetadata":{"promptTokenCount":10,"candidatesTokenCount":2,"thoughtsTokenCount":5,
            "cachedContentTokenCount":4,"totalTokenCount":17},"modelVersion":"gemini-2.5-flash","responseId":"abc"}"#;
        let out = v(&gemini_to_chat_response(body, "alias").unwrap());
        assert_eq!(out["id"], "chatcmpl-abc");
        assert_eq!(out["object"], "chat.completion");
        assert_eq!(out["model"], "alias");
        assert_eq!(
            out["choices"][0]["message"],
            json!({"role": "assistant", "content": "Hello world", "refusal": null,
                "reasoning_content": "Let me think"})
        );
        assert_eq!(out["choices"][0]["finish_reason"], "stop");
        assert_eq!(
            out["usage"],
            json!({"prompt_tokens": 10, "completion_tokens": 7, "total_tokens": 17,
                "prompt_tokens_details": {"cached_tokens": 4},
                "completion_tokens_details": {"reasoning_tokens": 5}})
        );
    }

    #[test]
    fn response_function_calls_become_tool_calls() {
        let body = br#"{"candidates":[{"content":{"role":"model","parts":[
            {"functionCall":{"name":"get_weather","args":{"city":"Paris"}},"thoughtSignature":"c2ln"},
            {"functionCall":{"id":"fc_2","name":"get_time","args":{}}}]},"finishReason":"STOP"}],
            "usageMetadata":{"promptTokenCount":3,"candidatesTokenCount":4}}"#;
        let out = v(&gemini_to_chat_response(body, "alias").unwrap());
        let msg = &out["choices"][0]["message"];
        assert_eq!(msg["content"], Value::Null);
        let calls = msg["tool_calls"].as_array().unwrap();
        assert_eq!(calls.len(), 2);
        let id0 = calls[0]["id"].as_str().unwrap();
        assert!(id0.starts_with("call_") && id0.len() == 29, "{id0}");
        assert_eq!(
            calls[0]["function"],
            json!({"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"})
        );
        assert_eq!(calls[1]["id"], "fc_2");
        assert_eq!(calls[1]["type"], "function");
        assert_eq!(out["choices"][0]["finish_reason"], "tool_calls");
        assert!(out["id"].as_str().unwrap().starts_with("chatcmpl-"));
    }

    #[test]
    fn response_finish_reasons_and_blocked_prompts() {
        for (reason, want) in [
            ("MAX_TOKENS", "length"),
            ("SAFETY", "content_filter"),
            ("RECITATION", "content_filter"),
            ("PROHIBITED_CONTENT", "content_filter"),
            ("SPII", "content_filter"),
            ("BLOCKLIST", "content_filter"),
            ("IMAGE_SAFETY", "content_filter"),
            ("MALFORMED_FUNCTION_CALL", "stop"),
            ("OTHER", "stop"),
        ] {
            let body = format!(
                r#"{{"candidates":[{{"content":{{"parts":[{{"text":"x"}}]}},"finishReason":"{reason}"}}]}}"#
            );
            let out = v(&gemini_to_chat_response(body.as_bytes(), "a").unwrap());
            assert_eq!(out["choices"][0]["finish_reason"], want, "{reason}");
        }
        let blocked = br#"{"promptFeedback":{"blockReason":"SAFETY","safetyRatings":[]},
            "usageMetadata":{"promptTokenCount":8,"totalTokenCount":8}}"#;
        let out = v(&gemini_to_chat_response(blocked, "a").unwrap());
        assert_eq!(out["choices"][0]["finish_reason"], "content_filter");
        assert_eq!(out["choices"][0]["message"]["content"], "");
        assert_eq!(out["usage"]["prompt_tokens"], 8);
        // A candidate without content (blocked output) is an empty answer, not an error.
        let out = v(&gemini_to_chat_response(
            br#"{"candidates":[{"finishReason":"SAFETY"}]}"#,
            "a",
        )
        .unwrap());
        assert_eq!(out["choices"][0]["message"]["content"], "");
        assert!(matches!(
            gemini_to_chat_response(
                br#"{"candidates":[{"content":{"parts":[{"executableCode":{"language":"PYTHON","code":"1"}}]}}]}"#,
                "a"
            ),
            Err(TranslateError::Unsupported { .. })
        ));
    }

    #[test]
    fn google_errors_map_to_openai_types() {
        for (status, gstatus, kind) in [
            (400, "INVALID_ARGUMENT", "invalid_request_error"),
            (401, "UNAUTHENTICATED", "authentication_error"),
            (403, "PERMISSION_DENIED", "permission_error"),
            (404, "NOT_FOUND", "not_found_error"),
            (429, "RESOURCE_EXHAUSTED", "rate_limit_error"),
            (500, "INTERNAL", "server_error"),
            (503, "UNAVAILABLE", "server_error"),
        ] {
            let body = format!(
                r#"{{"error":{{"code":{status},"message":"m {status}","status":"{gstatus}","details":[]}}}}"#
            );
            let (st, out) = gemini_error_to_openai(status, body.as_bytes());
            assert_eq!(st, status);
            assert_eq!(
                v(&out),
                json!({"error": {"message": format!("m {status}"), "type": kind, "param": null,
                    "code": gstatus.to_ascii_lowercase()}})
            );
        }
        let (st, out) = gemini_error_to_openai(
            429,
            br#"[{"error":{"code":429,"message":"quota","status":"RESOURCE_EXHAUSTED"}}]"#,
        );
        assert_eq!(
            (st, v(&out)["error"]["message"].clone()),
            (429, json!("quota"))
        );
        let (st, out) = gemini_error_to_openai(502, b"<html>Bad Gateway</html>");
        assert_eq!(st, 502);
        assert_eq!(
            v(&out)["error"],
            json!({"message": "<html>Bad Gateway</html>", "type": "server_error", "param": null, "code": null})
        );
    }
}
