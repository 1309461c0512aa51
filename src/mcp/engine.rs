//! The one door from MCP into the job engine.
//!
//! A validated tool input becomes a typed engine request (`crate::jobs`), checked here
//! with the same rules the CLI's flag table applies (tags, variable names, signals,
//! states), and the answer is the very JSON object the CLI prints. Waits are cut into
//! short slices so that a call can report progress and notice a cancellation between
//! them; the observation of `run` and `start` is composed from the same slices.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use serde::Serialize;
use serde_json::Value;

use super::framing::ErrorObject;
use super::tools::ToolInput;
use crate::config;
use crate::error::{Code, Error, Result as EngineResult};
use crate::jobs::{self, Definition, DeleteTarget, KillRequest, ListFilter, RunRequest, TailRequest, WaitRequest};
use crate::jobstore::Root;
use crate::wire::{
    self, Clamped, CommandLine, CreateInput, JobState, McpObserve as Observe, Reply, RunBody, RunInput, STATE_NAMES,
    Snapshot, TailBody, WaitBody,
};
use crate::{signals, supervisor, tags};

/// One wait slice: the longest a cancellation can go unnoticed.
const SLICE: Duration = Duration::from_millis(200);
/// Progress goes out after the first slice, then at most once per this interval.
const REPORT_EVERY: Duration = Duration::from_secs(1);
/// The CLI's cap on a snapshot window (agent-exec-run(1)).
const MAX_WINDOW_MS: u64 = 10_000;
/// Our default window for `run`/`start` without `wait`: long enough for a quick
/// command to finish with its output in the answer, short enough not to stall a turn.
const DEFAULT_WINDOW_MS: u64 = 3_000;
/// The CLI's defaults for what a snapshot keeps (`--tail-lines`, `--max-bytes`).
const TAIL_LINES: u64 = 50;
const TAIL_BYTES: u64 = 65_536;
/// How often a wait slice looks at the job besides inotify.
const SLICE_POLL: Duration = Duration::from_millis(50);

/// What a call may look at while it works.
pub trait Control {
    fn cancelled(&self) -> bool;
    /// Whether the caller asked for progress (a `progressToken`).
    fn reporting(&self) -> bool;
    fn progress(&self, job_id: &str, elapsed: Duration, budget: Duration, output_bytes: u64);
}

pub struct Context {
    /// The root `agent-exec mcp` was started with; checked on every call.
    pub root: Root,
    /// The bound on every wait (`AGENT_EXEC_MCP_MAX_WAIT_MS`).
    pub max_wait: Duration,
}

#[derive(Debug)]
pub enum Failure {
    /// The arguments were refused: a JSON-RPC error.
    Params(ErrorObject),
    /// The engine answered with an error object: a tool result with `isError`.
    Engine(Value),
    /// The client cancelled the request: nothing is answered.
    Cancelled,
}

type Outcome = Result<Value, Failure>;

