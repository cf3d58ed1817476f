//! External tools (`--version`), and the bounded child-process runner the checks share.
use std::{ffi::OsStr, io, process::ExitStatus, process::Stdio, time::Duration};

use tokio::{
    io::{AsyncRead, AsyncReadExt as _},
    process::Command,
};

use super::{Item, Status};

/// How long any `--version` may take.
const VERSION_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a killed child may take to be reaped.
const KILL_GRACE: Duration = Duration::from_secs(2);

/// A child process that exited on its own.
#[derive(Debug)]
pub(super) struct Finished {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

#[derive(Debug, thiserror::Error)]
pub(super) enum RunError {
    #[error("{program} not found")]
    NotFound { program: String },
    #[error("starting {program}")]
    Spawn {
        program: String,
        #[source]
        source: io::Error,
    },
    #[error("waiting for {program}")]
    Wait {
        program: String,
        #[source]
        source: io::Error,
    },
    #[error("{program} did not exit within {} s{}", limit.as_secs(), if *reaped { "" } else { " (and survived SIGKILL)" })]
    TimedOut {
        program: String,
        limit: Duration,
        /// What it printed before it was killed.
        stdout: String,
        /// Whether the killed child was reaped within the grace period.
        reaped: bool,
    },
}

/// Run `program args` (no shell), capture its output, and on timeout kill that child
/// (by its own handle) and report what it printed so far.
pub(super) async fn run(
    program: impl AsRef<OsStr>,
    args: &[&str],
    limit: Duration,
) -> Result<Finished, RunError> {
    let program = program.as_ref();
    let name = program.to_string_lossy().into_owned();
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|source| match source.kind() {
            io::ErrorKind::NotFound => RunError::NotFound {
                program: name.clone(),
            },
            _ => RunError::Spawn {
                program: name.clone(),
                source,
            },
        })?;

    let (mut stdout_pipe, mut stderr_pipe) = (child.stdout.take(), child.stderr.take());
    let (mut stdout, mut stderr) = (Vec::new(), Vec::new());
    let waited = tokio::time::timeout(limit, async {
        // Read both pipes while waiting, so a chatty child never blocks on a full pipe.
        let ((), (), status) = tokio::join!(
            read_all(stdout_pipe.as_mut(), &mut stdout),
            read_all(stderr_pipe.as_mut(), &mut stderr),
            child.wait()
        );
        status
    })
    .await;

    match waited {
        Ok(Ok(status)) => Ok(Finished {
            status,
            stdout: lossy(&stdout),
            stderr: lossy(&stderr),
        }),
        Ok(Err(source)) => Err(RunError::Wait {
            program: name,
            source,
        }),
        Err(_elapsed) => {
            // SIGKILL to this child's pid via its handle, then reap it.
            let _ = child.start_kill();
            let reaped = tokio::time::timeout(KILL_GRACE, child.wait()).await.is_ok();
            Err(RunError::TimedOut {
                program: name,
                limit,
                stdout: lossy(&stdout),
                reaped,
            })
        }
    }
}

/// Read a pipe to its end into `buf`; whatever arrived stays in `buf` if cancelled.
async fn read_all<R: AsyncRead + Unpin>(pipe: Option<&mut R>, buf: &mut Vec<u8>) {
    if let Some(pipe) = pipe {
        // A read error only truncates what we show; the exit status still decides.
        let _ = pipe.read_to_end(buf).await;
    }
}

