//! The one place that writes a response to stdout (JSON by default, YAML with `--yaml`).

mod yaml;

use std::io::Write;

pub use yaml::to_yaml;

/// Writes one response. The caller turns a failed write (a full disk, a closed stdout, a
/// reader that went away) into exit status 1: the answer is lost, so the call must not
/// look successful.
pub fn print(json: &str, as_yaml: bool) -> std::io::Result<()> {
    if as_yaml {
        return print_text(&to_yaml(json).unwrap_or_else(|| format!("{json}\n")));
    }
    // Not copied to append the newline: a `list` answer can be megabytes.
    let mut stdout = std::io::stdout().lock();
    stdout.write_all(json.as_bytes()).and_then(|()| stdout.write_all(b"\n")).and_then(|()| stdout.flush())
}

/// Writes one response as `write` produces it, through a buffer of 64 KiB.
pub fn print_with(write: impl FnOnce(&mut dyn Write) -> std::io::Result<()>) -> std::io::Result<()> {
    let mut stdout = std::io::BufWriter::with_capacity(64 * 1024, std::io::stdout().lock());
    write(&mut stdout)?;
    stdout.flush()
}

pub fn print_text(text: &str) -> std::io::Result<()> {
    let mut stdout = std::io::stdout().lock();
    stdout.write_all(text.as_bytes()).and_then(|()| stdout.flush())
}
