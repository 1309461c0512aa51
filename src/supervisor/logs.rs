//! The job's three logs as the supervisor writes them: one `write` per chunk, an
//! optional size cap with one rotated generation (`<name>.1`), and a stop on the first
//! storage fault so that the terminal state can still be recorded (README "Output and
//! storage").

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

/// Opens a log for writing without following a symlink planted in its place, truncated
/// (docs/compatibility.md §5.4: the supervisor starts the logs empty).
pub fn open(path: &Path, follow: bool) -> Result<File, String> {
    let flags = if follow { libc::O_CLOEXEC } else { libc::O_CLOEXEC | libc::O_NOFOLLOW };
    let file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .custom_flags(flags | libc::O_NONBLOCK)
        .open(path)
        .map_err(|e| format!("open log {}: {}", path.display(), explain(&e)))?;
    writable_log(file, path)
}

/// Opens a log that `run`'s front-end created empty in the staging directory: no
/// creation (a directory being deleted right after `run` must not get its files back
/// under `rm -r`) and no truncation (nothing has been written yet).
pub fn open_existing(path: &Path) -> Result<File, String> {
    let file = OpenOptions::new()
        .write(true)
        .custom_flags(libc::O_CLOEXEC | libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path)
        .map_err(|e| format!("open log {}: {}", path.display(), explain(&e)))?;
    writable_log(file, path)
}

/// A log must be a regular file (or `/dev/null`, to discard it). A FIFO would stop the
/// writer: its open waits for a reader (hence `O_NONBLOCK` above: the open of one
/// without a reader fails instead, and `run` answered nothing, or held a `serve`
/// thread, for as long as none came), and its writes wait for the reader to read. A
/// terminal can be stopped. Neither may hold up the supervisor, whose first duty is the
/// job's outcome. `O_NONBLOCK` changes nothing for the files that pass.
fn writable_log(file: File, path: &Path) -> Result<File, String> {
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    let meta = file.metadata().map_err(|e| format!("open log {}: {e}", path.display()))?;
    let null = || std::fs::metadata("/dev/null").is_ok_and(|null| null.rdev() == meta.rdev());
    if meta.file_type().is_file() || (meta.file_type().is_char_device() && null()) {
        return Ok(file);
    }
    Err(format!("open log {}: not a regular file", path.display()))
}

/// Creates the next generation after a rotation: the name was just renamed away, so
/// anything found there now was planted, and `O_EXCL` refuses it.
fn create_new(path: &Path) -> Result<File, String> {
    OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(libc::O_CLOEXEC)
        .open(path)
        .map_err(|e| format!("open log {}: {}", path.display(), explain(&e)))
}

/// `ELOOP` from `O_NOFOLLOW` means a symlink sits where a log belongs.
fn explain(error: &std::io::Error) -> String {
    match error.raw_os_error() {
        Some(libc::ELOOP) => "is a symbolic link, refusing to write through it".to_string(),
        // What `O_NONBLOCK` makes of a FIFO without a reader (see `writable_log`).
        Some(libc::ENXIO) => "not a regular file".to_string(),
        _ => error.to_string(),
    }
}

/// One log file with its byte count and optional cap.
pub struct LogFile {
    file: File,
    path: PathBuf,
    written: u64,
}

impl LogFile {
    pub fn new(file: File, path: PathBuf) -> LogFile {
        LogFile { file, path, written: 0 }
    }
}

/// Which log a chunk goes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Which {
    Stdout,
    Stderr,
    Full,
}

/// The three logs. After the first failed write nothing more is written (a full disk
/// must not take the exit status with it), and the error is kept for the state record.
pub struct Logs {
    stdout: LogFile,
    stderr: LogFile,
    full: Option<LogFile>,
    max_bytes: Option<u64>,
    pub error: Option<String>,
    /// Bytes that are no longer on disk: rotated away or never written after an error.
    pub dropped_bytes: u64,
}

impl Logs {
    pub fn new(stdout: LogFile, stderr: LogFile, full: Option<LogFile>, max_bytes: Option<u64>) -> Logs {
        Logs { stdout, stderr, full, max_bytes: max_bytes.filter(|&n| n > 0), error: None, dropped_bytes: 0 }
    }

    pub fn wants_full(&self) -> bool {
        self.full.is_some()
    }

