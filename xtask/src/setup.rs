//! `cargo xtask setup`: install what is missing, idempotently. One line per item:
//! `present`, what was done (`installed`, `mounted`, `started (pid N)`), or `failed: why`.

use std::{
    fmt, fs,
    fs::OpenOptions,
    path::Path,
    process::Stdio,
    thread,
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result, bail};

use crate::{
    apt,
    cmd::{self, EBPF_TOOLCHAIN, HOST_TOOLCHAIN, HOST_TRIPLE, command},
};

const BPF_LINKER_VERSION: &str = "0.10.3";

/// Debian packages, and what netbench or its tests use them for.
const DEBIAN_PACKAGES: &[(&str, &str)] = &[
    ("docker.io", "container engine (runC scenarios, e2e tests)"),
    ("iproute2", "ip/tc for inspecting and debugging topologies"),
    ("qemu-system-x86", "the VM of the Kata-shaped datapath"),
    ("busybox-static", "the guest's userland"),
    ("stress-ng", "CPU stress scenarios"),
    ("iperf3", "bandwidth reference"),
    ("sockperf", "latency reference"),
    ("bpftool", "inspecting loaded programs and maps"),
    ("file", "checking that binaries are static"),
];

const TRACEFS: &str = "/sys/kernel/tracing";
const BPFFS: &str = "/sys/fs/bpf";

/// The socket the `docker` CLI, the tests and netbench talk to.
const DOCKER_HOST: &str = "unix:///var/run/docker.sock";
const DOCKERD_PIDFILE: &str = "/var/run/docker.pid";
const DOCKERD_LOG: &str = "/var/log/netbench-dockerd.log";
const DOCKERD_WAIT: Duration = Duration::from_mins(1);

/// Everything: toolchains, Debian packages, kernel filesystems, a running dockerd.
pub fn all() -> Result<()> {
    let mut list = Checklist::new("setup");
    toolchain_items(&mut list);
    lint_item(&mut list);
    debian_packages(&mut list);
    list.item(&format!("tracefs at {TRACEFS}"), tracefs);
    list.item(&format!("bpffs at {BPFFS}"), bpffs);
    list.item("dockerd", dockerd);
    list.finish()
}

/// What building needs: the eBPF nightly with rust-src, and bpf-linker.
pub fn toolchains() -> Result<()> {
    let mut list = Checklist::new("setup (toolchains)");
    toolchain_items(&mut list);
    list.finish()
}

/// What `test --unit-only` needs: the toolchains plus rustfmt and clippy; nothing root-only.
pub fn toolchains_and_lint() -> Result<()> {
    let mut list = Checklist::new("setup (toolchains, lint)");
    toolchain_items(&mut list);
    lint_item(&mut list);
    list.finish()
}

fn toolchain_items(list: &mut Checklist) {
    list.item(&format!("{EBPF_TOOLCHAIN} + rust-src"), || {
        rust_toolchain(EBPF_TOOLCHAIN, &["rust-src"])
    });
    list.item(&format!("bpf-linker {BPF_LINKER_VERSION}"), bpf_linker);
}

fn lint_item(list: &mut Checklist) {
    list.item(&format!("{HOST_TOOLCHAIN} + rustfmt, clippy"), || {
        rust_toolchain(HOST_TOOLCHAIN, &["rustfmt", "clippy"])
    });
}

/// How one item went.
enum Outcome {
    Present,
    /// What was done: `installed`, `mounted`, `started (pid N)`.
    Done(String),
    Failed(String),
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Present => f.write_str("present"),
            Self::Done(what) => f.write_str(what),
            Self::Failed(why) => write!(f, "failed: {why}"),
        }
    }
}

/// Prints one line per item and remembers the failures, so every item is tried and
/// reported before setup fails.
struct Checklist {
    failed: Vec<String>,
}

impl Checklist {
    fn new(title: &str) -> Self {
        println!("{title}");
        Self { failed: Vec::new() }
    }

    fn item(&mut self, label: &str, check: impl FnOnce() -> Result<Outcome>) {
        let outcome = check().unwrap_or_else(|e| Outcome::Failed(format!("{e:#}")));
        self.line(label, &outcome);
    }

    fn line(&mut self, label: &str, outcome: &Outcome) {
        println!("  {label} ... {outcome}");
        if matches!(outcome, Outcome::Failed(_)) {
            self.failed.push(label.to_owned());
        }
    }

