//! `skiff build`: the build context (a directory, `.dockerignore` applied as the docker CLI
//! does) is sent as a tar to `POST /build`, and the classic builder's output is printed.

use std::collections::HashMap;
use std::io::Read;
use std::path::{Path, PathBuf};

use anyhow::Context;
use bollard::query_parameters::BuildImageOptions;
use bollard::Docker;
use futures::StreamExt;
use skiff_build::ignore::IgnoreRules;

use super::{daemon_error, Outcome};

#[derive(clap::Args, Debug)]
pub struct BuildArgs {
    /// Name and optionally a tag (format: "name:tag"); may be given several times
    #[arg(short = 't', long = "tag")]
    tags: Vec<String>,
    /// Name of the Dockerfile (default: "PATH/Dockerfile"; "-" reads it from STDIN)
    #[arg(short = 'f', long = "file")]
    file: Option<String>,
    /// Set build-time variables (KEY=VALUE, or KEY to take it from the environment)
    #[arg(long = "build-arg")]
    build_args: Vec<String>,
    /// Set metadata for an image (KEY=VALUE)
    #[arg(long = "label")]
    labels: Vec<String>,
    /// Set the target build stage to build
    #[arg(long)]
    target: Option<String>,
    /// Do not use cache when building the image
    #[arg(long = "no-cache")]
    no_cache: bool,
    /// Always attempt to pull a newer version of the image
    #[arg(long)]
    pull: bool,
    /// Suppress the build output and print image ID on success
    #[arg(short = 'q', long)]
    quiet: bool,
    /// Set the networking mode for the RUN instructions during build (default, host, none)
    #[arg(long)]
    network: Option<String>,
    /// The build context directory
    path: PathBuf,
}

/// `KEY=VALUE` pairs; a bare `KEY` takes its value from the environment (or is dropped).
fn pairs(list: &[String], from_env: bool) -> HashMap<String, String> {
    list.iter()
        .filter_map(|item| match item.split_once('=') {
            Some((k, v)) => Some((k.to_owned(), v.to_owned())),
            None if from_env => std::env::var(item).ok().map(|v| (item.clone(), v)),
            None => Some((item.clone(), String::new())),
        })
        .collect()
}

/// The context as a tar: every entry `.dockerignore` does not exclude (the Dockerfile and
/// `.dockerignore` are always sent), symlinks as symlinks, plus `extra` files.
fn context_tar(
    dir: &Path,
    keep: &[String],
    extra: &[(String, Vec<u8>)],
) -> anyhow::Result<Vec<u8>> {
    let ignore = match std::fs::read_to_string(dir.join(".dockerignore")) {
        Ok(text) => IgnoreRules::parse(&text).context("reading .dockerignore")?,
        Err(_) => IgnoreRules::default(),
    };
    let mut tar = tar::Builder::new(Vec::new());
    tar.follow_symlinks(false);
    let mut todo = vec![String::new()];
    while let Some(rel) = todo.pop() {
        let here = if rel.is_empty() {
            dir.to_path_buf()
        } else {
            dir.join(&rel)
        };
        let mut entries: Vec<_> = std::fs::read_dir(&here)
            .with_context(|| format!("reading {}", here.display()))?
            .collect::<Result<_, _>>()?;
        entries.sort_by_key(|e| e.file_name());
        for entry in entries {
            let name = entry.file_name().to_string_lossy().into_owned();
            let child = if rel.is_empty() {
                name
            } else {
                format!("{rel}/{name}")
            };
            if ignore.is_excluded(&child) && !keep.contains(&child) {
                continue;
            }
            let path = entry.path();
            tar.append_path_with_name(&path, &child)
                .with_context(|| format!("adding {} to the context", path.display()))?;
            if entry.file_type()?.is_dir() {
                todo.push(child);
            }
        }
    }
    for (name, bytes) in extra {
        let mut h = tar::Header::new_ustar();
        h.set_size(bytes.len() as u64);
        h.set_mode(0o644);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(0);
        h.set_cksum();
        tar.append_data(&mut h, name, bytes.as_slice())?;
    }
    Ok(tar.into_inner()?)
}

