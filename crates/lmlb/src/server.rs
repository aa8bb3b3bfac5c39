//! The listener: accepts connections, serves HTTP/1.1 on each, and shuts down gracefully.

use std::convert::Infallible;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::app::App;
use crate::config::Config;
use crate::proxy::Peer;
use crate::router;

/// Pause after a failed `accept` (for example when out of file descriptors) before the next.
const ACCEPT_ERROR_PAUSE: Duration = Duration::from_millis(50);

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
        let (shutdown, shutdown_rx) = watch::channel(false);
        app.catalog.spawn_pollers(shutdown_rx.clone());

        let task = tokio::spawn(serve(listener, Arc::clone(&app), shutdown_rx));
        tracing::info!(%addr, upstreams = app.config.upstreams.len(), "lmlb listening");
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

async fn serve(listener: TcpListener, app: Arc<App>, mut shutdown: watch::Receiver<bool>) {
    let graceful = GracefulShutdown::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, client)) => {
                    let _ = stream.set_nodelay(true);
                    let connection = http1::Builder::new()
                        .timer(TokioTimer::new())
                        .serve_connection(TokioIo::new(stream), service(Arc::clone(&app), Peer::new(client)));
                    let connection = graceful.watch(connection);
                    tokio::spawn(async move {
                        if let Err(error) = connection.await {
                            tracing::debug!(%client, %error, "connection ended with an error");
                        }
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

    let timeout = app.config.shutdown_timeout;
    tracing::info!(
        timeout_ms = timeout.as_millis() as u64,
        "shutting down; waiting for in-flight requests"
    );
    tokio::select! {
        _ = graceful.shutdown() => tracing::info!("all connections finished"),
        _ = tokio::time::sleep(timeout) => tracing::warn!("shutdown timeout reached; closing the remaining connections"),
    }
    app.scheduler.close_queues();
}

/// Resolves once the shutdown flag is set.
pub(crate) async fn stopped(shutdown: &mut watch::Receiver<bool>) {
    // The guard returned by `wait_for` is not `Send`, so it is dropped here, before any await.
    let _ = shutdown.wait_for(|stop| *stop).await.map(|_| ());
}

fn service(
    app: Arc<App>,
    peer: Peer,
) -> impl hyper::service::Service<
    hyper::Request<hyper::body::Incoming>,
    Response = hyper::Response<crate::proxy::ProxyBody>,
    Error = Infallible,
    Future = impl Future<Output = Result<hyper::Response<crate::proxy::ProxyBody>, Infallible>> + Send,
> + Clone {
    service_fn(move |request| {
        let app = Arc::clone(&app);
        let peer = peer.clone();
        async move {
            // Not boxed: hyper keeps the future in the connection's own state, and copying its
            // few kilobytes there once costs less than allocating a block that large per request.
            let response = router::route(&app, request, &peer).await;
            Ok::<_, Infallible>(response)
        }
    })
}
