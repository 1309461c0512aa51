//! Command-line parsing: a lexopt loop driven by the flag table in `table`.
//!
//! Stage one only: this module validates what the user typed (names, repetitions,
//! numbers, enumerations, tags, signals, conflicts) and does no I/O. Resolving the root,
//! reading config files and everything else that can fail for reasons outside argv
//! happens in the commands. Help and version are answered here, so they work whatever
//! state the machine is in.

mod help;
#[cfg(test)]
mod man;
pub mod table;

use std::ffi::OsString;

pub use help::{command_help, top_help};

/// Validates a flag's value while parsing; the message names the problem, the parser
/// adds the flag.
pub type Check = fn(&str) -> Result<(), String>;

pub struct Flag {
    pub long: &'static str,
    pub alias: Option<&'static str>,
    /// The value's name in docs; `None` for a switch.
    pub value: Option<&'static str>,
    pub default: Option<&'static str>,
    pub repeatable: bool,
    pub choices: &'static [&'static str],
    pub check: Option<Check>,
    pub doc: &'static str,
}

#[derive(Clone, Copy)]
pub enum Operand {
    None,
    JobId,
    /// A job id, required unless the named switch is given (and forbidden with it).
    JobIdUnless(&'static str),
    /// One or more job ids, or none when the named option is given (`wait`).
    JobIds(&'static str),
    /// Everything from the first positional on is the job's command.
    JobCommand,
    Choice(&'static str, &'static [&'static str]),
}

pub struct Command {
    pub name: &'static str,
    pub about: &'static str,
    pub usage: &'static str,
    pub flags: &'static [&'static [Flag]],
    pub operand: Operand,
    pub conflicts: &'static [(&'static str, &'static str)],
    pub requires: &'static [(&'static str, &'static str)],
}

impl Flag {
    /// The one-letter form, which only the global `-v` and `-h` have (docs/compatibility.md §3.3).
    pub fn short(&self) -> Option<char> {
        match self.long {
            "verbose" => Some('v'),
            "help" => Some('h'),
            _ => None,
        }
    }
}

impl Command {
    pub fn all_flags(&self) -> impl Iterator<Item = &'static Flag> {
        self.flags.iter().flat_map(|group| group.iter())
    }

    pub fn flag(&self, name: &str) -> Option<&'static Flag> {
        self.all_flags().find(|f| f.long == name || f.alias == Some(name))
    }
}

/// A successfully parsed command line.
pub struct Args {
    pub command: &'static Command,
    /// Flags in the order given; switches carry an empty value.
    values: Vec<(&'static str, String)>,
    pub operand: Option<String>,
    /// `Operand::JobIds`: the ids after the first one.
    pub more_ids: Vec<String>,
    pub job_command: Vec<String>,
    pub root: Option<String>,
    pub yaml: bool,
    pub verbose: u8,
}

impl Args {
    /// Is the switch or option given?
    pub fn has(&self, flag: &Flag) -> bool {
        let long = self.defined(flag);
        self.values.iter().any(|(name, _)| *name == long)
    }

    /// The flag's value as given (the first one of a repeatable flag).
    pub fn value(&self, flag: &Flag) -> Option<&str> {
        let long = self.defined(flag);
        self.values.iter().find(|(name, _)| *name == long).map(|(_, v)| v.as_str())
    }

    pub fn values(&self, flag: &Flag) -> Vec<&str> {
        let long = self.defined(flag);
        self.values.iter().filter(|(name, _)| *name == long).map(|(_, v)| v.as_str()).collect()
    }

    /// A flag's value, or its table default.
    pub fn value_or_default(&self, flag: &Flag) -> Option<&str> {
        self.value(flag).or_else(|| self.command.flag(flag.long).and_then(|f| f.default))
    }

    /// A numeric flag that has a default: its value or the default, both checked as
    /// numbers (the value while parsing, the default by the table's own test).
    pub fn num(&self, flag: &Flag) -> u64 {
        match self.value_or_default(flag).map(str::parse) {
            Some(Ok(n)) => n,
            // A table defect, caught by the `commands::options` tests: no silent zero.
            _ => panic!("--{} is not a numeric flag with a default", flag.long),
        }
    }

