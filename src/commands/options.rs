//! Stage two of parsing: each command's typed options, built from the checked `Args`.
//!
//! Every flag is read through its named constant in `cli::table`, so a misspelt name
//! does not compile, and reading a flag the command does not define fails the debug
//! build's assertion, which the test below drives for every flag of every command. This
//! stage may do I/O (`config.toml` for the shell wrapper, our environment for
//! `--secret-env`); stage one (`cli::parse`) does none.

use std::path::PathBuf;
use std::time::Duration;

use crate::cli::Args;
use crate::cli::table::{self as t, Flag};
use crate::config;
use crate::error::{Error, Result};
use crate::jobs::{Condition, Pattern, ReadyWait};
use crate::jobs::{
    DEFAULT_GRACE, Definition, DeleteTarget, FollowRequest, GcPolicy, IfRunning, KillRequest, ListFilter, NotifyChange,
    Observe, RunRequest, TailRequest, WaitManyRequest, WaitRequest,
};
use crate::serve;
use crate::signals;
use crate::tags;
use crate::wire::{MatchType, Notification, OutputMatch, StreamFilter};

/// One command line, typed: what `commands::dispatch` runs.
pub enum Invocation {
    Run(RunRequest),
    Create(Definition),
    Start {
        job_id: String,
        observe: Observe,
    },
    Status {
        job_id: String,
    },
    Tail(TailRequest),
    /// `tail --follow`: streamed, not one answer.
    Follow {
        request: FollowRequest,
        json: bool,
    },
    Wait(WaitRequest),
    /// More than one id, `--tag` or `--any`: the many-job answer.
    WaitMany {
        request: WaitManyRequest,
    },
    /// `wait --for-output` / `--for-port`.
    WaitReady {
        job_id: String,
        ready: ReadyWait,
    },
    Kill(KillRequest),
    List(ListFilter),
    Delete {
        target: DeleteTarget,
        dry_run: bool,
    },
    Gc(GcPolicy),
    TagSet {
        job_id: String,
        tags: Vec<String>,
    },
    NotifySet {
        job_id: String,
        change: NotifyChange,
    },
    Schema,
    InstallSkills {
        source: String,
        global: bool,
    },
    Completions {
        shell: String,
    },
    Serve(serve::Options),
    Mcp,
}

impl Invocation {
    pub fn from_args(args: &Args) -> Result<Invocation> {
        let job_id = || args.job_id().to_string();
        Ok(match args.command.name {
            "run" => Invocation::Run(RunRequest {
                definition: definition(args)?,
                log: args.value(&t::LOG).map(PathBuf::from),
                observe: observe(args),
                if_running: if_running(args),
            }),
            "create" => Invocation::Create(definition(args)?),
            "start" => Invocation::Start { job_id: job_id(), observe: observe(args) },
            "status" => Invocation::Status { job_id: job_id() },
            "tail" if args.has(&t::FOLLOW) => Invocation::Follow {
                request: FollowRequest {
                    job_id: job_id(),
                    // Following starts 10 lines back unless told otherwise.
                    tail_lines: if args.has(&t::TAIL_TAIL_LINES) { args.num(&t::TAIL_TAIL_LINES) } else { 10 },
                },
                json: args.has(&t::FOLLOW_JSON),
            },
            "tail" => Invocation::Tail(TailRequest {
                job_id: job_id(),
                tail_lines: args.num(&t::TAIL_TAIL_LINES),
                max_bytes: args.num(&t::TAIL_MAX_BYTES),
            }),
            "wait" => wait(args),
            "kill" => Invocation::Kill(KillRequest {
                job_id: job_id(),
                signal: signals::parse(args.value_or_default(&t::SIGNAL).unwrap_or("TERM")).map_err(Error::usage)?,
            }),
            "list" => Invocation::List(ListFilter {
                cwd: owned(args.value(&t::LIST_CWD)),
                all: args.has(&t::LIST_ALL),
                state: owned(args.value(&t::LIST_STATE)),
                tags: all(args, &t::LIST_TAG),
                limit: args.num(&t::LIMIT),
                name: None,
            }),
            "delete" => Invocation::Delete {
                target: if args.has(&t::DELETE_ALL) {
                    DeleteTarget::AllFinishedHere
                } else {
                    DeleteTarget::One(job_id())
                },
                dry_run: args.has(&t::DRY_RUN),
            },
            "gc" => Invocation::Gc(GcPolicy {
                older_than: owned(args.value(&t::OLDER_THAN)),
                keep: args.value(&t::KEEP).and_then(|n| n.parse().ok()),
                max_bytes: args.value(&t::GC_MAX_BYTES).and_then(crate::size::parse_size),
                dry_run: args.has(&t::GC_DRY_RUN),
            }),
            "tag set" => Invocation::TagSet { job_id: job_id(), tags: tags::dedup(&args.values(&t::TAG_SET_TAG)) },
            "notify set" => Invocation::NotifySet { job_id: job_id(), change: notify_change(args) },
            "schema" => Invocation::Schema,
            "install-skills" => Invocation::InstallSkills {
                source: args.value_or_default(&t::SOURCE).unwrap_or("self").to_string(),
                global: args.has(&t::GLOBAL_SKILLS),
            },
            "completions" => Invocation::Completions { shell: job_id() },
            "serve" => Invocation::Serve(serve_options(args)?),
            "mcp" => Invocation::Mcp,
            other => return Err(Error::internal(format!("'{other}' is not available in this build"))),
        })
    }
}

