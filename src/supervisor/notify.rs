//! Notifications (CONTRACT §10, DECISIONS OP-6, OP-10, OP-24): the `job.finished` event
//! with its command and file sinks, and the `job.output.matched` event for output lines.
//!
//! Sinks are bounded (60 s, or `AGENT_EXEC_SINK_TIMEOUT_MS`, then the sink's process group is killed and the delivery
//! recorded as `timeout`), and output-match deliveries run on one worker thread, started
//! at the first match, so a slow sink never stalls output capture while the order of
//! records is kept.

use std::fs::OpenOptions;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::os::unix::process::{CommandExt, ExitStatusExt};

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc::{SyncSender, sync_channel};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

use super::capture::Stream;
use super::spec::LaunchSpec;
use crate::jobstore::{self, JobDir};
use crate::wire::{
    Delivered, DeliveryResult, FinishedEvent, MatchType, MatchedEvent, OutputMatch, SCHEMA_VERSION, State, StreamFilter,
};
use crate::{signals, time};

const SINK_BOUND: Duration = Duration::from_secs(60);
/// Overrides `SINK_BOUND` in milliseconds. The supervisor inherits the environment of
/// the `run`/`start` caller, so tests set it there to exercise the timeout path without
/// waiting a minute; users can use it to tighten or relax the bound.
pub const SINK_TIMEOUT_ENV: &str = "AGENT_EXEC_SINK_TIMEOUT_MS";

fn sink_bound() -> Duration {
    std::env::var(SINK_TIMEOUT_ENV)
        .ok()
        .and_then(|ms| ms.trim().parse::<u64>().ok())
        .map_or(SINK_BOUND, Duration::from_millis)
}
/// Matches waiting for delivery before the reader blocks: far more than a sane sink
/// needs, small enough to bound memory.
const QUEUE: usize = 1024;

/// Where sinks run: the job's directory when it exists, else ours.
fn sink_dir(cwd: Option<&str>) -> Option<PathBuf> {
    cwd.map(PathBuf::from).filter(|p| p.is_dir())
}

/// Delivers `job.finished` if a completion sink is configured in the *current*
/// `meta.json`; writes `completion_event.json` before and after the deliveries.
pub fn deliver_completion(job: &JobDir, wrapper: &[String], cwd: Option<&str>, state: &State) {
    let Ok(meta) = job.read_meta() else { return };
    let Some(notification) = meta.notification.filter(|n| n.notify_command.is_some() || n.notify_file.is_some()) else {
        return;
    };
    let finished_at = state.finished_at.clone().unwrap_or_else(time::now);
    let event = FinishedEvent {
        schema_version: SCHEMA_VERSION.to_string(),
        event_type: "job.finished".to_string(),
        job_id: job.id.clone(),
        state: state.status().as_str().to_string(),
        command: meta.command.clone(),
        cwd: meta.cwd.clone(),
        started_at: state.job.started_at.clone().unwrap_or_else(|| finished_at.clone()),
        finished_at,
        duration_ms: state.result.duration_ms,
        exit_code: state.result.exit_code,
        signal: state.result.signal.clone(),
        error: state.error.clone(),
        stdout_log_path: job.file_string(jobstore::STDOUT_LOG),
        stderr_log_path: job.file_string(jobstore::STDERR_LOG),
    };
    let write = |results: &[DeliveryResult]| {
        let _ = jobstore::write_pretty(
            &job.path,
            jobstore::COMPLETION_EVENT,
            &Delivered { event: &event, delivery_results: results },
        );
    };
    write(&[]);
    let payload = serde_json::to_string(&event).unwrap_or_default();
    let sink = SinkContext {
        wrapper: wrapper.to_vec(),
        dir: sink_dir(cwd),
        event_path: job.file(jobstore::COMPLETION_EVENT),
        job_id: job.id.clone(),
        event_type: "job.finished",
    };
    let mut results = Vec::new();
    if let Some(command) = &notification.notify_command {
        results.push(sink.run_command(command, &payload));
    }
    if let Some(file) = &notification.notify_file {
        results.push(append_line(file, &payload));
    }
    write(&results);
}

struct SinkContext {
    wrapper: Vec<String>,
    dir: Option<PathBuf>,
    event_path: PathBuf,
    job_id: String,
    event_type: &'static str,
}

