//! A single pass over a request body that validates its JSON and finds the top-level `model` and
//! `stream`, for the common case.
//!
//! serde_json remains the judge. This scan returns `None` for invalid JSON. It also returns
//! `None` for valid JSON that it leaves to serde_json: escapes in keys or in `model`, a surrogate
//! escape, a very long or large number, deep nesting, or a repeated `model` or `stream`.
//! The caller then inspects the body with serde_json, which makes the decision and writes the error
//! message. So the scan must never accept a body that serde_json rejects, and when it accepts
//! one, it must read the same fields.

use std::ops::Range;

/// Nesting depth past which the scan leaves the body to serde_json (whose limit is 128).
const MAX_DEPTH: usize = 100;

/// Maximum length of a number that the scan reads itself. Longer ones could overflow `f64`,
/// which serde_json rejects.
const MAX_NUMBER: usize = 64;

/// Bytes that end a run of plain string content: the closing quote, a backslash, and the
/// control characters that JSON strings may not contain.
static STOPS_STRING: [bool; 256] = {
    let mut stops = [false; 256];
    let mut byte = 0;
    while byte < 0x20 {
        stops[byte] = true;
        byte += 1;
    }
    stops[b'"' as usize] = true;
    stops[b'\\' as usize] = true;
    stops
};

/// The fields that the scan found in a valid body.
#[derive(Debug, PartialEq)]
pub struct Scanned<'a> {
    pub model: &'a str,
    /// Byte range of the `model` value, quotes included.
    pub model_span: Range<usize>,
    /// `"stream": true` at the top level.
    pub stream: bool,
}

/// Validates `body` as a JSON object and reads its `model` and `stream`, or returns `None` for
/// serde_json to decide.
pub fn scan(body: &[u8]) -> Option<Scanned<'_>> {
    let text = std::str::from_utf8(body).ok()?;
    let mut scanner = Scanner {
        bytes: body,
        pos: 0,
    };
    let found = scanner.top_level_object()?;
    scanner.skip_whitespace();
    if scanner.pos != body.len() {
        return None;
    }
    let span = found.model?;
    Some(Scanned {
        model: &text[span.start + 1..span.end - 1],
        model_span: span,
        stream: found.stream,
    })
}

struct Scanner<'a> {
    bytes: &'a [u8],
    pos: usize,
}

/// The top-level fields the scan looks for.
#[derive(Default)]
struct Found {
    model: Option<Range<usize>>,
    stream: bool,
    stream_seen: bool,
}