fn owned(value: Option<&str>) -> Option<String> {
    value.map(str::to_string)
}

fn all(args: &Args, flag: &Flag) -> Vec<String> {
    args.values(flag).into_iter().map(str::to_string).collect()
}

/// `run` and `create`: resolves the wrapper (which reads config.toml) and the
/// `--secret-env` values before anything is created.
fn definition(args: &Args) -> Result<Definition> {
    let wrapper = config::resolve_wrapper(args.value(&t::SHELL_WRAPPER), args.value(&t::CONFIG))?;
    let on_output_match = args.value(&t::OUTPUT_PATTERN).filter(|p| !p.is_empty()).map(|pattern| OutputMatch {
        pattern: pattern.to_string(),
        match_type: match_type(args.value_or_default(&t::OUTPUT_MATCH_TYPE)).unwrap_or_default(),
        stream: stream(args.value_or_default(&t::OUTPUT_STREAM)).unwrap_or_default(),
        command: owned(args.value(&t::OUTPUT_COMMAND)),
        file: owned(args.value(&t::OUTPUT_FILE)),
    });
    let notification = Notification {
        notify_command: owned(args.value(&t::NOTIFY_COMMAND)),
        notify_file: owned(args.value(&t::NOTIFY_FILE)),
        on_output_match,
    };
    let (mut env, mut mask) = (all(args, &t::ENV), all(args, &t::MASK));
    for key in args.values(&t::SECRET_ENV) {
        env.push(format!("{key}={}", secret_value(key)?));
        if !mask.iter().any(|m| m == key) {
            mask.push(key.to_string());
        }
    }
    Ok(Definition {
        command: args.job_command.clone(),
        name: owned(args.value(&t::NAME)),
        env,
        env_files: all(args, &t::ENV_FILE),
        inherit_env: !args.has(&t::NO_INHERIT_ENV),
        mask,
        tags: tags::dedup(&args.values(&t::TAG)),
        timeout_ms: args.num(&t::TIMEOUT),
        kill_after_ms: args.num(&t::KILL_AFTER),
        progress_every_ms: args.num(&t::PROGRESS_EVERY),
        notification: (!notification.is_empty()).then_some(notification),
        wrapper,
        cwd: owned(args.value(&t::CWD)),
        max_log_bytes: config::max_log_bytes(args.value(&t::MAX_LOG_BYTES), args.value(&t::CONFIG))?,
        no_full_log: args.has(&t::NO_FULL_LOG),
    })
}

/// The value of `--secret-env KEY`: our own variable, so that it never passes through
/// a command line, where other local users can read it (issue 11).
fn secret_value(key: &str) -> Result<String> {
    match std::env::var(key) {
        Ok(value) if !value.contains('\0') => Ok(value),
        Ok(_) => Err(Error::usage(format!("--secret-env {key}: the value holds a NUL byte"))),
        Err(std::env::VarError::NotPresent) => {
            Err(Error::usage(format!("--secret-env {key}: the environment variable {key} is not set")))
        }
        Err(std::env::VarError::NotUnicode(_)) => {
            Err(Error::usage(format!("--secret-env {key}: the value of {key} is not valid UTF-8")))
        }
    }
}

/// `run` and `start`: how to observe the job before answering.
fn observe(args: &Args) -> Observe {
    Observe {
        snapshot_after_ms: args.num(&t::SNAPSHOT_AFTER),
        tail_lines: args.num(&t::TAIL_LINES),
        max_bytes: args.num(&t::MAX_BYTES),
        wait: args.has(&t::WAIT),
        poll_ms: args.num(&t::WAIT_POLL_MS),
        until_ms: if args.has(&t::FOREVER) { None } else { Some(args.num(&t::UNTIL)) },
        ready: ready(args, &t::WAIT_POLL_MS),
    }
}

