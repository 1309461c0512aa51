//! `gc`: removal of finished jobs over the whole root by age (docs/compatibility.md §8.10,
//! docs/decisions.md OP-18, OP-19), and by count or total size (`--keep`, `--max-bytes`, in
//! `retention`). Meta files are never read: age comes from `state.json` alone, and the
//! safety rules (live processes, the lock) come from `prune`.

use std::collections::BTreeMap;

use super::prune::{BULK_LOCK_PATIENCE, Removal, Standing, dir_size, remove_if};
use super::retention::{Finished, Policies};
use crate::error::{Error, Result};
use crate::jobstore::{Root, is_job_dir};
use crate::time;
use crate::wire::{GcBody, GcEntry, State, Status};

#[derive(Debug, Clone, Default)]
pub struct GcPolicy {
    /// `<n>[dhms]` as given, echoed in the answer; `None` is the default, 30 days.
    pub older_than: Option<String>,
    /// Also delete every finished job but the newest N.
    pub keep: Option<u64>,
    /// Also delete the oldest finished jobs until the rest fit in this many bytes.
    pub max_bytes: Option<u64>,
    pub dry_run: bool,
}

const DEFAULT_OLDER_THAN: &str = "30d";

/// The earliest instant `time::format` renders with a four-digit year: an older cutoff
/// would not compare correctly as text, and nothing can be older than it anyway.
const EARLIEST_CUTOFF: i64 = -62_167_219_200;

#[derive(Debug, PartialEq, Eq)]
enum BadDuration {
    /// Not in the contract's syntax: `internal_error`, as 0.1.18 answers.
    Syntax,
    /// Well-formed but too large to compute with: a usage error (docs/decisions.md OP-18).
    Overflow,
}

/// Seconds in `<digits>[dhms]`, surrounding whitespace ignored.
fn parse_duration(raw: &str) -> Result<u64, BadDuration> {
    let text = raw.trim();
    let (digits, unit) = match text.as_bytes().last() {
        Some(b'd') => (&text[..text.len() - 1], 86_400),
        Some(b'h') => (&text[..text.len() - 1], 3_600),
        Some(b'm') => (&text[..text.len() - 1], 60),
        Some(b's') => (&text[..text.len() - 1], 1),
        _ => (text, 1),
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(BadDuration::Syntax);
    }
    let count: u64 = digits.parse().map_err(|_| BadDuration::Overflow)?;
    count.checked_mul(unit).filter(|secs| i64::try_from(*secs).is_ok()).ok_or(BadDuration::Overflow)
}

/// Checks an `older_than` value up front, for the front doors that refuse bad input as
/// a client error (REST v1) rather than with the CLI's 0.1.18 answers below.
pub fn check_older_than(text: &str) -> std::result::Result<(), String> {
    match parse_duration(text) {
        Ok(_) => Ok(()),
        Err(BadDuration::Syntax) => Err(format!("'{text}' is not a duration: expected formats: 30d, 24h, 60m, 3600s")),
        Err(BadDuration::Overflow) => Err(format!("'{text}': duration is too large")),
    }
}

pub fn gc(root: &Root, policy: &GcPolicy) -> Result<GcBody> {
    let (older_than, source) = match policy.older_than.as_deref() {
        Some(value) => (value, "flag"),
        None => (DEFAULT_OLDER_THAN, "default"),
    };
    let secs = match parse_duration(older_than) {
        Ok(secs) => secs as i64,
        Err(BadDuration::Syntax) => {
            return Err(Error::internal(format!(
                "invalid duration: {older_than}; expected formats: 30d, 24h, 60m, 3600s"
            )));
        }
        Err(BadDuration::Overflow) => {
            return Err(Error::usage(format!(
                "invalid value '{older_than}' for '--older-than': duration is too large"
            )));
        }
    };
    let cutoff = time::format(time::unix_now().saturating_sub(secs).max(EARLIEST_CUTOFF));
    let dry_run = policy.dry_run;
    let older_reason = format!("older_than_{older_than}");

    let policies = Policies { keep: policy.keep, max_bytes: policy.max_bytes };

    let mut names = root.dir_names()?.unwrap_or_default();
    names.sort();
    let standings: Vec<(String, Standing)> = names
        .into_iter()
        .map(|name| {
            let standing = Standing::read(&root.job(&name));
            (name, standing)
        })
        .collect();
    let selected = select(root, &standings, policies);
    let wanted = |name: &str, standing: &Standing| match verdict(standing, &cutoff) {
        Ok(()) => Ok(older_reason.clone()),
        Err("too_recent") if selected.contains_key(name) => Ok(selected[name].clone()),
        Err(reason) => Err(reason),
    };
    let mut body = GcBody {
        root: root.display(),
        dry_run,
        older_than: older_than.to_string(),
        older_than_source: source,
        keep: policies.keep,
        max_bytes: policies.max_bytes,
        deleted: 0,
        skipped: 0,
        freed_bytes: 0,
        jobs: Vec::new(),
    };
    for (name, mut standing) in standings {
        let job = root.job(&name);
        // Directories that are not jobs are none of gc's business (docs/decisions.md OP-18). A readable
        // state.json already proves a job, so only the rest pay for the check.
        if matches!(standing, Standing::Unreadable) && !is_job_dir(&job.path) {
            continue;
        }
        let mut bytes = 0;
        let (action, reason) = match wanted(&name, &standing) {
            Err(reason) => ("skipped", reason.to_string()),
            Ok(reason) => {
                bytes = dir_size(&job.path);
                if dry_run {
                    ("would_delete", reason)
                } else {
                    match remove_if(&job, BULK_LOCK_PATIENCE, |now| wanted(&name, now).is_ok()) {
                        Removal::Removed => ("deleted", reason),
                        Removal::Kept(now) => {
                            let reason = wanted(&name, &now).err().unwrap_or("running").to_string();
                            standing = *now;
                            bytes = 0;
                            ("skipped", reason)
                        }
                        Removal::Failed(e) => ("skipped", format!("delete_failed: {e}")),
                    }
                }
            }
        };
        match action {
            "deleted" => body.deleted += 1,
            "skipped" => body.skipped += 1,
            _ => {}
        }
        if matches!(action, "deleted" | "would_delete") {
            body.freed_bytes = body.freed_bytes.saturating_add(bytes);
        }
        body.jobs.push(GcEntry { job_id: name, state: standing.state(), action, reason, bytes });
    }
    if !dry_run {
        remove_abandoned_staging(root);
    }
    Ok(body)
}

