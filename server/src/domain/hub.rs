//! In-process fan-out of change signals to open streams. A signal carries a
//! snapshot published only after the change it shows committed, so a
//! stream may use it without reading the store again; a lagging receiver,
//! which may have missed some, re-reads the store, which stays the single
//! source of truth.
//! One server process only: several processes would need the database's
//! notifications (e.g. PostgreSQL LISTEN/NOTIFY) behind the same interface.

use std::{collections::HashMap, hash::Hash, sync::Mutex};

use tokio::sync::broadcast;

const CAPACITY: usize = 32;

/// Topics of type `K`, each a broadcast channel of `E`.
pub(crate) struct Hub<K, E> {
    channels: Mutex<HashMap<K, broadcast::Sender<E>>>,
}

impl<K: Eq + Hash + Clone, E: Clone> Hub<K, E> {
    pub(crate) fn new() -> Self {
        Self {
            channels: Mutex::new(HashMap::new()),
        }
    }

    fn channels(&self) -> std::sync::MutexGuard<'_, HashMap<K, broadcast::Sender<E>>> {
        // A panic while holding this lock cannot leave the map inconsistent
        // (every operation is a single insert, get or retain), so a
        // poisoned lock is safe to keep using.
        self.channels
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Subscribes to `topic`.
    pub(crate) fn subscribe(&self, topic: &K) -> broadcast::Receiver<E> {
        self.channels()
            .entry(topic.clone())
            .or_insert_with(|| broadcast::channel(CAPACITY).0)
            .subscribe()
    }

    /// Sends `event` to `topic`'s subscribers, if any.
    pub(crate) fn publish(&self, topic: &K, event: E) {
        let mut channels = self.channels();
        if let Some(sender) = channels.get(topic) {
            if sender.send(event).is_err() {
                channels.remove(topic);
            }
        }
    }

    /// Drops topics nobody listens to.
    pub(crate) fn prune(&self) {
        self.channels().retain(|_, s| s.receiver_count() > 0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn subscribers_get_their_topics_events_only() {
        let hub: Hub<u32, &str> = Hub::new();
        let mut one = hub.subscribe(&1);
        let mut two = hub.subscribe(&2);
        hub.publish(&1, "a");
        assert_eq!(one.recv().await.ok(), Some("a"));
        assert!(two.try_recv().is_err());
    }

    #[test]
    fn topics_without_listeners_are_pruned() {
        let hub: Hub<u32, ()> = Hub::new();
        drop(hub.subscribe(&1));
        let _kept = hub.subscribe(&2);
        hub.prune();
        assert_eq!(hub.channels().len(), 1);
        hub.publish(&3, ());
        assert_eq!(hub.channels().len(), 1);
    }
}
