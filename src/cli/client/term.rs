//! The local terminal for `-t`: raw mode while attached, and its size. Uses `stty` on the
//! controlling terminal, restored on drop.

use std::io::IsTerminal;
use std::process::{Command, Stdio};

/// Raw mode on stdin's terminal until dropped; a no-op when stdin is not a terminal.
pub struct RawMode {
    saved: Option<String>,
}

impl RawMode {
    pub fn enable() -> Self {
        if !std::io::stdin().is_terminal() {
            return Self { saved: None };
        }
        let saved = stty(&["-g"]).map(|s| s.trim().to_owned());
        if saved.is_some() {
            let _ = stty(&["raw", "-echo"]);
        }
        Self { saved }
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        if let Some(saved) = &self.saved {
            let _ = stty(&[saved]);
        }
    }
}

/// Runs `stty` on the terminal on stdin, returning its output.
fn stty(args: &[&str]) -> Option<String> {
    let out = Command::new("stty")
        .args(args)
        .stdin(Stdio::inherit())
        .stderr(Stdio::null())
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

/// `(rows, columns)` of the terminal on stdin.
pub fn size() -> Option<(u16, u16)> {
    if !std::io::stdin().is_terminal() {
        return None;
    }
    let out = stty(&["size"])?;
    let mut parts = out.split_whitespace().map(str::parse::<u16>);
    match (parts.next(), parts.next()) {
        (Some(Ok(rows)), Some(Ok(cols))) => Some((rows, cols)),
        _ => None,
    }
}
