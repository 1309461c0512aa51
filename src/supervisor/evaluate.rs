//! The output-match thread (docs/decisions.md OP-10): it evaluates the lines the event
//! loop handed over against the pattern that was current when they were read, and
//! queues the matches for the delivery thread.
//!
//! Matching runs here, never in the event loop, because its cost grows with the pattern
//! and the line (a regex is bounded by `crate::pattern::SIZE_LIMIT`, but a long line
//! still costs a noticeable fraction of a second): capture, timeouts and the terminal
//! record must not wait for it. Delivery has a thread of its own so that a slow sink
//! costs matches (counted as dropped), not the evaluation of later lines.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::capture::Stream;
use super::notify::{SinkContext, append_job_file, append_line};
use crate::wire::{Delivered, EventType, MatchType, MatchedEvent, OutputMatch, SCHEMA_VERSION, StreamFilter};

/// Matches waiting for delivery: far more than a sane sink needs.
const QUEUE: usize = 1024;
/// How long the matches still queued once the job has ended and its completion was
/// delivered (the completion no longer waits for them) get to be delivered. The supervisor, and
/// with it `delete`, waits for them: 200 matches to a sink taking 2 s each kept it 400 s,
/// and a full queue of hanging sinks would have kept it for hours. Matches not
/// delivered by then are counted as dropped; the one being delivered finishes (its sink
/// has a timeout of its own).
const DRAIN_AFTER_END: Duration = Duration::from_secs(30);
/// The matched lines waiting for delivery hold at most this many bytes together (a line
/// is up to `capture::LINE_CAP`), so that the queue cannot grow the supervisor by more.
const QUEUE_BYTES: usize = 4 << 20;

/// One `on_output_match` configuration, its regex compiled once.
pub struct Compiled {
    pub config: OutputMatch,
    regex: Option<regex_lite::Regex>,
}

impl Compiled {
    pub fn new(config: OutputMatch) -> Compiled {
        let regex = match config.match_type {
            MatchType::Regex => crate::pattern::compile(&config.pattern).ok(),
            MatchType::Contains => None,
        };
        Compiled { config, regex }
    }

    pub fn matches(&self, stream: Stream, line: &str) -> bool {
        let eligible = match self.config.stream {
            StreamFilter::Either => true,
            StreamFilter::Stdout => stream == Stream::Stdout,
            StreamFilter::Stderr => stream == Stream::Stderr,
        };
        eligible
            && match self.config.match_type {
                MatchType::Contains => line.contains(&self.config.pattern),
                // An invalid (or too costly) regex never matches: it is rejected when
                // given, but a hand-edited meta.json may still hold one.
                MatchType::Regex => self.regex.as_ref().is_some_and(|r| r.is_match(line)),
            }
    }
}

/// Lines of one stream read under one configuration, copied out of the read buffer
/// (each is a line's first piece, at most `capture::LINE_CAP` bytes; a batch holds at
/// most one chunk of output, far below 4 GiB).
pub struct Batch {
    pub compiled: Arc<Compiled>,
    pub stream: Stream,
    text: Vec<u8>,
    /// Where each line ends in `text`.
    ends: Vec<u32>,
}

impl Batch {
    /// What a line costs the queue's byte budget besides its bytes: its entry.
    pub const LINE_OVERHEAD: usize = std::mem::size_of::<u32>();

    pub fn new(compiled: Arc<Compiled>, stream: Stream) -> Batch {
        Batch { compiled, stream, text: Vec::new(), ends: Vec::new() }
    }

    pub fn push(&mut self, line: &[u8]) {
        self.text.extend_from_slice(line);
        self.ends.push(self.text.len() as u32);
    }

    pub fn len(&self) -> usize {
        self.ends.len()
    }

    /// The bytes this batch counts against the queue's budget.
    pub fn cost(&self) -> usize {
        self.text.len() + self.ends.len() * Batch::LINE_OVERHEAD
    }

    fn each(&self, mut f: impl FnMut(&[u8])) {
        let mut start = 0;
        for &end in &self.ends {
            f(&self.text[start..end as usize]);
            start = end as usize;
        }
    }
}

/// What the thread needs to describe and deliver a match.
pub struct Target {
    pub sinks: SinkContext,
    pub stdout_log_path: String,
    pub stderr_log_path: String,
}

/// Starts the output-match thread. It takes batches until the sender is dropped, waits
/// for the deliveries it queued, and returns how many matches it had to drop.
pub fn spawn(target: Target, batches: Receiver<Batch>, queued: Arc<AtomicUsize>) -> std::io::Result<JoinHandle<u64>> {
    std::thread::Builder::new().name("output-match".into()).spawn(move || {
        let mut deliveries = Deliveries {
            target: Arc::new(target),
            worker: None,
            queued: Arc::default(),
            given_up: Arc::default(),
            dropped: 0,
        };
        for batch in batches {
            let cost = batch.cost();
            batch.each(|bytes| deliveries.evaluate(&batch.compiled, batch.stream, bytes));
            queued.fetch_sub(cost, Ordering::Relaxed);
        }
        deliveries.finish()
    })
}

