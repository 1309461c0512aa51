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
    rewrite_area(ARGV, |area| {
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
        changed
    });
}

/// Replaces each variable `names`, name and value, in the environment block the process
/// was started with by `*`. `std::env::remove_var` takes a variable out of the
/// environment we pass on, but not out of that block, which the kernel shows in
/// `/proc/PID/environ` to every process of the same user: `serve`'s own jobs could read
/// the token there. The launcher of each `run` is a copy of us until its exec, block
/// included: with only the value starred, the name would show in its environment.
/// Call it after the variables are removed (the block's strings are the ones `getenv`
/// would still return otherwise; once removed, nothing points into them).
pub fn hide_from_environ(names: &[&str]) {
    if names.is_empty() {
        return;
    }
    rewrite_area(ENVIRON, |area| {
        let mut changed = false;
        let mut start = 0;
        while start < area.len() {
            let end = area[start..].iter().position(|&b| b == 0).map_or(area.len(), |at| start + at);
            let entry = &area[start..end];
            if names.iter().any(|name| entry.get(name.len()) == Some(&b'=') && entry.starts_with(name.as_bytes())) {
                area[start..end].fill(b'*');
                changed = true;
            }
            start = end + 1;
        }
        changed
    });
}

/// Fields of `/proc/self/stat` that bound the kernel-visible argv and environment.
const ARGV: (usize, usize) = (48, 49);
const ENVIRON: (usize, usize) = (50, 51);

/// Reads the area between the two addresses `fields` of `/proc/self/stat` through
/// `/proc/self/mem`, lets `edit` change it, and writes it back if `edit` says it did.
fn rewrite_area(fields: (usize, usize), edit: impl FnOnce(&mut [u8]) -> bool) {
    let Some((start, end)) = area(fields) else { return };
    let Ok(mut mem) = OpenOptions::new().read(true).write(true).open("/proc/self/mem") else { return };
    let mut area = vec![0u8; (end - start) as usize];
    if mem.seek(SeekFrom::Start(start)).is_err() || mem.read_exact(&mut area).is_err() {
        return;
    }
    if edit(&mut area) && mem.seek(SeekFrom::Start(start)).is_ok() {
        let _ = mem.write_all(&area);
    }
}

/// The addresses in `fields` of `/proc/self/stat` (numbered from 1, as in proc(5)).
fn area(fields: (usize, usize)) -> Option<(u64, u64)> {
    // Parsed as bytes: our process name (field 2) need not be UTF-8.
    let stat = std::fs::read("/proc/self/stat").ok()?;
    let close = stat.iter().rposition(|&b| b == b')')?;
    let rest = std::str::from_utf8(stat.get(close + 2..)?).ok()?;
    let values: Vec<&str> = rest.split_ascii_whitespace().collect();
    // `rest` starts at field 3, so field N is at index N - 3.
    let start = values.get(fields.0 - 3)?.parse().ok()?;
    let end = values.get(fields.1 - 3)?.parse().ok()?;
    (end > start && end - start < (1 << 24)).then_some((start, end))
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_our_own_argv_and_environment_areas() {
        for fields in [ARGV, ENVIRON] {
            let (start, end) = area(fields).expect("area");
            assert!(end > start);
        }
    }

    #[test]
    fn find_locates_substrings() {
        assert_eq!(find(b"a TOKEN=x b", b"TOKEN=x"), Some(2));
        assert_eq!(find(b"abc", b"x"), None);
    }
}
