//! `run`: create a job, hand it to a supervisor, observe it, answer.

use std::time::Instant;

use super::define::{Definition, create_job};
use super::launch::{Observe, hand_over, initial_state, observe, run_body};
use crate::cli::Args;
use crate::error::Result;
use crate::jobstore::{self, Root, root::absolutize};
use crate::wire::Reply;

pub fn run(args: &Args, root: &Root) -> Result<Reply> {
    let since = Instant::now();
    let definition = Definition::from_args(args)?;
    let custom_log = args.value("log").map(|p| absolutize(std::path::Path::new(p)));
    let id = jobstore::new_id();
    let meta = definition.meta(&id, root, false, custom_log.as_ref().map(|p| p.to_string_lossy().into_owned()));
    let job = create_job(root, &meta, &initial_state(&id))?;
    let full_log = custom_log.unwrap_or_else(|| job.file(jobstore::FULL_LOG));
    hand_over(&job, &definition.spec(definition.cwd.clone(), full_log))?;
    let observed = observe(&job, &Observe::from_args(args));
    let env_vars = (!definition.env.is_empty()).then(|| definition.display_env());
    Ok(Reply::new("run", &run_body(&job, observed, definition.tags.clone(), env_vars, since)))
}
