//! `kill`: signal a job's process group and record it (docs/decisions.md OP-3, OP-4, OP-8).
//!
//! The target is whatever is alive of the job's group (checked by group, session and
//! start times, `liveness::job_group`), whatever `state.json` says: a job that traps
//! TERM stays alive after the `killed` record, and a job whose supervisor was killed is
//! recorded `failed` while it runs on. Both must still yield to `kill --signal KILL`.

use crate::error::{Code, Error, Result};
use crate::jobstore::{Root, liveness};
use crate::signals::{self, Requested};
use crate::time;
use crate::wire::{JobResult, KillBody, State, Status};

/// How long `kill` waits for the lock to write its `killed` record.
const KILL_RECORD_PATIENCE: std::time::Duration = std::time::Duration::from_secs(1);

#[derive(Debug, Clone)]
pub struct KillRequest {
    /// The id or a unique prefix, as given (echoed in messages).
    pub job_id: String,
    pub signal: Requested,
}

/// Signals the job's group if any member lives and, for a signal that ends jobs, writes
/// the `killed` record that 0.1.18 clients expect to read right after a kill of a
/// running job. Stopping and continuing never end a job.
pub fn kill(root: &Root, request: &KillRequest) -> Result<KillBody> {
    let (given, requested) = (request.job_id.as_str(), &request.signal);
    let job = root.lookup(given)?;
    let state = super::current(&job)?;
    if state.status() == Status::Created {
        return Err(Error::new(
            Code::InvalidState,
            format!(
                "invalid job state: job {given} is in 'created' state and has not been started; cannot send signal"
            ),
        ));
    }
    if !liveness::checkable(&state) {
        return Err(Error::new(
            Code::InvalidState,
            format!(
                "invalid job state: job {given} was started in another PID namespace, whose processes cannot be \
                 checked or signalled from here; run kill inside that namespace"
            ),
        ));
    }
    let delivered = match target(&state) {
        Some(group) => send(group, requested.number)?,
        None => false,
    };
    let ends_job = requested.number != libc::SIGSTOP && requested.number != libc::SIGCONT;
    // The signal is sent: a lock that does not come free soon (its holder may be
    // stopped) costs only the `killed` record, which the supervisor's record of the real
    // end replaces anyway (docs/decisions.md OP-3). Failing here would report an error
    // for a kill that happened.
    if delivered
        && ends_job
        && let Ok(locked) = job.lock_within(KILL_RECORD_PATIENCE)
    {
        let mut current = locked.read_state()?;
        if current.status() == Status::Running {
            let result =
                JobResult { exit_code: None, signal: Some(signals::name(requested.number)), duration_ms: None };
            current.finish(Status::Killed, result, None, time::now());
            locked.write_state(&current)?;
        }
    }
    let finished = (!delivered && state.status().is_terminal()).then(|| state.status().into());
    Ok(KillBody { job_id: job.id.clone(), signal: requested.echo.clone(), delivered, state: finished })
}

/// The group to signal. A 0.1.18 record has no start time: its pid is trusted only while
/// the job is recorded running, as 0.1.18 did.
fn target(state: &State) -> Option<u32> {
    liveness::job_group(state).or_else(|| {
        let legacy = state.status() == Status::Running && state.pid_start.is_none();
        state.pid.filter(|&pid| legacy && liveness::same_process(pid, None))
    })
}

/// Signals the process group, falling back to the process itself; `false` when both are
/// already gone.
fn send(pid: u32, signal: i32) -> Result<bool> {
    let pid = i32::try_from(pid).map_err(|_| Error::internal(format!("invalid pid {pid}")))?;
    if pid <= 1 {
        return Ok(false);
    }
    for target in [-pid, pid] {
        // SAFETY: kill(2) with a pid above 1 that we verified to be the job's.
        if unsafe { libc::kill(target, signal) } == 0 {
            return Ok(true);
        }
        let err = std::io::Error::last_os_error();
        if err.raw_os_error() != Some(libc::ESRCH) {
            return Err(Error::io(format!("send signal to {target}"), err));
        }
    }
    Ok(false)
}
