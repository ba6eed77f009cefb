/**
 * The L2 table cache (QEMU's Qcow2Cache for l2_table_cache): a fixed number of slots, each
 * holding one L2 slice of `entryBytes` bytes (l2-cache-entry-size) in linear memory, found by the
 * slice's host offset through an open-addressing hash table, evicted least-recently-used.
 *
 * The engine never reads the file: a miss reserves a slot in state LOADING and asks the host to
 * fill it (Status.NEED_LOAD); the host calls loaded() when the bytes are there. A LOADING slot is
 * never evicted or handed out twice, so concurrent requests wait for one load (Status.WAIT)
 * instead of loading the same slice into two slots. Slot memory is allocated on first use, so a
 * large cache costs memory only as it fills.
 */

const FREE: u8 = 0;
const LOADING: u8 = 1;
const READY: u8 = 2;

let nslots: i32 = 0;
let entryBytes: usize = 0;
/** Per slot: host offset of the cached slice (0 = none), LRU stamp, state, memory address. */
let keys: usize = 0;
let stamps: usize = 0;
let states: usize = 0;
let addrs: usize = 0;
/** Hash table of slot index + 1 (0 = empty), capacity a power of two at least 2 * nslots. */
let table: usize = 0;
let tableMask: u32 = 0;
/** Slots never used yet start at `fresh`; below it a free slot must be searched for. */
let fresh: i32 = 0;
let clock: u64 = 0;
/** clock at the previous cleanUnused (QEMU's cache_clean_lru_counter). */
let cleanClock: u64 = 0;

/** Bookkeeping bytes per slot plus two hash buckets; bounds what a configuration may ask for. */
const BYTES_PER_SLOT: u64 = 8 + 8 + 1 + 4 + 8;
const MAX_BOOKKEEPING: u64 = 256 << 20;

/**
 * Sets up `count` slots of `bytes` each (a power of two). Returns false when the bookkeeping
 * alone would exceed MAX_BOOKKEEPING (the host reports QEMU's "L2 cache size too big").
 * Called once per engine instance.
 */
export function configure(count: i32, bytes: usize): bool {
  if (count < 1 || <u64>count * BYTES_PER_SLOT > MAX_BOOKKEEPING) return false;
  nslots = count;
  entryBytes = bytes;
  keys = zalloc((<usize>count) << 3);
  stamps = zalloc((<usize>count) << 3);
  states = zalloc(<usize>count);
  addrs = zalloc((<usize>count) << 2);
  let cap: u32 = 1;
  while (cap < <u32>count * 2) cap <<= 1;
  table = zalloc((<usize>cap) << 2);
  tableMask = cap - 1;
  return true;
}

export function sliceBytes(): usize {
  return entryBytes;
}

/** The slot holding the slice at `key`, or -1. */
export function find(key: u64): i32 {
  let i = bucket(key);
  while (true) {
    const s = load<i32>(table + ((<usize>i) << 2)) - 1;
    if (s < 0) return -1;
    if (load<u64>(keys + ((<usize>s) << 3)) == key) return s;
    i = (i + 1) & tableMask;
  }
  return -1;
}

export function isReady(slot: i32): bool {
  return load<u8>(states + <usize>slot) == READY;
}

/** Marks a use of `slot` for LRU and returns its memory. */
export function touch(slot: i32): usize {
  store<u64>(stamps + ((<usize>slot) << 3), ++clock);
  return load<u32>(addrs + ((<usize>slot) << 2));
}

/**
 * Reserves a slot for the slice at `key` in state LOADING: a never-used slot, else a free one,
 * else the least recently used READY one. Returns -1 when every slot is LOADING.
 */
export function reserve(key: u64): i32 {
  let slot: i32 = -1;
  if (fresh < nslots) {
    slot = fresh++;
    store<u32>(addrs + ((<usize>slot) << 2), <u32>zalloc(entryBytes));
  } else {
    let best: u64 = U64.MAX_VALUE;
    for (let s = 0; s < nslots; s++) {
      const st = load<u8>(states + <usize>s);
      if (st == FREE) {
        slot = s;
        break;
      }
      const stamp = load<u64>(stamps + ((<usize>s) << 3));
      if (st == READY && stamp < best) {
        best = stamp;
        slot = s;
      }
    }
    if (slot < 0) return -1;
    if (load<u8>(states + <usize>slot) == READY) drop(slot);
  }
  store<u64>(keys + ((<usize>slot) << 3), key);
  store<u8>(states + <usize>slot, LOADING);
  store<u64>(stamps + ((<usize>slot) << 3), ++clock);
  insert(key, slot);
  return slot;
}

/** The host filled `slot` (ok) or failed to (the slot is freed, so a retry loads again). */
export function loaded(slot: i32, ok: bool): void {
  if (slot < 0 || slot >= nslots || load<u8>(states + <usize>slot) != LOADING) return;
  if (ok) store<u8>(states + <usize>slot, READY);
  else drop(slot);
}

export function slotAddress(slot: i32): usize {
  return load<u32>(addrs + ((<usize>slot) << 2));
}

/**
 * qcow2_cache_clean_unused: frees READY slots not used since the previous call (the host calls
 * this every cache-clean-interval seconds). Returns how many were freed.
 */
export function cleanUnused(): i32 {
  let n = 0;
  for (let s = 0; s < nslots; s++) {
    if (load<u8>(states + <usize>s) == READY && load<u64>(stamps + ((<usize>s) << 3)) <= cleanClock) {
      drop(s);
      n++;
    }
  }
  cleanClock = clock;
  return n;
}

function drop(slot: i32): void {
  remove(load<u64>(keys + ((<usize>slot) << 3)));
  store<u64>(keys + ((<usize>slot) << 3), 0);
  store<u8>(states + <usize>slot, FREE);
}

function bucket(key: u64): u32 {
  // Keys are 512-aligned offsets: drop the zero bits, then Fibonacci hashing.
  return (<u32>(((key >> 9) * 0x9e3779b97f4a7c15) >> 32)) & tableMask;
}

function insert(key: u64, slot: i32): void {
  let i = bucket(key);
  while (load<i32>(table + ((<usize>i) << 2)) != 0) i = (i + 1) & tableMask;
  store<i32>(table + ((<usize>i) << 2), slot + 1);
}

/** Linear-probing deletion by backward shift, so lookups never need tombstones. */
function remove(key: u64): void {
  let i = bucket(key);
  while (true) {
    const s = load<i32>(table + ((<usize>i) << 2)) - 1;
    if (s < 0) return;
    if (load<u64>(keys + ((<usize>s) << 3)) == key) break;
    i = (i + 1) & tableMask;
  }
  let hole = i;
  let j = i;
  while (true) {
    j = (j + 1) & tableMask;
    const s = load<i32>(table + ((<usize>j) << 2)) - 1;
    if (s < 0) break;
    const home = bucket(load<u64>(keys + ((<usize>s) << 3)));
    // Move the entry at j into the hole unless its home lies cyclically in (hole, j].
    const between = hole <= j ? home > hole && home <= j : home > hole || home <= j;
    if (!between) {
      store<i32>(table + ((<usize>hole) << 2), s + 1);
      hole = j;
    }
  }
  store<i32>(table + ((<usize>hole) << 2), 0);
}

/** Zeroed memory that lives as long as the instance (the stub runtime never frees). */
export function zalloc(bytes: usize): usize {
  const p = heap.alloc(bytes);
  memory.fill(p, 0, bytes);
  return p;
}
