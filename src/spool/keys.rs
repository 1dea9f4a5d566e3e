//! The key set of the local replay store: which replay keys are remembered, until when, in
//! memory that stays small and lookups that stay flat as the set grows to a day of traffic.
//!
//! Keys are grouped into *generations* by when they may be forgotten: generation `g` holds the
//! keys whose expiry falls in `[g·W, (g+1)·W)` and is forgotten whole once `(g+1)·W` has
//! passed, so expiry never scans a key. A key is therefore remembered until its expiry and at
//! most `W` longer, never less. `W` is a fraction of the longest retention ([`KeySet::new`]).
//!
//! New keys go into their generation's hash set. Once new keys no longer go to a generation
//! (its expiries are behind the current retention's), its keys are folded into one **index**
//! shared by every generation, so a lookup costs the same however many generations there are:
//! one hash probe for each generation still taking keys (normally one), and one index probe.
//! A hash set that fills up is not grown past a bound (growing moves every key, under the
//! store's lock): it is set aside, still looked up, for the next fold, and a new one takes the
//! generation's keys. The bound is a sixteenth of the index (within [`KeySet::update_full_at`]'s
//! limits), so a key is copied by a bounded number of folds however large the set grows.
//!
//! The index is split into 256 shards by the key's top byte. A shard holds 16-byte entries,
//! each the key's other 120 bits and a one-byte *tag* naming its generation, sorted, in a
//! table a quarter larger than they need: each entry sits at the slot its value says (keys are
//! SHA-256 prefixes, uniform, so values split the slots evenly) or just after the entries
//! before it. A lookup goes straight to its key's slot and reads on past a couple of smaller
//! entries: one memory read, whatever the size, and 20 bytes a key.
//! An expired generation's tag is marked dead at once (its entries no longer answer) and its
//! entries are dropped by the next fold, which rewrites each shard anyway.
//!
//! A fold sorts and merges, which takes a while for a big set, so it runs in steps with no
//! lock held for long: [`KeySet::freeze`] sets the new keys aside (still looked up),
//! [`Merge::sort`] sorts them with no lock, and for each shard [`KeySet::shard`] lends the
//! shard, [`Merge::merge_shard`] merges it with no lock and [`KeySet::put_shard`] swaps it in;
//! [`KeySet::finish`] then forgets the keys set aside. Only one shard (1/256 of the index) is
//! ever held twice.

use std::collections::{BTreeMap, HashSet};
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::Arc;

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

/// The heap a hash table (std's, hashbrown's) of `capacity` holds for entries of type `T`:
/// its buckets, a power of two with an eighth kept free, each the entry and a control byte.
pub fn table_bytes<T>(capacity: usize) -> usize {
    if capacity == 0 {
        0
    } else {
        (capacity * 8 / 7).next_power_of_two() * (std::mem::size_of::<T>() + 1)
    }
}

fn open_bytes(set: &OpenSet) -> usize {
    table_bytes::<u128>(set.capacity())
}

/// Shards of the index; a key's top byte names its shard, so its entry need not hold it.
pub const SHARDS: usize = 256;

/// Tags an entry can carry: the generations the index can hold at once. The index holds the
/// generations between now and the current retention's (about [`GENERATIONS`]) and those
/// expired since the last fold; a generation finding no free tag stays in its hash set.
const TAGS: usize = 256;

/// An index entry: the key without its top byte (the shard's), then the generation's tag.
type Entry = u128;

fn entry(k: u128, tag: u8) -> Entry {
    (k << 8) | u128::from(tag)
}

fn shard_of(k: u128) -> usize {
    (k >> 120) as usize
}

fn tag_of(e: Entry) -> u8 {
    e as u8
}

/// Whether the index holds `k` under a tag `wanted` accepts.
fn indexed(shards: &[Arc<Shard>], k: u128, wanted: impl Fn(u8) -> bool) -> bool {
    shards[shard_of(k)].holds(entry(k, 0), wanted)
}

/// A slot no entry is in. No entry has every bit set: tag 255 is never given.
const EMPTY: Entry = Entry::MAX;

/// One shard of the index: its entries, sorted, each in the slot its value says (its *home*:
/// entries are uniform, so the slots split their range evenly) or, when that slot is taken,
/// in the first free slot after the entries before it; and how many entries each tag has here.
///
/// Sorted with gaps, so a lookup starts at the key's home and reads on only past smaller
/// entries: with slots a fifth empty, a couple of entries on average, in one or two cache
/// lines, one memory read whatever the size (there is no directory to read first). And a fold
/// merges a shard's entries in order, as from a sorted array.
pub struct Shard {
    slots: Vec<Entry>,
    /// Slots entries go to by home; `slots` runs a little past them for the last entries.
    homes: usize,
    len: usize,
    per_tag: Box<[(u8, u32)]>,
}

impl Shard {
    /// Slots for every entry: 5 for every 4 entries.
    fn homes_for(entries: usize) -> usize {
        (entries + entries / 4).max(1)
    }

    /// Room for a shard of `entries` built in place ([`Shard::new`]): its slots and the few
    /// past them the last entries can spill into.
    fn room_for(entries: usize) -> usize {
        Self::homes_for(entries) + 64
    }

