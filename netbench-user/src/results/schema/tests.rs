//! Unit tests of the results schema: round trips, reading old schemas, writing.
use super::*;
use crate::results::{fixtures::sample, render};

#[test]
fn json_round_trip_and_render_say_unsupported_and_model() {
    let r = sample();
    let text = serde_json::to_string(&r).unwrap();
    assert!(text.contains(r#""schema":2"#), "{text}");
    let back: Results = serde_json::from_str(&text).unwrap();
    assert_eq!(back, r);
    let shown = render(&r);
    assert!(
        shown.contains("kata-host-bridge: unsupported: Kata cannot use the host network driver")
    );
    assert!(shown.contains("[MODEL: Kata tc-redirect + tap, VMM stand-in]"));
    let csv = summary_csv(&r);
    assert!(
        csv.lines()
            .any(|l| l.starts_with("kata-host-bridge,") && l.contains(",unsupported,"))
    );
    assert!(
        csv.lines()
            .any(|l| l.starts_with("lab-tap,") && l.contains(",vm,5.000,"))
    );
}

#[test]
fn write_then_load() {
    let dir = std::env::temp_dir().join(format!("nb-report-test-{}", std::process::id()));
    let r = sample();
    r.write(&dir).unwrap();
    assert_eq!(Results::load(&dir).unwrap(), r);
    assert!(dir.join("summary.csv").is_file());
    std::fs::remove_dir_all(&dir).unwrap();
    assert!(Results::load(&dir).is_err());
}

fn mode(p: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::metadata(p).unwrap().permissions().mode() & 0o7777
}

#[test]
fn written_files_are_0644_and_created_directories_0755() {
    use std::os::unix::fs::PermissionsExt as _;
    let top = std::env::temp_dir().join(format!("nb-perm-test-{}", std::process::id()));
    let dir = top.join("a/b");
    let _ = std::fs::remove_dir_all(&top);
    std::fs::create_dir_all(&top).unwrap();
    sample().write(&dir).unwrap();
    assert_eq!(mode(&dir.join("results.json")), 0o644);
    assert_eq!(mode(&dir.join("summary.csv")), 0o644);
    assert_eq!((mode(&dir), mode(&top.join("a"))), (0o755, 0o755));
    // A world-writable temporary file left by a killed run does not pass its mode on.
    let stale = dir.join("results.tmp");
    std::fs::write(&stale, "half").unwrap();
    std::fs::set_permissions(&stale, std::fs::Permissions::from_mode(0o666)).unwrap();
    sample().write(&dir).unwrap();
    assert_eq!(mode(&dir.join("results.json")), 0o644);
    assert!(!stale.exists(), "the temporary file is renamed, not left");
    std::fs::remove_dir_all(&top).unwrap();
}

#[test]
fn a_failed_write_is_an_error_and_leaves_no_temporary_file() {
    let dir = std::env::temp_dir().join(format!("nb-wfail-test-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    // results.json is a non-empty directory: the rename over it fails.
    std::fs::create_dir_all(dir.join("results.json/x")).unwrap();
    let e = sample().write(&dir).unwrap_err();
    assert!(
        matches!(&e, ReportError::Io { path, .. } if path.ends_with("results.json")),
        "{e:?}"
    );
    assert!(!dir.join("results.tmp").exists());
    assert!(!dir.join("summary.csv").exists());
    std::fs::remove_dir_all(&dir).unwrap();
    // A regular file where the directory should be.
    let file = std::env::temp_dir().join(format!("nb-wfile-test-{}", std::process::id()));
    std::fs::write(&file, "x").unwrap();
    assert!(matches!(sample().write(&file), Err(ReportError::Io { .. })));
    std::fs::remove_file(&file).unwrap();
}

#[test]
fn check_writable_names_the_directory_and_leaves_nothing() {
    let top = std::env::temp_dir().join(format!("nb-check-test-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&top);
    std::fs::create_dir_all(&top).unwrap();
    // Missing directories are created for the check and removed after it.
    check_writable(&top.join("x/y/z")).unwrap();
    assert_eq!(std::fs::read_dir(&top).unwrap().count(), 0);
    // An existing directory keeps what it has, and gets nothing new.
    std::fs::write(top.join("keep"), "").unwrap();
    check_writable(&top).unwrap();
    assert_eq!(std::fs::read_dir(&top).unwrap().count(), 1);
    for bad in [top.join("keep"), top.join("keep/sub"), "/proc/nb-x".into()] {
        let e = check_writable(&bad).unwrap_err();
        let line = crate::error::one_line(&e);
        assert!(
            line.starts_with(&format!("cannot write results in {}: ", bad.display())),
            "{line}"
        );
    }
    assert_eq!(std::fs::read_dir(&top).unwrap().count(), 1);
    std::fs::remove_dir_all(&top).unwrap();
}

#[test]
fn serialisation_failure_is_an_error_not_an_empty_file() {
    // JSON object keys must be strings: a map keyed by tuples cannot be written.
    let bad: std::collections::BTreeMap<(u8, u8), u8> = [((1, 2), 3)].into();
    assert!(matches!(json_text(&bad), Err(ReportError::Serialize(_))));
    assert!(json_text(&sample()).unwrap().starts_with('{'));
}

/// A results.json as schema 1 wrote it: `ci95` a number, `per_rep_p50` numbers (0
/// for a repetition without probes), no untraced round trip or outcome counts.
const SCHEMA_1: &str = r#"{
  "schema": 1,
  "env": {"kernel": "6.1.0", "docker_version": "20.10.24", "runtimes_found": ["runc"],
          "cpu_model": "x", "cpus": 2, "netbench_version": "0.1.0", "started_at": 1700000000},
  "config": {"reps": 2},
  "scenarios": [
    {"id": "runc-bridge-bridge-none", "runtime": "runc", "client_driver": "bridge",
     "server_driver": "bridge", "stress": "none", "status": "ok", "reason": null,
     "bandwidth_gbps": {"mean": 9.5, "stddev": 0.5, "ci95": 4.49, "per_rep": [9.0, 10.0]},
     "rtt_us": {"count": 400, "mean": 30.5, "p50": 29.0, "p90": 35.0, "p99": 50.0,
                "p999": 60.0, "per_rep_p50": [28.5, 0.0]},
     "stages": [{"name": "bridge", "from_hook": "a", "to_hook": "b", "mean_us": 30.5,
                 "p50_us": 29.0, "p90_us": 35.0, "p99_us": 50.0, "p999_us": 60.0,
                 "share": 1.0}],
     "probes_sent": 400, "probes_matched": 399, "events_lost": 1},
    {"id": "kata-bridge-bridge-none", "runtime": "kata", "client_driver": "bridge",
     "server_driver": "bridge", "stress": "none", "status": "unsupported",
     "reason": "no kvm", "bandwidth_gbps": null, "rtt_us": null, "stages": [],
     "probes_sent": 0, "probes_matched": 0, "events_lost": 0},
    {"id": "gvisor-bridge-bridge-none", "runtime": "runsc", "client_driver": "bridge",
     "server_driver": "bridge", "stress": "none", "status": "failed",
     "reason": "no probe was seen at every hop",
     "bandwidth_gbps": {"mean": 0.51, "stddev": 0.0, "ci95": 0.0, "per_rep": [0.51]},
     "rtt_us": {"count": 0, "mean": 0.0, "p50": 0.0, "p90": 0.0, "p99": 0.0,
                "p999": 0.0, "per_rep_p50": [0.0]},
     "stages": [], "probes_sent": 200, "probes_matched": 0, "events_lost": 200}
  ]
}"#;

#[test]
fn schema_1_files_still_load_and_render() {
    let r = Results::parse(SCHEMA_1.as_bytes()).map_err(|_| ()).unwrap();
    assert_eq!(r.schema, 1);
    let ok = &r.scenarios[0];
    assert_eq!(ok.status, Status::Ok);
    assert_eq!(ok.bandwidth_gbps.as_ref().unwrap().ci95, Some(4.49));
    assert_eq!(
        ok.rtt_us.as_ref().unwrap().per_rep_p50,
        vec![Some(28.5), None]
    );
    assert_eq!(
        (ok.rtt_untraced_us.as_ref(), ok.observer_effect.as_ref()),
        (None, None)
    );
    assert_eq!(
        (
            ok.probes_timed_out,
            ok.probes_non_causal,
            ok.probes_missing_hops
        ),
        (0, 0, 0)
    );
    assert_eq!(r.scenarios[1].status, Status::Unsupported);
    assert_eq!(r.scenarios[2].status, Status::Failed);
    // The old file renders: the traced round trip is quoted, and says so.
    let shown = render(&r);
    assert!(
        shown.contains("round trip (traced probes): mean 30.50 us, p50 29.00 us"),
        "{shown}"
    );
    assert!(
        shown.contains("bandwidth 9.50 Gbit/s (sd 0.50, 95% CI +/- 4.49"),
        "{shown}"
    );
    assert!(shown.contains("gvisor-bridge-bridge-none: failed: no probe was seen at every hop\n"));
    assert!(!shown.contains("0.51"), "{shown}");
    // And through the file.
    let dir = std::env::temp_dir().join(format!("nb-report-v1-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("results.json"), SCHEMA_1).unwrap();
    assert_eq!(Results::load(&dir).unwrap(), r);
    // Written again, it is a schema-2 file (0 p50 now null).
    r.write(&dir).unwrap();
    let text = std::fs::read_to_string(dir.join("results.json")).unwrap();
    assert!(text.contains("\"schema\": 2"), "{text}");
    let again = Results::load(&dir).unwrap();
    assert_eq!(again.schema, SCHEMA);
    assert_eq!(again.scenarios, r.scenarios);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn unknown_schemas_are_refused_with_the_number() {
    let newer = SCHEMA_1.replacen(r#""schema": 1"#, r#""schema": 3"#, 1);
    assert!(matches!(
        Results::parse(newer.as_bytes()),
        Err(ParseError::Schema(3))
    ));
    let older = SCHEMA_1.replacen(r#""schema": 1"#, r#""schema": 0"#, 1);
    assert!(matches!(
        Results::parse(older.as_bytes()),
        Err(ParseError::Schema(0))
    ));
    assert!(matches!(Results::parse(b"{}"), Err(ParseError::Json(_))));
}

#[test]
fn figures_no_run_can_produce_are_refused() {
    let huge = SCHEMA_1.replacen(r#""mean": 30.5"#, r#""mean": 1e300"#, 1);
    assert!(huge.contains("1e300"));
    let Err(ParseError::Range((at, value))) = Results::parse(huge.as_bytes()) else {
        panic!("1e300 us accepted");
    };
    assert_eq!((at.as_str(), value), ("/scenarios/0/rtt_us/mean", 1e300));
    // The config is the run's own record, not a figure.
    let config = SCHEMA_1.replacen(r#""reps": 2"#, r#""reps": 1e300"#, 1);
    assert!(Results::parse(config.as_bytes()).is_ok());
}

#[test]
fn per_rep_p50_is_none_without_probes() {
    assert_eq!(crate::stats::p50_us(&[]), None);
    assert!((crate::stats::p50_us(&[10_000, 20_000, 30_000]).unwrap() - 20.0).abs() < 0.05);
    let json =
        r#"{"count":0,"mean":0,"p50":0,"p90":0,"p99":0,"p999":0,"per_rep_p50":[null,12.5,0.0]}"#;
    let r: Rtt = serde_json::from_str(json).unwrap();
    assert_eq!(r.per_rep_p50, vec![None, Some(12.5), None]);
    let text = serde_json::to_string(&r).unwrap();
    assert!(text.contains(r#""per_rep_p50":[null,12.5,null]"#), "{text}");
}
