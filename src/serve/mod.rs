//! `agent-exec serve`: the REST API of CONTRACT §11 (with DECISIONS OP-5, OP-6, OP-7) on
//! tiny_http, one thread per request, no async runtime.
//!
//! This module owns the process side: binding, the dispatch loop, the lanes, shutdown
//! and the access log. Routing is `routes` (pure), the endpoints are `handlers`, the
//! token policy is `auth`, the bounds are `limits`, PID 1 duties are `reaper`.
//!
//! **Threads.** tiny_http (vendored and patched, vendor/tiny_http/PATCHES.md) runs an
//! accept thread and gives every open connection a thread of its pool, which reads one
//! request at a time: the head within 8 KiB per line, 16 KiB and 100 headers, the body
//! whole within 1 MiB and 10 s, each socket silent for at most 10 s. Only complete
//! requests are queued for us, and a connection has at most one request outstanding.
//! Our dispatch loop routes each request to a lane and never waits: long-polls
//! (`/wait`, `/exec` with `wait`) run on up to `--max-waiters` threads (default 256),
//! everything else on up to `--max-connections` (default 64); beyond a cap requests wait
//! in their lane's queue. So `/health` never waits behind long-polls, and slow or idle
//! clients cost tiny_http connection threads, never request threads.
//!
//! **Shutdown.** SIGINT/SIGTERM set a flag the loop checks every 100 ms: it stops
//! accepting, answers requests not yet started with 503, gives running requests up to
//! 5 s, and exits 0 without printing (CONTRACT §2.1). Jobs are untouched: each has its
//! own supervisor in its own session.

mod auth;
mod handlers;
mod limits;
mod reaper;
mod routes;
mod workers;

use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use tiny_http::{Header, Request, Response, Server};

use crate::cli::Args;
use crate::error::{Code, Error, Result};
use crate::info;
use crate::jobstore::Root;
use crate::log::{self, Level};
use crate::wire::Reply;
use handlers::{Answer, Incoming};
use routes::Route;
use workers::Lane;

/// How often the loop looks at the shutdown flag.
const TICK: Duration = Duration::from_millis(100);
/// How long in-flight requests get after SIGINT/SIGTERM.
const GRACE: Duration = Duration::from_secs(5);

struct Shared {
    root: Root,
    token: Option<String>,
    /// Everything but long-polls: `--max-connections` threads.
    short: Lane,
    /// `/wait` and `/exec` with `wait: true`: `--max-waiters` threads.
    waiters: Lane,
    stop: Arc<AtomicBool>,
}

/// Runs until SIGINT/SIGTERM, then exits the process with 0. Returns only on a startup
/// failure, which `main` prints as the usual error object (exit 1).
pub fn serve(args: &Args, root: Root) -> Result<Reply> {
    let addr = bind_address(args)?;
    let token = auth::load_token(args.value("token-file"))?;
    auth::check_exposure(&addr, token.as_deref())?;
    // Before any thread exists: the environment is only safe to change while no other
    // thread can read it.
    scrub_environment(&args.values("scrub-env"));
    reaper::release_children_on_exit()?;
    let cap = |flag| usize::try_from(args.num(flag)).unwrap_or(usize::MAX).max(1);
    let (max_requests, max_waiters) = (cap("max-connections"), cap("max-waiters"));
    let listener = TcpListener::bind(addr).map_err(|e| Error::io(format!("bind {addr}"), e))?;
    limits::raise_fd_limit();
    let stop = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(signal, stop.clone()).map_err(|e| Error::io("install signal handler", e))?;
    }
    let local = listener.local_addr().map_err(|e| Error::io("read bound address", e))?;
    let server = Server::from_listener_with_limits(listener, None, limits::http_limits())
        .map_err(|e| Error::internal(format!("start HTTP server: {e}")))?;
    info!("serving on http://{local} (at most {max_requests} requests and {max_waiters} long-polls at once)");
    let shared = Arc::new(Shared {
        root,
        token,
        short: Lane::new("request", max_requests),
        waiters: Lane::new("waiter", max_waiters),
        stop,
    });
    run(server, &shared);
    std::process::exit(0);
}

/// Removes the token variable and every `--scrub-env` name from our environment, which
/// every supervisor inherits and passes on to its job and sinks: the token authorises
/// running commands, and a job that printed its environment would leak it to its log.
fn scrub_environment(extra: &[&str]) {
    for name in std::iter::once(auth::TOKEN_ENV).chain(extra.iter().copied()) {
        // SAFETY: called before `serve` starts any thread (see `serve`), and the names
        // are checked by the flag table (non-empty, no '=' or NUL).
        unsafe { std::env::remove_var(name) };
    }
}

