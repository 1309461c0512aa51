//! `run`: create a job, hand it to a supervisor, observe it, answer.

use std::path::PathBuf;
use std::time::Instant;

use super::define::{Definition, create_job};
use super::launch::{Observe, hand_over_to, initial_state, observe, run_body};
use super::names::{Claim, IfRunning, claim};
use crate::error::Result;
use crate::jobstore::JobDir;
use crate::jobstore::{self, Root, root::absolutize};
use crate::supervisor::Launching;
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
    let meta = definition.meta(&id, root, false, custom_log.as_ref().map(|p| p.to_string_lossy().into_owned()))?;
    // The supervisor is forked first: its exec and start-up overlap the writes and
    // fsyncs of the job directory, and it waits for the spec, sent once the directory
    // is complete (a failed creation, or a name held by a running job, drops it unused).
    let launching = Launching::fork(&root.job(&id))?;
    let create = || create_job(root, &meta, &initial_state(&id));
    let job = match &definition.name {
        None => create()?,
        Some(name) => match claim(root, name, request.if_running, create)? {
            Claim::Created(job) => job,
            Claim::Holder(holder) => return reuse(&holder, &request.observe, since),
        },
    };
    let full_log = custom_log.unwrap_or_else(|| job.file(jobstore::FULL_LOG));
    hand_over_to(launching, &job, &definition.spec(definition.cwd.clone(), full_log))?;
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
