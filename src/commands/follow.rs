//! `tail --follow`: the one CLI answer that is a stream, not one JSON object (like
//! `completions`). Raw mode copies each log to the matching stream of ours; `--json`
//! prints NDJSON records `{stream, data, offset}`, one per line of output, where `data`
//! keeps the line's newline so that the records concatenate back to the log.

use std::io::Write;

use super::{Answer, exit_status};
use crate::error::Result;
use crate::jobs::{self, FollowRequest};
use crate::jobstore::Root;
use crate::output;
use crate::wire::Stream;

#[derive(serde::Serialize)]
struct Record<'a> {
    stream: Stream,
    data: &'a str,
    offset: u64,
}

/// A stream's bytes not yet printed as a record: an unterminated line, and its offset.
#[derive(Default)]
struct Partial {
    bytes: Vec<u8>,
    offset: u64,
}

pub fn follow(root: &Root, request: &FollowRequest, json: bool) -> Result<Answer> {
    // Buffered for the records (several writes each), flushed after every chunk; the
    // job's stderr is copied in one write per chunk, so it needs no buffer.
    let (mut out, mut err) = (std::io::BufWriter::new(output::Std::stdout()), output::Std::stderr());
    let mut partial = [Partial::default(), Partial::default()];
    // A write that fails (stdout on a full disk, a reader gone) ends the follow; the
    // output is then lost, and the exit status must say so (1, as for a lost answer).
    let mut lost: Option<std::io::Error> = None;
    let state = {
        let mut write = |stream: Stream, bytes: &[u8], offset: u64| -> std::io::Result<()> {
            if !json {
                let sink: &mut dyn Write = if stream == Stream::Stdout { &mut out } else { &mut err };
                return sink.write_all(bytes).and_then(|()| sink.flush());
            }
            let pending = &mut partial[usize::from(stream == Stream::Stderr)];
            if pending.bytes.is_empty() {
                pending.offset = offset;
            }
            pending.bytes.extend_from_slice(bytes);
            let mut start = 0;
            while let Some(newline) = pending.bytes[start..].iter().position(|&b| b == b'\n') {
                let end = start + newline + 1;
                record(&mut out, stream, &pending.bytes[start..end], pending.offset + start as u64)?;
                start = end;
            }
            pending.bytes.drain(..start);
            pending.offset += start as u64;
            out.flush()
        };
        let mut emit = |stream: Stream, bytes: &[u8], offset: u64| {
            write(stream, bytes, offset).inspect_err(|e| lost = Some(std::io::Error::new(e.kind(), e.to_string())))
        };
        jobs::follow(root, request, &mut emit)?
    };
    for (stream, pending) in [Stream::Stdout, Stream::Stderr].into_iter().zip(&partial) {
        if !pending.bytes.is_empty() && lost.is_none() {
            lost = record(&mut out, stream, &pending.bytes, pending.offset).and_then(|()| out.flush()).err();
        }
    }
    if let Some(e) = lost {
        crate::log::to_stderr(format_args!("error: could not write the answer: {e}\n"));
        return Ok(Answer::Exit(1));
    }
    let status = exit_status::of(state.status().into(), state.result.exit_code, state.result.signal.as_deref());
    Ok(Answer::Streamed(status))
}

fn record(out: &mut impl Write, stream: Stream, line: &[u8], offset: u64) -> std::io::Result<()> {
    let data = String::from_utf8_lossy(line);
    serde_json::to_writer(&mut *out, &Record { stream, data: &data, offset })?;
    out.write_all(b"\n")
}
