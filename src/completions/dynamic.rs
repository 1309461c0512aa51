//! The `COMPLETE=<shell>` protocol (clap's "CompleteEnv"), which 0.1.18 users register
//! with `source <(COMPLETE=bash agent-exec)`:
//!
//! - `COMPLETE=<shell> agent-exec` prints a registration script that makes the shell
//!   call the binary back on every completion request;
//! - `COMPLETE=<shell> agent-exec -- agent-exec <words…>` prints the candidates for the
//!   word at `_CLAP_COMPLETE_INDEX` (the last word when unset, as fish sends it), one
//!   per line, and exits 0.
//!
//! Candidates come from the flag table, like the static scripts, plus job ids read from
//! the root (a `--root` among the words wins over the environment) and filtered by the
//! state the subcommand accepts. Nothing here writes anything: a completion request must
//! never repair or create a job file.

use std::ffi::OsString;
use std::path::Path;

use super::{Value, flags_of, job_states, top_words, value_flags, value_kind};
use crate::cli::table::{COMMANDS, GLOBAL, find};
use crate::cli::{Command, Operand};
use crate::jobstore::scan::Scan;
use crate::jobstore::{self, Root};
use crate::wire::State;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Shell {
    Bash,
    Zsh,
    Fish,
    /// Registration prints the static script, which needs no call-back.
    Powershell,
}

impl Shell {
    pub fn parse(name: &str) -> Option<Shell> {
        match name {
            "bash" => Some(Shell::Bash),
            "zsh" => Some(Shell::Zsh),
            "fish" => Some(Shell::Fish),
            "powershell" => Some(Shell::Powershell),
            _ => None,
        }
    }
}

/// What the protocol answers: text for stdout and the exit code.
pub struct Answer {
    pub text: String,
    pub code: u8,
}

/// Handles one invocation under `COMPLETE=<shell_name>`. `argv` excludes the program.
pub fn answer(shell_name: &str, argv: &[OsString]) -> Answer {
    let Some(shell) = Shell::parse(shell_name) else {
        return Answer {
            text: format!("agent-exec: COMPLETE={shell_name}: unsupported shell (bash, zsh, fish or powershell)\n"),
            code: 2,
        };
    };
    let Some(escape) = argv.iter().position(|a| a == "--") else {
        return Answer { text: registration(shell), code: 0 };
    };
    let words: Vec<String> = argv[escape + 1..].iter().map(|w| w.to_string_lossy().into_owned()).collect();
    let index = std::env::var("_CLAP_COMPLETE_INDEX")
        .ok()
        .and_then(|i| i.parse::<usize>().ok())
        .unwrap_or(words.len().saturating_sub(1));
    let candidates = candidates(&words, index, &|root| job_ids(root));
    // bash's registration script splits on `_CLAP_IFS`; 0.1.18's saved scripts set it to
    // a vertical tab, ours leave it unset for one candidate per line.
    let separator = match shell {
        Shell::Bash => std::env::var("_CLAP_IFS").unwrap_or_else(|_| "\n".to_string()),
        _ => "\n".to_string(),
    };
    let mut text = String::new();
    for candidate in &candidates {
        text.push_str(&candidate.render(shell));
        text.push_str(&separator);
    }
    Answer { text, code: 0 }
}

/// One completion: the word and a description some shells show beside it.
#[derive(Debug, PartialEq, Eq)]
pub struct Candidate {
    pub value: String,
    pub help: String,
}

impl Candidate {
    fn new(value: impl Into<String>, help: impl Into<String>) -> Candidate {
        Candidate { value: value.into(), help: help.into() }
    }

    fn render(&self, shell: Shell) -> String {
        let help = self.help.split(['\n', '\t']).next().unwrap_or_default();
        match shell {
            Shell::Fish if !help.is_empty() => format!("{}\t{help}", self.value),
            Shell::Zsh if !help.is_empty() => format!("{}:{help}", self.value.replace(':', "\\:")),
            Shell::Zsh => self.value.replace(':', "\\:"),
            _ => self.value.clone(),
        }
    }
}

/// The ids of the root's jobs with their recorded state (read-only: no liveness repair).
fn job_ids(root: &Root) -> Vec<(String, String)> {
    let Ok(Some(names)) = root.dir_names() else { return Vec::new() };
    let Some(scan) = Scan::open(root) else { return Vec::new() };
    let mut jobs: Vec<(String, String)> = names
        .into_iter()
        .filter(|name| jobstore::valid_id(name))
        .filter_map(|name| {
            let state = scan.with_file(&name, jobstore::STATE, |b| serde_json::from_slice::<State>(b).ok())??;
            Some((name, state.job.status.as_str().to_string()))
        })
        .collect();
    jobs.sort();
    jobs
}

