//! Standard output that tolerates a reader going away (`netbench report DIR | head`):
//! a closed pipe ends the output quietly instead of a panic (exit 101), and a running
//! experiment goes on to clean up and write its results as if nothing happened.
use std::io::Write as _;

/// Write `text` to stdout; a broken pipe (or any other write error) is ignored.
pub fn print(text: &str) {
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(text.as_bytes()).and_then(|()| out.flush());
}

/// [`print`] with a newline.
pub fn println(text: &str) {
    let mut out = std::io::stdout().lock();
    let _ = out
        .write_all(text.as_bytes())
        .and_then(|()| out.write_all(b"\n"))
        .and_then(|()| out.flush());
}

/// One line to stderr (an error or a warning), never a panic: a closed or broken stderr
/// loses the line, and the exit code still says what happened.
pub fn eprintln(text: &str) {
    let mut err = std::io::stderr().lock();
    let _ = err
        .write_all(text.as_bytes())
        .and_then(|()| err.write_all(b"\n"))
        .and_then(|()| err.flush());
}