fn lossy(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// First non-empty line of `text`, trimmed.
pub(super) fn first_line(text: &str) -> Option<&str> {
    text.lines().map(str::trim).find(|l| !l.is_empty())
}

/// Last non-empty line of `text`, trimmed.
pub(super) fn last_line(text: &str) -> Option<&str> {
    text.lines().map(str::trim).rfind(|l| !l.is_empty())
}

/// The tool items: `qemu` (shown with the VM items) and the workload tools.
pub(super) struct Tools {
    pub qemu: Item,
    pub workloads: Vec<Item>,
}

/// (item, program, Debian package)
const QEMU: (&str, &str, &str) = ("qemu", "qemu-system-x86_64", "qemu-system-x86");
const WORKLOADS: [(&str, &str, &str); 3] = [
    ("stress-ng", "stress-ng", "stress-ng"),
    ("iperf3", "iperf3", "iperf3"),
    ("sockperf", "sockperf", "sockperf"),
];

/// Run every tool's `--version` concurrently.
pub(super) async fn gather() -> Tools {
    let (qemu, workloads) = tokio::join!(
        version_item(QEMU),
        futures::future::join_all(WORKLOADS.into_iter().map(version_item))
    );
    Tools { qemu, workloads }
}

async fn version_item((name, program, package): (&str, &str, &str)) -> Item {
    version_from(
        name,
        program,
        package,
        run(program, &["--version"], VERSION_TIMEOUT).await,
    )
}

/// The item for `program --version`: its first output line, or why there is none.
fn version_from(
    name: &str,
    program: &str,
    package: &str,
    outcome: Result<Finished, RunError>,
) -> Item {
    match outcome {
        Ok(out) if out.status.success() => {
            match first_line(&out.stdout).or_else(|| first_line(&out.stderr)) {
                Some(line) => Item::new(name, Status::Ok, line),
                None => Item::new(
                    name,
                    Status::Warn,
                    format!("`{program} --version` printed nothing"),
                ),
            }
        }
        Ok(out) => Item::new(
            name,
            Status::Failed,
            format!(
                "`{program} --version` {}: {}",
                out.status,
                first_line(&out.stderr).unwrap_or("no output")
            ),
        ),
        Err(RunError::NotFound { .. }) => Item::new(
            name,
            Status::Missing,
            format!("{program} not installed (Debian package {package})"),
        ),
        Err(e) => Item::new(name, Status::Failed, crate::error::one_line(&e)),
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::process::ExitStatusExt as _;

    use super::*;

    fn finished(code: i32, stdout: &str, stderr: &str) -> Finished {
        Finished {
            status: ExitStatus::from_raw(code << 8),
            stdout: stdout.into(),
            stderr: stderr.into(),
        }
    }

    /// `version_from` for a tool whose name, program and package are all `x`.
    fn x_version(outcome: Result<Finished, RunError>) -> (Status, String) {
        let item = version_from("x", "x", "x", outcome);
        (item.status, item.detail)
    }

    #[test]
    fn version_items() {
        let ok = version_from(
            "iperf3",
            "iperf3",
            "iperf3",
            Ok(finished(0, "iperf 3.12 (cJSON 1.7.15)\nLinux vm\n", "")),
        );
        assert_eq!(
            (ok.status, ok.detail.as_str()),
            (Status::Ok, "iperf 3.12 (cJSON 1.7.15)")
        );

        assert_eq!(
            x_version(Ok(finished(0, "", "\n x 1.0\n"))),
            (Status::Ok, "x 1.0".to_owned())
        );

        let missing = version_from(
            "qemu",
            "qemu-system-x86_64",
            "qemu-system-x86",
            Err(RunError::NotFound {
                program: "qemu-system-x86_64".into(),
            }),
        );
        assert_eq!(missing.status, Status::Missing);
        assert_eq!(
            missing.detail,
            "qemu-system-x86_64 not installed (Debian package qemu-system-x86)"
        );

        assert_eq!(
            x_version(Ok(finished(2, "", "bad flag\n"))),
            (
                Status::Failed,
                "`x --version` exit status: 2: bad flag".to_owned()
            )
        );

        let hung = RunError::TimedOut {
            program: "x".into(),
            limit: Duration::from_secs(5),
            stdout: String::new(),
            reaped: true,
        };
        assert_eq!(
            x_version(Err(hung)),
            (Status::Failed, "x did not exit within 5 s".to_owned())
        );
    }

    #[test]
    fn lines() {
        assert_eq!(first_line("\n  a \nb\n"), Some("a"));
        assert_eq!(last_line("a\nb\n\n"), Some("b"));
        assert_eq!(last_line(""), None);
    }

    #[tokio::test]
    async fn runner_reports_missing_and_timeout() {
        let missing = run(
            "/nonexistent/netbench-doctor-test",
            &[],
            Duration::from_secs(1),
        )
        .await;
        assert!(
            matches!(missing, Err(RunError::NotFound { .. })),
            "{missing:?}"
        );

        let out = run("/bin/echo", &["hello"], Duration::from_secs(5))
            .await
            .unwrap();
        assert!(out.status.success());
        assert_eq!(out.stdout, "hello\n");

        let started = std::time::Instant::now();
        let hung = run(
            "/bin/sh",
            &["-c", "echo started; exec sleep 30"],
            Duration::from_millis(500),
        )
        .await;
        assert!(started.elapsed() < Duration::from_secs(5));
        match hung {
            Err(RunError::TimedOut { stdout, reaped, .. }) => {
                assert_eq!(stdout, "started\n");
                assert!(reaped);
            }
            other => panic!("expected a timeout, got {other:?}"),
        }
    }
}
