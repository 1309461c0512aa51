//! The one door from MCP into the job engine.
//!
//! Today the engine is reached the way the CLI reaches it: a validated tool input
//! becomes an argument vector that goes through `cli::parse` and `commands::dispatch` in
//! this process (never a child process, so no secret ever sits on an argv), and the
//! answer is the very JSON object the CLI prints. Waits are cut into short slices so
//! that a call can report progress and notice a cancellation between them; the
//! observation of `run` and `start` is composed from the same slices. When a typed
//! engine exists, only this file changes.

use std::ffi::OsString;
use std::time::{Duration, Instant};

use serde_json::Value;

use super::framing::ErrorObject;
use super::tools::{CommandLine, CreateInput, Observe, RunInput, ToolInput};
use crate::cli::{self, Parsed};
use crate::commands;
use crate::error::{Code, Error};
use crate::wire;

/// One wait slice: the longest a cancellation can go unnoticed.
const SLICE: Duration = Duration::from_millis(200);
/// Progress goes out after the first slice, then at most once per this interval.
const REPORT_EVERY: Duration = Duration::from_secs(1);
/// The CLI's cap on a snapshot window (agent-exec-run(1)).
const MAX_WINDOW_MS: u64 = 10_000;
/// Our default window for `run`/`start` without `wait`: long enough for a quick
/// command to finish with its output in the answer, short enough not to stall a turn.
const DEFAULT_WINDOW_MS: u64 = 3_000;

/// What a call may look at while it works.
pub trait Control {
    fn cancelled(&self) -> bool;
    /// Whether the caller asked for progress (a `progressToken`).
    fn reporting(&self) -> bool;
    fn progress(&self, job_id: &str, elapsed: Duration, budget: Duration, output_bytes: u64);
}

pub struct Context {
    /// `--root` given to `agent-exec mcp`, passed on to every call.
    pub root: Option<String>,
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
    match input {
        ToolInput::Run(run) => {
            let mut argv = words(&["run", "--snapshot-after=0"]);
            definition(&mut argv, &DefinitionRef::from_run(run))?;
            observe(ctx, argv, &run.observe(), control)
        }
        ToolInput::Create(create) => {
            let mut argv = words(&["create"]);
            definition(&mut argv, &DefinitionRef::from_create(create))?;
            cli(ctx, argv)
        }
        ToolInput::Start(start) => {
            let argv = words(&["start", "--snapshot-after=0", job_id(&start.job_id)?]);
            observe(ctx, argv, &start.observe(), control)
        }
        ToolInput::Status(job) => cli(ctx, words(&["status", job_id(&job.job_id)?])),
        ToolInput::Tail(tail) => {
            let mut argv = words(&["tail", job_id(&tail.job_id)?]);
            push_num(&mut argv, "tail-lines", tail.lines);
            push_num(&mut argv, "max-bytes", tail.max_bytes);
            cli(ctx, argv)
        }
        ToolInput::Wait(wait) => {
            let id = job_id(&wait.job_id)?;
            wait_sliced(ctx, id, bounded(ctx, wait.until_ms), control)
        }
        ToolInput::Kill(kill) => {
            let mut argv = words(&["kill", job_id(&kill.job_id)?]);
            if let Some(signal) = &kill.signal {
                argv.push(format!("--signal={signal}"));
            }
            cli(ctx, argv)
        }
        ToolInput::List(list) => {
            let mut argv = words(&["list"]);
            push_opt(&mut argv, "state", list.state.as_deref());
            push_opt(&mut argv, "cwd", list.cwd.as_deref());
            if list.all {
                argv.push("--all".to_string());
            }
            argv.extend(list.tags.iter().map(|tag| format!("--tag={tag}")));
            push_num(&mut argv, "limit", list.limit);
            cli(ctx, argv)
        }
        ToolInput::TagSet(set) => {
            let mut argv = words(&["tag", "set", job_id(&set.job_id)?]);
            argv.extend(set.tags.iter().map(|tag| format!("--tag={tag}")));
            cli(ctx, argv)
        }
        ToolInput::Delete(delete) => {
            let mut argv = words(&["delete"]);
            if delete.all {
                argv.push("--all".to_string());
            }
            if delete.dry_run {
                argv.push("--dry-run".to_string());
            }
            if let Some(id) = &delete.job_id {
                argv.push(job_id(id)?.to_string());
            }
            cli(ctx, argv)
        }
    }
}