pub fn call(ctx: &Context, input: &ToolInput, control: &dyn Control) -> Outcome {
    ctx.root.check_secure().map_err(|e| failure(&e))?;
    let root = &ctx.root;
    match input {
        ToolInput::Run(run) => {
            let definition = definition(&DefinitionRef::from_run(run))?;
            let options = run.observe();
            check_observe(&options)?;
            let request = RunRequest { definition, log: None, observe: launch_only(), if_running: Default::default() };
            let body = jobs::run(root, &request).map_err(|e| failure(&e))?;
            observe(ctx, "run", body, &options, control)
        }
        ToolInput::Create(create) => {
            let definition = definition(&DefinitionRef::from_create(create))?;
            answer("create", jobs::create(root, &definition))
        }
        ToolInput::Start(start) => {
            let id = job_id(&start.job_id)?;
            let options = start.observe();
            check_observe(&options)?;
            let body = jobs::start(root, id, &launch_only()).map_err(|e| failure(&e))?;
            observe(ctx, "start", body, &options, control)
        }
        ToolInput::Status(job) => answer("status", jobs::status(root, job_id(&job.job_id)?)),
        ToolInput::Tail(tail) => {
            let request = TailRequest {
                job_id: job_id(&tail.job_id)?.to_string(),
                tail_lines: tail.lines.unwrap_or(TAIL_LINES),
                max_bytes: tail.max_bytes.unwrap_or(TAIL_BYTES),
            };
            answer("tail", jobs::tail(root, &request))
        }
        ToolInput::Wait(wait) => {
            let id = job_id(&wait.job_id)?;
            let (budget, clamped) = bounded(ctx, wait.until_ms);
            let mut body = wait_sliced(ctx, id, budget, control)?;
            body.clamped = clamped;
            answer("wait", Ok(body))
        }
        ToolInput::Kill(kill) => {
            let id = job_id(&kill.job_id)?.to_string();
            let name = kill.signal.as_deref().unwrap_or("TERM");
            let signal = signals::parse(name).map_err(|e| params(format!("signal: {e}")))?;
            answer("kill", jobs::kill(root, &KillRequest { job_id: id, signal }))
        }
        ToolInput::List(list) => {
            if let Some(state) = list.state.as_deref().filter(|s| !STATE_NAMES.contains(s)) {
                return Err(params(format!("state: '{state}' is not one of {}", STATE_NAMES.join(", "))));
            }
            for pattern in &list.tags {
                tags::check_pattern(pattern).map_err(|e| params(format!("tags: {e}")))?;
            }
            if list.cwd.is_some() && list.all {
                return Err(params("cwd: cannot be used with all=true"));
            }
            let filter = ListFilter {
                cwd: list.cwd.clone(),
                all: list.all,
                state: list.state.clone(),
                tags: list.tags.clone(),
                limit: list.limit.unwrap_or(0),
                name: None,
            };
            answer("list", jobs::list(root, &filter))
        }
        ToolInput::TagSet(set) => {
            let id = job_id(&set.job_id)?;
            check_tags(&set.tags)?;
            let tags = tags::dedup(&set.tags.iter().map(String::as_str).collect::<Vec<_>>());
            answer("tag_set", jobs::tag_set(root, id, tags))
        }
        ToolInput::Delete(delete) => {
            let target = match (&delete.job_id, delete.all) {
                (Some(id), false) => DeleteTarget::One(job_id(id)?.to_string()),
                (None, true) => DeleteTarget::AllFinishedHere,
                (None, false) => return Err(params("job_id: either job_id or all=true is required")),
                (Some(_), true) => return Err(params("job_id: cannot be used with all=true")),
            };
            answer("delete", jobs::delete(root, &target, delete.dry_run))
        }
    }
}

/// `run` and `start` launch with no window; the watch is ours (`observe`).
fn launch_only() -> jobs::Observe {
    jobs::Observe {
        snapshot_after_ms: 0,
        tail_lines: TAIL_LINES,
        max_bytes: TAIL_BYTES,
        wait: false,
        poll_ms: 200,
        until_ms: None,
        ready: None,
    }
}

/// As the CLI refuses `--until` without `--wait`, rather than ignoring it.
fn check_observe(options: &Observe) -> Result<(), Failure> {
    if options.until_ms.is_some() && !options.wait {
        return Err(params("until_ms: needs wait=true"));
    }
    Ok(())
}

/// The definition fields `run` and `create` share.
struct DefinitionRef<'a> {
    command: &'a CommandLine,
    cwd: Option<&'a str>,
    env: &'a BTreeMap<String, String>,
    mask: &'a [String],
    tags: &'a [String],
    timeout_ms: Option<u64>,
    kill_after_ms: Option<u64>,
}

