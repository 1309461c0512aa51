//! Starting the job process in two halves, so that the supervisor records the job while
//! the kernel is still loading it.
//!
//! `Program::fork` forks; the child becomes a session leader, takes /dev/null and the two
//! pipes as stdin, stdout and stderr, enters the working directory and `execvp`s the
//! wrapper. The pid and its start time exist from the fork on, so the parent can write
//! the `running` record (and wait for its fsync) while the child execs on the other
//! core; `Forked::exec_result` then says whether the exec happened. A failed exec sends
//! its errno on a close-on-exec pipe, exactly like `std::process::Command` (which
//! cannot hand out the pid before the exec is over), and the error text is the same.
//!
//! `run` goes one step further (`Program::fork_raw` with a gate): its launcher forks the
//! child before the job directory exists, and the child waits at a gate, right before
//! its `execvp`, so that the front-end can write the job's pid into the job's first
//! `state.json`; the launcher opens the gate once the directory is in place.
//!
//! Everything the child needs is built before the fork; in between it makes only
//! async-signal-safe calls, and `fork_raw` itself allocates nothing (the launcher is the
//! child of a possibly multi-threaded front-end).

use std::collections::BTreeMap;
use std::ffi::{CString, OsString};
use std::fs::File;
use std::io::Read;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;

unsafe extern "C" {
    /// The process environment that `execvp` reads `PATH` from and passes on.
    static mut environ: *const *const libc::c_char;
}

/// A started job process: its pid (also its session and process group id) and the read
/// ends of its stdout and stderr pipes.
pub struct JobProcess {
    pub pid: u32,
    pub stdout: OwnedFd,
    pub stderr: OwnedFd,
}

/// Everything `execvp` needs, built before forking.
pub struct Program {
    argv: Vec<CString>,
    argv_ptrs: Vec<*const libc::c_char>,
    /// Where `execvp` would look for `argv[0]`, in its order (see `resolve`).
    candidates: Vec<CString>,
    _envp: Vec<CString>,
    envp_ptrs: Vec<*const libc::c_char>,
    cwd: Option<CString>,
}

/// `std::process::Command`'s wording for the same refusal.
const NUL_IN_DATA: &str = "nul byte found in provided data";

impl Program {
    /// `argv[0]` is looked up on the `PATH` of `env` (as `execvp` does), which replaces
    /// our environment entirely.
    pub fn new(argv: &[String], env: BTreeMap<OsString, OsString>, cwd: Option<&str>) -> Result<Program, String> {
        let cstring = |bytes: &[u8]| CString::new(bytes).map_err(|_| NUL_IN_DATA.to_string());
        let env_path = env.get(&OsString::from("PATH")).map(|p| p.as_bytes().to_vec());
        let argv: Vec<CString> = argv.iter().map(|a| cstring(a.as_bytes())).collect::<Result<_, _>>()?;
        let envp: Vec<CString> = env
            .into_iter()
            .map(|(key, value)| {
                let mut entry = key.as_bytes().to_vec();
                entry.push(b'=');
                entry.extend_from_slice(value.as_bytes());
                cstring(&entry)
            })
            .collect::<Result<_, _>>()?;
        let cwd = cwd.map(|dir| cstring(dir.as_bytes())).transpose()?;
        let candidates = argv.first().map_or_else(Vec::new, |name| search_path(name, env_path.as_deref()));
        let argv_ptrs = argv.iter().map(|a| a.as_ptr()).chain(std::iter::once(std::ptr::null())).collect();
        let envp_ptrs = envp.iter().map(|e| e.as_ptr()).chain(std::iter::once(std::ptr::null())).collect();
        Ok(Program { argv, argv_ptrs, candidates, _envp: envp, envp_ptrs, cwd })
    }

    /// `argv[0]`, for error messages.
    pub fn name(&self) -> String {
        self.argv.first().map(|a| a.to_string_lossy().into_owned()).unwrap_or_default()
    }

    /// Forks the job process; it is exec'ing (or failing to) when this returns.
    pub fn fork(&self) -> std::io::Result<Forked> {
        let devnull = File::open("/dev/null")?;
        let raw = self.fork_raw(devnull.as_raw_fd(), false).map_err(std::io::Error::from_raw_os_error)?;
        // SAFETY: `fork_raw` hands over fresh descriptors that nobody else owns.
        Ok(unsafe { raw.into_forked() })
    }

