//! Output capture (docs/compatibility.md §6.7): turning the bytes of one stream into `full.log`
//! records, in bounded memory and without per-line system calls.
//!
//! A line is held only up to `LINE_CAP` bytes. A longer line is written as several
//! records: the first with the usual `[STDOUT]`/`[STDERR]` tag, each following piece
//! with `[STDOUT+]`/`[STDERR+]` ("continues the previous record of this stream"), so
//! the supervisor's memory does not grow with the output and a 0.1.18 reader that
//! matches `[STDOUT] ` still sees every line's start.

use crate::time;
pub use crate::wire::Stream;

/// The longest piece of a line kept in memory, written as one record and shown to
/// output-match.
pub const LINE_CAP: usize = 64 * 1024;

impl Stream {
    /// The record tag of `full.log`; `+` marks the continuation of a capped line.
    fn tag(self, continued: bool) -> &'static [u8] {
        match (self, continued) {
            (Stream::Stdout, false) => b" [STDOUT] ",
            (Stream::Stderr, false) => b" [STDERR] ",
            (Stream::Stdout, true) => b" [STDOUT+] ",
            (Stream::Stderr, true) => b" [STDERR+] ",
        }
    }
}

/// One piece of output handed to the caller: a whole line, or a piece of a long one.
#[derive(Debug, PartialEq, Eq)]
pub struct Piece<'a> {
    pub bytes: &'a [u8],
    /// True for the second and later pieces of a line longer than `LINE_CAP`.
    pub continued: bool,
    /// Already known to be valid UTF-8 (validated with the whole chunk), so the record
    /// needs no decoding.
    pub valid: bool,
}

/// Splits a byte stream into lines, carrying at most `LINE_CAP` bytes of a partial line
/// between chunks.
#[derive(Default)]
pub struct LineSplitter {
    partial: Vec<u8>,
    continued: bool,
}

impl LineSplitter {
    /// Feeds a chunk and calls `emit` for every complete line (without its `\n`) and for
    /// every `LINE_CAP` piece of a line that grows past the cap.
    pub fn feed(&mut self, chunk: &[u8], emit: &mut impl FnMut(Piece)) {
        // One validation of the whole chunk instead of one per line: a line that lies
        // within the valid prefix is valid.
        let valid_up_to = match std::str::from_utf8(chunk) {
            Ok(_) => chunk.len(),
            Err(e) => e.valid_up_to(),
        };
        let mut rest = chunk;
        while let Some(end) = find_newline(rest) {
            let line = &rest[..end];
            if self.partial.is_empty() && line.len() <= LINE_CAP {
                let valid = chunk.len() - rest.len() + end <= valid_up_to;
                emit(Piece { bytes: line, continued: self.continued, valid });
            } else {
                self.hold(line, emit);
                emit(Piece { bytes: &self.partial, continued: self.continued, valid: false });
                self.partial.clear();
            }
            self.continued = false;
            rest = &rest[end + 1..];
        }
        self.hold(rest, emit);
    }

    /// The unterminated remainder, once the stream has ended.
    pub fn finish(&mut self, emit: &mut impl FnMut(Piece)) {
        if !self.partial.is_empty() {
            emit(Piece { bytes: &self.partial, continued: self.continued, valid: false });
        }
        self.partial = Vec::new();
        self.continued = false;
    }

    /// Appends to the partial line, emitting full `LINE_CAP` pieces as they fill. A piece
    /// ends on a UTF-8 character boundary where the text allows it, so that a long line
    /// of valid text decodes without replacement characters at the cuts.
    fn hold(&mut self, mut bytes: &[u8], emit: &mut impl FnMut(Piece)) {
        while self.partial.len() + bytes.len() > LINE_CAP {
            let take = LINE_CAP - self.partial.len();
            self.partial.extend_from_slice(&bytes[..take]);
            bytes = &bytes[take..];
            let cut = char_boundary(&self.partial);
            emit(Piece { bytes: &self.partial[..cut], continued: self.continued, valid: false });
            self.continued = true;
            self.partial.drain(..cut);
        }
        self.partial.extend_from_slice(bytes);
    }
}

