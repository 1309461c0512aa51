//! What a job is, before it exists: the definition shared by `run`, `create`, HTTP
//! `POST /exec` and the MCP tools, and the creation of its directory.

use std::path::PathBuf;

use crate::error::{Error, Result};
use crate::jobstore::staging::Staging;
use crate::jobstore::{self, JobDir, Root};
use crate::supervisor::{LaunchSpec, masked, split_entry};
use crate::time;
use crate::wire::{JobRef, Meta, Notification, SCHEMA_VERSION, State};

/// A job's definition, fully resolved: the front door has already read `config.toml`
/// for the wrapper and the environment for `--secret-env`.
#[derive(Debug, Clone)]
pub struct Definition {
    pub command: Vec<String>,
    /// `--name` (already checked).
    pub name: Option<String>,
    /// `KEY=VALUE` entries with real values.
    pub env: Vec<String>,
    pub env_files: Vec<String>,
    pub inherit_env: bool,
    pub mask: Vec<String>,
    pub tags: Vec<String>,
    pub timeout_ms: u64,
    pub kill_after_ms: u64,
    pub progress_every_ms: u64,
    pub notification: Option<Notification>,
    pub wrapper: Vec<String>,
    /// The working directory as given (made absolute when the job is created).
    pub cwd: Option<String>,
    pub max_log_bytes: Option<u64>,
    pub no_full_log: bool,
}

impl Definition {
    /// The definition a `created` job stored (`create` keeps the real env values in
    /// `env_vars_runtime`), with the effective working directory recorded then.
    pub fn stored(meta: Meta) -> Definition {
        Definition {
            command: meta.command,
            name: meta.name,
            env: meta.env_vars_runtime,
            env_files: meta.env_files,
            inherit_env: meta.inherit_env,
            mask: meta.mask,
            tags: meta.tags,
            timeout_ms: meta.timeout_ms,
            kill_after_ms: meta.kill_after_ms,
            progress_every_ms: meta.progress_every_ms,
            notification: meta.notification,
            wrapper: meta.shell_wrapper,
            cwd: meta.cwd,
            max_log_bytes: meta.max_log_bytes,
            no_full_log: meta.no_full_log,
        }
    }

    /// The env entries as shown to users: masked values replaced by `***`.
    pub fn display_env(&self) -> Vec<String> {
        masked(&self.env, &self.mask)
    }

    /// `meta.json` for a new job. Only `create` stores the real values
    /// (`env_vars_runtime`), because `start` needs them later.
    pub fn meta(&self, id: &str, root: &Root, keep_runtime_env: bool, full_log_path: Option<String>) -> Result<Meta> {
        Ok(Meta {
            job: JobRef { id: id.to_string() },
            name: self.name.clone(),
            schema_version: SCHEMA_VERSION.to_string(),
            command: self.command.clone(),
            created_at: time::now(),
            root: root.display(),
            env_keys: self.env.iter().map(|e| split_entry(e).0.to_string()).collect(),
            env_vars: self.display_env(),
            env_vars_runtime: if keep_runtime_env { self.env.clone() } else { Vec::new() },
            mask: self.mask.clone(),
            cwd: Some(effective_cwd(self.cwd.as_deref())?),
            notification: self.notification.clone(),
            tags: self.tags.clone(),
            inherit_env: self.inherit_env,
            env_files: self.env_files.clone(),
            timeout_ms: self.timeout_ms,
            kill_after_ms: self.kill_after_ms,
            progress_every_ms: self.progress_every_ms,
            shell_wrapper: self.wrapper.clone(),
            full_log_path,
            max_log_bytes: self.max_log_bytes,
            no_full_log: self.no_full_log,
        })
    }

    pub fn spec(&self, cwd: Option<String>, full_log: PathBuf) -> LaunchSpec {
        LaunchSpec {
            command: self.command.clone(),
            wrapper: self.wrapper.clone(),
            env: self.env.clone(),
            env_files: self.env_files.clone(),
            inherit_env: self.inherit_env,
            cwd,
            full_log,
            timeout_ms: self.timeout_ms,
            kill_after_ms: self.kill_after_ms,
            progress_every_ms: self.progress_every_ms,
            max_log_bytes: self.max_log_bytes,
            no_full_log: self.no_full_log,
            staged: false,
        }
    }
}

/// The effective working directory (docs/compatibility.md §6.5): canonical if it exists, else made
/// absolute with `..` removed lexically.
///
/// It must be valid UTF-8: `meta.cwd` is a JSON string, and a lossy copy (`\xff` as
/// U+FFFD) names another directory, so `start` failed on it and `list` and `delete
/// --all` from a directory differing in that byte took these jobs for theirs.
pub fn effective_cwd(raw: Option<&str>) -> Result<String> {
    let path = match raw {
        Some(raw) => PathBuf::from(raw),
        // Never "/" in its place: a job defined from a directory deleted meanwhile
        // would be recorded, and started, there (think of `rm -rf ./build`).
        None => std::env::current_dir()
            .map_err(|e| Error::internal(format!("the current working directory cannot be read ({e}); give --cwd")))?,
    };
    let path = std::fs::canonicalize(&path).unwrap_or_else(|_| jobstore::root::absolutize(&path));
    path.into_os_string().into_string().map_err(|path| {
        Error::internal(format!("working directory {path:?} is not valid UTF-8 (job files store it as UTF-8 text)"))
    })
}

/// Creates a complete job directory (`create`): it is filled under a dot-name
/// (`.new-<id>`, ignored by every reader) and renamed into place, so a job never exists
/// without its `meta.json`, `state.json` and empty logs, whatever signal hits us midway.
pub fn create_job(root: &Root, meta: &Meta, state: &State) -> Result<JobDir> {
    let mut staging = stage_job(root, &meta.job.id)?;
    staging.write_meta(meta)?;
    staging.write_state(state)?;
    staging.create_logs()?;
    let job = staging.commit()?;
    jobstore::sync_dir(&root.path);
    Ok(job)
}

/// The first steps of every job creation: the root, checked, and an empty staging
/// directory. The files to sync are written first, so that their write-back runs while
/// the others (the empty logs) are made.
pub fn stage_job(root: &Root, id: &str) -> Result<Staging> {
    root.create()?;
    root.check_secure()?;
    Staging::create(root, id)
}