    /// A shard of `entries`, sorted and without repeats, built in the vector that holds them
    /// (room for it is best reserved with [`Shard::room_for`]: the vector grows otherwise).
    ///
    /// An entry's slot is its home or the one after the entry before it's, whichever is later:
    /// every entry takes a slot, so slots only move entries right, and moved from the last one
    /// back, none lands on an entry not moved yet. `scratch` holds the slots meanwhile.
    fn new(mut entries: Vec<Entry>, scratch: &mut Vec<usize>) -> Shard {
        let len = entries.len();
        let homes = Self::homes_for(len);
        let mut per_tag = [0u32; TAGS];
        scratch.clear();
        let mut next = 0;
        for e in &entries {
            let at = home(*e, homes).max(next);
            scratch.push(at);
            next = at + 1;
            per_tag[tag_of(*e) as usize] += 1;
        }
        entries.resize(next.max(homes), EMPTY);
        for (i, at) in scratch.iter().enumerate().rev() {
            if *at != i {
                entries[*at] = entries[i];
                entries[i] = EMPTY;
            }
        }
        // Room left over (reserved for spills, or for entries that did not come: expired,
        // repeats) is given back; shrinking in place, the allocator moves nothing.
        entries.shrink_to_fit();
        Shard {
            slots: entries,
            homes,
            len,
            per_tag: (0..TAGS)
                .filter(|t| per_tag[*t] > 0)
                .map(|t| (t as u8, per_tag[t]))
                .collect(),
        }
    }

    fn empty() -> Shard {
        Shard::new(Vec::new(), &mut Vec::new())
    }

    /// Whether an entry for the key of `key` (its tag 0) has a tag `wanted` accepts.
    fn holds(&self, key: Entry, wanted: impl Fn(u8) -> bool) -> bool {
        let last = key | 0xff;
        self.slots[home(key, self.homes)..]
            .iter()
            .take_while(|e| **e <= last)
            .any(|e| *e >= key && wanted(tag_of(*e)))
    }

    /// The entries, in order.
    fn entries(&self) -> impl Iterator<Item = Entry> + '_ {
        self.slots.iter().copied().filter(|e| *e != EMPTY)
    }

    fn bytes(&self) -> usize {
        self.slots.capacity() * std::mem::size_of::<Entry>()
            + self.per_tag.len() * std::mem::size_of::<(u8, u32)>()
    }
}

/// The slot of `homes` an entry belongs in: its top 64 bits, scaled.
fn home(e: Entry, homes: usize) -> usize {
    ((u128::from((e >> 64) as u64) * homes as u128) >> 64) as usize
}

/// What a tag stands for.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Tag {
    /// No entry has it.
    Free,
    /// Its entries are generation `g`'s.
    Gen(u64),
    /// Its generation has expired; its entries, until the next fold drops them, answer nothing.
    Dead,
}

struct Tags {
    tag: [Tag; TAGS],
    /// Entries in the index with each tag.
    count: [usize; TAGS],
}

impl Tags {
    /// A free tag for generation `g`.
    fn take(&mut self, g: u64) -> Option<u8> {
        // Tag 255 is never given: an entry with it would be [`EMPTY`].
        let t = self.tag[..TAGS - 1].iter().position(|t| *t == Tag::Free)?;
        self.tag[t] = Tag::Gen(g);
        Some(t as u8)
    }

    /// Its generation has expired: dead until its entries are dropped.
    fn retire(&mut self, t: u8) {
        let t = t as usize;
        self.tag[t] = if self.count[t] == 0 {
            Tag::Free
        } else {
            Tag::Dead
        };
    }

    fn live(&self, t: u8, first_live: u64) -> bool {
        matches!(self.tag[t as usize], Tag::Gen(g) if g >= first_live)
    }

    /// The tags whose entries a fold keeps: every generation's not expired.
    fn kept(&self) -> Keep {
        let mut keep = Keep([false; TAGS]);
        for (k, t) in keep.0.iter_mut().zip(self.tag) {
            *k = matches!(t, Tag::Gen(_));
        }
        keep
    }
}

/// The tags whose entries a fold keeps.
pub struct Keep([bool; TAGS]);

/// A generation with keys in the index.
struct Indexed {
    tag: u8,
    /// Its keys in the index (as of the last fold).
    keys: usize,
}

/// Keys set aside to be folded into the index ([`KeySet::freeze`]).
#[derive(Default)]
pub struct Merge {
    parts: Vec<(u64, u8, Arc<OpenSet>)>,
    /// The new entries by shard, sorted ([`Merge::sort`]).
    new: Vec<Vec<Entry>>,
    /// Room each shard's build uses, kept from one to the next.
    scratch: Vec<usize>,
}

impl Merge {
    /// Sorts the new keys into entries by shard: the costly step, to run with no lock held.
    pub fn sort(&mut self) {
        let mut counts = [0usize; SHARDS];
        for (_, _, keys) in &self.parts {
            for k in keys.iter() {
                counts[shard_of(*k)] += 1;
            }
        }
        let mut new: Vec<Vec<Entry>> = counts.iter().map(|n| Vec::with_capacity(*n)).collect();
        for (_, tag, keys) in &self.parts {
            for k in keys.iter() {
                new[shard_of(*k)].push(entry(*k, *tag));
            }
        }
        for v in &mut new {
            v.sort_unstable();
        }
        self.new = new;
    }