/// `--for-output` / `--for-port` (run, start, wait), bounded by `--until` (default 30 s)
/// or `--forever`; `poll` is the command's own poll-interval flag.
fn ready(args: &Args, poll: &Flag) -> Option<ReadyWait> {
    let condition = if let Some(text) = args.value(&t::FOR_OUTPUT) {
        let pattern = match args.value_or_default(&t::READY_MATCH_TYPE) {
            // Checked while parsing: a pattern that does not compile never gets here.
            Some("regex") => Pattern::Regex(crate::pattern::compile(text).ok()?),
            _ => Pattern::Contains(text.to_string()),
        };
        Condition::Output { pattern, stream: stream(args.value_or_default(&t::READY_STREAM)).unwrap_or_default() }
    } else {
        let port = args.value(&t::FOR_PORT)?.parse().ok()?;
        let host = args.value_or_default(&t::FOR_HOST).unwrap_or("127.0.0.1").to_string();
        Condition::Port { host, port }
    };
    Some(ReadyWait {
        condition,
        until: (!args.has(&t::FOREVER)).then(|| Duration::from_millis(args.num(&t::UNTIL))),
        poll: Duration::from_millis(args.num(poll)),
    })
}

/// `wait ID` keeps its 0.1.18 answer; several ids, `--tag` or `--any` get the many-job one.
fn wait(args: &Args) -> Invocation {
    let until = (!args.has(&t::WAIT_FOREVER)).then(|| Duration::from_millis(args.num(&t::WAIT_UNTIL)));
    let poll = Duration::from_millis(args.num(&t::POLL_MS));
    let job_ids = args.job_ids();
    let tags = all(args, &t::WAIT_TAG);
    let any = args.has(&t::ANY);
    if let ([job_id], true, false) = (job_ids.as_slice(), tags.is_empty(), any) {
        if let Some(ready) = ready(args, &t::POLL_MS) {
            return Invocation::WaitReady { job_id: job_id.clone(), ready };
        }
        return Invocation::Wait(WaitRequest { job_id: job_id.clone(), until, poll });
    }
    Invocation::WaitMany {
        request: WaitManyRequest {
            job_ids,
            tags,
            cwd: owned(args.value(&t::WAIT_CWD)),
            all: args.has(&t::WAIT_ALL),
            any,
            until,
            poll,
        },
    }
}

/// `run --if-running`; `replace` waits `--kill-after` (when given) between TERM and KILL.
fn if_running(args: &Args) -> IfRunning {
    match args.value(&t::IF_RUNNING) {
        Some("reuse") => IfRunning::Reuse,
        Some(_) => IfRunning::Replace {
            grace: if args.has(&t::KILL_AFTER) {
                Duration::from_millis(args.num(&t::KILL_AFTER))
            } else {
                DEFAULT_GRACE
            },
        },
        None => IfRunning::Fail,
    }
}

/// Values the table restricts to `MATCH_TYPES` and `STREAMS`.
fn match_type(value: Option<&str>) -> Option<MatchType> {
    value.map(|v| if v == "regex" { MatchType::Regex } else { MatchType::Contains })
}

fn stream(value: Option<&str>) -> Option<StreamFilter> {
    value.map(|v| match v {
        "stdout" => StreamFilter::Stdout,
        "stderr" => StreamFilter::Stderr,
        _ => StreamFilter::Either,
    })
}

fn notify_change(args: &Args) -> NotifyChange {
    NotifyChange {
        notify_command: owned(args.value(&t::NOTIFY_SET_COMMAND)),
        notify_file: owned(args.value(&t::NOTIFY_SET_FILE)),
        output_pattern: owned(args.value(&t::NOTIFY_SET_PATTERN)),
        output_match_type: match_type(args.value(&t::NOTIFY_SET_MATCH_TYPE)),
        output_stream: stream(args.value(&t::NOTIFY_SET_STREAM)),
        output_command: owned(args.value(&t::NOTIFY_SET_OUTPUT_COMMAND)),
        output_file: owned(args.value(&t::NOTIFY_SET_OUTPUT_FILE)),
    }
}

