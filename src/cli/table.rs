//! The flag table: every subcommand and every flag, defined once. The parser, `--help`,
//! the man pages and the completion scripts are all generated from it, so they cannot
//! drift apart. Order here is the order in the docs.

pub use super::Flag;
use super::{Check, Command, Operand, check_env_name, check_port, check_u16, check_u64};
use crate::{signals, size, supervisor, tags};

const fn switch(long: &'static str, doc: &'static str) -> Flag {
    Flag { long, alias: None, value: None, default: None, repeatable: false, choices: &[], check: None, doc }
}

const fn opt(long: &'static str, value: &'static str, doc: &'static str) -> Flag {
    Flag { long, alias: None, value: Some(value), default: None, repeatable: false, choices: &[], check: None, doc }
}

const fn num(long: &'static str, value: &'static str, default: &'static str, doc: &'static str) -> Flag {
    opt(long, value, doc).default(default).check(check_u64)
}

impl Flag {
    const fn default(mut self, default: &'static str) -> Flag {
        self.default = Some(default);
        self
    }
    const fn repeat(mut self) -> Flag {
        self.repeatable = true;
        self
    }
    const fn choices(mut self, choices: &'static [&'static str]) -> Flag {
        self.choices = choices;
        self
    }
    const fn check(mut self, check: Check) -> Flag {
        self.check = Some(check);
        self
    }
    const fn alias(mut self, alias: &'static str) -> Flag {
        self.alias = Some(alias);
        self
    }
}

pub const MATCH_TYPES: &[&str] = &["contains", "regex"];
pub const STREAMS: &[&str] = &["stdout", "stderr", "either"];
pub const STATES: &[&str] = crate::wire::STATE_NAMES;
pub const IF_RUNNING_POLICIES: &[&str] = &["reuse", "replace"];
pub const SHELLS: &[&str] = &["bash", "zsh", "fish", "powershell"];
pub const SIGNALS: &[&str] = &["TERM", "INT", "KILL", "HUP", "QUIT", "USR1", "USR2", "STOP", "CONT"];

pub const ROOT: Flag = opt(
    "root",
    "PATH",
    "Jobs root directory (default: $AGENT_EXEC_ROOT, else $XDG_DATA_HOME/agent-exec/jobs, else ~/.local/share/agent-exec/jobs)",
);
pub const YAML: Flag = switch("yaml", "Print the response as YAML instead of JSON");
pub const VERBOSE: Flag =
    switch("verbose", "Log more on stderr (-v info, -vv debug, -vvv trace); RUST_LOG takes precedence");
pub const HELP: Flag = switch("help", "Print help");
/// Options that hold for every subcommand, before or after its name.
pub const GLOBAL: &[Flag] = &[ROOT, YAML, VERBOSE, HELP];

pub const TIMEOUT: Flag =
    num("timeout", "MS", "0", "Send SIGTERM to the job's process group after MS milliseconds; 0 disables");
pub const KILL_AFTER: Flag = num(
    "kill-after",
    "MS",
    "0",
    "After a timeout's SIGTERM, wait MS milliseconds before SIGKILL; 0 sends SIGKILL at once",
);
pub const CWD: Flag = opt("cwd", "DIR", "Working directory of the job (default: the current directory)");
pub const ENV: Flag =
    opt("env", "KEY=VALUE", "Set an environment variable for the job").repeat().check(supervisor::check_entry);
pub const ENV_FILE: Flag = opt("env-file", "FILE", "Read KEY=VALUE lines from FILE when the job starts").repeat();
pub const NO_INHERIT_ENV: Flag = switch("no-inherit-env", "Start the job from an empty environment instead of ours");
pub const INHERIT_ENV: Flag = switch("inherit-env", "Start the job from our environment (the default)");
pub const MASK: Flag =
    opt("mask", "KEY", "Show KEY's value as *** in every output").repeat().check(supervisor::check_key);
pub const SECRET_ENV: Flag = opt(
        "secret-env",
        "KEY",
        "Give the job our environment variable KEY, masked like --mask KEY; unlike --env KEY=VALUE --mask KEY, the value is never on a command line",
    )
    .repeat()
    .check(supervisor::check_key);
pub const TAG: Flag =
    opt("tag", "TAG", "Attach a tag (letters, digits, '-', dot-separated segments)").repeat().check(tags::check_tag);
