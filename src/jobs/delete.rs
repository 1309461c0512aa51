//! `delete`: remove one job by id, or every finished job of the current directory
//! (docs/compatibility.md §8.9, docs/decisions.md OP-18, OP-19). The safety rules live in `prune`; this
//! module only applies the contract's selection and reporting rules.

use std::time::{Duration, Instant};

use super::define::effective_cwd;
use super::prune::{BULK_LOCK_PATIENCE, Removal, Standing, remove_if};
use crate::error::{Code, Error, Result};
use crate::jobstore::{JobDir, LOCK_PATIENCE, Root, liveness};
use crate::wire::{DeleteBody, DeleteEntry, Status};

/// A job whose terminal state is recorded may still have its supervisor finishing up
/// (draining late output, running completion sinks). `wait X && delete X` should not
/// fail because of that, so single mode gives the supervisor this long to exit: the
/// drain bound plus a margin. A sink that hangs longer still makes `delete` refuse.
const SETTLE_GRACE: Duration = Duration::from_millis(3000);

#[derive(Debug, Clone)]
pub enum DeleteTarget {
    /// One job by id or unique prefix, as given (echoed in messages).
    One(String),
    /// Every finished job started in the current directory.
    AllFinishedHere,
}

pub fn delete(root: &Root, target: &DeleteTarget, dry_run: bool) -> Result<DeleteBody> {
    let (deleted, skipped, jobs) = match target {
        DeleteTarget::AllFinishedHere => delete_all(root, dry_run)?,
        DeleteTarget::One(given) => delete_one(given, root, dry_run)?,
    };
    Ok(DeleteBody { root: root.display(), dry_run, deleted, skipped, jobs })
}

fn still_running(given: &str) -> Error {
    Error::new(Code::InvalidState, format!("invalid job state: cannot delete job {given}: job is currently running"))
}

/// The job has ended, but its supervisor is still alive: delivering its last
/// notifications (each sink has a timeout) before it exits.
fn still_finishing(given: &str) -> Error {
    Error::new(
        Code::InvalidState,
        format!(
            "invalid job state: cannot delete job {given}: it has ended, but its supervisor is still delivering its \
             notifications (for at most 30 s after its completion notification, plus the timeout of one in progress)"
        ),
    )
}

/// The job has ended (recorded), but processes of its group outlive it: a job that
/// trapped TERM after its `killed` record, or one whose supervisor was killed.
fn still_has_processes(given: &str, group: u32) -> Error {
    Error::new(
        Code::InvalidState,
        format!(
            "invalid job state: cannot delete job {given}: it has ended, but processes of its group {group} still run (`agent-exec kill {given}` ends them)"
        ),
    )
}

fn delete_one(given: &str, root: &Root, dry_run: bool) -> Result<(u64, u64, Vec<DeleteEntry>)> {
    let job = root.lookup(given)?;
    let standing = settle(&job);
    match &standing {
        Standing::Live(state) if !liveness::checkable(state) => {
            return Err(Error::new(
                Code::InvalidState,
                format!(
                    "invalid job state: cannot delete job {given}: it was started in another PID namespace, where \
                     its processes cannot be checked from here; delete it from inside that namespace"
                ),
            ));
        }
        Standing::Live(state) if state.status().is_terminal() => {
            return Err(match liveness::job_group(state) {
                Some(group) => still_has_processes(given, group),
                None => still_finishing(given),
            });
        }
        Standing::Live(_) => return Err(still_running(given)),
        _ => {}
    }
    let entry = |standing: &Standing, action| DeleteEntry {
        job_id: job.id.clone(),
        state: standing.state(),
        action,
        reason: "explicit_delete".to_string(),
    };
    if dry_run {
        return Ok((0, 0, vec![entry(&standing, "would_delete")]));
    }
    match remove_if(&job, LOCK_PATIENCE, |now| !matches!(now, Standing::Live(_))) {
        Removal::Removed => Ok((1, 0, vec![entry(&standing, "deleted")])),
        Removal::Kept(_) => Err(still_running(given)),
        Removal::Failed(e) => {
            Err(Error::internal(format!("failed to delete job directory {}: {e}", job.path.display())))
        }
    }
}

/// The job's standing, waiting up to `SETTLE_GRACE` for a supervisor that has already
/// recorded the end of the job to exit. A job still running is answered at once.
fn settle(job: &JobDir) -> Standing {
    let deadline = Instant::now() + SETTLE_GRACE;
    loop {
        let standing = Standing::read(job);
        match &standing {
            Standing::Live(state)
                if state.status().is_terminal() && liveness::checkable(state) && Instant::now() < deadline =>
            {
                std::thread::sleep(Duration::from_millis(20));
            }
            _ => return standing,
        }
    }
}

/// Bulk mode: jobs whose `meta.cwd` is the caller's directory, in id order (docs/decisions.md OP-18).
fn delete_all(root: &Root, dry_run: bool) -> Result<(u64, u64, Vec<DeleteEntry>)> {
    let cwd = effective_cwd(None)?;
    let mut names = root.dir_names()?.unwrap_or_default();
    names.sort();
    let (mut deleted, mut skipped, mut jobs) = (0, 0, Vec::new());
    for name in names {
        let job = root.job(&name);
        if !job.read_meta().is_ok_and(|meta| meta.cwd.as_deref() == Some(cwd.as_str())) {
            continue;
        }
        let mut standing = Standing::read(&job);
        let (action, reason) = match verdict(&standing) {
            Err(reason) => ("skipped", reason.to_string()),
            Ok(()) if dry_run => ("would_delete", TERMINAL.to_string()),
            Ok(()) => match remove_if(&job, BULK_LOCK_PATIENCE, |now| verdict(now).is_ok()) {
                Removal::Removed => ("deleted", TERMINAL.to_string()),
                Removal::Kept(now) => {
                    let reason = verdict(&now).err().unwrap_or(TERMINAL).to_string();
                    standing = *now;
                    ("skipped", reason)
                }
                Removal::Failed(e) => ("skipped", format!("delete_failed: {e}")),
            },
        };
        match action {
            "deleted" => deleted += 1,
            "skipped" => skipped += 1,
            _ => {}
        }
        jobs.push(DeleteEntry { job_id: name, state: standing.state(), action, reason });
    }
    Ok((deleted, skipped, jobs))
}

const TERMINAL: &str = "terminal_in_cwd";

/// Bulk mode takes only settled terminal jobs; otherwise the reason for skipping.
fn verdict(standing: &Standing) -> Result<(), &'static str> {
    match standing {
        Standing::Unreadable => Err("state_unreadable"),
        Standing::Live(_) => Err("running"),
        Standing::Settled(state) => match state.status() {
            Status::Created => Err("created"),
            Status::Running => Err("running"),
            Status::Exited | Status::Killed | Status::Failed => Ok(()),
        },
    }
}
