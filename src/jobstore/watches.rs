//! One inotify instance over many job directories, for the many-job `wait`: a single
//! descriptor and no thread per job, and each wake-up says which jobs changed, so only
//! their `state.json` is read again.

use std::collections::HashMap;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::time::Duration;

use super::JobDir;

/// A replaced `state.json` (or the directory's own removal).
const STATE_CHANGES: u32 = libc::IN_MOVED_TO | libc::IN_CLOSE_WRITE | libc::IN_DELETE_SELF | libc::IN_MOVE_SELF;

/// The fixed part of a `struct inotify_event`: wd, mask, cookie, len.
const EVENT_HEADER: usize = 16;

pub struct Watches {
    fd: OwnedFd,
    /// Watch descriptor to the caller's index of the job.
    jobs: HashMap<i32, usize>,
}

impl Watches {
    /// `None` when inotify is unavailable; the caller then polls.
    pub fn new() -> Option<Watches> {
        // SAFETY: inotify_init1 returns a new descriptor or -1.
        let raw = unsafe { libc::inotify_init1(libc::IN_NONBLOCK | libc::IN_CLOEXEC) };
        if raw < 0 {
            return None;
        }
        // SAFETY: `raw` is a fresh descriptor that we now own.
        Some(Watches { fd: unsafe { OwnedFd::from_raw_fd(raw) }, jobs: HashMap::new() })
    }

    /// Watches `job`'s directory for a replaced `state.json` (or its own removal). A job
    /// that cannot be watched is still noticed by the caller's fallback poll.
    pub fn add(&mut self, job: &JobDir, index: usize) {
        self.add_mask(job, index, STATE_CHANGES);
    }

    /// Like `add`, and also wakes on every append to the job's logs (readiness waits).
    pub fn add_with_appends(&mut self, job: &JobDir, index: usize) {
        self.add_mask(job, index, STATE_CHANGES | libc::IN_MODIFY);
    }

    fn add_mask(&mut self, job: &JobDir, index: usize, mask: u32) {
        let Ok(path) = std::ffi::CString::new(job.path.as_os_str().as_bytes()) else { return };
        // SAFETY: valid descriptor and NUL-terminated path.
        let wd = unsafe { libc::inotify_add_watch(self.fd.as_raw_fd(), path.as_ptr(), mask) };
        if wd >= 0 {
            self.jobs.insert(wd, index);
        }
    }

    /// Sleeps until something happens in a watched directory or `timeout` passes;
    /// returns the indexes of the jobs whose directories changed (empty on a timeout).
    pub fn wait(&self, timeout: Duration) -> Vec<usize> {
        let mut pollfd = libc::pollfd { fd: self.fd.as_raw_fd(), events: libc::POLLIN, revents: 0 };
        let ms = i32::try_from(timeout.as_millis()).unwrap_or(i32::MAX);
        let mut changed = Vec::new();
        // SAFETY: one valid pollfd.
        if unsafe { libc::poll(&mut pollfd, 1, ms) } <= 0 {
            return changed;
        }
        let mut buf = [0u8; 16384];
        loop {
            // SAFETY: reading the non-blocking descriptor into our buffer.
            let n = unsafe { libc::read(self.fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
            let Ok(n) = usize::try_from(n) else { break };
            if n == 0 {
                break;
            }
            let mut at = 0;
            while at + EVENT_HEADER <= n {
                let field = |offset: usize| {
                    let bytes = [buf[at + offset], buf[at + offset + 1], buf[at + offset + 2], buf[at + offset + 3]];
                    u32::from_ne_bytes(bytes)
                };
                let wd = field(0) as i32;
                if let Some(&index) = self.jobs.get(&wd)
                    && !changed.contains(&index)
                {
                    changed.push(index);
                }
                at += EVENT_HEADER + field(12) as usize;
            }
        }
        changed
    }
}
