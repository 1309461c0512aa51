//! `wait`: block until a job ends or the deadline passes; a deadline that passes is a
//! success with the current state.

use std::time::{Duration, Instant};

use crate::error::Result;
use crate::jobstore::waiter::{OnUnreadable, wait_for_end};
use crate::jobstore::{Root, liveness};
use crate::wire::WaitBody;

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
    let unchecked = !liveness::checkable(&state);
    let ended = super::Ended::of(&state);
    Ok(WaitBody {
        job_id: job.id.clone(),
        state: state.status().into(),
        exit_code: ended.exit_code,
        signal: ended.signal,
        error: ended.error,
        liveness_unchecked: unchecked,
        clamped: None,
        readiness: None,
    })
}
