//! `agent-exec serve`: the REST API of docs/compatibility.md §11 (with docs/decisions.md OP-5, OP-6, OP-7) on
//! tiny_http, one thread per connection, no async runtime.
//!
//! This module owns the process side: binding, the request handler and its slots,
//! shutdown and the access log. Routing is `routes` (pure), the endpoints are `handlers`
//! (`v1`, `waits`; raw log output is `stream`), the token policy is `auth`, the bounds are
//! `limits`, PID 1 duties are `crate::reaper`.
//!
//! **Threads.** tiny_http (vendored and patched, vendor/tiny_http/PATCHES.md) runs an
//! accept thread and gives every open connection a thread of its pool, which reads one
//! request at a time: the head within 8 KiB per line, 16 KiB and 100 headers, the body
//! whole within 1 MiB and 10 s, each socket silent for at most 10 s. The connection's
//! thread then runs our `handle` itself (no hand-over to another thread per request),
//! which takes a slot of the request's class first: long-polls (every wait, `/exec` with
//! `wait`, a v1 run or start that watches, followed output) one of `--max-waiters`
//! (default 256), everything else one of
//! `--max-connections` (default 64); without a free slot the connection waits its turn.
//! So `/health` never waits behind long-polls, and slow or idle clients cost their own
//! connection threads, never a slot.
//!
//! **Shutdown.** SIGINT/SIGTERM set a flag the main thread checks every 100 ms: it
//! stops accepting, answers requests not yet started with 503, gives running requests up to
//! 5 s (followed output ends within `jobs::follow::POLL`, with its last chunk), and exits
//! 0 without printing (docs/compatibility.md §2.1). Jobs are untouched: each has its own
//! supervisor in its own session.

mod auth;
mod handlers;
mod limits;
mod openapi;
mod routes;
mod stream;
mod v1;
mod waits;

use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use tiny_http::{Header, Request, Response, Server};

use crate::error::{Code, Error, Result};
use crate::info;
use crate::jobstore::Root;
use crate::log::{self, Level};
use handlers::{Answer, Context, Incoming};
use limits::{InFlight, Slots};
use routes::{Query, Route};

/// How often the loop looks at the shutdown flag.
const TICK: Duration = Duration::from_millis(100);
/// How long in-flight requests get after SIGINT/SIGTERM.
const GRACE: Duration = Duration::from_secs(5);

struct Shared {
    root: Root,
    token: Option<String>,
    /// Everything but long-polls: `--max-connections` at once.
    short: Slots,
    /// Requests that wait (`handlers::is_long_poll`): `--max-waiters` at once.
    waiters: Slots,
    max_wait_ms: u64,
    /// The OpenAPI document served at `/openapi.json`.
    openapi: String,
    in_flight: InFlight,
    stop: Arc<AtomicBool>,
}

/// Connections that may be open at once, each holding a thread: room for every slot
/// of both classes and for as many connections again waiting for one, four times over;
/// one more is answered 503 at once. Without a bound a flood of connections (each
/// within every per-request limit) would make a thread each until `fork` fails.
fn max_open(max_requests: usize, max_waiters: usize) -> usize {
    max_requests.saturating_add(max_waiters).saturating_mul(4)
}

/// `serve`'s options, typed by the CLI.
#[derive(Debug, Clone)]
pub struct Options {
    pub bind: SocketAddr,
    /// `--token-file`; `$AGENT_EXEC_SERVE_TOKEN` is read too.
    pub token_file: Option<String>,
    /// More variable names to remove from every job's environment.
    pub scrub_env: Vec<String>,
    /// Short requests served at once (at least 1).
    pub max_connections: usize,
    /// Long-polls served at once (at least 1).
    pub max_waiters: usize,
    /// The longest any request may wait or stream (`--max-wait-ms`).
    pub max_wait_ms: u64,
}

/// Runs until SIGINT/SIGTERM and returns `Ok` once the requests in flight are done (or
/// the grace period is over): `main` then exits 0 without printing, which ends the
/// threads still running. An error is a startup failure, printed as the usual error
/// object (exit 1).
pub fn serve(options: &Options, root: Root) -> Result<()> {
    let addr = options.bind;
    let token = auth::load_token(options.token_file.as_deref())?;
    auth::check_exposure(&addr, token.as_deref())?;
    // Before any thread exists: the environment is only safe to change while no other
    // thread can read it.
    scrub_environment(&options.scrub_env);
    crate::reaper::release_children_on_exit()?;
    let (max_requests, max_waiters) = (options.max_connections, options.max_waiters);
    let listener = TcpListener::bind(addr).map_err(|e| Error::io(format!("bind {addr}"), e))?;
    limits::raise_fd_limit();
    let stop = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(signal, stop.clone()).map_err(|e| Error::io("install signal handler", e))?;
    }
    let local = listener.local_addr().map_err(|e| Error::io("read bound address", e))?;
    let openapi = openapi::document(&openapi::Config { max_wait_ms: options.max_wait_ms, token: token.is_some() });
    let shared = Arc::new(Shared {
        root,
        token,
        short: Slots::new(max_requests),
        waiters: Slots::new(max_waiters),
        max_wait_ms: options.max_wait_ms,
        openapi,
        in_flight: InFlight::default(),
        stop,
    });
    let handler_shared = shared.clone();
    let handler = Arc::new(move |request| handle(&handler_shared, request));
    let server =
        Server::from_listener_with_handler(listener, limits::http_limits(max_open(max_requests, max_waiters)), handler)
            .map_err(|e| Error::internal(format!("start HTTP server: {e}")))?;
    info!("serving on http://{local} (at most {max_requests} requests and {max_waiters} long-polls at once)");
    while !shared.stop.load(Ordering::Relaxed) {
        // Polling a signal flag; nothing else happens on this thread.
        std::thread::sleep(TICK);
    }
    // Stops accepting (tiny_http's accept thread ends and closes the listener); requests
    // arriving on open connections from now on are answered 503.
    drop(server);
    // As PID 1, the jobs end (recorded) before we do, which also lets long-polls answer.
    crate::reaper::stop_the_namespace_if_init();
    if !shared.in_flight.drain_until(Instant::now() + GRACE) {
        log::write(Level::Warn, format_args!("requests still running after {GRACE:?}; exiting anyway"));
    }
    Ok(())
}

