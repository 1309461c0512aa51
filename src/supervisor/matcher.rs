//! Output-match notification (docs/compatibility.md §10.5, docs/decisions.md OP-10): the
//! event loop's side. Output lines are copied, with the `on_output_match` configuration
//! current when they were read, to the output-match thread (`evaluate`), which evaluates
//! them and hands the matches to one delivery thread, in order, through a bounded queue.
//!
//! The event loop never waits here and never evaluates a pattern: the configuration is
//! reloaded when an inotify watch on the job directory reports a change, checked with
//! one non-blocking read per chunk of output (without inotify: a `stat` of `meta.json`
//! at most every `RELOAD_EVERY`), nothing is copied without a pattern, and the lines of
//! a chunk go out as one batch without blocking. When the lines waiting for evaluation
//! would exceed `LINES_BYTES` (a costly pattern on heavy output), further lines are
//! counted as skipped; when the delivery queue is full (a slow sink), further matches are
//! counted as dropped. Both counts are appended to `notification_events.ndjson` when the
//! job ends, as one `job.output.skipped` and one `job.output.dropped` record.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{SyncSender, sync_channel};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

use serde::Serialize;

use super::capture::Stream;
use super::evaluate::{self, Batch, Compiled, Target};
use super::notify::{SinkContext, append_job_file, sink_dir};
use super::spec::LaunchSpec;
use crate::jobstore::{self, JobDir};
use crate::wire::{EventType, SCHEMA_VERSION};

/// The lines waiting for evaluation hold at most this many bytes together: about 16
/// chunks of short lines, so that a cheap pattern keeps up with bursts of output, and 64
/// lines of `capture::LINE_CAP`, which bounds the matching left when the job ends (with
/// the most costly pattern accepted, `crate::pattern::SIZE_LIMIT`, some 20 s on a busy
/// machine; it delays only the completion sinks, never the terminal record).
const LINES_BYTES: usize = 4 << 20;
/// Batches (one per chunk of output) waiting for evaluation; the byte budget is what
/// bounds them in practice.
const BATCHES: usize = 256;
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

/// The record of the lines or matches the output-match path had to let go: one per job
/// and kind, only when there were any.
#[derive(Serialize)]
struct Count<'a> {
    schema_version: &'a str,
    event_type: EventType,
    job_id: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    dropped: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    skipped: Option<u64>,
}

/// Identifies one version of `meta.json` without reading it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct MetaStamp {
    dev: u64,
    ino: u64,
    modified: SystemTime,
    len: u64,
}

/// Copies output lines for the output-match thread, with the current `on_output_match`
/// configuration, reloading it only when `meta.json` changes. The change key includes
/// the inode: every rewrite replaces the file by rename, so the inode changes even when
/// two rewrites of the same size land within one tick of the filesystem's coarse mtime
/// clock.
pub struct OutputMatcher {
    job: JobDir,
    wrapper: Vec<String>,
    dir: Option<PathBuf>,
    stamp: Option<MetaStamp>,
    checked: Option<Instant>,
    watch: Option<DirWatch>,
    current: Option<Arc<Compiled>>,
    /// The lines of the chunk being read, sent by `flush`.
    batch: Option<Batch>,
    thread: Option<(SyncSender<Batch>, JoinHandle<u64>)>,
    /// Bytes of lines waiting for evaluation; the thread subtracts what it evaluated.
    queued: Arc<AtomicUsize>,
    skipped: u64,
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
            batch: None,
            thread: None,
            queued: Arc::new(AtomicUsize::new(0)),
            skipped: 0,
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
            self.current =
                meta.notification.and_then(|n| n.on_output_match).map(|config| Arc::new(Compiled::new(config)));
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

    /// Copies a line for the output-match thread; a line that does not fit in the
    /// budget of lines waiting for evaluation is counted as skipped.
    pub fn on_line(&mut self, stream: Stream, bytes: &[u8]) {
        let Some(current) = &self.current else { return };
        // A batch is evaluated under one configuration, the one current when it was read,
        // and holds the lines of one stream.
        if self.batch.as_ref().is_some_and(|batch| !Arc::ptr_eq(&batch.compiled, current) || batch.stream != stream) {
            self.flush();
        }
        let Some(current) = &self.current else { return };
        let waiting = self.queued.load(Ordering::Relaxed);
        let batch = self.batch.get_or_insert_with(|| Batch::new(Arc::clone(current), stream));
        if waiting + batch.cost() + bytes.len() + Batch::LINE_OVERHEAD > LINES_BYTES {
            self.skipped += 1;
            return;
        }
        batch.push(bytes);
    }

    /// Hands the lines copied since the last flush to the output-match thread, starting
    /// it with the first lines (so a job without output-match stays single-threaded).
    pub fn flush(&mut self) {
        let Some(batch) = self.batch.take() else { return };
        let lines = batch.len() as u64;
        if lines == 0 {
            return;
        }
        if self.thread.is_none() {
            let (sender, receiver) = sync_channel::<Batch>(BATCHES);
            let target = Target {
                sinks: SinkContext {
                    wrapper: self.wrapper.clone(),
                    dir: self.dir.clone(),
                    event_path: self.job.file(jobstore::MATCH_EVENTS),
                    job_id: self.job.id.clone(),
                    event_type: EventType::OutputMatched,
                },
                stdout_log_path: self.job.file_string(jobstore::STDOUT_LOG),
                stderr_log_path: self.job.file_string(jobstore::STDERR_LOG),
            };
            match evaluate::spawn(target, receiver, Arc::clone(&self.queued)) {
                Ok(handle) => self.thread = Some((sender, handle)),
                Err(_) => {
                    self.skipped += lines;
                    return;
                }
            }
        }
        let Some((sender, _)) = &self.thread else { return };
        let cost = batch.cost();
        // Counted before the send, so the thread never subtracts what was not added.
        self.queued.fetch_add(cost, Ordering::Relaxed);
        // Full or disconnected (the thread panicked): waiting would stall the event loop.
        if sender.try_send(batch).is_err() {
            self.queued.fetch_sub(cost, Ordering::Relaxed);
            self.skipped += lines;
        }
    }

    /// Waits for the lines sent to be evaluated and their matches delivered, then records
    /// how many lines were skipped and how many matches dropped. The event loop calls it
    /// after the terminal record, which therefore never waits for matching.
    pub fn finish(&mut self) {
        self.flush();
        let mut dropped = 0;
        if let Some((sender, handle)) = self.thread.take() {
            drop(sender);
            dropped = handle.join().unwrap_or(0);
        }
        let counts =
            [(EventType::OutputSkipped, None, Some(self.skipped)), (EventType::OutputDropped, Some(dropped), None)];
        for (event_type, dropped, skipped) in counts {
            if dropped.or(skipped) == Some(0) {
                continue;
            }
            let record = Count { schema_version: SCHEMA_VERSION, event_type, job_id: &self.job.id, dropped, skipped };
            let record = serde_json::to_string(&record).unwrap_or_default();
            let _ = append_job_file(&self.job.file_string(jobstore::MATCH_EVENTS), &record);
        }
    }
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
}
