//! OpenAI chat completions and text completions, under `/v1` and `/api/v0`.
//!
//! Answers carry the instance id as `model` and `system_fingerprint`, as LM Studio's do.
//! `/api/v0` answers add `stats`, `model_info` and `runtime`; `/v1` answers have an empty
//! `stats` object.

use std::time::Duration;

use serde::Serialize;

use super::inference::Reply;
use super::models::facts;
use crate::generation::{Finish, Generated};
use crate::sse;
use crate::stream::{EventEncoder, StreamEnd};

/// LM Studio's engine name in `/api/v0` answers. This one is made up in LM Studio's style.
const RUNTIME_NAME: &str = "llama.cpp-linux-x86_64-avx2";
const RUNTIME_VERSION: &str = "1.0.0";

#[derive(Serialize)]
struct Usage {
    prompt_tokens: u32,
    completion_tokens: u32,
    total_tokens: u32,
}

impl Usage {
    fn new(prompt_tokens: u32, completion_tokens: u32) -> Self {
        Self {
            prompt_tokens,
            completion_tokens,
            total_tokens: prompt_tokens + completion_tokens,
        }
    }
}

/// `/api/v0` generation stats; every field is absent on `/v1`, which sends `"stats":{}`.
#[derive(Serialize, Default)]
struct Stats {
    #[serde(skip_serializing_if = "Option::is_none")]
    tokens_per_second: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    time_to_first_token: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    generation_time: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    stop_reason: Option<&'static str>,
}

#[derive(Serialize)]
struct ModelInfo<'a> {
    arch: &'a str,
    quant: &'a str,
    format: &'static str,
    context_length: u32,
}

#[derive(Serialize)]
struct Runtime {
    name: &'static str,
    version: &'static str,
    supported_formats: [&'static str; 1],
}

/// The `stats`, `model_info` and `runtime` fields of an answer.
struct Extras {
    stats: Stats,
    model_info: Option<ModelInfo<'static>>,
    runtime: Option<Runtime>,
}

fn extras(reply: &Reply, generated: &Generated) -> Extras {
    if !reply.v0 {
        return Extras {
            stats: Stats::default(),
            model_info: None,
            runtime: None,
        };
    }
    let facts = facts(&reply.model_key, reply.kind);
    let generation_secs = generated.generation_time.as_secs_f64();
    let rate = if generation_secs > 0.0 {
        f64::from(generated.tokens.saturating_sub(1)) / generation_secs
    } else {
        0.0
    };
    Extras {
        stats: Stats {
            tokens_per_second: Some(rate),
            time_to_first_token: Some(seconds(generated.time_to_first_token)),
            generation_time: Some(seconds(generated.generation_time)),
            stop_reason: Some(stop_reason(generated.finish)),
        },
        model_info: Some(ModelInfo {
            arch: facts.arch,
            quant: facts.quantization,
            format: "gguf",
            context_length: reply.context_length,
        }),
        runtime: Some(Runtime {
            name: RUNTIME_NAME,
            version: RUNTIME_VERSION,
            supported_formats: ["gguf"],
        }),
    }
}

fn stop_reason(finish: Finish) -> &'static str {
    match finish {
        Finish::Length => "maxPredictedTokensReached",
        Finish::Stop => "eosFound",
    }
}

/// Seconds rounded to milliseconds, as LM Studio reports them.
fn seconds(duration: Duration) -> f64 {
    (duration.as_secs_f64() * 1000.0).round() / 1000.0
}

#[derive(Serialize)]
struct Message<'a> {
    role: &'static str,
    content: &'a str,
}

#[derive(Serialize)]
struct ChatChoice<'a> {
    index: u32,
    logprobs: Option<()>,
    finish_reason: &'static str,
    message: Message<'a>,
}

#[derive(Serialize)]
struct TextChoice<'a> {
    index: u32,
    text: &'a str,
    logprobs: Option<()>,
    finish_reason: Option<&'static str>,
}

#[derive(Serialize)]
struct Completion<'a, C> {
    id: &'a str,
    object: &'static str,
    created: u64,
    model: &'a str,
    choices: [C; 1],
    usage: Usage,
    stats: Stats,
    #[serde(skip_serializing_if = "Option::is_none")]
    model_info: Option<ModelInfo<'static>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    runtime: Option<Runtime>,
    system_fingerprint: &'a str,
}

pub(crate) fn chat_json(reply: &Reply, generated: &Generated) -> Vec<u8> {
    let choice = ChatChoice {
        index: 0,
        logprobs: None,
        finish_reason: generated.finish.openai(),
        message: Message {
            role: "assistant",
            content: &generated.text,
        },
    };
    completion_body(reply, generated, "chat.completion", choice)
}

pub(crate) fn completion_json(reply: &Reply, generated: &Generated) -> Vec<u8> {
    let choice = TextChoice {
        index: 0,
        text: &generated.text,
        logprobs: None,
        finish_reason: Some(generated.finish.openai()),
    };
    completion_body(reply, generated, "text_completion", choice)
}

