//! `agent-exec serve`: the REST API of CONTRACT §11 (with DECISIONS OP-5, OP-6, OP-7) on
//! tiny_http, one thread per request, no async runtime.
//!
//! This module owns the process side: binding, the dispatch loop, the request cap,
//! shutdown and the access log. Routing is `routes` (pure), the endpoints are `handlers`,
//! the token policy is `auth`, the bounds are `limits`.
//!
//! **Threads.** tiny_http runs an accept thread and gives every open connection a thread
//! of its own pool, which reads request heads and queues complete requests. Our dispatch
//! loop takes requests off that queue and runs each on a new thread, but only while one
//! of `--max-connections` slots (default 64) is free; beyond that requests wait in the
//! queue, never as extra threads. A connection that is open but silent costs one
//! tiny_http pool thread and no slot, so idle clients cannot starve real requests.
//!
//! **Idle clients.** tiny_http 0.12 has no read-timeout setting and accepts sockets we
//! never see (`Server::from_listener` takes a listener, not streams). We therefore set
//! `SO_RCVTIMEO`/`SO_SNDTIMEO` on the listening socket, which Linux copies into every
//! accepted socket: a connection silent for `IDLE_TIMEOUT` (10 s) is closed by tiny_http,
//! which bounds the pool threads idle clients can hold. The same option bounds the
//! listener's own `accept`, and tiny_http's accept thread stops at its first error, so:
//! a keep-alive thread connects to the server five times a second to keep `accept` busy
//! (which also frees connections tiny_http's pool strands, see `spawn_keepalive`),
//! and if the accept thread stops anyway (timeout, `EMFILE`) the loop starts a new
//! tiny_http server on the same socket and drains the old one's queue for a while.
//!
//! **Shutdown.** SIGINT/SIGTERM set a flag the loop checks every 100 ms: it stops
//! accepting, answers requests still queued with 503, gives in-flight requests up to 5 s,
//! and exits 0 without printing (CONTRACT §2.1). Jobs are untouched: each has its own
//! supervisor in its own session.

mod auth;
mod handlers;
mod limits;
mod routes;
mod workers;

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use tiny_http::{Header, Request, Response, Server};

use crate::cli::Args;
use crate::error::{Code, Error, Result};
use crate::info;
use crate::jobstore::Root;
use crate::log::{self, Level};
use crate::wire::Reply;
use handlers::{Answer, Incoming};
use limits::{IDLE_TIMEOUT, MAX_BODY, Slots};
use routes::Route;

/// How often the loop looks at the shutdown flag.
const TICK: Duration = Duration::from_millis(100);
/// How often the keep-alive thread connects to the server (see `spawn_keepalive`).
const NUDGE: Duration = Duration::from_millis(200);
/// How long in-flight requests get after SIGINT/SIGTERM.
const GRACE: Duration = Duration::from_secs(5);

struct Shared {
    root: Root,
    token: Option<String>,
    slots: Slots,
    workers: workers::Workers,
    stop: Arc<AtomicBool>,
}

/// Runs until SIGINT/SIGTERM, then exits the process with 0. Returns only on a startup
/// failure, which `main` prints as the usual error object (exit 1).
pub fn serve(args: &Args, root: Root) -> Result<Reply> {
    let addr = bind_address(args)?;
    let token = auth::load_token(args.value("token-file"))?;
    auth::check_exposure(&addr, token.as_deref())?;
    let max_requests = usize::try_from(args.num("max-connections")).unwrap_or(usize::MAX);
    let listener = TcpListener::bind(addr).map_err(|e| Error::io(format!("bind {addr}"), e))?;
    limits::set_socket_timeouts(&listener, IDLE_TIMEOUT)?;
    limits::raise_fd_limit();
    let stop = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(signal, stop.clone()).map_err(|e| Error::io("install signal handler", e))?;
    }
    let local = listener.local_addr().map_err(|e| Error::io("read bound address", e))?;
    let server = start_server(&listener)?;
    info!("serving on http://{local} (at most {} requests at once)", max_requests.max(1));
    let shared = Arc::new(Shared {
        root,
        token,
        slots: Slots::new(max_requests),
        workers: workers::Workers::new(max_requests),
        stop,
    });
    spawn_keepalive(local, shared.stop.clone());
    run(server, listener, &shared);
    std::process::exit(0);
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

