//! A timer for a sequence of deadlines, such as one per request on a connection.
//!
//! Registering a tokio timer costs a lock on the timer wheel, so a fresh timeout per request
//! adds up. This timer is armed once and moved only when it fires before the current deadline.
//! A connection that serves many requests quickly resets it about once per timeout period.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use tokio::time::{Instant, Sleep};

/// A lazily armed timer; see the module documentation.
#[derive(Default)]
pub struct Deadline {
    timer: Option<Pin<Box<Sleep>>>,
}

impl Deadline {
    /// Polls for `deadline`: ready once it has passed.
    pub fn poll_until(&mut self, deadline: Instant, cx: &mut Context<'_>) -> Poll<()> {
        let timer = self
            .timer
            .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
        if timer.deadline() > deadline {
            timer.as_mut().reset(deadline);
        }
        loop {
            ready!(timer.as_mut().poll(cx));
            if Instant::now() >= deadline {
                return Poll::Ready(());
            }
            timer.as_mut().reset(deadline);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::future::poll_fn;
    use std::time::Duration;

    #[tokio::test(start_paused = true)]
    async fn each_deadline_fires_at_its_time() {
        let mut deadline = Deadline::default();
        let start = Instant::now();

        let first = start + Duration::from_secs(30);
        poll_fn(|cx| deadline.poll_until(first, cx)).await;
        assert_eq!(Instant::now(), first);

        // A later deadline waits for its own time, not the first one's.
        let later = Instant::now() + Duration::from_secs(30);
        poll_fn(|cx| deadline.poll_until(later, cx)).await;
        assert_eq!(Instant::now(), later);

        // A deadline earlier than the armed one moves the timer back.
        let far = Instant::now() + Duration::from_secs(600);
        let near = Instant::now() + Duration::from_secs(5);
        let pending = poll_fn(|cx| Poll::Ready(deadline.poll_until(far, cx))).await;
        assert!(pending.is_pending());
        poll_fn(|cx| deadline.poll_until(near, cx)).await;
        assert_eq!(Instant::now(), near);
    }
}
