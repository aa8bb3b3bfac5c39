//! Worker threads that serve client connections, each running a single-threaded runtime.
//!
//! A connection stays on the worker that took it, and so do the tasks it spawns and the upstream
//! connections it uses (the pool keeps idle connections per worker, see [`current`]). No task moves
//! between threads, as with nginx's worker processes. Only a queued request may be woken from
//! another worker, by the slot that worker frees.
//! On a machine where lmlb shares its cores with LM Studio and the clients, this served more
//! requests per second than one runtime whose threads steal tasks from each other (BENCHMARKS.md).

use std::cell::Cell;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::net::TcpStream;
use tokio::runtime::{Builder, Handle};
use tokio::sync::oneshot;

thread_local! {
    /// The index of the worker running on this thread, or `None` on other threads.
    static WORKER: Cell<Option<usize>> = const { Cell::new(None) };
}

/// Returns the index of the worker running on this thread, or 0 on a thread that is not a worker.
pub fn current() -> usize {
    WORKER.with(|worker| worker.get()).unwrap_or(0)
}

/// The running workers. Dropping this stops them: their runtimes end, and with them every
/// connection they still serve.
pub struct Workers {
    workers: Vec<Worker>,
}

struct Worker {
    runtime: Handle,
    /// Connections this worker serves now.
    connections: Arc<AtomicUsize>,
    /// Dropping the sender ends the worker's thread.
    _stop: oneshot::Sender<()>,
}

impl Workers {
    /// Starts `count` worker threads (at least one).
    pub fn start(count: usize) -> io::Result<Workers> {
        let workers = (0..count.max(1))
            .map(Worker::start)
            .collect::<io::Result<_>>()?;
        Ok(Workers { workers })
    }

    /// Returns how many connections each worker serves now, in worker order.
    pub fn connections(&self) -> Vec<usize> {
        self.workers
            .iter()
            .map(|worker| worker.connections.load(Ordering::Relaxed))
            .collect()
    }

    /// Hands the connection accepted from `client` to the worker serving the fewest, which runs
    /// `serve` on it.
    pub fn dispatch<S, F>(&self, stream: TcpStream, client: SocketAddr, serve: S)
    where
        S: FnOnce(TcpStream) -> F + Send + 'static,
        F: Future<Output = ()> + Send + 'static,
    {
        let worker = self
            .workers
            .iter()
            .min_by_key(|worker| worker.connections.load(Ordering::Relaxed))
            .expect("there is at least one worker");

        // The socket leaves this runtime's event loop and joins the worker's.
        let stream = match stream.into_std() {
            Ok(stream) => stream,
            Err(error) => {
                tracing::warn!(%error, %client, "failed to hand a connection to a worker; closed it");
                return;
            }
        };
        let open = OpenConnection::new(&worker.connections);
        worker.runtime.spawn(async move {
            let _open = open;
            match TcpStream::from_std(stream) {
                Ok(stream) => serve(stream).await,
                Err(error) => {
                    tracing::warn!(%error, %client, "failed to hand a connection to a worker; closed it");
                }
            }
        });
    }
}

impl Worker {
    fn start(index: usize) -> io::Result<Worker> {
        let runtime = Builder::new_current_thread().enable_all().build()?;
        let handle = runtime.handle().clone();
        let (stop, stopped) = oneshot::channel::<()>();
        std::thread::Builder::new()
            .name(format!("lmlb-worker-{index}"))
            .spawn(move || {
                WORKER.with(|worker| worker.set(Some(index)));
                // Returns when the sender is dropped. The runtime then drops its tasks on this thread.
                let _ = runtime.block_on(stopped);
            })?;
        Ok(Worker {
            runtime: handle,
            connections: Arc::new(AtomicUsize::new(0)),
            _stop: stop,
        })
    }
}

/// Counts one connection on a worker for as long as it lives.
struct OpenConnection(Arc<AtomicUsize>);

impl OpenConnection {
    fn new(count: &Arc<AtomicUsize>) -> OpenConnection {
        count.fetch_add(1, Ordering::Relaxed);
        OpenConnection(Arc::clone(count))
    }
}

impl Drop for OpenConnection {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    use super::*;

    /// Accepts `count` connections and dispatches each to a worker that writes back the index of
    /// the worker it runs on, then keeps the connection open until the client closes it.
    async fn dispatch_connections(workers: &Workers, count: usize) -> Vec<(TcpStream, u8)> {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let mut clients = Vec::new();
        for _ in 0..count {
            let mut client = TcpStream::connect(addr).await.unwrap();
            let (accepted, peer) = listener.accept().await.unwrap();
            workers.dispatch(accepted, peer, |mut stream| async move {
                let _ = stream.write_all(&[current() as u8]).await;
                let _ = stream.read(&mut [0u8; 1]).await;
            });
            let mut index = [0u8; 1];
            client.read_exact(&mut index).await.unwrap();
            clients.push((client, index[0]));
        }
        clients
    }

    #[tokio::test]
    async fn dispatch_picks_least_busy_worker() {
        let workers = Workers::start(2).unwrap();

        let clients = dispatch_connections(&workers, 4).await;

        let indices: Vec<u8> = clients.iter().map(|(_, index)| *index).collect();
        assert_eq!(indices, [0, 1, 0, 1]);
        assert_eq!(workers.connections(), [2, 2]);
    }

    #[tokio::test]
    async fn dispatch_forgets_closed_connections() {
        let workers = Workers::start(2).unwrap();
        let mut clients = dispatch_connections(&workers, 2).await;

        drop(clients.remove(0));
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        while workers.connections() != [0, 1] && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }

        assert_eq!(workers.connections(), [0, 1]);
        let next = dispatch_connections(&workers, 1).await;
        assert_eq!(next[0].1, 0, "the emptied worker takes the next connection");
    }

    #[tokio::test]
    async fn drop_closes_worker_connections() {
        let workers = Workers::start(1).unwrap();
        let mut clients = dispatch_connections(&workers, 1).await;

        drop(workers);

        let (client, _) = &mut clients[0];
        let read = tokio::time::timeout(Duration::from_secs(5), client.read(&mut [0u8; 1])).await;
        assert!(matches!(read, Ok(Ok(0)) | Ok(Err(_))), "{read:?}");
    }

    #[test]
    fn current_is_zero_off_workers() {
        assert_eq!(current(), 0);
    }
}
