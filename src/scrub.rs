//! Hiding masked values from our own command line. `--env TOKEN=secret --mask TOKEN`
//! puts the secret on the front-end's argv, which any process of the same user can read
//! in `/proc/PID/cmdline` for as long as the front-end runs (a `run --wait` may run for
//! minutes). Right after parsing, we overwrite the value bytes in the kernel-visible argv
//! area with `*` through `/proc/self/mem`. The window before that is the process's first
//! millisecond; `--env-file` keeps a secret off every command line entirely.

use std::fs::OpenOptions;
use std::io::{Read, Seek, SeekFrom, Write};

/// Replaces every occurrence of each `KEY=value` entry's value with `*` of equal length.
pub fn hide_from_argv(entries: &[String]) {
    if entries.is_empty() {
        return;
    }
    let Some((start, end)) = argv_area() else { return };
    let Ok(mut mem) = OpenOptions::new().read(true).write(true).open("/proc/self/mem") else { return };
    let mut area = vec![0u8; (end - start) as usize];
    if mem.seek(SeekFrom::Start(start)).is_err() || mem.read_exact(&mut area).is_err() {
        return;
    }
    let mut changed = false;
    for entry in entries {
        let Some((key, value)) = entry.split_once('=') else { continue };
        if value.is_empty() {
            continue;
        }
        let needle = entry.as_bytes();
        let mut from = 0;
        while let Some(at) = find(&area[from..], needle) {
            let value_at = from + at + key.len() + 1;
            area[value_at..value_at + value.len()].fill(b'*');
            from = value_at + value.len();
            changed = true;
        }
    }
    if changed && mem.seek(SeekFrom::Start(start)).is_ok() {
        let _ = mem.write_all(&area);
    }
}

/// `arg_start` and `arg_end` (fields 48 and 49 of `/proc/self/stat`).
fn argv_area() -> Option<(u64, u64)> {
    // Parsed as bytes: our process name (field 2) need not be UTF-8.
    let stat = std::fs::read("/proc/self/stat").ok()?;
    let close = stat.iter().rposition(|&b| b == b')')?;
    let rest = std::str::from_utf8(stat.get(close + 2..)?).ok()?;
    let fields: Vec<&str> = rest.split_ascii_whitespace().collect();
    // `rest` starts at field 3, so field N is at index N - 3.
    let start = fields.get(45)?.parse().ok()?;
    let end = fields.get(46)?.parse().ok()?;
    (end > start && end - start < (1 << 24)).then_some((start, end))
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_our_own_argv_area() {
        let (start, end) = argv_area().expect("argv area");
        assert!(end > start);
    }

    #[test]
    fn find_locates_substrings() {
        assert_eq!(find(b"a TOKEN=x b", b"TOKEN=x"), Some(2));
        assert_eq!(find(b"abc", b"x"), None);
    }
}
