//! `--help` text, rendered from the flag table.

use std::fmt::Write;

use super::table::{COMMANDS, GLOBAL};
use super::{Command, Flag, Operand};

pub fn top_help() -> String {
    let mut out = String::from(
        "Run commands as supervised background jobs; every call prints one JSON object\n\n\
         Usage: agent-exec [OPTIONS] <COMMAND>\n\nCommands:\n",
    );
    for command in COMMANDS {
        let _ = writeln!(out, "  {:<15} {}", command.name, command.about);
    }
    let _ = writeln!(out, "  {:<15} Print help for a command", "help");
    out.push_str("\nOptions:\n");
    for flag in GLOBAL {
        write_flag(&mut out, flag);
    }
    let _ = writeln!(out, "  {:<30} Print version", "-V, --version");
    out.push_str(
        "\nExit status: 0 success (including a job that failed), 1 error (JSON on stdout), \
         2 usage error (message on stderr).\nSee agent-exec(1) and 'agent-exec help <COMMAND>'.\n",
    );
    out
}

pub fn command_help(command: &Command) -> String {
    let mut out = format!("{}\n\nUsage: agent-exec {}\n", command.about, command.usage);
    match command.operand {
        Operand::JobCommand => out.push_str(
            "\nArguments:\n  <COMMAND>...  One word: a shell command string run by the wrapper (sh -lc).\n\
             \x20               Several words: an argv, exec'd by the wrapper ('exec \"$@\"').\n",
        ),
        Operand::JobId | Operand::JobIdUnless(_) => {
            out.push_str("\nArguments:\n  <JOB_ID>  A job id or a unique prefix of one\n");
        }
        Operand::JobIds(_) => {
            out.push_str("\nArguments:\n  <JOB_ID>...  Job ids, unique prefixes of ids, or @NAME\n");
        }
        Operand::Choice(name, choices) => {
            let _ = write!(out, "\nArguments:\n  <{name}>  One of: {}\n", choices.join(", "));
        }
        Operand::None => {}
    }
    out.push_str("\nOptions:\n");
    for flag in command.all_flags() {
        write_flag(&mut out, flag);
    }
    for flag in GLOBAL {
        write_flag(&mut out, flag);
    }
    out
}

fn write_flag(out: &mut String, flag: &Flag) {
    let short = flag.short().map_or(String::new(), |c| format!("-{c}, "));
    let mut name = format!("{short}--{}", flag.long);
    if let Some(value) = flag.value {
        let _ = write!(name, " <{value}>");
    }
    let mut doc = flag.doc.to_string();
    if let Some(alias) = flag.alias {
        let _ = write!(doc, " (alias: --{alias})");
    }
    if !flag.choices.is_empty() {
        let _ = write!(doc, " [possible values: {}]", flag.choices.join(", "));
    }
    if let Some(default) = flag.default {
        let _ = write!(doc, " [default: {default}]");
    }
    if flag.repeatable {
        doc.push_str(" [repeatable]");
    }
    if name.len() > 30 {
        let _ = writeln!(out, "  {name}\n  {:<30} {doc}", "");
    } else {
        let _ = writeln!(out, "  {name:<30} {doc}");
    }
}
