//! Atomic file replacement and the per-job lock.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::time::{Duration, Instant};

use crate::error::{Error, Result};

/// Writes `bytes` to a `.tmp-*` file in `dir` (mode 0600), syncs it, and renames it over
/// `dir/name`, so a reader sees the old content or the new, never a mix.
pub fn write_atomic(dir: &Path, name: &str, bytes: &[u8]) -> Result<()> {
    let target = dir.join(name);
    let context = |e| Error::io(format!("write {}", target.display()), e);
    let mut tmp = tempfile::Builder::new().prefix(".tmp-").tempfile_in(dir).map_err(context)?;
    tmp.write_all(bytes).map_err(context)?;
    tmp.as_file().sync_data().map_err(context)?;
    tmp.persist(&target).map_err(|e| context(e.error))?;
    Ok(())
}

/// The most `write_or_overwrite` puts in place: one page, which a file that already
/// exists holds without a new block.
const IN_PLACE_MAX: usize = 4096;

/// `write_atomic`, with a last resort for a small record that must not be lost: when the
/// atomic write fails (a full disk, a quota, a file-size limit: no room for the temporary
/// file), the new content overwrites the existing file in place, padded with spaces to
/// the old length so that no reader ever sees the old tail after the new JSON (trailing
/// spaces are valid JSON). Within its first page this needs no new block, so it works on
/// a disk that is completely full. Not atomic against a crash mid-write, which is why it
/// is only the fallback.
pub fn write_or_overwrite(dir: &Path, name: &str, bytes: &[u8]) -> Result<()> {
    let atomic = write_atomic(dir, name, bytes);
    if atomic.is_ok() || bytes.len() > IN_PLACE_MAX {
        return atomic;
    }
    let target = dir.join(name);
    let overwrite = || -> std::io::Result<()> {
        use std::os::unix::fs::FileExt;
        let file = OpenOptions::new().write(true).custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC).open(&target)?;
        let old_len = usize::try_from(file.metadata()?.len()).unwrap_or(usize::MAX);
        let mut padded = bytes.to_vec();
        padded.resize(old_len.max(bytes.len()), b' ');
        file.write_all_at(&padded, 0)?;
        file.sync_data()
    };
    overwrite().map_err(|e| Error::io(format!("write {} in place", target.display()), e)).or(atomic)
}

/// How long `Lock::take` waits for a lock somebody else holds.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Patience {
    None,
    Within(Duration),
    Forever,
}

/// An exclusive `flock` on `<job>/.lock`, held until dropped. The file is opened
/// close-on-exec so a job or sink never inherits it.
pub struct Lock {
    _file: File,
}

impl Lock {
    pub fn acquire(job_dir: &Path) -> Result<Lock> {
        Lock::acquire_file(&job_dir.join(".lock"))
    }

    /// The same lock on a file of any name (a name's lock under `.names/`).
    pub fn acquire_file(path: &Path) -> Result<Lock> {
        // A blocking lock is taken or fails; it never comes back not taken.
        Lock::take(path, Patience::Forever)?
            .ok_or_else(|| Error::internal(format!("lock {}: not taken", path.display())))
    }

    /// The job lock if nobody holds it now, else `None`: for a reader, which must never
    /// wait on a writer (a stopped `kill` or `tag` would stop it too).
    pub fn try_acquire(job_dir: &Path) -> Result<Option<Lock>> {
        Lock::take(&job_dir.join(".lock"), Patience::None)
    }

    /// The job lock, if it comes free within `patience`; `None` if it does not. A lock is
    /// held for milliseconds, unless its holder is stopped (SIGSTOP, a debugger, a
    /// suspended terminal): nobody should wait for that forever.
    pub fn acquire_within(job_dir: &Path, patience: Duration) -> Result<Option<Lock>> {
        Lock::take(&job_dir.join(".lock"), Patience::Within(patience))
    }

    /// The file is opened once, whatever the wait: a retry must not create `.lock` again
    /// in a directory that an `rm -r` or `delete` is removing.
    fn take(path: &Path, patience: Patience) -> Result<Option<Lock>> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(path)
            .map_err(|e| Error::io(format!("open lock {}", path.display()), e))?;
        let operation = if patience == Patience::Forever { libc::LOCK_EX } else { libc::LOCK_EX | libc::LOCK_NB };
        let deadline = match patience {
            Patience::Within(patience) => Some(Instant::now() + patience),
            _ => None,
        };
        // `flock` has no timeout: a bounded wait polls, at growing intervals of 1 to 50 ms.
        let mut pause = Duration::from_millis(1);
        loop {
            // SAFETY: flock on a descriptor we own.
            if unsafe { libc::flock(file.as_raw_fd(), operation) } == 0 {
                return Ok(Some(Lock { _file: file }));
            }
            let err = std::io::Error::last_os_error();
            match err.kind() {
                std::io::ErrorKind::Interrupted => {}
                std::io::ErrorKind::WouldBlock => {
                    let left = deadline.map_or(Duration::ZERO, |d| d.saturating_duration_since(Instant::now()));
                    if left.is_zero() {
                        return Ok(None);
                    }
                    std::thread::sleep(pause.min(left));
                    pause = (pause * 2).min(Duration::from_millis(50));
                }
                _ => return Err(Error::io(format!("lock {}", path.display()), err)),
            }
        }
    }
}
