//! `agent-exec serve` over real HTTP: every endpoint's success and error shapes, id
//! validation (traversal attempts), request bodies, the token, binding. Resource bounds
//! (cap, idle clients, shutdown, zombies) are in tests/serve_limits.rs.

mod common;
mod serve_support;

use std::time::Duration;

use common::{BIN, Env, eventually, single_json};
use serve_support::{Server, request};

#[test]
fn health_and_exec_with_wait() {
    let env = Env::new();
    let server = Server::start(&env, &[]);
    let health = server.get("/health");
    assert_eq!(health.status, 200);
    assert_eq!(health.body, r#"{"ok":true,"schema_version":"0.1","type":"health"}"#);
    assert_eq!(health.header("content-type"), Some("application/json"));

    let reply = server.post("/exec", r#"{"command":["sh","-c","echo hi; echo oops >&2; exit 3"],"wait":true}"#);
    assert_eq!(reply.status, 200, "{reply:?}");
    let value = reply.json();
    assert_eq!(value["type"], "run");
    assert_eq!(value["state"], "exited");
    assert_eq!(value["exit_code"], 3);
    assert_eq!(value["tags"], serde_json::json!([]));
    assert_eq!(value["final_snapshot"]["stdout_tail"], "hi");
    assert_eq!(value["final_snapshot"]["stderr_tail"], "oops");
    assert!(value.get("env_vars").is_none() && value.get("snapshot").is_none());
    // Keys in lexicographic order (docs/compatibility.md §2.2).
    let position = |key: &str| reply.body.find(&format!("\"{key}\":")).expect(key);
    assert!(position("elapsed_ms") < position("job_id") && position("job_id") < position("ok"));
    assert!(position("ok") < position("schema_version") && position("schema_version") < position("type"));
}

#[test]
fn exec_options_reach_the_job() {
    let env = Env::new();
    let server = Server::start(&env, &[]);
    let cwd = env.dir.path().join("elsewhere");
    std::fs::create_dir_all(&cwd).expect("mkdir");
    let body = serde_json::json!({
        "command": ["sh", "-c", "echo $GREETING; pwd"],
        "env": {"GREETING": "hello"},
        "cwd": cwd,
        "wait": true,
        "until_ms": 20000
    });
    let value = server.post("/exec", &body.to_string()).json();
    let real_cwd = std::fs::canonicalize(&cwd).expect("canonicalize");
    assert_eq!(value["final_snapshot"]["stdout_tail"], format!("hello\n{}", real_cwd.display()));
    let id = value["job_id"].as_str().expect("id");
    let meta = env.read_json(id, "meta.json");
    assert_eq!(meta["env_vars"], serde_json::json!(["GREETING=hello"]));

    // Without `wait` the answer is immediate and says running; a timeout kills the job.
    let value = server.post("/exec", r#"{"command":["sleep","30"],"timeout_ms":200}"#).json();
    assert_eq!(value["state"], "running");
    assert_eq!(value["waited_ms"], 0);
    let id = value["job_id"].as_str().expect("id").to_string();
    let waited = server.get(&format!("/wait/{id}?until=20000")).json();
    assert_eq!(waited["state"], "killed", "{waited}");
}

#[test]
fn exec_honours_config_toml() {
    let env = Env::new();
    common::write_file(&env.home.join(".config/agent-exec/config.toml"), "[shell]\nunix = [\"sh\", \"-c\"]\n");
    let server = Server::start(&env, &[]);
    let id = server.exec(r#"{"command":["echo","configured"],"wait":true}"#);
    assert_eq!(env.read_json(&id, "meta.json")["shell_wrapper"], serde_json::json!(["sh", "-c"]));
}

#[test]
fn status_tail_wait_kill() {
    let env = Env::new();
    let server = Server::start(&env, &[]);
    let id = server.exec(r#"{"command":["sh","-c","echo started; exec sleep 30"]}"#);
    let prefix = &id[..20];

    let status = server.get(&format!("/status/{prefix}"));
    assert_eq!(status.status, 200, "{status:?}");
    let value = status.json();
    assert_eq!((value["type"].as_str(), value["state"].as_str()), (Some("status"), Some("running")));
    assert_eq!(value["job_id"], id.as_str(), "the resolved full id (docs/decisions.md OP-7)");
    // Lower case works too (docs/decisions.md OP-5: case-insensitive).
    assert_eq!(server.get(&format!("/status/{}", prefix.to_lowercase())).status, 200);

    assert!(
        eventually(Duration::from_secs(10), || server.get(&format!("/tail/{id}")).json()["stdout_tail"] == "started")
    );
    let tail = server.get(&format!("/tail/{prefix}")).json();
    assert_eq!(tail["type"], "tail");
    assert_eq!(tail["job_id"], id.as_str());
    assert_eq!(tail["encoding"], "utf-8-lossy");

    // The job runs until killed below, so an answer at all means `until` was honoured.
    let wait = server.get(&format!("/wait/{id}?until=300")).json();
    assert_eq!((wait["type"].as_str(), wait["state"].as_str()), (Some("wait"), Some("running")));

    let kill = server.post(&format!("/kill/{prefix}?signal=sigint"), "");
    assert_eq!(kill.status, 200, "{kill:?}");
    assert_eq!(
        kill.body,
        format!(
            r#"{{"delivered":true,"job_id":"{id}","ok":true,"schema_version":"0.1","signal":"INT","type":"kill"}}"#
        )
    );
    let ended = server.get(&format!("/wait/{id}?until=20000")).json();
    assert_eq!(ended["state"], "killed", "{ended}");
    // Killing a finished job is a success that changes nothing.
    assert_eq!(server.post(&format!("/kill/{id}"), "").json()["signal"], "TERM");
    server.post(&format!("/kill/{id}?signal=BOGUS"), "").assert_error(400, "invalid_request");
}

#[test]
fn id_endpoint_errors() {
    let env = Env::new();
    let server = Server::start(&env, &[]);
    for path in ["/status/01ZZZZ", "/tail/01ZZZZ", "/wait/01ZZZZ"] {
        server.get(path).assert_error(404, "job_not_found");
    }
    server.post("/kill/01ZZZZ", "").assert_error(404, "job_not_found");

    let created = env.ok(&["create", "--", "true"])["job_id"].as_str().expect("id").to_string();
    server.post(&format!("/kill/{created}"), "").assert_error(400, "invalid_state");

    // Two jobs always share their first character: an ambiguous prefix (docs/decisions.md OP-7: 400).
    let other = server.exec(r#"{"command":["true"]}"#);
    let common_prefix: String =
        created.chars().zip(other.chars()).take_while(|(a, b)| a == b).map(|(a, _)| a).collect();
    assert!(!common_prefix.is_empty());
    let reply = server.get(&format!("/status/{common_prefix}"));
    reply.assert_error(400, "ambiguous_job_id");
    assert!(reply.json()["error"]["message"].as_str().expect("message").contains(&created));
}

#[test]
fn unknown_routes_and_wrong_methods() {
    let env = Env::new();
    let server = Server::start(&env, &[]);
    for path in ["/nope", "/status", "/health/", "/jobs/x", "/v1", "/v1/jobs/01A/nope"] {
        server.get(path).assert_error(404, "invalid_request");
    }
    let cases = [
        ("POST", "/health", "GET"),
        ("GET", "/exec", "POST"),
        ("DELETE", "/status/01A", "GET"),
        ("GET", "/kill/01A", "POST"),
        ("PUT", "/wait/01A", "GET"),
        ("POST", "/tail/01A", "GET"),
    ];
    for (method, path, allow) in cases {
        let reply = request(server.port, method, path, &[], b"");
        reply.assert_error(405, "invalid_request");
        assert_eq!(reply.header("allow"), Some(allow), "{method} {path}");
    }
}

#[test]
fn traversal_attempts_never_leave_the_root() {
    let env = Env::new();
    let server = Server::start(&env, &[]);
    server.exec(r#"{"command":["true"]}"#);
    // A directory next to the root that looks like a job: no request may reach it.
    common::write_file(&env.dir.path().join("evil/meta.json"), "{}");
    common::write_file(&env.dir.path().join("evil/state.json"), "{}");
    let overlong = "A".repeat(4000);
    let attempts = [
        "/status/..",
        "/status/.",
        "/status/..%2Fevil",
        "/status/..%2fevil",
        "/status/%2e%2e",
        "/status/%2E%2E%2Fevil",
        "/status/../evil",
        "/status/%2Ftmp",
        "/status//etc/passwd",
        "/tail/%2Fetc%2Fpasswd",
        "/wait/a%00b",
        "/status/%00",
        "/status/",
        "/status/%",
        "/status/%zz",
        "/status/%C3%A9",
        "/status/01J9ZK3M8E5PQRSTVWYZ12ABCDE",
        &format!("/status/{overlong}"),
    ];
    for path in attempts {
        let reply = server.get(path);
        assert!(reply.status == 404 || reply.status == 400, "{path}: {reply:?}");
        if reply.status == 404 {
            reply.assert_error(404, "job_not_found");
        }
    }
    server.post("/kill/..%2Fevil", "").assert_error(404, "job_not_found");
    assert_eq!(server.get("/health").status, 200);
}

#[test]
fn exec_body_errors() {
    let env = Env::new();
    let server = Server::start(&env, &[]);
    let message = |reply: serve_support::Reply| {
        reply.assert_error(400, "invalid_request");
        reply.json()["error"]["message"].as_str().expect("message").to_string()
    };
    assert_eq!(message(server.post("/exec", "")), "request body is required");
    for body in [r#"{}"#, r#"{"command":null}"#, r#"{"command":[]}"#] {
        assert_eq!(message(server.post("/exec", body)), "command field is required and must be non-empty", "{body}");
    }
    for body in [
        "{",
        "not json",
        r#"{"command":"ls"}"#,
        r#"{"command":[1]}"#,
        r#"{"command":["x"],"wait":"yes"}"#,
        r#"{"command":["x"],"env":{"A":1}}"#,
        r#"{"command":["x"],"timeout_ms":-1}"#,
        "[]",
    ] {
        assert!(message(server.post("/exec", body)).starts_with("invalid JSON: "), "{body}");
    }
    assert!(std::fs::read_dir(&env.root).map_or(true, |d| d.count() == 0), "no job was created");
}

#[test]
fn oversized_bodies_are_refused_and_the_server_stays_healthy() {
    let env = Env::new();
    let mut server = Server::start(&env, &[]);
    // Padded with whitespace: an unknown field would be refused.
    let exactly = format!(r#"{{"command":["true"]{}}}"#, " ".repeat(1024 * 1024 - 21));
    assert_eq!(exactly.len(), 1024 * 1024 - 1);
    assert_eq!(server.post("/exec", &exactly).status, 200);

    // A declared length over 1 MiB is refused with 413 before the body is read, and the
    // connection closed. Only the start of the body is sent: a client still writing
    // megabytes when the server closes gets a reset, which can discard the answer.
    let mut big = format!("POST /exec HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n", 2 * 1024 * 1024).into_bytes();
    big.extend_from_slice(&[b' '; 16 * 1024]);
    let reply = serve_support::raw_request_then_eof(server.port, &big).expect("declared 2 MiB");
    reply.assert_error(413, "invalid_request");
    assert_eq!(reply.json()["error"]["message"], "request body over 1 MiB");
    assert_eq!(reply.header("connection"), Some("close"));

    // A declared length far beyond memory, with no body behind it: never read, never
    // allocated, and the server keeps serving.
    let raw = b"POST /exec HTTP/1.1\r\nHost: x\r\nContent-Length: 100000000000000\r\n\r\n{}";
    let reply = serve_support::raw_request_then_eof(server.port, raw).expect("absurd length");
    reply.assert_error(413, "invalid_request");
    assert!(eventually(Duration::from_secs(2), || server.get("/health").status == 200));
    assert!(matches!(server.child.try_wait(), Ok(None)), "server died");
    assert_eq!(server.get("/health").status, 200);
}

#[test]
fn token_protects_everything_but_health() {
    let env = Env::new().with_env("AGENT_EXEC_SERVE_TOKEN", "s3cret");
    let server = Server::start(&env, &[]);
    assert_eq!(server.get("/health").status, 200);
    let reply = server.get("/status/01A");
    reply.assert_error(401, "unauthorized");
    assert_eq!(reply.header("www-authenticate"), Some("Bearer"));
    server.post("/exec", r#"{"command":["true"]}"#).assert_error(401, "unauthorized");
    request(server.port, "GET", "/nope", &[("Authorization", "Bearer wrong")], b"").assert_error(401, "unauthorized");
    let auth = [("Authorization", "Bearer s3cret")];
    request(server.port, "GET", "/status/01A", &auth, b"").assert_error(404, "job_not_found");
    let reply = request(server.port, "POST", "/exec", &auth, br#"{"command":["true"]}"#);
    assert_eq!(reply.status, 200, "{reply:?}");
}

#[test]
fn non_loopback_bind_needs_a_token() {
    let env = Env::new();
    let out = env.run(&["serve", "--bind", "0.0.0.0:0"]);
    assert_eq!(out.status.code(), Some(1));
    let value = single_json(&["serve"], &out);
    assert_eq!(value["error"]["code"], "internal_error");
    assert!(value["error"]["message"].as_str().expect("message").contains("AGENT_EXEC_SERVE_TOKEN"));

    // With a token file it starts (and then demands the token).
    let token_file = env.dir.path().join("token");
    std::fs::write(&token_file, "file-token\n").expect("write token");
    let port = serve_support::fresh_port();
    let bind = format!("0.0.0.0:{port}");
    let mut child = env
        .command(&["serve", "--bind", &bind, "--token-file", token_file.to_str().expect("utf8")])
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("spawn");
    let up = eventually(Duration::from_secs(10), || serve_support::listening_by(child.id(), port));
    let status = up.then(|| request(port, "GET", "/status/01A", &[("Authorization", "Bearer file-token")], b"").status);
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(status, Some(404));
}

/// The harness's readiness check: a port held by someone else is not our server being up
/// (the cause of a CI failure: a server that failed to bind looked up through the
/// listener of `bind_errors_are_json`).
#[test]
fn a_server_counts_as_up_only_through_its_own_listener() {
    let env = Env::new();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = taken.local_addr().expect("addr").port();
    let mut child = env
        .command(&["serve", "--port", &port.to_string()])
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("spawn");
    assert!(serve_support::listening(port), "the probe connects to the foreign listener");
    assert!(!serve_support::listening_by(child.id(), port));
    assert!(serve_support::listening_by(std::process::id(), port));
    let _ = child.wait();
}

#[test]
fn bind_errors_are_json() {
    let env = Env::new();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = taken.local_addr().expect("addr").port().to_string();
    let out = env.run(&["serve", "--port", &port]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(single_json(&["serve"], &out)["error"]["code"], "internal_error");
    let out = env.run(&["serve", "--bind", "localhost:80"]);
    assert_eq!(out.status.code(), Some(1));
    let value = single_json(&["serve"], &out);
    assert!(value["error"]["message"].as_str().expect("message").starts_with("invalid bind address 'localhost:80'"));
    assert_eq!(
        std::process::Command::new(BIN)
            .args(["serve", "--bind", "x", "--port", "1"])
            .output()
            .expect("run")
            .status
            .code(),
        Some(2)
    );
}

#[test]
fn verbose_writes_one_access_line_per_request() {
    let env = Env::new();
    let log = env.dir.path().join("serve.log");
    let file = std::fs::File::create(&log).expect("create log");
    let server = Server::start_with(&env, &["-v"], || file.try_clone().expect("clone").into());
    server.get("/health");
    server.get("/nope");
    let lines = || std::fs::read_to_string(&log).unwrap_or_default();
    assert!(eventually(Duration::from_secs(5), || lines().contains("\"GET /nope\" 404")), "{}", lines());
    assert_eq!(lines().matches("\"GET /health\" 200").count(), 1, "{}", lines());
}
