//! Wall time of the default experiment: the netbench command line `cargo xtask run`
//! runs by default (xtask passes it in), timed from spawn to exit, without set-up or
//! build.
use std::{ffi::OsString, process::Stdio, time::Duration, time::Instant};

use serde::Serialize;

use super::progress;

/// Longest the default experiment may take before it is stopped.
const LIMIT: Duration = Duration::from_mins(30);

#[derive(Clone, Debug, Default, Serialize)]
pub struct WallTime {
    /// netbench's arguments.
    pub command: Vec<String>,
    pub seconds: Option<f64>,
    pub exit_code: Option<i32>,
    /// Why it was not measured.
    pub skipped: Option<String>,
    pub error: Option<String>,
    /// The last lines it printed.
    pub output_tail: Vec<String>,
}

pub async fn measure(args: &[OsString]) -> WallTime {
    let command: Vec<String> = args
        .iter()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    if args.is_empty() {
        return WallTime {
            skipped: Some("no default command given (cargo xtask bench passes it)".into()),
            ..WallTime::default()
        };
    }
    progress(&format!(
        "wall time of the default experiment: netbench {}",
        command.join(" ")
    ));
    let mut wall = WallTime {
        command,
        ..WallTime::default()
    };
    let exe = match std::env::current_exe() {
        Ok(e) => e,
        Err(e) => {
            wall.error = Some(format!("finding netbench's own binary: {e}"));
            return wall;
        }
    };
    let mut cmd = tokio::process::Command::new(exe);
    cmd.args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let start = Instant::now();
    let child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => {
            wall.error = Some(format!("starting it: {e}"));
            return wall;
        }
    };
    match tokio::time::timeout(LIMIT, child.wait_with_output()).await {
        Err(_) => wall.error = Some(format!("did not finish within {LIMIT:?} (stopped)")),
        Ok(Err(e)) => wall.error = Some(format!("waiting for it: {e}")),
        Ok(Ok(out)) => {
            wall.seconds = Some(start.elapsed().as_secs_f64());
            wall.exit_code = out.status.code();
            let text = String::from_utf8_lossy(&out.stdout).into_owned()
                + &String::from_utf8_lossy(&out.stderr);
            wall.output_tail = tail(&text, 6);
            if !out.status.success() {
                wall.error = Some(format!("exited with {}", out.status));
            }
        }
    }
    wall
}

/// The last `n` non-empty lines of `text`.
fn tail(text: &str, n: usize) -> Vec<String> {
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    lines[lines.len().saturating_sub(n)..]
        .iter()
        .map(|l| (*l).to_owned())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tail_keeps_last_nonempty_lines() {
        assert_eq!(tail("a\n\nb\nc\n\n", 2), ["b", "c"]);
        assert_eq!(tail("a", 5), ["a"]);
        assert!(tail("", 3).is_empty());
    }
}
