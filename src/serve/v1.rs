//! The v1 resources this module owns (REST v1, issue 16): list, create/run, status,
//! start, kill, tail, tags, notify, delete and gc. Each handler reads its body (a serde
//! type of `wire::v1`, unknown fields refused) or its checked query, builds the engine's
//! typed request with the rules the CLI's flag table applies, calls `crate::jobs` once
//! and renders the CLI's answer. Messages name the offending field or parameter.

use std::time::Duration;

use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::handlers::{Answer, Context, DEFAULT_WAIT_MS};
use super::routes::{Query, Route};
use crate::error::{Code, Error, Result};
use crate::jobs::{
    self, Condition, DEFAULT_GRACE, Definition, DeleteTarget, GcPolicy, IfRunning, KillRequest, ListFilter,
    NotifyChange, Observe, Pattern, ReadyWait, RunRequest, TailRequest,
};
use crate::jobstore::names::check_name;
use crate::wire::v1::{GcBody, IfRunningPolicy, JobBody, KillBody, NotifyBody, Size, StartBody, TagsBody};
use crate::wire::{
    Clamped, CommandLine, MatchType, Notification, OutputMatch, Reply, STATE_NAMES, StreamFilter, typed_object,
};
use crate::{config, signals, size, supervisor, tags};

/// The CLI's defaults (agent-exec-run(1)): the snapshot window and its cap, what a
/// snapshot keeps, the poll fallback, the readiness host.
const DEFAULT_WINDOW_MS: u64 = 10_000;
const MAX_WINDOW_MS: u64 = 10_000;
const TAIL_LINES: u64 = 50;
const TAIL_BYTES: u64 = 65_536;
const POLL_MS: u64 = 200;
const FOR_HOST: &str = "127.0.0.1";

/// Does this `POST /v1/jobs` or `.../start` body make the request wait? A run or start
/// watches the job for the CLI's default window (`--snapshot-after`) unless
/// `snapshot_after_ms` is 0; `wait`, a readiness field or `if_running: replace` (which
/// waits for the holder to stop) wait too. Read leniently: a body that does not parse
/// is refused at once by the handler.
pub fn blocks(route: &Route, body: &[u8]) -> bool {
    #[derive(Deserialize)]
    struct Blocking {
        start: Option<bool>,
        wait: Option<bool>,
        snapshot_after_ms: Option<u64>,
        for_output: Option<String>,
        for_port: Option<u16>,
        if_running: Option<String>,
    }
    let body = if body.iter().all(u8::is_ascii_whitespace) { b"{}".as_slice() } else { body };
    let Ok(flags) = serde_json::from_slice::<Blocking>(body) else { return false };
    let launches = matches!(route, Route::Start(_)) || flags.start == Some(true);
    launches
        && (flags.wait == Some(true)
            || flags.snapshot_after_ms != Some(0)
            || flags.for_output.is_some()
            || flags.for_port.is_some()
            || flags.if_running.as_deref() == Some("replace"))
}

type ReadBody<'a> = &'a mut dyn FnMut() -> Result<Vec<u8>>;