    /// The heap the fold holds besides the set: the new keys sorted by shard (before
    /// [`Merge::sort`], what it is about to take), and the room each shard's build uses.
    pub fn bytes(&self) -> usize {
        let sorted = if self.new.is_empty() {
            self.parts
                .iter()
                .map(|(_, _, keys)| keys.len())
                .sum::<usize>()
                * std::mem::size_of::<Entry>()
        } else {
            self.new
                .iter()
                .map(|v| v.capacity() * std::mem::size_of::<Entry>())
                .sum::<usize>()
        };
        sorted + self.scratch.capacity() * std::mem::size_of::<usize>()
    }

    /// Shard `i` with the new entries in and the entries of tags `keep` refuses out: to run
    /// with no lock held, on the shard [`KeySet::shard`] lent.
    pub fn merge_shard(&mut self, i: usize, old: &Shard, keep: &Keep) -> Shard {
        let new = std::mem::take(self.new.get_mut(i).unwrap_or(&mut Vec::new()));
        rebuild(old, new, keep, &mut self.scratch)
    }
}

/// Shard `old` with `new` (sorted) in and the entries of tags `keep` refuses out, without
/// repeats: built in the list `new` is when `old` is empty, else through a merge.
fn rebuild(old: &Shard, mut new: Vec<Entry>, keep: &Keep, scratch: &mut Vec<usize>) -> Shard {
    let entries = if old.len == 0 {
        new.retain(|e| keep.0[tag_of(*e) as usize]);
        new.dedup();
        new
    } else {
        merge_sorted(old, &new, keep)
    };
    Shard::new(entries, scratch)
}

/// The entries of shard `a` and of `b` (sorted) that `keep` keeps, sorted and without repeats,
/// with room for the shard they make.
fn merge_sorted(a: &Shard, b: &[Entry], keep: &Keep) -> Vec<Entry> {
    let mut out = Vec::with_capacity(Shard::room_for(a.len + b.len()));
    let mut a = a
        .entries()
        .filter(|e| keep.0[tag_of(*e) as usize])
        .peekable();
    let mut b = b
        .iter()
        .copied()
        .filter(|e| keep.0[tag_of(*e) as usize])
        .peekable();
    loop {
        let next = match (a.peek(), b.peek()) {
            (Some(x), Some(y)) if x <= y => a.next(),
            (Some(_), Some(_)) => b.next(),
            (Some(_), None) => a.next(),
            (None, Some(_)) => b.next(),
            (None, None) => break,
        };
        if let Some(e) = next {
            if out.last() != Some(&e) {
                out.push(e);
            }
        }
    }
    out
}

/// Keys found at start on their way into a [`KeySet`] ([`KeySet::loader`]): each as an
/// index entry in its shard's list, its tag for now its generation's place among those met,
/// so a start holds 16 bytes a key and the index is built in those lists.
pub struct KeyLoad {
    width: u64,
    now_s: u64,
    /// The generations met, by place (an entry's low byte until the index is built).
    gens: Vec<u64>,
    /// The last generation met and its place: keys come grouped by expiry.
    last: Option<(u64, u8)>,
    by_shard: Vec<Vec<Entry>>,
    /// Keys of generations met after every place was taken (a key log spanning many
    /// retentions): taken one by one.
    rest: Vec<(u128, u64)>,
}

impl KeyLoad {
    /// About `keys` keys are coming: each shard's list takes room for its share once, and
    /// for the shard built in it, so no list is moved while it grows.
    pub fn expect(&mut self, keys: usize) {
        let share = keys / SHARDS;
        // A share varies by about its square root: three times that covers every shard.
        let room = Shard::room_for(share) + 3 * share.isqrt();
        for v in &mut self.by_shard {
            if v.capacity() < room {
                // Only reserved, not touched; should the reservation fail, lists grow as
                // they fill.
                let _ = v.try_reserve_exact(room - v.len());
            }
        }
    }

    /// Takes `k`, remembered until `expiry_s`, unless that has passed.
    pub fn push(&mut self, k: u128, expiry_s: u64) {
        if expiry_s <= self.now_s {
            return;
        }
        let g = expiry_s / self.width;
        let place = match self.last {
            Some((last, place)) if last == g => Some(place),
            _ => {
                let place = match self.gens.iter().position(|x| *x == g) {
                    Some(p) => Some(p as u8),
                    // Places 0 to 254: an entry never reads as [`EMPTY`].
                    None if self.gens.len() < TAGS - 1 => {
                        self.gens.push(g);
                        Some((self.gens.len() - 1) as u8)
                    }
                    None => None,
                };
                self.last = place.map(|p| (g, p));
                place
            }
        };
        match place {
            Some(p) => self.by_shard[shard_of(k)].push(entry(k, p)),
            None => self.rest.push((k, expiry_s)),
        }
    }

    pub fn extend(&mut self, keys: &[(u128, u64)]) {
        for (k, e) in keys {
            self.push(*k, *e);
        }
    }
}

