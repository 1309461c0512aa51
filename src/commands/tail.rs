//! `tail`: the end of a job's stdout and stderr logs, in any state.

use crate::cli::Args;
use crate::error::Result;
use crate::jobstore::{self, JobDir, Root};
use crate::tail::snapshot;
use crate::wire::{Reply, TailBody};

pub fn tail(args: &Args, root: &Root) -> Result<Reply> {
    let job = root.lookup(args.job_id())?;
    Ok(Reply::new("tail", &tail_body(&job, job.id.clone(), args.num("tail-lines"), args.num("max-bytes"))))
}

/// Also used by HTTP `/tail`, which echoes the id as given. The same numbers as a
/// snapshot, flattened, with the log paths.
pub fn tail_body(job: &JobDir, job_id: String, tail_lines: u64, max_bytes: u64) -> TailBody {
    let stdout_path = job.file(jobstore::STDOUT_LOG);
    let stderr_path = job.file(jobstore::STDERR_LOG);
    let log_error = job.read_state().ok().and_then(|state| state.log_error);
    let shot = snapshot(&stdout_path, &stderr_path, tail_lines, max_bytes, log_error);
    TailBody {
        job_id,
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
    }
}