/// The definition fields `run` and `create` share.
struct DefinitionRef<'a> {
    command: &'a CommandLine,
    cwd: Option<&'a str>,
    env: &'a std::collections::BTreeMap<String, String>,
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

/// Appends the definition flags, then `--` and the job's command. Every value is
/// attached with `=`, so none can be mistaken for a flag.
fn definition(argv: &mut Vec<String>, def: &DefinitionRef) -> Result<(), Failure> {
    push_opt(argv, "cwd", def.cwd);
    for (key, value) in def.env {
        if key.is_empty() || key.contains('=') || key.contains('\0') {
            return Err(params(format!("env: invalid variable name '{key}'")));
        }
        argv.push(format!("--env={key}={value}"));
    }
    argv.extend(def.mask.iter().map(|key| format!("--mask={key}")));
    argv.extend(def.tags.iter().map(|tag| format!("--tag={tag}")));
    push_num(argv, "timeout", def.timeout_ms);
    push_num(argv, "kill-after", def.kill_after_ms);
    argv.push("--".to_string());
    match def.command {
        CommandLine::Argv(words) if !words.is_empty() => argv.extend(words.iter().cloned()),
        CommandLine::Shell(line) if !line.trim().is_empty() => argv.push(line.clone()),
        _ => return Err(params("command: must not be empty")),
    }
    Ok(())
}

/// `run`/`start` launched with no window, then watched here so that the watch can be
/// cancelled and report progress; the answer is completed as the CLI would complete it.
fn observe(ctx: &Context, argv: Vec<String>, options: &Observe, control: &dyn Control) -> Outcome {
    if options.until_ms.is_some() && !options.wait {
        // As the CLI refuses `--until` without `--wait`, rather than ignoring it.
        return Err(params("until_ms: needs wait=true"));
    }
    let since = Instant::now();
    let mut body = cli(ctx, argv)?;
    let budget = if options.wait {
        bounded(ctx, options.until_ms)
    } else {
        Duration::from_millis(options.snapshot_after_ms.unwrap_or(DEFAULT_WINDOW_MS).min(MAX_WINDOW_MS))
            .min(ctx.max_wait)
    };
    if !options.wait && budget.is_zero() {
        return Ok(body);
    }
    let id = body["job_id"].as_str().unwrap_or_default().to_string();
    let watch_started = Instant::now();
    wait_sliced(ctx, &id, budget, control)?;
    let waited_ms = watch_started.elapsed().as_millis() as u64;
    let status = cli(ctx, words(&["status", &id]))?;
    let terminal = is_terminal(&status);
    let snapshot = if terminal || !options.wait { Some(snapshot(ctx, &id, options)?) } else { None };
    let Some(fields) = body.as_object_mut() else { return Ok(body) };
    fields.insert("state".into(), status["state"].clone());
    fields.insert("waited_ms".into(), waited_ms.into());
    fields.insert("elapsed_ms".into(), (since.elapsed().as_millis() as u64).into());
    for key in ["exit_code", "signal", "error", "finished_at"] {
        match status.get(key).filter(|_| terminal) {
            Some(value) => fields.insert(key.into(), value.clone()),
            None => fields.remove(key),
        };
    }
    if let Some(snapshot) = snapshot {
        fields.insert((if options.wait { "final_snapshot" } else { "snapshot" }).into(), snapshot);
    }
    Ok(body)
}

