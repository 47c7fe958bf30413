//! Registry verbs: `pull`, `push`, `login`, `logout`. Credentials are kept in the docker
//! CLI's `config.json` ([`super::docker_config`]) and sent as `X-Registry-Auth`; progress is
//! drawn like the docker CLI draws it ([`super::progress`]).

use std::io::{BufRead, IsTerminal, Write};

use anyhow::{bail, Context};
use bollard::Docker;
use skiff_image::ImageRef;

use super::docker_config::{server_key, Auth, DockerConfig};
use super::progress::{follow, Printer};
use super::transport::Raw;
use super::{socket_path, Conn, Outcome};

#[derive(clap::Args, Debug)]
pub struct PullArgs {
    /// Set platform if server is multi-platform capable (os/arch[/variant])
    #[arg(long)]
    platform: Option<String>,
    /// Suppress verbose output
    #[arg(short = 'q', long)]
    quiet: bool,
    /// NAME[:TAG|@DIGEST]
    name: String,
}

#[derive(clap::Args, Debug)]
pub struct PushArgs {
    /// Suppress verbose output
    #[arg(short = 'q', long)]
    quiet: bool,
    /// NAME[:TAG]
    name: String,
}

#[derive(clap::Args, Debug)]
pub struct LoginArgs {
    /// Username
    #[arg(short = 'u', long)]
    username: Option<String>,
    /// Password (prefer --password-stdin)
    #[arg(short = 'p', long)]
    password: Option<String>,
    /// Take the password from stdin
    #[arg(long = "password-stdin")]
    password_stdin: bool,
    /// The registry (Docker Hub when omitted)
    server: Option<String>,
}

#[derive(clap::Args, Debug)]
pub struct LogoutArgs {
    /// The registry (Docker Hub when omitted)
    server: Option<String>,
}

/// The stored credentials for the registry of `reference`, if any.
fn credentials_for(reference: &ImageRef) -> anyhow::Result<Option<Auth>> {
    DockerConfig::load()?.get(&server_key(reference.domain())?)
}

fn auth_headers(auth: Option<&Auth>) -> Vec<(&'static str, String)> {
    let mut headers = vec![("Content-Type", "application/json".to_owned())];
    // Like the docker CLI: always a header, `{}`-equivalent when anonymous.
    headers.push((
        "X-Registry-Auth",
        auth.cloned().unwrap_or_default().header(),
    ));
    headers
}

fn query(pairs: &[(&str, &str)]) -> String {
    let mut q = form_urlencoded_pairs(pairs);
    if !q.is_empty() {
        q.insert(0, '?');
    }
    q
}

/// `k=v&…` with values percent-encoded.
fn form_urlencoded_pairs(pairs: &[(&str, &str)]) -> String {
    pairs
        .iter()
        .map(|(k, v)| {
            let v: String = v
                .bytes()
                .map(|b| match b {
                    b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                        (b as char).to_string()
                    }
                    _ => format!("%{b:02X}"),
                })
                .collect();
            format!("{k}={v}")
        })
        .collect::<Vec<_>>()
        .join("&")
}

/// Pulls `reference` with the stored credentials for its registry, drawing progress on
/// `out` unless quiet. Used by `pull` and by `run`/`create` for a missing image.
pub async fn pull_image(
    raw: &Raw,
    reference: &ImageRef,
    platform: Option<&str>,
    out: Option<&mut dyn Write>,
    tty: bool,
) -> anyhow::Result<()> {
    let auth = credentials_for(reference)?;
    let repository = format!("{}/{}", reference.domain(), reference.path());
    let mut pairs = vec![
        ("fromImage", repository.as_str()),
        ("tag", reference.tag_or_digest()),
    ];
    if let Some(p) = platform {
        pairs.push(("platform", p));
    }
    let reply = raw
        .post(
            &format!("/images/create{}", query(&pairs)),
            &auth_headers(auth.as_ref()),
            Vec::new(),
        )
        .await?;
    match out {
        Some(out) => {
            let mut printer = Printer::new(out, tty);
            follow(reply, Some(&mut printer), |_| {}).await
        }
        None => follow::<std::io::Sink>(reply, None, |_| {}).await,
    }
}

/// The raw client for the engine `docker` was negotiated with.
pub fn raw_client(conn: &Conn, docker: &Docker) -> Raw {
    Raw::new(socket_path(conn).as_ref(), docker.client_version())
}

pub async fn pull(conn: &Conn, docker: &Docker, args: PullArgs) -> Outcome {
    let reference = ImageRef::parse(&args.name)?;
    let last = args.name.rsplit('/').next().unwrap_or(&args.name);
    if !args.quiet && !last.contains(':') && !last.contains('@') {
        println!("Using default tag: latest");
    }
    let raw = raw_client(conn, docker);
    let mut stdout = std::io::stdout();
    let tty = stdout.is_terminal();
    let out: Option<&mut dyn Write> = if args.quiet { None } else { Some(&mut stdout) };
    pull_image(&raw, &reference, args.platform.as_deref(), out, tty).await?;
    // The docker CLI ends with the fully qualified name.
    let shown = match (reference.tag(), reference.digest()) {
        (_, Some(d)) => format!("{}/{}@{d}", reference.domain(), reference.path()),
        (t, None) => format!(
            "{}/{}:{}",
            reference.domain(),
            reference.path(),
            t.unwrap_or("latest")
        ),
    };
    println!("{shown}");
    Ok(0)
}

