//! Child processes: every command is printed before it runs, gets a clean toolchain
//! environment, and fails with its own command line as context.

use std::{
    env,
    ffi::OsStr,
    fs,
    path::{Path, PathBuf},
    process::{Command, Stdio},
};

use anyhow::{Context as _, Result, bail};

/// Toolchain for the host crates: the machine's stable Rust (platform.md: 1.95).
pub const HOST_TOOLCHAIN: &str = "stable";
/// Toolchain for the eBPF crate: its LLVM 22 matches bpf-linker 0.10.3 (platform.md).
/// `netbench-user/build.rs` names the same one.
pub const EBPF_TOOLCHAIN: &str = "nightly-2026-05-20";
/// The one host these machines have; also the explicit `--target` of the static agent.
pub const HOST_TRIPLE: &str = "x86_64-unknown-linux-gnu";

/// The workspace root (this crate's parent directory).
pub fn workspace_root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives inside the workspace")
}

/// A command whose toolchain is only ever the one it names: `RUSTUP_TOOLCHAIN` leaks in
/// from the outer `cargo xtask` and would override every `+toolchain` below it.
pub fn command(program: impl AsRef<OsStr>) -> Command {
    let mut cmd = Command::new(program);
    cmd.env_remove("RUSTUP_TOOLCHAIN");
    cmd
}

/// `cargo +HOST_TOOLCHAIN ARGS`, run in the workspace root.
pub fn cargo<I, S>(args: I) -> Command
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let mut cmd = command("cargo");
    cmd.arg(format!("+{HOST_TOOLCHAIN}"))
        .args(args)
        .current_dir(workspace_root());
    cmd
}

/// Prints the command, runs it with inherited stdio and fails unless it exits 0.
pub fn run(cmd: &mut Command) -> Result<()> {
    let line = display(cmd);
    println!("    $ {line}");
    let status = cmd
        .status()
        .with_context(|| format!("cannot start `{line}`"))?;
    if !status.success() {
        bail!("`{line}` failed ({status})");
    }
    Ok(())
}

/// Totals of the `test result:` lines of every `cargo test` run through [`run_tests`],
/// with the tests that skipped themselves moved from passed to skipped.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TestTotals {
    pub passed: u64,
    pub failed: u64,
    /// `#[ignore]`d tests, as libtest counts them.
    pub ignored: u64,
    /// Tests that ran, found something missing and returned (libtest counts them as
    /// passed): the markers they left in [`SKIP_DIR_ENV`].
    pub skipped: u64,
}

impl TestTotals {
    fn add(&mut self, other: Self) {
        self.passed += other.passed;
        self.failed += other.failed;
        self.ignored += other.ignored;
        self.skipped += other.skipped;
    }
}

static TOTALS: std::sync::Mutex<TestTotals> = std::sync::Mutex::new(TestTotals {
    passed: 0,
    failed: 0,
    ignored: 0,
    skipped: 0,
});

/// The directory in which a test that skips itself leaves the marker file
/// `<test name>: <why>` (netbench-user/tests/common: `skip`). Set by [`run_tests`], a
/// fresh one per `cargo test` run.
pub const SKIP_DIR_ENV: &str = "NETBENCH_SKIP_DIR";

/// One test that skipped itself, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Skip {
    pub test: String,
    pub why: String,
}

/// Parses a marker line `<test name>: <why>`; the name is what precedes the first `": "`
/// (test paths use `::`, never `": "`).
pub fn parse_skip(line: &str) -> Option<Skip> {
    let (test, why) = line.trim().split_once(": ")?;
    let (test, why) = (test.trim(), why.trim());
    (!test.is_empty() && !why.is_empty()).then(|| Skip {
        test: test.to_owned(),
        why: why.to_owned(),
    })
}

/// One run's totals with its skipped tests moved from passed to skipped. A skipping test
/// returns, so libtest counted each of them as passed: more skips than passes means the
/// markers do not belong to this run.
pub fn with_skips(run: TestTotals, skips: &[Skip]) -> Result<TestTotals> {
    let n = skips.len() as u64;
    if n > run.passed {
        bail!(
            "{n} tests left skip markers but only {} passed: {}",
            run.passed,
            describe_skips(skips)
        );
    }
    Ok(TestTotals {
        passed: run.passed - n,
        skipped: run.skipped + n,
        ..run
    })
}

/// `name: why; name: why`.
pub fn describe_skips(skips: &[Skip]) -> String {
    skips
        .iter()
        .map(|s| format!("{}: {}", s.test, s.why))
        .collect::<Vec<_>>()
        .join("; ")
}

/// The markers in `dir`, sorted by test name. A file that is not one marker line is an
/// error: a skip must say which test and why.
fn read_skips(dir: &Path) -> Result<Vec<Skip>> {
    let mut skips = Vec::new();
    for entry in fs::read_dir(dir).with_context(|| format!("listing {}", dir.display()))? {
        let path = entry?.path();
        let text =
            fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
        let skip = parse_skip(&text).with_context(|| {
            format!(
                "{}: not a skip marker `<test name>: <why>`: {text:?}",
                path.display()
            )
        })?;
        skips.push(skip);
    }
    skips.sort_by(|a, b| a.test.cmp(&b.test));
    Ok(skips)
}

