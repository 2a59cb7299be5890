//! A list held in fixed-size chunks (all full but the last): a position is still found in
//! O(1), and growing never moves what is held. A doubling `Vec` of a million records copies
//! tens of megabytes within one push, which stalls the epoch a live engine is in.

use std::ops::{Index, IndexMut};

/// Entries per chunk, as a power of two.
const CHUNK_BITS: u32 = 14;

#[derive(Debug, Clone)]
pub struct Chunked<T> {
    bits: u32,
    chunks: Vec<Vec<T>>,
}

impl<T> Default for Chunked<T> {
    fn default() -> Self {
        Chunked::with_chunk_bits(CHUNK_BITS)
    }
}

impl<T> Chunked<T> {
    /// Chunks of 2^`bits` entries (tests use small ones to cross chunk boundaries).
    pub fn with_chunk_bits(bits: u32) -> Self {
        Chunked {
            bits,
            chunks: Vec::new(),
        }
    }

    fn split(&self, k: usize) -> (usize, usize) {
        (k >> self.bits, k & ((1 << self.bits) - 1))
    }

    pub fn len(&self) -> usize {
        self.chunks.last().map_or(0, |last| {
            ((self.chunks.len() - 1) << self.bits) + last.len()
        })
    }

    pub fn is_empty(&self) -> bool {
        self.chunks.is_empty()
    }

    pub fn last(&self) -> Option<&T> {
        self.chunks.last().and_then(|c| c.last())
    }

    pub fn push(&mut self, x: T) {
        // A chunk grows by doubling up to its full size (a power of two, so no slack): a
        // short list (one small game's Elo log) holds no more than a `Vec` would.
        match self.chunks.last_mut() {
            Some(c) if c.len() < 1 << self.bits => c.push(x),
            _ => self.chunks.push(vec![x]),
        }
    }

    /// The entries from position `k` on, in order.
    pub fn iter_from(&self, k: usize) -> impl Iterator<Item = &T> {
        let (first, offset) = self.split(k);
        self.chunks
            .get(first..)
            .unwrap_or_default()
            .iter()
            .enumerate()
            .flat_map(move |(c, chunk)| &chunk[if c == 0 { offset } else { 0 }..])
    }

    pub fn iter(&self) -> impl Iterator<Item = &T> {
        self.chunks.iter().flatten()
    }

    /// The first position where `pred` is false, for a `pred` true on a prefix (as
    /// [`slice::partition_point`]).
    pub fn partition_point(&self, mut pred: impl FnMut(&T) -> bool) -> usize {
        let (mut lo, mut hi) = (0, self.len());
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            if pred(&self[mid]) {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        lo
    }

    /// Keeps the entries for which `keep` is true, in order, in place (as `Vec::retain`: a
    /// compaction needs no second copy of what it keeps).
    pub fn retain(&mut self, mut keep: impl FnMut(&T) -> bool) {
        let mut kept = 0;
        for k in 0..self.len() {
            if keep(&self[k]) {
                self.swap_back(kept, k);
                kept += 1;
            }
        }
        // The entries from `kept` on are the dropped ones; whole chunks go with them.
        let (chunk, offset) = self.split(kept);
        self.chunks.truncate(chunk + 1);
        if let Some(last) = self.chunks.get_mut(chunk) {
            last.truncate(offset);
            if last.is_empty() {
                self.chunks.pop();
            }
        }
    }

    /// Swaps entries `a` ≤ `b`.
    fn swap_back(&mut self, a: usize, b: usize) {
        let ((ca, ia), (cb, ib)) = (self.split(a), self.split(b));
        if ca == cb {
            self.chunks[ca].swap(ia, ib);
        } else {
            let (front, back) = self.chunks.split_at_mut(cb);
            std::mem::swap(&mut front[ca][ia], &mut back[0][ib]);
        }
    }
}

impl<T> Index<usize> for Chunked<T> {
    type Output = T;
    fn index(&self, k: usize) -> &T {
        let (c, i) = self.split(k);
        &self.chunks[c][i]
    }
}

impl<T> IndexMut<usize> for Chunked<T> {
    fn index_mut(&mut self, k: usize) -> &mut T {
        let (c, i) = self.split(k);
        &mut self.chunks[c][i]
    }
}

#[cfg(test)]
mod tests {
    use super::Chunked;

    /// Against a `Vec` doing the same, across chunk boundaries.
    #[test]
    fn behaves_as_a_vec() {
        let mut c = Chunked::with_chunk_bits(2);
        let mut v = Vec::new();
        assert!(c.is_empty() && c.last().is_none());
        for x in 0..23u32 {
            c.push(x * 3);
            v.push(x * 3);
            assert_eq!((c.len(), c.last()), (v.len(), v.last()));
        }
        c[9] += 1;
        v[9] += 1;
        assert_eq!(c.iter().copied().collect::<Vec<_>>(), v);
        for k in [0, 3, 4, 5, 22, 23] {
            assert_eq!(c.iter_from(k).copied().collect::<Vec<_>>(), v[k..]);
        }
        for t in [0, 1, 28, 29, 30, 100] {
            assert_eq!(c.partition_point(|&x| x < t), v.partition_point(|&x| x < t));
        }
        c.retain(|x| x % 2 == 0);
        v.retain(|x| x % 2 == 0);
        assert_eq!(c.iter().copied().collect::<Vec<_>>(), v);
        assert_eq!((c.len(), c[4]), (v.len(), v[4]));
        // Down to a chunk boundary (8 entries), to part of the first chunk, and to nothing.
        for (keep, len) in [(7, 8), (3, 3), (0, 0)] {
            c.retain(|&x| (x as usize) < 6 * keep);
            v.retain(|&x| (x as usize) < 6 * keep);
            assert_eq!(v.len(), len);
            assert_eq!(c.iter().copied().collect::<Vec<_>>(), v);
            assert_eq!(
                (c.len(), c.is_empty(), c.last()),
                (v.len(), v.is_empty(), v.last())
            );
            c.push(1000);
            v.push(1000);
            assert_eq!(c.iter().copied().collect::<Vec<_>>(), v);
            c.retain(|&x| x != 1000);
            v.retain(|&x| x != 1000);
        }
    }

    /// A short list allocates for what it holds, not a whole chunk; a long one fills its
    /// chunks exactly.
    #[test]
    fn allocates_as_it_grows() {
        let mut c = Chunked::default();
        for x in 0..3u64 {
            c.push(x);
        }
        assert!(c.chunks[0].capacity() < 16);
        for x in 3..(1u64 << 15) + 1 {
            c.push(x);
        }
        assert_eq!(c.chunks.len(), 3);
        assert_eq!(c.chunks[0].capacity(), 1 << 14);
        assert_eq!(c.chunks[1].capacity(), 1 << 14);
    }
}
