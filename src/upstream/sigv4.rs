//! AWS Signature Version 4 for providers that take AWS credentials instead of an API key
//! (Bedrock). The signing itself is the official `aws-sigv4` crate; this module only shapes
//! its input (our header list and body) and output (the headers to add).
//!
//! The path is signed as AWS SDKs sign every service but S3: `path_and_query` is what goes on
//! the wire (already percent-encoded once, e.g. `/model/anthropic.claude-3-5-sonnet-20240620-v1%3A0/converse`)
//! and the canonical request encodes it again (`%253A`), which is what Bedrock checks.

use std::fmt;
use std::time::SystemTime;

use aws_credential_types::Credentials;
use aws_sigv4::http_request::{sign, SignableBody, SignableRequest, SigningSettings};
use aws_sigv4::sign::v4;
use aws_smithy_runtime_api::client::identity::Identity;

/// Long-term or temporary AWS credentials for signing requests to a provider.
#[derive(Clone, PartialEq, Eq)]
pub struct AwsCredentials {
    /// `AKIA…` (long-term) or `ASIA…` (temporary).
    pub access_key_id: String,
    /// The secret key; never printed.
    pub secret_access_key: String,
    /// The STS session token of temporary credentials; never printed.
    pub session_token: Option<String>,
}

impl fmt::Debug for AwsCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AwsCredentials")
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &"** redacted **")
            .field(
                "session_token",
                &self.session_token.as_ref().map(|_| "** redacted **"),
            )
            .finish()
    }
}

/// Why a request could not be signed (a malformed path, header name or value).
#[derive(Debug, thiserror::Error)]
#[error("SigV4 signing failed: {0}")]
pub struct SigningError(String);

/// Signs a request with SigV4 and returns the headers to add to it: `authorization`,
/// `x-amz-date` and, for temporary credentials, `x-amz-security-token`. `host` must be the
/// `Host` the request is sent with; `headers` are the other headers sent (all are signed;
/// `authorization`, `user-agent`, `x-amzn-trace-id` and `transfer-encoding` are left out, as
/// the AWS SDKs do); `body` is the exact body sent.
#[allow(clippy::too_many_arguments)]
pub fn sign_headers(
    creds: &AwsCredentials,
    region: &str,
    service: &str,
    method: &str,
    host: &str,
    path_and_query: &str,
    headers: &[(&str, &str)],
    body: &[u8],
    time: SystemTime,
) -> Result<Vec<(String, String)>, SigningError> {
    let identity: Identity = Credentials::new(
        creds.access_key_id.as_str(),
        creds.secret_access_key.as_str(),
        creds.session_token.clone(),
        None,
        "infergate",
    )
    .into();
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region(region)
        .name(service)
        .time(time)
        .settings(SigningSettings::default())
        .build()
        .map_err(|e| SigningError(e.to_string()))?
        .into();
    let uri = format!("https://{host}{path_and_query}");
    let has_host = headers.iter().any(|(n, _)| n.eq_ignore_ascii_case("host"));
    let all = headers
        .iter()
        .copied()
        .chain((!has_host).then_some(("host", host)));
    let request = SignableRequest::new(method, uri, all, SignableBody::Bytes(body))
        .map_err(|e| SigningError(e.to_string()))?;
    let (instructions, _signature) = sign(request, &params)
        .map_err(|e| SigningError(e.to_string()))?
        .into_parts();
    Ok(instructions
        .headers()
        .map(|(n, v)| (n.to_owned(), v.to_owned()))
        .collect())
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, UNIX_EPOCH};

    use super::*;

    fn creds(token: Option<&str>) -> AwsCredentials {
        AwsCredentials {
            access_key_id: "AKIDEXAMPLE".into(),
            secret_access_key: "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY".into(),
            session_token: token.map(str::to_owned),
        }
    }

    fn find<'a>(h: &'a [(String, String)], name: &str) -> Option<&'a str> {
        h.iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// 2015-08-30T12:36:00Z, the date of the AWS SigV4 test suite.
    fn suite_time() -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(1_440_938_160)
    }

    #[test]
    fn aws_test_suite_get_vanilla() {
        // `get-vanilla` from the AWS SigV4 test suite.
        let h = sign_headers(
            &creds(None),
            "us-east-1",
            "service",
            "GET",
            "example.amazonaws.com",
            "/",
            &[],
            b"",
            suite_time(),
        )
        .unwrap();
        assert_eq!(find(&h, "x-amz-date"), Some("20150830T123600Z"));
        assert_eq!(
            find(&h, "authorization"),
            Some("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, SignedHeaders=host;x-amz-date, Signature=5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31")
        );
        assert_eq!(find(&h, "x-amz-security-token"), None);
    }

    /// A Converse call to a model id with `:`, signed by botocore 1.43 (`SigV4Auth`, the
    /// signer the AWS CLI and boto3 use) with the same inputs: the expected signature
    /// proves the double encoding of the path and the session token handling.
    #[test]
    fn bedrock_converse_matches_botocore() {
        let body = br#"{"messages":[{"role":"user","content":[{"text":"Hello"}]}]}"#;
        let time = UNIX_EPOCH + Duration::from_secs(1_718_000_000); // 2024-06-10T06:13:20Z
        let h = sign_headers(
            &creds(Some("FQoGZXIvYXdzEXAMPLETOKEN")),
            "us-west-2",
            "bedrock",
            "POST",
            "bedrock-runtime.us-west-2.amazonaws.com",
            "/model/anthropic.claude-3-5-sonnet-20240620-v1%3A0/converse",
            &[
                ("content-type", "application/json"),
                ("accept", "application/json"),
            ],
            body,
            time,
        )
        .unwrap();
        assert_eq!(find(&h, "x-amz-date"), Some("20240610T061320Z"));
        assert_eq!(
            find(&h, "x-amz-security-token"),
            Some("FQoGZXIvYXdzEXAMPLETOKEN")
        );
        assert_eq!(find(&h, "authorization"), Some(BOTOCORE_CONVERSE_AUTH));
    }

    const BOTOCORE_CONVERSE_AUTH: &str = "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20240610/us-west-2/bedrock/aws4_request, SignedHeaders=accept;content-type;host;x-amz-date;x-amz-security-token, Signature=9932f8d9fa07bb9cc72fd8d12ae4a06311d5ce081ebfe523388686702342383c";

    #[test]
    fn debug_redacts_secrets() {
        let s = format!("{:?}", creds(Some("tok-secret")));
        assert!(s.contains("AKIDEXAMPLE"));
        assert!(!s.contains("wJalr"));
        assert!(!s.contains("tok-secret"));
    }
}
