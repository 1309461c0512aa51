//! REST v1 over real HTTP (issue 16 item 1, the routes of docs/ v1 design owned by the
//! core): list, create and run, status, start, kill, tail, tags, notify, delete, gc,
//! with full ids, prefixes and `@NAME`; the long-poll lane; `--max-wait-ms`.

mod common;
mod serve_support;

use std::time::Duration;

use serde_json::{Value, json};

use common::{Env, eventually};
use serve_support::{Reply, Server, request};

fn send(server: &Server, method: &str, path: &str, body: &Value) -> Reply {
    request(server.port, method, path, &[], body.to_string().as_bytes())
}

/// A 200 answer of this type.
fn ok(reply: Reply, kind: &str) -> Value {
    assert_eq!(reply.status, 200, "{reply:?}");
    let value = reply.json();
    assert_eq!((value["ok"].clone(), value["type"].clone()), (json!(true), json!(kind)), "{value}");
    value
}

/// `POST /v1/jobs`: 201 with the job's address; returns the answer.
fn create(server: &Server, body: &Value) -> Value {
    let reply = send(server, "POST", "/v1/jobs", body);
    assert_eq!(reply.status, 201, "{reply:?}");
    let value = reply.json();
    let id = value["job_id"].as_str().expect("job_id");
    assert_eq!(reply.header("location"), Some(format!("/v1/jobs/{id}").as_str()));
    value
}

#[test]
fn health_is_the_old_health() {
    let env = Env::new();
    let server = Server::start(&env, &[]);
    assert_eq!(server.get("/v1/health").body, server.get("/health").body);
}

#[test]
fn a_created_job_is_listed_started_tailed_tagged_and_deleted() {
    let env = Env::new();
    let server = Server::start(&env, &[]);
    let created = create(
        &server,
        &json!({"command": ["sh", "-c", "seq 3; echo warn >&2"], "tags": ["ci.build", "ci.build"], "name": "build"}),
    );
    assert_eq!(created["type"], "create");
    assert_eq!(created["state"], "created");
    let id = created["job_id"].as_str().expect("id").to_string();
    // Defined as `create` would: meta.json has the deduplicated tags and the name.
    let meta = env.read_json(&id, "meta.json");
    assert_eq!(meta["tags"], json!(["ci.build"]));
    assert_eq!(meta["name"], "build");

    // Found again by list, with tag and name filters, in the server's directory.
    let listed = |query: &str| -> Vec<String> {
        let value = ok(server.get(&format!("/v1/jobs{query}")), "list");
        value["jobs"].as_array().expect("jobs").iter().map(|j| j["job_id"].as_str().expect("id").to_string()).collect()
    };
    assert_eq!(listed(""), [id.as_str()]);
    assert_eq!(listed("?tag=ci.*"), [id.as_str()]);
    assert_eq!(listed("?tag=ci.*&tag=ci.build&name=build&state=created&limit=1"), [id.as_str()]);
    assert!(listed("?tag=ci.*&tag=other").is_empty());
    assert!(listed("?name=test").is_empty());
    assert!(listed("?state=running").is_empty());
    assert!(listed("?cwd=/").is_empty());
    assert_eq!(listed("?all=true"), [id.as_str()]);

    // Status by full id, prefix, @name and %40name.
    let prefix = &id[..20];
    for path in
        [format!("/v1/jobs/{id}"), format!("/v1/jobs/{prefix}"), "/v1/jobs/@build".into(), "/v1/jobs/%40build".into()]
    {
        let status = ok(server.get(&path), "status");
        assert_eq!(
            (status["job_id"].as_str(), status["state"].as_str()),
            (Some(id.as_str()), Some("created")),
            "{path}"
        );
    }

    // Started with a wait: the start answer with its final snapshot.
    let started =
        ok(send(&server, "POST", "/v1/jobs/@build/start", &json!({"wait": true, "until_ms": 30000})), "start");
    assert_eq!(started["state"], "exited", "{started}");
    assert_eq!(started["final_snapshot"]["stdout_tail"], "1\n2\n3");
    let again = send(&server, "POST", &format!("/v1/jobs/{id}/start"), &json!({}));
    again.assert_error(400, "invalid_state");

    let tail = ok(server.get(&format!("/v1/jobs/{prefix}/tail?tail_lines=1")), "tail");
    assert_eq!((tail["stdout_tail"].as_str(), tail["stderr_tail"].as_str()), (Some("3"), Some("warn")));
    let tail = ok(server.get(&format!("/v1/jobs/{id}/tail?max_bytes=2")), "tail");
    assert_eq!(tail["stdout_tail"], "3");

    let tagged =
        ok(send(&server, "PUT", &format!("/v1/jobs/{id}/tags"), &json!({"tags": ["release", "release"]})), "tag_set");
    assert_eq!(tagged["tags"], json!(["release"]));
    assert_eq!(listed("?tag=release"), [id.as_str()]);
    assert!(listed("?tag=ci.*").is_empty());
    let cleared = ok(send(&server, "PUT", &format!("/v1/jobs/{id}/tags"), &json!({"tags": []})), "tag_set");
    assert_eq!(cleared["tags"], json!([]));

    let marks = env.path("marks.ndjson");
    let notify = ok(
        send(
            &server,
            "PATCH",
            "/v1/jobs/@build/notify",
            &json!({"notify_file": marks, "output_pattern": "^w", "output_match_type": "regex"}),
        ),
        "notify.set",
    );
    assert_eq!(notify["notification"]["notify_file"], marks);
    assert_eq!(notify["notification"]["on_output_match"]["match_type"], "regex");
    let meta = env.read_json(&id, "meta.json");
    assert_eq!(meta["notification"]["on_output_match"]["pattern"], "^w");

    // Delete: a dry run keeps the job, the real one removes it.
    let path = format!("/v1/jobs/{id}");
    let dry = ok(request(server.port, "DELETE", &format!("{path}?dry_run=true"), &[], b""), "delete");
    assert_eq!((dry["dry_run"].as_bool(), dry["deleted"].as_u64()), (Some(true), Some(0)), "{dry}");
    assert!(env.job_dir(&id).exists());
    let deleted = ok(request(server.port, "DELETE", &path, &[], b""), "delete");
    assert_eq!(deleted["deleted"], 1, "{deleted}");
    assert!(!env.job_dir(&id).exists());
    server.get(&path).assert_error(404, "job_not_found");
    request(server.port, "DELETE", &path, &[], b"").assert_error(404, "job_not_found");
    server.get("/v1/jobs/@build").assert_error(404, "job_not_found");
}

