//! The endpoints (docs/compatibility.md §11 with docs/decisions.md OP-6, OP-7). Each handler turns a request
//! into one typed engine request (`crate::jobs`) and the engine's answer into one
//! `Answer`; `mod.rs` is the only place that writes it to the socket. A job launched by
//! `POST /exec` goes through the same engine call as `run`.

use std::time::Duration;

use serde::Deserialize;
use serde_json::Value;

use super::routes::{Query, Route};
use super::{openapi, v1, waits};
use crate::config;
use crate::error::{Code, Error, Result};
use crate::jobs::{self, Definition, KillRequest, Observe, RunRequest, TailRequest, WaitRequest};
use crate::jobstore::Root;
use crate::signals;
use crate::wire::{self, Clamped, Empty, ExecRequest, Reply};

/// `/wait` and `/exec` with `wait: true` wait this long unless told otherwise
/// (docs/decisions.md OP-6); the most a client may ask for is `serve --max-wait-ms`.
pub const DEFAULT_WAIT_MS: u64 = 30_000;
const WAIT_POLL: Duration = Duration::from_millis(200);
/// `/tail` and the `final_snapshot` of `/exec` use fixed tail parameters (docs/compatibility.md §11).
const TAIL_LINES: u64 = 50;
const TAIL_BYTES: u64 = 65_536;

/// One HTTP answer: status, JSON text with lexicographically sorted keys (docs/compatibility.md §2.2),
/// and the extra header some statuses need.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub json: String,
    pub header: Option<(&'static str, String)>,
}

impl Answer {
    pub fn ok(reply: Reply) -> Answer {
        Answer { status: 200, json: reply.json, header: None }
    }

    fn not_found() -> Answer {
        Answer { status: 404, ..Answer::error(&Error::new(Code::InvalidRequest, "no such route")) }
    }

    fn wrong_method(allow: &'static str) -> Answer {
        let message = format!("method not allowed (allowed: {allow})");
        let answer = Answer::error(&Error::new(Code::InvalidRequest, message));
        Answer { status: 405, header: Some(("Allow", allow.to_string())), ..answer }
    }

    pub fn error(err: &Error) -> Answer {
        let status = match err.code {
            Code::JobNotFound => 404,
            Code::AmbiguousJobId | Code::InvalidState | Code::InvalidRequest | Code::Usage => 400,
            Code::Unauthorized => 401,
            Code::NameInUse => 409,
            Code::UnknownSourceScheme | Code::InsecureRoot | Code::Internal => 500,
        };
        let header = (status == 401).then(|| ("WWW-Authenticate", "Bearer".to_string()));
        Answer { status, json: sorted(&wire::error_json(err)), header }
    }
}

/// Re-serializes through `serde_json::Value`, whose map is ordered by key.
fn sorted(json: &str) -> String {
    serde_json::from_str::<Value>(json).map_or_else(|_| json.to_string(), |value| value.to_string())
}

/// What every handler may use besides the request: the root and the server's bounds.
pub struct Context<'a> {
    pub root: &'a Root,
    /// `serve --max-wait-ms`: the longest any request may wait or stream.
    pub max_wait_ms: u64,
    /// The OpenAPI document, built when `serve` started (`openapi::document`).
    pub openapi: &'a str,
}

impl Context<'_> {
    pub fn bound(&self, requested: Option<u64>, default: u64) -> (u64, Option<Clamped>) {
        bound(self.max_wait_ms, requested, default)
    }
}

/// A wait of `requested` ms (`None`: `default`), at most `max_ms`; a request above it is
/// lowered and the answer says so (`clamped`). The default is lowered silently: nobody
/// asked for it.
pub fn bound(max_ms: u64, requested: Option<u64>, default: u64) -> (u64, Option<Clamped>) {
    match requested {
        Some(ms) if ms > max_ms => (max_ms, Some(Clamped { snapshot_after_ms: None, until_ms: Some(max_ms) })),
        Some(ms) => (ms, None),
        None => (default.min(max_ms), None),
    }
}

/// What a handler gets to see of the request.
pub struct Incoming<'a> {
    pub target: &'a str,
    pub body: &'a mut dyn FnMut() -> Result<Vec<u8>>,
}

