//! `agent-exec mcp`: the job engine as a Model Context Protocol server on stdio.
//!
//! Modules by concern: `framing` (bounded line reading, JSON-RPC classification, the one
//! stdout writer), `session` (initialize, revisions), `tools` (catalogue and typed
//! inputs), `dispatch` (the reader's answers and the worker lanes), `progress`
//! (requests in flight, cancellation, progress notifications) and `engine` (the single
//! adapter into the job engine).
//!
//! Lifecycle: like `serve`, it releases its children to the kernel (`crate::reaper`), so
//! it can be PID 1 of a container. The main thread reads stdin until EOF, then lets the calls in flight finish
//! and answer (every one is bounded by the wait maximum), so `printf ... | agent-exec mcp`
//! works. SIGTERM and SIGINT, handled by a thread of their own, cancel the calls in
//! flight, give them `GRACE` to wind down, and exit 0. Either way jobs keep running:
//! each has its own supervisor.

mod dispatch;
mod engine;
mod framing;
mod progress;
mod session;
mod tools;

use std::io::{self, BufReader, Read};
use std::os::unix::net::UnixStream;
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use dispatch::{Lanes, Server};
use engine::Context;
use framing::{ErrorObject, INVALID_REQUEST, Incoming, Line, Lines};
use serde_json::Value;

/// How long calls in flight get to stop after a signal.
const GRACE: Duration = Duration::from_secs(2);
const MAX_WAIT_VAR: &str = "AGENT_EXEC_MCP_MAX_WAIT_MS";
/// Below the 60 s request timeout common in MCP clients.
const DEFAULT_MAX_WAIT_MS: u64 = 50_000;

pub fn main(root: crate::jobstore::Root) -> u8 {
    let max_wait_ms = match std::env::var(MAX_WAIT_VAR) {
        Err(_) => DEFAULT_MAX_WAIT_MS,
        Ok(text) => match text.parse::<u64>() {
            Ok(ms) => ms,
            Err(_) => {
                crate::log::to_stderr(format_args!(
                    "error: {MAX_WAIT_VAR} must be a number of milliseconds, not '{text}'\n"
                ));
                return 2;
            }
        },
    };
    // As PID 1 of a container, every orphaned supervisor and job child is ours to reap.
    if let Err(e) = crate::reaper::release_children_on_exit() {
        crate::log::to_stderr(format_args!("error: {}\n", e.message));
        return 1;
    }
    let server = Arc::new(Server::new(Context { root, max_wait: Duration::from_millis(max_wait_ms) }));
    if let Err(e) = watch_signals(&server) {
        crate::log::to_stderr(format_args!("error: cannot install signal handlers: {e}\n"));
        return 1;
    }
    crate::info!("mcp: serving on stdio, waits bounded to {max_wait_ms} ms");
    let lanes = Lanes::start(&server);
    if serve(&server, &lanes) == End::Eof {
        crate::info!("mcp: stdin closed, finishing the calls in flight");
    } else {
        // Nobody can read the answers any more: stop waiting for them.
        server.flight.cancel_all_and_drain(GRACE);
    }
    lanes.close();
    crate::reaper::stop_the_namespace_if_init();
    0
}

#[derive(PartialEq, Eq)]
enum End {
    Eof,
    Broken,
}

/// The reader loop, until EOF or until stdin or stdout fails.
fn serve(server: &Server, lanes: &Lanes) -> End {
    let stdin = io::stdin();
    let mut lines = Lines::new(BufReader::with_capacity(64 * 1024, stdin.lock()));
    loop {
        let written = match lines.next_line() {
            Ok(Line::Eof) => return End::Eof,
            Err(e) => {
                crate::log::write(crate::log::Level::Warn, format_args!("mcp: reading stdin: {e}"));
                return End::Broken;
            }
            Ok(Line::TooLarge) => server.out.error(
                &Value::Null,
                &ErrorObject {
                    code: INVALID_REQUEST,
                    message: "invalid request: message larger than 1 MiB".to_string(),
                },
            ),
            Ok(Line::Message(line)) => match framing::classify(&line) {
                Incoming::Request { id, method, params } => {
                    match dispatch::request(server, lanes, &id, &method, params) {
                        Ok(Some(result)) => server.out.result(&id, result),
                        Ok(None) => Ok(()),
                        Err(error) => server.out.error(&id, &error),
                    }
                }
                Incoming::Notification { method, params } => {
                    dispatch::notification(server, &method, &params);
                    Ok(())
                }
                Incoming::Response => Ok(()),
                Incoming::Invalid { id, error } => server.out.error(&id, &error),
            },
        };
        if let Err(e) = written {
            crate::log::write(crate::log::Level::Warn, format_args!("mcp: writing stdout: {e}"));
            return End::Broken;
        }
    }
}

/// SIGTERM and SIGINT end the server cleanly (exit 0) from a thread of their own, since
/// the reader may be blocked in `read` for good.
fn watch_signals(server: &Arc<Server>) -> io::Result<()> {
    let (mut receiver, sender) = UnixStream::pair()?;
    for signal in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
        signal_hook::low_level::pipe::register(signal, sender.try_clone()?)?;
    }
    let server = server.clone();
    thread::spawn(move || {
        let mut byte = [0u8; 1];
        if receiver.read(&mut byte).is_ok_and(|n| n == 1) {
            crate::info!("mcp: signal received, exiting");
            server.flight.cancel_all_and_drain(GRACE);
            crate::reaper::stop_the_namespace_if_init();
            // Holding the writer makes sure no message is cut short by the exit, unless
            // a client that stopped reading holds a writer up: then we go regardless.
            let _stdout = server.out.close(Duration::from_secs(2));
            std::process::exit(0);
        }
    });
    Ok(())
}