/// What the words before the cursor say.
#[derive(Default)]
struct Context {
    root: Option<String>,
    command: Option<&'static Command>,
    /// `tag` or `notify` typed without `set` yet.
    group: Option<&'static str>,
    /// Positionals after the subcommand.
    positionals: usize,
    /// `run`/`create` past the job command's first word, or after `--`.
    in_job_command: bool,
    help: bool,
}

/// The candidates for `words[index]`; `words[0]` is the program. `jobs` lists a root's
/// job ids with their states.
pub fn candidates(words: &[String], index: usize, jobs: &dyn Fn(&Root) -> Vec<(String, String)>) -> Vec<Candidate> {
    let index = index.min(words.len());
    let mut cur = words.get(index).cloned().unwrap_or_default();
    let mut prev = index.checked_sub(1).and_then(|i| words.get(i)).cloned().unwrap_or_default();
    // bash splits `--flag=value` into `--flag`, `=`, `value`.
    if cur == "=" {
        cur.clear();
    } else if prev == "=" && index >= 2 {
        prev = words[index - 2].clone();
    }
    let before = &words[1.min(index)..index];
    let context = scan_words(before);
    if context.in_job_command {
        return paths(&cur, false);
    }
    let root = || Root::resolve(context.root.as_deref());
    // `--flag=value` in one word (fish, zsh).
    if let Some((flag, value)) = cur.strip_prefix("--").and_then(|c| c.split_once('=')) {
        let flag = format!("--{flag}");
        return value_candidates(&flag, value, context.command)
            .into_iter()
            .map(|c| Candidate::new(format!("{flag}={}", c.value), c.help))
            .collect();
    }
    if takes_value(&prev, context.command) && prev.starts_with("--") {
        return value_candidates(&prev, &cur, context.command);
    }
    if cur.starts_with('-') {
        let flags: Vec<Candidate> = match context.command {
            Some(command) => flags_of(command).map(|f| Candidate::new(format!("--{}", f.long), f.doc)).collect(),
            None => GLOBAL.iter().map(|f| Candidate::new(format!("--{}", f.long), f.doc)).chain(top_flags()).collect(),
        };
        return by_prefix(flags, &cur);
    }
    if context.help {
        return by_prefix(top_words().into_iter().map(|(w, a)| Candidate::new(w, a)).collect(), &cur);
    }
    if let Some(group) = context.group {
        let about = find(&format!("{group} set")).map_or("", |c| c.about);
        return by_prefix(vec![Candidate::new("set", about)], &cur);
    }
    let Some(command) = context.command else {
        return by_prefix(top_words().into_iter().map(|(w, a)| Candidate::new(w, a)).collect(), &cur);
    };
    if context.positionals > 0 {
        return Vec::new();
    }
    match command.operand {
        Operand::JobId | Operand::JobIdUnless(_) | Operand::JobIds(_) => {
            let wanted = job_states(command).unwrap_or_default();
            let offered = jobs(&root())
                .into_iter()
                .filter(|(_, state)| wanted.is_empty() || wanted.contains(&state.as_str()))
                .map(|(id, state)| Candidate::new(id, state))
                .collect();
            by_prefix(offered, &cur)
        }
        Operand::Choice(_, choices) => by_prefix(choices.iter().map(|c| Candidate::new(*c, "")).collect(), &cur),
        // The job's command: a program or a file.
        Operand::JobCommand => paths(&cur, false),
        Operand::None => Vec::new(),
    }
}

/// `--help` and `--version` are answered before any subcommand.
fn top_flags() -> impl Iterator<Item = Candidate> {
    [Candidate::new("--version", "Print version")].into_iter()
}

fn scan_words(words: &[String]) -> Context {
    let mut context = Context::default();
    let mut i = 0;
    while i < words.len() {
        let word = &words[i];
        i += 1;
        if let Some(command) = context.command
            && matches!(command.operand, Operand::JobCommand)
            && (word == "--" || context.positionals > 0)
        {
            context.in_job_command = true;
            continue;
        }
        if word == "--root" {
            // `--root = PATH` (bash) or `--root PATH`.
            if words.get(i).is_some_and(|w| w == "=") {
                i += 1;
            }
            context.root = words.get(i).cloned();
            i += 1;
        } else if let Some(path) = word.strip_prefix("--root=") {
            context.root = Some(path.to_string());
        } else if word.starts_with('-') {
            if takes_value(word, context.command) {
                i += if words.get(i).is_some_and(|w| w == "=") { 2 } else { 1 };
            }
        } else if word == "=" {
            i += 1;
        } else if let Some(group) = context.group {
            context.group = None;
            context.command = find(&format!("{group} {word}"));
        } else if context.help {
            // `help <command>`: nothing more to offer.
            context.positionals += 1;
        } else if context.command.is_some() {
            context.positionals += 1;
        } else if word == "help" {
            context.help = true;
        } else if word == "tag" || word == "notify" {
            context.group = COMMANDS.iter().map(|c| c.name).find(|n| n.starts_with(word.as_str())).map(|n| {
                // The group word itself, `'static` from the table.
                &n[..word.len()]
            });
        } else {
            context.command = find(word);
        }
    }
    if context.command.is_some_and(|c| matches!(c.operand, Operand::JobCommand)) && context.positionals > 0 {
        context.in_job_command = true;
    }
    if context.help && context.positionals > 0 {
        context.help = false;
        context.command = None;
        context.positionals = 1;
        context.group = None;
    }
    context
}

