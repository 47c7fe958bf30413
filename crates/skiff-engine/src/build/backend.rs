//! The engine side of the build loop ([`skiff_build::exec::Backend`]): base images, the
//! cache index, and each step made with this engine's containers and committed into an
//! image with Docker's history entry.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;

use bollard_stubs::models::{ContainerCreateBody, HostConfig};
use oci_spec::image::Config;
use skiff_build::dockerfile::Heredoc;
use skiff_build::exec::{Backend, Event};
use skiff_build::ignore::IgnoreRules;
use skiff_build::plan::{CopyFrom, Op, PlannedStage, Step};
use skiff_image::registry::{registry_host, Credentials, Platform, Progress, PullOptions};
use skiff_image::{DockerConfig, ImageRef};
use tokio::io::AsyncReadExt;

use super::copy::{self, CopyJob, SourceRoot};
use super::{BuildMessage, Sender};
use crate::containers::rootfs;
use crate::error::{EngineError, IoContext, Result};
use crate::{AttachOptions, Engine, WaitCondition};
use skiff_image::confined::{self, Root};

pub(crate) struct Builder<'a> {
    pub engine: &'a Engine,
    /// The received context.
    pub context: PathBuf,
    /// An empty dir: the "upper dir" of steps that change only the config.
    pub empty: PathBuf,
    pub ignore: IgnoreRules,
    pub tx: &'a Sender,
    pub quiet: bool,
    pub pull: bool,
    /// Base images whose `ONBUILD` triggers ran in this build (not inherited further).
    pub consumed: Vec<String>,
    /// `--network` of `RUN` steps (the engine's default when `None`).
    pub network: Option<String>,
    /// Credentials per registry for pulling base images.
    pub registry_auth: HashMap<String, Credentials>,
}

async fn blocking<T: Send + 'static>(
    what: &'static str,
    f: impl FnOnce() -> Result<T> + Send + 'static,
) -> Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(std::io::Error::other)
        .ctx(|| what.into())?
}

fn short(id: &str) -> &str {
    skiff_core::ids::short_id(id)
}

/// `/a/b` + `c` → `/a/b/c`, lexically cleaned; absolute paths are kept.
fn join_path(base: &str, path: &str) -> String {
    let full = if path.starts_with('/') {
        path.to_string()
    } else {
        format!("{}/{path}", if base.is_empty() { "/" } else { base })
    };
    let mut out: Vec<&str> = Vec::new();
    for c in full.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                out.pop();
            }
            c => out.push(c),
        }
    }
    format!("/{}", out.join("/"))
}

/// The argv of a `RUN` with here-documents: the shell runs the command with the documents
/// after it (so `cat <<EOF > f` works as in a script); a command that is only a
/// here-document runs the document as the script.
fn heredoc_argv(argv: &[String], heredocs: &[Heredoc]) -> Vec<String> {
    let (Some((command, shell)), false) = (argv.split_last(), heredocs.is_empty()) else {
        return argv.to_vec();
    };
    let mut delims = Vec::new();
    let mut rest = command.as_str();
    let mut bare = String::new();
    while let Some(i) = rest.find("<<") {
        bare.push_str(&rest[..i]);
        let after = rest[i + 2..].trim_start_matches('-');
        let quote = after.starts_with(['"', '\'']);
        let word_start = usize::from(quote);
        let word_len = after[word_start..]
            .find(|c: char| !(c.is_alphanumeric() || c == '_'))
            .unwrap_or(after.len() - word_start);
        delims.push(after[word_start..word_start + word_len].to_string());
        rest = &after[(word_start + word_len + usize::from(quote)).min(after.len())..];
    }
    bare.push_str(rest);
    if bare.trim().is_empty() && heredocs.len() == 1 {
        return shell
            .iter()
            .cloned()
            .chain([heredocs[0].body.clone()])
            .collect();
    }
    let mut script = command.clone();
    script.push('\n');
    for (doc, delim) in heredocs.iter().zip(&delims) {
        script.push_str(&doc.body);
        if !doc.body.ends_with('\n') && !doc.body.is_empty() {
            script.push('\n');
        }
        script.push_str(delim);
        script.push('\n');
    }
    shell.iter().cloned().chain([script]).collect()
}

