//! `list`: jobs of the current directory (or all), filtered, newest first.

use super::define::effective_cwd;
use crate::error::Result;
use crate::jobstore::scan::Scan;
use crate::jobstore::{self, Root, liveness};
use crate::tags;
use crate::wire::{JobState, JobSummary, ListBody, MetaCopy, MetaView, State};

#[derive(Debug, Clone, Default)]
pub struct ListFilter {
    /// Only jobs started in this directory (`None`: the current one), unless `all`.
    pub cwd: Option<String>,
    pub all: bool,
    /// Only jobs in this state.
    pub state: Option<String>,
    /// Only jobs with a tag matching each of these patterns (already checked).
    pub tags: Vec<String>,
    /// At most this many, newest first; 0 is unlimited.
    pub limit: u64,
    /// Only jobs given this `--name` (REST v1's `name` filter; the CLI has `@NAME`).
    pub name: Option<String>,
}

/// What `list` keeps of a `meta.json` that passed the filters.
struct Listing {
    job_id: String,
    created_at: String,
    tags: Vec<String>,
    name: Option<String>,
}

/// What one directory of the root contributes.
enum Entry {
    /// Not readable as a job (counted in `skipped`).
    Unreadable,
    /// A job the filters leave out.
    Filtered,
    Listed(JobSummary),
}

pub fn list(root: &Root, filter: &ListFilter) -> Result<ListBody> {
    let cwd_filter = if filter.all { None } else { Some(effective_cwd(filter.cwd.as_deref())?) };
    let patterns = &filter.tags;
    let state_filter = filter.state.as_deref();
    let limit = usize::try_from(filter.limit).unwrap_or(usize::MAX);
    let scan = Scan::open(root);
    // The filters, on the fields of `meta.json` (or of its copy): `None` for a job they
    // leave out.
    let select = |id: &str, created_at: &str, cwd: Option<&str>, tags: &[&str], name: Option<&str>| {
        let wanted = (cwd_filter.is_none() || cwd == cwd_filter.as_deref())
            && patterns.iter().all(|p| tags::matches(p, tags))
            && filter.name.as_deref().is_none_or(|wanted| name == Some(wanted));
        wanted.then(|| Listing {
            job_id: id.to_string(),
            created_at: created_at.to_string(),
            tags: tags.iter().map(|t| t.to_string()).collect(),
            name: name.map(str::to_string),
        })
    };
    let entry = |scan: &Scan, name: &str| {
        let state = scan.with_file(name, jobstore::STATE, |b| serde_json::from_slice::<State>(b).ok()).flatten();
        // One file per job: `state.json` carries a copy of what we need of `meta.json`,
        // used while `meta.json` is still the file it was copied from.
        let current = |copy: &&MetaCopy| scan.stamp(name, jobstore::META).is_some_and(|stamp| stamp.matches(copy));
        let listed = match state.as_ref().and_then(|state| state.meta_copy.as_ref().filter(current).map(|c| (state, c)))
        {
            Some((state, copy)) => {
                let tags: Vec<&str> = copy.tags.iter().map(String::as_str).collect();
                Some(select(&state.job.id, &copy.created_at, copy.cwd.as_deref(), &tags, copy.name.as_deref()))
            }
            None => scan
                .with_file(name, jobstore::META, |bytes| {
                    let meta = serde_json::from_slice::<MetaView>(bytes).ok()?;
                    let tags: Vec<&str> = meta.tags.iter().map(AsRef::as_ref).collect();
                    Some(select(&meta.job.id, &meta.created_at, meta.cwd.as_deref(), &tags, meta.name.as_deref()))
                })
                .flatten(),
        };
        let listing = match listed {
            None => return Entry::Unreadable,
            Some(None) => return Entry::Filtered,
            Some(Some(listing)) => listing,
        };
        let summary = summarize(root, name, listing, state);
        if state_filter.is_some_and(|s| s != summary.state.as_str()) { Entry::Filtered } else { Entry::Listed(summary) }
    };
    let entries = match scan.as_ref().and_then(|scan| scan.par_map_dirs(|name| entry(scan, name))) {
        Some(entries) => entries,
        // The same names either way: the slower reader reports why a root cannot be read.
        None => {
            let names = root.dir_names()?.unwrap_or_default();
            names.iter().map(|name| scan.as_ref().map_or(Entry::Unreadable, |scan| entry(scan, name))).collect()
        }
    };
    let skipped = entries.iter().filter(|e| matches!(e, Entry::Unreadable)).count() as u64;
    // Collected in the entries' own allocation (an `Entry` is a `JobSummary` in size).
    let mut jobs: Vec<JobSummary> =
        entries.into_iter().filter_map(|e| if let Entry::Listed(job) = e { Some(job) } else { None }).collect();
    // Newest first by `started_at`, or `created_at` for a job never started, ties by id
    // descending (docs/decisions.md OP-17; the contract put never-started jobs last).
    // Ids are unique, so the order is total and an unstable sort is deterministic.
    jobs.sort_unstable_by(|a, b| sort_key(b).cmp(&sort_key(a)));
    let truncated = limit > 0 && jobs.len() > limit;
    if truncated {
        jobs.truncate(limit);
    }
    Ok(ListBody { root: root.display(), jobs, truncated, skipped })
}

fn sort_key(job: &JobSummary) -> (&str, &str) {
    (job.started_at.as_deref().unwrap_or(&job.created_at), &job.job_id)
}

/// A job with an unreadable `state.json` is listed as `unknown` (docs/compatibility.md §5.9).
fn summarize(root: &Root, name: &str, listing: Listing, state: Option<State>) -> JobSummary {
    let Listing { job_id, created_at, tags, name: job_name } = listing;
    let Some(state) = state else {
        return JobSummary {
            job_id,
            name: job_name,
            state: JobState::Unknown,
            exit_code: None,
            created_at,
            started_at: None,
            finished_at: None,
            updated_at: None,
            tags,
            liveness_unchecked: false,
        };
    };
    // A finished record needs no liveness check, nor the job's path for one: most of a
    // long list.
    let state = if state.status().is_terminal() { state } else { super::settle(&root.job(name), state) };
    let unchecked = !liveness::checkable(&state);
    let terminal = state.status().is_terminal();
    JobSummary {
        job_id,
        name: job_name,
        state: state.status().into(),
        exit_code: state.result.exit_code,
        created_at,
        started_at: state.job.started_at,
        // What `Ended` reports: only a finished job has finished.
        finished_at: state.finished_at.filter(|_| terminal),
        liveness_unchecked: unchecked,
        updated_at: Some(state.updated_at),
        tags,
    }
}
