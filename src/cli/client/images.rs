//! Image verbs: images, tag, rmi, load, save, import, and `image …` (ls, inspect, prune, rm,
//! tag, load, save, import, history).

use anyhow::Context;
use bollard::query_parameters::{
    CreateImageOptions, ImportImageOptions, ListImagesOptions, PruneImagesOptions,
    RemoveImageOptions, TagImageOptions,
};
use bollard::Docker;
use futures::{StreamExt, TryStreamExt};
use std::io::Write;

use super::{ago, connect, daemon_error, human_size, print_table, Outcome, With};

#[derive(clap::Args, Debug)]
pub struct ListArgs {
    /// Show all images (default hides intermediate images)
    #[arg(short = 'a', long)]
    all: bool,
    /// Only show image IDs
    #[arg(short = 'q', long)]
    quiet: bool,
    /// Repository to list
    reference: Option<String>,
}

#[derive(clap::Args, Debug)]
pub struct TagArgs {
    source: String,
    target: String,
}

#[derive(clap::Args, Debug)]
pub struct RmiArgs {
    /// Force removal of the image
    #[arg(short = 'f', long)]
    force: bool,
    #[arg(required = true)]
    images: Vec<String>,
}

#[derive(clap::Args, Debug)]
pub struct LoadArgs {
    /// Read from tar archive file, instead of STDIN
    #[arg(short = 'i', long)]
    input: Option<std::path::PathBuf>,
    /// Suppress the load output
    #[arg(short = 'q', long)]
    quiet: bool,
}

#[derive(clap::Args, Debug)]
pub struct SaveArgs {
    /// Write to a file, instead of STDOUT
    #[arg(short = 'o', long)]
    output: Option<std::path::PathBuf>,
    #[arg(required = true)]
    images: Vec<String>,
}

#[derive(clap::Args, Debug)]
pub struct ImportArgs {
    /// Apply Dockerfile instruction to the created image
    #[arg(short = 'c', long = "change")]
    change: Vec<String>,
    /// Set commit message for imported image
    #[arg(short = 'm', long)]
    message: Option<String>,
    /// File to import (`-` for STDIN)
    file: String,
    /// Repository and optional tag for the image
    reference: Option<String>,
}

#[derive(clap::Args, Debug)]
pub struct PruneArgs {
    /// Remove all unused images, not just dangling ones
    #[arg(short = 'a', long)]
    all: bool,
    /// Do not prompt for confirmation
    #[arg(short = 'f', long)]
    force: bool,
}

#[derive(clap::Args, Debug)]
pub struct InspectArgs {
    #[arg(required = true)]
    images: Vec<String>,
}

/// `skiff image …`.
#[derive(clap::Subcommand, Debug)]
pub enum ImageCommand {
    /// List images
    #[command(alias = "list")]
    Ls(With<ListArgs>),
    /// Display detailed information on one or more images
    Inspect(With<InspectArgs>),
    /// Remove unused images
    Prune(With<PruneArgs>),
    /// Remove one or more images
    Rm(With<RmiArgs>),
    /// Create a tag TARGET_IMAGE that refers to SOURCE_IMAGE
    Tag(With<TagArgs>),
    /// Load an image from a tar archive or STDIN
    Load(With<LoadArgs>),
    /// Save one or more images to a tar archive
    Save(With<SaveArgs>),
    /// Import the contents from a tarball to create a filesystem image
    Import(With<ImportArgs>),
    /// Show the history of an image
    History(With<HistoryArgs>),
}

#[derive(clap::Args, Debug)]
pub struct HistoryArgs {
    /// Don't truncate output
    #[arg(long = "no-trunc")]
    no_trunc: bool,
    image: String,
}

pub async fn image_command(command: ImageCommand) -> Outcome {
    macro_rules! go {
        ($w:expr, $f:path) => {{
            let w = $w;
            let docker = connect(&w.conn).await?;
            $f(&docker, w.args).await
        }};
    }
    match command {
        ImageCommand::Ls(w) => go!(w, list),
        ImageCommand::Inspect(w) => go!(w, inspect),
        ImageCommand::Prune(w) => go!(w, prune),
        ImageCommand::Rm(w) => go!(w, rmi),
        ImageCommand::Tag(w) => go!(w, tag),
        ImageCommand::Load(w) => go!(w, load),
        ImageCommand::Save(w) => go!(w, save),
        ImageCommand::Import(w) => go!(w, import),
        ImageCommand::History(w) => go!(w, history),
    }
}

