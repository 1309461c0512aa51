//! Response bodies (docs/compatibility.md §8) and the success/error envelopes (docs/compatibility.md §2.3, §2.4).
//! Optional fields are omitted, never `null`.

use serde::Serialize;

use super::{Notification, SCHEMA_VERSION, Status};
use crate::error::Error;

#[derive(Serialize)]
struct Envelope<'a, T: Serialize> {
    schema_version: &'static str,
    ok: bool,
    #[serde(rename = "type")]
    kind: &'a str,
    #[serde(flatten)]
    body: &'a T,
}

#[derive(Serialize)]
struct ErrorEnvelope<'a> {
    schema_version: &'static str,
    ok: bool,
    #[serde(rename = "type")]
    kind: &'static str,
    error: ErrorDetail<'a>,
}

#[derive(Serialize)]
struct ErrorDetail<'a> {
    code: &'a str,
    message: &'a str,
    retryable: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    job_id: Option<&'a str>,
}

/// One finished response: the whole envelope already serialized as compact JSON, in the
/// contract's key order. Serializing at construction keeps the printer, the YAML emitter
/// and the HTTP layer free of per-command types.
#[derive(Debug, Clone)]
pub struct Reply {
    pub json: String,
}

impl Reply {
    pub fn new<T: Serialize>(kind: &'static str, body: &T) -> Reply {
        Reply::with_capacity(kind, body, 256)
    }

    /// `new` for an answer expected to be about `capacity` bytes long. A long answer
    /// (`list` of thousands of jobs: half a megabyte) grown from a small buffer was
    /// copied at every doubling, each copy into pages never touched before: a third of
    /// `list`'s page faults, each dear on a virtual machine. A large buffer is mapped
    /// lazily, so a generous guess costs nothing but address space.
    pub fn with_capacity<T: Serialize>(kind: &'static str, body: &T, capacity: usize) -> Reply {
        let envelope = Envelope { schema_version: SCHEMA_VERSION, ok: true, kind, body };
        let mut json = Vec::with_capacity(capacity);
        let json = match serde_json::to_writer(&mut json, &envelope) {
            // serde_json writes valid UTF-8 only.
            Ok(()) => String::from_utf8(json).unwrap_or_default(),
            // Our bodies are plain structs of strings and numbers; this cannot fail, but
            // if it ever did the client must still get one well-formed object.
            Err(e) => error_json(&Error::internal(format!("serialize response: {e}"))),
        };
        Reply { json }
    }
}

impl Reply {
    /// Writes what `Reply::new(kind, body).json` would hold, then a newline, to `out` as it
    /// is serialized, never holding it whole (`list` of 2,000 jobs: half a megabyte, whose
    /// fresh pages and copy came after all the reading; written as it is made, the reader
    /// takes it in meanwhile).
    pub fn write<T: Serialize, W: std::io::Write + ?Sized>(
        kind: &'static str,
        body: &T,
        out: &mut W,
    ) -> std::io::Result<()> {
        let envelope = Envelope { schema_version: SCHEMA_VERSION, ok: true, kind, body };
        serde_json::to_writer(&mut *out, &envelope)?;
        out.write_all(b"\n")
    }

    /// The same envelope with its keys in lexicographic order, as HTTP answers list them
    /// (docs/compatibility.md §2.2): built through `serde_json::Value`, whose maps are sorted.
    pub fn sorted<T: Serialize>(kind: &'static str, body: &T) -> Reply {
        let envelope = Envelope { schema_version: SCHEMA_VERSION, ok: true, kind, body };
        let json = serde_json::to_value(&envelope)
            .map(|value| value.to_string())
            .unwrap_or_else(|e| error_json(&Error::internal(format!("serialize response: {e}"))));
        Reply { json }
    }
}

pub fn error_json(err: &Error) -> String {
    let envelope = ErrorEnvelope {
        schema_version: SCHEMA_VERSION,
        ok: false,
        kind: "error",
        error: ErrorDetail {
            code: err.code.as_str(),
            message: &err.message,
            retryable: false,
            job_id: err.job_id.as_deref(),
        },
    };
    serde_json::to_string(&envelope).unwrap_or_default()
}

/// A job's state as answers report it: its recorded status, or `unknown` when
/// `state.json` cannot be read (`list`, `delete`, `gc` entries).
#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum JobState {
    Created,
    Running,
    Exited,
    Killed,
    Failed,
    Unknown,
}

/// Every `JobState` as answers spell it, in lifecycle order (filters and completions).
pub const STATE_NAMES: &[&str] = &["created", "running", "exited", "killed", "failed", "unknown"];

