/**
 * One scratch area in linear memory through which the host passes byte buffers to the loops in
 * bytes.ts. The host copies its data in, calls a loop, and copies results out.
 */

let scratchPtr: usize = 0;
let scratchLen: usize = 0;

/**
 * Returns the address of at least `len` bytes of scratch memory. The area is reused (its content
 * is not preserved when it has to grow); growing it may grow linear memory, which detaches every
 * view the host holds on it.
 */
export function scratch(len: usize): usize {
  if (len <= scratchLen) return scratchPtr;
  if (scratchPtr != 0) heap.free(scratchPtr);
  scratchPtr = heap.alloc(len);
  scratchLen = len;
  return scratchPtr;
}
