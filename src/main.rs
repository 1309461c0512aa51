//! agent-exec: run commands as supervised background jobs; every call prints exactly one
//! JSON (or YAML) object on stdout.
//!
//! `main` only dispatches: parse argv, run one command, print one response, map it to an
//! exit code (0 success, 1 error object, 2 usage error). See ARCHITECTURE.md for the map.

// The unit tests keep libtest's entry point (and ours below stays out of their way).
#![cfg_attr(not(test), no_main)]

mod cli;
mod commands;
mod completions;
mod config;
mod error;
mod jobs;
mod jobstore;
mod log;
mod mcp;
mod output;
mod pattern;
mod reaper;
mod scrub;
mod serve;
mod signals;
mod size;
mod supervisor;
mod tags;
mod tail;
mod time;
mod wire;

#[cfg(test)]
mod proptests;

use std::ffi::OsString;

use cli::Parsed;
use commands::Answer;
use error::{Code, Error};

/// The process's entry point, called by the C library instead of the standard
/// library's (`#![no_main]`). Rust's own start-up asks the C library for the main
/// thread's stack bounds to report a stack overflow by name, and glibc finds them by
/// reading and parsing `/proc/self/maps`: that was a tenth of a millisecond of every
/// command, paid twice by every launch (front-end and supervisor). The two things it does
/// that we rely on are done here; the arguments reach `std::env::args_os` either way
/// (glibc passes them to the standard library's initialiser).
#[cfg(not(test))]
#[unsafe(no_mangle)]
extern "C" fn main(_argc: libc::c_int, _argv: *const *const libc::c_char) -> libc::c_int {
    // SAFETY: before any thread exists; plain descriptor and disposition changes.
    unsafe {
        // Descriptors 0-2 that are closed get /dev/null, so that no file we open takes
        // their numbers and receives our answer or a child's output.
        for fd in 0..=2 {
            if libc::fcntl(fd, libc::F_GETFD) == -1 {
                libc::open(c"/dev/null".as_ptr(), libc::O_RDWR);
            }
        }
        // A write to a closed pipe must fail with EPIPE (and become an error object or
        // a lost-answer exit 1), not kill us.
        libc::signal(libc::SIGPIPE, libc::SIG_IGN);
    }
    i32::from(run())
}

/// Under `cargo test` the harness provides the entry point; this keeps `run` (and
/// everything only it reaches) visibly used there.
#[cfg(test)]
fn main() {
    std::process::exit(i32::from(run()));
}

/// Our own version, then the interface we keep byte-compatible and the response schema.
const VERSION: &str =
    concat!("agent-exec ", env!("CARGO_PKG_VERSION"), " (compatible with agent-exec 0.1.18, schema 0.1)\n");

fn run() -> u8 {
    // A write past RLIMIT_FSIZE must fail with EFBIG and become a JSON error, not kill us.
    // SAFETY: changing one signal disposition before any thread exists.
    unsafe { libc::signal(libc::SIGXFSZ, libc::SIG_IGN) };
    let argv: Vec<OsString> = std::env::args_os().skip(1).collect();
    if argv.first().is_some_and(|a| a == supervisor::SUPERVISE_ARG) {
        let code = argv.get(1).map_or(2, |dir| supervisor::main(std::path::Path::new(dir)));
        return code as u8;
    }
    // `COMPLETE=<shell>` hijacks the invocation for shell completion: no command runs
    // (docs: the dynamic completion protocol).
    if let Some(shell) = std::env::var_os("COMPLETE").filter(|v| !v.is_empty() && v != "0") {
        let answer = completions::dynamic::answer(&shell.to_string_lossy(), &argv);
        if answer.code != 0 {
            log::to_stderr(format_args!("{}", answer.text));
            return answer.code;
        }
        return printed(output::print_text(&answer.text), 0);
    }
    match cli::parse(argv) {
        Parsed::Help(text) => printed(output::print_text(&text), 0),
        Parsed::Version => printed(output::print_text(VERSION), 0),
        Parsed::Missing => {
            log::to_stderr(format_args!("{}", cli::top_help()));
            2
        }
        Parsed::Usage(message, usage) => usage_error(&message, &usage),
        Parsed::Run(args) => {
            log::init(args.verbose);
            scrub::hide_from_argv(&masked_entries(&args));
            match commands::dispatch(&args) {
                Ok(Answer::Reply(reply)) => printed(output::print(&reply.json, args.yaml), 0),
                Ok(Answer::Job(reply, status)) => printed(output::print(&reply.json, args.yaml), status),
                Ok(Answer::List(body)) => {
                    let written = if args.yaml {
                        output::print(&wire::Reply::new("list", &body).json, true)
                    } else {
                        output::print_with(|out| wire::Reply::write("list", &body, out))
                    };
                    // The process exits next: freeing a long list one allocation at a time
                    // (six per job) would only delay the exit.
                    std::mem::forget(body);
                    printed(written, 0)
                }
                Ok(Answer::Text(text)) => printed(output::print_text(&text), 0),
                Ok(Answer::Exit(code)) => code,
                Ok(Answer::Streamed(status)) => status,
                Err(Error { code: Code::Usage, message, .. }) => {
                    usage_error(&message, &format!("agent-exec {}", args.command.usage))
                }
                Err(err) => printed(output::print(&wire::error_json(&err), args.yaml), 1),
            }
        }
    }
}

/// The exit status once the answer is written: `status`, or 1 with a message on stderr
/// if it could not be (stdout on a full disk or closed): a caller must not take a lost
/// answer for a success.
fn printed(written: std::io::Result<()>, status: u8) -> u8 {
    match written {
        Ok(()) => status,
        Err(e) => {
            log::to_stderr(format_args!("error: could not write the answer to stdout: {e}\n"));
            1
        }
    }
}

/// The `--env` entries whose key is masked: their values must not stay on our argv.
fn masked_entries(args: &cli::Args) -> Vec<String> {
    if args.command.flag(cli::table::ENV.long).is_none() {
        return Vec::new();
    }
    let masks = args.values(&cli::table::MASK);
    args.values(&cli::table::ENV)
        .into_iter()
        .filter(|entry| masks.contains(&entry.split_once('=').map_or(*entry, |(key, _)| key)))
        .map(str::to_string)
        .collect()
}

fn usage_error(message: &str, usage: &str) -> u8 {
    log::to_stderr(format_args!("error: {message}\n\nUsage: {usage}\n\nFor more information, try '--help'.\n"));
    2
}
