//! Texts shared by the detector's and the stream scanner's tests: every built-in rule in
//! context, hard negatives, multi-byte characters, and findings next to each other.

/// A JWT with header `{"alg":"HS256","typ":"JWT"}` (fake signature).
pub(crate) const JWT: &str = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIiwiaWF0IjoxNzAwMDAwMDAwfQ.Qm9ndXNTaWduYXR1cmVGb3JUZXN0c09ubHkwMTIzNDU2";

/// An OpenAI-shaped key (random, fake).
pub(crate) const OPENAI: &str =
    "sk-proj-4fJ2kQ9xL0pZ7vB3nT8yR1wE6uI5oP2aS9dF3gH7jK0lZ4xC8vB1nMq2W3e4R5t6Y7u8I9o0P1a2S3d4F5g6H7j8K9l0";

/// One text per built-in rule, with the rule's name.
pub(crate) fn positives() -> Vec<(&'static str, String)> {
    vec![
        ("anthropic_key", "ANTHROPIC_API_KEY=sk-ant-api03-Xy7_kQ2-pL9mN4bV6cR8tW1zA3sD5fG7hJ9kL2qW4eR6tY8uI0oP2aS4dF6gH8jK0lZ2xC4vB6nM8qW0eR2tY4uI6oP8aS0dF2gH4jK6lAA".into()),
        ("openai_key", format!("client = OpenAI(api_key=\"{OPENAI}\")")),
        ("aws_access_key", "aws_access_key_id = AKIAQNRXK7ORD3HNG57Y".into()),
        ("google_api_key", "https://maps.googleapis.com/maps/api/geocode/json?key=AIzaSyD4-x9Qk2LmN7pR3sT6vW8yZ1bC5dF0gHj&x=1".into()),
        ("github_token", "git clone https://ghp_R4nd0mT0k3nV4lu3F0rT3st1ngPurp0s3sAb@github.com/acme/repo.git".into()),
        ("slack_token", "SLACK_BOT_TOKEN=xoxb-123456789012-1234567890123-AbCdEfGhIjKlMnOpQrStUvWx".into()),
        ("stripe_key", "stripe.api_key = \"sk_live_51HxYzAbCdEfGhIjKlMnOpQrStUv\"".into()),
        ("huggingface_token", "HF_TOKEN=hf_qWeRtYuIoPaSdFgHjKlZxCvBnMqWeRtYuIoP".into()),
        ("private_key", "key:\n-----BEGIN EC PRIVATE KEY-----\nMHcCAQEEIBkg4LVWM9nuwNSk3yByxZpYRTBnVJk5oAKEhVEdRw3PoAoGCCqGSM49\nAwEHoUQDQgAEvF1kZ9vB+3v8Vwq6+XTn0jJ8sX1QjD5mN2pL7kR4tY6uI8oP0aS2\n-----END EC PRIVATE KEY-----\nthanks".into()),
        ("jwt", format!("Authorization: Bearer {JWT}")),
        ("credit_card", "please charge 4111 1111 1111 1111 exp 04/27".into()),
        ("iban", "IBAN: DE89 3704 0044 0532 0130 00, thanks".into()),
        ("email", "reach me at jane.doe+billing@mail.example.co.uk if anything breaks".into()),
        ("phone", "Call me at +44 20 7946 0958 or (415) 555-0132.".into()),
        ("us_ssn", "my social is 512-34-5678 for the tax form".into()),
    ]
}

/// Texts where no built-in rule may fire.
pub(crate) const NEGATIVES: &[&str] = &[
    "Could you ask-me before merging the task-list changes? It is risk-free, sk-learn style.",
    "request_id=3f2b8c1e-7d4a-4e9b-9a61-2c5d8e0f1a37 trace=0b7e4d2a-91c3-4f6e-8a2d-5c1b9e7f3a60",
    "commit 81d268258d6a6ecc94a855e2232bc29e77350a61 (HEAD -> main)",
    "account number 4111111111111112 and 1234 5678 9012 3456",
    "Version 2.14.0-rc.1, released 2023-11-02; price $1,299.99; order #100023456789.",
    "IBAN DE88 3704 0044 0532 0130 00 has a bad checksum; SSN 000-12-3456 is invalid.",
    "placeholders: sk-... AKIAXXXX ghp_xxx hf_xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx <YOUR_API_KEY>",
    "The example key in the AWS docs is AKIAIOSFODNN7EXAMPLE.",
    "sha256: 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
];

/// Texts for the stream scanner's equivalence tests: several findings, multi-byte
/// characters, a finding whose inside could still start an email when it is decided.
pub(crate) fn stream_texts() -> Vec<String> {
    let mut texts: Vec<String> = positives().into_iter().map(|(_, t)| t).collect();
    texts.extend(NEGATIVES.iter().map(|t| t.to_string()));
    texts.push(format!(
        "Grüße! Mail 😀 bob@example.com, call +1 (415) 555-0132, key {OPENAI} — done."
    ));
    texts.push(format!("{OPENAI}@example.co and then some text"));
    texts.push("card 4111-1111-1111-1111 4012888888881881 5555555555554444 end".into());
    texts.push(format!("{JWT}.{JWT} tail"));
    texts.push("a@b.co x@y.org\n\nalice@example.com,bob@example.com;carol@example.com".into());
    texts
}