/// The length of `bytes` without a trailing incomplete UTF-8 sequence (at most 3 bytes).
fn char_boundary(bytes: &[u8]) -> usize {
    let len = bytes.len();
    for back in 1..=3.min(len) {
        let byte = bytes[len - back];
        if byte & 0xC0 == 0x80 {
            continue;
        }
        let needed = match byte {
            0xC0..=0xDF => 2,
            0xE0..=0xEF => 3,
            0xF0..=0xF7 => 4,
            _ => 1,
        };
        return if back < needed && len - back > 0 { len - back } else { len };
    }
    len
}

/// The index of the first `\n`, a word at a time: heavy output is mostly newline search.
fn find_newline(bytes: &[u8]) -> Option<usize> {
    const WORD: usize = std::mem::size_of::<usize>();
    const LOW: usize = usize::from_ne_bytes([0x01; WORD]);
    const HIGH: usize = usize::from_ne_bytes([0x80; WORD]);
    const NEWLINES: usize = usize::from_ne_bytes([b'\n'; WORD]);
    let mut index = 0;
    while index + WORD <= bytes.len() {
        let mut word = [0u8; WORD];
        word.copy_from_slice(&bytes[index..index + WORD]);
        let x = usize::from_ne_bytes(word) ^ NEWLINES;
        // Classic "has zero byte": nonzero exactly when some byte of `x` is zero.
        if x.wrapping_sub(LOW) & !x & HIGH != 0 {
            break;
        }
        index += WORD;
    }
    bytes[index..].iter().position(|&b| b == b'\n').map(|i| index + i)
}

/// The timestamp (20 bytes) and tag (10 bytes) that start a record that is not a
/// continuation: a fixed size, so copying it is a few moves rather than a call.
const PREFIX: usize = 30;

/// Lines up to this length are copied without a call (see `Records::push`).
const SHORT: usize = 32;

/// Builds the `full.log` records of one chunk in one buffer, with the timestamp
/// formatted once per second rather than once per line.
pub struct Records {
    pub buffer: Vec<u8>,
    stamp_second: i64,
    stamp: String,
    prefixes: [[u8; PREFIX]; 2],
}

impl Default for Records {
    fn default() -> Records {
        Records { buffer: Vec::new(), stamp_second: i64::MIN, stamp: String::new(), prefixes: [[0; PREFIX]; 2] }
    }
}

impl Records {
    /// Reads the clock; called once per chunk.
    pub fn tick(&mut self) {
        let now = time::unix_now();
        if now != self.stamp_second {
            self.stamp_second = now;
            self.stamp = time::format(now);
            for (prefix, stream) in self.prefixes.iter_mut().zip([Stream::Stdout, Stream::Stderr]) {
                let text = [self.stamp.as_bytes(), stream.tag(false)].concat();
                if text.len() == PREFIX {
                    prefix.copy_from_slice(&text);
                }
            }
        }
    }

