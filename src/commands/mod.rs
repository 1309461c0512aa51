//! One thin function per subcommand over the job store and the supervisor. Each takes
//! the parsed arguments and the resolved root and returns one `Reply` or one `Error`;
//! printing and exit codes belong to `main`.

mod create;
pub mod define;
mod delete;
mod gc;
mod install_skills;
mod kill;
pub mod launch;
mod list;
mod notify;
mod prune;
mod retention;
mod run;
pub mod schema;
mod start;
mod status;
mod tag;
mod tail;
mod wait;

pub use kill::kill_body;
pub use status::status_body;
pub use tail::tail_body;
pub use wait::wait_body;

use crate::cli::Args;
use crate::error::{Error, Result};
use crate::jobstore::Root;
use crate::wire::Reply;

pub fn dispatch(args: &Args) -> Result<Reply> {
    let root = Root::resolve(args.root.as_deref());
    if !matches!(args.command.name, "schema" | "install-skills") {
        root.check_secure()?;
    }
    match args.command.name {
        "run" => run::run(args, &root),
        "create" => create::create(args, &root),
        "start" => start::start(args, &root),
        "status" => status::status(args, &root),
        "tail" => tail::tail(args, &root),
        "wait" => wait::wait(args, &root),
        "kill" => kill::kill(args, &root),
        "list" => list::list(args, &root),
        "delete" => delete::delete(args, &root),
        "gc" => gc::gc(args, &root),
        "tag set" => tag::tag_set(args, &root),
        "notify set" => notify::notify_set(args, &root),
        "schema" => schema::schema(),
        "install-skills" => install_skills::install_skills(args),
        "serve" => crate::serve::serve(args, root.clone()),
        other => Err(Error::internal(format!("'{other}' is not available in this build"))),
    }
}
