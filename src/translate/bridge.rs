//! `Bridge`: how a body gets from the wire format a client speaks to the one a provider
//! speaks and back, for every pair.
//!
//! OpenAI Chat Completions is the hub. A request from any client is made a Chat request
//! (unless the client already speaks Chat), then made the provider's format (unless the
//! provider speaks Chat); answers, errors and streams go the other way. Two legs have direct
//! translators (Chat ⇄ Anthropic Messages) and are used as they are; a pair whose two ends
//! speak the same format is passed through untouched (the caller forwards the client's bytes).

use super::{
    anthropic_error_to_openai, anthropic_to_openai_request, anthropic_to_openai_response,
    bedrock_error_to_openai, chat_to_converse_request, chat_to_gemini_request,
    chat_to_responses_response_with_echo, converse_to_chat_response, gemini_error_to_openai,
    gemini_to_chat_response, openai_error_to_anthropic, openai_to_anthropic_request,
    openai_to_anthropic_response, responses_to_chat_request, AnthropicToOpenAiStream,
    ChatToResponsesStream, ConverseToChatStream, GeminiToChatStream, OpenAiToAnthropicStream,
    ResponsesEcho, TranslateError,
};
use crate::wire::{FinishReason, Usage, WireApi};

/// Turns a provider's stream into the client's format, one event at a time.
pub trait StreamTranslator {
    /// Translates one complete upstream event (its name or type, its payload), appending
    /// complete SSE text in the client's format to `out`.
    fn push_event(
        &mut self,
        name: Option<&[u8]>,
        data: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<(), TranslateError>;
    /// Ends the client's stream properly if the upstream ended without its terminal event.
    fn finish(&mut self, out: &mut Vec<u8>);
    /// Usage seen so far.
    fn usage(&self) -> Option<Usage>;
    /// The stop reason, once seen.
    fn stop_reason(&self) -> Option<FinishReason>;
}

macro_rules! stream_translator {
    ($($t:ty),* $(,)?) => {$(
        impl StreamTranslator for $t {
            fn push_event(
                &mut self,
                name: Option<&[u8]>,
                data: &[u8],
                out: &mut Vec<u8>,
            ) -> Result<(), TranslateError> {
                <$t>::push_event(self, name, data, out)
            }
            fn finish(&mut self, out: &mut Vec<u8>) {
                <$t>::finish(self, out)
            }
            fn usage(&self) -> Option<Usage> {
                <$t>::usage(self)
            }
            fn stop_reason(&self) -> Option<FinishReason> {
                <$t>::stop_reason(self)
            }
        }
    )*};
}

stream_translator!(
    AnthropicToOpenAiStream,
    OpenAiToAnthropicStream,
    GeminiToChatStream,
    ConverseToChatStream,
    ChatToResponsesStream,
);

/// Two stream translators in a row: provider → Chat, then Chat → client. The Chat SSE text
/// between them goes through one reused buffer.
struct Chained {
    first: Box<dyn StreamTranslator>,
    second: Box<dyn StreamTranslator>,
    mid: Vec<u8>,
    scratch: Vec<u8>,
}

impl Chained {
    fn feed_second(&mut self, out: &mut Vec<u8>) -> Result<(), TranslateError> {
        let second = &mut self.second;
        let result = super::sse::for_each_event(&self.mid, &mut self.scratch, |name, data| {
            second.push_event(name, data, out)
        });
        self.mid.clear();
        result
    }
}

impl StreamTranslator for Chained {
    fn push_event(
        &mut self,
        name: Option<&[u8]>,
        data: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<(), TranslateError> {
        self.mid.clear();
        let first = self.first.push_event(name, data, &mut self.mid);
        // Whatever the first leg produced goes on, even when it then failed.
        self.feed_second(out)?;
        first
    }

    fn finish(&mut self, out: &mut Vec<u8>) {
        self.mid.clear();
        self.first.finish(&mut self.mid);
        if self.feed_second(out).is_err() {
            // The second leg ends the client's stream its own way below.
        }
        self.second.finish(out);
    }

    fn usage(&self) -> Option<Usage> {
        self.second.usage().or_else(|| self.first.usage())
    }

    fn stop_reason(&self) -> Option<FinishReason> {
        self.second
            .stop_reason()
            .or_else(|| self.first.stop_reason())
    }
}

/// A translated answer and the usage read from it.
#[derive(Debug)]
pub struct Translated {
    /// The body in the client's format.
    pub body: Vec<u8>,
    /// Token usage, when the answer reported it.
    pub usage: Option<Usage>,
}

/// The way between one client format and one provider format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bridge {
    /// What the client speaks.
    pub client: WireApi,
    /// What the provider speaks.
    pub provider: WireApi,
}

impl Bridge {
    /// The bridge from `client` to `provider`.
    pub fn new(client: WireApi, provider: WireApi) -> Self {
        Self { client, provider }
    }

    /// Both ends speak the same format: bytes pass through.
    pub fn is_passthrough(self) -> bool {
        self.client == self.provider
    }

