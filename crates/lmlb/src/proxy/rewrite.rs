//! Finding and replacing the top-level `model` of a JSON request body, leaving every other byte
//! exactly as the client sent it.

use std::ops::Range;

use bytes::Bytes;
use std::borrow::Cow;
use std::fmt;
use std::marker::PhantomData;

use serde::Deserialize;
use serde::de::{self, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

use crate::error::ApiError;

/// The fields lmlb reads from a request body.
#[derive(Debug, PartialEq)]
pub struct RequestFields<'a> {
    /// Borrowed from the body unless it had to be unescaped.
    pub model: Cow<'a, str>,
    /// `"stream": true` at the top level.
    pub stream: bool,
    /// Byte range of the `model` value, quotes included.
    pub model_span: Range<usize>,
}

/// The only fields lmlb deserializes; serde skips (and thereby validates) everything else, and
/// rejects a duplicated `model`.
#[derive(Deserialize)]
struct Envelope<'a> {
    #[serde(borrow)]
    model: Option<Field<'a>>,
    stream: Option<Field<'a>>,
}

/// A field's value as far as lmlb cares: a string, `true`, or anything else.
enum Field<'a> {
    Text(Cow<'a, str>),
    True,
    Other,
}

impl<'de: 'a, 'a> Deserialize<'de> for Field<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(FieldVisitor(PhantomData))
    }
}

struct FieldVisitor<'a>(PhantomData<&'a ()>);

impl<'de: 'a, 'a> Visitor<'de> for FieldVisitor<'a> {
    type Value = Field<'a>;

    fn expecting(&self, formatter: &mut fmt::Formatter) -> fmt::Result {
        formatter.write_str("any JSON value")
    }

    fn visit_borrowed_str<E: de::Error>(self, value: &'de str) -> Result<Field<'a>, E> {
        Ok(Field::Text(Cow::Borrowed(value)))
    }

    fn visit_str<E: de::Error>(self, value: &str) -> Result<Field<'a>, E> {
        Ok(Field::Text(Cow::Owned(value.to_string())))
    }

    fn visit_bool<E: de::Error>(self, value: bool) -> Result<Field<'a>, E> {
        Ok(if value { Field::True } else { Field::Other })
    }

    fn visit_i64<E: de::Error>(self, _: i64) -> Result<Field<'a>, E> {
        Ok(Field::Other)
    }

    fn visit_u64<E: de::Error>(self, _: u64) -> Result<Field<'a>, E> {
        Ok(Field::Other)
    }

    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Field<'a>, E> {
        Ok(Field::Other)
    }

    fn visit_unit<E: de::Error>(self) -> Result<Field<'a>, E> {
        Ok(Field::Other)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Field<'a>, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(Field::Other)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Field<'a>, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(Field::Other)
    }
}

/// Validates a body and reads its `model` and `stream` fields.
pub fn inspect(body: &[u8]) -> Result<RequestFields<'_>, ApiError> {
    if let Some(found) = super::scan::scan(body) {
        return Ok(RequestFields {
            model: Cow::Borrowed(found.model),
            stream: found.stream,
            model_span: found.model_span,
        });
    }
    inspect_with_serde(body)
}

/// Validates a body with serde_json, which also words the error for an invalid one.
pub(super) fn inspect_with_serde(body: &[u8]) -> Result<RequestFields<'_>, ApiError> {
    let first = body.iter().copied().find(|b| !b.is_ascii_whitespace());
    match first {
        None => {
            return Err(ApiError::invalid(
                "the request body is empty; expected a JSON object",
            ));
        }
        Some(b'{') => {}
        Some(_) => {
            if serde_json::from_slice::<serde::de::IgnoredAny>(body).is_ok() {
                return Err(ApiError::invalid("the request body must be a JSON object"));
            }
        }
    }

    let envelope: Envelope = serde_json::from_slice(body)
        .map_err(|e| ApiError::invalid(format!("the request body is not valid JSON: {e}")))?;
    let model = match envelope.model {
        Some(Field::Text(model)) => model,
        Some(_) => {
            return Err(ApiError::invalid_model(
                "the \"model\" field must be a string",
            ));
        }
        None => {
            return Err(ApiError::invalid_model(
                "the request body has no \"model\" field",
            ));
        }
    };
    let model_span = find_top_level_value(body, "model")
        .expect("a validated object with a model field has a model value");

    Ok(RequestFields {
        model,
        stream: matches!(envelope.stream, Some(Field::True)),
        model_span,
    })
}