/// Does this request wait for a job (so it goes to the long-poll lane)? Every wait, a
/// snapshot window, a readiness wait or a followed stream; a request that does not parse
/// is a quick 400 and stays in the short lane.
pub fn is_long_poll(route: &Route, target: &str, body: &[u8]) -> bool {
    #[derive(Deserialize)]
    struct WaitFlag {
        wait: Option<bool>,
    }
    match route {
        Route::Wait(_) | Route::JobWait(_) | Route::WaitMany => true,
        Route::Exec => wire::parse_request(body)
            .and_then(serde_json::from_value::<WaitFlag>)
            .is_ok_and(|flag| flag.wait == Some(true)),
        Route::Create | Route::Start(_) => v1::blocks(route, body),
        Route::Output(_) => {
            Query::parse(target, route.params()).is_ok_and(|query| query.bool("follow").ok().flatten() == Some(true))
        }
        _ => false,
    }
}

pub fn handle(route: Route, ctx: &Context, incoming: Incoming) -> Answer {
    // The path decides first (404, 405), then the query is checked whole before any
    // handler reads it.
    let query = match route {
        Route::NoSuchJob(id) => return Answer::error(&Error::not_found(&id)),
        Route::NotFound => return Answer::not_found(),
        Route::WrongMethod(allow) => return Answer::wrong_method(allow),
        _ => match Query::parse(incoming.target, route.params()) {
            Ok(query) => query,
            Err(err) => return Answer::error(&err),
        },
    };
    let root = ctx.root;
    let result = match route {
        Route::Health => Ok(Reply::sorted("health", &Empty {})),
        Route::Exec => (incoming.body)().and_then(|body| exec(ctx, &body)),
        Route::Status(id) => jobs::status(root, &id).map(|body| Reply::sorted("status", &body)),
        Route::Tail(id) => jobs::tail(root, &TailRequest { job_id: id, tail_lines: TAIL_LINES, max_bytes: TAIL_BYTES })
            .map(|body| Reply::sorted("tail", &body)),
        Route::Wait(id) => wait(ctx, &id, &query),
        Route::Kill(id) => kill(root, &id, &query),
        Route::Index => Ok(openapi::index()),
        Route::OpenApi => return Answer { status: 200, json: ctx.openapi.to_string(), header: None },
        Route::JobWait(id) => waits::job_wait(ctx, &id, &query),
        Route::WaitMany => waits::many_wait(ctx, &query),
        // Raw bytes, not a JSON answer: `mod.rs` hands this route to `stream` instead.
        Route::Output(_) => Err(Error::internal("the output route is answered by serve::stream")),
        Route::List
        | Route::Create
        | Route::Job(_)
        | Route::Start(_)
        | Route::JobKill(_)
        | Route::JobTail(_)
        | Route::Tags(_)
        | Route::Notify(_)
        | Route::Delete(_)
        | Route::Gc => return v1::handle(route, ctx, &query, incoming.body),
        Route::NoSuchJob(_) | Route::NotFound | Route::WrongMethod(_) => unreachable!("answered above"),
    };
    match result {
        Ok(reply) => Answer::ok(reply),
        Err(err) => Answer::error(&err),
    }
}

/// `?until=MS`, default 30 s, clamped to the server maximum (visibly); an unreadable
/// value is a client error, not silently the default.
fn wait(ctx: &Context, id: &str, query: &Query) -> Result<Reply> {
    let requested =
        match query.text("until") {
            None => None,
            Some(text) => Some(text.parse::<u64>().map_err(|_| {
                Error::new(Code::InvalidRequest, format!("invalid until '{text}': expected milliseconds"))
            })?),
        };
    let (until_ms, clamped) = ctx.bound(requested, DEFAULT_WAIT_MS);
    let request = WaitRequest { job_id: id.to_string(), until: Some(Duration::from_millis(until_ms)), poll: WAIT_POLL };
    let mut body = jobs::wait(ctx.root, &request)?;
    body.clamped = clamped;
    Ok(Reply::sorted("wait", &body))
}