impl JobState {
    pub fn as_str(self) -> &'static str {
        match self {
            JobState::Unknown => "unknown",
            JobState::Created => Status::Created.as_str(),
            JobState::Running => Status::Running.as_str(),
            JobState::Exited => Status::Exited.as_str(),
            JobState::Killed => Status::Killed.as_str(),
            JobState::Failed => Status::Failed.as_str(),
        }
    }

    pub fn is_terminal(self) -> bool {
        matches!(self, JobState::Exited | JobState::Killed | JobState::Failed)
    }
}

impl From<Status> for JobState {
    fn from(status: Status) -> JobState {
        match status {
            Status::Created => JobState::Created,
            Status::Running => JobState::Running,
            Status::Exited => JobState::Exited,
            Status::Killed => JobState::Killed,
            Status::Failed => JobState::Failed,
        }
    }
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Snapshot {
    pub stdout_tail: String,
    pub stderr_tail: String,
    pub truncated: bool,
    pub encoding: &'static str,
    pub stdout_observed_bytes: u64,
    pub stderr_observed_bytes: u64,
    pub stdout_included_bytes: u64,
    pub stderr_included_bytes: u64,
    /// Why the logs are cut short (a storage fault hit the supervisor); `truncated` is
    /// then true.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub log_error: Option<String>,
}

/// The body of `run`, `start` and HTTP `POST /exec`.
#[derive(Debug, Serialize)]
pub struct RunBody {
    pub job_id: String,
    pub state: JobState,
    pub tags: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub env_vars: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub snapshot: Option<Snapshot>,
    pub stdout_log_path: String,
    pub stderr_log_path: String,
    pub waited_ms: u64,
    pub elapsed_ms: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub signal: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub final_snapshot: Option<Snapshot>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub clamped: Option<Clamped>,
    /// Only with `--for-output` / `--for-port`.
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    pub readiness: Option<Readiness>,
}

/// Which requested bounds were lowered to their maximum, and to what: present only when
/// one was, so answers to requests within the bounds stay as 0.1.18 printed them.
#[derive(Debug, Clone, Copy, Default, Serialize, PartialEq, Eq)]
pub struct Clamped {
    /// The snapshot window (`--snapshot-after`, MCP `snapshot_after_ms`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub snapshot_after_ms: Option<u64>,
    /// A wait's bound (HTTP `?until=` and `until_ms`, MCP `until_ms`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub until_ms: Option<u64>,
}

#[derive(Debug, Serialize)]
pub struct CreateBody {
    pub job_id: String,
    pub state: JobState,
    pub stdout_log_path: String,
    pub stderr_log_path: String,
}

#[derive(Debug, Serialize)]
pub struct StatusBody {
    pub job_id: String,
    pub state: JobState,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i32>,
    pub created_at: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub started_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub signal: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Set when the job's pids were recorded in another PID namespace: the state is
    /// what `state.json` says, unchecked (issue 11).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub liveness_unchecked: bool,
}

#[derive(Debug, Serialize)]
pub struct TailBody {
    pub job_id: String,
    pub stdout_tail: String,
    pub stderr_tail: String,
    pub truncated: bool,
    pub encoding: &'static str,
    pub stdout_log_path: String,
    pub stderr_log_path: String,
    pub stdout_observed_bytes: u64,
    pub stderr_observed_bytes: u64,
    pub stdout_included_bytes: u64,
    pub stderr_included_bytes: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub log_error: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct WaitBody {
    pub job_id: String,
    pub state: JobState,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub signal: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Set when the job's pids were recorded in another PID namespace: the state is
    /// what `state.json` says, unchecked (issue 11).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub liveness_unchecked: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub clamped: Option<Clamped>,
    /// Only with `--for-output` / `--for-port`.
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    pub readiness: Option<Readiness>,
}

#[derive(Debug, Serialize)]
pub struct KillBody {
    pub job_id: String,
    pub signal: String,
    /// Whether a live process of the job was signalled (issue 11): `false` when the job
    /// had already ended, or its group was gone by the time of the signal.
    pub delivered: bool,
    /// The recorded terminal state, when nothing was signalled because the job had
    /// already finished.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub state: Option<JobState>,
}

#[derive(Debug, Serialize)]
pub struct JobSummary {
    pub job_id: String,
    /// `--name`, when the job has one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    pub state: JobState,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i32>,
    pub created_at: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub started_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub updated_at: Option<String>,
    pub tags: Vec<String>,
    /// Set when the job's pids were recorded in another PID namespace: the state is
    /// what `state.json` says, unchecked (issue 11).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub liveness_unchecked: bool,
}

#[derive(Debug, Serialize)]
pub struct ListBody {
    pub root: String,
    pub jobs: Vec<JobSummary>,
    pub truncated: bool,
    pub skipped: u64,
}

#[derive(Debug, Serialize)]
pub struct DeleteEntry {
    pub job_id: String,
    pub state: JobState,
    pub action: &'static str,
    pub reason: String,
}

#[derive(Debug, Serialize)]
pub struct DeleteBody {
    pub root: String,
    pub dry_run: bool,
    pub deleted: u64,
    pub skipped: u64,
    pub jobs: Vec<DeleteEntry>,
}

#[derive(Debug, Serialize)]
pub struct GcEntry {
    pub job_id: String,
    pub state: JobState,
    pub action: &'static str,
    pub reason: String,
    pub bytes: u64,
}

#[derive(Debug, Serialize)]
pub struct GcBody {
    pub root: String,
    pub dry_run: bool,
    pub older_than: String,
    pub older_than_source: &'static str,
    /// `--keep` and `--max-bytes`, echoed only when given.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub keep: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_bytes: Option<u64>,
    pub deleted: u64,
    pub skipped: u64,
    pub freed_bytes: u64,
    pub jobs: Vec<GcEntry>,
}

#[derive(Debug, Serialize)]
pub struct TagSetBody {
    pub job_id: String,
    pub tags: Vec<String>,
}

#[derive(Debug, Serialize)]
pub struct NotifySetBody {
    pub job_id: String,
    pub notification: Notification,
}

#[derive(Debug, Serialize)]
pub struct SchemaBody {
    pub schema_format: &'static str,
    pub schema: serde_json::Value,
    pub generated_at: String,
}

#[derive(Debug, Serialize)]
pub struct InstalledSkill {
    pub name: String,
    pub source_type: String,
    pub path: String,
}

#[derive(Debug, Serialize)]
pub struct InstallSkillsBody {
    pub skills: Vec<InstalledSkill>,
    pub global: bool,
    pub lock_file_path: String,
}

#[derive(Debug, Serialize)]
pub struct Empty {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_serialize_to_the_0_1_18_strings() {
        let all = [JobState::Created, JobState::Running, JobState::Exited, JobState::Killed, JobState::Failed];
        for (state, name) in all.into_iter().chain([JobState::Unknown]).zip(STATE_NAMES) {
            assert_eq!(serde_json::to_string(&state).ok(), Some(format!("\"{name}\"")));
            assert_eq!(state.as_str(), *name);
        }
    }
    use crate::error::Code;

