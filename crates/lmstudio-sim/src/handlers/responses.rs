//! OpenAI's Responses API (`POST /v1/responses`), which LM Studio serves since 0.3.29.
//!
//! A stream sends `response.created`, `response.in_progress`, `response.output_item.added`,
//! `response.content_part.added`, one `response.output_text.delta` per token, then
//! `response.output_text.done`, `response.content_part.done`, `response.output_item.done`
//! and `response.completed` (or `response.incomplete` when the token limit was reached).
//! Every event carries `type` and `sequence_number`. There is no `[DONE]`.

use serde_json::{Value, json};

use super::inference::Reply;
use crate::generation::{Finish, Generated};
use crate::sse;
use crate::stream::{EventEncoder, StreamEnd};
use crate::text::new_id;

pub(crate) fn json(reply: &Reply, generated: &Generated) -> Vec<u8> {
    let item_id = new_id("msg_");
    let end = Totals {
        finish: generated.finish,
        prompt_tokens: generated.prompt_tokens,
        completion_tokens: generated.tokens,
    };
    let response = response_object(reply, &item_id, Some(&generated.text), Some(&end));
    let mut body = Vec::with_capacity(512 + generated.text.len());
    sse::write_json(&mut body, &response);
    body
}

struct Totals {
    finish: Finish,
    prompt_tokens: u32,
    completion_tokens: u32,
}

/// The response object; `text` and `totals` are none while it is in progress.
fn response_object(
    reply: &Reply,
    item_id: &str,
    text: Option<&str>,
    totals: Option<&Totals>,
) -> Value {
    let (status, incomplete_details) = match totals.map(|totals| totals.finish) {
        None => ("in_progress", Value::Null),
        Some(Finish::Stop) => ("completed", Value::Null),
        Some(Finish::Length) => ("incomplete", json!({"reason": "max_output_tokens"})),
    };
    let output = match text {
        Some(text) => json!([message_item(item_id, "completed", Some(text))]),
        None => json!([]),
    };
    let usage = totals.map_or(Value::Null, |totals| {
        json!({
            "input_tokens": totals.prompt_tokens,
            "output_tokens": totals.completion_tokens,
            "total_tokens": totals.prompt_tokens + totals.completion_tokens,
        })
    });
    json!({
        "id": reply.id,
        "object": "response",
        "created_at": reply.created,
        "status": status,
        "error": null,
        "incomplete_details": incomplete_details,
        "model": &*reply.model,
        "output": output,
        "usage": usage,
    })
}

fn message_item(item_id: &str, status: &str, text: Option<&str>) -> Value {
    let content = match text {
        Some(text) => json!([output_text(text)]),
        None => json!([]),
    };
    json!({
        "id": item_id,
        "type": "message",
        "status": status,
        "role": "assistant",
        "content": content,
    })
}

fn output_text(text: &str) -> Value {
    json!({"type": "output_text", "text": text, "annotations": []})
}

pub(crate) struct Encoder {
    reply: Reply,
    item_id: String,
    text: String,
    sequence: u64,
}

impl Encoder {
    pub fn new(reply: Reply) -> Self {
        Self {
            reply,
            item_id: new_id("msg_"),
            text: String::new(),
            sequence: 0,
        }
    }

    /// Writes an event of `kind` whose data is `fields` plus `type` and `sequence_number`.
    fn write(&mut self, out: &mut Vec<u8>, kind: &str, mut fields: Value) {
        fields["type"] = json!(kind);
        fields["sequence_number"] = json!(self.sequence);
        self.sequence += 1;
        sse::write_event(out, kind, &fields);
    }

    fn part_fields(&self, extra: Value) -> Value {
        let mut fields = json!({"item_id": self.item_id, "output_index": 0, "content_index": 0});
        if let (Value::Object(fields), Value::Object(extra)) = (&mut fields, extra) {
            fields.extend(extra);
        }
        fields
    }
}

impl EventEncoder for Encoder {
    fn open(&mut self, out: &mut Vec<u8>) {
        let response = response_object(&self.reply, &self.item_id, None, None);
        self.write(out, "response.created", json!({"response": response}));
        self.write(out, "response.in_progress", json!({"response": response}));
        let item = message_item(&self.item_id, "in_progress", None);
        self.write(
            out,
            "response.output_item.added",
            json!({"output_index": 0, "item": item}),
        );
        let part = self.part_fields(json!({"part": output_text("")}));
        self.write(out, "response.content_part.added", part);
    }

    fn token(&mut self, text: &str, out: &mut Vec<u8>) {
        self.text.push_str(text);
        let delta = self.part_fields(json!({"delta": text}));
        self.write(out, "response.output_text.delta", delta);
    }

    fn close(&mut self, end: &StreamEnd, out: &mut Vec<u8>) {
        let text = std::mem::take(&mut self.text);
        let done = self.part_fields(json!({"text": text}));
        self.write(out, "response.output_text.done", done);
        let part = self.part_fields(json!({"part": output_text(&text)}));
        self.write(out, "response.content_part.done", part);
        let item = message_item(&self.item_id, "completed", Some(&text));
        self.write(
            out,
            "response.output_item.done",
            json!({"output_index": 0, "item": item}),
        );

        let totals = Totals {
            finish: end.finish,
            prompt_tokens: end.prompt_tokens,
            completion_tokens: end.completion_tokens,
        };
        let response = response_object(&self.reply, &self.item_id, Some(&text), Some(&totals));
        let kind = match end.finish {
            Finish::Stop => "response.completed",
            Finish::Length => "response.incomplete",
        };
        self.write(out, kind, json!({"response": response}));
    }
}
