//! The v1 resources this module owns (REST v1, issue 16): list, create/run, status,
//! start, kill, tail, tags, notify, delete and gc. Each handler reads its body (a serde
//! type of `wire::v1`, unknown fields refused) or its checked query, builds the engine's
//! typed request with the CLI's rules, calls `crate::jobs` once and renders the CLI's
//! answer.

use serde::Deserialize;

use super::handlers::{Answer, Context};
use super::routes::{Query, Route};
use crate::error::{Code, Error, Result};
use crate::jobs::{self, ListFilter};
use crate::wire::{Reply, STATE_NAMES};
use crate::{jobstore, tags};

/// Does this `POST /v1/jobs` or `.../start` body make the request wait? A run or start
/// watches the job for the CLI's default window (`--snapshot-after`) unless
/// `snapshot_after_ms` is 0, and `wait` or a readiness field waits. Read leniently: a
/// body that does not parse is refused at once by the handler.
pub fn blocks(route: &Route, body: &[u8]) -> bool {
    #[derive(Deserialize)]
    struct Blocking {
        start: Option<bool>,
        wait: Option<bool>,
        snapshot_after_ms: Option<u64>,
        for_output: Option<String>,
        for_port: Option<u16>,
    }
    let body = if body.iter().all(u8::is_ascii_whitespace) { b"{}".as_slice() } else { body };
    let Ok(flags) = serde_json::from_slice::<Blocking>(body) else { return false };
    let launches = matches!(route, Route::Start(_)) || flags.start == Some(true);
    launches
        && (flags.wait == Some(true)
            || flags.snapshot_after_ms != Some(0)
            || flags.for_output.is_some()
            || flags.for_port.is_some())
}

pub fn handle(route: Route, ctx: &Context, query: &Query, _body: &mut dyn FnMut() -> Result<Vec<u8>>) -> Answer {
    let result = match route {
        Route::List => list(ctx, query),
        _ => return Answer { status: 501, ..Answer::error(&Error::internal("not implemented yet")) },
    };
    match result {
        Ok(reply) => Answer::ok(reply),
        Err(err) => Answer::error(&err),
    }
}

fn invalid(message: String) -> Error {
    Error::new(Code::InvalidRequest, message)
}

/// `GET /v1/jobs`: the CLI's `list` filters, scoped like `list` run in the server's
/// working directory.
fn list(ctx: &Context, query: &Query) -> Result<Reply> {
    let state = query.text("state").map(str::to_string);
    if let Some(state) = state.as_deref().filter(|s| !STATE_NAMES.contains(s)) {
        return Err(invalid(format!(
            "invalid query parameter 'state': '{state}' is not one of {}",
            STATE_NAMES.join(", ")
        )));
    }
    let tags = query.all("tag");
    for pattern in &tags {
        tags::check_pattern(pattern).map_err(|e| invalid(format!("invalid query parameter 'tag': {e}")))?;
    }
    let name = query.text("name").map(str::to_string);
    if let Some(name) = &name {
        jobstore::names::check_name(name).map_err(|e| invalid(format!("invalid query parameter 'name': {e}")))?;
    }
    let all = query.bool("all")?.unwrap_or(false);
    let cwd = query.text("cwd").map(str::to_string);
    if all && cwd.is_some() {
        return Err(invalid("query parameters 'cwd' and 'all' cannot be used together".into()));
    }
    let filter = ListFilter { cwd, all, state, tags, limit: query.u64("limit")?.unwrap_or(0), name };
    Ok(Reply::sorted("list", &jobs::list(ctx.root, &filter)?))
}
