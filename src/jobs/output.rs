//! A job's raw output from a byte offset (issue 16, REST `GET /v1/jobs/{id}/output`): one
//! log as it is now, or followed as it grows until the job has ended and its
//! supervisor has drained the pipes, or until a deadline. The log is read a chunk at a
//! time (`follow::Log`), so memory stays bounded whatever its size; appends wake the
//! follower through inotify on the job directory, with `follow::POLL` as the fallback.
//!
//! Offsets count bytes of the log file as it is on disk: a client that got `n` bytes
//! from offset `o` resumes at `o + n`. Under `--max-log-bytes` that file is the current
//! generation: a follow goes on from the start of the next one after a rotation, so its
//! bytes stay in order and complete as long as it keeps up (a generation rotated twice
//! before it was read is gone from disk).

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::time::{Duration, Instant};

use super::follow::{DRAIN, Log, POLL, log_name};
use crate::error::{Code, Error, Result};
use crate::jobstore::read::{Refused, open_log};
use crate::jobstore::watches::Watches;
use crate::jobstore::{JobDir, Root, liveness};
use crate::wire::Stream;

/// One log of one job, opened (and its job resolved) before anything is answered, so
/// that an unknown job is still an error answer rather than a broken stream.
pub struct Output {
    job: JobDir,
    stream: Stream,
    /// `None` while the log does not exist (a job directory without its logs).
    file: Option<File>,
    /// The log's size when it was opened.
    len: u64,
}

/// Resolves the job (id, unique prefix or `@NAME`) and opens the log of `stream`.
pub fn output(root: &Root, job_id: &str, stream: Stream) -> Result<Output> {
    let job = root.lookup(job_id)?;
    let (file, len) = open(&job, stream)?.map_or((None, 0), |(file, len)| (Some(file), len));
    Ok(Output { job, stream, file, len })
}

/// Opens a log through the checks of `jobstore::read` (no symlink, a regular file of
/// ours); `None` when it does not exist.
fn open(job: &JobDir, stream: Stream) -> Result<Option<(File, u64)>> {
    let path = job.file(log_name(stream));
    match open_log(&path) {
        Ok(opened) => Ok(Some(opened)),
        Err(Refused::Io(e)) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(refused @ Refused::NotOurs { .. }) => Err(Error::new(
            Code::InsecureRoot,
            format!("{} is {refused}; remove the job or fix its owner (chown)", path.display()),
        )),
        Err(refused) => Err(Error::internal(format!("read {}: {refused}", path.display()))),
    }
}

impl Output {
    /// The job's full id.
    pub fn job_id(&self) -> &str {
        &self.job.id
    }

    /// The bytes from `offset` to the end the log had when it was opened (none when
    /// `offset` is past it), and how many there are.
    pub fn range(self, offset: u64) -> (Box<dyn Read + Send>, u64) {
        let count = self.len.saturating_sub(offset);
        match self.file {
            // `&File` seeks too: the guard only borrows the file.
            Some(file) if count > 0 && (&file).seek(SeekFrom::Start(offset)).is_ok() => {
                (Box::new(file.take(count)), count)
            }
            _ => (Box::new(std::io::empty()), 0),
        }
    }

    /// Emits the log's bytes from `offset` on as they are written, until the job has
    /// ended and its log is drained, `until` passes, `emit` fails or `go_on` says stop
    /// (asked at least every `follow::POLL`). A job directory removed meanwhile ends it.
    pub fn follow(
        self,
        offset: u64,
        until: Instant,
        emit: &mut dyn FnMut(&[u8]) -> std::io::Result<()>,
        go_on: &mut dyn FnMut() -> bool,
    ) {
        let Output { job, stream, file, .. } = self;
        let mut log = file.map(|file| Log { file, stream, offset });
        let mut emit = |_: Stream, bytes: &[u8], _: u64| emit(bytes);
        let mut watches = Watches::new();
        if let Some(watches) = &mut watches {
            watches.add_with_appends(&job, 0);
        }
        let mut ended_at: Option<Instant> = None;
        loop {
            if log.is_none() {
                log = open(&job, stream).ok().flatten().map(|(file, _)| Log { file, stream, offset });
            }
            if let Some(current) = &mut log
                && !(current.copy_new(&mut emit, Some(until)) && current.follow_rotation(&job, &mut emit, Some(until)))
            {
                return;
            }
            let Ok(state) = super::current(&job) else { return };
            if state.status().is_terminal() {
                let since = *ended_at.get_or_insert_with(Instant::now);
                if !liveness::is_live(&state) || since.elapsed() >= DRAIN {
                    if let Some(log) = &mut log {
                        log.copy_new(&mut emit, Some(until));
                    }
                    return;
                }
            }
            let remaining = until.saturating_duration_since(Instant::now());
            if remaining == Duration::ZERO || !go_on() {
                return;
            }
            match &watches {
                Some(watches) => drop(watches.wait(remaining.min(POLL))),
                None => std::thread::sleep(remaining.min(POLL)),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jobstore;

    fn job_with_log(text: &[u8]) -> (tempfile::TempDir, Root, String) {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = Root::resolve(Some(dir.path().to_str().expect("utf-8 path")));
        let id = "01J9ZK3M8E5PQRSTVWYZ12ABCD".to_string();
        let job = root.job(&id);
        std::fs::create_dir_all(&job.path).expect("job dir");
        std::fs::write(job.file(jobstore::META), "{}").expect("meta");
        std::fs::write(job.file(jobstore::STDOUT_LOG), text).expect("log");
        (dir, root, id)
    }

    fn read_range(root: &Root, id: &str, offset: u64) -> (Vec<u8>, u64) {
        let (mut reader, count) = output(root, id, Stream::Stdout).expect("output").range(offset);
        let mut bytes = Vec::new();
        reader.read_to_end(&mut bytes).expect("read");
        (bytes, count)
    }

    #[test]
    fn ranges_from_an_offset() {
        let (_dir, root, id) = job_with_log(b"hello\nworld\n");
        assert_eq!(read_range(&root, &id, 0), (b"hello\nworld\n".to_vec(), 12));
        assert_eq!(read_range(&root, &id, 6), (b"world\n".to_vec(), 6));
        assert_eq!(read_range(&root, &id, 12), (Vec::new(), 0));
        assert_eq!(read_range(&root, &id, u64::MAX), (Vec::new(), 0));
        // A missing job is an error; a missing log is an empty one.
        assert_eq!(
            output(&root, "01J9ZK3M8E5PQRSTVWYZ12ABCE", Stream::Stdout).err().map(|e| e.code),
            Some(Code::JobNotFound)
        );
        assert_eq!(output(&root, &id, Stream::Stderr).expect("stderr").range(0).1, 0, "no stderr.log: nothing to read");
    }

    #[test]
    fn a_planted_symlink_is_refused() {
        let (_dir, root, id) = job_with_log(b"");
        let log = root.job(&id).file(jobstore::STDERR_LOG);
        std::os::unix::fs::symlink("/etc/passwd", &log).expect("symlink");
        assert_eq!(output(&root, &id, Stream::Stderr).err().map(|e| e.code), Some(Code::Internal));
    }
}
