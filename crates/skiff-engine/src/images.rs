//! The image endpoints, delegated to [`skiff_image::ImageStore`] (blocking calls run on
//! blocking threads); "in use" means some container was created from the image.

use std::collections::HashMap;

use bollard_stubs::models::{
    DriverData, EventMessageTypeEnum, ImageConfig, ImageDeleteResponseItem,
    ImageHistoryResponseItem, ImageInspect, ImageInspectRootFs, ImagePruneResponse, ImageSummary,
};
use skiff_image::{Image, Removed};

use crate::error::{EngineError, IoContext, Result};
use crate::filters::Filters;
use crate::{ByteStream, Engine};

fn created_unix(image: &Image) -> i64 {
    image
        .created
        .as_deref()
        .and_then(|c| chrono::DateTime::parse_from_rfc3339(c).ok())
        .map(|t| t.timestamp())
        .unwrap_or(0)
}

fn labels(image: &Image) -> HashMap<String, String> {
    image
        .config
        .config()
        .as_ref()
        .and_then(|c| c.labels().clone())
        .unwrap_or_default()
}

/// Docker's `reference` filter: `*` matches within a path component.
fn glob(pattern: &str, text: &str) -> bool {
    fn go(p: &[u8], t: &[u8]) -> bool {
        match (p.first(), t.first()) {
            (None, None) => true,
            (Some(b'*'), _) => go(&p[1..], t) || (!t.is_empty() && t[0] != b'/' && go(p, &t[1..])),
            (Some(a), Some(b)) if a == b => go(&p[1..], &t[1..]),
            _ => false,
        }
    }
    go(pattern.as_bytes(), text.as_bytes())
}

/// Whether one of the image's names (`busybox:latest`, `busybox@sha256:…`) matches a
/// `reference` pattern. Like moby's image list, the pattern is tried against the familiar and
/// the fully qualified forms, with and without the tag.
fn reference_matches(pattern: &str, name: &str) -> bool {
    let Ok(r) = skiff_image::ImageRef::parse(name) else {
        return glob(pattern, name);
    };
    let familiar = r.familiar_repository();
    let full = format!("{}/{}", r.domain(), r.path());
    let tagged = match (r.digest(), r.tag()) {
        (Some(digest), _) => format!("{full}@{digest}"),
        (None, tag) => format!("{full}:{}", tag.unwrap_or("latest")),
    };
    [name, familiar.as_str(), tagged.as_str(), full.as_str()]
        .iter()
        .any(|target| glob(pattern, target))
}

/// The names among `names` that one of `patterns` matches; all of them without patterns.
fn matching_names(patterns: &[String], names: &[String]) -> Vec<String> {
    names
        .iter()
        .filter(|n| patterns.is_empty() || patterns.iter().any(|p| reference_matches(p, n)))
        .cloned()
        .collect()
}

fn delete_items(removed: Vec<Removed>) -> Vec<ImageDeleteResponseItem> {
    removed
        .into_iter()
        .map(|r| match r {
            Removed::Untagged(n) => ImageDeleteResponseItem {
                untagged: Some(n),
                deleted: None,
            },
            Removed::Deleted(id) => ImageDeleteResponseItem {
                untagged: None,
                deleted: Some(id),
            },
        })
        .collect()
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T> + Send + 'static) -> Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(std::io::Error::other)
        .ctx(|| "image store task".into())?
}

impl Engine {
    fn image_in_use(&self) -> impl Fn(&str) -> bool {
        let users = self.image_user();
        move |id: &str| users(id).is_some()
    }

    /// A container using an image, a running one first (what `docker rmi` names).
    fn image_user(&self) -> impl Fn(&str) -> Option<skiff_image::ImageUser> {
        let used: Vec<(String, skiff_image::ImageUser)> = self
            .all_containers()
            .iter()
            .map(|c| {
                let rec = c.rec();
                let user = skiff_image::ImageUser {
                    container: c.id.clone(),
                    // Docker's `IsRunning`: paused and restarting containers count too.
                    running: rec.state.status.is_alive()
                        || rec.state.status == crate::store::Status::Restarting,
                };
                (rec.image_id, user)
            })
            .collect();
        move |id: &str| {
            let mut mine = used.iter().filter(|(image, _)| image == id);
            let first = mine.clone().next();
            mine.find(|(_, u)| u.running)
                .or(first)
                .map(|(_, u)| u.clone())
        }
    }

