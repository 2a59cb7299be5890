//! Batch dedupe and retraction (DESIGN §4), applied in arrival order: an identical duplicate
//! is ignored; a different record with a live id is a conflict (the first stays); a
//! retraction cancels the live record with its id. The streaming engine keeps one ledger per
//! worker (its share of the keys), so it agrees with this on every prefix.

use std::borrow::Borrow;
use std::collections::HashMap;
use std::hash::BuildHasher;

use crate::chunked::Chunked;
use crate::error::RecordError;
use crate::hash_index::HashIndex;
use crate::record::{Layout, Match};

#[derive(Clone, Debug, PartialEq)]
pub enum Outcome<R = Box<Match>> {
    Inserted,
    Duplicate,
    /// The live record the retraction cancelled.
    Retracted(R),
    /// Rejected: goes to the dead letters.
    Rejected(String),
}

/// Slots freed by retractions are reclaimed once they outnumber the live records by this
/// margin, so a stream with a fixed live size holds a bounded number of records.
const SLACK: usize = 16;

/// The ledger holds each live record as an `R`: a `Box<Match>` by default, or a
/// [`SharedMatch`](crate::SharedMatch) where the caller keeps the record's batch too (the
/// engine), so applying it copies nothing.
#[derive(Debug)]
pub struct Ledger<R = Box<Match>> {
    layout: Layout,
    /// Each live key's slot, by the key's 64-bit hash (not the key itself: no copy of every
    /// id, and a quarter of the memory). A hit is confirmed against the slot's record, so two
    /// keys with one hash are told apart: the later one's slot goes to `collided`.
    live: HashIndex,
    /// Live keys whose hash another live key already had, by the key itself. Empty unless two
    /// keys ever share a 64-bit hash.
    collided: HashMap<String, usize, foldhash::fast::RandomState>,
    /// Records in arrival order; `None` where one was retracted (until compaction). In
    /// chunks, so that growing never copies the records held.
    slots: Chunked<Option<R>>,
    /// Slots before this have been offered [`Kept::release_shared`] since they were kept.
    settled: usize,
    /// Bits of the key hash used: all of them, except in tests that force collisions.
    hash_mask: u64,
}

/// Where a live key's slot is indexed.
enum Place {
    Hashed(u64),
    Collided(String),
}

impl Ledger {
    pub fn new(layout: Layout) -> Self {
        Ledger::holding(layout)
    }
}

/// What a ledger keeps for a live record: something it can read the [`Match`] from.
pub trait Kept: Borrow<Match> {
    /// Lets go of memory shared with records no longer kept: called on every live record
    /// when the ledger compacts, and on the records kept since the last [`Ledger::settle`]. A
    /// [`SharedMatch`](crate::SharedMatch) copies itself out of a batch most of whose records
    /// are gone; anything else keeps nothing shared.
    fn release_shared(&mut self) {}
}

impl Kept for Box<Match> {}
impl Kept for &Match {}

impl<R: Kept> Ledger<R> {
    /// An empty ledger holding its records as `R`.
    pub fn holding(layout: Layout) -> Self {
        Ledger {
            layout,
            live: HashIndex::default(),
            collided: HashMap::default(),
            slots: Chunked::default(),
            settled: 0,
            hash_mask: u64::MAX,
        }
    }

    /// A ledger that keeps only `bits` bits of each key hash, so that distinct keys collide
    /// (tests of the collision path).
    #[cfg(test)]
    fn with_hash_bits(layout: Layout, bits: u32) -> Self {
        Ledger {
            hash_mask: (1u64 << bits) - 1,
            ..Ledger::holding(layout)
        }
    }

    /// The dedupe key's hash (`Match::key`'s parts, without building the key).
    fn hash(&self, m: &Match) -> u64 {
        let state = foldhash::fast::FixedState::with_seed(0x6e61_7368_666c_6f77);
        let h = match self.layout {
            Layout::Match => state.hash_one(m.match_id.as_str()),
            Layout::Perspective => state.hash_one((
                m.match_id.as_str(),
                m.policy_i.as_str(),
                m.policy_j.as_str(),
            )),
        };
        h & self.hash_mask
    }

