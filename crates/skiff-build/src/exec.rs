//! The build loop over a [`BuildPlan`], generic over the [`Backend`] that runs steps (the
//! engine: RUN steps as containers, COPY/ADD into a container's upper dir, commits into
//! images). The loop owns the order, the parallelism of independent stages and the cache
//! decisions; the backend owns images, containers and the cache's storage.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Mutex;

use crate::error::BuildError;
use crate::plan::{Base, BuildPlan, CopyFrom, Op, PlannedStage, Step};

/// What the loop reports, in the order `docker build` prints it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// `Step N/M : TEXT` (the `FROM` of each stage counts as a step).
    Step {
        number: usize,
        total: usize,
        text: String,
    },
    /// ` ---> Using cache`.
    Cached,
    /// ` ---> ID` after a step (or the base image after `FROM`).
    Image { id: String },
}

/// The engine side of a build.
pub trait Backend: Sync {
    type Error: From<BuildError> + Send;

    /// The id of `image` (pulling it when the store lacks it or `--pull` was given).
    fn base_image(
        &self,
        image: &str,
        platform: Option<&str>,
    ) -> impl Future<Output = Result<String, Self::Error>> + Send;

    /// The id of the empty image `FROM scratch` starts from.
    fn scratch(&self) -> impl Future<Output = Result<String, Self::Error>> + Send;

    /// The digest of what a context `COPY`/`ADD` copies ([`crate::context::hash_sources`]).
    fn context_sources(
        &self,
        step: &Step,
    ) -> impl Future<Output = Result<String, Self::Error>> + Send;

    /// The image recorded under a cache key, if any.
    fn cached(&self, key: &str) -> Option<String>;

    /// Runs `step` on `parent` and returns the resulting image, recorded under `key`.
    /// `stages` holds the images of the stages built so far (for `COPY --from`).
    fn run(
        &self,
        stage: &PlannedStage,
        step: &Step,
        parent: &str,
        key: &str,
        stages: &BTreeMap<usize, String>,
    ) -> impl Future<Output = Result<String, Self::Error>> + Send;

    /// Progress for the client.
    fn event(&self, event: Event);
}

/// Switches of one build.
#[derive(Debug, Clone, Copy, Default)]
pub struct ExecOptions {
    /// `--no-cache`: run every step (results are still recorded).
    pub no_cache: bool,
}

/// Builds the plan's target and returns its image id. Stages of one wave run concurrently;
/// the first error stops the build.
pub async fn execute<B: Backend>(
    plan: &BuildPlan,
    backend: &B,
    opts: ExecOptions,
) -> Result<String, B::Error> {
    // Step numbers follow the plan's order, whatever order stages finish in.
    let mut first_step = BTreeMap::new();
    let mut n = 1;
    for stage in &plan.stages {
        first_step.insert(stage.index, n);
        n += stage.steps.len() + 1;
    }
    let built: Mutex<BTreeMap<usize, String>> = Mutex::new(BTreeMap::new());
    for wave in &plan.waves {
        let runs = wave.iter().map(|&index| {
            let stage = plan.stage(index).expect("waves list planned stages");
            let built = &built;
            let first = first_step[&index];
            async move {
                let image = build_stage(plan, stage, backend, opts, first, built).await?;
                built
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .insert(index, image);
                Ok::<(), B::Error>(())
            }
        });
        futures::future::try_join_all(runs).await?;
    }
    let built = built.into_inner().unwrap_or_else(|e| e.into_inner());
    Ok(built[&plan.target].clone())
}

async fn build_stage<B: Backend>(
    plan: &BuildPlan,
    stage: &PlannedStage,
    backend: &B,
    opts: ExecOptions,
    first: usize,
    built: &Mutex<BTreeMap<usize, String>>,
) -> Result<String, B::Error> {
    let total = plan.total_steps;
    let from_text = format!(
        "FROM {}",
        match &stage.base {
            Base::Scratch => "scratch".to_string(),
            Base::Image(i) => i.clone(),
            Base::Stage(i) => plan
                .stage(*i)
                .and_then(|s| s.name.clone())
                .unwrap_or_else(|| i.to_string()),
        }
    );
    backend.event(Event::Step {
        number: first,
        total,
        text: from_text,
    });
    let earlier = || built.lock().unwrap_or_else(|e| e.into_inner()).clone();
    let mut parent = match &stage.base {
        Base::Scratch => backend.scratch().await?,
        Base::Image(image) => backend.base_image(image, stage.platform.as_deref()).await?,
        Base::Stage(i) => earlier().get(i).cloned().ok_or_else(|| {
            BuildError::Invalid(format!(
                "stage {i} was not built before stage {}",
                stage.index
            ))
        })?,
    };
    backend.event(Event::Image { id: parent.clone() });
    for (offset, step) in stage.steps.iter().enumerate() {
        backend.event(Event::Step {
            number: first + 1 + offset,
            total,
            text: step.text.clone(),
        });
        let stages = earlier();
        let sources = match &step.op {
            Op::Copy {
                from: CopyFrom::Context,
                ..
            } if step.reads_context() => Some(backend.context_sources(step).await?),
            Op::Copy {
                from: CopyFrom::Stage(i),
                ..
            } => Some(stages.get(i).cloned().ok_or_else(|| {
                BuildError::Invalid(format!("stage {i} was not built before line {}", step.line))
            })?),
            _ => None,
        };
        let key = step.cache_key(&parent, sources.as_deref());
        let cached = if opts.no_cache {
            None
        } else {
            backend.cached(&key)
        };
        parent = match cached {
            Some(image) => {
                backend.event(Event::Cached);
                image
            }
            None => backend.run(stage, step, &parent, &key, &stages).await?,
        };
        backend.event(Event::Image { id: parent.clone() });
    }
    Ok(parent)
}
