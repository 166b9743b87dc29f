//! Word lists the guard needs: filler words, negators, number words, polar pairs, languages.
//!
//! All lists are general-purpose English (plus the commonest function words of a few other
//! Latin-script languages), written for paraphrase-vs-lookalike detection, not for one data set.

use std::collections::{HashMap, HashSet};
use std::sync::OnceLock;

/// Words that carry no subject: function words, question words, politeness and generic request
/// verbs ("tell me", "give me", "explain"), plus common function words of es/fr/de/it/pt.
#[rustfmt::skip]
pub(crate) const FILLER: &[&str] = &[
    // English function words
    "a", "an", "the", "of", "in", "on", "at", "for", "to", "with", "by", "about", "as", "from",
    "into", "onto", "over", "and", "or", "but", "so", "if", "then", "than", "that", "this",
    "these", "those", "there", "here", "it", "its", "is", "are", "was", "were", "be", "been",
    "being", "am", "do", "does", "did", "done", "doing", "have", "has", "had", "having", "can",
    "could", "will", "would", "shall", "should", "may", "might", "must", "i", "me", "my", "mine",
    "we", "us", "our", "you", "your", "yours", "he", "him", "his", "she", "her", "they", "them",
    "their", "what", "which", "who", "whom", "whose", "when", "where", "why", "how", "some",
    "any", "all", "each", "every", "just", "really", "very", "too", "also", "quite", "please",
    "pls", "plz", "thanks", "thank", "hi", "hello", "hey", "one's", "yet", "still", "right",
    "currently", "now", "actually", "basically", "simply", "way", "ways", "thing", "things",
    "something", "anything", "like", "get", "got", "getting", "go", "going", "make", "made",
    "want", "need", "needs", "know", "let", "lets", "use", "using", "used", "work", "works",
    // Generic request verbs and nouns (they ask, they do not say about what)
    "tell", "say", "give", "show", "explain", "describe", "define", "write", "find", "list",
    "recommend", "suggest", "help", "question", "answer", "example", "examples", "mean",
    "meaning", "means", "way", "tips", "tip", "steps", "step", "good", "great", "nice", "best",
    "better", "other", "kind", "type", "im", "ok", "okay",
    // Quantity and comparison frames ("how many" = "number of", "X vs Y" = "difference
    // between X and Y"), time fillers, generic event verbs
    "many", "much", "number", "amount", "between", "vs", "versus", "difference", "differences",
    "compare", "comparison", "compared", "current", "happen", "happens", "occur", "occurs",
    // Spanish
    "el", "la", "los", "las", "es", "que", "de", "del", "cómo", "como", "qué", "mi", "mis", "en",
    "un", "una", "por", "para", "y", "con", "puedo", "está", "son", "se", "lo", "al",
    // French
    "le", "les", "est", "des", "du", "comment", "mon", "ma", "mes", "une", "pour", "et", "avec",
    "je", "vous", "au", "aux", "ce", "cette", "il", "elle", "qui", "quoi", "où",
    // German
    "der", "die", "das", "ist", "wie", "was", "ich", "mein", "meine", "und", "mit", "für", "ein",
    "eine", "einen", "es", "zu", "auf", "den", "dem", "welche", "welcher", "gerade", "sie",
    // Italian / Portuguese
    "il", "è", "che", "di", "come", "sono", "o", "é", "meu", "um", "uma", "não", "da", "do",
];

/// Words that negate what follows (`n't` is handled by the tokenizer).
#[rustfmt::skip]
pub(crate) const NEGATORS: &[&str] = &[
    "not", "no", "never", "none", "nothing", "nobody", "nowhere", "neither", "nor", "without",
    "cannot", "nunca", "sin", "ni", "ne", "pas", "jamais", "sans", "aucun", "aucune", "nicht",
    "kein", "keine", "keinen", "keiner", "nie", "niemals", "ohne",
];

