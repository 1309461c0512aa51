//! `list`: jobs of the current directory (or all), filtered, newest first.

use super::define::effective_cwd;
use crate::cli::Args;
use crate::error::Result;
use crate::jobstore::scan::{Scan, par_map};
use crate::jobstore::{self, Root, liveness};
use crate::tags;
use crate::wire::{JobSummary, ListBody, Meta, Reply, State};

/// What one directory of the root contributes.
enum Entry {
    /// Not readable as a job (counted in `skipped`).
    Unreadable,
    /// A job the filters leave out.
    Filtered,
    Listed(JobSummary),
}

pub fn list(args: &Args, root: &Root) -> Result<Reply> {
    let cwd_filter = (!args.has("all")).then(|| effective_cwd(args.value("cwd")));
    let patterns = args.values("tag");
    let state_filter = args.value("state");
    let limit = usize::try_from(args.num("limit")).unwrap_or(usize::MAX);
    let names = root.dir_names()?.unwrap_or_default();
    let scan = Scan::open(root);
    let entries = par_map(&names, |name| {
        let Some(scan) = &scan else { return Entry::Unreadable };
        let Some(meta) = scan.read(name, jobstore::META).and_then(|b| serde_json::from_slice::<Meta>(&b).ok()) else {
            return Entry::Unreadable;
        };
        if (cwd_filter.is_some() && meta.cwd != cwd_filter) || !patterns.iter().all(|p| tags::matches(p, &meta.tags)) {
            return Entry::Filtered;
        }
        let state = scan.read(name, jobstore::STATE).and_then(|b| serde_json::from_slice::<State>(&b).ok());
        let summary = summarize(root, name, meta, state);
        if state_filter.is_some_and(|s| s != summary.state) { Entry::Filtered } else { Entry::Listed(summary) }
    });
    let skipped = entries.iter().filter(|e| matches!(e, Entry::Unreadable)).count() as u64;
    let mut jobs: Vec<JobSummary> =
        entries.into_iter().filter_map(|e| if let Entry::Listed(job) = e { Some(job) } else { None }).collect();
    // Newest start first, jobs never started last, ties by id descending (OP-17).
    jobs.sort_by(|a, b| {
        (b.started_at.is_some(), &b.started_at, &b.job_id).cmp(&(a.started_at.is_some(), &a.started_at, &a.job_id))
    });
    let truncated = limit > 0 && jobs.len() > limit;
    if truncated {
        jobs.truncate(limit);
    }
    Ok(Reply::new("list", &ListBody { root: root.display(), jobs, truncated, skipped }))
}

/// A job with an unreadable `state.json` is listed as `unknown` (CONTRACT §5.9).
fn summarize(root: &Root, name: &str, meta: Meta, state: Option<State>) -> JobSummary {
    let Some(state) = state else {
        return JobSummary {
            job_id: meta.job.id,
            state: "unknown".to_string(),
            exit_code: None,
            created_at: meta.created_at,
            started_at: None,
            finished_at: None,
            updated_at: None,
            tags: meta.tags,
        };
    };
    let state = liveness::refresh(&root.job(name), state);
    let terminal = state.status().is_terminal();
    JobSummary {
        job_id: meta.job.id,
        state: state.status().as_str().to_string(),
        exit_code: state.result.exit_code,
        created_at: meta.created_at,
        started_at: state.job.started_at,
        finished_at: state.finished_at.filter(|_| terminal),
        updated_at: Some(state.updated_at),
        tags: meta.tags,
    }
}
