//! Storage faults while a job runs (issue 10): a full disk (a tiny tmpfs), a job
//! directory made read-only mid-run, and a file-size limit. Each time the logs are cut
//! short, the answer says `truncated: true` with a `log_error`, and the exit status is
//! still recorded and reported.
//!
//! The mounts are made inside `unshare -m`, so they vanish with the test's processes
//! whatever happens; the scripts print one JSON answer per line.

mod common;

use std::os::unix::process::CommandExt;
use std::process::{Command, Output};

use common::{BIN, Env, single_json};

/// Runs `script` with `sh` in a private mount namespace, with the sealed environment of
/// `env` plus `AE` (the binary). Returns `None` where mounting is impossible (not root),
/// which only a run outside CI may accept.
fn in_mount_namespace(env: &Env, script: &str) -> Option<Output> {
    let probe = Command::new("unshare").args(["-m", "true"]).output();
    if !probe.as_ref().is_ok_and(|out| out.status.success()) {
        assert_ne!(std::env::var("CI").as_deref(), Ok("true"), "unshare -m must work under CI=true: {probe:?}");
        return None;
    }
    let sealed = env.command(&[]);
    let mut command = Command::new("unshare");
    command.args(["-m", "--propagation", "private", "sh", "-c", script]).env_clear().current_dir(&env.cwd);
    for (key, value) in sealed.get_envs() {
        if let Some(value) = value {
            command.env(key, value);
        }
    }
    command.env("AE", BIN);
    Some(command.output().expect("spawn unshare"))
}

/// The JSON objects a script printed, one per line.
fn answers(out: &Output) -> Vec<serde_json::Value> {
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "script failed: {out:?}");
    stdout.lines().map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}\n{out:?}"))).collect()
}

/// Shell: waits (bounded) until the supervisor of job `$id` under `$AGENT_EXEC_ROOT`
/// has exited.
const SUPERVISOR_GONE: &str = r#"
pid=$(sed -n 's/.*"supervisor_pid": \([0-9]*\).*/\1/p' "$AGENT_EXEC_ROOT/$id/state.json")
i=0
while [ -n "$pid" ] && [ -r /proc/$pid/stat ] && ! sed 's/.*) //' /proc/$pid/stat | grep -q '^[ZX]' && [ $i -lt 1000 ]; do
  sleep 0.02; i=$((i+1))
done
"#;

/// Waits until the job's supervisor holds its logs open: it starts after `run
/// --snapshot-after 0` has answered, and a log it opened through a read-only bind mount
/// made meanwhile would keep that mount from being made read-only ("mount point is
/// busy").
const SUPERVISOR_AT_WORK: &str = r#"
pid=$(sed -n 's/.*"supervisor_pid": \([0-9]*\).*/\1/p' "$AGENT_EXEC_ROOT/$id/state.json")
i=0
while ! ls -l /proc/$pid/fd 2>/dev/null | grep -q "$id/stdout.log" && [ $i -lt 1000 ]; do
  sleep 0.02; i=$((i+1))
done
"#;

const JOB_ID: &str = r#"id=$(printf '%s' "$out" | sed 's/.*"job_id":"\([^"]*\)".*/\1/')"#;

/// A script that mounts a tmpfs of `size` on the new directory `name` of `env` (`$mount`),
/// with the jobs root in it, then runs `body`.
fn on_a_small_disk(env: &Env, name: &str, size: &str, body: &str) -> String {
    let mount = env.path(name);
    std::fs::create_dir_all(&mount).expect("mkdir");
    format!(
        "set -e\nmount='{mount}'\nmount -t tmpfs -o size={size} tmpfs \"$mount\"\nexport AGENT_EXEC_ROOT=\"$mount/root\"\n{body}"
    )
}

/// Shell: fills `$mount` but for `$free` bytes.
const LEAVE_FREE: &str = r#"rm -f "$mount/filler"
head -c $(( $(df -B1 --output=avail "$mount" | tail -1) - free )) /dev/zero > "$mount/filler""#;

