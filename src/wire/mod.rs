//! Every type that crosses a process boundary: the files of the job store, the response
//! bodies and the notification events. **API boundary**: a renamed field or a changed
//! omission rule breaks 0.1.18 clients, so nothing outside this module derives
//! `Serialize` for the outside world, and field order here is the contract's key order.

mod response;
mod store;

pub use response::*;
pub use store::*;

pub const SCHEMA_VERSION: &str = "0.1";
