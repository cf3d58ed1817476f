//! Fault tests: a small real `netbench run` (runC, bridge pair, real dockerd) stopped by
//! SIGINT and by SIGKILL at each phase (image build, pair set-up, mid-repetition, report
//! writing), then `netbench cleanup`: what the host has afterwards (containers, networks,
//! swarm state, named netns, host links, their qdiscs and ingress filters, bpf programs
//! and links, netbench's processes, state files) must equal what it had before.
//!
//! The fault is injected by netbench itself at a named point (`NETBENCH_FAILPOINT`,
//! src/exit.rs), so each phase is hit for sure, not by guessing with a timer. Images are
//! left out of the inventory: they are netbench's build cache, which `cleanup --images`
//! removes (tested in e2e.rs). Root and Docker; run through `cargo xtask test`.

mod common;

use common::docker_run::{netbench, netbench_bin, swarm_state};

use std::{
    collections::BTreeSet,
    path::PathBuf,
    process::{Command, Output, Stdio},
    time::{Duration, Instant},
};

use bollard::{
    Docker,
    query_parameters::{ListContainersOptionsBuilder, ListNetworksOptionsBuilder},
};
use netbench::{
    netlink,
    netns::NetnsRef,
    results::{Results, Status},
};

/// Everything on the host a netbench run could leave behind.
#[derive(Debug, PartialEq, Eq)]
struct Inventory {
    containers: BTreeSet<String>,
    networks: BTreeSet<String>,
    swarm: String,
    netns: BTreeSet<String>,
    /// Host links with their qdisc kinds and ingress filter count.
    links: BTreeSet<String>,
    bpf_programs: BTreeSet<u32>,
    bpf_links: BTreeSet<u32>,
    processes: BTreeSet<String>,
    state_files: BTreeSet<String>,
}

/// Programs a netbench run starts on the host or in its containers' namespaces.
const OURS: &[&str] = &[
    "netbench",
    "netbench-agent",
    "stress-ng",
    "iperf3",
    "sockperf",
    "qemu-system-x86",
];

