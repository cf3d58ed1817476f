//! `cargo xtask test`: every test tier in order, failing fast, with a timed summary.
//!
//! Tiers (design.md): unit (no root) -> privileged integration (root, real eBPF on
//! netns the tests build) -> end to end (root, real dockerd). The root tiers are the
//! integration-test targets named in [`ROOT_TIERS`]; every other test target is unit.

use std::{
    fs,
    path::PathBuf,
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result, bail};

use crate::{
    build::{self, Binaries, Profile},
    cmd::{self, workspace_root},
    setup,
};

/// Integration-test targets of netbench-user that need root, in the order they run.
const ROOT_TIERS: &[RootTier] = &[
    RootTier {
        test: "privileged",
        step: "privileged tests",
        optional: false,
    },
    RootTier {
        test: "session",
        step: "trace session tests",
        optional: false,
    },
    // The kernel's BTF hidden in a mount namespace: sched tracing refuses in one line.
    RootTier {
        test: "no_btf",
        step: "no-BTF tests",
        optional: false,
    },
    // Written later; runs as soon as the file exists.
    RootTier {
        test: "e2e",
        step: "e2e tests",
        optional: true,
    },
    // SIGINT/SIGKILL at each phase of a real run, then cleanup: nothing left.
    RootTier {
        test: "faults",
        step: "fault tests",
        optional: false,
    },
];

struct RootTier {
    /// The test target, `netbench-user/tests/<test>.rs`.
    test: &'static str,
    step: &'static str,
    /// Skipped (with a line saying so) while its file does not exist.
    optional: bool,
}

#[derive(Clone, Copy, Debug)]
pub struct Options {
    /// Only setup (toolchains), lint, build and unit tests: nothing that needs root.
    pub unit_only: bool,
    /// Skip `cargo fmt --check` and clippy.
    pub no_lint: bool,
}

pub fn test(options: Options) -> Result<()> {
    let mut steps = Steps::default();
    let result = run_tiers(&mut steps, options);
    steps.print_summary();
    // Last line: the plain totals over every cargo test run above. Skipped: ignored
    // tests and the tests that skipped themselves (never counted as passed).
    let t = cmd::test_totals();
    println!(
        "tests: {} passed, {} failed, {} skipped",
        t.passed,
        t.failed,
        t.ignored + t.skipped
    );
    result
}

fn run_tiers(steps: &mut Steps, options: Options) -> Result<()> {
    steps.run("setup", || {
        if options.unit_only {
            setup::toolchains_and_lint()
        } else {
            setup::all()
        }
    })?;

    if options.no_lint {
        steps.skip("fmt", "--no-lint");
        steps.skip("clippy", "--no-lint");
    } else {
        steps.run("fmt", || {
            cmd::run(&mut cmd::cargo(["fmt", "--all", "--check"]))
        })?;
        steps.run("clippy", || {
            cmd::run(&mut cmd::cargo([
                "clippy",
                "--workspace",
                "--all-targets",
                "--",
                "-D",
                "warnings",
            ]))
        })?;
    }

    let bins = steps.run("build", || build::build(Profile::Debug))?;
    steps.run("unit tests", unit_tests)?;

    let why_not = if options.unit_only {
        Some("--unit-only".to_owned())
    } else if !cmd::is_root() {
        let euid = cmd::euid().map_or_else(|| "unknown".into(), |id| id.to_string());
        Some(format!("needs root, running as euid {euid}"))
    } else {
        None
    };
    if let Some(why) = why_not {
        for tier in ROOT_TIERS {
            steps.skip(tier.step, &why);
        }
        if options.unit_only {
            return Ok(());
        }
        bail!("the privileged test tiers need root: run as root, or pass --unit-only");
    }

    for tier in ROOT_TIERS {
        if tier.optional && !tier_file(tier.test).exists() {
            steps.skip(
                tier.step,
                &format!("netbench-user/tests/{}.rs does not exist yet", tier.test),
            );
            continue;
        }
        steps.run(tier.step, || root_tier(tier, &bins))?;
    }
    // The benchmark harness in short mode: correctness only (sane figures, nothing left
    // behind), no performance assertions.
    let figures = workspace_root().join("target").join("bench-short.json");
    steps.run("bench (short)", || {
        crate::bench::run(&bins, true, &figures, &[])
    })?;
    Ok(())
}

/// Every test target except the root tiers: libs, bins, the other integration tests,
/// doctests. (`cargo test --workspace` alone would also run the root tiers, in
/// parallel and without the binaries they need.)
fn unit_tests() -> Result<()> {
    let mut tests = cmd::cargo(["test", "--workspace", "--lib", "--bins"]);
    for name in unit_integration_tests()? {
        tests.args(["--test", &name]);
    }
    cmd::run_tests(&mut tests)?;
    cmd::run_tests(&mut cmd::cargo(["test", "--workspace", "--doc"]))
}

/// Names of the integration-test targets (`<crate>/tests/<name>.rs` or
/// `<crate>/tests/<name>/main.rs`) of every crate, minus the root tiers.
fn unit_integration_tests() -> Result<Vec<String>> {
    let mut names = Vec::new();
    for krate in fs::read_dir(workspace_root()).context("listing the workspace")? {
        let krate = krate?.path();
        let tests_dir = krate.join("tests");
        if !krate.join("Cargo.toml").is_file() || !tests_dir.is_dir() {
            continue;
        }
        for entry in
            fs::read_dir(&tests_dir).with_context(|| format!("listing {}", tests_dir.display()))?
        {
            let path = entry?.path();
            let name = if path.extension().is_some_and(|e| e == "rs") {
                path.file_stem()
            } else if path.join("main.rs").is_file() {
                path.file_name()
            } else {
                None
            };
            if let Some(name) = name.and_then(|n| n.to_str())
                && !ROOT_TIERS.iter().any(|tier| tier.test == name)
            {
                names.push(name.to_owned());
            }
        }
    }
    names.sort();
    names.dedup();
    Ok(names)
}

