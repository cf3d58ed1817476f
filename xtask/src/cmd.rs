//! Child processes: every command is printed before it runs, gets a clean toolchain
//! environment, and fails with its own command line as context.

use std::{
    env,
    ffi::OsStr,
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

/// Totals of the `test result:` lines of every `cargo test` run through [`run_tests`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TestTotals {
    pub passed: u64,
    pub failed: u64,
    pub ignored: u64,
}

static TOTALS: std::sync::Mutex<TestTotals> = std::sync::Mutex::new(TestTotals {
    passed: 0,
    failed: 0,
    ignored: 0,
});

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

/// Like [`run`] for `cargo test`: stdout passes through line by line, and its
/// `test result:` lines are added to [`test_totals`].
pub fn run_tests(cmd: &mut Command) -> Result<()> {
    use std::io::BufRead as _;
    let line = display(cmd);
    println!("    $ {line}");
    let mut child = cmd
        .stdout(Stdio::piped())
        .spawn()
        .with_context(|| format!("cannot start `{line}`"))?;
    if let Some(out) = child.stdout.take() {
        for l in std::io::BufReader::new(out).lines().map_while(Result::ok) {
            println!("{l}");
            if let Some(t) = parse_test_result(&l) {
                let mut totals = TOTALS
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                totals.passed += t.passed;
                totals.failed += t.failed;
                totals.ignored += t.ignored;
            }
        }
    }
    let status = child
        .wait()
        .with_context(|| format!("waiting for `{line}`"))?;
    if !status.success() {
        bail!("`{line}` failed ({status})");
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
