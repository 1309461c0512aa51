//! Every type that crosses a process boundary: the files of the job store, the request
//! and response bodies and the notification events. **API boundary**: a renamed field or
//! a changed omission rule breaks 0.1.18 clients, so nothing outside this module derives
//! `Serialize` or `Deserialize` for the outside world, and field order here is the
//! contract's key order.

pub mod reflect;
mod request;
mod response;
mod store;
mod unique;
pub mod v1;

pub use request::*;
pub use response::*;
pub use store::*;
pub use unique::{parse_request, parse_unique};

pub const SCHEMA_VERSION: &str = "0.1";

/// The JSON Schema of every response (`agent-exec schema`, the MCP output schemas);
/// `schema/agent-exec.schema.json` is its only copy in the tree.
pub const SCHEMA_DOCUMENT: &str = include_str!("../../schema/agent-exec.schema.json");
