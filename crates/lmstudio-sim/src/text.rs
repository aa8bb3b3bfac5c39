//! Deterministic text: prompt token counts, generated words, embedding vectors and ids.
//!
//! A prompt token is a whitespace-separated word of the request's text fields. A generated
//! token is one word with a leading space, drawn from a fixed list by a generator seeded with
//! a hash of the prompt, so the same prompt always yields the same text.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::Value;

/// Length of an embedding vector, as nomic-embed-text-v1.5's.
pub(crate) const EMBEDDING_DIMENSIONS: usize = 768;

const WORDS: [&str; 64] = [
    " the",
    " model",
    " answers",
    " slowly",
    " with",
    " tokens",
    " from",
    " a",
    " simulated",
    " server",
    " that",
    " keeps",
    " every",
    " slot",
    " busy",
    " until",
    " it",
    " ends",
    " and",
    " then",
    " frees",
    " one",
    " for",
    " next",
    " request",
    " in",
    " queue",
    " while",
    " stream",
    " flows",
    " over",
    " wire",
    " each",
    " word",
    " is",
    " token",
    " so",
    " counts",
    " stay",
    " honest",
    " when",
    " clients",
    " read",
    " them",
    " back",
    " as",
    " text",
    " lines",
    " data",
    " events",
    " load",
    " balancer",
    " picks",
    " an",
    " idle",
    " instance",
    " quickly",
    " of",
    " many",
    " copies",
    " small",
    " fast",
    " local",
    " cache",
];

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0100_0000_01b3;

/// A request's prompt, reduced to what generation and usage need.
pub(crate) struct Prompt {
    /// Prompt tokens, as reported in `usage`.
    pub tokens: u32,
    /// Seed of the generated text.
    pub seed: u64,
    /// Hash of each prompt token, kept only when prompt processing is simulated.
    pub token_hashes: Option<Arc<[u64]>>,
}

/// Builds a [`Prompt`] from the strings of a request body.
pub(crate) struct PromptBuilder {
    tokens: u32,
    seed: u64,
    hashes: Option<Vec<u64>>,
}

impl PromptBuilder {
    pub fn new(keep_hashes: bool) -> Self {
        Self {
            tokens: 0,
            seed: FNV_OFFSET,
            hashes: keep_hashes.then(Vec::new),
        }
    }

    pub fn add_text(&mut self, text: &str) {
        for word in text.split_whitespace() {
            let hash = fnv1a(word.as_bytes());
            self.tokens += 1;
            self.seed = (self.seed ^ hash).wrapping_mul(FNV_PRIME);
            if let Some(hashes) = &mut self.hashes {
                hashes.push(hash);
            }
        }
    }

    /// Adds every string in a JSON value: plain strings, arrays of them, and the `text` and
    /// `content` fields of objects (message parts and messages).
    pub fn add_value(&mut self, value: &Value) {
        match value {
            Value::String(text) => self.add_text(text),
            Value::Array(items) => items.iter().for_each(|item| self.add_value(item)),
            Value::Object(fields) => {
                for key in ["text", "content"] {
                    if let Some(inner) = fields.get(key) {
                        self.add_value(inner);
                    }
                }
            }
            Value::Null | Value::Bool(_) | Value::Number(_) => {}
        }
    }

    pub fn finish(self) -> Prompt {
        Prompt {
            tokens: self.tokens,
            seed: self.seed,
            token_hashes: self.hashes.map(Arc::from),
        }
    }
}

/// The generated tokens of one request.
pub(crate) struct Words {
    state: u64,
}

impl Words {
    pub fn new(seed: u64) -> Self {
        Self { state: seed }
    }

    pub fn next_word(&mut self) -> &'static str {
        let value = splitmix64(&mut self.state);
        WORDS[(value % WORDS.len() as u64) as usize]
    }
}

/// Returns the text of `count` generated tokens.
pub(crate) fn generate_text(seed: u64, count: u32) -> String {
    let mut words = Words::new(seed);
    let mut text = String::with_capacity(count as usize * 8);
    for _ in 0..count {
        text.push_str(words.next_word());
    }
    text
}

/// Returns a unit-length vector derived from the text.
pub(crate) fn embedding(text: &str) -> Vec<f32> {
    let mut state = fnv1a(text.as_bytes());
    let mut vector: Vec<f32> = (0..EMBEDDING_DIMENSIONS)
        .map(|_| {
            let bits = splitmix64(&mut state) >> 40;
            (bits as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
        })
        .collect();
    let norm = vector.iter().map(|x| x * x).sum::<f32>().sqrt();
    if norm > 0.0 {
        vector.iter_mut().for_each(|x| *x /= norm);
    }
    vector
}

/// Returns `prefix` followed by 21 lowercase letters and digits, like LM Studio's
/// `chatcmpl-i3gkjwthhw96whukek9tz`. Ids differ within a process and look random.
pub(crate) fn new_id(prefix: &str) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0x5eed);
    const ALPHABET: &[u8; 36] = b"abcdefghijklmnopqrstuvwxyz0123456789";

    let mut state = COUNTER.fetch_add(1, Ordering::Relaxed);
    let mut id = String::with_capacity(prefix.len() + 21);
    id.push_str(prefix);
    let mut value = splitmix64(&mut state);
    for index in 0..21 {
        if index == 12 {
            value = splitmix64(&mut state);
        }
        id.push(ALPHABET[(value % 36) as usize] as char);
        value /= 36;
    }
    id
}

/// Seconds since the Unix epoch, for `created` fields.
pub(crate) fn unix_time() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_secs())
}

fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(FNV_OFFSET, |hash, &byte| {
        (hash ^ u64::from(byte)).wrapping_mul(FNV_PRIME)
    })
}

fn splitmix64(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn prompt_counts_words_of_nested_content() {
        let mut builder = PromptBuilder::new(true);
        builder.add_value(&json!([
            {"role": "system", "content": "be brief"},
            {"role": "user", "content": [{"type": "text", "text": "hello  there\nfriend"}]}
        ]));
        let prompt = builder.finish();
        assert_eq!(prompt.tokens, 5);
        assert_eq!(prompt.token_hashes.unwrap().len(), 5);
    }

    #[test]
    fn generation_is_deterministic_and_prefix_stable() {
        let long = generate_text(42, 10);
        let short = generate_text(42, 4);
        assert!(long.starts_with(&short));
        assert_eq!(long.split_whitespace().count(), 10);
        assert_ne!(generate_text(43, 10), long);
    }

    #[test]
    fn embedding_is_unit_length_and_deterministic() {
        let vector = embedding("hello");
        assert_eq!(vector.len(), EMBEDDING_DIMENSIONS);
        let norm: f32 = vector.iter().map(|x| x * x).sum::<f32>().sqrt();
        assert!((norm - 1.0).abs() < 1e-3);
        assert_eq!(vector, embedding("hello"));
        assert_ne!(vector, embedding("world"));
    }

    #[test]
    fn ids_look_like_lm_studio() {
        let id = new_id("chatcmpl-");
        assert_eq!(id.len(), "chatcmpl-".len() + 21);
        assert_ne!(id, new_id("chatcmpl-"));
    }
}