/// Whether `word` is a flag that consumes the next word.
fn takes_value(word: &str, command: Option<&Command>) -> bool {
    let Some(name) = word.strip_prefix("--") else { return false };
    let in_command = command.and_then(|c| c.flag(name)).is_some_and(|f| f.value.is_some());
    in_command
        || GLOBAL.iter().any(|f| f.long == name && f.value.is_some())
        || (command.is_none() && value_flags().iter().any(|f| f.long == name))
}

fn value_candidates(flag: &str, cur: &str, command: Option<&Command>) -> Vec<Candidate> {
    let name = flag.trim_start_matches('-');
    let Some(flag) = command.and_then(|c| c.flag(name)).or_else(|| GLOBAL.iter().find(|f| f.long == name)) else {
        return Vec::new();
    };
    match value_kind(flag) {
        Value::Choices(choices) => by_prefix(choices.iter().map(|c| Candidate::new(*c, "")).collect(), cur),
        Value::File => paths(cur, false),
        Value::Dir => paths(cur, true),
        Value::Free => Vec::new(),
    }
}

fn by_prefix(candidates: Vec<Candidate>, prefix: &str) -> Vec<Candidate> {
    candidates.into_iter().filter(|c| c.value.starts_with(prefix)).collect()
}

/// Files (or only directories) completing `cur`; directories end in `/` so that the
/// shell keeps completing inside them.
fn paths(cur: &str, dirs_only: bool) -> Vec<Candidate> {
    let (dir, stem) = match cur.rfind('/') {
        Some(slash) => (&cur[..=slash], &cur[slash + 1..]),
        None => ("", cur),
    };
    let listed = if dir.is_empty() { Path::new(".") } else { Path::new(dir) };
    let Ok(entries) = std::fs::read_dir(listed) else { return Vec::new() };
    let mut found: Vec<Candidate> = entries
        .flatten()
        .filter_map(|entry| {
            let name = entry.file_name().into_string().ok()?;
            if !name.starts_with(stem) || (name.starts_with('.') && !stem.starts_with('.')) {
                return None;
            }
            let is_dir = std::fs::metadata(entry.path()).is_ok_and(|m| m.is_dir());
            match (is_dir, dirs_only) {
                (true, _) => Some(Candidate::new(format!("{dir}{name}/"), "")),
                (false, false) => Some(Candidate::new(format!("{dir}{name}"), "")),
                (false, true) => None,
            }
        })
        .collect();
    found.sort_by(|a, b| a.value.cmp(&b.value));
    found
}

/// The script a shell sources to call us back. The binary is named by its absolute
/// path, so completion keeps working whatever the caller's `PATH` becomes.
fn registration(shell: Shell) -> String {
    let exe =
        std::env::current_exe().map(|p| p.to_string_lossy().into_owned()).unwrap_or_else(|_| "agent-exec".to_string());
    let quoted = format!("'{}'", exe.replace('\'', r"'\''"));
    match shell {
        Shell::Bash => BASH.replace("@EXE@", &quoted),
        Shell::Zsh => ZSH.replace("@EXE@", &quoted),
        Shell::Fish => FISH.replace("@EXE@", &quoted),
        Shell::Powershell => super::script("powershell").unwrap_or_default(),
    }
}