    pub fn job_id(&self) -> &str {
        self.operand.as_deref().unwrap_or_default()
    }

    /// Every job id given, in order (`Operand::JobIds`).
    pub fn job_ids(&self) -> Vec<String> {
        self.operand.iter().chain(&self.more_ids).cloned().collect()
    }

    /// The name of a flag this command defines. Reading a flag of another command is a
    /// programming error: it fails every debug build and test that reaches it, instead of
    /// silently reading nothing.
    fn defined(&self, flag: &Flag) -> &'static str {
        match self.command.flag(flag.long) {
            Some(defined) => defined.long,
            None => {
                debug_assert!(false, "'{}' reads --{}, which it does not define", self.command.name, flag.long);
                ""
            }
        }
    }

    fn has_name(&self, long: &str) -> bool {
        self.values.iter().any(|(name, _)| *name == long)
    }

    fn value_by_name(&self, long: &str) -> Option<&str> {
        self.values.iter().find(|(name, _)| *name == long).map(|(_, v)| v.as_str())
    }
}

pub enum Parsed {
    Run(Args),
    /// Help text for stdout, exit 0.
    Help(String),
    Version,
    /// A usage error: message and the usage line to show, exit 2.
    Usage(String, String),
    /// No subcommand: top-level help on stderr, exit 2.
    Missing,
}

pub fn check_u64(text: &str) -> Result<(), String> {
    if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) && text.parse::<u64>().is_ok() {
        Ok(())
    } else {
        Err(format!("invalid value '{text}': expected an unsigned integer"))
    }
}

/// A TCP port to connect to: 1-65535.
pub fn check_port(text: &str) -> Result<(), String> {
    match text.parse::<u16>() {
        Ok(1..) if text.bytes().all(|b| b.is_ascii_digit()) => Ok(()),
        _ => Err(format!("invalid value '{text}': expected a port number 1-65535")),
    }
}

pub fn check_u16(text: &str) -> Result<(), String> {
    if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) && text.parse::<u16>().is_ok() {
        Ok(())
    } else {
        Err(format!("invalid value '{text}': expected a port number 0-65535"))
    }
}

/// An environment variable name that can be removed: not empty, no `=`, no NUL.
pub fn check_env_name(text: &str) -> Result<(), String> {
    if !text.is_empty() && !text.contains(['=', '\0']) {
        Ok(())
    } else {
        Err(format!("invalid variable name '{text}': expected a name without '='"))
    }
}

/// Parses argv without the program name.
pub fn parse(args: impl IntoIterator<Item = OsString>) -> Parsed {
    let mut state = Globals::default();
    let mut parser = lexopt::Parser::from_args(args);
    let name = match parse_before(&mut parser, &mut state) {
        Ok(Some(Before::Name(name))) => name,
        Ok(Some(Before::Help)) => return Parsed::Help(top_help()),
        Ok(Some(Before::Version)) => return Parsed::Version,
        Ok(None) => return Parsed::Missing,
        Err(message) => return Parsed::Usage(message, "agent-exec [OPTIONS] <COMMAND>".to_string()),
    };
    if name == "help" {
        return help_for(parser);
    }
    let command = match resolve_command(&name, &mut parser) {
        Ok((command, true)) => return Parsed::Help(command_help(command)),
        Ok((command, false)) => command,
        Err(message) => return Parsed::Usage(message, "agent-exec [OPTIONS] <COMMAND>".to_string()),
    };
    match parse_command(command, parser, state) {
        Ok(Some(args)) => Parsed::Run(args),
        Ok(None) => Parsed::Help(command_help(command)),
        Err(message) => Parsed::Usage(message, format!("agent-exec {}", command.usage)),
    }
}

#[derive(Default)]
struct Globals {
    root_before: Option<String>,
    root_after: Option<String>,
    yaml_before: bool,
    yaml_after: bool,
    verbose: u8,
}

enum Before {
    Name(String),
    Help,
    Version,
}

