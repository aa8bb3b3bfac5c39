//! Targets that take turns under the same closed-loop load.
//!
//! The speed of a shared machine drifts, on this VM by tens of percent within
//! a minute. Measured one after another, two targets can differ by that drift
//! alone. So the targets run side by side, idle but for their turns, and take
//! short turns in rotating order: a slow stretch of the machine falls on every
//! target alike, and each target's result sums all its turns.

use std::time::{Duration, Instant};

use bytes::Bytes;

use crate::loadgen::closed_loop::{ClosedLoop, ClosedReport};
use crate::progress::Progress;
use crate::targets::{Simulator, Target};
use crate::usage::{CpuCounter, Usage, UsageMonitor, cpu_percent};

/// The length of the turns and how many each target gets.
#[derive(Debug, Clone, Copy)]
pub struct Schedule {
    /// Unmeasured load on each target before the first turn.
    pub warmup: Duration,
    pub turn: Duration,
    pub turns: usize,
}

impl Schedule {
    fn total(&self, targets: usize) -> Duration {
        (self.warmup + self.turn * self.turns as u32) * targets as u32
    }
}

/// The request every connection sends.
#[derive(Debug, Clone)]
pub struct Load {
    pub path: &'static str,
    pub body: Bytes,
    pub connections: usize,
}

/// Results of one target's turns.
pub struct Turns {
    pub target: String,
    pub report: ClosedReport,
    /// Requests per second in each turn, in the order they ran.
    pub rates: Vec<f64>,
    /// The proxy's peak memory and its CPU during the turns, or `None` for a
    /// target without a proxy.
    pub proxy: Option<Usage>,
    /// CPU of the simulators and of the bench itself during the turns.
    pub simulator_cpu_percent: f64,
    pub bench_cpu_percent: f64,
}

/// Runs `load` against every target in turns of `schedule`'s length, and
/// returns each target's results in the order given.
pub async fn take_turns(
    label: &str,
    targets: Vec<Target>,
    simulators: &[&Simulator],
    load: &Load,
    schedule: Schedule,
) -> Vec<Turns> {
    let progress = Progress::start(label, 100);
    let ticker = progress.track_time(schedule.total(targets.len()));

    let mut contenders: Vec<Contender> = targets
        .into_iter()
        .map(|target| Contender::new(target, simulators, load))
        .collect();
    for contender in &mut contenders {
        contender.load.run_for(schedule.warmup).await;
    }
    let count = contenders.len();
    for turn in 0..schedule.turns {
        for next in 0..count {
            let index = (turn + next) % count;
            contenders[index].take_turn(schedule.turn).await;
        }
    }

    ticker.abort();
    contenders.into_iter().map(Contender::finish).collect()
}

/// A target with its connections and what its turns have measured so far.
struct Contender {
    target: Target,
    load: ClosedLoop,
    report: ClosedReport,
    rates: Vec<f64>,
    memory: Option<UsageMonitor>,
    cpu: TurnCpu,
}

impl Contender {
    fn new(target: Target, simulators: &[&Simulator], load: &Load) -> Self {
        let closed_loop =
            ClosedLoop::new(target.addr, load.path, load.body.clone(), load.connections);
        Self {
            load: closed_loop,
            report: ClosedReport::default(),
            rates: Vec::new(),
            memory: target.monitored.map(UsageMonitor::start),
            cpu: TurnCpu::new(target.monitored, simulators),
            target,
        }
    }

    async fn take_turn(&mut self, length: Duration) {
        let before = self.cpu.read();
        let started = Instant::now();
        let report = self.load.run_for(length).await;
        self.cpu.add_since(before, started.elapsed());

        self.rates.push(report.requests_per_sec());
        self.report.append(report);
    }

    fn finish(self) -> Turns {
        let [proxy_cpu, simulator_cpu, bench_cpu] = self.cpu.percents();
        let proxy = self.memory.map(|monitor| Usage {
            peak_rss_mb: monitor.finish().peak_rss_mb,
            cpu_percent: proxy_cpu,
        });
        Turns {
            target: self.target.name.clone(),
            report: self.report,
            rates: self.rates,
            proxy,
            simulator_cpu_percent: simulator_cpu,
            bench_cpu_percent: bench_cpu,
        }
    }
}

/// CPU ticks that the proxy, the simulators and the bench used during one
/// target's turns, and the wall time of those turns.
struct TurnCpu {
    proxy: Option<CpuCounter>,
    simulators: Vec<CpuCounter>,
    bench: CpuCounter,
    used: [u64; 3],
    wall: Duration,
}

impl TurnCpu {
    fn new(proxy: Option<u32>, simulators: &[&Simulator]) -> Self {
        Self {
            proxy: proxy.map(CpuCounter::tree),
            simulators: simulators
                .iter()
                .map(|simulator| CpuCounter::tree(simulator.pid()))
                .collect(),
            bench: CpuCounter::single(std::process::id()),
            used: [0; 3],
            wall: Duration::ZERO,
        }
    }

    fn read(&self) -> [u64; 3] {
        [
            self.proxy.as_ref().map_or(0, CpuCounter::ticks),
            self.simulators.iter().map(CpuCounter::ticks).sum(),
            self.bench.ticks(),
        ]
    }

    fn add_since(&mut self, before: [u64; 3], elapsed: Duration) {
        let now = self.read();
        for ((used, now), before) in self.used.iter_mut().zip(now).zip(before) {
            *used += now.saturating_sub(before);
        }
        self.wall += elapsed;
    }

    fn percents(&self) -> [f64; 3] {
        let wall = self.wall.as_secs_f64();
        self.used.map(|ticks| cpu_percent(ticks, wall))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::loadgen::http::{CHAT_PATH, chat_body};
    use crate::loadgen::test_server::TestServer;

    fn target(name: &str, server: &TestServer) -> Target {
        Target {
            name: name.to_owned(),
            addr: server.addr(),
            monitored: None,
            _processes: Vec::new(),
        }
    }

    #[tokio::test]
    async fn every_target_gets_every_turn() {
        let first = TestServer::start(Duration::ZERO).await;
        let second = TestServer::start(Duration::ZERO).await;
        let load = Load {
            path: CHAT_PATH,
            body: chat_body("m", 4, false),
            connections: 2,
        };
        let schedule = Schedule {
            warmup: Duration::from_millis(50),
            turn: Duration::from_millis(100),
            turns: 3,
        };
        let targets = vec![target("first", &first), target("second", &second)];

        let results = take_turns("test", targets, &[], &load, schedule).await;

        let names: Vec<&str> = results.iter().map(|r| r.target.as_str()).collect();
        assert_eq!(names, ["first", "second"]);
        for result in &results {
            assert_eq!(result.rates.len(), 3);
            assert!(
                result.rates.iter().all(|&rate| rate > 0.0),
                "{:?}",
                result.rates
            );
            assert_eq!(result.report.window, Duration::from_millis(300));
            assert_eq!(result.report.errors, 0, "{:?}", result.report.error_samples);
            assert!(result.proxy.is_none());
        }
        // The connections stay open from the warm-up through the last turn.
        assert_eq!(first.connections(), 2);
        assert_eq!(second.connections(), 2);
    }
}
