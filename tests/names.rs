//! Job names (issue 14 item 4): `--name`, `@NAME`, the clash policies, and the atomic
//! claim under concurrency.

mod common;

use common::{Env, describe, single_json};

fn id_of(value: &serde_json::Value) -> String {
    value["job_id"].as_str().expect("job_id").to_string()
}

fn start_named(env: &Env, name: &str, extra: &[&str]) -> serde_json::Value {
    let mut args = vec!["run", "--snapshot-after", "0", "--name", name];
    args.extend_from_slice(extra);
    args.extend_from_slice(&["--", "sleep", "30"]);
    env.ok(&args)
}

#[test]
fn a_live_name_clashes_and_at_name_finds_its_job() {
    let env = Env::new();
    let first = id_of(&start_named(&env, "web", &[]));
    let clash = env.err(&["run", "--snapshot-after", "0", "--name", "web", "--", "sleep", "30"], "name_in_use");
    assert_eq!(clash["error"]["job_id"], first.as_str());
    assert_eq!(env.ok(&["status", "@web"])["job_id"], first.as_str());
    let listed = env.ok(&["list"]);
    assert_eq!(listed["jobs"][0]["name"], "web");
    // reuse answers about the holder and starts nothing.
    assert_eq!(id_of(&start_named(&env, "web", &["--if-running", "reuse"])), first);
    assert_eq!(env.ok(&["list"])["jobs"].as_array().map(Vec::len), Some(1));
    env.ok(&["kill", "--signal", "KILL", "@web"]);
    env.wait_job(&first);
    // An ended job frees its name; @web is then its most recent job.
    assert_eq!(env.ok(&["status", "@web"])["job_id"], first.as_str());
    let second = id_of(&start_named(&env, "web", &[]));
    assert_ne!(second, first);
    assert_eq!(env.ok(&["status", "@web"])["job_id"], second.as_str());
    env.ok(&["kill", "--signal", "KILL", &second]);
    env.wait_job(&second);
}

#[test]
fn replace_stops_the_holder_then_starts() {
    let env = Env::new();
    // The holder ignores TERM, so only the KILL after --kill-after ends it.
    let args = ["run", "--snapshot-after", "0", "--name", "srv", "--", "trap '' TERM; sleep 30 & wait"];
    let first = id_of(&env.ok(&args));
    let pid = env.read_json(&first, "state.json")["pid"].as_u64().expect("pid");
    let replaced = start_named(&env, "srv", &["--if-running", "replace", "--kill-after", "100"]);
    let second = id_of(&replaced);
    assert_ne!(second, first);
    let old = env.ok(&["status", &first]);
    assert_eq!(old["state"], "killed", "{old}");
    assert!(!common::alive(pid), "the replaced job's process is gone before the new one starts");
    assert_eq!(env.ok(&["status", "@srv"])["job_id"], second.as_str());
    env.ok(&["kill", "--signal", "KILL", &second]);
    env.wait_job(&second);
}

#[test]
fn a_created_job_holds_its_name_and_starts_by_it() {
    let env = Env::new();
    let created = id_of(&env.ok(&["create", "--name", "later", "--", "true"]));
    env.err(&["create", "--name", "later", "--", "true"], "name_in_use");
    env.err(&["run", "--name", "later", "--", "true"], "name_in_use");
    assert_eq!(env.ok(&["start", "--wait", "@later"])["job_id"], created.as_str());
    assert_eq!(env.read_json(&created, "meta.json")["name"], "later");
}

#[test]
fn two_hundred_concurrent_runs_of_one_name_start_one_job() {
    let env = Env::new();
    let args = ["run", "--snapshot-after", "0", "--name", "same", "--", "sleep", "30"];
    let children: Vec<_> =
        (0..200).map(|_| env.command(&args).stdout(std::process::Stdio::piped()).spawn().expect("spawn")).collect();
    let mut started = Vec::new();
    for child in children {
        let out = child.wait_with_output().expect("wait");
        let value = single_json(&args, &out);
        if value["ok"] == true {
            started.push(id_of(&value));
        } else {
            assert_eq!(value["error"]["code"], "name_in_use", "{}", describe(&args, &out));
        }
    }
    assert_eq!(started.len(), 1, "{started:?}");
    assert_eq!(env.ok(&["list", "--all"])["jobs"].as_array().map(Vec::len), Some(1));
    env.ok(&["kill", "--signal", "KILL", &started[0]]);
    env.wait_job(&started[0]);
}

