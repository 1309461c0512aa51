//! `create`: persist a job definition without starting it.

use super::define::{Definition, create_job};
use crate::error::Result;
use crate::jobstore::{self, Root};
use crate::time;
use crate::wire::{CreateBody, JobState, State, Status};

pub fn create(root: &Root, definition: &Definition) -> Result<CreateBody> {
    let id = jobstore::new_id();
    let created = State::new(&id, Status::Created, time::now());
    let job = create_job(root, &definition.meta(&id, root, true, None), &created)?;
    Ok(CreateBody {
        job_id: id,
        state: JobState::Created,
        stdout_log_path: job.file_string(jobstore::STDOUT_LOG),
        stderr_log_path: job.file_string(jobstore::STDERR_LOG),
    })
}
