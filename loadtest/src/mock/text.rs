//! Deterministic content: the reply tokens, prompt-token estimates and embedding vectors.

/// Words used when the prompt has none.
const FILLER: [&str; 8] = [
    "lorem",
    "ipsum",
    "dolor",
    "sit",
    "amet",
    "consectetur",
    "adipiscing",
    "elit",
];

/// Longest word kept from the prompt, so a token stays token-sized.
const MAX_WORD: usize = 24;

/// The reply as `count` tokens: "Echo:" then the words of `prompt`, cycled.
/// Same prompt and count, same tokens: caches and tests can rely on it.
pub fn reply_tokens(prompt: &str, count: u32) -> Vec<String> {
    tokens_after("Echo:", prompt, count)
}

/// The reply tokens: the scripted reply (`x-mock-replies`) cut into pieces of a few
/// characters, so a stream splits it across events; else [`reply_tokens`].
pub fn reply_or_scripted(scripted: Option<&str>, prompt: &str, count: u32) -> Vec<String> {
    let Some(text) = scripted else {
        return reply_tokens(prompt, count);
    };
    let mut tokens = Vec::new();
    let mut piece = String::new();
    for c in text.chars() {
        piece.push(c);
        if piece.len() >= 4 {
            tokens.push(std::mem::take(&mut piece));
        }
    }
    if !piece.is_empty() || tokens.is_empty() {
        tokens.push(piece);
    }
    tokens
}

/// The answer to a tool result: "Tool result:" then the words of `result`; at least
/// `count` tokens (cycling the words), and enough to hold every word once.
pub fn tool_result_tokens(result: &str, count: u32) -> Vec<String> {
    let words = u32::try_from(result.split_whitespace().count()).unwrap_or(u32::MAX);
    tokens_after("Tool result:", result, count.max(words.saturating_add(1)))
}

/// `count` tokens: `lead` then the words of `prompt`, cycled (filler words when none).
fn tokens_after(lead: &str, prompt: &str, count: u32) -> Vec<String> {
    let words: Vec<&str> = prompt
        .split_whitespace()
        .map(|w| truncate_word(w, MAX_WORD))
        .collect();
    (0..count as usize)
        .map(|i| {
            if i == 0 {
                lead.to_string()
            } else if words.is_empty() {
                format!(" {}", FILLER[(i - 1) % FILLER.len()])
            } else {
                format!(" {}", words[(i - 1) % words.len()])
            }
        })
        .collect()
}

fn truncate_word(word: &str, max: usize) -> &str {
    if word.len() <= max {
        return word;
    }
    let mut end = max;
    while !word.is_char_boundary(end) {
        end -= 1;
    }
    &word[..end]
}

/// A rough token count for `chars` characters of text (about 4 per token, at least 1).
pub fn estimate_tokens(chars: usize) -> u32 {
    u32::try_from(chars.div_ceil(4).max(1)).unwrap_or(u32::MAX)
}

/// A unit-length vector of `dimensions` floats derived from a hash of `input`.
pub fn embedding_vector(input: &[u8], dimensions: usize) -> Vec<f32> {
    // FNV-1a seed, then xorshift64* per component.
    let mut state = input.iter().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3)
    });
    if state == 0 {
        state = 0x9e37_79b9_7f4a_7c15;
    }
    let mut v: Vec<f32> = (0..dimensions)
        .map(|_| {
            state ^= state >> 12;
            state ^= state << 25;
            state ^= state >> 27;
            let x = state.wrapping_mul(0x2545_f491_4f6c_dd1d);
            ((x >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
        })
        .collect();
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    if norm > 0.0 {
        v.iter_mut().for_each(|x| *x /= norm);
    }
    v
}

/// Standard base64 (with padding), for `encoding_format: "base64"` embeddings.
pub fn base64_encode(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for (i, shift) in [18u32, 12, 6, 0].iter().enumerate() {
            if i <= chunk.len() {
                out.push(ALPHABET[((n >> shift) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reply_is_deterministic_and_sized() {
        let a = reply_tokens("hello big world", 5);
        assert_eq!(a, vec!["Echo:", " hello", " big", " world", " hello"]);
        assert_eq!(reply_tokens("", 2), vec!["Echo:", " lorem"]);
        assert!(reply_tokens("x", 0).is_empty());
    }

    #[test]
    fn embeddings_are_unit_and_deterministic() {
        let a = embedding_vector(b"abc", 8);
        assert_eq!(a, embedding_vector(b"abc", 8));
        assert_ne!(a, embedding_vector(b"abd", 8));
        let norm: f32 = a.iter().map(|x| x * x).sum();
        assert!((norm - 1.0).abs() < 1e-4);
    }

    #[test]
    fn base64_matches_rfc4648_vectors() {
        assert_eq!(base64_encode(b""), "");
        assert_eq!(base64_encode(b"f"), "Zg==");
        assert_eq!(base64_encode(b"fo"), "Zm8=");
        assert_eq!(base64_encode(b"foobar"), "Zm9vYmFy");
    }
}
