//! `status`: the state of one job, checked for liveness.

use crate::error::Result;
use crate::jobstore::{Root, liveness};
use crate::wire::StatusBody;

pub fn status(root: &Root, given: &str) -> Result<StatusBody> {
    let job = root.lookup(given)?;
    let meta = job.read_meta()?;
    let state = super::current(&job)?;
    let unchecked = !liveness::checkable(&state);
    let ended = super::Ended::of(&state);
    Ok(StatusBody {
        job_id: job.id.clone(),
        state: state.status().into(),
        exit_code: state.result.exit_code,
        created_at: meta.created_at,
        started_at: state.job.started_at,
        finished_at: ended.finished_at,
        signal: ended.signal,
        error: ended.error,
        liveness_unchecked: unchecked,
    })
}
