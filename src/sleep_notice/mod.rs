//! The system's own notices that this machine is about to sleep or woke:
//! logind's `PrepareForSleep` on Linux (`logind.rs`), IOKit's system power
//! messages on macOS (`iokit.rs`). The daemon says goodbye
//! to its peers on the first and runs its resume on the second; a resume is
//! also found by the clocks (`mesh::resume`), notice or none.

#[cfg(target_os = "macos")]
mod iokit;
#[cfg(target_os = "linux")]
mod logind;

use tokio::sync::{mpsc, oneshot, watch};

/// One notice.
#[derive(Debug)]
pub enum Notice {
    /// The machine is about to sleep: it waits (up to the system's limit)
    /// until the [`Done`] is dropped.
    Sleeping(Done),
    /// The machine woke.
    Woke,
}

/// Held while this node gets ready to sleep; finishing it (or dropping it)
/// lets the sleep go on.
#[derive(Debug)]
pub struct Done(oneshot::Sender<()>);

impl Done {
    /// A `Done` as the system's notice holds it, and what finishing it tells.
    #[cfg(test)]
    pub(crate) fn new() -> (Done, oneshot::Receiver<()>) {
        let (done, told) = oneshot::channel();
        (Done(done), told)
    }

    /// This node is ready to sleep.
    pub fn finish(self) {
        let _ = self.0.send(());
    }
}

/// Sends the system's notices to `notices` until `shutdown` turns true. No
/// notices (no system bus, no logind: a container, CI) is one info line.
pub async fn run(notices: mpsc::Sender<Notice>, shutdown: watch::Receiver<bool>) {
    #[cfg(target_os = "linux")]
    logind::run(notices, shutdown).await;
    #[cfg(target_os = "macos")]
    iokit::follow(notices, shutdown).await;
}
