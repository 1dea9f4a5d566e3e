//! The key set of the local replay store: which replay keys are remembered, until when, in
//! memory that stays small and lookups that stay flat as the set grows to a day of traffic.
//!
//! Keys are grouped into *generations* by when they may be forgotten: generation `g` holds the
//! keys whose expiry falls in `[g·W, (g+1)·W)` and is dropped whole once `(g+1)·W` has passed,
//! so expiry never scans a key. A key is therefore remembered until its expiry and at most `W`
//! longer, never less. `W` is a fraction of the longest retention ([`KeySet::new`]), so a
//! lookup visits a bounded number of generations whatever the number of keys.
//!
//! Each generation takes new keys into a hash set; sealing folds them into a sorted array with
//! a directory on the keys' top bits (16 bytes a key, and a 4-byte directory entry for every
//! few keys). Keys are SHA-256 prefixes, uniform, so the directory splits them evenly and a
//! lookup reads one directory entry and a handful of neighbouring keys. Sealing sorts, which
//! takes a while for a big generation, so it runs in three steps: [`KeySet::freeze`] sets the
//! new keys aside (still looked up), [`Frozen::seal`] sorts them with no lock held, and
//! [`KeySet::put_sealed`] swaps the result in.

use std::sync::Arc;

use std::collections::{BTreeMap, HashSet};
use std::hash::{BuildHasherDefault, Hasher};

/// Keys are already uniform hashes: their low 64 bits are a hash.
#[derive(Default)]
struct KeyHasher(u64);

impl Hasher for KeyHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(*b);
        }
    }

    fn write_u128(&mut self, k: u128) {
        self.0 = k as u64;
    }
}

type OpenSet = HashSet<u128, BuildHasherDefault<KeyHasher>>;

/// Bytes an open set's bucket takes: the key and hashbrown's control byte.
const OPEN_BUCKET: usize = std::mem::size_of::<u128>() + 1;

/// Sorted keys and, for each value of their top `bits` bits, where those keys start.
struct Sealed {
    keys: Box<[u128]>,
    dir: Box<[u32]>,
    shift: u32,
}

impl Sealed {
    /// About this many keys share a directory entry.
    const PER_ENTRY: usize = 4;

    fn new(mut keys: Vec<u128>) -> Sealed {
        keys.sort_unstable();
        keys.dedup();
        let entries = (keys.len() / Self::PER_ENTRY).max(1).next_power_of_two();
        let bits = entries.trailing_zeros();
        let shift = 128 - bits;
        let mut dir = Vec::with_capacity(entries + 1);
        let mut i = 0usize;
        for b in 0..entries as u128 {
            while i < keys.len() && bucket(keys[i], shift) < b {
                i += 1;
            }
            dir.push(i as u32);
        }
        dir.push(keys.len() as u32);
        Sealed {
            keys: keys.into_boxed_slice(),
            dir: dir.into_boxed_slice(),
            shift,
        }
    }

    /// Where `k` would be: the run of keys sharing its directory entry.
    fn run(&self, k: u128) -> (usize, usize) {
        let b = bucket(k, self.shift) as usize;
        (self.dir[b] as usize, self.dir[b + 1] as usize)
    }

    fn contains(&self, k: u128) -> bool {
        let (lo, hi) = self.run(k);
        self.keys[lo..hi].binary_search(&k).is_ok()
    }

    fn bytes(&self) -> usize {
        self.keys.len() * std::mem::size_of::<u128>() + self.dir.len() * 4
    }
}

fn bucket(k: u128, shift: u32) -> u128 {
    k.checked_shr(shift).unwrap_or(0)
}

#[derive(Default)]
struct Generation {
    open: OpenSet,
    /// Keys set aside to be sealed: looked up until the sealed array holding them is put in.
    frozen: Option<Arc<OpenSet>>,
    sealed: Option<Arc<Sealed>>,
}

fn open_bytes(set: &OpenSet) -> usize {
    if set.capacity() == 0 {
        0
    } else {
        (set.capacity() * 8 / 7).next_power_of_two() * OPEN_BUCKET
    }
}

impl Generation {
    /// Whether `k` is among the keys not sealed yet (new, or set aside to be sealed).
    fn holds_unsealed(&self, k: u128) -> bool {
        self.open.contains(&k) || self.frozen.as_ref().is_some_and(|f| f.contains(&k))
    }

    fn len(&self) -> usize {
        self.open.len()
            + self.frozen.as_ref().map_or(0, |f| f.len())
            + self.sealed.as_ref().map_or(0, |s| s.keys.len())
    }

