//! `wait ID ID ...`, `wait --tag PATTERN`, `--any` (issue 14 item 2): one process waits
//! on many jobs through one inotify instance (`jobstore::watches`); a wake-up re-reads
//! only the jobs that changed, and the poll interval re-reads the rest (the liveness
//! check of a supervisor that vanished).

use std::time::{Duration, Instant};

use super::list::{ListFilter, list};
use crate::error::Result;
use crate::jobstore::waiter::MIN_POLL;
use crate::jobstore::watches::Watches;
use crate::jobstore::{JobDir, Root};
use crate::wire::{State, Status, WaitManyBody, WaitSummary, WaitedJob};

#[derive(Debug, Clone, Default)]
pub struct WaitManyRequest {
    /// Ids, prefixes or `@NAME`s, in the order given.
    pub job_ids: Vec<String>,
    /// Also the jobs whose tags match every one of these patterns (already checked),
    /// scoped like `list`: `cwd` (default: the current directory) unless `all`.
    pub tags: Vec<String>,
    pub cwd: Option<String>,
    pub all: bool,
    /// Return when one job has ended instead of all.
    pub any: bool,
    pub until: Option<Duration>,
    pub poll: Duration,
}

pub fn wait_many(root: &Root, request: &WaitManyRequest) -> Result<WaitManyBody> {
    let jobs = select(root, request)?;
    let mut states = Vec::with_capacity(jobs.len());
    for job in &jobs {
        states.push(super::current(job)?);
    }
    let mut watches = Watches::new();
    if let Some(watches) = &mut watches {
        for (index, job) in jobs.iter().enumerate() {
            watches.add(job, index);
        }
    }
    let deadline = request.until.map(|d| Instant::now() + d);
    let poll = request.poll.max(MIN_POLL);
    loop {
        let ended = states.iter().filter(|s| s.status().is_terminal()).count();
        let done = ended == jobs.len() || (request.any && ended > 0);
        let remaining = deadline.map(|d| d.saturating_duration_since(Instant::now()));
        if done || remaining == Some(Duration::ZERO) {
            break;
        }
        let pause = remaining.map_or(poll, |r| r.min(poll));
        let changed = match &watches {
            Some(watches) => watches.wait(pause),
            None => {
                std::thread::sleep(pause);
                Vec::new()
            }
        };
        // A timeout re-reads every job still going: that is the fallback poll.
        let reread: Vec<usize> = if changed.is_empty() { (0..jobs.len()).collect() } else { changed };
        for index in reread {
            if !states[index].status().is_terminal() {
                states[index] = super::current(&jobs[index])?;
            }
        }
    }
    Ok(body(&jobs, &states))
}

/// The given ids first, in order, then the jobs the tags select, oldest first; each job
/// once.
fn select(root: &Root, request: &WaitManyRequest) -> Result<Vec<JobDir>> {
    let mut jobs: Vec<JobDir> = Vec::new();
    for given in &request.job_ids {
        let job = root.lookup(given)?;
        if !jobs.iter().any(|j| j.id == job.id) {
            jobs.push(job);
        }
    }
    if !request.tags.is_empty() {
        let filter = ListFilter {
            cwd: request.cwd.clone(),
            all: request.all,
            state: None,
            tags: request.tags.clone(),
            limit: 0,
            name: None,
        };
        let mut tagged: Vec<String> = list(root, &filter)?.jobs.into_iter().map(|j| j.job_id).collect();
        tagged.sort_unstable();
        for id in tagged {
            if !jobs.iter().any(|j| j.id == id) {
                jobs.push(root.job(&id));
            }
        }
    }
    Ok(jobs)
}

fn body(jobs: &[JobDir], states: &[State]) -> WaitManyBody {
    let mut summary = WaitSummary { finished: 0, running: 0, failed_count: 0 };
    let jobs = jobs
        .iter()
        .zip(states)
        .map(|(job, state)| {
            let ended = super::Ended::of(state);
            if state.status().is_terminal() {
                summary.finished += 1;
                let success = state.status() == Status::Exited && ended.exit_code == Some(0);
                summary.failed_count += u64::from(!success);
            } else {
                summary.running += 1;
            }
            WaitedJob {
                job_id: job.id.clone(),
                state: state.status().into(),
                exit_code: ended.exit_code,
                signal: ended.signal,
                finished_at: ended.finished_at,
            }
        })
        .collect();
    WaitManyBody { jobs, summary, clamped: None }
}
