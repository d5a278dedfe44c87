//! Tasks that outlive what started them (a handoff driver outlives the HTTP
//! request that began the handoff): owned here, so the controller stops them
//! when it stops instead of leaving them to the runtime.

use std::future::Future;
use std::sync::{Mutex, MutexGuard, PoisonError};

use tokio::task::JoinSet;

/// A set of background tasks; finished ones leave it as new ones come.
#[derive(Default)]
pub struct TaskSet {
    tasks: Mutex<JoinSet<()>>,
}

impl TaskSet {
    pub fn spawn(&self, task: impl Future<Output = ()> + Send + 'static) {
        let mut tasks = self.lock();
        while tasks.try_join_next().is_some() {}
        tasks.spawn(task);
    }

    /// Aborts every task and waits until each one is gone. The set stays
    /// usable: a task spawned after this runs until the next shutdown.
    pub async fn shutdown(&self) {
        let mut tasks = std::mem::take(&mut *self.lock());
        tasks.shutdown().await;
    }

    fn lock(&self) -> MutexGuard<'_, JoinSet<()>> {
        self.tasks.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use tokio::sync::oneshot;

    use super::*;

    #[tokio::test]
    async fn shutdown_stops_a_task_that_would_run_forever() {
        let tasks = TaskSet::default();
        let (alive, gone) = oneshot::channel::<()>();
        tasks.spawn(async move {
            let _alive = alive;
            std::future::pending::<()>().await;
        });
        tasks.shutdown().await;
        let gone = tokio::time::timeout(std::time::Duration::from_secs(5), gone).await;
        assert!(matches!(gone, Ok(Err(_))), "the task, and the sender it held, were dropped");
    }

    #[tokio::test]
    async fn finished_tasks_leave_the_set() {
        let tasks = TaskSet::default();
        for _ in 0..3 {
            tasks.spawn(async {});
            tokio::task::yield_now().await;
        }
        tasks.spawn(std::future::pending());
        assert_eq!(tasks.lock().len(), 1, "only the running task is kept");
    }
}
