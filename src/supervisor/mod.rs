//! The supervisor: one detached process per job that owns the job process, its logs and
//! its state from start to finish (docs/compatibility.md §6, docs/decisions.md OP-1, OP-2, OP-20).
//!
//! It is exec'd by `launch` as `agent-exec __supervise <job_dir>`, reads its launch spec
//! from fd 3, starts the job in a new session, answers the front-end on fd 4, and then
//! runs `watch::Watch` until the job has ended and its output is drained. After the start
//! handshake it is the only writer of `state.json`, apart from the `kill` record and the
//! lost-supervisor repair, which other processes write under the job lock.

mod capture;
mod env;
mod evaluate;
mod launch;
mod login_path;
mod logs;
mod matcher;
mod notify;
mod record;
mod spawn;
mod spec;
mod timers;
mod watch;

use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::FromRawFd;
use std::os::unix::fs::DirBuilderExt;
use std::path::Path;
use std::time::Instant;

#[cfg(test)]
pub use env::parse_env_file;
pub use env::{check_entry, check_key, check_pair, masked, split_entry};
pub use launch::{Handshake, Launching, SUPERVISE_ARG, launch};
pub use notify::deliver_completion;
pub use spec::LaunchSpec;

use crate::jobstore::{self, JobDir, liveness};
use crate::time;
use crate::wire::{JobResult, Status};

/// Signals the supervisor ignores, since dying of one would lose the job's exit status:
/// SIGHUP (it has no terminal), SIGPIPE (a sink or front-end that went away is an
/// error, not a death), SIGXFSZ (a log that hits the file-size limit is a log error), and
/// those that mean nothing to it (a stray `pkill -USR1 agent-exec`). Ignored
/// dispositions survive `exec`: the job and sinks get the defaults back.
pub(crate) const IGNORED_SIGNALS: &[libc::c_int] = &[
    libc::SIGHUP,
    libc::SIGPIPE,
    libc::SIGXFSZ,
    libc::SIGUSR1,
    libc::SIGUSR2,
    libc::SIGALRM,
    libc::SIGVTALRM,
    libc::SIGPROF,
    libc::SIGIO,
];

/// Signals that ask the supervisor to stop: the job gets what its timeout would give
/// it (SIGTERM to its group, SIGKILL after kill-after), and its end is recorded before
/// the supervisor exits, so a `pkill agent-exec` does not lose an exit status.
const STOP_SIGNALS: &[libc::c_int] = &[libc::SIGTERM, libc::SIGINT, libc::SIGQUIT];

/// Entry point of the hidden `__supervise` subcommand; returns the process exit code.
pub fn main(job_dir: &Path) -> i32 {
    // SAFETY: plain signal disposition changes and fcntl on descriptors we were given.
    unsafe {
        for &signal in IGNORED_SIGNALS {
            libc::signal(signal, libc::SIG_IGN);
        }
        libc::fcntl(launch::ACK_FD, libc::F_SETFD, libc::FD_CLOEXEC);
        libc::fcntl(launch::SPEC_FD, libc::F_SETFD, libc::FD_CLOEXEC);
    }
    let id = job_dir.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let job = JobDir { id, path: job_dir.to_path_buf() };
    // SAFETY: the launcher set up fds 3 and 4 for us; nothing else owns them.
    let mut spec_pipe = unsafe { File::from_raw_fd(launch::SPEC_FD) };
    let mut ack = unsafe { File::from_raw_fd(launch::ACK_FD) };
    let mut payload = Vec::new();
    let spec = spec_pipe.read_to_end(&mut payload).map_err(|e| format!("read launch spec: {e}")).and_then(|_| {
        if payload.is_empty() {
            // `run` forks us before the job exists; its front-end gave up (or died)
            // before handing the job over.
            return Err("the front-end exited before handing the job over".to_string());
        }
        serde_json::from_slice::<LaunchSpec>(&payload).map_err(|e| format!("parse launch spec: {e}"))
    });
    drop(spec_pipe);
    let spec = match spec {
        Ok(spec) => spec,
        Err(reason) => return fail(&job, None, &mut ack, reason),
    };
    match start(&job, &spec) {
        Ok(Some(started)) => {
            let _ = ack.write_all(b"ok\n");
            drop(ack);
            // Set up after the answer, which does not depend on it: the output-match
            // configuration is first needed by the loop, and the job's output waits in
            // its pipes until then.
            let Started { process, spawned, signals, logs, recorder } = started;
            watch::Watch::new(job, spec, process, spawned, signals, logs, recorder).run();
            0
        }
        // The job was already finished (repaired as lost, or killed) before we started.
        Ok(None) => 0,
        Err(reason) => fail(&job, Some(&spec), &mut ack, reason),
    }
}