fn start_server(listener: &TcpListener) -> Result<Server> {
    let clone = listener.try_clone().map_err(|e| Error::io("duplicate listening socket", e))?;
    Server::from_listener(clone, None).map_err(|e| Error::internal(format!("start HTTP server: {e}")))
}

fn run(mut server: Server, listener: TcpListener, shared: &Arc<Shared>) {
    while !shared.stop.load(Ordering::Relaxed) {
        match server.recv_timeout(TICK) {
            Ok(Some(request)) => dispatch(shared, request),
            Ok(None) => {}
            Err(e) => {
                // tiny_http's accept thread has stopped; the socket itself is fine.
                log::write(Level::Warn, format_args!("accept loop stopped ({e}); restarting it"));
                let Some(fresh) = restart(&listener, shared) else { break };
                let old = std::mem::replace(&mut server, fresh);
                let shared = shared.clone();
                let _ = thread::Builder::new().name("drain".into()).spawn(move || drain_old(old, &shared));
            }
        }
    }
    // Stop accepting: our descriptor goes now, tiny_http's when its accept thread ends.
    drop(listener);
    while let Ok(Some(request)) = server.try_recv() {
        let err = Error::internal("server is shutting down");
        respond(request, Answer { status: 503, ..Answer::error(&err) }, false);
    }
    drop(server);
    if !shared.slots.drain_until(Instant::now() + GRACE) {
        log::write(Level::Warn, format_args!("requests still running after {GRACE:?}; exiting anyway"));
    }
}

fn restart(listener: &TcpListener, shared: &Shared) -> Option<Server> {
    loop {
        match start_server(listener) {
            Ok(server) => return Some(server),
            Err(e) if shared.stop.load(Ordering::Relaxed) => {
                log::write(Level::Warn, format_args!("{e}"));
                return None;
            }
            Err(e) => {
                log::write(Level::Warn, format_args!("{e}; retrying"));
                // Backoff while descriptors are exhausted, not synchronisation.
                thread::sleep(TICK);
            }
        }
    }
}

/// Keep-alive connections of a replaced server may still queue requests; serve them for
/// as long as such a connection could stay open without sending anything.
fn drain_old(old: Server, shared: &Arc<Shared>) {
    let deadline = Instant::now() + 2 * IDLE_TIMEOUT;
    while Instant::now() < deadline && !shared.stop.load(Ordering::Relaxed) {
        match old.recv_timeout(TICK) {
            Ok(Some(request)) => dispatch(shared, request),
            Ok(None) => {}
            Err(_) => break,
        }
    }
}

/// Connects to the server every `NUDGE` (and hangs up at once), for two reasons:
///
/// - the listener's `accept` never sits idle long enough to time out (`IDLE_TIMEOUT`);
/// - tiny_http 0.12's connection pool can strand a connection: when two connections
///   arrive while one pool thread is idle, both are queued for that one thread (its
///   idle count is only lowered after it wakes up), which takes the first and serves it
///   until it closes; the second waits for some pool thread to come free, which with
///   keep-alive clients can take until their idle timeout. Our empty connection finds
///   no idle thread either, so the pool starts a fresh thread for it, which finishes it
///   at once and then takes the stranded connection off the queue. The stall is thus
///   bounded by `NUDGE` instead of by other clients' behaviour.
fn spawn_keepalive(local: SocketAddr, stop: Arc<AtomicBool>) {
    let target = match local.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), local.port()),
        IpAddr::V6(ip) if ip.is_unspecified() => SocketAddr::new(IpAddr::V6(Ipv6Addr::LOCALHOST), local.port()),
        _ => local,
    };
    let _ = thread::Builder::new().name("keepalive".into()).spawn(move || {
        let mut last = Instant::now();
        while !stop.load(Ordering::Relaxed) {
            thread::sleep(TICK);
            if last.elapsed() >= NUDGE {
                let _ = TcpStream::connect_timeout(&target, Duration::from_secs(1));
                last = Instant::now();
            }
        }
    });
}

