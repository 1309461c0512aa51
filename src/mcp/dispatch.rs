//! What the reader does with each message, and the worker lanes that run tool calls.
//!
//! The reader thread answers `initialize`, `ping` and `tools/list` itself and applies
//! `notifications/cancelled` at once, so none of them ever waits behind a tool. Tool
//! calls go to one of two fixed lanes of worker threads: `QUICK_WORKERS` for calls that
//! return in milliseconds (status, tail, list, kill, ...) and `LONG_WORKERS` for calls
//! that may wait (run, start, wait). A full long lane queues further waits but never
//! delays a status. Both lanes share one queue discipline: first come, first served.

use std::panic::{self, AssertUnwindSafe};
use std::sync::atomic::AtomicBool;
use std::sync::mpsc::{Receiver, Sender, channel};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};

use serde_json::{Value, json};

use super::engine::{self, Context, Control, Failure};
use super::framing::{ErrorObject, INVALID_REQUEST, METHOD_NOT_FOUND, Out, SERVER_BUSY};
use super::progress::{Call, InFlight, Refused};
use super::session;
use super::tools::{self, Tool, ToolInput};

const QUICK_WORKERS: usize = 2;
const LONG_WORKERS: usize = 4;
/// Tool calls queued or running at once. Each holds its parsed input and an entry in the
/// in-flight map, so a client that pipelines calls without reading answers would
/// otherwise grow the server without bound; beyond this a call is refused at once with
/// `SERVER_BUSY`.
const MAX_CALLS: usize = 1024;

/// What every thread shares.
pub struct Server {
    pub ctx: Context,
    pub out: Out,
    pub flight: InFlight,
    catalogue: Value,
}

impl Server {
    pub fn new(ctx: Context) -> Server {
        Server { ctx, out: Out::new(), flight: InFlight::default(), catalogue: tools::catalogue() }
    }
}

/// A tool call waiting for a worker.
struct Pending {
    id: Value,
    tool: Tool,
    input: ToolInput,
    cancelled: Arc<AtomicBool>,
    token: Option<Value>,
}

pub struct Lanes {
    quick: Sender<Pending>,
    long: Sender<Pending>,
    workers: Vec<JoinHandle<()>>,
}

impl Lanes {
    pub fn start(server: &Arc<Server>) -> Lanes {
        let (quick, quick_rx) = channel();
        let (long, long_rx) = channel();
        let mut workers = Vec::new();
        for (receiver, count) in [(quick_rx, QUICK_WORKERS), (long_rx, LONG_WORKERS)] {
            let receiver = Arc::new(Mutex::new(receiver));
            for _ in 0..count {
                let (server, receiver) = (server.clone(), receiver.clone());
                workers.push(thread::spawn(move || work(&server, &receiver)));
            }
        }
        Lanes { quick, long, workers }
    }

    /// Stops taking calls and waits for the workers to finish theirs.
    pub fn close(self) {
        drop(self.quick);
        drop(self.long);
        for worker in self.workers {
            let _ = worker.join();
        }
    }

    fn submit(&self, job: Pending) {
        let lane = if job.tool.is_long() { &self.long } else { &self.quick };
        // The receivers live as long as the workers, which outlive every submit.
        let _ = lane.send(job);
    }
}

fn work(server: &Server, receiver: &Mutex<Receiver<Pending>>) {
    loop {
        let next = receiver.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).recv();
        let Ok(job) = next else { return };
        let call = Call::new(job.cancelled.clone(), job.token.clone(), &server.out);
        // A call cancelled while queued never starts (no job is launched for it), and
        // one cancelled while it finished is not answered either.
        let outcome = (!call.cancelled()).then(|| {
            // A bug in one call must not take its worker (and the answer) with it.
            panic::catch_unwind(AssertUnwindSafe(|| engine::call(&server.ctx, &job.input, &call)))
                .unwrap_or_else(|_| Err(engine::internal_failure("the call panicked; see stderr")))
        });
        if let Some(outcome) = outcome.filter(|_| !call.cancelled()) {
            let _ = match outcome {
                Ok(value) => server.out.result(&job.id, tool_result(job.tool, value, false)),
                Err(Failure::Engine(value)) => server.out.result(&job.id, tool_result(job.tool, value, true)),
                Err(Failure::Params(error)) => server.out.error(&job.id, &error),
                Err(Failure::Cancelled) => Ok(()),
            };
        }
        server.flight.end(&job.id);
    }
}

