//! `run`: create a job, hand it to a supervisor, observe it, answer.

use std::path::PathBuf;
use std::time::Instant;

use super::define::{Definition, create_job};
use super::launch::{Observe, hand_over, initial_state, observe, run_body};
use super::names::{Claim, IfRunning, claim};
use crate::error::Result;
use crate::jobstore::JobDir;
use crate::jobstore::{self, Root, root::absolutize};
use crate::wire::RunBody;

#[derive(Debug, Clone)]
pub struct RunRequest {
    pub definition: Definition,
    /// Where the merged log goes instead of `<job>/full.log` (`run --log`).
    pub log: Option<PathBuf>,
    pub observe: Observe,
    /// With a `name` in the definition: what to do when a live job holds it.
    pub if_running: IfRunning,
}

pub fn run(root: &Root, request: &RunRequest) -> Result<RunBody> {
    let since = Instant::now();
    let definition = &request.definition;
    let custom_log = request.log.as_deref().map(absolutize);
    let id = jobstore::new_id();
    let meta = definition.meta(&id, root, false, custom_log.as_ref().map(|p| p.to_string_lossy().into_owned()));
    let create = || create_job(root, &meta, &initial_state(&id));
    let job = match &definition.name {
        None => create()?,
        Some(name) => match claim(root, name, request.if_running, create)? {
            Claim::Created(job) => job,
            Claim::Holder(holder) => return reuse(&holder, &request.observe, since),
        },
    };
    let full_log = custom_log.unwrap_or_else(|| job.file(jobstore::FULL_LOG));
    hand_over(&job, &definition.spec(definition.cwd.clone(), full_log))?;
    let observed = observe(&job, &request.observe);
    let env_vars = (!definition.env.is_empty()).then(|| definition.display_env());
    Ok(run_body(&job, observed, definition.tags.clone(), env_vars, since))
}

/// `--if-running reuse`: the answer `run` gives, about the job already holding the name.
fn reuse(holder: &JobDir, options: &Observe, since: Instant) -> Result<RunBody> {
    let meta = holder.read_meta()?;
    let env_vars = (!meta.env_vars.is_empty()).then_some(meta.env_vars);
    Ok(run_body(holder, observe(holder, options), meta.tags, env_vars, since))
}