/// Folds the loaded entries into the index's shards `old`, each shard in the list that holds
/// its entries (copied through a merge only where the shard has entries already), on as many
/// threads as there are cores (a start has nothing else to do). Returns each shard rebuilt,
/// `None` where no entry came, and the keys of generations without a tag, `(key, expiry)`.
fn build_shards(
    mut by_shard: Vec<Vec<Entry>>,
    old: &[Arc<Shard>],
    keep: &Keep,
    tags: &[Option<u8>; TAGS],
    expiries: &[u64],
) -> (Vec<Option<Shard>>, Vec<(u128, u64)>) {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let per_thread = SHARDS.div_ceil(threads.clamp(1, 8));
    let build = |first: usize, chunk: &mut [Vec<Entry>]| {
        let mut open = Vec::new();
        let mut scratch = Vec::new();
        let shards: Vec<Option<Shard>> = chunk
            .iter_mut()
            .enumerate()
            .map(|(j, v)| {
                let i = first + j;
                let mut v = std::mem::take(v);
                retag(i, &mut v, tags, expiries, &mut open);
                if v.is_empty() {
                    return None;
                }
                v.sort_unstable();
                Some(rebuild(&old[i], v, keep, &mut scratch))
            })
            .collect();
        (shards, open)
    };
    std::thread::scope(|s| {
        let workers: Vec<_> = by_shard
            .chunks_mut(per_thread)
            .enumerate()
            .map(|(n, chunk)| s.spawn(move || build(n * per_thread, chunk)))
            .collect();
        let mut all = (Vec::with_capacity(SHARDS), Vec::new());
        for w in workers {
            let (shards, open) = w.join().unwrap_or_else(|p| std::panic::resume_unwind(p));
            all.0.extend(shards);
            all.1.extend(open);
        }
        all
    })
}

/// Gives shard `shard`'s loaded entries their generation's tag, and moves those of
/// generations without one (`tags` and `expiries` by place) out to `open`, `(key, expiry)`.
fn retag(
    shard: usize,
    entries: &mut Vec<Entry>,
    tags: &[Option<u8>; TAGS],
    expiries: &[u64],
    open: &mut Vec<(u128, u64)>,
) {
    entries.retain_mut(|e| match tags[tag_of(*e) as usize] {
        Some(t) => {
            *e = (*e & !0xff) | u128::from(t);
            true
        }
        None => {
            let k = ((shard as u128) << 120) | (*e >> 8);
            open.push((k, expiries[tag_of(*e) as usize]));
            false
        }
    });
}

/// The remembered keys. Times are Unix seconds. It never refuses a key: the store in front of
/// it keeps the bound ([`crate::replay::local`]), when a key is reserved.
pub struct KeySet {
    width: u64,
    /// New keys, by generation (only generations with some).
    open: BTreeMap<u64, OpenSet>,
    /// Hash sets that filled up (see [`KeySet::insert`]), by generation: looked up until the
    /// next fold takes them.
    full: Vec<(u64, Arc<OpenSet>)>,
    /// Keys set aside by the fold under way, by generation: looked up until it has finished.
    frozen: Vec<(u64, Arc<OpenSet>)>,
    /// The generations with keys in the index.
    indexed: BTreeMap<u64, Indexed>,
    shards: Vec<Arc<Shard>>,
    tags: Tags,
    /// A fold is under way: no other starts until it has finished.
    merging: bool,
    /// How many keys a hash set takes before it is set aside ([`KeySet::update_full_at`]), worked out
    /// when the index changes, not on every insert.
    full_at: usize,
}

/// How many generations a retention is split into: a key is kept at most
/// `retention / GENERATIONS` past its expiry.
pub const GENERATIONS: u64 = 16;

/// The bounds of [`KeySet::update_full_at`].
const OPEN_MIN: usize = 100_000;
const OPEN_MAX: usize = 900_000;

impl KeySet {
    /// A set whose keys live about `retention` seconds.
    pub fn new(retention_s: u64) -> KeySet {
        KeySet {
            width: (retention_s / GENERATIONS).max(1),
            open: BTreeMap::new(),
            full: Vec::new(),
            frozen: Vec::new(),
            indexed: BTreeMap::new(),
            shards: (0..SHARDS).map(|_| Arc::new(Shard::empty())).collect(),
            tags: Tags {
                tag: [Tag::Free; TAGS],
                count: [0; TAGS],
            },
            merging: false,
            full_at: OPEN_MIN,
        }
    }

    fn generation(&self, expiry_s: u64) -> u64 {
        expiry_s / self.width
    }

    /// Hash sets set aside, full or being folded, by generation.
    fn aside(&self) -> impl Iterator<Item = &(u64, Arc<OpenSet>)> {
        self.full.iter().chain(self.frozen.iter())
    }

    /// How many keys a generation's hash set takes before it is set aside for the next fold
    /// rather than grown: a sixteenth of the index (so a key is copied by folds a bounded
    /// number of times however large the set grows), within bounds that keep the set's last
    /// growth short (it moves every key under the store's lock: about 10 ms for 900,000) and
    /// folds rare while the index is small.
    fn update_full_at(&mut self) {
        let indexed: usize = self.indexed.values().map(|ix| ix.keys).sum();
        self.full_at = (indexed / 16).clamp(OPEN_MIN, OPEN_MAX);
    }

    /// Whether `k` is remembered at `now_s`.
    pub fn contains(&self, k: u128, now_s: u64) -> bool {
        let first_live = now_s / self.width;
        self.open.range(first_live..).any(|(_, o)| o.contains(&k))
            || self
                .aside()
                .any(|(g, f)| *g >= first_live && f.contains(&k))
            || indexed(&self.shards, k, |t| self.tags.live(t, first_live))
    }

