//! Scheduler tracing of chosen threads (`netbench-ebpf/src/tracepoint.rs`): when a
//! traced thread is woken (`sched:sched_wakeup`) and when it starts running
//! (`sched:sched_switch`). The gap is its run-queue wait. The traced set follows the
//! tracked processes' new threads in the kernel (`sched:sched_process_fork`).
use std::path::Path;

use aya::{
    maps::{HashMap, MapData},
    programs::{TracePoint, trace_point::TracePointLinkId},
};
use netbench_common::names;

use super::{TraceError, Tracer};

/// Offset of `field` in the records of tracepoint `group/event`, from its tracefs
/// `format` file.
#[must_use]
pub fn format_offset(tracefs: &Path, group: &str, event: &str, field: &str) -> Option<u32> {
    let text = std::fs::read_to_string(
        tracefs
            .join("events")
            .join(group)
            .join(event)
            .join("format"),
    )
    .ok()?;
    parse_format_offset(&text, field)
}

/// Parse `field:<type> <field>;\toffset:N;` out of a tracefs format description.
#[must_use]
pub fn parse_format_offset(format: &str, field: &str) -> Option<u32> {
    format.lines().find_map(|line| {
        let decl = line.trim().strip_prefix("field:")?;
        let (decl, rest) = decl.split_once(';')?;
        let name = decl.split_whitespace().last()?;
        if name != field {
            return None;
        }
        rest.trim()
            .strip_prefix("offset:")?
            .split(';')
            .next()?
            .trim()
            .parse()
            .ok()
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
    pub(super) links: Vec<(&'static str, TracePointLinkId)>,
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
            // The fork hook first: a thread created while the map is seeded is caught.
            for (name, event) in [
                (names::TP_SCHED_FORK, "sched_process_fork"),
                (names::TP_SCHED_WAKEUP, "sched_wakeup"),
                (names::TP_SCHED_SWITCH, "sched_switch"),
            ] {
                let prog: &mut TracePoint = self
                    .ebpf
                    .program_mut(name)
                    .ok_or(TraceError::Missing(name))?
                    .try_into()
                    .map_err(|source| TraceError::Program {
                        name,
                        source: Box::new(source),
                    })?;
                prog.load().map_err(|source| TraceError::Program {
                    name,
                    source: Box::new(source),
                })?;
                let link = prog
                    .attach("sched", event)
                    .map_err(|source| TraceError::Program {
                        name,
                        source: Box::new(source),
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
                source: Box::new(source),
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
                    source: Box::new(source),
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
            if let Some(Ok(prog)) = self.ebpf.program_mut(name).map(<&mut TracePoint>::try_from) {
                let _ = prog.detach(link);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_offsets_from_a_format_file() {
        let f = "name: sched_switch\nformat:\n\tfield:unsigned short common_type;\toffset:0;\tsize:2;\tsigned:0;\n\tfield:char next_comm[16];\toffset:40;\tsize:16;\tsigned:0;\n\tfield:pid_t next_pid;\toffset:56;\tsize:4;\tsigned:1;\n";
        assert_eq!(parse_format_offset(f, "next_pid"), Some(56));
        assert_eq!(parse_format_offset(f, "common_type"), Some(0));
        assert_eq!(parse_format_offset(f, "prev_pid"), None);
    }

    #[test]
    fn threads_of_this_process_include_its_pid() {
        assert!(threads_of(std::process::id()).contains(&std::process::id()));
    }
}
