//! Server-sent event framing: `data:` frames, named events and the broken frame fault.

use serde::Serialize;

/// Appends `data: JSON` and a blank line.
pub(crate) fn write_data<T: Serialize>(out: &mut Vec<u8>, value: &T) {
    out.extend_from_slice(b"data: ");
    write_json(out, value);
    out.extend_from_slice(b"\n\n");
}

/// Appends `event: NAME`, `data: JSON` and a blank line.
pub(crate) fn write_event<T: Serialize>(out: &mut Vec<u8>, name: &str, value: &T) {
    out.extend_from_slice(b"event: ");
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(b"\n");
    write_data(out, value);
}

/// Appends the comment `: sent_us=MICROS` with the current Unix time in microseconds.
pub fn write_stamp(out: &mut Vec<u8>) {
    let micros = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |since| since.as_micros());
    out.extend_from_slice(format!(": sent_us={micros}\n").as_bytes());
}

/// Appends the `data: [DONE]` frame that ends OpenAI-style streams.
pub(crate) fn write_done(out: &mut Vec<u8>) {
    out.extend_from_slice(b"data: [DONE]\n\n");
}

/// Appends a copy of the last event in `out`, cut in the middle of its `data:` JSON and
/// ended with a blank line, so it parses as an event whose data is not valid JSON.
pub(crate) fn write_broken_copy_of_last_event(out: &mut Vec<u8>) {
    let end = out.len() - if out.ends_with(b"\n\n") { 2 } else { 0 };
    let start = find_last(&out[..end], b"\n\n").map_or(0, |index| index + 2);
    let event = out[start..end].to_vec();
    let Some(data_at) = find_last(&event, b"data: ") else {
        return;
    };
    let json_start = data_at + b"data: ".len();
    let cut = json_start + (event.len() - json_start) / 2;
    out.extend_from_slice(&event[..cut]);
    out.extend_from_slice(b"\n\n");
}

pub(crate) fn write_json<T: Serialize>(out: &mut Vec<u8>, value: &T) {
    // Serializing plain structs into a Vec cannot fail.
    serde_json::to_writer(&mut *out, value).expect("JSON serialization into memory");
}

fn find_last(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack
        .windows(needle.len())
        .rposition(|window| window == needle)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn frames() {
        let mut out = Vec::new();
        write_data(&mut out, &json!({"a": 1}));
        write_event(&mut out, "ping", &json!({"b": 2}));
        write_done(&mut out);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "data: {\"a\":1}\n\nevent: ping\ndata: {\"b\":2}\n\ndata: [DONE]\n\n"
        );
    }

    #[test]
    fn broken_copy_is_cut_json() {
        let mut out = Vec::new();
        write_data(&mut out, &json!({"first": true}));
        write_event(&mut out, "delta", &json!({"text": "hello world"}));
        let before = out.len();
        write_broken_copy_of_last_event(&mut out);
        let copy = std::str::from_utf8(&out[before..]).unwrap();
        assert!(copy.starts_with("event: delta\ndata: {\""), "{copy:?}");
        assert!(copy.ends_with("\n\n"));
        let data = copy.trim_end().split("data: ").nth(1).unwrap();
        assert!(serde_json::from_str::<serde_json::Value>(data).is_err());
    }
}