/// `repo:tag` → (`repo`, `tag`), the tag defaulting to `latest`; a registry port is not a tag.
fn split_reference(reference: &str) -> (String, String) {
    match reference.rsplit_once(':') {
        Some((repo, tag)) if !tag.contains('/') => (repo.to_owned(), tag.to_owned()),
        _ => (reference.to_owned(), "latest".to_owned()),
    }
}

pub async fn list(docker: &Docker, args: ListArgs) -> Outcome {
    let filters = args
        .reference
        .map(|r| [("reference".to_owned(), vec![r])].into_iter().collect());
    let opts = ListImagesOptions {
        all: args.all,
        filters,
        ..Default::default()
    };
    let images = docker.list_images(Some(opts)).await.map_err(daemon_error)?;
    if args.quiet {
        for image in images {
            println!("{}", skiff_core::ids::short_id(&image.id));
        }
        return Ok(0);
    }
    let mut rows = Vec::new();
    for image in images {
        let id = skiff_core::ids::short_id(&image.id).to_owned();
        let created = ago(image.created);
        let size = human_size(image.size);
        if image.repo_tags.is_empty() {
            rows.push(vec!["<none>".into(), "<none>".into(), id, created, size]);
            continue;
        }
        for tag in &image.repo_tags {
            let (repo, tag) = split_reference(tag);
            rows.push(vec![repo, tag, id.clone(), created.clone(), size.clone()]);
        }
    }
    print_table(&["REPOSITORY", "TAG", "IMAGE ID", "CREATED", "SIZE"], &rows);
    Ok(0)
}

pub async fn history(docker: &Docker, args: HistoryArgs) -> Outcome {
    let items = docker
        .image_history(&args.image)
        .await
        .map_err(daemon_error)?;
    let rows: Vec<Vec<String>> = items
        .into_iter()
        .map(|item| {
            let id = if item.id.is_empty() || item.id == "<missing>" {
                "<missing>".to_owned()
            } else if args.no_trunc {
                item.id.clone()
            } else {
                skiff_core::ids::short_id(&item.id).to_owned()
            };
            let created_by = item.created_by.replace('\t', " ");
            let created_by = match created_by.chars().count() {
                n if n > 45 && !args.no_trunc => {
                    format!("{}…", created_by.chars().take(44).collect::<String>())
                }
                _ => created_by,
            };
            vec![
                id,
                ago(item.created),
                created_by,
                human_size(item.size),
                item.comment,
            ]
        })
        .collect();
    print_table(
        &["IMAGE", "CREATED", "CREATED BY", "SIZE", "COMMENT"],
        &rows,
    );
    Ok(0)
}

pub async fn inspect(docker: &Docker, args: InspectArgs) -> Outcome {
    let mut out = Vec::new();
    let mut failed = false;
    for name in &args.images {
        match docker.inspect_image(name).await {
            Ok(image) => out.push(serde_json::to_value(image)?),
            Err(e) => {
                eprintln!("{:#}", daemon_error(e));
                failed = true;
            }
        }
    }
    println!("{}", serde_json::to_string_pretty(&out)?);
    Ok(u8::from(failed))
}

pub async fn tag(docker: &Docker, args: TagArgs) -> Outcome {
    let (repo, tag) = split_reference(&args.target);
    let opts = TagImageOptions {
        repo: Some(repo),
        tag: Some(tag),
    };
    docker
        .tag_image(&args.source, Some(opts))
        .await
        .map_err(daemon_error)?;
    Ok(0)
}

pub async fn rmi(docker: &Docker, args: RmiArgs) -> Outcome {
    let mut failed = false;
    for image in &args.images {
        let opts = RemoveImageOptions {
            force: args.force,
            noprune: false,
            platforms: None,
        };
        match docker.remove_image(image, Some(opts), None).await {
            Ok(items) => {
                for item in items {
                    if let Some(untagged) = item.untagged {
                        println!("Untagged: {untagged}");
                    }
                    if let Some(deleted) = item.deleted {
                        println!("Deleted: {deleted}");
                    }
                }
            }
            Err(e) => {
                eprintln!("{:#}", daemon_error(e));
                failed = true;
            }
        }
    }
    Ok(u8::from(failed))
}

