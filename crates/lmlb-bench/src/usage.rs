//! Memory and CPU use of a process and its descendants, read from `/proc`.
//!
//! Memory is the peak of the summed `VmRSS` over samples taken every
//! [`SAMPLE_INTERVAL`], and at least the root's `VmHWM` (the kernel's own peak,
//! exact for a single process). CPU is the growth of `utime + stime` (all
//! threads) over the wall time between [`UsageMonitor::start`] and
//! [`UsageMonitor::finish`], in percent of one core.
//!
//! Finding a tree's members reads every process's `stat`, and the sampler
//! shares the machine with the load generator. So it looks for new members
//! only every [`TREE_REFRESH`] samples.

use std::collections::HashMap;
use std::fs;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::task::JoinHandle;

pub const SAMPLE_INTERVAL: Duration = Duration::from_millis(100);
/// Samples between two searches for a tree's members.
const TREE_REFRESH: u32 = 10;
/// Clock ticks per second of `/proc/PID/stat`'s `utime` and `stime`: 100 on
/// Linux for every architecture the bench runs on (`getconf CLK_TCK`).
const CLOCK_TICKS_PER_SECOND: f64 = 100.0;

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Usage {
    pub peak_rss_mb: f64,
    /// Percent of one core, so 200 means both cores of a 2-core machine.
    pub cpu_percent: f64,
}

/// Samples a process tree until [`UsageMonitor::finish`].
#[derive(Debug)]
pub struct UsageMonitor {
    root: u32,
    /// Whether descendants of `root` count too.
    tree: bool,
    started: Instant,
    start_ticks: u64,
    peak_rss_kb: Arc<Mutex<u64>>,
    sampler: JoinHandle<()>,
}

impl UsageMonitor {
    /// Monitors `root` and all its descendants.
    pub fn start(root: u32) -> Self {
        Self::spawn(root, true)
    }

    /// Monitors `pid` alone, without its children.
    pub fn start_single(pid: u32) -> Self {
        Self::spawn(pid, false)
    }

    fn spawn(root: u32, tree: bool) -> Self {
        let peak_rss_kb = Arc::new(Mutex::new(rss_kb(root, tree)));
        let peak = Arc::clone(&peak_rss_kb);
        let sampler = tokio::spawn(async move {
            let mut interval = tokio::time::interval(SAMPLE_INTERVAL);
            let mut pids = members(root, tree);
            for sample in 1u32.. {
                interval.tick().await;
                if sample % TREE_REFRESH == 0 {
                    pids = members(root, tree);
                }
                let rss = total_rss_kb(&pids);
                let mut peak = peak.lock().expect("no sampler panics while holding it");
                *peak = (*peak).max(rss);
            }
        });
        Self {
            root,
            tree,
            started: Instant::now(),
            start_ticks: cpu_ticks(root, tree),
            peak_rss_kb,
            sampler,
        }
    }

    pub fn finish(self) -> Usage {
        self.sampler.abort();
        let wall = self.started.elapsed().as_secs_f64();
        let ticks = cpu_ticks(self.root, self.tree).saturating_sub(self.start_ticks);
        let sampled = *self.peak_rss_kb.lock().expect("the sampler has stopped");
        let peak_kb = sampled
            .max(rss_kb(self.root, self.tree))
            .max(high_water_kb(self.root));
        Usage {
            peak_rss_mb: peak_kb as f64 / 1024.0,
            cpu_percent: cpu_percent(ticks, wall),
        }
    }
}

/// The CPU time of a set of processes fixed when it is made, for measuring
/// many short spans cheaply.
#[derive(Debug, Clone)]
pub struct CpuCounter {
    pids: Vec<u32>,
}

impl CpuCounter {
    /// Counts `root` and the descendants it has now.
    pub fn tree(root: u32) -> Self {
        Self {
            pids: process_tree(root),
        }
    }

    /// Counts `pid` alone.
    pub fn single(pid: u32) -> Self {
        Self { pids: vec![pid] }
    }

    /// Returns the `utime + stime` clock ticks used so far.
    pub fn ticks(&self) -> u64 {
        self.pids
            .iter()
            .filter_map(|&pid| read_stat(pid))
            .map(|stat| stat.cpu_ticks)
            .sum()
    }
}

/// Converts clock ticks used over `wall_secs` seconds into percent of one core.
pub fn cpu_percent(ticks: u64, wall_secs: f64) -> f64 {
    ticks as f64 / CLOCK_TICKS_PER_SECOND / wall_secs * 100.0
}

/// Returns `pid` and all its descendants that are alive now.
pub fn process_tree(root: u32) -> Vec<u32> {
    let mut children: HashMap<u32, Vec<u32>> = HashMap::new();
    if let Ok(entries) = fs::read_dir("/proc") {
        for entry in entries.flatten() {
            let Some(pid) = entry.file_name().to_str().and_then(|s| s.parse().ok()) else {
                continue;
            };
            if let Some(parent) = read_stat(pid).map(|stat| stat.parent) {
                children.entry(parent).or_default().push(pid);
            }
        }
    }

    let mut tree = vec![root];
    let mut next = 0;
    while next < tree.len() {
        if let Some(kids) = children.get(&tree[next]) {
            tree.extend(kids);
        }
        next += 1;
    }
    tree
}