pub async fn push(conn: &Conn, docker: &Docker, args: PushArgs) -> Outcome {
    let reference = ImageRef::parse(&args.name)?;
    let Some(tagged) = reference.tagged() else {
        bail!("cannot push a digest reference");
    };
    let auth = credentials_for(&reference)?;
    let raw = raw_client(conn, docker);
    let repository = format!("{}/{}", reference.domain(), reference.path());
    let reply = raw
        .post(
            &format!(
                "/images/{repository}/push{}",
                query(&[("tag", tagged.tag())])
            ),
            &auth_headers(auth.as_ref()),
            Vec::new(),
        )
        .await?;
    let stdout = std::io::stdout();
    let tty = stdout.is_terminal();
    let mut digest = None;
    let record = |a: &serde_json::Value| {
        if let Some(d) = a["Digest"].as_str() {
            digest = Some(d.to_owned());
        }
    };
    if args.quiet {
        follow::<std::io::Sink>(reply, None, record).await?;
    } else {
        let mut printer = Printer::new(stdout, tty);
        follow(reply, Some(&mut printer), record).await?;
    }
    if args.quiet {
        println!("{}", tagged.full());
    }
    if digest.is_none() {
        bail!("the daemon did not report the pushed digest");
    }
    Ok(0)
}

/// Reads one line from stdin (without its line ending).
fn read_stdin_line() -> anyhow::Result<String> {
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .context("reading stdin")?;
    Ok(line.trim_end_matches(['\n', '\r']).to_owned())
}

/// Asks on the terminal; `secret` turns echo off while typing.
fn prompt(question: &str, secret: bool) -> anyhow::Result<String> {
    use nix::sys::termios::{self, LocalFlags, SetArg};
    eprint!("{question}");
    std::io::stderr().flush()?;
    let stdin = std::io::stdin();
    let saved = if secret {
        termios::tcgetattr(&stdin).ok()
    } else {
        None
    };
    if let Some(saved) = &saved {
        let mut quiet = saved.clone();
        quiet.local_flags.remove(LocalFlags::ECHO);
        let _ = termios::tcsetattr(&stdin, SetArg::TCSANOW, &quiet);
    }
    let answer = read_stdin_line();
    if let Some(saved) = &saved {
        let _ = termios::tcsetattr(&stdin, SetArg::TCSANOW, saved);
        eprintln!();
    }
    answer
}

pub async fn login(conn: &Conn, docker: &Docker, args: LoginArgs) -> Outcome {
    let key = server_key(args.server.as_deref().unwrap_or_default())?;
    let interactive = std::io::stdin().is_terminal();
    let username = match args.username {
        Some(u) => u,
        None if interactive && !args.password_stdin => prompt("Username: ", false)?,
        None => bail!("Cannot perform an interactive login from a non TTY device"),
    };
    let password = match (args.password, args.password_stdin) {
        (Some(_), true) => bail!("--password and --password-stdin are mutually exclusive"),
        (Some(p), false) => {
            eprintln!("WARNING! Using --password via the CLI is insecure. Use --password-stdin.");
            p
        }
        (None, true) => read_stdin_line()?,
        (None, false) if interactive => prompt("Password: ", true)?,
        (None, false) => bail!("Cannot perform an interactive login from a non TTY device"),
    };
    if username.trim().is_empty() {
        bail!("Username is required");
    }
    if password.is_empty() {
        bail!("Error: Password Required");
    }
    let auth = Auth {
        username,
        password,
        serveraddress: key.clone(),
    };
    let raw = raw_client(conn, docker);
    let body = serde_json::to_vec(&serde_json::json!({
        "username": auth.username,
        "password": auth.password,
        "serveraddress": auth.serveraddress,
    }))?;
    let reply = raw
        .post(
            "/auth",
            &[("Content-Type", "application/json".to_owned())],
            body,
        )
        .await?;
    let status = reply.status();
    let bytes = http_body_util::BodyExt::collect(reply.into_body())
        .await?
        .to_bytes();
    let answer: serde_json::Value = serde_json::from_slice(&bytes).unwrap_or_default();
    if !status.is_success() {
        let message = answer["message"]
            .as_str()
            .map(str::to_owned)
            .unwrap_or_else(|| String::from_utf8_lossy(&bytes).trim().to_owned());
        bail!("Error response from daemon: {message}");
    }
    let mut config = DockerConfig::load()?;
    config.set(&key, &auth);
    config.save()?;
    eprintln!(
        "WARNING! Your credentials are stored unencrypted in '{}'.",
        config.file().display()
    );
    println!("{}", answer["Status"].as_str().unwrap_or("Login Succeeded"));
    Ok(0)
}

/// `logout` needs no engine: it only edits the config file.
pub async fn logout(args: LogoutArgs) -> Outcome {
    let key = server_key(args.server.as_deref().unwrap_or_default())?;
    let mut config = DockerConfig::load()?;
    if !config.remove(&key) {
        println!("Not logged in to {key}");
        return Ok(0);
    }
    println!("Removing login credentials for {key}");
    config.save()?;
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_values_are_percent_encoded() {
        assert_eq!(
            query(&[("fromImage", "localhost:5000/a/b"), ("tag", "1.0")]),
            "?fromImage=localhost%3A5000%2Fa%2Fb&tag=1.0"
        );
        assert_eq!(query(&[]), "");
    }
}
