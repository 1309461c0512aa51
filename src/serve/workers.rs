//! Request threads. Every request runs on a thread of its own, never on the dispatch
//! loop, and at most `--max-connections` run at once (the `Slots` cap). A thread that
//! finished its request waits for the next one instead of exiting: spawning a thread per
//! request cost more than the request itself (measured with wrk on `/health`: about
//! 13k requests/s with a fresh thread each, see bench/RESULTS.md for the pool's figure).
//! Threads are created only when no idle one exists, so the count follows the peak
//! concurrency and never exceeds the cap.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, Sender, channel};
use std::sync::{Arc, Mutex};

pub type Task = Box<dyn FnOnce() + Send + 'static>;

pub struct Workers {
    sender: Mutex<Sender<Task>>,
    receiver: Arc<Mutex<Receiver<Task>>>,
    idle: Arc<AtomicUsize>,
    total: AtomicUsize,
    limit: usize,
}

impl Workers {
    pub fn new(limit: usize) -> Workers {
        let (sender, receiver) = channel();
        Workers {
            sender: Mutex::new(sender),
            receiver: Arc::new(Mutex::new(receiver)),
            idle: Arc::new(AtomicUsize::new(0)),
            total: AtomicUsize::new(0),
            limit: limit.max(1),
        }
    }

    /// Hands `task` to an idle thread, starting one if none is idle and the cap allows.
    /// The caller holds a request slot, so a task never waits for longer than it takes
    /// one of the (at most `limit`) running tasks to finish.
    pub fn run(&self, task: Task) -> std::io::Result<()> {
        if self.idle.load(Ordering::Acquire) == 0 && self.total.load(Ordering::Acquire) < self.limit {
            self.spawn()?;
        }
        let sender = self.sender.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        sender.send(task).map_err(|_| std::io::Error::other("request threads are gone"))
    }

    fn spawn(&self) -> std::io::Result<()> {
        let receiver = self.receiver.clone();
        let idle = self.idle.clone();
        idle.fetch_add(1, Ordering::AcqRel);
        self.total.fetch_add(1, Ordering::AcqRel);
        let spawned = std::thread::Builder::new().name("request".into()).spawn(move || {
            loop {
                let task = {
                    let receiver = receiver.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
                    receiver.recv()
                };
                let Ok(task) = task else { break };
                idle.fetch_sub(1, Ordering::AcqRel);
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
        let workers = Workers::new(1);
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
        let workers = Workers::new(3);
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
