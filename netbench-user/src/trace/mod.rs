//! Loading netbench's eBPF object, attaching it to hook devices, reading hop events.
//!
//! Mirrors `netbench-ebpf`: `tc` here owns the tc classifiers there.

pub mod reader;
pub mod sched;
pub mod selftest;
pub mod session;
pub mod tc;

use std::path::PathBuf;

use crate::error::Aya;
use aya::{
    Ebpf, EbpfLoader,
    maps::{Array, PerCpuArray},
};
use netbench_common::{HopEvent, MODE_COUNT_ONLY, MODE_EVENTS, counter, names};
use serde::{Deserialize, Serialize};
use strum::IntoStaticStr;

pub use reader::{EventReader, ReaderStats};
pub use session::{ProgramStats, Session, SessionConfig, SessionOutcome, Streaming};

pub use tc::{Attachment, HookDevice, TcMode};

/// The eBPF object built by `build.rs` with the pinned nightly and bpf-linker.
pub static EBPF_OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/netbench"));

#[derive(Debug, thiserror::Error)]
pub enum TraceError {
    #[error("loading the eBPF object")]
    Load(#[source] Aya<aya::EbpfError>),
    #[error("eBPF program {name}")]
    Program {
        name: &'static str,
        #[source]
        source: Aya<aya::programs::ProgramError>,
    },
    #[error("eBPF map {name}")]
    Map {
        name: &'static str,
        #[source]
        source: Aya<aya::maps::MapError>,
    },
    #[error("eBPF object has no {0}")]
    Missing(&'static str),
    #[error("attaching {program} to {device} in netns {netns}")]
    Attach {
        program: &'static str,
        device: String,
        netns: String,
        #[source]
        source: Aya<aya::programs::ProgramError>,
    },
    #[error("entering netns {netns}")]
    Netns {
        netns: String,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "devices {first} and {second} share ifindex {ifindex}: events could not tell them apart"
    )]
    AmbiguousIfindex {
        ifindex: u32,
        first: String,
        second: String,
    },
    #[error("ring buffer")]
    Io(#[from] std::io::Error),
    #[error("trace session task")]
    Join(#[from] tokio::task::JoinError),
    #[error("kernel BTF (/sys/kernel/btf/vmlinux)")]
    Btf(#[source] Aya<aya::BtfError>),
}

/// What the tc programs do with a probe packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[derive(Serialize, Deserialize, IntoStaticStr)]
#[serde(rename_all = "kebab-case")]
#[strum(serialize_all = "kebab-case")]
pub enum TraceMode {
    /// Nothing loaded or attached (a [`Session`] in this mode is a no-op): the
    /// untraced baseline.
    Off,
    /// One ring-buffer event per probe packet and hook.
    Events,
    /// Per-CPU counters only (cheap; used while measuring bandwidth).
    CountOnly,
}

impl TraceMode {
    #[must_use]
    pub fn name(self) -> &'static str {
        self.into()
    }
}

/// Load-time configuration of the tracer.
#[derive(Clone, Debug)]
pub struct TraceConfig {
    /// Probe ports (source or destination), e.g. the agent's UDP and TCP port.
    pub ports: Vec<u16>,
    pub mode: TraceMode,
    /// Ring buffer size in bytes (power of two, multiple of the page size).
    pub ring_bytes: u32,
    /// Bytes waiting in the ring above which a submit wakes the reader; below it no
    /// submit wakes anyone. `None`: half the ring.
    pub wakeup_bytes: Option<u64>,
    /// Where events go.
    pub sink: EventSink,
}

/// Where the programs put their events.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum EventSink {
    /// The ring buffer, drained while the programs run (long or unbounded runs).
    Ring,
    /// The recorder: `slots_per_cpu` event slots per CPU in an array, read after the
    /// measurement. The cheapest path (no lock, no reserve/submit helpers, nothing to
    /// wake); a CPU whose slots are used up counts further events as lost.
    Recorder { slots_per_cpu: u32 },
}

impl EventSink {
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Self::Ring => "ring",
            Self::Recorder { .. } => "recorder",
        }
    }
}

/// Possible CPU ids (what `bpf_get_smp_processor_id` can return) are below this.
#[must_use]
pub fn possible_cpus() -> u32 {
    aya::util::nr_cpus()
        .ok()
        .and_then(|n| u32::try_from(n).ok())
        .unwrap_or(1)
        .max(1)
}

