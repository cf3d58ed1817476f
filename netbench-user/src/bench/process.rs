//! Child processes of the benchmark (the agent, sockperf, iperf3): started inside a lab
//! namespace, optionally pinned to one CPU (both tools of a comparison get the same
//! placement, so the scheduler's choices do not decide the comparison), bounded in
//! time, and stopped by their own handle.
use std::{ffi::OsStr, process::Stdio, time::Duration};

use nix::sched::{CpuSet, sched_getaffinity};
use tokio::{
    io::{AsyncBufReadExt as _, AsyncRead, BufReader},
    process::{Child, Command},
};

use super::BenchError;
use crate::netns::{NetnsRef, command_in};

/// Where the client and the server of a pair run: the first two CPUs this process may
/// use, or `None` on a one-CPU machine (no pinning then).
#[must_use]
pub fn client_server_cpus() -> Option<(usize, usize)> {
    let set = sched_getaffinity(nix::unistd::Pid::from_raw(0)).ok()?;
    let mut cpus = (0..CpuSet::count()).filter(|&c| set.is_set(c).unwrap_or(false));
    Some((cpus.next()?, cpus.next()?))
}

fn error(label: &'static str, msg: impl Into<String>) -> BenchError {
    BenchError::Tool {
        tool: label,
        msg: msg.into(),
    }
}

/// `program args` inside `ns`, pinned to `cpu` if given; stdout and stderr piped.
///
/// # Errors
/// When the namespace cannot be opened or the CPU is out of range.
pub fn command(
    ns: &NetnsRef,
    program: impl AsRef<OsStr>,
    label: &'static str,
    args: &[String],
    cpu: Option<usize>,
) -> Result<Command, BenchError> {
    let mut cmd = Command::from(
        command_in(ns, program, cpu)
            .map_err(|e| error(label, format!("netns {ns}, cpu {cpu:?}: {e}")))?,
    );
    cmd.args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    Ok(cmd)
}

/// A server process; killed (by its pid) and reaped on `stop`, killed on drop.
pub struct Server {
    label: &'static str,
    child: Child,
}

impl Server {
    /// Spawn `cmd` and wait (at most 10 s) for a stdout line containing `ready`; then
    /// keep reading its output so it never blocks on a full pipe.
    ///
    /// # Errors
    /// When it cannot start or does not become ready.
    pub async fn start(
        mut cmd: Command,
        label: &'static str,
        ready: &'static str,
    ) -> Result<Self, BenchError> {
        let mut child = cmd
            .spawn()
            .map_err(|e| error(label, format!("cannot start: {e}")))?;
        let stdout = child
            .stdout
            .take()
            .ok_or_else(|| error(label, "no stdout"))?;
        let mut lines = BufReader::new(stdout).lines();
        let seen = tokio::time::timeout(Duration::from_secs(10), async {
            while let Ok(Some(line)) = lines.next_line().await {
                if line.contains(ready) {
                    return true;
                }
            }
            false
        })
        .await;
        if seen != Ok(true) {
            let _ = child.start_kill();
            let _ = child.wait().await;
            return Err(error(
                label,
                format!("server did not print {ready:?} within 10 s"),
            ));
        }
        tokio::spawn(drain(lines));
        if let Some(err) = child.stderr.take() {
            tokio::spawn(drain(BufReader::new(err).lines()));
        }
        Ok(Self { label, child })
    }

    /// Its process id (while it runs).
    #[must_use]
    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }

    /// Stop (by pid) and reap.
    pub async fn stop(mut self) {
        let _ = self.child.start_kill();
        if tokio::time::timeout(Duration::from_secs(5), self.child.wait())
            .await
            .is_err()
        {
            eprintln!(
                "bench: {} server did not exit within 5 s of SIGKILL",
                self.label
            );
        }
    }
}

async fn drain<R: AsyncRead + Unpin>(mut lines: tokio::io::Lines<BufReader<R>>) {
    while let Ok(Some(_)) = lines.next_line().await {}
}

/// Run `cmd` to completion, at most `limit` (then it is killed); its stdout.
///
/// Output goes to anonymous files, read once the client has exited: a pipe would wake
/// a reader in netbench at every line the client writes (the agent writes one per
/// probe), and that reader would compete for the CPUs under measurement.
///
/// # Errors
/// When it cannot start, runs too long or exits non-zero (with its last line).
pub async fn run_client(
    mut cmd: Command,
    label: &'static str,
    limit: Duration,
) -> Result<String, BenchError> {
    let io = |what: &str, e: std::io::Error| error(label, format!("{what}: {e}"));
    let mut stdout = anonymous_file().map_err(|e| io("output file", e))?;
    let mut stderr = anonymous_file().map_err(|e| io("output file", e))?;
    cmd.stdout(stdout.try_clone().map_err(|e| io("output file", e))?)
        .stderr(stderr.try_clone().map_err(|e| io("output file", e))?);
    let mut child = cmd
        .spawn()
        .map_err(|e| error(label, format!("cannot start: {e}")))?;
    let Ok(status) = tokio::time::timeout(limit, child.wait()).await else {
        let _ = child.start_kill();
        let _ = child.wait().await;
        return Err(error(label, format!("did not finish within {limit:?}")));
    };
    let status = status.map_err(|e| io("waiting", e))?;
    let stdout = read_all(&mut stdout).map_err(|e| io("reading its output", e))?;
    if !status.success() {
        let stderr = read_all(&mut stderr).unwrap_or_default();
        let last = stderr
            .lines()
            .chain(stdout.lines())
            .rfind(|l| !l.trim().is_empty())
            .unwrap_or("");
        return Err(error(
            label,
            format!("failed ({status}): {}", strip_ansi(last).trim()),
        ));
    }
    Ok(stdout)
}

/// A file with no name (`O_TMPFILE`), gone once closed.
fn anonymous_file() -> std::io::Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt as _;
    std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_TMPFILE)
        .mode(0o600)
        .open(std::env::temp_dir())
}

fn read_all(file: &mut std::fs::File) -> std::io::Result<String> {
    use std::io::{Read as _, Seek as _};
    file.rewind()?;
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes)?;
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

/// `text` without ANSI escape sequences (`ESC [ ... letter`).
pub(super) fn strip_ansi(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn anonymous_files_read_back_what_was_written() {
        use std::io::Write as _;
        let mut f = anonymous_file().unwrap();
        f.write_all(b"line 1\nline 2\n").unwrap();
        assert_eq!(read_all(&mut f).unwrap(), "line 1\nline 2\n");
    }

    /// `sh -c script` here.
    fn sh(script: &str) -> Command {
        command(
            &NetnsRef::Current,
            "sh",
            "sh",
            &["-c".into(), script.into()],
            None,
        )
        .unwrap()
    }

    #[tokio::test]
    async fn clients_report_output_and_failures() {
        let ok = sh("echo out; echo err >&2");
        assert_eq!(
            run_client(ok, "sh", Duration::from_secs(10)).await.unwrap(),
            "out\n"
        );
        let bad = sh("echo why >&2; exit 3");
        let err = run_client(bad, "sh", Duration::from_secs(10))
            .await
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("exit status: 3") && err.ends_with("why"),
            "{err}"
        );
        let slow = command(&NetnsRef::Current, "sleep", "sleep", &["5".into()], None).unwrap();
        let err = run_client(slow, "sleep", Duration::from_millis(100))
            .await
            .unwrap_err()
            .to_string();
        assert!(err.contains("did not finish"), "{err}");
    }

    #[test]
    fn two_cpus_or_none() {
        if let Some((c, s)) = client_server_cpus() {
            assert_ne!(c, s);
        }
    }
}
