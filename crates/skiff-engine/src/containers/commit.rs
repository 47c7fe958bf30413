//! `docker commit`: a container's filesystem changes (its overlay upper directory, where the
//! generated /etc files never are: see [`super::rootfs`]) become a new image on top of the
//! container's, with the container's config (or the request's, filled from it), Dockerfile
//! `changes`, and a history entry. A running container is paused meanwhile unless asked not
//! to be, as with Docker.

use std::collections::HashMap;

use bollard_stubs::models::ContainerConfig;

use crate::error::{EngineError, IoContext, Result};
use crate::store::Status;
use crate::{CommitOptions, Engine};

/// The image-config part of a container config.
fn image_config(c: &ContainerConfig) -> oci_spec::image::Config {
    let mut out = oci_spec::image::Config::default();
    let nonempty = |v: &Option<String>| v.clone().filter(|s| !s.is_empty());
    out.set_user(nonempty(&c.user))
        .set_exposed_ports(c.exposed_ports.clone().filter(|p| !p.is_empty()))
        .set_env(c.env.clone())
        .set_entrypoint(c.entrypoint.clone())
        .set_cmd(c.cmd.clone())
        .set_volumes(c.volumes.clone().filter(|v| !v.is_empty()))
        .set_working_dir(nonempty(&c.working_dir))
        .set_labels(c.labels.clone().filter(|l| !l.is_empty()))
        .set_stop_signal(nonempty(&c.stop_signal));
    out
}

/// The Docker-only image config fields of a container config (health check, shell,
/// `ONBUILD` triggers), as Docker's commit keeps them.
fn docker_config(c: &ContainerConfig) -> skiff_image::DockerConfig {
    skiff_image::DockerConfig {
        healthcheck: c.healthcheck.as_ref().map(super::health::to_image),
        shell: c.shell.clone().filter(|s| !s.is_empty()),
        on_build: c.on_build.clone().filter(|o| !o.is_empty()),
        args_escaped: c.args_escaped,
        ..Default::default()
    }
}

impl Engine {
    pub(crate) async fn do_commit(&self, key: &str, opts: CommitOptions) -> Result<String> {
        let c = self.find(key)?;
        let rec = c.rec();
        match rec.state.status {
            Status::Dead => {
                return Err(EngineError::Conflict(format!(
                    "You cannot commit container {} which is Dead",
                    c.id
                )))
            }
            Status::Removing => {
                return Err(EngineError::Conflict(format!(
                    "You cannot commit container {} which is being removed",
                    c.id
                )))
            }
            _ => {}
        }
        let reference = match (opts.repo.as_deref(), opts.tag.as_deref()) {
            (None, Some(_)) => {
                return Err(EngineError::invalid(
                    "tag requires a repository name (repo) to be set",
                ))
            }
            (None, None) => None,
            (Some(repo), tag) => Some(format!("{repo}:{}", tag.unwrap_or("latest"))),
        };
        let request = skiff_image::Commit {
            parent: rec.image_id.clone(),
            upper: c.upper_dir(),
            config: image_config(opts.config.as_ref().unwrap_or(&rec.config)),
            defaults: image_config(&rec.config),
            docker: docker_config(opts.config.as_ref().unwrap_or(&rec.config)),
            changes: opts.changes.clone(),
            created_by: rec.config.cmd.clone().unwrap_or_default().join(" "),
            author: opts.author.clone(),
            comment: opts.comment.clone(),
            reference: reference.clone(),
        };
        // Paused (when running) so the layer is one moment of the container's filesystem.
        let pause = opts.pause && rec.state.status == Status::Running;
        if pause {
            self.do_pause(&c.id, true).await?;
        }
        let images = self.images.clone();
        let committed = tokio::task::spawn_blocking(move || images.commit(&request))
            .await
            .map_err(std::io::Error::other)
            .ctx(|| "commit task".into());
        if pause {
            if let Err(e) = self.do_pause(&c.id, false).await {
                tracing::warn!(id = %c.id, error = %e, "unpausing after the commit");
            }
        }
        let image_id = committed??;
        let attrs = HashMap::from([
            ("comment".to_string(), opts.comment.unwrap_or_default()),
            ("imageID".to_string(), image_id.clone()),
            ("imageRef".to_string(), reference.unwrap_or_default()),
        ]);
        self.emit_container("commit", &c, attrs);
        tracing::info!(id = %c.id, image = %image_id, "container committed");
        Ok(image_id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_image_part_of_the_config_is_kept() {
        let c = ContainerConfig {
            hostname: Some("box".into()),
            user: Some(String::new()),
            env: Some(vec!["Foo".into(), "A=1".into()]),
            cmd: Some(vec!["sh".into()]),
            working_dir: Some("/srv".into()),
            exposed_ports: Some(vec![]),
            ..Default::default()
        };
        let oci = image_config(&c);
        assert_eq!(oci.user(), &None);
        assert_eq!(oci.exposed_ports(), &None);
        assert_eq!(
            oci.env().as_deref(),
            Some(&["Foo".to_string(), "A=1".to_string()][..])
        );
        assert_eq!(oci.cmd().as_deref(), Some(&["sh".to_string()][..]));
        assert_eq!(oci.working_dir().as_deref(), Some("/srv"));
    }
}
