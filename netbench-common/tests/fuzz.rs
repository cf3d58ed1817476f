//! Properties over generated input (bounded: a few hundred cases each, well under a
//! second): the decoders of what crosses from the kernel (events, probe headers) and
//! from the agent (its output lines) never panic, whatever the bytes.
use netbench_common::{Direction, EVENT_VERSION, HopEvent, ProbeHeader};
use proptest::prelude::*;

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: 500,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

fn any_event() -> impl Strategy<Value = HopEvent> {
    (
        (
            any::<u16>(),
            any::<u8>(),
            any::<u8>(),
            any::<u32>(),
            any::<u32>(),
        ),
        (any::<u32>(), any::<u64>(), any::<u32>(), any::<u32>()),
        (any::<u64>(), any::<u64>(), any::<u32>(), any::<u32>()),
    )
        .prop_map(
            |(
                (version, proto, pad, hook, ifindex),
                (cpu, netns_cookie, run_id, dir),
                (seq, ts_ns, pkt_len, tid),
            )| HopEvent {
                version,
                proto,
                _pad0: pad,
                hook,
                ifindex,
                cpu,
                netns_cookie,
                run_id,
                dir,
                seq,
                ts_ns,
                pkt_len,
                tid,
            },
        )
}

/// The event's bytes as the kernel lays them out (repr(C), native order).
fn bytes_of(ev: &HopEvent) -> Vec<u8> {
    let mut b = vec![0u8; HopEvent::SIZE];
    // SAFETY: `b` holds exactly SIZE bytes; write_unaligned makes no alignment assumption.
    unsafe { core::ptr::write_unaligned(b.as_mut_ptr().cast::<HopEvent>(), *ev) };
    b
}

proptest! {
    #![proptest_config(config())]

    /// Any bytes: an event exactly when there are enough of them and the version is
    /// ours; never a panic, whatever the length or alignment.
    #[test]
    fn event_decoding_never_panics(b in prop::collection::vec(any::<u8>(), 0..200), skip in 0usize..8) {
        let b = &b[skip.min(b.len())..];
        let decoded = HopEvent::from_bytes(b);
        let version_ok = b.len() >= 2 && u16::from_ne_bytes([b[0], b[1]]) == EVENT_VERSION;
        prop_assert_eq!(decoded.is_some(), b.len() >= HopEvent::SIZE && version_ok);
    }

    /// Any event of this version reads back as it was written, at any offset.
    #[test]
    fn events_round_trip(mut ev in any_event(), offset in 0usize..8, tail in 0usize..16) {
        ev.version = EVENT_VERSION;
        let mut buf = vec![0xa5u8; offset];
        buf.extend(bytes_of(&ev));
        buf.extend(std::iter::repeat_n(0x5a, tail));
        prop_assert_eq!(HopEvent::from_bytes(&buf[offset..]), Some(ev));
    }

    /// Any bytes as a probe header: `None` or the fields, never a panic.
    #[test]
    fn probe_header_parsing_never_panics(b in prop::collection::vec(any::<u8>(), 0..64)) {
        if let Some((run_id, seq, dir, len)) = ProbeHeader::parse(&b) {
            prop_assert_eq!(&ProbeHeader::to_bytes(run_id, seq, dir, len)[..], &b[..ProbeHeader::SIZE]);
        }
    }

    #[test]
    fn probe_headers_round_trip(run_id in any::<u32>(), seq in any::<u64>(), reply in any::<bool>(), len in any::<u32>()) {
        let dir = if reply { Direction::Reply } else { Direction::Request };
        prop_assert_eq!(
            ProbeHeader::parse(&ProbeHeader::to_bytes(run_id, seq, dir, len)),
            Some((run_id, seq, dir, len))
        );
    }
}

#[cfg(feature = "user")]
mod agent_lines {
    use netbench_common::protocol::{Event, Line, event, parse_lines, probes};
    use proptest::prelude::*;

    use super::config;

