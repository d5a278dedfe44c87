//! Tasks that outlive what started them (a handoff's driver outlives the HTTP
//! request that began it; a message to the peer outlives the step that sent
//! it): owned by a [`TaskSet`], which whoever holds it stops when it stops,
//! instead of leaving them to the runtime.

use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use tokio::task::JoinSet;

/// A set of background tasks, cheap to clone (the clones share it); finished
/// ones leave it as new ones come.
#[derive(Clone, Default)]
pub(crate) struct TaskSet(Arc<Mutex<Tasks>>);

#[derive(Default)]
struct Tasks {
    running: JoinSet<()>,
    /// Set by `shutdown`: what is spawned after it would outlive its owner.
    closed: bool,
}

impl TaskSet {
    /// Runs `task` until it ends or the set shuts down. Once the set is shut
    /// down, `task` is dropped without running.
    pub(crate) fn spawn(&self, task: impl Future<Output = ()> + Send + 'static) {
        let mut tasks = self.lock();
        if tasks.closed {
            return;
        }
        while tasks.running.try_join_next().is_some() {}
        tasks.running.spawn(task);
    }

    /// Aborts every task and waits until each one is gone; the set takes no
    /// new ones after this.
    pub(crate) async fn shutdown(&self) {
        let mut running = {
            let mut tasks = self.lock();
            tasks.closed = true;
            std::mem::take(&mut tasks.running)
        };
        running.shutdown().await;
    }

    fn lock(&self) -> MutexGuard<'_, Tasks> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use tokio::sync::oneshot;

    use super::*;

    /// A task that runs until it is dropped, and the receiver that tells so.
    fn forever() -> (impl Future<Output = ()> + Send + 'static, oneshot::Receiver<()>) {
        let (alive, gone) = oneshot::channel::<()>();
        let task = async move {
            let _alive = alive;
            std::future::pending::<()>().await;
        };
        (task, gone)
    }

    #[tokio::test]
    async fn shutdown_stops_a_task_that_would_run_forever() {
        let tasks = TaskSet::default();
        let (task, gone) = forever();
        tasks.clone().spawn(task);
        tasks.shutdown().await;
        let gone = tokio::time::timeout(std::time::Duration::from_secs(5), gone).await;
        assert!(matches!(gone, Ok(Err(_))), "the task, and the sender it held, were dropped");
    }

    #[tokio::test]
    async fn a_task_spawned_after_shutdown_never_runs() {
        let tasks = TaskSet::default();
        tasks.shutdown().await;
        let (ran, told) = oneshot::channel::<()>();
        tasks.spawn(async move {
            let _ = ran.send(());
        });
        tokio::task::yield_now().await;
        assert!(told.await.is_err(), "the task was dropped, not run");
        assert!(tasks.lock().running.is_empty());
    }

    #[tokio::test]
    async fn finished_tasks_leave_the_set() {
        let tasks = TaskSet::default();
        for _ in 0..3 {
            tasks.spawn(async {});
            tokio::task::yield_now().await;
        }
        tasks.spawn(std::future::pending());
        assert_eq!(tasks.lock().running.len(), 1, "only the running task is kept");
    }
}
