//! Atomic file replacement and the per-job lock.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

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
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(path)
            .map_err(|e| Error::io(format!("open lock {}", path.display()), e))?;
        loop {
            // SAFETY: flock on a descriptor we own.
            if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX) } == 0 {
                return Ok(Lock { _file: file });
            }
            let err = std::io::Error::last_os_error();
            if err.kind() != std::io::ErrorKind::Interrupted {
                return Err(Error::io(format!("lock {}", path.display()), err));
            }
        }
    }
}