/// The delivery queue, fed by the evaluation and drained by one delivery thread in order.
struct Deliveries {
    target: Arc<Target>,
    worker: Option<(SyncSender<MatchedDelivery>, JoinHandle<u64>)>,
    /// Bytes of matched lines in the queue; the worker subtracts what it delivered.
    queued: Arc<AtomicUsize>,
    /// Set once `DRAIN_AFTER_END` has passed: the worker drops what is left, and
    /// returns how many it dropped.
    given_up: Arc<AtomicBool>,
    dropped: u64,
}

struct MatchedDelivery {
    event: MatchedEvent,
    command: Option<String>,
    file: Option<String>,
}

impl Deliveries {
    fn evaluate(&mut self, compiled: &Compiled, stream: Stream, bytes: &[u8]) {
        let text = String::from_utf8_lossy(bytes);
        let line = text.strip_suffix('\r').unwrap_or(&text);
        if !compiled.matches(stream, line) {
            return;
        }
        let len = line.len();
        if self.queued.load(Ordering::Relaxed) + len > QUEUE_BYTES {
            self.dropped += 1;
            return;
        }
        let event = MatchedEvent {
            schema_version: SCHEMA_VERSION.to_string(),
            event_type: EventType::OutputMatched,
            job_id: self.target.sinks.job_id.clone(),
            pattern: compiled.config.pattern.clone(),
            match_type: compiled.config.match_type,
            stream,
            line: line.to_string(),
            stdout_log_path: self.target.stdout_log_path.clone(),
            stderr_log_path: self.target.stderr_log_path.clone(),
        };
        let delivery =
            MatchedDelivery { event, command: compiled.config.command.clone(), file: compiled.config.file.clone() };
        let sender = match &self.worker {
            Some((sender, _)) => sender.clone(),
            None => {
                let (sender, receiver) = sync_channel::<MatchedDelivery>(QUEUE);
                let target = Arc::clone(&self.target);
                let queued = Arc::clone(&self.queued);
                let given_up = Arc::clone(&self.given_up);
                let handle = std::thread::spawn(move || {
                    let mut dropped = 0;
                    for delivery in receiver {
                        if given_up.load(Ordering::Relaxed) {
                            dropped += 1;
                        } else {
                            deliver(&target.sinks, &delivery);
                        }
                        queued.fetch_sub(delivery.event.line.len(), Ordering::Relaxed);
                    }
                    dropped
                });
                self.worker = Some((sender.clone(), handle));
                sender
            }
        };
        // Counted before the send, so the worker never subtracts what was not added.
        self.queued.fetch_add(len, Ordering::Relaxed);
        match sender.try_send(delivery) {
            Ok(()) => {}
            // Full: a slow sink. Disconnected: the worker panicked. Either way the match
            // cannot be delivered now, and waiting would hold up the lines behind it.
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => {
                self.queued.fetch_sub(len, Ordering::Relaxed);
                self.dropped += 1;
            }
        }
    }

    /// Called once the job has ended and every line was evaluated: waits for the queued
    /// deliveries, at most `DRAIN_AFTER_END` (plus the one in progress).
    fn finish(mut self) -> u64 {
        if let Some((sender, handle)) = self.worker.take() {
            drop(sender);
            let deadline = Instant::now() + DRAIN_AFTER_END;
            while !handle.is_finished() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(10));
            }
            self.given_up.store(true, Ordering::Relaxed);
            self.dropped += handle.join().unwrap_or(0);
        }
        self.dropped
    }
}

fn deliver(context: &SinkContext, delivery: &MatchedDelivery) {
    let payload = serde_json::to_string(&delivery.event).unwrap_or_default();
    let mut results = Vec::new();
    if let Some(command) = &delivery.command {
        results.push(context.run_command(command, &payload));
    }
    if let Some(file) = &delivery.file {
        results.push(append_line(file, &payload));
    }
    let record =
        serde_json::to_string(&Delivered { event: &delivery.event, delivery_results: &results }).unwrap_or_default();
    let _ = append_job_file(&context.event_path.to_string_lossy(), &record);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn compiled(pattern: &str, match_type: MatchType, stream: StreamFilter) -> Compiled {
        Compiled::new(OutputMatch { pattern: pattern.into(), match_type, stream, command: None, file: None })
    }

    #[test]
    fn contains_regex_and_stream_filters() {
        let c = compiled("err", MatchType::Contains, StreamFilter::Either);
        assert!(c.matches(Stream::Stdout, "an error"));
        assert!(!c.matches(Stream::Stdout, "ERR"));
        let r = compiled("^e.r+$", MatchType::Regex, StreamFilter::Stderr);
        assert!(r.matches(Stream::Stderr, "err"));
        assert!(!r.matches(Stream::Stdout, "err"));
        let bad = compiled("(", MatchType::Regex, StreamFilter::Either);
        assert!(!bad.matches(Stream::Stdout, "("));
    }

    #[test]
    fn a_batch_gives_back_its_lines() {
        let mut batch = Batch::new(Arc::new(compiled("x", MatchType::Contains, StreamFilter::Either)), Stream::Stderr);
        batch.push(b"one");
        batch.push(b"");
        batch.push(b"three");
        let mut seen = Vec::new();
        batch.each(|bytes| seen.push(bytes.to_vec()));
        assert_eq!(seen, vec![b"one".to_vec(), Vec::new(), b"three".to_vec()]);
        assert_eq!(batch.cost(), 8 + 3 * Batch::LINE_OVERHEAD);
    }
}