/// Cardinal number words and their values.
#[rustfmt::skip]
pub(crate) const CARDINALS: &[(&str, u64)] = &[
    ("zero", 0), ("two", 2), ("three", 3), ("four", 4), ("five", 5), ("six", 6),
    ("seven", 7), ("eight", 8), ("nine", 9), ("ten", 10), ("eleven", 11), ("twelve", 12),
    ("thirteen", 13), ("fourteen", 14), ("fifteen", 15), ("sixteen", 16), ("seventeen", 17),
    ("eighteen", 18), ("nineteen", 19), ("twenty", 20), ("thirty", 30), ("forty", 40),
    ("fifty", 50), ("sixty", 60), ("seventy", 70), ("eighty", 80), ("ninety", 90),
    ("hundred", 100), ("thousand", 1_000), ("million", 1_000_000), ("billion", 1_000_000_000),
    ("dozen", 12),
];

/// Multiplicative words and their factors, written as `x<n>`.
#[rustfmt::skip]
pub(crate) const MULTIPLIERS: &[(&str, &str)] = &[
    ("twice", "x2"), ("double", "x2"), ("doubled", "x2"), ("thrice", "x3"), ("triple", "x3"),
    ("tripled", "x3"), ("half", "x0.5"), ("quadruple", "x4"),
];

/// Common near-synonyms and abbreviations, mapped to one form before subjects are compared.
#[rustfmt::skip]
pub(crate) const SYNONYMS: &[(&str, &[&str])] = &[
    ("remove", &["delete", "erase"]), ("change", &["update", "modify", "edit", "alter"]),
    ("undo", &["revert", "rollback"]),
    ("check", &["test", "verify", "validate"]), ("show", &["display"]),
    ("get", &["obtain", "fetch", "retrieve"]),
    ("fix", &["solve", "resolve", "repair", "troubleshoot"]), ("run", &["execute"]),
    ("error", &["bug", "issue", "problem"]), ("folder", &["directory", "dir"]),
    ("big", &["large", "huge"]), ("small", &["little", "tiny"]),
    ("fast", &["quick", "quickly", "rapid", "rapidly", "speedy"]),
    ("picture", &["image", "photo", "photograph", "pic"]), ("car", &["automobile", "vehicle"]),
    ("buy", &["purchase"]), ("price", &["cost"]), ("highest", &["tallest"]),
    ("start", &["begin"]), ("end", &["finish"]), ("quit", &["exit"]), ("email", &["mail"]),
    ("bad", &["harm", "hurt"]), ("merge", &["combine", "join", "concatenate"]),
    ("dictionary", &["dict"]), ("repository", &["repo"]), ("configuration", &["config"]),
    ("application", &["app"]), ("documentation", &["docs", "doc"]), ("information", &["info"]),
    ("database", &["db"]), ("environment", &["env"]),
];

/// Ordinal words and their ranks.
#[rustfmt::skip]
pub(crate) const ORDINALS: &[(&str, u64)] = &[
    ("first", 1), ("second", 2), ("third", 3), ("fourth", 4), ("fifth", 5), ("sixth", 6),
    ("seventh", 7), ("eighth", 8), ("ninth", 9), ("tenth", 10),
];

