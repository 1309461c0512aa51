//! Output capture (CONTRACT §6.7): raw bytes to `stdout.log`/`stderr.log` as they arrive,
//! and one timestamped record per line to `full.log`.

use std::fs::File;
use std::io::Write;

use crate::time;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    Stdout,
    Stderr,
}

impl Stream {
    pub fn name(self) -> &'static str {
        match self {
            Stream::Stdout => "stdout",
            Stream::Stderr => "stderr",
        }
    }

    fn tag(self) -> &'static str {
        match self {
            Stream::Stdout => "STDOUT",
            Stream::Stderr => "STDERR",
        }
    }
}

/// Splits a byte stream into lines, carrying a partial line between chunks.
#[derive(Default)]
pub struct LineSplitter {
    partial: Vec<u8>,
}

impl LineSplitter {
    /// Feeds a chunk and returns the complete lines in it, without their `\n`.
    pub fn feed(&mut self, chunk: &[u8]) -> Vec<Vec<u8>> {
        let mut lines = Vec::new();
        let mut rest = chunk;
        while let Some(end) = rest.iter().position(|&b| b == b'\n') {
            let mut line = std::mem::take(&mut self.partial);
            line.extend_from_slice(&rest[..end]);
            lines.push(line);
            rest = &rest[end + 1..];
        }
        self.partial.extend_from_slice(rest);
        lines
    }

    /// The unterminated remainder, once the stream has ended.
    pub fn finish(&mut self) -> Option<Vec<u8>> {
        (!self.partial.is_empty()).then(|| std::mem::take(&mut self.partial))
    }
}

/// Formats one `full.log` record.
pub fn record(stream: Stream, line: &str) -> String {
    format!("{} [{}] {}\n", time::now(), stream.tag(), line)
}

/// Appends to a log, ignoring failures: a full disk must not stop the supervisor from
/// recording how the job ended.
pub fn append(file: &mut File, bytes: &[u8]) {
    let _ = file.write_all(bytes);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_lines_across_chunks() {
        let mut splitter = LineSplitter::default();
        assert_eq!(splitter.feed(b"ab"), Vec::<Vec<u8>>::new());
        assert_eq!(splitter.feed(b"c\nd\r\n\ne"), vec![b"abc".to_vec(), b"d\r".to_vec(), b"".to_vec()]);
        assert_eq!(splitter.finish(), Some(b"e".to_vec()));
        assert_eq!(splitter.finish(), None);
    }

    #[test]
    fn records_keep_carriage_returns() {
        let line = record(Stream::Stderr, "x\r");
        assert!(line.ends_with(" [STDERR] x\r\n"), "{line:?}");
        assert_eq!(line.len(), "2026-03-15T12:00:00Z [STDERR] x\r\n".len());
    }
}
