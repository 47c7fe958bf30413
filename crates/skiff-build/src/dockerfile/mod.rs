//! The Dockerfile, typed: `parse-dockerfile` does the syntax (directives, continuations,
//! heredocs, JSON forms, flags, stage names; see ADR "Dockerfile front end"), this module
//! checks what Docker's classic builder checks and turns it into owned, line-numbered
//! instructions. Variable substitution happens later, per stage, in [`crate::plan`].

pub mod expand;
mod words;

use parse_dockerfile as pd;

use crate::error::{BuildError, Result};

/// A parsed Dockerfile.
#[derive(Debug, Clone, PartialEq)]
pub struct Dockerfile {
    /// `# syntax=` (recorded; there is one front end).
    pub syntax: Option<String>,
    /// `# escape=` (`\` by default).
    pub escape: char,
    /// `ARG`s before the first `FROM` (usable in `FROM` lines).
    pub global_args: Vec<Instr>,
    pub stages: Vec<Stage>,
}

/// One `FROM` and what follows it.
#[derive(Debug, Clone, PartialEq)]
pub struct Stage {
    /// `AS name`, lowercased as Docker does.
    pub name: Option<String>,
    pub from: From,
    pub instructions: Vec<Instr>,
}

/// `FROM [--platform=…] image [AS name]`, unexpanded.
#[derive(Debug, Clone, PartialEq)]
pub struct From {
    pub line: usize,
    pub text: String,
    pub image: String,
    pub platform: Option<String>,
}

/// One instruction with its line (1-based, where its keyword is) and its text as written
/// (continuations joined), which is what `docker build` prints as `Step N/M : …`.
#[derive(Debug, Clone, PartialEq)]
pub struct Instr {
    pub line: usize,
    pub text: String,
    pub kind: Kind,
}

/// `ARG name[=default]`; the default is unexpanded.
#[derive(Debug, Clone, PartialEq)]
pub struct ArgDecl {
    pub name: String,
    pub default: Option<String>,
}

/// Exec form (JSON array) or shell form.
#[derive(Debug, Clone, PartialEq)]
pub enum Command {
    Exec(Vec<String>),
    Shell(String),
}

/// A here-document: its body, and whether variables in it are expanded (unquoted
/// delimiter).
#[derive(Debug, Clone, PartialEq)]
pub struct Heredoc {
    pub body: String,
    pub expand: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub enum CopySource {
    /// A path or wildcard in the context or in the `--from` stage/image (unexpanded).
    Path(String),
    /// `COPY <<EOF /dest` — a file made of a here-document.
    Heredoc(Heredoc),
}

/// `COPY`/`ADD` arguments, unexpanded.
#[derive(Debug, Clone, PartialEq)]
pub struct CopySpec {
    pub from: Option<String>,
    pub chown: Option<String>,
    pub chmod: Option<String>,
    /// `--link` is accepted; layers are independent of their parent either way.
    pub link: bool,
    pub sources: Vec<CopySource>,
    pub dest: String,
}

/// `HEALTHCHECK [options] CMD …` (durations as written, checked at plan time).
#[derive(Debug, Clone, PartialEq)]
pub struct Healthcheck {
    pub test: Command,
    pub interval: Option<String>,
    pub timeout: Option<String>,
    pub start_period: Option<String>,
    pub start_interval: Option<String>,
    pub retries: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Kind {
    Run {
        command: Command,
        heredocs: Vec<Heredoc>,
    },
    Copy(CopySpec),
    Add(CopySpec),
    Env(Vec<(String, String)>),
    Arg(Vec<ArgDecl>),
    Label(Vec<(String, String)>),
    Workdir(String),
    User(String),
    Cmd(Command),
    Entrypoint(Command),
    Expose(String),
    Volume(Vec<String>),
    Stopsignal(String),
    /// `None` for `HEALTHCHECK NONE`.
    Healthcheck(Option<Healthcheck>),
    Shell(Vec<String>),
    /// The trigger instruction's text, run by images built `FROM` this one.
    Onbuild(String),
    Maintainer(String),
}

impl Kind {
    /// The instruction keyword (`RUN`).
    pub fn keyword(&self) -> &'static str {
        match self {
            Kind::Run { .. } => "RUN",
            Kind::Copy(_) => "COPY",
            Kind::Add(_) => "ADD",
            Kind::Env(_) => "ENV",
            Kind::Arg(_) => "ARG",
            Kind::Label(_) => "LABEL",
            Kind::Workdir(_) => "WORKDIR",
            Kind::User(_) => "USER",
            Kind::Cmd(_) => "CMD",
            Kind::Entrypoint(_) => "ENTRYPOINT",
            Kind::Expose(_) => "EXPOSE",
            Kind::Volume(_) => "VOLUME",
            Kind::Stopsignal(_) => "STOPSIGNAL",
            Kind::Healthcheck(_) => "HEALTHCHECK",
            Kind::Shell(_) => "SHELL",
            Kind::Onbuild(_) => "ONBUILD",
            Kind::Maintainer(_) => "MAINTAINER",
        }
    }
}

/// Parses a Dockerfile. Errors carry the line as Docker reports them.
pub fn parse(text: &str) -> Result<Dockerfile> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let parsed = pd::parse(text).map_err(|e| {
        let message = e.to_string();
        // parse-dockerfile's message ends with its own position; keep the cause.
        let message = message
            .split_once(" at line ")
            .map_or(message.clone(), |(m, _)| m.to_string());
        BuildError::at(e.line().max(1), message)
    })?;
    let lines = Lines::new(text);
    let escape = parsed
        .parser_directives
        .escape
        .as_ref()
        .map_or('\\', |d| d.value.value);
    let syntax = parsed
        .parser_directives
        .syntax
        .as_ref()
        .map(|d| d.value.value.to_string());