fn parse_before(parser: &mut lexopt::Parser, state: &mut Globals) -> Result<Option<Before>, String> {
    use lexopt::Arg::{Long, Short, Value};
    while let Some(arg) = parser.next().map_err(lex_error)? {
        match arg {
            Long("root") => set_once(&mut state.root_before, parser, "--root")?,
            Long("yaml") => set_switch(&mut state.yaml_before, "--yaml")?,
            Short('v') | Long("verbose") => state.verbose = state.verbose.saturating_add(1),
            Short('h') | Long("help") => return Ok(Some(Before::Help)),
            Short('V') | Long("version") => return Ok(Some(Before::Version)),
            Value(name) => return utf8(name).map(|n| Some(Before::Name(n))),
            other => return Err(other.unexpected().to_string()),
        }
    }
    Ok(None)
}

/// The command a name stands for, and whether help was asked for instead of a
/// subcommand (`tag --help` and `notify --help` show the help of `tag set` and
/// `notify set`, their only subcommands).
fn resolve_command(name: &str, parser: &mut lexopt::Parser) -> Result<(&'static Command, bool), String> {
    use lexopt::Arg::{Long, Short, Value};
    let (full, help) = match name {
        "tag" | "notify" => match parser.next().map_err(lex_error)? {
            Some(Value(sub)) if sub == "set" => (format!("{name} set"), false),
            Some(Short('h') | Long("help")) => (format!("{name} set"), true),
            _ => return Err(format!("'{name}' requires the subcommand 'set' (agent-exec {name} set ...)")),
        },
        other => (other.to_string(), false),
    };
    table::find(&full).map(|c| (c, help)).ok_or_else(|| format!("unrecognized subcommand '{name}'"))
}