pub const PROGRESS_EVERY: Flag = num(
    "progress-every",
    "MS",
    "0",
    "Refresh state.json's updated_at every MS milliseconds while the job runs; 0 disables",
);
pub const NOTIFY_COMMAND: Flag =
    opt("notify-command", "CMD", "Shell command run with the job.finished event on stdin when the job ends");
pub const NOTIFY_FILE: Flag =
    opt("notify-file", "PATH", "Append the job.finished event as one NDJSON line to PATH when the job ends");
pub const OUTPUT_PATTERN: Flag =
    opt("output-pattern", "PAT", "Emit a job.output.matched event for every output line matching PAT");
pub const OUTPUT_MATCH_TYPE: Flag = opt("output-match-type", "TYPE", "How --output-pattern (and --for-output) matches")
    .choices(MATCH_TYPES)
    .default("contains");
pub const OUTPUT_STREAM: Flag =
    opt("output-stream", "STREAM", "Which stream --output-pattern (and --for-output) looks at")
        .choices(STREAMS)
        .default("either");
pub const OUTPUT_COMMAND: Flag =
    opt("output-command", "CMD", "Shell command run with each job.output.matched event on stdin");
pub const OUTPUT_FILE: Flag =
    opt("output-file", "PATH", "Append each job.output.matched event as one NDJSON line to PATH");
pub const MAX_LOG_BYTES: Flag = opt(
        "max-log-bytes",
        "N",
        "Keep at most N bytes in each log, rotating to <log>.1 (one older generation); 0 disables (default: [logs] max_bytes in config.toml)",
    )
    .check(check_u64);
pub const NO_FULL_LOG: Flag = switch("no-full-log", "Write no full.log records (stdout.log and stderr.log only)");
pub const CONFIG: Flag = opt(
    "config",
    "PATH",
    "config.toml to read the shell wrapper from (default: $XDG_CONFIG_HOME/agent-exec/config.toml)",
);
pub const NAME: Flag = opt(
    "name",
    "NAME",
    "Name the job (1-64 of A-Z a-z 0-9 . _ -), unique among the root's jobs that have not ended; @NAME then stands for its id",
)
.check(crate::jobstore::names::check_name);
pub const SHELL_WRAPPER: Flag =
    opt("shell-wrapper", "PROG FLAGS", "Shell wrapper argv, split on whitespace (default: sh -lc)");
/// What a job is: shared by `run` and `create`.
const DEFINITION: &[Flag] = &[
    TIMEOUT,
    KILL_AFTER,
    CWD,
    ENV,
    ENV_FILE,
    NO_INHERIT_ENV,
    INHERIT_ENV,
    MASK,
    SECRET_ENV,
    TAG,
    PROGRESS_EVERY,
    NOTIFY_COMMAND,
    NOTIFY_FILE,
    OUTPUT_PATTERN,
    OUTPUT_MATCH_TYPE,
    OUTPUT_STREAM,
    OUTPUT_COMMAND,
    OUTPUT_FILE,
    MAX_LOG_BYTES,
    NO_FULL_LOG,
    CONFIG,
    SHELL_WRAPPER,
    NAME,
];

pub const SNAPSHOT_AFTER: Flag = num(
    "snapshot-after",
    "MS",
    "10000",
    "Watch the job up to MS milliseconds (at most 10000) and include an output snapshot; returns early when the job ends; 0 answers at once",
);
pub const TAIL_LINES: Flag =
    num("tail-lines", "N", "50", "Keep the last N lines of each stream in snapshots; 0 keeps all");
pub const MAX_BYTES: Flag = num("max-bytes", "N", "65536", "Keep at most the last N bytes of each stream in snapshots");
pub const WAIT: Flag =
    switch("wait", "Block until the job ends (or the --until deadline passes) and include a final snapshot");
pub const WAIT_POLL_MS: Flag =
    num("wait-poll-ms", "MS", "200", "Fallback poll interval while waiting (completion is noticed through inotify)");
/// How `run` and `start` observe the job before answering.
const OBSERVE: &[Flag] = &[SNAPSHOT_AFTER, TAIL_LINES, MAX_BYTES, WAIT, WAIT_POLL_MS];