#[test]
fn run_with_every_kind_of_option() {
    let env = Env::new();
    let server = Server::start(&env, &[]);
    let dir = env.dir.path().join("elsewhere");
    std::fs::create_dir_all(&dir).expect("mkdir");
    let env_file = env.path("vars.env");
    common::write_file(std::path::Path::new(&env_file), "FROM_FILE=filed\n");
    let done = env.path("done.ndjson");
    let run = create(
        &server,
        &json!({
            "command": "echo $GREETING $FROM_FILE; pwd",
            "start": true,
            "cwd": dir,
            "env": {"GREETING": "hello", "SECRET": "hunter2"},
            "env_files": [env_file],
            "mask": ["SECRET"],
            "tags": ["v1"],
            "timeout_ms": 60000,
            "kill_after_ms": 1000,
            "notify_file": done,
            "wait": true,
            "until_ms": 30000,
            "tail_lines": 5,
            "max_bytes": 4096,
            "wait_poll_ms": 50,
            "no_full_log": true,
            "shell_wrapper": ["sh", "-c"]
        }),
    );
    assert_eq!(run["type"], "run");
    assert_eq!(run["state"], "exited", "{run}");
    let real_dir = std::fs::canonicalize(&dir).expect("canonicalize");
    assert_eq!(run["final_snapshot"]["stdout_tail"], format!("hello filed\n{}", real_dir.display()));
    assert_eq!(run["env_vars"], json!(["GREETING=hello", "SECRET=***"]));
    assert_eq!(run["tags"], json!(["v1"]));
    let id = run["job_id"].as_str().expect("id");
    let meta = env.read_json(id, "meta.json");
    assert_eq!(meta["shell_wrapper"], json!(["sh", "-c"]));
    assert_eq!(meta["timeout_ms"], 60000);
    let full_log = std::fs::metadata(env.job_dir(id).join("full.log")).map_or(0, |m| m.len());
    assert_eq!(full_log, 0, "no_full_log: true writes no full.log records");
    assert!(eventually(Duration::from_secs(20), || std::fs::read_to_string(&done)
        .is_ok_and(|t| t.contains("job.finished"))));

    // Without wait: the CLI's snapshot window, answered as soon as the job ends.
    let quick = create(&server, &json!({"command": ["echo", "quick"], "start": true}));
    assert_eq!(quick["snapshot"]["stdout_tail"], "quick", "{quick}");
    // With no window at all: running at once.
    let slow = create(&server, &json!({"command": ["sleep", "60"], "start": true, "snapshot_after_ms": 0}));
    assert_eq!((slow["state"].as_str(), slow["waited_ms"].as_u64()), (Some("running"), Some(0)), "{slow}");
    let slow_id = slow["job_id"].as_str().expect("id").to_string();

    // A readiness wait on the output.
    let ready = create(
        &server,
        &json!({"command": "echo booting; echo listening on 8080; sleep 60", "start": true,
                "for_output": "listening on [0-9]+", "output_match_type": "regex", "until_ms": 30000}),
    );
    assert_eq!(ready["ready"], true, "{ready}");
    assert_eq!(ready["matched_line"], "listening on 8080");

    // Kill with a body: the signal is recorded.
    let killed = ok(send(&server, "POST", &format!("/v1/jobs/{slow_id}/kill"), &json!({"signal": "INT"})), "kill");
    assert_eq!(killed["signal"], "INT");
    let waited = server.get(&format!("/wait/{slow_id}?until=30000")).json();
    assert_eq!(waited["state"], "killed", "{waited}");
    let ready_id = ready["job_id"].as_str().expect("id");
    ok(request(server.port, "POST", &format!("/v1/jobs/{ready_id}/kill"), &[], b""), "kill");
}

