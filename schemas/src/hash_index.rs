//! The ledger's index of live keys: 64-bit key hashes → record slots, in open-addressing
//! tables of (hash, slot) pairs with linear probing. A hash's top bits pick its table and
//! the table keeps its low 32 bits, so the index tells hashes apart by those 42 bits (the
//! ledger confirms every hit against the record's own key anyway); a bucket is 8 bytes, and
//! the index of a million keys about 16–32 MB, half of what full hashes and slots took, so
//! more of the buckets a stream's new keys land in are within the TLB's reach.
//!
//! A general hash map keeps control bytes and entries apart, so inserting a new key (every
//! fresh record) touches two cache lines of a table far larger than the caches. Here a probe
//! reads one line, and [`HashIndex::prefetch`] can start loading it while earlier records
//! are applied. The hashes are already uniform (the ledger's `foldhash`): their top bits
//! pick one of [`PARTS`] tables, their low bits the bucket. Each table doubles on its own,
//! so growing never rehashes the whole index at once (a single table of a million keys
//! stalls its epoch for about 100 ms when it doubles).

/// Marks an empty bucket; a slot that does not fit below it is not indexed (see
/// [`HashIndex::insert_new`]).
const EMPTY: u32 = u32::MAX;

/// The low 32 bits of a hash, and a slot.
type Bucket = (u32, u32);

/// Tables in an index (a power of two), picked by a hash's top bits. Their sizes differ by a
/// few percent, so their doublings spread over that many percent of the inserts.
const PARTS: usize = 1024;

#[derive(Debug, Clone)]
pub(crate) struct HashIndex {
    parts: Vec<Table>,
    /// Keys in all parts (the ledger asks after every retraction).
    len: usize,
}

impl Default for HashIndex {
    fn default() -> Self {
        HashIndex {
            parts: vec![Table::default(); PARTS],
            len: 0,
        }
    }
}

impl HashIndex {
    fn part(&self, hash: u64) -> usize {
        (hash >> (64 - PARTS.trailing_zeros())) as usize
    }

    pub(crate) fn len(&self) -> usize {
        self.len
    }

    pub(crate) fn get(&self, hash: u64) -> Option<usize> {
        self.parts[self.part(hash)].get(hash)
    }

    /// Indexes `slot` under `hash` unless `hash` is already there, or `slot` does not fit in
    /// a bucket (beyond 4·10⁹ records): false then (nothing changes; the ledger keeps such a
    /// key by itself).
    pub(crate) fn insert_new(&mut self, hash: u64, slot: usize) -> bool {
        let p = self.part(hash);
        let inserted = self.parts[p].insert_new(hash, slot);
        self.len += usize::from(inserted);
        inserted
    }

    /// Removes `hash`, returning its slot.
    pub(crate) fn remove(&mut self, hash: u64) -> Option<usize> {
        let p = self.part(hash);
        let removed = self.parts[p].remove(hash);
        self.len -= usize::from(removed.is_some());
        removed
    }

    pub(crate) fn clear(&mut self) {
        self.parts.iter_mut().for_each(Table::clear);
        self.len = 0;
    }

    /// Starts loading the bucket where a probe for `hash` begins (a hint: no effect but on
    /// the caches).
    pub(crate) fn prefetch(&self, hash: u64) {
        let t = &self.parts[self.part(hash)];
        crate::prefetch::line(&t.buckets[t.home(hash)]);
    }
}

/// One open-addressing table.
#[derive(Debug, Clone)]
struct Table {
    /// (low hash bits, slot); `slot == EMPTY` where the bucket is free. A power of two long,
    /// at most half full, so probe runs stay short.
    buckets: Vec<Bucket>,
    len: usize,
}

impl Default for Table {
    fn default() -> Self {
        Table {
            buckets: vec![(0, EMPTY); 8],
            len: 0,
        }
    }
}

impl Table {
    fn mask(&self) -> usize {
        self.buckets.len() - 1
    }

    fn home(&self, hash: u64) -> usize {
        (hash as u32) as usize & self.mask()
    }

