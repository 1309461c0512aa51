//! The OpenAPI document against the real server (issue 16 item 2): it is served as JSON
//! at both paths, and every answer of a small real session (each operation of the
//! document at least once, successes and errors) validates against the document's
//! schema for that operation and status (JSON Schema 2020-12, OpenAPI 3.1's dialect),
//! with the declared content type and headers. tests/openapi/run_schemathesis.sh
//! (make test-openapi) drives the same document with generated requests.

mod common;
mod serve_support;

use std::collections::BTreeSet;
use std::time::Duration;

use serde_json::{Value, json};

use common::{Env, eventually};
use serve_support::{Reply, Server, request};

const TOKEN: &str = "openapi-test-token";

struct Session {
    _env: Env,
    server: Server,
    document: Value,
    /// `(METHOD, path template)` of every operation answered so far.
    exercised: BTreeSet<(String, String)>,
}

impl Session {
    fn start() -> Session {
        let env = Env::new().with_env("AGENT_EXEC_SERVE_TOKEN", TOKEN);
        let server = Server::start(&env, &["--max-wait-ms", "2000"]);
        let reply = dechunked(request(server.port, "GET", "/openapi.json", &[("Authorization", &bearer())], b""));
        assert_eq!(reply.status, 200, "{reply:?}");
        assert_eq!(reply.header("content-type"), Some("application/json"));
        let document = reply.json();
        let mut session = Session { _env: env, server, document, exercised: BTreeSet::new() };
        session.check("GET", "/openapi.json", &reply);
        session
    }

    /// Sends a request (with the token) and checks its answer against the document.
    fn call(&mut self, method: &str, template: &str, id: &str, query: &str, body: &str) -> Reply {
        let path = format!("{}{query}", template.replace("{id}", id));
        let reply =
            dechunked(request(self.server.port, method, &path, &[("Authorization", &bearer())], body.as_bytes()));
        self.check(method, template, &reply);
        reply
    }

    fn check(&mut self, method: &str, template: &str, reply: &Reply) {
        let operation = &self.document["paths"][template][method.to_ascii_lowercase()];
        assert!(operation.is_object(), "{method} {template} is not in the document");
        let mut response = operation["responses"][reply.status.to_string()].clone();
        assert!(response.is_object(), "{method} {template}: status {} is not documented: {reply:?}", reply.status);
        if let Some(Value::String(target)) = response.get("$ref") {
            response = self.resolve(target).clone();
        }
        for (name, header) in response["headers"].as_object().into_iter().flatten() {
            if header["required"] == true {
                assert!(reply.header(name).is_some(), "{method} {template}: no {name} header: {reply:?}");
            }
        }
        let content = response["content"].as_object().expect("content");
        let content_type = reply.header("content-type").unwrap_or_default();
        let media =
            content.get(content_type).unwrap_or_else(|| panic!("{method} {template}: {content_type} undeclared"));
        if content_type == "application/json" {
            let schema = json!({
                "$schema": "https://json-schema.org/draft/2020-12/schema",
                "components": self.document["components"],
                "allOf": [media["schema"]],
            });
            let validator = jsonschema::draft202012::new(&schema).expect("the schema compiles");
            let value = reply.json();
            let errors: Vec<String> =
                validator.iter_errors(&value).map(|e| format!("{e} at {}", e.instance_path())).collect();
            assert!(errors.is_empty(), "{method} {template} {}: {value}\n{}", reply.status, errors.join("\n"));
        }
        self.exercised.insert((method.to_string(), template.to_string()));
    }

    fn resolve(&self, target: &str) -> &Value {
        self.document.pointer(target.strip_prefix('#').expect("local")).unwrap_or_else(|| panic!("dangling {target}"))
    }

