//! The built-in rules: what each one finds, its regex, the check its candidates must pass,
//! and the longest text one match can span.
//!
//! Regexes are written for [`regex_syntax`]; `\b` is an ASCII word boundary (see
//! [`compile`](super::compile)). Every repetition is bounded, so every rule has a maximum
//! match length ([`BuiltinRule::max_len`]): the stream scanner never holds back more text than
//! that for the rule.

use super::validate::{Check, TokenChars};

/// The two families of built-in rules, selectable as a whole by name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RuleGroup {
    /// Credentials: API keys and tokens, private keys, JWTs (`"secrets"`).
    Secrets,
    /// Personal data: card numbers, IBANs, emails, phone numbers, US SSNs (`"pii"`).
    Pii,
}

impl RuleGroup {
    /// The group's config name.
    pub fn name(self) -> &'static str {
        match self {
            RuleGroup::Secrets => "secrets",
            RuleGroup::Pii => "pii",
        }
    }

    /// The group named `name`, if any.
    pub fn from_name(name: &str) -> Option<Self> {
        [RuleGroup::Secrets, RuleGroup::Pii]
            .into_iter()
            .find(|g| g.name() == name)
    }

    /// The built-in rules of this group, in priority order.
    pub fn rules(self) -> impl Iterator<Item = BuiltinRule> {
        BuiltinRule::ALL
            .into_iter()
            .filter(move |r| r.group() == self)
    }
}

/// How the detector looks for a rule's candidates (each kind is one matcher; see
/// [`Detector`](super::Detector)).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Search {
    /// The rule starts with one of a few literals (`sk-`, `AKIA`, `eyJ`, ...): one matcher
    /// for all such rules, whose literal prefilter skips text without them.
    Literal,
    /// The rule has a literal inside (`@`): a matcher of its own finds it from there.
    Inner,
    /// Every match that passes the rule's check has at least `fewest` ASCII digits, and
    /// no more than `gap` other bytes between two of its digits (separators such as `-`,
    /// `) `): the rule is searched only in chains of that many digits so spaced.
    Digits {
        /// The fewest digits of a passing match.
        fewest: usize,
        /// The most non-digit bytes between two consecutive digits of a match.
        gap: usize,
    },
    /// Every match starts with two upper-case letters and two digits: searched only from
    /// such places.
    CountryCode,
    /// A custom rule: nothing is known about it; searched everywhere.
    Custom,
}

/// A built-in rule. The order of [`BuiltinRule::ALL`] is the priority when two rules match
/// at the same position (more specific first: `anthropic_key` before `openai_key`, card
/// numbers before phone numbers).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BuiltinRule {
    /// `sk-ant-…` (Anthropic API and admin keys).
    AnthropicKey,
    /// `sk-…`, `sk-proj-…`, `sk-svcacct-…`, `sk-admin-…` (OpenAI), never `sk-ant-`.
    OpenaiKey,
    /// `AKIA`/`ASIA`/`ABIA`/`ACCA` + 16 upper-case letters or digits (AWS access key ids).
    AwsAccessKey,
    /// `AIza` + 35 characters (Google API keys).
    GoogleApiKey,
    /// `ghp_`/`gho_`/`ghu_`/`ghs_`/`ghr_` + 36, `github_pat_` + 82 (GitHub tokens).
    GithubToken,
    /// `xoxb-`/`xoxa-`/`xoxp-`/`xoxr-`/`xoxs-` tokens with their numeric ids (Slack).
    SlackToken,
    /// `sk_live_`/`rk_live_` + 24 or more (Stripe live secret and restricted keys).
    StripeKey,
    /// `hf_` + 34 or more (Hugging Face tokens).
    HuggingfaceToken,
    /// A PEM private key: the block from `-----BEGIN … PRIVATE KEY-----` to its END line, or
    /// the BEGIN line alone when no END follows within 4 KiB of key text (or the key has
    /// legacy `Proc-Type` headers).
    PrivateKey,
    /// A JWT: three base64url segments whose first decodes to JSON with `"alg"`.
    Jwt,
    /// A payment card number: 13-19 digits, optional single spaces or dashes, a known issuer
    /// prefix and length, Luhn.
    CreditCard,
    /// An IBAN: country, check digits, BBAN (with or without spaces every 4), mod 97.
    Iban,
    /// An email address.
    Email,
    /// A phone number: international (`+CC …`, 8-15 digits) or NANP with separators
    /// (`(415) 555-0132`, `415-555-0132`); plain digit runs are not phone numbers.
    Phone,
    /// A US social security number `AAA-GG-SSSS` outside the never-issued ranges.
    UsSsn,
}

