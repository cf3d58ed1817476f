//! A real KVM probe: a tiny real-mode guest must halt, then run a busy loop at
//! hardware speed and halt again.
//!
//! `/dev/kvm` existing proves little. On some hosts every ioctl succeeds and a
//! one-instruction guest even halts, but guest code runs thousands of times slower
//! than under hardware virtualization (these development machines: 1.2-1.5 us per
//! two-instruction loop iteration), so a real guest never boots. The loop (about one
//! cycle per iteration, tens of milliseconds, under hardware virtualization) tells the
//! two apart. The probe runs in a child process
//! (`netbench doctor --kvm-probe-child`, see [`child_main`]) that the parent kills,
//! by its own handle, when `KVM_RUN` does not return in time.
use std::{path::Path, time::Duration};

use super::{
    Item, Status,
    tools::{self, RunError},
};

/// How long the whole probe may take (well under a second when KVM works).
const PROBE_TIMEOUT: Duration = Duration::from_secs(5);
/// The hidden flag `main` dispatches to [`child_main`].
const CHILD_ARGS: [&str; 2] = ["doctor", "--kvm-probe-child"];
/// Iterations of the guest's `dec ecx; jnz` loop: tens of ms under hardware virtualization,
/// over a minute on these development machines.
const LOOP_ITERATIONS: u32 = 50_000_000;
/// A loop slower than this means KVM is emulating, not virtualizing.
const LOOP_LIMIT: Duration = Duration::from_secs(1);
/// Lines the child prints before each `KVM_RUN`, and the start of its success line.
const RUNNING_HLT_LINE: &str = "running guest: hlt";
const RUNNING_LOOP_LINE: &str = "running guest: loop";
const HLT_PREFIX: &str = "hlt";

/// What the probe found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum KvmProbe {
    /// No `/dev/kvm`.
    NoDevice,
    /// The test guest halted and looped at hardware speed; the child's report.
    Usable(String),
    /// `/dev/kvm` is there but a guest cannot run; why.
    NotUsable(String),
    /// The probe itself could not run; why.
    ProbeFailed(String),
}

impl KvmProbe {
    /// `Ok` when guests run, else a reason fit for another item's detail.
    pub(super) fn usable(&self) -> Result<(), &str> {
        match self {
            Self::Usable(_) => Ok(()),
            Self::NoDevice => Err("/dev/kvm missing"),
            Self::NotUsable(why) | Self::ProbeFailed(why) => Err(why),
        }
    }

    pub(super) fn item(&self) -> Item {
        match self {
            Self::NoDevice => Item::new(
                "kvm",
                Status::Missing,
                "/dev/kvm missing: VMs need QEMU with -accel tcg",
            ),
            Self::Usable(report) => {
                Item::new("kvm", Status::Ok, format!("/dev/kvm usable: {report}"))
            }
            Self::NotUsable(why) => Item::new(
                "kvm",
                Status::Warn,
                format!("/dev/kvm present but not usable: {why}"),
            ),
            Self::ProbeFailed(why) => Item::new(
                "kvm",
                Status::Failed,
                format!("KVM probe could not run: {why}"),
            ),
        }
    }
}

/// Run the probe child with a timeout and classify the outcome.
pub(super) async fn probe() -> KvmProbe {
    if !Path::new("/dev/kvm").exists() {
        return KvmProbe::NoDevice;
    }
    let exe = match std::env::current_exe() {
        Ok(exe) => exe,
        Err(e) => {
            return KvmProbe::ProbeFailed(format!("cannot find the netbench executable: {e}"));
        }
    };
    classify(tools::run(&exe, &CHILD_ARGS, PROBE_TIMEOUT).await)
}

/// Turn the child's fate into a [`KvmProbe`] (pure, so it is tested without KVM).
fn classify(outcome: Result<tools::Finished, RunError>) -> KvmProbe {
    match outcome {
        Ok(out) => {
            let last = tools::last_line(&out.stdout);
            match out.status.code() {
                Some(0) if last.is_some_and(|l| l.starts_with(HLT_PREFIX)) => {
                    KvmProbe::Usable(last.unwrap_or_default().to_owned())
                }
                Some(1) => {
                    KvmProbe::NotUsable(last.unwrap_or("probe failed without a reason").to_owned())
                }
                _ => KvmProbe::ProbeFailed(format!(
                    "`{}` {}: {}",
                    CHILD_ARGS.join(" "),
                    out.status,
                    tools::first_line(&out.stderr)
                        .or(last)
                        .unwrap_or("no output")
                )),
            }
        }
        Err(RunError::TimedOut { stdout, reaped, .. }) => {
            let secs = PROBE_TIMEOUT.as_secs();
            let reached = |line: &str| stdout.lines().any(|l| l.trim() == line);
            let mut why = if reached(RUNNING_LOOP_LINE) {
                format!(
                    "KVM_RUN did not return within {secs} s (guest hangs: use TCG): a one-instruction guest \
                     halted, a {}M-iteration loop did not",
                    LOOP_ITERATIONS / 1_000_000
                )
            } else if reached(RUNNING_HLT_LINE) {
                format!("KVM_RUN did not return within {secs} s (guest hangs: use TCG)")
            } else {
                let step = tools::last_line(&stdout).unwrap_or("start");
                format!("the KVM probe did not finish within {secs} s (stuck after: {step})")
            };
            if !reaped {
                why.push_str("; the probe child survived SIGKILL");
            }
            KvmProbe::NotUsable(why)
        }
        Err(e) => KvmProbe::ProbeFailed(crate::error::one_line(&e)),
    }
}