fn set_env(env: &mut Vec<String>, key: &str, value: &str) {
    let prefix = format!("{key}=");
    env.retain(|e| !e.starts_with(&prefix) && e != key);
    env.push(format!("{key}={value}"));
}

fn union(list: &Option<Vec<String>>, add: &[String]) -> Option<Vec<String>> {
    let mut out = list.clone().unwrap_or_default();
    for a in add {
        if !out.contains(a) {
            out.push(a.clone());
        }
    }
    (!out.is_empty()).then_some(out)
}

impl Builder<'_> {
    /// The credentials the client sent for `domain`'s registry (anonymous without).
    fn credentials(&self, domain: &str) -> Credentials {
        self.registry_auth
            .iter()
            .find(|(address, _)| registry_host(address).is_ok_and(|h| h == domain))
            .map(|(_, c)| c.clone())
            .unwrap_or_default()
    }

    /// `image` from the store, pulled first when the store lacks it or `pull` (`--pull`).
    pub(super) async fn image(
        &self,
        image: &str,
        platform: Option<&str>,
        pull: bool,
    ) -> Result<skiff_image::Image> {
        match self.engine.images.get(image) {
            Ok(found) if !pull => return Ok(found),
            Ok(_) | Err(skiff_image::ImageError::NotFound(_)) => {}
            Err(e) => return Err(e.into()),
        }
        let reference = ImageRef::parse(image)
            .map_err(|e| EngineError::invalid(format!("invalid reference {image:?}: {e}")))?;
        let opts = PullOptions {
            credentials: self.credentials(reference.domain()),
            platform: platform.map(Platform::parse).transpose()?,
        };
        // Docker's builder streams the pull's JSON progress messages as they are, so
        // clients draw their bars.
        let sink = |p: Progress| {
            if !self.quiet {
                let _ = self.tx.send(Ok(BuildMessage::Progress(p)));
            }
        };
        self.engine.image_pull(&reference, &opts, &sink).await?;
        Ok(self.engine.images.get(image)?)
    }

    /// The Docker config fields a step on `parent` starts with: the parent's, less the
    /// `ONBUILD` triggers of a base image whose triggers this build ran (Docker does not
    /// pass them on).
    fn inherited(&self, parent: &skiff_image::Image) -> DockerConfig {
        let mut docker = parent.docker.clone();
        if self.consumed.contains(&parent.id) {
            docker.on_build = None;
        }
        docker
    }

    fn say(&self, text: String) {
        if !self.quiet {
            let _ = self.tx.send(Ok(BuildMessage::Stream(text)));
        }
    }

    async fn commit(
        &self,
        parent: &str,
        upper: PathBuf,
        config: Config,
        created_by: String,
        author: Option<String>,
        docker: Option<DockerConfig>,
    ) -> Result<String> {
        let docker = match docker {
            Some(d) => d,
            None => self.inherited(&self.engine.images.get(parent)?),
        };
        let images = self.engine.images.clone();
        let request = skiff_image::Commit {
            parent: parent.to_string(),
            upper,
            config,
            defaults: Config::default(),
            docker,
            changes: Vec::new(),
            created_by,
            author,
            comment: None,
            reference: None,
        };
        blocking("commit a build step", move || Ok(images.commit(&request)?)).await
    }

    /// A build container on `parent` (not started): entrypoint cleared, `cmd` as given.
    async fn container(&self, parent: &str, cmd: Vec<String>, env: Vec<String>) -> Result<String> {
        let body = ContainerCreateBody {
            image: Some(parent.to_string()),
            cmd: Some(cmd),
            entrypoint: Some(vec![String::new()]),
            env: Some(env),
            attach_stdout: Some(true),
            attach_stderr: Some(true),
            host_config: Some(HostConfig {
                network_mode: self.network.clone(),
                ..Default::default()
            }),
            ..Default::default()
        };
        Ok(self.engine.create_container(None, body).await?.0.id)
    }

    async fn remove(&self, id: &str) {
        if let Err(e) = self.engine.do_remove(id, true, true).await {
            tracing::warn!(id, error = %e, "removing a build container");
        }
    }

    /// Runs `f` on the mounted root of the build container `id` (a blocking job).
    async fn with_root<T: Send + 'static>(
        &self,
        id: &str,
        f: impl FnOnce(&Root) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let c = self.engine.find(id)?;
        let path = rootfs::mount(self.engine, &c).await?;
        // The container's own root: a COPY into a VOLUME path lands in the layer, as in
        // Docker's builder.
        let result = blocking("prepare a build step", move || {
            f(&confined::open_root(&path)?)
        })
        .await;
        rootfs::unmount(&c)?;
        result
    }

    async fn run_step(
        &self,
        parent: &str,
        config: &Config,
        argv: &[String],
        env: &[String],
        hidden_env: &[String],
        heredocs: &[Heredoc],
    ) -> Result<String> {
        let argv = heredoc_argv(argv, heredocs);
        let all_env = env.iter().chain(hidden_env).cloned().collect();
        let id = self.container(parent, argv.clone(), all_env).await?;
        self.say(format!(" ---> Running in {}\n", short(&id)));
        let result = self.run_in(&id, parent, config, &argv, env).await;
        self.remove(&id).await;
        if result.is_ok() {
            self.say(format!(
                " ---> Removed intermediate container {}\n",
                short(&id)
            ));
        }
        result
    }

    async fn run_in(
        &self,
        id: &str,
        parent: &str,
        config: &Config,
        argv: &[String],
        env: &[String],
    ) -> Result<String> {
        if let Some(dir) = config.working_dir().clone().filter(|d| !d.is_empty()) {
            self.with_root(id, move |root| copy::mkdir_all(root, &dir))
                .await?;
        }
        let attached = self
            .engine
            .do_attach(
                id,
                AttachOptions {
                    stdout: true,
                    stderr: true,
                    stream: true,
                    ..Default::default()
                },
            )
            .await?;
        let exited = self.engine.do_wait(id, WaitCondition::NextExit).await?;
        self.engine.do_start(id).await?;
        let mut io = attached.io;
        let mut header = [0u8; 8];
        // Docker's framing: [stream, 0, 0, 0, len u32 BE] + payload; ends at the exit.
        while io.read_exact(&mut header).await.is_ok() {
            let len = u32::from_be_bytes([header[4], header[5], header[6], header[7]]) as usize;
            let mut payload = vec![0u8; len];
            if io.read_exact(&mut payload).await.is_err() {
                break;
            }
            self.say(String::from_utf8_lossy(&payload).into_owned());
        }
        let status = exited.await;
        if status.status_code != 0 {
            return Err(EngineError::invalid(format!(
                "The command '{}' returned a non-zero code: {}",
                argv.join(" "),
                status.status_code
            )));
        }
        let upper = self.engine.find(id)?.upper_dir();
        let created_by = if env.is_empty() {
            argv.join(" ")
        } else {
            format!("|{} {} {}", env.len(), env.join(" "), argv.join(" "))
        };
        self.commit(parent, upper, config.clone(), created_by, None, None)
            .await
    }

    /// The root to copy `--from`: the stage's or image's filesystem, mounted read-only
    /// under the build's work dir (unmounted by the guard).
    async fn source_root(&self, image: &str) -> Result<ReadOnlyRoot> {
        let images = self.engine.images.clone();
        let image = image.to_string();
        let lowers = blocking("prepare a source image", move || {
            Ok(images.prepare_rootfs(&image)?)
        })
        .await?;
        let target = self
            .empty
            .with_file_name(format!("from-{}", &skiff_core::ids::random_id()[..12]));
        std::fs::create_dir(&target).ctx(|| format!("create {}", target.display()))?;
        skiff_image::overlay::mount_read_only(&lowers, &target)?;
        Ok(ReadOnlyRoot(target))
    }

    #[allow(clippy::too_many_arguments)]
    async fn copy_step(
        &self,
        step: &Step,
        parent: &str,
        config: &Config,
        stages: &BTreeMap<usize, String>,
    ) -> Result<String> {
        let Op::Copy {
            from,
            sources,
            heredocs,
            dest,
            chown,
            chmod,
            add,
        } = &step.op
        else {
            unreachable!("copy_step is called for COPY and ADD");
        };
        let workdir = config.working_dir().clone().unwrap_or_default();
        let mut dest_abs = join_path(&workdir, dest);
        if (dest.ends_with('/') || dest == "." || dest.ends_with("/.")) && dest_abs != "/" {
            dest_abs.push('/');
        }
        let source: Option<ReadOnlyRoot> = match from {
            CopyFrom::Context => None,
            CopyFrom::Stage(i) => {
                let image = stages.get(i).ok_or_else(|| {
                    EngineError::invalid(format!(
                        "stage {i} was not built before line {}",
                        step.line
                    ))
                })?;
                Some(self.source_root(image).await?)
            }
            CopyFrom::Image(name) => {
                let image = self.image(name, None, false).await?;
                Some(self.source_root(&image.id).await?)
            }
        };
        let keyword = if *add { "ADD" } else { "COPY" };
        let id = self
            .container(
                parent,
                vec!["/bin/sh".into(), "-c".into(), format!("#(nop) {keyword}")],
                Vec::new(),
            )
            .await?;
        let result = async {
            let context = self.context.clone();
            let ignore = self.ignore.clone();
            let from_root = source.as_ref().map(|s| s.0.clone());
            let sources = sources.clone();
            let bodies: Vec<String> = heredocs.iter().map(|h| h.body.clone()).collect();
            let chown = chown.clone();
            let (chmod, add) = (*chmod, *add);
            let dest_abs2 = dest_abs.clone();
            self.with_root(&id, move |root| {
                let from = match &from_root {
                    Some(r) => SourceRoot::Image(r),
                    None => SourceRoot::Context(&context, &ignore),
                };
                copy::copy(
                    &CopyJob {
                        from,
                        sources: &sources,
                        heredocs: &bodies,
                        dest: dest_abs2,
                        chown: chown.as_deref(),
                        chmod,
                        add,
                    },
                    root,
                )
            })
            .await?;
            let upper = self.engine.find(&id)?.upper_dir();
            let what = match from {
                CopyFrom::Context => "file",
                _ => "multi",
            };
            let digest = step.cache_key("", None);
            let hex = digest.trim_start_matches("sha256:");
            // The destination as written, as Docker records it.
            let created_by = format!(
                "{} #(nop) {keyword} {what}:{hex} in {dest} ",
                step.shell.join(" ")
            );
            self.commit(parent, upper, config.clone(), created_by, None, None)
                .await
        }
        .await;
        self.remove(&id).await;
        drop(source);
        result
    }

    async fn workdir_step(
        &self,
        parent: &str,
        config: &Config,
        shell: &[String],
    ) -> Result<String> {
        let dir = config.working_dir().clone().unwrap_or_else(|| "/".into());
        let created_by = format!("{} #(nop) WORKDIR {dir}", shell.join(" "));
        let id = self
            .container(
                parent,
                vec!["/bin/sh".into(), "-c".into(), "#(nop) WORKDIR".into()],
                Vec::new(),
            )
            .await?;
        let result = async {
            self.with_root(&id, move |root| copy::mkdir_all(root, &dir))
                .await?;
            let upper = self.engine.find(&id)?.upper_dir();
            self.commit(parent, upper, config.clone(), created_by, None, None)
                .await
        }
        .await;
        self.remove(&id).await;
        result
    }
}

