//! Targets: the endpoints a scenario sends load to, each with the processes
//! behind it. This module starts the simulator and lmlb, and `peers` starts
//! nginx and LiteLLM.

use std::net::SocketAddr;
use std::process::Command;
use std::time::Duration;

use crate::error::BenchError;
use crate::loadgen::http::get_json;
use crate::process::{ChildProcess, free_port, loopback};
use crate::workspace::{LMLB_BINARY, SIMULATOR_BINARY, Workspace};

/// The chat model every scenario requests.
pub const MODEL: &str = "qwen2.5-7b-instruct";
/// Time allowed for the simulator, lmlb or nginx to respond after start.
pub const START_TIMEOUT: Duration = Duration::from_secs(20);

/// A running endpoint under load.
#[derive(Debug)]
pub struct Target {
    pub name: String,
    pub addr: SocketAddr,
    /// The process whose memory and CPU the report shows (the proxy), or `None`
    /// when the load goes straight to the simulator.
    pub monitored: Option<u32>,
    /// Kept to stop the processes when the target is dropped.
    pub _processes: Vec<ChildProcess>,
}

/// A running simulator.
#[derive(Debug)]
pub struct Simulator {
    pub addr: SocketAddr,
    /// Kept to stop the simulator when dropped.
    pub _process: ChildProcess,
}

/// The simulator's timing and models.
#[derive(Debug, Clone)]
pub struct SimulatorConfig {
    /// `--model` specs, e.g. `qwen2.5-7b-instruct,instances=3,parallel=1`.
    pub models: Vec<String>,
    /// 0 = instant generation.
    pub tokens_per_second: f64,
    pub ttft: Duration,
    /// Whether the simulator stamps each streamed token with the time it wrote it (`--stamp-tokens`).
    pub stamp_tokens: bool,
}

impl Simulator {
    pub fn pid(&self) -> u32 {
        self._process.pid()
    }

    /// Returns the base URL to give a proxy as its upstream.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Reads `/sim/stats` and returns each instance's id and served count.
    pub async fn served(&self) -> Result<Vec<(String, u64)>, String> {
        let stats = get_json(self.addr, "/sim/stats").await?;
        let instances = stats["instances"]
            .as_array()
            .ok_or("`/sim/stats` has no `instances` array")?;
        Ok(instances
            .iter()
            .map(|i| {
                let id = i["id"].as_str().unwrap_or("?").to_owned();
                (id, i["served"].as_u64().unwrap_or(0))
            })
            .collect())
    }
}

/// Starts `lmstudio-sim` on a free port and waits until it lists its models.
pub async fn start_simulator(
    workspace: &Workspace,
    name: &str,
    config: &SimulatorConfig,
) -> Result<Simulator, BenchError> {
    let port = free_port()?;
    let mut command = Command::new(workspace.binary(SIMULATOR_BINARY));
    command
        .arg("--port")
        .arg(port.to_string())
        .arg("--tokens-per-second")
        .arg(config.tokens_per_second.to_string())
        .arg("--ttft-ms")
        .arg(config.ttft.as_millis().to_string());
    if config.stamp_tokens {
        command.arg("--stamp-tokens");
    }
    for model in &config.models {
        command.arg("--model").arg(model);
    }

    let log = workspace.file(&format!("{name}.log"));
    let mut process = ChildProcess::spawn(name, command, &log)?;
    let addr = loopback(port);
    process
        .wait_ready(START_TIMEOUT, || async move {
            get_json(addr, "/v1/models").await.map(|_| ())
        })
        .await?;
    Ok(Simulator {
        addr,
        _process: process,
    })
}

/// Starts lmlb in front of `upstreams` and waits until `/health` shows every
/// upstream up.
pub async fn start_lmlb(
    workspace: &Workspace,
    upstreams: &[&Simulator],
) -> Result<Target, BenchError> {
    let port = free_port()?;
    let mut command = Command::new(workspace.binary(LMLB_BINARY));
    command
        .arg("--port")
        .arg(port.to_string())
        .args(["--log-level", "warn"]);
    for upstream in upstreams {
        command.arg("--upstream").arg(upstream.url());
    }
    // Keep settings from the environment or a `.env` file out of the run.
    command
        .current_dir(&workspace.run_dir)
        .env_remove("LM_STUDIO_URL")
        .env_remove("LOAD_BALANCER_PORT")
        .env_remove("ENABLE_REQUEST_LOGGING");

    let log = workspace.file("lmlb.log");
    let mut process = ChildProcess::spawn("lmlb", command, &log)?;
    let addr = loopback(port);
    let expected = upstreams.len();
    process
        .wait_ready(START_TIMEOUT, || async move {
            check_lmlb_health(addr, expected).await
        })
        .await?;

    Ok(Target {
        name: "lmlb".to_owned(),
        addr,
        monitored: Some(process.pid()),
        _processes: vec![process],
    })
}

async fn check_lmlb_health(addr: SocketAddr, expected: usize) -> Result<(), String> {
    let health = get_json(addr, "/health").await?;
    let upstreams = health["upstreams"]
        .as_array()
        .ok_or("`/health` has no `upstreams` array")?;
    let up = upstreams.iter().filter(|u| u["state"] == "up").count();
    if up < expected {
        return Err(format!("{up} of {expected} upstreams up: {health}"));
    }
    Ok(())
}

impl Target {
    /// Returns the simulator itself as a target, the baseline for every proxy.
    /// The simulator keeps running when this target is dropped.
    pub fn direct(simulator: &Simulator) -> Self {
        Self {
            name: "direct".to_owned(),
            addr: simulator.addr,
            monitored: None,
            _processes: Vec::new(),
        }
    }
}
