//! Routing: a pure function from method and raw request target to a `Route`, and the
//! strict query-string reader every route's parameters go through.
//!
//! Nothing here touches the filesystem. Job ids are percent-decoded and checked against
//! docs/decisions.md OP-5 (`jobstore::valid_id`) before a handler ever sees them, so a traversal
//! attempt (`..`, `%2F`, `%2e%2e`, absolute paths, NUL, overlong ids) can only ever become
//! `Route::NoSuchJob`, never a path. `Root::lookup` checks again; two locks on one door.
//! The v1 routes also take `@NAME` (`%40NAME`), checked as a name here and resolved by
//! the engine's lookup, as the CLI resolves it.

use crate::error::{Code, Error, Result};
use crate::jobstore::names::check_name;
use crate::jobstore::valid_id;

/// Every endpoint: the 0.1.18 ones of docs/compatibility.md §11.1 and the v1 resources.
/// Job routes carry their id decoded and validated: an id or prefix, or on v1 routes
/// `@NAME`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// `GET /`: the index.
    Index,
    /// `GET /openapi.json` and `GET /v1/openapi.json`.
    OpenApi,
    /// `GET /health` and `GET /v1/health`.
    Health,
    Exec,
    Status(String),
    Tail(String),
    Wait(String),
    Kill(String),
    /// `GET /v1/jobs`.
    List,
    /// `POST /v1/jobs`.
    Create,
    /// `GET /v1/jobs/{id}`.
    Job(String),
    Start(String),
    JobKill(String),
    JobWait(String),
    /// `GET /v1/wait`: several jobs.
    WaitMany,
    JobTail(String),
    Output(String),
    Tags(String),
    Notify(String),
    Delete(String),
    Gc,
    /// A job endpoint whose id can never name a job: answered 404 `job_not_found` with
    /// the decoded (lossy) text in the message.
    NoSuchJob(String),
    /// No endpoint has this path.
    NotFound,
    /// The path exists, the method does not; the value is the `Allow` header.
    WrongMethod(&'static str),
}

/// Builds a job route from its validated id.
type MakeRoute = fn(String) -> Route;