/// Returns `None` when the user asked for this command's help.
fn parse_command(
    command: &'static Command,
    mut parser: lexopt::Parser,
    mut state: Globals,
) -> Result<Option<Args>, String> {
    use lexopt::Arg::{Long, Short, Value};
    let mut values: Vec<(&'static str, String)> = Vec::new();
    let mut operand: Option<String> = None;
    let mut more_ids: Vec<String> = Vec::new();
    let mut job_command: Vec<String> = Vec::new();
    while let Some(arg) = parser.next().map_err(lex_error)? {
        match arg {
            Long("root") => set_once(&mut state.root_after, &mut parser, "--root")?,
            Long("yaml") => set_switch(&mut state.yaml_after, "--yaml")?,
            Short('v') | Long("verbose") => state.verbose = state.verbose.saturating_add(1),
            Short('h') | Long("help") => return Ok(None),
            Long(name) => {
                let Some(flag) = command.flag(name) else {
                    return Err(format!("unexpected argument '--{name}' for 'agent-exec {}'", command.name));
                };
                if !flag.repeatable && values.iter().any(|(n, _)| *n == flag.long) {
                    return Err(format!("the argument '--{}' cannot be used multiple times", flag.long));
                }
                let value = match flag.value {
                    Some(_) => {
                        let raw = parser.value().map_err(lex_error)?;
                        let value = utf8(raw)?;
                        check_value(flag, &value)?;
                        value
                    }
                    None => String::new(),
                };
                values.push((flag.long, value));
            }
            Value(word) => match command.operand {
                Operand::JobCommand => {
                    job_command.push(utf8(word)?);
                    for rest in parser.raw_args().map_err(lex_error)? {
                        job_command.push(utf8(rest)?);
                    }
                }
                Operand::JobId | Operand::JobIdUnless(_) | Operand::JobIds(_) | Operand::Choice(..)
                    if operand.is_none() =>
                {
                    operand = Some(utf8(word)?);
                }
                Operand::JobIds(_) => more_ids.push(utf8(word)?),
                _ => return Err(format!("unexpected argument '{}'", word.to_string_lossy())),
            },
            other @ Short(_) => return Err(other.unexpected().to_string()),
        }
    }
    let args = Args {
        command,
        values,
        operand,
        more_ids,
        job_command,
        root: state.root_after.or(state.root_before),
        yaml: state.yaml_before || state.yaml_after,
        verbose: state.verbose,
    };
    check_args(&args)?;
    Ok(Some(args))
}

fn check_value(flag: &Flag, value: &str) -> Result<(), String> {
    if !flag.choices.is_empty() && !flag.choices.contains(&value) {
        return Err(format!(
            "invalid value '{value}' for '--{}' (possible values: {})",
            flag.long,
            flag.choices.join(", ")
        ));
    }
    match flag.check {
        Some(check) => check(value).map_err(|e| format!("{e} for '--{}'", flag.long)),
        None => Ok(()),
    }
}

/// Checks that span flags: operands, conflicts, requirements, and value rules that depend
/// on another flag (a regex pattern is only checked when the match type says regex).
fn check_args(args: &Args) -> Result<(), String> {
    let command = args.command;
    match command.operand {
        Operand::JobCommand if args.job_command.is_empty() => {
            return Err("the following required arguments were not provided: <COMMAND>...".into());
        }
        Operand::JobId if args.operand.is_none() => {
            return Err("the following required arguments were not provided: <JOB_ID>".into());
        }
        Operand::JobIdUnless(switch) => match (args.operand.is_some(), args.has_name(switch)) {
            (false, false) => return Err(format!("either <JOB_ID> or --{switch} is required")),
            (true, true) => return Err(format!("<JOB_ID> cannot be used with --{switch}")),
            _ => {}
        },
        Operand::JobIds(option) if args.operand.is_none() && !args.has_name(option) => {
            return Err(format!("either <JOB_ID>... or --{option} is required"));
        }
        Operand::Choice(name, choices) => match args.operand.as_deref() {
            None => return Err(format!("the following required arguments were not provided: <{name}>")),
            Some(value) if !choices.contains(&value) => {
                return Err(format!(
                    "invalid value '{value}' for '<{name}>' (possible values: {})",
                    choices.join(", ")
                ));
            }
            Some(_) => {}
        },
        _ => {}
    }
    for (a, b) in command.conflicts {
        if args.has_name(a) && args.has_name(b) {
            return Err(format!("the argument '--{a}' cannot be used with '--{b}'"));
        }
    }
    // A readiness wait is a wait: `run --for-output X --until MS` needs no `--wait`.
    let readiness = args.has_name("for-output") || args.has_name("for-port");
    for (a, b) in command.requires {
        if args.has_name(a) && !args.has_name(b) && !(*b == "wait" && readiness) {
            return Err(format!("the argument '--{a}' requires '--{b}'"));
        }
    }
    if args.value_by_name("output-match-type") == Some("regex")
        && let Some(pattern) = args.value_by_name("output-pattern")
    {
        crate::jobs::check_regex(pattern)?;
    }
    if args.value_by_name("output-match-type") == Some("regex")
        && let Some(pattern) = args.value_by_name("for-output")
    {
        crate::pattern::compile(pattern).map_err(|e| format!("invalid regex '{pattern}' for '--for-output': {e}"))?;
    }
    if readiness && !args.more_ids.is_empty() {
        return Err("--for-output and --for-port wait for one job".into());
    }
    Ok(())
}

fn help_for(mut parser: lexopt::Parser) -> Parsed {
    let mut words = Vec::new();
    while let Ok(Some(arg)) = parser.next() {
        if let lexopt::Arg::Value(word) = arg {
            words.push(word.to_string_lossy().into_owned());
        }
    }
    if words.is_empty() {
        return Parsed::Help(top_help());
    }
    let name =
        if matches!(words[0].as_str(), "tag" | "notify") { format!("{} set", words[0]) } else { words[0].clone() };
    match table::find(&name) {
        Some(command) => Parsed::Help(command_help(command)),
        None => Parsed::Usage(format!("unrecognized subcommand '{}'", words[0]), "agent-exec help [COMMAND]".into()),
    }
}

fn set_once(slot: &mut Option<String>, parser: &mut lexopt::Parser, name: &str) -> Result<(), String> {
    if slot.is_some() {
        return Err(format!("the argument '{name}' cannot be used multiple times"));
    }
    let value = utf8(parser.value().map_err(lex_error)?)?;
    // An empty root would silently be the current directory.
    if value.is_empty() {
        return Err(format!("a value is required for '{name}' but an empty one was supplied"));
    }
    *slot = Some(value);
    Ok(())
}

fn set_switch(slot: &mut bool, name: &str) -> Result<(), String> {
    if *slot {
        return Err(format!("the argument '{name}' cannot be used multiple times"));
    }
    *slot = true;
    Ok(())
}

fn utf8(value: OsString) -> Result<String, String> {
    value.into_string().map_err(|v| format!("argument is not valid UTF-8: {}", v.to_string_lossy()))
}

fn lex_error(err: lexopt::Error) -> String {
    err.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_words(words: &[&str]) -> Parsed {
        parse(words.iter().map(OsString::from))
    }

    fn args(words: &[&str]) -> Args {
        match parse_words(words) {
            Parsed::Run(args) => args,
            Parsed::Usage(message, _) => panic!("usage error for {words:?}: {message}"),
            _ => panic!("not a command: {words:?}"),
        }
    }

    fn usage(words: &[&str]) -> String {
        match parse_words(words) {
            Parsed::Usage(message, _) => message,
            _ => panic!("expected a usage error for {words:?}"),
        }
    }

    #[test]
    fn job_command_takes_everything_after_the_first_word() {
        let a = args(&["run", "--timeout", "5", "echo", "--yaml", "-v"]);
        assert_eq!(a.job_command, ["echo", "--yaml", "-v"]);
        assert!(!a.yaml);
        assert_eq!(a.num(&table::TIMEOUT), 5);
        let a = args(&["run", "--", "--weird", "x"]);
        assert_eq!(a.job_command, ["--weird", "x"]);
        let a = args(&["create", ""]);
        assert_eq!(a.job_command, [""]);
    }

    #[test]
    fn globals_work_on_both_sides_and_the_later_root_wins() {
        let a = args(&["--root", "/a", "-v", "status", "--yaml", "X", "--root", "/b", "-vv"]);
        assert_eq!(a.root.as_deref(), Some("/b"));
        assert!(a.yaml);
        assert_eq!(a.verbose, 3);
        assert_eq!(a.job_id(), "X");
        assert!(usage(&["--yaml", "--yaml", "list"]).contains("multiple"));
        assert!(usage(&["list", "--root", "a", "--root=b"]).contains("multiple"));
    }

    #[test]
    fn defaults_come_from_the_table() {
        let a = args(&["tail", "X"]);
        assert_eq!(a.num(&table::TAIL_TAIL_LINES), 50);
        assert_eq!(a.num(&table::TAIL_MAX_BYTES), 65536);
        assert_eq!(args(&["wait", "--timeout-ms=7", "X"]).num(&table::WAIT_UNTIL), 7);
    }

    #[test]
    fn usage_errors() {
        for words in [
            &["run"][..],
            &["run", "--until", "5", "true"],
            &["run", "--wait", "--until", "5", "--forever", "true"],
            &["run", "--inherit-env", "--no-inherit-env", "true"],
            &["run", "--tag", "bad_tag", "true"],
            &["run", "--timeout", "-1", "true"],
            &["run", "--timeout", "+1", "true"],
            &["run", "--timeout", "5", "--timeout", "6", "true"],
            &["run", "--output-match-type", "glob", "true"],
            &["run", "--output-match-type", "regex", "--output-pattern", "(", "true"],
            &["create", "--wait", "true"],
            &["status"],
            &["status", "a", "b"],
            &["tail", "--bogus", "X"],
            &["kill", "--signal", "BOGUS", "X"],
            &["list", "--all", "--cwd", "/"],
            &["list", "--tag", "*"],
            &["list", "--state", "Running"],
            &["delete"],
            &["delete", "--all", "X"],
            &["tag", "X"],
            &["notify", "get", "X"],
            &["completions", "tcsh"],
            &["serve", "--port", "70000"],
            &["serve", "--port", "1", "--bind", "127.0.0.1:2"],
            &["frobnicate"],
            &["status", "-x", "X"],
            &["wait", "--forever", "--until", "1", "X"],
        ] {
            usage(words);
        }
    }

    #[test]
    fn help_and_version() {
        assert!(matches!(parse_words(&["--help"]), Parsed::Help(_)));
        assert!(matches!(parse_words(&["-V"]), Parsed::Version));
        assert!(matches!(parse_words(&["run", "--help"]), Parsed::Help(t) if t.contains("--snapshot-after")));
        assert!(matches!(parse_words(&["help", "tag"]), Parsed::Help(t) if t.contains("tag set")));
        assert!(matches!(parse_words(&[]), Parsed::Missing));
    }
}
