//! `skiff exec`: runs a command in a running container; its exit code becomes ours.

use bollard::exec::{CreateExecOptions, StartExecOptions, StartExecResults};
use bollard::Docker;

use super::{daemon_error, term, Outcome};

#[derive(clap::Args, Debug)]
pub struct ExecArgs {
    /// Detached mode: run command in the background
    #[arg(short = 'd', long)]
    detach: bool,
    /// Keep STDIN open even if not attached
    #[arg(short = 'i', long)]
    interactive: bool,
    /// Allocate a pseudo-TTY
    #[arg(short = 't', long)]
    tty: bool,
    /// Username or UID (format: "<name|uid>[:<group|gid>]")
    #[arg(short = 'u', long)]
    user: Option<String>,
    /// Working directory inside the container
    #[arg(short = 'w', long = "workdir")]
    workdir: Option<String>,
    /// Set environment variables
    #[arg(short = 'e', long = "env")]
    env: Vec<String>,
    /// Give extended privileges to the command
    #[arg(long)]
    privileged: bool,
    container: String,
    /// Command and arguments
    #[arg(required = true, trailing_var_arg = true, allow_hyphen_values = true)]
    command: Vec<String>,
}

pub async fn exec(docker: &Docker, args: ExecArgs) -> Outcome {
    let config = CreateExecOptions {
        cmd: Some(args.command.clone()),
        attach_stdin: Some(args.interactive && !args.detach),
        attach_stdout: Some(!args.detach),
        attach_stderr: Some(!args.detach),
        tty: Some(args.tty),
        env: (!args.env.is_empty()).then(|| args.env.clone()),
        user: args.user.clone(),
        working_dir: args.workdir.clone(),
        privileged: Some(args.privileged),
        ..Default::default()
    };
    let created = docker
        .create_exec(&args.container, config)
        .await
        .map_err(daemon_error)?;
    let start = StartExecOptions {
        detach: args.detach,
        tty: args.tty,
        output_capacity: None,
    };
    let _raw = (args.tty && !args.detach).then(term::RawMode::enable);
    match docker
        .start_exec(&created.id, Some(start))
        .await
        .map_err(daemon_error)?
    {
        StartExecResults::Detached => return Ok(0),
        StartExecResults::Attached { output, input } => {
            let _resizer = term::AbortOnDrop(
                args.tty
                    .then(|| {
                        let (docker, id) = (docker.clone(), created.id.clone());
                        term::follow_size(move |rows, cols| {
                            let (docker, id) = (docker.clone(), id.clone());
                            async move {
                                let size = bollard::exec::ResizeExecOptions {
                                    height: rows,
                                    width: cols,
                                };
                                let _ = docker.resize_exec(&id, size).await;
                            }
                        })
                    })
                    .flatten(),
            );
            super::run::pump(output, args.interactive.then_some(input)).await?;
        }
    }
    let inspected = docker
        .inspect_exec(&created.id)
        .await
        .map_err(daemon_error)?;
    Ok(inspected.exit_code.unwrap_or(0).clamp(0, 255) as u8)
}
