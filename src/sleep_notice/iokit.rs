//! macOS: IOKit's system power messages (`IORegisterForSystemPower`), on a
//! thread of their own running its run loop. `SystemWillSleep` waits
//! (macOS gives 30 s) until the peers were told; `CanSystemSleep` is always
//! allowed; `SystemHasPoweredOn` is the resume.

use tokio::sync::{mpsc, oneshot, watch};

use super::{Done, Notice};
use crate::sys::{self, SystemPower};

/// Sends the system's power messages to `notices` until `shutdown` turns true.
pub(super) async fn follow(notices: mpsc::Sender<Notice>, mut shutdown: watch::Receiver<bool>) {
    let (started, stopper) = oneshot::channel();
    let thread = std::thread::Builder::new().name("sleep-notices".into()).spawn(move || {
        sys::run_system_power(
            |stop| {
                let _ = started.send(stop);
            },
            |message| match message {
                SystemPower::WillSleep => {
                    let (done, told) = oneshot::channel();
                    if notices.blocking_send(Notice::Sleeping(Done(done))).is_ok() {
                        let _ = told.blocking_recv();
                    }
                }
                SystemPower::HasPoweredOn => {
                    let _ = notices.blocking_send(Notice::Woke);
                }
                SystemPower::CanSleep => {}
            },
        )
    });
    let thread = match thread {
        Ok(thread) => thread,
        Err(error) => {
            tracing::info!(%error, "no sleep notices: cannot start their thread; a resume is found by the clocks");
            return;
        }
    };
    let Ok(stop) = stopper.await else {
        let error = thread.join().ok().and_then(Result::err).map(|e| e.to_string()).unwrap_or_default();
        tracing::info!("no sleep notices from IOKit ({error}); a resume is found by the clocks");
        return;
    };
    tracing::info!("following the system's sleep notices: the peers are told before this Mac sleeps");
    let _ = shutdown.wait_for(|stop| *stop).await;
    stop.stop();
    let _ = tokio::task::spawn_blocking(move || thread.join()).await;
}
