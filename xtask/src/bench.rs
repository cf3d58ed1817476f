//! `cargo xtask bench [--short] [--out FILE]`: set up, build release, then run
//! `netbench bench` as root. It prints the figures and writes them as JSON; the full
//! run also times the default experiment (the command line `cargo xtask run` uses,
//! without its set-up and build).

use std::{
    ffi::OsString,
    path::{Path, PathBuf},
};

use anyhow::{Result, bail};

use crate::{
    build::{self, Binaries, Profile},
    cmd::{self, workspace_root},
    setup,
};

#[derive(Clone, Debug)]
pub struct Options {
    /// Small counts, correctness checks only.
    pub short: bool,
    /// The JSON file; default `results/bench-<UTC time>.json`.
    pub out: Option<PathBuf>,
}

pub fn bench(options: Options) -> Result<()> {
    setup::all()?;
    if !cmd::is_root() {
        let euid = cmd::euid().map_or_else(|| "unknown".into(), |id| id.to_string());
        bail!(
            "the benchmark needs root (eBPF, network namespaces), running as euid {euid}: run \
             it as root"
        );
    }
    println!("build (release)");
    let bins = build::build(Profile::Release)?;
    let stamp = netbench_common::stamp::utc_timestamp();
    let results = workspace_root().join("results");
    let out = options
        .out
        .unwrap_or_else(|| results.join(format!("bench-{stamp}.json")));
    // The default experiment writes its own results next to the figures.
    let default_cmd = if options.short {
        Vec::new()
    } else {
        crate::default_run_args(results.join(format!("bench-{stamp}-default-run")))
    };
    run(&bins, options.short, &out, &default_cmd)
}

/// `netbench bench [--short] --out OUT [-- DEFAULT_CMD]` with the given binaries (as
/// root; `cargo xtask test` runs the short mode with its debug build).
pub fn run(bins: &Binaries, short: bool, out: &Path, default_cmd: &[OsString]) -> Result<()> {
    let mut netbench = cmd::command(&bins.netbench);
    netbench
        .arg("bench")
        .arg("--out")
        .arg(out)
        .env("NETBENCH_AGENT", &bins.agent)
        .current_dir(workspace_root());
    if short {
        netbench.arg("--short");
    }
    if !default_cmd.is_empty() {
        netbench.arg("--").args(default_cmd);
    }
    cmd::run(&mut netbench)
}
