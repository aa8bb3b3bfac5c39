//! The processes behind each scheduling target.
//!
//! lmlb and LiteLLM balance one simulator with three one-slot instances
//! (`id`, `id:2`, `id:3`). nginx cannot rewrite the model, so it balances
//! three simulators of one one-slot instance each.

use std::net::SocketAddr;

use crate::error::BenchError;
use crate::peers::litellm::{self, Deployment as LitellmDeployment};
use crate::peers::nginx::{self, Balance};
use crate::targets::{MODEL, Simulator, SimulatorConfig, Target, start_lmlb, start_simulator};
use crate::trace::ServiceModel;

use super::super::{Context, start_peer};
use super::{INSTANCES, SCENARIO};

/// LiteLLM keeps its count of requests in flight per worker process, so with
/// one worker the count covers every request.
const LITELLM_WORKERS: usize = 1;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Lmlb,
    NginxRoundRobin,
    NginxLeastConn,
    Litellm,
}

impl Kind {
    pub const ALL: [Kind; 4] = [
        Kind::Lmlb,
        Kind::NginxRoundRobin,
        Kind::NginxLeastConn,
        Kind::Litellm,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Kind::Lmlb => "lmlb",
            Kind::NginxRoundRobin => Balance::RoundRobin.target_name(),
            Kind::NginxLeastConn => Balance::LeastConn.target_name(),
            Kind::Litellm => "litellm",
        }
    }
}

/// A target and its simulators. The proxy stops first when dropped.
#[derive(Debug)]
pub struct Deployment {
    pub target: Target,
    pub simulators: Vec<Simulator>,
}

/// Starts `kind`. The outer error is fatal (the simulator or lmlb failed);
/// the inner one is a peer's reason to be skipped.
pub async fn start(
    context: &Context,
    kind: Kind,
    service: ServiceModel,
) -> Result<Result<Deployment, String>, BenchError> {
    let workspace = &context.workspace;
    let simulators = match kind {
        Kind::Lmlb | Kind::Litellm => {
            vec![start_sim(context, "sim-scheduling", INSTANCES, service).await?]
        }
        Kind::NginxRoundRobin | Kind::NginxLeastConn => {
            let mut simulators = Vec::new();
            for index in 1..=INSTANCES {
                let name = format!("sim-scheduling-{index}");
                simulators.push(start_sim(context, &name, 1, service).await?);
            }
            simulators
        }
    };
    let addrs: Vec<SocketAddr> = simulators.iter().map(|s| s.addr).collect();

    let target = match kind {
        Kind::Lmlb => {
            let upstreams: Vec<&Simulator> = simulators.iter().collect();
            Ok(start_lmlb(workspace, &upstreams).await?)
        }
        Kind::NginxRoundRobin => start_nginx(context, &addrs, Balance::RoundRobin).await,
        Kind::NginxLeastConn => start_nginx(context, &addrs, Balance::LeastConn).await,
        Kind::Litellm => start_litellm(context, addrs[0]).await,
    };
    Ok(target.map(|target| Deployment { target, simulators }))
}

pub async fn start_sim(
    context: &Context,
    name: &str,
    instances: usize,
    service: ServiceModel,
) -> Result<Simulator, BenchError> {
    let config = SimulatorConfig {
        models: vec![format!("{MODEL},instances={instances},parallel=1")],
        tokens_per_second: service.tokens_per_second,
        ttft: service.ttft,
        stamp_tokens: false,
    };
    start_simulator(&context.workspace, name, &config).await
}

async fn start_nginx(
    context: &Context,
    addrs: &[SocketAddr],
    balance: Balance,
) -> Result<Target, String> {
    let start = nginx::start(&context.workspace, addrs, balance);
    start_peer(SCENARIO, balance.target_name(), nginx::unavailable(), start).await
}

async fn start_litellm(context: &Context, simulator: SocketAddr) -> Result<Target, String> {
    let deployments: Vec<LitellmDeployment> = instance_ids()
        .into_iter()
        .map(|instance| LitellmDeployment {
            instance,
            simulator,
        })
        .collect();
    let start = litellm::start(&context.workspace, &deployments, LITELLM_WORKERS);
    start_peer(
        SCENARIO,
        "litellm",
        litellm::unavailable(&context.workspace),
        start,
    )
    .await
}

/// LM Studio's instance ids: `id`, then `id:2`, `id:3`, ...
fn instance_ids() -> Vec<String> {
    (1..=INSTANCES)
        .map(|n| {
            if n == 1 {
                MODEL.to_owned()
            } else {
                format!("{MODEL}:{n}")
            }
        })
        .collect()
}
