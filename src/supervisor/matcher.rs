//! Output-match notification (docs/compatibility.md §10.5, docs/decisions.md OP-10): output lines are
//! evaluated against the current `on_output_match` configuration and matches are handed
//! to one delivery thread, in order, through a bounded queue.
//!
//! The event loop never waits here: the configuration is reloaded when an inotify watch
//! on the job directory reports a change, checked with one non-blocking read per chunk
//! of output (without inotify: a `stat` of `meta.json` at most every `RELOAD_EVERY`),
//! nothing is evaluated without a pattern, and
//! when the queue is full (a slow sink) further matches are counted as dropped and the
//! count is appended to `notification_events.ndjson` as one `job.output.dropped` record
//! when the job ends.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{SyncSender, TrySendError, sync_channel};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

use serde::Serialize;

use super::capture::Stream;
use super::notify::{SinkContext, append_job_file, append_line, sink_dir};
use super::spec::LaunchSpec;
use crate::jobstore::{self, JobDir};
use crate::wire::{Delivered, EventType, MatchType, MatchedEvent, OutputMatch, SCHEMA_VERSION, StreamFilter};

/// Matches waiting for delivery: far more than a sane sink needs.
const QUEUE: usize = 1024;
/// The matched lines waiting for delivery hold at most this many bytes together (a line
/// is up to `capture::LINE_CAP`), so that the queue cannot grow the supervisor by more.
const QUEUE_BYTES: usize = 4 << 20;
/// How stale the output-match configuration may be after `notify set` where inotify is
/// unavailable.
const RELOAD_EVERY: Duration = Duration::from_millis(200);

/// Reports that something in the job directory was replaced or rewritten (`notify set`
/// renames a new `meta.json` into place). The event is queued before the rename returns,
/// so output the job writes after a `notify set` is never matched with the old pattern.
struct DirWatch {
    fd: OwnedFd,
}

impl DirWatch {
    fn new(job: &JobDir) -> Option<DirWatch> {
        let path = std::ffi::CString::new(job.path.as_os_str().as_bytes()).ok()?;
        // SAFETY: inotify_init1 returns a new descriptor or -1; we own it from here.
        let fd = unsafe {
            let raw = libc::inotify_init1(libc::IN_NONBLOCK | libc::IN_CLOEXEC);
            if raw < 0 {
                return None;
            }
            OwnedFd::from_raw_fd(raw)
        };
        let mask = libc::IN_MOVED_TO | libc::IN_CLOSE_WRITE;
        // SAFETY: a valid descriptor and a NUL-terminated path.
        if unsafe { libc::inotify_add_watch(fd.as_raw_fd(), path.as_ptr(), mask) } < 0 {
            return None;
        }
        Some(DirWatch { fd })
    }

    /// Consumes the pending events; true if there were any (or the queue overflowed).
    fn changed(&self) -> bool {
        let mut buffer = [0u8; 4096];
        let mut any = false;
        loop {
            // SAFETY: reading into a buffer we own from a descriptor we own.
            let n = unsafe { libc::read(self.fd.as_raw_fd(), buffer.as_mut_ptr().cast(), buffer.len()) };
            if n <= 0 {
                return any;
            }
            any = true;
        }
    }
}

/// The record of matches that were not delivered because the queue was full.
#[derive(Serialize)]
struct Dropped<'a> {
    schema_version: &'a str,
    event_type: EventType,
    job_id: &'a str,
    dropped: u64,
}

struct Compiled {
    config: OutputMatch,
    regex: Option<regex_lite::Regex>,
}

impl Compiled {
    fn new(config: OutputMatch) -> Compiled {
        let regex = match config.match_type {
            MatchType::Regex => regex_lite::Regex::new(&config.pattern).ok(),
            MatchType::Contains => None,
        };
        Compiled { config, regex }
    }

    fn matches(&self, stream: Stream, line: &str) -> bool {
        let eligible = match self.config.stream {
            StreamFilter::Either => true,
            StreamFilter::Stdout => stream == Stream::Stdout,
            StreamFilter::Stderr => stream == Stream::Stderr,
        };
        eligible
            && match self.config.match_type {
                MatchType::Contains => line.contains(&self.config.pattern),
                // An invalid regex never matches (it is rejected when given on our CLI,
                // but a hand-edited meta.json may still hold one).
                MatchType::Regex => self.regex.as_ref().is_some_and(|r| r.is_match(line)),
            }
    }
}