    /// A job that `sh` runs until killed.
    fn sleeper(&mut self) -> String {
        let reply =
            self.call("POST", "/v1/jobs", "", "", r#"{"command":["sleep","60"],"start":true,"snapshot_after_ms":0}"#);
        assert_eq!(reply.status, 201, "{reply:?}");
        reply.json()["job_id"].as_str().expect("job_id").to_string()
    }

    fn ended(&self, id: &str) -> bool {
        let reply = request(self.server.port, "GET", &format!("/v1/jobs/{id}"), &[("Authorization", &bearer())], b"");
        !matches!(reply.json()["state"].as_str(), Some("running" | "created"))
    }
}

/// The body of a chunked answer (the document is large enough for tiny_http to chunk
/// it), decoded in place; `serve_support` reads bodies as they come.
fn dechunked(mut reply: Reply) -> Reply {
    if reply.header("transfer-encoding") == Some("chunked") {
        let mut body = String::new();
        let mut rest = reply.body.as_str();
        while let Some((size, after)) = rest.split_once("\r\n") {
            let size = usize::from_str_radix(size.trim(), 16).expect("chunk size");
            if size == 0 {
                break;
            }
            body.push_str(&after[..size]);
            rest = &after[size + 2..];
        }
        reply.body = body;
    }
    reply
}

fn bearer() -> String {
    format!("Bearer {TOKEN}")
}

#[test]
fn every_operation_answers_as_documented() {
    let mut s = Session::start();
    assert_eq!(s.document["openapi"], "3.1.0");
    s.call("GET", "/v1/openapi.json", "", "", "");
    let index = s.call("GET", "/", "", "", "").json();
    assert_eq!((index["type"].as_str(), index["openapi"].as_str()), (Some("index"), Some("/openapi.json")));
    s.call("GET", "/health", "", "", "");
    s.call("GET", "/v1/health", "", "", "");

    // Old routes.
    let exec = s.call("POST", "/exec", "", "", r#"{"command":["echo","hi"],"wait":true,"until_ms":5000}"#);
    let old = exec.json()["job_id"].as_str().expect("job_id").to_string();
    s.call("GET", "/status/{id}", &old, "", "");
    s.call("GET", "/tail/{id}", &old, "", "");
    s.call("GET", "/wait/{id}", &old, "?until=100", "");
    s.call("POST", "/kill/{id}", &old, "", "");
    s.call("GET", "/status/{id}", "0NOSUCHJOB", "", "").assert_error(404, "job_not_found");
    s.call("POST", "/exec", "", "", r#"{"command":["true"],"tags":["x"]}"#).assert_error(400, "invalid_request");

    // v1: create, start, look, change, end, delete.
    let created = s.call("POST", "/v1/jobs", "", "", r#"{"command":"echo made","name":"made","tags":["t.a"]}"#);
    assert_eq!(created.status, 201);
    let id = created.json()["job_id"].as_str().expect("job_id").to_string();
    assert_eq!(created.header("location"), Some(format!("/v1/jobs/{id}").as_str()));
    s.call("POST", "/v1/jobs", "", "", r#"{"command":["true"],"name":"made"}"#);
    s.call("POST", "/v1/jobs/{id}/start", "@made", "", r#"{"wait":true,"until_ms":5000}"#);
    s.call("GET", "/v1/jobs/{id}", &id, "", "");
    s.call("GET", "/v1/jobs/{id}/tail", "%40made", "?tail_lines=1", "");
    s.call("GET", "/v1/jobs", "", "?tag=t.*&state=exited", "");
    s.call("GET", "/v1/jobs", "", "?sig=1", "").assert_error(400, "invalid_request");
    s.call("PUT", "/v1/jobs/{id}/tags", &id, "", r#"{"tags":["t.b"]}"#);
    s.call("PATCH", "/v1/jobs/{id}/notify", &id, "", r#"{"command":"true"}"#);
    s.call("POST", "/v1/jobs/{id}/start", &id, "", "").assert_error(400, "invalid_state");
    s.call("DELETE", "/v1/jobs/{id}", &id, "?dry_run=true", "");
    s.call("DELETE", "/v1/jobs/{id}", &id, "", "");
    s.call("GET", "/v1/jobs/{id}", &id, "", "").assert_error(404, "job_not_found");
    s.call("POST", "/v1/gc", "", "", r#"{"older_than":"0s","dry_run":true}"#);

    // A running job: wait (bounded), its output, a readiness wait, kill.
    let sleeper = s.sleeper();
    s.call("GET", "/v1/jobs/{id}/wait", &sleeper, "?until_ms=50", "");
    s.call("GET", "/v1/wait", "", &format!("?job={sleeper}&any=true&until_ms=50"), "");
    s.call("GET", "/v1/jobs/{id}/output", &sleeper, "?offset=0", "");
    s.call("POST", "/v1/jobs/{id}/kill", &sleeper, "", r#"{"signal":"KILL"}"#);
    assert!(eventually(Duration::from_secs(10), || s.ended(&sleeper)));

    // Refused before routing (tiny_http's bounds): 413 for a body declared over 1 MiB.
    let head =
        format!("POST /v1/gc HTTP/1.1\r\nHost: x\r\nContent-Length: 2000000\r\nAuthorization: {}\r\n\r\n{{", bearer());
    let reply = serve_support::raw_request_then_eof(s.server.port, head.as_bytes()).expect("an answer");
    s.check("POST", "/v1/gc", &reply);
    reply.assert_error(413, "invalid_request");

    // Without the token: 401 where the document says so.
    let reply = request(s.server.port, "GET", "/v1/jobs", &[], b"");
    s.check("GET", "/v1/jobs", &reply);
    reply.assert_error(401, "unauthorized");

    let documented: BTreeSet<(String, String)> = s.document["paths"]
        .as_object()
        .expect("paths")
        .iter()
        .flat_map(|(path, item)| item.as_object().expect("item").keys().map(|m| (m.to_ascii_uppercase(), path.clone())))
        .collect();
    let missed: Vec<_> = documented.difference(&s.exercised).collect();
    assert!(missed.is_empty(), "operations this session did not exercise: {missed:?}");
}

/// The document tracks the server's options: the bound of waits, and the token rule.
#[test]
fn the_document_reflects_the_servers_options() {
    let env = Env::new();
    let server = Server::start(&env, &["--max-wait-ms", "4321"]);
    let reply = dechunked(server.get("/v1/openapi.json"));
    assert_eq!(reply.status, 200);
    let text = reply.body.clone();
    let document = reply.json();
    assert!(text.contains("at most 4321"), "the bound is not in the document");
    assert!(document.get("security").is_none(), "no token, no security requirement");
    assert!(document["paths"]["/v1/jobs"]["get"]["responses"].get("401").is_none());
    assert_eq!(document["info"]["version"], server.get("/").json()["version"]);
}