    /// Remembers `k` until `expiry_s` (at least). A key inserted again with an expiry in
    /// another generation is held in both until the later passes; inserted again in the same
    /// generation, it is counted twice until the next fold.
    pub fn insert(&mut self, k: u128, expiry_s: u64) {
        // Into the generation's hash set, without looking for the key elsewhere first: the
        // store inserts only keys it found nowhere, and a key held twice (inserted again, or
        // found twice at start) is one entry again after the next fold, which drops repeats.
        let g = self.generation(expiry_s);
        let full_at = self.full_at;
        let open = self.open.entry(g).or_default();
        // Full: set aside for the next fold instead of grown, so no hash set ever grows past
        // a bounded size under the lock (a growth moves every key).
        if open.len() == open.capacity() && open.capacity() >= full_at {
            let full = std::mem::take(open);
            self.full.push((g, Arc::new(full)));
        }
        self.open.entry(g).or_default().insert(k);
    }

    /// Forgets the generations that have passed; returns how many keys went with them.
    pub fn expire(&mut self, now_s: u64) -> usize {
        let first_live = now_s / self.width;
        let live = self.open.split_off(&first_live);
        let mut dropped: usize = std::mem::replace(&mut self.open, live)
            .values()
            .map(|o| o.len())
            .sum();
        for aside in [&mut self.full, &mut self.frozen] {
            aside.retain(|(g, f)| {
                if *g < first_live {
                    dropped += f.len();
                }
                *g >= first_live
            });
        }
        let live = self.indexed.split_off(&first_live);
        for ix in std::mem::replace(&mut self.indexed, live).into_values() {
            dropped += ix.keys;
            self.tags.retire(ix.tag);
        }
        self.update_full_at();
        dropped
    }

    /// The tag of generation `g` in the index, a free one if it has none yet; `None` when
    /// every tag is taken (its keys then stay in a hash set).
    fn tag_for(&mut self, g: u64) -> Option<u8> {
        if let Some(ix) = self.indexed.get(&g) {
            return Some(ix.tag);
        }
        let tag = self.tags.take(g)?;
        self.indexed.insert(g, Indexed { tag, keys: 0 });
        Some(tag)
    }

    /// Sets aside, to be folded into the index, the new keys of every generation before the
    /// one new keys with `current_expiry_s` go to: those take few or no new keys any more
    /// (generations after it are filled by longer retentions and stay in their hash sets
    /// until they are passed; folding them now would fold them again and again). `None` when
    /// there is nothing to fold and no expired entry to drop, or a fold is under way.
    pub fn freeze(&mut self, current_expiry_s: u64) -> Option<Merge> {
        if self.merging {
            return None;
        }
        let current = self.generation(current_expiry_s);
        let mut parts = Vec::new();
        let due: Vec<u64> = self.open.range(..current).map(|(g, _)| *g).collect();
        for g in due {
            let Some(tag) = self.tag_for(g) else {
                continue;
            };
            let keys = Arc::new(self.open.remove(&g).unwrap_or_default());
            self.frozen.push((g, keys.clone()));
            parts.push((g, tag, keys));
        }
        // Full hash sets, of any generation.
        for (g, keys) in std::mem::take(&mut self.full) {
            match self.tag_for(g) {
                Some(tag) => {
                    self.frozen.push((g, keys.clone()));
                    parts.push((g, tag, keys));
                }
                None => self.full.push((g, keys)),
            }
        }
        if parts.is_empty() && !self.tags.tag.contains(&Tag::Dead) {
            return None;
        }
        self.merging = true;
        Some(Merge {
            parts,
            ..Merge::default()
        })
    }

    /// Lends shard `i` to a fold, with the tags the fold keeps.
    pub fn shard(&self, i: usize) -> (Arc<Shard>, Keep) {
        (self.shards[i].clone(), self.tags.kept())
    }

    /// Puts in shard `i` as folded, in place of the one lent.
    pub fn put_shard(&mut self, i: usize, shard: Shard) {
        let old = std::mem::replace(&mut self.shards[i], Arc::new(shard));
        let count = &mut self.tags.count;
        for (t, n) in old.per_tag.iter() {
            count[*t as usize] -= *n as usize;
        }
        for (t, n) in self.shards[i].per_tag.iter() {
            count[*t as usize] += *n as usize;
        }
        for (tag, n) in self.tags.tag.iter_mut().zip(count.iter()) {
            if *n == 0 && *tag == Tag::Dead {
                *tag = Tag::Free;
            }
        }
    }

    /// The fold has put in every shard: the keys it set aside are looked up in the index now.
    pub fn finish(&mut self, merge: Merge) {
        drop(merge);
        self.frozen.clear();
        for ix in self.indexed.values_mut() {
            ix.keys = self.tags.count[ix.tag as usize];
        }
        self.update_full_at();
        self.merging = false;
    }

    /// A whole fold ([`KeySet::freeze`] to [`KeySet::finish`]) in one go, holding whatever
    /// lock guards the set throughout: at start, and in tests.
    pub fn seal(&mut self, current_expiry_s: u64) {
        if let Some(mut merge) = self.freeze(current_expiry_s) {
            merge.sort();
            self.fold(merge);
        }
    }