    // Each instruction's text runs to the next instruction's keyword.
    let starts: Vec<usize> = parsed.instructions.iter().map(keyword_start).collect();
    let end_of = |start: usize| {
        starts
            .iter()
            .copied()
            .find(|&s| s > start)
            .unwrap_or(text.len())
    };
    let convert = |i: &pd::Instruction<'_>| -> Result<Instr> {
        let start = keyword_start(i);
        let line = lines.line_of(start);
        let instr_text = display_text(&text[start..end_of(start)], escape);
        Ok(Instr {
            line,
            kind: kind(i, line, &instr_text, escape)?,
            text: instr_text,
        })
    };

    let global_args = parsed
        .instructions
        .iter()
        .take_while(|i| !matches!(i, pd::Instruction::From(_)))
        .map(convert)
        .collect::<Result<Vec<_>>>()?;
    let mut stages = Vec::new();
    for stage in parsed.stages() {
        let from = stage.from;
        let start = from.from.span.start;
        let line = lines.line_of(start);
        let mut platform = None;
        for flag in &from.options {
            match flag.name.value.as_ref() {
                "platform" => platform = Some(flag_value(flag, line)?),
                other => return Err(BuildError::at(line, format!("unknown flag: {other}"))),
            }
        }
        if from.image.value.trim().is_empty() {
            return Err(BuildError::at(line, "base name should not be blank"));
        }
        let name = from.as_.as_ref().map(|(_, n)| n.value.to_lowercase());
        if let Some(name) = &name {
            if !valid_stage_name(name) {
                return Err(BuildError::at(
                    line,
                    format!("invalid name for build stage: {name:?}, name can't start with a number or contain symbols"),
                ));
            }
        }
        stages.push(Stage {
            name,
            from: From {
                line,
                text: display_text(&text[start..end_of(start)], escape),
                image: from.image.value.to_string(),
                platform,
            },
            instructions: stage
                .instructions
                .iter()
                .map(convert)
                .collect::<Result<Vec<_>>>()?,
        });
    }
    Ok(Dockerfile {
        syntax,
        escape,
        global_args,
        stages,
    })
}

/// 1-based line numbers of byte offsets.
struct Lines(Vec<usize>);

impl Lines {
    fn new(text: &str) -> Lines {
        let mut starts = vec![0];
        starts.extend(text.match_indices('\n').map(|(i, _)| i + 1));
        Lines(starts)
    }

    fn line_of(&self, offset: usize) -> usize {
        match self.0.binary_search(&offset) {
            Ok(i) => i + 1,
            Err(i) => i,
        }
    }
}

fn keyword_start(i: &pd::Instruction<'_>) -> usize {
    use pd::Instruction as I;
    match i {
        I::Add(x) => x.add.span.start,
        I::Arg(x) => x.arg.span.start,
        I::Cmd(x) => x.cmd.span.start,
        I::Copy(x) => x.copy.span.start,
        I::Entrypoint(x) => x.entrypoint.span.start,
        I::Env(x) => x.env.span.start,
        I::Expose(x) => x.expose.span.start,
        I::From(x) => x.from.span.start,
        I::Healthcheck(x) => x.healthcheck.span.start,
        I::Label(x) => x.label.span.start,
        I::Maintainer(x) => x.maintainer.span.start,
        I::Onbuild(x) => x.onbuild.span.start,
        I::Run(x) => x.run.span.start,
        I::Shell(x) => x.shell.span.start,
        I::Stopsignal(x) => x.stopsignal.span.start,
        I::User(x) => x.user.span.start,
        I::Volume(x) => x.volume.span.start,
        I::Workdir(x) => x.workdir.span.start,
        // The crate is non_exhaustive; a new instruction would be refused by `kind`.
        _ => 0,
    }
}

