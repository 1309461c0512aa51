//! The tool catalogue: one typed input per tool, its `inputSchema`, and its
//! `outputSchema` (the CLI's response definition from schema/agent-exec.schema.json, or
//! the error response an engine error gives).
//!
//! Inputs are deserialized with `deny_unknown_fields`, so a misspelt argument is an
//! error naming it rather than a silent default.

use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use super::framing::ErrorObject;
use crate::wire::{
    CreateInput, DeleteInput, JobInput, KillInput, ListInput, RunInput, SCHEMA_DOCUMENT as DOCUMENT, StartInput,
    TagSetInput, TailInput, WaitInput, typed_object,
};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tool {
    Run,
    Status,
    Tail,
    Wait,
    Kill,
    List,
    Create,
    Start,
    TagSet,
    Delete,
}

pub const ALL: [Tool; 10] = [
    Tool::Run,
    Tool::Status,
    Tool::Tail,
    Tool::Wait,
    Tool::Kill,
    Tool::List,
    Tool::Create,
    Tool::Start,
    Tool::TagSet,
    Tool::Delete,
];

/// A validated call: the tool and its typed input.
#[derive(Debug, Clone)]
pub enum ToolInput {
    Run(RunInput),
    Status(JobInput),
    Tail(TailInput),
    Wait(WaitInput),
    Kill(KillInput),
    List(ListInput),
    Create(CreateInput),
    Start(StartInput),
    TagSet(TagSetInput),
    Delete(DeleteInput),
}