/// A read-only mount of a `--from` source, unmounted and removed when dropped.
struct ReadOnlyRoot(PathBuf);

impl Drop for ReadOnlyRoot {
    fn drop(&mut self) {
        if let Err(e) = skiff_image::overlay::unmount(&self.0) {
            tracing::warn!(dir = %self.0.display(), error = %e, "unmounting a build source");
        }
        let _ = std::fs::remove_dir(&self.0);
    }
}

/// The image config after a config-only step (`None` for steps that make a container).
fn apply(config: &Config, stage: &PlannedStage, step: &Step) -> Config {
    let mut c = config.clone();
    match &step.op {
        Op::Env(pairs) => {
            let mut env = c.env().clone().unwrap_or_default();
            for (k, v) in pairs {
                set_env(&mut env, k, v);
            }
            c.set_env(Some(env));
        }
        Op::Label(pairs) => {
            let mut labels: HashMap<String, String> = c.labels().clone().unwrap_or_default();
            labels.extend(pairs.iter().cloned());
            c.set_labels(Some(labels));
        }
        Op::Workdir(d) => {
            let current = c.working_dir().clone().unwrap_or_default();
            c.set_working_dir(Some(join_path(&current, d)));
        }
        Op::User(u) => {
            c.set_user(Some(u.clone()).filter(|u| !u.is_empty()));
        }
        Op::Cmd(cmd) => {
            c.set_cmd(Some(cmd.clone()));
        }
        Op::Entrypoint(ep) => {
            c.set_entrypoint(Some(ep.clone()).filter(|e| !e.is_empty()));
            // An ENTRYPOINT drops a CMD inherited from the base, as Docker does.
            let cmd_set_here = stage
                .steps
                .iter()
                .take_while(|s| !std::ptr::eq(*s, step))
                .any(|s| matches!(s.op, Op::Cmd(_)));
            if !cmd_set_here {
                c.set_cmd(None);
            }
        }
        Op::Expose(ports) => {
            let merged = union(c.exposed_ports(), ports);
            c.set_exposed_ports(merged);
        }
        Op::Volume(vols) => {
            let merged = union(c.volumes(), vols);
            c.set_volumes(merged);
        }
        Op::StopSignal(s) => {
            c.set_stop_signal(Some(s.clone()));
        }
        // Docker's own fields: see `apply_docker`.
        Op::Healthcheck(_)
        | Op::Shell(_)
        | Op::Onbuild(_)
        | Op::Maintainer(_)
        | Op::Arg(_)
        | Op::Run { .. }
        | Op::Copy { .. } => {}
    }
    c
}