    /// The fork itself, callable in the child of a multi-threaded process (the launcher
    /// of `run` forks the job before it execs the supervisor): only async-signal-safe
    /// calls and no allocation. Every descriptor it returns is close-on-exec; on failure
    /// the errno, and nothing is left open. A `gated` child waits before its `execvp`
    /// for one byte on the gate; end of file there (the gate closed, or its holder
    /// dead) makes it exit without running anything.
    pub fn fork_raw(&self, devnull: RawFd, gated: bool) -> Result<RawJob, i32> {
        if self.argv_ptrs.len() < 2 {
            return Err(libc::EINVAL);
        }
        let mut fds = [-1 as RawFd; 8];
        let close_all = |fds: &[RawFd]| {
            for &fd in fds.iter().filter(|&&fd| fd >= 0) {
                // SAFETY: closing descriptors this function created.
                unsafe { libc::close(fd) };
            }
        };
        for pair in fds.chunks_mut(2).take(if gated { 4 } else { 3 }) {
            // SAFETY: pipe2 fills the two-element slice we own.
            if unsafe { libc::pipe2(pair.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
                let errno = errno();
                close_all(&fds);
                return Err(errno);
            }
        }
        let [stdout_read, stdout_write, stderr_read, stderr_write, status_read, status_write, gate_read, gate_write] =
            fds;
        let mut empty_mask: libc::sigset_t = unsafe { std::mem::zeroed() };
        // SAFETY: sigemptyset initialises the set we own.
        unsafe { libc::sigemptyset(&mut empty_mask) };

        // SAFETY: the caller may be multi-threaded; the child only makes
        // async-signal-safe calls before execvp or _exit.
        let pid = unsafe { libc::fork() };
        if pid < 0 {
            let errno = errno();
            close_all(&fds);
            return Err(errno);
        }
        if pid == 0 {
            // SAFETY: in the child, on descriptors and C strings prepared above.
            unsafe {
                // Only the supervisor may hold the gate's write end: its death must reach
                // us as end of file.
                let gate = if gated {
                    libc::close(gate_write);
                    Some(gate_read)
                } else {
                    None
                };
                let errno = self.exec_child(devnull, stdout_write, stderr_write, gate, &empty_mask);
                let bytes = errno.to_ne_bytes();
                libc::write(status_write, bytes.as_ptr().cast(), bytes.len());
                libc::_exit(127);
            }
        }
        close_all(&[stdout_write, stderr_write, status_write, gate_read]);
        Ok(RawJob { pid: pid as u32, stdout: stdout_read, stderr: stderr_read, status: status_read, gate: gate_write })
    }

    /// The child's side: returns only if something failed, with its errno.
    ///
    /// # Safety
    /// Call only in the freshly forked child.
    unsafe fn exec_child(
        &self,
        stdin: RawFd,
        stdout: RawFd,
        stderr: RawFd,
        gate: Option<RawFd>,
        empty_mask: &libc::sigset_t,
    ) -> i32 {
        // SAFETY: async-signal-safe calls on values we own (see the caller).
        unsafe {
            // A session and group of its own, so that signals to -pid reach all of the
            // job's descendants and none of ours.
            if libc::setsid() < 0 {
                return errno();
            }
            // Ignored dispositions survive exec: give back the defaults the supervisor
            // took away (`IGNORED_SIGNALS`), and the mask.
            for &signal in super::IGNORED_SIGNALS {
                libc::signal(signal, libc::SIG_DFL);
            }
            libc::sigprocmask(libc::SIG_SETMASK, empty_mask, std::ptr::null_mut());
            for (fd, target) in [(stdin, 0), (stdout, 1), (stderr, 2)] {
                if !dup_onto(fd, target) {
                    return errno();
                }
            }
            if let Some(cwd) = &self.cwd
                && libc::chdir(cwd.as_ptr()) != 0
            {
                return errno();
            }
            // Found before the gate, which `run` holds shut while it writes and syncs the
            // job's record: after it only one `execve` is left to wait for, instead of
            // one per `PATH` entry in front of the program's (each a failed `execve`).
            let found = self.candidates.iter().find(|path| libc::access(path.as_ptr(), libc::X_OK) == 0);
            if let Some(gate) = gate
                && !pass_gate(gate)
            {
                libc::_exit(127);
            }
            environ = self.envp_ptrs.as_ptr();
            if let Some(path) = found {
                libc::execve(path.as_ptr(), self.argv_ptrs.as_ptr(), self.envp_ptrs.as_ptr());
            }
            // Not found, or that file would not run: `execvp` searches again and fails (or
            // runs a script through `sh`) exactly as it always did.
            libc::execvp(self.argv_ptrs[0], self.argv_ptrs.as_ptr());
            errno()
        }
    }
}

/// What `Program::fork_raw` hands over: the job's pid and the parent's ends of its
/// pipes (the gate's only when gated, else -1), all close-on-exec.
#[derive(Debug, Clone, Copy)]
pub struct RawJob {
    pub pid: u32,
    pub stdout: RawFd,
    pub stderr: RawFd,
    /// Closes with the exec, or carries the errno of what failed.
    pub status: RawFd,
    pub gate: RawFd,
}

impl RawJob {
    /// # Safety
    /// The descriptors (not the gate) must be open and owned by nobody else.
    unsafe fn into_forked(self) -> Forked {
        // SAFETY: per the contract above.
        unsafe {
            let process = JobProcess {
                pid: self.pid,
                stdout: OwnedFd::from_raw_fd(self.stdout),
                stderr: OwnedFd::from_raw_fd(self.stderr),
            };
            Forked { process, status: File::from_raw_fd(self.status) }
        }
    }
}

/// The errno of the last failed call. Async-signal-safe.
fn errno() -> i32 {
    std::io::Error::last_os_error().raw_os_error().unwrap_or(libc::EIO)
}

/// The files `execvp` would try for `name`, in order: none when `name` has a slash
/// (no search) or the environment has no `PATH` (glibc's default then applies), and none
/// for an absurdly long `PATH`; an empty entry is the working directory.
fn search_path(name: &CString, path: Option<&[u8]>) -> Vec<CString> {
    const MOST: usize = 64;
    let name = name.as_bytes();
    let Some(path) = path.filter(|_| !name.is_empty() && !name.contains(&b'/')) else { return Vec::new() };
    if path.split(|&b| b == b':').count() > MOST {
        return Vec::new();
    }
    path.split(|&b| b == b':')
        .filter_map(|dir| {
            let mut file = dir.to_vec();
            if !file.is_empty() {
                file.push(b'/');
            }
            file.extend_from_slice(name);
            CString::new(file).ok()
        })
        .collect()
}

/// Waits for the supervisor's go: one byte, or end of file when it gave up or died.
/// Async-signal-safe.
fn pass_gate(gate: RawFd) -> bool {
    let mut byte = 0u8;
    loop {
        // SAFETY: reading one byte into a local from a descriptor we hold.
        match unsafe { libc::read(gate, (&raw mut byte).cast(), 1) } {
            1 => return true,
            n if n < 0 && std::io::Error::last_os_error().kind() == std::io::ErrorKind::Interrupted => {}
            _ => return false,
        }
    }
}

/// A forked job process whose exec may still be under way.
pub struct Forked {
    process: JobProcess,
    status: File,
}

impl Forked {
    pub fn pid(&self) -> u32 {
        self.process.pid
    }