impl Tool {
    pub fn name(self) -> &'static str {
        match self {
            Tool::Run => "run",
            Tool::Status => "status",
            Tool::Tail => "tail",
            Tool::Wait => "wait",
            Tool::Kill => "kill",
            Tool::List => "list",
            Tool::Create => "create",
            Tool::Start => "start",
            Tool::TagSet => "tag_set",
            Tool::Delete => "delete",
        }
    }

    pub fn from_name(name: &str) -> Option<Tool> {
        ALL.into_iter().find(|tool| tool.name() == name)
    }

    /// Tools that may block for a while (observation windows and waits).
    pub fn is_long(self) -> bool {
        matches!(self, Tool::Run | Tool::Start | Tool::Wait)
    }

    /// Validates `arguments` (absent counts as `{}`) into the tool's typed input.
    pub fn input(self, arguments: Value) -> Result<ToolInput, ErrorObject> {
        let arguments = if arguments.is_null() { json!({}) } else { arguments };
        if !arguments.is_object() {
            return Err(ErrorObject::invalid_params("arguments must be an object"));
        }
        Ok(match self {
            Tool::Run => ToolInput::Run(typed(&arguments)?),
            Tool::Status => ToolInput::Status(typed(&arguments)?),
            Tool::Tail => ToolInput::Tail(typed(&arguments)?),
            Tool::Wait => ToolInput::Wait(typed(&arguments)?),
            Tool::Kill => ToolInput::Kill(typed(&arguments)?),
            Tool::List => ToolInput::List(typed(&arguments)?),
            Tool::Create => ToolInput::Create(typed(&arguments)?),
            Tool::Start => ToolInput::Start(typed(&arguments)?),
            Tool::TagSet => ToolInput::TagSet(typed(&arguments)?),
            Tool::Delete => ToolInput::Delete(typed(&arguments)?),
        })
    }

    fn description(self) -> &'static str {
        match self {
            Tool::Run => {
                "Start a command as a supervised background job and return its id. Watches it for \
                 snapshot_after_ms (default 3000, at most 10000; it answers as soon as the job ends) with an output snapshot, or with \
                 wait=true until it ends (bounded by the server maximum). The job keeps running \
                 after this call; come back with status, tail or wait."
            }
            Tool::Status => "The state of one job (created, running, exited, killed, failed) and its exit code.",
            Tool::Tail => "The last lines of a job's stdout and stderr, in any state.",
            Tool::Wait => {
                "Wait until a job ends, at most until_ms (bounded by the server maximum). A state \
                 that is still running means the deadline passed: call wait again or do other work."
            }
            Tool::Kill => "Send a signal (default TERM) to a running job's process group.",
            Tool::List => "List jobs, newest first: by default those started in the server's directory.",
            Tool::Create => "Define a job without starting it; start it later with start.",
            Tool::Start => "Start a created job; observes it like run.",
            Tool::TagSet => "Replace a job's tags.",
            Tool::Delete => "Delete one finished job, or with all=true every finished job of the directory.",
        }
    }

    fn input_schema(self) -> Value {
        let job_id = json!({"type": "string", "description": "job id or a unique prefix of one"});
        let ms = |doc: &str| json!({"type": "integer", "minimum": 0, "description": doc});
        let strings = |doc: &str| json!({"type": "array", "items": {"type": "string"}, "description": doc});
        let definition = json!({
            "command": {
                "description": "argv array (exec'd as given), or one string run by the shell wrapper (sh -lc)",
                "anyOf": [{"type": "array", "items": {"type": "string"}, "minItems": 1}, {"type": "string", "minLength": 1}]
            },
            "cwd": {"type": "string", "description": "working directory (default: the server's)"},
            "env": {"type": "object", "additionalProperties": {"type": "string"}, "description": "extra environment variables"},
            "mask": strings("env keys whose values are shown as ***"),
            "tags": strings("tags (letters, digits, '-', dot-separated segments)"),
            "timeout_ms": ms("SIGTERM the job after this long; 0 disables"),
            "kill_after_ms": ms("after a timeout's SIGTERM, SIGKILL after this long"),
        });
        let observe = json!({
            "snapshot_after_ms": ms("watch up to this long (default 3000, at most 10000; returns when the job ends) and include an output snapshot; 0 answers at once"),
            "tail_lines": ms("lines kept per stream in snapshots (default 50; 0 keeps all)"),
            "max_bytes": ms("bytes kept per stream in snapshots (default 65536)"),
            "wait": {"type": "boolean", "description": "wait until the job ends, at most until_ms"},
            "until_ms": ms("with wait: give up after this long (default and maximum: the server maximum)"),
        });
        let (properties, required): (Value, &[&str]) = match self {
            Tool::Run => (merge(definition, observe), &["command"]),
            Tool::Create => (definition, &["command"]),
            Tool::Start => (merge(json!({"job_id": job_id}), observe), &["job_id"]),
            Tool::Status => (json!({"job_id": job_id}), &["job_id"]),
            Tool::Tail => (
                json!({"job_id": job_id, "lines": ms("last lines per stream (default 50; 0 keeps all)"),
                       "max_bytes": ms("last bytes per stream (default 65536)")}),
                &["job_id"],
            ),
            Tool::Wait => (
                json!({"job_id": job_id, "until_ms": ms("give up after this long (default and maximum: the server maximum)")}),
                &["job_id"],
            ),
            Tool::Kill => (
                json!({"job_id": job_id, "signal": {"type": "string", "description": "TERM INT KILL HUP QUIT USR1 USR2 STOP CONT or 1-64 (default TERM)"}}),
                &["job_id"],
            ),
            Tool::List => (
                json!({
                    "state": {"type": "string", "enum": crate::wire::STATE_NAMES},
                    "cwd": {"type": "string", "description": "only jobs started in this directory"},
                    "all": {"type": "boolean", "description": "jobs from every directory"},
                    "tags": strings("tag patterns ('x' or 'x.*') that must all match"),
                    "limit": ms("at most this many jobs; 0 is unlimited"),
                }),
                &[],
            ),
            Tool::TagSet => {
                (json!({"job_id": job_id, "tags": strings("the new tags; [] clears them")}), &["job_id", "tags"])
            }
            Tool::Delete => (
                json!({"job_id": job_id, "all": {"type": "boolean", "description": "every finished job of the directory instead of one"},
                       "dry_run": {"type": "boolean", "description": "report, delete nothing"}}),
                &[],
            ),
        };
        json!({"type": "object", "properties": properties, "required": required, "additionalProperties": false})
    }

    fn response_definition(self) -> &'static str {
        match self {
            Tool::Run => "RunResponse",
            Tool::Status => "StatusResponse",
            Tool::Tail => "TailResponse",
            Tool::Wait => "WaitResponse",
            Tool::Kill => "KillResponse",
            Tool::List => "ListResponse",
            Tool::Create => "CreateResponse",
            Tool::Start => "StartResponse",
            Tool::TagSet => "TagSetResponse",
            Tool::Delete => "DeleteResponse",
        }
    }

    /// Only the definitions this tool's answers reach, so that `tools/list` stays small.
    fn output_schema(self, all: &Value) -> Value {
        let definitions = reachable(all, &[self.response_definition(), "ErrorResponse"]);
        json!({
            "$schema": "http://json-schema.org/draft-07/schema#",
            "type": "object",
            "description": "the object the CLI prints; an engine error gives the error response with isError",
            "anyOf": [
                {"$ref": format!("#/definitions/{}", self.response_definition())},
                {"$ref": "#/definitions/ErrorResponse"}
            ],
            "definitions": definitions,
        })
    }
}

/// The `tools/list` result.
pub fn catalogue() -> Value {
    let document: Value = serde_json::from_str(DOCUMENT).unwrap_or_default();
    let definitions = document.get("definitions").cloned().unwrap_or_else(|| json!({}));
    let tools: Vec<Value> = ALL
        .iter()
        .map(|tool| {
            json!({
                "name": tool.name(),
                "description": tool.description(),
                "inputSchema": tool.input_schema(),
                "outputSchema": tool.output_schema(&definitions),
            })
        })
        .collect();
    json!({ "tools": tools })
}

/// The named definitions and every definition they reference, transitively.
fn reachable(all: &Value, roots: &[&str]) -> Value {
    let mut picked = serde_json::Map::new();
    let mut pending: Vec<String> = roots.iter().map(|name| name.to_string()).collect();
    while let Some(name) = pending.pop() {
        if picked.contains_key(&name) {
            continue;
        }
        let Some(definition) = all.get(&name) else { continue };
        collect_refs(definition, &mut pending);
        picked.insert(name, definition.clone());
    }
    Value::Object(picked)
}