/// Like CLI `kill` (docs/decisions.md OP-7): `?signal=NAME` (default TERM) and the `killed` record.
fn kill(root: &Root, id: &str, query: &Query) -> Result<Reply> {
    let signal = signals::parse(query.text("signal").unwrap_or("TERM"))
        .map_err(|message| Error::new(Code::InvalidRequest, message))?;
    // The id is already resolved by the route: messages name the full id, as before.
    let job = root.lookup(id)?;
    Ok(Reply::sorted("kill", &jobs::kill(root, &KillRequest { job_id: job.id, signal })?))
}

/// The pure part of `POST /exec`: the body's checks of docs/compatibility.md §11.2, in their order.
/// Returns the request and its non-empty command.
fn parse_exec(body: &[u8]) -> Result<(ExecRequest, Vec<String>)> {
    let invalid = |message: String| Error::new(Code::InvalidRequest, message);
    if body.is_empty() {
        return Err(invalid("request body is required".into()));
    }
    let value = wire::parse_request(body).map_err(|e| invalid(format!("invalid JSON: {e}")))?;
    let mut request: ExecRequest = serde_json::from_value(value).map_err(|e| invalid(format!("invalid JSON: {e}")))?;
    request
        .env
        .iter()
        .flatten()
        .try_for_each(|(key, value)| crate::supervisor::check_pair(key, value))
        .map_err(|e| invalid(format!("invalid env: {e}")))?;
    match request.command.take().filter(|c| !c.is_empty()) {
        Some(command) => Ok((request, command)),
        None => Err(invalid("command field is required and must be non-empty".into())),
    }
}

