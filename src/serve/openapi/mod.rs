//! The OpenAPI 3.1 document of the REST API (`GET /openapi.json`, `GET /v1/openapi.json`)
//! and the index of `GET /`, generated, never written by hand:
//! - paths from the router's own routes (`describe` matches every `Route`, so a new
//!   route does not compile until it is described) and their query parameters from
//!   `Route::params`;
//! - request bodies from their serde types (`wire::reflect`), so a field added to a
//!   body type appears in the document (and a test fails until it has a description);
//! - response bodies from schema/agent-exec.schema.json, the one schema behind
//!   `agent-exec schema` and the MCP output schemas, validated against real answers.
//!
//! The document depends on the server's options (`--max-wait-ms` in the descriptions of
//! waits, the bearer requirement when a token is set), so it is built once when `serve`
//! starts.

mod fields;
mod schema;

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::{Map, Value, json};

use super::routes::{Param, Route};
use super::stream;
use crate::wire::reflect::{Struct, reflect};
use crate::wire::v1::{GcBody, JobBody, KillBody, NotifyBody, StartBody, TagsBody};
use crate::wire::{self, Reply};
use schema::Text;

/// What the document says that depends on how `serve` runs.
#[derive(Debug, Clone, Copy)]
pub struct Config {
    pub max_wait_ms: u64,
    /// A bearer token is required (every route but the health check answers 401 without it).
    pub token: bool,
}

/// The paths the document is served at; the index links the first.
pub const DOCUMENT_PATHS: [&str; 2] = ["/openapi.json", "/v1/openapi.json"];

/// A request body: the component name of its schema and its reflected type.
struct Body {
    name: &'static str,
    reflect: fn() -> Struct,
    /// `false` when an empty body means `{}`.
    required: bool,
    /// Fields the handler requires beyond their type (`schema::body`).
    require: &'static [&'static str],
    text: Text,
}

/// What a successful answer is.
enum Success {
    /// JSON with one of these response definitions, `200 OK` (or `201 Created` with a
    /// `Location` header).
    Json { created: bool, schemas: &'static [&'static str] },
    /// This document.
    Document,
    /// Raw log bytes.
    Output,
}

/// One operation of the document.
struct Operation {
    method: &'static str,
    /// The path template (`{id}` for a job).
    path: &'static str,
    summary: &'static str,
    body: Option<Body>,
    success: Success,
    /// Answers 409 `name_in_use`.
    conflict: bool,
    /// Waits (in the long-poll lane); the description says how long at most.
    waits: bool,
}

const fn op(method: &'static str, path: &'static str, summary: &'static str, success: Success) -> Operation {
    Operation { method, path, summary, body: None, success, conflict: false, waits: false }
}

const fn json_ok(schemas: &'static [&'static str]) -> Success {
    Success::Json { created: false, schemas }
}

/// The id every job path template holds.
const ID: &str = "{id}";

/// Every route the router answers, one of each (job routes with the template id). A
/// test routes each operation's path back to its route.
fn routes() -> Vec<Route> {
    let id = || ID.to_string();
    vec![
        Route::Index,
        Route::OpenApi,
        Route::Health,
        Route::Exec,
        Route::Status(id()),
        Route::Tail(id()),
        Route::Wait(id()),
        Route::Kill(id()),
        Route::List,
        Route::Create,
        Route::Job(id()),
        Route::Start(id()),
        Route::JobKill(id()),
        Route::JobWait(id()),
        Route::WaitMany,
        Route::JobTail(id()),
        Route::Output(id()),
        Route::Tags(id()),
        Route::Notify(id()),
        Route::Delete(id()),
        Route::Gc,
    ]
}

