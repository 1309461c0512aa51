//! `notify set`: change a job's notification settings; never runs a sink.

use crate::error::{Error, Result};
use crate::jobstore::Root;
use crate::wire::{MatchType, Notification, NotifySetBody, OutputMatch, StreamFilter};

/// What to change; `None` keeps the current value.
#[derive(Debug, Clone, Default)]
pub struct NotifyChange {
    pub notify_command: Option<String>,
    pub notify_file: Option<String>,
    /// An empty pattern removes output matching.
    pub output_pattern: Option<String>,
    pub output_match_type: Option<MatchType>,
    pub output_stream: Option<StreamFilter>,
    pub output_command: Option<String>,
    pub output_file: Option<String>,
}

impl NotifyChange {
    fn touches_output_match(&self) -> bool {
        self.output_pattern.is_some()
            || self.output_match_type.is_some()
            || self.output_stream.is_some()
            || self.output_command.is_some()
            || self.output_file.is_some()
    }
}

pub fn notify_set(root: &Root, given: &str, change: &NotifyChange) -> Result<NotifySetBody> {
    let job = root.lookup(given)?;
    let locked = job.lock()?;
    let mut meta = locked.read_meta()?;
    let merged = merge(meta.notification.take().unwrap_or_default(), change)?;
    meta.notification = (!merged.is_empty()).then(|| merged.clone());
    locked.write_meta(&meta)?;
    Ok(NotifySetBody { job_id: job.id.clone(), notification: merged })
}

/// An output-match pattern of type regex must compile; the message names the CLI flag,
/// as every front door reports it (0.1.18's wording).
pub fn check_regex(pattern: &str) -> std::result::Result<(), String> {
    crate::pattern::compile(pattern)
        .map(|_| ())
        .map_err(|e| format!("invalid regex '{pattern}' for '--output-pattern': {e}"))
}

/// The merge rules of docs/compatibility.md §8.12: `--command` (alias `--notify-command`, as `run`
/// names it) replaces the completion command, `--notify-file` the completion file (both
/// are kept when not given), and the output-match block is overlaid field by field and
/// removed when its pattern ends up empty. A regex is checked against the merged
/// match type, so switching an existing pattern to regex is validated too.
fn merge(mut notification: Notification, change: &NotifyChange) -> Result<Notification> {
    if let Some(command) = &change.notify_command {
        notification.notify_command = Some(command.clone());
    }
    if let Some(file) = &change.notify_file {
        notification.notify_file = Some(file.clone());
    }
    if change.touches_output_match() {
        let mut block = notification.on_output_match.take().unwrap_or(OutputMatch {
            pattern: String::new(),
            match_type: MatchType::Contains,
            stream: StreamFilter::Either,
            command: None,
            file: None,
        });
        if let Some(pattern) = &change.output_pattern {
            block.pattern = pattern.clone();
        }
        if let Some(match_type) = change.output_match_type {
            block.match_type = match_type;
        }
        if let Some(stream) = change.output_stream {
            block.stream = stream;
        }
        if let Some(command) = &change.output_command {
            block.command = Some(command.clone());
        }
        if let Some(file) = &change.output_file {
            block.file = Some(file.clone());
        }
        if block.match_type == MatchType::Regex && !block.pattern.is_empty() {
            check_regex(&block.pattern).map_err(Error::usage)?;
        }
        notification.on_output_match = (!block.pattern.is_empty()).then_some(block);
    }
    Ok(notification)
}
