//! The engine called as a library: typed requests, no argv, no HTTP. Launching needs
//! the real binary (`__supervise`), so jobs that run are the integration tests' business;
//! here jobs are created, or their records written as a supervisor would leave them.

use std::sync::mpsc;
use std::time::Duration;

use super::*;
use crate::error::Code;
use crate::jobstore::{JobDir, Root};
use crate::signals;
use crate::time;
use crate::wire::{JobState, Notification, State, Status};

/// A hang detector for the deadlock tests, not a timing goal.
const HANG: Duration = Duration::from_secs(30);

fn root() -> (tempfile::TempDir, Root) {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
    let root = Root { path: dir.path().join("jobs") };
    (dir, root)
}

fn definition(command: &[&str]) -> Definition {
    Definition {
        command: command.iter().map(|w| w.to_string()).collect(),
        name: None,
        env: vec!["A=1".into(), "S=secret".into()],
        env_files: Vec::new(),
        inherit_env: true,
        mask: vec!["S".into()],
        tags: vec!["t.one".into()],
        timeout_ms: 0,
        kill_after_ms: 0,
        progress_every_ms: 0,
        notification: None,
        wrapper: vec!["sh".into(), "-c".into()],
        cwd: Some("/".into()),
        max_log_bytes: None,
        no_full_log: false,
    }
}

/// A `running` record whose supervisor is gone: our own pid with a start time that is
/// not ours.
fn write_lost(job: &JobDir) {
    let mut state = State::new(&job.id, Status::Running, time::now());
    state.supervisor_pid = Some(std::process::id());
    state.supervisor_pid_start = liveness::start_time(std::process::id()).map(|s| s + 1);
    state.pid_ns = liveness::pid_namespace();
    let locked = job.lock().unwrap_or_else(|e| panic!("lock: {}", e.message));
    locked.write_state(&state).unwrap_or_else(|e| panic!("write: {}", e.message));
}

fn created(root: &Root) -> JobDir {
    let body = create(root, &definition(&["echo", "hi"])).unwrap_or_else(|e| panic!("create: {}", e.message));
    root.lookup(&body.job_id).unwrap_or_else(|e| panic!("lookup: {}", e.message))
}

#[test]
fn a_created_job_through_every_reader_and_writer() {
    let (_dir, root) = root();
    let job = created(&root);
    let reported = status(&root, &job.id[..10]).unwrap_or_else(|e| panic!("status: {}", e.message));
    assert_eq!((reported.job_id.as_str(), reported.state), (job.id.as_str(), JobState::Created));
    let meta = job.read_meta().unwrap_or_else(|e| panic!("meta: {}", e.message));
    assert_eq!(meta.env_vars, ["A=1", "S=***"]);

    let waited =
        wait(&root, &WaitRequest { job_id: job.id.clone(), until: Some(Duration::ZERO), poll: Duration::ZERO });
    assert_eq!(waited.map(|w| w.state).ok(), Some(JobState::Created));
    let tail = tail(&root, &TailRequest { job_id: job.id.clone(), tail_lines: 0, max_bytes: 10 });
    assert_eq!(tail.map(|t| t.stdout_tail).ok().as_deref(), Some(""));

    let signal = signals::parse("TERM").unwrap_or_else(|e| panic!("{e}"));
    let refused = kill(&root, &KillRequest { job_id: job.id.clone(), signal }).err().map(|e| e.code);
    assert_eq!(refused, Some(Code::InvalidState));

    let tagged = tag_set(&root, &job.id, vec!["a".into(), "b.c".into()]);
    assert_eq!(tagged.map(|t| t.tags).ok(), Some(vec!["a".to_string(), "b.c".to_string()]));
    let change = NotifyChange { notify_file: Some("/tmp/x".into()), ..NotifyChange::default() };
    let notified = notify_set(&root, &job.id, &change).map(|n| n.notification).ok();
    assert_eq!(notified, Some(Notification { notify_file: Some("/tmp/x".into()), ..Notification::default() }));

    let filter = ListFilter { all: true, tags: vec!["b.*".into()], ..ListFilter::default() };
    let listed = list(&root, &filter).unwrap_or_else(|e| panic!("list: {}", e.message));
    assert_eq!(listed.jobs.iter().map(|j| j.job_id.as_str()).collect::<Vec<_>>(), [job.id.as_str()]);

    let policy = GcPolicy { older_than: Some("0s".into()), keep: Some(0), max_bytes: None, dry_run: true };
    let gc_body = gc(&root, &policy).unwrap_or_else(|e| panic!("gc: {}", e.message));
    assert_eq!(gc_body.jobs.first().map(|j| j.reason.as_str()), Some("non_terminal_status"));

    let deleted = delete(&root, &DeleteTarget::One(job.id.clone()), false).map(|d| d.deleted).ok();
    assert_eq!(deleted, Some(1));
    assert_eq!(status(&root, &job.id).err().map(|e| e.code), Some(Code::JobNotFound));
}