pub async fn prune(docker: &Docker, args: PruneArgs) -> Outcome {
    let filters = args.all.then(|| {
        [("dangling".to_owned(), vec!["false".to_owned()])]
            .into_iter()
            .collect()
    });
    let pruned = docker
        .prune_images(Some(PruneImagesOptions { filters }))
        .await
        .map_err(daemon_error)?;
    for item in pruned.images_deleted.unwrap_or_default() {
        if let Some(untagged) = item.untagged {
            println!("untagged: {untagged}");
        }
        if let Some(deleted) = item.deleted {
            println!("deleted: {deleted}");
        }
    }
    println!(
        "\nTotal reclaimed space: {}",
        human_size(pruned.space_reclaimed.unwrap_or(0))
    );
    Ok(0)
}

/// The bytes of a file, or of stdin for `None` or `-`.
async fn read_input(path: Option<&std::path::Path>) -> anyhow::Result<Vec<u8>> {
    match path {
        Some(p) if p != std::path::Path::new("-") => tokio::fs::read(p)
            .await
            .with_context(|| format!("open {}", p.display())),
        _ => tokio::task::spawn_blocking(|| {
            let mut buf = Vec::new();
            std::io::Read::read_to_end(&mut std::io::stdin(), &mut buf).map(|_| buf)
        })
        .await?
        .context("reading stdin"),
    }
}

pub async fn load(docker: &Docker, args: LoadArgs) -> Outcome {
    let archive = read_input(args.input.as_deref()).await?;
    let opts = ImportImageOptions {
        quiet: args.quiet,
        ..Default::default()
    };
    let mut progress = docker.import_image(opts, bollard::body_full(archive.into()), None);
    while let Some(line) = progress.next().await {
        let info = line.map_err(daemon_error)?;
        if let Some(text) = info.stream {
            if !args.quiet {
                print!("{text}");
            }
        }
    }
    Ok(0)
}

pub async fn save(docker: &Docker, args: SaveArgs) -> Outcome {
    let names: Vec<&str> = args.images.iter().map(String::as_str).collect();
    let mut archive = docker.export_images(&names).map_err(daemon_error);
    let mut out: Box<dyn std::io::Write> = match &args.output {
        Some(path) => Box::new(
            std::fs::File::create(path).with_context(|| format!("create {}", path.display()))?,
        ),
        None => {
            if std::io::IsTerminal::is_terminal(&std::io::stdout()) {
                anyhow::bail!(
                    "cowardly refusing to save to a terminal. Use the -o flag or redirect"
                );
            }
            Box::new(std::io::stdout().lock())
        }
    };
    while let Some(chunk) = archive.try_next().await? {
        out.write_all(&chunk)?;
    }
    out.flush()?;
    Ok(0)
}

pub async fn import(docker: &Docker, args: ImportArgs) -> Outcome {
    let tarball = read_input(Some(std::path::Path::new(&args.file))).await?;
    let (repo, tag) = match &args.reference {
        Some(r) => {
            let (repo, tag) = split_reference(r);
            (Some(repo), Some(tag))
        }
        None => (None, None),
    };
    let opts = CreateImageOptions {
        from_src: Some("-".into()),
        repo,
        tag,
        message: args.message,
        changes: args.change,
        ..Default::default()
    };
    let mut progress =
        docker.create_image(Some(opts), Some(bollard::body_full(tarball.into())), None);
    while let Some(line) = progress.next().await {
        if let Some(status) = line.map_err(daemon_error)?.status {
            println!("{status}");
        }
    }
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_split_at_the_tag_not_the_port() {
        assert_eq!(
            split_reference("busybox:1.36"),
            ("busybox".into(), "1.36".into())
        );
        assert_eq!(
            split_reference("busybox"),
            ("busybox".into(), "latest".into())
        );
        assert_eq!(
            split_reference("localhost:5000/app"),
            ("localhost:5000/app".into(), "latest".into())
        );
    }
}
