//! Waiting for a job to end (docs/decisions.md OP-6): inotify on the job directory wakes us when
//! `state.json` is replaced, so completion is noticed within milliseconds; the poll
//! interval is only the fallback and the cadence of the liveness check.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::time::{Duration, Instant};

use super::JobDir;
use crate::error::Result;
use crate::wire::State;

pub const MIN_POLL: Duration = Duration::from_millis(10);

/// What to do when `state.json` cannot be read while waiting.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum OnUnreadable {
    Fail,
    /// Keep waiting (`run --wait` and snapshots, docs/compatibility.md §7.3), still bounded by the
    /// deadline.
    Retry,
}

/// Waits until the job is terminal or `deadline` passes; returns the last state read.
/// `read` is how the caller reads the state (the engine's `current`, which persists the
/// lost-supervisor repair): this module only waits.
pub fn wait_for_end(
    job: &JobDir,
    deadline: Option<Instant>,
    poll: Duration,
    on_unreadable: OnUnreadable,
    read: fn(&JobDir) -> Result<State>,
) -> Result<State> {
    let poll = poll.max(MIN_POLL);
    let watch = Inotify::watch(job);
    loop {
        match read(job) {
            Ok(state) if state.status().is_terminal() => return Ok(state),
            Ok(state) if deadline.is_some_and(|d| Instant::now() >= d) => return Ok(state),
            Ok(_) => {}
            Err(e) if on_unreadable == OnUnreadable::Fail => return Err(e),
            Err(e) if deadline.is_some_and(|d| Instant::now() >= d) => return Err(e),
            Err(_) => {}
        }
        let pause = match deadline {
            Some(d) => poll.min(d.saturating_duration_since(Instant::now())),
            None => poll,
        };
        match &watch {
            Some(watch) => watch.wait(pause),
            None => std::thread::sleep(pause),
        }
    }
}

struct Inotify {
    fd: OwnedFd,
}

impl Inotify {
    fn watch(job: &JobDir) -> Option<Inotify> {
        // SAFETY: inotify_init1 returns a new descriptor or -1.
        let raw = unsafe { libc::inotify_init1(libc::IN_NONBLOCK | libc::IN_CLOEXEC) };
        if raw < 0 {
            return None;
        }
        // SAFETY: `raw` is a fresh descriptor that we now own.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        let path = std::ffi::CString::new(job.path.as_os_str().as_bytes()).ok()?;
        let mask = libc::IN_MOVED_TO | libc::IN_CLOSE_WRITE | libc::IN_DELETE_SELF | libc::IN_MOVE_SELF;
        // SAFETY: valid descriptor and NUL-terminated path.
        if unsafe { libc::inotify_add_watch(fd.as_raw_fd(), path.as_ptr(), mask) } < 0 {
            return None;
        }
        Some(Inotify { fd })
    }

    /// Sleeps until something happens in the directory or `timeout` passes.
    fn wait(&self, timeout: Duration) {
        let mut pollfd = libc::pollfd { fd: self.fd.as_raw_fd(), events: libc::POLLIN, revents: 0 };
        let ms = i32::try_from(timeout.as_millis()).unwrap_or(i32::MAX);
        // SAFETY: one valid pollfd.
        if unsafe { libc::poll(&mut pollfd, 1, ms) } > 0 {
            let mut buf = [0u8; 4096];
            // SAFETY: draining the non-blocking descriptor into our buffer.
            while unsafe { libc::read(self.fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) } > 0 {}
        }
    }
}
