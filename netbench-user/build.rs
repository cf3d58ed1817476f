//! Builds the eBPF object with the pinned nightly (platform.md) and leaves it in `OUT_DIR`,
//! where `trace::EBPF_OBJECT` embeds it.
use anyhow::Context as _;
use aya_build::{Package, Toolchain};

/// The nightly whose LLVM matches bpf-linker 0.10.3 (see platform.md). xtask installs it.
const EBPF_TOOLCHAIN: &str = "nightly-2026-05-20";

fn main() -> anyhow::Result<()> {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../netbench-ebpf");
    aya_build::build_ebpf(
        [Package {
            name: "netbench-ebpf",
            root_dir: root,
            ..Default::default()
        }],
        Toolchain::Custom(EBPF_TOOLCHAIN),
    )
    .context("building the eBPF programs (run `cargo xtask setup` for the toolchain)")
}
