//! Resolving the jobs root (docs/compatibility.md §3.4, docs/decisions.md OP-14) and finding jobs in it.

use std::ffi::CStr;
use std::fs;
use std::os::unix::fs::{DirBuilderExt, MetadataExt};
use std::path::{Component, Path, PathBuf};

use super::{JobDir, ambiguous, is_job_dir, valid_id};
use crate::error::{Code, Error, Result};

#[derive(Debug, Clone)]
pub struct Root {
    pub path: PathBuf,
}

impl Root {
    /// First match wins: `--root`, `$AGENT_EXEC_ROOT`, `$XDG_DATA_HOME/agent-exec/jobs`,
    /// `~/.local/share/agent-exec/jobs`. The result is made absolute lexically (never
    /// through symlinks), so every path in a response is absolute.
    pub fn resolve(flag: Option<&str>) -> Root {
        let non_empty = |name: &str| std::env::var_os(name).filter(|v| !v.is_empty()).map(PathBuf::from);
        let raw = flag
            .map(PathBuf::from)
            .or_else(|| non_empty("AGENT_EXEC_ROOT"))
            .or_else(|| non_empty("XDG_DATA_HOME").map(|d| d.join("agent-exec/jobs")))
            .or_else(|| home_dir().map(|h| h.join(".local/share/agent-exec/jobs")))
            .unwrap_or_else(|| PathBuf::from("~/.local/share/agent-exec/jobs"));
        Root { path: absolutize(&raw) }
    }

    pub fn display(&self) -> String {
        self.path.to_string_lossy().into_owned()
    }

    /// Creates the root (and missing parents) with mode 0700.
    pub fn create(&self) -> Result<()> {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&self.path)
            .map_err(|e| Error::io(format!("create jobs root {}", self.path.display()), e))
    }

    /// The root must be ours and writable by nobody else (issue 11): another user who
    /// can write to it can replace a job between `create` and `start` and have us run
    /// their definition. A root that does not exist yet is created private.
    pub fn check_secure(&self) -> Result<()> {
        match fs::metadata(&self.path) {
            Ok(metadata) => insecure(&self.path, "jobs root", &metadata).map_or(Ok(()), Err),
            Err(_) => Ok(()),
        }
    }

    pub fn job(&self, id: &str) -> JobDir {
        JobDir::new(&self.path, id)
    }

    /// Finds a job by id or unique prefix (docs/compatibility.md §4 with docs/decisions.md OP-5): the text is
    /// validated first, matched case-insensitively, and only job directories count.
    pub fn lookup(&self, id: &str) -> Result<JobDir> {
        if let Some(name) = id.strip_prefix('@') {
            return self.lookup_name(id, name).and_then(checked);
        }
        if !valid_id(id) {
            return Err(Error::not_found(id));
        }
        let upper = id.to_ascii_uppercase();
        for exact in [id, upper.as_str()] {
            let path = self.path.join(exact);
            if is_job_dir(&path) {
                return checked(JobDir { id: exact.to_string(), path });
            }
        }
        let Ok(entries) = fs::read_dir(&self.path) else {
            return Err(Error::not_found(id));
        };
        let mut candidates: Vec<String> = entries
            .filter_map(|entry| entry.ok()?.file_name().into_string().ok())
            .filter(|name| name.to_ascii_uppercase().starts_with(&upper) && is_job_dir(&self.path.join(name)))
            .collect();
        match candidates.len() {
            0 => Err(Error::not_found(id)),
            1 => checked(self.job(&candidates.remove(0))),
            _ => Err(ambiguous(id, candidates)),
        }
    }

    /// Names of the directories directly below the root; `None` when the root is missing.
    /// Dot-directories are jobs still being created (see `create_job`) and are skipped.
    pub fn dir_names(&self) -> Result<Option<Vec<String>>> {
        let entries = match fs::read_dir(&self.path) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(Error::io(format!("read jobs root {}", self.path.display()), e)),
        };
        let mut names = Vec::new();
        for entry in entries.flatten() {
            let is_dir = entry.file_type().is_ok_and(|t| t.is_dir());
            if let (true, Ok(name)) = (is_dir, entry.file_name().into_string())
                && !name.starts_with('.')
            {
                names.push(name);
            }
        }
        Ok(Some(names))
    }
}

/// A job directory is trusted like the root: ours, and writable by nobody else.
fn checked(job: JobDir) -> Result<JobDir> {
    match fs::symlink_metadata(&job.path) {
        Ok(metadata) => insecure(&job.path, "job directory", &metadata).map_or(Ok(job), Err),
        Err(e) => Err(Error::io(format!("read job directory {}", job.path.display()), e)),
    }
}

/// The `insecure_root` error for a directory that another user owns or may write to.
fn insecure(path: &Path, what: &str, metadata: &fs::Metadata) -> Option<Error> {
    // SAFETY: geteuid cannot fail.
    let me = unsafe { libc::geteuid() };
    let problem = if metadata.uid() != me {
        format!("is owned by uid {}, not by us (uid {me})", metadata.uid())
    } else if metadata.mode() & 0o022 != 0 {
        format!("is writable by group or others (mode {:o})", metadata.mode() & 0o7777)
    } else {
        return None;
    };
    Some(Error::new(
        Code::InsecureRoot,
        format!(
            "{what} {} {problem}: another user could plant jobs in it; use a directory of your own that only you \
             can write (chown it to yourself and chmod 700), or another --root",
            path.display()
        ),
    ))
}

/// Joins a relative path to the current directory and removes `.` and `..` lexically.
pub fn absolutize(path: &Path) -> PathBuf {
    let joined = if path.is_absolute() {
        path.to_path_buf()
    } else {
        std::env::current_dir().map(|cwd| cwd.join(path)).unwrap_or_else(|_| path.to_path_buf())
    };
    let mut out = PathBuf::new();
    for component in joined.components() {
        match component {
            Component::ParentDir => {
                out.pop();
            }
            Component::CurDir => {}
            other => out.push(other.as_os_str()),
        }
    }
    out
}

/// `$HOME`, else the password database entry of the current user.
pub fn home_dir() -> Option<PathBuf> {
    if let Some(home) = std::env::var_os("HOME").filter(|h| !h.is_empty()) {
        return Some(PathBuf::from(home));
    }
    let mut buf = vec![0 as libc::c_char; 4096];
    let mut pwd: libc::passwd = unsafe { std::mem::zeroed() };
    let mut result: *mut libc::passwd = std::ptr::null_mut();
    // SAFETY: every pointer refers to memory we own for the duration of the call.
    let rc = unsafe { libc::getpwuid_r(libc::getuid(), &mut pwd, buf.as_mut_ptr(), buf.len(), &mut result) };
    if rc != 0 || result.is_null() || pwd.pw_dir.is_null() {
        return None;
    }
    // SAFETY: getpwuid_r succeeded, so pw_dir points to a NUL-terminated string in `buf`.
    let dir = unsafe { CStr::from_ptr(pwd.pw_dir) };
    Some(PathBuf::from(dir.to_string_lossy().into_owned()))
}

#[cfg(test)]
mod tests {
    use super::absolutize;
    use std::path::Path;

    #[test]
    fn absolutize_is_lexical() {
        assert_eq!(absolutize(Path::new("/a/b/../c/./d")), Path::new("/a/c/d"));
        assert_eq!(absolutize(Path::new("/..")), Path::new("/"));
        assert!(absolutize(Path::new("x/../y")).is_absolute());
    }
}