/// The operations of a route. Exhaustive on purpose: a new route must be described
/// here before the code compiles.
fn describe(route: &Route) -> Vec<Operation> {
    use Success::{Document, Output};
    let exec_body = || Body {
        name: "ExecRequest",
        reflect: reflect::<wire::ExecRequest>,
        required: true,
        require: &["command"],
        text: Text::Any,
    };
    let optional = |name, reflect| Some(Body { name, reflect, required: false, require: &[], text: Text::NoNul });
    match route {
        Route::Index => {
            vec![op("GET", "/", "Index: name, version and links (to this document)", json_ok(&["IndexResponse"]))]
        }
        Route::OpenApi => {
            DOCUMENT_PATHS.iter().map(|path| op("GET", path, "This OpenAPI document", Document)).collect()
        }
        Route::Health => ["/health", "/v1/health"]
            .into_iter()
            .map(|path| op("GET", path, "Health check (no token needed)", json_ok(&["HealthResponse"])))
            .collect(),
        Route::Exec => vec![Operation {
            body: Some(exec_body()),
            waits: true,
            ..op("POST", "/exec", "Run a job (0.1.18; POST /v1/jobs takes every run option)", json_ok(&["RunResponse"]))
        }],
        Route::Status(_) => vec![op("GET", "/status/{id}", "Job status (0.1.18)", json_ok(&["StatusResponse"]))],
        Route::Tail(_) => vec![op("GET", "/tail/{id}", "Last 50 lines of output (0.1.18)", json_ok(&["TailResponse"]))],
        Route::Wait(_) => vec![Operation {
            waits: true,
            ..op("GET", "/wait/{id}", "Wait for a job to end (0.1.18)", json_ok(&["WaitResponse"]))
        }],
        Route::Kill(_) => vec![op("POST", "/kill/{id}", "Send a signal to a job (0.1.18)", json_ok(&["KillResponse"]))],
        Route::List => vec![op("GET", "/v1/jobs", "List jobs", json_ok(&["ListResponse"]))],
        Route::Create => vec![Operation {
            body: Some(Body {
                name: "JobBody",
                reflect: reflect::<JobBody>,
                required: true,
                require: &["command"],
                text: Text::NoNul,
            }),
            conflict: true,
            waits: true,
            ..op(
                "POST",
                "/v1/jobs",
                "Create a job, or run it with start: true",
                Success::Json { created: true, schemas: &["CreateResponse", "RunResponse"] },
            )
        }],
        Route::Job(_) => vec![op("GET", "/v1/jobs/{id}", "Job status", json_ok(&["StatusResponse"]))],
        Route::Start(_) => vec![Operation {
            body: optional("StartBody", reflect::<StartBody>),
            waits: true,
            ..op("POST", "/v1/jobs/{id}/start", "Start a created job", json_ok(&["StartResponse"]))
        }],
        Route::JobKill(_) => vec![Operation {
            body: optional("KillBody", reflect::<KillBody>),
            ..op("POST", "/v1/jobs/{id}/kill", "Send a signal to a job", json_ok(&["KillResponse"]))
        }],
        Route::JobWait(_) => vec![Operation {
            waits: true,
            ..op("GET", "/v1/jobs/{id}/wait", "Wait for a job to end or become ready", json_ok(&["WaitResponse"]))
        }],
        Route::WaitMany => vec![Operation {
            waits: true,
            ..op(
                "GET",
                "/v1/wait",
                "Wait for several jobs (all, or the first with any)",
                json_ok(&["WaitManyResponse"]),
            )
        }],
        Route::JobTail(_) => vec![op("GET", "/v1/jobs/{id}/tail", "Last lines of output", json_ok(&["TailResponse"]))],
        Route::Output(_) => vec![Operation {
            waits: true,
            ..op("GET", "/v1/jobs/{id}/output", "Raw log bytes from an offset, optionally followed", Output)
        }],
        Route::Tags(_) => vec![Operation {
            body: Some(Body {
                name: "TagsBody",
                reflect: reflect::<TagsBody>,
                required: true,
                require: &["tags"],
                text: Text::NoNul,
            }),
            ..op("PUT", "/v1/jobs/{id}/tags", "Replace a job's tags", json_ok(&["TagSetResponse"]))
        }],
        Route::Notify(_) => vec![Operation {
            body: optional("NotifyBody", reflect::<NotifyBody>),
            ..op("PATCH", "/v1/jobs/{id}/notify", "Change a job's completion sinks", json_ok(&["NotifySetResponse"]))
        }],
        Route::Delete(_) => vec![op("DELETE", "/v1/jobs/{id}", "Delete a finished job", json_ok(&["DeleteResponse"]))],
        Route::Gc => vec![Operation {
            body: optional("GcBody", reflect::<GcBody>),
            ..op("POST", "/v1/gc", "Delete finished jobs by age, count or size", json_ok(&["GcResponse"]))
        }],
        Route::NoSuchJob(_) | Route::NotFound | Route::WrongMethod(_) => Vec::new(),
    }
}

