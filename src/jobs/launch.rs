//! Shared by `run`, `start` and HTTP `POST /exec`: hand the job to a supervisor, then
//! observe it for the snapshot window or until it ends (docs/compatibility.md §7.3, docs/decisions.md OP-9).

use std::time::{Duration, Instant};

use super::ready::{ReadyWait, await_ready};
use crate::error::{Error, Result};
use crate::jobstore::waiter::{OnUnreadable, wait_for_end};
use crate::jobstore::{self, JobDir, liveness};
use crate::supervisor::{self, AfterAnswer, Handshake, LaunchSpec, Launching, Pids};
use crate::tail::snapshot;
use crate::time;
use crate::wire::{Clamped, JobResult, Readiness, RunBody, Snapshot, State, Status};

/// The snapshot window is clamped to this (docs/compatibility.md §8.1), visibly (`clamped`).
const MAX_WINDOW_MS: u64 = 10_000;

/// The first `running` record (docs/decisions.md OP-2). Without `pids` (`start`, or a
/// supervisor that died before reporting) it names this process as the one responsible
/// until the supervisor takes over, so that a front-end killed mid-launch leaves a job
/// that every reader sees as lost. With them (`run`) it names the supervisor and the
/// job process, held before its exec until the directory is in place.
pub fn initial_state(id: &str, pids: Option<&Pids>) -> State {
    let now = time::now();
    let mut state = State::new(id, Status::Running, now.clone());
    state.job.started_at = Some(now);
    if let Some(pids) = pids {
        state.supervisor_pid = Some(pids.supervisor);
        state.supervisor_pid_start = pids.supervisor_start;
        (state.pid, state.pid_start) = pids.job.map_or((None, None), |(pid, start)| (Some(pid), start));
    } else {
        state.supervisor_pid = Some(std::process::id());
        state.supervisor_pid_start = liveness::start_time(std::process::id());
    }
    // The supervisor keeps this field in every later write: all pids of the job live in
    // the namespace of the front-end that launched it.
    state.pid_ns = liveness::pid_namespace();
    state
}

/// Launches the supervisor and waits for its start handshake. A supervisor that died
/// before answering, or could not be launched at all, leaves a `failed` record.
pub fn hand_over(job: &JobDir, spec: &LaunchSpec) -> Result<()> {
    settle_handshake(job, supervisor::launch(job, spec))
}

/// The same for `run`: the directory is complete, the job may exec (`Launching::go`).
pub fn go(launching: &mut Launching, job: &JobDir, spec: &LaunchSpec, after: AfterAnswer) -> Result<()> {
    // The directory's new name is made durable while the job execs: once the answer
    // comes, a power cut can no longer leave the job under its staging name.
    let sync_root = || {
        if let Some(root) = job.path.parent() {
            jobstore::sync_dir(root);
        }
    };
    settle_handshake(job, launching.go(spec, after, sync_root))
}

fn settle_handshake(job: &JobDir, handshake: Result<Handshake>) -> Result<()> {
    crate::debug!("job {}: supervisor handshake {handshake:?}", job.id);
    // Whenever the job did not start, its record must say so before we answer: while it
    // names us as the process responsible, a long-lived front-end (`serve`, `mcp`) would
    // keep it `running` for good, and `run --wait --forever` would wait on itself; while
    // it names a supervisor that is about to exit, the answer would say `running`.
    let unrecorded = |reason: &str| {
        record_failure(job, reason).map_err(|e| {
            Error::internal(format!(
                "job {} could not start ({reason}), and its failure could not be recorded: {}",
                job.id, e.message
            ))
        })
    };
    match handshake {
        Ok(Handshake::Started) => Ok(()),
        // Held up (a stopped process): the record names the live processes, and the
        // supervisor records what comes of the start. The answer says `running`.
        Ok(Handshake::Pending) => Ok(()),
        // The supervisor recorded it, unless it could not write (a full disk).
        Ok(Handshake::Failed(reason)) => unrecorded(&reason),
        Ok(Handshake::Lost) => unrecorded("supervisor exited before starting the job"),
        Err(e) => {
            let _ = record_failure(job, &e.message);
            Err(e)
        }
    }
}

