//! The state shared by every connection: configuration, catalog, scheduler, client and metrics.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use crate::catalog::Catalog;
use crate::client::{self, HttpClient};
use crate::config::Config;
use crate::proxy::{ConnectionPool, UpstreamHeaders};
use crate::scheduler::{Scheduler, SchedulerSettings};
use crate::telemetry::Metrics;

pub struct App {
    pub config: Config,
    pub scheduler: Arc<Scheduler>,
    pub catalog: Arc<Catalog>,
    /// Client for model listings and other occasional requests.
    pub client: HttpClient,
    /// Connections for forwarded requests, driven by the requests themselves.
    pub connections: Arc<ConnectionPool>,
    /// Per upstream, the header values its forwarded requests and responses carry.
    pub upstream_headers: Vec<UpstreamHeaders>,
    pub metrics: Arc<Metrics>,
    next_request_id: AtomicU64,
    passthrough_cursor: AtomicUsize,
}

impl App {
    pub fn new(config: Config) -> Arc<App> {
        let settings = SchedulerSettings {
            queue: config.queue,
            model_queues: config
                .models
                .keys()
                .map(|model| (model.clone(), config.queue_limits_for(model)))
                .collect(),
            model_slots: config
                .models
                .iter()
                .filter_map(|(model, settings)| Some((model.clone(), settings.slots?)))
                .collect::<HashMap<_, _>>(),
        };
        let scheduler = Scheduler::new(settings);
        let client = client::build();
        let catalog = Catalog::new(
            config.upstreams.clone(),
            Arc::clone(&scheduler),
            client.clone(),
            config.refresh_interval,
            config.listing_timeout,
        );
        let connections = Arc::new(ConnectionPool::new(&config.upstreams, config.workers));
        let upstream_headers = config.upstreams.iter().map(UpstreamHeaders::new).collect();
        Arc::new(App {
            connections,
            upstream_headers,
            config,
            scheduler,
            catalog,
            client,
            metrics: Arc::new(Metrics::default()),
            next_request_id: AtomicU64::new(1),
            passthrough_cursor: AtomicUsize::new(0),
        })
    }

    pub fn next_request_id(&self) -> u64 {
        self.next_request_id.fetch_add(1, Ordering::Relaxed)
    }

    /// Upstreams to try for a request that is not balanced: those up first, rotating, then the
    /// rest (the catalog may not have seen an upstream come back yet).
    pub fn passthrough_order(&self) -> Vec<usize> {
        let count = self.catalog.upstreams().len();
        let start = self.passthrough_cursor.fetch_add(1, Ordering::Relaxed);
        let rotated = (0..count).map(|offset| (start + offset) % count);
        let (up, down): (Vec<usize>, Vec<usize>) = rotated.partition(|&i| self.catalog.is_up(i));
        up.into_iter().chain(down).collect()
    }

    /// Returns whether requests need lmlb's API key.
    pub fn requires_key(&self) -> bool {
        !self.config.api_keys.is_empty()
    }
}
