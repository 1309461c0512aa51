//! The words of the OpenAPI document: one description per request field and query
//! parameter (keyed by name: a name means the same thing wherever it appears), the
//! schemas of the fields serde reads untyped, and the types of query parameters. Unit
//! tests in `super` check that every field and parameter has a description and that no
//! description names something that does not exist.
//!
//! `{max_wait_ms}` in a text is replaced by the server's `--max-wait-ms`.

use serde_json::{Value, json};

use crate::wire::reflect::Shape;

pub struct Doc {
    pub name: &'static str,
    pub text: &'static str,
    /// JSON array of examples, harmless to send (Schemathesis sends them).
    pub examples: Option<&'static str>,
}

const fn doc(name: &'static str, text: &'static str) -> Doc {
    Doc { name, text, examples: None }
}

const fn with_examples(name: &'static str, text: &'static str, examples: &'static str) -> Doc {
    Doc { name, text, examples: Some(examples) }
}

/// Keyed by field or parameter name; `Body.field` (the component name of a body) when a
/// name means something else in that body.
pub const DOCS: &[Doc] = &[
    with_examples(
        "command",
        "The command: an argv array (executed as given) or one string (run by the shell wrapper, sh -lc unless config.toml or shell_wrapper says otherwise)",
        r#"[["true"], "true"]"#,
    ),
    with_examples("ExecRequest.command", "The command's argv (executed as given)", r#"[["true"]]"#),
    with_examples(
        "NotifyBody.command",
        "Shell command run with the job.finished event on stdin when the job ends (alias: notify_command)",
        r#"["true"]"#,
    ),
    with_examples("cwd", "Working directory of the job (default: the server's)", r#"["/"]"#),
    with_examples("env", "Environment variables to set for the job, NAME: value", r#"[{"GREETING": "hello"}]"#),
    doc("env_files", "Files of KEY=VALUE lines read when the job starts"),
    doc("inherit_env", "Start the job from the server's environment (default true) or an empty one"),
    doc("mask", "Names of variables whose values every answer shows as ***"),
    with_examples("tags", "Tags: dot-separated segments of ASCII letters, digits and '-'", r#"[["ci"]]"#),
    doc(
        "TagsBody.tags",
        "The job's new tag set ([] clears it): dot-separated segments of ASCII letters, digits and '-'",
    ),
    doc(
        "if_running",
        "With name, when a job that has not ended holds the name: reuse answers about it, replace stops it (TERM, then KILL after kill_after_ms or 5 s) and starts this one; default: 409 name_in_use (needs start: true)",
    ),
    doc("timeout_ms", "Kill the job after this many milliseconds (0: no timeout)"),
    doc("kill_after_ms", "After the timeout's TERM, send KILL after this many milliseconds"),
    doc("progress_every_ms", "Record a progress heartbeat this often (0: never)"),
    with_examples(
        "notify_command",
        "Shell command run with the job.finished event on stdin when the job ends",
        r#"["true"]"#,
    ),
    doc("notify_file", "Append the job.finished event as one NDJSON line to this file when the job ends"),
    doc("output_pattern", "Emit job.output.matched for each output line matching this pattern"),
    doc("output_match_type", "How output_pattern (and for_output) match: contains (default) or regex"),
    doc("output_stream", "Which stream output_pattern (and for_output) look at: stdout, stderr or either (default)"),
    with_examples("output_command", "Shell command run with each job.output.matched event on stdin", r#"["true"]"#),
    doc("output_file", "Append each job.output.matched event as one NDJSON line to this file"),
    doc("max_log_bytes", "Rotate each log past this many bytes"),
    doc("no_full_log", "Write no full.log records (stdout.log and stderr.log only)"),
    with_examples(
        "shell_wrapper",
        "Argv of the shell that runs a string command (default: config.toml's, or sh -lc)",
        r#"[["sh", "-c"]]"#,
    ),
    doc("log", "Write the merged, timestamped log to this path instead of the job's full.log (needs start: true)"),
    doc(
        "start",
        "Run the job now (the answer is run's) instead of only creating it (create's); the fields marked 'needs start: true' are refused without it",
    ),
    doc(
        "snapshot_after_ms",
        "Watch the job this long before answering with a snapshot of its output (needs start: true)",
    ),
    doc("wait", "Wait for the job to end before answering, at most until_ms"),
    doc("wait_poll_ms", "Fallback poll interval while waiting, at least 10 (completion is noticed through inotify)"),
    doc(
        "until_ms",
        "How long to wait, in milliseconds (needs wait or a readiness field); at most {max_wait_ms} (serve --max-wait-ms): a larger value is lowered to it and the answer says so in `clamped`",
    ),
    doc(
        "until",
        "How long to wait, in milliseconds (default 30000); at most {max_wait_ms} (serve --max-wait-ms): a larger value is lowered to it and the answer says so in `clamped`",
    ),
    with_examples(
        "signal",
        "Signal to send: TERM (default), INT, KILL, HUP, QUIT, USR1, USR2, STOP, CONT (any case, with or without SIG), or a number 1-64",
        r#"["TERM"]"#,
    ),
    doc("state", "Only jobs in this state"),
    doc("tag", "Only jobs with this tag; 'x.*' matches x and every tag below it; repeat for several (all must match)"),
    doc("all", "Jobs of every working directory, not only the server's (not with cwd)"),
    doc("limit", "At most this many jobs, newest first (0: no limit)"),
    doc("name", "The job's name (unique among jobs that have not ended; @name finds it)"),
    doc("any", "Answer when the first of the jobs ends instead of when all have"),
    doc("job", "A job to wait for: id, unique prefix or @name; repeat for several"),
    doc("tail_lines", "Keep the last N lines of each stream (0 keeps all; default 50)"),
    doc("max_bytes", "Keep at most the last N bytes of each stream (default 65536)"),
    doc(
        "GcBody.max_bytes",
        "Also delete the oldest finished jobs until all jobs together take at most this much: bytes, or a size such as 10M (K, M or G)",
    ),
    doc("older_than", "Delete finished jobs older than this: <n>d, <n>h, <n>m, <n>s or <n> seconds (default 30d)"),
    doc("keep", "Also delete every finished job but the newest N"),
    doc("stream", "The log to read: stdout (default) or stderr"),
    doc("offset", "Byte offset in the log to start from (default 0)"),
    doc("follow", "Keep the response open and send output as it comes, until the job ends or until_ms passes"),
    doc("dry_run", "Say what would be deleted without deleting it"),
    doc("for_output", "Wait until a line of the job's output matches this pattern (readiness; not with for_port)"),
    doc("for_port", "Wait until this TCP port accepts connections (readiness; 1-65535)"),
    doc("for_host", "The host for_port connects to (default 127.0.0.1; needs for_port)"),
];

/// The description of a field of the body `within` (or of a query parameter: `None`).
pub fn doc_of(within: Option<&str>, name: &str) -> Option<&'static Doc> {
    let qualified = within.map(|body| format!("{body}.{name}"));
    let find = |key: &str| DOCS.iter().find(|doc| doc.name == key);
    qualified.as_deref().and_then(find).or_else(|| find(name))
}

/// A tag as stored (docs/compatibility.md §9): dot-separated segments of ASCII letters,
/// digits and '-' (`tags::check_tag`).
const TAG: &str = r"^[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)*$";
/// A tag pattern: a tag, or a tag followed by `.*` (`tags::check_pattern`).
const TAG_PATTERN: &str = r"^[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)*(\.\*)?$";
/// Text without NUL (no path, argv word or variable can hold one).
pub const NO_NUL: &str = "^[^\\u0000]*$";
/// A job name (`jobstore::names::check_name`).
const NAME: &str = "^[A-Za-z0-9._-]{1,64}$";

/// What the parsing code checks beyond the JSON type, as JSON Schema keywords merged
/// into the field's schema, so that a schema-valid value is one the server accepts.
pub fn constraints(name: &str) -> Option<Value> {
    Some(match name {
        "name" => json!({ "pattern": NAME }),
        "tag" => json!({ "pattern": TAG_PATTERN }),
        "tags" => json!({ "items": { "type": "string", "pattern": TAG } }),
        "job" => json!({ "pattern": format!("^([0-9A-Za-z]{{1,26}}|@{})$", &NAME[1..NAME.len() - 1]) }),
        "signal" => json!({ "pattern": signal_pattern() }),
        // `supervisor::check_pair`: a name is non-empty without '=' or NUL, a value has no NUL.
        // `gc::parse_duration`: trimmed, and as many digits as fit in i64 seconds.
        "older_than" => {
            json!({ "pattern": "^\\s*0*([0-9]{1,14}d|[0-9]{1,15}h|[0-9]{1,17}m|[0-9]{1,18}s?)\\s*$" })
        }
        "mask" => json!({ "items": { "type": "string", "pattern": "^[^=\\u0000]+$" } }),
        "shell_wrapper" => json!({ "minItems": 1, "items": { "type": "string", "pattern": "^[^\\u0000]+$" } }),
        "for_port" => json!({ "minimum": 1 }),
        "env" => json!({
            "propertyNames": { "pattern": "^[^=\\u0000]+$" },
            "additionalProperties": { "type": "string", "pattern": "^[^\\u0000]*$" },
        }),
        _ => return None,
    })
}

/// `signals::parse`: a name of `kill` in any case with or without SIG, or a number 1-64
/// (leading zeros allowed). JSON Schema patterns have no case-insensitive flag, so each
/// letter is a class of both cases.
fn signal_pattern() -> String {
    let any_case = |word: &str| {
        word.chars()
            .map(|c| {
                if c.is_ascii_alphabetic() {
                    format!("[{}{}]", c.to_ascii_uppercase(), c.to_ascii_lowercase())
                } else {
                    c.to_string()
                }
            })
            .collect::<String>()
    };
    let names: Vec<String> = crate::signals::kill_names().map(any_case).collect();
    format!("^(({})?({})|0*([1-9]|[1-5][0-9]|6[0-4]))$", any_case("SIG"), names.join("|"))
}

/// Schemas of fields serde reads untyped (`deserialize_any`): untagged enums.
pub fn hint(name: &str) -> Option<Value> {
    match name {
        // `CommandLine`: words without NUL, or a line with something besides blanks.
        "command" => Some(json!({
            "oneOf": [
                { "type": "array", "items": { "type": "string", "pattern": NO_NUL }, "minItems": 1 },
                { "type": "string", "pattern": "^[^\\u0000]*[^\\s\\u0000][^\\u0000]*$" }
            ]
        })),
        // `wire::v1::Size`: bytes, or `size::parse_size`'s text.
        "max_bytes" => Some(json!({
            "oneOf": [
                { "type": "integer", "minimum": 0, "maximum": u64::MAX },
                // As many digits as cannot overflow 64 bits once multiplied (`parse_size`).
                { "type": "string", "pattern": "^0*([0-9]{1,16}[Kk]|[0-9]{1,13}[Mm]|[0-9]{1,10}[Gg]|[0-9]{1,19})$" }
            ]
        })),
        _ => None,
    }
}

/// The type of a query parameter, by name. Query strings are read by `routes::Query`,
/// not by serde, so their types are stated here; a unit test checks that every
/// parameter of every route has one.
pub fn query_shape(name: &str) -> Option<Shape> {
    const STREAMS: &[&str] = &["stdout", "stderr"];
    const MATCH_STREAMS: &[&str] = &["stdout", "stderr", "either"];
    const MATCH_TYPES: &[&str] = &["contains", "regex"];
    let integer = Shape::Unsigned { max: u64::MAX };
    Some(match name {
        "until" | "until_ms" | "limit" | "tail_lines" | "max_bytes" | "offset" => integer,
        "all" | "any" | "follow" | "dry_run" => Shape::Bool,
        "signal" | "tag" | "cwd" | "name" | "job" | "for_output" | "for_host" => Shape::String,
        "state" => Shape::Choice(crate::wire::STATE_NAMES),
        "stream" => Shape::Choice(STREAMS),
        "output_stream" => Shape::Choice(MATCH_STREAMS),
        "output_match_type" => Shape::Choice(MATCH_TYPES),
        "for_port" => Shape::Unsigned { max: u16::MAX.into() },
        _ => return None,
    })
}