    /// A JSON value of any shape the agent's lines could be confused with.
    fn value() -> impl Strategy<Value = String> {
        let leaf = prop_oneof![
            Just("null".to_owned()),
            any::<bool>().prop_map(|b| b.to_string()),
            any::<i64>().prop_map(|n| n.to_string()),
            any::<u64>().prop_map(|n| n.to_string()),
            any::<f64>().prop_map(|f| if f.is_finite() {
                f.to_string()
            } else {
                "1e999".into()
            }),
            Just("18446744073709551616".to_owned()),
            Just("-0".to_owned()),
            Just("1e400".to_owned()),
            prop::sample::select(vec![
                "udp", "tcp", "ready", "stopped", "sink", "summary", "stream", "blast", "UDP",
            ])
            .prop_map(|s| format!("\"{s}\"")),
            any::<String>().prop_map(|s| serde_json::to_string(&s).unwrap()),
        ];
        leaf.prop_recursive(3, 16, 4, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4)
                    .prop_map(|v| format!("[{}]", v.join(","))),
                prop::collection::vec((key(), inner), 0..4).prop_map(|kv| object(&kv)),
            ]
        })
    }

    fn key() -> impl Strategy<Value = String> {
        prop_oneof![
            prop::sample::select(vec![
                "event",
                "seq",
                "run_id",
                "send_ns",
                "recv_ns",
                "rtt_ns",
                "lost",
                "proto",
                "port",
                "sent",
                "received",
                "bytes",
                "seconds",
                "gbps",
                "refused",
                "no_buffer",
            ])
            .prop_map(str::to_owned),
            any::<String>(),
        ]
    }

    fn object(kv: &[(String, String)]) -> String {
        let fields: Vec<String> = kv
            .iter()
            .map(|(k, v)| format!("{}:{v}", serde_json::to_string(k).unwrap()))
            .collect();
        format!("{{{}}}", fields.join(","))
    }

    /// Agent-like lines: objects of the agent's keys, broken JSON, arbitrary text.
    fn line() -> impl Strategy<Value = String> {
        prop_oneof![
            4 => prop::collection::vec((key(), value()), 0..8).prop_map(|kv| object(&kv)),
            1 => (prop::collection::vec((key(), value()), 0..8), any::<usize>())
                .prop_map(|(kv, cut)| {
                    let s = object(&kv);
                    let cut = cut % (s.len() + 1);
                    s.char_indices().map(|(i, _)| i).rfind(|&i| i <= cut).map_or(s.clone(), |i| s[..i].to_owned())
                }),
            1 => any::<String>(),
        ]
    }

    fn check(text: &str) -> Result<(), TestCaseError> {
        let one_line = |e: &str| !e.is_empty() && !e.contains('\n');
        match parse_lines(text) {
            Ok(lines) => prop_assert!(lines.len() <= text.lines().count()),
            Err(e) => prop_assert!(one_line(&e), "{e:?}"),
        }
        if let Err(e) = probes(text) {
            prop_assert!(one_line(&e), "{e:?}");
        }
        let summary = event(text, "summary", |e| match e {
            Event::Summary(s) => Some(s),
            _ => None,
        });
        if let Err(e) = summary {
            prop_assert!(one_line(&e), "{e:?}");
        }
        Ok(())
    }

    proptest! {
        #![proptest_config(config())]

        /// Any agent-like output: typed lines or a one-line error, never a panic.
        #[test]
        fn agent_output_never_panics(lines in prop::collection::vec(line(), 0..6)) {
            check(&lines.join("\n"))?;
        }

        /// Arbitrary text, including control characters and invalid JSON.
        #[test]
        fn arbitrary_text_never_panics(text in any::<String>()) {
            check(&text)?;
        }

        /// A well-formed probe line parses into exactly its fields.
        #[test]
        fn probe_lines_parse_exactly(seq in any::<u64>(), run_id in any::<u32>(), send in any::<u64>(), rtt in proptest::option::of(any::<u64>())) {
            let line = match rtt {
                Some(r) => format!(r#"{{"seq":{seq},"run_id":{run_id},"send_ns":{send},"rtt_ns":{r},"proto":"tcp"}}"#),
                None => format!(r#"{{"seq":{seq},"run_id":{run_id},"send_ns":{send},"lost":true}}"#),
            };
            let parsed = parse_lines(&line).unwrap();
            let [Line::Probe(p)] = &parsed[..] else { panic!("{parsed:?}") };
            prop_assert_eq!((p.seq, p.run_id, p.send_ns, p.rtt_ns, p.lost), (seq, run_id, send, rtt, rtt.is_none()));
        }
    }
}
