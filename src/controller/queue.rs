//! The work queue: object keys waiting to be reconciled, each at most once, the
//! earliest requested time winning; a key that is being reconciled is never handed
//! out twice, and a request that arrives meanwhile runs once it is done. When a
//! failed key runs again is `crate::backoff`'s to say.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::hash::Hash;

use tokio::time::Instant;

pub(crate) struct WorkQueue<K> {
    /// When each waiting key is due, and its place in `order`.
    due: HashMap<K, (Instant, u64)>,
    /// The same keys ordered by due time (a sequence number keeps it total).
    order: BTreeSet<(Instant, u64, K)>,
    sequence: u64,
    running: HashSet<K>,
    /// Keys asked for while running: when they finish, they run again at this time.
    again: HashMap<K, Instant>,
}

impl<K: Clone + Eq + Hash + Ord> Default for WorkQueue<K> {
    fn default() -> Self {
        WorkQueue {
            due: HashMap::new(),
            order: BTreeSet::new(),
            sequence: 0,
            running: HashSet::new(),
            again: HashMap::new(),
        }
    }
}

impl<K: Clone + Eq + Hash + Ord> WorkQueue<K> {
    /// Asks for `key` to be reconciled at `at`. A key already waiting keeps the
    /// earlier of the two times.
    pub(crate) fn schedule(&mut self, key: K, at: Instant) {
        if self.running.contains(&key) {
            let slot = self.again.entry(key).or_insert(at);
            *slot = (*slot).min(at);
            return;
        }
        if let Some(&(current, sequence)) = self.due.get(&key) {
            if current <= at {
                return;
            }
            self.order.remove(&(current, sequence, key.clone()));
        }
        self.sequence += 1;
        self.order.insert((at, self.sequence, key.clone()));
        self.due.insert(key, (at, self.sequence));
    }

    /// When the next waiting key is due.
    pub(crate) fn next_due(&self) -> Option<Instant> {
        self.order.first().map(|(at, _, _)| *at)
    }

    /// Takes the next key due at `now`, marking it running.
    pub(crate) fn pop_due(&mut self, now: Instant) -> Option<K> {
        let (at, _, _) = self.order.first()?;
        if *at > now {
            return None;
        }
        let (_, _, key) = self.order.pop_first()?;
        self.due.remove(&key);
        self.running.insert(key.clone());
        Some(key)
    }

    /// Marks `key` finished. `then` is when it should run again (its requeue),
    /// if at all; a request made while it ran also counts, the earlier winning.
    pub(crate) fn finish(&mut self, key: &K, then: Option<Instant>) {
        self.running.remove(key);
        let asked = self.again.remove(key);
        let next = match (then, asked) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        if let Some(at) = next {
            self.schedule(key.clone(), at);
        }
    }

    pub(crate) fn running(&self) -> usize {
        self.running.len()
    }

    /// How many keys wait (not counting those running).
    pub(crate) fn waiting(&self) -> usize {
        self.due.len()
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn secs(n: u64) -> Duration {
        Duration::from_secs(n)
    }

    #[tokio::test(start_paused = true)]
    async fn scheduling_a_key_twice_keeps_the_earlier_time() {
        let now = Instant::now();
        let mut queue = WorkQueue::default();
        queue.schedule("a", now + secs(10));
        queue.schedule("a", now + secs(5));
        queue.schedule("a", now + secs(20));
        assert_eq!(queue.next_due(), Some(now + secs(5)));
        assert_eq!(queue.pop_due(now + secs(5)), Some("a"));
        assert_eq!(queue.pop_due(now + secs(100)), None, "one key is handed out once");
    }

    #[tokio::test(start_paused = true)]
    async fn keys_come_out_in_due_order_and_not_before_they_are_due() {
        let now = Instant::now();
        let mut queue = WorkQueue::default();
        queue.schedule("late", now + secs(3));
        queue.schedule("early", now + secs(1));
        assert_eq!(queue.pop_due(now), None);
        tokio::time::advance(secs(1)).await;
        assert_eq!(queue.pop_due(Instant::now()), Some("early"));
        assert_eq!(queue.pop_due(Instant::now()), None);
        tokio::time::advance(secs(2)).await;
        assert_eq!(queue.pop_due(Instant::now()), Some("late"));
    }

    #[tokio::test(start_paused = true)]
    async fn a_running_key_is_not_handed_out_again_but_runs_after_it_finishes() {
        let now = Instant::now();
        let mut queue = WorkQueue::default();
        queue.schedule("a", now);
        assert_eq!(queue.pop_due(now), Some("a"));
        queue.schedule("a", now);
        assert_eq!(queue.pop_due(now), None, "never two reconciles of one key at once");
        queue.finish(&"a", Some(now + secs(60)));
        assert_eq!(queue.next_due(), Some(now), "the request made while running wins over the requeue");
        assert_eq!(queue.pop_due(now), Some("a"));
        queue.finish(&"a", None);
        assert_eq!(queue.next_due(), None);
    }
}