impl Default for TraceConfig {
    fn default() -> Self {
        Self {
            ports: vec![],
            mode: TraceMode::Events,
            ring_bytes: 1 << 22,
            wakeup_bytes: None,
            sink: EventSink::Ring,
        }
    }
}

/// A loaded tracer: the eBPF object with its tc programs loaded (not yet attached).
pub struct Tracer {
    pub(crate) ebpf: Ebpf,
    attachments: Vec<tc::Attachment>,
    sched: sched::SchedLinks,
}

impl Tracer {
    /// Load the embedded object with `config`'s globals and load both tc programs.
    ///
    /// # Errors
    /// When the kernel refuses the object or a program.
    pub fn load(config: &TraceConfig) -> Result<Self, TraceError> {
        let port = config.ports.first().copied().unwrap_or(0);
        let port2 = config.ports.get(1).copied().unwrap_or(0);
        let mode = match config.mode {
            TraceMode::Events => MODE_EVENTS,
            // A session in mode off never loads; a tracer loaded so emits nothing.
            TraceMode::CountOnly | TraceMode::Off => MODE_COUNT_ONLY,
        };
        let wakeup_bytes = config
            .wakeup_bytes
            .unwrap_or(u64::from(config.ring_bytes) / 2);
        let (sink, record_slots) = match config.sink {
            EventSink::Ring => (netbench_common::SINK_RING, 1u32),
            EventSink::Recorder { slots_per_cpu } => {
                (netbench_common::SINK_RECORDER, slots_per_cpu.max(1))
            }
        };
        // The ring stays as small as the kernel allows when the recorder takes the events.
        let ring_bytes = if sink == netbench_common::SINK_RECORDER {
            4096
        } else {
            config.ring_bytes
        };
        // 0 when the kernel has no BTF: the sched programs then cannot load, and a
        // session that tracks processes says so.
        let task_pid_off = sched::task_pid_offset().unwrap_or(0);
        let mut ebpf = EbpfLoader::new()
            .override_global(names::GLOBAL_TASK_PID_OFF, &task_pid_off, true)
            .override_global(names::GLOBAL_WAKEUP_BYTES, &wakeup_bytes, true)
            .override_global(names::GLOBAL_SINK, &sink, true)
            .override_global(names::GLOBAL_RECORD_SLOTS, &record_slots, true)
            .map_max_entries(
                names::RECORD,
                record_slots
                    .saturating_mul(possible_cpus())
                    .saturating_mul(netbench_common::RECORD_REGIONS),
            )
            .override_global(names::GLOBAL_PROBE_PORT, &port, true)
            .override_global(names::GLOBAL_PROBE_PORT2, &port2, true)
            .override_global(names::GLOBAL_MODE, &mode, true)
            .map_max_entries(names::EVENTS, ring_bytes)
            .load(EBPF_OBJECT)
            .map_err(|e| TraceError::Load(e.into()))?;
        for name in [names::TC_INGRESS, names::TC_EGRESS] {
            tc::classifier(&mut ebpf, name)?
                .load()
                .map_err(|source| TraceError::Program {
                    name,
                    source: Aya::from(source),
                })?;
        }
        Ok(Self {
            ebpf,
            attachments: Vec::new(),
            sched: sched::SchedLinks::default(),
        })
    }

    /// Attach both tc programs (ingress and egress) to `device`.
    ///
    /// # Errors
    /// When the namespace cannot be entered or the kernel refuses the attachment.
    pub fn attach(&mut self, device: &HookDevice, mode: TcMode) -> Result<(), TraceError> {
        // Events name devices by ifindex: two traced devices must not share one.
        let ifindex = tc::ifindex_of(device)?;
        if let Some(other) = self
            .attachments
            .iter()
            .find(|a| a.ifindex == ifindex && a.device != *device)
        {
            return Err(TraceError::AmbiguousIfindex {
                ifindex,
                first: other.device.to_string(),
                second: device.to_string(),
            });
        }
        if self.attachments.iter().any(|a| a.device == *device) {
            return Ok(());
        }
        let mut new = tc::attach_both(&mut self.ebpf, device, mode)?;
        self.attachments.append(&mut new);
        Ok(())
    }

    /// Where the tracer is attached.
    #[must_use]
    pub fn attachments(&self) -> &[tc::Attachment] {
        &self.attachments
    }

