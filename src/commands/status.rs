//! `status`: the state of one job, checked for liveness.

use crate::cli::Args;
use crate::error::Result;
use crate::jobstore::{JobDir, Root, liveness};
use crate::wire::{Reply, StatusBody};

pub fn status(args: &Args, root: &Root) -> Result<Reply> {
    let job = root.lookup(args.job_id())?;
    Ok(Reply::new("status", &status_body(&job)?))
}

/// Also used by HTTP `/status`.
pub fn status_body(job: &JobDir) -> Result<StatusBody> {
    let meta = job.read_meta()?;
    let state = job.read_live_state()?;
    let unchecked = !liveness::checkable(&state);
    let terminal = state.status().is_terminal();
    Ok(StatusBody {
        job_id: job.id.clone(),
        state: state.status().as_str().to_string(),
        exit_code: state.result.exit_code,
        created_at: meta.created_at,
        started_at: state.job.started_at,
        finished_at: state.finished_at.filter(|_| terminal),
        signal: state.result.signal.filter(|_| terminal),
        error: state.error.filter(|_| terminal),
        liveness_unchecked: unchecked,
    })
}
