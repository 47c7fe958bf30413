//! The build plan: which stages the target needs (the rest are skipped), in which waves
//! they can run (stages of one wave are independent: run them in parallel), and each
//! stage's steps with arguments substituted, ready for an executor.
//!
//! The executor is a loop over this: for each wave, for each stage in parallel, resolve
//! the [`Base`] to an image id, then for each [`Step`] compute
//! [`Step::cache_key`]`(parent, sources)` — `sources` is [`crate::context::hash_sources`]'s
//! digest for context `COPY`/`ADD`, the source stage's image id for `COPY --from` — reuse
//! the image recorded under that key unless `--no-cache`, else run the step and record it.
//! A changed file changes only the key of the step that copies it; every later key chains
//! on the new parent, so exactly that step and those after it rebuild.

use std::collections::{BTreeMap, BTreeSet};

use sha2::{Digest as _, Sha256};

use crate::dockerfile::expand::{self, Vars};
use crate::dockerfile::{Command, CopySource, Dockerfile, Healthcheck, Heredoc, Kind};
use crate::error::{BuildError, Result};

/// Build args Docker passes to RUN without an `ARG` (and never reports as unused).
pub const PROXY_ARGS: &[&str] = &[
    "HTTP_PROXY",
    "http_proxy",
    "HTTPS_PROXY",
    "https_proxy",
    "FTP_PROXY",
    "ftp_proxy",
    "NO_PROXY",
    "no_proxy",
    "ALL_PROXY",
    "all_proxy",
];

/// What `docker build` was asked for.
#[derive(Debug, Clone, Default)]
pub struct BuildOptions {
    /// `--target`: a stage name; the last stage when `None`.
    pub target: Option<String>,
    /// `--build-arg`.
    pub build_args: BTreeMap<String, String>,
    /// The `Shell` of the base image of stages that start from an image, by stage index
    /// (a stage starting from another stage inherits that stage's `SHELL`).
    pub base_shells: BTreeMap<usize, Vec<String>>,
}

/// Where a stage starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Base {
    Scratch,
    /// An image reference (pull it if the store lacks it).
    Image(String),
    /// The result of an earlier stage (its index in the Dockerfile).
    Stage(usize),
}

/// Where a `COPY` reads from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CopyFrom {
    Context,
    Stage(usize),
    Image(String),
}

/// One step, arguments substituted.
#[derive(Debug, Clone, PartialEq)]
pub enum Op {
    /// `argv` is the final command (shell form wrapped in the stage's `SHELL`); `env` the
    /// build args in scope (`NAME=value`), which Docker also records in history.
    Run {
        argv: Vec<String>,
        env: Vec<String>,
        heredocs: Vec<Heredoc>,
    },
    Copy {
        from: CopyFrom,
        /// Paths or wildcards (context-relative for `CopyFrom::Context`).
        sources: Vec<String>,
        heredocs: Vec<Heredoc>,
        dest: String,
        chown: Option<String>,
        chmod: Option<u32>,
        /// `ADD`: local tar archives are extracted.
        add: bool,
    },
    Env(Vec<(String, String)>),
    Label(Vec<(String, String)>),
    /// As written; relative to the current working dir, which only the executor knows.
    Workdir(String),
    User(String),
    Cmd(Vec<String>),
    Entrypoint(Vec<String>),
    Expose(Vec<String>),
    Volume(Vec<String>),
    StopSignal(String),
    Healthcheck(HealthConfig),
    Shell(Vec<String>),
    Onbuild(String),
    Maintainer(String),
    /// `ARG`: no change to the image, but part of the cache chain.
    Arg(Vec<(String, Option<String>)>),
}

/// The image config's `Healthcheck`, as Docker stores it: `test` is `["NONE"]`,
/// `["CMD", …]` (exec form) or `["CMD-SHELL", "…"]`; durations in nanoseconds, 0 = default.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthConfig {
    pub test: Vec<String>,
    pub interval: u64,
    pub timeout: u64,
    pub start_period: u64,
    pub start_interval: u64,
    pub retries: u32,
}

