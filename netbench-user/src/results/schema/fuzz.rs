//! The reader over generated input (bounded: a few hundred cases): arbitrary bytes and
//! valid-JSON mutations of a real run's results.json give a results document or an
//! error, never a panic; a document that loads also renders (`netbench report`).
use proptest::prelude::*;
use serde_json::Value;

use super::*;
use crate::results::render;

/// A real `netbench run` (runc and kata, four driver pairs, stress none/cpu).
const RUN: &str = include_str!("../testdata/run.json");

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: 300,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

/// Every JSON pointer in `v`.
fn pointers(v: &Value, at: &str, out: &mut Vec<String>) {
    out.push(at.to_owned());
    match v {
        Value::Object(m) => {
            for (k, c) in m {
                let k = k.replace('~', "~0").replace('/', "~1");
                pointers(c, &format!("{at}/{k}"), out);
            }
        }
        Value::Array(a) => {
            for (i, c) in a.iter().enumerate() {
                pointers(c, &format!("{at}/{i}"), out);
            }
        }
        _ => {}
    }
}

fn replacement() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        prop::sample::select(vec![
            0.0,
            -0.0,
            -1.0,
            0.5,
            1e-300,
            1e300,
            -1e300,
            f64::MAX,
            f64::MIN_POSITIVE,
        ])
        .prop_map(Value::from),
        Just(Value::from(u64::MAX)),
        Just(Value::from(u32::MAX)),
        Just(Value::from(u64::from(u32::MAX) + 1)),
        prop::sample::select(vec![
            "",
            "ok",
            "failed",
            "degraded",
            "unsupported",
            "bogus",
            "runc",
            "vm",
        ])
        .prop_map(Value::from),
        any::<String>().prop_map(Value::from),
        Just(Value::Array(Vec::new())),
        Just(serde_json::json!({})),
        Just(serde_json::json!([null, 0, -1, 1e300])),
    ]
}

fn number() -> impl Strategy<Value = Value> {
    prop_oneof![
        any::<u64>().prop_map(Value::from),
        (0u64..3).prop_map(Value::from),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(Value::from),
        prop::sample::select(vec![0.0, -1.0, 1e-300, 1e300, f64::MAX]).prop_map(Value::from),
        Just(Value::from(u64::MAX)),
    ]
}

#[derive(Clone, Debug)]
enum Mutation {
    Replace(prop::sample::Index, Value),
    /// The value at one place copied to another (a stage where a number was, ...).
    Copy(prop::sample::Index, prop::sample::Index),
    Remove(prop::sample::Index),
    /// A number replaced by another (the shape stays valid: most of these load).
    Renumber(prop::sample::Index, Value),
    /// An array emptied or truncated.
    Truncate(prop::sample::Index, usize),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    let i = any::<prop::sample::Index>;
    prop_oneof![
        4 => (i(), replacement()).prop_map(|(i, v)| Mutation::Replace(i, v)),
        2 => (i(), i()).prop_map(|(a, b)| Mutation::Copy(a, b)),
        2 => i().prop_map(Mutation::Remove),
        1 => (i(), 0usize..3).prop_map(|(i, n)| Mutation::Truncate(i, n)),
        4 => (i(), number()).prop_map(|(i, v)| Mutation::Renumber(i, v)),
    ]
}

fn apply(doc: &mut Value, m: &Mutation) {
    let mut all = Vec::new();
    pointers(doc, "", &mut all);
    let at = |i: &prop::sample::Index| all[i.index(all.len())].clone();
    match m {
        Mutation::Replace(i, v) => {
            if let Some(slot) = doc.pointer_mut(&at(i)) {
                *slot = v.clone();
            }
        }
        Mutation::Copy(from, to) => {
            if let Some(v) = doc.pointer(&at(from)).cloned()
                && let Some(slot) = doc.pointer_mut(&at(to))
            {
                *slot = v;
            }
        }
        Mutation::Remove(i) => {
            let p = at(i);
            if let Some((parent, key)) = p.rsplit_once('/')
                && let Some(parent) = doc.pointer_mut(parent)
            {
                let key = key.replace("~1", "/").replace("~0", "~");
                match parent {
                    Value::Object(m) => {
                        m.remove(&key);
                    }
                    Value::Array(a) => {
                        if let Ok(k) = key.parse::<usize>()
                            && k < a.len()
                        {
                            a.remove(k);
                        }
                    }
                    _ => {}
                }
            }
        }
        Mutation::Renumber(i, v) => {
            let numbers: Vec<&String> = all
                .iter()
                .filter(|p| doc.pointer(p).is_some_and(Value::is_number))
                .collect();
            if !numbers.is_empty() {
                let p = numbers[i.index(numbers.len())].clone();
                if let Some(slot) = doc.pointer_mut(&p) {
                    *slot = v.clone();
                }
            }
        }
        Mutation::Truncate(i, n) => {
            if let Some(Value::Array(a)) = doc.pointer_mut(&at(i)) {
                a.truncate(*n);
            }
        }
    }
}

/// What `netbench report` does with a file, short of the plots.
fn read_and_render(text: &[u8]) -> Option<Results> {
    let r = Results::parse(text).ok()?;
    let _ = render(&r);
    let _ = summary_csv(&r);
    let _ = crate::results::summary::table(&r);
    let _ = crate::results::summary::findings(&r);
    Some(r)
}

#[test]
fn the_real_run_loads() {
    let r = read_and_render(RUN.as_bytes()).expect("testdata/run.json loads");
    assert_eq!(r.scenarios.len(), 16);
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn arbitrary_bytes_never_panic(b in prop::collection::vec(any::<u8>(), 0..512)) {
        let _ = read_and_render(&b);
    }

    /// The real file cut anywhere: an error (the cut is never a valid document
    /// except at its very end, give or take whitespace).
    #[test]
    fn truncated_files_are_errors(cut in 0usize..RUN.len()) {
        let text = &RUN.as_bytes()[..cut];
        let whole = RUN.trim_end().len() <= cut;
        prop_assert_eq!(read_and_render(text).is_some(), whole);
    }

    #[test]
    fn mutated_files_load_or_fail_never_panic(ms in prop::collection::vec(mutation(), 1..6)) {
        let mut doc: Value = serde_json::from_str(RUN).unwrap();
        for m in &ms {
            apply(&mut doc, m);
        }
        let _ = read_and_render(&serde_json::to_vec(&doc).unwrap());
    }
}