fn exec(ctx: &Context, body: &[u8]) -> Result<Reply> {
    let (request, command) = parse_exec(body)?;
    let wait = request.wait.unwrap_or(false);
    let (until_ms, clamped) = ctx.bound(request.until_ms, DEFAULT_WAIT_MS);
    let definition = Definition {
        command,
        name: None,
        env: request.env.unwrap_or_default().into_iter().map(|(k, v)| format!("{k}={v}")).collect(),
        env_files: Vec::new(),
        inherit_env: true,
        mask: Vec::new(),
        tags: Vec::new(),
        timeout_ms: request.timeout_ms.unwrap_or(0),
        kill_after_ms: 0,
        progress_every_ms: 0,
        notification: None,
        // docs/decisions.md OP-7: the wrapper comes from config.toml like `run` without --shell-wrapper.
        wrapper: config::resolve_wrapper(None, None)?,
        cwd: request.cwd,
        max_log_bytes: config::max_log_bytes(None, None)?,
        no_full_log: false,
    };
    let observe = Observe {
        snapshot_after_ms: 0,
        tail_lines: TAIL_LINES,
        max_bytes: TAIL_BYTES,
        wait,
        poll_ms: WAIT_POLL.as_millis() as u64,
        until_ms: Some(until_ms),
        ready: None,
    };
    let mut body = jobs::run(ctx.root, &RunRequest { definition, log: None, observe, if_running: Default::default() })?;
    // `/exec` has never echoed the environment (0.1.18).
    body.env_vars = None;
    if wait {
        body.clamped = clamped;
    }
    Ok(Reply::sorted("run", &body))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_have_sorted_keys() {
        let answer = Answer::error(&Error::not_found("x"));
        assert_eq!(answer.status, 404);
        assert_eq!(
            answer.json,
            r#"{"error":{"code":"job_not_found","message":"job not found: x","retryable":false},"ok":false,"schema_version":"0.1","type":"error"}"#
        );
    }

    /// Fuzz cases: a few hundred in the normal suite, many under `AGENT_EXEC_SOAK`.
    fn fuzz_config() -> proptest::prelude::ProptestConfig {
        let cases = if std::env::var_os("AGENT_EXEC_SOAK").is_some() { 200_000 } else { 1000 };
        proptest::prelude::ProptestConfig { cases, ..proptest::prelude::ProptestConfig::default() }
    }

    /// Bodies: raw bytes, or JSON-ish objects built from the keys and the wrong types.
    fn body() -> impl proptest::prelude::Strategy<Value = Vec<u8>> {
        use proptest::prelude::*;
        let value = r#"(\[("[a-z ]{0,3}",?|1,?|null,?){0,3}\]|null|"x"|-?[0-9]{1,21}|true|\{"[A-Z]{0,2}":("v"|1)\}|[0-9.e+-]{1,6})"#;
        let key = r#""(command|cwd|env|timeout_ms|wait|until_ms|x)""#;
        prop_oneof![
            proptest::collection::vec(any::<u8>(), 0..64),
            proptest::string::string_regex(&format!(r#"\{{({key}:{value},?){{0,5}}\}}?"#))
                .unwrap_or_else(|e| panic!("bad regex: {e}"))
                .prop_map(String::into_bytes),
        ]
    }

    proptest::proptest! {
        #![proptest_config(fuzz_config())]

        /// Fuzz: any body yields a non-empty command or one of the three
        /// `invalid_request` messages of docs/compatibility.md §11.2; never a panic.
        #[test]
        fn exec_body_parsing(body in body()) {
            match parse_exec(&body) {
                Ok((request, command)) => {
                    proptest::prop_assert!(!command.is_empty());
                    proptest::prop_assert!(request.command.is_none());
                }
                Err(err) => {
                    proptest::prop_assert_eq!(err.code, Code::InvalidRequest);
                    let message = err.message.as_str();
                    proptest::prop_assert!(
                        message == "request body is required"
                            || message == "command field is required and must be non-empty"
                            || message.starts_with("invalid JSON: ")
                            || message.starts_with("invalid env: "),
                        "{}", message
                    );
                }
            }
        }
    }

    #[test]
    fn long_polls() {
        let id = || "01J9ZK3M8E5PQRSTVWYZ12ABCD".to_string();
        let long = |route: &Route, body: &[u8]| is_long_poll(route, "/x", body);
        assert!(long(&Route::Wait(id()), b""));
        assert!(long(&Route::JobWait(id()), b""));
        assert!(long(&Route::WaitMany, b""));
        assert!(long(&Route::Exec, br#"{"command":["true"],"wait":true}"#));
        assert!(!long(&Route::Exec, br#"{"command":["true"],"wait":false}"#));
        assert!(!long(&Route::Exec, br#"{"command":["true"]}"#));
        assert!(!long(&Route::Exec, b"{"));
        assert!(!long(&Route::Status(id()), b""));
        assert!(!long(&Route::Health, br#"{"wait":true}"#));
        assert!(is_long_poll(&Route::Output(id()), "/v1/jobs/x/output?follow=true", b""));
        assert!(!is_long_poll(&Route::Output(id()), "/v1/jobs/x/output?follow=false", b""));
        assert!(!is_long_poll(&Route::Output(id()), "/v1/jobs/x/output", b""));
        // A run or start watches the job for the CLI's default window unless told not to.
        assert!(!long(&Route::Create, br#"{"command":["true"]}"#));
        assert!(long(&Route::Create, br#"{"command":["true"],"start":true}"#));
        assert!(!long(&Route::Create, br#"{"command":["true"],"start":true,"snapshot_after_ms":0}"#));
        assert!(long(&Route::Create, br#"{"command":["true"],"start":true,"snapshot_after_ms":0,"wait":true}"#));
        assert!(long(&Route::Create, br#"{"command":"x","start":true,"snapshot_after_ms":0,"for_port":80}"#));
        assert!(long(&Route::Start(id()), b""));
        assert!(!long(&Route::Start(id()), br#"{"snapshot_after_ms":0}"#));
        assert!(!long(&Route::Start(id()), b"[]"));
    }

    /// Schemathesis sends `222.0` where the document says integer, as JSON Schema
    /// allows: it is the integer 222, not a wrong type.
    #[test]
    fn whole_floats_are_integers() {
        let (request, _) = parse_exec(br#"{"command":["true"],"until_ms":222.0,"timeout_ms":1e3}"#).expect("accepted");
        assert_eq!((request.until_ms, request.timeout_ms), (Some(222), Some(1000)));
        for refused in [&br#"{"command":["true"],"until_ms":2.5}"#[..], br#"{"command":["true"],"until_ms":-1.0}"#] {
            assert!(parse_exec(refused).is_err());
        }
    }

    #[test]
    fn status_codes() {
        let code = |c| Answer::error(&Error::new(c, "m")).status;
        assert_eq!(code(Code::AmbiguousJobId), 400);
        assert_eq!(code(Code::InvalidState), 400);
        assert_eq!(code(Code::InvalidRequest), 400);
        assert_eq!(code(Code::Unauthorized), 401);
        assert_eq!(code(Code::Internal), 500);
    }
}