impl Scanner<'_> {
    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.pos).copied()
    }

    fn skip_whitespace(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.pos += 1;
        }
    }

    fn expect(&mut self, byte: u8) -> Option<()> {
        self.skip_whitespace();
        (self.peek()? == byte).then(|| self.pos += 1)
    }

    /// Reads the top-level object, noting `model` (a string without escapes) and `stream`.
    fn top_level_object(&mut self) -> Option<Found> {
        let mut found = Found::default();
        self.expect(b'{')?;
        self.skip_whitespace();
        if self.peek()? == b'}' {
            self.pos += 1;
            return Some(found);
        }
        loop {
            self.skip_whitespace();
            let key = self.string()?;
            let key = &self.bytes[key.start + 1..key.end - 1];
            if key.contains(&b'\\') {
                return None;
            }
            self.expect(b':')?;
            self.skip_whitespace();
            let value = self.value(1)?;
            match key {
                b"model" if found.model.is_none() => {
                    let raw = &self.bytes[value.clone()];
                    if raw.first() != Some(&b'"') || raw.contains(&b'\\') {
                        return None;
                    }
                    found.model = Some(value);
                }
                b"stream" if !found.stream_seen => {
                    found.stream_seen = true;
                    found.stream = &self.bytes[value] == b"true";
                }
                b"model" | b"stream" => return None,
                _ => {}
            }
            self.skip_whitespace();
            match self.peek()? {
                b',' => self.pos += 1,
                b'}' => {
                    self.pos += 1;
                    return Some(found);
                }
                _ => return None,
            }
        }
    }

    /// Skips one value at `depth`, returning its byte range.
    fn value(&mut self, depth: usize) -> Option<Range<usize>> {
        if depth > MAX_DEPTH {
            return None;
        }
        let start = self.pos;
        match self.peek()? {
            b'"' => return self.string(),
            b'{' => self.object(depth)?,
            b'[' => self.array(depth)?,
            b't' => self.literal(b"true")?,
            b'f' => self.literal(b"false")?,
            b'n' => self.literal(b"null")?,
            b'-' | b'0'..=b'9' => self.number()?,
            _ => return None,
        }
        Some(start..self.pos)
    }

    fn object(&mut self, depth: usize) -> Option<()> {
        self.pos += 1;
        self.skip_whitespace();
        if self.peek()? == b'}' {
            self.pos += 1;
            return Some(());
        }
        loop {
            self.skip_whitespace();
            self.string()?;
            self.expect(b':')?;
            self.skip_whitespace();
            self.value(depth + 1)?;
            self.skip_whitespace();
            match self.peek()? {
                b',' => self.pos += 1,
                b'}' => {
                    self.pos += 1;
                    return Some(());
                }
                _ => return None,
            }
        }
    }

    fn array(&mut self, depth: usize) -> Option<()> {
        self.pos += 1;
        self.skip_whitespace();
        if self.peek()? == b']' {
            self.pos += 1;
            return Some(());
        }
        loop {
            self.skip_whitespace();
            self.value(depth + 1)?;
            self.skip_whitespace();
            match self.peek()? {
                b',' => self.pos += 1,
                b']' => {
                    self.pos += 1;
                    return Some(());
                }
                _ => return None,
            }
        }
    }

    fn literal(&mut self, word: &[u8]) -> Option<()> {
        let end = self.pos + word.len();
        (self.bytes.get(self.pos..end)? == word).then(|| self.pos = end)
    }

    /// Reads a string, quotes included. Control characters and unknown escapes are invalid;
    /// surrogate escapes are left to serde_json.
    fn string(&mut self) -> Option<Range<usize>> {
        let start = self.pos;
        if self.peek()? != b'"' {
            return None;
        }
        self.pos += 1;
        loop {
            let rest = self.bytes.get(self.pos..)?;
            self.pos += plain_run(rest)?;
            match self.bytes[self.pos] {
                b'"' => {
                    self.pos += 1;
                    return Some(start..self.pos);
                }
                b'\\' => self.escape()?,
                _ => return None,
            }
        }
    }

    fn escape(&mut self) -> Option<()> {
        match *self.bytes.get(self.pos + 1)? {
            b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't' => {
                self.pos += 2;
                Some(())
            }
            b'u' => {
                let hex = self.bytes.get(self.pos + 2..self.pos + 6)?;
                let text = std::str::from_utf8(hex).ok()?;
                let unit = u16::from_str_radix(text, 16).ok()?;
                if !hex.iter().all(u8::is_ascii_hexdigit) || (0xd800..0xe000).contains(&unit) {
                    return None;
                }
                self.pos += 6;
                Some(())
            }
            _ => None,
        }
    }

    /// Reads a number by JSON's grammar: `-? (0 | [1-9][0-9]*) (. [0-9]+)? ([eE] [+-]? [0-9]+)?`.
    fn number(&mut self) -> Option<()> {
        let start = self.pos;
        if self.peek() == Some(b'-') {
            self.pos += 1;
        }
        match self.peek()? {
            b'0' => self.pos += 1,
            b'1'..=b'9' => self.digits(),
            _ => return None,
        }
        if self.peek() == Some(b'.') {
            self.pos += 1;
            self.digits_required()?;
        }
        if matches!(self.peek(), Some(b'e' | b'E')) {
            self.pos += 1;
            if matches!(self.peek(), Some(b'+' | b'-')) {
                self.pos += 1;
            }
            let exponent = self.pos;
            self.digits_required()?;
            // Two digits at most, so that the value stays far inside f64's range.
            if self.pos - exponent > 2 {
                return None;
            }
        }
        (self.pos - start <= MAX_NUMBER).then_some(())
    }

    fn digits(&mut self) {
        while matches!(self.peek(), Some(b'0'..=b'9')) {
            self.pos += 1;
        }
    }

    fn digits_required(&mut self) -> Option<()> {
        let start = self.pos;
        self.digits();
        (self.pos > start).then_some(())
    }
}