/// Records the job `failed` if its record still says `running`: the supervisor told us
/// (or showed, by dying) that the job never started, so nobody else will record its
/// end. With the in-place fallback, so that a full disk does not stop it.
fn record_failure(job: &JobDir, reason: &str) -> Result<()> {
    let locked = job.lock()?;
    let mut state = locked.read_state()?;
    if state.status() == Status::Running {
        state.finish(Status::Failed, JobResult::default(), Some(reason.to_string()), time::now());
        locked.write_final_state(&state)?;
    }
    Ok(())
}

#[derive(Debug, Clone)]
pub struct Observe {
    pub snapshot_after_ms: u64,
    pub tail_lines: u64,
    pub max_bytes: u64,
    pub wait: bool,
    pub poll_ms: u64,
    /// With `wait`: how long at most; `None` waits until the job ends.
    pub until_ms: Option<u64>,
    /// `--for-output` / `--for-port`: wait for readiness instead (issue 14).
    pub ready: Option<ReadyWait>,
}

pub struct Observed {
    /// Set when the snapshot window was lowered to `MAX_WINDOW_MS`.
    pub clamped: Option<Clamped>,
    pub state: State,
    pub waited_ms: u64,
    pub snapshot: Option<Snapshot>,
    pub final_snapshot: Option<Snapshot>,
    pub readiness: Option<Readiness>,
}

pub fn observe(job: &JobDir, options: &Observe) -> Observed {
    let t0 = Instant::now();
    if let Some(ready) = &options.ready {
        let (state, readiness) = await_ready(job, ready).unwrap_or_else(|_| {
            (super::current(job).unwrap_or_else(|_| initial_state(&job.id, None)), Readiness::not_ready())
        });
        let waited_ms = t0.elapsed().as_millis() as u64;
        return Observed {
            clamped: None,
            state,
            waited_ms,
            snapshot: None,
            final_snapshot: None,
            readiness: Some(readiness),
        };
    }
    let window_ms = if options.wait { options.until_ms } else { Some(options.snapshot_after_ms.min(MAX_WINDOW_MS)) };
    let clamped = (!options.wait && options.snapshot_after_ms > MAX_WINDOW_MS)
        .then_some(Clamped { snapshot_after_ms: Some(MAX_WINDOW_MS), until_ms: None });
    let current = || super::current(job).unwrap_or_else(|_| initial_state(&job.id, None));
    let state = match window_ms {
        Some(0) => current(),
        _ => {
            let deadline = window_ms.map(|ms| t0 + Duration::from_millis(ms));
            let poll = Duration::from_millis(if options.wait { options.poll_ms } else { 15 });
            wait_for_end(job, deadline, poll, OnUnreadable::Retry, super::current).unwrap_or_else(|_| current())
        }
    };
    let waited_ms = if window_ms == Some(0) && !options.wait { 0 } else { t0.elapsed().as_millis() as u64 };
    let take = || {
        snapshot(
            &job.file(jobstore::STDOUT_LOG),
            &job.file(jobstore::STDERR_LOG),
            options.tail_lines,
            options.max_bytes,
            state.log_error.clone(),
        )
    };
    let (snapshot, final_snapshot) = match (options.wait, window_ms) {
        (false, Some(0)) => (None, None),
        (false, _) => (Some(take()), None),
        (true, _) if state.status().is_terminal() => (None, Some(take())),
        (true, _) => (None, None),
    };
    Observed { clamped, state, waited_ms, snapshot, final_snapshot, readiness: None }
}

/// The `run`/`start`/`exec` response. Without `--wait`, a job still going is reported as
/// `running`, as 0.1.18 clients expect; a job known to have ended is reported with its
/// real state and outcome (docs/decisions.md OP-9).
pub fn run_body(
    job: &JobDir,
    observed: Observed,
    tags: Vec<String>,
    env_vars: Option<Vec<String>>,
    since: Instant,
) -> RunBody {
    let Observed { clamped, state, waited_ms, snapshot, final_snapshot, readiness } = observed;
    let ended = super::Ended::of(&state);
    RunBody {
        job_id: job.id.clone(),
        state: state.status().into(),
        tags,
        env_vars,
        snapshot,
        stdout_log_path: job.file_string(jobstore::STDOUT_LOG),
        stderr_log_path: job.file_string(jobstore::STDERR_LOG),
        waited_ms,
        elapsed_ms: since.elapsed().as_millis() as u64,
        exit_code: ended.exit_code,
        signal: ended.signal,
        error: ended.error,
        finished_at: ended.finished_at,
        final_snapshot,
        clamped,
        readiness,
    }
}