/// The instruction as Docker prints it: continuation lines joined, comment lines inside
/// the instruction dropped; for heredocs only the first line.
fn display_text(raw: &str, escape: char) -> String {
    let joined = join_continuations(raw, escape);
    let first = joined.lines().next().unwrap_or_default();
    if first.contains("<<") {
        return first.trim().to_string();
    }
    joined.trim().to_string()
}

/// Removes `escape` + newline pairs and the comment lines between continued lines.
pub(crate) fn join_continuations(raw: &str, escape: char) -> String {
    let mut out = String::new();
    let mut lines = raw.split('\n').peekable();
    let mut continued = false;
    while let Some(line) = lines.next() {
        let line = line.strip_suffix('\r').unwrap_or(line);
        if continued && line.trim_start().starts_with('#') {
            continue;
        }
        if continued && line.trim().is_empty() && lines.peek().is_some() {
            continue;
        }
        match line.trim_end().strip_suffix(escape) {
            Some(head) if lines.peek().is_some() => {
                out.push_str(head);
                continued = true;
            }
            _ => {
                out.push_str(line);
                if lines.peek().is_some() {
                    out.push('\n');
                }
                continued = false;
            }
        }
    }
    out
}

fn valid_stage_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

fn flag_value(flag: &pd::Flag<'_>, line: usize) -> Result<String> {
    flag.value
        .as_ref()
        .map(|v| v.value.to_string())
        .ok_or_else(|| {
            BuildError::at(
                line,
                format!("missing a value on flag: --{}", flag.name.value),
            )
        })
}

fn command(c: &pd::Command<'_>, escape: char) -> Command {
    match c {
        pd::Command::Exec(args) => {
            Command::Exec(args.value.iter().map(|a| a.value.to_string()).collect())
        }
        pd::Command::Shell(s) => {
            Command::Shell(join_continuations(s.value, escape).trim().to_string())
        }
        // Non-exhaustive upstream; no other form exists today.
        _ => Command::Shell(String::new()),
    }
}

fn heredoc(h: &pd::HereDoc<'_>) -> Heredoc {
    Heredoc {
        body: h.value.to_string(),
        expand: h.expand,
    }
}