/// A body with the client's `model` replaced, ready to be copied into the upstream request.
pub enum Rewritten<'a> {
    /// Borrowed pieces, in order: a name that needs no escaping goes between plain quotes.
    Pieces([&'a [u8]; 5]),
    /// A rewritten copy, for a name with characters to escape.
    Copy(Bytes),
}

impl Rewritten<'_> {
    /// Returns the pieces of the body in order. Some may be empty.
    pub fn pieces(&self) -> [&[u8]; 5] {
        match self {
            Rewritten::Pieces(pieces) => *pieces,
            Rewritten::Copy(body) => [body, b"", b"", b"", b""],
        }
    }
}

/// Returns `body` with the bytes in `span` replaced by `model` as a JSON string, copying no
/// byte unless the name has characters to escape.
pub fn replace_model<'a>(body: &'a [u8], span: &Range<usize>, model: &'a str) -> Rewritten<'a> {
    let plain = model
        .bytes()
        .all(|byte| byte >= b' ' && byte != b'"' && byte != b'\\');
    if !plain {
        return Rewritten::Copy(rewrite_model(body, span, model));
    }
    Rewritten::Pieces([
        &body[..span.start],
        b"\"",
        model.as_bytes(),
        b"\"",
        &body[span.end..],
    ])
}

/// Returns `body` with the bytes in `span` replaced by `model` as a JSON string.
pub fn rewrite_model(body: &[u8], span: &Range<usize>, model: &str) -> Bytes {
    // Room for the quoted name; only a name with characters to escape makes it grow.
    let mut out = Vec::with_capacity(body.len() - span.len() + model.len() + 2);
    out.extend_from_slice(&body[..span.start]);
    serde_json::to_writer(&mut out, model).expect("a string always serializes");
    out.extend_from_slice(&body[span.end..]);
    Bytes::from(out)
}

/// Byte range of the value of the top-level member `name` in a valid JSON object.
fn find_top_level_value(body: &[u8], name: &str) -> Option<Range<usize>> {
    let mut pos = skip_whitespace(body, 0);
    if body.get(pos) != Some(&b'{') {
        return None;
    }
    pos += 1;
    loop {
        pos = skip_whitespace(body, pos);
        if body.get(pos)? == &b'}' {
            return None;
        }
        let key = pos..skip_string(body, pos)?;
        pos = skip_whitespace(body, key.end);
        pos = skip_whitespace(body, pos + 1); // past ':'
        let value = pos..skip_value(body, pos)?;
        if key_equals(&body[key], name) {
            return Some(value);
        }
        pos = skip_whitespace(body, value.end);
        if body.get(pos)? == &b',' {
            pos += 1;
        }
    }
}

/// Compares a quoted JSON key with `name`, decoding escapes such as `"mod\u0065l"`.
fn key_equals(quoted: &[u8], name: &str) -> bool {
    let inner = &quoted[1..quoted.len() - 1];
    if !inner.contains(&b'\\') {
        return inner == name.as_bytes();
    }
    serde_json::from_slice::<String>(quoted).is_ok_and(|key| key == name)
}

fn skip_whitespace(body: &[u8], mut pos: usize) -> usize {
    while body.get(pos).is_some_and(|b| b.is_ascii_whitespace()) {
        pos += 1;
    }
    pos
}

/// Position just past the string starting at `pos` (the position of its opening quote).
fn skip_string(body: &[u8], mut pos: usize) -> Option<usize> {
    pos += 1;
    loop {
        match body.get(pos)? {
            b'\\' => pos += 2,
            b'"' => return Some(pos + 1),
            _ => pos += 1,
        }
    }
}

/// Position just past the value starting at `pos`.
fn skip_value(body: &[u8], pos: usize) -> Option<usize> {
    match body.get(pos)? {
        b'"' => skip_string(body, pos),
        b'{' | b'[' => skip_container(body, pos),
        _ => {
            let mut end = pos;
            while body
                .get(end)
                .is_some_and(|b| !matches!(b, b',' | b'}' | b']') && !b.is_ascii_whitespace())
            {
                end += 1;
            }
            Some(end)
        }
    }
}

/// Position just past the object or array starting at `pos`, skipping strings so that brackets
/// inside them do not count.
fn skip_container(body: &[u8], mut pos: usize) -> Option<usize> {
    let mut depth = 0usize;
    loop {
        match body.get(pos)? {
            b'"' => {
                pos = skip_string(body, pos)?;
                continue;
            }
            b'{' | b'[' => depth += 1,
            b'}' | b']' => {
                depth -= 1;
                if depth == 0 {
                    return Some(pos + 1);
                }
            }
            _ => {}
        }
        pos += 1;
    }
}

#[cfg(test)]
mod tests;