    pub(crate) fn emit_image(&self, action: &str, id: &str, name: Option<&str>) {
        let mut attrs = HashMap::new();
        if let Some(n) = name {
            attrs.insert("name".to_string(), n.to_string());
        }
        self.events
            .emit(EventMessageTypeEnum::IMAGE, action, id, attrs);
    }

    fn emit_removed(&self, removed: &[Removed]) {
        for r in removed {
            match r {
                Removed::Untagged(n) => self.emit_image("untag", n, Some(n)),
                Removed::Deleted(id) => self.emit_image("delete", id, None),
            }
        }
    }

    pub(crate) async fn do_image_list(
        &self,
        all: bool,
        filters: &Filters,
    ) -> Result<Vec<ImageSummary>> {
        filters.validate(&["dangling", "label", "reference", "before", "since", "until"])?;
        let dangling_filter = filters
            .get("dangling")
            .first()
            .map(|_| filters.bool_or("dangling", false))
            .transpose()?;
        let images = self.images.clone();
        let list = blocking(move || Ok(images.list()?)).await?;
        let created_of = |key: &str| -> Result<i64> { Ok(created_unix(&self.images.get(key)?)) };
        let before = filters
            .get("before")
            .first()
            .map(|k| created_of(k))
            .transpose()?;
        let since = filters
            .get("since")
            .first()
            .map(|k| created_of(k))
            .transpose()?;
        // Current moby lists the images created before `until` (20.10 refused the filter).
        let until = filters
            .get("until")
            .iter()
            .map(|u| {
                crate::containers::query::parse_until(u)
                    .map(|t| t.timestamp())
                    .map_err(|e| {
                        EngineError::invalid(format!("invalid value for 'until' filter: {e}"))
                    })
            })
            .collect::<Result<Vec<i64>>>()?
            .into_iter()
            .min();
        let used: Vec<String> = self
            .all_containers()
            .iter()
            .map(|c| c.rec().image_id)
            .collect();
        let mut out = Vec::new();
        for image in list {
            let created = created_unix(&image);
            let labels = labels(&image);
            let dangling = image.repo_tags.is_empty();
            // Like dockerd: intermediate images of builds only with `-a`.
            if dangling && !all && self.build.cache.is_parent(&image.id) {
                continue;
            }
            // Like moby, a `reference` filter also narrows the names shown: `docker images
            // busybox` lists busybox's tags, not the other tags of the same image.
            let patterns = filters.get("reference");
            let repo_tags = matching_names(patterns, &image.repo_tags);
            let repo_digests = matching_names(patterns, &image.repo_digests);
            let keep = dangling_filter.is_none_or(|d| d == dangling)
                && filters.labels_match("label", &labels)
                && (patterns.is_empty() || !repo_tags.is_empty() || !repo_digests.is_empty())
                && before.is_none_or(|b| created < b)
                && until.is_none_or(|u| created < u)
                && since.is_none_or(|s| created > s);
            if !keep {
                continue;
            }
            out.push(ImageSummary {
                id: image.id.clone(),
                parent_id: String::new(),
                repo_tags,
                repo_digests,
                created,
                size: image.size as i64,
                shared_size: -1,
                labels,
                containers: used.iter().filter(|u| **u == image.id).count() as i64,
                manifests: None,
                descriptor: None,
            });
        }
        Ok(out)
    }

