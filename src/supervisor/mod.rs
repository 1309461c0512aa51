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
mod handover;
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
use std::io::{BufRead, BufReader, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::fs::DirBuilderExt;
use std::path::Path;
use std::time::{Duration, Instant};

#[cfg(test)]
pub use env::parse_env_file;
pub use env::{check_entry, check_key, check_pair, masked, split_entry};
pub use handover::AfterAnswer;
pub use launch::{Handshake, Launching, Pids, SUPERVISE_ARG, launch};
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
/// it (SIGTERM to its group, SIGKILL after kill-after; a second request sends the
/// SIGKILL at once), and its end is recorded before the supervisor exits, so a `pkill
/// agent-exec` does not lose an exit status.
/// How long the record of a launch (`start`, then `fail`'s) waits for the job's lock: less
/// than the front-end waits for the handshake, so that a supervisor held up by a lock
/// whose holder is stopped gives up, and says so, while its front-end is still there
/// to hear it. Waiting longer, it would start the job after the front-end had answered
/// and exited, and readers had reported the job lost meanwhile.
const START_LOCK_PATIENCE: std::time::Duration =
    launch::HANDSHAKE_PATIENCE.saturating_sub(std::time::Duration::from_secs(5));

const FAIL_LOCK_PATIENCE: std::time::Duration = std::time::Duration::from_secs(1);

const STOP_SIGNALS: &[libc::c_int] = &[libc::SIGTERM, libc::SIGINT, libc::SIGQUIT];

/// Entry point of the hidden `__supervise` subcommand; returns the process exit code.
pub fn main(job_dir: &Path) -> i32 {
    // SAFETY: plain signal disposition changes and fcntl on descriptors we were given.
    unsafe {
        for &signal in IGNORED_SIGNALS {
            libc::signal(signal, libc::SIG_IGN);
        }
        libc::fcntl(handover::ACK_FD, libc::F_SETFD, libc::FD_CLOEXEC);
        libc::fcntl(handover::SPEC_FD, libc::F_SETFD, libc::FD_CLOEXEC);
    }
    // First, so that a stop request that reached our launcher (which blocks them, see
    // `launch::hand_over_run`) or us since is handled, not fatal.
    let signals = watch::Signals::new();
    let id = job_dir.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let job = JobDir { id, path: job_dir.to_path_buf() };
    // SAFETY: the launcher set up fds 3 and 4 for us; nothing else owns them.
    let mut spec_pipe = BufReader::new(unsafe { File::from_raw_fd(handover::SPEC_FD) });
    let mut ack = unsafe { File::from_raw_fd(handover::ACK_FD) };
    let mut payload = Vec::new();
    // The spec is one line: the pipe stays open after it when the launch is staged.
    let spec = spec_pipe.read_until(b'\n', &mut payload).map_err(|e| format!("read launch spec: {e}")).and_then(|_| {
        if payload.is_empty() {
            // `run` forks us before the job exists; its front-end gave up (or died)
            // before handing the job over.
            return Err("the front-end exited before handing the job over".to_string());
        }
        serde_json::from_slice::<LaunchSpec>(&payload).map_err(|e| format!("parse launch spec: {e}"))
    });
    let spec = match spec {
        Ok(spec) => spec,
        Err(reason) => return fail(&job, None, &mut ack, reason),
    };
    drop(spec_pipe);
    let signals = match signals {
        Ok(signals) => signals,
        Err(e) => return fail(&job, Some(&spec), &mut ack, format!("signal pipe: {e}")),
    };
    if spec.staged {
        return adopt(&job, spec, ack, signals);
    }
    started(&job, spec, ack, signals)
}

/// Starts the job (`start`, or a `run` whose launcher forked no job process), answers,
/// and watches it.
fn started(job: &JobDir, spec: LaunchSpec, mut ack: File, signals: watch::Signals) -> i32 {
    match start(job, &spec, signals) {
        Ok(Some(started)) => {
            let _ = ack.write_all(b"ok\n");
            drop(ack);
            // Set up after the answer, which does not depend on it: the output-match
            // configuration is first needed by the loop, and the job's output waits in
            // its pipes until then.
            let Started { process, spawned, signals, logs, recorder } = started;
            watch::Watch::new(job.clone(), spec, process, spawned, signals, logs, recorder).run();
            0
        }
        // The job was already finished (repaired as lost, or killed) before we started.
        Ok(None) => 0,
        Err(reason) => fail(job, Some(&spec), &mut ack, reason),
    }
}

/// Records a failure to start (docs/decisions.md OP-1), answers the front-end, and delivers the
/// completion event if sinks are configured.
fn fail(job: &JobDir, spec: Option<&LaunchSpec>, ack: &mut File, reason: String) -> i32 {
    // Briefly: a start that failed on a held lock has spent its wait already, and the
    // front-end, still waiting for the handshake, records the failure if we cannot.
    let state = job.lock_before(FAIL_LOCK_PATIENCE).ok().and_then(|_lock| {
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
        // Not recorded (not even in place): the front-end records it or reports the error.
        job.write_final_state(&state).ok()?;
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

/// What the launcher of `run` left on `ADOPT_FD` (`None` if it could not).
fn read_adoption() -> Option<handover::Adoption> {
    // SAFETY: probing a descriptor number; the launcher leaves it open only with the
    // record in it (a placeholder there closed with our exec).
    if unsafe { libc::fcntl(handover::ADOPT_FD, libc::F_GETFD) } < 0 {
        return None;
    }
    // SAFETY: open, and ours alone (see above).
    let record = unsafe { File::from_raw_fd(handover::ADOPT_FD) };
    let mut line = String::new();
    BufReader::new(record).read_line(&mut line).ok()?;
    handover::Adoption::parse(&line)
}

/// The launch of `run` (docs/decisions.md OP-2): our launcher, before it exec'd us, did
/// the start handshake and left a record of it (`handover::Adoption`). A job process it
/// let through its gate is ours to watch; the front-end has its answer already, unless
/// the exec failed. No `state.json` write of ours is on this path: the record is the
/// front-end's, written with our pid and the job's, so no reader can have judged us
/// lost; a `kill` since then signalled the job's process group, and the watch loop
/// records how it ended, as for any job.
fn adopt(job: &JobDir, spec: LaunchSpec, mut ack: File, signals: watch::Signals) -> i32 {
    let adoption = read_adoption();
    let (pid, spawned_ns, errno) = match adoption {
        Some(handover::Adoption::Forked { pid, spawned_ns, errno, yielding }) => {
            if yielding {
                handover::stop_yielding();
            }
            (pid, spawned_ns, errno)
        }
        Some(handover::Adoption::NotForked) => return started(job, spec, ack, signals),
        Some(handover::Adoption::Abandoned) => {
            return fail(job, Some(&spec), &mut ack, "the front-end exited before handing the job over".to_string());
        }
        // The launcher could not make the pipe: nothing tells which process is the job.
        None => return fail(job, Some(&spec), &mut ack, "the launcher lost the job process".to_string()),
    };
    // SAFETY: with a forked job process the launcher put its stdout and stderr pipes
    // here; nothing else owns them. Kept out of the notification commands we start.
    let (stdout, stderr) =
        unsafe { (OwnedFd::from_raw_fd(handover::JOB_STDOUT_FD), OwnedFd::from_raw_fd(handover::JOB_STDERR_FD)) };
    for fd in [&stdout, &stderr] {
        // SAFETY: setting a flag on a descriptor we own.
        unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_SETFD, libc::FD_CLOEXEC) };
    }
    if errno != 0 {
        drop((stdout, stderr));
        spawn::reap(pid);
        // Built again to name the program; if that fails now, its reason is the better
        // one (a working directory removed since the front-end checked it made the job
        // process's chdir fail, which read as "spawn : No such file or directory").
        let reason = match job_image(&spec) {
            Ok(image) => spawn_error(&image.name(), &std::io::Error::from_raw_os_error(errno)),
            Err(reason) => reason,
        };
        return fail(job, Some(&spec), &mut ack, reason);
    }
    let mut stop = |reason: String| {
        // The job is running and its output would go nowhere: stop it, then record why.
        // SAFETY: signalling the process group our child leads.
        unsafe { libc::kill(-(pid as i32), libc::SIGKILL) };
        spawn::reap(pid);
        fail(job, Some(&spec), &mut ack, reason)
    };
    let logs = match open_logs(job, &spec, true) {
        Ok(logs) => logs,
        Err(reason) => return stop(reason),
    };
    let recorder = record::Recorder::adopt(job);
    // The duration counts from the gate, not from our start-up.
    let since_gate = Duration::from_nanos(handover::monotonic_ns().saturating_sub(spawned_ns));
    let spawned = Instant::now().checked_sub(since_gate).unwrap_or_else(Instant::now);
    drop(ack);
    let process = spawn::JobProcess { pid, stdout, stderr };
    watch::Watch::new(job.clone(), spec, process, spawned, signals, logs, recorder).run();
    0
}

/// "spawn PROGRAM: ERROR", the reason recorded when the job cannot be started.
fn spawn_error(program: &str, e: &dyn std::fmt::Display) -> String {
    format!("spawn {program}: {e}")
}

/// The job's logs, truncated (docs/compatibility.md §5.4); for `run` (`existing`), the
/// empty ones its front-end created, never created again.
fn open_logs(job: &JobDir, spec: &LaunchSpec, existing: bool) -> Result<logs::Logs, String> {
    let open = |name: &str| {
        let path = job.file(name);
        let file = if existing { logs::open_existing(&path)? } else { logs::open(&path, false)? };
        Ok::<_, String>(logs::LogFile::new(file, path))
    };
    let (stdout_log, stderr_log) = (open(jobstore::STDOUT_LOG)?, open(jobstore::STDERR_LOG)?);
    let full_log = match (spec.no_full_log, spec.full_log.parent() == Some(job.path.as_path())) {
        (true, _) => None,
        (false, true) => Some(open(jobstore::FULL_LOG)?),
        (false, false) => Some(open_custom_log(&spec.full_log)?),
    };
    Ok(logs::Logs::new(stdout_log, stderr_log, full_log, spec.max_log_bytes))
}

/// The job process's exec image: its environment, the working directory checked, the
/// wrapped argv. `run` builds it in the front-end, so that its launcher can fork the job
/// before exec'ing us; a custom log that cannot be opened is found there too, so that
/// the job never starts without its logs (the front-end then leaves the start to us, and
/// we find the same error and record it).
pub fn job_image(spec: &LaunchSpec) -> Result<spawn::Program, String> {
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
    spawn::Program::new(&argv, environment, spec.cwd.as_deref()).map_err(|e| spawn_error(program, &e))
}

/// `job_image`, and the custom log checked (see there).
pub fn prepare_run(spec: &LaunchSpec, job_path: &Path) -> Result<spawn::Program, String> {
    let image = job_image(spec)?;
    if !spec.no_full_log && spec.full_log.parent() != Some(job_path) {
        open_custom_log(&spec.full_log)?;
    }
    Ok(image)
}

/// Opens the logs, builds the environment, starts the job and records it as running.
/// Returns `None` if the job reached a terminal state before we could start it.
fn start(job: &JobDir, spec: &LaunchSpec, signals: watch::Signals) -> Result<Option<Started>, String> {
    let logs = open_logs(job, spec, false)?;
    let image = job_image(spec)?;
    let program = image.name();
    let spawn_error = |e: &dyn std::fmt::Display| spawn_error(&program, e);
    let lock = job.lock_before(START_LOCK_PATIENCE).map_err(|e| e.message)?;
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
    let recorder = match (recorded.map_err(|e| e.message), recorder) {
        (Ok(()), Ok(recorder)) => recorder,
        // Without a running record nobody could follow the job, and without room for
        // its reserve nobody could learn how it ended: stop it and report.
        (Err(e), _) | (_, Err(e)) => {
            // SAFETY: signalling the process group that the exec'd child leads.
            unsafe { libc::kill(-(pid as i32), libc::SIGKILL) };
            spawn::reap(pid);
            return Err(e);
        }
    };
    drop(lock);
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

/// `run --log PATH`: a path chosen by the caller may be a symlink, and gets its parent
/// directories created.
fn open_custom_log(path: &Path) -> Result<logs::LogFile, String> {
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(parent)
            .map_err(|e| format!("create log directory {}: {e}", parent.display()))?;
    }
    Ok(logs::LogFile::new(logs::open(path, true)?, path.to_path_buf()))
}
