//! A jobs root or job another user can write (issue 11, item 8): the root and each job
//! directory must be ours and writable by nobody else, and the files we trust (such as
//! `meta.json` at `start`) ours; otherwise `insecure_root`, naming the path and the fix.
//! The attack: as `nobody`, with write access to a shared root, swap a created job's
//! directory for one holding a hand-written `meta.json`, and wait for root to `start` it.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

use common::{Env, available, has_tool, is_root};

const NOBODY: u32 = 65534;

fn chmod(path: &Path, mode: u32) {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).expect("chmod");
}

fn chown(path: &Path, uid: u32) {
    std::os::unix::fs::lchown(path, Some(uid), Some(uid)).expect("chown");
}

fn insecure(env: &Env, args: &[&str], path: &Path) {
    let error = env.err(args, "insecure_root");
    let message = error["error"]["message"].as_str().unwrap_or_default();
    assert!(message.contains(&*path.to_string_lossy()) && message.contains("chmod 700"), "{message}");
}

#[test]
fn a_root_writable_by_others_or_owned_by_another_user_is_refused() {
    if !available(is_root(), "root (to chown to nobody)") {
        return;
    }
    let env = Env::new();
    std::fs::create_dir_all(&env.root).expect("mkdir");
    chmod(&env.root, 0o777);
    insecure(&env, &["run", "--", "true"], &env.root);
    insecure(&env, &["list"], &env.root);
    chmod(&env.root, 0o700);
    chown(&env.root, NOBODY);
    insecure(&env, &["list", "--all"], &env.root);
    insecure(&env, &["status", "01ABC"], &env.root);
    chown(&env.root, 0);
    env.ok(&["list"]);
}

#[test]
fn a_job_directory_or_meta_json_of_another_user_is_refused() {
    if !available(is_root(), "root (to chown to nobody)") {
        return;
    }
    let env = Env::new();
    let id = env.ok(&["create", "--", "true"])["job_id"].as_str().expect("id").to_string();
    let dir = env.job_dir(&id);
    chown(&dir, NOBODY);
    insecure(&env, &["start", &id], &dir);
    insecure(&env, &["status", &id], &dir);
    chown(&dir, 0);
    chmod(&dir, 0o770);
    insecure(&env, &["start", &id], &dir);
    chmod(&dir, 0o700);
    let meta = dir.join("meta.json");
    chown(&meta, NOBODY);
    let error = env.err(&["start", &id], "insecure_root");
    assert!(error["error"]["message"].as_str().is_some_and(|m| m.contains("meta.json")), "{error}");
    chown(&meta, 0);
    assert_eq!(env.ok(&["start", "--wait", &id])["state"], "exited");
}

#[test]
fn a_job_swapped_by_another_user_between_create_and_start_never_runs() {
    if !available(is_root() && has_tool("setpriv"), "root and setpriv") {
        return;
    }
    let env = Env::new();
    // A shared root: nobody can reach it and write to it.
    chmod(env.dir.path(), 0o755);
    let pwned = env.dir.path().join("pwned");
    std::fs::create_dir_all(&env.root).expect("mkdir");
    chmod(&env.root, 0o700);
    let id = env.ok(&["create", "--", "true"])["job_id"].as_str().expect("id").to_string();
    chmod(&env.root, 0o777);
    let dir = env.job_dir(&id);
    let forged = std::fs::read_to_string(dir.join("meta.json"))
        .expect("meta")
        .replace(r#""true""#, &format!(r#""touch", "{}""#, pwned.display()));
    let state = std::fs::read_to_string(dir.join("state.json")).expect("state");
    let staging = env.dir.path().join("forged");
    std::fs::create_dir(&staging).expect("mkdir");
    std::fs::write(staging.join("meta.json"), forged).expect("write");
    std::fs::write(staging.join("state.json"), state).expect("write");
    chmod(&staging, 0o755);
    let swap = format!(
        "mv '{dir}' '{dir}.old' && mkdir '{dir}' && cp '{staging}/meta.json' '{staging}/state.json' '{dir}/'",
        dir = dir.display(),
        staging = staging.display()
    );
    let status = Command::new("setpriv")
        .args(["--reuid", "nobody", "--regid", "nogroup", "--clear-groups", "--", "sh", "-c", &swap])
        .status()
        .expect("setpriv");
    assert!(status.success(), "the swap as nobody failed");
    let out = env.run(&["start", "--wait", &id]);
    let value = common::single_json(&["start"], &out);
    assert!(!pwned.exists(), "the forged job ran as root: {value}");
    assert_eq!(value["error"]["code"], "insecure_root", "{value}");
}