/// Pairs of opposites, each `(one pole's forms, the other pole's forms)`. Two prompts that use
/// the same pair must use its poles in the same order ("pass ... fail" vs "fail ... pass").
/// Multi-word forms are matched before single words.
#[rustfmt::skip]
pub(crate) const POLAR: &[(&[&str], &[&str])] = &[
    (
        &[
            "enable", "enables", "enabled", "enabling", "activate", "activated", "turn on",
            "switch on", "unmute",
        ],
        &[
            "disable", "disables", "disabled", "disabling", "deactivate", "deactivated",
            "turn off", "switch off", "mute",
        ],
    ),
    (
        &["open", "opens", "opened", "unlock", "unlocked"],
        &["close", "closes", "closed", "lock", "locked", "shut"],
    ),
    (
        &[
            "add", "adds", "added", "adding", "insert", "create", "created", "install",
            "installed", "include", "including", "append",
        ],
        &[
            "remove", "removes", "removed", "removing", "delete", "deletes", "deleted", "drop",
            "uninstall", "exclude", "excluding", "erase",
        ],
    ),
    (
        &[
            "upgrade", "upgraded", "increase", "increased", "raise", "higher", "maximum", "max",
            "bigger", "larger", "longer", "more",
        ],
        &[
            "downgrade", "downgraded", "decrease", "decreased", "lower", "minimum", "min",
            "smaller", "shorter", "less", "fewer",
        ],
    ),
    (&["ascending", "asc"], &["descending", "desc"]),
    (
        &["before", "earlier", "previous", "prior"],
        &["after", "later", "next"],
    ),
    (&["above", "over"], &["below", "under"]),
    (
        &[
            "pass", "passes", "passed", "passing", "succeed", "succeeds", "success", "valid",
            "true",
        ],
        &[
            "fail", "fails", "failed", "failing", "failure", "invalid", "false",
        ],
    ),
    (
        &["win", "wins", "won", "winner"],
        &["lose", "loses", "lost", "loser"],
    ),
    (
        &["old", "older", "oldest"],
        &["new", "newer", "newest", "recent"],
    ),
    (
        &[
            "safe", "harmless", "healthy", "benefit", "benefits", "advantage", "advantages",
            "pros",
        ],
        &[
            "unsafe", "toxic", "dangerous", "harmful", "poisonous", "side effect", "side effects",
            "risk", "risks", "disadvantage", "disadvantages", "cons",
        ],
    ),
    (
        &["fast", "faster", "fastest", "quick", "quicker"],
        &["slow", "slower", "slowest"],
    ),
    (
        &["hot", "hotter", "warm", "boil", "boiling"],
        &["cold", "colder", "cool", "freeze", "freezing"],
    ),
    (&["buy", "bought", "purchase"], &["sell", "sold"]),
    (
        &["import", "imports", "imported"],
        &["export", "exports", "exported"],
    ),
    (
        &["upload", "uploads", "uploaded"],
        &["download", "downloads", "downloaded"],
    ),
    (&["push", "pushes", "pushed"], &["pull", "pulls", "pulled"]),
    (
        &["send", "sends", "sent", "sending"],
        &["receive", "receives", "received", "receiving"],
    ),
    (&["input", "inputs"], &["output", "outputs"]),
    (
        &[
            "accept", "accepts", "accepted", "allow", "allows", "allowed", "approve", "approved",
        ],
        &[
            "reject", "rejects", "rejected", "deny", "denies", "denied", "block", "blocks",
            "blocked", "decline", "declined",
        ],
    ),
    (
        &["login", "log in", "logged in", "sign in", "signed in"],
        &["logout", "log out", "logged out", "sign out", "signed out"],
    ),
    (
        &["subscribe", "subscribed"],
        &["unsubscribe", "unsubscribed"],
    ),
    (
        &[
            "encode", "encoding", "encrypt", "encryption", "compress", "serialize", "zip",
        ],
        &[
            "decode", "decoding", "decrypt", "decryption", "decompress", "deserialize", "unzip",
        ],
    ),
    (
        &["show", "shows", "display", "unhide"],
        &["hide", "hides", "hidden"],
    ),
    (
        &["start", "starts", "started", "begin", "began", "resume"],
        &[
            "stop", "stops", "stopped", "end", "ended", "finish", "pause",
        ],
    ),
    (&["born", "birth"], &["die", "died", "death"]),
    (
        &["build", "built", "construct", "constructed"],
        &["destroy", "destroyed", "demolish", "demolished"],
    ),
    (
        &["cause", "causes", "caused", "reason", "reasons"],
        &[
            "consequence", "consequences", "effects", "result", "results", "outcome",
        ],
    ),
    (&["derivative", "differentiate"], &["integral", "integrate"]),
    (
        &["good", "best", "better", "positive"],
        &["bad", "worst", "worse", "negative"],
    ),
    (
        &["love", "loves", "like", "likes"],
        &["hate", "hates", "dislike", "dislikes"],
    ),
    (&["agree", "agrees"], &["disagree", "disagrees"]),
    (&["public"], &["private"]),
    (&["local", "locally"], &["remote", "remotely"]),
    (&["online"], &["offline"]),
    (&["light"], &["dark"]),
    (&["north", "northern"], &["south", "southern"]),
    (&["east", "eastern"], &["west", "western"]),
    (&["plus"], &["minus"]),
    (&["cheap", "cheaper", "cheapest"], &["expensive", "pricier"]),
];

