//! `meta.json`, `state.json` and the notification events (docs/compatibility.md §5, §10).

use std::borrow::Cow;

use serde::{Deserialize, Serialize};

fn yes() -> bool {
    true
}

pub fn default_wrapper() -> Vec<String> {
    vec!["sh".to_string(), "-lc".to_string()]
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct JobRef {
    pub id: String,
}

/// `meta.json`: the job definition, written at creation and rewritten only by `tag set`
/// and `notify set`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Meta {
    pub job: JobRef,
    /// `--name`: unique among the root's non-terminal jobs; absent when not given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    pub schema_version: String,
    pub command: Vec<String>,
    pub created_at: String,
    pub root: String,
    pub env_keys: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub env_vars: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub env_vars_runtime: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub mask: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cwd: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notification: Option<Notification>,
    #[serde(default)]
    pub tags: Vec<String>,
    #[serde(default = "yes")]
    pub inherit_env: bool,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub env_files: Vec<String>,
    #[serde(default)]
    pub timeout_ms: u64,
    #[serde(default)]
    pub kill_after_ms: u64,
    #[serde(default)]
    pub progress_every_ms: u64,
    #[serde(default = "default_wrapper")]
    pub shell_wrapper: Vec<String>,
    /// Where `run --log` sent the merged log (docs/decisions.md OP-14); absent for the default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub full_log_path: Option<String>,
    /// `--max-log-bytes` (or the `[logs] max_bytes` default) when set: each log rotates
    /// to `<name>.1` past this size.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_log_bytes: Option<u64>,
    /// `--no-full-log`: no `full.log` records are written.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub no_full_log: bool,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct Notification {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notify_command: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notify_file: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_output_match: Option<OutputMatch>,
}

impl Notification {
    pub fn is_empty(&self) -> bool {
        self.notify_command.is_none() && self.notify_file.is_none() && self.on_output_match.is_none()
    }
}

#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum MatchType {
    #[default]
    Contains,
    Regex,
}

#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum StreamFilter {
    Stdout,
    Stderr,
    #[default]
    Either,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct OutputMatch {
    pub pattern: String,
    #[serde(default)]
    pub match_type: MatchType,
    #[serde(default)]
    pub stream: StreamFilter,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file: Option<String>,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Created,
    Running,
    Exited,
    Killed,
    Failed,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Created => "created",
            Status::Running => "running",
            Status::Exited => "exited",
            Status::Killed => "killed",
            Status::Failed => "failed",
        }
    }

    pub fn is_terminal(self) -> bool {
        matches!(self, Status::Exited | Status::Killed | Status::Failed)
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct StateJob {
    pub id: String,
    pub status: Status,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<String>,
}

/// The three keys are always written, as `null` when unknown: clients rely on them.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct JobResult {
    #[serde(default)]
    pub exit_code: Option<i32>,
    #[serde(default)]
    pub signal: Option<String>,
    #[serde(default)]
    pub duration_ms: Option<u64>,
}

/// `state.json`. The fields after `updated_at` are our optional additions (docs/decisions.md OP-1,
/// OP-2): the reason of a `failed` job and the pids with their start times, which let
/// every reader tell a live job from a dead one without trusting the file.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct State {
    pub job: StateJob,
    pub result: JobResult,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pid: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<String>,
    pub updated_at: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pid_start: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub supervisor_pid: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub supervisor_pid_start: Option<u64>,
    /// The PID namespace (inode of `/proc/self/ns/pid`) the pids above belong to: from
    /// another namespace they name other processes, or none (issue 11).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pid_ns: Option<u64>,
    /// Why the supervisor stopped writing the logs (a storage fault); they are cut short.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log_error: Option<String>,
    /// Bytes of the three logs (`full.log` records included) that are not on disk:
    /// rotated away by `--max-log-bytes`, or never written after `log_error`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log_dropped_bytes: Option<u64>,
    /// What `list` shows of `meta.json`, copied here so that `list` reads one file per job
    /// (`jobstore::meta_copy`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub meta_copy: Option<MetaCopy>,
}

/// The fields of `meta.json` that `list` shows or filters on, copied into `state.json` by
/// whoever writes `meta.json` (docs/decisions.md OP-2). `list` trusts the copy only
/// while `meta.json` is still a regular file of ours with the size and modification
/// time recorded in `meta_size` and `meta_mtime_ns`; otherwise it reads `meta.json`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct MetaCopy {
    pub meta_size: u64,
    pub meta_mtime_ns: u64,
    pub created_at: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cwd: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default)]
    pub tags: Vec<String>,
}

impl State {
    pub fn new(id: &str, status: Status, now: String) -> State {
        State {
            job: StateJob { id: id.to_string(), status, started_at: None },
            result: JobResult::default(),
            pid: None,
            finished_at: None,
            updated_at: now,
            error: None,
            pid_start: None,
            supervisor_pid: None,
            supervisor_pid_start: None,
            pid_ns: None,
            log_error: None,
            log_dropped_bytes: None,
            meta_copy: None,
        }
    }

    pub fn status(&self) -> Status {
        self.job.status
    }