    /// The bucket holding `hash`, or the free one that ends its probe run.
    fn find(&self, hash: u64) -> usize {
        let low = hash as u32;
        let mut b = self.home(hash);
        loop {
            let (h, slot) = self.buckets[b];
            if slot == EMPTY || h == low {
                return b;
            }
            b = (b + 1) & self.mask();
        }
    }

    fn get(&self, hash: u64) -> Option<usize> {
        let (_, slot) = self.buckets[self.find(hash)];
        (slot != EMPTY).then_some(slot as usize)
    }

    fn insert_new(&mut self, hash: u64, slot: usize) -> bool {
        let Ok(slot) = u32::try_from(slot) else {
            return false;
        };
        if slot == EMPTY {
            return false;
        }
        let b = self.find(hash);
        if self.buckets[b].1 != EMPTY {
            return false;
        }
        self.buckets[b] = (hash as u32, slot);
        self.len += 1;
        if 2 * self.len > self.buckets.len() {
            self.grow();
        }
        true
    }

    /// Removes `hash`, returning its slot. The entries after it in its probe run move back
    /// into the gap where their own probe allows (backward-shift deletion: no tombstones).
    fn remove(&mut self, hash: u64) -> Option<usize> {
        let mut gap = self.find(hash);
        let (_, slot) = self.buckets[gap];
        if slot == EMPTY {
            return None;
        }
        self.buckets[gap].1 = EMPTY;
        self.len -= 1;
        let slot = slot as usize;
        let mut b = gap;
        loop {
            b = (b + 1) & self.mask();
            let (h, s) = self.buckets[b];
            if s == EMPTY {
                return Some(slot);
            }
            // The entry at b may fill the gap if its home is not in the (cyclic) run (gap, b].
            let home = self.home(u64::from(h));
            let reachable = if gap <= b {
                home <= gap || home > b
            } else {
                home <= gap && home > b
            };
            if reachable {
                self.buckets[gap] = (h, s);
                self.buckets[b].1 = EMPTY;
                gap = b;
            }
        }
    }

    fn clear(&mut self) {
        self.buckets.fill((0, EMPTY));
        self.len = 0;
    }

    fn grow(&mut self) {
        let wider = vec![(0, EMPTY); 2 * self.buckets.len()];
        let old = std::mem::replace(&mut self.buckets, wider);
        for (h, s) in old.into_iter().filter(|&(_, s)| s != EMPTY) {
            let b = self.find(u64::from(h));
            self.buckets[b] = (h, s);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::HashIndex;

    /// Random inserts, lookups and removals agree with a `HashMap`, with hashes squeezed into
    /// a few bits so that probe runs collide, wrap around the table's end and are shifted
    /// back by removals.
    #[test]
    fn agrees_with_a_hash_map() {
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        // The bits the index tells hashes apart by: the table's (top 10) and the bucket's
        // (low 32).
        let kept = |h: u64| h & !(((1u64 << 22) - 1) << 32);
        for bits in [3u32, 6, 12, 64] {
            let mut index = HashIndex::default();
            let mut reference: HashMap<u64, usize> = HashMap::new();
            for slot in 0..4000 {
                let hash = if bits == 64 {
                    kept(next())
                } else {
                    next() % (1 << bits)
                };
                match next() % 3 {
                    0 => assert_eq!(index.remove(hash), reference.remove(&hash)),
                    _ => {
                        let fresh = !reference.contains_key(&hash);
                        if fresh {
                            reference.insert(hash, slot);
                        }
                        assert_eq!(index.insert_new(hash, slot), fresh);
                    }
                }
                assert_eq!(index.len(), reference.len());
                let probe = next() % (1 << bits.min(12));
                assert_eq!(index.get(probe), reference.get(&probe).copied());
            }
            for (&h, &s) in &reference {
                assert_eq!(index.get(h), Some(s), "bits {bits}");
            }
            // A slot too large for a bucket is refused, and nothing changes.
            assert!(!index.insert_new(u64::MAX - 5, u32::MAX as usize));
            assert!(!index.insert_new(u64::MAX - 5, usize::MAX - 1));
            assert_eq!(index.len(), reference.len());
            index.clear();
            assert_eq!(
                (
                    index.len(),
                    index.get(reference.keys().next().copied().unwrap_or(0))
                ),
                (0, None)
            );
        }
    }
}