pub const FOR_OUTPUT: Flag = opt(
    "for-output",
    "PAT",
    "Wait until a line of the job's output matches PAT (its logs are read from the start) and answer ready: true with matched_line, stream and offset; ready: false if the job ends first",
);
pub const FOR_PORT: Flag = opt(
    "for-port",
    "PORT",
    "Wait until a TCP connect to PORT (1-65535) succeeds and answer ready: true; ready: false if the job ends first",
)
.check(check_port);
pub const FOR_HOST: Flag = opt("for-host", "HOST", "The host --for-port connects to").default("127.0.0.1");
pub const READY_MATCH_TYPE: Flag =
    opt("output-match-type", "TYPE", "How --for-output matches").choices(MATCH_TYPES).default("contains");
pub const READY_STREAM: Flag =
    opt("output-stream", "STREAM", "Which stream --for-output looks at").choices(STREAMS).default("either");
/// `run` takes the match type and stream from its `--output-pattern` flags.
const READY_RUN: &[Flag] = &[FOR_OUTPUT, FOR_PORT, FOR_HOST];
const READY: &[Flag] = &[FOR_OUTPUT, READY_MATCH_TYPE, READY_STREAM, FOR_PORT, FOR_HOST];

pub const LOG: Flag = opt("log", "PATH", "Write the merged, timestamped log to PATH instead of <job>/full.log");
pub const IF_RUNNING: Flag = opt(
    "if-running",
    "POLICY",
    "With --name, when a job that has not ended holds the name: reuse answers about it, replace stops it (TERM, then KILL after --kill-after or 5 s) and starts this one; default: the name_in_use error",
)
.choices(IF_RUNNING_POLICIES);
const LOG_FLAGS: &[Flag] = &[LOG, IF_RUNNING];

pub const UNTIL: Flag =
    num("until", "MS", "30000", "With --wait: give up waiting after MS milliseconds and report the current state");
pub const FOREVER: Flag = switch("forever", "With --wait: wait without a deadline");
pub const EXIT_CODE: Flag = switch(
    "exit-code",
    "Exit with the job's exit code: 128+N if a signal N killed it, 124 if it was still running at the deadline, 125 if it failed (the JSON answer is unchanged)",
);
const EXIT_STATUS: &[Flag] = &[EXIT_CODE];

/// `run --wait` and `start --wait` share the bounded default (docs/decisions.md OP-6).
const WAIT_BOUND: &[Flag] = &[UNTIL, FOREVER];

pub const TAIL_TAIL_LINES: Flag = num("tail-lines", "N", "50", "Keep the last N lines of each stream; 0 keeps all");
pub const TAIL_MAX_BYTES: Flag = num("max-bytes", "N", "65536", "Keep at most the last N bytes of each stream");
pub const FOLLOW: Flag = switch(
    "follow",
    "Stream the output as it is written (stdout to stdout, stderr to stderr, raw bytes) from --tail-lines back (default 10) until the job ends",
);
pub const FOLLOW_JSON: Flag =
    switch("json", "With --follow: print one JSON object per line instead: {\"stream\",\"data\",\"offset\"}");
pub const TAIL_EXIT_CODE: Flag = switch(
    "exit-code",
    "With --follow: exit with the job's exit code: 128+N if a signal N killed it, 125 if it failed",
);
const TAIL: &[Flag] = &[TAIL_TAIL_LINES, TAIL_MAX_BYTES, FOLLOW, FOLLOW_JSON, TAIL_EXIT_CODE];

pub const POLL_MS: Flag =
    num("poll-ms", "MS", "200", "Fallback poll interval (completion is noticed through inotify); at least 10");
pub const WAIT_UNTIL: Flag =
    num("until", "MS", "30000", "Give up after MS milliseconds and report the current state (exit 0)")
        .alias("timeout-ms");
pub const WAIT_FOREVER: Flag = switch("forever", "Wait without a deadline");
pub const WAIT_TAG: Flag = opt(
    "tag",
    "PATTERN",
    "Also wait for the jobs with a tag matching PATTERN ('x' or 'x.*'), scoped like list; repeat to require all",
)
.repeat()
.check(tags::check_pattern);
pub const WAIT_CWD: Flag = opt("cwd", "DIR", "With --tag: jobs started in DIR (default: the current directory)");
pub const WAIT_ALL: Flag = switch("all", "With --tag: jobs from every directory");
pub const ANY: Flag = switch("any", "Return as soon as one of the jobs ends (default: when all have)");
const WAIT_CMD: &[Flag] = &[POLL_MS, WAIT_UNTIL, WAIT_FOREVER, WAIT_TAG, WAIT_CWD, WAIT_ALL, ANY];

