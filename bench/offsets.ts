/** xorshift32 offsets of `count` 4 KiB blocks below `blocks`: the same "random" offsets every run. */
export function offsets(count: number, blocks: number): number[] {
  let x = 2463534242;
  return Array.from({ length: count }, () => {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    return ((x >>> 0) % blocks) * 4096;
  });
}