/// The document as served.
pub fn document(config: &Config) -> String {
    let mut paths: BTreeMap<&str, Map<String, Value>> = BTreeMap::new();
    let mut bodies = Map::new();
    for route in routes() {
        for operation in describe(&route) {
            let rendered = render(&route, &operation, config, &mut bodies);
            paths.entry(operation.path).or_default().insert(operation.method.to_ascii_lowercase(), rendered);
        }
    }
    link_new_jobs(&mut paths);
    let mut components = schema::response_components();
    components.extend(bodies);
    let mut document = json!({
        "openapi": "3.1.0",
        "info": {
            "title": "agent-exec REST API",
            "version": env!("CARGO_PKG_VERSION"),
            "summary": "Run commands as supervised background jobs over HTTP",
            "description": "Every answer is one JSON object (the CLI's, see `agent-exec schema`) with sorted keys; errors are the error envelope. Job ids in paths: a full id, a unique prefix or (v1 routes) @name. Input is strict: an unknown query parameter or body field, a wrong type or a value out of range is 400 invalid_request naming it.",
            "license": { "name": "MIT", "identifier": "MIT" },
        },
        "servers": [{ "url": "/", "description": "this server" }],
        "paths": paths,
        "components": {
            "schemas": components,
            "responses": error_responses(),
            "securitySchemes": { "bearer": { "type": "http", "scheme": "bearer", "description": "serve --token-file or $AGENT_EXEC_SERVE_TOKEN" } },
        },
    });
    if config.token {
        document["security"] = json!([{ "bearer": [] }]);
    }
    // Descriptions name the server's bound in one placeholder (see `fields`).
    document.to_string().replace("{max_wait_ms}", &config.max_wait_ms.to_string())
}

/// OpenAPI links from the answers that create a job (`POST /exec`, `POST /v1/jobs`) to
/// every operation on one job of the same API (0.1.18's or v1), its `{id}` being the
/// answer's `job_id`: clients (and Schemathesis' stateful tests) follow them.
fn link_new_jobs(paths: &mut BTreeMap<&str, Map<String, Value>>) {
    let on_one_job: Vec<(bool, String)> = paths
        .iter()
        .filter(|(path, _)| path.contains(ID))
        .flat_map(|(path, item)| item.values().map(|op| (path.starts_with("/v1/"), op["operationId"].to_string())))
        .collect();
    for (path, status) in [("/exec", "200"), ("/v1/jobs", "201")] {
        let v1 = path.starts_with("/v1/");
        let links: Map<String, Value> = on_one_job
            .iter()
            .filter(|(family, _)| *family == v1)
            .map(|(_, id)| {
                let id = id.trim_matches('"').to_string();
                (id.clone(), json!({ "operationId": id, "parameters": { "id": "$response.body#/job_id" } }))
            })
            .collect();
        if let Some(response) = paths.get_mut(path).and_then(|item| item.get_mut("post")) {
            response["responses"][status]["links"] = Value::Object(links);
        }
    }
}

