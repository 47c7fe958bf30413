//! `docker build` as dockerd's classic builder does it (`POST /build` with a tar context):
//! the context is received and checked by skiff-build, the Dockerfile planned there, and the
//! build loop ([`skiff_build::exec::execute`]) runs over [`backend::Builder`], which makes
//! each step with this engine: `RUN` in a container of the engine (same isolation and
//! limits as `docker run`), `COPY`/`ADD` into a created container's root, and every step
//! committed through the commit code into an image with a history entry. Steps are cached in
//! [`cache::BuildCache`].
//!
//! The output is Docker's classic stream: `Step N/M : …`, ` ---> Running in …`, the RUN
//! output, ` ---> Using cache`, ` ---> <id>`, `Successfully built …`, `Successfully tagged …`
//! and the image id as an `aux` message.

mod backend;
pub(crate) mod cache;
mod copy;
mod write;

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use futures::stream::BoxStream;
use futures::StreamExt;
use skiff_build::context::{ContextLimits, Spill};
use skiff_build::dockerfile::{self, Dockerfile, Instr, Kind};
use skiff_build::ignore::IgnoreRules;
use skiff_build::plan::{self, Base, BuildOptions, BuildPlan};
use tokio::sync::mpsc::UnboundedSender;

use crate::error::{EngineError, IoContext, Result};
use crate::{ByteStream, Engine};

/// `POST /build` parameters.
#[derive(Debug, Clone, Default)]
pub struct BuildRequest {
    /// `-t`, any number of times.
    pub tags: Vec<String>,
    /// `-f`: the Dockerfile's path inside the context (`Dockerfile` by default).
    pub dockerfile: Option<String>,
    pub target: Option<String>,
    pub build_args: BTreeMap<String, String>,
    /// `--label`: added to the built image (as a last `LABEL` step).
    pub labels: BTreeMap<String, String>,
    pub no_cache: bool,
    pub pull: bool,
    /// `-q`: only the image id is reported.
    pub quiet: bool,
    /// `--network`: the network of `RUN` steps (`default`/`bridge`, `host`, `none`).
    pub network: Option<String>,
    /// Credentials per registry (`X-Registry-Config`), keyed as the client sends them
    /// (`https://index.docker.io/v1/`, `localhost:5000`), for pulling base images.
    pub registry_auth: HashMap<String, skiff_image::registry::Credentials>,
}

/// One message of the build's output stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BuildMessage {
    /// Text for the user (`{"stream": …}`).
    Stream(String),
    /// The built image (`{"aux": {"ID": …}}`).
    Aux { id: String },
    /// A progress message of a base image's pull (`{"status":"Downloading",
    /// "progressDetail":{…},"id":…}`), as in `docker pull`.
    Progress(skiff_image::registry::Progress),
}

/// The engine's build state: the cache index and the context size limit.
pub(crate) struct BuildState {
    pub cache: cache::BuildCache,
    context_limit: AtomicU64,
}

impl BuildState {
    pub(crate) fn open(root: &Path) -> BuildState {
        sweep_work_dirs(root);
        BuildState {
            cache: cache::BuildCache::open(root),
            context_limit: AtomicU64::new(ContextLimits::default().max_bytes),
        }
    }
}

/// Context bytes a build keeps in memory (a tmpfs) before moving its context to disk.
const MEMORY_CONTEXT: u64 = 64 << 20;

/// Mounts a tmpfs for the context at `dir`: room for [`MEMORY_CONTEXT`] bytes plus the
/// files' metadata (the context moves to disk before it fills up).
fn mount_context_tmpfs(dir: &Path) -> nix::Result<()> {
    use nix::mount::{mount, MsFlags};
    let data = format!("size={},mode=0700", MEMORY_CONTEXT + (16 << 20));
    mount(
        Some("skiff-build-context"),
        dir,
        Some("tmpfs"),
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
        Some(data.as_str()),
    )
}

/// Unmounts the context tmpfs of the work dir `dir` and removes it.
fn remove_work_dir(dir: &Path) -> std::io::Result<()> {
    if let Err(e) = skiff_image::overlay::unmount(&dir.join("context")) {
        tracing::warn!(dir = %dir.display(), error = %e, "unmounting a build context");
    }
    std::fs::remove_dir_all(dir)
}