    /// Whether `a` and `b` have the same dedupe key.
    fn same_key(&self, a: &Match, b: &Match) -> bool {
        a.match_id == b.match_id
            && (self.layout == Layout::Match
                || (a.policy_i == b.policy_i && a.policy_j == b.policy_j))
    }

    /// The live slot holding `m`'s key, and where it is indexed.
    fn locate(&self, h: u64, m: &Match) -> Option<(Place, usize)> {
        if let Some(slot) = self.live.get(h) {
            let held = self.slots[slot]
                .as_ref()
                .expect("a live key has its record");
            if self.same_key(held.borrow(), m) {
                return Some((Place::Hashed(h), slot));
            }
        }
        if self.collided.is_empty() {
            return None;
        }
        let key = m.key(self.layout);
        let slot = *self.collided.get(&key)?;
        Some((Place::Collided(key), slot))
    }

    /// Indexes live slot `slot` of a record with key hash `h`.
    fn index(&mut self, h: u64, slot: usize) {
        if !self.live.insert_new(h, slot) {
            let m: &Match = self.slots[slot]
                .as_ref()
                .expect("indexed slots are live")
                .borrow();
            self.collided.insert(m.key(self.layout), slot);
        }
    }

    /// Starts loading the index bucket that applying `m` will probe: called a few records
    /// ahead, it overlaps that cache miss with the records in between. A hint only.
    pub fn prefetch(&self, m: &Match) {
        self.live.prefetch(self.hash(m));
    }

    pub fn apply(&mut self, record: impl Into<R>) -> Outcome<R> {
        let record: R = record.into();
        let m: &Match = record.borrow();
        let h = self.hash(m);
        match (self.locate(h, m), m.retract) {
            (Some((place, slot)), true) => {
                match place {
                    Place::Hashed(h) => self.live.remove(h),
                    Place::Collided(key) => self.collided.remove(&key),
                };
                let old = self.slots[slot].take().expect("a live key has its record");
                self.compact();
                Outcome::Retracted(old)
            }
            (None, true) => Outcome::Rejected(format!(
                "retraction of match_id `{}`, which is not live",
                m.match_id
            )),
            (Some((_, slot)), false) => {
                if self.slots[slot]
                    .as_ref()
                    .is_some_and(|old| old.borrow().same_content(m))
                {
                    Outcome::Duplicate
                } else {
                    Outcome::Rejected(format!(
                        "conflict: match_id `{}` was already seen with different content; the first is kept",
                        m.match_id
                    ))
                }
            }
            (None, false) => {
                let slot = self.slots.len();
                self.slots.push(Some(record));
                self.index(h, slot);
                Outcome::Inserted
            }
        }
    }

    /// Drops retracted slots once they outnumber the live records (amortised O(1) per
    /// retraction); arrival order is kept.
    fn compact(&mut self) {
        if self.slots.len() <= 2 * self.len() + SLACK {
            return;
        }
        self.slots.retain(Option::is_some);
        for k in 0..self.slots.len() {
            if let Some(r) = &mut self.slots[k] {
                r.release_shared();
            }
        }
        self.settled = self.slots.len();
        self.live.clear();
        self.collided.clear();
        for k in 0..self.slots.len() {
            let m: &Match = self.slots[k]
                .as_ref()
                .expect("retained slots are live")
                .borrow();
            let h = self.hash(m);
            self.index(h, k);
        }
    }

    /// Applies `m`, turning a rejection into a dead letter for (source, row).
    pub fn apply_or_dead_letter(
        &mut self,
        m: impl Into<R>,
        source: &str,
        row: u64,
    ) -> Result<Outcome<R>, RecordError> {
        let m: R = m.into();
        let raw = serde_json::to_string(m.borrow()).unwrap_or_default();
        match self.apply(m) {
            Outcome::Rejected(reason) => Err(RecordError {
                source_name: source.into(),
                row,
                field: Some("match_id".into()),
                reason,
                raw,
            }),
            ok => Ok(ok),
        }
    }

    /// The live matches in arrival order.
    pub fn live(&self) -> impl Iterator<Item = &Match> {
        self.slots.iter().flatten().map(Borrow::borrow)
    }