fn completion_body<C: Serialize>(
    reply: &Reply,
    generated: &Generated,
    object: &'static str,
    choice: C,
) -> Vec<u8> {
    let extras = extras(reply, generated);
    let completion = Completion {
        id: &reply.id,
        object,
        created: reply.created,
        model: &reply.model,
        choices: [choice],
        usage: Usage::new(generated.prompt_tokens, generated.tokens),
        stats: extras.stats,
        model_info: extras.model_info,
        runtime: extras.runtime,
        system_fingerprint: &reply.model,
    };
    let mut body = Vec::with_capacity(512 + generated.text.len());
    sse::write_json(&mut body, &completion);
    body
}

#[derive(Serialize)]
struct Chunk<'a, C> {
    id: &'a str,
    object: &'static str,
    created: u64,
    model: &'a str,
    system_fingerprint: &'a str,
    choices: &'a [C],
    #[serde(skip_serializing_if = "Option::is_none")]
    usage: Option<Usage>,
}

#[derive(Serialize, Default)]
struct Delta<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    role: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    content: Option<&'a str>,
}

#[derive(Serialize)]
struct DeltaChoice<'a> {
    index: u32,
    delta: Delta<'a>,
    logprobs: Option<()>,
    finish_reason: Option<&'static str>,
}

/// Writes one `data:` chunk of `object` with these choices and optional usage.
fn write_chunk<C: Serialize>(
    out: &mut Vec<u8>,
    reply: &Reply,
    object: &'static str,
    choices: &[C],
    usage: Option<Usage>,
) {
    let chunk = Chunk {
        id: &reply.id,
        object,
        created: reply.created,
        model: &reply.model,
        system_fingerprint: &reply.model,
        choices,
        usage,
    };
    sse::write_data(out, &chunk);
}

/// Writes the usage chunk (when requested) and `data: [DONE]`.
fn write_stream_tail(out: &mut Vec<u8>, reply: &Reply, object: &'static str, end: &StreamEnd) {
    if reply.include_usage {
        let usage = Usage::new(end.prompt_tokens, end.completion_tokens);
        write_chunk::<DeltaChoice>(out, reply, object, &[], Some(usage));
    }
    sse::write_done(out);
}

/// Chat completion chunks: a role delta, content deltas, an empty delta with the finish
/// reason, the usage chunk when `stream_options.include_usage` is set, and `[DONE]`.
pub(crate) struct ChatEncoder {
    reply: Reply,
}

impl ChatEncoder {
    const OBJECT: &'static str = "chat.completion.chunk";

    pub fn new(reply: Reply) -> Self {
        Self { reply }
    }

    fn write_delta(&self, out: &mut Vec<u8>, delta: Delta<'_>, finish: Option<&'static str>) {
        let choice = DeltaChoice {
            index: 0,
            delta,
            logprobs: None,
            finish_reason: finish,
        };
        write_chunk(out, &self.reply, Self::OBJECT, &[choice], None);
    }
}

impl EventEncoder for ChatEncoder {
    fn open(&mut self, out: &mut Vec<u8>) {
        let delta = Delta {
            role: Some("assistant"),
            content: Some(""),
        };
        self.write_delta(out, delta, None);
    }

    fn token(&mut self, text: &str, out: &mut Vec<u8>) {
        let delta = Delta {
            role: None,
            content: Some(text),
        };
        self.write_delta(out, delta, None);
    }

    fn close(&mut self, end: &StreamEnd, out: &mut Vec<u8>) {
        self.write_delta(out, Delta::default(), Some(end.finish.openai()));
        write_stream_tail(out, &self.reply, Self::OBJECT, end);
    }
}

/// Text completion chunks: one per token, a last one with empty text and the finish
/// reason, the usage chunk when requested, and `[DONE]`.
pub(crate) struct CompletionEncoder {
    reply: Reply,
}

impl CompletionEncoder {
    const OBJECT: &'static str = "text_completion";

    pub fn new(reply: Reply) -> Self {
        Self { reply }
    }

    fn write_text(&self, out: &mut Vec<u8>, text: &str, finish: Option<&'static str>) {
        let choice = TextChoice {
            index: 0,
            text,
            logprobs: None,
            finish_reason: finish,
        };
        write_chunk(out, &self.reply, Self::OBJECT, &[choice], None);
    }
}

impl EventEncoder for CompletionEncoder {
    fn open(&mut self, _out: &mut Vec<u8>) {}

    fn token(&mut self, text: &str, out: &mut Vec<u8>) {
        self.write_text(out, text, None);
    }

    fn close(&mut self, end: &StreamEnd, out: &mut Vec<u8>) {
        self.write_text(out, "", Some(end.finish.openai()));
        write_stream_tail(out, &self.reply, Self::OBJECT, end);
    }
}
