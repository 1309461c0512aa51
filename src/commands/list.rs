//! `list`: jobs of the current directory (or all), filtered, newest first.

use super::define::effective_cwd;
use crate::cli::Args;
use crate::error::Result;
use crate::jobstore::{Root, liveness};
use crate::tags;
use crate::wire::{JobSummary, ListBody, Reply};

pub fn list(args: &Args, root: &Root) -> Result<Reply> {
    let cwd_filter = (!args.has("all")).then(|| effective_cwd(args.value("cwd")));
    let patterns = args.values("tag");
    let state_filter = args.value("state");
    let limit = usize::try_from(args.num("limit")).unwrap_or(usize::MAX);
    let mut skipped = 0;
    let mut jobs = Vec::new();
    for name in root.dir_names()?.unwrap_or_default() {
        let job = root.job(&name);
        let Ok(meta) = job.read_meta() else {
            skipped += 1;
            continue;
        };
        if cwd_filter.is_some() && meta.cwd != cwd_filter {
            continue;
        }
        if !patterns.iter().all(|p| tags::matches(p, &meta.tags)) {
            continue;
        }
        let summary = match job.read_state() {
            Ok(state) => {
                let state = liveness::refresh(&job, state);
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
            Err(_) => JobSummary {
                job_id: meta.job.id,
                state: "unknown".to_string(),
                exit_code: None,
                created_at: meta.created_at,
                started_at: None,
                finished_at: None,
                updated_at: None,
                tags: meta.tags,
            },
        };
        if state_filter.is_some_and(|s| s != summary.state) {
            continue;
        }
        jobs.push(summary);
    }
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
