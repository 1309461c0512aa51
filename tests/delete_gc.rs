//! `delete` and `gc` through the binary (docs/compatibility.md §8.9, §8.10, docs/decisions.md OP-18, OP-19):
//! selection and reporting rules, dry runs, and the guarantee that a job with a live
//! supervisor or job process is never removed, whatever its `state.json` claims. Ages
//! are forged in `state.json` so no test waits for the clock.

mod common;

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};

use common::{Env, write_file};
use serde_json::{Value, json};

const LONG_AGO: &str = "2000-01-01T00:00:00Z";

/// A job blocked until the returned release file exists.
fn blocked_job(env: &Env, extra: &[&str]) -> (String, String) {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let release = env.path(&format!("release-{}", NEXT.fetch_add(1, Ordering::Relaxed)));
    let script = format!("while [ ! -e '{release}' ]; do sleep 0.02; done");
    let mut args = vec!["run", "--snapshot-after", "0"];
    args.extend_from_slice(extra);
    args.extend_from_slice(&["--", &script]);
    (env.ok(&args)["job_id"].as_str().expect("id").to_string(), release)
}

fn release(path: &str) {
    write_file(Path::new(path), "");
}

/// A finished job whose supervisor has exited.
fn finished_job(env: &Env, extra: &[&str]) -> String {
    let mut args = vec!["run", "--wait"];
    args.extend_from_slice(extra);
    // A timeout makes a job that would otherwise sleep end `killed`.
    let script = if extra.contains(&"--timeout") { "sleep 5" } else { "echo done" };
    args.extend_from_slice(&["--", script]);
    let id = env.ok(&args)["job_id"].as_str().expect("id").to_string();
    env.supervisor_gone(&id);
    id
}

fn age(env: &Env, id: &str) {
    env.edit_json(id, "state.json", |state| state["finished_at"] = json!(LONG_AGO));
}

fn ids(value: &Value) -> Vec<String> {
    value["jobs"].as_array().expect("jobs").iter().map(|j| j["job_id"].as_str().unwrap_or("").to_string()).collect()
}

#[test]
fn delete_refuses_a_live_job_and_removes_it_once_finished() {
    let env = Env::new();
    let (id, gate) = blocked_job(&env, &[]);
    let expect = format!("invalid job state: cannot delete job {id}: job is currently running");
    for args in [&["delete", id.as_str()][..], &["delete", "--dry-run", id.as_str()]] {
        assert_eq!(env.err(args, "invalid_state")["error"]["message"], expect.as_str());
    }
    assert!(env.job_dir(&id).exists());
    release(&gate);
    env.wait_job(&id);
    // Right after `wait` the supervisor may still be finishing; delete waits for it.
    let value = env.ok(&["delete", &id]);
    assert_eq!(
        value,
        json!({"schema_version": "0.1", "ok": true, "type": "delete", "root": env.root.to_string_lossy(),
               "dry_run": false, "deleted": 1, "skipped": 0,
               "jobs": [{"job_id": id, "state": "exited", "action": "deleted", "reason": "explicit_delete"}]})
    );
    assert!(!env.job_dir(&id).exists());
    env.err(&["status", &id], "job_not_found");
    env.err(&["delete", &id], "job_not_found");
}

#[test]
fn a_live_job_is_never_deleted_whatever_its_state_file_says() {
    let env = Env::new();
    let (id, gate) = blocked_job(&env, &[]);
    env.edit_json(&id, "state.json", |state| {
        state["job"]["status"] = json!("exited");
        state["finished_at"] = json!(LONG_AGO);
        state["result"]["exit_code"] = json!(0);
    });
    let bulk = env.ok(&["delete", "--all"]);
    assert_eq!(bulk["jobs"], json!([{"job_id": id, "state": "exited", "action": "skipped", "reason": "running"}]));
    assert_eq!(bulk["skipped"], 1);
    let gc = env.ok(&["gc", "--older-than", "1d"]);
    assert_eq!(gc["jobs"][0]["reason"], "running");
    assert_eq!(gc["deleted"], 0);
    env.err(&["delete", &id], "invalid_state");
    assert!(env.job_dir(&id).join("meta.json").exists());
    release(&gate);
    assert!(common::eventually(std::time::Duration::from_secs(20), || { env.run(&["delete", &id]).status.success() }));
}

