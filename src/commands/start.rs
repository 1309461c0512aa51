//! `start`: launch a `created` job from its stored definition.

use std::time::Instant;

use super::launch::{Observe, hand_over, initial_state, observe, run_body};
use crate::cli::Args;
use crate::error::{Code, Error, Result};
use crate::jobstore::{self, Root};
use crate::supervisor::{LaunchSpec, masked};
use crate::wire::{Reply, Status};

pub fn start(args: &Args, root: &Root) -> Result<Reply> {
    let given = args.job_id();
    let job = root.lookup(given)?;
    let meta = job.read_meta()?;
    {
        // The created → running transition happens under the job lock, so of two
        // concurrent starts exactly one wins (DECISIONS OP-12).
        // A job deleted since the lookup has no directory left to lock.
        let _lock = job.lock().map_err(|e| if job.path.exists() { e } else { Error::not_found(given) })?;
        let state = job.read_state()?;
        if state.status() != Status::Created {
            return Err(Error::new(
                Code::InvalidState,
                format!(
                    "invalid job state: job {given} is in '{}' state; only 'created' jobs can be started",
                    state.status().as_str()
                ),
            ));
        }
        job.write_state(&initial_state(&job.id))?;
    }
    let since = Instant::now();
    let spec = LaunchSpec {
        command: meta.command.clone(),
        wrapper: meta.shell_wrapper.clone(),
        env: meta.env_vars_runtime.clone(),
        env_files: meta.env_files.clone(),
        inherit_env: meta.inherit_env,
        cwd: meta.cwd.clone(),
        full_log: job.file(jobstore::FULL_LOG),
        timeout_ms: meta.timeout_ms,
        kill_after_ms: meta.kill_after_ms,
        progress_every_ms: meta.progress_every_ms,
        max_log_bytes: meta.max_log_bytes,
        no_full_log: meta.no_full_log,
    };
    hand_over(&job, &spec)?;
    // `start --wait` has the same bounded default as `run --wait` (DECISIONS OP-6).
    let observed = observe(&job, &Observe::from_args(args));
    let env_vars = (!meta.env_vars_runtime.is_empty()).then(|| masked(&meta.env_vars_runtime, &meta.mask));
    Ok(Reply::new("start", &run_body(&job, observed, meta.tags.clone(), env_vars, since)))
}