/// Identifies one version of `meta.json` without reading it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct MetaStamp {
    dev: u64,
    ino: u64,
    modified: SystemTime,
    len: u64,
}

struct Delivery {
    event: MatchedEvent,
    command: Option<String>,
    file: Option<String>,
}

/// Evaluates output lines against the current `on_output_match` configuration, reloading
/// it only when `meta.json` changes. The change key includes the inode: every rewrite
/// replaces the file by rename, so the inode changes even when two rewrites of the same
/// size land within one tick of the filesystem's coarse mtime clock.
pub struct OutputMatcher {
    job: JobDir,
    wrapper: Vec<String>,
    dir: Option<PathBuf>,
    stamp: Option<MetaStamp>,
    checked: Option<Instant>,
    watch: Option<DirWatch>,
    current: Option<Compiled>,
    worker: Option<(SyncSender<Delivery>, JoinHandle<()>)>,
    /// Bytes of matched lines in the queue; the worker subtracts what it delivered.
    queued_bytes: Arc<AtomicUsize>,
    dropped: u64,
}

impl OutputMatcher {
    pub fn new(job: &JobDir, spec: &LaunchSpec) -> OutputMatcher {
        let mut matcher = OutputMatcher {
            job: job.clone(),
            wrapper: spec.wrapper.clone(),
            dir: sink_dir(spec.cwd.as_deref()),
            stamp: None,
            checked: None,
            watch: DirWatch::new(job),
            current: None,
            worker: None,
            queued_bytes: Arc::new(AtomicUsize::new(0)),
            dropped: 0,
        };
        matcher.reload();
        matcher
    }

    fn reload(&mut self) {
        let Ok(metadata) = std::fs::metadata(self.job.file(jobstore::META)) else { return };
        let stamp = MetaStamp {
            dev: metadata.dev(),
            ino: metadata.ino(),
            modified: metadata.modified().unwrap_or(SystemTime::UNIX_EPOCH),
            len: metadata.len(),
        };
        if self.stamp == Some(stamp) {
            return;
        }
        // A meta.json that cannot be read keeps the previous configuration (docs/compatibility.md §5.9).
        if let Ok(meta) = self.job.read_meta() {
            self.stamp = Some(stamp);
            self.current = meta.notification.and_then(|n| n.on_output_match).map(Compiled::new);
        }
    }

    /// Reloads the configuration if the job directory changed (or, without inotify, if
    /// `RELOAD_EVERY` has passed since the last check).
    pub fn refresh(&mut self) {
        if let Some(watch) = &self.watch {
            if watch.changed() {
                self.reload();
            }
            return;
        }
        let now = Instant::now();
        if self.checked.is_none_or(|at| now.duration_since(at) >= RELOAD_EVERY) {
            self.checked = Some(now);
            self.reload();
        }
    }

    /// Is a pattern configured? Without one, lines need not be looked at.
    pub fn active(&self) -> bool {
        self.current.is_some()
    }

