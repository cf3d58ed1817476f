//! A kernel without BTF, for real: `netbench lab` runs in a mount namespace of its own in
//! which `/sys/kernel/btf/vmlinux` is covered by an empty file. The scheduler programs
//! (BTF tracepoints) cannot load there: `--sched on` must fail with one line naming the
//! BTF and leave nothing behind; the tc programs need no BTF, so `--sched off` still
//! measures. Root (mount namespaces, eBPF).

mod common;

use std::process::{Command, Output, Stdio};

use common::docker_run::netbench_bin;

fn lab_without_btf(sched: &str) -> Output {
    let script = format!(
        "mount --bind /dev/null /sys/kernel/btf/vmlinux && exec {} lab --sched {sched} --probes 50",
        netbench_bin().display()
    );
    let out = Command::new("unshare")
        .args(["--mount", "--propagation", "private", "sh", "-c", &script])
        .stdin(Stdio::null())
        .output()
        .expect("running unshare");
    eprintln!(
        "$ {script}\n--- exit {:?}\n--- stdout\n{}--- stderr\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

#[test]
fn sched_tracing_without_btf_is_one_line_and_leaves_nothing() {
    let Some(_root) = common::require_root() else {
        return;
    };
    let netns_before = netbench::netns::list_owned();
    let out = lab_without_btf("on");
    assert!(!out.status.success(), "lab --sched on ran without BTF");
    let stderr = String::from_utf8_lossy(&out.stderr);
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "not one line: {stderr}");
    assert!(
        lines[0].contains("BTF"),
        "the line does not name the BTF: {}",
        lines[0]
    );
    assert_eq!(
        netbench::netns::list_owned(),
        netns_before,
        "namespaces left"
    );
    assert!(
        netbench::ledger::stale().is_empty(),
        "a state file was left behind"
    );
}

#[test]
fn tc_tracing_needs_no_btf() {
    let Some(_root) = common::require_root() else {
        return;
    };
    let out = lab_without_btf("off");
    assert!(out.status.success(), "lab --sched off failed without BTF");
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("round trip (traced)"),
        "no traced round trip in the table"
    );
}
