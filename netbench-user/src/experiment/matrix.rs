//! The experiment matrix: runtimes x driver pairs x CPU stress, its configuration and
//! validation, and the rules that make a scenario unsupported before anything runs.
use std::path::PathBuf;

use clap::ValueEnum;
use serde::Serialize;
use strum::IntoStaticStr;

/// A driver pair of the study, named by its client side: `bridge` = (bridge, bridge),
/// `host` = (host, bridge), `macvlan` = (macvlan, macvlan), `overlay` = (overlay, overlay).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[derive(Serialize, ValueEnum, IntoStaticStr)]
#[serde(rename_all = "lowercase")]
#[strum(serialize_all = "lowercase")]
pub enum Driver {
    Bridge,
    Host,
    Macvlan,
    Overlay,
}

impl Driver {
    pub const ALL: [Self; 4] = [Self::Bridge, Self::Host, Self::Macvlan, Self::Overlay];

    #[must_use]
    pub fn name(self) -> &'static str {
        self.into()
    }

    /// (client driver, server driver).
    #[must_use]
    pub fn pair(self) -> (&'static str, &'static str) {
        match self {
            Self::Bridge => ("bridge", "bridge"),
            Self::Host => ("host", "bridge"),
            Self::Macvlan => ("macvlan", "macvlan"),
            Self::Overlay => ("overlay", "overlay"),
        }
    }

    /// The Docker network the server joins (and the client, except in host mode).
    #[must_use]
    pub fn network(self) -> &'static str {
        self.pair().1
    }
}

pub use crate::stress::Stress;

/// How tracing runs while bandwidth is measured.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[derive(Serialize, ValueEnum, IntoStaticStr)]
#[serde(rename_all = "kebab-case")]
#[strum(serialize_all = "kebab-case")]
pub enum BandwidthTracing {
    /// Programs detached: the bandwidth figure is the untraced datapath's.
    Off,
    /// Programs attached in count-only mode (per-CPU counters, no events).
    CountOnly,
}

impl BandwidthTracing {
    #[must_use]
    pub fn name(self) -> &'static str {
        self.into()
    }
}

/// The resolved configuration of `netbench run` (recorded in results.json).
#[derive(Clone, Debug, Serialize)]
pub struct RunConfig {
    pub runtimes: Vec<String>,
    pub drivers: Vec<Driver>,
    pub stress: Vec<Stress>,
    pub reps: u32,
    /// Request/response probes per repetition.
    pub probes: u64,
    /// Seconds of bulk TCP per repetition.
    pub duration_s: u64,
    pub probe_size: usize,
    pub proto: netbench_common::protocol::Proto,
    /// The agent's echo port (the bandwidth sink is the next one).
    pub port: u16,
    pub out: PathBuf,
    pub allow_swarm_init: bool,
    pub macvlan_parent: Option<String>,
    /// stress-ng `--cpu` workers; 0 = one per CPU.
    pub stress_cpus: u32,
    pub bandwidth_tracing: BandwidthTracing,
    /// When the server's scheduler events are traced.
    pub sched: crate::trace::sched::SchedTracing,
}

impl RunConfig {
    /// Build from the command line's raw lists; each bad value is one line of error.
    ///
    /// # Errors
    /// An empty or unknown list item, a repeated item, a bad runtime name.
    #[expect(clippy::too_many_arguments, reason = "one argument per CLI flag")]
    pub fn from_lists(
        runtimes: &str,
        drivers: &str,
        stress: &str,
        reps: u32,
        probes: u64,
        duration_s: u64,
        out: PathBuf,
        allow_swarm_init: bool,
        macvlan_parent: Option<String>,
        stress_cpus: u32,
        bandwidth_tracing: BandwidthTracing,
        sched: crate::trace::sched::SchedTracing,
    ) -> Result<Self, String> {
        let runtimes = parse_list("--runtimes", runtimes, |s| {
            if s.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'))
                && s.len() <= 64
            {
                Ok(s.to_owned())
            } else {
                Err(format!("invalid runtime name '{s}'"))
            }
        })?;
        let drivers = parse_list("--drivers", drivers, |s| value_of::<Driver>("driver", s))?;
        let stress = parse_list("--stress", stress, |s| value_of::<Stress>("stress", s))?;
        if let Some(p) = &macvlan_parent
            && (p.is_empty() || p.len() > 15 || p.contains(['/', ' ']))
        {
            return Err(format!("--macvlan-parent: '{p}' is not an interface name"));
        }
        if out.is_file() {
            return Err(format!(
                "--out: {} is a file, not a directory",
                out.display()
            ));
        }
        Ok(Self {
            runtimes,
            drivers,
            stress,
            reps,
            probes,
            duration_s,
            probe_size: 64,
            proto: netbench_common::protocol::Proto::Udp,
            port: 7301,
            out,
            allow_swarm_init,
            macvlan_parent,
            stress_cpus,
            bandwidth_tracing,
            sched,
        })
    }

    /// Number of repetitions the matrix would run if every scenario were supported.
    #[must_use]
    pub fn max_reps(&self) -> u64 {
        (self.runtimes.len() * self.drivers.len() * self.stress.len()) as u64 * u64::from(self.reps)
    }
}