/// The finished jobs the count and size policies select, with their reasons.
fn select(root: &Root, standings: &[(String, Standing)], policies: Policies) -> BTreeMap<String, String> {
    if !policies.any() {
        return BTreeMap::new();
    }
    let finished = standings
        .iter()
        .filter_map(|(name, standing)| match standing {
            Standing::Settled(state) if state.status().is_terminal() && !gc_timestamp(state).is_empty() => {
                Some(Finished {
                    id: name.clone(),
                    stamp: gc_timestamp(state).to_string(),
                    bytes: if policies.max_bytes.is_some() { dir_size(&root.job(name).path) } else { 0 },
                })
            }
            _ => None,
        })
        .collect();
    policies.select(finished)
}

/// A front-end killed while creating a job leaves its `.new-<id>` staging directory
/// behind (no reader ever sees it). After an hour nobody can still be filling it.
fn remove_abandoned_staging(root: &Root) {
    let Ok(entries) = std::fs::read_dir(&root.path) else { return };
    let hour_ago = std::time::SystemTime::now() - std::time::Duration::from_secs(3600);
    for entry in entries.flatten() {
        let abandoned = entry.file_name().to_string_lossy().starts_with(".new-")
            && entry.metadata().is_ok_and(|m| m.is_dir() && m.modified().is_ok_and(|t| t < hour_ago));
        if abandoned {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

/// gc takes settled terminal jobs whose GC timestamp is strictly older than the cutoff;
/// otherwise the reason for skipping.
fn verdict(standing: &Standing, cutoff: &str) -> Result<(), &'static str> {
    let state = match standing {
        Standing::Unreadable => return Err("state_unreadable"),
        Standing::Live(_) => return Err("running"),
        Standing::Settled(state) => state,
    };
    match state.status() {
        Status::Running => return Err("running"),
        Status::Created => return Err("non_terminal_status"),
        Status::Exited | Status::Killed | Status::Failed => {}
    }
    let stamp = gc_timestamp(state);
    if stamp.is_empty() {
        return Err("no_timestamp");
    }
    if first_19(stamp) < first_19(cutoff) { Ok(()) } else { Err("too_recent") }
}

/// `finished_at`, else `updated_at` (docs/compatibility.md §8.10).
fn gc_timestamp(state: &State) -> &str {
    state.finished_at.as_deref().unwrap_or(&state.updated_at)
}

/// The first 19 bytes (`YYYY-MM-DDTHH:MM:SS`), or the whole text if shorter; bytes, so
/// an odd non-ASCII value cannot split a character.
fn first_19(text: &str) -> &[u8] {
    &text.as_bytes()[..text.len().min(19)]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("30d"), Ok(30 * 86_400));
        assert_eq!(parse_duration(" 24h "), Ok(86_400));
        assert_eq!(parse_duration("60m"), Ok(3_600));
        assert_eq!(parse_duration("0s"), Ok(0));
        assert_eq!(parse_duration("42"), Ok(42));
        for bad in ["", " ", "d", "1h30m", "1.5h", "-1s", "+1s", "1D", "1w", "1 d", "１s", "s1"] {
            assert_eq!(parse_duration(bad), Err(BadDuration::Syntax), "{bad:?}");
        }
        assert_eq!(parse_duration("99999999999999999999"), Err(BadDuration::Overflow));
        assert_eq!(parse_duration("999999999999999999d"), Err(BadDuration::Overflow));
        assert_eq!(parse_duration("9223372036854775807s"), Ok(i64::MAX as u64));
    }

    #[test]
    fn earliest_cutoff_has_a_four_digit_year() {
        assert_eq!(time::format(EARLIEST_CUTOFF), "0000-01-01T00:00:00Z");
    }

    #[test]
    fn age_compares_the_first_19_characters_strictly() {
        let mut state = State::new("X", Status::Exited, "2026-01-01T00:00:00Z".to_string());
        let settled = |s: &State| Standing::Settled(s.clone());
        assert_eq!(verdict(&settled(&state), "2026-01-01T00:00:01Z"), Ok(()));
        assert_eq!(verdict(&settled(&state), "2026-01-01T00:00:00Z"), Err("too_recent"));
        state.finished_at = Some("2026-01-01T00:00:05Z".to_string());
        assert_eq!(verdict(&settled(&state), "2026-01-01T00:00:01Z"), Err("too_recent"));
        state.finished_at = None;
        state.updated_at = String::new();
        assert_eq!(verdict(&settled(&state), "2026-01-01T00:00:01Z"), Err("no_timestamp"));
        state.job.status = Status::Created;
        assert_eq!(verdict(&settled(&state), "2026-01-01T00:00:01Z"), Err("non_terminal_status"));
    }
}