#[test]
fn a_job_whose_supervisor_is_gone_is_deleted_as_failed() {
    let env = Env::new();
    let id = env.ok(&["create", "true"])["job_id"].as_str().expect("id").to_string();
    // A `running` record whose supervisor no longer exists (pid 2^22 + 1 is beyond
    // the default pid_max, and its start time cannot match).
    env.edit_json(&id, "state.json", |state| {
        state["job"]["status"] = json!("running");
        state["supervisor_pid"] = json!(4_194_305);
        state["supervisor_pid_start"] = json!(1);
    });
    let value = env.ok(&["delete", "--dry-run", &id]);
    assert_eq!(value["jobs"][0]["state"], "failed");
    assert_eq!(value["jobs"][0]["action"], "would_delete");
    // The repair is recorded, like every reader does (docs/decisions.md OP-1).
    assert_eq!(env.read_json(&id, "state.json")["error"], "supervisor lost");
    assert_eq!(env.ok(&["delete", &id])["deleted"], 1);
}

#[test]
fn single_delete_dry_run_created_and_unknown_jobs() {
    let env = Env::new();
    let created = env.ok(&["create", "true"])["job_id"].as_str().expect("id").to_string();
    let value = env.ok(&["delete", "--dry-run", &created[..10]]);
    assert_eq!(value["dry_run"], true);
    assert_eq!(value["deleted"], 0);
    assert_eq!(
        value["jobs"],
        json!([{"job_id": created, "state": "created", "action": "would_delete", "reason": "explicit_delete"}])
    );
    assert!(env.job_dir(&created).join("meta.json").exists());
    assert_eq!(env.ok(&["delete", &created])["jobs"][0]["state"], "created");

    let unknown = env.ok(&["create", "true"])["job_id"].as_str().expect("id").to_string();
    std::fs::remove_file(env.job_dir(&unknown).join("state.json")).expect("remove state");
    let value = env.ok(&["delete", &unknown]);
    assert_eq!(value["jobs"][0]["state"], "unknown");
    assert!(!env.job_dir(&unknown).exists());

    env.usage(&["delete"]);
    env.usage(&["delete", "--all", &unknown]);
    env.usage(&["delete", "--dry-run", "--dry-run", "X"]);
    for bad in ["..", ".", "a/b", "01NOSUCHJOB"] {
        env.err(&["delete", bad], "job_not_found");
    }
    // A directory that is not a job is never a delete target (docs/decisions.md OP-19).
    std::fs::create_dir_all(env.root.join("NOTAJOB")).expect("mkdir");
    env.err(&["delete", "NOTAJOB"], "job_not_found");
    assert!(env.root.join("NOTAJOB").exists());
}

#[test]
fn delete_all_takes_finished_jobs_of_the_current_directory_only() {
    let env = Env::new();
    let other = env.dir.path().join("elsewhere");
    std::fs::create_dir(&other).expect("mkdir");
    let exited = finished_job(&env, &[]);
    let killed = finished_job(&env, &["--timeout", "1"]);
    let created = env.ok(&["create", "true"])["job_id"].as_str().expect("id").to_string();
    let unreadable = env.ok(&["create", "true"])["job_id"].as_str().expect("id").to_string();
    std::fs::write(env.job_dir(&unreadable).join("state.json"), "{}").expect("corrupt");
    let (running, gate) = blocked_job(&env, &[]);
    let foreign = finished_job(&env, &["--cwd", &other.to_string_lossy()]);
    let no_meta = finished_job(&env, &[]);
    std::fs::remove_file(env.job_dir(&no_meta).join("meta.json")).expect("remove meta");
    std::fs::create_dir_all(env.root.join("junk")).expect("mkdir");

    let dry = env.ok(&["delete", "--all", "--dry-run"]);
    let mut expected = vec![
        (exited.clone(), "exited", "would_delete", "terminal_in_cwd"),
        (killed.clone(), "killed", "would_delete", "terminal_in_cwd"),
        (created.clone(), "created", "skipped", "created"),
        (unreadable.clone(), "unknown", "skipped", "state_unreadable"),
        (running.clone(), "running", "skipped", "running"),
    ];
    expected.sort();
    let as_json = |rows: &[(String, &str, &str, &str)]| {
        rows.iter()
            .map(
                |(id, state, action, reason)| json!({"job_id": id, "state": state, "action": action, "reason": reason}),
            )
            .collect::<Vec<_>>()
    };
    assert_eq!(dry["jobs"], json!(as_json(&expected)));
    assert_eq!((dry["deleted"].clone(), dry["skipped"].clone()), (json!(0), json!(3)));
    assert!(env.job_dir(&exited).exists() && env.job_dir(&killed).exists());

    let real = env.ok(&["delete", "--all"]);
    let deleted: Vec<_> = expected
        .iter()
        .map(|(id, state, action, reason)| {
            (id.clone(), *state, if *action == "would_delete" { "deleted" } else { action }, *reason)
        })
        .collect();
    assert_eq!(real["jobs"], json!(as_json(&deleted)));
    assert_eq!((real["deleted"].clone(), real["skipped"].clone()), (json!(2), json!(3)));
    for (id, gone) in [(&exited, true), (&killed, true), (&created, false), (&running, false), (&foreign, false)] {
        assert_eq!(!env.job_dir(id).exists(), gone, "{id}");
    }
    assert!(env.job_dir(&no_meta).exists() && env.root.join("junk").exists());
    release(&gate);
    env.wait_job(&running);
}

