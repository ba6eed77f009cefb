/**
 * Metadata caches (QEMU's Qcow2Cache): a fixed number of slots, each holding one slice of a
 * metadata table (an L2 slice of l2-cache-entry-size bytes, or one refcount block) in linear
 * memory, found by the slice's host offset through an open-addressing hash table, evicted least
 * recently used. One instance caches L2 slices, another refcount blocks (refcount.ts).
 *
 * The engine never reads or writes the file: a miss reserves a slot in state LOADING and asks the
 * host to fill it (Status.NEED_LOAD); the host calls loaded() when the bytes are there. A LOADING
 * slot is never evicted or handed out twice, so concurrent requests wait for one load
 * (Status.WAIT). A slot the engine changed is dirty until the host has written it (cleaned() with
 * the generation it copied), and a pinned slot is one a pending allocation will update: neither
 * is evicted, so when every slot is busy the host writes the dirty ones back (Status.BUSY).
 * Slot memory is allocated on first use, so a large cache costs memory only as it fills.
 */
import { setIo, Status } from './io';

const FREE: u8 = 0;
const LOADING: u8 = 1;
const READY: u8 = 2;

/** Bookkeeping bytes per slot plus two hash buckets; bounds what a configuration may ask for. */
const BYTES_PER_SLOT: u64 = 8 + 8 + 1 + 4 + 8 + 1 + 4 + 4;
const MAX_BOOKKEEPING: u64 = 256 << 20;

export class Cache {
  nslots: i32 = 0;
  entryBytes: usize = 0;
  /** Added to slot numbers handed to the host, so one number names a slot of either cache. */
  tag: i32 = 0;
  /** Per slot: host offset of the cached slice (0 = none), LRU stamp, state, memory address. */
  keys: usize = 0;
  stamps: usize = 0;
  states: usize = 0;
  addrs: usize = 0;
  dirty: usize = 0;
  /** Per slot: bumped on every change, so a write-back of an older copy does not clean it. */
  gens: usize = 0;
  pins: usize = 0;
  /** Hash table of slot index + 1 (0 = empty), capacity a power of two at least 2 * nslots. */
  table: usize = 0;
  tableMask: u32 = 0;
  /** Slots never used yet start at `fresh`; below it a free slot must be searched for. */
  fresh: i32 = 0;
  clock: u64 = 0;
  /** Slots stamped at or after this are in use by the current operation (beginOp). */
  private guardFrom: u64 = U64.MAX_VALUE;
  /** clock at the previous cleanUnused (QEMU's cache_clean_lru_counter). */
  cleanClock: u64 = 0;

  /**
   * Sets up `count` slots of `bytes` each (a power of two). Returns false when the bookkeeping
   * alone would exceed MAX_BOOKKEEPING (the host reports QEMU's "L2 cache size too big").
   */
  configure(count: i32, bytes: usize, tag: i32): bool {
    if (count < 1 || <u64>count * BYTES_PER_SLOT > MAX_BOOKKEEPING) return false;
    this.nslots = count;
    this.entryBytes = bytes;
    this.tag = tag;
    this.keys = zalloc((<usize>count) << 3);
    this.stamps = zalloc((<usize>count) << 3);
    this.states = zalloc(<usize>count);
    this.addrs = zalloc((<usize>count) << 2);
    this.dirty = zalloc(<usize>count);
    this.gens = zalloc((<usize>count) << 2);
    this.pins = zalloc((<usize>count) << 2);
    let cap: u32 = 1;
    while (cap < <u32>count * 2) cap <<= 1;
    this.table = zalloc((<usize>cap) << 2);
    this.tableMask = cap - 1;
    // A reconfigured cache starts empty: no slot has memory yet.
    this.fresh = 0;
    this.clock = 0;
    this.cleanClock = 0;
    return true;
  }

  /** The slot holding the slice at `key`, or -1. */
  find(key: u64): i32 {
    let i = this.bucket(key);
    while (true) {
      const s = load<i32>(this.table + ((<usize>i) << 2)) - 1;
      if (s < 0) return -1;
      if (load<u64>(this.keys + ((<usize>s) << 3)) == key) return s;
      i = (i + 1) & this.tableMask;
    }
    return -1;
  }

  isReady(slot: i32): bool {
    return load<u8>(this.states + <usize>slot) == READY;
  }

  /** Marks a use of `slot` for LRU and returns its memory. */
  touch(slot: i32): usize {
    store<u64>(this.stamps + ((<usize>slot) << 3), ++this.clock);
    return load<u32>(this.addrs + ((<usize>slot) << 2));
  }