    pub(crate) async fn do_image_inspect(&self, name: &str) -> Result<ImageInspect> {
        let images = self.images.clone();
        let name = name.to_string();
        let image = blocking(move || Ok(images.get_sized(&name)?)).await?;
        let cfg = image.config.config().clone().unwrap_or_default();
        let config = ImageConfig {
            user: Some(cfg.user().clone().unwrap_or_default()),
            exposed_ports: cfg.exposed_ports().clone(),
            env: cfg.env().clone(),
            cmd: cfg.cmd().clone(),
            volumes: cfg.volumes().clone(),
            working_dir: Some(cfg.working_dir().clone().unwrap_or_default()),
            entrypoint: cfg.entrypoint().clone(),
            labels: cfg.labels().clone(),
            stop_signal: cfg.stop_signal().clone(),
            healthcheck: image
                .docker
                .healthcheck
                .as_ref()
                .map(crate::containers::health::from_image),
            args_escaped: image.docker.args_escaped,
            on_build: image.docker.on_build.clone(),
            shell: image.docker.shell.clone(),
        };
        Ok(ImageInspect {
            id: Some(image.id.clone()),
            repo_tags: Some(image.repo_tags.clone()),
            repo_digests: Some(image.repo_digests.clone()),
            // moby: the newest history entry's comment (`commit -m`, `import -m`).
            comment: Some(
                image
                    .config
                    .history()
                    .as_ref()
                    .and_then(|h| h.last())
                    .and_then(|h| h.comment().clone())
                    .unwrap_or_default(),
            ),
            created: image.created.clone(),
            author: Some(image.config.author().clone().unwrap_or_default()),
            config: Some(config),
            architecture: Some(image.config.architecture().to_string()),
            variant: image.config.variant().clone(),
            os: Some(image.config.os().to_string()),
            size: Some(image.size as i64),
            graph_driver: Some(DriverData {
                name: "overlay2".into(),
                data: HashMap::new(),
            }),
            root_fs: Some(ImageInspectRootFs {
                typ: "layers".into(),
                layers: Some(image.diff_ids.clone()),
            }),
            ..Default::default()
        })
    }

    pub(crate) async fn do_image_history(
        &self,
        name: &str,
    ) -> Result<Vec<ImageHistoryResponseItem>> {
        let image = self.images.get(name)?;
        let sizes = self.layer_sizes(&image.id).await?;
        let total: u64 = sizes.iter().sum();
        let mut layer_sizes = sizes.into_iter();
        let history = image.config.history().clone().unwrap_or_default();
        let n = history.len();
        let mut out: Vec<ImageHistoryResponseItem> = history
            .into_iter()
            .enumerate()
            .map(|(i, h)| ImageHistoryResponseItem {
                size: if h.empty_layer().unwrap_or(false) {
                    0
                } else {
                    layer_sizes.next().unwrap_or(0) as i64
                },
                id: if i + 1 == n {
                    image.id.clone()
                } else {
                    "<missing>".into()
                },
                created: h
                    .created()
                    .as_deref()
                    .and_then(|c| chrono::DateTime::parse_from_rfc3339(c).ok())
                    .map(|t| t.timestamp())
                    .unwrap_or(0),
                created_by: h.created_by().clone().unwrap_or_default(),
                tags: if i + 1 == n {
                    image.repo_tags.clone()
                } else {
                    Vec::new()
                },
                comment: h.comment().clone().unwrap_or_default(),
            })
            .collect();
        if out.is_empty() {
            out.push(ImageHistoryResponseItem {
                id: image.id.clone(),
                created: created_unix(&image),
                created_by: String::new(),
                tags: image.repo_tags.clone(),
                size: total as i64,
                comment: String::new(),
            });
        }
        out.reverse();
        Ok(out)
    }

    /// The unpacked size of each layer of an image, bottom-most first (what `docker history`
    /// shows), counted from the layer's blob once if it was never unpacked.
    pub(crate) async fn layer_sizes(&self, image_id: &str) -> Result<Vec<u64>> {
        let images = self.images.clone();
        let id = image_id.to_string();
        blocking(move || Ok(images.layer_sizes(&id)?)).await
    }

    pub(crate) async fn do_image_load(&self, archive: ByteStream) -> Result<Vec<String>> {
        let images = self.images.clone();
        let reader = crate::blocking_reader(archive);
        let names = blocking(move || Ok(images.load(reader)?)).await;
        crate::release_freed_memory();
        let names = names?;
        for n in &names {
            self.emit_image("load", n, Some(n));
        }
        Ok(names)
    }

    pub(crate) async fn do_image_save(&self, names: &[String]) -> Result<ByteStream> {
        if names.is_empty() {
            return Err(EngineError::invalid("no images specified"));
        }
        for n in names {
            self.images.get(n)?;
        }
        let images = self.images.clone();
        let names = names.to_vec();
        Ok(crate::blocking_writer(move |writer| {
            images.save(&names, writer).map_err(|e| {
                tracing::warn!(error = %e, "image save failed");
                std::io::Error::other(e)
            })
        }))
    }

    pub(crate) async fn do_image_import(
        &self,
        rootfs_tar: ByteStream,
        reference: Option<&str>,
        changes: &[String],
        message: Option<&str>,
    ) -> Result<String> {
        let images = self.images.clone();
        let reader = crate::blocking_reader(rootfs_tar);
        let (reference, changes, message) = (
            reference.map(str::to_string),
            changes.to_vec(),
            message.map(str::to_string),
        );
        let id = blocking(move || {
            Ok(images.import(reader, reference.as_deref(), &changes, message.as_deref())?)
        })
        .await;
        crate::release_freed_memory();
        let id = id?;
        self.emit_image("import", &id, None);
        Ok(id)
    }