fn tier_file(test: &str) -> PathBuf {
    workspace_root()
        .join("netbench-user/tests")
        .join(format!("{test}.rs"))
}

/// One root tier, serially and with the binaries it exercises.
fn root_tier(tier: &RootTier, bins: &Binaries) -> Result<()> {
    let mut tests = cmd::cargo([
        "test",
        "-p",
        "netbench-user",
        "--test",
        tier.test,
        "--",
        "--test-threads=1",
    ]);
    if tier.test == "privileged" || tier.test == "session" {
        tests.arg("--nocapture");
    }
    cmd::run_tests(
        tests
            .env("NETBENCH_AGENT", &bins.agent)
            .env("NETBENCH_BIN", &bins.netbench),
    )
}

enum Status {
    Ok,
    Failed,
    Skipped(String),
}

struct StepRecord {
    name: String,
    status: Status,
    elapsed: Duration,
}

/// The steps run so far, for the summary.
#[derive(Default)]
struct Steps {
    records: Vec<StepRecord>,
}

impl Steps {
    /// Runs one step under a header line; a failure names the step.
    fn run<T>(&mut self, name: &str, step: impl FnOnce() -> Result<T>) -> Result<T> {
        println!("\n==> {name}");
        let start = Instant::now();
        let result = step();
        let elapsed = start.elapsed();
        let status = if result.is_ok() {
            Status::Ok
        } else {
            Status::Failed
        };
        self.records.push(StepRecord {
            name: name.to_owned(),
            status,
            elapsed,
        });
        result.map_err(|e| {
            println!("==> FAILED: {name} ({:.1} s): {e:#}", elapsed.as_secs_f64());
            e.context(format!("step `{name}` failed"))
        })
    }

    fn skip(&mut self, name: &str, why: &str) {
        println!("\n==> {name}: skipped ({why})");
        self.records.push(StepRecord {
            name: name.to_owned(),
            status: Status::Skipped(why.to_owned()),
            elapsed: Duration::ZERO,
        });
    }

    fn print_summary(&self) {
        println!("\n==> summary");
        let width = self.records.iter().map(|r| r.name.len()).max().unwrap_or(0);
        for record in &self.records {
            let status = match &record.status {
                Status::Ok => "ok".to_owned(),
                Status::Failed => "FAILED".to_owned(),
                Status::Skipped(why) => format!("skipped ({why})"),
            };
            println!(
                "  {:<width$}  {:>7.1} s  {status}",
                record.name,
                record.elapsed.as_secs_f64()
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_libtest_summaries() {
        let t = cmd::parse_test_result(
            "test result: ok. 4 passed; 1 failed; 2 ignored; 0 measured; 0 filtered out; finished in 1.16s",
        );
        assert_eq!(
            t,
            Some(cmd::TestTotals {
                passed: 4,
                failed: 1,
                ignored: 2,
                skipped: 0,
            })
        );
        assert_eq!(cmd::parse_test_result("running 4 tests"), None);
    }

    /// A root tier's real output as a non-root user: libtest counts the two tests that
    /// skipped themselves as passed; their markers move them to skipped.
    #[test]
    fn self_skipped_tests_count_as_skipped_not_passed() {
        let output = "\
running 5 tests
test bad_device_fails_cleanly ... ok
test lab_tap_path_traced_and_untraced ... ok
test same_ifindex_in_two_namespaces_is_refused ... ok
test tcp_rr_across_veth_is_traced_at_both_ends ... FAILED
test slow_one ... ignored

test result: FAILED. 3 passed; 1 failed; 1 ignored; 0 measured; 0 filtered out; finished in 0.01s
";
        let mut run = cmd::TestTotals::default();
        for line in output.lines().filter_map(cmd::parse_test_result) {
            run.passed += line.passed;
            run.failed += line.failed;
            run.ignored += line.ignored;
        }
        let skips: Vec<cmd::Skip> = [
            "bad_device_fails_cleanly: privileged test needs root (run `cargo xtask test`)\n",
            "lab_tap_path_traced_and_untraced: no /dev/net/tun: tap devices unavailable",
        ]
        .into_iter()
        .map(|l| cmd::parse_skip(l).expect("marker"))
        .collect();
        assert_eq!(skips[0].test, "bad_device_fails_cleanly");
        assert_eq!(
            skips[0].why,
            "privileged test needs root (run `cargo xtask test`)"
        );
        assert_eq!(
            skips[1].why, "no /dev/net/tun: tap devices unavailable",
            "the reason keeps its own colons"
        );
        assert_eq!(
            cmd::with_skips(run, &skips).unwrap(),
            cmd::TestTotals {
                passed: 1,
                failed: 1,
                ignored: 1,
                skipped: 2,
            }
        );
        // Markers of tests that did not pass here are not this run's: an error, never
        // a negative count.
        let one_passed = cmd::TestTotals { passed: 1, ..run };
        assert!(cmd::with_skips(one_passed, &skips).is_err());
        assert_eq!(cmd::parse_skip("no reason given"), None);
        assert_eq!(cmd::parse_skip("name: "), None);
    }

    #[test]
    fn root_tiers_are_not_unit_tests() {
        let names = unit_integration_tests().unwrap();
        for tier in ROOT_TIERS {
            assert!(
                !names.iter().any(|n| n == tier.test),
                "{} listed as unit",
                tier.test
            );
        }
    }
}