pub fn handle(route: Route, ctx: &Context, query: &Query, read: ReadBody) -> Answer {
    let root = ctx.root;
    let result = match route {
        Route::List => list(ctx, query),
        Route::Create => match body::<JobBody>(read).and_then(|body| create(ctx, body)) {
            // 201 with the new job's address, whether it was only defined or also run.
            Ok((reply, id)) => {
                return Answer {
                    status: 201,
                    header: Some(("Location", format!("/v1/jobs/{id}"))),
                    ..Answer::ok(reply)
                };
            }
            Err(err) => Err(err),
        },
        Route::Job(id) => jobs::status(root, &id).map(|body| Reply::sorted("status", &body)),
        Route::Start(id) => body::<StartBody>(read).and_then(|body| start(ctx, &id, &body)),
        Route::JobKill(id) => body::<KillBody>(read).and_then(|body| {
            let signal = signals::parse(body.signal.as_deref().unwrap_or("TERM"))
                .map_err(|e| invalid(format!("invalid field 'signal': {e}")))?;
            Ok(Reply::sorted("kill", &jobs::kill(root, &KillRequest { job_id: id, signal })?))
        }),
        Route::JobTail(id) => tail(ctx, id, query),
        Route::Tags(id) => body::<TagsBody>(read).and_then(|body| {
            let given = body.tags.ok_or_else(|| invalid("missing field 'tags'".into()))?;
            for tag in &given {
                tags::check_tag(tag).map_err(|e| invalid(format!("invalid field 'tags': {e}")))?;
            }
            let tags = tags::dedup(&given.iter().map(String::as_str).collect::<Vec<_>>());
            Ok(Reply::sorted("tag_set", &jobs::tag_set(root, &id, tags)?))
        }),
        Route::Notify(id) => {
            body::<NotifyBody>(read).and_then(|body| Ok(Reply::sorted("notify.set", &notify(root, &id, body)?)))
        }
        Route::Delete(id) => delete(ctx, id, query),
        Route::Gc => body::<GcBody>(read).and_then(|body| Ok(Reply::sorted("gc", &jobs::gc(root, &gc_policy(body)?)?))),
        other => Err(Error::internal(format!("{other:?} is not a v1 route of this module"))),
    };
    match result {
        Ok(reply) => Answer::ok(reply),
        Err(err) => Answer::error(&err),
    }
}

fn invalid(message: String) -> Error {
    Error::new(Code::InvalidRequest, message)
}

fn field(name: &str, problem: impl std::fmt::Display) -> Error {
    invalid(format!("invalid field '{name}': {problem}"))
}

/// A JSON object body; an empty body is `{}` (every field of these bodies but
/// `command` is optional).
fn body<T: DeserializeOwned + Default>(read: ReadBody) -> Result<T> {
    let bytes = read()?;
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    let value: Value = serde_json::from_slice(&bytes).map_err(|e| invalid(format!("invalid JSON: {e}")))?;
    if !value.is_object() {
        return Err(invalid("the request body must be a JSON object".into()));
    }
    typed_object(&value).map_err(|e| match e.field {
        Some(name) => field(&name, e.message),
        None => invalid(e.message),
    })
}

/// `GET /v1/jobs`: the CLI's `list` filters, scoped like `list` run in the server's
/// working directory.
fn list(ctx: &Context, query: &Query) -> Result<Reply> {
    let state = query.text("state").map(str::to_string);
    if let Some(state) = state.as_deref().filter(|s| !STATE_NAMES.contains(s)) {
        return Err(invalid(format!(
            "invalid query parameter 'state': '{state}' is not one of {}",
            STATE_NAMES.join(", ")
        )));
    }
    let tags = query.all("tag");
    for pattern in &tags {
        tags::check_pattern(pattern).map_err(|e| invalid(format!("invalid query parameter 'tag': {e}")))?;
    }
    let name = query.text("name").map(str::to_string);
    if let Some(name) = &name {
        check_name(name).map_err(|e| invalid(format!("invalid query parameter 'name': {e}")))?;
    }
    let all = query.bool("all")?.unwrap_or(false);
    let cwd = query.text("cwd").map(str::to_string);
    if all && cwd.is_some() {
        return Err(invalid("query parameters 'cwd' and 'all' cannot be used together".into()));
    }
    let filter = ListFilter { cwd, all, state, tags, limit: query.u64("limit")?.unwrap_or(0), name };
    Ok(Reply::sorted("list", &jobs::list(ctx.root, &filter)?))
}

/// `GET /v1/jobs/{id}/tail`: `tail`'s options, with its defaults.
fn tail(ctx: &Context, id: String, query: &Query) -> Result<Reply> {
    let request = TailRequest {
        job_id: id,
        tail_lines: query.u64("tail_lines")?.unwrap_or(TAIL_LINES),
        max_bytes: query.u64("max_bytes")?.unwrap_or(TAIL_BYTES),
    };
    Ok(Reply::sorted("tail", &jobs::tail(ctx.root, &request)?))
}

