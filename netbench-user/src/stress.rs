//! CPU stress (stress-ng) around a measurement, started and stopped by netbench.
//!
//! stress-ng runs in a process group of its own, so stopping it (SIGTERM to that group,
//! by the pid netbench got at spawn) also stops its workers; `--timeout` bounds it even
//! if netbench dies.
use clap::ValueEnum;
use serde::{Deserialize, Serialize};
use std::{process::Stdio, time::Duration};
use strum::IntoStaticStr;

use nix::{
    sys::signal::{Signal, killpg},
    unistd::Pid,
};
use tokio::process::{Child, Command};

/// CPU stress during a measurement (lab) or on the server container (run).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[derive(Serialize, Deserialize, ValueEnum, IntoStaticStr)]
#[serde(rename_all = "lowercase")]
#[strum(serialize_all = "lowercase")]
pub enum Stress {
    #[default]
    None,
    Cpu,
}

impl Stress {
    #[must_use]
    pub fn name(self) -> &'static str {
        self.into()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StressError {
    #[error("starting stress-ng (install it with `cargo xtask setup`)")]
    Spawn(#[source] std::io::Error),
    #[error("stress-ng exited at once ({0}): is the option valid here?")]
    Exited(std::process::ExitStatus),
}

/// A running stress-ng; stopped on drop too.
pub struct CpuStress {
    child: Child,
    pgid: Option<i32>,
    _listed: crate::ledger::ProcessGuard,
}

impl CpuStress {
    /// Keep `workers` CPUs busy (0 = all) for at most `max`.
    ///
    /// # Errors
    /// When stress-ng cannot start or exits at once.
    pub async fn start(workers: u32, max: Duration) -> Result<Self, StressError> {
        let mut child = Command::new("stress-ng")
            .args(["--cpu", &workers.to_string(), "--timeout"])
            .arg(format!("{}s", max.as_secs().max(1)))
            .arg("--quiet")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .kill_on_drop(true)
            .spawn()
            .map_err(StressError::Spawn)?;
        let pgid = child.id().and_then(|p| i32::try_from(p).ok());
        let listed = crate::ledger::ProcessGuard::new(child.id(), "stress-ng", true);
        // Give it a moment to fork its workers; an immediate exit is an error.
        tokio::time::sleep(Duration::from_millis(300)).await;
        if let Ok(Some(status)) = child.try_wait() {
            return Err(StressError::Exited(status));
        }
        Ok(Self {
            child,
            pgid,
            _listed: listed,
        })
    }

    /// Stop stress-ng and its workers, and reap it.
    pub async fn stop(mut self) {
        self.signal_group();
        if tokio::time::timeout(Duration::from_secs(5), self.child.wait())
            .await
            .is_err()
        {
            let _ = self.child.start_kill();
            let _ = self.child.wait().await;
        }
        self.pgid = None;
    }

    fn signal_group(&self) {
        if let Some(pgid) = self.pgid {
            let _ = killpg(Pid::from_raw(pgid), Signal::SIGTERM);
        }
    }
}

impl Drop for CpuStress {
    fn drop(&mut self) {
        self.signal_group();
    }
}