#[test]
fn a_full_disk_cuts_the_logs_but_keeps_the_exit_status() {
    let env = Env::new();
    let body = format!(
        r#"out=$("$AE" run --wait -- sh -c 'head -c 300000 /dev/zero | tr "\0" y; exit 42')
printf '%s\n' "$out"
{JOB_ID}
{SUPERVISOR_GONE}
"$AE" status "$id"
cat "$AGENT_EXEC_ROOT/$id/state.json" | tr -d '\n'; echo
"#
    );
    let Some(out) = in_mount_namespace(&env, &on_a_small_disk(&env, "small", "200k", &body)) else {
        return a_file_size_limit_cuts_the_logs_but_keeps_the_exit_status();
    };
    let answers = answers(&out);
    let (run, status, state) = (&answers[0], &answers[1], &answers[2]);
    assert_eq!((run["state"].as_str(), run["exit_code"].as_i64()), (Some("exited"), Some(42)), "{run}");
    assert_eq!(run["final_snapshot"]["truncated"], true, "{run}");
    let log_error = run["final_snapshot"]["log_error"].as_str().unwrap_or_default();
    assert!(log_error.contains("No space left"), "{run}");
    assert_eq!((status["state"].as_str(), status["exit_code"].as_i64()), (Some("exited"), Some(42)), "{status}");
    assert_eq!(state["job"]["status"], "exited", "{state}");
    assert!(state["log_dropped_bytes"].as_u64().is_some_and(|n| n > 0), "{state}");
}