    fn fold(&mut self, mut merge: Merge) {
        for i in 0..SHARDS {
            let (old, keep) = self.shard(i);
            let new = merge.merge_shard(i, &old, &keep);
            drop(old);
            self.put_shard(i, new);
        }
        self.finish(merge);
    }

    /// Takes in the keys found at start, `(key, expiry)`, as [`KeySet::loader`] and
    /// [`KeySet::load_from`] do. Returns how many were taken.
    #[cfg(test)]
    pub fn load(&mut self, keys: Vec<(u128, u64)>, now_s: u64, current_expiry_s: u64) -> usize {
        let mut load = self.loader(now_s);
        load.expect(keys.len());
        load.extend(&keys);
        drop(keys);
        self.load_from(load, current_expiry_s)
    }

    /// A loader for the keys found at start, leaving out those expired at `now_s`: keys go
    /// in as they are read, at 16 bytes a key, already by shard.
    pub fn loader(&self, now_s: u64) -> KeyLoad {
        KeyLoad {
            width: self.width,
            now_s,
            gens: Vec::new(),
            last: None,
            by_shard: (0..SHARDS).map(|_| Vec::new()).collect(),
            rest: Vec::new(),
        }
    }

    /// Takes in the keys loaded, straight into the index, built in the memory the loader
    /// holds them in (never through a hash set or a list of pairs, so a large set loads in
    /// about the memory it will keep) and on every core. Returns how many keys were taken.
    /// `current_expiry_s` is the expiry new keys get now: hash sets that fill up while
    /// loading (keys the index could not take) are folded in with it.
    pub fn load_from(&mut self, load: KeyLoad, current_expiry_s: u64) -> usize {
        let KeyLoad {
            gens,
            by_shard,
            mut rest,
            ..
        } = load;
        let taken = by_shard.iter().map(Vec::len).sum::<usize>() + rest.len();
        // Each generation's tag in the index, those new keys still go to included (their new
        // keys go to hash sets, folded in under the same tag once new keys no longer go
        // there). None while a fold is under way (it has the shards), or when tags run out:
        // those keys go to hash sets.
        let folding = self.merging;
        let mut tags = [None; TAGS];
        if !folding {
            for (place, g) in gens.iter().enumerate() {
                tags[place] = self.tag_for(*g);
            }
        }
        // A generation's keys go to its hash set with the expiry its generation starts at.
        let expiries: Vec<u64> = gens.iter().map(|g| g.saturating_mul(self.width)).collect();
        let (shards, open) =
            build_shards(by_shard, &self.shards, &self.tags.kept(), &tags, &expiries);
        if !folding {
            for (i, shard) in shards.into_iter().enumerate() {
                if let Some(shard) = shard {
                    self.put_shard(i, shard);
                }
            }
            self.finish(Merge::default());
        }
        rest.extend(open);
        for (k, e) in rest {
            self.insert(k, e);
        }
        // Hash sets that filled up while loading go into the index now, not at the first
        // maintenance: until then every lookup would probe each of them.
        if !self.full.is_empty() {
            self.seal(current_expiry_s);
        }
        taken
    }

