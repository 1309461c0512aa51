//! The server's resource bounds: what one request may send (enforced by the patched
//! tiny_http, see vendor/tiny_http/PATCHES.md), the caps on requests served at once, the
//! in-flight counter used to drain at shutdown, and the file-descriptor budget.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
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
///
/// Every request takes and frees a slot, on 64 or more connection threads at once, so
/// the common case is lock-free: a compare-and-swap on the count, and a wake-up only when
/// somebody waits. A mutex taken twice per request (each release a `futex` wake) made
/// the connection threads queue on it, and a holder preempted by the scheduler stalled
/// every other request of the server (`make bench`: `GET /v1/jobs/{id}` p99.9).
pub struct Slots {
    inner: Arc<Gate>,
}

/// One occupied slot; dropping it frees the slot even if the handler panicked.
pub struct Slot {
    inner: Arc<Gate>,
}

struct Gate {
    in_use: AtomicUsize,
    limit: usize,
    /// Requests asleep in `acquire` (counted under `lock`).
    waiting: AtomicUsize,
    lock: Mutex<()>,
    freed: Condvar,
}

impl Gate {
    fn try_take(&self) -> bool {
        self.in_use.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| (n < self.limit).then_some(n + 1)).is_ok()
    }
}

impl Slots {
    pub fn new(limit: usize) -> Slots {
        let gate = Gate {
            in_use: AtomicUsize::new(0),
            limit: limit.max(1),
            waiting: AtomicUsize::new(0),
            lock: Mutex::new(()),
            freed: Condvar::new(),
        };
        Slots { inner: Arc::new(gate) }
    }

    /// Waits for a free slot; `None` once `stop` is set (the server is shutting down).
    pub fn acquire(&self, stop: &AtomicBool) -> Option<Slot> {
        let gate = &*self.inner;
        let slot = || Slot { inner: self.inner.clone() };
        if stop.load(Ordering::Relaxed) {
            return None;
        }
        if gate.try_take() {
            return Some(slot());
        }
        let mut guard = gate.lock.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        // Counted before the slot is tried again, and a release lowers the count before
        // it looks at `waiting` (both sequentially consistent): either this try sees the
        // freed slot or the release sees us and notifies, under the lock we hold until
        // we sleep. The timeout is for the shutdown flag.
        gate.waiting.fetch_add(1, Ordering::SeqCst);
        let taken = loop {
            if stop.load(Ordering::Relaxed) {
                break false;
            }
            if gate.try_take() {
                break true;
            }
            guard = gate.freed.wait_timeout(guard, TICK).unwrap_or_else(|poisoned| poisoned.into_inner()).0;
        };
        gate.waiting.fetch_sub(1, Ordering::SeqCst);
        taken.then(slot)
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let gate = &*self.inner;
        gate.in_use.fetch_sub(1, Ordering::SeqCst);
        if gate.waiting.load(Ordering::SeqCst) > 0 {
            let _guard = gate.lock.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            gate.freed.notify_one();
        }
    }
}

/// Counts requests being handled (waiting for a slot or served), so that shutdown can wait for
/// them. A plain counter: shutdown polls it, so a request costs no lock and no wake-up.
#[derive(Clone, Default)]
pub struct InFlight {
    count: Arc<AtomicUsize>,
}

/// One counted request; dropping it uncounts it even if the handler panicked.
pub struct Ticket {
    count: Arc<AtomicUsize>,
}

impl InFlight {
    pub fn enter(&self) -> Ticket {
        self.count.fetch_add(1, Ordering::SeqCst);
        Ticket { count: self.count.clone() }
    }

    /// Waits until no request is in flight or `deadline` passes; true if none is.
    pub fn drain_until(&self, deadline: Instant) -> bool {
        const POLL: Duration = Duration::from_millis(10);
        while self.count.load(Ordering::SeqCst) > 0 {
            let Some(left) = deadline.checked_duration_since(Instant::now()) else { return false };
            std::thread::sleep(left.min(POLL));
        }
        true
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        self.count.fetch_sub(1, Ordering::SeqCst);
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
    fn slots_never_exceed_their_limit_under_contention() {
        let slots = Slots::new(2);
        let stop = AtomicBool::new(false);
        let (inside, most) = (AtomicUsize::new(0), AtomicUsize::new(0));
        std::thread::scope(|scope| {
            for _ in 0..8 {
                scope.spawn(|| {
                    for _ in 0..2000 {
                        let slot = slots.acquire(&stop).expect("not stopping");
                        let now = inside.fetch_add(1, Ordering::SeqCst) + 1;
                        most.fetch_max(now, Ordering::SeqCst);
                        std::thread::yield_now();
                        inside.fetch_sub(1, Ordering::SeqCst);
                        drop(slot);
                    }
                });
            }
        });
        assert_eq!(most.load(Ordering::SeqCst), 2, "two at once, never more");
        assert_eq!(slots.inner.in_use.load(Ordering::SeqCst), 0, "every slot came back");
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
