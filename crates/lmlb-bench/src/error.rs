//! The bench's error type.

use std::io;
use std::path::PathBuf;
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    #[error("failed to start {program}: {source}")]
    Spawn {
        program: String,
        #[source]
        source: io::Error,
    },
    #[error("{name} exited during start-up ({status}); its output is in {log}")]
    ExitedEarly {
        name: String,
        status: String,
        log: PathBuf,
    },
    #[error("{name} was not ready after {timeout:?}: {reason}; its output is in {log}")]
    NotReady {
        name: String,
        timeout: Duration,
        reason: String,
        log: PathBuf,
    },
    #[error("`{command}` failed: {reason}")]
    Build { command: String, reason: String },
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: io::Error,
    },
    #[error("{context}: {source}")]
    Request {
        context: String,
        #[source]
        source: crate::loadgen::http::ClientError,
    },
    #[error("interrupted by a signal, and every started process was stopped")]
    Interrupted,
}

impl BenchError {
    pub fn io(context: impl Into<String>, source: io::Error) -> Self {
        Self::Io {
            context: context.into(),
            source,
        }
    }
}
