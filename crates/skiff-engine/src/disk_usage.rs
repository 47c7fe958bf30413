//! `docker system df`: what images, containers and volumes take on disk, in the shape of
//! the Engine API up to 1.51 (`LayersSize` plus one list per kind). Sizes are of unpacked
//! layers, as Docker reports them (layers not unpacked yet get unpacked). Pruning lives with
//! each kind.

use std::collections::{HashMap, HashSet};

use bollard_stubs::models::{ContainerSummary, ImageSummary, Volume, VolumeUsageData};
use serde::Serialize;

use crate::error::Result;
use crate::filters::Filters;
use crate::volumes::dir_size;
use crate::{Engine, ListOptions};

/// The reply of `GET /system/df`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct DiskUsage {
    /// Bytes of every image's layers (layers shared by images are counted once).
    pub layers_size: i64,
    pub images: Vec<ImageSummary>,
    /// Every container, with `SizeRw` and `SizeRootFs`.
    pub containers: Vec<ContainerSummary>,
    /// Every volume, with `UsageData` (size and the number of containers using it).
    pub volumes: Vec<Volume>,
    /// Always empty: skiff keeps no build cache.
    pub build_cache: Vec<serde_json::Value>,
}

impl Engine {
    pub(crate) async fn do_disk_usage(&self) -> Result<DiskUsage> {
        let mut images = self.do_image_list(true, &Filters::default()).await?;
        let mut layers: HashMap<String, u64> = HashMap::new();
        let mut users: HashMap<String, usize> = HashMap::new();
        let mut per_image = Vec::with_capacity(images.len());
        for image in &images {
            let diff_ids = self.images.get(&image.id)?.diff_ids;
            let sizes = self.layer_sizes(&image.id).await?;
            for (diff_id, size) in diff_ids.iter().zip(&sizes) {
                layers.insert(diff_id.clone(), *size);
                *users.entry(diff_id.clone()).or_default() += 1;
            }
            per_image.push((diff_ids, sizes));
        }
        for (image, (diff_ids, sizes)) in images.iter_mut().zip(per_image) {
            let shared: HashSet<&String> = diff_ids.iter().filter(|d| users[*d] > 1).collect();
            image.size = sizes.iter().sum::<u64>() as i64;
            image.shared_size = diff_ids
                .iter()
                .zip(&sizes)
                .filter(|(d, _)| shared.contains(d))
                .map(|(_, s)| *s as i64)
                .sum();
        }
        let containers = self
            .do_list(&ListOptions {
                all: true,
                size: true,
                ..Default::default()
            })
            .await?;
        let mut refs: HashMap<String, i64> = HashMap::new();
        for name in self.volumes_in_use() {
            *refs.entry(name).or_default() += 1;
        }
        let mut volumes = self.do_volume_list(&Filters::default()).await?;
        for v in &mut volumes {
            v.usage_data = Some(VolumeUsageData {
                size: dir_size(&self.volumes.data_path(&v.name)) as i64,
                ref_count: refs.get(&v.name).copied().unwrap_or(0),
            });
        }
        Ok(DiskUsage {
            layers_size: layers.values().sum::<u64>() as i64,
            images,
            containers,
            volumes,
            build_cache: Vec::new(),
        })
    }
}