fn health_config(h: Option<&Healthcheck>) -> std::result::Result<HealthConfig, String> {
    let Some(h) = h else {
        return Ok(HealthConfig {
            test: vec!["NONE".into()],
            interval: 0,
            timeout: 0,
            start_period: 0,
            start_interval: 0,
            retries: 0,
        });
    };
    let duration = |name: &str, v: &Option<String>| -> std::result::Result<u64, String> {
        let Some(v) = v else { return Ok(0) };
        let d = parse_duration(v).ok_or_else(|| format!("invalid {name} duration {v:?}"))?;
        if d != 0 && d < 1_000_000 {
            return Err(format!("{name} {v:?} cannot be less than 1ms"));
        }
        Ok(d)
    };
    let retries = match &h.retries {
        None => 0,
        Some(r) => r
            .parse::<u32>()
            .ok()
            .filter(|n| *n > 0)
            .ok_or_else(|| format!("--retries must be a positive number, not {r:?}"))?,
    };
    Ok(HealthConfig {
        test: match &h.test {
            Command::Exec(v) => std::iter::once("CMD".to_string())
                .chain(v.iter().cloned())
                .collect(),
            Command::Shell(s) => vec!["CMD-SHELL".into(), s.clone()],
        },
        interval: duration("Interval", &h.interval)?,
        timeout: duration("Timeout", &h.timeout)?,
        start_period: duration("StartPeriod", &h.start_period)?,
        start_interval: duration("StartInterval", &h.start_interval)?,
        retries,
    })
}

