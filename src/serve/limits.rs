//! The server's resource bounds: what one request may send (enforced by the patched
//! tiny_http, see vendor/tiny_http/PATCHES.md), the caps on requests served at once, the
//! in-flight counter used to drain at shutdown, and the file-descriptor budget.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use super::handlers::Answer;
use crate::error::{Code, Error};

/// docs/compatibility.md §11.2: bodies above this are refused (413).
pub const MAX_BODY: usize = 1024 * 1024;

/// How long a connection may stay silent before it is closed, and how long a client may
/// refuse to read a response.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(10);

/// A whole body (at most `MAX_BODY`) must arrive within this time after its head,
/// however it trickles: a byte now and then no longer keeps a connection alive.
pub const BODY_DEADLINE: Duration = Duration::from_secs(10);

/// A whole head (at most 16 KiB) must arrive within this time from its first byte: the
/// idle timeout alone let a client trickle a head a byte at a time, holding a thread.
pub const HEAD_DEADLINE: Duration = Duration::from_secs(10);

/// The bounds tiny_http enforces on every connection before a request reaches us (and
/// before the token is checked): 431 for a line over 8 KiB, a head over 16 KiB or more
/// than 100 headers; 413 for a body over `MAX_BODY`; 408 for a body later than
/// `BODY_DEADLINE` or a head later than `HEAD_DEADLINE`; 505 for versions other than 1.0
/// and 1.1; 503 for a connection beyond `max_open`. Each is answered, then the connection
/// is closed.
/// `max_open`: how many connections may be open at once (each holds a thread).
pub fn http_limits(max_open: usize) -> tiny_http::Limits {
    tiny_http::Limits {
        max_line: 8 * 1024,
        max_head: 16 * 1024,
        max_headers: 100,
        max_body: MAX_BODY,
        body_deadline: BODY_DEADLINE,
        head_deadline: HEAD_DEADLINE,
        max_open,
        idle_timeout: Some(IDLE_TIMEOUT),
        error_body: protocol_error,
    }
}

/// The JSON envelope of the answers tiny_http sends on its own.
fn protocol_error(status: u16) -> (String, &'static str) {
    let message = match status {
        408 => "request not received in time",
        413 => "request body over 1 MiB",
        417 => "unsupported Expect header",
        431 => "request head too large",
        503 => "too many open connections; try again later",
        505 => "HTTP version not supported (only 1.0 and 1.1)",
        _ => "malformed request",
    };
    (Answer::error(&Error::new(Code::InvalidRequest, message)).json, "application/json")
}

/// How often a request waiting for a slot looks at the shutdown flag.
const TICK: Duration = Duration::from_millis(100);

/// A counting semaphore: at most `limit` requests of one class are served at once.
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

    /// Waits for a free slot; `None` once `stop` is set (the server is shutting down).
    pub fn acquire(&self, stop: &AtomicBool) -> Option<Slot> {
        let (count, freed) = &*self.inner;
        let mut in_use = count.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        loop {
            if stop.load(Ordering::Relaxed) {
                return None;
            }
            if *in_use < self.limit {
                *in_use += 1;
                return Some(Slot { inner: self.inner.clone() });
            }
            in_use = freed.wait_timeout(in_use, TICK).unwrap_or_else(|poisoned| poisoned.into_inner()).0;
        }
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let (count, freed) = &*self.inner;
        let mut in_use = count.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        *in_use = in_use.saturating_sub(1);
        freed.notify_one();
    }
}

/// Counts requests being handled (waiting for a slot or served), so that shutdown can wait for
/// them.
#[derive(Clone, Default)]
pub struct InFlight {
    inner: Arc<(Mutex<usize>, Condvar)>,
}

/// One counted request; dropping it uncounts it even if the handler panicked.
pub struct Ticket {
    inner: Arc<(Mutex<usize>, Condvar)>,
}

impl InFlight {
    pub fn enter(&self) -> Ticket {
        let (count, _) = &*self.inner;
        *count.lock().unwrap_or_else(|poisoned| poisoned.into_inner()) += 1;
        Ticket { inner: self.inner.clone() }
    }

    /// Waits until no request is in flight or `deadline` passes; true if none is.
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

impl Drop for Ticket {
    fn drop(&mut self) {
        let (count, freed) = &*self.inner;
        let mut in_use = count.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        *in_use = in_use.saturating_sub(1);
        freed.notify_all();
    }
}

/// Raises the soft descriptor limit to the hard one: tiny_http spends two descriptors per
/// open connection, and a few hundred idle clients would otherwise exhaust the default.
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
        let stop = AtomicBool::new(false);
        let a = slots.acquire(&stop);
        let b = slots.acquire(&stop);
        assert!(a.is_some() && b.is_some());
        let waiter = std::thread::scope(|scope| {
            let waiting = scope.spawn(|| slots.acquire(&stop).is_some());
            drop(a);
            waiting.join().unwrap_or(false)
        });
        assert!(waiter, "a freed slot went to the waiting request");
        stop.store(true, Ordering::Relaxed);
        assert!(slots.acquire(&stop).is_none(), "no slot once stopping");
        drop(b);
    }

    #[test]
    fn in_flight_drains() {
        let in_flight = InFlight::default();
        let soon = || Instant::now() + Duration::from_millis(20);
        assert!(in_flight.drain_until(soon()));
        let a = in_flight.enter();
        let b = in_flight.enter();
        assert!(!in_flight.drain_until(soon()));
        drop(a);
        assert!(!in_flight.drain_until(soon()));
        drop(b);
        assert!(in_flight.drain_until(soon()));
    }

    #[test]
    fn protocol_errors_are_envelopes() {
        for status in [400, 408, 413, 417, 431, 505] {
            let (body, content_type) = protocol_error(status);
            let value: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
            assert_eq!(value["error"]["code"], "invalid_request", "{body}");
            assert_eq!(content_type, "application/json");
        }
    }
}