    #[test]
    fn envelope_keys_come_first_in_order() {
        let body = KillBody { job_id: "01A".into(), signal: "TERM".into(), delivered: true, state: None };
        let reply = Reply::new("kill", &body);
        assert_eq!(
            reply.json,
            r#"{"schema_version":"0.1","ok":true,"type":"kill","job_id":"01A","signal":"TERM","delivered":true}"#
        );
    }

    #[test]
    fn error_envelope_matches_the_contract_example() {
        let err = Error::new(Code::JobNotFound, "job not found: 01XYZ");
        assert_eq!(
            error_json(&err),
            r#"{"schema_version":"0.1","ok":false,"type":"error","error":{"code":"job_not_found","message":"job not found: 01XYZ","retryable":false}}"#
        );
    }

    #[test]
    fn a_written_reply_is_the_reply_and_a_newline() {
        let body = KillBody { job_id: "01A".into(), signal: "TERM".into(), delivered: true, state: None };
        let mut out = Vec::new();
        Reply::write("kill", &body, &mut out).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(out, format!("{}\n", Reply::new("kill", &body).json).into_bytes());
    }

    #[test]
    fn empty_body_is_just_the_envelope() {
        assert_eq!(Reply::new("health", &Empty {}).json, r#"{"schema_version":"0.1","ok":true,"type":"health"}"#);
    }
}

/// The many-job `wait` (issue 14): every job waited for, in the order given, and counts.
#[derive(Debug, Serialize)]
pub struct WaitManyBody {
    pub jobs: Vec<WaitedJob>,
    pub summary: WaitSummary,
    /// REST `GET /v1/wait` only: `until_ms` was lowered to `--max-wait-ms`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub clamped: Option<Clamped>,
}

#[derive(Debug, Serialize)]
pub struct WaitedJob {
    pub job_id: String,
    pub state: JobState,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub signal: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<String>,
}

/// `finished` + `running` is the number of jobs; `failed_count` counts the finished
/// ones that did not exit 0 (a non-zero code, a signal, or `failed`).
#[derive(Debug, Serialize)]
pub struct WaitSummary {
    pub finished: u64,
    pub running: u64,
    pub failed_count: u64,
}

/// `--for-output` / `--for-port` (issue 14): whether the job became ready and, for an
/// output match, the line, its stream and the byte offset of its start in that log.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Readiness {
    pub ready: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub matched_line: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stream: Option<super::Stream>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub offset: Option<u64>,
}

impl Readiness {
    pub fn ready() -> Readiness {
        Readiness { ready: true, matched_line: None, stream: None, offset: None }
    }

    pub fn not_ready() -> Readiness {
        Readiness { ready: false, matched_line: None, stream: None, offset: None }
    }
}