#[test]
fn delete_all_and_gc_on_a_missing_root_are_empty() {
    let env = Env::new();
    let value = env.ok(&["delete", "--all"]);
    assert_eq!(value["jobs"], json!([]));
    let value = env.ok(&["gc"]);
    assert_eq!(
        value,
        json!({"schema_version": "0.1", "ok": true, "type": "gc", "root": env.root.to_string_lossy(),
               "dry_run": false, "older_than": "30d", "older_than_source": "default",
               "deleted": 0, "skipped": 0, "freed_bytes": 0, "jobs": []})
    );
    assert_eq!(env.ok(&["gc", "--older-than", "30d"])["older_than_source"], "flag");
}

#[test]
fn gc_durations() {
    let env = Env::new();
    let message = "invalid duration: 1h30m; expected formats: 30d, 24h, 60m, 3600s";
    // Checked before anything else, even with no root.
    assert_eq!(env.err(&["gc", "--older-than", "1h30m"], "internal_error")["error"]["message"], message);
    for bad in ["", "1.5h", "-1s", "1D", "1w", "d", "1 d"] {
        env.err(&["gc", "--older-than", bad], "internal_error");
    }
    for overflow in ["99999999999999999999", "999999999999999999d"] {
        env.usage(&["gc", "--older-than", overflow]);
    }
    for good in ["0s", "0", "60m", "24h", " 7d ", "3600"] {
        let value = env.ok(&["gc", "--dry-run", "--older-than", good]);
        assert_eq!(value["older_than"], good);
    }
    env.usage(&["gc", "X"]);
    env.usage(&["gc", "--older-than"]);
}

#[test]
fn gc_honours_the_window_and_skips_what_it_must() {
    let env = Env::new();
    let old = finished_job(&env, &[]);
    age(&env, &old);
    let recent = finished_job(&env, &[]);
    let old_by_update = finished_job(&env, &[]);
    env.edit_json(&old_by_update, "state.json", |state| {
        state.as_object_mut().expect("object").remove("finished_at");
        state["updated_at"] = json!(LONG_AGO);
    });
    let no_stamp = finished_job(&env, &[]);
    env.edit_json(&no_stamp, "state.json", |state| {
        state.as_object_mut().expect("object").remove("finished_at");
        state["updated_at"] = json!("");
    });
    let created = env.ok(&["create", "true"])["job_id"].as_str().expect("id").to_string();
    let unreadable = env.ok(&["create", "true"])["job_id"].as_str().expect("id").to_string();
    std::fs::remove_file(env.job_dir(&unreadable).join("state.json")).expect("remove");
    let (running, gate) = blocked_job(&env, &[]);
    // gc ignores cwd and meta: a foreign job without meta.json still goes.
    let no_meta = finished_job(&env, &["--cwd", "/"]);
    age(&env, &no_meta);
    std::fs::remove_file(env.job_dir(&no_meta).join("meta.json")).expect("remove meta");
    std::fs::create_dir_all(env.root.join("not-a-job/sub")).expect("mkdir");

    let size = |id: &str| dir_size(&env.job_dir(id));
    let (old_size, update_size, no_meta_size) = (size(&old), size(&old_by_update), size(&no_meta));
    assert!(old_size > 0);
    let dry = env.ok(&["gc", "--dry-run", "--older-than", "1d"]);
    let mut expected = vec![
        json!({"job_id": old, "state": "exited", "action": "would_delete", "reason": "older_than_1d", "bytes": old_size}),
        json!({"job_id": recent, "state": "exited", "action": "skipped", "reason": "too_recent", "bytes": 0}),
        json!({"job_id": old_by_update, "state": "exited", "action": "would_delete", "reason": "older_than_1d", "bytes": update_size}),
        json!({"job_id": no_stamp, "state": "exited", "action": "skipped", "reason": "no_timestamp", "bytes": 0}),
        json!({"job_id": created, "state": "created", "action": "skipped", "reason": "non_terminal_status", "bytes": 0}),
        json!({"job_id": unreadable, "state": "unknown", "action": "skipped", "reason": "state_unreadable", "bytes": 0}),
        json!({"job_id": running, "state": "running", "action": "skipped", "reason": "running", "bytes": 0}),
        json!({"job_id": no_meta, "state": "exited", "action": "would_delete", "reason": "older_than_1d", "bytes": no_meta_size}),
    ];
    expected.sort_by(|a, b| a["job_id"].as_str().cmp(&b["job_id"].as_str()));
    assert_eq!(dry["jobs"], json!(expected));
    assert_eq!(dry["freed_bytes"], old_size + update_size + no_meta_size);
    assert_eq!((dry["deleted"].clone(), dry["skipped"].clone()), (json!(0), json!(5)));
    assert!(env.job_dir(&old).exists(), "dry run deleted something");

    let real = env.ok(&["gc", "--older-than", "1d"]);
    assert_eq!(real["deleted"], 3);
    assert_eq!(real["freed_bytes"], old_size + update_size + no_meta_size);
    assert_eq!(ids(&real), ids(&dry));
    for id in [&old, &old_by_update, &no_meta] {
        assert!(!env.job_dir(id).exists(), "{id} survived");
    }
    for id in [&recent, &no_stamp, &created, &unreadable, &running] {
        assert!(env.job_dir(id).exists(), "{id} was deleted");
    }
    assert!(env.root.join("not-a-job/sub").exists());
    release(&gate);
    env.wait_job(&running);
}

