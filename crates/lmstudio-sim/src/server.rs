//! The listening socket, the accept loop and the HTTP/1.1 connections, which can all be
//! stopped and started again on the same address.

use std::convert::Infallible;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Mutex, oneshot};
use tokio::task::{JoinHandle, JoinSet};

use crate::handle::Shared;
use crate::handlers;

/// Back-off after a failed `accept`, such as running out of file descriptors.
const ACCEPT_ERROR_PAUSE: Duration = Duration::from_millis(10);

pub(crate) struct Listener {
    addr: SocketAddr,
    running: Mutex<Option<AcceptLoop>>,
}

struct AcceptLoop {
    stop: oneshot::Sender<()>,
    task: JoinHandle<()>,
}

impl Listener {
    pub fn new(addr: SocketAddr) -> Self {
        Self {
            addr,
            running: Mutex::new(None),
        }
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Starts the accept loop on a bound socket.
    pub async fn serve(shared: &Arc<Shared>, listener: TcpListener) {
        let mut running = shared.listener.running.lock().await;
        *running = Some(spawn_accept_loop(shared, listener));
    }

    /// Binds the same address again and starts accepting; does nothing when running.
    pub async fn resume(&self, shared: &Arc<Shared>) -> io::Result<()> {
        let mut running = self.running.lock().await;
        if running.is_some() {
            return Ok(());
        }
        let listener = TcpListener::bind(self.addr).await?;
        *running = Some(spawn_accept_loop(shared, listener));
        tracing::info!(addr = %self.addr, "lmstudio-sim accepting again");
        Ok(())
    }

    /// Closes the socket and every connection, and waits until they are closed.
    pub async fn stop(&self) {
        let Some(accept_loop) = self.running.lock().await.take() else {
            return;
        };
        // The loop may have ended already; then there is nobody to tell.
        let _ = accept_loop.stop.send(());
        if let Err(error) = accept_loop.task.await {
            tracing::warn!(%error, "accept loop failed");
        }
        tracing::info!(addr = %self.addr, "lmstudio-sim stopped accepting");
    }
}

fn spawn_accept_loop(shared: &Arc<Shared>, listener: TcpListener) -> AcceptLoop {
    let (stop, stopped) = oneshot::channel();
    let task = tokio::spawn(accept_loop(Arc::clone(shared), listener, stopped));
    AcceptLoop { stop, task }
}

/// Accepts connections until told to stop, then closes the socket and aborts every
/// connection task, which drops its requests and response bodies.
async fn accept_loop(
    shared: Arc<Shared>,
    listener: TcpListener,
    mut stopped: oneshot::Receiver<()>,
) {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            _ = &mut stopped => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    connections.spawn(serve_connection(stream, Arc::clone(&shared)));
                }
                Err(error) => {
                    tracing::warn!(%error, "accept failed");
                    tokio::time::sleep(ACCEPT_ERROR_PAUSE).await;
                }
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
    drop(listener);
    connections.shutdown().await;
}

async fn serve_connection(stream: TcpStream, shared: Arc<Shared>) {
    if let Err(error) = stream.set_nodelay(true) {
        tracing::debug!(%error, "TCP_NODELAY failed");
    }
    let service = service_fn(move |request| {
        let shared = Arc::clone(&shared);
        async move { Ok::<_, Infallible>(handlers::handle(shared, request).await) }
    });
    let connection = http1::Builder::new()
        .header_read_timeout(Option::<Duration>::None)
        .serve_connection(TokioIo::new(stream), service);
    if let Err(error) = connection.await {
        tracing::debug!(%error, "connection ended with an error");
    }
}
