//! The BPE model: merges by rank over byte-level symbols, `</w>` on the last
//! symbol of each word, and a bounded, thread-safe cache of merged words.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::RwLock;

/// Words longer than this (in bytes) are not cached.
const MAX_CACHED_WORD: usize = 64;
/// The cache stops growing at this many words (as `tokenizers` does).
pub(crate) const CACHE_CAPACITY: usize = 10_000;
/// The cache is split into this many independently locked shards, so that
/// threads encoding in parallel rarely touch the same lock.
const CACHE_SHARDS: usize = 16;
/// Words with at most this many symbols use the simple quadratic merge loop;
/// longer ones the heap (O(n log n), so adversarial inputs stay linear-ish).
const SIMPLE_MERGE_MAX: usize = 48;

/// A fast hasher for `u64` pair keys (multiply-rotate; the keys come from the
/// vocabulary files, not from user text).
#[derive(Default, Clone, Copy)]
pub(crate) struct PairHasher(u64);

impl Hasher for PairHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0.rotate_left(5) ^ u64::from(b)).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = (self.0.rotate_left(5) ^ n).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
        self.0 ^= self.0 >> 29;
    }
}

/// Merged words: word text -> ids.
type WordCache = HashMap<Box<str>, Box<[u32]>>;

type PairMap = HashMap<u64, (u32, u32), BuildHasherDefault<PairHasher>>;

fn key(a: u32, b: u32) -> u64 {
    (u64::from(a) << 32) | u64::from(b)
}

/// A byte-level BPE model with `</w>` end-of-word suffix.
pub(crate) struct Bpe {
    /// (left id, right id) -> (rank, merged id).
    merges: PairMap,
    /// Vocabulary id of each byte's character (or the unknown id).
    byte_ids: [u32; 256],
    /// Vocabulary id of each byte's character + `</w>` (or the unknown id).
    byte_eow_ids: [u32; 256],
    cache: [RwLock<WordCache>; CACHE_SHARDS],
}

/// The cache shard of a word (a cheap mix of its length and two bytes).
fn shard(word: &str) -> usize {
    let b = word.as_bytes();
    let first = b.first().copied().unwrap_or(0) as usize;
    let last = b.last().copied().unwrap_or(0) as usize;
    (b.len().wrapping_mul(7) ^ first.wrapping_mul(31) ^ last.wrapping_mul(17)) % CACHE_SHARDS
}

impl Bpe {
    /// `merges` are (left id, right id, merged id) in rank order.
    pub(crate) fn new(
        merges: &[(u32, u32, u32)],
        byte_ids: [u32; 256],
        byte_eow_ids: [u32; 256],
    ) -> Self {
        let mut map = PairMap::with_capacity_and_hasher(merges.len(), Default::default());
        for (rank, &(a, b, m)) in merges.iter().enumerate() {
            // Later duplicates win, as in OpenAI's dict(zip(merges, range)) and tokenizers.
            map.insert(key(a, b), (rank as u32, m));
        }
        let cache = std::array::from_fn(|_| RwLock::new(HashMap::new()));
        Bpe { merges: map, byte_ids, byte_eow_ids, cache }
    }

    /// Appends the ids of one pre-tokenized word (raw UTF-8 text, not byte-level).
    pub(crate) fn encode_word(&self, word: &str, out: &mut Vec<u32>) {
        let cacheable = word.len() <= MAX_CACHED_WORD;
        let cache = &self.cache[shard(word)];
        if cacheable {
            if let Ok(cache) = cache.read() {
                if let Some(ids) = cache.get(word) {
                    out.extend_from_slice(ids);
                    return;
                }
            }
        }
        let start = out.len();
        self.merge_word(word.as_bytes(), out);
        if cacheable {
            if let Ok(mut cache) = cache.write() {
                if cache.len() < CACHE_CAPACITY / CACHE_SHARDS {
                    cache.insert(word.into(), out[start..].into());
                }
            }
        }
    }

    /// The number of cached words (for tests).
    pub(crate) fn cache_len(&self) -> usize {
        self.cache.iter().map(|c| c.read().map(|c| c.len()).unwrap_or(0)).sum()
    }

