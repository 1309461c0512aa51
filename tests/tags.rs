//! Tags through the binary (docs/compatibility.md §8.11, §9): validation at parse time, de-duplication,
//! `tag set` in every state, and `list --tag` exact and prefix patterns ANDed. Jobs are
//! mostly `create`d, so no process runs unless a test needs one.

mod common;

use common::Env;
use serde_json::json;

fn create_tagged(env: &Env, tags: &[&str]) -> String {
    let mut args = vec!["create"];
    for tag in tags {
        args.extend_from_slice(&["--tag", tag]);
    }
    args.push("true");
    env.ok(&args)["job_id"].as_str().expect("id").to_string()
}

fn listed(env: &Env, patterns: &[&str]) -> Vec<String> {
    let mut args = vec!["list"];
    for pattern in patterns {
        args.extend_from_slice(&["--tag", pattern]);
    }
    let mut ids: Vec<String> = env.ok(&args)["jobs"]
        .as_array()
        .expect("jobs")
        .iter()
        .map(|j| j["job_id"].as_str().unwrap_or("").to_string())
        .collect();
    ids.sort();
    ids
}

fn sorted(ids: &[&String]) -> Vec<String> {
    let mut ids: Vec<String> = ids.iter().map(|s| s.to_string()).collect();
    ids.sort();
    ids
}

#[test]
fn tag_set_replaces_dedups_and_clears() {
    let env = Env::new();
    let id = create_tagged(&env, &["a", "b"]);
    let value = env.ok(&["tag", "set", &id, "--tag", "z", "--tag", "y.v2", "--tag", "z", "--tag", "A-1"]);
    assert_eq!(
        value,
        json!({"schema_version": "0.1", "ok": true, "type": "tag_set", "job_id": id, "tags": ["z", "y.v2", "A-1"]})
    );
    let meta = env.read_json(&id, "meta.json");
    assert_eq!(meta["tags"], json!(["z", "y.v2", "A-1"]));
    // Everything else in meta.json is preserved.
    assert_eq!(meta["command"], json!(["true"]));
    assert_eq!(env.ok(&["tag", "set", &id[..12]])["tags"], json!([]));
    assert_eq!(env.read_json(&id, "meta.json")["tags"], json!([]));
}

#[test]
fn invalid_tags_are_usage_errors_everywhere() {
    let env = Env::new();
    let id = create_tagged(&env, &["keep"]);
    for bad in ["", "bad tag", "bad_tag", "a..b", ".a", "a.", "a.*", "ünï", "*"] {
        env.usage(&["tag", "set", &id, "--tag", "ok", "--tag", bad]);
        env.usage(&["run", "--tag", bad, "true"]);
        env.usage(&["create", "--tag", bad, "true"]);
    }
    assert_eq!(env.read_json(&id, "meta.json")["tags"], json!(["keep"]));
    assert_eq!(listed(&env, &[]), vec![id.clone()]);
    env.usage(&["tag", "set"]);
    env.usage(&["tag", &id]);
    env.err(&["tag", "set", "01NOSUCHJOB", "--tag", "x"], "job_not_found");
    std::fs::write(env.job_dir(&id).join("meta.json"), "{").expect("corrupt");
    env.err(&["tag", "set", &id, "--tag", "x"], "internal_error");
}

#[test]
fn tags_are_echoed_and_settable_in_any_state() {
    let env = Env::new();
    let run = env.ok(&["run", "--wait", "--tag", "r", "--tag", "r", "--tag", "s", "--", "true"]);
    assert_eq!(run["tags"], json!(["r", "s"]));
    let id = run["job_id"].as_str().expect("id");
    assert_eq!(env.ok(&["tag", "set", id, "--tag", "after"])["tags"], json!(["after"]));
    let created = create_tagged(&env, &["c"]);
    env.ok(&["tag", "set", &created, "--tag", "c2"]);
    assert_eq!(env.ok(&["start", "--wait", &created])["tags"], json!(["c2"]));
    let summaries = env.ok(&["list"])["jobs"].clone();
    let mut tags: Vec<_> = summaries.as_array().expect("jobs").iter().map(|j| j["tags"].clone()).collect();
    tags.sort_by_key(|t| t.to_string());
    assert_eq!(tags, [json!(["after"]), json!(["c2"])]);
}

#[test]
fn list_tag_patterns_exact_prefix_and_anded() {
    let env = Env::new();
    let bare = create_tagged(&env, &["hoge"]);
    let sub = create_tagged(&env, &["hoge.sub", "ci"]);
    let deep = create_tagged(&env, &["hoge.sub.deep"]);
    let lookalike = create_tagged(&env, &["hogehoge", "ci"]);
    let ci_child = create_tagged(&env, &["ci.x"]);
    let none = create_tagged(&env, &[]);

    assert_eq!(listed(&env, &[]), sorted(&[&bare, &sub, &deep, &lookalike, &ci_child, &none]));
    assert_eq!(listed(&env, &["hoge"]), vec![bare.clone()]);
    assert_eq!(listed(&env, &["hoge.*"]), sorted(&[&bare, &sub, &deep]));
    assert_eq!(listed(&env, &["hoge.sub.*"]), sorted(&[&sub, &deep]));
    assert_eq!(listed(&env, &["ci"]), sorted(&[&sub, &lookalike]));
    assert_eq!(listed(&env, &["ci.*"]), sorted(&[&sub, &lookalike, &ci_child]));
    // AND: each pattern may be satisfied by a different tag.
    assert_eq!(listed(&env, &["hoge.*", "ci"]), vec![sub.clone()]);
    assert_eq!(listed(&env, &["hoge.*", "ci.*", "hoge.sub"]), vec![sub.clone()]);
    assert!(listed(&env, &["hoge", "ci"]).is_empty());
    // Composes with the state filter.
    let value = env.ok(&["list", "--tag", "hoge.*", "--state", "created"]);
    assert_eq!(value["jobs"].as_array().map(Vec::len), Some(3));
    assert_eq!(env.ok(&["list", "--tag", "hoge.*", "--state", "exited"])["jobs"], json!([]));

    for bad in ["*", ".*", "a.*.b", "a*", "", "bad_tag", "a..*"] {
        env.usage(&["list", "--tag", bad]);
    }
}