impl SinkContext {
    /// Runs `<wrapper> <command>` with the event on stdin, bounded by `SINK_BOUND`.
    fn run_command(&self, command: &str, payload: &str) -> DeliveryResult {
        let attempted_at = time::now();
        let result = |error: Option<String>| DeliveryResult {
            sink_type: "command".to_string(),
            target: command.to_string(),
            success: error.is_none(),
            error,
            attempted_at: attempted_at.clone(),
        };
        if command.trim().is_empty() {
            return result(Some("empty shell command".to_string()));
        }
        let Some((program, args)) = self.wrapper.split_first() else {
            return result(Some("shell wrapper must not be empty".to_string()));
        };
        let mut sink = Command::new(program);
        sink.args(args)
            .arg(command)
            .env("AGENT_EXEC_EVENT_PATH", &self.event_path)
            .env("AGENT_EXEC_JOB_ID", &self.job_id)
            .env("AGENT_EXEC_EVENT_TYPE", self.event_type)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0);
        // SAFETY: restore_signal_defaults only calls async-signal-safe `signal`.
        unsafe {
            sink.pre_exec(|| {
                super::restore_signal_defaults();
                Ok(())
            });
        }
        if let Some(dir) = &self.dir {
            sink.current_dir(dir);
        }
        let mut child = match sink.spawn() {
            Ok(child) => child,
            Err(e) => return result(Some(format!("spawn error: {e}"))),
        };
        if let Some(mut stdin) = child.stdin.take() {
            let payload = payload.as_bytes().to_vec();
            // A sink that never reads its stdin must not block us: write from a thread
            // that ends with the sink.
            std::thread::spawn(move || {
                let _ = stdin.write_all(&payload);
            });
        }
        let deadline = Instant::now() + sink_bound();
        let mut pause = Duration::from_millis(1);
        loop {
            match child.try_wait() {
                Ok(Some(status)) => {
                    return result(match (status.code(), status.signal()) {
                        (Some(0), _) => None,
                        (Some(code), _) => Some(format!("exited with status exit status: {code}")),
                        (None, Some(sig)) => {
                            Some(format!("exited with status signal: {sig} (SIG{})", signals::name(sig)))
                        }
                        (None, None) => Some("exited with status unknown".to_string()),
                    });
                }
                Ok(None) if Instant::now() >= deadline => {
                    // SAFETY: the sink leads its own process group (process_group(0)).
                    unsafe { libc::kill(-(child.id() as i32), libc::SIGKILL) };
                    let _ = child.wait();
                    return result(Some("timeout".to_string()));
                }
                Ok(None) => {
                    std::thread::sleep(pause);
                    pause = (pause * 2).min(Duration::from_millis(50));
                }
                Err(e) => return result(Some(format!("wait error: {e}"))),
            }
        }
    }
}

/// Appends one line with a single `write` on an `O_APPEND` descriptor, so concurrent
/// writers (many jobs sharing one notify file) never interleave within a line.
fn append_line(path: &str, payload: &str) -> DeliveryResult {
    let attempted_at = time::now();
    let outcome = (|| {
        if let Some(parent) = Path::new(path).parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(parent)
                .map_err(|e| format!("create parent dir: {e}"))?;
        }
        let mut file = OpenOptions::new()
            .append(true)
            .create(true)
            .mode(0o600)
            .open(path)
            .map_err(|e| format!("open error: {e}"))?;
        let mut line = String::with_capacity(payload.len() + 1);
        line.push_str(payload);
        line.push('\n');
        file.write_all(line.as_bytes()).map_err(|e| format!("write error: {e}"))
    })();
    DeliveryResult {
        sink_type: "file".to_string(),
        target: path.to_string(),
        success: outcome.is_ok(),
        error: outcome.err(),
        attempted_at,
    }
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
    current: Option<Compiled>,
    worker: Option<(SyncSender<Delivery>, JoinHandle<()>)>,
}

impl OutputMatcher {
    pub fn new(job: &JobDir, spec: &LaunchSpec) -> OutputMatcher {
        let mut matcher = OutputMatcher {
            job: job.clone(),
            wrapper: spec.wrapper.clone(),
            dir: sink_dir(spec.cwd.as_deref()),
            stamp: None,
            current: None,
            worker: None,
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
        // A meta.json that cannot be read keeps the previous configuration (§5.9).
        if let Ok(meta) = self.job.read_meta() {
            self.stamp = Some(stamp);
            self.current = meta.notification.and_then(|n| n.on_output_match).map(Compiled::new);
        }
    }

    pub fn on_line(&mut self, stream: Stream, line: &str) {
        self.reload();
        let Some(compiled) = &self.current else { return };
        let line = line.strip_suffix('\r').unwrap_or(line);
        if !compiled.matches(stream, line) {
            return;
        }
        let event = MatchedEvent {
            schema_version: SCHEMA_VERSION.to_string(),
            event_type: "job.output.matched".to_string(),
            job_id: self.job.id.clone(),
            pattern: compiled.config.pattern.clone(),
            match_type: compiled.config.match_type,
            stream: stream.name().to_string(),
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
                    event_type: "job.output.matched",
                };
                let handle = std::thread::spawn(move || {
                    for delivery in receiver {
                        deliver_match(&context, &delivery);
                    }
                });
                self.worker = Some((sender.clone(), handle));
                sender
            }
        };
        let _ = sender.send(delivery);
    }

    /// Waits for queued deliveries to finish.
    pub fn finish(&mut self) {
        if let Some((sender, handle)) = self.worker.take() {
            drop(sender);
            let _ = handle.join();
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
    let _ = append_line(&context.event_path.to_string_lossy(), &record);
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