fn collect_refs(value: &Value, into: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            if let Some(name) = map.get("$ref").and_then(Value::as_str).and_then(|r| r.strip_prefix("#/definitions/")) {
                into.push(name.to_string());
            }
            map.values().for_each(|v| collect_refs(v, into));
        }
        Value::Array(items) => items.iter().for_each(|v| collect_refs(v, into)),
        _ => {}
    }
}

fn merge(mut a: Value, b: Value) -> Value {
    if let (Some(a), Value::Object(b)) = (a.as_object_mut(), b) {
        a.extend(b);
    }
    a
}

/// Deserializes `arguments`; on failure the message names the offending field.
fn typed<T: DeserializeOwned>(arguments: &Value) -> Result<T, ErrorObject> {
    typed_object(arguments).map_err(|e| match e.field {
        Some(field) => ErrorObject::invalid_params(format!("{field}: {}", e.message)),
        None => ErrorObject::invalid_params(e.message),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::CommandLine;

    /// The input schemas are written by hand (their words are MCP's); this keeps them
    /// honest: each lists exactly the fields its serde type reads, with the same required
    /// ones, as reflected by `wire::reflect` (which generates the OpenAPI bodies).
    #[test]
    fn input_schemas_match_their_types() {
        use crate::wire::reflect::{Struct, reflect};
        use crate::wire::{DeleteInput, JobInput, ListInput, TagSetInput, TailInput, WaitInput};
        let reflected = |tool| -> Struct {
            match tool {
                Tool::Run => reflect::<RunInput>(),
                Tool::Status => reflect::<JobInput>(),
                Tool::Tail => reflect::<TailInput>(),
                Tool::Wait => reflect::<WaitInput>(),
                Tool::Kill => reflect::<KillInput>(),
                Tool::List => reflect::<ListInput>(),
                Tool::Create => reflect::<CreateInput>(),
                Tool::Start => reflect::<StartInput>(),
                Tool::TagSet => reflect::<TagSetInput>(),
                Tool::Delete => reflect::<DeleteInput>(),
            }
        };
        for tool in ALL {
            let schema = tool.input_schema();
            let typed = reflected(tool);
            let mut listed: Vec<&str> =
                schema["properties"].as_object().expect("properties").keys().map(String::as_str).collect();
            let mut fields: Vec<&str> = typed.fields.iter().map(|f| f.name).collect();
            listed.sort_unstable();
            fields.sort_unstable();
            assert_eq!(listed, fields, "{}: schema properties against the type's fields", tool.name());
            let mut required: Vec<&str> =
                schema["required"].as_array().expect("required").iter().filter_map(Value::as_str).collect();
            let mut needed: Vec<&str> = typed.fields.iter().filter(|f| f.required).map(|f| f.name).collect();
            required.sort_unstable();
            needed.sort_unstable();
            assert_eq!(required, needed, "{}: required fields", tool.name());
            assert!(typed.closed, "{}: unknown fields must be refused", tool.name());
        }
    }

    fn error(tool: Tool, arguments: Value) -> String {
        tool.input(arguments).expect_err("must be refused").message
    }

    #[test]
    fn bad_arguments_name_the_field() {
        assert!(error(Tool::Wait, json!({"job_id": "01A", "until_ms": "soon"})).contains("until_ms"));
        assert!(error(Tool::Wait, json!({"job_id": "01A", "timeout": 3})).contains("timeout"));
        assert!(error(Tool::Status, json!({})).contains("job_id"));
        assert!(error(Tool::Run, json!({"command": 5})).contains("command"));
        assert!(error(Tool::Run, json!({"command": ["ls"], "wait": "yes"})).contains("wait"));
        assert!(error(Tool::Run, json!({"command": ["ls"], "bogus": 1})).contains("bogus"));
        assert!(error(Tool::List, json!([])).contains("object"));
    }

    #[test]
    fn good_arguments_are_typed() {
        let ToolInput::Run(run) =
            Tool::Run.input(json!({"command": "echo hi", "env": {"A": "1"}, "wait": true})).expect("valid")
        else {
            panic!("not a run")
        };
        assert!(matches!(run.command, CommandLine::Shell(ref s) if s == "echo hi"));
        assert!(run.wait && run.env["A"] == "1");
        assert!(matches!(Tool::List.input(Value::Null), Ok(ToolInput::List(_))));
    }

    #[test]
    fn the_catalogue_names_every_tool_with_object_schemas() {
        let catalogue = catalogue();
        let tools = catalogue["tools"].as_array().expect("tools");
        assert_eq!(tools.len(), ALL.len());
        for tool in tools {
            assert_eq!(tool["inputSchema"]["type"], "object");
            assert_eq!(tool["outputSchema"]["type"], "object");
            let mut refs = Vec::new();
            collect_refs(&tool["outputSchema"], &mut refs);
            assert!(refs.contains(&"ErrorResponse".to_string()));
            for name in refs {
                assert!(tool["outputSchema"]["definitions"][&name].is_object(), "{name} unresolved");
            }
        }
    }
}