/// Records a failure to start (docs/decisions.md OP-1), answers the front-end, and delivers the
/// completion event if sinks are configured.
fn fail(job: &JobDir, spec: Option<&LaunchSpec>, ack: &mut File, reason: String) -> i32 {
    let state = job.lock().ok().and_then(|_lock| {
        let mut state = job.read_state().ok()?;
        if state.status().is_terminal() {
            return Some(state);
        }
        state.supervisor_pid = Some(std::process::id());
        state.supervisor_pid_start = liveness::start_time(std::process::id());
        // A job process whose exec failed was recorded, but never ran the job.
        state.pid = None;
        state.pid_start = None;
        state.finish(Status::Failed, JobResult::default(), Some(reason.clone()), time::now());
        let _ = job.write_state(&state);
        Some(state)
    });
    let _ = writeln!(ack, "failed\t{}", reason.replace(['\n', '\t'], " "));
    if let (Some(state), Some(spec)) = (state, spec) {
        deliver_completion(job, &spec.wrapper, spec.cwd.as_deref(), &state);
    }
    1
}

struct Started {
    process: spawn::JobProcess,
    spawned: Instant,
    signals: watch::Signals,
    logs: logs::Logs,
    recorder: record::Recorder,
}

/// Opens the logs, builds the environment, starts the job and records it as running.
/// Returns `None` if the job reached a terminal state before we could start it.
fn start(job: &JobDir, spec: &LaunchSpec) -> Result<Option<Started>, String> {
    let stdout_path = job.file(jobstore::STDOUT_LOG);
    let stderr_path = job.file(jobstore::STDERR_LOG);
    let stdout_log = logs::LogFile::new(logs::open(&stdout_path, false)?, stdout_path);
    let stderr_log = logs::LogFile::new(logs::open(&stderr_path, false)?, stderr_path);
    let full_log = if spec.no_full_log { None } else { Some(open_full_log(job, &spec.full_log)?) };
    let mut environment = env::build(spec.inherit_env, &spec.env_files, &spec.env)?;
    if let Some(cwd) = &spec.cwd {
        match std::fs::metadata(cwd) {
            Ok(m) if m.is_dir() => {}
            Ok(_) => return Err(format!("working directory {cwd}: not a directory")),
            Err(e) => return Err(format!("working directory {cwd}: {e}")),
        }
    }
    let argv = login_path::keep_given_path(spec.argv(), &spec.wrapper, &mut environment);
    let Some(program) = argv.first() else {
        return Err("shell wrapper must not be empty".to_string());
    };
    let spawn_error = |e: &dyn std::fmt::Display| format!("spawn {program}: {e}");
    let image = spawn::Program::new(&argv, environment, spec.cwd.as_deref()).map_err(|e| spawn_error(&e))?;
    let signals = watch::Signals::new().map_err(|e| format!("signal pipe: {e}"))?;

    let lock = job.lock().map_err(|e| e.message)?;
    let mut state = job.read_state().map_err(|e| e.message)?;
    if state.status() != Status::Running {
        return Ok(None);
    }
    let forked = image.fork().map_err(|e| spawn_error(&e))?;
    let spawned = Instant::now();
    let pid = forked.pid();
    state.job.started_at = Some(time::now());
    state.updated_at = time::now();
    state.pid = Some(pid);
    // The start time is the fork's: it is known before the exec, and stays.
    state.pid_start = liveness::start_time(pid);
    state.supervisor_pid = Some(std::process::id());
    state.supervisor_pid_start = liveness::start_time(std::process::id());
    // Written and synced while the child execs; the answer still waits for both.
    let recorded = job.write_state(&state);
    // The reserve is in the directory before the caller hears of the job (an `rm -r`
    // of it never races with us), and costs no time: the child is still exec'ing.
    let recorder = record::Recorder::new(job);
    let process = forked.exec_result().map_err(|e| spawn_error(&e))?;
    if let Err(e) = recorded {
        // Without a running record nobody could follow the job: stop it and report.
        // SAFETY: signalling the process group that the exec'd child leads.
        unsafe { libc::kill(-(pid as i32), libc::SIGKILL) };
        spawn::reap(pid);
        return Err(e.message);
    }
    drop(lock);
    let logs = logs::Logs::new(stdout_log, stderr_log, full_log, spec.max_log_bytes);
    Ok(Some(Started { process, spawned, signals, logs, recorder }))
}

/// Gives a child the default dispositions of `IGNORED_SIGNALS` back before it execs.
/// Only calls `signal`, which is async-signal-safe.
fn restore_signal_defaults() {
    for &signal in IGNORED_SIGNALS {
        // SAFETY: resetting a disposition in a child between fork and exec.
        unsafe { libc::signal(signal, libc::SIG_DFL) };
    }
}

/// `full.log`: the job directory's own never follows a symlink; a `--log` path chosen
/// by the caller may be one, and gets its parent directories created.
fn open_full_log(job: &JobDir, path: &Path) -> Result<logs::LogFile, String> {
    let own = path.parent() == Some(job.path.as_path());
    if !own && let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(parent)
            .map_err(|e| format!("create log directory {}: {e}", parent.display()))?;
    }
    Ok(logs::LogFile::new(logs::open(path, !own)?, path.to_path_buf()))
}