/// `DELETE /v1/jobs/{id}`: one job, as `delete ID` (`--all` has no v1 form: `/v1/gc`).
fn delete(ctx: &Context, id: String, query: &Query) -> Result<Reply> {
    let dry_run = query.bool("dry_run")?.unwrap_or(false);
    Ok(Reply::sorted("delete", &jobs::delete(ctx.root, &DeleteTarget::One(id), dry_run)?))
}

/// `POST /v1/jobs`: `create`, or `run` with `start: true`. Returns the answer and the
/// job's id for `Location`.
fn create(ctx: &Context, body: JobBody) -> Result<(Reply, String)> {
    let definition = definition(&body)?;
    if body.start != Some(true) {
        // Only `run` watches or names a log: refused rather than ignored.
        let run_only = [
            ("if_running", body.if_running.is_some()),
            ("log", body.log.is_some()),
            ("snapshot_after_ms", body.snapshot_after_ms.is_some()),
            ("tail_lines", body.tail_lines.is_some()),
            ("max_bytes", body.max_bytes.is_some()),
            ("wait", body.wait.is_some()),
            ("wait_poll_ms", body.wait_poll_ms.is_some()),
            ("until_ms", body.until_ms.is_some()),
            ("for_output", body.for_output.is_some()),
            ("for_port", body.for_port.is_some()),
            ("for_host", body.for_host.is_some()),
        ];
        if let Some((name, _)) = run_only.iter().find(|(_, given)| *given) {
            return Err(field(name, "needs \"start\": true"));
        }
        let created = jobs::create(ctx.root, &definition)?;
        let id = created.job_id.clone();
        return Ok((Reply::sorted("create", &created), id));
    }
    if body.if_running.is_some() && body.name.is_none() {
        return Err(field("if_running", "needs a name"));
    }
    let if_running = match body.if_running {
        None => IfRunning::Fail,
        Some(IfRunningPolicy::Reuse) => IfRunning::Reuse,
        // Between TERM and KILL: `kill_after_ms` when given, as `run --if-running replace`.
        Some(IfRunningPolicy::Replace) => {
            IfRunning::Replace { grace: body.kill_after_ms.map_or(DEFAULT_GRACE, Duration::from_millis) }
        }
    };
    let watch = Watch {
        snapshot_after_ms: body.snapshot_after_ms,
        tail_lines: body.tail_lines,
        max_bytes: body.max_bytes,
        wait: body.wait,
        wait_poll_ms: body.wait_poll_ms,
        until_ms: body.until_ms,
        for_output: body.for_output.as_deref(),
        // `run` takes the readiness match type and stream from its output-match options.
        output_match_type: body.output_match_type,
        output_stream: body.output_stream,
        for_port: body.for_port,
        for_host: body.for_host.as_deref(),
    };
    let (observe, clamped) = watch.observe(ctx)?;
    let request = RunRequest { definition, log: body.log.map(Into::into), observe, if_running };
    let mut answer = jobs::run(ctx.root, &request)?;
    answer.clamped = clamped.or(answer.clamped);
    let id = answer.job_id.clone();
    Ok((Reply::sorted("run", &answer), id))
}

/// `POST /v1/jobs/{id}/start`.
fn start(ctx: &Context, id: &str, body: &StartBody) -> Result<Reply> {
    let watch = Watch {
        snapshot_after_ms: body.snapshot_after_ms,
        tail_lines: body.tail_lines,
        max_bytes: body.max_bytes,
        wait: body.wait,
        wait_poll_ms: body.wait_poll_ms,
        until_ms: body.until_ms,
        for_output: body.for_output.as_deref(),
        output_match_type: body.output_match_type,
        output_stream: body.output_stream,
        for_port: body.for_port,
        for_host: body.for_host.as_deref(),
    };
    let (observe, clamped) = watch.observe(ctx)?;
    let mut answer = jobs::start(ctx.root, id, &observe)?;
    answer.clamped = clamped.or(answer.clamped);
    Ok(Reply::sorted("start", &answer))
}

/// What `run` and `start` are told about watching the job, from either body.
struct Watch<'a> {
    snapshot_after_ms: Option<u64>,
    tail_lines: Option<u64>,
    max_bytes: Option<u64>,
    wait: Option<bool>,
    wait_poll_ms: Option<u64>,
    until_ms: Option<u64>,
    for_output: Option<&'a str>,
    output_match_type: Option<MatchType>,
    output_stream: Option<StreamFilter>,
    for_port: Option<u16>,
    for_host: Option<&'a str>,
}