async fn inventory() -> Inventory {
    let d = Docker::connect_with_local_defaults()
        .expect("docker socket")
        .negotiate_version()
        .await
        .expect("dockerd answers");
    let containers = d
        .list_containers(Some(
            ListContainersOptionsBuilder::default().all(true).build(),
        ))
        .await
        .expect("listing containers")
        .into_iter()
        .filter_map(|c| c.id)
        .collect();
    let networks = d
        .list_networks(Some(ListNetworksOptionsBuilder::default().build()))
        .await
        .expect("listing networks")
        .into_iter()
        .filter_map(|n| n.id)
        .collect();
    let swarm = swarm_state(&d).await;
    let netns = std::fs::read_dir("/run/netns")
        .map(|dir| {
            dir.filter_map(Result::ok)
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    let h = netlink::handle_in(&NetnsRef::Current).expect("netlink");
    let mut links = BTreeSet::new();
    for link in netlink::list_links(&h).await.expect("listing links") {
        let name = netlink::name_of(&link).unwrap_or("?").to_owned();
        let index = link.header.index;
        // A link that went away between the dump and these queries has nothing left.
        let qdiscs = netlink::qdisc_kinds(&h, index).await.unwrap_or_default();
        let filters = netbench::lab::tap::ingress_filter_count(&h, index)
            .await
            .unwrap_or(0);
        links.insert(format!(
            "{name} qdiscs {qdiscs:?} ingress filters {filters}"
        ));
    }
    let bpf_programs = aya::programs::loaded_programs()
        .filter_map(Result::ok)
        .map(|p| p.id())
        .collect();
    let bpf_links = aya::programs::loaded_links()
        .filter_map(Result::ok)
        .map(|l| l.id())
        .collect();
    let me = std::process::id();
    let processes = procfs::process::all_processes()
        .expect("/proc")
        .filter_map(Result::ok)
        .filter(|p| u32::try_from(p.pid).ok() != Some(me))
        .filter_map(|p| p.stat().ok())
        .filter(|s| s.state != 'Z' && OURS.contains(&s.comm.as_str()))
        .map(|s| format!("{} {}", s.pid, s.comm))
        .collect();
    let state_files = std::fs::read_dir(netbench::ledger::dir())
        .map(|dir| {
            dir.filter_map(Result::ok)
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    Inventory {
        containers,
        networks,
        swarm,
        netns,
        links,
        bpf_programs,
        bpf_links,
        processes,
        state_files,
    }
}

/// The inventory settles within a few seconds of a run's end (the kernel frees
/// programs and links of a killed process asynchronously, containers' processes exit):
/// wait for it to equal `before`, then assert it does.
async fn assert_same(before: &Inventory, when: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut now = inventory().await;
    while now != *before && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(500)).await;
        now = inventory().await;
    }
    assert_eq!(now.containers, before.containers, "{when}: containers");
    assert_eq!(now.networks, before.networks, "{when}: networks");
    assert_eq!(now.swarm, before.swarm, "{when}: swarm state");
    assert_eq!(now.netns, before.netns, "{when}: named netns");
    assert_eq!(
        now.links, before.links,
        "{when}: host links, qdiscs, filters"
    );
    assert!(
        now.bpf_programs.is_subset(&before.bpf_programs),
        "{when}: bpf programs left: {:?}",
        now.bpf_programs.difference(&before.bpf_programs)
    );
    assert!(
        now.bpf_links.is_subset(&before.bpf_links),
        "{when}: bpf links left: {:?}",
        now.bpf_links.difference(&before.bpf_links)
    );
    assert_eq!(now.processes, before.processes, "{when}: processes");
    assert_eq!(now.state_files, before.state_files, "{when}: state files");
}

fn show(what: &str, out: &Output) {
    eprintln!(
        "$ {what}\n--- exit {:?}\n--- stdout\n{}--- stderr\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A small run with a fault at `point`; returns its results directory and output.
fn faulted_run(point: &str, signal: &str) -> (PathBuf, Output) {
    let dir =
        std::env::temp_dir().join(format!("nb-fault-{point}-{signal}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let mut child = Command::new(netbench_bin())
        .args([
            "run",
            "--runtimes",
            "runc",
            "--drivers",
            "bridge",
            "--stress",
            "none",
            "--reps",
            "2",
            "--probes",
            "200",
            "--duration",
            "1",
            "--out",
        ])
        .arg(&dir)
        .env("NETBENCH_FAILPOINT", format!("{point}:{signal}"))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawning netbench run");
    // Bounded: the run itself is a few seconds; image builds at most a few minutes.
    let deadline = Instant::now() + Duration::from_mins(5);
    while child.try_wait().expect("waiting").is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("netbench run with {point}:{signal} did not end within 300 s");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let out = child.wait_with_output().expect("output");
    show(&format!("netbench run (failpoint {point}:{signal})"), &out);
    (dir, out)
}

async fn killed_at(point: &str) {
    let Some(_root) = common::require_root() else {
        return;
    };
    let before = inventory().await;
    let (dir, out) = faulted_run(point, "KILL");
    assert_eq!(
        std::os::unix::process::ExitStatusExt::signal(&out.status),
        Some(libc::SIGKILL),
        "the run was not killed at {point}"
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!("failpoint {point}")),
        "the failpoint {point} was never reached"
    );
    // Any later command notices what the killed run left (when it left anything).
    let left = netbench::ledger::stale();
    // At "pair" and "rep" the pair's containers and network exist; at "images" nothing
    // exists yet, at "report" the run has already removed them.
    if point == "pair" || point == "rep" {
        assert!(
            !left.is_empty(),
            "SIGKILL at {point} after containers exist left no state file"
        );
        let notice = netbench(&["report", dir.to_str().unwrap_or("/nonexistent")]);
        assert!(
            String::from_utf8_lossy(&notice.stderr).contains("ended without cleaning up"),
            "the next command did not mention the stale state"
        );
    }
    let named: Vec<String> = left
        .iter()
        .flat_map(|(_, f)| f.resources.iter().map(|r| format!("removed {r}")))
        .collect();
    let cleanup = netbench(&["cleanup"]);
    assert!(cleanup.status.success(), "cleanup failed");
    let said = String::from_utf8_lossy(&cleanup.stdout);
    for line in &named {
        assert!(said.contains(line.as_str()), "cleanup did not say {line:?}");
    }
    assert_same(&before, &format!("SIGKILL at {point}, then cleanup")).await;
    let _ = std::fs::remove_dir_all(&dir);
}

async fn interrupted_at(point: &str) {
    let Some(_root) = common::require_root() else {
        return;
    };
    let before = inventory().await;
    let (dir, out) = faulted_run(point, "INT");
    assert_eq!(
        out.status.code(),
        Some(130),
        "exit code after Ctrl-C at {point}"
    );
    assert!(
        String::from_utf8_lossy(&out.stderr).contains(&format!("failpoint {point}")),
        "the failpoint {point} was never reached"
    );
    // Nothing to clean: the run cleaned up itself.
    assert_same(&before, &format!("Ctrl-C at {point}")).await;
    // results.json keeps what was finished, with statuses; `report` renders it.
    let results = Results::load(&dir).expect("results.json after Ctrl-C");
    assert_eq!(results.scenarios.len(), 1);
    let s = &results.scenarios[0];
    let reps = s.rtt_us.as_ref().map_or(0, |r| r.per_rep_p50.len());
    match point {
        // Stopped after the matrix: the scenario finished.
        "report" => assert_eq!((s.status, reps), (Status::Ok, 2), "{s:?}"),
        // Stopped after the first repetition: one kept, the scenario failed with why.
        "rep" => {
            assert_eq!((s.status, reps), (Status::Failed, 1), "{s:?}");
            assert!(
                s.reason
                    .as_deref()
                    .is_some_and(|r| r.starts_with("interrupted (Ctrl-C) after 1 of 2")),
                "{:?}",
                s.reason
            );
        }
        _ => {
            assert_eq!((s.status, reps), (Status::Failed, 0), "{s:?}");
            assert!(
                s.reason
                    .as_deref()
                    .is_some_and(|r| r.contains("interrupted")),
                "{:?}",
                s.reason
            );
        }
    }
    let report = netbench(&["report", dir.to_str().unwrap()]);
    assert!(
        report.status.success(),
        "report of an interrupted run failed"
    );
    assert!(
        String::from_utf8_lossy(&report.stdout).contains(&s.id),
        "report does not show the scenario"
    );
    let cleanup = netbench(&["cleanup"]);
    assert_eq!(
        String::from_utf8_lossy(&cleanup.stdout).trim(),
        "nothing to clean up",
        "an interrupted run left something for cleanup"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn sigkill_while_building_images_then_cleanup_leaves_nothing() {
    killed_at("images").await;
}

#[tokio::test]
async fn sigkill_after_pair_set_up_then_cleanup_leaves_nothing() {
    killed_at("pair").await;
}

#[tokio::test]
async fn sigkill_mid_repetition_then_cleanup_leaves_nothing() {
    killed_at("rep").await;
}

#[tokio::test]
async fn sigkill_while_writing_the_report_then_cleanup_leaves_nothing() {
    killed_at("report").await;
}

#[tokio::test]
async fn ctrl_c_while_building_images_leaves_nothing() {
    interrupted_at("images").await;
}

#[tokio::test]
async fn ctrl_c_after_pair_set_up_leaves_nothing() {
    interrupted_at("pair").await;
}

#[tokio::test]
async fn ctrl_c_mid_repetition_keeps_the_finished_one() {
    interrupted_at("rep").await;
}

#[tokio::test]
async fn ctrl_c_while_writing_the_report_keeps_every_repetition() {
    interrupted_at("report").await;
}

/// A `netbench run` child that is killed (by its pid, it is ours) if the test fails
/// while it runs, so a failing test leaves no run behind.
struct RunGuard(Option<std::process::Child>);

impl RunGuard {
    fn pid(&self) -> u32 {
        self.0.as_ref().map_or(0, std::process::Child::id)
    }

    fn running(&mut self) -> bool {
        self.0
            .as_mut()
            .is_some_and(|c| c.try_wait().expect("waiting").is_none())
    }

    /// Wait for the child and take its output (the guard then has nothing to kill).
    fn output(&mut self) -> Output {
        self.0
            .take()
            .expect("child")
            .wait_with_output()
            .expect("output")
    }
}

impl Drop for RunGuard {
    fn drop(&mut self) {
        if let Some(mut c) = self.0.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// The id of this run's container whose name ends with `suffix`, once its state file
/// lists it with an id (created).
fn listed_container(pid: u32, suffix: &str) -> Option<String> {
    netbench::ledger::others().into_iter().find_map(|(_, f)| {
        let f = f.ok().filter(|f| f.pid == pid)?;
        f.resources.into_iter().find_map(|r| match r {
            netbench::ledger::Resource::Container { name, id: Some(id) }
                if name.ends_with(suffix) =>
            {
                Some(id)
            }
            _ => None,
        })
    })
}

/// The first pair's server container id, once both containers of that pair exist
/// (set-up is done or nearly).
async fn first_pair_up(child: &mut RunGuard) -> String {
    let deadline = Instant::now() + Duration::from_mins(5);
    loop {
        assert!(Instant::now() < deadline, "no pair within 300 s");
        if !child.running() {
            show("netbench run", &child.output());
            panic!("the run ended before its first pair was up");
        }
        if listed_container(child.pid(), "-00-client").is_some()
            && let Some(id) = listed_container(child.pid(), "-00-server")
        {
            return id;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Kill the server container, or stop its agent (SIGSTOP: it stops answering while its
/// container stays up, a hang).
async fn inject(d: &Docker, server: &str, fault: &str) -> Result<(), String> {
    match fault {
        "killed" => d
            .kill_container(
                server,
                None::<bollard::query_parameters::KillContainerOptions>,
            )
            .await
            .map_err(|e| e.to_string()),
        "hung" => {
            let c = d
                .inspect_container(
                    server,
                    None::<bollard::query_parameters::InspectContainerOptions>,
                )
                .await
                .map_err(|e| e.to_string())?;
            let pid = c.state.and_then(|s| s.pid).ok_or("no server pid")?;
            nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(i32::try_from(pid).map_err(|e| e.to_string())?),
                nix::sys::signal::Signal::SIGSTOP,
            )
            .map_err(|e| e.to_string())
        }
        other => Err(format!("unknown fault {other}")),
    }
}

/// Run a two-scenario matrix (bridge, host) and do `fault` to the first scenario's
/// server once its pair is up and measuring: the first scenario must fail with a reason,
/// the second must still run, and nothing is left.
async fn first_server_faulted(fault: &str) {
    let Some(_root) = common::require_root() else {
        return;
    };
    let before = inventory().await;
    let dir = std::env::temp_dir().join(format!("nb-fault-{fault}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let mut child = RunGuard(Some(
        Command::new(netbench_bin())
            .args([
                "run",
                "--runtimes",
                "runc",
                "--drivers",
                "bridge,host",
                "--stress",
                "none",
                "--reps",
                "3",
                "--probes",
                "2000",
                "--duration",
                "2",
                "--out",
            ])
            .arg(&dir)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawning netbench run"),
    ));
    let d = Docker::connect_with_local_defaults()
        .expect("docker socket")
        .negotiate_version()
        .await
        .expect("dockerd answers");
    let server = first_pair_up(&mut child).await;
    // The pair waits for its agents, then measures: a few seconds in, a repetition runs.
    tokio::time::sleep(Duration::from_secs(3)).await;
    if let Err(e) = inject(&d, &server, fault).await {
        show("netbench run", &child.output());
        panic!("{fault}: {e}");
    }
    let deadline = Instant::now() + Duration::from_mins(5);
    while child.running() {
        assert!(
            Instant::now() < deadline,
            "the run did not end within 300 s of the fault"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let out = child.output();
    show(&format!("netbench run (server {fault})"), &out);
    assert_eq!(out.status.code(), Some(1), "a failed scenario exits 1");
    let results = Results::load(&dir).expect("results.json");
    assert_eq!(results.scenarios.len(), 2);
    let (first, second) = (&results.scenarios[0], &results.scenarios[1]);
    assert_eq!(first.status, Status::Failed, "{first:?}");
    assert!(
        first.reason.as_deref().is_some_and(|r| !r.is_empty()),
        "no reason for the faulted scenario"
    );
    assert_eq!(
        second.status,
        Status::Ok,
        "the matrix did not go on: {second:?}"
    );
    assert_same(&before, &format!("server {fault}")).await;
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn a_server_container_killed_mid_repetition_fails_its_scenario_only() {
    first_server_faulted("killed").await;
}

#[tokio::test]
async fn a_hung_server_agent_fails_its_scenario_only() {
    first_server_faulted("hung").await;
}