/// Answers a request now, or queues it (`Ok(None)`).
pub fn request(
    server: &Server,
    lanes: &Lanes,
    id: &Value,
    method: &str,
    params: Value,
) -> Result<Option<Value>, ErrorObject> {
    match method {
        "initialize" => session::initialize(&params).map(Some),
        "ping" => Ok(Some(json!({}))),
        "tools/list" => Ok(Some(server.catalogue.clone())),
        "tools/call" => {
            let name = params
                .get("name")
                .and_then(Value::as_str)
                .ok_or_else(|| ErrorObject::invalid_params("name: missing or not a string"))?;
            let tool = Tool::from_name(name)
                .ok_or_else(|| ErrorObject::invalid_params(format!("name: unknown tool '{name}'")))?;
            let input = tool.input(params.get("arguments").cloned().unwrap_or(Value::Null))?;
            let token = params
                .pointer("/_meta/progressToken")
                .filter(|token| token.is_string() || token.is_i64() || token.is_u64())
                .cloned();
            let cancelled = server.flight.begin(id, MAX_CALLS).map_err(|refused| match refused {
                Refused::Duplicate => ErrorObject {
                    code: INVALID_REQUEST,
                    message: "invalid request: a request with this id is still in flight".to_string(),
                },
                Refused::Busy => ErrorObject {
                    code: SERVER_BUSY,
                    message: format!("server busy: {MAX_CALLS} tool calls are in flight; retry when some have ended"),
                },
            })?;
            lanes.submit(Pending { id: id.clone(), tool, input, cancelled, token });
            Ok(None)
        }
        other => Err(ErrorObject { code: METHOD_NOT_FOUND, message: format!("method not found: {other}") }),
    }
}

pub fn notification(server: &Server, method: &str, params: &Value) {
    if method == "notifications/cancelled"
        && let Some(id) = params.get("requestId")
    {
        server.flight.cancel(id);
    }
    // Everything else (notifications/initialized, roots, ...) needs no action.
}

fn tool_result(tool: Tool, value: Value, is_error: bool) -> Value {
    let text = if is_error { error_summary(&value) } else { summary(tool, &value) };
    json!({"content": [{"type": "text", "text": text}], "structuredContent": value, "isError": is_error})
}

fn error_summary(value: &Value) -> String {
    let error = &value["error"];
    format!("error {}: {}", error["code"].as_str().unwrap_or("internal_error"), error["message"].as_str().unwrap_or(""))
}

/// One or two lines an agent can act on without parsing the structured content.
fn summary(tool: Tool, value: &Value) -> String {
    let id = value["job_id"].as_str().unwrap_or("?");
    match tool {
        Tool::Run | Tool::Start | Tool::Status | Tool::Wait => {
            let mut text = format!("job {id}: {}", outcome(value));
            if value["state"] == "running" {
                text.push_str(match tool {
                    Tool::Wait => " (the wait bound passed; call wait again or come back later)",
                    _ => " (come back with status, tail or wait)",
                });
            }
            if let Some(shot) = value.get("snapshot").or_else(|| value.get("final_snapshot")) {
                text.push_str(&format!("\n{}", output_summary(shot)));
            }
            text
        }
        Tool::Tail => format!("job {id}: {}", output_summary(value)),
        Tool::Kill => format!("job {id}: sent signal {}", value["signal"].as_str().unwrap_or("?")),
        Tool::List => {
            let count = value["jobs"].as_array().map_or(0, Vec::len);
            format!("{count} job(s){}", if value["truncated"] == true { " (truncated by limit)" } else { "" })
        }
        Tool::Create => format!("job {id}: created; start it with start"),
        Tool::TagSet => format!("job {id}: tags {}", value["tags"]),
        Tool::Delete => format!(
            "{} deleted, {} skipped{}",
            value["deleted"],
            value["skipped"],
            if value["dry_run"] == true { " (dry run)" } else { "" }
        ),
    }
}

fn outcome(value: &Value) -> String {
    let mut text = value["state"].as_str().unwrap_or("unknown").to_string();
    if let Some(code) = value["exit_code"].as_i64() {
        text.push_str(&format!(", exit code {code}"));
    }
    if let Some(signal) = value["signal"].as_str() {
        text.push_str(&format!(", signal {signal}"));
    }
    if let Some(error) = value["error"].as_str() {
        text.push_str(&format!(", error: {error}"));
    }
    text
}

fn output_summary(value: &Value) -> String {
    let bytes = |key: &str| value[key].as_u64().unwrap_or(0);
    format!(
        "stdout {} bytes, stderr {} bytes (last {} and {} bytes in structuredContent)",
        bytes("stdout_observed_bytes"),
        bytes("stderr_observed_bytes"),
        bytes("stdout_included_bytes"),
        bytes("stderr_included_bytes")
    )
}