const ANTHROPIC: &str = r"\bsk-ant-[A-Za-z0-9_-]{32,250}";
const OPENAI: &str = r"\bsk-(?:proj-|svcacct-|admin-)?[A-Za-z0-9_-]{32,200}";
const AWS: &str = r"\b(?:AKIA|ASIA|ABIA|ACCA)[A-Z0-9]{16}\b";
const GOOGLE: &str = r"\bAIza[A-Za-z0-9_-]{35}";
const GITHUB: &str = r"\b(?:gh[pousr]_[A-Za-z0-9]{36}|github_pat_[A-Za-z0-9_]{82})\b";
const SLACK: &str = r"\bxox[abprs]-(?:[0-9]{1,2}-)?[0-9]{6,15}-[A-Za-z0-9-]{8,250}";
const STRIPE: &str = r"\b[rs]k_live_[A-Za-z0-9]{24,247}\b";
const HUGGINGFACE: &str = r"\bhf_[A-Za-z0-9]{34,40}\b";
/// BEGIN line, then (optionally, preferred) the key text and the END line. Key text: base64,
/// whitespace, `\n` escapes (a key pasted inside a JSON string) and PGP armor headers. A
/// legacy encrypted PKCS#1 key (`Proc-Type:`/`DEK-Info:` headers, whose dashes the key text
/// excludes) matches as its BEGIN line only.
const PRIVATE_KEY: &str = concat!(
    r"-----BEGIN (?:[A-Z0-9]{1,16} ){0,2}PRIVATE KEY(?: BLOCK)?-----",
    r"(?:[A-Za-z0-9+/=\\ \t\r\n:,.]{0,4096}",
    r"-----END (?:[A-Z0-9]{1,16} ){0,2}PRIVATE KEY(?: BLOCK)?-----)?",
);
const JWT: &str = r"\beyJ[A-Za-z0-9_-]{4,512}\.[A-Za-z0-9_-]{2,4096}\.[A-Za-z0-9_-]{0,1024}";
const CREDIT_CARD: &str = r"\b[0-9](?:[ -]?[0-9]){12,18}\b";
const IBAN: &str = r"\b[A-Z]{2}[0-9]{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,3})?\b";
const EMAIL: &str =
    r"\b[A-Za-z0-9][A-Za-z0-9._%+-]{0,63}@(?:[A-Za-z0-9-]{1,63}\.){1,6}[A-Za-z]{2,24}\b";
/// International: `+` (not right after a word character), a country code, then digit groups
/// with optional single separators (8-15 digits in all, checked). Or NANP: area code,
/// exchange and line number with separators, after an optional `1` trunk prefix.
const PHONE: &str = concat!(
    r"\B\+[1-9][0-9]{0,2}(?:[ .-]?\([0-9]{1,4}\))?(?:[ .-]?[0-9]{1,5}){1,6}\b",
    r"|(?:\b1[ .-])?(?:\([2-9][0-9]{2}\) ?|\b[2-9][0-9]{2}[ .-])[2-9][0-9]{2}[ .-][0-9]{4}\b",
);
const US_SSN: &str = r"\b[0-9]{3}-[0-9]{2}-[0-9]{4}\b";

impl BuiltinRule {
    /// Every built-in rule, in priority order.
    pub const ALL: [BuiltinRule; 15] = [
        BuiltinRule::AnthropicKey,
        BuiltinRule::OpenaiKey,
        BuiltinRule::AwsAccessKey,
        BuiltinRule::GoogleApiKey,
        BuiltinRule::GithubToken,
        BuiltinRule::SlackToken,
        BuiltinRule::StripeKey,
        BuiltinRule::HuggingfaceToken,
        BuiltinRule::PrivateKey,
        BuiltinRule::Jwt,
        BuiltinRule::CreditCard,
        BuiltinRule::Iban,
        BuiltinRule::Email,
        BuiltinRule::Phone,
        BuiltinRule::UsSsn,
    ];