fn copy_spec(
    options: &[pd::Flag<'_>],
    src: &[pd::Source<'_>],
    dest: &pd::UnescapedString<'_>,
    line: usize,
    add: bool,
) -> Result<CopySpec> {
    let mut spec = CopySpec {
        from: None,
        chown: None,
        chmod: None,
        link: false,
        sources: Vec::new(),
        dest: dest.value.to_string(),
    };
    for flag in options {
        match flag.name.value.as_ref() {
            "from" if !add => spec.from = Some(flag_value(flag, line)?),
            "chown" => spec.chown = Some(flag_value(flag, line)?),
            "chmod" => spec.chmod = Some(flag_value(flag, line)?),
            "link" => {
                spec.link = match flag.value.as_ref().map(|v| v.value.as_ref()) {
                    None | Some("true") => true,
                    Some("false") => false,
                    Some(v) => {
                        return Err(BuildError::at(
                            line,
                            format!("invalid value for --link: {v:?}"),
                        ))
                    }
                }
            }
            other @ ("checksum" | "keep-git-dir" | "exclude" | "parents") => {
                return Err(BuildError::at(
                    line,
                    format!("the --{other} option requires BuildKit"),
                ))
            }
            other => return Err(BuildError::at(line, format!("unknown flag: {other}"))),
        }
    }
    for s in src {
        spec.sources.push(match s {
            pd::Source::Path(p) => CopySource::Path(p.value.to_string()),
            pd::Source::HereDoc(h) => CopySource::Heredoc(heredoc(h)),
            _ => return Err(BuildError::at(line, "unsupported source")),
        });
    }
    if spec.sources.is_empty() {
        let name = if add { "ADD" } else { "COPY" };
        return Err(BuildError::at(
            line,
            format!("{name} requires at least two arguments"),
        ));
    }
    Ok(spec)
}

fn kind(i: &pd::Instruction<'_>, line: usize, text: &str, escape: char) -> Result<Kind> {
    use pd::Instruction as I;
    let no_flags = |options: &[pd::Flag<'_>], name: &str| -> Result<()> {
        match options.first() {
            None => Ok(()),
            Some(f)
                if name == "RUN"
                    && matches!(f.name.value.as_ref(), "mount" | "network" | "security") =>
            {
                Err(BuildError::at(
                    line,
                    format!("the --{} option requires BuildKit", f.name.value),
                ))
            }
            Some(f) => Err(BuildError::at(
                line,
                format!("unknown flag: {}", f.name.value),
            )),
        }
    };
    Ok(match i {
        I::Run(r) => {
            no_flags(&r.options, "RUN")?;
            Kind::Run {
                command: command(&r.arguments, escape),
                heredocs: r.here_docs.iter().map(heredoc).collect(),
            }
        }
        I::Copy(c) => Kind::Copy(copy_spec(&c.options, &c.src, &c.dest, line, false)?),
        I::Add(a) => Kind::Add(copy_spec(&a.options, &a.src, &a.dest, line, true)?),
        I::Env(e) => Kind::Env(
            words::key_values(&e.arguments.value, escape, "ENV")
                .map_err(|m| BuildError::at(line, m))?,
        ),
        I::Label(l) => Kind::Label(
            words::key_values(&l.arguments.value, escape, "LABEL")
                .map_err(|m| BuildError::at(line, m))?,
        ),
        I::Arg(a) => Kind::Arg(
            words::arg_decls(&a.arguments.value, escape).map_err(|m| BuildError::at(line, m))?,
        ),
        I::Workdir(w) => Kind::Workdir(w.arguments.value.to_string()),
        I::User(u) => Kind::User(u.arguments.value.to_string()),
        I::Cmd(c) => Kind::Cmd(command(&c.arguments, escape)),
        I::Entrypoint(e) => Kind::Entrypoint(command(&e.arguments, escape)),
        I::Expose(e) => Kind::Expose(
            e.arguments
                .iter()
                .map(|a| a.value.as_ref())
                .collect::<Vec<_>>()
                .join(" "),
        ),
        I::Volume(v) => Kind::Volume(match &v.arguments {
            pd::JsonOrStringArray::Json(a) => a.value.iter().map(|s| s.value.to_string()).collect(),
            pd::JsonOrStringArray::String(a) => a.iter().map(|s| s.value.to_string()).collect(),
        }),
        I::Stopsignal(s) => Kind::Stopsignal(s.arguments.value.to_string()),
        I::Healthcheck(h) => {
            let mut check = Healthcheck {
                test: Command::Exec(Vec::new()),
                interval: None,
                timeout: None,
                start_period: None,
                start_interval: None,
                retries: None,
            };
            for flag in &h.options {
                let v = Some(flag_value(flag, line)?);
                match flag.name.value.as_ref() {
                    "interval" => check.interval = v,
                    "timeout" => check.timeout = v,
                    "start-period" => check.start_period = v,
                    "start-interval" => check.start_interval = v,
                    "retries" => check.retries = v,
                    other => return Err(BuildError::at(line, format!("unknown flag: {other}"))),
                }
            }
            match &h.arguments {
                pd::HealthcheckArguments::Cmd { arguments, .. } => {
                    check.test = command(arguments, escape);
                    Kind::Healthcheck(Some(check))
                }
                pd::HealthcheckArguments::None { .. } if h.options.is_empty() => {
                    Kind::Healthcheck(None)
                }
                pd::HealthcheckArguments::None { .. } => {
                    return Err(BuildError::at(line, "HEALTHCHECK NONE takes no options"))
                }
                _ => return Err(BuildError::at(line, "unsupported HEALTHCHECK form")),
            }
        }
        I::Shell(s) => Kind::Shell(s.arguments.iter().map(|a| a.value.to_string()).collect()),
        I::Onbuild(o) => {
            if matches!(*o.instruction, I::From(_) | I::Maintainer(_)) {
                return Err(BuildError::at(
                    line,
                    "FROM and MAINTAINER are not allowed as ONBUILD triggers",
                ));
            }
            let trigger = text
                .split_once(char::is_whitespace)
                .map_or("", |(_, rest)| rest.trim())
                .to_string();
            Kind::Onbuild(trigger)
        }
        I::Maintainer(m) => Kind::Maintainer(m.name.value.to_string()),
        I::From(_) => unreachable!("stages are split on FROM"),
        _ => return Err(BuildError::at(line, "unknown instruction")),
    })
}
