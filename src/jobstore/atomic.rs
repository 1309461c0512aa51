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
enum Patience<'a> {
    None,
    /// At most this long, for one holder if holders are told apart by the job's files in
    /// this directory, else in all.
    Within(Duration, Option<&'a Path>),
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

    /// The job lock, unless one holder keeps it for `patience`; `None` then. A lock is
    /// held for milliseconds, unless its holder is stopped (SIGSTOP, a debugger, a
    /// suspended terminal): nobody should wait for that forever. The wait starts over
    /// whenever the lock has changed hands, as the job's files show (every holder that
    /// changes anything replaces `state.json` or `meta.json`): a queue of a thousand
    /// writers on one job takes longer than `patience` in all, and each of them is
    /// served.
    pub fn acquire_within(job_dir: &Path, patience: Duration) -> Result<Option<Lock>> {
        Lock::take(&job_dir.join(".lock"), Patience::Within(patience, Some(job_dir)))
    }

    /// The job lock if it comes free within `patience` in all, however often it changes
    /// hands meanwhile: for a wait that must end by a deadline (the supervisor's).
    pub fn acquire_before(job_dir: &Path, patience: Duration) -> Result<Option<Lock>> {
        Lock::take(&job_dir.join(".lock"), Patience::Within(patience, None))
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
        let mut deadline = match patience {
            Patience::Within(patience, _) => Some(Instant::now() + patience),
            _ => None,
        };
        // The job's records as the current holder left them; read only once the lock is
        // found taken, so that an uncontended lock costs no `stat`.
        let mut seen = None;
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
                    if let Patience::Within(patience, Some(dir)) = patience {
                        let now = records_of(dir);
                        if seen.as_ref().is_some_and(|seen| *seen != now) {
                            deadline = Some(Instant::now() + patience);
                        }
                        seen = Some(now);
                    }
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

/// What tells one holder of a job's lock from the next: the identity and change time of
/// `state.json` and `meta.json`, which every writer replaces.
fn records_of(dir: &Path) -> Vec<Option<(u64, i64, i64)>> {
    use std::os::unix::fs::MetadataExt;
    [super::STATE, super::META]
        .iter()
        .map(|name| std::fs::symlink_metadata(dir.join(name)).ok().map(|m| (m.ino(), m.ctime(), m.ctime_nsec())))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Holders that each keep the lock a while and change the job's record: `acquire_within`
    /// waits for all of them as long as the lock keeps changing hands, and gives up on one
    /// holder that keeps it; `acquire_before` gives up at its deadline whatever the holder
    /// does.
    #[test]
    fn a_bounded_wait_starts_over_when_the_lock_changes_hands() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let job = dir.path().to_path_buf();
        let hold = Duration::from_millis(300);
        let queue = |holders: usize| {
            let first = Lock::acquire(&job).unwrap_or_else(|e| panic!("{}", e.message));
            let job = job.clone();
            std::thread::spawn(move || {
                let mut held = first;
                for turn in 0..holders {
                    std::thread::sleep(hold);
                    // The next holder takes over at once (a fresh descriptor: another process).
                    drop(held);
                    held = Lock::acquire(&job).unwrap_or_else(|e| panic!("{}", e.message));
                    std::fs::write(job.join("state.json"), format!("{turn}")).unwrap_or_else(|e| panic!("{e}"));
                }
                std::thread::sleep(hold);
                drop(held);
            })
        };
        // Five holders of 300 ms each, 1.8 s in all, against a wait of one second per holder.
        let holders = queue(5);
        let taken = Lock::acquire_within(&job, Duration::from_secs(1)).unwrap_or_else(|e| panic!("{}", e.message));
        assert!(taken.is_some(), "gave up while the lock kept changing hands");
        drop(taken);
        holders.join().unwrap_or_else(|_| panic!("holders"));
        // One holder that keeps changing the record for 1.8 s: a deadline in all is kept.
        let first = Lock::acquire(&job).unwrap_or_else(|e| panic!("{}", e.message));
        let busy = job.clone();
        let holder = std::thread::spawn(move || {
            for turn in 0..6 {
                std::thread::sleep(hold);
                std::fs::write(busy.join("state.json"), format!("{turn}")).unwrap_or_else(|e| panic!("{e}"));
            }
            drop(first);
        });
        let taken = Lock::acquire_before(&job, Duration::from_secs(1)).unwrap_or_else(|e| panic!("{}", e.message));
        assert!(taken.is_none(), "waited past its deadline");
        holder.join().unwrap_or_else(|_| panic!("holder"));
        // One holder that keeps it.
        let kept = Lock::acquire(&job).unwrap_or_else(|e| panic!("{}", e.message));
        let taken = Lock::acquire_within(&job, Duration::from_millis(500)).unwrap_or_else(|e| panic!("{}", e.message));
        assert!(taken.is_none(), "took a lock that is held");
        drop(kept);
    }
}