/// The snapshot object of a `run` answer, from `tail`'s flattened fields.
fn snapshot(ctx: &Context, id: &str, options: &Observe) -> Outcome {
    let mut argv = words(&["tail", id]);
    push_num(&mut argv, "tail-lines", options.tail_lines);
    push_num(&mut argv, "max-bytes", options.max_bytes);
    let tail = cli(ctx, argv)?;
    let keys = [
        "stdout_tail",
        "stderr_tail",
        "truncated",
        "encoding",
        "stdout_observed_bytes",
        "stderr_observed_bytes",
        "stdout_included_bytes",
        "stderr_included_bytes",
    ];
    Ok(Value::Object(keys.iter().map(|key| (key.to_string(), tail[*key].clone())).collect()))
}

/// `wait` in slices of at most `SLICE`: between slices, a cancellation ends the call
/// and progress is reported. The last slice's answer is the CLI's `wait` answer.
fn wait_sliced(ctx: &Context, id: &str, budget: Duration, control: &dyn Control) -> Outcome {
    let started = Instant::now();
    let mut reported: Option<Instant> = None;
    loop {
        let remaining = budget.saturating_sub(started.elapsed());
        let slice = remaining.min(SLICE).as_millis();
        let answer = cli(ctx, words(&["wait", &format!("--until={slice}"), "--poll-ms=50", id]))?;
        if is_terminal(&answer) || remaining.is_zero() || answer["state"] != "running" {
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
    let Ok(tail) = cli(ctx, words(&["tail", "--tail-lines=1", "--max-bytes=0", id])) else { return 0 };
    let bytes = |key: &str| tail[key].as_u64().unwrap_or(0);
    bytes("stdout_observed_bytes") + bytes("stderr_observed_bytes")
}

fn is_terminal(answer: &Value) -> bool {
    matches!(answer["state"].as_str(), Some("exited" | "killed" | "failed"))
}

/// A requested wait, defaulted to and capped by the server maximum.
fn bounded(ctx: &Context, until_ms: Option<u64>) -> Duration {
    until_ms.map_or(ctx.max_wait, |ms| Duration::from_millis(ms).min(ctx.max_wait))
}

/// Runs one CLI command in this process and returns the object it would print.
fn cli(ctx: &Context, argv: Vec<String>) -> Outcome {
    let mut full: Vec<OsString> = Vec::with_capacity(argv.len() + 1);
    if let Some(root) = &ctx.root {
        full.push(format!("--root={root}").into());
    }
    full.extend(argv.into_iter().map(OsString::from));
    let args = match cli::parse(full) {
        Parsed::Run(args) => args,
        Parsed::Usage(message, _) => return Err(params(message)),
        Parsed::Help(_) | Parsed::Version | Parsed::Missing => {
            return Err(engine_error(&Error::internal("the MCP adapter built an incomplete command")));
        }
    };
    match commands::dispatch(&args) {
        Ok(reply) => serde_json::from_str(&reply.json)
            .map_err(|e| engine_error(&Error::internal(format!("unreadable response: {e}")))),
        Err(Error { code: Code::Usage, message }) => Err(params(message)),
        Err(err) => Err(engine_error(&err)),
    }
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

/// A job id goes on our argv as an operand, so it must not look like a flag; the store
/// validates it again before it touches a path.
fn job_id(id: &str) -> Result<&str, Failure> {
    if !id.is_empty() && id.len() <= 26 && id.bytes().all(|b| b.is_ascii_alphanumeric()) {
        Ok(id)
    } else {
        Err(params(format!("job_id: '{id}' is not a job id (1-26 letters and digits)")))
    }
}

fn words(words: &[&str]) -> Vec<String> {
    words.iter().map(|w| w.to_string()).collect()
}

fn push_opt(argv: &mut Vec<String>, flag: &str, value: Option<&str>) {
    if let Some(value) = value {
        argv.push(format!("--{flag}={value}"));
    }
}

fn push_num(argv: &mut Vec<String>, flag: &str, value: Option<u64>) {
    if let Some(value) = value {
        argv.push(format!("--{flag}={value}"));
    }
}