/// `--port P` is `127.0.0.1:P`; `--bind` must be a literal `IP:PORT` (CONTRACT §8.16).
fn bind_address(args: &Args) -> Result<SocketAddr> {
    if let Some(port) = args.value("port") {
        let port = port.parse::<u16>().map_err(|e| Error::internal(format!("invalid port '{port}': {e}")))?;
        return Ok(SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port));
    }
    let text = args.value_or_default("bind").unwrap_or("127.0.0.1:19263");
    text.parse().map_err(|e| Error::internal(format!("invalid bind address '{text}': {e}")))
}

fn run(server: Server, shared: &Arc<Shared>) {
    while !shared.stop.load(Ordering::Relaxed) {
        match server.recv_timeout(TICK) {
            Ok(Some(request)) => dispatch(shared, request),
            Ok(None) => {}
            // The patched tiny_http retries failed accepts itself and reports none.
            Err(e) => log::write(Level::Warn, format_args!("HTTP server: {e}")),
        }
    }
    // Requests already complete but not dispatched: answered, never started.
    while let Ok(Some(request)) = server.try_recv() {
        respond(request, shutting_down());
    }
    // Stops accepting (tiny_http's accept thread ends and closes the listener).
    drop(server);
    let deadline = Instant::now() + GRACE;
    if !(shared.short.in_flight.drain_until(deadline) && shared.waiters.in_flight.drain_until(deadline)) {
        log::write(Level::Warn, format_args!("requests still running after {GRACE:?}; exiting anyway"));
    }
}

fn shutting_down() -> Answer {
    Answer { status: 503, ..Answer::error(&Error::internal("server is shutting down")) }
}

/// Routes a request to its lane; never blocks. The body is already in memory (tiny_http
/// read it whole), so telling a waiting `/exec` from a plain one costs no I/O.
fn dispatch(shared: &Arc<Shared>, mut request: Request) {
    let queued = Instant::now();
    let route = routes::route(request.method().as_str(), request.url());
    let mut body = Vec::new();
    let body_ok = request.as_reader().read_to_end(&mut body).is_ok();
    let lane = if handlers::is_long_poll(&route, &body) { &shared.waiters } else { &shared.short };
    let task_shared = shared.clone();
    let task: workers::Task = Box::new(move || {
        if task_shared.stop.load(Ordering::Relaxed) {
            respond(request, shutting_down());
            return;
        }
        serve_one(&task_shared, request, route, Body { bytes: body, ok: body_ok }, queued);
    });
    if let Err(e) = lane.submit(task) {
        // The request went down with the task; tiny_http answers it with a bare 500.
        log::write(Level::Warn, format_args!("cannot start a request thread: {e}"));
    }
}

/// The request body as tiny_http handed it over.
struct Body {
    bytes: Vec<u8>,
    ok: bool,
}

fn serve_one(shared: &Shared, request: Request, route: Route, body: Body, since: Instant) {
    let method = request.method().as_str().to_string();
    let target = request.url().to_string();
    let answer = match &shared.token {
        Some(token) if route != Route::Health && !auth::authorized(header(&request, "Authorization"), token) => {
            Answer::error(&Error::new(Code::Unauthorized, "missing or invalid bearer token"))
        }
        _ => {
            let mut body = Some(body);
            let mut read_body = || match body.take() {
                Some(Body { bytes, ok: true }) => Ok(bytes),
                _ => Err(Error::new(Code::InvalidRequest, "failed to read request body")),
            };
            handlers::handle(route, &shared.root, Incoming { target: &target, body: &mut read_body })
        }
    };
    let peer = request.remote_addr().map_or_else(|| "-".to_string(), |a| a.to_string());
    let status = answer.status;
    respond(request, answer);
    info!("{peer} \"{method} {}\" {status} {}ms", target.escape_default(), since.elapsed().as_millis());
}

fn header<'a>(request: &'a Request, name: &'static str) -> Option<&'a str> {
    request.headers().iter().find(|h| h.field.equiv(name)).map(|h| h.value.as_str())
}

/// The one place a response is written.
fn respond(request: Request, answer: Answer) {
    let mut response = Response::from_string(answer.json).with_status_code(answer.status);
    let mut headers = vec![("Content-Type", "application/json".to_string())];
    headers.extend(answer.header);
    for (name, value) in headers {
        if let Ok(header) = Header::from_bytes(name.as_bytes(), value.as_bytes()) {
            response.add_header(header);
        }
    }
    // A client that went away is not our problem; there is nobody left to tell.
    let _ = request.respond(response);
}
