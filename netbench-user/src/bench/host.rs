//! The host around the run: what the run left behind (must be nothing) and how busy
//! the machine was apart from it.
use std::time::{Duration, Instant};

use super::StatsToggle;
use crate::netns::{NETNS_PREFIX, list_owned};

/// Namespaces of this process, programs it loaded, child processes, and the BPF stats
/// switch, retried for a few seconds (the kernel frees namespaces asynchronously).
pub async fn leftovers(program_ids: &[u32], toggle: &StatsToggle) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut found = loop {
        let found = current_leftovers(program_ids);
        if found.is_empty() || Instant::now() >= deadline {
            break found;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    if toggle.sysctl_before != toggle.sysctl_after {
        found.push(format!(
            "kernel.bpf_stats_enabled was {:?} before the run and is {:?} after it",
            toggle.sysctl_before, toggle.sysctl_after
        ));
    }
    found
}

fn current_leftovers(program_ids: &[u32]) -> Vec<String> {
    let mine = format!("{NETNS_PREFIX}{}-", std::process::id());
    let mut found: Vec<String> = list_owned()
        .into_iter()
        .filter(|n| n.starts_with(&mine))
        .map(|n| format!("netns {n}"))
        .collect();
    for info in aya::programs::loaded_programs().filter_map(Result::ok) {
        if program_ids.contains(&info.id()) {
            found.push(format!(
                "eBPF program {} (id {}) still loaded",
                info.name_as_str().unwrap_or("?"),
                info.id()
            ));
        }
    }
    found.extend(
        children()
            .into_iter()
            .map(|pid| format!("child process {pid}")),
    );
    found
}

/// Live (or unreaped) children of this process, from `/proc/self/task/*/children`.
fn children() -> Vec<u32> {
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return Vec::new();
    };
    let mut pids: Vec<u32> = tasks
        .filter_map(Result::ok)
        .filter_map(|t| std::fs::read_to_string(t.path().join("children")).ok())
        .flat_map(|s| {
            s.split_whitespace()
                .filter_map(|p| p.parse().ok())
                .collect::<Vec<u32>>()
        })
        .collect();
    pids.sort_unstable();
    pids.dedup();
    pids
}

/// How busy the machine was apart from the benchmark: other work on the same CPUs
/// moves every figure, so the report says how quiet it was.
#[derive(Clone, Copy, Debug, Default, serde::Serialize)]
pub struct MachineLoad {
    /// Share of CPU time not idle over one second before the run started, percent.
    pub busy_pct_before: Option<f64>,
    pub loadavg_1m_before: Option<f64>,
    pub loadavg_1m_after: Option<f64>,
}

/// Busy share of all CPUs over `window`, from two `/proc/stat` samples.
pub async fn busy_pct(window: Duration) -> Option<f64> {
    let a = cpu_times(&std::fs::read_to_string("/proc/stat").ok()?)?;
    tokio::time::sleep(window).await;
    let b = cpu_times(&std::fs::read_to_string("/proc/stat").ok()?)?;
    let (total, idle) = (b.0.checked_sub(a.0)?, b.1.checked_sub(a.1)?);
    #[expect(clippy::cast_precision_loss, reason = "jiffies fit f64 well")]
    (total > 0).then(|| (total - idle.min(total)) as f64 * 100.0 / total as f64)
}

/// (total, idle + iowait) jiffies of the aggregate `cpu` line of `/proc/stat`.
fn cpu_times(stat: &str) -> Option<(u64, u64)> {
    let line = stat.lines().find(|l| l.starts_with("cpu "))?;
    let v: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .filter_map(|x| x.parse().ok())
        .collect();
    // user nice system idle iowait irq softirq steal (guest time is inside user).
    let total = v.iter().take(8).sum();
    Some((total, v.get(3)? + v.get(4).copied().unwrap_or(0)))
}

/// The 1-minute load average.
pub fn loadavg() -> Option<f64> {
    std::fs::read_to_string("/proc/loadavg")
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_times_from_proc_stat() {
        let stat = "cpu  100 5 50 800 20 3 2 10 0 0\ncpu0 1 2 3 4 5 6 7 8 0 0\nintr 1\n";
        assert_eq!(cpu_times(stat), Some((990, 820)));
        assert_eq!(cpu_times("intr 1\n"), None);
    }
}
