//! End-to-end tests: the real `netbench` binary against the real dockerd, with real
//! containers, small counts. Run as root through `cargo xtask test` (after the
//! privileged tier), which sets `NETBENCH_BIN` and `NETBENCH_AGENT`.
//!
//! Every test checks afterwards that no netbench container, network, swarm or host link
//! is left (cached images may stay; one test removes them with `cleanup --images`).

mod common;

use common::docker_run::{
    assert_clean, docker, gwbridge_exists, label_filter, leftovers, netbench, netbench_bin, out_dir,
};

use std::{
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use bollard::{
    Docker,
    query_parameters::{ListContainersOptionsBuilder, ListImagesOptionsBuilder},
};
use netbench::results::{Results, Status};

/// A runc scenario of the matrix: ok, `reps` repetitions of `probes` probes, at least
/// 99% matched on every hop, bandwidth measured untraced, stages named per pair, an
/// untraced round trip and the observer effect beside the traced one.
fn check_traced_runc_scenario(s: &netbench::results::Scenario, reps: u32, probes: u64) {
    assert_eq!(s.status, Status::Ok, "{}: {:?}", s.id, s.reason);
    assert_eq!(s.probes_sent, u64::from(reps) * probes, "{}", s.id);
    assert!(
        s.probes_matched * 100 >= s.probes_sent * 99,
        "{}: only {} of {} probes matched on every hop",
        s.id,
        s.probes_matched,
        s.probes_sent
    );
    let rtt = s.rtt_us.as_ref().expect("rtt");
    assert_eq!(rtt.per_rep_p50.len(), reps as usize, "{}", s.id);
    let bw = s.bandwidth_gbps.as_ref().expect("bandwidth");
    assert_eq!(bw.per_rep.len(), reps as usize, "{}", s.id);
    assert!(bw.per_rep.iter().all(|g| *g > 0.0), "{}: {bw:?}", s.id);
    assert_eq!(s.bandwidth_tracing.as_deref(), Some("off"));
    // Stages present, named per pair, and their means add up to the mean RTT.
    let names: Vec<&str> = s.stages.iter().map(|st| st.name.as_str()).collect();
    let expected: &[&str] = match s.client_driver.as_str() {
        "macvlan" => &[
            "client-tx-stack",
            "macvlan",
            "server-stack-and-app",
            "macvlan-reply",
            "client-rx-stack",
        ],
        "host" => &[
            "client-tx-stack",
            "bridge",
            "veth-server",
            "server-stack-and-app",
            "veth-server-reply",
            "bridge-reply",
            "client-rx-stack",
        ],
        _ => netbench::stages::BRIDGE_STAGES,
    };
    assert_eq!(names, expected, "{}", s.id);
    assert!(
        rtt.per_rep_p50.iter().all(Option::is_some),
        "{}: every repetition matched probes: {:?}",
        s.id,
        rtt.per_rep_p50
    );
    assert_eq!(
        s.events_lost, 0,
        "{}: a ring sized for the run loses nothing",
        s.id
    );
    // The untraced round trip (what tables quote) and the observer effect, from the
    // traced and untraced block pairs of every repetition.
    let untraced = s.rtt_untraced_us.as_ref().expect("untraced rtt");
    assert!(
        untraced.summary.count * 100 >= u64::from(reps) * probes * 99,
        "{}: untraced probes answered {}",
        s.id,
        untraced.summary.count
    );
    let effect = s.observer_effect.as_ref().expect("observer effect");
    assert_eq!(
        effect.pairs,
        reps as usize * netbench::experiment::measure::PAIRS_PER_REP as usize,
        "{}",
        s.id
    );
    assert!(
        effect.p50.ratio.is_finite() && effect.p50.ratio > 0.0,
        "{}",
        s.id
    );
}

#[tokio::test]
async fn runc_on_all_four_driver_pairs_is_traced_and_kata_is_unsupported() {
    let Some(_root) = common::require_root() else {
        return;
    };
    let before = leftovers().await;
    let gw_before = gwbridge_exists().await;
    let dir = out_dir("matrix");
    let probes = 200u64;
    let start = Instant::now();
    let out = netbench(&[
        "run",
        "--runtimes",
        "runc,kata",
        "--drivers",
        "bridge,host,macvlan,overlay",
        "--stress",
        "none",
        "--reps",
        "2",
        "--probes",
        &probes.to_string(),
        "--duration",
        "1",
        "--allow-swarm-init",
        "--out",
        dir.to_str().unwrap(),
    ]);
    eprintln!("matrix took {:.1} s", start.elapsed().as_secs_f64());
    assert!(out.status.success(), "netbench run failed");
    let results = Results::load(&dir).expect("results.json");
    assert_eq!(results.scenarios.len(), 8);
    for s in &results.scenarios {
        if s.runtime == "kata" {
            assert_eq!(s.status, Status::Unsupported, "{}", s.id);
            let why = s.reason.as_deref().unwrap_or("");
            if s.client_driver == "host" {
                assert!(
                    why.contains("cannot use the host network driver"),
                    "{}: {why}",
                    s.id
                );
            } else {
                assert!(why.contains("Kata"), "{}: {why}", s.id);
                assert!(why.contains("Docker Engine >= 23"), "{}: {why}", s.id);
            }
            continue;
        }
        check_traced_runc_scenario(s, 2, probes);
    }
    assert!(dir.join("summary.csv").is_file());
    for plot in ["rtt.svg", "bandwidth.svg", "stages.svg"] {
        assert!(dir.join(plot).is_file(), "{plot} missing");
    }
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("runc-overlay-overlay-none"),
        "table missing"
    );
    assert!(stdout.contains(&format!("results: {}", dir.join("results.json").display())));
    assert_clean(&before.swarm, gw_before).await;
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn cpu_stress_runs_in_the_server_container() {
    let Some(_root) = common::require_root() else {
        return;
    };
    let before = leftovers().await;
    let gw_before = gwbridge_exists().await;
    let dir = out_dir("stress");
    let args = [
        "run",
        "--drivers",
        "bridge",
        "--stress",
        "none,cpu",
        "--reps",
        "1",
        "--probes",
        "300",
        "--duration",
        "1",
        "--out",
        dir.to_str().unwrap(),
    ];
    let mut command = tokio::process::Command::new(netbench_bin());
    command.args(args).stdin(Stdio::null());
    let run = tokio::spawn(async move { command.output().await });
    // While it runs: the netbench containers in which `docker top` shows stress-ng
    // processes, by (scenario, role), with the most seen at once (parent plus workers).
    let d = docker().await;
    let mut stressed = std::collections::BTreeMap::<(String, String), usize>::new();
    let mut looks = 0u32;
    // Least privilege: every container netbench starts is unprivileged, with no added
    // capability (stress-ng and the agent need none).
    let mut checked = std::collections::BTreeSet::<String>::new();
    while !run.is_finished() {
        for (scenario, role, id) in running_netbench_containers(&d).await {
            if checked.insert(id.clone())
                && let Ok(c) = d
                    .inspect_container(
                        &id,
                        None::<bollard::query_parameters::InspectContainerOptions>,
                    )
                    .await
            {
                let host = c.host_config.unwrap_or_default();
                assert_ne!(host.privileged, Some(true), "{scenario} {role}: privileged");
                assert!(
                    host.cap_add.unwrap_or_default().is_empty(),
                    "{scenario} {role}: capabilities added"
                );
            }
            let n = processes_in(&d, &id)
                .await
                .iter()
                .filter(|cmd| cmd.contains("stress-ng"))
                .count();
            if n > 0 {
                let most = stressed.entry((scenario, role)).or_default();
                *most = (*most).max(n);
            }
            looks += 1;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let out = run.await.expect("joining").expect("running netbench");
    eprintln!(
        "$ netbench {}\n--- exit {:?}\n--- stdout\n{}--- stderr\n{}",
        args.join(" "),
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "netbench run failed");
    assert!(looks > 0, "no netbench container was ever seen running");
    assert!(
        checked.len() >= 2,
        "fewer than a pair's containers were inspected for privileges: {checked:?}"
    );
    let stressed_in: Vec<&(String, String)> = stressed.keys().collect();
    assert_eq!(
        stressed_in,
        [&("runc-bridge-bridge-cpu".to_owned(), "server".to_owned())],
        "stress-ng ran in the cpu scenario's server container, and nowhere else \
         ({looks} looks at containers' processes)"
    );
    let results = Results::load(&dir).expect("results.json");
    let ids: Vec<&str> = results.scenarios.iter().map(|s| s.id.as_str()).collect();
    assert_eq!(ids, ["runc-bridge-bridge-none", "runc-bridge-bridge-cpu"]);
    // Its workers ran, one per stressed CPU, beside the parent.
    let cpus = results.config["stress_cpus"].as_u64().expect("stress_cpus");
    let most = stressed.values().copied().max().unwrap_or(0) as u64;
    assert!(
        most > cpus,
        "at most {most} stress-ng processes seen at once for {cpus} CPUs (parent + workers)"
    );
    for s in &results.scenarios {
        assert_eq!(s.status, Status::Ok, "{}: {:?}", s.id, s.reason);
        assert!(s.probes_matched * 100 >= s.probes_sent * 99, "{}", s.id);
    }
    assert!(results.config["stress_cpus"].as_u64().unwrap_or(0) >= 1);
    assert_clean(&before.swarm, gw_before).await;
    let _ = std::fs::remove_dir_all(&dir);
}

/// The running netbench containers: (scenario, role, id) from their labels.
async fn running_netbench_containers(d: &Docker) -> Vec<(String, String, String)> {
    let label = |c: &bollard::models::ContainerSummary, key: &str| {
        c.labels
            .as_ref()
            .and_then(|l| l.get(key))
            .cloned()
            .unwrap_or_default()
    };
    d.list_containers(Some(
        ListContainersOptionsBuilder::default()
            .filters(&label_filter())
            .build(),
    ))
    .await
    .expect("listing containers")
    .into_iter()
    .filter_map(|c| {
        let id = c.id.clone()?;
        Some((
            label(&c, "netbench.scenario"),
            label(&c, netbench::docker::labels::ROLE),
            id,
        ))
    })
    .collect()
}

/// The command lines of the processes in container `id` (`docker top`). A container
/// that stopped or went since it was listed has none; any other error fails the test.
async fn processes_in(d: &Docker, id: &str) -> Vec<String> {
    match d.top_processes(id, None).await {
        Ok(top) => {
            let titles = top.titles.unwrap_or_default();
            let cmd = titles
                .iter()
                .position(|t| t == "CMD" || t == "COMMAND")
                .unwrap_or_else(|| panic!("docker top {id}: no command column in {titles:?}"));
            top.processes
                .unwrap_or_default()
                .into_iter()
                .filter_map(|p| p.get(cmd).cloned())
                .collect()
        }
        Err(bollard::errors::Error::DockerResponseServerError {
            status_code: 404 | 409,
            ..
        }) => Vec::new(),
        Err(e) => panic!("docker top {id}: {e}"),
    }
}

/// A run stopped by `signal` mid-repetition: exit code 128 + signal, results.json with
/// each scenario's status and the reason, nothing left behind.
async fn interrupted_by(signal: nix::sys::signal::Signal, code: i32, what: &str, tag: &str) {
    let Some(_root) = common::require_root() else {
        return;
    };
    let before = leftovers().await;
    let gw_before = gwbridge_exists().await;
    let dir = out_dir(tag);
    let mut child = Command::new(netbench_bin())
        .args([
            "run",
            "--drivers",
            "bridge,macvlan",
            "--stress",
            "none",
            "--reps",
            "100",
            "--probes",
            "200",
            "--duration",
            "1",
            "--out",
            dir.to_str().unwrap(),
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .spawn()
        .expect("spawning netbench");
    // Let it build images, start the first pair and run some repetitions.
    tokio::time::sleep(Duration::from_secs(12)).await;
    let pid = nix::unistd::Pid::from_raw(i32::try_from(child.id()).unwrap());
    nix::sys::signal::kill(pid, signal).expect("signal");
    let deadline = Instant::now() + Duration::from_secs(90);
    let status = loop {
        if let Some(s) = child.try_wait().expect("waiting") {
            break s;
        }
        assert!(
            Instant::now() < deadline,
            "netbench did not stop within 90 s of {what}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(status.code(), Some(code), "exit code after {what}");
    let results = Results::load(&dir).expect("results.json written after the signal");
    assert_eq!(results.scenarios.len(), 2);
    let first = &results.scenarios[0];
    assert_eq!(first.status, Status::Failed);
    assert!(
        first
            .reason
            .as_deref()
            .unwrap_or("")
            .starts_with(&format!("interrupted ({what}) after ")),
        "{:?}",
        first.reason
    );
    let second = &results.scenarios[1];
    assert_eq!(
        second.reason.as_deref(),
        Some(format!("not run: interrupted ({what})").as_str())
    );
    assert_clean(&before.swarm, gw_before).await;
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn ctrl_c_stops_cleans_up_and_keeps_the_statuses() {
    interrupted_by(nix::sys::signal::Signal::SIGINT, 130, "Ctrl-C", "ctrlc").await;
}

#[tokio::test]
async fn sigterm_stops_cleans_up_and_keeps_the_statuses() {
    interrupted_by(nix::sys::signal::Signal::SIGTERM, 143, "SIGTERM", "sigterm").await;
}

#[tokio::test]
async fn bad_input_is_one_line_and_creates_nothing() {
    let Some(_root) = common::require_root() else {
        return;
    };
    let before = leftovers().await;
    let gw_before = gwbridge_exists().await;
    let dir = out_dir("bad");
    for args in [
        vec!["run", "--drivers", "bridge,vxlan"],
        vec!["run", "--runtimes", "runc,,kata"],
        vec![
            "run",
            "--drivers",
            "macvlan",
            "--macvlan-parent",
            "nbnosuchif0",
        ],
    ] {
        let mut args = args;
        args.extend(["--out", dir.to_str().unwrap()]);
        let out = netbench(&args);
        assert!(!out.status.success(), "{args:?} succeeded");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(stderr.lines().count(), 1, "{args:?}: {stderr}");
        assert!(stderr.starts_with("netbench: "), "{stderr}");
        assert!(!dir.exists(), "{args:?} created {}", dir.display());
    }
    assert_clean(&before.swarm, gw_before).await;
}

#[tokio::test]
async fn cleanup_images_removes_netbench_images() {
    use netbench::docker::image;
    let Some(_root) = common::require_root() else {
        return;
    };
    let engine = netbench::docker::Engine::connect_local()
        .await
        .expect("dockerd");
    let d = &engine.docker;
    // A netbench image to remove, whatever ran before (on a fresh host there is none).
    let agent = netbench::agent::locate().expect("the static agent");
    let ours = image::ensure(&engine, &image::agent_spec(&agent).expect("agent image"))
        .await
        .expect("building the agent image");
    // The user's image: the same kind of build, FROM scratch, without netbench's labels.
    let theirs = format!("nb-e2e-not-netbench:{}", std::process::id());
    build_unlabelled_image(d, &theirs).await;
    let listed = netbench_image_tags(d).await;
    assert!(
        listed.contains(&ours.tag),
        "{} is listed as netbench's before the cleanup: {listed:?}",
        ours.tag
    );
    assert!(!listed.contains(&theirs), "{theirs} is not netbench's");

    let out = netbench(&["cleanup", "--images"]);
    let left = netbench_image_tags(d).await;
    let ours_after = d.inspect_image(&ours.tag).await;
    let theirs_after = d.inspect_image(&theirs).await;
    // The test's own image goes before any assertion can fail.
    let removed_theirs = d
        .remove_image(
            &theirs,
            Some(
                bollard::query_parameters::RemoveImageOptionsBuilder::default()
                    .force(true)
                    .build(),
            ),
            None,
        )
        .await;

    assert!(out.status.success(), "netbench cleanup --images failed");
    assert!(left.is_empty(), "netbench images left: {left:?}");
    assert!(
        matches!(
            ours_after,
            Err(bollard::errors::Error::DockerResponseServerError {
                status_code: 404,
                ..
            })
        ),
        "{} still there (or not looked up): {ours_after:?}",
        ours.tag
    );
    assert!(
        theirs_after.is_ok(),
        "cleanup --images removed {theirs}, which is not netbench's: {theirs_after:?}"
    );
    removed_theirs.unwrap_or_else(|e| panic!("removing the test's image {theirs}: {e}"));
}

/// Tags of the images labelled netbench's.
async fn netbench_image_tags(d: &Docker) -> Vec<String> {
    d.list_images(Some(
        ListImagesOptionsBuilder::default()
            .filters(&label_filter())
            .build(),
    ))
    .await
    .expect("listing images")
    .into_iter()
    .flat_map(|i| i.repo_tags)
    .collect()
}

/// Builds `tag` FROM scratch (one small file, no pull) with no netbench label.
async fn build_unlabelled_image(d: &Docker, tag: &str) {
    use futures::StreamExt as _;
    use netbench::docker::image::{ImageFile, ImageSpec};
    let spec = ImageSpec {
        repo: "nb-e2e-not-netbench",
        role: "none",
        files: vec![ImageFile {
            path: "/not-netbench".to_owned(),
            mode: 0o644,
            data: tag.as_bytes().to_vec(),
        }],
        dirs: Vec::new(),
        env: Vec::new(),
    };
    let context = spec.context_tar().expect("build context");
    let options = bollard::query_parameters::BuildImageOptionsBuilder::default()
        .dockerfile("Dockerfile")
        .t(tag)
        .rm(true)
        .forcerm(true)
        .build();
    let mut build = d.build_image(options, None, Some(bollard::body_full(context.into())));
    while let Some(step) = build.next().await {
        step.unwrap_or_else(|e| panic!("building {tag}: {e}"));
    }
    let labels = d
        .inspect_image(tag)
        .await
        .unwrap_or_else(|e| panic!("{tag} after its build: {e}"))
        .config
        .and_then(|c| c.labels)
        .unwrap_or_default();
    assert!(
        !labels.contains_key(netbench::docker::labels::OWNER),
        "{tag} carries netbench's label: {labels:?}"
    );
}

/// `netbench report DIR | head -c 64`: the reader goes away after 64 bytes of far more
/// than a pipe holds (3000 scenarios); netbench stops writing quietly (no panic, exit
/// 0) instead of dying with exit code 101.
#[tokio::test]
async fn report_into_a_closed_pipe_exits_quietly() {
    use std::io::Read as _;
    let dir = out_dir("pipe");
    let mut results = Results::new(netbench::results::Env::local(), serde_json::json!({}));
    for i in 0..3000 {
        results
            .scenarios
            .push(netbench::results::Scenario::unsupported(
                format!("scenario-{i}"),
                "runc",
                "bridge",
                "bridge",
                "none",
                "a long enough reason to fill the pipe's buffer quickly".into(),
            ));
    }
    results.write(&dir).expect("results.json");
    let mut child = Command::new(netbench_bin())
        .args(["report", dir.to_str().unwrap()])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawning netbench");
    let mut stdout = child.stdout.take().expect("stdout");
    let mut first = [0u8; 64];
    let n = stdout.read(&mut first).expect("reading the first bytes");
    assert!(n > 0, "netbench printed nothing");
    drop(stdout);
    let out = child.wait_with_output().expect("waiting");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    let _ = std::fs::remove_dir_all(&dir);
}