/// A skip fails the run in CI (`CI=true`) and as root: there nothing may be missing.
fn skips_fail() -> bool {
    env::var("CI").is_ok_and(|v| v == "true" || v == "1") || is_root()
}

/// A fresh, empty marker directory for one `cargo test` run.
fn fresh_skip_dir() -> Result<PathBuf> {
    static RUNS: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = RUNS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let dir = workspace_root()
        .join("target")
        .join("test-skips")
        .join(format!("{}-{n}", std::process::id()));
    if dir.exists() {
        fs::remove_dir_all(&dir).with_context(|| format!("removing {}", dir.display()))?;
    }
    fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    Ok(dir)
}

/// The totals so far.
pub fn test_totals() -> TestTotals {
    *TOTALS
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Parses one libtest summary line: `test result: ok. 4 passed; 0 failed; 1 ignored; ...`.
pub fn parse_test_result(line: &str) -> Option<TestTotals> {
    let rest = line.trim().strip_prefix("test result: ")?;
    let mut t = TestTotals::default();
    for part in rest.split(';') {
        let mut words = part.split_whitespace().rev();
        let (Some(what), Some(n)) = (words.next(), words.next()) else {
            continue;
        };
        let Ok(n) = n.parse::<u64>() else { continue };
        match what {
            "passed" => t.passed = n,
            "failed" => t.failed = n,
            "ignored" => t.ignored = n,
            _ => {}
        }
    }
    Some(t)
}

/// Like [`run`] for `cargo test`: stdout passes through line by line, its `test result:`
/// lines are added to [`test_totals`], and the tests that skipped themselves (markers in
/// a fresh [`SKIP_DIR_ENV`]) count as skipped, not passed. In CI and as root a skip
/// fails the run, naming each test and why.
pub fn run_tests(cmd: &mut Command) -> Result<()> {
    use std::io::BufRead as _;
    let skip_dir = fresh_skip_dir()?;
    cmd.env(SKIP_DIR_ENV, &skip_dir);
    let line = display(cmd);
    println!("    $ {line}");
    let mut child = cmd
        .stdout(Stdio::piped())
        .spawn()
        .with_context(|| format!("cannot start `{line}`"))?;
    let mut run = TestTotals::default();
    if let Some(out) = child.stdout.take() {
        for l in std::io::BufReader::new(out).lines().map_while(Result::ok) {
            println!("{l}");
            if let Some(t) = parse_test_result(&l) {
                run.add(t);
            }
        }
    }
    let status = child
        .wait()
        .with_context(|| format!("waiting for `{line}`"))?;
    let skips = read_skips(&skip_dir)?;
    // Best effort: the directory is under target/ and the next run starts afresh anyway.
    let _ = fs::remove_dir_all(&skip_dir);
    TOTALS
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .add(with_skips(run, &skips)?);
    for s in &skips {
        println!("    skipped: {}: {}", s.test, s.why);
    }
    if !status.success() {
        bail!("`{line}` failed ({status})");
    }
    if !skips.is_empty() && skips_fail() {
        bail!(
            "{} tests skipped, which fails in CI and as root: {}",
            skips.len(),
            describe_skips(&skips)
        );
    }
    Ok(())
}

/// Runs a check quietly: its stdout when it exits 0, `None` when it cannot start or fails.
pub fn stdout_of(cmd: &mut Command) -> Option<String> {
    let out = cmd
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The first `program` on `PATH`, like `which`.
pub fn which(program: &str) -> Option<PathBuf> {
    env::split_paths(&env::var_os("PATH")?)
        .map(|dir| dir.join(program))
        .find(|path| path.is_file())
}

/// `K=V program args`, with shell quoting where an argument needs it (for reading and
/// copy-pasting only: nothing here is ever passed to a shell).
pub fn display(cmd: &Command) -> String {
    let envs = cmd
        .get_envs()
        .filter_map(|(key, value)| Some((key, value?)))
        .map(|(key, value)| format!("{}={}", key.to_string_lossy(), quote(value)));
    let words = std::iter::once(cmd.get_program())
        .chain(cmd.get_args())
        .map(quote);
    envs.chain(words).collect::<Vec<_>>().join(" ")
}

fn quote(word: &OsStr) -> String {
    let word = word.to_string_lossy();
    let plain = |c: char| c.is_ascii_alphanumeric() || "-_./=+:,@%".contains(c);
    if !word.is_empty() && word.chars().all(plain) {
        word.into_owned()
    } else {
        format!("'{}'", word.replace('\'', r"'\''"))
    }
}

/// The effective uid, from `/proc/self/status`.
pub fn euid() -> Option<u32> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let uids = status.lines().find_map(|l| l.strip_prefix("Uid:"))?;
    uids.split_whitespace().nth(1)?.parse().ok()
}

pub fn is_root() -> bool {
    euid() == Some(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_shows_set_env_and_quotes_only_what_needs_it() {
        let mut cmd = command("docker");
        cmd.env("RUSTFLAGS", "-C target-feature=+crt-static").args([
            "version",
            "--format",
            "{{.Server.Version}}",
        ]);
        assert_eq!(
            display(&cmd),
            "RUSTFLAGS='-C target-feature=+crt-static' docker version --format '{{.Server.Version}}'"
        );
    }
}