pub const SIGNAL: Flag = opt("signal", "SIGNAL", "Signal to send to the job's process group: TERM INT KILL HUP QUIT USR1 USR2 STOP CONT (with or without SIG, any case) or 1-64")
    .default("TERM")
    .check(signals::check);
const KILL: &[Flag] = &[SIGNAL];

pub const LIST_STATE: Flag = opt("state", "STATE", "Only jobs in this state").choices(STATES);
pub const LIST_CWD: Flag = opt("cwd", "DIR", "Only jobs started in DIR (default: the current directory)");
pub const LIST_ALL: Flag = switch("all", "Jobs from every directory");
pub const LIST_TAG: Flag =
    opt("tag", "PATTERN", "Only jobs with a tag matching PATTERN ('x' or 'x.*'); repeat to require all")
        .repeat()
        .check(tags::check_pattern);
pub const LIMIT: Flag = num("limit", "N", "0", "At most N jobs, newest first; 0 is unlimited");
const LIST: &[Flag] = &[LIST_STATE, LIST_CWD, LIST_ALL, LIST_TAG, LIMIT];

pub const DELETE_ALL: Flag = switch("all", "Delete every finished job started in the current directory");
pub const DRY_RUN: Flag = switch("dry-run", "Report what would be deleted, delete nothing");
const DELETE: &[Flag] = &[DELETE_ALL, DRY_RUN];

pub const OLDER_THAN: Flag =
    opt("older-than", "DURATION", "Delete finished jobs older than DURATION: <n>d, <n>h, <n>m, <n>s or <n> seconds")
        .default("30d");
pub const KEEP: Flag = opt("keep", "N", "Also delete every finished job but the newest N").check(check_u64);
pub const GC_MAX_BYTES: Flag = opt(
    "max-bytes",
    "SIZE",
    "Also delete the oldest finished jobs until the rest fit in SIZE bytes (suffix K, M or G allowed)",
)
.check(size::check_size);
pub const GC_DRY_RUN: Flag = switch("dry-run", "Report what would be deleted, delete nothing");
const GC: &[Flag] = &[OLDER_THAN, KEEP, GC_MAX_BYTES, GC_DRY_RUN];

pub const TAG_SET_TAG: Flag = opt("tag", "TAG", "The new tags; none clears them").repeat().check(tags::check_tag);
const TAG_SET: &[Flag] = &[TAG_SET_TAG];

pub const NOTIFY_SET_COMMAND: Flag =
    opt("command", "CMD", "Completion command sink (replaces the current one)").alias("notify-command");
pub const NOTIFY_SET_FILE: Flag = opt("notify-file", "PATH", "Completion NDJSON file sink (replaces the current one)");
pub const NOTIFY_SET_PATTERN: Flag =
    opt("output-pattern", "PAT", "Output-match pattern; an empty pattern removes output matching");
pub const NOTIFY_SET_MATCH_TYPE: Flag =
    opt("output-match-type", "TYPE", "How the pattern matches").choices(MATCH_TYPES);
pub const NOTIFY_SET_STREAM: Flag =
    opt("output-stream", "STREAM", "Which stream the pattern looks at").choices(STREAMS);
pub const NOTIFY_SET_OUTPUT_COMMAND: Flag = opt("output-command", "CMD", "Output-match command sink");
pub const NOTIFY_SET_OUTPUT_FILE: Flag = opt("output-file", "PATH", "Output-match NDJSON file sink");
const NOTIFY_SET: &[Flag] = &[
    NOTIFY_SET_COMMAND,
    NOTIFY_SET_FILE,
    NOTIFY_SET_PATTERN,
    NOTIFY_SET_MATCH_TYPE,
    NOTIFY_SET_STREAM,
    NOTIFY_SET_OUTPUT_COMMAND,
    NOTIFY_SET_OUTPUT_FILE,
];