fn render(route: &Route, operation: &Operation, config: &Config, bodies: &mut Map<String, Value>) -> Value {
    let mut parameters: Vec<Value> = Vec::new();
    if operation.path.contains(ID) {
        // What `routes::route` lets through to a handler; anything else is 404.
        let (names, id_pattern) = if operation.path.starts_with("/v1/") {
            (", or @name (also %40name)", "^([0-9A-Za-z]{1,26}|@[A-Za-z0-9._-]{1,64})$")
        } else {
            ("", "^[0-9A-Za-z]{1,26}$")
        };
        parameters.push(json!({
            "name": "id", "in": "path", "required": true,
            "description": format!("The job: its id or a unique prefix of it{names}"),
            "schema": { "type": "string", "pattern": id_pattern },
        }));
    }
    parameters.extend(route.params().iter().map(query_parameter));
    let mut rendered = json!({
        "operationId": operation_id(operation),
        "summary": operation.summary,
        "responses": responses(route, operation, config),
    });
    if operation.waits {
        rendered["description"] = json!(
            "Waits in the long-poll lane (serve --max-waiters), for at most {max_wait_ms} ms (serve --max-wait-ms)."
        );
    }
    if !parameters.is_empty() {
        rendered["parameters"] = json!(parameters);
    }
    if let Some(body) = &operation.body {
        bodies.insert(body.name.to_string(), schema::body(&(body.reflect)(), body.name, body.require, body.text));
        rendered["requestBody"] = json!({
            "required": body.required,
            "content": { "application/json": { "schema": schema::reference(body.name) } },
        });
    }
    if matches!(route, Route::Health) {
        rendered["security"] = json!([]);
    }
    rendered
}

/// `get_v1_jobs_id_tail` from `GET /v1/jobs/{id}/tail`.
fn operation_id(operation: &Operation) -> String {
    let words = operation.path.split(['/', '{', '}', '.']).filter(|word| !word.is_empty());
    let id =
        std::iter::once(operation.method.to_ascii_lowercase()).chain(words.map(str::to_string)).collect::<Vec<_>>();
    if id.len() == 1 { "get_index".to_string() } else { id.join("_") }
}

fn query_parameter(param: &Param) -> Value {
    let shape =
        fields::query_shape(param.name).unwrap_or_else(|| panic!("query parameter '{}' has no type", param.name));
    let mut item = schema::shape(&shape, param.name, Text::NoNul);
    let mut parameter = json!({ "name": param.name, "in": "query", "required": false });
    schema::describe(&mut item, None, param.name);
    if let Some(description) = item.as_object_mut().and_then(|item| item.remove("description")) {
        parameter["description"] = description;
    }
    parameter["schema"] = if param.repeatable {
        parameter["style"] = json!("form");
        parameter["explode"] = json!(true);
        json!({ "type": "array", "items": item })
    } else {
        item
    };
    parameter
}

