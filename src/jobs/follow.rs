//! `tail --follow` (issue 14 item 5): a job's output as it is written, from the last N
//! lines of each log on, until the job has ended and its supervisor has drained the
//! pipes. Appends wake us through inotify on the job directory (one descriptor, no busy
//! loop); the follower only reads the logs, so it never blocks or slows the job. A log
//! rotated by `--max-log-bytes` is read to its end, then the new generation from its
//! start (`Log::follow_rotation`, shared with the REST output stream of `output.rs`).
//!
//! The engine does not print: each piece of output goes to the caller's `emit`, and an
//! `emit` that fails (the reader went away) ends the follow.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::time::{Duration, Instant};

use crate::error::{Error, Result};
use crate::jobstore::read::open_log;
use crate::jobstore::watches::Watches;
use crate::jobstore::{self, JobDir, Root, liveness};
use crate::wire::{State, Stream};

/// The fallback poll, and the cadence of the liveness check.
pub(super) const POLL: Duration = Duration::from_millis(200);
/// How long a finished job's supervisor may still be draining its pipes.
pub(super) const DRAIN: Duration = Duration::from_millis(2500);
/// Bytes read from a log per step.
const CHUNK: usize = 1 << 16;

/// Receives each piece of output: its stream, the bytes, and the log offset of the first.
pub type Emit<'a> = dyn FnMut(Stream, &[u8], u64) -> std::io::Result<()> + 'a;

#[derive(Debug, Clone)]
pub struct FollowRequest {
    pub job_id: String,
    /// Start this many lines back in each log; 0 starts at the beginning.
    pub tail_lines: u64,
}

/// Follows the job until it ends; returns its final state. `emit` gets each piece with
/// its stream and the byte offset of its first byte in that log.
pub fn follow(root: &Root, request: &FollowRequest, emit: &mut Emit<'_>) -> Result<State> {
    let job = root.lookup(&request.job_id)?;
    let gone = || Error::not_found(&request.job_id);
    let mut logs = Vec::new();
    for (name, stream) in [(jobstore::STDOUT_LOG, Stream::Stdout), (jobstore::STDERR_LOG, Stream::Stderr)] {
        let mut log = Log { file: File::open(job.file(name)).map_err(|_| gone())?, stream, offset: 0 };
        log.offset = log.start_of_last_lines(request.tail_lines);
        logs.push(log);
    }
    let mut watches = Watches::new();
    if let Some(watches) = &mut watches {
        watches.add_with_appends(&job, 0);
    }
    let mut ended_at: Option<Instant> = None;
    loop {
        for log in &mut logs {
            if !log.copy_new(emit, None) || !log.follow_rotation(&job, emit, None) {
                return super::current(&job);
            }
        }
        if !job.path.exists() {
            return Err(gone());
        }
        let state = super::current(&job).map_err(|_| gone())?;
        if state.status().is_terminal() {
            let since = *ended_at.get_or_insert_with(Instant::now);
            if !liveness::is_live(&state) || since.elapsed() >= DRAIN {
                for log in &mut logs {
                    log.copy_new(emit, None);
                }
                return Ok(state);
            }
        }
        match &watches {
            Some(watches) => drop(watches.wait(POLL)),
            None => std::thread::sleep(POLL),
        }
    }
}

/// One log being followed: where the next byte to emit is.
pub(super) struct Log {
    pub(super) file: File,
    pub(super) stream: Stream,
    pub(super) offset: u64,
}

impl Log {
    /// Emits what the log gained, a chunk at a time, up to its end or until `until`
    /// passes (a job that writes faster than the reader takes would otherwise keep us
    /// here); `false` when `emit` failed.
    pub(super) fn copy_new(&mut self, emit: &mut Emit<'_>, until: Option<Instant>) -> bool {
        let mut buf = vec![0u8; CHUNK];
        loop {
            if until.is_some_and(|until| Instant::now() >= until) {
                return true;
            }
            if self.file.seek(SeekFrom::Start(self.offset)).is_err() {
                return true;
            }
            let n = match self.file.read(&mut buf) {
                Ok(0) | Err(_) => return true,
                Ok(n) => n,
            };
            if emit(self.stream, &buf[..n], self.offset).is_err() {
                return false;
            }
            self.offset += n as u64;
        }
    }