pub const SOURCE: Flag = opt("source", "SPEC", "self (the built-in bundle) or local:<path>").default("self");
pub const GLOBAL_SKILLS: Flag = switch("global", "Install into ~/.agents instead of ./.agents");
const INSTALL_SKILLS: &[Flag] = &[SOURCE, GLOBAL_SKILLS];

pub const BIND: Flag =
    opt("bind", "IP:PORT", "Address to listen on (a literal IP and port)").default("127.0.0.1:19263");
pub const PORT: Flag = opt("port", "PORT", "Shorthand for --bind 127.0.0.1:PORT").check(check_u16);
pub const MAX_CONNECTIONS: Flag =
    num("max-connections", "N", "64", "Short requests served at once; more wait their turn");
pub const MAX_WAITERS: Flag = num(
    "max-waiters",
    "N",
    "256",
    "Long-polls (every wait, snapshot window and followed stream) served at once, apart from short requests",
);
pub const MAX_WAIT_MS: Flag = num(
    "max-wait-ms",
    "MS",
    "600000",
    "The longest any request may wait or stream (/wait, /exec with wait, the v1 waits, followed output); longer requests are lowered and say so (clamped)",
);
pub const SCRUB_ENV: Flag =
    opt("scrub-env", "NAME", "Also remove NAME from the environment of every job and sink serve starts")
        .check(check_env_name)
        .repeat();
pub const TOKEN_FILE: Flag = opt(
    "token-file",
    "PATH",
    "Require 'Authorization: Bearer <token>' with the token read from PATH (also: $AGENT_EXEC_SERVE_TOKEN)",
);
const SERVE: &[Flag] = &[BIND, PORT, MAX_CONNECTIONS, MAX_WAITERS, MAX_WAIT_MS, SCRUB_ENV, TOKEN_FILE];