fn responses(route: &Route, operation: &Operation, config: &Config) -> Value {
    let mut responses = Map::new();
    let (status, success) = match &operation.success {
        Success::Json { created, schemas } => {
            let schema = match schemas {
                [one] => schema::reference(one),
                many => json!({ "oneOf": many.iter().map(|name| schema::reference(name)).collect::<Vec<_>>() }),
            };
            let mut success = json!({
                "description": if *created { "Created" } else { "OK" },
                "content": { "application/json": { "schema": schema } },
            });
            if *created {
                success["headers"] = json!({ "Location": {
                    "description": "/v1/jobs/{job_id} of the new job", "required": true, "schema": { "type": "string" },
                } });
            }
            (if *created { "201" } else { "200" }, success)
        }
        Success::Document => (
            "200",
            json!({
                "description": "The OpenAPI 3.1 document",
                "content": { "application/json": { "schema": { "type": "object", "required": ["openapi", "paths"] } } },
            }),
        ),
        Success::Output => (
            "200",
            json!({
                "description": "The log's bytes from the offset: to its current end, or (follow) as they are written until the job ends and its log is drained, or until_ms passes",
                "headers": {
                    stream::OFFSET_HEADER: { "description": "The offset of the first byte sent; resume with offset + bytes received", "required": true, "schema": { "type": "string", "pattern": "^[0-9]+$" } },
                    stream::JOB_ID_HEADER: { "description": "The job's full id", "required": true, "schema": { "type": "string" } },
                    stream::UNTIL_HEADER: { "description": "With follow: the bound the stream was given, in milliseconds (until_ms, at most serve --max-wait-ms)", "schema": { "type": "string", "pattern": "^[0-9]+$" } },
                },
                "content": { "application/octet-stream": { "schema": { "type": "string", "format": "binary" } } },
            }),
        ),
    };
    responses.insert(status.to_string(), success);
    let error = |name: &str| json!({ "$ref": format!("#/components/responses/{name}") });
    responses.insert("400".into(), error("BadRequest"));
    if config.token && !matches!(route, Route::Health) {
        responses.insert("401".into(), error("Unauthorized"));
    }
    if operation.path.contains(ID) || matches!(route, Route::WaitMany) {
        responses.insert("404".into(), error("NotFound"));
    }
    if operation.conflict {
        responses.insert("409".into(), error("Conflict"));
    }
    // What tiny_http answers before any route is known (`limits::http_limits`): a body
    // is refused by size whatever the method, so every operation can answer these.
    responses.insert("408".into(), error("Timeout"));
    responses.insert("413".into(), error("TooLarge"));
    responses.insert("431".into(), error("HeadTooLarge"));
    responses.insert("500".into(), error("Internal"));
    responses.insert("503".into(), error("Unavailable"));
    Value::Object(responses)
}

/// The error answers, all the error envelope.
fn error_responses() -> Value {
    let envelope = |description: &str| {
        json!({
            "description": description,
            "content": { "application/json": { "schema": schema::reference("ErrorResponse") } },
        })
    };
    let mut unauthorized = envelope("unauthorized: missing or wrong bearer token");
    unauthorized["headers"] =
        json!({ "WWW-Authenticate": { "required": true, "schema": { "type": "string", "const": "Bearer" } } });
    json!({
        "BadRequest": envelope("invalid_request (the message names the offending parameter or field), ambiguous_job_id, invalid_state, invalid_tag"),
        "Unauthorized": unauthorized,
        "NotFound": envelope("job_not_found"),
        "Conflict": envelope("name_in_use: another live job holds the name (error.job_id names it)"),
        "Timeout": envelope("the request's head or body did not arrive within 10 s"),
        "TooLarge": envelope("request body over 1 MiB"),
        "HeadTooLarge": envelope("a request line or header over 8 KiB, a head over 16 KiB or more than 100 headers"),
        "Internal": envelope("internal_error (a fault of the server or its job store)"),
        "Unavailable": envelope("the server is shutting down, or too many connections are open"),
    })
}

/// `GET /`: where to start.
#[derive(Serialize)]
struct IndexBody {
    name: &'static str,
    version: &'static str,
    openapi: &'static str,
    links: BTreeMap<&'static str, &'static str>,
}

/// The index answer: the name, the version and the entry points of the document.
pub fn index() -> Reply {
    let mut links = BTreeMap::new();
    for route in routes() {
        for operation in describe(&route) {
            let name = operation.path.strip_prefix("/v1/").filter(|rest| !rest.contains(['/', '.']));
            if let Some(name) = name.filter(|_| operation.method == "GET") {
                links.insert(name, operation.path);
            }
        }
    }
    links.insert("openapi", DOCUMENT_PATHS[0]);
    let body = IndexBody { name: "agent-exec", version: env!("CARGO_PKG_VERSION"), openapi: DOCUMENT_PATHS[0], links };
    Reply::sorted("index", &body)
}

#[cfg(test)]
mod tests;