    /// After a rotation (`--max-log-bytes`) the held generation gets no more writes: emits
    /// what reached it since the last read, then reads the new generation from its start
    /// (offsets count within the current file). Nothing to do without a rotation; `false`
    /// when `emit` failed.
    pub(super) fn follow_rotation(&mut self, job: &JobDir, emit: &mut Emit<'_>, until: Option<Instant>) -> bool {
        if !replaced(job, self.stream, &self.file) {
            return true;
        }
        if !self.copy_new(emit, until) {
            return false;
        }
        // Not there yet (renamed away, not yet created): the next round tries again.
        let Ok((file, _)) = open_log(&job.file(log_name(self.stream))) else { return true };
        (self.file, self.offset) = (file, 0);
        self.copy_new(emit, until)
    }

    /// The offset where the last `lines` lines begin (an unterminated last line counts
    /// as one); 0 for all of it. Reads backwards a chunk at a time.
    fn start_of_last_lines(&mut self, lines: u64) -> u64 {
        let Ok(len) = self.file.seek(SeekFrom::End(0)) else { return 0 };
        if lines == 0 || len == 0 {
            return 0;
        }
        let mut end = len;
        // A final newline ends the last line; it does not start another.
        let mut wanted = lines + 1;
        let mut skip_last = true;
        let mut buf = vec![0u8; CHUNK];
        while end > 0 {
            let start = end.saturating_sub(CHUNK as u64);
            let size = (end - start) as usize;
            if self.file.seek(SeekFrom::Start(start)).is_err() || self.file.read_exact(&mut buf[..size]).is_err() {
                return 0;
            }
            for i in (0..size).rev() {
                if buf[i] != b'\n' {
                    skip_last = false;
                    continue;
                }
                if std::mem::take(&mut skip_last) && start + i as u64 == len - 1 {
                    continue;
                }
                wanted -= 1;
                if wanted == 1 {
                    return start + i as u64 + 1;
                }
            }
            end = start;
        }
        0
    }
}

/// Has the log's name been given to another file (a rotation) since `held` was opened?
/// Not while the name is missing: the new generation is about to be created.
fn replaced(job: &JobDir, stream: Stream, held: &File) -> bool {
    use std::os::unix::fs::MetadataExt;
    let Ok(now) = std::fs::symlink_metadata(job.file(log_name(stream))) else { return false };
    held.metadata().is_ok_and(|held| (held.dev(), held.ino()) != (now.dev(), now.ino()))
}

pub(super) fn log_name(stream: Stream) -> &'static str {
    match stream {
        Stream::Stdout => jobstore::STDOUT_LOG,
        Stream::Stderr => jobstore::STDERR_LOG,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn start(text: &str, lines: u64) -> u64 {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("log");
        std::fs::write(&path, text).expect("write");
        Log { file: File::open(&path).expect("open"), stream: Stream::Stdout, offset: 0 }.start_of_last_lines(lines)
    }

    #[test]
    fn starts_n_lines_back() {
        assert_eq!(start("a\nb\nc\n", 2), 2);
        assert_eq!(start("a\nb\nc", 2), 2);
        assert_eq!(start("a\nb\nc\n", 1), 4);
        assert_eq!(start("a\nb\nc\n", 3), 0);
        assert_eq!(start("a\nb\nc\n", 10), 0);
        assert_eq!(start("a\nb\nc\n", 0), 0);
        assert_eq!(start("", 5), 0);
        let long: String = (0..100_000).map(|i| format!("{i}\n")).collect();
        let tail = &long[start(&long, 3) as usize..];
        assert_eq!(tail, "99997\n99998\n99999\n");
    }
}