/// Returns the length of the plain string content at the start of `bytes`: the offset of the
/// first byte in [`STOPS_STRING`], or `None` when there is none. Eight bytes are checked at a
/// time, as prompts make up most of a body.
fn plain_run(bytes: &[u8]) -> Option<usize> {
    let mut offset = 0;
    for chunk in bytes.chunks_exact(8) {
        let word = u64::from_le_bytes(chunk.try_into().expect("chunks of eight bytes"));
        if may_stop(word) {
            break;
        }
        offset += 8;
    }
    let rest = &bytes[offset..];
    let found = rest.iter().position(|&byte| STOPS_STRING[byte as usize])?;
    Some(offset + found)
}

/// Returns whether one of the eight bytes in `word` is a quote, a backslash or below a space.
/// The test never misses such a byte, and [`plain_run`] finds which one it is byte by byte.
fn may_stop(word: u64) -> bool {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGHS: u64 = 0x8080_8080_8080_8080;
    // (x - n in every byte) & !x has a high bit set if and only if a byte of x is below n,
    // for n up to 128.
    let below = |x: u64, n: u64| x.wrapping_sub(ONES * n) & !x & HIGHS;
    let control = below(word, 0x20);
    let quote = below(word ^ (ONES * u64::from(b'"')), 1);
    let backslash = below(word ^ (ONES * u64::from(b'\\')), 1);
    control | quote | backslash != 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proxy::rewrite::inspect_with_serde;
    use proptest::prelude::*;
    use serde_json::{Value, json};

    /// Scans `body` and checks the result against serde_json's whenever the scan accepts it.
    fn agreed(body: &[u8]) -> Option<Scanned<'_>> {
        let scanned = scan(body)?;
        let judged = inspect_with_serde(body).unwrap_or_else(|error| {
            panic!(
                "scan accepted what serde_json rejects ({error}): {}",
                String::from_utf8_lossy(body)
            )
        });
        assert_eq!(scanned.model, judged.model);
        assert_eq!(scanned.stream, judged.stream);
        assert_eq!(scanned.model_span, judged.model_span);
        Some(scanned)
    }

    #[test]
    fn reads_a_typical_chat_body() {
        let body = br#" {"messages":[{"role":"user","content":"Hi \"there\"\n"}],"model":"qwen2.5-7b-instruct:2","max_tokens":-1.5e-3,"stream":true,"x":[null,false,{}]} "#;
        let scanned = agreed(body).expect("scanned");
        assert_eq!(scanned.model, "qwen2.5-7b-instruct:2");
        assert!(scanned.stream);
        assert_eq!(&body[scanned.model_span], br#""qwen2.5-7b-instruct:2""#);
    }

    #[test]
    fn stream_is_true_only_for_the_literal() {
        for value in [r#""true""#, "1", "false", "null"] {
            let body = format!(r#"{{"model":"m","stream":{value}}}"#);
            assert!(!agreed(body.as_bytes()).expect("scanned").stream, "{value}");
        }
    }

    #[test]
    fn leaves_unusual_valid_bodies_to_serde() {
        let cases = [
            r#"{"mod\u0065l":"m"}"#,
            r#"{"model":"q\/m"}"#,
            r#"{"model":"m","model":"n"}"#,
            r#"{"model":"m","stream":true,"stream":true}"#,
            r#"{"model":"m","x":"\ud83d\ude00"}"#,
            r#"{"model":"m","x":1e400}"#,
            r#"{"model":5}"#,
            r#"{"messages":[]}"#,
        ];
        for case in cases {
            assert_eq!(scan(case.as_bytes()), None, "{case}");
        }
        let deep = format!(
            r#"{{"model":"m","x":{}{}}}"#,
            "[".repeat(120),
            "]".repeat(120)
        );
        assert_eq!(scan(deep.as_bytes()), None);
    }

    #[test]
    fn rejects_invalid_json() {
        let cases = [
            "",
            "[]",
            r#"{"model":"m",}"#,
            r#"{"model":"m"} x"#,
            r#"{"model":"m","x":01}"#,
            r#"{"model":"m","x":1.}"#,
            r#"{"model":"m","x":-}"#,
            r#"{"model":"m","x":tru}"#,
            r#"{"model":"m","x":"\x"}"#,
            "{\"model\":\"m\",\"x\":\"a\tb\"}",
            r#"{"model":"m" "x":1}"#,
            r#"{'model':'m'}"#,
        ];
        for case in cases {
            assert_eq!(scan(case.as_bytes()), None, "{case}");
        }
    }

    fn json_value() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(Value::from),
            any::<f64>()
                .prop_filter("finite", |x| x.is_finite())
                .prop_map(Value::from),
            "\\PC{0,12}".prop_map(Value::String),
        ];
        leaf.prop_recursive(4, 24, 4, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
                prop::collection::btree_map("[a-z\"\\\\]{0,6}", inner, 0..4)
                    .prop_map(|map| Value::Object(map.into_iter().collect())),
            ]
        })
    }

    fn body() -> impl Strategy<Value = Vec<u8>> {
        (
            "[a-z0-9.:/\\-\"\\\\é]{1,24}",
            json_value(),
            prop::option::of(json_value()),
            any::<bool>(),
        )
            .prop_map(|(model, extra, stream, pretty)| {
                let mut object = json!({ "messages": extra, "model": model });
                if let Some(stream) = stream {
                    object["stream"] = stream;
                }
                if pretty {
                    serde_json::to_vec_pretty(&object).unwrap()
                } else {
                    serde_json::to_vec(&object).unwrap()
                }
            })
    }

    #[test]
    fn plain_run_finds_first_stop_byte() {
        let plain = [b' ', b'a', b'~', 0x7f, 0x80, 0xdc, 0xff, b'/', b'!', b'#'];
        for stop in [b'"', b'\\', 0x00, b'\n', 0x1f] {
            for length in 0..40 {
                for at in 0..=length {
                    let mut bytes: Vec<u8> = (0..length).map(|i| plain[i % plain.len()]).collect();
                    let expected = (at < length).then(|| {
                        bytes[at] = stop;
                        at
                    });
                    assert_eq!(
                        plain_run(&bytes),
                        expected,
                        "stop {stop:#x} at {at} of {length}"
                    );
                }
            }
        }
    }

    proptest! {
        #[test]
        fn valid_bodies_read_as_serde_reads_them(body in body()) {
            agreed(&body);
        }

        #[test]
        fn damaged_bodies_never_pass_the_scan_alone(
            body in body(),
            edits in prop::collection::vec((any::<prop::sample::Index>(), 0u8..4, any::<u8>()), 1..4),
        ) {
            let mut body = body;
            let significant = b"{}[]\",:\\ 0-.etn";
            for (index, kind, byte) in edits {
                let at = index.index(body.len() + 1);
                let byte = significant[byte as usize % significant.len()];
                match kind {
                    0 if at < body.len() => body[at] = byte,
                    1 if at < body.len() => { body.remove(at); }
                    _ => body.insert(at, byte),
                }
            }
            agreed(&body);
        }
    }
}