impl Watch<'_> {
    /// The engine's `Observe` with the CLI's defaults and rules (`until_ms` needs a wait,
    /// one readiness condition at most, `for_host` needs `for_port`), every wait bounded
    /// by `--max-wait-ms`, and the `clamped` report of any lowering done here.
    fn observe(&self, ctx: &Context) -> Result<(Observe, Option<Clamped>)> {
        let wait = self.wait.unwrap_or(false);
        let readiness = self.for_output.is_some() || self.for_port.is_some();
        if self.until_ms.is_some() && !wait && !readiness {
            return Err(field("until_ms", "needs \"wait\": true (or a readiness wait)"));
        }
        if self.for_output.is_some() && self.for_port.is_some() {
            return Err(field("for_port", "cannot be used with for_output"));
        }
        if self.for_host.is_some() && self.for_port.is_none() {
            return Err(field("for_host", "needs for_port"));
        }
        if self.for_port == Some(0) {
            return Err(field("for_port", "expected a port between 1 and 65535"));
        }
        let (until_ms, until_clamped) = ctx.bound(self.until_ms, DEFAULT_WAIT_MS);
        let poll_ms = self.wait_poll_ms.unwrap_or(POLL_MS);
        let ready = self.ready(until_ms, poll_ms)?;
        // The window is bounded by the server maximum too, below the CLI's own cap.
        let cap = MAX_WINDOW_MS.min(ctx.max_wait_ms);
        let (snapshot_after_ms, window_clamped) = match self.snapshot_after_ms {
            Some(ms) if ms > cap && cap < MAX_WINDOW_MS => {
                (cap, Some(Clamped { snapshot_after_ms: Some(cap), until_ms: None }))
            }
            Some(ms) => (ms, None),
            None => (DEFAULT_WINDOW_MS.min(cap), None),
        };
        let observe = Observe {
            snapshot_after_ms,
            tail_lines: self.tail_lines.unwrap_or(TAIL_LINES),
            max_bytes: self.max_bytes.unwrap_or(TAIL_BYTES),
            wait,
            poll_ms,
            until_ms: Some(until_ms),
            ready,
        };
        let clamped = if wait || readiness { until_clamped } else { window_clamped };
        Ok((observe, clamped))
    }

    fn ready(&self, until_ms: u64, poll_ms: u64) -> Result<Option<ReadyWait>> {
        let condition = match (self.for_output, self.for_port) {
            (Some(text), _) => {
                let pattern = match self.output_match_type.unwrap_or_default() {
                    MatchType::Regex => Pattern::Regex(
                        regex_lite::Regex::new(text)
                            .map_err(|e| field("for_output", format!("invalid regex '{text}': {e}")))?,
                    ),
                    MatchType::Contains => Pattern::Contains(text.to_string()),
                };
                Condition::Output { pattern, stream: self.output_stream.unwrap_or_default() }
            }
            (None, Some(port)) => Condition::Port { host: self.for_host.unwrap_or(FOR_HOST).to_string(), port },
            (None, None) => return Ok(None),
        };
        Ok(Some(ReadyWait {
            condition,
            until: Some(Duration::from_millis(until_ms)),
            poll: Duration::from_millis(poll_ms),
        }))
    }
}

