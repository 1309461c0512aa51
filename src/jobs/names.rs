//! Creating a named job (issue 14 item 4): the clash policy and the atomic claim.
//! The claim files and `@NAME` lookups are the store's (`jobstore::names`).

use std::time::{Duration, Instant};

use super::kill::{KillRequest, kill};
use crate::error::{Code, Error, Result};
use crate::jobstore::{JobDir, Root, liveness};
use crate::signals;

/// What `run --name` does when a live job already holds the name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum IfRunning {
    /// The `name_in_use` error, with the holder's id.
    #[default]
    Fail,
    /// Answer with the holder instead of starting a job.
    Reuse,
    /// Stop the holder (TERM, then KILL after the grace period), then start.
    Replace { grace: Duration },
}

/// Without `--kill-after`, a replaced job gets this long between TERM and KILL.
pub const DEFAULT_GRACE: Duration = Duration::from_secs(5);
/// How long a KILLed holder may take to be recorded as ended before we give up.
const KILL_SETTLE: Duration = Duration::from_secs(10);
const POLL: Duration = Duration::from_millis(20);
/// The longest grace `replace` gives a holder, whatever `--kill-after` says: the call
/// waits for it, and 600 s is also the longest wait `serve` grants.
const MAX_REPLACE_GRACE: Duration = Duration::from_secs(600);

/// The outcome of claiming a name.
pub enum Claim {
    /// The new job, created under the names lock and recorded as the name's holder.
    Created(JobDir),
    /// `reuse`: the live job that holds the name.
    Holder(JobDir),
}

/// Creates a job with `create` unless `name` is held, under the name's lock so that
/// the check and the creation are one step. `replace` stops the holder under that lock
/// too, so a concurrent claim of the same name cannot start a second job while the old
/// one (recorded `killed` at once) still runs; claims of other names never wait for it.
pub fn claim(root: &Root, name: &str, policy: IfRunning, create: impl FnOnce() -> Result<JobDir>) -> Result<Claim> {
    let guard = root.lock_name(name)?;
    if let Some(holder) = root.name_holder(name) {
        match policy {
            IfRunning::Fail => return Err(in_use(name, &holder)),
            IfRunning::Reuse => return Ok(Claim::Holder(holder)),
            IfRunning::Replace { grace } => stop(root, name, &holder, grace.min(MAX_REPLACE_GRACE))?,
        }
    }
    let job = create()?;
    root.claim_name(&guard, name, &job)?;
    Ok(Claim::Created(job))
}

fn in_use(name: &str, holder: &JobDir) -> Error {
    Error::new(Code::NameInUse, format!("name in use: '{name}' is held by running job {}", holder.id))
        .with_job_id(&holder.id)
}

/// TERM, then KILL once `grace` has passed, and wait until no process of the holder
/// is left.
/// A `created` holder cannot be signalled: it keeps the name.
fn stop(root: &Root, name: &str, holder: &JobDir, grace: Duration) -> Result<()> {
    let signal = |text: &str| KillRequest {
        job_id: holder.id.clone(),
        signal: signals::parse(text).unwrap_or_else(|_| unreachable!("a known signal name")),
    };
    match kill(root, &signal("TERM")) {
        Err(e) if e.code == Code::InvalidState => return Err(in_use(name, holder)),
        other => other.map(drop)?,
    }
    // `kill` records `killed` at once; what matters is that no process of the job (a
    // server that traps TERM, say) is left to hold its port or files.
    let ended = |within: Duration| {
        let until = Instant::now() + within;
        loop {
            match super::current(holder) {
                Ok(state) if !liveness::is_live(&state) => return true,
                Err(_) => return true,
                Ok(_) if Instant::now() >= until => return false,
                Ok(_) => std::thread::sleep(POLL),
            }
        }
    };
    if ended(grace) {
        return Ok(());
    }
    kill(root, &signal("KILL"))?;
    if ended(KILL_SETTLE) {
        Ok(())
    } else {
        Err(Error::internal(format!("could not stop job {} holding name '{name}'", holder.id)))
    }
}