    fn bytes(&self) -> usize {
        open_bytes(&self.open)
            + self.frozen.as_deref().map_or(0, open_bytes)
            + self.sealed.as_deref().map_or(0, Sealed::bytes)
    }
}

/// A generation's new keys and its sealed array, to be sorted into one array off the lock.
pub struct Frozen {
    gen: u64,
    open: Arc<OpenSet>,
    sealed: Option<Arc<Sealed>>,
}

impl Frozen {
    /// Sorts the keys into one sealed array: the costly step, to run with no lock held.
    pub fn seal(self) -> SealedGen {
        let mut keys: Vec<u128> =
            Vec::with_capacity(self.open.len() + self.sealed.as_ref().map_or(0, |s| s.keys.len()));
        if let Some(s) = &self.sealed {
            keys.extend_from_slice(&s.keys);
        }
        keys.extend(self.open.iter().copied());
        SealedGen {
            gen: self.gen,
            sealed: Arc::new(Sealed::new(keys)),
        }
    }
}

/// A generation's keys, sorted: [`KeySet::put_sealed`] takes it.
pub struct SealedGen {
    gen: u64,
    sealed: Arc<Sealed>,
}

/// The remembered keys, by generation. Times are Unix seconds. It never refuses a key: the
/// store in front of it keeps the bound ([`crate::replay::local`]), when a key is reserved.
pub struct KeySet {
    width: u64,
    gens: BTreeMap<u64, Generation>,
    len: usize,
}

/// How many generations a retention is split into: a key is kept at most
/// `retention / GENERATIONS` past its expiry, and a lookup visits about this many.
pub const GENERATIONS: u64 = 16;

/// Sealed generations a lookup fetches side by side.
const MAX_PROBES: usize = 2 * GENERATIONS as usize + 2;

impl KeySet {
    /// A set whose keys live about `retention` seconds.
    pub fn new(retention_s: u64) -> KeySet {
        KeySet {
            width: (retention_s / GENERATIONS).max(1),
            gens: BTreeMap::new(),
            len: 0,
        }
    }

    fn generation(&self, expiry_s: u64) -> u64 {
        expiry_s / self.width
    }

    /// Whether `k` is remembered at `now_s`.
    pub fn contains(&self, k: u128, now_s: u64) -> bool {
        let first_live = now_s / self.width;
        let live = || self.gens.range(first_live..).map(|(_, g)| g);
        if live().any(|g| g.holds_unsealed(k)) {
            return true;
        }
        // The sealed arrays, in two passes with no branch between their loads: first every
        // directory entry, then every run of keys, so the processor fetches them from memory
        // side by side rather than one generation after another.
        let mut runs = [(0usize, 0usize); MAX_PROBES];
        let mut sealed = [None; MAX_PROBES];
        let mut n = 0;
        for g in live() {
            if let Some(s) = &g.sealed {
                if n == MAX_PROBES {
                    // More generations than a retention has (a ttl longer than it): the rest
                    // one by one.
                    if s.contains(k) {
                        return true;
                    }
                    continue;
                }
                runs[n] = s.run(k);
                sealed[n] = Some(s);
                n += 1;
            }
        }
        (0..n).any(|i| {
            let (lo, hi) = runs[i];
            sealed[i].is_some_and(|s| s.keys[lo..hi].binary_search(&k).is_ok())
        })
    }

    /// Remembers `k` until `expiry_s` (at least). A key inserted again with an expiry in
    /// another generation is held in both until the later passes.
    pub fn insert(&mut self, k: u128, expiry_s: u64) {
        let g = self.generation(expiry_s);
        let gen = self.gens.entry(g).or_default();
        let set_aside = gen.frozen.as_ref().is_some_and(|f| f.contains(&k))
            || gen.sealed.as_ref().is_some_and(|s| s.contains(k));
        if !set_aside && gen.open.insert(k) {
            self.len += 1;
        }
    }

    /// Drops the generations that have passed; returns how many keys went with them.
    pub fn expire(&mut self, now_s: u64) -> usize {
        let first_live = now_s / self.width;
        let live = self.gens.split_off(&first_live);
        let dropped: usize = self.gens.values().map(Generation::len).sum();
        self.gens = live;
        self.len -= dropped;
        dropped
    }

