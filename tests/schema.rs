//! `schema` and the document it prints: it works from a lone binary in an empty
//! directory, and the real output of every command validates against it (a JSON Schema
//! draft-07 validator, so the document cannot drift from the responses).

mod common;
mod serve_support;

use serde_json::Value;

use common::Env;

struct Checker {
    env: Env,
    validator: jsonschema::Validator,
}

impl Checker {
    fn new() -> Checker {
        let env = Env::new();
        let reply = env.ok(&["schema"]);
        assert_eq!(reply["type"], "schema");
        assert_eq!(reply["schema_format"], "json-schema-draft-07");
        assert_eq!(reply["generated_at"], "2026-02-19T00:00:00Z");
        let validator = jsonschema::draft7::new(&reply["schema"]).expect("the schema compiles");
        let checker = Checker { env, validator };
        checker.check(&reply);
        checker
    }

    fn check(&self, value: &Value) {
        let errors: Vec<String> =
            self.validator.iter_errors(value).map(|e| format!("{e} at {}", e.instance_path())).collect();
        assert!(errors.is_empty(), "response does not match the schema:\n{value}\n{}", errors.join("\n"));
    }

    fn ok(&self, args: &[&str]) -> Value {
        let value = self.env.ok(args);
        self.check(&value);
        value
    }

    fn err(&self, args: &[&str], code: &str) -> Value {
        let value = self.env.err(args, code);
        self.check(&value);
        value
    }
}

#[test]
fn schema_works_from_a_lone_binary_in_an_empty_directory() {
    let dir = tempfile::tempdir().expect("temp dir");
    let bin = dir.path().join("agent-exec");
    std::fs::copy(common::BIN, &bin).expect("copy binary");
    let empty = dir.path().join("empty");
    std::fs::create_dir(&empty).expect("mkdir");
    // Another test thread forking while the copy was open for writing keeps a writable
    // descriptor alive in its child until that child execs: exec then fails with
    // ETXTBSY for a moment. That is the test harness, not the binary, so retry.
    let mut out = None;
    assert!(common::eventually(std::time::Duration::from_secs(10), || {
        match std::process::Command::new(&bin)
            .arg("schema")
            .current_dir(&empty)
            .env_clear()
            .env("HOME", &empty)
            .output()
        {
            Ok(output) => {
                out = Some(output);
                true
            }
            Err(e) if e.raw_os_error() == Some(libc::ETXTBSY) => false,
            Err(e) => panic!("run the copied binary: {e}"),
        }
    }));
    let out = out.expect("ran");
    let value = common::single_json(&["schema"], &out);
    assert_eq!(value["ok"], true);
    assert_eq!(value["schema"]["title"], "agent-exec CLI response schema");
    assert_eq!(std::fs::read_dir(&empty).expect("read").count(), 0, "schema wrote files");
}

#[test]
fn job_command_outputs_match_the_schema() {
    let c = Checker::new();
    let run = c.ok(&["run", "--env", "A=1", "--mask", "A", "--tag", "t1", "--", "sh", "-c", "echo out; echo err >&2"]);
    let id = run["job_id"].as_str().expect("job_id").to_string();
    c.ok(&["run", "--wait", "--", "sh", "-c", "exit 3"]);
    c.ok(&["run", "--wait", "--cwd", "/nonexistent/dir", "--", "true"]);
    let created = c.ok(&["create", "--tag", "later", "--", "true"]);
    let created_id = created["job_id"].as_str().expect("job_id").to_string();
    c.ok(&["status", &created_id]);
    c.ok(&["list", "--all"]);
    c.ok(&["start", "--wait", &created_id]);
    c.ok(&["wait", &id]);
    c.ok(&["status", &id]);
    c.ok(&["tail", &id]);
    c.ok(&["kill", &id]);
    c.ok(&["list"]);
    c.ok(&["list", "--all", "--state", "exited", "--limit", "1"]);
    c.ok(&["tag", "set", &id, "--tag", "a", "--tag", "b.c"]);
    c.ok(&["notify", "set", &id, "--command", "true", "--output-pattern", "x", "--output-match-type", "regex"]);
    c.ok(&["notify", "set", &id, "--output-pattern", ""]);
    let running = c.env.start_job(&["sleep", "30"]);
    c.ok(&["run", "--snapshot-after", "0", "--", "true"]);
    c.ok(&["wait", "--until", "0", &running]);
    c.ok(&["kill", &running]);
    c.ok(&["wait", &running]);
    c.ok(&["wait", &id, &running]);
    c.ok(&["wait", "--any", "--tag", "later"]);
    c.ok(&["wait", "--for-output", "x", "--until", "0", &id]);
    c.ok(&["run", "--for-output", "hi", "--", "echo hi"]);
}

#[test]
fn error_outputs_match_the_schema() {
    let c = Checker::new();
    c.err(&["status", "0000000000000000000000000Z"], "job_not_found");
    c.err(&["status", ".."], "job_not_found");
    let created = c.ok(&["create", "--", "true"]);
    let id = created["job_id"].as_str().expect("job_id");
    c.err(&["kill", id], "invalid_state");
    // A created job holds its name: the clash error carries the holder's id.
    c.ok(&["create", "--name", "held", "--", "true"]);
    c.err(&["create", "--name", "held", "--", "true"], "name_in_use");
    c.ok(&["list"]);
    c.err(&["install-skills", "--source", "git:x"], "unknown_source_scheme");
    c.err(&["install-skills", "--source", "local:/nonexistent/skill"], "internal_error");
}

#[test]
fn install_skills_output_matches_the_schema() {
    let c = Checker::new();
    c.ok(&["install-skills"]);
    c.ok(&["install-skills", "--global"]);
}

#[test]
fn delete_and_gc_outputs_match_the_schema() {
    let c = Checker::new();
    let id = c.env.start_job(&["true"]);
    c.env.wait_job(&id);
    let running = c.env.start_job(&["sleep", "30"]);
    c.ok(&["gc", "--dry-run"]);
    c.ok(&["gc", "--older-than", "0s", "--dry-run"]);
    c.ok(&["delete", "--all", "--dry-run"]);
    c.err(&["delete", &running], "invalid_state");
    c.ok(&["delete", &id]);
    c.ok(&["kill", &running]);
    c.env.wait_job(&running);
    c.ok(&["gc", "--older-than", "0s"]);
}

#[test]
fn the_schema_rejects_what_the_contract_forbids() {
    let c = Checker::new();
    for bad in [
        r#"{"schema_version":"0.1","ok":true,"type":"run"}"#,
        r#"{"schema_version":"0.2","ok":true,"type":"kill","job_id":"X","signal":"TERM"}"#,
        r#"{"schema_version":"0.1","ok":true,"type":"status","job_id":"X","state":"sleeping"}"#,
        r#"{"schema_version":"0.1","ok":true,"type":"frobnicate"}"#,
        r#"{"schema_version":"0.1","ok":false,"type":"error","error":{"code":"job_not_found"}}"#,
    ] {
        let value: Value = serde_json::from_str(bad).expect("test JSON");
        assert!(!c.validator.is_valid(&value), "accepted: {bad}");
    }
}

/// The answers only HTTP gives: `GET /` (the index) and the health check.
#[test]
fn http_only_answers_match_the_schema() {
    let checker = Checker::new();
    let server = serve_support::Server::start(&checker.env, &[]);
    let index = server.get("/").json();
    assert_eq!(index["type"], "index");
    checker.check(&index);
    checker.check(&server.get("/health").json());
}
