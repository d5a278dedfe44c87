//! logind (`org.freedesktop.login1` on the system bus, at the address in
//! `DBUS_SYSTEM_BUS_ADDRESS` when set): a delay inhibitor lock held while
//! awake, so a sleep waits (logind's `InhibitDelayMaxSec`, 5 s by default)
//! until this node said goodbye; `PrepareForSleep(true)` before a sleep,
//! `PrepareForSleep(false)` after it. The signal is taken only from the
//! owner of `org.freedesktop.login1` (a match rule with that sender, each
//! message checked against the name's owner).

use futures_util::StreamExt;
use tokio::sync::{mpsc, oneshot, watch};
use zbus::zvariant::OwnedFd;

use super::{Done, Notice};

const LOGIND: &str = "org.freedesktop.login1";
const MANAGER_PATH: &str = "/org/freedesktop/login1";
const MANAGER: &str = "org.freedesktop.login1.Manager";

/// Sends logind's notices to `notices` until `shutdown` turns true.
pub(super) async fn run(notices: mpsc::Sender<Notice>, mut shutdown: watch::Receiver<bool>) {
    tokio::select! {
        _ = shutdown.wait_for(|stop| *stop) => {}
        result = follow(&notices) => {
            if let Err(error) = result {
                tracing::info!("no sleep notices from logind ({error}); a resume is found by the clocks");
            }
        }
    }
}

/// Follows logind's sleeps until the bus goes or `notices` is closed; an
/// error when there is no bus or no logind to follow.
async fn follow(notices: &mpsc::Sender<Notice>) -> zbus::Result<()> {
    let connection = zbus::Connection::system().await?;
    let manager = zbus::Proxy::new(&connection, LOGIND, MANAGER_PATH, MANAGER).await?;
    let mut signals = manager.receive_signal("PrepareForSleep").await?;
    let mut lock = Some(inhibit(&manager).await?);
    tracing::info!("following logind: the peers are told before this machine sleeps");
    while let Some(signal) = signals.next().await {
        let sleeping: bool = match signal.body().deserialize() {
            Ok(sleeping) => sleeping,
            Err(error) => {
                tracing::warn!(%error, "a PrepareForSleep signal without its boolean; ignored");
                continue;
            }
        };
        if sleeping {
            let (done, told) = oneshot::channel();
            if notices.send(Notice::Sleeping(Done(done))).await.is_err() {
                return Ok(());
            }
            // Once the peers were told (or the daemon stops).
            let _ = told.await;
            // Released: the sleep goes on.
            drop(lock.take());
        } else {
            if lock.is_none() {
                lock = inhibit(&manager)
                    .await
                    .inspect_err(|error| tracing::warn!(%error, "cannot take logind's sleep lock again"))
                    .ok();
            }
            if notices.send(Notice::Woke).await.is_err() {
                return Ok(());
            }
        }
    }
    Ok(())
}

/// Takes a delay lock on sleep: logind holds the sleep until the descriptor
/// is closed.
async fn inhibit(manager: &zbus::Proxy<'_>) -> zbus::Result<OwnedFd> {
    let why = "tell the other nodes of the mesh before sleeping";
    manager.call("Inhibit", &("sleep", "agentmesh", why, "delay")).await
}
