//! A streaming generation: tokens paced by a timer and framed by an API family's encoder.
//!
//! The stream owns the request's slot. When the client disconnects, hyper drops the response
//! body and with it the stream, which frees the slot at once.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use bytes::Bytes;
use std::time::Instant;

use crate::clock::{self, Sleep};
use crate::faults::StreamFaults;
use crate::generation::{Finish, Plan};
use crate::instance::SlotGuard;
use crate::sse;
use crate::text::Words;

/// Frames one API family's stream.
pub(crate) trait EventEncoder: Send + 'static {
    /// Writes the events that open the stream. They go out with the first token, because
    /// LM Studio sends no bytes before it.
    fn open(&mut self, out: &mut Vec<u8>);
    fn token(&mut self, text: &str, out: &mut Vec<u8>);
    fn close(&mut self, end: &StreamEnd, out: &mut Vec<u8>);
}

/// What the closing events report.
pub(crate) struct StreamEnd {
    pub finish: Finish,
    pub prompt_tokens: u32,
    pub completion_tokens: u32,
    pub time_to_first_token: Duration,
    pub generation_time: Duration,
}

pub(crate) struct TokenStream {
    encoder: Box<dyn EventEncoder>,
    slot: Option<SlotGuard>,
    words: Words,
    sent: u32,
    total: u32,
    finish: Finish,
    prompt_tokens: u32,
    first_token_at: Instant,
    time_to_first_token: Duration,
    interval: Duration,
    timer: Option<Sleep>,
    faults: StreamFaults,
    stamp: bool,
    state: State,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum State {
    Running,
    /// The close fault fired: yield once so the frames already sent get flushed, then fail.
    Closing,
    Failed,
    Done,
}

/// Settings of a [`TokenStream`].
pub(crate) struct StreamSetup {
    pub encoder: Box<dyn EventEncoder>,
    pub slot: SlotGuard,
    pub plan: Plan,
    /// When the first token was due; the stream starts right at it.
    pub first_token_at: Instant,
    pub time_to_first_token: Duration,
    pub interval: Duration,
    pub faults: StreamFaults,
    /// Whether each token's event starts with the comment `: sent_us=MICROS`.
    pub stamp: bool,
}

impl TokenStream {
    pub fn new(setup: StreamSetup) -> Self {
        let timer = (!setup.interval.is_zero()).then(|| clock::sleep_until(setup.first_token_at));
        Self {
            encoder: setup.encoder,
            slot: Some(setup.slot),
            words: Words::new(setup.plan.prompt.seed),
            sent: 0,
            total: setup.plan.tokens,
            finish: setup.plan.finish,
            prompt_tokens: setup.plan.prompt.tokens,
            first_token_at: setup.first_token_at,
            time_to_first_token: setup.time_to_first_token,
            interval: setup.interval,
            timer,
            faults: setup.faults,
            stamp: setup.stamp,
            state: State::Running,
        }
    }

    /// Returns the next chunk of the body; an error makes hyper close the connection.
    pub fn poll_next(&mut self, cx: &mut Context<'_>) -> Poll<Option<io::Result<Bytes>>> {
        match self.state {
            State::Done => return Poll::Ready(None),
            State::Failed => return Poll::Ready(Some(Err(closed_by_fault()))),
            State::Closing => {
                self.state = State::Failed;
                cx.waker().wake_by_ref();
                return Poll::Pending;
            }
            State::Running => {}
        }

        // A limit above the request's tokens closes the stream before its finish chunk.
        let close_limit_reached = self
            .faults
            .close_after
            .is_some_and(|limit| self.sent >= limit.min(self.total));
        if close_limit_reached {
            self.slot = None;
            self.state = State::Closing;
            return self.poll_next(cx);
        }
        if self.sent == self.total {
            return Poll::Ready(Some(Ok(self.finish_stream())));
        }
        ready!(self.poll_token_due(cx));
        Poll::Ready(Some(Ok(self.next_token())))
    }

    fn poll_token_due(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        let Some(timer) = &mut self.timer else {
            return Poll::Ready(());
        };
        let due = self.first_token_at + self.interval * self.sent;
        if timer.deadline() != due {
            timer.reset(due);
        }
        Pin::new(timer).poll(cx)
    }

    fn next_token(&mut self) -> Bytes {
        let mut out = Vec::with_capacity(512);
        if self.sent == 0 {
            self.encoder.open(&mut out);
        }
        let word = self.words.next_word();
        if self.stamp {
            sse::write_stamp(&mut out);
        }
        self.encoder.token(word, &mut out);
        self.sent += 1;
        if let Some(slot) = &self.slot {
            slot.instance().add_tokens(1);
        }
        if self.sent == 1 && self.faults.broken_sse {
            sse::write_broken_copy_of_last_event(&mut out);
        }
        Bytes::from(out)
    }

    fn finish_stream(&mut self) -> Bytes {
        self.slot = None;
        self.state = State::Done;
        let end = StreamEnd {
            finish: self.finish,
            prompt_tokens: self.prompt_tokens,
            completion_tokens: self.sent,
            time_to_first_token: self.time_to_first_token,
            generation_time: self.interval * self.sent.saturating_sub(1),
        };
        let mut out = Vec::with_capacity(512);
        self.encoder.close(&end, &mut out);
        Bytes::from(out)
    }
}

fn closed_by_fault() -> io::Error {
    io::Error::new(
        io::ErrorKind::ConnectionAborted,
        "connection closed by the close_after_tokens fault",
    )
}