/// The Docker config fields after a config-only step (`HEALTHCHECK`, `SHELL`, `ONBUILD`).
fn apply_docker(mut docker: DockerConfig, step: &Step) -> DockerConfig {
    match &step.op {
        Op::Healthcheck(h) => {
            let n = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
            docker.healthcheck = Some(skiff_image::HealthConfig {
                test: h.test.clone(),
                interval: n(h.interval),
                timeout: n(h.timeout),
                start_period: n(h.start_period),
                start_interval: n(h.start_interval),
                retries: i64::from(h.retries),
            });
        }
        Op::Shell(s) => docker.shell = Some(s.clone()),
        Op::Onbuild(t) => docker.on_build.get_or_insert_with(Vec::new).push(t.clone()),
        _ => {}
    }
    docker
}

impl Backend for Builder<'_> {
    type Error = EngineError;

    async fn base_image(&self, image: &str, platform: Option<&str>) -> Result<String> {
        let platform = platform.filter(|p| !p.is_empty());
        let found = self.image(image, platform, self.pull).await?;
        if let Some(p) = platform {
            let have = format!("{}/{}", found.config.os(), found.config.architecture());
            if !p.eq_ignore_ascii_case(&have) {
                return Err(EngineError::invalid(format!(
                    "image with reference {image} was found but its platform ({have}) does not match the specified platform ({p})"
                )));
            }
        }
        Ok(found.id)
    }

    async fn scratch(&self) -> Result<String> {
        let images = self.engine.images.clone();
        let id = blocking("make the scratch image", move || Ok(images.scratch()?)).await?;
        self.engine.build.cache.hide(&id);
        Ok(id)
    }

    async fn context_sources(&self, step: &Step) -> Result<String> {
        let Op::Copy { sources, .. } = &step.op else {
            return Ok(String::new());
        };
        let (root, sources, ignore) = (self.context.clone(), sources.clone(), self.ignore.clone());
        blocking("hash the build context", move || {
            Ok(skiff_build::context::hash_sources(&root, &sources, &ignore)?.digest)
        })
        .await
    }

    fn cached(&self, key: &str) -> Option<String> {
        self.engine
            .build
            .cache
            .get(key)
            .filter(|id| self.engine.images.get(id).is_ok())
    }

    async fn run(
        &self,
        stage: &PlannedStage,
        step: &Step,
        parent: &str,
        key: &str,
        stages: &BTreeMap<usize, String>,
    ) -> Result<String> {
        let image = self.engine.images.get(parent)?;
        let mut config = image.config.config().clone().unwrap_or_default();
        // Docker's builder gives a stage whose base sets no PATH the default one.
        let env = config.env().clone().unwrap_or_default();
        if !env.iter().any(|e| e.starts_with("PATH=")) {
            let mut env = env;
            set_env(&mut env, "PATH", skiff_runtime::spec::DEFAULT_PATH);
            config.set_env(Some(env));
        }
        let text = &step.text;
        let image = match &step.op {
            Op::Run {
                argv,
                env,
                heredocs,
            } => {
                self.run_step(parent, &config, argv, env, &step.hidden_env, heredocs)
                    .await
            }
            Op::Copy { .. } => self.copy_step(step, parent, &config, stages).await,
            Op::Workdir(_) => {
                let config = apply(&config, stage, step);
                self.workdir_step(parent, &config, &step.shell).await
            }
            op => {
                let config = apply(&config, stage, step);
                let docker = apply_docker(self.inherited(&image), step);
                let author = match op {
                    Op::Maintainer(m) => Some(m.clone()),
                    _ => image.config.author().clone(),
                };
                let comment = step.nop_comment.as_deref().unwrap_or(text);
                self.commit(
                    parent,
                    self.empty.clone(),
                    config,
                    format!("{} #(nop)  {comment}", step.shell.join(" ")),
                    author,
                    Some(docker),
                )
                .await
            }
        }
        .map_err(|e| match e {
            EngineError::InvalidArgument(m) if matches!(step.op, Op::Run { .. }) => {
                EngineError::invalid(format!("{m} (Dockerfile line {}: {text})", step.line))
            }
            e => e,
        })?;
        self.engine.build.cache.put(key, &image, parent)?;
        Ok(image)
    }

    fn event(&self, event: Event) {
        self.say(match event {
            Event::Step {
                number,
                total,
                text,
            } => format!("Step {number}/{total} : {text}\n"),
            Event::Cached => " ---> Using cache\n".to_string(),
            Event::Image { id } => format!(" ---> {}\n", short(&id)),
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn heredocs_become_scripts() {
        let doc = |b: &str| Heredoc {
            body: b.into(),
            expand: true,
        };
        assert_eq!(
            heredoc_argv(&s(&["/bin/sh", "-c", "<<EOF"]), &[doc("echo a\necho b\n")]),
            s(&["/bin/sh", "-c", "echo a\necho b\n"])
        );
        assert_eq!(
            heredoc_argv(&s(&["/bin/sh", "-c", "cat <<'EOT' > /f"]), &[doc("x $y\n")]),
            s(&["/bin/sh", "-c", "cat <<'EOT' > /f\nx $y\nEOT\n"])
        );
        assert_eq!(
            heredoc_argv(&s(&["/bin/sh", "-c", "echo hi"]), &[]),
            s(&["/bin/sh", "-c", "echo hi"])
        );
    }

    #[test]
    fn workdirs_join_like_docker() {
        assert_eq!(join_path("", "app"), "/app");
        assert_eq!(join_path("/app", "sub/../x"), "/app/x");
        assert_eq!(join_path("/app", "/abs"), "/abs");
        assert_eq!(join_path("/", "."), "/");
    }
}