    /// Moves up to `max` bytes from a pipe straight into a stream's log, without copying
    /// them through our memory: for output that nothing else needs to see (no
    /// `full.log`, no output-match). Answers as `read` would: `Ok(0)` at end of file.
    /// A storage fault is recorded like a failed write; the caller then reads the pipe
    /// to discard the rest.
    pub fn splice_from(&mut self, which: Which, pipe: RawFd, max: usize) -> std::io::Result<usize> {
        let max_bytes = self.max_bytes;
        let log = match which {
            Which::Stdout => &mut self.stdout,
            Which::Stderr => &mut self.stderr,
            Which::Full => return Err(std::io::ErrorKind::Unsupported.into()),
        };
        let room = max_bytes.map_or(u64::MAX, |cap| cap.saturating_sub(log.written));
        if room == 0 {
            match rotate(log) {
                Ok(dropped) => self.dropped_bytes += dropped,
                Err(error) => {
                    self.error = Some(error);
                    return Err(std::io::ErrorKind::Other.into());
                }
            }
            return self.splice_from(which, pipe, max);
        }
        let len = usize::try_from(room).unwrap_or(usize::MAX).min(max);
        let flags = libc::SPLICE_F_MOVE | libc::SPLICE_F_NONBLOCK;
        // SAFETY: splice between two descriptors we own, with null offsets (the file's own
        // position advances, as with `write`).
        let n =
            unsafe { libc::splice(pipe, std::ptr::null_mut(), log.file.as_raw_fd(), std::ptr::null_mut(), len, flags) };
        if n >= 0 {
            log.written += n as u64;
            return Ok(n as usize);
        }
        let error = std::io::Error::last_os_error();
        match error.raw_os_error() {
            Some(libc::EAGAIN | libc::EINTR | libc::EINVAL) => {}
            _ => self.error = Some(format!("write {}: {error}", log.path.display())),
        }
        Err(error)
    }

    pub fn write(&mut self, which: Which, mut bytes: &[u8]) {
        if self.error.is_some() {
            self.dropped_bytes += bytes.len() as u64;
            return;
        }
        let max_bytes = self.max_bytes;
        let log = match which {
            Which::Stdout => &mut self.stdout,
            Which::Stderr => &mut self.stderr,
            Which::Full => match &mut self.full {
                Some(log) => log,
                None => return,
            },
        };
        let outcome: Result<u64, String> = (|| {
            let mut dropped = 0;
            while !bytes.is_empty() {
                let room = max_bytes.map_or(u64::MAX, |cap| cap.saturating_sub(log.written));
                if room == 0 {
                    dropped += rotate(log)?;
                    continue;
                }
                let take = usize::try_from(room).unwrap_or(usize::MAX).min(bytes.len());
                log.file.write_all(&bytes[..take]).map_err(|e| format!("write {}: {e}", log.path.display()))?;
                log.written += take as u64;
                bytes = &bytes[take..];
            }
            Ok(dropped)
        })();
        match outcome {
            Ok(dropped) => self.dropped_bytes += dropped,
            Err(error) => {
                self.dropped_bytes += bytes.len() as u64;
                self.error = Some(error);
            }
        }
    }
}

/// Moves a full log to `<name>.1` (replacing the older generation, whose size is
/// returned as dropped) and starts a new empty one.
fn rotate(log: &mut LogFile) -> Result<u64, String> {
    let old = crate::jobstore::rotated_log(&log.path);
    let dropped = std::fs::symlink_metadata(&old).map(|m| m.len()).unwrap_or(0);
    std::fs::rename(&log.path, &old).map_err(|e| format!("rotate {}: {e}", log.path.display()))?;
    log.file = create_new(&log.path)?;
    log.written = 0;
    Ok(dropped)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn log(dir: &Path, name: &str) -> LogFile {
        let path = dir.join(name);
        LogFile::new(open(&path, false).expect("open"), path)
    }

    #[test]
    fn a_cap_keeps_two_generations_and_counts_what_fell_off() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut logs = Logs::new(log(dir.path(), "o"), log(dir.path(), "e"), None, Some(10));
        logs.write(Which::Stdout, b"0123456789abcdefghij");
        logs.write(Which::Stdout, b"KLMNO");
        assert_eq!(std::fs::read(dir.path().join("o")).expect("read"), b"KLMNO");
        assert_eq!(std::fs::read(dir.path().join("o.1")).expect("read"), b"abcdefghij");
        assert_eq!(logs.dropped_bytes, 10);
        assert!(logs.error.is_none());
        logs.write(Which::Full, b"ignored without a full log");
        assert!(!dir.path().join("full").exists());
    }

    #[test]
    fn a_symlink_in_place_of_a_log_is_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let victim = dir.path().join("victim");
        std::fs::write(&victim, "keep").expect("write");
        std::os::unix::fs::symlink(&victim, dir.path().join("stdout.log")).expect("symlink");
        let error = open(&dir.path().join("stdout.log"), false).expect_err("must refuse");
        assert!(error.contains("symbolic link"), "{error}");
        assert_eq!(std::fs::read_to_string(&victim).expect("read"), "keep");
    }
}
