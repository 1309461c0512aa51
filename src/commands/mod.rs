//! The CLI front door: typed options in (`options`), one engine call, one answer out.
//! Each arm is an adapter of a few lines; the work is in `crate::jobs`. Printing and
//! exit codes belong to `main`.

mod exit_status;
mod follow;
mod install_skills;
pub mod options;
mod schema;

use options::Invocation;

use crate::cli::Args;
use crate::error::{Error, Result};
use crate::jobs;
use crate::jobstore::Root;
use crate::wire::{ListBody, Reply};

/// What `main` prints.
pub enum Answer {
    /// One JSON (or YAML) object.
    Reply(Reply),
    /// One JSON (or YAML) object about a job, and the exit status `--exit-code` asked for.
    Job(Reply, u8),
    /// A text, as is (a completion script).
    Text(String),
    /// `list`'s answer, written as it is serialized: it can be megabytes.
    List(ListBody),
    /// A server that has ended (`serve`, `mcp`): nothing more to print.
    Exit(u8),
    /// `tail --follow` has streamed the output; the exit status `--exit-code` asked for.
    Streamed(u8),
}

pub fn dispatch(args: &Args) -> Result<Answer> {
    let root = Root::resolve(args.root.as_deref());
    // Before stage two reads config files or the environment: an insecure root is
    // reported first, whatever else is wrong.
    if !matches!(args.command.name, "schema" | "install-skills" | "completions" | "mcp") {
        root.check_secure()?;
    }
    let exit_code =
        args.command.flag(crate::cli::table::EXIT_CODE.long).is_some() && args.has(&crate::cli::table::EXIT_CODE);
    Ok(match run(Invocation::from_args(args)?, root)? {
        Answer::Job(reply, _) if !exit_code => Answer::Reply(reply),
        Answer::Streamed(_) if !exit_code => Answer::Streamed(0),
        answer => answer,
    })
}

/// A job's answer and the exit status it stands for (used only under `--exit-code`).
fn job_answer(kind: &'static str, body: &crate::wire::RunBody) -> Answer {
    let status = exit_status::of_ready(body.readiness.as_ref(), body.state, body.exit_code, body.signal.as_deref());
    Answer::Job(Reply::new(kind, body), status)
}

/// Runs one typed invocation against a resolved (and, where it matters, checked) root.
pub fn run(invocation: Invocation, root: Root) -> Result<Answer> {
    let reply = match invocation {
        Invocation::Run(request) => return Ok(job_answer("run", &jobs::run_then_exit(&root, &request)?)),
        Invocation::Create(definition) => Reply::new("create", &jobs::create(&root, &definition)?),
        Invocation::Start { job_id, observe } => {
            return Ok(job_answer("start", &jobs::start(&root, &job_id, &observe)?));
        }
        Invocation::Status { job_id } => Reply::new("status", &jobs::status(&root, &job_id)?),
        Invocation::Tail(request) => Reply::new("tail", &jobs::tail(&root, &request)?),
        Invocation::Wait(request) => {
            let body = jobs::wait(&root, &request)?;
            let status = exit_status::of(body.state, body.exit_code, body.signal.as_deref());
            return Ok(Answer::Job(Reply::new("wait", &body), status));
        }
        Invocation::WaitReady { job_id, ready } => {
            let body = jobs::wait_ready(&root, &job_id, &ready)?;
            let status =
                exit_status::of_ready(body.readiness.as_ref(), body.state, body.exit_code, body.signal.as_deref());
            return Ok(Answer::Job(Reply::new("wait", &body), status));
        }
        Invocation::WaitMany { request } => {
            let body = jobs::wait_many(&root, &request)?;
            let status = exit_status::of_many(&body.jobs, request.any);
            return Ok(Answer::Job(Reply::new("wait", &body), status));
        }
        Invocation::Follow { request, json } => return follow::follow(&root, &request, json),
        Invocation::Kill(request) => Reply::new("kill", &jobs::kill(&root, &request)?),
        Invocation::List(filter) => return Ok(Answer::List(jobs::list(&root, &filter)?)),
        Invocation::Delete { target, dry_run } => Reply::new("delete", &jobs::delete(&root, &target, dry_run)?),
        Invocation::Gc(policy) => Reply::new("gc", &jobs::gc(&root, &policy)?),
        Invocation::TagSet { job_id, tags } => Reply::new("tag_set", &jobs::tag_set(&root, &job_id, tags)?),
        Invocation::NotifySet { job_id, change } => {
            Reply::new("notify.set", &jobs::notify_set(&root, &job_id, &change)?)
        }
        Invocation::Schema => schema::schema()?,
        Invocation::InstallSkills { source, global } => install_skills::install_skills(&source, global)?,
        // The one command whose answer is a script, not a JSON object (docs/compatibility.md §2.1).
        Invocation::Completions { shell } => {
            return crate::completions::script(&shell)
                .map(Answer::Text)
                .ok_or_else(|| Error::usage("unsupported shell"));
        }
        // Servers, not one answer: they own the process until they are told to stop.
        Invocation::Serve(options) => {
            crate::serve::serve(&options, root)?;
            return Ok(Answer::Exit(0));
        }
        Invocation::Mcp => return Ok(Answer::Exit(crate::mcp::main(root))),
    };
    Ok(Answer::Reply(reply))
}
