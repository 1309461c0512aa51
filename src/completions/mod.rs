//! `completions <shell>`: completion scripts generated from the flag table at run time,
//! so every subcommand, flag and enumerated value the parser accepts is offered.
//!
//! Job ids are the one thing the table cannot know: each script calls
//! `agent-exec list --all` when a `JOB_ID` is being completed and keeps the ids whose
//! state suits the subcommand (docs/decisions.md OP-16). The JSON is cut apart with grep and sed
//! (fish: `string`), which every system has, rather than jq; this relies on `list`
//! printing `"job_id":"…","state":"…"` adjacently in each summary, as docs/compatibility.md §8.8
//! fixes the key order.

mod bash;
pub mod dynamic;
mod fish;
mod powershell;
mod zsh;

use crate::cli::table::{COMMANDS, GLOBAL, SHELLS, SIGNALS};
use crate::cli::{Command, Flag, Operand};

/// The script for `shell`; `None` for a shell the parser should already have refused.
pub fn script(shell: &str) -> Option<String> {
    match shell {
        "bash" => Some(bash::script()),
        "zsh" => Some(zsh::script()),
        "fish" => Some(fish::script()),
        "powershell" => Some(powershell::script()),
        _ => None,
    }
}

/// Which job ids a subcommand's `JOB_ID` accepts, by state; `None` when it takes no job
/// id, an empty list when any job will do.
fn job_states(command: &Command) -> Option<&'static [&'static str]> {
    match command.operand {
        Operand::JobId | Operand::JobIdUnless(_) | Operand::JobIds(_) => Some(match command.name {
            "start" => &["created"],
            "kill" => &["running"],
            "wait" => &["created", "running"],
            "delete" => &["exited", "killed", "failed"],
            _ => &[],
        }),
        _ => None,
    }
}

/// What to offer for a flag's value.
enum Value {
    Choices(&'static [&'static str]),
    File,
    Dir,
    /// Free text: offer nothing rather than misleading file names.
    Free,
}

fn value_kind(flag: &Flag) -> Value {
    if !flag.choices.is_empty() {
        return Value::Choices(flag.choices);
    }
    match (flag.long, flag.value) {
        ("signal", _) => Value::Choices(SIGNALS),
        (_, Some("DIR")) => Value::Dir,
        (_, Some("PATH" | "FILE")) => Value::File,
        _ => Value::Free,
    }
}

/// The words a user types as the subcommand: `tag set` and `notify set` start with
/// `tag` and `notify`; `help` is not in the table.
fn top_words() -> Vec<(&'static str, &'static str)> {
    let mut words: Vec<(&str, &str)> =
        COMMANDS.iter().map(|c| (c.name.split(' ').next().unwrap_or(c.name), c.about)).collect();
    words.push(("help", "Print help for a command"));
    words
}

/// Every flag of a command, globals included, for flag-name completion.
fn flags_of(command: &Command) -> impl Iterator<Item = &'static Flag> {
    command.all_flags().chain(GLOBAL.iter())
}

/// Distinct value-taking flags across the table, for "the previous word wants a value".
fn value_flags() -> Vec<&'static Flag> {
    let mut seen: Vec<&'static Flag> = Vec::new();
    for flag in COMMANDS.iter().flat_map(|c| c.all_flags()).chain(GLOBAL.iter()) {
        if flag.value.is_some() && !seen.iter().any(|f| f.long == flag.long) {
            seen.push(flag);
        }
    }
    seen
}

fn shells() -> String {
    SHELLS.join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_shell_of_the_table_has_a_script() {
        for shell in SHELLS {
            assert!(script(shell).is_some_and(|s| s.contains("list --all")), "{shell}");
        }
    }
}