pub const COMMANDS: &[Command] = &[
    Command {
        name: "create",
        about: "Define a job without starting it",
        usage: "create [OPTIONS] [--] <COMMAND>...",
        flags: &[DEFINITION],
        operand: Operand::JobCommand,
        conflicts: &[("inherit-env", "no-inherit-env")],
        requires: &[],
    },
    Command {
        name: "start",
        about: "Start a created job",
        usage: "start [OPTIONS] <JOB_ID>",
        flags: &[OBSERVE, WAIT_BOUND, READY, EXIT_STATUS],
        operand: Operand::JobId,
        conflicts: &[("until", "forever"), ("for-port", "for-output")],
        requires: &[("until", "wait"), ("forever", "wait"), ("for-host", "for-port")],
    },
    Command {
        name: "run",
        about: "Run a command as a background job and report on it",
        usage: "run [OPTIONS] [--] <COMMAND>...",
        flags: &[DEFINITION, OBSERVE, WAIT_BOUND, READY_RUN, LOG_FLAGS, EXIT_STATUS],
        operand: Operand::JobCommand,
        conflicts: &[("inherit-env", "no-inherit-env"), ("until", "forever"), ("for-port", "for-output")],
        requires: &[("until", "wait"), ("forever", "wait"), ("if-running", "name"), ("for-host", "for-port")],
    },
    Command {
        name: "status",
        about: "Show the state of a job",
        usage: "status <JOB_ID>",
        flags: &[],
        operand: Operand::JobId,
        conflicts: &[],
        requires: &[],
    },
    Command {
        name: "tail",
        about: "Show the end of a job's stdout and stderr",
        usage: "tail [OPTIONS] <JOB_ID>",
        flags: &[TAIL],
        operand: Operand::JobId,
        conflicts: &[("follow", "max-bytes")],
        requires: &[("json", "follow"), ("exit-code", "follow")],
    },
    Command {
        name: "wait",
        about: "Wait until a job, or several, ends (30 s by default)",
        usage: "wait [OPTIONS] <JOB_ID>... | wait --tag <PATTERN> [OPTIONS]",
        flags: &[WAIT_CMD, READY, EXIT_STATUS],
        operand: Operand::JobIds("tag"),
        conflicts: &[
            ("until", "forever"),
            ("cwd", "all"),
            ("for-port", "for-output"),
            ("tag", "for-port"),
            ("tag", "for-output"),
            ("any", "for-port"),
            ("any", "for-output"),
        ],
        requires: &[("cwd", "tag"), ("all", "tag"), ("for-host", "for-port")],
    },
    Command {
        name: "kill",
        about: "Send a signal to a running job's process group",
        usage: "kill [OPTIONS] <JOB_ID>",
        flags: &[KILL],
        operand: Operand::JobId,
        conflicts: &[],
        requires: &[],
    },
    Command {
        name: "delete",
        about: "Delete one job, or every finished job of the current directory",
        usage: "delete [--dry-run] <JOB_ID> | delete --all [--dry-run]",
        flags: &[DELETE],
        operand: Operand::JobIdUnless("all"),
        conflicts: &[],
        requires: &[],
    },
    Command {
        name: "gc",
        about: "Delete finished jobs older than a duration",
        usage: "gc [OPTIONS]",
        flags: &[GC],
        operand: Operand::None,
        conflicts: &[],
        requires: &[],
    },
    Command {
        name: "schema",
        about: "Print the JSON Schema of every response",
        usage: "schema",
        flags: &[],
        operand: Operand::None,
        conflicts: &[],
        requires: &[],
    },
    Command {
        name: "list",
        about: "List jobs, newest first",
        usage: "list [OPTIONS]",
        flags: &[LIST],
        operand: Operand::None,
        conflicts: &[("cwd", "all")],
        requires: &[],
    },
    Command {
        name: "tag set",
        about: "Replace a job's tags",
        usage: "tag set <JOB_ID> [--tag <TAG>]...",
        flags: &[TAG_SET],
        operand: Operand::JobId,
        conflicts: &[],
        requires: &[],
    },
    Command {
        name: "install-skills",
        about: "Install the agent skill bundle into .agents/skills",
        usage: "install-skills [OPTIONS]",
        flags: &[INSTALL_SKILLS],
        operand: Operand::None,
        conflicts: &[],
        requires: &[],
    },
    Command {
        name: "notify set",
        about: "Change a job's notification settings",
        usage: "notify set <JOB_ID> [OPTIONS]",
        flags: &[NOTIFY_SET],
        operand: Operand::JobId,
        conflicts: &[],
        requires: &[],
    },
    Command {
        name: "completions",
        about: "Print a shell completion script",
        usage: "completions <SHELL>",
        flags: &[],
        operand: Operand::Choice("SHELL", SHELLS),
        conflicts: &[],
        requires: &[],
    },
    Command {
        name: "serve",
        about: "Serve the REST API on a local address",
        usage: "serve [OPTIONS]",
        flags: &[SERVE],
        operand: Operand::None,
        conflicts: &[("bind", "port")],
        requires: &[],
    },
    Command {
        name: "mcp",
        about: "Serve the job tools over the Model Context Protocol on stdin and stdout",
        usage: "mcp",
        flags: &[],
        operand: Operand::None,
        conflicts: &[],
        requires: &[],
    },
];

pub fn find(name: &str) -> Option<&'static Command> {
    COMMANDS.iter().find(|c| c.name == name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_is_consistent() {
        let mut names: Vec<&str> = COMMANDS.iter().map(|c| c.name).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), COMMANDS.len(), "duplicate subcommand");
        for command in COMMANDS {
            let flags: Vec<&Flag> = command.all_flags().collect();
            for (i, flag) in flags.iter().enumerate() {
                assert!(!flag.doc.is_empty(), "{} --{} has no doc", command.name, flag.long);
                assert!(flag.long.is_ascii() && !flag.long.starts_with('-'));
                assert!(
                    flag.value.is_some() || (flag.choices.is_empty() && flag.default.is_none() && !flag.repeatable)
                );
                assert!(GLOBAL.iter().all(|g| g.long != flag.long), "{} shadows a global", flag.long);
                for other in &flags[i + 1..] {
                    assert_ne!(flag.long, other.long, "duplicate --{} in {}", flag.long, command.name);
                }
                if let (Some(default), Some(check)) = (flag.default, flag.check) {
                    assert!(check(default).is_ok(), "default of --{} fails its own check", flag.long);
                }
                if let Some(default) = flag.default.filter(|_| !flag.choices.is_empty()) {
                    assert!(flag.choices.contains(&default));
                }
            }
            for (a, b) in command.conflicts.iter().chain(command.requires) {
                assert!(command.flag(a).is_some() && command.flag(b).is_some(), "{}: {a}/{b}", command.name);
            }
        }
    }
}