fn members(root: u32, tree: bool) -> Vec<u32> {
    if tree { process_tree(root) } else { vec![root] }
}

fn rss_kb(root: u32, tree: bool) -> u64 {
    total_rss_kb(&members(root, tree))
}

fn total_rss_kb(pids: &[u32]) -> u64 {
    pids.iter().map(|&pid| status_kb(pid, "VmRSS:")).sum()
}

fn cpu_ticks(root: u32, tree: bool) -> u64 {
    let pids = members(root, tree);
    CpuCounter { pids }.ticks()
}

fn high_water_kb(pid: u32) -> u64 {
    status_kb(pid, "VmHWM:")
}

/// Reads a `kB` field of `/proc/PID/status`, or 0 when the process is gone.
fn status_kb(pid: u32, field: &str) -> u64 {
    let Ok(status) = fs::read_to_string(format!("/proc/{pid}/status")) else {
        return 0;
    };
    parse_status_kb(&status, field).unwrap_or(0)
}

fn parse_status_kb(status: &str, field: &str) -> Option<u64> {
    let line = status.lines().find(|line| line.starts_with(field))?;
    line[field.len()..].split_whitespace().next()?.parse().ok()
}

struct Stat {
    parent: u32,
    cpu_ticks: u64,
}

fn read_stat(pid: u32) -> Option<Stat> {
    parse_stat(&fs::read_to_string(format!("/proc/{pid}/stat")).ok()?)
}

/// Parses `/proc/PID/stat`. The command name (field 2) can hold spaces and
/// parentheses, so fields are counted from its last `)`.
fn parse_stat(stat: &str) -> Option<Stat> {
    let after_name = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    // After the name: state (3), ppid (4), ... utime (14), stime (15).
    let parent = fields.get(1)?.parse().ok()?;
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(Stat {
        parent,
        cpu_ticks: utime + stime,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_stat_reads_parent_and_ticks() {
        let line = "1234 (my (odd) name) S 77 1234 1234 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 4 0";
        let stat = parse_stat(line).unwrap();
        assert_eq!(stat.parent, 77);
        assert_eq!(stat.cpu_ticks, 300);
    }

    #[test]
    fn parse_status_reads_kilobytes() {
        let status = "Name:\tlmlb\nVmHWM:\t   12345 kB\nVmRSS:\t    6789 kB\n";
        assert_eq!(parse_status_kb(status, "VmRSS:"), Some(6789));
        assert_eq!(parse_status_kb(status, "VmHWM:"), Some(12345));
        assert_eq!(parse_status_kb(status, "VmSwap:"), None);
    }

    #[test]
    fn own_process_has_memory() {
        let pid = std::process::id();
        assert!(rss_kb(pid, false) > 0);
        assert!(rss_kb(pid, true) >= rss_kb(pid, false));
        assert!(high_water_kb(pid) > 0);
    }

    #[test]
    fn process_tree_contains_children() {
        let mut child = std::process::Command::new("sleep")
            .arg("5")
            .spawn()
            .unwrap();
        let tree = process_tree(std::process::id());
        let found = tree.contains(&child.id());
        child.kill().unwrap();
        child.wait().unwrap();
        assert!(found, "child {} missing from {tree:?}", child.id());
    }

    #[test]
    fn counter_counts_a_busy_child() {
        let mut child = std::process::Command::new("sh")
            .args(["-c", "while :; do :; done"])
            .spawn()
            .unwrap();
        let counter = CpuCounter::tree(child.id());
        let before = counter.ticks();
        std::thread::sleep(Duration::from_millis(500));
        let used = counter.ticks() - before;
        child.kill().unwrap();
        child.wait().unwrap();

        // The child spins on one core, or less when other work shares the machine.
        let percent = cpu_percent(used, 0.5);
        assert!(percent > 20.0, "cpu {percent}%");
        assert!(percent < 130.0, "cpu {percent}%");
    }

    #[tokio::test]
    async fn monitor_measures_busy_cpu() {
        let mut child = std::process::Command::new("sh")
            .args(["-c", "while :; do :; done"])
            .spawn()
            .unwrap();
        let monitor = UsageMonitor::start(child.id());
        tokio::time::sleep(Duration::from_millis(600)).await;
        let usage = monitor.finish();
        child.kill().unwrap();
        child.wait().unwrap();

        // A busy loop takes one core, or less when other work shares the machine.
        assert!(usage.cpu_percent > 20.0, "cpu {}%", usage.cpu_percent);
        assert!(usage.cpu_percent < 130.0, "cpu {}%", usage.cpu_percent);
        assert!(usage.peak_rss_mb > 0.0);
    }
}
