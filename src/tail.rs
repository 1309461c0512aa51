//! The tail algorithm (docs/compatibility.md §7.1), shared by `tail`, snapshots and HTTP `/tail`.

use std::io::{Read, Seek, SeekFrom};
use std::path::Path;

use crate::wire::Snapshot;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tail {
    pub text: String,
    pub truncated: bool,
    pub observed_bytes: u64,
    pub included_bytes: u64,
}

/// Tails one log. Only the last `max_bytes` bytes are read, which gives the same result
/// as reading the whole file and cutting it, without reading gigabytes to show 64 KiB.
/// A log capped by `--max-log-bytes` continues its rotated generation `<name>.1`, so
/// the tail reaches into it when the current file is shorter than `max_bytes`.
pub fn tail_file(path: &Path, tail_lines: u64, max_bytes: u64) -> Tail {
    let (current, current_len) = last_bytes(path, max_bytes);
    let mut observed_bytes = current_len;
    let mut bytes = current;
    let room = max_bytes.saturating_sub(bytes.len() as u64);
    if room > 0 {
        let (mut earlier, earlier_len) = last_bytes(&crate::jobstore::rotated_log(path), room);
        if earlier_len > 0 {
            observed_bytes += earlier_len;
            earlier.append(&mut bytes);
            bytes = earlier;
        }
    } else if let Ok(meta) = std::fs::symlink_metadata(crate::jobstore::rotated_log(path)) {
        observed_bytes += meta.len();
    }
    let byte_truncated = observed_bytes > max_bytes;
    let (text, line_truncated) = tail_text(&bytes, tail_lines);
    Tail { included_bytes: text.len() as u64, text, truncated: byte_truncated || line_truncated, observed_bytes }
}

/// The last `max_bytes` bytes of a file (none if it is missing) and its length.
fn last_bytes(path: &Path, max_bytes: u64) -> (Vec<u8>, u64) {
    let mut bytes = Vec::new();
    let Ok((mut file, len)) = crate::jobstore::read::open_log(path) else { return (bytes, 0) };
    let keep = len.min(max_bytes);
    if file.seek(SeekFrom::End(-(keep as i64))).is_ok() {
        let _ = file.take(keep).read_to_end(&mut bytes);
    }
    (bytes, len)
}

/// Decodes lossily and keeps the last `tail_lines` lines (0: all of them). Returns the
/// text and whether lines were dropped.
///
/// One rule whatever the limit (docs/compatibility.md §7.1, "Our behaviour"): lines end
/// at `\n`, a `\r` before it is dropped, and the text never ends with the log's final
/// newline. 0.1.18 returned the raw text for 0, so `--tail-lines 0` and the default
/// gave different texts for the same log.
pub fn tail_text(bytes: &[u8], tail_lines: u64) -> (String, bool) {
    let text = String::from_utf8_lossy(bytes);
    let (body, ends_with_newline) = match text.strip_suffix('\n') {
        Some(body) => (body, true),
        None => (&*text, false),
    };
    if body.is_empty() && !ends_with_newline {
        return (String::new(), false);
    }
    let segments: Vec<&str> = body.split('\n').collect();
    let last = segments.len() - 1;
    let lines: Vec<&str> = segments
        .iter()
        .enumerate()
        .map(|(i, line)| if i < last || ends_with_newline { line.strip_suffix('\r').unwrap_or(line) } else { line })
        .collect();
    let limit = if tail_lines == 0 { usize::MAX } else { usize::try_from(tail_lines).unwrap_or(usize::MAX) };
    let keep = limit.min(lines.len());
    (lines[lines.len() - keep..].join("\n"), lines.len() > keep)
}

/// A snapshot of both logs. `log_error` is the state's record of a storage fault: the
/// logs are then known to be cut short, whatever their tails look like.
pub fn snapshot(
    stdout_log: &Path,
    stderr_log: &Path,
    tail_lines: u64,
    max_bytes: u64,
    log_error: Option<String>,
) -> Snapshot {
    let out = tail_file(stdout_log, tail_lines, max_bytes);
    let err = tail_file(stderr_log, tail_lines, max_bytes);
    Snapshot {
        truncated: out.truncated || err.truncated || log_error.is_some(),
        log_error,
        encoding: "utf-8-lossy",
        stdout_observed_bytes: out.observed_bytes,
        stderr_observed_bytes: err.observed_bytes,
        stdout_included_bytes: out.included_bytes,
        stderr_included_bytes: err.included_bytes,
        stdout_tail: out.text,
        stderr_tail: err.text,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tail_of(bytes: &[u8], lines: u64, max_bytes: u64) -> (String, bool) {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("log");
        std::fs::write(&path, bytes).expect("write");
        let tail = tail_file(&path, lines, max_bytes);
        assert_eq!(tail.observed_bytes, bytes.len() as u64);
        assert_eq!(tail.included_bytes, tail.text.len() as u64);
        (tail.text, tail.truncated)
    }

    #[test]
    fn contract_examples() {
        let cases: &[(&[u8], u64, u64, &str, bool)] = &[
            (b"hello\n", 50, 65536, "hello", false),
            (b"l1\r\nl2\nno-newline", 50, 65536, "l1\nl2\nno-newline", false),
            (b"\n\n\n", 50, 65536, "\n\n", false),
            (b"a\n\nb\n\n", 50, 65536, "a\n\nb\n", false),
            (b"a\n\nb\n\n", 1, 65536, "", true),
            ("héllo".as_bytes(), 50, 4, "\u{FFFD}llo", true),
            (b"anything", 50, 0, "", true),
            (b"", 50, 65536, "", false),
            (b"x\r", 50, 65536, "x\r", false),
            (b"a\r\nb\r\n", 0, 65536, "a\nb", false),
            (b"a\n", 0, 65536, "a", false),
            (b"\n\n\n", 0, 65536, "\n\n", false),
            (b"x\r", 0, 65536, "x\r", false),
            (b"1\n2\n3\n", 2, 65536, "2\n3", true),
        ];
        for (bytes, lines, max, text, truncated) in cases {
            assert_eq!(tail_of(bytes, *lines, *max), (text.to_string(), *truncated), "{bytes:?} n={lines} m={max}");
        }
    }

    #[test]
    fn the_tail_reaches_into_the_rotated_generation() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("stdout.log");
        std::fs::write(dir.path().join("stdout.log.1"), b"1\n2\n3\n").expect("write");
        std::fs::write(&path, b"4\n").expect("write");
        let tail = tail_file(&path, 3, 65536);
        assert_eq!((tail.text.as_str(), tail.truncated, tail.observed_bytes), ("2\n3\n4", true, 8));
        let tail = tail_file(&path, 0, 4);
        assert_eq!((tail.text.as_str(), tail.truncated), ("3\n4", true));
    }

    #[test]
    fn missing_file_is_empty() {
        let tail = tail_file(Path::new("/nonexistent/agent-exec/log"), 50, 10);
        assert_eq!(tail, Tail { text: String::new(), truncated: false, observed_bytes: 0, included_bytes: 0 });
    }
}
