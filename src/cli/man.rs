//! Man pages, rendered from the flag table plus hand-written roff in `man/src/`.
//!
//! Test-only: the pages are committed under `man/` (so `make install` needs no build
//! step and the diff of a flag change shows in review), and the test below fails when
//! they are stale. `UPDATE_DOCS=1 cargo test` rewrites them.
//!
//! A fragment `man/src/<page>.roff` holds the DESCRIPTION and everything after the
//! options; the line `.\" @OPTIONS@` marks where the generated OPTIONS section goes.

use std::fmt::Write;
use std::path::{Path, PathBuf};

use super::table::{COMMANDS, GLOBAL};
use super::{Command, Flag};

const MARKER: &str = ".\\\" @OPTIONS@\n";

/// Every page: file name under `man/`, and the command it documents (`None` for the
/// overview and the job-store page).
pub fn pages() -> Vec<(String, Option<&'static Command>)> {
    let mut pages = vec![("agent-exec.1".to_string(), None)];
    for command in COMMANDS {
        pages.push((format!("{}.1", page_stem(command)), Some(command)));
    }
    pages.push(("agent-exec-jobstore.5".to_string(), None));
    pages
}

/// `tag set` is documented in agent-exec-tag(1), as git names its pages.
pub fn page_stem(command: &Command) -> String {
    format!("agent-exec-{}", command.name.split(' ').next().unwrap_or(command.name))
}

fn man_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("man")
}

pub fn render(file: &str, command: Option<&Command>) -> String {
    let (stem, section) = file.rsplit_once('.').unwrap_or((file, "1"));
    let fragment_path = man_dir().join("src").join(format!("{stem}.roff"));
    let fragment =
        std::fs::read_to_string(&fragment_path).unwrap_or_else(|e| panic!("read {}: {e}", fragment_path.display()));
    let version = concat!("agent-exec ", env!("CARGO_PKG_VERSION"));
    let mut out = format!(
        ".\\\" Generated from src/cli/table.rs and man/src/{stem}.roff by UPDATE_DOCS=1 cargo test; do not edit.\n\
         .TH {} {section} \"\" \"{version}\" \"agent-exec manual\"\n.SH NAME\n",
        escape(&stem.to_uppercase())
    );
    let about = match (command, stem) {
        (Some(command), _) => command.about,
        (None, "agent-exec") => "run commands as supervised background jobs, answering in JSON",
        (None, _) => "the agent-exec job store: directories and files of a job",
    };
    let _ = writeln!(out, "{} \\- {}", escape(stem), escape(&lower_first(about)));
    if let Some(command) = command {
        let _ = writeln!(out, ".SH SYNOPSIS\n.B agent\\-exec\n[\\fIGLOBAL OPTIONS\\fR]\n{}", synopsis(command.usage));
    }
    let (before, after) = fragment.split_once(MARKER).unwrap_or((&fragment, ""));
    out.push_str(before);
    if let Some(command) = command {
        let flags: Vec<&Flag> = command.all_flags().collect();
        if !flags.is_empty() {
            out.push_str(".SH OPTIONS\n");
            flags.iter().for_each(|flag| write_flag(&mut out, flag));
        }
        out.push_str(
            ".SH \"GLOBAL OPTIONS\"\nAccepted before or after the subcommand name; see\n.BR agent\\-exec (1).\n",
        );
        GLOBAL.iter().for_each(|flag| write_flag(&mut out, flag));
    } else if stem == "agent-exec" {
        out.push_str(".SH OPTIONS\n");
        GLOBAL.iter().for_each(|flag| write_flag(&mut out, flag));
        out.push_str(".TP\n.BR \\-V \", \" \\-\\-version\nPrint the version and exit.\n.SH COMMANDS\n");
        for command in COMMANDS {
            let _ = writeln!(
                out,
                ".TP\n.B {}\n{}.\nSee\n.BR {} (1).",
                escape(command.name),
                escape(command.about),
                escape(&page_stem(command))
            );
        }
    }
    out.push_str(after);
    out
}

fn synopsis(usage: &str) -> String {
    // The usage line's words: the subcommand in bold, the rest as typed.
    let (name, rest) = match usage.split_once(' ') {
        Some((first, rest)) if first == "tag" || first == "notify" => {
            let (sub, rest) = rest.split_once(' ').unwrap_or((rest, ""));
            (format!("{first} {sub}"), rest)
        }
        Some((first, rest)) => (first.to_string(), rest),
        None => (usage.to_string(), ""),
    };
    let mut out = format!(".B {}", escape(&name));
    if !rest.is_empty() {
        let _ = write!(out, "\n{}", escape(rest));
    }
    out
}

fn write_flag(out: &mut String, flag: &Flag) {
    let short = flag.short().map_or(String::new(), |c| format!("\\-{c}, "));
    let name = format!("{short}\\-\\-{}", escape(flag.long));
    match flag.value {
        Some(value) => {
            let _ = writeln!(out, ".TP\n.BI \"{name} \" \"{}\"", escape(value));
        }
        None => {
            let _ = writeln!(out, ".TP\n.B {name}");
        }
    }
    let mut doc = flag.doc.to_string();
    if !doc.ends_with('.') {
        doc.push('.');
    }
    let _ = writeln!(out, "{}", escape(&doc));
    let mut notes = Vec::new();
    if let Some(alias) = flag.alias {
        notes.push(format!("Alias: \\-\\-{}.", escape(alias)));
    }
    if !flag.choices.is_empty() {
        notes.push(format!("One of: {}.", escape(&flag.choices.join(", "))));
    }
    if let Some(default) = flag.default {
        notes.push(format!("Default: {}.", escape(default)));
    }
    if flag.repeatable {
        notes.push("May be repeated.".to_string());
    }
    if !notes.is_empty() {
        let _ = writeln!(out, ".br\n{}", notes.join(" "));
    }
}

/// Escapes text for roff: backslashes and hyphens, and a leading dot or quote that
/// would start a request.
fn escape(text: &str) -> String {
    let escaped = text.replace('\\', "\\e").replace('-', "\\-");
    if escaped.starts_with('.') || escaped.starts_with('\'') { format!("\\&{escaped}") } else { escaped }
}

fn lower_first(text: &str) -> String {
    let mut chars = text.chars();
    chars.next().map(|c| c.to_lowercase().chain(chars).collect()).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn committed_man_pages_match_the_table() {
        let update = std::env::var_os("UPDATE_DOCS").is_some_and(|v| v == "1");
        let mut stale = Vec::new();
        for (file, command) in pages() {
            let path = man_dir().join(&file);
            let rendered = render(&file, command);
            if std::fs::read_to_string(&path).ok().as_deref() == Some(rendered.as_str()) {
                continue;
            }
            if update {
                std::fs::write(&path, &rendered).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
            } else {
                stale.push(file);
            }
        }
        assert!(
            stale.is_empty(),
            "man pages are stale: {stale:?}\nrun `UPDATE_DOCS=1 cargo test` and commit man/ (see `git diff man/`)"
        );
    }

    #[test]
    fn every_page_has_a_fragment_and_no_stray_fragments() {
        let expected: Vec<String> = pages()
            .iter()
            .map(|(file, _)| format!("{}.roff", file.rsplit_once('.').map_or(file.as_str(), |p| p.0)))
            .collect();
        let entries = std::fs::read_dir(man_dir().join("src")).expect("man/src");
        for entry in entries {
            let name = entry.expect("entry").file_name().to_string_lossy().into_owned();
            assert!(expected.contains(&name), "man/src/{name} belongs to no page");
        }
    }
}
