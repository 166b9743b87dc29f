//! Azure OpenAI's data-plane routes: `POST /openai/deployments/{deployment}/chat/completions`
//! and `/embeddings`, with the `api-version` query parameter and the `api-key` header. The
//! bodies are OpenAI's, so the answers come from the OpenAI endpoints.

use super::peer::Peer;
use serde_json::json;

use super::config::RequestKnobs;
use super::handler::ServerContext;
use super::openai;
use super::request::Request;
use super::respond::{write_json, Next};
use super::stats::Endpoint;

/// What an Azure deployment path asks for.
#[derive(Debug, PartialEq, Eq)]
pub enum AzureOperation<'a> {
    /// `/openai/deployments/{deployment}/chat/completions`
    Chat(&'a str),
    /// `/openai/deployments/{deployment}/embeddings`
    Embeddings(&'a str),
}

/// Parses an Azure deployment path (`None`: not one).
pub fn operation(path: &str) -> Option<AzureOperation<'_>> {
    let rest = path.strip_prefix("/openai/deployments/")?;
    let (deployment, op) = rest.split_once('/')?;
    if deployment.is_empty() {
        return None;
    }
    match op {
        "chat/completions" => Some(AzureOperation::Chat(deployment)),
        "embeddings" => Some(AzureOperation::Embeddings(deployment)),
        _ => None,
    }
}

/// Azure's error body: `{"error":{"code","message"}}` (the code is a string).
fn error_body(code: &str, message: &str) -> Vec<u8> {
    serde_json::to_vec(&json!({"error": {"code": code, "message": message}})).unwrap_or_default()
}

/// Serves an Azure deployment route after checking `api-key` and `api-version` as Azure does.
pub async fn route(
    stream: &mut Peer<'_>,
    request: &Request,
    op: AzureOperation<'_>,
    knobs: RequestKnobs,
    ctx: &ServerContext,
) -> std::io::Result<Next> {
    let keep_alive = request.keep_alive;
    if request.header("api-key").is_none_or(str::is_empty) {
        ctx.stats.count_request(Endpoint::BadRequest);
        let body = error_body(
            "401",
            "Access denied due to invalid subscription key or wrong API endpoint. Make sure to provide a valid key for an active subscription and use a correct regional API endpoint for your resource.",
        );
        return write_json(stream, 401, &body, keep_alive, "").await;
    }
    if request.query_param("api-version").is_none_or(str::is_empty) {
        ctx.stats.count_request(Endpoint::BadRequest);
        let body = error_body("404", "Resource not found");
        return write_json(stream, 404, &body, keep_alive, "").await;
    }
    match op {
        AzureOperation::Chat(_) => openai::chat(stream, request, knobs, ctx).await,
        AzureOperation::Embeddings(_) => openai::embeddings(stream, request, knobs, ctx).await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_deployment_paths() {
        assert_eq!(
            operation("/openai/deployments/gpt4o/chat/completions"),
            Some(AzureOperation::Chat("gpt4o"))
        );
        assert_eq!(
            operation("/openai/deployments/emb/embeddings"),
            Some(AzureOperation::Embeddings("emb"))
        );
        assert_eq!(operation("/openai/deployments//chat/completions"), None);
        assert_eq!(operation("/v1/chat/completions"), None);
        assert_eq!(operation("/openai/deployments/x/completions"), None);
    }
}
