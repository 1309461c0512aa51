//! `agent-exec mcp` over real pipes: protocol edge cases (revisions, malformed and
//! oversized input, unknown methods, bad params), concurrency (a long wait blocks
//! neither ping nor status; cancellation frees it), progress notifications, stdout
//! hygiene, secrets, and the two ways out (stdin EOF, SIGTERM) leaving jobs running.
//! The Python-SDK client test is tests/mcp/test_client.py.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError, channel};
use std::time::{Duration, Instant};

use common::{Env, eventually};
use serde_json::{Value, json};

/// How long any expected message may take before the test gives up (a deadline on a
/// condition, not a timing goal).
const PATIENCE: Duration = Duration::from_secs(30);

struct Mcp {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: Receiver<String>,
    /// Every line seen on stdout, in order.
    seen: Vec<Value>,
}

impl Mcp {
    fn start(env: &Env, extra: &[(&str, &str)]) -> Mcp {
        let mut command = env.command(&["mcp"]);
        command.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped());
        for (key, value) in extra {
            command.env(key, value);
        }
        let mut child = command.spawn().expect("spawn agent-exec mcp");
        let stdout = child.stdout.take().expect("stdout");
        let (sender, lines) = channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { return };
                if sender.send(line).is_err() {
                    return;
                }
            }
        });
        let stdin = child.stdin.take();
        Mcp { child, stdin, lines, seen: Vec::new() }
    }

    fn send_raw(&mut self, bytes: &[u8]) {
        let stdin = self.stdin.as_mut().expect("stdin open");
        stdin.write_all(bytes).expect("write to mcp");
        stdin.flush().expect("flush");
    }

    fn send(&mut self, message: Value) {
        let mut line = message.to_string().into_bytes();
        line.push(b'\n');
        self.send_raw(&line);
    }

    fn request(&mut self, id: i64, method: &str, params: Value) {
        self.send(json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}));
    }

    fn call(&mut self, id: i64, tool: &str, arguments: Value) {
        self.request(id, "tools/call", json!({"name": tool, "arguments": arguments}));
    }

    /// The next message satisfying `wanted`; every message read is checked to be a
    /// JSON-RPC 2.0 object (stdout carries nothing else) and kept in `seen`.
    fn next(&mut self, what: &str, wanted: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + PATIENCE;
        if let Some(found) = self.seen.iter().find(|m| wanted(m)) {
            return found.clone();
        }
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    let message: Value =
                        serde_json::from_str(&line).unwrap_or_else(|e| panic!("stdout line is not JSON ({e}): {line}"));
                    assert_eq!(message["jsonrpc"], "2.0", "not JSON-RPC: {line}");
                    self.seen.push(message.clone());
                    if wanted(&message) {
                        return message;
                    }
                }
                Err(RecvTimeoutError::Timeout) => panic!("no {what} within {PATIENCE:?}; seen: {:#?}", self.seen),
                Err(RecvTimeoutError::Disconnected) => panic!("stdout closed before {what}; seen: {:#?}", self.seen),
            }
        }
    }

    fn answer(&mut self, id: i64) -> Value {
        self.next(&format!("answer {id}"), |m| m["id"] == id)
    }

    fn initialize(&mut self) {
        self.request(
            0,
            "initialize",
            json!({"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "t", "version": "0"}}),
        );
        self.answer(0);
        self.send(json!({"jsonrpc": "2.0", "method": "notifications/initialized"}));
    }

    fn close_stdin(&mut self) {
        self.stdin = None;
    }

    /// Waits for the process to exit and returns its code.
    fn exit_code(&mut self) -> Option<i32> {
        let mut status = None;
        assert!(eventually(PATIENCE, || {
            status = self.child.try_wait().expect("try_wait");
            status.is_some()
        }));
        status.and_then(|s| s.code())
    }
}

impl Drop for Mcp {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn structured(answer: &Value) -> &Value {
    &answer["result"]["structuredContent"]
}

/// A file a job waits for; opened when dropped too, so that a failing test leaves no job
/// running behind it.
struct Gate(std::path::PathBuf);

impl Gate {
    fn new(env: &Env) -> Gate {
        Gate(env.cwd.join("gate"))
    }

    /// Also ends when the test's directory is gone.
    fn command(&self) -> String {
        let dir = self.0.parent().expect("parent").display();
        format!("while [ ! -e {} ] && [ -d {dir} ]; do sleep 0.02; done; echo done", self.0.display())
    }

    fn open(&self) {
        common::write_file(&self.0, "");
    }
}

impl Drop for Gate {
    fn drop(&mut self) {
        let _ = std::fs::write(&self.0, "");
    }
}

fn start_blocked_job(env: &Env, gate: &Gate) -> String {
    env.start_job(&[&gate.command()])
}

#[test]
fn initialize_negotiates_the_revision() {
    let env = Env::new();
    let mut mcp = Mcp::start(&env, &[]);
    for (id, asked, answered) in
        [(1, "2025-06-18", "2025-06-18"), (2, "2025-11-25", "2025-11-25"), (3, "1999-01-01", "2025-11-25")]
    {
        mcp.request(
            id,
            "initialize",
            json!({"protocolVersion": asked, "capabilities": {}, "clientInfo": {"name": "t", "version": "0"}}),
        );
        let result = mcp.answer(id)["result"].clone();
        assert_eq!(result["protocolVersion"], answered);
        assert_eq!(result["serverInfo"]["name"], "agent-exec");
        assert_eq!(result["serverInfo"]["version"], env!("CARGO_PKG_VERSION"));
        assert!(result["capabilities"]["tools"].is_object());
        assert!(result["instructions"].as_str().is_some_and(|text| text.contains("wait")));
    }
    mcp.request(4, "initialize", json!({}));
    assert_eq!(mcp.answer(4)["error"]["code"], -32602);
}

#[test]
fn malformed_unknown_and_bad_params_get_errors_and_the_server_goes_on() {
    let env = Env::new();
    let mut mcp = Mcp::start(&env, &[]);
    mcp.send_raw(b"{this is not json\n");
    let parse = mcp.next("parse error", |m| m["error"]["code"] == -32700);
    assert_eq!(parse["id"], Value::Null);
    mcp.send_raw(b"[1,2]\n\xff\xfe\n");
    mcp.next("invalid request", |m| m["error"]["code"] == -32600);
    mcp.request(1, "no/such/method", json!({}));
    assert_eq!(mcp.answer(1)["error"]["code"], -32601);
    mcp.initialize();
    let cases = [
        (2, "wait", json!({"job_id": "01ABC", "until_ms": "soon"}), "until_ms"),
        (3, "status", json!({"job_id": "01ABC", "verbose": true}), "verbose"),
        (4, "status", json!({}), "job_id"),
        (5, "nope", json!({}), "nope"),
        (6, "run", json!({"command": []}), "command"),
        (7, "status", json!({"job_id": "../etc"}), "job_id"),
        (8, "run", json!({"command": ["true"], "tags": ["bad tag!"]}), "tag"),
        (10, "run", json!({"command": ["true"], "until_ms": 5}), "until_ms"),
    ];
    for (id, tool, arguments, field) in cases {
        mcp.call(id, tool, arguments);
        let error = mcp.answer(id)["error"].clone();
        assert_eq!(error["code"], -32602, "{tool}: {error}");
        assert!(error["message"].as_str().is_some_and(|m| m.contains(field)), "{tool}: {error} does not name {field}");
    }
    mcp.request(9, "ping", json!({}));
    assert_eq!(mcp.answer(9)["result"], json!({}));
}

#[test]
fn an_engine_error_is_a_tool_result_with_is_error() {
    let env = Env::new();
    let mut mcp = Mcp::start(&env, &[]);
    mcp.initialize();
    mcp.call(1, "status", json!({"job_id": "01NOSUCHJOB"}));
    let result = mcp.answer(1)["result"].clone();
    assert_eq!(result["isError"], true);
    assert_eq!(result["structuredContent"]["ok"], false);
    assert_eq!(result["structuredContent"]["error"]["code"], "job_not_found");
    assert!(result["content"][0]["text"].as_str().is_some_and(|t| t.contains("job_not_found")));
}

#[test]
fn an_oversized_request_is_refused_and_the_next_one_answered() {
    let env = Env::new();
    let mut mcp = Mcp::start(&env, &[]);
    let mut huge = br#"{"jsonrpc":"2.0","id":1,"method":"ping","params":{"pad":""#.to_vec();
    huge.extend(std::iter::repeat_n(b'x', 2 << 20));
    huge.extend_from_slice(b"\"}}\n");
    mcp.send_raw(&huge);
    let refused = mcp.next("refusal", |m| m["error"]["code"] == -32600);
    assert!(refused["error"]["message"].as_str().is_some_and(|m| m.contains("1 MiB")));
    mcp.request(2, "ping", json!({}));
    assert_eq!(mcp.answer(2)["result"], json!({}));
    assert!(mcp.seen.iter().all(|m| m["id"] != 1), "the oversized request must not be executed");
}

#[test]
fn a_long_wait_blocks_neither_ping_nor_status_and_cancel_frees_it() {
    let env = Env::new();
    let gate = Gate::new(&env);
    let id = start_blocked_job(&env, &gate);
    let mut mcp = Mcp::start(&env, &[("AGENT_EXEC_MCP_MAX_WAIT_MS", "600000")]);
    mcp.initialize();
    // More waits than the long lane has workers: only cancellation can free them.
    for wait_id in 10..16 {
        mcp.call(wait_id, "wait", json!({"job_id": id, "until_ms": 600000}));
    }
    mcp.request(1, "ping", json!({}));
    assert_eq!(mcp.answer(1)["result"], json!({}));
    mcp.call(2, "status", json!({"job_id": id}));
    assert_eq!(structured(&mcp.answer(2))["state"], "running");
    // A run queued behind the waits and cancelled there is never launched.
    let marker = env.cwd.join("ran");
    mcp.call(20, "run", json!({"command": format!("touch {}", marker.display())}));
    mcp.send(json!({"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {"requestId": 20}}));
    for wait_id in 10..16 {
        mcp.send(json!({"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {"requestId": wait_id, "reason": "test"}}));
    }
    // A wait queued behind the cancelled ones is served: the workers were freed.
    mcp.call(3, "wait", json!({"job_id": id, "until_ms": 0}));
    assert_eq!(structured(&mcp.answer(3))["state"], "running");
    mcp.request(4, "ping", json!({}));
    mcp.answer(4);
    let cancelled = |m: &Value| m["id"] == 20 || (10..16).contains(&m["id"].as_i64().unwrap_or(0));
    assert!(!mcp.seen.iter().any(cancelled), "a cancelled request was answered");
    assert!(!marker.exists(), "a cancelled queued run was launched");
    assert_eq!(env.ok(&["list", "--all"])["jobs"].as_array().map(Vec::len), Some(1));
    gate.open();
    env.wait_job(&id);
}

#[test]
fn wait_with_a_progress_token_reports_progress_then_the_outcome() {
    let env = Env::new();
    let gate = Gate::new(&env);
    let id = start_blocked_job(&env, &gate);
    let mut mcp = Mcp::start(&env, &[]);
    mcp.initialize();
    mcp.request(
        1,
        "tools/call",
        json!({"name": "wait", "arguments": {"job_id": id}, "_meta": {"progressToken": "p1"}}),
    );
    let progress = mcp.next("progress", |m| m["method"] == "notifications/progress");
    assert_eq!(progress["params"]["progressToken"], "p1");
    assert!(progress["params"]["progress"].as_u64().is_some_and(|ms| ms > 0));
    assert!(progress["params"]["message"].as_str().is_some_and(|m| m.contains("output bytes")));
    gate.open();
    let answer = mcp.answer(1);
    assert_eq!(structured(&answer)["type"], "wait");
    assert_eq!(structured(&answer)["state"], "exited");
    assert_eq!(structured(&answer)["exit_code"], 0);
    let steps: Vec<u64> = mcp.seen.iter().filter_map(|m| m["params"]["progress"].as_u64()).collect();
    assert!(steps.windows(2).all(|w| w[0] < w[1]), "progress must increase: {steps:?}");
}

#[test]
fn run_answers_like_the_cli_and_keeps_secrets_out_of_stdout() {
    let env = Env::new();
    let mut mcp = Mcp::start(&env, &[]);
    mcp.initialize();
    mcp.call(
        1,
        "run",
        json!({"command": ["sh", "-c", "echo \"$TOKEN\" | wc -c; echo oops >&2; exit 3"], "env": {"TOKEN": "hunter2-secret"},
               "mask": ["TOKEN"], "tags": ["mcp.test"], "wait": true}),
    );
    let run = structured(&mcp.answer(1)).clone();
    assert_eq!(run["type"], "run");
    assert_eq!(run["state"], "exited");
    assert_eq!(run["exit_code"], 3);
    assert_eq!(run["env_vars"], json!(["TOKEN=***"]));
    assert_eq!(run["tags"], json!(["mcp.test"]));
    assert_eq!(run["final_snapshot"]["stdout_tail"], "15");
    assert_eq!(run["final_snapshot"]["stderr_tail"], "oops");
    let id = run["job_id"].as_str().expect("job_id").to_string();
    // The same job through the CLI: the same object, up to timings.
    let cli = env.ok(&["status", &id]);
    mcp.call(2, "status", json!({"job_id": id}));
    assert_eq!(structured(&mcp.answer(2)), &cli);
    mcp.call(3, "tail", json!({"job_id": id, "lines": 1}));
    assert_eq!(structured(&mcp.answer(3)), &env.ok(&["tail", "--tail-lines", "1", &id]));
    assert!(mcp.seen.iter().all(|m| !m.to_string().contains("hunter2")), "a secret reached stdout");
}

#[test]
fn stdin_eof_answers_what_was_asked_exits_0_and_leaves_jobs_running() {
    let env = Env::new();
    let gate = Gate::new(&env);
    let mut mcp = Mcp::start(&env, &[]);
    mcp.initialize();
    mcp.call(1, "run", json!({"command": gate.command(), "snapshot_after_ms": 0}));
    mcp.call(2, "list", json!({}));
    mcp.close_stdin();
    let id = structured(&mcp.answer(1))["job_id"].as_str().expect("job_id").to_string();
    assert_eq!(structured(&mcp.answer(2))["type"], "list");
    assert_eq!(mcp.exit_code(), Some(0));
    assert_eq!(env.ok(&["status", &id])["state"], "running");
    gate.open();
    assert_eq!(env.wait_job(&id)["state"], "exited");
}

#[test]
fn sigterm_during_a_wait_exits_0_and_leaves_the_job_running() {
    let env = Env::new();
    let gate = Gate::new(&env);
    let id = start_blocked_job(&env, &gate);
    let mut mcp = Mcp::start(&env, &[]);
    mcp.initialize();
    mcp.request(1, "tools/call", json!({"name": "wait", "arguments": {"job_id": id}, "_meta": {"progressToken": 1}}));
    mcp.next("progress", |m| m["method"] == "notifications/progress");
    // SAFETY: signalling our own child.
    unsafe { libc::kill(mcp.child.id() as i32, libc::SIGTERM) };
    assert_eq!(mcp.exit_code(), Some(0));
    assert_eq!(env.ok(&["status", &id])["state"], "running");
    gate.open();
    env.wait_job(&id);
}

#[test]
fn a_duplicate_id_in_flight_is_refused() {
    let env = Env::new();
    let gate = Gate::new(&env);
    let id = start_blocked_job(&env, &gate);
    let mut mcp = Mcp::start(&env, &[]);
    mcp.initialize();
    mcp.call(1, "wait", json!({"job_id": id}));
    mcp.call(1, "status", json!({"job_id": id}));
    let refused = mcp.next("refusal", |m| m["error"]["code"] == -32600);
    assert_eq!(refused["id"], 1);
    gate.open();
    let answer = mcp.next("the wait's answer", |m| m["id"] == 1 && m["result"].is_object());
    assert_eq!(structured(&answer)["state"], "exited");
}

/// Calls in flight are bounded (1,024): a client that pipelines more without reading
/// the answers gets "server busy" at once for the rest, instead of growing the server's
/// queue; the calls taken are all answered.
#[test]
fn calls_beyond_the_in_flight_bound_are_refused_as_busy() {
    let env = Env::new();
    let gate = Gate::new(&env);
    let id = start_blocked_job(&env, &gate);
    let mut mcp = Mcp::start(&env, &[("AGENT_EXEC_MCP_MAX_WAIT_MS", "600000")]);
    mcp.initialize();
    let (bound, extra) = (1024, 50);
    // One write for all of them: they are read while every wait still blocks.
    let mut batch = Vec::new();
    for call in 0..bound + extra {
        let request = json!({"jsonrpc": "2.0", "id": 1000 + call, "method": "tools/call",
            "params": {"name": "wait", "arguments": {"job_id": id, "until_ms": 600000}}});
        batch.extend_from_slice(request.to_string().as_bytes());
        batch.push(b'\n');
    }
    mcp.send_raw(&batch);
    // Every wait read before them still blocks, so exactly the last ones are refused.
    for call in bound..bound + extra {
        let answer = mcp.answer(1000 + call);
        assert_eq!(answer["error"]["code"], -32000, "{answer}");
        let message = answer["error"]["message"].as_str().unwrap_or_default();
        assert!(message.starts_with("server busy"), "{answer}");
    }
    assert!(!mcp.seen.iter().any(|m| m["id"].as_i64().is_some_and(|n| (1000..1000 + bound).contains(&n))));
    // A cheap request is still answered, and so is every wait taken once the job ends.
    mcp.request(1, "ping", json!({}));
    mcp.answer(1);
    gate.open();
    for call in 0..bound {
        let answer = mcp.answer(1000 + call);
        assert_eq!(structured(&answer)["state"], "exited", "{answer}");
    }
}

#[test]
fn a_bad_max_wait_setting_is_a_usage_error() {
    let env = Env::new();
    let out = env.command(&["mcp"]).env("AGENT_EXEC_MCP_MAX_WAIT_MS", "soon").output().expect("spawn");
    assert_eq!(out.status.code(), Some(2));
    assert!(out.stdout.is_empty());
    assert!(String::from_utf8_lossy(&out.stderr).contains("AGENT_EXEC_MCP_MAX_WAIT_MS"));
}

#[test]
fn a_client_that_stops_reading_ends_the_server_and_its_waits() {
    let env = Env::new();
    let gate = Gate::new(&env);
    let id = start_blocked_job(&env, &gate);
    let mut child = env
        .command(&["mcp"])
        .env("AGENT_EXEC_MCP_MAX_WAIT_MS", "600000")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn agent-exec mcp");
    let mut stdin = child.stdin.take().expect("stdin");
    let wait = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "wait", "arguments": {"job_id": id}}});
    writeln!(stdin, "{wait}").expect("write");
    drop(child.stdout.take());
    // This answer cannot be written: the server must give up the wait and exit 0, though
    // its stdin is still open and the wait has ten minutes to go.
    writeln!(stdin, r#"{{"jsonrpc":"2.0","id":2,"method":"ping"}}"#).expect("write");
    let mut status = None;
    let exited = eventually(PATIENCE, || {
        status = child.try_wait().expect("try_wait");
        status.is_some()
    });
    if !exited {
        let _ = child.kill();
        let _ = child.wait();
    }
    assert!(exited, "the server kept waiting for a reader that is gone");
    assert_eq!(status.and_then(|s| s.code()), Some(0));
    drop(stdin);
    assert_eq!(env.ok(&["status", &id])["state"], "running");
    gate.open();
    env.wait_job(&id);
}

/// An id we could not echo exactly is refused instead of answered under another id:
/// serde_json reads 1e29 (or 0.5) as a float and writes it back spelt differently, so a
/// client matching answers to requests by id never saw its answer. A message that names
/// a key twice is refused too (it would mean two things).
#[test]
fn ids_that_cannot_be_echoed_and_repeated_keys_are_refused() {
    let env = Env::new();
    let mut mcp = Mcp::start(&env, &[]);
    mcp.initialize();
    let refusal = |mcp: &mut Mcp, line: &[u8], code: i64| {
        mcp.seen.clear();
        mcp.send_raw(line);
        mcp.next("a refusal", |m| m["error"]["code"] == code)
    };
    let refused =
        refusal(&mut mcp, b"{\"jsonrpc\":\"2.0\",\"id\":123456789012345678901234567890,\"method\":\"ping\"}\n", -32600);
    assert_eq!(refused["id"], Value::Null, "{refused}");
    let refused = refusal(&mut mcp, b"{\"jsonrpc\":\"2.0\",\"id\":0.5,\"method\":\"ping\"}\n", -32600);
    assert_eq!(refused["id"], Value::Null, "{refused}");
    let line = b"{\"jsonrpc\":\"2.0\",\"id\":7,\"method\":\"ping\",\"method\":\"tools/list\"}\n";
    let refused = refusal(&mut mcp, line, -32600);
    assert!(refused["error"]["message"].as_str().unwrap_or_default().contains("duplicate key"), "{refused}");
    // Integers of either sign, and the largest u64, are echoed as sent.
    mcp.send_raw(b"{\"jsonrpc\":\"2.0\",\"id\":18446744073709551615,\"method\":\"ping\"}\n");
    let answer = mcp.next("the u64 id", |m| m["id"] == json!(u64::MAX));
    assert!(answer["result"].is_object(), "{answer}");
    mcp.request(-3, "ping", json!({}));
    assert!(mcp.answer(-3)["result"].is_object());
}

/// SIGTERM while a large answer is stuck on a client that stopped reading: the signal
/// path waited for the writer's lock, which the stuck worker holds for good, so the
/// server never exited (and a container's stop ended in SIGKILL).
#[test]
fn sigterm_exits_even_while_a_write_is_stuck_on_a_client_that_stopped_reading() {
    let env = Env::new();
    let job = env.ok(&["run", "--wait", "--", "sh", "-c", "head -c 30000000 /dev/zero | tr '\\0' a"]);
    let id = job["job_id"].as_str().expect("id").to_string();
    let mut mcp = env
        .command(&["mcp"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn");
    let _unread = mcp.stdout.take();
    let mut stdin = mcp.stdin.take().expect("stdin");
    let init = json!({"jsonrpc": "2.0", "id": 0, "method": "initialize",
        "params": {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "t", "version": "0"}}});
    let call = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
        "params": {"name": "tail", "arguments": {"job_id": id, "lines": 0, "max_bytes": 30_000_000}}});
    writeln!(stdin, "{init}\n{call}").expect("write");
    stdin.flush().expect("flush");
    let pid = mcp.id();
    let writing = || {
        std::fs::read_dir(format!("/proc/{pid}/task")).into_iter().flatten().flatten().any(|task| {
            std::fs::read_to_string(task.path().join("wchan")).is_ok_and(|wchan| wchan.contains("pipe_write"))
        })
    };
    assert!(eventually(Duration::from_secs(20), writing), "the answer never blocked on the full pipe");
    // SAFETY: signalling the process we started.
    unsafe { libc::kill(pid as i32, libc::SIGTERM) };
    let exited = eventually(Duration::from_secs(15), || matches!(mcp.try_wait(), Ok(Some(_))));
    let _ = mcp.kill();
    let status = mcp.wait().expect("wait");
    assert!(exited, "still running 15 s after SIGTERM");
    assert_eq!(status.code(), Some(0), "{status:?}");
}