/// A disk with room for a job's files but not for its reserve (found by an attack on
/// c173a64, which created the reserve last and went on without it): the launch must
/// either fail at once, leaving nothing, or record the job's end. It never answers for
/// a job whose exit status it then loses.
#[test]
fn a_disk_too_full_for_the_reserve_never_loses_the_exit_status() {
    let env = Env::new();
    let body = format!(
        r#""$AE" list >/dev/null
for free in 4096 8192 12288; do
  {LEAVE_FREE}
  if out=$("$AE" run --snapshot-after 0 -- sh -c 'sleep 0.3; exit 7'); then
    {JOB_ID}
    "$AE" wait --until 10000 "$id"
  else
    printf '%s\n' "$out"
  fi
  ls -A "$AGENT_EXEC_ROOT" | grep -c . | sed 's/.*/{{"entries":&}}/'
  rm -rf "$AGENT_EXEC_ROOT"/* "$AGENT_EXEC_ROOT"/.[!.]* 2>/dev/null || true
done
"#
    );
    let Some(out) = in_mount_namespace(&env, &on_a_small_disk(&env, "tight", "64k", &body)) else { return };
    let answers = answers(&out);
    assert_eq!(answers.len(), 6, "{answers:?}");
    for pair in answers.chunks(2) {
        let (answer, entries) = (&pair[0], pair[1]["entries"].as_u64());
        if answer["ok"] == true {
            assert_eq!((answer["state"].as_str(), answer["exit_code"].as_i64()), (Some("exited"), Some(7)), "{answer}");
        } else {
            let message = answer["error"]["message"].as_str().unwrap_or_default();
            assert!(message.contains("No space left"), "{answer}");
            assert_eq!(entries, Some(0), "a failed launch left files behind: {answer}");
        }
    }
}

/// The same for `start`, whose supervisor makes the reserve itself: a job it starts has
/// its end recorded, or is not started and says why. (Found while fixing the above:
/// started without a reserve, a job that then filled the disk lost its exit status.)
#[test]
fn a_start_on_a_disk_too_full_for_the_reserve_never_loses_the_exit_status() {
    let env = Env::new();
    let body = format!(
        r#"for free in 4096 8192 12288; do
  out=$("$AE" create -- sh -c 'sleep 0.3; head -c 100000 /dev/zero; exit 7')
  {JOB_ID}
  {LEAVE_FREE}
  "$AE" start "$id" || true
  "$AE" wait --until 10000 "$id"
  rm -rf "$AGENT_EXEC_ROOT/$id"
done
"#
    );
    let Some(out) = in_mount_namespace(&env, &on_a_small_disk(&env, "tight", "64k", &body)) else { return };
    let answers = answers(&out);
    assert_eq!(answers.len(), 6, "{answers:?}");
    for pair in answers.chunks(2) {
        let (start, wait) = (&pair[0], &pair[1]);
        if start["state"] == "failed" {
            let error = start["error"].as_str().unwrap_or_default();
            assert!(error.contains("No space left"), "{start}");
            assert_eq!((wait["state"].as_str(), wait["error"].as_str()), (Some("failed"), Some(error)), "{wait}");
        } else {
            assert_eq!(
                (wait["state"].as_str(), wait["exit_code"].as_i64()),
                (Some("exited"), Some(7)),
                "{start} {wait}"
            );
        }
    }
}

/// Once `run` (or `create`) has answered, the job is on the disk under its own name: a copy of the
/// disk taken right after the answer (what a power cut would leave) holds `<root>/<id>`,
/// not the staging name readers skip (found by an attack: the rename was not synced).
#[test]
fn the_disk_holds_the_job_under_its_name_once_run_answers() {
    let env = Env::new();
    let (disk, copy, mount, mounted_copy) = (env.path("disk.img"), env.path("copy.img"), env.path("m"), env.path("c"));
    for dir in [&mount, &mounted_copy] {
        std::fs::create_dir_all(dir).expect("mkdir");
    }
    let script = format!(
        r#"set -e
PATH="$PATH:/usr/sbin:/sbin"
truncate -s 16M '{disk}'
mkfs.ext4 -q -F -O ^has_journal '{disk}'
mount -o loop '{disk}' '{mount}'
export AGENT_EXEC_ROOT='{mount}/root'
for command in "run --snapshot-after 0 -- sleep 30" "create -- true"; do
  out=$("$AE" $command)
  cp '{disk}' '{copy}'
  {JOB_ID}
  "$AE" kill --signal KILL "$id" >/dev/null 2>&1 || true
  mount -o loop,ro '{copy}' '{mounted_copy}'
  printf '{{"id":"%s","entries":"%s"}}\n' "$id" "$(ls -A '{mounted_copy}/root' | tr '\n' ' ')"
  umount '{mounted_copy}'
done
"#
    );
    let Some(out) = in_mount_namespace(&env, &script) else { return };
    let answers = answers(&out);
    assert_eq!(answers.len(), 2, "{answers:?}");
    for (answer, command) in answers.iter().zip(["run", "create"]) {
        let id = answer["id"].as_str().expect("id");
        let entries: Vec<&str> = answer["entries"].as_str().expect("entries").split_whitespace().collect();
        assert!(entries.contains(&id), "after {command}, the disk holds {entries:?}, not job {id}");
    }
}

#[test]
fn a_job_directory_made_read_only_mid_run_keeps_the_exit_status() {
    let env = Env::new();
    let script = format!(
        r#"set -e
out=$("$AE" run --snapshot-after 0 -- sh -c 'while [ ! -e go ]; do sleep 0.01; done; echo bye; exit 42')
{JOB_ID}
{SUPERVISOR_AT_WORK}
dir="$AGENT_EXEC_ROOT/$id"
mount --bind "$dir" "$dir"
mount -o remount,bind,ro "$dir"
touch go
{SUPERVISOR_GONE}
"$AE" status "$id"
umount "$dir"
"$AE" wait --until 5000 "$id"
cat "$dir/state.json" | tr -d '\n'; echo
"#
    );
    let Some(out) = in_mount_namespace(&env, &script) else {
        assert_ne!(std::env::var("CI").as_deref(), Ok("true"));
        return;
    };
    let answers = answers(&out);
    let (while_read_only, after, state) = (&answers[0], &answers[1], &answers[2]);
    for answer in [while_read_only, after] {
        assert_eq!((answer["state"].as_str(), answer["exit_code"].as_i64()), (Some("exited"), Some(42)), "{answer}");
    }
    // Once the directory is writable again the first reader records the outcome.
    assert_eq!((state["job"]["status"].as_str(), state["result"]["exit_code"].as_i64()), (Some("exited"), Some(42)));
    let leftovers: Vec<_> = std::fs::read_dir(&env.root)
        .expect("root")
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with(".outcome-"))
        .collect();
    assert!(leftovers.is_empty(), "the last-resort record is removed once state.json holds it");
}

#[test]
fn a_file_size_limit_cuts_the_logs_but_keeps_the_exit_status() {
    // Without full.log the output is spliced from the pipe to the log: the same fault
    // arrives through another system call.
    for extra in [&[][..], &["--no-full-log"][..]] {
        let env = Env::new();
        let mut args = vec!["run"];
        args.extend_from_slice(extra);
        args.extend_from_slice(&["--wait", "--", "sh", "-c", "head -c 300000 /dev/zero | tr '\\0' y; exit 42"]);
        let mut command = env.command(&args);
        // SAFETY: setrlimit between fork and exec only affects the child (`ulimit -f 100`).
        unsafe {
            command.pre_exec(|| {
                let limit = libc::rlimit { rlim_cur: 100 * 1024, rlim_max: 100 * 1024 };
                libc::setrlimit(libc::RLIMIT_FSIZE, &limit);
                Ok(())
            });
        }
        let out = command.output().expect("spawn");
        let run = single_json(&args, &out);
        assert_eq!((run["state"].as_str(), run["exit_code"].as_i64()), (Some("exited"), Some(42)), "{run}");
        assert_eq!(run["final_snapshot"]["truncated"], true, "{run}");
        assert!(run["final_snapshot"]["log_error"].as_str().is_some_and(|e| e.contains("File too large")), "{run}");
        let id = run["job_id"].as_str().expect("id");
        env.supervisor_gone(id);
        let tail = env.ok(&["tail", id]);
        assert_eq!(tail["truncated"], true, "{tail}");
        let state = env.read_json(id, "state.json");
        assert_eq!(state["result"]["exit_code"], 42);
        assert!(state["log_dropped_bytes"].as_u64().is_some_and(|n| n > 0), "{state}");
    }
}

/// A job that cannot start must be recorded `failed` before `run` answers. With the
/// disk nearly full the supervisor could not write that record, and the record still
/// named the front-end as responsible: `run --wait --forever` then waited on itself for
/// good (and under `serve` the job stayed `running` while the server lived). Every
/// amount of room left, from none to 32 KiB, must give an answer: `failed`, or an error.
#[test]
fn a_failed_start_on_a_full_disk_always_answers() {
    let env = Env::new();
    let mount = env.path("small");
    std::fs::create_dir_all(&mount).expect("mkdir");
    let script = format!(
        r#"set -e
mount -t tmpfs -o size=400k tmpfs '{mount}'
export AGENT_EXEC_ROOT='{mount}/root'
"$AE" create -- true >/dev/null
for k in 0 4 8 12 16 20 24 28 32; do
  rm -f '{mount}/fill'
  avail=$(df -k --output=avail '{mount}' | tail -1)
  if [ "$avail" -gt "$k" ]; then head -c $(( (avail - k) * 1024 )) /dev/zero > '{mount}/fill' 2>/dev/null || true; fi
  out=$(timeout 20 "$AE" run --wait --forever --cwd /nonexistent -- true) && rc=0 || rc=$?
  printf '{{"k":%s,"rc":%s,"answer":%s}}\n' "$k" "$rc" "${{out:-null}}"
done
rm -f '{mount}/fill'
"$AE" list --all
"#
    );
    let Some(out) = in_mount_namespace(&env, &script) else {
        assert_ne!(std::env::var("CI").as_deref(), Ok("true"));
        return;
    };
    let answers = answers(&out);
    let (list, tries) = answers.split_last().expect("answers");
    for case in tries {
        assert_ne!(case["rc"], 124, "run --wait --forever hung: {case}");
        let answer = &case["answer"];
        let failed = answer["state"] == "failed" && answer["error"].is_string();
        assert!(failed || answer["ok"] == false, "neither failed nor an error: {case}");
    }
    let running: Vec<_> = list["jobs"].as_array().expect("jobs").iter().filter(|j| j["state"] == "running").collect();
    assert!(running.is_empty(), "jobs left running: {running:?}");
}
