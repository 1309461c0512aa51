//! `status`: the state of one job, checked for liveness.

use crate::error::Result;
use crate::jobstore::{Root, liveness};
use crate::wire::StatusBody;

pub fn status(root: &Root, given: &str) -> Result<StatusBody> {
    let job = root.lookup(given)?;
    let meta = job.read_meta()?;
    let state = super::current(&job)?;
    let unchecked = !liveness::checkable(&state);
    let terminal = state.status().is_terminal();
    Ok(StatusBody {
        job_id: job.id.clone(),
        state: state.status().into(),
        exit_code: state.result.exit_code,
        created_at: meta.created_at,
        started_at: state.job.started_at,
        finished_at: state.finished_at.filter(|_| terminal),
        signal: state.result.signal.filter(|_| terminal),
        error: state.error.filter(|_| terminal),
        liveness_unchecked: unchecked,
    })
}
