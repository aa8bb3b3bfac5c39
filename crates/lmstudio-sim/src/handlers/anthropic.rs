//! Anthropic's Messages API (`POST /v1/messages`), which LM Studio serves since 0.4.1.
//!
//! A stream sends `message_start`, `content_block_start`, `ping`, one `content_block_delta`
//! per token, then `content_block_stop`, `message_delta` (with the stop reason and output
//! tokens) and `message_stop`.

use serde_json::{Value, json};

use super::inference::Reply;
use crate::generation::{Finish, Generated};
use crate::sse;
use crate::stream::{EventEncoder, StreamEnd};

fn stop_reason(finish: Finish) -> &'static str {
    match finish {
        Finish::Length => "max_tokens",
        Finish::Stop => "end_turn",
    }
}

pub(crate) fn json(reply: &Reply, generated: &Generated) -> Vec<u8> {
    let message = json!({
        "id": reply.id,
        "type": "message",
        "role": "assistant",
        "model": &*reply.model,
        "content": [{"type": "text", "text": generated.text}],
        "stop_reason": stop_reason(generated.finish),
        "stop_sequence": null,
        "usage": {"input_tokens": generated.prompt_tokens, "output_tokens": generated.tokens},
    });
    let mut body = Vec::with_capacity(256 + generated.text.len());
    sse::write_json(&mut body, &message);
    body
}

pub(crate) struct Encoder {
    reply: Reply,
}

impl Encoder {
    pub fn new(reply: Reply) -> Self {
        Self { reply }
    }
}

/// Writes an event whose data is `fields` plus `type`.
fn write(out: &mut Vec<u8>, kind: &str, mut fields: Value) {
    fields["type"] = json!(kind);
    sse::write_event(out, kind, &fields);
}

impl EventEncoder for Encoder {
    fn open(&mut self, out: &mut Vec<u8>) {
        let message = json!({
            "id": self.reply.id,
            "type": "message",
            "role": "assistant",
            "model": &*self.reply.model,
            "content": [],
            "stop_reason": null,
            "stop_sequence": null,
            "usage": {"input_tokens": self.reply.prompt_tokens, "output_tokens": 0},
        });
        write(out, "message_start", json!({"message": message}));
        let block = json!({"index": 0, "content_block": {"type": "text", "text": ""}});
        write(out, "content_block_start", block);
        write(out, "ping", json!({}));
    }

    fn token(&mut self, text: &str, out: &mut Vec<u8>) {
        let delta = json!({"index": 0, "delta": {"type": "text_delta", "text": text}});
        write(out, "content_block_delta", delta);
    }

    fn close(&mut self, end: &StreamEnd, out: &mut Vec<u8>) {
        write(out, "content_block_stop", json!({"index": 0}));
        let delta = json!({
            "delta": {"stop_reason": stop_reason(end.finish), "stop_sequence": null},
            "usage": {"input_tokens": end.prompt_tokens, "output_tokens": end.completion_tokens},
        });
        write(out, "message_delta", delta);
        write(out, "message_stop", json!({}));
    }
}