    /// Waits for the exec: the status pipe closes with it, or carries the errno of what
    /// failed, in which case the child is reaped.
    pub fn exec_result(mut self) -> std::io::Result<JobProcess> {
        let mut bytes = [0u8; 4];
        let mut read = 0;
        while read < bytes.len() {
            match self.status.read(&mut bytes[read..]) {
                Ok(0) => break,
                Ok(n) => read += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        if read == 0 {
            return Ok(self.process);
        }
        reap(self.process.pid);
        Err(std::io::Error::from_raw_os_error(i32::from_ne_bytes(bytes)))
    }
}

/// Waits for the job process to end and releases it.
pub fn reap(pid: u32) {
    let mut status = 0;
    // SAFETY: waiting for our own child.
    while unsafe { libc::waitpid(pid as libc::pid_t, &mut status, 0) } < 0
        && std::io::Error::last_os_error().kind() == std::io::ErrorKind::Interrupted
    {}
}

/// `dup2`, except that a descriptor already in place loses its close-on-exec flag
/// (which `dup2` onto itself would keep). Async-signal-safe.
fn dup_onto(fd: RawFd, target: RawFd) -> bool {
    // SAFETY: fcntl and dup2 on descriptors of ours.
    unsafe { if fd == target { libc::fcntl(fd, libc::F_SETFD, 0) == 0 } else { libc::dup2(fd, target) >= 0 } }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn program(argv: &[&str]) -> Program {
        let argv: Vec<String> = argv.iter().map(|a| a.to_string()).collect();
        let env = BTreeMap::from([(OsString::from("PATH"), OsString::from("/usr/bin:/bin"))]);
        Program::new(&argv, env, None).expect("program")
    }

    #[test]
    fn a_missing_program_is_an_exec_error_and_the_child_is_reaped() {
        let forked = program(&["agent-exec-no-such-program"]).fork().expect("fork");
        let pid = forked.pid();
        let error = forked.exec_result().err().expect("exec must fail");
        assert_eq!(error.raw_os_error(), Some(libc::ENOENT));
        // SAFETY: probing a pid we forked and reaped.
        assert_eq!(unsafe { libc::kill(pid as i32, 0) }, -1, "the child was not reaped");
    }

    #[test]
    fn the_program_runs_in_its_own_session_with_its_output_on_the_pipes() {
        let forked =
            program(&["sh", "-c", "echo out; echo err >&2; read -r _ _ _ _ _ sid _ </proc/$$/stat; echo $sid"])
                .fork()
                .expect("fork");
        let pid = forked.pid();
        let process = forked.exec_result().expect("exec");
        let mut out = String::new();
        File::from(process.stdout).read_to_string(&mut out).expect("stdout");
        let mut err = String::new();
        File::from(process.stderr).read_to_string(&mut err).expect("stderr");
        reap(pid);
        let mut lines = out.lines();
        assert_eq!(lines.next(), Some("out"));
        assert_eq!(lines.next().map(str::trim), Some(pid.to_string().as_str()));
        assert_eq!(err, "err\n");
    }

    #[test]
    fn the_path_is_searched_in_order_with_execvp_rules() {
        let name = CString::new("sh").expect("name");
        let found = search_path(&name, Some(b"/a::/b/c"));
        assert_eq!(found, [c"/a/sh", c"sh", c"/b/c/sh"].map(CString::from));
        assert!(search_path(&CString::new("./sh").expect("name"), Some(b"/a")).is_empty(), "a slash: no search");
        assert!(search_path(&name, None).is_empty(), "no PATH: execvp's default");
    }

    /// A directory that `access` calls executable comes first on the PATH, and the
    /// program found after it is a script without `#!`: `execvp`'s own handling (skip
    /// the directory, run the script with `sh`) still decides what runs.
    #[test]
    fn what_the_search_finds_first_but_cannot_run_falls_back_to_execvp() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (first, second) = (dir.path().join("first"), dir.path().join("second"));
        std::fs::create_dir_all(first.join("agent-exec-probe")).expect("directory in the way");
        std::fs::create_dir_all(&second).expect("second");
        let script = second.join("agent-exec-probe");
        std::fs::write(&script, "echo from-script\n").expect("script");
        std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755)).expect("chmod");
        let path = format!("{}:{}:/usr/bin:/bin", first.display(), second.display());
        let env = BTreeMap::from([(OsString::from("PATH"), OsString::from(path))]);
        let program = Program::new(&["agent-exec-probe".to_string()], env, None).expect("program");
        let forked = program.fork().expect("fork");
        let pid = forked.pid();
        let process = forked.exec_result().expect("exec");
        let mut out = String::new();
        File::from(process.stdout).read_to_string(&mut out).expect("stdout");
        reap(pid);
        assert_eq!(out, "from-script\n");
    }

