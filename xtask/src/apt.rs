//! Debian packages for `cargo xtask setup`: installed in one apt run, never at the cost
//! of a package the user has (apt's plan is simulated and refused when it would remove
//! or downgrade anything).
use std::{path::Path, process::Stdio};

use anyhow::{Context as _, Result, bail};

use crate::cmd::{self, command};

pub fn dpkg_installed(package: &str) -> bool {
    cmd::stdout_of(command("dpkg-query").args(["-W", "-f=${Status}", package]))
        .is_some_and(|status| status.trim() == "install ok installed")
}

/// Installs `packages` in one apt run, never at the cost of a package the user has:
/// apt's plan is simulated first and refused when it would remove or downgrade anything
/// (then the user gets the command to decide themselves), and the real run carries
/// `--no-remove` as a second guard.
pub fn install(packages: &[&str]) -> Result<()> {
    let mut update = command("apt-get");
    update.arg("update");
    let mut install = command("apt-get");
    install
        .env("DEBIAN_FRONTEND", "noninteractive")
        .args(["install", "-y", "--no-install-recommends", "--no-remove"])
        .args(packages);

    let debian = Path::new("/etc/debian_version").exists();
    if !debian || !cmd::is_root() {
        println!("  missing packages; install them as root with:");
        println!("    {}", cmd::display(&update));
        println!("    {}", cmd::display(&install));
        if debian {
            bail!("missing, and installing needs root");
        }
        bail!("missing, and this is not Debian/Ubuntu: install the equivalent package");
    }
    cmd::run(update.stdin(Stdio::null())).context("apt-get update")?;
    refuse_harm(packages)?;
    cmd::run(install.stdin(Stdio::null())).context("apt-get install")
}

/// Fails, naming what would be removed or downgraded and which of `packages` conflicts,
/// when apt's plan for installing `packages` touches a package the user has; prints the
/// command with which the user can look at apt's plan and decide.
fn refuse_harm(packages: &[&str]) -> Result<()> {
    let harm = apt_harm(packages)?;
    if !harm.is_empty() {
        // Which of ours conflicts: each one's plan alone (simulating is read-only).
        let mut culprits = Vec::new();
        for package in packages {
            if !apt_harm(&[package])?.is_empty() {
                culprits.push(*package);
            }
        }
        let conflicting = if culprits.is_empty() {
            format!("{} together", packages.join(", "))
        } else {
            culprits.join(", ")
        };
        let mut manual = command("apt-get");
        manual
            .args(["install", "--no-install-recommends"])
            .args(packages);
        println!("  nothing was installed; to decide yourself, run (apt shows its plan and asks):");
        println!("    {}", cmd::display(&manual));
        bail!(
            "not installed: apt-get would {} to install {conflicting}",
            harm.describe()
        );
    }
    Ok(())
}

/// One line of `apt-get install -s`: what apt would do to one package.
#[derive(Debug, PartialEq, Eq)]
enum AptAction {
    /// `Inst pkg [old] (new archive [arch])`: `old` is the installed version it replaces.
    Install {
        package: String,
        old: Option<String>,
        new: String,
    },
    /// `Remv pkg [version]` (or `Purg`).
    Remove {
        package: String,
        version: Option<String>,
    },
}

/// The `Inst`, `Remv` and `Purg` lines of `apt-get install -s` output (`Conf` and the
/// human-readable lines say nothing more).
fn parse_apt_simulation(output: &str) -> Vec<AptAction> {
    let bracketed = |word: Option<&str>| {
        word.and_then(|w| w.strip_prefix('['))
            .and_then(|w| w.strip_suffix(']'))
            .map(str::to_owned)
    };
    output
        .lines()
        .filter_map(|line| {
            let mut words = line.split_whitespace();
            let verb = words.next()?;
            let package = words.next()?.to_owned();
            let rest: Vec<&str> = words.collect();
            match verb {
                "Inst" => {
                    let old = bracketed(rest.first().copied());
                    let new = rest
                        .iter()
                        .find_map(|w| w.strip_prefix('('))?
                        .trim_end_matches(')')
                        .to_owned();
                    Some(AptAction::Install { package, old, new })
                }
                "Remv" | "Purg" => Some(AptAction::Remove {
                    package,
                    version: bracketed(rest.first().copied()),
                }),
                _ => None,
            }
        })
        .collect()
}

/// What an apt plan would do to packages already installed.
#[derive(Debug, Default, PartialEq, Eq)]
struct AptHarm {
    /// `pkg version`.
    removed: Vec<String>,
    /// `pkg old -> new`.
    downgraded: Vec<String>,
}

impl AptHarm {
    /// Removals and downgrades in `actions`; `older(a, b)` says whether version a < b.
    fn of(actions: &[AptAction], older: impl Fn(&str, &str) -> Result<bool>) -> Result<Self> {
        let mut harm = Self::default();
        for action in actions {
            match action {
                AptAction::Remove { package, version } => harm.removed.push(match version {
                    Some(v) => format!("{package} {v}"),
                    None => package.clone(),
                }),
                AptAction::Install {
                    package,
                    old: Some(old),
                    new,
                } if older(new, old)? => harm.downgraded.push(format!("{package} {old} -> {new}")),
                AptAction::Install { .. } => {}
            }
        }
        Ok(harm)
    }

    fn is_empty(&self) -> bool {
        self.removed.is_empty() && self.downgraded.is_empty()
    }

    /// `remove a 1.0, b 2.0 and downgrade c 2 -> 1`.
    fn describe(&self) -> String {
        let mut parts = Vec::new();
        if !self.removed.is_empty() {
            parts.push(format!("remove {}", self.removed.join(", ")));
        }
        if !self.downgraded.is_empty() {
            parts.push(format!("downgrade {}", self.downgraded.join(", ")));
        }
        parts.join(" and ")
    }
}

