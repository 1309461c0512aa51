//! `create`: persist a job definition without starting it.

use super::define::{Definition, create_job};
use super::names::{Claim, IfRunning, claim};
use crate::error::Result;
use crate::jobstore::{self, Root};
use crate::time;
use crate::wire::{CreateBody, JobState, State, Status};

pub fn create(root: &Root, definition: &Definition) -> Result<CreateBody> {
    let id = jobstore::new_id();
    let created = State::new(&id, Status::Created, time::now());
    let meta = definition.meta(&id, root, true, None);
    let create = || create_job(root, &meta, &created);
    let job = match &definition.name {
        None => create()?,
        // A created job holds its name too; `create` has no clash policy but the error.
        Some(name) => match claim(root, name, IfRunning::Fail, create)? {
            Claim::Created(job) | Claim::Holder(job) => job,
        },
    };
    Ok(CreateBody {
        job_id: id,
        state: JobState::Created,
        stdout_log_path: job.file_string(jobstore::STDOUT_LOG),
        stderr_log_path: job.file_string(jobstore::STDERR_LOG),
    })
}
