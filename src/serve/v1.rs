//! The v1 resources this module owns (REST v1, issue 16): list, create/run, status,
//! start, kill, tail, tags, notify, delete and gc. Each handler reads its body (a serde
//! type of `wire::v1`, unknown fields refused) or its checked query, builds the engine's
//! typed request with the rules the CLI's flag table applies, calls `crate::jobs` once
//! and renders the CLI's answer. Messages name the offending field or parameter.

use std::time::Duration;

use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::handlers::{Answer, Context, DEFAULT_WAIT_MS, bound};
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
    // Read as the handler reads it; a body that does not read so is answered 400 at once.
    let Ok(value) = crate::wire::parse_request(body) else { return false };
    let Ok(flags) = serde_json::from_value::<Blocking>(value) else { return false };
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
            let signal = signals::parse(body.signal.as_deref().unwrap_or("TERM")).map_err(|e| field("signal", e))?;
            Ok(Reply::sorted("kill", &jobs::kill(root, &KillRequest { job_id: id, signal })?))
        }),
        Route::JobTail(id) => tail(ctx, id, query),
        Route::Tags(id) => body::<TagsBody>(read).and_then(|body| {
            let given = body.tags.ok_or_else(|| invalid("missing field 'tags'".into()))?;
            for tag in &given {
                tags::check_tag(tag).map_err(|e| field("tags", e))?;
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
    let value = crate::wire::parse_unique(&bytes).map_err(|e| invalid(format!("invalid JSON: {e}")))?;
    let Some(object) = value.as_object() else {
        return Err(invalid("the request body must be a JSON object".into()));
    };
    // No command line can carry a NUL, and no path, command or pattern of a job may.
    if let Some((name, _)) = object.iter().find(|(_, value)| holds_nul(value)) {
        return Err(field(name, "NUL is not allowed"));
    }
    typed_object(&value).map_err(|e| match e.field {
        Some(name) => field(&name, e.message),
        None => invalid(e.message),
    })
}

fn holds_nul(value: &Value) -> bool {
    match value {
        Value::String(text) => text.contains('\0'),
        Value::Array(items) => items.iter().any(holds_nul),
        Value::Object(map) => map.iter().any(|(key, value)| key.contains('\0') || holds_nul(value)),
        Value::Null | Value::Bool(_) | Value::Number(_) => false,
    }
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
    match launch(body, ctx.max_wait_ms)? {
        Launch::Create(definition) => {
            let created = jobs::create(ctx.root, &definition)?;
            let id = created.job_id.clone();
            Ok((Reply::sorted("create", &created), id))
        }
        Launch::Run(request, clamped) => {
            let mut answer = jobs::run(ctx.root, &request)?;
            answer.clamped = clamped.or(answer.clamped);
            let id = answer.job_id.clone();
            Ok((Reply::sorted("run", &answer), id))
        }
    }
}

/// What a `POST /v1/jobs` body asks for, checked and typed.
enum Launch {
    Create(Box<Definition>),
    /// With the `clamped` report of the bounds applied here.
    Run(Box<RunRequest>, Option<Clamped>),
}

/// The pure part of `POST /v1/jobs` (it reads `config.toml` for the wrapper, as `run`).
fn launch(body: JobBody, max_wait_ms: u64) -> Result<Launch> {
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
        return Ok(Launch::Create(Box::new(definition)));
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
    let (observe, clamped) = watch.observe(max_wait_ms)?;
    let request = RunRequest { definition, log: body.log.map(Into::into), observe, if_running };
    Ok(Launch::Run(Box::new(request), clamped))
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
    let (observe, clamped) = watch.observe(ctx.max_wait_ms)?;
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
    fn observe(&self, max_wait_ms: u64) -> Result<(Observe, Option<Clamped>)> {
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
        let (until_ms, until_clamped) = bound(max_wait_ms, self.until_ms, DEFAULT_WAIT_MS);
        let poll_ms = self.wait_poll_ms.unwrap_or(POLL_MS);
        let ready = self.ready(until_ms, poll_ms)?;
        // The window is bounded by the server maximum too, below the CLI's own cap.
        let cap = MAX_WINDOW_MS.min(max_wait_ms);
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
                        crate::pattern::compile(text)
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

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(json: &str) -> Result<Launch> {
        let mut bytes = Some(json.as_bytes().to_vec());
        let mut read = || Ok(bytes.take().unwrap_or_default());
        launch(body::<JobBody>(&mut read)?, 600_000)
    }

    fn run(json: &str) -> (RunRequest, Option<Clamped>) {
        match parse(json) {
            Ok(Launch::Run(request, clamped)) => (*request, clamped),
            Ok(Launch::Create(_)) => panic!("{json}: a create"),
            Err(err) => panic!("{json}: {}", err.message),
        }
    }

    #[test]
    fn run_takes_the_cli_defaults() {
        let (request, clamped) = run(r#"{"command":"make test","start":true}"#);
        let observe = &request.observe;
        assert_eq!((observe.snapshot_after_ms, observe.tail_lines, observe.max_bytes), (10_000, 50, 65_536));
        assert!(!observe.wait && observe.ready.is_none() && clamped.is_none());
        assert_eq!(request.definition.command, ["make test"]);
        assert!(request.definition.inherit_env && request.definition.notification.is_none());
        assert!(matches!(request.if_running, IfRunning::Fail));
    }

    #[test]
    fn waits_are_bounded_and_say_so() {
        let (request, clamped) = run(r#"{"command":["x"],"start":true,"wait":true,"until_ms":900000}"#);
        assert_eq!(request.observe.until_ms, Some(600_000));
        assert_eq!(clamped.and_then(|c| c.until_ms), Some(600_000));
        let (request, _) = run(r#"{"command":["x"],"start":true,"for_port":8080,"until_ms":5}"#);
        let ready = request.observe.ready.expect("readiness");
        assert_eq!(ready.until, Some(Duration::from_millis(5)));
        assert!(matches!(ready.condition, Condition::Port { ref host, port: 8080 } if host == "127.0.0.1"));
        let (request, _) = run(
            r#"{"command":["x"],"start":true,"for_output":"^up$","output_match_type":"regex","output_stream":"stderr"}"#,
        );
        let ready = request.observe.ready.expect("readiness");
        assert!(matches!(
            ready.condition,
            Condition::Output { pattern: Pattern::Regex(_), stream: StreamFilter::Stderr }
        ));
    }

    #[test]
    fn sinks_and_policies_are_built_as_run_builds_them() {
        let (request, _) =
            run(r#"{"command":["x"],"start":true,"name":"web","if_running":"replace","kill_after_ms":250,
                "notify_file":"/tmp/n","output_pattern":"err","output_command":"cat"}"#);
        assert!(matches!(request.if_running, IfRunning::Replace { grace } if grace == Duration::from_millis(250)));
        let notification = request.definition.notification.expect("sinks");
        assert_eq!(notification.notify_file.as_deref(), Some("/tmp/n"));
        let matcher = notification.on_output_match.expect("output match");
        assert_eq!((matcher.pattern.as_str(), matcher.command.as_deref()), ("err", Some("cat")));
        assert!(
            matches!(parse(r#"{"command":["x"],"name":"web"}"#), Ok(Launch::Create(ref d)) if d.name.as_deref() == Some("web"))
        );
    }

    /// Fuzz cases: a few hundred in the normal suite, many under `AGENT_EXEC_SOAK`.
    fn fuzz_config() -> proptest::prelude::ProptestConfig {
        let cases = if std::env::var_os("AGENT_EXEC_SOAK").is_some() { 100_000 } else { 500 };
        proptest::prelude::ProptestConfig { cases, ..proptest::prelude::ProptestConfig::default() }
    }

    /// Bodies: raw bytes, or objects built from the real field names, unknown ones and
    /// values of every JSON type.
    fn job_body() -> impl proptest::prelude::Strategy<Value = Vec<u8>> {
        use proptest::prelude::*;
        let value = r#"(\[("[a-z ]{0,3}",?|1,?|null,?){0,3}\]|null|"[a-z.^(]{0,4}"|-?[0-9]{1,21}|true|false|\{"[A-Z]{0,2}":("v"|1)\}|[0-9.e+-]{1,6})"#;
        let key = r#""(command|cwd|env|env_files|inherit_env|mask|tags|name|if_running|timeout_ms|kill_after_ms|output_pattern|output_match_type|output_stream|shell_wrapper|start|snapshot_after_ms|wait|until_ms|for_output|for_port|for_host|x)""#;
        prop_oneof![
            proptest::collection::vec(any::<u8>(), 0..64),
            proptest::string::string_regex(&format!(r#"\{{({key}:{value},?){{0,6}}\}}?"#))
                .unwrap_or_else(|e| panic!("bad regex: {e}"))
                .prop_map(String::into_bytes),
        ]
    }

    proptest::proptest! {
        #![proptest_config(fuzz_config())]

        /// Fuzz: any body is a checked launch or an `invalid_request` (never a panic,
        /// never a server error, never an empty command).
        #[test]
        fn job_bodies_are_checked(bytes in job_body()) {
            let mut given = Some(bytes);
            let mut read = || Ok(given.take().unwrap_or_default());
            match body::<JobBody>(&mut read).and_then(|body| launch(body, 1000)) {
                Ok(Launch::Create(definition)) => proptest::prop_assert!(!definition.command.is_empty()),
                Ok(Launch::Run(request, _)) => {
                    proptest::prop_assert!(!request.definition.command.is_empty());
                    proptest::prop_assert!(request.observe.until_ms.is_some_and(|ms| ms <= 1000));
                    proptest::prop_assert!(request.observe.snapshot_after_ms <= 1000);
                }
                Err(err) => proptest::prop_assert_eq!(err.code, Code::InvalidRequest, "{}", err.message),
            }
        }
    }
}