    /// A gated child runs its program once the gate gets its byte, and nothing at all
    /// when the gate closes without one.
    #[test]
    fn a_gated_child_runs_only_through_an_opened_gate() {
        let dir = tempfile::tempdir().expect("tempdir");
        let devnull = File::open("/dev/null").expect("/dev/null");
        for open in [false, true] {
            let marker = dir.path().join(format!("ran-{open}"));
            let raw = program(&["touch", &marker.to_string_lossy()]).fork_raw(devnull.as_raw_fd(), true).expect("fork");
            // SAFETY: the descriptors are fresh and ours alone.
            let (forked, gate) = unsafe { (raw.into_forked(), File::from_raw_fd(raw.gate)) };
            if open {
                std::io::Write::write_all(&mut &gate, b"x").expect("open the gate");
            }
            drop(gate);
            let pid = forked.pid();
            let result = forked.exec_result();
            reap(pid);
            // A gate closed unopened is no exec failure: the child just ends.
            assert!(result.is_ok(), "{result:?}", result = result.err());
            assert_eq!(marker.exists(), open, "gate opened: {open}");
        }
    }

    #[test]
    fn nul_bytes_are_refused_before_forking() {
        let env = BTreeMap::from([(OsString::from("A"), OsString::from("x\0y"))]);
        assert_eq!(Program::new(&["true".to_string()], env, None).err().as_deref(), Some(NUL_IN_DATA));
    }
}
