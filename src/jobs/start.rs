//! `start`: launch a `created` job from its stored definition.

use std::time::Instant;

use super::define::Definition;
use super::launch::{Observe, hand_over, initial_state, observe, run_body};
use crate::error::{Code, Error, Result};
use crate::jobstore::{self, Root};
use crate::wire::{RunBody, State, Status};

/// `given` is the id or prefix as the caller typed it, for messages.
pub fn start(root: &Root, given: &str, observe_options: &Observe) -> Result<RunBody> {
    let job = root.lookup(given)?;
    let meta = job.read_meta()?;
    {
        // The created → running transition happens under the job lock, so of two
        // concurrent starts exactly one wins (docs/decisions.md OP-12).
        // A job deleted since the lookup has no directory left to lock.
        let locked = job.lock().map_err(|e| if job.path.exists() { e } else { Error::not_found(given) })?;
        let state = locked.read_state()?;
        if state.status() != Status::Created {
            return Err(Error::new(
                Code::InvalidState,
                format!(
                    "invalid job state: job {given} is in '{}' state; only 'created' jobs can be started",
                    state.status().as_str()
                ),
            ));
        }
        // The copy of `meta.json` that `list` reads stays (`jobstore::meta_copy`).
        locked.write_state(&State { meta_copy: state.meta_copy, ..initial_state(&job.id, None) })?;
    }
    let since = Instant::now();
    // The stored definition, launched from the effective directory recorded at creation.
    let definition = Definition::stored(meta);
    hand_over(&job, &definition.spec(definition.cwd.clone(), job.file(jobstore::FULL_LOG)))?;
    // `start --wait` has the same bounded default as `run --wait` (docs/decisions.md OP-6).
    let observed = observe(&job, observe_options);
    let env_vars = (!definition.env.is_empty()).then(|| definition.display_env());
    Ok(run_body(&job, observed, definition.tags, env_vars, since))
}
