//! `lmlb demo`: a simulated LM Studio in-process with lmlb in front of it.

use std::time::Duration;

use lmstudio_sim::SimConfig;

use crate::config::{Config, DemoArgs};
use crate::server::Server;

/// Starts the simulator (three instances of a chat model and one embedding model) and lmlb, prints
/// how to try them, and runs until SIGINT (Ctrl-C) or SIGTERM.
///
/// `port` is the demo's own `--port`, else the one given before `demo` (`lmlb --port N demo`).
pub async fn run(args: DemoArgs, port: Option<u16>) -> Result<(), String> {
    let port = args.port.or(port).unwrap_or(crate::config::DEFAULT_PORT);
    let mut sim_config = SimConfig::with_models(&[
        "qwen2.5-7b-instruct,instances=3,parallel=1",
        "text-embedding-nomic-embed-text-v1.5,instances=1,type=embeddings",
    ]);
    sim_config.tokens_per_second = args.tokens_per_second;
    sim_config.ttft = Duration::from_millis(200);
    let simulator = lmstudio_sim::start(sim_config)
        .await
        .map_err(|e| format!("failed to start the simulator: {e}"))?;

    let mut config = Config::for_upstreams(&[simulator.url()])?;
    config.listen.set_port(port);
    config.upstreams[0].name = "simulator".to_string();
    config.refresh_interval = Duration::from_secs(2);
    let server = Server::start(config).await.map_err(|e| {
        format!("failed to listen on port {port}: {e}; choose another with `lmlb demo --port N`")
    })?;

    print_welcome(&server.url(), &simulator.url());
    crate::server::wait_for_signal().await;
    server.shutdown().await;
    simulator.shutdown().await;
    Ok(())
}

fn print_welcome(lmlb: &str, simulator: &str) {
    println!();
    println!("lmlb is listening on {lmlb}");
    println!(
        "in front of a simulated LM Studio on {simulator} with qwen2.5-7b-instruct (3 instances)"
    );
    println!("and text-embedding-nomic-embed-text-v1.5 (1 instance).");
    println!();
    println!("Try a streamed chat completion:");
    println!();
    println!("  curl -N {lmlb}/v1/chat/completions -H 'Content-Type: application/json' \\");
    println!(
        "    -d '{{\"model\":\"qwen2.5-7b-instruct\",\"stream\":true,\"max_tokens\":20,\"messages\":[{{\"role\":\"user\",\"content\":\"Hello\"}}]}}'"
    );
    println!();
    println!("Dashboard: {lmlb}/dashboard   Status: {lmlb}/models   Metrics: {lmlb}/metrics");
    println!("Press Ctrl-C to stop.");
}
