//! The one place that writes a response to stdout (JSON by default, YAML with `--yaml`).

mod yaml;

use std::io::Write;

pub use yaml::to_yaml;

/// Writes one response. A closed stdout (the reader went away) is not our error: we stay
/// quiet rather than report it on stderr, as Unix filters do.
pub fn print(json: &str, as_yaml: bool) {
    let text = if as_yaml { to_yaml(json).unwrap_or_else(|| format!("{json}\n")) } else { format!("{json}\n") };
    let mut stdout = std::io::stdout().lock();
    let _ = stdout.write_all(text.as_bytes()).and_then(|()| stdout.flush());
}

pub fn print_text(text: &str) {
    let mut stdout = std::io::stdout().lock();
    let _ = stdout.write_all(text.as_bytes()).and_then(|()| stdout.flush());
}
