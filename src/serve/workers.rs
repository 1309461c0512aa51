//! Request threads, in lanes. A lane runs each request on a thread of its own, never on
//! the dispatch loop, with at most its cap of threads; requests beyond the cap wait in
//! the lane's queue (each is one connection's only request, so the queue is bounded by
//! the connections). `serve` has two lanes, short requests (`--max-connections`) and
//! long-polls (`--max-waiters`), so that a flood of long-polls can never delay
//! `/health`.
//!
//! A thread that finished its request waits for the next one instead of exiting:
//! spawning a thread per request cost more than the request itself (measured with wrk
//! on `/health`: about 13k requests/s with a fresh thread each, see bench/RESULTS.md for
//! the pool's figure). Threads are created only when no idle one exists, so the count
//! follows the peak concurrency and never exceeds the cap.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, Sender, channel};
use std::sync::{Arc, Mutex};

use super::limits::InFlight;

pub type Task = Box<dyn FnOnce() + Send + 'static>;

/// A pool of request threads and the count of its requests not yet finished.
pub struct Lane {
    workers: Workers,
    pub in_flight: InFlight,
}

impl Lane {
    /// `name` names its threads (as seen in `/proc/PID/task/*/comm`).
    pub fn new(name: &'static str, limit: usize) -> Lane {
        Lane { workers: Workers::new(name, limit), in_flight: InFlight::default() }
    }

    /// Queues `task`; it is counted in flight until it has run.
    pub fn submit(&self, task: Task) -> std::io::Result<()> {
        let ticket = self.in_flight.enter();
        self.workers.run(Box::new(move || {
            let _ticket = ticket;
            task();
        }))
    }
}

pub struct Workers {
    sender: Mutex<Sender<Task>>,
    receiver: Arc<Mutex<Receiver<Task>>>,
    idle: Arc<AtomicUsize>,
    /// Tasks sent but not yet taken by a thread.
    queued: Arc<AtomicUsize>,
    total: AtomicUsize,
    limit: usize,
    name: &'static str,
}

impl Workers {
    pub fn new(name: &'static str, limit: usize) -> Workers {
        let (sender, receiver) = channel();
        Workers {
            sender: Mutex::new(sender),
            receiver: Arc::new(Mutex::new(receiver)),
            idle: Arc::new(AtomicUsize::new(0)),
            queued: Arc::new(AtomicUsize::new(0)),
            total: AtomicUsize::new(0),
            limit: limit.max(1),
            name,
        }
    }

    /// Hands `task` to an idle thread, starting one if none is idle and the cap allows;
    /// otherwise it waits in the queue for a thread to finish its task.
    pub fn run(&self, task: Task) -> std::io::Result<()> {
        // An idle thread counts as idle until it has taken a task, so queued tasks are
        // subtracted: two tasks in a row must not both be promised to one idle thread
        // while the cap would allow a second (the later one would wait for the earlier).
        let free = self.idle.load(Ordering::Acquire).saturating_sub(self.queued.load(Ordering::Acquire));
        if free == 0 && self.total.load(Ordering::Acquire) < self.limit {
            self.spawn()?;
        }
        let sender = self.sender.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        self.queued.fetch_add(1, Ordering::AcqRel);
        sender.send(task).map_err(|_| {
            self.queued.fetch_sub(1, Ordering::AcqRel);
            std::io::Error::other("request threads are gone")
        })
    }

    fn spawn(&self) -> std::io::Result<()> {
        let receiver = self.receiver.clone();
        let idle = self.idle.clone();
        let queued = self.queued.clone();
        idle.fetch_add(1, Ordering::AcqRel);
        self.total.fetch_add(1, Ordering::AcqRel);
        let spawned = std::thread::Builder::new().name(self.name.into()).spawn(move || {
            loop {
                let task = {
                    let receiver = receiver.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
                    receiver.recv()
                };
                let Ok(task) = task else { break };
                // Idle first: in between, the thread looks busy, never free twice.
                idle.fetch_sub(1, Ordering::AcqRel);
                queued.fetch_sub(1, Ordering::AcqRel);
                // A panicking request must not take its thread down: `total` would keep
                // counting it, and once every thread had died that way tasks would queue
                // with no thread left to run them (each holding its slot). Its request
                // was dropped during the unwind, which tiny_http answers with a 500.
                let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(task));
                idle.fetch_add(1, Ordering::AcqRel);
            }
        });
        if spawned.is_err() {
            self.idle.fetch_sub(1, Ordering::AcqRel);
            self.total.fetch_sub(1, Ordering::AcqRel);
        }
        spawned.map(drop)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc::channel;
    use std::time::Duration;

    #[test]
    fn a_panicking_task_does_not_lose_its_thread() {
        let workers = Workers::new("test", 1);
        for _ in 0..3 {
            let task: Task = Box::new(|| panic!("handler bug"));
            assert!(workers.run(task).is_ok());
        }
        let (done, result) = channel();
        let task: Task = Box::new(move || {
            let _ = done.send(());
        });
        assert!(workers.run(task).is_ok());
        assert!(result.recv_timeout(Duration::from_secs(5)).is_ok(), "no thread left after panics");
    }

    #[test]
    fn runs_every_task_and_reuses_threads() {
        let workers = Workers::new("test", 3);
        let (done, results) = channel();
        for i in 0..20 {
            let done = done.clone();
            let task: Task = Box::new(move || {
                let _ = done.send((i, std::thread::current().id()));
            });
            assert!(workers.run(task).is_ok());
        }
        let mut seen: Vec<_> = (0..20).filter_map(|_| results.recv_timeout(Duration::from_secs(5)).ok()).collect();
        assert_eq!(seen.len(), 20);
        let mut threads: Vec<_> = seen.iter().map(|(_, t)| *t).collect();
        threads.sort_by_key(|t| format!("{t:?}"));
        threads.dedup();
        assert!(threads.len() <= 3, "more threads than the cap: {}", threads.len());
        seen.sort_by_key(|(i, _)| *i);
        assert!(seen.iter().enumerate().all(|(n, (i, _))| n == *i));
    }
}