/// Removes the token variable and every `--scrub-env` name from our environment, which
/// every supervisor inherits and passes on to its job and sinks: the token authorises
/// running commands, and a job that printed its environment would leak it to its log.
fn scrub_environment(extra: &[String]) {
    let names: Vec<&str> = std::iter::once(auth::TOKEN_ENV).chain(extra.iter().map(String::as_str)).collect();
    for name in &names {
        // SAFETY: called before `serve` starts any thread (see `serve`), and the names
        // are checked by the flag table (non-empty, no '=' or NUL).
        unsafe { std::env::remove_var(name) };
    }
    // And out of the block `/proc/<our pid>/environ` shows to our jobs.
    crate::scrub::hide_from_environ(&names);
}

fn shutting_down() -> Answer {
    Answer { status: 503, ..Answer::error(&Error::internal("server is shutting down")) }
}

/// One request, on its connection's thread: waits for a slot of its class (long-poll or
/// not), then answers. The body is already in memory (tiny_http read it whole), so
/// telling a waiting `/exec` from a plain one costs no I/O.
fn handle(shared: &Shared, mut request: Request) {
    let since = Instant::now();
    let _counted = shared.in_flight.enter();
    let route = routes::route(request.method().as_str(), request.url());
    let mut bytes = Vec::new();
    let ok = request.as_reader().read_to_end(&mut bytes).is_ok();
    let class = if handlers::is_long_poll(&route, request.url(), &bytes) { &shared.waiters } else { &shared.short };
    let Some(_slot) = class.acquire(&shared.stop) else {
        let _ = respond(request, shutting_down());
        return;
    };
    // A panicking handler must not take the connection's thread down with it; the
    // request is dropped during the unwind, which tiny_http answers with a 500.
    let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        serve_one(shared, request, route, Body { bytes, ok }, since);
    }));
}

/// The request body as tiny_http handed it over.
struct Body {
    bytes: Vec<u8>,
    ok: bool,
}

fn serve_one(shared: &Shared, request: Request, route: Route, body: Body, since: Instant) {
    // The access line's request part, taken before the request is answered (consumed).
    let access = log::enabled(Level::Info).then(|| {
        let peer = request.remote_addr().map_or_else(|| "-".to_string(), |a| a.to_string());
        format!("{peer} \"{} {}\"", request.method().as_str(), request.url().escape_default())
    });
    let ctx = Context { root: &shared.root, max_wait_ms: shared.max_wait_ms, openapi: &shared.openapi };
    let denied = shared
        .token
        .as_deref()
        .is_some_and(|token| route != Route::Health && !auth::authorized(header(&request, "Authorization"), token));
    let status = if denied {
        respond(request, Answer::error(&Error::new(Code::Unauthorized, "missing or invalid bearer token")))
    } else if let Route::Output(id) = &route {
        // Raw log bytes, possibly a stream: the one answer `stream` writes itself.
        match Query::parse(request.url(), route.params()).and_then(|query| stream::open(&ctx, id, &query)) {
            Ok(opened) => stream::send(request, opened, shared.max_wait_ms, &shared.stop),
            Err(err) => respond(request, Answer::error(&err)),
        }
    } else {
        let mut body = Some(body);
        let mut read_body = || match body.take() {
            Some(Body { bytes, ok: true }) => Ok(bytes),
            _ => Err(Error::new(Code::InvalidRequest, "failed to read request body")),
        };
        let target = request.url().to_string();
        respond(request, handlers::handle(route, &ctx, Incoming { target: &target, body: &mut read_body }))
    };
    if let Some(access) = access {
        info!("{access} {status} {}ms", since.elapsed().as_millis());
    }
}

fn header<'a>(request: &'a Request, name: &'static str) -> Option<&'a str> {
    request.headers().iter().find(|h| h.field.equiv(name)).map(|h| h.value.as_str())
}

/// The one place a JSON answer is written (raw log bytes are `stream`'s); returns its
/// status.
fn respond(request: Request, answer: Answer) -> u16 {
    let status = answer.status;
    let mut response = Response::from_string(answer.json).with_status_code(answer.status);
    let content_type = Header::from_bytes(&b"Content-Type"[..], &b"application/json"[..]);
    let extra = answer.header.and_then(|(name, value)| Header::from_bytes(name.as_bytes(), value.as_bytes()).ok());
    for header in content_type.ok().into_iter().chain(extra) {
        response.add_header(header);
    }
    // A client that went away is not our problem; there is nobody left to tell.
    let _ = request.respond(response);
    status
}