/// Runs one request on its own thread once a slot is free. While waiting for a slot the
/// request stays here and later ones stay in tiny_http's queue.
fn dispatch(shared: &Arc<Shared>, request: Request) {
    let queued = Instant::now();
    let slot = loop {
        if let Some(slot) = shared.slots.acquire_until(Instant::now() + TICK) {
            break slot;
        }
        if shared.stop.load(Ordering::Relaxed) {
            let answer = Answer { status: 503, ..Answer::error(&Error::internal("server is shutting down")) };
            respond(request, answer, false);
            return;
        }
    };
    let task_shared = shared.clone();
    let task: workers::Task = Box::new(move || {
        let _slot = slot;
        serve_one(&task_shared, request, queued);
    });
    if let Err(e) = shared.workers.run(task) {
        // The request went down with the task; tiny_http answers it with a bare 500.
        log::write(Level::Warn, format_args!("cannot start a request thread: {e}"));
    }
}

fn serve_one(shared: &Shared, mut request: Request, since: Instant) {
    let method = request.method().as_str().to_string();
    let target = request.url().to_string();
    let route = routes::route(&method, &target);
    let declared = request.body_length().map_or(0, |n| n as u64);
    if declared > limits::MAX_DRAIN {
        // tiny_http would answer, then discard the unread body with one allocation of its
        // declared size and abort the whole process. Dropping the request is the only way
        // around it: the client gets no answer and tiny_http's connection thread stays
        // parked until exit, a bounded cost per such request instead of a crash.
        info!("{method} {}: declared body of {declared} bytes, dropped unanswered", target.escape_default());
        std::mem::forget(request);
        return;
    }
    let declared_too_large = declared > MAX_BODY;
    let answer = match &shared.token {
        Some(token) if route != Route::Health && !auth::authorized(header(&request, "Authorization"), token) => {
            Answer::error(&Error::new(Code::Unauthorized, "missing or invalid bearer token"))
        }
        _ => {
            let mut read_body = || {
                if declared_too_large {
                    return Err(Error::new(Code::InvalidRequest, "failed to read request body"));
                }
                limits::read_body(request.as_reader())
            };
            handlers::handle(route, &shared.root, Incoming { target: &target, body: &mut read_body })
        }
    };
    let peer = request.remote_addr().map_or_else(|| "-".to_string(), |a| a.to_string());
    let status = answer.status;
    respond(request, answer, declared_too_large);
    info!("{peer} \"{method} {}\" {status} {}ms", target.escape_default(), since.elapsed().as_millis());
}

fn header<'a>(request: &'a Request, name: &'static str) -> Option<&'a str> {
    request.headers().iter().find(|h| h.field.equiv(name)).map(|h| h.value.as_str())
}

/// The one place a response is written. `close` asks the client to hang up, for a body
/// we refused without reading.
fn respond(request: Request, answer: Answer, close: bool) {
    let mut response = Response::from_string(answer.json).with_status_code(answer.status);
    let mut headers = vec![("Content-Type", "application/json".to_string())];
    headers.extend(answer.header);
    if close {
        headers.push(("Connection", "close".to_string()));
    }
    for (name, value) in headers {
        if let Ok(header) = Header::from_bytes(name.as_bytes(), value.as_bytes()) {
            response.add_header(header);
        }
    }
    // A client that went away is not our problem; there is nobody left to tell.
    let _ = request.respond(response);
}
