//! `cargo xtask build`: the `netbench` binary (its build.rs builds and embeds the eBPF
//! object with aya-build) and the static `netbench-agent` that runs inside containers
//! and guests.

use std::{env, path::PathBuf};

use anyhow::{Context as _, Result, ensure};

use crate::{
    cmd::{self, HOST_TRIPLE},
    elf,
};

/// Cargo profile. `run` uses release; `test` and a plain `build` use debug.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Profile {
    Debug,
    Release,
}

impl Profile {
    /// The profile's directory under the target directory.
    pub fn dir(self) -> &'static str {
        match self {
            Self::Debug => "debug",
            Self::Release => "release",
        }
    }

    fn cargo_args(self) -> &'static [&'static str] {
        match self {
            Self::Debug => &[],
            Self::Release => &["--release"],
        }
    }
}

/// Where the two binaries of a profile are.
#[derive(Debug)]
pub struct Binaries {
    pub netbench: PathBuf,
    pub agent: PathBuf,
}

/// The paths `build` produces for `profile` (whether or not they are built yet).
pub fn binaries(profile: Profile) -> Binaries {
    let target = target_dir();
    Binaries {
        netbench: target.join(profile.dir()).join("netbench"),
        // Built with an explicit --target, so it lives under the triple's directory.
        agent: target
            .join(HOST_TRIPLE)
            .join(profile.dir())
            .join("netbench-agent"),
    }
}

/// Builds both binaries (the toolchains must already be set up) and checks that the
/// agent is static.
pub fn build(profile: Profile) -> Result<Binaries> {
    cmd::run(cmd::cargo(["build", "-p", "netbench-user"]).args(profile.cargo_args()))?;
    // crt-static only with an explicit --target: then build scripts and proc-macros are
    // built for the host without it, and only the agent is static.
    cmd::run(
        cmd::cargo(["build", "-p", "netbench-agent", "--target", HOST_TRIPLE])
            .args(profile.cargo_args())
            .env_remove("CARGO_ENCODED_RUSTFLAGS")
            .env("RUSTFLAGS", "-C target-feature=+crt-static"),
    )?;

    let bins = binaries(profile);
    ensure!(
        bins.netbench.is_file(),
        "cargo built netbench-user but {} is not there",
        bins.netbench.display()
    );
    ensure!(
        elf::is_static(&bins.agent).context("checking the agent is static")?,
        "{} is dynamically linked (it has a PT_INTERP header): it cannot run in a \
         `scratch` image or the guest",
        bins.agent.display()
    );
    println!("  netbench:       {}", bins.netbench.display());
    println!("  netbench-agent: {} (static)", bins.agent.display());
    Ok(bins)
}

/// `CARGO_TARGET_DIR` (or `CARGO_BUILD_TARGET_DIR`) if set, else `<workspace>/target`.
/// A relative one is relative to the workspace root, where every cargo child runs.
fn target_dir() -> PathBuf {
    let root = cmd::workspace_root();
    env::var_os("CARGO_TARGET_DIR")
        .or_else(|| env::var_os("CARGO_BUILD_TARGET_DIR"))
        .map_or_else(|| root.join("target"), |dir| root.join(dir))
}
