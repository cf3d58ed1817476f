//! Scheduler tracing of chosen threads (`netbench-ebpf/src/tracepoint.rs`): when a
//! traced thread is woken (`sched:sched_wakeup`) and when it starts running
//! (`sched:sched_switch`). The gap is its run-queue wait. The traced set follows the
//! tracked processes' new threads in the kernel (`sched:sched_process_fork`). All three
//! are BTF tracepoints; the one kernel layout they need (`task_struct.pid`) comes from
//! the kernel's BTF.

use aya::{
    Btf,
    maps::{HashMap, MapData},
    programs::{BtfTracePoint, tp_btf::BtfTracePointLinkId},
};
use clap::ValueEnum;
use netbench_common::names;
use serde::{Deserialize, Serialize};
use strum::IntoStaticStr;

use super::{TraceError, Tracer};
use crate::error::Aya;

/// When the server's scheduler events are traced (the run-queue split of its stage).
/// They cost: the sched programs run at every context switch and wake-up of every
/// CPU; measured here on a same-CPU veth round trip of 4.8 us, tracing moved p50 x1.07
/// without them and x1.14 with them. Under CPU stress, where run-queue wait is what
/// matters, they are worth it; idle, `auto` leaves them off.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[derive(Serialize, Deserialize, ValueEnum, IntoStaticStr)]
#[serde(rename_all = "lowercase")]
#[strum(serialize_all = "lowercase")]
pub enum SchedTracing {
    /// Only under CPU stress.
    #[default]
    Auto,
    On,
    Off,
}

impl SchedTracing {
    /// Whether to trace a scenario that runs `stressed` or not.
    #[must_use]
    pub fn wanted(self, stressed: bool) -> bool {
        match self {
            Self::Auto => stressed,
            Self::On => true,
            Self::Off => false,
        }
    }
}

/// Offset of `pid` in `struct task_struct`, from the kernel's BTF
/// (`/sys/kernel/btf/vmlinux`, read with btf-rs once per process).
#[must_use]
pub fn task_pid_offset() -> Option<u32> {
    static OFFSET: std::sync::OnceLock<Option<u32>> = std::sync::OnceLock::new();
    *OFFSET.get_or_init(|| {
        let btf = btf_rs::Btf::from_file("/sys/kernel/btf/vmlinux").ok()?;
        btf.resolve_types_by_name("task_struct")
            .ok()?
            .into_iter()
            .find_map(|t| match t {
                btf_rs::Type::Struct(s) => s
                    .members
                    .iter()
                    .find(|m| btf.resolve_name(*m).is_ok_and(|n| n == "pid"))
                    .map(|m| m.bit_offset() / 8),
                _ => None,
            })
    })
}

/// Thread ids of process `pid` (its `/proc/PID/task` entries).
#[must_use]
pub fn threads_of(pid: u32) -> Vec<u32> {
    let Ok(dir) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return Vec::new();
    };
    let mut tids: Vec<u32> = dir
        .filter_map(Result::ok)
        .filter_map(|e| e.file_name().to_str()?.parse().ok())
        .collect();
    tids.sort_unstable();
    tids
}

/// The attached sched tracepoints of a tracer and its map of traced threads.
#[derive(Default)]
pub(super) struct SchedLinks {
    pub(super) links: Vec<(&'static str, BtfTracePointLinkId)>,
    tids: Option<HashMap<MapData, u32, u32>>,
}

impl Tracer {
    /// Trace the scheduling of every thread of the processes `pids`, and of every
    /// thread or process they create from now on: `sched_process_fork` adds those in the
    /// kernel as they are created, so no userspace poller runs (and wakes a CPU) while
    /// probes are in flight. Attaches the sched tracepoints on first use.
    ///
    /// # Errors
    /// When the programs cannot be loaded or attached (tracefs missing, no permission)
    /// or the kernel refuses an insert (the map is full).
    pub fn track_processes(&mut self, pids: &[u32]) -> Result<(), TraceError> {
        if self.sched.links.is_empty() {
            let btf = Btf::from_sys_fs().map_err(|e| TraceError::Btf(e.into()))?;
            // The fork hook first: a thread created while the map is seeded is caught.
            for (name, event) in [
                (names::TP_SCHED_FORK, "sched_process_fork"),
                (names::TP_SCHED_WAKEUP, "sched_wakeup"),
                (names::TP_SCHED_SWITCH, "sched_switch"),
            ] {
                let prog: &mut BtfTracePoint = self
                    .ebpf
                    .program_mut(name)
                    .ok_or(TraceError::Missing(name))?
                    .try_into()
                    .map_err(|source| TraceError::Program {
                        name,
                        source: Aya::from(source),
                    })?;
                prog.load(event, &btf)
                    .map_err(|source| TraceError::Program {
                        name,
                        source: Aya::from(source),
                    })?;
                let link = prog.attach().map_err(|source| TraceError::Program {
                    name,
                    source: Aya::from(source),
                })?;
                self.sched.links.push((name, link));
            }
        }
        if self.sched.tids.is_none() {
            let map = self
                .ebpf
                .take_map(names::SCHED_TIDS)
                .ok_or(TraceError::Missing(names::SCHED_TIDS))?;
            self.sched.tids = Some(HashMap::try_from(map).map_err(|source| TraceError::Map {
                name: names::SCHED_TIDS,
                source: Aya::from(source),
            })?);
        }
        let map = self
            .sched
            .tids
            .as_mut()
            .ok_or(TraceError::Missing(names::SCHED_TIDS))?;
        for &pid in pids {
            for tid in threads_of(pid) {
                map.insert(tid, 1, 0).map_err(|source| TraceError::Map {
                    name: names::SCHED_TIDS,
                    source: Aya::from(source),
                })?;
            }
        }
        Ok(())
    }

    /// The thread ids traced now (seeded plus those the fork hook added).
    #[must_use]
    pub fn tracked_threads(&self) -> Vec<u32> {
        let mut tids: Vec<u32> = self
            .sched
            .tids
            .as_ref()
            .map(|m| m.keys().filter_map(Result::ok).collect())
            .unwrap_or_default();
        tids.sort_unstable();
        tids
    }

    pub(super) fn detach_sched(&mut self) {
        for (name, link) in std::mem::take(&mut self.sched.links) {
            if let Some(Ok(prog)) = self
                .ebpf
                .program_mut(name)
                .map(<&mut BtfTracePoint>::try_from)
            {
                let _ = prog.detach(link);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn task_pid_offset_comes_from_the_kernels_btf() {
        // netbench requires BTF (doctor checks it); this machine has it.
        let off = task_pid_offset().expect("task_struct.pid in BTF");
        // pid sits well inside task_struct (after state, stack, flags, sched entities).
        assert!(off > 64 && off < 16_384, "{off}");
        assert_eq!(off % 4, 0, "a pid_t is 4-byte aligned");
    }

    #[test]
    fn threads_of_this_process_include_its_pid() {
        assert!(threads_of(std::process::id()).contains(&std::process::id()));
    }
}
