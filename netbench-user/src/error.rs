//! Errors on one line, and foreign errors as links of a source chain.
//!
//! The convention (docs/architecture.md, "Errors"): an error with a source says only its
//! own context in its text, never the source's, so the causes joined with ": " read as
//! one line without a repeat. [`Aya`] brings aya's errors, which quote some of their
//! sources in their own text, under the same rule.
use std::{error::Error, fmt};

/// The error and each of its causes, joined with ": ".
#[must_use]
pub fn one_line(e: &(dyn Error + 'static)) -> String {
    let mut line = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        line.push_str(": ");
        line.push_str(&c.to_string());
        cause = c.source();
    }
    line
}

/// An aya error as a link of the chain: aya's text, then the first cause that text does
/// not already quote (`EbpfError`'s `"map error: {0}"`, `ProgramError::LoadError`'s
/// `"returned {io_error}"`), decided by type and variant.
#[derive(Debug)]
pub struct Aya<E>(pub Box<E>);

impl<E> From<E> for Aya<E> {
    fn from(e: E) -> Self {
        Self(Box::new(e))
    }
}

impl<E: Error + 'static> fmt::Display for Aya<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl<E: Error + 'static> Error for Aya<E> {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        let mut link: &(dyn Error + 'static) = &*self.0;
        loop {
            let next = link.source()?;
            if !aya_quotes_source(link) {
                return Some(next);
            }
            link = next;
        }
    }
}

/// Does this aya error's text include its source's text?
fn aya_quotes_source(e: &(dyn Error + 'static)) -> bool {
    use aya::{BtfError, EbpfError, programs::ProgramError};
    if let Some(e) = e.downcast_ref::<EbpfError>() {
        matches!(
            e,
            EbpfError::ParseError(_)
                | EbpfError::BtfError(_)
                | EbpfError::MapError(_)
                | EbpfError::ProgramError(_)
        )
    } else if let Some(e) = e.downcast_ref::<ProgramError>() {
        matches!(
            e,
            ProgramError::LoadError { .. } | ProgramError::Btf(BtfError::LoadError { .. })
        )
    } else if let Some(e) = e.downcast_ref::<BtfError>() {
        matches!(e, BtfError::LoadError { .. })
    } else {
        false
    }
}

#[cfg(test)]
mod tests {
    use std::io;

    use super::*;
    use crate::trace::TraceError;

    #[test]
    fn a_nested_error_is_one_line_without_repeats() {
        let e = anyhow::Error::new(TraceError::Netns {
            netns: "nb-client".into(),
            source: io::Error::from_raw_os_error(libc::EPERM),
        })
        .context("starting the trace");
        assert_eq!(
            one_line(e.as_ref()),
            "starting the trace: entering netns nb-client: Operation not permitted (os error 1)"
        );
    }

    #[test]
    fn an_aya_error_quoting_its_source_is_said_once() {
        let map = aya::maps::MapError::CreateError {
            name: "EVENTS".into(),
            io_error: io::Error::from_raw_os_error(libc::EPERM),
        };
        let e = TraceError::Load(Aya::from(aya::EbpfError::MapError(map)));
        assert_eq!(
            one_line(&e),
            "loading the eBPF object: map error: failed to create map `EVENTS`: \
             Operation not permitted (os error 1)"
        );
    }
}
