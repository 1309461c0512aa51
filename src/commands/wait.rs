//! `wait`: block until a job ends, 30 s by default; a deadline that passes is a success
//! with the current state.

use std::time::{Duration, Instant};

use crate::cli::Args;
use crate::error::Result;
use crate::jobstore::waiter::{OnUnreadable, wait_for_end};
use crate::jobstore::{JobDir, Root, liveness};
use crate::wire::{Reply, WaitBody};

pub fn wait(args: &Args, root: &Root) -> Result<Reply> {
    let job = root.lookup(args.job_id())?;
    let until = (!args.has("forever")).then(|| Duration::from_millis(args.num("until")));
    let body = wait_body(&job, job.id.clone(), until, Duration::from_millis(args.num("poll-ms")))?;
    Ok(Reply::new("wait", &body))
}

/// Also used by HTTP `/wait`.
pub fn wait_body(job: &JobDir, job_id: String, until: Option<Duration>, poll: Duration) -> Result<WaitBody> {
    let deadline = until.map(|d| Instant::now() + d);
    let state = wait_for_end(job, deadline, poll, OnUnreadable::Fail)?;
    let unchecked = !liveness::checkable(&state);
    let terminal = state.status().is_terminal();
    Ok(WaitBody {
        job_id,
        state: state.status().as_str().to_string(),
        exit_code: state.result.exit_code.filter(|_| terminal),
        signal: state.result.signal.filter(|_| terminal),
        error: state.error.filter(|_| terminal),
        liveness_unchecked: unchecked,
    })
}