const BASH: &str = r#"# agent-exec dynamic completion (COMPLETE=bash): source <(COMPLETE=bash agent-exec)
_agent_exec_complete() {
    local IFS=$'\n'
    local words=("${COMP_WORDS[@]}")
    COMPREPLY=($(_CLAP_COMPLETE_INDEX="$COMP_CWORD" COMPLETE=bash @EXE@ -- "${words[@]}" 2>/dev/null))
    if [[ ${#COMPREPLY[@]} -eq 1 && ${COMPREPLY[0]} == */ ]]; then
        compopt -o nospace 2>/dev/null
    fi
    return 0
}
if [[ ${BASH_VERSINFO[0]} -gt 4 || (${BASH_VERSINFO[0]} -eq 4 && ${BASH_VERSINFO[1]} -ge 4) ]]; then
    complete -o bashdefault -o nosort -F _agent_exec_complete agent-exec
else
    complete -o bashdefault -F _agent_exec_complete agent-exec
fi
"#;

const ZSH: &str = r#"#compdef agent-exec
# agent-exec dynamic completion (COMPLETE=zsh): source <(COMPLETE=zsh agent-exec)
_agent_exec_complete() {
    local -a candidates
    candidates=("${(@f)$(_CLAP_COMPLETE_INDEX=$((CURRENT - 1)) COMPLETE=zsh @EXE@ -- "${words[@]}" 2>/dev/null)}")
    if [[ -n ${candidates[1]} ]]; then
        _describe 'values' candidates
    fi
}
compdef _agent_exec_complete agent-exec
"#;

const FISH: &str = r#"# agent-exec dynamic completion (COMPLETE=fish): COMPLETE=fish agent-exec | source
complete --erase --command agent-exec
complete --keep-order --exclusive --command agent-exec --arguments "(env COMPLETE=fish @EXE@ -- (commandline --current-process --tokenize --cut-at-cursor) (commandline --current-token))"
"#;

#[cfg(test)]
mod tests {
    use super::*;

    fn complete(line: &str) -> Vec<String> {
        let mut words: Vec<String> = line.split(' ').map(str::to_string).collect();
        words.insert(0, "agent-exec".to_string());
        let index = words.len() - 1;
        let jobs = |root: &Root| {
            let mut jobs = vec![
                ("01CREATED".to_string(), "created".to_string()),
                ("01RUNNING".to_string(), "running".to_string()),
                ("01EXITED".to_string(), "exited".to_string()),
            ];
            if root.path.ends_with("other") {
                jobs.push(("01OTHER".to_string(), "running".to_string()));
            }
            jobs
        };
        candidates(&words, index, &jobs).into_iter().map(|c| c.value).collect()
    }

    #[test]
    fn subcommands_by_prefix() {
        assert_eq!(complete("st"), ["start", "status"]);
        assert!(complete("").contains(&"run".to_string()));
        assert_eq!(complete("tag "), ["set"]);
        assert_eq!(complete("help li"), ["list"]);
    }

    #[test]
    fn job_ids_by_state() {
        assert_eq!(complete("start "), ["01CREATED"]);
        assert_eq!(complete("kill "), ["01RUNNING"]);
        assert_eq!(complete("wait "), ["01CREATED", "01RUNNING"]);
        assert_eq!(complete("delete "), ["01EXITED"]);
        assert_eq!(complete("status 01E"), ["01EXITED"]);
        assert_eq!(complete("tag set 01C"), ["01CREATED"]);
        assert_eq!(complete("status 01EXITED "), Vec::<String>::new());
    }

    #[test]
    fn root_among_the_words() {
        assert!(complete("--root /x/other kill ").contains(&"01OTHER".to_string()));
        assert!(complete("kill --root=/x/other ").contains(&"01OTHER".to_string()));
        assert!(complete("kill --root = /x/other ").contains(&"01OTHER".to_string()));
        assert!(!complete("kill ").contains(&"01OTHER".to_string()));
    }

    #[test]
    fn flags_and_values() {
        assert_eq!(complete("kill --sig"), ["--signal"]);
        assert!(complete("kill --signal ").contains(&"KILL".to_string()));
        assert_eq!(complete("kill --signal=K"), ["--signal=KILL"]);
        assert_eq!(complete("kill --signal = K"), ["KILL"]);
        assert_eq!(complete("list --state ex"), ["exited"]);
        assert_eq!(complete("completions f"), ["fish"]);
        assert!(complete("--ro").contains(&"--root".to_string()));
        // A value-taking flag's value is not taken for the subcommand.
        assert_eq!(complete("--root /tmp st"), ["start", "status"]);
    }

    #[test]
    fn the_job_command_is_not_completed_as_flags() {
        assert!(complete("run -- --tim").is_empty());
        assert!(complete("run sleep --tim").is_empty());
        assert_eq!(complete("run --tim"), ["--timeout"]);
    }

    #[test]
    fn rendering_per_shell() {
        let c = Candidate::new("a:b", "what\tit is");
        assert_eq!(c.render(Shell::Bash), "a:b");
        assert_eq!(c.render(Shell::Fish), "a:b\twhat");
        assert_eq!(c.render(Shell::Zsh), "a\\:b:what");
    }
}
