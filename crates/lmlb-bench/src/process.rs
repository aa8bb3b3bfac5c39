//! Child processes on loopback: free ports, start-up with a readiness probe,
//! and a guard that stops the process (and its process group) on drop, also on
//! error and Ctrl-C.

use std::fs::File;
use std::future::Future;
use std::net::{SocketAddr, TcpListener};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::error::BenchError;

/// How long a process gets to exit after SIGTERM before SIGKILL.
const STOP_GRACE: Duration = Duration::from_secs(3);
/// Pause between readiness probes.
const PROBE_INTERVAL: Duration = Duration::from_millis(50);

/// Returns a loopback port that was free a moment ago. Another process can
/// take it before the child binds it, and then start-up fails with the child's
/// log.
pub fn free_port() -> Result<u16, BenchError> {
    let listener = TcpListener::bind("127.0.0.1:0")
        .map_err(|e| BenchError::io("failed to bind a loopback port", e))?;
    let port = listener
        .local_addr()
        .map_err(|e| BenchError::io("failed to read a bound port", e))?
        .port();
    Ok(port)
}

pub fn loopback(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

/// A running child in its own process group. Dropping it sends SIGTERM to the
/// group, waits up to [`STOP_GRACE`], then sends SIGKILL, so that helpers such
/// as nginx workers stop with it.
#[derive(Debug)]
pub struct ChildProcess {
    name: String,
    child: Child,
    log: PathBuf,
}

impl ChildProcess {
    /// Starts `command` with stdout and stderr appended to `log`.
    pub fn spawn(name: &str, mut command: Command, log: &Path) -> Result<Self, BenchError> {
        let output = File::create(log)
            .map_err(|e| BenchError::io(format!("failed to create {}", log.display()), e))?;
        let errors = output
            .try_clone()
            .map_err(|e| BenchError::io("failed to duplicate a log file handle", e))?;
        command
            .stdin(Stdio::null())
            .stdout(output)
            .stderr(errors)
            .process_group(0);

        let child = command.spawn().map_err(|source| BenchError::Spawn {
            program: format!("{name} ({:?})", command.get_program()),
            source,
        })?;
        Ok(Self {
            name: name.to_owned(),
            child,
            log: log.to_owned(),
        })
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Polls `probe` until it returns `Ok(())`, the child exits, or `timeout`
    /// passes. The last probe error becomes the reason in the timeout error.
    pub async fn wait_ready<F, Fut>(
        &mut self,
        timeout: Duration,
        mut probe: F,
    ) -> Result<(), BenchError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<(), String>>,
    {
        let deadline = Instant::now() + timeout;
        loop {
            let reason = match probe().await {
                Ok(()) => return Ok(()),
                Err(reason) => reason,
            };
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(BenchError::ExitedEarly {
                    name: self.name.clone(),
                    status: status.to_string(),
                    log: self.log.clone(),
                });
            }
            if Instant::now() >= deadline {
                return Err(BenchError::NotReady {
                    name: self.name.clone(),
                    timeout,
                    reason,
                    log: self.log.clone(),
                });
            }
            tokio::time::sleep(PROBE_INTERVAL).await;
        }
    }

    fn signal_group(&self, signal: &str) {
        // std sends only SIGKILL and only to one process, so `kill` reaches the
        // whole group without unsafe code.
        let _ = Command::new("kill")
            .args(["-s", signal, "--", &format!("-{}", self.child.id())])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

impl Drop for ChildProcess {
    fn drop(&mut self) {
        if let Ok(Some(_)) = self.child.try_wait() {
            // The leader exited, but helpers left in its group still get stopped.
            self.signal_group("KILL");
            return;
        }
        self.signal_group("TERM");
        let deadline = Instant::now() + STOP_GRACE;
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                self.signal_group("KILL");
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        self.signal_group("KILL");
        let _ = self.child.wait();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn is_running(pid: u32) -> bool {
        Path::new(&format!("/proc/{pid}")).exists()
            && !std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .unwrap_or_default()
                .contains(") Z ")
    }

    #[test]
    fn free_port_is_nonzero() {
        assert_ne!(free_port().unwrap(), 0);
    }

    #[test]
    fn drop_stops_the_process_group() {
        let dir = tempdir();
        let mut command = Command::new("sh");
        // The shell starts a grandchild in the same group, as nginx starts workers.
        command.args(["-c", "sleep 60 & echo $! > child.pid; wait"]);
        command.current_dir(&dir);
        let process = ChildProcess::spawn("sleeper", command, &dir.join("log")).unwrap();
        let leader = process.pid();
        let grandchild = wait_for_pid_file(&dir.join("child.pid"));

        drop(process);

        assert!(!is_running(leader), "the leader {leader} still runs");
        // The group's SIGKILL is delivered asynchronously, so the grandchild may need a moment.
        let deadline = Instant::now() + Duration::from_secs(5);
        while is_running(grandchild) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        assert!(
            !is_running(grandchild),
            "the grandchild {grandchild} still runs"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[tokio::test]
    async fn wait_ready_reports_early_exit() {
        let dir = tempdir();
        let mut command = Command::new("sh");
        command.args(["-c", "exit 3"]);
        let mut process = ChildProcess::spawn("quitter", command, &dir.join("log")).unwrap();

        let result = process
            .wait_ready(Duration::from_secs(5), || async {
                Err("not yet".to_owned())
            })
            .await;

        assert!(
            matches!(result, Err(BenchError::ExitedEarly { .. })),
            "{result:?}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[tokio::test]
    async fn wait_ready_returns_once_the_probe_passes() {
        let dir = tempdir();
        let mut command = Command::new("sleep");
        command.arg("30");
        let mut process = ChildProcess::spawn("sleeper", command, &dir.join("log")).unwrap();
        let mut probes = 0;

        let result = process
            .wait_ready(Duration::from_secs(5), || {
                probes += 1;
                let ready = probes >= 3;
                async move {
                    if ready {
                        Ok(())
                    } else {
                        Err("not yet".to_owned())
                    }
                }
            })
            .await;

        assert!(result.is_ok(), "{result:?}");
        assert_eq!(probes, 3);
        drop(process);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    fn tempdir() -> PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "lmlb-bench-test-{}-{}",
            std::process::id(),
            free_port().unwrap()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    fn wait_for_pid_file(path: &Path) -> u32 {
        for _ in 0..500 {
            if let Ok(text) = std::fs::read_to_string(path) {
                if let Ok(pid) = text.trim().parse() {
                    return pid;
                }
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        panic!("{} was never written", path.display());
    }
}