    /// Sets aside the new keys of every generation before the one new keys with
    /// `current_expiry_s` go to: those take few or no new keys any more (generations after it
    /// are filled by longer retentions and stay open until they are passed; sealing them now
    /// would sort them again and again). Not one already being sealed. Each is to be sealed
    /// ([`Frozen::seal`]) and put back ([`KeySet::put_sealed`]).
    pub fn freeze(&mut self, current_expiry_s: u64) -> Vec<Frozen> {
        let current = self.generation(current_expiry_s);
        let mut out = Vec::new();
        for (g, gen) in self.gens.range_mut(..current) {
            if gen.open.is_empty() || gen.frozen.is_some() {
                continue;
            }
            let open = Arc::new(std::mem::take(&mut gen.open));
            gen.frozen = Some(open.clone());
            out.push(Frozen {
                gen: *g,
                open,
                sealed: gen.sealed.clone(),
            });
        }
        out
    }

    /// Puts in a generation's sealed keys, in place of what was frozen. A generation that
    /// expired meanwhile stays gone.
    pub fn put_sealed(&mut self, s: SealedGen) {
        if let Some(gen) = self.gens.get_mut(&s.gen) {
            gen.frozen = None;
            gen.sealed = Some(s.sealed);
        }
    }

    /// [`KeySet::freeze`], [`Frozen::seal`] and [`KeySet::put_sealed`] in one go (holding
    /// whatever lock guards the set throughout).
    pub fn seal(&mut self, current_expiry_s: u64) {
        for f in self.freeze(current_expiry_s) {
            let s = f.seal();
            self.put_sealed(s);
        }
    }

    /// Keys held, expired generations not dropped yet included.
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The heap the keys take: open sets by their allocated buckets, sealed arrays exactly.
    pub fn bytes(&self) -> usize {
        self.gens.values().map(Generation::bytes).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(n: u64) -> u128 {
        let d = crate::verify::mac::sha256(&[&n.to_le_bytes()]);
        u128::from_le_bytes(d[..16].try_into().unwrap())
    }

    const DAY: u64 = 86_400;
    const T0: u64 = 1_700_000_000;

    #[test]
    fn keys_are_remembered_until_their_expiry_and_dropped_by_generation() {
        let mut s = KeySet::new(DAY);
        for n in 0..100 {
            s.insert(key(n), T0 + DAY);
        }
        s.insert(key(1000), T0 + 60);
        assert_eq!(s.len(), 101);
        assert!(s.contains(key(7), T0));
        assert!(!s.contains(key(500), T0));
        // Never forgotten before its expiry; gone within one generation after it.
        assert!(s.contains(key(1000), T0 + 60));
        assert!(s.contains(key(7), T0 + DAY));
        let width = DAY / GENERATIONS;
        assert!(!s.contains(key(1000), T0 + 60 + width));
        assert!(!s.contains(key(7), T0 + DAY + width));
        assert_eq!(s.expire(T0 + 60 + width), 1);
        assert_eq!(s.len(), 100);
        assert_eq!(s.expire(T0 + DAY + width), 100);
        assert!(s.is_empty());
    }

    #[test]
    fn sealed_generations_answer_the_same_and_take_about_sixteen_bytes_a_key() {
        let mut s = KeySet::new(DAY);
        let n = 100_000u64;
        for i in 0..n {
            // Spread over two generations, one of them current.
            let expiry = if i % 2 == 0 { T0 + DAY } else { T0 + DAY / 2 };
            s.insert(key(i), expiry);
        }
        s.seal(T0 + DAY);
        for i in 0..n {
            assert!(s.contains(key(i), T0), "key {i}");
        }
        for i in n..n + 10_000 {
            assert!(!s.contains(key(i), T0), "key {i} was never inserted");
        }
        // Inserting again into a sealed generation: kept, counted once.
        s.insert(key(1), T0 + DAY / 2);
        s.insert(key(n + 1), T0 + DAY / 2);
        assert_eq!(s.len(), n as usize + 1);
        s.seal(T0 + DAY);
        assert!(s.contains(key(n + 1), T0) && s.contains(key(1), T0));
        // Everything sealed: 16 bytes a key and a directory entry for every few.
        s.seal(u64::MAX);
        let per_key = s.bytes() as f64 / s.len() as f64;
        assert!((16.0..=18.0).contains(&per_key), "{per_key} bytes a key");
    }

    #[test]
    fn an_empty_or_tiny_sealed_array_answers() {
        let empty = Sealed::new(Vec::new());
        assert!(!empty.contains(key(1)));
        let one = Sealed::new(vec![key(1)]);
        assert!(one.contains(key(1)) && !one.contains(key(2)));
        let extremes = Sealed::new(vec![0, u128::MAX, 1 << 127]);
        assert!(
            extremes.contains(0) && extremes.contains(u128::MAX) && extremes.contains(1 << 127)
        );
        assert!(!extremes.contains(5));
    }
}
