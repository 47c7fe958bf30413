//! The Dockerfile front end: every instruction, directives, substitution, malformed input
//! with Docker's line-numbered errors, and the plan (needed stages, waves, cache keys).

use std::collections::BTreeMap;

use skiff_build::dockerfile::{parse, Command, CopySource, Kind};
use skiff_build::plan::{plan, Base, BuildOptions, CopyFrom, Op};
use skiff_build::BuildError;

const ALL: &str = r#"# syntax=docker/dockerfile:1
ARG BASE=busybox
ARG TAG
FROM ${BASE}:${TAG:-latest} AS build
ARG GREETING="hello world"
ENV A=1 B="two words" \
    C=${A}x
# a comment
LABEL org.example.v="${B}" other=plain
WORKDIR /src
USER 1000:1000
RUN echo $GREETING \
  && echo done
RUN ["sh", "-c", "echo exec"]
RUN <<EOT
echo heredoc
EOT
COPY --chown=1:1 --chmod=644 --link src/*.rs ./
ADD archive.tar /opt/
EXPOSE 80 53/udp ${A}000
VOLUME ["/data", "/logs"]
VOLUME /cache
STOPSIGNAL SIGINT
HEALTHCHECK --interval=5s --retries=3 CMD ["true"]
SHELL ["/bin/bash", "-c"]
CMD echo shell-form
ENTRYPOINT ["/entry"]
ONBUILD RUN echo triggered

FROM --platform=linux/amd64 scratch AS final
COPY --from=build /src/app /app
COPY <<EOF /hello.txt
hi
EOF
"#;

#[test]
fn parses_every_instruction() {
    let df = parse(ALL).unwrap();
    assert_eq!(df.syntax.as_deref(), Some("docker/dockerfile:1"));
    assert_eq!(df.global_args.len(), 2);
    assert_eq!(df.stages.len(), 2);
    let build = &df.stages[0];
    assert_eq!(build.name.as_deref(), Some("build"));
    assert_eq!(build.from.image, "${BASE}:${TAG:-latest}");
    assert_eq!(build.from.line, 4);
    let kinds: Vec<&str> = build
        .instructions
        .iter()
        .map(|i| i.kind.keyword())
        .collect();
    assert_eq!(
        kinds,
        [
            "ARG",
            "ENV",
            "LABEL",
            "WORKDIR",
            "USER",
            "RUN",
            "RUN",
            "RUN",
            "COPY",
            "ADD",
            "EXPOSE",
            "VOLUME",
            "VOLUME",
            "STOPSIGNAL",
            "HEALTHCHECK",
            "SHELL",
            "CMD",
            "ENTRYPOINT",
            "ONBUILD"
        ]
    );
    let run = &build.instructions[5];
    assert_eq!(run.line, 12);
    assert_eq!(run.text, "RUN echo $GREETING   && echo done");
    assert!(
        matches!(&run.kind, Kind::Run { command: Command::Shell(s), .. } if s == "echo $GREETING   && echo done")
    );
    assert!(
        matches!(&build.instructions[6].kind, Kind::Run { command: Command::Exec(v), .. } if v == &["sh", "-c", "echo exec"])
    );
    match &build.instructions[7].kind {
        Kind::Run { heredocs, .. } => assert_eq!(heredocs[0].body, "echo heredoc\n"),
        k => panic!("{k:?}"),
    }
    match &build.instructions[8].kind {
        Kind::Copy(c) => {
            assert_eq!(c.chown.as_deref(), Some("1:1"));
            assert_eq!(c.chmod.as_deref(), Some("644"));
            assert!(c.link);
            assert_eq!(c.sources, [CopySource::Path("src/*.rs".into())]);
            assert_eq!(c.dest, "./");
        }
        k => panic!("{k:?}"),
    }
    assert!(matches!(&build.instructions[18].kind, Kind::Onbuild(t) if t == "RUN echo triggered"));
    let final_stage = &df.stages[1];
    assert_eq!(final_stage.from.platform.as_deref(), Some("linux/amd64"));
    assert!(
        matches!(&final_stage.instructions[1].kind, Kind::Copy(c) if matches!(&c.sources[0], CopySource::Heredoc(h) if h.body == "hi\n"))
    );
}

#[test]
fn plans_with_substitution_and_build_args() {
    let df = parse(ALL).unwrap();
    let opts = BuildOptions {
        target: None,
        build_args: BTreeMap::from([
            ("TAG".to_string(), "1.36".to_string()),
            ("GREETING".to_string(), "hi".to_string()),
            ("HTTP_PROXY".to_string(), "http://proxy:3128".to_string()),
            ("UNUSED".to_string(), "x".to_string()),
        ]),
        ..Default::default()
    };
    let p = plan(&df, &opts).unwrap();
    let build = p.stage(0).unwrap();
    assert_eq!(build.base, Base::Image("busybox:1.36".into()));
    let ops: Vec<&Op> = build.steps.iter().map(|s| &s.op).collect();
    assert_eq!(
        ops[1],
        &Op::Env(vec![
            ("A".into(), "1".into()),
            ("B".into(), "two words".into()),
            ("C".into(), "1x".into())
        ])
    );
    assert_eq!(
        ops[2],
        &Op::Label(vec![
            ("org.example.v".into(), "two words".into()),
            ("other".into(), "plain".into())
        ])
    );
    match ops[5] {
        Op::Run { argv, env, .. } => {
            assert_eq!(argv, &["/bin/sh", "-c", "echo $GREETING   && echo done"]);
            assert_eq!(env, &["GREETING=hi"]);
        }
        op => panic!("{op:?}"),
    }
    // The undeclared proxy arg reaches the command, not the history or the cache key.
    assert_eq!(build.steps[5].hidden_env, ["HTTP_PROXY=http://proxy:3128"]);
    let mut other_proxy = opts.clone();
    other_proxy
        .build_args
        .insert("HTTP_PROXY".into(), "http://elsewhere:3128".into());
    let again = plan(&df, &other_proxy).unwrap();
    assert_eq!(
        again.stage(0).unwrap().steps[5].cache_key("parent", None),
        build.steps[5].cache_key("parent", None)
    );
    assert_eq!(
        ops[10],
        &Op::Expose(vec!["80/tcp".into(), "53/udp".into(), "1000/tcp".into()])
    );
    assert_eq!(ops[11], &Op::Volume(vec!["/data".into(), "/logs".into()]));
    // SHELL changes the shell of later shell-form commands.
    assert_eq!(
        ops[16],
        &Op::Cmd(vec![
            "/bin/bash".into(),
            "-c".into(),
            "echo shell-form".into()
        ])
    );
    match ops[8] {
        Op::Copy {
            from,
            chmod,
            sources,
            ..
        } => {
            assert_eq!(from, &CopyFrom::Context);
            assert_eq!(*chmod, Some(0o644));
            assert_eq!(sources, &["src/*.rs"]);
        }
        op => panic!("{op:?}"),
    }
    let fin = p.stage(1).unwrap();
    assert_eq!(fin.base, Base::Scratch);
    assert!(matches!(
        &fin.steps[0].op,
        Op::Copy {
            from: CopyFrom::Stage(0),
            ..
        }
    ));
    assert_eq!(p.waves, [vec![0], vec![1]]);
    assert_eq!(p.unused_build_args, ["UNUSED"]);
    assert_eq!(p.total_steps, 19 + 1 + 2 + 1);
}

const MULTI: &str = "\
FROM busybox AS a
RUN echo a
FROM busybox AS b
RUN echo b
FROM busybox AS unused
RUN echo never
FROM a AS c
COPY --from=b /x /x
FROM busybox
COPY --from=c /x /y
";

#[test]
fn only_needed_stages_run_and_independent_ones_share_a_wave() {
    let df = parse(MULTI).unwrap();
    let p = plan(&df, &BuildOptions::default()).unwrap();
    let planned: Vec<usize> = p.stages.iter().map(|s| s.index).collect();
    assert_eq!(planned, [0, 1, 3, 4], "the unused stage is skipped");
    assert_eq!(p.waves, [vec![0, 1], vec![3], vec![4]]);
    assert_eq!(p.stage(3).unwrap().base, Base::Stage(0));
    assert_eq!(p.target, 4);

    let target_b = BuildOptions {
        target: Some("B".into()),
        ..Default::default()
    };
    let p = plan(&df, &target_b).unwrap();
    assert_eq!(p.stages.len(), 1);
    assert_eq!(p.waves, [vec![1]]);
    let missing = BuildOptions {
        target: Some("nope".into()),
        ..Default::default()
    };
    let err = plan(&df, &missing).unwrap_err();
    assert_eq!(err.to_string(), "target stage \"nope\" could not be found");
}

#[test]
fn cache_keys_chain_on_parent_instruction_and_sources() {
    let df = parse("FROM busybox\nARG V=1\nCOPY a /a\nRUN echo $V\n").unwrap();
    let p = plan(&df, &BuildOptions::default()).unwrap();
    let steps = &p.stages[0].steps;
    assert!(steps[1].reads_context());
    assert!(!steps[2].reads_context());
    let base = "sha256:base";
    let k_copy = steps[1].cache_key(base, Some("sha256:src1"));
    assert_eq!(k_copy, steps[1].cache_key(base, Some("sha256:src1")));
    assert_ne!(k_copy, steps[1].cache_key(base, Some("sha256:src2")));
    assert_ne!(
        k_copy,
        steps[1].cache_key("sha256:other", Some("sha256:src1"))
    );
    // Another build arg value changes the RUN's key (its environment differs).
    let v2 = BuildOptions {
        build_args: BTreeMap::from([("V".into(), "2".into())]),
        ..Default::default()
    };
    let p2 = plan(&df, &v2).unwrap();
    assert_ne!(
        steps[2].cache_key("p", None),
        p2.stages[0].steps[2].cache_key("p", None)
    );
    // The same Dockerfile planned again gives the same keys.
    let again = plan(&df, &BuildOptions::default()).unwrap();
    assert_eq!(
        again.stages[0].steps[2].cache_key("p", None),
        steps[2].cache_key("p", None)
    );
}

fn err(text: &str) -> (usize, String) {
    let e = parse(text)
        .and_then(|df| plan(&df, &BuildOptions::default()).map(|_| ()))
        .unwrap_err();
    match e {
        BuildError::Dockerfile { line, ref message } => {
            assert_eq!(
                e.to_string(),
                format!("dockerfile parse error on line {line}: {message}")
            );
            (line, message.clone())
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn malformed_dockerfiles_get_line_numbered_errors() {
    assert_eq!(err("FROM busybox\nFOO bar\n").0, 2);
    assert_eq!(err("RUN echo no from\n").0, 1);
    assert_eq!(
        err("FROM busybox\nENV A=1 B\n"),
        (
            2,
            "Syntax error - can't find = in \"B\". Must be of the form: name=value".into()
        )
    );
    assert_eq!(
        err("FROM busybox\n\nRUN --mount=type=cache,target=/x echo\n"),
        (3, "the --mount option requires BuildKit".into())
    );
    assert_eq!(
        err("FROM busybox\nCOPY --bogus a b\n"),
        (2, "unknown flag: bogus".into())
    );
    let (line, message) = err("FROM busybox\nADD https://example.com/x /x\n");
    assert_eq!(line, 2);
    assert!(message.contains("no network access"), "{message}");
    assert_eq!(
        err("FROM busybox\nCOPY --chmod=999 a b\n"),
        (2, "invalid chmod parameter: \"999\"".into())
    );
    assert_eq!(
        err("FROM busybox\nEXPOSE 80/xyz\n"),
        (2, "invalid containerPort: 80/xyz".into())
    );
    assert_eq!(err("FROM busybox\nWORKDIR ${oops\n").0, 2);
    assert_eq!(err("FROM busybox AS 1bad\n").0, 1);
    assert_eq!(err("FROM busybox AS x\nFROM busybox AS x\n").0, 2);
    assert_eq!(err("FROM busybox AS a\nCOPY --from=a /x /x\n").0, 2);
    // An unterminated here-document is reported where the delimiter was expected.
    let (line, message) = err("FROM busybox\nRUN <<EOT\necho never ends\n");
    assert_eq!(line, 4);
    assert!(message.contains("EOT"), "{message}");
    assert_eq!(err("FROM busybox\nONBUILD FROM x\n").0, 2);
    assert_eq!(err("FROM Not_A_Valid/Name\n").0, 1);
    assert!(matches!(parse(""), Err(BuildError::Dockerfile { .. })));
}

#[test]
fn escape_directive_and_continuations() {
    let df = parse("# escape=`\nFROM busybox\nRUN echo a `\n  b\nCOPY c:\\dir\\ /x\n").unwrap();
    assert_eq!(df.escape, '`');
    let run = &df.stages[0].instructions[0];
    assert_eq!(run.text, "RUN echo a   b");
    assert!(
        matches!(&df.stages[0].instructions[1].kind, Kind::Copy(c) if c.sources[0] == CopySource::Path("c:\\dir\\".into()))
    );
    // Comment lines inside a continued instruction are dropped, as Docker does.
    let df = parse("FROM busybox\nRUN echo a \\\n# note\n  && echo b\n").unwrap();
    assert_eq!(df.stages[0].instructions[0].text, "RUN echo a   && echo b");
}
