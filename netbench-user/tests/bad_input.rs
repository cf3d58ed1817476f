//! Bad input, run against the built binary: each case ends with one clear line on
//! stderr (no usage dump), a non-zero exit, and nothing left behind (no results
//! directory, no namespace of the process, no netbench container or network). Runs in
//! the unit tier (`cargo test`); the cases that get past the root check need root and
//! are skipped without it.

mod common;

use std::{
    collections::BTreeSet,
    os::unix::process::ExitStatusExt as _,
    path::{Path, PathBuf},
    process::{Command, Output, Stdio},
};

fn netbench_bin() -> PathBuf {
    std::env::var_os("NETBENCH_BIN").map_or_else(
        || Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/debug/netbench"),
        PathBuf::from,
    )
}

/// A fresh scratch directory (removed by the test).
fn scratch(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("nb-bad-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// `netbench ARGS`, with `env` set, optionally as the unprivileged user `nobody`.
fn netbench_with(args: &[&str], env: &[(&str, &str)], unprivileged: bool, cwd: &Path) -> Output {
    netbench_pid(args, env, unprivileged, cwd).0
}

/// As [`netbench_with`], with the process id netbench ran as.
fn netbench_pid(
    args: &[&str],
    env: &[(&str, &str)],
    unprivileged: bool,
    cwd: &Path,
) -> (Output, u32) {
    let mut cmd = if unprivileged && nix::unistd::geteuid().is_root() {
        let mut c = Command::new("setpriv");
        c.args(["--reuid=65534", "--regid=65534", "--clear-groups"])
            .arg(netbench_bin());
        c
    } else {
        Command::new(netbench_bin())
    };
    // setpriv execs netbench: the pid stays the same.
    let child = cmd
        .args(args)
        .envs(env.iter().copied())
        .current_dir(cwd)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("running netbench");
    let pid = child.id();
    let out = child.wait_with_output().expect("waiting for netbench");
    eprintln!(
        "$ netbench {}\n--- exit {:?}\n--- stderr\n{}",
        args.join(" "),
        out.status.code(),
        String::from_utf8_lossy(&out.stderr)
    );
    (out, pid)
}

fn netbench(args: &[&str]) -> Output {
    netbench_with(args, &[], false, &std::env::temp_dir())
}

/// Non-zero exit (not a panic, not a signal) and exactly one non-empty line on stderr,
/// without clap's usage; returns the line.
#[track_caller]
fn one_error_line(args: &[&str], out: &Output) -> String {
    let stderr = String::from_utf8_lossy(&out.stderr);
    let code = out.status.code();
    assert!(
        matches!(code, Some(c) if c != 0 && c != 101),
        "{args:?}: exit {code:?} (signal {:?}), stderr {stderr:?}",
        out.status.signal()
    );
    let lines: Vec<&str> = stderr.lines().collect();
    assert!(
        lines.len() == 1 && !lines[0].trim().is_empty(),
        "{args:?}: want one stderr line, got {stderr:?}"
    );
    assert!(!stderr.contains("Usage:"), "{args:?}: {stderr:?}");
    assert!(lines[0].starts_with("netbench: "), "{args:?}: {stderr:?}");
    lines[0].to_owned()
}

#[test]
fn bad_flags_and_values_are_one_line_and_exit_2() {
    for (args, want) in [
        (
            &["run", "--runtimes", "ru/nc"][..],
            "invalid runtime name 'ru/nc'",
        ),
        (&["run", "--runtimes", ""], "--runtimes: empty item"),
        (&["run", "--runtimes", "runc,runc"], "'runc' given twice"),
        (&["run", "--drivers", "bogus"], "unknown driver 'bogus'"),
        (&["run", "--drivers", "bridge,"], "--drivers: empty item"),
        (&["run", "--stress", "bogus"], "unknown stress 'bogus'"),
        (&["run", "--reps", "0"], "0 is not in 1..=1000"),
        (&["run", "--reps", "-1"], "-1 is not in 1..=1000"),
        (&["run", "--reps", "99999999999"], "is not in 1..=1000"),
        (
            &["run", "--reps", "many"],
            "invalid value 'many' for '--reps",
        ),
        (&["run", "--probes", "0"], "0 is not in 1..=1000000"),
        (&["run", "--probes", "1000001"], "is not in 1..=1000000"),
        (&["run", "--duration", "0"], "0 is not in 1..=3600"),
        (
            &["run", "--duration", "-5"],
            "invalid value '-5' for '--duration",
        ),
        (
            &["run", "--duration", "1h"],
            "invalid value '1h' for '--duration",
        ),
        (&["run", "--stress-cpus", "5000"], "is not in 0..=1024"),
        (
            &["run", "--sched", "bogus"],
            "[possible values: auto, on, off]",
        ),
        (
            &["run", "--bandwidth-tracing", "x"],
            "[possible values: off, count-only]",
        ),
        (
            &["run", "--macvlan-parent", "a/b"],
            "'a/b' is not an interface name",
        ),
        (&["run", "--bogus"], "unexpected argument '--bogus'"),
        (
            &["run", "--reps", "1", "--reps", "2"],
            "cannot be used multiple times",
        ),
        (&["run", "--out"], "a value is required for '--out"),
        (
            &["lab", "--path", "bogus"],
            "[possible values: veth, bridge, tap]",
        ),
        (&["lab", "--probes", "0"], "0 is not in 1..=1000000"),
        (&["lab", "--size", "23"], "23 is not in 24..=1400"),
        (&["lab", "--size", "1000000"], "is not in 24..=1400"),
        (&["lab", "--pairs", "0"], "0 is not in 1..=100"),
        (&["lab", "--proto", "sctp"], "[possible values: udp, tcp]"),
        (
            &["lab", "--cpus", "all"],
            "[possible values: split, same, any]",
        ),
        (&["lab", "extra"], "unexpected argument 'extra'"),
        (
            &["bench", "--only", "bogus"],
            "[possible values: cost, throughput",
        ),
        (
            &["bench", "--short", "--short"],
            "cannot be used multiple times",
        ),
        (&["report"], "required arguments were not provided: <DIR>"),
        (&["report", "a", "b"], "unexpected argument 'b'"),
        (&["cleanup", "--bogus"], "unexpected argument '--bogus'"),
        (&["doctor", "--bogus"], "unexpected argument '--bogus'"),
        (&["bogus"], "unrecognized subcommand 'bogus'"),
        (&["doc"], "tip: a similar subcommand exists: 'doctor'"),
        (&[], "missing subcommand"),
    ] {
        let out = netbench(args);
        let line = one_error_line(args, &out);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert!(line.contains(want), "{args:?}: {line:?} lacks {want:?}");
    }
}

#[test]
fn help_and_version_print_in_full_on_stdout() {
    for args in [&["--help"][..], &["-h"], &["run", "--help"], &["lab", "-h"]] {
        let out = netbench(args);
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert_eq!(out.status.code(), Some(0), "{args:?}");
        assert!(stdout.contains("Usage: netbench"), "{args:?}: {stdout}");
        assert!(out.stderr.is_empty(), "{args:?}");
    }
    let full = String::from_utf8_lossy(&netbench(&["run", "--help"]).stdout).into_owned();
    assert!(full.contains("--runtimes <RUNTIMES>") && full.contains("--sched <SCHED>"));
    let out = netbench(&["--version"]);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        format!("netbench {}", env!("CARGO_PKG_VERSION"))
    );
}

#[test]
fn corrupt_results_files_are_one_line_for_report() {
    let real = include_str!("../src/results/testdata/run.json");
    let dir = scratch("report");
    let cases: [(&str, Vec<u8>, &str); 8] = [
        ("empty", Vec::new(), "not a netbench results.json"),
        (
            "truncated",
            real.as_bytes()[..real.len() / 2].to_vec(),
            "not a netbench results.json",
        ),
        (
            "binary",
            vec![0x00, 0xff, 0xfe, 0x7b, 0x80],
            "not a netbench results.json",
        ),
        (
            "garbage-after-a-prefix",
            [&real.as_bytes()[..100], b"\xff\x00 garbage"].concat(),
            "not a netbench results.json",
        ),
        (
            "newer-schema",
            real.replacen("\"schema\": 2", "\"schema\": 99", 1)
                .into_bytes(),
            "results schema 99, this netbench reads 1 to 2",
        ),
        (
            "wrong-shape",
            br#"{"schema": 2, "scenarios": {}}"#.to_vec(),
            "not a netbench results.json",
        ),
        (
            "an-array",
            b"[1, 2, 3]".to_vec(),
            "not a netbench results.json",
        ),
        (
            "a-negative-count",
            real.replacen("\"probes_sent\": ", "\"probes_sent\": -", 1)
                .into_bytes(),
            "not a netbench results.json",
        ),
    ];
    for (name, bytes, want) in cases {
        let d = dir.join(name);
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(d.join("results.json"), &bytes).unwrap();
        let d_str = d.to_str().unwrap();
        let out = netbench(&["report", d_str]);
        let line = one_error_line(&["report", name], &out);
        assert_eq!(out.status.code(), Some(1), "{name}");
        assert!(
            line.contains(want) && line.contains(d_str),
            "{name}: {line}"
        );
        // Nothing written beside the bad file (no plots, no summary).
        let left: Vec<_> = std::fs::read_dir(&d)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(left, ["results.json"], "{name}");
    }
    let missing = dir.join("missing");
    let out = netbench(&["report", missing.to_str().unwrap()]);
    let line = one_error_line(&["report", "missing"], &out);
    assert!(line.contains("No such file or directory"), "{line}");
    assert!(!missing.exists());
    std::fs::remove_dir_all(&dir).unwrap();
}

/// `netbench ... | head -1` at its worst: the reader is gone before the first write.
fn with_closed_stdout(args: &[&str], cwd: &Path) -> Output {
    let (read, write) = nix::unistd::pipe().unwrap();
    drop(read);
    let out = Command::new(netbench_bin())
        .args(args)
        .current_dir(cwd)
        .stdin(Stdio::null())
        .stdout(Stdio::from(write))
        .stderr(Stdio::piped())
        .output()
        .expect("running netbench");
    eprintln!(
        "$ netbench {} | (closed)\n--- exit {:?}\n--- stderr\n{}",
        args.join(" "),
        out.status.code(),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

#[test]
fn a_closed_stdout_ends_quietly() {
    let dir = scratch("pipe");
    std::fs::write(
        dir.join("results.json"),
        include_str!("../src/results/testdata/run.json"),
    )
    .unwrap();
    let report = dir.to_str().unwrap();
    for args in [
        &["--help"][..],
        &["--version"],
        &["run", "--help"],
        &["report", report],
        &["doctor"],
        &["doctor", "--json"],
    ] {
        let out = with_closed_stdout(args, &dir);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            !stderr.contains("panicked") && !stderr.contains("Broken pipe"),
            "{args:?}: {stderr}"
        );
        let code = out.status.code();
        assert!(
            matches!(code, Some(0 | 1)),
            "{args:?}: exit {code:?}: {stderr}"
        );
        // Only doctor's verdict (this host may not run the default) may say 1.
        if args[0] != "doctor" {
            assert_eq!(code, Some(0), "{args:?}: {stderr}");
        }
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Namespaces of the netbench process `pid` (named `nb-<pid>-...`).
fn netns_of(pid: u32) -> Vec<String> {
    let prefix = format!("nb-{pid}-");
    std::fs::read_dir("/run/netns")
        .map(|d| {
            d.filter_map(Result::ok)
                .filter_map(|e| e.file_name().into_string().ok())
                .filter(|n| n.starts_with(&prefix))
                .collect()
        })
        .unwrap_or_default()
}

/// A Docker socket that only notes whether anyone connected: a case run with
/// `DOCKER_HOST` pointing at it that never connects cannot have created a container or
/// a network (a check that other tests' containers cannot confuse).
struct DockerSpy {
    listener: std::os::unix::net::UnixListener,
    host: String,
}

impl DockerSpy {
    fn new(dir: &Path) -> Self {
        let path = dir.join("docker-spy.sock");
        let listener = std::os::unix::net::UnixListener::bind(&path).unwrap();
        listener.set_nonblocking(true).unwrap();
        Self {
            listener,
            host: format!("unix://{}", path.display()),
        }
    }

    fn contacted(&self) -> bool {
        self.listener.accept().is_ok()
    }
}

/// Run a case that fails before any work, then check it left nothing: no namespace of
/// its own, no contact with Docker (unless `env` names a `DOCKER_HOST` of its own),
/// nothing new under `scratch`.
#[track_caller]
fn fails_leaving_nothing(
    args: &[&str],
    env: &[(&str, &str)],
    unprivileged: bool,
    scratch: &Path,
) -> String {
    let spy = DockerSpy::new(scratch);
    let mut env = env.to_vec();
    if !env.iter().any(|(k, _)| *k == "DOCKER_HOST") {
        env.push(("DOCKER_HOST", &spy.host));
    }
    let files_before: BTreeSet<PathBuf> = walk(scratch);
    let (out, pid) = netbench_pid(args, &env, unprivileged, scratch);
    let line = one_error_line(args, &out);
    assert_eq!(
        netns_of(pid),
        Vec::<String>::new(),
        "{args:?}: namespaces left"
    );
    assert_eq!(walk(scratch), files_before, "{args:?}: files left");
    assert!(!spy.contacted(), "{args:?}: Docker was contacted");
    drop(spy);
    let _ = std::fs::remove_file(scratch.join("docker-spy.sock"));
    line
}

fn walk(dir: &Path) -> BTreeSet<PathBuf> {
    let mut all = BTreeSet::new();
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.filter_map(Result::ok) {
            let p = e.path();
            if p.is_dir() {
                all.extend(walk(&p));
            }
            all.insert(p);
        }
    }
    all
}

#[test]
fn without_root_lab_run_and_bench_say_so_in_one_line() {
    if nix::unistd::geteuid().is_root() && which("setpriv").is_none() {
        common::skip(&common::test_name(), "setpriv is needed to drop root");
        return;
    }
    let dir = scratch("nonroot");
    // nobody must be able to enter the directory (its parent is the temp dir).
    std::fs::set_permissions(&dir, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    for (args, want) in [
        (&["lab", "--probes", "10"][..], "lab needs root"),
        (&["lab", "--out", "res"], "lab needs root"),
        (
            &["run", "--drivers", "bridge", "--stress", "none"],
            "run needs root",
        ),
        (&["bench", "--short"], "bench needs root"),
    ] {
        let line = fails_leaving_nothing(args, &[], true, &dir);
        assert!(line.contains(want), "{args:?}: {line}");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

fn which(tool: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|p| {
        std::env::split_paths(&p)
            .map(|d| d.join(tool))
            .find(|p| p.is_file())
    })
}

#[test]
fn unwritable_output_directories_fail_before_any_work() {
    if common::require_root().is_none() {
        return;
    }
    let dir = scratch("out");
    let file = dir.join("a-file");
    std::fs::write(&file, "x").unwrap();
    let file = file.to_str().unwrap().to_owned();
    let under_file = format!("{file}/sub");
    let quick_run = [
        "run",
        "--drivers",
        "bridge",
        "--stress",
        "none",
        "--reps",
        "1",
    ];
    let quick_lab = ["lab", "--probes", "10", "--pairs", "1"];
    for (cmd, out, want) in [
        (
            &quick_lab[..],
            "/proc/nb-out",
            "cannot write results in /proc/nb-out: ",
        ),
        (
            &quick_lab,
            "/sys/nb-out/x",
            "cannot write results in /sys/nb-out/x: ",
        ),
        (&quick_lab, &file, "Not a directory"),
        (&quick_lab, &under_file, "Not a directory"),
        (
            &quick_run,
            "/proc/nb-out",
            "cannot write results in /proc/nb-out: ",
        ),
        (&quick_run, &file, "is a file, not a directory"),
        (&quick_run, &under_file, "Not a directory"),
    ] {
        let mut args = cmd.to_vec();
        args.extend(["--out", out]);
        let started = std::time::Instant::now();
        let line = fails_leaving_nothing(&args, &[], false, &dir);
        assert!(line.contains(want), "{args:?}: {line}");
        // Before any work: no topology, no image, no probe.
        assert!(
            started.elapsed() < std::time::Duration::from_secs(10),
            "{args:?}: took {:?}",
            started.elapsed()
        );
    }
    // bench --out names a file: its directory is checked, and a directory is refused.
    for (out, want) in [
        (
            "/proc/nb-out/figures.json",
            "cannot write results in /proc/nb-out",
        ),
        (dir.to_str().unwrap(), "is a directory, not a file"),
    ] {
        let line = fails_leaving_nothing(&["bench", "--short", "--out", out], &[], false, &dir);
        assert!(line.contains(want), "bench --out {out}: {line}");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn no_docker_daemon_is_one_line_and_leaves_no_results_directory() {
    if common::require_root().is_none() {
        return;
    }
    let dir = scratch("nodocker");
    let sock = format!("unix://{}/no-such.sock", dir.display());
    let out = dir.join("new/results");
    let out = out.to_str().unwrap();
    let args = [
        "run",
        "--drivers",
        "bridge",
        "--stress",
        "none",
        "--reps",
        "1",
        "--out",
        out,
    ];
    let line = fails_leaving_nothing(&args, &[("DOCKER_HOST", &sock)], false, &dir);
    assert!(line.contains("dockerd not reachable"), "{line}");
    assert!(
        !dir.join("new").exists(),
        "the writability check left its directory"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_daemon_that_hangs_up_is_one_line_and_leaves_no_results_directory() {
    if common::require_root().is_none() {
        return;
    }
    let dir = scratch("hangup");
    let sock = dir.join("hangup.sock");
    let listener = std::os::unix::net::UnixListener::bind(&sock).unwrap();
    let accepted = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let seen = accepted.clone();
    // Accept and close at once, whatever is asked.
    std::thread::spawn(move || {
        for c in listener.incoming() {
            seen.store(true, std::sync::atomic::Ordering::SeqCst);
            drop(c);
        }
    });
    let out = dir.join("new/results");
    let args = [
        "run",
        "--drivers",
        "bridge",
        "--stress",
        "none",
        "--reps",
        "1",
        "--out",
        out.to_str().unwrap(),
    ];
    let host = format!("unix://{}", sock.display());
    let (o, pid) = netbench_pid(&args, &[("DOCKER_HOST", &host)], false, &dir);
    let line = one_error_line(&args, &o);
    assert!(
        accepted.load(std::sync::atomic::Ordering::SeqCst),
        "never connected: {line}"
    );
    assert!(line.contains("docker") || line.contains("Docker"), "{line}");
    assert_eq!(netns_of(pid), Vec::<String>::new());
    assert!(!dir.join("new").exists(), "results directory left: {line}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_lab_that_fails_leaves_no_namespace() {
    if common::require_root().is_none() {
        return;
    }
    // An agent path that does not exist: the lab fails after its checks, before or
    // while building; whatever it created is gone when it exits.
    let dir = scratch("labfail");
    for path in ["veth", "bridge", "tap"] {
        let args = ["lab", "--path", path, "--probes", "10", "--pairs", "1"];
        let line = fails_leaving_nothing(
            &args,
            &[("NETBENCH_AGENT", "/nonexistent/netbench-agent")],
            false,
            &dir,
        );
        assert!(line.contains("agent"), "{line}");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}