    pub fn len(&self) -> usize {
        self.live.len() + self.collided.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Lets the records kept since the last call go of shared memory they do not need (see
    /// [`Kept::release_shared`]): call it after each batch, so that a batch of mostly
    /// duplicates, rejections and retractions is not kept whole for its few new records.
    pub fn settle(&mut self) {
        for k in self.settled..self.slots.len() {
            if let Some(r) = &mut self.slots[k] {
                r.release_shared();
            }
        }
        self.settled = self.slots.len();
    }

    /// Records held, live or awaiting reclamation (the ledger's memory in records).
    pub fn held(&self) -> usize {
        self.slots.len()
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::{Ledger, Outcome};
    use crate::record::{Layout, Match};

    /// The ledger's rules on the full key (the index as it was before keys were hashed).
    #[derive(Default)]
    struct Reference {
        live: HashMap<String, usize>,
        slots: Vec<Option<Match>>,
    }

    impl Reference {
        fn apply(&mut self, m: &Match, layout: Layout) -> Outcome<Match> {
            let key = m.key(layout);
            match (self.live.get(&key).copied(), m.retract) {
                (Some(slot), true) => {
                    self.live.remove(&key);
                    Outcome::Retracted(self.slots[slot].take().unwrap())
                }
                (None, true) => Outcome::Rejected(String::new()),
                (Some(slot), false) => {
                    if self.slots[slot].as_ref().unwrap().same_content(m) {
                        Outcome::Duplicate
                    } else {
                        Outcome::Rejected(String::new())
                    }
                }
                (None, false) => {
                    self.live.insert(key, self.slots.len());
                    self.slots.push(Some(m.clone()));
                    Outcome::Inserted
                }
            }
        }
    }

    /// A small xorshift stream of matches over few ids: duplicates, conflicts, retractions
    /// (of live and of unknown ids) and, in perspective layout, both seats of one id.
    fn stream(seed: u64, len: usize) -> Vec<Match> {
        let mut x = seed.max(1);
        let mut next = move |k: u64| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x % k
        };
        let names = ["a", "b", "c"];
        (0..len)
            .map(|_| {
                let (i, j) = (next(3) as usize, next(3) as usize);
                let mut m = Match::new(
                    format!("m{}", next(40)),
                    "g",
                    names[i],
                    names[j],
                    next(3) as f64,
                    0.0,
                );
                m.retract = next(5) == 0;
                m
            })
            .collect()
    }

    /// Hashed keys give the same outcomes and live records as full keys, with the full hash
    /// and with hashes cut to 2 bits (every id then shares a hash with others), in both
    /// layouts, through retractions and the slot reclamation they trigger.
    #[test]
    fn hashed_keys_agree_with_full_keys_even_when_hashes_collide() {
        for layout in [Layout::Match, Layout::Perspective] {
            for bits in [64, 2, 0] {
                for seed in 1..20 {
                    let mut ledger: Ledger<Box<Match>> = if bits == 64 {
                        Ledger::holding(layout)
                    } else {
                        Ledger::with_hash_bits(layout, bits)
                    };
                    let mut reference = Reference::default();
                    let mut collided = 0;
                    for (k, m) in stream(seed, 400).iter().enumerate() {
                        let got = ledger.apply(m.clone());
                        let want = reference.apply(m, layout);
                        let same = match (&got, &want) {
                            (Outcome::Inserted, Outcome::Inserted)
                            | (Outcome::Duplicate, Outcome::Duplicate)
                            | (Outcome::Rejected(_), Outcome::Rejected(_)) => true,
                            (Outcome::Retracted(a), Outcome::Retracted(b)) => **a == *b,
                            _ => false,
                        };
                        assert!(
                            same,
                            "{layout:?} bits={bits} seed={seed} record {k}: {got:?} vs {want:?}"
                        );
                        let live: Vec<&Match> = ledger.live().collect();
                        let want: Vec<&Match> = reference.slots.iter().flatten().collect();
                        assert_eq!(live, want, "{layout:?} bits={bits} seed={seed} record {k}");
                        assert_eq!(ledger.len(), reference.live.len());
                        collided = collided.max(ledger.collided.len());
                    }
                    // Cut hashes do collide, so the fallback index was exercised.
                    assert_eq!(
                        collided > 0,
                        bits < 64,
                        "{layout:?} bits={bits} seed={seed}"
                    );
                }
            }
        }
    }
}