  /**
   * The ready slot holding the slice at `key`, or -1 with the status to answer in `Cache.status`
   * and its values in the IO area: NEED_LOAD (IO[0] tagged slot, IO[1] host offset, IO[2] bytes,
   * IO[3] memory address), WAIT (IO[0] tagged slot) or BUSY.
   */
  get(key: u64): i32 {
    let slot = this.find(key);
    if (slot >= 0) {
      if (this.isReady(slot)) {
        this.touch(slot);
        return slot;
      }
      setIo(0, slot + this.tag);
      lastStatus = Status.WAIT;
      return -1;
    }
    slot = this.reserve(key);
    if (slot < 0) {
      lastStatus = Status.BUSY;
      return -1;
    }
    setIo(0, slot + this.tag);
    setIo(1, key);
    setIo(2, this.entryBytes);
    setIo(3, this.slotAddress(slot));
    lastStatus = Status.NEED_LOAD;
    return -1;
  }

  /**
   * A ready, zeroed slot (dirty unless told) for a slice that is new on disk (a new refcount
   * block or L2 table), or -1 (BUSY) when no slot can be had.
   */
  create(key: u64, dirty: bool = true): i32 {
    const slot = this.reserve(key);
    if (slot < 0) {
      lastStatus = Status.BUSY;
      return -1;
    }
    memory.fill(this.slotAddress(slot), 0, this.entryBytes);
    store<u8>(this.states + <usize>slot, READY);
    if (dirty) this.markDirty(slot);
    return slot;
  }

  /**
   * Reserves a slot for the slice at `key` in state LOADING: a never-used slot, else a free one,
   * else the least recently used READY one that is neither dirty nor pinned. Returns -1 when
   * there is none.
   */
  reserve(key: u64): i32 {
    let slot: i32 = -1;
    if (this.fresh < this.nslots) {
      slot = this.fresh++;
      store<u32>(this.addrs + ((<usize>slot) << 2), <u32>zalloc(this.entryBytes));
    } else {
      let best: u64 = U64.MAX_VALUE;
      for (let s = 0; s < this.nslots; s++) {
        const st = load<u8>(this.states + <usize>s);
        if (st == FREE) {
          slot = s;
          break;
        }
        const stamp = load<u64>(this.stamps + ((<usize>s) << 3));
        if (st == READY && stamp < best && this.evictable(s)) {
          best = stamp;
          slot = s;
        }
      }
      if (slot < 0) return -1;
      if (load<u8>(this.states + <usize>slot) == READY) this.drop(slot);
    }
    store<u64>(this.keys + ((<usize>slot) << 3), key);
    store<u8>(this.states + <usize>slot, LOADING);
    store<u64>(this.stamps + ((<usize>slot) << 3), ++this.clock);
    this.insert(key, slot);
    return slot;
  }

  /** The host filled `slot` (ok) or failed to (the slot is freed, so a retry loads again). */
  loaded(slot: i32, ok: bool): void {
    if (slot < 0 || slot >= this.nslots || load<u8>(this.states + <usize>slot) != LOADING) return;
    if (ok) store<u8>(this.states + <usize>slot, READY);
    else this.drop(slot);
  }

  slotAddress(slot: i32): usize {
    return load<u32>(this.addrs + ((<usize>slot) << 2));
  }

  keyOf(slot: i32): u64 {
    return load<u64>(this.keys + ((<usize>slot) << 3));
  }

  markDirty(slot: i32): void {
    store<u8>(this.dirty + <usize>slot, 1);
    const g = this.gens + ((<usize>slot) << 2);
    store<u32>(g, load<u32>(g) + 1);
  }

  isDirty(slot: i32): bool {
    return load<u8>(this.dirty + <usize>slot) != 0;
  }

  generation(slot: i32): u32 {
    return load<u32>(this.gens + ((<usize>slot) << 2));
  }

  /** The host wrote `slot` as it was at generation `gen`: clean unless it changed since. */
  cleaned(slot: i32, gen: u32): void {
    if (slot >= 0 && slot < this.nslots && this.generation(slot) == gen) {
      store<u8>(this.dirty + <usize>slot, 0);
    }
  }

  /** The first dirty slot at or after `from`, or -1. */
  nextDirty(from: i32): i32 {
    for (let s = from; s < this.nslots; s++) if (this.isDirty(s)) return s;
    return -1;
  }

  pin(slot: i32): void {
    const p = this.pins + ((<usize>slot) << 2);
    store<i32>(p, load<i32>(p) + 1);
  }

  unpin(slot: i32): void {
    const p = this.pins + ((<usize>slot) << 2);
    store<i32>(p, load<i32>(p) - 1);
  }

