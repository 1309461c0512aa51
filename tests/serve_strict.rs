//! Strict input over HTTP (issue 16 item 3): an unknown or repeated query parameter, an
//! unknown body field, a wrong type, a value out of range or a body that is not an
//! object is a 400 `invalid_request` naming the offender, on every route, old and new,
//! and nothing happens (no job created, killed or changed).

mod common;
mod serve_support;

use common::Env;
use serve_support::{Reply, Server, request};

/// Asserts a 400 `invalid_request` whose message names `offender`.
fn refused(reply: &Reply, offender: &str) {
    reply.assert_error(400, "invalid_request");
    let message = reply.json()["error"]["message"].as_str().unwrap_or_default().to_string();
    assert!(message.contains(&format!("'{offender}'")) || message.contains(&format!("`{offender}`")), "{message}");
}

/// The issue's first reproduction: `?sig=INT` sent TERM and answered 200.
#[test]
fn kill_with_a_misspelt_parameter_kills_nothing() {
    let env = Env::new();
    let server = Server::start(&env, &[]);
    let id = server.exec(r#"{"command":["sleep","60"]}"#);
    let reply = server.post(&format!("/kill/{id}?sig=INT"), "");
    refused(&reply, "sig");
    assert!(reply.body.contains("unknown query parameter 'sig' (expected: signal)"), "{reply:?}");
    assert_eq!(server.get(&format!("/status/{id}")).json()["state"], "running");
    // The documented parameter still works.
    let killed = server.post(&format!("/kill/{id}?signal=INT"), "").json();
    assert_eq!(killed["signal"], "INT", "{killed}");
}

/// The issue's second reproduction: the old `/tail` takes no parameters, and
/// `?tail_lines=1` silently returned 50 lines.
#[test]
fn old_tail_refuses_parameters() {
    let env = Env::new();
    let server = Server::start(&env, &[]);
    let id = server.exec(r#"{"command":["seq","100"],"wait":true}"#);
    refused(&server.get(&format!("/tail/{id}?tail_lines=1")), "tail_lines");
    assert_eq!(server.get(&format!("/tail/{id}")).json()["stdout_tail"].as_str().map(|t| t.lines().count()), Some(50));
}

/// The issue's third reproduction: `POST /exec` with `"tags"` made an untagged job.
#[test]
fn exec_refuses_unknown_fields_and_creates_nothing() {
    let env = Env::new();
    let server = Server::start(&env, &[]);
    refused(&server.post("/exec", r#"{"command":["true"],"tags":["ci"]}"#), "tags");
    assert!(std::fs::read_dir(&env.root).map_or(true, |d| d.count() == 0), "a job was created");
}

#[test]
fn health_refuses_parameters() {
    let env = Env::new();
    let server = Server::start(&env, &[]);
    refused(&server.get("/health?x=1"), "x");
    refused(&server.get("/v1/health?verbose=true"), "verbose");
    assert_eq!(server.get("/health").status, 200);
}

#[test]
fn every_route_refuses_unknown_repeated_and_undecodable_parameters() {
    let env = Env::new();
    let server = Server::start(&env, &[]);
    let id = server.exec(r#"{"command":["true"],"wait":true}"#);
    let routes = [
        ("GET", "/health".to_string()),
        ("POST", "/exec".to_string()),
        ("GET", format!("/status/{id}")),
        ("GET", format!("/tail/{id}")),
        ("GET", format!("/wait/{id}")),
        ("POST", format!("/kill/{id}")),
        ("GET", "/v1/health".to_string()),
        ("GET", "/v1/jobs".to_string()),
        ("POST", "/v1/jobs".to_string()),
        ("GET", format!("/v1/jobs/{id}")),
        ("DELETE", format!("/v1/jobs/{id}")),
        ("POST", format!("/v1/jobs/{id}/start")),
        ("POST", format!("/v1/jobs/{id}/kill")),
        ("GET", format!("/v1/jobs/{id}/tail")),
        ("PUT", format!("/v1/jobs/{id}/tags")),
        ("PATCH", format!("/v1/jobs/{id}/notify")),
        ("POST", "/v1/gc".to_string()),
    ];
    for (method, path) in &routes {
        let reply = request(server.port, method, &format!("{path}?bogus=1"), &[], b"");
        refused(&reply, "bogus");
    }
    // Repeated where not repeatable, and values that do not decode.
    refused(&server.get(&format!("/wait/{id}?until=1&until=2")), "until");
    refused(&server.get(&format!("/v1/jobs/{id}/tail?tail_lines=1&tail_lines=2")), "tail_lines");
    refused(&server.get("/v1/jobs?all=true&all=true"), "all");
    refused(&server.get(&format!("/v1/jobs/{id}/tail?max_bytes=%zz")), "max_bytes");
    // Every route still answers and the job is untouched.
    assert!(env.job_dir(&id).exists());
    assert_eq!(server.get(&format!("/v1/jobs/{id}")).json()["state"], "exited");
}

#[test]
fn query_values_are_typed() {
    let env = Env::new();
    let server = Server::start(&env, &[]);
    let id = server.exec(r#"{"command":["true"],"wait":true}"#);
    for (path, offender) in [
        (format!("/v1/jobs/{id}/tail?tail_lines=-1"), "tail_lines"),
        (format!("/v1/jobs/{id}/tail?max_bytes=lots"), "max_bytes"),
        (format!("/v1/jobs/{id}/tail?tail_lines=99999999999999999999999"), "tail_lines"),
        ("/v1/jobs?all=1".to_string(), "all"),
        ("/v1/jobs?all=TRUE".to_string(), "all"),
        ("/v1/jobs?limit=ten".to_string(), "limit"),
        ("/v1/jobs?state=done".to_string(), "state"),
        ("/v1/jobs?tag=a..b".to_string(), "tag"),
        ("/v1/jobs?name=a%20b".to_string(), "name"),
        ("/v1/jobs?cwd=a%00b".to_string(), "cwd"),
    ] {
        refused(&server.get(&path), offender);
    }
    refused(&request(server.port, "DELETE", &format!("/v1/jobs/{id}?dry_run=yes"), &[], b""), "dry_run");
    assert!(env.job_dir(&id).exists(), "a refused delete deleted");
    refused(&server.get("/v1/jobs?cwd=/tmp&all=true"), "cwd");
}

#[test]
fn every_body_refuses_unknown_fields_wrong_types_and_non_objects() {
    let env = Env::new();
    let server = Server::start(&env, &[]);
    let created = server.post("/v1/jobs", r#"{"command":["true"]}"#).json();
    let id = created["job_id"].as_str().expect("job_id").to_string();
    let routes = [
        ("POST", "/v1/jobs".to_string()),
        ("POST", format!("/v1/jobs/{id}/start")),
        ("POST", format!("/v1/jobs/{id}/kill")),
        ("PUT", format!("/v1/jobs/{id}/tags")),
        ("PATCH", format!("/v1/jobs/{id}/notify")),
        ("POST", "/v1/gc".to_string()),
    ];
    for (method, path) in &routes {
        let send = |body: &str| request(server.port, method, path, &[], body.as_bytes());
        refused(&send(r#"{"command":["true"],"bogus":1}"#), "bogus");
        for body in ["[]", "3", "\"x\"", "null", "true"] {
            let reply = send(body);
            reply.assert_error(400, "invalid_request");
            assert!(reply.body.contains("must be a JSON object"), "{method} {path} {body}: {reply:?}");
        }
        let reply = send("{");
        reply.assert_error(400, "invalid_request");
        assert!(reply.body.contains("invalid JSON"), "{reply:?}");
    }
    // Wrong types and values out of range, each named.
    for (path, body, offender) in [
        ("/v1/jobs", r#"{"command":["true"],"wait":"yes"}"#, "wait"),
        ("/v1/jobs", r#"{"command":5}"#, "command"),
        ("/v1/jobs", r#"{"command":[]}"#, "command"),
        ("/v1/jobs", r#"{"cwd":"/"}"#, "command"),
        ("/v1/jobs", r#"{"command":"true","timeout_ms":-1}"#, "timeout_ms"),
        ("/v1/jobs", r#"{"command":"true","timeout_ms":1.5}"#, "timeout_ms"),
        ("/v1/jobs", r#"{"command":"true","start":true,"for_port":70000}"#, "for_port"),
        ("/v1/jobs", r#"{"command":"true","start":true,"for_port":0}"#, "for_port"),
        ("/v1/jobs", r#"{"command":"true","env":{"A":1}}"#, "env"),
        ("/v1/jobs", r#"{"command":"true","env":{"A=B":"1"}}"#, "env"),
        ("/v1/jobs", r#"{"command":"true","tags":["bad tag"]}"#, "tags"),
        ("/v1/jobs", r#"{"command":"true","name":"no/slash"}"#, "name"),
        ("/v1/jobs", r#"{"command":"true","output_stream":"both"}"#, "output_stream"),
        ("/v1/jobs", r#"{"command":"true","output_pattern":"(","output_match_type":"regex"}"#, "output_pattern"),
        // Valid, but too costly to match (crate::pattern::SIZE_LIMIT).
        (
            "/v1/jobs",
            r#"{"command":"true","output_pattern":"([a-z]{100}){40}Z","output_match_type":"regex"}"#,
            "output_pattern",
        ),
        (
            "/v1/jobs",
            r#"{"command":"true","start":true,"for_output":"([a-z]{100}){40}Z","output_match_type":"regex"}"#,
            "for_output",
        ),
        ("/v1/jobs", r#"{"command":"true","if_running":"reuse","start":true}"#, "if_running"),
        ("/v1/jobs", r#"{"command":"true","wait":true}"#, "wait"),
        ("/v1/jobs", r#"{"command":"true","start":true,"until_ms":5}"#, "until_ms"),
        ("/v1/jobs", r#"{"command":"true","start":true,"for_host":"x"}"#, "for_host"),
        ("/v1/jobs", r#"{"command":"true","forever":true}"#, "forever"),
        ("/v1/jobs", r#"{"command":"true","secret_env":["PATH"]}"#, "secret_env"),
        ("/v1/jobs", r#"{"command":"true","cwd":"a\u0000b"}"#, "cwd"),
        ("/v1/jobs", r#"{"command":["true"],"env":{"A\u0000":"1"}}"#, "env"),
        ("/v1/jobs", r#"{"command":"true","start":true,"for_host":"a\u0000","for_port":1}"#, "for_host"),
        ("/v1/gc", r#"{"older_than":"soon"}"#, "older_than"),
        ("/v1/gc", r#"{"max_bytes":"10X"}"#, "max_bytes"),
        ("/v1/gc", r#"{"keep":-1}"#, "keep"),
    ] {
        refused(&server.post(path, body), offender);
    }
    refused(&server.post(&format!("/v1/jobs/{id}/kill"), r#"{"signal":"NOPE"}"#), "signal");
    refused(&server.post(&format!("/v1/jobs/{id}/kill"), r#"{"sig":"INT"}"#), "sig");
    refused(&server.post(&format!("/v1/jobs/{id}/start"), r#"{"wait":1}"#), "wait");
    refused(&server.post(&format!("/v1/jobs/{id}/start"), r#"{"until_ms":5}"#), "until_ms");
    let put = |body: &str| request(server.port, "PUT", &format!("/v1/jobs/{id}/tags"), &[], body.as_bytes());
    refused(&put(r#"{"tags":"a"}"#), "tags");
    refused(&put(r#"{"tags":["a b"]}"#), "tags");
    refused(&put("{}"), "tags");
    let patch = |body: &str| request(server.port, "PATCH", &format!("/v1/jobs/{id}/notify"), &[], body.as_bytes());
    refused(&patch(r#"{"output_match_type":"glob"}"#), "output_match_type");
    // Nothing was created beyond the first job, which is still as it was.
    assert_eq!(std::fs::read_dir(&env.root).expect("root").filter(|e| e.is_ok()).count(), 1);
    let status = server.get(&format!("/v1/jobs/{id}")).json();
    assert_eq!(status["state"], "created", "{status}");
    assert_eq!(env.read_json(&id, "meta.json")["tags"], serde_json::json!([]));
}

/// A key named twice meant two things: `POST /v1/jobs` with `"wait"` twice was taken for
/// a short request (the lane check refused the repeat) and then run as a wait (the body
/// parser kept the last value), holding the only short slot for as long as the job ran.
/// Now the body is refused, on the old `/exec` too, and nothing is created.
#[test]
fn a_key_named_twice_is_refused_and_blocks_nothing() {
    let env = Env::new();
    let server = Server::start(&env, &["--max-connections", "1"]);
    let twice = r#"{"command":["sleep","30"],"start":true,"wait":true,"wait":true}"#;
    let started = std::time::Instant::now();
    let reply = server.post("/v1/jobs", twice);
    reply.assert_error(400, "invalid_request");
    assert!(reply.body.contains("duplicate key"), "{reply:?}");
    let reply = server.post("/exec", r#"{"command":["sleep","30"],"wait":true,"wait":false}"#);
    reply.assert_error(400, "invalid_request");
    let reply = server.post("/v1/jobs", r#"{"command":["true"],"command":["false"]}"#);
    reply.assert_error(400, "invalid_request");
    let nested = server.post("/v1/jobs", r#"{"command":["true"],"env":{"A":"1","A":"2"}}"#);
    nested.assert_error(400, "invalid_request");
    // Nothing was created, and the short lane is free (the old code answered the first
    // request only when its job ended, 30 s later).
    assert!(started.elapsed() < std::time::Duration::from_secs(20), "{:?}", started.elapsed());
    assert_eq!(server.get("/v1/jobs?all=true").json()["jobs"], serde_json::json!([]));
}

/// The same disagreement through a number: `"snapshot_after_ms":0.0` failed the lane
/// check's integer field (so the request was classed short), and the handler, which takes
/// a whole float for an integer, then waited for the job, holding the only short slot.
#[test]
fn a_whole_float_in_a_waiting_field_waits_in_the_long_lane() {
    let env = Env::new();
    let server = Server::start(&env, &["--max-connections", "1"]);
    let port = server.port;
    let body = r#"{"command":["sleep","30"],"start":true,"wait":true,"snapshot_after_ms":0.0}"#;
    let waiting = std::thread::spawn(move || request(port, "POST", "/v1/jobs", &[], body.as_bytes()));
    // Once the job exists, the wait is in its slot; a short request must still be served
    // while it waits (old: only when the 30 s job ended).
    let listed = || server.get("/v1/jobs?all=true").json()["jobs"].as_array().is_some_and(|jobs| jobs.len() == 1);
    assert!(common::eventually(std::time::Duration::from_secs(20), listed), "the job never showed up");
    assert!(!waiting.is_finished(), "the wait ended before the short requests were served");
    let id = server.get("/v1/jobs?all=true").json()["jobs"][0]["job_id"].as_str().expect("id").to_string();
    env.ok(&["kill", "--signal", "KILL", &id]);
    let reply = waiting.join().expect("the waiting request");
    assert_eq!((reply.status, reply.json()["state"].as_str()), (201, Some("killed")), "{reply:?}");
}
