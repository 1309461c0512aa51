//! `kill`: signal a running job's process group and record it (DECISIONS OP-3, OP-4,
//! OP-8).

use crate::cli::Args;
use crate::error::{Code, Error, Result};
use crate::jobstore::{JobDir, Root, liveness};
use crate::signals::{self, Requested};
use crate::time;
use crate::wire::{JobResult, KillBody, Reply, Status};

pub fn kill(args: &Args, root: &Root) -> Result<Reply> {
    let requested = signals::parse(args.value_or_default("signal").unwrap_or("TERM")).map_err(Error::usage)?;
    let given = args.job_id();
    let job = root.lookup(given)?;
    signal_job(&job, given, &requested, true)?;
    Ok(Reply::new("kill", &KillBody { job_id: job.id.clone(), signal: requested.echo }))
}

/// Sends the signal if the job is running; with `record`, writes the `killed` record
/// that 0.1.18 clients expect to read right after a kill. Stopping and continuing do not
/// end a job, so they are never recorded as a kill.
pub fn signal_job(job: &JobDir, given: &str, requested: &Requested, record: bool) -> Result<()> {
    let state = job.read_live_state()?;
    match state.status() {
        Status::Created => {
            return Err(Error::new(
                Code::InvalidState,
                format!(
                    "invalid job state: job {given} is in 'created' state and has not been started; cannot send signal"
                ),
            ));
        }
        Status::Running => {}
        _ => return Ok(()),
    }
    let Some(pid) = state.pid else { return Ok(()) };
    // A pid whose start time changed is not our job any more (OP-4): the job ended
    // and the supervisor is about to record it.
    if !liveness::same_process(pid, state.pid_start) {
        return Ok(());
    }
    send(pid, requested.number)?;
    let ends_job = requested.number != libc::SIGSTOP && requested.number != libc::SIGCONT;
    if record && ends_job {
        let _lock = job.lock()?;
        let mut current = job.read_state()?;
        if current.status() == Status::Running {
            let result =
                JobResult { exit_code: None, signal: Some(signals::name(requested.number)), duration_ms: None };
            current.finish(Status::Killed, result, None, time::now());
            job.write_state(&current)?;
        }
    }
    Ok(())
}

/// Signals the process group, falling back to the process itself; a process that is
/// already gone is not an error.
fn send(pid: u32, signal: i32) -> Result<()> {
    let pid = i32::try_from(pid).map_err(|_| Error::internal(format!("invalid pid {pid}")))?;
    for target in [-pid, pid] {
        // SAFETY: kill(2) with a pid we verified to be the job's.
        if unsafe { libc::kill(target, signal) } == 0 {
            return Ok(());
        }
        let err = std::io::Error::last_os_error();
        if err.raw_os_error() != Some(libc::ESRCH) {
            return Err(Error::io(format!("send signal to {target}"), err));
        }
    }
    Ok(())
}
