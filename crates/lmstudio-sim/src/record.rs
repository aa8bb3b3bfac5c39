//! Recordings of inference exchanges, for tests that check what reached the simulator.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};

use bytes::Bytes;
use http::request::Parts;

/// Number of exchanges kept; older ones are dropped.
pub(crate) const RECORDING_CAPACITY: usize = 64;

/// One inference request and the response the simulator sent.
#[derive(Clone, Debug)]
pub struct RecordedExchange {
    pub method: String,
    pub path: String,
    pub query: Option<String>,
    /// Headers as received, names in lowercase, in order.
    pub headers: Vec<(String, String)>,
    /// The request body exactly as received.
    pub body: Bytes,
    /// The instance that served the request; none for errors and faults.
    pub instance: Option<String>,
    pub status: u16,
    /// Every byte of the response body handed to the connection so far; complete once the
    /// exchange has finished.
    pub response_body: Bytes,
}

/// A recording in progress, shared with the response body that fills it.
pub(crate) struct Entry {
    request: RecordedExchange,
    response_body: Mutex<Vec<u8>>,
}

impl Entry {
    pub fn append_response(&self, bytes: &[u8]) {
        lock(&self.response_body).extend_from_slice(bytes);
    }

    fn snapshot(&self) -> RecordedExchange {
        let mut exchange = self.request.clone();
        exchange.response_body = Bytes::copy_from_slice(&lock(&self.response_body));
        exchange
    }
}

#[derive(Default)]
pub(crate) struct Recorder {
    entries: Mutex<VecDeque<Arc<Entry>>>,
}

impl Recorder {
    /// Starts recording an exchange once its response status is known. The exchange is
    /// listed from now on; its response body fills in as it is sent.
    pub fn record(
        &self,
        parts: &Parts,
        body: &Bytes,
        instance: Option<&str>,
        status: u16,
    ) -> Arc<Entry> {
        let headers = parts
            .headers
            .iter()
            .map(|(name, value)| {
                let value = String::from_utf8_lossy(value.as_bytes()).into_owned();
                (name.as_str().to_owned(), value)
            })
            .collect();
        let entry = Arc::new(Entry {
            request: RecordedExchange {
                method: parts.method.to_string(),
                path: parts.uri.path().to_owned(),
                query: parts.uri.query().map(str::to_owned),
                headers,
                body: body.clone(),
                instance: instance.map(str::to_owned),
                status,
                response_body: Bytes::new(),
            },
            response_body: Mutex::new(Vec::new()),
        });

        let mut entries = lock(&self.entries);
        if entries.len() == RECORDING_CAPACITY {
            entries.pop_front();
        }
        entries.push_back(Arc::clone(&entry));
        entry
    }

    pub fn snapshot(&self) -> Vec<RecordedExchange> {
        lock(&self.entries)
            .iter()
            .map(|entry| entry.snapshot())
            .collect()
    }

    pub fn clear(&self) {
        lock(&self.entries).clear();
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}