/// Go's `time.ParseDuration` (`1m30s`, `1.5h`, `300ms`), in nanoseconds.
pub fn parse_duration(s: &str) -> Option<u64> {
    if s == "0" {
        return Some(0);
    }
    let mut total = 0f64;
    let mut rest = s;
    if rest.is_empty() {
        return None;
    }
    while !rest.is_empty() {
        let num_len = rest.find(|c: char| !(c.is_ascii_digit() || c == '.'))?;
        if num_len == 0 {
            return None;
        }
        let value: f64 = rest[..num_len].parse().ok()?;
        rest = &rest[num_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let scale = match &rest[..unit_len] {
            "ns" => 1.0,
            "us" | "\u{b5}s" | "\u{3bc}s" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            _ => return None,
        };
        total += value * scale;
        rest = &rest[unit_len..];
    }
    (total < u64::MAX as f64).then_some(total as u64)
}

/// One instruction to run.
#[derive(Debug, Clone, PartialEq)]
pub struct Step {
    pub line: usize,
    /// The instruction as written (`Step N/M : <text>`).
    pub text: String,
    pub op: Op,
    /// What Docker records in history after `#(nop)` for a config-only step.
    pub nop_comment: Option<String>,
    /// The `SHELL` in effect after this step (Docker's history starts with it).
    pub shell: Vec<String>,
    /// Environment a `RUN` gets that is neither recorded in history nor part of the cache
    /// key: the predefined proxy args given with `--build-arg` but not declared.
    pub hidden_env: Vec<String>,
}

impl Step {
    /// The step's cache key: the parent image, the substituted instruction and, for
    /// `COPY`/`ADD`, the digest of what it copies.
    pub fn cache_key(&self, parent: &str, sources: Option<&str>) -> String {
        let mut h = Sha256::new();
        h.update(b"skiff-build-cache-v1\0");
        h.update(parent.as_bytes());
        h.update(b"\0");
        h.update(format!("{:?}", self.op).as_bytes());
        h.update(b"\0");
        h.update(sources.unwrap_or("").as_bytes());
        format!("sha256:{}", hex::encode(h.finalize()))
    }

    /// Whether the step reads the build context (its key needs a sources digest).
    pub fn reads_context(&self) -> bool {
        matches!(&self.op, Op::Copy { from: CopyFrom::Context, sources, .. } if !sources.is_empty())
    }
}

/// A stage to build.
#[derive(Debug, Clone, PartialEq)]
pub struct PlannedStage {
    /// Index of the stage in the Dockerfile.
    pub index: usize,
    pub name: Option<String>,
    pub base: Base,
    /// `FROM --platform=`, substituted.
    pub platform: Option<String>,
    /// Stages this one needs first (its base and `COPY --from`), by Dockerfile index.
    pub deps: BTreeSet<usize>,
    pub steps: Vec<Step>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct BuildPlan {
    /// The needed stages, in Dockerfile order.
    pub stages: Vec<PlannedStage>,
    /// Dockerfile indexes of needed stages grouped in waves: every stage's dependencies
    /// are in earlier waves, so the stages of one wave can run in parallel.
    pub waves: Vec<Vec<usize>>,
    /// Dockerfile index of the target stage.
    pub target: usize,
    /// `--build-arg`s no needed stage declares (Docker warns about them).
    pub unused_build_args: Vec<String>,
    /// Total steps of the needed stages (for `Step N/M`), counting each `FROM`.
    pub total_steps: usize,
}

impl BuildPlan {
    pub fn stage(&self, index: usize) -> Option<&PlannedStage> {
        self.stages.iter().find(|s| s.index == index)
    }
}

/// Plans `df` for `opts`.
pub fn plan(df: &Dockerfile, opts: &BuildOptions) -> Result<BuildPlan> {
    let esc = df.escape;
    // Global ARGs: defaults substituted with earlier globals, overridden by build args.
    let mut global = Vars::new();
    let mut used_args: BTreeSet<String> = BTreeSet::new();
    for instr in &df.global_args {
        if let Kind::Arg(decls) = &instr.kind {
            for d in decls {
                used_args.insert(d.name.clone());
                let value = match (opts.build_args.get(&d.name), &d.default) {
                    (Some(v), _) => Some(v.clone()),
                    (None, Some(default)) => Some(
                        expand::word(default, &global, esc)
                            .map_err(|m| BuildError::at(instr.line, m))?,
                    ),
                    (None, None) => None,
                };
                if let Some(v) = value {
                    global.insert(d.name.clone(), v);
                }
            }
        }
    }

    let names: BTreeMap<&str, usize> = df
        .stages
        .iter()
        .enumerate()
        .filter_map(|(i, s)| s.name.as_deref().map(|n| (n, i)))
        .collect();
    let stage_ref = |s: &str, current: usize| -> Option<usize> {
        let found = names
            .get(s.to_lowercase().as_str())
            .copied()
            .or_else(|| s.parse::<usize>().ok().filter(|i| *i < df.stages.len()));
        found.filter(|i| *i < current)
    };

    let mut planned = Vec::new();
    // The SHELL each stage ends with (what a stage built on it starts with).
    let mut final_shells: Vec<Vec<String>> = Vec::new();
    let default_shell = vec!["/bin/sh".to_string(), "-c".to_string()];
    for (index, stage) in df.stages.iter().enumerate() {
        let line = stage.from.line;
        let image =
            expand::word(&stage.from.image, &global, esc).map_err(|m| BuildError::at(line, m))?;
        if image.is_empty() {
            return Err(BuildError::at(
                line,
                "base name (".to_string() + &stage.from.image + ") should not be blank",
            ));
        }
        let base = if image.eq_ignore_ascii_case("scratch") {
            Base::Scratch
        } else if let Some(i) = stage_ref(&image, index) {
            Base::Stage(i)
        } else {
            skiff_image::ImageRef::parse(&image)
                .map_err(|e| BuildError::at(line, e.to_string()))?;
            Base::Image(image)
        };
        let platform = stage
            .from
            .platform
            .as_ref()
            .map(|p| expand::word(p, &global, esc).map_err(|m| BuildError::at(line, m)))
            .transpose()?;
        let mut deps = BTreeSet::new();
        if let Base::Stage(i) = base {
            deps.insert(i);
        }

        let mut vars = Vars::new(); // ARGs declared in the stage, then ENV
        let mut args_in_scope: BTreeMap<String, String> = BTreeMap::new();
        let mut shell = match &base {
            Base::Scratch => None,
            Base::Image(_) => opts.base_shells.get(&index).cloned(),
            Base::Stage(i) => final_shells.get(*i).cloned(),
        }
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| default_shell.clone());
        let mut steps = Vec::new();
        for instr in &stage.instructions {
            let mut expose_words: Vec<String> = Vec::new();
            let mut arg_comment: Option<String> = None;
            let mut hidden_env: Vec<String> = Vec::new();
            let at = |m: String| BuildError::at(instr.line, m);
            let w = |s: &str, vars: &Vars| expand::word(s, vars, esc).map_err(at);
            let op = match &instr.kind {
                Kind::Run { command, heredocs } => {
                    let env: Vec<String> = args_in_scope
                        .iter()
                        .map(|(k, v)| format!("{k}={v}"))
                        .collect();
                    // Undeclared proxy args reach the command but, as in Docker, neither
                    // the history (they may hold credentials) nor the cache key.
                    for p in PROXY_ARGS {
                        if let Some(v) = opts.build_args.get(*p) {
                            if !args_in_scope.contains_key(*p) {
                                hidden_env.push(format!("{p}={v}"));
                            }
                        }
                    }
                    Op::Run {
                        argv: argv(command, &shell),
                        env,
                        heredocs: heredocs.clone(),
                    }
                }
                Kind::Copy(spec) | Kind::Add(spec) => {
                    let add = matches!(instr.kind, Kind::Add(_));
                    let from = match &spec.from {
                        None => CopyFrom::Context,
                        Some(f) => {
                            let f = w(f, &vars)?;
                            match stage_ref(&f, index) {
                                Some(i) => {
                                    deps.insert(i);
                                    CopyFrom::Stage(i)
                                }
                                None if names.contains_key(f.to_lowercase().as_str()) => {
                                    return Err(at(format!("invalid from flag value {f}: stage {f} is this one or a later one")));
                                }
                                None => CopyFrom::Image(f),
                            }
                        }
                    };
                    let mut sources = Vec::new();
                    let mut heredocs = Vec::new();
                    for s in &spec.sources {
                        match s {
                            CopySource::Path(p) => {
                                let p = w(p, &vars)?;
                                if add
                                    && (p.starts_with("http://")
                                        || p.starts_with("https://")
                                        || p.starts_with("git@"))
                                {
                                    return Err(at(format!("ADD of a URL ({p}) is not supported: builds have no network access; download the file into the build context")));
                                }
                                sources.push(p);
                            }
                            CopySource::Heredoc(h) => heredocs.push(h.clone()),
                        }
                    }
                    let chmod = spec
                        .chmod
                        .as_ref()
                        .map(|m| {
                            let m = w(m, &vars)?;
                            u32::from_str_radix(&m, 8)
                                .ok()
                                .filter(|v| *v <= 0o7777)
                                .ok_or_else(|| at(format!("invalid chmod parameter: {m:?}")))
                        })
                        .transpose()?;
                    Op::Copy {
                        from,
                        sources,
                        heredocs,
                        dest: w(&spec.dest, &vars)?,
                        chown: spec.chown.as_ref().map(|c| w(c, &vars)).transpose()?,
                        chmod,
                        add,
                    }
                }
                Kind::Env(pairs) => {
                    let mut out = Vec::new();
                    for (k, v) in pairs {
                        let v = w(v, &vars)?;
                        vars.insert(k.clone(), v.clone());
                        out.push((k.clone(), v));
                    }
                    Op::Env(out)
                }
                Kind::Arg(decls) => {
                    let mut out = Vec::new();
                    let mut declared = Vec::new();
                    for d in decls {
                        let default = d.default.as_ref().map(|v| w(v, &vars)).transpose()?;
                        declared.push((d.name.clone(), default));
                        used_args.insert(d.name.clone());
                        let value = match (opts.build_args.get(&d.name), &d.default) {
                            (Some(v), _) => Some(v.clone()),
                            (None, Some(default)) => Some(w(default, &vars)?),
                            (None, None) => global.get(&d.name).cloned(),
                        };
                        if let Some(v) = &value {
                            // ENV set earlier in the stage wins over an ARG of the same name.
                            vars.entry(d.name.clone()).or_insert_with(|| v.clone());
                            args_in_scope.insert(d.name.clone(), v.clone());
                        }
                        out.push((d.name.clone(), value));
                    }
                    // Docker's history shows the declaration, not the value given.
                    arg_comment = Some(crate::history::arg_comment(&declared));
                    Op::Arg(out)
                }
                Kind::Label(pairs) => Op::Label(
                    pairs
                        .iter()
                        .map(|(k, v)| Ok((w(k, &vars)?, w(v, &vars)?)))
                        .collect::<Result<_>>()?,
                ),
                Kind::Workdir(d) => {
                    let d = w(d, &vars)?;
                    if d.is_empty() {
                        return Err(at("WORKDIR requires exactly one argument".into()));
                    }
                    Op::Workdir(d)
                }
                Kind::User(u) => Op::User(w(u, &vars)?),
                Kind::Cmd(c) => Op::Cmd(argv(c, &shell)),
                Kind::Entrypoint(c) => Op::Entrypoint(argv(c, &shell)),
                Kind::Expose(ports) => {
                    let mut out = Vec::new();
                    let words = expand::words(ports, &vars, esc).map_err(at)?;
                    expose_words = words.clone();
                    for p in words {
                        out.push(
                            normalize_port(&p)
                                .ok_or_else(|| at(format!("invalid containerPort: {p}")))?,
                        );
                    }
                    Op::Expose(out)
                }
                Kind::Volume(v) => Op::Volume(
                    v.iter()
                        .map(|p| w(p, &vars))
                        .collect::<Result<Vec<_>>>()?
                        .into_iter()
                        .filter(|p| !p.is_empty())
                        .collect(),
                ),
                Kind::Stopsignal(s) => Op::StopSignal(w(s, &vars)?),
                Kind::Healthcheck(h) => Op::Healthcheck(health_config(h.as_ref()).map_err(at)?),
                Kind::Shell(s) => {
                    if s.is_empty() {
                        return Err(at("SHELL requires at least one argument".into()));
                    }
                    shell = s.clone();
                    Op::Shell(s.clone())
                }
                Kind::Onbuild(t) => Op::Onbuild(t.clone()),
                Kind::Maintainer(m) => Op::Maintainer(m.clone()),
            };
            steps.push(Step {
                line: instr.line,
                text: instr.text.clone(),
                nop_comment: arg_comment
                    .or_else(|| crate::history::nop_comment(&op, &expose_words)),
                shell: shell.clone(),
                hidden_env,
                op,
            });
        }
        final_shells.push(shell);
        planned.push(PlannedStage {
            index,
            name: stage.name.clone(),
            base,
            platform,
            deps,
            steps,
        });
    }

    let target = match &opts.target {
        None => df.stages.len() - 1,
        Some(t) => *names.get(t.to_lowercase().as_str()).ok_or_else(|| {
            BuildError::Invalid(format!("target stage \"{t}\" could not be found"))
        })?,
    };
    // The stages the target needs.
    let mut needed = BTreeSet::new();
    let mut todo = vec![target];
    while let Some(i) = todo.pop() {
        if needed.insert(i) {
            todo.extend(planned[i].deps.iter().copied());
        }
    }
    let mut level = BTreeMap::new();
    for &i in &needed {
        // deps always point to earlier stages, so their levels are known.
        let l = planned[i]
            .deps
            .iter()
            .map(|d| level[d] + 1)
            .max()
            .unwrap_or(0);
        level.insert(i, l);
    }
    let mut waves: Vec<Vec<usize>> = Vec::new();
    for (&i, &l) in &level {
        if waves.len() <= l {
            waves.resize(l + 1, Vec::new());
        }
        waves[l].push(i);
    }
    let stages: Vec<PlannedStage> = planned
        .into_iter()
        .filter(|s| needed.contains(&s.index))
        .collect();
    let total_steps = stages.iter().map(|s| s.steps.len() + 1).sum();
    let unused_build_args = opts
        .build_args
        .keys()
        .filter(|k| !used_args.contains(*k) && !PROXY_ARGS.contains(&k.as_str()))
        .cloned()
        .collect();
    Ok(BuildPlan {
        stages,
        waves,
        target,
        unused_build_args,
        total_steps,
    })
}

/// Exec form as is; shell form wrapped in the shell (`["/bin/sh", "-c", "…"]`).
fn argv(c: &Command, shell: &[String]) -> Vec<String> {
    match c {
        Command::Exec(v) => v.clone(),
        Command::Shell(s) => shell.iter().cloned().chain([s.clone()]).collect(),
    }
}

/// `80` → `80/tcp`, `53/udp` kept, ranges kept.
fn normalize_port(word: &str) -> Option<String> {
    let (port, proto) = word.split_once('/').unwrap_or((word, "tcp"));
    let valid = |p: &str| p.parse::<u16>().is_ok_and(|n| n > 0);
    let ok = match port.split_once('-') {
        Some((a, b)) => valid(a) && valid(b),
        None => valid(port),
    };
    let proto = proto.to_ascii_lowercase();
    (ok && matches!(proto.as_str(), "tcp" | "udp" | "sctp")).then(|| format!("{port}/{proto}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_durations() {
        assert_eq!(parse_duration("5s"), Some(5_000_000_000));
        assert_eq!(parse_duration("1m30s"), Some(90_000_000_000));
        assert_eq!(parse_duration("1.5h"), Some(5_400_000_000_000));
        assert_eq!(parse_duration("300ms"), Some(300_000_000));
        assert_eq!(parse_duration("0"), Some(0));
        for bad in ["", "5", "s", "5x", "-1s", "1..2s"] {
            assert_eq!(parse_duration(bad), None, "{bad}");
        }
    }

    #[test]
    fn shells_come_from_the_base_and_carry_to_later_stages() {
        let df = crate::dockerfile::parse(
            "FROM img AS a\nRUN one\nSHELL [\"/bin/bash\", \"-ec\"]\nRUN two\nFROM a AS b\nCMD three\nFROM scratch\nCMD four\n",
        )
        .unwrap();
        let opts = BuildOptions {
            target: Some("a".into()),
            base_shells: BTreeMap::from([(0, vec!["/bin/ash".into(), "-xc".into()])]),
            ..Default::default()
        };
        let p = plan(&df, &opts).unwrap();
        let argv = |stage: usize, step: usize| match &p.stages[stage].steps[step].op {
            Op::Run { argv, .. } | Op::Cmd(argv) => argv.join(" "),
            op => panic!("{op:?}"),
        };
        assert_eq!(argv(0, 0), "/bin/ash -xc one");
        assert_eq!(argv(0, 2), "/bin/bash -ec two");
        let b = plan(
            &df,
            &BuildOptions {
                target: Some("b".into()),
                ..opts.clone()
            },
        )
        .unwrap();
        assert_eq!(
            b.stage(1).unwrap().steps[0].op,
            Op::Cmd(vec!["/bin/bash".into(), "-ec".into(), "three".into()])
        );
        let last = plan(
            &df,
            &BuildOptions {
                target: None,
                ..opts
            },
        )
        .unwrap();
        assert_eq!(
            last.stage(2).unwrap().steps[0].op,
            Op::Cmd(vec!["/bin/sh".into(), "-c".into(), "four".into()])
        );
    }

    #[test]
    fn healthchecks_become_image_config() {
        let df = crate::dockerfile::parse(
            "FROM busybox\nHEALTHCHECK --interval=5s --retries=3 CMD wget -q localhost\nHEALTHCHECK NONE\n",
        )
        .unwrap();
        let p = plan(&df, &BuildOptions::default()).unwrap();
        assert_eq!(
            p.stages[0].steps[0].op,
            Op::Healthcheck(HealthConfig {
                test: vec!["CMD-SHELL".into(), "wget -q localhost".into()],
                interval: 5_000_000_000,
                timeout: 0,
                start_period: 0,
                start_interval: 0,
                retries: 3,
            })
        );
        assert!(matches!(&p.stages[0].steps[1].op, Op::Healthcheck(h) if h.test == ["NONE"]));
        for bad in [
            "--interval=5",
            "--interval=10us",
            "--retries=0",
            "--timeout=soon",
        ] {
            let df =
                crate::dockerfile::parse(&format!("FROM busybox\nHEALTHCHECK {bad} CMD true\n"))
                    .unwrap();
            let err = plan(&df, &BuildOptions::default()).unwrap_err();
            assert!(
                matches!(err, BuildError::Dockerfile { line: 2, .. }),
                "{bad}: {err}"
            );
        }
    }
}