#[test]
fn bad_names_and_unknown_names() {
    let env = Env::new();
    for bad in ["", "a/b", "a b", "@x", &"n".repeat(65)] {
        env.usage(&["run", "--name", bad, "--", "true"]);
        env.usage(&["create", "--name", bad, "--", "true"]);
    }
    env.usage(&["run", "--if-running", "reuse", "--", "true"]);
    env.usage(&["run", "--name", "x", "--if-running", "later", "--", "true"]);
    env.err(&["status", "@nobody"], "job_not_found");
    env.err(&["wait", "@a/b"], "job_not_found");
    // Without --name nothing changes: no name field anywhere.
    let id = env.start_job(&["true"]);
    env.wait_job(&id);
    assert!(env.read_json(&id, "meta.json").get("name").is_none());
    assert!(env.ok(&["list"])["jobs"][0].get("name").is_none());
}

#[test]
fn replace_does_not_block_other_names_while_the_holder_stops() {
    let env = Env::new();
    // The holder ignores TERM, so the replacing call waits the whole --kill-after.
    let holder = id_of(&env.ok(&[
        "run",
        "--snapshot-after",
        "0",
        "--name",
        "web",
        "--for-output",
        "trapped",
        "--",
        "trap '' TERM; echo trapped; sleep 60 & wait",
    ]));
    let args = [
        "run",
        "--snapshot-after",
        "0",
        "--name",
        "web",
        "--if-running",
        "replace",
        "--kill-after",
        "30000",
        "--",
        "sleep",
        "30",
    ];
    let mut replacing = env.command(&args).stdout(std::process::Stdio::piped()).spawn().expect("spawn");
    assert!(
        common::eventually(std::time::Duration::from_secs(10), || env.ok(&["status", &holder])["state"] == "killed")
    );
    // The holder got TERM and is still running: another name is claimed meanwhile...
    let other = id_of(&env.ok(&["create", "--name", "db", "--", "true"]));
    // ...while the replacing call is still waiting for the holder to end.
    assert!(replacing.try_wait().expect("try_wait").is_none(), "create --name db waited for the replace");
    // A claim of the same name waits for the replace, and then finds the name taken.
    let same = ["create", "--name", "web", "--", "true"];
    let same_name = env.command(&same).stdout(std::process::Stdio::piped()).spawn().expect("spawn");
    env.ok(&["kill", "--signal", "KILL", &holder]);
    let out = replacing.wait_with_output().expect("wait");
    let replaced = id_of(&single_json(&args, &out));
    let clash = single_json(&same, &same_name.wait_with_output().expect("wait"));
    assert_eq!(clash["error"]["code"], "name_in_use", "{clash}");
    assert_eq!(clash["error"]["job_id"], replaced.as_str());
    assert_ne!(replaced, holder);
    assert_eq!(env.ok(&["status", "@web"])["job_id"], replaced.as_str());
    assert_eq!(env.ok(&["status", "@db"])["job_id"], other.as_str());
    env.ok(&["kill", "--signal", "KILL", &replaced]);
    env.wait_job(&replaced);
}

/// Once nobody holds a name, `@NAME` is the job that claimed it last, as its claim file
/// says. Ids do not tell: two `run --name N --if-running replace` started in the same
/// millisecond draw their ids before the name's lock, and the later claimant can have
/// the smaller id. Played here by making the earlier job the last claimant: `@NAME`
/// followed the greatest id instead, a replaced (killed) job.
#[test]
fn at_name_is_the_last_claimant_whatever_the_ids() {
    let env = Env::new();
    let first = id_of(&env.ok(&["run", "--wait", "--name", "svc", "--", "true"]));
    let second = id_of(&env.ok(&["run", "--wait", "--name", "svc", "--", "true"]));
    assert!(first < second);
    assert_eq!(id_of(&env.ok(&["status", "@svc"])), second);
    std::fs::write(env.root.join(".names").join("n-svc"), format!("\"{first}\"")).expect("claim");
    assert_eq!(id_of(&env.ok(&["status", "@svc"])), first);
    // A claim whose job is gone falls back to the greatest id with the name.
    env.ok(&["delete", &first]);
    assert_eq!(id_of(&env.ok(&["status", "@svc"])), second);
}