/// Removes the work dirs a daemon that stopped mid-build left behind.
fn sweep_work_dirs(root: &Path) {
    let Ok(entries) = std::fs::read_dir(root.join("build").join("tmp")) else {
        return;
    };
    for entry in entries.flatten() {
        let dir = entry.path();
        if let Ok(sources) = std::fs::read_dir(&dir) {
            for s in sources.flatten() {
                if s.file_name().to_string_lossy().starts_with("from-") {
                    let _ = skiff_image::overlay::unmount(&s.path());
                }
            }
        }
        if let Err(e) = remove_work_dir(&dir) {
            tracing::warn!(dir = %dir.display(), error = %e, "removing a stale build work dir");
        }
    }
}

/// Removes a build's work dir when the build ends, however it ends.
struct WorkDir(PathBuf);

impl Drop for WorkDir {
    fn drop(&mut self) {
        if let Err(e) = remove_work_dir(&self.0) {
            tracing::warn!(dir = %self.0.display(), error = %e, "removing a build's work dir");
        }
    }
}

pub(crate) type Sender = UnboundedSender<Result<BuildMessage>>;

impl Engine {
    /// The largest build context accepted, in bytes (`skiff daemon --max-build-context`).
    pub fn set_build_context_limit(&self, bytes: u64) {
        self.build.context_limit.store(bytes, Ordering::Relaxed);
    }

    pub(crate) fn do_build(
        &self,
        req: BuildRequest,
        context: ByteStream,
    ) -> Result<BoxStream<'static, Result<BuildMessage>>> {
        for t in &req.tags {
            skiff_image::Reference::parse(t)
                .map_err(|e| EngineError::invalid(format!("invalid tag {t:?}: {e}")))?;
        }
        if let Some(mode) = req.network.as_deref() {
            // Docker's classic builder takes these; joining another container's network
            // namespace is not a build option.
            if !matches!(mode, "" | "default" | "bridge" | "host" | "none") {
                return Err(EngineError::invalid(format!(
                    "network mode {mode:?} not supported by the builder: use default, host or none"
                )));
            }
        }
        let engine = self
            .arc()
            .ok_or_else(|| EngineError::invalid("the engine is shutting down"))?;
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        tokio::spawn(async move {
            let result = engine.run_build(req, context, &tx).await;
            if let Err(e) = result {
                tracing::info!(error = %e, "build failed");
                let _ = tx.send(Err(e));
            }
        });
        Ok(tokio_stream::wrappers::UnboundedReceiverStream::new(rx).boxed())
    }

    async fn run_build(&self, req: BuildRequest, context: ByteStream, tx: &Sender) -> Result<()> {
        let say = |text: String| {
            if !req.quiet {
                let _ = tx.send(Ok(BuildMessage::Stream(text)));
            }
        };
        let work = self
            .cfg
            .root
            .join("build")
            .join("tmp")
            .join(&skiff_core::ids::random_id()[..16]);
        std::fs::create_dir_all(&work).ctx(|| format!("create {}", work.display()))?;
        let work = WorkDir(work);
        let in_memory = work.0.join("context");
        let on_disk = work.0.join("context-disk");
        let empty = work.0.join("empty");
        for d in [&in_memory, &on_disk, &empty] {
            std::fs::create_dir(d).ctx(|| format!("create {}", d.display()))?;
        }
        let started = std::time::Instant::now();
        let limits = ContextLimits {
            max_bytes: self.build.context_limit.load(Ordering::Relaxed),
            ..ContextLimits::default()
        };
        // A context up to MEMORY_CONTEXT bytes lives in a tmpfs (creating its files on a
        // busy disk is most of a cached rebuild); a larger one moves to the disk.
        let spill = match mount_context_tmpfs(&in_memory) {
            Ok(()) => Some(on_disk.clone()),
            Err(e) => {
                tracing::debug!(error = %e, "no tmpfs for the build context, using the disk");
                None
            }
        };
        let reader = crate::blocking_reader(context);
        let first = if spill.is_some() { in_memory } else { on_disk };
        let ctx = tokio::task::spawn_blocking(move || {
            let spill = spill.as_deref().map(|dir| Spill {
                dir,
                after_bytes: MEMORY_CONTEXT,
            });
            skiff_build::context::receive_spilling(reader, &first, spill, limits)
        })
        .await
        .map_err(std::io::Error::other)
        .ctx(|| "receive the build context".into())??;
        let received = started.elapsed();
        let name = req
            .dockerfile
            .clone()
            .unwrap_or_else(|| "Dockerfile".into());
        let text = read_dockerfile(&ctx, &name)?;
        let ignore = match std::fs::read_to_string(ctx.join(".dockerignore")) {
            Ok(t) => IgnoreRules::parse(&t)?,
            Err(_) => IgnoreRules::default(),
        };
        let mut df = dockerfile::parse(&text)?;
        let mut opts = BuildOptions {
            target: req.target.clone(),
            build_args: req.build_args.clone(),
            ..Default::default()
        };
        let first = plan::plan(&df, &opts)?;
        let mut builder = backend::Builder {
            engine: self,
            context: ctx,
            empty,
            ignore,
            tx,
            quiet: req.quiet,
            pull: req.pull,
            consumed: Vec::new(),
            network: req
                .network
                .clone()
                .filter(|m| !m.is_empty() && m != "default"),
            registry_auth: req.registry_auth.clone(),
        };
        let bases = prepare_bases(&builder, &mut df, &first).await?;
        // The bases are present now (pulled when missing or with --pull).
        builder.pull = false;
        builder.consumed = bases.consumed;
        opts.base_shells = bases.shells;
        if !req.labels.is_empty() {
            add_labels(&mut df, first.target, &req.labels);
        }
        let plan = plan::plan(&df, &opts)?;
        let exec = skiff_build::exec::ExecOptions {
            no_cache: req.no_cache,
        };
        let planned = started.elapsed();
        let image = skiff_build::exec::execute(&plan, &builder, exec).await?;
        let executed = started.elapsed();
        if !plan.unused_build_args.is_empty() {
            say(format!(
                "[Warning] One or more build-args [{}] were not consumed\n",
                plan.unused_build_args.join(" ")
            ));
        }
        let _ = tx.send(Ok(BuildMessage::Aux { id: image.clone() }));
        say(format!(
            "Successfully built {}\n",
            skiff_core::ids::short_id(&image)
        ));
        for t in &req.tags {
            let r = skiff_image::Reference::parse(t)?;
            let images = self.images.clone();
            let (source, target) = (image.clone(), r.to_string());
            tokio::task::spawn_blocking(move || images.tag(&source, &target))
                .await
                .map_err(std::io::Error::other)
                .ctx(|| "tag the image".into())??;
            self.emit_image("tag", &image, Some(&r.to_string()));
            say(format!("Successfully tagged {r}\n"));
        }
        if req.quiet {
            let _ = tx.send(Ok(BuildMessage::Stream(format!("{image}\n"))));
        }
        tracing::info!(
            image = %image,
            ?received,
            ?planned,
            ?executed,
            total = ?started.elapsed(),
            "image built"
        );
        Ok(())
    }

    /// `POST /build/prune`: forgets the build cache; returns the number of steps it held.
    pub(crate) fn do_build_prune(&self) -> Result<usize> {
        self.build.cache.clear()
    }
}

