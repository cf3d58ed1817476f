//! Real feature probes for `netbench doctor`: each loads (and attaches, then detaches) a
//! real program from netbench's own object, in a namespace of its own where it attaches
//! to a device, and reports what happened.
use aya::{
    Btf, Ebpf,
    programs::{BtfTracePoint, Program, ProgramError, TracePoint},
};
use netbench_common::names;

use super::{HookDevice, TcMode, TraceConfig, Tracer};
use crate::{
    error::one_line,
    netns::{OwnedNetns, unique_name},
};

/// Outcome of one probe: `Ok(detail)` when the feature works, `Err(reason)` otherwise.
pub type Probe = Result<String, String>;

/// Results of the eBPF feature probes, in display order: (item name, outcome).
#[must_use]
pub fn run_all() -> Vec<(&'static str, Probe)> {
    vec![
        ("tc (tcx)", tc_probe(TcMode::Tcx)),
        ("tc (netlink)", tc_probe(TcMode::Netlink)),
        ("tracepoint", tracepoint_probe()),
        ("tp_btf", tp_btf_probe()),
    ]
}

/// Load both tc programs and attach them to `lo` of a throw-away namespace.
fn tc_probe(mode: TcMode) -> Probe {
    if mode == TcMode::Tcx && !super::tc::tcx_supported() {
        return Err("kernel < 6.6 has no tcx".into());
    }
    let ns = OwnedNetns::create(&unique_name(if mode == TcMode::Tcx {
        "dr-tcx"
    } else {
        "dr-nl"
    }))
    .map_err(|e| format!("creating a test netns: {e}"))?;
    let mut tracer = Tracer::load(&TraceConfig {
        ports: vec![1],
        ..TraceConfig::default()
    })
    .map_err(|e| one_line(&e))?;
    tracer
        .attach(&HookDevice::new(ns.reference(), "lo"), mode)
        .map_err(|e| one_line(&e))?;
    let n = tracer.attachments().len();
    tracer
        .detach_all()
        .map_err(|e| format!("detach: {}", one_line(&e)))?;
    drop(ns);
    Ok(format!(
        "loaded, attached ingress+egress ({n} links), detached"
    ))
}

fn load_object() -> Result<Ebpf, String> {
    Ebpf::load(super::EBPF_OBJECT).map_err(|e| format!("loading object: {e}"))
}

/// The program `name` of the object, as its type `P`.
fn program<'a, P>(ebpf: &'a mut Ebpf, name: &str) -> Result<&'a mut P, String>
where
    &'a mut P: TryFrom<&'a mut Program, Error = ProgramError>,
{
    ebpf.program_mut(name)
        .ok_or("program missing")?
        .try_into()
        .map_err(|e: ProgramError| format!("{e}"))
}

fn tracepoint_probe() -> Probe {
    let mut ebpf = load_object()?;
    let prog: &mut TracePoint = program(&mut ebpf, names::TP_NET_DEV_QUEUE)?;
    prog.load().map_err(|e| format!("load: {e}"))?;
    let link = prog
        .attach("net", "net_dev_queue")
        .map_err(|e| format!("attach net:net_dev_queue: {e}"))?;
    prog.detach(link).map_err(|e| format!("detach: {e}"))?;
    Ok("net:net_dev_queue loaded, attached, detached".into())
}

fn tp_btf_probe() -> Probe {
    let btf = Btf::from_sys_fs().map_err(|e| format!("kernel BTF: {e}"))?;
    let mut ebpf = load_object()?;
    let prog: &mut BtfTracePoint = program(&mut ebpf, names::TP_BTF_NET_DEV_QUEUE)?;
    prog.load("net_dev_queue", &btf)
        .map_err(|e| format!("load: {e}"))?;
    let link = prog.attach().map_err(|e| format!("attach: {e}"))?;
    prog.detach(link).map_err(|e| format!("detach: {e}"))?;
    Ok("tp_btf/net_dev_queue loaded, attached, detached".into())
}
