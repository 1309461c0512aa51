//! `run`: create a job, hand it to a supervisor, observe it, answer.

use std::path::PathBuf;
use std::time::Instant;

use super::define::{Definition, create_job};
use super::launch::{Observe, hand_over_to, initial_state, observe, run_body};
use crate::error::Result;
use crate::jobstore::{self, Root, root::absolutize};
use crate::supervisor::Launching;
use crate::wire::RunBody;

#[derive(Debug, Clone)]
pub struct RunRequest {
    pub definition: Definition,
    /// Where the merged log goes instead of `<job>/full.log` (`run --log`).
    pub log: Option<PathBuf>,
    pub observe: Observe,
}

pub fn run(root: &Root, request: &RunRequest) -> Result<RunBody> {
    let since = Instant::now();
    let definition = &request.definition;
    let custom_log = request.log.as_deref().map(absolutize);
    let id = jobstore::new_id();
    let meta = definition.meta(&id, root, false, custom_log.as_ref().map(|p| p.to_string_lossy().into_owned()));
    // The supervisor is forked first: its exec and start-up overlap the writes and
    // fsyncs of the job directory, and it waits for the spec, sent once the directory
    // is complete (a failed creation drops it unused).
    let launching = Launching::fork(&root.job(&id))?;
    let job = create_job(root, &meta, &initial_state(&id))?;
    let full_log = custom_log.unwrap_or_else(|| job.file(jobstore::FULL_LOG));
    hand_over_to(launching, &job, &definition.spec(definition.cwd.clone(), full_log))?;
    let observed = observe(&job, &request.observe);
    let env_vars = (!definition.env.is_empty()).then(|| definition.display_env());
    Ok(run_body(&job, observed, definition.tags.clone(), env_vars, since))
}