/// One value of a clap `ValueEnum` (the one definition of its names) by its name; the
/// error names `what` and lists the names.
///
/// # Errors
/// An unknown name.
pub fn value_of<T: clap::ValueEnum>(what: &str, s: &str) -> Result<T, String> {
    T::from_str(s, false).map_err(|_| {
        let names: Vec<String> = T::value_variants()
            .iter()
            .filter_map(|v| v.to_possible_value().map(|p| p.get_name().to_owned()))
            .collect();
        format!("unknown {what} '{s}' (expected {})", names.join(", "))
    })
}

/// A comma-separated list: trimmed items, none empty, none repeated, each parsed.
///
/// # Errors
/// One line naming the flag and the bad item.
pub fn parse_list<T>(
    flag: &str,
    text: &str,
    parse: impl Fn(&str) -> Result<T, String>,
) -> Result<Vec<T>, String> {
    let mut seen: Vec<&str> = Vec::new();
    let mut out = Vec::new();
    for item in text.split(',').map(str::trim) {
        if item.is_empty() {
            return Err(format!("{flag}: empty item in '{text}'"));
        }
        if seen.contains(&item) {
            return Err(format!("{flag}: '{item}' given twice"));
        }
        seen.push(item);
        out.push(parse(item).map_err(|e| format!("{flag}: {e}"))?);
    }
    Ok(out)
}

/// One cell of the matrix.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScenarioSpec {
    /// `<runtime>-<client driver>-<server driver>-<stress>`.
    pub id: String,
    /// The runtime as requested (`runc`, `kata`, ...).
    pub runtime: String,
    pub driver: Driver,
    pub stress: Stress,
}

impl ScenarioSpec {
    #[must_use]
    pub fn client_driver(&self) -> &'static str {
        self.driver.pair().0
    }

    #[must_use]
    pub fn server_driver(&self) -> &'static str {
        self.driver.pair().1
    }
}

/// Every scenario, runtime-major, then driver pair, then stress (the study's order:
/// each pair without stress, then with).
#[must_use]
pub fn expand(cfg: &RunConfig) -> Vec<ScenarioSpec> {
    let mut out = Vec::new();
    for runtime in &cfg.runtimes {
        for &driver in &cfg.drivers {
            for &stress in &cfg.stress {
                let (c, s) = driver.pair();
                out.push(ScenarioSpec {
                    id: format!("{runtime}-{c}-{s}-{}", stress.name()),
                    runtime: runtime.clone(),
                    driver,
                    stress,
                });
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(runtimes: &str, drivers: &str, stress: &str) -> Result<RunConfig, String> {
        RunConfig::from_lists(
            runtimes,
            drivers,
            stress,
            3,
            100,
            1,
            PathBuf::from("/nonexistent/out"),
            false,
            None,
            0,
            BandwidthTracing::Off,
            crate::trace::sched::SchedTracing::Auto,
        )
    }

    #[test]
    fn matrix_expands_runtime_driver_stress_in_order() {
        let c = cfg("runc,kata", "bridge,host,macvlan,overlay", "none,cpu").unwrap();
        let m = expand(&c);
        assert_eq!(m.len(), 16);
        assert_eq!(c.max_reps(), 48);
        let ids: Vec<&str> = m.iter().map(|s| s.id.as_str()).take(4).collect();
        assert_eq!(
            ids,
            [
                "runc-bridge-bridge-none",
                "runc-bridge-bridge-cpu",
                "runc-host-bridge-none",
                "runc-host-bridge-cpu"
            ]
        );
        assert_eq!(m[15].id, "kata-overlay-overlay-cpu");
        assert_eq!(
            (m[2].client_driver(), m[2].server_driver()),
            ("host", "bridge")
        );
        assert_eq!(Driver::Macvlan.network(), "macvlan");
    }

    #[test]
    fn bad_lists_are_one_line_errors() {
        for ((runtimes, drivers, stress), error) in [
            (
                ("runc", "bridge,vxlan", "none"),
                "--drivers: unknown driver 'vxlan' (expected bridge, host, macvlan, overlay)",
            ),
            (
                ("runc", "bridge", "none,heavy"),
                "--stress: unknown stress 'heavy' (expected none, cpu)",
            ),
            (
                ("runc,,kata", "bridge", "none"),
                "--runtimes: empty item in 'runc,,kata'",
            ),
            (
                ("runc", "host,host", "none"),
                "--drivers: 'host' given twice",
            ),
        ] {
            assert_eq!(cfg(runtimes, drivers, stress).unwrap_err(), error);
        }
        assert!(
            cfg("run c", "bridge", "none")
                .unwrap_err()
                .contains("invalid runtime name")
        );
        assert!(cfg("", "bridge", "none").is_err());
        let c = cfg(" runc , io.containerd.kata.v2", "overlay", "cpu").unwrap();
        assert_eq!(c.runtimes, ["runc", "io.containerd.kata.v2"]);
        assert!(value_of::<BandwidthTracing>("mode", "sometimes").is_err());
        assert_eq!(
            value_of::<BandwidthTracing>("mode", "count-only"),
            Ok(BandwidthTracing::CountOnly)
        );
    }
}