    /// Marks the job terminal with the given outcome, keeping pids and `started_at`.
    /// Records the end. The reason is cut to `MAX_ERROR` bytes: a terminal record must
    /// always fit where it is written (a reason quoting a huge env-file line once made
    /// the failed record larger than any reader accepts, and so it was never written).
    pub fn finish(&mut self, status: Status, result: JobResult, error: Option<String>, now: String) {
        self.job.status = status;
        self.result = result;
        self.error = error.map(bounded_reason);
        self.finished_at = Some(now.clone());
        self.updated_at = now;
    }
}

/// The longest `error` reason a state record keeps, in bytes.
pub const MAX_ERROR: usize = 1024;

fn bounded_reason(mut reason: String) -> String {
    if reason.len() > MAX_ERROR {
        let mut cut = MAX_ERROR - '…'.len_utf8();
        while !reason.is_char_boundary(cut) {
            cut -= 1;
        }
        reason.truncate(cut);
        reason.push('…');
    }
    reason
}

/// `meta.json` as `list` reads it: the same required keys as `Meta` (so the same files
/// count as readable), but borrowed from the file's bytes and without the fields `list`
/// never shows, because at 20,000 jobs the allocations of a full parse dominate.
#[derive(Debug, Deserialize)]
pub struct MetaView<'a> {
    #[serde(borrow)]
    pub job: JobRefView<'a>,
    #[serde(borrow, rename = "schema_version")]
    _schema_version: Cow<'a, str>,
    #[serde(borrow, rename = "command")]
    _command: Vec<Cow<'a, str>>,
    #[serde(borrow)]
    pub created_at: Cow<'a, str>,
    #[serde(borrow, rename = "root")]
    _root: Cow<'a, str>,
    #[serde(borrow, rename = "env_keys")]
    _env_keys: Vec<Cow<'a, str>>,
    #[serde(default, borrow)]
    pub cwd: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    pub tags: Vec<Cow<'a, str>>,
    #[serde(default, borrow)]
    pub name: Option<Cow<'a, str>>,
}

#[derive(Debug, Deserialize)]
pub struct JobRefView<'a> {
    #[serde(borrow)]
    pub id: Cow<'a, str>,
}

/// What a notification event reports; the string is the `event_type` field.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum EventType {
    #[serde(rename = "job.finished")]
    Finished,
    #[serde(rename = "job.output.matched")]
    OutputMatched,
    /// Matches a slow sink could not take, counted (never in 0.1.18's files).
    #[serde(rename = "job.output.dropped")]
    OutputDropped,
    /// Lines the output-match thread could not take while it was still busy with
    /// earlier ones, counted (never in 0.1.18's files).
    #[serde(rename = "job.output.skipped")]
    OutputSkipped,
}

impl EventType {
    /// The name, as `event_type` and `AGENT_EXEC_EVENT_TYPE` carry it.
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::Finished => "job.finished",
            EventType::OutputMatched => "job.output.matched",
            EventType::OutputDropped => "job.output.dropped",
            EventType::OutputSkipped => "job.output.skipped",
        }
    }
}

/// Where a notification went: a shell command or an NDJSON file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SinkType {
    Command,
    File,
}

/// One of a job's two output streams.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Stream {
    Stdout,
    Stderr,
}

/// The `job.finished` event (docs/compatibility.md §10.2); `completion_event.json` adds
/// `delivery_results`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FinishedEvent {
    pub schema_version: String,
    pub event_type: EventType,
    pub job_id: String,
    pub state: String,
    pub command: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cwd: Option<String>,
    pub started_at: String,
    pub finished_at: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_ms: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signal: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    pub stdout_log_path: String,
    pub stderr_log_path: String,
}

/// The `job.output.matched` event (docs/compatibility.md §10.5).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MatchedEvent {
    pub schema_version: String,
    pub event_type: EventType,
    pub job_id: String,
    pub pattern: String,
    pub match_type: MatchType,
    pub stream: Stream,
    pub line: String,
    pub stdout_log_path: String,
    pub stderr_log_path: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct DeliveryResult {
    pub sink_type: SinkType,
    pub target: String,
    pub success: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    pub attempted_at: String,
}

/// An event followed by its delivery results, as stored in `completion_event.json` and
/// each line of `notification_events.ndjson`.
#[derive(Debug, Clone, Serialize)]
pub struct Delivered<'a, E: Serialize> {
    #[serde(flatten)]
    pub event: &'a E,
    pub delivery_results: &'a [DeliveryResult],
}

#[cfg(test)]
mod tests {
    use super::*;

    fn json<T: Serialize>(value: &T) -> String {
        serde_json::to_string(value).unwrap_or_default()
    }

    /// The enums write exactly the strings the event files and results always held.
    #[test]
    fn event_enums_serialize_to_their_names() {
        for (event, name) in [
            (EventType::Finished, "job.finished"),
            (EventType::OutputMatched, "job.output.matched"),
            (EventType::OutputDropped, "job.output.dropped"),
            (EventType::OutputSkipped, "job.output.skipped"),
        ] {
            assert_eq!(json(&event), format!("\"{name}\""));
            assert_eq!(event.as_str(), name);
            assert_eq!(serde_json::from_str::<EventType>(&format!("\"{name}\"")).ok(), Some(event));
        }
        assert_eq!(json(&SinkType::Command), "\"command\"");
        assert_eq!(json(&SinkType::File), "\"file\"");
        assert_eq!(json(&Stream::Stdout), "\"stdout\"");
        assert_eq!(json(&Stream::Stderr), "\"stderr\"");
    }
}
