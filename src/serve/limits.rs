//! The server's resource bounds: the cap on requests served at once, the socket
//! timeouts, the request-body limit and the file-descriptor budget.

use std::io::Read;
use std::net::TcpListener;
use std::os::fd::AsRawFd;
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use crate::error::{Code, Error, Result};

/// CONTRACT §11.2: bodies above this are refused.
pub const MAX_BODY: u64 = 1024 * 1024;

/// The largest declared body tiny_http may discard after we refused it. Beyond this its
/// discard step allocates the declared size at once, which can abort the process.
pub const MAX_DRAIN: u64 = 64 * 1024 * 1024;

/// How long a connection may stay silent (no byte of a request, or of a body) before it
/// is closed, and how long a client may refuse to read a response.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(10);

/// A counting semaphore: at most `limit` request threads exist at once.
#[derive(Clone)]
pub struct Slots {
    inner: Arc<(Mutex<usize>, Condvar)>,
    limit: usize,
}

/// One occupied slot; dropping it frees the slot even if the handler panicked.
pub struct Slot {
    inner: Arc<(Mutex<usize>, Condvar)>,
}

impl Slots {
    pub fn new(limit: usize) -> Slots {
        Slots { inner: Arc::new((Mutex::new(0), Condvar::new())), limit: limit.max(1) }
    }

    /// Waits for a free slot until `deadline`; `None` if it passed first.
    pub fn acquire_until(&self, deadline: Instant) -> Option<Slot> {
        let (count, freed) = &*self.inner;
        let mut in_use = count.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        while *in_use >= self.limit {
            let left = deadline.checked_duration_since(Instant::now())?;
            in_use = freed.wait_timeout(in_use, left).unwrap_or_else(|poisoned| poisoned.into_inner()).0;
        }
        *in_use += 1;
        Some(Slot { inner: self.inner.clone() })
    }

    /// Waits until every slot is free or `deadline` passes; true if all are free.
    pub fn drain_until(&self, deadline: Instant) -> bool {
        let (count, freed) = &*self.inner;
        let mut in_use = count.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        while *in_use > 0 {
            let Some(left) = deadline.checked_duration_since(Instant::now()) else { return false };
            in_use = freed.wait_timeout(in_use, left).unwrap_or_else(|poisoned| poisoned.into_inner()).0;
        }
        true
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let (count, freed) = &*self.inner;
        let mut in_use = count.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        *in_use = in_use.saturating_sub(1);
        freed.notify_all();
    }
}

/// Reads at most `MAX_BODY` bytes; one byte more means the body is too large, and the
/// rest is never read into memory.
pub fn read_body(reader: &mut dyn Read) -> Result<Vec<u8>> {
    let mut body = Vec::new();
    let refused = || Error::new(Code::InvalidRequest, "failed to read request body");
    reader.take(MAX_BODY + 1).read_to_end(&mut body).map_err(|_| refused())?;
    if body.len() as u64 > MAX_BODY {
        return Err(refused());
    }
    Ok(body)
}

/// Gives the listening socket receive and send timeouts. Linux copies them into every
/// socket `accept` creates, which is the only way to reach the sockets tiny_http accepts
/// on its own thread: their reads and writes then fail after `IDLE_TIMEOUT` of silence
/// and tiny_http closes the connection. The listener's own `accept` is bounded by the
/// same timeout; `mod.rs` keeps it from expiring (see its module doc).
pub fn set_socket_timeouts(listener: &TcpListener, timeout: Duration) -> Result<()> {
    let value = libc::timeval {
        tv_sec: timeout.as_secs() as libc::time_t,
        tv_usec: libc::suseconds_t::from(timeout.subsec_micros() as i32),
    };
    for option in [libc::SO_RCVTIMEO, libc::SO_SNDTIMEO] {
        // SAFETY: setsockopt with a pointer to a timeval we own and its exact size.
        let rc = unsafe {
            libc::setsockopt(
                listener.as_raw_fd(),
                libc::SOL_SOCKET,
                option,
                (&value as *const libc::timeval).cast(),
                std::mem::size_of::<libc::timeval>() as libc::socklen_t,
            )
        };
        if rc != 0 {
            return Err(Error::io("set socket timeout", std::io::Error::last_os_error()));
        }
    }
    Ok(())
}

/// Raises the soft descriptor limit to the hard one: tiny_http spends two descriptors per
/// open connection, and running out makes its accept thread give up (which `mod.rs` then
/// repairs, but better not to get there with a few hundred idle clients).
pub fn raise_fd_limit() {
    let mut limit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: get/setrlimit on a struct we own.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) == 0 && limit.rlim_cur < limit.rlim_max {
            limit.rlim_cur = limit.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &limit);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_cap_and_release() {
        let slots = Slots::new(2);
        let soon = || Instant::now() + Duration::from_millis(20);
        let a = slots.acquire_until(soon());
        let b = slots.acquire_until(soon());
        assert!(a.is_some() && b.is_some());
        assert!(slots.acquire_until(soon()).is_none());
        drop(a);
        assert!(slots.acquire_until(soon()).is_some());
        drop(b);
        assert!(slots.drain_until(soon()));
    }

    #[test]
    fn body_limit() {
        let exact = vec![b'x'; MAX_BODY as usize];
        assert_eq!(read_body(&mut exact.as_slice()).map(|b| b.len()).ok(), Some(MAX_BODY as usize));
        let over = vec![b'x'; MAX_BODY as usize + 1];
        assert_eq!(read_body(&mut over.as_slice()).map_err(|e| e.code).err(), Some(Code::InvalidRequest));
    }
}