/// Entry point of `netbench doctor --kvm-probe-child`: run the raw probe in this process.
/// Prints its steps, then a line starting with `hlt` and returns 0 when the guest halted
/// after its loop (within [`LOOP_LIMIT`]); otherwise prints the reason and returns 1.
#[must_use]
pub fn child_main() -> i32 {
    match raw::run_guest(|step| println!("{step}")) {
        Ok(elapsed) if elapsed <= LOOP_LIMIT => {
            println!(
                "{HLT_PREFIX}: guest looped {LOOP_ITERATIONS} times in {} ms, then halted",
                elapsed.as_millis()
            );
            0
        }
        Ok(elapsed) => {
            println!(
                "guest code runs far below hardware speed ({LOOP_ITERATIONS} loop iterations took {} ms, limit {} ms): use TCG",
                elapsed.as_millis(),
                LOOP_LIMIT.as_millis()
            );
            1
        }
        Err(e) => {
            println!("{}", crate::error::one_line(&e));
            1
        }
    }
}

/// The probe proper: raw KVM ioctls on a twelve-byte real-mode guest.
#[cfg(target_arch = "x86_64")]
mod raw;

/// The probe's register layout is x86-only.
#[cfg(not(target_arch = "x86_64"))]
mod raw {
    #[derive(Debug, thiserror::Error)]
    #[error("the KVM probe supports x86_64 hosts only")]
    pub(super) struct ProbeError;

    pub(super) fn run_guest(_step: impl Fn(&str)) -> Result<std::time::Duration, ProbeError> {
        Err(ProbeError)
    }
}

#[cfg(test)]
mod tests {
    use std::{os::unix::process::ExitStatusExt as _, process::ExitStatus};

    use super::*;

    fn exited(code: i32, stdout: &str) -> tools::Finished {
        tools::Finished {
            status: ExitStatus::from_raw(code << 8),
            stdout: stdout.into(),
            stderr: String::new(),
        }
    }

    fn timed_out(stdout: &str, reaped: bool) -> Result<tools::Finished, RunError> {
        Err(RunError::TimedOut {
            program: "netbench".into(),
            limit: PROBE_TIMEOUT,
            stdout: stdout.into(),
            reaped,
        })
    }

    #[test]
    fn guest_that_halts_is_usable() {
        let stdout = "api 12\nvm ready\nrunning guest: hlt\nrunning guest: loop\nhlt: guest looped 50000000 times in 21 ms, then halted\n";
        let p = classify(Ok(exited(0, stdout)));
        assert_eq!(p.usable(), Ok(()));
        let item = p.item();
        assert_eq!(item.status, Status::Ok);
        assert_eq!(
            item.detail,
            "/dev/kvm usable: hlt: guest looped 50000000 times in 21 ms, then halted"
        );
        // Exit 0 without the success line is not trusted.
        assert_ne!(classify(Ok(exited(0, "api 12\n"))).usable(), Ok(()));
    }

    #[test]
    fn hanging_guest_is_named() {
        let p = classify(timed_out("api 12\nvm ready\nrunning guest: hlt\n", true));
        assert_eq!(
            p.usable(),
            Err("KVM_RUN did not return within 5 s (guest hangs: use TCG)")
        );
        let item = p.item();
        assert_eq!(item.status, Status::Warn);
        assert_eq!(
            item.detail,
            "/dev/kvm present but not usable: KVM_RUN did not return within 5 s (guest hangs: use TCG)"
        );

        let crawling = classify(timed_out(
            "api 12\nvm ready\nrunning guest: hlt\nrunning guest: loop\n",
            true,
        ));
        let why = crawling.usable().unwrap_err();
        assert_eq!(
            why,
            "KVM_RUN did not return within 5 s (guest hangs: use TCG): a one-instruction guest halted, \
             a 50M-iteration loop did not"
        );

        let early = classify(timed_out("api 12\n", false));
        assert_eq!(
            early.usable(),
            Err(
                "the KVM probe did not finish within 5 s (stuck after: api 12); the probe child survived SIGKILL"
            )
        );
    }

    #[test]
    fn failures_keep_the_childs_reason() {
        let p = classify(Ok(exited(
            1,
            "api 12\nKVM_CREATE_VM: No such device (os error 19)\n",
        )));
        assert_eq!(
            p,
            KvmProbe::NotUsable("KVM_CREATE_VM: No such device (os error 19)".into())
        );
        // A child that is not the probe (e.g. the flag is not wired up) is a probe failure.
        let p = classify(Ok(exited(2, "error: unexpected argument\n")));
        assert_eq!(p.item().status, Status::Failed);
        assert_eq!(KvmProbe::NoDevice.item().status, Status::Missing);
    }
}