    pub(crate) async fn do_image_tag(
        &self,
        source: &str,
        repo: &str,
        tag: Option<&str>,
    ) -> Result<()> {
        let target = format!(
            "{repo}:{}",
            tag.filter(|t| !t.is_empty()).unwrap_or("latest")
        );
        let id = self.images.get(source)?.id;
        self.images.tag(source, &target)?;
        // Named in its familiar form (`web:1`, not `docker.io/library/web:1`), as moby does.
        let familiar = skiff_image::Reference::parse(&target).map_or(target, |r| r.to_string());
        self.emit_image("tag", &id, Some(&familiar));
        Ok(())
    }

    /// `docker rmi`: the image, then (unless `no_prune`) its build parents left without a name,
    /// a container or another child, as moby prunes an image's untagged parents.
    pub(crate) async fn do_image_remove(
        &self,
        name: &str,
        force: bool,
        no_prune: bool,
    ) -> Result<Vec<ImageDeleteResponseItem>> {
        let user = self.image_user();
        let mut removed = self.images.remove(name, force, &user)?;
        let mut deleted: Vec<String> = removed
            .iter()
            .filter_map(|r| match r {
                skiff_image::Removed::Deleted(id) => Some(id.clone()),
                _ => None,
            })
            .collect();
        while let Some(gone) = deleted.pop().filter(|_| !no_prune) {
            let Some(parent) = self.build.cache.parent_of(&gone) else {
                continue;
            };
            let Ok(image) = self.images.get(&parent) else {
                continue;
            };
            let nameless = image.repo_tags.is_empty() && image.repo_digests.is_empty();
            let childless = self
                .build
                .cache
                .children_of(&parent)
                .iter()
                .all(|child| child == &gone || self.images.get(child).is_err());
            if nameless && childless && user(&parent).is_none() {
                if let Ok(more) = self.images.remove(&parent, false, &user) {
                    deleted.push(parent);
                    removed.extend(more);
                }
            }
        }
        self.emit_removed(&removed);
        Ok(delete_items(removed))
    }

    pub(crate) async fn do_image_prune(&self, filters: &Filters) -> Result<ImagePruneResponse> {
        filters.validate(&["dangling", "until", "label", "label!"])?;
        let all = !filters.bool_or("dangling", true)?;
        let until = match filters.get("until") {
            [] => None,
            [u] => Some(crate::containers::query::parse_until(u)?.timestamp()),
            _ => return Err(EngineError::invalid("more than one until filter specified")),
        };
        // The images the filters select; one added after this list is not, so it is spared.
        let images = self.images.clone();
        let selected: std::collections::HashSet<String> =
            blocking(move || Ok(images.list_unsized()))
                .await?
                .into_iter()
                .filter(|image| until.is_none_or(|u| created_unix(image) <= u))
                .filter(|image| filters.prune_labels_match(&labels(image)))
                .map(|image| image.id)
                .collect();
        let in_use = self.image_in_use();
        let spared = |id: &str| !selected.contains(id) || in_use(id);
        let (removed, reclaimed) = self.images.prune(all, &spared)?;
        self.emit_removed(&removed);
        Ok(ImagePruneResponse {
            images_deleted: Some(delete_items(removed)),
            space_reclaimed: Some(reclaimed as i64),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reference_filter_globs_like_docker() {
        let tags = vec![
            "busybox:latest".to_string(),
            "localhost:5000/app/web:1".to_string(),
        ];
        let any = |p: &str| !matching_names(&[p.to_string()], &tags).is_empty();
        assert!(any("busybox"));
        assert!(any("busy*"));
        assert!(any("busybox:lat*"));
        assert!(any("docker.io/library/busybox"));
        assert!(any("docker.io/library/busybox:latest"));
        assert!(!any("alpine"));
        assert!(any("localhost:5000/app/*"));
        assert!(!any("localhost:5000/*"));
        // Only the matching names are kept.
        assert_eq!(
            matching_names(&["busy*".to_string()], &tags),
            ["busybox:latest"]
        );
        assert_eq!(matching_names(&[], &tags), tags);
    }
}
