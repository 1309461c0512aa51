//! `wait`: block until a job ends or the deadline passes; a deadline that passes is a
//! success with the current state.

use std::time::{Duration, Instant};

use crate::error::Result;
use crate::jobstore::waiter::{OnUnreadable, wait_for_end};
use crate::jobstore::{JobDir, Root, liveness};
use crate::wire::{Readiness, State, WaitBody};

#[derive(Debug, Clone)]
pub struct WaitRequest {
    /// The id or a unique prefix.
    pub job_id: String,
    /// How long at most; `None` waits until the job ends.
    pub until: Option<Duration>,
    /// The fallback poll interval (completion is noticed through inotify).
    pub poll: Duration,
}

pub fn wait(root: &Root, request: &WaitRequest) -> Result<WaitBody> {
    let job = root.lookup(&request.job_id)?;
    let deadline = request.until.map(|d| Instant::now() + d);
    let state = wait_for_end(&job, deadline, request.poll, OnUnreadable::Fail, super::current)?;
    Ok(wait_body(&job, &state, None))
}

/// The single-job `wait` answer for the state a wait ended with (also readiness waits).
pub(super) fn wait_body(job: &JobDir, state: &State, readiness: Option<Readiness>) -> WaitBody {
    let ended = super::Ended::of(state);
    WaitBody {
        job_id: job.id.clone(),
        state: state.status().into(),
        exit_code: ended.exit_code,
        signal: ended.signal,
        error: ended.error,
        liveness_unchecked: !liveness::checkable(state),
        clamped: None,
        readiness,
    }
}
