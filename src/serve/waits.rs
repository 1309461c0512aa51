//! The v1 waits (issue 16): `GET /v1/jobs/{id}/wait` (the bounded single-job wait and
//! the readiness waits) and `GET /v1/wait` (many jobs), each answering exactly what the
//! CLI's `wait` answers for the same options, plus `clamped` when `until_ms` was lowered
//! to `--max-wait-ms`. The query is already parsed into these types; the checks here
//! are the CLI table's conflicts and requirements for `wait`.

use std::time::Duration;

use super::handlers::{Context, DEFAULT_WAIT_MS};
use super::routes::Query;
use crate::error::{Code, Error, Result};
use crate::jobs::{self, Condition, Pattern, ReadyWait, WaitManyRequest, WaitRequest};
use crate::wire::{Reply, StreamFilter};

/// CLI `wait --poll-ms`'s default: the fallback poll (inotify notices changes).
const POLL: Duration = Duration::from_millis(200);

/// `output_match_type` of `for_output`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
enum MatchType {
    #[default]
    Contains,
    Regex,
}

/// The readiness parameters of `GET /v1/jobs/{id}/wait`, as given.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Readiness {
    for_output: Option<String>,
    output_match_type: Option<MatchType>,
    output_stream: Option<StreamFilter>,
    for_port: Option<u16>,
    for_host: Option<String>,
}

/// The parameters of `GET /v1/wait`, as given.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct ManyWait {
    jobs: Vec<String>,
    tags: Vec<String>,
    cwd: Option<String>,
    all: bool,
    any: bool,
    until_ms: Option<u64>,
}

fn invalid(message: impl Into<String>) -> Error {
    Error::new(Code::InvalidRequest, message.into())
}

/// A parameter whose value must be one of `choices`.
fn choice<T: Copy>(query: &Query, name: &str, choices: &[(&str, T)]) -> Result<Option<T>> {
    let Some(text) = query.text(name) else { return Ok(None) };
    match choices.iter().find(|(word, _)| *word == text) {
        Some((_, value)) => Ok(Some(*value)),
        None => {
            let words: Vec<&str> = choices.iter().map(|(word, _)| *word).collect();
            Err(invalid(format!("invalid query parameter '{name}': '{text}' is not one of {}", words.join(", "))))
        }
    }
}

impl Readiness {
    fn read(query: &Query) -> Result<Readiness> {
        let port_error = || invalid("invalid query parameter 'for_port': expected a port number 1-65535");
        let for_port = match query.u64("for_port").map_err(|_| port_error())? {
            Some(port) => Some(u16::try_from(port).ok().filter(|&p| p > 0).ok_or_else(port_error)?),
            None => None,
        };
        Ok(Readiness {
            for_output: query.text("for_output").map(str::to_string),
            output_match_type: choice(
                query,
                "output_match_type",
                &[("contains", MatchType::Contains), ("regex", MatchType::Regex)],
            )?,
            output_stream: choice(
                query,
                "output_stream",
                &[("stdout", StreamFilter::Stdout), ("stderr", StreamFilter::Stderr), ("either", StreamFilter::Either)],
            )?,
            for_port,
            for_host: query.text("for_host").map(str::to_string),
        })
    }

    /// The condition, with the checks of CLI `wait`: `for_output` and `for_port` exclude
    /// each other, `for_host` needs `for_port`, a regex must compile.
    fn condition(&self) -> Result<Option<Condition>> {
        if self.for_host.is_some() && self.for_port.is_none() {
            return Err(invalid("query parameter 'for_host' needs 'for_port'"));
        }
        match (&self.for_output, self.for_port) {
            (Some(_), Some(_)) => Err(invalid("query parameters 'for_output' and 'for_port' exclude each other")),
            (None, None) => Ok(None),
            (Some(text), None) => {
                let pattern = match self.output_match_type.unwrap_or_default() {
                    MatchType::Contains => Pattern::Contains(text.clone()),
                    MatchType::Regex => Pattern::Regex(regex_lite::Regex::new(text).map_err(|e| {
                        invalid(format!("invalid query parameter 'for_output': not a valid regular expression: {e}"))
                    })?),
                };
                Ok(Some(Condition::Output { pattern, stream: self.output_stream.unwrap_or_default() }))
            }
            (None, Some(port)) => {
                let host = self.for_host.clone().unwrap_or_else(|| "127.0.0.1".to_string());
                Ok(Some(Condition::Port { host, port }))
            }
        }
    }
}

/// `GET /v1/jobs/{id}/wait`: CLI `wait ID [--until MS] [--for-output|--for-port ...]`.
pub fn job_wait(ctx: &Context, id: &str, query: &Query) -> Result<Reply> {
    let condition = Readiness::read(query)?.condition()?;
    wait_one(ctx, id, query.u64("until_ms")?, condition)
}

fn wait_one(ctx: &Context, id: &str, until_ms: Option<u64>, condition: Option<Condition>) -> Result<Reply> {
    let (until_ms, clamped) = ctx.bound(until_ms, DEFAULT_WAIT_MS);
    let until = Some(Duration::from_millis(until_ms));
    let mut body = match condition {
        Some(condition) => jobs::wait_ready(ctx.root, id, &ReadyWait { condition, until, poll: POLL })?,
        None => jobs::wait(ctx.root, &WaitRequest { job_id: id.to_string(), until, poll: POLL })?,
    };
    body.clamped = clamped;
    Ok(Reply::sorted("wait", &body))
}

