//! Notifications (docs/compatibility.md §10, docs/decisions.md OP-6, OP-10, OP-24): the `job.finished` event
//! with its command and file sinks, and the `job.output.matched` event for output lines.
//!
//! Every sink is bounded by one deadline (60 s, or `AGENT_EXEC_SINK_TIMEOUT_MS`): a
//! command sink's process group is then killed, and a file sink that blocks (a FIFO
//! without a reader, a hung network filesystem) is abandoned on its helper thread; the
//! delivery is recorded as `timeout`. Output-match deliveries run on a worker thread
//! (`matcher`), so no sink ever stalls output capture.

use std::fs::OpenOptions;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::os::unix::process::{CommandExt, ExitStatusExt};

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::jobstore::{self, JobDir};
use crate::wire::{Delivered, DeliveryResult, EventType, FinishedEvent, SCHEMA_VERSION, SinkType, State};
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

/// Where sinks run: the job's directory when it exists, else ours.
pub(super) fn sink_dir(cwd: Option<&str>) -> Option<PathBuf> {
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
        event_type: EventType::Finished,
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
        event_type: EventType::Finished,
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

pub(super) struct SinkContext {
    pub wrapper: Vec<String>,
    pub dir: Option<PathBuf>,
    pub event_path: PathBuf,
    pub job_id: String,
    pub event_type: EventType,
}

impl SinkContext {
    /// Runs `<wrapper> <command>` with the event on stdin, bounded by `SINK_BOUND`.
    pub fn run_command(&self, command: &str, payload: &str) -> DeliveryResult {
        let attempted_at = time::now();
        let result = |error: Option<String>| DeliveryResult {
            sink_type: SinkType::Command,
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
            .env("AGENT_EXEC_EVENT_TYPE", self.event_type.as_str())
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
/// writers (many jobs sharing one notify file) never interleave within a line. The open
/// and the write run on a helper thread that is abandoned at the sink deadline.
pub(super) fn append_line(path: &str, payload: &str) -> DeliveryResult {
    append_bounded(path, payload, false)
}

/// `append_line` for our own job files, which are never written through a symlink.
pub(super) fn append_job_file(path: &str, payload: &str) -> DeliveryResult {
    append_bounded(path, payload, true)
}

/// Files whose helper thread is still blocked past the deadline. Further deliveries to
/// them fail at once instead of piling up blocked threads.
static STUCK: Mutex<Vec<String>> = Mutex::new(Vec::new());

fn append_bounded(path: &str, payload: &str, own: bool) -> DeliveryResult {
    let attempted_at = time::now();
    let stuck = STUCK.lock().map(|stuck| stuck.iter().any(|p| p == path)).unwrap_or(false);
    let outcome = if stuck {
        Err("timeout (an earlier delivery to this file is still blocked)".to_string())
    } else {
        let (sender, receiver) = std::sync::mpsc::channel();
        let (target, line) = (path.to_string(), format!("{payload}\n"));
        std::thread::spawn(move || {
            let outcome = append(&target, &line, own);
            // Under the lock, so that the deadline's check below sees either the outcome
            // or the mark it must leave.
            let mut stuck = STUCK.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            stuck.retain(|p| p != &target);
            let _ = sender.send(outcome);
        });
        receiver.recv_timeout(sink_bound()).unwrap_or_else(|_| {
            let mut stuck = STUCK.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            receiver.try_recv().unwrap_or_else(|_| {
                stuck.push(path.to_string());
                Err("timeout".to_string())
            })
        })
    };
    DeliveryResult {
        sink_type: SinkType::File,
        target: path.to_string(),
        success: outcome.is_ok(),
        error: outcome.err(),
        attempted_at,
    }
}

fn append(path: &str, line: &str, own: bool) -> Result<(), String> {
    if let Some(parent) = Path::new(path).parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(parent)
            .map_err(|e| format!("create parent dir: {e}"))?;
    }
    let flags = if own { libc::O_CLOEXEC | libc::O_NOFOLLOW } else { libc::O_CLOEXEC };
    let mut file = OpenOptions::new()
        .append(true)
        .create(true)
        .mode(0o600)
        .custom_flags(flags)
        .open(path)
        .map_err(|e| format!("open error: {e}"))?;
    file.write_all(line.as_bytes()).map_err(|e| format!("write error: {e}"))
}
