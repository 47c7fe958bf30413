//! The local terminal for `-t`: raw mode while attached (termios, restored on drop — also when
//! the verb fails), the window size (TIOCGWINSZ) and its changes (SIGWINCH).
//!
//! It only touches our own stdin's terminal; the container side is the caller's business.

use std::io::IsTerminal;

use nix::sys::termios::{self, SetArg, Termios};

/// Raw mode on stdin's terminal until dropped; a no-op when stdin is not a terminal.
pub struct RawMode {
    saved: Option<Termios>,
}

impl RawMode {
    pub fn enable() -> Self {
        let stdin = std::io::stdin();
        if !stdin.is_terminal() {
            return Self { saved: None };
        }
        let Ok(saved) = termios::tcgetattr(&stdin) else {
            return Self { saved: None };
        };
        let mut raw = saved.clone();
        termios::cfmakeraw(&mut raw);
        if let Err(e) = termios::tcsetattr(&stdin, SetArg::TCSANOW, &raw) {
            tracing::debug!("raw mode: {e}");
            return Self { saved: None };
        }
        Self { saved: Some(saved) }
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        if let Some(saved) = &self.saved {
            let _ = termios::tcsetattr(std::io::stdin(), SetArg::TCSADRAIN, saved);
        }
    }
}

/// `(rows, columns)` of the terminal on stdin.
pub fn size() -> Option<(u16, u16)> {
    if !std::io::stdin().is_terminal() {
        return None;
    }
    let mut ws = nix::libc::winsize {
        ws_row: 0,
        ws_col: 0,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCGWINSZ writes one `winsize` through the pointer, which is valid for the call.
    let rc = unsafe { nix::libc::ioctl(nix::libc::STDIN_FILENO, nix::libc::TIOCGWINSZ, &mut ws) };
    (rc == 0 && ws.ws_row > 0 && ws.ws_col > 0).then_some((ws.ws_row, ws.ws_col))
}

/// Calls `resize` with the terminal's size now and again after every SIGWINCH, until the
/// returned task is aborted. Nothing happens when stdin is not a terminal.
pub fn follow_size<F, Fut>(mut resize: F) -> Option<tokio::task::JoinHandle<()>>
where
    F: FnMut(u16, u16) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    use tokio::signal::unix::{signal, SignalKind};
    let (rows, cols) = size()?;
    let mut winch = signal(SignalKind::window_change()).ok();
    Some(tokio::spawn(async move {
        resize(rows, cols).await;
        let Some(winch) = winch.as_mut() else {
            return;
        };
        while winch.recv().await.is_some() {
            if let Some((rows, cols)) = size() {
                resize(rows, cols).await;
            }
        }
    }))
}

/// Aborts the task on drop.
pub struct AbortOnDrop(pub Option<tokio::task::JoinHandle<()>>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        if let Some(task) = &self.0 {
            task.abort();
        }
    }
}