/// Words after which the next subject word is a direction target ("from X to Y").
#[rustfmt::skip]
pub(crate) const DIRECTIONAL: &[&str] =
    &["to", "into", "from", "than", "onto", "toward", "towards"];

/// Languages by their commonest function words (Latin script only; others differ by script).
#[rustfmt::skip]
pub(crate) const LANGUAGES: &[(&str, &[&str])] = &[
    (
        "en",
        &[
            "the", "is", "are", "what", "how", "of", "and", "to", "my", "do", "does", "i", "you",
            "this", "with", "for", "it", "can", "was", "which", "who", "why", "when", "where",
            "please",
        ],
    ),
    (
        "es",
        &[
            "el", "los", "las", "es", "que", "cómo", "como", "qué", "mi", "por", "para", "y",
            "con", "puedo", "está", "una", "del",
        ],
    ),
    (
        "fr",
        &[
            "le", "les", "est", "des", "du", "comment", "mon", "une", "pour", "et", "avec", "je",
            "vous", "ce", "qui", "quoi", "termes",
        ],
    ),
    (
        "de",
        &[
            "der", "die", "das", "ist", "wie", "was", "ich", "mein", "und", "mit", "für", "ein",
            "eine", "es", "nicht", "zu", "auf", "den", "dem", "welche", "spät",
        ],
    ),
    (
        "it",
        &[
            "il", "è", "che", "di", "come", "sono", "per", "una", "gli", "della", "non",
        ],
    ),
    (
        "pt",
        &[
            "o", "é", "que", "como", "meu", "para", "um", "uma", "não", "você", "com",
        ],
    ),
];

/// The lists above as hash tables, built once on first use: the guard runs per candidate.
pub(crate) struct Lexicon {
    pub filler: HashSet<&'static str>,
    pub negators: HashSet<&'static str>,
    pub cardinals: HashMap<&'static str, u64>,
    pub ordinals: HashMap<&'static str, u64>,
    pub multipliers: HashMap<&'static str, &'static str>,
    pub synonyms: HashMap<&'static str, &'static str>,
    /// Word or phrase -> (pair index, pole).
    pub polar: HashMap<&'static str, (usize, bool)>,
    /// Function word -> bit set of the [`LANGUAGES`] it belongs to.
    pub languages: HashMap<&'static str, u32>,
}

/// The shared [`Lexicon`].
pub(crate) fn lexicon() -> &'static Lexicon {
    static LEXICON: OnceLock<Lexicon> = OnceLock::new();
    LEXICON.get_or_init(|| {
        let mut polar = HashMap::new();
        for (idx, (pos, neg)) in POLAR.iter().enumerate() {
            for w in pos.iter() {
                polar.entry(*w).or_insert((idx, true));
            }
            for w in neg.iter() {
                polar.entry(*w).or_insert((idx, false));
            }
        }
        let mut languages: HashMap<&'static str, u32> = HashMap::new();
        for (bit, (_, words)) in LANGUAGES.iter().enumerate() {
            for w in words.iter() {
                *languages.entry(*w).or_insert(0) |= 1 << bit;
            }
        }
        let mut synonyms = HashMap::new();
        for (head, alts) in SYNONYMS {
            for alt in alts.iter() {
                synonyms.insert(*alt, *head);
            }
        }
        Lexicon {
            filler: FILLER.iter().copied().collect(),
            negators: NEGATORS.iter().copied().collect(),
            cardinals: CARDINALS.iter().copied().collect(),
            ordinals: ORDINALS.iter().copied().collect(),
            multipliers: MULTIPLIERS.iter().copied().collect(),
            synonyms,
            polar,
            languages,
        }
    })
}
