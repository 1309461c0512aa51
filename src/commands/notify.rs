//! `notify set`: change a job's notification settings; never runs a sink.

use crate::cli::{Args, check_regex};
use crate::error::{Error, Result};
use crate::jobstore::Root;
use crate::wire::{MatchType, Notification, NotifySetBody, OutputMatch, Reply, StreamFilter};

pub fn notify_set(args: &Args, root: &Root) -> Result<Reply> {
    let job = root.lookup(args.job_id())?;
    let _lock = job.lock()?;
    let mut meta = job.read_meta()?;
    let merged = merge(meta.notification.take().unwrap_or_default(), args)?;
    meta.notification = (!merged.is_empty()).then(|| merged.clone());
    job.write_meta(&meta)?;
    Ok(Reply::new("notify.set", &NotifySetBody { job_id: job.id.clone(), notification: merged }))
}

/// The merge rules of CONTRACT §8.12: `--command` (alias `--notify-command`, as `run`
/// names it) replaces the completion command, `--notify-file` the completion file (both
/// are kept when not given), and the output-match block is overlaid field by field and
/// removed when its pattern ends up empty. A regex is checked against the merged
/// match type, so switching an existing pattern to regex is validated too.
fn merge(mut notification: Notification, args: &Args) -> Result<Notification> {
    if let Some(command) = args.value("command") {
        notification.notify_command = Some(command.to_string());
    }
    if let Some(file) = args.value("notify-file") {
        notification.notify_file = Some(file.to_string());
    }
    let output_flags = ["output-pattern", "output-match-type", "output-stream", "output-command", "output-file"];
    if output_flags.iter().any(|f| args.has(f)) {
        let mut block = notification.on_output_match.take().unwrap_or(OutputMatch {
            pattern: String::new(),
            match_type: MatchType::Contains,
            stream: StreamFilter::Either,
            command: None,
            file: None,
        });
        if let Some(pattern) = args.value("output-pattern") {
            block.pattern = pattern.to_string();
        }
        match args.value("output-match-type") {
            Some("regex") => block.match_type = MatchType::Regex,
            Some(_) => block.match_type = MatchType::Contains,
            None => {}
        }
        match args.value("output-stream") {
            Some("stdout") => block.stream = StreamFilter::Stdout,
            Some("stderr") => block.stream = StreamFilter::Stderr,
            Some(_) => block.stream = StreamFilter::Either,
            None => {}
        }
        if let Some(command) = args.value("output-command") {
            block.command = Some(command.to_string());
        }
        if let Some(file) = args.value("output-file") {
            block.file = Some(file.to_string());
        }
        if block.match_type == MatchType::Regex && !block.pattern.is_empty() {
            check_regex(&block.pattern).map_err(Error::usage)?;
        }
        notification.on_output_match = (!block.pattern.is_empty()).then_some(block);
    }
    Ok(notification)
}