#[test]
fn gc_sizes_never_follow_symlinks() {
    let env = Env::new();
    let id = finished_job(&env, &[]);
    age(&env, &id);
    let outside = env.dir.path().join("outside");
    write_file(&outside.join("big"), &"x".repeat(100_000));
    std::os::unix::fs::symlink(&outside, env.job_dir(&id).join("link-dir")).expect("symlink");
    std::os::unix::fs::symlink(outside.join("big"), env.job_dir(&id).join("link-file")).expect("symlink");
    write_file(&env.job_dir(&id).join("extra/nested.txt"), "12345");
    let expected = dir_size(&env.job_dir(&id));
    assert!(expected < 100_000);
    let value = env.ok(&["gc", "--older-than", "1h"]);
    assert_eq!(value["jobs"][0]["bytes"], expected);
    assert_eq!(value["freed_bytes"], expected);
    assert!(!env.job_dir(&id).exists());
    assert!(outside.join("big").exists(), "gc followed a symlink out of the job");
}

/// Regular-file bytes below `path`, symlinks not followed.
fn dir_size(path: &Path) -> u64 {
    let meta = std::fs::symlink_metadata(path).expect("metadata");
    if meta.is_file() {
        return meta.len();
    }
    if !meta.is_dir() {
        return 0;
    }
    std::fs::read_dir(path).expect("read_dir").map(|e| dir_size(&e.expect("entry").path())).sum()
}

#[test]
fn gc_removes_abandoned_staging_directories_only_when_old() {
    let env = Env::new();
    env.wait_job(&env.start_job(&["true"]));
    let old = env.root.join(".new-01OLDSTAGING");
    let fresh = env.root.join(".new-01FRESHSTAGING");
    for dir in [&old, &fresh] {
        std::fs::create_dir_all(dir).expect("mkdir");
        std::fs::write(dir.join("meta.json"), "{}").expect("write");
    }
    let status = std::process::Command::new("touch").args(["-d", "2 hours ago"]).arg(&old).status().expect("touch");
    assert!(status.success());
    let dry = env.ok(&["gc", "--dry-run"]);
    assert!(old.exists(), "dry-run removed a staging directory");
    let value = env.ok(&["gc"]);
    assert!(!old.exists(), "an abandoned staging directory survived gc");
    assert!(fresh.exists(), "gc removed a staging directory that may still be in use");
    // Staging directories are never reported as jobs.
    for report in [dry, value] {
        let ids: Vec<&str> =
            report["jobs"].as_array().expect("jobs").iter().filter_map(|j| j["job_id"].as_str()).collect();
        assert!(ids.iter().all(|id| !id.starts_with('.')), "{ids:?}");
    }
}

