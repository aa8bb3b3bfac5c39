//! The listener: accepts connections, serves HTTP/1.1 on each, and shuts down gracefully.
//!
//! lmlb speaks HTTP/1.1 to clients with its own small server (`request`, `response` and
//! `connection`) rather than a general one. The listener runs on the caller's runtime and hands
//! each connection to a worker thread (`workers`). A request's head, body and response pass
//! through the connection's own buffers to the router and back, with no channel, extra task or
//! timer per request on the way.

mod connection;
pub(crate) mod request;
mod response;
pub mod workers;

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use crate::app::App;
use crate::config::Config;
use crate::proxy::Peer;
use workers::Workers;

/// Pause after a failed `accept` (for example when out of file descriptors) before the next.
const ACCEPT_ERROR_PAUSE: Duration = Duration::from_millis(50);

/// Time that requests still queued at the shutdown timeout get to send their 503 before the
/// workers stop.
const QUEUE_CLOSE_GRACE: Duration = Duration::from_millis(500);

/// A running lmlb. Dropping it does not stop the server; call [`Server::shutdown`].
pub struct Server {
    addr: SocketAddr,
    app: Arc<App>,
    shutdown: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl Server {
    /// Checks every upstream once, binds the listener and starts serving.
    pub async fn start(config: Config) -> io::Result<Server> {
        let listen = config.listen;
        let app = App::new(config);
        app.catalog.check_all().await;

        let listener = TcpListener::bind(listen).await?;
        let addr = listener.local_addr()?;
        let workers = Workers::start(app.config.workers)?;
        let (shutdown, shutdown_rx) = watch::channel(false);
        app.catalog.spawn_pollers(shutdown_rx.clone());

        let task = tokio::spawn(serve(listener, workers, Arc::clone(&app), shutdown_rx));
        tracing::info!(
            %addr,
            upstreams = app.config.upstreams.len(),
            workers = app.config.workers,
            "lmlb listening"
        );
        Ok(Server {
            addr,
            app,
            shutdown,
            task,
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://ADDR`, for clients.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn app(&self) -> &Arc<App> {
        &self.app
    }

    /// Stops accepting, lets in-flight requests and streams finish for up to the configured
    /// shutdown timeout, then closes what remains.
    pub async fn shutdown(self) {
        let _ = self.shutdown.send(true);
        let _ = self.task.await;
    }
}

/// Accepts connections and hands each to a worker until shutdown. Then waits for the workers'
/// connections to end and stops the workers.
async fn serve(
    listener: TcpListener,
    workers: Workers,
    app: Arc<App>,
    mut shutdown: watch::Receiver<bool>,
) {
    // Every connection owns a sender, so the channel closes for the receiver when all have ended.
    let (alive, mut all_ended) = mpsc::channel::<()>(1);
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, client)) => {
                    let _ = stream.set_nodelay(true);
                    let (app, shutdown, alive) = (Arc::clone(&app), shutdown.clone(), alive.clone());
                    workers.dispatch(stream, client, move |stream| {
                        connection::serve(stream, app, Peer::new(client), shutdown, alive)
                    });
                }
                Err(error) => {
                    tracing::warn!(%error, "failed to accept a connection");
                    tokio::time::sleep(ACCEPT_ERROR_PAUSE).await;
                }
            },
            _ = stopped(&mut shutdown) => break,
        }
    }
    drop(listener);
    drop(alive);

    let timeout = app.config.shutdown_timeout;
    tracing::info!(
        timeout_ms = timeout.as_millis() as u64,
        "shutting down; waiting for in-flight requests"
    );
    tokio::select! {
        _ = all_ended.recv() => {
            tracing::info!("all connections finished");
            return;
        }
        _ = tokio::time::sleep(timeout) => tracing::warn!("shutdown timeout reached; closing the remaining connections"),
    }
    // Queued requests get 503 `shutting_down`, and the wait lets them write it before the workers
    // stop, which closes every connection still open.
    app.scheduler.close_queues();
    let _ = tokio::time::timeout(QUEUE_CLOSE_GRACE, all_ended.recv()).await;
}

/// Resolves once the shutdown flag is set.
pub(crate) async fn stopped(shutdown: &mut watch::Receiver<bool>) {
    // The guard returned by `wait_for` is not `Send`, so it is dropped here, before any await.
    let _ = shutdown.wait_for(|stop| *stop).await.map(|_| ());
}

/// Resolves on SIGINT or SIGTERM.
pub async fn wait_for_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut terminate =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(signal) => signal,
                Err(_) => {
                    let _ = interrupt.await;
                    return;
                }
            };
        tokio::select! {
            _ = interrupt => {}
            _ = terminate.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = interrupt.await;
    }
}
