//! `run`: create a job, hand it to a supervisor, observe it, answer.

use std::path::PathBuf;
use std::time::Instant;

use super::define::{Definition, stage_job};
use super::launch::{Observe, go, initial_state, observe, run_body};
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
    let full_log = custom_log.unwrap_or_else(|| root.job(&id).file(jobstore::FULL_LOG));
    let spec = definition.spec(definition.cwd.clone(), full_log);
    // The supervisor is forked first: its exec and start-up, and the fork of the job
    // (held before its exec), overlap the writes of the job directory, whose first
    // `state.json` then already names both processes. It touches the directory only
    // after `go`; a failed creation, or a name held by a running job, never says it, and
    // the supervisor gives up (docs/decisions.md OP-2).
    let mut launching = Launching::fork(&root.job(&id))?;
    let create = || {
        let mut staging = stage_job(root, &id)?;
        // The logs exist now: the supervisor opens them where they are while we write.
        launching.send(spec)?;
        staging.write_meta(&meta)?;
        staging.write_state(&initial_state(&id, launching.pids().as_ref()))?;
        staging.commit()
    };
    let job = match &definition.name {
        None => create()?,
        Some(name) => match claim(root, name, request.if_running, create)? {
            Claim::Created(job) => job,
            Claim::Holder(holder) => return reuse(&holder, &request.observe, since),
        },
    };
    go(launching, &job)?;
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