/// What the base images of a build's stages bring.
struct Bases {
    /// Base images whose `ONBUILD` triggers were put into the Dockerfile.
    consumed: Vec<String>,
    /// The base image's `SHELL`, by stage index.
    shells: BTreeMap<usize, Vec<String>>,
}

/// Gets the base image of every stage `plan` needs (pulled when the engine lacks it, or
/// with `--pull`), puts each one's `ONBUILD` triggers right after its stage's `FROM` (as
/// Docker runs them; a stage built `FROM` an earlier stage gets that stage's own `ONBUILD`
/// instructions) and collects their `SHELL`s, which the plan needs.
async fn prepare_bases(
    builder: &backend::Builder<'_>,
    df: &mut Dockerfile,
    plan: &BuildPlan,
) -> Result<Bases> {
    let mut bases = Bases {
        consumed: Vec::new(),
        shells: BTreeMap::new(),
    };
    let mut seen: HashMap<(String, Option<String>), skiff_image::Image> = HashMap::new();
    for stage in &plan.stages {
        if let Base::Stage(from) = stage.base {
            let triggers: Vec<String> = df.stages[from]
                .instructions
                .iter()
                .filter_map(|i| match &i.kind {
                    Kind::Onbuild(t) => Some(t.clone()),
                    _ => None,
                })
                .collect();
            inject_triggers(df, stage.index, &triggers)?;
            continue;
        }
        let Base::Image(name) = &stage.base else {
            continue;
        };
        let platform = stage.platform.clone().filter(|p| !p.is_empty());
        let key = (name.clone(), platform.clone());
        let image = match seen.get(&key) {
            Some(image) => image.clone(),
            None => {
                let image = builder
                    .image(name, platform.as_deref(), builder.pull)
                    .await?;
                seen.insert(key, image.clone());
                image
            }
        };
        if let Some(shell) = image.docker.shell.clone().filter(|s| !s.is_empty()) {
            bases.shells.insert(stage.index, shell);
        }
        let triggers = image.docker.on_build.clone().unwrap_or_default();
        if inject_triggers(df, stage.index, &triggers)? {
            bases.consumed.push(image.id);
        }
    }
    Ok(bases)
}