/// A working directory that is not valid UTF-8 was stored lossily (`\xff` as U+FFFD), so
/// `start` could not find it, and from `d\xfeir` (the same lossy string) `list` showed
/// and `delete --all` deleted the jobs of `d\xffir`. Such a directory is now refused with
/// an error naming it, by every command that takes the current directory.
#[test]
fn a_non_utf8_working_directory_is_refused_not_guessed() {
    use std::os::unix::ffi::OsStrExt;
    let env = Env::new();
    let base = env.dir.path();
    let [ff, fe] = [b"d\xffir", b"d\xfeir"].map(|name| base.join(std::ffi::OsStr::from_bytes(name)));
    for dir in [&ff, &fe] {
        std::fs::create_dir(dir).expect("mkdir");
    }
    // A job of the valid directory `d\u{fffd}ir`: the lossy guess of both others.
    let lossy = base.join("d\u{fffd}ir");
    std::fs::create_dir(&lossy).expect("mkdir");
    let mut command = env.command(&["create", "--", "pwd"]);
    let out = command.current_dir(&lossy).output().expect("run");
    let kept = common::single_json(&["create"], &out)["job_id"].as_str().expect("id").to_string();
    let answer = |dir: &Path, args: &[&str]| {
        let out = env.command(args).current_dir(dir).output().expect("run");
        let value = common::single_json(args, &out);
        assert_eq!(out.status.code(), Some(1), "{}", common::describe(args, &out));
        assert_eq!(value["error"]["code"], "internal_error", "{}", common::describe(args, &out));
        let message = value["error"]["message"].as_str().unwrap_or_default();
        assert!(message.contains("not valid UTF-8"), "{}", common::describe(args, &out));
    };
    for args in [&["create", "--", "pwd"][..], &["run", "--", "pwd"]] {
        answer(&ff, args);
    }
    for args in [&["list"][..], &["delete", "--all"], &["delete", "--all", "--dry-run"], &["wait", "--tag", "x"]] {
        answer(&fe, args);
    }
    // Only the valid directory's job exists, untouched.
    assert_eq!(ids(&env.ok(&["list", "--all"])), vec![kept.clone()]);
    assert!(env.job_dir(&kept).exists());
}

/// Does the process watch something through inotify (a wait that has entered its loop)?
fn watching(pid: u32) -> bool {
    let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) else { return false };
    fds.flatten().any(|fd| std::fs::read_link(fd.path()).is_ok_and(|link| link.to_string_lossy().contains("inotify")))
}

/// A job deleted while a `wait` (or `wait --for-output`) on it runs: the wait read
/// `state.json` from a directory that was gone and answered `internal_error` ("No such
/// file"); a job whose directory is gone is `job_not_found`.
#[test]
fn a_job_deleted_mid_wait_is_not_found() {
    let env = Env::new();
    for wait in [&["wait", "--until", "30000"][..], &["wait", "--for-output", "never", "--until", "30000"]] {
        let id = env.ok(&["create", "--", "true"])["job_id"].as_str().expect("id").to_string();
        let mut args = wait.to_vec();
        args.push(&id);
        let waiting = env.command(&args).stdout(std::process::Stdio::piped()).spawn().expect("spawn");
        assert!(
            common::eventually(std::time::Duration::from_secs(10), || watching(waiting.id())),
            "{args:?} never waited"
        );
        env.ok(&["delete", &id]);
        let out = waiting.wait_with_output().expect("wait");
        let value = common::single_json(&args, &out);
        assert_eq!(out.status.code(), Some(1), "{}", common::describe(&args, &out));
        assert_eq!(value["error"]["code"], "job_not_found", "{}", common::describe(&args, &out));
    }
}

/// A job whose supervisor was SIGKILLed while its process lives on is refused by
/// `delete` for that process, not for notifications being delivered (there is no
/// supervisor left to deliver any), and the answer says how to end it.
#[test]
fn delete_names_the_processes_that_outlive_a_lost_job() {
    let env = Env::new();
    let id = env.start_job(&["sleep", "300"]);
    let supervisor = env.read_json(&id, "state.json")["supervisor_pid"].as_i64().expect("supervisor pid") as i32;
    // SAFETY: signalling the supervisor this test started.
    unsafe { libc::kill(supervisor, libc::SIGKILL) };
    assert!(common::eventually(std::time::Duration::from_secs(5), || !common::alive(supervisor as u64)));
    let out = env.run(&["delete", &id]);
    assert_eq!(out.status.code(), Some(1));
    let value: serde_json::Value = serde_json::from_slice(&out.stdout).expect("one JSON answer");
    assert_eq!(value["error"]["code"], "invalid_state", "{value}");
    let message = value["error"]["message"].as_str().unwrap_or("");
    assert!(message.contains("still run") && message.contains("agent-exec kill"), "{value}");
    env.ok(&["kill", "--signal", "KILL", &id]);
    assert!(common::eventually(std::time::Duration::from_secs(10), || env.run(&["delete", &id]).status.success()));
}