    /// Appends the record of one piece, decoded as UTF-8 with replacement characters.
    pub fn push(&mut self, stream: Stream, piece: &Piece) {
        if piece.continued || self.stamp.len() + 10 != PREFIX {
            self.buffer.extend_from_slice(self.stamp.as_bytes());
            self.buffer.extend_from_slice(stream.tag(piece.continued));
        } else {
            self.buffer.extend_from_slice(&self.prefixes[stream as usize]);
        }
        if piece.valid && piece.bytes.len() <= SHORT {
            // Short lines are copied byte by byte: a `memcpy` call per line is what
            // dominates with musl's `memcpy`, and most lines of chatty output are short.
            self.buffer.reserve(SHORT + 1);
            for &byte in piece.bytes {
                self.buffer.push(byte);
            }
        } else if piece.valid {
            self.buffer.extend_from_slice(piece.bytes);
        } else {
            self.buffer.extend_from_slice(String::from_utf8_lossy(piece.bytes).as_bytes());
        }
        self.buffer.push(b'\n');
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(chunks: &[&[u8]]) -> Vec<(Vec<u8>, bool)> {
        let mut splitter = LineSplitter::default();
        let mut out = Vec::new();
        let mut emit = |piece: Piece| {
            assert!(!piece.valid || std::str::from_utf8(piece.bytes).is_ok());
            out.push((piece.bytes.to_vec(), piece.continued))
        };
        for chunk in chunks {
            splitter.feed(chunk, &mut emit);
        }
        splitter.finish(&mut emit);
        out
    }

    #[test]
    fn splits_lines_across_chunks() {
        let lines = split(&[b"ab", b"c\nd\r\n\ne"]);
        let expected: Vec<(Vec<u8>, bool)> =
            vec![(b"abc".to_vec(), false), (b"d\r".to_vec(), false), (b"".to_vec(), false), (b"e".to_vec(), false)];
        assert_eq!(lines, expected);
    }

    #[test]
    fn long_lines_are_cut_into_continued_pieces_of_the_cap() {
        let long = vec![b'x'; 2 * LINE_CAP + 5];
        let mut input = long.clone();
        input.extend_from_slice(b"\nshort\n");
        for chunks in [vec![&input[..]], input.chunks(1000).collect::<Vec<_>>()] {
            let pieces = split(&chunks);
            let shape: Vec<(usize, bool)> = pieces.iter().map(|(b, c)| (b.len(), *c)).collect();
            assert_eq!(shape, [(LINE_CAP, false), (LINE_CAP, true), (5, true), (5, false)]);
        }
    }

    #[test]
    fn only_lines_before_invalid_bytes_skip_decoding() {
        let mut splitter = LineSplitter::default();
        let mut valid = Vec::new();
        splitter.feed(b"a\n\xff\nb\n\xc3", &mut |piece: Piece| valid.push(piece.valid));
        splitter.feed(b"\xa9\n", &mut |piece: Piece| valid.push(piece.valid));
        assert_eq!(valid, [true, false, false, false]);
    }

    #[test]
    fn an_exact_cap_line_is_one_piece() {
        let mut input = vec![b'y'; LINE_CAP];
        input.push(b'\n');
        assert_eq!(split(&[&input]).len(), 1);
    }

    #[test]
    fn cuts_fall_on_character_boundaries() {
        let mut input = vec![b'a'; LINE_CAP - 1];
        input.extend_from_slice("é".as_bytes());
        input.extend_from_slice(b"\n");
        let pieces = split(&[&input]);
        assert_eq!(pieces[0].0.len(), LINE_CAP - 1);
        assert_eq!(pieces[1].0, "é".as_bytes());
        assert!(std::str::from_utf8(&pieces[0].0).is_ok());
    }

    #[test]
    fn newline_search_matches_a_plain_scan() {
        let text = b"0123456789abcdef\n0123\n\n";
        for start in 0..text.len() {
            assert_eq!(find_newline(&text[start..]), text[start..].iter().position(|&b| b == b'\n'));
        }
    }

    #[test]
    fn records_keep_carriage_returns_and_mark_continuations() {
        let mut records = Records::default();
        records.tick();
        records.push(Stream::Stderr, &Piece { bytes: b"x\r", continued: false, valid: true });
        records.push(Stream::Stdout, &Piece { bytes: b"\xff", continued: true, valid: false });
        records.push(Stream::Stdout, &Piece { bytes: b"\xfe", continued: false, valid: false });
        let text = String::from_utf8(records.buffer).expect("utf-8");
        let lines: Vec<&str> = text.split('\n').collect();
        assert!(lines[0].ends_with(" [STDERR] x\r"), "{text:?}");
        assert_eq!(lines[0].len(), "2026-03-15T12:00:00Z [STDERR] x\r".len());
        assert!(lines[1].ends_with(" [STDOUT+] \u{FFFD}"), "{text:?}");
        assert!(lines[2].ends_with(" [STDOUT] \u{FFFD}"), "{text:?}");
    }
}