/// Puts `triggers` right after stage `index`'s `FROM`; false when there are none.
fn inject_triggers(df: &mut Dockerfile, index: usize, triggers: &[String]) -> Result<bool> {
    if triggers.is_empty() {
        return Ok(false);
    }
    let text = format!("FROM scratch\n{}\n", triggers.join("\n"));
    let parsed = dockerfile::parse(&text)?;
    let line = df.stages[index].from.line;
    let injected: Vec<Instr> = parsed.stages[0]
        .instructions
        .iter()
        .cloned()
        .map(|mut i| {
            i.line = line;
            i
        })
        .collect();
    df.stages[index].instructions.splice(0..0, injected);
    Ok(true)
}

fn read_dockerfile(ctx: &Path, name: &str) -> Result<String> {
    let rel = name.trim_start_matches('/');
    let cleaned: Vec<&str> = rel
        .split('/')
        .filter(|c| !c.is_empty() && *c != ".")
        .collect();
    if cleaned.contains(&"..") {
        return Err(EngineError::invalid(format!(
            "the Dockerfile ({name}) must be within the build context"
        )));
    }
    let path = cleaned.iter().fold(ctx.to_path_buf(), |p, c| p.join(c));
    // Never followed: a Dockerfile that is a symlink could name anything.
    match std::fs::symlink_metadata(&path) {
        Ok(m) if m.is_file() => {
            std::fs::read_to_string(&path).ctx(|| format!("read the Dockerfile {name}"))
        }
        _ => Err(EngineError::invalid(format!(
            "Cannot locate specified Dockerfile: {name}"
        ))),
    }
}

/// `--label k=v`: a `LABEL` step at the end of the target stage, as the classic builder
/// appends one to the Dockerfile.
fn add_labels(df: &mut Dockerfile, target: usize, labels: &BTreeMap<String, String>) {
    let stage = &mut df.stages[target];
    let line = stage
        .instructions
        .last()
        .map_or(stage.from.line, |i| i.line);
    let quoted: Vec<String> = labels.iter().map(|(k, v)| format!("{k:?}={v:?}")).collect();
    // Values are literal: escaped so that substitution and quote removal leave them as given.
    let escape = |s: &str| {
        s.chars()
            .flat_map(|c| {
                let e = matches!(c, '\\' | '$' | '"' | '\'');
                e.then_some('\\').into_iter().chain([c])
            })
            .collect::<String>()
    };
    let pairs = labels.iter().map(|(k, v)| (escape(k), escape(v))).collect();
    stage.instructions.push(Instr {
        line,
        text: format!("LABEL {}", quoted.join(" ")),
        kind: Kind::Label(pairs),
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dockerfile_must_be_a_file_inside_the_context() {
        let ctx = tempfile::tempdir().unwrap();
        std::fs::create_dir(ctx.path().join("sub")).unwrap();
        std::fs::write(ctx.path().join("sub/Build.df"), "FROM scratch\n").unwrap();
        std::os::unix::fs::symlink("/etc/passwd", ctx.path().join("Dockerfile")).unwrap();
        assert_eq!(
            read_dockerfile(ctx.path(), "sub/Build.df").unwrap(),
            "FROM scratch\n"
        );
        let err = read_dockerfile(ctx.path(), "Dockerfile").unwrap_err();
        assert_eq!(
            err.to_string(),
            "Cannot locate specified Dockerfile: Dockerfile"
        );
        let err = read_dockerfile(ctx.path(), "../x/Dockerfile").unwrap_err();
        assert!(
            err.to_string().contains("within the build context"),
            "{err}"
        );
    }
}
