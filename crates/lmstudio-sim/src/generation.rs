//! Generation timing and the non-streaming generation of one request.
//!
//! The first token comes `ttft` after the request got its slot, plus the prompt tokens not
//! cached on that slot divided by the prompt processing rate. Each further token comes
//! `1 / tokens_per_second` later.

use std::time::{Duration, Instant};

use crate::clock;
use crate::config::SimConfig;
use crate::instance::SlotGuard;
use crate::text::{Prompt, generate_text};

/// Completion tokens of a request that sets no (or a non-positive) token limit.
pub(crate) const DEFAULT_MAX_TOKENS: u32 = 32;

#[derive(Clone, Copy, Debug)]
pub(crate) struct Timing {
    tokens_per_second: f64,
    ttft: Duration,
    prefill_tokens_per_second: f64,
    /// Whether streamed tokens carry the time they were written (see [`SimConfig::stamp_tokens`]).
    pub stamp_tokens: bool,
}

impl Timing {
    pub fn new(config: &SimConfig) -> Self {
        Self {
            tokens_per_second: config.tokens_per_second,
            ttft: config.ttft,
            prefill_tokens_per_second: config.prefill_tokens_per_second,
            stamp_tokens: config.stamp_tokens,
        }
    }

    pub fn first_token_delay(&self, uncached_prompt_tokens: u32) -> Duration {
        if self.prefill_tokens_per_second <= 0.0 {
            return self.ttft;
        }
        let prefill = f64::from(uncached_prompt_tokens) / self.prefill_tokens_per_second;
        self.ttft + Duration::from_secs_f64(prefill)
    }

    /// Time between two tokens; zero when generation is instant.
    pub fn token_interval(&self) -> Duration {
        if self.tokens_per_second <= 0.0 {
            return Duration::ZERO;
        }
        Duration::from_secs_f64(1.0 / self.tokens_per_second)
    }
}

/// Reason generation ended, in OpenAI's terms.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Finish {
    /// The request's token limit was reached.
    Length,
    /// The model ended on its own: requests without a limit get this after 32 tokens.
    Stop,
}

impl Finish {
    pub fn openai(self) -> &'static str {
        match self {
            Finish::Length => "length",
            Finish::Stop => "stop",
        }
    }
}

/// Token count and finish reason planned for one request.
pub(crate) struct Plan {
    pub prompt: Prompt,
    pub tokens: u32,
    pub finish: Finish,
}

impl Plan {
    /// Plans `requested` tokens (capped at the context length, finish `length`) or, without a
    /// positive limit, 32 tokens that finish with `stop`.
    pub fn new(prompt: Prompt, requested: Option<i64>, context_length: u32) -> Self {
        let (tokens, finish) = match requested {
            Some(limit) if limit > 0 => {
                (limit.min(i64::from(context_length)) as u32, Finish::Length)
            }
            _ => (DEFAULT_MAX_TOKENS, Finish::Stop),
        };
        Self {
            prompt,
            tokens,
            finish,
        }
    }

    /// Returns a plan that generates nothing, for embeddings.
    pub fn embeddings(prompt: Prompt) -> Self {
        Self {
            prompt,
            tokens: 0,
            finish: Finish::Stop,
        }
    }
}

/// The result of a finished non-streaming generation.
pub(crate) struct Generated {
    pub text: String,
    pub tokens: u32,
    pub finish: Finish,
    pub prompt_tokens: u32,
    pub time_to_first_token: Duration,
    pub generation_time: Duration,
}

/// Runs a non-streaming generation in the slot: waits until the last token is due, then
/// counts the tokens and frees the slot. The text is built after the slot is free, so that
/// in instant mode a slot is busy only for a moment.
pub(crate) async fn generate(slot: SlotGuard, plan: &Plan, timing: &Timing) -> Generated {
    let uncached = plan.prompt.tokens.saturating_sub(slot.cached_tokens());
    let time_to_first_token = timing.first_token_delay(uncached);
    let generation_time = timing.token_interval() * plan.tokens.saturating_sub(1);
    let total = time_to_first_token + generation_time;
    if !total.is_zero() {
        clock::sleep_until(Instant::now() + total).await;
    }

    slot.finish(u64::from(plan.tokens));
    Generated {
        text: generate_text(plan.prompt.seed, plan.tokens),
        tokens: plan.tokens,
        finish: plan.finish,
        prompt_tokens: plan.prompt.tokens,
        time_to_first_token,
        generation_time,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::text::PromptBuilder;

    fn prompt() -> Prompt {
        PromptBuilder::new(false).finish()
    }

    #[test]
    fn plan_limits() {
        let plan = Plan::new(prompt(), Some(5), 4096);
        assert_eq!((plan.tokens, plan.finish), (5, Finish::Length));
        let plan = Plan::new(prompt(), None, 4096);
        assert_eq!(
            (plan.tokens, plan.finish),
            (DEFAULT_MAX_TOKENS, Finish::Stop)
        );
        let plan = Plan::new(prompt(), Some(-1), 4096);
        assert_eq!(
            (plan.tokens, plan.finish),
            (DEFAULT_MAX_TOKENS, Finish::Stop)
        );
        let plan = Plan::new(prompt(), Some(1_000_000), 4096);
        assert_eq!((plan.tokens, plan.finish), (4096, Finish::Length));
    }

    #[test]
    fn prefill_adds_to_first_token() {
        let config = SimConfig {
            ttft: Duration::from_millis(10),
            prefill_tokens_per_second: 100.0,
            tokens_per_second: 20.0,
            ..SimConfig::default()
        };
        let timing = Timing::new(&config);
        assert_eq!(timing.first_token_delay(50), Duration::from_millis(510));
        assert_eq!(timing.token_interval(), Duration::from_millis(50));
    }
}