  /**
   * qcow2_cache_clean_unused: frees READY slots not used since the previous call (the host calls
   * this every cache-clean-interval seconds). Returns how many were freed.
   */
  cleanUnused(): i32 {
    let n = 0;
    for (let s = 0; s < this.nslots; s++) {
      const stamp = load<u64>(this.stamps + ((<usize>s) << 3));
      if (this.isReady(s) && stamp <= this.cleanClock && this.evictable(s)) {
        this.drop(s);
        n++;
      }
    }
    this.cleanClock = this.clock;
    return n;
  }

  /** Whether `k` slots could be created now without failing. */
  canCreate(k: i32): bool {
    let n = this.nslots - this.fresh;
    for (let s = 0; s < this.fresh && n < k; s++) {
      const st = load<u8>(this.states + <usize>s);
      if (st == FREE || (st == READY && this.evictable(s))) n++;
    }
    return n >= k;
  }

  /**
   * Until endOp, slots used from now on are not evicted: an operation needing several slices at
   * once (an allocation spanning two refcount blocks) gets BUSY instead of evicting one it needs
   * again, which with a single evictable slot would load the two in turn forever.
   */
  beginOp(): void {
    this.guardFrom = this.clock + 1;
  }

  endOp(): void {
    this.guardFrom = U64.MAX_VALUE;
  }

  private evictable(slot: i32): bool {
    if (load<u64>(this.stamps + ((<usize>slot) << 3)) >= this.guardFrom) return false;
    return !this.isDirty(slot) && load<i32>(this.pins + ((<usize>slot) << 2)) == 0;
  }

  /** Forgets a READY slot (a new table slice whose allocation was aborted). */
  drop(slot: i32): void {
    this.remove(load<u64>(this.keys + ((<usize>slot) << 3)));
    store<u64>(this.keys + ((<usize>slot) << 3), 0);
    store<u8>(this.states + <usize>slot, FREE);
  }

  private bucket(key: u64): u32 {
    // Keys are 512-aligned offsets: drop the zero bits, then Fibonacci hashing.
    return (<u32>(((key >> 9) * 0x9e3779b97f4a7c15) >> 32)) & this.tableMask;
  }

  private insert(key: u64, slot: i32): void {
    let i = this.bucket(key);
    while (load<i32>(this.table + ((<usize>i) << 2)) != 0) i = (i + 1) & this.tableMask;
    store<i32>(this.table + ((<usize>i) << 2), slot + 1);
  }

  /** Linear-probing deletion by backward shift, so lookups never need tombstones. */
  private remove(key: u64): void {
    const mask = this.tableMask;
    let i = this.bucket(key);
    while (true) {
      const s = load<i32>(this.table + ((<usize>i) << 2)) - 1;
      if (s < 0) return;
      if (load<u64>(this.keys + ((<usize>s) << 3)) == key) break;
      i = (i + 1) & mask;
    }
    let hole = i;
    let j = i;
    while (true) {
      j = (j + 1) & mask;
      const s = load<i32>(this.table + ((<usize>j) << 2)) - 1;
      if (s < 0) break;
      const home = this.bucket(load<u64>(this.keys + ((<usize>s) << 3)));
      // Move the entry at j into the hole unless its home lies cyclically in (hole, j].
      const between = hole <= j ? home > hole && home <= j : home > hole || home <= j;
      if (!between) {
        store<i32>(this.table + ((<usize>hole) << 2), s + 1);
        hole = j;
      }
    }
    store<i32>(this.table + ((<usize>hole) << 2), 0);
  }
}

/** The status a failed Cache.get or Cache.create asks the caller to answer. */
let lastStatus: i32 = Status.OK;

export function cacheStatus(): i32 {
  return lastStatus;
}

/** Slot numbers of the refcount cache are handed to the host offset by this tag. */
export const REFCOUNT_TAG: i32 = 1 << 24;

/** The L2 slice cache (l2_table_cache) and the refcount block cache (refcount_block_cache). */
export const l2 = new Cache();
export const rc = new Cache();

/** The cache a tagged slot number belongs to, and the slot within it. */
export function cacheOf(tagged: i32): Cache {
  return tagged >= REFCOUNT_TAG ? rc : l2;
}

export function untag(tagged: i32): i32 {
  return tagged >= REFCOUNT_TAG ? tagged - REFCOUNT_TAG : tagged;
}

/** Zeroed memory that lives as long as the instance (the stub runtime never frees). */
export function zalloc(bytes: usize): usize {
  const p = heap.alloc(bytes);
  memory.fill(p, 0, bytes);
  return p;
}
