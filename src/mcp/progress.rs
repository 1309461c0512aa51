//! Progress and cancellation of requests in flight.
//!
//! Every `tools/call` is registered under its request id with a cancel flag before it is
//! queued. `notifications/cancelled` (and shutdown) set the flag; the engine adapter
//! looks at it between wait slices, and a cancelled call is answered with nothing, as
//! the specification asks. `Call` is what the adapter sees of all this.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::engine::Control;
use super::framing::Out;

/// Why a call was not registered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    Duplicate,
    Busy,
}

/// The requests in flight, by id.
#[derive(Default)]
pub struct InFlight {
    calls: Mutex<HashMap<String, Arc<AtomicBool>>>,
    drained: Condvar,
}

impl InFlight {
    /// Registers a request, unless one with this id is already in flight or `limit`
    /// calls are.
    pub fn begin(&self, id: &Value, limit: usize) -> Result<Arc<AtomicBool>, Refused> {
        let mut calls = self.lock();
        let key = id.to_string();
        if calls.contains_key(&key) {
            return Err(Refused::Duplicate);
        }
        if calls.len() >= limit {
            return Err(Refused::Busy);
        }
        let flag = Arc::new(AtomicBool::new(false));
        calls.insert(key, flag.clone());
        Ok(flag)
    }

    pub fn end(&self, id: &Value) {
        let mut calls = self.lock();
        calls.remove(&id.to_string());
        if calls.is_empty() {
            self.drained.notify_all();
        }
    }

    /// `notifications/cancelled`: an unknown or finished id is ignored, as the
    /// specification allows for a race with the answer.
    pub fn cancel(&self, id: &Value) {
        if let Some(flag) = self.lock().get(&id.to_string()) {
            flag.store(true, Ordering::SeqCst);
            crate::info!("mcp: request {id} cancelled");
        }
    }

    /// Cancels everything and waits up to `grace` for the calls to wind down.
    pub fn cancel_all_and_drain(&self, grace: Duration) {
        let deadline = Instant::now() + grace;
        let mut calls = self.lock();
        for flag in calls.values() {
            flag.store(true, Ordering::SeqCst);
        }
        while !calls.is_empty() {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return;
            }
            calls = self.drained.wait_timeout(calls, left).map(|(guard, _)| guard).unwrap_or_else(|p| p.into_inner().0);
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<AtomicBool>>> {
        self.calls.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// One call as the adapter sees it.
pub struct Call<'a> {
    cancelled: Arc<AtomicBool>,
    token: Option<Value>,
    out: &'a Out,
    /// Progress values must increase; elapsed milliseconds can repeat across slices.
    last: Mutex<u64>,
}

impl<'a> Call<'a> {
    pub fn new(cancelled: Arc<AtomicBool>, token: Option<Value>, out: &'a Out) -> Call<'a> {
        Call { cancelled, token, out, last: Mutex::new(0) }
    }
}

impl Control for Call<'_> {
    fn cancelled(&self) -> bool {
        self.cancelled.load(Ordering::SeqCst)
    }

    fn reporting(&self) -> bool {
        self.token.is_some()
    }

    fn progress(&self, job_id: &str, elapsed: Duration, budget: Duration, output_bytes: u64) {
        let Some(token) = &self.token else { return };
        let elapsed_ms = elapsed.as_millis() as u64;
        let mut last = self.last.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if elapsed_ms <= *last {
            return;
        }
        *last = elapsed_ms;
        let params = json!({
            "progressToken": token,
            "progress": elapsed_ms,
            "total": budget.as_millis() as u64,
            "message": format!("job {job_id} running: {elapsed_ms} ms waited, {output_bytes} output bytes so far"),
        });
        // A client that went away is noticed by the reader; nothing to do here.
        let _ = self.out.notify("notifications/progress", params);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cancel_sets_the_flag_of_that_request_only() {
        let flight = InFlight::default();
        let a = flight.begin(&json!(1), 2).expect("new");
        let b = flight.begin(&json!("1"), 2).expect("a string id is another id");
        assert_eq!(flight.begin(&json!(1), 3).err(), Some(Refused::Duplicate));
        assert_eq!(flight.begin(&json!(2), 2).err(), Some(Refused::Busy), "the limit is reached");
        flight.cancel(&json!(1));
        flight.cancel(&json!(99));
        assert!(a.load(Ordering::SeqCst) && !b.load(Ordering::SeqCst));
        flight.end(&json!(1));
        flight.end(&json!("1"));
        flight.cancel_all_and_drain(Duration::ZERO);
    }
}