#[test]
fn names_clash_reuse_and_replace() {
    let env = Env::new();
    let server = Server::start(&env, &[]);
    let first =
        create(&server, &json!({"command": ["sleep", "60"], "name": "web", "start": true, "snapshot_after_ms": 0}));
    let first_id = first["job_id"].as_str().expect("id").to_string();
    let clash = send(&server, "POST", "/v1/jobs", &json!({"command": ["sleep", "60"], "name": "web", "start": true}));
    clash.assert_error(409, "name_in_use");
    let reused = create(
        &server,
        &json!({"command": ["sleep", "60"], "name": "web", "start": true, "if_running": "reuse", "snapshot_after_ms": 0}),
    );
    assert_eq!(reused["job_id"], first_id.as_str());
    let replaced = create(
        &server,
        &json!({"command": ["sleep", "60"], "name": "web", "start": true, "if_running": "replace",
                "kill_after_ms": 100, "snapshot_after_ms": 0}),
    );
    let second_id = replaced["job_id"].as_str().expect("id").to_string();
    assert_ne!(second_id, first_id);
    assert_eq!(server.get(&format!("/v1/jobs/{first_id}")).json()["state"], "killed");
    assert_eq!(ok(server.get("/v1/jobs/@web"), "status")["job_id"], second_id.as_str());
    ok(request(server.port, "POST", "/v1/jobs/@web/kill", &[], br#"{"signal":"KILL"}"#), "kill");
}

#[test]
fn unknown_and_ambiguous_ids() {
    let env = Env::new();
    let server = Server::start(&env, &[]);
    let a = create(&server, &json!({"command": ["true"]}));
    let b = create(&server, &json!({"command": ["true"]}));
    let (a, b) = (a["job_id"].as_str().expect("id").to_string(), b["job_id"].as_str().expect("id").to_string());
    let common_len = a.chars().zip(b.chars()).take_while(|(x, y)| x == y).count();
    assert!(common_len > 0, "ULIDs of one second share their first character");
    server.get(&format!("/v1/jobs/{}", &a[..common_len])).assert_error(400, "ambiguous_job_id");
    server.get("/v1/jobs/ZZZZZZ").assert_error(404, "job_not_found");
    server.get("/v1/jobs/@nobody/tail").assert_error(404, "job_not_found");
    send(&server, "PUT", "/v1/jobs/ZZZZ/tags", &json!({"tags": []})).assert_error(404, "job_not_found");
    // Traversal in any shape is a job that does not exist, never a path.
    for path in ["/v1/jobs/..%2F..%2Fetc", "/v1/jobs/%2e%2e/tail", "/v1/jobs/@..%2Fx"] {
        server.get(path).assert_error(404, "job_not_found");
    }
}

#[test]
fn gc_over_http() {
    let env = Env::new();
    let server = Server::start(&env, &[]);
    let ids: Vec<String> = (0..3)
        .map(|_| {
            create(&server, &json!({"command": ["true"], "start": true, "wait": true}))["job_id"]
                .as_str()
                .expect("id")
                .to_string()
        })
        .collect();
    // Supervisors finishing up keep their jobs from collection: wait them out.
    ids.iter().for_each(|id| env.supervisor_gone(id));
    let running = create(&server, &json!({"command": ["sleep", "60"], "start": true, "snapshot_after_ms": 0}));
    let dry = ok(server.post("/v1/gc", r#"{"older_than":"0s","dry_run":true}"#), "gc");
    assert_eq!(dry["dry_run"], true, "{dry}");
    assert!(ids.iter().all(|id| env.job_dir(id).exists()));
    let kept = ok(server.post("/v1/gc", r#"{"older_than":"100d","keep":1,"max_bytes":"1G"}"#), "gc");
    assert_eq!(kept["deleted"], 2, "{kept}");
    let all = ok(server.post("/v1/gc", r#"{"older_than":"100d","max_bytes":1}"#), "gc");
    assert_eq!(all["deleted"], 1, "{all}");
    assert!(ids.iter().all(|id| !env.job_dir(id).exists()));
    // An empty body is every default (30 days), and a running job is never collected.
    assert_eq!(ok(server.post("/v1/gc", ""), "gc")["deleted"], 0);
    let running_id = running["job_id"].as_str().expect("id");
    assert!(env.job_dir(running_id).exists());
    env.ok(&["kill", "--signal", "KILL", running_id]);
}

#[test]
fn waits_are_bounded_by_max_wait_ms() {
    let env = Env::new();
    let server = Server::start(&env, &["--max-wait-ms", "300"]);
    let id = server.exec(r#"{"command":["sleep","60"]}"#);
    let waited = server.get(&format!("/wait/{id}?until=600000")).json();
    assert_eq!(waited["state"], "running");
    assert_eq!(waited["clamped"]["until_ms"], 300, "{waited}");
    // The default (30 s) is lowered silently: nobody asked for it.
    let waited = server.get(&format!("/wait/{id}")).json();
    assert!(waited.get("clamped").is_none(), "{waited}");
    let exec = server.post("/exec", r#"{"command":["sleep","60"],"wait":true,"until_ms":700000}"#).json();
    assert_eq!(exec["clamped"]["until_ms"], 300, "{exec}");
    let run = create(&server, &json!({"command": ["sleep", "60"], "start": true, "wait": true, "until_ms": 5000}));
    assert_eq!((run["state"].as_str(), run["clamped"]["until_ms"].as_u64()), (Some("running"), Some(300)), "{run}");
    let window = create(&server, &json!({"command": ["sleep", "60"], "start": true, "snapshot_after_ms": 5000}));
    assert_eq!(window["clamped"]["snapshot_after_ms"], 300, "{window}");
    let ready = create(&server, &json!({"command": ["sleep", "60"], "start": true, "for_port": 9, "until_ms": 5000}));
    assert_eq!((ready["ready"].as_bool(), ready["clamped"]["until_ms"].as_u64()), (Some(false), Some(300)), "{ready}");
    for job in ok(server.get("/v1/jobs?state=running"), "list")["jobs"].as_array().expect("jobs") {
        env.ok(&["kill", "--signal", "KILL", job["job_id"].as_str().expect("id")]);
    }
}

/// A run that waits holds a long-poll slot, never a short one: with one slot of each,
/// `/v1/health` and `GET /v1/jobs` answer while it waits, and a second waiting start
/// waits its turn.
#[test]
fn waiting_runs_use_the_long_poll_lane() {
    let env = Env::new();
    let server = Server::start(&env, &["--max-waiters", "1", "--max-connections", "1"]);
    let port = server.port;
    let created = create(&server, &json!({"command": ["true"]}));
    let later = created["job_id"].as_str().expect("id").to_string();
    let marker = env.path("started");
    let body = json!({"command": ["sh", "-c", format!("touch {marker}; exec sleep 30")], "start": true, "wait": true,
                      "until_ms": 60000, "name": "holder"});
    let first = std::thread::spawn(move || request(port, "POST", "/v1/jobs", &[], body.to_string().as_bytes()).status);
    assert!(eventually(Duration::from_secs(10), || std::path::Path::new(&marker).exists()));
    assert_eq!(server.get("/v1/health").status, 200);
    assert_eq!(server.get("/v1/jobs").status, 200);
    assert!(!first.is_finished(), "the short requests were answered only once the waiting run ended");
    // A start with the CLI's default window is a long-poll too: it waits for the slot.
    let path = format!("/v1/jobs/{later}/start");
    let second = std::thread::spawn(move || request(port, "POST", &path, &[], b""));
    if eventually(Duration::from_secs(1), || second.is_finished()) {
        panic!("the second long-poll did not wait: {:?}", second.join());
    }
    env.ok(&["kill", "--signal", "KILL", "@holder"]);
    assert_eq!(first.join().expect("join first"), 201);
    let second = second.join().expect("join second");
    assert_eq!(second.status, 200, "{second:?}");
}