impl<'a> DefinitionRef<'a> {
    fn from_run(run: &'a RunInput) -> DefinitionRef<'a> {
        DefinitionRef {
            command: &run.command,
            cwd: run.cwd.as_deref(),
            env: &run.env,
            mask: &run.mask,
            tags: &run.tags,
            timeout_ms: run.timeout_ms,
            kill_after_ms: run.kill_after_ms,
        }
    }

    fn from_create(create: &'a CreateInput) -> DefinitionRef<'a> {
        DefinitionRef {
            command: &create.command,
            cwd: create.cwd.as_deref(),
            env: &create.env,
            mask: &create.mask,
            tags: &create.tags,
            timeout_ms: create.timeout_ms,
            kill_after_ms: create.kill_after_ms,
        }
    }
}

/// The definition as the CLI builds it for `run`/`create` with these flags: the same
/// checks (variable names and values, mask keys, tags) and the shell wrapper from
/// `config.toml`.
fn definition(def: &DefinitionRef) -> Result<Definition, Failure> {
    for (key, value) in def.env {
        if key.is_empty() || key.contains('=') || key.contains('\0') {
            return Err(params(format!("env: invalid variable name '{key}'")));
        }
        supervisor::check_pair(key, value).map_err(|e| params(format!("env: {e}")))?;
    }
    for key in def.mask {
        supervisor::check_key(key).map_err(|e| params(format!("mask: {e}")))?;
    }
    check_tags(def.tags)?;
    let command = match def.command {
        CommandLine::Argv(words) if !words.is_empty() => words.clone(),
        CommandLine::Shell(line) if !line.trim().is_empty() => vec![line.clone()],
        _ => return Err(params("command: must not be empty")),
    };
    Ok(Definition {
        command,
        name: None,
        env: def.env.iter().map(|(key, value)| format!("{key}={value}")).collect(),
        env_files: Vec::new(),
        inherit_env: true,
        mask: def.mask.to_vec(),
        tags: tags::dedup(&def.tags.iter().map(String::as_str).collect::<Vec<_>>()),
        timeout_ms: def.timeout_ms.unwrap_or(0),
        kill_after_ms: def.kill_after_ms.unwrap_or(0),
        progress_every_ms: 0,
        notification: None,
        wrapper: config::resolve_wrapper(None, None).map_err(|e| failure(&e))?,
        cwd: def.cwd.map(str::to_string),
        max_log_bytes: config::max_log_bytes(None, None).map_err(|e| failure(&e))?,
        no_full_log: false,
    })
}

fn check_tags(given: &[String]) -> Result<(), Failure> {
    given.iter().try_for_each(|tag| tags::check_tag(tag).map_err(|e| params(format!("tags: {e}"))))
}

/// `run`/`start` launched with no window, then watched here so that the watch can be
/// cancelled and report progress; the answer is completed as the CLI would complete it.
fn observe(ctx: &Context, kind: &'static str, mut body: RunBody, options: &Observe, control: &dyn Control) -> Outcome {
    let since = Instant::now();
    let (budget, clamped) = if options.wait {
        bounded(ctx, options.until_ms)
    } else {
        let requested = options.snapshot_after_ms.unwrap_or(DEFAULT_WINDOW_MS);
        let window = Duration::from_millis(requested.min(MAX_WINDOW_MS)).min(ctx.max_wait);
        let lowered = options.snapshot_after_ms.is_some() && window.as_millis() < u128::from(requested);
        (window, lowered.then_some(Clamped { snapshot_after_ms: Some(window.as_millis() as u64), until_ms: None }))
    };
    body.clamped = clamped;
    if !options.wait && budget.is_zero() {
        return answer(kind, Ok(body));
    }
    let watch_started = Instant::now();
    wait_sliced(ctx, &body.job_id, budget, control)?;
    let waited_ms = watch_started.elapsed().as_millis() as u64;
    let status = jobs::status(&ctx.root, &body.job_id).map_err(|e| failure(&e))?;
    let terminal = status.state.is_terminal();
    let snapshot = if terminal || !options.wait { Some(snapshot(ctx, &body.job_id, options)?) } else { None };
    body.waited_ms = waited_ms;
    body.elapsed_ms += since.elapsed().as_millis() as u64;
    body.exit_code = status.exit_code.filter(|_| terminal);
    body.signal = status.signal.filter(|_| terminal);
    body.error = status.error.filter(|_| terminal);
    body.finished_at = status.finished_at.filter(|_| terminal);
    body.state = status.state;
    if options.wait {
        body.final_snapshot = snapshot;
    } else {
        body.snapshot = snapshot;
    }
    answer(kind, Ok(body))
}

/// The snapshot object of a `run` answer, from `tail`'s flattened fields.
fn snapshot(ctx: &Context, id: &str, options: &Observe) -> Result<Snapshot, Failure> {
    let request = TailRequest {
        job_id: id.to_string(),
        tail_lines: options.tail_lines.unwrap_or(TAIL_LINES),
        max_bytes: options.max_bytes.unwrap_or(TAIL_BYTES),
    };
    let tail: TailBody = jobs::tail(&ctx.root, &request).map_err(|e| failure(&e))?;
    Ok(Snapshot {
        stdout_tail: tail.stdout_tail,
        stderr_tail: tail.stderr_tail,
        truncated: tail.truncated,
        encoding: tail.encoding,
        stdout_observed_bytes: tail.stdout_observed_bytes,
        stderr_observed_bytes: tail.stderr_observed_bytes,
        stdout_included_bytes: tail.stdout_included_bytes,
        stderr_included_bytes: tail.stderr_included_bytes,
        log_error: tail.log_error,
    })
}

/// `wait` in slices of at most `SLICE`: between slices, a cancellation ends the call
/// and progress is reported. The last slice's answer is the CLI's `wait` answer.
fn wait_sliced(ctx: &Context, id: &str, budget: Duration, control: &dyn Control) -> Result<WaitBody, Failure> {
    let started = Instant::now();
    let mut reported: Option<Instant> = None;
    loop {
        let remaining = budget.saturating_sub(started.elapsed());
        let request = WaitRequest { job_id: id.to_string(), until: Some(remaining.min(SLICE)), poll: SLICE_POLL };
        let answer = jobs::wait(&ctx.root, &request).map_err(|e| failure(&e))?;
        if answer.state.is_terminal() || remaining.is_zero() || answer.state != JobState::Running {
            return Ok(answer);
        }
        if control.cancelled() {
            return Err(Failure::Cancelled);
        }
        if control.reporting() && reported.is_none_or(|at| at.elapsed() >= REPORT_EVERY) {
            reported = Some(Instant::now());
            control.progress(id, started.elapsed(), budget, output_bytes(ctx, id));
        }
    }
}

fn output_bytes(ctx: &Context, id: &str) -> u64 {
    let request = TailRequest { job_id: id.to_string(), tail_lines: 1, max_bytes: 0 };
    jobs::tail(&ctx.root, &request).map_or(0, |tail| tail.stdout_observed_bytes + tail.stderr_observed_bytes)
}

/// A requested wait, defaulted to and capped by the server maximum; a cap that lowered
/// the request is reported (`clamped`), as the CLI and HTTP report theirs.
fn bounded(ctx: &Context, until_ms: Option<u64>) -> (Duration, Option<Clamped>) {
    match until_ms {
        None => (ctx.max_wait, None),
        Some(ms) if Duration::from_millis(ms) > ctx.max_wait => {
            let max = ctx.max_wait.as_millis() as u64;
            (ctx.max_wait, Some(Clamped { snapshot_after_ms: None, until_ms: Some(max) }))
        }
        Some(ms) => (Duration::from_millis(ms), None),
    }
}

/// The object the CLI would print for this answer.
fn answer<T: Serialize>(kind: &'static str, body: EngineResult<T>) -> Outcome {
    let reply = Reply::new(kind, &body.map_err(|e| failure(&e))?);
    serde_json::from_str(&reply.json).map_err(|e| engine_error(&Error::internal(format!("unreadable response: {e}"))))
}

/// An engine error: a usage error is the caller's, as the CLI would refuse its flags.
fn failure(err: &Error) -> Failure {
    if err.code == Code::Usage { params(err.message.clone()) } else { engine_error(err) }
}

/// An `internal_error` result, for failures outside the engine's own answers.
pub fn internal_failure(message: &str) -> Failure {
    engine_error(&Error::internal(message))
}

fn engine_error(err: &Error) -> Failure {
    Failure::Engine(serde_json::from_str(&wire::error_json(err)).unwrap_or(Value::Null))
}

fn params(message: impl Into<String>) -> Failure {
    Failure::Params(ErrorObject::invalid_params(message))
}

/// A job id must look like one before it reaches the store (which validates it again
/// before it touches a path).
fn job_id(id: &str) -> Result<&str, Failure> {
    if !id.is_empty() && id.len() <= 26 && id.bytes().all(|b| b.is_ascii_alphanumeric()) {
        Ok(id)
    } else {
        Err(params(format!("job_id: '{id}' is not a job id (1-26 letters and digits)")))
    }
}