    /// The rule's stable snake_case name (config, `[REDACTED:name]`, records).
    pub fn name(self) -> &'static str {
        match self {
            BuiltinRule::AnthropicKey => "anthropic_key",
            BuiltinRule::OpenaiKey => "openai_key",
            BuiltinRule::AwsAccessKey => "aws_access_key",
            BuiltinRule::GoogleApiKey => "google_api_key",
            BuiltinRule::GithubToken => "github_token",
            BuiltinRule::SlackToken => "slack_token",
            BuiltinRule::StripeKey => "stripe_key",
            BuiltinRule::HuggingfaceToken => "huggingface_token",
            BuiltinRule::PrivateKey => "private_key",
            BuiltinRule::Jwt => "jwt",
            BuiltinRule::CreditCard => "credit_card",
            BuiltinRule::Iban => "iban",
            BuiltinRule::Email => "email",
            BuiltinRule::Phone => "phone",
            BuiltinRule::UsSsn => "us_ssn",
        }
    }

    /// The built-in rule named `name`, if any.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|r| r.name() == name)
    }

    /// The group the rule belongs to.
    pub fn group(self) -> RuleGroup {
        match self {
            BuiltinRule::CreditCard
            | BuiltinRule::Iban
            | BuiltinRule::Email
            | BuiltinRule::Phone
            | BuiltinRule::UsSsn => RuleGroup::Pii,
            _ => RuleGroup::Secrets,
        }
    }

    /// The longest text, in bytes, one match of the rule can span (what its regex allows;
    /// a test checks these against the compiled regexes). The stream scanner holds back at
    /// most this much text for the rule.
    pub fn max_len(self) -> usize {
        match self {
            BuiltinRule::AnthropicKey => 257,
            BuiltinRule::OpenaiKey => 211,
            BuiltinRule::AwsAccessKey => 20,
            BuiltinRule::GoogleApiKey => 39,
            BuiltinRule::GithubToken => 93,
            BuiltinRule::SlackToken => 274,
            BuiltinRule::StripeKey => 255,
            BuiltinRule::HuggingfaceToken => 43,
            BuiltinRule::PrivateKey => 4228,
            BuiltinRule::Jwt => 5637,
            BuiltinRule::CreditCard => 37,
            BuiltinRule::Iban => 43,
            BuiltinRule::Email => 473,
            BuiltinRule::Phone => 47,
            BuiltinRule::UsSsn => 11,
        }
    }

    pub(crate) fn pattern(self) -> &'static str {
        match self {
            BuiltinRule::AnthropicKey => ANTHROPIC,
            BuiltinRule::OpenaiKey => OPENAI,
            BuiltinRule::AwsAccessKey => AWS,
            BuiltinRule::GoogleApiKey => GOOGLE,
            BuiltinRule::GithubToken => GITHUB,
            BuiltinRule::SlackToken => SLACK,
            BuiltinRule::StripeKey => STRIPE,
            BuiltinRule::HuggingfaceToken => HUGGINGFACE,
            BuiltinRule::PrivateKey => PRIVATE_KEY,
            BuiltinRule::Jwt => JWT,
            BuiltinRule::CreditCard => CREDIT_CARD,
            BuiltinRule::Iban => IBAN,
            BuiltinRule::Email => EMAIL,
            BuiltinRule::Phone => PHONE,
            BuiltinRule::UsSsn => US_SSN,
        }
    }

    /// How the detector looks for the rule's candidates. The digit counts are what a match
    /// needs to pass the rule's check: 13 for a card number, 9 for an SSN; a phone number
    /// has 8 (international, checked) or 10 (North American, by the regex).
    pub(crate) fn search(self) -> Search {
        match self {
            BuiltinRule::Email => Search::Inner,
            // `[ -]?` between digits
            BuiltinRule::CreditCard => Search::Digits { fewest: 13, gap: 1 },
            // `) ` after an area code, ` (` before one
            BuiltinRule::Phone => Search::Digits { fewest: 8, gap: 2 },
            BuiltinRule::UsSsn => Search::Digits { fewest: 9, gap: 1 },
            BuiltinRule::Iban => Search::CountryCode,
            _ => Search::Literal,
        }
    }

    pub(crate) fn check(self) -> Check {
        match self {
            BuiltinRule::AnthropicKey => Check::Anthropic,
            BuiltinRule::OpenaiKey => Check::OpenAi,
            BuiltinRule::AwsAccessKey
            | BuiltinRule::GithubToken
            | BuiltinRule::StripeKey
            | BuiltinRule::HuggingfaceToken => Check::Token(TokenChars::Word),
            BuiltinRule::GoogleApiKey => Check::Token(TokenChars::UrlSafe),
            BuiltinRule::SlackToken => Check::Token(TokenChars::AlnumDash),
            BuiltinRule::PrivateKey | BuiltinRule::Email => Check::None,
            BuiltinRule::Jwt => Check::Jwt,
            BuiltinRule::CreditCard => Check::CreditCard,
            BuiltinRule::Iban => Check::Iban,
            BuiltinRule::Phone => Check::Phone,
            BuiltinRule::UsSsn => Check::Ssn,
        }
    }
}