impl ManyWait {
    /// With the checks of CLI `wait`: something to wait for, `cwd` and `all` only with
    /// `tag` and not together, every tag pattern valid.
    fn read(query: &Query) -> Result<ManyWait> {
        let wait = ManyWait {
            jobs: query.all("job"),
            tags: query.all("tag"),
            cwd: query.text("cwd").map(str::to_string),
            all: query.bool("all")?.unwrap_or(false),
            any: query.bool("any")?.unwrap_or(false),
            until_ms: query.u64("until_ms")?,
        };
        if wait.jobs.is_empty() && wait.tags.is_empty() {
            return Err(invalid("query parameter 'job' or 'tag' is required (what to wait for)"));
        }
        if wait.cwd.is_some() && wait.all {
            return Err(invalid("query parameters 'cwd' and 'all' exclude each other"));
        }
        if wait.tags.is_empty() && (wait.cwd.is_some() || wait.all) {
            let name = if wait.all { "all" } else { "cwd" };
            return Err(invalid(format!("query parameter '{name}' needs 'tag'")));
        }
        for pattern in &wait.tags {
            crate::tags::check_pattern(pattern)
                .map_err(|message| invalid(format!("invalid query parameter 'tag': {message}")))?;
        }
        Ok(wait)
    }
}

/// `GET /v1/wait`: CLI `wait ID ID... [--tag P]... [--cwd DIR|--all] [--any] [--until MS]`.
/// One job given alone gets the single-job answer, as CLI `wait ID` does.
pub fn many_wait(ctx: &Context, query: &Query) -> Result<Reply> {
    let wait = ManyWait::read(query)?;
    if let ([id], true, false) = (wait.jobs.as_slice(), wait.tags.is_empty(), wait.any) {
        return wait_one(ctx, id, wait.until_ms, None);
    }
    let (until_ms, clamped) = ctx.bound(wait.until_ms, DEFAULT_WAIT_MS);
    let request = WaitManyRequest {
        job_ids: wait.jobs,
        tags: wait.tags,
        cwd: wait.cwd,
        all: wait.all,
        any: wait.any,
        until: Some(Duration::from_millis(until_ms)),
        poll: POLL,
    };
    let mut body = jobs::wait_many(ctx.root, &request)?;
    body.clamped = clamped;
    Ok(Reply::sorted("wait", &body))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::serve::routes::Route;

    fn query(text: &str, route: &Route) -> Result<Query> {
        Query::parse(&format!("/x?{text}"), route.params())
    }

    fn condition(text: &str) -> Result<Option<Condition>> {
        let query = query(text, &Route::JobWait("x".into()))?;
        Readiness::read(&query)?.condition()
    }

    #[test]
    fn readiness_checks_are_the_cli_tables() {
        assert!(matches!(condition(""), Ok(None)));
        assert!(matches!(condition("until_ms=5"), Ok(None)));
        assert!(matches!(condition("for_output=ready"), Ok(Some(Condition::Output { .. }))));
        let regex = condition("for_output=%5Ere.dy%24&output_match_type=regex&output_stream=stderr");
        assert!(matches!(regex, Ok(Some(Condition::Output { stream: StreamFilter::Stderr, .. }))));
        match condition("for_port=8080") {
            Ok(Some(Condition::Port { host, port })) => assert_eq!((host.as_str(), port), ("127.0.0.1", 8080)),
            other => panic!("{other:?}"),
        }
        let cases = [
            ("for_output=(&output_match_type=regex", "for_output"),
            ("for_output=x&output_match_type=glob", "output_match_type"),
            ("for_output=x&output_stream=both", "output_stream"),
            ("for_output=x&for_port=1", "for_port"),
            ("for_host=localhost", "for_host"),
            ("for_output=x&for_host=localhost", "for_host"),
            ("for_port=0", "for_port"),
            ("for_port=65536", "for_port"),
            ("for_port=-1", "for_port"),
        ];
        for (text, name) in cases {
            let err = condition(text).err().unwrap_or_else(|| panic!("{text}: accepted"));
            assert_eq!(err.code, Code::InvalidRequest, "{text}");
            assert!(err.message.contains(&format!("'{name}'")), "{text}: {}", err.message);
        }
    }

    #[test]
    fn many_waits_need_a_target_and_consistent_scopes() {
        let read = |text: &str| query(text, &Route::WaitMany).and_then(|q| ManyWait::read(&q));
        for text in ["", "cwd=/", "all=true&job=01J9", "tag=ci&all=true&cwd=/", "tag=*", "any=yes&job=a"] {
            assert_eq!(read(text).err().map(|e| e.code), Some(Code::InvalidRequest), "{text}");
        }
        let wait = read("job=a&job=%40web&tag=ci&tag=team.*&all=true&any=true&until_ms=0").expect("valid");
        assert_eq!(wait.jobs, ["a", "@web"]);
        assert_eq!(wait.tags, ["ci", "team.*"]);
        assert!(wait.all && wait.any);
        assert_eq!(wait.until_ms, Some(0));
    }
}
