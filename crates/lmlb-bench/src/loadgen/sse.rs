//! Server-sent events as OpenAI-compatible servers stream them: `data: {json}`
//! events separated by a blank line, ended by `data: [DONE]`.

/// The kind of one event, as the load generator counts it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SseEvent {
    /// A chunk whose `choices[0].delta.content` is a non-empty string, with the time the
    /// simulator wrote it (its `: sent_us=MICROS` comment, Unix time) when it carries one.
    Token(Option<u64>),
    /// `data: [DONE]`.
    Done,
    /// Any other event: the role chunk, the final empty delta, usage, comments.
    Other,
}

/// Splits a byte stream into events. Frames may cut events anywhere.
#[derive(Debug, Default)]
pub struct SseParser {
    buffer: Vec<u8>,
}

impl SseParser {
    /// Appends `bytes` and returns the events they completed.
    pub fn feed(&mut self, bytes: &[u8]) -> Vec<SseEvent> {
        self.buffer.extend_from_slice(bytes);
        let mut events = Vec::new();
        let mut consumed = 0;
        while let Some(end) = find_event_end(&self.buffer[consumed..]) {
            let event = &self.buffer[consumed..consumed + end.body];
            events.push(classify(event));
            consumed += end.total;
        }
        self.buffer.drain(..consumed);
        events
    }
}

struct EventEnd {
    /// Length of the event without its blank-line separator.
    body: usize,
    /// Length including the separator.
    total: usize,
}

fn find_event_end(bytes: &[u8]) -> Option<EventEnd> {
    let lf = bytes.windows(2).position(|w| w == b"\n\n");
    let crlf = bytes.windows(4).position(|w| w == b"\r\n\r\n");
    match (lf, crlf) {
        (Some(a), Some(b)) if b < a => Some(EventEnd {
            body: b,
            total: b + 4,
        }),
        (Some(a), _) => Some(EventEnd {
            body: a,
            total: a + 2,
        }),
        (None, Some(b)) => Some(EventEnd {
            body: b,
            total: b + 4,
        }),
        (None, None) => None,
    }
}

fn classify(event: &[u8]) -> SseEvent {
    let text = String::from_utf8_lossy(event);
    let data: String = text
        .lines()
        .filter_map(|line| line.strip_prefix("data:"))
        .map(str::trim)
        .collect();
    if data == "[DONE]" {
        return SseEvent::Done;
    }
    let Ok(chunk) = serde_json::from_str::<serde_json::Value>(&data) else {
        return SseEvent::Other;
    };
    let content = chunk
        .pointer("/choices/0/delta/content")
        .and_then(serde_json::Value::as_str);
    match content {
        Some(piece) if !piece.is_empty() => SseEvent::Token(sent_us(&text)),
        _ => SseEvent::Other,
    }
}

/// Reads the simulator's `: sent_us=MICROS` comment line of an event.
fn sent_us(event: &str) -> Option<u64> {
    event
        .lines()
        .find_map(|line| line.strip_prefix(": sent_us="))
        .and_then(|micros| micros.trim().parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    const TOKEN: &str =
        r#"data: {"choices":[{"index":0,"delta":{"content":"Hi"},"finish_reason":null}]}"#;
    const FINAL: &str = r#"data: {"choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}"#;

    #[test]
    fn whole_events_in_one_frame() {
        let mut parser = SseParser::default();
        let frame = format!("{TOKEN}\n\n{TOKEN}\n\n{FINAL}\n\ndata: [DONE]\n\n");
        let events = parser.feed(frame.as_bytes());
        assert_eq!(
            events,
            [
                SseEvent::Token(None),
                SseEvent::Token(None),
                SseEvent::Other,
                SseEvent::Done
            ]
        );
    }

    #[test]
    fn events_split_across_frames() {
        let mut parser = SseParser::default();
        let stream = format!("{TOKEN}\n\ndata: [DONE]\n\n");
        let (a, b) = stream.as_bytes().split_at(20);
        let (b, c) = b.split_at(b.len() - 9);
        assert!(parser.feed(a).is_empty());
        assert_eq!(parser.feed(b), [SseEvent::Token(None)]);
        assert_eq!(parser.feed(c), [SseEvent::Done]);
    }

    #[test]
    fn crlf_separators() {
        let mut parser = SseParser::default();
        let frame = format!("{TOKEN}\r\n\r\ndata: [DONE]\r\n\r\n");
        assert_eq!(
            parser.feed(frame.as_bytes()),
            [SseEvent::Token(None), SseEvent::Done]
        );
    }

    #[test]
    fn stamp_comment_read_with_token() {
        let mut parser = SseParser::default();
        let frame = format!(": sent_us=1733371234567890\n{TOKEN}\n\n{TOKEN}\n\n");
        assert_eq!(
            parser.feed(frame.as_bytes()),
            [
                SseEvent::Token(Some(1_733_371_234_567_890)),
                SseEvent::Token(None)
            ]
        );
    }

    #[test]
    fn empty_content_and_spaces_after_colon() {
        let mut parser = SseParser::default();
        let empty = r#"data: {"choices":[{"delta":{"role":"assistant","content":""}}]}"#;
        let spaced = r#"data: {"choices": [{"delta": {"content": "x"}}]}"#;
        let frame = format!("{empty}\n\n{spaced}\n\n: keep-alive comment\n\n");
        assert_eq!(
            parser.feed(frame.as_bytes()),
            [SseEvent::Other, SseEvent::Token(None), SseEvent::Other]
        );
    }
}