#[test]
fn a_lost_supervisor_is_repaired_and_persisted_by_the_explicit_step() {
    let (_dir, root) = root();
    let job = created(&root);
    write_lost(&job);
    // Reading alone changes nothing.
    let raw = job.read_state().unwrap_or_else(|e| panic!("read: {}", e.message));
    assert_eq!(raw.status(), Status::Running);
    let reported = status(&root, &job.id).unwrap_or_else(|e| panic!("status: {}", e.message));
    assert_eq!((reported.state, reported.error.as_deref()), (JobState::Failed, Some(liveness::SUPERVISOR_LOST)));
    let persisted = job.read_state().unwrap_or_else(|e| panic!("read: {}", e.message));
    assert_eq!(persisted.status(), Status::Failed);
}

/// The hazard: `flock` on a second descriptor of a file this process already locked
/// waits for ourselves. A repair under the lock takes the guard instead of locking, so
/// it completes; calling the locking step (`current`) there instead never returns.
#[test]
fn a_repair_inside_a_locked_section_cannot_deadlock() {
    let (_dir, root) = root();
    let job = created(&root);
    write_lost(&job);
    let (done, finished) = mpsc::channel();
    let worker = job.clone();
    std::thread::spawn(move || {
        let Ok(locked) = worker.lock() else { return };
        let seen = locked.read_state().unwrap_or_else(|e| panic!("read: {}", e.message));
        let repaired = liveness::repair(&locked, seen);
        let _ = done.send(repaired.status());
    });
    assert_eq!(finished.recv_timeout(HANG).ok(), Some(Status::Failed), "the repair under the lock hung");
}

/// Readers never lock: a status of a settled job answers while another holder keeps
/// the lock.
#[test]
fn readers_do_not_wait_for_the_lock() {
    let (_dir, root) = root();
    let job = created(&root);
    let locked = job.lock().unwrap_or_else(|e| panic!("lock: {}", e.message));
    let (done, finished) = mpsc::channel();
    let reader_root = Root { path: root.path.clone() };
    let id = job.id.clone();
    std::thread::spawn(move || {
        let _ = done.send(status(&reader_root, &id).map(|s| s.state).ok());
    });
    assert_eq!(finished.recv_timeout(HANG).ok().flatten(), Some(JobState::Created), "status waited for the lock");
    drop(locked);
}

fn sources(dir: &str) -> Vec<(std::path::PathBuf, String)> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(dir);
    let entries = std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    entries.flatten().map(|entry| (entry.path(), std::fs::read_to_string(entry.path()).unwrap_or_default())).collect()
}

/// The layering: the engine imports no front door.
#[test]
fn the_engine_imports_no_front_door() {
    for (path, text) in sources("src/jobs") {
        for door in ["cli", "commands", "serve", "mcp"] {
            let import = format!("crate::{door}");
            assert!(!text.contains(&import), "{} uses {import}", path.display());
        }
    }
}

/// The locking: outside the store and the supervisor, job records are written only
/// through the lock's guard (`locked`) or into a job being created (`staging`).
#[test]
fn records_are_written_only_under_the_lock() {
    for dir in ["src/jobs", "src/commands", "src/serve", "src/mcp"] {
        for (path, text) in sources(dir).into_iter().filter(|(path, _)| !path.ends_with("jobs/tests.rs")) {
            for call in [".write_state(", ".write_meta("] {
                for (at, _) in text.match_indices(call) {
                    let receiver = text[..at].rsplit(|c: char| !c.is_alphanumeric() && c != '_').next();
                    assert!(
                        matches!(receiver, Some("locked" | "staging")),
                        "{}: {call} on {receiver:?}",
                        path.display()
                    );
                }
            }
        }
    }
}