    /// The client's request body in the provider's format, for `upstream_model` (for
    /// Gemini and Bedrock the model goes in the URL, not the body).
    pub fn request(self, body: &[u8], upstream_model: &str) -> Result<Vec<u8>, TranslateError> {
        use WireApi::*;
        match (self.client, self.provider) {
            (Chat, Messages) => return openai_to_anthropic_request(body, upstream_model),
            (Messages, Chat) => return anthropic_to_openai_request(body, upstream_model),
            (c, p) if c == p => return Ok(body.to_vec()),
            _ => {}
        }
        let chat = match self.client {
            Chat => None,
            Messages => Some(anthropic_to_openai_request(body, upstream_model)?),
            Responses => Some(responses_to_chat_request(body, upstream_model)?),
            other => return Err(no_leg(other)),
        };
        let chat = chat.as_deref().unwrap_or(body);
        match self.provider {
            Chat => Ok(chat.to_vec()),
            Messages => openai_to_anthropic_request(chat, upstream_model),
            Gemini => chat_to_gemini_request(chat),
            Converse => chat_to_converse_request(chat),
            Responses => Err(TranslateError::unsupported(
                "model",
                "OpenAI Responses (only Responses clients are sent to it)",
            )),
        }
    }

    /// A successful (2xx) non-streamed provider answer in the client's format.
    /// `client_request` is the client's request body (the Responses format echoes parts of it).
    pub fn response(
        self,
        body: &[u8],
        client_model: &str,
        client_request: &[u8],
    ) -> Result<Translated, TranslateError> {
        use WireApi::*;
        let chat = match self.provider {
            Chat => None,
            Messages => Some(anthropic_to_openai_response(body, client_model)?),
            Gemini => Some(gemini_to_chat_response(body, client_model)?),
            Converse => Some(converse_to_chat_response(body, client_model)?),
            other => return Err(no_leg(other)),
        };
        let chat = chat.as_deref().unwrap_or(body);
        let usage = chat_usage(chat);
        let body = match self.client {
            Chat => chat.to_vec(),
            Messages => openai_to_anthropic_response(chat, client_model)?,
            Responses => chat_to_responses_response_with_echo(
                chat,
                client_model,
                &ResponsesEcho::from_request(client_request),
            )?,
            other => return Err(no_leg(other)),
        };
        Ok(Translated { body, usage })
    }

    /// A provider's error answer in the client's format. `error_type` is Bedrock's
    /// `x-amzn-ErrorType` header, when present.
    pub fn error(self, status: u16, error_type: Option<&str>, body: &[u8]) -> (u16, Vec<u8>) {
        use WireApi::*;
        if self.is_passthrough() {
            return (status, body.to_vec());
        }
        let (status, chat) = match self.provider {
            Messages => anthropic_error_to_openai(status, body),
            Gemini => gemini_error_to_openai(status, body),
            Converse => bedrock_error_to_openai(status, error_type, body),
            _ => (status, body.to_vec()),
        };
        match self.client {
            Messages => openai_error_to_anthropic(status, &chat),
            _ => (status, chat),
        }
    }

    /// The stream translator for this pair (`None`: passthrough). `include_usage` is the Chat
    /// client's `stream_options.include_usage`; `client_request` the client's request body.
    pub fn stream(
        self,
        client_model: &str,
        include_usage: bool,
        client_request: &[u8],
    ) -> Result<Option<Box<dyn StreamTranslator>>, TranslateError> {
        use WireApi::*;
        if self.is_passthrough() {
            return Ok(None);
        }
        // A chained first leg always reports usage so that the second can pass it on.
        let chat_usage = include_usage || self.client != Chat;
        let first: Option<Box<dyn StreamTranslator>> = match self.provider {
            Chat => None,
            Messages => {
                let t = AnthropicToOpenAiStream::new(client_model, chat_usage);
                Some(Box::new(if self.client == Chat { t } else { t.for_hub() }))
            }
            Gemini => {
                let t = GeminiToChatStream::new(client_model, chat_usage);
                Some(Box::new(if self.client == Chat { t } else { t.for_hub() }))
            }
            Converse => {
                let t = ConverseToChatStream::new(client_model, chat_usage);
                Some(Box::new(if self.client == Chat { t } else { t.for_hub() }))
            }
            other => return Err(no_leg(other)),
        };
        let second: Option<Box<dyn StreamTranslator>> = match self.client {
            Chat => None,
            Messages => Some(Box::new(OpenAiToAnthropicStream::new(client_model))),
            Responses => Some(Box::new(ChatToResponsesStream::with_echo(
                client_model,
                ResponsesEcho::from_request(client_request),
            ))),
            other => return Err(no_leg(other)),
        };
        Ok(match (first, second) {
            (Some(first), Some(second)) => Some(Box::new(Chained {
                first,
                second,
                mid: Vec::with_capacity(1024),
                scratch: Vec::new(),
            })),
            (one, None) | (None, one) => one,
        })
    }
}

/// A pair no route can produce: a client never speaks Gemini or Converse, and a provider is
/// sent Responses only by a Responses client (a passthrough). Refused, not panicked on.
fn no_leg(wire: WireApi) -> TranslateError {
    TranslateError::unsupported("model", wire.name())
}

/// Usage from a Chat completion body.
fn chat_usage(chat: &[u8]) -> Option<Usage> {
    #[derive(serde::Deserialize)]
    struct WithUsage {
        usage: Option<super::openai_types::Usage>,
    }
    serde_json::from_slice::<WithUsage>(chat)
        .ok()?
        .usage
        .map(|u| Usage::from_openai(&u))
}
