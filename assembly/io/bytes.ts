/**
 * Hot byte loops over linear memory: zero detection, pattern fill and verify (qemu-io's `-P`),
 * copy. Each works 8 bytes at a time with unaligned load<u64>/store<u64> (wasm allows unaligned
 * access; the alignment immediate is only a hint) and finishes the tail byte by byte.
 * Nothing here allocates.
 */

/** The byte `pattern` repeated in all eight lanes of a u64 (small enough for -O3 to inline). */
function splat(pattern: u8): u64 {
  return <u64>pattern * 0x0101010101010101;
}

/** Returns 1 if the `len` bytes at `ptr` are all zero, else 0. */
export function isZero(ptr: usize, len: usize): i32 {
  const end = ptr + len;
  // 32 bytes per iteration, OR-ed together: one branch per four loads.
  const end32 = ptr + (len & ~(<usize>31));
  while (ptr < end32) {
    if ((load<u64>(ptr) | load<u64>(ptr, 8) | load<u64>(ptr, 16) | load<u64>(ptr, 24)) != 0) return 0;
    ptr += 32;
  }
  const end8 = ptr + ((end - ptr) & ~(<usize>7));
  while (ptr < end8) {
    if (load<u64>(ptr) != 0) return 0;
    ptr += 8;
  }
  while (ptr < end) {
    if (load<u8>(ptr) != 0) return 0;
    ptr++;
  }
  return 1;
}

/** Sets the `len` bytes at `ptr` to `pattern`. */
export function fillPattern(ptr: usize, len: usize, pattern: u8): void {
  const end = ptr + len;
  const end8 = ptr + (len & ~(<usize>7));
  const word = splat(pattern);
  while (ptr < end8) {
    store<u64>(ptr, word);
    ptr += 8;
  }
  while (ptr < end) {
    store<u8>(ptr, pattern);
    ptr++;
  }
}

/**
 * Returns the index (from `ptr`) of the first of the `len` bytes that is not `pattern`, or -1
 * when all match. `len` must be below 2^31 so that every index fits the i32 result.
 */
export function verifyPattern(ptr: usize, len: usize, pattern: u8): i32 {
  const start = ptr;
  const end = ptr + len;
  const end8 = ptr + (len & ~(<usize>7));
  const word = splat(pattern);
  while (ptr < end8) {
    const diff = load<u64>(ptr) ^ word;
    // Little-endian: the lowest set bit of the difference lies in the first differing byte.
    if (diff != 0) return <i32>(ptr - start + <usize>(ctz(diff) >> 3));
    ptr += 8;
  }
  while (ptr < end) {
    if (load<u8>(ptr) != pattern) return <i32>(ptr - start);
    ptr++;
  }
  return -1;
}

/**
 * Copies `len` bytes from `src` to `dst`; the ranges may overlap (memmove). This is bulk-memory's
 * memory.copy, which engines implement as a native memmove: faster than any loop written here.
 */
export function copy(dst: usize, src: usize, len: usize): void {
  memory.copy(dst, src, len);
}