/// What a path offers: the allowed methods (the `Allow` header) and, per method, the
/// route, with the raw id when the path has one.
enum Endpoint {
    Fixed(&'static str, &'static [(&'static str, Route)]),
    /// A job path: whether `@NAME` is accepted (v1 only), the methods.
    Job(&'static str, bool, &'static [(&'static str, MakeRoute)]),
}

/// Maps a request to its route. `target` is the request target as sent (path and
/// optional query); the query never influences routing.
pub fn route(method: &str, target: &str) -> Route {
    let path = target.split_once('?').map_or(target, |(path, _)| path);
    match endpoint(path) {
        None => Route::NotFound,
        Some((Endpoint::Fixed(allow, methods), _)) => {
            methods.iter().find(|(m, _)| *m == method).map_or(Route::WrongMethod(allow), |(_, r)| r.clone())
        }
        Some((Endpoint::Job(allow, names, methods), raw_id)) => {
            let Some((_, make)) = methods.iter().find(|(m, _)| *m == method) else {
                return Route::WrongMethod(allow);
            };
            match percent_decode(raw_id) {
                Some(id) if valid_id(&id) => make(id),
                Some(id) if names && id.strip_prefix('@').is_some_and(|name| check_name(name).is_ok()) => make(id),
                Some(id) => Route::NoSuchJob(id),
                None => Route::NoSuchJob(String::from_utf8_lossy(raw_id.as_bytes()).into_owned()),
            }
        }
    }
}

/// The endpoint of a path and its raw id (empty for fixed paths).
fn endpoint(path: &str) -> Option<(Endpoint, &str)> {
    use Endpoint::{Fixed, Job};
    let fixed = |endpoint| Some((endpoint, ""));
    match path {
        "/" => return fixed(Fixed("GET", &[("GET", Route::Index)])),
        "/openapi.json" | "/v1/openapi.json" => return fixed(Fixed("GET", &[("GET", Route::OpenApi)])),
        "/health" | "/v1/health" => return fixed(Fixed("GET", &[("GET", Route::Health)])),
        "/exec" => return fixed(Fixed("POST", &[("POST", Route::Exec)])),
        "/v1/jobs" => return fixed(Fixed("GET, POST", &[("GET", Route::List), ("POST", Route::Create)])),
        "/v1/wait" => return fixed(Fixed("GET", &[("GET", Route::WaitMany)])),
        "/v1/gc" => return fixed(Fixed("POST", &[("POST", Route::Gc)])),
        _ => {}
    }
    if let Some(rest) = path.strip_prefix("/v1/jobs/") {
        // `/v1/jobs/{id}` or `/v1/jobs/{id}/{action}`; an id never holds a raw slash
        // (a `%2F` decodes into one and is refused as an id).
        let (raw_id, action) = rest.split_once('/').map_or((rest, None), |(id, action)| (id, Some(action)));
        let endpoint = match action {
            None => Job("GET, DELETE", true, &[("GET", Route::Job), ("DELETE", Route::Delete)]),
            Some("start") => Job("POST", true, &[("POST", Route::Start)]),
            Some("kill") => Job("POST", true, &[("POST", Route::JobKill)]),
            Some("wait") => Job("GET", true, &[("GET", Route::JobWait)]),
            Some("tail") => Job("GET", true, &[("GET", Route::JobTail)]),
            Some("output") => Job("GET", true, &[("GET", Route::Output)]),
            Some("tags") => Job("PUT", true, &[("PUT", Route::Tags)]),
            Some("notify") => Job("PATCH", true, &[("PATCH", Route::Notify)]),
            Some(_) => return None,
        };
        return Some((endpoint, raw_id));
    }
    // The 0.1.18 job routes: everything after the endpoint's slash is the id, slashes
    // included: `/status/../x` is a job lookup for "../x" (rejected), not another route.
    let (word, raw_id) = path.strip_prefix('/')?.split_once('/')?;
    let endpoint = match word {
        "status" => Job("GET", false, &[("GET", Route::Status)]),
        "tail" => Job("GET", false, &[("GET", Route::Tail)]),
        "wait" => Job("GET", false, &[("GET", Route::Wait)]),
        "kill" => Job("POST", false, &[("POST", Route::Kill)]),
        _ => return None,
    };
    Some((endpoint, raw_id))
}

/// Decodes `%XX` escapes. `None` for a malformed escape or a result that is not UTF-8;
/// `+` stays a plus sign (this is a path, not a form).
pub fn percent_decode(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes.get(i + 1..i + 3)?;
            let hex = std::str::from_utf8(hex).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// A query parameter a route takes.
#[derive(Debug, Clone, Copy)]
pub struct Param {
    pub name: &'static str,
    /// May be given more than once (each value counts, e.g. `tag`).
    pub repeatable: bool,
}

const fn one(name: &'static str) -> Param {
    Param { name, repeatable: false }
}

const fn many(name: &'static str) -> Param {
    Param { name, repeatable: true }
}

/// The readiness waits of `wait` (agent-exec-wait(1)), as query parameters.
const READY: [Param; 5] =
    [one("for_output"), one("output_match_type"), one("output_stream"), one("for_port"), one("for_host")];

impl Route {
    /// The query parameters this route accepts; any other is refused (400) before the
    /// handler runs. Bodies are checked by their serde types instead.
    pub fn params(&self) -> &'static [Param] {
        const WAIT: &[Param] = &[one("until")];
        const KILL: &[Param] = &[one("signal")];
        const LIST: &[Param] = &[one("state"), many("tag"), one("cwd"), one("all"), one("limit"), one("name")];
        const JOB_WAIT: &[Param] = &[one("until_ms"), READY[0], READY[1], READY[2], READY[3], READY[4]];
        const WAIT_MANY: &[Param] = &[many("job"), many("tag"), one("cwd"), one("all"), one("any"), one("until_ms")];
        const TAIL: &[Param] = &[one("tail_lines"), one("max_bytes")];
        const OUTPUT: &[Param] = &[one("stream"), one("offset"), one("follow"), one("until_ms")];
        const DELETE: &[Param] = &[one("dry_run")];
        match self {
            Route::Wait(_) => WAIT,
            Route::Kill(_) => KILL,
            Route::List => LIST,
            Route::JobWait(_) => JOB_WAIT,
            Route::WaitMany => WAIT_MANY,
            Route::JobTail(_) => TAIL,
            Route::Output(_) => OUTPUT,
            Route::Delete(_) => DELETE,
            _ => &[],
        }
    }
}

/// A request's query, decoded and checked against its route's parameters: nothing
/// unknown, nothing repeated that is not repeatable, everything decodable. Values keep
/// their order.
#[derive(Debug, Default)]
pub struct Query {
    pairs: Vec<(String, String)>,
}

fn invalid(message: String) -> Error {
    Error::new(Code::InvalidRequest, message)
}

impl Query {
    /// Reads the query of `target` (`name=value` pairs separated by `&`, `+` for a
    /// space as HTML forms send it, `%XX` escapes; an empty pair is skipped).
    pub fn parse(target: &str, allowed: &[Param]) -> Result<Query> {
        let mut query = Query::default();
        let Some((_, text)) = target.split_once('?') else { return Ok(query) };
        for pair in text.split('&').filter(|pair| !pair.is_empty()) {
            let (raw_name, raw_value) = pair.split_once('=').unwrap_or((pair, ""));
            let decode = |text: &str| percent_decode(&text.replace('+', " "));
            let Some(name) = decode(raw_name) else {
                return Err(invalid(format!(
                    "invalid query parameter '{}': bad percent-encoding",
                    raw_name.escape_default()
                )));
            };
            let Some(param) = allowed.iter().find(|p| p.name == name) else {
                let expected = allowed.iter().map(|p| p.name).collect::<Vec<_>>().join(", ");
                let expected = if expected.is_empty() { "none".to_string() } else { expected };
                return Err(invalid(format!(
                    "unknown query parameter '{}' (expected: {expected})",
                    name.escape_default()
                )));
            };
            if !param.repeatable && query.pairs.iter().any(|(seen, _)| *seen == name) {
                return Err(invalid(format!("query parameter '{name}' given more than once")));
            }
            let Some(value) = decode(raw_value) else {
                return Err(invalid(format!("invalid query parameter '{name}': bad percent-encoding")));
            };
            // No command line can carry a NUL either; no value of ours may hold one.
            if value.contains('\0') {
                return Err(invalid(format!("invalid query parameter '{name}': NUL is not allowed")));
            }
            query.pairs.push((name, value));
        }
        Ok(query)
    }

    /// The value of a parameter given once.
    pub fn text(&self, name: &str) -> Option<&str> {
        self.pairs.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }

    /// Every value of a repeatable parameter, in order.
    pub fn all(&self, name: &str) -> Vec<String> {
        self.pairs.iter().filter(|(n, _)| n == name).map(|(_, v)| v.clone()).collect()
    }

    /// A non-negative integer.
    pub fn u64(&self, name: &str) -> Result<Option<u64>> {
        self.text(name)
            .map(|text| {
                text.parse::<u64>()
                    .map_err(|_| invalid(format!("invalid query parameter '{name}': expected a non-negative integer")))
            })
            .transpose()
    }

    /// Exactly `true` or `false`.
    pub fn bool(&self, name: &str) -> Result<Option<bool>> {
        self.text(name)
            .map(|text| match text {
                "true" => Ok(true),
                "false" => Ok(false),
                _ => Err(invalid(format!("invalid query parameter '{name}': expected true or false"))),
            })
            .transpose()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "01J9ZK3M8E5PQRSTVWYZ12ABCD";

    #[test]
    fn routing_table() {
        let id = || ID.to_string();
        let cases: Vec<(&str, String, Route)> = vec![
            ("GET", "/health".into(), Route::Health),
            ("GET", "/health?x=1".into(), Route::Health),
            ("POST", "/health".into(), Route::WrongMethod("GET")),
            ("POST", "/exec".into(), Route::Exec),
            ("GET", "/exec".into(), Route::WrongMethod("POST")),
            ("PUT", "/exec".into(), Route::WrongMethod("POST")),
            ("GET", format!("/status/{ID}"), Route::Status(id())),
            ("GET", format!("/tail/{ID}"), Route::Tail(id())),
            ("GET", format!("/wait/{ID}?until=5"), Route::Wait(id())),
            ("POST", format!("/kill/{ID}?signal=KILL"), Route::Kill(id())),
            ("GET", format!("/kill/{ID}"), Route::WrongMethod("POST")),
            ("POST", format!("/status/{ID}"), Route::WrongMethod("GET")),
            ("DELETE", "/wait/x".into(), Route::WrongMethod("GET")),
            ("GET", "/status/01j9".into(), Route::Status("01j9".into())),
            ("GET", "/status/%30%31".into(), Route::Status("01".into())),
            // The 0.1.18 routes know no names.
            ("GET", "/status/@web".into(), Route::NoSuchJob("@web".into())),
            ("GET", "/".into(), Route::Index),
            ("POST", "/".into(), Route::WrongMethod("GET")),
            ("GET", "/openapi.json".into(), Route::OpenApi),
            ("GET", "/v1/openapi.json".into(), Route::OpenApi),
            ("GET", "/v1/health".into(), Route::Health),
            ("GET", "/v1/jobs".into(), Route::List),
            ("GET", "/v1/jobs?tag=a&tag=b".into(), Route::List),
            ("POST", "/v1/jobs".into(), Route::Create),
            ("DELETE", "/v1/jobs".into(), Route::WrongMethod("GET, POST")),
            ("GET", format!("/v1/jobs/{ID}"), Route::Job(id())),
            ("DELETE", format!("/v1/jobs/{ID}?dry_run=true"), Route::Delete(id())),
            ("PUT", format!("/v1/jobs/{ID}"), Route::WrongMethod("GET, DELETE")),
            ("POST", format!("/v1/jobs/{ID}/start"), Route::Start(id())),
            ("POST", format!("/v1/jobs/{ID}/kill"), Route::JobKill(id())),
            ("GET", format!("/v1/jobs/{ID}/wait"), Route::JobWait(id())),
            ("GET", format!("/v1/jobs/{ID}/tail"), Route::JobTail(id())),
            ("GET", format!("/v1/jobs/{ID}/output"), Route::Output(id())),
            ("PUT", format!("/v1/jobs/{ID}/tags"), Route::Tags(id())),
            ("PATCH", format!("/v1/jobs/{ID}/notify"), Route::Notify(id())),
            ("GET", format!("/v1/jobs/{ID}/start"), Route::WrongMethod("POST")),
            ("POST", format!("/v1/jobs/{ID}/tags"), Route::WrongMethod("PUT")),
            ("GET", "/v1/jobs/@web".into(), Route::Job("@web".into())),
            ("GET", "/v1/jobs/%40web.1/tail".into(), Route::JobTail("@web.1".into())),
            ("GET", "/v1/jobs/01j9/wait".into(), Route::JobWait("01j9".into())),
            ("GET", "/v1/jobs/@".into(), Route::NoSuchJob("@".into())),
            ("GET", "/v1/jobs/@a%2Fb".into(), Route::NoSuchJob("@a/b".into())),
            ("GET", "/v1/jobs/".into(), Route::NoSuchJob(String::new())),
            ("GET", "/v1/wait?job=a&job=b".into(), Route::WaitMany),
            ("POST", "/v1/gc".into(), Route::Gc),
            ("GET", "/v1/gc".into(), Route::WrongMethod("POST")),
            ("GET", format!("/v1/jobs/{ID}/nope"), Route::NotFound),
            ("GET", format!("/v1/jobs/{ID}/tail/x"), Route::NotFound),
            ("GET", "/v1".into(), Route::NotFound),
            ("GET", "/v1/".into(), Route::NotFound),
            ("GET", "/v1/status/x".into(), Route::NotFound),
            ("GET", "".into(), Route::NotFound),
            ("GET", "/status".into(), Route::NotFound),
            ("GET", "/nope".into(), Route::NotFound),
            ("GET", "/nope/x".into(), Route::NotFound),
            ("GET", "/health/".into(), Route::NotFound),
            ("GET", "//status/x".into(), Route::NotFound),
            ("GET", "/STATUS/x".into(), Route::NotFound),
        ];
        for (method, target, expected) in cases {
            assert_eq!(route(method, &target), expected, "{method} {target}");
        }
    }

    #[test]
    fn traversal_never_reaches_a_handler() {
        let attempts = [
            "/status/",
            "/status/..",
            "/status/.",
            "/status/../x",
            "/status/..%2F..%2Fetc",
            "/status/%2e%2e",
            "/status/%2E%2E%2Fjobs",
            "/status/%2Fetc%2Fpasswd",
            "/status//etc/passwd",
            "/status/a%00b",
            "/status/%00",
            "/status/a/b",
            "/status/%",
            "/status/%zz",
            "/status/%ff",
            "/status/01J9ZK3M8E5PQRSTVWYZ12ABCDE",
            "/status/a%20b",
            "/status/%C3%A9",
            "/v1/jobs/..",
            "/v1/jobs/%2e%2e",
            "/v1/jobs/..%2F..%2Fetc",
            "/v1/jobs/%2Fetc%2Fpasswd/tail",
            "/v1/jobs/@%2e%2e%2fx",
            "/v1/jobs/%40..%2Fx",
            "/v1/jobs/@a%00",
            "/v1/jobs/%/start",
        ];
        for target in attempts {
            let method = if target.ends_with("/start") { "POST" } else { "GET" };
            assert!(matches!(route(method, target), Route::NoSuchJob(_)), "{target}: {:?}", route(method, target));
        }
        for target in [format!("/tail/{}", "A".repeat(5000)), format!("/v1/jobs/@{}", "a".repeat(65))] {
            assert!(matches!(route("GET", &target), Route::NoSuchJob(_)));
        }
    }

    /// Fuzz cases: a few thousand in the normal suite, many under `AGENT_EXEC_SOAK`.
    fn fuzz_config() -> proptest::prelude::ProptestConfig {
        let cases = if std::env::var_os("AGENT_EXEC_SOAK").is_some() { 200_000 } else { 2000 };
        proptest::prelude::ProptestConfig { cases, ..proptest::prelude::ProptestConfig::default() }
    }

    /// Request targets built from the route words, escapes and arbitrary text.
    fn target() -> impl proptest::prelude::Strategy<Value = String> {
        use proptest::prelude::*;
        let piece = prop_oneof![
            proptest::sample::select(vec![
                "/",
                "/health",
                "/exec",
                "/status/",
                "/tail/",
                "/wait/",
                "/kill/",
                "/v1/jobs/",
                "/v1/jobs",
                "/start",
                "/output",
                "/tags",
                "@",
                "%40",
                "..",
                ".",
                "%",
                "%2",
                "%2F",
                "%2f",
                "%2e",
                "%00",
                "%25",
                "%ff",
                "%C3%A9",
                "?",
                "&",
                "=",
                "+",
                "until=",
                "signal=",
                "tag=",
                "01J9ZK3M8E5PQ",
                "a",
                "Z",
                "9",
            ])
            .prop_map(str::to_string),
            ".{0,4}",
        ];
        proptest::collection::vec(piece, 0..10).prop_map(|pieces| pieces.concat())
    }

    /// The id a job route carries, if it is one.
    fn job_id(route: &Route) -> Option<&str> {
        match route {
            Route::Status(id)
            | Route::Tail(id)
            | Route::Wait(id)
            | Route::Kill(id)
            | Route::Job(id)
            | Route::Start(id)
            | Route::JobKill(id)
            | Route::JobWait(id)
            | Route::JobTail(id)
            | Route::Output(id)
            | Route::Tags(id)
            | Route::Notify(id)
            | Route::Delete(id) => Some(id),
            _ => None,
        }
    }

    proptest::proptest! {
        #![proptest_config(fuzz_config())]

        /// Fuzz: routing never panics, only hands out ids valid per docs/decisions.md OP-5 (or
        /// valid `@NAME`s), and is consistent with `percent_decode`; the query reader never
        /// panics and never yields a name its route does not take.
        #[test]
        fn routing_is_total_and_ids_are_valid(
            method in proptest::sample::select(vec!["GET", "POST", "PUT", "PATCH", "get", "", "DELETE"]),
            target in target(),
        ) {
            let routed = route(method, &target);
            if let Some(id) = job_id(&routed) {
                let name_ok = id.strip_prefix('@').is_some_and(|name| check_name(name).is_ok());
                proptest::prop_assert!(valid_id(id) || name_ok, "{:?} -> {:?}", target, id);
                proptest::prop_assert!(!id.contains(['/', '%', '\0']));
                // A name may be "..": it is only ever read as `.names/n-..`, never joined alone.
                proptest::prop_assert!(id != "." && id != "..", "{:?}", id);
            }
            if let Route::NoSuchJob(id) = &routed {
                proptest::prop_assert!(!valid_id(id), "{:?} -> {:?}", target, id);
            }
            if let Some(decoded) = percent_decode(&target) {
                // Decoding only shrinks, and plain text decodes to itself.
                proptest::prop_assert!(decoded.len() <= target.len());
                if !target.contains('%') {
                    proptest::prop_assert_eq!(decoded, target.clone());
                }
            }
            let params = routed.params();
            if let Ok(query) = Query::parse(&target, params) {
                for (name, value) in &query.pairs {
                    proptest::prop_assert!(params.iter().any(|p| p.name == name));
                    proptest::prop_assert!(value.len() <= target.len());
                }
            }
        }

        /// Fuzz: arbitrary (also non-ASCII) text never panics the decoder, and every
        /// byte value survives an encode/decode round trip.
        #[test]
        fn percent_decoding_round_trips(text in ".{0,40}", bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..40)) {
            let _ = percent_decode(&text);
            let encoded: String = bytes.iter().map(|b| format!("%{b:02X}")).collect();
            proptest::prop_assert_eq!(percent_decode(&encoded), String::from_utf8(bytes).ok());
        }
    }

    #[test]
    fn decoding() {
        assert_eq!(percent_decode("a%2Fb"), Some("a/b".into()));
        assert_eq!(percent_decode("a+b"), Some("a+b".into()));
        assert_eq!(percent_decode("%4"), None);
    }

    fn message(target: &str, allowed: &[Param]) -> String {
        Query::parse(target, allowed).expect_err("must be refused").message
    }

    #[test]
    fn queries_are_strict() {
        let wait = Route::Wait(ID.into());
        let query = Query::parse("/wait/x?until=250", wait.params()).expect("valid");
        assert_eq!(query.u64("until").ok(), Some(Some(250)));
        assert_eq!(Query::parse("/wait/x", wait.params()).expect("valid").u64("until").ok(), Some(None));
        let query = Query::parse("/wait/x?until", wait.params()).expect("valid");
        assert_eq!(query.text("until"), Some(""));
        let kill = Route::Kill(ID.into()).params();
        assert_eq!(Query::parse("/kill/x?signal=SIG%4BILL", kill).expect("valid").text("signal"), Some("SIGKILL"));
        assert_eq!(message("/kill/x?sig=INT", kill), "unknown query parameter 'sig' (expected: signal)");
        assert_eq!(message("/health?x=1", &[]), "unknown query parameter 'x' (expected: none)");
        assert_eq!(message("/wait/x?until=7&until=9", wait.params()), "query parameter 'until' given more than once");
        assert_eq!(
            message("/wait/x?until=%zz", wait.params()),
            "invalid query parameter 'until': bad percent-encoding"
        );
        assert!(message("/wait/x?%zz=1", wait.params()).contains("bad percent-encoding"));
        assert_eq!(message("/wait/x?until=1%00", wait.params()), "invalid query parameter 'until': NUL is not allowed");
        let list = Route::List.params();
        let query = Query::parse("/v1/jobs?tag=a&&tag=b.*&all=true&cwd=%2Ftmp+x&limit=3", list).expect("valid");
        assert_eq!(query.all("tag"), ["a", "b.*"]);
        assert_eq!(query.bool("all").ok(), Some(Some(true)));
        assert_eq!(query.text("cwd"), Some("/tmp x"));
        assert_eq!(query.u64("limit").ok(), Some(Some(3)));
        let query = Query::parse("/v1/jobs?all=1&limit=-1", list).expect("names are fine");
        assert_eq!(query.bool("all").expect_err("1").message, "invalid query parameter 'all': expected true or false");
        assert_eq!(
            query.u64("limit").expect_err("-1").message,
            "invalid query parameter 'limit': expected a non-negative integer"
        );
        assert_eq!(message("/v1/jobs?all=true&all=false", list), "query parameter 'all' given more than once");
        let tail = Route::JobTail(ID.into()).params();
        assert!(Query::parse("/v1/jobs/x/tail?tail_lines=1&max_bytes=2", tail).is_ok());
        assert_eq!(
            message("/tail/x?tail_lines=1", Route::Tail(ID.into()).params()),
            "unknown query parameter 'tail_lines' (expected: none)"
        );
    }
}