/// `--port P` is `127.0.0.1:P`; `--bind` must be a literal `IP:PORT` (docs/compatibility.md §8.16).
fn serve_options(args: &Args) -> Result<serve::Options> {
    let bind = match args.value(&t::PORT) {
        Some(port) => {
            let port = port.parse::<u16>().map_err(|e| Error::internal(format!("invalid port '{port}': {e}")))?;
            std::net::SocketAddr::from((std::net::Ipv4Addr::LOCALHOST, port))
        }
        None => {
            let text = args.value_or_default(&t::BIND).unwrap_or("127.0.0.1:19263");
            text.parse().map_err(|e| Error::internal(format!("invalid bind address '{text}': {e}")))?
        }
    };
    let cap = |flag| usize::try_from(args.num(flag)).unwrap_or(usize::MAX).max(1);
    Ok(serve::Options {
        bind,
        token_file: owned(args.value(&t::TOKEN_FILE)),
        scrub_env: all(args, &t::SCRUB_ENV),
        max_connections: cap(&t::MAX_CONNECTIONS),
        max_waiters: cap(&t::MAX_WAITERS),
        max_wait_ms: args.num(&t::MAX_WAIT_MS),
    })
}

#[cfg(test)]
mod tests {
    use std::ffi::OsString;

    use super::*;
    use crate::cli::{self, Operand, Parsed};

    /// A value that passes the flag's checks, chosen by its documented value name.
    fn sample(flag: &Flag) -> String {
        if let Some(first) = flag.choices.first() {
            return first.to_string();
        }
        let value = match flag.value.unwrap_or_default() {
            "MS" | "N" | "PORT" | "SIZE" => "1",
            "DURATION" => "1d",
            "SIGNAL" => "TERM",
            "KEY=VALUE" => "K=V",
            // `--secret-env` reads our environment: PATH is always set.
            "KEY" => "PATH",
            "IP:PORT" => "127.0.0.1:0",
            "SPEC" => "self",
            "NAME" => "X",
            "TAG" | "PATTERN" => "a",
            _ => "x",
        };
        if let Some(check) = flag.check {
            assert!(check(value).is_ok(), "sample '{value}' fails the check of --{}", flag.long);
        }
        value.to_string()
    }

    fn parse(words: Vec<String>) -> Args {
        match cli::parse(words.iter().map(OsString::from)) {
            Parsed::Run(args) => args,
            Parsed::Usage(message, _) => panic!("{words:?}: {message}"),
            _ => panic!("{words:?}: not a command"),
        }
    }

    /// A command line of `command` with `flags` set, and its operand.
    fn words(command: &cli::Command, flags: &[&Flag]) -> Vec<String> {
        let mut words: Vec<String> = command.name.split(' ').map(str::to_string).collect();
        for flag in flags {
            words.push(format!("--{}", flag.long));
            if flag.value.is_some() {
                words.push(sample(flag));
            }
        }
        match command.operand {
            Operand::JobId => words.push("X".into()),
            Operand::JobIdUnless(switch) if !flags.iter().any(|f| f.long == switch) => words.push("X".into()),
            Operand::JobIds(_) => words.push("X".into()),
            Operand::Choice(_, choices) => words.push(choices[0].into()),
            Operand::JobCommand => words.extend(["--".to_string(), "true".to_string()]),
            _ => {}
        }
        words
    }

    /// Every command, with none of its flags and with every flag it defines (the second
    /// of each conflicting pair left out, then what requires a flag left out), builds its typed options: a read of a flag
    /// the command does not define, or of a number without a default, fails here.
    #[test]
    fn every_flag_of_every_command_builds_its_options() {
        for command in t::COMMANDS {
            let kept: Vec<&Flag> = command
                .all_flags()
                .filter(|f| !command.conflicts.iter().any(|(_, second)| f.long == *second))
                .collect();
            // A flag that requires one left out goes too.
            let flags: Vec<&Flag> = kept
                .iter()
                .copied()
                .filter(|f| command.requires.iter().all(|(a, b)| *a != f.long || kept.iter().any(|k| k.long == *b)))
                .collect();
            for set in [Vec::new(), flags] {
                let args = parse(words(command, &set));
                if let Err(e) = Invocation::from_args(&args) {
                    panic!("{} {:?}: {}", command.name, set.iter().map(|f| f.long).collect::<Vec<_>>(), e.message);
                }
            }
        }
    }

    #[test]
    #[should_panic(expected = "does not define")]
    fn reading_a_flag_of_another_command_fails() {
        let args = parse(vec!["status".into(), "X".into()]);
        let _ = args.has(&t::WAIT);
    }
}