/// The definition `run`/`create` would build from the same options, checked with the
/// flag table's rules. `--secret-env` and `--config` have no counterpart: both read the
/// server's own environment or files on behalf of a client.
fn definition(body: &JobBody) -> Result<Definition> {
    let command = match &body.command {
        None => return Err(invalid("missing field 'command'".into())),
        Some(CommandLine::Argv(words)) if !words.is_empty() => words.clone(),
        Some(CommandLine::Shell(line)) if !line.trim().is_empty() => vec![line.clone()],
        Some(_) => return Err(field("command", "must not be empty")),
    };
    if command.iter().any(|word| word.contains('\0')) {
        return Err(field("command", "NUL is not allowed"));
    }
    let env = body.env.clone().unwrap_or_default();
    for (key, value) in &env {
        supervisor::check_pair(key, value).map_err(|e| field("env", e))?;
    }
    let mask = body.mask.clone().unwrap_or_default();
    for key in &mask {
        supervisor::check_key(key).map_err(|e| field("mask", e))?;
    }
    let given_tags = body.tags.clone().unwrap_or_default();
    for tag in &given_tags {
        tags::check_tag(tag).map_err(|e| field("tags", e))?;
    }
    if let Some(name) = &body.name {
        check_name(name).map_err(|e| field("name", e))?;
    }
    let wrapper = match &body.shell_wrapper {
        Some(words) if words.is_empty() || words.iter().any(|w| w.is_empty() || w.contains('\0')) => {
            return Err(field("shell_wrapper", "expected a non-empty argv of non-empty words"));
        }
        Some(words) => words.clone(),
        None => config::resolve_wrapper(None, None)?,
    };
    Ok(Definition {
        command,
        name: body.name.clone(),
        env: env.iter().map(|(key, value)| format!("{key}={value}")).collect(),
        env_files: body.env_files.clone().unwrap_or_default(),
        inherit_env: body.inherit_env.unwrap_or(true),
        mask,
        tags: tags::dedup(&given_tags.iter().map(String::as_str).collect::<Vec<_>>()),
        timeout_ms: body.timeout_ms.unwrap_or(0),
        kill_after_ms: body.kill_after_ms.unwrap_or(0),
        progress_every_ms: body.progress_every_ms.unwrap_or(0),
        notification: notification(body)?,
        wrapper,
        cwd: body.cwd.clone(),
        max_log_bytes: config::max_log_bytes(body.max_log_bytes.map(|n| n.to_string()).as_deref(), None)?,
        no_full_log: body.no_full_log.unwrap_or(false),
    })
}

/// The completion and output-match sinks, as `run` builds them from its flags.
fn notification(body: &JobBody) -> Result<Option<Notification>> {
    let on_output_match = match body.output_pattern.as_deref().filter(|p| !p.is_empty()) {
        None => None,
        Some(pattern) => {
            let match_type = body.output_match_type.unwrap_or_default();
            if match_type == MatchType::Regex {
                jobs::check_regex(pattern).map_err(|e| field("output_pattern", e))?;
            }
            Some(OutputMatch {
                pattern: pattern.to_string(),
                match_type,
                stream: body.output_stream.unwrap_or_default(),
                command: body.output_command.clone(),
                file: body.output_file.clone(),
            })
        }
    };
    let notification = Notification {
        notify_command: body.notify_command.clone(),
        notify_file: body.notify_file.clone(),
        on_output_match,
    };
    Ok((!notification.is_empty()).then_some(notification))
}

/// `PATCH /v1/jobs/{id}/notify`: `notify set` (the engine checks a regex against the
/// merged match type).
fn notify(root: &crate::jobstore::Root, id: &str, body: NotifyBody) -> Result<crate::wire::NotifySetBody> {
    let change = NotifyChange {
        notify_command: body.command,
        notify_file: body.notify_file,
        output_pattern: body.output_pattern,
        output_match_type: body.output_match_type,
        output_stream: body.output_stream,
        output_command: body.output_command,
        output_file: body.output_file,
    };
    jobs::notify_set(root, id, &change)
}

/// `POST /v1/gc`: `gc`'s options, checked here so that a bad value is a 400.
fn gc_policy(body: GcBody) -> Result<GcPolicy> {
    if let Some(text) = &body.older_than {
        jobs::check_older_than(text).map_err(|e| field("older_than", e))?;
    }
    let max_bytes = match body.max_bytes {
        None => None,
        Some(Size::Bytes(n)) => Some(n),
        Some(Size::Text(text)) => Some(size::parse_size(&text).ok_or_else(|| {
            field("max_bytes", format!("'{text}' is not a size: expected bytes, optionally with K, M or G"))
        })?),
    };
    Ok(GcPolicy { older_than: body.older_than, keep: body.keep, max_bytes, dry_run: body.dry_run.unwrap_or(false) })
}
