//! Many processes at once against one store: every response parses, every job is
//! recorded once, and concurrent read-modify-writes of one job lose nothing.

mod common;

use std::process::{Child, Stdio};

use common::{Env, describe};

fn spawn(env: &Env, args: &[&str]) -> (Vec<String>, Child) {
    let child = env.command(args).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("spawn");
    (args.iter().map(|s| s.to_string()).collect(), child)
}

fn collect(children: Vec<(Vec<String>, Child)>) -> Vec<serde_json::Value> {
    children
        .into_iter()
        .map(|(args, child)| {
            let out = child.wait_with_output().expect("wait");
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            let value = common::single_json(&args, &out);
            assert_eq!(value["ok"], true, "{}", describe(&args, &out));
            value
        })
        .collect()
}

#[test]
fn a_hundred_runs_alongside_readers_and_writers() {
    let env = Env::new();
    let anchor = env.start_job(&["sleep", "5"]);
    let mut children = Vec::new();
    for i in 0..100 {
        children.push(spawn(
            &env,
            &["run", "--snapshot-after", "0", "--tag", "load", "--", "sh", "-c", &format!("echo {i}")],
        ));
        match i % 4 {
            0 => children.push(spawn(&env, &["list", "--all"])),
            1 => children.push(spawn(&env, &["status", &anchor])),
            2 => children.push(spawn(&env, &["tag", "set", &anchor, "--tag", &format!("t{i}")])),
            _ => children.push(spawn(&env, &["notify", "set", &anchor, "--command", &format!("echo {i}")])),
        }
    }
    let values = collect(children);
    let mut ids: Vec<&str> =
        values.iter().filter(|v| v["type"] == "run").filter_map(|v| v["job_id"].as_str()).collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), 100);
    let list = env.ok(&["list", "--tag", "load"]);
    assert_eq!(list["jobs"].as_array().map(Vec::len), Some(100));
    assert_eq!(list["skipped"], 0);
    for id in ids {
        assert_ne!(env.ok(&["wait", "--until", "30000", id])["state"], "running");
    }
    env.ok(&["kill", "--signal", "KILL", &anchor]);
}

#[test]
fn concurrent_tag_and_notify_updates_are_not_lost() {
    let env = Env::new();
    let id = env.start_job(&["sleep", "5"]);
    let mut children = Vec::new();
    for i in 0..20 {
        children.push(spawn(&env, &["tag", "set", &id, "--tag", &format!("tag{i}")]));
        children.push(spawn(&env, &["notify", "set", &id, "--command", &format!("echo {i}")]));
        children.push(spawn(&env, &["notify", "set", &id, "--output-pattern", &format!("pat{i}")]));
    }
    collect(children);
    let meta = env.read_json(&id, "meta.json");
    // Each field was last written by one of its own updates: none was reset by another
    // command's stale read-modify-write.
    assert!(meta["tags"][0].as_str().is_some_and(|t| t.starts_with("tag")), "{meta}");
    assert!(meta["notification"]["notify_command"].as_str().is_some_and(|c| c.starts_with("echo ")), "{meta}");
    assert!(
        meta["notification"]["on_output_match"]["pattern"].as_str().is_some_and(|p| p.starts_with("pat")),
        "{meta}"
    );
    env.ok(&["kill", "--signal", "KILL", &id]);
}