/// What installing `packages` would remove or downgrade, from apt's own simulation.
fn apt_harm(packages: &[&str]) -> Result<AptHarm> {
    let mut simulate = command("apt-get");
    simulate
        .env("LC_ALL", "C")
        .args(["install", "-s", "--no-install-recommends"])
        .args(packages)
        .stdin(Stdio::null());
    let line = cmd::display(&simulate);
    let out = simulate
        .output()
        .with_context(|| format!("cannot start `{line}`"))?;
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        let why = stderr.lines().rfind(|l| !l.trim().is_empty()).unwrap_or("");
        bail!("`{line}` failed ({}): {why}", out.status);
    }
    let actions = parse_apt_simulation(&String::from_utf8_lossy(&out.stdout));
    AptHarm::of(&actions, dpkg_version_older)
}

/// `dpkg --compare-versions a lt b`: exit 0 is true, 1 false, anything else an error.
fn dpkg_version_older(a: &str, b: &str) -> Result<bool> {
    let mut compare = command("dpkg");
    compare.args(["--compare-versions", a, "lt", b]);
    let status = compare
        .stdin(Stdio::null())
        .status()
        .with_context(|| format!("cannot start `{}`", cmd::display(&compare)))?;
    match status.code() {
        Some(0) => Ok(true),
        Some(1) => Ok(false),
        _ => bail!("`{}` failed ({status})", cmd::display(&compare)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const APT_SIMULATION: &str = "\
NOTE: This is only a simulation!
      apt-get needs root privileges for real execution.
      Keep also in mind that locking is deactivated,
      so don't depend on the relevance to the real current situation!
Reading package lists...
Building dependency tree...
Reading state information...
The following packages will be REMOVED:
  busybox-static
The following NEW packages will be installed:
  busybox qemu-utils
The following packages will be upgraded:
  base-files
The following packages will be DOWNGRADED:
  bpftool
1 upgraded, 2 newly installed, 1 downgraded, 1 to remove and 137 not upgraded.
Inst qemu-utils (1:7.2+dfsg-7+deb12u18+b3 Debian:12.15/oldstable [amd64])
Remv busybox-static [1:1.35.0-4+deb12u1+b1]
Inst busybox (1:1.35.0-4+deb12u1+b1 Debian:12.15/oldstable [amd64])
Inst base-files [12.4+deb12u11] (12.4+deb12u15 Debian:12.15/oldstable [amd64])
Inst bpftool [7.1.0+6.1.192-3] (7.1.0+6.1.176-1 Debian:12.15/oldstable [amd64])
Conf qemu-utils (1:7.2+dfsg-7+deb12u18+b3 Debian:12.15/oldstable [amd64])
Conf busybox (1:1.35.0-4+deb12u1+b1 Debian:12.15/oldstable [amd64])
Conf base-files (12.4+deb12u15 Debian:12.15/oldstable [amd64])
Conf bpftool (7.1.0+6.1.176-1 Debian:12.15/oldstable [amd64])
";

    #[test]
    fn apt_simulation_lines_are_parsed() {
        let install = |package: &str, old: Option<&str>, new: &str| AptAction::Install {
            package: package.into(),
            old: old.map(Into::into),
            new: new.into(),
        };
        assert_eq!(
            parse_apt_simulation(APT_SIMULATION),
            [
                install("qemu-utils", None, "1:7.2+dfsg-7+deb12u18+b3"),
                AptAction::Remove {
                    package: "busybox-static".into(),
                    version: Some("1:1.35.0-4+deb12u1+b1".into()),
                },
                install("busybox", None, "1:1.35.0-4+deb12u1+b1"),
                install("base-files", Some("12.4+deb12u11"), "12.4+deb12u15"),
                install("bpftool", Some("7.1.0+6.1.192-3"), "7.1.0+6.1.176-1"),
            ]
        );
    }

    #[test]
    fn removals_and_downgrades_are_harm_upgrades_are_not() {
        // The two versions compared here, as `dpkg --compare-versions` orders them.
        let older = |a: &str, b: &str| -> Result<bool> {
            Ok(match (a, b) {
                ("12.4+deb12u15", "12.4+deb12u11") => false,
                ("7.1.0+6.1.176-1", "7.1.0+6.1.192-3") => true,
                _ => bail!("unexpected comparison {a} < {b}"),
            })
        };
        let harm = AptHarm::of(&parse_apt_simulation(APT_SIMULATION), older).unwrap();
        assert_eq!(
            harm,
            AptHarm {
                removed: vec!["busybox-static 1:1.35.0-4+deb12u1+b1".into()],
                downgraded: vec!["bpftool 7.1.0+6.1.192-3 -> 7.1.0+6.1.176-1".into()],
            }
        );
        assert_eq!(
            harm.describe(),
            "remove busybox-static 1:1.35.0-4+deb12u1+b1 and downgrade bpftool \
             7.1.0+6.1.192-3 -> 7.1.0+6.1.176-1"
        );
        // Only new packages: nothing to refuse.
        let fresh = "Inst qemu-utils (1:7.2+dfsg-7+deb12u18+b3 Debian:12.15/oldstable [amd64])\n\
                     Conf qemu-utils (1:7.2+dfsg-7+deb12u18+b3 Debian:12.15/oldstable [amd64])\n";
        assert!(
            AptHarm::of(&parse_apt_simulation(fresh), older)
                .unwrap()
                .is_empty()
        );
    }
}