    /// Detach everything attached so far (dropping the tracer does the same).
    ///
    /// # Errors
    /// When the kernel refuses a detach (the device may already be gone, which is fine).
    pub fn detach_all(&mut self) -> Result<(), TraceError> {
        self.detach_sched();
        tc::detach_all(&mut self.ebpf, std::mem::take(&mut self.attachments))
    }

    /// Take the ring buffer out for an [`EventReader`]. Call once.
    ///
    /// # Errors
    /// When the map is missing (a build mismatch).
    pub fn take_reader(&mut self) -> Result<EventReader, TraceError> {
        let map = self
            .ebpf
            .take_map(names::EVENTS)
            .ok_or(TraceError::Missing(names::EVENTS))?;
        EventReader::new(map)
    }

    /// The recorder's events, CPU by CPU in slot order (read after the programs are
    /// detached; one lookup per event).
    ///
    /// # Errors
    /// When the maps cannot be read.
    pub fn read_recorder(&self, slots_per_cpu: u32) -> Result<Vec<HopEvent>, TraceError> {
        let map_err = |name: &'static str| {
            move |source| TraceError::Map {
                name,
                source: Aya::from(source),
            }
        };
        let next = self
            .ebpf
            .map(names::RECORD_NEXT)
            .ok_or(TraceError::Missing(names::RECORD_NEXT))?;
        let next = PerCpuArray::<_, u32>::try_from(next).map_err(map_err(names::RECORD_NEXT))?;
        let record = self
            .ebpf
            .map(names::RECORD)
            .ok_or(TraceError::Missing(names::RECORD))?;
        let record = Array::<_, HopEvent>::try_from(record).map_err(map_err(names::RECORD))?;
        let mut out = Vec::new();
        for region in 0..netbench_common::RECORD_REGIONS {
            let taken = next.get(&region, 0).map_err(map_err(names::RECORD_NEXT))?;
            for (cpu, &n) in (0u32..).zip(taken.iter()) {
                let base = (cpu * netbench_common::RECORD_REGIONS + region) * slots_per_cpu;
                for i in 0..n.min(slots_per_cpu) {
                    out.push(record.get(&(base + i), 0).map_err(map_err(names::RECORD))?);
                }
            }
        }
        Ok(out)
    }

    /// Ring-buffer reserve failures, summed over CPUs.
    ///
    /// # Errors
    /// When the map cannot be read.
    pub fn events_lost(&self) -> Result<u64, TraceError> {
        self.per_cpu_sum(names::LOST, 0)
    }

    /// Kernel-side counters summed over CPUs.
    ///
    /// # Errors
    /// When the map cannot be read.
    pub fn counters(&self) -> Result<KernelCounters, TraceError> {
        Ok(KernelCounters {
            probes_seen: self.per_cpu_sum(names::COUNTERS, counter::PROBES_SEEN)?,
            not_probe: self.per_cpu_sum(names::COUNTERS, counter::NOT_PROBE)?,
            parse_errors: self.per_cpu_sum(names::COUNTERS, counter::PARSE_ERRORS)?,
            events_lost: self.per_cpu_sum(names::LOST, 0)?,
        })
    }

    fn per_cpu_sum(&self, map: &'static str, index: u32) -> Result<u64, TraceError> {
        let m = self.ebpf.map(map).ok_or(TraceError::Missing(map))?;
        let arr = PerCpuArray::<_, u64>::try_from(m).map_err(|source| TraceError::Map {
            name: map,
            source: Aya::from(source),
        })?;
        let values = arr.get(&index, 0).map_err(|source| TraceError::Map {
            name: map,
            source: Aya::from(source),
        })?;
        Ok(values.iter().sum())
    }
}

impl Drop for Tracer {
    fn drop(&mut self) {
        // Links are fds owned by the programs and go away with them; netlink filters do
        // not, so remove them explicitly.
        let _ = self.detach_all();
    }
}

/// Kernel-side counters (summed over CPUs).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct KernelCounters {
    pub probes_seen: u64,
    pub not_probe: u64,
    pub parse_errors: u64,
    pub events_lost: u64,
}

/// `/sys/fs/bpf` and tracefs paths some features need.
#[must_use]
pub fn tracefs_path() -> Option<PathBuf> {
    ["/sys/kernel/tracing", "/sys/kernel/debug/tracing"]
        .into_iter()
        .map(PathBuf::from)
        .find(|p| p.join("events").is_dir())
}
