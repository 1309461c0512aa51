//! `tail`: the end of a job's stdout and stderr logs, in any state.

use crate::error::Result;
use crate::jobstore::{self, Root};
use crate::tail::snapshot;
use crate::wire::TailBody;

#[derive(Debug, Clone)]
pub struct TailRequest {
    /// The id or a unique prefix.
    pub job_id: String,
    /// Lines kept of each stream; 0 keeps all.
    pub tail_lines: u64,
    pub max_bytes: u64,
}

/// The same numbers as a snapshot, flattened, with the log paths.
pub fn tail(root: &Root, request: &TailRequest) -> Result<TailBody> {
    let job = root.lookup(&request.job_id)?;
    let (tail_lines, max_bytes) = (request.tail_lines, request.max_bytes);
    let stdout_path = job.file(jobstore::STDOUT_LOG);
    let stderr_path = job.file(jobstore::STDERR_LOG);
    let log_error = job.read_state().ok().and_then(|state| state.log_error);
    let shot = snapshot(&stdout_path, &stderr_path, tail_lines, max_bytes, log_error);
    Ok(TailBody {
        job_id: job.id.clone(),
        stdout_tail: shot.stdout_tail,
        stderr_tail: shot.stderr_tail,
        truncated: shot.truncated,
        encoding: shot.encoding,
        stdout_log_path: stdout_path.to_string_lossy().into_owned(),
        stderr_log_path: stderr_path.to_string_lossy().into_owned(),
        stdout_observed_bytes: shot.stdout_observed_bytes,
        stderr_observed_bytes: shot.stderr_observed_bytes,
        stdout_included_bytes: shot.stdout_included_bytes,
        stderr_included_bytes: shot.stderr_included_bytes,
        log_error: shot.log_error,
    })
}