pub async fn build(docker: &Docker, args: BuildArgs) -> Outcome {
    let dir = args.path.clone();
    if !dir.is_dir() {
        anyhow::bail!(
            "unable to prepare context: path {:?} not found",
            dir.display()
        );
    }
    let mut extra = Vec::new();
    let dockerfile = match args.file.as_deref() {
        None => "Dockerfile".to_owned(),
        Some("-") => {
            let mut text = Vec::new();
            std::io::stdin()
                .read_to_end(&mut text)
                .context("reading the Dockerfile from STDIN")?;
            let name = format!(".dockerfile.{}", &skiff_core::ids::random_id()[..20]);
            extra.push((name.clone(), text));
            name
        }
        Some(f) => {
            let path = std::fs::canonicalize(f).with_context(|| format!("Dockerfile {f}"))?;
            let root = std::fs::canonicalize(&dir)?;
            match path.strip_prefix(&root) {
                Ok(rel) => rel.to_string_lossy().into_owned(),
                Err(_) => {
                    // Outside the context: sent under a name of its own.
                    let name = format!(".dockerfile.{}", &skiff_core::ids::random_id()[..20]);
                    extra.push((name.clone(), std::fs::read(&path)?));
                    name
                }
            }
        }
    };
    let keep = [dockerfile.clone(), ".dockerignore".to_owned()];
    let tar = tokio::task::spawn_blocking(move || context_tar(&dir, &keep, &extra)).await??;
    let opts = BuildImageOptions {
        dockerfile,
        t: args.tags.first().cloned(),
        q: args.quiet,
        nocache: args.no_cache,
        pull: args.pull.then(|| "1".to_owned()),
        rm: true,
        buildargs: Some(pairs(&args.build_args, true)),
        labels: Some(pairs(&args.labels, false)),
        target: args.target.clone().unwrap_or_default(),
        networkmode: args.network.clone(),
        ..Default::default()
    };
    // Like the docker CLI: every stored credential goes along (`X-Registry-Config`), for
    // the daemon's pulls of base images from registries that want a login.
    let credentials: HashMap<String, bollard::auth::DockerCredentials> =
        super::docker_config::DockerConfig::load()?
            .all()?
            .into_iter()
            .map(|a| {
                let creds = bollard::auth::DockerCredentials {
                    username: Some(a.username),
                    password: Some(a.password),
                    serveraddress: Some(a.serveraddress.clone()),
                    ..Default::default()
                };
                (a.serveraddress, creds)
            })
            .collect();
    let credentials = (!credentials.is_empty()).then_some(credentials);
    let mut stream = docker.build_image(opts, credentials, Some(bollard::body_full(tar.into())));
    let mut id = None;
    // A base image's pull arrives as Docker's progress messages: drawn as `pull` draws them.
    let tty = std::io::IsTerminal::is_terminal(&std::io::stdout());
    let mut printer = super::progress::Printer::new(std::io::stdout(), tty);
    while let Some(item) = stream.next().await {
        let info = item.map_err(daemon_error)?;
        if let Some(e) = info.error_detail.and_then(|d| d.message) {
            eprintln!("{e}");
            return Ok(1);
        }
        if let (Some(status), false) = (info.status.clone(), args.quiet) {
            let message = super::progress::Message {
                id: info.id.clone(),
                status: Some(status),
                progress_detail: info
                    .progress_detail
                    .as_ref()
                    .map(|d| serde_json::to_value(d).unwrap_or_default()),
                ..Default::default()
            };
            printer.show(&message)?;
            continue;
        }
        if let Some(text) = info.stream {
            if !args.quiet {
                print!("{text}");
            }
        }
        if let Some(aux) = info.aux.and_then(|a| a.id) {
            id = Some(aux);
        }
    }
    let Some(id) = id else {
        anyhow::bail!("the daemon did not report the built image");
    };
    // The API takes one `t`; further tags are added like `docker tag`.
    for tag in args.tags.iter().skip(1) {
        let (repo, t) = match tag.rsplit_once(':') {
            Some((r, t)) if !t.contains('/') => (r, t),
            _ => (tag.as_str(), "latest"),
        };
        let opts = bollard::query_parameters::TagImageOptions {
            repo: Some(repo.to_owned()),
            tag: Some(t.to_owned()),
        };
        docker
            .tag_image(&id, Some(opts))
            .await
            .map_err(daemon_error)?;
        if !args.quiet {
            println!("Successfully tagged {repo}:{t}");
        }
    }
    if args.quiet {
        println!("{id}");
    }
    Ok(0)
}
