//! The LiteLLM proxy (PyPI `litellm[proxy]`, version pinned in
//! `scripts/bench-setup.sh`) with the `least-busy` routing strategy, one
//! deployment per simulator instance as `lm_studio/<instance id>`.
//!
//! LiteLLM runs offline: its model cost map, blog posts, policy templates and
//! Anthropic beta headers come from the package (the `LITELLM_LOCAL_*`
//! variables), telemetry is off, and there is no database.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use crate::error::BenchError;
use crate::loadgen::http::get_json;
use crate::process::{ChildProcess, free_port, loopback};
use crate::targets::{MODEL, Target};
use crate::workspace::Workspace;

/// Python imports take a while on a loaded 2-core machine.
const START_TIMEOUT: Duration = Duration::from_secs(180);
const READY_PATH: &str = "/health/liveliness";

/// Variables that keep LiteLLM from fetching anything at start-up.
const OFFLINE_ENV: [(&str, &str); 8] = [
    ("LITELLM_LOCAL_MODEL_COST_MAP", "True"),
    ("LITELLM_LOCAL_BLOG_POSTS", "True"),
    ("LITELLM_LOCAL_POLICY_TEMPLATES", "True"),
    ("LITELLM_LOCAL_ANTHROPIC_BETA_HEADERS", "True"),
    ("LITELLM_TELEMETRY", "False"),
    ("LITELLM_LOG", "ERROR"),
    ("DO_NOT_TRACK", "1"),
    ("PYTHONUNBUFFERED", "1"),
];

/// One LiteLLM deployment: an instance id on a simulator.
#[derive(Debug, Clone)]
pub struct Deployment {
    pub instance: String,
    pub simulator: SocketAddr,
}

fn executable(workspace: &Workspace) -> PathBuf {
    workspace.root.join(".bench/venv/bin/litellm")
}

/// Returns why LiteLLM cannot run here, or `None` when it can.
pub fn unavailable(workspace: &Workspace) -> Option<String> {
    let path = executable(workspace);
    (!path.is_file()).then(|| format!("{} not found; run scripts/bench-setup.sh", path.display()))
}

/// Starts the proxy with `workers` uvicorn worker processes and waits until
/// it responds. With more than one worker, each keeps its own count of
/// requests in flight, so `least-busy` counts only that worker's share.
pub async fn start(
    workspace: &Workspace,
    deployments: &[Deployment],
    workers: usize,
) -> Result<Target, BenchError> {
    let config_path = workspace.file("litellm.yaml");
    std::fs::write(&config_path, render_config(deployments))
        .map_err(|e| BenchError::io(format!("failed to write {}", config_path.display()), e))?;

    let port = free_port()?;
    let mut command = Command::new(executable(workspace));
    command
        .arg("--config")
        .arg(&config_path)
        .args(["--host", "127.0.0.1", "--port", &port.to_string()])
        .args([
            "--num_workers",
            &workers.to_string(),
            "--telemetry",
            "False",
        ])
        .current_dir(&workspace.run_dir)
        .env_remove("DATABASE_URL")
        .envs(OFFLINE_ENV);
    let mut process = ChildProcess::spawn("litellm", command, &workspace.file("litellm.log"))?;

    let addr = loopback(port);
    process
        .wait_ready(START_TIMEOUT, || async move {
            get_json(addr, READY_PATH).await.map(|_| ())
        })
        .await?;
    Ok(Target {
        name: "litellm".to_owned(),
        addr,
        monitored: Some(process.pid()),
        _processes: vec![process],
    })
}

/// Renders the proxy configuration: every deployment under the model name the
/// clients request, so that the router balances across them.
pub fn render_config(deployments: &[Deployment]) -> String {
    let mut config = String::from("model_list:\n");
    for deployment in deployments {
        config.push_str(&format!(
            "  - model_name: {MODEL}\n    litellm_params:\n      model: lm_studio/{instance}\n      api_base: http://{addr}/v1\n      api_key: lm-studio\n",
            instance = deployment.instance,
            addr = deployment.simulator,
        ));
    }
    config.push_str(
        "router_settings:\n  routing_strategy: least-busy\n  num_retries: 0\n\
         litellm_settings:\n  telemetry: False\n  drop_params: True\n  request_timeout: 600\n",
    );
    config
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_has_one_entry_per_instance() {
        let deployments: Vec<Deployment> = ["qwen2.5-7b-instruct", "qwen2.5-7b-instruct:2"]
            .iter()
            .map(|id| Deployment {
                instance: (*id).to_owned(),
                simulator: loopback(1234),
            })
            .collect();

        let config = render_config(&deployments);

        assert!(config.contains("model: lm_studio/qwen2.5-7b-instruct\n"));
        assert!(config.contains("model: lm_studio/qwen2.5-7b-instruct:2\n"));
        assert_eq!(
            config.matches("model_name: qwen2.5-7b-instruct\n").count(),
            2
        );
        assert_eq!(
            config.matches("api_base: http://127.0.0.1:1234/v1").count(),
            2
        );
        assert!(config.contains("routing_strategy: least-busy"));
    }
}
