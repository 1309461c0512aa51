//! `run`: create a job, hand it to a supervisor, observe it, answer.

use std::path::PathBuf;
use std::time::Instant;

use super::define::{Definition, stage_job};
use super::launch::{Observe, go, initial_state, observe, run_body};
use super::names::{Claim, IfRunning, claim};
use crate::error::Result;
use crate::jobstore::JobDir;
use crate::jobstore::{self, Root, root::absolutize};
use crate::supervisor::{self, AfterAnswer, Launching, Pids};
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
    launch_and_observe(root, request, AfterAnswer::GoesOn).map(|(body, _launcher)| body)
}

/// `run` for a front-end that exits right after it prints the answer (the CLI): when the
/// answer is immediate (`--snapshot-after 0`), the new supervisor execs only once this
/// process has exited (or half a second has passed), so that its start-up takes no CPU
/// from the answer's last steps and the exit. The job is running meanwhile; its output
/// waits in its pipes.
pub fn run_then_exit(root: &Root, request: &RunRequest) -> Result<RunBody> {
    let (body, launcher) = launch_and_observe(root, request, AfterAnswer::Exits)?;
    // The launcher waits for our exit: nothing to release before it.
    std::mem::forget(launcher);
    Ok(body)
}

/// The answer, and the launcher of the supervisor when it still waits to exec (see
/// `Launching::go`): dropping it lets the supervisor start, unless it waits for the
/// front-end's exit.
fn launch_and_observe(root: &Root, request: &RunRequest, after: AfterAnswer) -> Result<(RunBody, Option<Launching>)> {
    let since = Instant::now();
    let definition = &request.definition;
    let custom_log = request.log.as_deref().map(absolutize);
    let id = jobstore::new_id();
    let meta = definition.meta(&id, root, false, custom_log.as_ref().map(|p| p.to_string_lossy().into_owned()))?;
    let full_log = custom_log.unwrap_or_else(|| root.job(&id).file(jobstore::FULL_LOG));
    let spec = definition.spec(definition.cwd.clone(), full_log);
    // The supervisor is forked first, and forks the job process (held before its exec)
    // at once: its exec and start-up overlap the writes of the job directory, whose
    // first `state.json` then already names both processes, and are no longer before
    // the answer. It touches the directory only after `go`; a failed creation, or a name
    // held by a running job, never says it, and the held process never runs
    // (docs/decisions.md OP-2). An image that cannot be prepared here is the
    // supervisor's to prepare again, and to record why it fails.
    let job_path = root.job(&id).path;
    let image = supervisor::prepare_run(&spec, &job_path).ok();
    let mut launching = Launching::fork_run(&root.job(&id), image.as_ref())?;
    drop(image);
    let mut create = || {
        let mut staging = stage_job(root, &id)?;
        staging.create_reserve()?;
        staging.write_meta(&meta)?;
        // On disk while the launcher forks; then only the record's own block is left to
        // write once it reports the pids (see `Staging::reserve_state`).
        staging.reserve_state(&initial_state(&id, Some(&Pids::WIDEST)))?;
        staging.create_logs()?;
        staging.sync()?;
        staging.fill_state(&initial_state(&id, launching.pids()?.as_ref()))?;
        staging.commit()
    };
    let job = match &definition.name {
        None => create()?,
        Some(name) => match claim(root, name, request.if_running, create)? {
            Claim::Created(job) => job,
            Claim::Holder(holder) => return reuse(&holder, &request.observe, since).map(|body| (body, None)),
        },
    };
    // An answer that observes the job needs its supervisor at work; an immediate one is
    // ready before the supervisor's start-up, which would compete with it for a CPU.
    let observe_now = &request.observe;
    let immediate = observe_now.snapshot_after_ms == 0 && !observe_now.wait && observe_now.ready.is_none();
    go(&mut launching, &job, &spec, if immediate { after } else { AfterAnswer::GoesOn })?;
    let launcher = immediate.then_some(launching);
    let observed = observe(&job, observe_now);
    let env_vars = (!definition.env.is_empty()).then(|| definition.display_env());
    Ok((run_body(&job, observed, definition.tags.clone(), env_vars, since), launcher))
}

/// `--if-running reuse`: the answer `run` gives, about the job already holding the name.
fn reuse(holder: &JobDir, options: &Observe, since: Instant) -> Result<RunBody> {
    let meta = holder.read_meta()?;
    let env_vars = (!meta.env_vars.is_empty()).then_some(meta.env_vars);
    Ok(run_body(holder, observe(holder, options), meta.tags, env_vars, since))
}
