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

// `list` reads one file per job: `state.json` carries a copy of what it shows of
// `meta.json`, trusted while `meta.json` keeps the size and modification time the copy
// records (docs/decisions.md OP-2).

fn listed_tags(env: &Env, id: &str) -> serde_json::Value {
    let jobs = env.ok(&["list", "--all"])["jobs"].clone();
    let job = jobs.as_array().expect("jobs").iter().find(|j| j["job_id"] == id).cloned();
    job.unwrap_or_else(|| panic!("{id} not listed: {jobs}"))["tags"].clone()
}

/// Replaces `meta.json` the way another program would (a new file, renamed over it),
/// with `from` replaced by `to` in its text.
fn rewrite_meta(env: &Env, id: &str, from: &str, to: &str) -> std::path::PathBuf {
    let path = env.job_dir(id).join("meta.json");
    let text = std::fs::read_to_string(&path).expect("read meta.json").replace(from, to);
    let next = env.job_dir(id).join("meta.json.next");
    std::fs::write(&next, text).expect("write");
    std::fs::rename(&next, &path).expect("rename");
    path
}

#[test]
fn list_reads_meta_json_again_once_it_changed_behind_the_copy() {
    let env = Env::new();
    let id = env.ok(&["run", "--wait", "--tag", "old", "--", "true"])["job_id"].as_str().expect("id").to_string();
    assert_eq!(env.read_json(&id, "state.json")["meta_copy"]["tags"], json!(["old"]));
    assert_eq!(listed_tags(&env, &id), json!(["old"]));
    // The same size, another time: a copy judged by size alone would still be trusted.
    rewrite_meta(&env, &id, "\"old\"", "\"new\"");
    assert_eq!(listed_tags(&env, &id), json!(["new"]));
    rewrite_meta(&env, &id, "\"new\"", "\"newer\"");
    assert_eq!(listed_tags(&env, &id), json!(["newer"]));
    assert_eq!(env.ok(&["list", "--all", "--tag", "newer"])["jobs"].as_array().map(Vec::len), Some(1));
    assert_eq!(env.ok(&["list", "--all", "--tag", "old"])["jobs"], json!([]));
    // A meta.json gone bad behind the copy makes the job unreadable, as before.
    std::fs::write(env.job_dir(&id).join("meta.json"), "{").expect("corrupt");
    let listed = env.ok(&["list", "--all"]);
    assert_eq!((listed["jobs"].clone(), listed["skipped"].clone()), (json!([]), json!(1)));
}

#[test]
fn list_uses_the_copy_while_meta_json_keeps_its_size_and_time() {
    let env = Env::new();
    let id = create_tagged(&env, &["aaa"]);
    let path = env.job_dir(&id).join("meta.json");
    let modified = std::fs::metadata(&path).and_then(|m| m.modified()).expect("mtime");
    let forged = std::fs::read_to_string(&path).expect("read").replace("\"aaa\"", "\"bbb\"");
    std::fs::write(&path, forged).expect("write");
    std::fs::File::options().write(true).open(&path).and_then(|f| f.set_modified(modified)).expect("set mtime");
    assert_eq!(env.read_json(&id, "meta.json")["tags"], json!(["bbb"]));
    // `list` read state.json alone (the documented limit: an edit of the same size that
    // also puts the time back goes unseen by `list`).
    assert_eq!(listed_tags(&env, &id), json!(["aaa"]));
}

#[test]
fn every_writer_keeps_the_copy_current() {
    let env = Env::new();
    let id = create_tagged(&env, &["a"]);
    env.ok(&["tag", "set", &id, "--tag", "b"]);
    assert_eq!(env.read_json(&id, "state.json")["meta_copy"]["tags"], json!(["b"]));
    env.ok(&["notify", "set", &id, "--command", "true"]);
    env.ok(&["start", "--wait", &id]);
    let state = env.read_json(&id, "state.json");
    assert_eq!(state["job"]["status"], "exited");
    assert_eq!(state["meta_copy"]["tags"], json!(["b"]), "{state}");
    let meta = std::fs::metadata(env.job_dir(&id).join("meta.json")).expect("meta");
    assert_eq!(state["meta_copy"]["meta_size"].as_u64(), Some(meta.len()), "the copy names the current meta.json");
    // `kill` writes the record too.
    let running = env.ok(&["run", "--tag", "k", "--", "sleep", "30"])["job_id"].as_str().expect("id").to_string();
    env.ok(&["kill", &running]);
    env.wait_job(&running);
    assert_eq!(env.read_json(&running, "state.json")["meta_copy"]["tags"], json!(["k"]));
    assert_eq!(listed_tags(&env, &running), json!(["k"]));
}

#[test]
fn fields_too_large_to_copy_stay_in_meta_json_alone() {
    let env = Env::new();
    let tags: Vec<String> = (0..200).map(|i| format!("tag{i:03}.with.a.long.name")).collect();
    let id = create_tagged(&env, &tags.iter().map(String::as_str).collect::<Vec<_>>());
    let state = env.read_json(&id, "state.json");
    assert!(state.get("meta_copy").is_none(), "{state}");
    assert!(std::fs::metadata(env.job_dir(&id).join("state.json")).expect("state").len() < 1024);
    assert_eq!(listed_tags(&env, &id), json!(tags));
}
