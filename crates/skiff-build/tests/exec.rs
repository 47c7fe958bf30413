//! The build loop over a plan with an in-memory backend: what runs, what is reused from
//! the cache, what a changed source busts, and that independent stages run concurrently.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use std::time::Duration;

use futures::channel::oneshot;
use skiff_build::dockerfile::parse;
use skiff_build::exec::{execute, Backend, Event, ExecOptions};
use skiff_build::plan::{plan, BuildOptions, BuildPlan, Op, PlannedStage, Step};
use skiff_build::BuildError;

/// Images are names; the cache is a map; a "run" records which line ran.
#[derive(Default)]
struct Mem {
    cache: Mutex<HashMap<String, String>>,
    runs: Mutex<Vec<usize>>,
    events: Mutex<Vec<Event>>,
    /// Digest of the context sources, by the COPY's first source.
    sources: Mutex<HashMap<String, String>>,
    fail_line: Option<usize>,
    /// For the concurrency test: `RUN wait` waits for `RUN signal` of another stage.
    signal: Mutex<Option<oneshot::Sender<()>>>,
    wait: Mutex<Option<oneshot::Receiver<()>>>,
}

impl Backend for Mem {
    type Error = BuildError;

    async fn base_image(&self, image: &str, _platform: Option<&str>) -> Result<String, BuildError> {
        Ok(format!("base:{image}"))
    }

    async fn scratch(&self) -> Result<String, BuildError> {
        Ok("scratch".into())
    }

    async fn context_sources(&self, step: &Step) -> Result<String, BuildError> {
        let Op::Copy { sources, .. } = &step.op else {
            unreachable!()
        };
        Ok(self
            .sources
            .lock()
            .unwrap()
            .get(&sources[0])
            .cloned()
            .unwrap_or_else(|| "sha256:initial".into()))
    }

    fn cached(&self, key: &str) -> Option<String> {
        self.cache.lock().unwrap().get(key).cloned()
    }

    async fn run(
        &self,
        _stage: &PlannedStage,
        step: &Step,
        _parent: &str,
        key: &str,
        _stages: &BTreeMap<usize, String>,
    ) -> Result<String, BuildError> {
        if Some(step.line) == self.fail_line {
            return Err(BuildError::Invalid(format!(
                "The command '{}' returned a non-zero code: 1",
                step.text
            )));
        }
        if step.text == "RUN wait" {
            let rx = self.wait.lock().unwrap().take().unwrap();
            rx.await.unwrap();
        }
        if step.text == "RUN signal" {
            let tx = self.signal.lock().unwrap().take().unwrap();
            tx.send(()).unwrap();
        }
        let id = format!("img-{}", &key[7..19]);
        self.cache.lock().unwrap().insert(key.into(), id.clone());
        self.runs.lock().unwrap().push(step.line);
        Ok(id)
    }

    fn event(&self, event: Event) {
        self.events.lock().unwrap().push(event);
    }
}

impl Mem {
    fn take_runs(&self) -> Vec<usize> {
        std::mem::take(&mut *self.runs.lock().unwrap())
    }
}

const DOCKERFILE: &str = "\
FROM busybox AS deps
RUN echo deps
FROM busybox AS app
COPY src /src
RUN build /src
COPY conf /conf
FROM scratch
COPY --from=deps /deps /deps
COPY --from=app /out /out
";

fn planned(text: &str) -> BuildPlan {
    plan(&parse(text).unwrap(), &BuildOptions::default()).unwrap()
}

async fn build(p: &BuildPlan, backend: &Mem, no_cache: bool) -> String {
    tokio::time::timeout(
        Duration::from_secs(10),
        execute(p, backend, ExecOptions { no_cache }),
    )
    .await
    .expect("the build finished")
    .unwrap()
}

#[tokio::test]
async fn second_build_is_all_cache_and_a_changed_source_busts_only_what_follows() {
    let p = planned(DOCKERFILE);
    let mem = Mem::default();
    let first = build(&p, &mem, false).await;
    let mut ran = mem.take_runs();
    ran.sort();
    assert_eq!(ran, [2, 4, 5, 6, 8, 9]);

    let again = build(&p, &mem, false).await;
    assert_eq!(again, first);
    assert!(mem.take_runs().is_empty(), "a rebuild reuses every step");
    let cached = mem
        .events
        .lock()
        .unwrap()
        .iter()
        .filter(|e| **e == Event::Cached)
        .count();
    assert_eq!(
        cached, 6,
        "all 6 steps came from the cache in the second build"
    );

    // Changing the sources of `COPY src` rebuilds it, the steps after it in its stage and
    // the final stage's copy from it, and nothing of the `deps` stage.
    mem.sources
        .lock()
        .unwrap()
        .insert("src".into(), "sha256:changed".into());
    let changed = build(&p, &mem, false).await;
    assert_ne!(changed, first);
    let mut ran = mem.take_runs();
    ran.sort();
    assert_eq!(ran, [4, 5, 6, 9]);

    // --no-cache runs everything.
    build(&p, &mem, true).await;
    assert_eq!(mem.take_runs().len(), 6);
}

#[tokio::test]
async fn steps_are_numbered_like_docker_build() {
    let p = planned("FROM busybox\nRUN a\nRUN b\n");
    let mem = Mem::default();
    build(&p, &mem, false).await;
    let events = mem.events.lock().unwrap().clone();
    assert_eq!(
        events[0],
        Event::Step {
            number: 1,
            total: 3,
            text: "FROM busybox".into()
        }
    );
    assert_eq!(
        events[1],
        Event::Image {
            id: "base:busybox".into()
        }
    );
    assert_eq!(
        events[2],
        Event::Step {
            number: 2,
            total: 3,
            text: "RUN a".into()
        }
    );
    assert!(matches!(&events[5], Event::Image { .. }));
}

#[tokio::test]
async fn a_failing_step_stops_the_build() {
    let p = planned("FROM busybox\nRUN true\nRUN false\nRUN never\n");
    let mem = Mem {
        fail_line: Some(3),
        ..Default::default()
    };
    let err = execute(&p, &mem, ExecOptions::default()).await.unwrap_err();
    assert_eq!(
        err.to_string(),
        "The command 'RUN false' returned a non-zero code: 1"
    );
    assert_eq!(mem.take_runs(), [2], "nothing after the failed step ran");
}

#[tokio::test]
async fn independent_stages_run_concurrently() {
    // Stage `a` cannot finish before stage `b` has run a step: a build that ran the
    // stages of one wave one after the other would never finish.
    let p = planned(
        "FROM busybox AS a\nRUN wait\nFROM busybox AS b\nRUN signal\nFROM scratch\nCOPY --from=a /a /a\nCOPY --from=b /b /b\n",
    );
    assert_eq!(p.waves[0], [0, 1]);
    let (tx, rx) = oneshot::channel();
    let mem = Mem {
        signal: Mutex::new(Some(tx)),
        wait: Mutex::new(Some(rx)),
        ..Default::default()
    };
    build(&p, &mem, false).await;
    let mut ran = mem.take_runs();
    ran.sort();
    assert_eq!(ran, [2, 4, 6, 7]);
}