    fn finish(self) -> Result<()> {
        if self.failed.is_empty() {
            Ok(())
        } else {
            bail!("setup failed for: {}", self.failed.join(", "))
        }
    }
}

/// A rustup toolchain with `components`. `RUSTUP_AUTO_INSTALL=0` on these machines, so
/// nothing is installed unless asked for here.
fn rust_toolchain(toolchain: &str, components: &[&str]) -> Result<Outcome> {
    let toolchains = cmd::stdout_of(command("rustup").args(["toolchain", "list"]))
        .context("`rustup toolchain list` failed: is rustup installed?")?;
    let full_name = format!("{toolchain}-{HOST_TRIPLE}");
    let installed = toolchains
        .lines()
        .filter_map(|line| line.split_whitespace().next())
        .any(|name| name == toolchain || name == full_name);
    if !installed {
        let mut install = command("rustup");
        install.args(["toolchain", "install", toolchain, "--profile", "minimal"]);
        for component in components {
            install.args(["--component", component]);
        }
        cmd::run(&mut install)?;
        return Ok(Outcome::Done("installed".into()));
    }

    let have = cmd::stdout_of(command("rustup").args([
        "component",
        "list",
        "--toolchain",
        toolchain,
        "--installed",
    ]))
    .with_context(|| format!("`rustup component list --toolchain {toolchain}` failed"))?;
    // Installed components are listed as `rust-src` or `clippy-x86_64-unknown-linux-gnu`.
    let missing: Vec<&str> = components
        .iter()
        .copied()
        .filter(|c| {
            let with_triple = format!("{c}-{HOST_TRIPLE}");
            !have.lines().any(|l| l == *c || l == with_triple)
        })
        .collect();
    if missing.is_empty() {
        return Ok(Outcome::Present);
    }
    cmd::run(
        command("rustup")
            .args(["component", "add", "--toolchain", toolchain])
            .args(&missing),
    )?;
    Ok(Outcome::Done(format!("installed {}", missing.join(", "))))
}

fn bpf_linker() -> Result<Outcome> {
    let before = bpf_linker_version();
    if before.as_deref().is_some_and(is_wanted_bpf_linker) {
        return Ok(Outcome::Present);
    }
    cmd::run(&mut cmd::cargo([
        "install",
        &format!("bpf-linker@{BPF_LINKER_VERSION}"),
        "--locked",
    ]))?;
    match bpf_linker_version() {
        Some(v) if is_wanted_bpf_linker(&v) => Ok(Outcome::Done(match before {
            Some(old) => format!("installed (replaced {})", old.trim()),
            None => "installed".into(),
        })),
        Some(v) => bail!("installed, but the bpf-linker on PATH says `{}`", v.trim()),
        None => {
            bail!("installed, but `bpf-linker --version` does not run: is ~/.cargo/bin on PATH?")
        }
    }
}

fn bpf_linker_version() -> Option<String> {
    cmd::stdout_of(command("bpf-linker").arg("--version"))
}

fn is_wanted_bpf_linker(version_output: &str) -> bool {
    version_output
        .split_whitespace()
        .any(|word| word == BPF_LINKER_VERSION)
}

/// Checks every package; installs the missing ones with one apt run when we are root on
/// Debian, otherwise prints the exact commands.
fn debian_packages(list: &mut Checklist) {
    let missing: Vec<&str> = DEBIAN_PACKAGES
        .iter()
        .map(|(name, _)| *name)
        .filter(|name| !apt::dpkg_installed(name))
        .collect();
    let install_result = if missing.is_empty() {
        Ok(())
    } else {
        apt::install(&missing)
    };
    for (name, _) in DEBIAN_PACKAGES {
        let outcome = if !missing.contains(name) {
            Outcome::Present
        } else if apt::dpkg_installed(name) {
            Outcome::Done("installed".into())
        } else {
            match &install_result {
                Err(e) => Outcome::Failed(format!("{e:#}")),
                Ok(()) => {
                    Outcome::Failed("apt-get install succeeded but dpkg does not list it".into())
                }
            }
        };
        list.line(name, &outcome);
    }
}

fn tracefs() -> Result<Outcome> {
    if Path::new(TRACEFS).join("events").exists() {
        return Ok(Outcome::Present);
    }
    mount("tracefs", "nodev", TRACEFS)
}

