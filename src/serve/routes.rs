//! Routing: a pure function from method and raw request target to a `Route`.
//!
//! Nothing here touches the filesystem. Job ids are percent-decoded and checked against
//! docs/decisions.md OP-5 (`jobstore::valid_id`) before a handler ever sees them, so a traversal
//! attempt (`..`, `%2F`, `%2e%2e`, absolute paths, NUL, overlong ids) can only ever become
//! `Route::NoSuchJob`, never a path. `Root::lookup` checks again; two locks on one door.

use crate::jobstore::valid_id;

/// The endpoints of docs/compatibility.md §11.1, with their job id already decoded and validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    Health,
    Exec,
    Status(String),
    Tail(String),
    Wait(String),
    Kill(String),
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

/// Maps a request to its route. `target` is the request target as sent (path and
/// optional query); the query never influences routing.
pub fn route(method: &str, target: &str) -> Route {
    let path = target.split_once('?').map_or(target, |(path, _)| path);
    let (allowed, endpoint): (&'static str, Option<MakeRoute>) = match path {
        "/health" => (if method == "GET" { return Route::Health } else { "GET" }, None),
        "/exec" => (if method == "POST" { return Route::Exec } else { "POST" }, None),
        _ => match path.strip_prefix('/').and_then(|rest| rest.split_once('/')) {
            Some(("status", _)) => ("GET", Some(Route::Status)),
            Some(("tail", _)) => ("GET", Some(Route::Tail)),
            Some(("wait", _)) => ("GET", Some(Route::Wait)),
            Some(("kill", _)) => ("POST", Some(Route::Kill)),
            _ => return Route::NotFound,
        },
    };
    if method != allowed {
        return Route::WrongMethod(allowed);
    }
    let Some(make) = endpoint else { return Route::NotFound };
    // Everything after the endpoint's slash is the id, slashes included: `/status/../x`
    // is a job lookup for "../x" (rejected below), not some other route.
    let raw_id = path.split_once('/').and_then(|(_, rest)| rest.split_once('/')).map_or("", |(_, id)| id);
    match percent_decode(raw_id) {
        Some(id) if valid_id(&id) => make(id),
        Some(id) => Route::NoSuchJob(id),
        None => Route::NoSuchJob(String::from_utf8_lossy(raw_id.as_bytes()).into_owned()),
    }
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

/// The decoded value of the first `name=value` pair in the query. A value that is
/// present but does not decode is `Some(Err(()))`, so that the caller rejects it instead
/// of silently using its default.
pub fn query_param(target: &str, name: &str) -> Option<Result<String, ()>> {
    let (_, query) = target.split_once('?')?;
    query.split('&').find_map(|pair| {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        (key == name).then(|| percent_decode(value).ok_or(()))
    })
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
            ("GET", "/".into(), Route::NotFound),
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
        ];
        for target in attempts {
            assert!(matches!(route("GET", target), Route::NoSuchJob(_)), "{target}: {:?}", route("GET", target));
        }
        let overlong = format!("/tail/{}", "A".repeat(5000));
        assert!(matches!(route("GET", &overlong), Route::NoSuchJob(_)));
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
                "until=",
                "signal=",
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

    proptest::proptest! {
        #![proptest_config(fuzz_config())]

        /// Fuzz: routing never panics, only hands out ids valid per docs/decisions.md OP-5, and is
        /// consistent with `percent_decode`.
        #[test]
        fn routing_is_total_and_ids_are_valid(
            method in proptest::sample::select(vec!["GET", "POST", "PUT", "get", "", "DELETE"]),
            target in target(),
        ) {
            match route(method, &target) {
                Route::Status(id) | Route::Tail(id) | Route::Wait(id) | Route::Kill(id) => {
                    proptest::prop_assert!(valid_id(&id), "{:?} -> {:?}", target, id);
                    proptest::prop_assert!(!id.contains(['/', '.', '%', '\0']));
                }
                Route::NoSuchJob(id) => proptest::prop_assert!(!valid_id(&id), "{:?} -> {:?}", target, id),
                Route::Health | Route::Exec | Route::NotFound | Route::WrongMethod(_) => {}
            }
            if let Some(decoded) = percent_decode(&target) {
                // Decoding only shrinks, and plain text decodes to itself.
                proptest::prop_assert!(decoded.len() <= target.len());
                if !target.contains('%') {
                    proptest::prop_assert_eq!(decoded, target.clone());
                }
            }
            for name in ["until", "signal", ""] {
                if let Some(Ok(value)) = query_param(&target, name) {
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
    fn decoding_and_queries() {
        assert_eq!(percent_decode("a%2Fb"), Some("a/b".into()));
        assert_eq!(percent_decode("a+b"), Some("a+b".into()));
        assert_eq!(percent_decode("%4"), None);
        assert_eq!(query_param("/wait/x?until=250", "until"), Some(Ok("250".into())));
        assert_eq!(query_param("/wait/x?a=1&until=7&until=9", "until"), Some(Ok("7".into())));
        assert_eq!(query_param("/wait/x?until", "until"), Some(Ok(String::new())));
        assert_eq!(query_param("/wait/x?until=%zz", "until"), Some(Err(())));
        assert_eq!(query_param("/wait/x", "until"), None);
        assert_eq!(query_param("/kill/x?signal=SIG%4BILL", "signal"), Some(Ok("SIGKILL".into())));
    }
}