    fn initial_symbols(&self, bytes: &[u8]) -> Vec<u32> {
        let n = bytes.len();
        bytes
            .iter()
            .enumerate()
            .map(
                |(i, &b)| {
                    if i + 1 == n {
                        self.byte_eow_ids[b as usize]
                    } else {
                        self.byte_ids[b as usize]
                    }
                },
            )
            .collect()
    }

    fn merge_word(&self, bytes: &[u8], out: &mut Vec<u32>) {
        if bytes.is_empty() {
            return;
        }
        let symbols = self.initial_symbols(bytes);
        if symbols.len() <= SIMPLE_MERGE_MAX {
            out.extend(self.merge_simple(symbols));
        } else {
            out.extend(self.merge_heap(symbols));
        }
    }

    /// OpenAI's loop: take the lowest-ranked adjacent pair, merge all of its
    /// occurrences left to right, repeat.
    pub(crate) fn merge_simple(&self, mut word: Vec<u32>) -> Vec<u32> {
        while word.len() > 1 {
            let mut best: Option<(u32, u32, u32, u32)> = None; // rank, a, b, merged
            for w in word.windows(2) {
                if let Some(&(rank, m)) = self.merges.get(&key(w[0], w[1])) {
                    if best.is_none_or(|(r, ..)| rank < r) {
                        best = Some((rank, w[0], w[1], m));
                    }
                }
            }
            let Some((_, a, b, m)) = best else { break };
            let mut i = 0;
            let mut j = 0;
            while i < word.len() {
                if i + 1 < word.len() && word[i] == a && word[i + 1] == b {
                    word[j] = m;
                    i += 2;
                } else {
                    word[j] = word[i];
                    i += 1;
                }
                j += 1;
            }
            word.truncate(j);
        }
        word
    }

    /// The heap-based equivalent (`tokenizers`' `Word::merge_all`): lowest rank
    /// first, then leftmost; stale candidates are skipped when popped.
    pub(crate) fn merge_heap(&self, word: Vec<u32>) -> Vec<u32> {
        const NONE: usize = usize::MAX;
        let n = word.len();
        let mut id = word;
        let mut prev: Vec<usize> = (0..n).map(|i| if i == 0 { NONE } else { i - 1 }).collect();
        let mut next: Vec<usize> = (0..n).map(|i| if i + 1 == n { NONE } else { i + 1 }).collect();
        let mut alive = vec![true; n];
        let mut heap: BinaryHeap<Reverse<(u32, usize, u32)>> = BinaryHeap::new();
        for i in 0..n.saturating_sub(1) {
            if let Some(&(rank, m)) = self.merges.get(&key(id[i], id[i + 1])) {
                heap.push(Reverse((rank, i, m)));
            }
        }
        while let Some(Reverse((rank, pos, m))) = heap.pop() {
            if !alive[pos] || next[pos] == NONE {
                continue;
            }
            let right = next[pos];
            match self.merges.get(&key(id[pos], id[right])) {
                Some(&(r, mm)) if r == rank && mm == m => {}
                _ => continue,
            }
            id[pos] = m;
            alive[right] = false;
            next[pos] = next[right];
            if next[pos] != NONE {
                prev[next[pos]] = pos;
            }
            if prev[pos] != NONE {
                let p = prev[pos];
                if let Some(&(r, mm)) = self.merges.get(&key(id[p], m)) {
                    heap.push(Reverse((r, p, mm)));
                }
            }
            if next[pos] != NONE {
                if let Some(&(r, mm)) = self.merges.get(&key(m, id[next[pos]])) {
                    heap.push(Reverse((r, pos, mm)));
                }
            }
        }
        let mut out = Vec::new();
        let mut i = if alive.first().copied().unwrap_or(false) { 0 } else { NONE };
        while i != NONE {
            out.push(id[i]);
            i = next[i];
        }
        out
    }

    /// Ids of the initial symbols of `bytes` (for tests of the merge loops).
    #[cfg(test)]
    pub(crate) fn symbols(&self, bytes: &[u8]) -> Vec<u32> {
        self.initial_symbols(bytes)
    }
}
