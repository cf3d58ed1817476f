//! Standard output that tolerates a reader going away (`netbench report DIR | head`):
//! a closed pipe ends the output quietly instead of a panic (exit 101), and a running
//! experiment goes on to clean up and write its results as if nothing happened.
use std::io::Write;

/// Write `parts` and flush; a broken pipe (or any other write error) is ignored.
fn write_quietly(mut w: impl Write, parts: &[&[u8]]) {
    let _ = parts
        .iter()
        .try_for_each(|p| w.write_all(p))
        .and_then(|()| w.flush());
}

/// Write `text` to stdout; a broken pipe (or any other write error) is ignored.
pub fn print(text: &str) {
    write_quietly(std::io::stdout().lock(), &[text.as_bytes()]);
}

/// [`print`] with a newline.
pub fn println(text: &str) {
    write_quietly(std::io::stdout().lock(), &[text.as_bytes(), b"\n"]);
}

/// One line to stderr (an error or a warning), never a panic: a closed or broken stderr
/// loses the line, and the exit code still says what happened.
pub fn eprintln(text: &str) {
    write_quietly(std::io::stderr().lock(), &[text.as_bytes(), b"\n"]);
}
