//! The job engine: one typed API over the job store and the supervisor that every front
//! door calls (the CLI in `commands`, HTTP in `serve`, MCP in `mcp`).
//!
//! Typed requests in, the wire bodies out. Nothing here knows about argv, HTTP or MCP:
//! no `cli::Args`, no printing, no exit codes. **Architecture invariant**: this module
//! imports none of `cli`, `commands`, `serve` or `mcp`.
//!
//! **Locking.** Every read-modify-write of a job goes through the guard of
//! `JobDir::lock` (`jobstore::Locked`); readers never lock. The one place a reader's
//! finding is persisted, the lost-supervisor repair, is the explicit step `current`,
//! which takes the lock itself and is never called while a lock is held.

mod create;
mod define;
mod delete;
mod follow;
mod gc;
mod kill;
mod launch;
mod list;
mod names;
mod notify;
mod output;
mod prune;
mod ready;
mod retention;
mod run;
mod start;
mod status;
mod tag;
mod tail;
mod wait;
mod wait_many;

pub use create::create;
pub use define::Definition;
pub use delete::{DeleteTarget, delete};
pub use follow::{FollowRequest, follow};
pub use gc::{GcPolicy, check_older_than, gc};
pub use kill::{KillRequest, kill};
pub use launch::Observe;
pub use list::{ListFilter, list};
pub use names::{DEFAULT_GRACE, IfRunning};
pub use notify::{NotifyChange, check_regex, notify_set};
pub use output::{Output, output};
pub use ready::{Condition, Pattern, ReadyWait, wait_ready};
pub use run::{RunRequest, run, run_then_exit};
pub use start::start;
pub use status::status;
pub use tag::tag_set;
pub use tail::{TailRequest, tail};
pub use wait::{WaitRequest, wait};
pub use wait_many::{WaitManyRequest, wait_many};

use crate::error::Result;
use crate::jobstore::{JobDir, liveness, outcome};
use crate::wire::{State, Status};

/// The state every reader reports: `state.json`, with a `running` record whose
/// responsible process is gone turned into the `failed` "supervisor lost" record and
/// persisted (docs/decisions.md OP-1). See `settle`.
pub fn current(job: &JobDir) -> Result<State> {
    Ok(settle(job, job.read_state()?))
}

/// The explicit repair step for a state already read: the only write a reader causes.
/// It takes the job lock itself, so it must never run while the caller holds this
/// job's lock; code under a lock calls `liveness::repair` with its guard instead. A
/// reader never waits for the lock: held by somebody else (who may be stopped), the
/// repair is left to a later reader and this one reports what it would record.
pub fn settle(job: &JobDir, seen: State) -> State {
    if !liveness::is_lost(&seen) {
        // A live supervisor whose terminal record waits for a lock held by somebody else
        // (who may be stopped) has put it in the last-resort file meanwhile.
        if seen.status() == Status::Running
            && let Some(ended) = outcome::recorded(job)
        {
            return ended;
        }
        return seen;
    }
    match job.try_lock() {
        Ok(Some(locked)) => liveness::repair(&locked, seen),
        Ok(None) | Err(_) => liveness::recorded_or_lost(job, seen),
    }
}

/// The fields only a finished job reports. A record that is not terminal may still
/// carry some (a `running` record rewritten by a restart, a 0.1.18 file), and answers
/// never show them then; `status` and `list` show `exit_code` whatever the state, as
/// 0.1.18 did, so they read it from the record.
struct Ended {
    exit_code: Option<i32>,
    signal: Option<String>,
    error: Option<String>,
    finished_at: Option<String>,
}

impl Ended {
    fn of(state: &State) -> Ended {
        if !state.status().is_terminal() {
            return Ended { exit_code: None, signal: None, error: None, finished_at: None };
        }
        Ended {
            exit_code: state.result.exit_code,
            signal: state.result.signal.clone(),
            error: state.error.clone(),
            finished_at: state.finished_at.clone(),
        }
    }
}

#[cfg(test)]
mod tests;