    /// Keys held, expired generations not forgotten yet included.
    pub fn len(&self) -> usize {
        self.open.values().map(|o| o.len()).sum::<usize>()
            + self.aside().map(|(_, f)| f.len()).sum::<usize>()
            + self.indexed.values().map(|ix| ix.keys).sum::<usize>()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The heap the keys take: hash sets by their allocated buckets, the index exactly
    /// (entries of expired generations not dropped yet included).
    pub fn bytes(&self) -> usize {
        self.open.values().map(open_bytes).sum::<usize>()
            + self.aside().map(|(_, f)| open_bytes(f)).sum::<usize>()
            + self.shards.iter().map(|s| s.bytes()).sum::<usize>()
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
    fn folded_generations_answer_the_same_and_take_about_twenty_bytes_a_key() {
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
        // Inserting again into a folded generation: kept, and counted once after the fold.
        s.insert(key(1), T0 + DAY / 2);
        s.insert(key(n + 1), T0 + DAY / 2);
        s.seal(T0 + DAY);
        assert_eq!(s.len(), n as usize + 1);
        assert!(s.contains(key(n + 1), T0) && s.contains(key(1), T0));
        // Everything folded: a 16-byte slot for each key and one empty for every four.
        s.seal(u64::MAX);
        let per_key = s.bytes() as f64 / s.len() as f64;
        assert!((19.5..=20.5).contains(&per_key), "{per_key} bytes a key");
    }

    /// A fold's memory outside the set is counted from before its sort, which takes it: the
    /// new keys as 16-byte entries.
    #[test]
    fn a_fold_counts_the_keys_it_sorts_before_and_after_the_sort() {
        let mut s = KeySet::new(DAY);
        for i in 0..10_000u64 {
            s.insert(key(i), T0 + DAY / 2);
        }
        let mut merge = s.freeze(T0 + DAY).expect("a generation to fold");
        assert_eq!(merge.bytes(), 10_000 * 16);
        merge.sort();
        assert!(merge.bytes() >= 10_000 * 16, "{}", merge.bytes());
        s.fold(merge);
        assert_eq!(s.len(), 10_000);
    }

    #[test]
    fn keys_at_the_edges_of_a_shard_and_of_the_key_space_answer() {
        let mut s = KeySet::new(DAY);
        // Same low 120 bits in two shards; the extremes; a shard of one key.
        let same_low = key(9) & (u128::MAX >> 8);
        let ks = [0, u128::MAX, 1 << 127, same_low, same_low | (0xab << 120)];
        for k in ks {
            s.insert(k, T0 + DAY / 2);
        }
        assert!(!s.contains(same_low | (0xcd << 120), T0));
        s.seal(T0 + DAY);
        assert!(s.open.is_empty(), "all in the index");
        for k in ks {
            assert!(s.contains(k, T0), "{k:x}");
        }
        assert!(!s.contains(same_low | (0xcd << 120), T0));
        assert!(!s.contains(5, T0) && !s.contains(u128::MAX - 1, T0));
        assert_eq!(s.len(), ks.len());
    }

    /// A tiny random generator, so the model test is the same on every run.
    struct Mix(u64);

    impl Mix {
        fn next(&mut self) -> u64 {
            self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = self.0;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            z ^ (z >> 31)
        }
    }

    /// Many retentions' worth of time (far more generations than there are tags), keys with
    /// several ttls, some inserted twice, and folds whose shards go in one at a time while
    /// keys are inserted and generations expire in between: the set answers exactly as a plain
    /// map of each key's latest generation would, and never forgets a key before its expiry.
    #[test]
    fn the_index_answers_like_a_plain_map_through_many_folds_and_expiries() {
        let retention = 1_600;
        let width = retention / GENERATIONS;
        let mut s = KeySet::new(retention);
        let mut model: std::collections::HashMap<u128, u64> = Default::default();
        let mut rng = Mix(7);
        let mut inserted = Vec::new();
        let ttls = [retention, retention, retention + width / 2, 3 * retention];
        let mut now = T0;
        for step in 0..600u64 {
            now += width / 2 + rng.next() % width;
            for _ in 0..40 {
                // A new key, or one inserted before (held in both generations).
                let k = if !inserted.is_empty() && rng.next() % 8 == 0 {
                    inserted[(rng.next() % inserted.len() as u64) as usize]
                } else {
                    key(rng.next())
                };
                let expiry = now + ttls[(rng.next() % ttls.len() as u64) as usize];
                s.insert(k, expiry);
                let g = model.entry(k).or_insert(0);
                *g = (*g).max(expiry / width);
                inserted.push(k);
            }
            s.expire(now);
            let expired: Vec<u128> = model
                .iter()
                .filter(|(_, g)| **g < now / width)
                .map(|(k, _)| *k)
                .collect();
            model.retain(|_, g| *g >= now / width);
            if let Some(mut m) = s.freeze(now + retention) {
                m.sort();
                for i in 0..SHARDS {
                    let (old, keep) = s.shard(i);
                    let new = m.merge_shard(i, &old, &keep);
                    drop(old);
                    s.put_shard(i, new);
                    if i == SHARDS / 2 && step % 3 == 0 {
                        // Meanwhile: new keys, and time passing an expiry.
                        let k = key(rng.next());
                        s.insert(k, now + retention);
                        model.insert(k, (now + retention) / width);
                        inserted.push(k);
                    }
                }
                s.finish(m);
            }
            for k in &expired {
                assert!(!s.contains(*k, now), "step {step}: an expired key answers");
            }
            inserted.retain(|k| model.contains_key(k));
            for k in &inserted {
                assert!(s.contains(*k, now), "step {step}: a live key forgotten");
            }
            for _ in 0..50 {
                let k = key(rng.next());
                assert_eq!(s.contains(k, now), model.contains_key(&k));
            }
            assert!(s.len() >= model.len(), "step {step}");
        }
        // Every generation's tag was given back when its entries went.
        assert!(s.tags.tag.iter().filter(|t| **t != Tag::Free).count() <= 2 * GENERATIONS as usize);
        // Long after: nothing held, and the next fold drops every entry.
        let later = now + 4 * retention;
        s.expire(later);
        assert!(s.is_empty() && !s.contains(inserted[0], later));
        s.seal(later + retention);
        assert!(s.shards.iter().all(|sh| sh.len == 0));
        assert!(s.tags.tag.iter().all(|t| *t == Tag::Free));
    }

    /// A generation taking keys for a long time (a day's retention at a high rate) never has
    /// a hash set past the bound: full ones are set aside, still answered, and folded.
    #[test]
    fn a_generation_s_hash_set_never_grows_past_the_bound() {
        let mut s = KeySet::new(DAY);
        let n = 1_000_000u64;
        let mut largest = 0;
        for i in 0..n {
            s.insert(key(i), T0 + DAY);
            largest = largest.max(s.open.values().map(|o| o.capacity()).max().unwrap_or(0));
            if i % 200_000 == 199_999 {
                // What the store's maintenance does every few seconds.
                s.seal(T0 + DAY);
            }
        }
        assert!(largest < 2 * OPEN_MIN, "a hash set grew to {largest}");
        assert!(!s.indexed.is_empty(), "full sets were folded");
        assert_eq!(s.len(), n as usize);
        for i in (0..n).step_by(997) {
            assert!(s.contains(key(i), T0), "{i}");
        }
        // A key inserted again is held once after the fold that takes its generation.
        for i in 0..1000 {
            s.insert(key(i), T0 + DAY);
        }
        s.seal(T0 + 2 * DAY);
        assert_eq!(s.len(), n as usize);
        assert!(!s.contains(key(n + 1), T0));
        // Expired with its generation, full sets and all.
        assert_eq!(s.expire(T0 + 2 * DAY), n as usize);
        assert!(s.is_empty());
    }

    #[test]
    fn keys_loaded_at_start_answer_as_if_inserted_and_count_once() {
        let mut found = Vec::new();
        for n in 0..10_000 {
            let expiry = T0 + 1 + (n % 32) * (DAY / 16);
            found.push((key(n), expiry));
        }
        // Found twice (the key log and a segment), and some already expired.
        found.extend_from_within(..100);
        found.push((key(99_999), T0 - 1));
        let mut s = KeySet::new(DAY);
        let offered = found.len();
        let taken = s.load(found, T0, T0 + DAY);
        assert_eq!(taken, offered - 1);
        assert_eq!(s.len(), 10_000, "a key found twice is held once");
        for n in 0..10_000 {
            assert!(s.contains(key(n), T0), "{n}");
        }
        assert!(!s.contains(key(99_999), T0) && !s.contains(key(10_001), T0));
        // Every generation straight into the index, those new keys still go to included.
        let current = s.generation(T0 + DAY);
        assert!(s.open.is_empty() && s.full.is_empty());
        assert!(s.indexed.keys().any(|g| *g >= current) && s.indexed.len() == 32);
        // New keys of a loaded generation go to its hash set, and are folded in under the
        // same tag once new keys no longer go there.
        let g = *s.indexed.keys().next_back().unwrap();
        let expiry = g * s.width;
        for n in 20_000..20_100 {
            s.insert(key(n), expiry);
        }
        s.seal(expiry + s.width);
        assert!(s.open.is_empty() && s.indexed.len() == 32);
        assert_eq!(s.len(), 10_100);
        assert!((20_000..20_100).all(|n| s.contains(key(n), T0)));
        // Like any other: expired by generation.
        assert_eq!(s.expire(T0 + DAY / 16 + 1), 10_000 / 32 + 1);
    }

    /// Keys loaded into a set that already has an index (not at start) and while a fold is
    /// under way go in as new keys do, and a load of more generations than there are places
    /// for takes the rest one by one: every key answers, counted once.
    #[test]
    fn keys_loaded_next_to_an_index_or_a_fold_or_past_the_places_answer() {
        let mut s = KeySet::new(DAY);
        for n in 0..5_000 {
            s.insert(key(n), T0 + DAY / 2);
        }
        s.seal(T0 + DAY);
        assert!(!s.indexed.is_empty());
        let found: Vec<_> = (0..10_000).map(|n| (key(n), T0 + DAY / 2)).collect();
        assert_eq!(s.load(found, T0, T0 + DAY), 10_000);
        s.seal(T0 + DAY);
        assert_eq!(s.len(), 10_000, "a key found again is held once");
        assert!((0..10_000).all(|n| s.contains(key(n), T0)));

        // While a fold is under way: into hash sets, still answered.
        s.insert(key(20_000), T0 + DAY);
        let merge = s.freeze(T0 + 2 * DAY);
        assert!(s.merging);
        let found: Vec<_> = (10_000..11_000).map(|n| (key(n), T0 + DAY)).collect();
        assert_eq!(s.load(found, T0, T0 + DAY), 1_000);
        assert!((10_000..11_000).all(|n| s.contains(key(n), T0)));
        if let Some(mut m) = merge {
            m.sort();
            s.fold(m);
        }

        // Far more generations than places: a key each, a width apart.
        let mut s = KeySet::new(DAY);
        let width = s.width;
        let found: Vec<_> = (0..400u64).map(|n| (key(n), T0 + 1 + n * width)).collect();
        assert_eq!(s.load(found, T0, T0 + DAY), 400);
        assert!((0..400).all(|n| s.contains(key(n), T0)));
        assert_eq!(s.len(), 400);
    }

    /// The in-place build of a shard puts every entry where the plain one would: its home,
    /// or right after the entry before it, for crowded, sparse and edge entries alike.
    #[test]
    fn a_shard_built_in_place_is_the_shard_built_by_pushing() {
        let mut rng = Mix(11);
        for n in [0usize, 1, 2, 7, 100, 5_000] {
            for crowd in [false, true] {
                let mut v: Vec<Entry> = (0..n)
                    .map(|_| {
                        let e = (u128::from(rng.next()) << 64) | u128::from(rng.next());
                        // Crowded: every entry in the lowest sixteenth of the range.
                        let e = if crowd { e >> 4 } else { e };
                        e & !0xff
                    })
                    .collect();
                v.push(EMPTY - 0xff);
                v.sort_unstable();
                v.dedup();
                let homes = Shard::homes_for(v.len());
                let mut want = Vec::new();
                for e in &v {
                    let h = home(*e, homes);
                    if want.len() < h {
                        want.resize(h, EMPTY);
                    }
                    want.push(*e);
                }
                want.resize(want.len().max(homes), EMPTY);
                let shard = Shard::new(v.clone(), &mut Vec::new());
                assert_eq!(shard.slots, want, "{n} entries, crowded: {crowd}");
                assert_eq!(shard.len, v.len());
                assert!(v.iter().all(|e| shard.holds(*e, |_| true)));
            }
        }
    }
}
