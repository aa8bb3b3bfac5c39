//! LM Studio 0.4's native chat endpoint, `POST /api/v1/chat` (body: `model`, `input`,
//! optional `system_prompt`, `stream`, `max_output_tokens`).
//!
//! The answer has `model_instance_id`, `output` (one `message` item), `stats` and
//! `response_id`. A stream sends `chat.start`, `prompt_processing.start`,
//! `prompt_processing.end`, `message.start`, one `message.delta` per token, `message.end`
//! and `chat.end`, whose `result` is the non-streaming answer.

use std::time::Duration;

use serde_json::{Value, json};

use super::inference::Reply;
use crate::generation::Generated;
use crate::sse;
use crate::stream::{EventEncoder, StreamEnd};

struct Totals<'a> {
    text: &'a str,
    prompt_tokens: u32,
    completion_tokens: u32,
    time_to_first_token: Duration,
    generation_time: Duration,
}

fn result(reply: &Reply, totals: &Totals<'_>) -> Value {
    let generation_secs = totals.generation_time.as_secs_f64();
    let rate = if generation_secs > 0.0 {
        f64::from(totals.completion_tokens.saturating_sub(1)) / generation_secs
    } else {
        0.0
    };
    json!({
        "model_instance_id": &*reply.model,
        "output": [{"type": "message", "content": totals.text}],
        "stats": {
            "input_tokens": totals.prompt_tokens,
            "total_output_tokens": totals.completion_tokens,
            "reasoning_output_tokens": 0,
            "tokens_per_second": rate,
            "time_to_first_token_seconds": totals.time_to_first_token.as_secs_f64(),
        },
        "response_id": reply.id,
    })
}

pub(crate) fn json(reply: &Reply, generated: &Generated) -> Vec<u8> {
    let totals = Totals {
        text: &generated.text,
        prompt_tokens: generated.prompt_tokens,
        completion_tokens: generated.tokens,
        time_to_first_token: generated.time_to_first_token,
        generation_time: generated.generation_time,
    };
    let mut body = Vec::with_capacity(256 + generated.text.len());
    sse::write_json(&mut body, &result(reply, &totals));
    body
}

pub(crate) struct Encoder {
    reply: Reply,
    text: String,
}

impl Encoder {
    pub fn new(reply: Reply) -> Self {
        Self {
            reply,
            text: String::new(),
        }
    }
}

/// Writes an event whose data is `fields` plus `type`.
fn write(out: &mut Vec<u8>, kind: &str, mut fields: Value) {
    fields["type"] = json!(kind);
    sse::write_event(out, kind, &fields);
}

impl EventEncoder for Encoder {
    fn open(&mut self, out: &mut Vec<u8>) {
        let instance = json!({"model_instance_id": &*self.reply.model});
        write(out, "chat.start", instance);
        write(out, "prompt_processing.start", json!({}));
        write(out, "prompt_processing.end", json!({}));
        write(out, "message.start", json!({}));
    }

    fn token(&mut self, text: &str, out: &mut Vec<u8>) {
        self.text.push_str(text);
        write(out, "message.delta", json!({"content": text}));
    }

    fn close(&mut self, end: &StreamEnd, out: &mut Vec<u8>) {
        write(out, "message.end", json!({}));
        let totals = Totals {
            text: &self.text,
            prompt_tokens: end.prompt_tokens,
            completion_tokens: end.completion_tokens,
            time_to_first_token: end.time_to_first_token,
            generation_time: end.generation_time,
        };
        let result = result(&self.reply, &totals);
        write(out, "chat.end", json!({"result": result}));
    }
}