    pub fn on_line(&mut self, stream: Stream, bytes: &[u8]) {
        let Some(compiled) = &self.current else { return };
        let text = String::from_utf8_lossy(bytes);
        let line = text.strip_suffix('\r').unwrap_or(&text);
        if !compiled.matches(stream, line) {
            return;
        }
        if self.queued_bytes.load(Ordering::Relaxed) + line.len() > QUEUE_BYTES {
            self.dropped += 1;
            return;
        }
        let event = MatchedEvent {
            schema_version: SCHEMA_VERSION.to_string(),
            event_type: EventType::OutputMatched,
            job_id: self.job.id.clone(),
            pattern: compiled.config.pattern.clone(),
            match_type: compiled.config.match_type,
            stream,
            line: line.to_string(),
            stdout_log_path: self.job.file_string(jobstore::STDOUT_LOG),
            stderr_log_path: self.job.file_string(jobstore::STDERR_LOG),
        };
        let delivery = Delivery { event, command: compiled.config.command.clone(), file: compiled.config.file.clone() };
        let sender = match &self.worker {
            Some((sender, _)) => sender.clone(),
            None => {
                let (sender, receiver) = sync_channel::<Delivery>(QUEUE);
                let context = SinkContext {
                    wrapper: self.wrapper.clone(),
                    dir: self.dir.clone(),
                    event_path: self.job.file(jobstore::MATCH_EVENTS),
                    job_id: self.job.id.clone(),
                    event_type: EventType::OutputMatched,
                };
                let queued_bytes = Arc::clone(&self.queued_bytes);
                let handle = std::thread::spawn(move || {
                    for delivery in receiver {
                        deliver_match(&context, &delivery);
                        queued_bytes.fetch_sub(delivery.event.line.len(), Ordering::Relaxed);
                    }
                });
                self.worker = Some((sender.clone(), handle));
                sender
            }
        };
        // Counted before the send, so the worker never subtracts what was not added.
        let len = line.len();
        self.queued_bytes.fetch_add(len, Ordering::Relaxed);
        match sender.try_send(delivery) {
            Ok(()) => {}
            // Full: a slow sink. Disconnected: the worker panicked. Either way the match
            // cannot be delivered now, and waiting would stall the event loop.
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => {
                self.queued_bytes.fetch_sub(len, Ordering::Relaxed);
                self.dropped += 1;
            }
        }
    }

    /// Waits for queued deliveries to finish, then records how many were dropped.
    pub fn finish(&mut self) {
        if let Some((sender, handle)) = self.worker.take() {
            drop(sender);
            let _ = handle.join();
        }
        if self.dropped > 0 {
            let record = Dropped {
                schema_version: SCHEMA_VERSION,
                event_type: EventType::OutputDropped,
                job_id: &self.job.id,
                dropped: self.dropped,
            };
            let record = serde_json::to_string(&record).unwrap_or_default();
            let _ = append_job_file(&self.job.file_string(jobstore::MATCH_EVENTS), &record);
        }
    }
}

fn deliver_match(context: &SinkContext, delivery: &Delivery) {
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

    fn meta_with_pattern(id: &str, pattern: &str) -> crate::wire::Meta {
        let text = format!(
            r#"{{"job":{{"id":"{id}"}},"schema_version":"0.1","command":["true"],"created_at":"x","root":"r","env_keys":[],
               "notification":{{"on_output_match":{{"pattern":"{pattern}"}}}}}}"#
        );
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("meta: {e}"))
    }

    #[test]
    fn a_rewrite_with_the_same_size_and_mtime_is_still_reloaded() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
        let job = JobDir::new(dir.path(), "J");
        std::fs::create_dir(&job.path).unwrap_or_else(|e| panic!("mkdir: {e}"));
        let spec: LaunchSpec = serde_json::from_str(
            r#"{"command":["true"],"wrapper":["sh","-c"],"env":[],"env_files":[],"inherit_env":true,"cwd":null,
                "full_log":"/dev/null","timeout_ms":0,"kill_after_ms":0,"progress_every_ms":0}"#,
        )
        .unwrap_or_else(|e| panic!("spec: {e}"));
        job.write_meta(&meta_with_pattern("J", "aaa")).unwrap_or_else(|e| panic!("{e}"));
        let mut matcher = OutputMatcher::new(&job, &spec);
        assert_eq!(matcher.current.as_ref().map(|c| c.config.pattern.as_str()), Some("aaa"));
        let meta_path = job.file(jobstore::META);
        let before = std::fs::metadata(&meta_path).and_then(|m| m.modified()).unwrap_or_else(|e| panic!("{e}"));
        job.write_meta(&meta_with_pattern("J", "bbb")).unwrap_or_else(|e| panic!("{e}"));
        // Pretend both writes fell into one tick of the filesystem clock.
        std::fs::File::options()
            .write(true)
            .open(&meta_path)
            .and_then(|f| f.set_modified(before))
            .unwrap_or_else(|e| panic!("set mtime: {e}"));
        matcher.reload();
        assert_eq!(matcher.current.as_ref().map(|c| c.config.pattern.as_str()), Some("bbb"));
    }

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
}
