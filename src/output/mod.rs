//! The one place that writes a response to stdout (JSON by default, YAML with `--yaml`).

mod yaml;

use std::io::Write;

pub use yaml::to_yaml;

/// Writes one response. A closed stdout (the reader went away) is not our error: we stay
/// quiet rather than report it on stderr, as Unix filters do.
pub fn print(json: &str, as_yaml: bool) {
    if as_yaml {
        return print_text(&to_yaml(json).unwrap_or_else(|| format!("{json}\n")));
    }
    // Not copied to append the newline: a `list` answer can be megabytes.
    let mut stdout = std::io::stdout().lock();
    let _ = stdout.write_all(json.as_bytes()).and_then(|()| stdout.write_all(b"\n")).and_then(|()| stdout.flush());
}

pub fn print_text(text: &str) {
    let mut stdout = std::io::stdout().lock();
    let _ = stdout.write_all(text.as_bytes()).and_then(|()| stdout.flush());
}