fn bpffs() -> Result<Outcome> {
    let mounts = fs::read_to_string("/proc/mounts").context("reading /proc/mounts")?;
    let mounted = mounts.lines().any(|line| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        fields.get(1) == Some(&BPFFS) && fields.get(2) == Some(&"bpf")
    });
    if mounted {
        return Ok(Outcome::Present);
    }
    mount("bpf", "bpf", BPFFS)
}

fn mount(fstype: &str, source: &str, target: &str) -> Result<Outcome> {
    if !cmd::is_root() {
        bail!("not mounted; as root run: mount -t {fstype} {source} {target}");
    }
    cmd::run(command("mount").args(["-t", fstype, source, target]))?;
    Ok(Outcome::Done("mounted".into()))
}

fn docker_answers() -> bool {
    cmd::stdout_of(command("docker").args([
        "-H",
        DOCKER_HOST,
        "version",
        "--format",
        "{{.Server.Version}}",
    ]))
    .is_some_and(|version| !version.trim().is_empty())
}

/// Nothing starts dockerd on these machines (platform.md): start it detached, in its own
/// session, so it outlives xtask and a Ctrl-C in this terminal does not reach it.
fn dockerd() -> Result<Outcome> {
    if docker_answers() {
        return Ok(Outcome::Present);
    }
    if !cmd::is_root() {
        bail!("not running, and starting dockerd needs root");
    }
    // A dockerd that is still starting holds the pid file: wait for it, never start a second.
    if let Some(pid) = starting_dockerd() {
        println!("    dockerd (pid {pid}) is starting; waiting for it to answer");
        wait_for_docker(|| Ok(()))?;
        return Ok(Outcome::Done(format!(
            "was starting, now answers (pid {pid})"
        )));
    }
    let dockerd = cmd::which("dockerd").context("dockerd not found (is docker.io installed?)")?;
    let log = OpenOptions::new()
        .create(true)
        .append(true)
        .open(DOCKERD_LOG)
        .with_context(|| format!("opening {DOCKERD_LOG}"))?;
    let mut start = command("setsid");
    start
        .arg(&dockerd)
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log);
    println!("    $ {} >>{DOCKERD_LOG} 2>&1 &", cmd::display(&start));
    // setsid execs dockerd in place (we are not a group leader), so this is dockerd's pid.
    let mut child = start.spawn().context("starting dockerd")?;
    let pid = child.id();
    wait_for_docker(|| match child.try_wait()? {
        Some(status) => bail!("dockerd exited ({status}); see {DOCKERD_LOG}"),
        None => Ok(()),
    })
    .with_context(|| format!("dockerd pid {pid}"))?;
    Ok(Outcome::Done(format!("started (pid {pid})")))
}

/// Polls the daemon until it answers; `still_alive` fails early when it has died.
fn wait_for_docker(mut still_alive: impl FnMut() -> Result<()>) -> Result<()> {
    let deadline = Instant::now() + DOCKERD_WAIT;
    while Instant::now() < deadline {
        if docker_answers() {
            return Ok(());
        }
        still_alive()?;
        thread::sleep(Duration::from_millis(500));
    }
    bail!(
        "no answer on {DOCKER_HOST} within {} s; see {DOCKERD_LOG}",
        DOCKERD_WAIT.as_secs()
    )
}

/// The pid in dockerd's pid file, when that process exists and is a dockerd.
fn starting_dockerd() -> Option<u32> {
    let pid: u32 = fs::read_to_string(DOCKERD_PIDFILE)
        .ok()?
        .trim()
        .parse()
        .ok()?;
    let comm = fs::read_to_string(format!("/proc/{pid}/comm")).ok()?;
    (comm.trim() == "dockerd").then_some(pid)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bpf_linker_version_matches_whole_words_only() {
        assert!(is_wanted_bpf_linker("bpf-linker 0.10.3\n"));
        assert!(!is_wanted_bpf_linker("bpf-linker 0.10.30\n"));
        assert!(!is_wanted_bpf_linker("bpf-linker 0.9.15\n"));
    }

    /// `apt-get install -s --no-install-recommends` on Debian 12, four simulations
    /// captured read-only on a test machine and joined into one output: a new package
    /// (qemu-utils), a conflict that removes an installed one (busybox replaces
    /// busybox-static), an upgrade (base-files) and a downgrade asked for by version
    /// (bpftool=7.1.0+6.1.176-1). The action lines are verbatim.
    #[test]
    fn package_names_are_unique() {
        let mut names: Vec<_> = DEBIAN_PACKAGES.iter().map(|(n, _)| n).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), DEBIAN_PACKAGES.len());
    }
}
