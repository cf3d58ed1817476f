//! Hand-written JSON lines: the agent prints a handful of flat objects, so a serializer
//! dependency would only make the static binary bigger.

use std::fmt::Write as _;

/// Where finished lines go: stdout in the binary, a collector in tests. `Sync` because
/// the server's connection threads report through it too.
pub type Emit<'a> = &'a (dyn Fn(&str) + Sync);

/// A flat JSON object built key by key, in insertion order.
pub struct Obj {
    text: String,
}

/// Start an empty object.
pub fn object() -> Obj {
    Obj {
        text: String::from("{"),
    }
}

impl Obj {
    fn key(&mut self, k: &str) {
        if self.text.len() > 1 {
            self.text.push(',');
        }
        push_string(&mut self.text, k);
        self.text.push(':');
    }

    pub fn u64(mut self, k: &str, v: u64) -> Self {
        self.key(k);
        // Writing into a String cannot fail.
        let _ = write!(self.text, "{v}");
        self
    }

    /// A number, or `null` when there is none (e.g. percentiles of zero samples).
    pub fn opt_u64(self, k: &str, v: Option<u64>) -> Self {
        match v {
            Some(v) => self.u64(k, v),
            None => self.raw(k, "null"),
        }
    }

    /// A decimal with 6 fractional digits; JSON has no NaN/inf, so those become `null`.
    pub fn f64(mut self, k: &str, v: f64) -> Self {
        if !v.is_finite() {
            return self.raw(k, "null");
        }
        self.key(k);
        let _ = write!(self.text, "{v:.6}");
        self
    }

    pub fn bool(self, k: &str, v: bool) -> Self {
        self.raw(k, if v { "true" } else { "false" })
    }

    pub fn str(mut self, k: &str, v: &str) -> Self {
        self.key(k);
        push_string(&mut self.text, v);
        self
    }

    fn raw(mut self, k: &str, literal: &str) -> Self {
        self.key(k);
        self.text.push_str(literal);
        self
    }

    /// The finished object, without a trailing newline.
    pub fn build(mut self) -> String {
        self.text.push('}');
        self.text
    }
}

/// Append `s` as a quoted JSON string.
fn push_string(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if u32::from(c) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builds_flat_objects_in_order() {
        let line = object()
            .str("event", "sink")
            .u64("bytes", 12)
            .f64("seconds", 1.5)
            .bool("lost", true)
            .opt_u64("p50_ns", None)
            .build();
        assert_eq!(
            line,
            r#"{"event":"sink","bytes":12,"seconds":1.500000,"lost":true,"p50_ns":null}"#
        );
        assert_eq!(object().build(), "{}");
        assert_eq!(object().f64("x", f64::NAN).build(), r#"{"x":null}"#);
    }

    #[test]
    fn escapes_strings() {
        let line = object().str("k", "a\"b\\c\nd\u{1}é").build();
        assert_eq!(line, r#"{"k":"a\"b\\c\nd\u0001é"}"#);
    }
}
