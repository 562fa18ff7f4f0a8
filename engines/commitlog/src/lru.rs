//! A small least-recently-used map (bounds the ConsumeQueue files kept open and mapped).

use std::collections::{BTreeMap, HashMap};
use std::hash::Hash;

/// A map of at most `capacity` entries that forgets the least recently used one when full.
#[derive(Debug)]
pub struct Lru<K, V> {
    capacity: usize,
    tick: u64,
    map: HashMap<K, (V, u64)>,
    order: BTreeMap<u64, K>,
}

impl<K: Hash + Eq + Clone, V: Clone> Lru<K, V> {
    /// An empty map holding at most `capacity` (at least 1) entries.
    pub fn new(capacity: usize) -> Self {
        Lru { capacity: capacity.max(1), tick: 0, map: HashMap::new(), order: BTreeMap::new() }
    }

    /// The value for `key`, marking it most recently used.
    pub fn get(&mut self, key: &K) -> Option<V> {
        self.tick += 1;
        let tick = self.tick;
        let (value, used) = self.map.get_mut(key)?;
        self.order.remove(used);
        *used = tick;
        self.order.insert(tick, key.clone());
        Some(value.clone())
    }

    /// Inserts `key` as most recently used; returns the entry evicted to make room, if any.
    pub fn insert(&mut self, key: K, value: V) -> Option<(K, V)> {
        self.tick += 1;
        if let Some((_, used)) = self.map.insert(key.clone(), (value, self.tick)) {
            self.order.remove(&used);
        }
        self.order.insert(self.tick, key);
        if self.map.len() > self.capacity
            && let Some((_, old)) = self.order.pop_first()
        {
            return self.map.remove(&old).map(|(v, _)| (old, v));
        }
        None
    }

    /// Removes every entry whose key matches `pred`.
    pub fn remove_where(&mut self, mut pred: impl FnMut(&K) -> bool) {
        let keys: Vec<K> = self.map.keys().filter(|k| pred(k)).cloned().collect();
        for k in keys {
            if let Some((_, used)) = self.map.remove(&k) {
                self.order.remove(&used);
            }
        }
    }

    /// How many entries the map holds.
    pub fn len(&self) -> usize {
        self.map.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn evicts_the_least_recently_used() {
        let mut lru = Lru::new(2);
        assert!(lru.insert(1, "a").is_none());
        assert!(lru.insert(2, "b").is_none());
        assert_eq!(lru.get(&1), Some("a"));
        assert_eq!(lru.insert(3, "c"), Some((2, "b")));
        assert_eq!(lru.get(&2), None);
        assert_eq!(lru.len(), 2);
        lru.remove_where(|k| *k == 1);
        assert_eq!(lru.get(&1), None);
        assert_eq!(lru.len(), 1);
    }
}
