//! Token pacing with sub-millisecond precision.
//!
//! tokio's timers tick in whole milliseconds and round each deadline up, so a request paced by
//! them ends up to 2 ms late. The benchmarks compare balancers against an exact model of the
//! simulator's service time, and at high load a queue turns a fraction of a millisecond per
//! request into whole percent of latency. So one thread keeps the deadlines here: it sleeps on
//! the operating system's high-resolution timer (an estimate: tens of microseconds late on
//! Linux) and wakes the waiting tasks.

use std::cmp::Ordering;
use std::collections::BinaryHeap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering as AtomicOrdering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::task::{Context, Poll, Waker};
use std::thread::{self, Thread};
use std::time::Instant;

/// Waits until `deadline`.
pub(crate) fn sleep_until(deadline: Instant) -> Sleep {
    Sleep::new(deadline)
}

/// A future that completes at its deadline. [`Sleep::reset`] moves the deadline.
pub(crate) struct Sleep {
    deadline: Instant,
    entry: Option<Arc<Entry>>,
}

impl Sleep {
    fn new(deadline: Instant) -> Self {
        Self {
            deadline,
            entry: None,
        }
    }

    pub fn deadline(&self) -> Instant {
        self.deadline
    }

    pub fn reset(&mut self, deadline: Instant) {
        self.cancel();
        self.deadline = deadline;
    }

    fn cancel(&mut self) {
        if let Some(entry) = self.entry.take() {
            entry.cancelled.store(true, AtomicOrdering::Release);
        }
    }
}

impl Future for Sleep {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if Instant::now() >= self.deadline {
            self.entry = None;
            return Poll::Ready(());
        }
        match &self.entry {
            Some(entry) => entry.set_waker(cx.waker()),
            None => {
                let entry = Arc::new(Entry::new(cx.waker().clone()));
                timer().insert(self.deadline, Arc::clone(&entry));
                self.entry = Some(entry);
            }
        }
        Poll::Pending
    }
}

impl Drop for Sleep {
    fn drop(&mut self) {
        self.cancel();
    }
}

/// One registered deadline: the task to wake, unless it stopped waiting.
struct Entry {
    waker: Mutex<Waker>,
    cancelled: AtomicBool,
}

impl Entry {
    fn new(waker: Waker) -> Self {
        Self {
            waker: Mutex::new(waker),
            cancelled: AtomicBool::new(false),
        }
    }

    fn set_waker(&self, waker: &Waker) {
        let mut current = self.waker.lock().unwrap_or_else(PoisonError::into_inner);
        if !current.will_wake(waker) {
            current.clone_from(waker);
        }
    }

    fn fire(&self) {
        if self.cancelled.load(AtomicOrdering::Acquire) {
            return;
        }
        let waker = self.waker.lock().unwrap_or_else(PoisonError::into_inner);
        waker.wake_by_ref();
    }
}

/// A deadline in the timer thread's heap, earliest first.
struct Due {
    at: Instant,
    entry: Arc<Entry>,
}

impl PartialEq for Due {
    fn eq(&self, other: &Self) -> bool {
        self.at == other.at
    }
}

impl Eq for Due {}

impl PartialOrd for Due {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Due {
    fn cmp(&self, other: &Self) -> Ordering {
        other.at.cmp(&self.at)
    }
}

/// The deadlines and the thread that keeps them.
struct Timer {
    heap: Mutex<BinaryHeap<Due>>,
    thread: Thread,
}

impl Timer {
    fn insert(&self, at: Instant, entry: Arc<Entry>) {
        let mut heap = self.heap.lock().unwrap_or_else(PoisonError::into_inner);
        let earliest = heap.peek().is_none_or(|first| at < first.at);
        heap.push(Due { at, entry });
        drop(heap);
        if earliest {
            self.thread.unpark();
        }
    }

    /// Wakes every entry that is due and returns the next deadline.
    fn fire_due(&self, due: &mut Vec<Arc<Entry>>) -> Option<Instant> {
        let now = Instant::now();
        let mut heap = self.heap.lock().unwrap_or_else(PoisonError::into_inner);
        while heap.peek().is_some_and(|first| first.at <= now) {
            due.extend(heap.pop().map(|first| first.entry));
        }
        let next = heap.peek().map(|first| first.at);
        drop(heap);

        for entry in due.drain(..) {
            entry.fire();
        }
        next
    }
}

fn timer() -> &'static Timer {
    static TIMER: OnceLock<Timer> = OnceLock::new();
    TIMER.get_or_init(|| {
        let thread = thread::Builder::new()
            .name("sim-clock".into())
            .spawn(run_timer)
            .expect("the simulator's clock thread starts");
        Timer {
            heap: Mutex::new(BinaryHeap::new()),
            thread: thread.thread().clone(),
        }
    })
}

fn run_timer() {
    let timer = timer();
    let mut due = Vec::new();
    loop {
        match timer.fire_due(&mut due) {
            Some(next) => thread::park_timeout(next.saturating_duration_since(Instant::now())),
            None => thread::park(),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[tokio::test]
    async fn wakes_at_the_deadline() {
        let start = Instant::now();
        sleep_until(start + Duration::from_millis(20)).await;
        assert!(start.elapsed() >= Duration::from_millis(20));
    }

    #[tokio::test]
    async fn reset_moves_the_deadline() {
        let start = Instant::now();
        let mut sleep = sleep_until(start + Duration::from_secs(60));
        let early = tokio::time::timeout(Duration::from_millis(30), &mut sleep).await;
        assert!(early.is_err(), "a sleep of a minute ended early");

        sleep.reset(start + Duration::from_millis(40));
        assert_eq!(sleep.deadline(), start + Duration::from_millis(40));
        tokio::time::timeout(Duration::from_secs(5), &mut sleep)
            .await
            .expect("the reset deadline fires");
        assert!(start.elapsed() >= Duration::from_millis(40));
    }

    #[tokio::test]
    async fn many_sleeps_wake_in_deadline_order() {
        let start = Instant::now();
        let order = Arc::new(Mutex::new(Vec::new()));
        let mut tasks = Vec::new();
        for index in [3u64, 1, 4, 0, 2] {
            let order = Arc::clone(&order);
            tasks.push(tokio::spawn(async move {
                sleep_until(start + Duration::from_millis(10 + 15 * index)).await;
                order.lock().unwrap().push(index);
            }));
        }
        for task in tasks {
            task.await.unwrap();
        }
        assert_eq!(*order.lock().unwrap(), vec![0, 1, 2, 3, 4]);
    }
}
