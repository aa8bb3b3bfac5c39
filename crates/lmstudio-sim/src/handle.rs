//! The [`Simulator`] handle and the state its server shares with every request.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;

use tokio::sync::watch;

use crate::config::SimConfig;
use crate::faults::{FaultState, Faults};
use crate::generation::Timing;
use crate::record::{RecordedExchange, Recorder};
use crate::registry::{LoadOptions, Registry};
use crate::server::Listener;
use crate::stats::{Changes, Stats};

/// State shared by the handle, the listener and every request.
pub(crate) struct Shared {
    pub config: SimConfig,
    pub timing: Timing,
    /// True when requests need no timer: see [`SimConfig::is_instant`].
    pub instant: bool,
    pub registry: Registry,
    pub faults: FaultState,
    pub changes: Arc<Changes>,
    pub recorder: Option<Recorder>,
    /// Bumped whenever the server goes down, so that non-streaming generations, which run on
    /// after their client left, stop with it.
    pub down: watch::Sender<u64>,
    pub listener: Listener,
}

impl Shared {
    pub fn stats(&self) -> Stats {
        self.registry.stats()
    }

    pub fn reset(&self) {
        self.registry.reset();
        self.faults.set(Faults::default());
        if let Some(recorder) = &self.recorder {
            recorder.clear();
        }
    }
}

/// Starts a simulator on the current Tokio runtime and returns once it listens. The runtime
/// needs its IO and time drivers enabled.
///
/// Errors: the configuration is invalid (`InvalidInput`), or binding the address failed.
pub async fn start(config: SimConfig) -> io::Result<Simulator> {
    config
        .validate()
        .map_err(|message| io::Error::new(io::ErrorKind::InvalidInput, message))?;

    let listener = tokio::net::TcpListener::bind((config.bind, config.port)).await?;
    let addr = listener.local_addr()?;
    let changes = Arc::new(Changes::default());
    let shared = Arc::new(Shared {
        timing: Timing::new(&config),
        instant: config.is_instant(),
        registry: Registry::new(&config.models, Arc::clone(&changes)),
        faults: FaultState::new(config.faults.clone(), Arc::clone(&changes)),
        recorder: config.record.then(Recorder::default),
        changes,
        down: watch::Sender::new(0),
        listener: Listener::new(addr),
        config,
    });
    Listener::serve(&shared, listener).await;

    let instances: Vec<String> = shared.stats().instances.into_iter().map(|i| i.id).collect();
    tracing::info!(%addr, ?instances, "lmstudio-sim listening");
    Ok(Simulator { shared })
}

/// A running simulator. Clones share the same server.
///
/// Dropping every handle leaves the server running until its Tokio runtime shuts down;
/// [`Simulator::shutdown`] stops it at once.
#[derive(Clone)]
pub struct Simulator {
    shared: Arc<Shared>,
}

impl Simulator {
    pub fn addr(&self) -> SocketAddr {
        self.shared.listener.addr()
    }

    /// Returns the base URL, such as `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr())
    }

    /// Returns the same counters as `GET /sim/stats`.
    pub fn stats(&self) -> Stats {
        self.shared.stats()
    }

    /// Waits until `pred` returns true for the stats, checking now and after every change
    /// of the stats or the faults, and returns the stats that satisfied it. Wrap it in
    /// `tokio::time::timeout`.
    pub async fn wait_for(&self, pred: impl Fn(&Stats) -> bool) -> Stats {
        self.shared
            .changes
            .wait_for(|| self.shared.stats(), pred)
            .await
    }

    /// Zeroes `served`, `max_active` and `tokens`, clears faults and recordings, like
    /// `POST /sim/reset`. Requests in flight keep their slots.
    pub fn reset(&self) {
        self.shared.reset();
    }

    /// Replaces all faults.
    pub fn set_faults(&self, faults: Faults) {
        self.shared.faults.set(faults);
    }

    /// Returns the faults not yet used up.
    pub fn faults(&self) -> Faults {
        self.shared.faults.get()
    }

    /// Loads a new instance of `model` at once (no load time) and returns its id.
    pub fn load(&self, model: &str) -> Result<String, String> {
        let instance = self.shared.registry.load(model, LoadOptions::default())?;
        Ok(instance.id.to_string())
    }

    /// Unloads an instance; false when no instance has this id. Its queued requests fail
    /// with an error and its running ones finish.
    pub fn unload(&self, instance_id: &str) -> bool {
        self.shared.registry.unload(instance_id)
    }

    /// Sets an instance's slot count; false when no instance has this id. 0 stops the
    /// instance from starting requests, which then queue.
    pub fn set_parallel(&self, instance_id: &str, parallel: u32) -> bool {
        let Some(instance) = self.shared.registry.instance(instance_id) else {
            return false;
        };
        instance.set_parallel(parallel);
        true
    }

    /// Closes the listening socket, so that new connections are refused, and every open
    /// connection, like a server that went down. Requests in flight stop and free their
    /// slots. Does nothing when the simulator is not accepting.
    pub async fn stop_accepting(&self) {
        self.shared.listener.stop().await;
        self.shared.down.send_modify(|epoch| *epoch += 1);
    }

    /// Listens on the same address and port again. Does nothing when already accepting.
    pub async fn resume_accepting(&self) -> io::Result<()> {
        self.shared.listener.resume(&self.shared).await
    }

    /// Returns the recorded inference exchanges, oldest first: at most the last 64, and
    /// none unless `SimConfig::record` is set. An exchange is listed once its response
    /// status is known, so requests that hang or whose client left before that are missing.
    pub fn recorded(&self) -> Vec<RecordedExchange> {
        self.shared
            .recorder
            .as_ref()
            .map(Recorder::snapshot)
            .unwrap_or_default()
    }

    /// Stops the server, as [`Simulator::stop_accepting`] does, for every clone of the handle.
    pub async fn shutdown(self) {
        self.stop_accepting().await;
        tracing::info!(addr = %self.addr(), "lmstudio-sim stopped");
    }
}
